//! Lotka–Volterra predator–prey dynamics, an ODE model (sbibm's task): prey grow at rate α
//! and are eaten at rate β per predator; predators grow at δ per prey and die at rate γ.
//! From 30 prey and 1 predator, both populations are observed at t = 2, 4, …, 20 on the log
//! scale with Gaussian noise of σ = 0.1 (sbibm's log-normal noise). The ODE is solved with
//! the library's adaptive solver, `sbi_runtime::ode::solve`.

use sbi_runtime::ode::{OdeConfig, solve};
use sbi_runtime::prelude::*;

/// Observation times per species.
pub const TIMES: usize = 10;

/// Lotka–Volterra: the observation is `[ln prey, ln predators]` at each of the [`TIMES`] times.
#[simulator]
pub fn lotka_volterra(rng: &mut impl Rng) -> [f64; 2 * TIMES] {
    let alpha = sample!(LogNormal(-0.125, 0.5));
    let beta = sample!(LogNormal(-3.0, 0.5));
    let gamma = sample!(LogNormal(-0.125, 0.5));
    let delta = sample!(LogNormal(-3.0, 0.5));
    // A failed solve panics with the solver's message: the run excludes this simulation and
    // keeps the message and θ (`Simulations::excluded`).
    let log_pop = log_populations([alpha, beta, gamma, delta]).unwrap_or_else(|e| panic!("{e}"));
    log_pop.map(|v| v + 0.1 * rng.sample::<f64, _>(StandardNormal))
}

/// The noiseless log populations `[ln prey, ln predators]` at t = 2, 4, …, 20 for rates
/// `[α, β, γ, δ]`.
///
/// The system is solved for `u = ln prey`, `v = ln predators` (`u' = α − β eᵛ`,
/// `v' = δ eᵘ − γ`): the populations stay positive however small they get, and the
/// observation needs no logarithm of a value that rounding could have made negative.
///
/// # Errors
/// The solver's [`Error::OdeBudget`] or [`Error::OdeFailed`] for rates whose dynamics it
/// cannot follow within its budget.
pub fn log_populations(rates: [f64; 4]) -> sbi_runtime::Result<[f64; 2 * TIMES]> {
    let [alpha, beta, gamma, delta] = rates;
    let times: Vec<f64> = (0..=TIMES).map(|k| 2.0 * k as f64).collect();
    let sol = solve(
        |_, s, ds| {
            ds[0] = alpha - beta * s[1].exp();
            ds[1] = delta * s[0].exp() - gamma;
        },
        &[30f64.ln(), 0.0],
        &times,
        &OdeConfig::default().with_max_steps(20_000),
    )?;
    // Row 0 is the initial state, not observed.
    Ok(std::array::from_fn(|k| sol.at(1 + k / 2)[k % 2]))
}
