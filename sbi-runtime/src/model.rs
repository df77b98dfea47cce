//! The traits `#[simulator]` implements: [`Parameters`], [`Prior`], [`Simulator`], [`Observation`].
//!
//! A prior is written once, as a sequence of sites (`let s = sample!(D);`). Every prior
//! operation — sampling, `log p(θ) = Σ_k log p_k(θ_k | θ_<k)`, supports, the map to
//! unconstrained space — walks the same sites with a different [`SiteVisitor`], so a
//! hierarchical prior is scored by the chain of its conditionals with no extra code.

use rand::Rng;

use crate::distributions::{IntoDistribution, PriorDistribution};
use crate::error::{Error, Result};
use crate::transforms::Support;

/// A typed parameter set, flattened to `DIM` numbers in site order
/// (vector sites expand to `w[0]`, `w[1]`, ...).
pub trait Parameters: Sized + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Number of flattened coordinates.
    const DIM: usize;

    /// The coordinates' names in flattened order.
    fn names() -> Vec<String>;

    /// Writes the coordinates into `out`, which must hold exactly `DIM` values.
    fn write_flat(&self, out: &mut [f64]) -> Result<()>;

    /// Reads a parameter set from exactly `DIM` values.
    fn from_flat(flat: &[f64]) -> Result<Self>;

    /// The coordinates as a new vector.
    fn to_vec(&self) -> Vec<f64> {
        let mut v = vec![0.0; Self::DIM];
        self.write_flat(&mut v).expect("a vector of DIM values always fits");
        v
    }

    /// Reads `n × DIM` row-major values into typed parameter sets.
    fn from_rows(flat: &[f64]) -> Result<Vec<Self>> {
        if Self::DIM == 0 || !flat.len().is_multiple_of(Self::DIM) {
            return Err(Error::shape("parameter rows", Self::DIM * (flat.len() / Self::DIM.max(1)).max(1), flat.len()));
        }
        flat.chunks_exact(Self::DIM).map(Self::from_flat).collect()
    }
}

/// The shape of one observation, before flattening (row-major).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Shape {
    /// A vector of `n` features (a scalar is `Vector(1)`).
    Vector(usize),
    /// An image: `channels × height × width`.
    Image {
        /// Number of channels.
        channels: usize,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
    /// A time series: `len` steps of `channels` values.
    Sequence {
        /// Number of time steps.
        len: usize,
        /// Values per step.
        channels: usize,
    },
    /// A set of `trials` exchangeable iid trials of `features` values each.
    Trials {
        /// Number of trials.
        trials: usize,
        /// Values per trial.
        features: usize,
    },
}

impl Shape {
    /// Number of values after flattening.
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Vector(n) => n,
            Shape::Image { channels, height, width } => channels * height * width,
            Shape::Sequence { len, channels } => len * channels,
            Shape::Trials { trials, features } => trials * features,
        }
    }

    /// The dimensions as a list (e.g. `[3, 32, 32]` for an image).
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Vector(n) => vec![n],
            Shape::Image { channels, height, width } => vec![channels, height, width],
            Shape::Sequence { len, channels } => vec![len, channels],
            Shape::Trials { trials, features } => vec![trials, features],
        }
    }

    /// A compact text form (`vector[2]`, `image[1x32x32]`, ...), used in saved files.
    pub fn encode(&self) -> String {
        let dims = self.dims().iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
        let kind = match self {
            Shape::Vector(_) => "vector",
            Shape::Image { .. } => "image",
            Shape::Sequence { .. } => "sequence",
            Shape::Trials { .. } => "trials",
        };
        format!("{kind}[{dims}]")
    }

    /// Inverse of [`Shape::encode`].
    pub fn decode(s: &str) -> Option<Shape> {
        let (kind, rest) = s.split_once('[')?;
        let dims: Vec<usize> = rest.strip_suffix(']')?.split('x').map(|d| d.parse().ok()).collect::<Option<_>>()?;
        Some(match (kind, dims.as_slice()) {
            ("vector", [n]) => Shape::Vector(*n),
            ("image", [c, h, w]) => Shape::Image { channels: *c, height: *h, width: *w },
            ("sequence", [l, c]) => Shape::Sequence { len: *l, channels: *c },
            ("trials", [t, f]) => Shape::Trials { trials: *t, features: *f },
            _ => return None,
        })
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

/// What a simulator returns: it knows its shape and flattens itself row-major.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the observation of a simulator",
    label = "this return type is not an observation",
    note = "observations are `f64`, `[f64; N]`, `Vec<f64>`, images `[[f64; W]; H]` or `[[[f64; W]; H]; C]`, \
            sets of trials `Vec<[f64; F]>` or `VarTrials<F, MAX>`, time series `TimeSeries<C>`; or implement `sbi_runtime::Observation`"
)]
pub trait Observation: Send + 'static {
    /// The shape of this observation.
    fn shape(&self) -> Shape;
    /// Appends the values, row-major, to `out`.
    fn write_flat(&self, out: &mut Vec<f64>);
}

impl Observation for f64 {
    fn shape(&self) -> Shape {
        Shape::Vector(1)
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        out.push(*self);
    }
}

impl<const N: usize> Observation for [f64; N] {
    fn shape(&self) -> Shape {
        Shape::Vector(N)
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        out.extend_from_slice(self);
    }
}

impl Observation for Vec<f64> {
    fn shape(&self) -> Shape {
        Shape::Vector(self.len())
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        out.extend_from_slice(self);
    }
}

impl<const W: usize, const H: usize> Observation for [[f64; W]; H] {
    fn shape(&self) -> Shape {
        Shape::Image { channels: 1, height: H, width: W }
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        self.iter().for_each(|row| out.extend_from_slice(row));
    }
}

impl<const W: usize, const H: usize, const C: usize> Observation for [[[f64; W]; H]; C] {
    fn shape(&self) -> Shape {
        Shape::Image { channels: C, height: H, width: W }
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        self.iter().flatten().for_each(|row| out.extend_from_slice(row));
    }
}

impl<const F: usize> Observation for Vec<[f64; F]> {
    fn shape(&self) -> Shape {
        Shape::Trials { trials: self.len(), features: F }
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        self.iter().for_each(|t| out.extend_from_slice(t));
    }
}

/// Between 1 and `MAX` iid trials of `F` values each, their number varying from one
/// simulation to the next (an observation of shape `Trials { trials: MAX, features: F }`).
/// Absent trials are written as rows of NaN, which the [`DeepSets`](crate::nn::EmbeddingNet)
/// embedding masks out; more than `MAX` trials is a shape error at simulation time.
#[derive(Debug, Clone, PartialEq)]
pub struct VarTrials<const F: usize, const MAX: usize>(pub Vec<[f64; F]>);

impl<const F: usize, const MAX: usize> Observation for VarTrials<F, MAX> {
    fn shape(&self) -> Shape {
        Shape::Trials { trials: MAX, features: F }
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        self.0.iter().for_each(|t| out.extend_from_slice(t));
        let absent = MAX.saturating_sub(self.0.len());
        out.extend(std::iter::repeat_n(f64::NAN, absent * F));
    }
}

/// For observations of trials: each trial's values, with `None` for an absent trial (all
/// NaN). Other shapes, or a trial only partly NaN, give `Err(position)` of a NaN value.
pub(crate) fn present_trials<'a>(shape: &Shape, x: &'a [f64]) -> std::result::Result<Vec<Option<&'a [f64]>>, usize> {
    let Shape::Trials { features, .. } = *shape else {
        return match x.iter().position(|v| v.is_nan()) {
            Some(j) => Err(j),
            None => Ok(vec![Some(x)]),
        };
    };
    x.chunks(features.max(1))
        .enumerate()
        .map(|(t, trial)| {
            if trial.iter().all(|v| v.is_nan()) {
                Ok(None)
            } else if let Some(j) = trial.iter().position(|v| v.is_nan()) {
                Err(t * features + j)
            } else {
                Ok(Some(trial))
            }
        })
        .collect()
}

/// A time series of `C` channels per step (an observation of shape `Sequence`).
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSeries<const C: usize>(pub Vec<[f64; C]>);

impl<const C: usize> Observation for TimeSeries<C> {
    fn shape(&self) -> Shape {
        Shape::Sequence { len: self.0.len(), channels: C }
    }
    fn write_flat(&self, out: &mut Vec<f64>) {
        self.0.iter().for_each(|t| out.extend_from_slice(t));
    }
}

/// Receives the prior's sites in order; each call returns the value the site takes.
///
/// `#[simulator]` writes [`Prior::visit_sites`]; the runtime's visitors sample, score,
/// transform or list supports. Implement it to add a prior operation.
pub trait SiteVisitor {
    /// A scalar site.
    fn scalar<D: IntoDistribution>(&mut self, site: &'static str, dist: D) -> Result<f64>;
    /// A vector site of `N` coordinates.
    fn vector<D: IntoDistribution, const N: usize>(&mut self, site: &'static str, dist: D) -> Result<[f64; N]>;
}

/// The prior of a model: its sites, and every operation derived from them.
///
/// Flat methods take and give `DIM` coordinates in site order; hierarchical sites are
/// conditioned on the earlier coordinates.
pub trait Prior: Send + Sync {
    /// The typed parameter set.
    type Params: Parameters;

    /// Visits every site in order (written by `#[simulator]`).
    fn visit_sites<V: SiteVisitor>(&self, visitor: &mut V) -> Result<()>;

    /// Number of flattened coordinates.
    fn dim(&self) -> usize {
        <Self::Params as Parameters>::DIM
    }

    /// The coordinates' names.
    fn names(&self) -> Vec<String> {
        <Self::Params as Parameters>::names()
    }

    /// Draws one parameter set.
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Self::Params> {
        let mut flat = vec![0.0; self.dim()];
        self.sample_flat(rng, &mut flat)?;
        <Self::Params as Parameters>::from_flat(&flat)
    }

    /// Draws one parameter set into `out` (`DIM` values).
    ///
    /// # Errors
    /// [`Error::Site`] when a site cannot be drawn at the values of the earlier sites (its
    /// arguments are invalid there, or its distribution drew a non-finite value or one of
    /// zero density); the simulation engine counts such draws as invalid, and samplers draw
    /// again ([`sample_rows`]).
    fn sample_flat<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) -> Result<()> {
        expect_len("prior sample", self.dim(), out.len())?;
        self.visit_sites(&mut visitors::Sample { rng, out, pos: 0 })
    }

    /// `log p(θ)`, `-inf` outside the support (or where a hierarchical site's arguments are invalid).
    fn log_prob(&self, params: &Self::Params) -> f64 {
        self.log_prob_flat(&params.to_vec()).unwrap_or(f64::NEG_INFINITY)
    }

    /// `log p(θ)` for `DIM` flat coordinates: `-inf` outside the support, and where a
    /// hierarchical site's arguments are invalid (`Normal(0, τ)` at `τ ≤ 0`: no draw of the
    /// prior lands there, as [`Prior::sample_flat`] refuses such points).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a slice of the wrong length or a site whose distribution
    /// has the wrong number of coordinates.
    fn log_prob_flat(&self, theta: &[f64]) -> Result<f64> {
        expect_len("prior log_prob", self.dim(), theta.len())?;
        let mut v = visitors::Score { theta, pos: 0, log_prob: 0.0 };
        self.visit_sites(&mut v)?;
        Ok(v.log_prob)
    }

    /// The support of each coordinate, given the earlier coordinates of `theta`
    /// (only hierarchical priors depend on them).
    fn support(&self, theta: &[f64]) -> Result<Vec<Support>> {
        expect_len("prior support", self.dim(), theta.len())?;
        let mut v = visitors::Supports { theta, pos: 0, supports: Vec::with_capacity(theta.len()) };
        self.visit_sites(&mut v)?;
        Ok(v.supports)
    }

    /// Maps unconstrained `z` to `theta`; returns `log |det dθ/dz|`.
    fn constrain(&self, z: &[f64], theta: &mut [f64]) -> Result<f64> {
        expect_len("unconstrained point", self.dim(), z.len())?;
        expect_len("parameters", self.dim(), theta.len())?;
        let mut v = visitors::FromUnconstrained { z, theta, pos: 0, log_det: 0.0 };
        self.visit_sites(&mut v)?;
        Ok(v.log_det)
    }

    /// Maps `theta` to unconstrained `z`; returns `log |det dθ/dz|` at that `z`
    /// (the same quantity as [`Prior::constrain`]).
    fn unconstrain(&self, theta: &[f64], z: &mut [f64]) -> Result<f64> {
        expect_len("parameters", self.dim(), theta.len())?;
        expect_len("unconstrained point", self.dim(), z.len())?;
        let mut v = visitors::ToUnconstrained { theta, z, pos: 0, log_det: 0.0 };
        self.visit_sites(&mut v)?;
        Ok(v.log_det)
    }
}

/// Draws `out.len() / prior.dim()` parameter sets into `out`, drawing again where the prior
/// cannot be sampled (a hierarchical site's arguments are invalid at the earlier sites'
/// values): the draws then follow the prior restricted to where it is defined, as the
/// simulations the estimators were trained on did.
///
/// # Errors
/// [`Error::PriorDraw`] when more than `100 · rows + 1,000` attempts fail (the prior is
/// almost nowhere defined); other errors of [`Prior::sample_flat`] at once.
pub fn sample_rows<P: Prior + ?Sized, R: Rng + ?Sized>(prior: &P, rng: &mut R, out: &mut [f64]) -> Result<()> {
    let d = prior.dim();
    if d == 0 || !out.len().is_multiple_of(d) {
        return Err(Error::shape("prior draws (rows of DIM values)", d * (out.len() / d.max(1)), out.len()));
    }
    let rows = out.len() / d;
    let budget = rows.saturating_mul(100).saturating_add(1_000);
    let mut failed = 0usize;
    for row in out.chunks_exact_mut(d) {
        loop {
            match prior.sample_flat(rng, row) {
                Ok(()) => break,
                Err(Error::Site { source, .. })
                    if matches!(*source, Error::InvalidDistribution { .. } | Error::PriorDraw { .. }) =>
                {
                    failed += 1;
                    if failed > budget {
                        return Err(Error::PriorDraw {
                            reason: format!(
                                "{failed} draws of the prior failed while drawing {rows} parameter sets (last: {source}); \
                                 the prior is almost nowhere defined"
                            ),
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn expect_len(what: &str, expected: usize, got: usize) -> Result<()> {
    if expected == got { Ok(()) } else { Err(Error::shape(what, expected, got)) }
}

/// A model: a prior and a stochastic simulator `x ~ p(x | θ)`.
pub trait Simulator: Send + Sync {
    /// The typed parameter set.
    type Params: Parameters;
    /// The observation type.
    type Output: Observation;
    /// The prior type.
    type Prior: Prior<Params = Self::Params>;

    /// The prior.
    fn prior(&self) -> Self::Prior;

    /// A digest of the model's source code (its prior statements and simulator body), which
    /// `#[simulator]` writes; `None` for a hand-written implementation. Part of the model's
    /// [identity](crate::simulate::ModelIdentity).
    fn source_digest(&self) -> Option<&'static str> {
        None
    }

    /// The settings' values as text (`#[simulator]` writes the simulator struct's `Debug`
    /// form, e.g. `Sir { population: 1000, days: 60 }`); empty for a hand-written
    /// implementation. Part of the model's [identity](crate::simulate::ModelIdentity).
    fn settings(&self) -> String {
        String::new()
    }

    /// Runs the simulator once at `params`, drawing its noise from `rng`.
    fn simulate<R: Rng>(&self, params: &Self::Params, rng: &mut R) -> Self::Output;
}

/// The runtime's site visitors, one per prior operation.
pub(crate) mod visitors {
    use super::*;

    /// Resolves a site's distribution and checks that it fits `n` coordinates; returns
    /// the distribution and whether its draws are joint (dim `n`) rather than iid (dim 1).
    pub(crate) fn resolve<D: IntoDistribution>(site: &'static str, dist: D, n: usize) -> Result<(D::Dist, bool)> {
        try_resolve(site, dist, n)?.map_err(|e| Error::Site { site, source: Box::new(e) })
    }

    /// As [`resolve`], but a distribution whose arguments are invalid (a hierarchical site
    /// at a parameter value where its arguments leave their domain, such as `Normal(0, τ)` at
    /// `τ ≤ 0`) is `Ok(Err(why))` rather than an error: that point lies outside the prior's
    /// support. A size mismatch (a mistake in the model) is still an error.
    pub(crate) fn try_resolve<D: IntoDistribution>(
        site: &'static str,
        dist: D,
        n: usize,
    ) -> Result<std::result::Result<(D::Dist, bool), Error>> {
        let d = match dist.into_distribution() {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        let dim = d.dim();
        if dim == 1 {
            Ok(Ok((d, n == 1)))
        } else if dim == n {
            Ok(Ok((d, true)))
        } else {
            let what = if n == 1 { "a scalar site".to_string() } else { format!("a site of size {n}") };
            Err(Error::Site {
                site,
                source: Box::new(Error::shape(format!("{what} (its distribution has {dim} coordinates)"), n, dim)),
            })
        }
    }

    /// Applies `f` to each draw of a site: the whole slice if joint, each coordinate if iid.
    pub(crate) fn for_each_draw(joint: bool, values: &mut [f64], mut f: impl FnMut(&mut [f64])) {
        if joint { f(values) } else { values.chunks_mut(1).for_each(f) }
    }

    fn take<'a>(buf: &'a [f64], pos: &mut usize, n: usize) -> Result<&'a [f64]> {
        let s = buf.get(*pos..*pos + n).ok_or_else(|| Error::shape("prior sites", *pos + n, buf.len()))?;
        *pos += n;
        Ok(s)
    }

    /// Implements `SiteVisitor` for a visitor with an inherent
    /// `visit(&mut self, site, dist: Result<&D, Error>, joint, values) -> Result<()>` that
    /// fills `values`; `dist` is `Err` where the site's arguments are invalid at this point.
    macro_rules! forward_site_visitor {
        ($($name:ident $(<$($g:ident $(: ?$sized:ident)?),*>)?),* $(,)?) => {$(
            impl $(<$($g: Rng $(+ ?$sized)?),*>)? SiteVisitor for $name<'_ $($(, $g)*)?> {
                fn scalar<D: IntoDistribution>(&mut self, site: &'static str, dist: D) -> Result<f64> {
                    let mut v = [0.0];
                    match try_resolve(site, dist, 1)? {
                        Ok((d, joint)) => self.visit(site, Ok(&d), joint, &mut v)?,
                        Err(e) => self.visit::<D::Dist>(site, Err(e), false, &mut v)?,
                    }
                    Ok(v[0])
                }
                fn vector<D: IntoDistribution, const N: usize>(&mut self, site: &'static str, dist: D) -> Result<[f64; N]> {
                    let mut v = [0.0; N];
                    match try_resolve(site, dist, N)? {
                        Ok((d, joint)) => self.visit(site, Ok(&d), joint, &mut v)?,
                        Err(e) => self.visit::<D::Dist>(site, Err(e), false, &mut v)?,
                    }
                    Ok(v)
                }
            }
        )*};
    }

    /// Draws each site from its distribution.
    pub(crate) struct Sample<'a, R: ?Sized> {
        pub rng: &'a mut R,
        pub out: &'a mut [f64],
        pub pos: usize,
    }

    /// Reads each site from `theta` and adds its log density.
    pub(crate) struct Score<'a> {
        pub theta: &'a [f64],
        pub pos: usize,
        pub log_prob: f64,
    }

    /// Reads each site from `theta` and records its support.
    pub(crate) struct Supports<'a> {
        pub theta: &'a [f64],
        pub pos: usize,
        pub supports: Vec<Support>,
    }

    /// Maps each site from unconstrained `z` to `theta`, adding `log |dθ/dz|`.
    pub(crate) struct FromUnconstrained<'a> {
        pub z: &'a [f64],
        pub theta: &'a mut [f64],
        pub pos: usize,
        pub log_det: f64,
    }

    /// Maps each site from `theta` to unconstrained `z`, adding `log |dθ/dz|`.
    pub(crate) struct ToUnconstrained<'a> {
        pub theta: &'a [f64],
        pub z: &'a mut [f64],
        pub pos: usize,
        pub log_det: f64,
    }

    forward_site_visitor!(Sample<R: ?Sized>, Score, Supports, FromUnconstrained, ToUnconstrained);

    /// A site's distribution, or why its arguments are invalid at this point.
    type Resolved<'d, D> = std::result::Result<&'d D, Error>;

    impl<R: Rng + ?Sized> Sample<'_, R> {
        /// Draws the site; invalid arguments, or a draw that is not finite or lies outside
        /// the distribution's support, are errors: the prior cannot be sampled here.
        fn visit<D: PriorDistribution>(
            &mut self,
            site: &'static str,
            d: Resolved<'_, D>,
            joint: bool,
            values: &mut [f64],
        ) -> Result<()> {
            let d = d.map_err(|e| Error::Site { site, source: Box::new(e) })?;
            for_each_draw(joint, values, |v| d.sample_into(self.rng, v));
            // Support checks are comparisons: cheap enough for every draw of every simulation.
            let support = d.support();
            if let Some(v) = values.iter().find(|v| !v.is_finite() || !support.contains(**v)) {
                let reason = format!("the distribution drew {v}, outside its support {support:?}");
                return Err(Error::Site { site, source: Box::new(Error::PriorDraw { reason }) });
            }
            let out = self
                .out
                .get_mut(self.pos..self.pos + values.len())
                .ok_or_else(|| Error::shape("prior sites", self.pos + values.len(), 0))?;
            out.copy_from_slice(values);
            self.pos += values.len();
            Ok(())
        }
    }

    impl Score<'_> {
        /// Adds the site's log density; `-inf` where its arguments are invalid.
        fn visit<D: PriorDistribution>(
            &mut self,
            _site: &'static str,
            d: Resolved<'_, D>,
            joint: bool,
            values: &mut [f64],
        ) -> Result<()> {
            values.copy_from_slice(take(self.theta, &mut self.pos, values.len())?);
            match d {
                Ok(d) => for_each_draw(joint, values, |v| self.log_prob += d.log_prob(v)),
                Err(_) => self.log_prob = f64::NEG_INFINITY,
            }
            Ok(())
        }
    }

    /// The support of a resolved site; the whole real line where its arguments are invalid
    /// (the point lies outside the prior's support there: its log density is `-inf`).
    fn support_of<D: PriorDistribution>(d: &Resolved<'_, D>) -> Support {
        d.as_ref().map_or(Support::Real, |d| d.support())
    }

    impl Supports<'_> {
        fn visit<D: PriorDistribution>(
            &mut self,
            _site: &'static str,
            d: Resolved<'_, D>,
            _joint: bool,
            values: &mut [f64],
        ) -> Result<()> {
            values.copy_from_slice(take(self.theta, &mut self.pos, values.len())?);
            self.supports.extend(std::iter::repeat_n(support_of(&d), values.len()));
            Ok(())
        }
    }

    impl FromUnconstrained<'_> {
        fn visit<D: PriorDistribution>(
            &mut self,
            _site: &'static str,
            d: Resolved<'_, D>,
            _joint: bool,
            values: &mut [f64],
        ) -> Result<()> {
            let start = self.pos;
            let z = take(self.z, &mut self.pos, values.len())?;
            let t = support_of(&d).transform();
            for (v, &z) in values.iter_mut().zip(z) {
                *v = t.forward(z);
                self.log_det += t.log_abs_det_jacobian(z);
            }
            self.theta[start..start + values.len()].copy_from_slice(values);
            Ok(())
        }
    }

    impl ToUnconstrained<'_> {
        fn visit<D: PriorDistribution>(
            &mut self,
            _site: &'static str,
            d: Resolved<'_, D>,
            _joint: bool,
            values: &mut [f64],
        ) -> Result<()> {
            let start = self.pos;
            values.copy_from_slice(take(self.theta, &mut self.pos, values.len())?);
            let t = support_of(&d).transform();
            for (i, &v) in values.iter().enumerate() {
                let z = t.inverse(v);
                self.z[start + i] = z;
                self.log_det += t.log_abs_det_jacobian(z);
            }
            Ok(())
        }
    }
}
