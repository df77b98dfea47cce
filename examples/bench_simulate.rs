//! Benchmark: simulations per second for two_moons, slcp, and two models with large settings
//! (a regression on a 100 × 10 design matrix, and noise resampled from a table of 100 000
//! residuals) with 1 and 2 threads, measured side by side in one run (best of three), and a
//! check that both thread counts give bit-identical results.
//!
//! ```text
//! cargo run --release --example bench_simulate
//! ```

mod cli;
mod models;

use std::time::Instant;

use sbi_runtime::prelude::*;

fn bench<M: Simulator>(name: &str, model: &M, n: usize) -> sbi_runtime::Result<()> {
    let mut results = Vec::new();
    for threads in [1, 2] {
        let mut best = f64::INFINITY;
        let mut sims = None;
        for _ in 0..3 {
            let start = Instant::now();
            let s = simulate(model, n).seed(7).threads(threads).progress(false).run()?;
            best = best.min(start.elapsed().as_secs_f64());
            sims = Some(s);
        }
        println!("{name:>10} {threads:>8} {n:>12} {:>10.1} {:>14.0}", best * 1e3, n as f64 / best);
        results.push(sims.expect("ran at least once"));
    }
    let same = results[0] == results[1];
    println!("{name:>10} 1 and 2 threads bit-identical: {same}");
    assert!(same, "thread count changed the result");
    Ok(())
}

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    let args = cli::Args::parse("usage: bench_simulate [--n N]", &["n"], &[]);
    let n = args.get("n", 1_000_000usize);
    println!("{:>10} {:>8} {:>12} {:>10} {:>14}", "model", "threads", "simulations", "best ms", "sims/second");
    bench("two_moons", &models::two_moons::TwoMoons, n)?;
    bench("slcp", &models::slcp::Slcp, n)?;
    let regression = models::regression::Regression { design: models::regression::design(), noise: 0.5 };
    bench("regression", &regression, n / 10)?;
    let empirical = models::regression::EmpiricalNoise { residuals: models::regression::residuals() };
    bench("residuals", &empirical, n / 10)?;
    Ok(())
}
