use sbi_runtime::prelude::*;
use std::f64::consts::FRAC_PI_2;

#[simulator]
fn two_moons(rng: &mut impl Rng) -> [f64; 2] {
    let theta1 = sample!(Uniform(-1.0, 1.0));
    let theta2 = sample!(Uniform(-1, 1));
    let a = rng.random_range(-FRAC_PI_2..FRAC_PI_2);
    let r = 0.1 + 0.01 * rng.sample::<f64, _>(StandardNormal);
    let p = [r * a.cos() + 0.25, r * a.sin()];
    let z0 = (theta1 + theta2) / 2f64.sqrt();
    let z1 = (theta2 - theta1) / 2f64.sqrt();
    [p[0] - z0.abs(), p[1] + z1]
}

fn main() {
    let sims = simulate(&TwoMoons, 1000).seed(1).run().unwrap();
    println!("{} {:?}", sims.len(), &sims.theta[..4]);
}
