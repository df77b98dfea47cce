//! Random-walk Metropolis–Hastings vectorised over chains: proposals `z' = z + s·L·ε` with
//! `ε ~ N(0, I)`. `L` starts diagonal (the spread of the starting points); halfway through
//! warm-up it becomes the Cholesky factor of the covariance of the chains' states in the
//! first half. The scale `s` (initially 2.38/√d, Roberts & Rosenthal 2001) is tuned during
//! warm-up by stochastic approximation towards an acceptance rate of 0.234.

use rand::RngExt;
use rand_distr::StandardNormal;

use super::{Target, Transition};
use crate::error::Result;
use crate::rng::SimRng;

const TARGET_ACCEPTANCE: f64 = 0.234;

pub(crate) struct Mh {
    chains: usize,
    dim: usize,
    /// Lower-triangular factor, row-major `d × d`.
    chol: Vec<f64>,
    log_scale: f64,
    sweeps: usize,
    warmup: usize,
    /// States of the first half of warm-up, for the covariance.
    history: Vec<f64>,
}

impl Mh {
    pub fn new(z: &[f64], chains: usize, dim: usize, warmup: usize) -> Self {
        let mut chol = vec![0.0; dim * dim];
        for (j, sd) in super::spread(z, chains, dim).into_iter().enumerate() {
            chol[j * dim + j] = sd;
        }
        Mh { chains, dim, chol, log_scale: (2.38 / (dim as f64).sqrt()).ln(), sweeps: 0, warmup, history: Vec::new() }
    }

    fn learn_covariance(&mut self) {
        let d = self.dim;
        let rows = self.history.len() / d;
        if rows < 2 * d + 2 {
            return;
        }
        let mut mean = vec![0.0; d];
        for r in self.history.chunks_exact(d) {
            mean.iter_mut().zip(r).for_each(|(m, v)| *m += v / rows as f64);
        }
        let mut cov = vec![0.0; d * d];
        for r in self.history.chunks_exact(d) {
            for i in 0..d {
                for j in 0..=i {
                    cov[i * d + j] += (r[i] - mean[i]) * (r[j] - mean[j]) / (rows - 1) as f64;
                }
            }
        }
        for i in 0..d {
            cov[i * d + i] += 1e-10 + 1e-6 * cov[i * d + i];
        }
        // The lower triangle is filled; mirror it for the factorisation.
        for i in 0..d {
            for j in 0..i {
                cov[j * d + i] = cov[i * d + j];
            }
        }
        if let Some(l) = crate::model::distributions::cholesky(&cov, d) {
            self.chol = l;
        }
        self.history = Vec::new();
    }
}

impl Transition for Mh {
    fn sweep(
        &mut self,
        target: &mut Target,
        z: &mut [f64],
        f: &mut [f64],
        rngs: &mut [SimRng],
        tune: bool,
    ) -> Result<()> {
        let (n, d) = (self.chains, self.dim);
        let scale = self.log_scale.exp();
        let mut proposals = Vec::with_capacity(n * d);
        let mut eps = vec![0.0; d];
        for (c, rng) in rngs.iter_mut().enumerate() {
            eps.iter_mut().for_each(|e| *e = rng.sample::<f64, _>(StandardNormal));
            for i in 0..d {
                let step: f64 = (0..=i).map(|k| self.chol[i * d + k] * eps[k]).sum();
                proposals.push(z[c * d + i] + scale * step);
            }
        }
        let fp = target.eval(&proposals)?;
        let mut accepted = 0usize;
        for c in 0..n {
            let u: f64 = rngs[c].random();
            if fp[c].is_finite() && u.ln() < fp[c] - f[c] {
                z[c * d..(c + 1) * d].copy_from_slice(&proposals[c * d..(c + 1) * d]);
                f[c] = fp[c];
                accepted += 1;
            }
        }
        if tune {
            self.sweeps += 1;
            let rate = accepted as f64 / n as f64;
            self.log_scale += (rate - TARGET_ACCEPTANCE) / (self.sweeps as f64).sqrt();
            if self.sweeps <= self.warmup / 2 {
                self.history.extend_from_slice(z);
                if self.sweeps == self.warmup / 2 {
                    self.learn_covariance();
                    self.log_scale = (2.38 / (d as f64).sqrt()).ln();
                }
            }
        }
        Ok(())
    }
}
