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
             [--simulations N] [--samples M] [--seed S] [--output FILE.csv|FILE.npy|FILE.npz]
             [--density-estimator maf|nsf|mdn (npe, nle)] [--nre-variant a|b|c|bnre]
             [--sampler slice|nuts|mh|sir (nle, nre)] [--reference-file FILE.csv] [--quiet]
             [--observation-row K (row of a file with several observations, default 1)]
             [--rounds R (sequential: the simulations split over R rounds)] [--c2st-per-round]
             [--sequential tsnpe|apt (npe with rounds)] [--warm-start (rounds)]
             [--device cpu|cuda|cuda:N|metal (needs the cuda or metal feature)]
             [--theta-space constrained|unconstrained (npe)]";

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
    let estimator = name.parse::<DensityEstimator>()?;

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
    let sampler = sampler_name.parse::<Sampler>()?.with_progress(!quiet);
    let reference = args.opt("reference-file").map(|f| sbi_runtime::io::read_csv(&f)).transpose()?;
    let per_round = if args.flag("c2st-per-round") { reference.as_ref() } else { None };
    let job = Job { model, sims: sims.as_ref(), rounds: &rounds, x_o: &x_o, n_samples, per_round };
    let t1 = Instant::now();
    // One generic path for every method: train (once, or in rounds for x_o), then sample.
    let (samples, summary, diagnostics, t_train, t_sample): Outcome = match method.as_str() {
        "npe" => {
            let sequential = match args.get("sequential", "tsnpe".to_string()).as_str() {
                "tsnpe" => SequentialNpe::Truncated,
                "apt" | "snpe-c" => SequentialNpe::Atomic { atoms: 10 },
                other => return Err(Error::Config(format!("unknown sequential NPE {other:?} (tsnpe or apt)"))),
            };
            let space: ThetaSpace = args.get("theta-space", ThetaSpace::default());
            let npe = Npe::default().with_estimator(estimator).with_training(training).with_sequential(sequential);
            job.run(&npe.with_theta_space(space), t1)?
        }
        "nle" => {
            job.run(&Nle::default().with_estimator(estimator).with_training(training).with_sampler(sampler), t1)?
        }
        "nre" => {
            let name = args.get("nre-variant", "b".to_string());
            let variant = name.parse::<NreVariant>()?;
            job.run(&Nre::default().with_variant(variant).with_training(training).with_sampler(sampler), t1)?
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
        // By extension: numpy's .npy or .npz, CSV otherwise.
        match std::path::Path::new(&out).extension().and_then(|e| e.to_str()) {
            Some("npy") => samples.write_npy(&out)?,
            Some("npz") => samples.write_npz(&out)?,
            _ => samples.write_csv(&out)?,
        }
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

/// One benchmark run: the model, its simulations (none for sequential rounds), the rounds,
/// the observation, the number of draws, and the reference posterior to score each earlier
/// round against (`--c2st-per-round`).
struct Job<'a, M: Simulator> {
    model: &'a M,
    sims: Option<&'a Simulations>,
    rounds: &'a Rounds,
    x_o: &'a [f64],
    n_samples: usize,
    per_round: Option<&'a sbi_runtime::io::Table>,
}

impl<M: Simulator> Job<'_, M> {
    /// Trains `method` (once on the simulations, or in rounds for `x_o`) and samples its
    /// posterior; `t1` is when training started.
    fn run<T: Method>(&self, method: &T, t1: Instant) -> sbi_runtime::Result<Outcome> {
        let posterior = match self.sims {
            Some(sims) => method.train(self.model, sims)?,
            None => {
                let run = method.train_rounds(self.model, self.x_o, self.rounds)?;
                let last = run.rounds.len() - 1;
                for (k, round) in run.rounds.iter().enumerate().take(last) {
                    self.score_round(k + 1, &round.posterior)?;
                }
                run.into_posterior()
            }
        };
        let t_train = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        let run = posterior.sample_run(self.x_o, self.n_samples)?;
        let t_sample = t2.elapsed().as_secs_f64();
        let summary = posterior.training_summary().expect("just trained").clone();
        let diagnostics = run.describe();
        Ok((run.into_samples(), summary, diagnostics, t_train, t_sample))
    }

    /// Scores an earlier round's posterior against the reference (`round` from 1).
    fn score_round<P: Posterior>(&self, round: usize, posterior: &P) -> sbi_runtime::Result<()> {
        if let Some(reference) = self.per_round {
            let samples = posterior.sample_flat(self.x_o, self.n_samples)?;
            let score = sbi_runtime::diagnostics::c2st(&samples.values, &reference.values, samples.names.len())?;
            let (epochs, seconds) = posterior.training_summary().map_or((0, 0.0), |s| (s.epochs, s.seconds));
            println!("round={round} epochs={epochs} train_s={seconds:.1} c2st={score:.4}");
        }
        Ok(())
    }
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
            "theta-space",
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
