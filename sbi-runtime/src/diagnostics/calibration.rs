//! Calibration over test simulations `(θ_i, x_i)` from the prior, from one set of posterior
//! draws at each `x_i`: SBC ranks per parameter (Talts et al. 2018), the expected coverage
//! of highest-density regions from the rank of the posterior's log density (Hermans et al.
//! 2022), and TARP's expected coverage of balls around random references (Lemos et al. 2023).

use rand::RngExt;
use rayon::prelude::*;

use crate::diagnostics::stats::{chi2_uniform_pvalue, ks_uniform_pvalue};
use crate::diagnostics::{C2stConfig, c2st_with};
use crate::error::{Error, Result};
use crate::inference::Posterior;
use crate::rng::stream_rng;
use crate::samplers::Samples;
use crate::simulate::Simulations;

/// Settings of [`Calibration::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationConfig {
    /// Posterior draws per test (1,000, as `sbi`); ranks run from 0 to this.
    pub draws: usize,
    /// Seed of the draws (test `i` of chunk `k` by the posterior's own per-observation
    /// rule), of TARP's references and of the ranks' tie-breaking (0).
    pub seed: u64,
    /// Tests per call of [`Posterior::sample_many_with_seed`] (100): NPE draws at that many
    /// observations with one network call per round of proposals.
    pub chunk: usize,
    /// Also rank the posterior's log density at the truth among the draws', for the
    /// expected coverage of highest-density regions (true; one more posterior call per test).
    pub log_density: bool,
    /// Show a progress bar (true; never drawn when stderr is not a terminal).
    pub progress: bool,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig { draws: 1000, seed: 0, chunk: 100, log_density: true, progress: true }
    }
}

impl CalibrationConfig {
    /// Sets the draws per test.
    pub fn with_draws(mut self, n: usize) -> Self {
        self.draws = n;
        self
    }
    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Sets whether the log density is ranked too.
    pub fn with_log_density(mut self, on: bool) -> Self {
        self.log_density = on;
        self
    }
    /// Sets whether a progress bar shows.
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }
}

/// A test left out of the calibration: the posterior could not be sampled or evaluated at
/// its observation (e.g. outside the training range, or a sampler's budget ran out).
#[derive(Debug, Clone, PartialEq)]
pub struct ExcludedTest {
    /// The test's simulation index.
    pub index: u64,
    /// The posterior's error.
    pub reason: String,
}

/// Ranks and coverage values of test simulations under a posterior (see the module).
///
/// For a calibrated posterior, each parameter's rank among the draws is uniform on
/// `0..=draws`, and so are the log-density ranks and the TARP values on [0, 1]. An
/// overconfident posterior (too narrow) puts truths in its tails: ranks pile up at both
/// ends, the expected coverage lies below the diagonal and TARP's ATC is negative; an
/// underconfident one (too wide) the opposite; a biased one skews the ranks to one side.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// The parameters' names.
    pub names: Vec<String>,
    /// Draws per test.
    pub draws: usize,
    /// The tests' parameters (`tests × dim`, row-major), excluded tests left out.
    pub truths: Vec<f64>,
    /// Per test and parameter (`tests × dim`): the number of draws below the truth.
    pub ranks: Vec<usize>,
    /// Per test: the number of draws whose log density is below the truth's (absent when
    /// not asked for).
    pub density_ranks: Option<Vec<usize>>,
    /// One draw per test (`tests × dim`): draws from the data-averaged posterior, which
    /// is the prior when the posterior is right.
    pub dap: Vec<f64>,
    /// Per test, TARP's `f_i`: the share of draws closer to a random reference point than
    /// the truth (parameters scaled to the tests' range, Euclidean distance).
    pub tarp_values: Vec<f64>,
    /// Tests the posterior failed on.
    pub excluded: Vec<ExcludedTest>,
    /// Test simulations that were already invalid (NaN, panics) and never reached the
    /// posterior: `tests.invalid`.
    pub invalid_simulations: usize,
    /// Tests whose draws came with a sampler warning (MCMC that did not mix, NPE leaking
    /// mass outside the prior), and the first such warning: the samplers run quietly here.
    pub sampler_warnings: (usize, Option<String>),
    seed: u64,
}

/// TARP's expected coverage curve (Lemos et al. 2023) with a bootstrap band.
#[derive(Debug, Clone, PartialEq)]
pub struct Tarp {
    /// Credibility levels α, 0 to 1 in steps of 0.01.
    pub alpha: Vec<f64>,
    /// Expected coverage probability at each α: the share of tests with `f_i < α`.
    pub ecp: Vec<f64>,
    /// The band's lower edge (2.5% of bootstrap resamples of the tests).
    pub lower: Vec<f64>,
    /// The band's upper edge (97.5%).
    pub upper: Vec<f64>,
    /// Area between the curve and the diagonal over α ≥ 0.5 (`sbi`'s ATC): near 0 when
    /// calibrated, negative when overconfident, positive when underconfident.
    pub atc: f64,
    /// The p-value of the Kolmogorov–Smirnov test that the `f_i` are uniform (`sbi`
    /// compares the curve's values with the grid's instead, which is not a test of that).
    pub ks_pvalue: f64,
}

/// The uniformity checks of SBC, one value per parameter (as `sbi`'s `check_sbc`).
#[derive(Debug, Clone, PartialEq)]
pub struct SbcChecks {
    /// Kolmogorov–Smirnov p-values of the ranks against uniform.
    pub ks_pvalues: Vec<f64>,
    /// Pearson χ² p-values of the ranks in 20 bins (fewer when there are few tests: at
    /// least 5 expected per bin).
    pub chi2_pvalues: Vec<f64>,
    /// C2ST accuracy between the ranks and uniform draws (0.5 when uniform).
    pub c2st_ranks: Vec<f64>,
    /// C2ST accuracy between the data-averaged posterior and the tests' parameters (prior
    /// draws) (0.5 when they agree).
    pub c2st_dap: Vec<f64>,
}

impl Calibration {
    /// Draws `config.draws` times from `posterior` at each test's observation and records
    /// the ranks and TARP values. `tests` must be simulated from the prior (e.g.
    /// [`crate::simulate::simulate`] with a seed other than the training's). Tests the
    /// posterior fails on are excluded and listed in [`Calibration::excluded`].
    ///
    /// # Errors
    /// [`Error::Config`] for no draws, no tests, or when the posterior fails on every test
    /// (with the first test's reason); [`Error::ShapeMismatch`] when the tests' parameters
    /// are not the posterior's; [`Error::ModelMismatch`] when the tests come from another
    /// model than the posterior's.
    pub fn run<P: Posterior>(posterior: &P, tests: &Simulations, config: &CalibrationConfig) -> Result<Calibration> {
        let names = posterior.names();
        let (d, f, l) = (names.len(), tests.x_dim(), config.draws);
        if l == 0 {
            return Err(Error::Config("calibration needs at least one posterior draw per test".into()));
        }
        if tests.is_empty() || f == 0 {
            return Err(Error::Config("calibration needs test simulations, got none".into()));
        }
        if tests.theta_dim() != d {
            return Err(Error::shape("calibration test parameters", d, tests.theta_dim()));
        }
        super::check_model(posterior, tests, "the calibration's test simulations")?;
        let n = tests.len();
        // TARP: parameters scaled to the tests' range, one uniform reference per test.
        let range = crate::inference::FeatureRange::of(&tests.theta, d);
        let width: Vec<f64> = range.min.iter().zip(&range.max).map(|(lo, hi)| hi - lo + 1e-10).collect();
        let scale = Scale { lo: &range.min, width: &width };
        let mut ref_rng = stream_rng(config.seed, 0x7a52_7000);
        let references: Vec<f64> = (0..n * d).map(|_| ref_rng.random::<f64>()).collect();
        let bar = crate::progress::bar(
            config.progress,
            Some(n as u64),
            "calibration {bar:30} {pos}/{len} tests ({eta})",
            true,
        );
        // The posterior's own bars and warnings, once per test, would bury this bar: they
        // are collected instead.
        let muted = crate::progress::Muted::new();
        let mut per_test: Vec<std::result::Result<TestResult, String>> = Vec::with_capacity(n);
        let chunk = config.chunk.max(1);
        for start in (0..n).step_by(chunk) {
            let end = (start + chunk).min(n);
            let draws = posterior.sample_many_with_seed(
                &tests.x[start * f..end * f],
                f,
                l,
                config.seed.wrapping_add(start as u64),
            )?;
            let results: Vec<_> = draws
                .into_par_iter()
                .enumerate()
                .map(|(k, s)| {
                    let i = start + k;
                    let truth = &tests.theta[i * d..(i + 1) * d];
                    let x = &tests.x[i * f..(i + 1) * f];
                    let reference = &references[i * d..(i + 1) * d];
                    s.and_then(|run| {
                        let warning = run.warnings().into_iter().next();
                        let mut t =
                            one_test(posterior, run.samples(), l, truth, x, (reference, &scale), config.log_density)?;
                        t.warning = warning;
                        Ok(t)
                    })
                    .map_err(|e| e.to_string())
                })
                .collect();
            per_test.extend(results);
            bar.inc((end - start) as u64);
        }
        drop(muted);
        bar.finish_and_clear();
        let mut out = Calibration {
            names,
            draws: l,
            truths: Vec::new(),
            ranks: Vec::new(),
            density_ranks: config.log_density.then(Vec::new),
            dap: Vec::new(),
            tarp_values: Vec::new(),
            excluded: Vec::new(),
            invalid_simulations: tests.invalid.len(),
            sampler_warnings: (0, None),
            seed: config.seed,
        };
        for (i, r) in per_test.into_iter().enumerate() {
            match r {
                Ok(t) => {
                    out.truths.extend_from_slice(&tests.theta[i * d..(i + 1) * d]);
                    out.ranks.extend(t.ranks);
                    if let (Some(all), Some(r)) = (out.density_ranks.as_mut(), t.density_rank) {
                        all.push(r);
                    }
                    out.dap.extend(t.dap);
                    out.tarp_values.push(t.tarp);
                    if let Some(w) = t.warning {
                        out.sampler_warnings.0 += 1;
                        out.sampler_warnings.1.get_or_insert(w);
                    }
                }
                Err(reason) => out.excluded.push(ExcludedTest { index: tests.index[i], reason }),
            }
        }
        if out.tarp_values.is_empty() {
            let first = out.excluded.first().map_or_else(String::new, |e| e.reason.clone());
            return Err(Error::Config(format!("the posterior failed on all {n} tests; the first: {first}")));
        }
        Ok(out)
    }

    /// The tests that count (excluded ones left out).
    pub fn tests(&self) -> usize {
        self.tarp_values.len()
    }

    /// Parameter `j`'s ranks as values in (0, 1), uniform when calibrated: `(r + v)/(L + 1)`
    /// with `v` uniform on (0, 1) (seeded), which turns the discrete ranks into exactly
    /// uniform values under calibration. Empty for an index past the parameters.
    pub fn rank_uniforms(&self, j: usize) -> Vec<f64> {
        let d = self.names.len();
        if j >= d {
            return Vec::new();
        }
        self.jittered(self.ranks.iter().skip(j).step_by(d).copied(), j as u64)
    }

    /// The log-density ranks as values in (0, 1), as [`Calibration::rank_uniforms`].
    pub fn density_uniforms(&self) -> Option<Vec<f64>> {
        self.density_ranks.as_ref().map(|r| self.jittered(r.iter().copied(), u64::MAX))
    }

    fn jittered(&self, ranks: impl Iterator<Item = usize>, stream: u64) -> Vec<f64> {
        let mut rng = stream_rng(self.seed, 0x4a17_0000 ^ stream);
        let l = self.draws as f64;
        ranks.map(|r| (r as f64 + rng.random::<f64>()) / (l + 1.0)).collect()
    }

    /// SBC's checks (see [`SbcChecks`]); the C2STs train small classifiers (seconds).
    ///
    /// # Errors
    /// [`Error::Config`] when there are too few tests for C2ST's folds (10).
    pub fn sbc_checks(&self) -> Result<SbcChecks> {
        let d = self.names.len();
        let n = self.tests();
        let bins = (n / 5).clamp(2, 20);
        let uniforms: Vec<Vec<f64>> = (0..d).map(|j| self.rank_uniforms(j)).collect();
        let c2st_config = C2stConfig { seed: self.seed, ..C2stConfig::default() };
        let mut rng = stream_rng(self.seed, 0x0c25_7000);
        let mut c2st_ranks = Vec::with_capacity(d);
        let mut c2st_dap = Vec::with_capacity(d);
        for (j, u) in uniforms.iter().enumerate() {
            let reference: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
            c2st_ranks.push(c2st_with(u, &reference, 1, &c2st_config)?);
            let dap: Vec<f64> = self.dap.iter().skip(j).step_by(d).copied().collect();
            let prior: Vec<f64> = self.truths.iter().skip(j).step_by(d).copied().collect();
            c2st_dap.push(c2st_with(&dap, &prior, 1, &c2st_config)?);
        }
        Ok(SbcChecks {
            ks_pvalues: uniforms.iter().map(|u| ks_uniform_pvalue(u)).collect(),
            chi2_pvalues: uniforms.iter().map(|u| chi2_uniform_pvalue(u, bins)).collect(),
            c2st_ranks,
            c2st_dap,
        })
    }

    /// The expected coverage of the posterior's highest-density regions at each level in
    /// `levels`: the share of tests whose truth lies in the region of that probability, i.e.
    /// has fewer than `level · draws` draws of higher density. Equals the level when
    /// calibrated; lower means overconfident, higher underconfident. `None` without
    /// density ranks ([`CalibrationConfig::log_density`]).
    pub fn expected_coverage(&self, levels: &[f64]) -> Option<Vec<f64>> {
        let u = self.density_uniforms()?;
        // The share of draws denser than the truth: 1 − u.
        Some(levels.iter().map(|&a| u.iter().filter(|&&v| 1.0 - v < a).count() as f64 / u.len() as f64).collect())
    }

    /// TARP's expected coverage curve with a band from `bootstrap` resamples of the tests
    /// (seeded), its ATC and a Kolmogorov–Smirnov p-value.
    pub fn tarp(&self, bootstrap: usize) -> Tarp {
        let alpha: Vec<f64> = (0..=100).map(|k| k as f64 / 100.0).collect();
        let f = &self.tarp_values;
        let curve = |values: &mut dyn Iterator<Item = f64>| -> Vec<f64> {
            let mut v: Vec<f64> = values.collect();
            v.sort_by(f64::total_cmp);
            alpha.iter().map(|&a| v.partition_point(|&x| x < a) as f64 / v.len().max(1) as f64).collect()
        };
        let ecp = curve(&mut f.iter().copied());
        let mut rng = stream_rng(self.seed, 0xb007_0000);
        // No tests (only if the fields were emptied by hand): no resamples to draw.
        let bootstrap = if f.is_empty() { 0 } else { bootstrap };
        let curves: Vec<Vec<f64>> = (0..bootstrap)
            .map(|_| {
                let picks: Vec<usize> = (0..f.len()).map(|_| rng.random_range(0..f.len())).collect();
                curve(&mut picks.into_iter().map(|i| f[i]))
            })
            .collect();
        let band = |q: f64| -> Vec<f64> {
            (0..alpha.len())
                .map(|k| {
                    let mut at: Vec<f64> = curves.iter().map(|c| c[k]).collect();
                    at.sort_by(f64::total_cmp);
                    if at.is_empty() { ecp[k] } else { at[((at.len() - 1) as f64 * q).round() as usize] }
                })
                .collect()
        };
        let atc = alpha.iter().zip(&ecp).filter(|(a, _)| **a >= 0.5).map(|(a, e)| (e - a) * 0.01).sum();
        Tarp { lower: band(0.025), upper: band(0.975), atc, ks_pvalue: ks_uniform_pvalue(f), ecp, alpha }
    }
}

impl std::fmt::Display for SbcChecks {
    /// One line per parameter: the KS and χ² p-values and the two C2STs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>10} {:>10} {:>11} {:>9}", "KS p", "χ² p", "C2ST ranks", "C2ST DAP")?;
        for j in 0..self.ks_pvalues.len() {
            write!(
                f,
                "\n{:>10.3} {:>10.3} {:>11.3} {:>9.3}",
                self.ks_pvalues[j], self.chi2_pvalues[j], self.c2st_ranks[j], self.c2st_dap[j]
            )?;
        }
        Ok(())
    }
}

impl Calibration {
    /// A text summary: the tests counted and excluded, SBC's checks per parameter, the
    /// expected coverage at 50%, 90% and 95%, and TARP's ATC and KS p-value, with a verdict
    /// for each (at 1%, Bonferroni-corrected over the parameters).
    ///
    /// # Errors
    /// As [`Calibration::sbc_checks`].
    pub fn describe(&self) -> Result<String> {
        let checks = self.sbc_checks()?;
        let mut out = format!(
            "{} tests, {} draws each; {} excluded (posterior failed), {} invalid simulations\n",
            self.tests(),
            self.draws,
            self.excluded.len(),
            self.invalid_simulations
        );
        if let Some(first) = self.excluded.first() {
            out.push_str(&format!("  first exclusion: simulation {}: {}\n", first.index, first.reason));
        }
        if let (count @ 1.., Some(first)) = &self.sampler_warnings {
            out.push_str(&format!(
                "sampler warnings in {count} of {} tests (draws that may not follow the posterior); the first: {first}\n",
                self.tests()
            ));
        }
        out.push_str(&format!("SBC per parameter:\n{:>12} ", "parameter"));
        let table = checks.to_string();
        let mut lines = table.lines();
        out.push_str(lines.next().unwrap_or_default());
        for (name, line) in self.names.iter().zip(lines) {
            out.push_str(&format!("\n{name:>12} {line}"));
        }
        // Both tests of every parameter at a family-wise 1%.
        let level = 0.01 / (2 * self.names.len()).max(1) as f64;
        let rejected: Vec<&str> = self
            .names
            .iter()
            .enumerate()
            .filter(|(j, _)| checks.ks_pvalues[*j] < level || checks.chi2_pvalues[*j] < level)
            .map(|(_, n)| n.as_str())
            .collect();
        out.push_str(&if rejected.is_empty() {
            "\n  ranks: uniform for every parameter (KS and χ² at a family-wise 1%)\n".to_string()
        } else {
            format!("\n  ranks: NOT uniform for {} (KS or χ² at a family-wise 1%)\n", rejected.join(", "))
        });
        if let Some(u) = self.density_uniforms() {
            let p = ks_uniform_pvalue(&u);
            let mean = u.iter().sum::<f64>() / u.len().max(1) as f64;
            let verdict = if p >= 0.01 {
                "uniform"
            } else if mean > 0.5 {
                "NOT uniform: truths too often in high density (underconfident)"
            } else {
                "NOT uniform: truths too often in low density (overconfident or biased)"
            };
            out.push_str(&format!("log-density ranks: KS p {p:.3}, {verdict}\n"));
        }
        if let Some(cov) = self.expected_coverage(&[0.5, 0.9, 0.95]) {
            out.push_str(&format!(
                "expected coverage of HPD regions: {:.3} at 50%, {:.3} at 90%, {:.3} at 95%\n",
                cov[0], cov[1], cov[2]
            ));
        }
        let tarp = self.tarp(200);
        let verdict = if tarp.ks_pvalue >= 0.01 {
            "consistent with calibration"
        } else if tarp.atc < 0.0 {
            "overconfident or biased"
        } else {
            "underconfident or biased"
        };
        out.push_str(&format!("TARP: ATC {:+.3}, KS p {:.3}: {verdict}", tarp.atc, tarp.ks_pvalue));
        Ok(out)
    }
}

/// What one test contributes.
struct TestResult {
    ranks: Vec<usize>,
    density_rank: Option<usize>,
    dap: Vec<f64>,
    tarp: f64,
    warning: Option<String>,
}

/// TARP's scaling of parameters to the tests' range: `(θ − lo) / width` per column.
struct Scale<'a> {
    lo: &'a [f64],
    width: &'a [f64],
}

impl Scale<'_> {
    /// The squared distance between the scaled `theta` and `reference` (already scaled).
    fn distance2(&self, theta: &[f64], reference: &[f64]) -> f64 {
        theta
            .iter()
            .zip(reference)
            .zip(self.lo.iter().zip(self.width))
            .map(|((t, r), (lo, w))| ((t - lo) / w - r).powi(2))
            .sum()
    }
}

fn one_test<P: Posterior>(
    posterior: &P,
    draws: &Samples,
    expected_rows: usize,
    truth: &[f64],
    x: &[f64],
    (reference, scale): (&[f64], &Scale<'_>),
    log_density: bool,
) -> Result<TestResult> {
    let d = truth.len();
    let rows = draws.rows();
    if rows != expected_rows || draws.values.len() != rows * d {
        // Ranks out of another number of draws would not be uniform on 0..=draws.
        return Err(Error::shape("posterior draws (rows × parameters)", expected_rows * d, draws.values.len()));
    }
    let ranks = (0..d).map(|j| draws.values.iter().skip(j).step_by(d).filter(|&&v| v < truth[j]).count()).collect();
    let density_rank = if log_density {
        let mut all = truth.to_vec();
        all.extend_from_slice(&draws.values);
        let lp = posterior.log_density(&all, x)?;
        Some(lp[1..].iter().filter(|&&v| v < lp[0]).count())
    } else {
        None
    };
    let to_truth = scale.distance2(truth, reference);
    let closer = draws.values.chunks_exact(d).filter(|row| scale.distance2(row, reference) < to_truth).count();
    Ok(TestResult {
        ranks,
        density_rank,
        dap: draws.values[..d].to_vec(),
        tarp: closer as f64 / rows as f64,
        warning: None,
    })
}
