//! Checks against gaussian_linear's closed-form posterior N(x_o/2, 0.05·I), shared by the
//! estimators' tests (the including test crate declares `mod models`).

use crate::models::gaussian_linear::{POSTERIOR_VARIANCE, posterior_mean};
use sbi_runtime::inference::Samples;

/// The mean within a quarter posterior standard deviation of x_o/2 in every coordinate,
/// the variances within 25% of 0.05 and the correlations below 0.15; the Monte Carlo error
/// of 5,000–10,000 draws is a small part of these bands (σ/70 or less for the mean).
pub fn assert_moments(samples: &Samples, x_o: &[f64]) {
    assert_moments_within(samples, x_o, 0.25);
}

/// [`assert_moments`] with the mean within `mean_sds` posterior standard deviations.
#[allow(dead_code)]
pub fn assert_moments_within(samples: &Samples, x_o: &[f64], mean_sds: f64) {
    let (mean, cov) = (samples.mean(), samples.covariance());
    let sd = POSTERIOR_VARIANCE.sqrt();
    for (k, (m, t)) in mean.iter().zip(posterior_mean(x_o)).enumerate() {
        assert!((m - t).abs() < mean_sds * sd, "mean[{k}] = {m}, closed form {t}");
    }
    for i in 0..10 {
        let v = cov[i * 10 + i];
        assert!((v / POSTERIOR_VARIANCE - 1.0).abs() < 0.25, "var[{i}] = {v}");
        for j in 0..i {
            let r = cov[i * 10 + j] / (v * cov[j * 10 + j]).sqrt();
            assert!(r.abs() < 0.15, "corr[{i}][{j}] = {r}");
        }
    }
}

/// The mean absolute error in nats of the log densities `lp` of the rows of `draws` against
/// the closed form.
pub fn mean_log_density_error(draws: &[f64], lp: &[f64], x_o: &[f64]) -> f64 {
    let exact = draws.chunks(10).map(|t| {
        t.iter().zip(x_o).map(|(t, x)| -0.5 * (t - x / 2.0).powi(2) / POSTERIOR_VARIANCE).sum::<f64>()
            - 5.0 * (2.0 * std::f64::consts::PI * POSTERIOR_VARIANCE).ln()
    });
    lp.iter().zip(exact).map(|(a, b)| (a - b).abs()).sum::<f64>() / lp.len() as f64
}
