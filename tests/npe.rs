//! Neural posterior estimation end to end: the exact Gaussian task, save and load,
//! typed errors, budgets, the leakage-corrected density and embedding networks.

#[path = "common/closed_form.rs"]
mod closed_form;
#[path = "common/embedding.rs"]
mod embedding;
#[path = "../examples/models/mod.rs"]
mod models;

use embedding::MyEmbedding;

use models::gaussian_linear::GaussianLinear;
use models::two_moons::{TwoMoons, TwoMoonsParams};
use sbi_runtime::potential::Potential;
use sbi_runtime::prelude::*;

fn quick() -> TrainConfig {
    TrainConfig::default().with_progress(false).with_seed(3)
}

/// gaussian_linear has the closed-form posterior N(x_o/2, 0.05·I). With 10,000 simulations
/// the trained MAF must put its mean within a quarter posterior standard deviation of x_o/2
/// in every coordinate, its variances within 25% of 0.05 and its correlations below 0.15;
/// the Monte Carlo error of 10,000 draws is a small part of these bands (σ/100 for the mean).
#[test]
fn gaussian_linear_posterior_matches_the_closed_form() {
    let sims = simulate(&GaussianLinear, 10_000).seed(1).progress(false).run().unwrap();
    let posterior = Npe::default().with_training(quick()).train(&GaussianLinear, &sims).unwrap();
    let x_o = &models::gaussian_linear::observation(0)[..];
    let samples = posterior.sample_flat(x_o, 10_000).unwrap();
    closed_form::assert_moments(&samples, x_o);
    // The leakage-corrected density agrees with the closed form up to a small error.
    let draws = &samples.values[..200 * 10];
    let lp = posterior.log_prob(draws, x_o, 10_000).unwrap();
    let mean_err = closed_form::mean_log_density_error(draws, &lp, x_o);
    assert!(mean_err < 0.5, "mean |log q − log p| = {mean_err} nats");
}

fn small_two_moons() -> (Simulations, NpePosterior<models::two_moons::TwoMoonsPrior>) {
    let sims = simulate(&TwoMoons, 2_000).seed(2).progress(false).run().unwrap();
    let posterior = Npe::default().with_training(quick().with_max_epochs(5)).train(&TwoMoons, &sims).unwrap();
    (sims, posterior)
}

#[test]
fn samples_are_typed_reproducible_and_inside_the_prior() {
    let (_, posterior) = small_two_moons();
    let x_o = [-0.6, 0.16];
    let draws: Vec<TwoMoonsParams> = posterior.sample(&x_o, 500).unwrap();
    assert_eq!(draws.len(), 500);
    assert!(draws.iter().all(|p| p.theta1.abs() <= 1.0 && p.theta2.abs() <= 1.0));
    assert_eq!(posterior.sample_flat(&x_o, 500).unwrap(), posterior.sample_flat(&x_o, 500).unwrap());
    let many = posterior.sample_many(&[-0.6, 0.16, 0.1, -0.2], 300).unwrap();
    assert_eq!(many.len(), 2);
    assert!(many.iter().all(|s| s.rows() == 300));
    // Outside the prior's support the density is zero.
    let lp = posterior.log_prob(&[2.0, 0.0, 0.1, 0.1], &x_o, 1_000).unwrap();
    assert_eq!(lp[0], f64::NEG_INFINITY);
    assert!(lp[1].is_finite());
}

#[test]
fn bad_observations_and_budgets_are_typed_errors() {
    let (_, posterior) = small_two_moons();
    let is_obs = |r: sbi_runtime::Result<Samples>| matches!(r, Err(Error::Observation(_)));
    assert!(is_obs(posterior.sample_flat(&[0.1], 10)));
    assert!(is_obs(posterior.sample_flat(&[0.1, f64::NAN], 10)));
    assert!(is_obs(posterior.sample_flat(&[50.0, 0.0], 10)), "far outside the training range");
    // Drawing at many observations at once: each bad one its own error, the others drawn.
    let many = posterior.sample_many_with_seed(&[-0.6, 0.16, 50.0, 0.0, 0.1, f64::NAN, 0.1, -0.2], 2, 50, 3).unwrap();
    assert_eq!(many.len(), 4);
    assert!(
        many[0].as_ref().is_ok_and(|s| s.samples().rows() == 50)
            && many[3].as_ref().is_ok_and(|s| s.samples().rows() == 50)
    );
    assert!(matches!(many[1], Err(Error::Observation(_))) && matches!(many[2], Err(Error::Observation(_))));
    assert!(matches!(posterior.sample_many_with_seed(&[0.1, 0.2, 0.3], 2, 50, 3), Err(Error::Observation(_))));
    let posterior = posterior.without_range_check().with_max_proposals(20);
    // Without the range check an extreme observation is sampled (or hits the budget), not refused.
    assert!(!matches!(posterior.sample_flat(&[50.0, 0.0], 10), Err(Error::Observation(_))));
    match posterior.sample_flat(&[-0.6, 0.16], 1_000) {
        Err(Error::SamplingBudget { requested: 1_000, proposed, .. }) => assert!(proposed <= 1_000),
        other => panic!("expected a budget error, got {other:?}"),
    }
}

#[test]
fn degenerate_settings_are_typed_errors() {
    let sims = simulate(&TwoMoons, 500).seed(6).progress(false).run().unwrap();
    for e in [
        DensityEstimator::Nsf(NsfConfig { bins: 0, ..NsfConfig::default() }),
        DensityEstimator::Maf(MafConfig::default().with_hidden(0)),
        DensityEstimator::Mdn(MdnConfig::default().with_components(0)),
    ] {
        let r = Npe::default().with_estimator(e).with_training(quick()).train(&TwoMoons, &sims);
        assert!(matches!(r, Err(Error::Config(_))), "{:?}", r.err());
    }
    let r = Npe::default().with_training(quick().with_batch_size(0)).train(&TwoMoons, &sims);
    assert!(matches!(r, Err(Error::Config(_))));
}

#[test]
fn save_and_load_give_identical_samples() {
    let (_, posterior) = small_two_moons();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("npe.safetensors");
    posterior.save(&path).unwrap();
    let loaded = NpePosterior::load(&path, &TwoMoons).unwrap();
    let x_o = [-0.6, 0.16];
    assert_eq!(posterior.sample_flat(&x_o, 1_000).unwrap(), loaded.sample_flat(&x_o, 1_000).unwrap());
    let seeded = loaded.sample_with_seed(&x_o, 100, 9).unwrap();
    assert_eq!(seeded, posterior.sample_with_seed(&x_o, 100, 9).unwrap());
    assert_ne!(seeded, posterior.sample_with_seed(&x_o, 100, 10).unwrap());

    // Another model, a truncated file and garbage are clear errors.
    let wrong = NpePosterior::load(&path, &GaussianLinear);
    assert!(matches!(&wrong, Err(Error::ModelMismatch { part: ModelPart::Parameters, .. })), "{:?}", wrong.err());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    assert!(matches!(NpePosterior::load(&path, &TwoMoons), Err(Error::File { .. })));
    std::fs::write(&path, b"not a model").unwrap();
    assert!(matches!(NpePosterior::load(&path, &TwoMoons), Err(Error::File { .. })));
}

#[test]
fn every_estimator_trains_and_round_trips() {
    let sims = simulate(&TwoMoons, 1_000).seed(4).progress(false).run().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["maf", "nsf", "mdn"] {
        let npe = Npe::default()
            .with_estimator(name.parse::<DensityEstimator>().unwrap())
            .with_training(quick().with_max_epochs(3));
        let posterior = npe.train(&TwoMoons, &sims).unwrap();
        let summary = posterior.training_summary().unwrap();
        assert_eq!(summary.epochs, 3);
        assert!(summary.train_loss[2] < summary.train_loss[0], "{name}: the loss decreases");
        let path = dir.path().join(format!("{name}.safetensors"));
        posterior.save(&path).unwrap();
        let loaded = NpePosterior::load(&path, &TwoMoons).unwrap();
        assert_eq!(
            posterior.sample_flat(&[-0.6, 0.16], 200).unwrap(),
            loaded.sample_flat(&[-0.6, 0.16], 200).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn embeddings_train_end_to_end_and_load() {
    let sims = simulate(&TwoMoons, 1_000).seed(5).progress(false).run().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let custom = EmbeddingNet::Custom(std::sync::Arc::new(MyEmbedding));
    for embedding in [EmbeddingNet::Mlp { hidden: vec![16], output: 3 }, custom.clone()] {
        let npe = Npe::default().with_embedding(embedding.clone()).with_training(quick().with_max_epochs(3));
        let posterior = npe.train(&TwoMoons, &sims).unwrap();
        let s = posterior.training_summary().unwrap();
        assert!(s.train_loss[2] < s.train_loss[0]);
        let path = dir.path().join("e.safetensors");
        posterior.save(&path).unwrap();
        let loaded = match &embedding {
            EmbeddingNet::Custom(_) => {
                assert!(matches!(NpePosterior::load(&path, &TwoMoons), Err(Error::File { .. })), "needs its builder");
                NpePosterior::load_with(&path, &TwoMoons, &custom).unwrap()
            }
            _ => NpePosterior::load(&path, &TwoMoons).unwrap(),
        };
        assert_eq!(posterior.sample_flat(&[-0.6, 0.16], 100).unwrap(), loaded.sample_flat(&[-0.6, 0.16], 100).unwrap());
    }
}

/// Trials of a noisy mean, for DeepSets: θ ~ N(0, 1), 6 trials x_k ~ N(θ, 0.5²).
#[simulator]
fn six_trials(rng: &mut impl Rng) -> Vec<[f64; 1]> {
    let theta = sample!(Normal(0.0, 1.0));
    (0..6).map(|_| [theta + 0.5 * rng.sample::<f64, _>(rand_distr::StandardNormal)]).collect()
}

/// The structured embeddings train end to end on images and trials (the loss falls), save
/// and load with the estimator; an embedding that does not fit the observations' shape is
/// refused before training, naming the shape.
#[test]
fn structured_embeddings_train_save_and_check_shapes() {
    use models::blob::Blob;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.safetensors");
    let images = simulate(&Blob, 400).seed(3).progress(false).run().unwrap();
    let cnn = EmbeddingNet::Cnn2d { channels: vec![4, 8], kernel: 3, output: 8 };
    let npe = Npe::default().with_embedding(cnn).with_training(quick().with_max_epochs(4));
    let posterior = npe.train(&Blob, &images).unwrap();
    let s = posterior.training_summary().unwrap();
    assert!(s.train_loss[3] < s.train_loss[0], "CNN: {:?}", s.train_loss);
    posterior.save(&path).unwrap();
    let loaded = NpePosterior::load(&path, &Blob).unwrap();
    let x = &images.x[..images.x_dim()];
    assert_eq!(posterior.sample_flat(x, 50).unwrap(), loaded.sample_flat(x, 50).unwrap());

    let trials = simulate(&SixTrials, 2_000).seed(4).progress(false).run().unwrap();
    let deep_sets = EmbeddingNet::DeepSets { hidden: vec![16, 16], output: 4 };
    let npe = Npe::default().with_embedding(deep_sets.clone()).with_training(quick().with_max_epochs(5));
    let posterior = npe.train(&SixTrials, &trials).unwrap();
    let s = posterior.training_summary().unwrap();
    assert!(s.train_loss[4] < s.train_loss[0], "DeepSets: {:?}", s.train_loss);
    // The trials' order does not matter to the posterior (up to the last bits of the sum
    // over trials, which change with its order).
    let x = [0.9, 1.3, 0.4, 1.1, 0.8, 1.6];
    let reversed: Vec<f64> = x.iter().rev().copied().collect();
    let (a, b) =
        (posterior.sample_with_seed(&x, 200, 1).unwrap(), posterior.sample_with_seed(&reversed, 200, 1).unwrap());
    let (ma, mb) = (a.mean()[0], b.mean()[0]);
    assert!((ma - mb).abs() < 1e-3, "{ma} vs {mb}");

    let on_images = Npe::default().with_embedding(deep_sets).train(&Blob, &images);
    let on_trials = Npe::default()
        .with_embedding(EmbeddingNet::Cnn2d { channels: vec![4], kernel: 3, output: 8 })
        .train(&SixTrials, &trials);
    for r in [on_images.err(), on_trials.err()] {
        assert!(matches!(&r, Some(Error::Config(m)) if m.contains("shape")), "{r:?}");
    }
}

/// Simulations of 1 to 50 trials keep their absent trials as NaN rows; DeepSets trains on
/// them; an observation may hold any number of trials up to 50 (padded, or given padded);
/// other embeddings, NLE and partly missing trials are refused with typed errors.
#[test]
fn a_varying_number_of_trials_is_masked() {
    use models::measurement::{MAX_TRIALS, MeasurementTrials};
    let model = MeasurementTrials { trials: 0 };
    let sims = simulate(&model, 600).seed(6).progress(false).run().unwrap();
    assert_eq!(sims.len(), 600, "absent trials do not make a simulation invalid");
    let absent = sims.x.chunks_exact(MAX_TRIALS).map(|r| r.iter().filter(|v| v.is_nan()).count());
    assert!(absent.clone().any(|a| a > 0) && absent.clone().all(|a| a < MAX_TRIALS));

    let npe = Npe::default()
        .with_embedding(EmbeddingNet::DeepSets { hidden: vec![16], output: 4 })
        .with_training(quick().with_max_epochs(3));
    let posterior = npe.train(&model, &sims).unwrap();
    let few = [0.9, 1.3, 0.4];
    let mut padded = few.to_vec();
    padded.resize(MAX_TRIALS, f64::NAN);
    assert_eq!(posterior.sample_flat(&few, 100).unwrap(), posterior.sample_flat(&padded, 100).unwrap());
    padded[10] = 0.5; // a trial after an absent one: still a set of four
    assert!(posterior.sample_flat(&padded, 10).is_ok());
    assert!(matches!(posterior.sample_flat(&[f64::NAN; MAX_TRIALS], 10), Err(Error::Observation(_))));
    assert!(matches!(posterior.sample_flat(&[0.1; MAX_TRIALS + 1], 10), Err(Error::Observation(_))));

    let identity = Npe::default().with_training(quick().with_max_epochs(1)).train(&model, &sims);
    assert!(
        matches!(&identity, Err(Error::AbsentTrials { advice }) if advice.contains("DeepSets")),
        "{:?}",
        identity.err()
    );
    let nle = Nle::default().with_training(quick().with_max_epochs(1)).train(&model, &sims);
    assert!(matches!(nle, Err(Error::AbsentTrials { .. })));
}

/// NPE's density as a potential: slice-sampling MCMC on it draws the same distribution as
/// direct sampling (C2ST near 0.5; two samples of 2,000 from one distribution score within
/// 0.5 ± 0.03 at 3 standard deviations of a chance classifier, plus a little for overfitting).
#[test]
fn mcmc_on_the_npe_potential_matches_direct_sampling() {
    let sims = simulate(&TwoMoons, 3_000).seed(2).progress(false).run().unwrap();
    for space in [ThetaSpace::Constrained, ThetaSpace::Unconstrained] {
        npe_potential_matches_direct_sampling(&sims, space);
    }
}

fn npe_potential_matches_direct_sampling(sims: &Simulations, space: ThetaSpace) {
    let npe = Npe::default().with_theta_space(space).with_training(quick().with_max_epochs(30));
    let posterior = npe.train(&TwoMoons, sims).unwrap();
    let x_o = [-0.6, 0.16];
    let direct = posterior.sample_flat(&x_o, 2_000).unwrap();
    let potential = posterior.potential(&x_o).unwrap();
    // The flow's autograd gradient (for gradient-based samplers) against differences.
    let theta = [0.1, -0.2, 0.3, 0.25, -0.5, 0.05];
    let (_, grad) = potential.log_potential_grad(&theta).unwrap();
    for (i, g) in grad.iter().enumerate() {
        let h = 1e-3;
        let mut t = theta.to_vec();
        t[i] += h;
        let up = potential.log_potential(&t).unwrap()[i / 2];
        t[i] -= 2.0 * h;
        let down = potential.log_potential(&t).unwrap()[i / 2];
        let fd = (up - down) / (2.0 * h);
        assert!((g - fd).abs() < 0.01 * (1.0 + fd.abs()), "{space:?}: ∂/∂θ{i}: {g}, differences {fd}");
    }
    let config = McmcConfig::default().with_progress(false).with_seed(5);
    let run = sbi_runtime::samplers::mcmc(&TwoMoons.prior(), &potential, 2_000, &config).unwrap();
    let score = sbi_runtime::diagnostics::c2st(&direct.values, &run.samples.values, 2).unwrap();
    assert!(score < 0.55, "{space:?}: C2ST between direct and MCMC draws of one density: {score}");
}

/// NPE in the prior's unconstrained space: every draw lies inside the box (acceptance 1),
/// and the density with the transform's Jacobian integrates to one over the box (midpoint
/// rule on a 400 × 400 grid; the density vanishes at the edges, so the rule's error is
/// far below the band).
#[test]
fn unconstrained_npe_stays_inside_and_normalises() {
    let sims = simulate(&TwoMoons, 2_000).seed(3).progress(false).run().unwrap();
    let npe = Npe::default().with_theta_space(ThetaSpace::Unconstrained).with_training(quick().with_max_epochs(20));
    let posterior = npe.train(&TwoMoons, &sims).unwrap();
    let x_o = [-0.6, 0.16];
    match posterior.sample_run(&x_o, 5_000).unwrap() {
        sbi_runtime::samplers::SamplerRun::Rejection(r) => assert_eq!(r.acceptance_rate, 1.0),
        other => panic!("NPE samples by rejection, got {}", other.describe()),
    }
    let n = 400;
    let h = 2.0 / n as f64;
    let grid: Vec<f64> =
        (0..n * n).flat_map(|k| [-1.0 + ((k / n) as f64 + 0.5) * h, -1.0 + ((k % n) as f64 + 0.5) * h]).collect();
    let mass: f64 = posterior.log_density(&grid, &x_o).unwrap().iter().map(|l| l.exp() * h * h).sum();
    assert!((mass - 1.0).abs() < 0.02, "the density integrates to {mass}");
    let saved = tempfile::tempdir().unwrap();
    let path = saved.path().join("u.safetensors");
    posterior.save(&path).unwrap();
    let loaded = NpePosterior::load(&path, &TwoMoons).unwrap();
    assert_eq!(loaded.theta_space(), ThetaSpace::Unconstrained);
    assert_eq!(loaded.sample_flat(&x_o, 100).unwrap(), posterior.sample_flat(&x_o, 100).unwrap());
}

/// The embedding's features of observations (the identity's: the z-scored values), and the
/// misspecification test in that space.
#[test]
fn embedded_observations_feed_the_misspecification_test() {
    use sbi_runtime::diagnostics::{MmdConfig, misspecification_mmd};
    let (sims, posterior) = small_two_moons();
    let (features, width) = posterior.embed(&sims.x).unwrap();
    assert_eq!((width, features.len()), (2, sims.x.len()));
    // The identity embedding sees z-scored values: mean 0, sd 1 over the training data.
    for j in 0..2 {
        let column: Vec<f64> = features.iter().skip(j).step_by(2).copied().collect();
        let mean = column.iter().sum::<f64>() / column.len() as f64;
        let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (column.len() - 1) as f64;
        assert!(mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-6, "mean {mean}, var {var}");
    }
    let config = MmdConfig { null_draws: 200, ..MmdConfig::default() };
    let (typical, _) = posterior.embed(sims.x_row(0)).unwrap();
    assert!(misspecification_mmd(&typical, &features, width, &config).unwrap().pvalue > 0.05);
    let (far, _) = posterior.embed(&[1.5, 0.16]).unwrap();
    assert!(misspecification_mmd(&far, &features, width, &config).unwrap().pvalue < 0.01);
    assert!(posterior.embed(&[0.1, 0.2, 0.3]).is_err());
}

/// Diagnostics refuse test simulations of another model than the posterior's (here: their
/// identity altered, as a file from another model would carry).
#[test]
fn diagnostics_refuse_simulations_of_another_model() {
    use sbi_runtime::diagnostics::{Calibration, CalibrationConfig, LocalC2st, LocalC2stConfig};
    let (_, posterior) = small_two_moons();
    let mut tests = simulate(&TwoMoons, 50).seed(9).progress(false).run().unwrap();
    let config = CalibrationConfig::default().with_draws(20).with_progress(false);
    assert!(Calibration::run(&posterior, &tests, &config).is_ok());
    tests.model.names = vec!["a".into(), "b".into()];
    let err = Calibration::run(&posterior, &tests, &config).unwrap_err();
    assert!(matches!(err, Error::ModelMismatch { .. }), "{err}");
    let lc2st = LocalC2stConfig { null_trials: 2, eval_draws: 10, seed: 0, progress: false };
    let err = LocalC2st::run(&posterior, &tests, &[-0.6, 0.16], &lc2st).unwrap_err();
    assert!(matches!(err, Error::ModelMismatch { .. }), "{err}");
}

/// Simulations and a training with a short patience for the schedule tests.
fn schedule_setup() -> (Simulations, TrainConfig) {
    (simulate(&TwoMoons, 1_000).seed(4).progress(false).run().unwrap(), quick().with_stop_after_epochs(5))
}

/// The training summary of NPE trained on `sims` with `config`.
fn summary_of(sims: &Simulations, config: TrainConfig) -> sbi_runtime::train::TrainingSummary {
    let posterior = Npe::default().with_training(config).train(&TwoMoons, sims).unwrap();
    posterior.training_summary().unwrap().clone()
}

/// Halving the learning rate on a plateau continues the same run from its best parameters:
/// up to the epoch where plain early stopping ends, both runs are the same (same seed), so
/// the first halving comes exactly there, and the best validation loss can only improve; a
/// shorter patience before halvings moves them earlier.
#[test]
fn learning_rate_decays_continue_from_the_plateau() {
    let (sims, config) = schedule_setup();
    let summary = |config: TrainConfig| summary_of(&sims, config);
    let plain = summary(config.clone());
    let decayed = summary(config.clone().with_lr_decays(2));
    assert!(plain.converged && decayed.converged && plain.lr_decayed_after.is_empty());
    assert_eq!(decayed.lr_decayed_after.len(), 2);
    assert_eq!(decayed.lr_decayed_after[0], plain.epochs);
    assert!(decayed.lr_decayed_after[1] >= decayed.lr_decayed_after[0] + 5);
    assert!(decayed.epochs >= decayed.lr_decayed_after[1] + 5);
    assert_eq!(decayed.validation_loss[..plain.epochs], plain.validation_loss[..]);
    assert!(decayed.best_validation_loss <= plain.best_validation_loss);

    // With a patience of 2 before each halving, the first comes earlier (the run is the same
    // until then), each after at least 2 epochs, and the stop still waits 5.
    let patient = summary(config.clone().with_lr_decays(2).with_lr_patience(Some(2)));
    let first = patient.lr_decayed_after[0];
    assert_eq!(patient.lr_decayed_after.len(), 2);
    assert!(first >= 2 && first < plain.epochs, "{:?} vs {}", patient.lr_decayed_after, plain.epochs);
    assert_eq!(patient.validation_loss[..first], plain.validation_loss[..first]);
    assert!(patient.lr_decayed_after[1] >= first + 2);
    assert!(patient.converged && patient.epochs >= patient.lr_decayed_after[1] + 5);
    let err = Npe::default().with_training(config.with_lr_patience(Some(0))).train(&TwoMoons, &sims).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

/// Averaging the parameters changes what is validated and kept (the same steps, so the
/// first epoch's training loss is the same), and a decay outside (0, 1) is refused.
#[test]
fn averaged_parameters_are_validated_and_kept() {
    let (sims, config) = schedule_setup();
    let train = |config: TrainConfig| Npe::default().with_training(config).train(&TwoMoons, &sims);
    let plain = train(config.clone()).unwrap();
    let averaged = train(config.clone().with_ema_decay(Some(0.99))).unwrap();
    let (p, a) = (plain.training_summary().unwrap(), averaged.training_summary().unwrap());
    assert_eq!(p.train_loss[0], a.train_loss[0]);
    assert_ne!(p.validation_loss[0], a.validation_loss[0]);
    let x_o = [0.0, 0.0];
    assert_ne!(plain.sample_flat(&x_o, 10).unwrap().values, averaged.sample_flat(&x_o, 10).unwrap().values);
    for bad in [0.0, 1.0, f64::NAN] {
        let err = train(config.clone().with_ema_decay(Some(bad))).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
    }
}

/// The final annealing continues the same run from its plateau for exactly its epochs: the
/// run is plain early stopping's until the plateau, it begins there (or after the last
/// halving), and the best validation loss can only improve; zero epochs is refused.
#[test]
fn annealing_continues_from_the_plateau_for_its_epochs() {
    let (sims, config) = schedule_setup();
    let summary = |config: TrainConfig| summary_of(&sims, config);
    let plain = summary(config.clone());
    let annealed = summary(config.clone().with_lr_anneal_epochs(Some(7)));
    assert!(plain.annealed_after.is_none() && annealed.converged && annealed.lr_decayed_after.is_empty());
    assert_eq!(annealed.annealed_after, Some(plain.epochs));
    assert_eq!(annealed.epochs, plain.epochs + 7);
    assert_eq!(annealed.validation_loss[..plain.epochs], plain.validation_loss[..]);
    assert!(annealed.best_validation_loss <= plain.best_validation_loss);

    let both = summary(config.clone().with_lr_decays(1).with_lr_anneal_epochs(Some(3)));
    let halved = both.lr_decayed_after[0];
    assert_eq!(halved, plain.epochs);
    let began = both.annealed_after.unwrap();
    assert!(began >= halved + 5, "halved after {halved}, annealed after {began}");
    assert_eq!(both.epochs, began + 3);
    let err = Npe::default().with_training(config.with_lr_anneal_epochs(Some(0))).train(&TwoMoons, &sims).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}
