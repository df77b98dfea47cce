//! One MAF step (an affine map with softplus scales, a column reordering and its
//! log-determinant) as one op with its hand-written backward pass.

use std::sync::Arc;

use candle_core::{CpuStorage, Layout, Shape, Tensor};

use super::{f32_slice, with_values};

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
