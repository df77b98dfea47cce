//! The runtime's site visitors, one per prior operation: sample, score, list supports, and
//! map to and from the unconstrained space.

use rand::Rng;

use crate::error::{Error, Result};
use crate::model::SiteVisitor;
use crate::model::distributions::{IntoDistribution, PriorDistribution};
use crate::model::transforms::Support;

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
