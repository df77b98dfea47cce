use candle_core::{Device, Tensor, Var};

use super::*;
use crate::nn::Activation;

fn reference(x: &Tensor, w: &Tensor, b: &Tensor, mask: Option<&Tensor>, act: Option<Activation>) -> Tensor {
    let w = match mask {
        Some(m) => (w * m).unwrap(),
        None => w.clone(),
    };
    let y = x.matmul(&w.t().unwrap()).unwrap().broadcast_add(b).unwrap();
    match act {
        Some(Activation::Tanh) => y.tanh().unwrap(),
        Some(Activation::Relu) => y.relu().unwrap(),
        None => y,
    }
}

/// Seeded standard normal values `[rows, cols]`.
fn noise(seed: u64, rows: usize, cols: usize) -> Tensor {
    crate::estimators::density::normal_noise(&mut crate::rng::stream_rng(seed, 0), rows, cols, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Forward values and all three gradients agree with candle's own ops.
#[test]
fn dense_matches_candle_ops() {
    let dev = Device::Cpu;
    let (batch, inputs, outputs) = (7, 5, 4);
    let x = Var::from_tensor(&noise(4, batch, inputs)).unwrap();
    let w = Var::from_tensor(&noise(5, outputs, inputs)).unwrap();
    let b = Var::from_tensor(&noise(6, 1, outputs)).unwrap();
    let mask_values: Vec<f32> = (0..outputs * inputs).map(|i| ((i * 7) % 3 != 0) as u8 as f32).collect();
    let mask_tensor = Tensor::from_vec(mask_values.clone(), (outputs, inputs), &dev).unwrap();
    let weights = noise(7, batch, outputs);
    for act in [None, Some(Activation::Tanh), Some(Activation::Relu)] {
        for masked in [false, true] {
            let op = Dense { mask: masked.then(|| mask_values.clone().into()), activation: act };
            let fused = x.as_tensor().apply_op3(w.as_tensor(), b.as_tensor(), op).unwrap();
            let plain = reference(x.as_tensor(), w.as_tensor(), b.as_tensor(), masked.then_some(&mask_tensor), act);
            assert!(max_diff(&fused, &plain) < 1e-5, "forward {act:?} masked={masked}");
            let gf = (&fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let gp = (&plain * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &w, &b] {
                let d = max_diff(gf.get(v.as_tensor()).unwrap(), gp.get(v.as_tensor()).unwrap());
                assert!(d < 1e-4, "gradient {act:?} masked={masked}: {d}");
            }
        }
    }
}

/// The fused affine step agrees with candle's ops, values and gradients.
#[test]
fn affine_step_matches_candle_ops() {
    let dev = Device::Cpu;
    let (batch, d) = (6, 3);
    let z = Var::from_tensor(&noise(1, batch, d)).unwrap();
    let p = Var::from_tensor(&(noise(2, batch, 2 * d) * 2.0).unwrap()).unwrap();
    let perm = [2u32, 0, 1];
    let op = AffineStep { perm: perm.to_vec().into() };
    let fused = z.as_tensor().apply_op2(p.as_tensor(), op).unwrap();
    let u = p.as_tensor().narrow(1, 0, d).unwrap();
    let s = (crate::estimators::density::softplus(&u).unwrap() + 1e-3).unwrap();
    let moved = ((z.as_tensor() * &s).unwrap() + p.as_tensor().narrow(1, d, d).unwrap()).unwrap();
    let idx = Tensor::new(&perm, &dev).unwrap();
    let plain =
        Tensor::cat(&[moved.index_select(&idx, 1).unwrap(), s.log().unwrap().sum_keepdim(1).unwrap()], 1).unwrap();
    assert!(max_diff(&fused, &plain) < 1e-5);
    let weights = noise(3, batch, d + 1);
    let gf = (&fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let gp = (&plain * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [&z, &p] {
        let diff = max_diff(gf.get(v.as_tensor()).unwrap(), gp.get(v.as_tensor()).unwrap());
        assert!(diff < 1e-4, "{diff}");
    }
}

/// The fused Adam follows the textbook update (one parameter, hand-computed steps).
#[test]
fn adam_matches_the_textbook_update() {
    let p = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
    let mut adam = Adam::new(vec![p.clone()], 0.1, None).unwrap();
    let (mut m, mut v, mut theta) = ([0f64; 2], [0f64; 2], [1.0f64, -2.0]);
    for t in 1..=3 {
        let loss = p.as_tensor().sqr().unwrap().sum_all().unwrap();
        adam.step(&[loss.backward().unwrap()]).unwrap();
        for i in 0..2 {
            let g = 2.0 * theta[i];
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            let mh = m[i] / (1.0 - 0.9f64.powi(t));
            let vh = v[i] / (1.0 - 0.999f64.powi(t));
            theta[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
        }
    }
    let got = p.as_tensor().to_vec1::<f32>().unwrap();
    for i in 0..2 {
        assert!((got[i] as f64 - theta[i]).abs() < 1e-5, "{got:?} vs {theta:?}");
    }
}

/// Gradients given in parts are added before the update.
#[test]
fn adam_adds_gradient_parts() {
    let run = |split: bool| {
        let p = Var::new(&[1.0f32, -2.0, 0.5], &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![p.clone()], 0.05, Some(1.0)).unwrap();
        for _ in 0..3 {
            let a = p.as_tensor().sqr().unwrap().sum_all().unwrap();
            let b = (p.as_tensor() * 3.0).unwrap().sum_all().unwrap();
            if split {
                adam.step(&[a.backward().unwrap(), b.backward().unwrap()]).unwrap();
            } else {
                adam.step(&[(a + b).unwrap().backward().unwrap()]).unwrap();
            }
        }
        p.as_tensor().to_vec1::<f32>().unwrap()
    };
    let (split, whole) = (run(true), run(false));
    for (s, w) in split.iter().zip(&whole) {
        assert!((s - w).abs() < 1e-6, "{split:?} vs {whole:?}");
    }
}

/// The moving average follows `a ← d·a + (1 − d)·p` after every step, from the starting
/// values, on the fused and the generic path alike; a reset restarts it at the parameters.
#[test]
fn adam_keeps_the_moving_average() {
    for generic in [false, true] {
        with_mode(generic, || {
            let p = Var::new(&[1.0f32, -2.0, 0.5], &Device::Cpu).unwrap();
            let mut adam = Adam::new(vec![p.clone()], 0.1, None).unwrap().with_ema(0.9).unwrap();
            let mut average = vec![1.0f64, -2.0, 0.5];
            for _ in 0..4 {
                let loss = p.as_tensor().sqr().unwrap().sum_all().unwrap();
                adam.step(&[loss.backward().unwrap()]).unwrap();
                let now = p.as_tensor().to_vec1::<f32>().unwrap();
                average.iter_mut().zip(&now).for_each(|(a, &p)| *a = 0.9 * *a + 0.1 * p as f64);
            }
            let got = adam.averages().unwrap()[0].to_vec1::<f32>().unwrap();
            for (g, a) in got.iter().zip(&average) {
                assert!((*g as f64 - a).abs() < 1e-6, "generic {generic}: {got:?} vs {average:?}");
            }
            assert_ne!(got, p.as_tensor().to_vec1::<f32>().unwrap());
            adam.reset_ema().unwrap();
            let reset = adam.averages().unwrap()[0].to_vec1::<f32>().unwrap();
            assert_eq!(reset, p.as_tensor().to_vec1::<f32>().unwrap());
        });
    }
    let p = Var::new(&[1.0f32], &Device::Cpu).unwrap();
    assert!(Adam::new(vec![p], 0.1, None).unwrap().averages().is_none());
}

/// Clipping scales the whole gradient to the maximal norm before the update.
#[test]
fn clipping_bounds_the_global_norm() {
    // Adam's first step is ±lr per coordinate whatever the gradient's scale, so compare
    // the first moment instead: m = 0.1 · g_clipped.
    let p = Var::new(&[3.0f32, 4.0], &Device::Cpu).unwrap();
    let mut adam = Adam::new(vec![p.clone()], 0.1, Some(1.0)).unwrap();
    let loss = p.as_tensor().sqr().unwrap().sum_all().unwrap(); // gradient (6, 8), norm 10
    adam.step(&[loss.backward().unwrap()]).unwrap();
    let m = &adam.m[0];
    assert!((m[0] - 0.1 * 0.6).abs() < 1e-6 && (m[1] - 0.1 * 0.8).abs() < 1e-6, "{m:?}");
}

/// The rational erf is within 10⁻⁶ of libm's everywhere (and exactly odd).
#[test]
fn fast_erf_is_accurate() {
    let mut worst = 0f64;
    for i in -6000..=6000 {
        let x = i as f32 * 1e-3;
        let exact = libm_erf(x as f64);
        worst = worst.max((norm::erf_f32(x) as f64 - exact).abs());
        assert_eq!(norm::erf_f32(-x), -norm::erf_f32(x));
    }
    assert!(worst < 1e-6, "max error {worst}");
}

/// erf by its Taylor series (|x| ≤ 3) or its asymptotic continued fraction (beyond), in f64:
/// an independent reference, since std has no erf.
fn libm_erf(x: f64) -> f64 {
    if x.abs() > 3.0 {
        // erfc(x) = e^{−x²}/(x√π) · 1/(1 + 1/(2x²)/(1 + 2/(2x²)/(1 + …))).
        let a = x.abs();
        let mut frac = 0.0;
        for k in (1..60).rev() {
            frac = (k as f64 / 2.0) / (a + frac);
        }
        let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + frac);
        return x.signum() * (1.0 - erfc);
    }
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// GELU and layer normalisation agree with candle's ops, values and gradients.
#[test]
fn gelu_and_layer_norm_match_candle_ops() {
    let (batch, h) = (9, 6);
    let x = Var::from_tensor(&(noise(11, batch, h) * 2.0).unwrap()).unwrap();
    let gain = Var::from_tensor(&noise(12, 1, h)).unwrap();
    let bias = Var::from_tensor(&noise(13, 1, h)).unwrap();
    let weights = noise(14, batch, h);
    let both = |generic_ops: bool| {
        with_mode(generic_ops, || {
            let y = layer_norm(&gelu(x.as_tensor()).unwrap(), gain.as_tensor(), bias.as_tensor()).unwrap();
            let grads = (&y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let g = [&x, &gain, &bias].map(|v| grads.get(v.as_tensor()).unwrap().clone());
            (y, g)
        })
    };
    let ((fused, gf), (plain, gp)) = (both(false), both(true));
    assert!(max_diff(&fused, &plain) < 1e-5, "forward {}", max_diff(&fused, &plain));
    for (a, b) in gf.iter().zip(&gp) {
        assert!(max_diff(a, b) < 1e-4, "gradient {}", max_diff(a, b));
    }
}
