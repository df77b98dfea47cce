//! Approximate Bayesian computation on a conjugate Gaussian model, θ ~ N(0, 1) and
//! x ~ N(θ, 0.5²): the exact posterior is N(0.8 x_o, 0.2), and the ABC posterior of a
//! uniform tolerance ε is known too, `p_ε(θ) ∝ N(θ; 0, 1) · P(|x − x_o| ≤ ε | θ)`, so every
//! check compares with the distribution the method targets at the tolerance it reached,
//! within Monte Carlo error.

use sbi_runtime::diagnostics::{Calibration, CalibrationConfig};
use sbi_runtime::inference::abc::{AbcStop, Bandwidth};
use sbi_runtime::prelude::*;
use sbi_runtime::samplers::SamplerRun;

const NOISE: f64 = 0.5;

/// θ ~ N(0, 1), x ~ N(θ, 0.5²).
#[simulator]
fn conjugate(rng: &mut impl Rng) -> [f64; 1] {
    let theta = sample!(Normal(0.0, 1.0));
    [theta + NOISE * rng.sample::<f64, _>(StandardNormal)]
}

/// As `conjugate`, but the simulator fails (NaN) for θ > 1.5 and panics for θ < −2.5.
#[simulator]
fn fragile(rng: &mut impl Rng) -> [f64; 1] {
    let theta = sample!(Normal(0.0, 1.0));
    assert!(theta > -2.5, "the solver diverged");
    if theta > 1.5 {
        return [f64::NAN];
    }
    [theta + NOISE * rng.sample::<f64, _>(StandardNormal)]
}

/// θ ~ Uniform(0, 1), x ~ N(θ, 0.02²): at x_o = 1.02 the posterior is a normal truncated
/// below its mode, at the prior's upper bound.
#[simulator]
fn bounded(rng: &mut impl Rng) -> [f64; 1] {
    let theta = sample!(Uniform(0.0, 1.0));
    [theta + 0.02 * rng.sample::<f64, _>(StandardNormal)]
}

/// The standard normal CDF (Abramowitz and Stegun 7.1.26 through erf; error < 1.5·10⁻⁷).
fn phi(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

/// Mean and variance of the ABC posterior `p_ε` at `x_o` (ε → 0: the exact posterior), by
/// quadrature on a fine grid.
fn abc_moments(x_o: f64, eps: f64) -> (f64, f64) {
    let (lo, hi, n) = (-8.0, 8.0, 16_000);
    let h = (hi - lo) / n as f64;
    let (mut z, mut m1, mut m2) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let t = lo + (i as f64 + 0.5) * h;
        let like = if eps > 0.0 {
            phi((x_o + eps - t) / NOISE) - phi((x_o - eps - t) / NOISE)
        } else {
            (-0.5 * ((x_o - t) / NOISE).powi(2)).exp()
        };
        let p = (-0.5 * t * t).exp() * like;
        z += p;
        m1 += p * t;
        m2 += p * t * t;
    }
    let mean = m1 / z;
    (mean, m2 / z - mean * mean)
}

/// Weighted mean and variance of one-parameter particles.
fn weighted(values: &[f64], weights: &[f64]) -> (f64, f64) {
    let mean: f64 = values.iter().zip(weights).map(|(v, w)| v * w).sum();
    (mean, values.iter().zip(weights).map(|(v, w)| w * (v - mean).powi(2)).sum())
}

/// Checks that particles match `p_ε` within four standard errors for an effective sample
/// size `ess`: `√(var/ess)` for the mean, `var·√(2/ess)` for the variance.
fn assert_matches(values: &[f64], weights: &[f64], ess: f64, target: (f64, f64), what: &str) {
    let (mean, var) = weighted(values, weights);
    let (tm, tv) = target;
    assert!((mean - tm).abs() < 4.0 * (tv / ess).sqrt(), "{what}: mean {mean:.4}, theory {tm:.4} (ESS {ess:.0})");
    assert!(
        (var - tv).abs() < 4.0 * tv * (2.0 / ess).sqrt(),
        "{what}: variance {var:.4}, theory {tv:.4} (ESS {ess:.0})"
    );
}

fn table(n: usize) -> Simulations {
    simulate(&Conjugate, n).seed(1).progress(false).run().unwrap()
}

/// Plain rejection ABC targets `p_ε` at the tolerance it reaches, and its variance grows
/// with ε as `p_ε`'s does (about `0.8² ε²/3` above the exact 0.2).
#[test]
fn rejection_abc_matches_the_abc_posterior_of_its_tolerance() {
    let sims = table(40_000);
    let x_o = [1.5];
    let mut variances = Vec::new();
    for q in [0.025, 0.25] {
        let abc = RejectionAbc::default()
            .with_acceptance(Acceptance::Quantile(q))
            .with_distance(Distance::Euclidean(Scaling::None))
            .with_adjustment(None)
            .with_resample(Resample::Particles);
        let run = abc.train(&Conjugate, &sims).unwrap().run(&x_o, 100, 7).unwrap();
        assert_eq!(run.stop, AbcStop::Complete);
        assert_eq!(run.weights.len(), (q * 40_000.0_f64).ceil() as usize);
        let eps = run.epsilons[0];
        let target = abc_moments(x_o[0], eps);
        assert_matches(&run.particles.values, &run.weights, run.ess(), target, &format!("quantile {q}, ε {eps:.3}"));
        variances.push((eps, weighted(&run.particles.values, &run.weights).1, target.1));
    }
    let ((e_small, v_small, t_small), (e_big, v_big, t_big)) = (variances[0], variances[1]);
    assert!(e_big > 5.0 * e_small && t_big > t_small + 0.05, "{variances:?}");
    assert!(v_big > v_small + 0.03, "the variance grows with ε: {variances:?}");
}

/// With a wide tolerance in the tail, plain rejection is pulled towards the prior; the
/// linear (and heteroscedastic) adjustment moves the mean back to the exact 0.8·x_o and the
/// variance to the exact 0.2.
#[test]
fn regression_adjustment_moves_the_mean_toward_the_exact_one() {
    let sims = table(40_000);
    let x_o = [2.5];
    let exact = abc_moments(x_o[0], 0.0);
    assert!((exact.0 - 2.0).abs() < 1e-6 && (exact.1 - 0.2).abs() < 1e-6, "{exact:?}");
    let base = RejectionAbc::default().with_acceptance(Acceptance::Quantile(0.1)).with_resample(Resample::Particles);
    let plain = base.clone().with_adjustment(None).train(&Conjugate, &sims).unwrap().run(&x_o, 10, 1).unwrap();
    let (plain_mean, _) = weighted(&plain.particles.values, &plain.weights);
    for how in [Adjustment::Linear, Adjustment::Heteroscedastic] {
        let run = base.clone().with_adjustment(Some(how)).train(&Conjugate, &sims).unwrap().run(&x_o, 10, 1).unwrap();
        let (mean, _) = weighted(&run.particles.values, &run.weights);
        assert!((mean - exact.0).abs() < 0.5 * (plain_mean - exact.0).abs(), "{how:?}: {mean} vs plain {plain_mean}");
        assert_matches(&run.particles.values, &run.weights, run.ess(), exact, &format!("{how:?}"));
    }
}

/// SMC-ABC's weighted final population targets `p_ε` at its last tolerance, which is far
/// below rejection's at the same budget; with the adjustment and the kernel density, draws
/// match the exact posterior.
#[test]
fn smc_abc_reaches_small_tolerances_and_matches_theory() {
    let x_o = [1.5];
    let smc = SmcAbc::default()
        .with_particles(500)
        .with_budget(10_000)
        .with_distance(Distance::Euclidean(Scaling::None))
        .with_progress(false);
    let run =
        smc.clone().with_adjustment(None).with_resample(Resample::Particles).run(&Conjugate, &x_o, 100, 3).unwrap();
    assert_eq!(run.stop, AbcStop::Budget);
    assert!(run.simulations <= 10_000 && run.simulations > 9_000, "{}", run.simulations);
    assert!(run.epsilons.windows(2).all(|w| w[1] < w[0]), "ε decreases: {:?}", run.epsilons);
    let eps = *run.epsilons.last().unwrap();
    // Rejection keeping as many of as many simulations reaches a wider tolerance.
    let rejection = RejectionAbc::default()
        .with_acceptance(Acceptance::Count(500))
        .with_distance(Distance::Euclidean(Scaling::None))
        .train(&Conjugate, &table(10_000))
        .unwrap()
        .run(&x_o, 10, 1)
        .unwrap();
    assert!(eps < 0.8 * rejection.epsilons[0], "final ε {eps} vs rejection's {}", rejection.epsilons[0]);
    let target = abc_moments(x_o[0], eps);
    assert_matches(&run.particles.values, &run.weights, run.ess(), target, "SMC-ABC particles");
    // Adjusted, through the kernel density: the draws' moments are the exact posterior's,
    // with the kernel's variance (h² ≈ n_eff^(−2/5) of it) on top.
    let run = smc.run(&Conjugate, &x_o, 20_000, 3).unwrap();
    let draws = &run.samples.values;
    let ones = vec![1.0 / draws.len() as f64; draws.len()];
    let (_, exact_var) = abc_moments(x_o[0], 0.0);
    let h2 = run.ess().powf(-0.4);
    assert_matches(draws, &ones, run.ess(), (1.2, exact_var * (1.0 + h2)), "SMC-ABC adjusted draws");
}

/// The same seed gives the same draws with one thread or two, for both algorithms.
#[test]
fn abc_is_the_same_for_any_thread_count() {
    let sims = table(5_000);
    let in_pool = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let rej = RejectionAbc::default().train(&Conjugate, &sims).unwrap().run(&[0.3], 500, 5).unwrap();
            let smc = SmcAbc::default().with_particles(200).with_budget(3_000).with_progress(false);
            let smc = smc.run(&Conjugate, &[0.3], 500, 5).unwrap();
            (rej.samples.values, smc.samples.values, smc.epsilons)
        })
    };
    assert_eq!(in_pool(1), in_pool(2));
}

/// A final ε the budget cannot reach is flagged, not hidden and not a hang; a fixed ε that
/// accepts nothing is a typed error; invalid and panicking simulations are excluded and
/// counted; bad settings and observations are typed errors.
#[test]
fn budgets_invalid_simulations_and_bad_inputs() {
    let smc = SmcAbc::default().with_particles(200).with_budget(2_000).with_progress(false);
    let run = smc.clone().with_epsilon(Some(1e-9)).run(&Conjugate, &[0.3], 100, 1).unwrap();
    assert!(!run.reached_target() && run.stop == AbcStop::Budget);
    assert!(run.warnings().iter().any(|w| w.contains("above the requested")), "{:?}", run.warnings());
    let reached = smc.clone().with_epsilon(Some(0.5)).run(&Conjugate, &[0.3], 100, 1).unwrap();
    assert!(reached.reached_target() && reached.stop == AbcStop::Epsilon, "{:?}", reached.epsilons);
    let low = smc.clone().with_min_acceptance(0.9).run(&Conjugate, &[0.3], 100, 1).unwrap();
    assert_eq!(low.stop, AbcStop::Acceptance);

    let rej = RejectionAbc::default().with_acceptance(Acceptance::Epsilon(1e-12));
    let err = rej.train(&Conjugate, &table(1_000)).unwrap().run(&[0.3], 10, 1).unwrap_err();
    assert!(matches!(err, Error::AbcTolerance { .. }), "{err}");

    // θ > 1.5 gives NaN and θ < −2.5 panics: about 8% of prior draws.
    let run = smc.run(&Fragile, &[0.3], 100, 1).unwrap();
    assert!(run.invalid > 50, "invalid simulations are counted: {}", run.invalid);
    let sims = simulate(&Fragile, 2_000).seed(1).progress(false).run().unwrap();
    let rej = RejectionAbc::default().train(&Fragile, &sims).unwrap().run(&[0.3], 10, 1).unwrap();
    assert_eq!(rej.invalid, 2_000 - sims.len());

    let posterior = RejectionAbc::default().train(&Conjugate, &table(1_000)).unwrap();
    assert!(matches!(posterior.run(&[0.3, 0.1], 10, 1), Err(Error::Observation(_))));
    assert!(matches!(posterior.run(&[f64::NAN], 10, 1), Err(Error::Observation(_))));
    assert!(matches!(posterior.run(&[40.0], 10, 1), Err(Error::Observation(_))), "outside the table's range");
    assert!(posterior.clone().without_range_check().run(&[40.0], 10, 1).is_ok());
    assert!(matches!(smc.run(&Conjugate, &[0.3, 0.1], 10, 1), Err(Error::Observation(_))));
    for bad in [
        SmcAbc::default().with_particles(1),
        SmcAbc::default().with_quantile(1.0),
        SmcAbc::default().with_budget(10),
        SmcAbc::default().with_epsilon(Some(-1.0)),
    ] {
        assert!(matches!(bad.run(&Conjugate, &[0.3], 10, 1), Err(Error::Config(_))), "{bad:?}");
    }
    assert!(matches!(
        RejectionAbc::default().with_acceptance(Acceptance::Quantile(0.0)).train(&Conjugate, &table(100)),
        Err(Error::Config(_))
    ));
    // A summary whose length varies is a shape error.
    let varying =
        Summary::Custom(std::sync::Arc::new(|x: &[f64]| if x[0] > 0.0 { vec![x[0]] } else { vec![x[0], 1.0] }));
    assert!(matches!(
        RejectionAbc::default().with_summary(varying).train(&Conjugate, &table(100)),
        Err(Error::ShapeMismatch { .. })
    ));
}

/// The rejection posterior saves and loads to identical draws, refuses a tampered file,
/// and needs its custom summary again; the SMC posterior says it cannot be saved.
#[test]
fn save_load_and_custom_functions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abc.safetensors");
    let sims = table(2_000);
    let posterior = RejectionAbc::default().train(&Conjugate, &sims).unwrap();
    posterior.save(&path).unwrap();
    let loaded = RejectionAbcPosterior::load(&path, &Conjugate).unwrap();
    assert_eq!(posterior.sample_flat(&[0.4], 300).unwrap().values, loaded.sample_flat(&[0.4], 300).unwrap().values);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(RejectionAbcPosterior::load(&path, &Conjugate), Err(Error::File { .. })));

    let square: sbi_runtime::inference::abc::SummaryFn = std::sync::Arc::new(|x: &[f64]| vec![x[0], x[0] * x[0]]);
    let custom = RejectionAbc::default()
        .with_summary(Summary::Custom(square.clone()))
        .with_distance(Distance::L1(Scaling::Sd))
        .train(&Conjugate, &sims)
        .unwrap();
    custom.save(&path).unwrap();
    assert!(matches!(RejectionAbcPosterior::load(&path, &Conjugate), Err(Error::Config(_))));
    let back = RejectionAbcPosterior::load_custom(&path, &Conjugate, Some(square), None).unwrap();
    assert_eq!(custom.sample_flat(&[0.4], 50).unwrap().values, back.sample_flat(&[0.4], 50).unwrap().values);

    let smc = SmcAbc::default().posterior(&Conjugate);
    assert!(matches!(smc.save(&path), Err(Error::Config(_))));
}

/// Diagnostics take ABC posteriors as they take neural ones: SBC over test simulations
/// (rejection ABC's table serves them all; SMC-ABC runs at each, slowly), with densities
/// from the kernel density, which integrates to one.
#[test]
fn abc_posteriors_work_with_diagnostics() {
    let tests = simulate(&Conjugate, 20).seed(9).progress(false).run().unwrap();
    let config = CalibrationConfig::default().with_draws(100).with_progress(false).with_log_density(true);
    let rejection = RejectionAbc::default().train(&Conjugate, &table(10_000)).unwrap();
    let c = Calibration::run(&rejection, &tests, &config).unwrap();
    assert_eq!(c.tests(), 20);
    let smc = SmcAbc::default().with_particles(100).with_budget(600).with_progress(false).posterior(&Conjugate);
    let c = Calibration::run(&smc, &tests, &config.clone().with_log_density(false)).unwrap();
    assert_eq!(c.tests(), 20);
    let run = smc.sample_run_with_seed(&[0.3], 50, 2).unwrap();
    assert!(matches!(run, SamplerRun::Abc(_)) && run.describe().starts_with("ABC:"));

    let grid: Vec<f64> = (0..4000).map(|i| -4.0 + (i as f64 + 0.5) * 0.002).collect();
    let density = rejection.with_resample(Resample::Kde(Bandwidth::Silverman)).log_density(&grid, &[0.3]).unwrap();
    let total: f64 = density.iter().map(|l| l.exp() * 0.002).sum();
    assert!((total - 1.0).abs() < 1e-3, "the kernel density integrates to {total}");
}

/// A posterior piled against a bound of a uniform prior (x_o = 1.02: a normal truncated
/// below its mode) keeps its mass at the bound, where the exact one is largest; the kernel
/// density (here fitted in the parameters' space, truncated to the support) integrates to
/// one over the support, and its draws agree with it and never leave the support.
#[test]
fn a_posterior_against_a_bound_keeps_its_mass_there() {
    let sims = simulate(&Bounded, 20_000).seed(4).progress(false).run().unwrap();
    let abc = RejectionAbc::default().with_acceptance(Acceptance::Quantile(0.02)).with_adjustment(None);
    let posterior = abc.train(&Bounded, &sims).unwrap();
    let h = 1e-4;
    let grid: Vec<f64> = (0..10_000).map(|i| (i as f64 + 0.5) * h).collect();
    let density = posterior.log_density(&grid, &[1.02]).unwrap();
    let total: f64 = density.iter().map(|l| l.exp() * h).sum();
    assert!((total - 1.0).abs() < 0.02, "the kernel density integrates to {total} over (0, 1)");
    // Exact: N(1.02; θ, 0.02²) is largest at θ = 1 and 7.4 times smaller at θ = 0.96.
    let at = |t: f64| density[(t / h) as usize].exp();
    assert!(at(0.9995) > 2.0 * at(0.96), "density {} at the bound, {} at 0.96", at(0.9995), at(0.96));
    let draws = posterior.sample_with_seed(&[1.02], 20_000, 3).unwrap();
    assert!(draws.values.iter().all(|&t| t > 0.0 && t < 1.0));
    let share = draws.values.iter().filter(|&&t| t > 0.98).count() as f64 / 20_000.0;
    let mass: f64 = density[(0.98 / h) as usize..].iter().map(|l| l.exp() * h).sum();
    // Binomial error of the share: at most 0.0035; the density's own mass estimate: < 1%.
    assert!((share - mass).abs() < 0.02, "draws above 0.98: {share}, the density's mass there: {mass}");
}
