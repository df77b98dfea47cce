//! iid trials: one parameter set observed through several independent trials.
//!
//! The simulator returns one trial `x ~ N(μ, σ)`. NLE and NRE learn the per-trial
//! likelihood (ratio) once, from single-trial simulations; an observation of K trials then
//! multiplies K per-trial terms, so the same trained model serves K = 1, 5, 20 and 50. The
//! exact posterior, computed on a grid, shows how close each gets as the posterior narrows.
//! Both trained models are saved to `DIR`; NLE is also loaded back from its file and sampled
//! with NUTS (slice sampling is the default).
//!
//! ```text
//! cargo run --release --example iid_trials -- [--simulations N] [--samples M] [--seed S] [--out DIR]
//! ```

mod cli;
mod models;

use std::time::Instant;

use models::measurement::{Measurement, MeasurementParams, exact_moments};
use sbi_runtime::prelude::*;

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(
        "usage: iid_trials [--simulations N] [--samples M] [--seed S] [--out DIR]",
        &["simulations", "samples", "seed", "out"],
        &[],
    );
    let n_sims: usize = args.get("simulations", 10_000);
    let n_samples: usize = args.get("samples", 5_000);
    let seed: u64 = args.get("seed", 1);
    let out = std::path::PathBuf::from(args.get("out", "target/iid_trials".to_string()));
    std::fs::create_dir_all(&out).map_err(|e| Error::Io { path: out.clone(), source: e })?;

    // The truth and 50 trials simulated from it.
    let truth = MeasurementParams { mu: 1.2, sigma: 0.7 };
    let trials: Vec<f64> = simulate_from(&Measurement, &[truth; 50]).seed(seed + 1000).progress(false).run()?.x;
    println!("truth: mu = {}, sigma = {}; 50 trials simulated", truth.mu, truth.sigma);

    let t0 = Instant::now();
    let sims = simulate(&Measurement, n_sims).seed(seed).run()?;
    let training = TrainConfig::default().with_seed(seed);
    let nle = Nle::default().with_training(training.clone()).train(&Measurement, &sims)?;
    let nre = Nre::default().with_training(training).train(&Measurement, &sims)?;
    println!("simulated {n_sims} single trials and trained NLE and NRE in {:.1} s", t0.elapsed().as_secs_f64());
    // Trained models are files: save both, and sample NLE's also with NUTS from its file.
    let (nle_file, nre_file) = (out.join("nle.safetensors"), out.join("nre.safetensors"));
    nle.save(&nle_file)?;
    nre.save(&nre_file)?;
    let nle_nuts =
        NlePosterior::load(&nle_file, &Measurement)?.with_sampler(Sampler::Mcmc(McmcConfig::nuts()).with_seed(seed));
    println!("saved {} and {}\n", nle_file.display(), nre_file.display());

    println!("{:>7} {:>8} {:>22} {:>22} {:>10}", "trials", "method", "mu: mean ± sd", "sigma: mean ± sd", "seconds");
    for k in [1usize, 5, 20, 50] {
        let x = &trials[..k];
        let exact = exact_moments(x);
        let row = |name: &str, m: [(f64, f64); 2], secs: Option<f64>| {
            println!(
                "{k:>7} {name:>8} {:>22} {:>22} {:>10}",
                format!("{:.3} ± {:.3}", m[0].0, m[0].1),
                format!("{:.3} ± {:.3}", m[1].0, m[1].1),
                secs.map_or(String::new(), |s| format!("{s:.2}"))
            )
        };
        row("exact", exact, None);
        for (name, samples, secs) in [
            {
                let t = Instant::now();
                ("NLE", nle.sample_flat(x, n_samples)?, t.elapsed().as_secs_f64())
            },
            {
                let t = Instant::now();
                ("NLE/NUTS", nle_nuts.sample_flat(x, n_samples)?, t.elapsed().as_secs_f64())
            },
            {
                let t = Instant::now();
                ("NRE", nre.sample_flat(x, n_samples)?, t.elapsed().as_secs_f64())
            },
        ] {
            let (m, c) = (samples.mean(), samples.covariance());
            row(name, [(m[0], c[0].sqrt()), (m[1], c[3].sqrt())], Some(secs));
            if k == 50 && name == "NLE" {
                let svg = out.join("nle_50_trials.svg");
                sbi_runtime::plot::pair_plot(&svg, &samples.names, &samples.values, None)?;
                println!("{:>7} wrote {}", "", svg.display());
            }
        }
    }
    Ok(())
}
