//! Mixture density network (Bishop 1994), as sbi's `mdn`: an MLP maps the context to the
//! weights, means and precision factors of `K` full-covariance Gaussians,
//! `q(θ | x) = Σ_k π_k(x) N(θ; μ_k(x), (U_kᵀU_k)⁻¹)` with `U_k` upper triangular and a positive diagonal.

use candle_core::{D, DType, Tensor};
use candle_nn::VarBuilder;
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::estimators::density::{ConditionalFlow, EstimatorConfig, HALF_LN_2PI, check_sizes};
use crate::nn::{Activation, Linear, Mlp};
use crate::rng::SimRng;

/// Settings of a mixture density network (defaults as `sbi`'s `mdn`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MdnConfig {
    /// Mixture components (10).
    pub components: usize,
    /// Hidden units of the two hidden layers (50).
    pub hidden: usize,
}

impl Default for MdnConfig {
    fn default() -> Self {
        MdnConfig { components: 10, hidden: 50 }
    }
}

impl EstimatorConfig for MdnConfig {
    fn name(&self) -> &'static str {
        "mdn"
    }

    fn validate(&self, features: usize) -> crate::error::Result<()> {
        check_sizes(
            self.components > 0 && self.hidden > 0,
            self,
            features,
            "components and hidden units must be positive",
        )
    }

    fn build(
        &self,
        vb: VarBuilder,
        features: usize,
        context: usize,
        _seed: u64,
    ) -> candle_core::Result<Box<dyn ConditionalFlow>> {
        Ok(Box::new(Mdn::new(vb, self, features, context)?))
    }
}

impl MdnConfig {
    /// Sets the number of components.
    pub fn with_components(mut self, k: usize) -> Self {
        self.components = k;
        self
    }
    /// Sets the hidden width.
    pub fn with_hidden(mut self, h: usize) -> Self {
        self.hidden = h;
        self
    }
}

/// A mixture density network.
#[derive(Debug)]
pub struct Mdn {
    net: Mlp,
    logits: Linear,
    means: Linear,
    diag: Linear,
    upper: Option<Linear>,
    /// `[D², D]` and `[D², D(D−1)/2]`: place diagonal and upper entries into a flat `D × D`
    /// matrix, as the (constant) weights of a dense layer with `no_bias` `[1, D²]`.
    place_diag: Tensor,
    place_upper: Option<Tensor>,
    no_bias: Tensor,
    k: usize,
    d: usize,
}

impl Mdn {
    /// Builds the network for `features` parameters and `context` inputs.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn new(vb: VarBuilder, c: &MdnConfig, features: usize, context: usize) -> candle_core::Result<Self> {
        let (k, d, h) = (c.components, features, c.hidden);
        let n_upper = d * (d - 1) / 2;
        // Row (flat position) p of a placement takes input column c when p is c's entry.
        let mut pd = vec![0f32; d * d * d];
        for i in 0..d {
            pd[(i * d + i) * d + i] = 1.0;
        }
        let mut pu = vec![0f32; n_upper * d * d];
        let mut m = 0;
        for i in 0..d {
            for j in i + 1..d {
                pu[(i * d + j) * n_upper + m] = 1.0;
                m += 1;
            }
        }
        Ok(Mdn {
            net: Mlp::new(vb.pp("net"), &[context.max(1), h, h], Activation::Relu)?,
            logits: Linear::new(vb.pp("logits"), h, k)?,
            means: Linear::new(vb.pp("means"), h, k * d)?,
            diag: Linear::new(vb.pp("diag"), h, k * d)?,
            upper: if n_upper > 0 { Some(Linear::new(vb.pp("upper"), h, k * n_upper)?) } else { None },
            place_diag: Tensor::from_vec(pd, (d * d, d), vb.device())?,
            place_upper: if n_upper > 0 { Some(Tensor::from_vec(pu, (d * d, n_upper), vb.device())?) } else { None },
            no_bias: Tensor::zeros((1, d * d), DType::F32, vb.device())?,
            k,
            d,
        })
    }

    /// Log-weights `[B, K]`, means `[B, K, D]` and precision factors `[B, K, D, D]` (with the
    /// log-diagonal `[B, K, D]`).
    fn params(&self, context: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor, Tensor)> {
        let b = context.dim(0)?;
        let (k, d) = (self.k, self.d);
        // The hidden net ends in a linear layer; apply ReLU to it as the last hidden activation.
        let h = self.net.forward(context)?.relu()?;
        let log_w = candle_nn::ops::log_softmax(&self.logits.forward(&h)?, D::Minus1)?;
        let means = self.means.forward(&h)?.reshape((b, k, d))?;
        let log_diag = self.diag.forward(&h)?.reshape((b * k, d))?;
        // The placements are dense layers with constant weights (the toolkit's kernel, not
        // candle's matmul, which asks the environment for its thread count on every call).
        let place = |x: &Tensor, w: &Tensor| crate::nn::dense(x, w, &self.no_bias, None, None);
        let mut u = place(&(log_diag.exp()? + 1e-6)?, &self.place_diag)?;
        if let (Some(upper), Some(w)) = (&self.upper, &self.place_upper) {
            let n = d * (d - 1) / 2;
            u = (u + place(&upper.forward(&h)?.reshape((b * k, n))?, w)?)?;
        }
        let u = u.reshape((b, k, d, d))?;
        let log_diag = (log_diag.exp()? + 1e-6)?.log()?.reshape((b, k, d))?;
        Ok((log_w, means, u, log_diag))
    }
}

/// `log Σ_k exp(x_k)` along the last dimension.
fn logsumexp(x: &Tensor) -> candle_core::Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    (x.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?.log()? + m)?.squeeze(D::Minus1)
}

impl ConditionalFlow for Mdn {
    fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let (log_w, means, u, log_diag) = self.params(context)?;
        let diff = inputs.unsqueeze(1)?.broadcast_sub(&means)?.unsqueeze(2)?; // [B, K, 1, D]
        let ud = u.broadcast_mul(&diff)?.sum(D::Minus1)?; // (U d)_i = Σ_j U_ij d_j: [B, K, D]
        let comp = ((ud.sqr()?.sum(D::Minus1)? * -0.5)? + log_diag.sum(D::Minus1)?)? - self.d as f64 * HALF_LN_2PI;
        logsumexp(&(log_w + comp?)?)
    }

    fn sample(&self, context: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        let b = context.dim(0)?;
        let (k, d) = (self.k, self.d);
        let (log_w, means, u, _) = self.params(context)?;
        let w: Vec<f32> = log_w.exp()?.flatten_all()?.to_vec1()?;
        let means: Vec<f32> = means.flatten_all()?.to_vec1()?;
        let u: Vec<f32> = u.flatten_all()?.to_vec1()?;
        let mut out = Vec::with_capacity(b * d);
        let mut x = vec![0f64; d];
        for r in 0..b {
            // Pick a component, then solve U x = ε by back substitution: x ~ N(0, (UᵀU)⁻¹).
            let mut t = rng.random::<f64>();
            let mut comp = k - 1;
            for (j, &wj) in w[r * k..(r + 1) * k].iter().enumerate() {
                t -= wj as f64;
                if t <= 0.0 {
                    comp = j;
                    break;
                }
            }
            let base = (r * k + comp) * d * d;
            let eps: Vec<f64> = (0..d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
            for i in (0..d).rev() {
                let s: f64 = (i + 1..d).map(|j| u[base + i * d + j] as f64 * x[j]).sum();
                x[i] = (eps[i] - s) / u[base + i * d + i] as f64;
            }
            let mb = (r * k + comp) * d;
            out.extend((0..d).map(|i| (means[mb + i] as f64 + x[i]) as f32));
        }
        Tensor::from_vec(out, (b, d), context.device())
    }
}
