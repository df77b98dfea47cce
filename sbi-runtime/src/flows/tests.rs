//! Numerical checks of the flows: normalisation by quadrature, invertibility, log-det
//! against finite differences, and fitting a known conditional Gaussian.

use super::*;
use crate::nn::{ParamStore, matrix, to_f64};
use crate::rng::stream_rng;
use crate::train::{Pairs, TrainConfig, fit};
use rand::RngExt;
use rand_distr::StandardNormal;

fn estimators() -> Vec<DensityEstimator> {
    vec![
        DensityEstimator::Maf(MafConfig::default().with_transforms(3).with_hidden(16)),
        DensityEstimator::Nsf(crate::nsf::NsfConfig::default().with_transforms(3).with_hidden(16)),
        DensityEstimator::Mdn(crate::mdn::MdnConfig::default().with_components(3).with_hidden(16)),
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
    for v in store.vars() {
        let t = (v.as_tensor() * 2.0).unwrap();
        v.set(&t).unwrap();
    }
    (store, flow)
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

        // 2-D: midpoint rule on [-8, 8]².
        let (_s, flow) = random_flow(&e, 2, 1, 2);
        let h = 0.04;
        let m = 400;
        let mut pts = Vec::with_capacity(2 * m * m);
        for i in 0..m {
            for j in 0..m {
                pts.extend([-8.0 + (i as f64 + 0.5) * h, -8.0 + (j as f64 + 0.5) * h]);
            }
        }
        let ctx = matrix(&vec![0.5; m * m], m * m, 1).unwrap();
        let lp = to_f64(&flow.log_prob(&matrix(&pts, m * m, 2).unwrap(), &ctx).unwrap()).unwrap();
        let integral: f64 = lp.iter().map(|l| l.exp()).sum::<f64>() * h * h;
        assert!((integral - 1.0).abs() < 5e-3, "{}: 2-D integral {integral}", e.name());
    }
}

fn random_maf(features: usize, context: usize, seed: u64) -> (ParamStore, Maf) {
    let store = ParamStore::new(seed);
    let maf = Maf::new(
        store.var_builder(),
        &MafConfig::default().with_transforms(3).with_hidden(16),
        features,
        context,
        seed,
    )
    .unwrap();
    for v in store.vars() {
        let t = (v.as_tensor() * 2.0).unwrap();
        v.set(&t).unwrap();
    }
    (store, maf)
}

#[test]
fn maf_inverse_inverts_forward() {
    let (_s, maf) = random_maf(3, 2, 3);
    let n = 64;
    let ctx = matrix(&(0..2 * n).map(|i| ((i * 37) % 11) as f64 / 5.0 - 1.0).collect::<Vec<_>>(), n, 2).unwrap();
    let z = normal_noise(&mut stream_rng(4, 0), n, 3).unwrap();
    let x = maf.inverse(&z, &ctx).unwrap();
    let (z_back, _) = maf.forward(&x, &ctx).unwrap();
    let (a, b) = (to_f64(&z).unwrap(), to_f64(&z_back).unwrap());
    let worst = a.iter().zip(&b).map(|(u, v)| (u - v).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-4, "round trip error {worst}");
}

#[test]
fn maf_log_det_matches_finite_differences() {
    let (_s, maf) = random_maf(3, 1, 5);
    let ctx = matrix(&[0.4], 1, 1).unwrap();
    let x0 = [0.3, -0.8, 1.1];
    let (_, ld) = maf.forward(&matrix(&x0, 1, 3).unwrap(), &ctx).unwrap();
    let ld = to_f64(&ld).unwrap()[0];
    // Central differences of z(x) in f32: a step of 1e-2 balances rounding and curvature.
    let h = 1e-2;
    let mut jac = [[0.0; 3]; 3];
    for j in 0..3 {
        let (mut xp, mut xm) = (x0, x0);
        xp[j] += h;
        xm[j] -= h;
        let zp = to_f64(&maf.forward(&matrix(&xp, 1, 3).unwrap(), &ctx).unwrap().0).unwrap();
        let zm = to_f64(&maf.forward(&matrix(&xm, 1, 3).unwrap(), &ctx).unwrap().0).unwrap();
        for i in 0..3 {
            jac[i][j] = (zp[i] - zm[i]) / (2.0 * h);
        }
    }
    let det = jac[0][0] * (jac[1][1] * jac[2][2] - jac[1][2] * jac[2][1])
        - jac[0][1] * (jac[1][0] * jac[2][2] - jac[1][2] * jac[2][0])
        + jac[0][2] * (jac[1][0] * jac[2][1] - jac[1][1] * jac[2][0]);
    assert!((det.abs().ln() - ld).abs() < 1e-2, "log-det {ld} vs finite differences {}", det.abs().ln());
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
        let summary = fit(&store, &data, &config, |t, c| flow.log_prob(t, c)?.mean_all()?.neg()).unwrap();
        let optimum: f64 = s.iter().map(|s| s.ln() + HALF_LN_2PI + 0.5).sum();
        assert!(
            summary.best_validation_loss < optimum + 0.1,
            "{}: validation loss {} vs optimum {optimum}",
            e.name(),
            summary.best_validation_loss
        );
    }
}
