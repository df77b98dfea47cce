//! What a simulator returns: the [`Observation`] trait, its implementations for vectors,
//! images and trials, and the varying-trials and time-series types.

use crate::model::Shape;

/// What a simulator returns: it knows its shape and flattens itself row-major.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the observation of a simulator",
    label = "this return type is not an observation",
    note = "observations are `f64`, `[f64; N]`, `Vec<f64>`, images `[[f64; W]; H]` or `[[[f64; W]; H]; C]`, \
            sets of trials `Vec<[f64; F]>` or `VarTrials<F, MAX>`, time series `TimeSeries<C>`; or implement `sbi_runtime::Observation`"
)]
pub trait Observation: Send + 'static {
    /// The shape of this observation.
    fn shape(&self) -> Shape;
    /// Appends the values, row-major, to `out`.
    fn write_flat(&self, out: &mut Vec<f64>);
}

impl Observation for f64 {
    fn shape(&self) -> Shape {
        Shape::Vector(1)
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        out.push(*self);
    }
}

impl<const N: usize> Observation for [f64; N] {
    fn shape(&self) -> Shape {
        Shape::Vector(N)
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        out.extend_from_slice(self);
    }
}

impl Observation for Vec<f64> {
    fn shape(&self) -> Shape {
        Shape::Vector(self.len())
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        out.extend_from_slice(self);
    }
}

impl<const W: usize, const H: usize> Observation for [[f64; W]; H] {
    fn shape(&self) -> Shape {
        Shape::Image { channels: 1, height: H, width: W }
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        self.iter().for_each(|row| out.extend_from_slice(row));
    }
}

impl<const W: usize, const H: usize, const C: usize> Observation for [[[f64; W]; H]; C] {
    fn shape(&self) -> Shape {
        Shape::Image { channels: C, height: H, width: W }
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        self.iter().flatten().for_each(|row| out.extend_from_slice(row));
    }
}

impl<const F: usize> Observation for Vec<[f64; F]> {
    fn shape(&self) -> Shape {
        Shape::Trials { trials: self.len(), features: F }
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        self.iter().for_each(|t| out.extend_from_slice(t));
    }
}

/// Between 1 and `MAX` iid trials of `F` values each, their number varying from one
/// simulation to the next (an observation of shape `Trials { trials: MAX, features: F }`).
/// Absent trials are written as rows of NaN, which the [`DeepSets`](crate::nn::EmbeddingNet)
/// embedding masks out; more than `MAX` trials is a shape error at simulation time.
#[derive(Debug, Clone, PartialEq)]
pub struct VarTrials<const F: usize, const MAX: usize>(pub Vec<[f64; F]>);

impl<const F: usize, const MAX: usize> Observation for VarTrials<F, MAX> {
    fn shape(&self) -> Shape {
        Shape::Trials { trials: MAX, features: F }
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        self.0.iter().for_each(|t| out.extend_from_slice(t));
        let absent = MAX.saturating_sub(self.0.len());
        out.extend(std::iter::repeat_n(f64::NAN, absent * F));
    }
}

/// For observations of trials: each trial's values, with `None` for an absent trial (all
/// NaN). Other shapes, or a trial only partly NaN, give `Err(position)` of a NaN value.
pub(crate) fn present_trials<'a>(shape: &Shape, x: &'a [f64]) -> std::result::Result<Vec<Option<&'a [f64]>>, usize> {
    let Shape::Trials { features, .. } = *shape else {
        return match x.iter().position(|v| v.is_nan()) {
            Some(j) => Err(j),
            None => Ok(vec![Some(x)]),
        };
    };
    x.chunks(features.max(1))
        .enumerate()
        .map(|(t, trial)| {
            if trial.iter().all(|v| v.is_nan()) {
                Ok(None)
            } else if let Some(j) = trial.iter().position(|v| v.is_nan()) {
                Err(t * features + j)
            } else {
                Ok(Some(trial))
            }
        })
        .collect()
}

/// A time series of `C` channels per step (an observation of shape `Sequence`).
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSeries<const C: usize>(pub Vec<[f64; C]>);

impl<const C: usize> Observation for TimeSeries<C> {
    fn shape(&self) -> Shape {
        Shape::Sequence { len: self.0.len(), channels: C }
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        self.0.iter().for_each(|t| out.extend_from_slice(t));
    }
}
