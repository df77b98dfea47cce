//! Regression adjustment of accepted ABC draws (Beaumont, Zhang and Balding 2002): a
//! weighted linear regression of each (unconstrained) parameter on the summaries'
//! differences from the observation, `z_i ≈ α + βᵀ(s_i − s_o)`, moves each draw to what it
//! would have been at `s_o`: `z*_i = z_i − βᵀ(s_i − s_o)`. The heteroscedastic variant
//! (Blum and François 2010) also regresses `log r²` of the residuals on the summaries and
//! rescales each residual to the spread at `s_o`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How accepted draws are adjusted towards the observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Adjustment {
    /// Local-linear regression with Epanechnikov weights (Beaumont et al. 2002).
    Linear,
    /// Linear, then the residuals' spread modelled as `log σ²(s)` linear in `s` and each
    /// residual rescaled to the spread at the observation (Blum and François 2010).
    Heteroscedastic,
}

/// Epanechnikov weights `1 − (d/ε)²` of distances `d` within `ε` (the largest accepted
/// distance); uniform weights when they all vanish (every distance equal to ε).
pub(crate) fn epanechnikov(distances: &[f64]) -> Vec<f64> {
    let eps = distances.iter().copied().fold(0.0, f64::max);
    let mut w: Vec<f64> =
        distances.iter().map(|d| if eps > 0.0 { (1.0 - (d / eps).powi(2)).max(0.0) } else { 1.0 }).collect();
    if w.iter().sum::<f64>() <= 0.0 {
        w.iter_mut().for_each(|v| *v = 1.0);
    }
    w
}

/// Weighted least squares for several responses sharing one design: `x` is `n × p`,
/// `y` is `n × q`; returns the `p × q` coefficients.
///
/// # Errors
/// [`Error::Config`] when the design is rank deficient (fewer weighted draws than
/// coefficients).
fn least_squares(x: &[f64], y: &[f64], w: &[f64], p: usize, q: usize) -> Result<Vec<f64>> {
    let too_few = || {
        Error::Config(format!(
            "regression adjustment needs more accepted draws with positive weight than its {p} coefficients: \
             accept more (a larger quantile) or adjust without regression"
        ))
    };
    if w.iter().filter(|&&v| v > 0.0).count() <= p {
        return Err(too_few());
    }
    let mut xtx = vec![0.0; p * p];
    let mut xty = vec![0.0; p * q];
    for ((xr, yr), wi) in x.chunks_exact(p).zip(y.chunks_exact(q)).zip(w) {
        for a in 0..p {
            for b in 0..=a {
                xtx[a * p + b] += wi * xr[a] * xr[b];
            }
            for c in 0..q {
                xty[a * q + c] += wi * xr[a] * yr[c];
            }
        }
    }
    for a in 0..p {
        for b in 0..a {
            xtx[b * p + a] = xtx[a * p + b];
        }
    }
    // A ridge of 10⁻¹⁰ of the diagonal's scale keeps near-collinear summaries solvable.
    let ridge = 1e-10 * (0..p).map(|a| xtx[a * p + a]).fold(0.0, f64::max);
    (0..p).for_each(|a| xtx[a * p + a] += ridge);
    let l = crate::model::distributions::cholesky(&xtx, p).ok_or_else(too_few)?;
    let mut beta = vec![0.0; p * q];
    for c in 0..q {
        let rhs: Vec<f64> = (0..p).map(|a| xty[a * q + c]).collect();
        // L Lᵀ b = rhs: forward, then backward substitution.
        let mut y = vec![0.0; p];
        for i in 0..p {
            y[i] = (rhs[i] - (0..i).map(|j| l[i * p + j] * y[j]).sum::<f64>()) / l[i * p + i];
        }
        for i in (0..p).rev() {
            let s: f64 = (i + 1..p).map(|j| l[j * p + i] * beta[j * q + c]).sum();
            beta[i * q + c] = (y[i] - s) / l[i * p + i];
        }
    }
    Ok(beta)
}

/// Adjusts unconstrained draws `z` (`n × d`) whose summaries differ from the observation's
/// by `ds` (`n × k`, scaled), with regression weights `w`. Returns the adjusted draws.
///
/// # Errors
/// [`Error::Config`] when the regression cannot be fitted (too few weighted draws).
pub(crate) fn adjust(how: Adjustment, z: &[f64], ds: &[f64], w: &[f64], d: usize, k: usize) -> Result<Vec<f64>> {
    let p = k + 1;
    let design: Vec<f64> = ds.chunks_exact(k).flat_map(|r| std::iter::once(1.0).chain(r.iter().copied())).collect();
    let beta = least_squares(&design, z, w, p, d)?;
    let fitted = |xr: &[f64], c: usize| (0..p).map(|a| xr[a] * beta[a * d + c]).sum::<f64>();
    // Residuals around the regression line; the adjusted draw is the intercept plus it.
    let residuals: Vec<f64> = design
        .chunks_exact(p)
        .zip(z.chunks_exact(d))
        .flat_map(|(xr, zr)| (0..d).map(move |c| zr[c] - fitted(xr, c)).collect::<Vec<_>>())
        .collect();
    let intercept: Vec<f64> = (0..d).map(|c| beta[c]).collect();
    match how {
        Adjustment::Linear => {
            Ok(residuals.chunks_exact(d).flat_map(|r| r.iter().zip(&intercept).map(|(r, a)| a + r)).collect())
        }
        Adjustment::Heteroscedastic => {
            // log r² regressed on the summaries; the floor keeps exact fits finite.
            let log_r2: Vec<f64> = residuals.iter().map(|r| (r * r).max(1e-300).ln()).collect();
            let gamma = least_squares(&design, &log_r2, w, p, d)?;
            Ok(design
                .chunks_exact(p)
                .zip(residuals.chunks_exact(d))
                .flat_map(|(xr, r)| {
                    (0..d)
                        .map(|c| {
                            // σ(s_o)/σ(s_i) = exp(−½ Σ_{a≥1} γ_a ds_a): at s_o only the intercept remains.
                            let shift: f64 = (1..p).map(|a| xr[a] * gamma[a * d + c]).sum();
                            intercept[c] + r[c] * (-0.5 * shift).exp()
                        })
                        .collect::<Vec<_>>()
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws that lie exactly on a line in the summaries collapse onto the value at the
    /// observation; the heteroscedastic variant also equalises spreads.
    #[test]
    fn linear_adjustment_removes_the_linear_trend() {
        // z = 2 + 3 s + noise(±0.1), observation at s = 0.
        let s: Vec<f64> = (0..200).map(|i| (i as f64 - 100.0) / 50.0).collect();
        let noise: Vec<f64> = (0..200).map(|i| if i % 2 == 0 { 0.1 } else { -0.1 }).collect();
        let w = vec![1.0; 200];
        let exact: Vec<f64> = s.iter().map(|s| 2.0 + 3.0 * s).collect();
        for a in adjust(Adjustment::Linear, &exact, &s, &w, 1, 1).unwrap() {
            assert!((a - 2.0).abs() < 1e-9, "{a}");
        }
        // With noise, each draw keeps its own noise (up to the fitted slope's small error).
        let z: Vec<f64> = s.iter().zip(&noise).map(|(s, e)| 2.0 + 3.0 * s + e).collect();
        let adjusted = adjust(Adjustment::Linear, &z, &s, &w, 1, 1).unwrap();
        for (a, e) in adjusted.iter().zip(&noise) {
            assert!((a - (2.0 + e)).abs() < 0.01, "{a}");
        }
        // Noise growing with |s|: rescaled to the spread at s = 0.
        let z: Vec<f64> = s.iter().zip(&noise).map(|(s, e)| 2.0 + e * (s * 0.8).exp()).collect();
        let het = adjust(Adjustment::Heteroscedastic, &z, &s, &w, 1, 1).unwrap();
        let spread = |v: &[f64]| v.iter().map(|x| (x - 2.0).abs()).fold(0.0, f64::max);
        assert!(spread(&het) < 0.5 * spread(&z), "{} vs {}", spread(&het), spread(&z));
    }

    #[test]
    fn weights_and_rank_deficiency() {
        assert_eq!(epanechnikov(&[0.0, 1.0, 2.0]), vec![1.0, 0.75, 0.0]);
        assert_eq!(epanechnikov(&[1.0, 1.0]), vec![1.0, 1.0]);
        // One draw cannot fit an intercept and a slope.
        let err = adjust(Adjustment::Linear, &[1.0], &[0.5], &[1.0], 1, 1).unwrap_err();
        assert!(matches!(err, Error::Config(_)));
    }
}
