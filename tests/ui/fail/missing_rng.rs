use sbi_runtime::prelude::*;

#[simulator]
fn deterministic(scale: f64) -> f64 {
    let theta = sample!(Normal(0.0, 1.0));
    theta * scale
}

fn main() {}
