//! Building blocks for the networks: a seeded parameter store behind candle's `VarBuilder`,
//! linear and masked linear layers, activations and an MLP.
//!
//! Parameters are created in a fixed order from a seeded generator (candle's own
//! initialisers draw from an unseeded one, and `VarMap` iterates in hash order), so the
//! same seed gives the same network and the same training run.

pub mod embedding;
pub(crate) mod kernels;
mod layers;
mod store;

pub use embedding::{Embedding, EmbeddingBuilder, EmbeddingNet};
pub use kernels::{Activation, tanh};
pub use layers::{Linear, MaskedLinear, Mlp, ResidualNet};
pub(crate) use layers::{dense, torch_bound};
pub use store::{DTYPE, DeviceChoice, ParamStore};

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// Tunes glibc's allocator for many short-lived tensors, when the user asks for it.
///
/// glibc gives freed memory back to the system and maps blocks over 128 KiB afresh, so the
/// many short-lived tensors of a training step keep faulting in new pages. Raising the trim
/// and mmap thresholds to 1 GiB keeps freed memory for reuse: on two_moons training, page
/// faults fell from 80–180 thousand to 2 thousand and CPU time by about 5% (`perf stat`).
/// The library never calls it itself (it changes the whole process); the examples do. A
/// no-op on other platforms and C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is thread-safe in glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Runs `f` with every layer on plain candle ops instead of the hand-written CPU kernels:
/// the computation other devices (CUDA, Metal) run, here on the CPU. Training started in
/// `f` keeps to it on its worker threads. For checking that the two paths agree, and for
/// ruling out a kernel when a result looks wrong; several times slower.
pub fn with_candle_ops<R>(f: impl FnOnce() -> R) -> R {
    kernels::generic(f)
}

/// A row-major `f64` matrix as an f32 tensor `[rows, cols]` on `device`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when `values` is not `rows × cols`; a tensor error.
pub fn matrix(values: &[f64], rows: usize, cols: usize, device: &Device) -> Result<Tensor> {
    if values.len() != rows * cols {
        return Err(Error::shape("matrix", rows * cols, values.len()));
    }
    Ok(Tensor::from_vec(values.iter().map(|&v| v as f32).collect::<Vec<f32>>(), (rows, cols), device)?)
}

/// A tensor's values as `f64`, row-major (read as f32 from any device, widened on the host:
/// Metal has no f64).
///
/// # Errors
/// A tensor error (reading a tensor from its device).
pub fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?.into_iter().map(f64::from).collect())
}
