#!/usr/bin/env bash
# C2ST and wall time over sbibm observations 1..10 for the given tasks and configurations.
# usage: scripts/benchmark.sh "two_moons gaussian_linear slcp" "maf nsf nle:maf nre:b nre:c" [simulations] [observations]
# A configuration is METHOD:SETTING: npe:maf|nsf|mdn (a bare estimator name means npe),
# nle:maf|nsf|mdn, nre:a|b|c|bnre, fmpe:A (flow matching with time prior exponent A, 4 by
# default, 0 as sbi; UNIFORM_SHARE=W of the times uniform, 0.5 by default), npse:ve|vp|subvp
# (score estimation with that SDE; SCORE_SAMPLING=sde|ode, sde as sbi).
# SAMPLER=slice|nuts|mh|sir picks the sampler of nle and nre; LR_DECAYS=K halves the
# learning rate K times on plateaus (fmpe, npse: 3 by default, 0 as sbi), each after
# LR_PATIENCE=E epochs without improvement (fmpe 20, npse 10 by default);
# ROUNDS=R splits the simulations over R sequential rounds (TSNPE, SNLE, SNRE);
# THETA_SPACE=constrained|unconstrained picks where NPE models θ.
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${1:-"two_moons gaussian_linear slcp"}
configs=${2:-"maf"}
sims=${3:-10000}
obs=${4:-"1 2 3 4 5 6 7 8 9 10"}
sampler=${SAMPLER:-slice}
rounds=${ROUNDS:-1}
space=${THETA_SPACE:-constrained}
shared=${SHARED:-../shared/tasks}
cargo build --release -q --example sbibm
for task in $tasks; do
  for config in $configs; do
    case "$config" in
      *:*) method=${config%%:*}; setting=${config#*:} ;;
      *) method=npe; setting=$config ;;
    esac
    case "$method" in
      nre) extra=(--nre-variant "$setting" --sampler "$sampler") ;;
      nle) extra=(--density-estimator "$setting" --sampler "$sampler") ;;
      fmpe) extra=(--time-prior-exponent "$setting" --uniform-share "${UNIFORM_SHARE:-0.5}"
                   --lr-decays "${LR_DECAYS:-3}" --lr-patience "${LR_PATIENCE:-20}") ;;
      npse) extra=(--sde "$setting" --score-sampling "${SCORE_SAMPLING:-sde}"
                   --lr-decays "${LR_DECAYS:-3}" --lr-patience "${LR_PATIENCE:-10}") ;;
      *) extra=(--density-estimator "$setting" --theta-space "$space") ;;
    esac
    label=$setting
    if [ "$method" = fmpe ]; then label="$setting,uniform${UNIFORM_SHARE:-0.5},decays${LR_DECAYS:-3}/${LR_PATIENCE:-20}"; fi
    if [ "$method" = npse ]; then label="$setting,${SCORE_SAMPLING:-sde},decays${LR_DECAYS:-3}/${LR_PATIENCE:-10}"; fi
    for i in $obs; do
      line=$(./target/release/examples/sbibm --task "$task" --method "$method" "${extra[@]}" \
        --simulations "$sims" --samples 10000 --seed "$i" --quiet --rounds "$rounds" \
        --observation-file "$shared/$task/obs$i/observation.csv" \
        --reference-file "$shared/$task/obs$i/reference_posterior_samples.csv" | tr '\n' ' ')
      echo "task=$task method=$method setting=$label rounds=$rounds space=$space obs=$i $line"
    done
  done
done
