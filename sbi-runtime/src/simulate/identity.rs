//! A model's identity: what makes two models the same for the purpose of reusing their
//! simulations or trained networks. It has four parts, compared in this order:
//!
//! - the parameters' names;
//! - a digest of the model's source, the prior statements and simulator body that
//!   `#[simulator]` saw;
//! - the settings' values (the simulator struct's fields), as text and a digest;
//! - its behaviour: a few simulations (θ from the prior, then x) at fixed random streams.
//!   Code outside the function's body (a helper it calls, a crate it uses) shows up here.
//!
//! Checkpoints, simulation files and model files store the identity; resuming, training and
//! loading compare it with the model at hand and refuse another model with
//! [`Error::ModelMismatch`], saying which part differs.

use std::hash::Hasher;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ModelPart, Result};
use crate::model::{Observation, Parameters, Prior, Shape, Simulator};
use crate::rng::stream_rng;
use crate::simulate::panics::QuietPanics;

/// Simulations run to fingerprint a model's behaviour.
pub const PROBES: u64 = 3;
/// The seed of the probes' random streams (fixed, whatever the run's seed).
const PROBE_SEED: u64 = 0x1d3e_7175_6465_6e74;
/// Values of each probe's observation stored beyond the summaries.
const HEAD: usize = 16;
/// Relative tolerance of the behavioural comparison: far above the last-bit differences of
/// another platform's maths library, far below any change of a model worth noticing.
const TOLERANCE: f64 = 1e-7;

/// The identity of a model: its parameters' names, a digest of its `#[simulator]` source,
/// its settings' values, and its behaviour at fixed random streams ([`PROBES`] simulations).
/// Checkpoints, simulation files and model files store it; resuming, training, appending
/// and loading compare it with the model at hand ([`ModelIdentity::difference`]) and
/// refuse another model with [`Error::ModelMismatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// The parameters' names.
    pub names: Vec<String>,
    /// The digest of the `#[simulator]` function's tokens; `None` for a hand-written model.
    pub source: Option<String>,
    /// The settings' values as text, cut to 200 characters (for messages).
    pub settings: String,
    /// A digest of the settings' full text.
    pub settings_digest: String,
    /// Simulations at fixed random streams.
    pub behaviour: Vec<Probe>,
}

/// One simulation at a fixed random stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// The stream's index.
    pub index: u64,
    /// What happened.
    pub outcome: ProbeOutcome,
}

/// What a probe simulation gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProbeOutcome {
    /// A simulation: θ, the observation's shape, its first finite values and summaries.
    Simulated {
        /// The parameters drawn from the prior.
        theta: Vec<f64>,
        /// The observation's shape.
        shape: Shape,
        /// The first finite values of the observation.
        head: Vec<f64>,
        /// The mean of its finite values.
        mean: f64,
        /// The mean of their absolute values.
        mean_abs: f64,
        /// How many values are NaN (absent trials) or infinite.
        non_finite: usize,
    },
    /// The prior could not be sampled.
    PriorFailed,
    /// The prior or the simulator panicked.
    Panicked,
}

impl ModelIdentity {
    /// The identity of `model`, running [`PROBES`] simulations.
    pub fn of<S: Simulator>(model: &S) -> ModelIdentity {
        let prior = model.prior();
        let hook = QuietPanics::install();
        let behaviour = (0..PROBES)
            .map(|index| {
                let mut rng = stream_rng(PROBE_SEED, index);
                let outcome = match hook.run(|| prior.sample(&mut rng)) {
                    Err(_) => ProbeOutcome::Panicked,
                    Ok(Err(_)) => ProbeOutcome::PriorFailed,
                    Ok(Ok(params)) => match hook.run(|| model.simulate(&params, &mut rng)) {
                        Err(_) => ProbeOutcome::Panicked,
                        Ok(x) => summarise(params.to_vec(), &x),
                    },
                };
                Probe { index, outcome }
            })
            .collect();
        let settings = model.settings();
        let mut h = fnv::FnvHasher::default();
        h.write(settings.as_bytes());
        ModelIdentity {
            names: prior.names(),
            source: model.source_digest().map(str::to_string),
            settings: settings.chars().take(200).collect(),
            settings_digest: format!("{:016x}", h.finish()),
            behaviour,
        }
    }

    /// The first part in which `self` (the model at hand) and `saved` differ, with the two
    /// values in words; `None` when they are the same model.
    pub fn difference(&self, saved: &ModelIdentity) -> Option<(ModelPart, String, String)> {
        if self.names != saved.names {
            return Some((ModelPart::Parameters, format!("{:?}", saved.names), format!("{:?}", self.names)));
        }
        if self.source != saved.source {
            let show = |s: &Option<String>| s.clone().unwrap_or_else(|| "none (a hand-written model)".into());
            return Some((ModelPart::Source, show(&saved.source), show(&self.source)));
        }
        if self.settings_digest != saved.settings_digest {
            return Some((ModelPart::Settings, saved.settings.clone(), self.settings.clone()));
        }
        if self.behaviour.len() != saved.behaviour.len() {
            let n = |b: &[Probe]| format!("{} probe simulations", b.len());
            return Some((ModelPart::Behaviour, n(&saved.behaviour), n(&self.behaviour)));
        }
        for (now, then) in self.behaviour.iter().zip(&saved.behaviour) {
            if let (ProbeOutcome::Simulated { shape: a, .. }, ProbeOutcome::Simulated { shape: b, .. }) =
                (&now.outcome, &then.outcome)
                && a != b
            {
                return Some((ModelPart::ObservationShape, b.to_string(), a.to_string()));
            }
            if now.index != then.index || !same_outcome(&now.outcome, &then.outcome) {
                return Some((
                    ModelPart::Behaviour,
                    format!("probe {}: {}", then.index, describe(&then.outcome)),
                    describe(&now.outcome),
                ));
            }
        }
        None
    }

    /// Checks that `saved` (read from `what`) is this model's identity.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`] naming the part that differs, with `advice`.
    pub(crate) fn check(&self, saved: &ModelIdentity, what: impl FnOnce() -> String, advice: &str) -> Result<()> {
        match self.difference(saved) {
            None => Ok(()),
            Some((part, saved, now)) => {
                Err(Error::ModelMismatch { what: what(), part, saved, now, advice: advice.to_string() })
            }
        }
    }
}

fn summarise<O: Observation>(theta: Vec<f64>, x: &O) -> ProbeOutcome {
    let mut values = Vec::new();
    x.write_flat(&mut values);
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let n = finite.len().max(1) as f64;
    ProbeOutcome::Simulated {
        theta,
        shape: x.shape(),
        head: finite.iter().copied().take(HEAD).collect(),
        mean: finite.iter().sum::<f64>() / n,
        mean_abs: finite.iter().map(|v| v.abs()).sum::<f64>() / n,
        non_finite: values.len() - finite.len(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOLERANCE * (1.0 + a.abs().max(b.abs()))
}

fn all_close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(*x, *y))
}

fn same_outcome(a: &ProbeOutcome, b: &ProbeOutcome) -> bool {
    match (a, b) {
        (
            ProbeOutcome::Simulated { theta: t1, shape: s1, head: h1, mean: m1, mean_abs: a1, non_finite: n1 },
            ProbeOutcome::Simulated { theta: t2, shape: s2, head: h2, mean: m2, mean_abs: a2, non_finite: n2 },
        ) => s1 == s2 && n1 == n2 && all_close(t1, t2) && all_close(h1, h2) && close(*m1, *m2) && close(*a1, *a2),
        (ProbeOutcome::PriorFailed, ProbeOutcome::PriorFailed) | (ProbeOutcome::Panicked, ProbeOutcome::Panicked) => {
            true
        }
        _ => false,
    }
}

fn describe(o: &ProbeOutcome) -> String {
    match o {
        ProbeOutcome::Simulated { theta, head, mean, .. } => {
            let short = |v: &[f64]| v.iter().take(4).map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(", ");
            format!("θ = [{}], x starts [{}], mean {mean:.6}", short(theta), short(head))
        }
        ProbeOutcome::PriorFailed => "the prior could not be sampled".into(),
        ProbeOutcome::Panicked => "it panicked".into(),
    }
}
