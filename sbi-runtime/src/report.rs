//! One call from a posterior to a self-contained HTML page of every diagnostic: calibration
//! (SBC, expected coverage, TARP), the posterior's draws, L-C2ST and a predictive check at
//! `x_o`, the misspecification test, and the training curve, with their plots inline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::diagnostics::{
    Calibration, CalibrationConfig, LocalC2st, LocalC2stConfig, MmdConfig, PredictiveCheck, misspecification_mmd,
};
use crate::error::{Error, Result};
use crate::inference::Posterior;
use crate::model::Simulator;
use crate::plot;
use crate::simulate::Simulations;

/// Settings of [`write_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReportConfig {
    /// The page's title.
    pub title: String,
    /// Calibration's settings (1,000 draws per test).
    pub calibration: CalibrationConfig,
    /// L-C2ST's settings; `None` leaves it out (it draws once per test, and trains 101
    /// classifiers).
    pub local_c2st: Option<LocalC2stConfig>,
    /// Posterior draws for the predictive check (1,000).
    pub predictive_draws: usize,
    /// The misspecification test's settings.
    pub mmd: MmdConfig,
    /// Also test `x_o` against a density estimator of the simulations' marginal (true;
    /// trains sbi's default estimator on the training simulations, seconds to a minute).
    pub marginal_density: bool,
    /// Seed of the predictive check (0).
    pub seed: u64,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            title: "posterior diagnostics".into(),
            calibration: CalibrationConfig::default(),
            local_c2st: Some(LocalC2stConfig::default()),
            predictive_draws: 1000,
            mmd: MmdConfig::default(),
            marginal_density: true,
            seed: 0,
        }
    }
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct Report {
    /// The page, `dir/index.html`.
    pub path: PathBuf,
    /// The page's text: each section's title, findings and wall time.
    pub text: String,
}

/// Runs every diagnostic of `posterior` for `model` and writes `dir/index.html` (with the
/// plots inline, nothing else needed to view it) and the plots as SVG files beside it.
/// `tests` are simulations from the prior not used in training (calibration and L-C2ST);
/// `training` the training simulations (the misspecification test; left out when `None`);
/// `x_o` the observation (predictive check, L-C2ST, misspecification). Each section gives
/// its wall time.
///
/// # Errors
/// The diagnostics' errors (e.g. a posterior that fails on every test, or on `x_o`;
/// [`Error::ModelMismatch`] for simulations of another model than the posterior's);
/// [`Error::Io`] when `dir` or a file cannot be written.
pub fn write_report<M: Simulator, P: Posterior<Prior = M::Prior>>(
    dir: impl AsRef<Path>,
    model: &M,
    posterior: &P,
    tests: &Simulations,
    training: Option<&Simulations>,
    x_o: &[f64],
    config: &ReportConfig,
) -> Result<Report> {
    let dir = dir.as_ref();
    if let Some(sims) = training {
        crate::diagnostics::check_model(posterior, sims, "the report's training simulations")?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
    let mut html = String::new();
    let mut all_text = String::new();
    let mut clock = std::time::Instant::now();
    let mut section = |title: &str, text: &str, plots: &[&str]| -> Result<()> {
        let text = format!("{text}\n({:.1} s)", clock.elapsed().as_secs_f64());
        let _ = write!(all_text, "{title}\n{text}\n\n");
        let _ = write!(html, "<section><h2>{}</h2><pre>{}</pre>", escape(title), escape(&text));
        for name in plots {
            let path = dir.join(name);
            let svg = std::fs::read_to_string(&path).map_err(|e| Error::Io { path: path.clone(), source: e })?;
            let _ = write!(html, "<figure>{svg}</figure>");
        }
        html.push_str("</section>\n");
        clock = std::time::Instant::now();
        Ok(())
    };

    let calibration = Calibration::run(posterior, tests, &config.calibration)?;
    plot::sbc_rank_plot(dir.join("sbc_ranks.svg"), &calibration, 20)?;
    plot::ecdf_difference_plot(dir.join("sbc_ecdf.svg"), &calibration)?;
    let tarp = calibration.tarp(200);
    plot::tarp_plot(dir.join("tarp.svg"), &tarp)?;
    let mut plots = vec!["sbc_ranks.svg", "sbc_ecdf.svg"];
    if calibration.density_ranks.is_some() {
        plot::coverage_plot(dir.join("coverage.svg"), &calibration)?;
        plots.push("coverage.svg");
    }
    plots.push("tarp.svg");
    section("Calibration over test simulations: SBC, expected coverage, TARP", &calibration.describe()?, &plots)?;

    if let Some(lc2st) = &config.local_c2st {
        // One posterior draw per test: the calibration's, not drawn again.
        let l = LocalC2st::from_calibration(posterior, &calibration, tests, x_o, lc2st)?;
        section("Local C2ST at x_o", &l.describe(), &[])?;
    }

    let draws = posterior.sample_run_with_seed(x_o, config.predictive_draws, config.seed)?;
    let names = posterior.names();
    // The pair plot holds the marginals on its diagonal; past 6 parameters its panels get
    // too small, and the marginals alone are shown.
    let plots = if names.len() <= 6 {
        plot::pair_plot(dir.join("pairs.svg"), &names, &draws.samples().values, None)?;
        ["pairs.svg"]
    } else {
        plot::marginal_plot(dir.join("marginals.svg"), &names, &draws.samples().values, None)?;
        ["marginals.svg"]
    };
    let text = format!("{} draws; {}", draws.samples().rows(), draws.describe());
    section("The posterior at x_o", &text, &plots)?;

    let check = PredictiveCheck::run(model, posterior, x_o, config.predictive_draws, config.seed)?;
    plot::predictive_plot(dir.join("predictive.svg"), &check)?;
    section("Posterior predictive check at x_o", &check.describe(), &["predictive.svg"])?;

    if let Some(sims) = training {
        let mut text = misspecification_mmd(x_o, &sims.x, sims.x_dim(), &config.mmd)?.describe();
        if config.marginal_density {
            let training = crate::train::TrainConfig::default().with_seed(config.seed).with_progress(false);
            let estimator = crate::estimators::DensityEstimator::default();
            let test =
                crate::diagnostics::misspecification_log_prob(x_o, &sims.x, sims.x_dim(), &estimator, &training)?;
            text = format!("{text}\n{}", test.describe());
        }
        section("Is x_o typical of the simulations?", &text, &[])?;
    }

    if let Some(summary) = posterior.training_summary() {
        plot::loss_plot(dir.join("loss.svg"), summary)?;
        let mut text = format!(
            "{} epochs, best validation loss {:.4} at epoch {}, {:.1} s",
            summary.epochs, summary.best_validation_loss, summary.best_epoch, summary.seconds
        );
        if !summary.lr_decayed_after.is_empty() {
            let epochs: Vec<String> = summary.lr_decayed_after.iter().map(|e| e.to_string()).collect();
            text += &format!("; learning rate halved after epochs {}", epochs.join(", "));
        }
        if let Some(e) = summary.annealed_after {
            text += &format!("; learning rate annealed to zero after epoch {e}");
        }
        section("Training", &text, &["loss.svg"])?;
    }

    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>\
         body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
         pre{{background:#f6f6f6;padding:0.8em;white-space:pre-wrap}}\
         figure{{display:inline-block;vertical-align:top;margin:0.5em 1em 0.5em 0}}\
         section{{border-top:1px solid #ddd;padding-top:0.5em}}</style></head>\n<body><h1>{title}</h1>\
         <p>x_o = {x_o:?}</p>\n{html}</body></html>\n",
        title = escape(&config.title),
    );
    let path = dir.join("index.html");
    std::fs::write(&path, page).map_err(|e| Error::Io { path: path.clone(), source: e })?;
    Ok(Report { path, text: all_text })
}

/// Text made safe inside HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
