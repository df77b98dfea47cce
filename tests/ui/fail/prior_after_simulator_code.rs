use sbi_runtime::prelude::*;

#[simulator]
fn late_prior(rng: &mut impl Rng) -> f64 {
    let mu = sample!(Normal(0.0, 1.0));
    let noise: f64 = rng.random();
    let sigma = sample!(HalfNormal(1.0));
    mu + sigma * noise
}

fn main() {}
