"""`sbi`'s FMPE and NPSE with their defaults on an sbibm task and observation, timed end to
end (training, then 10,000 draws) with C2ST against the reference draws (`sbi`'s `c2st`),
for side-by-side runs with `cargo run --release --example sbibm -- --method fmpe|npse`.

usage: python scripts/sbi_vector_field.py two_moons|gaussian_linear fmpe|npse OBS [SEED]
(after `pip install sbi`; torch on 2 threads, as this machine has).
"""
import csv
import math
import sys
import time

import torch
from sbi.inference import FMPE, NPSE
from sbi.utils import BoxUniform
from sbi.utils.metrics import c2st

task, method, obs = sys.argv[1], sys.argv[2], int(sys.argv[3])
seed = int(sys.argv[4]) if len(sys.argv) > 4 else obs
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
theta = prior.sample((10_000,))
x = simulator(theta)
inference = (FMPE if method == "fmpe" else NPSE)(prior=prior, show_progress_bars=False)
estimator = inference.append_simulations(theta, x).train(show_train_summary=False)
train_s = time.time() - start
epochs = inference._summary["epochs_trained"][-1]
posterior = inference.build_posterior(estimator)
t = time.time()
samples = posterior.sample((10_000,), x=x_o, show_progress_bars=False)
sample_s = time.time() - t
score = float(c2st(samples, reference))
print(
    f"sbi {method} task={task} obs={obs} train_s={train_s:.1f} epochs={epochs} "
    f"ms_per_epoch={1000 * train_s / epochs:.0f} sample_s={sample_s:.1f} total_s={train_s + sample_s:.1f} c2st={score:.4f}"
)
