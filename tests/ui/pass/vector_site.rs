use sbi_runtime::prelude::*;

const D: usize = 4;

#[simulator]
fn vector(rng: &mut impl Rng) -> Vec<f64> {
    let w = sample!(Uniform(-1, 1); D);
    let b = sample!(Normal(0, 1));
    w.iter().map(|wi| wi * b + rng.random::<f64>()).collect()
}

fn main() {
    let names = VectorParams::names();
    assert_eq!(names, ["w[0]", "w[1]", "w[2]", "w[3]", "b"]);
    let _: [f64; D] = VectorParams { w: [0.0; D], b: 1.0 }.w;
}
