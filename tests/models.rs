//! What `#[simulator]` generates, checked at run time: parameter structs, hierarchical
//! priors (log density as the chain of conditionals), supports, transforms to unconstrained
//! space, settings fields, user-defined distributions, and the original function.

#[path = "../examples/models/mod.rs"]
mod models;

use models::hierarchical::{GROUPS, Groups, GroupsParams};
use models::sir::Sir;
use models::slcp::{Slcp, SlcpParams};
use models::two_moons::{TwoMoons, TwoMoonsParams, two_moons};
use sbi_runtime::distributions::{HalfNormal, Normal};
use sbi_runtime::prelude::*;
use sbi_runtime::rng::stream_rng;

#[test]
fn parameter_structs_know_their_names_and_layout() {
    assert_eq!(TwoMoonsParams::DIM, 2);
    assert_eq!(TwoMoonsParams::names(), ["theta1", "theta2"]);
    assert_eq!(SlcpParams::names(), ["theta[0]", "theta[1]", "theta[2]", "theta[3]", "theta[4]"]);
    assert_eq!(GroupsParams::DIM, 2 + GROUPS);
    assert_eq!(&GroupsParams::names()[..3], ["mu", "tau", "theta[0]"]);

    let p = GroupsParams { mu: 0.5, tau: 1.5, theta: [1.0, 2.0, 3.0, 4.0, 5.0] };
    assert_eq!(p.to_vec(), [0.5, 1.5, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(GroupsParams::from_flat(&p.to_vec()).unwrap(), p);
    assert!(matches!(GroupsParams::from_flat(&[1.0; 3]), Err(Error::ShapeMismatch { expected: 7, got: 3, .. })));
    let mut short = [0.0; 2];
    assert!(p.write_flat(&mut short).is_err());
    let rows = GroupsParams::from_rows(&[p.to_vec(), p.to_vec()].concat()).unwrap();
    assert_eq!(rows, vec![p, p]);
}

#[test]
fn hierarchical_log_prob_is_the_chain_of_conditionals() {
    let prior = Groups.prior();
    let p = GroupsParams { mu: 0.3, tau: 0.7, theta: [0.1, -0.4, 0.9, 0.3, 0.0] };
    let lp = |d: &dyn Fn(f64) -> f64, x: f64| d(x);
    let normal = |m: f64, s: f64| move |x: f64| Normal::new(m, s).unwrap().log_prob(&[x]);
    let mut expected = lp(&normal(0.0, 2.0), p.mu) + HalfNormal::new(1.0).unwrap().log_prob(&[p.tau]);
    for t in p.theta {
        expected += lp(&normal(p.mu, p.tau), t);
    }
    assert!((prior.log_prob(&p) - expected).abs() < 1e-12);
    assert_eq!(prior.log_prob_flat(&p.to_vec()).unwrap(), prior.log_prob(&p));

    // τ < 0 lies outside HalfNormal's support, and makes Normal(μ, τ) invalid: density zero.
    let bad = GroupsParams { tau: -0.5, ..p };
    assert_eq!(prior.log_prob(&bad), f64::NEG_INFINITY);
    assert!(prior.log_prob_flat(&[0.0; 3]).is_err());
}

#[test]
fn supports_follow_the_sites() {
    let s = Groups.prior().support(&[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
    assert_eq!(s[0], Support::Real);
    assert_eq!(s[1], Support::GreaterThan(0.0));
    assert!(s[2..].iter().all(|s| *s == Support::Real));
    assert_eq!(TwoMoons.prior().support(&[0.0, 0.0]).unwrap(), [Support::Interval(-1.0, 1.0); 2]);
}

/// Determinant by Gaussian elimination with partial pivoting (small test matrices only).
fn det(mut a: Vec<Vec<f64>>) -> f64 {
    let n = a.len();
    let mut d = 1.0;
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())).unwrap();
        if p != c {
            a.swap(p, c);
            d = -d;
        }
        d *= a[c][c];
        let pivot = a[c].clone();
        for row in a.iter_mut().skip(c + 1) {
            let f = row[c] / pivot[c];
            for (x, p) in row.iter_mut().zip(&pivot).skip(c) {
                *x -= f * p;
            }
        }
    }
    d
}

fn check_transform<P: Prior>(prior: &P, seed: u64) {
    let d = prior.dim();
    let mut rng = stream_rng(seed, 0);
    for _ in 0..20 {
        let z: Vec<f64> = (0..d).map(|_| 1.5 * rng.sample::<f64, _>(StandardNormal)).collect();
        let mut theta = vec![0.0; d];
        let log_det = prior.constrain(&z, &mut theta).unwrap();
        assert!(prior.log_prob_flat(&theta).unwrap().is_finite(), "θ = {theta:?} is outside the prior");
        let mut back = vec![0.0; d];
        let log_det_back = prior.unconstrain(&theta, &mut back).unwrap();
        for (a, b) in z.iter().zip(&back) {
            assert!((a - b).abs() < 1e-8, "round trip {z:?} -> {back:?}");
        }
        assert!((log_det - log_det_back).abs() < 1e-8);
        // Full Jacobian dθ/dz by central differences (hierarchical sites make it triangular).
        let h = 1e-6;
        let jac: Vec<Vec<f64>> = (0..d)
            .map(|i| {
                (0..d)
                    .map(|j| {
                        let (mut zp, mut zm) = (z.clone(), z.clone());
                        zp[j] += h;
                        zm[j] -= h;
                        let (mut tp, mut tm) = (vec![0.0; d], vec![0.0; d]);
                        prior.constrain(&zp, &mut tp).unwrap();
                        prior.constrain(&zm, &mut tm).unwrap();
                        (tp[i] - tm[i]) / (2.0 * h)
                    })
                    .collect()
            })
            .collect();
        let fd = det(jac).abs().ln();
        assert!((fd - log_det).abs() < 1e-5, "log-det {log_det} vs finite differences {fd} at z = {z:?}");
    }
}

#[test]
fn transforms_round_trip_and_match_finite_differences() {
    check_transform(&TwoMoons.prior(), 1);
    check_transform(&Slcp.prior(), 2);
    check_transform(&Groups.prior(), 3);
    check_transform(&Sir { population: 1000, days: 10 }.prior(), 4);
}

#[test]
fn prior_samples_are_in_the_support() {
    let prior = Groups.prior();
    let mut rng = stream_rng(5, 0);
    for _ in 0..1000 {
        let p = prior.sample(&mut rng).unwrap();
        assert!(p.tau > 0.0);
        assert!(prior.log_prob(&p).is_finite());
    }
}

#[test]
fn the_original_function_draws_like_the_engine() {
    let sims = simulate(&TwoMoons, 50).seed(11).progress(false).run().unwrap();
    for (row, &index) in sims.index.iter().enumerate() {
        let x = two_moons(&mut stream_rng(11, index));
        assert_eq!(sims.x_row(row), x);
    }
    // With settings: the function's arguments are the struct's fields.
    let model = Sir { population: 5_000, days: 30 };
    let sims = simulate(&model, 5).seed(2).progress(false).run().unwrap();
    assert_eq!(sims.x_shape, Shape::Vector(30));
    let x = models::sir::sir(&mut stream_rng(2, 0), 5_000, 30);
    assert_eq!(sims.x_row(0), x.as_slice());
}

/// A user-defined distribution: the symmetric triangular distribution on [-1, 1].
#[derive(Clone, Copy)]
struct Triangular;

impl PriorDistribution for Triangular {
    fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) {
        out[0] = rng.random::<f64>() + rng.random::<f64>() - 1.0;
    }
    fn log_prob(&self, x: &[f64]) -> f64 {
        if x[0].abs() <= 1.0 { (1.0 - x[0].abs()).ln() } else { f64::NEG_INFINITY }
    }
    fn support(&self) -> Support {
        Support::Interval(-1.0, 1.0)
    }
}

#[simulator]
fn with_custom_prior(rng: &mut impl Rng) -> f64 {
    let a = sample!(Triangular);
    let b = sample!(Triangular; 3);
    a + b.iter().sum::<f64>() + 0.1 * rng.sample::<f64, _>(StandardNormal)
}

#[test]
fn user_defined_distributions_plug_in() {
    let prior = WithCustomPrior.prior();
    assert_eq!(prior.names(), ["a", "b[0]", "b[1]", "b[2]"]);
    let lp = prior.log_prob_flat(&[0.5, 0.0, -0.5, 0.25]).unwrap();
    assert!((lp - (0.5f64.ln() + 0.0 + 0.5f64.ln() + 0.75f64.ln())).abs() < 1e-12);
    let sims = simulate(&WithCustomPrior, 2000).seed(1).progress(false).run().unwrap();
    assert!(sims.theta.iter().all(|t| t.abs() <= 1.0));
    let mean = sims.theta.iter().step_by(4).sum::<f64>() / 2000.0;
    // Var of the triangular distribution is 1/6; 5 standard errors.
    assert!(mean.abs() < 5.0 * (1.0f64 / 6.0 / 2000.0).sqrt());
}

#[simulator]
fn joint_site(rng: &mut impl Rng) -> [f64; 2] {
    let w = sample!(MultivariateNormal([0.0, 1.0], [[1.0, 0.8], [0.8, 1.0]]); 2);
    [w[0] + 0.01 * rng.sample::<f64, _>(StandardNormal), w[1]]
}

#[simulator]
fn wrong_joint_size(rng: &mut impl Rng) -> f64 {
    let w = sample!(MultivariateNormal([0.0, 1.0], [[1.0, 0.0], [0.0, 1.0]]); 3);
    w[0] + rng.random::<f64>()
}

#[test]
fn vector_distributions_fill_a_vector_site() {
    let sims = simulate(&JointSite, 20_000).seed(3).progress(false).run().unwrap();
    let n = sims.len() as f64;
    let (m0, m1) =
        (sims.theta.iter().step_by(2).sum::<f64>() / n, sims.theta.iter().skip(1).step_by(2).sum::<f64>() / n);
    let cov = sims.theta.chunks(2).map(|t| (t[0] - m0) * (t[1] - m1)).sum::<f64>() / (n - 1.0);
    // Standard error of the sample covariance: sqrt((1 + 0.8²)/n).
    assert!((cov - 0.8).abs() < 5.0 * (1.64 / n).sqrt(), "covariance {cov}");
    // A joint distribution whose size differs from the site's is a typed error, not a panic.
    let err = WrongJointSize.prior().sample(&mut stream_rng(0, 0)).unwrap_err();
    assert!(err.to_string().contains("prior site `w`"), "{err}");
}

/// A large setting whose copies are counted: the generated code must not clone it per
/// simulation or per prior evaluation.
#[derive(Debug)]
struct Design {
    rows: Vec<[f64; 3]>,
}

static DESIGN_CLONES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Clone for Design {
    fn clone(&self) -> Self {
        DESIGN_CLONES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Design { rows: self.rows.clone() }
    }
}

#[simulator]
fn regression(rng: &mut impl Rng, design: Design, prior_scale: f64) -> Vec<f64> {
    // Plain `let`s before the first site: computed from settings, shared by sites and body.
    let precision = [[1.0 / (prior_scale * prior_scale), 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 4.0]];
    let noise = 0.1;
    let w = sample!(MultivariateNormal::from_precision([0.0; 3], precision); 3);
    design.rows.iter().map(|r| r[0] * w[0] + r[1] * w[1] + r[2] * w[2] + noise * rng.random::<f64>()).collect()
}

#[test]
fn settings_are_borrowed_and_a_preamble_feeds_the_sites() {
    let design = Design { rows: (0..100).map(|i| [1.0, i as f64 / 100.0, (i as f64 / 10.0).sin()]).collect() };
    let model = Regression { design, prior_scale: 3.0 };
    let before = DESIGN_CLONES.load(std::sync::atomic::Ordering::SeqCst);
    let sims = simulate(&model, 20_000).seed(2).progress(false).run().unwrap();
    let lp = model.prior().log_prob_flat(&[0.0, 0.0, 0.0]).unwrap();
    let clones = DESIGN_CLONES.load(std::sync::atomic::Ordering::SeqCst) - before;
    // One copy per `prior()` call (the prior struct owns the settings), none per simulation.
    assert!(clones <= 3, "{clones} copies of the design for 20000 simulations");
    assert_eq!(sims.x_dim(), 100);
    // The precision built in the preamble is the prior's: variances 9, 1, 1/4.
    let n = sims.len() as f64;
    for (k, var) in [9.0, 1.0, 0.25].into_iter().enumerate() {
        let v = sims.theta.iter().skip(k).step_by(3).map(|w| w * w).sum::<f64>() / n;
        // Var of a sample variance of a Gaussian: 2σ⁴/n.
        assert!((v - var).abs() < 5.0 * var * (2.0 / n).sqrt(), "var[{k}] = {v}");
    }
    let expected = -0.5 * (9.0f64 * 1.0 * 0.25).ln() - 1.5 * (2.0 * std::f64::consts::PI).ln();
    assert!((lp - expected).abs() < 1e-12, "{lp} vs {expected}");
}

/// y' = θ y² from y(0) = 1 blows up at t = 1/θ: observed until t = 2, the solve fails for
/// θ > 1/2, and the run excludes those simulations with the solver's message.
#[simulator]
fn blow_up(rng: &mut impl Rng) -> [f64; 1] {
    let theta = sample!(Uniform(0.0, 1.0));
    let sol = sbi_runtime::ode::solve(
        |_, y, dy| dy[0] = theta * y[0] * y[0],
        &[1.0],
        &[0.0, 2.0],
        &sbi_runtime::ode::OdeConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    [sol.at(1)[0] + 0.01 * rng.sample::<f64, _>(StandardNormal)]
}

#[test]
fn ode_models_simulate_and_failed_solves_are_excluded_with_their_message() {
    use models::lotka_volterra::{LotkaVolterra, log_populations};
    let sims = simulate(&LotkaVolterra, 500).seed(4).progress(false).run().unwrap();
    assert_eq!((sims.len(), sims.x_dim()), (500, 20));
    // The noiseless solution at the first draw lies within the noise (σ = 0.1) of its simulation.
    let t = sims.theta_row(0);
    let clean = log_populations([t[0], t[1], t[2], t[3]]).unwrap();
    assert!(clean.iter().zip(sims.x_row(0)).all(|(a, b)| (a - b).abs() < 0.6));

    let sims = simulate(&BlowUp, 400).seed(5).progress(false).run().unwrap();
    let failed = sims.invalid_counts().panicked;
    // Half the prior blows up before t = 2: 200 ± 5 standard deviations.
    assert!((failed as f64 - 200.0).abs() < 5.0 * 10.0, "{failed} failed solves");
    for s in sims.excluded() {
        assert!(s.theta[0] > 0.5 - 1e-3, "{s}");
        assert!(s.message.as_deref().is_some_and(|m| m.contains("ODE solver")), "{s}");
    }
    assert!(sims.theta.iter().all(|&t| t < 0.5 + 1e-3));
    // y(2) = 1 / (1 − 2θ) for the rest; away from the singularity (there y(2) ≤ 10), the
    // solver's error is far below the noise (σ = 0.01, so 6σ).
    for i in (0..sims.len()).filter(|&i| sims.theta_row(i)[0] < 0.45) {
        let exact = 1.0 / (1.0 - 2.0 * sims.theta_row(i)[0]);
        assert!((sims.x_row(i)[0] - exact).abs() < 0.06, "θ = {}", sims.theta_row(i)[0]);
    }
}
