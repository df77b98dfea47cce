//! The two paths of every network agree on the CPU: the hand-written kernels (the CPU's
//! default) and the plain candle ops that CUDA and Metal run (`nn::with_candle_ops`).
//! Forward values and every parameter's gradient for MAF, NSF, MDN, the NRE classifier's
//! residual network and each embedding; then one epoch of training (Adam included) for NPE
//! with each estimator and embedding, and NRE.

#[path = "../examples/models/mod.rs"]
mod models;

use candle_core::{Device, Tensor, Var};
use models::blob::Blob;
use models::measurement::MeasurementTrials;
use models::sir::SirSeries;
use models::two_moons::TwoMoons;
use sbi_runtime::nn::{Embedding, ParamStore, ResidualNet, with_candle_ops};
use sbi_runtime::prelude::*;

/// f32 agreement: relative to the magnitude, with an absolute floor.
fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

fn noise(seed: u64, rows: usize, cols: usize) -> Tensor {
    use rand::RngExt;
    let mut rng = sbi_runtime::rng::stream_rng(seed, 7);
    let v: Vec<f32> = (0..rows * cols).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

/// Builds a network in a store seeded alike on both paths, evaluates `run` (outputs
/// `[B, k]` or `[B]`) and the gradient of their sum with respect to every parameter and to
/// the inputs, and checks that the two paths agree.
/// A network built in a store, as a function of its input.
type Network = Box<dyn Fn(&Tensor) -> Tensor>;

fn check(name: &str, build: &dyn Fn(&ParamStore) -> Network, input: &Tensor) {
    let run = || {
        let store = ParamStore::new(11);
        let f = build(&store);
        let x = Var::from_tensor(input).unwrap();
        let out = f(x.as_tensor());
        let grads = out.sum_all().unwrap().backward().unwrap();
        let mut g: Vec<Vec<f32>> = store
            .vars()
            .iter()
            .map(|v| grads.get(v.as_tensor()).map_or(vec![], |g| g.flatten_all().unwrap().to_vec1().unwrap()))
            .collect();
        g.push(grads.get(x.as_tensor()).map_or(vec![], |g| g.flatten_all().unwrap().to_vec1().unwrap()));
        (out.flatten_all().unwrap().to_vec1::<f32>().unwrap(), g)
    };
    let (fused, fused_grads) = run();
    let (generic, generic_grads) = with_candle_ops(run);
    assert_eq!(fused.len(), generic.len(), "{name}");
    let worst_out = fused.iter().zip(&generic).map(|(a, b)| (a - b).abs() / (1.0 + a.abs())).fold(0f32, f32::max);
    let worst_grad = fused_grads
        .iter()
        .zip(&generic_grads)
        .flat_map(|(ga, gb)| {
            let scale = ga.iter().fold(0f32, |m, g| m.max(g.abs()));
            ga.iter().zip(gb).map(move |(a, b)| (a - b).abs() / (1.0 + scale))
        })
        .fold(0f32, f32::max);
    println!("{name}: largest difference {worst_out:.1e} in outputs, {worst_grad:.1e} in gradients");
    for (a, b) in fused.iter().zip(&generic) {
        assert!(close(*a, *b, 1e-4), "{name}: output {a} (kernels) vs {b} (candle ops)");
    }
    assert_eq!(fused_grads.len(), generic_grads.len(), "{name}");
    for (p, (ga, gb)) in fused_grads.iter().zip(&generic_grads).enumerate() {
        assert_eq!(ga.len(), gb.len(), "{name}: parameter {p} has a gradient on one path only");
        let scale = ga.iter().fold(0f32, |m, g| m.max(g.abs()));
        for (a, b) in ga.iter().zip(gb) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + scale), "{name}: gradient of parameter {p}: {a} vs {b}");
        }
    }
}

#[test]
fn forward_values_and_gradients_agree() {
    let (b, d, c) = (16, 3, 4);
    let context = noise(2, b, c);
    for estimator in [
        DensityEstimator::Maf(MafConfig::default()),
        DensityEstimator::Nsf(NsfConfig::default()),
        DensityEstimator::Mdn(MdnConfig::default()),
    ] {
        let (ctx, e) = (context.clone(), estimator.clone());
        let build = move |store: &ParamStore| -> Network {
            let flow = e.build(store.var_builder(), 3, 4, 5).unwrap();
            let ctx = ctx.clone();
            Box::new(move |x: &Tensor| flow.log_prob(x, &ctx).unwrap())
        };
        // Inputs within and beyond NSF's spline interval.
        check(&format!("{estimator:?}"), &build, &(noise(1, b, d) * 4.0).unwrap());
    }
    let classifier = |store: &ParamStore| -> Network {
        let net = ResidualNet::new(store.var_builder(), 6, 50, 2, 1).unwrap();
        Box::new(move |x: &Tensor| net.forward(x).unwrap())
    };
    check("NRE classifier (residual network)", &classifier, &noise(3, b, 6));
    let embeddings = [
        (EmbeddingNet::Mlp { hidden: vec![16], output: 5 }, Shape::Vector(12)),
        (EmbeddingNet::Cnn1d { channels: vec![4, 6], kernel: 3, output: 5 }, Shape::Sequence { len: 12, channels: 2 }),
        (
            EmbeddingNet::Cnn2d { channels: vec![4, 6], kernel: 3, output: 5 },
            Shape::Image { channels: 2, height: 9, width: 8 },
        ),
        (EmbeddingNet::DeepSets { hidden: vec![8, 8], output: 5 }, Shape::Trials { trials: 6, features: 2 }),
        (EmbeddingNet::Gru { hidden: 7, output: 5 }, Shape::Sequence { len: 10, channels: 2 }),
    ];
    for (net, shape) in embeddings {
        let s = shape.clone();
        let n = net.clone();
        let build = move |store: &ParamStore| -> Network {
            let (e, _): (Box<dyn Embedding>, usize) = n.build(store.var_builder(), &s).unwrap();
            Box::new(move |x: &Tensor| e.forward(x).unwrap())
        };
        check(&format!("{net:?}"), &build, &noise(4, b, shape.numel()));
    }
}

/// Log densities of a trained NPE posterior at a few parameter sets.
fn npe_after_one_epoch<M: Simulator>(model: &M, sims: &Simulations, npe: Npe, x_o: &[f64], theta: &[f64]) -> Vec<f64> {
    let training = TrainConfig::default().with_max_epochs(1).with_seed(3).with_progress(false);
    let posterior = npe.with_training(training).train(model, sims).unwrap();
    posterior.log_prob(theta, x_o, 0).unwrap()
}

fn agree(name: &str, fused: &[f64], generic: &[f64]) {
    let worst = fused.iter().zip(generic).map(|(a, b)| (a - b).abs() / (1.0 + a.abs())).fold(0f64, f64::max);
    println!("{name}: largest difference {worst:.1e} in log densities after one epoch");
    for (a, b) in fused.iter().zip(generic) {
        assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{name}: {a} (kernels) vs {b} (candle ops)");
    }
}

#[test]
fn one_epoch_of_training_agrees() {
    let sims = simulate(&TwoMoons, 2_000).seed(1).progress(false).run().unwrap();
    let (x_o, theta) = ([-0.6, 0.16], [0.1, 0.2, -0.3, 0.4, 0.5, -0.5]);
    for estimator in [
        DensityEstimator::Maf(MafConfig::default()),
        DensityEstimator::Nsf(NsfConfig::default()),
        DensityEstimator::Mdn(MdnConfig::default()),
    ] {
        let npe = Npe::default().with_estimator(estimator.clone());
        let fused = npe_after_one_epoch(&TwoMoons, &sims, npe.clone(), &x_o, &theta);
        let generic = with_candle_ops(|| npe_after_one_epoch(&TwoMoons, &sims, npe, &x_o, &theta));
        agree(&format!("NPE {estimator:?}"), &fused, &generic);
    }
    let nre = || {
        let training = TrainConfig::default().with_max_epochs(1).with_seed(3).with_progress(false);
        let posterior = Nre::default().with_training(training).train(&TwoMoons, &sims).unwrap();
        posterior.log_potential(&theta, &x_o).unwrap()
    };
    agree("NRE", &nre(), &with_candle_ops(nre));
    // The vector-field network (fused GELU and layer norm) and its density along the ODE.
    let fmpe = || {
        let training = TrainConfig::default().with_max_epochs(1).with_seed(3).with_progress(false);
        let posterior = Fmpe::default().with_training(training).train(&TwoMoons, &sims).unwrap();
        posterior.log_density(&theta, &x_o).unwrap()
    };
    agree("FMPE", &fmpe(), &with_candle_ops(fmpe));

    let series = SirSeries { population: 1_000, days: 16 };
    let sims = simulate(&series, 600).seed(2).progress(false).run().unwrap();
    let x_o = sims.x_row(0).to_vec();
    let theta = [0.4, 0.1, 0.6, 0.2];
    for net in [
        EmbeddingNet::Cnn1d { channels: vec![4], kernel: 3, output: 6 },
        EmbeddingNet::Gru { hidden: 8, output: 6 },
        EmbeddingNet::Mlp { hidden: vec![16], output: 6 },
    ] {
        let npe = Npe::default().with_embedding(net.clone());
        let fused = npe_after_one_epoch(&series, &sims, npe.clone(), &x_o, &theta);
        let generic = with_candle_ops(|| npe_after_one_epoch(&series, &sims, npe, &x_o, &theta));
        agree(&format!("NPE + {net:?}"), &fused, &generic);
    }
    let sims = simulate(&Blob, 300).seed(3).progress(false).run().unwrap();
    let x_o = sims.x_row(0).to_vec();
    let theta = sims.theta[..2 * sims.theta_dim()].to_vec();
    let npe = Npe::default().with_embedding(EmbeddingNet::Cnn2d { channels: vec![4], kernel: 3, output: 6 });
    let fused = npe_after_one_epoch(&Blob, &sims, npe.clone(), &x_o, &theta);
    let generic = with_candle_ops(|| npe_after_one_epoch(&Blob, &sims, npe, &x_o, &theta));
    agree("NPE + Cnn2d", &fused, &generic);

    let trials = MeasurementTrials { trials: 0 };
    let sims = simulate(&trials, 500).seed(4).progress(false).run().unwrap();
    let x_o = sims.x_row(0).to_vec();
    let theta = [1.0, 0.5, 0.0, 1.2];
    let npe = Npe::default().with_embedding(EmbeddingNet::DeepSets { hidden: vec![16], output: 6 });
    let fused = npe_after_one_epoch(&trials, &sims, npe.clone(), &x_o, &theta);
    let generic = with_candle_ops(|| npe_after_one_epoch(&trials, &sims, npe, &x_o, &theta));
    agree("NPE + DeepSets", &fused, &generic);
}
