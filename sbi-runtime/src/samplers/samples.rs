//! Posterior samples as a matrix with named columns.

use std::path::Path;

use crate::error::Result;
use crate::io::FileKind;

/// `.npz` files of samples.
const FILE: FileKind = FileKind { format: "sbi-rs/samples", version: 1, what: "a samples file" };

/// Posterior draws: `rows() × names.len()` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// The draws, row-major.
    pub values: Vec<f64>,
    /// Column names (the model's parameter names).
    pub names: Vec<String>,
}

impl Samples {
    /// Number of draws.
    pub fn rows(&self) -> usize {
        self.values.len() / self.names.len().max(1)
    }

    /// Draw `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let d = self.names.len();
        &self.values[i * d..(i + 1) * d]
    }

    /// Mean of each column.
    pub fn mean(&self) -> Vec<f64> {
        let d = self.names.len();
        let mut m = vec![0.0; d];
        for row in self.values.chunks_exact(d) {
            m.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
        m.iter_mut().for_each(|a| *a /= self.rows().max(1) as f64);
        m
    }

    /// Sample covariance (ddof 1), `d × d` row-major.
    pub fn covariance(&self) -> Vec<f64> {
        let d = self.names.len();
        let m = self.mean();
        let mut c = vec![0.0; d * d];
        for row in self.values.chunks_exact(d) {
            for i in 0..d {
                for j in 0..d {
                    c[i * d + j] += (row[i] - m[i]) * (row[j] - m[j]);
                }
            }
        }
        c.iter_mut().for_each(|a| *a /= (self.rows().max(2) - 1) as f64);
        c
    }

    /// Writes the draws as numpy's `.npy` (a `rows × names` float64 matrix; the names are
    /// not in the file: write CSV or `.npz` to keep them).
    ///
    /// # Errors
    /// File errors.
    pub fn write_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::io::write_npy(path, &self.values, self.rows(), self.names.len())
    }

    /// Writes the draws as numpy's `.npz`: an array `samples` (`rows × names`) and `header`
    /// (UTF-8 JSON bytes holding the names).
    ///
    /// # Errors
    /// File errors.
    pub fn write_npz(&self, path: impl AsRef<Path>) -> Result<()> {
        let arrays = [crate::io::Array::f64("samples", vec![self.rows(), self.names.len()], &self.values)];
        crate::io::write_npz(path.as_ref(), &FILE, &arrays, &self.names)
    }

    /// Reads draws written by [`Samples::write_npz`].
    ///
    /// # Errors
    /// [`crate::Error::Io`] for a missing file; [`crate::Error::File`] for another file.
    pub fn read_npz(path: impl AsRef<Path>) -> Result<Samples> {
        use crate::io::ArrayFile;
        let path = path.as_ref();
        let f = crate::io::NpzFile::open(path)?;
        let names: Vec<String> = f.header(&FILE)?;
        let (shape, values) = f.f64("samples")?;
        if shape != [values.len() / names.len().max(1), names.len()] {
            return Err(crate::Error::file(path, format!("samples of shape {shape:?} for {} names", names.len())));
        }
        Ok(Samples { values, names })
    }

    /// Writes the draws in the format the extension names: `.npy`
    /// ([`Samples::write_npy`]), `.npz` ([`Samples::write_npz`]), CSV otherwise
    /// ([`Samples::write_csv`]).
    ///
    /// # Errors
    /// As the writer chosen.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        match path.extension().and_then(|e| e.to_str()) {
            Some("npy") => self.write_npy(path),
            Some("npz") => self.write_npz(path),
            _ => self.write_csv(path),
        }
    }

    /// Writes a CSV file: a header of parameter names, one row per draw.
    ///
    /// # Errors
    /// [`crate::Error::Io`] or [`crate::Error::File`] when the file cannot be written.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::io::write_csv(path, &self.names, &self.values)
    }
}
