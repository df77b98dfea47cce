//! Can a posterior be trusted? Trains NPE (and NLE) on two_moons, then over test
//! simulations from the prior runs simulation-based calibration, the expected coverage of
//! highest-density regions and TARP; at sbibm's observation 1 a posterior predictive check
//! and a local C2ST (L-C2ST);
//! and tests whether that observation, and one moved away from the simulations, are typical
//! of them (MMD). Prints the checks with their timings and writes the plots (SBC rank
//! histograms, ECDF difference, coverage, TARP, predictive, loss) as SVG to `--out`.
//!
//! ```text
//! cargo run --release --example diagnose -- [--methods npe,nle] [--simulations 10000]
//!     [--tests 1000] [--draws 1000] [--nle-tests 200] [--seed 1] [--out target/diagnose]
//! ```

mod cli;
mod models;

use std::path::Path;
use std::time::Instant;

use models::two_moons::TwoMoons;
use sbi_runtime::diagnostics::{
    Calibration, CalibrationConfig, LocalC2st, LocalC2stConfig, MmdConfig, PredictiveCheck, misspecification_mmd,
};
use sbi_runtime::plot::{coverage_plot, ecdf_difference_plot, loss_plot, predictive_plot, sbc_rank_plot, tarp_plot};
use sbi_runtime::prelude::*;

const USAGE: &str = "usage: diagnose [--methods npe,nle] [--simulations N] [--tests T] [--draws L] \
                     [--nle-tests T] [--seed S] [--out DIR]";

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(USAGE, &["methods", "simulations", "tests", "draws", "nle-tests", "seed", "out"], &[]);
    let methods = args.get("methods", "npe,nle".to_string());
    let n_sims: usize = args.get("simulations", 10_000);
    let tests: usize = args.get("tests", 1_000);
    let nle_tests: usize = args.get("nle-tests", 200);
    let draws: usize = args.get("draws", 1_000);
    let seed: u64 = args.get("seed", 1);
    let out = std::path::PathBuf::from(args.get("out", "target/diagnose".to_string()));
    std::fs::create_dir_all(&out).map_err(|e| Error::Io { path: out.clone(), source: e })?;

    let sims = simulate(&TwoMoons, n_sims).seed(seed).run()?;
    // sbibm's observation 1, shipped with the project (examples/data).
    let table =
        sbi_runtime::io::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/two_moons_observations.csv"))?;
    let x_o = table.row(0).to_vec();

    // Is x_o typical of the simulations? And x_o with x[0] raised by 1.5, beyond what the
    // model can simulate (x[0] ≤ 0.25 + r, r ≈ 0.1).
    let t = Instant::now();
    let shifted = [x_o[0] + 1.5, x_o[1]];
    for (name, x) in [("observation 1", &x_o[..]), ("observation 1, x[0] + 1.5", &shifted[..])] {
        let m = misspecification_mmd(x, &sims.x, 2, &MmdConfig { seed, ..MmdConfig::default() })?;
        println!("{name}: {}", m.describe());
    }
    println!("(misspecification tests in {:.2} s)", t.elapsed().as_secs_f64());
    // Test simulations from the prior on another stream than the training's.
    let config = CalibrationConfig::default().with_draws(draws).with_seed(seed);
    let training = TrainConfig::default().with_seed(seed);
    for method in methods.split(',') {
        let t0 = Instant::now();
        let (calibration, seconds) = match method {
            "npe" => {
                let posterior = Npe::default().with_training(training.clone()).train(&TwoMoons, &sims)?;
                println!("NPE trained in {:.1} s", t0.elapsed().as_secs_f64());
                predictive(&posterior, &x_o, seed, &out, method)?;
                local_c2st(&posterior, tests, &x_o, seed)?;
                calibrate(&posterior, tests, seed, &config)?
            }
            "nle" => {
                let posterior = Nle::default().with_training(training.clone()).train(&TwoMoons, &sims)?;
                println!("NLE trained in {:.1} s", t0.elapsed().as_secs_f64());
                predictive(&posterior, &x_o, seed, &out, method)?;
                local_c2st(&posterior, nle_tests, &x_o, seed)?;
                calibrate(&posterior, nle_tests, seed, &config)?
            }
            other => return Err(Error::Config(format!("unknown method {other:?} (npe or nle)"))),
        };
        println!(
            "{method}: calibration of {} tests × {draws} draws (with log-density ranks and TARP) in {seconds:.2} s",
            calibration.tests()
        );
        let t1 = Instant::now();
        let text = calibration.describe()?;
        println!("{text}\n(checks in {:.1} s)", t1.elapsed().as_secs_f64());
        write_plots(&out, method, &calibration)?;
    }
    println!("wrote the plots to {}", out.display());
    Ok(())
}

/// The posterior predictive check at `x_o` (1,000 draws), and the plots of it and of the
/// training curve.
fn predictive<P: Posterior<Prior = <TwoMoons as Simulator>::Prior>>(
    posterior: &P,
    x_o: &[f64],
    seed: u64,
    out: &Path,
    method: &str,
) -> sbi_runtime::Result<()> {
    let check = PredictiveCheck::run(&TwoMoons, posterior, x_o, 1_000, seed)?;
    println!("{method} at observation 1: {}", check.describe());
    predictive_plot(out.join(format!("{method}_predictive.svg")), &check)?;
    if let Some(summary) = posterior.training_summary() {
        loss_plot(out.join(format!("{method}_loss.svg")), summary)?;
    }
    Ok(())
}

/// L-C2ST at `x_o`, its classifiers trained on `n` test simulations.
fn local_c2st<P: Posterior>(posterior: &P, n: usize, x_o: &[f64], seed: u64) -> sbi_runtime::Result<()> {
    let tests = simulate(&TwoMoons, n).seed(seed + 2_000).progress(false).run()?;
    let t = Instant::now();
    let l = LocalC2st::run(posterior, &tests, x_o, &LocalC2stConfig { seed, ..LocalC2stConfig::default() })?;
    println!("at observation 1: {} ({:.1} s)", l.describe(), t.elapsed().as_secs_f64());
    Ok(())
}

/// Calibration over `n` test simulations; returns it with its wall time.
fn calibrate<P: Posterior>(
    posterior: &P,
    n: usize,
    seed: u64,
    config: &CalibrationConfig,
) -> sbi_runtime::Result<(Calibration, f64)> {
    let tests = simulate(&TwoMoons, n).seed(seed + 1_000).progress(false).run()?;
    let t = Instant::now();
    let c = Calibration::run(posterior, &tests, config)?;
    Ok((c, t.elapsed().as_secs_f64()))
}

fn write_plots(out: &Path, method: &str, c: &Calibration) -> sbi_runtime::Result<()> {
    sbc_rank_plot(out.join(format!("{method}_sbc_ranks.svg")), c, 20)?;
    ecdf_difference_plot(out.join(format!("{method}_sbc_ecdf.svg")), c)?;
    coverage_plot(out.join(format!("{method}_coverage.svg")), c)?;
    tarp_plot(out.join(format!("{method}_tarp.svg")), &c.tarp(200))
}
