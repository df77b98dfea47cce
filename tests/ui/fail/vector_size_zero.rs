use sbi_runtime::prelude::*;

#[simulator]
fn empty(rng: &mut impl Rng) -> f64 {
    let w = sample!(Normal(0.0, 1.0); 0);
    w.iter().sum::<f64>() + rng.random::<f64>()
}

fn main() {}
