//! The result of a run: valid `(θ, x)` pairs as row-major matrices, the excluded
//! simulations with their causes, and the identity of the model that made them; files.

use std::path::Path;

use crate::error::{Error, InvalidKind, Result};
use crate::model::{Parameters, Shape, Simulator};
use crate::simulate::ModelIdentity;
use crate::simulate::checkpoint::{Partial, RunInfo};

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

/// `"none"`, or the non-zero causes: `"12 NaN, 3 panicked"`.
impl std::fmt::Display for InvalidCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> =
            [(self.nan, "NaN"), (self.infinite, "infinite"), (self.panicked, "panicked"), (self.prior, "prior failed")]
                .into_iter()
                .filter(|&(n, _)| n > 0)
                .map(|(n, what)| format!("{n} {what}"))
                .collect();
        if parts.is_empty() { f.write_str("none") } else { f.write_str(&parts.join(", ")) }
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

/// `simulation 17 at θ = [0.1, 2.5]: the simulator panicked (the solver diverged)`.
impl std::fmt::Display for InvalidSimulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "simulation {} at θ = {:?}: {}", self.index, self.theta, self.kind)?;
        match &self.message {
            Some(m) => write!(f, " ({m})"),
            None => Ok(()),
        }
    }
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
    ///
    /// # Errors
    /// [`Error::Config`] when the requested type's parameters are not these simulations'.
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
    /// settings and behaviour; see [`ModelIdentity`]), running its [`PROBES`](crate::simulate::PROBES) probe simulations.
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

    /// The excluded simulations (NaN or infinite output, a panic, a failed prior draw), in
    /// index order, each with its index, parameters, cause and message; `Display` prints one
    /// per line as `simulation 17 at θ = [..]: the simulator panicked (message)`.
    pub fn excluded(&self) -> &[InvalidSimulation] {
        &self.invalid
    }

    /// The excluded simulations of one cause, in index order.
    pub fn excluded_by(&self, kind: InvalidKind) -> impl Iterator<Item = &InvalidSimulation> + '_ {
        self.invalid.iter().filter(move |s| s.kind == kind)
    }

    /// The parameters of the excluded simulations of one cause, `n × theta_dim()` row-major
    /// (e.g. to plot where in the prior the simulator breaks).
    pub fn excluded_theta(&self, kind: InvalidKind) -> Vec<f64> {
        self.excluded_by(kind).flat_map(|s| s.theta.iter().copied()).collect()
    }

    /// Counts of excluded simulations by cause; `Display` gives `"12 NaN, 3 panicked"`.
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
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::File`] when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Partial::from_simulations(self).save(path.as_ref(), &RunInfo::standalone(self))
    }

    /// Saves to numpy's `.npz` (`numpy.load(path)` reads the arrays `theta`, `x`, `index`,
    /// `invalid_theta`, `invalid_index`, `invalid_kind`, and `header`: UTF-8 JSON bytes with
    /// the parameter names, observation shape, seed and the model's identity).
    ///
    /// # Errors
    /// File errors.
    pub fn save_npz(&self, path: impl AsRef<Path>) -> Result<()> {
        Partial::from_simulations(self).save_npz(path.as_ref(), &RunInfo::standalone(self))
    }

    /// Loads a file written by [`Simulations::save_npz`].
    ///
    /// # Errors
    /// As [`Simulations::load`].
    pub fn load_npz(path: impl AsRef<Path>) -> Result<Simulations> {
        let path = path.as_ref();
        Self::finished(path, Partial::load_npz(path)?)
    }

    /// Loads a file written by [`Simulations::save`] (or a finished checkpoint).
    ///
    /// # Errors
    /// [`Error::Io`] for a missing file; [`Error::File`] for a corrupt, damaged, foreign or
    /// older file, or an unfinished run.
    pub fn load(path: impl AsRef<Path>) -> Result<Simulations> {
        let path = path.as_ref();
        Self::finished(path, Partial::load(path)?)
    }

    /// The simulations of a finished run read from `path`.
    fn finished(path: &Path, (partial, info): (Partial, RunInfo)) -> Result<Simulations> {
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
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::File`] when the file cannot be written.
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
