use sbi_runtime::prelude::*;

#[simulator]
fn in_branch(rng: &mut impl Rng) -> f64 {
    let mu = sample!(Normal(0.0, 1.0));
    let noise: f64 = rng.random();
    if noise > 0.5 { mu + sample!(Normal(0.0, 1.0)) } else { mu }
}

fn main() {}
