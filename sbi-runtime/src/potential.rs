//! Potentials: `θ ↦ log p̂(x_o | θ) + log p(θ)`, the seam between trained networks and
//! samplers.
//!
//! NLE's potential comes from its likelihood flow, NRE's from its classifier (log ratio plus
//! log prior); an observation made of several iid trials sums the per-trial terms. Samplers
//! work in the unconstrained space of the prior's transforms, where the target is
//! `log p̂(x_o | θ(z)) + log p(θ(z)) + log |det ∂θ/∂z|` ([`Unconstrained`]).

use crate::error::{Error, Result};
use crate::model::Prior;

/// An unnormalised log density over flat parameter vectors, evaluated in batches.
pub trait Potential: Sync {
    /// Number of parameters.
    fn dim(&self) -> usize;

    /// The log potential of each row of `theta` (`m × dim`, row-major): `-inf` outside the
    /// support; never NaN.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for rows of the wrong length; the potential's own errors
    /// (a network's tensor errors).
    fn log_potential(&self, theta: &[f64]) -> Result<Vec<f64>>;

    /// The log potential of each row and its gradient (`m × dim`, row-major; zero where the
    /// potential is not finite), for gradient-based samplers.
    ///
    /// The default differentiates [`Potential::log_potential`] by central differences
    /// (two batched calls per coordinate); neural potentials override it with candle's
    /// autograd.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for rows of the wrong length; the potential's own errors
    /// (a network's tensor errors).
    fn log_potential_grad(&self, theta: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let d = self.dim();
        check_rows(theta, d)?;
        let values = self.log_potential(theta)?;
        let grad = batched_gradient(theta, d, |rows| self.log_potential(rows))?;
        Ok((values, grad))
    }
}

/// Central-difference step for a coordinate of size `x`.
fn fd_step(x: f64) -> f64 {
    1e-5 * (1.0 + x.abs())
}

/// The gradient of the batched scalar function `f` at each row of `x` (`m × d`) by central
/// differences, one-sided where one side is not finite and zero where neither is: `2d`
/// batched calls of `f`.
///
/// Written by hand: the functions differentiated here are a user's prior (plain Rust code
/// outside any autodiff graph) and the transforms to its unconstrained space. Gradient-based
/// MCMC stays exact with an approximate gradient (the leapfrog map is volume-preserving and
/// reversible for any gradient field that depends on position only; the accept step uses
/// exact potentials), so a step of `1e-5 (1 + |x|)` (relative error ~1e-10) is ample.
pub(crate) fn batched_gradient(x: &[f64], d: usize, f: impl Fn(&[f64]) -> Result<Vec<f64>>) -> Result<Vec<f64>> {
    let m = x.len() / d;
    let mut grad = vec![0.0; x.len()];
    let mut shifted = x.to_vec();
    for j in 0..d {
        for r in 0..m {
            shifted[r * d + j] = x[r * d + j] + fd_step(x[r * d + j]);
        }
        let up = f(&shifted)?;
        for r in 0..m {
            shifted[r * d + j] = x[r * d + j] - fd_step(x[r * d + j]);
        }
        let down = f(&shifted)?;
        let centre = if up.iter().chain(&down).all(|v| v.is_finite()) { None } else { Some(f(x)?) };
        for r in 0..m {
            let h = fd_step(x[r * d + j]);
            shifted[r * d + j] = x[r * d + j];
            let (u, l) = (up[r], down[r]);
            grad[r * d + j] = match (u.is_finite(), l.is_finite(), centre.as_ref().map(|c| c[r])) {
                (true, true, _) => (u - l) / (2.0 * h),
                (true, false, Some(c)) if c.is_finite() => (u - c) / h,
                (false, true, Some(c)) if c.is_finite() => (c - l) / h,
                _ => 0.0,
            };
        }
    }
    Ok(grad)
}

/// A potential from a closure over one parameter vector (targets with known moments, user
/// likelihoods). Rows are evaluated one by one.
pub struct FnPotential<F> {
    dim: usize,
    f: F,
}

impl<F> std::fmt::Debug for FnPotential<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnPotential").field("dim", &self.dim).finish_non_exhaustive()
    }
}

impl<F: Fn(&[f64]) -> f64 + Sync> FnPotential<F> {
    /// The potential `f` over `dim` parameters.
    pub fn new(dim: usize, f: F) -> Self {
        FnPotential { dim, f }
    }
}

impl<F: Fn(&[f64]) -> f64 + Sync> Potential for FnPotential<F> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn log_potential(&self, theta: &[f64]) -> Result<Vec<f64>> {
        check_rows(theta, self.dim)?;
        Ok(theta.chunks_exact(self.dim).map(|t| nan_to_neg_inf((self.f)(t))).collect())
    }
}

/// The prior alone as a potential (`log p(θ)`).
#[derive(Debug)]
pub struct PriorPotential<'a, P>(pub &'a P);

impl<P: Prior> Potential for PriorPotential<'_, P> {
    fn dim(&self) -> usize {
        self.0.dim()
    }

    fn log_potential(&self, theta: &[f64]) -> Result<Vec<f64>> {
        check_rows(theta, self.0.dim())?;
        theta.chunks_exact(self.0.dim()).map(|t| Ok(nan_to_neg_inf(self.0.log_prob_flat(t)?))).collect()
    }
}

/// A potential seen in the prior's unconstrained space: rows `z` are mapped to `θ(z)` and
/// scored as `potential(θ) + log |det ∂θ/∂z|`.
#[derive(Debug)]
pub struct Unconstrained<'a, P, T> {
    prior: &'a P,
    potential: &'a T,
}

impl<'a, P: Prior, T: Potential> Unconstrained<'a, P, T> {
    /// The potential `potential` over the unconstrained space of `prior`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for rows of the wrong length; the potential's own errors
    /// (a network's tensor errors).
    pub fn new(prior: &'a P, potential: &'a T) -> Result<Self> {
        if prior.dim() != potential.dim() {
            return Err(Error::shape("potential dimension", prior.dim(), potential.dim()));
        }
        Ok(Unconstrained { prior, potential })
    }

    /// Maps rows of `z` to rows of `θ`; returns the `θ` rows and the log-Jacobians.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for rows of the wrong length; the potential's own errors
    /// (a network's tensor errors).
    pub fn constrain(&self, z: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let d = self.prior.dim();
        check_rows(z, d)?;
        let mut theta = vec![0.0; z.len()];
        let log_det = z
            .chunks_exact(d)
            .zip(theta.chunks_exact_mut(d))
            .map(|(z, t)| self.prior.constrain(z, t))
            .collect::<Result<Vec<f64>>>()?;
        Ok((theta, log_det))
    }

    /// Maps rows of `θ` (inside the support) to the unconstrained space.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for rows of the wrong length; the potential's own errors
    /// (a network's tensor errors).
    pub fn unconstrain(&self, theta: &[f64]) -> Result<Vec<f64>> {
        let d = self.prior.dim();
        check_rows(theta, d)?;
        let mut z = vec![0.0; theta.len()];
        for (t, z) in theta.chunks_exact(d).zip(z.chunks_exact_mut(d)) {
            self.prior.unconstrain(t, z)?;
        }
        Ok(z)
    }
}

impl<P: Prior, T: Potential> Potential for Unconstrained<'_, P, T> {
    fn dim(&self) -> usize {
        self.prior.dim()
    }

    fn log_potential(&self, z: &[f64]) -> Result<Vec<f64>> {
        let (theta, log_det) = self.constrain(z)?;
        let lp = self.potential.log_potential(&theta)?;
        Ok(lp.iter().zip(&log_det).map(|(l, j)| nan_to_neg_inf(l + j)).collect())
    }

    /// The chain rule `∇_z = (∂θ/∂z)ᵀ ∇_θ potential + ∇_z log |det ∂θ/∂z|`, with the
    /// potential's own gradient and the transforms' derivatives by central differences
    /// (hierarchical priors make `∂θ/∂z` triangular rather than diagonal).
    fn log_potential_grad(&self, z: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let d = self.prior.dim();
        let (theta, log_det) = self.constrain(z)?;
        let (lp, g_theta) = self.potential.log_potential_grad(&theta)?;
        let mut grad = batched_gradient(z, d, |rows| Ok(self.constrain(rows)?.1))?;
        // Column j of the Jacobian: ∂θ/∂z_j, by central differences on the transform.
        let m = z.len() / d;
        let mut shifted = z.to_vec();
        for j in 0..d {
            let h: Vec<f64> = (0..m).map(|r| fd_step(z[r * d + j])).collect();
            for r in 0..m {
                shifted[r * d + j] = z[r * d + j] + h[r];
            }
            let (up, _) = self.constrain(&shifted)?;
            for r in 0..m {
                shifted[r * d + j] = z[r * d + j] - h[r];
            }
            let (down, _) = self.constrain(&shifted)?;
            for r in 0..m {
                shifted[r * d + j] = z[r * d + j];
                grad[r * d + j] +=
                    (0..d).map(|i| (up[r * d + i] - down[r * d + i]) / (2.0 * h[r]) * g_theta[r * d + i]).sum::<f64>();
            }
        }
        let values: Vec<f64> = lp.iter().zip(&log_det).map(|(l, j)| nan_to_neg_inf(l + j)).collect();
        for (r, v) in values.iter().enumerate() {
            if !v.is_finite() {
                grad[r * d..(r + 1) * d].iter_mut().for_each(|g| *g = 0.0);
            }
        }
        Ok((values, grad))
    }
}

/// NaN (an invalid point) counts as outside the support.
pub(crate) fn nan_to_neg_inf(v: f64) -> f64 {
    if v.is_nan() { f64::NEG_INFINITY } else { v }
}

/// Checks that `values` hold whole rows of `dim` values.
pub(crate) fn check_rows(values: &[f64], dim: usize) -> Result<()> {
    if dim == 0 || !values.len().is_multiple_of(dim) {
        return Err(Error::shape("parameter rows", dim * (values.len() / dim.max(1)).max(1), values.len()));
    }
    Ok(())
}
