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
import csv
import math
import sys
import time

import torch
from sbi.inference import SMCABC
from sbi.utils import BoxUniform
from sbi.utils.metrics import c2st

task, obs = sys.argv[1], int(sys.argv[2])
seed = int(sys.argv[3]) if len(sys.argv) > 3 else obs
torch.manual_seed(seed)
torch.set_num_threads(2)


def two_moons(theta):
    n = theta.shape[0]
    a = (torch.rand(n) - 0.5) * math.pi
    r = 0.1 + 0.01 * torch.randn(n)
    p = torch.stack([r * torch.cos(a) + 0.25, r * torch.sin(a)], 1)
    z0 = (theta[:, 0] + theta[:, 1]) / math.sqrt(2)
    z1 = (theta[:, 1] - theta[:, 0]) / math.sqrt(2)
    return torch.stack([p[:, 0] - z0.abs(), p[:, 1] + z1], 1)


def read(path):
    with open(path) as f:
        rows = list(csv.reader(f))[1:]
    return torch.tensor([[float(v) for v in r] for r in rows], dtype=torch.float32)


if task == "two_moons":
    prior = BoxUniform(-torch.ones(2), torch.ones(2))
    simulator = two_moons
elif task == "gaussian_linear":
    prior = torch.distributions.MultivariateNormal(torch.zeros(10), 0.1 * torch.eye(10))
    simulator = lambda theta: theta + math.sqrt(0.1) * torch.randn_like(theta)  # noqa: E731
else:
    sys.exit(f"unknown task {task}")

base = f"../shared/tasks/{task}/obs{obs}"
x_o = read(f"{base}/observation.csv")
reference = read(f"{base}/reference_posterior_samples.csv")[:10_000]

start = time.time()
smc = SMCABC(simulator, prior, simulation_batch_size=1000, show_progress_bars=False, kernel="gaussian",
             algorithm_variant="C")
kde = smc(x_o, num_particles=100, num_initial_pop=500, num_simulations=10_000, epsilon_decay=0.2,
          distance_based_decay=True, kernel_variance_scale=0.5, use_last_pop_samples=True, kde=True,
          kde_kwargs=dict(bandwidth="cv"), return_summary=True)
kde, summary = kde
print("epsilons", [round(float(e), 4) for e in summary["epsilons"]], "particles", [len(p) for p in summary["particles"]], file=sys.stderr)
samples = kde.sample(10_000)
total_s = time.time() - start
score = float(c2st(samples, reference))
print(f"sbi smc-abc task={task} obs={obs} total_s={total_s:.2f} c2st={score:.4f}")
