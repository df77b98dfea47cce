//! The shape of one observation: a vector, an image, a time series or a set of trials.

/// The shape of one observation, before flattening (row-major).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Shape {
    /// A vector of `n` features (a scalar is `Vector(1)`).
    Vector(usize),
    /// An image: `channels × height × width`.
    Image {
        /// Number of channels.
        channels: usize,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
    /// A time series: `len` steps of `channels` values.
    Sequence {
        /// Number of time steps.
        len: usize,
        /// Values per step.
        channels: usize,
    },
    /// A set of `trials` exchangeable iid trials of `features` values each.
    Trials {
        /// Number of trials.
        trials: usize,
        /// Values per trial.
        features: usize,
    },
}

impl Shape {
    /// Number of values after flattening.
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Vector(n) => n,
            Shape::Image { channels, height, width } => channels * height * width,
            Shape::Sequence { len, channels } => len * channels,
            Shape::Trials { trials, features } => trials * features,
        }
    }

    /// The dimensions as a list (e.g. `[3, 32, 32]` for an image).
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Vector(n) => vec![n],
            Shape::Image { channels, height, width } => vec![channels, height, width],
            Shape::Sequence { len, channels } => vec![len, channels],
            Shape::Trials { trials, features } => vec![trials, features],
        }
    }
}

/// A compact text form for messages: `vector[2]`, `image[1x32x32]`, `sequence[60x1]`,
/// `trials[50x2]`. (Files record shapes as typed values, not this text.)
impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims = self.dims().iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
        let kind = match self {
            Shape::Vector(_) => "vector",
            Shape::Image { .. } => "image",
            Shape::Sequence { .. } => "sequence",
            Shape::Trials { .. } => "trials",
        };
        write!(f, "{kind}[{dims}]")
    }
}
