//! MCMC over the prior's unconstrained space: many chains moved together by one batched
//! potential call per step, started from draws resampled by importance weight, with split-R̂,
//! the effective sample size and a budget of potential evaluations.

use std::time::Instant;

use indicatif::ProgressBar;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Prior;
use crate::potential::{Potential, Unconstrained};
use crate::rng::{SimRng, stream_rng};
use crate::samplers::{Samples, diagnostics, mh, nuts, slice};

/// The MCMC transition.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum McmcMethod {
    /// Coordinate-wise slice sampling with stepping out and shrinkage (Neal 2003), widths
    /// tuned during warm-up (as `sbi`'s `slice_np_vectorized`). The default.
    #[default]
    Slice,
    /// Random-walk Metropolis–Hastings with a Gaussian proposal whose covariance is learned
    /// from the warm-up and whose scale is tuned towards an acceptance rate of 0.234. It mixes
    /// more slowly than slice sampling: give it longer runs ([`McmcConfig::mh`]) and watch R̂.
    Mh,
    /// The No-U-Turn sampler (Hoffman & Gelman 2014), multinomial as in Stan, on gradients of
    /// the potential (candle's autograd for networks): step size tuned by dual averaging,
    /// a diagonal metric learned in warm-up, trees of at most 2^`max_depth` leapfrog steps.
    /// Its draws are nearly independent: use it with [`McmcConfig::nuts`].
    Nuts {
        /// Maximum tree depth (10, as Stan).
        max_depth: usize,
        /// The mean acceptance statistic the step size is tuned to (0.8, as Stan and Pyro).
        /// Raise it towards 0.95 when a run reports divergences: smaller steps, longer trees.
        target_accept: f64,
    },
}

/// Where chains start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChainInit {
    /// Each chain starts at a draw from the prior with a finite potential.
    Prior,
    /// Chains start at draws resampled, with replacement, from a pool of `pool` prior draws
    /// with probability proportional to their importance weight `exp(potential − log prior)`
    /// (sampling-importance-resampling, as `sbi`'s `sir`, with one pool shared by all chains
    /// rather than one per chain: the pool's cost does not grow with the number of chains).
    Resample {
        /// Prior draws in the pool.
        pool: usize,
    },
}

/// Points to start chains from, drawn from a density known up to a constant (the draws of an
/// earlier posterior, as sequential rounds have): chains start at points resampled from
/// the pool with probability ∝ `exp(potential − log_density)`, sampling-importance-resampling
/// with the pool as proposal. Where the posterior fills a tiny part of the prior, a pool of
/// prior draws ([`ChainInit::Resample`]) holds no point near it; an earlier round's draws do.
#[derive(Debug, Clone, PartialEq)]
pub struct StartPool {
    /// The points, `m × dim` row-major, in the prior's space.
    pub theta: Vec<f64>,
    /// The log density (up to a constant) of the distribution each point was drawn from.
    pub log_density: Vec<f64>,
}

impl StartPool {
    /// A pool of `theta` (`m × dim`) drawn from a density whose logarithm at each point is
    /// `log_density` (up to a constant).
    pub fn new(theta: Vec<f64>, log_density: Vec<f64>) -> Self {
        StartPool { theta, log_density }
    }

    fn check(&self, d: usize) -> Result<()> {
        if self.log_density.is_empty() || self.theta.len() != self.log_density.len() * d {
            return Err(Error::ShapeMismatch {
                what: format!("chain start pool ({} log densities, rows of {d} parameters)", self.log_density.len()),
                expected: self.log_density.len().max(1) * d,
                got: self.theta.len(),
            });
        }
        Ok(())
    }
}

/// MCMC settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McmcConfig {
    /// The transition (slice sampling).
    pub method: McmcMethod,
    /// Chains run side by side (200): each step evaluates all of them in one batch, so
    /// more chains cost little more per step.
    pub chains: usize,
    /// Warm-up sweeps discarded before collecting, used to tune the sampler (50).
    pub warmup: usize,
    /// Keep every `thin`-th sweep (2).
    pub thin: usize,
    /// Chain initialisation (resampling from a pool of 10,000 prior draws).
    pub init: ChainInit,
    /// Seed of initialisation and transitions.
    pub seed: u64,
    /// Budget of potential evaluations (rows), warm-up and initialisation included
    /// (10⁸). Exhausting it is an error, never a hang.
    pub max_evaluations: usize,
    /// Show a progress bar on stderr (true; hidden when stderr is not a terminal).
    pub progress: bool,
}

impl Default for McmcConfig {
    fn default() -> Self {
        McmcConfig {
            method: McmcMethod::Slice,
            chains: 200,
            warmup: 50,
            thin: 2,
            init: ChainInit::Resample { pool: 10_000 },
            seed: 0,
            max_evaluations: 100_000_000,
            progress: true,
        }
    }
}

impl McmcConfig {
    /// Settings for random-walk Metropolis–Hastings: 200 warm-up sweeps and thinning by 10,
    /// which its slower mixing needs.
    pub fn mh() -> Self {
        McmcConfig { method: McmcMethod::Mh, warmup: 200, thin: 10, ..McmcConfig::default() }
    }

    /// Settings for NUTS: 100 chains, 100 warm-up iterations, no thinning (its draws are
    /// nearly independent), trees of depth ≤ 10.
    pub fn nuts() -> Self {
        McmcConfig {
            method: McmcMethod::Nuts { max_depth: 10, target_accept: 0.8 },
            chains: 100,
            warmup: 100,
            thin: 1,
            ..McmcConfig::default()
        }
    }

    /// Sets the transition.
    pub fn with_method(mut self, m: McmcMethod) -> Self {
        self.method = m;
        self
    }
    /// Sets the number of chains.
    pub fn with_chains(mut self, n: usize) -> Self {
        self.chains = n;
        self
    }
    /// Sets the number of warm-up sweeps.
    pub fn with_warmup(mut self, n: usize) -> Self {
        self.warmup = n;
        self
    }
    /// Sets the thinning.
    pub fn with_thin(mut self, n: usize) -> Self {
        self.thin = n;
        self
    }
    /// Sets the initialisation.
    pub fn with_init(mut self, init: ChainInit) -> Self {
        self.init = init;
        self
    }
    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Sets the budget of potential evaluations.
    pub fn with_max_evaluations(mut self, n: usize) -> Self {
        self.max_evaluations = n;
        self
    }
    /// Shows or hides progress.
    pub fn with_progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    fn validate(&self) -> Result<()> {
        let pool_ok = match self.init {
            ChainInit::Resample { pool } => pool > 0,
            ChainInit::Prior => true,
        };
        if self.chains == 0 || self.thin == 0 || !pool_ok {
            return Err(Error::Config("MCMC needs at least one chain, thin ≥ 1 and a non-empty pool".into()));
        }
        if let McmcMethod::Nuts { max_depth, target_accept } = self.method
            && !((1..=30).contains(&max_depth) && target_accept > 0.0 && target_accept < 1.0)
        {
            return Err(Error::Config(format!(
                "NUTS needs a maximum tree depth in 1..=30 and a target acceptance in (0, 1), got {max_depth} and {target_accept}"
            )));
        }
        Ok(())
    }
}

/// Draws from an MCMC run with its diagnostics.
#[derive(Debug, Clone)]
pub struct McmcRun {
    /// The draws (sweep by sweep, all chains of a sweep together), `θ` in the prior's space.
    pub samples: Samples,
    /// Split-R̂ per parameter (near 1 when the chains agree; above 1.01–1.05 is a warning).
    pub rhat: Vec<f64>,
    /// Effective sample size per parameter.
    pub ess: Vec<f64>,
    /// Potential evaluations (rows; with their gradient for NUTS), initialisation included.
    pub evaluations: usize,
    /// Divergent transitions after warm-up (NUTS; 0 for the others). Many of them mean the
    /// posterior has regions the sampler cannot explore: do not trust the draws.
    pub divergences: usize,
    /// Wall time.
    pub seconds: f64,
    /// What the diagnostics say about trusting the draws (empty when nothing is amiss): see
    /// [`mixing_warnings`]. Printed once on stderr when the run shows progress.
    pub warnings: Vec<String>,
}

/// Split-R̂ above this is a warning. Vehtari et al. (2021) ask for 1.01 with long chains;
/// here many short chains run side by side (200 chains of 50 kept draws by default), whose
/// R̂ estimate itself scatters by about ±0.01 when the chains do agree, so 1.01 would flag
/// well-mixed runs; 1.05 (Gelman et al.'s older rule) separates them from runs that did not mix.
pub const RHAT_WARNING: f64 = 1.05;

/// An effective sample size below this share of the draws is a warning.
pub const ESS_SHARE_WARNING: f64 = 0.1;

/// Warnings about a run: R̂ above [`RHAT_WARNING`], an effective sample size below
/// [`ESS_SHARE_WARNING`] of the `n` draws, divergent transitions. Where R̂ is high because
/// the chains sit in separate modes (two groups of chains by their means, the split
/// explaining nearly all of R̂'s excess: two_moons' crescents), the warning says so: the
/// draws are then a mixture whose weights come from the resampled starts, not from mixing;
/// it also says whether the chains within each mode agree.
pub fn mixing_warnings(
    names: &[String],
    per_chain: &dyn Fn(usize) -> Vec<Vec<f64>>,
    rhat: &[f64],
    ess: &[f64],
    n: usize,
    divergences: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let remedies = "more warm-up (`with_warmup`), more thinning (`with_thin`), more chains, or NUTS \
                    (`McmcConfig::nuts()`)";
    let high: Vec<usize> = (0..rhat.len()).filter(|&j| rhat[j] > RHAT_WARNING || !rhat[j].is_finite()).collect();
    if !high.is_empty() {
        let list = high.iter().map(|&j| format!("{} {:.3}", names[j], rhat[j])).collect::<Vec<_>>().join(", ");
        let within: Option<Vec<f64>> = high.iter().map(|&j| mode_split(&per_chain(j), rhat[j])).collect();
        match within.map(|w| w.into_iter().fold(1.0, f64::max)) {
            Some(w) => {
                let mut msg = format!(
                    "R-hat above {RHAT_WARNING} ({list}) because the chains split into separate modes: each chain \
                     stays in one, and the modes' weights come from the resampled starts (10,000 prior draws by \
                     default: raise `ChainInit::Resample {{ pool }}` to weigh them better), not from moving \
                     between them"
                );
                if w > RHAT_WARNING {
                    msg += &format!(
                        "; within the modes R-hat is still {w:.3}, so the chains have not converged there either: \
                         try {remedies}"
                    );
                }
                out.push(msg);
            }
            None => {
                out.push(format!("R-hat above {RHAT_WARNING} ({list}): the chains have not converged; try {remedies}"))
            }
        }
    }
    let low: Vec<usize> = (0..ess.len()).filter(|&j| ess[j] < ESS_SHARE_WARNING * n as f64).collect();
    if !low.is_empty() {
        let list = low.iter().map(|&j| format!("{} {:.0}", names[j], ess[j])).collect::<Vec<_>>().join(", ");
        out.push(format!(
            "effective sample size below {:.0}% of the {n} draws ({list}): the draws are strongly \
             correlated; try {remedies}",
            100.0 * ESS_SHARE_WARNING
        ));
    }
    if divergences > 0 {
        out.push(format!(
            "{divergences} divergent transitions: NUTS could not follow the posterior everywhere (a funnel, a \
             boundary of the support); raise `target_accept` towards 0.95, or reparametrise"
        ));
    }
    out
}

/// For chains of split-R̂ `rhat`: split into two groups by the largest gap between sorted
/// chain means (1-D two-means' boundary), the larger of the groups' R̂ when the split
/// explains at least 90% of R̂'s excess over 1 (separate modes), `None` otherwise (chains
/// that have not converged, spread without a gap).
fn mode_split(chains: &[Vec<f64>], rhat: f64) -> Option<f64> {
    if chains.len() < 4 || !rhat.is_finite() {
        return None;
    }
    let means: Vec<f64> = chains.iter().map(|c| c.iter().sum::<f64>() / c.len().max(1) as f64).collect();
    let mut sorted: Vec<(f64, usize)> = means.iter().copied().zip(0..).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let cut = (1..sorted.len())
        .max_by(|&a, &b| (sorted[a].0 - sorted[a - 1].0).total_cmp(&(sorted[b].0 - sorted[b - 1].0)))?;
    let group = |range: std::ops::Range<usize>| -> Vec<Vec<f64>> {
        sorted[range].iter().map(|&(_, c)| chains[c].clone()).collect()
    };
    let (a, b) = (group(0..cut), group(cut..sorted.len()));
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let within = diagnostics::split_rhat(&a).max(diagnostics::split_rhat(&b));
    (within - 1.0 <= 0.1 * (rhat - 1.0)).then_some(within)
}

/// The batched log target a [`Transition`] moves chains on: the potential seen in the
/// prior's unconstrained space, with a budget of evaluations (rows) that ends the run with
/// [`Error::McmcBudget`] when spent.
pub struct Target<'a> {
    potential: &'a dyn Potential,
    dim: usize,
    used: usize,
    budget: usize,
}

impl<'a> Target<'a> {
    /// Evaluates rows of `z` (chains × dim, unconstrained space); an error when the budget
    /// is exhausted.
    ///
    /// # Errors
    /// [`Error::McmcBudget`]; the potential's errors.
    pub fn eval(&mut self, z: &[f64]) -> Result<Vec<f64>> {
        let rows = z.len() / self.dim;
        if self.used + rows > self.budget {
            return Err(Error::McmcBudget { evaluations: self.used, budget: self.budget });
        }
        self.used += rows;
        self.potential.log_potential(z)
    }

    /// Evaluates rows of `z` with their gradients (each row counts as one evaluation).
    ///
    /// # Errors
    /// As [`Target::eval`].
    pub fn eval_grad(&mut self, z: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let rows = z.len() / self.dim;
        if self.used + rows > self.budget {
            return Err(Error::McmcBudget { evaluations: self.used, budget: self.budget });
        }
        self.used += rows;
        self.potential.log_potential_grad(z)
    }

    /// Number of coordinates of one chain.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("dim", &self.dim)
            .field("used", &self.used)
            .field("budget", &self.budget)
            .finish()
    }
}

/// One MCMC step of every chain on a batched target: the seam for bringing a sampler
/// ([`mcmc_with`]). Slice sampling and Metropolis–Hastings implement it.
pub trait Transition {
    /// Moves all chains one sweep: `z` holds their positions (`chains × dim`, unconstrained
    /// space) and `f` their log targets; both are updated in place. `rngs` has one generator
    /// per chain (use chain `c`'s for chain `c`, so that results do not depend on threads);
    /// `tune` is true during warm-up, when the transition may adapt.
    ///
    /// # Errors
    /// The target's errors (its budget).
    fn sweep(
        &mut self,
        target: &mut Target,
        z: &mut [f64],
        f: &mut [f64],
        rngs: &mut [SimRng],
        tune: bool,
    ) -> Result<()>;
}

/// Draws `n` samples from the density proportional to `exp(potential)` over `prior`'s
/// support by MCMC in its unconstrained space.
///
/// # Errors
/// [`Error::Config`] for invalid settings or when no starting point has a finite potential;
/// [`Error::McmcBudget`] when the evaluation budget runs out; the potential's errors.
pub fn mcmc<P: Prior, T: Potential>(prior: &P, potential: &T, n: usize, config: &McmcConfig) -> Result<McmcRun> {
    run(prior, potential, n, config, None, None)
}

/// MCMC as [`mcmc`], with chains started from `pool` (resampled by importance weight)
/// where the prior cannot start them: with `config.init` resampling prior draws, the prior's
/// pool is still used when its importance weights' effective sample size reaches 20 (it
/// weighs separate modes by their mass afresh, where the pool carries over an earlier
/// posterior's weights), and `pool` below that (a posterior too small for prior draws to
/// reach); with [`ChainInit::Prior`], `pool` always.
///
/// # Errors
/// As [`mcmc`]; [`Error::ShapeMismatch`] for a pool whose points and densities disagree;
/// [`Error::NoFinitePotential`] when no point of the pool has a finite weight.
pub fn mcmc_from<P: Prior, T: Potential>(
    prior: &P,
    potential: &T,
    n: usize,
    config: &McmcConfig,
    pool: &StartPool,
) -> Result<McmcRun> {
    pool.check(prior.dim())?;
    run(prior, potential, n, config, None, Some(pool))
}

/// MCMC as [`mcmc`], with a user's [`Transition`] instead of `config.method` (the other
/// settings apply: chains, warm-up, thinning, initialisation, seed, budget).
///
/// # Errors
/// As [`mcmc`].
pub fn mcmc_with<P: Prior, T: Potential>(
    prior: &P,
    potential: &T,
    n: usize,
    config: &McmcConfig,
    transition: &mut dyn Transition,
) -> Result<McmcRun> {
    run(prior, potential, n, config, Some(transition), None)
}

fn run<P: Prior, T: Potential>(
    prior: &P,
    potential: &T,
    n: usize,
    config: &McmcConfig,
    user: Option<&mut dyn Transition>,
    pool: Option<&StartPool>,
) -> Result<McmcRun> {
    config.validate()?;
    let start = Instant::now();
    let unconstrained = Unconstrained::new(prior, potential)?;
    let d = prior.dim();
    let chains = config.chains;
    let mut target = Target { potential: &unconstrained, dim: d, used: 0, budget: config.max_evaluations };
    let theta0 = match pool {
        // The prior's pool where it weighs the modes well enough, the given pool otherwise.
        Some(pool) => match initial_points(prior, potential, chains, config, &mut target, MIN_PRIOR_POOL_ESS)? {
            Some(theta) => theta,
            None => pool_points(potential, d, chains, config, pool, &mut target)?,
        },
        None => initial_points(prior, potential, chains, config, &mut target, 0.0)?
            .ok_or(Error::NoFinitePotential { what: "starting point", draws: 0 })?,
    };
    let z = unconstrained.unconstrain(&theta0)?;
    let f = target.eval(&z)?;
    if let Some(c) = f.iter().position(|v| !v.is_finite()) {
        return Err(Error::NoFinitePotential { what: "chain's starting point", draws: c + 1 });
    }
    let mut rngs: Vec<SimRng> = (0..chains).map(|c| stream_rng(config.seed, 0x6d63_6d63_0000 + c as u64)).collect();
    let per_chain = n.div_ceil(chains);
    // The draws must fit in memory, and the number of sweeps in a usize.
    crate::alloc::with_capacity::<f64>(n, d, "MCMC samples")?;
    let sweeps = per_chain
        .checked_mul(config.thin)
        .and_then(|s| s.checked_add(config.warmup))
        .ok_or_else(|| Error::TooLarge { what: "MCMC sweeps".into(), rows: per_chain, cols: config.thin })?;
    let bar = progress_bar(config.progress, sweeps as u64);
    let result = match (user, config.method) {
        (Some(transition), _) => sweep_chains(transition, &mut target, z, f, &mut rngs, config, per_chain, &bar),
        (None, McmcMethod::Nuts { max_depth, target_accept }) => {
            let settings =
                nuts::NutsSettings { warmup: config.warmup, thin: config.thin, per_chain, max_depth, target_accept };
            nuts::run(&mut target, &z, &f, &mut rngs, &settings, |it| bar.set_position(it as u64))
                .map(|r| (r.kept, r.divergences))
        }
        (None, McmcMethod::Slice) => {
            sweep_chains(&mut slice::Slice::new(&z, chains, d), &mut target, z, f, &mut rngs, config, per_chain, &bar)
        }
        (None, McmcMethod::Mh) => sweep_chains(
            &mut mh::Mh::new(&z, chains, d, config.warmup),
            &mut target,
            z,
            f,
            &mut rngs,
            config,
            per_chain,
            &bar,
        ),
    };
    let (kept, divergences) = match result {
        Ok(r) => r,
        Err(e) => {
            bar.abandon();
            return Err(e);
        }
    };
    bar.finish_and_clear();
    let theta: Vec<Vec<f64>> =
        kept.iter().map(|zs| unconstrained.constrain(zs).map(|(t, _)| t)).collect::<Result<_>>()?;
    let per_param = |j: usize| -> Vec<Vec<f64>> {
        (0..chains).map(|c| theta.iter().map(|sweep| sweep[c * d + j]).collect()).collect()
    };
    let rhat: Vec<f64> = (0..d).map(|j| diagnostics::split_rhat(&per_param(j))).collect();
    let ess: Vec<f64> = (0..d).map(|j| diagnostics::effective_sample_size(&per_param(j))).collect();
    let names = prior.names();
    let warnings = mixing_warnings(&names, &per_param, &rhat, &ess, n, divergences);
    if crate::progress::shows(config.progress) {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }
    let mut values: Vec<f64> = theta.into_iter().flatten().collect();
    values.truncate(n * d);
    Ok(McmcRun {
        samples: Samples { values, names },
        rhat,
        ess,
        evaluations: target.used,
        divergences,
        seconds: start.elapsed().as_secs_f64(),
        warnings,
    })
}

/// Runs a sweep-based transition (slice, MH): warm-up, then every `thin`-th sweep kept.
#[allow(clippy::too_many_arguments)]
fn sweep_chains(
    transition: &mut dyn Transition,
    target: &mut Target,
    mut z: Vec<f64>,
    mut f: Vec<f64>,
    rngs: &mut [SimRng],
    config: &McmcConfig,
    per_chain: usize,
    bar: &ProgressBar,
) -> Result<(Vec<Vec<f64>>, usize)> {
    // Kept draws, chain-major per sweep: kept[s] holds all chains at kept sweep s.
    let mut kept: Vec<Vec<f64>> = Vec::with_capacity(per_chain);
    for s in 0..config.warmup + per_chain * config.thin {
        let tune = s < config.warmup;
        transition.sweep(target, &mut z, &mut f, rngs, tune)?;
        if !tune && (s - config.warmup + 1).is_multiple_of(config.thin) {
            kept.push(z.clone());
        }
        bar.inc(1);
    }
    Ok((kept, 0))
}

/// The standard deviation of each coordinate over the chains' points `z` (`chains × dim`),
/// 1 where they all agree: the samplers' initial step sizes.
pub(crate) fn spread(z: &[f64], chains: usize, dim: usize) -> Vec<f64> {
    (0..dim)
        .map(|j| {
            let mean = (0..chains).map(|c| z[c * dim + j]).sum::<f64>() / chains as f64;
            let var = (0..chains).map(|c| (z[c * dim + j] - mean).powi(2)).sum::<f64>() / chains.max(2) as f64;
            let sd = var.sqrt();
            if sd.is_finite() && sd > 1e-8 { sd } else { 1.0 }
        })
        .collect()
}

/// The effective sample size of the prior pool's importance weights from which chains start
/// there even when given a [`StartPool`]: the prior's pool weighs separate modes by their
/// mass afresh (an earlier posterior's draws carry its mode weights over), and only below
/// this has it no point near the posterior.
const MIN_PRIOR_POOL_ESS: f64 = 20.0;

/// Starting points, one per chain, in the prior's space; `None` when the pool's importance
/// weights ([`ChainInit::Resample`]) have an effective sample size below `min_ess`.
fn initial_points<P: Prior, T: Potential>(
    prior: &P,
    potential: &T,
    chains: usize,
    config: &McmcConfig,
    target: &mut Target,
    min_ess: f64,
) -> Result<Option<Vec<f64>>> {
    let d = prior.dim();
    let mut rng = stream_rng(config.seed, 0x696e_6974);
    let mut draw = |m: usize, target: &mut Target| -> Result<(Vec<f64>, Vec<f64>)> {
        let mut theta = vec![0.0; m * d];
        crate::model::sample_rows(prior, &mut rng, &mut theta)?;
        if target.used + m > target.budget {
            return Err(Error::McmcBudget { evaluations: target.used, budget: target.budget });
        }
        target.used += m;
        let lp = potential.log_potential(&theta)?;
        // Importance weight: potential − log prior (the likelihood, for a prior proposal).
        let logw = theta
            .chunks_exact(d)
            .zip(lp)
            .map(|(row, l)| {
                let prior_lp = prior.log_prob_flat(row)?;
                Ok(if prior_lp.is_finite() { l - prior_lp } else { f64::NEG_INFINITY })
            })
            .collect::<Result<Vec<f64>>>()?;
        Ok((theta, logw))
    };
    let none = |m: usize| Error::NoFinitePotential { what: "starting point", draws: m };
    let mut out = Vec::with_capacity(chains * d);
    match config.init {
        ChainInit::Prior if min_ess > 0.0 => return Ok(None),
        ChainInit::Prior => {
            // Each chain takes the first of its prior draws with a finite potential.
            for _ in 0..chains {
                let (theta, logw) = draw(100, target)?;
                let i = logw.iter().position(|l| l.is_finite()).ok_or_else(|| none(100))?;
                out.extend_from_slice(&theta[i * d..(i + 1) * d]);
            }
        }
        ChainInit::Resample { pool } => {
            let (theta, logw) = draw(pool, target)?;
            if importance_ess(&logw) < min_ess {
                return Ok(None);
            }
            for _ in 0..chains {
                let i = pick_weighted(&logw, &mut rng).ok_or_else(|| none(pool))?;
                out.extend_from_slice(&theta[i * d..(i + 1) * d]);
            }
        }
    }
    Ok(Some(out))
}

/// The effective sample size `(Σw)² / Σw²` of weights `exp(logw)` (0 when none is positive).
pub(crate) fn importance_ess(logw: &[f64]) -> f64 {
    let max = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return 0.0;
    }
    let (sum, sq) = logw.iter().map(|l| (l - max).exp()).fold((0.0, 0.0), |(s, q), w| (s + w, q + w * w));
    sum * sum / sq
}

/// Starting points resampled from `pool` by importance weight `potential − log_density`.
fn pool_points<T: Potential>(
    potential: &T,
    d: usize,
    chains: usize,
    config: &McmcConfig,
    pool: &StartPool,
    target: &mut Target,
) -> Result<Vec<f64>> {
    let m = pool.log_density.len();
    if target.used + m > target.budget {
        return Err(Error::McmcBudget { evaluations: target.used, budget: target.budget });
    }
    target.used += m;
    let logw: Vec<f64> = potential
        .log_potential(&pool.theta)?
        .into_iter()
        .zip(&pool.log_density)
        .map(|(l, q)| if l.is_finite() && q.is_finite() { l - q } else { f64::NEG_INFINITY })
        .collect();
    let mut rng = stream_rng(config.seed, 0x696e_6974);
    let mut out = Vec::with_capacity(chains * d);
    for _ in 0..chains {
        let i = pick_weighted(&logw, &mut rng)
            .ok_or(Error::NoFinitePotential { what: "starting point in the chain start pool", draws: m })?;
        out.extend_from_slice(&pool.theta[i * d..(i + 1) * d]);
    }
    Ok(out)
}

/// Index drawn with probability ∝ `exp(logw)`; `None` when no weight is positive.
fn pick_weighted(logw: &[f64], rng: &mut SimRng) -> Option<usize> {
    let max = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return None;
    }
    let w: Vec<f64> = logw.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, wi) in w.iter().enumerate() {
        u -= wi;
        if u <= 0.0 && *wi > 0.0 {
            return Some(i);
        }
    }
    w.iter().rposition(|&wi| wi > 0.0)
}

fn progress_bar(show: bool, len: u64) -> ProgressBar {
    crate::progress::bar(show, Some(len), "MCMC [{elapsed_precise}] {bar:30} {pos}/{len} sweeps", true)
}
