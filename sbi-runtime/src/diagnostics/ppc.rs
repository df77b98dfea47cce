//! Posterior predictive checks: simulate at posterior draws for `x_o` and ask, feature by
//! feature, whether `x_o` looks like one of those simulations.

use crate::error::{Error, Result};
use crate::inference::Posterior;
use crate::model::Simulator;
use crate::simulate::simulate_from_flat;

/// Simulations at posterior draws compared with the observation, per feature (each value
/// of the flattened observation).
#[derive(Debug, Clone, PartialEq)]
pub struct PredictiveCheck {
    /// The observation.
    pub observed: Vec<f64>,
    /// The valid predictive simulations (`rows × features`, row-major).
    pub predictive: Vec<f64>,
    /// Posterior draws whose simulation was invalid (NaN, panics) and left out.
    pub invalid: usize,
    /// Per feature, the share of predictive values at or below the observed one: near 0 or
    /// 1 means `x_o` lies in the predictive distribution's tail.
    pub quantiles: Vec<f64>,
    /// Per feature, the two-sided predictive p-value `2·min(q, 1 − q)`.
    pub pvalues: Vec<f64>,
    /// Per feature, the central 95% interval of the predictive values.
    pub intervals: Vec<(f64, f64)>,
}

impl PredictiveCheck {
    /// Draws `n` parameter sets from `posterior` at `x_o` (seeded by `seed`), simulates
    /// `model` once at each (on streams seeded by `seed`) and compares the simulations with
    /// `x_o`. Shows the simulation's progress bar unless [`crate::set_progress`]`(false)`.
    ///
    /// # Errors
    /// The posterior's sampling errors (e.g. an observation outside the training range);
    /// [`Error::Observation`] for an observation that is not one simulation's size;
    /// [`Error::Config`] for `n = 0` or when every predictive simulation is invalid;
    /// [`Error::ModelMismatch`] when `model` is not the one the posterior was trained for.
    pub fn run<M: Simulator, P: Posterior<Prior = M::Prior>>(
        model: &M,
        posterior: &P,
        x_o: &[f64],
        n: usize,
        seed: u64,
    ) -> Result<PredictiveCheck> {
        if n == 0 {
            return Err(Error::Config("a predictive check needs at least one posterior draw".into()));
        }
        if let Some(id) = posterior.model_identity() {
            crate::simulate::ModelIdentity::of(model).check(
                id,
                || "the predictive check's model".into(),
                "check the posterior with the model it was trained for",
            )?;
        }
        let draws = posterior.sample_with_seed(x_o, n, seed)?;
        let sims = simulate_from_flat(model, &draws.values).seed(seed).run()?;
        let f = sims.x_dim();
        if f != x_o.len() {
            return Err(Error::Observation(format!(
                "the observation has {} values, a simulation of the model {f}",
                x_o.len()
            )));
        }
        if sims.is_empty() {
            return Err(Error::Config(format!("all {n} predictive simulations were invalid")));
        }
        Ok(Self::from_simulations(x_o, sims.x, sims.invalid.len()))
    }

    /// The check from given predictive simulations (`rows × x_o.len()`, row-major).
    pub fn from_simulations(x_o: &[f64], predictive: Vec<f64>, invalid: usize) -> PredictiveCheck {
        let f = x_o.len().max(1);
        let rows = predictive.len() / f;
        let mut quantiles = Vec::with_capacity(f);
        let mut pvalues = Vec::with_capacity(f);
        let mut intervals = Vec::with_capacity(f);
        for (j, &obs) in x_o.iter().enumerate() {
            let mut column: Vec<f64> = predictive.iter().skip(j).step_by(f).copied().collect();
            column.sort_by(f64::total_cmp);
            let q = column.partition_point(|&v| v <= obs) as f64 / rows.max(1) as f64;
            quantiles.push(q);
            pvalues.push((2.0 * q.min(1.0 - q)).min(1.0));
            let at = |p: f64| {
                column.get(((rows.saturating_sub(1)) as f64 * p).round() as usize).copied().unwrap_or(f64::NAN)
            };
            intervals.push((at(0.025), at(0.975)));
        }
        PredictiveCheck { observed: x_o.to_vec(), predictive, invalid, quantiles, pvalues, intervals }
    }

    /// The features whose observed value falls outside the central 95% predictive interval.
    pub fn outside(&self) -> Vec<usize> {
        self.observed
            .iter()
            .zip(&self.intervals)
            .enumerate()
            .filter(|(_, (x, (lo, hi)))| *x < lo || *x > hi)
            .map(|(j, _)| j)
            .collect()
    }

    /// A one-line summary: how many features lie outside their 95% interval (about 5% is
    /// expected), and the smallest p-value.
    pub fn describe(&self) -> String {
        let outside = self.outside();
        let (j, p) =
            self.pvalues.iter().copied().enumerate().fold((0, 1.0), |m, (j, p)| if p < m.1 { (j, p) } else { m });
        format!(
            "posterior predictive: {} simulations ({} invalid); {} of {} features outside their central 95% interval; smallest p-value {p:.3} (feature {j})",
            self.predictive.len() / self.observed.len().max(1),
            self.invalid,
            outside.len(),
            self.observed.len(),
        )
    }
}
