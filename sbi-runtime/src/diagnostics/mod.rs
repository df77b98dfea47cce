//! Diagnostics that say whether a posterior can be trusted.
//!
//! [`c2st`]: the classifier two-sample test of sbibm (Lueckmann et al. 2021). A classifier
//! learns to tell posterior samples from reference samples; its cross-validated accuracy is
//! 0.5 when the two distributions are the same and 1.0 when they are disjoint.
//!
//! [`Calibration`]: over test simulations from the prior, SBC ranks with their uniformity
//! checks, the expected coverage of highest-density regions, and TARP; no reference
//! posterior needed.
//!
//! [`Coverage`]: how often held-out true parameters fall in their posterior's central
//! credible interval; a calibrated posterior covers them at the nominal rate.
//!
//! [`PredictiveCheck`]: simulations at posterior draws for `x_o`, and where `x_o` falls
//! among them, feature by feature.
//!
//! [`LocalC2st`]: whether the posterior is right at one `x_o` (L-C2ST), with no reference
//! posterior.
//!
//! [`misspecification_mmd`]: whether `x_o` is typical of the simulations (an MMD test),
//! and whether it lies inside their range; [`misspecification_log_prob`]: the same asked of
//! a density estimator of the simulations' marginal.
//!
//! [`stats`]: the Kolmogorov–Smirnov and χ² tests of uniformity these report.

mod c2st;
mod calibration;
mod coverage;
mod lc2st;
mod misspecification;
mod ppc;
pub mod stats;

pub use c2st::{C2stConfig, c2st, c2st_with};
pub use calibration::{Calibration, CalibrationConfig, ExcludedTest, SbcChecks, Tarp};
pub use coverage::Coverage;
pub use lc2st::{LocalC2st, LocalC2stConfig};
pub use misspecification::{LogProbTest, Misspecification, MmdConfig, misspecification_log_prob, misspecification_mmd};
pub use ppc::PredictiveCheck;

/// Checks that `sims` were simulated by the model `posterior` was trained for (when it
/// says which): diagnostics of another model's simulations would be silently wrong.
pub(crate) fn check_model<P: crate::inference::Posterior>(
    posterior: &P,
    sims: &crate::simulate::Simulations,
    what: &str,
) -> crate::error::Result<()> {
    match posterior.model_identity() {
        Some(id) => sims.model.check(id, || what.to_string(), "simulate them with the posterior's model"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
