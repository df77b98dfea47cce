//! The No-U-Turn sampler (Hoffman & Gelman 2014; multinomial variant of Betancourt 2017)
//! run on many chains in lockstep: every tick advances each chain's trajectory by one
//! leapfrog step and evaluates all the new points' potentials and gradients in one batched
//! call. Chains build trees of different depths; a chain whose iteration ends starts its
//! next one at the following tick, so nobody waits for the deepest tree.
//!
//! Per chain: multinomial sampling within each doubling (progressive sampling, biased
//! towards the new half at the top level as in Stan), the generalised U-turn criterion on
//! every aligned sub-tree, divergence when the energy error exceeds 1000, and a step size
//! tuned by dual averaging towards a mean acceptance statistic (0.8 by default). The diagonal metric
//! is shared by the chains: the spread of the starting points at first, then re-estimated at
//! the end of growing warm-up windows (Stan's schedule) from the within-chain variances,
//! averaged over chains (within-chain, so that chains in different modes do not inflate it).
//!
//! Written by hand: crates such as `nuts-rs` run one chain per logp call, which cannot batch
//! the chains' network evaluations into one call.

use rand::RngExt;
use rand_distr::StandardNormal;

use super::Target;
use crate::error::Result;
use crate::rng::SimRng;

/// Energy error beyond which a trajectory counts as divergent (Stan's).
const MAX_ENERGY_ERROR: f64 = 1000.0;

/// NUTS settings beyond the common MCMC ones.
pub(crate) struct NutsSettings {
    pub warmup: usize,
    pub thin: usize,
    pub per_chain: usize,
    pub max_depth: usize,
    pub target_accept: f64,
}

/// What a NUTS run returns: kept states (one `chains × dim` block per kept iteration) and the
/// number of divergent transitions after warm-up.
pub(crate) struct NutsDraws {
    pub kept: Vec<Vec<f64>>,
    pub divergences: usize,
}

/// A point of a trajectory.
#[derive(Clone)]
struct Point {
    q: Vec<f64>,
    p: Vec<f64>,
    logp: f64,
    grad: Vec<f64>,
}

/// Dual averaging of the log step size (Hoffman & Gelman 2014, section 3.2.1).
struct DualAveraging {
    target: f64,
    mu: f64,
    h_bar: f64,
    log_eps_bar: f64,
    t: f64,
}

impl DualAveraging {
    fn new(eps: f64, target: f64) -> Self {
        DualAveraging { target, mu: (10.0 * eps).ln(), h_bar: 0.0, log_eps_bar: 0.0, t: 0.0 }
    }

    /// Records an iteration's acceptance statistic; returns the next step size.
    fn update(&mut self, accept: f64) -> f64 {
        const GAMMA: f64 = 0.05;
        const T0: f64 = 10.0;
        const KAPPA: f64 = 0.75;
        self.t += 1.0;
        let eta = 1.0 / (self.t + T0);
        self.h_bar = (1.0 - eta) * self.h_bar + eta * (self.target - accept);
        let log_eps = self.mu - self.t.sqrt() / GAMMA * self.h_bar;
        let w = self.t.powf(-KAPPA);
        self.log_eps_bar = w * log_eps + (1.0 - w) * self.log_eps_bar;
        log_eps.exp()
    }

    /// The averaged step size, used after warm-up.
    fn final_step(&self) -> f64 {
        self.log_eps_bar.exp()
    }
}

/// One chain: its state, the tree being built and its adaptation.
struct Chain {
    current: Point,
    step: f64,
    adapt: DualAveraging,
    iteration: usize,
    // The tree of this iteration.
    h0: f64,
    left: Point,
    right: Point,
    proposal: Point,
    log_w: f64,
    rho: Vec<f64>,
    depth: usize,
    forward: bool,
    // The doubling in progress.
    sub_done: usize,
    sub_log_w: f64,
    sub_proposal: Option<Point>,
    sub_rho: Vec<f64>,
    /// Per level l: the momentum at the start of the aligned block of 2^l leaves in progress,
    /// and the doubling's momentum sum before it.
    ckpt_p: Vec<Vec<f64>>,
    ckpt_rho: Vec<Vec<f64>>,
    accept_sum: f64,
    leapfrogs: usize,
    diverged: bool,
}

fn log_add_exp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// `Σ_j var_j a_j b_j`: the metric's inner product of momenta.
fn dot_sharp(var: &[f64], a: &[f64], b: &[f64]) -> f64 {
    var.iter().zip(a).zip(b).map(|((v, a), b)| v * a * b).sum()
}

impl Chain {
    fn kinetic(&self, var: &[f64], p: &[f64]) -> f64 {
        0.5 * dot_sharp(var, p, p)
    }

    /// Draws a momentum and starts a new tree at the current point.
    fn start_iteration(&mut self, var: &[f64], rng: &mut SimRng) {
        let mut point = self.current.clone();
        point.p = var.iter().map(|v| rng.sample::<f64, _>(StandardNormal) / v.sqrt()).collect();
        self.h0 = -point.logp + self.kinetic(var, &point.p);
        self.rho = point.p.clone();
        self.left = point.clone();
        self.right = point.clone();
        self.proposal = point;
        self.log_w = 0.0;
        self.depth = 0;
        self.accept_sum = 0.0;
        self.leapfrogs = 0;
        self.diverged = false;
        self.start_doubling(rng);
    }

    fn start_doubling(&mut self, rng: &mut SimRng) {
        self.forward = rng.random::<bool>();
        self.sub_done = 0;
        self.sub_log_w = f64::NEG_INFINITY;
        self.sub_proposal = None;
        self.sub_rho.iter_mut().for_each(|r| *r = 0.0);
    }

    /// The end the trajectory grows from, and the signed step.
    fn frontier(&self) -> (&Point, f64) {
        if self.forward { (&self.right, self.step) } else { (&self.left, -self.step) }
    }

    /// The first half of a leapfrog step from the frontier: the new position and the half-step momentum.
    fn leapfrog_position(&self, var: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (x, eps) = self.frontier();
        let p_half: Vec<f64> = x.p.iter().zip(&x.grad).map(|(p, g)| p + 0.5 * eps * g).collect();
        let q = x.q.iter().zip(&p_half).zip(var).map(|((q, p), v)| q + eps * v * p).collect();
        (q, p_half)
    }

    /// Completes a leapfrog step with the new point's potential and gradient and updates the
    /// tree. Returns true when this iteration's tree is finished.
    fn absorb(
        &mut self,
        var: &[f64],
        q: Vec<f64>,
        p_half: Vec<f64>,
        logp: f64,
        grad: Vec<f64>,
        rng: &mut SimRng,
    ) -> bool {
        let eps = self.frontier().1;
        let p: Vec<f64> = p_half.iter().zip(&grad).map(|(p, g)| p + 0.5 * eps * g).collect();
        let h = -logp + self.kinetic(var, &p);
        let log_weight = self.h0 - h;
        if !logp.is_finite() || !log_weight.is_finite() || -log_weight > MAX_ENERGY_ERROR {
            self.diverged = true;
            self.leapfrogs += 1;
            return true;
        }
        self.accept_sum += log_weight.exp().min(1.0);
        self.leapfrogs += 1;
        let point = Point { q, p, logp, grad };
        // Progressive multinomial sampling within the doubling.
        let new_log_w = log_add_exp(self.sub_log_w, log_weight);
        if rng.random::<f64>() < (log_weight - new_log_w).exp() {
            self.sub_proposal = Some(point.clone());
        }
        self.sub_log_w = new_log_w;
        // U-turns of the aligned blocks this leaf starts or ends.
        let i = self.sub_done;
        for l in 1..=self.depth {
            if i.is_multiple_of(1 << l) {
                self.ckpt_p[l].clone_from(&point.p);
                self.ckpt_rho[l].clone_from(&self.sub_rho);
            }
        }
        self.sub_rho.iter_mut().zip(&point.p).for_each(|(r, p)| *r += p);
        let mut turned = false;
        for l in 1..=self.depth {
            if (i + 1).is_multiple_of(1 << l) {
                // The block's momentum sum is the doubling's sum now minus the sum before it.
                let (mut start, mut end) = (0.0, 0.0);
                for (j, v) in var.iter().enumerate() {
                    let block = self.sub_rho[j] - self.ckpt_rho[l][j];
                    start += v * block * self.ckpt_p[l][j];
                    end += v * block * point.p[j];
                }
                if start <= 0.0 || end <= 0.0 {
                    turned = true;
                    break;
                }
            }
        }
        if self.forward {
            self.right = point;
        } else {
            self.left = point;
        }
        self.sub_done += 1;
        if turned {
            return true;
        }
        if self.sub_done < 1 << self.depth {
            return false;
        }
        // The doubling is complete: take its proposal with probability min(1, W_new / W_old).
        if rng.random::<f64>() < (self.sub_log_w - self.log_w).exp()
            && let Some(p) = self.sub_proposal.take()
        {
            self.proposal = p;
        }
        self.log_w = log_add_exp(self.log_w, self.sub_log_w);
        self.rho.iter_mut().zip(&self.sub_rho).for_each(|(r, s)| *r += s);
        let whole_turned =
            dot_sharp(var, &self.rho, &self.left.p) <= 0.0 || dot_sharp(var, &self.rho, &self.right.p) <= 0.0;
        self.depth += 1;
        if whole_turned || self.depth >= self.ckpt_p.len() {
            return true;
        }
        self.start_doubling(rng);
        false
    }

    /// Ends the iteration: moves to the proposal and adapts the step size during warm-up.
    fn finish_iteration(&mut self, tune: bool) {
        self.current = self.proposal.clone();
        if tune {
            let accept = if self.leapfrogs == 0 { 0.0 } else { self.accept_sum / self.leapfrogs as f64 };
            self.step = self.adapt.update(accept);
        }
        self.iteration += 1;
    }
}

/// Within-chain variance of each coordinate over `history` (per chain, its states), averaged
/// over chains and regularised towards 10⁻³ as Stan does.
fn pooled_within_variance(history: &[Vec<Vec<f64>>], dim: usize) -> Option<Vec<f64>> {
    let mut total = vec![0.0; dim];
    let mut chains = 0usize;
    let mut n_per = 0usize;
    for states in history {
        let n = states.len();
        if n < 3 {
            continue;
        }
        for (j, t) in total.iter_mut().enumerate() {
            let mean = states.iter().map(|s| s[j]).sum::<f64>() / n as f64;
            *t += states.iter().map(|s| (s[j] - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        }
        chains += 1;
        n_per = n;
    }
    if chains == 0 {
        return None;
    }
    let n = (n_per * chains) as f64;
    Some(total.iter().map(|t| (n / (n + 5.0)) * t / chains as f64 + 1e-3 * (5.0 / (n + 5.0))).collect())
}

/// The windows `(start, end]` of warm-up iterations from which the metric is re-estimated,
/// as Stan's schedule scaled to `warmup`: a first 15% for the step size alone, windows of
/// 5%, 10%, 20%, ... of warm-up (the last one stretched to the final 10%), and a final 10%
/// for the step size under the last metric. None below 20 warm-up iterations.
fn metric_windows(warmup: usize) -> Vec<(usize, usize)> {
    if warmup < 20 {
        return Vec::new();
    }
    let (init, term) = (warmup * 15 / 100, warmup / 10);
    let last = warmup - term;
    let mut size = (warmup / 20).max(2);
    let mut start = init;
    let mut out = Vec::new();
    while start < last {
        let mut end = start + size;
        // Stretch the window if the next one would not fit.
        if end + 2 * size > last {
            end = last;
        }
        out.push((start, end));
        start = end;
        size *= 2;
    }
    out
}

/// Runs NUTS from the chains' starting points `z` (`chains × dim`, unconstrained, with
/// potentials `f`). `on_tick` is told the slowest chain's iteration.
pub(crate) fn run(
    target: &mut Target,
    z: &[f64],
    f: &[f64],
    rngs: &mut [SimRng],
    settings: &NutsSettings,
    mut on_tick: impl FnMut(usize),
) -> Result<NutsDraws> {
    let d = target.dim();
    let n = rngs.len();
    let mut var: Vec<f64> = super::spread(z, n, d).iter().map(|s| s * s).collect();
    let (_, g0) = target.eval_grad(z)?;
    let initial_step = 0.5;
    let mut chains: Vec<Chain> = (0..n)
        .map(|c| {
            let point = Point {
                q: z[c * d..(c + 1) * d].to_vec(),
                p: vec![0.0; d],
                logp: f[c],
                grad: g0[c * d..(c + 1) * d].to_vec(),
            };
            Chain {
                current: point.clone(),
                step: initial_step,
                adapt: DualAveraging::new(initial_step, settings.target_accept),
                iteration: 0,
                h0: 0.0,
                left: point.clone(),
                right: point.clone(),
                proposal: point,
                log_w: 0.0,
                rho: vec![0.0; d],
                depth: 0,
                forward: true,
                sub_done: 0,
                sub_log_w: f64::NEG_INFINITY,
                sub_proposal: None,
                sub_rho: vec![0.0; d],
                ckpt_p: vec![vec![0.0; d]; settings.max_depth.max(1)],
                ckpt_rho: vec![vec![0.0; d]; settings.max_depth.max(1)],
                accept_sum: 0.0,
                leapfrogs: 0,
                diverged: false,
            }
        })
        .collect();
    let total = settings.warmup + settings.per_chain * settings.thin;
    let windows = metric_windows(settings.warmup);
    let mut history: Vec<Vec<Vec<f64>>> = vec![Vec::new(); n];
    let mut kept: Vec<Vec<f64>> = vec![vec![0.0; n * d]; settings.per_chain];
    let mut divergences = 0usize;
    // Chains run in lockstep up to each barrier: the end of a metric window, then the end.
    let mut phases: Vec<usize> = windows.iter().map(|w| w.1).collect();
    phases.push(total);
    for (phase, &end) in phases.iter().enumerate() {
        if phase > 0 {
            if let Some(v) = pooled_within_variance(&history, d) {
                var = v;
            }
            history.iter_mut().for_each(|h| h.clear());
            for ch in chains.iter_mut() {
                ch.adapt = DualAveraging::new(ch.step, settings.target_accept);
            }
        }
        let window = windows.get(phase).copied();
        for (ch, rng) in chains.iter_mut().zip(rngs.iter_mut()) {
            if ch.iteration < end {
                ch.start_iteration(&var, rng);
            }
        }
        loop {
            let active: Vec<usize> = (0..n).filter(|&c| chains[c].iteration < end).collect();
            if active.is_empty() {
                break;
            }
            let mut qs = Vec::with_capacity(active.len() * d);
            let mut halves = Vec::with_capacity(active.len());
            for &c in &active {
                let (q, p_half) = chains[c].leapfrog_position(&var);
                qs.extend_from_slice(&q);
                halves.push((q, p_half));
            }
            let (logp, grad) = target.eval_grad(&qs)?;
            for (k, (&c, (q, p_half))) in active.iter().zip(halves).enumerate() {
                let (ch, rng) = (&mut chains[c], &mut rngs[c]);
                let done = ch.absorb(&var, q, p_half, logp[k], grad[k * d..(k + 1) * d].to_vec(), rng);
                if !done {
                    continue;
                }
                let tune = ch.iteration < settings.warmup;
                if ch.diverged && !tune {
                    divergences += 1;
                }
                ch.finish_iteration(tune);
                let it = ch.iteration; // iterations completed
                if ch.iteration == settings.warmup {
                    ch.step = ch.adapt.final_step();
                }
                if let Some((from, to)) = window
                    && it > from
                    && it <= to
                {
                    history[c].push(ch.current.q.clone());
                }
                if it > settings.warmup && (it - settings.warmup).is_multiple_of(settings.thin) {
                    let s = (it - settings.warmup) / settings.thin - 1;
                    kept[s][c * d..(c + 1) * d].copy_from_slice(&ch.current.q);
                }
                if ch.iteration < end {
                    ch.start_iteration(&var, rng);
                }
            }
            on_tick(chains.iter().map(|c| c.iteration).min().unwrap_or(total));
        }
    }
    Ok(NutsDraws { kept, divergences })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_windows_follow_stans_schedule() {
        assert_eq!(metric_windows(100), vec![(15, 20), (20, 30), (30, 50), (50, 90)]);
        assert_eq!(metric_windows(1000), vec![(150, 200), (200, 300), (300, 500), (500, 900)]);
        assert!(metric_windows(19).is_empty());
        for w in [20, 37, 64, 250, 999] {
            let windows = metric_windows(w);
            assert!(windows.windows(2).all(|p| p[0].1 == p[1].0 && p[0].0 < p[0].1), "{w}: {windows:?}");
            assert_eq!(windows.last().unwrap().1, w - w / 10, "{w}");
        }
    }

    #[test]
    fn dual_averaging_finds_the_step_of_a_known_acceptance_curve() {
        // Acceptance falls with the step as exp(−ε²): the target 0.8 is met at ε = √(−ln 0.8).
        let mut da = DualAveraging::new(1.0, 0.8);
        let mut eps: f64 = 1.0;
        for _ in 0..2_000 {
            eps = da.update((-eps * eps).exp());
        }
        let want = (-(0.8f64).ln()).sqrt();
        assert!((da.final_step() - want).abs() < 0.02 * want, "{} vs {want}", da.final_step());
        assert!(eps > 0.0);
    }
}
