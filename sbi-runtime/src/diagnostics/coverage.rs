//! Coverage: how often held-out true parameters fall in their posterior's central credible
//! interval; a calibrated posterior covers them at the nominal rate.

use crate::error::{Error, Result};
use crate::inference::Posterior;

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
    /// draws (`n × dim`) at the observation `x` of the parameters `truth`. Shows a progress
    /// bar unless [`crate::set_progress`]`(false)`.
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
        // Shown unless progress is off for the whole run (`crate::set_progress`).
        let bar = crate::progress::bar(true, Some(tests.len() as u64), "coverage {bar:30} {pos}/{len} tests", false);
        for (truth, x) in tests.theta.chunks_exact(d).zip(tests.x.chunks_exact(f)) {
            c.add(&draws(truth, x)?, truth)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(c)
    }

    /// The coverage of `posterior` over held-out simulations `tests`, from `n` draws at each
    /// test's observation (seeded by the posterior's seed and the test's row).
    ///
    /// # Errors
    /// The posterior's sampling errors; as [`Coverage::of`].
    pub fn of_posterior<P: Posterior>(
        posterior: &P,
        tests: &crate::simulate::Simulations,
        level: f64,
        n: usize,
    ) -> Result<Coverage> {
        let mut row = 0u64;
        Coverage::of(tests, level, |_, x| {
            row += 1;
            Ok(posterior.sample_with_seed(x, n, posterior.seed().wrapping_add(row))?.values)
        })
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
