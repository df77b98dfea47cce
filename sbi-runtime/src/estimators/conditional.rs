//! A trained conditional estimator on raw values: z-scoring, embedding network and density.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::estimators::density::ConditionalFlow;
use crate::estimators::{Columns, DensityEstimator, Standardizer};
use crate::rng::SimRng;

/// Everything needed to rebuild an estimator: saved as JSON next to its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EstimatorSpec {
    pub estimator: DensityEstimator,
    /// The embedding network, as the file records it.
    pub embedding: crate::nn::embedding::SavedEmbedding,
    pub features: usize,
    pub context_shape: crate::model::Shape,
    pub seed: u64,
    pub input_std: Standardizer,
    pub context_std: Standardizer,
}

/// A trained conditional estimator `q(inputs | context)`: z-scoring (in f64), embedding
/// network and flow. The networks see z-scored values only: raw rows become tensors through
/// [`ConditionalEstimator::input_tensor`] and [`ConditionalEstimator::context_tensor`], and
/// draws come back through [`ConditionalEstimator::inputs_from`].
pub struct ConditionalEstimator {
    pub(crate) store: crate::nn::ParamStore,
    flow: Box<dyn ConditionalFlow>,
    embedding: Box<dyn crate::nn::Embedding>,
    pub(crate) spec: EstimatorSpec,
    log_scale: f64,
}

impl std::fmt::Debug for ConditionalEstimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConditionalEstimator")
            .field("estimator", &self.spec.estimator)
            .field("embedding", &self.spec.embedding)
            .field("features", &self.spec.features)
            .field("context_shape", &self.spec.context_shape)
            .field("device", self.store.device())
            .finish_non_exhaustive()
    }
}

impl ConditionalEstimator {
    /// Builds the networks in `store` (fresh or loaded).
    pub(crate) fn build(
        store: crate::nn::ParamStore,
        spec: EstimatorSpec,
        embedding: &crate::nn::EmbeddingNet,
    ) -> Result<Self> {
        let context_shape = spec.context_shape.clone();
        spec.input_std.check(spec.features, "input")?;
        spec.context_std.check(context_shape.numel(), "context")?;
        let (embedding, flow) = {
            let vb = store.var_builder();
            let (embedding, width) = embedding.build(vb.pp("embedding"), &context_shape)?;
            let flow = spec.estimator.build(vb.pp("estimator"), spec.features, width, spec.seed)?;
            (embedding, flow)
        };
        let log_scale = spec.input_std.log_scale();
        Ok(ConditionalEstimator { store, flow, embedding, spec, log_scale })
    }

    /// Raw input rows (`B × features`) as the z-scored tensor the flow takes.
    ///
    /// # Errors
    /// As [`Standardizer::to_tensor`].
    pub fn input_tensor(&self, raw: &[f64], columns: Columns<'_>) -> Result<Tensor> {
        self.spec.input_std.to_tensor(raw, columns, self.store.device())
    }

    /// Raw context rows (`B × context values`) as the z-scored tensor the embedding takes.
    ///
    /// # Errors
    /// As [`Standardizer::to_tensor`].
    pub fn context_tensor(&self, raw: &[f64], columns: Columns<'_>) -> Result<Tensor> {
        self.spec.context_std.to_tensor(raw, columns, self.store.device())
    }

    /// Raw inputs (f64, row-major) from z-scored rows such as [`ConditionalEstimator::sample`]'s.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn inputs_from(&self, z: &Tensor) -> Result<Vec<f64>> {
        self.spec.input_std.from_tensor(z)
    }

    /// The device of the networks.
    pub fn device(&self) -> &candle_core::Device {
        self.store.device()
    }

    /// The z-scoring of the inputs.
    pub fn input_standardizer(&self) -> &Standardizer {
        &self.spec.input_std
    }

    /// The z-scoring of the context.
    pub fn context_standardizer(&self) -> &Standardizer {
        &self.spec.context_std
    }

    /// `log q(inputs | context)` in raw units (the z-scoring's Jacobian included), for
    /// z-scored rows: `[B, D]`, `[B, C]` → `[B]`.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        self.flow.log_prob(inputs, &self.embedding.forward(context)?)? - self.log_scale
    }

    /// One draw per z-scored context row: `[B, C]` → z-scored inputs `[B, D]` (raw values
    /// through [`ConditionalEstimator::inputs_from`]). Rows are drawn in chunks of 512, so
    /// that the intermediates of a draw stay small whatever the number of rows.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn sample(&self, context: &Tensor, rng: &mut SimRng) -> candle_core::Result<Tensor> {
        const CHUNK: usize = 512;
        let b = context.dim(0)?;
        let mut parts = Vec::with_capacity(b.div_ceil(CHUNK));
        let mut start = 0;
        while start < b {
            let len = CHUNK.min(b - start);
            parts.push(self.flow.sample(&self.embedding.forward(&context.narrow(0, start, len)?)?, rng)?.detach());
            start += len;
        }
        if parts.len() == 1 { Ok(parts.remove(0)) } else { Tensor::cat(&parts, 0) }
    }

    /// The embedding network's output for raw context rows (`B × context values`): the
    /// features the flow is conditioned on, `B × width` row-major, and the width.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for rows of the wrong width; a tensor error from the
    /// network (a bug or an inconsistent model file: please report it).
    pub fn embed(&self, raw: &[f64]) -> Result<(Vec<f64>, usize)> {
        let out = self.embedding.forward(&self.context_tensor(raw, Columns::Observation)?)?;
        let width = out.dims().last().copied().unwrap_or(0);
        Ok((crate::nn::to_f64(&out)?, width))
    }

    /// Number of input features.
    pub fn features(&self) -> usize {
        self.spec.features
    }

    /// Number of (flattened) context values.
    pub fn context_dim(&self) -> usize {
        self.spec.context_std.mean.len()
    }
}

impl crate::train::losses::LogDensity for ConditionalEstimator {
    fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        ConditionalEstimator::log_prob(self, inputs, context)
    }
}
