//! The simulation engine: reproducibility across thread counts, invalid outputs and panics,
//! checkpoints and resume, files, proposals and configuration errors.

#[path = "../examples/models/mod.rs"]
mod models;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use models::gaussian_linear::{GaussianLinear, GaussianLinearParams};
use models::sir::Sir;
use models::slcp::Slcp;
use models::two_moons::TwoMoons;
use sbi_runtime::InvalidKind;
use sbi_runtime::prelude::*;
use sbi_runtime::simulate::InvalidSimulation;

#[test]
fn same_seed_same_result_with_one_or_two_threads() {
    fn check<M: Simulator>(model: &M, n: usize) {
        let one = simulate(model, n).seed(5).threads(1).chunk_size(97).progress(false).run().unwrap();
        let two = simulate(model, n).seed(5).threads(2).progress(false).run().unwrap();
        assert_eq!(one, two, "θ and x must be bit-identical");
        let other = simulate(model, n).seed(6).threads(2).progress(false).run().unwrap();
        assert_ne!(one.theta, other.theta);
    }
    check(&TwoMoons, 5_000);
    check(&Slcp, 5_000);
    check(&Sir { population: 2_000, days: 20 }, 500);
}

/// Invalid in three ways, depending on θ: NaN above 0.6, inf below -0.8, a panic near 0.
#[simulator]
fn fragile(rng: &mut impl Rng) -> [f64; 2] {
    let theta = sample!(Uniform(-1.0, 1.0));
    if theta.abs() < 0.05 {
        panic!("the solver diverged at theta = {theta}");
    }
    let noise: f64 = rng.sample(StandardNormal);
    if theta > 0.6 {
        [f64::NAN, noise]
    } else if theta < -0.8 {
        [noise, f64::INFINITY]
    } else {
        [theta, noise]
    }
}

#[test]
fn invalid_simulations_are_excluded_and_counted() {
    let n = 4_000;
    let sims = simulate(&Fragile, n).seed(1).progress(false).run().unwrap();
    let c = sims.invalid_counts();
    assert_eq!(sims.len() + c.total(), n);
    assert!(sims.x.iter().all(|v| v.is_finite()));
    // Each cause has its expected share of the uniform prior: 20% NaN, 10% inf, 5% panics.
    for (count, p) in [(c.nan, 0.2), (c.infinite, 0.1), (c.panicked, 0.05)] {
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!((count as f64 - n as f64 * p).abs() < 5.0 * sd, "{count} vs {}", n as f64 * p);
    }
    // The methods agree with the counts, and say what happened where.
    assert_eq!(sims.excluded().len(), c.total());
    assert_eq!(sims.excluded_by(InvalidKind::Panicked).count(), c.panicked);
    assert_eq!(sims.excluded_theta(InvalidKind::Nan).len(), c.nan * sims.theta_dim());
    assert!(sims.excluded_theta(InvalidKind::Nan).iter().all(|&t| t > 0.6));
    assert_eq!(c.to_string(), format!("{} NaN, {} infinite, {} panicked", c.nan, c.infinite, c.panicked));
    let panic = sims.excluded_by(InvalidKind::Panicked).next().unwrap().to_string();
    assert!(
        panic.starts_with("simulation ") && panic.contains(": the simulator panicked (the solver diverged at"),
        "{panic}"
    );
    for InvalidSimulation { kind, theta, message, .. } in sims.excluded() {
        match kind {
            InvalidKind::Nan => assert!(theta[0] > 0.6),
            InvalidKind::Infinite => assert!(theta[0] < -0.8),
            InvalidKind::Panicked => {
                assert!(theta[0].abs() < 0.05);
                assert!(message.as_deref().unwrap().contains("the solver diverged"), "{message:?}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Valid rows keep their own index, so the run is auditable.
    assert!(sims.index.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn the_error_policy_stops_at_the_first_invalid_simulation() {
    let err = simulate(&Fragile, 1_000).seed(1).on_invalid(InvalidPolicy::Error).progress(false).run().unwrap_err();
    match err {
        Error::InvalidSimulation { theta, kind, .. } => {
            assert!(matches!(kind, InvalidKind::Nan | InvalidKind::Infinite | InvalidKind::Panicked));
            assert_eq!(theta.len(), 1);
        }
        other => panic!("expected InvalidSimulation, got {other}"),
    }
}

#[simulator]
fn always_nan(rng: &mut impl Rng) -> f64 {
    let theta = sample!(Normal(0.0, 1.0));
    theta * f64::NAN + rng.random::<f64>()
}

#[simulator]
fn shape_shifter(rng: &mut impl Rng) -> Vec<f64> {
    let theta = sample!(Uniform(0.0, 1.0));
    vec![rng.random::<f64>(); if theta < 0.5 { 2 } else { 3 }]
}

/// A hierarchical site whose arguments are invalid half of the time (std < 0).
#[simulator]
fn bad_hierarchy(rng: &mut impl Rng) -> f64 {
    let s = sample!(Normal(0.0, 1.0));
    let t = sample!(Normal(0.0, s));
    t + rng.random::<f64>()
}

#[test]
fn hopeless_runs_are_typed_errors() {
    let err = simulate(&AlwaysNan, 100).progress(false).run().unwrap_err();
    assert!(matches!(err, Error::NoValidSimulations { total: 100, nan: 100, .. }), "{err}");
    let err = simulate(&ShapeShifter, 100).progress(false).run().unwrap_err();
    assert!(matches!(err, Error::ObservationShape { .. }), "{err}");

    let sims = simulate(&BadHierarchy, 2_000).seed(3).progress(false).run().unwrap();
    let c = sims.invalid_counts();
    assert!(c.prior > 800 && c.prior < 1200, "about half should fail, got {}", c.prior);
    assert!(sims.invalid.iter().all(|s| s.message.as_deref().unwrap().contains("prior site `t`")));
}

#[test]
fn configuration_errors() {
    assert!(matches!(simulate(&TwoMoons, 0).run(), Err(Error::Config(_))));
    assert!(matches!(simulate(&TwoMoons, 10).threads(0).run(), Err(Error::Config(_))));
    assert!(matches!(simulate(&TwoMoons, 10).chunk_size(0).run(), Err(Error::Config(_))));
    assert!(matches!(simulate_from_flat(&TwoMoons, &[0.1, 0.2, 0.3]).run(), Err(Error::ShapeMismatch { .. })));
}

#[test]
fn simulating_from_a_proposal() {
    let thetas: Vec<GaussianLinearParams> =
        (0..200).map(|i| GaussianLinearParams { theta: [i as f64 / 100.0; 10] }).collect();
    let sims = simulate_from(&GaussianLinear, &thetas).seed(4).progress(false).run().unwrap();
    assert_eq!(sims.params::<GaussianLinearParams>().unwrap(), thetas);
    // x − θ is the likelihood's noise: variance 0.1 per coordinate (5 standard errors).
    let resid: Vec<f64> = sims.x.iter().zip(&sims.theta).map(|(x, t)| x - t).collect();
    let var = resid.iter().map(|r| r * r).sum::<f64>() / resid.len() as f64;
    assert!((var - 0.1).abs() < 5.0 * 0.1 * (2.0 / resid.len() as f64).sqrt(), "{var}");
    let flat: Vec<f64> = thetas.iter().flat_map(|t| t.to_vec()).collect();
    let again = simulate_from_flat(&GaussianLinear, &flat).seed(4).threads(1).progress(false).run().unwrap();
    assert_eq!(sims, again);
}

#[test]
fn save_load_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let sims = simulate(&Fragile, 500).seed(9).progress(false).run().unwrap();
    let path = dir.path().join("sims.safetensors");
    sims.save(&path).unwrap();
    let loaded = Simulations::load(&path).unwrap();
    assert_eq!(loaded, sims, "θ, x, indices, names, shape and invalid records all survive");
    assert!(loaded.invalid.iter().any(|s| s.message.is_some()));

    // numpy's .npz: the same simulations back, names, shape and model identity included.
    let npz = dir.path().join("sims.npz");
    sims.save_npz(&npz).unwrap();
    assert_eq!(Simulations::load_npz(&npz).unwrap(), sims);
    assert!(matches!(Simulations::load(&npz), Err(Error::File { .. })), "an .npz is not a safetensors file");
    let samples = Samples { values: sims.theta.clone(), names: sims.param_names.clone() };
    samples.write_npz(dir.path().join("s.npz")).unwrap();
    assert_eq!(Samples::read_npz(dir.path().join("s.npz")).unwrap(), samples);
    samples.write_npy(dir.path().join("s.npy")).unwrap();
    let (values, rows, cols) = sbi_runtime::io::read_npy(dir.path().join("s.npy")).unwrap();
    assert_eq!((values, rows, cols), (samples.values.clone(), samples.rows(), 1));
    assert!(matches!(Simulations::load_npz(dir.path().join("s.npz")), Err(Error::File { .. })));

    let csv = dir.path().join("sims.csv");
    sims.write_csv(&csv).unwrap();
    let table = sbi_runtime::io::read_csv(&csv).unwrap();
    assert_eq!(table.header, ["theta", "x[0]", "x[1]"]);
    assert_eq!(table.rows(), sims.len());
    assert_eq!(table.row(3), [sims.theta_row(3), sims.x_row(3)].concat());

    // Corrupt, truncated and foreign files are typed errors.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(Simulations::load(&path), Err(Error::File { .. })));
    std::fs::write(&path, b"hello").unwrap();
    assert!(matches!(Simulations::load(&path), Err(Error::File { .. })));
    assert!(matches!(Simulations::load(dir.path().join("none.safetensors")), Err(Error::Io { .. })));
}

/// Calls of [`interruptible`], and the count after which it raises [`STOP`].
static CALLS: AtomicUsize = AtomicUsize::new(0);
static STOP_AT: AtomicUsize = AtomicUsize::new(usize::MAX);
static STOP: std::sync::LazyLock<Arc<AtomicBool>> = std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Counts its calls and raises the interrupt flag after `STOP_AT` of them. (Counters in
/// settings would be part of the model's identity: their values change as it runs.)
#[simulator]
fn interruptible(rng: &mut impl Rng) -> [f64; 2] {
    let theta = sample!(Normal(0.0, 1.0); 2);
    if CALLS.fetch_add(1, Ordering::SeqCst) + 1 >= STOP_AT.load(Ordering::SeqCst) {
        STOP.store(true, Ordering::SeqCst);
    }
    theta.map(|t| t + rng.sample::<f64, _>(StandardNormal))
}

#[test]
fn an_interrupted_run_resumes_without_redoing_work() {
    let probes = sbi_runtime::simulate::PROBES as usize;
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("run.safetensors");
    let n = 1_000;
    STOP_AT.store(350 + probes, Ordering::SeqCst);
    let run = |chunk: usize| {
        simulate(&Interruptible, n)
            .seed(21)
            .chunk_size(chunk)
            .checkpoint(&ckpt)
            .interrupt_flag(STOP.clone())
            .progress(false)
            .run()
    };
    match run(100) {
        Err(Error::Interrupted { completed, total, saved }) => {
            assert!((350..n).contains(&completed), "{completed}");
            assert_eq!((total, saved), (n, true));
        }
        other => panic!("expected an interruption, got {other:?}"),
    }
    let done_before = CALLS.load(Ordering::SeqCst) - probes;
    assert!(ckpt.exists());

    // Resume: only the remaining simulations run (and the model's probes), whatever the
    // chunk size (a huge one once overflowed and returned more rows than asked).
    STOP.store(false, Ordering::SeqCst);
    STOP_AT.store(usize::MAX, Ordering::SeqCst);
    let resumed = run(usize::MAX).unwrap();
    assert_eq!(resumed.len(), n);
    assert_eq!(CALLS.load(Ordering::SeqCst), n + 2 * probes, "{done_before} simulations were redone");

    // The result equals an uninterrupted run, and the checkpoint now holds it.
    let fresh = simulate(&Interruptible, n).seed(21).progress(false).run().unwrap();
    assert_eq!(resumed, fresh);
    assert_eq!(Simulations::load(&ckpt).unwrap(), fresh);

    // A checkpoint from another run is refused, never mixed in.
    let err = simulate(&Interruptible, n).seed(22).checkpoint(&ckpt).progress(false).run().unwrap_err();
    assert!(matches!(&err, Error::File { reason, .. } if reason.contains("seed")), "{err}");
    let err = simulate(&Interruptible, n + 1).seed(21).checkpoint(&ckpt).progress(false).run().unwrap_err();
    assert!(matches!(&err, Error::File { reason, .. } if reason.contains("size")), "{err}");
}

/// Two features, up to three trials: the second trial is absent (all NaN) when θ > 0.5,
/// and partly NaN when θ < 0.1.
#[simulator]
fn gappy(rng: &mut impl Rng) -> VarTrials<2, 3> {
    let theta = sample!(Uniform(0.0, 1.0));
    let noise: f64 = rng.random();
    if theta < 0.1 {
        VarTrials(vec![[theta, noise], [f64::NAN, 1.0]])
    } else if theta > 0.5 {
        VarTrials(vec![[theta, noise]])
    } else {
        VarTrials(vec![[theta, noise], [noise, theta], [1.0, 2.0]])
    }
}

/// Whole absent trials are data; a trial only partly NaN makes the simulation invalid.
#[test]
fn absent_trials_are_kept_and_partial_ones_are_invalid() {
    let sims = simulate(&Gappy, 2_000).seed(3).progress(false).run().unwrap();
    assert_eq!(sims.x_shape, Shape::Trials { trials: 3, features: 2 });
    let counts = sims.invalid_counts();
    assert!(counts.nan > 100 && counts.nan < 300, "{counts:?}");
    assert_eq!(sims.len() + counts.nan, 2_000);
    for (theta, x) in sims.theta.iter().zip(sims.x.chunks_exact(6)) {
        assert!(*theta >= 0.1);
        assert_eq!(x[2..].iter().all(|v| v.is_nan()), *theta > 0.5);
    }
}
