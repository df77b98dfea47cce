use sbi_runtime::prelude::*;

#[simulator]
fn eight_schools(rng: &mut impl Rng) -> [f64; 8] {
    let mu = sample!(Normal(0.0, 5.0));
    let tau = sample!(HalfNormal(5.0));
    let theta = sample!(Normal(mu, tau); 8);
    theta.map(|t| t + 10.0 * rng.sample::<f64, _>(StandardNormal))
}

fn main() {
    let p: EightSchoolsParams = EightSchools.prior().sample(&mut sbi_runtime::rng::stream_rng(0, 0)).unwrap();
    assert!(p.tau > 0.0);
    assert_eq!(EightSchoolsParams::DIM, 10);
}
