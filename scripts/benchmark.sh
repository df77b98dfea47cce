#!/usr/bin/env bash
# C2ST and wall time over sbibm observations 1..10 for the given tasks and estimators.
# usage: scripts/benchmark.sh "two_moons gaussian_linear slcp" "maf nsf mdn" [simulations] [observations]
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${1:-"two_moons gaussian_linear slcp"}
estimators=${2:-"maf"}
sims=${3:-10000}
obs=${4:-"1 2 3 4 5 6 7 8 9 10"}
shared=${SHARED:-../shared/tasks}
cargo build --release -q --example sbibm
for task in $tasks; do
  for est in $estimators; do
    for i in $obs; do
      line=$(./target/release/examples/sbibm --task "$task" --method npe --density-estimator "$est" \
        --simulations "$sims" --samples 10000 --seed "$i" --quiet true \
        --observation-file "$shared/$task/obs$i/observation.csv" \
        --reference-file "$shared/$task/obs$i/reference_posterior_samples.csv" | tr '\n' ' ')
      echo "task=$task estimator=$est obs=$i $line"
    done
  done
done
