//! A measurement model: an unknown mean μ and noise scale σ observed through iid trials,
//! as one trial per simulation (`Measurement`, for NLE and NRE, which add up trials) or as
//! a set of 1 to 50 trials (`MeasurementTrials`, for NPE with DeepSets); and the exact
//! posterior moments by quadrature on a grid.

use sbi_runtime::prelude::*;

/// The most trials a `MeasurementTrials` simulation holds.
pub const MAX_TRIALS: usize = 50;

/// A measurement model: unknown mean and noise scale, one noisy measurement per trial.
#[simulator]
pub fn measurement(rng: &mut impl Rng) -> [f64; 1] {
    let mu = sample!(Normal(0.0, 2.0));
    let sigma = sample!(HalfNormal(1.0));
    [mu + sigma * rng.sample::<f64, _>(StandardNormal)]
}

/// Posterior mean and standard deviation of (μ, σ) given `trials`, by quadrature on a grid.
pub fn exact_moments(trials: &[f64]) -> [(f64, f64); 2] {
    let prior = Measurement.prior();
    let (n, mu_lim, sigma_max) = (400, 8.0, 4.0);
    let mut logs = Vec::with_capacity(n * n);
    for i in 0..n {
        for j in 0..n {
            let mu = -mu_lim + (i as f64 + 0.5) * 2.0 * mu_lim / n as f64;
            let sigma = (j as f64 + 0.5) * sigma_max / n as f64;
            let lp = prior.log_prob_flat(&[mu, sigma]).unwrap_or(f64::NEG_INFINITY)
                + trials
                    .iter()
                    .map(|x| -0.5 * ((x - mu) / sigma).powi(2) - sigma.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln())
                    .sum::<f64>();
            logs.push((mu, sigma, lp));
        }
    }
    let max = logs.iter().map(|l| l.2).fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logs.iter().map(|l| (l.2 - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let moment = |f: &dyn Fn(f64, f64) -> f64| logs.iter().zip(&w).map(|(l, w)| w * f(l.0, l.1)).sum::<f64>() / total;
    let (m_mu, m_sigma) = (moment(&|m, _| m), moment(&|_, s| s));
    let sd_mu = (moment(&|m, _| m * m) - m_mu * m_mu).sqrt();
    let sd_sigma = (moment(&|_, s| s * s) - m_sigma * m_sigma).sqrt();
    [(m_mu, sd_mu), (m_sigma, sd_sigma)]
}

/// The same measurements as a set of trials: `trials` of them, or, when `trials` is 0, a
/// number drawn uniformly from 1 to 50 for each simulation.
#[simulator]
pub fn measurement_trials(rng: &mut impl Rng, trials: usize) -> VarTrials<1, MAX_TRIALS> {
    let mu = sample!(Normal(0.0, 2.0));
    let sigma = sample!(HalfNormal(1.0));
    let k = if trials == 0 { rng.random_range(1..=MAX_TRIALS) } else { trials.min(MAX_TRIALS) };
    VarTrials((0..k).map(|_| [mu + sigma * rng.sample::<f64, _>(StandardNormal)]).collect())
}
