//! Samplers for a [`Potential`]: MCMC (slice sampling, random-walk Metropolis–Hastings)
//! and importance sampling (sampling-importance-resampling from the prior).
//!
//! MCMC runs many chains in the prior's unconstrained space and moves them together: every
//! step makes one batched potential call for all chains, which is what makes a neural
//! potential cheap to sample. Chains start from draws resampled by importance weight, report
//! split-R̂ and the effective sample size, and stop with [`Error::McmcBudget`](crate::Error::McmcBudget) when their
//! budget of potential evaluations runs out: nothing runs forever.

pub mod diagnostics;
mod importance;
mod mcmc;
mod mh;
mod nuts;
mod rejection;
mod samples;
mod slice;

pub use importance::{ImportanceConfig, ImportanceRun, importance_sample};
pub(crate) use mcmc::spread;
pub use mcmc::{
    ChainInit, ESS_SHARE_WARNING, McmcConfig, McmcMethod, McmcRun, RHAT_WARNING, StartPool, mcmc, mcmc_from,
    mixing_warnings,
};
pub use mcmc::{Target, Transition, mcmc_with};
pub use rejection::{RejectionRun, rejection_sample};
pub use samples::Samples;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Prior;
use crate::potential::Potential;

/// How a posterior known through its potential is sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Sampler {
    /// MCMC (slice sampling by default).
    Mcmc(McmcConfig),
    /// Sampling-importance-resampling from the prior.
    Importance(ImportanceConfig),
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler::Mcmc(McmcConfig::default())
    }
}

impl Sampler {
    /// The sampler's seed.
    pub fn seed(&self) -> u64 {
        match self {
            Sampler::Mcmc(c) => c.seed,
            Sampler::Importance(c) => c.seed,
        }
    }

    /// The same sampler with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        match &mut self {
            Sampler::Mcmc(c) => c.seed = seed,
            Sampler::Importance(c) => c.seed = seed,
        }
        self
    }

    /// Shows or hides progress (MCMC).
    pub fn with_progress(mut self, show: bool) -> Self {
        if let Sampler::Mcmc(c) = &mut self {
            c.progress = show;
        }
        self
    }

    /// Draws `n` samples of `exp(potential)` over `prior`'s support.
    ///
    /// # Errors
    /// The sampler's errors ([`crate::Error::McmcBudget`], [`crate::Error::NoFinitePotential`],
    /// [`crate::Error::Config`] for invalid settings, [`crate::Error::TooLarge`]).
    pub fn run<P: Prior, T: Potential>(&self, prior: &P, potential: &T, n: usize) -> Result<SamplerRun> {
        self.run_from(prior, potential, n, None)
    }

    /// As [`Sampler::run`], MCMC chains started from `pool` when given ([`mcmc_from`]);
    /// importance sampling keeps the prior as its proposal.
    ///
    /// # Errors
    /// As [`Sampler::run`]; as [`mcmc_from`] for the pool.
    pub fn run_from<P: Prior, T: Potential>(
        &self,
        prior: &P,
        potential: &T,
        n: usize,
        pool: Option<&StartPool>,
    ) -> Result<SamplerRun> {
        Ok(match (self, pool) {
            (Sampler::Mcmc(c), Some(pool)) => SamplerRun::Mcmc(mcmc_from(prior, potential, n, c, pool)?),
            (Sampler::Mcmc(c), None) => SamplerRun::Mcmc(mcmc(prior, potential, n, c)?),
            (Sampler::Importance(c), _) => SamplerRun::Importance(importance_sample(prior, potential, n, c)?),
        })
    }
}

impl std::str::FromStr for Sampler {
    type Err = crate::error::Error;

    /// `slice`, `nuts`, `mh` or `sir`, with default settings.
    fn from_str(name: &str) -> Result<Self> {
        match name {
            "slice" => Ok(Sampler::Mcmc(McmcConfig::default())),
            "mh" => Ok(Sampler::Mcmc(McmcConfig::mh())),
            "nuts" => Ok(Sampler::Mcmc(McmcConfig::nuts())),
            "sir" => Ok(Sampler::Importance(ImportanceConfig::default())),
            _ => Err(crate::error::Error::Config(format!("unknown sampler {name:?}: expected slice, nuts, mh or sir"))),
        }
    }
}

/// Rejection sampling's acceptance below which [`SamplerRun::warnings`] warns: more than
/// half of the estimator's mass outside the prior. On a bounded prior with the posterior at
/// its edges (`cargo run --release --example bounded_prior`) the acceptance was 0.47–0.72
/// and C2ST 0.59 against 0.57 for NPE in the unconstrained space, which cannot leak.
pub const ACCEPTANCE_WARNING: f64 = 0.5;

/// The result of a [`Sampler`], with its diagnostics.
#[derive(Debug, Clone)]
pub enum SamplerRun {
    /// From rejection sampling (NPE): the acceptance rate.
    Rejection(RejectionRun),
    /// From MCMC: R̂ and ESS per parameter.
    Mcmc(McmcRun),
    /// From importance sampling: the weights' ESS.
    Importance(ImportanceRun),
    /// From approximate Bayesian computation: tolerances, acceptance rates, simulations.
    Abc(crate::inference::abc::AbcRun),
}

impl SamplerRun {
    /// The draws.
    pub fn samples(&self) -> &Samples {
        match self {
            SamplerRun::Rejection(r) => &r.samples,
            SamplerRun::Mcmc(r) => &r.samples,
            SamplerRun::Importance(r) => &r.samples,
            SamplerRun::Abc(r) => &r.samples,
        }
    }

    /// The draws, by value.
    pub fn into_samples(self) -> Samples {
        match self {
            SamplerRun::Rejection(r) => r.samples,
            SamplerRun::Mcmc(r) => r.samples,
            SamplerRun::Importance(r) => r.samples,
            SamplerRun::Abc(r) => r.samples,
        }
    }

    /// What the diagnostics say about trusting the draws: MCMC's [`McmcRun::warnings`];
    /// importance sampling: an ESS below 1% of the proposals; rejection sampling: an
    /// acceptance below [`ACCEPTANCE_WARNING`] (the estimator leaks mass outside the prior).
    pub fn warnings(&self) -> Vec<String> {
        match self {
            SamplerRun::Mcmc(r) => r.warnings.clone(),
            SamplerRun::Abc(r) => r.warnings(),
            SamplerRun::Importance(r) if r.ess < 0.01 * r.proposals as f64 => vec![format!(
                "importance weights' ESS is {:.0} of {} proposals: the prior is a poor proposal here; use MCMC",
                r.ess, r.proposals
            )],
            SamplerRun::Rejection(r) if r.acceptance_rate < ACCEPTANCE_WARNING => vec![format!(
                "only {:.0}% of the estimator's draws fell inside the prior's support: it leaks mass outside \
                 (common when the posterior sits at the prior's edges); the draws kept are inside, but their \
                 shape near the edges may suffer: compare with `Npe::with_theta_space(ThetaSpace::Unconstrained)` \
                 (no leakage by construction), or simulate more",
                100.0 * r.acceptance_rate
            )],
            _ => Vec::new(),
        }
    }

    /// A one-line summary of the diagnostics, followed by the [`SamplerRun::warnings`].
    pub fn describe(&self) -> String {
        let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
        let line = match self {
            SamplerRun::Mcmc(r) => format!(
                "MCMC: R-hat [{}], ESS [{}], {} potential evaluations, {} divergences, {:.2} s",
                fmt(&r.rhat),
                r.ess.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", "),
                r.evaluations,
                r.divergences,
                r.seconds,
            ),
            SamplerRun::Importance(r) => format!("importance sampling: ESS {:.0} of {} proposals", r.ess, r.proposals),
            SamplerRun::Abc(r) => r.describe(),
            SamplerRun::Rejection(r) => {
                let cost = r
                    .evaluations_per_proposal
                    .map(|e| format!(", {e} network evaluations per proposal"))
                    .unwrap_or_default();
                format!("rejection sampling: acceptance {:.4} ({} proposals{cost})", r.acceptance_rate, r.proposals)
            }
        };
        line + &self.warnings().iter().map(|w| format!("; warning: {w}")).collect::<String>()
    }
}

#[cfg(test)]
mod tests;
