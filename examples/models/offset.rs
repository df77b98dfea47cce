//! Models whose numbers sit far from zero, for checking that standardisation keeps their
//! precision: observations offset by a large constant, and a prior on a far interval.
//! Both posteriors are known: a product of normals N(x − offset, 0.1²) truncated to the box.

use sbi_runtime::prelude::*;

/// Noise of each observed coordinate.
pub const NOISE: f64 = 0.1;

/// `x = offset + θ + N(0, 0.1²)` with `θ ~ Uniform(−1, 1)²`: the offset carries no information.
#[simulator]
pub fn shifted(rng: &mut impl Rng, offset: f64) -> [f64; 2] {
    let theta = sample!(Uniform(-1.0, 1.0); 2);
    theta.map(|t| offset + t + NOISE * rng.sample::<f64, _>(StandardNormal))
}

/// `θ ~ Uniform(base, base + 1)²`, `x = θ − base + N(0, 0.1²)`: parameters far from zero.
#[simulator]
pub fn far_prior(rng: &mut impl Rng, base: f64) -> [f64; 2] {
    let theta = sample!(Uniform(base, base + 1.0); 2);
    theta.map(|t| (t - base) + NOISE * rng.sample::<f64, _>(StandardNormal))
}

/// Mean and standard deviation of `N(m, s²)` truncated to `[lo, hi]`.
pub fn truncated_normal_moments(m: f64, s: f64, lo: f64, hi: f64) -> (f64, f64) {
    // A fine grid is exact to far more digits than any test needs.
    let n = 20_000;
    let h = (hi - lo) / n as f64;
    let (mut w, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let t = lo + (i as f64 + 0.5) * h;
        let p = (-0.5 * ((t - m) / s).powi(2)).exp();
        w += p;
        s1 += p * t;
        s2 += p * t * t;
    }
    let mean = s1 / w;
    (mean, (s2 / w - mean * mean).max(0.0).sqrt())
}
