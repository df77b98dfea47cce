//! Adam with global gradient-norm clipping, one in-place pass over each parameter's memory.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp1, Layout, Var};

use super::with_values;

/// Subtracts a precomputed update in place.
struct SubAssign<'a>(&'a [f32]);

impl InplaceOp1 for SubAssign<'_> {
    fn name(&self) -> &'static str {
        "sub-assign"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(v) = storage else { candle_core::bail!("adam: parameters must be f32") };
        let (a, b) =
            layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("adam: not contiguous".into()))?;
        if b - a != self.0.len() {
            candle_core::bail!("adam: {} values, update of {}", b - a, self.0.len());
        }
        v[a..b].iter_mut().zip(self.0).for_each(|(p, d)| *p -= d);
        Ok(())
    }
}

/// Adam (Kingma & Ba 2015) with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8) and no
/// weight decay, preceded by clipping the global gradient norm (as
/// `torch.nn.utils.clip_grad_norm_`).
pub(crate) struct Adam {
    vars: Vec<Var>,
    pub(super) m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    step: i32,
    lr: f64,
    clip_max_norm: Option<f64>,
    delta: Vec<f32>,
}

impl Adam {
    pub fn new(vars: Vec<Var>, lr: f64, clip_max_norm: Option<f64>) -> Self {
        let m = vars.iter().map(|v| vec![0.0; v.elem_count()]).collect::<Vec<_>>();
        Adam { v: m.clone(), m, vars, step: 0, lr, clip_max_norm, delta: Vec::new() }
    }

    /// One update from the sum of the gradients in `parts` (the gradients of parts of one
    /// batch, added in the given order). Parameters without a gradient are left as they are,
    /// as in PyTorch.
    pub fn step(&mut self, parts: &[GradStore]) -> candle_core::Result<()> {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        const EPS: f32 = 1e-8;
        // The summed gradient of every parameter, in one buffer.
        let mut total = std::mem::take(&mut self.delta);
        total.clear();
        let mut spans = Vec::with_capacity(self.vars.len());
        for var in &self.vars {
            let start = total.len();
            let mut found = false;
            for grads in parts {
                let Some(g) = grads.get(var.as_tensor()) else { continue };
                with_values(g, |g| {
                    if g.len() != var.elem_count() {
                        candle_core::bail!("adam: gradient of {} values for {}", g.len(), var.elem_count());
                    }
                    if found {
                        total[start..].iter_mut().zip(g).for_each(|(t, g)| *t += g);
                    } else {
                        total.extend_from_slice(g);
                    }
                    Ok(())
                })?;
                found = true;
            }
            spans.push(found.then_some(start..total.len()));
        }
        let factor = match self.clip_max_norm {
            Some(max) => {
                let norm = total.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
                if norm > max { (max / (norm + 1e-6)) as f32 } else { 1.0 }
            }
            None => 1.0,
        };
        self.step += 1;
        let bc1 = 1.0 - (B1 as f64).powi(self.step);
        let bc2 = 1.0 - (B2 as f64).powi(self.step);
        let step_size = (self.lr / bc1) as f32;
        let inv_bc2_sqrt = (1.0 / bc2.sqrt()) as f32;
        for (i, span) in spans.into_iter().enumerate() {
            let Some(span) = span else { continue };
            let delta = &mut total[span];
            for ((d, m), v) in delta.iter_mut().zip(self.m[i].iter_mut()).zip(self.v[i].iter_mut()) {
                let g = *d * factor;
                *m = B1 * *m + (1.0 - B1) * g;
                *v = B2 * *v + (1.0 - B2) * g * g;
                *d = step_size * *m / (v.sqrt() * inv_bc2_sqrt + EPS);
            }
            self.vars[i].as_tensor().inplace_op1(&SubAssign(delta))?;
        }
        self.delta = total;
        Ok(())
    }
}
