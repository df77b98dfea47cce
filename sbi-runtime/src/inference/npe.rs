//! Neural posterior estimation (Papamakarios & Murray 2016; Greenberg et al. 2019):
//! train `q(θ | x)` to maximise `E[log q(θ | x)]` over simulations from the prior, then
//! sample it at the observation, keeping draws inside the prior's support.

use std::path::Path;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::estimators::{Columns, ConditionalEstimator, DensityEstimator, EstimatorSpec, Standardizer};
use crate::inference::sequential::{self, Rounds, SequentialRun};
use crate::inference::{FeatureRange, Method, Posterior, saved};
use crate::model::{Prior, Shape, Simulator};
use crate::nn::{EmbeddingNet, to_f64};
use crate::rng::stream_rng;
use crate::samplers::{RejectionRun, SamplerRun, Samples, rejection_sample};
use crate::simulate::{ModelIdentity, Simulations};
use crate::train::losses::{Atomic, NegativeLogLikelihood};
use crate::train::{Pairs, TrainConfig, TrainingSummary, fit};

/// Neural posterior estimation: the estimator, the embedding network and the training settings.
///
/// ```no_run
/// # use sbi_runtime::prelude::*;
/// # #[simulator] fn m(rng: &mut impl Rng) -> [f64; 1] { let t = sample!(Normal(0.0, 1.0)); [t + rng.random::<f64>()] }
/// let sims = simulate(&M, 10_000).seed(1).run()?;
/// let posterior = Npe::default().train(&M, &sims)?;
/// let draws: Vec<MParams> = posterior.sample(&[0.3], 1_000)?;
/// # Ok::<(), sbi_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Npe {
    /// The conditional density estimator (MAF by default).
    pub estimator: DensityEstimator,
    /// The embedding network for `x` (identity by default).
    pub embedding: EmbeddingNet,
    /// Training settings.
    pub training: TrainConfig,
    /// How later rounds of [`Npe::train_rounds`] propose and train (TSNPE).
    pub sequential: SequentialNpe,
    /// Where the estimator models θ: in the prior's own space, or mapped to ℝᵈ by the
    /// prior's transforms (see [`ThetaSpace`]).
    pub theta_space: ThetaSpace,
}

/// Where NPE's estimator models the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ThetaSpace {
    /// θ as the prior gives it (as `sbi`): the density can put mass outside a bounded
    /// prior's support, and sampling rejects those draws (and `log_prob` corrects for the
    /// lost mass).
    #[default]
    Constrained,
    /// `z = T⁻¹(θ)`, the prior's bijection onto ℝᵈ (the transforms MCMC uses): the
    /// estimator is trained on z, draws are mapped back, so none leaves the support, and
    /// the density gets the transform's Jacobian, `log q(θ|x) = log q(z|x) − log |det ∂θ/∂z|`.
    Unconstrained,
}

impl std::str::FromStr for ThetaSpace {
    type Err = Error;

    /// `constrained` or `unconstrained`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "constrained" => Ok(ThetaSpace::Constrained),
            "unconstrained" => Ok(ThetaSpace::Unconstrained),
            _ => Err(Error::Config(format!("unknown θ space {s:?}: expected constrained or unconstrained"))),
        }
    }
}

/// `constrained` or `unconstrained`, as [`FromStr`](std::str::FromStr) reads it.
impl std::fmt::Display for ThetaSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            ThetaSpace::Constrained => "constrained",
            ThetaSpace::Unconstrained => "unconstrained",
        })
    }
}

/// Rows of θ mapped to the prior's unconstrained space, with `log |det ∂θ/∂z|` per row
/// (`-inf` for a row on the support's boundary, whose `z` is infinite).
fn unconstrain_rows<P: Prior>(prior: &P, theta: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    let d = prior.dim();
    let mut z = vec![0.0; theta.len()];
    let mut log_det = Vec::with_capacity(theta.len() / d.max(1));
    for (t, z) in theta.chunks_exact(d).zip(z.chunks_exact_mut(d)) {
        let ld = prior.unconstrain(t, z)?;
        log_det.push(if z.iter().all(|v| v.is_finite()) && ld.is_finite() { ld } else { f64::NEG_INFINITY });
    }
    Ok((z, log_det))
}

/// Rows of the unconstrained space mapped back to θ.
fn constrain_rows<P: Prior>(prior: &P, z: &[f64]) -> Result<Vec<f64>> {
    let d = prior.dim();
    let mut theta = vec![0.0; z.len()];
    for (z, t) in z.chunks_exact(d).zip(theta.chunks_exact_mut(d)) {
        prior.constrain(z, t)?;
    }
    Ok(theta)
}

/// The sequential variant of NPE used by [`Npe::train_rounds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SequentialNpe {
    /// Truncated sequential NPE (Deistler et al. 2022): proposals from the prior truncated
    /// to the last posterior's highest-density region; NPE's ordinary loss. The default.
    #[default]
    Truncated,
    /// SNPE-C / APT (Greenberg et al. 2019): proposals from the last posterior itself; from
    /// round 2 on, the atomic loss `−log [q(θ_i|x_i)/p(θ_i) / Σ_j q(θ_j|x_i)/p(θ_j)]` over
    /// `atoms` parameter sets per observation (its own and others from the batch; 10 in `sbi`).
    /// [`SequentialNpe::apt`] gives the recommended settings. Where the posterior is a tiny
    /// part of the prior, train with [`TrainConfig::with_lr_decays`] (3): with the learning
    /// rate fixed, rounds stop at a posterior about twice too wide (on a 5-dimensional box
    /// 10⁻¹³ of the prior, C2ST 0.734 against 0.563 with three halvings).
    Atomic {
        /// Parameter sets per observation in the atomic loss, its own included.
        atoms: usize,
        /// Adds NPE's loss `−log q(θ|x)` on the first round's pairs, simulated from the
        /// prior (`sbi`'s `use_combined_loss`). The atomic loss only compares densities at
        /// parameters of the proposal, so it cannot tell how much mass the posterior puts
        /// elsewhere; this term pins that down. Measured on posteriors a tiny part of the
        /// prior (`examples/tiny_posterior.rs`), without it up to 98% of the mass leaked
        /// and C2ST stayed at 0.997–0.999 (see the README).
        combined: bool,
        /// Draws each pair's atoms from the pairs of its own round, simulated from the same
        /// proposal, rather than from all rounds' pairs (`sbi`).
        same_round: bool,
    },
}

impl SequentialNpe {
    /// SNPE-C with 10 atoms (as `sbi`) and the combined loss.
    pub fn apt() -> Self {
        SequentialNpe::Atomic { atoms: 10, combined: true, same_round: true }
    }
}

impl Npe {
    /// Sets the density estimator.
    pub fn with_estimator(mut self, e: DensityEstimator) -> Self {
        self.estimator = e;
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
    /// Sets where the estimator models θ ([`ThetaSpace`]).
    pub fn with_theta_space(mut self, space: ThetaSpace) -> Self {
        self.theta_space = space;
        self
    }
    /// Sets the sequential variant (TSNPE or SNPE-C).
    pub fn with_sequential(mut self, s: SequentialNpe) -> Self {
        self.sequential = s;
        self
    }

    /// Trains with NPE's maximum-likelihood loss, or with APT's atomic loss ([`Atoms`]: over
    /// `atoms` parameter sets per observation, each row labelled with its round); from a new
    /// network, or from a copy of `warm` (its weights
    /// and z-scoring).
    fn train_with<M: Simulator>(
        &self,
        model: &M,
        sims: &Simulations,
        atoms: Option<Atoms>,
        warm: Option<&ConditionalEstimator>,
    ) -> Result<NpePosterior<M::Prior>> {
        let (prior, identity) = crate::inference::checked_prior(model, sims, "NPE")?;
        let (n, d, c) = (sims.len(), sims.theta_dim(), sims.x_dim());
        self.estimator.validate(d)?;
        self.embedding.validate(&sims.x_shape)?;
        if sims.x.iter().any(|v| v.is_nan()) && !matches!(self.embedding, EmbeddingNet::DeepSets { .. }) {
            return Err(Error::AbsentTrials { advice: "use the DeepSets embedding".into() });
        }
        // In the unconstrained space, a row on the support's boundary (infinite z: a draw
        // of probability 2⁻⁵³) is left out.
        // θ rows in the estimator's space, x rows, log-Jacobians, and the pooled rows they are.
        type Kept<'a> = (std::borrow::Cow<'a, [f64]>, std::borrow::Cow<'a, [f64]>, Vec<f64>, Vec<usize>);
        let (rows, x_rows, log_det, keep): Kept<'_> = match self.theta_space {
            ThetaSpace::Constrained => {
                (sims.theta.as_slice().into(), sims.x.as_slice().into(), vec![0.0; n], (0..n).collect())
            }
            ThetaSpace::Unconstrained => {
                let (z, log_det) = unconstrain_rows(&prior, &sims.theta)?;
                let keep: Vec<usize> = (0..n).filter(|&i| log_det[i].is_finite()).collect();
                let pick = |v: &[f64], w: usize| keep.iter().flat_map(|&i| v[i * w..(i + 1) * w].to_vec()).collect();
                (
                    std::borrow::Cow::Owned(pick(&z, d)),
                    std::borrow::Cow::Owned(pick(&sims.x, c)),
                    keep.iter().map(|&i| log_det[i]).collect(),
                    keep,
                )
            }
        };
        let n = log_det.len();
        let warm = warm.map(|w| (&w.store, &w.spec));
        let (store, spec) = crate::inference::warm_or_new(warm, &self.training, || EstimatorSpec {
            estimator: self.estimator.clone(),
            embedding: self.embedding.saved(),
            features: d,
            context_shape: sims.x_shape.clone(),
            seed: self.training.seed,
            input_std: Standardizer::fit(&rows, d),
            context_std: Standardizer::fit(&x_rows, c),
        })?;
        let estimator = ConditionalEstimator::build(store, spec, &self.embedding)?;
        let names = prior.names();
        let theta = estimator.input_tensor(&rows, Columns::Parameters(&names))?;
        let x = estimator.context_tensor(&x_rows, Columns::Observation)?;
        let summary = match atoms {
            None => {
                let data = Pairs { a: theta, b: x };
                fit(&estimator.store, &data, &self.training, &NegativeLogLikelihood(&estimator))?
            }
            Some(Atoms { atoms, combined, same_round, round_ends }) => {
                // Each row carries its log prior in an extra column: the atomic loss divides by
                // it (the prior's density in the estimator's space: with the Jacobian in z);
                // with the combined loss, a last column marks the rows simulated from the prior.
                let thetas = match self.theta_space {
                    ThetaSpace::Constrained => rows.to_vec(),
                    ThetaSpace::Unconstrained => constrain_rows(&prior, &rows)?,
                };
                let log_prior = thetas
                    .chunks_exact(d)
                    .zip(&log_det)
                    .map(|(row, ld)| Ok(prior.log_prob_flat(row)? + ld))
                    .collect::<Result<Vec<f64>>>()?;
                let log_prior = crate::nn::matrix(&log_prior, n, 1, theta.device())?;
                let round: Vec<f64> =
                    keep.iter().map(|&i| round_ends.partition_point(|&end| end <= i) as f64).collect();
                let round = crate::nn::matrix(&round, n, 1, theta.device())?;
                let data = Pairs { a: Tensor::cat(&[&theta, &log_prior, &round], 1)?, b: x };
                fit(
                    &estimator.store,
                    &data,
                    &self.training,
                    &Atomic { density: &estimator, atoms, combined, same_round },
                )?
            }
        };
        Ok(NpePosterior {
            prior,
            model: identity,
            estimator,
            x_shape: sims.x_shape.clone(),
            x_range: FeatureRange::of_shape(&sims.x, &sims.x_shape),
            summary: Some(summary),
            seed: self.training.seed,
            max_proposals: None,
            range_check: true,
            theta_space: self.theta_space,
        })
    }
}

impl Method for Npe {
    type Posterior<P: Prior> = NpePosterior<P>;

    /// Trains `q(θ | x)` on `sims` (simulated from `model`'s prior) and returns the posterior.
    fn train<M: Simulator>(&self, model: &M, sims: &Simulations) -> Result<NpePosterior<M::Prior>> {
        self.train_with(model, sims, None, None)
    }

    /// Sequential NPE for `x_o`: TSNPE by default (the prior truncated to the last
    /// posterior's region of highest density holding all but 10⁻⁴ of its mass), SNPE-C with
    /// [`SequentialNpe::Atomic`]; each round a new network, or the last round's with
    /// [`Rounds::warm_start`]. The truncated prior is drawn by rejection while that is
    /// affordable and by MCMC otherwise (see [`sequential`]); a region that holds none of the
    /// last posterior's own draws is [`Error::TruncationTooSmall`].
    fn train_rounds<M: Simulator>(
        &self,
        model: &M,
        x_o: &[f64],
        rounds: &Rounds,
    ) -> Result<SequentialRun<NpePosterior<M::Prior>>> {
        match self.sequential {
            SequentialNpe::Truncated => sequential::run_rounds(
                model,
                x_o,
                sequential::Observed::One,
                rounds,
                |sims, _, warm| self.train_with(model, sims, None, warm.map(|p: &NpePosterior<M::Prior>| &p.estimator)),
                |posterior, n, seed| sequential::truncated_prior(posterior, x_o, n, seed, rounds.progress),
            ),
            SequentialNpe::Atomic { atoms, combined, same_round } => {
                if atoms < 2 {
                    return Err(Error::Config(format!("the atomic loss needs at least 2 atoms, got {atoms}")));
                }
                // Where each round's simulations end among the pooled rows (each round's
                // appended to the last's, after any excluded simulations).
                let round_ends = std::cell::RefCell::new(Vec::new());
                sequential::run_rounds(
                    model,
                    x_o,
                    sequential::Observed::One,
                    rounds,
                    |sims, round, warm| {
                        round_ends.borrow_mut().push(sims.len());
                        let round_ends = round_ends.borrow().clone();
                        self.train_with(
                            model,
                            sims,
                            (round > 0).then_some(Atoms { atoms, combined, same_round, round_ends }),
                            warm.map(|p: &NpePosterior<M::Prior>| &p.estimator),
                        )
                    },
                    |posterior, n, seed| {
                        Ok(sequential::Proposal::from_run(posterior.sample_run_with_seed(x_o, n, seed)?))
                    },
                )
            }
        }
    }
}

/// The atomic loss's settings for one round of SNPE-C: the pooled simulations' rows up to
/// `round_ends[0]` are the first round's (from the prior), up to `round_ends[1]` the
/// second's, and so on.
#[derive(Debug, Clone)]
struct Atoms {
    atoms: usize,
    combined: bool,
    same_round: bool,
    round_ends: Vec<usize>,
}

/// A trained NPE posterior for one model.
#[derive(Debug)]
pub struct NpePosterior<P: Prior> {
    pub(crate) prior: P,
    model: ModelIdentity,
    estimator: ConditionalEstimator,
    x_shape: Shape,
    x_range: FeatureRange,
    summary: Option<TrainingSummary>,
    seed: u64,
    max_proposals: Option<usize>,
    range_check: bool,
    theta_space: ThetaSpace,
}

/// NPE model files. Version 2 added the model's identity, a typed header and the checksum.
const FILE: saved::FileKind = saved::FileKind { format: "sbi-rs/npe", version: 2, what: "an NPE posterior" };

impl<P: Prior> NpePosterior<P> {
    /// Bounds the proposals of rejection sampling (default `100·n + 100,000` for `n` draws).
    pub fn with_max_proposals(mut self, max: usize) -> Self {
        self.max_proposals = Some(max);
        self
    }

    fn check_observation(&self, x_o: &[f64]) -> Result<()> {
        crate::inference::check_shaped_observation(&self.x_shape, &self.x_range, self.range_check, x_o)
    }

    /// An observation of fewer trials than the model's maximum, padded with absent (NaN)
    /// trials; any other observation unchanged.
    fn padded<'a>(&self, x_o: &'a [f64]) -> std::borrow::Cow<'a, [f64]> {
        crate::inference::padded_trials(&self.x_shape, x_o)
    }

    /// `n` draws for each of several observations (`k × numel` row-major), drawn together
    /// (one network call per round of proposals for all of them).
    ///
    /// # Errors
    /// As [`Posterior::sample_run_with_seed`].
    pub fn sample_many(&self, observations: &[f64], n: usize) -> Result<Vec<Samples>> {
        Ok(self.sample_many_seeded(observations, n, self.seed)?.into_iter().map(|r| r.samples).collect())
    }

    /// Rejection sampling of `q(θ | x_o)` inside the prior's support, for each observation.
    fn sample_many_seeded(&self, observations: &[f64], n: usize, seed: u64) -> Result<Vec<RejectionRun>> {
        let c = self.x_shape.numel();
        if observations.is_empty() || !observations.len().is_multiple_of(c) {
            return Err(Error::Observation(format!("expected a multiple of {c} values, got {}", observations.len())));
        }
        for x_o in observations.chunks_exact(c) {
            self.check_observation(x_o)?;
        }
        let d = self.prior.dim();
        let budget = self.max_proposals.unwrap_or(n.saturating_mul(100).saturating_add(100_000));
        let mut rng = stream_rng(seed, 0x5341_4d50);
        let propose = |requests: &[(usize, usize)]| -> Result<Vec<f64>> {
            let total = requests.iter().map(|r| r.1).sum::<usize>();
            let mut context = crate::alloc::with_capacity(total, c, "proposal contexts")?;
            for &(i, m) in requests {
                for _ in 0..m {
                    context.extend_from_slice(&observations[i * c..(i + 1) * c]);
                }
            }
            let context = self.estimator.context_tensor(&context, Columns::Observation)?;
            self.draws(&context, &mut rng)
        };
        let inside = |row: &[f64]| Ok(self.prior.log_prob_flat(row)?.is_finite());
        rejection_sample(observations.len() / c, n, d, budget, &self.prior.names(), propose, inside)
    }

    /// `log p̂(θ | x_o)` for each row of `theta` (`m × DIM`): the estimator's density
    /// renormalised to the prior's support, `log q(θ | x_o) − log P_q(θ ∈ supp p)`, and `-inf`
    /// outside the support (the leakage correction of Greenberg et al. 2019; the acceptance
    /// probability is estimated from `leakage_samples` draws, none for 0).
    ///
    /// # Errors
    /// As [`Posterior::log_density`].
    pub fn log_prob(&self, theta: &[f64], x_o: &[f64], leakage_samples: usize) -> Result<Vec<f64>> {
        let lq = self.log_density(theta, x_o)?;
        let d = self.prior.dim();
        let acceptance = if leakage_samples == 0 {
            1.0
        } else {
            let probe = self.sample_many_unchecked(x_o, leakage_samples)?;
            let inside = probe.chunks_exact(d).map(|r| self.prior.log_prob_flat(r)).collect::<Result<Vec<_>>>()?;
            (inside.iter().filter(|v| v.is_finite()).count() as f64 / leakage_samples as f64)
                .max(1.0 / leakage_samples as f64)
        };
        Ok(lq.into_iter().map(|l| if l.is_finite() { l - acceptance.ln() } else { l }).collect())
    }

    /// The embedding network's features of observations (`k × numel` row-major; the
    /// identity's are the z-scored values): `k × width` values and the width. Pass them to
    /// [`crate::diagnostics::misspecification_mmd`] to test `x_o` in the space the
    /// estimator sees, as `sbi`'s `calc_misspecification_mmd(mode="embedding")`.
    ///
    /// # Errors
    /// [`Error::Observation`] for values that are not whole observations; a network error.
    pub fn embed(&self, observations: &[f64]) -> Result<(Vec<f64>, usize)> {
        crate::inference::posterior::check_many(observations, self.x_shape.numel())?;
        self.estimator.embed(observations)
    }

    /// NPE's density at `x_o` as a [`Potential`](crate::potential::Potential):
    /// `log q(θ | x_o)` inside the prior's support, `-inf` outside (unnormalised: no leakage
    /// correction). Any sampler takes it, e.g. to refine NPE draws by MCMC or to compare
    /// samplers on a known density.
    ///
    /// # Errors
    /// As [`Posterior::sample_run_with_seed`] for a bad observation.
    pub fn potential<'a>(&'a self, x_o: &'a [f64]) -> Result<NpePotential<'a, P>> {
        let x_o = self.padded(x_o);
        self.check_observation(&x_o)?;
        Ok(NpePotential { posterior: self, x_o })
    }

    /// Raw draws from the estimator, without rejection.
    fn sample_many_unchecked(&self, x_o: &[f64], n: usize) -> Result<Vec<f64>> {
        let c = self.x_shape.numel();
        let mut context = crate::alloc::with_capacity(n, c, "draws for the leakage correction")?;
        context.extend(x_o.iter().copied().cycle().take(n * c));
        let mut rng = stream_rng(self.seed, 0x4c45_414b);
        let context = self.estimator.context_tensor(&context, Columns::Observation)?;
        self.draws(&context, &mut rng)
    }

    /// One draw of θ per row of the (z-scored) context: the estimator's draws, mapped back
    /// to the prior's space when it models the unconstrained one.
    fn draws(&self, context: &Tensor, rng: &mut crate::rng::SimRng) -> Result<Vec<f64>> {
        let draws = self.estimator.inputs_from(&self.estimator.sample(context, rng)?)?;
        crate::inference::check_draws(&draws)?;
        match self.theta_space {
            ThetaSpace::Constrained => Ok(draws),
            ThetaSpace::Unconstrained => constrain_rows(&self.prior, &draws),
        }
    }

    /// Where the estimator models θ.
    pub fn theta_space(&self) -> ThetaSpace {
        self.theta_space
    }
}

impl<P: Prior> Posterior for NpePosterior<P> {
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

    /// Rejection sampling of `q(θ | x_o)` inside the prior's support. For a model of a
    /// varying number of trials (`VarTrials`), `x_o` may hold fewer trials than the maximum.
    fn sample_run_with_seed(&self, x_o: &[f64], n: usize, seed: u64) -> Result<SamplerRun> {
        Ok(SamplerRun::Rejection(self.sample_many_seeded(&self.padded(x_o), n, seed)?.remove(0)))
    }

    /// Rejection sampling at all valid observations together (one network call per round
    /// of proposals, from one random stream seeded by `seed`); each invalid one its error.
    fn sample_many_with_seed(
        &self,
        observations: &[f64],
        size: usize,
        n: usize,
        seed: u64,
    ) -> Result<Vec<Result<SamplerRun>>> {
        crate::inference::posterior::check_many(observations, size)?;
        let padded: Vec<std::borrow::Cow<'_, [f64]>> =
            observations.chunks_exact(size).map(|x| self.padded(x)).collect();
        crate::inference::posterior::sample_valid(
            &padded,
            |x| self.check_observation(x),
            |valid| self.sample_many_seeded(valid, n, seed),
            SamplerRun::Rejection,
        )
    }

    /// `log q(θ | x_o)` inside the prior's support (no leakage correction: see
    /// [`NpePosterior::log_prob`]).
    fn log_density(&self, theta: &[f64], x_o: &[f64]) -> Result<Vec<f64>> {
        crate::potential::Potential::log_potential(&self.potential(x_o)?, theta)
    }

    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let header = SavedHeader {
            spec: self.estimator.spec.clone(),
            model: self.model.clone(),
            x_shape: self.x_shape.clone(),
            x_range: self.x_range.clone(),
            seed: self.seed,
            theta_space: self.theta_space,
        };
        saved::save(path.as_ref(), &FILE, &self.estimator.store, &header)
    }

    fn load_with<M: Simulator<Prior = P>>(path: impl AsRef<Path>, model: &M, custom: &EmbeddingNet) -> Result<Self> {
        let path = path.as_ref();
        let saved::Loaded { header, weights, count: n_saved } = saved::load::<SavedHeader>(path, &FILE)?;
        saved::check_model(path, &header.model, model)?;
        let prior = model.prior();
        let embedding = header.spec.embedding.resolve(path, custom)?;
        let x_shape = header.x_shape;
        header.x_range.validate(x_shape.numel()).map_err(|e| Error::file(path, e))?;
        if header.spec.context_shape != x_shape || header.spec.features != prior.dim() {
            return Err(Error::file(path, "the estimator's sizes do not agree with the model's"));
        }
        let estimator = ConditionalEstimator::build(weights, header.spec, &embedding)
            .map_err(|e| Error::file(path, format!("the weights do not fit the model ({e})")))?;
        saved::check_all_used(path, &estimator.store, n_saved)?;
        Ok(NpePosterior {
            prior,
            model: header.model,
            estimator,
            x_shape,
            x_range: header.x_range,
            summary: None,
            seed: header.seed,
            max_proposals: None,
            range_check: true,
            theta_space: header.theta_space,
        })
    }
}

/// An NPE posterior's density at one observation, as a potential (see [`NpePosterior::potential`]).
#[derive(Debug)]
pub struct NpePotential<'a, P: Prior> {
    posterior: &'a NpePosterior<P>,
    x_o: std::borrow::Cow<'a, [f64]>,
}

impl<P: Prior> NpePotential<'_, P> {
    /// `log q(θ | x_o)` of each row (`-inf` outside the prior's support) and, when asked,
    /// its gradient through candle's autograd.
    fn evaluate(&self, theta: &[f64], with_grad: bool) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let d = self.posterior.prior.dim();
        crate::potential::check_rows(theta, d)?;
        let m = theta.len() / d;
        let estimator = &self.posterior.estimator;
        let context: Vec<f64> = self.x_o.iter().copied().cycle().take(m * self.x_o.len()).collect();
        let context = estimator.context_tensor(&context, Columns::Observation)?;
        let names = self.posterior.prior.names();
        let prior = &self.posterior.prior;
        // In the unconstrained space: z = T⁻¹(θ) and log |det ∂θ/∂z| per row.
        let (z, log_det) = match self.posterior.theta_space {
            ThetaSpace::Constrained => (std::borrow::Cow::Borrowed(theta), vec![0.0; m]),
            ThetaSpace::Unconstrained => {
                let (z, log_det) = unconstrain_rows(prior, theta)?;
                // A row on the boundary (infinite z) is scored -inf below; zeros stand in.
                let z = z
                    .chunks_exact(d)
                    .zip(&log_det)
                    .flat_map(|(row, ld)| if ld.is_finite() { row.to_vec() } else { vec![0.0; d] })
                    .collect();
                (std::borrow::Cow::Owned(z), log_det)
            }
        };
        let (rows, representable) =
            estimator.input_standardizer().to_tensor_flagging(&z, Columns::Parameters(&names), estimator.device())?;
        let (lq, grad) = if with_grad {
            let var = candle_core::Var::from_tensor(&rows)?;
            let lq = estimator.log_prob(var.as_tensor(), &context)?;
            let grads = lq.sum_all()?.backward()?;
            let mut g = grads.get(var.as_tensor()).map(to_f64).transpose()?.unwrap_or_else(|| vec![0.0; m * d]);
            estimator.input_standardizer().unscale_gradient(&mut g);
            if self.posterior.theta_space == ThetaSpace::Unconstrained {
                // ∇_θ [log q(z(θ)) − log |det ∂θ/∂z|] = (∂z/∂θ)ᵀ ∇_z log q − ∇_θ log |det|: the
                // gradient of Σ_i g_i z_i(θ) − log |det| with g held, by central differences
                // of the transform (plain code outside the graph; triangular for hierarchical priors).
                let g_z = g;
                g = crate::potential::batched_gradient(theta, d, |rows| {
                    let (z, ld) = unconstrain_rows(prior, rows)?;
                    Ok(z.chunks_exact(d)
                        .zip(g_z.chunks_exact(d))
                        .zip(ld)
                        .map(|((z, g), ld)| z.iter().zip(g).map(|(z, g)| z * g).sum::<f64>() - ld)
                        .collect())
                })?;
            }
            (to_f64(&lq)?, Some(g))
        } else {
            (to_f64(&self.posterior.estimator.log_prob(&rows, &context)?)?, None)
        };
        let values = theta
            .chunks_exact(d)
            .zip(lq)
            .zip(representable)
            .zip(log_det)
            .map(|(((row, l), representable), ld)| {
                let inside = representable && ld.is_finite() && prior.log_prob_flat(row)?.is_finite();
                Ok(if inside { crate::potential::nan_to_neg_inf(l - ld) } else { f64::NEG_INFINITY })
            })
            .collect::<Result<Vec<f64>>>()?;
        Ok((values, grad))
    }
}

impl<P: Prior> crate::potential::Potential for NpePotential<'_, P> {
    fn dim(&self) -> usize {
        self.posterior.prior.dim()
    }

    fn log_potential(&self, theta: &[f64]) -> Result<Vec<f64>> {
        Ok(self.evaluate(theta, false)?.0)
    }

    /// The flow's gradient through candle's autograd (zero outside the support).
    fn log_potential_grad(&self, theta: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let d = self.dim();
        let (values, grad) = self.evaluate(theta, true)?;
        let mut grad = grad.unwrap_or_default();
        for (r, v) in values.iter().enumerate() {
            if !v.is_finite() {
                grad[r * d..(r + 1) * d].iter_mut().for_each(|g| *g = 0.0);
            }
        }
        Ok((values, grad))
    }
}

#[derive(Serialize, Deserialize)]
struct SavedHeader {
    spec: EstimatorSpec,
    model: ModelIdentity,
    x_shape: Shape,
    x_range: FeatureRange,
    seed: u64,
    theta_space: ThetaSpace,
}
