//! A hierarchical prior with an invalid region: τ ~ Normal(1, 1), θ ~ Normal(0, τ). Where
//! τ ≤ 0 the prior is undefined (its density is zero): simulation excludes such draws, and
//! every sampler treats them as outside the support. Prints each method's posterior mean ±
//! sd of (τ, θ) beside the exact posterior (a grid: the model is Gaussian given τ).
//!
//! ```text
//! cargo run --release --example hierarchical -- [--simulations N] [--samples M] [--seed S]
//! ```

mod cli;
mod models;

use std::time::Instant;

use models::hierarchical::{ScaleMixture, scale_mixture_moments};
use sbi_runtime::prelude::*;

fn row(what: &str, values: &[f64], seconds: f64) {
    let (t, ts, _, _) = cli::column_summary(values, 2, 0);
    let (h, hs, _, _) = cli::column_summary(values, 2, 1);
    println!("{what:<26} {:>14} {:>14} {seconds:>8.2}", format!("{t:.3} ± {ts:.3}"), format!("{h:.3} ± {hs:.3}"));
}

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(
        "usage: hierarchical [--simulations N] [--samples M] [--seed S]",
        &["simulations", "samples", "seed"],
        &[],
    );
    let n: usize = args.get("simulations", 10_000);
    let m: usize = args.get("samples", 5_000);
    let seed: u64 = args.get("seed", 1);
    let x_o = [1.5, 1.7];
    let exact = scale_mixture_moments(&x_o);
    let sims = simulate(&ScaleMixture, n).seed(seed).run()?;
    println!(
        "{} simulations: {} valid, {} excluded because Normal(0, τ) is invalid at τ ≤ 0\n",
        n,
        sims.len(),
        sims.invalid_counts().prior
    );
    println!("{:<26} {:>14} {:>14} {:>8}", "x_o = (1.5, 1.7)", "τ", "θ", "seconds");
    println!(
        "{:<26} {:>14} {:>14}",
        "exact",
        format!("{:.3} ± {:.3}", exact[0].0, exact[0].1),
        format!("{:.3} ± {:.3}", exact[1].0, exact[1].1)
    );
    let training = TrainConfig::default().with_seed(seed);
    let prior = ScaleMixture.prior();

    let t = Instant::now();
    let npe = Npe::default().with_training(training.clone()).train(&ScaleMixture, &sims)?;
    row("NPE (direct)", &npe.sample_flat(&x_o, m)?.values, t.elapsed().as_secs_f64());

    let t = Instant::now();
    let nle = Nle::default().with_training(training.clone()).train(&ScaleMixture, &sims)?;
    let trained = t.elapsed().as_secs_f64();
    for (name, sampler) in [
        ("NLE + slice sampling", Sampler::Mcmc(McmcConfig::default())),
        ("NLE + NUTS", Sampler::Mcmc(McmcConfig::nuts())),
        ("NLE + importance sampling", Sampler::Importance(ImportanceConfig::default())),
    ] {
        let t = Instant::now();
        let run = sampler.with_seed(seed).run(&prior, &nle.potential(&x_o)?, m)?;
        row(name, &run.samples().values, trained + t.elapsed().as_secs_f64());
        println!("{:<26} {}", "", run.describe());
    }

    let t = Instant::now();
    let nre = Nre::default().with_training(training).train(&ScaleMixture, &sims)?;
    row("NRE + slice sampling", &nre.sample_flat(&x_o, m)?.values, t.elapsed().as_secs_f64());
    Ok(())
}
