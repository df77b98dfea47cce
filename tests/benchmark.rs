//! The generic benchmark runner on a model the examples do not know: a conjugate Gaussian
//! whose posterior is known, so the C2ST it reports can be checked.

use sbi_runtime::benchmark::{Benchmark, run_benchmark};
use sbi_runtime::prelude::*;
use sbi_runtime::rng::stream_rng;

/// θ ~ N(0, I₂), x = θ + ½ ε: the posterior is N(0.8 x, 0.2 I).
#[simulator]
fn conjugate(rng: &mut impl Rng) -> [f64; 2] {
    let theta = sample!(Normal(0.0, 1.0); 2);
    theta.map(|t| t + 0.5 * rng.sample::<f64, _>(StandardNormal))
}

fn reference(x_o: &[f64], n: usize) -> Vec<f64> {
    let mut rng = stream_rng(99, 0);
    (0..n)
        .flat_map(|_| {
            x_o.iter().map(|x| 0.8 * x + 0.2f64.sqrt() * rng.sample::<f64, _>(StandardNormal)).collect::<Vec<_>>()
        })
        .collect()
}

fn npe() -> Npe {
    Npe::default().with_training(TrainConfig::default().with_progress(false).with_seed(2))
}

#[test]
fn any_model_runs_and_is_scored_against_its_reference() {
    let x_o = [0.7, -1.2];
    let bench = Benchmark::new(x_o.to_vec())
        .with_simulations(3_000)
        .with_samples(2_000)
        .with_progress(false)
        .with_reference(reference(&x_o, 2_000));
    let result = run_benchmark(&Conjugate, &npe(), &bench).unwrap();
    assert_eq!(result.samples.rows(), 2_000);
    assert_eq!(result.samples.names, ["theta[0]", "theta[1]"]);
    let c2st = result.c2st.expect("a reference was given");
    // 2000 against 2000 draws of the same distribution give 0.5 ± 0.02 (sbibm's NPE at 10^3–10^4
    // simulations on Gaussian tasks: 0.5–0.6).
    assert!(c2st < 0.6, "c2st {c2st}");
    assert!(result.training.as_ref().is_some_and(|t| t.epochs > 0));
    assert!(result.warnings.is_empty(), "{:?}", result.warnings);
    let line = result.to_string();
    assert!(line.contains("simulate_s=") && line.contains("ms_per_epoch=") && line.contains("c2st="), "{line}");
    assert!(result.total_seconds() >= result.train_seconds);

    // The same settings give the same draws.
    let again = run_benchmark(&Conjugate, &npe(), &bench).unwrap();
    assert_eq!(again.samples, result.samples);

    // Written in the format the extension names, read back unchanged.
    let dir = std::env::temp_dir().join(format!("sbi-benchmark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("samples.npz");
    result.samples.write(&path).unwrap();
    assert_eq!(Samples::read_npz(&path).unwrap(), result.samples);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rounds_are_scored_one_by_one() {
    let x_o = [0.2, 0.4];
    let bench = Benchmark::new(x_o.to_vec())
        .with_simulations(2_000)
        .with_samples(1_000)
        .with_rounds(2)
        .with_round_scores()
        .with_progress(false)
        .with_reference(reference(&x_o, 1_000));
    let result = run_benchmark(&Conjugate, &npe(), &bench).unwrap();
    assert_eq!(result.round_c2st.len(), 1, "round 1 is scored, round 2 is the result");
    assert!(result.c2st.is_some_and(|c| c < 0.65), "{result}");
    assert!(result.to_string().starts_with("round=1 c2st="));
}

#[test]
fn bad_benchmarks_are_typed_errors() {
    let x_o = vec![0.0, 0.0];
    let quiet = |b: Benchmark| b.with_simulations(300).with_samples(10).with_progress(false);
    let odd = quiet(Benchmark::new(x_o.clone()).with_reference(vec![0.0; 5]));
    assert!(matches!(run_benchmark(&Conjugate, &npe(), &odd), Err(Error::ShapeMismatch { .. })));
    let no_rounds = quiet(Benchmark::new(x_o.clone()).with_rounds(0));
    assert!(matches!(run_benchmark(&Conjugate, &npe(), &no_rounds), Err(Error::Config(_))));
    let wrong_size = quiet(Benchmark::new(vec![0.0; 3]));
    let fast = Npe::default().with_training(TrainConfig::default().with_progress(false).with_max_epochs(1));
    assert!(matches!(run_benchmark(&Conjugate, &fast, &wrong_size), Err(Error::Observation(_))));
}
