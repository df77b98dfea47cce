//! The solver against closed-form solutions, conserved quantities and its own convergence;
//! budgets and bad input.

use super::*;

fn max_error(sol: &OdeSolution, exact: impl Fn(f64) -> Vec<f64>) -> f64 {
    sol.times
        .iter()
        .enumerate()
        .flat_map(|(i, &t)| sol.at(i).iter().zip(exact(t)).map(|(a, b)| (a - b).abs()).collect::<Vec<_>>())
        .fold(0.0, f64::max)
}

fn grid(from: f64, to: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| from + (to - from) * i as f64 / (n - 1) as f64).collect()
}

#[test]
fn exponential_decay_and_growth_match_the_closed_form() {
    for rate in [-2.0, 0.5] {
        let times = grid(0.0, 4.0, 9);
        let sol = solve(|_, y, dy| dy[0] = rate * y[0], &[3.0], &times, &OdeConfig::default()).unwrap();
        // Local errors below 1e-6 relative accumulate to a few 1e-6 of the solution.
        let err = max_error(&sol, |t| vec![3.0 * (rate * t).exp()]);
        assert!(err < 1e-5 * 3.0 * (rate * 4.0f64).exp().max(1.0), "rate {rate}: error {err}");
        assert_eq!(sol.times, times);
        assert_eq!(sol.at(0), [3.0]);
        assert!(sol.steps < 200, "{} steps", sol.steps);
    }
}

#[test]
fn the_oscillator_keeps_its_phase_and_errors_shrink_with_the_tolerance() {
    // y'' = −y: (cos t, −sin t) over about three periods.
    let times = grid(0.0, 20.0, 41);
    let exact = |t: f64| vec![t.cos(), -t.sin()];
    let mut last = f64::INFINITY;
    for rtol in [1e-4, 1e-6, 1e-8, 1e-10] {
        let config = OdeConfig::default().with_tolerances(rtol, rtol * 1e-3);
        let sol = solve(
            |_, y, dy| {
                dy[0] = y[1];
                dy[1] = -y[0];
            },
            &[1.0, 0.0],
            &times,
            &config,
        )
        .unwrap();
        let err = max_error(&sol, exact);
        // Global error a modest multiple of the tolerance, and falling with it.
        assert!(err < 100.0 * rtol, "rtol {rtol}: error {err}");
        assert!(err < last / 10.0, "rtol {rtol}: error {err} after {last}");
        last = err;
    }
}

#[test]
fn backward_integration_retraces_the_logistic_curve() {
    // y' = r y (1 − y/K): y(t) = K / (1 + (K/y0 − 1) e^{−rt}).
    let (r, cap, y0) = (1.3, 10.0, 0.5);
    let exact = |t: f64| vec![cap / (1.0 + (cap / y0 - 1.0) * (-r * t).exp())];
    let logistic = |_: f64, y: &[f64], dy: &mut [f64]| dy[0] = r * y[0] * (1.0 - y[0] / cap);
    let forward = solve(logistic, &[y0], &grid(0.0, 6.0, 13), &OdeConfig::default()).unwrap();
    assert!(max_error(&forward, exact) < 1e-5, "{}", max_error(&forward, exact));
    let y_end = exact(6.0);
    let backward = solve(logistic, &y_end, &grid(6.0, 0.0, 13), &OdeConfig::default()).unwrap();
    assert!(max_error(&backward, exact) < 1e-4, "{}", max_error(&backward, exact));
    assert!((backward.at(12)[0] - y0).abs() < 1e-4 * y0.max(1.0));
}

#[test]
fn lotka_volterra_conserves_its_first_integral() {
    // x' = αx − βxy, y' = δxy − γy conserves V = δx − γ ln x + βy − α ln y.
    let (a, b, g, d) = (1.0, 0.1, 1.5, 0.075);
    let v = |s: &[f64]| d * s[0] - g * s[0].ln() + b * s[1] - a * s[1].ln();
    let times = grid(0.0, 50.0, 201);
    let config = OdeConfig::default().with_tolerances(1e-8, 1e-10);
    let sol = solve(
        |_, s, ds| {
            ds[0] = a * s[0] - b * s[0] * s[1];
            ds[1] = d * s[0] * s[1] - g * s[1];
        },
        &[10.0, 5.0],
        &times,
        &config,
    )
    .unwrap();
    let v0 = v(sol.at(0));
    let drift = (0..times.len()).map(|i| (v(sol.at(i)) - v0).abs()).fold(0.0, f64::max);
    assert!(drift < 1e-6 * v0.abs(), "drift {drift} of {v0}");
    assert_eq!(sol.component(0).len(), times.len());
    assert!(sol.component(1).iter().all(|&y| y > 0.0));
}

#[test]
fn budgets_and_blow_ups_are_typed_errors() {
    let decay = |_: f64, y: &[f64], dy: &mut [f64]| dy[0] = -y[0];
    let tight = OdeConfig::default().with_max_steps(3);
    assert!(matches!(solve(decay, &[1.0], &[0.0, 100.0], &tight), Err(Error::OdeBudget { steps: 3, .. })));
    // y' = y² from y(0) = 1 blows up at t = 1: the solver stops near there, with an error.
    let blow_up = solve(|_, y, dy| dy[0] = y[0] * y[0], &[1.0], &[0.0, 2.0], &OdeConfig::default());
    match blow_up {
        Err(Error::OdeFailed { t, .. }) | Err(Error::OdeBudget { t, .. }) => assert!((t - 1.0).abs() < 1e-2, "t = {t}"),
        other => panic!("expected an ODE error, got {other:?}"),
    }
    // A right-hand side that turns NaN beyond t = 0.5.
    let nan =
        solve(|t, y, dy| dy[0] = if t > 0.5 { f64::NAN } else { -y[0] }, &[1.0], &[0.0, 1.0], &OdeConfig::default());
    assert!(matches!(nan, Err(Error::OdeFailed { t, .. }) if (0.49..=0.5).contains(&t)), "{nan:?}");
    let nan_start = solve(|_, _, dy| dy[0] = f64::NAN, &[1.0], &[0.0, 1.0], &OdeConfig::default());
    assert!(matches!(nan_start, Err(Error::OdeFailed { t, .. }) if t == 0.0));
}

#[test]
fn bad_input_is_a_config_error() {
    let decay = |_: f64, y: &[f64], dy: &mut [f64]| dy[0] = -y[0];
    let ok = OdeConfig::default();
    let cases: Vec<(&str, Result<OdeSolution>)> = vec![
        ("no times", solve(decay, &[1.0], &[], &ok)),
        ("repeated time", solve(decay, &[1.0], &[0.0, 1.0, 1.0], &ok)),
        ("not monotone", solve(decay, &[1.0], &[0.0, 2.0, 1.0], &ok)),
        ("NaN time", solve(decay, &[1.0], &[0.0, f64::NAN], &ok)),
        ("empty state", solve(decay, &[], &[0.0, 1.0], &ok)),
        ("NaN state", solve(decay, &[f64::NAN], &[0.0, 1.0], &ok)),
        ("rtol 0", solve(decay, &[1.0], &[0.0, 1.0], &ok.clone().with_tolerances(0.0, 1e-9))),
        ("atol NaN", solve(decay, &[1.0], &[0.0, 1.0], &ok.clone().with_tolerances(1e-6, f64::NAN))),
        ("no steps", solve(decay, &[1.0], &[0.0, 1.0], &ok.clone().with_max_steps(0))),
        ("max_step -1", solve(decay, &[1.0], &[0.0, 1.0], &ok.clone().with_max_step(-1.0))),
    ];
    for (name, r) in cases {
        assert!(matches!(r, Err(Error::Config(_))), "{name}: {r:?}");
    }
    // One time: the initial state, no work.
    let one = solve(decay, &[2.0], &[5.0], &ok).unwrap();
    assert_eq!((one.values, one.evaluations), (vec![2.0], 0));
}

#[test]
fn max_step_bounds_every_step() {
    let decay = |_: f64, y: &[f64], dy: &mut [f64]| dy[0] = -y[0];
    let free = solve(decay, &[1.0], &[0.0, 10.0], &OdeConfig::default()).unwrap();
    let bounded = solve(decay, &[1.0], &[0.0, 10.0], &OdeConfig::default().with_max_step(0.01)).unwrap();
    assert!(bounded.steps >= 1000 && free.steps < 100, "{} and {}", bounded.steps, free.steps);
}

#[test]
fn fixed_steps_converge_at_fourth_order() {
    // y' = −2 y from 0 to 1, backward too: the error falls 16-fold per halving of the step.
    for (from, to) in [(0.0, 1.0), (1.0, 0.0)] {
        let exact = 3.0 * (-2.0f64 * (to - from)).exp();
        let errors: Vec<f64> = [10, 20, 40]
            .iter()
            .map(|&steps| {
                let sol = solve_fixed_steps(|_, y, dy| dy[0] = -2.0 * y[0], &[3.0], from, to, steps).unwrap();
                assert_eq!(sol.evaluations, 4 * steps);
                assert_eq!(sol.at(0), [3.0]);
                (sol.at(1)[0] - exact).abs()
            })
            .collect();
        for w in errors.windows(2) {
            let ratio = w[0] / w[1];
            assert!((12.0..20.0).contains(&ratio), "{from}→{to}: errors {errors:?}");
        }
        assert!(errors[2] < 1e-5, "{errors:?}");
    }
    assert!(matches!(solve_fixed_steps(|_, _, _| {}, &[1.0], 0.0, 1.0, 0), Err(Error::Config(_))));
    assert!(matches!(
        solve_fixed_steps(|_, _, dy| dy[0] = f64::NAN, &[1.0], 0.0, 1.0, 5),
        Err(Error::OdeFailed { .. })
    ));
}
