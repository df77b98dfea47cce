//! Conditional vector fields `v(θ_t, t, x)` for flow matching posterior estimation (FMPE,
//! Wildberger et al. 2023): the network, the conditional flow-matching loss and sampling by
//! solving the flow's ODE.
//!
//! Conventions as `sbi`'s: θ is z-scored; time 0 is the posterior and time 1 the base
//! N(0, I); training pairs `θ_t = (1 − t) θ + (t + σ_min) ε` (ε ~ N(0, I), t ~ U(0, 1)) with
//! the target velocity `ε − θ` (Lipman et al. 2023's optimal-transport path); a draw
//! solves `dθ/dt = v(θ_t, t, x)` from a base draw at t = 1 back to t = 0.

use candle_core::{D, Device, Tensor};
use candle_nn::{Init, VarBuilder};
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::estimators::{Columns, Standardizer};
use crate::nn::Linear;
use crate::ode::{OdeConfig, solve};
use crate::rng::SimRng;

/// The vector field network's settings (`sbi`'s `build_vector_field_estimator` defaults for
/// its MLP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorFieldConfig {
    /// Width of the hidden layers (100).
    pub hidden: usize,
    /// Hidden layers, each with a skip connection and layer normalisation (5).
    pub layers: usize,
    /// Width of the sinusoidal time embedding (32; even).
    pub time_embedding: usize,
    /// The noise left at t = 0 of the probability path, σ_min (10⁻³).
    pub sigma_min: f64,
    /// The time prior's exponent α (0: uniform, as `sbi`): training times are drawn as
    /// `t = 1 − u^{1/(1+α)}` (u uniform), denser towards the posterior's end (t = 0) for
    /// α > 0 (Wildberger et al. 2023's power-law prior, as `dingo`'s
    /// `time_prior_exponent`).
    #[serde(default)]
    pub time_prior_exponent: f64,
}

impl Default for VectorFieldConfig {
    fn default() -> Self {
        VectorFieldConfig { hidden: 100, layers: 5, time_embedding: 32, sigma_min: 1e-3, time_prior_exponent: 0.0 }
    }
}

impl VectorFieldConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero width or depth, an odd or zero time embedding, or σ_min
    /// outside [0, 1).
    pub fn validate(&self) -> Result<()> {
        if self.hidden == 0 || self.layers == 0 || self.time_embedding == 0 || !self.time_embedding.is_multiple_of(2) {
            return Err(Error::Config(format!(
                "a vector field needs hidden width and layers ≥ 1 and an even time embedding ≥ 2, got {}, {} and {}",
                self.hidden, self.layers, self.time_embedding
            )));
        }
        if !(0.0..1.0).contains(&self.sigma_min) {
            return Err(Error::Config(format!("σ_min must be in [0, 1), got {}", self.sigma_min)));
        }
        if !(self.time_prior_exponent >= 0.0 && self.time_prior_exponent.is_finite()) {
            return Err(Error::Config(format!(
                "the time prior's exponent must be finite and ≥ 0, got {}",
                self.time_prior_exponent
            )));
        }
        Ok(())
    }
}

/// The largest period's denominator of the sinusoidal time embedding (`sbi`'s
/// `sinusoidal_max_freq`).
const MAX_FREQ: f64 = 1000.0;

/// A velocity `ε − θ` of z-scored θ has variance 2 per coordinate: the network predicts it
/// divided by this, so that its outputs and the loss are of order 1 (as `sbi`).
const VELOCITY_SCALE: f64 = std::f64::consts::SQRT_2;

/// `sbi`'s vector field MLP: θ_t (divided by its marginal standard deviation at t) and the
/// context each through a dense layer, merged; then `layers` blocks
/// `h ← LayerNorm(GELU(W h) + T(t) + h)` with a sinusoidal time embedding `T`; a dense output
/// initialised at zero.
pub(crate) struct VectorFieldNet {
    input: Linear,
    condition: Linear,
    merge: Linear,
    time: Linear,
    blocks: Vec<(Linear, Tensor, Tensor)>,
    output: Linear,
    frequencies: Vec<f32>,
}

impl VectorFieldNet {
    /// The network for `features` parameters and `context` embedded observation features.
    pub fn new(vb: VarBuilder, features: usize, context: usize, config: &VectorFieldConfig) -> Result<Self> {
        config.validate()?;
        let h = config.hidden;
        let half = config.time_embedding / 2;
        let frequencies = (0..half)
            .map(|i| (-(2.0 * i as f64) * MAX_FREQ.ln() / config.time_embedding as f64).exp() as f32)
            .collect();
        let blocks = (0..config.layers)
            .map(|l| {
                let vb = vb.pp(format!("block{l}"));
                Ok((
                    Linear::new(vb.pp("dense"), h, h)?,
                    vb.get_with_hints((1, h), "norm_gain", Init::Const(1.0))?,
                    vb.get_with_hints((1, h), "norm_bias", Init::Const(0.0))?,
                ))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(VectorFieldNet {
            input: Linear::new(vb.pp("input"), features, h)?,
            condition: Linear::new(vb.pp("condition"), context.max(1), h)?,
            merge: Linear::new(vb.pp("merge"), 2 * h, h)?,
            time: Linear::new(vb.pp("time"), config.time_embedding, h)?,
            blocks,
            output: Linear::with_init(vb.pp("output"), h, features, Init::Const(0.0))?,
            frequencies,
        })
    }

    /// `[sin(t ω_i), cos(t ω_i)]` for each row's time `t` `[B, 1]` → `[B, time_embedding]`.
    fn embed_time(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        let w = Tensor::from_slice(&self.frequencies, (1, self.frequencies.len()), t.device())?;
        let phase = t.broadcast_mul(&w)?;
        Tensor::cat(&[phase.sin()?, phase.cos()?], 1)
    }

    /// The normalised velocity at z-scored `theta_t` `[B, D]`, embedded context `[B, C]` and
    /// times `t` `[B, 1]` → `[B, D]` (the velocity divided by [`VELOCITY_SCALE`]).
    pub fn forward(&self, theta_t: &Tensor, context: &Tensor, t: &Tensor) -> candle_core::Result<Tensor> {
        // θ_t's marginal standard deviation for z-scored θ: √((1 − t)² + t²).
        let one_minus = t.affine(-1.0, 1.0)?;
        let sd = ((one_minus.sqr()? + t.sqr()?)? + 1e-6)?.sqrt()?;
        let input = self.input.forward(&theta_t.broadcast_div(&sd)?)?;
        let cond = self.condition.forward(context)?;
        let mut h = self.merge.forward(&Tensor::cat(&[input, cond], 1)?.gelu_erf()?)?.gelu_erf()?;
        let te = self.time.forward(&self.embed_time(t)?)?;
        for (dense, gain, bias) in &self.blocks {
            let next = ((dense.forward(&h)?.gelu_erf()? + &te)? + &h)?;
            h = layer_norm(&next, gain, bias)?;
        }
        self.output.forward(&h)
    }
}

/// Layer normalisation over the last dimension (PyTorch's `nn.LayerNorm`, ε = 10⁻⁵), from
/// candle's differentiable ops.
fn layer_norm(x: &Tensor, gain: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred.broadcast_div(&(var + 1e-5)?.sqrt()?)?.broadcast_mul(gain)?.broadcast_add(bias)
}

/// Standard normal draws as an f32 tensor `[rows, cols]`.
fn normal_tensor(rows: usize, cols: usize, rng: &mut SimRng, device: &Device) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = (0..rows * cols).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
    Tensor::from_vec(v, (rows, cols), device)
}

/// The conditional flow-matching loss of a batch: z-scored θ `[B, D]` and embedded context
/// `[B, C]`; `t` and ε drawn from `rng`.
fn flow_matching_loss(
    net: &VectorFieldNet,
    theta: &Tensor,
    context: &Tensor,
    sigma_min: f64,
    time_prior_exponent: f64,
    rng: &mut SimRng,
) -> candle_core::Result<Tensor> {
    let (b, d) = theta.dims2()?;
    let power = 1.0 / (1.0 + time_prior_exponent);
    let t: Vec<f32> = (0..b).map(|_| (1.0 - rng.random::<f64>().powf(power)) as f32).collect();
    let t = Tensor::from_vec(t, (b, 1), theta.device())?;
    let eps = normal_tensor(b, d, rng, theta.device())?;
    let theta_t = (theta.broadcast_mul(&t.affine(-1.0, 1.0)?)? + eps.broadcast_mul(&(&t + sigma_min)?)?)?;
    let target = ((eps - theta)? / VELOCITY_SCALE)?;
    (net.forward(&theta_t, context, &t)? - target)?.sqr()?.mean_all()
}

/// Solves the flow's ODE from the base draws `z1` (z-scored θ at t = 1, `n × D` row-major)
/// back to t = 0 at embedded contexts `context` `[n, C]`, with the Dormand–Prince solver,
/// one step size for the whole batch. Returns z-scored draws and the solver's evaluations.
fn integrate(
    net: &VectorFieldNet,
    context: &Tensor,
    z1: &[f64],
    d: usize,
    config: &OdeConfig,
) -> Result<(Vec<f64>, usize)> {
    let n = z1.len() / d;
    let device = context.device().clone();
    let mut failure: Option<Error> = None;
    let rhs = |t: f64, y: &[f64], dy: &mut [f64]| {
        let velocity = (|| -> Result<Vec<f64>> {
            let theta = crate::nn::matrix(y, n, d, &device)?;
            let times = Tensor::full(t as f32, (n, 1), &device)?;
            let v = (net.forward(&theta, context, &times)? * VELOCITY_SCALE)?;
            crate::nn::to_f64(&v)
        })();
        match velocity {
            Ok(v) => dy.copy_from_slice(&v),
            Err(e) => {
                failure.get_or_insert(e);
                dy.iter_mut().for_each(|v| *v = f64::NAN);
            }
        }
    };
    let solution = solve(rhs, z1, &[1.0, 0.0], config);
    if let Some(e) = failure {
        return Err(e);
    }
    let solution = solution?;
    Ok((solution.at(1).to_vec(), solution.evaluations))
}

/// Everything needed to rebuild a vector field estimator: saved as JSON next to its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VectorFieldSpec {
    pub config: VectorFieldConfig,
    /// The embedding network, as the file records it.
    pub embedding: crate::nn::embedding::SavedEmbedding,
    pub features: usize,
    pub context_shape: crate::model::Shape,
    pub input_std: Standardizer,
    pub context_std: Standardizer,
}

/// Rows per ODE solve: larger batches share one step size and one network call per stage.
const ROWS_PER_SOLVE: usize = 4096;

/// A trained conditional vector field on raw values: z-scoring (in f64), embedding network
/// and vector field network.
pub struct VectorFieldEstimator {
    pub(crate) store: crate::nn::ParamStore,
    net: VectorFieldNet,
    embedding: Box<dyn crate::nn::Embedding>,
    pub(crate) spec: VectorFieldSpec,
}

impl std::fmt::Debug for VectorFieldEstimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorFieldEstimator")
            .field("config", &self.spec.config)
            .field("embedding", &self.spec.embedding)
            .field("features", &self.spec.features)
            .finish_non_exhaustive()
    }
}

impl VectorFieldEstimator {
    /// Builds the networks in `store` (fresh or loaded).
    pub(crate) fn build(
        store: crate::nn::ParamStore,
        spec: VectorFieldSpec,
        embedding: &crate::nn::EmbeddingNet,
    ) -> Result<Self> {
        spec.input_std.check(spec.features, "input")?;
        spec.context_std.check(spec.context_shape.numel(), "context")?;
        let (embedding, net) = {
            let vb = store.var_builder();
            let (embedding, width) = embedding.build(vb.pp("embedding"), &spec.context_shape)?;
            let net = VectorFieldNet::new(vb.pp("field"), spec.features, width, &spec.config)?;
            (embedding, net)
        };
        Ok(VectorFieldEstimator { store, net, embedding, spec })
    }

    /// The training loss.
    pub(crate) fn loss(&self) -> FlowMatching<'_> {
        FlowMatching {
            net: &self.net,
            embedding: Some(self.embedding.as_ref()),
            sigma_min: self.spec.config.sigma_min,
            time_prior_exponent: self.spec.config.time_prior_exponent,
        }
    }

    /// The embedded, z-scored context of raw observation rows.
    fn context(&self, raw: &[f64]) -> Result<Tensor> {
        let x = self.spec.context_std.to_tensor(raw, Columns::Observation, self.store.device())?;
        Ok(candle_nn::Module::forward(self.embedding.as_ref(), &x)?.detach())
    }

    /// The standard deviation of the base at t = 1: the path ends at `(1 + σ_min) ε`.
    fn base_sd(&self) -> f64 {
        1.0 + self.spec.config.sigma_min
    }

    /// One draw of raw θ per raw context row (`rows × numel`), by solving the ODE from base
    /// draws.
    ///
    /// # Errors
    /// [`Error::OdeBudget`] when the solver's budget runs out; a network error.
    pub(crate) fn sample(&self, contexts: &[f64], rng: &mut SimRng, ode: &OdeConfig) -> Result<Vec<f64>> {
        let (d, c) = (self.spec.features, self.spec.context_shape.numel());
        let rows = contexts.len() / c;
        let mut out = Vec::with_capacity(rows * d);
        for chunk in contexts.chunks(ROWS_PER_SOLVE * c) {
            let m = chunk.len() / c;
            let z1: Vec<f64> = (0..m * d).map(|_| self.base_sd() * rng.sample::<f64, _>(StandardNormal)).collect();
            let (z0, _) = integrate(&self.net, &self.context(chunk)?, &z1, d, ode)?;
            out.extend(z0.chunks_exact(d).flat_map(|z| {
                z.iter().zip(&self.spec.input_std.mean).zip(&self.spec.input_std.std).map(|((z, m), s)| m + s * z)
            }));
        }
        Ok(out)
    }

    /// `log q(θ | x)` of raw rows `theta` (`m × D`) at raw context rows (`m × numel`) by the
    /// instantaneous change of variables: the ODE carries each row from t = 0 to the base at
    /// t = 1 together with `∫ div v dt`, the divergence exact (one backward pass per
    /// parameter). `-inf` for a row whose z-scored values a network cannot represent.
    ///
    /// # Errors
    /// [`Error::OdeBudget`] when the solver's budget runs out; a network error.
    pub(crate) fn log_prob(&self, theta: &[f64], contexts: &[f64], ode: &OdeConfig) -> Result<Vec<f64>> {
        let (d, c) = (self.spec.features, self.spec.context_shape.numel());
        let std = &self.spec.input_std;
        let log_scale = std.log_scale();
        let base_var = self.base_sd() * self.base_sd();
        let mut out = Vec::with_capacity(theta.len() / d);
        for (rows, ctx) in theta.chunks(ROWS_PER_SOLVE * d).zip(contexts.chunks(ROWS_PER_SOLVE * c)) {
            let m = rows.len() / d;
            let mut z: Vec<f64> = rows
                .chunks_exact(d)
                .flat_map(|r| r.iter().zip(&std.mean).zip(&std.std).map(|((v, m), s)| (v - m) / s))
                .collect();
            let representable: Vec<bool> =
                z.chunks_exact(d).map(|r| r.iter().all(|v| v.is_finite() && v.abs() < 1e30)).collect();
            for (r, ok) in representable.iter().enumerate() {
                if !ok {
                    z[r * d..(r + 1) * d].iter_mut().for_each(|v| *v = 0.0);
                }
            }
            let (end, _) = integrate_with_divergence(&self.net, &self.context(ctx)?, &z, d, ode)?;
            for r in 0..m {
                let z1 = &end[r * d..(r + 1) * d];
                let base = -0.5 * z1.iter().map(|v| v * v).sum::<f64>() / base_var
                    - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * base_var).ln();
                let lp = base + end[m * d + r] - log_scale;
                out.push(if representable[r] && lp.is_finite() { lp } else { f64::NEG_INFINITY });
            }
        }
        Ok(out)
    }
}

/// The velocity at z-scored rows `z` (`m × D`, row-major) at time `t`, and its divergence
/// `Σ_j ∂v_j/∂z_j` per row, exact: one backward pass through the network per parameter.
fn velocity_and_divergence(
    net: &VectorFieldNet,
    context: &Tensor,
    z: &[f64],
    d: usize,
    t: f64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let m = z.len() / d;
    let device = context.device();
    let var = candle_core::Var::from_tensor(&crate::nn::matrix(z, m, d, device)?)?;
    let times = Tensor::full(t as f32, (m, 1), device)?;
    let v = (net.forward(var.as_tensor(), context, &times)? * VELOCITY_SCALE)?;
    let mut div = vec![0.0; m];
    for j in 0..d {
        let grads = v.narrow(1, j, 1)?.sum_all()?.backward()?;
        if let Some(g) = grads.get(var.as_tensor()) {
            let g = crate::nn::to_f64(&g.narrow(1, j, 1)?)?;
            div.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        }
    }
    Ok((crate::nn::to_f64(&v)?, div))
}

/// Solves the ODE of z-scored rows `z0` (`m × D`) from t = 0 to t = 1 together with
/// `∫₀¹ div v dt` of each row: the state is `[z (m × D), l (m)]`; returns the final state
/// and the evaluations.
fn integrate_with_divergence(
    net: &VectorFieldNet,
    context: &Tensor,
    z0: &[f64],
    d: usize,
    config: &OdeConfig,
) -> Result<(Vec<f64>, usize)> {
    let m = z0.len() / d;
    let mut failure: Option<Error> = None;
    let rhs = |t: f64, y: &[f64], dy: &mut [f64]| {
        let step = velocity_and_divergence(net, context, &y[..m * d], d, t);
        match step {
            Ok((v, div)) => {
                dy[..m * d].copy_from_slice(&v);
                dy[m * d..].copy_from_slice(&div);
            }
            Err(e) => {
                failure.get_or_insert(e);
                dy.iter_mut().for_each(|v| *v = f64::NAN);
            }
        }
    };
    let mut y0 = z0.to_vec();
    y0.resize(m * d + m, 0.0);
    let solution = solve(rhs, &y0, &[0.0, 1.0], config);
    if let Some(e) = failure {
        return Err(e);
    }
    let solution = solution?;
    Ok((solution.at(1).to_vec(), solution.evaluations))
}

/// Flow matching as a training loss: rows of z-scored θ (`a`) and z-scored observations
/// (`b`, embedded by `embedding` when given).
pub(crate) struct FlowMatching<'a> {
    pub net: &'a VectorFieldNet,
    pub embedding: Option<&'a dyn crate::nn::Embedding>,
    pub sigma_min: f64,
    pub time_prior_exponent: f64,
}

impl crate::train::Loss for FlowMatching<'_> {
    fn loss(&self, a: &Tensor, b: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        let context = match self.embedding {
            Some(e) => candle_nn::Module::forward(e, b)?,
            None => b.clone(),
        };
        flow_matching_loss(self.net, a, &context, self.sigma_min, self.time_prior_exponent, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ParamStore;
    use crate::rng::stream_rng;
    use crate::train::{Pairs, TrainConfig, fit};

    /// θ ~ N(0, I₂), x = θ + 0.5 ε: the posterior is N(x / 1.25, 0.2 I). A vector field
    /// trained by flow matching on 5,000 pairs and integrated back from base draws gives its
    /// mean within a quarter posterior sd and its variance within 25% (the tolerances of
    /// NPE's closed-form test), and the solver's budget is honoured.
    #[test]
    fn flow_matching_learns_a_gaussian_posterior() {
        let (n, d) = (5_000, 2);
        let mut rng = stream_rng(7, 0);
        let theta: Vec<f64> = (0..n * d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        let x: Vec<f64> = theta.iter().map(|t| t + 0.5 * rng.sample::<f64, _>(StandardNormal)).collect();
        let (ts, xs) = (Standardizer::fit(&theta, d), Standardizer::fit(&x, d));
        let store = ParamStore::new(1);
        let config = VectorFieldConfig::default();
        let net = VectorFieldNet::new(store.var_builder(), d, d, &config).unwrap();
        let device = Device::Cpu;
        let names = vec!["a".to_string(), "b".to_string()];
        let data = Pairs {
            a: ts.to_tensor(&theta, Columns::Parameters(&names), &device).unwrap(),
            b: xs.to_tensor(&x, Columns::Observation, &device).unwrap(),
        };
        let training = TrainConfig::default().with_seed(1).with_progress(false);
        let loss = FlowMatching { net: &net, embedding: None, sigma_min: config.sigma_min, time_prior_exponent: 0.0 };
        let summary = fit(&store, &data, &training, &loss).unwrap();
        assert!(summary.converged);

        let x_o = [0.5, -1.0];
        let m = 4_000;
        let context = xs.to_tensor(&x_o.repeat(m), Columns::Observation, &device).unwrap();
        let z1: Vec<f64> = (0..m * d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        let ode = OdeConfig::default().with_tolerances(1e-5, 1e-5);
        let (z0, evaluations) = integrate(&net, &context, &z1, d, &ode).unwrap();
        assert!(evaluations > 6);
        let draws = ts.from_tensor(&crate::nn::matrix(&z0, m, d, &device).unwrap()).unwrap();
        let sd = 0.2f64.sqrt();
        for (j, x) in x_o.iter().enumerate() {
            let col: Vec<f64> = draws.iter().skip(j).step_by(d).copied().collect();
            let mean = col.iter().sum::<f64>() / m as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1) as f64;
            assert!((mean - x / 1.25).abs() < 0.25 * sd, "mean[{j}] = {mean}, exact {}", x / 1.25);
            assert!((var / 0.2 - 1.0).abs() < 0.25, "var[{j}] = {var}, exact 0.2");
        }
        // The exact divergence agrees with central differences of the velocity (the network
        // runs in f32: steps of 10⁻² keep the rounding error small against the tolerance).
        let points = &z1[..8 * d];
        let ctx = context.narrow(0, 0, 8).unwrap();
        for t in [0.05, 0.5, 0.95] {
            let (_, div) = velocity_and_divergence(&net, &ctx, points, d, t).unwrap();
            let h = 1e-2;
            for (r, div) in div.iter().enumerate() {
                let mut fd = 0.0;
                for j in 0..d {
                    let mut shifted = points.to_vec();
                    shifted[r * d + j] += h;
                    let (up, _) = velocity_and_divergence(&net, &ctx, &shifted, d, t).unwrap();
                    shifted[r * d + j] -= 2.0 * h;
                    let (down, _) = velocity_and_divergence(&net, &ctx, &shifted, d, t).unwrap();
                    fd += (up[r * d + j] - down[r * d + j]) / (2.0 * h);
                }
                assert!(
                    (div - fd).abs() < 1e-2 * (1.0 + fd.abs()),
                    "t {t} row {r}: divergence {div}, differences {fd}"
                );
            }
        }
        // A budget of 3 steps cannot reach t = 0: a typed error, not a hang.
        let tight = ode.with_max_steps(3);
        assert!(matches!(integrate(&net, &context, &z1, d, &tight), Err(Error::OdeBudget { .. })));
    }
}
