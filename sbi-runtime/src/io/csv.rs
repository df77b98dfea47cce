//! CSV files of numbers with a header row (samples, simulations, sbibm's observations and
//! reference posteriors).

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::write_atomic;

/// Writes a CSV file with a header and `rows.len() / header.len()` rows of numbers.
///
/// # Errors
/// [`crate::Error::Io`] when the file cannot be read or written; [`crate::Error::File`] for
/// malformed content; [`crate::Error::ShapeMismatch`] for rows that do not fit the header.
pub fn write_csv(path: impl AsRef<Path>, header: &[String], rows: &[f64]) -> Result<()> {
    let path = path.as_ref();
    let cols = header.len();
    if cols == 0 || !rows.len().is_multiple_of(cols) {
        return Err(Error::shape("CSV rows", cols * (rows.len() / cols.max(1)), rows.len()));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let to_err = |e: csv::Error| Error::file(path, e.to_string());
    w.write_record(header).map_err(to_err)?;
    for row in rows.chunks_exact(cols) {
        // `Display` for f64 is the shortest text that reads back to the same value.
        w.write_record(row.iter().map(f64::to_string)).map_err(to_err)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::file(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

/// A numeric table read from CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names from the header.
    pub header: Vec<String>,
    /// Values, row-major.
    pub values: Vec<f64>,
}

impl Table {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.header.len().max(1)
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let c = self.header.len();
        &self.values[i * c..(i + 1) * c]
    }
}

/// Reads a CSV file with a header row and numeric cells (such as sbibm's observation
/// and reference-posterior files).
///
/// # Errors
/// [`crate::Error::Io`] when the file cannot be read or written; [`crate::Error::File`] for
/// malformed content; [`crate::Error::ShapeMismatch`] for rows that do not fit the header.
pub fn read_csv(path: impl AsRef<Path>) -> Result<Table> {
    let path = path.as_ref();
    let mut r = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::file(path, format!("{other:?}")),
    })?;
    let header: Vec<String> =
        r.headers().map_err(|e| Error::file(path, e.to_string()))?.iter().map(|s| s.trim().to_string()).collect();
    let mut values = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| Error::file(path, e.to_string()))?;
        if rec.len() != header.len() {
            return Err(Error::file(
                path,
                format!("row {} has {} cells, the header {}", i + 1, rec.len(), header.len()),
            ));
        }
        for cell in rec.iter() {
            let v: f64 = cell
                .trim()
                .parse()
                .map_err(|_| Error::file(path, format!("row {}: {cell:?} is not a number", i + 1)))?;
            values.push(v);
        }
    }
    if header.is_empty() {
        return Err(Error::file(path, "the file has no header"));
    }
    Ok(Table { header, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        let header = vec!["a".to_string(), "b[0]".to_string()];
        let rows = vec![0.1, -2.5e-300, 1.0 / 3.0, f64::MAX];
        write_csv(&p, &header, &rows).unwrap();
        let t = read_csv(&p).unwrap();
        assert_eq!(t.header, header);
        assert_eq!(t.values, rows);
        assert_eq!(t.rows(), 2);
        assert_eq!(t.row(1), &rows[2..]);
    }

    #[test]
    fn csv_errors_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.csv");
        std::fs::write(&p, "a,b\n1,zz\n").unwrap();
        assert!(matches!(read_csv(&p), Err(Error::File { .. })));
        std::fs::write(&p, "a,b\n1,2,3\n").unwrap();
        assert!(matches!(read_csv(&p), Err(Error::File { .. })));
        assert!(matches!(read_csv(dir.path().join("missing.csv")), Err(Error::Io { .. })));
        assert!(matches!(write_csv(&p, &["a".into(), "b".into()], &[1.0]), Err(Error::ShapeMismatch { .. })));
    }
}
