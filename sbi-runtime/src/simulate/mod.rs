//! The parallel simulation engine: draws `θ ~ prior` (or takes `θ` from a proposal) and
//! runs `x ~ p(x | θ)`, many times, on a rayon pool.
//!
//! Simulation `i` draws all its randomness from [`stream_rng(seed, i)`](crate::rng::stream_rng),
//! so the same seed gives bit-identical `θ` and `x` with any number of threads, and a run
//! resumed from a checkpoint equals an uninterrupted one. Outputs with NaN or inf, and
//! simulators that panic, are excluded and counted (or stop the run, by policy).

mod checkpoint;
mod identity;
mod panics;
mod simulations;

pub use identity::{ModelIdentity, PROBES, Probe, ProbeOutcome};
pub use simulations::{InvalidCounts, InvalidPolicy, InvalidSimulation, Simulations};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::{Parameters, Prior, Simulator};
use crate::rng::stream_rng;
use checkpoint::{Partial, RunInfo, lock_checkpoint};
use panics::QuietPanics;

/// Starts a run of `n` simulations with `θ` drawn from the model's prior.
pub fn simulate<S: Simulator>(model: &S, n: usize) -> Simulate<'_, S> {
    Simulate::new(model, Source::Prior(n))
}

/// Starts a run at given parameter sets (a proposal instead of the prior): one simulation each.
pub fn simulate_from<'a, S: Simulator>(model: &'a S, thetas: &[S::Params]) -> Simulate<'a, S> {
    let mut flat = Vec::with_capacity(thetas.len() * <S::Params as Parameters>::DIM);
    for t in thetas {
        flat.extend(t.to_vec());
    }
    Simulate::new(model, Source::Proposal(flat))
}

/// Starts a run at parameter sets given flat, `n × DIM` row-major.
pub fn simulate_from_flat<'a, S: Simulator>(model: &'a S, thetas: &[f64]) -> Simulate<'a, S> {
    Simulate::new(model, Source::Proposal(thetas.to_vec()))
}

#[derive(Debug)]
enum Source {
    Prior(usize),
    Proposal(Vec<f64>),
}

/// A configured simulation run; call [`Simulate::run`].
#[must_use = "a simulation does nothing until `.run()`"]
#[derive(Debug)]
pub struct Simulate<'a, S: Simulator> {
    model: &'a S,
    source: Source,
    seed: u64,
    threads: Option<usize>,
    progress: bool,
    policy: InvalidPolicy,
    checkpoint: Option<PathBuf>,
    checkpoint_interval: Duration,
    interrupt: Option<Arc<AtomicBool>>,
    chunk: Option<usize>,
}

impl<'a, S: Simulator> Simulate<'a, S> {
    fn new(model: &'a S, source: Source) -> Self {
        Simulate {
            model,
            source,
            seed: 0,
            threads: None,
            progress: true,
            policy: InvalidPolicy::default(),
            checkpoint: None,
            checkpoint_interval: Duration::from_secs(10),
            interrupt: None,
            chunk: None,
        }
    }

    /// The seed (default 0). Simulation `i` uses stream `(seed, i)`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Number of worker threads (default: rayon's global pool, one per core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Show a progress bar on stderr (default `true`; never drawn when stderr is not a terminal).
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// What to do with invalid simulations (default: exclude and count).
    pub fn on_invalid(mut self, policy: InvalidPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Save progress to `path` (safetensors) and resume from it if it exists.
    ///
    /// The file is rewritten atomically at most every
    /// [`checkpoint_interval`](Simulate::checkpoint_interval), when interrupted and at the
    /// end, when it holds the full result (loadable with [`Simulations::load`]). A file
    /// from a different run (seed, size, model or proposal) is an error, never silently mixed in.
    pub fn checkpoint(mut self, path: impl Into<PathBuf>) -> Self {
        self.checkpoint = Some(path.into());
        self
    }

    /// Minimum time between two checkpoint writes (default 10 s).
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// A flag that stops the run between two chunks when set (e.g. from a Ctrl-C handler);
    /// the run then returns [`Error::Interrupted`] after saving its checkpoint.
    pub fn interrupt_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.interrupt = Some(flag);
        self
    }

    /// Simulations per chunk: the unit of parallel work, progress and interruption
    /// (default: about 1/50 of the run, between 256 and 16,384).
    pub fn chunk_size(mut self, chunk: usize) -> Self {
        self.chunk = Some(chunk);
        self
    }

    /// Runs the simulations.
    ///
    /// # Errors
    /// [`Error::Config`] for zero simulations, threads or chunk size; [`Error::ShapeMismatch`]
    /// for a proposal whose length is not a multiple of the parameter count;
    /// [`Error::InvalidSimulation`] under [`InvalidPolicy::Error`]; [`Error::ObservationShape`]
    /// when observations change shape; [`Error::NoValidSimulations`]; [`Error::Interrupted`];
    /// [`Error::TooLarge`] for more simulations than memory holds; with a checkpoint,
    /// [`Error::CheckpointLocked`] while another run uses it, [`Error::ModelMismatch`] for a
    /// checkpoint of another model, and file errors (an unwritable path is found before
    /// simulating).
    pub fn run(self) -> Result<Simulations> {
        let prior = self.model.prior();
        let dim = prior.dim();
        let names = prior.names();
        let total = match &self.source {
            Source::Prior(n) => *n,
            Source::Proposal(flat) => {
                if dim == 0 || flat.len() % dim != 0 {
                    return Err(Error::shape(
                        "proposal parameters (n × DIM values)",
                        dim * (flat.len() / dim.max(1)),
                        flat.len(),
                    ));
                }
                flat.len() / dim
            }
        };
        if total == 0 {
            return Err(Error::Config("a run needs at least one simulation".into()));
        }
        if self.threads == Some(0) || self.chunk == Some(0) {
            return Err(Error::Config("threads and chunk size must be at least 1".into()));
        }
        // Held until the run returns: a second process on the same checkpoint is refused.
        let _lock = self.checkpoint.as_deref().map(lock_checkpoint).transpose()?;
        let model = ModelIdentity::of(self.model);
        let info = RunInfo { names, seed: self.seed, total, source: self.source_fingerprint(), model };
        let mut state = match &self.checkpoint {
            Some(p) if p.exists() => {
                let (state, saved) = Partial::load(p)?;
                info.check_matches(&saved, p)?;
                state
            }
            _ => {
                // Written at once, so that an unwritable path fails before any simulation.
                let state = Partial::default();
                self.save_checkpoint(&state, &info)?;
                state
            }
        };
        let remaining = total - state.completed.min(total);
        crate::alloc::reserve(&mut state.theta, remaining, dim, "the simulations' parameters")?;

        let pool = match self.threads {
            Some(t) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .map_err(|e| Error::ThreadPool { threads: t, reason: e.to_string() })?,
            ),
            None => None,
        };
        let chunk = self.chunk.unwrap_or_else(|| (total / 50).clamp(256, 16_384));
        let bar = self.progress_bar(total, state.completed);
        let mut last_save = Instant::now();
        let hook = QuietPanics::install();

        while state.completed < total {
            if self.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
                let saved = self.save_checkpoint(&state, &info)?;
                bar.abandon();
                return Err(Error::Interrupted { completed: state.completed, total, saved });
            }
            let range = state.completed..state.completed.saturating_add(chunk).min(total);
            let work =
                || range.clone().into_par_iter().map(|i| self.run_one(&hook, &prior, i as u64)).collect::<Vec<_>>();
            let outcomes = match &pool {
                Some(p) => p.install(work),
                None => work(),
            };
            for (i, outcome) in range.clone().zip(outcomes) {
                state.push(i as u64, outcome, dim, self.policy)?;
            }
            if state.x.capacity() == 0
                && let Some(shape) = &state.x_shape
            {
                let numel = shape.numel();
                crate::alloc::reserve(&mut state.x, total - state.completed, numel, "the simulations' observations")?;
            }
            state.completed = range.end;
            bar.set_position(state.completed as u64);
            if state.completed < total && last_save.elapsed() >= self.checkpoint_interval {
                self.save_checkpoint(&state, &info)?;
                last_save = Instant::now();
            }
        }
        self.save_checkpoint(&state, &info)?;
        bar.finish_and_clear();
        state.finish(info, total)
    }

    fn source_fingerprint(&self) -> String {
        match &self.source {
            Source::Prior(_) => "prior".into(),
            Source::Proposal(flat) => {
                // FNV-1a over the bits: a resumed run must use the very same proposal.
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for v in flat {
                    for b in v.to_bits().to_le_bytes() {
                        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
                    }
                }
                format!("proposal:{h:016x}")
            }
        }
    }

    fn progress_bar(&self, total: usize, done: usize) -> ProgressBar {
        let bar = crate::progress::bar(
            self.progress,
            Some(total as u64),
            "simulating {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}]",
            false,
        );
        bar.set_position(done as u64);
        bar
    }

    fn save_checkpoint(&self, state: &Partial, info: &RunInfo) -> Result<bool> {
        match &self.checkpoint {
            Some(p) => state.save(p, info).map(|_| true),
            None => Ok(false),
        }
    }

    /// Runs simulation `index`: θ from the prior (or proposal), then the simulator, both on stream `(seed, index)`.
    fn run_one(&self, hook: &QuietPanics, prior: &S::Prior, index: u64) -> Outcome<S::Params, S::Output> {
        let mut rng = stream_rng(self.seed, index);
        // One guarded call for the prior draw and the simulation (a simulator may take well
        // under a microsecond); `drawn` tells a panic of the simulator from one of the prior.
        let mut drawn: Option<S::Params> = None;
        let result = hook.run(|| {
            let params = match &self.source {
                Source::Prior(_) => prior.sample(&mut rng).map_err(|e| e.to_string())?,
                Source::Proposal(flat) => {
                    let d = <S::Params as Parameters>::DIM;
                    let row = &flat[index as usize * d..(index as usize + 1) * d];
                    if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                        return Err(format!("the proposal's parameter set holds {v}"));
                    }
                    S::Params::from_flat(row).map_err(|e| e.to_string())?
                }
            };
            drawn = Some(params.clone());
            Ok(self.model.simulate(&params, &mut rng))
        });
        match (result, drawn) {
            (Ok(Ok(x)), Some(params)) => Outcome::Done(params, x),
            (Ok(Err(message)), _) => Outcome::PriorFailed(message),
            (Err(message), Some(params)) => Outcome::Panicked(params, message),
            (Err(message), None) => {
                let message = message.unwrap_or_else(|| "a panic".into());
                Outcome::PriorFailed(format!("the prior panicked: {message}"))
            }
            (Ok(Ok(_)), None) => unreachable!("a simulation ran, so its parameters were drawn"),
        }
    }
}

pub(crate) enum Outcome<P, O> {
    Done(P, O),
    Panicked(P, Option<String>),
    PriorFailed(String),
}
