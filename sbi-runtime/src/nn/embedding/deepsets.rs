//! DeepSets over iid trials: `ρ(mean_k φ(x_k), k/K)` over the trials present, invariant to
//! their order; absent trials (NaN rows) are masked out.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::nn::{Activation, Mlp};

/// `ρ(mean_k φ(x_k), k/K)` over the trials `x_k` present: invariant to their order.
#[derive(Debug)]
pub struct DeepSets {
    trials: usize,
    features: usize,
    phi: Mlp,
    rho: Mlp,
}

impl DeepSets {
    /// φ: an MLP from a trial's `features` through `hidden` (ReLU after every layer); the
    /// mean over the trials present, with the share of trials present appended; ρ: an MLP
    /// from there through one more hidden layer of the last width to `output` features.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn new(
        vb: VarBuilder,
        trials: usize,
        features: usize,
        hidden: &[usize],
        output: usize,
    ) -> candle_core::Result<Self> {
        let phi_sizes: Vec<usize> = std::iter::once(features).chain(hidden.iter().copied()).collect();
        let last = *phi_sizes.last().expect("at least the input width");
        let phi = Mlp::new(vb.pp("phi"), &phi_sizes, Activation::Relu)?;
        // ρ also sees the share of trials present: a mean alone cannot tell 5 trials from 50,
        // and the posterior's width depends on how many there are.
        let rho = Mlp::new(vb.pp("rho"), &[last + 1, last, output], Activation::Relu)?;
        Ok(DeepSets { trials, features, phi, rho })
    }
}

impl candle_nn::Module for DeepSets {
    /// Absent trials (rows of NaN, from [`VarTrials`](crate::model::VarTrials)) are left out
    /// of the mean.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let b = x.dim(0)?;
        let rows = x.reshape((b * self.trials, self.features))?;
        let finite = rows.eq(&rows)?; // 0 where NaN
        let present = finite.min_keepdim(1)?.to_dtype(x.dtype())?; // [B·T, 1]
        let clean = finite.where_cond(&rows, &rows.zeros_like()?)?;
        // φ's last layer is linear in `Mlp`; the ReLU after it makes every layer nonlinear.
        let per_trial = self.phi.forward(&clean)?.relu()?.broadcast_mul(&present)?;
        let sum = per_trial.reshape((b, self.trials, ()))?.sum(1)?;
        let count = present.reshape((b, self.trials))?.sum_keepdim(1)?.clamp(1.0, f64::MAX)?;
        let share = (&count / self.trials as f64)?;
        self.rho.forward(&Tensor::cat(&[&sum.broadcast_div(&count)?, &share], 1)?)
    }
}
