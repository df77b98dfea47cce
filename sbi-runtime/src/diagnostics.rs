//! Diagnostics that say whether a posterior can be trusted.
//!
//! [`c2st`]: the classifier two-sample test of sbibm (Lueckmann et al. 2021). A classifier
//! learns to tell posterior samples from reference samples; its cross-validated accuracy is
//! 0.5 when the two distributions are the same and 1.0 when they are disjoint.
//!
//! [`Coverage`]: how often held-out true parameters fall in their posterior's central
//! credible interval; a calibrated posterior covers them at the nominal rate.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::flows::Standardizer;
use crate::nn::{Activation, Mlp, ParamStore, matrix};
use crate::rng::{SimRng, stream_rng};

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
pub fn c2st(samples: &[f64], reference: &[f64], dim: usize) -> Result<f64> {
    c2st_with(samples, reference, dim, &C2stConfig::default())
}

/// [`c2st`] with explicit settings.
pub fn c2st_with(samples: &[f64], reference: &[f64], dim: usize, config: &C2stConfig) -> Result<f64> {
    crate::nn::ensure_thread_env();
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
    let mut x = Vec::with_capacity((n0 + n1) * dim);
    for row in reference.chunks_exact(dim).chain(samples.chunks_exact(dim)) {
        x.extend(row.iter().zip(z.mean.iter().zip(&z.std)).map(|(v, (m, s))| (v - m) / s));
    }
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

fn gather(x: &[f64], y: &[f64], dim: usize, idx: &[usize]) -> Result<(Tensor, Tensor)> {
    let xs: Vec<f64> = idx.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
    let ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
    Ok((matrix(&xs, idx.len(), dim)?, matrix(&ys, idx.len(), 1)?))
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
    let store = ParamStore::new(config.seed.wrapping_mul(31).wrapping_add(fold));
    let h = 10 * dim;
    let net = Mlp::new(store.var_builder(), &[dim, h, h, 1], Activation::Relu)?;
    let mut opt = crate::fused::Adam::new(store.vars(), 1e-3, None);
    let (xt, yt) = gather(x, y, dim, train)?;
    let mut rng = stream_rng(config.seed, 0x1000 + fold);
    let mut idx: Vec<u32> = (0..train.len() as u32).collect();
    let batch = 200.min(train.len());
    let (mut best, mut stale) = (f64::INFINITY, 0);
    for _ in 0..config.max_epochs {
        shuffle(&mut idx, &mut rng);
        let mut total = 0.0;
        for chunk in idx.chunks(batch) {
            let i = Tensor::new(chunk, &Device::Cpu)?;
            let logits = net.forward(&xt.index_select(&i, 0)?)?;
            let loss = bce_with_logits(&logits, &yt.index_select(&i, 0)?)?;
            total += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            opt.step(&[loss.backward()?])?;
        }
        let epoch_loss = total / train.len() as f64;
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
    let (xs, ys) = gather(x, y, dim, test)?;
    let pred = net.forward(&xs)?.ge(0.0)?.to_dtype(candle_core::DType::F32)?;
    let correct = pred.eq(&ys)?.to_dtype(candle_core::DType::F32)?.sum_all()?.to_scalar::<f32>()? as f64;
    Ok(correct / test.len() as f64)
}

/// Mean binary cross-entropy of logits `l` against labels `y`: `max(l, 0) − l·y + log(1 + e^{−|l|})`.
pub(crate) fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (logits.relu()? - (logits * labels)? + softplus)?.mean_all()
}

fn shuffle<T>(v: &mut [T], rng: &mut SimRng) {
    use rand::RngExt;
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}

/// Empirical coverage of central credible intervals over test simulations: for each
/// `(θ*, x*)` simulated from the prior, draws from the posterior at `x*` give the central
/// `level` interval of each parameter, and a hit is `θ*` inside it. A calibrated posterior
/// hits at the rate `level`, up to the binomial noise [`Coverage::standard_error`]; a lower
/// rate means overconfident intervals, a higher one underconfident.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    /// The intervals' nominal probability (e.g. 0.95).
    pub level: f64,
    /// Hits per parameter.
    pub hits: Vec<usize>,
    /// Tests recorded.
    pub tests: usize,
}

impl Coverage {
    /// An empty tally for `dim` parameters and intervals of probability `level`.
    pub fn new(dim: usize, level: f64) -> Self {
        Coverage { level, hits: vec![0; dim], tests: 0 }
    }

    /// Records one test: posterior `draws` (`n × dim`, row-major) at a simulation of `truth`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the draws or the truth do not have `dim` columns, or no draws.
    pub fn add(&mut self, draws: &[f64], truth: &[f64]) -> Result<()> {
        let d = self.hits.len();
        if d == 0 || truth.len() != d || draws.is_empty() || !draws.len().is_multiple_of(d) {
            return Err(Error::shape("coverage draws and truth (columns)", d, truth.len()));
        }
        let n = draws.len() / d;
        let tail = (1.0 - self.level) / 2.0;
        for (j, hit) in self.hits.iter_mut().enumerate() {
            let mut column: Vec<f64> = draws.iter().skip(j).step_by(d).copied().collect();
            column.sort_by(f64::total_cmp);
            let at = |q: f64| column[((q * n as f64).floor() as usize).min(n - 1)];
            if (at(tail)..=at(1.0 - tail)).contains(&truth[j]) {
                *hit += 1;
            }
        }
        self.tests += 1;
        Ok(())
    }

    /// The coverage over held-out simulations `tests`: `draws(truth, x)` returns posterior
    /// draws (`n × dim`) at the observation `x` of the parameters `truth`.
    ///
    /// # Errors
    /// The errors of `draws`; [`Error::ShapeMismatch`] for draws of the wrong width.
    pub fn of(
        tests: &crate::simulate::Simulations,
        level: f64,
        mut draws: impl FnMut(&[f64], &[f64]) -> Result<Vec<f64>>,
    ) -> Result<Coverage> {
        let (d, f) = (tests.theta_dim(), tests.x_dim());
        if d == 0 || f == 0 {
            return Err(Error::shape("coverage tests (parameters and observations)", 1, 0));
        }
        let mut c = Coverage::new(d, level);
        for (truth, x) in tests.theta.chunks_exact(d).zip(tests.x.chunks_exact(f)) {
            c.add(&draws(truth, x)?, truth)?;
        }
        Ok(c)
    }

    /// The share of tests covered, per parameter.
    pub fn rates(&self) -> Vec<f64> {
        self.hits.iter().map(|&h| h as f64 / self.tests.max(1) as f64).collect()
    }

    /// The binomial standard error of a rate at the nominal level: `√(level (1 − level) / tests)`.
    pub fn standard_error(&self) -> f64 {
        (self.level * (1.0 - self.level) / self.tests.max(1) as f64).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;
    use rand_distr::StandardNormal;

    fn gaussian(n: usize, shift: f64, seed: u64) -> Vec<f64> {
        let mut rng = stream_rng(seed, 0);
        (0..2 * n).map(|_| rng.sample::<f64, _>(StandardNormal) + shift).collect()
    }

    #[test]
    fn same_distribution_scores_near_one_half() {
        let a = gaussian(1000, 0.0, 1);
        let b = gaussian(1000, 0.0, 2);
        let acc = c2st(&a, &b, 2).unwrap();
        // The accuracy of a chance classifier on 2000 points has sd ≈ 0.011; overfitting
        // can only push it below 0.5 by a little.
        assert!((0.44..0.56).contains(&acc), "accuracy {acc}");
    }

    #[test]
    fn separated_distributions_score_near_one() {
        let a = gaussian(1000, 0.0, 1);
        let b = gaussian(1000, 6.0, 2);
        let acc = c2st(&a, &b, 2).unwrap();
        assert!(acc > 0.99, "accuracy {acc}");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(c2st(&[1.0, 2.0, 3.0], &[1.0, 2.0], 2).is_err());
        // Nothing to compare with is an error, not a perfect score.
        assert!(matches!(c2st(&[], &gaussian(100, 0.0, 1), 2), Err(Error::Config(_))));
        assert!(matches!(c2st(&gaussian(100, 0.0, 1), &[], 2), Err(Error::Config(_))));
        assert!(c2st(&[f64::NAN; 20], &[0.0; 20], 2).is_err());
    }

    /// Draws from the exact posterior cover at the nominal rate; draws from a posterior
    /// half as wide do not.
    #[test]
    fn coverage_of_exact_and_overconfident_posteriors() {
        use rand::RngExt;
        use rand_distr::StandardNormal;
        let mut rng = stream_rng(3, 4);
        let (mut exact, mut narrow) = (Coverage::new(1, 0.9), Coverage::new(1, 0.9));
        for _ in 0..2_000 {
            // θ ~ N(0, 1), x ~ N(θ, 1): the posterior is N(x/2, 1/2).
            let theta: f64 = rng.sample(StandardNormal);
            let x = theta + rng.sample::<f64, _>(StandardNormal);
            let draws = |scale: f64, rng: &mut SimRng| -> Vec<f64> {
                (0..400).map(|_| x / 2.0 + scale * 0.5f64.sqrt() * rng.sample::<f64, _>(StandardNormal)).collect()
            };
            exact.add(&draws(1.0, &mut rng), &[theta]).unwrap();
            narrow.add(&draws(0.5, &mut rng), &[theta]).unwrap();
        }
        let se = exact.standard_error();
        // 400 draws place the interval's ends with some noise: allow 1% on top of 5 se.
        assert!((exact.rates()[0] - 0.9).abs() < 5.0 * se + 0.01, "exact: {:?}", exact.rates());
        // Half-width intervals cover P(|z| < 1.645 / 2) ≈ 0.59.
        assert!((narrow.rates()[0] - 0.59).abs() < 5.0 * se + 0.01, "narrow: {:?}", narrow.rates());
        assert!(exact.add(&[1.0, 2.0], &[0.0, 1.0, 2.0]).is_err());
        assert!(Coverage::new(0, 0.9).add(&[1.0], &[]).is_err());
    }
}
