//! Training settings (`sbi`'s defaults) and what a training did.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::DeviceChoice;

/// Training settings (defaults as `sbi`'s `train()`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Mini-batch size (200).
    pub batch_size: usize,
    /// Adam's learning rate (5e-4).
    pub learning_rate: f64,
    /// Fraction of the simulations held out for validation (0.1).
    pub validation_fraction: f64,
    /// Stop after this many epochs without a better validation loss (20).
    pub stop_after_epochs: usize,
    /// Upper bound on the number of epochs (2³¹ − 1, i.e. none in practice).
    pub max_epochs: usize,
    /// Times the learning rate is halved before training stops (0, as `sbi`): when
    /// `lr_patience` epochs (by default `stop_after_epochs`) bring no better validation loss
    /// and decays are left, the best parameters are restored, the learning rate halves and training goes on (Adam's
    /// moments kept). Adam's steps of about the learning rate per weight jitter the network's
    /// output; where the posterior is very narrow relative to the z-scored parameters
    /// (sequential rounds on a tiny posterior), that jitter is as wide as the posterior and
    /// early stopping ends training while it is still too wide.
    #[serde(default)]
    pub lr_decays: usize,
    /// Epochs without a better validation loss before the learning rate halves, while
    /// halvings are left (`None`: `stop_after_epochs`). Shorter than the stopping patience,
    /// it spends fewer epochs waiting at a learning rate that no longer helps.
    #[serde(default)]
    pub lr_patience: Option<usize>,
    /// A final annealing (`None`, as `sbi`): when the validation loss stops improving and no
    /// halvings are left, the best parameters are restored and, instead of stopping, training
    /// goes on for this many epochs with the learning rate falling linearly from its value to
    /// zero (`lr·(1 − k/E)` in the k-th of E epochs); the parameters with the best
    /// validation loss are kept. The noise of Adam's steps at a constant rate is what keeps
    /// flow matching's validation loss on its plateau: one short decay removes it where
    /// repeated halvings, each waiting for a new plateau, took 1.8–2.5× the epochs for FMPE
    /// (1.2× for NPSE, whose halvings waited 10 epochs each).
    #[serde(default)]
    pub lr_anneal_epochs: Option<usize>,
    /// Averaging of the parameters (`None`, as `sbi`): `Some(d)` keeps their exponential
    /// moving average `a ← d·a + (1 − d)·p` after every step (Polyak averaging; about
    /// `1/(1 − d)` steps long), and the average is what is validated, kept and returned.
    /// The average smooths the jitter of Adam's steps: its validation loss declines without
    /// the lucky minima that end a noisy run early, and it sits nearer the optimum than any
    /// one iterate. Halvings and annealing restart it from the restored parameters.
    #[serde(default)]
    pub ema_decay: Option<f64>,
    /// Clip the gradient's global L2 norm to this value (5.0); `None` disables clipping.
    pub clip_max_norm: Option<f64>,
    /// Seed of the initialisation, the split and the shuffling (0).
    pub seed: u64,
    /// Show a progress line on stderr (true; never drawn when stderr is not a terminal).
    pub progress: bool,
    /// Where the networks train and run (the CPU). See [`DeviceChoice`].
    #[serde(default)]
    pub device: DeviceChoice,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 200,
            learning_rate: 5e-4,
            validation_fraction: 0.1,
            stop_after_epochs: 20,
            max_epochs: (1 << 31) - 1,
            lr_decays: 0,
            lr_patience: None,
            lr_anneal_epochs: None,
            ema_decay: None,
            clip_max_norm: Some(5.0),
            seed: 0,
            progress: true,
            device: DeviceChoice::Cpu,
        }
    }
}

impl TrainConfig {
    /// Sets the batch size.
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    /// Sets the learning rate.
    pub fn with_learning_rate(mut self, lr: f64) -> Self {
        self.learning_rate = lr;
        self
    }
    /// Sets the validation fraction.
    pub fn with_validation_fraction(mut self, f: f64) -> Self {
        self.validation_fraction = f;
        self
    }
    /// Sets the early-stopping patience.
    pub fn with_stop_after_epochs(mut self, n: usize) -> Self {
        self.stop_after_epochs = n;
        self
    }
    /// Sets the maximum number of epochs.
    pub fn with_max_epochs(mut self, n: usize) -> Self {
        self.max_epochs = n;
        self
    }
    /// Sets how many times the learning rate halves on a plateau before training stops
    /// ([`TrainConfig::lr_decays`]).
    pub fn with_lr_decays(mut self, n: usize) -> Self {
        self.lr_decays = n;
        self
    }
    /// Sets the epochs without improvement before each halving ([`TrainConfig::lr_patience`]).
    pub fn with_lr_patience(mut self, epochs: Option<usize>) -> Self {
        self.lr_patience = epochs;
        self
    }
    /// Sets (or removes) the final annealing's epochs ([`TrainConfig::lr_anneal_epochs`]).
    pub fn with_lr_anneal_epochs(mut self, epochs: Option<usize>) -> Self {
        self.lr_anneal_epochs = epochs;
        self
    }
    /// Sets (or removes) the averaging of the parameters ([`TrainConfig::ema_decay`]).
    pub fn with_ema_decay(mut self, d: Option<f64>) -> Self {
        self.ema_decay = d;
        self
    }
    /// Sets (or disables) gradient clipping.
    pub fn with_clip_max_norm(mut self, norm: Option<f64>) -> Self {
        self.clip_max_norm = norm;
        self
    }
    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Sets the device the networks train and run on (`DeviceChoice::Cuda(0)` with the
    /// `cuda` feature). The trained posterior stays there; model files load onto the CPU.
    pub fn with_device(mut self, device: DeviceChoice) -> Self {
        self.device = device;
        self
    }
    /// Shows or hides progress.
    pub fn with_progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    pub(super) fn validate(&self, n: usize) -> Result<(usize, usize)> {
        if self.batch_size == 0
            || !(self.learning_rate > 0.0 && self.learning_rate.is_finite())
            || self.max_epochs == 0
            || self.lr_patience == Some(0)
            || self.lr_anneal_epochs == Some(0)
        {
            return Err(Error::Config(format!(
                "batch size, learning rate, max epochs, the learning-rate patience and the annealing epochs must be \
                 positive (and finite), got {}, {}, {}, {:?} and {:?}",
                self.batch_size, self.learning_rate, self.max_epochs, self.lr_patience, self.lr_anneal_epochs
            )));
        }
        if let Some(norm) = self.clip_max_norm
            && !(norm > 0.0 && norm.is_finite())
        {
            return Err(Error::Config(format!(
                "the gradient clipping norm must be positive and finite (0 freezes training, a negative one \
                 climbs the loss), got {norm}; use `with_clip_max_norm(None)` to turn clipping off"
            )));
        }
        if let Some(d) = self.ema_decay
            && !(d > 0.0 && d < 1.0)
        {
            return Err(Error::Config(format!(
                "the decay of the parameters' moving average must be in (0, 1) (0.995 averages about 200 steps), got {d}"
            )));
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return Err(Error::Config(format!(
                "validation fraction must be in (0, 1), got {}",
                self.validation_fraction
            )));
        }
        let n_val = ((n as f64 * self.validation_fraction).ceil() as usize).max(1);
        let n_train = n.saturating_sub(n_val);
        if n_train < 2 {
            return Err(Error::TooFewSimulations { simulations: n });
        }
        Ok((n_train, n_val))
    }
}

/// What happened during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Epochs run.
    pub epochs: usize,
    /// The epoch (from 1) whose parameters were kept.
    pub best_epoch: usize,
    /// The best validation loss.
    pub best_validation_loss: f64,
    /// Mean training loss of each epoch.
    pub train_loss: Vec<f64>,
    /// Validation loss after each epoch.
    pub validation_loss: Vec<f64>,
    /// Whether it stopped early (rather than at `max_epochs`).
    pub converged: bool,
    /// The epochs (from 1) after which the learning rate was halved ([`TrainConfig::lr_decays`]).
    #[serde(default)]
    pub lr_decayed_after: Vec<usize>,
    /// The epoch (from 1) after which the final annealing began
    /// ([`TrainConfig::lr_anneal_epochs`]), if it did.
    #[serde(default)]
    pub annealed_after: Option<usize>,
    /// Wall time of the whole training.
    pub seconds: f64,
    /// Number of optimiser steps.
    pub steps: usize,
}

impl TrainingSummary {
    /// Mean wall time of one epoch.
    pub fn seconds_per_epoch(&self) -> f64 {
        self.seconds / self.epochs.max(1) as f64
    }
}
