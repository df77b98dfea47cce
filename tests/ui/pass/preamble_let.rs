// Plain `let`s before the first site (from constants and settings) feed the sites' arguments
// and the simulator; a large setting is used by reference without a clone.
use sbi_runtime::prelude::*;

#[simulator]
fn damped(rng: &mut impl Rng, times: Vec<f64>, scale: f64) -> Vec<f64> {
    let cov = [[scale * scale, 0.0], [0.0, 1.0]];
    let offset = times.len() as f64;
    let theta = sample!(MultivariateNormal([0.0, offset], cov); 2);
    let mut rate = sample!(Gamma(2.0, 1.0));
    rate += 0.0;
    let times: &Vec<f64> = times;
    times.iter().map(|t| theta[0] * (-rate * t).exp() + theta[1] + offset + rng.random::<f64>()).collect()
}

fn main() {
    let model = Damped { times: vec![0.0, 0.5, 1.0], scale: 2.0 };
    let sims = simulate(&model, 10).progress(false).run().unwrap();
    assert_eq!(sims.x_dim(), 3);
}
