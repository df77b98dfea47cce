//! Neural spline flow (Durkan et al. 2019), as sbi's `nsf`: coupling layers whose
//! transformed half goes through monotonic rational-quadratic splines on `[-B, B]`
//! (identity outside), with knots, heights and slopes predicted from the other half and
//! the context by a residual network. Masks alternate between layers.

use candle_core::{D, DType, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::estimators::density::{
    ConditionalFlow, EstimatorConfig, check_sizes, normal_noise, softplus, standard_normal_log_prob,
};
use crate::nn::ResidualNet;
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
    /// The spline acts on `[-tail_bound, tail_bound]` (3.0, as `sbi`), in z-scored units;
    /// outside, every layer is the identity. So base noise beyond the bound comes out
    /// unchanged: whatever the context, each parameter keeps at least `2Φ(−B)` of its mass
    /// (0.27% at 3) more than `B` training standard deviations from the training mean. For a
    /// posterior much narrower than the prior these draws inflate moments (a 50-trial
    /// posterior's sd came out 0.21 against 0.10), though quantiles stay right (the
    /// interquartile sd was 0.09). A bound of 5 leaves `6·10⁻⁷` there; with the same bins
    /// the C2ST moved from 0.542 to 0.559 on two_moons and from 0.881 to 0.866 on slcp
    /// (observations 1–5, one seed each, 10,000 simulations): within noise, so 3 stays.
    pub tail_bound: f64,
}

impl Default for NsfConfig {
    fn default() -> Self {
        NsfConfig { transforms: 5, hidden: 50, blocks: 2, bins: 10, tail_bound: 3.0 }
    }
}

impl EstimatorConfig for NsfConfig {
    fn name(&self) -> &'static str {
        "nsf"
    }

    fn validate(&self, features: usize) -> crate::error::Result<()> {
        let ok = self.transforms > 0
            && self.hidden > 0
            && self.bins >= 2
            && self.tail_bound > 0.0
            && self.tail_bound.is_finite();
        check_sizes(ok, self, features, "sizes must be positive, with at least 2 bins and a positive finite tail bound")
    }

    fn build(
        &self,
        vb: VarBuilder,
        features: usize,
        context: usize,
        _seed: u64,
    ) -> candle_core::Result<Box<dyn ConditionalFlow>> {
        Ok(Box::new(Nsf::new(vb, self, features, context)?))
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
    /// Sets the bound of the splines' interval (see [`NsfConfig::tail_bound`]).
    pub fn with_tail_bound(mut self, bound: f64) -> Self {
        self.tail_bound = bound;
        self
    }
    /// Sets the number of bins.
    pub fn with_bins(mut self, n: usize) -> Self {
        self.bins = n;
        self
    }
}

#[derive(Debug)]
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
#[derive(Debug)]
pub struct Nsf {
    layers: Vec<Coupling>,
    features: usize,
    bins: usize,
    bound: f64,
    hidden_scale: f64,
}

impl Nsf {
    /// Builds the flow for `features` parameters and `context` inputs.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn new(vb: VarBuilder, c: &NsfConfig, features: usize, context: usize) -> candle_core::Result<Self> {
        let params = 3 * c.bins - 1;
        let layers = (0..c.transforms)
            .map(|t| {
                // Alternating masks (nflows' create_alternating_binary_mask); with one feature
                // the spline is conditioned on the context alone.
                let (transformed, identity): (Vec<u32>, Vec<u32>) = if features == 1 {
                    (vec![0], vec![])
                } else {
                    (0..features as u32).partition(|i| (*i as usize + t).is_multiple_of(2))
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
                    identity_idx: Tensor::new(identity.as_slice(), vb.device())?,
                    transformed_idx: Tensor::new(transformed.as_slice(), vb.device())?,
                    restore_idx: Tensor::new(restore, vb.device())?,
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
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn forward(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let b = inputs.dim(0)?;
        let (k, p) = (self.bins, 3 * self.bins - 1);
        let mut x = inputs.clone();
        let mut log_det = Tensor::zeros(b, DType::F32, inputs.device())?;
        for layer in &self.layers {
            let m = layer.transformed.len();
            let params = layer.net.forward(&self.conditioner_input(layer, &x, context)?)?.reshape((b, m, p))?;
            let xs = x.index_select(&layer.transformed_idx, 1)?;
            let (y, ld) = if crate::nn::kernels::fused_for(&xs) {
                // The whole spline, values and gradients, in one op (see `RqSplineOp`).
                let op = RqSplineOp::new(k, self.bound, self.hidden_scale);
                let out = xs.contiguous()?.apply_op2(&params.contiguous()?, op)?;
                (out.narrow(1, 0, m)?.contiguous()?, out.narrow(1, m, m)?)
            } else {
                self.spline(&xs, &params)?
            };
            let parts = if layer.identity.is_empty() {
                y
            } else {
                Tensor::cat(&[&x.index_select(&layer.identity_idx, 1)?, &y], 1)?
            };
            x = parts.index_select(&layer.restore_idx, 1)?;
            log_det = (log_det + ld.sum(1)?)?;
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
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
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
            z = Tensor::from_vec(zv, (b, self.features), noise.device())?;
        }
        Ok(z)
    }
}

/// The rational-quadratic spline of [`Nsf::spline`] as one CPU op with a hand-written
/// backward pass: candle spends about sixty small ops on the spline of every coupling layer,
/// which made it most of an NSF training step. Inputs `x` `[B, M]` and the conditioner's
/// output `[B, M, 3K − 1]`; output `[B, 2M]`: the transformed values, then the log-slopes.
/// Computed in f64 per element; the forward pass keeps what the backward pass needs.
struct RqSplineOp {
    bins: usize,
    bound: f64,
    hidden_scale: f64,
    /// Per element (inside the bound), from the forward pass: see [`RqSplineOp::record_len`].
    saved: std::sync::Mutex<Vec<f64>>,
}

impl RqSplineOp {
    fn new(bins: usize, bound: f64, hidden_scale: f64) -> Self {
        RqSplineOp { bins, bound, hidden_scale, saved: std::sync::Mutex::new(Vec::new()) }
    }

    /// A record: the width and height softmaxes (2K), their cumulative bin sizes (2K + 2),
    /// then the bin and its knot `(x0, x1, y0, y1, d0, d1)` (7).
    fn record_len(&self) -> usize {
        4 * self.bins + 2 + 7
    }

    /// Fills `rec` for parameters `p` and an input `x` inside the bound.
    fn fill(&self, p: &[f32], x: f64, rec: &mut [f64]) {
        let k = self.bins;
        let (sm, rest) = rec.split_at_mut(2 * k);
        let (cum, knot) = rest.split_at_mut(2 * k + 2);
        let mut edges = [0.0; 2];
        for half in 0..2 {
            let logits = &p[half * k..(half + 1) * k];
            let sm = &mut sm[half * k..(half + 1) * k];
            let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l)) as f64 * self.hidden_scale;
            let mut total = 0.0;
            for (s, &l) in sm.iter_mut().zip(logits) {
                *s = (l as f64 * self.hidden_scale - max).exp();
                total += *s;
            }
            let cum = &mut cum[half * (k + 1)..(half + 1) * (k + 1)];
            cum[0] = 0.0;
            for j in 0..k {
                sm[j] /= total;
                cum[j + 1] = cum[j] + sm[j] * (1.0 - MIN_BIN * k as f64) + MIN_BIN;
            }
            edges[half] = cum[k];
        }
        let knot_at = |half: usize, j: usize| -self.bound + 2.0 * self.bound * cum[half * (k + 1) + j] / edges[half];
        // The bin (as the candle version: knots 0..K at or below x, minus one).
        let count = (0..k).filter(|&j| x >= knot_at(0, j)).count();
        let i = count.saturating_sub(1).min(k - 1);
        // Slopes: 1 at both ends, softplus(u) + min inside; only the bin's two are needed.
        let slope =
            |j: usize| if j == 0 || j == k { 1.0 } else { softplus64(p[2 * k + j - 1] as f64) + MIN_DERIVATIVE };
        let values =
            [i as f64, knot_at(0, i), knot_at(0, i + 1), knot_at(1, i), knot_at(1, i + 1), slope(i), slope(i + 1)];
        knot.copy_from_slice(&values);
    }
}

fn softplus64(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The spline's value and log-slope inside `[-B, B]` at `x`, in bin `(x0, x1, y0, y1, d0, d1)`;
/// with `grads = Some((gy, gl))`, also the gradients of `gy·y + gl·ld` with respect to
/// `(x, x0, x1, y0, y1, d0, d1)`.
fn rqs_element(x: f64, knot: [f64; 6], grads: Option<(f64, f64)>) -> (f64, f64, [f64; 7]) {
    let [x0, x1, y0, y1, d0, d1] = knot;
    let (w, h) = (x1 - x0, y1 - y0);
    let s = h / w;
    let xi = (x - x0) / w;
    let om = 1.0 - xi;
    let xx = xi * om;
    let c = d1 + d0 - 2.0 * s;
    let den = s + c * xx;
    let u = s * xi * xi + d0 * xx;
    let num = h * u;
    let y = y0 + num / den;
    let t = d1 * xi * xi + 2.0 * s * xx + d0 * om * om;
    let sn = s * s * t;
    let ld = sn.ln() - 2.0 * den.ln();
    let Some((gy, gl)) = grads else { return (y, ld, [0.0; 7]) };
    // Reverse-mode through the expressions above, in reverse order.
    let (mut g_s, mut g_xi, mut g_xx, mut g_om, mut g_h, mut g_d0, mut g_d1) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let mut g_y0 = gy;
    let g_num = gy / den;
    let g_den = -gy * num / (den * den) - 2.0 * gl / den;
    let g_sn = gl / sn;
    g_s += g_sn * 2.0 * s * t;
    let g_t = g_sn * s * s;
    g_d1 += g_t * xi * xi;
    g_xi += g_t * 2.0 * d1 * xi;
    g_s += g_t * 2.0 * xx;
    g_xx += g_t * 2.0 * s;
    g_d0 += g_t * om * om;
    g_om += g_t * 2.0 * d0 * om;
    g_h += g_num * u;
    let g_u = g_num * h;
    g_s += g_u * xi * xi;
    g_xi += g_u * 2.0 * s * xi;
    g_d0 += g_u * xx;
    g_xx += g_u * d0;
    g_s += g_den;
    let g_c = g_den * xx;
    g_xx += g_den * c;
    g_d1 += g_c;
    g_d0 += g_c;
    g_s -= 2.0 * g_c;
    g_xi += g_xx * om;
    g_om += g_xx * xi;
    g_xi -= g_om;
    let g_x = g_xi / w;
    let mut g_x0 = -g_xi / w;
    let mut g_w = -g_xi * xi / w;
    g_h += g_s / w;
    g_w -= g_s * s / w;
    let g_y1 = g_h;
    g_y0 -= g_h;
    let g_x1 = g_w;
    g_x0 -= g_w;
    (y, ld, [g_x, g_x0, g_x1, g_y0, g_y1, g_d0, g_d1])
}

impl candle_core::CustomOp2 for RqSplineOp {
    fn name(&self) -> &'static str {
        "fused-rq-spline"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (b, m) = l1.shape().dims2()?;
        let p = 3 * self.bins - 1;
        if l2.shape().dims() != [b, m, p] {
            candle_core::bail!("rq spline: x {:?}, params {:?}", l1.shape(), l2.shape());
        }
        let (x, params) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let mut out = vec![0f32; b * 2 * m];
        let rl = self.record_len();
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        saved.clear();
        saved.resize(b * m * rl, 0.0);
        for (e, ((&xv, p), rec)) in x.iter().zip(params.chunks_exact(p)).zip(saved.chunks_exact_mut(rl)).enumerate() {
            let (r, j) = (e / m, e % m);
            let xv = xv as f64;
            let (y, ld) = if (-self.bound..=self.bound).contains(&xv) {
                self.fill(p, xv, rec);
                let knot: [f64; 6] = rec[rl - 6..].try_into().expect("six values");
                let (y, ld, _) = rqs_element(xv, knot, None);
                (y, ld)
            } else {
                (xv, 0.0)
            };
            out[r * 2 * m + j] = y as f32;
            out[r * 2 * m + m + j] = ld as f32;
        }
        Ok((candle_core::CpuStorage::F32(out), candle_core::Shape::from((b, 2 * m))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, m) = x.dims2()?;
        let (k, p) = (self.bins, 3 * self.bins - 1);
        let xv: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let pv: Vec<f32> = params.flatten_all()?.to_vec1()?;
        let gv: Vec<f32> = grad.contiguous()?.flatten_all()?.to_vec1()?;
        let mut gx = vec![0f32; b * m];
        let mut gp = vec![0f32; b * m * p];
        let scale = 1.0 - MIN_BIN * k as f64;
        let rl = self.record_len();
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        if saved.len() != b * m * rl {
            candle_core::bail!("rq spline: backward without its forward pass");
        }
        let mut g_cum = vec![0.0; k + 1];
        for (e, rec) in saved.chunks_exact(rl).enumerate() {
            let (r, j) = (e / m, e % m);
            let (gy, gl) = (gv[r * 2 * m + j] as f64, gv[r * 2 * m + m + j] as f64);
            let xe = xv[e] as f64;
            if !(-self.bound..=self.bound).contains(&xe) {
                gx[e] = gy as f32;
                continue;
            }
            let i = rec[rl - 7] as usize;
            let knot: [f64; 6] = rec[rl - 6..].try_into().expect("six values");
            let (_, _, g) = rqs_element(xe, knot, Some((gy, gl)));
            gx[e] = g[0] as f32;
            let out = &mut gp[e * p..(e + 1) * p];
            // Knots: x_i = −B + 2B·c_i / c_K with c_i the cumulative bin sizes.
            for (half, (g_lo, g_hi)) in [(g[1], g[2]), (g[3], g[4])].into_iter().enumerate() {
                let cum = &rec[2 * k + half * (k + 1)..2 * k + (half + 1) * (k + 1)];
                let total = cum[k];
                g_cum.fill(0.0);
                for (idx, gk) in [(i, g_lo), (i + 1, g_hi)] {
                    g_cum[idx] += gk * 2.0 * self.bound / total;
                    g_cum[k] -= gk * 2.0 * self.bound * cum[idx] / (total * total);
                }
                // c_i = Σ_{j<i} w_j, so ∂/∂w_j collects the knots after j; then softmax.
                let sm = &rec[half * k..(half + 1) * k];
                let mut acc = 0.0;
                let mut dot = 0.0;
                for jj in (0..k).rev() {
                    acc += g_cum[jj + 1];
                    dot += acc * scale * sm[jj];
                }
                let mut acc = 0.0;
                for jj in (0..k).rev() {
                    acc += g_cum[jj + 1];
                    out[half * k + jj] = (sm[jj] * (acc * scale - dot) * self.hidden_scale) as f32;
                }
            }
            // Interior slopes d_i = softplus(u_{i−1}) + min, i = 1..K−1.
            for (idx, gd) in [(i, g[5]), (i + 1, g[6])] {
                if (1..k).contains(&idx) {
                    let u = pv[e * p + 2 * k + idx - 1] as f64;
                    out[2 * k + idx - 1] += (gd / (1.0 + (-u).exp())) as f32;
                }
            }
        }
        let gx = if x.track_op() { Some(Tensor::from_vec(gx, (b, m), x.device())?) } else { None };
        Ok((gx, Some(Tensor::from_vec(gp, (b, m, p), params.device())?)))
    }
}

fn contiguous_f32<'a>(s: &'a candle_core::CpuStorage, l: &candle_core::Layout) -> candle_core::Result<&'a [f32]> {
    let candle_core::CpuStorage::F32(v) = s else { candle_core::bail!("rq spline: expected f32") };
    let (a, b) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("rq spline: not contiguous".into()))?;
    Ok(&v[a..b])
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
        self.inverse(&normal_noise(rng, context.dim(0)?, self.features, context.device())?, context)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;
    use candle_core::Device;

    /// The fused spline agrees with the spline written in candle's ops: values, log-slopes
    /// and the gradients with respect to the inputs and every spline parameter.
    #[test]
    fn fused_spline_matches_candle_ops() {
        let store = crate::nn::ParamStore::new(1);
        let nsf = Nsf::new(store.var_builder(), &NsfConfig::default(), 2, 1).unwrap();
        let (b, m, k) = (64, 2, nsf.bins);
        let p = 3 * k - 1;
        let mut rng = crate::rng::stream_rng(5, 0);
        let xs: Vec<f32> = (0..b * m).map(|_| rand::RngExt::random_range(&mut rng, -4.0f32..4.0)).collect();
        let x = Var::from_vec(xs, (b, m), &Device::Cpu).unwrap();
        let params =
            Var::from_tensor(&(normal_noise(&mut rng, b * m, p, &Device::Cpu).unwrap() * 2.0).unwrap()).unwrap();
        let params_3d = params.as_tensor().reshape((b, m, p)).unwrap();
        let op = RqSplineOp::new(k, nsf.bound, nsf.hidden_scale);
        let fused = x.as_tensor().apply_op2(&params_3d, op).unwrap();
        let (y, ld) = nsf.spline(x.as_tensor(), &params_3d).unwrap();
        let plain = Tensor::cat(&[&y, &ld], 1).unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
        };
        assert!(diff(&fused, &plain) < 1e-4, "values differ by {}", diff(&fused, &plain));
        let weights = normal_noise(&mut rng, b, 2 * m, &Device::Cpu).unwrap();
        let gf = (&fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (&plain * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("x", &x), ("params", &params)] {
            let (a, b) = (gf.get(v.as_tensor()).unwrap(), gp.get(v.as_tensor()).unwrap());
            // Relative to the gradient's scale: the candle version rounds in f32.
            let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            let d = diff(a, b) / scale.max(1.0);
            assert!(d < 2e-4, "gradient with respect to {name} differs by {d} (relative to {scale})");
        }
    }
}
