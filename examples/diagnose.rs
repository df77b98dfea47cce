//! Can a posterior be trusted? Trains NPE on two_moons and NLE on gaussian_linear (whose
//! posterior is known in closed form; `--nle-model two_moons` for two_moons) and writes, for
//! each, the diagnostics report (`report::write_report`): over test simulations from the prior,
//! simulation-based calibration, the expected coverage of highest-density regions and TARP;
//! at sbibm's observation 1 a local C2ST and a posterior predictive check; whether that
//! observation is typical of the simulations (MMD); the training curve. Each report is one
//! self-contained HTML page, `DIR/npe/index.html` and `DIR/nle/index.html`, with its plots;
//! the text, with the wall time of each part, is printed too. Last, the misspecification
//! test on an observation the model cannot produce.
//!
//! ```text
//! cargo run --release --example diagnose -- [--methods npe,nle] [--simulations 10000]
//!     [--tests 1000] [--draws 1000] [--nle-tests 200] [--nle-model gaussian_linear|two_moons]
//!     [--seed 1] [--out target/diagnose]
//! ```

mod cli;
mod models;

use std::time::Instant;

use models::gaussian_linear::GaussianLinear;
use models::two_moons::TwoMoons;
use sbi_runtime::diagnostics::{
    CalibrationConfig, LocalC2stConfig, MmdConfig, misspecification_log_prob, misspecification_mmd,
};
use sbi_runtime::prelude::*;
use sbi_runtime::report::{ReportConfig, write_report};

const USAGE: &str = "usage: diagnose [--methods npe,nle] [--simulations N] [--tests T] [--draws L] \
                     [--nle-tests T] [--nle-model gaussian_linear|two_moons] [--seed S] [--out DIR]";

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(
        USAGE,
        &["methods", "simulations", "tests", "draws", "nle-tests", "nle-model", "seed", "out"],
        &[],
    );
    let methods = args.get("methods", "npe,nle".to_string());
    let n_sims: usize = args.get("simulations", 10_000);
    let tests: usize = args.get("tests", 1_000);
    let nle_tests: usize = args.get("nle-tests", 200);
    let nle_model = args.get("nle-model", "gaussian_linear".to_string());
    let draws: usize = args.get("draws", 1_000);
    let seed: u64 = args.get("seed", 1);
    let out = std::path::PathBuf::from(args.get("out", "target/diagnose".to_string()));

    let sims = simulate(&TwoMoons, n_sims).seed(seed).run()?;
    // sbibm's observation 1, shipped with the project (examples/data).
    let table =
        sbi_runtime::io::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/two_moons_observations.csv"))?;
    let x_o = table.row(0).to_vec();
    let setting = Setting { n_sims, draws, seed, out };
    for method in methods.split(',') {
        match (method, nle_model.as_str()) {
            ("npe", _) => report(&setting, "npe", &TwoMoons, "two_moons", &x_o, Some(&sims), tests)?,
            ("nle", "gaussian_linear") => {
                let x_gl = models::gaussian_linear::observation(0);
                report(&setting, "nle", &GaussianLinear, "gaussian_linear", &x_gl, None, nle_tests)?
            }
            ("nle", "two_moons") => report(&setting, "nle", &TwoMoons, "two_moons", &x_o, Some(&sims), nle_tests)?,
            ("nle", other) => {
                return Err(Error::Config(format!("unknown model {other:?} for NLE (gaussian_linear or two_moons)")));
            }
            (other, _) => return Err(Error::Config(format!("unknown method {other:?} (npe or nle)"))),
        }
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

/// What every report shares: simulations, draws per test, seed and output folder.
struct Setting {
    n_sims: usize,
    draws: usize,
    seed: u64,
    out: std::path::PathBuf,
}

/// Trains `method` (npe or nle) on `model` (reusing `sims` when given), writes its report to
/// `OUT/METHOD/index.html` for `n_tests` test simulations and prints its text.
fn report<M: Simulator>(
    setting: &Setting,
    method: &str,
    model: &M,
    name: &str,
    x_o: &[f64],
    sims: Option<&Simulations>,
    n_tests: usize,
) -> sbi_runtime::Result<()> {
    let Setting { n_sims, draws, seed, .. } = *setting;
    let t = Instant::now();
    let fresh;
    let sims = match sims {
        Some(s) => s,
        None => {
            fresh = simulate(model, n_sims).seed(seed).run()?;
            &fresh
        }
    };
    // Test simulations from the prior, on another stream than the training's.
    let test_sims = simulate(model, n_tests).seed(seed + 1_000).progress(false).run()?;
    let config = ReportConfig {
        title: format!("{} on {name} ({n_sims} simulations), observation 1", method.to_uppercase()),
        calibration: CalibrationConfig::default().with_draws(draws).with_seed(seed),
        local_c2st: Some(LocalC2stConfig { seed, ..LocalC2stConfig::default() }),
        seed,
        ..ReportConfig::default()
    };
    let dir = setting.out.join(method);
    let training = TrainConfig::default().with_seed(seed);
    let report = if method == "npe" {
        let posterior = Npe::default().with_training(training).train(model, sims)?;
        println!("NPE trained in {:.1} s", t.elapsed().as_secs_f64());
        write_report(&dir, model, &posterior, &test_sims, Some(sims), x_o, &config)?
    } else {
        let posterior = Nle::default().with_training(training).train(model, sims)?;
        println!("NLE trained in {:.1} s", t.elapsed().as_secs_f64());
        write_report(&dir, model, &posterior, &test_sims, Some(sims), x_o, &config)?
    };
    println!("{method} on {name}: {n_tests} tests × {draws} draws\n{}wrote {}\n", report.text, report.path.display());
    Ok(())
}
