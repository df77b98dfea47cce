//! Posteriors known through a potential, as NLE and NRE give them:
//! `log p̂(θ | x_o) = Σ_trials s(θ, x_k) + log p(θ) + const`, where the per-trial score `s`
//! is a learned log-likelihood (NLE) or log-ratio (NRE). They are sampled by MCMC or
//! importance sampling ([`Sampler`]).

use std::path::Path;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::estimators::{Columns, Standardizer};
use crate::inference::{FeatureRange, Posterior, saved};
use crate::model::{Prior, Simulator};
use crate::nn::{EmbeddingNet, ParamStore, to_f64};
use crate::potential::{Potential, batched_gradient, check_rows, nan_to_neg_inf};
use crate::samplers::{Sampler, SamplerRun, StartPool};
use crate::simulate::ModelIdentity;
use crate::train::TrainingSummary;

/// A learned per-trial score `s(θ, x)`, equal to `log p(x | θ)` up to a term constant in θ.
/// Its network sees z-scored values: raw rows are standardised in f64 by the two
/// standardizers before they become f32 tensors.
pub trait TrialScore: Send + Sync {
    /// The device of the network's parameters (and of the tensors it takes).
    fn device(&self) -> &candle_core::Device;
    /// The z-scoring of `θ` the network expects.
    fn theta_standardizer(&self) -> &Standardizer;
    /// The z-scoring of one trial of `x` the network expects.
    fn x_standardizer(&self) -> &Standardizer;
    /// Scores z-scored rows: `theta` `[m, d]`, `x` `[m, f]` → `[m]`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    fn score(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor>;
}

/// A per-trial score that is saved with its posterior and rebuilt from the file
/// ([`PotentialPosterior::save`], [`PotentialPosterior::load`]).
pub trait SavedScore: TrialScore + Sized {
    /// The `format` tag of its files (`sbi-rs/nle`, `sbi-rs/nre`).
    const FORMAT: &'static str;
    /// The file format's version this build writes and reads.
    const VERSION: u32;
    /// What the file holds, for error messages ("an NLE posterior").
    const WHAT: &'static str;
    /// The score's architecture and fixed transforms, as JSON.
    ///
    /// # Errors
    /// [`Error::Config`] when the description cannot be written.
    fn describe(&self) -> Result<serde_json::Value>;
    /// The score's trained weights.
    fn weights(&self) -> &ParamStore;
    /// Rebuilds the score from [`SavedScore::describe`]'s output and saved weights; a user's
    /// embedding named in the file must be `custom` ([`Error::File`] otherwise).
    ///
    /// # Errors
    /// [`Error::File`] when the file names an embedding `custom` is not; [`Error::Config`] for
    /// an unreadable description; tensor errors for weights that do not fit.
    fn rebuild(path: &Path, description: serde_json::Value, weights: ParamStore, custom: &EmbeddingNet)
    -> Result<Self>;
}

/// The JSON description in a potential posterior's file.
#[derive(Serialize, Deserialize)]
struct PotentialHeader {
    model: ModelIdentity,
    x_range: FeatureRange,
    sampler: Sampler,
    score: serde_json::Value,
}

/// Rows per network call when scoring many parameter sets against many trials.
const ROWS_PER_CALL: usize = 50_000;

/// The potential of one observation (one or more iid trials) under a trained score.
#[derive(Debug)]
pub struct TrialPotential<'a, P, S> {
    prior: &'a P,
    score: &'a S,
    x_o: &'a [f64],
    trials: usize,
}

impl<P: Prior, S: TrialScore> TrialPotential<'_, P, S> {
    /// The summed per-trial scores of each row of `chunk` and, when asked, their gradient
    /// with respect to `θ` through candle's autograd.
    fn trial_sums(&self, chunk: &[f64], with_grad: bool) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let d = self.prior.dim();
        let (k, f) = (self.trials, self.x_o.len() / self.trials);
        let m = chunk.len() / d;
        // Row r·k + t pairs parameter set r with trial t.
        let mut th = Vec::with_capacity(m * k * d);
        for row in chunk.chunks_exact(d) {
            for _ in 0..k {
                th.extend_from_slice(row);
            }
        }
        let xs: Vec<f64> = self.x_o.iter().copied().cycle().take(m * k * f).collect();
        let x = self.score.x_standardizer().to_tensor(&xs, Columns::Observation, self.score.device())?;
        // A parameter set beyond f32's range once z-scored scores -inf (see `to_tensor_flagging`).
        let (theta, representable) = self.score.theta_standardizer().to_tensor_flagging(
            &th,
            Columns::Parameters(&self.prior.names()),
            self.score.device(),
        )?;
        let (s, g) = if with_grad {
            let var = candle_core::Var::from_tensor(&theta)?;
            let s = self.score.score(var.as_tensor(), &x)?;
            let grads = s.sum_all()?.backward()?;
            let mut g = match grads.get(var.as_tensor()) {
                Some(g) => to_f64(g)?,
                None => vec![0.0; m * k * d],
            };
            self.score.theta_standardizer().unscale_gradient(&mut g);
            (to_f64(&s)?, Some(g))
        } else {
            (to_f64(&self.score.score(&theta, &x)?)?, None)
        };
        let sums = s
            .chunks_exact(k)
            .zip(representable.chunks_exact(k))
            .map(|(per_trial, ok)| if ok[0] { per_trial.iter().sum() } else { f64::NEG_INFINITY })
            .collect();
        // The gradient of a row is the sum over its trials' copies.
        let g = g.map(|g| {
            g.chunks_exact(k * d)
                .flat_map(|copies| (0..d).map(move |j| (0..k).map(|t| copies[t * d + j]).sum::<f64>()))
                .collect()
        });
        Ok((sums, g))
    }

    fn rows_per_chunk(&self) -> usize {
        (ROWS_PER_CALL / self.trials).max(1)
    }
}

impl<P: Prior, S: TrialScore> Potential for TrialPotential<'_, P, S> {
    fn dim(&self) -> usize {
        self.prior.dim()
    }

    fn log_potential(&self, theta: &[f64]) -> Result<Vec<f64>> {
        let d = self.prior.dim();
        check_rows(theta, d)?;
        let mut out = Vec::with_capacity(theta.len() / d);
        for chunk in theta.chunks(self.rows_per_chunk() * d) {
            let (sums, _) = self.trial_sums(chunk, false)?;
            for (row, s) in chunk.chunks_exact(d).zip(sums) {
                let prior = self.prior.log_prob_flat(row)?;
                out.push(if prior.is_finite() { nan_to_neg_inf(prior + s) } else { f64::NEG_INFINITY });
            }
        }
        Ok(out)
    }

    /// The scores' gradient through candle's autograd; the prior's (plain Rust code) by
    /// central differences.
    fn log_potential_grad(&self, theta: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let d = self.prior.dim();
        check_rows(theta, d)?;
        let prior_lp = |rows: &[f64]| -> Result<Vec<f64>> {
            rows.chunks_exact(d).map(|r| Ok(nan_to_neg_inf(self.prior.log_prob_flat(r)?))).collect()
        };
        let mut grad = batched_gradient(theta, d, prior_lp)?;
        let prior = prior_lp(theta)?;
        let mut values = Vec::with_capacity(theta.len() / d);
        let mut at = 0;
        for chunk in theta.chunks(self.rows_per_chunk() * d) {
            let (sums, g) = self.trial_sums(chunk, true)?;
            let g = g.unwrap_or_default();
            for (r, s) in sums.into_iter().enumerate() {
                let row = at + r;
                let v = if prior[row].is_finite() { nan_to_neg_inf(prior[row] + s) } else { f64::NEG_INFINITY };
                let gr = &mut grad[row * d..(row + 1) * d];
                if v.is_finite() {
                    gr.iter_mut().zip(&g[r * d..(r + 1) * d]).for_each(|(a, b)| *a += b);
                } else {
                    gr.iter_mut().for_each(|a| *a = 0.0);
                }
                values.push(v);
            }
            at += chunk.len() / d;
        }
        Ok((values, grad))
    }
}

/// A posterior known through its potential (NLE's and NRE's): the prior, the trained
/// per-trial score and the sampler.
#[derive(Debug)]
pub struct PotentialPosterior<P: Prior, S> {
    pub(crate) prior: P,
    pub(crate) model: ModelIdentity,
    pub(crate) score: S,
    pub(crate) x_range: FeatureRange,
    pub(crate) summary: Option<TrainingSummary>,
    pub(crate) sampler: Sampler,
    pub(crate) range_check: bool,
    pub(crate) starts: Option<ChainStarts>,
}

/// Where MCMC chains start for one observation: a sequential run's last proposal draws.
#[derive(Debug, Clone)]
pub(crate) struct ChainStarts {
    pub(crate) x_o: Vec<f64>,
    pub(crate) pool: StartPool,
}

impl<P: Prior, S: TrialScore> PotentialPosterior<P, S> {
    /// The trained per-trial score.
    pub fn score(&self) -> &S {
        &self.score
    }

    /// Sets the sampler (slice-sampling MCMC by default).
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Starts MCMC chains at `x_o` from `pool` (resampled by importance weight, see
    /// [`StartPool`]) rather than from prior draws; other observations keep the sampler's
    /// own initialisation. Sequential rounds set this to the last proposal's draws, so that
    /// chains start inside a posterior too small for prior draws to reach. Not saved.
    pub fn with_chain_starts(mut self, x_o: &[f64], pool: StartPool) -> Self {
        self.starts = Some(ChainStarts { x_o: x_o.to_vec(), pool });
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
    ///
    /// # Errors
    /// As [`PotentialPosterior::potential`].
    pub fn log_potential(&self, theta: &[f64], x_o: &[f64]) -> Result<Vec<f64>> {
        self.potential(x_o)?.log_potential(theta)
    }
}

fn file_kind<S: SavedScore>() -> saved::FileKind {
    saved::FileKind { format: S::FORMAT, version: S::VERSION, what: S::WHAT }
}

impl<P: Prior, S: SavedScore> Posterior for PotentialPosterior<P, S> {
    type Prior = P;

    fn model_identity(&self) -> Option<&ModelIdentity> {
        Some(&self.model)
    }

    fn prior(&self) -> &P {
        &self.prior
    }

    fn training_summary(&self) -> Option<&TrainingSummary> {
        self.summary.as_ref()
    }

    fn seed(&self) -> u64 {
        self.sampler.seed()
    }

    fn with_seed(mut self, seed: u64) -> Self {
        self.sampler = self.sampler.with_seed(seed);
        self
    }

    fn without_range_check(mut self) -> Self {
        self.range_check = false;
        self
    }

    /// Draws by the posterior's sampler (MCMC in the prior's unconstrained space, or
    /// importance sampling), with its diagnostics.
    fn sample_run_with_seed(&self, x_o: &[f64], n: usize, seed: u64) -> Result<SamplerRun> {
        if n == 0 {
            return Err(Error::Config("asked for no samples".into()));
        }
        let potential = self.potential(x_o)?;
        let pool = self.starts.as_ref().filter(|s| s.x_o == x_o).map(|s| &s.pool);
        self.sampler.clone().with_seed(seed).run_from(&self.prior, &potential, n, pool)
    }

    /// The potential `Σ_k s(θ, x_k) + log p(θ)`.
    fn log_density(&self, theta: &[f64], x_o: &[f64]) -> Result<Vec<f64>> {
        self.log_potential(theta, x_o)
    }

    /// Saves the trained score (safetensors weights) with the model's identity, the
    /// observations' training range and the sampler's settings.
    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let header = PotentialHeader {
            model: self.model.clone(),
            x_range: self.x_range.clone(),
            sampler: self.sampler.clone(),
            score: self.score.describe()?,
        };
        saved::save(path.as_ref(), &file_kind::<S>(), self.score.weights(), &header)
    }

    /// Loads a posterior whose network embeds `x` (NRE) or `θ` (NLE) with a user's network:
    /// pass the same builder ([`EmbeddingNet::Custom`]).
    ///
    fn load_with<M: Simulator<Prior = P>>(path: impl AsRef<Path>, model: &M, custom: &EmbeddingNet) -> Result<Self> {
        let path = path.as_ref();
        let saved::Loaded { header, weights, count: n_saved } =
            saved::load::<PotentialHeader>(path, &file_kind::<S>())?;
        saved::check_model(path, &header.model, model)?;
        let prior = model.prior();
        let score = S::rebuild(path, header.score, weights, custom).map_err(|e| match e {
            Error::File { .. } => e,
            e => Error::file(path, format!("the weights do not fit the model ({e})")),
        })?;
        saved::check_all_used(path, score.weights(), n_saved)?;
        let (d, f) = (score.theta_standardizer().mean.len(), score.x_standardizer().mean.len());
        header.x_range.validate(f).map_err(|e| Error::file(path, e))?;
        if d != prior.dim() {
            return Err(Error::file(path, format!("the network takes {d} parameters, the model has {}", prior.dim())));
        }
        Ok(PotentialPosterior {
            prior,
            model: header.model,
            score,
            x_range: header.x_range,
            summary: None,
            sampler: header.sampler,
            range_check: true,
            starts: None,
        })
    }
}
