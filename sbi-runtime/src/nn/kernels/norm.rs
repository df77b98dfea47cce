//! GELU (the exact, erf-based one) and layer normalisation, each one op with its
//! hand-written backward pass, for the vector-field network.
//!
//! Why by hand: candle's `gelu_erf` evaluates a scalar, double-precision `erf` per value
//! and differentiates through ten further ops, and a layer norm written with candle's ops is
//! eight ops forward and about twenty backward; in a 100-unit network sampled 500 times per
//! draw those dominated the cost.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};

use super::simd::{exp_f32, vectorised};
use super::{f32_slice, with_values};

/// `erf` as a rational function of `x` clamped to [−4, 4] (the approximation Eigen uses;
/// |error| < 10⁻⁷, below f32's resolution near 1), which the compiler vectorises.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the coefficients as published
pub(crate) fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_258_013_06e-10 + 2.770_681_424_959_02e-08;
    p = x2 * p - 2.101_024_020_825_08e-06;
    p = x2 * p - 5.692_506_394_623_46e-05;
    p = x2 * p - 7.349_906_303_268_55e-04;
    p = x2 * p - 2.954_599_808_540_25e-03;
    p = x2 * p - 1.609_603_332_624_15e-02;
    let mut q = x2 * -1.456_607_184_649_96e-05 - 2.133_740_552_789_05e-04;
    q = x2 * q - 1.682_826_974_382_03e-03;
    q = x2 * q - 7.373_329_167_204_68e-03;
    q = x2 * q - 1.426_473_905_141_89e-02;
    x * p / q
}

/// `x Φ(x)`, Φ the standard normal distribution function.
#[inline(always)]
fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `d/dx x Φ(x) = Φ(x) + x φ(x)`.
#[inline(always)]
fn gelu_grad_f32(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    0.5 * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2)) + x * INV_SQRT_2PI * exp_f32(-0.5 * x * x)
}

vectorised! {
    /// `out = GELU(x)`.
    fn gelu_forward(x: &[f32], out: &mut [f32]) {
        let n = x.len().min(out.len());
        let (x, out) = (&x[..n], &mut out[..n]);
        for i in 0..n {
            out[i] = gelu_f32(x[i]);
        }
    }
}

vectorised! {
    /// `dx = g · GELU′(x)`.
    fn gelu_backward(x: &[f32], g: &[f32], dx: &mut [f32]) {
        let n = x.len().min(g.len()).min(dx.len());
        let (x, g, dx) = (&x[..n], &g[..n], &mut dx[..n]);
        for i in 0..n {
            dx[i] = g[i] * gelu_grad_f32(x[i]);
        }
    }
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, "x")?;
        let mut y = vec![0f32; x.len()];
        gelu_forward(x, &mut y);
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx: Vec<f32> = with_values(arg, |x| {
            with_values(grad, |g| {
                let mut dx = vec![0f32; x.len()];
                gelu_backward(x, g, &mut dx);
                Ok(dx)
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// The exact GELU `x Φ(x)` (PyTorch's `nn.GELU()`), with gradient.
///
/// # Errors
/// A tensor error from candle (a bug: please report it).
pub(crate) fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if super::fused_for(x) { x.contiguous()?.apply_op1(Gelu) } else { x.gelu_erf() }
}

/// PyTorch's `nn.LayerNorm` over the last dimension with ε = 10⁻⁵.
const EPS: f64 = 1e-5;

/// `Σ f(a_k, b_k)` over `a` and `b` in eight independent lanes, which the compiler
/// vectorises (a single running f32 sum is one dependent add per value).
#[inline(always)]
fn lane_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(&a, &b)| f(a, b)).sum();
    for (x, y) in ca.zip(cb) {
        for ((l, &a), &b) in lanes.iter_mut().zip(x).zip(y) {
            *l += f(a, b);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `Σ f(v)` over `row` (as [`lane_sum2`]).
#[inline(always)]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    lane_sum2(row, row, |v, _| f(v))
}

/// A row's mean and `1/√(var + ε)` (biased variance, as PyTorch), two passes in f32 (the
/// rows are a network's hidden units, a hundred or so).
#[inline(always)]
fn row_moments(row: &[f32]) -> (f32, f32) {
    let n = row.len().max(1) as f32;
    let mean = lane_sum(row, |v| v) / n;
    let var = lane_sum(row, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + EPS as f32).sqrt())
}

/// Layer normalisation `(x − μ)/√(σ² + ε) · g + b` over each row of `x` `[B, H]`, with
/// gain `g` and bias `b` `[1, H]`.
struct LayerNorm;

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
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
        let (_, h) = l1.shape().dims2()?;
        if l2.shape().elem_count() != h || l3.shape().elem_count() != h {
            candle_core::bail!("layer norm: x {:?}, gain {:?}, bias {:?}", l1.shape(), l2.shape(), l3.shape());
        }
        let (x, g, b) = (f32_slice(s1, l1, "x")?, f32_slice(s2, l2, "gain")?, f32_slice(s3, l3, "bias")?);
        let mut y = vec![0f32; x.len()];
        layer_norm_forward(x, g, b, h, &mut y);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gain: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, h) = x.dims2()?;
        let mut dx = vec![0f32; x.elem_count()];
        let mut dg = vec![0f32; h];
        let mut db = vec![0f32; h];
        with_values(x, |x| {
            with_values(gain, |g| {
                with_values(grad, |dy| {
                    layer_norm_backward(x, g, dy, h, &mut dx, &mut dg, &mut db);
                    Ok(())
                })
            })
        })?;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dg, gain.shape(), gain.device())?),
            Some(Tensor::from_vec(db, gain.shape(), gain.device())?),
        ))
    }
}

vectorised! {
    /// Layer normalisation of rows `x` `[B, h]` with gain `g` and bias `b` into `y`.
    fn layer_norm_forward(x: &[f32], g: &[f32], b: &[f32], h: usize, y: &mut [f32]) {
        let h = h.max(1);
        let (g, b) = (&g[..h], &b[..h]);
        for (row, out) in x.chunks_exact(h).zip(y.chunks_exact_mut(h)) {
            let (mean, r) = row_moments(row);
            let (row, out) = (&row[..h], &mut out[..h]);
            for k in 0..h {
                out[k] = (row[k] - mean) * r * g[k] + b[k];
            }
        }
    }
}

vectorised! {
    /// Layer normalisation's gradients for rows `x` `[B, h]`, gain `g` and the output's
    /// gradient `dy`: with x̂ = (x − μ) r and d = dy·g, `dx = r (d − mean(d) − x̂ mean(d x̂))`,
    /// `dg += Σ_rows dy x̂` and `db += Σ_rows dy`; each pass a loop the compiler vectorises.
    fn layer_norm_backward(
        x: &[f32],
        g: &[f32],
        dy: &[f32],
        h: usize,
        dx: &mut [f32],
        dg: &mut [f32],
        db: &mut [f32],
    ) {
        let h = h.max(1);
        let (g, dg, db) = (&g[..h], &mut dg[..h], &mut db[..h]);
        let (mut xhat, mut d) = (vec![0f32; h], vec![0f32; h]);
        for ((row, dy), dx) in x.chunks_exact(h).zip(dy.chunks_exact(h)).zip(dx.chunks_exact_mut(h)) {
            let (mean, r) = row_moments(row);
            let (row, dy, dx) = (&row[..h], &dy[..h], &mut dx[..h]);
            for k in 0..h {
                xhat[k] = (row[k] - mean) * r;
                d[k] = dy[k] * g[k];
                dg[k] += dy[k] * xhat[k];
                db[k] += dy[k];
            }
            let mean_d = lane_sum(&d, |v| v) / h as f32;
            let mean_dx = lane_sum2(&d, &xhat, |a, b| a * b) / h as f32;
            for k in 0..h {
                dx[k] = r * (d[k] - mean_d - xhat[k] * mean_dx);
            }
        }
    }
}

/// Layer normalisation over the last dimension of `x` `[B, H]` (PyTorch's `nn.LayerNorm`,
/// ε = 10⁻⁵) with `gain` and `bias` `[1, H]`: one op on the CPU, candle's ops elsewhere.
///
/// # Errors
/// A tensor error when the shapes disagree (a bug: please report it).
pub(crate) fn layer_norm(x: &Tensor, gain: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    if super::fused_for(x) {
        return x.contiguous()?.apply_op3(&gain.contiguous()?, &bias.contiguous()?, LayerNorm);
    }
    let mean = x.mean_keepdim(candle_core::D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
    centred.broadcast_div(&(var + EPS)?.sqrt()?)?.broadcast_mul(gain)?.broadcast_add(bias)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels (their AVX2 copy on a CPU that has it) give the same bits as the same
    /// formulas applied one value or one row at a time in this test, compiled for the
    /// baseline: the dispatch changes the speed, not the results.
    #[test]
    fn vectorised_kernels_match_the_baseline_bit_for_bit() {
        let (rows, h) = (5, 37);
        let values = |seed: usize| -> Vec<f32> {
            (0..rows * h).map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 200.0 - 5.0).collect()
        };
        let (x, dy) = (values(1), values(2));
        let (g, b) = (values(3)[..h].to_vec(), values(4)[..h].to_vec());

        let mut out = vec![0f32; x.len()];
        gelu_forward(&x, &mut out);
        let one_by_one: Vec<f32> = x.iter().map(|&v| gelu_f32(v)).collect();
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            one_by_one.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );

        gelu_backward(&x, &dy, &mut out);
        let one_by_one: Vec<f32> = x.iter().zip(&dy).map(|(&x, &d)| d * gelu_grad_f32(x)).collect();
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            one_by_one.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );

        layer_norm_forward(&x, &g, &b, h, &mut out);
        let mut by_rows = Vec::new();
        for row in x.chunks_exact(h) {
            let (mean, r) = row_moments(row);
            by_rows.extend(row.iter().zip(&g).zip(&b).map(|((v, g), b)| (v - mean) * r * g + b));
        }
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            by_rows.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}
