//! APT's atomic loss (SNPE-C, Greenberg et al. 2019): each observation against its own
//! parameters and others of the batch, the density divided by the prior.

use candle_core::Tensor;

use super::{LogDensity, Loss, atom_indices, log_sum_exp};
use crate::rng::SimRng;

/// APT's atomic loss `−log [q(θ_i|x_i)/p(θ_i) / Σ_j q(θ_j|x_i)/p(θ_j)]` over `atoms`
/// parameter sets per observation (its own and others from the batch). Rows of `a` are
/// `[θ, log p(θ)]`, or with [`Atomic::combined`] `[θ, log p(θ), m]`.
#[derive(Debug)]
pub struct Atomic<'a, Q: LogDensity> {
    /// The posterior estimator `q(θ | x)`.
    pub density: &'a Q,
    /// Parameter sets per observation, its own included (10 in `sbi`).
    pub atoms: usize,
    /// Whether rows carry a last column `m` (1 for pairs simulated from the prior, else 0)
    /// and the loss adds NPE's `−m·log q(θ_i | x_i)` (`sbi`'s combined loss).
    pub combined: bool,
}

impl<Q: LogDensity> Loss for Atomic<'_, Q> {
    fn loss(&self, theta_lp: &Tensor, x: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        let (b, cols) = theta_lp.dims2()?;
        let d1 = if self.combined { cols.saturating_sub(1) } else { cols };
        if d1 < 2 {
            let mark = if self.combined { " and the prior mark" } else { "" };
            candle_core::bail!("the atomic loss needs rows of θ, log p(θ){mark}: got {cols} columns");
        }
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
        let lq = lq.reshape((b, k))?;
        let logits = (&lq - log_prior.reshape((b, k))?)?;
        let atomic = (logits.narrow(1, 0, 1)?.squeeze(1)? - log_sum_exp(&logits)?)?;
        let per_row = if self.combined {
            // NPE's loss on the rows simulated from the prior: their own pair's log density.
            let own = lq.narrow(1, 0, 1)?.squeeze(1)?;
            let mask = theta_lp.narrow(1, cols - 1, 1)?.squeeze(1)?;
            (atomic + (own * mask)?)?
        } else {
            atomic
        };
        per_row.mean_all()?.neg()
    }
}
