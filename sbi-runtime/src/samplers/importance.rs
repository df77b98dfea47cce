//! Sampling-importance-resampling from the prior: prior draws weighted by
//! `exp(potential − log prior)`, resampled with replacement, with the weights' effective
//! sample size.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Prior;
use crate::potential::{Potential, check_rows};
use crate::rng::stream_rng;
use crate::samplers::Samples;

/// Settings of importance sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportanceConfig {
    /// Prior draws per requested sample (100).
    pub oversampling: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for ImportanceConfig {
    fn default() -> Self {
        ImportanceConfig { oversampling: 100, seed: 0 }
    }
}

/// Draws from sampling-importance-resampling, with the effective sample size of its weights.
#[derive(Debug, Clone)]
pub struct ImportanceRun {
    /// The resampled draws.
    pub samples: Samples,
    /// `(Σw)² / Σw²` of the importance weights: how many independent draws they are worth.
    pub ess: f64,
    /// Number of proposals (prior draws).
    pub proposals: usize,
}

/// `n` draws by sampling-importance-resampling: `n · oversampling` prior draws weighted by
/// `exp(potential − log prior)`, resampled with replacement.
///
/// # Errors
/// [`Error::Config`] for no proposals or no proposal with a finite weight.
pub fn importance_sample<P: Prior, T: Potential>(
    prior: &P,
    potential: &T,
    n: usize,
    config: &ImportanceConfig,
) -> Result<ImportanceRun> {
    let d = prior.dim();
    if potential.dim() != d {
        return Err(Error::shape("potential dimension", d, potential.dim()));
    }
    let m = n.saturating_mul(config.oversampling);
    if m == 0 {
        return Err(Error::Config("importance sampling needs at least one proposal".into()));
    }
    let mut rng = stream_rng(config.seed, 0x0073_6972);
    let mut theta = crate::alloc::zeros(m, d, "importance-sampling proposals")?;
    crate::model::sample_rows(prior, &mut rng, &mut theta)?;
    check_rows(&theta, d)?;
    let mut logw = Vec::with_capacity(m);
    for chunk in theta.chunks(100_000 * d) {
        let lp = potential.log_potential(chunk)?;
        for (row, l) in chunk.chunks_exact(d).zip(lp) {
            let prior_lp = prior.log_prob_flat(row)?;
            logw.push(if prior_lp.is_finite() { l - prior_lp } else { f64::NEG_INFINITY });
        }
    }
    let max = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return Err(Error::NoFinitePotential { what: "proposal", draws: m });
    }
    let w: Vec<f64> = logw.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let ess = super::mcmc::importance_ess(&logw);
    // Multinomial resampling by sorted uniforms against the cumulative weights.
    let mut cum = Vec::with_capacity(m);
    let mut acc = 0.0;
    for wi in &w {
        acc += wi / total;
        cum.push(acc);
    }
    let mut values = Vec::with_capacity(n * d);
    for _ in 0..n {
        let u: f64 = rng.random();
        let i = cum.partition_point(|&c| c < u).min(m - 1);
        values.extend_from_slice(&theta[i * d..(i + 1) * d]);
    }
    Ok(ImportanceRun { samples: Samples { values, names: prior.names() }, ess, proposals: m })
}
