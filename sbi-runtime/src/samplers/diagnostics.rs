//! Convergence diagnostics of MCMC chains: split-R̂ (Gelman et al. 2013) and the effective
//! sample size from the chains' autocorrelations, truncated by Geyer's initial monotone
//! sequence (as Stan computes them).

/// Split-R̂ of one parameter: `chains[j]` is chain `j`'s draws (all of one length). Each
/// chain is cut in two halves; R̂ near 1 means the halves agree. NaN with fewer than
/// 4 draws per chain.
pub fn split_rhat(chains: &[Vec<f64>]) -> f64 {
    let halves = split_halves(chains);
    let n = halves.first().map_or(0, Vec::len);
    if n < 2 || halves.len() < 2 {
        return f64::NAN;
    }
    let (w, b) = within_between(&halves);
    let var_plus = (n as f64 - 1.0) / n as f64 * w + b / n as f64;
    if w <= 0.0 {
        // Constant chains: they agree only if they are all at the same value.
        return if b <= 0.0 { 1.0 } else { f64::INFINITY };
    }
    (var_plus / w).sqrt()
}

/// Effective sample size of one parameter over all chains (Stan's estimator on split
/// chains). NaN with fewer than 4 draws per chain.
pub fn effective_sample_size(chains: &[Vec<f64>]) -> f64 {
    let halves = split_halves(chains);
    let n = halves.first().map_or(0, Vec::len);
    let m = halves.len();
    if n < 2 || m < 2 {
        return f64::NAN;
    }
    let (w, b) = within_between(&halves);
    let var_plus = (n as f64 - 1.0) / n as f64 * w + b / n as f64;
    let total = (m * n) as f64;
    if var_plus <= 0.0 {
        return total;
    }
    // Mean over chains of the autocovariance at each lag (biased, 1/n, as Stan).
    let autocov = |t: usize| -> f64 {
        halves
            .iter()
            .map(|c| {
                let mean = c.iter().sum::<f64>() / n as f64;
                c[..n - t].iter().zip(&c[t..]).map(|(a, b)| (a - mean) * (b - mean)).sum::<f64>() / n as f64
            })
            .sum::<f64>()
            / m as f64
    };
    let rho = |t: usize| 1.0 - (w - autocov(t)) / var_plus;
    // Geyer: sum pairs ρ_{2k} + ρ_{2k+1} while positive, forced non-increasing.
    let mut tau = -1.0;
    let mut previous = f64::INFINITY;
    let mut t = 0;
    while t + 1 < n {
        let pair = rho(t) + rho(t + 1);
        if pair <= 0.0 {
            break;
        }
        let pair = pair.min(previous);
        tau += 2.0 * pair;
        previous = pair;
        t += 2;
    }
    (total / tau.max(1.0 / total.log10().max(1.0))).min(total * total.log10().max(1.0))
}

fn split_halves(chains: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = chains.iter().map(Vec::len).min().unwrap_or(0) / 2;
    if n == 0 {
        return Vec::new();
    }
    chains.iter().flat_map(|c| [c[..n].to_vec(), c[n..2 * n].to_vec()]).collect()
}

/// Mean within-chain variance W and between-chain variance B (n times the variance of the
/// chain means), of chains of one length.
fn within_between(chains: &[Vec<f64>]) -> (f64, f64) {
    let n = chains[0].len() as f64;
    let m = chains.len() as f64;
    let means: Vec<f64> = chains.iter().map(|c| c.iter().sum::<f64>() / n).collect();
    let grand = means.iter().sum::<f64>() / m;
    let b = n / (m - 1.0) * means.iter().map(|x| (x - grand).powi(2)).sum::<f64>();
    let w = chains
        .iter()
        .zip(&means)
        .map(|(c, mu)| c.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (n - 1.0))
        .sum::<f64>()
        / m;
    (w, b)
}

#[cfg(test)]
mod tests {
    use rand::RngExt;
    use rand_distr::StandardNormal;

    use super::*;
    use crate::rng::stream_rng;

    fn ar1(phi: f64, n: usize, chains: usize, shift: impl Fn(usize) -> f64) -> Vec<Vec<f64>> {
        (0..chains)
            .map(|c| {
                let mut rng = stream_rng(9, c as u64);
                let mut x = rng.sample::<f64, _>(StandardNormal);
                (0..n)
                    .map(|_| {
                        x = phi * x + (1.0 - phi * phi).sqrt() * rng.sample::<f64, _>(StandardNormal);
                        x + shift(c)
                    })
                    .collect()
            })
            .collect()
    }

    /// Independent draws: R̂ ≈ 1 and ESS ≈ the number of draws.
    #[test]
    fn independent_draws() {
        let chains = ar1(0.0, 1000, 4, |_| 0.0);
        let r = split_rhat(&chains);
        assert!((r - 1.0).abs() < 0.01, "R-hat {r}");
        let ess = effective_sample_size(&chains);
        assert!((3000.0..5500.0).contains(&ess), "ESS {ess}");
    }

    /// An AR(1) chain with coefficient φ has ESS/N = (1 − φ)/(1 + φ): 1/3 for φ = 0.5.
    #[test]
    fn autocorrelated_draws() {
        let chains = ar1(0.5, 5000, 4, |_| 0.0);
        let ess = effective_sample_size(&chains) / 20_000.0;
        assert!((0.27..0.40).contains(&ess), "ESS fraction {ess}");
    }

    /// Chains stuck in different places: R̂ well above 1.
    #[test]
    fn disagreeing_chains() {
        let chains = ar1(0.0, 500, 4, |c| c as f64 * 3.0);
        assert!(split_rhat(&chains) > 1.5);
    }
}
