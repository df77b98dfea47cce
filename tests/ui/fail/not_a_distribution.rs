use sbi_runtime::prelude::*;

#[simulator]
fn number_prior(rng: &mut impl Rng) -> f64 {
    let theta = sample!(3.0);
    theta + rng.random::<f64>()
}

fn main() {}
