//! Files: safetensors (read by Python's `safetensors.numpy.load_file`) and CSV.
//!
//! Writes are atomic (a temporary file renamed into place), so an interrupted write never
//! leaves a truncated file behind; reads check names, dtypes and shapes and report a
//! corrupt or foreign file as [`Error::File`].

mod csv;
mod npz;
mod safetensors;

pub use csv::{Table, read_csv, write_csv};
pub(crate) use npz::{NpzFile, write_npz};
pub use npz::{read_npy, write_npy};
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

/// A file of named arrays (safetensors or `.npz`), read by name and dtype.
pub(crate) trait ArrayFile {
    /// An f64 array with its shape.
    fn f64(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>)>;
    /// A u64 vector.
    fn u64(&self, name: &str) -> Result<Vec<u64>>;
    /// A u8 vector.
    fn u8(&self, name: &str) -> Result<Vec<u8>>;
    /// The file, for error messages.
    fn path(&self) -> &Path;
}

/// Refuses a file of another format version than `kind`'s, saying which way it differs.
pub(crate) fn check_version(path: &Path, version: u32, kind: &FileKind) -> Result<()> {
    if version < kind.version {
        return Err(Error::file(
            path,
            format!(
                "written by an earlier version of this toolkit (format version {version}; this build reads version {}, \
                 which records the model's identity and a checksum); create it again with this build",
                kind.version
            ),
        ));
    }
    if version > kind.version {
        return Err(Error::file(
            path,
            format!(
                "written by a newer version of this toolkit (format version {version}; this build reads version {}); \
                 update the toolkit",
                kind.version
            ),
        ));
    }
    Ok(())
}
