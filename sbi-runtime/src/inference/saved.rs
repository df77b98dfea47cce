//! Model files shared by every trained posterior: the network's weights as safetensors
//! arrays, with the file's format, version and a JSON description of the model in the
//! metadata. Loading checks each of them and reports a corrupt, foreign or mismatched file
//! as [`Error::File`], never a panic.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::io::{SafetensorsFile, write_safetensors};
use crate::nn::{ParamStore, to_f64};
use crate::simulate::ModelIdentity;

pub(crate) use crate::io::FileKind;

/// Writes the weights of `store` and `header` to `path`, atomically, with a checksum.
pub(crate) fn save<H: Serialize>(path: &Path, kind: &FileKind, store: &ParamStore, header: &H) -> Result<()> {
    let arrays = store
        .named_tensors()
        .iter()
        .map(|(name, t)| Ok(crate::io::Array::f64_named(name.clone(), t.dims().to_vec(), &to_f64(t)?)))
        .collect::<Result<Vec<_>>>()?;
    write_safetensors(path, kind, &arrays, header)
}

/// A file read by [`load`]: its header, and a store holding its weights (on the CPU).
pub(crate) struct Loaded<H> {
    pub header: H,
    pub weights: ParamStore,
    /// How many weights the file holds (all must be used: [`check_all_used`]).
    pub count: usize,
}

/// Reads a file written by [`save`] for `kind`, checking its format, version and checksum,
/// and that every weight is finite.
pub(crate) fn load<H: DeserializeOwned>(path: &Path, kind: &FileKind) -> Result<Loaded<H>> {
    let f = SafetensorsFile::open(path)?;
    let header = f.header(kind)?;
    let mut weights = HashMap::new();
    for name in f.names()? {
        let (shape, values) = f.f64(&name)?;
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::file(path, format!("weight `{name}` holds {v}: the network cannot be used")));
        }
        if let Some(v) = values.iter().find(|v| v.abs() > f32::MAX as f64) {
            return Err(Error::file(path, format!("weight `{name}` holds {v}, beyond the range of 32-bit floats")));
        }
        if values.len() != shape.iter().product::<usize>() {
            return Err(Error::file(path, format!("array `{name}` does not match its shape {shape:?}")));
        }
        weights.insert(name, (shape, values.iter().map(|&v| v as f32).collect()));
    }
    let count = weights.len();
    let weights =
        ParamStore::from_values(weights).map_err(|e| Error::file(path, format!("unreadable weights ({e})")))?;
    Ok(Loaded { header, weights, count })
}

/// Checks that the file was trained for `model` (its identity: parameters, source,
/// settings, observation shape and behaviour).
pub(crate) fn check_model<M: crate::model::Simulator>(path: &Path, saved: &ModelIdentity, model: &M) -> Result<()> {
    ModelIdentity::of(model).check(
        saved,
        || format!("the model file {}", path.display()),
        "load it with the model it was trained for, or train again for this model",
    )
}

/// Checks that the rebuilt network took every saved weight (`saved` of them).
pub(crate) fn check_all_used(path: &Path, store: &ParamStore, saved: usize) -> Result<()> {
    if store.vars().len() != saved {
        return Err(Error::file(path, "the file holds weights the model does not use"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::io::{Array, FileKind, SafetensorsFile, write_safetensors};
    use crate::prelude::*;

    #[simulator]
    fn tiny(rng: &mut impl Rng) -> [f64; 2] {
        let m = sample!(Normal(0.0, 1.0));
        [m + rng.random::<f64>(), m]
    }

    const NPE: FileKind = FileKind { format: "sbi-rs/npe", version: 2, what: "an NPE posterior" };
    const NLE: FileKind = FileKind { format: "sbi-rs/nle", version: 2, what: "an NLE posterior" };

    /// Rewrites a model file with an edited header or weights, and a valid checksum: what a
    /// file with consistent bytes but inconsistent content looks like.
    fn rewrite(
        path: &std::path::Path,
        read: &FileKind,
        write: &FileKind,
        edit: impl FnOnce(&mut serde_json::Value, &mut Vec<(String, Vec<usize>, Vec<f64>)>),
    ) {
        let f = SafetensorsFile::open(path).unwrap();
        let mut header: serde_json::Value = f.header(read).unwrap();
        let mut arrays: Vec<_> = f
            .names()
            .unwrap()
            .into_iter()
            .map(|n| {
                let (shape, values) = f.f64(&n).unwrap();
                (n, shape, values)
            })
            .collect();
        edit(&mut header, &mut arrays);
        let arrays: Vec<Array> =
            arrays.into_iter().map(|(n, shape, values)| Array::f64_named(n, shape, &values)).collect();
        write_safetensors(path, write, &arrays, &header).unwrap();
    }

    fn file_error<T>(r: Result<T, Error>) -> String {
        match r {
            Err(Error::File { reason, .. }) => reason,
            Err(e) => panic!("expected a file error, got {e}"),
            Ok(_) => panic!("expected a file error, got a posterior"),
        }
    }

    /// NaN weights, a header whose sizes disagree with the data, and an older format are
    /// refused at load with a reason, never a panic or a posterior that samples NaN.
    #[test]
    fn inconsistent_model_files_are_refused() {
        let sims = simulate(&Tiny, 300).seed(1).progress(false).run().unwrap();
        let training = TrainConfig::default().with_max_epochs(1).with_progress(false);
        let dir = tempfile::tempdir().unwrap();
        let npe = Npe::default().with_training(training.clone()).train(&Tiny, &sims).unwrap();
        let nle = Nle::default().with_training(training).train(&Tiny, &sims).unwrap();
        let (npe_path, nle_path) = (dir.path().join("npe.safetensors"), dir.path().join("nle.safetensors"));

        npe.save(&npe_path).unwrap();
        rewrite(&npe_path, &NPE, &NPE, |_, arrays| arrays[0].2[0] = f64::NAN);
        assert!(file_error(NpePosterior::load(&npe_path, &Tiny)).contains("NaN"));

        npe.save(&npe_path).unwrap();
        rewrite(&npe_path, &NPE, &NPE, |h, _| h["x_range"]["min"] = serde_json::json!([0.0]));
        assert!(file_error(NpePosterior::load(&npe_path, &Tiny)).contains("training range"));

        npe.save(&npe_path).unwrap();
        rewrite(&npe_path, &NPE, &NPE, |h, _| h["spec"]["input_std"]["std"] = serde_json::json!([1.0, 1.0, 1.0]));
        assert!(!file_error(NpePosterior::load(&npe_path, &Tiny)).is_empty());

        npe.save(&npe_path).unwrap();
        let old = FileKind { version: 1, ..NPE };
        rewrite(&npe_path, &NPE, &old, |_, _| {});
        assert!(file_error(NpePosterior::load(&npe_path, &Tiny)).contains("earlier version"));

        nle.save(&nle_path).unwrap();
        rewrite(&nle_path, &NLE, &NLE, |h, _| h["x_range"]["max"] = serde_json::json!([1.0, 2.0, 3.0]));
        assert!(file_error(NlePosterior::load(&nle_path, &Tiny)).contains("training range"));
    }
}
