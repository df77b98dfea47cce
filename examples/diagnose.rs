//! Can a posterior be trusted? Trains NPE and NLE on two_moons and writes, for each, the
//! diagnostics report (`report::write_report`): over test simulations from the prior,
//! simulation-based calibration, the expected coverage of highest-density regions and TARP;
//! at sbibm's observation 1 a local C2ST and a posterior predictive check; whether that
//! observation is typical of the simulations (MMD); the training curve. Each report is one
//! self-contained HTML page, `DIR/npe/index.html` and `DIR/nle/index.html`, with its plots;
//! the text, with the wall time of each part, is printed too. Last, the misspecification
//! test on an observation the model cannot produce.
//!
//! ```text
//! cargo run --release --example diagnose -- [--methods npe,nle] [--simulations 10000]
//!     [--tests 1000] [--draws 1000] [--nle-tests 200] [--seed 1] [--out target/diagnose]
//! ```

mod cli;
mod models;

use std::time::Instant;

use models::two_moons::TwoMoons;
use sbi_runtime::diagnostics::{
    CalibrationConfig, LocalC2stConfig, MmdConfig, misspecification_log_prob, misspecification_mmd,
};
use sbi_runtime::prelude::*;
use sbi_runtime::report::{ReportConfig, write_report};

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

    let sims = simulate(&TwoMoons, n_sims).seed(seed).run()?;
    // sbibm's observation 1, shipped with the project (examples/data).
    let table =
        sbi_runtime::io::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/two_moons_observations.csv"))?;
    let x_o = table.row(0).to_vec();
    let training = TrainConfig::default().with_seed(seed);
    for method in methods.split(',') {
        let t = Instant::now();
        let n_tests = if method == "nle" { nle_tests } else { tests };
        // Test simulations from the prior, on another stream than the training's.
        let test_sims = simulate(&TwoMoons, n_tests).seed(seed + 1_000).progress(false).run()?;
        let config = ReportConfig {
            title: format!("{} on two_moons ({n_sims} simulations), observation 1", method.to_uppercase()),
            calibration: CalibrationConfig::default().with_draws(draws).with_seed(seed),
            local_c2st: Some(LocalC2stConfig { seed, ..LocalC2stConfig::default() }),
            seed,
            ..ReportConfig::default()
        };
        let dir = out.join(method);
        let report = match method {
            "npe" => {
                let posterior = Npe::default().with_training(training.clone()).train(&TwoMoons, &sims)?;
                println!("NPE trained in {:.1} s", t.elapsed().as_secs_f64());
                write_report(&dir, &TwoMoons, &posterior, &test_sims, Some(&sims), &x_o, &config)?
            }
            "nle" => {
                let posterior = Nle::default().with_training(training.clone()).train(&TwoMoons, &sims)?;
                println!("NLE trained in {:.1} s", t.elapsed().as_secs_f64());
                write_report(&dir, &TwoMoons, &posterior, &test_sims, Some(&sims), &x_o, &config)?
            }
            other => return Err(Error::Config(format!("unknown method {other:?} (npe or nle)"))),
        };
        println!("{method}: {n_tests} tests × {draws} draws\n{}wrote {}\n", report.text, report.path.display());
    }
    // An observation the model cannot produce: x[0] raised by 1.5, beyond its largest
    // value (x[0] ≤ 0.25 + r, r ≈ 0.1).
    let moved = [x_o[0] + 1.5, x_o[1]];
    let m = misspecification_mmd(&moved, &sims.x, 2, &MmdConfig { seed, ..MmdConfig::default() })?;
    println!("observation 1 with x[0] + 1.5: {}", m.describe());
    let training = TrainConfig::default().with_seed(seed).with_progress(false);
    let l = misspecification_log_prob(&moved, &sims.x, 2, &DensityEstimator::default(), &training)?;
    println!("observation 1 with x[0] + 1.5: {}", l.describe());
    Ok(())
}
