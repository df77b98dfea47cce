use sbi_runtime::prelude::*;

#[simulator]
fn in_closure(rng: &mut impl Rng) -> f64 {
    let mu = sample!(Normal(0.0, 1.0));
    let draw = || sample!(Normal(mu, 1.0));
    draw() + rng.random::<f64>()
}

fn main() {}
