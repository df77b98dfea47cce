//! The benchmark runner: one sbibm task, one method, one observation; prints the wall time
//! of simulation, training and sampling, writes the samples as CSV (a header of parameter
//! names, one row per sample) and, given a reference file, prints C2ST. The work is the
//! library's [`run_benchmark`], which takes any model: to benchmark your own, add it to the
//! `match` in `main` (or call `run_benchmark` from your own program).
//!
//! ```text
//! cargo run --release --example sbibm -- --task two_moons --method npe|nle|nre|fmpe|npse|rej-abc|smc-abc \
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

use sbi_runtime::benchmark::{Benchmark, run_benchmark, run_benchmark_posterior};
use sbi_runtime::estimators::{FlowMatchingConfig, FlowSolver, ScoreConfig, ScoreSampling};
use sbi_runtime::prelude::*;

const USAGE: &str = "\
usage: sbibm --task two_moons|gaussian_linear|slcp --method npe|nle|nre|fmpe|npse|rej-abc|smc-abc --observation-file FILE
             [--simulations N] [--samples M] [--seed S] [--output FILE.csv|FILE.npy|FILE.npz]
             [--density-estimator maf|nsf|mdn (npe, nle)] [--nre-variant a|b|c|bnre]
             [--sampler slice|nuts|mh|sir (nle, nre)] [--reference-file FILE.csv] [--quiet]
             [--observation-row K (row of a file with several observations, default 1)]
             [--rounds R (sequential: the simulations split over R rounds)] [--c2st-per-round]
             [--sequential tsnpe|apt|apt-atomic (npe with rounds)] [--warm-start (rounds)]
             [--device cpu|cuda|cuda:N|metal (needs the cuda or metal feature)]
             [--theta-space constrained|unconstrained (npe)] [--lr-decays K (halvings on plateaus; fmpe, npse: 0)]
             [--lr-patience E (epochs without improvement before each halving: the stopping patience)]
             [--lr-anneal E (fmpe, npse: epochs of the final annealing, 20; 0 none)]
             [--ema D (fmpe, npse: decay of the parameters' moving average, 0.995; 0 none)]
             [--stop-after E (epochs without improvement before stopping or annealing: 20; fmpe, npse: 10)]
             [--time-prior-exponent A (fmpe: 4)] [--uniform-share W (fmpe: 0.5)] [--sde ve|vp|subvp (npse)]
             [--control-variate on|off (npse: on)]
             [--score-sampling sde|ode (npse)] [--sde-steps N (npse)]
             [--fixed-steps N (fmpe, npse: Runge-Kutta steps instead of the adaptive solver)]
             [--batch-size B (200)] [--learning-rate L (0.0005)]
             [--adjustment linear|heteroscedastic|none (rej-abc, smc-abc: linear)]
             [--abc-quantile Q (rej-abc: share accepted, 0.01; smc-abc: ε's quantile, 0.5)]
             [--particles N (smc-abc: 200)] [--initial-factor F (smc-abc: 2)] [--kernel gaussian|olcm (smc-abc: gaussian)]
             [--kernel-scale S (smc-abc gaussian: covariance factor, 2)]
             [--ess-min R (smc-abc: resample below this share of particles, 0.5; 0 never)]
             [--resample kde|particles (rej-abc, smc-abc: kde)]
             [--abc-distance mad|sd|l2|l1|mahalanobis (rej-abc, smc-abc: Euclidean after MAD scaling)]";

/// Builds the benchmark and the chosen method from the arguments, then runs
/// [`run_benchmark`]: nothing here depends on the task, so any model plugs in.
fn run<M: Simulator>(model: &M, args: &cli::Args) -> sbi_runtime::Result<()> {
    let seed: u64 = args.get("seed", 1);
    let quiet = args.flag("quiet");
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
    let mut bench = Benchmark::new(table.row(row - 1).to_vec())
        .with_simulations(args.get("simulations", 10_000))
        .with_samples(args.get("samples", 10_000))
        .with_seed(seed)
        .with_rounds(args.get("rounds", 1))
        .with_progress(!quiet);
    if args.flag("warm-start") {
        bench = bench.with_warm_start();
    }
    if let Some(file) = args.opt("reference-file") {
        bench = bench.with_reference(sbi_runtime::io::read_csv(&file)?.values);
    }
    if args.flag("c2st-per-round") {
        bench = bench.with_round_scores();
    }

    let estimator = args.get("density-estimator", "maf".to_string()).parse::<DensityEstimator>()?;
    let device: sbi_runtime::nn::DeviceChoice = args.get("device", sbi_runtime::nn::DeviceChoice::Cpu);
    let defaults = TrainConfig::default();
    let training = defaults
        .clone()
        .with_seed(seed)
        .with_progress(!quiet)
        .with_device(device)
        .with_batch_size(args.get("batch-size", defaults.batch_size))
        .with_learning_rate(args.get("learning-rate", defaults.learning_rate))
        .with_stop_after_epochs(args.get("stop-after", defaults.stop_after_epochs));
    // The schedule (halvings, their patience, annealing, averaging, stopping patience):
    // FMPE's and NPSE's defaults unless given; 0 turns annealing or averaging off (any other
    // decay outside (0, 1) is the training's `Error::Config`).
    let field_training = |defaults: &TrainConfig| {
        let patience = defaults.lr_patience.unwrap_or(defaults.stop_after_epochs);
        let anneal = args.get("lr-anneal", defaults.lr_anneal_epochs.unwrap_or(0));
        let ema = args.get("ema", defaults.ema_decay.unwrap_or(0.0));
        training
            .clone()
            .with_stop_after_epochs(args.get("stop-after", defaults.stop_after_epochs))
            .with_lr_decays(args.get("lr-decays", defaults.lr_decays))
            .with_lr_patience(Some(args.get("lr-patience", patience)))
            .with_lr_anneal_epochs((anneal > 0).then_some(anneal))
            .with_ema_decay((ema != 0.0).then_some(ema))
    };
    let sampler = args.get("sampler", "slice".to_string()).parse::<Sampler>()?.with_progress(!quiet);
    let result = match args.get("method", "npe".to_string()).as_str() {
        "npe" => {
            let sequential = match args.get("sequential", "tsnpe".to_string()).as_str() {
                "tsnpe" => SequentialNpe::Truncated,
                "apt" | "snpe-c" => SequentialNpe::apt(),
                "apt-atomic" => SequentialNpe::Atomic { atoms: 10, combined: false, same_round: false },
                other => {
                    return Err(Error::Config(format!("unknown sequential NPE {other:?} (tsnpe, apt or apt-atomic)")));
                }
            };
            let space: ThetaSpace = args.get("theta-space", ThetaSpace::default());
            let npe = Npe::default()
                .with_estimator(estimator)
                .with_training(training)
                .with_sequential(sequential)
                .with_theta_space(space);
            run_benchmark(model, &npe, &bench)?
        }
        "nle" => {
            let nle = Nle::default().with_estimator(estimator).with_training(training).with_sampler(sampler);
            run_benchmark(model, &nle, &bench)?
        }
        "nre" => {
            let variant = args.get("nre-variant", "b".to_string()).parse::<NreVariant>()?;
            let nre = Nre::default().with_variant(variant).with_training(training).with_sampler(sampler);
            run_benchmark(model, &nre, &bench)?
        }
        "fmpe" => {
            let d = FlowMatchingConfig::default();
            let flow = FlowMatchingConfig {
                time_prior_exponent: args.get("time-prior-exponent", d.time_prior_exponent),
                uniform_share: args.get("uniform-share", d.uniform_share),
                ..d
            };
            let fmpe = sbi_runtime::inference::Fmpe::default();
            let training = field_training(&fmpe.training);
            let fmpe = fmpe.with_flow(flow).with_solver(solver(args)).with_training(training);
            run_benchmark(model, &fmpe, &bench)?
        }
        "npse" => {
            let score = match args.get("sde", "ve".to_string()).as_str() {
                "ve" => ScoreConfig::ve(),
                "vp" => ScoreConfig::vp(),
                "subvp" | "sub-vp" => ScoreConfig::sub_vp(),
                other => return Err(Error::Config(format!("unknown SDE {other:?} (ve, vp or subvp)"))),
            };
            let score = match args.get("control-variate", "on".to_string()).as_str() {
                "on" => score,
                "off" => ScoreConfig { control_variate: false, ..score },
                other => return Err(Error::Config(format!("unknown --control-variate {other:?} (on or off)"))),
            };
            let sampling = match args.get("score-sampling", "sde".to_string()).as_str() {
                "sde" => match ScoreSampling::default() {
                    ScoreSampling::Sde { steps, corrector } => {
                        ScoreSampling::Sde { steps: args.get("sde-steps", steps), corrector }
                    }
                    ode => ode,
                },
                "ode" => ScoreSampling::Ode,
                other => return Err(Error::Config(format!("unknown score sampling {other:?} (sde or ode)"))),
            };
            let npse = sbi_runtime::inference::Npse::default();
            let training = field_training(&npse.training);
            let npse = npse.with_score(score).with_sampling(sampling).with_solver(solver(args)).with_training(training);
            run_benchmark(model, &npse, &bench)?
        }
        "rej-abc" => {
            let q: f64 = args.get("abc-quantile", 0.01);
            let abc = RejectionAbc::default()
                .with_acceptance(Acceptance::Quantile(q))
                .with_adjustment(adjustment(args)?)
                .with_resample(resample(args)?)
                .with_distance(distance(args)?);
            run_benchmark(model, &abc, &bench)?
        }
        "smc-abc" => {
            let d = SmcAbc::default();
            let smc = SmcAbc {
                particles: args.get("particles", d.particles),
                initial_factor: args.get("initial-factor", d.initial_factor),
                quantile: args.get("abc-quantile", d.quantile),
                kernel: match args.get("kernel", "gaussian".to_string()).as_str() {
                    "olcm" => PerturbationKernel::OptimalLocal,
                    "gaussian" => PerturbationKernel::Gaussian { scale: args.get("kernel-scale", 2.0) },
                    other => return Err(Error::Config(format!("unknown kernel {other:?} (olcm or gaussian)"))),
                },
                budget: args.get("simulations", 10_000),
                ess_min: args.get("ess-min", d.ess_min),
                adjustment: adjustment(args)?,
                resample: resample(args)?,
                distance: distance(args)?,
                progress: !quiet,
                ..d
            };
            run_benchmark_posterior(&smc.posterior(model).with_seed(seed), &bench)?
        }
        other => {
            return Err(Error::Config(format!(
                "unknown method {other:?} (npe, nle, nre, fmpe, npse, rej-abc or smc-abc)"
            )));
        }
    };
    println!("{result}");
    if let Some(out) = args.opt("output") {
        result.samples.write(&out)?;
    }
    Ok(())
}

/// ABC's regression adjustment: `--adjustment linear|heteroscedastic|none` (linear).
fn adjustment(args: &cli::Args) -> sbi_runtime::Result<Option<Adjustment>> {
    match args.get("adjustment", "linear".to_string()).as_str() {
        "linear" => Ok(Some(Adjustment::Linear)),
        "heteroscedastic" => Ok(Some(Adjustment::Heteroscedastic)),
        "none" => Ok(None),
        other => Err(Error::Config(format!("unknown adjustment {other:?} (linear, heteroscedastic or none)"))),
    }
}

/// ABC's distance: `--abc-distance mad|sd|l2|l1|mahalanobis` (Euclidean after MAD scaling;
/// `l2` unscaled, `l1` after MAD scaling).
fn distance(args: &cli::Args) -> sbi_runtime::Result<Distance> {
    match args.get("abc-distance", "mad".to_string()).as_str() {
        "mad" => Ok(Distance::Euclidean(Scaling::Mad)),
        "sd" => Ok(Distance::Euclidean(Scaling::Sd)),
        "l2" => Ok(Distance::Euclidean(Scaling::None)),
        "l1" => Ok(Distance::L1(Scaling::Mad)),
        "mahalanobis" => Ok(Distance::Mahalanobis),
        other => Err(Error::Config(format!("unknown distance {other:?} (mad, sd, l2, l1 or mahalanobis)"))),
    }
}

/// ABC's draws: `--resample kde|particles` (a kernel density).
fn resample(args: &cli::Args) -> sbi_runtime::Result<Resample> {
    match args.get("resample", "kde".to_string()).as_str() {
        "kde" => Ok(Resample::default()),
        "particles" => Ok(Resample::Particles),
        other => Err(Error::Config(format!("unknown resampling {other:?} (kde or particles)"))),
    }
}

/// The vector field posteriors' ODE solver: adaptive, or `--fixed-steps N` Runge–Kutta steps.
fn solver(args: &cli::Args) -> FlowSolver {
    match args.opt("fixed-steps") {
        Some(_) => FlowSolver::fixed_steps(args.get("fixed-steps", 0)),
        None => FlowSolver::default(),
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
            "lr-decays",
            "lr-anneal",
            "ema",
            "stop-after",
            "lr-patience",
            "time-prior-exponent",
            "uniform-share",
            "sde",
            "score-sampling",
            "sde-steps",
            "control-variate",
            "fixed-steps",
            "batch-size",
            "learning-rate",
            "abc-quantile",
            "adjustment",
            "particles",
            "initial-factor",
            "kernel",
            "kernel-scale",
            "ess-min",
            "resample",
            "abc-distance",
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
