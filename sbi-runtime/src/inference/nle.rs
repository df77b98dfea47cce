//! Neural likelihood estimation (Papamakarios et al. 2019): train a conditional density
//! `q(x | θ)` by maximum likelihood on simulations, then sample the posterior
//! `p̂(θ | x_o) ∝ Π_k q(x_k | θ) · p(θ)` by MCMC. An observation of several iid trials
//! multiplies their likelihoods, so one trained model serves any number of trials.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::estimators::{Columns, ConditionalEstimator, DensityEstimator, EstimatorSpec, Standardizer};
use crate::inference::sequential::{self, Rounds, SequentialRun};
use crate::inference::{FeatureRange, Method, PotentialPosterior, TrialScore};
use crate::model::{Prior, Shape, Simulator};
use crate::nn::{EmbeddingNet, ParamStore};
use crate::samplers::Sampler;
use crate::simulate::Simulations;
use crate::train::losses::NegativeLogLikelihood;
use crate::train::{Pairs, TrainConfig, fit};

/// Neural likelihood estimation: the density estimator of `x` given `θ`, training settings
/// and the posterior's sampler.
///
/// ```no_run
/// # use sbi_runtime::prelude::*;
/// # #[simulator] fn m(rng: &mut impl Rng) -> [f64; 1] { let t = sample!(Normal(0.0, 1.0)); [t + rng.random::<f64>()] }
/// let sims = simulate(&M, 10_000).seed(1).run()?;
/// let posterior = Nle::default().train(&M, &sims)?;
/// let draws: Vec<MParams> = posterior.sample(&[0.3], 1_000)?;          // one trial
/// let pooled = posterior.sample_flat(&[0.3, 0.5, 0.1], 1_000)?;       // three iid trials
/// # Ok::<(), sbi_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Nle {
    /// The conditional density estimator of `x` given `θ` (MAF by default, as `sbi`).
    pub estimator: DensityEstimator,
    /// Training settings.
    pub training: TrainConfig,
    /// How the posterior is sampled (slice-sampling MCMC).
    pub sampler: Sampler,
    /// The network applied to the z-scored `θ` before it conditions the estimator (identity
    /// by default): an `Mlp`, or a user's network for parameters with structure.
    pub embedding: EmbeddingNet,
}

impl Nle {
    /// Sets the density estimator.
    pub fn with_estimator(mut self, e: DensityEstimator) -> Self {
        self.estimator = e;
        self
    }
    /// Sets the training settings.
    pub fn with_training(mut self, t: TrainConfig) -> Self {
        self.training = t;
        self
    }
    /// Sets the sampler.
    pub fn with_sampler(mut self, s: Sampler) -> Self {
        self.sampler = s;
        self
    }
    /// Sets the embedding network of `θ` (see [`Nle::embedding`]); files of a posterior with
    /// a user's network load through
    /// [`Posterior::load_with`](crate::inference::Posterior::load_with).
    pub fn with_embedding(mut self, e: EmbeddingNet) -> Self {
        self.embedding = e;
        self
    }

    /// Trains from a new network, or from a copy of `warm` (its weights and z-scoring).
    fn train_from<M: Simulator>(
        &self,
        model: &M,
        sims: &Simulations,
        warm: Option<&LikelihoodScore>,
    ) -> Result<NlePosterior<M::Prior>> {
        let (prior, identity) = crate::inference::checked_prior(model, sims, "NLE")?;
        crate::inference::refuse_absent_trials(sims)?;
        let (d, f) = (sims.theta_dim(), sims.x_dim());
        self.estimator.validate(f)?;
        self.embedding.validate(&Shape::Vector(d))?;
        let warm = warm.map(|LikelihoodScore(w)| (&w.store, &w.spec));
        let (store, spec) = crate::inference::warm_or_new(warm, &self.training, || EstimatorSpec {
            estimator: self.estimator.clone(),
            embedding: self.embedding.saved(),
            features: f,
            context_shape: Shape::Vector(d),
            seed: self.training.seed,
            input_std: Standardizer::fit(&sims.x, f),
            context_std: Standardizer::fit(&sims.theta, d),
        })?;
        let estimator = ConditionalEstimator::build(store, spec, &self.embedding)?;
        let names = sims.param_names.clone();
        let data = Pairs {
            a: estimator.input_tensor(&sims.x, Columns::Observation)?,
            b: estimator.context_tensor(&sims.theta, Columns::Parameters(&names))?,
        };
        let summary = fit(&estimator.store, &data, &self.training, &NegativeLogLikelihood(&estimator))?;
        Ok(PotentialPosterior {
            prior,
            model: identity,
            score: LikelihoodScore(estimator),
            x_range: FeatureRange::of_shape(&sims.x, &sims.x_shape),
            summary: Some(summary),
            sampler: self.sampler.clone().with_seed(self.training.seed),
            range_check: true,
            starts: None,
        })
    }
}

impl Method for Nle {
    type Posterior<P: Prior> = NlePosterior<P>;

    fn train<M: Simulator>(&self, model: &M, sims: &Simulations) -> Result<NlePosterior<M::Prior>> {
        self.train_from(model, sims, None)
    }

    /// Sequential NLE (SNLE): each later round simulates from the last posterior at `x_o`
    /// (drawn by its sampler).
    fn train_rounds<M: Simulator>(
        &self,
        model: &M,
        x_o: &[f64],
        rounds: &Rounds,
    ) -> Result<SequentialRun<NlePosterior<M::Prior>>> {
        sequential::potential_rounds(model, x_o, rounds, |sims, warm| self.train_from(model, sims, warm))
    }
}

/// NLE's per-trial score: the trained `log q(x | θ)`.
#[derive(Debug)]
pub struct LikelihoodScore(ConditionalEstimator);

impl LikelihoodScore {
    /// The trained conditional density `q(x | θ)`.
    pub fn estimator(&self) -> &ConditionalEstimator {
        &self.0
    }
}

impl crate::inference::SavedScore for LikelihoodScore {
    const FORMAT: &'static str = "sbi-rs/nle";
    const VERSION: u32 = 2;
    const WHAT: &'static str = "an NLE posterior";

    fn describe(&self) -> Result<serde_json::Value> {
        serde_json::to_value(&self.0.spec).map_err(|e| Error::Config(format!("cannot describe the estimator ({e})")))
    }

    fn weights(&self) -> &ParamStore {
        &self.0.store
    }

    fn rebuild(
        path: &std::path::Path,
        description: serde_json::Value,
        weights: ParamStore,
        custom: &EmbeddingNet,
    ) -> Result<Self> {
        let spec: EstimatorSpec = serde_json::from_value(description)
            .map_err(|e| Error::Config(format!("unknown estimator description ({e})")))?;
        let embedding = spec.embedding.resolve(path, custom)?;
        Ok(LikelihoodScore(ConditionalEstimator::build(weights, spec, &embedding)?))
    }
}

impl TrialScore for LikelihoodScore {
    fn device(&self) -> &candle_core::Device {
        self.0.device()
    }

    fn theta_standardizer(&self) -> &Standardizer {
        self.0.context_standardizer()
    }

    fn x_standardizer(&self) -> &Standardizer {
        self.0.input_standardizer()
    }

    fn score(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
        self.0.log_prob(x, theta)
    }
}

/// A trained NLE posterior: `log q(x | θ)` summed over trials, plus the log prior.
pub type NlePosterior<P> = PotentialPosterior<P, LikelihoodScore>;
