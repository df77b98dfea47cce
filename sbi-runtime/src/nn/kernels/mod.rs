//! Fused CPU kernels for small networks: a dense layer `y = act(x (W∘M)ᵀ + b)`, GELU and
//! layer normalisation, each one candle op with a hand-written backward pass, and an
//! in-place Adam update with global gradient-norm clipping.
//!
//! Why by hand: candle builds one tensor (and one allocation) per elementary operation. A
//! layer written with candle's ops (mask, transpose, matmul, bias, activation) costs about
//! ten ops forward and as many backward, and candle-nn's Adam about fifteen per parameter
//! tensor per step; for the 50-unit networks of `sbi` that bookkeeping, not arithmetic, was
//! most of a training step. Here each layer is one op in each direction, calling the same
//! `gemm` crate candle uses, and Adam is one pass over each parameter's memory.
//!
//! Matrix products split work over output tiles only (never over the summed dimension), so
//! results do not depend on the number of threads.
//!
//! Every layer that uses a kernel has the same computation in plain candle ops, which runs
//! on any other device (CUDA, Metal) and which [`generic`] selects on the CPU: a test checks
//! that the two agree.

pub(crate) mod activation;
mod adam;
mod affine;
pub(crate) mod conv;
mod dense;
pub(crate) mod norm;
mod simd;

pub use activation::{Activation, tanh};
pub(crate) use adam::Adam;
pub(crate) use affine::AffineStep;
pub(crate) use dense::Dense;
pub(crate) use norm::{gelu, layer_norm};

use std::cell::Cell;

use candle_core::{CpuStorage, DType, Layout, Storage, Tensor};

thread_local! {
    /// Set on this thread by [`generic`]: layers use their plain candle ops on the CPU too.
    static GENERIC: Cell<bool> = const { Cell::new(false) };
}

/// Whether a layer should use its hand-written kernel for `t`: an f32 tensor on the CPU,
/// unless [`generic`] is in effect on this thread.
pub(crate) fn fused_for(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && !GENERIC.with(Cell::get)
}

/// Whether [`generic`] is in effect on this thread (to carry it onto worker threads with
/// [`with_mode`]).
pub(crate) fn generic_mode() -> bool {
    GENERIC.with(Cell::get)
}

/// Runs `f` with the kernels selected as `generic` says (see [`generic_mode`]).
pub(crate) fn with_mode<R>(generic: bool, f: impl FnOnce() -> R) -> R {
    let before = GENERIC.with(|g| g.replace(generic));
    let out = f();
    GENERIC.with(|g| g.set(before));
    out
}

/// Runs `f` with every layer on its plain candle ops, as on a GPU: the CPU check of the
/// path other devices take (see [`crate::nn::with_candle_ops`]).
pub(crate) fn generic<R>(f: impl FnOnce() -> R) -> R {
    with_mode(true, f)
}

/// A matrix view: element `(i, j)` at `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View { data, rows, cols, rs: cols, cs: 1 }
    }

    fn t(self) -> Self {
        View { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    fn fits(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst [m, n] (row-major) = (accumulate ? dst : 0) + a [m, k] · b [k, n]`.
fn matmul_into(dst: &mut [f32], a: View, b: View, accumulate: bool) -> candle_core::Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || dst.len() != m * n || !a.fits() || !b.fits() {
        candle_core::bail!("fused matmul: [{m}, {k}] · [{}, {n}] into {} values", b.rows, dst.len());
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return Ok(());
    }
    // Threads only pay off on large products; gemm splits over output tiles either way.
    // rayon's count, not candle's `get_num_threads`, which reads the environment (and, with
    // RAYON_NUM_THREADS unset, the machine's CPU list) on every call.
    let threads = rayon::current_num_threads();
    let parallelism =
        if threads > 1 && m * n * k >= 1 << 18 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the views were checked to lie inside their slices (`fits`) and `dst` holds
    // exactly m·n values with row stride n; the three do not alias (dst is `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// The f32 values of a contiguous CPU tensor (copied only when it is not contiguous).
fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> candle_core::Result<R>) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
        candle_core::bail!("fused op: expected an f32 CPU tensor")
    };
    let (a, b) =
        layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("fused op: not contiguous".into()))?;
    f(&v[a..b])
}

/// The contiguous f32 values of a custom op's input (`what` names it in errors).
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("fused op: {what} must be f32") };
    let (a, b) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{what} not contiguous")))?;
    Ok(&v[a..b])
}

#[cfg(test)]
mod tests;
