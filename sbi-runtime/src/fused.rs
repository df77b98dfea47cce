//! Fused CPU kernels for small networks: a dense layer `y = act(x (W∘M)ᵀ + b)` as one
//! candle op with a hand-written backward pass, and an in-place Adam update with global
//! gradient-norm clipping.
//!
//! Why by hand: candle builds one tensor (and one allocation) per elementary operation. A
//! layer written with candle's ops (mask, transpose, matmul, bias, activation) costs about
//! ten ops forward and as many backward, and candle-nn's Adam about fifteen per parameter
//! tensor per step; for the 50-unit networks of `sbi` that bookkeeping, not arithmetic, was
//! most of a training step. Here each layer is one op in each direction, calling the same
//! `gemm` crate candle uses, and Adam is one pass over each parameter's memory.
//!
//! Matrix products split work over output tiles only (never over the summed dimension), so
//! results do not depend on the number of threads.

use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CustomOp3, InplaceOp1, Layout, Shape, Storage, Tensor, Var};

use crate::nn::Activation;

/// A matrix view: element `(i, j)` at `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View { data, rows, cols, rs: cols, cs: 1 }
    }

    fn t(self) -> Self {
        View { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    fn fits(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst [m, n] (row-major) = (accumulate ? dst : 0) + a [m, k] · b [k, n]`.
fn matmul_into(dst: &mut [f32], a: View, b: View, accumulate: bool) -> candle_core::Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || dst.len() != m * n || !a.fits() || !b.fits() {
        candle_core::bail!("fused matmul: [{m}, {k}] · [{}, {n}] into {} values", b.rows, dst.len());
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return Ok(());
    }
    // Threads only pay off on large products; gemm splits over output tiles either way.
    let threads = candle_core::utils::get_num_threads();
    let parallelism =
        if threads > 1 && m * n * k >= 1 << 18 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the views were checked to lie inside their slices (`fits`) and `dst` holds
    // exactly m·n values with row stride n; the three do not alias (dst is `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// The f32 values of a contiguous CPU tensor (copied only when it is not contiguous).
fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> candle_core::Result<R>) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
        candle_core::bail!("fused op: expected an f32 CPU tensor")
    };
    let (a, b) =
        layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("fused op: not contiguous".into()))?;
    f(&v[a..b])
}

/// The contiguous f32 values of a custom op's input (`what` names it in errors).
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("fused op: {what} must be f32") };
    let (a, b) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{what} not contiguous")))?;
    Ok(&v[a..b])
}

/// `act(x (W∘M)ᵀ + b)` as a single op: `x` `[B, in]`, `W` `[out, in]`, `b` `[1, out]`.
pub(crate) struct Dense {
    /// 0/1 mask `[out, in]` (MADE), or none.
    pub mask: Option<Arc<[f32]>>,
    /// The activation applied to the result, or none.
    pub activation: Option<Activation>,
}

impl Dense {
    fn masked<'a>(&self, w: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
        match &self.mask {
            Some(m) => w.iter().zip(m.iter()).map(|(w, m)| w * m).collect::<Vec<f32>>().into(),
            None => w.into(),
        }
    }
}

impl CustomOp3 for Dense {
    fn name(&self) -> &'static str {
        "fused-dense"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (batch, inputs) = l1.shape().dims2()?;
        let (outputs, w_in) = l2.shape().dims2()?;
        if w_in != inputs || l3.shape().elem_count() != outputs {
            candle_core::bail!("fused dense: x {:?}, W {:?}, b {:?}", l1.shape(), l2.shape(), l3.shape());
        }
        let (x, w, b) = (f32_slice(s1, l1, "x")?, f32_slice(s2, l2, "W")?, f32_slice(s3, l3, "b")?);
        let w = self.masked(w);
        let mut y: Vec<f32> = Vec::with_capacity(batch * outputs);
        for _ in 0..batch {
            y.extend_from_slice(b);
        }
        matmul_into(&mut y, View::row_major(x, batch, inputs), View::row_major(&w, outputs, inputs).t(), true)?;
        match self.activation {
            Some(Activation::Tanh) => y.iter_mut().for_each(|v| *v = crate::nn::tanh_f32(*v)),
            Some(Activation::Relu) => y.iter_mut().for_each(|v| *v = v.max(0.0)),
            None => {}
        }
        Ok((CpuStorage::F32(y), Shape::from((batch, outputs))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (batch, inputs) = x.dims2()?;
        let outputs = w.dim(0)?;
        // The gradient with respect to the pre-activation.
        let ga: Vec<f32> = with_values(grad, |g| {
            with_values(res, |y| {
                Ok(match self.activation {
                    Some(Activation::Tanh) => g.iter().zip(y).map(|(g, y)| g * (1.0 - y * y)).collect(),
                    Some(Activation::Relu) => g.iter().zip(y).map(|(g, y)| if *y > 0.0 { *g } else { 0.0 }).collect(),
                    None => g.to_vec(),
                })
            })
        })?;
        let ga_view = View::row_major(&ga, batch, outputs);
        let dx = if x.track_op() {
            let mut dx = vec![0f32; batch * inputs];
            with_values(w, |w| {
                let w = self.masked(w);
                matmul_into(&mut dx, ga_view, View::row_major(&w, outputs, inputs), false)
            })?;
            Some(Tensor::from_vec(dx, (batch, inputs), x.device())?)
        } else {
            None
        };
        let mut dw = vec![0f32; outputs * inputs];
        with_values(x, |x| matmul_into(&mut dw, ga_view.t(), View::row_major(x, batch, inputs), false))?;
        if let Some(m) = &self.mask {
            dw.iter_mut().zip(m.iter()).for_each(|(d, m)| *d *= m);
        }
        let mut db = vec![0f32; outputs];
        for row in ga.chunks_exact(outputs.max(1)) {
            db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
        }
        Ok((
            dx,
            Some(Tensor::from_vec(dw, (outputs, inputs), w.device())?),
            Some(Tensor::from_vec(db, (1, outputs), w.device())?),
        ))
    }
}

/// `log(1 + eˣ)`, stable for large |x|.
#[inline]
fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// One MAF step as a single op: from `z` `[B, D]` and the MADE's output `[B, 2D]` (the
/// unconstrained scales `u`, then the shifts `t`), computes `z' = z·s + t` with
/// `s = softplus(u) + 10⁻³`, reorders its columns by `perm` and appends `Σ log s`:
/// the result is `[B, D + 1]`.
pub(crate) struct AffineStep {
    /// Output column `j` is feature `perm[j]`.
    pub perm: Arc<[u32]>,
}

impl AffineStep {
    const MIN_SCALE: f32 = 1e-3;
}

impl candle_core::CustomOp2 for AffineStep {
    fn name(&self) -> &'static str {
        "fused-affine-step"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (batch, d) = l1.shape().dims2()?;
        if l2.shape().dims2()? != (batch, 2 * d) || self.perm.len() != d {
            candle_core::bail!(
                "affine step: z {:?}, params {:?}, {} permuted",
                l1.shape(),
                l2.shape(),
                self.perm.len()
            );
        }
        let (z, p) = (f32_slice(s1, l1, "z")?, f32_slice(s2, l2, "params")?);
        let mut out = vec![0f32; batch * (d + 1)];
        let mut moved = vec![0f32; d];
        for ((z, p), out) in z.chunks_exact(d).zip(p.chunks_exact(2 * d)).zip(out.chunks_exact_mut(d + 1)) {
            let mut log_det = 0f32;
            for k in 0..d {
                let s = softplus(p[k]) + Self::MIN_SCALE;
                moved[k] = z[k] * s + p[d + k];
                log_det += s.ln();
            }
            for (o, &j) in out.iter_mut().zip(self.perm.iter()) {
                *o = moved[j as usize];
            }
            out[d] = log_det;
        }
        Ok((CpuStorage::F32(out), Shape::from((batch, d + 1))))
    }

    fn bwd(
        &self,
        z: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (batch, d) = z.dims2()?;
        let mut dz = vec![0f32; batch * d];
        let mut dp = vec![0f32; batch * 2 * d];
        with_values(z, |zv| {
            with_values(params, |pv| {
                with_values(grad, |gv| {
                    let rows = zv.chunks_exact(d).zip(pv.chunks_exact(2 * d)).zip(gv.chunks_exact(d + 1));
                    for (((z, p), g), (dz, dp)) in rows.zip(dz.chunks_exact_mut(d).zip(dp.chunks_exact_mut(2 * d))) {
                        let g_log_det = g[d];
                        for (j, &k) in self.perm.iter().enumerate() {
                            let k = k as usize;
                            let (u, gk) = (p[k], g[j]);
                            let s = softplus(u) + Self::MIN_SCALE;
                            dz[k] = gk * s;
                            dp[k] = (gk * z[k] + g_log_det / s) * sigmoid(u);
                            dp[d + k] = gk;
                        }
                    }
                    Ok(())
                })
            })
        })?;
        let dz = if z.track_op() { Some(Tensor::from_vec(dz, (batch, d), z.device())?) } else { None };
        Ok((dz, Some(Tensor::from_vec(dp, (batch, 2 * d), params.device())?)))
    }
}

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
    m: Vec<Vec<f32>>,
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

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn reference(x: &Tensor, w: &Tensor, b: &Tensor, mask: Option<&Tensor>, act: Option<Activation>) -> Tensor {
        let w = match mask {
            Some(m) => (w * m).unwrap(),
            None => w.clone(),
        };
        let y = x.matmul(&w.t().unwrap()).unwrap().broadcast_add(b).unwrap();
        match act {
            Some(Activation::Tanh) => y.tanh().unwrap(),
            Some(Activation::Relu) => y.relu().unwrap(),
            None => y,
        }
    }

    /// Seeded standard normal values `[rows, cols]`.
    fn noise(seed: u64, rows: usize, cols: usize) -> Tensor {
        crate::flows::normal_noise(&mut crate::rng::stream_rng(seed, 0), rows, cols).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Forward values and all three gradients agree with candle's own ops.
    #[test]
    fn dense_matches_candle_ops() {
        let dev = Device::Cpu;
        let (batch, inputs, outputs) = (7, 5, 4);
        let x = Var::from_tensor(&noise(4, batch, inputs)).unwrap();
        let w = Var::from_tensor(&noise(5, outputs, inputs)).unwrap();
        let b = Var::from_tensor(&noise(6, 1, outputs)).unwrap();
        let mask_values: Vec<f32> = (0..outputs * inputs).map(|i| ((i * 7) % 3 != 0) as u8 as f32).collect();
        let mask_tensor = Tensor::from_vec(mask_values.clone(), (outputs, inputs), &dev).unwrap();
        let weights = noise(7, batch, outputs);
        for act in [None, Some(Activation::Tanh), Some(Activation::Relu)] {
            for masked in [false, true] {
                let op = Dense { mask: masked.then(|| mask_values.clone().into()), activation: act };
                let fused = x.as_tensor().apply_op3(w.as_tensor(), b.as_tensor(), op).unwrap();
                let plain = reference(x.as_tensor(), w.as_tensor(), b.as_tensor(), masked.then_some(&mask_tensor), act);
                assert!(max_diff(&fused, &plain) < 1e-5, "forward {act:?} masked={masked}");
                let gf = (&fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                let gp = (&plain * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                for v in [&x, &w, &b] {
                    let d = max_diff(gf.get(v.as_tensor()).unwrap(), gp.get(v.as_tensor()).unwrap());
                    assert!(d < 1e-4, "gradient {act:?} masked={masked}: {d}");
                }
            }
        }
    }

    /// The fused affine step agrees with candle's ops, values and gradients.
    #[test]
    fn affine_step_matches_candle_ops() {
        let dev = Device::Cpu;
        let (batch, d) = (6, 3);
        let z = Var::from_tensor(&noise(1, batch, d)).unwrap();
        let p = Var::from_tensor(&(noise(2, batch, 2 * d) * 2.0).unwrap()).unwrap();
        let perm = [2u32, 0, 1];
        let op = AffineStep { perm: perm.to_vec().into() };
        let fused = z.as_tensor().apply_op2(p.as_tensor(), op).unwrap();
        let u = p.as_tensor().narrow(1, 0, d).unwrap();
        let s = (crate::flows::softplus(&u).unwrap() + 1e-3).unwrap();
        let moved = ((z.as_tensor() * &s).unwrap() + p.as_tensor().narrow(1, d, d).unwrap()).unwrap();
        let idx = Tensor::new(&perm, &dev).unwrap();
        let plain =
            Tensor::cat(&[moved.index_select(&idx, 1).unwrap(), s.log().unwrap().sum_keepdim(1).unwrap()], 1).unwrap();
        assert!(max_diff(&fused, &plain) < 1e-5);
        let weights = noise(3, batch, d + 1);
        let gf = (&fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (&plain * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&z, &p] {
            let diff = max_diff(gf.get(v.as_tensor()).unwrap(), gp.get(v.as_tensor()).unwrap());
            assert!(diff < 1e-4, "{diff}");
        }
    }

    /// The fused Adam follows the textbook update (one parameter, hand-computed steps).
    #[test]
    fn adam_matches_the_textbook_update() {
        let p = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![p.clone()], 0.1, None);
        let (mut m, mut v, mut theta) = ([0f64; 2], [0f64; 2], [1.0f64, -2.0]);
        for t in 1..=3 {
            let loss = p.as_tensor().sqr().unwrap().sum_all().unwrap();
            adam.step(&[loss.backward().unwrap()]).unwrap();
            for i in 0..2 {
                let g = 2.0 * theta[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                theta[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got = p.as_tensor().to_vec1::<f32>().unwrap();
        for i in 0..2 {
            assert!((got[i] as f64 - theta[i]).abs() < 1e-5, "{got:?} vs {theta:?}");
        }
    }

    /// Gradients given in parts are added before the update.
    #[test]
    fn adam_adds_gradient_parts() {
        let run = |split: bool| {
            let p = Var::new(&[1.0f32, -2.0, 0.5], &Device::Cpu).unwrap();
            let mut adam = Adam::new(vec![p.clone()], 0.05, Some(1.0));
            for _ in 0..3 {
                let a = p.as_tensor().sqr().unwrap().sum_all().unwrap();
                let b = (p.as_tensor() * 3.0).unwrap().sum_all().unwrap();
                if split {
                    adam.step(&[a.backward().unwrap(), b.backward().unwrap()]).unwrap();
                } else {
                    adam.step(&[(a + b).unwrap().backward().unwrap()]).unwrap();
                }
            }
            p.as_tensor().to_vec1::<f32>().unwrap()
        };
        let (split, whole) = (run(true), run(false));
        for (s, w) in split.iter().zip(&whole) {
            assert!((s - w).abs() < 1e-6, "{split:?} vs {whole:?}");
        }
    }

    /// Clipping scales the whole gradient to the maximal norm before the update.
    #[test]
    fn clipping_bounds_the_global_norm() {
        // Adam's first step is ±lr per coordinate whatever the gradient's scale, so compare
        // the first moment instead: m = 0.1 · g_clipped.
        let p = Var::new(&[3.0f32, 4.0], &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![p.clone()], 0.1, Some(1.0));
        let loss = p.as_tensor().sqr().unwrap().sum_all().unwrap(); // gradient (6, 8), norm 10
        adam.step(&[loss.backward().unwrap()]).unwrap();
        let m = &adam.m[0];
        assert!((m[0] - 0.1 * 0.6).abs() < 1e-6 && (m[1] - 0.1 * 0.8).abs() < 1e-6, "{m:?}");
    }
}
