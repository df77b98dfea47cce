//! Rejection sampling: draws from a proposal (a conditional density estimator at one or
//! more observations) kept where they pass a test (inside the prior's support), with a
//! budget of proposals per observation and the acceptance rate it observed.

use crate::error::{Error, Result};
use crate::samplers::Samples;

/// Draws by rejection, with the proposals they took.
#[derive(Debug, Clone)]
pub struct RejectionRun {
    /// The accepted draws.
    pub samples: Samples,
    /// Proposals examined (those drawn after the quota filled are not counted).
    pub proposals: usize,
    /// Accepted draws per proposal examined.
    pub acceptance_rate: f64,
    /// Network evaluations per proposal where a proposal costs more than one pass (vector
    /// field posteriors: ODE stages or SDE steps); `None` otherwise.
    pub evaluations_per_proposal: Option<usize>,
}

/// `n` accepted draws of `d` values for each of `k` observations.
///
/// `propose(requests)` draws, for each `(observation, count)` request, `count` rows, all
/// concatenated in the order of the requests; `accept(row)` tests one. Each observation may
/// use at most `budget` proposals; proposals are requested in rounds sized by the acceptance
/// rate so far (at most 2²⁰ per observation and round).
///
/// # Errors
/// [`Error::Config`] for a budget of 0; [`Error::SamplingBudget`] when an observation runs
/// out of proposals; [`Error::TooLarge`] when `n × d` values cannot be allocated; the
/// errors of `propose` and `accept`.
pub fn rejection_sample(
    k: usize,
    n: usize,
    d: usize,
    budget: usize,
    names: &[String],
    mut propose: impl FnMut(&[(usize, usize)]) -> Result<Vec<f64>>,
    accept: impl Fn(&[f64]) -> Result<bool>,
) -> Result<Vec<RejectionRun>> {
    if budget == 0 {
        return Err(Error::Config("a budget of 0 proposals (`with_max_proposals(0)`) allows no draw".into()));
    }
    let mut accepted: Vec<Vec<f64>> =
        (0..k).map(|_| crate::alloc::with_capacity(n, d, "posterior samples")).collect::<Result<_>>()?;
    let mut proposed = vec![0usize; k];
    let mut rate = vec![1.0f64; k];
    loop {
        let pending: Vec<usize> = (0..k).filter(|&i| accepted[i].len() < n * d).collect();
        if pending.is_empty() {
            break;
        }
        // Proposals per pending observation: what is missing, inflated by the acceptance rate so far.
        let requests: Vec<(usize, usize)> = pending
            .iter()
            .map(|&i| {
                let missing = n - accepted[i].len() / d;
                let m = ((missing as f64 / rate[i].max(1e-3) * 1.1) as usize + 16)
                    .min(budget.saturating_sub(proposed[i]).max(1))
                    .min(1 << 20);
                (i, m)
            })
            .collect();
        let draws = propose(&requests)?;
        let mut offset = 0;
        for &(i, m) in &requests {
            // Count only the draws examined until the quota filled, so that the rate is unbiased.
            for row in draws[offset * d..(offset + m) * d].chunks_exact(d) {
                if accepted[i].len() == n * d {
                    break;
                }
                proposed[i] += 1;
                if accept(row)? {
                    accepted[i].extend_from_slice(row);
                }
            }
            offset += m;
            rate[i] = (accepted[i].len() / d) as f64 / proposed[i] as f64;
            if accepted[i].len() < n * d && proposed[i] >= budget {
                return Err(Error::SamplingBudget {
                    requested: n,
                    accepted: accepted[i].len() / d,
                    proposed: proposed[i],
                });
            }
        }
    }
    Ok(accepted
        .into_iter()
        .zip(proposed)
        .map(|(values, p)| {
            let rows = values.len() / d;
            RejectionRun {
                evaluations_per_proposal: None,
                samples: Samples { values, names: names.to_vec() },
                proposals: p,
                acceptance_rate: rows as f64 / p.max(1) as f64,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;

    /// Uniform draws on [0, 1] kept below 0.25: the acceptance rate is a quarter (five
    /// binomial standard errors), every kept draw passes, and a small budget is an error.
    #[test]
    fn keeps_what_passes_and_counts_proposals() {
        let mut rng = crate::rng::stream_rng(1, 2);
        let names = vec!["u".to_string()];
        let mut uniform = |req: &[(usize, usize)]| -> Result<Vec<f64>> {
            Ok((0..req.iter().map(|r| r.1).sum::<usize>()).map(|_| rng.random::<f64>()).collect())
        };
        let runs = rejection_sample(2, 4_000, 1, 1_000_000, &names, &mut uniform, |r| Ok(r[0] < 0.25)).unwrap();
        for run in &runs {
            assert_eq!(run.samples.rows(), 4_000);
            assert!(run.samples.values.iter().all(|v| *v < 0.25));
            let se = (0.25f64 * 0.75 / run.proposals as f64).sqrt();
            assert!((run.acceptance_rate - 0.25).abs() < 5.0 * se, "{}", run.acceptance_rate);
        }
        let short = rejection_sample(1, 100, 1, 50, &names, &mut uniform, |r| Ok(r[0] < 0.25));
        assert!(matches!(short, Err(Error::SamplingBudget { requested: 100, .. })));
        let none = rejection_sample(1, 100, 1, 0, &names, &mut uniform, |r| Ok(r[0] < 0.25));
        assert!(matches!(none, Err(Error::Config(_))));
    }
}
