//! Is the observation typical of the simulations? A kernel two-sample (MMD) test of `x_o`
//! against the training simulations with a Monte Carlo p-value (after `sbi`'s
//! `calc_misspecification_mmd`), and the plain check of `x_o` against the simulations' range.

use rand::RngExt;

use crate::error::{Error, Result};
use crate::estimators::Standardizer;
use crate::rng::stream_rng;

/// Settings of [`misspecification_mmd`].
#[derive(Debug, Clone, PartialEq)]
pub struct MmdConfig {
    /// Simulations in the reference set the observation is compared with (1,000, as `sbi`'s
    /// `max_samples`).
    pub reference: usize,
    /// Null statistics, from held-out simulations in the observation's place (1,000).
    pub null_draws: usize,
    /// Seed of the split (0).
    pub seed: u64,
}

impl Default for MmdConfig {
    fn default() -> Self {
        MmdConfig { reference: 1000, null_draws: 1000, seed: 0 }
    }
}

/// The result of [`misspecification_mmd`].
#[derive(Debug, Clone, PartialEq)]
pub struct Misspecification {
    /// The observation's statistic (its MMD to the reference set, up to a term shared by
    /// all statistics).
    pub mmd: f64,
    /// The statistic of each null draw: held-out simulations in the observation's place.
    pub null: Vec<f64>,
    /// The share of null statistics at least as large as the observation's, counting the
    /// observation's own (`(1 + #{null ≥ mmd}) / (1 + null_draws)`): small when `x_o` is
    /// unlike the simulations, i.e. the model is misspecified for it.
    pub pvalue: f64,
    /// The kernel's bandwidth in z-scored units (the median distance between reference
    /// simulations).
    pub bandwidth: f64,
    /// Features of `x_o` outside the simulations' range (any observation row).
    pub outside_range: Vec<usize>,
}

impl Misspecification {
    /// A one-line summary with a verdict at 5%.
    pub fn describe(&self) -> String {
        let verdict = if self.pvalue < 0.05 {
            "x_o is NOT typical of the simulations (misspecified model or prior?)"
        } else {
            "x_o is typical of the simulations"
        };
        let range = if self.outside_range.is_empty() {
            "inside the simulations' range".to_string()
        } else {
            format!("features {:?} outside the simulations' range", self.outside_range)
        };
        format!("misspecification MMD: p {:.3} over {} null draws: {verdict}; {range}", self.pvalue, self.null.len())
    }
}

/// MMD test of the observations `x_o` (`k × f` row-major: one or more iid observations)
/// against simulations `sims` (`n × f`; the training simulations, or any from the prior
/// predictive). Features are z-scored by the simulations; the kernel is Gaussian with the
/// median heuristic's bandwidth, fixed once on the reference set (`sbi` refits it for each
/// statistic; one kernel for all makes the statistics exchangeable under the null). The
/// statistic of a set `Z` against the reference set `Y` is the biased MMD² without its
/// `Y`–`Y` term, which all statistics share: `mean k(Z, Z) − 2 mean k(Z, Y)`. Under the
/// null (x_o drawn as the simulations), `x_o`'s statistic is exchangeable with those of
/// held-out simulations, so the p-value is exact up to Monte Carlo error.
///
/// # Errors
/// [`Error::ShapeMismatch`] for rows of the wrong width; [`Error::Config`] for non-finite
/// values, or fewer simulations than the reference set plus `k` (one null draw needs
/// `k` held-out simulations).
pub fn misspecification_mmd(x_o: &[f64], sims: &[f64], f: usize, config: &MmdConfig) -> Result<Misspecification> {
    if f == 0 || x_o.is_empty() || !x_o.len().is_multiple_of(f) || !sims.len().is_multiple_of(f) {
        return Err(Error::shape("misspecification test rows (features)", f, x_o.len() % f.max(1)));
    }
    if x_o.iter().chain(sims).any(|v| !v.is_finite()) {
        return Err(Error::Config("the misspecification test needs finite observations and simulations".into()));
    }
    let (k, n) = (x_o.len() / f, sims.len() / f);
    let m = config.reference.min(n.saturating_sub(k));
    if m < 2 || n < m + k {
        return Err(Error::Config(format!(
            "the misspecification test needs more simulations than {k} observation rows plus a reference set of 2 or more, got {n}"
        )));
    }
    let outside_range = (0..f)
        .filter(|&j| {
            let column = sims.iter().skip(j).step_by(f);
            let (lo, hi) = column.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            x_o.iter().skip(j).step_by(f).any(|&v| v < lo || v > hi)
        })
        .collect();
    let z = Standardizer::fit(sims, f);
    let scale = |rows: &[f64]| -> Vec<f64> {
        rows.chunks_exact(f)
            .flat_map(|r| r.iter().zip(z.mean.iter().zip(&z.std)).map(|(v, (mu, s))| (v - mu) / s))
            .collect()
    };
    // A random order of the simulations: the first m are the reference set, the rest
    // supply the null draws.
    let mut rng = stream_rng(config.seed, 0x3d3d_0000);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let pick = |idx: &[usize]| -> Vec<f64> {
        scale(&idx.iter().flat_map(|&i| sims[i * f..(i + 1) * f].iter().copied()).collect::<Vec<_>>())
    };
    let reference = pick(&order[..m]);
    let held_out = &order[m..];
    let dist2 = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum() };
    // Median heuristic over up to 200 reference rows' pairs.
    let h = m.min(200);
    let mut d: Vec<f64> = (0..h)
        .flat_map(|i| (i + 1..h).map(move |j| (i, j)))
        .map(|(i, j)| dist2(&reference[i * f..(i + 1) * f], &reference[j * f..(j + 1) * f]).sqrt())
        .collect();
    d.sort_by(f64::total_cmp);
    let bandwidth = d.get(d.len() / 2).copied().filter(|b| *b > 0.0).unwrap_or(1.0);
    let kernel = |a: &[f64], b: &[f64]| (-dist2(a, b) / (2.0 * bandwidth * bandwidth)).exp();
    let statistic = |set: &[f64]| -> f64 {
        let rows: Vec<&[f64]> = set.chunks_exact(f).collect();
        let within = rows.iter().map(|a| rows.iter().map(|b| kernel(a, b)).sum::<f64>()).sum::<f64>()
            / (rows.len() * rows.len()) as f64;
        let across = rows.iter().map(|a| reference.chunks_exact(f).map(|y| kernel(a, y)).sum::<f64>()).sum::<f64>()
            / (rows.len() * m) as f64;
        within - 2.0 * across
    };
    let mmd = statistic(&scale(x_o));
    let null: Vec<f64> = (0..config.null_draws)
        .map(|_| {
            // k distinct held-out simulations.
            let mut chosen: Vec<usize> = Vec::with_capacity(k);
            while chosen.len() < k {
                let i = held_out[rng.random_range(0..held_out.len())];
                if !chosen.contains(&i) {
                    chosen.push(i);
                }
            }
            statistic(&pick(&chosen))
        })
        .collect();
    let pvalue = (1 + null.iter().filter(|&&s| s >= mmd).count()) as f64 / (1 + null.len()) as f64;
    Ok(Misspecification { mmd, null, pvalue, bandwidth, outside_range })
}
