//! numpy's own files, `.npy` (one array) and `.npz` (a zip of named arrays), through candle's
//! reader and writer, so that `numpy.load` reads what the toolkit writes. A toolkit `.npz`
//! also holds its typed header as an array `header` of UTF-8 JSON bytes (with the file's
//! format and version: `json.loads(bytes(f["header"]))` in Python).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use safetensors::Dtype;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::io::{Array, ArrayFile, FileKind};

/// The header array of a toolkit `.npz`: the format, its version and the typed header.
#[derive(Serialize, serde::Deserialize)]
struct Envelope<H> {
    format: String,
    version: u32,
    header: H,
}

/// Writes `arrays` and `header` to an `.npz` file, atomically (u64 arrays as int64, which
/// numpy reads as such; candle has no unsigned 64-bit type).
///
/// # Errors
/// [`Error::Io`] or [`Error::File`] when the file cannot be written.
pub(crate) fn write_npz<H: Serialize>(path: &Path, kind: &FileKind, arrays: &[Array], header: &H) -> Result<()> {
    let cpu = Device::Cpu;
    let mut tensors = Vec::with_capacity(arrays.len() + 1);
    for a in arrays {
        let t = match a.dtype {
            Dtype::F64 => {
                let v: Vec<f64> =
                    a.bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8"))).collect();
                Tensor::from_vec(v, a.shape.as_slice(), &cpu)?
            }
            Dtype::U64 => {
                let v: Vec<i64> =
                    a.bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8"))).collect();
                Tensor::from_vec(v, a.shape.as_slice(), &cpu)?
            }
            Dtype::U8 => Tensor::from_vec(a.bytes.clone(), a.shape.as_slice(), &cpu)?,
            other => return Err(Error::file(path, format!("array `{}` has dtype {other:?}, not writable", a.name))),
        };
        tensors.push((a.name.clone(), t));
    }
    let envelope = Envelope { format: kind.format.to_string(), version: kind.version, header };
    let json =
        serde_json::to_vec(&envelope).map_err(|e| Error::file(path, format!("cannot write the header ({e})")))?;
    let n = json.len();
    tensors.push(("header".to_string(), Tensor::from_vec(json, n, &cpu)?));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    Tensor::write_npz(&tensors, &tmp).map_err(|e| Error::file(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// An `.npz` file read into memory.
pub(crate) struct NpzFile<'p> {
    path: &'p Path,
    arrays: HashMap<String, Tensor>,
}

impl<'p> NpzFile<'p> {
    /// Reads every array. Zip's own CRC-32 of each array catches a damaged file.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing file; [`Error::File`] for anything not an `.npz`.
    pub(crate) fn open(path: &'p Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)));
        }
        let arrays = Tensor::read_npz(path)
            .map_err(|e| Error::file(path, format!("not a readable .npz file ({e})")))?
            .into_iter()
            .collect();
        Ok(NpzFile { path, arrays })
    }

    fn get(&self, name: &str, dtype: DType) -> Result<&Tensor> {
        let t = self.arrays.get(name).ok_or_else(|| Error::file(self.path, format!("missing array `{name}`")))?;
        if t.dtype() != dtype {
            return Err(Error::file(
                self.path,
                format!("array `{name}` has dtype {:?}, expected {dtype:?}", t.dtype()),
            ));
        }
        Ok(t)
    }

    /// The typed header, after checking the file's format and version.
    ///
    /// # Errors
    /// [`Error::File`] for another kind of file, another version, or an unreadable header.
    pub(crate) fn header<H: DeserializeOwned>(&self, kind: &FileKind) -> Result<H> {
        let bytes: Vec<u8> = self.get("header", DType::U8)?.to_vec1()?;
        let envelope: Envelope<serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|_| Error::file(self.path, format!("not {} file", kind.what)))?;
        if envelope.format != kind.format {
            return Err(Error::file(self.path, format!("not {} file", kind.what)));
        }
        crate::io::check_version(self.path, envelope.version, kind)?;
        serde_json::from_value(envelope.header).map_err(|e| Error::file(self.path, format!("unreadable header ({e})")))
    }
}

impl ArrayFile for NpzFile<'_> {
    fn f64(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>)> {
        let t = self.get(name, DType::F64)?;
        Ok((t.dims().to_vec(), t.flatten_all()?.to_vec1()?))
    }

    fn u64(&self, name: &str) -> Result<Vec<u64>> {
        let v: Vec<i64> = self.get(name, DType::I64)?.flatten_all()?.to_vec1()?;
        v.into_iter()
            .map(|i| u64::try_from(i).map_err(|_| Error::file(self.path, format!("array `{name}` holds {i}"))))
            .collect()
    }

    fn u8(&self, name: &str) -> Result<Vec<u8>> {
        Ok(self.get(name, DType::U8)?.flatten_all()?.to_vec1()?)
    }

    fn path(&self) -> &Path {
        self.path
    }
}

/// Writes one `f64` matrix `rows × cols` as an `.npy` file (`numpy.load` reads it), atomically.
///
/// # Errors
/// [`Error::ShapeMismatch`] when `values` is not `rows × cols`; file errors.
pub fn write_npy(path: impl AsRef<Path>, values: &[f64], rows: usize, cols: usize) -> Result<()> {
    let path = path.as_ref();
    if values.len() != rows * cols {
        return Err(Error::shape("npy matrix", rows * cols, values.len()));
    }
    let t = Tensor::from_vec(values.to_vec(), (rows, cols), &Device::Cpu)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    t.write_npy(&tmp).map_err(|e| Error::file(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Reads an `.npy` file of a 2-D `f64` matrix; returns its values, rows and columns.
///
/// # Errors
/// [`Error::Io`] for a missing file; [`Error::File`] for anything else than a 2-D f64 array.
pub fn read_npy(path: impl AsRef<Path>) -> Result<(Vec<f64>, usize, usize)> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    let t = Tensor::read_npy(path).map_err(|e| Error::file(path, format!("not a readable .npy file ({e})")))?;
    if t.dtype() != DType::F64 || t.rank() != 2 {
        return Err(Error::file(
            path,
            format!("expected a 2-D float64 array, got {:?} of shape {:?}", t.dtype(), t.dims()),
        ));
    }
    let (rows, cols) = t.dims2()?;
    Ok((t.flatten_all()?.to_vec1()?, rows, cols))
}
