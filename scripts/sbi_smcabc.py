"""`sbi`'s SMC-ABC with sbibm's settings (population 100, initial population 500, ε as the
0.2-quantile of the last population's distances, Gaussian kernel with variance scale 0.5,
the population refilled from the last one when the budget ends mid-generation, a kernel
density with cross-validated bandwidth for the draws) on an sbibm task and observation:
10,000 simulations, 10,000 draws, timed end to end, with C2ST against the reference draws
(`sbi`'s `c2st`), for side-by-side runs with
`cargo run --release --example sbibm -- --method smc-abc`.

usage: python scripts/sbi_smcabc.py two_moons|gaussian_linear OBS [SEED]
(after `pip install sbi`; torch on 2 threads, as this machine has).
"""
import sys
import time

import torch
from sbi.inference import SMCABC
from sbi.utils.metrics import c2st

from sbibm_tasks import observation, task as load_task

task, obs = sys.argv[1], int(sys.argv[2])
seed = int(sys.argv[3]) if len(sys.argv) > 3 else obs
torch.manual_seed(seed)
torch.set_num_threads(2)

prior, simulator = load_task(task)
x_o, reference = observation(task, obs)

start = time.time()
smc = SMCABC(simulator, prior, simulation_batch_size=1000, show_progress_bars=False, kernel="gaussian",
             algorithm_variant="C")
kde, summary = smc(x_o, num_particles=100, num_initial_pop=500, num_simulations=10_000, epsilon_decay=0.2,
          distance_based_decay=True, kernel_variance_scale=0.5, use_last_pop_samples=True, kde=True,
          kde_kwargs=dict(bandwidth="cv"), return_summary=True)
print("epsilons", [round(float(e), 4) for e in summary["epsilons"]], file=sys.stderr)
samples = kde.sample(10_000)
total_s = time.time() - start
score = float(c2st(samples, reference))
print(f"sbi smc-abc task={task} obs={obs} total_s={total_s:.2f} c2st={score:.4f}")
