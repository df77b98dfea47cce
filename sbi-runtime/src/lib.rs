//! Simulation-based inference in Rust.
//!
//! Write a model as a function with `#[simulator]`; get a typed parameter struct, a prior
//! (sample, log density, support, transform to unconstrained space) and a simulator; run
//! it many times in parallel and reproducibly with [`simulate()`](simulate::simulate).
//!
//! ```
//! use sbi_runtime::prelude::*;
//!
//! /// x = θ + noise, with a standard normal prior on θ.
//! #[simulator]
//! fn shift(rng: &mut impl Rng) -> [f64; 1] {
//!     let theta = sample!(Normal(0.0, 1.0));
//!     [theta + 0.1 * rng.sample::<f64, _>(StandardNormal)]
//! }
//!
//! let sims = simulate(&Shift, 1_000).seed(1).progress(false).run()?;
//! assert_eq!(sims.len(), 1_000);
//! assert_eq!(sims.param_names, ["theta"]);
//! # Ok::<(), sbi_runtime::Error>(())
//! ```

#![warn(missing_docs, missing_debug_implementations)]

// Lets the macro's absolute paths (`::sbi_runtime::...`) resolve inside this crate too.
extern crate self as sbi_runtime;

mod alloc;
pub mod benchmark;
pub mod diagnostics;
pub mod error;
pub mod estimators;
pub mod inference;
pub mod io;
pub mod model;
pub use model::{distributions, transforms};
pub mod nn;
pub mod ode;
pub mod plot;
pub mod potential;
pub mod progress;
pub mod report;
pub mod rng;
pub mod samplers;
pub mod simulate;
pub mod train;

pub use distributions::{IntoDistribution, PriorDistribution};
pub use error::{Error, InvalidKind, ModelPart, Result};
pub use model::{Observation, Parameters, Prior, Shape, Simulator, SiteVisitor, TimeSeries, VarTrials};
pub use progress::set_progress;
pub use sbi_macros::{sample, simulator};
pub use simulate::{InvalidPolicy, Simulations, simulate, simulate_from, simulate_from_flat};

/// Everything a model file needs: `use sbi_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::estimators::mdn::MdnConfig;
    pub use crate::estimators::nsf::NsfConfig;
    pub use crate::estimators::{DensityEstimator, MafConfig};
    pub use crate::inference::abc::{
        Acceptance, Adjustment, Distance, PerturbationKernel, RejectionAbc, RejectionAbcPosterior, Resample, Scaling,
        SmcAbc, SmcAbcPosterior, Summary,
    };
    pub use crate::inference::{
        Fmpe, FmpePosterior, Method, Nle, NlePosterior, Npe, NpePosterior, Npse, NpsePosterior, Nre, NrePosterior,
        NreVariant, Posterior, Rounds, Samples, SequentialNpe, SequentialRun, ThetaSpace,
    };
    pub use crate::model::distributions::{
        Beta, Exponential, Gamma, HalfNormal, LogNormal, MultivariateNormal, Normal, PriorDistribution, Uniform,
    };
    pub use crate::model::transforms::Support;
    pub use crate::model::{Observation, Parameters, Prior, Shape, Simulator, TimeSeries, VarTrials};
    pub use crate::nn::{DeviceChoice, EmbeddingNet};
    pub use crate::samplers::{ChainInit, ImportanceConfig, McmcConfig, McmcMethod, Sampler};
    pub use crate::simulate::{InvalidPolicy, Simulations, simulate, simulate_from, simulate_from_flat};
    pub use crate::train::TrainConfig;
    pub use crate::{Error, ModelPart, sample, set_progress, simulator};
    pub use rand::{Rng, RngExt};
    pub use rand_distr::StandardNormal;
}

/// Items the macro's generated code refers to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::error::{Error, Result};
    pub use crate::model::distributions;
    pub use crate::model::distributions::IntoDistribution;
    pub use crate::model::{Observation, Parameters, Prior, Simulator, SiteVisitor};
    pub use rand::Rng;

    /// Draws a scalar site in the user's original function (which cannot return an error).
    pub fn draw_scalar<D: IntoDistribution, R: Rng + ?Sized>(site: &'static str, dist: D, rng: &mut R) -> f64 {
        draw_vector::<D, R, 1>(site, dist, rng)[0]
    }

    /// Draws a vector site in the user's original function; panics on invalid arguments.
    pub fn draw_vector<D: IntoDistribution, R: Rng + ?Sized, const N: usize>(
        site: &'static str,
        dist: D,
        rng: &mut R,
    ) -> [f64; N] {
        use crate::model::distributions::PriorDistribution as _;
        let (d, joint) = crate::model::visitors::resolve(site, dist, N).unwrap_or_else(|e| panic!("{e}"));
        let mut v = [0.0; N];
        crate::model::visitors::for_each_draw(joint, &mut v, |v| d.sample_into(rng, v));
        v
    }

    /// Checks a flat slice's length (generated `Parameters` impls).
    pub fn expect_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
        if expected == got { Ok(()) } else { Err(Error::ShapeMismatch { what: what.into(), expected, got }) }
    }

    /// Names `site[0]`, `site[1]`, ... of a vector site.
    pub fn vector_names(site: &str, n: usize, out: &mut Vec<String>) {
        out.extend((0..n).map(|i| format!("{site}[{i}]")));
    }

    /// Stands in for a misplaced scalar `sample!` after `#[simulator]` reported it.
    pub fn misplaced_scalar() -> f64 {
        unreachable!("a misplaced `sample!` was reported at compile time")
    }

    /// Stands in for a misplaced vector `sample!` after `#[simulator]` reported it.
    pub fn misplaced_vector<const N: usize>() -> [f64; N] {
        unreachable!("a misplaced `sample!` was reported at compile time")
    }
}
