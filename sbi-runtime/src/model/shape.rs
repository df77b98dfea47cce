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

    /// A compact text form (`vector[2]`, `image[1x32x32]`, ...), used in saved files.
    pub fn encode(&self) -> String {
        let dims = self.dims().iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
        let kind = match self {
            Shape::Vector(_) => "vector",
            Shape::Image { .. } => "image",
            Shape::Sequence { .. } => "sequence",
            Shape::Trials { .. } => "trials",
        };
        format!("{kind}[{dims}]")
    }

    /// Inverse of [`Shape::encode`].
    pub fn decode(s: &str) -> Option<Shape> {
        let (kind, rest) = s.split_once('[')?;
        let dims: Vec<usize> = rest.strip_suffix(']')?.split('x').map(|d| d.parse().ok()).collect::<Option<_>>()?;
        Some(match (kind, dims.as_slice()) {
            ("vector", [n]) => Shape::Vector(*n),
            ("image", [c, h, w]) => Shape::Image { channels: *c, height: *h, width: *w },
            ("sequence", [l, c]) => Shape::Sequence { len: *l, channels: *c },
            ("trials", [t, f]) => Shape::Trials { trials: *t, features: *f },
            _ => return None,
        })
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}
