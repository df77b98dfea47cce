//! The parallel simulation engine: draws `θ ~ prior` (or takes `θ` from a proposal) and
//! runs `x ~ p(x | θ)`, many times, on a rayon pool.
//!
//! Simulation `i` draws all its randomness from [`stream_rng(seed, i)`](crate::rng::stream_rng),
//! so the same seed gives bit-identical `θ` and `x` with any number of threads, and a run
//! resumed from a checkpoint equals an uninterrupted one. Outputs with NaN or inf, and
//! simulators that panic, are excluded and counted (or stop the run, by policy).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::error::{Error, InvalidKind, Result};
use serde::{Deserialize, Serialize};

use crate::io::{Array, FileKind, SafetensorsFile, write_safetensors};
use crate::model::{Observation, Parameters, Prior, Shape, Simulator};
use crate::rng::stream_rng;

mod identity;
mod panics;

pub use identity::{ModelIdentity, PROBES, Probe, ProbeOutcome};
use panics::QuietPanics;

/// What to do with a simulation whose output has NaN/inf or whose simulator panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvalidPolicy {
    /// Leave it out of the result and count it (the default, as in `sbi`).
    #[default]
    Exclude,
    /// Stop the run with [`Error::InvalidSimulation`].
    Error,
}

/// Counts of excluded simulations by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InvalidCounts {
    /// Outputs containing NaN.
    pub nan: usize,
    /// Outputs containing ±inf.
    pub infinite: usize,
    /// Simulators that panicked.
    pub panicked: usize,
    /// Prior draws that failed (invalid hierarchical arguments).
    pub prior: usize,
}

impl InvalidCounts {
    /// All excluded simulations.
    pub fn total(&self) -> usize {
        self.nan + self.infinite + self.panicked + self.prior
    }
}

/// One excluded simulation, kept so that a user can see which `θ` broke the simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidSimulation {
    /// Index (random stream) of the simulation.
    pub index: u64,
    /// What went wrong.
    pub kind: InvalidKind,
    /// Its parameters (NaN when the prior itself failed).
    pub theta: Vec<f64>,
    /// The panic or prior error message, if any.
    pub message: Option<String>,
}

/// The result of a simulation run: valid `(θ, x)` pairs, row-major and contiguous.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulations {
    /// Parameters, `len() × theta_dim()` row-major.
    pub theta: Vec<f64>,
    /// Observations, `len() × x_dim()` row-major (each row is one flattened observation).
    pub x: Vec<f64>,
    /// Simulation index (random stream) of each row.
    pub index: Vec<u64>,
    /// Names of the parameter coordinates.
    pub param_names: Vec<String>,
    /// Shape of one observation.
    pub x_shape: Shape,
    /// The seed of the run.
    pub seed: u64,
    /// The excluded simulations, in index order.
    pub invalid: Vec<InvalidSimulation>,
    /// The identity of the model that made them: training and appending check it.
    pub model: ModelIdentity,
}

/// Simulations and checkpoints. Version 2 added the model's identity, a typed header and
/// the checksum; version 1 files are refused (they cannot say which model made them).
const FILE: FileKind = FileKind { format: "sbi-rs/simulations", version: 2, what: "a simulations file" };

/// The header of a simulations file or checkpoint.
#[derive(Serialize, Deserialize)]
struct Header {
    param_names: Vec<String>,
    /// Absent until a valid simulation has given it.
    x_shape: Option<Shape>,
    seed: u64,
    total: usize,
    completed: usize,
    /// `prior`, `saved`, or the digest of a proposal's θ.
    source: String,
    invalid_messages: Vec<Option<String>>,
    model: ModelIdentity,
}

impl Simulations {
    /// Number of valid simulations.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Number of parameter coordinates.
    pub fn theta_dim(&self) -> usize {
        self.param_names.len()
    }

    /// Number of values in one flattened observation.
    pub fn x_dim(&self) -> usize {
        self.x_shape.numel()
    }

    /// Parameters of row `i`.
    pub fn theta_row(&self, i: usize) -> &[f64] {
        let d = self.theta_dim();
        &self.theta[i * d..(i + 1) * d]
    }

    /// Observation of row `i`.
    pub fn x_row(&self, i: usize) -> &[f64] {
        let d = self.x_dim();
        &self.x[i * d..(i + 1) * d]
    }

    /// The parameters as typed structs.
    pub fn params<P: Parameters>(&self) -> Result<Vec<P>> {
        if P::names() != self.param_names {
            return Err(Error::Config(format!(
                "these simulations have parameters {:?}, the requested type {:?}",
                self.param_names,
                P::names()
            )));
        }
        P::from_rows(&self.theta)
    }

    /// Appends the rows (and excluded simulations) of `other`, a run of the same model.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`] when `other` comes from another model; [`Error::Config`]
    /// when the observations' shape differs.
    pub fn append(&mut self, other: &Simulations) -> Result<()> {
        self.model.check(
            &other.model,
            || "the simulations to append".into(),
            "append only simulations of the same model",
        )?;
        if other.param_names != self.param_names || other.x_shape != self.x_shape {
            return Err(Error::Config(format!(
                "cannot append simulations of parameters {:?} and shape {} to ones of {:?} and {}",
                other.param_names, other.x_shape, self.param_names, self.x_shape
            )));
        }
        self.theta.extend_from_slice(&other.theta);
        self.x.extend_from_slice(&other.x);
        self.index.extend_from_slice(&other.index);
        self.invalid.extend(other.invalid.iter().cloned());
        Ok(())
    }

    /// Checks that these simulations were made by `model` (the same parameters, source,
    /// settings and behaviour; see [`ModelIdentity`]), running its [`PROBES`] probe simulations.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`] naming the part that differs.
    pub fn check_model<S: Simulator>(&self, model: &S) -> Result<()> {
        ModelIdentity::of(model).check(
            &self.model,
            || "these simulations".into(),
            "simulate again with this model (or train with the model that made them)",
        )
    }

    /// Counts of excluded simulations by cause.
    pub fn invalid_counts(&self) -> InvalidCounts {
        let mut c = InvalidCounts::default();
        for s in &self.invalid {
            match s.kind {
                InvalidKind::Nan => c.nan += 1,
                InvalidKind::Infinite => c.infinite += 1,
                InvalidKind::Panicked => c.panicked += 1,
                _ => c.prior += 1,
            }
        }
        c
    }

    /// Saves to a safetensors file that Python reads with `safetensors.numpy.load_file`
    /// (arrays `theta`, `x`, `index`, `invalid_theta`, `invalid_index`, `invalid_kind`;
    /// names and shape in the header's metadata).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Partial::from_simulations(self).save(path.as_ref(), &RunInfo::standalone(self))
    }

    /// Loads a file written by [`Simulations::save`] (or a finished checkpoint).
    pub fn load(path: impl AsRef<Path>) -> Result<Simulations> {
        let path = path.as_ref();
        let (partial, info) = Partial::load(path)?;
        if partial.completed != info.total {
            return Err(Error::file(
                path,
                format!(
                    "an unfinished run ({} of {} simulations); resume it with `.checkpoint()`",
                    partial.completed, info.total
                ),
            ));
        }
        let total = info.total;
        partial.finish(info, total).map_err(|e| match e {
            Error::NoValidSimulations { .. } => Error::file(path, "the file holds no valid simulation"),
            e => e,
        })
    }

    /// Writes a CSV file with one row per valid simulation: the parameter columns, then
    /// `x[0]`, `x[1]`, ... (flattened observation).
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut header = self.param_names.clone();
        header.extend((0..self.x_dim()).map(|i| format!("x[{i}]")));
        let (dt, dx) = (self.theta_dim(), self.x_dim());
        let mut rows = Vec::with_capacity(self.len() * (dt + dx));
        for i in 0..self.len() {
            rows.extend_from_slice(self.theta_row(i));
            rows.extend_from_slice(self.x_row(i));
        }
        crate::io::write_csv(path, &header, &rows)
    }
}

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

enum Source {
    Prior(usize),
    Proposal(Vec<f64>),
}

/// A configured simulation run; call [`Simulate::run`].
#[must_use = "a simulation does nothing until `.run()`"]
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
                    .map_err(|e| Error::Config(format!("cannot start {t} threads: {e}")))?,
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
        let target = if self.progress { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(total as u64), target);
        bar.set_style(
            ProgressStyle::with_template(
                "simulating {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}]",
            )
            .expect("the template is valid"),
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

enum Outcome<P, O> {
    Done(P, O),
    Panicked(P, Option<String>),
    PriorFailed(String),
}

/// Takes the lock `path.lock` of a checkpoint: another process holding it is
/// [`Error::CheckpointLocked`]; a folder that does not exist or cannot be written is an I/O
/// error, found before simulating. The lock is released when the file is dropped (or the
/// process ends, however it ends); the empty lock file stays behind.
fn lock_checkpoint(path: &Path) -> Result<std::fs::File> {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| Error::io(&lock, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::CheckpointLocked { path: path.to_path_buf() }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&lock, e)),
    }
}

/// Identifies a run, so that a checkpoint is only resumed by the same run.
struct RunInfo {
    names: Vec<String>,
    seed: u64,
    total: usize,
    source: String,
    model: ModelIdentity,
}

impl RunInfo {
    fn standalone(s: &Simulations) -> RunInfo {
        RunInfo {
            names: s.param_names.clone(),
            seed: s.seed,
            total: s.len() + s.invalid.len(),
            source: "saved".into(),
            model: s.model.clone(),
        }
    }

    fn check_matches(&self, saved: &RunInfo, path: &Path) -> Result<()> {
        self.model.check(
            &saved.model,
            || format!("the checkpoint {}", path.display()),
            "use another checkpoint path, or delete the file to simulate afresh",
        )?;
        let mismatch = |what: &str, a: String, b: String| {
            Err(Error::file(
                path,
                format!(
                    "this checkpoint is from another run: its {what} is {a}, this run's {b}; use another path or delete it"
                ),
            ))
        };
        if saved.names != self.names {
            return mismatch("parameters", format!("{:?}", saved.names), format!("{:?}", self.names));
        }
        if saved.seed != self.seed {
            return mismatch("seed", saved.seed.to_string(), self.seed.to_string());
        }
        if saved.total != self.total {
            return mismatch("size", saved.total.to_string(), self.total.to_string());
        }
        if saved.source != self.source {
            return mismatch("source of θ", saved.source.clone(), self.source.clone());
        }
        Ok(())
    }
}

/// The state of a run: the first `completed` simulations, valid and invalid.
#[derive(Default)]
struct Partial {
    completed: usize,
    theta: Vec<f64>,
    x: Vec<f64>,
    index: Vec<u64>,
    x_shape: Option<Shape>,
    invalid: Vec<InvalidSimulation>,
    scratch: Vec<f64>,
}

impl Partial {
    fn from_simulations(s: &Simulations) -> Partial {
        Partial {
            completed: s.len() + s.invalid.len(),
            theta: s.theta.clone(),
            x: s.x.clone(),
            index: s.index.clone(),
            x_shape: Some(s.x_shape.clone()),
            invalid: s.invalid.clone(),
            scratch: Vec::new(),
        }
    }

    fn push<P: Parameters, O: Observation>(
        &mut self,
        index: u64,
        outcome: Outcome<P, O>,
        dim: usize,
        policy: InvalidPolicy,
    ) -> Result<()> {
        let invalid = match outcome {
            Outcome::Done(theta, x) => {
                self.scratch.clear();
                x.write_flat(&mut self.scratch);
                let shape = x.shape();
                match &self.x_shape {
                    Some(s) if *s != shape => {
                        return Err(Error::ObservationShape { index, expected: s.clone(), got: shape });
                    }
                    _ => {}
                }
                if shape.numel() != self.scratch.len() {
                    return Err(Error::shape(
                        format!("observation of simulation {index} (shape {shape})"),
                        shape.numel(),
                        self.scratch.len(),
                    ));
                }
                // NaN marks a failed simulation, except whole absent trials (`VarTrials`)
                // when at least one trial is present.
                let nan_ok = match crate::model::present_trials(&shape, &self.scratch) {
                    Ok(trials) => trials.iter().any(Option::is_some),
                    Err(_) => false,
                };
                let kind = if !nan_ok {
                    Some(InvalidKind::Nan)
                } else if self.scratch.iter().any(|v| v.is_infinite()) {
                    Some(InvalidKind::Infinite)
                } else {
                    None
                };
                match kind {
                    None => {
                        self.x_shape.get_or_insert(shape);
                        let start = self.theta.len();
                        self.theta.resize(start + dim, 0.0);
                        theta.write_flat(&mut self.theta[start..])?;
                        self.x.extend_from_slice(&self.scratch);
                        self.index.push(index);
                        return Ok(());
                    }
                    Some(kind) => InvalidSimulation { index, kind, theta: theta.to_vec(), message: None },
                }
            }
            Outcome::Panicked(theta, message) => {
                InvalidSimulation { index, kind: InvalidKind::Panicked, theta: theta.to_vec(), message }
            }
            Outcome::PriorFailed(message) => InvalidSimulation {
                index,
                kind: InvalidKind::Prior,
                theta: vec![f64::NAN; dim],
                message: Some(message),
            },
        };
        if policy == InvalidPolicy::Error {
            let InvalidSimulation { index, kind, theta, message } = invalid;
            return Err(Error::InvalidSimulation { index, kind, theta, message });
        }
        self.invalid.push(invalid);
        Ok(())
    }

    fn finish(self, info: RunInfo, total: usize) -> Result<Simulations> {
        let Some(x_shape) = self.x_shape else {
            let s = Simulations {
                theta: vec![],
                x: vec![],
                index: vec![],
                param_names: info.names,
                x_shape: Shape::Vector(0),
                seed: info.seed,
                invalid: self.invalid,
                model: info.model,
            };
            let c = s.invalid_counts();
            return Err(Error::NoValidSimulations {
                total,
                nan: c.nan,
                infinite: c.infinite,
                panicked: c.panicked,
                prior: c.prior,
            });
        };
        Ok(Simulations {
            theta: self.theta,
            x: self.x,
            index: self.index,
            param_names: info.names,
            x_shape,
            seed: info.seed,
            invalid: self.invalid,
            model: info.model,
        })
    }

    fn save(&self, path: &Path, info: &RunInfo) -> Result<()> {
        let d = info.names.len();
        let dx = self.x_shape.as_ref().map_or(0, Shape::numel);
        let invalid_theta: Vec<f64> = self.invalid.iter().flat_map(|s| s.theta.iter().copied()).collect();
        let invalid_index: Vec<u64> = self.invalid.iter().map(|s| s.index).collect();
        let invalid_kind: Vec<u8> = self.invalid.iter().map(|s| s.kind.code()).collect();
        let arrays = [
            Array::f64("theta", vec![self.index.len(), d], &self.theta),
            Array::f64("x", vec![self.index.len(), dx], &self.x),
            Array::u64("index", &self.index),
            Array::f64("invalid_theta", vec![self.invalid.len(), d], &invalid_theta),
            Array::u64("invalid_index", &invalid_index),
            Array::u8("invalid_kind", &invalid_kind),
        ];
        let header = Header {
            param_names: info.names.clone(),
            x_shape: self.x_shape.clone(),
            seed: info.seed,
            total: info.total,
            completed: self.completed,
            source: info.source.clone(),
            invalid_messages: self.invalid.iter().map(|s| s.message.clone()).collect(),
            model: info.model.clone(),
        };
        write_safetensors(path, &FILE, &arrays, &header)
    }

    fn load(path: &Path) -> Result<(Partial, RunInfo)> {
        let f = SafetensorsFile::open(path)?;
        let header: Header = f.header(&FILE)?;
        let bad = |reason: String| Error::file(f.path(), reason);
        let Header { param_names, x_shape, seed, total, completed, source, invalid_messages: messages, model } = header;
        let info = RunInfo { names: param_names, seed, total, source, model };
        let d = info.names.len();
        let dx = x_shape.as_ref().map_or(0, Shape::numel);
        let (ts, theta) = f.f64("theta")?;
        let (xs, x) = f.f64("x")?;
        let index = f.u64("index")?;
        let (its, invalid_theta) = f.f64("invalid_theta")?;
        let invalid_index = f.u64("invalid_index")?;
        let invalid_kind = f.u8("invalid_kind")?;
        let n = index.len();
        let m = invalid_index.len();
        if ts != [n, d] || xs != [n, dx] || its != [m, d] || invalid_kind.len() != m || messages.len() != m {
            return Err(bad("array shapes do not agree with each other".into()));
        }
        if n + m != completed || completed > info.total {
            return Err(bad(format!("{n} valid + {m} invalid rows, but {completed} completed of {}", info.total)));
        }
        if index.iter().chain(&invalid_index).any(|&i| i >= info.total as u64) {
            return Err(bad(format!("a row's index lies beyond the run's {} simulations", info.total)));
        }
        let invalid = (0..m)
            .map(|j| {
                let kind = InvalidKind::from_code(invalid_kind[j])
                    .ok_or_else(|| bad(format!("unknown invalid kind {}", invalid_kind[j])))?;
                let message = messages[j].clone();
                Ok(InvalidSimulation {
                    index: invalid_index[j],
                    kind,
                    theta: invalid_theta[j * d..(j + 1) * d].to_vec(),
                    message,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((Partial { completed, theta, x, index, x_shape, invalid, scratch: Vec::new() }, info))
    }
}
