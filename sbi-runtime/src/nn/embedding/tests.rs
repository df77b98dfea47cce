use super::cnn::Conv;
use super::*;
use crate::nn::kernels::conv::MaxPool2;
use candle_nn::Module;

/// The GRU matches candle-nn's (PyTorch's equations) with the same weights.
#[test]
fn gru_matches_candle_nn() {
    use candle_nn::rnn::RNN;
    let (len, channels, hidden) = (7, 3, 5);
    let store = ParamStore::new(4);
    let gru = Gru::new(store.var_builder(), len, channels, hidden, 2).unwrap();
    let x = noise(5, 4, len * channels);
    let weights: std::collections::HashMap<String, Tensor> = store
        .named_tensors()
        .into_iter()
        .filter_map(|(name, t)| {
            let key = match name.as_str() {
                "gru.input.weight" => "weight_ih_l0",
                "gru.recurrent.weight" => "weight_hh_l0",
                "gru.input.bias" => "bias_ih_l0",
                "gru.recurrent.bias" => "bias_hh_l0",
                _ => return None,
            };
            let t = if key.starts_with("bias") { t.flatten_all().unwrap() } else { t };
            Some((key.to_string(), t))
        })
        .collect();
    let vb = VarBuilder::from_tensors(weights, candle_core::DType::F32, &candle_core::Device::Cpu);
    let reference = candle_nn::rnn::gru(channels, hidden, Default::default(), vb).unwrap();
    let states = reference.seq(&x.reshape((4, len, channels)).unwrap()).unwrap();
    let theirs = gru.head.forward(states.last().unwrap().h()).unwrap().flatten_all().unwrap();
    let mine = gru.forward(&x).unwrap().flatten_all().unwrap();
    for (a, b) in mine.to_vec1::<f32>().unwrap().iter().zip(&theirs.to_vec1::<f32>().unwrap()) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
use crate::model::Shape;
use crate::nn::{EmbeddingNet, ParamStore};

fn noise(seed: u64, rows: usize, cols: usize) -> Tensor {
    use rand::RngExt;
    let mut rng = crate::rng::stream_rng(seed, 1);
    let v: Vec<f32> = (0..rows * cols).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, (rows, cols), &candle_core::Device::Cpu).unwrap()
}

fn cases() -> Vec<(EmbeddingNet, Shape)> {
    vec![
        (EmbeddingNet::Cnn1d { channels: vec![4, 8], kernel: 5, output: 6 }, Shape::Sequence { len: 30, channels: 2 }),
        (
            EmbeddingNet::Cnn2d { channels: vec![4, 8], kernel: 3, output: 6 },
            Shape::Image { channels: 1, height: 12, width: 16 },
        ),
        (EmbeddingNet::DeepSets { hidden: vec![16, 16], output: 6 }, Shape::Trials { trials: 7, features: 3 }),
        (EmbeddingNet::Gru { hidden: 8, output: 6 }, Shape::Sequence { len: 10, channels: 2 }),
    ]
}

/// Each network maps a batch of observations to `[batch, output]` and every parameter
/// receives a gradient (everything trains end to end).
#[test]
fn output_shapes_and_gradient_flow() {
    for (net, shape) in cases() {
        net.validate(&shape).unwrap();
        let store = ParamStore::new(1);
        let (e, width) = net.build(store.var_builder(), &shape).unwrap();
        assert_eq!(width, 6);
        let x = noise(2, 5, shape.numel());
        let y = e.forward(&x).unwrap();
        assert_eq!(y.dims(), &[5, 6], "{net:?}");
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        for (name, t) in store.named_tensors() {
            let g = grads.get(&t).unwrap_or_else(|| panic!("{net:?}: no gradient for {name}"));
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0 && norm.is_finite(), "{net:?}: gradient of {name} is {norm}");
        }
    }
}

/// The im2col convolution equals candle's `conv2d` with the same weights (channel-last
/// output against channel-first), padding included.
#[test]
fn unfolded_convolution_matches_candles_conv2d() {
    let (c, h, w, k, c_out) = (2, 5, 6, 3, 4);
    let store = ParamStore::new(7);
    let conv = Conv::new(store.var_builder(), (h, w, c), (k, k), c_out).unwrap();
    let xv = candle_core::Var::from_tensor(&noise(8, 3, c * h * w)).unwrap(); // channel-last rows
    let x = xv.as_tensor();
    let ours = conv.forward(x).unwrap(); // [B, H, W, C_out]
    // The dense weight [C_out, k·k·C] laid out (di, dj, ch) → candle's [C_out, C, k, k].
    let weight = store.named_tensors().into_iter().find(|(n, _)| n.ends_with("weight")).unwrap().1;
    let bias = store.named_tensors().into_iter().find(|(n, _)| n.ends_with("bias")).unwrap().1;
    let kernel = weight.reshape((c_out, k, k, c)).unwrap().permute((0, 3, 1, 2)).unwrap().contiguous().unwrap();
    let image = x.reshape((3, h, w, c)).unwrap().permute((0, 3, 1, 2)).unwrap().contiguous().unwrap();
    let theirs = image
        .conv2d(&kernel, k / 2, 1, 1, 1)
        .unwrap()
        .broadcast_add(&bias.reshape((1, c_out, 1, 1)).unwrap())
        .unwrap()
        .relu()
        .unwrap()
        .permute((0, 2, 3, 1))
        .unwrap();
    let diff = (&ours - &theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "largest difference {diff}");
    // The gather's scatter-add gradient against candle's convolution gradient.
    let weights = noise(11, 3, h * w * c_out).reshape((3, h, w, c_out)).unwrap();
    let g1 = (&ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (&theirs * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let (g1, g2) = (g1.get(x).unwrap(), g2.get(x).unwrap());
    let diff = (g1 - g2).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "input gradients differ by {diff}");
}

/// The pooling op equals candle's reductions, values and gradients.
#[test]
fn max_pool_matches_candle() {
    let (b, h, w, c) = (2, 5, 6, 3);
    let x = candle_core::Var::from_tensor(&noise(9, b, h * w * c).reshape((b, h, w, c)).unwrap()).unwrap();
    let ours = x.as_tensor().apply_op1(MaxPool2 { h, w, c }).unwrap();
    let theirs =
        x.as_tensor().narrow(1, 0, 4).unwrap().reshape((b, 2, 2, 3, 2, c)).unwrap().max(4).unwrap().max(2).unwrap();
    assert_eq!(ours.dims(), &[b, 2, 3, c]);
    let diff = (&ours - &theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(diff, 0.0);
    let weights = noise(10, b, 2 * 3 * c).reshape((b, 2, 3, c)).unwrap();
    let g1 = (&ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (&theirs * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let (g1, g2) = (g1.get(x.as_tensor()).unwrap(), g2.get(x.as_tensor()).unwrap());
    let diff = (g1 - g2).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-6, "gradients differ by {diff}");
}

/// DeepSets gives the same features whatever the order of the trials; the CNN does not.
#[test]
fn deep_sets_are_permutation_invariant() {
    let (net, shape) = cases().remove(2);
    let store = ParamStore::new(3);
    let (e, _) = net.build(store.var_builder(), &shape).unwrap();
    let x = noise(4, 2, 21);
    let rows = x.to_vec2::<f32>().unwrap();
    // Trials reversed: trial k takes the features of trial 6 − k.
    let reversed: Vec<f32> =
        rows.iter().flat_map(|r| r.chunks(3).rev().flatten().copied().collect::<Vec<_>>()).collect();
    let xr = Tensor::from_vec(reversed, (2, 21), &candle_core::Device::Cpu).unwrap();
    let (a, b) = (e.forward(&x).unwrap().to_vec2::<f32>().unwrap(), e.forward(&xr).unwrap().to_vec2::<f32>().unwrap());
    for (ra, rb) in a.iter().zip(&b) {
        for (u, v) in ra.iter().zip(rb) {
            assert!((u - v).abs() < 1e-5, "{u} vs {v}");
        }
    }
    let other = e.forward(&noise(5, 2, 21)).unwrap().to_vec2::<f32>().unwrap();
    assert_ne!(a, other);
}

/// Absent trials (NaN rows) do not change DeepSets' output: three trials padded to seven
/// give the features of the same three trials with the others absent in another order,
/// and gradients stay finite.
#[test]
fn deep_sets_mask_absent_trials() {
    let (net, shape) = cases().remove(2); // 7 trials of 3 features
    let store = ParamStore::new(6);
    let (e, _) = net.build(store.var_builder(), &shape).unwrap();
    let present = noise(12, 1, 9).to_vec2::<f32>().unwrap().remove(0);
    let nan = [f32::NAN; 3];
    let pad = |order: &[usize]| -> Vec<f32> {
        order.iter().flat_map(|&t| if t < 3 { present[3 * t..3 * t + 3].to_vec() } else { nan.to_vec() }).collect()
    };
    let a = Tensor::from_vec(pad(&[0, 1, 2, 3, 4, 5, 6]), (1, 21), &candle_core::Device::Cpu).unwrap();
    let b = Tensor::from_vec(pad(&[5, 2, 3, 0, 6, 1, 4]), (1, 21), &candle_core::Device::Cpu).unwrap();
    let (ya, yb) = (e.forward(&a).unwrap(), e.forward(&b).unwrap());
    let diff = (&ya - &yb).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "{diff}");
    let grads = ya.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    for (name, t) in store.named_tensors() {
        let g = grads.get(&t).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(g.is_finite(), "{name}: {g}");
    }
    // All seven present differs from three.
    let full = noise(13, 1, 21);
    assert!(e.forward(&full).unwrap().to_vec2::<f32>().unwrap() != ya.to_vec2::<f32>().unwrap());
}

/// A network applied to data of the wrong shape is refused before anything is built.
#[test]
fn shape_mismatches_are_configuration_errors() {
    let image = Shape::Image { channels: 1, height: 8, width: 8 };
    let series = Shape::Sequence { len: 8, channels: 1 };
    let bad = [
        (EmbeddingNet::Cnn2d { channels: vec![4], kernel: 3, output: 2 }, series.clone()),
        (EmbeddingNet::Cnn1d { channels: vec![4], kernel: 3, output: 2 }, image.clone()),
        (EmbeddingNet::Gru { hidden: 4, output: 2 }, Shape::Vector(8)),
        (EmbeddingNet::DeepSets { hidden: vec![4], output: 2 }, image.clone()),
        // Four poolings by 2 leave nothing of an 8 × 8 image.
        (EmbeddingNet::Cnn2d { channels: vec![2, 2, 2, 2], kernel: 3, output: 2 }, image.clone()),
        (EmbeddingNet::Cnn2d { channels: vec![2], kernel: 4, output: 2 }, image),
        (EmbeddingNet::Cnn1d { channels: vec![], kernel: 3, output: 2 }, series),
    ];
    for (net, shape) in bad {
        let err = net.validate(&shape).expect_err(&format!("{net:?} on {shape}"));
        assert!(
            err.to_string().contains(&shape.to_string())
                || err.to_string().contains("kernel")
                || err.to_string().contains("layer"),
            "{err}"
        );
    }
}
