//! The negative log likelihood of a conditional density: `−mean log q(a | b)` (NPE:
//! `q(θ | x)`; NLE: `q(x | θ)`).

use candle_core::Tensor;

use super::{LogDensity, Loss};
use crate::rng::SimRng;

/// `−mean log q(a | b)`.
#[derive(Debug)]
pub struct NegativeLogLikelihood<'a, Q: LogDensity>(pub &'a Q);

impl<Q: LogDensity> Loss for NegativeLogLikelihood<'_, Q> {
    fn loss(&self, a: &Tensor, b: &Tensor, _rng: &mut SimRng) -> candle_core::Result<Tensor> {
        self.0.log_prob(a, b)?.mean_all()?.neg()
    }
}
