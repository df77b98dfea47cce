//! A hierarchical model: group effects drawn around a population mean with a learned spread.
//! The prior's density is the chain p(μ) p(τ) Π_g p(θ_g | μ, τ).

use sbi_runtime::prelude::*;

/// Number of groups.
pub const GROUPS: usize = 5;

/// Group means observed with noise: μ ~ N(0, 2), τ ~ HalfNormal(1), θ_g ~ N(μ, τ),
/// x_g = θ_g + N(0, 0.3²).
#[simulator]
pub fn groups(rng: &mut impl Rng) -> [f64; GROUPS] {
    let mu = sample!(Normal(0.0, 2.0));
    let tau = sample!(HalfNormal(1.0));
    let theta = sample!(Normal(mu, tau); GROUPS);
    theta.map(|t| t + 0.3 * rng.sample::<f64, _>(StandardNormal))
}

/// Noise of each observation of [`scale_mixture`].
pub const MIXTURE_NOISE: f64 = 0.5;

/// τ ~ Normal(1, 1), θ ~ Normal(0, τ), two observations x_k = θ + N(0, 0.5²). The prior
/// is defined only where τ > 0: 16% of τ's draws leave `Normal(0, τ)` invalid, and there
/// the prior's density is zero (simulation excludes them, samplers treat them as outside).
#[simulator]
pub fn scale_mixture(rng: &mut impl Rng) -> [f64; 2] {
    let tau = sample!(Normal(1.0, 1.0));
    let theta = sample!(Normal(0.0, tau));
    [0, 1].map(|_| theta + MIXTURE_NOISE * rng.sample::<f64, _>(StandardNormal))
}

/// The exact log posterior density of [`scale_mixture`] (unnormalised): `-inf` where τ ≤ 0.
pub fn scale_mixture_log_posterior(tau: f64, theta: f64, x: &[f64]) -> f64 {
    if tau <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let lik: f64 = x.iter().map(|xk| -0.5 * ((xk - theta) / MIXTURE_NOISE).powi(2)).sum();
    -0.5 * (tau - 1.0).powi(2) - tau.ln() - 0.5 * (theta / tau).powi(2) + lik
}

/// The exact posterior's mean and standard deviation of (τ, θ) at `x`, on a fine grid
/// (the model is Gaussian given τ: a two-dimensional integral).
pub fn scale_mixture_moments(x: &[f64]) -> [(f64, f64); 2] {
    let (nt, nh) = (1_200, 1_200);
    let (t_hi, h_lo, h_hi) = (8.0, -8.0, 8.0);
    let (dt, dh) = (t_hi / nt as f64, (h_hi - h_lo) / nh as f64);
    let mut logs = Vec::with_capacity(nt * nh);
    for i in 0..nt {
        for j in 0..nh {
            let (tau, theta) = ((i as f64 + 0.5) * dt, h_lo + (j as f64 + 0.5) * dh);
            logs.push((tau, theta, scale_mixture_log_posterior(tau, theta, x)));
        }
    }
    let max = logs.iter().map(|l| l.2).fold(f64::NEG_INFINITY, f64::max);
    let mut s = [0.0; 5];
    for (tau, theta, l) in logs {
        let w = (l - max).exp();
        s[0] += w;
        s[1] += w * tau;
        s[2] += w * tau * tau;
        s[3] += w * theta;
        s[4] += w * theta * theta;
    }
    let m = |a: f64, b: f64| {
        let mean = a / s[0];
        (mean, (b / s[0] - mean * mean).sqrt())
    };
    [m(s[1], s[2]), m(s[3], s[4])]
}
