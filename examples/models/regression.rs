//! Bayesian linear regression with a fixed design matrix: y = X w + σ ε, w ~ N(0, I₁₀), with
//! X a 100 × 10 setting. The generated code borrows a setting, so a large one costs nothing
//! per simulation (`bench_simulate` measures it).

use sbi_runtime::prelude::*;

/// Covariates (the dimension of w).
pub const COVARIATES: usize = 10;
/// Rows of the design matrix (the dimension of y).
pub const ROWS: usize = 100;

/// Linear regression: `design` holds one row of covariates per observation, `noise` is σ.
#[simulator]
pub fn regression(rng: &mut impl Rng, design: Vec<[f64; COVARIATES]>, noise: f64) -> Vec<f64> {
    let w = sample!(Normal(0.0, 1.0); COVARIATES);
    design
        .iter()
        .map(|row| row.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + noise * rng.sample::<f64, _>(StandardNormal))
        .collect()
}

/// A fixed, well-conditioned design: an intercept and smooth functions of the row's position.
pub fn design() -> Vec<[f64; COVARIATES]> {
    (0..ROWS)
        .map(|i| {
            let t = i as f64 / ROWS as f64;
            std::array::from_fn(|k| if k == 0 { 1.0 } else { (std::f64::consts::PI * k as f64 * t).cos() })
        })
        .collect()
}

/// Size of the [`residuals`] table.
pub const RESIDUALS: usize = 100_000;

/// A location model whose noise is resampled from a table of measured residuals, a setting
/// of [`RESIDUALS`] values (800 KB) of which each simulation reads four: the cost of a
/// setting copied per simulation would be all of it.
#[simulator]
pub fn empirical_noise(rng: &mut impl Rng, residuals: Vec<f64>) -> [f64; 4] {
    let mu = sample!(Normal(0.0, 1.0));
    std::array::from_fn(|_| mu + residuals[rng.random_range(0..residuals.len())])
}

/// A fixed table of residuals, spread over about ±0.5.
pub fn residuals() -> Vec<f64> {
    (0..RESIDUALS).map(|i| 0.5 * (i as f64 * 0.618_034).sin()).collect()
}
