//! Convolution helpers as CPU ops with gradients: the gather behind an unfolding (im2col)
//! and 2 × 2 max-pooling.

use candle_core::{CpuStorage, CustomOp1, Layout, Tensor};

use super::f32_slice;

/// Gathers every `kh × kw` patch (with 'same' zero padding) of channel-last maps
/// `[B, H·W·C]` into rows `[B·H·W, kh·kw·C]`, so that a convolution is one dense layer on
/// the rows (im2col), the fused dense kernel of `fused.rs`.
///
/// Written by hand, with [`MaxPool2`]: candle's CPU `conv2d` takes its input gradient
/// through a direct `conv_transpose2d` loop (a 32 × 32 CNN trained at 1.2 s per epoch of
/// 1,800 images), and `index_select`/`max` over strided dimensions were still most of the
/// step; the gather and its scatter-add gradient are two plain loops.
#[derive(Debug)]
pub(crate) struct Unfold {
    gather: Gather,
    positions: usize,
    patch: usize,
}

impl Unfold {
    pub(crate) fn new(h: usize, w: usize, c: usize, kh: usize, kw: usize) -> candle_core::Result<Self> {
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
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let b = x.dim(0)?;
        let rows = if super::fused_for(x) {
            x.contiguous()?.apply_op1(self.gather.clone())?
        } else {
            // The same gather as candle ops: a zero column for the padding, then index_select.
            let zero = Tensor::zeros((b, 1), x.dtype(), x.device())?;
            let index = Tensor::new(self.gather.index.as_slice(), x.device())?;
            Tensor::cat(&[x, &zero], 1)?.index_select(&index, 1)?
        };
        rows.reshape((b * self.positions, self.patch))
    }
}

/// `out[b, k] = x[b, index[k]]`, or 0 where `index[k] == inputs`; the gradient scatter-adds.
#[derive(Debug, Clone)]
pub(crate) struct Gather {
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
pub(crate) struct MaxPool2 {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl MaxPool2 {
    /// Pools `x` `[B, H, W, C]`: the kernel on the CPU, candle ops elsewhere (each window's
    /// maximum; their gradients differ only at ties, which ReLU's zeros make harmless).
    pub(crate) fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if super::fused_for(x) {
            return x.contiguous()?.apply_op1(*self);
        }
        let (b, h2, w2, c) = (x.dim(0)?, self.h / 2, self.w / 2, self.c);
        x.narrow(1, 0, 2 * h2)?.narrow(2, 0, 2 * w2)?.contiguous()?.reshape((b, h2, 2, w2, 2, c))?.max(4)?.max(2)
    }

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
