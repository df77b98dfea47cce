//! The probability paths a vector field learns, in z-scored θ: flow matching's straight
//! paths (Lipman et al. 2023) and the diffusions of score-based models (Song et al. 2021:
//! variance exploding, variance preserving, sub-variance preserving), with their losses and
//! the velocity of the ODE whose solution carries the base to the posterior.
//!
//! The score parametrisation follows `sbi`'s: the network sees θ_t divided by the marginal
//! standard deviation it would have for standard normal θ, and the time through the noise
//! level σ(t); the score is `−(m(t)/σ(t))·net − θ_t / a(t)²`, exact for Gaussian θ when the
//! network outputs zero.

use candle_core::{Device, Tensor};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{VectorFieldNet, normal_tensor};
use crate::error::{Error, Result};
use crate::rng::SimRng;

/// Flow matching's probability path and the prior of its training times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowMatchingConfig {
    /// The noise left at t = 0 of the path, σ_min (10⁻³, as `sbi`).
    pub sigma_min: f64,
    /// The time prior's exponent α (4; `sbi`: 0, uniform): training times are drawn as
    /// `t = 1 − u^{1/(1+α)}` (u uniform), denser towards the posterior's end (t = 0) for
    /// α > 0 (Wildberger et al. 2023's power-law prior, `dingo`'s `time_prior_exponent`).
    #[serde(default)]
    pub time_prior_exponent: f64,
    /// The share of training times drawn uniformly instead (½; `sbi`: all of them). The
    /// power law alone trains the base's end (t → 1) rarely: exponent 4 alone gave C2ST
    /// about 0.61 on sbibm gaussian_linear against 0.547 half and half, and exponent 2 alone
    /// 0.72 nats of density error on its closed form against 0.50 (README).
    #[serde(default)]
    pub uniform_share: f64,
}

impl Default for FlowMatchingConfig {
    fn default() -> Self {
        FlowMatchingConfig { sigma_min: 1e-3, time_prior_exponent: 4.0, uniform_share: 0.5 }
    }
}

impl FlowMatchingConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] for σ_min outside [0, 1), a negative or infinite exponent, or a
    /// uniform share outside [0, 1].
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.sigma_min) {
            return Err(Error::Config(format!("σ_min must be in [0, 1), got {}", self.sigma_min)));
        }
        if !(self.time_prior_exponent >= 0.0 && self.time_prior_exponent.is_finite()) {
            return Err(Error::Config(format!(
                "the time prior's exponent must be finite and ≥ 0, got {}",
                self.time_prior_exponent
            )));
        }
        if !(0.0..=1.0).contains(&self.uniform_share) {
            return Err(Error::Config(format!(
                "the uniform share of times must be in [0, 1], got {}",
                self.uniform_share
            )));
        }
        Ok(())
    }
}

/// The stochastic differential equation that noises θ (Song et al. 2021), as `sbi` defines
/// them for t in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Sde {
    /// Variance exploding: `θ_t = θ + σ(t) ε`, `σ(t) = σ_min (σ_max/σ_min)^t` (SMLD/NCSN).
    Ve {
        /// The smallest noise level (10⁻⁴).
        sigma_min: f64,
        /// The largest noise level (10): θ_1 is about N(0, σ_max²).
        sigma_max: f64,
    },
    /// Variance preserving: `dθ = −½β(t) θ dt + √β(t) dW`, β linear from β_min to β_max
    /// (DDPM).
    Vp {
        /// β at t = 0 (0.01).
        beta_min: f64,
        /// β at t = 1 (10).
        beta_max: f64,
    },
    /// Sub-variance preserving: VP's drift with a smaller diffusion, whose marginal variance
    /// stays below VP's.
    SubVp {
        /// β at t = 0 (0.01).
        beta_min: f64,
        /// β at t = 1 (10).
        beta_max: f64,
    },
}

/// How the denoising score matching loss weights the times (`sbi`'s `weight_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScoreWeighting {
    /// λ(t) = g(t)², the diffusion squared: the loss bounds the negative log-likelihood
    /// (Song et al. 2021b; `sbi`'s default).
    MaxLikelihood,
    /// λ(t) = 1.
    Identity,
    /// λ(t) = σ(t)², the noise variance (Song et al. 2021's choice for their experiments).
    Variance,
}

/// Score-based diffusion (`sbi`'s NPSE defaults with `sde_type = "ve"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreConfig {
    /// The noising SDE.
    pub sde: Sde,
    /// The loss's weighting over time.
    pub weighting: ScoreWeighting,
    /// The earliest time trained on and sampled to (10⁻³ for VE and VP, 10⁻² for sub-VP):
    /// the loss's variance grows without bound as t → 0.
    pub t_min: f64,
    /// The time of the base distribution (1).
    pub t_max: f64,
    /// Subtracts a zero-mean control variate from the loss where σ(t) < 0.3 (`sbi`'s
    /// default; Jolicoeur-Martineau et al. 2021): the loss's variance at small noise falls,
    /// at one more network pass per training step.
    pub control_variate: bool,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig::ve()
    }
}

impl ScoreConfig {
    /// The variance exploding SDE with `sbi`'s settings (σ from 10⁻⁴ to 10, t_min 10⁻³).
    pub fn ve() -> Self {
        ScoreConfig {
            sde: Sde::Ve { sigma_min: 1e-4, sigma_max: 10.0 },
            weighting: ScoreWeighting::MaxLikelihood,
            t_min: 1e-3,
            t_max: 1.0,
            control_variate: true,
        }
    }

    /// The variance preserving SDE with `sbi`'s settings (β from 0.01 to 10, t_min 10⁻³).
    pub fn vp() -> Self {
        ScoreConfig { sde: Sde::Vp { beta_min: 0.01, beta_max: 10.0 }, ..ScoreConfig::ve() }
    }

    /// The sub-variance preserving SDE with `sbi`'s settings (β from 0.01 to 10, t_min
    /// 10⁻²).
    pub fn sub_vp() -> Self {
        ScoreConfig { sde: Sde::SubVp { beta_min: 0.01, beta_max: 10.0 }, t_min: 1e-2, ..ScoreConfig::ve() }
    }

    /// Sets the loss's weighting.
    pub fn with_weighting(mut self, w: ScoreWeighting) -> Self {
        self.weighting = w;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] for times outside 0 < t_min < t_max ≤ 1, or noise levels that are
    /// not positive and increasing.
    pub fn validate(&self) -> Result<()> {
        if !(self.t_min > 0.0 && self.t_min < self.t_max && self.t_max <= 1.0) {
            return Err(Error::Config(format!(
                "score-based diffusion needs 0 < t_min < t_max ≤ 1, got {} and {}",
                self.t_min, self.t_max
            )));
        }
        let (lo, hi, what) = match self.sde {
            Sde::Ve { sigma_min, sigma_max } => (sigma_min, sigma_max, "σ"),
            Sde::Vp { beta_min, beta_max } | Sde::SubVp { beta_min, beta_max } => (beta_min, beta_max, "β"),
        };
        if !(lo > 0.0 && lo < hi && hi.is_finite()) {
            return Err(Error::Config(format!("the SDE needs 0 < {what}_min < {what}_max < ∞, got {lo} and {hi}")));
        }
        Ok(())
    }

    /// `∫₀ᵗ β = β_min t + ½ (β_max − β_min) t²` for the VP family.
    fn integrated_beta(beta_min: f64, beta_max: f64, t: f64) -> f64 {
        beta_min * t + 0.5 * (beta_max - beta_min) * t * t
    }

    /// The coefficients at time `t`: `θ_t | θ ~ N(m θ, σ²)`, the drift `f = drift·θ` and the
    /// squared diffusion `g²`.
    pub(crate) fn at(&self, t: f64) -> Coefficients {
        match self.sde {
            Sde::Ve { sigma_min, sigma_max } => {
                let ratio = sigma_max / sigma_min;
                let sigma = sigma_min * ratio.powf(t);
                Coefficients { mean: 1.0, sd: sigma, drift: 0.0, g2: sigma * sigma * 2.0 * ratio.ln() }
            }
            Sde::Vp { beta_min, beta_max } => {
                let b = ScoreConfig::integrated_beta(beta_min, beta_max, t);
                let beta = beta_min + (beta_max - beta_min) * t;
                Coefficients { mean: (-0.5 * b).exp(), sd: (-(-b).exp_m1()).sqrt(), drift: -0.5 * beta, g2: beta }
            }
            Sde::SubVp { beta_min, beta_max } => {
                let b = ScoreConfig::integrated_beta(beta_min, beta_max, t);
                let beta = beta_min + (beta_max - beta_min) * t;
                Coefficients {
                    mean: (-0.5 * b).exp(),
                    sd: -(-b).exp_m1(),
                    drift: -0.5 * beta,
                    g2: beta * -(-2.0 * b).exp_m1(),
                }
            }
        }
    }

    fn weight(&self, c: &Coefficients) -> f64 {
        match self.weighting {
            ScoreWeighting::MaxLikelihood => c.g2,
            ScoreWeighting::Identity => 1.0,
            ScoreWeighting::Variance => c.sd * c.sd,
        }
    }
}

/// A score SDE's coefficients at one time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Coefficients {
    /// The mean factor m(t): `E[θ_t | θ] = m θ`.
    pub mean: f64,
    /// The noise's standard deviation σ(t).
    pub sd: f64,
    /// The drift's factor: `f(θ, t) = drift · θ`.
    pub drift: f64,
    /// The squared diffusion g(t)².
    pub g2: f64,
}

impl Coefficients {
    /// The marginal standard deviation of θ_t for standard normal θ, `√(m² + σ²)`.
    fn marginal_sd(&self) -> f64 {
        (self.mean * self.mean + self.sd * self.sd).sqrt()
    }
}

/// The path a vector field estimator was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Process {
    /// Flow matching (FMPE): the network is the velocity.
    FlowMatching(FlowMatchingConfig),
    /// Denoising score matching (NPSE): the network is the score.
    Score(ScoreConfig),
}

/// A velocity `ε − θ` of z-scored θ has variance 2 per coordinate: flow matching's network
/// predicts it divided by this, so that its outputs and the loss are of order 1 (as `sbi`).
const VELOCITY_SCALE: f64 = std::f64::consts::SQRT_2;

/// Below this noise level the score loss's control variate applies (`sbi`'s threshold).
const CONTROL_VARIATE_BELOW: f64 = 0.3;

/// A `[rows, 1]` column of `f(row)`.
fn column(rows: usize, device: &Device, f: impl Fn(usize) -> f64) -> candle_core::Result<Tensor> {
    Tensor::from_vec((0..rows).map(|r| f(r) as f32).collect::<Vec<f32>>(), (rows, 1), device)
}

impl Process {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid settings of the path.
    pub fn validate(&self) -> Result<()> {
        match self {
            Process::FlowMatching(c) => c.validate(),
            Process::Score(c) => c.validate(),
        }
    }

    /// The time of the data (the posterior) and of the base.
    pub fn times(&self) -> (f64, f64) {
        match self {
            Process::FlowMatching(_) => (0.0, 1.0),
            Process::Score(c) => (c.t_min, c.t_max),
        }
    }

    /// The base distribution's standard deviation (mean 0) in z-scored θ.
    pub fn base_sd(&self) -> f64 {
        match self {
            Process::FlowMatching(c) => 1.0 + c.sigma_min,
            Process::Score(c) => c.at(c.t_max).marginal_sd(),
        }
    }

    /// The score of z-scored `theta_t` `[B, D]` at per-row times `t`, from the network.
    fn score(
        net: &VectorFieldNet,
        config: &ScoreConfig,
        theta_t: &Tensor,
        context: &Tensor,
        t: &[f64],
    ) -> candle_core::Result<Tensor> {
        let (rows, device) = (t.len(), theta_t.device());
        let c: Vec<Coefficients> = t.iter().map(|&t| config.at(t)).collect();
        let inv_a = column(rows, device, |r| 1.0 / c[r].marginal_sd())?;
        let noise = column(rows, device, |r| c[r].sd)?;
        let scale = column(rows, device, |r| c[r].mean / c[r].sd)?;
        let inv_a2 = column(rows, device, |r| 1.0 / (c[r].marginal_sd() * c[r].marginal_sd()))?;
        let out = net.forward(&theta_t.broadcast_mul(&inv_a)?, context, &noise)?;
        (out.broadcast_mul(&scale)? + theta_t.broadcast_mul(&inv_a2)?)?.neg()
    }

    /// The ODE's velocity at z-scored `theta` `[B, D]`, all rows at time `t`: flow
    /// matching's learnt velocity, or the probability flow `f − ½ g² ∇log p_t` of a score.
    pub(crate) fn velocity(
        &self,
        net: &VectorFieldNet,
        theta: &Tensor,
        context: &Tensor,
        t: f64,
    ) -> candle_core::Result<Tensor> {
        let rows = theta.dim(0)?;
        match self {
            Process::FlowMatching(_) => {
                // θ_t's marginal standard deviation for z-scored θ: √((1 − t)² + t²).
                let sd = ((1.0 - t).powi(2) + t * t + 1e-6).sqrt();
                let time = Tensor::full(t as f32, (rows, 1), theta.device())?;
                net.forward(&(theta / sd)?, context, &time)? * VELOCITY_SCALE
            }
            Process::Score(config) => {
                let c = config.at(t);
                let score = Process::score(net, config, theta, context, &vec![t; rows])?;
                (theta * c.drift)? - (score * (0.5 * c.g2))?
            }
        }
    }

    /// One Euler–Maruyama step of the reverse SDE from time `t` to `t − dt` (score only):
    /// `θ ← θ − (f − g² ∇log p_t) dt + g √dt z`.
    pub(crate) fn reverse_sde_step(
        config: &ScoreConfig,
        net: &VectorFieldNet,
        theta: &Tensor,
        context: &Tensor,
        t: f64,
        dt: f64,
        rng: &mut SimRng,
    ) -> candle_core::Result<Tensor> {
        let (rows, d) = theta.dims2()?;
        let c = config.at(t);
        let score = Process::score(net, config, theta, context, &vec![t; rows])?;
        let drift = ((theta * c.drift)? - (score * c.g2)?)?;
        let z = normal_tensor(rows, d, rng, theta.device())?;
        (theta - (drift * dt)?)? + (z * (c.g2 * dt).sqrt())?
    }

    /// One unadjusted Langevin step at time `t`: `θ ← θ + δ ∇log p_t + √(2δ) z`.
    pub(crate) fn langevin_step(
        config: &ScoreConfig,
        net: &VectorFieldNet,
        theta: &Tensor,
        context: &Tensor,
        t: f64,
        step: f64,
        rng: &mut SimRng,
    ) -> candle_core::Result<Tensor> {
        let (rows, d) = theta.dims2()?;
        let score = Process::score(net, config, theta, context, &vec![t; rows])?;
        let z = normal_tensor(rows, d, rng, theta.device())?;
        (theta + (score * step)?)? + (z * (2.0 * step).sqrt())?
    }

    /// The training loss of a batch: z-scored θ `[B, D]` and embedded context `[B, C]`;
    /// times and noise drawn from `rng`.
    pub(crate) fn loss(
        &self,
        net: &VectorFieldNet,
        theta: &Tensor,
        context: &Tensor,
        rng: &mut SimRng,
    ) -> candle_core::Result<Tensor> {
        match self {
            Process::FlowMatching(c) => flow_matching_loss(net, theta, context, c, rng),
            Process::Score(c) => score_matching_loss(net, theta, context, c, rng),
        }
    }
}

/// `b` training times from the time prior: uniform with probability `uniform_share`,
/// otherwise `1 − u^{1/(1+α)}`.
fn training_times(config: &FlowMatchingConfig, b: usize, rng: &mut SimRng) -> Vec<f64> {
    let power = 1.0 / (1.0 + config.time_prior_exponent);
    let share = config.uniform_share;
    (0..b)
        .map(|_| {
            // The second draw only for a mixture, so that a pure power law keeps its stream.
            let (u, pick) = (rng.random::<f64>(), if share > 0.0 { rng.random::<f64>() } else { 1.0 });
            if pick < share { u } else { 1.0 - u.powf(power) }
        })
        .collect()
}

/// The conditional flow-matching loss: `θ_t = (1 − t) θ + (t + σ_min) ε` with the target
/// velocity `ε − θ`.
fn flow_matching_loss(
    net: &VectorFieldNet,
    theta: &Tensor,
    context: &Tensor,
    config: &FlowMatchingConfig,
    rng: &mut SimRng,
) -> candle_core::Result<Tensor> {
    let (b, d) = theta.dims2()?;
    let t = training_times(config, b, rng);
    let device = theta.device();
    let eps = normal_tensor(b, d, rng, device)?;
    let keep = column(b, device, |r| 1.0 - t[r])?;
    let noise = column(b, device, |r| t[r] + config.sigma_min)?;
    let theta_t = (theta.broadcast_mul(&keep)? + eps.broadcast_mul(&noise)?)?;
    let inv_sd = column(b, device, |r| 1.0 / ((1.0 - t[r]).powi(2) + t[r] * t[r] + 1e-6).sqrt())?;
    let time = column(b, device, |r| t[r])?;
    let target = ((eps - theta)? / VELOCITY_SCALE)?;
    (net.forward(&theta_t.broadcast_mul(&inv_sd)?, context, &time)? - target)?.sqr()?.mean_all()
}

/// Denoising score matching: `θ_t = m θ + σ ε` with the target score `−ε/σ`, weighted by
/// λ(t), times uniform in [t_min, t_max]; summed over parameters, averaged over rows (as
/// `sbi`), with the control variate where σ < 0.3 when enabled.
fn score_matching_loss(
    net: &VectorFieldNet,
    theta: &Tensor,
    context: &Tensor,
    config: &ScoreConfig,
    rng: &mut SimRng,
) -> candle_core::Result<Tensor> {
    let (b, d) = theta.dims2()?;
    let device = theta.device();
    let t: Vec<f64> = (0..b).map(|_| config.t_min + (config.t_max - config.t_min) * rng.random::<f64>()).collect();
    let c: Vec<Coefficients> = t.iter().map(|&t| config.at(t)).collect();
    let eps = normal_tensor(b, d, rng, device)?;
    let mean = theta.broadcast_mul(&column(b, device, |r| c[r].mean)?)?;
    let theta_t = (&mean + eps.broadcast_mul(&column(b, device, |r| c[r].sd)?)?)?;
    let inv_sd = column(b, device, |r| 1.0 / c[r].sd)?;
    // The control variate's rows (σ < 0.3) go through the network with the noised rows,
    // in one pass.
    let cv_rows: Vec<u32> = if config.control_variate {
        (0..b as u32).filter(|&r| c[r as usize].sd < CONTROL_VARIATE_BELOW).collect()
    } else {
        Vec::new()
    };
    let (predicted, at_mean) = if cv_rows.is_empty() {
        (Process::score(net, config, &theta_t, context, &t)?, None)
    } else {
        let idx = Tensor::new(cv_rows.as_slice(), device)?;
        let times: Vec<f64> = t.iter().copied().chain(cv_rows.iter().map(|&r| t[r as usize])).collect();
        let both = Process::score(
            net,
            config,
            &Tensor::cat(&[&theta_t, &mean.index_select(&idx, 0)?], 0)?,
            &Tensor::cat(&[context, &context.index_select(&idx, 0)?], 0)?,
            &times,
        )?;
        (both.narrow(0, 0, b)?, Some((idx, both.narrow(0, b, cv_rows.len())?)))
    };
    let per_row = (&predicted + eps.broadcast_mul(&inv_sd)?)?.sqr()?.sum_keepdim(1)?;
    let weight = column(b, device, |r| config.weight(&c[r]))?;
    let loss = per_row.mul(&weight)?.mean_all()?;
    let Some((idx, at_mean)) = at_mean else { return Ok(loss) };
    // D/σ² − (2/σ) Σ ε·s(mθ) − Σ ε²/σ²: zero mean, correlated with the loss at small σ
    // (a first-order expansion of the score around the noise-free point), on the rows with
    // σ < 0.3, averaged over the whole batch.
    let (eps, inv_sd) = (eps.index_select(&idx, 0)?, inv_sd.index_select(&idx, 0)?);
    let cross = (&eps * &at_mean)?.sum_keepdim(1)?.broadcast_mul(&inv_sd)?;
    let sq = eps.sqr()?.sum_keepdim(1)?.broadcast_mul(&inv_sd.sqr()?)?;
    let constant = (inv_sd.sqr()? * d as f64)?;
    let cv = ((constant - (cross * 2.0)?)? - sq)?;
    loss + (cv.mul(&weight.index_select(&idx, 0)?)?.sum_all()? / b as f64)?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coefficients agree with the SDEs: σ(t)² solves `dσ²/dt = 2 f σ² + g²` (the
    /// variance's ODE for `dθ = f θ dt + g dW`, started from σ(0) ≈ 0) and m(t) solves
    /// `dm/dt = f m`, checked by central differences; the base is about N(0, a(1)²).
    #[test]
    fn coefficients_solve_the_moment_equations() {
        for config in [ScoreConfig::ve(), ScoreConfig::vp(), ScoreConfig::sub_vp()] {
            for t in [0.05, 0.3, 0.7, 0.95] {
                let h = 1e-6;
                let (up, down, c) = (config.at(t + h), config.at(t - h), config.at(t));
                let dm = (up.mean - down.mean) / (2.0 * h);
                assert!((dm - c.drift * c.mean).abs() < 1e-6 * (1.0 + dm.abs()), "{:?} t {t}: m' {dm}", config.sde);
                let dv = (up.sd * up.sd - down.sd * down.sd) / (2.0 * h);
                let expected = 2.0 * c.drift * c.sd * c.sd + c.g2;
                assert!(
                    (dv - expected).abs() < 1e-5 * (1.0 + dv.abs()),
                    "{:?} t {t}: v' {dv} vs {expected}",
                    config.sde
                );
            }
            assert!(config.at(0.0).sd < 1e-3);
            config.validate().unwrap();
        }
        assert!(ScoreConfig { t_min: 0.0, ..ScoreConfig::ve() }.validate().is_err());
        assert!(ScoreConfig { sde: Sde::Vp { beta_min: 1.0, beta_max: 0.5 }, ..ScoreConfig::vp() }.validate().is_err());
        assert!(FlowMatchingConfig { sigma_min: 1.5, ..Default::default() }.validate().is_err());
        assert!(FlowMatchingConfig { uniform_share: 1.5, ..Default::default() }.validate().is_err());
    }

    /// The time prior's mean is the mixture's: `w/2 + (1 − w)(1 − (1+α)/(2+α))` (the power
    /// law's `E[u^{1/(1+α)}] = (1+α)/(2+α)`), within five standard errors of 10⁵ draws, all in
    /// [0, 1]; without a uniform share the stream is the pure power law's.
    #[test]
    fn training_times_follow_the_mixture() {
        let n = 100_000;
        for (alpha, w) in [(4.0, 0.5), (0.0, 0.0), (4.0, 0.0), (2.0, 1.0)] {
            let config = FlowMatchingConfig { time_prior_exponent: alpha, uniform_share: w, ..Default::default() };
            let t = training_times(&config, n, &mut crate::rng::stream_rng(1, 2));
            assert!(t.iter().all(|t| (0.0..=1.0).contains(t)));
            let mean = t.iter().sum::<f64>() / n as f64;
            let sd = (t.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            let expected = w / 2.0 + (1.0 - w) * (1.0 - (1.0 + alpha) / (2.0 + alpha));
            assert!((mean - expected).abs() < 5.0 * sd / (n as f64).sqrt(), "α {alpha} w {w}: {mean} vs {expected}");
        }
        let pure = FlowMatchingConfig { time_prior_exponent: 4.0, uniform_share: 0.0, ..Default::default() };
        let mut rng = crate::rng::stream_rng(3, 4);
        let direct: Vec<f64> = (0..10).map(|_| 1.0 - rng.random::<f64>().powf(0.2)).collect();
        assert_eq!(training_times(&pure, 10, &mut crate::rng::stream_rng(3, 4)), direct);
    }

    /// The control variate on the rows with σ < 0.3 only, in one network pass with the
    /// noised rows, gives the loss of `sbi`'s form (a second pass over every row, masked):
    /// the same draws, the same value to f32 rounding.
    #[test]
    fn control_variate_in_one_pass_matches_the_masked_form() {
        use candle_core::Device;
        let (b, d, c) = (64, 3, 2);
        let store = crate::nn::ParamStore::new(1);
        let net = VectorFieldNet::new(store.var_builder(), d, c, &super::super::VectorFieldConfig::default()).unwrap();
        let mut rng = crate::rng::stream_rng(9, 0);
        let theta = normal_tensor(b, d, &mut rng, &Device::Cpu).unwrap();
        let context = normal_tensor(b, c, &mut rng, &Device::Cpu).unwrap();
        let config = ScoreConfig::ve();
        let fused = score_matching_loss(&net, &theta, &context, &config, &mut crate::rng::stream_rng(5, 0)).unwrap();

        let mut rng = crate::rng::stream_rng(5, 0);
        let t: Vec<f64> = (0..b).map(|_| config.t_min + (config.t_max - config.t_min) * rng.random::<f64>()).collect();
        let k: Vec<Coefficients> = t.iter().map(|&t| config.at(t)).collect();
        let eps = normal_tensor(b, d, &mut rng, &Device::Cpu).unwrap();
        let dev = &Device::Cpu;
        let mean = theta.broadcast_mul(&column(b, dev, |r| k[r].mean).unwrap()).unwrap();
        let theta_t = (&mean + eps.broadcast_mul(&column(b, dev, |r| k[r].sd).unwrap()).unwrap()).unwrap();
        let inv_sd = column(b, dev, |r| 1.0 / k[r].sd).unwrap();
        let predicted = Process::score(&net, &config, &theta_t, &context, &t).unwrap();
        let per_row =
            (&predicted + eps.broadcast_mul(&inv_sd).unwrap()).unwrap().sqr().unwrap().sum_keepdim(1).unwrap();
        let at_mean = Process::score(&net, &config, &mean, &context, &t).unwrap();
        let cross = (&eps * &at_mean).unwrap().sum_keepdim(1).unwrap().broadcast_mul(&inv_sd).unwrap();
        let sq = eps.sqr().unwrap().sum_keepdim(1).unwrap().broadcast_mul(&inv_sd.sqr().unwrap()).unwrap();
        let constant = column(b, dev, |r| d as f64 / (k[r].sd * k[r].sd)).unwrap();
        let cv = ((constant - (cross * 2.0).unwrap()).unwrap() - sq).unwrap();
        let mask = column(b, dev, |r| if k[r].sd < CONTROL_VARIATE_BELOW { 1.0 } else { 0.0 }).unwrap();
        assert!(k.iter().any(|k| k.sd < CONTROL_VARIATE_BELOW) && k.iter().any(|k| k.sd >= CONTROL_VARIATE_BELOW));
        let reference = (per_row + (cv * mask).unwrap()).unwrap();
        let weight = column(b, dev, |r| config.weight(&k[r])).unwrap();
        let reference = reference.mul(&weight).unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
        let fused = fused.to_scalar::<f32>().unwrap();
        assert!((fused - reference).abs() <= 1e-5 * reference.abs().max(1.0), "{fused} vs {reference}");
    }
}
