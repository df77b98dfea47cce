#!/usr/bin/env bash
# This library and `sbi` 0.27 side by side, one after the other on this machine: FMPE and
# NPSE with each one's defaults (10,000 simulations, 10,000 draws, seed = observation),
# printing train and sample times, epochs and C2ST for each.
# usage: scripts/compare_sbi.sh "two_moons gaussian_linear" "fmpe npse" "1" [python]
# (python: an interpreter with `pip install sbi`; python3 by default).
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${1:-"two_moons gaussian_linear"}
methods=${2:-"fmpe npse"}
obs=${3:-1}
python=${4:-python3}
shared=${SHARED:-../shared/tasks}
cargo build --release -q --example sbibm
for task in $tasks; do
  for method in $methods; do
    for i in $obs; do
      line=$(./target/release/examples/sbibm --task "$task" --method "$method" --simulations 10000 \
        --samples 10000 --seed "$i" --quiet \
        --observation-file "$shared/$task/obs$i/observation.csv" \
        --reference-file "$shared/$task/obs$i/reference_posterior_samples.csv" | tr '\n' ' ')
      echo "sbi-rs $method task=$task obs=$i $line"
      "$python" scripts/sbi_vector_field.py "$task" "$method" "$i"
    done
  done
done
