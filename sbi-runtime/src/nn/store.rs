//! The parameter store: every trainable tensor of a model, created in a fixed order from a
//! seeded generator (candle's own initialisers draw from an unseeded one, and `VarMap`
//! iterates in hash order), so the same seed gives the same network and the same training.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::{Init, VarBuilder};
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

use crate::error::{Error, Result};
use crate::rng::SimRng;

/// The dtype of all networks (as in `sbi`).
pub const DTYPE: DType = DType::F32;

/// Owns the trainable parameters of a model, in creation order.
///
/// It implements candle-nn's `SimpleBackend`, so layers (ours or a user's candle modules)
/// are built through an ordinary [`VarBuilder`] from [`ParamStore::var_builder`].
#[derive(Debug)]
pub struct ParamStore {
    inner: Mutex<StoreInner>,
    device: Device,
}

/// Where a model's networks live and compute. The CPU runs the toolkit's hand-written
/// kernels; CUDA and Metal (with the crate's `cuda` or `metal` feature) run the same layers
/// as plain candle ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceChoice {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// An NVIDIA GPU, by ordinal (needs the `cuda` feature).
    Cuda(usize),
    /// An Apple GPU, by ordinal (needs the `metal` feature).
    Metal(usize),
}

impl DeviceChoice {
    /// The candle device.
    ///
    /// # Errors
    /// [`Error::DeviceUnavailable`] when this build lacks the device's feature or the
    /// device is absent.
    pub fn device(&self) -> Result<Device> {
        let unavailable = |what: &str, e: candle_core::Error| Error::DeviceUnavailable {
            device: what.to_string(),
            reason: e.to_string(),
        };
        match *self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(i) => Device::new_cuda(i).map_err(|e| unavailable(&format!("CUDA device {i}"), e)),
            DeviceChoice::Metal(i) => Device::new_metal(i).map_err(|e| unavailable(&format!("Metal device {i}"), e)),
        }
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;

    /// `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N`.
    fn from_str(s: &str) -> Result<Self> {
        let (kind, ordinal) = match s.split_once(':') {
            Some((k, n)) => (k, n.parse().map_err(|_| Error::Config(format!("not a device ordinal: {n:?}")))?),
            None => (s, 0),
        };
        match kind {
            "cpu" if ordinal == 0 => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(ordinal)),
            "metal" => Ok(DeviceChoice::Metal(ordinal)),
            _ => Err(Error::Config(format!("unknown device {s:?}: expected cpu, cuda, cuda:N, metal or metal:N"))),
        }
    }
}

#[derive(Debug)]
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
            device: Device::Cpu,
        }
    }

    /// The same store, creating its variables on `device` (before any is created).
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// The device of every variable.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A store whose parameters come from host values (a file's arrays): name → (shape,
    /// values); asking for a missing name or a wrong shape is an error.
    ///
    /// # Errors
    /// A tensor error when values do not fill their shape.
    pub fn from_values(values: HashMap<String, (Vec<usize>, Vec<f32>)>) -> candle_core::Result<Self> {
        let tensors = values
            .into_iter()
            .map(|(name, (shape, v))| Ok((name, Tensor::from_vec(v, shape, &Device::Cpu)?)))
            .collect::<candle_core::Result<HashMap<String, Tensor>>>()?;
        Ok(Self::from_tensors(tensors))
    }

    /// A store whose parameters come from `tensors` (a loaded file); asking for a missing
    /// name or a wrong shape is an error.
    pub fn from_tensors(tensors: HashMap<String, Tensor>) -> Self {
        ParamStore {
            inner: Mutex::new(StoreInner { vars: Vec::new(), rng: SimRng::seed_from_u64(0), loaded: Some(tensors) }),
            device: Device::Cpu,
        }
    }

    /// A new store that starts from a copy of this one's current values (a warm start:
    /// building the same network on it continues training from here, leaving this store as
    /// it is).
    ///
    /// # Errors
    /// A tensor error when a value cannot be copied.
    pub fn warm_copy(&self) -> Result<Self> {
        let tensors = self
            .named_tensors()
            .into_iter()
            .map(|(name, t)| Ok((name, t.copy()?)))
            .collect::<candle_core::Result<HashMap<String, Tensor>>>()?;
        Ok(Self::from_tensors(tensors).with_device(self.device.clone()))
    }

    /// A `VarBuilder` creating its variables in this store (f32, on the store's device).
    pub fn var_builder(&self) -> VarBuilder<'_> {
        VarBuilder::from_backend(Box::new(self), DTYPE, self.device.clone())
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
    ///
    /// # Errors
    /// A tensor error when a value cannot be copied.
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        Ok(self.lock().vars.iter().map(|(_, v)| v.as_tensor().copy()).collect::<candle_core::Result<_>>()?)
    }

    /// Sets every variable from a [`snapshot`](ParamStore::snapshot).
    ///
    /// # Errors
    /// A tensor error when the snapshot does not match the variables.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Activation, Mlp, to_f64};

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
}
