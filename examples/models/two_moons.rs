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
