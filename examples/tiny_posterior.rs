//! Sequential inference where the posterior is a tiny part of the prior, against exact
//! posteriors: for each model (`models::narrow`: 2- and 5-dimensional boxes observed with
//! noise 10⁻³, and a thin crescent) and each sequential method (TSNPE, SNPE-C, SNLE, SNRE),
//! R rounds of N simulations, and C2ST of every round's posterior against exact draws.
//!
//! ```text
//! cargo run --release --example tiny_posterior -- [--models box2,box5,crescent]
//!     [--methods tsnpe,snpe-c,snpe-c-mixed,snpe-c-atomic,snle,snre] [--rounds 10] [--per-round 1000] [--samples 2000] [--seed 1]
//!     [--atoms 10 (SNPE-C)] [--patience 20 (epochs without a better validation loss)]
//!     [--lr-decays 0 (times the learning rate halves on a plateau before training stops)]
//! ```

mod cli;
mod models;

use models::narrow::{Crescent, NAMES, NarrowBox2, NarrowBox5, reference_posterior, true_theta};
use sbi_runtime::benchmark::{Benchmark, run_benchmark};
use sbi_runtime::prelude::*;

const USAGE: &str = "usage: tiny_posterior [--models box2,box5,crescent] [--methods tsnpe,snpe-c,snpe-c-mixed,snpe-c-atomic,snle,snre] \
                     [--rounds R] [--per-round N] [--samples M] [--seed S] [--atoms K (snpe-c)] [--patience E] [--lr-decays K] [--quiet]";

fn main() {
    cli::finish(run());
}

fn run() -> sbi_runtime::Result<()> {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(
        USAGE,
        &["models", "methods", "rounds", "per-round", "samples", "seed", "atoms", "patience", "lr-decays"],
        &["quiet"],
    );
    let list = |key: &str, all: &str| -> Vec<String> {
        args.get(key, all.to_string()).split(',').map(|s| s.trim().to_string()).collect()
    };
    let models = list("models", &NAMES.join(","));
    let methods = list("methods", "tsnpe,snpe-c,snle");
    let setup = Setup {
        rounds: args.get("rounds", 10),
        per_round: args.get("per-round", 1_000),
        samples: args.get("samples", 2_000),
        seed: args.get("seed", 1),
        atoms: args.get("atoms", 10),
        patience: args.get("patience", TrainConfig::default().stop_after_epochs),
        lr_decays: args.get("lr-decays", 0),
    };
    if args.flag("quiet") {
        set_progress(false);
    }
    let mut summary = Vec::new();
    for name in &models {
        for method in &methods {
            let scores = match name.as_str() {
                "box2" => one(&NarrowBox2, name, method, &setup)?,
                "box5" => one(&NarrowBox5, name, method, &setup)?,
                "crescent" => one(&Crescent, name, method, &setup)?,
                other => return Err(Error::Config(format!("unknown model {other:?} ({})", NAMES.join(", ")))),
            };
            let line = scores.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>().join(" ");
            println!("{name} {method}: C2ST by round {line}");
            summary.push(format!("{name:>9} {method:>7} {:>6.3}", scores.last().copied().unwrap_or(f64::NAN)));
        }
    }
    println!("\n{:>9} {:>7} {:>6}", "model", "method", "C2ST");
    for line in summary {
        println!("{line}");
    }
    Ok(())
}

/// The rounds, the draws scored, the seed, SNPE-C's atoms, and the training's patience and
/// learning-rate decays.
#[derive(Clone, Copy)]
struct Setup {
    rounds: usize,
    per_round: usize,
    samples: usize,
    seed: u64,
    atoms: usize,
    patience: usize,
    lr_decays: usize,
}

/// C2ST of each round's posterior for one model and method.
fn one<M: Simulator>(model: &M, name: &str, method: &str, setup: &Setup) -> sbi_runtime::Result<Vec<f64>> {
    let Setup { rounds, per_round, samples, seed, atoms, patience, lr_decays } = *setup;
    // The observation: one simulation at the model's true parameters, on its own stream.
    let x_o = simulate_from_flat(model, &true_theta(name)).seed(seed + 1_000).progress(false).run()?.x_row(0).to_vec();
    let bench = Benchmark::new(x_o.clone())
        .with_simulations(rounds * per_round)
        .with_rounds(rounds)
        .with_samples(samples)
        .with_seed(seed)
        .with_reference(reference_posterior(name, &x_o, samples, seed))
        .with_round_scores();
    let training = TrainConfig::default().with_seed(seed).with_stop_after_epochs(patience).with_lr_decays(lr_decays);
    let result = match method {
        "tsnpe" => run_benchmark(model, &Npe::default().with_training(training), &bench)?,
        "snpe-c" | "apt" => {
            let apt = SequentialNpe::Atomic { atoms, combined: true, same_round: true };
            run_benchmark(model, &Npe::default().with_training(training).with_sequential(apt), &bench)?
        }
        "snpe-c-mixed" => {
            // Atoms from all rounds' pairs (as `sbi`) rather than from the pair's own round.
            let apt = SequentialNpe::Atomic { atoms, combined: true, same_round: false };
            run_benchmark(model, &Npe::default().with_training(training).with_sequential(apt), &bench)?
        }
        "snpe-c-atomic" => {
            // The atomic loss alone, without the combined loss's prior term (as `sbi`'s default).
            let apt = SequentialNpe::Atomic { atoms, combined: false, same_round: false };
            run_benchmark(model, &Npe::default().with_training(training).with_sequential(apt), &bench)?
        }
        "snle" => run_benchmark(model, &Nle::default().with_training(training), &bench)?,
        "snre" => run_benchmark(model, &Nre::default().with_training(training), &bench)?,
        other => {
            return Err(Error::Config(format!(
                "unknown method {other:?} (tsnpe, snpe-c, snpe-c-mixed, snpe-c-atomic, snle, snre)"
            )));
        }
    };
    eprintln!("{name} {method}: {result}");
    let mut scores = result.round_c2st.clone();
    scores.extend(result.c2st);
    Ok(scores)
}
