//! Convolutional embeddings: a 1-D CNN over time series and a 2-D CNN over images, each
//! convolution an unfolding (im2col) followed by the fused dense kernel, with 2 × 2 pooling.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::nn::kernels::conv::{MaxPool2, Unfold};
use crate::nn::{Activation, Linear};

/// One convolution with ReLU: the patches and the dense layer that maps them.
#[derive(Debug)]
pub(crate) struct Conv {
    unfold: Unfold,
    dense: Linear,
    /// Output map `(height, width, channels)`, before pooling.
    out: (usize, usize, usize),
}

impl Conv {
    pub(crate) fn new(
        vb: VarBuilder,
        (h, w, c): (usize, usize, usize),
        (kh, kw): (usize, usize),
        c_out: usize,
    ) -> candle_core::Result<Self> {
        Ok(Conv {
            unfold: Unfold::new(h, w, c, kh, kw)?,
            dense: Linear::new(vb, kh * kw * c, c_out)?,
            out: (h, w, c_out),
        })
    }

    /// `[B, H·W·C]` → `[B, H, W, C_out]` (channel-last).
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (h, w, c) = self.out;
        self.dense.forward_act(&self.unfold.forward(x)?, Some(Activation::Relu))?.reshape((x.dim(0)?, h, w, c))
    }
}

/// Convolution layers with 'same' padding, ReLU and average pooling by 2, then a linear layer.
#[derive(Debug)]
pub struct Cnn1d {
    convs: Vec<Conv>,
    head: Linear,
}

impl Cnn1d {
    /// A CNN for series of `len` steps of `channels` values: one convolution of width
    /// `kernel` per entry of `widths` (its output channels), each followed by ReLU and
    /// average pooling by 2, then a linear map to `output` features.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn new(
        vb: VarBuilder,
        len: usize,
        channels: usize,
        widths: &[usize],
        kernel: usize,
        output: usize,
    ) -> candle_core::Result<Self> {
        let mut convs = Vec::with_capacity(widths.len());
        let (mut l, mut c) = (len, channels);
        for (i, &w) in widths.iter().enumerate() {
            convs.push(Conv::new(vb.pp(format!("conv{i}")), (1, l, c), (1, kernel), w)?);
            (l, c) = (l / 2, w);
        }
        let head = Linear::new(vb.pp("head"), l * c, output)?;
        Ok(Cnn1d { convs, head })
    }
}

impl candle_nn::Module for Cnn1d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let b = x.dim(0)?;
        // The series is flattened time-major: channel-last already.
        let mut h = x.clone();
        for conv in &self.convs {
            let (_, l, c) = conv.out;
            let y = conv.forward(&h)?.reshape((b, l, c))?;
            h = y.narrow(1, 0, l / 2 * 2)?.reshape((b, l / 2, 2, c))?.mean(2)?.flatten_from(1)?;
        }
        self.head.forward(&h)
    }
}

/// Convolution layers with 'same' padding, ReLU and 2 × 2 max-pooling, then a linear layer.
#[derive(Debug)]
pub struct Cnn2d {
    shape: (usize, usize, usize),
    convs: Vec<Conv>,
    head: Linear,
}

impl Cnn2d {
    /// A CNN for `channels × height × width` images: one `kernel × kernel` convolution per
    /// entry of `widths` (its output channels), each followed by ReLU and 2 × 2 max-pooling,
    /// then a linear map to `output` features.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn new(
        vb: VarBuilder,
        (channels, height, width): (usize, usize, usize),
        widths: &[usize],
        kernel: usize,
        output: usize,
    ) -> candle_core::Result<Self> {
        let mut convs = Vec::with_capacity(widths.len());
        let (mut h, mut w, mut c) = (height, width, channels);
        for (i, &c_out) in widths.iter().enumerate() {
            convs.push(Conv::new(vb.pp(format!("conv{i}")), (h, w, c), (kernel, kernel), c_out)?);
            (h, w, c) = (h / 2, w / 2, c_out);
        }
        let head = Linear::new(vb.pp("head"), h * w * c, output)?;
        Ok(Cnn2d { shape: (channels, height, width), convs, head })
    }
}

impl candle_nn::Module for Cnn2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (c, h, w) = self.shape;
        let b = x.dim(0)?;
        // Images are flattened channel-first; the convolutions work channel-last.
        let mut t = if c == 1 { x.clone() } else { x.reshape((b, c, h, w))?.permute((0, 2, 3, 1))?.flatten_from(1)? };
        for conv in &self.convs {
            let (h, w, c) = conv.out;
            t = MaxPool2 { h, w, c }.apply(&conv.forward(&t)?)?.flatten_from(1)?;
        }
        self.head.forward(&t)
    }
}
