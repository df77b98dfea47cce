//! Coordinate-wise slice sampling (Neal 2003, §4) vectorised over chains: for each
//! coordinate, every chain draws a level under its current density, steps its bracket out
//! and shrinks it; each round of stepping or shrinking is one batched potential call for the
//! chains still working. During warm-up the bracket width of each coordinate follows the
//! running mean of the final bracket widths (as `sbi`'s `slice_np`).

use rand::RngExt;
use rand_distr::Exp1;

use super::{Target, Transition};
use crate::error::Result;
use crate::rng::SimRng;

/// Stepping-out steps per side: the bracket grows to at most this many widths each way.
const MAX_STEPS: usize = 32;
/// Shrinkage rounds before a chain keeps its point (in exact arithmetic the current point is
/// always inside the slice, so this only guards against rounding).
const MAX_SHRINK: usize = 64;

pub(crate) struct Slice {
    widths: Vec<f64>,
    tuned: Vec<usize>,
    chains: usize,
    dim: usize,
}

impl Slice {
    /// Initial widths: the spread of the chains' starting points (1 where they agree).
    pub fn new(z: &[f64], chains: usize, dim: usize) -> Self {
        Slice { widths: super::spread(z, chains, dim), tuned: vec![0; dim], chains, dim }
    }

    /// Evaluates the target for the chains in `active` with coordinate `j` set to `values`.
    fn eval_at(
        target: &mut Target,
        z: &[f64],
        dim: usize,
        j: usize,
        active: &[usize],
        values: &[f64],
    ) -> Result<Vec<f64>> {
        let mut points = Vec::with_capacity(active.len() * dim);
        for (&c, &v) in active.iter().zip(values) {
            points.extend_from_slice(&z[c * dim..(c + 1) * dim]);
            let last = points.len() - dim + j;
            points[last] = v;
        }
        target.eval(&points)
    }
}

impl Transition for Slice {
    fn sweep(
        &mut self,
        target: &mut Target,
        z: &mut [f64],
        f: &mut [f64],
        rngs: &mut [SimRng],
        tune: bool,
    ) -> Result<()> {
        let (n, d) = (self.chains, self.dim);
        debug_assert_eq!(target.dim(), d);
        for j in 0..d {
            let w = self.widths[j];
            let level: Vec<f64> = (0..n).map(|c| f[c] - rngs[c].sample::<f64, _>(Exp1)).collect();
            let mut lo: Vec<f64> = (0..n).map(|c| z[c * d + j] - w * rngs[c].random::<f64>()).collect();
            let mut hi: Vec<f64> = lo.iter().map(|l| l + w).collect();
            // Stepping out, each side in rounds over the chains whose end is still inside.
            for (ends, dir) in [(&mut lo, -1.0), (&mut hi, 1.0)] {
                let mut active: Vec<usize> = (0..n).collect();
                for _ in 0..MAX_STEPS {
                    if active.is_empty() {
                        break;
                    }
                    let values: Vec<f64> = active.iter().map(|&c| ends[c]).collect();
                    let fv = Self::eval_at(target, z, d, j, &active, &values)?;
                    let mut still = Vec::with_capacity(active.len());
                    for (&c, fc) in active.iter().zip(fv) {
                        if fc > level[c] {
                            ends[c] += dir * w;
                            still.push(c);
                        }
                    }
                    active = still;
                }
            }
            // Shrinkage.
            let mut active: Vec<usize> = (0..n).collect();
            let mut widths_sum = 0.0;
            for _ in 0..MAX_SHRINK {
                if active.is_empty() {
                    break;
                }
                let proposals: Vec<f64> =
                    active.iter().map(|&c| lo[c] + (hi[c] - lo[c]) * rngs[c].random::<f64>()).collect();
                let fv = Self::eval_at(target, z, d, j, &active, &proposals)?;
                let mut still = Vec::with_capacity(active.len());
                for ((&c, fc), x) in active.iter().zip(fv).zip(proposals) {
                    if fc > level[c] {
                        widths_sum += hi[c] - lo[c];
                        z[c * d + j] = x;
                        f[c] = fc;
                    } else {
                        if x < z[c * d + j] {
                            lo[c] = x;
                        } else {
                            hi[c] = x;
                        }
                        still.push(c);
                    }
                }
                active = still;
            }
            if tune {
                // Running mean of the final bracket widths over chains and warm-up sweeps.
                let accepted = n - active.len();
                if accepted > 0 {
                    let k = self.tuned[j] as f64;
                    let mean_now = widths_sum / accepted as f64;
                    self.widths[j] = (self.widths[j] * k + mean_now) / (k + 1.0);
                    self.tuned[j] += 1;
                }
            }
        }
        Ok(())
    }
}
