//! One training loop for every method: Adam on mini-batches, a held-out validation set,
//! early stopping on the validation loss (restoring the best parameters), optional
//! learning-rate halvings on plateaus and a final linear annealing, gradient-norm clipping,
//! seeded shuffling and a progress line. Defaults are `sbi`'s.

mod config;
pub mod losses;

pub use config::{TrainConfig, TrainingSummary};
pub use losses::Loss;

use std::time::Instant;

use candle_core::Tensor;
use indicatif::ProgressBar;
use rand::RngExt;

use crate::error::{Error, Result};
use crate::nn::ParamStore;
use crate::rng::{SimRng, stream_rng};

/// Training data: rows of `a` and `b` belong together (θ and x).
pub(crate) struct Pairs {
    pub a: Tensor,
    pub b: Tensor,
}

/// Trains the parameters in `store` to minimise `loss` on batches of `data`.
///
/// The loop runs on a rayon worker, so that each step's split batch (`rayon::join`) is
/// shared with the other worker directly instead of being injected from outside the pool
/// with the caller blocked on it: FMPE on two_moons measured 23,606 context switches
/// against 41,030 (`perf stat`), with identical results. The caller's kernel selection
/// (thread-local: [`crate::nn::with_candle_ops`]) goes with it onto the worker.
pub(crate) fn fit(store: &ParamStore, data: &Pairs, config: &TrainConfig, loss: &dyn Loss) -> Result<TrainingSummary> {
    let mode = crate::nn::kernels::generic_mode();
    rayon::scope(|_| crate::nn::kernels::with_mode(mode, || fit_on_pool(store, data, config, loss)))
}

fn fit_on_pool(store: &ParamStore, data: &Pairs, config: &TrainConfig, loss: &dyn Loss) -> Result<TrainingSummary> {
    let start = Instant::now();
    let n = data.a.dim(0)?;
    let (n_train, n_val) = config.validate(n)?;
    let mut rng = stream_rng(config.seed, 0x0074_7261_696e);
    let mut order: Vec<u32> = (0..n as u32).collect();
    shuffle(&mut order, &mut rng);
    let (train_idx, val_idx) = order.split_at(n_train);
    let val_idx = Tensor::new(val_idx, data.a.device())?;
    let (val_a, val_b) = (data.a.index_select(&val_idx, 0)?, data.b.index_select(&val_idx, 0)?);
    let mut train_idx = train_idx.to_vec();
    let batch = config.batch_size.min(n_train);

    let mut opt = crate::nn::kernels::Adam::new(store.vars(), config.learning_rate, config.clip_max_norm)?;
    if let Some(d) = config.ema_decay {
        opt = opt.with_ema(d)?;
    }
    let bar = progress_bar(config.progress);
    let mut summary = TrainingSummary {
        epochs: 0,
        best_epoch: 0,
        best_validation_loss: f64::INFINITY,
        train_loss: Vec::new(),
        validation_loss: Vec::new(),
        converged: false,
        lr_decayed_after: Vec::new(),
        annealed_after: None,
        seconds: 0.0,
        steps: 0,
    };
    let mut best = store.snapshot()?;
    let mut since_best = 0;
    // The final annealing, once begun: its first epoch, its length and its starting rate.
    let mut anneal: Option<(usize, usize, f64)> = None;
    for epoch in 1..=config.max_epochs {
        if let Some((first, length, lr0)) = anneal {
            opt.set_learning_rate(lr0 * (1.0 - (epoch - first) as f64 / length as f64));
        }
        shuffle(&mut train_idx, &mut rng);
        let mut total = 0.0;
        let mut batches = 0;
        // Full batches only, as `sbi` (drop_last): a tiny last batch would add noise.
        for (b, chunk) in train_idx.chunks_exact(batch).enumerate() {
            let value = step(&mut opt, data, chunk, config.seed, (epoch * n + b) as u64, loss)?;
            if !value.is_finite() {
                bar.abandon();
                return Err(Error::TrainingDiverged { epoch, loss: value });
            }
            total += value;
            batches += 1;
        }
        summary.steps += batches;
        // With averaging, the averaged parameters are the ones validated and kept.
        let current = match opt.averages() {
            Some(average) => {
                let current = store.snapshot()?;
                store.restore(average)?;
                Some(current)
            }
            None => None,
        };
        let val = validation_loss(&val_a, &val_b, batch.max(SPLIT_BATCH_FROM), loss)?;
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
        if let Some(current) = &current {
            store.restore(current)?;
        }
        bar.set_message(format!(
            "epoch {epoch}: train {:.4}, validation {val:.4} (best {:.4} at epoch {}) [{n_train} train / {n_val} validation]",
            total / batches.max(1) as f64,
            summary.best_validation_loss,
            summary.best_epoch
        ));
        bar.tick();
        let decaying = summary.lr_decayed_after.len() < config.lr_decays;
        let patience =
            if decaying { config.lr_patience.unwrap_or(config.stop_after_epochs) } else { config.stop_after_epochs };
        if let Some((first, length, _)) = anneal {
            // The annealing runs its epochs to the end: the loss often improves late in it.
            if epoch + 1 - first >= length {
                summary.converged = true;
                break;
            }
            continue;
        }
        if since_best >= patience {
            if let (false, Some(length)) = (decaying, config.lr_anneal_epochs) {
                store.restore(&best)?;
                opt.reset_ema()?;
                anneal = Some((epoch + 1, length, opt.learning_rate()));
                summary.annealed_after = Some(epoch);
                since_best = 0;
                continue;
            }
            if decaying {
                store.restore(&best)?;
                opt.reset_ema()?;
                opt.scale_learning_rate(0.5);
                summary.lr_decayed_after.push(epoch);
                since_best = 0;
                continue;
            }
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
    opt: &mut crate::nn::kernels::Adam,
    data: &Pairs,
    idx: &[u32],
    seed: u64,
    key: u64,
    loss: &dyn Loss,
) -> Result<f64> {
    // The kernel selection of this thread goes with the parts onto rayon's threads.
    let mode = crate::nn::kernels::generic_mode();
    let part = |rows: &[u32], which: u64| -> candle_core::Result<(f64, candle_core::backprop::GradStore)> {
        crate::nn::kernels::with_mode(mode, || part_step(data, rows, idx.len(), seed, 2 * key + which, loss))
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

/// The loss on the rows `rows` of a batch of `batch` rows, weighted by their share of it
/// (the parts sum to the batch mean), and its gradients; draws use stream `(seed, stream)`.
fn part_step(
    data: &Pairs,
    rows: &[u32],
    batch: usize,
    seed: u64,
    stream: u64,
    loss: &dyn Loss,
) -> candle_core::Result<(f64, candle_core::backprop::GradStore)> {
    let t = Tensor::new(rows, data.a.device())?;
    let mut rng = stream_rng(seed ^ 0x6c6f_7373, stream);
    let l = (loss.loss(&data.a.index_select(&t, 0)?, &data.b.index_select(&t, 0)?, &mut rng)?
        * (rows.len() as f64 / batch as f64))?;
    Ok((l.to_scalar::<f32>()? as f64, l.backward()?))
}

/// The mean loss over all rows, in chunks of at most `chunk` rows evaluated in parallel and
/// added in order (so the result does not depend on the thread count).
fn validation_loss(a: &Tensor, b: &Tensor, chunk: usize, loss: &dyn Loss) -> Result<f64> {
    use rayon::prelude::*;
    let n = a.dim(0)?;
    let starts: Vec<usize> = (0..n).step_by(chunk.max(1)).collect();
    let mode = crate::nn::kernels::generic_mode();
    let parts = starts
        .par_iter()
        .map(|&start| {
            crate::nn::kernels::with_mode(mode, || {
                let len = chunk.min(n - start);
                // The same draws every epoch, so that validation losses compare.
                let mut rng = stream_rng(0x76_616c_6964, start as u64);
                let l = loss.loss(&a.narrow(0, start, len)?, &b.narrow(0, start, len)?, &mut rng)?.to_scalar::<f32>()?
                    as f64;
                Ok(l * len as f64)
            })
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
    crate::progress::bar(show, None, "training [{elapsed_precise}] {msg}", true)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A loss `mean(w²)` of one parameter that records the kernel selection it ran under.
    struct Recording<'a> {
        w: &'a Tensor,
        modes: Mutex<Vec<bool>>,
    }

    impl Loss for Recording<'_> {
        fn loss(&self, a: &Tensor, _b: &Tensor, _rng: &mut SimRng) -> candle_core::Result<Tensor> {
            self.modes.lock().unwrap().push(crate::nn::kernels::generic_mode());
            (self.w.broadcast_mul(&a.ones_like()?)?).sqr()?.mean_all()
        }
    }

    /// Training runs on a pool worker, yet every loss evaluation (training steps and
    /// validation) uses the kernels the caller selected, in either mode.
    #[test]
    fn training_keeps_the_callers_kernel_selection() {
        let device = candle_core::Device::Cpu;
        let data = Pairs {
            a: Tensor::zeros((100, 1), candle_core::DType::F32, &device).unwrap(),
            b: Tensor::zeros((100, 1), candle_core::DType::F32, &device).unwrap(),
        };
        let config = TrainConfig::default().with_progress(false).with_max_epochs(2);
        for generic in [true, false] {
            let store = ParamStore::new(1);
            let w = store.var_builder().get_with_hints((1, 1), "w", candle_nn::Init::Const(1.0)).unwrap();
            let loss = Recording { w: &w, modes: Mutex::new(Vec::new()) };
            crate::nn::kernels::with_mode(generic, || fit(&store, &data, &config, &loss)).unwrap();
            let modes = loss.modes.into_inner().unwrap();
            assert!(modes.len() > 2, "{} evaluations", modes.len());
            assert!(modes.iter().all(|&m| m == generic), "caller {generic}, saw {modes:?}");
        }
    }
}
