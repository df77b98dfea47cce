//! sbibm's gaussian_linear: θ ~ N(0, 0.1·I₁₀), x ~ N(θ, 0.1·I₁₀).
//! The posterior is N(x_o / 2, 0.05·I), used for exact tests.

use sbi_runtime::prelude::*;

/// Dimension of θ and x.
pub const DIM: usize = 10;

/// Gaussian linear (sbibm): prior and likelihood both with covariance 0.1·I.
#[simulator]
pub fn gaussian_linear(rng: &mut impl Rng) -> [f64; DIM] {
    let theta = sample!(Normal(0.0, 0.1f64.sqrt()); DIM);
    let sd = 0.1f64.sqrt();
    theta.map(|t| t + sd * rng.sample::<f64, _>(StandardNormal))
}

/// The closed-form posterior mean for an observation: `x_o / 2`.
pub fn posterior_mean(x_o: &[f64]) -> Vec<f64> {
    x_o.iter().map(|x| x / 2.0).collect()
}

/// The closed-form posterior variance of each coordinate: `(1/0.1 + 1/0.1)⁻¹ = 0.05`.
pub const POSTERIOR_VARIANCE: f64 = 0.05;

/// Row `row` (from 0) of the sbibm observations shipped in `examples/data`.
pub fn observation(row: usize) -> Vec<f64> {
    let table = sbi_runtime::io::read_csv(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/gaussian_linear_observations.csv"
    ))
    .expect("the shipped observations are readable");
    table.row(row).to_vec()
}
