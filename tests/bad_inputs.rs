//! The bad-input table of the README, one test per row that earlier test files do not
//! already cover: silent wrong answers that are now right (large offsets, hierarchical
//! priors with invalid regions) or refused (another model's checkpoint or model file), and
//! faults that must be typed errors (panicking priors, damaged files, locked checkpoints,
//! impossible sizes, bad settings).

#[path = "../examples/models/mod.rs"]
mod models;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use models::hierarchical::{ScaleMixture, scale_mixture_log_posterior, scale_mixture_moments};
use models::offset::{FarPrior, NOISE, Shifted, truncated_normal_moments};
use models::two_moons::TwoMoons;
use sbi_runtime::InvalidKind;
use sbi_runtime::potential::FnPotential;
use sbi_runtime::prelude::*;
use sbi_runtime::samplers::{ImportanceConfig, SamplerRun, importance_sample, mcmc};

fn quick(seed: u64) -> TrainConfig {
    TrainConfig::default().with_seed(seed).with_progress(false)
}

fn quiet(sampler: Sampler) -> Sampler {
    sampler.with_progress(false)
}

/// Mean and standard deviation of column `j` of rows of `d` values.
fn column(values: &[f64], d: usize, j: usize) -> (f64, f64) {
    let col: Vec<f64> = values.iter().skip(j).step_by(d).copied().collect();
    let n = col.len() as f64;
    let mean = col.iter().sum::<f64>() / n;
    (mean, (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt())
}

/// A posterior of two parameters against exact moments: each mean within `mean_tol`
/// posterior standard deviations, each standard deviation within a factor `sd_factor`.
fn check_moments(what: &str, values: &[f64], exact: &[(f64, f64)], shift: f64, mean_tol: f64, sd_factor: f64) {
    for (j, &(m, s)) in exact.iter().enumerate() {
        let (mean, sd) = column(values, exact.len(), j);
        let mean = mean - shift;
        assert!((mean - m).abs() < mean_tol * s, "{what}, parameter {j}: mean {mean} against {m} (sd {s})");
        assert!(sd < s * sd_factor && sd > s / sd_factor, "{what}, parameter {j}: sd {sd} against {s}");
    }
}

/// NPE, NLE and NRE trained on `n` simulations of `model`, sampled at `x_o`.
fn three_methods<M: Simulator>(model: &M, x_o: &[f64], n: usize) -> Vec<(&'static str, Vec<f64>)> {
    let sims = simulate(model, n).seed(1).progress(false).run().unwrap();
    let mcmc = quiet(Sampler::Mcmc(McmcConfig::default().with_seed(3)));
    let npe = Npe::default().with_training(quick(2)).train(model, &sims).unwrap();
    let nle = Nle::default().with_training(quick(2)).with_sampler(mcmc.clone()).train(model, &sims).unwrap();
    let nre = Nre::default().with_training(quick(2)).with_sampler(mcmc).train(model, &sims).unwrap();
    vec![
        ("NPE", npe.sample_flat(x_o, 4_000).unwrap().values),
        ("NLE", nle.sample_flat(x_o, 4_000).unwrap().values),
        ("NRE", nre.sample_flat(x_o, 4_000).unwrap().values),
    ]
}

/// Observations near 10⁷ and parameters near 10⁸ give the posterior of the same model near
/// zero, for NPE, NLE and NRE (standardised in f64 before the networks' f32). Before, the
/// offset erased the signal: posteriors equal to the prior, or a single value.
#[test]
fn large_offsets_keep_the_posterior() {
    // The exact posterior sd is 0.1: neural estimates at 3,000 simulations land within 0.4
    // sd of its mean and 40% of its width (before: sd 0.3 or 0, means near 0).
    let exact: Vec<(f64, f64)> = [0.3, -0.5].iter().map(|&x| truncated_normal_moments(x, NOISE, -1.0, 1.0)).collect();
    let offset = 1e7;
    for (method, values) in three_methods(&Shifted { offset }, &[offset + 0.3, offset - 0.5], 3_000) {
        check_moments(&format!("{method}, x + 1e7"), &values, &exact, 0.0, 0.4, 1.4);
    }
    let exact: Vec<(f64, f64)> = [0.3, 0.7].iter().map(|&x| truncated_normal_moments(x, NOISE, 0.0, 1.0)).collect();
    let base = 1e8;
    for (method, values) in three_methods(&FarPrior { base }, &[0.3, 0.7], 3_000) {
        check_moments(&format!("{method}, θ + 1e8"), &values, &exact, base, 0.4, 1.4);
    }
}

/// An observation beyond f32's range once standardised is an error naming its column.
#[test]
fn values_beyond_f32_after_standardisation_are_errors() {
    let sims = simulate(&Shifted { offset: 0.0 }, 1_000).seed(1).progress(false).run().unwrap();
    let npe = Npe::default().with_training(quick(1).with_max_epochs(2)).train(&Shifted { offset: 0.0 }, &sims).unwrap();
    let err = npe.without_range_check().sample_flat(&[1e300, 0.0], 10).unwrap_err();
    assert!(matches!(&err, Error::Unrepresentable { column, .. } if column.contains("x[0]")), "{err}");
}

/// Parameter sets far beyond every training value (an MCMC proposal at 10⁴⁶ in a
/// log-transformed coordinate) score `-inf` in every potential, not an error that stops
/// the sampler; an observation that far is an error.
#[test]
fn parameters_beyond_f32_score_minus_infinity() {
    use sbi_runtime::potential::Potential;
    let model = Shifted { offset: 0.0 };
    let sims = simulate(&model, 1_000).seed(1).progress(false).run().unwrap();
    let training = quick(1).with_max_epochs(1);
    let (x_o, theta) = ([0.3, -0.5], [1e46, 0.0, 0.2, 0.1]);
    let npe = Npe::default().with_training(training.clone()).train(&model, &sims).unwrap();
    let nle = Nle::default().with_training(training.clone()).train(&model, &sims).unwrap();
    let nre = Nre::default().with_training(training).train(&model, &sims).unwrap();
    for (what, lp) in [
        ("NPE", npe.potential(&x_o).unwrap().log_potential_grad(&theta).unwrap()),
        ("NLE", nle.potential(&x_o).unwrap().log_potential_grad(&theta).unwrap()),
        ("NRE", nre.potential(&x_o).unwrap().log_potential_grad(&theta).unwrap()),
    ] {
        assert_eq!(lp.0[0], f64::NEG_INFINITY, "{what}");
        assert!(lp.0[1].is_finite(), "{what}");
        assert_eq!(&lp.1[..2], [0.0, 0.0], "{what}");
    }
    let far = nle.without_range_check().sample_flat(&[1e300, 0.0], 10);
    assert!(matches!(far, Err(Error::Unrepresentable { .. })));
}

mod before {
    use sbi_runtime::prelude::*;
    /// One version of a model.
    #[simulator]
    pub fn drift(rng: &mut impl Rng) -> [f64; 2] {
        let mu = sample!(Uniform(-1.0, 1.0));
        [mu + rng.sample::<f64, _>(StandardNormal), mu]
    }
}

mod after {
    use sbi_runtime::prelude::*;
    /// The same model after a bug fix in its body: same name, same parameters.
    #[simulator]
    pub fn drift(rng: &mut impl Rng) -> [f64; 2] {
        let mu = sample!(Uniform(-1.0, 1.0));
        [mu + rng.sample::<f64, _>(StandardNormal), 2.0 * mu]
    }
}

/// A model with a setting.
#[simulator]
fn scaled(rng: &mut impl Rng, scale: f64) -> [f64; 1] {
    let mu = sample!(Normal(0.0, 1.0));
    [scale * (mu + rng.sample::<f64, _>(StandardNormal))]
}

/// What a helper outside the simulator's body computes (stands for editing that helper).
static HELPER_FACTOR: AtomicU64 = AtomicU64::new(1);

fn helper(v: f64) -> f64 {
    v * HELPER_FACTOR.load(Ordering::SeqCst) as f64
}

/// A model whose simulator calls a function outside its body.
#[simulator]
fn calls_helper(rng: &mut impl Rng) -> [f64; 1] {
    let mu = sample!(Normal(0.0, 1.0));
    [helper(mu) + rng.random::<f64>()]
}

fn mismatch<T>(r: Result<T, Error>) -> (ModelPart, String) {
    match r {
        Err(e @ Error::ModelMismatch { part, .. }) => (part, e.to_string()),
        Err(e) => panic!("expected a model mismatch, got {e}"),
        Ok(_) => panic!("expected a model mismatch, got a result"),
    }
}

/// Rerunning with the same checkpoint after changing the simulator's body, a setting, or a
/// function it calls is refused, saying which part differs; the checkpoint is left as it was.
#[test]
fn a_checkpoint_of_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.safetensors");
    let old = simulate(&before::Drift, 300).seed(1).checkpoint(&path).progress(false).run().unwrap();
    let (part, msg) = mismatch(simulate(&after::Drift, 300).seed(1).checkpoint(&path).progress(false).run());
    assert_eq!(part, ModelPart::Source, "{msg}");
    assert!(msg.contains("delete"), "{msg}");
    assert_eq!(Simulations::load(&path).unwrap(), old, "the checkpoint is untouched");

    let path = dir.path().join("scaled.safetensors");
    simulate(&Scaled { scale: 1.0 }, 300).seed(1).checkpoint(&path).progress(false).run().unwrap();
    let (part, msg) =
        mismatch(simulate(&Scaled { scale: 1000.0 }, 300).seed(1).checkpoint(&path).progress(false).run());
    assert_eq!(part, ModelPart::Settings);
    assert!(msg.contains("scale: 1.0") && msg.contains("scale: 1000.0"), "{msg}");

    let path = dir.path().join("helper.safetensors");
    simulate(&CallsHelper, 300).seed(1).checkpoint(&path).progress(false).run().unwrap();
    HELPER_FACTOR.store(3, Ordering::SeqCst);
    let again = simulate(&CallsHelper, 300).seed(1).checkpoint(&path).progress(false).run();
    HELPER_FACTOR.store(1, Ordering::SeqCst);
    assert_eq!(mismatch(again).0, ModelPart::Behaviour);
    // Unchanged, the same run resumes (here: returns the finished result).
    simulate(&CallsHelper, 300).seed(1).checkpoint(&path).progress(false).run().unwrap();
}

/// Simulations of another model are refused for training and for appending.
#[test]
fn simulations_of_another_model_are_refused() {
    let old = simulate(&before::Drift, 500).seed(1).progress(false).run().unwrap();
    let (part, _) = mismatch(Npe::default().with_training(quick(1)).train(&after::Drift, &old));
    assert_eq!(part, ModelPart::Source);
    assert_eq!(mismatch(old.check_model(&after::Drift)).0, ModelPart::Source);
    old.check_model(&before::Drift).unwrap();
    let mut other = simulate(&after::Drift, 10).seed(2).progress(false).run().unwrap();
    assert_eq!(mismatch(other.append(&old)).0, ModelPart::Source);
}

/// A model file loaded into another model with the same parameter names (another body,
/// another setting) is refused.
#[test]
fn a_model_file_for_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sims = simulate(&before::Drift, 500).seed(1).progress(false).run().unwrap();
    let training = quick(1).with_max_epochs(2);
    let npe = dir.path().join("npe.safetensors");
    Npe::default().with_training(training.clone()).train(&before::Drift, &sims).unwrap().save(&npe).unwrap();
    let nle = dir.path().join("nle.safetensors");
    Nle::default().with_training(training.clone()).train(&before::Drift, &sims).unwrap().save(&nle).unwrap();
    let nre = dir.path().join("nre.safetensors");
    Nre::default().with_training(training.clone()).train(&before::Drift, &sims).unwrap().save(&nre).unwrap();
    assert_eq!(mismatch(NpePosterior::load(&npe, &after::Drift)).0, ModelPart::Source);
    assert_eq!(mismatch(NlePosterior::load(&nle, &after::Drift)).0, ModelPart::Source);
    assert_eq!(mismatch(NrePosterior::load(&nre, &after::Drift)).0, ModelPart::Source);
    NpePosterior::load(&npe, &before::Drift).unwrap();

    let sims = simulate(&Scaled { scale: 1.0 }, 500).seed(1).progress(false).run().unwrap();
    Npe::default().with_training(training).train(&Scaled { scale: 1.0 }, &sims).unwrap().save(&npe).unwrap();
    assert_eq!(mismatch(NpePosterior::load(&npe, &Scaled { scale: 2.0 })).0, ModelPart::Settings);
}

/// The hierarchical prior τ ~ N(1, 1), θ ~ N(0, τ) is undefined where τ ≤ 0. Every sampler
/// treats such points as outside the support, on the exact likelihood (tight bands: Monte
/// Carlo error only) and with trained estimators (NPE direct, NLE with slice sampling, NUTS
/// and importance sampling, NRE). Before, all of them stopped with "invalid Normal".
#[test]
fn a_hierarchical_prior_with_invalid_regions_is_sampled_by_every_sampler() {
    let x_o = [1.5, 1.7];
    let exact = scale_mixture_moments(&x_o);
    let prior = ScaleMixture.prior();
    assert_eq!(prior.log_prob_flat(&[-0.5, 0.3]).unwrap(), f64::NEG_INFINITY);

    // The exact potential: the log posterior up to a constant.
    let posterior = FnPotential::new(2, |t: &[f64]| scale_mixture_log_posterior(t[0], t[1], &x_o));
    for config in [McmcConfig::default(), McmcConfig::nuts()] {
        let method = config.method;
        let run = mcmc(&prior, &posterior, 8_000, &config.with_progress(false).with_seed(4)).unwrap();
        let ess = run.ess.iter().copied().fold(f64::INFINITY, f64::min);
        // Five Monte Carlo standard errors.
        check_moments(&format!("{method:?}"), &run.samples.values, &exact, 0.0, 5.0 / ess.sqrt(), 1.1);
    }
    let sir = importance_sample(&prior, &posterior, 8_000, &ImportanceConfig::default()).unwrap();
    check_moments("importance sampling", &sir.samples.values, &exact, 0.0, 5.0 / sir.ess.sqrt(), 1.1);

    // Trained estimators: simulation excludes the 16% of invalid prior draws.
    let sims = simulate(&ScaleMixture, 5_000).seed(1).progress(false).run().unwrap();
    assert!(sims.invalid_counts().prior > 500);
    let npe = Npe::default().with_training(quick(1)).train(&ScaleMixture, &sims).unwrap();
    let mut draws = vec![("NPE".to_string(), npe.sample_flat(&x_o, 4_000).unwrap().values)];
    let nle = Nle::default().with_training(quick(1)).train(&ScaleMixture, &sims).unwrap();
    for sampler in [
        Sampler::Mcmc(McmcConfig::default()),
        Sampler::Mcmc(McmcConfig::nuts()),
        Sampler::Importance(ImportanceConfig::default()),
    ] {
        let name = format!("NLE, {sampler:?}");
        let run = quiet(sampler.with_seed(5)).run(&prior, &nle.potential(&x_o).unwrap(), 4_000).unwrap();
        if let SamplerRun::Mcmc(r) = &run {
            assert!(r.rhat.iter().all(|r| *r < 1.1), "{name}: {}", run.describe());
        }
        draws.push((name, run.into_samples().values));
    }
    let nre =
        Nre::default().with_training(quick(1)).with_sampler(quiet(Sampler::default())).train(&ScaleMixture, &sims);
    draws.push(("NRE".to_string(), nre.unwrap().sample_flat(&x_o, 4_000).unwrap().values));
    for (what, values) in draws {
        assert!(values.chunks_exact(2).all(|r| r[0] > 0.0), "{what}: a draw with τ ≤ 0");
        check_moments(&what, &values, &exact, 0.0, 0.35, 1.35);
    }
}

/// A user's distribution: panics on a tenth of its draws, NaN on another tenth.
struct Unreliable;

impl PriorDistribution for Unreliable {
    fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) {
        let u: f64 = rng.random();
        assert!(u >= 0.1, "the user's distribution failed at u = {u}");
        out[0] = if u < 0.2 { f64::NAN } else { u };
    }
    fn log_prob(&self, x: &[f64]) -> f64 {
        if (0.0..=1.0).contains(&x[0]) { 0.0 } else { f64::NEG_INFINITY }
    }
    fn support(&self) -> Support {
        Support::Interval(0.0, 1.0)
    }
}

#[simulator]
fn unreliable_prior(rng: &mut impl Rng) -> f64 {
    let p = sample!(Unreliable);
    p + rng.random::<f64>()
}

/// A panicking prior and one drawing NaN are counted as invalid simulations, not a crash
/// of the process or a NaN parameter kept for training.
#[test]
fn panicking_and_nan_priors_are_invalid_simulations() {
    let sims = simulate(&UnreliablePrior, 2_000).seed(1).progress(false).run().unwrap();
    let prior_failures: Vec<_> = sims.invalid.iter().filter(|s| s.kind == InvalidKind::Prior).collect();
    let panics = prior_failures.iter().filter(|s| s.message.as_deref().unwrap().contains("panicked")).count();
    let nans = prior_failures.iter().filter(|s| s.message.as_deref().unwrap().contains("NaN")).count();
    // A tenth each: 200 ± 13.4 (binomial sd); six sds either side.
    assert!((120..=280).contains(&panics), "{panics} panics");
    assert!((120..=280).contains(&nans), "{nans} NaN draws");
    assert!(sims.theta.iter().all(|t| t.is_finite()));
    let err = simulate(&UnreliablePrior, 2_000).on_invalid(InvalidPolicy::Error).progress(false).run().unwrap_err();
    assert!(matches!(err, Error::InvalidSimulation { kind: InvalidKind::Prior, .. }), "{err}");
}

/// A flipped byte in a checkpoint or a model file is refused by its checksum.
#[test]
fn damaged_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sims_path = dir.path().join("sims.safetensors");
    let sims = simulate(&TwoMoons, 500).seed(1).progress(false).run().unwrap();
    sims.save(&sims_path).unwrap();
    let npe_path = dir.path().join("npe.safetensors");
    Npe::default().with_training(quick(1).with_max_epochs(2)).train(&TwoMoons, &sims).unwrap().save(&npe_path).unwrap();
    for path in [&sims_path, &npe_path] {
        let mut bytes = std::fs::read(path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x10;
        std::fs::write(path, &bytes).unwrap();
    }
    let err = Simulations::load(&sims_path).unwrap_err();
    assert!(matches!(&err, Error::File { reason, .. } if reason.contains("checksum")), "{err}");
    let err = NpePosterior::load(&npe_path, &TwoMoons).err().unwrap();
    assert!(matches!(&err, Error::File { reason, .. } if reason.contains("checksum")), "{err}");
}

/// Counts its simulations.
static COUNTED: AtomicUsize = AtomicUsize::new(0);

#[simulator]
fn counted(rng: &mut impl Rng) -> f64 {
    let mu = sample!(Normal(0.0, 1.0));
    COUNTED.fetch_add(1, Ordering::SeqCst);
    mu + rng.random::<f64>()
}

/// Two runs on one checkpoint: the second is told the path is in use. A checkpoint in a
/// folder that does not exist fails before any simulation runs.
#[test]
fn checkpoints_are_locked_and_checked_before_simulating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.safetensors");
    let lock = std::fs::File::create(dir.path().join("run.safetensors.lock")).unwrap();
    lock.try_lock().unwrap();
    let err = simulate(&TwoMoons, 100).checkpoint(&path).progress(false).run().unwrap_err();
    assert!(matches!(err, Error::CheckpointLocked { .. }), "{err}");
    drop(lock);
    simulate(&TwoMoons, 100).checkpoint(&path).progress(false).run().unwrap();

    let nowhere = dir.path().join("missing").join("run.safetensors");
    let err = simulate(&Counted, 100).checkpoint(&nowhere).progress(false).run().unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(COUNTED.load(Ordering::SeqCst), 0, "nothing was simulated");
}

/// Sizes that cannot be allocated are typed errors, not a panic or an abort.
#[test]
fn impossible_sizes_are_errors() {
    let err = simulate(&TwoMoons, 1_000_000_000_000).progress(false).run().unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    let sims = simulate(&TwoMoons, 500).seed(1).progress(false).run().unwrap();
    let npe = Npe::default().with_training(quick(1).with_max_epochs(1)).train(&TwoMoons, &sims).unwrap();
    assert!(matches!(npe.sample_flat(&[0.0, 0.0], usize::MAX), Err(Error::TooLarge { .. })));
    let exact = FnPotential::new(2, |_: &[f64]| 0.0);
    let prior = TwoMoons.prior();
    let config = McmcConfig::default().with_progress(false);
    assert!(matches!(mcmc(&prior, &exact, usize::MAX, &config), Err(Error::TooLarge { .. })));
    let sir = importance_sample(&prior, &exact, usize::MAX / 2, &ImportanceConfig::default());
    assert!(matches!(sir, Err(Error::TooLarge { .. })));
}

/// Settings that would silently break training or sampling are refused.
#[test]
fn bad_settings_are_typed_errors() {
    let sims = simulate(&TwoMoons, 500).seed(1).progress(false).run().unwrap();
    for norm in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let npe = Npe::default().with_training(quick(1).with_clip_max_norm(Some(norm)));
        let err = npe.train(&TwoMoons, &sims).err().unwrap();
        assert!(matches!(&err, Error::Config(m) if m.contains("clipping")), "{norm}: {err}");
    }
    let nsf = Npe::default().with_estimator(DensityEstimator::Nsf(NsfConfig::default().with_tail_bound(f64::INFINITY)));
    assert!(matches!(nsf.train(&TwoMoons, &sims), Err(Error::Config(_))));
    assert!(matches!(
        sbi_runtime::distributions::Uniform::new(-f64::MAX, f64::MAX),
        Err(Error::InvalidDistribution { .. })
    ));
    let two = simulate(&TwoMoons, 2).seed(1).progress(false).run().unwrap();
    let err = Npe::default().with_training(quick(1)).train(&TwoMoons, &two).err().unwrap();
    assert!(matches!(err, Error::TooFewSimulations { simulations: 2 }), "{err}");
    if !cfg!(feature = "cuda") {
        let gpu = Npe::default().with_training(quick(1).with_device(DeviceChoice::Cuda(0))).train(&TwoMoons, &sims);
        assert!(matches!(gpu.err().unwrap(), Error::DeviceUnavailable { .. }));
    }
    let npe = Npe::default().with_training(quick(1).with_max_epochs(1)).train(&TwoMoons, &sims).unwrap();
    let err = npe.with_max_proposals(0).sample_flat(&[0.0, 0.0], 10).unwrap_err();
    assert!(matches!(&err, Error::Config(m) if m.contains("with_max_proposals(0)")), "{err}");
}

/// Beta and Gamma with tiny shapes draw values that round to 0 or 1; they are kept inside
/// the support, with a finite log density.
#[test]
fn degenerate_distributions_stay_inside_their_support() {
    use sbi_runtime::distributions::{Beta, Gamma};
    let mut rng = sbi_runtime::rng::stream_rng(1, 2);
    let beta = Beta::new(0.01, 0.01).unwrap();
    let gamma = Gamma::new(0.01, 1.0).unwrap();
    let mut v = [0.0];
    for _ in 0..20_000 {
        beta.sample_into(&mut rng, &mut v);
        assert!(v[0] > 0.0 && v[0] < 1.0 && beta.log_prob(&v).is_finite(), "Beta drew {}", v[0]);
        gamma.sample_into(&mut rng, &mut v);
        assert!(v[0] > 0.0 && gamma.log_prob(&v).is_finite(), "Gamma drew {}", v[0]);
    }
    assert_eq!(beta.log_prob(&[0.0]), f64::NEG_INFINITY);
}

/// A slow simulator: a millisecond per simulation.
#[simulator]
fn slow(rng: &mut impl Rng) -> [f64; 2] {
    let mu = sample!(Normal(0.0, 1.0));
    std::thread::sleep(std::time::Duration::from_millis(1));
    [mu + rng.sample::<f64, _>(StandardNormal), mu]
}

/// Set for the child process of [`a_killed_run_resumes_bit_identically`]: its checkpoint.
const KILL_CHILD: &str = "SBI_TEST_KILLED_CHILD_CHECKPOINT";

fn slow_run(path: Option<&std::path::Path>) -> Result<Simulations, Error> {
    // Two threads whatever the machine: about 2.5 s, so that the kill lands mid-run.
    let run = simulate(&Slow, 5_000).seed(7).chunk_size(50).threads(2).progress(false);
    match path {
        Some(p) => run.checkpoint(p).checkpoint_interval(std::time::Duration::ZERO).run(),
        None => run.run(),
    }
}

/// Runs only as the child process of [`a_killed_run_resumes_bit_identically`].
#[test]
fn killed_child_simulates() {
    if let Some(path) = std::env::var_os(KILL_CHILD) {
        slow_run(Some(std::path::Path::new(&path))).unwrap();
    }
}

/// A process killed (SIGKILL) during a checkpointed run: the rerun resumes from the
/// checkpoint (its lock died with the process) and equals an uninterrupted run bit for bit.
#[test]
fn a_killed_run_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.safetensors");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["killed_child_simulates", "--exact", "--nocapture", "--test-threads", "1"])
        .env(KILL_CHILD, &path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !path.exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(400));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child finished before it was killed");
    let resumed = slow_run(Some(&path)).unwrap();
    assert_eq!(resumed, slow_run(None).unwrap());
}

/// A learning rate that blows the weights up stops training with a typed error.
#[test]
fn diverging_training_is_an_error() {
    let sims = simulate(&TwoMoons, 500).seed(1).progress(false).run().unwrap();
    let npe = Npe::default().with_training(quick(1).with_learning_rate(1e30).with_clip_max_norm(None));
    let err = npe.train(&TwoMoons, &sims).err().unwrap();
    assert!(matches!(err, Error::TrainingDiverged { .. }), "{err}");
}

/// One to three trials of one value.
#[simulator]
fn some_trials(rng: &mut impl Rng) -> VarTrials<1, 3> {
    let mu = sample!(Normal(0.0, 1.0));
    let k = 1 + (rng.random::<f64>() * 3.0) as usize;
    VarTrials((0..k).map(|_| [mu + rng.sample::<f64, _>(StandardNormal)]).collect())
}

/// Absent trials need DeepSets in NPE; NLE and NRE, which add trials up themselves, refuse them.
#[test]
fn absent_trials_need_deep_sets() {
    let sims = simulate(&SomeTrials, 500).seed(1).progress(false).run().unwrap();
    let training = quick(1).with_max_epochs(1);
    let is_refused = |r: Result<(), Error>| matches!(r, Err(Error::AbsentTrials { .. }));
    assert!(is_refused(Npe::default().with_training(training.clone()).train(&SomeTrials, &sims).map(|_| ())));
    assert!(is_refused(Nle::default().with_training(training.clone()).train(&SomeTrials, &sims).map(|_| ())));
    assert!(is_refused(Nre::default().with_training(training.clone()).train(&SomeTrials, &sims).map(|_| ())));
    let deep_sets = EmbeddingNet::DeepSets { hidden: vec![8], output: 4 };
    Npe::default().with_embedding(deep_sets).with_training(training).train(&SomeTrials, &sims).unwrap();
}
