//! Numerical checks of every built-in distribution.

use super::*;
use crate::rng::stream_rng;

/// `∫ p(T(z)) |T'(z)| dz` by the trapezoid rule over unconstrained `z`: this also exercises
/// the support's transform, and is spectrally accurate for these smooth, decaying integrands.
fn integral<D: PriorDistribution>(d: &D) -> f64 {
    let t = d.support().transform();
    // The sigmoid saturates to exactly 0 or 1 beyond |z| ≈ 37; stay where it is invertible
    // (the mass left out is below 1e-7 for every case here).
    let bound = if matches!(t, crate::model::transforms::Transform::Sigmoid { .. }) { 35.0 } else { 60.0 };
    let (lo, hi, h) = (-bound, bound, 0.005);
    let n = ((hi - lo) / h) as usize;
    (0..=n)
        .map(|i| {
            let z = lo + i as f64 * h;
            let w = if i == 0 || i == n { 0.5 } else { 1.0 };
            let x = t.forward(z);
            w * (d.log_prob(&[x]) + t.log_abs_det_jacobian(z)).exp()
        })
        .sum::<f64>()
        * h
}

/// A scalar distribution with its theoretical mean and variance, and its numerical integral.
struct Case {
    name: &'static str,
    sample: Box<dyn Fn(&mut crate::rng::SimRng) -> f64>,
    mean: f64,
    var: f64,
    integral: f64,
}

fn case<D: PriorDistribution + 'static>(name: &'static str, d: D, mean: f64, var: f64) -> Case {
    let integral = integral(&d);
    let sample = Box::new(move |rng: &mut crate::rng::SimRng| {
        let mut v = [0.0];
        d.sample_into(rng, &mut v);
        v[0]
    });
    Case { name, sample, mean, var, integral }
}

fn scalar_cases() -> Vec<Case> {
    let pi = std::f64::consts::PI;
    let (mu, s) = (0.3_f64, 0.6_f64);
    vec![
        case("Uniform(-1, 3)", Uniform::new(-1.0, 3.0).unwrap(), 1.0, 16.0 / 12.0),
        case("Normal(1, 2)", Normal::new(1.0, 2.0).unwrap(), 1.0, 4.0),
        case(
            "LogNormal(0.3, 0.6)",
            LogNormal::new(mu, s).unwrap(),
            (mu + s * s / 2.0).exp(),
            ((s * s).exp() - 1.0) * (2.0 * mu + s * s).exp(),
        ),
        case("Gamma(2.5, 1.5)", Gamma::new(2.5, 1.5).unwrap(), 2.5 / 1.5, 2.5 / (1.5 * 1.5)),
        case("Gamma(0.5, 2)", Gamma::new(0.5, 2.0).unwrap(), 0.25, 0.125),
        case("Beta(2, 5)", Beta::new(2.0, 5.0).unwrap(), 2.0 / 7.0, 10.0 / (49.0 * 8.0)),
        case("Beta(0.5, 0.5)", Beta::new(0.5, 0.5).unwrap(), 0.5, 0.125),
        case("Exponential(2)", Exponential::new(2.0).unwrap(), 0.5, 0.25),
        case("HalfNormal(1.5)", HalfNormal::new(1.5).unwrap(), 1.5 * (2.0 / pi).sqrt(), 2.25 * (1.0 - 2.0 / pi)),
    ]
}

#[test]
fn densities_integrate_to_one() {
    for Case { name, integral, .. } in scalar_cases() {
        assert!((integral - 1.0).abs() < 1e-6, "{name}: integral {integral}");
    }
}

#[test]
fn sample_moments_match_theory() {
    let n = 200_000;
    for (k, Case { name, sample, mean, var, .. }) in scalar_cases().into_iter().enumerate() {
        let mut rng = stream_rng(42, k as u64);
        let xs: Vec<f64> = (0..n).map(|_| sample(&mut rng)).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        let m4 = xs.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n as f64;
        // Standard errors of the sample mean and variance; 5 of them is a p ≈ 6e-7 band.
        let se_mean = (var / n as f64).sqrt();
        let se_var = ((m4 - v * v) / n as f64).sqrt();
        assert!((m - mean).abs() < 5.0 * se_mean, "{name}: mean {m} vs {mean} (se {se_mean})");
        assert!((v - var).abs() < 5.0 * se_var, "{name}: variance {v} vs {var} (se {se_var})");
    }
}

#[test]
fn samples_lie_in_the_support() {
    let mut rng = stream_rng(3, 0);
    let supports = [
        Uniform::new(-1.0, 3.0).unwrap().support(),
        LogNormal::new(0.0, 1.0).unwrap().support(),
        Beta::new(0.5, 0.5).unwrap().support(),
    ];
    let samplers: [&dyn Fn(&mut crate::rng::SimRng) -> f64; 3] = [
        &|r| {
            let mut v = [0.0];
            Uniform::new(-1.0, 3.0).unwrap().sample_into(r, &mut v);
            v[0]
        },
        &|r| {
            let mut v = [0.0];
            LogNormal::new(0.0, 1.0).unwrap().sample_into(r, &mut v);
            v[0]
        },
        &|r| {
            let mut v = [0.0];
            Beta::new(0.5, 0.5).unwrap().sample_into(r, &mut v);
            v[0]
        },
    ];
    for (s, f) in supports.iter().zip(samplers) {
        for _ in 0..10_000 {
            let x = f(&mut rng);
            assert!(s.contains(x), "{x} outside {s:?}");
        }
    }
}

#[test]
fn log_prob_matches_closed_form_values() {
    let ln = f64::ln;
    let pi = std::f64::consts::PI;
    let cases: Vec<(&str, f64, f64)> = vec![
        ("Uniform(-1,3) at 0.2", Uniform::new(-1.0, 3.0).unwrap().log_prob(&[0.2]), ln(0.25)),
        ("Uniform(-1,3) at 3.5", Uniform::new(-1.0, 3.0).unwrap().log_prob(&[3.5]), f64::NEG_INFINITY),
        // N(1, 2²) at 0: exp(-1/8) / (2 √(2π)).
        (
            "Normal(1,2) at 0",
            Normal::new(1.0, 2.0).unwrap().log_prob(&[0.0]),
            ln((-0.125f64).exp() / (2.0 * (2.0 * pi).sqrt())),
        ),
        // LogNormal(0, 1) at e: exp(-1/2) / (e √(2π)).
        (
            "LogNormal(0,1) at e",
            LogNormal::new(0.0, 1.0).unwrap().log_prob(&[std::f64::consts::E]),
            -0.5 - 1.0 - 0.5 * ln(2.0 * pi),
        ),
        // Gamma(2, rate 3) at 1: 3² · 1 · e⁻³ / Γ(2).
        ("Gamma(2,3) at 1", Gamma::new(2.0, 3.0).unwrap().log_prob(&[1.0]), ln(9.0) - 3.0),
        ("Gamma(2,3) at -1", Gamma::new(2.0, 3.0).unwrap().log_prob(&[-1.0]), f64::NEG_INFINITY),
        // Beta(2, 3) at 0.4: 0.4 · 0.6² / B(2, 3), B(2, 3) = 1/12.
        ("Beta(2,3) at 0.4", Beta::new(2.0, 3.0).unwrap().log_prob(&[0.4]), ln(0.4 * 0.36 * 12.0)),
        ("Beta(1,1) at 0", Beta::new(1.0, 1.0).unwrap().log_prob(&[0.0]), 0.0),
        ("Exponential(2) at 0.5", Exponential::new(2.0).unwrap().log_prob(&[0.5]), ln(2.0) - 1.0),
        ("HalfNormal(1) at 0", HalfNormal::new(1.0).unwrap().log_prob(&[0.0]), 0.5 * ln(2.0 / pi)),
        ("HalfNormal(1) at -0.1", HalfNormal::new(1.0).unwrap().log_prob(&[-0.1]), f64::NEG_INFINITY),
    ];
    for (name, got, expected) in cases {
        if expected.is_infinite() {
            assert_eq!(got, expected, "{name}");
        } else {
            assert!((got - expected).abs() < 1e-12, "{name}: {got} vs {expected}");
        }
    }
}

fn mvn() -> MultivariateNormal {
    MultivariateNormal::new([1.0, -0.5], [[2.0, 0.6], [0.6, 1.0]]).unwrap()
}

#[test]
fn multivariate_normal_matches_the_explicit_formula() {
    // Σ⁻¹ = [[1, -0.6], [-0.6, 2]] / det, det = 2 - 0.36.
    let det: f64 = 2.0 - 0.36;
    let x = [0.3, 0.4];
    let (a, b) = (x[0] - 1.0, x[1] + 0.5);
    let quad = (a * a * 1.0 - 2.0 * 0.6 * a * b + b * b * 2.0) / det;
    let expected = -0.5 * quad - 0.5 * det.ln() - (2.0 * std::f64::consts::PI).ln();
    assert!((mvn().log_prob(&x) - expected).abs() < 1e-12);
}

#[test]
fn multivariate_normal_integrates_to_one() {
    let d = mvn();
    let h = 0.02;
    let mut total = 0.0;
    for i in -600..=600 {
        for j in -600..=600 {
            let x = [1.0 + i as f64 * h, -0.5 + j as f64 * h];
            total += d.log_prob(&x).exp();
        }
    }
    let integral = total * h * h;
    assert!((integral - 1.0).abs() < 1e-6, "integral {integral}");
}

#[test]
fn multivariate_normal_moments() {
    let d = mvn();
    let n = 200_000;
    let mut rng = stream_rng(9, 0);
    let mut xs = vec![[0.0; 2]; n];
    for x in &mut xs {
        d.sample_into(&mut rng, x);
    }
    let cov = [[2.0, 0.6], [0.6, 1.0]];
    let mean = [1.0, -0.5];
    let m: Vec<f64> = (0..2).map(|k| xs.iter().map(|x| x[k]).sum::<f64>() / n as f64).collect();
    for k in 0..2 {
        let se = (cov[k][k] / n as f64).sqrt();
        assert!((m[k] - mean[k]).abs() < 5.0 * se, "mean[{k}] = {}", m[k]);
    }
    for i in 0..2 {
        for j in 0..2 {
            let c = xs.iter().map(|x| (x[i] - m[i]) * (x[j] - m[j])).sum::<f64>() / (n - 1) as f64;
            // Var of a Gaussian sample covariance: (Σii Σjj + Σij²) / n.
            let se = ((cov[i][i] * cov[j][j] + cov[i][j] * cov[i][j]) / n as f64).sqrt();
            assert!((c - cov[i][j]).abs() < 5.0 * se, "cov[{i}][{j}] = {c}");
        }
    }
}

#[test]
fn multivariate_normal_from_precision_or_cholesky_is_the_same_distribution() {
    // Σ = L Lᵀ with L below; P = Σ⁻¹ computed independently by cofactors.
    let l = [[1.5, 0.0, 0.0], [0.4, 0.8, 0.0], [-0.3, 0.5, 1.1]];
    let cov: [[f64; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| l[i][k] * l[j][k]).sum()));
    let c = |i: usize, j: usize| cov[i % 3][j % 3];
    let det = (0..3).map(|j| cov[0][j] * (c(1, j + 1) * c(2, j + 2) - c(1, j + 2) * c(2, j + 1))).sum::<f64>();
    // The inverse is the transposed cofactor matrix over the determinant.
    let prec: [[f64; 3]; 3] = std::array::from_fn(|j| {
        std::array::from_fn(|i| (c(i + 1, j + 1) * c(i + 2, j + 2) - c(i + 1, j + 2) * c(i + 2, j + 1)) / det)
    });
    let mean = [0.5, -1.0, 2.0];
    let by_cov = MultivariateNormal::new(mean, cov).unwrap();
    let by_prec = MultivariateNormal::from_precision(mean, prec).unwrap();
    let by_chol = MultivariateNormal::from_cholesky(mean, l).unwrap();
    let mut rng = stream_rng(4, 0);
    for _ in 0..50 {
        let x: Vec<f64> = (0..3).map(|_| 3.0 * rng.sample::<f64, _>(StandardNormal)).collect();
        let lp = by_cov.log_prob(&x);
        assert!((by_prec.log_prob(&x) - lp).abs() < 1e-10 * lp.abs().max(1.0), "precision: {x:?}");
        assert!((by_chol.log_prob(&x) - lp).abs() < 1e-12 * lp.abs().max(1.0), "cholesky: {x:?}");
    }
    // Same factor, so the same draws from the same stream.
    let (mut a, mut b) = ([0.0; 3], [0.0; 3]);
    by_cov.sample_into(&mut stream_rng(5, 0), &mut a);
    by_prec.sample_into(&mut stream_rng(5, 0), &mut b);
    assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-10), "{a:?} vs {b:?}");
}

#[test]
fn invalid_arguments_are_typed_errors() {
    let bad: Vec<(&str, Result<()>)> = vec![
        ("Uniform(1, -1)", Uniform::new(1.0, -1.0).map(drop)),
        ("Uniform(0, 0)", Uniform::new(0.0, 0.0).map(drop)),
        ("Uniform(NaN, 1)", Uniform::new(f64::NAN, 1.0).map(drop)),
        ("Uniform(0, inf)", Uniform::new(0.0, f64::INFINITY).map(drop)),
        ("Normal(0, -2)", Normal::new(0.0, -2.0).map(drop)),
        ("Normal(0, 0)", Normal::new(0.0, 0.0).map(drop)),
        ("Normal(inf, 1)", Normal::new(f64::INFINITY, 1.0).map(drop)),
        ("LogNormal(0, NaN)", LogNormal::new(0.0, f64::NAN).map(drop)),
        ("Gamma(0, 1)", Gamma::new(0.0, 1.0).map(drop)),
        ("Gamma(1, -1)", Gamma::new(1.0, -1.0).map(drop)),
        ("Beta(0, 1)", Beta::new(0.0, 1.0).map(drop)),
        ("Exponential(0)", Exponential::new(0.0).map(drop)),
        ("HalfNormal(-1)", HalfNormal::new(-1.0).map(drop)),
        ("MVN not PD", MultivariateNormal::new([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]).map(drop)),
        ("MVN not symmetric", MultivariateNormal::new([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]]).map(drop)),
        ("MVN wrong size", MultivariateNormal::new([0.0, 0.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).map(drop)),
        ("MVN empty", MultivariateNormal::new(Vec::<f64>::new(), Vec::<Vec<f64>>::new()).map(drop)),
        ("MVN precision not PD", MultivariateNormal::from_precision([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]).map(drop)),
        ("MVN precision asymmetric", MultivariateNormal::from_precision([0.0; 2], [[1.0, 0.1], [0.0, 1.0]]).map(drop)),
        ("MVN factor upper", MultivariateNormal::from_cholesky([0.0; 2], [[1.0, 0.1], [0.0, 1.0]]).map(drop)),
        ("MVN factor diagonal 0", MultivariateNormal::from_cholesky([0.0; 2], [[1.0, 0.0], [0.3, 0.0]]).map(drop)),
        ("MVN factor NaN", MultivariateNormal::from_cholesky([0.0; 2], [[1.0, 0.0], [f64::NAN, 1.0]]).map(drop)),
        ("MVN factor size", MultivariateNormal::from_cholesky([0.0; 2], [[1.0, 0.0]]).map(drop)),
    ];
    for (name, r) in bad {
        match r {
            Err(Error::InvalidDistribution { reason, .. }) => assert!(!reason.is_empty(), "{name}"),
            other => panic!("{name}: expected InvalidDistribution, got {other:?}"),
        }
    }
    let msg = Normal::new(0.0, -2.0).unwrap_err().to_string();
    assert!(msg.contains("std must be positive") && msg.contains("-2"), "{msg}");
}

#[test]
fn into_distribution_accepts_values_and_results() {
    assert!(Normal::new(0.0, 1.0).into_distribution().is_ok());
    assert!(Normal::new(0.0, 1.0).unwrap().into_distribution().is_ok());
    assert!(Normal::new(0.0, -1.0).into_distribution().is_err());
}
