//! Runs one inference method on any model for one observation and reports what a benchmark
//! needs: the posterior draws, the wall time of simulation, training and sampling, the
//! sampler's diagnostics and warnings, and C2ST against reference draws when given.
//!
//! ```no_run
//! use sbi_runtime::benchmark::{Benchmark, run_benchmark};
//! use sbi_runtime::prelude::*;
//!
//! #[simulator]
//! fn shift(rng: &mut impl Rng) -> [f64; 1] {
//!     let theta = sample!(Normal(0.0, 1.0));
//!     [theta + 0.1 * rng.sample::<f64, _>(StandardNormal)]
//! }
//!
//! let bench = Benchmark::new(vec![0.3]).with_simulations(5_000).with_samples(2_000);
//! let result = run_benchmark(&Shift, &Npe::default(), &bench)?;
//! println!("{result}"); // simulate_s=… train_s=… sample_s=… … (and c2st= with a reference)
//! result.samples.write("samples.csv")?;
//! # Ok::<(), sbi_runtime::Error>(())
//! ```

use std::time::Instant;

use crate::error::{Error, Result};
use crate::inference::{Method, Posterior, Rounds};
use crate::model::Simulator;
use crate::samplers::Samples;
use crate::simulate::simulate;
use crate::train::TrainingSummary;

/// One benchmark run's settings: the observation, the budgets, the seed, sequential rounds,
/// and the reference posterior to score against.
///
/// The method's own settings (estimator, training seed and device, sampler) stay with the
/// method passed to [`run_benchmark`].
#[derive(Debug, Clone)]
pub struct Benchmark {
    observation: Vec<f64>,
    simulations: usize,
    samples: usize,
    seed: u64,
    rounds: usize,
    warm_start: bool,
    progress: bool,
    reference: Option<Vec<f64>>,
    score_rounds: bool,
}

impl Benchmark {
    /// A run for `observation` (one simulation's flat values, or several iid trials for NLE
    /// and NRE): 10 000 simulations, 10 000 draws, seed 1, one round, progress shown.
    pub fn new(observation: impl Into<Vec<f64>>) -> Self {
        Benchmark {
            observation: observation.into(),
            simulations: 10_000,
            samples: 10_000,
            seed: 1,
            rounds: 1,
            warm_start: false,
            progress: true,
            reference: None,
            score_rounds: false,
        }
    }

    /// The simulation budget (over all rounds).
    pub fn with_simulations(mut self, n: usize) -> Self {
        self.simulations = n;
        self
    }

    /// The number of posterior draws.
    pub fn with_samples(mut self, n: usize) -> Self {
        self.samples = n;
        self
    }

    /// The seed of the simulations (and of the rounds' proposals).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sequential inference for the observation: the simulations split over `rounds` rounds
    /// ([`Method::train_rounds`]); 1 (the default) trains once, amortised.
    pub fn with_rounds(mut self, rounds: usize) -> Self {
        self.rounds = rounds;
        self
    }

    /// Each round continues training the last round's network (with rounds).
    pub fn with_warm_start(mut self) -> Self {
        self.warm_start = true;
        self
    }

    /// Shows or hides the progress of simulation and sequential rounds.
    pub fn with_progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// Reference posterior draws at the observation (`m × DIM`, row-major) to score the
    /// draws against with C2ST.
    pub fn with_reference(mut self, draws: impl Into<Vec<f64>>) -> Self {
        self.reference = Some(draws.into());
        self
    }

    /// Also scores every earlier round's posterior against the reference (with rounds);
    /// that scoring counts in the training time.
    pub fn with_round_scores(mut self) -> Self {
        self.score_rounds = true;
        self
    }
}

/// What one benchmark run gives.
#[derive(Debug, Clone)]
pub struct BenchmarkResult {
    /// The posterior draws at the observation.
    pub samples: Samples,
    /// Wall time of simulation (0 with rounds: it is part of training then).
    pub simulate_seconds: f64,
    /// Wall time of training (all rounds).
    pub train_seconds: f64,
    /// Wall time of drawing the samples.
    pub sample_seconds: f64,
    /// The last training's summary (absent only for a method that keeps none).
    pub training: Option<TrainingSummary>,
    /// The sampler's one-line diagnostics (acceptance, R̂ and ESS, importance ESS).
    pub diagnostics: String,
    /// The sampler's warnings (chains that did not mix, a collapsed importance ESS).
    pub warnings: Vec<String>,
    /// C2ST of the draws against the reference (0.5 is indistinguishable), when given.
    pub c2st: Option<f64>,
    /// C2ST of each earlier round's posterior, from round 1 ([`Benchmark::with_round_scores`]).
    pub round_c2st: Vec<f64>,
}

impl BenchmarkResult {
    /// Simulation, training and sampling together.
    pub fn total_seconds(&self) -> f64 {
        self.simulate_seconds + self.train_seconds + self.sample_seconds
    }
}

/// `round=k c2st=…` lines for earlier rounds, then
/// `simulate_s=… train_s=… sample_s=… total_s=… epochs=… ms_per_epoch=… DIAGNOSTICS
/// best_epoch=…` (with `lr_halved_after=E1,E2,…` and `annealed_after=E` when the learning
/// rate was halved or annealed), then
/// `c2st=…` when scored: `key=value` text that scripts parse.
impl std::fmt::Display for BenchmarkResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, score) in self.round_c2st.iter().enumerate() {
            writeln!(f, "round={} c2st={score:.4}", k + 1)?;
        }
        write!(
            f,
            "simulate_s={:.3} train_s={:.3} sample_s={:.3} total_s={:.3} epochs={} ms_per_epoch={:.1} {}",
            self.simulate_seconds,
            self.train_seconds,
            self.sample_seconds,
            self.total_seconds(),
            self.training.as_ref().map_or(0, |t| t.epochs),
            self.training.as_ref().map_or(0.0, |t| 1e3 * t.seconds_per_epoch()),
            self.diagnostics
        )?;
        if let Some(t) = &self.training {
            write!(f, " best_epoch={}", t.best_epoch)?;
            if !t.lr_decayed_after.is_empty() {
                let at: Vec<String> = t.lr_decayed_after.iter().map(|e| e.to_string()).collect();
                write!(f, " lr_halved_after={}", at.join(","))?;
            }
            if let Some(e) = t.annealed_after {
                write!(f, " annealed_after={e}")?;
            }
        }
        if let Some(score) = self.c2st {
            write!(f, "\nc2st={score:.4}")?;
        }
        Ok(())
    }
}

/// Simulates from `model` (or runs the rounds), trains `method`, draws at the observation
/// and scores the draws against the reference.
///
/// # Errors
/// [`Error::Config`] for zero simulations, draws or rounds; [`Error::ShapeMismatch`] for
/// reference draws whose length is not a multiple of the model's dimension; the
/// simulation, training and sampling errors of `method` (an observation of the wrong size
/// is [`Error::Observation`]).
pub fn run_benchmark<M: Simulator, T: Method>(model: &M, method: &T, bench: &Benchmark) -> Result<BenchmarkResult> {
    let dim = bench.check(<M::Params as crate::model::Parameters>::names().len())?;
    let score = |samples: &Samples| bench.score(samples, dim);
    let x_o = &bench.observation;

    let t0 = Instant::now();
    let sims = match bench.rounds {
        1 => Some(simulate(model, bench.simulations).seed(bench.seed).progress(bench.progress).run()?),
        _ => None,
    };
    let simulate_seconds = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let mut round_c2st = Vec::new();
    let posterior = match &sims {
        Some(sims) => method.train(model, sims)?,
        None => {
            let mut rounds =
                Rounds::split(bench.simulations, bench.rounds).with_seed(bench.seed).with_progress(bench.progress);
            if bench.warm_start {
                rounds = rounds.warm_start();
            }
            let run = method.train_rounds(model, x_o, &rounds)?;
            let last = run.rounds.len() - 1;
            if bench.score_rounds {
                for round in &run.rounds[..last] {
                    if let Some(s) = score(&round.posterior.sample_flat(x_o, bench.samples)?)? {
                        round_c2st.push(s);
                    }
                }
            }
            run.into_posterior()
        }
    };
    let train_seconds = t1.elapsed().as_secs_f64();
    let mut result = sample_and_score(&posterior, bench, dim)?;
    result.simulate_seconds = simulate_seconds;
    result.train_seconds = train_seconds;
    result.round_c2st = round_c2st;
    Ok(result)
}

/// Draws from a posterior that needs no training (SMC-ABC, which simulates as it samples,
/// or one loaded from a file) at the observation and scores the draws: all the time is
/// sampling time. The benchmark's simulation budget, seed and rounds are not used: they
/// belong to the posterior's own settings.
///
/// # Errors
/// As [`run_benchmark`], less the training errors.
pub fn run_benchmark_posterior<P: Posterior>(posterior: &P, bench: &Benchmark) -> Result<BenchmarkResult> {
    let dim = bench.check(posterior.names().len())?;
    sample_and_score(posterior, bench, dim)
}

impl Benchmark {
    /// Checks the budgets and the reference draws for `dim` parameters; returns `dim`.
    fn check(&self, dim: usize) -> Result<usize> {
        if self.simulations == 0 || self.samples == 0 || self.rounds == 0 {
            return Err(Error::Config(format!(
                "a benchmark needs simulations, draws and rounds; got {} simulations, {} draws, {} rounds",
                self.simulations, self.samples, self.rounds
            )));
        }
        if let Some(r) = &self.reference
            && (r.is_empty() || r.len() % dim != 0)
        {
            return Err(Error::ShapeMismatch {
                what: format!("reference draws (rows of {dim} parameters)"),
                expected: dim * (r.len() / dim).max(1),
                got: r.len(),
            });
        }
        Ok(dim)
    }

    /// C2ST of `samples` against the reference, when there is one.
    fn score(&self, samples: &Samples, dim: usize) -> Result<Option<f64>> {
        self.reference.as_ref().map(|r| crate::diagnostics::c2st(&samples.values, r, dim)).transpose()
    }
}

/// Draws at the observation, timed, with the sampler's report and the score.
fn sample_and_score<P: Posterior>(posterior: &P, bench: &Benchmark, dim: usize) -> Result<BenchmarkResult> {
    let t2 = Instant::now();
    let run = posterior.sample_run(&bench.observation, bench.samples)?;
    let sample_seconds = t2.elapsed().as_secs_f64();
    let training = posterior.training_summary().cloned();
    let (diagnostics, warnings) = (run.describe(), run.warnings());
    let samples = run.into_samples();
    let c2st = bench.score(&samples, dim)?;
    Ok(BenchmarkResult {
        samples,
        simulate_seconds: 0.0,
        train_seconds: 0.0,
        sample_seconds,
        training,
        diagnostics,
        warnings,
        c2st,
        round_c2st: Vec::new(),
    })
}
