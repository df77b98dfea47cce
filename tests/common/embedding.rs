//! A user's own embedding network, shared by the NPE, NLE and NRE tests: a plain candle-nn
//! `Linear` layer to 4 features (any candle module that is `Send + Sync` is an embedding).

use sbi_runtime::model::Shape;
use sbi_runtime::nn::{Embedding, EmbeddingBuilder};

/// Builds a candle-nn linear layer for any observation shape.
pub struct MyEmbedding;

impl EmbeddingBuilder for MyEmbedding {
    fn name(&self) -> String {
        "my-linear-4".into()
    }
    fn build(&self, vb: candle_nn::VarBuilder, input: &Shape) -> candle_core::Result<(Box<dyn Embedding>, usize)> {
        Ok((Box::new(candle_nn::linear(input.numel(), 4, vb.pp("linear"))?), 4))
    }
}
