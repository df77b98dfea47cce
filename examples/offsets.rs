//! Large offsets: observations near 10⁷ and parameters near 10⁸ must give the same
//! posterior as the same model near zero. Prints each method's posterior mean ± sd per
//! coordinate for the model without and with the offset, beside the exact posterior.
//!
//! ```text
//! cargo run --release --example offsets -- [--simulations N] [--samples M] [--seed S]
//! ```

mod cli;
mod models;

use models::offset::{FarPrior, NOISE, Shifted, truncated_normal_moments};
use sbi_runtime::prelude::*;

fn summary(values: &[f64], shift: f64) -> String {
    (0..2)
        .map(|j| {
            let (m, sd, _, _) = cli::column_summary(values, 2, j);
            format!("{:>8.3} ± {:.3}", m - shift, sd)
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// Trains NPE, NLE and NRE on `model` and prints their posteriors at `x_o` (θ shown minus `shift`).
fn compare<M: Simulator>(
    label: &str,
    model: &M,
    x_o: &[f64],
    shift: f64,
    n: usize,
    m: usize,
    seed: u64,
) -> sbi_runtime::Result<()> {
    let sims = simulate(model, n).seed(seed).progress(false).run()?;
    let training = TrainConfig::default().with_seed(seed).with_progress(false);
    let outcome = |name: &str, r: sbi_runtime::Result<Samples>| match r {
        Ok(s) => println!("{label:<33} {name:<4} {}", summary(&s.values, shift)),
        Err(e) => println!("{label:<33} {name:<4} error: {e}"),
    };
    let npe = Npe::default().with_training(training.clone()).train(model, &sims);
    outcome("NPE", npe.and_then(|p| p.sample_flat(x_o, m)));
    let nle = Nle::default().with_training(training.clone()).train(model, &sims);
    outcome(
        "NLE",
        nle.and_then(|p| {
            p.with_sampler(Sampler::Mcmc(McmcConfig::default().with_progress(false).with_seed(seed)))
                .sample_flat(x_o, m)
        }),
    );
    let nre = Nre::default().with_training(training).train(model, &sims);
    outcome(
        "NRE",
        nre.and_then(|p| {
            p.with_sampler(Sampler::Mcmc(McmcConfig::default().with_progress(false).with_seed(seed)))
                .sample_flat(x_o, m)
        }),
    );
    Ok(())
}

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(
        "usage: offsets [--simulations N] [--samples M] [--seed S]",
        &["simulations", "samples", "seed"],
        &[],
    );
    let n: usize = args.get("simulations", 10_000);
    let m: usize = args.get("samples", 5_000);
    let seed: u64 = args.get("seed", 1);
    let obs = [0.3, -0.5];
    let exact: Vec<(f64, f64)> = obs.iter().map(|&x| truncated_normal_moments(x, NOISE, -1.0, 1.0)).collect();
    println!("{:<33} {:<4} {:>16}  {:>16}", "model", "", "θ₁ mean ± sd", "θ₂ mean ± sd");
    println!(
        "{:<33} {:<4} {:>8.3} ± {:.3}  {:>8.3} ± {:.3}",
        "exact, x_o − offset = (0.3, −0.5)", "", exact[0].0, exact[0].1, exact[1].0, exact[1].1
    );
    for offset in [0.0, 1e7] {
        let x_o = obs.map(|v| v + offset);
        compare(&format!("x offset {offset:e}"), &Shifted { offset }, &x_o, 0.0, n, m, seed)?;
    }
    // θ on [base, base + 1]², observed as θ − base + noise.
    let far = [0.3, 0.7];
    let exact: Vec<(f64, f64)> = far.iter().map(|&x| truncated_normal_moments(x, NOISE, 0.0, 1.0)).collect();
    println!(
        "{:<33} {:<4} {:>8.3} ± {:.3}  {:>8.3} ± {:.3}",
        "exact, x_o = (0.3, 0.7)", "", exact[0].0, exact[0].1, exact[1].0, exact[1].1
    );
    for base in [0.0, 1e8] {
        compare(&format!("θ offset {base:e}"), &FarPrior { base }, &far, base, n, m, seed)?;
    }
    Ok(())
}
