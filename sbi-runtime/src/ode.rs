//! Adaptive integration of ordinary differential equations `dy/dt = f(t, y)` for simulators
//! (epidemics, ecology, pharmacokinetics): the Dormand–Prince 5(4) pair with error-controlled
//! step sizes, giving the solution at the times a model observes.
//!
//! Written here rather than taken from a crate: the maintained Rust solvers
//! (`ode_solvers`, `diffsol`) tie the state to nalgebra or faer types, which a simulator
//! over `&[f64]` would convert on every call, and neither bounds the work in the way the
//! rest of this library does (a step budget that ends in a typed error, never a hang or a
//! panic). The method and its controller follow Hairer, Nørsett & Wanner, *Solving
//! Ordinary Differential Equations I* (DOPRI5: the tableau, the PI step-size controller
//! with β = 0.04, the initial-step heuristic).
//!
//! ```
//! use sbi_runtime::ode::{OdeConfig, solve};
//!
//! // Exponential decay, y' = −k y, observed at t = 1, 2, 3.
//! let k = 0.5;
//! let sol = solve(|_t, y, dy| dy[0] = -k * y[0], &[1.0], &[0.0, 1.0, 2.0, 3.0], &OdeConfig::default())?;
//! assert!((sol.at(3)[0] - (-1.5f64).exp()).abs() < 1e-6);
//! # Ok::<(), sbi_runtime::Error>(())
//! ```
//!
//! In a `#[simulator]`, a failed solve can panic with the error's message: the engine
//! excludes that simulation, counts it, and keeps the message and θ
//! ([`crate::simulate::Simulations::excluded`]).

use crate::error::{Error, Result};

/// Tolerances and limits of [`solve`].
#[derive(Debug, Clone, PartialEq)]
pub struct OdeConfig {
    /// Relative tolerance of each step's local error (default 1e-6).
    pub rtol: f64,
    /// Absolute tolerance of each step's local error (default 1e-9): the error allowed for
    /// component `i` is `atol + rtol·|yᵢ|`.
    pub atol: f64,
    /// Steps (accepted and rejected) before [`Error::OdeBudget`] (default 100 000).
    pub max_steps: usize,
    /// The first step's size; `None` (the default) estimates it from `f` at the start.
    pub first_step: Option<f64>,
    /// The largest step size; `None` (the default) for no limit beyond the output times.
    pub max_step: Option<f64>,
}

impl Default for OdeConfig {
    fn default() -> Self {
        OdeConfig { rtol: 1e-6, atol: 1e-9, max_steps: 100_000, first_step: None, max_step: None }
    }
}

impl OdeConfig {
    /// The same settings with tolerances `rtol` and `atol`.
    pub fn with_tolerances(mut self, rtol: f64, atol: f64) -> Self {
        self.rtol = rtol;
        self.atol = atol;
        self
    }

    /// The same settings with a budget of `steps` steps.
    pub fn with_max_steps(mut self, steps: usize) -> Self {
        self.max_steps = steps;
        self
    }

    /// The same settings with steps of at most `h`.
    pub fn with_max_step(mut self, h: f64) -> Self {
        self.max_step = Some(h);
        self
    }

    fn check(&self) -> Result<()> {
        let bad =
            |what: &str, v: f64| Error::Config(format!("ODE solver: {what} must be positive and finite, got {v}"));
        for (what, v) in [("rtol", self.rtol), ("atol", self.atol)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(bad(what, v));
            }
        }
        for (what, v) in [("first_step", self.first_step), ("max_step", self.max_step)] {
            if let Some(v) = v
                && !(v > 0.0 && v.is_finite())
            {
                return Err(bad(what, v));
            }
        }
        if self.max_steps == 0 {
            return Err(Error::Config("ODE solver: max_steps must be at least 1".into()));
        }
        Ok(())
    }
}

/// The solution at the requested times, and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct OdeSolution {
    /// The state at each requested time, `times × dim` row-major.
    pub values: Vec<f64>,
    /// The requested times.
    pub times: Vec<f64>,
    /// Accepted steps.
    pub steps: usize,
    /// Rejected steps (their local error was above the tolerance).
    pub rejected: usize,
    /// Evaluations of `f`.
    pub evaluations: usize,
}

impl OdeSolution {
    /// The number of state components.
    pub fn dim(&self) -> usize {
        self.values.len() / self.times.len()
    }

    /// The state at the `i`-th requested time.
    ///
    /// # Panics
    /// When `i` is not below the number of requested times.
    pub fn at(&self, i: usize) -> &[f64] {
        let d = self.dim();
        &self.values[i * d..(i + 1) * d]
    }

    /// Component `k` of the state at every requested time.
    ///
    /// # Panics
    /// When `k` is not below [`OdeSolution::dim`].
    pub fn component(&self, k: usize) -> Vec<f64> {
        assert!(k < self.dim(), "component {k} of a {}-dimensional state", self.dim());
        self.values.iter().skip(k).step_by(self.dim()).copied().collect()
    }
}

// The Dormand–Prince 5(4) tableau: nodes, stage weights, 5th-order weights (the last stage,
// so its derivative is the next step's first: "first same as last"), and the difference
// between the 5th- and the embedded 4th-order weights (the local error estimate).
const C: [f64; 6] = [1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
const A: [&[f64]; 6] = [
    &[1.0 / 5.0],
    &[3.0 / 40.0, 9.0 / 40.0],
    &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
    &[19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
    &[9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0],
    &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
];
const E: [f64; 7] =
    [71.0 / 57600.0, 0.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0];

// Step-size control (Hairer's DOPRI5 defaults): safety factor, PI exponent β, and the bounds
// on the ratio of successive steps.
const SAFETY: f64 = 0.9;
const BETA: f64 = 0.04;
const MAX_SHRINK: f64 = 5.0;
const MAX_GROWTH: f64 = 10.0;

/// Integrates `dy/dt = f(t, y)` from `y(times[0]) = y0` and returns the state at every time
/// in `times` (the first row is `y0`). `f(t, y, dy)` writes the derivative into `dy`.
/// `times` is strictly increasing, or strictly decreasing to integrate backwards.
///
/// Each step's local error is kept below `atol + rtol·|y|` (see [`OdeConfig`]); the steps
/// land exactly on the requested times. For stiff systems (a fast and a slow time scale)
/// an explicit method needs very many steps: the budget then ends the solve with an error.
///
/// # Errors
/// [`Error::Config`] for no times, times that are not strictly monotone or not finite, an
/// empty or non-finite `y0`, or invalid settings; [`Error::OdeBudget`] when `max_steps`
/// steps do not reach the last time; [`Error::OdeFailed`] when `f` is not finite at the
/// start, or the step size underflows (the solution blows up, or `f` is NaN beyond a point).
pub fn solve<F>(mut f: F, y0: &[f64], times: &[f64], config: &OdeConfig) -> Result<OdeSolution>
where
    F: FnMut(f64, &[f64], &mut [f64]),
{
    config.check()?;
    check_inputs(y0, times)?;
    let n = y0.len();
    let mut out = OdeSolution { values: y0.to_vec(), times: times.to_vec(), steps: 0, rejected: 0, evaluations: 0 };
    let (Some(&start), Some(&end)) = (times.first(), times.last()) else { unreachable!("checked above") };
    if times.len() == 1 {
        return Ok(out);
    }
    let dir = (end - start).signum();
    let max_step = config.max_step.unwrap_or(f64::INFINITY);

    let mut t = start;
    let mut y = y0.to_vec();
    // k[0] is f at the step's start; k[1..7] the stages; k[6] is f at its end.
    let mut k = vec![vec![0.0; n]; 7];
    f(t, &y, &mut k[0]);
    out.evaluations += 1;
    if !k[0].iter().all(|v| v.is_finite()) {
        return Err(Error::OdeFailed {
            t,
            reason: format!("the right-hand side is not finite at the start: {:?}", k[0]),
        });
    }
    let mut h = match config.first_step {
        Some(h) => h,
        None => initial_step(&mut f, t, &y, &k[0], dir, config, &mut out.evaluations),
    }
    .min(max_step);

    let mut stage = vec![0.0; n];
    let mut y_new = vec![0.0; n];
    let mut fac_old: f64 = 1e-4;
    let mut just_rejected = false;
    for &target in &times[1..] {
        while (target - t) * dir > 0.0 {
            if out.steps + out.rejected >= config.max_steps {
                return Err(Error::OdeBudget { steps: out.steps + out.rejected, t, end });
            }
            let remaining = (target - t).abs();
            let lands = h >= remaining;
            let h_abs = if lands { remaining } else { h };
            let hs = dir * h_abs;
            if t + hs == t {
                return Err(Error::OdeFailed {
                    t,
                    reason: format!(
                        "the step size underflowed (h = {h_abs:e}): the solution blows up here, or the \
                         right-hand side is not finite"
                    ),
                });
            }
            // The six further stages; the last one's state is the 5th-order solution.
            for (s, (row, c)) in A.iter().zip(C).enumerate() {
                for (i, v) in stage.iter_mut().enumerate() {
                    *v = y[i] + hs * row.iter().zip(&k).map(|(a, kj)| a * kj[i]).sum::<f64>();
                }
                f(t + c * hs, &stage, &mut k[s + 1]);
            }
            out.evaluations += 6;
            y_new.copy_from_slice(&stage);
            let err = error_norm(&k, &y, &y_new, hs, config);
            let fac11 = err.powf(0.2 - 0.75 * BETA);
            if err <= 1.0 {
                t = if lands { target } else { t + hs };
                y.copy_from_slice(&y_new);
                k.swap(0, 6);
                out.steps += 1;
                let fac = (fac11 / fac_old.powf(BETA) / SAFETY).clamp(1.0 / MAX_GROWTH, MAX_SHRINK);
                h = (h_abs / fac).min(max_step);
                if just_rejected {
                    h = h.min(h_abs);
                }
                fac_old = err.max(1e-4);
                just_rejected = false;
            } else {
                out.rejected += 1;
                h = h_abs / (fac11 / SAFETY).min(MAX_SHRINK);
                just_rejected = true;
            }
        }
        out.values.extend_from_slice(&y);
    }
    Ok(out)
}

/// Solves `dy/dt = f(t, y)` from `from` to `to` in `steps` equal steps of the classical
/// fourth-order Runge–Kutta method (4 evaluations of `f` per step): no error control, a
/// known cost. For smooth right-hand sides, such as a trained vector field, a few dozen
/// steps are often as accurate as the adaptive solver's sampling noise requires, at a
/// fraction of its evaluations. The solution holds the states at `from` and `to`.
///
/// # Errors
/// [`Error::Config`] for no steps, equal or non-finite end times, or an empty or non-finite
/// `y0`; [`Error::OdeFailed`] when the state stops being finite.
pub fn solve_fixed_steps<F>(mut f: F, y0: &[f64], from: f64, to: f64, steps: usize) -> Result<OdeSolution>
where
    F: FnMut(f64, &[f64], &mut [f64]),
{
    if steps == 0 {
        return Err(Error::Config("ODE solver: a fixed-step solve needs at least 1 step".into()));
    }
    check_inputs(y0, &[from, to])?;
    let n = y0.len();
    let h = (to - from) / steps as f64;
    let mut y = y0.to_vec();
    let mut k = vec![vec![0.0; n]; 4];
    let mut stage = vec![0.0; n];
    for i in 0..steps {
        let t = from + i as f64 * h;
        f(t, &y, &mut k[0]);
        for (s, c) in [(1, 0.5), (2, 0.5), (3, 1.0)] {
            for (j, v) in stage.iter_mut().enumerate() {
                *v = y[j] + c * h * k[s - 1][j];
            }
            f(t + c * h, &stage, &mut k[s]);
        }
        for (j, v) in y.iter_mut().enumerate() {
            *v += h / 6.0 * (k[0][j] + 2.0 * k[1][j] + 2.0 * k[2][j] + k[3][j]);
        }
        if !y.iter().all(|v| v.is_finite()) {
            return Err(Error::OdeFailed { t: t + h, reason: "the state is not finite after a fixed step".into() });
        }
    }
    let mut values = y0.to_vec();
    values.extend_from_slice(&y);
    Ok(OdeSolution { values, times: vec![from, to], steps, rejected: 0, evaluations: 4 * steps })
}

fn check_inputs(y0: &[f64], times: &[f64]) -> Result<()> {
    if y0.is_empty() || !y0.iter().all(|v| v.is_finite()) {
        return Err(Error::Config(format!("ODE solver: the initial state must be non-empty and finite, got {y0:?}")));
    }
    if times.is_empty() || !times.iter().all(|t| t.is_finite()) {
        return Err(Error::Config(format!("ODE solver: the times must be non-empty and finite, got {times:?}")));
    }
    let dir = times.last().copied().unwrap_or(0.0) - times[0];
    // The times are finite (checked above), so `<= 0` also catches a zero span (one time repeated).
    if let Some(w) = times.windows(2).find(|w| (w[1] - w[0]) * dir <= 0.0) {
        return Err(Error::Config(format!(
            "ODE solver: the times must be strictly increasing (or strictly decreasing), got {} then {}",
            w[0], w[1]
        )));
    }
    Ok(())
}

/// The root-mean-square of the local error estimate, each component scaled by its
/// tolerance `atol + rtol·max(|y|, |y_new|)`; infinite when anything is not finite (the step
/// is then rejected and shrunk).
fn error_norm(k: &[Vec<f64>], y: &[f64], y_new: &[f64], hs: f64, config: &OdeConfig) -> f64 {
    let n = y.len();
    let mut sum = 0.0;
    for i in 0..n {
        let e = hs * E.iter().zip(k).map(|(e, ki)| e * ki[i]).sum::<f64>();
        let scale = config.atol + config.rtol * y[i].abs().max(y_new[i].abs());
        sum += (e / scale).powi(2);
    }
    let err = (sum / n as f64).sqrt();
    if err.is_finite() && y_new.iter().chain(&k[6]).all(|v| v.is_finite()) { err } else { f64::INFINITY }
}

/// Hairer's estimate of a first step for a 5th-order method: small enough that an explicit
/// Euler step from `y` would change `f` by about 1% of the tolerance.
fn initial_step<F>(f: &mut F, t: f64, y: &[f64], f0: &[f64], dir: f64, config: &OdeConfig, evals: &mut usize) -> f64
where
    F: FnMut(f64, &[f64], &mut [f64]),
{
    let scale: Vec<f64> = y.iter().map(|v| config.atol + config.rtol * v.abs()).collect();
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let d0 = norm(&mut y.iter().zip(&scale).map(|(v, s)| v / s));
    let d1 = norm(&mut f0.iter().zip(&scale).map(|(v, s)| v / s));
    let h0 = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 };
    let y1: Vec<f64> = y.iter().zip(f0).map(|(v, d)| v + dir * h0 * d).collect();
    let mut f1 = vec![0.0; y.len()];
    f(t + dir * h0, &y1, &mut f1);
    *evals += 1;
    let d2 = norm(&mut f1.iter().zip(f0).zip(&scale).map(|((a, b), s)| (a - b) / s)) / h0;
    let d12 = d1.max(d2);
    let h1 = if !d12.is_finite() {
        h0
    } else if d12 <= 1e-15 {
        (h0 * 1e-3).max(1e-6)
    } else {
        (0.01 / d12).powf(0.2)
    };
    (100.0 * h0).min(h1)
}

#[cfg(test)]
mod tests;
