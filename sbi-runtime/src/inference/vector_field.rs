//! The posterior of a conditional vector field, shared by flow matching (FMPE) and score
//! estimation (NPSE): draws by the ODE or the reverse SDE with rejection outside the prior's
//! support, densities by the change of variables, the model file, and the training and
//! truncated sequential rounds both methods run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::estimators::vector_field::{VectorFieldEstimator, VectorFieldSpec};
use crate::estimators::{FlowSolver, Process, ScoreSampling, Standardizer, VectorFieldConfig};
use crate::inference::{FeatureRange, Posterior, Rounds, SequentialRun, saved, sequential};
use crate::model::{Prior, Shape, Simulator};
use crate::nn::EmbeddingNet;
use crate::rng::stream_rng;
use crate::samplers::{RejectionRun, SamplerRun, rejection_sample};
use crate::simulate::{ModelIdentity, Simulations};
use crate::train::{Pairs, TrainConfig, TrainingSummary, fit};

/// The decay of the parameters' moving average in FMPE's and NPSE's default training
/// (about 200 steps, 4–5 epochs of 10,000 simulations): the averaged network is validated
/// and kept ([`TrainConfig::ema_decay`]).
pub const DEFAULT_EMA_DECAY: f64 = 0.995;

/// Epochs without a better validation loss (of the average) before the default training
/// anneals: the average's loss is smooth, so half `sbi`'s 20 suffices.
pub const DEFAULT_STOP_AFTER: usize = 10;

/// Epochs of the final annealing of the learning rate to zero in the default training
/// ([`TrainConfig::lr_anneal_epochs`]).
pub const DEFAULT_ANNEAL_EPOCHS: usize = 20;

/// `sbi`'s training settings with FMPE's and NPSE's schedule: the parameters averaged
/// ([`DEFAULT_EMA_DECAY`]), a plateau after [`DEFAULT_STOP_AFTER`] epochs, then
/// [`DEFAULT_ANNEAL_EPOCHS`] of annealing. Against `sbi`'s plain early stopping, which stops
/// short of convergence (two_moons C2ST 0.63–0.77), and against three learning-rate halvings
/// on plateaus (slightly less accurate, and 1.8–2.5× the epochs for FMPE, 1.2× for NPSE):
/// README, "Vector-field posteriors".
pub(crate) fn default_training() -> TrainConfig {
    TrainConfig::default()
        .with_ema_decay(Some(DEFAULT_EMA_DECAY))
        .with_stop_after_epochs(DEFAULT_STOP_AFTER)
        .with_lr_anneal_epochs(Some(DEFAULT_ANNEAL_EPOCHS))
}

/// What a vector field method trains: the network, its path, the embedding of `x`, the
/// training, and how its posterior draws.
pub(crate) struct FieldTraining<'a> {
    pub method: &'static str,
    pub vector_field: &'a VectorFieldConfig,
    pub process: Process,
    pub embedding: &'a EmbeddingNet,
    pub training: &'a TrainConfig,
    pub solver: &'a FlowSolver,
    pub sampling: ScoreSampling,
}

impl FieldTraining<'_> {
    /// Trains on `sims` (simulated from `model`'s prior, or a truncated one), from a warm
    /// start's weights when given.
    pub fn train<M: Simulator>(
        &self,
        model: &M,
        sims: &Simulations,
        warm: Option<&VectorFieldEstimator>,
    ) -> Result<VectorFieldPosterior<M::Prior>> {
        let (prior, identity) = crate::inference::checked_prior(model, sims, self.method)?;
        let (d, c) = (sims.theta_dim(), sims.x_dim());
        self.vector_field.validate()?;
        self.process.validate()?;
        if let ScoreSampling::Sde { .. } = self.sampling {
            self.sampling.validate()?;
        }
        self.embedding.validate(&sims.x_shape)?;
        if sims.x.iter().any(|v| v.is_nan()) {
            return Err(Error::AbsentTrials {
                advice: format!("{} takes whole observations; use NPE with DeepSets", self.method),
            });
        }
        let warm = warm.map(|w| (&w.store, &w.spec));
        let (store, spec) = crate::inference::warm_or_new(warm, self.training, || VectorFieldSpec {
            config: self.vector_field.clone(),
            process: self.process.clone(),
            embedding: self.embedding.saved(),
            features: d,
            context_shape: sims.x_shape.clone(),
            input_std: Standardizer::fit(&sims.theta, d),
            context_std: Standardizer::fit(&sims.x, c),
        })?;
        let estimator = VectorFieldEstimator::build(store, spec, self.embedding)?;
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
        let summary = fit(&estimator.store, &data, self.training, &estimator.loss())?;
        Ok(VectorFieldPosterior {
            prior,
            model: identity,
            estimator,
            x_range: FeatureRange::of_shape(&sims.x, &sims.x_shape),
            summary: Some(summary),
            seed: self.training.seed,
            solver: self.solver.clone(),
            sampling: self.sampling.clone(),
            max_proposals: None,
            range_check: true,
        })
    }

    /// Truncated sequential rounds (TSNPE's proposals: the prior truncated to the last
    /// posterior's region of highest density), each round a new network or the last
    /// round's with [`Rounds::warm_start`].
    pub fn train_rounds<M: Simulator>(
        &self,
        model: &M,
        x_o: &[f64],
        rounds: &Rounds,
    ) -> Result<SequentialRun<VectorFieldPosterior<M::Prior>>> {
        sequential::run_rounds(
            model,
            x_o,
            sequential::Observed::One,
            rounds,
            |sims, _, warm| self.train(model, sims, warm.map(|p: &VectorFieldPosterior<M::Prior>| &p.estimator)),
            |posterior, n, seed| sequential::truncated_prior(posterior, x_o, n, seed, rounds.progress),
        )
    }
}

/// A trained vector field posterior (FMPE or NPSE) for one model.
#[derive(Debug)]
pub struct VectorFieldPosterior<P: Prior> {
    prior: P,
    model: ModelIdentity,
    estimator: VectorFieldEstimator,
    x_range: FeatureRange,
    summary: Option<TrainingSummary>,
    seed: u64,
    solver: FlowSolver,
    sampling: ScoreSampling,
    max_proposals: Option<usize>,
    range_check: bool,
}

/// Vector field model files (FMPE and NPSE; the header says which path).
const FILE: saved::FileKind =
    saved::FileKind { format: "sbi-rs/vector-field", version: 1, what: "a vector field (FMPE or NPSE) posterior" };

#[derive(Serialize, Deserialize)]
struct SavedHeader {
    spec: VectorFieldSpec,
    model: ModelIdentity,
    x_range: FeatureRange,
    seed: u64,
    solver: FlowSolver,
    sampling: ScoreSampling,
}

impl<P: Prior> VectorFieldPosterior<P> {
    /// The path the field was trained on: flow matching (FMPE) or a score SDE (NPSE).
    pub fn process(&self) -> &Process {
        &self.estimator.spec.process
    }

    /// Sets how a score posterior draws: the reverse SDE (default) or the probability-flow
    /// ODE. A flow-matching posterior draws by its ODE whatever this says.
    pub fn with_sampling(mut self, s: ScoreSampling) -> Self {
        self.sampling = s;
        self
    }

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
        let sampling = match self.process() {
            Process::FlowMatching(_) => ScoreSampling::Ode,
            Process::Score(_) => self.sampling.clone(),
        };
        let evaluations = std::cell::Cell::new(0);
        let propose = |requests: &[(usize, usize)]| -> Result<Vec<f64>> {
            let total = requests.iter().map(|r| r.1).sum::<usize>();
            let mut context = crate::alloc::with_capacity(total, c, "proposal contexts")?;
            for &(i, m) in requests {
                for _ in 0..m {
                    context.extend_from_slice(&observations[i * c..(i + 1) * c]);
                }
            }
            let (draws, cost) = self.estimator.sample(&context, &mut rng, &self.solver, &sampling)?;
            evaluations.set(evaluations.get().max(cost));
            crate::inference::check_draws(&draws)?;
            Ok(draws)
        };
        let inside = |row: &[f64]| Ok(self.prior.log_prob_flat(row)?.is_finite());
        let mut runs = rejection_sample(observations.len() / c, n, d, budget, &self.prior.names(), propose, inside)?;
        // The most evaluations any batch of proposals took (ODE stages or SDE steps).
        runs.iter_mut().for_each(|r| r.evaluations_per_proposal = Some(evaluations.get()));
        Ok(runs)
    }
}

impl<P: Prior> Posterior for VectorFieldPosterior<P> {
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

    /// Carries base draws to the posterior (ODE or reverse SDE), rejecting draws outside the
    /// prior's support.
    fn sample_run_with_seed(&self, x_o: &[f64], n: usize, seed: u64) -> Result<SamplerRun> {
        self.check_observation(x_o)?;
        Ok(SamplerRun::Rejection(self.sample_many_seeded(x_o, n, seed)?.remove(0)))
    }

    /// Draws at all valid observations together (one solve per batch of proposals);
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

    /// `log q(θ | x_o)` by the instantaneous change of variables along the ODE (for a score,
    /// the probability-flow ODE; the divergence exact or Hutchinson's, as the solver says,
    /// its probes seeded by the posterior's seed), `-inf` outside the prior's support (no
    /// renormalisation to the support).
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
        let mut rng = stream_rng(self.seed, 0x0064_6976);
        let lq = self.estimator.log_prob(&rows, &contexts, &self.solver, &mut rng)?;
        Ok(lq.into_iter().zip(inside).map(|(l, ok)| if ok { l } else { f64::NEG_INFINITY }).collect())
    }

    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let header = SavedHeader {
            spec: self.estimator.spec.clone(),
            model: self.model.clone(),
            x_range: self.x_range.clone(),
            seed: self.seed,
            solver: self.solver.clone(),
            sampling: self.sampling.clone(),
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
        Ok(VectorFieldPosterior {
            prior,
            model: header.model,
            estimator,
            x_range: header.x_range,
            summary: None,
            seed: header.seed,
            solver: header.solver,
            sampling: header.sampling,
            max_proposals: None,
            range_check: true,
        })
    }
}
