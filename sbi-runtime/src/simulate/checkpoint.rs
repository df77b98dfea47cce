//! The state of a run and its file: the first `completed` simulations, saved atomically
//! with the run's identity (seed, size, source of θ, model) so that only the same run
//! resumes it, and the lock that keeps a second process off the same path.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, InvalidKind, Result};
use crate::io::{Array, ArrayFile, FileKind, NpzFile, SafetensorsFile, write_npz, write_safetensors};
use crate::model::{Observation, Parameters, Shape};
use crate::simulate::{InvalidPolicy, InvalidSimulation, ModelIdentity, Outcome, Simulations};

/// Simulations and checkpoints. Version 2 added the model's identity, a typed header and
/// the checksum; version 1 files are refused (they cannot say which model made them).
pub(super) const FILE: FileKind = FileKind { format: "sbi-rs/simulations", version: 2, what: "a simulations file" };

/// The header of a simulations file or checkpoint.
#[derive(Serialize, Deserialize)]
pub(super) struct Header {
    pub(super) param_names: Vec<String>,
    /// Absent until a valid simulation has given it.
    pub(super) x_shape: Option<Shape>,
    pub(super) seed: u64,
    pub(super) total: usize,
    pub(super) completed: usize,
    /// `prior`, `saved`, or the digest of a proposal's θ.
    pub(super) source: String,
    pub(super) invalid_messages: Vec<Option<String>>,
    pub(super) model: ModelIdentity,
}

/// Takes the lock `path.lock` of a checkpoint: another process holding it is
/// [`Error::CheckpointLocked`]; a folder that does not exist or cannot be written is an I/O
/// error, found before simulating. The lock is released when the file is dropped (or the
/// process ends, however it ends); the empty lock file stays behind.
pub(super) fn lock_checkpoint(path: &Path) -> Result<std::fs::File> {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| Error::io(&lock, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::CheckpointLocked { path: path.to_path_buf() }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&lock, e)),
    }
}

/// Identifies a run, so that a checkpoint is only resumed by the same run.
pub(super) struct RunInfo {
    pub(super) names: Vec<String>,
    pub(super) seed: u64,
    pub(super) total: usize,
    pub(super) source: String,
    pub(super) model: ModelIdentity,
}

impl RunInfo {
    pub(super) fn standalone(s: &Simulations) -> RunInfo {
        RunInfo {
            names: s.param_names.clone(),
            seed: s.seed,
            total: s.len() + s.invalid.len(),
            source: "saved".into(),
            model: s.model.clone(),
        }
    }

    pub(super) fn check_matches(&self, saved: &RunInfo, path: &Path) -> Result<()> {
        self.model.check(
            &saved.model,
            || format!("the checkpoint {}", path.display()),
            "use another checkpoint path, or delete the file to simulate afresh",
        )?;
        let mismatch = |what: &str, a: String, b: String| {
            Err(Error::file(
                path,
                format!(
                    "this checkpoint is from another run: its {what} is {a}, this run's {b}; use another path or delete it"
                ),
            ))
        };
        if saved.names != self.names {
            return mismatch("parameters", format!("{:?}", saved.names), format!("{:?}", self.names));
        }
        if saved.seed != self.seed {
            return mismatch("seed", saved.seed.to_string(), self.seed.to_string());
        }
        if saved.total != self.total {
            return mismatch("size", saved.total.to_string(), self.total.to_string());
        }
        if saved.source != self.source {
            return mismatch("source of θ", saved.source.clone(), self.source.clone());
        }
        Ok(())
    }
}

/// The state of a run: the first `completed` simulations, valid and invalid.
#[derive(Default)]
pub(super) struct Partial {
    pub(super) completed: usize,
    pub(super) theta: Vec<f64>,
    pub(super) x: Vec<f64>,
    pub(super) index: Vec<u64>,
    pub(super) x_shape: Option<Shape>,
    pub(super) invalid: Vec<InvalidSimulation>,
    pub(super) scratch: Vec<f64>,
}

impl Partial {
    pub(super) fn from_simulations(s: &Simulations) -> Partial {
        Partial {
            completed: s.len() + s.invalid.len(),
            theta: s.theta.clone(),
            x: s.x.clone(),
            index: s.index.clone(),
            x_shape: Some(s.x_shape.clone()),
            invalid: s.invalid.clone(),
            scratch: Vec::new(),
        }
    }

    pub(super) fn push<P: Parameters, O: Observation>(
        &mut self,
        index: u64,
        outcome: Outcome<P, O>,
        dim: usize,
        policy: InvalidPolicy,
    ) -> Result<()> {
        let invalid = match outcome {
            Outcome::Done(theta, x) => {
                self.scratch.clear();
                x.write_flat(&mut self.scratch);
                let shape = x.shape();
                match &self.x_shape {
                    Some(s) if *s != shape => {
                        return Err(Error::ObservationShape { index, expected: s.to_string(), got: shape.to_string() });
                    }
                    _ => {}
                }
                if shape.numel() != self.scratch.len() {
                    return Err(Error::shape(
                        format!("observation of simulation {index} (shape {shape})"),
                        shape.numel(),
                        self.scratch.len(),
                    ));
                }
                // NaN marks a failed simulation, except whole absent trials (`VarTrials`)
                // when at least one trial is present.
                let nan_ok = match crate::model::present_trials(&shape, &self.scratch) {
                    Ok(trials) => trials.iter().any(Option::is_some),
                    Err(_) => false,
                };
                let kind = if !nan_ok {
                    Some(InvalidKind::Nan)
                } else if self.scratch.iter().any(|v| v.is_infinite()) {
                    Some(InvalidKind::Infinite)
                } else {
                    None
                };
                match kind {
                    None => {
                        self.x_shape.get_or_insert(shape);
                        let start = self.theta.len();
                        self.theta.resize(start + dim, 0.0);
                        theta.write_flat(&mut self.theta[start..])?;
                        self.x.extend_from_slice(&self.scratch);
                        self.index.push(index);
                        return Ok(());
                    }
                    Some(kind) => InvalidSimulation { index, kind, theta: theta.to_vec(), message: None },
                }
            }
            Outcome::Panicked(theta, message) => {
                InvalidSimulation { index, kind: InvalidKind::Panicked, theta: theta.to_vec(), message }
            }
            Outcome::PriorFailed(message) => InvalidSimulation {
                index,
                kind: InvalidKind::Prior,
                theta: vec![f64::NAN; dim],
                message: Some(message),
            },
        };
        if policy == InvalidPolicy::Error {
            let InvalidSimulation { index, kind, theta, message } = invalid;
            return Err(Error::InvalidSimulation { index, kind, theta, message });
        }
        self.invalid.push(invalid);
        Ok(())
    }

    pub(super) fn finish(self, info: RunInfo, total: usize) -> Result<Simulations> {
        let Some(x_shape) = self.x_shape else {
            let s = Simulations {
                theta: vec![],
                x: vec![],
                index: vec![],
                param_names: info.names,
                x_shape: Shape::Vector(0),
                seed: info.seed,
                invalid: self.invalid,
                model: info.model,
            };
            let c = s.invalid_counts();
            return Err(Error::NoValidSimulations {
                total,
                nan: c.nan,
                infinite: c.infinite,
                panicked: c.panicked,
                prior: c.prior,
            });
        };
        Ok(Simulations {
            theta: self.theta,
            x: self.x,
            index: self.index,
            param_names: info.names,
            x_shape,
            seed: info.seed,
            invalid: self.invalid,
            model: info.model,
        })
    }

    /// The arrays and header of the file (safetensors or `.npz`).
    fn arrays(&self, info: &RunInfo) -> (Vec<Array>, Header) {
        let d = info.names.len();
        let dx = self.x_shape.as_ref().map_or(0, Shape::numel);
        let invalid_theta: Vec<f64> = self.invalid.iter().flat_map(|s| s.theta.iter().copied()).collect();
        let invalid_index: Vec<u64> = self.invalid.iter().map(|s| s.index).collect();
        let invalid_kind: Vec<u8> = self.invalid.iter().map(|s| s.kind.code()).collect();
        let arrays = vec![
            Array::f64("theta", vec![self.index.len(), d], &self.theta),
            Array::f64("x", vec![self.index.len(), dx], &self.x),
            Array::u64("index", &self.index),
            Array::f64("invalid_theta", vec![self.invalid.len(), d], &invalid_theta),
            Array::u64("invalid_index", &invalid_index),
            Array::u8("invalid_kind", &invalid_kind),
        ];
        let header = Header {
            param_names: info.names.clone(),
            x_shape: self.x_shape.clone(),
            seed: info.seed,
            total: info.total,
            completed: self.completed,
            source: info.source.clone(),
            invalid_messages: self.invalid.iter().map(|s| s.message.clone()).collect(),
            model: info.model.clone(),
        };
        (arrays, header)
    }

    pub(super) fn save(&self, path: &Path, info: &RunInfo) -> Result<()> {
        let (arrays, header) = self.arrays(info);
        write_safetensors(path, &FILE, &arrays, &header)
    }

    pub(super) fn save_npz(&self, path: &Path, info: &RunInfo) -> Result<()> {
        let (arrays, header) = self.arrays(info);
        write_npz(path, &FILE, &arrays, &header)
    }

    pub(super) fn load(path: &Path) -> Result<(Partial, RunInfo)> {
        let f = SafetensorsFile::open(path)?;
        Self::read(&f, f.header(&FILE)?)
    }

    pub(super) fn load_npz(path: &Path) -> Result<(Partial, RunInfo)> {
        let f = NpzFile::open(path)?;
        Self::read(&f, f.header(&FILE)?)
    }

    /// The state in `f`, checked against its `header`.
    fn read(f: &dyn ArrayFile, header: Header) -> Result<(Partial, RunInfo)> {
        let bad = |reason: String| Error::file(f.path(), reason);
        let Header { param_names, x_shape, seed, total, completed, source, invalid_messages: messages, model } = header;
        let info = RunInfo { names: param_names, seed, total, source, model };
        let d = info.names.len();
        let dx = x_shape.as_ref().map_or(0, Shape::numel);
        let (ts, theta) = f.f64("theta")?;
        let (xs, x) = f.f64("x")?;
        let index = f.u64("index")?;
        let (its, invalid_theta) = f.f64("invalid_theta")?;
        let invalid_index = f.u64("invalid_index")?;
        let invalid_kind = f.u8("invalid_kind")?;
        let n = index.len();
        let m = invalid_index.len();
        if ts != [n, d] || xs != [n, dx] || its != [m, d] || invalid_kind.len() != m || messages.len() != m {
            return Err(bad("array shapes do not agree with each other".into()));
        }
        if n + m != completed || completed > info.total {
            return Err(bad(format!("{n} valid + {m} invalid rows, but {completed} completed of {}", info.total)));
        }
        if index.iter().chain(&invalid_index).any(|&i| i >= info.total as u64) {
            return Err(bad(format!("a row's index lies beyond the run's {} simulations", info.total)));
        }
        let invalid = (0..m)
            .map(|j| {
                let kind = InvalidKind::from_code(invalid_kind[j])
                    .ok_or_else(|| bad(format!("unknown invalid kind {}", invalid_kind[j])))?;
                let message = messages[j].clone();
                Ok(InvalidSimulation {
                    index: invalid_index[j],
                    kind,
                    theta: invalid_theta[j * d..(j + 1) * d].to_vec(),
                    message,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((Partial { completed, theta, x, index, x_shape, invalid, scratch: Vec::new() }, info))
    }
}
