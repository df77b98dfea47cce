//! A weighted Gaussian kernel density of ABC's accepted parameters,
//! `q(z) = Σ_i w_i N(z; z_i, h² S)`: by default `h` and the kernel's shape `S` (the weighted
//! covariance, its diagonal, or the pooled covariance of nearest neighbourhoods) maximise the
//! leave-one-out likelihood, and so does the space it lives in: the prior's unconstrained
//! space (densities carry the transform's Jacobian) or the parameters themselves, truncated
//! to the prior's support (a posterior against a bound of a uniform prior is stretched
//! without limit by the logit and is better fitted where it lies). Draws never leave the
//! support.

use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Prior;
use crate::rng::SimRng;

/// The kernel width as a multiple of the square root of its shape (the weighted covariance
/// unless cross-validated, see [`Bandwidth::CrossValidated`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub enum Bandwidth {
    /// The factor on a grid (Scott's times `2^{k/4}`, k = −16…2), the kernel's shape and the
    /// space (see the module's description) that maximise the weighted leave-one-out
    /// log-likelihood of the particles (the default; `sbi`'s ABC kernel densities also
    /// cross-validate their bandwidth): Scott's and Silverman's rules with the global
    /// covariance assume one Gaussian bump and blur curved or multimodal posteriors (sbibm
    /// two_moons observations 1–5, SMC-ABC with sbibm's settings: C2ST 0.78 with the
    /// covariance's shape, 0.72 with the chosen one).
    /// The rules and factors use the covariance and the unconstrained space.
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
    /// The cross-validated fit: the weighted mean leave-one-out log density of the centres
    /// (NaN for a bandwidth given by a rule or a factor).
    cv_score: f64,
}

/// Solves `L y = v` (lower triangular `L`, `d × d`).
fn forward(l: &[f64], v: &[f64], d: usize) -> Vec<f64> {
    let mut y = vec![0.0; d];
    forward_into(l, v, &mut y);
    y
}

/// Solves `L y = v` into `y` (of `d` values).
fn forward_into(l: &[f64], v: &[f64], y: &mut [f64]) {
    let d = y.len();
    for i in 0..d {
        let s: f64 = (0..i).map(|j| l[i * d + j] * y[j]).sum();
        y[i] = (v[i] - s) / l[i * d + i];
    }
}

/// The lower Cholesky factor of `cov` (`d × d`) and its log determinant.
pub(crate) fn factor(cov: &[f64], d: usize) -> Option<(Vec<f64>, f64)> {
    let l = crate::model::distributions::cholesky(cov, d)?;
    let log_det = (0..d).map(|i| l[i * d + i].ln()).sum();
    Some((l, log_det))
}

/// `log Σ_i exp(t_i)`, with the largest term factored out.
pub(crate) fn log_sum_exp(terms: &[f64]) -> f64 {
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
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
        let (_, mut cov) = weighted_moments(&z, &weights, d);
        let singular = || {
            Error::Config(format!(
                "the accepted draws (effective sample size {n_eff:.1}) have a singular spread in {d} parameters: \
                 accept more draws (a larger quantile or ε) to fit a kernel density, or return the accepted draws \
                 themselves (`Resample::Particles`)"
            ))
        };
        let mut cv_score = f64::NAN;
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
                let sub_z: Vec<f64> = rows.iter().flat_map(|&i| z[i * d..(i + 1) * d].to_vec()).collect();
                let sub_scott = ess(&sub_w).powf(-1.0 / (d as f64 + 4.0));
                let mut best: Option<(f64, f64, Vec<f64>)> = None;
                for shape in kernel_shapes(&sub_z, &sub_w, &cov, &chol, d) {
                    let Some((l, log_det)) = factor(&shape, d) else { continue };
                    let white: Vec<f64> = sub_z.chunks_exact(d).flat_map(|row| forward(&l, row, d)).collect();
                    let (score, h) = cross_validated(&white, &sub_w, d, sub_scott);
                    if best.as_ref().is_none_or(|b| score - log_det > b.0) {
                        best = Some((score - log_det, h * scott / sub_scott, shape));
                    }
                }
                let (score, h, shape) = best.ok_or_else(singular)?;
                cv_score = score - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
                cov = shape;
                h
            }
        };
        if !(h > 0.0 && h.is_finite()) {
            return Err(Error::Config(format!("the kernel density's bandwidth factor must be positive, got {h}")));
        }
        let kernel: Vec<f64> = cov.iter().map(|c| c * h * h).collect();
        let (chol, log_det) = factor(&kernel, d).ok_or_else(singular)?;
        let white: Vec<f64> = z.chunks_exact(d).flat_map(|row| forward(&chol, row, d)).collect();
        let log_norm = -0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln() - log_det;
        let log_weights = weights.iter().map(|w| w.ln()).collect();
        Ok(Kde { d, z, weights, log_weights, chol, white, log_norm, cv_score })
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

    /// `log q(z)` at one unconstrained point; `scratch` is reused between calls.
    pub fn log_density_z(&self, z: &[f64], scratch: &mut Scratch) -> f64 {
        let Scratch { y, terms } = scratch;
        y.resize(self.d, 0.0);
        forward_into(&self.chol, z, y);
        terms.clear();
        terms.extend(
            self.white
                .chunks_exact(self.d)
                .zip(&self.log_weights)
                .map(|(c, lw)| lw - 0.5 * c.iter().zip(y.iter()).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()),
        );
        log_sum_exp(terms) + self.log_norm
    }
}

/// Buffers a density evaluation reuses: a whitened point and the mixture's terms.
#[derive(Default)]
pub(crate) struct Scratch {
    y: Vec<f64>,
    terms: Vec<f64>,
}

/// Where a [`Density`] lives.
#[derive(Debug, Clone, Copy)]
enum Space {
    /// The prior's unconstrained space.
    Unconstrained,
    /// The parameters, truncated to the prior's support; `log_mass` is the log of the
    /// kernel density's share inside it.
    Parameters { log_mass: f64 },
}

/// Draws the truncated density's mass is estimated from (a standard error of at most
/// 0.004; with the least mass accepted, 5%, a relative error of 3.4% in the density).
const MASS_DRAWS: usize = 16_384;

/// The least share of a parameter-space density inside the support: below it the
/// unconstrained space is used (rejection would waste most draws).
const MIN_MASS: f64 = 0.05;

/// The kernel density of ABC's final particles in the space the cross-validation chose
/// (see the module's description).
#[derive(Debug, Clone)]
pub(crate) struct Density {
    kde: Kde,
    space: Space,
}

impl Density {
    /// Fits the density to particles given both unconstrained (`z`) and as parameters
    /// (`theta`), with normalised `weights`.
    ///
    /// # Errors
    /// [`Kde::fit`]'s errors in the unconstrained space; the prior's errors.
    pub fn fit<P: Prior + ?Sized>(
        prior: &P,
        z: Vec<f64>,
        theta: &[f64],
        weights: Vec<f64>,
        bandwidth: Bandwidth,
    ) -> Result<Density> {
        let d = prior.dim();
        let in_z = Kde::fit(z, weights.clone(), d, bandwidth)?;
        let unconstrained = |kde| Ok(Density { kde, space: Space::Unconstrained });
        let identity = in_z.z.iter().zip(theta).all(|(a, b)| a.to_bits() == b.to_bits());
        if bandwidth != Bandwidth::CrossValidated || identity {
            return unconstrained(in_z);
        }
        let Ok(in_theta) = Kde::fit(theta.to_vec(), weights.clone(), d, bandwidth) else {
            return unconstrained(in_z);
        };
        // The share inside the support, from draws of a fixed stream (the fit is a
        // function of the particles alone).
        let mut rng = crate::rng::stream_rng(MASS_SEED, 0);
        let draws = in_theta.sample_z(MASS_DRAWS, &mut rng);
        let mut inside = 0usize;
        for row in draws.chunks_exact(d) {
            inside += usize::from(prior.log_prob_flat(row)?.is_finite());
        }
        let mass = inside as f64 / MASS_DRAWS as f64;
        if mass < MIN_MASS {
            return unconstrained(in_z);
        }
        // Both scores as log densities of the parameters: the unconstrained one less the
        // transform's log |dθ/dz| at each particle, the truncated one raised by 1 / mass.
        let (_, log_det) = constrain_rows(prior, &in_z.z)?;
        let jacobian: f64 = log_det.iter().zip(&weights).map(|(l, w)| l * w).sum();
        if in_theta.cv_score - mass.ln() > in_z.cv_score - jacobian {
            Ok(Density { kde: in_theta, space: Space::Parameters { log_mass: mass.ln() } })
        } else {
            unconstrained(in_z)
        }
    }

    /// `n` draws (parameters).
    ///
    /// # Errors
    /// The prior's errors; [`Error::Config`] if draws keep leaving the support (they
    /// cannot: at least 5% of the density lies inside it).
    pub fn sample<P: Prior + ?Sized>(&self, prior: &P, n: usize, rng: &mut SimRng) -> Result<Vec<f64>> {
        let d = self.kde.d;
        let Space::Parameters { log_mass } = self.space else {
            return Ok(constrain_rows(prior, &self.kde.sample_z(n, rng))?.0);
        };
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..1000 {
            let missing = n - out.len() / d;
            if missing == 0 {
                return Ok(out);
            }
            let batch = (missing as f64 * 1.2 / log_mass.exp()).ceil() as usize + 16;
            for row in self.kde.sample_z(batch, rng).chunks_exact(d) {
                if out.len() < n * d && prior.log_prob_flat(row)?.is_finite() {
                    out.extend_from_slice(row);
                }
            }
        }
        if out.len() == n * d {
            return Ok(out);
        }
        Err(Error::Config(format!(
            "the kernel density's draws keep leaving the prior's support ({} of {n} inside after 1000 rounds)",
            out.len() / d
        )))
    }

    /// `log q(θ)` of each row of `theta` (`-inf` outside the prior's support).
    ///
    /// # Errors
    /// The prior's errors.
    pub fn log_density<P: Prior + ?Sized>(&self, prior: &P, theta: &[f64]) -> Result<Vec<f64>> {
        let d = self.kde.d;
        let mut z = vec![0.0; d];
        let mut scratch = Scratch::default();
        theta
            .chunks_exact(d)
            .map(|row| {
                if prior.log_prob_flat(row)? == f64::NEG_INFINITY {
                    return Ok(f64::NEG_INFINITY);
                }
                if let Space::Parameters { log_mass } = self.space {
                    return Ok(self.kde.log_density_z(row, &mut scratch) - log_mass);
                }
                let log_det = prior.unconstrain(row, &mut z)?;
                if z.iter().any(|v| !v.is_finite()) {
                    return Ok(f64::NEG_INFINITY);
                }
                Ok(self.kde.log_density_z(&z, &mut scratch) - log_det)
            })
            .collect()
    }
}

/// The stream the truncated density's mass is estimated from.
const MASS_SEED: u64 = 0x6d61_7373_5f6b_6465;

/// Particles the bandwidth's cross-validation uses at most.
const CV_ROWS: usize = 2000;

/// The factor `h` on the grid `scott · 2^{k/4}` (k = −16…2) that maximises the weighted
/// leave-one-out log-likelihood `Σ_i w_i log(Σ_{j≠i} w_j N(y_i; y_j, h² I) / (1 − w_i))` of
/// the whitened rows `y` (the smallest such factor on ties), and that log-likelihood
/// (without the `−½ d log 2π`).
fn cross_validated(white: &[f64], weights: &[f64], d: usize, scott: f64) -> (f64, f64) {
    use rayon::prelude::*;
    let n = weights.len();
    if n < 3 {
        return (0.0, scott);
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
            .map_init(
                || Vec::with_capacity(n),
                |terms: &mut Vec<f64>, i| {
                    terms.clear();
                    terms.extend((0..n).filter(|&j| j != i).map(|j| weights[j].ln() - 0.5 * sq(i, j) / (h * h)));
                    weights[i] * (log_sum_exp(terms) - (1.0 - weights[i]).max(1e-300).ln() + log_norm)
                },
            )
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
    best
}

/// Candidate kernel shapes (covariances) for the cross-validation: the weighted
/// covariance; its diagonal; and the pooled covariance of nearest neighbourhoods
/// (each particle's `m` nearest, in the covariance's whitened metric, averaged by weight),
/// which follows a curved or multimodal posterior's local spread rather than its global one.
fn kernel_shapes(z: &[f64], weights: &[f64], cov: &[f64], chol: &[f64], d: usize) -> Vec<Vec<f64>> {
    let mut shapes = vec![cov.to_vec()];
    if d == 1 {
        return shapes;
    }
    let diag: Vec<f64> = (0..d * d).map(|ij| if ij / d == ij % d { cov[ij] } else { 0.0 }).collect();
    shapes.push(diag);
    let n = weights.len();
    let m = ((n as f64).sqrt().ceil() as usize).max(2 * d).min(n.saturating_sub(1));
    if m <= d {
        return shapes;
    }
    let y: Vec<f64> = z.chunks_exact(d).flat_map(|row| forward(chol, row, d)).collect();
    let mut pooled = vec![0.0; d * d];
    let mut dist: Vec<(f64, usize)> = Vec::with_capacity(n);
    for i in 0..n {
        dist.clear();
        let yi = &y[i * d..(i + 1) * d];
        dist.extend(
            (0..n)
                .filter(|&j| j != i)
                .map(|j| (y[j * d..(j + 1) * d].iter().zip(yi).map(|(a, b)| (a - b) * (a - b)).sum::<f64>(), j)),
        );
        dist.select_nth_unstable_by(m - 1, |a, b| a.0.total_cmp(&b.0));
        let near = &dist[..m];
        let mut mean = yi.to_vec();
        for &(_, j) in near {
            (0..d).for_each(|a| mean[a] += y[j * d + a]);
        }
        mean.iter_mut().for_each(|v| *v /= (m + 1) as f64);
        for &j in near.iter().map(|(_, j)| j).chain(std::iter::once(&i)) {
            for a in 0..d {
                for b in 0..d {
                    pooled[a * d + b] += weights[i] / (m as f64) * (y[j * d + a] - mean[a]) * (y[j * d + b] - mean[b]);
                }
            }
        }
    }
    // Back from the whitened metric: L S Lᵀ.
    let mut ls = vec![0.0; d * d];
    for a in 0..d {
        for b in 0..d {
            ls[a * d + b] = (0..=a).map(|c| chol[a * d + c] * pooled[c * d + b]).sum();
        }
    }
    let mut local = vec![0.0; d * d];
    for a in 0..d {
        for b in 0..d {
            local[a * d + b] = (0..=b).map(|c| ls[a * d + c] * chol[b * d + c]).sum();
        }
    }
    // The same determinant as the covariance: the shape changes, the bandwidth grid does not.
    if let Some((_, local_log_det)) = factor(&local, d) {
        let log_det: f64 = (0..d).map(|i| chol[i * d + i].ln()).sum();
        let f = (2.0 * (log_det - local_log_det) / d as f64).exp();
        local.iter_mut().for_each(|v| *v *= f);
        shapes.push(local);
    }
    shapes
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
    use crate::prelude::*;
    use crate::rng::stream_rng;

    /// The density integrates to one and its draws have the kernel mixture's moments.
    #[test]
    fn kde_is_normalised_and_draws_match_it() {
        let z = vec![-1.0, 0.0, 0.5, 2.0];
        let w = vec![0.1, 0.2, 0.3, 0.4];
        let kde = Kde::fit(z.clone(), w.clone(), 1, Bandwidth::Factor(0.5)).unwrap();
        let (lo, hi, m) = (-10.0, 12.0, 22_000);
        let dx = (hi - lo) / m as f64;
        let mut scratch = Scratch::default();
        let total: f64 =
            (0..m).map(|i| kde.log_density_z(&[lo + (i as f64 + 0.5) * dx], &mut scratch).exp() * dx).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        let mut rng = stream_rng(3, 0);
        let draws = kde.sample_z(200_000, &mut rng);
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let exact: f64 = z.iter().zip(&w).map(|(a, b)| a * b).sum();
        // Mixture sd ≈ 1.1: the mean's Monte Carlo error is about 0.0025.
        assert!((mean - exact).abs() < 0.01, "{mean} vs {exact}");
    }

    #[simulator]
    fn unit(rng: &mut impl Rng) -> [f64; 1] {
        let t = sample!(Uniform(0.0, 1.0));
        [t + rng.random::<f64>()]
    }

    /// Particles spread evenly over (0.8, 1), against the upper bound of a uniform prior:
    /// the cross-validation fits the density in the parameters' space (the logit stretches
    /// them into an exponential tail), it integrates to one over the support, and its draws
    /// stay inside and put as much mass near the bound as the density does.
    #[test]
    fn a_pile_at_a_bound_is_fitted_where_it_lies() {
        let prior = Unit.prior();
        let mut rng = stream_rng(5, 0);
        let theta: Vec<f64> = (0..400).map(|_| 1.0 - 0.2 * rng.random::<f64>()).collect();
        let z = unconstrain_rows(&prior, &theta).unwrap();
        let density = Density::fit(&prior, z, &theta, vec![1.0 / 400.0; 400], Bandwidth::CrossValidated).unwrap();
        assert!(matches!(density.space, Space::Parameters { .. }), "{:?}", density.space);
        let h = 1e-5;
        let grid: Vec<f64> = (0..100_000).map(|i| (i as f64 + 0.5) * h).collect();
        let log_q = density.log_density(&prior, &grid).unwrap();
        let total: f64 = log_q.iter().map(|l| l.exp() * h).sum();
        // The mass inside is estimated from 16,384 draws: a relative error under 0.1% here.
        assert!((total - 1.0).abs() < 0.01, "{total}");
        let draws = density.sample(&prior, 20_000, &mut rng).unwrap();
        assert!(draws.iter().all(|&t| t > 0.0 && t < 1.0));
        let share = draws.iter().filter(|&&t| t > 0.99).count() as f64 / 20_000.0;
        let mass: f64 = log_q[(0.99 / h) as usize..].iter().map(|l| l.exp() * h).sum();
        assert!((share - mass).abs() < 0.015, "draws above 0.99: {share}; the density's mass there: {mass}");
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
