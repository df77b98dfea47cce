//! Plots a person would rather look at than read, written as SVG, or as PNG when the file
//! name ends in `.png` (for a terminal or a notebook).
//!
//! [`pair_plot`]: marginal histograms on the diagonal and 2-D histograms of each pair of
//! parameters below it (and of a reference sample above it, when given); [`marginal_plot`]:
//! the marginal histograms alone, for many parameters.
//!
//! Calibration ([`crate::diagnostics::Calibration`]): [`sbc_rank_plot`],
//! [`ecdf_difference_plot`], [`coverage_plot`] and [`tarp_plot`].
//!
//! [`predictive_plot`]: posterior predictive simulations against `x_o`; [`loss_plot`]: the
//! training curve.

use std::path::Path;

mod calibration;
mod predictive;
mod training;

pub use calibration::{coverage_plot, ecdf_band, ecdf_difference_plot, sbc_rank_plot, tarp_plot};
pub use predictive::predictive_plot;
pub use training::loss_plot;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Draws a plot of `size` pixels with `draw` on a white canvas and writes it to `path`
/// ([`write_plot`]).
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    let err = |e: String| Error::file(path, format!("cannot draw the plot: {e}"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        draw(&root)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    write_plot(path, &svg)
}

/// PNGs are drawn at this many pixels per SVG pixel, sharp on high-density screens.
const PNG_SCALE: f32 = 2.0;

/// Writes the SVG document `svg` to `path`, or rasterises it to PNG (at [`PNG_SCALE`]) when
/// `path` ends in `.png`.
///
/// Rendered by resvg with DejaVu Sans built in as the sans-serif font (the plots' only font),
/// so that a PNG's labels do not depend on the fonts a machine has installed.
///
/// # Errors
/// [`Error::Io`] when the file cannot be written; [`Error::File`] when the SVG cannot be
/// rendered.
pub(crate) fn write_plot(path: &Path, svg: &str) -> Result<()> {
    use resvg::{tiny_skia, usvg};
    use std::sync::{Arc, OnceLock};
    let png = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !png {
        return std::fs::write(path, svg).map_err(|e| Error::io(path, e));
    }
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    let fonts = FONTS.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(dejavu::sans::regular().to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        Arc::new(db)
    });
    let err = |e: String| Error::file(path, format!("cannot render the plot as PNG: {e}"));
    let options = usvg::Options { fontdb: fonts.clone(), ..usvg::Options::default() };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| err(e.to_string()))?;
    let size = tree.size().to_int_size().scale_by(PNG_SCALE).ok_or_else(|| err("empty plot".into()))?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| err(format!("a {}×{} image is too large", size.width(), size.height())))?;
    resvg::render(&tree, tiny_skia::Transform::from_scale(PNG_SCALE, PNG_SCALE), &mut pixmap.as_mut());
    let bytes = pixmap.encode_png().map_err(|e| err(e.to_string()))?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

const PANEL: u32 = 170;
const BINS: usize = 40;

/// Writes a pair plot of `samples` (`n × names.len()` row-major) to an SVG file (PNG when `path` ends in `.png`), labelled
/// with the parameter names. With `reference` (same layout), its marginals are drawn over
/// the diagonal in orange and its 2-D histograms fill the upper triangle.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`] for values that are not rows of the names;
/// [`crate::Error::Config`] for a column without finite values; [`crate::Error::Io`] or
/// [`crate::Error::File`] when the file cannot be written.
pub fn pair_plot(path: impl AsRef<Path>, names: &[String], samples: &[f64], reference: Option<&[f64]>) -> Result<()> {
    let path = path.as_ref();
    let d = names.len();
    let limits = axis_limits("pair plot", names, samples, reference)?;
    let column =
        |v: &[f64], j: usize| -> Vec<f64> { v.iter().skip(j).step_by(d).copied().filter(|x| x.is_finite()).collect() };
    let size = PANEL * d as u32;
    let err = |e: String| Error::file(path, format!("cannot draw the plot: {e}"));
    render(path, (size, size), |root| {
        let panels = root.split_evenly((d, d));
        let blue = RGBColor(31, 119, 180);
        let orange = RGBColor(255, 127, 14);
        for i in 0..d {
            for j in 0..d {
                let area = &panels[i * d + j];
                let (xl, yl) = (limits[j], limits[i]);
                let x_label = if i == d - 1 { names[j].as_str() } else { "" };
                if i == j {
                    let hist = histogram(&column(samples, j), xl, BINS);
                    let ref_hist = reference.map(|r| histogram(&column(r, j), xl, BINS));
                    let axis = if i == d - 1 { (x_label, 4, 28) } else { ("", 0, 4) };
                    marginal_panel(area, &names[j], xl, &hist, ref_hist.as_deref(), axis).map_err(err)?;
                } else {
                    let source = if i > j { Some(samples) } else { reference };
                    let Some(source) = source else { continue };
                    let color = if i > j { blue } else { orange };
                    let grid = histogram_2d(source, d, j, i, xl, yl, BINS);
                    let top = grid.iter().copied().fold(0.0, f64::max).max(1e-12);
                    let mut chart = ChartBuilder::on(area)
                        .margin(4)
                        .x_label_area_size(if i == d - 1 { 28 } else { 4 })
                        .y_label_area_size(if j == 0 { 32 } else { 4 })
                        .build_cartesian_2d(xl.0..xl.1, yl.0..yl.1)
                        .map_err(|e| err(e.to_string()))?;
                    chart
                        .configure_mesh()
                        .disable_mesh()
                        .x_labels(if i == d - 1 { 4 } else { 0 })
                        .y_labels(if j == 0 { 4 } else { 0 })
                        .x_desc(x_label)
                        .y_desc(if j == 0 { names[i].as_str() } else { "" })
                        .label_style(("sans-serif", 10))
                        .draw()
                        .map_err(|e| err(e.to_string()))?;
                    let (wx, wy) = ((xl.1 - xl.0) / BINS as f64, (yl.1 - yl.0) / BINS as f64);
                    chart
                        .draw_series(grid.iter().enumerate().filter(|(_, v)| **v > 0.0).map(|(k, &v)| {
                            let (bx, by) = (k % BINS, k / BINS);
                            let (x0, y0) = (xl.0 + bx as f64 * wx, yl.0 + by as f64 * wy);
                            Rectangle::new([(x0, y0), (x0 + wx, y0 + wy)], color.mix((v / top).sqrt()).filled())
                        }))
                        .map_err(|e| err(e.to_string()))?;
                }
            }
        }
        Ok(())
    })
}

/// Each column's axis limits: the 0.5% and 99.5% quantiles of its finite values over both
/// sets, padded by 5%.
fn axis_limits(what: &str, names: &[String], samples: &[f64], reference: Option<&[f64]>) -> Result<Vec<(f64, f64)>> {
    let d = names.len();
    if d == 0 || samples.is_empty() || !samples.len().is_multiple_of(d) || reference.is_some_and(|r| r.len() % d != 0) {
        return Err(Error::shape(format!("{what} samples (rows of one value per name)"), d, samples.len() % d.max(1)));
    }
    let column =
        |v: &[f64], j: usize| -> Vec<f64> { v.iter().skip(j).step_by(d).copied().filter(|x| x.is_finite()).collect() };
    (0..d)
        .map(|j| {
            let mut all = column(samples, j);
            if let Some(r) = reference {
                all.extend(column(r, j));
            }
            if all.is_empty() {
                return Err(Error::Config(format!("{what}: `{}` has no finite value", names[j])));
            }
            all.sort_by(f64::total_cmp);
            let q = |p: f64| all[((all.len() - 1) as f64 * p) as usize];
            let (lo, hi) = (q(0.005), q(0.995));
            let pad = 0.05 * (hi - lo).max(1e-12);
            Ok((lo - pad, hi + pad))
        })
        .collect()
}

/// Writes the marginal histogram of each parameter of `samples` (`n × names.len()`
/// row-major) to an SVG file (PNG when `path` ends in `.png`), up to four panels a row; with `reference`, its marginals as
/// orange outlines over them.
///
/// # Errors
/// As [`pair_plot`].
pub fn marginal_plot(
    path: impl AsRef<Path>,
    names: &[String],
    samples: &[f64],
    reference: Option<&[f64]>,
) -> Result<()> {
    let path = path.as_ref();
    let d = names.len();
    let limits = axis_limits("marginal plot", names, samples, reference)?;
    let column =
        |v: &[f64], j: usize| -> Vec<f64> { v.iter().skip(j).step_by(d).copied().filter(|x| x.is_finite()).collect() };
    let cols = d.min(4);
    let rows = d.div_ceil(cols);
    let err = |e: String| Error::file(path, format!("cannot draw the plot: {e}"));
    render(path, (240 * cols as u32, 190 * rows as u32), |root| {
        for (j, area) in root.split_evenly((rows, cols)).iter().enumerate().take(d) {
            let xl = limits[j];
            let hist = histogram(&column(samples, j), xl, BINS);
            let ref_hist = reference.map(|r| histogram(&column(r, j), xl, BINS));
            marginal_panel(area, &names[j], xl, &hist, ref_hist.as_deref(), ("", 4, 24)).map_err(err)?;
        }
        Ok(())
    })
}

/// One marginal panel: the histogram `hist` over `xl` in blue, `reference`'s as an orange
/// outline; `axis` is the x axis's description, number of labels and label area.
fn marginal_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    name: &str,
    xl: (f64, f64),
    hist: &[f64],
    reference: Option<&[f64]>,
    (x_desc, x_labels, x_area): (&str, usize, u32),
) -> std::result::Result<(), String> {
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    let top = hist.iter().chain(reference.into_iter().flatten()).copied().fold(0.0, f64::max).max(1e-12) * 1.05;
    let mut chart = ChartBuilder::on(area)
        .margin(4)
        .x_label_area_size(x_area)
        .y_label_area_size(4)
        .caption(name, ("sans-serif", 13))
        .build_cartesian_2d(xl.0..xl.1, 0.0..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .y_labels(0)
        .x_labels(x_labels)
        .x_desc(x_desc)
        .label_style(("sans-serif", 10))
        .draw()
        .map_err(|e| e.to_string())?;
    let w = (xl.1 - xl.0) / hist.len().max(1) as f64;
    chart
        .draw_series(hist.iter().enumerate().map(|(b, &h)| {
            let x0 = xl.0 + b as f64 * w;
            Rectangle::new([(x0, 0.0), (x0 + w, h)], blue.mix(0.6).filled())
        }))
        .map_err(|e| e.to_string())?;
    if let Some(rh) = reference {
        let steps =
            rh.iter().enumerate().flat_map(|(b, &h)| [(xl.0 + b as f64 * w, h), (xl.0 + (b + 1) as f64 * w, h)]);
        chart.draw_series(LineSeries::new(steps, orange.stroke_width(2))).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Normalised histogram (a density) of `v` over `range` in `bins` bins.
fn histogram(v: &[f64], range: (f64, f64), bins: usize) -> Vec<f64> {
    let mut h = vec![0.0; bins];
    let w = (range.1 - range.0) / bins as f64;
    for &x in v {
        let b = ((x - range.0) / w).floor();
        if b >= 0.0 && (b as usize) < bins {
            h[b as usize] += 1.0;
        }
    }
    let total = v.len().max(1) as f64 * w;
    h.iter_mut().for_each(|c| *c /= total);
    h
}

/// Counts of `(column jx, column jy)` pairs on a `bins × bins` grid (row `by`, column `bx`).
fn histogram_2d(v: &[f64], d: usize, jx: usize, jy: usize, xr: (f64, f64), yr: (f64, f64), bins: usize) -> Vec<f64> {
    let mut g = vec![0.0; bins * bins];
    let (wx, wy) = ((xr.1 - xr.0) / bins as f64, (yr.1 - yr.0) / bins as f64);
    for row in v.chunks_exact(d) {
        let (bx, by) = (((row[jx] - xr.0) / wx).floor(), ((row[jy] - yr.0) / wy).floor());
        if bx >= 0.0 && by >= 0.0 && (bx as usize) < bins && (by as usize) < bins {
            g[by as usize * bins + bx as usize] += 1.0;
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_labelled_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.svg");
        let names = vec!["alpha".to_string(), "beta[0]".to_string()];
        let samples: Vec<f64> = (0..400).map(|i| ((i * 7919) % 101) as f64 / 100.0).collect();
        pair_plot(&path, &names, &samples, Some(&samples)).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("alpha") && svg.contains("beta[0]"));
        assert!(svg.matches("<rect").count() > 50, "the histograms are drawn");
        assert!(pair_plot(&path, &names, &[1.0, 2.0, 3.0], None).is_err());
        assert!(
            pair_plot(&path, &names, &[f64::NAN, 1.0, f64::NAN, 2.0], None).is_err(),
            "no finite value in a column"
        );
    }

    /// A `.png` name gives a PNG at twice the SVG's size, with its labels drawn (by the
    /// built-in font: two plots that differ only in their labels differ).
    #[test]
    fn writes_a_png_with_its_labels() {
        let dir = tempfile::tempdir().unwrap();
        let samples: Vec<f64> = (0..400).map(|i| ((i * 7919) % 101) as f64 / 100.0).collect();
        let png = |names: [&str; 2], file: &str| {
            let path = dir.path().join(file);
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            pair_plot(&path, &names, &samples, None).unwrap();
            std::fs::read(path).unwrap()
        };
        let a = png(["alpha", "beta"], "a.png");
        assert_eq!(&a[..8], b"\x89PNG\r\n\x1a\n");
        let dim = |at: usize| u32::from_be_bytes(a[at..at + 4].try_into().unwrap());
        assert_eq!((dim(16), dim(20)), (2 * 2 * PANEL, 2 * 2 * PANEL), "width and height in the IHDR chunk");
        assert_ne!(a, png(["gamma", "delta"], "b.png"), "the labels are drawn");
        assert_eq!(a, png(["alpha", "beta"], "c.PNG"));
    }

    #[test]
    fn writes_marginal_histograms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marginals.svg");
        let names: Vec<String> = (0..5).map(|j| format!("p{j}")).collect();
        let samples: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 101) as f64 / 100.0).collect();
        marginal_plot(&path, &names, &samples, Some(&samples)).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("p0") && svg.contains("p4") && svg.matches("<polyline").count() >= 5);
        assert!(marginal_plot(&path, &names, &[1.0, 2.0], None).is_err());
    }

    #[test]
    fn histograms_are_densities() {
        let v: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
        let h = histogram(&v, (0.0, 1.0), 10);
        assert!((h.iter().sum::<f64>() * 0.1 - 1.0).abs() < 1e-12);
    }

    /// The simultaneous band holds about 95% of uniform ECDFs over the whole grid, and is
    /// wider than the pointwise 95% band.
    #[test]
    fn the_ecdf_band_is_simultaneous() {
        use rand::RngExt;
        let n = 200;
        let grid: Vec<f64> = (1..100).map(|k| k as f64 / 100.0).collect();
        let (lower, upper) = ecdf_band(n, &grid, 3);
        let mut rng = crate::rng::stream_rng(11, 0);
        let inside = (0..1000)
            .filter(|_| {
                let mut u: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
                u.sort_by(f64::total_cmp);
                grid.iter().zip(lower.iter().zip(&upper)).all(|(&z, (l, h))| {
                    let diff = u.partition_point(|&v| v <= z) as f64 / n as f64 - z;
                    *l <= diff && diff <= *h
                })
            })
            .count();
        // Binomial(1000, 0.95): sd 7; the band's own estimate adds about as much.
        assert!((920..=980).contains(&inside), "{inside} of 1000 inside");
        // Pointwise at z = 0.5 the 95% half-width is 1.96·√(0.25/200) ≈ 0.069.
        let mid = grid.iter().position(|&z| (z - 0.5).abs() < 1e-9).unwrap();
        assert!(upper[mid] > 0.075 && lower[mid] < -0.075, "{} {}", lower[mid], upper[mid]);
    }
}
