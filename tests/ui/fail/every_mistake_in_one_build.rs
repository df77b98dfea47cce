use sbi_runtime::prelude::*;

// Three unrelated mistakes: all three are reported, and nothing else.
#[simulator]
fn many(rng: &mut impl Rng) -> [f64; 2] {
    let a = sample!(Uniform(2.0, 1.0));
    let a = sample!(Normal(0.0, 1.0));
    let noise: f64 = rng.random();
    for _ in 0..3 {
        let _ = sample!(Normal(0.0, 1.0));
    }
    [a, noise]
}

fn main() {}
