//! Sequential (multi-round) inference for one observation: TSNPE, SNLE and SNRE recover
//! closed-form posteriors, later rounds simulate where the posterior lies, and bad settings
//! or observations are typed errors before any training.
//!
//! Tolerances are those of the single-round tests (a quarter posterior standard deviation
//! for means, 25% for variances), plus five Monte Carlo standard errors for MCMC draws.

#[path = "../examples/models/mod.rs"]
mod models;

use models::gaussian_linear::{GaussianLinear, POSTERIOR_VARIANCE, posterior_mean};
use sbi_runtime::inference::Round;
use sbi_runtime::prelude::*;
use sbi_runtime::samplers::SamplerRun;

fn quick() -> TrainConfig {
    TrainConfig::default().with_progress(false).with_seed(3)
}

fn rounds(n: usize, per_round: usize) -> Rounds {
    Rounds::new(n, per_round).with_seed(1).with_progress(false)
}

fn observation() -> Vec<f64> {
    models::gaussian_linear::observation(0)
}

/// The share of rows of `theta` (10 columns) farther than `radius²` (squared) from `centre`.
fn share_beyond(theta: &[f64], centre: &[f64], radius2: f64) -> f64 {
    let rows = theta.len() / 10;
    let d2 = |r: &[f64]| r.iter().zip(centre).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
    theta.chunks_exact(10).filter(|r| d2(r) > radius2).count() as f64 / rows as f64
}

/// TSNPE, two rounds of 3,000 on gaussian_linear: the final posterior matches the closed
/// form, and the second round's parameters stay inside the region holding all but 10⁻⁴ of
/// the posterior: a squared distance of χ²₁₀(1 − 10⁻⁴) · 0.05 ≈ 1.78 from its mean, 2.5 with
/// room for the first round's estimation error, where many prior draws lie beyond.
#[test]
fn tsnpe_matches_the_closed_form_and_focuses_its_simulations() {
    let x_o = observation();
    let run = Npe::default().with_training(quick()).train_rounds(&GaussianLinear, &x_o, &rounds(2, 3_000)).unwrap();
    assert_eq!(run.rounds.len(), 2);
    let truth = posterior_mean(&x_o);
    let (first, second) = (&run.rounds[0].simulations, &run.rounds[1].simulations);
    assert_eq!((first.len(), second.len()), (3_000, 3_000));
    let (prior, truncated) = (share_beyond(&first.theta, &truth, 2.5), share_beyond(&second.theta, &truth, 2.5));
    assert!(prior > 0.05 && truncated < 0.01, "beyond the region: prior draws {prior}, round 2 {truncated}");

    let draws = run.posterior().sample_flat(&x_o, 10_000).unwrap();
    let (mean, cov) = (draws.mean(), draws.covariance());
    let sd = POSTERIOR_VARIANCE.sqrt();
    for k in 0..10 {
        assert!((mean[k] - truth[k]).abs() < 0.25 * sd, "mean[{k}] = {}, closed form {}", mean[k], truth[k]);
        let v = cov[k * 10 + k];
        assert!((v / POSTERIOR_VARIANCE - 1.0).abs() < 0.25, "var[{k}] = {v}");
    }
}

/// SNPE-C (APT, 10 atoms), two rounds of 5,000 on gaussian_linear: the closed form. (With
/// two rounds of 3,000 one coordinate's variance came out 34% low, measured: the atomic loss
/// needs more simulations than TSNPE's for the same bands.)
#[test]
fn snpe_c_matches_the_closed_form() {
    let x_o = observation();
    let npe = Npe::default().with_training(quick()).with_sequential(SequentialNpe::apt());
    let run = npe.train_rounds(&GaussianLinear, &x_o, &rounds(2, 5_000)).unwrap();
    let draws = run.posterior().sample_flat(&x_o, 10_000).unwrap();
    let (mean, cov) = (draws.mean(), draws.covariance());
    let (truth, sd) = (posterior_mean(&x_o), POSTERIOR_VARIANCE.sqrt());
    for k in 0..10 {
        assert!((mean[k] - truth[k]).abs() < 0.25 * sd, "mean[{k}] = {}, closed form {}", mean[k], truth[k]);
        let v = cov[k * 10 + k];
        assert!((v / POSTERIOR_VARIANCE - 1.0).abs() < 0.25, "var[{k}] = {v}");
    }
    let one_atom = npe.with_sequential(SequentialNpe::Atomic { atoms: 1, combined: true, same_round: true });
    assert!(matches!(one_atom.train_rounds(&GaussianLinear, &x_o, &rounds(2, 100)), Err(Error::Config(_))));
}

/// SNLE (two rounds of 2,500) and SNRE (two of 10,000) on gaussian_linear: the closed form
/// again. SNRE gets the 20,000 simulations of the single-round NRE test: at two rounds of
/// 5,000 its largest mean error over the 10 coordinates ranged over 0.041–0.057 across four
/// training seeds (0.024–0.073 warm-started), against a band of about 0.06.
#[test]
fn snle_and_snre_match_the_closed_form() {
    let x_o = observation();
    let sampler = Sampler::Mcmc(McmcConfig::default().with_progress(false));
    let nle = Nle::default().with_training(quick()).with_sampler(sampler.clone());
    let nre = Nre::default().with_training(quick()).with_sampler(sampler);
    let snle = nle.train_rounds(&GaussianLinear, &x_o, &rounds(2, 2_500)).unwrap().into_posterior();
    let snre = nre.train_rounds(&GaussianLinear, &x_o, &rounds(2, 10_000)).unwrap().into_posterior();
    let truth = posterior_mean(&x_o);
    let sd = POSTERIOR_VARIANCE.sqrt();
    for (what, run) in
        [("SNLE", snle.sample_run(&x_o, 5_000).unwrap()), ("SNRE", snre.sample_run(&x_o, 5_000).unwrap())]
    {
        let SamplerRun::Mcmc(r) = &run else { panic!("MCMC") };
        let (mean, cov) = (r.samples.mean(), r.samples.covariance());
        for k in 0..10 {
            let tol = 0.25 * sd + 5.0 * sd / r.ess[k].sqrt();
            assert!((mean[k] - truth[k]).abs() < tol, "{what}: mean[{k}] = {}, closed form {}", mean[k], truth[k]);
            let v = cov[k * 10 + k];
            let tol = 0.25 + 5.0 * (2.0 / r.ess[k]).sqrt();
            assert!((v / POSTERIOR_VARIANCE - 1.0).abs() < tol, "{what}: var[{k}] = {v}");
        }
    }
}

/// A warm start continues from the last round's network and leaves that round's posterior
/// as it was: round 1 of a run equals a single round on the same simulations (same draws),
/// and round 2's first epoch starts far below a new network's first epoch on the same
/// pooled simulations (by default, round 2 is exactly a new training on them).
#[test]
fn warm_rounds_continue_training_and_keep_earlier_rounds() {
    let x_o = observation();
    let npe = Npe::default().with_training(quick().with_max_epochs(30));
    let warm = npe.train_rounds(&GaussianLinear, &x_o, &rounds(2, 1_000).warm_start()).unwrap();
    let scratch = npe.train_rounds(&GaussianLinear, &x_o, &rounds(2, 1_000)).unwrap();

    let first = &warm.rounds[0];
    let alone = npe.train(&GaussianLinear, &first.simulations).unwrap();
    assert_eq!(first.posterior.sample_flat(&x_o, 200).unwrap(), alone.sample_flat(&x_o, 200).unwrap());

    let mut pooled = scratch.rounds[0].simulations.clone();
    pooled.append(&scratch.rounds[1].simulations).unwrap();
    let retrained = npe.train(&GaussianLinear, &pooled).unwrap();
    let last = scratch.posterior();
    assert_eq!(last.sample_flat(&x_o, 200).unwrap(), retrained.sample_flat(&x_o, 200).unwrap());

    let start = |r: &Round<NpePosterior<_>>| r.posterior.training_summary().unwrap().validation_loss[0];
    let (warm_start, new_start) = (start(&warm.rounds[1]), start(&scratch.rounds[1]));
    let trained = alone.training_summary().unwrap().best_validation_loss;
    assert!(warm_start < new_start - 2.0, "first validation loss: warm {warm_start}, new {new_start}");
    assert!(warm_start < trained + 2.0, "warm {warm_start} starts near round 1's best {trained}");
}

/// An observation just outside the range of round 1's few simulations: round 1's posterior
/// still proposes (it is only a proposal, and does not check the range), while the last
/// posterior checks it as any posterior does.
#[test]
fn earlier_rounds_propose_outside_their_training_range() {
    let (n, seed) = (300, 1);
    let first = simulate(&GaussianLinear, n).seed(seed).progress(false).run().unwrap();
    let max0 = first.x.chunks_exact(10).map(|r| r[0]).fold(f64::NEG_INFINITY, f64::max);
    let mut x_o = observation();
    x_o[0] = max0 + 0.05;
    let npe = Npe::default().with_training(quick().with_max_epochs(20));
    let run = npe.train_rounds(&GaussianLinear, &x_o, &rounds(2, n)).unwrap();
    assert_eq!(run.rounds[0].simulations.x, first.x);
    assert!(run.rounds[0].posterior.sample_flat(&x_o, 100).is_ok());
    let pooled_max0 =
        run.rounds.iter().flat_map(|r| r.simulations.x.chunks_exact(10).map(|r| r[0])).fold(max0, f64::max);
    let last = run.posterior().sample_flat(&x_o, 100);
    if x_o[0] <= pooled_max0 {
        assert!(last.is_ok(), "{:?}", last.err());
    } else {
        assert!(matches!(last, Err(Error::Observation(_))), "{:?}", last.err());
    }
}

#[test]
fn bad_rounds_and_observations_are_typed_errors() {
    let x_o = observation();
    let npe = Npe::default().with_training(quick().with_max_epochs(2));
    assert!(matches!(npe.train_rounds(&GaussianLinear, &x_o, &rounds(0, 100)), Err(Error::Config(_))));
    assert!(matches!(npe.train_rounds(&GaussianLinear, &x_o, &rounds(2, 0)), Err(Error::Config(_))));
    assert!(matches!(npe.train_rounds(&GaussianLinear, &x_o[..3], &rounds(2, 100)), Err(Error::Observation(_))));
    let mut nan = x_o.clone();
    nan[2] = f64::NAN;
    let nle = Nle::default().with_training(quick().with_max_epochs(2));
    assert!(matches!(nle.train_rounds(&GaussianLinear, &nan, &rounds(2, 100)), Err(Error::Observation(_))));
}

/// A posterior that fills about 10⁻⁵ of the prior (`models::narrow`: x = θ + 10⁻³ ε under
/// Uniform(−1, 1)²), where rejection from the prior cannot draw TSNPE's truncated region:
/// every later round draws the truncated prior, by rejection while that accepts one prior
/// draw in 1,000 and by MCMC started at the last posterior's draws once it does not (at
/// least once here: the region shrinks), reporting R̂ and ESS; the last round's parameters all lie within 0.05 of `x_o` (the prior puts
/// 0.25% of its draws there), and the final posterior's mean is within 0.01 of `x_o`
/// (the exact posterior: within 10⁻⁶, an sd of 10⁻³).
#[test]
fn tsnpe_draws_a_tiny_truncated_region_by_mcmc() {
    use models::narrow::{NarrowBox2, true_theta};
    let x_o = simulate_from_flat(&NarrowBox2, &true_theta("box2")).seed(9).progress(false).run().unwrap().x;
    let run = Npe::default().with_training(quick()).train_rounds(&NarrowBox2, &x_o, &rounds(3, 1_000)).unwrap();
    assert_eq!(run.rounds[0].proposal, "the prior");
    for round in &run.rounds[1..] {
        assert!(round.proposal.starts_with("truncated prior by"), "{}", round.proposal);
        assert!(round.propose_seconds > 0.0 && round.train_seconds > 0.0);
    }
    let by_mcmc = run.rounds.iter().filter(|r| r.proposal.contains("by MCMC") && r.proposal.contains("R-hat"));
    assert!(by_mcmc.count() >= 1, "{:?}", run.rounds.iter().map(|r| &r.proposal).collect::<Vec<_>>());
    let last = &run.rounds[2].simulations.theta;
    let far = last.chunks_exact(2).filter(|t| t.iter().zip(&x_o).any(|(a, b)| (a - b).abs() > 0.05)).count();
    assert_eq!(far, 0, "{far} of the last round's parameters lie more than 0.05 from x_o");
    let mean = run.posterior().sample_flat(&x_o, 5_000).unwrap().mean();
    for k in 0..2 {
        assert!((mean[k] - x_o[k]).abs() < 0.01, "mean[{k}] = {}, x_o {}", mean[k], x_o[k]);
    }
}

/// SNLE on the same model: from round 2's posterior on, chains start at the last proposal's
/// draws (resampled by the ratio of the new posterior to the old), so the MCMC of round 3's
/// proposal and of the final posterior agrees with itself (R̂ below 1.05; round 2's proposal,
/// from round 1's posterior, starts from prior draws and had R̂ 1.17) and the final
/// posterior's mean is within 0.01 of `x_o`.
#[test]
fn snle_chains_start_at_the_last_proposal() {
    use models::narrow::{NarrowBox2, true_theta};
    let x_o = simulate_from_flat(&NarrowBox2, &true_theta("box2")).seed(9).progress(false).run().unwrap().x;
    let nle =
        Nle::default().with_training(quick()).with_sampler(Sampler::Mcmc(McmcConfig::default().with_progress(false)));
    let run = nle.train_rounds(&NarrowBox2, &x_o, &rounds(3, 1_000)).unwrap();
    let third = &run.rounds[2].proposal;
    assert!(third.starts_with("MCMC") && !third.contains("warning"), "{third}");
    let SamplerRun::Mcmc(r) = run.posterior().sample_run(&x_o, 5_000).unwrap() else { panic!("MCMC") };
    assert!(r.rhat.iter().all(|v| *v < 1.05), "R-hat {:?}", r.rhat);
    let mean = r.samples.mean();
    for k in 0..2 {
        assert!((mean[k] - x_o[k]).abs() < 0.01, "mean[{k}] = {}, x_o {}", mean[k], x_o[k]);
    }
}
