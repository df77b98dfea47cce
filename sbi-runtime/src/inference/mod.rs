//! Inference methods. Each is a configuration plus a loss; all share the training loop.
//!
//! - [`Npe`]: neural posterior estimation, a conditional density `q(θ | x)` trained by
//!   maximum likelihood on `(θ, x) ~ p(θ) p(x | θ)`; sampling is direct.

pub mod npe;
mod samples;

pub use npe::{Npe, NpePosterior};
pub use samples::Samples;
