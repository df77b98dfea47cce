use sbi_runtime::prelude::*;

#[simulator]
fn impossible(rng: &mut impl Rng) -> [f64; 3] {
    let a = sample!(Uniform(1.0, -1.0));
    let b = sample!(Normal(0.0, -2.0));
    let c = sample!(Gamma(0.0, 1.0));
    [a, b, c + rng.random::<f64>()]
}

fn main() {}
