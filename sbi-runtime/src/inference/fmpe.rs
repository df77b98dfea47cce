//! Flow matching posterior estimation (FMPE, Wildberger et al. 2023): a conditional vector
//! field `v(θ_t, t, x)` trained by conditional flow matching; draws solve its ODE from the
//! base N(0, I) back to the posterior, and the density follows the instantaneous change of
//! variables along the same ODE ([`crate::estimators::vector_field`]).
//!
//! ```no_run
//! # use sbi_runtime::prelude::*;
//! # use sbi_runtime::inference::Fmpe;
//! # fn run<M: Simulator>(model: &M, sims: &Simulations, x_o: &[f64]) -> sbi_runtime::Result<()> {
//! let posterior = Fmpe::default().train(model, sims)?;
//! let draws = posterior.sample_flat(x_o, 10_000)?;
//! # Ok(()) }
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::estimators::vector_field::{VectorFieldEstimator, VectorFieldSpec};
use crate::estimators::{Standardizer, VectorFieldConfig};
use crate::inference::{FeatureRange, Method, Posterior, Rounds, SequentialRun, saved, sequential};
use crate::model::{Prior, Shape, Simulator};
use crate::nn::EmbeddingNet;
use crate::ode::OdeConfig;
use crate::rng::stream_rng;
use crate::samplers::{RejectionRun, SamplerRun, rejection_sample};
use crate::simulate::{ModelIdentity, Simulations};
use crate::train::{Pairs, TrainConfig, TrainingSummary, fit};

/// The ODE solver's settings for FMPE's draws and densities (Dormand–Prince 5(4)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowSolver {
    /// Relative tolerance of each step (10⁻⁵).
    pub rtol: f64,
    /// Absolute tolerance of each step, in z-scored θ (10⁻⁵).
    pub atol: f64,
    /// Steps (accepted and rejected) per solve before [`Error::OdeBudget`] (10,000).
    pub max_steps: usize,
}

impl Default for FlowSolver {
    fn default() -> Self {
        FlowSolver { rtol: 1e-5, atol: 1e-5, max_steps: 10_000 }
    }
}

impl FlowSolver {
    fn config(&self) -> OdeConfig {
        OdeConfig::default().with_tolerances(self.rtol, self.atol).with_max_steps(self.max_steps)
    }
}

/// Flow matching posterior estimation: the vector field network, the embedding of `x`, the
/// training and the ODE solver.
#[derive(Debug, Clone, Default)]
pub struct Fmpe {
    /// The vector field network (`sbi`'s MLP defaults).
    pub vector_field: VectorFieldConfig,
    /// The embedding network of `x` (none).
    pub embedding: EmbeddingNet,
    /// Training settings (`sbi`'s defaults).
    pub training: TrainConfig,
    /// The ODE solver for draws and densities.
    pub solver: FlowSolver,
}

impl Fmpe {
    /// Sets the vector field network.
    pub fn with_vector_field(mut self, c: VectorFieldConfig) -> Self {
        self.vector_field = c;
        self
    }
    /// Sets the embedding network.
    pub fn with_embedding(mut self, e: EmbeddingNet) -> Self {
        self.embedding = e;
        self
    }
    /// Sets the training settings.
    pub fn with_training(mut self, t: TrainConfig) -> Self {
        self.training = t;
        self
    }
    /// Sets the ODE solver's settings.
    pub fn with_solver(mut self, s: FlowSolver) -> Self {
        self.solver = s;
        self
    }

    fn train_with<M: Simulator>(
        &self,
        model: &M,
        sims: &Simulations,
        warm: Option<&VectorFieldEstimator>,
    ) -> Result<FmpePosterior<M::Prior>> {
        let (prior, identity) = crate::inference::checked_prior(model, sims, "FMPE")?;
        let (d, c) = (sims.theta_dim(), sims.x_dim());
        self.vector_field.validate()?;
        self.embedding.validate(&sims.x_shape)?;
        if sims.x.iter().any(|v| v.is_nan()) {
            return Err(Error::AbsentTrials { advice: "FMPE takes whole observations; use NPE with DeepSets".into() });
        }
        let warm = warm.map(|w| (&w.store, &w.spec));
        let (store, spec) = crate::inference::warm_or_new(warm, &self.training, || VectorFieldSpec {
            config: self.vector_field.clone(),
            embedding: self.embedding.saved(),
            features: d,
            context_shape: sims.x_shape.clone(),
            input_std: Standardizer::fit(&sims.theta, d),
            context_std: Standardizer::fit(&sims.x, c),
        })?;
        let estimator = VectorFieldEstimator::build(store, spec, &self.embedding)?;
        let names = prior.names();
        let device = estimator.store.device().clone();
        let data = Pairs {
            a: estimator.spec.input_std.to_tensor(
                &sims.theta,
                crate::estimators::Columns::Parameters(&names),
                &device,
            )?,
            b: estimator.spec.context_std.to_tensor(&sims.x, crate::estimators::Columns::Observation, &device)?,
        };
        let summary = fit(&estimator.store, &data, &self.training, &estimator.loss())?;
        Ok(FmpePosterior {
            prior,
            model: identity,
            estimator,
            x_range: FeatureRange::of_shape(&sims.x, &sims.x_shape),
            summary: Some(summary),
            seed: self.training.seed,
            solver: self.solver.clone(),
            max_proposals: None,
            range_check: true,
        })
    }
}

impl Method for Fmpe {
    type Posterior<P: Prior> = FmpePosterior<P>;

    /// Trains the vector field on `sims` (simulated from `model`'s prior).
    fn train<M: Simulator>(&self, model: &M, sims: &Simulations) -> Result<FmpePosterior<M::Prior>> {
        self.train_with(model, sims, None)
    }

    /// Truncated sequential rounds (TSNPE's proposals: the prior truncated to the last
    /// posterior's region of highest density, by rejection or MCMC), each round a new
    /// network or the last round's with [`Rounds::warm_start`].
    fn train_rounds<M: Simulator>(
        &self,
        model: &M,
        x_o: &[f64],
        rounds: &Rounds,
    ) -> Result<SequentialRun<FmpePosterior<M::Prior>>> {
        sequential::run_rounds(
            model,
            x_o,
            sequential::Observed::One,
            rounds,
            |sims, _, warm| self.train_with(model, sims, warm.map(|p: &FmpePosterior<M::Prior>| &p.estimator)),
            |posterior, n, seed| sequential::truncated_prior(posterior, x_o, n, seed, rounds.progress),
        )
    }
}

/// A trained FMPE posterior for one model.
#[derive(Debug)]
pub struct FmpePosterior<P: Prior> {
    prior: P,
    model: ModelIdentity,
    estimator: VectorFieldEstimator,
    x_range: FeatureRange,
    summary: Option<TrainingSummary>,
    seed: u64,
    solver: FlowSolver,
    max_proposals: Option<usize>,
    range_check: bool,
}

/// FMPE model files.
const FILE: saved::FileKind = saved::FileKind { format: "sbi-rs/fmpe", version: 1, what: "an FMPE posterior" };

#[derive(Serialize, Deserialize)]
struct SavedHeader {
    spec: VectorFieldSpec,
    model: ModelIdentity,
    x_range: FeatureRange,
    seed: u64,
    solver: FlowSolver,
}

impl<P: Prior> FmpePosterior<P> {
    /// Sets the ODE solver's settings for draws and densities.
    pub fn with_solver(mut self, s: FlowSolver) -> Self {
        self.solver = s;
        self
    }

    /// Bounds the proposals of rejection sampling (default `100·n + 100,000` for `n` draws).
    pub fn with_max_proposals(mut self, max: usize) -> Self {
        self.max_proposals = Some(max);
        self
    }

    fn x_shape(&self) -> &Shape {
        &self.estimator.spec.context_shape
    }

    fn check_observation(&self, x_o: &[f64]) -> Result<()> {
        let c = self.x_shape().numel();
        if x_o.len() != c {
            return Err(Error::Observation(format!(
                "expected {c} values (shape {}), got {}",
                self.x_shape(),
                x_o.len()
            )));
        }
        self.x_range.check(x_o, self.range_check)
    }

    /// Draws at each valid observation (`k × numel`), solved together: the flow's draws
    /// outside the prior's support are rejected and drawn again, within the budget.
    fn sample_many_seeded(&self, observations: &[f64], n: usize, seed: u64) -> Result<Vec<RejectionRun>> {
        let c = self.x_shape().numel();
        let d = self.prior.dim();
        let budget = self.max_proposals.unwrap_or(n.saturating_mul(100).saturating_add(100_000));
        let mut rng = stream_rng(seed, 0x464d_5045);
        let ode = self.solver.config();
        let propose = |requests: &[(usize, usize)]| -> Result<Vec<f64>> {
            let total = requests.iter().map(|r| r.1).sum::<usize>();
            let mut context = crate::alloc::with_capacity(total, c, "proposal contexts")?;
            for &(i, m) in requests {
                for _ in 0..m {
                    context.extend_from_slice(&observations[i * c..(i + 1) * c]);
                }
            }
            let draws = self.estimator.sample(&context, &mut rng, &ode)?;
            crate::inference::check_draws(&draws)?;
            Ok(draws)
        };
        let inside = |row: &[f64]| Ok(self.prior.log_prob_flat(row)?.is_finite());
        rejection_sample(observations.len() / c, n, d, budget, &self.prior.names(), propose, inside)
    }
}

impl<P: Prior> Posterior for FmpePosterior<P> {
    type Prior = P;

    fn model_identity(&self) -> Option<&ModelIdentity> {
        Some(&self.model)
    }

    fn prior(&self) -> &P {
        &self.prior
    }

    fn training_summary(&self) -> Option<&TrainingSummary> {
        self.summary.as_ref()
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn without_range_check(mut self) -> Self {
        self.range_check = false;
        self
    }

    /// Solves the flow's ODE from base draws, rejecting draws outside the prior's support.
    fn sample_run_with_seed(&self, x_o: &[f64], n: usize, seed: u64) -> Result<SamplerRun> {
        self.check_observation(x_o)?;
        Ok(SamplerRun::Rejection(self.sample_many_seeded(x_o, n, seed)?.remove(0)))
    }

    /// Draws at all valid observations together (one ODE solve per batch of proposals);
    /// each invalid observation its error.
    fn sample_many_with_seed(
        &self,
        observations: &[f64],
        size: usize,
        n: usize,
        seed: u64,
    ) -> Result<Vec<Result<SamplerRun>>> {
        crate::inference::posterior::check_many(observations, size)?;
        let rows: Vec<std::borrow::Cow<'_, [f64]>> = observations.chunks_exact(size).map(Into::into).collect();
        crate::inference::posterior::sample_valid(
            &rows,
            |x| self.check_observation(x),
            |valid| self.sample_many_seeded(valid, n, seed),
            SamplerRun::Rejection,
        )
    }

    /// `log q(θ | x_o)` by the instantaneous change of variables along the ODE (exact
    /// divergence), `-inf` outside the prior's support (no renormalisation to the support).
    fn log_density(&self, theta: &[f64], x_o: &[f64]) -> Result<Vec<f64>> {
        self.check_observation(x_o)?;
        let d = self.prior.dim();
        crate::potential::check_rows(theta, d)?;
        let m = theta.len() / d;
        let inside: Vec<bool> =
            theta.chunks_exact(d).map(|r| Ok(self.prior.log_prob_flat(r)?.is_finite())).collect::<Result<_>>()?;
        let rows: Vec<f64> = theta
            .chunks_exact(d)
            .zip(&inside)
            .flat_map(|(r, &ok)| if ok { r.to_vec() } else { vec![0.0; d] })
            .collect();
        let contexts: Vec<f64> = x_o.iter().copied().cycle().take(m * x_o.len()).collect();
        let lq = self.estimator.log_prob(&rows, &contexts, &self.solver.config())?;
        Ok(lq.into_iter().zip(inside).map(|(l, ok)| if ok { l } else { f64::NEG_INFINITY }).collect())
    }

    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let header = SavedHeader {
            spec: self.estimator.spec.clone(),
            model: self.model.clone(),
            x_range: self.x_range.clone(),
            seed: self.seed,
            solver: self.solver.clone(),
        };
        saved::save(path.as_ref(), &FILE, &self.estimator.store, &header)
    }

    fn load_with<M: Simulator<Prior = P>>(path: impl AsRef<Path>, model: &M, custom: &EmbeddingNet) -> Result<Self> {
        let path = path.as_ref();
        let saved::Loaded { header, weights, count: n_saved } = saved::load::<SavedHeader>(path, &FILE)?;
        saved::check_model(path, &header.model, model)?;
        let prior = model.prior();
        let embedding = header.spec.embedding.resolve(path, custom)?;
        header.x_range.validate(header.spec.context_shape.numel()).map_err(|e| Error::file(path, e))?;
        if header.spec.features != prior.dim() {
            return Err(Error::file(path, "the estimator's sizes do not agree with the model's"));
        }
        let estimator = VectorFieldEstimator::build(weights, header.spec, &embedding)
            .map_err(|e| Error::file(path, format!("the weights do not fit the model ({e})")))?;
        saved::check_all_used(path, &estimator.store, n_saved)?;
        Ok(FmpePosterior {
            prior,
            model: header.model,
            estimator,
            x_range: header.x_range,
            summary: None,
            seed: header.seed,
            solver: header.solver,
            max_proposals: None,
            range_check: true,
        })
    }
}
