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

use crate::error::Result;
use crate::estimators::{FlowMatchingConfig, FlowSolver, Process, ScoreSampling, VectorFieldConfig};
use crate::inference::vector_field::{FieldTraining, VectorFieldPosterior, default_training};
use crate::inference::{Method, Rounds, SequentialRun};
use crate::model::{Prior, Simulator};
use crate::nn::EmbeddingNet;
use crate::simulate::Simulations;
use crate::train::TrainConfig;

/// An FMPE posterior: a [`VectorFieldPosterior`] trained by flow matching.
pub type FmpePosterior<P> = VectorFieldPosterior<P>;

/// Flow matching posterior estimation: the vector field network, its probability path, the
/// embedding of `x`, the training and the ODE solver.
#[derive(Debug, Clone)]
pub struct Fmpe {
    /// The vector field network (`sbi`'s MLP defaults).
    pub vector_field: VectorFieldConfig,
    /// The probability path: `sbi`'s σ_min, and training times half uniform (`sbi`), half
    /// from a power law that trains the posterior's end of the path more
    /// ([`FlowMatchingConfig`]).
    pub flow: FlowMatchingConfig,
    /// The embedding network of `x` (none).
    pub embedding: EmbeddingNet,
    /// Training settings: `sbi`'s, with the parameters averaged
    /// ([`DEFAULT_EMA_DECAY`](crate::inference::DEFAULT_EMA_DECAY)), a plateau after
    /// [`DEFAULT_STOP_AFTER`](crate::inference::DEFAULT_STOP_AFTER) epochs and
    /// [`DEFAULT_ANNEAL_EPOCHS`](crate::inference::DEFAULT_ANNEAL_EPOCHS) epochs of annealing;
    /// a training set with `with_training` replaces them.
    pub training: TrainConfig,
    /// The ODE solver for draws and densities.
    pub solver: FlowSolver,
}

impl Default for Fmpe {
    fn default() -> Self {
        Fmpe {
            vector_field: VectorFieldConfig::default(),
            flow: FlowMatchingConfig::default(),
            embedding: EmbeddingNet::default(),
            training: default_training(),
            solver: FlowSolver::default(),
        }
    }
}

impl Fmpe {
    /// Sets the vector field network.
    pub fn with_vector_field(mut self, c: VectorFieldConfig) -> Self {
        self.vector_field = c;
        self
    }
    /// Sets the probability path.
    pub fn with_flow(mut self, f: FlowMatchingConfig) -> Self {
        self.flow = f;
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

    fn field(&self) -> FieldTraining<'_> {
        FieldTraining {
            method: "FMPE",
            vector_field: &self.vector_field,
            process: Process::FlowMatching(self.flow.clone()),
            embedding: &self.embedding,
            training: &self.training,
            solver: &self.solver,
            sampling: ScoreSampling::Ode,
        }
    }
}

impl Method for Fmpe {
    type Posterior<P: Prior> = FmpePosterior<P>;

    /// Trains the vector field on `sims` (simulated from `model`'s prior).
    fn train<M: Simulator>(&self, model: &M, sims: &Simulations) -> Result<FmpePosterior<M::Prior>> {
        self.field().train(model, sims, None)
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
        self.field().train_rounds(model, x_o, rounds)
    }
}
