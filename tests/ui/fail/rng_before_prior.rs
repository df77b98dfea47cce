use sbi_runtime::prelude::*;

#[simulator]
fn hidden_draw(rng: &mut impl Rng) -> f64 {
    let jitter: f64 = rng.random();
    let mu = sample!(Normal(jitter, 1.0));
    mu + rng.random::<f64>()
}

fn main() {}
