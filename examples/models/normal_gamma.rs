//! Replicated Gaussian data with the conjugate Normal–Gamma prior: the precision
//! τ ~ Gamma(3, rate 2), the mean μ | τ ~ N(0, 1/τ), and 1 to 100 iid replicates
//! x_i ~ N(μ, 1/τ); the exact posterior's means, medians, modes and quantiles in closed form.

use sbi_runtime::prelude::*;
use statrs::distribution::{ContinuousCDF, Gamma as GammaDist, StudentsT};

/// The most replicates a data set holds.
pub const MAX_REPLICATES: usize = 100;
/// τ's prior shape a₀ and rate b₀, and μ's prior precision factor κ₀ (μ | τ ~ N(0, 1/(κ₀τ))).
const A0: f64 = 3.0;
const B0: f64 = 2.0;
const K0: f64 = 1.0;

/// `replicates` iid Gaussian measurements of unknown mean and precision, or, when
/// `replicates` is 0, a number drawn uniformly from 1 to 100 for each data set.
#[simulator]
pub fn normal_gamma(rng: &mut impl Rng, replicates: usize) -> VarTrials<1, MAX_REPLICATES> {
    let tau = sample!(Gamma(3.0, 2.0));
    let mu = sample!(Normal(0.0, 1.0 / tau.sqrt()));
    let m = if replicates == 0 { rng.random_range(1..=MAX_REPLICATES) } else { replicates.min(MAX_REPLICATES) };
    let sd = 1.0 / tau.sqrt();
    VarTrials((0..m).map(|_| [mu + sd * rng.sample::<f64, _>(StandardNormal)]).collect())
}

/// The exact posterior `τ | x ~ Gamma(a, rate b)`, `μ | x ~ m + s·t_{2a}` with
/// `s² = b / (a κ)`.
#[derive(Debug, Clone, Copy)]
pub struct Exact {
    a: f64,
    b: f64,
    kappa: f64,
    m: f64,
}

impl Exact {
    /// The posterior given a data set (absent replicates, NaN, are left out).
    pub fn of(x: &[f64]) -> Exact {
        let present: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
        let n = present.len() as f64;
        let mean = present.iter().sum::<f64>() / n.max(1.0);
        let ss: f64 = present.iter().map(|v| (v - mean).powi(2)).sum();
        let kappa = K0 + n;
        Exact { a: A0 + n / 2.0, b: B0 + ss / 2.0 + K0 * n * mean * mean / (2.0 * kappa), kappa, m: n * mean / kappa }
    }

    /// The posterior means of (τ, μ).
    pub fn mean(&self) -> [f64; 2] {
        [self.a / self.b, self.m]
    }

    /// The marginal posterior modes of (τ, μ).
    pub fn mode(&self) -> [f64; 2] {
        [(self.a - 1.0) / self.b, self.m]
    }

    /// The marginal posterior quantiles of (τ, μ) at level `p`.
    pub fn quantile(&self, p: f64) -> [f64; 2] {
        let tau = GammaDist::new(self.a, self.b).expect("a, b > 0").inverse_cdf(p);
        let scale = (self.b / (self.a * self.kappa)).sqrt();
        let mu = StudentsT::new(self.m, scale, 2.0 * self.a).expect("scale, dof > 0").inverse_cdf(p);
        [tau, mu]
    }
}
