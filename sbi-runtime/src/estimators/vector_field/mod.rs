//! Conditional vector fields `v(θ_t, t, x)`: one network family for flow matching
//! posterior estimation (FMPE, Wildberger et al. 2023) and neural posterior score
//! estimation (NPSE, Geffner et al. 2023, Sharrock et al. 2024), their losses
//! ([`process`]), draws by solving an ODE (or, for scores, the reverse SDE) from the base
//! to the posterior, and densities by the instantaneous change of variables along the ODE.
//!
//! Conventions as `sbi`'s: θ is z-scored; the posterior is at the path's first time (0 for
//! flow matching, t_min for scores) and the Gaussian base at its last (1, t_max).

pub mod process;

use candle_core::{Device, Tensor};
use candle_nn::{Init, VarBuilder};
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

pub use process::{FlowMatchingConfig, Process, ScoreConfig, ScoreWeighting, Sde};

use crate::error::{Error, Result};
use crate::estimators::{Columns, Standardizer};
use crate::nn::Linear;
use crate::nn::kernels::{gelu, layer_norm};
use crate::ode::{OdeConfig, solve, solve_fixed_steps};
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
}

impl Default for VectorFieldConfig {
    fn default() -> Self {
        VectorFieldConfig { hidden: 100, layers: 5, time_embedding: 32 }
    }
}

impl VectorFieldConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero width or depth, or an odd or zero time embedding.
    pub fn validate(&self) -> Result<()> {
        if self.hidden == 0 || self.layers == 0 || self.time_embedding == 0 || !self.time_embedding.is_multiple_of(2) {
            return Err(Error::Config(format!(
                "a vector field needs hidden width and layers ≥ 1 and an even time embedding ≥ 2, got {}, {} and {}",
                self.hidden, self.layers, self.time_embedding
            )));
        }
        Ok(())
    }
}

/// How the ODE is solved for draws and densities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowSolver {
    /// Relative tolerance of each adaptive step (10⁻⁵).
    pub rtol: f64,
    /// Absolute tolerance of each adaptive step, in z-scored θ (10⁻⁵).
    pub atol: f64,
    /// Adaptive steps (accepted and rejected) per solve before [`Error::OdeBudget`]
    /// (10,000).
    pub max_steps: usize,
    /// `Some(n)`: `n` fixed steps of classical Runge–Kutta (4n network calls) instead of the
    /// adaptive Dormand–Prince solver: a known cost, no error control (`None`).
    #[serde(default)]
    pub fixed_steps: Option<usize>,
    /// How densities compute the vector field's divergence.
    #[serde(default)]
    pub divergence: Divergence,
}

impl Default for FlowSolver {
    fn default() -> Self {
        FlowSolver { rtol: 1e-5, atol: 1e-5, max_steps: 10_000, fixed_steps: None, divergence: Divergence::Exact }
    }
}

impl FlowSolver {
    /// `n` fixed Runge–Kutta steps instead of the adaptive solver.
    pub fn fixed_steps(n: usize) -> Self {
        FlowSolver { fixed_steps: Some(n), ..FlowSolver::default() }
    }

    /// Sets how densities compute the divergence.
    pub fn with_divergence(mut self, d: Divergence) -> Self {
        self.divergence = d;
        self
    }

    fn ode_config(&self) -> OdeConfig {
        OdeConfig::default().with_tolerances(self.rtol, self.atol).with_max_steps(self.max_steps)
    }

    /// Solves `dy/dt = f` from `from` to `to`; the final state and the evaluations.
    fn solve<F: FnMut(f64, &[f64], &mut [f64])>(
        &self,
        f: F,
        y0: &[f64],
        from: f64,
        to: f64,
    ) -> Result<(Vec<f64>, usize)> {
        let solution = match self.fixed_steps {
            Some(steps) => solve_fixed_steps(f, y0, from, to, steps)?,
            None => solve(f, y0, &[from, to], &self.ode_config())?,
        };
        Ok((solution.at(1).to_vec(), solution.evaluations))
    }
}

/// The divergence `Σ_j ∂v_j/∂θ_j` in the change of variables of densities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Divergence {
    /// Exact: one backward pass through the network per parameter.
    #[default]
    Exact,
    /// Hutchinson's unbiased estimate `zᵀ (∂v/∂θ) z` with one Rademacher probe `z` per row,
    /// fixed along each solve (as FFJORD): one backward pass whatever the dimension, at the
    /// price of noise in each density (seeded by the posterior's seed).
    Hutchinson,
}

/// How NPSE draws: by the reverse SDE or by the probability-flow ODE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScoreSampling {
    /// Euler–Maruyama on the reverse SDE over `steps` equally spaced times from t_max to
    /// t_min (`steps − 1` network calls; 100 by default, `sbi`: 500, which measured no more
    /// accurate on sbibm two_moons and gaussian_linear, README), each step optionally
    /// followed by unadjusted Langevin corrector steps (predictor–corrector sampling, Song et
    /// al. 2021).
    Sde {
        /// Time points, ends included (100).
        steps: usize,
        /// The corrector (none).
        corrector: Option<Langevin>,
    },
    /// The probability-flow ODE, solved as the posterior's [`FlowSolver`] says:
    /// deterministic given the base draw, and the same path as densities.
    Ode,
}

impl Default for ScoreSampling {
    fn default() -> Self {
        ScoreSampling::Sde { steps: 100, corrector: None }
    }
}

/// Langevin corrector steps after each predictor step (`sbi`'s defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Langevin {
    /// Steps per time point (5).
    pub steps: usize,
    /// The step size δ in z-scored θ (10⁻⁴).
    pub step_size: f64,
}

impl Default for Langevin {
    fn default() -> Self {
        Langevin { steps: 5, step_size: 1e-4 }
    }
}

impl ScoreSampling {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] for fewer than 2 time points, or a corrector without steps or with
    /// a step size that is not positive and finite.
    pub fn validate(&self) -> Result<()> {
        if let ScoreSampling::Sde { steps, corrector } = self {
            if *steps < 2 {
                return Err(Error::Config(format!("the reverse SDE needs at least 2 time points, got {steps}")));
            }
            if let Some(c) = corrector
                && (c.steps == 0 || !(c.step_size > 0.0 && c.step_size.is_finite()))
            {
                return Err(Error::Config(format!(
                    "a Langevin corrector needs ≥ 1 step and a positive step size, got {} and {}",
                    c.steps, c.step_size
                )));
            }
        }
        Ok(())
    }
}

/// The largest period's denominator of the sinusoidal time embedding (`sbi`'s
/// `sinusoidal_max_freq`).
const MAX_FREQ: f64 = 1000.0;

/// `sbi`'s vector field MLP on pre-conditioned inputs: the scaled θ_t and the context each
/// through a dense layer, merged; then `layers` blocks `h ← LayerNorm(GELU(W h) + T(τ) + h)`
/// with a sinusoidal embedding `T` of the time feature τ; a dense output initialised at zero.
/// [`Process`] scales its inputs and outputs.
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

    /// `[sin(τ ω_i), cos(τ ω_i)]` for each row's time feature `τ` `[B, 1]` →
    /// `[B, time_embedding]`.
    fn embed_time(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        let w = Tensor::from_slice(&self.frequencies, (1, self.frequencies.len()), t.device())?;
        let phase = t.broadcast_mul(&w)?;
        Tensor::cat(&[phase.sin()?, phase.cos()?], 1)
    }

    /// The raw output at scaled `input` `[B, D]`, embedded context `[B, C]` and time features
    /// `time` `[B, 1]` → `[B, D]`.
    pub fn forward(&self, input: &Tensor, context: &Tensor, time: &Tensor) -> candle_core::Result<Tensor> {
        let input = self.input.forward(input)?;
        let cond = self.condition.forward(context)?;
        let mut h = gelu(&self.merge.forward(&gelu(&Tensor::cat(&[input, cond], 1)?)?)?)?;
        let te = self.time.forward(&self.embed_time(time)?)?;
        for (dense, gain, bias) in &self.blocks {
            let next = ((gelu(&dense.forward(&h)?)? + &te)? + &h)?;
            h = layer_norm(&next, gain, bias)?;
        }
        self.output.forward(&h)
    }
}

/// Standard normal draws as an f32 tensor `[rows, cols]`.
fn normal_tensor(rows: usize, cols: usize, rng: &mut SimRng, device: &Device) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = (0..rows * cols).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
    Tensor::from_vec(v, (rows, cols), device)
}

/// Runs `f`, keeping its first error and writing NaN into `dy` on failure (an ODE
/// right-hand side cannot return errors: the caller reports the kept one).
fn fill_or_keep(failure: &mut Option<Error>, dy: &mut [f64], f: impl FnOnce(&mut [f64]) -> Result<()>) {
    if let Err(e) = f(dy) {
        failure.get_or_insert(e);
        dy.iter_mut().for_each(|v| *v = f64::NAN);
    }
}

/// Solves the ODE of `process` for the z-scored rows `y0` (`n × D`) at embedded contexts
/// `context` `[n, C]` from time `from` to `to`, all rows in one system (one step size, one
/// network call per stage). Returns the final rows and the evaluations.
fn integrate(
    process: &Process,
    net: &VectorFieldNet,
    context: &Tensor,
    y0: &[f64],
    d: usize,
    (from, to): (f64, f64),
    solver: &FlowSolver,
) -> Result<(Vec<f64>, usize)> {
    let n = y0.len() / d;
    let device = context.device().clone();
    let mut failure: Option<Error> = None;
    let rhs = |t: f64, y: &[f64], dy: &mut [f64]| {
        fill_or_keep(&mut failure, dy, |dy| {
            let theta = crate::nn::matrix(y, n, d, &device)?;
            dy.copy_from_slice(&crate::nn::to_f64(&process.velocity(net, &theta, context, t)?)?);
            Ok(())
        })
    };
    let solution = solver.solve(rhs, y0, from, to);
    if let Some(e) = failure {
        return Err(e);
    }
    solution
}

/// Everything needed to rebuild a vector field estimator: saved as JSON next to its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VectorFieldSpec {
    pub config: VectorFieldConfig,
    /// The path the network was trained on (flow matching or a score SDE).
    pub process: Process,
    /// The embedding network, as the file records it.
    pub embedding: crate::nn::embedding::SavedEmbedding,
    pub features: usize,
    pub context_shape: crate::model::Shape,
    pub input_std: Standardizer,
    pub context_std: Standardizer,
}

/// Rows per ODE or SDE solve: a batch shares one step size and one network call per stage;
/// batches run in parallel on rayon's pool. Small enough that candle keeps its element-wise
/// ops on the calling thread (it spreads those over 64 Ki values on a pool of its own,
/// which spins against rayon's threads).
const ROWS_PER_SOLVE: usize = 512;

/// `solve(item, rng)` for each item on the rayon pool, each with its own random stream
/// derived from one draw of `rng` and the item's index, so that the result does not depend
/// on the number of threads; results in order, the first error if any.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    rng: &mut SimRng,
    solve: impl Fn(&T, &mut SimRng) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    use rayon::prelude::*;
    let seed: u64 = rng.random();
    let generic = crate::nn::kernels::generic_mode();
    items
        .par_iter()
        .enumerate()
        .map(|(i, item)| {
            crate::nn::kernels::with_mode(generic, || solve(item, &mut crate::rng::stream_rng(seed, i as u64)))
        })
        .collect()
}

/// A trained conditional vector field on raw values: z-scoring (in f64), embedding network,
/// vector field network and the path it was trained on.
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
            .field("process", &self.spec.process)
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
        spec.process.validate()?;
        let (embedding, net) = {
            let vb = store.var_builder();
            let (embedding, width) = embedding.build(vb.pp("embedding"), &spec.context_shape)?;
            let net = VectorFieldNet::new(vb.pp("field"), spec.features, width, &spec.config)?;
            (embedding, net)
        };
        Ok(VectorFieldEstimator { store, net, embedding, spec })
    }

    /// The training loss.
    pub(crate) fn loss(&self) -> VectorFieldLoss<'_> {
        VectorFieldLoss { net: &self.net, embedding: Some(self.embedding.as_ref()), process: &self.spec.process }
    }

    /// The embedded, z-scored context of raw observation rows.
    fn context(&self, raw: &[f64]) -> Result<Tensor> {
        let x = self.spec.context_std.to_tensor(raw, Columns::Observation, self.store.device())?;
        Ok(candle_nn::Module::forward(self.embedding.as_ref(), &x)?.detach())
    }

    /// Raw θ rows from z-scored ones.
    fn unscale(&self, z: &[f64], out: &mut Vec<f64>) {
        let std = &self.spec.input_std;
        out.extend(
            z.chunks_exact(self.spec.features)
                .flat_map(|z| z.iter().zip(&std.mean).zip(&std.std).map(|((z, m), s)| m + s * z)),
        );
    }

    /// One draw of raw θ per raw context row (`rows × numel`): base draws carried to the
    /// posterior by the ODE (`sampling` `None` or [`ScoreSampling::Ode`]) or, for a score,
    /// by the reverse SDE. Returns the draws and the network evaluations per draw.
    ///
    /// # Errors
    /// [`Error::OdeBudget`] when the solver's budget runs out; [`Error::Config`] for an SDE
    /// sampler on a flow-matching field or invalid settings; a network error.
    pub(crate) fn sample(
        &self,
        contexts: &[f64],
        rng: &mut SimRng,
        solver: &FlowSolver,
        sampling: &ScoreSampling,
    ) -> Result<(Vec<f64>, usize)> {
        let (d, c) = (self.spec.features, self.spec.context_shape.numel());
        let (t_data, t_base) = self.spec.process.times();
        let sde = match (&self.spec.process, sampling) {
            (_, ScoreSampling::Ode) => None,
            (Process::Score(config), ScoreSampling::Sde { steps, corrector }) => {
                sampling.validate()?;
                Some((config, *steps, corrector.as_ref()))
            }
            (Process::FlowMatching(_), ScoreSampling::Sde { .. }) => {
                return Err(Error::Config(
                    "a flow-matching posterior has no SDE: sample it by its ODE (ScoreSampling::Ode)".into(),
                ));
            }
        };
        let base_sd = self.spec.process.base_sd();
        let solve_chunk = |chunk: &[f64], rng: &mut SimRng| -> Result<(Vec<f64>, usize)> {
            let m = chunk.len() / c;
            let z1: Vec<f64> = (0..m * d).map(|_| base_sd * rng.sample::<f64, _>(StandardNormal)).collect();
            let context = self.context(chunk)?;
            let (z0, evals) = match sde {
                None => integrate(&self.spec.process, &self.net, &context, &z1, d, (t_base, t_data), solver)?,
                Some((config, steps, corrector)) => {
                    reverse_sde(config, &self.net, &context, &z1, d, steps, corrector, rng)?
                }
            };
            let mut out = Vec::with_capacity(m * d);
            self.unscale(&z0, &mut out);
            Ok((out, evals))
        };
        let chunks: Vec<&[f64]> = contexts.chunks(ROWS_PER_SOLVE * c).collect();
        let solved = in_parallel(&chunks, rng, |chunk, rng| solve_chunk(chunk, rng))?;
        let evaluations = solved.iter().map(|s| s.1).max().unwrap_or(0);
        Ok((solved.into_iter().flat_map(|s| s.0).collect(), evaluations))
    }

    /// `log q(θ | x)` of raw rows `theta` (`m × D`) at raw context rows (`m × numel`) by the
    /// instantaneous change of variables: the ODE carries each row from the posterior's time
    /// to the base together with `∫ div v dt` (exact or Hutchinson's, as `solver` says; the
    /// probes drawn from `rng`). `-inf` for a row whose z-scored values a network cannot
    /// represent.
    ///
    /// # Errors
    /// [`Error::OdeBudget`] when the solver's budget runs out; a network error.
    pub(crate) fn log_prob(
        &self,
        theta: &[f64],
        contexts: &[f64],
        solver: &FlowSolver,
        rng: &mut SimRng,
    ) -> Result<Vec<f64>> {
        let (d, c) = (self.spec.features, self.spec.context_shape.numel());
        let std = &self.spec.input_std;
        let log_scale = std.log_scale();
        let base_var = self.spec.process.base_sd().powi(2);
        let chunks: Vec<(&[f64], &[f64])> =
            theta.chunks(ROWS_PER_SOLVE * d).zip(contexts.chunks(ROWS_PER_SOLVE * c)).collect();
        let solve_chunk = |&(rows, ctx): &(&[f64], &[f64]), rng: &mut SimRng| -> Result<Vec<f64>> {
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
            let probes = match solver.divergence {
                Divergence::Exact => None,
                Divergence::Hutchinson => {
                    Some((0..m * d).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }).collect::<Vec<f64>>())
                }
            };
            let (end, _) = self.integrate_with_divergence(&self.context(ctx)?, &z, probes.as_deref(), solver)?;
            Ok((0..m)
                .map(|r| {
                    let z1 = &end[r * d..(r + 1) * d];
                    let base = -0.5 * z1.iter().map(|v| v * v).sum::<f64>() / base_var
                        - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * base_var).ln();
                    let lp = base + end[m * d + r] - log_scale;
                    if representable[r] && lp.is_finite() { lp } else { f64::NEG_INFINITY }
                })
                .collect())
        };
        let solved = in_parallel(&chunks, rng, solve_chunk)?;
        Ok(solved.into_iter().flatten().collect())
    }

    /// Solves the ODE of z-scored rows `z0` (`m × D`) from the posterior's time to the
    /// base's together with `∫ div v dt` of each row: the state is `[z (m × D), l (m)]`;
    /// returns the final state and the evaluations.
    fn integrate_with_divergence(
        &self,
        context: &Tensor,
        z0: &[f64],
        probes: Option<&[f64]>,
        solver: &FlowSolver,
    ) -> Result<(Vec<f64>, usize)> {
        let d = self.spec.features;
        let m = z0.len() / d;
        let (t_data, t_base) = self.spec.process.times();
        let mut failure: Option<Error> = None;
        let rhs = |t: f64, y: &[f64], dy: &mut [f64]| {
            fill_or_keep(&mut failure, dy, |dy| {
                let (v, div) =
                    velocity_and_divergence(&self.spec.process, &self.net, context, &y[..m * d], d, t, probes)?;
                dy[..m * d].copy_from_slice(&v);
                dy[m * d..].copy_from_slice(&div);
                Ok(())
            })
        };
        let mut y0 = z0.to_vec();
        y0.resize(m * d + m, 0.0);
        let solution = solver.solve(rhs, &y0, t_data, t_base);
        if let Some(e) = failure {
            return Err(e);
        }
        solution
    }
}

/// Euler–Maruyama on the reverse SDE from the base rows `z1` (`n × D`) over `steps` equally
/// spaced times from t_max to t_min, with optional Langevin corrector steps after each; the
/// final rows and the network evaluations per row.
#[allow(clippy::too_many_arguments)]
fn reverse_sde(
    config: &ScoreConfig,
    net: &VectorFieldNet,
    context: &Tensor,
    z1: &[f64],
    d: usize,
    steps: usize,
    corrector: Option<&Langevin>,
    rng: &mut SimRng,
) -> Result<(Vec<f64>, usize)> {
    let n = z1.len() / d;
    let mut theta = crate::nn::matrix(z1, n, d, context.device())?;
    let dt = (config.t_max - config.t_min) / (steps - 1) as f64;
    let mut evaluations = 0;
    for i in 0..steps - 1 {
        let t = config.t_max - i as f64 * dt;
        // Detached: the weights are variables, and a chain of steps would otherwise keep every
        // step's graph alive.
        theta = Process::reverse_sde_step(config, net, &theta, context, t, dt, rng)?.detach();
        evaluations += 1;
        if let Some(c) = corrector {
            let next = if i + 2 == steps { config.t_min } else { t - dt };
            for _ in 0..c.steps {
                theta = Process::langevin_step(config, net, &theta, context, next, c.step_size, rng)?.detach();
            }
            evaluations += c.steps;
        }
    }
    let out = crate::nn::to_f64(&theta)?;
    if let Some(bad) = out.iter().position(|v| !v.is_finite()) {
        return Err(Error::OdeFailed {
            t: config.t_min,
            reason: format!("the reverse SDE's draw {} is not finite", bad / d),
        });
    }
    Ok((out, evaluations))
}

/// The velocity at z-scored rows `z` (`m × D`, row-major) at time `t`, and its divergence
/// per row: exact (one backward pass per parameter) or, given Rademacher `probes` (`m × D`),
/// Hutchinson's `zᵀ (∂v/∂θ) z` (one backward pass).
fn velocity_and_divergence(
    process: &Process,
    net: &VectorFieldNet,
    context: &Tensor,
    z: &[f64],
    d: usize,
    t: f64,
    probes: Option<&[f64]>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let m = z.len() / d;
    let device = context.device();
    let var = candle_core::Var::from_tensor(&crate::nn::matrix(z, m, d, device)?)?;
    let v = process.velocity(net, var.as_tensor(), context, t)?;
    let mut div = vec![0.0; m];
    match probes {
        None => {
            for j in 0..d {
                let grads = v.narrow(1, j, 1)?.sum_all()?.backward()?;
                if let Some(g) = grads.get(var.as_tensor()) {
                    let g = crate::nn::to_f64(&g.narrow(1, j, 1)?)?;
                    div.iter_mut().zip(g).for_each(|(a, b)| *a += b);
                }
            }
        }
        Some(probes) => {
            let p = crate::nn::matrix(probes, m, d, device)?;
            let grads = (&v * &p)?.sum_all()?.backward()?;
            if let Some(g) = grads.get(var.as_tensor()) {
                let g = crate::nn::to_f64(g)?;
                for (r, div) in div.iter_mut().enumerate() {
                    *div = (0..d).map(|j| g[r * d + j] * probes[r * d + j]).sum();
                }
            }
        }
    }
    Ok((crate::nn::to_f64(&v)?, div))
}

/// A vector field's training loss (flow matching or denoising score matching): rows of
/// z-scored θ (`a`) and z-scored observations (`b`, embedded by `embedding` when given).
pub(crate) struct VectorFieldLoss<'a> {
    pub net: &'a VectorFieldNet,
    pub embedding: Option<&'a dyn crate::nn::Embedding>,
    pub process: &'a Process,
}

impl crate::train::Loss for VectorFieldLoss<'_> {
    fn loss(&self, a: &Tensor, b: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        let context = match self.embedding {
            Some(e) => candle_nn::Module::forward(e, b)?,
            None => b.clone(),
        };
        self.process.loss(self.net, a, &context, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ParamStore;
    use crate::rng::stream_rng;
    use crate::train::{Pairs, TrainConfig, fit};

    fn flow() -> Process {
        Process::FlowMatching(FlowMatchingConfig::default())
    }

    fn column_moments(draws: &[f64], d: usize, j: usize) -> (f64, f64) {
        let col: Vec<f64> = draws.iter().skip(j).step_by(d).copied().collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (col.len() - 1) as f64;
        (mean, var)
    }

    /// θ ~ N(0, I₂), x = θ + 0.5 ε: the posterior is N(x / 1.25, 0.2 I). A vector field
    /// trained by flow matching on 5,000 pairs and integrated back from base draws gives its
    /// mean within a quarter posterior sd and its variance within 25% (the tolerances of
    /// NPE's closed-form test), by the adaptive and by the fixed-step solver; the divergence
    /// agrees with finite differences; the solver's budget is honoured.
    #[test]
    fn flow_matching_learns_a_gaussian_posterior() {
        let (n, d) = (5_000, 2);
        let mut rng = stream_rng(7, 0);
        let theta: Vec<f64> = (0..n * d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        let x: Vec<f64> = theta.iter().map(|t| t + 0.5 * rng.sample::<f64, _>(StandardNormal)).collect();
        let (ts, xs) = (Standardizer::fit(&theta, d), Standardizer::fit(&x, d));
        let store = ParamStore::new(1);
        let net = VectorFieldNet::new(store.var_builder(), d, d, &VectorFieldConfig::default()).unwrap();
        let device = Device::Cpu;
        let names = vec!["a".to_string(), "b".to_string()];
        let data = Pairs {
            a: ts.to_tensor(&theta, Columns::Parameters(&names), &device).unwrap(),
            b: xs.to_tensor(&x, Columns::Observation, &device).unwrap(),
        };
        let training = TrainConfig::default().with_seed(1).with_progress(false);
        let process = flow();
        let loss = VectorFieldLoss { net: &net, embedding: None, process: &process };
        let summary = fit(&store, &data, &training, &loss).unwrap();
        assert!(summary.converged);

        let x_o = [0.5, -1.0];
        let m = 4_000;
        let context = xs.to_tensor(&x_o.repeat(m), Columns::Observation, &device).unwrap();
        let z1: Vec<f64> = (0..m * d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        for solver in [FlowSolver::default(), FlowSolver::fixed_steps(20)] {
            let (z0, evaluations) = integrate(&process, &net, &context, &z1, d, (1.0, 0.0), &solver).unwrap();
            assert!(evaluations > 6);
            let draws = ts.from_tensor(&crate::nn::matrix(&z0, m, d, &device).unwrap()).unwrap();
            for (j, x) in x_o.iter().enumerate() {
                let (mean, var) = column_moments(&draws, d, j);
                let sd = 0.2f64.sqrt();
                assert!((mean - x / 1.25).abs() < 0.25 * sd, "{solver:?}: mean[{j}] = {mean}, exact {}", x / 1.25);
                assert!((var / 0.2 - 1.0).abs() < 0.25, "{solver:?}: var[{j}] = {var}, exact 0.2");
            }
        }
        // The exact divergence agrees with central differences of the velocity (the network
        // runs in f32: steps of 10⁻² keep the rounding error small against the tolerance).
        let points = &z1[..8 * d];
        let ctx = context.narrow(0, 0, 8).unwrap();
        let velocity = |p: &[f64], t: f64| velocity_and_divergence(&process, &net, &ctx, p, d, t, None).unwrap();
        for t in [0.05, 0.5, 0.95] {
            let (_, div) = velocity(points, t);
            let h = 1e-2;
            for (r, div) in div.iter().enumerate() {
                let mut fd = 0.0;
                for j in 0..d {
                    let mut shifted = points.to_vec();
                    shifted[r * d + j] += h;
                    let (up, _) = velocity(&shifted, t);
                    shifted[r * d + j] -= 2.0 * h;
                    let (down, _) = velocity(&shifted, t);
                    fd += (up[r * d + j] - down[r * d + j]) / (2.0 * h);
                }
                assert!(
                    (div - fd).abs() < 1e-2 * (1.0 + fd.abs()),
                    "t {t} row {r}: divergence {div}, differences {fd}"
                );
            }
        }
        hutchinson_agrees_in_expectation(&process, &net, &ctx, points, d);
        // A budget of 3 steps cannot reach t = 0: a typed error, not a hang.
        let tight = FlowSolver { max_steps: 3, ..FlowSolver::default() };
        assert!(matches!(
            integrate(&process, &net, &context, &z1, d, (1.0, 0.0), &tight),
            Err(Error::OdeBudget { .. })
        ));
    }

    /// Hutchinson's estimate, averaged over 4,000 Rademacher probes, agrees with the exact
    /// divergence within 4 standard errors of the average (its variance estimated from the
    /// same probes).
    fn hutchinson_agrees_in_expectation(
        process: &Process,
        net: &VectorFieldNet,
        ctx: &Tensor,
        points: &[f64],
        d: usize,
    ) {
        let m = points.len() / d;
        let mut rng = stream_rng(3, 1);
        for t in [0.1, 0.6] {
            let (_, exact) = velocity_and_divergence(process, net, ctx, points, d, t, None).unwrap();
            let k = 4_000;
            let mut sums = vec![(0.0, 0.0); m];
            for _ in 0..k {
                let probes: Vec<f64> = (0..m * d).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }).collect();
                let (_, est) = velocity_and_divergence(process, net, ctx, points, d, t, Some(&probes)).unwrap();
                sums.iter_mut().zip(est).for_each(|(s, e)| *s = (s.0 + e, s.1 + e * e));
            }
            for (r, ((s, s2), exact)) in sums.iter().zip(&exact).enumerate() {
                let mean = s / k as f64;
                let se = ((s2 / k as f64 - mean * mean).max(0.0) / k as f64).sqrt();
                assert!((mean - exact).abs() < 4.0 * se + 1e-4, "t {t} row {r}: {mean} ± {se} vs exact {exact}");
            }
        }
    }

    /// The score parametrisation is exact for standard normal (z-scored) θ when the network
    /// outputs zero, as a fresh network does: for each SDE, the reverse SDE (with and
    /// without a corrector) and the probability-flow ODE then carry the base to N(0, a²)
    /// at t_min (a ≈ 1: mean within 4 standard errors, variance within 10%), and densities
    /// equal N(0, a(t_min)² I)'s within the solver's tolerance, exact or Hutchinson.
    /// Batches solved in parallel give the same values, in order, on 1 and 3 threads, and
    /// a failing batch's error comes back.
    #[test]
    fn parallel_batches_do_not_depend_on_the_thread_count() {
        let items: Vec<usize> = (0..9).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut rng = stream_rng(7, 0);
                in_parallel(&items, &mut rng, |&i, rng| Ok((i, rng.random::<u64>()))).unwrap()
            })
        };
        let one = run(1);
        assert_eq!(one, run(3));
        assert_eq!(one.iter().map(|r| r.0).collect::<Vec<_>>(), items);
        let distinct: std::collections::HashSet<u64> = one.iter().map(|r| r.1).collect();
        assert_eq!(distinct.len(), items.len(), "each batch has its own stream");
        let failed = in_parallel(&items, &mut stream_rng(7, 0), |&i, _| {
            if i == 4 { Err(Error::Config("batch 4".into())) } else { Ok(i) }
        });
        assert!(matches!(failed, Err(Error::Config(m)) if m == "batch 4"));
    }

    #[test]
    fn an_untrained_score_is_exact_for_standard_normal_parameters() {
        let d = 2;
        let n = 2_000;
        let device = Device::Cpu;
        let context = Tensor::zeros((n, 1), candle_core::DType::F32, &device).unwrap();
        for config in [ScoreConfig::ve(), ScoreConfig::vp(), ScoreConfig::sub_vp()] {
            let store = ParamStore::new(1);
            let net = VectorFieldNet::new(store.var_builder(), d, 1, &VectorFieldConfig::default()).unwrap();
            let process = Process::Score(config.clone());
            let mut rng = stream_rng(11, 0);
            let base_sd = process.base_sd();
            let z1: Vec<f64> = (0..n * d).map(|_| base_sd * rng.sample::<f64, _>(StandardNormal)).collect();
            let target_var = {
                let c = config.at(config.t_min);
                c.mean * c.mean + c.sd * c.sd
            };
            let sde = reverse_sde(&config, &net, &context, &z1, d, 100, None, &mut rng).unwrap();
            let corrector = Langevin { steps: 2, step_size: 1e-3 };
            let corrected = reverse_sde(&config, &net, &context, &z1, d, 30, Some(&corrector), &mut rng).unwrap();
            assert_eq!(corrected.1, 29 * 3);
            let ode = integrate(&process, &net, &context, &z1, d, (config.t_max, config.t_min), &FlowSolver::default())
                .unwrap();
            for (what, draws) in [("sde", &sde.0), ("corrected", &corrected.0), ("ode", &ode.0)] {
                // Both coordinates pooled (4,000 values): the variance's standard error is
                // 2.2%, the tolerance 4.5 of them.
                let (mean, var) = column_moments(draws, 1, 0);
                assert!(
                    mean.abs() < 4.0 * (target_var / (n * d) as f64).sqrt(),
                    "{:?} {what}: mean {mean}",
                    config.sde
                );
                assert!((var / target_var - 1.0).abs() < 0.1, "{:?} {what}: var {var} vs {target_var}", config.sde);
            }
            let points: Vec<f64> = z1[..16 * d].iter().map(|v| v / base_sd).collect();
            let ctx = context.narrow(0, 0, 16).unwrap();
            let exact_lp = |z: &[f64]| {
                -0.5 * z.iter().map(|v| v * v).sum::<f64>() / target_var
                    - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * target_var).ln()
            };
            let estimator_like = |probes: Option<&[f64]>| {
                let mut y0 = points.clone();
                y0.resize(16 * d + 16, 0.0);
                let mut failure = None;
                let rhs = |t: f64, y: &[f64], dy: &mut [f64]| {
                    fill_or_keep(&mut failure, dy, |dy| {
                        let (v, div) = velocity_and_divergence(&process, &net, &ctx, &y[..16 * d], d, t, probes)?;
                        dy[..16 * d].copy_from_slice(&v);
                        dy[16 * d..].copy_from_slice(&div);
                        Ok(())
                    })
                };
                FlowSolver::default().solve(rhs, &y0, config.t_min, config.t_max).unwrap().0
            };
            let probes: Vec<f64> = (0..16 * d).map(|i| if i % 3 == 0 { 1.0 } else { -1.0 }).collect();
            for probes in [None, Some(&probes[..])] {
                let end = estimator_like(probes);
                for r in 0..16 {
                    let z1 = &end[r * d..(r + 1) * d];
                    let base = -0.5 * z1.iter().map(|v| v * v).sum::<f64>() / (base_sd * base_sd)
                        - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * base_sd * base_sd).ln();
                    let lp = base + end[16 * d + r];
                    let exact = exact_lp(&points[r * d..(r + 1) * d]);
                    assert!((lp - exact).abs() < 1e-2, "{:?} row {r}: {lp} vs {exact}", config.sde);
                }
            }
        }
    }
}
