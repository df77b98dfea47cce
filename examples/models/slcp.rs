//! sbibm's slcp ("simple likelihood, complex posterior"): θ ∈ [-3, 3]⁵, x = four draws
//! from a 2-D Gaussian whose mean and covariance are set by θ; four symmetric posterior modes.

use sbi_runtime::prelude::*;

/// SLCP (Papamakarios et al. 2019; sbibm).
#[simulator]
pub fn slcp(rng: &mut impl Rng) -> [f64; 8] {
    let theta = sample!(Uniform(-3.0, 3.0); 5);
    let m = [theta[0], theta[1]];
    let s1 = theta[2] * theta[2];
    let s2 = theta[3] * theta[3];
    let rho = theta[4].tanh();
    // S = [[s1², ρ s1 s2], [ρ s1 s2, s2²]] + 1e-6 I, by its 2×2 Cholesky factor.
    let (a, b, c) = (s1 * s1 + 1e-6, rho * s1 * s2, s2 * s2 + 1e-6);
    let l11 = a.sqrt();
    let l21 = b / l11;
    let l22 = (c - l21 * l21).max(0.0).sqrt();
    let mut x = [0.0; 8];
    for point in x.chunks_exact_mut(2) {
        let e1: f64 = rng.sample(StandardNormal);
        let e2: f64 = rng.sample(StandardNormal);
        point[0] = m[0] + l11 * e1;
        point[1] = m[1] + l21 * e1 + l22 * e2;
    }
    x
}
