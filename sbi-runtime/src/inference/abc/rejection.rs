//! Rejection ABC on a reference table of prior simulations: at each observation, the
//! simulations whose summaries lie closest (a quantile of them, or all within ε) are
//! accepted, optionally regression-adjusted, and returned through a kernel density. The
//! table is simulated once and serves every observation (amortised), so diagnostics that
//! sample at hundreds of observations are cheap.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::distance::{Fitted, FittedKind};
use super::{AbcRun, AbcStop, Accepted, Adjustment, Distance, DistanceFn, Resample, Summary, Table, bandwidth, finish};
use crate::error::{Error, Result};
use crate::inference::{FeatureRange, Method, Posterior, Round, Rounds, SequentialRun, saved};
use crate::model::{Prior, Simulator};
use crate::nn::EmbeddingNet;
use crate::rng::stream_rng;
use crate::samplers::{SamplerRun, Samples};
use crate::simulate::{ModelIdentity, Simulations, simulate};
use crate::train::TrainingSummary;

/// Which simulations rejection ABC accepts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Acceptance {
    /// The closest share of the table (0.01 by default: 100 of 10,000, as sbibm's REJ-ABC).
    Quantile(f64),
    /// The closest `n`.
    Count(usize),
    /// All within this distance ([`Error::AbcTolerance`] when none is).
    Epsilon(f64),
}

impl Default for Acceptance {
    fn default() -> Self {
        Acceptance::Quantile(0.01)
    }
}

/// Rejection ABC's settings. Train it like any [`Method`]: the "training" keeps the table
/// of simulations and fits the distance's scales to it.
#[derive(Debug, Clone)]
pub struct RejectionAbc {
    /// The statistics distances compare (the values themselves).
    pub summary: Summary,
    /// The distance (Euclidean after MAD scaling).
    pub distance: Distance,
    /// Which simulations are accepted (the closest 1%).
    pub acceptance: Acceptance,
    /// Regression adjustment of the accepted draws (linear).
    pub adjustment: Option<Adjustment>,
    /// How draws are made from the accepted ones (a kernel density).
    pub resample: Resample,
}

impl Default for RejectionAbc {
    fn default() -> Self {
        RejectionAbc {
            summary: Summary::Identity,
            distance: Distance::default(),
            acceptance: Acceptance::default(),
            adjustment: Some(Adjustment::Linear),
            resample: Resample::default(),
        }
    }
}

impl RejectionAbc {
    super::shared_setters!();

    /// Sets which simulations are accepted.
    pub fn with_acceptance(mut self, a: Acceptance) -> Self {
        self.acceptance = a;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] for a quantile outside (0, 1], a count of 0, or an ε that is not
    /// positive.
    pub fn validate(&self) -> Result<()> {
        let ok = match self.acceptance {
            Acceptance::Quantile(q) => q > 0.0 && q <= 1.0,
            Acceptance::Count(n) => n > 0,
            Acceptance::Epsilon(e) => e > 0.0 && e.is_finite(),
        };
        if !ok {
            return Err(Error::Config(format!(
                "rejection ABC accepts a quantile in (0, 1], a count ≥ 1 or a positive ε, got {:?}",
                self.acceptance
            )));
        }
        Ok(())
    }
}

impl Method for RejectionAbc {
    type Posterior<P: Prior> = RejectionAbcPosterior<P>;

    /// Keeps the simulations as the reference table and fits the distance to their
    /// summaries. Simulations whose summaries are not finite are left out and counted.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`] for simulations of another model; [`Error::Config`] for
    /// invalid settings or fewer than 2 usable simulations; [`Error::ShapeMismatch`] for
    /// summaries whose length varies.
    fn train<M: Simulator>(&self, model: &M, sims: &Simulations) -> Result<RejectionAbcPosterior<M::Prior>> {
        self.validate()?;
        let (prior, identity) = crate::inference::checked_prior(model, sims, "rejection ABC")?;
        let (d, c) = (sims.theta_dim(), sims.x_dim());
        if sims.x.iter().any(|v| v.is_nan()) {
            return Err(Error::AbsentTrials {
                advice: "ABC compares whole observations; give a summary that handles them, or simulate complete ones"
                    .into(),
            });
        }
        let (summaries, kept, k) = self.summary.of_rows(&sims.x, c, None)?;
        let theta: Vec<f64> = kept.iter().flat_map(|&i| sims.theta_row(i).to_vec()).collect();
        let fitted = self.distance.fit(&summaries, k)?;
        Ok(RejectionAbcPosterior {
            prior,
            model: identity,
            config: self.clone(),
            theta,
            summaries,
            d,
            k,
            x_dim: c,
            x_range: FeatureRange::of(&sims.x, c),
            fitted,
            invalid: sims.invalid.len() + (sims.len() - kept.len()),
            seed: sims.seed,
            range_check: true,
        })
    }

    /// One round trains on `rounds.simulations_per_round` prior simulations.
    ///
    /// # Errors
    /// [`Error::Config`] for more than one round: rejection ABC has no proposal to refine;
    /// use [`super::SmcAbc`]. Otherwise as [`Method::train`] and the simulation's errors.
    fn train_rounds<M: Simulator>(
        &self,
        model: &M,
        _x_o: &[f64],
        rounds: &Rounds,
    ) -> Result<SequentialRun<RejectionAbcPosterior<M::Prior>>> {
        if rounds.rounds != 1 {
            return Err(Error::Config(format!(
                "rejection ABC runs one round, got {}: for sequential ABC use SmcAbc, which refines its \
                 population generation by generation",
                rounds.rounds
            )));
        }
        let start = std::time::Instant::now();
        let sims = simulate(model, rounds.simulations_per_round).seed(rounds.seed).progress(rounds.progress).run()?;
        let simulate_seconds = start.elapsed().as_secs_f64();
        let posterior = self.train(model, &sims)?;
        Ok(SequentialRun {
            rounds: vec![Round {
                posterior,
                simulations: sims,
                proposal: "the prior".into(),
                propose_seconds: 0.0,
                simulate_seconds,
                train_seconds: start.elapsed().as_secs_f64() - simulate_seconds,
            }],
        })
    }
}

/// Rejection ABC's posterior: the table of simulations and the fitted distance.
#[derive(Clone)]
pub struct RejectionAbcPosterior<P: Prior> {
    prior: P,
    model: ModelIdentity,
    config: RejectionAbc,
    theta: Vec<f64>,
    summaries: Vec<f64>,
    d: usize,
    k: usize,
    x_dim: usize,
    x_range: FeatureRange,
    fitted: Fitted,
    invalid: usize,
    seed: u64,
    range_check: bool,
}

impl<P: Prior> std::fmt::Debug for RejectionAbcPosterior<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RejectionAbcPosterior")
            .field("config", &self.config)
            .field("simulations", &(self.theta.len() / self.d.max(1)))
            .field("statistics", &self.k)
            .finish_non_exhaustive()
    }
}

/// The file's header: everything but the table.
#[derive(Serialize, Deserialize)]
struct Header {
    model: ModelIdentity,
    names: Vec<String>,
    acceptance: Acceptance,
    adjustment: Option<Adjustment>,
    resample: Resample,
    custom_summary: bool,
    distance: FittedKind,
    scale: Vec<f64>,
    d: usize,
    k: usize,
    x_dim: usize,
    x_range: FeatureRange,
    invalid: usize,
    seed: u64,
    range_check: bool,
}

const FILE: saved::FileKind =
    saved::FileKind { format: "sbi-rs/rejection-abc", version: 1, what: "a rejection ABC posterior" };

impl<P: Prior> RejectionAbcPosterior<P> {
    /// The simulations in the table.
    pub fn simulations(&self) -> usize {
        self.theta.len() / self.d
    }

    /// The accepted draws at `x_o`, before adjustment.
    fn accept(&self, x_o: &[f64]) -> Result<(Accepted, f64)> {
        if x_o.len() != self.x_dim {
            return Err(Error::Observation(format!(
                "expected one observation of {} values, got {}",
                self.x_dim,
                x_o.len()
            )));
        }
        self.x_range.check(x_o, self.range_check)?;
        let s_o = self.config.summary.of_observation(x_o, self.k)?;
        let n = self.simulations();
        let dist: Vec<f64> = self
            .fitted
            .distances(&s_o, &self.summaries, self.k)
            .into_iter()
            .map(|v| if v.is_nan() { f64::INFINITY } else { v })
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| dist[a].total_cmp(&dist[b]).then(a.cmp(&b)));
        let count = match self.config.acceptance {
            Acceptance::Quantile(q) => ((q * n as f64).ceil() as usize).clamp(1, n),
            Acceptance::Count(c) => c.min(n),
            Acceptance::Epsilon(e) => order.iter().take_while(|&&i| dist[i] <= e).count(),
        };
        if count == 0 {
            let Acceptance::Epsilon(e) = self.config.acceptance else { unreachable!("only ε can accept none") };
            return Err(Error::AbcTolerance { epsilon: e, closest: dist[order[0]], simulations: n });
        }
        let rows = &order[..count];
        let ones = vec![1.0; n];
        let table =
            Table { theta: &self.theta, s: &self.summaries, distances: &dist, weights: &ones, d: self.d, k: self.k };
        let accepted = Accepted::gather(rows, &table, &s_o, &self.fitted);
        Ok((accepted, dist[rows[count - 1]]))
    }

    /// Writes the file; `custom_summary` records whether the summary is a user's function.
    fn header(&self) -> Header {
        Header {
            model: self.model.clone(),
            names: self.prior.names(),
            acceptance: self.config.acceptance,
            adjustment: self.config.adjustment,
            resample: self.config.resample,
            custom_summary: matches!(self.config.summary, Summary::Custom(_)),
            distance: self.fitted.kind.clone(),
            scale: self.fitted.scale.clone(),
            d: self.d,
            k: self.k,
            x_dim: self.x_dim,
            x_range: self.x_range.clone(),
            invalid: self.invalid,
            seed: self.seed,
            range_check: self.range_check,
        }
    }

    /// Loads a file saved with a user's summary function or distance: pass the same ones
    /// (`None` where the built-in one was used).
    ///
    /// # Errors
    /// As [`Posterior::load`]; [`Error::Config`] when the file needs a function that is not
    /// given.
    pub fn load_custom<M: Simulator<Prior = P>>(
        path: impl AsRef<Path>,
        model: &M,
        summary: Option<super::SummaryFn>,
        distance: Option<DistanceFn>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let f = crate::io::SafetensorsFile::open(path)?;
        let h: Header = f.header(&FILE)?;
        saved::check_model(path, &h.model, model)?;
        let summary = match (h.custom_summary, summary) {
            (false, _) => Summary::Identity,
            (true, Some(s)) => Summary::Custom(s),
            (true, None) => {
                return Err(Error::Config(
                    "this ABC posterior was saved with a custom summary: pass the same function to \
                     RejectionAbcPosterior::load_custom"
                        .into(),
                ));
            }
        };
        let custom_distance = if h.distance == FittedKind::Custom { distance.clone() } else { None };
        let fitted = Fitted::restore(h.distance.clone(), h.scale.clone(), custom_distance)?;
        let (theta_shape, theta) = f.f64("theta")?;
        let (s_shape, summaries) = f.f64("summaries")?;
        let n = theta_shape.first().copied().unwrap_or(0);
        let bad = |why: &str| Error::file(path, why.to_string());
        if theta_shape != [n, h.d] || s_shape != [n, h.k] || h.scale.len() != h.k || n < 2 {
            return Err(bad("its table does not match its header"));
        }
        if theta.len() != n * h.d || summaries.len() != n * h.k || summaries.iter().any(|v| !v.is_finite()) {
            return Err(bad("its table holds non-finite or missing values"));
        }
        h.x_range.validate(h.x_dim).map_err(|e| bad(&e))?;
        if let FittedKind::Mahalanobis(l) = &h.distance
            && (l.len() != h.k * h.k || l.iter().any(|v| !v.is_finite()) || (0..h.k).any(|i| l[i * h.k + i] <= 0.0))
        {
            return Err(bad("its Mahalanobis factor does not fit its statistics"));
        }
        if h.scale.iter().any(|v| !(*v > 0.0 && v.is_finite())) {
            return Err(bad("its distance scales are not positive and finite"));
        }
        RejectionAbc { acceptance: h.acceptance, ..RejectionAbc::default() }
            .validate()
            .map_err(|e| bad(&format!("its settings are invalid ({e})")))?;
        let distance = match fitted.kind {
            FittedKind::Euclidean => Distance::Euclidean(super::Scaling::None),
            FittedKind::L1 => Distance::L1(super::Scaling::None),
            FittedKind::Mahalanobis(_) => Distance::Mahalanobis,
            FittedKind::Custom => Distance::Custom(distance.expect("restore checked it")),
        };
        Ok(RejectionAbcPosterior {
            prior: model.prior(),
            model: h.model,
            config: RejectionAbc {
                summary,
                distance,
                acceptance: h.acceptance,
                adjustment: h.adjustment,
                resample: h.resample,
            },
            theta,
            summaries,
            d: h.d,
            k: h.k,
            x_dim: h.x_dim,
            x_range: h.x_range,
            fitted,
            invalid: h.invalid,
            seed: h.seed,
            range_check: h.range_check,
        })
    }

    /// The same posterior accepting as `a` says (the table is kept).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid acceptance.
    pub fn with_acceptance(mut self, a: Acceptance) -> Result<Self> {
        self.config.acceptance = a;
        self.config.validate()?;
        Ok(self)
    }

    /// The same posterior with another adjustment.
    pub fn with_adjustment(mut self, a: Option<Adjustment>) -> Self {
        self.config.adjustment = a;
        self
    }

    /// The same posterior resampling as `r` says.
    pub fn with_resample(mut self, r: Resample) -> Self {
        self.config.resample = r;
        self
    }

    /// The ABC run at `x_o` with `n` draws seeded by `seed`.
    ///
    /// # Errors
    /// As [`Posterior::sample_run_with_seed`].
    pub fn run(&self, x_o: &[f64], n: usize, seed: u64) -> Result<AbcRun> {
        let (accepted, eps) = self.accept(x_o)?;
        let count = accepted.weights.len();
        let done = finish(&self.prior, &accepted, self.config.adjustment, bandwidth(self.config.resample), self.k)?;
        let mut rng = stream_rng(seed, 0x0061_6263);
        let draws = done.draws(&self.prior, self.config.resample, n, &mut rng)?;
        let names = self.prior.names();
        Ok(AbcRun {
            samples: Samples { values: draws, names: names.clone() },
            particles: Samples { values: done.particles, names },
            weights: done.weights,
            epsilons: vec![eps],
            acceptance: vec![count as f64 / self.simulations() as f64],
            simulations: self.simulations() + self.invalid,
            invalid: self.invalid,
            stop: AbcStop::Complete,
            target: None,
        })
    }
}

impl<P: Prior> Posterior for RejectionAbcPosterior<P> {
    type Prior = P;

    fn prior(&self) -> &P {
        &self.prior
    }

    fn model_identity(&self) -> Option<&ModelIdentity> {
        Some(&self.model)
    }

    fn training_summary(&self) -> Option<&TrainingSummary> {
        None
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

    fn sample_run_with_seed(&self, x_o: &[f64], n: usize, seed: u64) -> Result<SamplerRun> {
        Ok(SamplerRun::Abc(self.run(x_o, n, seed)?))
    }

    /// The kernel density of the accepted (adjusted) draws at `x_o`.
    fn log_density(&self, theta: &[f64], x_o: &[f64]) -> Result<Vec<f64>> {
        let (accepted, _) = self.accept(x_o)?;
        let done = finish(&self.prior, &accepted, self.config.adjustment, bandwidth(self.config.resample), self.k)?;
        done.log_density(&self.prior, theta)
    }

    /// Saves the table, the fitted distance and the settings (a user's summary or distance
    /// function by mark only: load with [`RejectionAbcPosterior::load_custom`]).
    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let n = self.simulations();
        let arrays = [
            crate::io::Array::f64("theta", vec![n, self.d], &self.theta),
            crate::io::Array::f64("summaries", vec![n, self.k], &self.summaries),
        ];
        crate::io::write_safetensors(path.as_ref(), &FILE, &arrays, &self.header())
    }

    /// Loads a file saved without user functions (`custom` is not used: ABC has no
    /// embedding network).
    fn load_with<M: Simulator<Prior = P>>(path: impl AsRef<Path>, model: &M, _custom: &EmbeddingNet) -> Result<Self> {
        Self::load_custom(path, model, None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[simulator]
    fn pair(rng: &mut impl Rng) -> [f64; 2] {
        let m = sample!(Normal(0.0, 1.0));
        [m + rng.random::<f64>(), m]
    }

    /// A file whose checksum is valid but whose header disagrees with its table (a
    /// Mahalanobis factor of the wrong size, a zero scale, an invalid acceptance) is refused
    /// at load, never a panic when it samples.
    #[test]
    fn inconsistent_files_are_refused() {
        let sims = simulate(&Pair, 200).seed(1).progress(false).run().unwrap();
        let posterior = RejectionAbc::default().with_distance(Distance::Mahalanobis).train(&Pair, &sims).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.safetensors");
        let n = posterior.simulations();
        let edits: [fn(&mut Header); 3] = [
            |h| h.distance = FittedKind::Mahalanobis(vec![1.0]),
            |h| h.scale[0] = 0.0,
            |h| h.acceptance = Acceptance::Count(0),
        ];
        for edit in edits {
            let mut header = posterior.header();
            edit(&mut header);
            let arrays = [
                crate::io::Array::f64("theta", vec![n, posterior.d], &posterior.theta),
                crate::io::Array::f64("summaries", vec![n, posterior.k], &posterior.summaries),
            ];
            crate::io::write_safetensors(&path, &FILE, &arrays, &header).unwrap();
            assert!(matches!(RejectionAbcPosterior::load(&path, &Pair), Err(Error::File { .. })));
        }
        posterior.save(&path).unwrap();
        assert!(RejectionAbcPosterior::load(&path, &Pair).is_ok());
    }
}
