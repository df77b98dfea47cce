//! Neural spline flow (Durkan et al. 2019), as sbi's `nsf`: coupling layers whose
//! transformed half goes through monotonic rational-quadratic splines on `[-B, B]`
//! (identity outside), with knots, heights and slopes predicted from the other half and
//! the context by a residual network. Masks alternate between layers.

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::flows::{ConditionalFlow, normal_noise, softplus, standard_normal_log_prob};
use crate::nn::{Activation, Linear};
use crate::rng::SimRng;

const MIN_BIN: f64 = 1e-3;
const MIN_DERIVATIVE: f64 = 1e-3;

/// Settings of a neural spline flow (defaults as `sbi`'s `nsf`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NsfConfig {
    /// Coupling transforms (5).
    pub transforms: usize,
    /// Hidden units of the conditioner (50).
    pub hidden: usize,
    /// Residual blocks of the conditioner (2).
    pub blocks: usize,
    /// Spline bins (10).
    pub bins: usize,
    /// The spline acts on `[-tail_bound, tail_bound]` (3.0).
    pub tail_bound: f64,
}

impl Default for NsfConfig {
    fn default() -> Self {
        NsfConfig { transforms: 5, hidden: 50, blocks: 2, bins: 10, tail_bound: 3.0 }
    }
}

impl NsfConfig {
    /// Sets the number of transforms.
    pub fn with_transforms(mut self, n: usize) -> Self {
        self.transforms = n;
        self
    }
    /// Sets the conditioner's hidden width.
    pub fn with_hidden(mut self, n: usize) -> Self {
        self.hidden = n;
        self
    }
    /// Sets the number of bins.
    pub fn with_bins(mut self, n: usize) -> Self {
        self.bins = n;
        self
    }
}

/// A residual MLP: `h = W₀ [x, c]`, then blocks `h += W₂ relu(W₁ relu(h))`, then a linear output.
struct ResidualNet {
    input: Linear,
    blocks: Vec<(Linear, Linear)>,
    output: Linear,
}

impl ResidualNet {
    fn new(vb: VarBuilder, inputs: usize, hidden: usize, blocks: usize, outputs: usize) -> candle_core::Result<Self> {
        Ok(ResidualNet {
            input: Linear::new(vb.pp("input"), inputs.max(1), hidden)?,
            blocks: (0..blocks)
                .map(|b| {
                    Ok((
                        Linear::new(vb.pp(format!("block{b}.0")), hidden, hidden)?,
                        Linear::new(vb.pp(format!("block{b}.1")), hidden, hidden)?,
                    ))
                })
                .collect::<candle_core::Result<_>>()?,
            output: Linear::new(vb.pp("output"), hidden, outputs)?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = self.input.forward(x)?;
        for (a, b) in &self.blocks {
            let t = a.forward_act(&h.relu()?, Some(Activation::Relu))?;
            h = (h + b.forward(&t)?)?;
        }
        self.output.forward(&h)
    }
}

struct Coupling {
    net: ResidualNet,
    identity: Vec<u32>,
    transformed: Vec<u32>,
    identity_idx: Tensor,
    transformed_idx: Tensor,
    /// Puts `[identity, transformed]` back in feature order.
    restore_idx: Tensor,
}

/// A neural spline flow.
pub struct Nsf {
    layers: Vec<Coupling>,
    features: usize,
    bins: usize,
    bound: f64,
    hidden_scale: f64,
}

impl Nsf {
    /// Builds the flow for `features` parameters and `context` inputs.
    pub fn new(vb: VarBuilder, c: &NsfConfig, features: usize, context: usize) -> candle_core::Result<Self> {
        let params = 3 * c.bins - 1;
        let layers = (0..c.transforms)
            .map(|t| {
                // Alternating masks (nflows' create_alternating_binary_mask); with one feature
                // the spline is conditioned on the context alone.
                let (transformed, identity): (Vec<u32>, Vec<u32>) = if features == 1 {
                    (vec![0], vec![])
                } else {
                    (0..features as u32).partition(|i| (*i as usize + t) % 2 == 0)
                };
                let mut order: Vec<u32> = identity.iter().chain(&transformed).copied().collect();
                let mut restore = vec![0u32; features];
                for (pos, &f) in order.iter().enumerate() {
                    restore[f as usize] = pos as u32;
                }
                order.clear();
                let net = ResidualNet::new(
                    vb.pp(format!("layer{t}")),
                    identity.len() + context,
                    c.hidden,
                    c.blocks,
                    transformed.len() * params,
                )?;
                Ok(Coupling {
                    net,
                    identity_idx: Tensor::new(identity.as_slice(), &Device::Cpu)?,
                    transformed_idx: Tensor::new(transformed.as_slice(), &Device::Cpu)?,
                    restore_idx: Tensor::new(restore, &Device::Cpu)?,
                    identity,
                    transformed,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Nsf { layers, features, bins: c.bins, bound: c.tail_bound, hidden_scale: 1.0 / (c.hidden as f64).sqrt() })
    }

    fn conditioner_input(&self, layer: &Coupling, x: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        if layer.identity.is_empty() {
            Ok(context.clone())
        } else {
            Tensor::cat(&[&x.index_select(&layer.identity_idx, 1)?, context], 1)
        }
    }

    /// Knot positions `[.., K+1]` from unnormalised bin sizes `[.., K]` (softmax, a minimum
    /// size, cumulative sum, scaled to `[-B, B]`).
    fn knots(&self, unnormalised: &Tensor) -> candle_core::Result<Tensor> {
        let k = self.bins;
        let w = candle_nn::ops::softmax(&(unnormalised * self.hidden_scale)?, D::Minus1)?;
        let w = ((w * (1.0 - MIN_BIN * k as f64))? + MIN_BIN)?;
        let cum = w.cumsum(D::Minus1)?;
        let zeros = cum.narrow(D::Minus1, 0, 1)?.zeros_like()?;
        let cum = Tensor::cat(&[&zeros, &cum], D::Minus1)?;
        // The last knot is B up to rounding: pin it so the bins tile [-B, B] exactly.
        let cum = cum.broadcast_div(&cum.narrow(D::Minus1, k, 1)?)?;
        (cum * (2.0 * self.bound))? - self.bound
    }

    /// The map to base noise with `log |det ∂z/∂x|` per row.
    pub fn forward(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let b = inputs.dim(0)?;
        let (k, p) = (self.bins, 3 * self.bins - 1);
        let mut x = inputs.clone();
        let mut log_det = Tensor::zeros(b, DType::F32, &Device::Cpu)?;
        for layer in &self.layers {
            let m = layer.transformed.len();
            let params = layer.net.forward(&self.conditioner_input(layer, &x, context)?)?.reshape((b, m, p))?;
            let xs = x.index_select(&layer.transformed_idx, 1)?;
            let (y, ld) = self.spline(&xs, &params)?;
            let parts = if layer.identity.is_empty() {
                y
            } else {
                Tensor::cat(&[&x.index_select(&layer.identity_idx, 1)?, &y], 1)?
            };
            x = parts.index_select(&layer.restore_idx, 1)?;
            log_det = (log_det + ld.sum(1)?)?;
            let _ = k;
        }
        Ok((x, log_det))
    }

    /// The rational-quadratic spline of Gregory & Delbourgo (1982) on `[-B, B]`, identity
    /// outside: values `[B, M]`, parameters `[B, M, 3K − 1]`; returns outputs and log-slopes.
    fn spline(&self, x: &Tensor, params: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let k = self.bins;
        let kx = self.knots(&params.narrow(D::Minus1, 0, k)?)?;
        let ky = self.knots(&params.narrow(D::Minus1, k, k)?)?;
        let ud = params.narrow(D::Minus1, 2 * k, k - 1)?;
        // Interior slopes; the end slopes are 1, matching the identity tails.
        let ones = ud.narrow(D::Minus1, 0, 1)?.ones_like()?;
        let d = Tensor::cat(&[&ones, &(softplus(&ud)? + MIN_DERIVATIVE)?, &ones], D::Minus1)?;

        let inside = x.ge(-self.bound)?.mul(&x.le(self.bound)?)?;
        let xc = x.clamp(-self.bound, self.bound)?;
        let xe = xc.unsqueeze(D::Minus1)?;
        let idx = (xe.broadcast_ge(&kx.narrow(D::Minus1, 0, k)?)?.to_dtype(DType::F32)?.sum_keepdim(D::Minus1)? - 1.0)?
            .clamp(0.0, (k - 1) as f64)?
            .to_dtype(DType::U32)?;
        let idx1 = (idx.to_dtype(DType::F32)? + 1.0)?.to_dtype(DType::U32)?;
        let g = |t: &Tensor, i: &Tensor| t.contiguous()?.gather(&i.contiguous()?, D::Minus1)?.squeeze(D::Minus1);
        let (x0, x1) = (g(&kx, &idx)?, g(&kx, &idx1)?);
        let (y0, y1) = (g(&ky, &idx)?, g(&ky, &idx1)?);
        let (d0, d1) = (g(&d, &idx)?, g(&d, &idx1)?);
        let w = (&x1 - &x0)?;
        let h = (&y1 - &y0)?;
        let s = (&h / &w)?;
        let xi = ((&xc - &x0)? / &w)?;
        let xi1 = (1.0 - &xi)?;
        let xx = (&xi * &xi1)?;
        let den = (&s + ((&d1 + &d0)? - (&s * 2.0)?)?.mul(&xx)?)?;
        let num = h.mul(&((&s * xi.sqr()?)? + (&d0 * &xx)?)?)?;
        let y = (y0 + (num / &den)?)?;
        let slope_num = s.sqr()?.mul(&(((&d1 * xi.sqr()?)? + ((&s * 2.0)? * &xx)?)? + (&d0 * xi1.sqr()?)?)?)?;
        let ld = (slope_num.log()? - (den.log()? * 2.0)?)?;
        let y = inside.where_cond(&y, x)?;
        let ld = inside.where_cond(&ld, &ld.zeros_like()?)?;
        Ok((y, ld))
    }

    /// The inverse map `x = f⁻¹(z; context)`, computed in f64 outside the graph.
    pub fn inverse(&self, noise: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let b = noise.dim(0)?;
        let (k, p) = (self.bins, 3 * self.bins - 1);
        let mut z = noise.clone();
        for layer in self.layers.iter().rev() {
            let m = layer.transformed.len();
            // The identity half is unchanged, so the conditioner sees the same input as forward.
            let params = layer.net.forward(&self.conditioner_input(layer, &z, context)?)?.reshape((b, m, p))?;
            let kx: Vec<f32> = self.knots(&params.narrow(D::Minus1, 0, k)?)?.flatten_all()?.to_vec1()?;
            let ky: Vec<f32> = self.knots(&params.narrow(D::Minus1, k, k)?)?.flatten_all()?.to_vec1()?;
            let ud: Vec<f32> =
                (softplus(&params.narrow(D::Minus1, 2 * k, k - 1)?)? + MIN_DERIVATIVE)?.flatten_all()?.to_vec1()?;
            let mut zv: Vec<f32> = z.flatten_all()?.to_vec1()?;
            for r in 0..b {
                for (j, &f) in layer.transformed.iter().enumerate() {
                    let e = r * m + j;
                    let y = zv[r * self.features + f as usize] as f64;
                    let knots_x = &kx[e * (k + 1)..(e + 1) * (k + 1)];
                    let knots_y = &ky[e * (k + 1)..(e + 1) * (k + 1)];
                    let slopes = &ud[e * (k - 1)..(e + 1) * (k - 1)];
                    zv[r * self.features + f as usize] = invert_rqs(y, knots_x, knots_y, slopes, self.bound) as f32;
                }
            }
            z = Tensor::from_vec(zv, (b, self.features), &Device::Cpu)?;
        }
        Ok(z)
    }
}

/// Inverts one rational-quadratic spline at `y` (identity outside `[-B, B]`): the root in
/// `[0, 1]` of the quadratic in ξ (Durkan et al. 2019, eq. 6–8).
fn invert_rqs(y: f64, kx: &[f32], ky: &[f32], interior: &[f32], bound: f64) -> f64 {
    if !(-bound..=bound).contains(&y) {
        return y;
    }
    let k = kx.len() - 1;
    let bin = (0..k).rev().find(|&i| y >= ky[i] as f64).unwrap_or(0);
    let slope = |i: usize| if i == 0 || i == k { 1.0 } else { interior[i - 1] as f64 };
    let (x0, x1, y0, y1) = (kx[bin] as f64, kx[bin + 1] as f64, ky[bin] as f64, ky[bin + 1] as f64);
    let (d0, d1) = (slope(bin), slope(bin + 1));
    let (w, h) = (x1 - x0, y1 - y0);
    let s = h / w;
    let dy = y - y0;
    let a = h * (s - d0) + dy * (d1 + d0 - 2.0 * s);
    let b = h * d0 - dy * (d1 + d0 - 2.0 * s);
    let c = -s * dy;
    let disc = (b * b - 4.0 * a * c).max(0.0);
    let xi = (2.0 * c) / (-b - disc.sqrt());
    x0 + xi.clamp(0.0, 1.0) * w
}

impl ConditionalFlow for Nsf {
    fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let (z, log_det) = self.forward(inputs, context)?;
        standard_normal_log_prob(&z)? + log_det
    }

    fn sample(&self, context: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        self.inverse(&normal_noise(rng, context.dim(0)?, self.features)?, context)
    }
}
