//! The samplers on targets with known moments: a correlated Gaussian, a banana and a
//! bimodal mixture. Tolerances are Monte Carlo standard errors computed from the reported
//! effective sample size (5 of them), so a test fails only if the sampler is wrong.

use super::*;
use crate::potential::FnPotential;
use crate::potential::Unconstrained;
use crate::prelude::*;

/// Two wide normal sites: the support is the plane, the transform the identity.
#[simulator]
fn plane(rng: &mut impl Rng) -> [f64; 1] {
    let a = sample!(Normal(0.0, 10.0));
    let b = sample!(Normal(0.0, 10.0));
    [a + b + rng.random::<f64>()]
}

/// One bounded site, so that sampling goes through a nonlinear transform.
#[simulator]
fn interval(rng: &mut impl Rng) -> [f64; 1] {
    let a = sample!(Uniform(-10.0, 10.0));
    [a + rng.random::<f64>()]
}

fn moments(s: &Samples) -> (Vec<f64>, Vec<f64>) {
    (s.mean(), s.covariance())
}

fn quiet(method: McmcMethod) -> McmcConfig {
    let base = match method {
        McmcMethod::Mh => McmcConfig::mh(),
        McmcMethod::Nuts { .. } => McmcConfig::nuts(),
        _ => McmcConfig::default(),
    };
    base.with_progress(false).with_seed(3)
}

const MEAN: [f64; 2] = [1.0, -1.0];
const SD: [f64; 2] = [1.0, 2.0];
const RHO: f64 = 0.8;

fn correlated_gaussian(t: &[f64]) -> f64 {
    let (u, v) = ((t[0] - MEAN[0]) / SD[0], (t[1] - MEAN[1]) / SD[1]);
    -(u * u - 2.0 * RHO * u * v + v * v) / (2.0 * (1.0 - RHO * RHO))
}

fn check_gaussian(s: &Samples, ess: &[f64], what: &str) {
    let (m, c) = moments(s);
    for j in 0..2 {
        let se = SD[j] / ess[j].sqrt();
        assert!((m[j] - MEAN[j]).abs() < 5.0 * se, "{what}: mean {j} = {} (se {se})", m[j]);
        let var = SD[j] * SD[j];
        let rel = (c[j * 2 + j] - var).abs() / var;
        assert!(rel < 5.0 * (2.0 / ess[j]).sqrt(), "{what}: variance {j} = {} (ESS {})", c[j * 2 + j], ess[j]);
    }
    let rho = c[1] / (c[0] * c[3]).sqrt();
    let se = (1.0 - RHO * RHO) / ess[0].min(ess[1]).sqrt();
    assert!((rho - RHO).abs() < 5.0 * se, "{what}: correlation {rho}");
}

const NUTS: McmcMethod = McmcMethod::Nuts { max_depth: 10, target_accept: 0.8 };

#[test]
fn slice_mh_and_nuts_sample_a_correlated_gaussian() {
    let target = FnPotential::new(2, correlated_gaussian);
    for method in [McmcMethod::Slice, McmcMethod::Mh, NUTS] {
        let run = mcmc(&Plane.prior(), &target, 10_000, &quiet(method)).unwrap();
        assert_eq!(run.samples.rows(), 10_000);
        assert!(run.rhat.iter().all(|r| *r < 1.05), "{method:?}: R-hat {:?}", run.rhat);
        assert!(run.ess.iter().all(|e| *e > 500.0), "{method:?}: ESS {:?}", run.ess);
        check_gaussian(&run.samples, &run.ess, &format!("{method:?}"));
    }
}

/// θ1 ~ N(0, 1), θ2 | θ1 ~ N(θ1², 0.5²): E θ2 = 1, Var θ2 = Var θ1² + 0.25 = 2.25.
#[test]
fn slice_and_nuts_sample_a_banana() {
    let banana = FnPotential::new(2, |t: &[f64]| -0.5 * t[0] * t[0] - 0.5 * ((t[1] - t[0] * t[0]) / 0.5).powi(2));
    for method in [McmcMethod::Slice, NUTS] {
        let run = mcmc(&Plane.prior(), &banana, 20_000, &quiet(method)).unwrap();
        let (m, c) = moments(&run.samples);
        let se0 = 1.0 / run.ess[0].sqrt();
        assert!(m[0].abs() < 5.0 * se0, "{method:?}: mean θ1 {}", m[0]);
        let se1 = 2.25f64.sqrt() / run.ess[1].sqrt();
        assert!((m[1] - 1.0).abs() < 5.0 * se1, "{method:?}: mean θ2 {} (se {se1})", m[1]);
        // Var θ1² has a heavy tail; its estimate's relative sd is about √(Var((θ²−1)²)/ESS)/2 ≈ 3.7/√ESS.
        assert!((c[3] - 2.25).abs() / 2.25 < 5.0 * 3.7 / run.ess[1].sqrt(), "{method:?}: variance θ2 {}", c[3]);
        // The ridge's curvature in the tails defeats a diagonal metric now and then.
        assert!(run.divergences < 500, "{method:?}: {} divergences", run.divergences);
    }
}

/// NUTS on a Gaussian with scales from 0.01 to 100, started from the prior (3 times broader
/// than the target): the metric learned in warm-up must absorb the scales, and the draws
/// must be nearly independent.
#[test]
fn nuts_adapts_to_a_badly_scaled_gaussian() {
    const SD: [f64; 4] = [0.01, 0.3, 3.0, 100.0];
    let target = FnPotential::new(4, |t: &[f64]| t.iter().zip(SD).map(|(x, s)| -0.5 * (x / s).powi(2)).sum());
    let config = quiet(NUTS).with_init(ChainInit::Prior);
    let run = mcmc(&Scales.prior(), &target, 10_000, &config).unwrap();
    let (m, c) = moments(&run.samples);
    for j in 0..4 {
        assert!(run.ess[j] > 3_000.0, "ESS {:?}", run.ess);
        assert!(m[j].abs() < 5.0 * SD[j] / run.ess[j].sqrt(), "mean {j}: {}", m[j]);
        let rel = (c[j * 4 + j] / (SD[j] * SD[j]) - 1.0).abs();
        assert!(rel < 5.0 * (2.0 / run.ess[j]).sqrt(), "variance {j}: {} vs {}", c[j * 4 + j], SD[j] * SD[j]);
    }
    assert_eq!(run.divergences, 0);
}

/// Four sites whose scales span four orders of magnitude.
#[simulator]
fn scales(rng: &mut impl Rng) -> [f64; 1] {
    let a = sample!(Normal(0.0, 0.03));
    let b = sample!(Normal(0.0, 0.9));
    let c = sample!(Normal(0.0, 9.0));
    let d = sample!(Normal(0.0, 300.0));
    [a + b + c + d + rng.random::<f64>()]
}

#[test]
fn resampled_starts_weight_the_modes_of_a_mixture() {
    let mixture = FnPotential::new(1, |t: &[f64]| {
        let n = |m: f64| (-0.5 * ((t[0] - m) / 0.5).powi(2)).exp();
        (0.3 * n(-3.0) + 0.7 * n(3.0)).ln()
    });
    for method in [McmcMethod::Slice, McmcMethod::Mh, NUTS] {
        let run = mcmc(&Interval.prior(), &mixture, 10_000, &quiet(method)).unwrap();
        let right = run.samples.values.iter().filter(|v| **v > 0.0).count() as f64 / 10_000.0;
        // 200 chains: the share of chains in the right mode has sd √(0.21/200) ≈ 0.032.
        assert!((right - 0.7).abs() < 5.0 * 0.032, "{method:?}: share in the right mode {right}");
        let inside: Vec<f64> = run.samples.values.iter().copied().filter(|v| *v > 0.0).collect();
        let mean = inside.iter().sum::<f64>() / inside.len() as f64;
        assert!((mean - 3.0).abs() < 0.05, "{method:?}: right mode's mean {mean}");
    }
}

#[test]
fn importance_sampling_recovers_a_gaussian() {
    let target = FnPotential::new(2, correlated_gaussian);
    let run = importance_sample(&Plane.prior(), &target, 5_000, &ImportanceConfig::default()).unwrap();
    assert!(run.ess > 1_000.0, "ESS {}", run.ess);
    // Resampled draws repeat; their precision is that of the weights' ESS.
    let ess = [run.ess, run.ess];
    check_gaussian(&run.samples, &ess, "importance sampling");
}

#[test]
fn same_seed_same_chains() {
    let target = FnPotential::new(2, correlated_gaussian);
    for method in [McmcMethod::Slice, NUTS] {
        let a = mcmc(&Plane.prior(), &target, 500, &quiet(method)).unwrap();
        let b = mcmc(&Plane.prior(), &target, 500, &quiet(method)).unwrap();
        assert_eq!(a.samples.values, b.samples.values);
        let c = mcmc(&Plane.prior(), &target, 500, &quiet(method).with_seed(4)).unwrap();
        assert_ne!(a.samples.values, c.samples.values);
    }
}

/// The unconstrained potential's gradient (chain rule through the transform, log-Jacobian
/// included) against finite differences of its values.
#[test]
fn unconstrained_gradient_matches_finite_differences() {
    let target = FnPotential::new(1, |t: &[f64]| -0.5 * ((t[0] - 2.0) / 1.5).powi(2) + (t[0] * 0.3).sin());
    let prior = Interval.prior();
    let u = Unconstrained::new(&prior, &target).unwrap();
    let z = [-3.0, -0.7, 0.0, 0.4, 2.5];
    let (values, grad) = u.log_potential_grad(&z).unwrap();
    assert_eq!(values, u.log_potential(&z).unwrap());
    for (i, zi) in z.iter().enumerate() {
        let h = 1e-4;
        let fd = (u.log_potential(&[zi + h]).unwrap()[0] - u.log_potential(&[zi - h]).unwrap()[0]) / (2.0 * h);
        assert!((grad[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()), "z = {zi}: {} vs {fd}", grad[i]);
    }
}

#[test]
fn budgets_and_bad_settings_are_errors() {
    let target = FnPotential::new(2, correlated_gaussian);
    let tight = quiet(McmcMethod::Slice).with_max_evaluations(200_000);
    assert!(matches!(mcmc(&Plane.prior(), &target, 10_000, &tight), Err(Error::McmcBudget { .. })));
    assert!(matches!(
        mcmc(&Plane.prior(), &target, 10, &quiet(McmcMethod::Slice).with_chains(0)),
        Err(Error::Config(_))
    ));
    let nowhere = FnPotential::new(2, |_: &[f64]| f64::NEG_INFINITY);
    assert!(matches!(mcmc(&Plane.prior(), &nowhere, 10, &quiet(McmcMethod::Mh)), Err(Error::NoFinitePotential { .. })));
    let deep = quiet(NUTS).with_method(McmcMethod::Nuts { max_depth: 0, target_accept: 0.8 });
    assert!(matches!(mcmc(&Plane.prior(), &target, 10, &deep), Err(Error::Config(_))));
    let tight = quiet(NUTS).with_max_evaluations(50_000);
    assert!(matches!(mcmc(&Plane.prior(), &target, 10_000, &tight), Err(Error::McmcBudget { .. })));
    let nan = FnPotential::new(2, |_: &[f64]| f64::NAN);
    let sir = importance_sample(&Plane.prior(), &nan, 10, &ImportanceConfig::default());
    assert!(matches!(sir, Err(Error::NoFinitePotential { .. })));
    let wrong_dim = FnPotential::new(3, |_: &[f64]| 0.0);
    assert!(mcmc(&Plane.prior(), &wrong_dim, 10, &quiet(McmcMethod::Slice)).is_err());
}

/// A user's transition: random-walk Metropolis with a fixed isotropic step.
struct FixedStepMetropolis {
    step: f64,
}

impl Transition for FixedStepMetropolis {
    fn sweep(
        &mut self,
        target: &mut Target,
        z: &mut [f64],
        f: &mut [f64],
        rngs: &mut [crate::rng::SimRng],
        _tune: bool,
    ) -> crate::Result<()> {
        use rand_distr::StandardNormal;
        let d = target.dim();
        let proposal: Vec<f64> = z
            .chunks_exact(d)
            .zip(rngs.iter_mut())
            .flat_map(|(row, rng)| {
                row.iter().map(|v| v + self.step * rng.sample::<f64, _>(StandardNormal)).collect::<Vec<_>>()
            })
            .collect();
        let fp = target.eval(&proposal)?;
        for (c, rng) in rngs.iter_mut().enumerate() {
            if rng.random::<f64>().ln() < fp[c] - f[c] {
                z[c * d..(c + 1) * d].copy_from_slice(&proposal[c * d..(c + 1) * d]);
                f[c] = fp[c];
            }
        }
        Ok(())
    }
}

/// A sampler brought by the user runs through `mcmc_with` with the toolkit's chains,
/// initialisation, budget and diagnostics.
#[test]
fn a_users_transition_samples_through_mcmc_with() {
    let target = FnPotential::new(2, correlated_gaussian);
    let config = McmcConfig::default().with_warmup(200).with_thin(10).with_progress(false).with_seed(5);
    let mut transition = FixedStepMetropolis { step: 0.8 };
    let run = mcmc_with(&Plane.prior(), &target, 10_000, &config, &mut transition).unwrap();
    assert_eq!(run.samples.rows(), 10_000);
    assert!(run.rhat.iter().all(|r| *r < 1.1), "R-hat {:?}", run.rhat);
    check_gaussian(&run.samples, &run.ess, "user's Metropolis");
}

/// A run that mixes carries no warning; one that does not is told so, and chains stuck in
/// separate modes are told apart from chains that have not converged.
#[test]
fn mixing_is_reported() {
    let target = FnPotential::new(2, correlated_gaussian);
    let good = mcmc(&Plane.prior(), &target, 10_000, &quiet(McmcMethod::Slice)).unwrap();
    assert!(good.warnings.is_empty(), "{:?}", good.warnings);

    // Random-walk MH barely started on a ridge of correlation 0.999: neither converged nor mixed.
    let ridge = FnPotential::new(2, |t: &[f64]| {
        let (u, v) = (t[0], t[1]);
        -(u * u - 2.0 * 0.999 * u * v + v * v) / (2.0 * (1.0 - 0.999 * 0.999))
    });
    let short = quiet(McmcMethod::Mh).with_warmup(2).with_thin(1).with_init(ChainInit::Prior);
    let bad = mcmc(&Plane.prior(), &ridge, 4_000, &short).unwrap();
    assert!(bad.warnings.iter().any(|w| w.contains("not converged")), "{:?} (R-hat {:?})", bad.warnings, bad.rhat);
    assert!(bad.warnings.iter().any(|w| w.contains("effective sample size")), "{:?}", bad.warnings);

    // Two far modes: each chain stays in one, and each group of chains agrees.
    let modes = FnPotential::new(2, |t: &[f64]| {
        let m = |c: f64| -((t[0] - c).powi(2) + t[1].powi(2)) / (2.0 * 0.3 * 0.3);
        let (a, b) = (m(-8.0), m(8.0));
        a.max(b) + ((a - a.max(b)).exp() + (b - a.max(b)).exp()).ln()
    });
    let split = mcmc(&Plane.prior(), &modes, 10_000, &quiet(McmcMethod::Slice)).unwrap();
    assert!(split.rhat[0] > RHAT_WARNING, "R-hat {:?}", split.rhat);
    assert!(split.warnings.iter().any(|w| w.contains("separate modes")), "{:?}", split.warnings);
    assert!(!split.warnings.iter().any(|w| w.contains("within the modes")), "{:?}", split.warnings);
    // Chains in two modes at ±8 that each wander: every chain's level is offset by a
    // quarter of the spread within it, so the modes explain R-hat's excess but do not agree
    // inside either.
    let mut rng = crate::rng::stream_rng(3, 0);
    let chains: Vec<Vec<f64>> = (0..40)
        .map(|c| {
            let level = if c % 2 == 0 { -8.0 } else { 8.0 } + 0.25 * rng.sample::<f64, _>(StandardNormal);
            (0..50).map(|_| level + 0.25 * rng.sample::<f64, _>(StandardNormal)).collect()
        })
        .collect();
    let rhat = crate::samplers::diagnostics::split_rhat(&chains);
    let names = ["a".to_string()];
    let w = mixing_warnings(&names, &|_| chains.clone(), &[rhat], &[2000.0], 2000, 0);
    assert!(w[0].contains("separate modes") && w[0].contains("within the modes R-hat is still"), "{w:?}");
}

#[test]
fn every_sampler_run_carries_its_warnings_in_its_description() {
    let samples = Samples { values: vec![0.0; 4], names: vec!["a".into(), "b".into()] };
    let leaky = SamplerRun::Rejection(RejectionRun {
        samples: samples.clone(),
        proposals: 10,
        acceptance_rate: 0.3,
        evaluations_per_proposal: None,
    });
    assert!(leaky.warnings()[0].starts_with("only 30% of the estimator's draws"), "{:?}", leaky.warnings());
    assert!(leaky.describe().contains("acceptance 0.3000 (10 proposals); warning: only 30%"), "{}", leaky.describe());
    let fine = SamplerRun::Rejection(RejectionRun {
        samples: samples.clone(),
        proposals: 10,
        acceptance_rate: 0.9,
        evaluations_per_proposal: None,
    });
    assert!(fine.warnings().is_empty() && !fine.describe().contains("warning"));
    let collapsed = SamplerRun::Importance(ImportanceRun { samples, proposals: 1000, ess: 3.0 });
    assert!(collapsed.describe().contains("; warning: importance weights' ESS is 3"), "{}", collapsed.describe());
}

/// Chains started from a pool (an earlier posterior's draws with their log density) sample
/// a target 10⁴ times narrower than the prior: N((3, −2), 10⁻³²) under N(0, 10²)². Mean and
/// variance within five Monte Carlo standard errors; a pool whose shapes disagree, or with no
/// point of finite weight, is a typed error.
#[test]
fn chains_start_from_a_pool_of_earlier_draws() {
    use rand_distr::{Distribution, Normal as N};
    const S: f64 = 1e-3;
    let centre = [3.0, -2.0];
    let target = FnPotential::new(2, move |t: &[f64]| {
        -0.5 * t.iter().zip(centre).map(|(a, c)| ((a - c) / S).powi(2)).sum::<f64>()
    });
    // The pool: 1,000 draws of N(centre, (10 S)²), with their log density.
    let mut rng = crate::rng::stream_rng(7, 0);
    let wide = N::new(0.0, 10.0 * S).unwrap();
    let theta: Vec<f64> = (0..1_000).flat_map(|_| centre.map(|c| c + wide.sample(&mut rng))).collect();
    let log_density: Vec<f64> = theta
        .chunks_exact(2)
        .map(|t| -0.5 * t.iter().zip(centre).map(|(a, c)| ((a - c) / (10.0 * S)).powi(2)).sum::<f64>())
        .collect();
    let pool = StartPool::new(theta.clone(), log_density.clone());
    let run = mcmc_from(&Plane.prior(), &target, 10_000, &quiet(McmcMethod::Slice), &pool).unwrap();
    assert!(run.rhat.iter().all(|r| *r < 1.05), "R-hat {:?}", run.rhat);
    let (m, c) = moments(&run.samples);
    for j in 0..2 {
        let se = S / run.ess[j].sqrt();
        assert!((m[j] - centre[j]).abs() < 5.0 * se, "mean {j} = {} (se {se})", m[j]);
        let rel = (c[j * 2 + j] - S * S).abs() / (S * S);
        assert!(rel < 5.0 * (2.0 / run.ess[j]).sqrt(), "variance {j} = {} (ESS {})", c[j * 2 + j], run.ess[j]);
    }
    let short = StartPool::new(theta[..3].to_vec(), log_density.clone());
    let err = mcmc_from(&Plane.prior(), &target, 100, &quiet(McmcMethod::Slice), &short).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let nowhere = StartPool::new(theta, vec![f64::NAN; 1_000]);
    let err = mcmc_from(&Plane.prior(), &target, 100, &quiet(McmcMethod::Slice), &nowhere).unwrap_err();
    assert!(matches!(err, Error::NoFinitePotential { .. }), "{err}");
}
