//! The traits `#[simulator]` implements: [`Parameters`], [`Prior`], [`Simulator`], [`Observation`].
//!
//! A prior is written once, as a sequence of sites (`let s = sample!(D);`). Every prior
//! operation — sampling, `log p(θ) = Σ_k log p_k(θ_k | θ_<k)`, supports, the map to
//! unconstrained space — walks the same sites with a different [`SiteVisitor`], so a
//! hierarchical prior is scored by the chain of its conditionals with no extra code.

pub mod distributions;
mod observation;
mod shape;
pub mod transforms;
pub(crate) mod visitors;

pub(crate) use observation::present_trials;
pub use observation::{Observation, TimeSeries, VarTrials};
pub use shape::Shape;

use rand::Rng;

use crate::error::{Error, Result};
use distributions::IntoDistribution;
use transforms::Support;

/// A typed parameter set, flattened to `DIM` numbers in site order
/// (vector sites expand to `w[0]`, `w[1]`, ...).
pub trait Parameters: Sized + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Number of flattened coordinates.
    const DIM: usize;

    /// The coordinates' names in flattened order.
    fn names() -> Vec<String>;

    /// Writes the coordinates into `out`, which must hold exactly `DIM` values.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for a slice of the wrong length.
    fn write_flat(&self, out: &mut [f64]) -> Result<()>;

    /// Reads a parameter set from exactly `DIM` values.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for a slice of the wrong length.
    fn from_flat(flat: &[f64]) -> Result<Self>;

    /// The coordinates as a new vector.
    fn to_vec(&self) -> Vec<f64> {
        let mut v = vec![0.0; Self::DIM];
        self.write_flat(&mut v).expect("a vector of DIM values always fits");
        v
    }

    /// Reads `n × DIM` row-major values into typed parameter sets.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for a slice of the wrong length.
    fn from_rows(flat: &[f64]) -> Result<Vec<Self>> {
        if Self::DIM == 0 || !flat.len().is_multiple_of(Self::DIM) {
            return Err(Error::shape("parameter rows", Self::DIM * (flat.len() / Self::DIM.max(1)).max(1), flat.len()));
        }
        flat.chunks_exact(Self::DIM).map(Self::from_flat).collect()
    }
}

/// Receives the prior's sites in order; each call returns the value the site takes.
///
/// `#[simulator]` writes [`Prior::visit_sites`]; the runtime's visitors sample, score,
/// transform or list supports. Implement it to add a prior operation.
pub trait SiteVisitor {
    /// A scalar site.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for a slice of the wrong length; [`crate::Error::Site`]
    /// when a site cannot be resolved (its distribution has the wrong number of coordinates,
    /// or, when drawing, its arguments are invalid at the earlier sites' values).
    fn scalar<D: IntoDistribution>(&mut self, site: &'static str, dist: D) -> Result<f64>;
    /// A vector site of `N` coordinates.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for a slice of the wrong length; [`crate::Error::Site`]
    /// when a site cannot be resolved (its distribution has the wrong number of coordinates,
    /// or, when drawing, its arguments are invalid at the earlier sites' values).
    fn vector<D: IntoDistribution, const N: usize>(&mut self, site: &'static str, dist: D) -> Result<[f64; N]>;
}

/// The prior of a model: its sites, and every operation derived from them.
///
/// Flat methods take and give `DIM` coordinates in site order; hierarchical sites are
/// conditioned on the earlier coordinates.
pub trait Prior: Send + Sync {
    /// The typed parameter set.
    type Params: Parameters;

    /// Visits every site in order (written by `#[simulator]`).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for a slice of the wrong length; [`crate::Error::Site`]
    /// when a site cannot be resolved (its distribution has the wrong number of coordinates,
    /// or, when drawing, its arguments are invalid at the earlier sites' values).
    fn visit_sites<V: SiteVisitor>(&self, visitor: &mut V) -> Result<()>;

    /// Number of flattened coordinates.
    fn dim(&self) -> usize {
        <Self::Params as Parameters>::DIM
    }

    /// The coordinates' names.
    fn names(&self) -> Vec<String> {
        <Self::Params as Parameters>::names()
    }

    /// Draws one parameter set.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for a slice of the wrong length; [`crate::Error::Site`]
    /// when a site cannot be resolved (its distribution has the wrong number of coordinates,
    /// or, when drawing, its arguments are invalid at the earlier sites' values).
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Self::Params> {
        let mut flat = vec![0.0; self.dim()];
        self.sample_flat(rng, &mut flat)?;
        <Self::Params as Parameters>::from_flat(&flat)
    }

    /// Draws one parameter set into `out` (`DIM` values).
    ///
    /// # Errors
    /// [`Error::Site`] when a site cannot be drawn at the values of the earlier sites (its
    /// arguments are invalid there, or its distribution drew a non-finite value or one of
    /// zero density); the simulation engine counts such draws as invalid, and samplers draw
    /// again ([`sample_rows`]).
    fn sample_flat<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) -> Result<()> {
        expect_len("prior sample", self.dim(), out.len())?;
        self.visit_sites(&mut visitors::Sample { rng, out, pos: 0 })
    }

    /// `log p(θ)`, `-inf` outside the support (or where a hierarchical site's arguments are invalid).
    fn log_prob(&self, params: &Self::Params) -> f64 {
        self.log_prob_flat(&params.to_vec()).unwrap_or(f64::NEG_INFINITY)
    }

    /// `log p(θ)` for `DIM` flat coordinates: `-inf` outside the support, and where a
    /// hierarchical site's arguments are invalid (`Normal(0, τ)` at `τ ≤ 0`: no draw of the
    /// prior lands there, as [`Prior::sample_flat`] refuses such points).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a slice of the wrong length or a site whose distribution
    /// has the wrong number of coordinates.
    fn log_prob_flat(&self, theta: &[f64]) -> Result<f64> {
        expect_len("prior log_prob", self.dim(), theta.len())?;
        let mut v = visitors::Score { theta, pos: 0, log_prob: 0.0 };
        self.visit_sites(&mut v)?;
        Ok(v.log_prob)
    }

    /// The support of each coordinate, given the earlier coordinates of `theta`
    /// (only hierarchical priors depend on them).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for a slice of the wrong length; [`crate::Error::Site`]
    /// when a site cannot be resolved (its distribution has the wrong number of coordinates,
    /// or, when drawing, its arguments are invalid at the earlier sites' values).
    fn support(&self, theta: &[f64]) -> Result<Vec<Support>> {
        expect_len("prior support", self.dim(), theta.len())?;
        let mut v = visitors::Supports { theta, pos: 0, supports: Vec::with_capacity(theta.len()) };
        self.visit_sites(&mut v)?;
        Ok(v.supports)
    }

    /// Maps unconstrained `z` to `theta`; returns `log |det dθ/dz|`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for a slice of the wrong length; [`crate::Error::Site`]
    /// when a site cannot be resolved (its distribution has the wrong number of coordinates,
    /// or, when drawing, its arguments are invalid at the earlier sites' values).
    fn constrain(&self, z: &[f64], theta: &mut [f64]) -> Result<f64> {
        expect_len("unconstrained point", self.dim(), z.len())?;
        expect_len("parameters", self.dim(), theta.len())?;
        let mut v = visitors::FromUnconstrained { z, theta, pos: 0, log_det: 0.0 };
        self.visit_sites(&mut v)?;
        Ok(v.log_det)
    }

    /// Maps `theta` to unconstrained `z`; returns `log |det dθ/dz|` at that `z`
    /// (the same quantity as [`Prior::constrain`]).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for a slice of the wrong length; [`crate::Error::Site`]
    /// when a site cannot be resolved (its distribution has the wrong number of coordinates,
    /// or, when drawing, its arguments are invalid at the earlier sites' values).
    fn unconstrain(&self, theta: &[f64], z: &mut [f64]) -> Result<f64> {
        expect_len("parameters", self.dim(), theta.len())?;
        expect_len("unconstrained point", self.dim(), z.len())?;
        let mut v = visitors::ToUnconstrained { theta, z, pos: 0, log_det: 0.0 };
        self.visit_sites(&mut v)?;
        Ok(v.log_det)
    }
}

/// Draws `out.len() / prior.dim()` parameter sets into `out`, drawing again where the prior
/// cannot be sampled (a hierarchical site's arguments are invalid at the earlier sites'
/// values): the draws then follow the prior restricted to where it is defined, as the
/// simulations the estimators were trained on did.
///
/// # Errors
/// [`Error::PriorDraw`] when more than `100 · rows + 1,000` attempts fail (the prior is
/// almost nowhere defined); other errors of [`Prior::sample_flat`] at once.
pub fn sample_rows<P: Prior + ?Sized, R: Rng + ?Sized>(prior: &P, rng: &mut R, out: &mut [f64]) -> Result<()> {
    let d = prior.dim();
    if d == 0 || !out.len().is_multiple_of(d) {
        return Err(Error::shape("prior draws (rows of DIM values)", d * (out.len() / d.max(1)), out.len()));
    }
    let rows = out.len() / d;
    let budget = rows.saturating_mul(100).saturating_add(1_000);
    let mut failed = 0usize;
    for row in out.chunks_exact_mut(d) {
        loop {
            match prior.sample_flat(rng, row) {
                Ok(()) => break,
                Err(Error::Site { source, .. })
                    if matches!(*source, Error::InvalidDistribution { .. } | Error::PriorDraw { .. }) =>
                {
                    failed += 1;
                    if failed > budget {
                        return Err(Error::PriorDraw {
                            reason: format!(
                                "{failed} draws of the prior failed while drawing {rows} parameter sets (last: {source}); \
                                 the prior is almost nowhere defined"
                            ),
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn expect_len(what: &str, expected: usize, got: usize) -> Result<()> {
    if expected == got { Ok(()) } else { Err(Error::shape(what, expected, got)) }
}

/// A model: a prior and a stochastic simulator `x ~ p(x | θ)`.
pub trait Simulator: Send + Sync {
    /// The typed parameter set.
    type Params: Parameters;
    /// The observation type.
    type Output: Observation;
    /// The prior type.
    type Prior: Prior<Params = Self::Params>;

    /// The prior.
    fn prior(&self) -> Self::Prior;

    /// A digest of the model's source code (its prior statements and simulator body), which
    /// `#[simulator]` writes; `None` for a hand-written implementation. Part of the model's
    /// [identity](crate::simulate::ModelIdentity).
    fn source_digest(&self) -> Option<&'static str> {
        None
    }

    /// The settings' values as text (`#[simulator]` writes the simulator struct's `Debug`
    /// form, e.g. `Sir { population: 1000, days: 60 }`); empty for a hand-written
    /// implementation. Part of the model's [identity](crate::simulate::ModelIdentity).
    fn settings(&self) -> String {
        String::new()
    }

    /// Runs the simulator once at `params`, drawing its noise from `rng`.
    fn simulate<R: Rng>(&self, params: &Self::Params, rng: &mut R) -> Self::Output;
}
