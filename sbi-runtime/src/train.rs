//! One training loop for every method: Adam on mini-batches, a held-out validation set,
//! early stopping on the validation loss (restoring the best parameters), gradient-norm
//! clipping, seeded shuffling and a progress line. Defaults are `sbi`'s.

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::ParamStore;
use crate::rng::{SimRng, stream_rng};

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
    /// Clip the gradient's global L2 norm to this value (5.0); `None` disables clipping.
    pub clip_max_norm: Option<f64>,
    /// Seed of the initialisation, the split and the shuffling (0).
    pub seed: u64,
    /// Show a progress line on stderr (true; never drawn when stderr is not a terminal).
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 200,
            learning_rate: 5e-4,
            validation_fraction: 0.1,
            stop_after_epochs: 20,
            max_epochs: (1 << 31) - 1,
            clip_max_norm: Some(5.0),
            seed: 0,
            progress: true,
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
    /// Shows or hides progress.
    pub fn with_progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    fn validate(&self, n: usize) -> Result<(usize, usize)> {
        if self.batch_size == 0 || !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) || self.max_epochs == 0
        {
            return Err(Error::Config(format!(
                "batch size, learning rate and max epochs must be positive (and finite), got {}, {} and {}",
                self.batch_size, self.learning_rate, self.max_epochs
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
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return Err(Error::Config(format!(
                "validation fraction must be in (0, 1), got {}",
                self.validation_fraction
            )));
        }
        let n_val = ((n as f64 * self.validation_fraction).ceil() as usize).max(1);
        let n_train = n.saturating_sub(n_val);
        if n_train < 2 {
            return Err(Error::Config(format!("{n} simulations are too few to train on")));
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

/// Training data: rows of `a` and `b` belong together (θ and x).
pub(crate) struct Pairs {
    pub a: Tensor,
    pub b: Tensor,
}

/// Trains the parameters in `store` to minimise `loss(a_batch, b_batch)` (a scalar mean).
pub(crate) fn fit(
    store: &ParamStore,
    data: &Pairs,
    config: &TrainConfig,
    loss: impl Fn(&Tensor, &Tensor, &mut SimRng) -> candle_core::Result<Tensor> + Sync,
) -> Result<TrainingSummary> {
    crate::nn::ensure_thread_env();
    let start = Instant::now();
    let n = data.a.dim(0)?;
    let (n_train, n_val) = config.validate(n)?;
    let mut rng = stream_rng(config.seed, 0x0074_7261_696e);
    let mut order: Vec<u32> = (0..n as u32).collect();
    shuffle(&mut order, &mut rng);
    let (train_idx, val_idx) = order.split_at(n_train);
    let val_idx = Tensor::new(val_idx, &Device::Cpu)?;
    let (val_a, val_b) = (data.a.index_select(&val_idx, 0)?, data.b.index_select(&val_idx, 0)?);
    let mut train_idx = train_idx.to_vec();
    let batch = config.batch_size.min(n_train);

    let mut opt = crate::fused::Adam::new(store.vars(), config.learning_rate, config.clip_max_norm);
    let bar = progress_bar(config.progress);
    let mut summary = TrainingSummary {
        epochs: 0,
        best_epoch: 0,
        best_validation_loss: f64::INFINITY,
        train_loss: Vec::new(),
        validation_loss: Vec::new(),
        converged: false,
        seconds: 0.0,
        steps: 0,
    };
    let mut best = store.snapshot()?;
    let mut since_best = 0;
    for epoch in 1..=config.max_epochs {
        shuffle(&mut train_idx, &mut rng);
        let mut total = 0.0;
        let mut batches = 0;
        // Full batches only, as `sbi` (drop_last): a tiny last batch would add noise.
        for (b, chunk) in train_idx.chunks_exact(batch).enumerate() {
            let value = step(&mut opt, data, chunk, config.seed, (epoch * n + b) as u64, &loss)?;
            if !value.is_finite() {
                bar.abandon();
                return Err(Error::TrainingDiverged { epoch, loss: value });
            }
            total += value;
            batches += 1;
        }
        summary.steps += batches;
        let val = validation_loss(&val_a, &val_b, batch.max(SPLIT_BATCH_FROM), &loss)?;
        summary.train_loss.push(total / batches.max(1) as f64);
        summary.validation_loss.push(val);
        summary.epochs = epoch;
        if !val.is_finite() {
            bar.abandon();
            return Err(Error::TrainingDiverged { epoch, loss: val });
        }
        if val < summary.best_validation_loss {
            summary.best_validation_loss = val;
            summary.best_epoch = epoch;
            best = store.snapshot()?;
            since_best = 0;
        } else {
            since_best += 1;
        }
        bar.set_message(format!(
            "epoch {epoch}: train {:.4}, validation {val:.4} (best {:.4} at epoch {}) [{n_train} train / {n_val} validation]",
            total / batches.max(1) as f64,
            summary.best_validation_loss,
            summary.best_epoch
        ));
        bar.tick();
        if since_best >= config.stop_after_epochs {
            summary.converged = true;
            break;
        }
    }
    store.restore(&best)?;
    summary.seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(summary)
}

/// Batches of at least this many rows are split in two halves whose gradients are computed
/// in parallel (`rayon::join`) and added in a fixed order. Small networks keep one core busy
/// per batch, so this uses the second core; the split does not depend on the thread count,
/// so neither do the results.
const SPLIT_BATCH_FROM: usize = 64;

/// One optimiser step on the rows `idx`; returns the batch's mean loss. `key` numbers the
/// step: each part of the batch gets the random stream `(seed, 2·key + part)` for losses that
/// draw (contrastive atoms), whatever the thread that runs it.
fn step(
    opt: &mut crate::fused::Adam,
    data: &Pairs,
    idx: &[u32],
    seed: u64,
    key: u64,
    loss: &(impl Fn(&Tensor, &Tensor, &mut SimRng) -> candle_core::Result<Tensor> + Sync),
) -> Result<f64> {
    let part = |rows: &[u32], which: u64| -> candle_core::Result<(f64, candle_core::backprop::GradStore)> {
        let t = Tensor::new(rows, &Device::Cpu)?;
        let mut rng = stream_rng(seed ^ 0x6c6f_7373, 2 * key + which);
        // Each part's mean, weighted by its share of the batch: the parts sum to the batch mean.
        let l = (loss(&data.a.index_select(&t, 0)?, &data.b.index_select(&t, 0)?, &mut rng)?
            * (rows.len() as f64 / idx.len() as f64))?;
        Ok((l.to_scalar::<f32>()? as f64, l.backward()?))
    };
    let (value, grads) = if idx.len() >= SPLIT_BATCH_FROM {
        let (first, second) = idx.split_at(idx.len() / 2);
        let (a, b) = rayon::join(|| part(first, 0), || part(second, 1));
        let ((va, ga), (vb, gb)) = (a?, b?);
        (va + vb, vec![ga, gb])
    } else {
        let (v, g) = part(idx, 0)?;
        (v, vec![g])
    };
    if value.is_finite() {
        opt.step(&grads)?;
    }
    Ok(value)
}

/// The mean loss over all rows, in chunks of at most `chunk` rows evaluated in parallel and
/// added in order (so the result does not depend on the thread count).
fn validation_loss(
    a: &Tensor,
    b: &Tensor,
    chunk: usize,
    loss: &(impl Fn(&Tensor, &Tensor, &mut SimRng) -> candle_core::Result<Tensor> + Sync),
) -> Result<f64> {
    use rayon::prelude::*;
    let n = a.dim(0)?;
    let starts: Vec<usize> = (0..n).step_by(chunk.max(1)).collect();
    let parts = starts
        .par_iter()
        .map(|&start| {
            let len = chunk.min(n - start);
            // The same draws every epoch, so that validation losses compare.
            let mut rng = stream_rng(0x76_616c_6964, start as u64);
            let l = loss(&a.narrow(0, start, len)?, &b.narrow(0, start, len)?, &mut rng)?.to_scalar::<f32>()? as f64;
            Ok(l * len as f64)
        })
        .collect::<candle_core::Result<Vec<f64>>>()?;
    Ok(parts.iter().sum::<f64>() / n as f64)
}

fn shuffle(v: &mut [u32], rng: &mut SimRng) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}

fn progress_bar(show: bool) -> ProgressBar {
    let target = if show { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(ProgressStyle::with_template("training [{elapsed_precise}] {msg}").expect("the template is valid"));
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}
