use sbi_runtime::prelude::*;

#[simulator]
async fn asynchronous(rng: &mut impl Rng) -> f64 {
    let theta = sample!(Normal(0.0, 1.0));
    theta + rng.random::<f64>()
}

fn main() {}
