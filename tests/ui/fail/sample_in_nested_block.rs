use sbi_runtime::prelude::*;

#[simulator]
fn in_block(rng: &mut impl Rng) -> f64 {
    let mu = sample!(Normal(0.0, 1.0));
    let y = {
        let s = sample!(HalfNormal(1.0));
        mu * s
    };
    y + rng.random::<f64>()
}

fn main() {}
