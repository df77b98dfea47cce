//! A stochastic SIR epidemic (chain binomial) with fixed settings: population size and
//! number of days. The observation is the daily fraction of the population infected, as a
//! vector (`Sir`) or as a time series (`SirSeries`).

use rand_distr::{Binomial, Distribution};
use sbi_runtime::prelude::*;

/// SIR epidemic: infection rate β and recovery rate γ; `population` and `days` are settings,
/// fields of the generated `Sir` struct.
#[simulator]
pub fn sir(rng: &mut impl Rng, population: u32, days: usize) -> Vec<f64> {
    let beta = sample!(LogNormal(0.4f64.ln(), 0.5));
    let gamma = sample!(LogNormal((1.0f64 / 8.0).ln(), 0.2));
    epidemic(beta, gamma, population, days, rng)
}

/// The same epidemic observed as a time series (one channel per day), for sequence
/// embeddings (1-D CNN, GRU).
#[simulator]
pub fn sir_series(rng: &mut impl Rng, population: u32, days: usize) -> TimeSeries<1> {
    let beta = sample!(LogNormal(0.4f64.ln(), 0.5));
    let gamma = sample!(LogNormal((1.0f64 / 8.0).ln(), 0.2));
    TimeSeries(epidemic(beta, gamma, population, days, rng).into_iter().map(|v| [v]).collect())
}

/// Chain-binomial SIR with 10 initial infections: the daily fraction infected.
fn epidemic(beta: f64, gamma: f64, population: u32, days: usize, rng: &mut impl Rng) -> Vec<f64> {
    let n = population as u64;
    let (mut s, mut i) = (n - 10.min(n), 10.min(n));
    let mut series = Vec::with_capacity(days);
    for _ in 0..days {
        let p_infect = 1.0 - (-beta * i as f64 / n as f64).exp();
        let p_recover = 1.0 - (-gamma).exp();
        let new_infections = Binomial::new(s, p_infect).expect("a probability in [0, 1]").sample(rng);
        let recoveries = Binomial::new(i, p_recover).expect("a probability in [0, 1]").sample(rng);
        s -= new_infections;
        i = i + new_infections - recoveries;
        series.push(i as f64 / n as f64);
    }
    series
}
