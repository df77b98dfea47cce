//! Losses as small objects: a batch of paired rows `(a, b)` in, a scalar mean out. The
//! training loop takes any [`Loss`]; each method picks its own, and a new loss is a new type.
//!
//! - [`NegativeLogLikelihood`]: `−mean log q(a | b)` (NPE: `q(θ | x)`; NLE: `q(x | θ)`).
//! - [`Atomic`]: APT's atomic loss (SNPE-C, Greenberg et al. 2019).
//! - [`BinaryRatio`]: NRE-A (Hermans et al. 2020), and with a balance term BNRE
//!   (Delaunoy et al. 2022).
//! - [`ContrastiveRatio`]: NRE-B (Durkan et al. 2020).
//! - [`MultiClassRatio`]: NRE-C (Miller et al. 2022).
//!
//! The contrastive losses pair each row's `b` with its own `a` and with `a`s of other rows
//! of the batch, drawn without replacement from the batch's random stream.

use candle_core::{D, Device, Tensor};
use rand::RngExt;

use crate::rng::SimRng;

/// A training loss.
pub trait Loss: Sync {
    /// The mean loss of a batch whose rows of `a` and `b` belong together (z-scored, as the
    /// networks see them); `rng` draws what the loss draws (contrastive atoms), from a stream
    /// fixed by the batch, so that results do not depend on the thread count.
    fn loss(&self, a: &Tensor, b: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor>;
}

/// A conditional density `log q(inputs | context)` of z-scored rows: `[B, D]`, `[B, C]` → `[B]`.
pub trait LogDensity: Sync {
    /// The log density of each row.
    fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor>;
}

/// A classifier's logit `l(θ, x)` of z-scored rows: `[B, D]`, `[B, F]` → `[B]`.
pub trait Logit: Sync {
    /// The logit of each pair.
    fn logit(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor>;
}

/// `−mean log q(a | b)`.
#[derive(Debug)]
pub struct NegativeLogLikelihood<'a, Q: LogDensity>(pub &'a Q);

impl<Q: LogDensity> Loss for NegativeLogLikelihood<'_, Q> {
    fn loss(&self, a: &Tensor, b: &Tensor, _rng: &mut SimRng) -> candle_core::Result<Tensor> {
        self.0.log_prob(a, b)?.mean_all()?.neg()
    }
}

/// APT's atomic loss `−log [q(θ_i|x_i)/p(θ_i) / Σ_j q(θ_j|x_i)/p(θ_j)]` over `atoms`
/// parameter sets per observation (its own and others from the batch). Rows of `a` are
/// `[θ, log p(θ)]`: the last column is the log prior.
#[derive(Debug)]
pub struct Atomic<'a, Q: LogDensity> {
    /// The posterior estimator `q(θ | x)`.
    pub density: &'a Q,
    /// Parameter sets per observation, its own included (10 in `sbi`).
    pub atoms: usize,
}

impl<Q: LogDensity> Loss for Atomic<'_, Q> {
    fn loss(&self, theta_lp: &Tensor, x: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        let (b, d1) = theta_lp.dims2()?;
        if b < 2 {
            // Nothing to contrast a single pair with (only in a tiny last validation chunk).
            return Tensor::zeros((), theta_lp.dtype(), theta_lp.device());
        }
        let k = self.atoms.min(b);
        let (theta_idx, x_idx) = atom_indices(b, k, rng, theta_lp.device())?;
        let rows = theta_lp.index_select(&theta_idx, 0)?;
        let theta = rows.narrow(1, 0, d1 - 1)?;
        let log_prior = rows.narrow(1, d1 - 1, 1)?.squeeze(1)?;
        let lq = self.density.log_prob(&theta.contiguous()?, &x.index_select(&x_idx, 0)?)?;
        let logits = (lq - log_prior)?.reshape((b, k))?;
        (logits.narrow(1, 0, 1)?.squeeze(1)? - log_sum_exp(&logits)?)?.mean_all()?.neg()
    }
}

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

/// Logits `[B, atoms]` of each x (row i) against its own θ (column 0) and `atoms − 1`
/// others drawn without replacement from the rest of the batch.
pub(crate) fn atom_logits<C: Logit>(
    classifier: &C,
    theta: &Tensor,
    x: &Tensor,
    atoms: usize,
    rng: &mut SimRng,
) -> candle_core::Result<Tensor> {
    let b = theta.dim(0)?;
    let atoms = atoms.min(b);
    let (theta_idx, x_idx) = atom_indices(b, atoms, rng, theta.device())?;
    classifier.logit(&theta.index_select(&theta_idx, 0)?, &x.index_select(&x_idx, 0)?)?.reshape((b, atoms))
}

/// Contrastive atoms for a batch of `b` pairs: for each row i, `atoms` parameter rows (i
/// first, then `atoms − 1` others drawn without replacement from the rest of the batch) and
/// `atoms` copies of i for the observations. Returns both index vectors (`b · atoms`).
pub(crate) fn atom_indices(
    b: usize,
    atoms: usize,
    rng: &mut SimRng,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let mut theta_idx = Vec::with_capacity(b * atoms);
    let mut x_idx = Vec::with_capacity(b * atoms);
    for i in 0..b {
        let start = theta_idx.len();
        theta_idx.push(i as u32);
        while theta_idx.len() - start < atoms {
            // Uniform over the other rows; redraw a row already chosen.
            let j = rng.random_range(0..b - 1);
            let j = (if j >= i { j + 1 } else { j }) as u32;
            if !theta_idx[start..].contains(&j) {
                theta_idx.push(j);
            }
        }
        x_idx.extend(std::iter::repeat_n(i as u32, atoms));
    }
    Ok((Tensor::new(theta_idx, device)?, Tensor::new(x_idx, device)?))
}

/// `log Σ_j exp(l_ij)` over the last dimension.
pub(crate) fn log_sum_exp(l: &Tensor) -> candle_core::Result<Tensor> {
    let max = l.max_keepdim(D::Minus1)?.detach();
    l.broadcast_sub(&max)?.exp()?.sum(D::Minus1)?.log()? + max.squeeze(D::Minus1)?
}

/// Mean binary cross-entropy of logits `l` against labels `y`: `max(l, 0) − l·y + log(1 + e^{−|l|})`.
pub(crate) fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (logits.relu()? - (logits * labels)? + softplus)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log-sum-exp matches its definition, also for large logits.
    #[test]
    fn log_sum_exp_is_stable() {
        let l = Tensor::new(&[[1f32, 2.0, 3.0], [1000.0, 1000.0, -1000.0]], &Device::Cpu).unwrap();
        let v = log_sum_exp(&l).unwrap().to_vec1::<f32>().unwrap();
        let expected0 = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() as f32;
        assert!((v[0] - expected0).abs() < 1e-5);
        assert!((v[1] - (1000.0 + 2f32.ln())).abs() < 1e-3);
    }

    /// A classifier whose logit is `θ · x`: each atom's logit names the θ row it used.
    struct Product;

    impl Logit for Product {
        fn logit(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
            (theta * x)?.sum(1)
        }
    }

    /// Each x is contrasted with its own θ first and with distinct other rows.
    #[test]
    fn atoms_are_distinct_and_exclude_the_own_row() {
        let theta = Tensor::new(&[[1f32], [2.0], [3.0], [4.0], [5.0]], &Device::Cpu).unwrap();
        let x = Tensor::new(&[[1f32]; 5], &Device::Cpu).unwrap();
        let mut rng = crate::rng::stream_rng(1, 2);
        let l = atom_logits(&Product, &theta, &x, 4, &mut rng).unwrap().to_vec2::<f32>().unwrap();
        for (i, row) in l.iter().enumerate() {
            let rows: Vec<usize> = row.iter().map(|v| *v as usize - 1).collect();
            assert_eq!(rows[0], i, "row {i}: the first atom is the joint pair");
            let mut seen = rows.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 4, "row {i}: atoms repeated: {rows:?}");
        }
    }
}
