"""Times `sbi`'s calibration diagnostics on the work `cargo run --release --example diagnose`
does: NPE (MAF, sbi's defaults) on 10,000 two_moons simulations, then SBC ranks, the
expected coverage (ranks of the log density) and TARP over 1,000 test simulations with
1,000 posterior draws each. Run with `python scripts/sbi_sbc_timing.py` after `pip install sbi`.
"""
import time

import torch
from sbi.diagnostics import run_sbc, run_tarp
from sbi.inference import NPE
from sbi.utils import BoxUniform

from sbibm_tasks import two_moons

torch.manual_seed(1)
torch.set_num_threads(2)


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
