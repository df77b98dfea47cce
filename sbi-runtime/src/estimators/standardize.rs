//! z-scoring: per-feature means and scales fitted to training data, applied in f64 before
//! values become the networks' f32 tensors, and undone in f64 on their outputs.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Per-feature mean and scale for z-scoring, from the rows of a matrix. A feature whose
/// standard deviation is below `1e-14` (constant in the training data) keeps scale 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Feature means.
    pub mean: Vec<f64>,
    /// Feature standard deviations (ddof 1), 1 for constant features.
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Statistics of `values` (`rows × cols` row-major).
    pub fn fit(values: &[f64], cols: usize) -> Standardizer {
        // NaN values (absent trials) are left out; a column without values keeps (0, 1).
        let mut sum = vec![0.0; cols];
        let mut count = vec![0usize; cols];
        for row in values.chunks_exact(cols) {
            for ((s, c), v) in sum.iter_mut().zip(count.iter_mut()).zip(row) {
                if !v.is_nan() {
                    *s += v;
                    *c += 1;
                }
            }
        }
        let mean: Vec<f64> = sum.iter().zip(&count).map(|(s, &c)| if c > 0 { s / c as f64 } else { 0.0 }).collect();
        let mut var = vec![0.0; cols];
        for row in values.chunks_exact(cols) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                if !v.is_nan() {
                    *s += (v - m) * (v - m);
                }
            }
        }
        let std = var
            .iter()
            .zip(&count)
            .map(|(s, &c)| (s / (c.saturating_sub(1)).max(1) as f64).sqrt())
            .map(|s| if s < 1e-14 { 1.0 } else { s })
            .collect();
        Standardizer { mean, std }
    }

    /// z-scores rows of `self.mean.len()` raw values in f64 (a trailing partial row is
    /// dropped), for computations outside the networks (C2ST, the diagnostics' tests).
    pub fn scale_rows(&self, values: &[f64]) -> Vec<f64> {
        let d = self.mean.len().max(1);
        values
            .chunks_exact(d)
            .flat_map(|r| r.iter().zip(self.mean.iter().zip(&self.std)).map(|(v, (m, s))| (v - m) / s))
            .collect()
    }

    /// z-scores `values` (rows of `self.mean.len()` raw values) in f64 and hands them to the
    /// networks as an f32 tensor `[rows, cols]`. Subtracting the mean before leaving f64
    /// keeps the signal of values far from zero (`10⁷ + θ` keeps θ's digits; in f32 it
    /// would keep none). NaN (absent trials) passes through.
    ///
    /// # Errors
    /// [`Error::Unrepresentable`] naming the column (by `columns`) when a z-scored value is
    /// infinite or beyond f32's range, or the statistics themselves are not finite;
    /// [`Error::ShapeMismatch`] when `values` is not made of whole rows.
    pub fn to_tensor(&self, values: &[f64], columns: Columns<'_>, device: &Device) -> Result<Tensor> {
        Ok(self.standardise(values, columns, false, device)?.0)
    }

    /// As [`Standardizer::to_tensor`], but a row with a value beyond f32's range once
    /// z-scored is not an error: it becomes zeros in the tensor and `false` in the returned
    /// flags. Potentials use it: a parameter set that far from every training value (an MCMC
    /// proposal at 10⁴⁶) lies outside where the network can say anything, and scores `-inf`.
    ///
    /// # Errors
    /// As [`Standardizer::to_tensor`], for statistics that are not finite or rows that are not whole.
    pub(crate) fn to_tensor_flagging(
        &self,
        values: &[f64],
        columns: Columns<'_>,
        device: &Device,
    ) -> Result<(Tensor, Vec<bool>)> {
        self.standardise(values, columns, true, device)
    }

    fn standardise(
        &self,
        values: &[f64],
        columns: Columns<'_>,
        flag: bool,
        device: &Device,
    ) -> Result<(Tensor, Vec<bool>)> {
        let cols = self.mean.len();
        if cols == 0 || !values.len().is_multiple_of(cols) {
            return Err(Error::shape("rows to standardise", cols * (values.len() / cols.max(1)), values.len()));
        }
        let unrepresentable = |j: usize, value: f64| Error::Unrepresentable {
            column: columns.label(j),
            value,
            mean: self.mean[j],
            std: self.std[j],
        };
        if let Some(j) = (0..cols).find(|&j| !(self.mean[j].is_finite() && self.std[j].is_finite())) {
            return Err(unrepresentable(j, self.mean[j]));
        }
        let rows = values.len() / cols;
        let mut out = Vec::with_capacity(values.len());
        let mut ok = vec![true; rows];
        for (r, row) in values.chunks_exact(cols).enumerate() {
            let start = out.len();
            for (j, ((&v, m), s)) in row.iter().zip(&self.mean).zip(&self.std).enumerate() {
                let z = (v - m) / s;
                if z.is_infinite() || z.abs() > f32::MAX as f64 {
                    if !flag {
                        return Err(unrepresentable(j, v));
                    }
                    ok[r] = false;
                }
                out.push(z as f32);
            }
            if !ok[r] {
                out[start..].iter_mut().for_each(|z| *z = 0.0);
            }
        }
        Ok((Tensor::from_vec(out, (rows, cols), device)?, ok))
    }

    /// The raw values (f64) of a tensor of z-scored rows, the inverse of
    /// [`Standardizer::to_tensor`]: `u · std + mean`, computed in f64.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the tensor is not made of whole rows; a tensor error.
    pub fn from_tensor(&self, t: &Tensor) -> Result<Vec<f64>> {
        let cols = self.mean.len();
        let mut v = crate::nn::to_f64(t)?;
        if cols == 0 || v.len() % cols != 0 {
            return Err(Error::shape("standardised rows", cols * (v.len() / cols.max(1)), v.len()));
        }
        for row in v.chunks_exact_mut(cols) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = *x * s + m;
            }
        }
        Ok(v)
    }

    /// Divides each row's entries by the scale, in place: turns a gradient with respect to
    /// z-scored values into one with respect to raw values (the chain rule of z-scoring).
    pub(crate) fn unscale_gradient(&self, grad: &mut [f64]) {
        let cols = self.std.len().max(1);
        for row in grad.chunks_exact_mut(cols) {
            row.iter_mut().zip(&self.std).for_each(|(g, s)| *g /= s);
        }
    }

    /// `Σ log std`: the log-Jacobian of z-scoring.
    pub fn log_scale(&self) -> f64 {
        self.std.iter().map(|s| s.ln()).sum()
    }

    pub(crate) fn check(&self, dim: usize, what: &str) -> Result<()> {
        if self.mean.len() != dim || self.std.len() != dim || self.std.iter().any(|s| s.is_nan() || *s <= 0.0) {
            return Err(Error::shape(format!("{what} standardisation"), dim, self.mean.len()));
        }
        Ok(())
    }
}

/// How error messages name the columns of a matrix being standardised.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Columns<'a> {
    /// Parameters, by name.
    Parameters(&'a [String]),
    /// Values of a flattened observation, as `x[j]`.
    Observation,
}

impl Columns<'_> {
    /// The name of column `j`.
    pub fn label(&self, j: usize) -> String {
        match self {
            Columns::Parameters(names) => {
                names.get(j).map_or_else(|| format!("parameter {j}"), |n| format!("parameter `{n}`"))
            }
            Columns::Observation => format!("observation value x[{j}]"),
        }
    }
}
