use sbi_runtime::prelude::*;

#[simulator]
fn twice(rng: &mut impl Rng) -> f64 {
    let theta = sample!(Normal(0.0, 1.0));
    let theta = sample!(Uniform(0.0, 1.0));
    theta + rng.random::<f64>()
}

fn main() {}
