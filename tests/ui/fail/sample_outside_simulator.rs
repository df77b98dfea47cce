use sbi_runtime::prelude::*;

fn not_a_model(rng: &mut impl Rng) -> f64 {
    let theta = sample!(Normal(0.0, 1.0));
    theta + rng.random::<f64>()
}

fn main() {}
