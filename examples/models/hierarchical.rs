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
