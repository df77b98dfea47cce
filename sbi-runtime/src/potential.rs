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
    fn log_potential(&self, theta: &[f64]) -> Result<Vec<f64>>;
}

/// A potential from a closure over one parameter vector (targets with known moments, user
/// likelihoods). Rows are evaluated one by one.
pub struct FnPotential<F> {
    dim: usize,
    f: F,
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
pub struct Unconstrained<'a, P, T> {
    prior: &'a P,
    potential: &'a T,
}

impl<'a, P: Prior, T: Potential> Unconstrained<'a, P, T> {
    /// The potential `potential` over the unconstrained space of `prior`.
    pub fn new(prior: &'a P, potential: &'a T) -> Result<Self> {
        if prior.dim() != potential.dim() {
            return Err(Error::shape("potential dimension", prior.dim(), potential.dim()));
        }
        Ok(Unconstrained { prior, potential })
    }

    /// Maps rows of `z` to rows of `θ`; returns the `θ` rows and the log-Jacobians.
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
}

/// NaN (an invalid point) counts as outside the support.
pub(crate) fn nan_to_neg_inf(v: f64) -> f64 {
    if v.is_nan() { f64::NEG_INFINITY } else { v }
}

/// Checks that `values` hold whole rows of `dim` values.
pub(crate) fn check_rows(values: &[f64], dim: usize) -> Result<()> {
    if dim == 0 || values.len() % dim != 0 {
        return Err(Error::shape("parameter rows", dim * (values.len() / dim.max(1)).max(1), values.len()));
    }
    Ok(())
}
