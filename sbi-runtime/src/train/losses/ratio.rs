//! The ratio losses of NRE: binary (NRE-A, Hermans et al. 2020, and BNRE's balance term,
//! Delaunoy et al. 2022), contrastive (NRE-B, Durkan et al. 2020) and multi-class with a
//! "none" class (NRE-C, Miller et al. 2022).

use candle_core::Tensor;

use super::{Logit, Loss, atom_logits, bce_with_logits, log_sum_exp};
use crate::rng::SimRng;

/// NRE-A: binary cross-entropy between joint pairs `(θ_i, x_i)` (label 1) and marginal pairs
/// `(θ_j, x_i)` (label 0); with `regularization > 0`, BNRE's balance term
/// `λ (E σ(l_joint) + E σ(l_marginal) − 1)²` on the same pairs.
#[derive(Debug)]
pub struct BinaryRatio<'a, C: Logit> {
    /// The classifier.
    pub classifier: &'a C,
    /// BNRE's λ (0 for NRE-A).
    pub regularization: f64,
}

impl<C: Logit> Loss for BinaryRatio<'_, C> {
    fn loss(&self, theta: &Tensor, x: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        let b = theta.dim(0)?;
        if b < 2 {
            return Tensor::zeros((), theta.dtype(), theta.device());
        }
        let logits = atom_logits(self.classifier, theta, x, 2, rng)?;
        let labels = Tensor::new(&[1f32, 0.0], theta.device())?.broadcast_as((b, 2))?.contiguous()?;
        let bce = bce_with_logits(&logits, &labels)?;
        if self.regularization == 0.0 {
            return Ok(bce);
        }
        let p = candle_nn::ops::sigmoid(&logits)?;
        let balance = (p.sum(1)? - 1.0)?.mean_all()?.sqr()?;
        bce + (balance * self.regularization)?
    }
}

/// NRE-B: each `x_i` against its own θ and `atoms − 1` others, a softmax over them.
#[derive(Debug)]
pub struct ContrastiveRatio<'a, C: Logit> {
    /// The classifier.
    pub classifier: &'a C,
    /// Parameter sets per observation, its own included (10 in `sbi`).
    pub atoms: usize,
}

impl<C: Logit> Loss for ContrastiveRatio<'_, C> {
    fn loss(&self, theta: &Tensor, x: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        if theta.dim(0)? < 2 {
            return Tensor::zeros((), theta.dtype(), theta.device());
        }
        let logits = atom_logits(self.classifier, theta, x, self.atoms, rng)?;
        (logits.narrow(1, 0, 1)?.squeeze(1)? - log_sum_exp(&logits)?)?.mean_all()?.neg()
    }
}

/// NRE-C: `K` marginal parameter sets and one class for "none of them is x's own", the joint
/// class weighted by γ.
#[derive(Debug)]
pub struct MultiClassRatio<'a, C: Logit> {
    /// The classifier.
    pub classifier: &'a C,
    /// `K` (5 in `sbi`).
    pub classes: usize,
    /// γ (1 in `sbi`).
    pub gamma: f64,
}

impl<C: Logit> Loss for MultiClassRatio<'_, C> {
    fn loss(&self, theta: &Tensor, x: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        let b = theta.dim(0)?;
        if b < 2 {
            return Tensor::zeros((), theta.dtype(), theta.device());
        }
        let k = self.classes.min(b - 1);
        let marginal = atom_logits(self.classifier, theta, x, k + 1, rng)?.narrow(1, 1, k)?;
        let joint = atom_logits(self.classifier, theta, x, k, rng)?;
        let (log_gamma, log_k) = (self.gamma.ln(), (k as f64).ln());
        let log_k_col = Tensor::full(log_k as f32, (b, 1), theta.device())?;
        let lse = |l: &Tensor| log_sum_exp(&Tensor::cat(&[&(l + log_gamma)?, &log_k_col], 1)?);
        let lp_marginal = (log_k - lse(&marginal)?)?;
        let lp_joint = ((joint.narrow(1, 0, 1)?.squeeze(1)? + log_gamma)? - lse(&joint)?)?;
        let (p_marginal, p_joint) = (1.0 / (1.0 + self.gamma), self.gamma / (1.0 + self.gamma));
        ((lp_marginal * p_marginal)? + (lp_joint * p_joint)?)?.mean_all()?.neg()
    }
}
