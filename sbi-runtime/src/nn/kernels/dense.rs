//! The dense layer `y = act(x (W∘M)ᵀ + b)` as one op with its hand-written backward pass.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::activation::{Activation, tanh_f32};
use super::{View, f32_slice, matmul_into, with_values};

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
            Some(Activation::Tanh) => y.iter_mut().for_each(|v| *v = tanh_f32(*v)),
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
