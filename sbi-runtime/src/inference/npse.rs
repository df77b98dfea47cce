//! Neural posterior score estimation (NPSE; Geffner et al. 2023, Sharrock et al. 2024): the
//! score `∇_θ log p_t(θ_t | x)` of the posterior noised by a diffusion (variance
//! exploding, variance preserving or sub-variance preserving; Song et al. 2021), trained by
//! denoising score matching. Draws run the reverse SDE (Euler–Maruyama, optionally with a
//! Langevin corrector) or the probability-flow ODE from the Gaussian base; the density
//! follows the instantaneous change of variables along the probability-flow ODE
//! ([`crate::estimators::vector_field`]).
//!
//! ```no_run
//! # use sbi_runtime::prelude::*;
//! # use sbi_runtime::inference::Npse;
//! # use sbi_runtime::estimators::ScoreConfig;
//! # fn run<M: Simulator>(model: &M, sims: &Simulations, x_o: &[f64]) -> sbi_runtime::Result<()> {
//! let posterior = Npse::default().with_score(ScoreConfig::vp()).train(model, sims)?;
//! let draws = posterior.sample_flat(x_o, 10_000)?;
//! # Ok(()) }
//! ```

use crate::error::Result;
use crate::estimators::{FlowSolver, Process, ScoreConfig, ScoreSampling, VectorFieldConfig};
use crate::inference::vector_field::{FieldTraining, VectorFieldPosterior, default_training};
use crate::inference::{Method, Rounds, SequentialRun};
use crate::model::{Prior, Simulator};
use crate::nn::EmbeddingNet;
use crate::simulate::Simulations;
use crate::train::TrainConfig;

/// An NPSE posterior: a [`VectorFieldPosterior`] trained by denoising score matching.
pub type NpsePosterior<P> = VectorFieldPosterior<P>;

/// Neural posterior score estimation: the score network, the SDE and its loss, the
/// embedding of `x`, the training, and how the posterior draws.
#[derive(Debug, Clone)]
pub struct Npse {
    /// The score network (`sbi`'s MLP defaults).
    pub vector_field: VectorFieldConfig,
    /// The SDE, the loss's weighting and the times (`sbi`'s VE defaults).
    pub score: ScoreConfig,
    /// The embedding network of `x` (none).
    pub embedding: EmbeddingNet,
    /// Training settings: `sbi`'s, with the parameters averaged
    /// ([`DEFAULT_EMA_DECAY`](crate::inference::DEFAULT_EMA_DECAY)), a plateau after
    /// [`DEFAULT_STOP_AFTER`](crate::inference::DEFAULT_STOP_AFTER) epochs and
    /// [`DEFAULT_ANNEAL_EPOCHS`](crate::inference::DEFAULT_ANNEAL_EPOCHS) epochs of annealing;
    /// a training set with `with_training` replaces them.
    pub training: TrainConfig,
    /// The ODE solver for densities (and for draws by the probability-flow ODE).
    pub solver: FlowSolver,
    /// How draws are made (the reverse SDE at 100 time points; `sbi`: 500).
    pub sampling: ScoreSampling,
}

impl Default for Npse {
    fn default() -> Self {
        Npse {
            vector_field: VectorFieldConfig::default(),
            score: ScoreConfig::default(),
            embedding: EmbeddingNet::default(),
            training: default_training(),
            solver: FlowSolver::default(),
            sampling: ScoreSampling::default(),
        }
    }
}

impl Npse {
    /// Sets the score network.
    pub fn with_vector_field(mut self, c: VectorFieldConfig) -> Self {
        self.vector_field = c;
        self
    }
    /// Sets the SDE and its loss.
    pub fn with_score(mut self, s: ScoreConfig) -> Self {
        self.score = s;
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
    /// Sets how draws are made.
    pub fn with_sampling(mut self, s: ScoreSampling) -> Self {
        self.sampling = s;
        self
    }

    fn field(&self) -> FieldTraining<'_> {
        FieldTraining {
            method: "NPSE",
            vector_field: &self.vector_field,
            process: Process::Score(self.score.clone()),
            embedding: &self.embedding,
            training: &self.training,
            solver: &self.solver,
            sampling: self.sampling.clone(),
        }
    }
}

impl Method for Npse {
    type Posterior<P: Prior> = NpsePosterior<P>;

    /// Trains the score network on `sims` (simulated from `model`'s prior).
    fn train<M: Simulator>(&self, model: &M, sims: &Simulations) -> Result<NpsePosterior<M::Prior>> {
        self.field().train(model, sims, None)
    }

    /// Truncated sequential rounds (TSNPE's proposals, the truncation by the density along
    /// the probability-flow ODE), each round a new network or the last round's with
    /// [`Rounds::warm_start`].
    fn train_rounds<M: Simulator>(
        &self,
        model: &M,
        x_o: &[f64],
        rounds: &Rounds,
    ) -> Result<SequentialRun<NpsePosterior<M::Prior>>> {
        self.field().train_rounds(model, x_o, rounds)
    }
}
