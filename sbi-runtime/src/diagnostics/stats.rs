//! Tests of uniformity the calibration diagnostics report: the one-sample
//! Kolmogorov–Smirnov test against Uniform(0, 1) and Pearson's χ² test on equal-width bins.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The p-value of the one-sample Kolmogorov–Smirnov test of `u` against Uniform(0, 1):
/// the statistic `D = sup |F_n(u) − u|` and Stephens' approximation of its distribution,
/// `Q_KS((√n + 0.12 + 0.11/√n)·D)` (statrs has no Kolmogorov distribution, hence written
/// here). Against scipy's exact p-values (`diagnostics::tests`): 0.2793 for 0.2762 at
/// n = 200, 0.9999 for 0.9996 at n = 10; in the far tail only the order of magnitude holds
/// (7.3·10⁻⁴ for 5.7·10⁻⁴ at n = 10), which no decision at usual levels depends on. NaN for
/// no values.
pub fn ks_uniform_pvalue(u: &[f64]) -> f64 {
    let n = u.len();
    if n == 0 {
        return f64::NAN;
    }
    let mut v: Vec<f64> = u.to_vec();
    v.sort_by(f64::total_cmp);
    let nf = n as f64;
    let d = v
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let x = x.clamp(0.0, 1.0);
            ((i + 1) as f64 / nf - x).max(x - i as f64 / nf)
        })
        .fold(0.0, f64::max);
    let sqrt_n = nf.sqrt();
    kolmogorov_survival((sqrt_n + 0.12 + 0.11 / sqrt_n) * d)
}

/// `Q_KS(λ) = 2 Σ_{j≥1} (−1)^{j−1} e^{−2 j² λ²}`, the Kolmogorov distribution's survival function.
fn kolmogorov_survival(lambda: f64) -> f64 {
    if lambda < 0.2 {
        // The series converges slowly here, and the value is 1 to double precision.
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for j in 1..=100 {
        let term = (-2.0 * (j * j) as f64 * lambda * lambda).exp();
        sum += sign * term;
        if term < 1e-16 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Counts of `u` (in [0, 1]) in `bins` equal-width bins.
pub fn bin_counts(u: &[f64], bins: usize) -> Vec<usize> {
    let mut counts = vec![0usize; bins.max(1)];
    for &x in u {
        let b = ((x.clamp(0.0, 1.0) * bins as f64) as usize).min(bins.max(1) - 1);
        counts[b] += 1;
    }
    counts
}

/// The p-value of Pearson's χ² test that `u` (in [0, 1]) is uniform over `bins` equal-width
/// bins (`bins − 1` degrees of freedom). NaN for fewer than 2 bins or no values.
pub fn chi2_uniform_pvalue(u: &[f64], bins: usize) -> f64 {
    if bins < 2 || u.is_empty() {
        return f64::NAN;
    }
    let expected = u.len() as f64 / bins as f64;
    let stat: f64 = bin_counts(u, bins).iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
    match ChiSquared::new((bins - 1) as f64) {
        Ok(chi2) => chi2.sf(stat),
        Err(_) => f64::NAN,
    }
}
