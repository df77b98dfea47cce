//! Layers: dense (PyTorch's `nn.Linear`), masked dense (MADE), MLP and residual MLP, each
//! one fused kernel per dense layer on the CPU and plain candle ops elsewhere.

use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::nn::Activation;

/// PyTorch's default `nn.Linear` initialisation bound, `1/√fan_in`.
pub(crate) fn torch_bound(fan_in: usize) -> Init {
    let b = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform { lo: -b, up: b }
}

/// A column of ones `[batch, 1]`: adding the bias as `ones · bᵀ` makes its gradient a
/// matrix product, much faster in candle than the reduction behind `broadcast_add`.
fn ones_column(x: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::ones((x.dim(0)?, 1), x.dtype(), x.device())
}

/// `act(x (W∘M)ᵀ + b)`: one fused op on CPU f32 tensors, candle's ops elsewhere.
pub(crate) fn dense(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    mask: Option<&(Tensor, std::sync::Arc<[f32]>)>,
    activation: Option<Activation>,
) -> candle_core::Result<Tensor> {
    if crate::nn::kernels::fused_for(x) && weight.dtype() == DType::F32 {
        let op = crate::nn::kernels::Dense { mask: mask.map(|(_, m)| m.clone()), activation };
        return x.contiguous()?.apply_op3(weight, bias, op);
    }
    let w = match mask {
        Some((m, _)) => (weight * m)?,
        None => weight.clone(),
    };
    let y = (x.matmul(&w.t()?)? + ones_column(x)?.matmul(bias)?)?;
    match activation {
        Some(a) => a.apply(&y),
        None => Ok(y),
    }
}

/// A dense layer `y = x Wᵀ + b`, initialised as PyTorch's `nn.Linear`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Creates the layer's parameters `weight` `[out, in]` and `bias` `[1, out]` under `vb`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn new(vb: VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Self> {
        Self::with_init(vb, inputs, outputs, torch_bound(inputs))
    }

    /// The layer with weights and bias drawn from `init`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn with_init(vb: VarBuilder, inputs: usize, outputs: usize, init: Init) -> candle_core::Result<Self> {
        Ok(Linear {
            weight: vb.get_with_hints((outputs, inputs), "weight", init)?,
            bias: vb.get_with_hints((1, outputs), "bias", init)?,
        })
    }

    /// Applies the layer to `x` `[batch, in]`, then `activation` if given.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn forward_act(&self, x: &Tensor, activation: Option<Activation>) -> candle_core::Result<Tensor> {
        dense(x, &self.weight, &self.bias, None, activation)
    }

    /// Applies the layer to `x` `[batch, in]`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_act(x, None)
    }
}

/// A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE).
#[derive(Debug, Clone)]
pub struct MaskedLinear {
    linear: Linear,
    mask: (Tensor, std::sync::Arc<[f32]>),
}

impl MaskedLinear {
    /// Creates the layer with `mask` `[out, in]` (1 where a connection is allowed).
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn new(vb: VarBuilder, mask: Vec<f32>, inputs: usize, outputs: usize) -> candle_core::Result<Self> {
        let tensor = Tensor::from_vec(mask.clone(), (outputs, inputs), vb.device())?;
        Ok(MaskedLinear { linear: Linear::new(vb, inputs, outputs)?, mask: (tensor, mask.into()) })
    }

    /// Applies the masked layer, then `activation` if given.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn forward_act(&self, x: &Tensor, activation: Option<Activation>) -> candle_core::Result<Tensor> {
        dense(x, &self.linear.weight, &self.linear.bias, Some(&self.mask), activation)
    }
}

/// A multi-layer perceptron: `layers.len() − 1` linear layers with the activation between them.
#[derive(Debug, Clone)]
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
}

impl Mlp {
    /// An MLP with sizes `[in, hidden..., out]`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn new(vb: VarBuilder, sizes: &[usize], activation: Activation) -> candle_core::Result<Self> {
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| Linear::new(vb.pp(i), w[0], w[1]))
            .collect::<candle_core::Result<_>>()?;
        Ok(Mlp { layers, activation })
    }

    /// Applies the network to `x` `[batch, in]`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward_act(&h, (i + 1 < self.layers.len()).then_some(self.activation))?;
        }
        Ok(h)
    }
}

/// A residual MLP: `h = W₀ x`, then blocks `h += W₂ relu(W₁ relu(h))`, then a linear output
/// (nflows' `ResidualNet` without batch norm or dropout: `sbi`'s NSF conditioner and classifier).
#[derive(Debug)]
pub struct ResidualNet {
    input: Linear,
    blocks: Vec<(Linear, Linear)>,
    output: Linear,
}

impl ResidualNet {
    /// `inputs → hidden`, `blocks` residual blocks, `hidden → outputs`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn new(
        vb: VarBuilder,
        inputs: usize,
        hidden: usize,
        blocks: usize,
        outputs: usize,
    ) -> candle_core::Result<Self> {
        Ok(ResidualNet {
            input: Linear::new(vb.pp("input"), inputs.max(1), hidden)?,
            blocks: (0..blocks)
                .map(|b| {
                    Ok((
                        Linear::new(vb.pp(format!("block{b}.0")), hidden, hidden)?,
                        Linear::new(vb.pp(format!("block{b}.1")), hidden, hidden)?,
                    ))
                })
                .collect::<candle_core::Result<_>>()?,
            output: Linear::new(vb.pp("output"), hidden, outputs)?,
        })
    }

    /// Applies the network to `x` `[batch, inputs]`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = self.input.forward(x)?;
        for (a, b) in &self.blocks {
            let t = a.forward_act(&h.relu()?, Some(Activation::Relu))?;
            h = (h + b.forward(&t)?)?;
        }
        self.output.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::nn::ParamStore;

    #[test]
    fn linear_matches_its_definition() {
        let store = ParamStore::new(3);
        let layer = Linear::new(store.var_builder(), 2, 3).unwrap();
        let x = Tensor::new(&[[1f32, 2.0], [-1.0, 0.5]], &Device::Cpu).unwrap();
        let y = layer.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        let w = layer.weight.to_vec2::<f32>().unwrap();
        let b = layer.bias.to_vec2::<f32>().unwrap();
        let xs = [[1f32, 2.0], [-1.0, 0.5]];
        for r in 0..2 {
            for o in 0..3 {
                let expected = w[o][0] * xs[r][0] + w[o][1] * xs[r][1] + b[0][o];
                assert!((y[r][o] - expected).abs() < 1e-6);
            }
        }
    }
}
