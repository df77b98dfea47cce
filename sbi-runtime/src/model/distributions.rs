//! Prior distributions: sampling, log density and support.
//!
//! Every distribution implements [`PriorDistribution`]; the built-ins have fallible
//! constructors (`Normal::new(0.0, -1.0)` is an [`Error::InvalidDistribution`]) and, inside
//! `sample!`, short forms such as `Normal(0.0, 1.0)`. Parameterisations follow
//! `torch.distributions` (so priors port from `sbi` unchanged): `Normal(mean, std)`,
//! `LogNormal(mu, sigma)` of the underlying normal, `Gamma(shape, rate)`,
//! `Exponential(rate)`, `HalfNormal(scale)`, `Beta(a, b)`, `Uniform(low, high)`,
//! `MultivariateNormal(mean, covariance)`.

use rand::{Rng, RngExt};
use rand_distr::{Distribution as _, StandardNormal};

use crate::error::{Error, Result};
use crate::model::transforms::Support;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// A distribution usable as a prior site. Implement it to bring your own distribution.
///
/// A draw has [`dim`](PriorDistribution::dim) coordinates (1 for scalar distributions).
/// In a vector site `sample!(D; N)`, a scalar `D` gives `N` independent draws and a
/// vector `D` must have `dim() == N`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a prior distribution",
    label = "expected a distribution such as `Uniform(-1.0, 1.0)`",
    note = "implement `sbi_runtime::PriorDistribution` for your type to use it in `sample!`"
)]
pub trait PriorDistribution {
    /// Number of coordinates of one draw.
    fn dim(&self) -> usize {
        1
    }

    /// Draws one value into `out` (`out.len() == self.dim()`).
    fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]);

    /// Log density at `x` (`x.len() == self.dim()`); `-inf` outside the support.
    fn log_prob(&self, x: &[f64]) -> f64;

    /// Support of each coordinate.
    fn support(&self) -> Support;
}

/// What a `sample!` site accepts: a distribution, or the `Result` of a fallible constructor.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a prior distribution",
    label = "expected a distribution such as `Uniform(-1.0, 1.0)`",
    note = "implement `sbi_runtime::PriorDistribution` for your type to use it in `sample!`"
)]
pub trait IntoDistribution {
    /// The distribution.
    type Dist: PriorDistribution;
    /// Unwraps the distribution or returns the constructor's error.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDistribution`] for arguments outside the domain above.
    fn into_distribution(self) -> Result<Self::Dist>;
}

impl<D: PriorDistribution> IntoDistribution for D {
    type Dist = D;
    fn into_distribution(self) -> Result<D> {
        Ok(self)
    }
}

impl<D: PriorDistribution> IntoDistribution for Result<D> {
    type Dist = D;
    fn into_distribution(self) -> Result<D> {
        self
    }
}

fn check(ok: bool, name: &'static str, reason: impl FnOnce() -> String) -> Result<()> {
    if ok { Ok(()) } else { Err(Error::invalid_distribution(name, reason())) }
}

fn positive(name: &'static str, what: &str, v: f64) -> Result<()> {
    check(v > 0.0 && v.is_finite(), name, || format!("{what} must be positive and finite, got {v}"))
}

fn finite(name: &'static str, what: &str, v: f64) -> Result<()> {
    check(v.is_finite(), name, || format!("{what} must be finite, got {v}"))
}

/// Implements `PriorDistribution` for a scalar distribution from three expressions.
macro_rules! scalar_distribution {
    ($ty:ty, |$s:ident, $rng:ident| $sample:expr, |$s2:ident, $x:ident| $log_prob:expr, |$s3:ident| $support:expr) => {
        impl PriorDistribution for $ty {
            fn sample_into<R: Rng + ?Sized>(&self, $rng: &mut R, out: &mut [f64]) {
                let $s = self;
                out[0] = $sample;
            }
            fn log_prob(&self, x: &[f64]) -> f64 {
                let $s2 = self;
                let $x = x[0];
                if $x.is_nan() {
                    return f64::NAN;
                }
                $log_prob
            }
            fn support(&self) -> Support {
                let $s3 = self;
                $support
            }
        }
    };
}

/// Uniform on `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uniform {
    low: f64,
    high: f64,
}

impl Uniform {
    /// Uniform on `[low, high]`; needs finite `low < high`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDistribution`] for arguments outside the domain above.
    pub fn new(low: f64, high: f64) -> Result<Self> {
        finite("Uniform", "low", low)?;
        finite("Uniform", "high", high)?;
        check(low < high, "Uniform", || format!("low must be below high, got low = {low}, high = {high}"))?;
        check((high - low).is_finite(), "Uniform", || {
            format!("the width high − low must be finite, got low = {low}, high = {high}")
        })?;
        Ok(Uniform { low, high })
    }
    /// Lower bound.
    pub fn low(&self) -> f64 {
        self.low
    }
    /// Upper bound.
    pub fn high(&self) -> f64 {
        self.high
    }
}

scalar_distribution!(
    Uniform,
    |s, rng| s.low + (s.high - s.low) * rng.random::<f64>(),
    |s, x| if x >= s.low && x <= s.high { -(s.high - s.low).ln() } else { f64::NEG_INFINITY },
    |s| Support::Interval(s.low, s.high)
);

/// Normal with mean and standard deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normal {
    mean: f64,
    std: f64,
}

impl Normal {
    /// Normal(mean, std); needs a finite mean and `std > 0`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDistribution`] for arguments outside the domain above.
    pub fn new(mean: f64, std: f64) -> Result<Self> {
        finite("Normal", "mean", mean)?;
        positive("Normal", "std", std)?;
        Ok(Normal { mean, std })
    }
}

scalar_distribution!(
    Normal,
    |s, rng| s.mean + s.std * rng.sample::<f64, _>(StandardNormal),
    |s, x| {
        let u = (x - s.mean) / s.std;
        -0.5 * u * u - s.std.ln() - 0.5 * LN_2PI
    },
    |_s| Support::Real
);

/// Log-normal: `exp(N(mu, sigma))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    mu: f64,
    sigma: f64,
}

impl LogNormal {
    /// LogNormal(mu, sigma) of the underlying normal; needs a finite `mu` and `sigma > 0`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDistribution`] for arguments outside the domain above.
    pub fn new(mu: f64, sigma: f64) -> Result<Self> {
        finite("LogNormal", "mu", mu)?;
        positive("LogNormal", "sigma", sigma)?;
        Ok(LogNormal { mu, sigma })
    }
}

scalar_distribution!(
    LogNormal,
    |s, rng| (s.mu + s.sigma * rng.sample::<f64, _>(StandardNormal)).exp(),
    |s, x| if x > 0.0 {
        let l = x.ln();
        let u = (l - s.mu) / s.sigma;
        -0.5 * u * u - s.sigma.ln() - 0.5 * LN_2PI - l
    } else {
        f64::NEG_INFINITY
    },
    |_s| Support::GreaterThan(0.0)
);

/// Gamma with shape `k` and rate `β` (mean `k/β`), as `torch.distributions.Gamma`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gamma {
    shape: f64,
    rate: f64,
    sampler: rand_distr::Gamma<f64>,
    log_norm: f64,
}

impl Gamma {
    /// Gamma(shape, rate); needs `shape > 0`, `rate > 0`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDistribution`] for arguments outside the domain above.
    pub fn new(shape: f64, rate: f64) -> Result<Self> {
        positive("Gamma", "shape", shape)?;
        positive("Gamma", "rate", rate)?;
        let sampler = rand_distr::Gamma::new(shape, 1.0 / rate)
            .map_err(|e| Error::invalid_distribution("Gamma", e.to_string()))?;
        Ok(Gamma { shape, rate, sampler, log_norm: shape * rate.ln() - libm::lgamma(shape) })
    }
}

scalar_distribution!(
    Gamma,
    // A small shape can draw values that round to 0, where the density is 0 or infinite:
    // the smallest positive number stands in for them, so every draw lies inside the support.
    |s, rng| s.sampler.sample(rng).max(f64::MIN_POSITIVE),
    |s, x| if x > 0.0 { s.log_norm + (s.shape - 1.0) * x.ln() - s.rate * x } else { f64::NEG_INFINITY },
    |_s| Support::GreaterThan(0.0)
);

/// Beta(a, b) on `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beta {
    a: f64,
    b: f64,
    sampler: rand_distr::Beta<f64>,
    log_norm: f64,
}

impl Beta {
    /// Beta(a, b); needs `a > 0`, `b > 0`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDistribution`] for arguments outside the domain above.
    pub fn new(a: f64, b: f64) -> Result<Self> {
        positive("Beta", "a", a)?;
        positive("Beta", "b", b)?;
        let sampler = rand_distr::Beta::new(a, b).map_err(|e| Error::invalid_distribution("Beta", e.to_string()))?;
        Ok(Beta { a, b, sampler, log_norm: libm::lgamma(a + b) - libm::lgamma(a) - libm::lgamma(b) })
    }
}

/// `(c − 1) · ln(x)` with the convention `0 · ln 0 = 0`.
fn xlogy(c: f64, x: f64) -> f64 {
    if c == 0.0 { 0.0 } else { c * x.ln() }
}

/// The largest number below 1.
const BELOW_ONE: f64 = 1.0 - f64::EPSILON / 2.0;

scalar_distribution!(
    Beta,
    // Small `a` or `b` draw values that round to exactly 0 or 1, where the density is
    // infinite: they are moved to the nearest numbers inside (0, 1).
    |s, rng| s.sampler.sample(rng).clamp(f64::MIN_POSITIVE, BELOW_ONE),
    // An endpoint where the density is infinite (a < 1 at 0, b < 1 at 1) is outside.
    |s, x| if (x == 0.0 && s.a < 1.0) || (x == 1.0 && s.b < 1.0) {
        f64::NEG_INFINITY
    } else if (0.0..=1.0).contains(&x) {
        s.log_norm + xlogy(s.a - 1.0, x) + xlogy(s.b - 1.0, 1.0 - x)
    } else {
        f64::NEG_INFINITY
    },
    |_s| Support::Interval(0.0, 1.0)
);

/// Exponential with rate `λ` (mean `1/λ`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exponential {
    rate: f64,
}

impl Exponential {
    /// Exponential(rate); needs `rate > 0`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDistribution`] for arguments outside the domain above.
    pub fn new(rate: f64) -> Result<Self> {
        positive("Exponential", "rate", rate)?;
        Ok(Exponential { rate })
    }
}

scalar_distribution!(
    Exponential,
    |s, rng| rng.sample::<f64, _>(rand_distr::Exp1) / s.rate,
    |s, x| if x >= 0.0 { s.rate.ln() - s.rate * x } else { f64::NEG_INFINITY },
    |_s| Support::GreaterThan(0.0)
);

/// Half-normal: `|N(0, scale²)|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HalfNormal {
    scale: f64,
}

impl HalfNormal {
    /// HalfNormal(scale); needs `scale > 0`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDistribution`] for arguments outside the domain above.
    pub fn new(scale: f64) -> Result<Self> {
        positive("HalfNormal", "scale", scale)?;
        Ok(HalfNormal { scale })
    }
}

scalar_distribution!(
    HalfNormal,
    |s, rng| (s.scale * rng.sample::<f64, _>(StandardNormal)).abs(),
    |s, x| if x >= 0.0 {
        let u = x / s.scale;
        std::f64::consts::LN_2 - s.scale.ln() - 0.5 * LN_2PI - 0.5 * u * u
    } else {
        f64::NEG_INFINITY
    },
    |_s| Support::GreaterThan(0.0)
);

/// Multivariate normal with full covariance.
#[derive(Debug, Clone, PartialEq)]
pub struct MultivariateNormal {
    mean: Vec<f64>,
    /// Lower Cholesky factor of the covariance, row-major `d × d`.
    chol: Vec<f64>,
    /// `Σ ln L_ii = ½ ln det Σ`.
    half_log_det: f64,
}

impl MultivariateNormal {
    /// MultivariateNormal(mean, covariance): `covariance` is given as rows (`[[f64; D]; D]`,
    /// `Vec<Vec<f64>>`, ...) and must be symmetric positive definite.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDistribution`] for arguments outside the domain above.
    pub fn new<M, R>(mean: M, covariance: R) -> Result<Self>
    where
        M: AsRef<[f64]>,
        R: IntoIterator,
        R::Item: AsRef<[f64]>,
    {
        let mean = mvn_mean(mean)?;
        let chol = spd_factor("covariance", covariance, mean.len())?;
        Ok(Self::from_factor(mean, chol))
    }

    /// MultivariateNormal from its precision matrix (the inverse covariance), as models are
    /// often written (Gaussian Markov random fields, regression priors). `precision` is given
    /// as rows and must be symmetric positive definite; it is inverted here, in f64, through
    /// its Cholesky factor.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDistribution`] for arguments outside the domain above.
    pub fn from_precision<M, R>(mean: M, precision: R) -> Result<Self>
    where
        M: AsRef<[f64]>,
        R: IntoIterator,
        R::Item: AsRef<[f64]>,
    {
        let mean = mvn_mean(mean)?;
        let d = mean.len();
        let lp = spd_factor("precision", precision, d)?;
        // Σ = P⁻¹ = L⁻ᵀ L⁻¹ with P = L Lᵀ: invert the triangular factor column by column.
        let mut linv = vec![0.0; d * d];
        for j in 0..d {
            linv[j * d + j] = 1.0 / lp[j * d + j];
            for i in j + 1..d {
                let s: f64 = (j..i).map(|k| lp[i * d + k] * linv[k * d + j]).sum();
                linv[i * d + j] = -s / lp[i * d + i];
            }
        }
        let mut cov = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..=i {
                let v: f64 = (i..d).map(|k| linv[k * d + i] * linv[k * d + j]).sum();
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
        }
        let chol = cholesky(&cov, d)
            .ok_or_else(|| Error::invalid_distribution(MVN, "precision is too ill-conditioned to invert in f64"))?;
        Ok(Self::from_factor(mean, chol))
    }

    /// MultivariateNormal from a lower Cholesky factor `L` of the covariance (`Σ = L Lᵀ`),
    /// given as rows: entries above the diagonal must be zero and the diagonal positive.
    ///
    /// # Errors
    /// [`crate::Error::InvalidDistribution`] for arguments outside the domain above.
    pub fn from_cholesky<M, R>(mean: M, lower: R) -> Result<Self>
    where
        M: AsRef<[f64]>,
        R: IntoIterator,
        R::Item: AsRef<[f64]>,
    {
        let mean = mvn_mean(mean)?;
        let d = mean.len();
        let chol = mvn_matrix("Cholesky factor", lower, d)?;
        for i in 0..d {
            let l = chol[i * d + i];
            check(l > 0.0 && l.is_finite(), MVN, || {
                format!("the Cholesky factor's diagonal must be positive and finite, got [{i}][{i}] = {l}")
            })?;
            for j in 0..d {
                let v = chol[i * d + j];
                check(v.is_finite(), MVN, || format!("the Cholesky factor has [{i}][{j}] = {v}"))?;
                check(j <= i || v == 0.0, MVN, || {
                    format!("the Cholesky factor must be lower triangular, got [{i}][{j}] = {v} above the diagonal")
                })?;
            }
        }
        Ok(Self::from_factor(mean, chol))
    }

    fn from_factor(mean: Vec<f64>, chol: Vec<f64>) -> Self {
        let d = mean.len();
        let half_log_det = (0..d).map(|i| chol[i * d + i].ln()).sum();
        MultivariateNormal { mean, chol, half_log_det }
    }

    /// The mean vector.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }
}

const MVN: &str = "MultivariateNormal";

fn mvn_mean(mean: impl AsRef<[f64]>) -> Result<Vec<f64>> {
    let mean = mean.as_ref().to_vec();
    check(!mean.is_empty(), MVN, || "the mean is empty".into())?;
    for &m in &mean {
        finite(MVN, "each mean", m)?;
    }
    Ok(mean)
}

/// A `d × d` matrix given as rows, flattened row-major; `what` names it in errors.
fn mvn_matrix<R>(what: &str, rows: R, d: usize) -> Result<Vec<f64>>
where
    R: IntoIterator,
    R::Item: AsRef<[f64]>,
{
    let mut m = Vec::with_capacity(d * d);
    let mut n = 0;
    for row in rows {
        let row = row.as_ref();
        check(row.len() == d, MVN, || format!("{what} row {n} has {} values, expected {d}", row.len()))?;
        m.extend_from_slice(row);
        n += 1;
    }
    check(n == d, MVN, || format!("{what} has {n} rows, expected {d}"))?;
    Ok(m)
}

/// The lower Cholesky factor of a symmetric positive definite `d × d` matrix given as rows.
fn spd_factor<R>(what: &str, rows: R, d: usize) -> Result<Vec<f64>>
where
    R: IntoIterator,
    R::Item: AsRef<[f64]>,
{
    let m = mvn_matrix(what, rows, d)?;
    for i in 0..d {
        for j in 0..i {
            let (a, b) = (m[i * d + j], m[j * d + i]);
            check((a - b).abs() <= 1e-10 * (a.abs() + b.abs()).max(1e-300), MVN, || {
                format!("{what} is not symmetric: [{i}][{j}] = {a}, [{j}][{i}] = {b}")
            })?;
        }
    }
    cholesky(&m, d).ok_or_else(|| Error::invalid_distribution(MVN, format!("{what} is not positive definite")))
}

/// Lower Cholesky factor of a symmetric `d × d` matrix (row-major), or `None` if it is not
/// positive definite. Written by hand: a prior's covariance is small, and one factorisation
/// does not justify a linear-algebra dependency.
pub(crate) fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - s;
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    Some(l)
}

impl PriorDistribution for MultivariateNormal {
    fn dim(&self) -> usize {
        self.mean.len()
    }

    fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) {
        let d = self.mean.len();
        let eps: Vec<f64> = (0..d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.mean[i] + (0..=i).map(|k| self.chol[i * d + k] * eps[k]).sum::<f64>();
        }
    }

    fn log_prob(&self, x: &[f64]) -> f64 {
        let d = self.mean.len();
        // Forward substitution: L u = x − μ, so that the Mahalanobis term is |u|².
        let mut u = vec![0.0; d];
        for i in 0..d {
            let s: f64 = (0..i).map(|k| self.chol[i * d + k] * u[k]).sum();
            u[i] = (x[i] - self.mean[i] - s) / self.chol[i * d + i];
        }
        let m: f64 = u.iter().map(|v| v * v).sum();
        -0.5 * m - self.half_log_det - 0.5 * d as f64 * LN_2PI
    }

    fn support(&self) -> Support {
        Support::Real
    }
}

#[cfg(test)]
mod tests;
