//! Local C2ST (L-C2ST, Linhart et al. 2023): is the posterior right at this `x_o`, with no
//! reference posterior? A classifier learns to tell joint pairs `(θ_i, x_i)` from pairs
//! `(θ'_i ~ q(θ | x_i), x_i)`; at `x_o` it sees only posterior draws, and when `q` is right
//! it cannot do better than chance there. Its null distribution comes from permuted labels.

use rayon::prelude::*;

use crate::diagnostics::c2st::{Classifier, shuffle};
use crate::diagnostics::{C2stConfig, Calibration};
use crate::error::{Error, Result};
use crate::estimators::Standardizer;
use crate::inference::Posterior;
use crate::rng::stream_rng;
use crate::simulate::Simulations;

/// Settings of [`LocalC2st::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocalC2stConfig {
    /// Classifiers trained on permuted labels for the null distribution (100, as `sbi`).
    pub null_trials: usize,
    /// Posterior draws at `x_o` the classifier is evaluated on (10,000).
    pub eval_draws: usize,
    /// Seed of the draws, the permutations and the classifiers (0).
    pub seed: u64,
    /// Show a progress bar (true).
    pub progress: bool,
}

impl Default for LocalC2stConfig {
    fn default() -> Self {
        LocalC2stConfig { null_trials: 100, eval_draws: 10_000, seed: 0, progress: true }
    }
}

/// The result of [`LocalC2st::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocalC2st {
    /// The statistic `mean_j (p(θ_j, x_o) − ½)²` over posterior draws `θ_j` at `x_o`, `p` the
    /// classifier's probability that a pair is a posterior pair: 0 when it cannot tell.
    pub statistic: f64,
    /// The statistic of each classifier trained on permuted labels.
    pub null: Vec<f64>,
    /// `(1 + #{null ≥ statistic}) / (1 + trials)`: small when the posterior at `x_o` is wrong.
    pub pvalue: f64,
    /// The classifier's mean probability over the draws at `x_o` (0.5 when it cannot tell;
    /// above, the draws look unlike joint pairs).
    pub mean_probability: f64,
    /// Calibration pairs the posterior failed on (left out).
    pub excluded: usize,
}

impl LocalC2st {
    /// Draws one posterior sample at each test's observation (`tests`: simulated from the
    /// prior, not the training's), trains the classifier and its null classifiers, and
    /// evaluates them on `config.eval_draws` posterior draws at `x_o`.
    ///
    /// # Errors
    /// The posterior's errors at `x_o`; [`Error::Observation`] for an `x_o` of another size
    /// than a test simulation's; [`Error::Config`] for fewer than 20 usable tests,
    /// no null trials or no evaluation draws; [`Error::ShapeMismatch`] when the tests'
    /// parameters are not the posterior's; [`Error::ModelMismatch`] when they come from
    /// another model.
    pub fn run<P: Posterior>(
        posterior: &P,
        tests: &Simulations,
        x_o: &[f64],
        config: &LocalC2stConfig,
    ) -> Result<LocalC2st> {
        let (d, f) = check(posterior, tests, config)?;
        let evaluation = posterior.sample_with_seed(x_o, config.eval_draws, config.seed)?;
        let bar = crate::progress::bar(
            config.progress,
            Some((tests.len() + config.null_trials + 1) as u64),
            "L-C2ST {bar:30} {pos}/{len} (draws, then classifiers)",
            true,
        );
        let muted = crate::progress::Muted::new();
        // One posterior draw per test, in chunks of 100 observations.
        let mut pairs = Pairs::with_capacity(tests.len(), d, f);
        for start in (0..tests.len()).step_by(100) {
            let end = (start + 100).min(tests.len());
            let runs = posterior.sample_many_with_seed(
                &tests.x[start * f..end * f],
                f,
                1,
                config.seed.wrapping_add(start as u64),
            )?;
            for (k, run) in runs.into_iter().enumerate() {
                let i = start + k;
                match run {
                    Ok(run) if run.samples().values.len() == d => pairs.push(tests, i, &run.samples().values),
                    _ => pairs.excluded += 1,
                }
            }
            bar.inc((end - start) as u64);
        }
        drop(muted);
        pairs.test(&evaluation.values, x_o, config, &bar)
    }

    /// As [`LocalC2st::run`], with the one posterior draw per test taken from a calibration
    /// of the same tests (its data-averaged posterior's draws, [`Calibration::dap`]) rather
    /// than drawn again: for NLE and NRE, one MCMC run per test saved.
    ///
    /// # Errors
    /// As [`LocalC2st::run`]; [`Error::Config`] when `calibration` was not run on `tests`.
    pub fn from_calibration<P: Posterior>(
        posterior: &P,
        calibration: &Calibration,
        tests: &Simulations,
        x_o: &[f64],
        config: &LocalC2stConfig,
    ) -> Result<LocalC2st> {
        let (d, f) = check(posterior, tests, config)?;
        let excluded: std::collections::HashSet<u64> = calibration.excluded.iter().map(|e| e.index).collect();
        let kept: Vec<usize> = (0..tests.len()).filter(|&i| !excluded.contains(&tests.index[i])).collect();
        let truths: Vec<f64> = kept.iter().flat_map(|&i| tests.theta[i * d..(i + 1) * d].iter().copied()).collect();
        if truths != calibration.truths || calibration.dap.len() != truths.len() {
            return Err(Error::Config("L-C2ST: the calibration was not run on these tests".into()));
        }
        let evaluation = posterior.sample_with_seed(x_o, config.eval_draws, config.seed)?;
        let bar = crate::progress::bar(
            config.progress,
            Some((config.null_trials + 1) as u64),
            "L-C2ST {bar:30} {pos}/{len} classifiers",
            true,
        );
        let mut pairs = Pairs::with_capacity(kept.len(), d, f);
        pairs.excluded = calibration.excluded.len();
        for (k, &i) in kept.iter().enumerate() {
            pairs.push(tests, i, &calibration.dap[k * d..(k + 1) * d]);
        }
        pairs.test(&evaluation.values, x_o, config, &bar)
    }

    /// A one-line summary with a verdict at 5%.
    pub fn describe(&self) -> String {
        let verdict = if self.pvalue < 0.05 {
            "the posterior at x_o is NOT consistent with the model"
        } else {
            "consistent with the true posterior at x_o"
        };
        format!(
            "L-C2ST: statistic {:.4} (mean probability {:.3}), p {:.3} over {} permutations: {verdict}",
            self.statistic,
            self.mean_probability,
            self.pvalue,
            self.null.len()
        )
    }
}

/// Checks the tests and settings; returns the parameters' and a test observation's sizes.
fn check<P: Posterior>(posterior: &P, tests: &Simulations, config: &LocalC2stConfig) -> Result<(usize, usize)> {
    let d = posterior.names().len();
    if tests.theta_dim() != d {
        return Err(Error::shape("L-C2ST test parameters", d, tests.theta_dim()));
    }
    super::check_model(posterior, tests, "L-C2ST's test simulations")?;
    if config.null_trials == 0 || config.eval_draws == 0 {
        return Err(Error::Config("L-C2ST needs null trials and evaluation draws".into()));
    }
    Ok((d, tests.x_dim()))
}

/// The classifier's data: joint pairs `[θ_i, x_i]` and posterior pairs `[θ'_i, x_i]`.
struct Pairs {
    joint: Vec<f64>,
    posterior: Vec<f64>,
    /// Parameters per pair (the rest of `dim` is the observation).
    d: usize,
    dim: usize,
    excluded: usize,
}

impl Pairs {
    fn with_capacity(tests: usize, d: usize, f: usize) -> Pairs {
        let dim = d + f;
        Pairs {
            joint: Vec::with_capacity(tests * dim),
            posterior: Vec::with_capacity(tests * dim),
            d,
            dim,
            excluded: 0,
        }
    }

    /// Test `i` of `tests` with its posterior draw `draw`.
    fn push(&mut self, tests: &Simulations, i: usize, draw: &[f64]) {
        let (d, f) = (tests.theta_dim(), tests.x_dim());
        let x = &tests.x[i * f..(i + 1) * f];
        self.joint.extend_from_slice(&tests.theta[i * d..(i + 1) * d]);
        self.joint.extend_from_slice(x);
        self.posterior.extend_from_slice(draw);
        self.posterior.extend_from_slice(x);
    }

    /// Trains the classifier and its null classifiers, and evaluates them on the posterior
    /// draws `evaluation` at `x_o`.
    fn test(
        self,
        evaluation: &[f64],
        x_o: &[f64],
        config: &LocalC2stConfig,
        bar: &indicatif::ProgressBar,
    ) -> Result<LocalC2st> {
        let (d, dim) = (self.d, self.dim);
        if x_o.len() != dim - d {
            bar.finish_and_clear();
            return Err(Error::Observation(format!(
                "L-C2ST compares x_o with single test simulations of {} values, got {}",
                dim - d,
                x_o.len()
            )));
        }
        let n = self.posterior.len() / dim;
        if n < 20 {
            bar.finish_and_clear();
            return Err(Error::Config(format!("L-C2ST needs at least 20 usable tests, got {n}")));
        }
        // Class 0: joint pairs; class 1: posterior pairs. z-scored by all of them.
        let mut data = self.joint;
        data.extend_from_slice(&self.posterior);
        let z = Standardizer::fit(&data, dim);
        let data = z.scale_rows(&data);
        let eval: Vec<f64> =
            z.scale_rows(&evaluation.chunks_exact(d).flat_map(|t| t.iter().chain(x_o).copied()).collect::<Vec<f64>>());
        let labels: Vec<f64> = std::iter::repeat_n(0.0, n).chain(std::iter::repeat_n(1.0, n)).collect();
        let all: Vec<usize> = (0..2 * n).collect();
        let classifier = C2stConfig { seed: config.seed, ..C2stConfig::default() };
        let statistic_of = |y: &[f64], stream: u64| -> Result<(f64, f64)> {
            let c = Classifier::train(&data, y, dim, &all, &classifier, stream, true)?;
            let p = c.probabilities(&eval, dim)?;
            let m = p.len().max(1) as f64;
            Ok((p.iter().map(|v| (v - 0.5).powi(2)).sum::<f64>() / m, p.iter().sum::<f64>() / m))
        };
        let (statistic, mean_probability) = statistic_of(&labels, 0)?;
        bar.inc(1);
        let null = (0..config.null_trials)
            .into_par_iter()
            .map(|t| {
                let mut y = labels.clone();
                shuffle(&mut y, &mut stream_rng(config.seed, 0x1c25_0000 + t as u64));
                let s = statistic_of(&y, 1 + t as u64).map(|(s, _)| s);
                bar.inc(1);
                s
            })
            .collect::<Result<Vec<f64>>>()?;
        bar.finish_and_clear();
        let pvalue = (1 + null.iter().filter(|&&s| s >= statistic).count()) as f64 / (1 + null.len()) as f64;
        Ok(LocalC2st { statistic, null, pvalue, mean_probability, excluded: self.excluded })
    }
}
