//! Adam with global gradient-norm clipping, one in-place pass over each parameter's memory.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp1, Layout, Tensor, Var};

use super::with_values;

/// Combines each value in place with the matching one of `with`: `p ← p − d` for Adam's
/// update, `a ← d·a + (1 − d)·p` for the moving average.
struct InPlace<'a, F: Fn(f32, f32) -> f32> {
    name: &'static str,
    with: &'a [f32],
    f: F,
}

impl<F: Fn(f32, f32) -> f32> InplaceOp1 for InPlace<'_, F> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(v) = storage else { candle_core::bail!("adam: {} needs f32 values", self.name) };
        let (a, b) =
            layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("adam: not contiguous".into()))?;
        if b - a != self.with.len() {
            candle_core::bail!("adam: {} of {} values with {}", self.name, b - a, self.with.len());
        }
        v[a..b].iter_mut().zip(self.with).for_each(|(v, &w)| *v = (self.f)(*v, w));
        Ok(())
    }
}

/// Adam (Kingma & Ba 2015) with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8) and no
/// weight decay, preceded by clipping the global gradient norm (as
/// `torch.nn.utils.clip_grad_norm_`). On the CPU one in-place pass over each parameter's
/// memory; on other devices (or under [`super::generic`]) the same update as candle ops.
pub(crate) struct Adam {
    vars: Vec<Var>,
    /// First and second moments: host buffers for the kernel, tensors for the generic path.
    pub(super) m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    moments: Option<Vec<(Tensor, Tensor)>>,
    step: i32,
    lr: f64,
    clip_max_norm: Option<f64>,
    delta: Vec<f32>,
    ema: Option<Ema>,
}

/// The exponential moving average of the parameters ([`Adam::with_ema`]).
struct Ema {
    decay: f64,
    values: Vec<Tensor>,
}

const B1: f32 = 0.9;
const B2: f32 = 0.999;
const EPS: f32 = 1e-8;

impl Adam {
    pub fn new(vars: Vec<Var>, lr: f64, clip_max_norm: Option<f64>) -> candle_core::Result<Self> {
        let fused = vars.first().is_none_or(|v| super::fused_for(v.as_tensor()));
        let (m, moments) = if fused {
            (vars.iter().map(|v| vec![0.0; v.elem_count()]).collect::<Vec<_>>(), None)
        } else {
            let zeros = |v: &Var| v.as_tensor().zeros_like();
            let moments = vars.iter().map(|v| Ok((zeros(v)?, zeros(v)?))).collect::<candle_core::Result<Vec<_>>>()?;
            (Vec::new(), Some(moments))
        };
        Ok(Adam { v: m.clone(), m, moments, vars, step: 0, lr, clip_max_norm, delta: Vec::new(), ema: None })
    }

    /// Multiplies the learning rate by `factor` (a decay on a plateau).
    pub fn scale_learning_rate(&mut self, factor: f64) {
        self.lr *= factor;
    }

    /// Also keeps an exponential moving average of the parameters, `a ← d·a + (1 − d)·p`
    /// after every step (Polyak averaging), starting from their values now.
    pub fn with_ema(mut self, decay: f64) -> candle_core::Result<Self> {
        self.ema = Some(Ema { decay, values: copies(&self.vars)? });
        Ok(self)
    }

    /// The averaged parameters, in the variables' order (`None` without averaging); they
    /// change with the next step, so copy them (`ParamStore::restore` does) to keep them.
    pub fn averages(&self) -> Option<&[Tensor]> {
        self.ema.as_ref().map(|e| e.values.as_slice())
    }

    /// Restarts the average from the parameters' values now (after they were restored).
    pub fn reset_ema(&mut self) -> candle_core::Result<()> {
        if let Some(e) = &mut self.ema {
            e.values = copies(&self.vars)?;
        }
        Ok(())
    }

    /// Moves the average towards the parameters after a step: in place on the CPU.
    fn update_ema(&mut self) -> candle_core::Result<()> {
        let Some(Ema { decay, values }) = &mut self.ema else { return Ok(()) };
        for (var, a) in self.vars.iter().zip(values.iter_mut()) {
            if super::fused_for(a) {
                let d = *decay as f32;
                with_values(var.as_tensor(), |p| {
                    a.inplace_op1(&InPlace { name: "moving average", with: p, f: |a, p| d * a + (1.0 - d) * p })
                })?;
            } else {
                *a = ((&*a * *decay)? + (var.as_tensor() * (1.0 - *decay))?)?;
            }
        }
        Ok(())
    }

    /// The learning rate now.
    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate (an annealing schedule).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// One update from the sum of the gradients in `parts` (the gradients of parts of one
    /// batch, added in the given order). Parameters without a gradient are left as they are,
    /// as in PyTorch.
    pub fn step(&mut self, parts: &[GradStore]) -> candle_core::Result<()> {
        if self.moments.is_some() {
            return self.generic_step(parts);
        }
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
        let norm = total.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
        let factor = self.clip_factor(norm);
        let (step_size, inv_bc2_sqrt) = self.advance();
        for (i, span) in spans.into_iter().enumerate() {
            let Some(span) = span else { continue };
            let delta = &mut total[span];
            for ((d, m), v) in delta.iter_mut().zip(self.m[i].iter_mut()).zip(self.v[i].iter_mut()) {
                let g = *d * factor;
                *m = B1 * *m + (1.0 - B1) * g;
                *v = B2 * *v + (1.0 - B2) * g * g;
                *d = step_size * *m / (v.sqrt() * inv_bc2_sqrt + EPS);
            }
            self.vars[i].as_tensor().inplace_op1(&InPlace { name: "update", with: delta, f: |p, d| p - d })?;
        }
        self.delta = total;
        self.update_ema()
    }

    /// The clipping factor for a gradient of global norm `norm`.
    fn clip_factor(&self, norm: f64) -> f32 {
        match self.clip_max_norm {
            Some(max) if norm > max => (max / (norm + 1e-6)) as f32,
            _ => 1.0,
        }
    }

    /// Counts a step; returns the bias-corrected step size and `1/√(1 − β₂ᵗ)`.
    fn advance(&mut self) -> (f32, f32) {
        self.step += 1;
        let bc1 = 1.0 - (B1 as f64).powi(self.step);
        let bc2 = 1.0 - (B2 as f64).powi(self.step);
        ((self.lr / bc1) as f32, (1.0 / bc2.sqrt()) as f32)
    }

    /// The same update as [`Adam::step`] in candle ops, for parameters on any device.
    fn generic_step(&mut self, parts: &[GradStore]) -> candle_core::Result<()> {
        let mut grads: Vec<Option<Tensor>> = Vec::with_capacity(self.vars.len());
        for var in &self.vars {
            let mut sum: Option<Tensor> = None;
            for part in parts {
                if let Some(g) = part.get(var.as_tensor()) {
                    sum = Some(match sum {
                        Some(s) => (s + g)?,
                        None => g.clone(),
                    });
                }
            }
            grads.push(sum);
        }
        let mut norm2 = 0f64;
        for g in grads.iter().flatten() {
            norm2 += g.to_dtype(candle_core::DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
        }
        let factor = self.clip_factor(norm2.sqrt()) as f64;
        let (step_size, inv_bc2_sqrt) = self.advance();
        let moments = self.moments.as_mut().expect("the generic path keeps its moments as tensors");
        for ((var, g), (m, v)) in self.vars.iter().zip(grads).zip(moments.iter_mut()) {
            let Some(g) = g else { continue };
            let g = (g * factor)?;
            *m = ((&*m * B1 as f64)? + (&g * (1.0 - B1) as f64)?)?;
            *v = ((&*v * B2 as f64)? + (g.sqr()? * (1.0 - B2) as f64)?)?;
            let denom = ((v.sqrt()? * inv_bc2_sqrt as f64)? + EPS as f64)?;
            let delta = ((&*m * step_size as f64)? / denom)?;
            var.set(&(var.as_tensor() - delta)?)?;
        }
        self.update_ema()
    }
}

/// A copy of every variable's values.
fn copies(vars: &[Var]) -> candle_core::Result<Vec<Tensor>> {
    vars.iter().map(|v| v.as_tensor().copy()).collect()
}
