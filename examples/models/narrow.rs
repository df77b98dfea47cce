//! Posteriors that fill a tiny share of the prior, known exactly: the case sequential
//! inference is for. Each prior is Uniform(−1, 1)ᵈ.
//!
//! - `NarrowBox2`, `NarrowBox5`: x = θ + σ ε with σ = 10⁻³ in 2 and 5 dimensions. The
//!   posterior is a product of N(xᵢ, σ²) truncated to [−1, 1]: about 10⁻⁵ (d = 2) and 10⁻¹³
//!   (d = 5) of the prior's volume.
//! - `Crescent`: x₁ = θ₁ + θ₂² + 2·10⁻³ ε₁, x₂ = θ₂ + 0.05 ε₂. The posterior is a thin parabolic
//!   arc (θ₂ spread by 0.05, θ₁ = x₁ − θ₂² within 2·10⁻³): about 10⁻³ of the prior.
//!
//! Exact draws: the likelihood of each model, read as a density in θ, is a Gaussian one can
//! sample (for the crescent θ₂ first, then θ₁ given θ₂), so the posterior is that density
//! restricted to the box, drawn by rejection.

use rand::Rng;
use sbi_runtime::prelude::*;
use sbi_runtime::rng::stream_rng;

/// The boxes' observation noise.
pub const BOX_NOISE: f64 = 1e-3;
/// The crescent's noise on x₁ (across the arc) and on x₂ (along it).
pub const CRESCENT_NOISE: [f64; 2] = [2e-3, 0.05];

/// Two bounded parameters observed with noise 10⁻³.
#[simulator]
pub fn narrow_box2(rng: &mut impl Rng) -> [f64; 2] {
    let theta = sample!(Uniform(-1.0, 1.0); 2);
    theta.map(|t| t + BOX_NOISE * rng.sample::<f64, _>(StandardNormal))
}

/// Five bounded parameters observed with noise 10⁻³.
#[simulator]
pub fn narrow_box5(rng: &mut impl Rng) -> [f64; 5] {
    let theta = sample!(Uniform(-1.0, 1.0); 5);
    theta.map(|t| t + BOX_NOISE * rng.sample::<f64, _>(StandardNormal))
}

/// A thin arc: θ₁ + θ₂² observed precisely, θ₂ loosely.
#[simulator]
pub fn crescent(rng: &mut impl Rng) -> [f64; 2] {
    let a = sample!(Uniform(-1.0, 1.0));
    let b = sample!(Uniform(-1.0, 1.0));
    let e: [f64; 2] = [rng.sample(StandardNormal), rng.sample(StandardNormal)];
    [a + b * b + CRESCENT_NOISE[0] * e[0], b + CRESCENT_NOISE[1] * e[1]]
}

/// The models, by name: their true parameters for the observation.
pub const NAMES: [&str; 3] = ["box2", "box5", "crescent"];

/// The parameters the observation of model `name` is simulated at.
pub fn true_theta(name: &str) -> Vec<f64> {
    match name {
        "box2" => vec![0.3, -0.5],
        "box5" => vec![0.3, -0.5, 0.7, -0.1, 0.05],
        _ => vec![0.2, 0.5],
    }
}

/// `n` exact posterior draws at `x_o` for model `name` (`n × d`, row-major).
///
/// # Panics
/// For an observation so far outside the box that 10⁷ proposals give no draw.
pub fn reference_posterior(name: &str, x_o: &[f64], n: usize, seed: u64) -> Vec<f64> {
    let mut rng = stream_rng(seed, 0x6e61_7272);
    let mut normal = |m: f64, s: f64| m + s * rng.sample::<f64, _>(StandardNormal);
    let d = x_o.len();
    let mut out = Vec::with_capacity(n * d);
    let mut tries = 0usize;
    while out.len() < n * d {
        tries += 1;
        assert!(tries < 10_000_000, "no exact draw in 10⁷ proposals at {x_o:?}");
        let row: Vec<f64> = if name == "crescent" {
            let b = normal(x_o[1], CRESCENT_NOISE[1]);
            vec![normal(x_o[0] - b * b, CRESCENT_NOISE[0]), b]
        } else {
            x_o.iter().map(|&x| normal(x, BOX_NOISE)).collect()
        };
        if row.iter().all(|t| t.abs() <= 1.0) {
            out.extend_from_slice(&row);
        }
    }
    out
}
