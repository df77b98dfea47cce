use sbi_runtime::prelude::*;

#[simulator]
fn wordy(rng: &mut impl Rng) -> String {
    let theta = sample!(Normal(0.0, 1.0));
    format!("{}", theta + rng.random::<f64>())
}

fn main() {}
