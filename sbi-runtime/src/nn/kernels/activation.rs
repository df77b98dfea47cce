//! Activations: ReLU and a fast, vectorisable tanh with its gradient (a CPU kernel; plain
//! candle `tanh` elsewhere).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// `tanh` as a rational approximation (the one Eigen uses; |error| < 4e-7 on f32), which the
/// compiler vectorises; libm's scalar `tanhf` made it the most expensive op of a flow.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the coefficients as published
pub(crate) fn tanh_f32(x: f32) -> f32 {
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = x2 * -2.760_768_5e-16 + 2.000_187_9e-13;
    p = x2 * p - 8.604_671_5e-11;
    p = x2 * p + 5.122_297e-8;
    p = x2 * p + 1.485_722_4e-5;
    p = x2 * p + 6.372_619_3e-4;
    p = x2 * p + 4.893_524_6e-3;
    let mut q = x2 * 1.198_258_4e-6 + 1.185_347e-4;
    q = x2 * q + 2.268_434_6e-3;
    q = x2 * q + 4.893_525e-3;
    x * p / q
}

struct FastTanh;

impl CustomOp1 for FastTanh {
    fn name(&self) -> &'static str {
        "fast-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(values) = storage else { candle_core::bail!("fast-tanh expects f32") };
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("fast-tanh expects a contiguous input")
        };
        let out: Vec<f32> = values[a..b].iter().map(|&x| tanh_f32(x)).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.mul(&(1.0 - res.sqr()?)?)?))
    }
}

/// Element-wise tanh with gradient.
///
/// # Errors
/// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
/// model file: please report it).
pub fn tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    if super::fused_for(x) { x.contiguous()?.apply_op1(FastTanh) } else { x.tanh() }
}

/// A hidden-layer activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Hyperbolic tangent (sbi's MAF).
    #[default]
    Tanh,
    /// Rectified linear unit (sbi's NSF, MDN and classifiers).
    Relu,
}

impl Activation {
    /// Applies the activation.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Tanh => tanh(x),
            Activation::Relu => x.relu(),
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn fast_tanh_is_accurate_and_differentiable() {
        let mut worst = 0f32;
        for i in -4000..=4000 {
            let x = i as f32 * 0.004;
            worst = worst.max((tanh_f32(x) - x.tanh()).abs());
        }
        assert!(worst < 1e-6, "max error {worst}");
        assert_eq!(tanh_f32(100.0), tanh_f32(7.905_311));
        let x = Var::new(&[0.3f32, -1.2, 2.0], &Device::Cpu).unwrap();
        let y = tanh(x.as_tensor()).unwrap().sum_all().unwrap();
        let g = y.backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        for (gi, xi) in g.iter().zip([0.3f32, -1.2, 2.0]) {
            assert!((gi - (1.0 - xi.tanh().powi(2))).abs() < 1e-6);
        }
    }
}
