//! Amortised point and interval estimates (neural Bayes estimators) on replicated Gaussian
//! data with a conjugate Normal–Gamma prior, where the exact posterior mean, median, mode
//! and quantiles are known: estimators of the mean (squared error), the median (absolute
//! error), the mode (annealed tanh loss) and the 5%, 50%, 95% quantiles (quantile loss),
//! each a DeepSets network trained once on data sets of 1 to 100 replicates. Printed: each
//! estimator's RMSE against the exact Bayes estimator and against the truth (beside the
//! exact one's), the quantiles' coverage and the 90% interval's, and the time to estimate
//! 10,000 data sets of 100 replicates.
//!
//! ```text
//! cargo run --release --example point_estimates -- [--simulations N] [--tests T] [--seed S] [--no-mode]
//! ```

mod cli;
mod models;

use std::time::Instant;

use models::normal_gamma::{Exact, MAX_REPLICATES, NormalGamma};
use sbi_runtime::inference::point::{Estimates, PointEstimation, PointEstimator, PointTarget};
use sbi_runtime::prelude::*;

const USAGE: &str = "usage: point_estimates [--simulations N] [--tests T] [--seed S] [--no-mode]";

fn main() {
    cli::finish(run());
}

/// Root mean square of `f` over the test sets, per parameter.
fn rms(tests: usize, f: impl Fn(usize, usize) -> f64) -> [f64; 2] {
    [0, 1].map(|j| ((0..tests).map(|i| f(i, j).powi(2)).sum::<f64>() / tests as f64).sqrt())
}

fn run() -> sbi_runtime::Result<()> {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(USAGE, &["simulations", "tests", "seed"], &["no-mode"]);
    let n_sims: usize = args.get("simulations", 10_000);
    let n_tests: usize = args.get("tests", 1_000);
    let seed: u64 = args.get("seed", 1);

    let sims = simulate(&NormalGamma { replicates: 0 }, n_sims).seed(seed).run()?;
    let embedding = EmbeddingNet::DeepSets { hidden: vec![32, 32], output: 8 };
    let train = |target: PointTarget, stream: u64| -> sbi_runtime::Result<PointEstimator> {
        let t = Instant::now();
        let training = TrainConfig::default().with_seed(seed + stream);
        let est = PointEstimation::new(target.clone()).with_embedding(embedding.clone()).with_training(training);
        let est = est.train(&NormalGamma { replicates: 0 }, &sims)?;
        let epochs: usize = est.training_summaries().iter().map(|s| s.epochs).sum();
        println!("trained {target:?} in {:.1} s ({epochs} epochs)", t.elapsed().as_secs_f64());
        Ok(est)
    };
    let mean = train(PointTarget::Mean, 1)?;
    let median = train(PointTarget::Median, 2)?;
    let mode = if args.flag("no-mode") { None } else { Some(train(PointTarget::mode(), 3)?) };
    let levels = vec![0.05, 0.5, 0.95];
    let quantiles = train(PointTarget::Quantiles { levels: levels.clone() }, 4)?;

    // Held-out data sets of 1 to 100 replicates, and their exact posteriors.
    // Those with a value outside the training range are refused by the estimators (they
    // would extrapolate) and left out here: the prior's small precisions give a few.
    let (lo, hi) = sims
        .x
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let in_range = |x: &[f64]| x.iter().all(|v| v.is_nan() || (lo..=hi).contains(v));
    let mut tests = simulate(&NormalGamma { replicates: 0 }, n_tests).seed(seed + 100).progress(false).run()?;
    let keep: Vec<usize> =
        (0..n_tests).filter(|&i| in_range(&tests.x[i * MAX_REPLICATES..(i + 1) * MAX_REPLICATES])).collect();
    tests.x = keep.iter().flat_map(|&i| tests.x[i * MAX_REPLICATES..(i + 1) * MAX_REPLICATES].to_vec()).collect();
    tests.theta = keep.iter().flat_map(|&i| tests.theta[i * 2..i * 2 + 2].to_vec()).collect();
    let n_tests = keep.len();
    let exact: Vec<Exact> = tests.x.chunks_exact(MAX_REPLICATES).map(Exact::of).collect();
    let truth = |i: usize, j: usize| tests.theta[i * 2 + j];
    let names = ["tau", "mu"];
    println!("\n{n_tests} held-out data sets of 1–{MAX_REPLICATES} replicates; RMSE per parameter ({names:?})");
    println!("{:<10} {:>26} {:>26} {:>26}", "estimator", "against the exact one", "against the truth", "exact one's");
    let row = |name: &str, est: &Estimates, exact_value: &dyn Fn(&Exact) -> [f64; 2], level: usize| {
        let to_exact = rms(n_tests, |i, j| est.quantile(i, j, level) - exact_value(&exact[i])[j]);
        let to_truth = rms(n_tests, |i, j| est.quantile(i, j, level) - truth(i, j));
        let exact_risk = rms(n_tests, |i, j| exact_value(&exact[i])[j] - truth(i, j));
        let pair = |v: [f64; 2]| format!("{:.4}, {:.4}", v[0], v[1]);
        println!("{name:<10} {:>26} {:>26} {:>26}", pair(to_exact), pair(to_truth), pair(exact_risk));
    };
    row("mean", &mean.estimate(&tests.x)?, &|e| e.mean(), 0);
    row("median", &median.estimate(&tests.x)?, &|e| e.quantile(0.5), 0);
    if let Some(mode) = &mode {
        row("mode", &mode.estimate(&tests.x)?, &|e| e.mode(), 0);
    }
    let q = quantiles.estimate(&tests.x)?;
    for (k, &level) in levels.iter().enumerate() {
        row(&format!("q{:.0}%", 100.0 * level), &q, &|e| e.quantile(level), k);
    }

    println!("\ncoverage over {n_tests} data sets (share of truths below each quantile; ± 2 binomial sd)");
    for (k, &level) in levels.iter().enumerate() {
        let below =
            [0, 1].map(|j| (0..n_tests).filter(|&i| truth(i, j) < q.quantile(i, j, k)).count() as f64 / n_tests as f64);
        let sd = (level * (1.0 - level) / n_tests as f64).sqrt();
        println!(
            "  {:>4.0}%: tau {:.3}, mu {:.3} (nominal {level:.3} ± {:.3})",
            100.0 * level,
            below[0],
            below[1],
            2.0 * sd
        );
    }
    let inside = [0, 1].map(|j| {
        (0..n_tests).filter(|&i| q.quantile(i, j, 0) <= truth(i, j) && truth(i, j) <= q.quantile(i, j, 2)).count()
            as f64
            / n_tests as f64
    });
    let sd = (0.9f64 * 0.1 / n_tests as f64).sqrt();
    println!("  90% interval: tau {:.3}, mu {:.3} (nominal 0.900 ± {:.3})", inside[0], inside[1], 2.0 * sd);

    // Time per data set: 10,000 data sets of 100 replicates each, one batched call. Data
    // sets with a value outside the training simulations' range are refused by the
    // estimators (they would extrapolate): the prior's small precisions give a few.
    let many = simulate(&NormalGamma { replicates: MAX_REPLICATES }, 10_000).seed(seed + 200).progress(false).run()?;
    let inside: Vec<f64> = many.x.chunks_exact(MAX_REPLICATES).filter(|x| in_range(x)).flatten().copied().collect();
    println!(
        "
{} of 10,000 data sets of {MAX_REPLICATES} replicates lie inside the training range",
        inside.len() / MAX_REPLICATES
    );
    for (name, est) in [("mean", &mean), ("quantiles", &quantiles)] {
        let t = Instant::now();
        let e = est.estimate(&inside)?;
        let s = t.elapsed().as_secs_f64();
        println!("estimated {} data sets ({name}) in {s:.3} s ({:.1} µs each)", e.rows, 1e6 * s / e.rows as f64);
    }
    Ok(())
}
