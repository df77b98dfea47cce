use super::*;
use crate::error::Error;
use crate::rng::{SimRng, stream_rng};
use rand::RngExt;
use rand_distr::StandardNormal;

fn gaussian(n: usize, shift: f64, seed: u64) -> Vec<f64> {
    let mut rng = stream_rng(seed, 0);
    (0..2 * n).map(|_| rng.sample::<f64, _>(StandardNormal) + shift).collect()
}

#[test]
fn same_distribution_scores_near_one_half() {
    let a = gaussian(1000, 0.0, 1);
    let b = gaussian(1000, 0.0, 2);
    let acc = c2st(&a, &b, 2).unwrap();
    // The accuracy of a chance classifier on 2000 points has sd ≈ 0.011; overfitting
    // can only push it below 0.5 by a little.
    assert!((0.44..0.56).contains(&acc), "accuracy {acc}");
}

#[test]
fn separated_distributions_score_near_one() {
    let a = gaussian(1000, 0.0, 1);
    let b = gaussian(1000, 6.0, 2);
    let acc = c2st(&a, &b, 2).unwrap();
    assert!(acc > 0.99, "accuracy {acc}");
}

#[test]
fn bad_input_is_an_error() {
    assert!(c2st(&[1.0, 2.0, 3.0], &[1.0, 2.0], 2).is_err());
    // Nothing to compare with is an error, not a perfect score.
    assert!(matches!(c2st(&[], &gaussian(100, 0.0, 1), 2), Err(Error::Config(_))));
    assert!(matches!(c2st(&gaussian(100, 0.0, 1), &[], 2), Err(Error::Config(_))));
    assert!(c2st(&[f64::NAN; 20], &[0.0; 20], 2).is_err());
}

/// Draws from the exact posterior cover at the nominal rate; draws from a posterior
/// half as wide do not.
#[test]
fn coverage_of_exact_and_overconfident_posteriors() {
    use rand::RngExt;
    use rand_distr::StandardNormal;
    let mut rng = stream_rng(3, 4);
    let (mut exact, mut narrow) = (Coverage::new(1, 0.9), Coverage::new(1, 0.9));
    for _ in 0..2_000 {
        // θ ~ N(0, 1), x ~ N(θ, 1): the posterior is N(x/2, 1/2).
        let theta: f64 = rng.sample(StandardNormal);
        let x = theta + rng.sample::<f64, _>(StandardNormal);
        let draws = |scale: f64, rng: &mut SimRng| -> Vec<f64> {
            (0..400).map(|_| x / 2.0 + scale * 0.5f64.sqrt() * rng.sample::<f64, _>(StandardNormal)).collect()
        };
        exact.add(&draws(1.0, &mut rng), &[theta]).unwrap();
        narrow.add(&draws(0.5, &mut rng), &[theta]).unwrap();
    }
    let se = exact.standard_error();
    // 400 draws place the interval's ends with some noise: allow 1% on top of 5 se.
    assert!((exact.rates()[0] - 0.9).abs() < 5.0 * se + 0.01, "exact: {:?}", exact.rates());
    // Half-width intervals cover P(|z| < 1.645 / 2) ≈ 0.59.
    assert!((narrow.rates()[0] - 0.59).abs() < 5.0 * se + 0.01, "narrow: {:?}", narrow.rates());
    assert!(exact.add(&[1.0, 2.0], &[0.0, 1.0, 2.0]).is_err());
    assert!(Coverage::new(0, 0.9).add(&[1.0], &[]).is_err());
}
