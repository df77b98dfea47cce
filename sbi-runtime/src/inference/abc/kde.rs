//! A weighted Gaussian kernel density of ABC's accepted parameters, fitted in the prior's
//! unconstrained space: `q(z) = Σ_i w_i N(z; z_i, h² Σ_w)` with `Σ_w` the weighted
//! covariance and `h` Scott's or Silverman's factor at the weights' effective sample size.
//! Draws and densities map back through the prior's transform, so they never leave its
//! support.

use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Prior;
use crate::rng::SimRng;

/// The kernel width as a multiple of the weighted covariance's square root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub enum Bandwidth {
    /// The factor on a grid (Scott's times `2^{k/4}`, k = −16…2) that maximises the
    /// weighted leave-one-out log-likelihood of the particles (the default; `sbi`'s ABC
    /// kernel densities also cross-validate): Scott's and Silverman's rules assume one
    /// Gaussian bump and blur curved or multimodal posteriors.
    #[default]
    CrossValidated,
    /// Scott's rule, `h = n_eff^{−1/(d+4)}` (as `scipy.stats.gaussian_kde`).
    Scott,
    /// Silverman's rule, `h = (n_eff (d+2)/4)^{−1/(d+4)}`.
    Silverman,
    /// A given factor `h > 0`.
    Factor(f64),
}

/// Effective sample size `1 / Σ w²` of normalised weights.
pub(crate) fn ess(weights: &[f64]) -> f64 {
    1.0 / weights.iter().map(|w| w * w).sum::<f64>()
}

/// Weighted mean and covariance (`d × d` row-major) of rows `z`; weights sum to 1.
pub(crate) fn weighted_moments(z: &[f64], weights: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; d];
    for (row, w) in z.chunks_exact(d).zip(weights) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += w * v);
    }
    let mut cov = vec![0.0; d * d];
    for (row, w) in z.chunks_exact(d).zip(weights) {
        for a in 0..d {
            for b in 0..=a {
                cov[a * d + b] += w * (row[a] - mean[a]) * (row[b] - mean[b]);
            }
        }
    }
    // The unbiased weighted estimate: divide by 1 − Σw².
    let norm = 1.0 - weights.iter().map(|w| w * w).sum::<f64>();
    for a in 0..d {
        for b in 0..=a {
            if norm > 0.0 {
                cov[a * d + b] /= norm;
            }
            cov[b * d + a] = cov[a * d + b];
        }
    }
    (mean, cov)
}

/// A fitted kernel density (see the module's description).
#[derive(Debug, Clone)]
pub(crate) struct Kde {
    d: usize,
    /// Centres in unconstrained space.
    z: Vec<f64>,
    /// Normalised weights; their logarithms.
    weights: Vec<f64>,
    log_weights: Vec<f64>,
    /// Lower Cholesky factor of the kernel covariance `h² Σ_w`.
    chol: Vec<f64>,
    /// The centres whitened by `chol`.
    white: Vec<f64>,
    /// `−½ d log 2π − log det chol`.
    log_norm: f64,
}

/// Solves `L y = v` (lower triangular `L`, `d × d`).
fn forward(l: &[f64], v: &[f64], d: usize) -> Vec<f64> {
    let mut y = vec![0.0; d];
    for i in 0..d {
        let s: f64 = (0..i).map(|j| l[i * d + j] * y[j]).sum();
        y[i] = (v[i] - s) / l[i * d + i];
    }
    y
}

impl Kde {
    /// Fits the density to unconstrained rows `z` with normalised `weights`.
    ///
    /// # Errors
    /// [`Error::Config`] for a non-positive bandwidth factor, or draws whose spread is
    /// singular (fewer distinct draws than parameters): accept more draws.
    pub fn fit(z: Vec<f64>, weights: Vec<f64>, d: usize, bandwidth: Bandwidth) -> Result<Kde> {
        let n_eff = ess(&weights);
        let scott = n_eff.powf(-1.0 / (d as f64 + 4.0));
        let (_, cov) = weighted_moments(&z, &weights, d);
        let singular = || {
            Error::Config(format!(
                "the accepted draws (effective sample size {n_eff:.1}) have a singular spread in {d} parameters: \
                 accept more draws (a larger quantile or ε) to fit a kernel density, or return the accepted draws \
                 themselves (`Resample::Particles`)"
            ))
        };
        let h = match bandwidth {
            Bandwidth::Scott => scott,
            Bandwidth::Silverman => (n_eff * (d as f64 + 2.0) / 4.0).powf(-1.0 / (d as f64 + 4.0)),
            Bandwidth::Factor(h) => h,
            Bandwidth::CrossValidated => {
                let chol = crate::model::distributions::cholesky(&cov, d).ok_or_else(singular)?;
                // Beyond CV_ROWS particles, the factor is chosen on every m-th of them (a
                // quadratic cost otherwise) and carried to all at Scott's rate n^{−1/(d+4)}.
                let every = weights.len().div_ceil(CV_ROWS);
                let rows: Vec<usize> = (0..weights.len()).step_by(every).collect();
                let total: f64 = rows.iter().map(|&i| weights[i]).sum();
                let sub_w: Vec<f64> = rows.iter().map(|&i| weights[i] / total).collect();
                let white: Vec<f64> = rows.iter().flat_map(|&i| forward(&chol, &z[i * d..(i + 1) * d], d)).collect();
                let sub_scott = ess(&sub_w).powf(-1.0 / (d as f64 + 4.0));
                cross_validated(&white, &sub_w, d, sub_scott) * scott / sub_scott
            }
        };
        if !(h > 0.0 && h.is_finite()) {
            return Err(Error::Config(format!("the kernel density's bandwidth factor must be positive, got {h}")));
        }
        let kernel: Vec<f64> = cov.iter().map(|c| c * h * h).collect();
        let chol = crate::model::distributions::cholesky(&kernel, d).ok_or_else(singular)?;
        let white: Vec<f64> = z.chunks_exact(d).flat_map(|row| forward(&chol, row, d)).collect();
        let log_det: f64 = (0..d).map(|i| chol[i * d + i].ln()).sum();
        let log_norm = -0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln() - log_det;
        let log_weights = weights.iter().map(|w| w.ln()).collect();
        Ok(Kde { d, z, weights, log_weights, chol, white, log_norm })
    }

    /// `n` draws in unconstrained space.
    pub fn sample_z(&self, n: usize, rng: &mut SimRng) -> Vec<f64> {
        let d = self.d;
        let picks = systematic_picks(&self.weights, n, rng);
        let mut out = Vec::with_capacity(n * d);
        let mut eps = vec![0.0; d];
        for i in picks {
            eps.iter_mut().for_each(|e| *e = rng.sample::<f64, _>(StandardNormal));
            for a in 0..d {
                out.push(self.z[i * d + a] + (0..=a).map(|b| self.chol[a * d + b] * eps[b]).sum::<f64>());
            }
        }
        out
    }

    /// `log q(z)` at one unconstrained point.
    pub fn log_density_z(&self, z: &[f64]) -> f64 {
        let y = forward(&self.chol, z, self.d);
        let terms: Vec<f64> = self
            .white
            .chunks_exact(self.d)
            .zip(&self.log_weights)
            .map(|(c, lw)| lw - 0.5 * c.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
            .collect();
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln() + self.log_norm
    }
}

/// Particles the bandwidth's cross-validation uses at most.
const CV_ROWS: usize = 2000;

/// The factor `h` on the grid `scott · 2^{k/4}` (k = −16…2) that maximises the weighted
/// leave-one-out log-likelihood `Σ_i w_i log(Σ_{j≠i} w_j N(y_i; y_j, h² I) / (1 − w_i))` of
/// the whitened rows `y`; the smallest such factor on ties.
fn cross_validated(white: &[f64], weights: &[f64], d: usize, scott: f64) -> f64 {
    use rayon::prelude::*;
    let n = weights.len();
    if n < 3 {
        return scott;
    }
    // Squared distances once (n² values; for more rows, on the fly).
    let pairs: Option<Vec<f64>> = (n <= 3000).then(|| {
        (0..n * n)
            .into_par_iter()
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                white[i * d..(i + 1) * d].iter().zip(&white[j * d..(j + 1) * d]).map(|(a, b)| (a - b) * (a - b)).sum()
            })
            .collect()
    });
    let sq = |i: usize, j: usize| -> f64 {
        match &pairs {
            Some(p) => p[i * n + j],
            None => {
                white[i * d..(i + 1) * d].iter().zip(&white[j * d..(j + 1) * d]).map(|(a, b)| (a - b) * (a - b)).sum()
            }
        }
    };
    let score = |h: f64| -> f64 {
        let log_norm = -(d as f64) * h.ln();
        (0..n)
            .into_par_iter()
            .map(|i| {
                let terms: Vec<f64> =
                    (0..n).filter(|&j| j != i).map(|j| weights[j].ln() - 0.5 * sq(i, j) / (h * h)).collect();
                let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
                weights[i] * (lse - (1.0 - weights[i]).max(1e-300).ln() + log_norm)
            })
            .collect::<Vec<f64>>()
            .iter()
            .sum()
    };
    let mut best = (f64::NEG_INFINITY, scott);
    for k in -16..=2 {
        let h = scott * 2f64.powf(k as f64 / 4.0);
        let s = score(h);
        if s > best.0 {
            best = (s, h);
        }
    }
    best.1
}

/// `n` indices drawn with probabilities `weights` (normalised) by systematic resampling,
/// then shuffled: lower variance than independent draws, and in random order.
pub(crate) fn systematic_picks(weights: &[f64], n: usize, rng: &mut SimRng) -> Vec<usize> {
    let u0: f64 = rng.random::<f64>() / n as f64;
    let mut picks = Vec::with_capacity(n);
    let (mut cum, mut i) = (weights.first().copied().unwrap_or(0.0), 0);
    for k in 0..n {
        let u = u0 + k as f64 / n as f64;
        while u > cum && i + 1 < weights.len() {
            i += 1;
            cum += weights[i];
        }
        picks.push(i);
    }
    for k in (1..picks.len()).rev() {
        let j = rng.random_range(0..=k);
        picks.swap(k, j);
    }
    picks
}

/// Maps unconstrained rows to parameters; returns them and each row's `log |det dθ/dz|`.
///
/// # Errors
/// The prior's transform errors.
pub(crate) fn constrain_rows<P: Prior + ?Sized>(prior: &P, z: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    let d = prior.dim();
    let mut theta = vec![0.0; z.len()];
    let mut log_det = Vec::with_capacity(z.len() / d);
    for (zr, tr) in z.chunks_exact(d).zip(theta.chunks_exact_mut(d)) {
        log_det.push(prior.constrain(zr, tr)?);
    }
    Ok((theta, log_det))
}

/// Maps parameter rows to unconstrained space.
///
/// # Errors
/// The prior's transform errors.
pub(crate) fn unconstrain_rows<P: Prior + ?Sized>(prior: &P, theta: &[f64]) -> Result<Vec<f64>> {
    let d = prior.dim();
    let mut z = vec![0.0; theta.len()];
    for (tr, zr) in theta.chunks_exact(d).zip(z.chunks_exact_mut(d)) {
        prior.unconstrain(tr, zr)?;
    }
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;

    /// The density integrates to one and its draws have the kernel mixture's moments.
    #[test]
    fn kde_is_normalised_and_draws_match_it() {
        let z = vec![-1.0, 0.0, 0.5, 2.0];
        let w = vec![0.1, 0.2, 0.3, 0.4];
        let kde = Kde::fit(z.clone(), w.clone(), 1, Bandwidth::Factor(0.5)).unwrap();
        let (lo, hi, m) = (-10.0, 12.0, 22_000);
        let dx = (hi - lo) / m as f64;
        let total: f64 = (0..m).map(|i| kde.log_density_z(&[lo + (i as f64 + 0.5) * dx]).exp() * dx).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        let mut rng = stream_rng(3, 0);
        let draws = kde.sample_z(200_000, &mut rng);
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let exact: f64 = z.iter().zip(&w).map(|(a, b)| a * b).sum();
        // Mixture sd ≈ 1.1: the mean's Monte Carlo error is about 0.0025.
        assert!((mean - exact).abs() < 0.01, "{mean} vs {exact}");
    }

    #[test]
    fn systematic_picks_follow_the_weights() {
        let mut rng = stream_rng(1, 0);
        let picks = systematic_picks(&[0.25, 0.0, 0.75], 1000, &mut rng);
        let count = |i| picks.iter().filter(|&&p| p == i).count();
        assert_eq!((count(0), count(1), count(2)), (250, 0, 750));
    }

    #[test]
    fn singular_spreads_are_refused() {
        let err = Kde::fit(vec![1.0, 2.0, 1.0, 2.0], vec![0.5, 0.5], 2, Bandwidth::Scott).unwrap_err();
        assert!(matches!(err, Error::Config(ref m) if m.contains("singular")), "{err}");
    }
}
