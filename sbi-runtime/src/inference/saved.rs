//! Model files shared by every trained posterior: the network's weights as safetensors
//! arrays, with the file's format, version and a JSON description of the model in the
//! metadata. Loading checks each of them and reports a corrupt, foreign or mismatched file
//! as [`Error::File`], never a panic.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::io::{SafetensorsFile, write_safetensors};
use crate::nn::{ParamStore, to_f64};

/// What identifies a kind of model file.
pub(crate) struct FileKind {
    /// The `format` metadata entry, e.g. `sbi-rs/npe`.
    pub format: &'static str,
    /// The version this build writes and reads.
    pub version: u32,
    /// How an error message names the file's content, e.g. "an NPE posterior".
    pub what: &'static str,
}

/// Writes the weights of `store` and `header` (as JSON) to `path`, atomically.
pub(crate) fn save<H: Serialize>(path: &Path, kind: &FileKind, store: &ParamStore, header: &H) -> Result<()> {
    let arrays = store
        .named_tensors()
        .iter()
        .map(|(name, t)| Ok(crate::io::Array::f64_named(name.clone(), t.dims().to_vec(), &to_f64(t)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), kind.format.to_string());
    meta.insert("version".to_string(), kind.version.to_string());
    meta.insert("model".to_string(), serde_json::to_string(header).map_err(|e| Error::file(path, e.to_string()))?);
    write_safetensors(path, &arrays, meta)
}

/// A file read by [`load`]: its header and its weights, ready for [`ParamStore::from_tensors`].
pub(crate) struct Loaded<H> {
    pub header: H,
    pub weights: HashMap<String, Tensor>,
}

/// Reads a file written by [`save`] for `kind`, checking its format and version.
pub(crate) fn load<H: DeserializeOwned>(path: &Path, kind: &FileKind) -> Result<Loaded<H>> {
    let f = SafetensorsFile::open(path)?;
    let meta = f.metadata()?;
    if f.require(&meta, "format")? != kind.format {
        return Err(Error::file(path, format!("not {} file", kind.what)));
    }
    let version: u32 = f.parse(&meta, "version")?;
    if version != kind.version {
        return Err(Error::file(path, format!("format version {version}, this build reads version {}", kind.version)));
    }
    let header = serde_json::from_str(f.require(&meta, "model")?)
        .map_err(|e| Error::file(path, format!("unreadable model description ({e})")))?;
    let mut weights = HashMap::new();
    for name in f.names()? {
        let (shape, values) = f.f64(&name)?;
        let t =
            Tensor::from_vec(values.iter().map(|&v| v as f32).collect::<Vec<f32>>(), shape, &candle_core::Device::Cpu)
                .map_err(|e| Error::file(path, format!("array `{name}` does not match its shape ({e})")))?;
        weights.insert(name, t);
    }
    Ok(Loaded { header, weights })
}

/// Checks that the file was written for parameters named as the model's.
pub(crate) fn check_names(path: &Path, saved: &[String], model: &[String]) -> Result<()> {
    if saved != model {
        return Err(Error::file(path, format!("it was trained for parameters {saved:?}, this model has {model:?}")));
    }
    Ok(())
}

/// Checks that the rebuilt network took every saved weight (`saved` of them).
pub(crate) fn check_all_used(path: &Path, store: &ParamStore, saved: usize) -> Result<()> {
    if store.vars().len() != saved {
        return Err(Error::file(path, "the file holds weights the model does not use"));
    }
    Ok(())
}

/// The embedding a file names: a built-in one (as JSON, or as a string of JSON) or a user's
/// (`custom:NAME`), which must be the `custom` builder passed to `load_with`.
pub(crate) fn resolve_embedding(
    path: &Path,
    saved: &serde_json::Value,
    custom: &crate::nn::EmbeddingNet,
) -> Result<crate::nn::EmbeddingNet> {
    match saved {
        serde_json::Value::String(name) if name.starts_with("custom:") => {
            if custom.describe() != *name {
                return Err(Error::file(path, format!("it needs the embedding `{name}`: pass it to load_with")));
            }
            Ok(custom.clone())
        }
        // A unit variant ("identity") is a JSON string itself; NPE stores others as JSON text.
        serde_json::Value::String(json) => {
            serde_json::from_value(saved.clone()).or_else(|_| serde_json::from_str(json))
        }
        other => serde_json::from_value(other.clone()),
    }
    .map_err(|e| Error::file(path, format!("unknown embedding ({e})")))
}
