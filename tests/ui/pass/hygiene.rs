// The user's names shadow the standard prelude and crate roots; generated code still compiles.
#![allow(dead_code, non_camel_case_types)]

use sbi_runtime::prelude::*;

type Result = ();
type Option = ();
struct Vec;
struct String;
struct Ok;
mod core {}
mod std {}

#[simulator]
fn shadowed(rng: &mut impl Rng) -> [f64; 2] {
    let theta = sample!(Normal(0.0, 1.0); 2);
    [theta[0] + rng.random::<f64>(), theta[1]]
}

fn main() {
    let sims = simulate(&Shadowed, 10).progress(false).run().unwrap();
    assert_eq!(sims.theta_dim(), 2);
}
