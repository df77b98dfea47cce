//! A user's own candle module as embedding network, shared by the NPE and NRE tests: one
//! linear layer to 4 features with ReLU.

use sbi_runtime::model::Shape;
use sbi_runtime::nn::{Embedding, EmbeddingBuilder, Linear};

/// Builds [`MyNet`] for any observation shape.
pub struct MyEmbedding;

/// One linear layer with ReLU.
pub struct MyNet(Linear);

impl Embedding for MyNet {
    fn forward(&self, x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
        self.0.forward(x)?.relu()
    }
}

impl EmbeddingBuilder for MyEmbedding {
    fn name(&self) -> String {
        "my-linear-4".into()
    }
    fn build(&self, vb: candle_nn::VarBuilder, input: &Shape) -> candle_core::Result<(Box<dyn Embedding>, usize)> {
        Ok((Box::new(MyNet(Linear::new(vb.pp("linear"), input.numel(), 4)?)), 4))
    }
}
