//! Plots of [`Calibration`]: SBC rank histograms with the band expected under uniformity,
//! the ECDF difference with its simultaneous band (Säilynoja et al. 2022), the expected
//! coverage curve, and TARP's curve with its bootstrap band.

use std::path::Path;

use plotters::prelude::*;
use rand::RngExt;
use statrs::distribution::{Binomial, DiscreteCDF};

use crate::diagnostics::{Calibration, Tarp};
use crate::error::{Error, Result};
use crate::rng::stream_rng;

const PANEL: (u32, u32) = (260, 200);
const BLUE: RGBColor = RGBColor(31, 119, 180);
const GREY: RGBColor = RGBColor(150, 150, 150);

/// The panels' series: each parameter's rank values in (0, 1), then the log density's.
fn rank_series(c: &Calibration) -> Vec<(String, Vec<f64>)> {
    let mut series: Vec<(String, Vec<f64>)> =
        c.names.iter().enumerate().map(|(j, n)| (n.clone(), c.rank_uniforms(j))).collect();
    if let Some(u) = c.density_uniforms() {
        series.push(("log density".into(), u));
    }
    series
}

/// A grid of panels, up to 4 per row, for `count` series: the size in pixels, rows and
/// columns.
fn panels(count: usize) -> ((u32, u32), usize, usize) {
    let cols = count.clamp(1, 4);
    let rows = count.div_ceil(cols).max(1);
    ((PANEL.0 * cols as u32, PANEL.1 * rows as u32), rows, cols)
}

fn draw_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |e| Error::file(path, format!("cannot draw the plot: {e}"))
}

/// The `q` and `1 − q` quantiles of Binomial(n, p) (by the CDF's table).
fn binomial_interval(n: usize, p: f64, q: f64) -> (f64, f64) {
    let Ok(b) = Binomial::new(p.clamp(0.0, 1.0), n as u64) else { return (0.0, n as f64) };
    let lo = (0..=n as u64).find(|&k| b.cdf(k) >= q).unwrap_or(0);
    let hi = (0..=n as u64).find(|&k| b.cdf(k) >= 1.0 - q).unwrap_or(n as u64);
    (lo as f64, hi as f64)
}

/// Writes SBC rank histograms to an SVG file (PNG when `path` ends in `.png`): one panel per parameter (and one for the log
/// density when ranked), `bins` bins, and in grey the range holding 99% of a bin's count
/// under uniformity (Binomial(tests, 1/bins)). A ∪ shape means overconfident, ∩
/// underconfident, a slope bias.
///
/// # Errors
/// [`Error::Config`] for fewer than 2 bins; [`Error::File`] when the file cannot be written.
pub fn sbc_rank_plot(path: impl AsRef<Path>, c: &Calibration, bins: usize) -> Result<()> {
    let path = path.as_ref();
    if bins < 2 {
        return Err(Error::Config(format!("a rank histogram needs at least 2 bins, got {bins}")));
    }
    let series = rank_series(c);
    let n = c.tests();
    let (lo, hi) = binomial_interval(n, 1.0 / bins as f64, 0.005);
    let err = draw_err(path);
    let (size, rows, cols) = panels(series.len());
    super::render(path, size, |root| {
        let areas = root.split_evenly((rows, cols));
        for ((name, u), area) in series.iter().zip(&areas) {
            let counts = crate::diagnostics::stats::bin_counts(u, bins);
            let top = counts.iter().copied().max().unwrap_or(0).max(hi as usize) as f64 * 1.1;
            let mut chart = ChartBuilder::on(area)
                .margin(8)
                .caption(name, ("sans-serif", 14))
                .x_label_area_size(28)
                .y_label_area_size(36)
                .build_cartesian_2d(0.0..1.0, 0.0..top)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("rank / draws")
                .x_labels(3)
                .y_labels(4)
                .label_style(("sans-serif", 10))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(std::iter::once(Rectangle::new([(0.0, lo), (1.0, hi)], GREY.mix(0.3).filled())))
                .map_err(|e| err(e.to_string()))?;
            let w = 1.0 / bins as f64;
            chart
                .draw_series(counts.iter().enumerate().map(|(b, &h)| {
                    let x0 = b as f64 * w;
                    Rectangle::new([(x0 + 0.1 * w, 0.0), (x0 + 0.9 * w, h as f64)], BLUE.mix(0.7).filled())
                }))
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    })
}

/// The simultaneous 95% band of `ECDF(z) − z` for `n` uniform values on `grid`, by
/// Säilynoja et al.'s (2022) simulation: the pointwise binomial level `γ` is lowered until
/// 95% of 1,000 simulated uniform ECDFs stay inside the band at every grid point at once.
/// Returns the lower and upper edges.
pub fn ecdf_band(n: usize, grid: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>) {
    if n == 0 {
        return (vec![0.0; grid.len()], vec![0.0; grid.len()]);
    }
    // The binomial CDF of the count below each grid point, tabulated once.
    let cdfs: Vec<Vec<f64>> = grid
        .iter()
        .map(|&z| match Binomial::new(z.clamp(0.0, 1.0), n as u64) {
            Ok(b) => (0..=n as u64).map(|k| b.cdf(k)).collect(),
            Err(_) => vec![1.0; n + 1],
        })
        .collect();
    let mut rng = stream_rng(seed, 0xecdf);
    let mut tails: Vec<f64> = (0..1000)
        .map(|_| {
            let mut u: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
            u.sort_by(f64::total_cmp);
            grid.iter()
                .zip(&cdfs)
                .map(|(&z, cdf)| {
                    let k = u.partition_point(|&v| v <= z);
                    let below = cdf[k];
                    let above = 1.0 - if k == 0 { 0.0 } else { cdf[k - 1] };
                    2.0 * below.min(above)
                })
                .fold(1.0, f64::min)
        })
        .collect();
    tails.sort_by(f64::total_cmp);
    let gamma = tails[(0.05 * tails.len() as f64) as usize];
    let edge = |cdf: &[f64], p: f64| cdf.iter().position(|&c| c >= p).unwrap_or(n) as f64 / n as f64;
    let lower = grid.iter().zip(&cdfs).map(|(&z, cdf)| edge(cdf, gamma / 2.0) - z).collect();
    let upper = grid.iter().zip(&cdfs).map(|(&z, cdf)| edge(cdf, 1.0 - gamma / 2.0) - z).collect();
    (lower, upper)
}

/// Writes the ECDF-difference plot of SBC ranks to an SVG file (PNG when `path` ends in `.png`): per parameter (and the log
/// density), `ECDF(u) − u` of the rank values with the simultaneous 95% band under
/// uniformity (Säilynoja et al. 2022) in grey. A curve leaving the band anywhere rejects
/// calibration at 5%; a ∩ (∪) shape means too many low (high) ranks.
///
/// # Errors
/// [`Error::File`] when the file cannot be written.
pub fn ecdf_difference_plot(path: impl AsRef<Path>, c: &Calibration) -> Result<()> {
    let path = path.as_ref();
    let series = rank_series(c);
    let grid: Vec<f64> = (1..100).map(|k| k as f64 / 100.0).collect();
    let (lower, upper) = ecdf_band(c.tests(), &grid, 0);
    let top = upper.iter().chain(lower.iter()).fold(0.0f64, |m, v| m.max(v.abs()));
    let curves: Vec<Vec<f64>> = series
        .iter()
        .map(|(_, u)| {
            let mut v = u.clone();
            v.sort_by(f64::total_cmp);
            grid.iter().map(|&z| v.partition_point(|&x| x <= z) as f64 / v.len().max(1) as f64 - z).collect()
        })
        .collect();
    let top = curves.iter().flatten().fold(top, |m, v| m.max(v.abs())) * 1.1;
    let err = draw_err(path);
    let (size, rows, cols) = panels(series.len());
    super::render(path, size, |root| {
        let areas = root.split_evenly((rows, cols));
        for (((name, _), curve), area) in series.iter().zip(&curves).zip(&areas) {
            let mut chart = ChartBuilder::on(area)
                .margin(8)
                .caption(name, ("sans-serif", 14))
                .x_label_area_size(28)
                .y_label_area_size(44)
                .build_cartesian_2d(0.0..1.0, -top..top)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("rank / draws")
                .y_desc("ECDF − uniform")
                .x_labels(3)
                .y_labels(5)
                .label_style(("sans-serif", 10))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            band(&mut chart, &grid, &lower, &upper).map_err(&err)?;
            chart
                .draw_series(LineSeries::new(grid.iter().copied().zip(curve.iter().copied()), BLUE.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    })
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A grey band between `lower` and `upper` over `x`.
fn band(chart: &mut Chart<'_, '_>, x: &[f64], lower: &[f64], upper: &[f64]) -> std::result::Result<(), String> {
    let outline: Vec<(f64, f64)> = x
        .iter()
        .copied()
        .zip(upper.iter().copied())
        .chain(x.iter().copied().zip(lower.iter().copied()).rev())
        .collect();
    chart.draw_series(std::iter::once(Polygon::new(outline, GREY.mix(0.35).filled()))).map_err(|e| e.to_string())?;
    Ok(())
}

/// One curve against the diagonal, with a grey band, on the unit square.
fn unit_curve_plot(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    x: &[f64],
    y: &[f64],
    (lower, upper): (&[f64], &[f64]),
) -> Result<()> {
    let err = draw_err(path);
    super::render(path, (420, 400), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .caption(title, ("sans-serif", 16))
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style(("sans-serif", 11))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        band(&mut chart, x, lower, upper).map_err(&err)?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.6).stroke_width(1)))
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(LineSeries::new(x.iter().copied().zip(y.iter().copied()), BLUE.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    })
}

/// Writes the expected coverage curve of highest-density regions to an SVG file (PNG when `path` ends in `.png`): coverage
/// against credibility level, the diagonal, and in grey the pointwise 95% range of a
/// calibrated posterior's curve (binomial over the tests). Below the diagonal means
/// overconfident, above underconfident.
///
/// # Errors
/// [`Error::Config`] without density ranks ([`crate::diagnostics::CalibrationConfig::log_density`]);
/// [`Error::File`] when the file cannot be written.
pub fn coverage_plot(path: impl AsRef<Path>, c: &Calibration) -> Result<()> {
    let levels: Vec<f64> = (0..=100).map(|k| k as f64 / 100.0).collect();
    let coverage = c
        .expected_coverage(&levels)
        .ok_or_else(|| Error::Config("the expected coverage needs the log density's ranks".into()))?;
    let n = c.tests();
    let (lower, upper): (Vec<f64>, Vec<f64>) = levels
        .iter()
        .map(|&a| {
            let (lo, hi) = binomial_interval(n, a, 0.025);
            (lo / n.max(1) as f64, hi / n.max(1) as f64)
        })
        .unzip();
    unit_curve_plot(
        path.as_ref(),
        "expected coverage",
        ("credibility level", "coverage"),
        &levels,
        &coverage,
        (&lower, &upper),
    )
}

/// Writes TARP's expected coverage curve to an SVG file (PNG when `path` ends in `.png`), with its bootstrap band in grey
/// and the diagonal; the title gives the ATC and the KS p-value.
///
/// # Errors
/// [`Error::File`] when the file cannot be written.
pub fn tarp_plot(path: impl AsRef<Path>, tarp: &Tarp) -> Result<()> {
    let title = format!("TARP (ATC {:+.3}, KS p {:.2})", tarp.atc, tarp.ks_pvalue);
    unit_curve_plot(
        path.as_ref(),
        &title,
        ("credibility level α", "expected coverage"),
        &tarp.alpha,
        &tarp.ecp,
        (&tarp.lower, &tarp.upper),
    )
}
