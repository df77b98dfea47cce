//! An ODE model end to end: Lotka–Volterra predator–prey dynamics solved with the library's
//! adaptive Dormand–Prince solver (`sbi_runtime::ode`), NPE on its simulations, and the
//! posterior at an observation simulated from known rates: each rate's posterior mean,
//! standard deviation and 95% interval beside the truth, and a pair plot.
//!
//! ```text
//! cargo run --release --example lotka_volterra -- [--simulations N] [--samples M] [--seed S] [--out DIR]
//! ```

mod cli;
mod models;

use std::time::Instant;

use models::lotka_volterra::{LotkaVolterra, LotkaVolterraParams};
use sbi_runtime::prelude::*;

const USAGE: &str = "usage: lotka_volterra [--simulations N] [--samples M] [--seed S] [--out DIR]";

/// The rates the observation is simulated from: an oscillation around 18 prey and 16 predators.
const TRUTH: LotkaVolterraParams = LotkaVolterraParams { alpha: 0.8, beta: 0.05, gamma: 0.9, delta: 0.05 };

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(USAGE, &["simulations", "samples", "seed", "out"], &[]);
    let n_sims: usize = args.get("simulations", 10_000);
    let n_samples: usize = args.get("samples", 10_000);
    let seed: u64 = args.get("seed", 1);
    let out = std::path::PathBuf::from(args.get("out", "target/lotka_volterra".to_string()));
    std::fs::create_dir_all(&out).map_err(|e| Error::Io { path: out.clone(), source: e })?;

    let t0 = Instant::now();
    let sims = simulate(&LotkaVolterra, n_sims).seed(seed).run()?;
    let t_sim = t0.elapsed().as_secs_f64();
    let excluded = sims.invalid_counts();
    println!(
        "simulated {} in {t_sim:.2} s ({:.0} ODE solves per second); excluded: {excluded}",
        sims.len(),
        (sims.len() + excluded.total()) as f64 / t_sim
    );
    if let Some(first) = sims.excluded().first() {
        println!("  e.g. {first}");
    }

    let t1 = Instant::now();
    let posterior =
        Npe::default().with_training(TrainConfig::default().with_seed(seed)).train(&LotkaVolterra, &sims)?;
    let t_train = t1.elapsed().as_secs_f64();

    // The observation: one simulation at the true rates, from a stream training never used.
    let x_o = simulate_from(&LotkaVolterra, &[TRUTH]).seed(seed + 1_000).progress(false).run()?.x;
    let t2 = Instant::now();
    let run = posterior.sample_run(&x_o, n_samples)?;
    let t_sample = t2.elapsed().as_secs_f64();
    println!(
        "trained in {t_train:.1} s ({} epochs); sampled {n_samples} in {t_sample:.2} s ({})",
        posterior.training_summary().map_or(0, |s| s.epochs),
        run.describe()
    );
    let samples = run.into_samples();

    println!("\n{:>6} {:>8} {:>9} {:>8} {:>21}  truth inside", "rate", "truth", "mean", "sd", "95% interval");
    for (j, (name, truth)) in samples.names.iter().zip(TRUTH.to_vec()).enumerate() {
        let (mean, sd, _, _) = cli::column_summary(&samples.values, samples.names.len(), j);
        let mut col: Vec<f64> = samples.values.iter().skip(j).step_by(samples.names.len()).copied().collect();
        col.sort_by(f64::total_cmp);
        let q = |p: f64| col[((p * col.len() as f64) as usize).min(col.len() - 1)];
        let (lo, hi) = (q(0.025), q(0.975));
        let inside = if (lo..=hi).contains(&truth) { "yes" } else { "no" };
        println!("{name:>6} {truth:>8.4} {mean:>9.4} {sd:>8.4} [{lo:>8.4}, {hi:>8.4}]  {inside}");
    }
    let svg = out.join("pair_plot.svg");
    sbi_runtime::plot::pair_plot(&svg, &samples.names, &samples.values, None)?;
    let csv = out.join("samples.csv");
    samples.write_csv(&csv)?;
    println!("\nwrote {} and {}", csv.display(), svg.display());
    Ok(())
}
