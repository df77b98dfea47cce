//! The classifier two-sample test of sbibm (Lueckmann et al. 2021): a classifier learns to
//! tell posterior samples from reference samples; its cross-validated accuracy is 0.5 when
//! the two distributions are the same and 1.0 when they are disjoint.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::estimators::Standardizer;
use crate::nn::{Activation, Mlp, ParamStore, matrix};
use crate::rng::{SimRng, stream_rng};
use crate::train::losses::bce_with_logits;

/// Settings of [`c2st_with`] (defaults as sbibm's).
#[derive(Debug, Clone, PartialEq)]
pub struct C2stConfig {
    /// Cross-validation folds (5).
    pub folds: usize,
    /// Seed of the fold split and the classifiers (1).
    pub seed: u64,
    /// Upper bound on training epochs per fold (10,000, as scikit-learn's `max_iter`).
    pub max_epochs: usize,
    /// Stop when the training loss has not improved by `tolerance` for `patience` epochs
    /// (scikit-learn's `tol = 1e-4`, `n_iter_no_change = 10`).
    pub tolerance: f64,
    /// See `tolerance` (10).
    pub patience: usize,
}

impl Default for C2stConfig {
    fn default() -> Self {
        C2stConfig { folds: 5, seed: 1, max_epochs: 10_000, tolerance: 1e-4, patience: 10 }
    }
}

/// C2ST accuracy between `samples` and `reference` (both `n × dim`, row-major), with
/// sbibm's procedure: z-score both with the reference's mean and std, label reference 0
/// and samples 1, train an MLP (two hidden layers of `10·dim` ReLU units, Adam, learning
/// rate 1e-3, batches of 200) and report the mean accuracy of shuffled 5-fold cross-validation.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`] for rows of other widths; [`crate::Error::Config`] for
/// non-finite values, an empty side, or fewer rows than folds allow.
pub fn c2st(samples: &[f64], reference: &[f64], dim: usize) -> Result<f64> {
    c2st_with(samples, reference, dim, &C2stConfig::default())
}

/// [`c2st`] with explicit settings.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`] for rows of other widths; [`crate::Error::Config`] for
/// non-finite values, an empty side, or fewer rows than folds allow.
pub fn c2st_with(samples: &[f64], reference: &[f64], dim: usize, config: &C2stConfig) -> Result<f64> {
    if dim == 0 || !samples.len().is_multiple_of(dim) || !reference.len().is_multiple_of(dim) {
        return Err(Error::shape("C2ST samples (rows of dim values)", dim, samples.len() % dim.max(1)));
    }
    if samples.iter().chain(reference).any(|v| !v.is_finite()) {
        return Err(Error::Config("C2ST samples must be finite".into()));
    }
    let (n1, n0) = (samples.len() / dim, reference.len() / dim);
    if n1 == 0 || n0 == 0 {
        return Err(Error::Config(format!(
            "C2ST needs draws on both sides, got {n1} samples and {n0} reference draws"
        )));
    }
    if n1 + n0 < 2 * config.folds || config.folds < 2 {
        return Err(Error::Config(format!("C2ST needs at least {} samples and 2 folds", 2 * config.folds)));
    }
    let z = Standardizer::fit(reference, dim);
    let mut x = z.scale_rows(reference);
    x.extend(z.scale_rows(samples));
    let y: Vec<f64> = std::iter::repeat_n(0.0, n0).chain(std::iter::repeat_n(1.0, n1)).collect();
    let n = n0 + n1;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = stream_rng(config.seed, 0xc2);
    shuffle(&mut order, &mut rng);
    let folds: Vec<Vec<usize>> =
        (0..config.folds).map(|k| order.iter().copied().skip(k).step_by(config.folds).collect()).collect();
    // Folds are independent: train them on parallel threads (each seeded by its index).
    let results: Vec<Result<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..config.folds)
            .map(|k| {
                let (x, y, folds) = (&x, &y, &folds);
                s.spawn(move || {
                    let test = &folds[k];
                    let train: Vec<usize> =
                        (0..config.folds).filter(|&j| j != k).flat_map(|j| folds[j].iter().copied()).collect();
                    fold_accuracy(x, y, dim, &train, test, config, k as u64)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::Config("a C2ST fold panicked".into()))))
            .collect()
    });
    let accs = results.into_iter().collect::<Result<Vec<f64>>>()?;
    Ok(accs.iter().sum::<f64>() / accs.len() as f64)
}

fn gather(x: &[f64], y: &[f64], dim: usize, idx: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
    let xs: Vec<f64> = idx.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
    let ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
    Ok((matrix(&xs, idx.len(), dim, device)?, matrix(&ys, idx.len(), 1, device)?))
}

fn fold_accuracy(
    x: &[f64],
    y: &[f64],
    dim: usize,
    train: &[usize],
    test: &[usize],
    config: &C2stConfig,
    fold: u64,
) -> Result<f64> {
    let classifier = Classifier::train(x, y, dim, train, config, fold, false)?;
    let (xs, ys) = gather(x, y, dim, test, classifier.store.device())?;
    let pred = classifier.net.forward(&xs)?.ge(0.0)?.to_dtype(candle_core::DType::F32)?;
    let correct = pred.eq(&ys)?.to_dtype(candle_core::DType::F32)?.sum_all()?.to_scalar::<f32>()? as f64;
    Ok(correct / test.len() as f64)
}

/// sbibm's C2ST classifier: an MLP (two hidden layers of `10·dim` ReLU units) trained with
/// Adam (learning rate 1e-3, batches of 200) on the cross-entropy until the training loss
/// stalls (scikit-learn's rule), or with `early_stopping` until the loss on a held-out 10%
/// stalls (scikit-learn's `early_stopping`, which L-C2ST uses: its classifier must not
/// overfit, or chance-level pairs look separable).
pub(crate) struct Classifier {
    store: ParamStore,
    net: Mlp,
}

impl Classifier {
    /// Trains on the rows `train` of `x` (`n × dim`, z-scored by the caller) with labels
    /// `y` (0 or 1); `stream` seeds the initialisation and the shuffling with `config.seed`.
    pub(crate) fn train(
        x: &[f64],
        y: &[f64],
        dim: usize,
        train: &[usize],
        config: &C2stConfig,
        stream: u64,
        early_stopping: bool,
    ) -> Result<Classifier> {
        let store = ParamStore::new(config.seed.wrapping_mul(31).wrapping_add(stream));
        let h = 10 * dim;
        let net = Mlp::new(store.var_builder(), &[dim, h, h, 1], Activation::Relu)?;
        let mut opt = crate::nn::kernels::Adam::new(store.vars(), 1e-3, None)?;
        let mut rng = stream_rng(config.seed, 0x1000 + stream);
        let (train, held_out) = if early_stopping {
            let mut order = train.to_vec();
            shuffle(&mut order, &mut rng);
            let cut = order.len() - (order.len() / 10).max(1);
            let held = order.split_off(cut);
            (order, Some(held))
        } else {
            (train.to_vec(), None)
        };
        let train = &train[..];
        let held_out = match &held_out {
            Some(v) => Some(gather(x, y, dim, v, store.device())?),
            None => None,
        };
        let (xt, yt) = gather(x, y, dim, train, store.device())?;
        let mut idx: Vec<u32> = (0..train.len() as u32).collect();
        let batch = 200.min(train.len());
        let (mut best, mut stale) = (f64::INFINITY, 0);
        for _ in 0..config.max_epochs {
            shuffle(&mut idx, &mut rng);
            let mut total = 0.0;
            for chunk in idx.chunks(batch) {
                let i = Tensor::new(chunk, store.device())?;
                let logits = net.forward(&xt.index_select(&i, 0)?)?;
                let loss = bce_with_logits(&logits, &yt.index_select(&i, 0)?)?;
                total += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
                opt.step(&[loss.backward()?])?;
            }
            let epoch_loss = match &held_out {
                Some((xv, yv)) => bce_with_logits(&net.forward(xv)?, yv)?.to_scalar::<f32>()? as f64,
                None => total / train.len() as f64,
            };
            // scikit-learn's rule: count epochs whose loss is not below best − tol.
            if epoch_loss > best - config.tolerance {
                stale += 1;
            } else {
                stale = 0;
            }
            best = best.min(epoch_loss);
            if stale >= config.patience {
                break;
            }
        }
        Ok(Classifier { store, net })
    }

    /// The probability of class 1 for each row of `x` (`m × dim`, z-scored as in training).
    pub(crate) fn probabilities(&self, x: &[f64], dim: usize) -> Result<Vec<f64>> {
        let xt = matrix(x, x.len() / dim.max(1), dim, self.store.device())?;
        let logits = self.net.forward(&xt)?.flatten_all()?;
        let p = candle_nn::ops::sigmoid(&logits)?;
        crate::nn::to_f64(&p)
    }
}

/// Fisher–Yates shuffle of `v` from `rng`.
pub(crate) fn shuffle<T>(v: &mut [T], rng: &mut SimRng) {
    use rand::RngExt;
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}
