//! Neural ratio estimation: a classifier `l(θ, x)` is trained to tell pairs drawn together,
//! `(θ, x) ~ p(θ, x)`, from pairs drawn apart, `θ' ~ p(θ)` for an `x`; its logit then
//! estimates `log p(x | θ) / p(x)` (up to a constant in θ), and the posterior
//! `∝ exp(Σ_k l(θ, x_k)) · p(θ)` is sampled by MCMC.
//!
//! Variants (losses as in `sbi`; the contrasting θ' of each x are drawn without replacement
//! from the rest of the batch):
//! - [`NreVariant::A`] (Hermans et al. 2020): binary cross-entropy, one joint and one marginal pair per x;
//! - [`NreVariant::B`] (Durkan et al. 2020, `sbi`'s default): 1-out-of-K classification of the
//!   joint pair among K atoms;
//! - [`NreVariant::C`] (Miller et al. 2022): K + 1 classes, the joint pair among K atoms or none,
//!   with prior odds γ;
//! - [`NreVariant::Balanced`] (Delaunoy et al. 2022): NRE-A plus `λ · (E_joint σ(l) + E_marg σ(l) − 1)²`,
//!   which makes the classifier conservative.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::estimators::{Columns, Standardizer};
use crate::inference::sequential::{self, Rounds, SequentialRun};
use crate::inference::{FeatureRange, Method, PotentialPosterior, TrialScore};
use crate::model::Shape;
use crate::model::{Prior, Simulator};
use crate::nn::embedding::SavedEmbedding;
use crate::nn::{Embedding, EmbeddingNet, ParamStore, ResidualNet};
use crate::samplers::Sampler;
use crate::simulate::Simulations;
use crate::train::losses::{BinaryRatio, ContrastiveRatio, Logit, MultiClassRatio};
use crate::train::{Loss, Pairs, TrainConfig, fit};

/// The NRE loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NreVariant {
    /// NRE-A (AALR): binary classification of joint against marginal pairs.
    A,
    /// NRE-B (SRE): the joint pair among `atoms` candidates (10 in `sbi`).
    B {
        /// Candidates per observation, the joint one included.
        atoms: usize,
    },
    /// NRE-C (CNRE): `classes` contrastive classes plus the marginal class, prior odds `gamma`
    /// (5 and 1.0 in `sbi`).
    C {
        /// Contrastive classes K.
        classes: usize,
        /// Odds of a joint pair against a marginal one.
        gamma: f64,
    },
    /// Balanced NRE: NRE-A with a balancing penalty of strength `regularization` (100 in `sbi`).
    Balanced {
        /// The penalty's weight λ.
        regularization: f64,
    },
}

impl Default for NreVariant {
    fn default() -> Self {
        NreVariant::B { atoms: 10 }
    }
}

impl NreVariant {
    fn validate(&self) -> Result<()> {
        let ok = match *self {
            NreVariant::A => true,
            NreVariant::B { atoms } => atoms >= 2,
            NreVariant::C { classes, gamma } => classes >= 1 && gamma > 0.0 && gamma.is_finite(),
            NreVariant::Balanced { regularization } => regularization >= 0.0 && regularization.is_finite(),
        };
        if ok { Ok(()) } else { Err(Error::Config(format!("invalid NRE settings {self:?}"))) }
    }
}

impl NreVariant {
    /// The variant's loss object for `classifier`.
    fn loss<'a>(&self, classifier: &'a Classifier) -> Box<dyn Loss + 'a> {
        match *self {
            NreVariant::A => Box::new(BinaryRatio { classifier, regularization: 0.0 }),
            NreVariant::Balanced { regularization } => Box::new(BinaryRatio { classifier, regularization }),
            NreVariant::B { atoms } => Box::new(ContrastiveRatio { classifier, atoms }),
            NreVariant::C { classes, gamma } => Box::new(MultiClassRatio { classifier, classes, gamma }),
        }
    }
}

impl std::str::FromStr for NreVariant {
    type Err = Error;

    /// `a`, `b` (10 atoms), `c` (5 classes, γ = 1) or `bnre` (`balanced`, λ = 100), as `sbi`.
    fn from_str(name: &str) -> Result<Self> {
        match name {
            "a" => Ok(NreVariant::A),
            "b" => Ok(NreVariant::B { atoms: 10 }),
            "c" => Ok(NreVariant::C { classes: 5, gamma: 1.0 }),
            "bnre" | "balanced" => Ok(NreVariant::Balanced { regularization: 100.0 }),
            _ => Err(Error::Config(format!("unknown NRE variant {name:?}: expected a, b, c or bnre"))),
        }
    }
}

/// The classifier: a residual network on the z-scored `[θ, x]` (`sbi`'s `resnet` classifier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Hidden units (50).
    pub hidden: usize,
    /// Residual blocks (2).
    pub blocks: usize,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig { hidden: 50, blocks: 2 }
    }
}

/// Neural ratio estimation: the loss variant, the classifier, training settings and the
/// posterior's sampler.
///
/// ```no_run
/// # use sbi_runtime::prelude::*;
/// # #[simulator] fn m(rng: &mut impl Rng) -> [f64; 1] { let t = sample!(Normal(0.0, 1.0)); [t + rng.random::<f64>()] }
/// let sims = simulate(&M, 10_000).seed(1).run()?;
/// let posterior = Nre::default().with_variant(NreVariant::C { classes: 5, gamma: 1.0 }).train(&M, &sims)?;
/// let draws: Vec<MParams> = posterior.sample(&[0.3], 1_000)?;
/// # Ok::<(), sbi_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Nre {
    /// The loss (NRE-B with 10 atoms).
    pub variant: NreVariant,
    /// The classifier network.
    pub classifier: ClassifierConfig,
    /// Training settings.
    pub training: TrainConfig,
    /// How the posterior is sampled (slice-sampling MCMC).
    pub sampler: Sampler,
    /// The embedding network applied to (z-scored) `x` before the classifier (identity by
    /// default); any built-in one (custom ones are not yet saved with NRE models).
    pub embedding: EmbeddingNet,
}

impl Nre {
    /// Sets the embedding network of `x` (a built-in one, or a user's: load its files with
    /// [`Posterior::load_with`](crate::inference::Posterior::load_with)).
    pub fn with_embedding(mut self, e: EmbeddingNet) -> Self {
        self.embedding = e;
        self
    }
    /// Sets the loss variant.
    pub fn with_variant(mut self, v: NreVariant) -> Self {
        self.variant = v;
        self
    }
    /// Sets the classifier.
    pub fn with_classifier(mut self, c: ClassifierConfig) -> Self {
        self.classifier = c;
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

    /// Trains from a new classifier, or from a copy of `warm` (its weights and z-scoring).
    fn train_from<M: Simulator>(
        &self,
        model: &M,
        sims: &Simulations,
        warm: Option<&Classifier>,
    ) -> Result<NrePosterior<M::Prior>> {
        self.variant.validate()?;
        if self.classifier.hidden == 0 {
            return Err(Error::Config("the classifier needs hidden units".into()));
        }
        let (prior, identity) = crate::inference::checked_prior(model, sims, "NRE")?;
        crate::inference::refuse_absent_trials(sims)?;
        let (d, f) = (sims.theta_dim(), sims.x_dim());
        self.embedding.validate(&sims.x_shape)?;
        let warm = warm.map(|w| (&w.store, &w.description));
        let (store, description) = crate::inference::warm_or_new(warm, &self.training, || ClassifierDescription {
            config: self.classifier.clone(),
            theta: Standardizer::fit(&sims.theta, d),
            x: Standardizer::fit(&sims.x, f),
            embedding: self.embedding.saved(),
            x_shape: sims.x_shape.clone(),
        })?;
        let classifier = Classifier::new(store, description, &self.embedding)?;
        let names = sims.param_names.clone();
        let data = Pairs {
            a: classifier.description.theta.to_tensor(
                &sims.theta,
                Columns::Parameters(&names),
                classifier.store.device(),
            )?,
            b: classifier.description.x.to_tensor(&sims.x, Columns::Observation, classifier.store.device())?,
        };
        let variant = self.variant;
        let summary = fit(&classifier.store, &data, &self.training, variant.loss(&classifier).as_ref())?;
        Ok(PotentialPosterior {
            prior,
            model: identity,
            score: classifier,
            x_range: FeatureRange::of_shape(&sims.x, &sims.x_shape),
            summary: Some(summary),
            sampler: self.sampler.clone().with_seed(self.training.seed),
            range_check: true,
            starts: None,
        })
    }
}

impl Method for Nre {
    type Posterior<P: Prior> = NrePosterior<P>;

    fn train<M: Simulator>(&self, model: &M, sims: &Simulations) -> Result<NrePosterior<M::Prior>> {
        self.train_from(model, sims, None)
    }

    /// Sequential NRE (SNRE): each later round simulates from the last posterior at `x_o`
    /// (drawn by its sampler).
    fn train_rounds<M: Simulator>(
        &self,
        model: &M,
        x_o: &[f64],
        rounds: &Rounds,
    ) -> Result<SequentialRun<NrePosterior<M::Prior>>> {
        sequential::potential_rounds(model, x_o, rounds, |sims, warm| self.train_from(model, sims, warm))
    }
}

/// The trained classifier; its logit is NRE's per-trial score.
pub struct Classifier {
    store: ParamStore,
    description: ClassifierDescription,
    embedding: Box<dyn Embedding>,
    net: ResidualNet,
}

/// What rebuilds a classifier from its weights: the network's size, the z-scoring and the
/// embedding of `x`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClassifierDescription {
    config: ClassifierConfig,
    theta: Standardizer,
    x: Standardizer,
    embedding: SavedEmbedding,
    x_shape: Shape,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("config", &self.description.config)
            .field("embedding", &self.description.embedding)
            .field("x_shape", &self.description.x_shape)
            .field("device", self.store.device())
            .finish_non_exhaustive()
    }
}

impl Classifier {
    fn new(store: ParamStore, description: ClassifierDescription, embedding: &EmbeddingNet) -> Result<Self> {
        let c = &description.config;
        let x_shape = description.x_shape.clone();
        description.theta.check(description.theta.mean.len(), "θ")?;
        description.x.check(x_shape.numel(), "x")?;
        let (embedding, width) = embedding.build(store.var_builder().pp("embedding"), &x_shape)?;
        let inputs = description.theta.mean.len() + width;
        let net = ResidualNet::new(store.var_builder().pp("classifier"), inputs, c.hidden, c.blocks, 1)?;
        Ok(Classifier { store, description, embedding, net })
    }

    /// The logit `l(θ, x)` of z-scored rows ([`TrialScore::theta_standardizer`],
    /// [`TrialScore::x_standardizer`]): `[m, d]`, `[m, f]` → `[m]`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn logit(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.embedding.forward(x)?;
        self.net.forward(&Tensor::cat(&[theta, &x], 1)?)?.squeeze(1)
    }
}

impl Classifier {
    /// The embedding network's features of raw observations (`k × numel` row-major, one
    /// trial each): `k × width` values and the width. Pass them to
    /// [`crate::diagnostics::misspecification_mmd`] to test `x_o` in the space the
    /// classifier sees.
    ///
    /// # Errors
    /// [`crate::Error::Observation`] for values that are not whole observations; a network
    /// error.
    pub fn embed(&self, observations: &[f64]) -> Result<(Vec<f64>, usize)> {
        crate::inference::posterior::check_many(observations, self.description.x_shape.numel())?;
        let x = self.description.x.to_tensor(observations, Columns::Observation, self.store.device())?;
        let out = self.embedding.forward(&x)?;
        let width = out.dims().last().copied().unwrap_or(0);
        Ok((crate::nn::to_f64(&out)?, width))
    }
}

impl Logit for Classifier {
    fn logit(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
        Classifier::logit(self, theta, x)
    }
}

impl crate::inference::SavedScore for Classifier {
    const FORMAT: &'static str = "sbi-rs/nre";
    const VERSION: u32 = 2;
    const WHAT: &'static str = "an NRE posterior";

    fn describe(&self) -> Result<serde_json::Value> {
        serde_json::to_value(&self.description)
            .map_err(|e| Error::Config(format!("cannot describe the classifier ({e})")))
    }

    fn weights(&self) -> &ParamStore {
        &self.store
    }

    fn rebuild(
        path: &std::path::Path,
        description: serde_json::Value,
        weights: ParamStore,
        custom: &EmbeddingNet,
    ) -> Result<Self> {
        let d: ClassifierDescription = serde_json::from_value(description)
            .map_err(|e| Error::Config(format!("unknown classifier description ({e})")))?;
        let embedding = d.embedding.resolve(path, custom)?;
        Classifier::new(weights, d, &embedding)
    }
}

impl TrialScore for Classifier {
    fn device(&self) -> &Device {
        self.store.device()
    }

    fn theta_standardizer(&self) -> &Standardizer {
        &self.description.theta
    }

    fn x_standardizer(&self) -> &Standardizer {
        &self.description.x
    }

    fn score(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
        self.logit(theta, x)
    }
}

/// A trained NRE posterior: the classifier's logit summed over trials, plus the log prior.
pub type NrePosterior<P> = PotentialPosterior<P, Classifier>;
