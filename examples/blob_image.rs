//! Images: NPE with a 2-D CNN embedding on a Gaussian blob rendered on a 32 × 32 noisy
//! image (position x, y, width, brightness). Trains end to end on simulated images, then
//! checks calibration on held-out simulations: the share of true parameters inside their
//! posterior's central 95% interval (coverage), and writes a pair plot for one of them.
//!
//! ```text
//! cargo run --release --example blob_image -- [--simulations N] [--tests T] [--seed S] [--out DIR]
//! ```

mod cli;
mod models;

use std::time::Instant;

use models::blob::Blob;
use sbi_runtime::diagnostics::Coverage;
use sbi_runtime::prelude::*;

const USAGE: &str = "usage: blob_image [--simulations N] [--tests T] [--samples M] [--seed S] [--out DIR] [--device cpu|cuda|cuda:N|metal]";

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(USAGE, &["simulations", "tests", "samples", "seed", "out", "device"], &[]);
    let device: sbi_runtime::nn::DeviceChoice = args.get("device", sbi_runtime::nn::DeviceChoice::Cpu);
    let n_sims: usize = args.get("simulations", 10_000);
    let n_tests: usize = args.get("tests", 100);
    let n_samples: usize = args.get("samples", 1_000);
    let seed: u64 = args.get("seed", 1);
    let out = std::path::PathBuf::from(args.get("out", "target/blob_image".to_string()));
    std::fs::create_dir_all(&out).map_err(|e| Error::Io { path: out.clone(), source: e })?;

    let t0 = Instant::now();
    let sims = simulate(&Blob, n_sims).seed(seed).run()?;
    println!("simulated {n_sims} images of shape {} in {:.1} s", sims.x_shape, t0.elapsed().as_secs_f64());

    // Two convolution layers (8 and 16 channels, 3 × 3, each halving the image) and 32 features.
    let embedding = EmbeddingNet::Cnn2d { channels: vec![8, 16], kernel: 3, output: 32 };
    let npe = Npe::default()
        .with_estimator(DensityEstimator::Nsf(NsfConfig::default()))
        .with_embedding(embedding)
        .with_training(TrainConfig::default().with_seed(seed).with_device(device));
    let posterior = npe.train(&Blob, &sims)?;
    let summary = posterior.training_summary().expect("just trained");
    println!(
        "trained NPE (NSF + 2-D CNN) in {:.1} s: {} epochs, {:.0} ms per epoch",
        summary.seconds,
        summary.epochs,
        1e3 * summary.seconds / summary.epochs as f64
    );

    // Held-out simulations from the prior, with another seed.
    let tests = simulate(&Blob, n_tests).seed(seed + 1_000_000).progress(false).run()?;
    let d = tests.theta_dim();
    let mut sq_err = vec![0.0; d];
    let t1 = Instant::now();
    let coverage = Coverage::of(&tests, 0.95, |truth, x| {
        let draws = posterior.sample_flat(x, n_samples)?;
        for (j, m) in draws.mean().iter().enumerate() {
            sq_err[j] += (m - truth[j]).powi(2) / n_tests as f64;
        }
        Ok(draws.values)
    })?;
    println!("{} held-out images, {n_samples} draws each, in {:.1} s", tests.len(), t1.elapsed().as_secs_f64());
    let x0 = &tests.x[..tests.x_dim()];
    let svg = out.join("posterior_test_0.svg");
    let draws = posterior.sample_flat(x0, n_samples)?;
    sbi_runtime::plot::pair_plot(&svg, &draws.names, &draws.values, None)?;
    println!("test 0: truth {:.2?}; pair plot in {}\n", &tests.theta[..d], svg.display());
    println!("{:>12} {:>16} {:>22}", "parameter", "coverage (95%)", "posterior mean RMSE");
    for (j, name) in tests.param_names.iter().enumerate() {
        println!("{name:>12} {:>16} {:>22.3}", format!("{:.2}", coverage.rates()[j]), sq_err[j].sqrt());
    }
    println!("(a calibrated posterior covers 0.95 ± {:.3}, one standard error)", coverage.standard_error());
    Ok(())
}
