"""Times `sbi`'s calibration diagnostics on the work `cargo run --release --example diagnose`
does: NPE (MAF, sbi's defaults) on 10,000 two_moons simulations, then SBC ranks, the
expected coverage (ranks of the log density) and TARP over 1,000 test simulations with
1,000 posterior draws each. Run with `python scripts/sbi_sbc_timing.py` after `pip install sbi`.
"""
import math
import time

import torch
from sbi.diagnostics import run_sbc, run_tarp
from sbi.inference import NPE
from sbi.utils import BoxUniform

torch.manual_seed(1)
torch.set_num_threads(2)


def two_moons(theta):
    n = theta.shape[0]
    a = (torch.rand(n) - 0.5) * math.pi
    r = 0.1 + 0.01 * torch.randn(n)
    p = torch.stack([r * torch.cos(a) + 0.25, r * torch.sin(a)], 1)
    z0 = (theta[:, 0] + theta[:, 1]) / math.sqrt(2)
    z1 = (theta[:, 1] - theta[:, 0]) / math.sqrt(2)
    return torch.stack([p[:, 0] - z0.abs(), p[:, 1] + z1], 1)


prior = BoxUniform(-torch.ones(2), torch.ones(2))
theta = prior.sample((10_000,))
x = two_moons(theta)
t = time.time()
inference = NPE(prior=prior, density_estimator="maf")
inference.append_simulations(theta, x).train(show_train_summary=False)
posterior = inference.build_posterior()
print(f"NPE trained in {time.time() - t:.1f} s")

tests_theta = prior.sample((1_000,))
tests_x = two_moons(tests_theta)
t = time.time()
ranks, dap = run_sbc(tests_theta, tests_x, posterior, num_posterior_samples=1_000, show_progress_bar=False)
t_sbc = time.time() - t
t = time.time()
ranks_lp, _ = run_sbc(
    tests_theta, tests_x, posterior, num_posterior_samples=1_000, reduce_fns=posterior.log_prob, show_progress_bar=False
)
t_cov = time.time() - t
t = time.time()
ecp, alpha = run_tarp(tests_theta, tests_x, posterior, num_posterior_samples=1_000, show_progress_bar=False)
t_tarp = time.time() - t
print(f"sbi run_sbc (marginal ranks): {t_sbc:.2f} s")
print(f"sbi run_sbc (log-prob ranks, expected coverage): {t_cov:.2f} s")
print(f"sbi run_tarp: {t_tarp:.2f} s")
print(f"sbi total: {t_sbc + t_cov + t_tarp:.2f} s")
