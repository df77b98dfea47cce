//! Is the observation typical of the simulations? A kernel two-sample (MMD) test of `x_o`
//! against the training simulations with a Monte Carlo p-value (after `sbi`'s
//! `calc_misspecification_mmd`), and the plain check of `x_o` against the simulations' range.

use rand::RngExt;

use crate::diagnostics::c2st::shuffle;
use crate::error::{Error, Result};
use crate::estimators::Standardizer;
use crate::rng::stream_rng;

/// Settings of [`misspecification_mmd`].
#[derive(Debug, Clone, PartialEq)]
pub struct MmdConfig {
    /// Simulations in the reference set the observation is compared with (1,000, as `sbi`'s
    /// `max_samples`).
    pub reference: usize,
    /// Null statistics, from held-out simulations in the observation's place (1,000).
    pub null_draws: usize,
    /// Seed of the split (0).
    pub seed: u64,
}

impl Default for MmdConfig {
    fn default() -> Self {
        MmdConfig { reference: 1000, null_draws: 1000, seed: 0 }
    }
}

/// The result of [`misspecification_mmd`].
#[derive(Debug, Clone, PartialEq)]
pub struct Misspecification {
    /// The observation's statistic (its MMD to the reference set, up to a term shared by
    /// all statistics).
    pub mmd: f64,
    /// The statistic of each null draw: held-out simulations in the observation's place.
    pub null: Vec<f64>,
    /// The share of null statistics at least as large as the observation's, counting the
    /// observation's own (`(1 + #{null ≥ mmd}) / (1 + null_draws)`): small when `x_o` is
    /// unlike the simulations, i.e. the model is misspecified for it.
    pub pvalue: f64,
    /// The kernel's bandwidth in z-scored units (the median distance between reference
    /// simulations).
    pub bandwidth: f64,
    /// Features of `x_o` outside the simulations' range (any observation row).
    pub outside_range: Vec<usize>,
}

impl Misspecification {
    /// A one-line summary with a verdict at 5%.
    pub fn describe(&self) -> String {
        let verdict = if self.pvalue < 0.05 {
            "x_o is NOT typical of the simulations (misspecified model or prior?)"
        } else {
            "x_o is typical of the simulations"
        };
        let range = if self.outside_range.is_empty() {
            "inside the simulations' range".to_string()
        } else {
            format!("features {:?} outside the simulations' range", self.outside_range)
        };
        format!("misspecification MMD: p {:.3} over {} null draws: {verdict}; {range}", self.pvalue, self.null.len())
    }
}

/// MMD test of the observations `x_o` (`k × f` row-major: one or more iid observations)
/// against simulations `sims` (`n × f`; the training simulations, or any from the prior
/// predictive). Features are z-scored by the simulations; the kernel is Gaussian with the
/// median heuristic's bandwidth, fixed once on the reference set (`sbi` refits it for each
/// statistic; one kernel for all makes the statistics exchangeable under the null). The
/// statistic of a set `Z` against the reference set `Y` is the biased MMD² without its
/// `Y`–`Y` term, which all statistics share: `mean k(Z, Z) − 2 mean k(Z, Y)`. Under the
/// null (x_o drawn as the simulations), `x_o`'s statistic is exchangeable with those of
/// held-out simulations, so the p-value is exact up to Monte Carlo error.
///
/// # Errors
/// [`Error::ShapeMismatch`] for rows of the wrong width; [`Error::Config`] for non-finite
/// values, no null draws, or fewer simulations than the reference set plus `k` (one null
/// draw needs `k` held-out simulations).
pub fn misspecification_mmd(x_o: &[f64], sims: &[f64], f: usize, config: &MmdConfig) -> Result<Misspecification> {
    if f == 0 || x_o.is_empty() || !x_o.len().is_multiple_of(f) || !sims.len().is_multiple_of(f) {
        return Err(Error::shape("misspecification test rows (features)", f, x_o.len() % f.max(1)));
    }
    if x_o.iter().chain(sims).any(|v| !v.is_finite()) {
        return Err(Error::Config("the misspecification test needs finite observations and simulations".into()));
    }
    if config.null_draws == 0 {
        // No null statistics: the p-value would be 1 whatever x_o is.
        return Err(Error::Config("the misspecification test needs at least one null draw".into()));
    }
    let (k, n) = (x_o.len() / f, sims.len() / f);
    let m = config.reference.min(n.saturating_sub(k));
    if m < 2 || n < m + k {
        return Err(Error::Config(format!(
            "the misspecification test needs more simulations than {k} observation rows plus a reference set of 2 or more, got {n}"
        )));
    }
    let range = crate::inference::FeatureRange::of(sims, f);
    let outside_range =
        (0..f).filter(|&j| x_o.iter().skip(j).step_by(f).any(|&v| v < range.min[j] || v > range.max[j])).collect();
    let z = Standardizer::fit(sims, f);
    // A random order of the simulations: the first m are the reference set, the rest
    // supply the null draws.
    let mut rng = stream_rng(config.seed, 0x3d3d_0000);
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, &mut rng);
    let pick = |idx: &[usize]| -> Vec<f64> {
        z.scale_rows(&idx.iter().flat_map(|&i| sims[i * f..(i + 1) * f].iter().copied()).collect::<Vec<_>>())
    };
    let reference = pick(&order[..m]);
    let held_out = &order[m..];
    let dist2 = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum() };
    // Median heuristic over up to 200 reference rows' pairs.
    let h = m.min(200);
    let mut d: Vec<f64> = (0..h)
        .flat_map(|i| (i + 1..h).map(move |j| (i, j)))
        .map(|(i, j)| dist2(&reference[i * f..(i + 1) * f], &reference[j * f..(j + 1) * f]).sqrt())
        .collect();
    d.sort_by(f64::total_cmp);
    let bandwidth = d.get(d.len() / 2).copied().filter(|b| *b > 0.0).unwrap_or(1.0);
    let kernel = |a: &[f64], b: &[f64]| (-dist2(a, b) / (2.0 * bandwidth * bandwidth)).exp();
    let statistic = |set: &[f64]| -> f64 {
        let rows: Vec<&[f64]> = set.chunks_exact(f).collect();
        let within = rows.iter().map(|a| rows.iter().map(|b| kernel(a, b)).sum::<f64>()).sum::<f64>()
            / (rows.len() * rows.len()) as f64;
        let across = rows.iter().map(|a| reference.chunks_exact(f).map(|y| kernel(a, y)).sum::<f64>()).sum::<f64>()
            / (rows.len() * m) as f64;
        within - 2.0 * across
    };
    let mmd = statistic(&z.scale_rows(x_o));
    let null: Vec<f64> = (0..config.null_draws)
        .map(|_| {
            // k distinct held-out simulations.
            let mut chosen: Vec<usize> = Vec::with_capacity(k);
            while chosen.len() < k {
                let i = held_out[rng.random_range(0..held_out.len())];
                if !chosen.contains(&i) {
                    chosen.push(i);
                }
            }
            statistic(&pick(&chosen))
        })
        .collect();
    let pvalue = (1 + null.iter().filter(|&&s| s >= mmd).count()) as f64 / (1 + null.len()) as f64;
    Ok(Misspecification { mmd, null, pvalue, bandwidth, outside_range })
}

/// The result of [`misspecification_log_prob`].
#[derive(Debug, Clone, PartialEq)]
pub struct LogProbTest {
    /// `log p̂(x_o)` under the density estimator of the simulations' marginal.
    pub log_prob: f64,
    /// The share of held-out simulations whose estimated log density is at or below
    /// `x_o`'s: small when `x_o` lies where the simulations rarely go.
    pub pvalue: f64,
    /// C2ST between the estimator's draws and the held-out simulations: near 0.5 when the
    /// estimator is good enough for the test to mean something.
    pub c2st: f64,
    /// What the estimator's training did.
    pub training: crate::train::TrainingSummary,
}

impl LogProbTest {
    /// A one-line summary with a verdict at 5%, and a caution when the estimator is poor
    /// (C2ST above 0.6).
    pub fn describe(&self) -> String {
        let verdict = if self.pvalue < 0.05 { "x_o is NOT typical of the simulations" } else { "x_o is typical" };
        let caution = if self.c2st > 0.6 { " (the estimator is poor here: interpret with care)" } else { "" };
        format!(
            "marginal density test: log p(x_o) {:.3}, p {:.3}: {verdict}; estimator C2ST {:.3}{caution}",
            self.log_prob, self.pvalue, self.c2st
        )
    }
}

/// `sbi`'s `calc_misspecification_logprob`: a density estimator (`estimator`, trained with
/// `training` on 80% of the simulations `sims`, `n × f`) of the simulations' marginal
/// `p(x)`, and where `x_o`'s estimated log density falls among the other 20%'s. Checks the
/// estimator by C2ST between its draws and the held-out simulations.
///
/// # Errors
/// [`Error::ShapeMismatch`] for an observation that is not one row of `f` values;
/// [`Error::Config`] for non-finite values or fewer than 100 simulations; the estimator's
/// settings and training errors.
pub fn misspecification_log_prob(
    x_o: &[f64],
    sims: &[f64],
    f: usize,
    estimator: &crate::estimators::DensityEstimator,
    training: &crate::train::TrainConfig,
) -> Result<LogProbTest> {
    use crate::estimators::{Columns, ConditionalEstimator};
    use crate::train::losses::NegativeLogLikelihood;
    if f == 0 || x_o.len() != f || !sims.len().is_multiple_of(f) {
        return Err(Error::shape("the marginal density test's observation (features)", f, x_o.len()));
    }
    if x_o.iter().chain(sims).any(|v| !v.is_finite()) {
        return Err(Error::Config("the marginal density test needs finite observations and simulations".into()));
    }
    let n = sims.len() / f;
    if n < 100 {
        return Err(Error::Config(format!("the marginal density test needs at least 100 simulations, got {n}")));
    }
    estimator.validate(f)?;
    let mut rng = stream_rng(training.seed, 0x6d61_7267);
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, &mut rng);
    let rows =
        |idx: &[usize]| -> Vec<f64> { idx.iter().flat_map(|&i| sims[i * f..(i + 1) * f].iter().copied()).collect() };
    let cut = n - n / 5;
    let (train, held) = (rows(&order[..cut]), rows(&order[cut..]));
    // An unconditional density: a conditional one with a constant context.
    let spec = crate::estimators::EstimatorSpec {
        estimator: estimator.clone(),
        embedding: crate::nn::EmbeddingNet::Identity.saved(),
        features: f,
        context_shape: crate::model::Shape::Vector(1),
        seed: training.seed,
        input_std: Standardizer::fit(&train, f),
        context_std: Standardizer::fit(&[0.0], 1),
    };
    let store = crate::nn::ParamStore::new(training.seed).with_device(training.device.device()?);
    let est = ConditionalEstimator::build(store, spec, &crate::nn::EmbeddingNet::Identity)?;
    let context = |m: usize| est.context_tensor(&vec![0.0; m], Columns::Observation);
    let data = crate::train::Pairs { a: est.input_tensor(&train, Columns::Observation)?, b: context(cut)? };
    let summary = crate::train::fit(&est.store, &data, training, &NegativeLogLikelihood(&est))?;
    let log_prob = |v: &[f64]| -> Result<Vec<f64>> {
        let m = v.len() / f;
        crate::nn::to_f64(&est.log_prob(&est.input_tensor(v, Columns::Observation)?, &context(m)?)?)
    };
    let held_lp = log_prob(&held)?;
    let lp_o = log_prob(x_o)?[0];
    let pvalue = held_lp.iter().filter(|&&l| l <= lp_o).count() as f64 / held_lp.len() as f64;
    let draws = est.inputs_from(&est.sample(&context(n - cut)?, &mut rng)?)?;
    crate::inference::check_draws(&draws)?;
    let c2st = crate::diagnostics::c2st(&draws, &held, f)?;
    Ok(LogProbTest { log_prob: lp_o, pvalue, c2st, training: summary })
}
