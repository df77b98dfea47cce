//! A bounded prior whose posterior is known: θ ~ Uniform(−1, 1)¹⁰, x = θ + σ ε with σ = 0.5.
//! Each coordinate's posterior is N(xᵢ, σ²) truncated to [−1, 1], with much of its mass at
//! the prior's edges: the case where a flow trained on θ itself leaks mass outside the box.

use sbi_runtime::prelude::*;
use sbi_runtime::rng::stream_rng;

/// Parameters (and observations).
pub const DIM: usize = 10;
/// The observation noise σ.
pub const NOISE: f64 = 0.5;

/// Ten bounded parameters observed with Gaussian noise.
#[simulator]
pub fn uniform_box(rng: &mut impl Rng) -> [f64; DIM] {
    let theta = sample!(Uniform(-1.0, 1.0); DIM);
    theta.map(|t| t + NOISE * rng.sample::<f64, _>(StandardNormal))
}

/// `n` exact posterior draws at `x_o` (`n × DIM` row-major): each coordinate from
/// N(xᵢ, σ²) truncated to [−1, 1], by rejection (an observation within a few σ of the box
/// accepts at least one proposal in a few hundred).
///
/// # Panics
/// When a coordinate accepts nothing in 10⁶ proposals (an observation far outside the box).
pub fn reference_posterior(x_o: &[f64], n: usize, seed: u64) -> Vec<f64> {
    let mut rng = stream_rng(seed, 0);
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        for &x in &x_o[..DIM] {
            let draw = (0..1_000_000)
                .map(|_| x + NOISE * rng.sample::<f64, _>(StandardNormal))
                .find(|t| t.abs() <= 1.0)
                .unwrap_or_else(|| panic!("x = {x} is too far outside the box for rejection"));
            out.push(draw);
        }
    }
    out
}
