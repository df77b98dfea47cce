use sbi_runtime::prelude::*;

#[simulator]
fn silent(rng: &mut impl Rng) {
    let theta = sample!(Normal(0.0, 1.0));
    let _ = theta + rng.random::<f64>();
}

fn main() {}
