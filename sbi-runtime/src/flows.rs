//! Conditional density estimators `q(θ | x)`: masked autoregressive flows (MAF), neural
//! spline flows (NSF) and mixture density networks (MDN), with the input standardisation
//! and embedding network around them.
//!
//! A flow maps `θ` to base noise `z = f(θ; x)` with `q(θ | x) = N(z; 0, I) · |det ∂f/∂θ|`;
//! sampling inverts `f`. Inputs and context are z-scored with statistics of the training
//! data that are stored with the model (a constant feature keeps scale 1).

use candle_core::{D, Device, Tensor};
use candle_nn::VarBuilder;
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::{Activation, Linear, MaskedLinear};
use crate::rng::SimRng;

pub(crate) const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// A conditional density on standardised inputs: what every estimator provides.
pub trait ConditionalFlow: Send + Sync {
    /// `log q(inputs | context)`: inputs `[B, D]`, context `[B, C]`, result `[B]`.
    fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor>;
    /// One draw per context row: context `[B, C]`, result `[B, D]`.
    fn sample(&self, context: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor>;
}

/// Standard normal noise `[rows, cols]` from a seeded generator.
pub(crate) fn normal_noise(rng: &mut SimRng, rows: usize, cols: usize) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = (0..rows * cols).map(|_| rng.sample::<f64, _>(StandardNormal) as f32).collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu)
}

/// `log(1 + eˣ)`, computed stably as `max(x, 0) + log(1 + e^{−|x|})`.
pub(crate) fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// `log N(z; 0, I)` summed over the last dimension.
pub(crate) fn standard_normal_log_prob(z: &Tensor) -> candle_core::Result<Tensor> {
    let d = z.dim(D::Minus1)? as f64;
    (z.sqr()?.sum(D::Minus1)? * -0.5)? - d * HALF_LN_2PI
}

/// Which density estimator to train, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DensityEstimator {
    /// Masked autoregressive flow.
    Maf(MafConfig),
    /// Neural spline flow.
    Nsf(crate::nsf::NsfConfig),
    /// Mixture density network.
    Mdn(crate::mdn::MdnConfig),
}

impl Default for DensityEstimator {
    fn default() -> Self {
        DensityEstimator::Maf(MafConfig::default())
    }
}

impl DensityEstimator {
    /// Builds the estimator for `features` inputs and `context` context values.
    pub fn build(
        &self,
        vb: VarBuilder,
        features: usize,
        context: usize,
        seed: u64,
    ) -> candle_core::Result<Box<dyn ConditionalFlow>> {
        self.validate(features)?;
        Ok(match self {
            DensityEstimator::Maf(c) => Box::new(Maf::new(vb, c, features, context, seed)?),
            DensityEstimator::Nsf(c) => Box::new(crate::nsf::Nsf::new(vb, c, features, context)?),
            DensityEstimator::Mdn(c) => Box::new(crate::mdn::Mdn::new(vb, c, features, context)?),
        })
    }

    /// Checks the settings; a zero size would build a degenerate network (or underflow).
    pub fn validate(&self, features: usize) -> candle_core::Result<()> {
        let ok = features > 0
            && match self {
                DensityEstimator::Maf(c) => c.transforms > 0 && c.hidden > 0,
                DensityEstimator::Nsf(c) => {
                    c.transforms > 0 && c.hidden > 0 && c.bins >= 2 && c.tail_bound > 0.0 && c.tail_bound.is_finite()
                }
                DensityEstimator::Mdn(c) => c.components > 0 && c.hidden > 0,
            };
        if !ok {
            candle_core::bail!(
                "invalid {} settings {self:?} for {features} parameters: sizes must be positive (NSF: at least 2 bins, a positive finite tail bound)",
                self.name()
            );
        }
        Ok(())
    }

    /// The estimator named `maf`, `nsf` or `mdn` with default settings.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "maf" => Some(DensityEstimator::Maf(MafConfig::default())),
            "nsf" => Some(DensityEstimator::Nsf(crate::nsf::NsfConfig::default())),
            "mdn" => Some(DensityEstimator::Mdn(crate::mdn::MdnConfig::default())),
            _ => None,
        }
    }

    /// A short name (`maf`, `nsf`, `mdn`).
    pub fn name(&self) -> &'static str {
        match self {
            DensityEstimator::Maf(_) => "maf",
            DensityEstimator::Nsf(_) => "nsf",
            DensityEstimator::Mdn(_) => "mdn",
        }
    }
}

/// Settings of a masked autoregressive flow (defaults as `sbi`'s `maf`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MafConfig {
    /// Number of autoregressive transforms (5).
    pub transforms: usize,
    /// Hidden units per MADE layer (50).
    pub hidden: usize,
    /// Hidden blocks per MADE (2).
    pub blocks: usize,
    /// Hidden activation (tanh).
    pub activation: Activation,
    /// The permutation between transforms (reversal).
    pub permutation: Permutation,
}

/// How features are reordered between autoregressive transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Permutation {
    /// Reverse the order (Papamakarios et al. 2017). Every feature alternates between
    /// early and late positions, so each is conditioned on the others and on the context
    /// in every other transform. The default: on two_moons (obs 1 and 7) it scored a better
    /// C2ST than random orders.
    #[default]
    Reverse,
    /// A fixed random permutation per transform, drawn from the training seed (as `sbi`;
    /// in two dimensions it leaves the order unchanged half of the time).
    Random,
}

impl Default for MafConfig {
    fn default() -> Self {
        MafConfig {
            transforms: 5,
            hidden: 50,
            blocks: 2,
            activation: Activation::Tanh,
            permutation: Permutation::Reverse,
        }
    }
}

impl MafConfig {
    /// Sets the number of transforms.
    pub fn with_transforms(mut self, n: usize) -> Self {
        self.transforms = n;
        self
    }
    /// Sets the hidden width.
    pub fn with_hidden(mut self, n: usize) -> Self {
        self.hidden = n;
        self
    }
    /// Sets the number of hidden blocks per MADE.
    pub fn with_blocks(mut self, n: usize) -> Self {
        self.blocks = n;
        self
    }
    /// Sets the activation.
    pub fn with_activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }
    /// Sets the permutation between transforms.
    pub fn with_permutation(mut self, p: Permutation) -> Self {
        self.permutation = p;
        self
    }
}

/// Degrees of MADE's hidden units (nflows' deterministic assignment, cycling through
/// `1..D`): the first feature's scale and shift are free parameters that depend neither on
/// the inputs nor on the context, as in `sbi`. Units of degree 0 (context only) that condition
/// every feature were tried: no better on two_moons, and broader gaussian_linear posteriors.
fn hidden_degrees(features: usize, hidden: usize) -> Vec<usize> {
    let m = features.saturating_sub(1).max(1);
    let lo = features.saturating_sub(1).min(1);
    (0..hidden).map(|k| k % m + lo).collect()
}

/// A 0/1 mask `[out, in]` with `1` where `allowed(out_degree, in_degree)`.
fn mask(out_deg: &[usize], in_deg: &[usize], allowed: impl Fn(usize, usize) -> bool) -> Vec<f32> {
    let allowed = &allowed;
    out_deg.iter().flat_map(|&o| in_deg.iter().map(move |&i| if allowed(o, i) { 1.0 } else { 0.0 })).collect()
}

/// A masked autoencoder (MADE, Germain et al. 2015) with a context input: output `k` (and
/// `D + k`) depends on inputs `< k` only. Layout as nflows: masked input layer plus a
/// context layer, `blocks` masked hidden layers each followed by the activation, a masked
/// output layer.
pub struct Made {
    input: MaskedLinear,
    context: Linear,
    blocks: Vec<MaskedLinear>,
    output: MaskedLinear,
    activation: Activation,
    features: usize,
}

impl Made {
    /// A MADE with `params_per_feature` outputs per input feature.
    pub fn new(
        vb: VarBuilder,
        features: usize,
        context: usize,
        hidden: usize,
        blocks: usize,
        params_per_feature: usize,
        activation: Activation,
    ) -> candle_core::Result<Self> {
        let in_deg: Vec<usize> = (1..=features).collect();
        let h_deg = hidden_degrees(features, hidden);
        let out_deg: Vec<usize> = (0..params_per_feature).flat_map(|_| in_deg.iter().copied()).collect();
        Ok(Made {
            input: MaskedLinear::new(vb.pp("input"), mask(&h_deg, &in_deg, |o, i| o >= i), features, hidden)?,
            context: Linear::new(vb.pp("context"), context.max(1), hidden)?,
            blocks: (0..blocks)
                .map(|b| {
                    MaskedLinear::new(vb.pp(format!("block{b}")), mask(&h_deg, &h_deg, |o, i| o >= i), hidden, hidden)
                })
                .collect::<candle_core::Result<_>>()?,
            output: MaskedLinear::new(
                vb.pp("output"),
                mask(&out_deg, &h_deg, |o, i| o > i),
                hidden,
                features * params_per_feature,
            )?,
            activation,
            features,
        })
    }

    /// Autoregressive parameters `[B, params_per_feature · D]`, grouped by parameter.
    pub fn forward(&self, x: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = (self.input.forward_act(x, None)? + self.context.forward(context)?)?;
        for b in &self.blocks {
            h = b.forward_act(&h, Some(self.activation))?;
        }
        self.output.forward_act(&h, None)
    }
}

/// A masked autoregressive flow (Papamakarios et al. 2017): affine MADE transforms
/// `z = θ · s(θ_<k) + t(θ_<k)` with `s = softplus(u) + 10⁻³` (nflows' parameterisation),
/// each followed by a fixed permutation ([`Permutation`]).
pub struct Maf {
    mades: Vec<Made>,
    perms: Vec<(Tensor, Tensor)>,
    /// The forward permutations as plain indices (for the fused CPU step).
    orders: Vec<std::sync::Arc<[u32]>>,
    features: usize,
}

/// A seeded random permutation and its inverse, as index tensors.
pub(crate) fn permutation(features: usize, rng: &mut SimRng) -> candle_core::Result<(Tensor, Tensor)> {
    let mut p: Vec<u32> = (0..features as u32).collect();
    for i in (1..features).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    let mut inv = vec![0u32; features];
    for (i, &pi) in p.iter().enumerate() {
        inv[pi as usize] = i as u32;
    }
    Ok((Tensor::new(p, &Device::Cpu)?, Tensor::new(inv, &Device::Cpu)?))
}

/// The order-reversing permutation (its own inverse).
pub(crate) fn reversal(features: usize) -> candle_core::Result<(Tensor, Tensor)> {
    let p: Vec<u32> = (0..features as u32).rev().collect();
    Ok((Tensor::new(p.as_slice(), &Device::Cpu)?, Tensor::new(p.as_slice(), &Device::Cpu)?))
}

impl Maf {
    /// Builds the flow; `seed` fixes the permutations.
    pub fn new(vb: VarBuilder, c: &MafConfig, features: usize, context: usize, seed: u64) -> candle_core::Result<Self> {
        let mut rng = crate::rng::stream_rng(seed, 0x4d4146);
        let mades = (0..c.transforms)
            .map(|i| Made::new(vb.pp(format!("made{i}")), features, context, c.hidden, c.blocks, 2, c.activation))
            .collect::<candle_core::Result<_>>()?;
        let perms: Vec<(Tensor, Tensor)> = (0..c.transforms)
            .map(|_| match c.permutation {
                Permutation::Reverse => reversal(features),
                Permutation::Random => permutation(features, &mut rng),
            })
            .collect::<candle_core::Result<_>>()?;
        let orders = perms.iter().map(|(p, _)| Ok(p.to_vec1::<u32>()?.into())).collect::<candle_core::Result<_>>()?;
        Ok(Maf { mades, perms, orders, features })
    }

    fn scale_shift(&self, made: &Made, x: &Tensor, context: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let params = made.forward(x, context)?;
        let d = made.features;
        let scale = (softplus(&params.narrow(1, 0, d)?)? + 1e-3)?;
        Ok((scale, params.narrow(1, d, d)?))
    }
}

impl Maf {
    /// The map to base noise: `z = f(x; context)` and `log |det ∂f/∂x|` per row.
    pub fn forward(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let mut z = inputs.clone();
        let mut log_det = Tensor::zeros(inputs.dim(0)?, inputs.dtype(), inputs.device())?;
        let fused = inputs.device().is_cpu() && inputs.dtype() == crate::nn::DTYPE;
        for ((made, (perm, _)), order) in self.mades.iter().zip(&self.perms).zip(&self.orders) {
            if fused {
                // Scale, shift, permutation and log-det in one op (see `fused`).
                let params = made.forward(&z, context)?;
                let step = z.apply_op2(&params, crate::fused::AffineStep { perm: order.clone() })?;
                log_det = (log_det + step.narrow(1, self.features, 1)?.squeeze(1)?)?;
                z = step.narrow(1, 0, self.features)?.contiguous()?;
            } else {
                let (scale, shift) = self.scale_shift(made, &z, context)?;
                z = ((&z * &scale)? + shift)?.index_select(perm, 1)?;
                log_det = (log_det + scale.log()?.sum(1)?)?;
            }
        }
        Ok((z, log_det))
    }

    /// The inverse map `x = f⁻¹(z; context)`.
    pub fn inverse(&self, noise: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let mut z = noise.clone();
        for (made, (_, inv)) in self.mades.iter().zip(&self.perms).rev() {
            let target = z.index_select(inv, 1)?;
            // Invert the autoregressive map one degree at a time: after pass k, the first
            // k coordinates are exact.
            // Sampling needs no gradients: detaching each pass lets candle free the pass's
            // intermediates (otherwise the autograd graph keeps every pass alive).
            let mut x = target.zeros_like()?;
            for _ in 0..self.features {
                let (scale, shift) = self.scale_shift(made, &x, context)?;
                x = ((&target - shift)? / scale)?.detach();
            }
            z = x;
        }
        Ok(z)
    }
}

impl ConditionalFlow for Maf {
    fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let (z, log_det) = self.forward(inputs, context)?;
        standard_normal_log_prob(&z)? + log_det
    }

    fn sample(&self, context: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        self.inverse(&normal_noise(rng, context.dim(0)?, self.features)?, context)
    }
}

/// Per-feature mean and scale for z-scoring, from the rows of a matrix. A feature whose
/// standard deviation is below `1e-14` (constant in the training data) keeps scale 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Feature means.
    pub mean: Vec<f64>,
    /// Feature standard deviations (ddof 1), 1 for constant features.
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Statistics of `values` (`rows × cols` row-major).
    pub fn fit(values: &[f64], cols: usize) -> Standardizer {
        // NaN values (absent trials) are left out; a column without values keeps (0, 1).
        let mut sum = vec![0.0; cols];
        let mut count = vec![0usize; cols];
        for row in values.chunks_exact(cols) {
            for ((s, c), v) in sum.iter_mut().zip(count.iter_mut()).zip(row) {
                if !v.is_nan() {
                    *s += v;
                    *c += 1;
                }
            }
        }
        let mean: Vec<f64> = sum.iter().zip(&count).map(|(s, &c)| if c > 0 { s / c as f64 } else { 0.0 }).collect();
        let mut var = vec![0.0; cols];
        for row in values.chunks_exact(cols) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                if !v.is_nan() {
                    *s += (v - m) * (v - m);
                }
            }
        }
        let std = var
            .iter()
            .zip(&count)
            .map(|(s, &c)| (s / (c.saturating_sub(1)).max(1) as f64).sqrt())
            .map(|s| if s < 1e-14 { 1.0 } else { s })
            .collect();
        Standardizer { mean, std }
    }

    /// z-scores `values` (rows of `self.mean.len()` raw values) in f64 and hands them to the
    /// networks as an f32 tensor `[rows, cols]`. Subtracting the mean before leaving f64
    /// keeps the signal of values far from zero (`10⁷ + θ` keeps θ's digits; in f32 it
    /// would keep none). NaN (absent trials) passes through.
    ///
    /// # Errors
    /// [`Error::Unrepresentable`] naming the column (by `columns`) when a z-scored value is
    /// infinite or beyond f32's range, or the statistics themselves are not finite;
    /// [`Error::ShapeMismatch`] when `values` is not made of whole rows.
    pub fn to_tensor(&self, values: &[f64], columns: Columns<'_>) -> Result<Tensor> {
        Ok(self.standardise(values, columns, false)?.0)
    }

    /// As [`Standardizer::to_tensor`], but a row with a value beyond f32's range once
    /// z-scored is not an error: it becomes zeros in the tensor and `false` in the returned
    /// flags. Potentials use it: a parameter set that far from every training value (an MCMC
    /// proposal at 10⁴⁶) lies outside where the network can say anything, and scores `-inf`.
    ///
    /// # Errors
    /// As [`Standardizer::to_tensor`], for statistics that are not finite or rows that are not whole.
    pub(crate) fn to_tensor_flagging(&self, values: &[f64], columns: Columns<'_>) -> Result<(Tensor, Vec<bool>)> {
        self.standardise(values, columns, true)
    }

    fn standardise(&self, values: &[f64], columns: Columns<'_>, flag: bool) -> Result<(Tensor, Vec<bool>)> {
        let cols = self.mean.len();
        if cols == 0 || !values.len().is_multiple_of(cols) {
            return Err(Error::shape("rows to standardise", cols * (values.len() / cols.max(1)), values.len()));
        }
        let unrepresentable = |j: usize, value: f64| Error::Unrepresentable {
            column: columns.label(j),
            value,
            mean: self.mean[j],
            std: self.std[j],
        };
        if let Some(j) = (0..cols).find(|&j| !(self.mean[j].is_finite() && self.std[j].is_finite())) {
            return Err(unrepresentable(j, self.mean[j]));
        }
        let rows = values.len() / cols;
        let mut out = Vec::with_capacity(values.len());
        let mut ok = vec![true; rows];
        for (r, row) in values.chunks_exact(cols).enumerate() {
            let start = out.len();
            for (j, ((&v, m), s)) in row.iter().zip(&self.mean).zip(&self.std).enumerate() {
                let z = (v - m) / s;
                if z.is_infinite() || z.abs() > f32::MAX as f64 {
                    if !flag {
                        return Err(unrepresentable(j, v));
                    }
                    ok[r] = false;
                }
                out.push(z as f32);
            }
            if !ok[r] {
                out[start..].iter_mut().for_each(|z| *z = 0.0);
            }
        }
        Ok((Tensor::from_vec(out, (rows, cols), &candle_core::Device::Cpu)?, ok))
    }

    /// The raw values (f64) of a tensor of z-scored rows, the inverse of
    /// [`Standardizer::to_tensor`]: `u · std + mean`, computed in f64.
    pub fn from_tensor(&self, t: &Tensor) -> Result<Vec<f64>> {
        let cols = self.mean.len();
        let mut v = crate::nn::to_f64(t)?;
        if cols == 0 || v.len() % cols != 0 {
            return Err(Error::shape("standardised rows", cols * (v.len() / cols.max(1)), v.len()));
        }
        for row in v.chunks_exact_mut(cols) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = *x * s + m;
            }
        }
        Ok(v)
    }

    /// Divides each row's entries by the scale, in place: turns a gradient with respect to
    /// z-scored values into one with respect to raw values (the chain rule of z-scoring).
    pub(crate) fn unscale_gradient(&self, grad: &mut [f64]) {
        let cols = self.std.len().max(1);
        for row in grad.chunks_exact_mut(cols) {
            row.iter_mut().zip(&self.std).for_each(|(g, s)| *g /= s);
        }
    }

    /// `Σ log std`: the log-Jacobian of z-scoring.
    pub fn log_scale(&self) -> f64 {
        self.std.iter().map(|s| s.ln()).sum()
    }

    pub(crate) fn check(&self, dim: usize, what: &str) -> Result<()> {
        if self.mean.len() != dim || self.std.len() != dim || self.std.iter().any(|s| s.is_nan() || *s <= 0.0) {
            return Err(Error::shape(format!("{what} standardisation"), dim, self.mean.len()));
        }
        Ok(())
    }
}

/// How error messages name the columns of a matrix being standardised.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Columns<'a> {
    /// Parameters, by name.
    Parameters(&'a [String]),
    /// Values of a flattened observation, as `x[j]`.
    Observation,
}

impl Columns<'_> {
    /// The name of column `j`.
    pub fn label(&self, j: usize) -> String {
        match self {
            Columns::Parameters(names) => {
                names.get(j).map_or_else(|| format!("parameter {j}"), |n| format!("parameter `{n}`"))
            }
            Columns::Observation => format!("observation value x[{j}]"),
        }
    }
}

/// Everything needed to rebuild an estimator: saved as JSON next to its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EstimatorSpec {
    pub estimator: DensityEstimator,
    /// `EmbeddingNet::describe()` of the embedding.
    pub embedding: String,
    pub features: usize,
    pub context_shape: crate::model::Shape,
    pub seed: u64,
    pub input_std: Standardizer,
    pub context_std: Standardizer,
}

/// A trained conditional estimator `q(inputs | context)`: z-scoring (in f64), embedding
/// network and flow. The networks see z-scored values only: raw rows become tensors through
/// [`ConditionalEstimator::input_tensor`] and [`ConditionalEstimator::context_tensor`], and
/// draws come back through [`ConditionalEstimator::inputs_from`].
pub struct ConditionalEstimator {
    pub(crate) store: crate::nn::ParamStore,
    flow: Box<dyn ConditionalFlow>,
    embedding: Box<dyn crate::nn::Embedding>,
    pub(crate) spec: EstimatorSpec,
    log_scale: f64,
}

impl ConditionalEstimator {
    /// Builds the networks in `store` (fresh or loaded).
    pub(crate) fn build(
        store: crate::nn::ParamStore,
        spec: EstimatorSpec,
        embedding: &crate::nn::EmbeddingNet,
    ) -> Result<Self> {
        let context_shape = spec.context_shape.clone();
        spec.input_std.check(spec.features, "input")?;
        spec.context_std.check(context_shape.numel(), "context")?;
        let (embedding, flow) = {
            let vb = store.var_builder();
            let (embedding, width) = embedding.build(vb.pp("embedding"), &context_shape)?;
            let flow = spec.estimator.build(vb.pp("estimator"), spec.features, width, spec.seed)?;
            (embedding, flow)
        };
        let log_scale = spec.input_std.log_scale();
        Ok(ConditionalEstimator { store, flow, embedding, spec, log_scale })
    }

    /// Raw input rows (`B × features`) as the z-scored tensor the flow takes.
    ///
    /// # Errors
    /// As [`Standardizer::to_tensor`].
    pub fn input_tensor(&self, raw: &[f64], columns: Columns<'_>) -> Result<Tensor> {
        self.spec.input_std.to_tensor(raw, columns)
    }

    /// Raw context rows (`B × context values`) as the z-scored tensor the embedding takes.
    ///
    /// # Errors
    /// As [`Standardizer::to_tensor`].
    pub fn context_tensor(&self, raw: &[f64], columns: Columns<'_>) -> Result<Tensor> {
        self.spec.context_std.to_tensor(raw, columns)
    }

    /// Raw inputs (f64, row-major) from z-scored rows such as [`ConditionalEstimator::sample`]'s.
    pub fn inputs_from(&self, z: &Tensor) -> Result<Vec<f64>> {
        self.spec.input_std.from_tensor(z)
    }

    /// The z-scoring of the inputs.
    pub fn input_standardizer(&self) -> &Standardizer {
        &self.spec.input_std
    }

    /// The z-scoring of the context.
    pub fn context_standardizer(&self) -> &Standardizer {
        &self.spec.context_std
    }

    /// `log q(inputs | context)` in raw units (the z-scoring's Jacobian included), for
    /// z-scored rows: `[B, D]`, `[B, C]` → `[B]`.
    pub fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        self.flow.log_prob(inputs, &self.embedding.forward(context)?)? - self.log_scale
    }

    /// One draw per z-scored context row: `[B, C]` → z-scored inputs `[B, D]` (raw values
    /// through [`ConditionalEstimator::inputs_from`]). Rows are drawn in chunks of 512, so
    /// that the intermediates of a draw stay small whatever the number of rows.
    pub fn sample(&self, context: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        const CHUNK: usize = 512;
        let b = context.dim(0)?;
        let mut parts = Vec::with_capacity(b.div_ceil(CHUNK));
        let mut start = 0;
        while start < b {
            let len = CHUNK.min(b - start);
            parts.push(self.flow.sample(&self.embedding.forward(&context.narrow(0, start, len)?)?, rng)?.detach());
            start += len;
        }
        if parts.len() == 1 { Ok(parts.remove(0)) } else { Tensor::cat(&parts, 0) }
    }

    /// Number of input features.
    pub fn features(&self) -> usize {
        self.spec.features
    }

    /// Number of (flattened) context values.
    pub fn context_dim(&self) -> usize {
        self.spec.context_std.mean.len()
    }
}

#[cfg(test)]
mod tests;
