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

/// Rows `[θ, log p(θ), round]` of the atomic loss, one θ column.
fn atomic_rows(theta: &[f32], log_prior: &[f32], round: &[f32]) -> Tensor {
    let v: Vec<f32> = (0..theta.len()).flat_map(|i| [theta[i], log_prior[i], round[i]]).collect();
    Tensor::from_vec(v, (theta.len(), 3), &Device::Cpu).unwrap()
}

/// The mean over rows of `log Σ_{j ∈ atoms(i)} exp(lq(i, j)) − lq(i, i)` for `−(θ_j − x_i)²`.
fn closed_form(theta: &[f32], x: &[f32], atoms: impl Fn(usize) -> Vec<usize>) -> f64 {
    let lq = |i: usize, j: usize| -(theta[j] - x[i]).powi(2) as f64;
    let n = theta.len();
    (0..n).map(|i| atoms(i).iter().map(|&j| lq(i, j).exp()).sum::<f64>().ln() - lq(i, i)).sum::<f64>() / n as f64
}

/// The combined loss is the atomic loss plus the mean over all rows of `−log q(θ_i | x_i)`
/// on the rows of round 0 (from the prior), and the atomic loss alone when there are none.
#[test]
fn combined_loss_adds_the_likelihood_of_prior_rows() {
    let theta = [0.5f32, -1.0, 2.0, 0.25];
    let x = [0.0f32, -0.5, 1.0, 1.0];
    let log_prior = [-0.3f32; 4];
    let round = [0f32, 1.0, 0.0, 1.0];
    let xt = Tensor::from_vec(x.to_vec(), (4, 1), &Device::Cpu).unwrap();
    let value = |loss: &dyn Loss, a: &Tensor| {
        // The same atoms for each loss: the same stream.
        let mut rng = crate::rng::stream_rng(3, 4);
        loss.loss(a, &xt, &mut rng).unwrap().to_scalar::<f32>().unwrap()
    };
    let loss = |combined| Atomic { density: &Quadratic, atoms: 4, combined, same_round: false };
    let atomic = value(&loss(false), &atomic_rows(&theta, &log_prior, &round));
    let combined = value(&loss(true), &atomic_rows(&theta, &log_prior, &round));
    let none_marked = value(&loss(true), &atomic_rows(&theta, &log_prior, &[1.0; 4]));
    // −log q on rows 0 and 2: (0.5 − 0)² + (2 − 1)², averaged over 4 rows.
    let nll = (0.25 + 1.0) / 4.0;
    assert!((combined - (atomic + nll)).abs() < 1e-5, "combined {combined}, atomic {atomic}");
    assert!((none_marked - atomic).abs() < 1e-6);
    // Rows without the round column are an error, not a silently different loss.
    let mut rng = crate::rng::stream_rng(3, 4);
    let two_columns =
        Tensor::from_vec(vec![0.5f32, -0.3, -1.0, -0.3, 2.0, -0.3, 0.25, -0.3], (4, 2), &Device::Cpu).unwrap();
    let missing = loss(true).loss(&two_columns, &xt, &mut rng);
    assert!(missing.is_err_and(|e| e.to_string().contains("the round")));
    // With 4 atoms out of 4 rows, every row is contrasted with the whole batch: the value
    // is known in closed form.
    let expected = closed_form(&theta, &x, |_| (0..4).collect());
    assert!((atomic as f64 - expected).abs() < 1e-5, "atomic {atomic}, closed form {expected}");
}

/// With `same_round`, each row is contrasted with the rows of its own round only, while
/// the round has enough rows; a round with too few borrows distinct rows from the others.
#[test]
fn same_round_atoms_come_from_the_rows_own_round() {
    let theta = [0.5f32, -1.0, 2.0, 0.25, 1.5, -0.75];
    let x = [0.0f32, -0.5, 1.0, 1.0, 0.25, 2.0];
    let round = [0f32, 1.0, 0.0, 1.0, 0.0, 1.0];
    let xt = Tensor::from_vec(x.to_vec(), (6, 1), &Device::Cpu).unwrap();
    let loss = Atomic { density: &Quadratic, atoms: 3, combined: false, same_round: true };
    let mut rng = crate::rng::stream_rng(5, 6);
    let value = loss.loss(&atomic_rows(&theta, &[-0.3; 6], &round), &xt, &mut rng).unwrap().to_scalar::<f32>().unwrap();
    // Three rows per round and three atoms: each row against exactly its round's rows.
    let expected = closed_form(&theta, &x, |i| (0..6).filter(|&j| round[j] == round[i]).collect());
    assert!((value as f64 - expected).abs() < 1e-5, "same-round {value}, closed form {expected}");
    let labels = [0u32, 0, 0, 1, 1, 2];
    let (idx, _) = atom_indices_within(&labels, 3, &mut rng, &Device::Cpu).unwrap();
    for (i, atoms) in idx.to_vec1::<u32>().unwrap().chunks(3).enumerate() {
        assert_eq!(atoms[0] as usize, i, "row {i}: the first atom is the joint pair");
        let mut seen = atoms.to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 3, "row {i}: atoms repeated: {atoms:?}");
        // Rounds 0 (three rows) contrast within; round 1 (two rows) adds one from elsewhere.
        let own = atoms.iter().filter(|&&j| labels[j as usize] == labels[i]).count();
        assert_eq!(own, 3.min([3, 3, 3, 2, 2, 1][i]), "row {i}: {atoms:?}");
    }
}
