use sbi_runtime::prelude::*;

#[simulator]
fn sir(rng: &mut impl Rng, population: u32, days: usize, label: String) -> Vec<f64> {
    let beta = sample!(LogNormal(0.0, 1.0));
    let cap = sample!(Uniform(0.0, population as f64));
    assert!(!label.is_empty());
    (0..days).map(|d| (beta * d as f64).min(cap) + rng.random::<f64>()).collect()
}

fn main() {
    let model = Sir { population: 1_000, days: 30, label: "test".to_string() };
    let sims = simulate(&model, 10).progress(false).run().unwrap();
    assert_eq!(sims.x_dim(), 30);
    let _prior: SirPrior = model.prior();
}
