//! The training curve: training and validation loss per epoch.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::train::TrainingSummary;

/// Writes the training (blue) and validation (orange) loss per epoch to an SVG file (PNG
/// when `path` ends in `.png`), with the kept epoch marked by a grey line and the epochs
/// after which the learning rate halved ([`TrainingSummary::lr_decayed_after`]) or began its
/// final annealing ([`TrainingSummary::annealed_after`]) by light grey ones.
///
/// # Errors
/// [`Error::Config`] for a summary without finite losses; [`Error::File`] when the file
/// cannot be written.
pub fn loss_plot(path: impl AsRef<Path>, summary: &TrainingSummary) -> Result<()> {
    let path = path.as_ref();
    let err = |e: String| Error::file(path, format!("cannot draw the plot: {e}"));
    let finite = || summary.train_loss.iter().chain(&summary.validation_loss).copied().filter(|v| v.is_finite());
    let (lo, hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return Err(Error::Config("a loss plot needs finite losses".into()));
    }
    let pad = 0.05 * (hi - lo).max(1e-12);
    let epochs = summary.train_loss.len().max(summary.validation_loss.len()).max(2) as f64;
    super::render(path, (560, 360), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .caption("loss per epoch: training (blue), validation (orange)", ("sans-serif", 14))
            .x_label_area_size(32)
            .y_label_area_size(52)
            .build_cartesian_2d(1.0..epochs, (lo - pad)..(hi + pad))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("epoch")
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for &e in summary.lr_decayed_after.iter().chain(&summary.annealed_after) {
            let e = e as f64;
            chart
                .draw_series(LineSeries::new([(e, lo - pad), (e, hi + pad)], RGBColor(210, 210, 210).stroke_width(1)))
                .map_err(|e| err(e.to_string()))?;
        }
        let best = summary.best_epoch as f64;
        chart
            .draw_series(LineSeries::new([(best, lo - pad), (best, hi + pad)], RGBColor(150, 150, 150).stroke_width(1)))
            .map_err(|e| err(e.to_string()))?;
        for (losses, color) in
            [(&summary.train_loss, RGBColor(31, 119, 180)), (&summary.validation_loss, RGBColor(255, 127, 14))]
        {
            let points = losses.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, &v)| ((i + 1) as f64, v));
            chart.draw_series(LineSeries::new(points, color.stroke_width(2))).map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    })
}
