//! sbibm's two_moons: θ ∈ [-1, 1]², x ∈ ℝ², a bimodal crescent-shaped posterior.

use sbi_runtime::prelude::*;
use std::f64::consts::{FRAC_PI_2, SQRT_2};

/// Two moons (Greenberg et al. 2019; sbibm).
#[simulator]
pub fn two_moons(rng: &mut impl Rng) -> [f64; 2] {
    let theta1 = sample!(Uniform(-1.0, 1.0));
    let theta2 = sample!(Uniform(-1.0, 1.0));
    let a = rng.random_range(-FRAC_PI_2..FRAC_PI_2);
    let r = 0.1 + 0.01 * rng.sample::<f64, _>(StandardNormal);
    let p = [r * a.cos() + 0.25, r * a.sin()];
    let z0 = (theta1 + theta2) / SQRT_2;
    let z1 = (theta2 - theta1) / SQRT_2;
    [p[0] - z0.abs(), p[1] + z1]
}

/// Exact posterior samples for an observation, by sbibm's construction: draw the noise
/// `p`, set `z1 = x1 − p1` and `z0 = ±(p0 − x0)` with either sign, rotate back to θ, and
/// keep θ inside the prior. With a uniform prior every kept draw is exact. Returns
/// `n × 2` row-major values.
pub fn reference_posterior(x_o: [f64; 2], n: usize, seed: u64) -> Vec<f64> {
    let mut rng = sbi_runtime::rng::stream_rng(seed, 0x0072_6566);
    let mut out = Vec::with_capacity(2 * n);
    let mut tries = 0usize;
    while out.len() < 2 * n {
        tries += 1;
        assert!(tries < 1000 * n + 1_000_000, "the observation is outside the model's range");
        let a = rng.random_range(-FRAC_PI_2..FRAC_PI_2);
        let r = 0.1 + 0.01 * rng.sample::<f64, _>(StandardNormal);
        let p = [r * a.cos() + 0.25, r * a.sin()];
        let abs_z0 = p[0] - x_o[0];
        if abs_z0 < 0.0 {
            continue; // x0 = p0 − |z0| has no solution for this noise
        }
        let z0 = if rng.random::<bool>() { abs_z0 } else { -abs_z0 };
        let z1 = x_o[1] - p[1];
        let theta = [(z0 - z1) / SQRT_2, (z0 + z1) / SQRT_2];
        if theta.iter().all(|t| t.abs() <= 1.0) {
            out.extend_from_slice(&theta);
        }
    }
    out
}
