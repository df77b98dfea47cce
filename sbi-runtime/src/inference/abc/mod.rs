//! Approximate Bayesian computation: keep the parameters whose simulations land close to
//! the observation. [`RejectionAbc`] keeps the closest share of a table of prior
//! simulations (amortised: one table serves every observation); [`SmcAbc`] refines a
//! weighted population of particles generation by generation under a shrinking tolerance
//! ε (Beaumont et al. 2009, with ε as a quantile of the last population's distances, Del
//! Moral et al. 2012). Both can move the accepted draws towards the observation by
//! regression ([`Adjustment`]) and return any number of draws through a kernel density of
//! them ([`Resample`]).
//!
//! Both are [`crate::inference::Posterior`]s, so the samplers' reports, plots and
//! diagnostics (SBC, coverage, TARP, predictive checks) take them as they take NPE.

/// The setters of the settings both methods share (fields of the same names).
macro_rules! shared_setters {
    () => {
        /// Sets the summary statistics.
        pub fn with_summary(mut self, s: Summary) -> Self {
            self.summary = s;
            self
        }

        /// Sets the distance.
        pub fn with_distance(mut self, d: Distance) -> Self {
            self.distance = d;
            self
        }

        /// Sets the regression adjustment of the accepted draws (`None`: none).
        pub fn with_adjustment(mut self, a: Option<Adjustment>) -> Self {
            self.adjustment = a;
            self
        }

        /// Sets how draws are made.
        pub fn with_resample(mut self, r: Resample) -> Self {
            self.resample = r;
            self
        }
    };
}
use shared_setters;

mod adjust;
mod distance;
mod kde;
mod rejection;
mod smc;

pub use adjust::Adjustment;
pub use distance::{Distance, DistanceFn, Scaling};
pub use kde::Bandwidth;
pub use rejection::{Acceptance, RejectionAbc, RejectionAbcPosterior};
pub use smc::{PerturbationKernel, SmcAbc, SmcAbcPosterior};

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Prior;
use crate::rng::SimRng;
use crate::samplers::Samples;
use distance::Fitted;
use kde::{Density, constrain_rows, systematic_picks, unconstrain_rows};

/// A user's summary statistics of one observation (its flat values).
pub type SummaryFn = Arc<dyn Fn(&[f64]) -> Vec<f64> + Send + Sync>;

/// What distances compare: the observation's values, or statistics of them.
#[derive(Clone, Default)]
pub enum Summary {
    /// The flat values themselves (the default).
    #[default]
    Identity,
    /// A user's function; it must return the same number of finite values for every
    /// simulation (a non-finite value counts as an invalid simulation).
    Custom(SummaryFn),
}

impl std::fmt::Debug for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Summary::Identity => "Identity",
            Summary::Custom(_) => "Custom(..)",
        })
    }
}

impl Summary {
    /// The statistics of one observation.
    fn of(&self, x: &[f64]) -> Vec<f64> {
        match self {
            Summary::Identity => x.to_vec(),
            Summary::Custom(f) => f(x),
        }
    }

    /// The statistics of each row of `x` (`cols` values each) in parallel, and the rows
    /// kept: those whose statistics are finite and `k` long (`k` from the first valid row
    /// when `None`). Returns (statistics, kept row indices, k).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when a row's statistics have another length than `k`.
    fn of_rows(&self, x: &[f64], cols: usize, k: Option<usize>) -> Result<(Vec<f64>, Vec<usize>, usize)> {
        use rayon::prelude::*;
        let all: Vec<Vec<f64>> = x.par_chunks_exact(cols).map(|r| self.of(r)).collect();
        let k = match k {
            Some(k) => k,
            None => all.iter().find(|s| s.iter().all(|v| v.is_finite())).map_or(0, Vec::len),
        };
        let mut out = Vec::with_capacity(all.len() * k);
        let mut kept = Vec::with_capacity(all.len());
        for (i, s) in all.iter().enumerate() {
            if s.len() != k {
                return Err(Error::shape("summary statistics of a simulation", k, s.len()));
            }
            if s.iter().all(|v| v.is_finite()) {
                out.extend_from_slice(s);
                kept.push(i);
            }
        }
        Ok((out, kept, k))
    }

    /// The statistics of the observation, checked against `k`.
    ///
    /// # Errors
    /// [`Error::Observation`] for statistics of another length or with non-finite values.
    fn of_observation(&self, x_o: &[f64], k: usize) -> Result<Vec<f64>> {
        let s = self.of(x_o);
        if s.len() != k {
            return Err(Error::Observation(format!(
                "its summary statistics have {} values, the simulations' have {k}",
                s.len()
            )));
        }
        if let Some(j) = s.iter().position(|v| !v.is_finite()) {
            return Err(Error::Observation(format!("its summary statistic {j} is {}", s[j])));
        }
        Ok(s)
    }
}

/// How the draws a run returns are made from its accepted (weighted) particles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Resample {
    /// Draws from a weighted Gaussian kernel density of the particles in the prior's
    /// unconstrained space: any number of distinct draws, always inside the prior's support
    /// (the default, with a cross-validated bandwidth).
    Kde(Bandwidth),
    /// The particles themselves, drawn with replacement in proportion to their weights.
    Particles,
}

impl Default for Resample {
    fn default() -> Self {
        Resample::Kde(Bandwidth::CrossValidated)
    }
}

/// Why an ABC run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AbcStop {
    /// Rejection ABC: the whole table was searched.
    Complete,
    /// SMC-ABC reached the requested final ε.
    Epsilon,
    /// SMC-ABC spent its simulation budget (without a final ε, its normal end).
    Budget,
    /// A generation's acceptance rate fell below the minimum.
    Acceptance,
    /// The generation limit was reached.
    Generations,
}

/// The result of an ABC run at one observation: the draws, the weighted particles behind
/// them, and what it took.
#[derive(Debug, Clone)]
pub struct AbcRun {
    /// The draws asked for.
    pub samples: Samples,
    /// The accepted particles (after any regression adjustment).
    pub particles: Samples,
    /// Their normalised weights.
    pub weights: Vec<f64>,
    /// The tolerance of each generation (rejection ABC: one, the largest accepted distance).
    pub epsilons: Vec<f64>,
    /// Each generation's acceptance rate: accepted over simulations run.
    pub acceptance: Vec<f64>,
    /// Simulations used in all (invalid ones included).
    pub simulations: usize,
    /// Simulations excluded as invalid (NaN, infinite or panicking, or whose summaries
    /// were not finite).
    pub invalid: usize,
    /// Why it stopped.
    pub stop: AbcStop,
    /// The final ε asked for, if any.
    pub target: Option<f64>,
}

impl AbcRun {
    /// The final population's effective sample size, `1 / Σ w²`.
    pub fn ess(&self) -> f64 {
        kde::ess(&self.weights)
    }

    /// Whether the requested final ε was reached (true without one).
    pub fn reached_target(&self) -> bool {
        match (self.target, self.epsilons.last()) {
            (Some(t), Some(e)) => *e <= t,
            (Some(_), None) => false,
            (None, _) => true,
        }
    }

    /// What should make a user wary of the draws.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.reached_target() {
            w.push(format!(
                "ABC stopped ({:?}) at ε = {:.4} above the requested {:.4} after {} simulations: the draws are from \
                 a wider approximation than asked; raise the budget or accept a larger ε",
                self.stop,
                self.epsilons.last().copied().unwrap_or(f64::NAN),
                self.target.unwrap_or(f64::NAN),
                self.simulations
            ));
        }
        let n = self.weights.len() as f64;
        if self.ess() < 0.1 * n {
            w.push(format!(
                "the particles' effective sample size is {:.0} of {n}: a few particles carry the draws",
                self.ess()
            ));
        }
        w
    }

    /// A one-line summary.
    pub fn describe(&self) -> String {
        let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
        format!(
            "ABC: {} generation(s), ε [{}], acceptance [{}], {} simulations ({} invalid), ESS {:.0} of {} particles, \
             stopped: {:?}",
            self.epsilons.len(),
            fmt(&self.epsilons),
            fmt(&self.acceptance),
            self.simulations,
            self.invalid,
            self.ess(),
            self.weights.len(),
            self.stop
        )
    }
}

/// Accepted particles before adjustment: parameters, the summaries' scaled differences
/// from the observation's, distances and weights (unnormalised).
pub(crate) struct Accepted {
    pub theta: Vec<f64>,
    pub ds: Vec<f64>,
    pub distances: Vec<f64>,
    pub weights: Vec<f64>,
}

/// Rows of simulations: parameters (`d` columns), summaries (`k` columns), distances to
/// the observation and weights.
pub(crate) struct Table<'a> {
    pub theta: &'a [f64],
    pub s: &'a [f64],
    pub distances: &'a [f64],
    pub weights: &'a [f64],
    pub d: usize,
    pub k: usize,
}

impl Accepted {
    /// Collects rows `rows` of `table`, with the summaries' differences from `s_o` scaled
    /// by `fitted`'s scales.
    fn gather(rows: &[usize], table: &Table<'_>, s_o: &[f64], fitted: &Fitted) -> Accepted {
        let (d, k) = (table.d, table.k);
        let mut a = Accepted { theta: Vec::new(), ds: Vec::new(), distances: Vec::new(), weights: Vec::new() };
        for &i in rows {
            a.theta.extend_from_slice(&table.theta[i * d..(i + 1) * d]);
            a.ds.extend((0..k).map(|j| (table.s[i * k + j] - s_o[j]) / fitted.scale[j]));
            a.distances.push(table.distances[i]);
            a.weights.push(table.weights[i]);
        }
        a
    }
}

/// The adjusted particles and the kernel density of them.
pub(crate) struct Finished {
    pub particles: Vec<f64>,
    pub weights: Vec<f64>,
    pub density: Density,
}

/// Adjusts `accepted` (when asked) in the prior's unconstrained space and fits the kernel
/// density; particles whose transform is not finite (on the support's boundary) are left
/// out.
///
/// # Errors
/// The adjustment's and the kernel density's errors ([`Error::Config`] for too few
/// accepted draws); [`Error::Config`] when no particle is left.
pub(crate) fn finish<P: Prior + ?Sized>(
    prior: &P,
    accepted: &Accepted,
    adjustment: Option<Adjustment>,
    bandwidth: Bandwidth,
    k: usize,
) -> Result<Finished> {
    let d = prior.dim();
    let z = unconstrain_rows(prior, &accepted.theta)?;
    let keep: Vec<usize> = (0..accepted.weights.len())
        .filter(|&i| z[i * d..(i + 1) * d].iter().all(|v| v.is_finite()) && accepted.weights[i] > 0.0)
        .collect();
    let pick = |v: &[f64], w: usize| keep.iter().flat_map(|&i| v[i * w..(i + 1) * w].to_vec()).collect::<Vec<f64>>();
    let (z, ds, dist, base) =
        (pick(&z, d), pick(&accepted.ds, k), pick(&accepted.distances, 1), pick(&accepted.weights, 1));
    if keep.is_empty() {
        return Err(Error::Config("no accepted draw lies inside the prior's support".into()));
    }
    let (z, mut weights) = match adjustment {
        Some(how) => {
            let w: Vec<f64> = adjust::epanechnikov(&dist).iter().zip(&base).map(|(a, b)| a * b).collect();
            (adjust::adjust(how, &z, &ds, &w, d, k)?, w)
        }
        None => (z, base),
    };
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    // Adjusted draws with zero weight (at the tolerance's edge) carry nothing: drop them.
    // Copies of one particle (SMC-ABC's resampling makes them) become one particle with
    // their summed weight: as separate centres they would make the kernel density's
    // cross-validation pick a vanishing bandwidth (each copy predicts the other exactly).
    let mut merged: std::collections::BTreeMap<Vec<u64>, (usize, f64)> = std::collections::BTreeMap::new();
    for i in (0..weights.len()).filter(|&i| weights[i] > 0.0) {
        let key: Vec<u64> = z[i * d..(i + 1) * d].iter().map(|v| v.to_bits()).collect();
        merged.entry(key).or_insert((i, 0.0)).1 += weights[i];
    }
    let mut live: Vec<(usize, f64)> = merged.into_values().collect();
    live.sort_by_key(|&(i, _)| i);
    let z: Vec<f64> = live.iter().flat_map(|&(i, _)| z[i * d..(i + 1) * d].to_vec()).collect();
    let weights: Vec<f64> = live.iter().map(|&(_, w)| w).collect();
    let (particles, _) = constrain_rows(prior, &z)?;
    let density = Density::fit(prior, z, &particles, weights.clone(), bandwidth)?;
    Ok(Finished { particles, weights, density })
}

impl Finished {
    /// `n` draws as `resample` says.
    ///
    /// # Errors
    /// The prior's transform errors.
    pub fn draws<P: Prior + ?Sized>(
        &self,
        prior: &P,
        resample: Resample,
        n: usize,
        rng: &mut SimRng,
    ) -> Result<Vec<f64>> {
        let d = prior.dim();
        Ok(match resample {
            Resample::Kde(_) => self.density.sample(prior, n, rng)?,
            Resample::Particles => systematic_picks(&self.weights, n, rng)
                .into_iter()
                .flat_map(|i| self.particles[i * d..(i + 1) * d].to_vec())
                .collect(),
        })
    }

    /// The kernel density's `log q(θ)` of each row of `theta` (`-inf` outside the prior's
    /// support).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for rows of the wrong length; the prior's errors.
    pub fn log_density<P: Prior + ?Sized>(&self, prior: &P, theta: &[f64]) -> Result<Vec<f64>> {
        let d = prior.dim();
        if theta.is_empty() || !theta.len().is_multiple_of(d) {
            return Err(Error::shape("parameter rows (m × DIM values)", d * (theta.len() / d).max(1), theta.len()));
        }
        self.density.log_density(prior, theta)
    }
}

/// The bandwidth `resample` uses (cross-validated when it returns particles: densities
/// still come from a kernel density).
fn bandwidth(resample: Resample) -> Bandwidth {
    match resample {
        Resample::Kde(b) => b,
        Resample::Particles => Bandwidth::CrossValidated,
    }
}
