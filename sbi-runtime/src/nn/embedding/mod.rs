//! Embedding networks for structured observations: they map an observation (flattened
//! row-major, z-scored per value) to a feature vector that the density estimator or
//! classifier takes as its context, and train end to end with it.
//!
//! - [`Cnn1d`]: a 1-D CNN over a time series (`Shape::Sequence`, `len × channels`);
//! - [`Cnn2d`]: a 2-D CNN over images (`Shape::Image`, `channels × height × width`);
//! - [`DeepSets`]: a permutation-invariant network over iid trials (`Shape::Trials`):
//!   `ρ(mean_k φ(x_k), k/K)` over the k trials present of at most K (absent ones are NaN
//!   rows, masked out; the count tells ρ how much evidence the mean carries);
//! - [`Gru`]: a gated recurrent network over a time series (candle-nn's GRU), its last state.
//!
//! Each is chosen through [`crate::nn::EmbeddingNet`], which checks at configuration time
//! that the observations have the shape the network needs.

mod cnn;
mod deepsets;
mod gru;

pub use cnn::{Cnn1d, Cnn2d};
pub use deepsets::DeepSets;
pub use gru::Gru;

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::{Error, Result};
use crate::model::Shape as ObsShape;
use crate::nn::{Activation, Mlp};

/// A network that turns a (standardised, flattened) observation `[batch, numel]` into
/// features `[batch, k]`, trained end to end with the density estimator or classifier:
/// any `candle_nn::Module` that is `Send + Sync` (its `forward` is the embedding).
pub trait Embedding: candle_nn::Module + Send + Sync {}

/// Every candle module that can be shared between threads is an embedding: candle-nn's
/// layers, the toolkit's ([`crate::nn::Linear`], [`crate::nn::Mlp`], ...), or a user's own
/// type implementing `candle_nn::Module`.
impl<T: candle_nn::Module + Send + Sync> Embedding for T {}

/// Builds a user's own embedding network (any candle module) inside the model's parameter
/// store, so that it is trained, saved and loaded with the estimator.
pub trait EmbeddingBuilder: Send + Sync {
    /// A name stored in saved models; loading checks it.
    fn name(&self) -> String;
    /// Creates the network for observations of `input` shape; returns it and its output width.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    fn build(&self, vb: VarBuilder, input: &crate::model::Shape) -> candle_core::Result<(Box<dyn Embedding>, usize)>;
}

/// The embedding network applied to observations before the estimator.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum EmbeddingNet {
    /// No embedding: the estimator sees the flattened observation (the default).
    #[default]
    Identity,
    /// An MLP with ReLU hidden layers of the given widths and `output` features.
    Mlp {
        /// Hidden layer widths.
        hidden: Vec<usize>,
        /// Output width.
        output: usize,
    },
    /// A 1-D CNN over a time series ([`Shape::Sequence`](crate::model::Shape)): a
    /// convolution of width `kernel` per entry of `channels`, each with ReLU and pooling by
    /// 2, then a linear layer to `output` features.
    Cnn1d {
        /// Output channels of each convolution.
        channels: Vec<usize>,
        /// Convolution width (odd).
        kernel: usize,
        /// Output width.
        output: usize,
    },
    /// A 2-D CNN over images ([`Shape::Image`](crate::model::Shape)): a `kernel × kernel`
    /// convolution per entry of `channels`, each with ReLU and 2 × 2 max-pooling, then a
    /// linear layer to `output` features.
    Cnn2d {
        /// Output channels of each convolution.
        channels: Vec<usize>,
        /// Convolution size (odd).
        kernel: usize,
        /// Output width.
        output: usize,
    },
    /// DeepSets over iid trials ([`Shape::Trials`](crate::model::Shape)): an MLP φ per
    /// trial (widths `hidden`), the mean over trials, an MLP ρ to `output` features.
    /// Invariant to the order of the trials.
    DeepSets {
        /// φ's layer widths.
        hidden: Vec<usize>,
        /// Output width.
        output: usize,
    },
    /// A GRU over a time series ([`Shape::Sequence`](crate::model::Shape)); its last
    /// state, through a linear layer, gives `output` features.
    Gru {
        /// Hidden units.
        hidden: usize,
        /// Output width.
        output: usize,
    },
    /// A user's own network; saved models record its name.
    #[serde(skip)]
    Custom(std::sync::Arc<dyn EmbeddingBuilder>),
}

impl std::fmt::Debug for EmbeddingNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmbeddingNet::Identity => f.write_str("Identity"),
            EmbeddingNet::Mlp { hidden, output } => write!(f, "Mlp {{ hidden: {hidden:?}, output: {output} }}"),
            EmbeddingNet::Cnn1d { channels, kernel, output } => {
                write!(f, "Cnn1d {{ channels: {channels:?}, kernel: {kernel}, output: {output} }}")
            }
            EmbeddingNet::Cnn2d { channels, kernel, output } => {
                write!(f, "Cnn2d {{ channels: {channels:?}, kernel: {kernel}, output: {output} }}")
            }
            EmbeddingNet::DeepSets { hidden, output } => {
                write!(f, "DeepSets {{ hidden: {hidden:?}, output: {output} }}")
            }
            EmbeddingNet::Gru { hidden, output } => write!(f, "Gru {{ hidden: {hidden}, output: {output} }}"),
            EmbeddingNet::Custom(b) => write!(f, "Custom({})", b.name()),
        }
    }
}

struct IdentityEmbedding;

impl candle_nn::Module for IdentityEmbedding {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }
}

impl candle_nn::Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Mlp::forward(self, x)
    }
}

impl EmbeddingNet {
    /// Builds the network for observations of `input` shape; returns it and its output width.
    ///
    /// # Errors
    /// A tensor error when the inputs do not have the shapes above (a bug or an inconsistent
    /// model file: please report it).
    pub fn build(
        &self,
        vb: VarBuilder,
        input: &crate::model::Shape,
    ) -> candle_core::Result<(Box<dyn Embedding>, usize)> {
        let n = input.numel();
        match self {
            EmbeddingNet::Identity => Ok((Box::new(IdentityEmbedding), n)),
            EmbeddingNet::Mlp { hidden, output } => {
                let sizes: Vec<usize> = std::iter::once(n).chain(hidden.iter().copied()).chain([*output]).collect();
                Ok((Box::new(Mlp::new(vb, &sizes, Activation::Relu)?), *output))
            }
            EmbeddingNet::Cnn1d { channels, kernel, output } => {
                let ObsShape::Sequence { len, channels: c } = *input else { return Err(self.mismatch(input)) };
                Ok((Box::new(crate::nn::embedding::Cnn1d::new(vb, len, c, channels, *kernel, *output)?), *output))
            }
            EmbeddingNet::Cnn2d { channels, kernel, output } => {
                let ObsShape::Image { channels: c, height, width } = *input else { return Err(self.mismatch(input)) };
                Ok((
                    Box::new(crate::nn::embedding::Cnn2d::new(vb, (c, height, width), channels, *kernel, *output)?),
                    *output,
                ))
            }
            EmbeddingNet::DeepSets { hidden, output } => {
                let ObsShape::Trials { trials, features } = *input else { return Err(self.mismatch(input)) };
                Ok((Box::new(crate::nn::embedding::DeepSets::new(vb, trials, features, hidden, *output)?), *output))
            }
            EmbeddingNet::Gru { hidden, output } => {
                let ObsShape::Sequence { len, channels } = *input else { return Err(self.mismatch(input)) };
                Ok((Box::new(crate::nn::embedding::Gru::new(vb, len, channels, *hidden, *output)?), *output))
            }
            EmbeddingNet::Custom(b) => b.build(vb, input),
        }
    }

    fn mismatch(&self, input: &ObsShape) -> candle_core::Error {
        candle_core::Error::Msg(self.validate(input).err().map_or_else(String::new, |e| e.to_string()))
    }

    /// Checks, before anything is built or trained, that this network fits observations of
    /// `shape`: the CNNs and the GRU need series or images, DeepSets trials; the CNNs need
    /// an odd kernel, at least one layer, and an input that survives their poolings.
    ///
    /// # Errors
    /// [`Error::Config`] naming the network and the observations' shape.
    pub fn validate(&self, shape: &ObsShape) -> Result<()> {
        let fail = |why: String| Err(Error::Config(format!("{self:?} does not fit data of shape {shape}: {why}")));
        let layers_ok = |channels: &[usize], kernel: usize, output: usize| -> std::result::Result<(), String> {
            if channels.is_empty() || channels.contains(&0) || output == 0 {
                return Err("it needs at least one layer, and every layer and the output need a width".into());
            }
            if kernel.is_multiple_of(2) {
                return Err(format!("the kernel must be odd (for 'same' padding), got {kernel}"));
            }
            Ok(())
        };
        match (self, shape) {
            (EmbeddingNet::Identity | EmbeddingNet::Custom(_), _) => Ok(()),
            (EmbeddingNet::Mlp { hidden, output }, _) => {
                if hidden.contains(&0) || *output == 0 {
                    fail("every layer needs a width".into())
                } else {
                    Ok(())
                }
            }
            (EmbeddingNet::Cnn1d { channels, kernel, output }, ObsShape::Sequence { len, .. }) => {
                layers_ok(channels, *kernel, *output).or_else(fail)?;
                if len >> channels.len() == 0 {
                    return fail(format!("{} poolings by 2 leave nothing of {len} steps", channels.len()));
                }
                Ok(())
            }
            (EmbeddingNet::Cnn2d { channels, kernel, output }, ObsShape::Image { height, width, .. }) => {
                layers_ok(channels, *kernel, *output).or_else(fail)?;
                if height >> channels.len() == 0 || width >> channels.len() == 0 {
                    return fail(format!(
                        "{} poolings by 2 leave nothing of {height} × {width} pixels",
                        channels.len()
                    ));
                }
                Ok(())
            }
            (EmbeddingNet::DeepSets { hidden, output }, ObsShape::Trials { .. }) => {
                if hidden.is_empty() || hidden.contains(&0) || *output == 0 {
                    fail("φ needs at least one layer, and every layer and the output need a width".into())
                } else {
                    Ok(())
                }
            }
            (EmbeddingNet::Gru { hidden, output }, ObsShape::Sequence { .. }) => {
                if *hidden == 0 || *output == 0 {
                    fail("the GRU and the output need a width".into())
                } else {
                    Ok(())
                }
            }
            (EmbeddingNet::Cnn1d { .. } | EmbeddingNet::Gru { .. }, _) => {
                fail("it takes a time series (len × channels: a `TimeSeries` observation)".into())
            }
            (EmbeddingNet::Cnn2d { .. }, _) => fail("it takes images (channels × height × width)".into()),
            (EmbeddingNet::DeepSets { .. }, _) => {
                fail("it takes sets of trials (a `Vec<[f64; F]>` observation)".into())
            }
        }
    }

    /// What a model file records of this network.
    pub(crate) fn saved(&self) -> SavedEmbedding {
        match self {
            EmbeddingNet::Custom(b) => SavedEmbedding::Custom(b.name()),
            other => SavedEmbedding::Builtin(other.clone()),
        }
    }
}

/// An embedding as a model file records it: a built-in network with its settings, or a
/// user's by name (its code cannot be saved: loading asks for the same builder).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SavedEmbedding {
    /// A built-in network.
    Builtin(EmbeddingNet),
    /// A user's network, by its builder's name.
    Custom(String),
}

impl SavedEmbedding {
    /// The network to rebuild: the built-in one, or `custom` when it is the user's builder
    /// the file names.
    ///
    /// # Errors
    /// [`Error::File`] when the file needs a user's builder and `custom` is not it.
    pub(crate) fn resolve(&self, path: &std::path::Path, custom: &EmbeddingNet) -> Result<EmbeddingNet> {
        match self {
            SavedEmbedding::Builtin(net) => Ok(net.clone()),
            SavedEmbedding::Custom(name) => match custom {
                EmbeddingNet::Custom(b) if b.name() == *name => Ok(custom.clone()),
                _ => Err(Error::file(path, format!("it needs the embedding `{name}`: pass its builder to load_with"))),
            },
        }
    }
}

#[cfg(test)]
mod tests;
