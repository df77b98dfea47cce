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

use candle_core::{D, Device, Tensor};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::estimators::{Columns, Standardizer};
use crate::inference::sequential::{self, Rounds, SequentialRun};
use crate::inference::{FeatureRange, Method, PotentialPosterior, TrialScore};
use crate::model::Shape;
use crate::model::{Prior, Simulator};
use crate::nn::{Embedding, EmbeddingNet, ParamStore, ResidualNet};
use crate::rng::SimRng;
use crate::samplers::Sampler;
use crate::simulate::Simulations;
use crate::train::{Pairs, TrainConfig, fit};

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
            embedding: self.embedding.clone(),
            x_shape: sims.x_shape.clone(),
        })?;
        let classifier = Classifier::new(store, description)?;
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
        let summary =
            fit(&classifier.store, &data, &self.training, |theta, x, rng| classifier.loss(variant, theta, x, rng))?;
        Ok(PotentialPosterior {
            prior,
            model: identity,
            score: classifier,
            x_range: FeatureRange::of_shape(&sims.x, &sims.x_shape),
            summary: Some(summary),
            sampler: self.sampler.clone().with_seed(self.training.seed),
            range_check: true,
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
/// embedding of `x` (absent from files saved before embeddings: identity).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClassifierDescription {
    config: ClassifierConfig,
    theta: Standardizer,
    x: Standardizer,
    /// A built-in embedding as its JSON, a user's as `custom:NAME`.
    #[serde(default, serialize_with = "serialize_embedding")]
    embedding: EmbeddingNet,
    x_shape: Shape,
}

/// Writes a user's embedding by name (it cannot be serialised; loading asks for the builder).
fn serialize_embedding<S: serde::Serializer>(e: &EmbeddingNet, s: S) -> std::result::Result<S::Ok, S::Error> {
    match e {
        EmbeddingNet::Custom(_) => s.serialize_str(&e.describe()),
        other => other.serialize(s),
    }
}

impl Classifier {
    fn new(store: ParamStore, description: ClassifierDescription) -> Result<Self> {
        let c = &description.config;
        let x_shape = description.x_shape.clone();
        description.theta.check(description.theta.mean.len(), "θ")?;
        description.x.check(x_shape.numel(), "x")?;
        let (embedding, width) = description.embedding.build(store.var_builder().pp("embedding"), &x_shape)?;
        let inputs = description.theta.mean.len() + width;
        let net = ResidualNet::new(store.var_builder().pp("classifier"), inputs, c.hidden, c.blocks, 1)?;
        Ok(Classifier { store, description, embedding, net })
    }

    /// The logit `l(θ, x)` of z-scored rows ([`TrialScore::theta_standardizer`],
    /// [`TrialScore::x_standardizer`]): `[m, d]`, `[m, f]` → `[m]`.
    pub fn logit(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.embedding.forward(x)?;
        self.net.forward(&Tensor::cat(&[theta, &x], 1)?)?.squeeze(1)
    }

    /// Logits `[B, atoms]` of each x (row i) against its own θ (column 0) and `atoms − 1`
    /// others drawn without replacement from the rest of the batch.
    fn atom_logits(&self, theta: &Tensor, x: &Tensor, atoms: usize, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        let b = theta.dim(0)?;
        let atoms = atoms.min(b);
        let (theta_idx, x_idx) = atom_indices(b, atoms, rng, theta.device())?;
        self.logit(&theta.index_select(&theta_idx, 0)?, &x.index_select(&x_idx, 0)?)?.reshape((b, atoms))
    }

    /// The variant's loss on a batch (a scalar mean).
    fn loss(&self, variant: NreVariant, theta: &Tensor, x: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        let b = theta.dim(0)?;
        if b < 2 {
            // Nothing to contrast a single pair with (only in a tiny last validation chunk).
            return Tensor::zeros((), theta.dtype(), theta.device());
        }
        match variant {
            NreVariant::A | NreVariant::Balanced { .. } => {
                let logits = self.atom_logits(theta, x, 2, rng)?;
                let labels = Tensor::new(&[1f32, 0.0], theta.device())?.broadcast_as((b, 2))?.contiguous()?;
                let bce = crate::train::bce_with_logits(&logits, &labels)?;
                match variant {
                    NreVariant::Balanced { regularization } => {
                        let p = candle_nn::ops::sigmoid(&logits)?;
                        let balance = (p.sum(1)? - 1.0)?.mean_all()?.sqr()?;
                        bce + (balance * regularization)?
                    }
                    _ => Ok(bce),
                }
            }
            NreVariant::B { atoms } => {
                let logits = self.atom_logits(theta, x, atoms, rng)?;
                (logits.narrow(1, 0, 1)?.squeeze(1)? - log_sum_exp(&logits)?)?.mean_all()?.neg()
            }
            NreVariant::C { classes, gamma } => {
                let k = classes.min(b - 1);
                let marginal = self.atom_logits(theta, x, k + 1, rng)?.narrow(1, 1, k)?;
                let joint = self.atom_logits(theta, x, k, rng)?;
                let (log_gamma, log_k) = (gamma.ln(), (k as f64).ln());
                let log_k_col = Tensor::full(log_k as f32, (b, 1), theta.device())?;
                let lse = |l: &Tensor| log_sum_exp(&Tensor::cat(&[&(l + log_gamma)?, &log_k_col], 1)?);
                let lp_marginal = (log_k - lse(&marginal)?)?;
                let lp_joint = ((joint.narrow(1, 0, 1)?.squeeze(1)? + log_gamma)? - lse(&joint)?)?;
                let (p_marginal, p_joint) = (1.0 / (1.0 + gamma), gamma / (1.0 + gamma));
                ((lp_marginal * p_marginal)? + (lp_joint * p_joint)?)?.mean_all()?.neg()
            }
        }
    }
}

/// Contrastive atoms for a batch of `b` pairs: for each row i, `atoms` parameter rows (i
/// first, then `atoms − 1` others drawn without replacement from the rest of the batch) and
/// `atoms` copies of i for the observations. Returns both index vectors (`b · atoms`).
pub(crate) fn atom_indices(
    b: usize,
    atoms: usize,
    rng: &mut SimRng,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let mut theta_idx = Vec::with_capacity(b * atoms);
    let mut x_idx = Vec::with_capacity(b * atoms);
    for i in 0..b {
        let start = theta_idx.len();
        theta_idx.push(i as u32);
        while theta_idx.len() - start < atoms {
            // Uniform over the other rows; redraw a row already chosen.
            let j = rng.random_range(0..b - 1);
            let j = (if j >= i { j + 1 } else { j }) as u32;
            if !theta_idx[start..].contains(&j) {
                theta_idx.push(j);
            }
        }
        x_idx.extend(std::iter::repeat_n(i as u32, atoms));
    }
    Ok((Tensor::new(theta_idx, device)?, Tensor::new(x_idx, device)?))
}

/// `log Σ_j exp(l_ij)` over the last dimension.
pub(crate) fn log_sum_exp(l: &Tensor) -> candle_core::Result<Tensor> {
    let max = l.max_keepdim(D::Minus1)?.detach();
    l.broadcast_sub(&max)?.exp()?.sum(D::Minus1)?.log()? + max.squeeze(D::Minus1)?
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
        mut description: serde_json::Value,
        weights: ParamStore,
        custom: &EmbeddingNet,
    ) -> Result<Self> {
        // The embedding is resolved first: a user's one is stored by name and needs `custom`.
        let embedding = match description.get_mut("embedding") {
            Some(saved) => Some(crate::inference::saved::resolve_embedding(path, &saved.take(), custom)?),
            None => None,
        };
        if let Some(obj) = description.as_object_mut() {
            obj.remove("embedding");
        }
        let mut d: ClassifierDescription = serde_json::from_value(description)
            .map_err(|e| Error::Config(format!("unknown classifier description ({e})")))?;
        if let Some(e) = embedding {
            d.embedding = e;
        }
        Classifier::new(weights, d)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The log-sum-exp matches its definition, also for large logits.
    #[test]
    fn log_sum_exp_is_stable() {
        let l = Tensor::new(&[[1f32, 2.0, 3.0], [1000.0, 1000.0, -1000.0]], &Device::Cpu).unwrap();
        let v = log_sum_exp(&l).unwrap().to_vec1::<f32>().unwrap();
        let expected0 = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() as f32;
        assert!((v[0] - expected0).abs() < 1e-5);
        assert!((v[1] - (1000.0 + 2f32.ln())).abs() < 1e-3);
    }

    /// Each x is contrasted with its own θ first and with distinct other rows.
    #[test]
    fn atoms_are_distinct_and_exclude_the_own_row() {
        let store = ParamStore::new(1);
        let std = |d: usize| Standardizer { mean: vec![0.0; d], std: vec![1.0; d] };
        let description = ClassifierDescription {
            config: ClassifierConfig::default(),
            theta: std(1),
            x: std(1),
            embedding: EmbeddingNet::Identity,
            x_shape: Shape::Vector(1),
        };
        let c = Classifier::new(store, description).unwrap();
        // Recover each atom's θ row by matching its logit against (θ_j, x_i) for every j.
        let theta = Tensor::new(&[[0f32], [1.0], [2.0], [3.0], [4.0]], &Device::Cpu).unwrap();
        let x = Tensor::new(&[[0.5f32], [1.5], [2.5], [3.5], [4.5]], &Device::Cpu).unwrap();
        let mut rng = crate::rng::stream_rng(1, 2);
        let l = c.atom_logits(&theta, &x, 4, &mut rng).unwrap().to_vec2::<f32>().unwrap();
        for (i, row) in l.iter().enumerate() {
            let xi = Tensor::new(&[[x.to_vec2::<f32>().unwrap()[i][0]; 1]; 5], &Device::Cpu).unwrap();
            let all = c.logit(&theta, &xi).unwrap().to_vec1::<f32>().unwrap();
            // Batches of other sizes round differently in the last bits.
            let find = |v: f32| all.iter().position(|a| (a - v).abs() < 1e-5).expect("an atom is some row's θ");
            assert_eq!(find(row[0]), i, "row {i}: the first atom is the joint pair");
            let mut seen = vec![i];
            for v in &row[1..] {
                let j = find(*v);
                assert!(!seen.contains(&j), "row {i}: atom {j} repeated or own row");
                seen.push(j);
            }
        }
    }
}
