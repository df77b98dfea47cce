#!/usr/bin/env bash
# C2ST and wall time over sbibm observations 1..10 for the given tasks and configurations.
# usage: scripts/benchmark.sh "two_moons gaussian_linear slcp" "maf nsf nle:maf nre:b nre:c" [simulations] [observations]
# A configuration is METHOD:SETTING: npe:maf|nsf|mdn (a bare estimator name means npe),
# nle:maf|nsf|mdn, nre:a|b|c|bnre, fmpe:A (flow matching with time prior exponent A, 4 by
# default, 0 as sbi; UNIFORM_SHARE=W of the times uniform, 0.5 by default), npse:ve|vp|subvp
# (score estimation with that SDE; SCORE_SAMPLING=sde|ode, sde as sbi).
# SAMPLER=slice|nuts|mh|sir picks the sampler of nle and nre. FMPE's and NPSE's schedule:
# EMA=D averages the parameters (0.995; 0 none, as sbi), STOP_AFTER=E epochs without
# improvement end training or begin LR_ANNEAL=A epochs of annealing (10 and 20; sbi: 20 and
# none), LR_DECAYS=K halvings before that (0), each after LR_PATIENCE=E epochs;
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
# FMPE's and NPSE's schedule: their defaults unless set (halvings, their patience,
# annealing epochs, parameter averaging, stopping patience; 0 turns annealing or averaging off).
schedule=(--lr-decays "${LR_DECAYS:-0}" --lr-anneal "${LR_ANNEAL:-20}" --ema "${EMA:-0.995}"
          --stop-after "${STOP_AFTER:-10}" --lr-patience "${LR_PATIENCE:-${STOP_AFTER:-10}}")
schedule_label="decays${LR_DECAYS:-0}/${LR_PATIENCE:-${STOP_AFTER:-10}},anneal${LR_ANNEAL:-20},ema${EMA:-0.995},stop${STOP_AFTER:-10}"
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
      fmpe) extra=(--time-prior-exponent "$setting" --uniform-share "${UNIFORM_SHARE:-0.5}" "${schedule[@]}") ;;
      npse) extra=(--sde "$setting" --score-sampling "${SCORE_SAMPLING:-sde}" "${schedule[@]}") ;;
      *) extra=(--density-estimator "$setting" --theta-space "$space") ;;
    esac
    label=$setting
    if [ "$method" = fmpe ]; then label="$setting,uniform${UNIFORM_SHARE:-0.5},$schedule_label"; fi
    if [ "$method" = npse ]; then label="$setting,${SCORE_SAMPLING:-sde},$schedule_label"; fi
    for i in $obs; do
      line=$(./target/release/examples/sbibm --task "$task" --method "$method" "${extra[@]}" \
        --simulations "$sims" --samples 10000 --seed "$i" --quiet --rounds "$rounds" \
        --observation-file "$shared/$task/obs$i/observation.csv" \
        --reference-file "$shared/$task/obs$i/reference_posterior_samples.csv" | tr '\n' ' ')
      echo "task=$task method=$method setting=$label rounds=$rounds space=$space obs=$i $line"
    done
  done
done
