//! safetensors files (read by Python's `safetensors.numpy.load_file`) with a typed header,
//! a format version and a checksum; writes are atomic.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::io::{ArrayFile, write_atomic};

/// One named array to write: its dtype, shape and little-endian bytes.
pub(crate) struct Array {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Array {
    pub(crate) fn f64(name: &'static str, shape: Vec<usize>, values: &[f64]) -> Self {
        Self::f64_named(name.to_string(), shape, values)
    }
    pub(crate) fn f64_named(name: String, shape: Vec<usize>, values: &[f64]) -> Self {
        Array { name, dtype: Dtype::F64, shape, bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect() }
    }
    pub(crate) fn u64(name: &'static str, values: &[u64]) -> Self {
        Array {
            name: name.to_string(),
            dtype: Dtype::U64,
            shape: vec![values.len()],
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
    pub(crate) fn u8(name: &'static str, values: &[u8]) -> Self {
        Array { name: name.to_string(), dtype: Dtype::U8, shape: vec![values.len()], bytes: values.to_vec() }
    }
}

/// What identifies a kind of file this toolkit writes.
pub(crate) struct FileKind {
    /// The `format` metadata entry, e.g. `sbi-rs/npe`.
    pub format: &'static str,
    /// The version this build writes and reads.
    pub version: u32,
    /// How an error message names the file's content, e.g. "an NPE posterior".
    pub what: &'static str,
}

/// Writes arrays and a typed header to a safetensors file, atomically. The metadata holds
/// the kind's `format` and `version`, the header as JSON, and a CRC-32 `checksum` of
/// everything else (arrays and metadata), which [`SafetensorsFile::header`] verifies.
pub(crate) fn write_safetensors<H: Serialize>(
    path: &Path,
    kind: &FileKind,
    arrays: &[Array],
    header: &H,
) -> Result<()> {
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), kind.format.to_string());
    metadata.insert("version".to_string(), kind.version.to_string());
    metadata.insert(
        "header".to_string(),
        serde_json::to_string(header).map_err(|e| Error::file(path, format!("cannot write the header ({e})")))?,
    );
    let views = arrays
        .iter()
        .map(|a| {
            Ok((
                a.name.as_str(),
                TensorView::new(a.dtype, a.shape.clone(), &a.bytes).map_err(|e| Error::file(path, e.to_string()))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let sum = checksum(views.iter().map(|(n, v)| (*n, v.dtype(), v.shape(), v.data())), &metadata);
    metadata.insert("checksum".to_string(), sum);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::file(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

/// CRC-32 of the arrays (in name order: name, dtype, shape, bytes) and of the metadata
/// entries other than `checksum` (in key order), as 8 hex digits.
fn checksum<'a>(
    arrays: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>,
    metadata: &HashMap<String, String>,
) -> String {
    let mut arrays: Vec<_> = arrays.collect();
    arrays.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = crc32fast::Hasher::new();
    for (name, dtype, shape, data) in arrays {
        h.update(name.as_bytes());
        h.update(format!("{dtype:?}{shape:?}").as_bytes());
        h.update(&(data.len() as u64).to_le_bytes());
        h.update(data);
    }
    let mut keys: Vec<&String> = metadata.keys().filter(|k| *k != "checksum").collect();
    keys.sort();
    for k in keys {
        h.update(k.as_bytes());
        h.update(&[0]);
        h.update(metadata[k].as_bytes());
        h.update(&[0]);
    }
    format!("{:08x}", h.finalize())
}

/// A safetensors file read into memory, with checked accessors.
pub(crate) struct SafetensorsFile<'p> {
    path: &'p Path,
    bytes: Vec<u8>,
}

impl<'p> SafetensorsFile<'p> {
    pub(crate) fn open(path: &'p Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Ok(SafetensorsFile { path, bytes })
    }

    fn parsed(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| Error::file(self.path, format!("not a valid safetensors file ({e})")))
    }

    /// The string metadata of the header.
    fn metadata(&self) -> Result<HashMap<String, String>> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes)
            .map_err(|e| Error::file(self.path, format!("not a valid safetensors file ({e})")))?;
        Ok(meta.metadata().clone().unwrap_or_default())
    }

    /// The file's typed header, after checking that it is a file of `kind`, of this
    /// build's version, and unchanged since it was written (its checksum).
    ///
    /// # Errors
    /// [`Error::File`] for another kind of file or version, a checksum that does not match
    /// (a flipped byte, an edited header), or a header that does not parse.
    pub(crate) fn header<H: DeserializeOwned>(&self, kind: &FileKind) -> Result<H> {
        let meta = self.metadata()?;
        let bad = |reason: String| Error::file(self.path, reason);
        if meta.get("format").map(String::as_str) != Some(kind.format) {
            return Err(bad(format!("not {} file", kind.what)));
        }
        let version: u32 = self.parse(&meta, "version")?;
        crate::io::check_version(self.path, version, kind)?;
        let stored = self.require(&meta, "checksum")?;
        let st = self.parsed()?;
        let arrays: Vec<(String, TensorView<'_>)> = st.tensors();
        let actual = checksum(arrays.iter().map(|(n, v)| (n.as_str(), v.dtype(), v.shape(), v.data())), &meta);
        if actual != stored {
            return Err(bad(format!(
                "its checksum does not match its content (stored {stored}, computed {actual}): the file was \
                 damaged or edited after it was written"
            )));
        }
        serde_json::from_str(self.require(&meta, "header")?).map_err(|e| bad(format!("unreadable header ({e})")))
    }

    fn raw(&self, name: &str, dtype: Dtype) -> Result<(Vec<usize>, Vec<u8>)> {
        let st = self.parsed()?;
        let t = st.tensor(name).map_err(|_| Error::file(self.path, format!("missing array `{name}`")))?;
        if t.dtype() != dtype {
            return Err(Error::file(
                self.path,
                format!("array `{name}` has dtype {:?}, expected {dtype:?}", t.dtype()),
            ));
        }
        Ok((t.shape().to_vec(), t.data().to_vec()))
    }

    /// An f64 array with its shape.
    pub(crate) fn f64(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>)> {
        let (shape, data) = self.raw(name, Dtype::F64)?;
        Ok((shape, data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()))
    }

    /// The names of all arrays.
    pub(crate) fn names(&self) -> Result<Vec<String>> {
        Ok(self.parsed()?.names().into_iter().map(String::from).collect())
    }

    /// A u64 vector.
    pub(crate) fn u64(&self, name: &str) -> Result<Vec<u64>> {
        let (_, data) = self.raw(name, Dtype::U64)?;
        Ok(data.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }

    /// A u8 vector.
    pub(crate) fn u8(&self, name: &str) -> Result<Vec<u8>> {
        Ok(self.raw(name, Dtype::U8)?.1)
    }

    /// A metadata entry that must be present.
    fn require<'m>(&self, meta: &'m HashMap<String, String>, key: &str) -> Result<&'m str> {
        meta.get(key).map(String::as_str).ok_or_else(|| Error::file(self.path, format!("missing metadata `{key}`")))
    }

    /// A metadata entry parsed as `T`.
    fn parse<T: std::str::FromStr>(&self, meta: &HashMap<String, String>, key: &str) -> Result<T> {
        let v = self.require(meta, key)?;
        v.parse().map_err(|_| Error::file(self.path, format!("metadata `{key}` = {v:?} is not valid")))
    }
}

impl ArrayFile for SafetensorsFile<'_> {
    fn f64(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>)> {
        SafetensorsFile::f64(self, name)
    }

    fn u64(&self, name: &str) -> Result<Vec<u64>> {
        SafetensorsFile::u64(self, name)
    }

    fn u8(&self, name: &str) -> Result<Vec<u8>> {
        SafetensorsFile::u8(self, name)
    }

    fn path(&self) -> &Path {
        self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_safetensors_is_a_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        std::fs::write(&p, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
        let f = SafetensorsFile::open(&p).unwrap();
        assert!(matches!(f.metadata(), Err(Error::File { .. })));
        assert!(matches!(
            f.header::<u32>(&FileKind { format: "a", version: 1, what: "a file" }),
            Err(Error::File { .. })
        ));
        assert!(matches!(f.f64("theta"), Err(Error::File { .. })));
    }
}
