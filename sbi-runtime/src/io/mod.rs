//! Files: safetensors (read by Python's `safetensors.numpy.load_file`) and CSV.
//!
//! Writes are atomic (a temporary file renamed into place), so an interrupted write never
//! leaves a truncated file behind; reads check names, dtypes and shapes and report a
//! corrupt or foreign file as [`Error::File`].

mod csv;
mod safetensors;

pub use csv::{Table, read_csv, write_csv};
pub(crate) use safetensors::{Array, FileKind, SafetensorsFile, write_safetensors};

use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
