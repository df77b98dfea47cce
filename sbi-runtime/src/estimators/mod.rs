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

pub use conditional::ConditionalEstimator;
pub(crate) use conditional::EstimatorSpec;
pub use density::ConditionalFlow;
pub use maf::{Maf, MafConfig, Permutation};
pub use mdn::{Mdn, MdnConfig};
pub use nsf::{Nsf, NsfConfig};
pub use standardize::{Columns, Standardizer};

use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Which density estimator to train, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DensityEstimator {
    /// Masked autoregressive flow.
    Maf(MafConfig),
    /// Neural spline flow.
    Nsf(crate::estimators::nsf::NsfConfig),
    /// Mixture density network.
    Mdn(crate::estimators::mdn::MdnConfig),
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
            DensityEstimator::Nsf(c) => Box::new(crate::estimators::nsf::Nsf::new(vb, c, features, context)?),
            DensityEstimator::Mdn(c) => Box::new(crate::estimators::mdn::Mdn::new(vb, c, features, context)?),
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

    /// A short name (`maf`, `nsf`, `mdn`).
    pub fn name(&self) -> &'static str {
        match self {
            DensityEstimator::Maf(_) => "maf",
            DensityEstimator::Nsf(_) => "nsf",
            DensityEstimator::Mdn(_) => "mdn",
        }
    }
}

impl std::str::FromStr for DensityEstimator {
    type Err = crate::error::Error;

    /// `maf`, `nsf` or `mdn`, with default settings.
    fn from_str(name: &str) -> crate::error::Result<Self> {
        match name {
            "maf" => Ok(DensityEstimator::Maf(MafConfig::default())),
            "nsf" => Ok(DensityEstimator::Nsf(NsfConfig::default())),
            "mdn" => Ok(DensityEstimator::Mdn(MdnConfig::default())),
            _ => Err(crate::error::Error::Config(format!(
                "unknown density estimator {name:?}: expected maf, nsf or mdn"
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
