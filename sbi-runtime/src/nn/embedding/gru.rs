//! A gated recurrent network over a time series; its last state, through a linear layer,
//! gives the features.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::nn::Linear;

/// A GRU over the steps of a series; its last hidden state, mapped linearly to the output.
#[derive(Debug)]
pub struct Gru {
    len: usize,
    channels: usize,
    hidden: usize,
    /// `x_t ↦ [W_ir; W_iz; W_in] x_t + b_i`.
    input: Linear,
    /// `h ↦ [W_hr; W_hz; W_hn] h + b_h`.
    recurrent: Linear,
    pub(super) head: Linear,
}

impl Gru {
    /// A GRU with `hidden` units over `len` steps of `channels` values, then a linear map to
    /// `output` features. Its weights start uniform on `±1/√hidden`, as PyTorch's.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn new(vb: VarBuilder, len: usize, channels: usize, hidden: usize, output: usize) -> candle_core::Result<Self> {
        let init = crate::nn::torch_bound(hidden);
        Ok(Gru {
            len,
            channels,
            hidden,
            input: Linear::with_init(vb.pp("gru.input"), channels, 3 * hidden, init)?,
            recurrent: Linear::with_init(vb.pp("gru.recurrent"), hidden, 3 * hidden, init)?,
            head: Linear::new(vb.pp("head"), hidden, output)?,
        })
    }
}

impl candle_nn::Module for Gru {
    /// The gated recurrent unit of Cho et al. (2014), PyTorch's form: with
    /// `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + b_iz + W_hz h + b_hz)` and
    /// `n = tanh(W_in x + b_in + r ∘ (W_hn h + b_hn))`, the state becomes
    /// `h' = (1 − z) ∘ n + z ∘ h`. Written on the toolkit's dense layers rather than
    /// candle-nn's `GRU` (whose products ask the environment for a thread count each time).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let b = x.dim(0)?;
        let (l, c, h) = (self.len, self.channels, self.hidden);
        let steps = x.reshape((b, l, c))?;
        let mut state = Tensor::zeros((b, h), x.dtype(), x.device())?;
        for t in 0..l {
            // Step by step: the gradient of a slice of one tensor of all steps' gates would
            // be a full-size tensor per step (quadratic in the length).
            let gx = self.input.forward(&steps.narrow(1, t, 1)?.squeeze(1)?.contiguous()?)?;
            let gh = self.recurrent.forward(&state)?;
            let r = candle_nn::ops::sigmoid(&(gx.narrow(1, 0, h)? + gh.narrow(1, 0, h)?)?)?;
            let z = candle_nn::ops::sigmoid(&(gx.narrow(1, h, h)? + gh.narrow(1, h, h)?)?)?;
            let n = crate::nn::tanh(&(gx.narrow(1, 2 * h, h)? + (r * gh.narrow(1, 2 * h, h)?)?)?)?;
            state = (&n + (z * (state - &n)?)?)?;
        }
        self.head.forward(&state)
    }
}
