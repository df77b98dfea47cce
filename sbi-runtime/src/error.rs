//! The one error type of the toolkit: every fallible function returns [`Result<T>`].

use std::path::PathBuf;

/// Shorthand for `Result<T, sbi_runtime::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a simulation was excluded from the training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidKind {
    /// The observation contained a NaN.
    Nan,
    /// The observation contained +inf or -inf (and no NaN).
    Infinite,
    /// The simulator panicked.
    Panicked,
    /// The prior could not be sampled (a hierarchical site got invalid arguments).
    Prior,
}

impl InvalidKind {
    /// A stable one-byte code, used in saved files.
    pub fn code(self) -> u8 {
        match self {
            InvalidKind::Nan => 1,
            InvalidKind::Infinite => 2,
            InvalidKind::Panicked => 3,
            InvalidKind::Prior => 4,
        }
    }

    /// Inverse of [`InvalidKind::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(InvalidKind::Nan),
            2 => Some(InvalidKind::Infinite),
            3 => Some(InvalidKind::Panicked),
            4 => Some(InvalidKind::Prior),
            _ => None,
        }
    }
}

impl std::fmt::Display for InvalidKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvalidKind::Nan => "NaN in the output",
            InvalidKind::Infinite => "infinite value in the output",
            InvalidKind::Panicked => "the simulator panicked",
            InvalidKind::Prior => "the prior could not be sampled",
        })
    }
}

/// The part of a model's identity that differs (see [`crate::simulate::ModelIdentity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelPart {
    /// The parameters' names.
    Parameters,
    /// The source code of the prior statements or the simulator's body.
    Source,
    /// The settings' values.
    Settings,
    /// The observation's shape.
    ObservationShape,
    /// The results of simulations at fixed random streams (a function the simulator calls,
    /// or a dependency, changed).
    Behaviour,
}

impl std::fmt::Display for ModelPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelPart::Parameters => "the parameters",
            ModelPart::Source => "the source code of the simulator (its prior statements or body)",
            ModelPart::Settings => "the settings",
            ModelPart::ObservationShape => "the observation's shape",
            ModelPart::Behaviour => {
                "the simulator's results at fixed random streams (a function it calls, or a dependency, changed)"
            }
        })
    }
}

/// Everything that can go wrong in the toolkit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A distribution was given arguments outside its domain (e.g. `Normal(0.0, -1.0)`).
    #[error("invalid {distribution} distribution: {reason}")]
    InvalidDistribution {
        /// The distribution's name.
        distribution: &'static str,
        /// What is wrong with the arguments.
        reason: String,
    },

    /// A prior site could not be built or used (its distribution failed, or its size is wrong).
    #[error("prior site `{site}`: {source}")]
    Site {
        /// The site's name in the `#[simulator]` function.
        site: &'static str,
        /// The underlying error.
        #[source]
        source: Box<Error>,
    },

    /// The prior could not be sampled: a distribution drew a non-finite value or one where
    /// its density is zero, or a hierarchical prior's draws failed again and again.
    #[error("prior draw failed: {reason}")]
    PriorDraw {
        /// What went wrong.
        reason: String,
    },

    /// A buffer of the requested size cannot be allocated (too many samples, proposals or
    /// simulations for this machine's memory, or a count that overflows).
    #[error("{what}: {rows} × {cols} values cannot be allocated on this machine; ask for fewer")]
    TooLarge {
        /// What was being allocated.
        what: String,
        /// Rows asked for.
        rows: usize,
        /// Values per row.
        cols: usize,
    },

    /// A checkpoint, simulations or a model file belong to another model than the one given.
    #[error("{what} belongs to another model: {part} differ(s): saved {saved}, now {now}; {advice}")]
    ModelMismatch {
        /// What was checked (a file, or simulations).
        what: String,
        /// The part of the model's identity that differs.
        part: ModelPart,
        /// The saved value, in words.
        saved: String,
        /// The current model's value, in words.
        now: String,
        /// How to proceed.
        advice: String,
    },

    /// A device was asked for and cannot be used (this build lacks its feature, or the
    /// machine lacks the device).
    #[error(
        "cannot use {device} ({reason}); build with the matching feature (`cuda`, `metal`) on a machine that has it"
    )]
    DeviceUnavailable {
        /// The device asked for.
        device: String,
        /// candle's reason.
        reason: String,
    },

    /// The simulations have absent trials (a varying number of them) and the method or
    /// embedding cannot take them.
    #[error("the simulations have absent trials (a varying number of them): {advice}")]
    AbsentTrials {
        /// What to do instead.
        advice: String,
    },

    /// Too few simulations remain to train on once the validation set is held out.
    #[error(
        "{simulations} simulations are too few to train on (at least 2 must remain for training after the validation set)"
    )]
    TooFewSimulations {
        /// Simulations given.
        simulations: usize,
    },

    /// No prior draw has a finite potential: there is nowhere to start MCMC or nothing to
    /// weight in importance sampling (the likelihood or ratio is −∞ or NaN everywhere the
    /// prior puts mass, or the observation is far from every simulation).
    #[error("no {what} has a finite potential among {draws} prior draws")]
    NoFinitePotential {
        /// What was looked for (a starting point, a proposal).
        what: &'static str,
        /// Prior draws examined.
        draws: usize,
    },

    /// TSNPE's truncated region holds none of the last posterior's own draws (their log
    /// densities are not finite), so neither rejection nor MCMC can draw the next round.
    #[error(
        "TSNPE: none of the last posterior's {drawn} draws lies in its own highest-density region (its log \
         density is not finite there); train the round again with more simulations"
    )]
    TruncationTooSmall {
        /// Posterior draws examined.
        drawn: usize,
    },

    /// A pool of worker threads could not be started.
    #[error("cannot start {threads} threads: {reason}")]
    ThreadPool {
        /// Threads asked for.
        threads: usize,
        /// The operating system's reason.
        reason: String,
    },

    /// A slice or matrix did not have the expected number of values.
    #[error("shape mismatch for {what}: expected {expected} values, got {got}")]
    ShapeMismatch {
        /// What was being read.
        what: String,
        /// The expected number of values.
        expected: usize,
        /// The number actually given.
        got: usize,
    },

    /// A simulation returned NaN/inf or panicked, and the policy was [`crate::simulate::InvalidPolicy::Error`].
    #[error("simulation {index} is invalid ({kind}) at theta = {theta:?}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    InvalidSimulation {
        /// Index of the simulation (its random stream).
        index: u64,
        /// What went wrong.
        kind: InvalidKind,
        /// The parameters it was run with (empty if the prior itself failed).
        theta: Vec<f64>,
        /// The panic or prior error message, if any.
        message: Option<String>,
    },

    /// Simulations returned observations of different shapes.
    #[error("simulation {index} returned an observation of shape {got}, but earlier ones had shape {expected}")]
    ObservationShape {
        /// Index of the offending simulation.
        index: u64,
        /// The shape of earlier observations (as `vector[2]`, `image[1x32x32]`, ...).
        expected: String,
        /// The shape this simulation returned.
        got: String,
    },

    /// Every simulation was invalid, so there is nothing to return.
    #[error(
        "all {total} simulations were invalid ({nan} NaN, {infinite} infinite, {panicked} panicked, {prior} prior failures)"
    )]
    NoValidSimulations {
        /// Number of simulations run.
        total: usize,
        /// With NaN outputs.
        nan: usize,
        /// With infinite outputs.
        infinite: usize,
        /// That panicked.
        panicked: usize,
        /// Whose prior draw failed.
        prior: usize,
    },

    /// A run was interrupted through its interrupt flag; its checkpoint (if any) holds the completed part.
    #[error("interrupted after {completed} of {total} simulations{}", if *saved { "; progress saved to the checkpoint" } else { "" })]
    Interrupted {
        /// Simulations completed (and saved, if a checkpoint was set).
        completed: usize,
        /// Simulations requested.
        total: usize,
        /// Whether the completed part was saved to a checkpoint.
        saved: bool,
    },

    /// Another run holds the checkpoint's lock (two processes on one path).
    #[error(
        "the checkpoint {} is in use by another run (it holds {}.lock); wait for that run to finish, or use another path",
        path.display(), path.display()
    )]
    CheckpointLocked {
        /// The checkpoint.
        path: PathBuf,
    },

    /// A tensor operation failed (a bug or an inconsistent model file: please report it).
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),

    /// A value cannot be handed to the networks: after z-scoring (in f64) it is infinite or
    /// beyond the range of their 32-bit floats.
    #[error(
        "{column}: the value {value} is beyond the range of the networks' 32-bit floats once standardised \
         (training mean {mean}, standard deviation {std}); rescale this quantity (e.g. take its logarithm) \
         or remove the outlying simulations"
    )]
    Unrepresentable {
        /// The column, by name.
        column: String,
        /// The raw value.
        value: f64,
        /// The column's training mean.
        mean: f64,
        /// The column's training standard deviation.
        std: f64,
    },

    /// A trained network returned non-finite values where finite ones were expected.
    #[error(
        "the network returned non-finite values ({what}): its weights are not finite (a corrupt file or a \
         diverged training); train it again"
    )]
    NetworkOutput {
        /// What it returned.
        what: String,
    },

    /// Training produced a non-finite loss.
    #[error(
        "training diverged at epoch {epoch}: the loss is {loss} (try a smaller learning rate, or check the simulations for outliers)"
    )]
    TrainingDiverged {
        /// The epoch (from 1) at which the loss became non-finite.
        epoch: usize,
        /// The loss value.
        loss: f64,
    },

    /// Rejection sampling ran out of its budget before collecting the requested samples.
    #[error("sampling budget exhausted: {accepted} of {requested} samples accepted after {proposed} proposals (acceptance rate {:.2e}); the posterior puts almost no mass inside the prior's support for this observation, which usually means the observation lies outside the training range", *accepted as f64 / (*proposed).max(1) as f64)]
    SamplingBudget {
        /// Samples requested.
        requested: usize,
        /// Samples accepted before the budget ran out.
        accepted: usize,
        /// Proposals drawn.
        proposed: usize,
    },

    /// An MCMC run used up its budget of potential evaluations.
    #[error(
        "MCMC budget exhausted: {evaluations} potential evaluations used of {budget}; raise `max_evaluations`, \
         use fewer chains or sweeps, or check that the potential is not -inf almost everywhere"
    )]
    McmcBudget {
        /// Evaluations made.
        evaluations: usize,
        /// The budget.
        budget: usize,
    },

    /// An ODE solve used up its step budget before reaching the last requested time.
    #[error(
        "ODE solver budget exhausted: {steps} steps taken and t = {t} reached of {end}; the system may be stiff \
         or the tolerances too tight: raise `max_steps`, loosen `rtol`/`atol`, or check the parameters"
    )]
    OdeBudget {
        /// Steps taken (accepted and rejected).
        steps: usize,
        /// The time reached.
        t: f64,
        /// The last requested time.
        end: f64,
    },

    /// ABC with a fixed tolerance accepted no simulation.
    #[error(
        "no simulation within ε = {epsilon} of the observation (the closest of {simulations} is at {closest}): \
         raise ε, accept a quantile instead, or simulate more"
    )]
    AbcTolerance {
        /// The tolerance asked for.
        epsilon: f64,
        /// The smallest distance among the simulations.
        closest: f64,
        /// The simulations searched.
        simulations: usize,
    },

    /// SMC-ABC's perturbed particles kept falling outside the prior's support.
    #[error(
        "SMC-ABC: {outside} perturbed particles in a row fell outside the prior's support while proposing \
         {wanted}: the population sits at the support's edge; use the optimal local kernel or a smaller quantile"
    )]
    AbcProposals {
        /// Proposals outside the support.
        outside: usize,
        /// Proposals wanted.
        wanted: usize,
    },

    /// An ODE solve could not continue: the step size underflowed (the solution blows up or
    /// the right-hand side is NaN there).
    #[error("ODE solver failed at t = {t}: {reason}")]
    OdeFailed {
        /// The time reached.
        t: f64,
        /// What went wrong.
        reason: String,
    },

    /// An observation has the wrong size or non-finite values.
    #[error("invalid observation: {0}")]
    Observation(String),

    /// A configuration value is out of range (zero threads, zero simulations, ...).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file exists but is corrupt, truncated, of another version, or belongs to another model.
    #[error("cannot use {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    pub(crate) fn invalid_distribution(distribution: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidDistribution { distribution, reason: reason.into() }
    }

    pub(crate) fn shape(what: impl Into<String>, expected: usize, got: usize) -> Self {
        Error::ShapeMismatch { what: what.into(), expected, got }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::File { path: path.into(), reason: reason.into() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
