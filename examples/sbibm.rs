//! The benchmark runner: one sbibm task, one method, one observation; prints the wall time
//! of simulation, training and sampling, writes the samples as CSV (a header of parameter
//! names, one row per sample) and, given a reference file, prints C2ST.
//!
//! ```text
//! cargo run --release --example sbibm -- --task two_moons --method npe|nle|nre \
//!     --simulations 10000 --observation-file ../shared/tasks/two_moons/obs1/observation.csv \
//!     --samples 10000 --seed 1 --output samples.csv \
//!     [--density-estimator maf|nsf|mdn] [--nre-variant a|b|c|bnre] [--sampler slice|nuts|mh|sir] \
//!     [--reference-file .../reference_posterior_samples.csv] [--rounds R [--c2st-per-round]]
//!     [--warm-start]
//! ```
//!
//! With `--rounds R` the simulations are split over R rounds of sequential inference for the
//! observation (TSNPE for npe, or SNPE-C with `--sequential apt`; SNLE for nle, SNRE for
//! nre); simulation time is then part of
//! the training time, and `--c2st-per-round` also scores every earlier round's posterior
//! (that scoring then counts in the training time too). Each round trains a new network, or
//! with `--warm-start` continues from the last round's.

mod cli;
mod models;

use std::time::Instant;

use sbi_runtime::prelude::*;

const USAGE: &str = "\
usage: sbibm --task two_moons|gaussian_linear|slcp --method npe|nle|nre --observation-file FILE
             [--simulations N] [--samples M] [--seed S] [--output FILE.csv]
             [--density-estimator maf|nsf|mdn (npe, nle)] [--nre-variant a|b|c|bnre]
             [--sampler slice|nuts|mh|sir (nle, nre)] [--reference-file FILE.csv] [--quiet]
             [--observation-row K (row of a file with several observations, default 1)]
             [--rounds R (sequential: the simulations split over R rounds)] [--c2st-per-round]
             [--sequential tsnpe|apt (npe with rounds)] [--warm-start (rounds)]
             [--device cpu|cuda|cuda:N|metal (needs the cuda or metal feature)]";

fn run<M: Simulator>(model: &M, args: &cli::Args) -> sbi_runtime::Result<()> {
    let n_sims: usize = args.get("simulations", 10_000);
    let n_samples: usize = args.get("samples", 10_000);
    let seed: u64 = args.get("seed", 1);
    let quiet = args.flag("quiet");
    let method = args.get("method", "npe".to_string());
    let obs_file =
        args.opt("observation-file").ok_or_else(|| Error::Config("--observation-file is required".into()))?;
    let table = sbi_runtime::io::read_csv(&obs_file)?;
    let row: usize = args.get("observation-row", 1);
    if !(1..=table.rows()).contains(&row) {
        return Err(Error::Observation(format!(
            "{obs_file} holds {} rows; --observation-row {row} is not one",
            table.rows()
        )));
    }
    let x_o = table.row(row - 1).to_vec();
    let name = args.get("density-estimator", "maf".to_string());
    let estimator = DensityEstimator::from_name(&name)
        .ok_or_else(|| Error::Config(format!("unknown density estimator {name:?}")))?;

    let n_rounds: usize = args.get("rounds", 1);
    let mut rounds = Rounds::split(n_sims, n_rounds).with_seed(seed).with_progress(!quiet);
    if args.flag("warm-start") {
        rounds = rounds.warm_start();
    }
    let t0 = Instant::now();
    let sims = if n_rounds > 1 { None } else { Some(simulate(model, n_sims).seed(seed).progress(!quiet).run()?) };
    let t_sim = t0.elapsed().as_secs_f64();
    let device: sbi_runtime::nn::DeviceChoice = args.get("device", sbi_runtime::nn::DeviceChoice::Cpu);
    let training = TrainConfig::default().with_seed(seed).with_progress(!quiet).with_device(device);
    let sampler_name = args.get("sampler", "slice".to_string());
    let sampler = Sampler::from_name(&sampler_name)
        .ok_or_else(|| Error::Config(format!("unknown sampler {sampler_name:?}")))?
        .with_progress(!quiet);
    let reference = args.opt("reference-file").map(|f| sbi_runtime::io::read_csv(&f)).transpose()?;
    let per_round = reference.is_some() && args.flag("c2st-per-round");
    // Scores an earlier round's draws against the reference.
    let score_round = |k: usize,
                       samples: &Samples,
                       summary: Option<&sbi_runtime::train::TrainingSummary>|
     -> sbi_runtime::Result<()> {
        if let (true, Some(r)) = (per_round, &reference) {
            let score = sbi_runtime::diagnostics::c2st(&samples.values, &r.values, samples.names.len())?;
            let (epochs, seconds) = summary.map_or((0, 0.0), |s| (s.epochs, s.seconds));
            println!("round={k} epochs={epochs} train_s={seconds:.1} c2st={score:.4}");
        }
        Ok(())
    };
    let t1 = Instant::now();
    // Train (one round, or several for x_o), then sample; `diagnostics` describes the
    // sampler's run (MCMC: R-hat and ESS).
    let (samples, summary, diagnostics, t_train, t_sample): Outcome = match method.as_str() {
        "npe" => {
            let sequential = match args.get("sequential", "tsnpe".to_string()).as_str() {
                "tsnpe" => SequentialNpe::Truncated,
                "apt" | "snpe-c" => SequentialNpe::Atomic { atoms: 10 },
                other => return Err(Error::Config(format!("unknown sequential NPE {other:?} (tsnpe or apt)"))),
            };
            let npe = Npe::default().with_estimator(estimator).with_training(training).with_sequential(sequential);
            let posterior = train_once_or_in_rounds(
                &sims,
                |sims| npe.train(model, sims),
                || npe.train_rounds(model, &x_o, &rounds),
                |k, p| score_round(k, &p.sample_flat(&x_o, n_samples)?, p.training_summary()),
            )?;
            let t_train = t1.elapsed().as_secs_f64();
            let t2 = Instant::now();
            let samples = posterior.sample_flat(&x_o, n_samples)?;
            let summary = posterior.training_summary().expect("just trained").clone();
            let diagnostics = format!("acceptance={:.4}", samples.acceptance_rate);
            (samples, summary, diagnostics, t_train, t2.elapsed().as_secs_f64())
        }
        "nle" => {
            let nle = Nle::default().with_estimator(estimator).with_training(training).with_sampler(sampler);
            let posterior = train_once_or_in_rounds(
                &sims,
                |sims| nle.train(model, sims),
                || nle.train_rounds(model, &x_o, &rounds),
                |k, p| score_round(k, &p.sample_flat(&x_o, n_samples)?, p.training_summary()),
            )?;
            sample_potential(&posterior, &x_o, n_samples, t1)?
        }
        "nre" => {
            let name = args.get("nre-variant", "b".to_string());
            let variant =
                NreVariant::from_name(&name).ok_or_else(|| Error::Config(format!("unknown NRE variant {name:?}")))?;
            let nre = Nre::default().with_variant(variant).with_training(training).with_sampler(sampler);
            let posterior = train_once_or_in_rounds(
                &sims,
                |sims| nre.train(model, sims),
                || nre.train_rounds(model, &x_o, &rounds),
                |k, p| score_round(k, &p.sample_flat(&x_o, n_samples)?, p.training_summary()),
            )?;
            sample_potential(&posterior, &x_o, n_samples, t1)?
        }
        other => return Err(Error::Config(format!("unknown method {other:?} (npe, nle or nre)"))),
    };
    println!(
        "simulate_s={t_sim:.3} train_s={t_train:.3} sample_s={t_sample:.3} total_s={:.3} epochs={} ms_per_epoch={:.1} {diagnostics}",
        t_sim + t_train + t_sample,
        summary.epochs,
        1e3 * summary.seconds_per_epoch(),
    );
    if let Some(out) = args.opt("output") {
        samples.write_csv(&out)?;
    }
    if let Some(r) = &reference {
        let score = sbi_runtime::diagnostics::c2st(&samples.values, &r.values, samples.names.len())?;
        println!("c2st={score:.4}");
    }
    Ok(())
}

/// What a method's run yields: draws, training summary, sampler diagnostics, train and
/// sample seconds.
type Outcome = (Samples, sbi_runtime::train::TrainingSummary, String, f64, f64);

/// Trains on `sims` in one round, or (without them) in rounds for the observation; `score`
/// is called with every round's posterior but the last (rounds numbered from 1).
fn train_once_or_in_rounds<Post>(
    sims: &Option<Simulations>,
    once: impl FnOnce(&Simulations) -> sbi_runtime::Result<Post>,
    in_rounds: impl FnOnce() -> sbi_runtime::Result<SequentialRun<Post>>,
    mut score: impl FnMut(usize, &Post) -> sbi_runtime::Result<()>,
) -> sbi_runtime::Result<Post> {
    match sims {
        Some(sims) => once(sims),
        None => {
            let run = in_rounds()?;
            let last = run.rounds.len() - 1;
            for (k, round) in run.rounds.iter().enumerate().take(last) {
                score(k + 1, &round.posterior)?;
            }
            Ok(run.into_posterior())
        }
    }
}

/// Samples an NLE or NRE posterior trained since `t1`.
fn sample_potential<P: Prior, S: sbi_runtime::inference::TrialScore>(
    posterior: &sbi_runtime::inference::PotentialPosterior<P, S>,
    x_o: &[f64],
    n: usize,
    t1: Instant,
) -> sbi_runtime::Result<Outcome> {
    let t_train = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let run = posterior.sample_run(x_o, n)?;
    let t_sample = t2.elapsed().as_secs_f64();
    let summary = posterior.training_summary().expect("just trained").clone();
    let diagnostics = run.describe();
    Ok((run.into_samples(), summary, diagnostics, t_train, t_sample))
}

fn main() {
    sbi_runtime::nn::tune_allocator();
    let args = cli::Args::parse(
        USAGE,
        &[
            "task",
            "method",
            "simulations",
            "observation-file",
            "samples",
            "seed",
            "output",
            "density-estimator",
            "reference-file",
            "observation-row",
            "nre-variant",
            "sampler",
            "rounds",
            "sequential",
            "device",
        ],
        &["quiet", "c2st-per-round", "warm-start"],
    );
    let task = args.get("task", String::new());
    let result = match task.as_str() {
        "two_moons" => run(&models::two_moons::TwoMoons, &args),
        "gaussian_linear" => run(&models::gaussian_linear::GaussianLinear, &args),
        "slcp" => run(&models::slcp::Slcp, &args),
        other => {
            eprintln!("unknown task {other:?}\n\n{USAGE}");
            std::process::exit(2)
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
