//! Conditional density estimators `q(θ | x)`: masked autoregressive flows (MAF), neural
//! spline flows (NSF) and mixture density networks (MDN), with the input standardisation
//! and embedding network around them.
//!
//! A flow maps `θ` to base noise `z = f(θ; x)` with `q(θ | x) = N(z; 0, I) · |det ∂f/∂θ|`;
//! sampling inverts `f`. Inputs and context are z-scored with statistics of the training
//! data that are stored with the model (a constant feature keeps scale 1).

mod conditional;
pub(crate) mod density;
pub mod maf;
pub mod mdn;
pub mod nsf;
mod standardize;
pub mod vector_field;

pub use conditional::ConditionalEstimator;
pub(crate) use conditional::EstimatorSpec;
pub use density::{ConditionalFlow, EstimatorConfig};
pub use maf::{Maf, MafConfig, Permutation};
pub use mdn::{Mdn, MdnConfig};
pub use nsf::{Nsf, NsfConfig};
pub use standardize::{Columns, Standardizer};
pub use vector_field::{
    Divergence, FlowMatchingConfig, FlowSolver, Langevin, Process, ScoreConfig, ScoreSampling, ScoreWeighting, Sde,
    VectorFieldConfig,
};

use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Which density estimator to train, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DensityEstimator {
    /// Masked autoregressive flow.
    Maf(MafConfig),
    /// Neural spline flow.
    Nsf(NsfConfig),
    /// Mixture density network.
    Mdn(MdnConfig),
}

impl Default for DensityEstimator {
    fn default() -> Self {
        DensityEstimator::Maf(MafConfig::default())
    }
}

impl DensityEstimator {
    /// Every estimator with its default settings (what [`str::parse`] accepts, by name).
    pub fn defaults() -> Vec<DensityEstimator> {
        vec![
            DensityEstimator::Maf(MafConfig::default()),
            DensityEstimator::Nsf(NsfConfig::default()),
            DensityEstimator::Mdn(MdnConfig::default()),
        ]
    }

    /// The settings behind the variant.
    pub fn config(&self) -> &dyn EstimatorConfig {
        match self {
            DensityEstimator::Maf(c) => c,
            DensityEstimator::Nsf(c) => c,
            DensityEstimator::Mdn(c) => c,
        }
    }

    /// Builds the estimator for `features` inputs and `context` context values.
    ///
    /// # Errors
    /// Invalid settings ([`DensityEstimator::validate`]); tensor errors.
    pub fn build(
        &self,
        vb: VarBuilder,
        features: usize,
        context: usize,
        seed: u64,
    ) -> candle_core::Result<Box<dyn ConditionalFlow>> {
        self.validate(features).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        self.config().build(vb, features, context, seed)
    }

    /// Checks the settings; a zero size would build a degenerate network (or underflow).
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming what is wrong.
    pub fn validate(&self, features: usize) -> crate::error::Result<()> {
        self.config().validate(features)
    }

    /// A short name (`maf`, `nsf`, `mdn`).
    pub fn name(&self) -> &'static str {
        self.config().name()
    }
}

impl std::str::FromStr for DensityEstimator {
    type Err = crate::error::Error;

    /// An estimator's name (`maf`, `nsf`, `mdn`), with default settings.
    fn from_str(name: &str) -> crate::error::Result<Self> {
        let all = Self::defaults();
        let names: Vec<&str> = all.iter().map(|e| e.name()).collect();
        let message = format!("unknown density estimator {name:?}: expected one of {names:?}");
        all.into_iter().find(|e| e.name() == name).ok_or(crate::error::Error::Config(message))
    }
}

#[cfg(test)]
mod tests;
