//! Distances between summary statistics: Euclidean or L1 after dividing each statistic by
//! its spread among prior simulations (median absolute deviation or standard deviation),
//! Mahalanobis under the prior simulations' covariance, or a user's function.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A user's distance between two summary vectors (of the observation and of a simulation).
pub type DistanceFn = Arc<dyn Fn(&[f64], &[f64]) -> f64 + Send + Sync>;

/// How each statistic is scaled before a Euclidean or L1 distance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scaling {
    /// By the median absolute deviation (× 1.4826, the normal's standard deviation) among
    /// the prior simulations: robust to heavy tails (the `abc` R package's default).
    #[default]
    Mad,
    /// By the standard deviation among the prior simulations.
    Sd,
    /// Not scaled.
    None,
}

/// The distance rejection and SMC-ABC compare summaries with.
#[derive(Clone)]
pub enum Distance {
    /// `√Σ ((a_j − b_j)/s_j)²` with scales `s` from [`Scaling`] (the default, with MAD).
    Euclidean(Scaling),
    /// `Σ |a_j − b_j| / s_j`.
    L1(Scaling),
    /// `√((a − b)ᵀ C⁻¹ (a − b))` with `C` the covariance of the prior simulations' summaries.
    Mahalanobis,
    /// A user's function of the observation's and a simulation's summaries; it must return a
    /// non-negative number (NaN counts as an invalid simulation).
    Custom(DistanceFn),
}

impl Default for Distance {
    fn default() -> Self {
        Distance::Euclidean(Scaling::Mad)
    }
}

impl std::fmt::Debug for Distance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distance::Euclidean(s) => write!(f, "Euclidean({s:?})"),
            Distance::L1(s) => write!(f, "L1({s:?})"),
            Distance::Mahalanobis => f.write_str("Mahalanobis"),
            Distance::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// What a fitted distance remembers (saved with a rejection ABC posterior; a custom
/// distance is recorded by name only and must be passed again when loading).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum FittedKind {
    Euclidean,
    L1,
    /// The lower Cholesky factor of the summaries' covariance.
    Mahalanobis(Vec<f64>),
    Custom,
}

/// A distance with its scales fitted to the prior simulations' summaries.
#[derive(Clone)]
pub(crate) struct Fitted {
    pub kind: FittedKind,
    /// Per-statistic scales (ones for Mahalanobis and custom distances).
    pub scale: Vec<f64>,
    custom: Option<DistanceFn>,
}

/// The median of `v` (sorted in place; NaN-free).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// The standard deviation of column `j` of `rows` (`k` columns).
fn column_sd(rows: &[f64], k: usize, j: usize) -> f64 {
    let n = (rows.len() / k) as f64;
    let mean = rows.iter().skip(j).step_by(k).sum::<f64>() / n;
    (rows.iter().skip(j).step_by(k).map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt()
}

impl Distance {
    /// Fits the scales to `summaries` (`n × k` row-major, finite).
    ///
    /// # Errors
    /// [`Error::Config`] when fewer than two summaries are given, or for a Mahalanobis
    /// distance whose covariance is singular (a statistic that is constant or a linear
    /// combination of others).
    pub(crate) fn fit(&self, summaries: &[f64], k: usize) -> Result<Fitted> {
        let n = summaries.len() / k.max(1);
        if n < 2 {
            return Err(Error::Config(format!(
                "ABC needs at least 2 valid simulations to scale its distance, got {n}"
            )));
        }
        let ones = vec![1.0; k];
        let scales = |s: Scaling| -> Vec<f64> {
            (0..k)
                .map(|j| {
                    let sd = column_sd(summaries, k, j);
                    let spread = match s {
                        Scaling::None => return 1.0,
                        Scaling::Sd => sd,
                        Scaling::Mad => {
                            let mut col: Vec<f64> = summaries.iter().skip(j).step_by(k).copied().collect();
                            let m = median(&mut col);
                            let mut dev: Vec<f64> = col.iter().map(|v| (v - m).abs()).collect();
                            // A statistic with more than half its values equal has no MAD:
                            // its standard deviation stands in.
                            match 1.4826 * median(&mut dev) {
                                mad if mad > 0.0 => mad,
                                _ => sd,
                            }
                        }
                    };
                    // A constant statistic says nothing about θ: any positive scale will do.
                    if spread > 0.0 && spread.is_finite() { spread } else { 1.0 }
                })
                .collect()
        };
        let (kind, scale, custom) = match self {
            Distance::Euclidean(s) => (FittedKind::Euclidean, scales(*s), None),
            Distance::L1(s) => (FittedKind::L1, scales(*s), None),
            Distance::Mahalanobis => {
                let means: Vec<f64> =
                    (0..k).map(|j| summaries.iter().skip(j).step_by(k).sum::<f64>() / n as f64).collect();
                let mut cov = vec![0.0; k * k];
                for row in summaries.chunks_exact(k) {
                    for a in 0..k {
                        for b in 0..=a {
                            cov[a * k + b] += (row[a] - means[a]) * (row[b] - means[b]);
                        }
                    }
                }
                for a in 0..k {
                    for b in 0..=a {
                        cov[a * k + b] /= (n - 1) as f64;
                        cov[b * k + a] = cov[a * k + b];
                    }
                }
                let chol = crate::model::distributions::cholesky(&cov, k).ok_or_else(|| {
                    Error::Config(
                        "the summaries' covariance is singular (a constant statistic, or one that is a linear \
                         combination of others): a Mahalanobis distance cannot be used; use Euclidean with scaling"
                            .into(),
                    )
                })?;
                (FittedKind::Mahalanobis(chol), ones, None)
            }
            Distance::Custom(f) => (FittedKind::Custom, ones, Some(f.clone())),
        };
        Ok(Fitted { kind, scale, custom })
    }
}

impl Fitted {
    /// Rebuilds a saved distance; a custom one needs its function again.
    ///
    /// # Errors
    /// [`Error::Config`] for a saved custom distance without its function.
    pub(crate) fn restore(kind: FittedKind, scale: Vec<f64>, custom: Option<DistanceFn>) -> Result<Fitted> {
        if kind == FittedKind::Custom && custom.is_none() {
            return Err(Error::Config(
                "this ABC posterior was saved with a custom distance: pass the same function to load it".into(),
            ));
        }
        Ok(Fitted { kind, scale, custom })
    }

    /// The distance between the observation's summaries `a` and a simulation's `b`.
    pub fn distance(&self, a: &[f64], b: &[f64]) -> f64 {
        match &self.kind {
            FittedKind::Euclidean => {
                a.iter().zip(b).zip(&self.scale).map(|((a, b), s)| ((a - b) / s).powi(2)).sum::<f64>().sqrt()
            }
            FittedKind::L1 => a.iter().zip(b).zip(&self.scale).map(|((a, b), s)| ((a - b) / s).abs()).sum(),
            FittedKind::Mahalanobis(l) => {
                // Solve L y = a − b by forward substitution; the distance is |y|.
                let k = a.len();
                let mut y = vec![0.0; k];
                for i in 0..k {
                    let s: f64 = (0..i).map(|j| l[i * k + j] * y[j]).sum();
                    y[i] = (a[i] - b[i] - s) / l[i * k + i];
                }
                y.iter().map(|v| v * v).sum::<f64>().sqrt()
            }
            FittedKind::Custom => match &self.custom {
                Some(f) => f(a, b),
                None => f64::NAN,
            },
        }
    }

    /// The distances from `a` to each row of `rows` (`k` columns), in parallel, in order.
    pub fn distances(&self, a: &[f64], rows: &[f64], k: usize) -> Vec<f64> {
        use rayon::prelude::*;
        rows.par_chunks_exact(k).map(|b| self.distance(a, b)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_distances_divide_by_the_spread() {
        // Column 0 spreads 10× more than column 1: scaled, equal relative moves are equal.
        let rows: Vec<f64> = (0..101).flat_map(|i| [10.0 * (i as f64 - 50.0), i as f64 - 50.0]).collect();
        for s in [Scaling::Mad, Scaling::Sd] {
            let d = Distance::Euclidean(s).fit(&rows, 2).unwrap();
            let ratio = d.scale[0] / d.scale[1];
            assert!((ratio - 10.0).abs() < 1e-9, "{s:?}: {ratio}");
            let (x, y) = (d.distance(&[0.0, 0.0], &[10.0, 0.0]), d.distance(&[0.0, 0.0], &[0.0, 1.0]));
            assert!((x - y).abs() < 1e-12);
        }
        let l1 = Distance::L1(Scaling::None).fit(&rows, 2).unwrap();
        assert_eq!(l1.distance(&[0.0, 0.0], &[3.0, -4.0]), 7.0);
        let l2 = Distance::Euclidean(Scaling::None).fit(&rows, 2).unwrap();
        assert_eq!(l2.distance(&[0.0, 0.0], &[3.0, -4.0]), 5.0);
    }

    #[test]
    fn mahalanobis_whitens_and_refuses_singular_covariances() {
        // Correlated columns: (u, u + v) with u, v of unit variance on a grid.
        let mut rows = Vec::new();
        for i in 0..40 {
            for j in 0..40 {
                let (u, v) = (i as f64 / 4.0, j as f64 / 4.0);
                rows.extend([u, u + v]);
            }
        }
        let d = Distance::Mahalanobis.fit(&rows, 2).unwrap();
        // Cov = s²[[1, 1], [1, 2]]: moving along v (0, 1) costs 1/s, along (1, 1) (u) too.
        let s = column_sd(&rows, 2, 0);
        let dv = d.distance(&[0.0, 0.0], &[0.0, s]);
        let du = d.distance(&[0.0, 0.0], &[s, s]);
        assert!((dv - du).abs() < 1e-3 && (dv - 1.0).abs() < 1e-2, "{dv} {du}");
        let singular: Vec<f64> = (0..50).flat_map(|i| [i as f64, 2.0 * i as f64]).collect();
        assert!(matches!(Distance::Mahalanobis.fit(&singular, 2), Err(Error::Config(_))));
    }

    #[test]
    fn constant_statistics_and_tiny_tables_are_handled() {
        let rows: Vec<f64> = (0..10).flat_map(|i| [i as f64, 3.0]).collect();
        let d = Distance::default().fit(&rows, 2).unwrap();
        assert_eq!(d.scale[1], 1.0);
        assert!(matches!(Distance::default().fit(&[1.0, 2.0], 2), Err(Error::Config(_))));
        let custom = Distance::Custom(Arc::new(|a: &[f64], b: &[f64]| (a[0] - b[0]).abs())).fit(&rows, 2).unwrap();
        assert_eq!(custom.distance(&[1.0, 0.0], &[4.0, 9.0]), 3.0);
        assert!(Fitted::restore(FittedKind::Custom, vec![1.0; 2], None).is_err());
    }
}
