//! Building blocks for the networks: a seeded parameter store behind candle's `VarBuilder`,
//! linear and masked linear layers, activations and an MLP.
//!
//! Parameters are created in a fixed order from a seeded generator (candle's own
//! initialisers draw from an unseeded one, and `VarMap` iterates in hash order), so the
//! same seed gives the same network and the same training run.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::{Init, VarBuilder};
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

use crate::error::{Error, Result};
use crate::model::Shape as ObsShape;
use crate::rng::SimRng;

/// The dtype of all networks (as in `sbi`).
pub const DTYPE: DType = DType::F32;

/// Owns the trainable parameters of a model, in creation order.
///
/// It implements candle-nn's `SimpleBackend`, so layers (ours or a user's candle modules)
/// are built through an ordinary [`VarBuilder`] from [`ParamStore::var_builder`].
pub struct ParamStore {
    inner: Mutex<StoreInner>,
}

struct StoreInner {
    vars: Vec<(String, Var)>,
    rng: SimRng,
    /// Tensors read from a file: `get` takes them instead of initialising.
    loaded: Option<HashMap<String, Tensor>>,
}

impl ParamStore {
    /// An empty store whose initial values are drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        ParamStore {
            inner: Mutex::new(StoreInner { vars: Vec::new(), rng: SimRng::seed_from_u64(seed), loaded: None }),
        }
    }

    /// A store whose parameters come from `tensors` (a loaded file); asking for a missing
    /// name or a wrong shape is an error.
    pub fn from_tensors(tensors: HashMap<String, Tensor>) -> Self {
        ParamStore {
            inner: Mutex::new(StoreInner { vars: Vec::new(), rng: SimRng::seed_from_u64(0), loaded: Some(tensors) }),
        }
    }

    /// A new store that starts from a copy of this one's current values (a warm start:
    /// building the same network on it continues training from here, leaving this store as
    /// it is).
    pub fn warm_copy(&self) -> Result<Self> {
        let tensors = self
            .named_tensors()
            .into_iter()
            .map(|(name, t)| Ok((name, t.copy()?)))
            .collect::<candle_core::Result<HashMap<String, Tensor>>>()?;
        Ok(Self::from_tensors(tensors))
    }

    /// A `VarBuilder` creating its variables in this store (f32, CPU).
    pub fn var_builder(&self) -> VarBuilder<'_> {
        VarBuilder::from_backend(Box::new(self), DTYPE, Device::Cpu)
    }

    /// The variables, in creation order.
    pub fn vars(&self) -> Vec<Var> {
        self.lock().vars.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Names and current values, in creation order.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.lock().vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect()
    }

    /// A copy of every value (for restoring the best epoch).
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        Ok(self.lock().vars.iter().map(|(_, v)| v.as_tensor().copy()).collect::<candle_core::Result<_>>()?)
    }

    /// Sets every variable from a [`snapshot`](ParamStore::snapshot).
    pub fn restore(&self, snapshot: &[Tensor]) -> Result<()> {
        for ((_, v), t) in self.lock().vars.iter().zip(snapshot) {
            v.set(t)?;
        }
        Ok(())
    }

    /// Number of scalar parameters.
    pub fn num_parameters(&self) -> usize {
        self.lock().vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn init_values(rng: &mut SimRng, shape: &Shape, init: Init) -> Vec<f32> {
    let n = shape.elem_count();
    let uniform =
        |rng: &mut SimRng, lo: f64, up: f64| (0..n).map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32).collect();
    let normal = |rng: &mut SimRng, mean: f64, sd: f64| {
        (0..n).map(|_| (mean + sd * rng.sample::<f64, _>(StandardNormal)) as f32).collect()
    };
    match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Uniform { lo, up } => uniform(rng, lo, up),
        Init::Randn { mean, stdev } => normal(rng, mean, stdev),
        Init::Kaiming { dist, fan, non_linearity } => {
            let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => uniform(rng, -(3f64.sqrt()) * std, 3f64.sqrt() * std),
                NormalOrUniform::Normal => normal(rng, 0.0, std),
            }
        }
    }
}

impl candle_nn::var_builder::SimpleBackend for &ParamStore {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut inner = self.lock();
        if let Some((_, v)) = inner.vars.iter().find(|(n, _)| n == name) {
            if v.shape() != &s {
                candle_core::bail!("parameter {name} has shape {:?}, asked for {s:?}", v.shape());
            }
            return Ok(v.as_tensor().clone());
        }
        let tensor = match &inner.loaded {
            Some(map) => {
                let t = map
                    .get(name)
                    .ok_or_else(|| candle_core::Error::Msg(format!("the file has no parameter {name}")))?;
                if t.shape() != &s {
                    candle_core::bail!("parameter {name} has shape {:?} in the file, the model needs {s:?}", t.shape());
                }
                t.to_dtype(dtype)?.to_device(dev)?
            }
            None => {
                let values = init_values(&mut inner.rng, &s, h);
                Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?
            }
        };
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        inner.vars.push((name.to_string(), var));
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        let inner = self.lock();
        inner
            .vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_tensor().clone())
            .ok_or_else(|| candle_core::Error::Msg(format!("no parameter {name}")))
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let inner = self.lock();
        inner.vars.iter().any(|(n, _)| n == name) || inner.loaded.as_ref().is_some_and(|m| m.contains_key(name))
    }
}

/// Prepares the process for many small tensor operations; called before any network runs.
///
/// - candle asks for the thread count on every CPU op and, unless `RAYON_NUM_THREADS` is
///   set, re-reads the machine's CPU list each time, which costs more than the arithmetic
///   of a small network. The variable is set once, to rayon's own default.
/// - glibc gives freed memory back to the system and maps blocks over 128 KiB afresh, so
///   the many short-lived tensors of a training step keep faulting in new pages. Raising
///   the trim and mmap thresholds to 1 GiB keeps freed memory for reuse: on two_moons
///   training, page faults fell from 80–180 thousand to 2 thousand and CPU time by about
///   5% (`perf stat`). Set `SBI_KEEP_MALLOC_DEFAULTS=1` to leave glibc's settings alone.
pub(crate) fn ensure_thread_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            // SAFETY: done once, before any network runs; Rust's own environment accesses
            // are serialised by std, and no foreign code of ours reads the environment.
            unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if std::env::var_os("SBI_KEEP_MALLOC_DEFAULTS").is_none() {
            // SAFETY: mallopt only changes allocator thresholds; it is thread-safe in glibc.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
                libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            }
        }
    });
}

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
pub fn tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.dtype() == DType::F32 && x.device().is_cpu() { x.contiguous()?.apply_op1(FastTanh) } else { x.tanh() }
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
    pub fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Tanh => tanh(x),
            Activation::Relu => x.relu(),
        }
    }
}

/// PyTorch's default `nn.Linear` initialisation bound, `1/√fan_in`.
fn torch_bound(fan_in: usize) -> Init {
    let b = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform { lo: -b, up: b }
}

/// A column of ones `[batch, 1]`: adding the bias as `ones · bᵀ` makes its gradient a
/// matrix product, much faster in candle than the reduction behind `broadcast_add`.
fn ones_column(x: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::ones((x.dim(0)?, 1), x.dtype(), x.device())
}

/// `act(x (W∘M)ᵀ + b)`: one fused op on CPU f32 tensors, candle's ops elsewhere.
fn dense(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    mask: Option<&(Tensor, std::sync::Arc<[f32]>)>,
    activation: Option<Activation>,
) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && weight.dtype() == DType::F32 {
        let op = crate::fused::Dense { mask: mask.map(|(_, m)| m.clone()), activation };
        return x.contiguous()?.apply_op3(weight, bias, op);
    }
    let w = match mask {
        Some((m, _)) => (weight * m)?,
        None => weight.clone(),
    };
    let y = (x.matmul(&w.t()?)? + ones_column(x)?.matmul(bias)?)?;
    match activation {
        Some(a) => a.apply(&y),
        None => Ok(y),
    }
}

/// A dense layer `y = x Wᵀ + b`, initialised as PyTorch's `nn.Linear`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Creates the layer's parameters `weight` `[out, in]` and `bias` `[1, out]` under `vb`.
    pub fn new(vb: VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Self> {
        let init = torch_bound(inputs);
        Ok(Linear {
            weight: vb.get_with_hints((outputs, inputs), "weight", init)?,
            bias: vb.get_with_hints((1, outputs), "bias", init)?,
        })
    }

    /// Applies the layer to `x` `[batch, in]`, then `activation` if given.
    pub fn forward_act(&self, x: &Tensor, activation: Option<Activation>) -> candle_core::Result<Tensor> {
        dense(x, &self.weight, &self.bias, None, activation)
    }

    /// Applies the layer to `x` `[batch, in]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_act(x, None)
    }
}

/// A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE).
#[derive(Debug, Clone)]
pub struct MaskedLinear {
    linear: Linear,
    mask: (Tensor, std::sync::Arc<[f32]>),
}

impl MaskedLinear {
    /// Creates the layer with `mask` `[out, in]` (1 where a connection is allowed).
    pub fn new(vb: VarBuilder, mask: Vec<f32>, inputs: usize, outputs: usize) -> candle_core::Result<Self> {
        let tensor = Tensor::from_vec(mask.clone(), (outputs, inputs), &Device::Cpu)?;
        Ok(MaskedLinear { linear: Linear::new(vb, inputs, outputs)?, mask: (tensor, mask.into()) })
    }

    /// Applies the masked layer, then `activation` if given.
    pub fn forward_act(&self, x: &Tensor, activation: Option<Activation>) -> candle_core::Result<Tensor> {
        dense(x, &self.linear.weight, &self.linear.bias, Some(&self.mask), activation)
    }
}

/// A multi-layer perceptron: `layers.len() − 1` linear layers with the activation between them.
#[derive(Debug, Clone)]
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
}

impl Mlp {
    /// An MLP with sizes `[in, hidden..., out]`.
    pub fn new(vb: VarBuilder, sizes: &[usize], activation: Activation) -> candle_core::Result<Self> {
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| Linear::new(vb.pp(i), w[0], w[1]))
            .collect::<candle_core::Result<_>>()?;
        Ok(Mlp { layers, activation })
    }

    /// Applies the network to `x` `[batch, in]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward_act(&h, (i + 1 < self.layers.len()).then_some(self.activation))?;
        }
        Ok(h)
    }
}

/// A residual MLP: `h = W₀ x`, then blocks `h += W₂ relu(W₁ relu(h))`, then a linear output
/// (nflows' `ResidualNet` without batch norm or dropout: `sbi`'s NSF conditioner and classifier).
pub struct ResidualNet {
    input: Linear,
    blocks: Vec<(Linear, Linear)>,
    output: Linear,
}

impl ResidualNet {
    /// `inputs → hidden`, `blocks` residual blocks, `hidden → outputs`.
    pub fn new(
        vb: VarBuilder,
        inputs: usize,
        hidden: usize,
        blocks: usize,
        outputs: usize,
    ) -> candle_core::Result<Self> {
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

    /// Applies the network to `x` `[batch, inputs]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = self.input.forward(x)?;
        for (a, b) in &self.blocks {
            let t = a.forward_act(&h.relu()?, Some(Activation::Relu))?;
            h = (h + b.forward(&t)?)?;
        }
        self.output.forward(&h)
    }
}

/// A network that turns a (standardised, flattened) observation `[batch, numel]` into
/// features `[batch, k]`; trained end to end with the density estimator or classifier.
pub trait Embedding: Send + Sync {
    /// Applies the network.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor>;
}

/// Builds a user's own embedding network (any candle module) inside the model's parameter
/// store, so that it is trained, saved and loaded with the estimator.
pub trait EmbeddingBuilder: Send + Sync {
    /// A name stored in saved models; loading checks it.
    fn name(&self) -> String;
    /// Creates the network for observations of `input` shape; returns it and its output width.
    fn build(&self, vb: VarBuilder, input: &crate::model::Shape) -> candle_core::Result<(Box<dyn Embedding>, usize)>;
}

/// The embedding network applied to observations before the estimator.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum EmbeddingNet {
    /// No embedding: the estimator sees the flattened observation (the default).
    #[default]
    Identity,
    /// An MLP with ReLU hidden layers of the given widths and `output` features.
    Mlp {
        /// Hidden layer widths.
        hidden: Vec<usize>,
        /// Output width.
        output: usize,
    },
    /// A 1-D CNN over a time series ([`Shape::Sequence`](crate::model::Shape)): a
    /// convolution of width `kernel` per entry of `channels`, each with ReLU and pooling by
    /// 2, then a linear layer to `output` features.
    Cnn1d {
        /// Output channels of each convolution.
        channels: Vec<usize>,
        /// Convolution width (odd).
        kernel: usize,
        /// Output width.
        output: usize,
    },
    /// A 2-D CNN over images ([`Shape::Image`](crate::model::Shape)): a `kernel × kernel`
    /// convolution per entry of `channels`, each with ReLU and 2 × 2 max-pooling, then a
    /// linear layer to `output` features.
    Cnn2d {
        /// Output channels of each convolution.
        channels: Vec<usize>,
        /// Convolution size (odd).
        kernel: usize,
        /// Output width.
        output: usize,
    },
    /// DeepSets over iid trials ([`Shape::Trials`](crate::model::Shape)): an MLP φ per
    /// trial (widths `hidden`), the mean over trials, an MLP ρ to `output` features.
    /// Invariant to the order of the trials.
    DeepSets {
        /// φ's layer widths.
        hidden: Vec<usize>,
        /// Output width.
        output: usize,
    },
    /// A GRU over a time series ([`Shape::Sequence`](crate::model::Shape)); its last
    /// state, through a linear layer, gives `output` features.
    Gru {
        /// Hidden units.
        hidden: usize,
        /// Output width.
        output: usize,
    },
    /// A user's own network; saved models record its name.
    #[serde(skip)]
    Custom(std::sync::Arc<dyn EmbeddingBuilder>),
}

impl std::fmt::Debug for EmbeddingNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmbeddingNet::Identity => f.write_str("Identity"),
            EmbeddingNet::Mlp { hidden, output } => write!(f, "Mlp {{ hidden: {hidden:?}, output: {output} }}"),
            EmbeddingNet::Cnn1d { channels, kernel, output } => {
                write!(f, "Cnn1d {{ channels: {channels:?}, kernel: {kernel}, output: {output} }}")
            }
            EmbeddingNet::Cnn2d { channels, kernel, output } => {
                write!(f, "Cnn2d {{ channels: {channels:?}, kernel: {kernel}, output: {output} }}")
            }
            EmbeddingNet::DeepSets { hidden, output } => {
                write!(f, "DeepSets {{ hidden: {hidden:?}, output: {output} }}")
            }
            EmbeddingNet::Gru { hidden, output } => write!(f, "Gru {{ hidden: {hidden}, output: {output} }}"),
            EmbeddingNet::Custom(b) => write!(f, "Custom({})", b.name()),
        }
    }
}

struct IdentityEmbedding;

impl Embedding for IdentityEmbedding {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }
}

impl Embedding for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Mlp::forward(self, x)
    }
}

impl EmbeddingNet {
    /// Builds the network for observations of `input` shape; returns it and its output width.
    pub fn build(
        &self,
        vb: VarBuilder,
        input: &crate::model::Shape,
    ) -> candle_core::Result<(Box<dyn Embedding>, usize)> {
        let n = input.numel();
        match self {
            EmbeddingNet::Identity => Ok((Box::new(IdentityEmbedding), n)),
            EmbeddingNet::Mlp { hidden, output } => {
                let sizes: Vec<usize> = std::iter::once(n).chain(hidden.iter().copied()).chain([*output]).collect();
                Ok((Box::new(Mlp::new(vb, &sizes, Activation::Relu)?), *output))
            }
            EmbeddingNet::Cnn1d { channels, kernel, output } => {
                let ObsShape::Sequence { len, channels: c } = *input else { return Err(self.mismatch(input)) };
                Ok((Box::new(crate::embedding::Cnn1d::new(vb, len, c, channels, *kernel, *output)?), *output))
            }
            EmbeddingNet::Cnn2d { channels, kernel, output } => {
                let ObsShape::Image { channels: c, height, width } = *input else { return Err(self.mismatch(input)) };
                Ok((
                    Box::new(crate::embedding::Cnn2d::new(vb, (c, height, width), channels, *kernel, *output)?),
                    *output,
                ))
            }
            EmbeddingNet::DeepSets { hidden, output } => {
                let ObsShape::Trials { trials, features } = *input else { return Err(self.mismatch(input)) };
                Ok((Box::new(crate::embedding::DeepSets::new(vb, trials, features, hidden, *output)?), *output))
            }
            EmbeddingNet::Gru { hidden, output } => {
                let ObsShape::Sequence { len, channels } = *input else { return Err(self.mismatch(input)) };
                Ok((Box::new(crate::embedding::Gru::new(vb, len, channels, *hidden, *output)?), *output))
            }
            EmbeddingNet::Custom(b) => b.build(vb, input),
        }
    }

    fn mismatch(&self, input: &ObsShape) -> candle_core::Error {
        candle_core::Error::Msg(self.validate(input).err().map_or_else(String::new, |e| e.to_string()))
    }

    /// Checks, before anything is built or trained, that this network fits observations of
    /// `shape`: the CNNs and the GRU need series or images, DeepSets trials; the CNNs need
    /// an odd kernel, at least one layer, and an input that survives their poolings.
    ///
    /// # Errors
    /// [`Error::Config`] naming the network and the observations' shape.
    pub fn validate(&self, shape: &ObsShape) -> Result<()> {
        let fail = |why: String| Err(Error::Config(format!("{self:?} does not fit data of shape {shape}: {why}")));
        let layers_ok = |channels: &[usize], kernel: usize, output: usize| -> std::result::Result<(), String> {
            if channels.is_empty() || channels.contains(&0) || output == 0 {
                return Err("it needs at least one layer, and every layer and the output need a width".into());
            }
            if kernel.is_multiple_of(2) {
                return Err(format!("the kernel must be odd (for 'same' padding), got {kernel}"));
            }
            Ok(())
        };
        match (self, shape) {
            (EmbeddingNet::Identity | EmbeddingNet::Custom(_), _) => Ok(()),
            (EmbeddingNet::Mlp { hidden, output }, _) => {
                if hidden.contains(&0) || *output == 0 {
                    fail("every layer needs a width".into())
                } else {
                    Ok(())
                }
            }
            (EmbeddingNet::Cnn1d { channels, kernel, output }, ObsShape::Sequence { len, .. }) => {
                layers_ok(channels, *kernel, *output).or_else(fail)?;
                if len >> channels.len() == 0 {
                    return fail(format!("{} poolings by 2 leave nothing of {len} steps", channels.len()));
                }
                Ok(())
            }
            (EmbeddingNet::Cnn2d { channels, kernel, output }, ObsShape::Image { height, width, .. }) => {
                layers_ok(channels, *kernel, *output).or_else(fail)?;
                if height >> channels.len() == 0 || width >> channels.len() == 0 {
                    return fail(format!(
                        "{} poolings by 2 leave nothing of {height} × {width} pixels",
                        channels.len()
                    ));
                }
                Ok(())
            }
            (EmbeddingNet::DeepSets { hidden, output }, ObsShape::Trials { .. }) => {
                if hidden.is_empty() || hidden.contains(&0) || *output == 0 {
                    fail("φ needs at least one layer, and every layer and the output need a width".into())
                } else {
                    Ok(())
                }
            }
            (EmbeddingNet::Gru { hidden, output }, ObsShape::Sequence { .. }) => {
                if *hidden == 0 || *output == 0 {
                    fail("the GRU and the output need a width".into())
                } else {
                    Ok(())
                }
            }
            (EmbeddingNet::Cnn1d { .. } | EmbeddingNet::Gru { .. }, _) => {
                fail("it takes a time series (len × channels: a `TimeSeries` observation)".into())
            }
            (EmbeddingNet::Cnn2d { .. }, _) => fail("it takes images (channels × height × width)".into()),
            (EmbeddingNet::DeepSets { .. }, _) => {
                fail("it takes sets of trials (a `Vec<[f64; F]>` observation)".into())
            }
        }
    }

    /// A description stored in saved models.
    pub(crate) fn describe(&self) -> String {
        match self {
            EmbeddingNet::Custom(b) => format!("custom:{}", b.name()),
            other => serde_json::to_string(other).expect("embedding configs serialise"),
        }
    }
}

/// A row-major `f64` matrix as an f32 tensor `[rows, cols]`.
pub fn matrix(values: &[f64], rows: usize, cols: usize) -> Result<Tensor> {
    if values.len() != rows * cols {
        return Err(Error::shape("matrix", rows * cols, values.len()));
    }
    Ok(Tensor::from_vec(values.iter().map(|&v| v as f32).collect::<Vec<f32>>(), (rows, cols), &Device::Cpu)?)
}

/// A tensor's values as `f64`, row-major.
pub fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn parameters_are_seeded_and_ordered() {
        let make = |seed| {
            let store = ParamStore::new(seed);
            let vb = store.var_builder();
            Mlp::new(vb.pp("net"), &[3, 8, 2], Activation::Relu).unwrap();
            store.named_tensors()
        };
        let (a, b, c) = (make(1), make(1), make(2));
        let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["net.0.weight", "net.0.bias", "net.1.weight", "net.1.bias"]);
        for ((_, x), (_, y)) in a.iter().zip(&b) {
            assert_eq!(to_f64(x).unwrap(), to_f64(y).unwrap());
        }
        assert_ne!(to_f64(&a[0].1).unwrap(), to_f64(&c[0].1).unwrap());
    }

    #[test]
    fn linear_matches_its_definition() {
        let store = ParamStore::new(3);
        let layer = Linear::new(store.var_builder(), 2, 3).unwrap();
        let x = Tensor::new(&[[1f32, 2.0], [-1.0, 0.5]], &Device::Cpu).unwrap();
        let y = layer.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        let w = layer.weight.to_vec2::<f32>().unwrap();
        let b = layer.bias.to_vec2::<f32>().unwrap();
        let xs = [[1f32, 2.0], [-1.0, 0.5]];
        for r in 0..2 {
            for o in 0..3 {
                let expected = w[o][0] * xs[r][0] + w[o][1] * xs[r][1] + b[0][o];
                assert!((y[r][o] - expected).abs() < 1e-6);
            }
        }
    }
}
