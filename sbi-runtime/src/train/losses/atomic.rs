//! APT's atomic loss (SNPE-C, Greenberg et al. 2019): each observation against its own
//! parameters and others of the batch, the density divided by the prior.

use candle_core::Tensor;

use super::{LogDensity, Loss, atom_indices, atom_indices_within, log_sum_exp};
use crate::rng::SimRng;

/// APT's atomic loss `−log [q(θ_i|x_i)/p(θ_i) / Σ_j q(θ_j|x_i)/p(θ_j)]` over `atoms`
/// parameter sets per observation (its own and others from the batch). Rows of `a` are
/// `[θ, log p(θ), r]`, `r` the round the pair was simulated in (0: from the prior).
#[derive(Debug)]
pub struct Atomic<'a, Q: LogDensity> {
    /// The posterior estimator `q(θ | x)`.
    pub density: &'a Q,
    /// Parameter sets per observation, its own included (10 in `sbi`).
    pub atoms: usize,
    /// Adds NPE's `−log q(θ_i | x_i)` on the rows of round 0, simulated from the prior
    /// (`sbi`'s combined loss).
    pub combined: bool,
    /// Draws each row's atoms from the rows of its own round (of the batch), so that they
    /// come from the proposal its own parameters came from; otherwise from the whole batch
    /// (`sbi`), a mixture of all rounds' proposals. A round with fewer rows in the batch
    /// than atoms borrows the rest from the other rows.
    pub same_round: bool,
}

impl<Q: LogDensity> Loss for Atomic<'_, Q> {
    fn loss(&self, theta_lp: &Tensor, x: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        let (b, cols) = theta_lp.dims2()?;
        if cols < 3 {
            candle_core::bail!("the atomic loss needs rows of θ, log p(θ) and the round: got {cols} columns");
        }
        let d1 = cols - 1;
        if b < 2 {
            // Nothing to contrast a single pair with (only in a tiny last validation chunk).
            return Tensor::zeros((), theta_lp.dtype(), theta_lp.device());
        }
        let k = self.atoms.min(b);
        let round = theta_lp.narrow(1, d1, 1)?.squeeze(1)?;
        let (theta_idx, x_idx) = if self.same_round {
            let labels: Vec<u32> =
                round.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?.iter().map(|&r| r as u32).collect();
            atom_indices_within(&labels, k, rng, theta_lp.device())?
        } else {
            atom_indices(b, k, rng, theta_lp.device())?
        };
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
            let prior_rows = round.eq(0.0)?.to_dtype(own.dtype())?;
            (atomic + (own * prior_rows)?)?
        } else {
            atomic
        };
        per_row.mean_all()?.neg()
    }
}
