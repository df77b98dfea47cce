//! Inference methods. Each is a configuration plus a loss; all share the training loop.
//!
//! - [`Npe`]: neural posterior estimation, a conditional density `q(θ | x)` trained by
//!   maximum likelihood on `(θ, x) ~ p(θ) p(x | θ)`; sampling is direct.
//! - [`Fmpe`]: flow matching posterior estimation, a conditional vector field whose ODE
//!   carries base noise to `q(θ | x)`; sampling solves the ODE.
//! - [`Npse`]: neural posterior score estimation, the score of the posterior noised by a
//!   diffusion; sampling runs the reverse SDE or the probability-flow ODE.
//! - [`Nle`]: neural likelihood estimation, a conditional density `q(x | θ)`; the posterior
//!   `∝ Π_k q(x_k | θ) p(θ)` is sampled by MCMC.
//! - [`Nre`]: neural ratio estimation, a classifier whose logit estimates
//!   `log p(x | θ) / p(x)`; the posterior `∝ exp(Σ_k logit(θ, x_k)) p(θ)` is sampled by MCMC.
//! - [`abc`]: approximate Bayesian computation, rejection ([`RejectionAbc`], on a table of
//!   prior simulations) and sequential Monte Carlo ([`SmcAbc`]); no network.
//! - [`sequential`]: several rounds for one observation (TSNPE, SNLE, SNRE), each
//!   simulating where the last round's posterior puts its mass.

pub mod abc;
pub mod fmpe;
pub mod nle;
pub mod npe;
pub mod npse;
pub mod nre;
pub mod point;
mod posterior;

mod saved;
pub mod scored;
pub mod sequential;
pub mod vector_field;

pub use crate::estimators::FlowSolver;
pub use crate::samplers::Samples;
pub use abc::{RejectionAbc, RejectionAbcPosterior, SmcAbc, SmcAbcPosterior};
pub use fmpe::{Fmpe, FmpePosterior};
pub use nle::{Nle, NlePosterior};
pub use npe::{Npe, NpePosterior, NpePotential, SequentialNpe, ThetaSpace};
pub use npse::{Npse, NpsePosterior};
pub use nre::{Nre, NrePosterior, NreVariant};
pub use posterior::{Method, Posterior};
pub use scored::{PotentialPosterior, SavedScore, TrialScore};
pub use sequential::{Round, Rounds, SequentialRun};
pub use vector_field::{DEFAULT_ANNEAL_EPOCHS, DEFAULT_EMA_DECAY, DEFAULT_STOP_AFTER, VectorFieldPosterior};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Simulator;
use crate::simulate::{ModelIdentity, Simulations};

/// The starting point of a training: a copy of a warm start's weights and description
/// (architecture and z-scoring), or a new store seeded with `seed` and a description made
/// by `new`.
pub(crate) fn warm_or_new<T: Clone>(
    warm: Option<(&crate::nn::ParamStore, &T)>,
    training: &crate::train::TrainConfig,
    new: impl FnOnce() -> T,
) -> Result<(crate::nn::ParamStore, T)> {
    Ok(match warm {
        Some((store, description)) => (store.warm_copy()?, description.clone()),
        None => (crate::nn::ParamStore::new(training.seed).with_device(training.device.device()?), new()),
    })
}

/// Refuses draws with non-finite values: a network with NaN weights (a corrupt file or a
/// diverged training) makes them, and they must not pass for a posterior or be blamed on the
/// observation.
pub(crate) fn check_draws(draws: &[f64]) -> Result<()> {
    match draws.iter().find(|v| !v.is_finite()) {
        Some(v) => Err(Error::NetworkOutput { what: format!("a draw of {v}") }),
        None => Ok(()),
    }
}

/// Refuses simulations with absent (NaN) trials: NLE and NRE score one trial per row.
pub(crate) fn refuse_absent_trials(sims: &Simulations) -> Result<()> {
    if sims.x.iter().any(|v| v.is_nan()) {
        return Err(Error::AbsentTrials {
            advice: "NLE and NRE take one trial per simulation and add up trials themselves; use NPE with DeepSets"
                .into(),
        });
    }
    Ok(())
}

/// The model's prior and identity, after checking that `sims` were simulated by this
/// model ([`Simulations::check_model`]) and hold parameters and observations.
pub(crate) fn checked_prior<M: Simulator>(
    model: &M,
    sims: &Simulations,
    method: &str,
) -> Result<(M::Prior, ModelIdentity)> {
    let identity = ModelIdentity::of(model);
    identity.check(
        &sims.model,
        || "the simulations to train on".into(),
        "simulate again with this model (or train the model that made them)",
    )?;
    let (d, c) = (sims.theta_dim(), sims.x_dim());
    if d == 0 || c == 0 {
        return Err(Error::Config(format!("{method} needs parameters and observations, got {d} and {c} values")));
    }
    Ok((model.prior(), identity))
}

/// Checks one observation of `shape`: its size, whole trials where trials may be absent
/// (NaN rows, for models with a varying number of them), at least one trial present, and
/// each trial present finite and (with `range_check`) inside the training range.
pub(crate) fn check_shaped_observation(
    shape: &crate::model::Shape,
    range: &FeatureRange,
    range_check: bool,
    x_o: &[f64],
) -> Result<()> {
    let c = shape.numel();
    if x_o.len() != c {
        return Err(Error::Observation(format!("expected {c} values (shape {shape}), got {}", x_o.len())));
    }
    let trials = crate::model::present_trials(shape, x_o)
        .map_err(|j| Error::Observation(format!("value {j} is NaN (only whole trials may be absent)")))?;
    if trials.iter().all(Option::is_none) {
        return Err(Error::Observation("no trial is present".into()));
    }
    for trial in trials.into_iter().flatten() {
        range.check(trial, range_check)?;
    }
    Ok(())
}

/// An observation of fewer trials than `shape`'s maximum, padded with absent (NaN) trials;
/// any other observation unchanged.
pub(crate) fn padded_trials<'a>(shape: &crate::model::Shape, x_o: &'a [f64]) -> std::borrow::Cow<'a, [f64]> {
    match *shape {
        crate::model::Shape::Trials { trials, features }
            if !x_o.is_empty() && x_o.len() < trials * features && x_o.len().is_multiple_of(features) =>
        {
            let mut v = x_o.to_vec();
            v.resize(trials * features, f64::NAN);
            std::borrow::Cow::Owned(v)
        }
        _ => std::borrow::Cow::Borrowed(x_o),
    }
}

/// Minimum and maximum of each value of the training observations: per feature for
/// vectors; over all values for images, series and trials, whose positions are alike (a
/// per-pixel range would reject most held-out images for noise in a single pixel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FeatureRange {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

impl FeatureRange {
    /// The range of each of `cols` columns of row-major `x`.
    pub fn of(x: &[f64], cols: usize) -> Self {
        let mut min = vec![f64::INFINITY; cols];
        let mut max = vec![f64::NEG_INFINITY; cols];
        for row in x.chunks_exact(cols) {
            for j in 0..cols {
                min[j] = min[j].min(row[j]);
                max[j] = max[j].max(row[j]);
            }
        }
        FeatureRange { min, max }
    }

    /// The range of observations of `shape` (see the type's description).
    pub fn of_shape(x: &[f64], shape: &crate::model::Shape) -> Self {
        let cols = shape.numel();
        let mut r = Self::of(x, cols);
        if !matches!(shape, crate::model::Shape::Vector(_)) {
            let lo = r.min.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = r.max.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            r = FeatureRange { min: vec![lo; cols], max: vec![hi; cols] };
        }
        r
    }

    /// Checks that the range has `cols` columns with `min ≤ max` (a file's header could say
    /// otherwise).
    pub fn validate(&self, cols: usize) -> std::result::Result<(), String> {
        if self.min.len() != cols || self.max.len() != cols {
            return Err(format!(
                "the training range has {} and {} values for observations of {cols}",
                self.min.len(),
                self.max.len()
            ));
        }
        if self.min.iter().zip(&self.max).any(|(lo, hi)| lo.is_nan() || hi.is_nan() || lo > hi) {
            return Err("the training range has a minimum above its maximum".into());
        }
        Ok(())
    }

    /// Checks one row: finite values and, with `range_check`, inside the training range.
    pub fn check(&self, row: &[f64], range_check: bool) -> Result<()> {
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            return Err(Error::Observation(format!("value {j} is {}", row[j])));
        }
        if range_check {
            for (j, &v) in row.iter().enumerate() {
                let (lo, hi) = (self.min[j], self.max[j]);
                if v < lo || v > hi {
                    return Err(Error::Observation(format!(
                        "value {j} = {v} lies outside the training range [{lo}, {hi}]: the estimator would \
                         extrapolate (simulate more widely, or call `without_range_check()` to accept it)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks an observation of one or more iid trials of `self.min.len()` values each;
    /// returns the number of trials.
    pub fn check_trials(&self, x_o: &[f64], range_check: bool) -> Result<usize> {
        let f = self.min.len();
        if x_o.is_empty() || !x_o.len().is_multiple_of(f) {
            return Err(Error::Observation(format!(
                "expected one or more trials of {f} values, got {} values",
                x_o.len()
            )));
        }
        for trial in x_o.chunks_exact(f) {
            self.check(trial, range_check)?;
        }
        Ok(x_o.len() / f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Non-finite draws (a network with NaN weights) are the network's fault, not the
    /// observation's.
    #[test]
    fn non_finite_draws_blame_the_network() {
        assert!(check_draws(&[0.5, -1.0]).is_ok());
        let err = check_draws(&[0.5, f64::NAN]).unwrap_err();
        assert!(matches!(err, Error::NetworkOutput { .. }));
        assert!(!err.to_string().contains("range"));
    }
}
