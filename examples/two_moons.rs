//! two_moons end to end: simulate 10,000, train NPE, draw 10,000 posterior samples for an
//! sbibm observation, score them with C2ST against the exact reference posterior, write the
//! samples (CSV) and a pair plot (SVG).
//!
//! ```text
//! cargo run --release --example two_moons -- [--observation 1..10] [--simulations N] [--seed S]
//! ```

mod cli;
mod models;

use std::time::Instant;

use models::two_moons::{TwoMoons, reference_posterior};
use sbi_runtime::diagnostics::c2st;
use sbi_runtime::prelude::*;

const USAGE: &str = "usage: two_moons [--observation 1..10] [--simulations N] [--samples M] [--seed S] [--estimator maf|nsf|mdn] [--out DIR]";

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(USAGE, &["observation", "simulations", "samples", "seed", "estimator", "out"], &[]);
    let obs: usize = args.get("observation", 1);
    let n_sims: usize = args.get("simulations", 10_000);
    let n_samples: usize = args.get("samples", 10_000);
    let seed: u64 = args.get("seed", 1);
    let out = std::path::PathBuf::from(args.get("out", "target/two_moons".to_string()));
    std::fs::create_dir_all(&out).map_err(|e| Error::Io { path: out.clone(), source: e })?;

    // The ten sbibm observations ship with the project (examples/data).
    let table =
        sbi_runtime::io::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/two_moons_observations.csv"))?;
    if !(1..=table.rows()).contains(&obs) {
        return Err(Error::Config(format!("--observation must be 1..{}", table.rows())));
    }
    let x_o = [table.row(obs - 1)[0], table.row(obs - 1)[1]];
    println!("two_moons, observation {obs}: x_o = {x_o:?}");

    let t0 = Instant::now();
    let sims = simulate(&TwoMoons, n_sims).seed(seed).run()?;
    let t_sim = t0.elapsed().as_secs_f64();

    let name = args.get("estimator", "maf".to_string());
    let estimator = name.parse::<DensityEstimator>()?;
    let t1 = Instant::now();
    let posterior = Npe::default()
        .with_estimator(estimator)
        .with_training(TrainConfig::default().with_seed(seed))
        .train(&TwoMoons, &sims)?;
    let t_train = t1.elapsed().as_secs_f64();
    let summary = posterior.training_summary().expect("just trained");

    let t2 = Instant::now();
    let run = posterior.sample_run(&x_o, n_samples)?;
    let diagnostics = run.describe();
    let samples = run.into_samples();
    let t_sample = t2.elapsed().as_secs_f64();

    let reference = reference_posterior(x_o, n_samples, 0);
    let t3 = Instant::now();
    let score = c2st(&samples.values, &reference, 2)?;
    let t_c2st = t3.elapsed().as_secs_f64();

    println!(
        "simulate {:>7.2} s   ({n_sims} simulations)\n\
         train    {:>7.2} s   ({} epochs, {:.1} ms per epoch, best validation loss {:.4} at epoch {})\n\
         sample   {:>7.2} s   ({n_samples} samples; {diagnostics})\n\
         total    {:>7.2} s\n\
         C2ST against the exact reference: {score:.3}   (computed in {t_c2st:.1} s; 0.5 is perfect)",
        t_sim,
        t_train,
        summary.epochs,
        1e3 * summary.seconds_per_epoch(),
        summary.best_validation_loss,
        summary.best_epoch,
        t_sample,
        t_sim + t_train + t_sample,
    );
    let csv = out.join("samples.csv");
    samples.write_csv(&csv)?;
    let svg = out.join("pair_plot.svg");
    sbi_runtime::plot::pair_plot(&svg, &samples.names, &samples.values, Some(&reference))?;
    println!("wrote {} and {} (blue: NPE, orange: reference)", csv.display(), svg.display());
    Ok(())
}
