use sbi_runtime::prelude::*;

/// A point mass smeared by a tiny uniform: a user's own prior distribution.
struct AlmostConstant {
    value: f64,
}

impl PriorDistribution for AlmostConstant {
    fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) {
        out[0] = self.value + 1e-3 * (rng.random::<f64>() - 0.5);
    }
    fn log_prob(&self, x: &[f64]) -> f64 {
        if (x[0] - self.value).abs() <= 5e-4 { 1000f64.ln() } else { f64::NEG_INFINITY }
    }
    fn support(&self) -> Support {
        Support::Interval(self.value - 5e-4, self.value + 5e-4)
    }
}

#[simulator]
fn custom(rng: &mut impl Rng) -> [f64; 1] {
    let c = sample!(AlmostConstant { value: 2.0 });
    let fallible = sample!(Normal::new(c, 1.0));
    [fallible + rng.random::<f64>()]
}

fn main() {
    let sims = simulate(&Custom, 10).progress(false).run().unwrap();
    assert!(sims.theta.chunks(2).all(|t| (t[0] - 2.0).abs() < 1e-3));
}
