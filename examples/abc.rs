//! Approximate Bayesian computation on a model whose posterior is known: θ ~ N(0, I₂) and
//! x ~ N(θ, 0.5²·I₂), so p(θ | x_o) = N(0.8·x_o, 0.2·I). Rejection ABC on a table of prior
//! simulations and SMC-ABC at the same budget, each plain and with the linear regression
//! adjustment; prints each one's means and variances beside the exact ones, its tolerances,
//! simulations and time, and writes the marginals of SMC-ABC's draws over exact draws.
//!
//! ```text
//! cargo run --release --example abc -- [--simulations 10000] [--seed 1] [--plot abc_marginals.png]
//! ```

mod cli;

use std::time::Instant;

use sbi_runtime::inference::abc::AbcRun;
use sbi_runtime::prelude::*;

const USAGE: &str = "usage: abc [--simulations N] [--seed S] [--plot FILE.png|FILE.svg] [--quiet]";
const NOISE: f64 = 0.5;
const X_O: [f64; 2] = [1.0, -0.5];

/// θ ~ N(0, I₂), x ~ N(θ, 0.5²·I₂).
#[simulator]
fn gaussian(rng: &mut impl Rng) -> [f64; 2] {
    let theta = sample!(Normal(0.0, 1.0); 2);
    theta.map(|t| t + NOISE * rng.sample::<f64, _>(StandardNormal))
}

/// The exact posterior's mean and variance of each coordinate.
fn exact() -> ([f64; 2], f64) {
    let shrink = 1.0 / (1.0 + NOISE * NOISE);
    (X_O.map(|x| shrink * x), NOISE * NOISE * shrink)
}

fn moments(values: &[f64]) -> ([f64; 2], [f64; 2]) {
    let n = (values.len() / 2) as f64;
    let mean = [0, 1].map(|j| values.iter().skip(j).step_by(2).sum::<f64>() / n);
    let var = [0, 1].map(|j| values.iter().skip(j).step_by(2).map(|v| (v - mean[j]).powi(2)).sum::<f64>() / n);
    (mean, var)
}

fn report(name: &str, run: &AbcRun, seconds: f64) {
    let (mean, var) = moments(&run.samples.values);
    println!(
        "{name:<28} mean [{:+.3}, {:+.3}]  variance [{:.3}, {:.3}]  final ε {:.3}  generations {}  simulations {}  {:.3} s",
        mean[0],
        mean[1],
        var[0],
        var[1],
        run.epsilons.last().copied().unwrap_or(f64::NAN),
        run.epsilons.len(),
        run.simulations,
        seconds
    );
}

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    let args = cli::Args::parse(USAGE, &["simulations", "seed", "plot"], &["quiet"]);
    let n: usize = args.get("simulations", 10_000);
    let seed: u64 = args.get("seed", 1);
    let quiet = args.flag("quiet");
    let draws = 10_000;
    let (mean, var) = exact();
    println!(
        "exact posterior              mean [{:+.3}, {:+.3}]  variance [{var:.3}, {var:.3}]  (x_o = {X_O:?}, {n} simulations)",
        mean[0], mean[1]
    );

    let start = Instant::now();
    let table = simulate(&Gaussian, n).seed(seed).progress(!quiet).run()?;
    let simulate_s = start.elapsed().as_secs_f64();
    for (name, adjustment) in [("rejection ABC (1%)", None), ("rejection ABC (1%), adjusted", Some(Adjustment::Linear))]
    {
        let t = Instant::now();
        let posterior = RejectionAbc::default().with_adjustment(adjustment).train(&Gaussian, &table)?;
        let run = posterior.run(&X_O, draws, seed)?;
        report(name, &run, simulate_s + t.elapsed().as_secs_f64());
    }
    let smc = SmcAbc::default().with_budget(n).with_progress(!quiet);
    let mut last = None;
    for (name, adjustment) in [("SMC-ABC", None), ("SMC-ABC, adjusted", Some(Adjustment::Linear))] {
        let t = Instant::now();
        let run = smc.clone().with_adjustment(adjustment).run(&Gaussian, &X_O, draws, seed)?;
        report(name, &run, t.elapsed().as_secs_f64());
        for w in run.warnings() {
            println!("  warning: {w}");
        }
        last = Some(run);
    }
    if let (Some(path), Some(run)) = (args.opt("plot"), last) {
        // Exact draws for the outlines.
        let mut rng = sbi_runtime::rng::stream_rng(seed, 0);
        let reference: Vec<f64> = (0..draws)
            .flat_map(|_| [0, 1].map(|j| mean[j] + var.sqrt() * rng.sample::<f64, _>(StandardNormal)))
            .collect();
        sbi_runtime::plot::marginal_plot(&path, &run.samples.names, &run.samples.values, Some(&reference))?;
        println!("wrote {path}: SMC-ABC's adjusted draws (bars) over exact draws (outlines)");
    }
    Ok(())
}
