//! Numerical checks of the flows: normalisation by quadrature, invertibility, log-det
//! against finite differences, and fitting a known conditional Gaussian.

use super::*;
use crate::estimators::density::{ConditionalFlow, HALF_LN_2PI, normal_noise};
use crate::estimators::maf::Made;
use crate::nn::Activation;
use crate::nn::{ParamStore, to_f64};
use crate::rng::stream_rng;
use crate::train::losses::{LogDensity, NegativeLogLikelihood};
use crate::train::{Pairs, TrainConfig, fit};
use candle_core::{Device, Tensor};
use rand::RngExt;
use rand_distr::StandardNormal;

/// A host matrix on the CPU.
fn matrix(values: &[f64], rows: usize, cols: usize) -> crate::error::Result<Tensor> {
    crate::nn::matrix(values, rows, cols, &Device::Cpu)
}

/// A bare flow as a [`LogDensity`], for training it directly.
struct FlowDensity<'a>(&'a dyn ConditionalFlow);

impl LogDensity for FlowDensity<'_> {
    fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        self.0.log_prob(inputs, context)
    }
}

fn estimators() -> Vec<DensityEstimator> {
    vec![
        DensityEstimator::Maf(MafConfig::default().with_transforms(3).with_hidden(16)),
        DensityEstimator::Nsf(crate::estimators::nsf::NsfConfig::default().with_transforms(3).with_hidden(16)),
        DensityEstimator::Mdn(crate::estimators::mdn::MdnConfig::default().with_components(3).with_hidden(16)),
    ]
}

/// A randomly initialised flow with larger weights, so that it is far from the identity.
fn random_flow(
    e: &DensityEstimator,
    features: usize,
    context: usize,
    seed: u64,
) -> (ParamStore, Box<dyn ConditionalFlow>) {
    let store = ParamStore::new(seed);
    let flow = e.build(store.var_builder(), features, context, seed).unwrap();
    spread(&store);
    (store, flow)
}

/// Doubles every weight, so that a freshly initialised network is far from the identity.
fn spread(store: &ParamStore) {
    for v in store.vars() {
        let t = (v.as_tensor() * 2.0).unwrap();
        v.set(&t).unwrap();
    }
}

#[test]
fn densities_integrate_to_one() {
    for e in estimators() {
        // 1-D: trapezoid on [-12, 12].
        let (_s, flow) = random_flow(&e, 1, 2, 1);
        let h = 0.005;
        let xs: Vec<f64> = (0..=4800).map(|i| -12.0 + i as f64 * h).collect();
        let ctx = matrix(&[0.3, -0.7].repeat(xs.len()), xs.len(), 2).unwrap();
        let lp = to_f64(&flow.log_prob(&matrix(&xs, xs.len(), 1).unwrap(), &ctx).unwrap()).unwrap();
        let integral: f64 = lp.iter().map(|l| l.exp()).sum::<f64>() * h;
        assert!((integral - 1.0).abs() < 2e-3, "{}: 1-D integral {integral}", e.name());

        // 2-D: midpoint rule on [-16, 16]² (the random flows put mass out to about ±12).
        let (_s, flow) = random_flow(&e, 2, 1, 2);
        let h = 0.04;
        let m = 800;
        let mut pts = Vec::with_capacity(2 * m * m);
        for i in 0..m {
            for j in 0..m {
                pts.extend([-16.0 + (i as f64 + 0.5) * h, -16.0 + (j as f64 + 0.5) * h]);
            }
        }
        let ctx = matrix(&vec![0.5; m * m], m * m, 1).unwrap();
        let lp = to_f64(&flow.log_prob(&matrix(&pts, m * m, 2).unwrap(), &ctx).unwrap()).unwrap();
        let integral: f64 = lp.iter().map(|l| l.exp()).sum::<f64>() * h * h;
        assert!((integral - 1.0).abs() < 5e-3, "{}: 2-D integral {integral}", e.name());
    }
}

/// The two invertible flows, randomly initialised far from the identity, as
/// (name, forward, inverse) closures.
type Forward = Box<dyn Fn(&Tensor, &Tensor) -> candle_core::Result<(Tensor, Tensor)>>;
type Inverse = Box<dyn Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>>;

fn invertible_flows(features: usize, context: usize, seed: u64) -> Vec<(&'static str, ParamStore, Forward, Inverse)> {
    let maf_store = ParamStore::new(seed);
    let maf = std::rc::Rc::new(
        Maf::new(
            maf_store.var_builder(),
            &MafConfig::default().with_transforms(3).with_hidden(16),
            features,
            context,
            seed,
        )
        .unwrap(),
    );
    spread(&maf_store);
    let nsf_store = ParamStore::new(seed);
    let nsf = std::rc::Rc::new(
        crate::estimators::nsf::Nsf::new(
            nsf_store.var_builder(),
            &crate::estimators::nsf::NsfConfig::default().with_transforms(3).with_hidden(16),
            features,
            context,
        )
        .unwrap(),
    );
    spread(&nsf_store);
    let (m1, m2, n1, n2) = (maf.clone(), maf, nsf.clone(), nsf);
    vec![
        ("maf", maf_store, Box::new(move |x, c| m1.forward(x, c)), Box::new(move |z, c| m2.inverse(z, c))),
        ("nsf", nsf_store, Box::new(move |x, c| n1.forward(x, c)), Box::new(move |z, c| n2.inverse(z, c))),
    ]
}

#[test]
fn inverse_inverts_forward() {
    for (name, _store, forward, inverse) in invertible_flows(3, 2, 3) {
        let n = 64;
        let ctx = matrix(&(0..2 * n).map(|i| ((i * 37) % 11) as f64 / 5.0 - 1.0).collect::<Vec<_>>(), n, 2).unwrap();
        // Noise from N(0, 1.5²) so that some values fall in the NSF's identity tails.
        let z = (normal_noise(&mut stream_rng(4, 0), n, 3, &Device::Cpu).unwrap() * 1.5).unwrap();
        let x = inverse(&z, &ctx).unwrap();
        let (z_back, _) = forward(&x, &ctx).unwrap();
        let (a, b) = (to_f64(&z).unwrap(), to_f64(&z_back).unwrap());
        let worst = a.iter().zip(&b).map(|(u, v)| (u - v).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-3, "{name}: round trip error {worst}");
    }
}

#[test]
fn log_det_matches_finite_differences() {
    for (name, _store, forward, _) in invertible_flows(3, 1, 5) {
        let ctx = matrix(&[0.4], 1, 1).unwrap();
        for x0 in [[0.3, -0.8, 1.1], [-2.0, 0.5, 3.5]] {
            let (_, ld) = forward(&matrix(&x0, 1, 3).unwrap(), &ctx).unwrap();
            let ld = to_f64(&ld).unwrap()[0];
            // Central differences in f32: a step of 1e-2 balances rounding and curvature.
            let h = 1e-2;
            let mut jac = [[0.0; 3]; 3];
            for j in 0..3 {
                let (mut xp, mut xm) = (x0, x0);
                xp[j] += h;
                xm[j] -= h;
                let zp = to_f64(&forward(&matrix(&xp, 1, 3).unwrap(), &ctx).unwrap().0).unwrap();
                let zm = to_f64(&forward(&matrix(&xm, 1, 3).unwrap(), &ctx).unwrap().0).unwrap();
                for i in 0..3 {
                    jac[i][j] = (zp[i] - zm[i]) / (2.0 * h);
                }
            }
            let det = jac[0][0] * (jac[1][1] * jac[2][2] - jac[1][2] * jac[2][1])
                - jac[0][1] * (jac[1][0] * jac[2][2] - jac[1][2] * jac[2][0])
                + jac[0][2] * (jac[1][0] * jac[2][1] - jac[1][1] * jac[2][0]);
            assert!(
                (det.abs().ln() - ld).abs() < 2e-2,
                "{name} at {x0:?}: log-det {ld} vs finite differences {}",
                det.abs().ln()
            );
        }
    }
}

#[test]
fn samples_follow_the_density() {
    // 1-D: the mean and variance of 20,000 draws match those of the density by quadrature
    // (5 standard errors), for every estimator.
    for e in estimators() {
        let (_s, flow) = random_flow(&e, 1, 1, 7);
        let h = 0.002;
        let xs: Vec<f64> = (0..=15000).map(|i| -15.0 + i as f64 * h).collect();
        let ctx = matrix(&vec![0.2; xs.len()], xs.len(), 1).unwrap();
        let p: Vec<f64> = to_f64(&flow.log_prob(&matrix(&xs, xs.len(), 1).unwrap(), &ctx).unwrap())
            .unwrap()
            .iter()
            .map(|l| l.exp())
            .collect();
        let mass: f64 = p.iter().sum::<f64>() * h;
        let mean: f64 = xs.iter().zip(&p).map(|(x, p)| x * p).sum::<f64>() * h / mass;
        let var: f64 = xs.iter().zip(&p).map(|(x, p)| (x - mean).powi(2) * p).sum::<f64>() * h / mass;
        let n = 20_000;
        let draws =
            to_f64(&flow.sample(&matrix(&vec![0.2; n], n, 1).unwrap(), &mut stream_rng(8, 0)).unwrap()).unwrap();
        let m = draws.iter().sum::<f64>() / n as f64;
        let v = draws.iter().map(|d| (d - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        let m4 = draws.iter().map(|d| (d - m).powi(4)).sum::<f64>() / n as f64;
        assert!((m - mean).abs() < 5.0 * (var / n as f64).sqrt(), "{}: sample mean {m} vs {mean}", e.name());
        assert!((v - var).abs() < 5.0 * ((m4 - v * v) / n as f64).sqrt(), "{}: sample variance {v} vs {var}", e.name());
    }
}

#[test]
fn constant_features_keep_unit_scale() {
    let s = Standardizer::fit(&[1.0, 5.0, 2.0, 5.0, 3.0, 5.0], 2);
    assert_eq!(s.mean, [2.0, 5.0]);
    assert_eq!(s.std, [1.0, 1.0], "the constant column keeps scale 1 instead of dividing by 0");
    let s = Standardizer::fit(&[0.0, 10.0, 0.0, 30.0], 2);
    assert!((s.std[1] - 200f64.sqrt()).abs() < 1e-12);
}

/// θ | x ~ N(A x + b, diag(s²)) with x ~ N(0, I), scaled like the z-scored inputs the
/// estimators see in the pipeline: the best achievable loss is the conditional entropy
/// Σ_k (ln s_k + ½ ln 2π + ½).
#[test]
fn fits_a_known_conditional_gaussian() {
    for e in estimators() {
        let n = 4000;
        let mut rng = stream_rng(8, 0);
        let s = [0.3, 0.1];
        let mut theta = Vec::with_capacity(2 * n);
        let mut x = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let (x1, x2): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
            let (e1, e2): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
            x.extend([x1, x2]);
            theta.extend([0.6 * x1 + 0.3 * x2 + s[0] * e1, -0.6 * x1 + 0.2 + s[1] * e2]);
        }
        let store = ParamStore::new(1);
        let flow = e.build(store.var_builder(), 2, 2, 1).unwrap();
        let data = Pairs { a: matrix(&theta, n, 2).unwrap(), b: matrix(&x, n, 2).unwrap() };
        let config = TrainConfig::default().with_progress(false).with_learning_rate(2e-3).with_max_epochs(300);
        let summary = fit(&store, &data, &config, &NegativeLogLikelihood(&FlowDensity(flow.as_ref()))).unwrap();
        let optimum: f64 = s.iter().map(|s| s.ln() + HALF_LN_2PI + 0.5).sum();
        assert!(
            summary.best_validation_loss < optimum + 0.1,
            "{}: validation loss {} vs optimum {optimum}",
            e.name(),
            summary.best_validation_loss
        );
    }
}

/// MADE's outputs for feature k (scale and shift) depend on the inputs before k only; those
/// of later features depend on the context, the first feature's on nothing (nflows' layout).
#[test]
fn made_is_autoregressive() {
    let (d, c) = (4, 2);
    let store = ParamStore::new(7);
    let made = Made::new(store.var_builder(), d, c, 24, 2, 2, Activation::Tanh).unwrap();
    spread(&store);
    let x = candle_core::Var::new(&[[0.3f32, -1.1, 0.7, 2.0]], &Device::Cpu).unwrap();
    let ctx = candle_core::Var::new(&[[0.5f32, -0.4]], &Device::Cpu).unwrap();
    let out = made.forward(x.as_tensor(), ctx.as_tensor()).unwrap();
    for j in 0..2 * d {
        let k = j % d;
        let grads = out.narrow(1, j, 1).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = to_f64(grads.get(x.as_tensor()).unwrap()).unwrap();
        for (i, g) in gx.iter().enumerate() {
            if i >= k {
                assert_eq!(*g, 0.0, "output {j} (feature {k}) depends on input {i}");
            } else {
                assert!(g.abs() > 1e-6, "output {j} ignores the earlier input {i}");
            }
        }
        match grads.get(ctx.as_tensor()) {
            Some(g) if k > 0 => {
                let gc = to_f64(g).unwrap();
                assert!(gc.iter().all(|g| g.abs() > 1e-6), "output {j} ignores the context: {gc:?}");
            }
            Some(g) => assert!(to_f64(g).unwrap().iter().all(|g| *g == 0.0), "output {j} depends on the context"),
            None => assert_eq!(k, 0, "output {j} has no path from the context"),
        }
    }
}
