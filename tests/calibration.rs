//! Calibration diagnostics (SBC, expected coverage, TARP) on posteriors known to be right or
//! wrong: gaussian_linear's closed-form posterior N(x/2, 0.05·I), and versions of it that
//! are overconfident (sd × 0.5), underconfident (sd × 2) or biased (mean + 1 sd).

#[path = "../examples/models/mod.rs"]
mod models;

use models::gaussian_linear::{DIM, GaussianLinear, POSTERIOR_VARIANCE, posterior_mean};
use sbi_runtime::diagnostics::{Calibration, CalibrationConfig};
use sbi_runtime::prelude::*;
use sbi_runtime::samplers::{RejectionRun, SamplerRun};

type GlPrior = <GaussianLinear as Simulator>::Prior;

/// gaussian_linear's posterior with its sd scaled and its mean shifted by `shift` sds;
/// fails (as an out-of-range observation would) where `x[0] > fail_above`.
struct ClosedForm {
    prior: GlPrior,
    scale: f64,
    shift: f64,
    fail_above: f64,
    /// The acceptance rate its runs report (below 0.2, a leakage warning).
    acceptance: f64,
    seed: u64,
}

impl ClosedForm {
    fn new(scale: f64, shift: f64) -> Self {
        ClosedForm { prior: GaussianLinear.prior(), scale, shift, fail_above: f64::INFINITY, acceptance: 1.0, seed: 0 }
    }

    fn mean_sd(&self, x_o: &[f64]) -> sbi_runtime::Result<(Vec<f64>, f64)> {
        if x_o.len() != DIM {
            return Err(Error::Observation(format!("expected {DIM} values, got {}", x_o.len())));
        }
        if x_o[0] > self.fail_above {
            return Err(Error::Observation("outside the training range".into()));
        }
        let sd = POSTERIOR_VARIANCE.sqrt();
        Ok((posterior_mean(x_o).into_iter().map(|m| m + self.shift * sd).collect(), self.scale * sd))
    }
}

impl Posterior for ClosedForm {
    type Prior = GlPrior;

    fn prior(&self) -> &GlPrior {
        &self.prior
    }
    fn training_summary(&self) -> Option<&sbi_runtime::train::TrainingSummary> {
        None
    }
    fn seed(&self) -> u64 {
        self.seed
    }
    fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    fn without_range_check(self) -> Self {
        self
    }
    fn sample_run_with_seed(&self, x_o: &[f64], n: usize, seed: u64) -> sbi_runtime::Result<SamplerRun> {
        let (mean, sd) = self.mean_sd(x_o)?;
        let mut rng = sbi_runtime::rng::stream_rng(seed, 0);
        let values = (0..n * DIM).map(|k| mean[k % DIM] + sd * rng.sample::<f64, _>(StandardNormal)).collect();
        let samples = Samples { values, names: self.prior.names() };
        Ok(SamplerRun::Rejection(RejectionRun {
            samples,
            proposals: n,
            acceptance_rate: self.acceptance,
            evaluations_per_proposal: None,
        }))
    }
    fn log_density(&self, theta: &[f64], x_o: &[f64]) -> sbi_runtime::Result<Vec<f64>> {
        let (mean, sd) = self.mean_sd(x_o)?;
        Ok(theta
            .chunks_exact(DIM)
            .map(|row| -row.iter().zip(&mean).map(|(t, m)| (t - m).powi(2)).sum::<f64>() / (2.0 * sd * sd))
            .collect())
    }
    fn save(&self, _: impl AsRef<std::path::Path>) -> sbi_runtime::Result<()> {
        Err(Error::Config("a closed-form test posterior is not saved".into()))
    }
    fn load_with<M: Simulator<Prior = GlPrior>>(
        _: impl AsRef<std::path::Path>,
        _: &M,
        _: &EmbeddingNet,
    ) -> sbi_runtime::Result<Self> {
        Err(Error::Config("a closed-form test posterior is not loaded".into()))
    }
}

const TESTS: usize = 500;

fn calibrate(posterior: &ClosedForm, seed: u64) -> Calibration {
    let tests = simulate(&GaussianLinear, TESTS).seed(seed).progress(false).run().unwrap();
    let config = CalibrationConfig::default().with_draws(200).with_seed(seed).with_progress(false);
    Calibration::run(posterior, &tests, &config).unwrap()
}

/// The smallest KS p-value over the parameters.
fn min_ks(c: &Calibration) -> f64 {
    (0..DIM).map(|j| sbi_runtime::diagnostics::stats::ks_uniform_pvalue(&c.rank_uniforms(j))).fold(1.0, f64::min)
}

const LEVELS: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];

/// Binomial 4-sd margin of a share at `level` over the tests.
fn margin(level: f64) -> f64 {
    4.0 * (level * (1.0 - level) / TESTS as f64).sqrt()
}

/// The right posterior passes, over four seeds: every parameter's ranks uniform by KS
/// (Bonferroni over 40 p-values at a family-wise 1%), the expected coverage within 4 sds
/// of each level, TARP's ATC within ±0.04 (about 4 sds over 500 tests) and its KS test.
#[test]
fn the_exact_posterior_passes_sbc_coverage_and_tarp() {
    for seed in 1..=4 {
        let c = calibrate(&ClosedForm::new(1.0, 0.0), seed);
        assert_eq!((c.tests(), c.excluded.len()), (TESTS, 0));
        assert!(min_ks(&c) > 0.01 / 40.0, "seed {seed}: KS p-value {}", min_ks(&c));
        let coverage = c.expected_coverage(&LEVELS).unwrap();
        for (level, cov) in LEVELS.iter().zip(&coverage) {
            assert!((cov - level).abs() < margin(*level), "seed {seed}: coverage {cov} at {level}");
        }
        let tarp = c.tarp(100);
        assert!(tarp.atc.abs() < 0.04, "seed {seed}: ATC {}", tarp.atc);
        assert!(tarp.ks_pvalue > 0.01 / 4.0, "seed {seed}: TARP KS p-value {}", tarp.ks_pvalue);
        // The bootstrap band holds the curve itself.
        assert!(tarp.ecp.iter().zip(tarp.lower.iter().zip(&tarp.upper)).all(|(e, (l, u))| l <= e && e <= u));
    }
}

/// Overconfident, underconfident and biased posteriors fail each check, in the direction
/// their error implies.
#[test]
fn wrong_posteriors_fail_in_the_right_direction() {
    let over = calibrate(&ClosedForm::new(0.5, 0.0), 5);
    let under = calibrate(&ClosedForm::new(2.0, 0.0), 5);
    let biased = calibrate(&ClosedForm::new(1.0, 1.0), 5);
    for (name, c) in [("overconfident", &over), ("underconfident", &under), ("biased", &biased)] {
        assert!(min_ks(c) < 1e-6, "{name}: KS p-value {}", min_ks(c));
        assert!(c.tarp(100).ks_pvalue < 1e-3, "{name}: TARP KS p-value {}", c.tarp(100).ks_pvalue);
    }
    // Overconfident: truths in the tails, coverage below every level, ATC negative.
    let below = |c: &Calibration| {
        let cov = c.expected_coverage(&LEVELS).unwrap();
        LEVELS.iter().zip(&cov).all(|(l, v)| *v < l - margin(*l))
    };
    let above = |c: &Calibration| {
        let cov = c.expected_coverage(&LEVELS).unwrap();
        LEVELS.iter().zip(&cov).all(|(l, v)| *v > l + margin(*l))
    };
    assert!(below(&over), "overconfident coverage {:?}", over.expected_coverage(&LEVELS));
    assert!(over.tarp(0).atc < -0.04, "overconfident ATC {}", over.tarp(0).atc);
    // Ranks pile up at both ends: far more than a fifth of them in the outer fifths.
    let outer =
        |c: &Calibration| c.rank_uniforms(0).iter().filter(|u| **u < 0.1 || **u > 0.9).count() as f64 / TESTS as f64;
    assert!(outer(&over) > 0.2 + 4.0 * (0.16f64 / TESTS as f64).sqrt(), "overconfident outer share {}", outer(&over));
    // Underconfident: coverage above every level, ATC positive, ranks bunched in the middle.
    assert!(above(&under), "underconfident coverage {:?}", under.expected_coverage(&LEVELS));
    assert!(under.tarp(0).atc > 0.04, "underconfident ATC {}", under.tarp(0).atc);
    assert!(
        outer(&under) < 0.2 - 4.0 * (0.16f64 / TESTS as f64).sqrt(),
        "underconfident outer share {}",
        outer(&under)
    );
    // Biased upwards: the truth sits low among the draws (mean rank well below the middle),
    // and the highest-density regions miss it.
    let mean_u = biased.rank_uniforms(0).iter().sum::<f64>() / TESTS as f64;
    assert!(mean_u < 0.5 - 4.0 * (1.0 / 12.0 / TESTS as f64).sqrt(), "biased mean rank {mean_u}");
    assert!(below(&biased), "biased coverage {:?}", biased.expected_coverage(&LEVELS));
}

/// SBC's classifier checks: ranks of the right posterior cannot be told from uniform, nor its
/// data-averaged posterior from the prior; the biased one's data-averaged posterior can.
#[test]
fn sbc_classifier_checks_separate_right_from_biased() {
    let right = calibrate(&ClosedForm::new(1.0, 0.0), 6).sbc_checks().unwrap();
    let biased = calibrate(&ClosedForm::new(1.0, 1.0), 6).sbc_checks().unwrap();
    assert_eq!(right.ks_pvalues.len(), DIM);
    // Chance accuracy over 1,000 points has sd ≈ 0.016.
    assert!(right.c2st_ranks.iter().chain(&right.c2st_dap).all(|a| *a < 0.57), "{right:?}");
    assert!(right.chi2_pvalues.iter().all(|p| *p > 0.01 / DIM as f64), "{right:?}");
    // Shifted by one posterior sd (0.22) against a prior sd of 0.32: accuracy about 0.63.
    assert!(biased.c2st_dap.iter().all(|a| *a > 0.57), "{biased:?}");
    assert!(biased.c2st_ranks.iter().all(|a| *a > 0.57), "{biased:?}");
}

/// Tests the posterior fails on are excluded and listed, the rest still count; a posterior
/// that fails on every test is an error naming the reason, not an empty result.
#[test]
fn failing_tests_are_excluded_and_counted() {
    let mut posterior = ClosedForm::new(1.0, 0.0);
    posterior.fail_above = 0.3;
    let c = calibrate(&posterior, 7);
    assert!(!c.excluded.is_empty() && c.tests() + c.excluded.len() == TESTS);
    assert!(c.excluded.iter().all(|e| e.reason.contains("training range")));
    assert_eq!(c.truths.len(), c.tests() * DIM);
    posterior.fail_above = -10.0;
    let tests = simulate(&GaussianLinear, 20).seed(7).progress(false).run().unwrap();
    let err = Calibration::run(&posterior, &tests, &CalibrationConfig::default().with_progress(false)).unwrap_err();
    assert!(err.to_string().contains("all 20 tests") && err.to_string().contains("training range"), "{err}");
    let none = CalibrationConfig::default().with_draws(0).with_progress(false);
    assert!(Calibration::run(&ClosedForm::new(1.0, 0.0), &tests, &none).is_err());
    // Sampler warnings are counted per test and named in the summary, the draws kept.
    let mut leaky = ClosedForm::new(1.0, 0.0);
    leaky.acceptance = 0.1;
    let c = calibrate(&leaky, 21);
    assert_eq!(c.sampler_warnings.0, TESTS);
    assert!(c.sampler_warnings.1.as_deref().is_some_and(|w| w.contains("leaks mass")));
    assert!(c.describe().unwrap().contains(&format!("sampler warnings in {TESTS} of {TESTS} tests")));
    assert_eq!(calibrate(&ClosedForm::new(1.0, 0.0), 21).sampler_warnings, (0, None));
}

/// Each calibration plot is written, labelled, and draws its series; the wrong posteriors'
/// plots are written beside the right one's for a person to compare
/// (`SBI_PLOT_DIR=dir cargo test --test calibration`).
#[test]
fn calibration_plots_are_written() {
    use sbi_runtime::plot::{coverage_plot, ecdf_difference_plot, sbc_rank_plot, tarp_plot};
    let keep = std::env::var_os("SBI_PLOT_DIR").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    for (name, posterior) in [
        ("right", ClosedForm::new(1.0, 0.0)),
        ("over", ClosedForm::new(0.5, 0.0)),
        ("biased", ClosedForm::new(1.0, 1.0)),
    ] {
        let c = calibrate(&posterior, 8);
        let files = [
            (dir.join(format!("{name}_ranks.svg")), sbc_rank_plot(dir.join(format!("{name}_ranks.svg")), &c, 20)),
            (dir.join(format!("{name}_ecdf.svg")), ecdf_difference_plot(dir.join(format!("{name}_ecdf.svg")), &c)),
            (dir.join(format!("{name}_coverage.svg")), coverage_plot(dir.join(format!("{name}_coverage.svg")), &c)),
            (dir.join(format!("{name}_tarp.svg")), tarp_plot(dir.join(format!("{name}_tarp.svg")), &c.tarp(100))),
        ];
        for (path, written) in files {
            written.unwrap();
            let svg = std::fs::read_to_string(&path).unwrap();
            assert!(svg.starts_with("<svg") && svg.len() > 2000, "{}", path.display());
        }
        let ranks = std::fs::read_to_string(dir.join(format!("{name}_ranks.svg"))).unwrap();
        assert!(ranks.contains("theta[0]") && ranks.contains("log density"));
        assert!(ranks.matches("<rect").count() >= 11 * 20, "every bin of every panel is drawn");
    }
    assert!(sbc_rank_plot(dir.join("x.svg"), &calibrate(&ClosedForm::new(1.0, 0.0), 9), 1).is_err());
}

/// Same seed, same ranks and TARP values, whatever the number of threads.
#[test]
fn calibration_is_the_same_on_one_and_two_threads() {
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| calibrate(&ClosedForm::new(1.0, 0.0), 10))
    };
    assert_eq!(on(1), on(2));
}

/// The misspecification test passes observations simulated from the model (about 5% of
/// them rejected at 5%) and flags one shifted far from the simulations, which also lies
/// outside their range.
#[test]
fn misspecification_test_flags_a_shifted_observation() {
    use sbi_runtime::diagnostics::{MmdConfig, misspecification_mmd};
    let sims = simulate(&GaussianLinear, 3_000).seed(11).progress(false).run().unwrap();
    let observed = simulate(&GaussianLinear, 40).seed(12).progress(false).run().unwrap();
    let config = MmdConfig { null_draws: 200, ..MmdConfig::default() };
    let rejected = (0..40)
        .filter(|&i| misspecification_mmd(observed.x_row(i), &sims.x, DIM, &config).unwrap().pvalue < 0.05)
        .count();
    // Binomial(40, 0.05): mean 2, P(more than 7) < 0.1%.
    assert!(rejected <= 7, "{rejected} of 40 simulated observations rejected at 5%");
    let typical = misspecification_mmd(observed.x_row(0), &sims.x, DIM, &config).unwrap();
    assert!(typical.outside_range.is_empty());
    // Shifted by 3 prior-predictive sds in every feature (sd √0.2 ≈ 0.45).
    let shifted: Vec<f64> = observed.x_row(0).iter().map(|v| v + 1.35).collect();
    let far = misspecification_mmd(&shifted, &sims.x, DIM, &config).unwrap();
    assert!(far.pvalue < 0.01, "{}", far.describe());
    assert!(far.describe().contains("NOT typical"));
    let way_out: Vec<f64> = observed.x_row(0).iter().map(|v| v + 50.0).collect();
    assert_eq!(misspecification_mmd(&way_out, &sims.x, DIM, &config).unwrap().outside_range.len(), DIM);
    // Several iid observations at once, and bad input.
    let two: Vec<f64> = observed.x[..2 * DIM].to_vec();
    assert!(misspecification_mmd(&two, &sims.x, DIM, &config).unwrap().pvalue > 0.01);
    assert!(misspecification_mmd(&two[..DIM + 1], &sims.x, DIM, &config).is_err());
    assert!(misspecification_mmd(&[f64::NAN; DIM], &sims.x, DIM, &config).is_err());
    assert!(misspecification_mmd(observed.x_row(0), &sims.x[..DIM], DIM, &config).is_err());
    let no_null = MmdConfig { null_draws: 0, ..MmdConfig::default() };
    assert!(misspecification_mmd(observed.x_row(0), &sims.x, DIM, &no_null).is_err(), "a p-value of 1 from nothing");
}

/// Predictive checks: at the right posterior x_o sits inside its predictive intervals;
/// under a posterior biased by 4 sds most features put x_o in the predictive tail.
#[test]
fn predictive_checks_separate_right_from_biased() {
    use sbi_runtime::diagnostics::PredictiveCheck;
    let x_o = simulate(&GaussianLinear, 1).seed(13).progress(false).run().unwrap().x_row(0).to_vec();
    let right = PredictiveCheck::run(&GaussianLinear, &ClosedForm::new(1.0, 0.0), &x_o, 2_000, 1).unwrap();
    assert_eq!(right.predictive.len(), 2_000 * DIM);
    assert!(right.outside().len() <= 3, "{}", right.describe());
    let biased = PredictiveCheck::run(&GaussianLinear, &ClosedForm::new(1.0, 4.0), &x_o, 2_000, 1).unwrap();
    // Predictive sd √(0.05 + 0.1) ≈ 0.39; a shift of 4·0.22 = 0.89 puts x_o 2.3 ± 0.6 sds
    // below the predictive mean (x_o/2 varies with sd 0.22): its quantile is about 0.01,
    // and below one half for every feature.
    assert!(biased.outside().len() >= 5, "{}", biased.describe());
    let mut q = biased.quantiles.clone();
    q.sort_by(f64::total_cmp);
    assert!(q[DIM / 2] < 0.05 && q[DIM - 1] < 0.5, "{:?}", biased.quantiles);
    assert!(PredictiveCheck::run(&GaussianLinear, &ClosedForm::new(1.0, 0.0), &x_o[..3], 10, 1).is_err());
    assert!(PredictiveCheck::run(&GaussianLinear, &ClosedForm::new(1.0, 0.0), &x_o, 0, 1).is_err());
}

/// The predictive plot (histograms for a few features, bands for a series) and the loss
/// plot are written and draw their series.
#[test]
fn predictive_and_loss_plots_are_written() {
    use sbi_runtime::diagnostics::PredictiveCheck;
    use sbi_runtime::plot::{loss_plot, predictive_plot};
    let keep = std::env::var_os("SBI_PLOT_DIR").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let x_o = simulate(&GaussianLinear, 1).seed(14).progress(false).run().unwrap().x_row(0).to_vec();
    let check = PredictiveCheck::run(&GaussianLinear, &ClosedForm::new(1.0, 4.0), &x_o, 1_000, 2).unwrap();
    predictive_plot(dir.join("predictive.svg"), &check).unwrap();
    let svg = std::fs::read_to_string(dir.join("predictive.svg")).unwrap();
    assert!(svg.contains("x[9]") && svg.matches("<rect").count() > 100, "ten histograms");
    // A series of 40 values: a sine observed, predictive draws around it.
    let series: Vec<f64> = (0..40).map(|t| (t as f64 / 6.0).sin()).collect();
    let predictive: Vec<f64> =
        (0..500).flat_map(|r| series.iter().map(move |v| v + 0.1 * (((r * 37) % 11) as f64 - 5.0) / 5.0)).collect();
    let check = PredictiveCheck::from_simulations(&series, predictive, 0);
    predictive_plot(dir.join("predictive_series.svg"), &check).unwrap();
    assert!(std::fs::read_to_string(dir.join("predictive_series.svg")).unwrap().contains("<polygon"));
    let mut summary = sbi_runtime::train::TrainingSummary {
        epochs: 50,
        best_epoch: 30,
        best_validation_loss: 0.13,
        train_loss: (0..50).map(|e| 2.0 / (1.0 + e as f64)).collect(),
        validation_loss: (0..50).map(|e| 2.2 / (1.0 + e as f64) + 0.002 * e as f64).collect(),
        converged: true,
        lr_decayed_after: vec![],
        annealed_after: Some(40),
        seconds: 1.0,
        steps: 500,
    };
    loss_plot(dir.join("loss.svg"), &summary).unwrap();
    assert!(std::fs::read_to_string(dir.join("loss.svg")).unwrap().matches("<polyline").count() >= 3);
    summary.train_loss = vec![f64::NAN];
    summary.validation_loss = vec![];
    assert!(loss_plot(dir.join("loss2.svg"), &summary).is_err());
}

/// L-C2ST accepts the exact posterior at an observation and rejects the biased one there.
#[test]
fn local_c2st_accepts_the_exact_posterior_and_rejects_the_biased() {
    use sbi_runtime::diagnostics::{LocalC2st, LocalC2stConfig};
    let tests = simulate(&GaussianLinear, 500).seed(15).progress(false).run().unwrap();
    let x_o = simulate(&GaussianLinear, 1).seed(16).progress(false).run().unwrap().x_row(0).to_vec();
    let config = LocalC2stConfig { null_trials: 20, eval_draws: 1_000, seed: 3, progress: false };
    let right = LocalC2st::run(&ClosedForm::new(1.0, 0.0), &tests, &x_o, &config).unwrap();
    let biased = LocalC2st::run(&ClosedForm::new(1.0, 1.0), &tests, &x_o, &config).unwrap();
    // With 20 permutations the smallest p-value is 1/21.
    assert!(right.pvalue > 0.05, "{}", right.describe());
    assert!(biased.pvalue < 0.05 && biased.statistic > right.statistic, "{}", biased.describe());
    assert_eq!((right.null.len(), right.excluded), (20, 0));
    let mut failing = ClosedForm::new(1.0, 0.0);
    failing.fail_above = -10.0;
    assert!(LocalC2st::run(&failing, &tests, &x_o, &config).is_err(), "x_o itself fails");
    assert!(LocalC2st::run(&ClosedForm::new(1.0, 0.0), &tests, &x_o[..3], &config).is_err(), "x_o's size");
    // With the calibration's draws instead of new ones: the same verdicts, no sampling.
    let calibration_config = CalibrationConfig::default().with_draws(50).with_seed(3).with_progress(false);
    for (posterior, rejects) in [(ClosedForm::new(1.0, 0.0), false), (ClosedForm::new(1.0, 1.0), true)] {
        let c = Calibration::run(&posterior, &tests, &calibration_config).unwrap();
        let l = LocalC2st::from_calibration(&posterior, &c, &tests, &x_o, &config).unwrap();
        assert_eq!(l.pvalue < 0.05, rejects, "{}", l.describe());
        let other = simulate(&GaussianLinear, 500).seed(99).progress(false).run().unwrap();
        assert!(LocalC2st::from_calibration(&posterior, &c, &other, &x_o, &config).is_err(), "other tests");
    }
}

/// The report is one self-contained page with every section and its plots inline.
#[test]
fn the_report_is_one_page_with_every_section() {
    use sbi_runtime::diagnostics::{CalibrationConfig, LocalC2stConfig};
    use sbi_runtime::report::{ReportConfig, write_report};
    let keep = std::env::var_os("SBI_PLOT_DIR").map(|d| std::path::PathBuf::from(d).join("report"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.unwrap_or_else(|| tmp.path().join("report"));
    let tests = simulate(&GaussianLinear, 300).seed(17).progress(false).run().unwrap();
    let training = simulate(&GaussianLinear, 2_000).seed(18).progress(false).run().unwrap();
    let x_o = training.x_row(0).to_vec();
    let config = ReportConfig {
        title: "overconfident <test>".into(),
        calibration: CalibrationConfig::default().with_draws(200).with_progress(false),
        local_c2st: Some(LocalC2stConfig { null_trials: 10, eval_draws: 500, seed: 1, progress: false }),
        predictive_draws: 300,
        ..ReportConfig::default()
    };
    let report =
        write_report(&dir, &GaussianLinear, &ClosedForm::new(0.5, 0.0), &tests, Some(&training), &x_o, &config)
            .unwrap();
    let page = std::fs::read_to_string(&report.path).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("overconfident &lt;test&gt;"));
    for section in
        ["Calibration over test simulations", "Local C2ST", "Posterior predictive", "typical of the simulations"]
    {
        assert!(page.contains(section) && report.text.contains(section), "{section}");
    }
    // Ranks, ECDF, coverage, TARP, marginals (no pair plot for 10 parameters) and predictive
    // plots, inline; no training curve (none trained).
    assert_eq!(page.matches("<svg").count(), 6);
    assert!(page.contains("The posterior at x_o"));
    assert!(!page.contains("src=\"") && !page.contains("Training"));
    assert!(page.contains("marginal density test"));
    assert!(report.text.contains("NOT uniform"), "the overconfident posterior is flagged: {}", report.text);
}

/// The marginal density test: a typical observation passes, a shifted one is flagged, and
/// the estimator is checked by C2ST.
#[test]
fn marginal_density_test_flags_a_shifted_observation() {
    use sbi_runtime::diagnostics::misspecification_log_prob;
    let sims = simulate(&GaussianLinear, 2_000).seed(19).progress(false).run().unwrap();
    let x_o = simulate(&GaussianLinear, 1).seed(20).progress(false).run().unwrap().x_row(0).to_vec();
    let training = TrainConfig::default().with_seed(1).with_progress(false).with_max_epochs(40);
    let typical = misspecification_log_prob(&x_o, &sims.x, DIM, &DensityEstimator::default(), &training).unwrap();
    assert!(typical.pvalue > 0.05, "{}", typical.describe());
    assert!(typical.c2st < 0.65, "{}", typical.describe());
    let shifted: Vec<f64> = x_o.iter().map(|v| v + 1.35).collect();
    let far = misspecification_log_prob(&shifted, &sims.x, DIM, &DensityEstimator::default(), &training).unwrap();
    assert!(far.pvalue < 0.01 && far.log_prob < typical.log_prob, "{}", far.describe());
    assert!(misspecification_log_prob(&x_o[..3], &sims.x, DIM, &DensityEstimator::default(), &training).is_err());
    assert!(
        misspecification_log_prob(&x_o, &sims.x[..50 * DIM], DIM, &DensityEstimator::default(), &training).is_err()
    );
}
