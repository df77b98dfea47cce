use sbi_runtime::prelude::*;

#[simulator]
fn in_loop(rng: &mut impl Rng) -> [f64; 3] {
    let mu = sample!(Normal(0.0, 1.0));
    let mut x = [0.0; 3];
    for xi in x.iter_mut() {
        *xi = sample!(Normal(mu, 1.0)) + rng.random::<f64>();
    }
    x
}

fn main() {}
