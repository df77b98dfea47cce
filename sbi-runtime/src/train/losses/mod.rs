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

mod atomic;
mod nll;
mod ratio;

pub use atomic::Atomic;
pub use nll::NegativeLogLikelihood;
pub use ratio::{BinaryRatio, ContrastiveRatio, MultiClassRatio};

use candle_core::{D, Device, Tensor};
use rand::RngExt;

use crate::rng::SimRng;

/// A training loss.
pub trait Loss: Sync {
    /// The mean loss of a batch whose rows of `a` and `b` belong together (z-scored, as the
    /// networks see them); `rng` draws what the loss draws (contrastive atoms), from a stream
    /// fixed by the batch, so that results do not depend on the thread count.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    fn loss(&self, a: &Tensor, b: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor>;
}

/// A conditional density `log q(inputs | context)` of z-scored rows: `[B, D]`, `[B, C]` → `[B]`.
pub trait LogDensity: Sync {
    /// The log density of each row.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor>;
}

/// A classifier's logit `l(θ, x)` of z-scored rows: `[B, D]`, `[B, F]` → `[B]`.
pub trait Logit: Sync {
    /// The logit of each pair.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    fn logit(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor>;
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

/// As [`atom_indices`], each row's others drawn from the rows with its own label where
/// there are enough (`atoms − 1`), and the missing ones from the rest of the batch.
pub(crate) fn atom_indices_within(
    labels: &[u32],
    atoms: usize,
    rng: &mut SimRng,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let b = labels.len();
    let mut groups: std::collections::BTreeMap<u32, Vec<u32>> = std::collections::BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        groups.entry(l).or_default().push(i as u32);
    }
    let mut theta_idx = Vec::with_capacity(b * atoms);
    let mut x_idx = Vec::with_capacity(b * atoms);
    for (i, l) in labels.iter().enumerate() {
        let start = theta_idx.len();
        theta_idx.push(i as u32);
        let group = &groups[l];
        // Without replacement from the own group (while it has rows left), then the batch.
        let mut pool: Vec<u32> = group.iter().copied().filter(|&j| j != i as u32).collect();
        while theta_idx.len() - start < atoms && !pool.is_empty() {
            let j = rng.random_range(0..pool.len());
            theta_idx.push(pool.swap_remove(j));
        }
        while theta_idx.len() - start < atoms {
            let j = rng.random_range(0..b) as u32;
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
mod tests;
