//! Neural likelihood and ratio estimation end to end: the exact Gaussian task, iid trials
//! against their closed-form posterior, every NRE variant, reproducibility and typed errors.
//!
//! Tolerances: the estimator's error bands are those of the NPE test (a quarter posterior
//! standard deviation for means, 25% for variances); the Monte Carlo error of correlated
//! MCMC draws is added as five standard errors computed from the reported effective sample
//! size.

#[path = "common/embedding.rs"]
mod embedding;
#[path = "../examples/models/mod.rs"]
mod models;

use models::gaussian_linear::{GaussianLinear, POSTERIOR_VARIANCE, posterior_mean};
use sbi_runtime::potential::Potential;
use sbi_runtime::prelude::*;
use sbi_runtime::samplers::SamplerRun;

fn quick() -> TrainConfig {
    TrainConfig::default().with_progress(false).with_seed(3)
}

fn quiet_mcmc() -> Sampler {
    Sampler::Mcmc(McmcConfig::default().with_progress(false))
}

fn observation() -> Vec<f64> {
    models::gaussian_linear::observation(0)
}

/// Checks MCMC draws against the closed-form posterior N(x_o/2, 0.05·I).
fn check_gaussian_linear(run: &SamplerRun, x_o: &[f64], what: &str) {
    let SamplerRun::Mcmc(r) = run else { panic!("{what}: expected MCMC") };
    assert!(r.rhat.iter().all(|v| *v < 1.05), "{what}: R-hat {:?}", r.rhat);
    let (mean, cov) = (r.samples.mean(), r.samples.covariance());
    let sd = POSTERIOR_VARIANCE.sqrt();
    for (k, (m, t)) in mean.iter().zip(posterior_mean(x_o)).enumerate() {
        let tol = 0.25 * sd + 5.0 * sd / r.ess[k].sqrt();
        assert!((m - t).abs() < tol, "{what}: mean[{k}] = {m}, closed form {t}");
    }
    for i in 0..10 {
        let v = cov[i * 10 + i];
        let tol = 0.25 + 5.0 * (2.0 / r.ess[i]).sqrt();
        assert!((v / POSTERIOR_VARIANCE - 1.0).abs() < tol, "{what}: var[{i}] = {v}");
    }
}

#[test]
fn nle_gaussian_linear_matches_the_closed_form() {
    let sims = simulate(&GaussianLinear, 10_000).seed(1).progress(false).run().unwrap();
    let posterior =
        Nle::default().with_training(quick()).with_sampler(quiet_mcmc()).train(&GaussianLinear, &sims).unwrap();
    let x_o = observation();
    let run = posterior.sample_run(&x_o, 5_000).unwrap();
    assert_eq!(run.samples().rows(), 5_000);
    check_gaussian_linear(&run, &x_o, "NLE");
}

/// NRE needs more simulations than NLE for the same bands: at 10,000 its worst coordinate's
/// mean is 0.36 posterior standard deviations off (measured), at 20,000 about 0.2.
#[test]
fn nre_gaussian_linear_matches_the_closed_form() {
    let sims = simulate(&GaussianLinear, 20_000).seed(1).progress(false).run().unwrap();
    let posterior =
        Nre::default().with_training(quick()).with_sampler(quiet_mcmc()).train(&GaussianLinear, &sims).unwrap();
    let x_o = observation();
    check_gaussian_linear(&posterior.sample_run(&x_o, 5_000).unwrap(), &x_o, "NRE-B");
}

/// θ ~ N(0, 1), one trial x ~ N(θ, 0.5²).
#[simulator]
fn noisy_mean(rng: &mut impl Rng) -> [f64; 1] {
    let theta = sample!(Normal(0.0, 1.0));
    [theta + 0.5 * rng.sample::<f64, _>(StandardNormal)]
}

/// With K iid trials the posterior is N(Σx / (K + σ²), σ² / (K + σ²)), σ² = 0.25: a model
/// trained on single trials must give it for 1 and for 8 trials. (Errors of the learned
/// per-trial term add up over trials, so this needs more simulations than one trial would.)
#[test]
fn iid_trials_give_the_closed_form_posterior() {
    let sims = simulate(&NoisyMean, 20_000).seed(7).progress(false).run().unwrap();
    let trials = [0.9, 1.3, 0.4, 1.1, 0.8, 1.6, 0.7, 1.0];
    let nle = Nle::default().with_training(quick()).with_sampler(quiet_mcmc()).train(&NoisyMean, &sims).unwrap();
    let nre = Nre::default().with_training(quick()).with_sampler(quiet_mcmc()).train(&NoisyMean, &sims).unwrap();
    for k in [1usize, 8] {
        let x = &trials[..k];
        let var = 0.25 / (k as f64 + 0.25);
        let mean = x.iter().sum::<f64>() / (k as f64 + 0.25);
        for (what, run) in [("NLE", nle.sample_run(x, 4_000).unwrap()), ("NRE", nre.sample_run(x, 4_000).unwrap())] {
            let SamplerRun::Mcmc(r) = &run else { panic!() };
            let (m, v) = (r.samples.mean()[0], r.samples.covariance()[0]);
            let sd = var.sqrt();
            assert!(
                (m - mean).abs() < 0.25 * sd + 5.0 * sd / r.ess[0].sqrt(),
                "{what}, {k} trials: mean {m}, closed form {mean}"
            );
            assert!(
                (v / var - 1.0).abs() < 0.25 + 5.0 * (2.0 / r.ess[0]).sqrt(),
                "{what}, {k} trials: variance {v}, closed form {var}"
            );
        }
    }
}

/// Every NRE variant trains and gives a posterior centred near the truth for 8 trials; the
/// other samplers (MH, importance sampling) agree with slice sampling on it.
#[test]
fn every_variant_and_sampler_works() {
    let sims = simulate(&NoisyMean, 3_000).seed(8).progress(false).run().unwrap();
    let x = [0.9, 1.3, 0.4, 1.1, 0.8, 1.6, 0.7, 1.0];
    let (mean, sd) = (x.iter().sum::<f64>() / 8.25, (0.25f64 / 8.25).sqrt());
    for variant in ["a", "b", "c", "bnre"] {
        let nre = Nre::default()
            .with_variant(variant.parse::<NreVariant>().unwrap())
            .with_training(quick())
            .with_sampler(quiet_mcmc())
            .train(&NoisyMean, &sims)
            .unwrap();
        for sampler in ["slice", "nuts", "mh", "sir"] {
            let potential = nre.potential(&x).unwrap();
            let s = sampler.parse::<Sampler>().unwrap().with_progress(false).run(&NoisyMean.prior(), &potential, 2_000);
            let m = s.unwrap().samples().mean()[0];
            // A loose band: 8 trials put the posterior within 1.5 sd of the truth for any
            // reasonable ratio estimate; a broken loss or sampler lands far away.
            assert!((m - mean).abs() < 1.5 * sd + 0.1, "NRE-{variant} with {sampler}: mean {m}, closed form {mean}");
        }
    }
}

/// The potentials' gradients (candle's autograd through the network, summed over iid
/// trials, plus the prior's) against central differences of their values.
#[test]
fn network_potential_gradients_match_finite_differences() {
    let sims = simulate(&GaussianLinear, 1_000).seed(2).progress(false).run().unwrap();
    let training = quick().with_max_epochs(3);
    let nle = Nle::default().with_training(training.clone()).train(&GaussianLinear, &sims).unwrap();
    let mlp = EmbeddingNet::Mlp { hidden: vec![16], output: 6 };
    let embedded = Nle::default().with_embedding(mlp).with_training(training.clone());
    let embedded = embedded.train(&GaussianLinear, &sims).unwrap();
    let nre = Nre::default().with_training(training).train(&GaussianLinear, &sims).unwrap();
    let x_o: Vec<f64> = observation().iter().chain(&observation()).map(|v| v * 0.9).collect(); // two trials
    let theta: Vec<f64> = (0..30).map(|i| 0.3 * ((i as f64) * 0.7).sin()).collect(); // three rows
    let check = |what: &str, potential: &dyn Potential| {
        let (values, grad) = potential.log_potential_grad(&theta).unwrap();
        assert_eq!(values, potential.log_potential(&theta).unwrap(), "{what}");
        for i in 0..theta.len() {
            // The networks compute in f32 (rounding ~1e-7 relative, ~1e-4 in the difference at
            // this step); a larger step meets the curvature and kinks of the ReLU classifier.
            let h = 1e-3;
            let mut t = theta.clone();
            t[i] += h;
            let up = potential.log_potential(&t).unwrap()[i / 10];
            t[i] -= 2.0 * h;
            let down = potential.log_potential(&t).unwrap()[i / 10];
            let fd = (up - down) / (2.0 * h);
            assert!((grad[i] - fd).abs() < 0.02 * (1.0 + fd.abs()), "{what}: ∂/∂θ{i} = {}, differences {fd}", grad[i]);
        }
    };
    check("NLE", &nle.potential(&x_o).unwrap());
    check("NLE with an embedding of θ", &embedded.potential(&x_o).unwrap());
    check("NRE", &nre.potential(&x_o).unwrap());
}

#[test]
fn same_seed_same_samples() {
    let sims = simulate(&NoisyMean, 1_000).seed(9).progress(false).run().unwrap();
    let nle = Nle::default()
        .with_training(quick().with_max_epochs(3))
        .with_sampler(quiet_mcmc())
        .train(&NoisyMean, &sims)
        .unwrap();
    let a = nle.sample_flat(&[0.3], 500).unwrap();
    assert_eq!(a, nle.sample_flat(&[0.3], 500).unwrap());
    let nle = nle.with_seed(11);
    assert_ne!(a, nle.sample_flat(&[0.3], 500).unwrap());
    let typed: Vec<NoisyMeanParams> = nle.sample(&[0.3, 0.4], 10).unwrap();
    assert_eq!(typed.len(), 10);
}

/// NLE and NRE posteriors saved and loaded sample and score exactly as before; a file of
/// another kind, another model's file and a damaged file are clear errors.
#[test]
fn nle_and_nre_posteriors_survive_save_and_load() {
    let sims = simulate(&NoisyMean, 1_000).seed(9).progress(false).run().unwrap();
    let training = quick().with_max_epochs(3);
    let nle =
        Nle::default().with_training(training.clone()).with_sampler(quiet_mcmc()).train(&NoisyMean, &sims).unwrap();
    let nre = Nre::default()
        .with_variant(NreVariant::C { classes: 3, gamma: 2.0 })
        .with_training(training)
        .with_sampler("nuts".parse::<Sampler>().unwrap().with_progress(false))
        .train(&NoisyMean, &sims)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (nle_path, nre_path) = (dir.path().join("nle.safetensors"), dir.path().join("nre.safetensors"));
    nle.save(&nle_path).unwrap();
    nre.save(&nre_path).unwrap();
    let nle_loaded = NlePosterior::load(&nle_path, &NoisyMean).unwrap();
    let nre_loaded = NrePosterior::load(&nre_path, &NoisyMean).unwrap();
    let (x, theta) = ([0.3, 0.5], [-0.5, 0.0, 0.7]);
    assert_eq!(nle.log_potential(&theta, &x).unwrap(), nle_loaded.log_potential(&theta, &x).unwrap());
    assert_eq!(nre.log_potential(&theta, &x).unwrap(), nre_loaded.log_potential(&theta, &x).unwrap());
    assert_eq!(nle.sample_flat(&x, 300).unwrap(), nle_loaded.sample_flat(&x, 300).unwrap());
    assert_eq!(nre.sample_flat(&x, 300).unwrap(), nre_loaded.sample_flat(&x, 300).unwrap());

    let kind = NrePosterior::load(&nle_path, &NoisyMean);
    assert!(matches!(&kind, Err(Error::File { reason, .. }) if reason.contains("NRE")), "{:?}", kind.err());
    assert!(matches!(NpePosterior::load(&nre_path, &NoisyMean), Err(Error::File { .. })));
    let wrong = NlePosterior::load(&nle_path, &GaussianLinear);
    assert!(matches!(&wrong, Err(Error::ModelMismatch { part: ModelPart::Parameters, .. })), "{:?}", wrong.err());
    let bytes = std::fs::read(&nre_path).unwrap();
    std::fs::write(&nre_path, &bytes[..bytes.len() - 100]).unwrap();
    assert!(matches!(NrePosterior::load(&nre_path, &NoisyMean), Err(Error::File { .. })));
    std::fs::write(&nle_path, b"not a model").unwrap();
    assert!(matches!(NlePosterior::load(&nle_path, &NoisyMean), Err(Error::File { .. })));
}

/// NRE with an embedding of `x` (a 1-D CNN on an epidemic's series, and a user's own
/// network) trains end to end, saves and loads (the user's network only through
/// `load_with`); an embedding that does not fit the series is refused before training.
#[test]
fn nre_with_an_embedding_trains_saves_and_checks_shapes() {
    use models::sir::SirSeries;
    let model = SirSeries { population: 1_000, days: 20 };
    let sims = simulate(&model, 800).seed(4).progress(false).run().unwrap();
    let cnn = EmbeddingNet::Cnn1d { channels: vec![4], kernel: 3, output: 6 };
    let nre = Nre::default().with_embedding(cnn).with_training(quick().with_max_epochs(4)).with_sampler(quiet_mcmc());
    let posterior = nre.train(&model, &sims).unwrap();
    let s = posterior.training_summary().unwrap();
    assert!(s.train_loss[3] < s.train_loss[0], "{:?}", s.train_loss);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nre-cnn.safetensors");
    posterior.save(&path).unwrap();
    let loaded = NrePosterior::load(&path, &model).unwrap();
    let (x, theta) = (&sims.x[..20], [0.4, 0.12, 0.6, 0.1]);
    assert_eq!(posterior.log_potential(&theta, x).unwrap(), loaded.log_potential(&theta, x).unwrap());
    // The CNN's features of observations: 6 per series, the same after loading.
    let (features, width) = posterior.score().embed(&sims.x[..3 * 20]).unwrap();
    assert_eq!((width, features.len()), (6, 18));
    assert_eq!(loaded.score().embed(&sims.x[..3 * 20]).unwrap().0, features);
    assert!(posterior.score().embed(&sims.x[..21]).is_err());

    let custom = EmbeddingNet::Custom(std::sync::Arc::new(embedding::MyEmbedding));
    let nre = nre.with_embedding(custom.clone());
    let posterior = nre.train(&model, &sims).unwrap();
    posterior.save(&path).unwrap();
    let needs = NrePosterior::load(&path, &model);
    assert!(matches!(&needs, Err(Error::File { reason, .. }) if reason.contains("my-linear-4")), "{:?}", needs.err());
    let loaded = NrePosterior::load_with(&path, &model, &custom).unwrap();
    assert_eq!(posterior.log_potential(&theta, x).unwrap(), loaded.log_potential(&theta, x).unwrap());

    let image = EmbeddingNet::Cnn2d { channels: vec![4], kernel: 3, output: 6 };
    let wrong = Nre::default().with_embedding(image).train(&model, &sims);
    assert!(matches!(&wrong, Err(Error::Config(m)) if m.contains("shape")), "{:?}", wrong.err());
}

/// NLE with an embedding of θ (an MLP, and a user's network) trains end to end, saves and
/// loads (the user's network only through `load_with`); an embedding that does not fit a
/// parameter vector is refused before training.
#[test]
fn nle_with_an_embedding_of_theta_trains_saves_and_checks_shapes() {
    let sims = simulate(&GaussianLinear, 1_000).seed(2).progress(false).run().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nle-embedding.safetensors");
    let (x_o, theta) = (observation(), [0.1; 10]);
    let custom = EmbeddingNet::Custom(std::sync::Arc::new(embedding::MyEmbedding));
    for e in [EmbeddingNet::Mlp { hidden: vec![32], output: 6 }, custom.clone()] {
        let nle = Nle::default().with_embedding(e.clone()).with_training(quick().with_max_epochs(4));
        let posterior = nle.with_sampler(quiet_mcmc()).train(&GaussianLinear, &sims).unwrap();
        let s = posterior.training_summary().unwrap();
        assert!(s.train_loss[3] < s.train_loss[0], "{:?}", s.train_loss);
        posterior.save(&path).unwrap();
        let loaded = if let EmbeddingNet::Custom(_) = e {
            let needs = NlePosterior::load(&path, &GaussianLinear);
            assert!(matches!(&needs, Err(Error::File { reason, .. }) if reason.contains("my-linear-4")));
            NlePosterior::load_with(&path, &GaussianLinear, &custom).unwrap()
        } else {
            NlePosterior::load(&path, &GaussianLinear).unwrap()
        };
        assert_eq!(posterior.log_potential(&theta, &x_o).unwrap(), loaded.log_potential(&theta, &x_o).unwrap());
    }
    let series = EmbeddingNet::Cnn1d { channels: vec![4], kernel: 3, output: 6 };
    let wrong = Nle::default().with_embedding(series).train(&GaussianLinear, &sims);
    assert!(matches!(&wrong, Err(Error::Config(m)) if m.contains("shape")), "{:?}", wrong.err());
}

#[test]
fn bad_input_is_a_typed_error() {
    let sims = simulate(&NoisyMean, 1_000).seed(9).progress(false).run().unwrap();
    let nle = Nle::default()
        .with_training(quick().with_max_epochs(2))
        .with_sampler(quiet_mcmc())
        .train(&NoisyMean, &sims)
        .unwrap();
    assert!(matches!(nle.sample_flat(&[], 10), Err(Error::Observation(_))));
    assert!(matches!(nle.sample_flat(&[f64::NAN], 10), Err(Error::Observation(_))));
    assert!(matches!(nle.sample_flat(&[1e6], 10), Err(Error::Observation(_))));
    assert!(nle.sample_flat(&[0.3], 0).is_err());
    let budget = Sampler::Mcmc(McmcConfig::default().with_progress(false).with_max_evaluations(1_000));
    assert!(matches!(nle.with_sampler(budget).sample_flat(&[0.3], 100), Err(Error::McmcBudget { .. })));
    let wrong = Nre::default().with_variant(NreVariant::B { atoms: 1 }).train(&NoisyMean, &sims);
    assert!(matches!(wrong, Err(Error::Config(_))));
    let other = simulate(&GaussianLinear, 100).seed(1).progress(false).run().unwrap();
    let mixed = Nle::default().train(&NoisyMean, &other);
    assert!(matches!(mixed, Err(Error::ModelMismatch { part: ModelPart::Parameters, .. })));
}
