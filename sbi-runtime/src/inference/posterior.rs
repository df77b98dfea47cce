//! The seams every method's result and every method plug into: [`Posterior`] (sample with a
//! seed, the log density up to a constant, save and load, the range check) and [`Method`]
//! (train once, or in rounds for one observation). Sequential rounds, diagnostics and the
//! benchmark runner take any of them.

use std::path::Path;

use crate::error::Result;
use crate::inference::sequential::{Rounds, SequentialRun};
use crate::model::{Parameters, Prior, Simulator};
use crate::nn::EmbeddingNet;
use crate::samplers::{SamplerRun, Samples};
use crate::simulate::Simulations;
use crate::train::TrainingSummary;

/// A trained posterior `p̂(θ | x)` of any method (NPE, NLE, NRE, and every later one).
///
/// Observations are flat: one simulation's values (NPE), or one or more iid trials of them
/// (NLE, NRE). Each posterior checks them (size, finite values, the training range unless
/// [`Posterior::without_range_check`]) before any network runs.
pub trait Posterior: Sized + Send + Sync {
    /// The model's prior.
    type Prior: Prior;

    /// The prior.
    fn prior(&self) -> &Self::Prior;

    /// The parameters' names.
    fn names(&self) -> Vec<String> {
        self.prior().names()
    }

    /// The identity of the model the posterior was trained for (absent for a posterior not
    /// trained by this toolkit): diagnostics check their simulations against it.
    fn model_identity(&self) -> Option<&crate::simulate::ModelIdentity> {
        None
    }

    /// What the training did (absent for a loaded posterior).
    fn training_summary(&self) -> Option<&TrainingSummary>;

    /// The seed sampling uses unless told another (by default the training seed).
    fn seed(&self) -> u64;

    /// The same posterior, sampling with `seed`. The same seed gives the same draws.
    fn with_seed(self, seed: u64) -> Self;

    /// The same posterior without the check that observations lie within the range of the
    /// training data (the estimator would extrapolate: use it knowingly).
    fn without_range_check(self) -> Self;

    /// `n` draws at `x_o` with `seed`, with the sampler's diagnostics (acceptance rate, R̂
    /// and ESS, importance weights' ESS).
    ///
    /// # Errors
    /// [`crate::Error::Observation`] for an observation of the wrong size, with NaN, or
    /// outside the training range; the sampler's budget errors; [`crate::Error::TooLarge`].
    fn sample_run_with_seed(&self, x_o: &[f64], n: usize, seed: u64) -> Result<SamplerRun>;

    /// As [`Posterior::sample_run_with_seed`] with the posterior's seed.
    ///
    /// # Errors
    /// As [`Posterior::sample_run_with_seed`].
    fn sample_run(&self, x_o: &[f64], n: usize) -> Result<SamplerRun> {
        self.sample_run_with_seed(x_o, n, self.seed())
    }

    /// `n` draws at each of several observations (`k × size` row-major: each one
    /// simulation's values, or for NLE and NRE one or more trials), the `i`-th's seeded by
    /// `seed + i`, with the sampler's diagnostics; each observation's result on its own, so
    /// that one bad observation does not lose the others. The default draws at the
    /// observations in parallel; NPE draws at all of them with one network call per round of
    /// proposals.
    ///
    /// # Errors
    /// Per observation, as [`Posterior::sample_run_with_seed`]; [`crate::Error::Observation`]
    /// for the whole call when the values are not a multiple of the observation's size.
    fn sample_many_with_seed(
        &self,
        observations: &[f64],
        size: usize,
        n: usize,
        seed: u64,
    ) -> Result<Vec<Result<SamplerRun>>> {
        use rayon::prelude::*;
        check_many(observations, size)?;
        Ok(observations
            .par_chunks_exact(size)
            .enumerate()
            .map(|(i, x)| self.sample_run_with_seed(x, n, seed.wrapping_add(i as u64)))
            .collect())
    }

    /// `n` draws at `x_o` with `seed`, as a matrix.
    ///
    /// # Errors
    /// As [`Posterior::sample_run_with_seed`].
    fn sample_with_seed(&self, x_o: &[f64], n: usize, seed: u64) -> Result<Samples> {
        Ok(self.sample_run_with_seed(x_o, n, seed)?.into_samples())
    }

    /// `n` draws at `x_o`, as a matrix (`n × DIM` values with the parameters' names).
    ///
    /// # Errors
    /// As [`Posterior::sample_run_with_seed`].
    fn sample_flat(&self, x_o: &[f64], n: usize) -> Result<Samples> {
        self.sample_with_seed(x_o, n, self.seed())
    }

    /// `n` draws at `x_o`, as typed parameters.
    ///
    /// # Errors
    /// As [`Posterior::sample_run_with_seed`].
    fn sample(&self, x_o: &[f64], n: usize) -> Result<Vec<<Self::Prior as Prior>::Params>> {
        <<Self::Prior as Prior>::Params as Parameters>::from_rows(&self.sample_flat(x_o, n)?.values)
    }

    /// `log p̂(θ | x_o)` of each row of `theta` (`m × DIM`) up to a constant that depends on
    /// `x_o` only: NPE's `log q(θ | x_o)`, NLE's and NRE's potential; `-inf` outside the
    /// prior's support. Ranks of it among draws at one `x_o` (highest-density regions,
    /// expected coverage) need no normalisation.
    ///
    /// # Errors
    /// As [`Posterior::sample_run_with_seed`] for a bad observation;
    /// [`crate::Error::ShapeMismatch`] for rows of the wrong length.
    fn log_density(&self, theta: &[f64], x_o: &[f64]) -> Result<Vec<f64>>;

    /// Saves the posterior (weights, model identity, z-scoring, training range, sampler)
    /// to a safetensors file.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when the file cannot be written.
    fn save(&self, path: impl AsRef<Path>) -> Result<()>;

    /// Loads a posterior saved for `model` whose network includes a user's embedding: pass
    /// the same builder ([`EmbeddingNet::Custom`]; any other value for built-in ones).
    ///
    /// # Errors
    /// [`crate::Error::File`] for a corrupt or foreign file, another format, or weights that
    /// do not fit; [`crate::Error::ModelMismatch`] for a file of another model.
    fn load_with<M: Simulator<Prior = Self::Prior>>(
        path: impl AsRef<Path>,
        model: &M,
        custom: &EmbeddingNet,
    ) -> Result<Self>;

    /// Loads a posterior saved by [`Posterior::save`] for `model`; it samples as the saved
    /// one did.
    ///
    /// # Errors
    /// As [`Posterior::load_with`]; a file with a user's embedding needs `load_with`.
    fn load<M: Simulator<Prior = Self::Prior>>(path: impl AsRef<Path>, model: &M) -> Result<Self> {
        Self::load_with(path, model, &EmbeddingNet::Identity)
    }
}

/// Checks that `observations` are a whole number (one or more) of observations of `size`.
pub(crate) fn check_many(observations: &[f64], size: usize) -> Result<()> {
    if size == 0 || observations.is_empty() || !observations.len().is_multiple_of(size) {
        return Err(crate::Error::Observation(format!(
            "expected a multiple of {size} values (one observation each), got {}",
            observations.len()
        )));
    }
    Ok(())
}

/// Draws for several observations sampled together: `sample` runs once on the valid
/// observations (those `check` accepts), concatenated in order, and must return one run
/// for each; every observation gets its run, or its own error.
///
/// # Errors
/// `sample`'s error for the whole call.
pub(crate) fn sample_valid<R>(
    rows: &[std::borrow::Cow<'_, [f64]>],
    check: impl Fn(&[f64]) -> Result<()>,
    sample: impl FnOnce(&[f64]) -> Result<Vec<R>>,
    wrap: impl Fn(R) -> SamplerRun,
) -> Result<Vec<Result<SamplerRun>>> {
    let checked: Vec<Result<()>> = rows.iter().map(|x| check(x)).collect();
    let valid: Vec<f64> =
        rows.iter().zip(&checked).filter(|(_, c)| c.is_ok()).flat_map(|(x, _)| x.iter().copied()).collect();
    let mut runs = if valid.is_empty() { Vec::new() } else { sample(&valid)? }.into_iter();
    Ok(checked
        .into_iter()
        .map(|c| {
            c.and_then(|()| {
                runs.next().map(&wrap).ok_or_else(|| crate::Error::Config("a valid observation without draws".into()))
            })
        })
        .collect())
}

/// An inference method: settings that train a [`Posterior`] from simulations, once or in
/// rounds for one observation.
pub trait Method {
    /// The posterior it trains, for a model with prior `P`.
    type Posterior<P: Prior>: Posterior<Prior = P>;

    /// Trains on `sims`, simulated from `model`'s prior.
    ///
    /// # Errors
    /// [`crate::Error::ModelMismatch`] when the simulations come from another model;
    /// [`crate::Error::Config`] for invalid settings or too few simulations;
    /// [`crate::Error::TrainingDiverged`]; [`crate::Error::Unrepresentable`].
    fn train<M: Simulator>(&self, model: &M, sims: &Simulations) -> Result<Self::Posterior<M::Prior>>;

    /// Sequential inference for `x_o`: round 1 simulates from the prior, each later round
    /// from a proposal built from the last posterior, and every round trains on all
    /// simulations so far. See [`crate::inference::sequential`].
    ///
    /// # Errors
    /// As [`Method::train`]; [`crate::Error::Config`] for no rounds;
    /// [`crate::Error::Observation`] for a bad `x_o`; the proposals' sampling errors.
    fn train_rounds<M: Simulator>(
        &self,
        model: &M,
        x_o: &[f64],
        rounds: &Rounds,
    ) -> Result<SequentialRun<Self::Posterior<M::Prior>>>;
}
