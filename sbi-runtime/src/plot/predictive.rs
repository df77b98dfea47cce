//! The posterior predictive plot: simulations at posterior draws against `x_o`.

use std::path::Path;

use plotters::prelude::*;

use crate::diagnostics::PredictiveCheck;
use crate::error::{Error, Result};

const BLUE: RGBColor = RGBColor(31, 119, 180);
const RED: RGBColor = RGBColor(214, 39, 40);

/// Writes a posterior predictive plot to an SVG file (PNG when `path` ends in `.png`). Up to 12 features: a histogram of the
/// predictive values per feature with `x_o` as a red line. More (a series): the predictive
/// median, central 50% and 95% bands over the feature index, with `x_o` in red.
///
/// # Errors
/// [`Error::Config`] for a check without predictive simulations; [`Error::File`] when the
/// file cannot be written.
pub fn predictive_plot(path: impl AsRef<Path>, check: &PredictiveCheck) -> Result<()> {
    let path = path.as_ref();
    let f = check.observed.len();
    if f == 0 || check.predictive.len() < f {
        return Err(Error::Config("a predictive plot needs predictive simulations".into()));
    }
    let err = |e: String| Error::file(path, format!("cannot draw the plot: {e}"));
    let columns: Vec<Vec<f64>> = (0..f)
        .map(|j| {
            let mut c: Vec<f64> = check.predictive.iter().skip(j).step_by(f).copied().collect();
            c.sort_by(f64::total_cmp);
            c
        })
        .collect();
    let quantile = |c: &[f64], p: f64| c[((c.len() - 1) as f64 * p).round() as usize];
    if f > 12 {
        return super::render(path, (720, 360), |root| {
            let lo = columns
                .iter()
                .map(|c| quantile(c, 0.025))
                .chain(check.observed.iter().copied())
                .fold(f64::INFINITY, f64::min);
            let hi = columns
                .iter()
                .map(|c| quantile(c, 0.975))
                .chain(check.observed.iter().copied())
                .fold(f64::NEG_INFINITY, f64::max);
            let pad = 0.05 * (hi - lo).max(1e-12);
            let mut chart = ChartBuilder::on(root)
                .margin(12)
                .caption("posterior predictive (blue) against x_o (red)", ("sans-serif", 15))
                .x_label_area_size(32)
                .y_label_area_size(48)
                .build_cartesian_2d(0.0..(f - 1) as f64, (lo - pad)..(hi + pad))
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("feature")
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            for (q, alpha) in [(0.025, 0.2), (0.25, 0.35)] {
                let upper = columns.iter().enumerate().map(|(j, c)| (j as f64, quantile(c, 1.0 - q)));
                let lower: Vec<(f64, f64)> =
                    columns.iter().enumerate().map(|(j, c)| (j as f64, quantile(c, q))).collect();
                let outline: Vec<(f64, f64)> = upper.chain(lower.into_iter().rev()).collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(outline, BLUE.mix(alpha).filled())))
                    .map_err(|e| err(e.to_string()))?;
            }
            chart
                .draw_series(LineSeries::new(
                    columns.iter().enumerate().map(|(j, c)| (j as f64, quantile(c, 0.5))),
                    BLUE.stroke_width(2),
                ))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(LineSeries::new(
                    check.observed.iter().enumerate().map(|(j, &v)| (j as f64, v)),
                    RED.stroke_width(2),
                ))
                .map_err(|e| err(e.to_string()))?;
            Ok(())
        });
    }
    let cols = f.min(4);
    let rows = f.div_ceil(cols);
    super::render(path, (240 * cols as u32, 190 * rows as u32), |root| {
        let areas = root.split_evenly((rows, cols));
        const BINS: usize = 30;
        for (j, (column, area)) in columns.iter().zip(&areas).enumerate() {
            let obs = check.observed[j];
            let (lo, hi) = (quantile(column, 0.005).min(obs), quantile(column, 0.995).max(obs));
            let pad = 0.05 * (hi - lo).max(1e-12);
            let (lo, hi) = (lo - pad, hi + pad);
            let w = (hi - lo) / BINS as f64;
            let mut counts = [0usize; BINS];
            for &v in column {
                let b = ((v - lo) / w).floor();
                if b >= 0.0 && (b as usize) < BINS {
                    counts[b as usize] += 1;
                }
            }
            let top = *counts.iter().max().unwrap_or(&1) as f64 * 1.1;
            let title = format!("x[{j}]  (p {:.2})", check.pvalues[j]);
            let mut chart = ChartBuilder::on(area)
                .margin(8)
                .caption(title, ("sans-serif", 13))
                .x_label_area_size(24)
                .y_label_area_size(8)
                .build_cartesian_2d(lo..hi, 0.0..top.max(1.0))
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .y_labels(0)
                .x_labels(4)
                .label_style(("sans-serif", 10))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(counts.iter().enumerate().map(|(b, &c)| {
                    let x0 = lo + b as f64 * w;
                    Rectangle::new([(x0, 0.0), (x0 + w, c as f64)], BLUE.mix(0.6).filled())
                }))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(LineSeries::new([(obs, 0.0), (obs, top)], RED.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    })
}
