//! Runs one model many times with a progress bar and prints a summary of θ and x.
//!
//! ```text
//! cargo run --release --example simulate -- --model two_moons --simulations 100000 --seed 1
//! ```

mod cli;
mod models;

use std::time::Instant;

use sbi_runtime::prelude::*;

const USAGE: &str = "\
usage: simulate [--model two_moons|gaussian_linear|slcp|groups|sir] [--simulations N]
                [--seed S] [--threads T] [--output FILE.safetensors] [--csv FILE.csv] [--npz FILE.npz]
                [--checkpoint FILE.safetensors]";

fn run<M: Simulator>(model: &M, args: &cli::Args) -> sbi_runtime::Result<()> {
    let n = args.get("simulations", 100_000usize);
    let mut run = simulate(model, n).seed(args.get("seed", 1u64));
    if let Some(t) = args.opt("threads") {
        run = run.threads(t.parse().map_err(|_| Error::Config(format!("--threads: cannot read {t:?}")))?);
    }
    if let Some(path) = args.opt("checkpoint") {
        run = run.checkpoint(path);
    }
    let start = Instant::now();
    let sims = run.run()?;
    let secs = start.elapsed().as_secs_f64();

    let counts = sims.invalid_counts();
    println!(
        "{} valid simulations in {:.3} s ({:.0} per second); {} excluded ({counts})",
        sims.len(),
        secs,
        (sims.len() + counts.total()) as f64 / secs,
        counts.total(),
    );
    if let Some(first) = sims.excluded().first() {
        println!("first excluded: {first}");
    }
    println!(
        "\nθ ({} coordinates)\n{:>12} {:>10} {:>10} {:>10} {:>10}",
        sims.theta_dim(),
        "name",
        "mean",
        "sd",
        "min",
        "max"
    );
    for (j, name) in sims.param_names.iter().enumerate() {
        let (m, s, lo, hi) = cli::column_summary(&sims.theta, sims.theta_dim(), j);
        println!("{name:>12} {m:>10.4} {s:>10.4} {lo:>10.4} {hi:>10.4}");
    }
    let show = sims.x_dim().min(10);
    println!("\nx (shape {}; first {show} of {} values)", sims.x_shape, sims.x_dim());
    for j in 0..show {
        let (m, s, lo, hi) = cli::column_summary(&sims.x, sims.x_dim(), j);
        println!("{:>12} {m:>10.4} {s:>10.4} {lo:>10.4} {hi:>10.4}", format!("x[{j}]"));
    }
    if let Some(path) = args.opt("output") {
        sims.save(&path)?;
        println!("\nsaved to {path} (Python: safetensors.numpy.load_file)");
    }
    if let Some(path) = args.opt("npz") {
        sims.save_npz(&path)?;
        println!("wrote {path} (Python: numpy.load)");
    }
    if let Some(path) = args.opt("csv") {
        sims.write_csv(&path)?;
        println!("wrote {path}");
    }
    Ok(())
}

fn main() {
    let args = cli::Args::parse(
        USAGE,
        &["model", "simulations", "seed", "threads", "output", "csv", "npz", "checkpoint"],
        &[],
    );
    let model = args.get("model", "two_moons".to_string());
    println!("model: {model}");
    let result = match model.as_str() {
        "two_moons" => run(&models::two_moons::TwoMoons, &args),
        "gaussian_linear" => run(&models::gaussian_linear::GaussianLinear, &args),
        "slcp" => run(&models::slcp::Slcp, &args),
        "groups" => run(&models::hierarchical::Groups, &args),
        "sir" => run(&models::sir::Sir { population: 10_000, days: 60 }, &args),
        other => {
            eprintln!("unknown model {other:?}\n\n{USAGE}");
            std::process::exit(2)
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
