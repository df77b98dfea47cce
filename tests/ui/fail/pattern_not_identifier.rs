use sbi_runtime::prelude::*;

#[simulator]
fn tuple_site(rng: &mut impl Rng) -> f64 {
    let (a, b) = sample!(Normal(0.0, 1.0));
    a + b + rng.random::<f64>()
}

fn main() {}
