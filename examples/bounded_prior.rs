//! NPE on a bounded prior, trained on θ itself (`ThetaSpace::Constrained`, `sbi`'s way) and
//! in the prior's unconstrained space (`ThetaSpace::Unconstrained`): for each of K
//! observations, the share of raw draws inside the prior (rejection sampling's acceptance)
//! and C2ST against the exact posterior. The model is `models::uniform_box`: ten
//! Uniform(−1, 1) parameters observed with noise σ = 0.5, so the posterior is a product of
//! truncated normals with much of its mass at the box's edges.
//!
//! ```text
//! cargo run --release --example bounded_prior -- [--simulations N] [--observations K] [--samples M] [--seed S]
//! ```

mod cli;
mod models;

use models::uniform_box::{UniformBox, reference_posterior};
use sbi_runtime::diagnostics::c2st;
use sbi_runtime::prelude::*;
use sbi_runtime::samplers::SamplerRun;

const USAGE: &str = "usage: bounded_prior [--simulations N] [--observations K] [--samples M] [--seed S]";

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(USAGE, &["simulations", "observations", "samples", "seed"], &[]);
    let n_sims: usize = args.get("simulations", 10_000);
    let k: usize = args.get("observations", 10);
    let n_samples: usize = args.get("samples", 10_000);
    let seed: u64 = args.get("seed", 1);

    let sims = simulate(&UniformBox, n_sims).seed(seed).run()?;
    // Observations from the prior predictive, on streams training never used.
    let observations = simulate(&UniformBox, k).seed(seed + 1_000).progress(false).run()?;
    println!("{:>13} {:>4} {:>11} {:>7}", "theta space", "obs", "acceptance", "C2ST");
    let mut means = Vec::new();
    for space in [ThetaSpace::Constrained, ThetaSpace::Unconstrained] {
        let npe = Npe::default().with_theta_space(space).with_training(TrainConfig::default().with_seed(seed));
        let posterior = npe.train(&UniformBox, &sims)?;
        let (mut sum_c2st, mut sum_acc) = (0.0, 0.0);
        for i in 0..k {
            let x_o = observations.x_row(i);
            let run = posterior.sample_run(x_o, n_samples)?;
            let acceptance = match &run {
                SamplerRun::Rejection(r) => r.acceptance_rate,
                _ => f64::NAN,
            };
            let samples = run.into_samples();
            let score =
                c2st(&samples.values, &reference_posterior(x_o, n_samples, seed + i as u64), samples.names.len())?;
            println!("{space:>13} {:>4} {acceptance:>11.3} {score:>7.3}", i + 1);
            sum_c2st += score;
            sum_acc += acceptance;
        }
        means.push((space, sum_acc / k as f64, sum_c2st / k as f64));
    }
    println!();
    for (space, acc, score) in means {
        println!("{space:>13} mean {acc:>11.3} {score:>7.3}");
    }
    Ok(())
}
