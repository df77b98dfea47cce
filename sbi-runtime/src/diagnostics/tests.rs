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

/// The Kolmogorov–Smirnov p-value is close to scipy's exact `kstest(u, "uniform")` (values
/// in the comments), and is about uniform itself under the null.
#[test]
fn ks_pvalues_match_reference_values() {
    let skewed: Vec<f64> = (0..200).map(|i| ((i as f64 + 0.5) / 200.0).powf(1.2)).collect();
    let p = stats::ks_uniform_pvalue(&skewed);
    assert!((p - 0.2762).abs() < 0.01, "p {p}"); // D = 0.0695
    let spread = [0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 0.95, 0.05, 0.33, 0.62];
    let p = stats::ks_uniform_pvalue(&spread);
    assert!((p - 0.9996).abs() < 0.01, "p {p}"); // D = 0.1
    let clustered = [0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.12, 0.2, 0.3, 0.5];
    let p = stats::ks_uniform_pvalue(&clustered);
    assert!((p / 5.68e-4 - 1.0).abs() < 0.35, "p {p}"); // D = 0.6; Stephens' approximation is 7e-4
    // Under the null, p < 0.05 about 5% of the time.
    let mut rng = stream_rng(7, 0);
    let rejections = (0..400)
        .filter(|_| {
            let u: Vec<f64> = (0..200).map(|_| rng.random::<f64>()).collect();
            stats::ks_uniform_pvalue(&u) < 0.05
        })
        .count();
    // Binomial(400, 0.05): mean 20, sd 4.4.
    assert!((6..=36).contains(&rejections), "{rejections} of 400 rejected at 5%");
}

/// Pearson's χ² test: a perfectly even set has p = 1, a set in one bin p ≈ 0, and under
/// the null about 5% of sets are rejected at 5%.
#[test]
fn chi2_pvalues_behave_as_the_test() {
    let even: Vec<f64> = (0..100).map(|i| (i as f64 + 0.5) / 100.0).collect();
    assert!((stats::chi2_uniform_pvalue(&even, 10) - 1.0).abs() < 1e-9);
    let one_bin = vec![0.05; 100];
    assert!(stats::chi2_uniform_pvalue(&one_bin, 10) < 1e-12);
    assert_eq!(stats::bin_counts(&[0.0, 0.999, 1.0, 0.5], 2), vec![1, 3]);
    let mut rng = stream_rng(8, 0);
    let rejections = (0..400)
        .filter(|_| {
            let u: Vec<f64> = (0..200).map(|_| rng.random::<f64>()).collect();
            stats::chi2_uniform_pvalue(&u, 10) < 0.05
        })
        .count();
    assert!((6..=36).contains(&rejections), "{rejections} of 400 rejected at 5%");
    assert!(stats::chi2_uniform_pvalue(&[], 10).is_nan());
}
