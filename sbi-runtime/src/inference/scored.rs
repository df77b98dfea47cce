//! Posteriors known through a potential, as NLE and NRE give them:
//! `log p̂(θ | x_o) = Σ_trials s(θ, x_k) + log p(θ) + const`, where the per-trial score `s`
//! is a learned log-likelihood (NLE) or log-ratio (NRE). They are sampled by MCMC or
//! importance sampling ([`Sampler`]).

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::inference::{FeatureRange, Samples};
use crate::model::{Parameters, Prior};
use crate::nn::{matrix, to_f64};
use crate::potential::{Potential, check_rows, nan_to_neg_inf};
use crate::samplers::{Sampler, SamplerRun};
use crate::train::TrainingSummary;

/// A learned per-trial score `s(θ, x)`, equal to `log p(x | θ)` up to a term constant in θ.
pub trait TrialScore: Send + Sync {
    /// Scores rows: `theta` `[m, d]`, `x` `[m, f]` (raw values) → `[m]`.
    fn score(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor>;
}

/// Rows per network call when scoring many parameter sets against many trials.
const ROWS_PER_CALL: usize = 50_000;

/// The potential of one observation (one or more iid trials) under a trained score.
pub struct TrialPotential<'a, P, S> {
    prior: &'a P,
    score: &'a S,
    x_o: &'a [f64],
    trials: usize,
}

impl<P: Prior, S: TrialScore> Potential for TrialPotential<'_, P, S> {
    fn dim(&self) -> usize {
        self.prior.dim()
    }

    fn log_potential(&self, theta: &[f64]) -> Result<Vec<f64>> {
        let d = self.prior.dim();
        check_rows(theta, d)?;
        let (k, f) = (self.trials, self.x_o.len() / self.trials);
        let rows_per_chunk = (ROWS_PER_CALL / k).max(1);
        let mut out = Vec::with_capacity(theta.len() / d);
        for chunk in theta.chunks(rows_per_chunk * d) {
            let m = chunk.len() / d;
            // Row r·k + t pairs parameter set r with trial t.
            let mut th = Vec::with_capacity(m * k * d);
            for row in chunk.chunks_exact(d) {
                for _ in 0..k {
                    th.extend_from_slice(row);
                }
            }
            let xs: Vec<f64> = self.x_o.iter().copied().cycle().take(m * k * f).collect();
            let s = to_f64(&self.score.score(&matrix(&th, m * k, d)?, &matrix(&xs, m * k, f)?)?)?;
            for (row, per_trial) in chunk.chunks_exact(d).zip(s.chunks_exact(k)) {
                let prior = self.prior.log_prob_flat(row)?;
                let total = if prior.is_finite() { prior + per_trial.iter().sum::<f64>() } else { f64::NEG_INFINITY };
                out.push(nan_to_neg_inf(total));
            }
        }
        Ok(out)
    }
}

/// A posterior known through its potential (NLE's and NRE's): the prior, the trained
/// per-trial score and the sampler.
pub struct PotentialPosterior<P: Prior, S> {
    pub(crate) prior: P,
    pub(crate) score: S,
    pub(crate) x_range: FeatureRange,
    pub(crate) summary: Option<TrainingSummary>,
    pub(crate) sampler: Sampler,
    pub(crate) range_check: bool,
}

impl<P: Prior, S: TrialScore> PotentialPosterior<P, S> {
    /// The training summary.
    pub fn training_summary(&self) -> Option<&TrainingSummary> {
        self.summary.as_ref()
    }

    /// The parameters' names.
    pub fn names(&self) -> Vec<String> {
        self.prior.names()
    }

    /// The trained per-trial score.
    pub fn score(&self) -> &S {
        &self.score
    }

    /// Sets the sampler (slice-sampling MCMC by default).
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Sets the sampler's seed. The same seed gives the same draws.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.sampler = self.sampler.with_seed(seed);
        self
    }

    /// Turns off the check that observations lie within the range of the training data.
    pub fn without_range_check(mut self) -> Self {
        self.range_check = false;
        self
    }

    /// The potential at `x_o`: one trial (`f` values, as one simulation) or several iid
    /// trials (`k × f` values, row-major), whose scores add up.
    ///
    /// # Errors
    /// [`Error::Observation`] for a length that is not a multiple of a trial's, non-finite
    /// values, or values outside the training range.
    pub fn potential<'a>(&'a self, x_o: &'a [f64]) -> Result<TrialPotential<'a, P, S>> {
        let trials = self.x_range.check_trials(x_o, self.range_check)?;
        Ok(TrialPotential { prior: &self.prior, score: &self.score, x_o, trials })
    }

    /// The unnormalised log posterior `Σ_k s(θ, x_k) + log p(θ)` of each row of `theta`.
    pub fn log_potential(&self, theta: &[f64], x_o: &[f64]) -> Result<Vec<f64>> {
        self.potential(x_o)?.log_potential(theta)
    }

    /// `n` draws at `x_o` with the sampler's diagnostics (R̂ and ESS for MCMC).
    ///
    /// # Errors
    /// As [`PotentialPosterior::potential`]; the sampler's errors ([`Error::McmcBudget`], ...).
    pub fn sample_run(&self, x_o: &[f64], n: usize) -> Result<SamplerRun> {
        if n == 0 {
            return Err(Error::Config("asked for no samples".into()));
        }
        let potential = self.potential(x_o)?;
        self.sampler.run(&self.prior, &potential, n)
    }

    /// `n` draws at `x_o` as a matrix.
    pub fn sample_flat(&self, x_o: &[f64], n: usize) -> Result<Samples> {
        Ok(self.sample_run(x_o, n)?.into_samples())
    }

    /// `n` draws at `x_o` as typed parameters.
    pub fn sample(&self, x_o: &[f64], n: usize) -> Result<Vec<P::Params>> {
        P::Params::from_rows(&self.sample_flat(x_o, n)?.values)
    }
}
