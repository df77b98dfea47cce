//! Amortised point and quantile estimators (neural Bayes estimators; Sainsbury-Dale,
//! Zammit-Mangion and Huser 2024, the methodology of NeuralEstimators.jl): a network maps an
//! observation straight to an estimate of θ, trained on simulations to minimise the Bayes
//! risk of a loss. Squared error gives the posterior mean, absolute error the marginal
//! medians, the tanh loss annealed toward the 0–1 loss the mode, and the quantile (pinball)
//! loss marginal posterior quantiles, which cannot cross by construction (a base quantile
//! plus softplus increments). One batched network call estimates thousands of data sets.

use std::path::Path;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::estimators::{Columns, Standardizer};
use crate::inference::{FeatureRange, saved};
use crate::model::{Shape, Simulator};
use crate::nn::embedding::SavedEmbedding;
use crate::nn::{Embedding, EmbeddingNet, ParamStore, ResidualNet};
use crate::rng::SimRng;
use crate::simulate::{ModelIdentity, Simulations};
use crate::train::{Loss, Pairs, TrainConfig, TrainingSummary, fit};

/// What the estimator estimates, and so the loss it is trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PointTarget {
    /// The posterior mean: the squared error `Σ_j (θ̂_j − θ_j)²`.
    Mean,
    /// The marginal posterior medians: the absolute error `Σ_j |θ̂_j − θ_j|`.
    Median,
    /// The posterior mode: the tanh loss `Σ_j tanh(|θ̂_j − θ_j| / κ)`, which tends to the
    /// 0–1 loss as κ → 0 with a bounded gradient (Sainsbury-Dale et al. 2025). Trained in
    /// stages, κ running through `kappas` (in z-scored θ, decreasing), each stage starting
    /// from the last one's weights: a small κ alone gives almost no gradient far from the
    /// mode.
    Mode {
        /// κ of each stage.
        kappas: Vec<f64>,
    },
    /// Marginal posterior quantiles at `levels` (strictly increasing, in (0, 1)): the
    /// quantile loss `Σ_j Σ_k ρ_τk(θ_j − q̂_jk)`, `ρ_τ(u) = u (τ − 1{u < 0})`.
    Quantiles {
        /// The quantile levels τ_k.
        levels: Vec<f64>,
    },
}

impl PointTarget {
    /// The mode with κ = 1, 0.3, 0.1 (z-scored θ).
    pub fn mode() -> Self {
        PointTarget::Mode { kappas: vec![1.0, 0.3, 0.1] }
    }

    /// A central credible interval of probability `level`: the quantiles `(1 − level)/2`
    /// and `(1 + level)/2`.
    pub fn interval(level: f64) -> Self {
        PointTarget::Quantiles { levels: vec![(1.0 - level) / 2.0, (1.0 + level) / 2.0] }
    }

    /// The quantile levels, empty for a point.
    pub fn levels(&self) -> &[f64] {
        match self {
            PointTarget::Quantiles { levels } => levels,
            _ => &[],
        }
    }

    /// Outputs per parameter: the number of levels, 1 for a point.
    fn per_param(&self) -> usize {
        self.levels().len().max(1)
    }

    fn validate(&self) -> Result<()> {
        match self {
            PointTarget::Mean | PointTarget::Median => Ok(()),
            PointTarget::Mode { kappas } => {
                if kappas.is_empty() || kappas.iter().any(|k| !(k.is_finite() && *k > 0.0)) {
                    return Err(Error::Config(format!("the tanh loss needs positive finite κ, got {kappas:?}")));
                }
                Ok(())
            }
            PointTarget::Quantiles { levels } => {
                let inside = levels.iter().all(|t| *t > 0.0 && *t < 1.0);
                let increasing = levels.windows(2).all(|w| w[0] < w[1]);
                if levels.is_empty() || !inside || !increasing {
                    return Err(Error::Config(format!(
                        "quantile levels must be strictly increasing in (0, 1), got {levels:?}"
                    )));
                }
                Ok(())
            }
        }
    }
}

/// The network after the embedding: a residual MLP (`sbi`'s classifier's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointNetConfig {
    /// Hidden units (64).
    pub hidden: usize,
    /// Residual blocks (2).
    pub blocks: usize,
}

impl Default for PointNetConfig {
    fn default() -> Self {
        PointNetConfig { hidden: 64, blocks: 2 }
    }
}

/// Training a point or quantile estimator: the target, the network, the embedding of `x`
/// and the training settings.
///
/// ```no_run
/// # use sbi_runtime::prelude::*;
/// # use sbi_runtime::inference::point::{PointEstimation, PointTarget};
/// # #[simulator] fn m(rng: &mut impl Rng) -> [f64; 1] { let t = sample!(Normal(0.0, 1.0)); [t + rng.random::<f64>()] }
/// let sims = simulate(&M, 10_000).seed(1).run()?;
/// let mean = PointEstimation::new(PointTarget::Mean).train(&M, &sims)?;
/// let interval = PointEstimation::new(PointTarget::interval(0.9)).train(&M, &sims)?;
/// let estimates = mean.estimate(&[0.3, 0.5, -1.2])?; // three data sets, one call
/// # Ok::<(), sbi_runtime::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PointEstimation {
    /// What is estimated.
    pub target: PointTarget,
    /// The network after the embedding.
    pub network: PointNetConfig,
    /// The embedding of (z-scored) `x`: identity by default; DeepSets for replicated data
    /// whose number of replicates varies.
    pub embedding: EmbeddingNet,
    /// Training settings (each stage of the mode's annealing uses them whole).
    pub training: TrainConfig,
}

impl PointEstimation {
    /// An estimator of `target` with the default network, no embedding and `sbi`'s training
    /// settings.
    pub fn new(target: PointTarget) -> Self {
        PointEstimation {
            target,
            network: PointNetConfig::default(),
            embedding: EmbeddingNet::Identity,
            training: TrainConfig::default(),
        }
    }

    /// Sets the embedding network of `x`.
    pub fn with_embedding(mut self, e: EmbeddingNet) -> Self {
        self.embedding = e;
        self
    }

    /// Sets the network after the embedding.
    pub fn with_network(mut self, n: PointNetConfig) -> Self {
        self.network = n;
        self
    }

    /// Sets the training settings.
    pub fn with_training(mut self, t: TrainConfig) -> Self {
        self.training = t;
        self
    }

    /// Trains on `sims`, simulated by `model`.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid settings (quantile levels not increasing in (0, 1), κ
    /// not positive, no hidden units) or simulations without parameters or observations;
    /// [`Error::ModelMismatch`] when `sims` come from another model; [`Error::AbsentTrials`]
    /// for absent trials without the DeepSets embedding; the embedding's and training's
    /// errors.
    pub fn train<M: Simulator>(&self, model: &M, sims: &Simulations) -> Result<PointEstimator> {
        self.target.validate()?;
        if self.network.hidden == 0 {
            return Err(Error::Config("the point estimator's network needs hidden units".into()));
        }
        let (_, identity) = crate::inference::checked_prior(model, sims, "point estimation")?;
        self.embedding.validate(&sims.x_shape)?;
        if sims.x.iter().any(|v| v.is_nan()) && !matches!(self.embedding, EmbeddingNet::DeepSets { .. }) {
            return Err(Error::AbsentTrials { advice: "use the DeepSets embedding".into() });
        }
        let (d, f) = (sims.theta_dim(), sims.x_dim());
        let description = PointDescription {
            target: self.target.clone(),
            network: self.network.clone(),
            theta: Standardizer::fit(&sims.theta, d),
            x: Standardizer::fit(&sims.x, f),
            embedding: self.embedding.saved(),
            x_shape: sims.x_shape.clone(),
            param_names: sims.param_names.clone(),
        };
        let store = ParamStore::new(self.training.seed).with_device(self.training.device.device()?);
        let mut estimator = PointEstimator::new(
            store,
            description,
            &self.embedding,
            identity,
            FeatureRange::of_shape(&sims.x, &sims.x_shape),
        )?;
        let device = estimator.store.device().clone();
        let data = Pairs {
            a: estimator.description.theta.to_tensor(&sims.theta, Columns::Parameters(&sims.param_names), &device)?,
            b: estimator.description.x.to_tensor(&sims.x, Columns::Observation, &device)?,
        };
        let stages: Vec<RiskLoss> = match &self.target {
            PointTarget::Mean => vec![RiskLoss::Squared],
            PointTarget::Median => vec![RiskLoss::Absolute],
            PointTarget::Mode { kappas } => kappas.iter().map(|&k| RiskLoss::Tanh(k)).collect(),
            PointTarget::Quantiles { levels } => vec![RiskLoss::Pinball(levels.clone())],
        };
        for stage in stages {
            let loss = Risk { estimator: &estimator, loss: stage };
            let summary = fit(&estimator.store, &data, &self.training, &loss)?;
            estimator.summaries.push(summary);
        }
        Ok(estimator)
    }
}

/// The loss of one training stage, on z-scored θ.
enum RiskLoss {
    Squared,
    Absolute,
    Tanh(f64),
    Pinball(Vec<f64>),
}

struct Risk<'a> {
    estimator: &'a PointEstimator,
    loss: RiskLoss,
}

impl Loss for Risk<'_> {
    fn loss(&self, theta: &Tensor, x: &Tensor, _rng: &mut SimRng) -> candle_core::Result<Tensor> {
        let est = self.estimator.forward(x)?; // [B, D, K]
        let (b, d) = theta.dims2()?;
        let k = est.dim(2)?;
        let u = theta.reshape((b, d, 1))?.broadcast_sub(&est)?; // θ − θ̂
        let per_row = match &self.loss {
            RiskLoss::Squared => u.sqr()?,
            RiskLoss::Absolute => u.abs()?,
            RiskLoss::Tanh(kappa) => (u.abs()? / *kappa)?.tanh()?,
            RiskLoss::Pinball(levels) => {
                let tau =
                    Tensor::from_vec(levels.iter().map(|&t| t as f32).collect::<Vec<_>>(), (1, 1, k), x.device())?;
                (u.broadcast_mul(&tau)? + u.neg()?.relu()?)?
            }
        };
        per_row.sum_keepdim(2)?.sum_keepdim(1)?.mean_all()
    }
}

/// What rebuilds an estimator from its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PointDescription {
    target: PointTarget,
    network: PointNetConfig,
    theta: Standardizer,
    x: Standardizer,
    embedding: SavedEmbedding,
    x_shape: Shape,
    param_names: Vec<String>,
}

/// A model file's header.
#[derive(Serialize, Deserialize)]
struct SavedHeader {
    description: PointDescription,
    model: ModelIdentity,
    x_range: FeatureRange,
}

const FILE: saved::FileKind = saved::FileKind { format: "sbi-rs/point", version: 1, what: "a point estimator" };

/// Observations per network call in [`PointEstimator::estimate`].
const CHUNK: usize = 4096;

/// A trained point or quantile estimator.
pub struct PointEstimator {
    store: ParamStore,
    description: PointDescription,
    embedding: Box<dyn Embedding>,
    net: ResidualNet,
    model: ModelIdentity,
    x_range: FeatureRange,
    summaries: Vec<TrainingSummary>,
    range_check: bool,
}

impl std::fmt::Debug for PointEstimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointEstimator")
            .field("target", &self.description.target)
            .field("network", &self.description.network)
            .field("embedding", &self.description.embedding)
            .field("x_shape", &self.description.x_shape)
            .finish_non_exhaustive()
    }
}

/// Estimates for several data sets: `rows × params × per_param` values, row-major, where
/// `per_param` is the number of quantile levels (1 for a point).
#[derive(Debug, Clone, PartialEq)]
pub struct Estimates {
    /// The values, data set by data set, parameter by parameter, level by level.
    pub values: Vec<f64>,
    /// Data sets.
    pub rows: usize,
    /// The parameters' names.
    pub params: Vec<String>,
    /// The quantile levels, empty for a point.
    pub levels: Vec<f64>,
}

impl Estimates {
    /// Values per parameter: the number of levels, 1 for a point.
    pub fn per_param(&self) -> usize {
        self.levels.len().max(1)
    }

    /// The estimate of parameter `param` for data set `row` (the first level's quantile
    /// for a quantile estimator).
    ///
    /// # Panics
    /// When `row` or `param` is out of range.
    pub fn point(&self, row: usize, param: usize) -> f64 {
        self.quantile(row, param, 0)
    }

    /// The quantile at level index `level` of parameter `param` for data set `row`.
    ///
    /// # Panics
    /// When an index is out of range.
    pub fn quantile(&self, row: usize, param: usize, level: usize) -> f64 {
        let (d, k) = (self.params.len(), self.per_param());
        assert!(row < self.rows && param < d && level < k, "index out of range");
        self.values[(row * d + param) * k + level]
    }
}

impl PointEstimator {
    fn new(
        store: ParamStore,
        description: PointDescription,
        embedding: &EmbeddingNet,
        model: ModelIdentity,
        x_range: FeatureRange,
    ) -> Result<Self> {
        let d = description.theta.mean.len();
        description.theta.check(d, "θ")?;
        description.x.check(description.x_shape.numel(), "x")?;
        let (embedding, width) = embedding.build(store.var_builder().pp("embedding"), &description.x_shape)?;
        let c = &description.network;
        let outputs = d * description.target.per_param();
        let net = ResidualNet::new(store.var_builder().pp("estimator"), width, c.hidden, c.blocks, outputs)?;
        Ok(PointEstimator {
            store,
            description,
            embedding,
            net,
            model,
            x_range,
            summaries: Vec::new(),
            range_check: true,
        })
    }

    /// The estimates of z-scored `x` `[B, F]` in z-scored θ, `[B, D, K]`; quantiles are a
    /// base plus cumulative softplus increments, so they cannot cross.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let b = x.dim(0)?;
        let d = self.description.theta.mean.len();
        let k = self.description.target.per_param();
        let raw = self.net.forward(&self.embedding.forward(x)?)?.reshape((b, d, k))?;
        non_crossing(&raw)
    }

    /// What it estimates.
    pub fn target(&self) -> &PointTarget {
        &self.description.target
    }

    /// The parameters' names, in the order of the estimates.
    pub fn param_names(&self) -> &[String] {
        &self.description.param_names
    }

    /// The observations' shape.
    pub fn x_shape(&self) -> &Shape {
        &self.description.x_shape
    }

    /// The training summaries, one per stage (one stage except for the mode's annealing);
    /// empty for a loaded estimator.
    pub fn training_summaries(&self) -> &[TrainingSummary] {
        &self.summaries
    }

    /// Accepts observations outside the range of the training simulations (refused by
    /// default: the network would extrapolate).
    pub fn without_range_check(mut self) -> Self {
        self.range_check = false;
        self
    }

    /// Estimates for each of several data sets (`k × numel` row-major; absent trials of a
    /// model with a varying number of them are rows of NaN), in batched network calls.
    ///
    /// # Errors
    /// [`Error::Observation`] for values that are not whole observations, NaN outside whole
    /// absent trials, no trial present, or a value outside the training range (see
    /// [`PointEstimator::without_range_check`]); [`Error::NetworkOutput`] for non-finite
    /// estimates; a network error.
    pub fn estimate(&self, observations: &[f64]) -> Result<Estimates> {
        let numel = self.description.x_shape.numel();
        crate::inference::posterior::check_many(observations, numel)?;
        for x_o in observations.chunks_exact(numel) {
            crate::inference::check_shaped_observation(
                &self.description.x_shape,
                &self.x_range,
                self.range_check,
                x_o,
            )?;
        }
        let (d, k) = (self.description.theta.mean.len(), self.description.target.per_param());
        let mut values = Vec::with_capacity(observations.len() / numel * d * k);
        for chunk in observations.chunks(CHUNK * numel) {
            let x = self.description.x.to_tensor(chunk, Columns::Observation, self.store.device())?;
            let z = crate::nn::to_f64(&self.forward(&x)?)?;
            // z-scored θ back to θ in f64: value · sd + mean of its parameter.
            for (i, v) in z.iter().enumerate() {
                let j = (i / k) % d;
                values.push(v * self.description.theta.std[j] + self.description.theta.mean[j]);
            }
        }
        crate::inference::check_draws(&values)
            .map_err(|_| Error::NetworkOutput { what: "a non-finite estimate".into() })?;
        Ok(Estimates {
            rows: observations.len() / numel,
            values,
            params: self.description.param_names.clone(),
            levels: self.description.target.levels().to_vec(),
        })
    }

    /// The estimate for one data set; an observation with fewer trials than the model's
    /// maximum is padded with absent trials.
    ///
    /// # Errors
    /// As [`PointEstimator::estimate`].
    pub fn estimate_one(&self, x_o: &[f64]) -> Result<Estimates> {
        self.estimate(&crate::inference::padded_trials(&self.description.x_shape, x_o))
    }

    /// Writes the estimator to a model file (safetensors with a typed header and checksum).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let header = SavedHeader {
            description: self.description.clone(),
            model: self.model.clone(),
            x_range: self.x_range.clone(),
        };
        saved::save(path.as_ref(), &FILE, &self.store, &header)
    }

    /// Reads an estimator saved by [`PointEstimator::save`] for `model`, with a built-in
    /// embedding.
    ///
    /// # Errors
    /// As [`PointEstimator::load_with`].
    pub fn load<M: Simulator>(path: impl AsRef<Path>, model: &M) -> Result<Self> {
        Self::load_with(path, model, &EmbeddingNet::Identity)
    }

    /// Reads an estimator saved by [`PointEstimator::save`] for `model`; `custom` is the
    /// user's embedding when it was trained with one.
    ///
    /// # Errors
    /// [`Error::Io`] or a file error for a missing, corrupt, foreign or tampered file;
    /// [`Error::ModelMismatch`] when it was trained for another model; a file error when
    /// its weights do not fit its description.
    pub fn load_with<M: Simulator>(path: impl AsRef<Path>, model: &M, custom: &EmbeddingNet) -> Result<Self> {
        let path = path.as_ref();
        let saved::Loaded { header, weights, count } = saved::load::<SavedHeader>(path, &FILE)?;
        saved::check_model(path, &header.model, model)?;
        let SavedHeader { description, model: identity, x_range } = header;
        description.target.validate().map_err(|e| Error::file(path, e.to_string()))?;
        x_range.validate(description.x_shape.numel()).map_err(|e| Error::file(path, e))?;
        if description.param_names.len() != description.theta.mean.len() {
            return Err(Error::file(path, "the estimator's sizes do not agree"));
        }
        let embedding = description.embedding.resolve(path, custom)?;
        let estimator = PointEstimator::new(weights, description, &embedding, identity, x_range)
            .map_err(|e| Error::file(path, format!("the weights do not fit the model ({e})")))?;
        saved::check_all_used(path, &estimator.store, count)?;
        Ok(estimator)
    }
}

/// Raw outputs `[B, D, K]` to quantiles non-decreasing along the last axis: the first, then
/// the first plus cumulative softplus increments of the others.
fn non_crossing(raw: &Tensor) -> candle_core::Result<Tensor> {
    let k = raw.dim(2)?;
    if k == 1 {
        return Ok(raw.clone());
    }
    let base = raw.narrow(2, 0, 1)?;
    let steps = softplus(&raw.narrow(2, 1, k - 1)?)?.cumsum(2)?;
    Tensor::cat(&[&base, &steps.broadcast_add(&base)?], 2)
}

/// `log(1 + eˣ)` without overflow: `max(x, 0) + log(1 + e^{−|x|})`.
fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + ((x.abs()?.neg()?.exp()? + 1.0)?.log()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quantiles from any network output are non-decreasing in the level (raw outputs of
    /// any sign and size up to 10⁴), the first level's is the raw one, and softplus matches
    /// `log(1 + eˣ)` where that does not overflow; invalid targets are refused.
    #[test]
    fn quantiles_cannot_cross_and_softplus_is_exact() {
        use rand::RngExt;
        let device = candle_core::Device::Cpu;
        let mut rng = crate::rng::stream_rng(5, 0);
        let (b, d, k) = (300, 3, 5);
        let raw: Vec<f32> =
            (0..b * d * k).map(|_| (rng.random::<f32>() - 0.5) * 10f32.powi(rng.random_range(0..5))).collect();
        let q = non_crossing(&Tensor::from_vec(raw.clone(), (b, d, k), &device).unwrap()).unwrap();
        let q = q.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (row, raw) in q.chunks_exact(k).zip(raw.chunks_exact(k)) {
            assert_eq!(row[0], raw[0]);
            assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
        }
        let x = Tensor::new(&[-80.0f32, -3.0, 0.0, 2.5, 40.0], &device).unwrap();
        let s = softplus(&x).unwrap().to_vec1::<f32>().unwrap();
        for (v, s) in [-80.0f64, -3.0, 0.0, 2.5, 40.0].iter().zip(&s) {
            let exact = if *v > 30.0 { *v } else { v.exp().ln_1p() };
            assert!((f64::from(*s) - exact).abs() < 1e-6 * (1.0 + exact), "{v}: {s} vs {exact}");
        }
        assert!(PointTarget::Quantiles { levels: vec![0.5, 0.1] }.validate().is_err());
        assert!(PointTarget::Quantiles { levels: vec![0.0, 0.5] }.validate().is_err());
        assert!(PointTarget::Mode { kappas: vec![0.1, -1.0] }.validate().is_err());
        let levels = PointTarget::interval(0.9).levels().to_vec();
        assert!((levels[0] - 0.05).abs() < 1e-15 && (levels[1] - 0.95).abs() < 1e-15, "{levels:?}");
    }
}
