use super::*;

/// The log-sum-exp matches its definition, also for large logits.
#[test]
fn log_sum_exp_is_stable() {
    let l = Tensor::new(&[[1f32, 2.0, 3.0], [1000.0, 1000.0, -1000.0]], &Device::Cpu).unwrap();
    let v = log_sum_exp(&l).unwrap().to_vec1::<f32>().unwrap();
    let expected0 = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() as f32;
    assert!((v[0] - expected0).abs() < 1e-5);
    assert!((v[1] - (1000.0 + 2f32.ln())).abs() < 1e-3);
}

/// A classifier whose logit is `θ · x`: each atom's logit names the θ row it used.
struct Product;

impl Logit for Product {
    fn logit(&self, theta: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
        (theta * x)?.sum(1)
    }
}

/// Each x is contrasted with its own θ first and with distinct other rows.
#[test]
fn atoms_are_distinct_and_exclude_the_own_row() {
    let theta = Tensor::new(&[[1f32], [2.0], [3.0], [4.0], [5.0]], &Device::Cpu).unwrap();
    let x = Tensor::new(&[[1f32]; 5], &Device::Cpu).unwrap();
    let mut rng = crate::rng::stream_rng(1, 2);
    let l = atom_logits(&Product, &theta, &x, 4, &mut rng).unwrap().to_vec2::<f32>().unwrap();
    for (i, row) in l.iter().enumerate() {
        let rows: Vec<usize> = row.iter().map(|v| *v as usize - 1).collect();
        assert_eq!(rows[0], i, "row {i}: the first atom is the joint pair");
        let mut seen = rows.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 4, "row {i}: atoms repeated: {rows:?}");
    }
}
