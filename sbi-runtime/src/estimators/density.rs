//! The trait every conditional density estimator implements, and what they share: standard
//! normal noise and log density, softplus.

use candle_core::{D, Device, Tensor};
use rand::RngExt;
use rand_distr::StandardNormal;

use crate::error::{Error, Result};
use crate::rng::SimRng;

/// The settings of one kind of conditional density estimator: its name, the check of its
/// sizes, and the network it builds. A new estimator is one file (its settings and network,
/// implementing this trait and [`ConditionalFlow`]) plus one arm of
/// [`DensityEstimator`](crate::estimators::DensityEstimator).
pub trait EstimatorConfig: std::fmt::Debug + Send + Sync {
    /// A short name (`maf`), used on command lines and in messages.
    fn name(&self) -> &'static str;

    /// Checks the settings for `features` inputs.
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong.
    fn validate(&self, features: usize) -> Result<()>;

    /// Builds the network in `vb` for `features` inputs and `context` context values;
    /// `seed` fixes what is drawn at construction (random permutations).
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    fn build(
        &self,
        vb: candle_nn::VarBuilder,
        features: usize,
        context: usize,
        seed: u64,
    ) -> candle_core::Result<Box<dyn ConditionalFlow>>;
}

/// [`Error::Config`] for sizes that would build a degenerate network.
pub(crate) fn check_sizes(ok: bool, config: &dyn EstimatorConfig, features: usize, rule: &str) -> Result<()> {
    if ok && features > 0 {
        Ok(())
    } else {
        Err(Error::Config(format!("invalid {} settings {config:?} for {features} inputs: {rule}", config.name())))
    }
}

pub(crate) const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// A conditional density on standardised inputs: what every estimator provides.
pub trait ConditionalFlow: Send + Sync {
    /// `log q(inputs | context)`: inputs `[B, D]`, context `[B, C]`, result `[B]`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor>;
    /// One draw per context row: context `[B, C]`, result `[B, D]`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    fn sample(&self, context: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor>;
}

/// Standard normal noise `[rows, cols]` from a seeded generator.
pub(crate) fn normal_noise(rng: &mut SimRng, rows: usize, cols: usize, device: &Device) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = (0..rows * cols).map(|_| rng.sample::<f64, _>(StandardNormal) as f32).collect();
    Tensor::from_vec(v, (rows, cols), device)
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
