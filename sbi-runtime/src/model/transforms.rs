//! Bijections between a distribution's support and the real line.
//!
//! MCMC and flows work in unconstrained space `z ∈ ℝ`; a [`Transform`] maps `z` to the
//! constrained value `θ = T(z)` and gives `log |dθ/dz|`, so that a density on `θ` becomes
//! `p_z(z) = p_θ(T(z)) · |dθ/dz|`. The choice follows `torch.distributions.biject_to`:
//! identity on ℝ, `θ = lo + exp(z)` on `(lo, ∞)`, `θ = lo + (hi − lo)·σ(z)` on `(lo, hi)`.

/// The set of values a scalar distribution (or one coordinate of a vector one) can take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Support {
    /// The whole real line.
    Real,
    /// The open half-line `(lo, ∞)`.
    GreaterThan(f64),
    /// The interval between `lo` and `hi` (`lo < hi`).
    Interval(f64, f64),
}

impl Support {
    /// Whether `x` lies in the support (interval end points included, as densities are
    /// continuous and the end points have measure zero).
    pub fn contains(&self, x: f64) -> bool {
        match *self {
            Support::Real => x.is_finite(),
            Support::GreaterThan(lo) => x > lo && x.is_finite(),
            Support::Interval(lo, hi) => x >= lo && x <= hi,
        }
    }

    /// The bijection from ℝ onto this support.
    pub fn transform(&self) -> Transform {
        match *self {
            Support::Real => Transform::Identity,
            Support::GreaterThan(lo) => Transform::Exp { lo },
            Support::Interval(lo, hi) => Transform::Sigmoid { lo, hi },
        }
    }
}

/// A bijection `T: ℝ → support`, with its inverse and log-derivative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// `θ = z`.
    Identity,
    /// `θ = lo + exp(z)`.
    Exp {
        /// Lower bound of the support.
        lo: f64,
    },
    /// `θ = lo + (hi − lo) · σ(z)` with the logistic sigmoid σ.
    Sigmoid {
        /// Lower bound of the support.
        lo: f64,
        /// Upper bound of the support.
        hi: f64,
    },
}

/// `log(1 + exp(z))`, accurate for all `z`.
pub(crate) fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

impl Transform {
    /// Maps an unconstrained `z` to the support.
    pub fn forward(&self, z: f64) -> f64 {
        match *self {
            Transform::Identity => z,
            Transform::Exp { lo } => lo + z.exp(),
            Transform::Sigmoid { lo, hi } => {
                // σ(z) computed on the stable side.
                let s = if z >= 0.0 {
                    1.0 / (1.0 + (-z).exp())
                } else {
                    let e = z.exp();
                    e / (1.0 + e)
                };
                lo + (hi - lo) * s
            }
        }
    }

    /// Maps a value of the support back to ℝ (`±inf` at the support's end points).
    pub fn inverse(&self, theta: f64) -> f64 {
        match *self {
            Transform::Identity => theta,
            Transform::Exp { lo } => (theta - lo).ln(),
            Transform::Sigmoid { lo, hi } => {
                let u = (theta - lo) / (hi - lo);
                u.ln() - (-u).ln_1p()
            }
        }
    }

    /// `log |dθ/dz|` at the unconstrained point `z`.
    pub fn log_abs_det_jacobian(&self, z: f64) -> f64 {
        match *self {
            Transform::Identity => 0.0,
            Transform::Exp { .. } => z,
            // dθ/dz = (hi − lo) σ(z) σ(−z); log σ(z) = −softplus(−z).
            Transform::Sigmoid { lo, hi } => (hi - lo).ln() - softplus(-z) - softplus(z),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases() -> Vec<Transform> {
        vec![
            Support::Real.transform(),
            Support::GreaterThan(0.0).transform(),
            Support::GreaterThan(-2.5).transform(),
            Support::Interval(-1.0, 1.0).transform(),
            Support::Interval(0.0, 1.0).transform(),
            Support::Interval(3.0, 300.0).transform(),
        ]
    }

    #[test]
    fn round_trip() {
        for t in cases() {
            for i in -60..=60 {
                let z = i as f64 * 0.25; // up to |z| = 15
                let theta = t.forward(z);
                let back = t.inverse(theta);
                // The sigmoid saturates in floating point; compare where it is invertible.
                let tol =
                    1e-9 * (1.0 + z.abs()) * if matches!(t, Transform::Sigmoid { .. }) { (z.abs()).exp() } else { 1.0 };
                assert!((back - z).abs() <= tol, "{t:?}: z={z} -> {theta} -> {back}");
            }
        }
    }

    #[test]
    fn log_det_matches_finite_differences() {
        for t in cases() {
            for i in -40..=40 {
                let z = i as f64 * 0.2;
                let h = 1e-5;
                let fd = (t.forward(z + h) - t.forward(z - h)) / (2.0 * h);
                let expected = fd.abs().ln();
                let got = t.log_abs_det_jacobian(z);
                assert!((got - expected).abs() < 1e-6, "{t:?} at z={z}: {got} vs finite difference {expected}");
            }
        }
    }

    #[test]
    fn forward_lands_in_support() {
        let supports = [Support::Real, Support::GreaterThan(1.0), Support::Interval(-3.0, 3.0)];
        for s in supports {
            for i in -30..=30 {
                let z = i as f64;
                assert!(s.contains(s.transform().forward(z)), "{s:?} at z={z}");
            }
        }
        assert!(!Support::GreaterThan(0.0).contains(0.0));
        assert!(!Support::Interval(0.0, 1.0).contains(1.5));
        assert!(!Support::Real.contains(f64::NAN));
    }

    #[test]
    fn softplus_is_stable() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert!(softplus(-1000.0) >= 0.0 && softplus(-1000.0) < 1e-300);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
    }
}
