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

/// A density whose log is `−(θ − x)²` (unnormalised: the losses only need its values).
struct Quadratic;

impl LogDensity for Quadratic {
    fn log_prob(&self, inputs: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        (inputs - context)?.sqr()?.sum(1)?.neg()
    }
}

/// The combined loss is the atomic loss plus the mean over all rows of `−log q(θ_i | x_i)`
/// on the rows marked as prior simulations, and the atomic loss alone when none is marked.
#[test]
fn combined_loss_adds_the_likelihood_of_prior_rows() {
    let theta = [0.5f32, -1.0, 2.0, 0.25];
    let x = [0.0f32, -0.5, 1.0, 1.0];
    let log_prior = [-0.3f32, -0.3, -0.3, -0.3];
    let mask = [1f32, 0.0, 1.0, 0.0];
    let rows = |with_mask: Option<[f32; 4]>| {
        let mut v = Vec::new();
        for i in 0..4 {
            v.extend([theta[i], log_prior[i]]);
            if let Some(m) = with_mask {
                v.push(m[i]);
            }
        }
        let cols = if with_mask.is_some() { 3 } else { 2 };
        Tensor::from_vec(v, (4, cols), &Device::Cpu).unwrap()
    };
    let xt = Tensor::from_vec(x.to_vec(), (4, 1), &Device::Cpu).unwrap();
    let value = |loss: &dyn Loss, a: &Tensor| {
        // The same atoms for each loss: the same stream.
        let mut rng = crate::rng::stream_rng(3, 4);
        loss.loss(a, &xt, &mut rng).unwrap().to_scalar::<f32>().unwrap()
    };
    let atomic = value(&Atomic { density: &Quadratic, atoms: 4, combined: false }, &rows(None));
    let combined = value(&Atomic { density: &Quadratic, atoms: 4, combined: true }, &rows(Some(mask)));
    let none_marked = value(&Atomic { density: &Quadratic, atoms: 4, combined: true }, &rows(Some([0.0; 4])));
    // −log q on the marked rows 0 and 2: (0.5 − 0)² + (2 − 1)², averaged over 4 rows.
    let nll = (0.25 + 1.0) / 4.0;
    assert!((combined - (atomic + nll)).abs() < 1e-5, "combined {combined}, atomic {atomic}");
    assert!((none_marked - atomic).abs() < 1e-6);
    // Rows without the mark column are an error, not a silently different loss.
    let mut rng = crate::rng::stream_rng(3, 4);
    let missing = Atomic { density: &Quadratic, atoms: 4, combined: true }.loss(&rows(None), &xt, &mut rng);
    assert!(missing.is_err_and(|e| e.to_string().contains("prior mark")));
    // With 4 atoms out of 4 rows, every row is contrasted with the whole batch: the value
    // is known in closed form.
    let lq = |i: usize, j: usize| -(theta[j] - x[i]).powi(2) as f64;
    let expected = (0..4)
        .map(|i| {
            let lse = (0..4).map(|j| lq(i, j).exp()).sum::<f64>().ln();
            lse - lq(i, i)
        })
        .sum::<f64>()
        / 4.0;
    assert!((atomic as f64 - expected).abs() < 1e-5, "atomic {atomic}, closed form {expected}");
}
