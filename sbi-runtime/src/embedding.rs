//! Embedding networks for structured observations: they map an observation (flattened
//! row-major, z-scored per value) to a feature vector that the density estimator or
//! classifier takes as its context, and train end to end with it.
//!
//! - [`Cnn1d`]: a 1-D CNN over a time series (`Shape::Sequence`, `len × channels`);
//! - [`Cnn2d`]: a 2-D CNN over images (`Shape::Image`, `channels × height × width`);
//! - [`DeepSets`]: a permutation-invariant network over iid trials (`Shape::Trials`):
//!   `ρ(mean_k φ(x_k), k/K)` over the k trials present of at most K (absent ones are NaN
//!   rows, masked out; the count tells ρ how much evidence the mean carries);
//! - [`Gru`]: a gated recurrent network over a time series (candle-nn's GRU), its last state.
//!
//! Each is chosen through [`crate::nn::EmbeddingNet`], which checks at configuration time
//! that the observations have the shape the network needs.

use candle_core::{CpuStorage, CustomOp1, Layout, Tensor};
use candle_nn::VarBuilder;
use candle_nn::rnn::RNN;

use crate::fused::f32_slice;
use crate::nn::{Activation, Embedding, Linear, Mlp};

/// Gathers every `kh × kw` patch (with 'same' zero padding) of channel-last maps
/// `[B, H·W·C]` into rows `[B·H·W, kh·kw·C]`, so that a convolution is one dense layer on
/// the rows (im2col), the fused dense kernel of `fused.rs`.
///
/// Written by hand, with [`MaxPool2`]: candle's CPU `conv2d` takes its input gradient
/// through a direct `conv_transpose2d` loop (a 32 × 32 CNN trained at 1.2 s per epoch of
/// 1,800 images), and `index_select`/`max` over strided dimensions were still most of the
/// step; the gather and its scatter-add gradient are two plain loops.
struct Unfold {
    gather: Gather,
    positions: usize,
    patch: usize,
}

impl Unfold {
    fn new(h: usize, w: usize, c: usize, kh: usize, kw: usize) -> candle_core::Result<Self> {
        let zero = (h * w * c) as u32;
        let mut index = Vec::with_capacity(h * w * kh * kw * c);
        for i in 0..h {
            for j in 0..w {
                for di in 0..kh {
                    for dj in 0..kw {
                        let (si, sj) = ((i + di).checked_sub(kh / 2), (j + dj).checked_sub(kw / 2));
                        for ch in 0..c {
                            index.push(match (si, sj) {
                                (Some(si), Some(sj)) if si < h && sj < w => ((si * w + sj) * c + ch) as u32,
                                _ => zero,
                            });
                        }
                    }
                }
            }
        }
        Ok(Unfold {
            gather: Gather { index: std::sync::Arc::new(index), inputs: h * w * c },
            positions: h * w,
            patch: kh * kw * c,
        })
    }

    /// `[B, H·W·C]` → `[B·H·W, kh·kw·C]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let b = x.dim(0)?;
        x.contiguous()?.apply_op1(self.gather.clone())?.reshape((b * self.positions, self.patch))
    }
}

/// `out[b, k] = x[b, index[k]]`, or 0 where `index[k] == inputs`; the gradient scatter-adds.
#[derive(Clone)]
struct Gather {
    index: std::sync::Arc<Vec<u32>>,
    inputs: usize,
}

impl CustomOp1 for Gather {
    fn name(&self) -> &'static str {
        "im2col-gather"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let x = f32_slice(storage, layout, "im2col")?;
        let (n, m) = (self.inputs, self.index.len());
        let b = x.len() / n;
        let mut out = vec![0f32; b * m];
        for (row, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(m)) {
            for (o, &k) in o.iter_mut().zip(self.index.iter()) {
                if (k as usize) < n {
                    *o = row[k as usize];
                }
            }
        }
        Ok((CpuStorage::F32(out), (b, m).into()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, m) = (self.inputs, self.index.len());
        let g: Vec<f32> = grad.contiguous()?.flatten_all()?.to_vec1()?;
        let b = g.len() / m;
        let mut dx = vec![0f32; b * n];
        for (gr, d) in g.chunks_exact(m).zip(dx.chunks_exact_mut(n)) {
            for (&gv, &k) in gr.iter().zip(self.index.iter()) {
                if (k as usize) < n {
                    d[k as usize] += gv;
                }
            }
        }
        Ok(Some(Tensor::from_vec(dx, (b, n), arg.device())?))
    }
}

/// 2 × 2 max-pooling of channel-last maps `[B, H, W, C]` → `[B, H/2, W/2, C]` (an odd last
/// row or column is dropped); the gradient goes to each window's first maximum.
#[derive(Clone, Copy)]
struct MaxPool2 {
    h: usize,
    w: usize,
    c: usize,
}

impl MaxPool2 {
    /// The flat input offsets of each output's window, in order; calls `f(output, inputs)`.
    fn windows(&self, mut f: impl FnMut(usize, [usize; 4])) {
        let (h2, w2, c) = (self.h / 2, self.w / 2, self.c);
        for i in 0..h2 {
            for j in 0..w2 {
                for ch in 0..c {
                    let at = |di: usize, dj: usize| ((2 * i + di) * self.w + 2 * j + dj) * c + ch;
                    f((i * w2 + j) * c + ch, [at(0, 0), at(0, 1), at(1, 0), at(1, 1)]);
                }
            }
        }
    }
}

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let x = f32_slice(storage, layout, "max-pool")?;
        let (n, m) = (self.h * self.w * self.c, (self.h / 2) * (self.w / 2) * self.c);
        let b = x.len() / n;
        let mut out = vec![0f32; b * m];
        for (row, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(m)) {
            self.windows(|k, win| o[k] = win.iter().map(|&i| row[i]).fold(f32::NEG_INFINITY, f32::max));
        }
        Ok((CpuStorage::F32(out), (b, self.h / 2, self.w / 2, self.c).into()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let x: Vec<f32> = arg.contiguous()?.flatten_all()?.to_vec1()?;
        let g: Vec<f32> = grad.contiguous()?.flatten_all()?.to_vec1()?;
        let (n, m) = (self.h * self.w * self.c, (self.h / 2) * (self.w / 2) * self.c);
        let mut dx = vec![0f32; x.len()];
        for ((row, gr), d) in x.chunks_exact(n).zip(g.chunks_exact(m)).zip(dx.chunks_exact_mut(n)) {
            self.windows(|k, win| {
                let best = win.iter().copied().fold(win[0], |a, i| if row[i] > row[a] { i } else { a });
                d[best] += gr[k];
            });
        }
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// One convolution with ReLU: the patches and the dense layer that maps them.
struct Conv {
    unfold: Unfold,
    dense: Linear,
    /// Output map `(height, width, channels)`, before pooling.
    out: (usize, usize, usize),
}

impl Conv {
    fn new(
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
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (h, w, c) = self.out;
        self.dense.forward_act(&self.unfold.forward(x)?, Some(Activation::Relu))?.reshape((x.dim(0)?, h, w, c))
    }
}

/// Convolution layers with 'same' padding, ReLU and average pooling by 2, then a linear layer.
pub struct Cnn1d {
    convs: Vec<Conv>,
    head: Linear,
}

impl Cnn1d {
    /// A CNN for series of `len` steps of `channels` values: one convolution of width
    /// `kernel` per entry of `widths` (its output channels), each followed by ReLU and
    /// average pooling by 2, then a linear map to `output` features.
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

impl Embedding for Cnn1d {
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
pub struct Cnn2d {
    shape: (usize, usize, usize),
    convs: Vec<Conv>,
    head: Linear,
}

impl Cnn2d {
    /// A CNN for `channels × height × width` images: one `kernel × kernel` convolution per
    /// entry of `widths` (its output channels), each followed by ReLU and 2 × 2 max-pooling,
    /// then a linear map to `output` features.
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

impl Embedding for Cnn2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (c, h, w) = self.shape;
        let b = x.dim(0)?;
        // Images are flattened channel-first; the convolutions work channel-last.
        let mut t = if c == 1 { x.clone() } else { x.reshape((b, c, h, w))?.permute((0, 2, 3, 1))?.flatten_from(1)? };
        for conv in &self.convs {
            let (h, w, c) = conv.out;
            t = conv.forward(&t)?.apply_op1(MaxPool2 { h, w, c })?.flatten_from(1)?;
        }
        self.head.forward(&t)
    }
}

/// `ρ(mean_k φ(x_k), k/K)` over the trials `x_k` present: invariant to their order.
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

impl Embedding for DeepSets {
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

/// A GRU over the steps of a series; its last hidden state, mapped linearly to the output.
pub struct Gru {
    len: usize,
    channels: usize,
    gru: candle_nn::rnn::GRU,
    head: Linear,
}

impl Gru {
    /// A GRU with `hidden` units over `len` steps of `channels` values, then a linear map to
    /// `output` features.
    pub fn new(vb: VarBuilder, len: usize, channels: usize, hidden: usize, output: usize) -> candle_core::Result<Self> {
        let gru = candle_nn::rnn::gru(channels, hidden, Default::default(), vb.pp("gru"))?;
        let head = Linear::new(vb.pp("head"), hidden, output)?;
        Ok(Gru { len, channels, gru, head })
    }
}

impl Embedding for Gru {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let b = x.dim(0)?;
        let series = x.reshape((b, self.len, self.channels))?;
        let states = self.gru.seq(&series)?;
        let last = states.last().ok_or_else(|| candle_core::Error::Msg("an empty series".into()))?;
        self.head.forward(last.h())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Shape;
    use crate::nn::{EmbeddingNet, ParamStore};

    fn noise(seed: u64, rows: usize, cols: usize) -> Tensor {
        use rand::RngExt;
        let mut rng = crate::rng::stream_rng(seed, 1);
        let v: Vec<f32> = (0..rows * cols).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
        Tensor::from_vec(v, (rows, cols), &candle_core::Device::Cpu).unwrap()
    }

    fn cases() -> Vec<(EmbeddingNet, Shape)> {
        vec![
            (
                EmbeddingNet::Cnn1d { channels: vec![4, 8], kernel: 5, output: 6 },
                Shape::Sequence { len: 30, channels: 2 },
            ),
            (
                EmbeddingNet::Cnn2d { channels: vec![4, 8], kernel: 3, output: 6 },
                Shape::Image { channels: 1, height: 12, width: 16 },
            ),
            (EmbeddingNet::DeepSets { hidden: vec![16, 16], output: 6 }, Shape::Trials { trials: 7, features: 3 }),
            (EmbeddingNet::Gru { hidden: 8, output: 6 }, Shape::Sequence { len: 10, channels: 2 }),
        ]
    }

    /// Each network maps a batch of observations to `[batch, output]` and every parameter
    /// receives a gradient (everything trains end to end).
    #[test]
    fn output_shapes_and_gradient_flow() {
        for (net, shape) in cases() {
            net.validate(&shape).unwrap();
            let store = ParamStore::new(1);
            let (e, width) = net.build(store.var_builder(), &shape).unwrap();
            assert_eq!(width, 6);
            let x = noise(2, 5, shape.numel());
            let y = e.forward(&x).unwrap();
            assert_eq!(y.dims(), &[5, 6], "{net:?}");
            let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            for (name, t) in store.named_tensors() {
                let g = grads.get(&t).unwrap_or_else(|| panic!("{net:?}: no gradient for {name}"));
                let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(norm > 0.0 && norm.is_finite(), "{net:?}: gradient of {name} is {norm}");
            }
        }
    }

    /// The im2col convolution equals candle's `conv2d` with the same weights (channel-last
    /// output against channel-first), padding included.
    #[test]
    fn unfolded_convolution_matches_candles_conv2d() {
        let (c, h, w, k, c_out) = (2, 5, 6, 3, 4);
        let store = ParamStore::new(7);
        let conv = Conv::new(store.var_builder(), (h, w, c), (k, k), c_out).unwrap();
        let xv = candle_core::Var::from_tensor(&noise(8, 3, c * h * w)).unwrap(); // channel-last rows
        let x = xv.as_tensor();
        let ours = conv.forward(x).unwrap(); // [B, H, W, C_out]
        // The dense weight [C_out, k·k·C] laid out (di, dj, ch) → candle's [C_out, C, k, k].
        let weight = store.named_tensors().into_iter().find(|(n, _)| n.ends_with("weight")).unwrap().1;
        let bias = store.named_tensors().into_iter().find(|(n, _)| n.ends_with("bias")).unwrap().1;
        let kernel = weight.reshape((c_out, k, k, c)).unwrap().permute((0, 3, 1, 2)).unwrap().contiguous().unwrap();
        let image = x.reshape((3, h, w, c)).unwrap().permute((0, 3, 1, 2)).unwrap().contiguous().unwrap();
        let theirs = image
            .conv2d(&kernel, k / 2, 1, 1, 1)
            .unwrap()
            .broadcast_add(&bias.reshape((1, c_out, 1, 1)).unwrap())
            .unwrap()
            .relu()
            .unwrap()
            .permute((0, 2, 3, 1))
            .unwrap();
        let diff = (&ours - &theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "largest difference {diff}");
        // The gather's scatter-add gradient against candle's convolution gradient.
        let weights = noise(11, 3, h * w * c_out).reshape((3, h, w, c_out)).unwrap();
        let g1 = (&ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&theirs * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let (g1, g2) = (g1.get(x).unwrap(), g2.get(x).unwrap());
        let diff = (g1 - g2).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "input gradients differ by {diff}");
    }

    /// The pooling op equals candle's reductions, values and gradients.
    #[test]
    fn max_pool_matches_candle() {
        let (b, h, w, c) = (2, 5, 6, 3);
        let x = candle_core::Var::from_tensor(&noise(9, b, h * w * c).reshape((b, h, w, c)).unwrap()).unwrap();
        let ours = x.as_tensor().apply_op1(MaxPool2 { h, w, c }).unwrap();
        let theirs =
            x.as_tensor().narrow(1, 0, 4).unwrap().reshape((b, 2, 2, 3, 2, c)).unwrap().max(4).unwrap().max(2).unwrap();
        assert_eq!(ours.dims(), &[b, 2, 3, c]);
        let diff = (&ours - &theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
        let weights = noise(10, b, 2 * 3 * c).reshape((b, 2, 3, c)).unwrap();
        let g1 = (&ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&theirs * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let (g1, g2) = (g1.get(x.as_tensor()).unwrap(), g2.get(x.as_tensor()).unwrap());
        let diff = (g1 - g2).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "gradients differ by {diff}");
    }

    /// DeepSets gives the same features whatever the order of the trials; the CNN does not.
    #[test]
    fn deep_sets_are_permutation_invariant() {
        let (net, shape) = cases().remove(2);
        let store = ParamStore::new(3);
        let (e, _) = net.build(store.var_builder(), &shape).unwrap();
        let x = noise(4, 2, 21);
        let rows = x.to_vec2::<f32>().unwrap();
        // Trials reversed: trial k takes the features of trial 6 − k.
        let reversed: Vec<f32> =
            rows.iter().flat_map(|r| r.chunks(3).rev().flatten().copied().collect::<Vec<_>>()).collect();
        let xr = Tensor::from_vec(reversed, (2, 21), &candle_core::Device::Cpu).unwrap();
        let (a, b) =
            (e.forward(&x).unwrap().to_vec2::<f32>().unwrap(), e.forward(&xr).unwrap().to_vec2::<f32>().unwrap());
        for (ra, rb) in a.iter().zip(&b) {
            for (u, v) in ra.iter().zip(rb) {
                assert!((u - v).abs() < 1e-5, "{u} vs {v}");
            }
        }
        let other = e.forward(&noise(5, 2, 21)).unwrap().to_vec2::<f32>().unwrap();
        assert_ne!(a, other);
    }

    /// Absent trials (NaN rows) do not change DeepSets' output: three trials padded to seven
    /// give the features of the same three trials with the others absent in another order,
    /// and gradients stay finite.
    #[test]
    fn deep_sets_mask_absent_trials() {
        let (net, shape) = cases().remove(2); // 7 trials of 3 features
        let store = ParamStore::new(6);
        let (e, _) = net.build(store.var_builder(), &shape).unwrap();
        let present = noise(12, 1, 9).to_vec2::<f32>().unwrap().remove(0);
        let nan = [f32::NAN; 3];
        let pad = |order: &[usize]| -> Vec<f32> {
            order.iter().flat_map(|&t| if t < 3 { present[3 * t..3 * t + 3].to_vec() } else { nan.to_vec() }).collect()
        };
        let a = Tensor::from_vec(pad(&[0, 1, 2, 3, 4, 5, 6]), (1, 21), &candle_core::Device::Cpu).unwrap();
        let b = Tensor::from_vec(pad(&[5, 2, 3, 0, 6, 1, 4]), (1, 21), &candle_core::Device::Cpu).unwrap();
        let (ya, yb) = (e.forward(&a).unwrap(), e.forward(&b).unwrap());
        let diff = (&ya - &yb).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{diff}");
        let grads = ya.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        for (name, t) in store.named_tensors() {
            let g = grads.get(&t).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(g.is_finite(), "{name}: {g}");
        }
        // All seven present differs from three.
        let full = noise(13, 1, 21);
        assert!(e.forward(&full).unwrap().to_vec2::<f32>().unwrap() != ya.to_vec2::<f32>().unwrap());
    }

    /// A network applied to data of the wrong shape is refused before anything is built.
    #[test]
    fn shape_mismatches_are_configuration_errors() {
        let image = Shape::Image { channels: 1, height: 8, width: 8 };
        let series = Shape::Sequence { len: 8, channels: 1 };
        let bad = [
            (EmbeddingNet::Cnn2d { channels: vec![4], kernel: 3, output: 2 }, series.clone()),
            (EmbeddingNet::Cnn1d { channels: vec![4], kernel: 3, output: 2 }, image.clone()),
            (EmbeddingNet::Gru { hidden: 4, output: 2 }, Shape::Vector(8)),
            (EmbeddingNet::DeepSets { hidden: vec![4], output: 2 }, image.clone()),
            // Four poolings by 2 leave nothing of an 8 × 8 image.
            (EmbeddingNet::Cnn2d { channels: vec![2, 2, 2, 2], kernel: 3, output: 2 }, image.clone()),
            (EmbeddingNet::Cnn2d { channels: vec![2], kernel: 4, output: 2 }, image),
            (EmbeddingNet::Cnn1d { channels: vec![], kernel: 3, output: 2 }, series),
        ];
        for (net, shape) in bad {
            let err = net.validate(&shape).expect_err(&format!("{net:?} on {shape}"));
            assert!(
                err.to_string().contains(&shape.to_string())
                    || err.to_string().contains("kernel")
                    || err.to_string().contains("layer"),
                "{err}"
            );
        }
    }
}
