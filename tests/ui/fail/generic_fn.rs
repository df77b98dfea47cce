use sbi_runtime::prelude::*;

#[simulator]
fn generic<T: Into<f64>>(rng: &mut impl Rng, scale: T) -> f64 {
    let theta = sample!(Normal(0.0, 1.0));
    theta * scale.into() + rng.random::<f64>()
}

fn main() {}
