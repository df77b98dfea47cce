"""The sbibm tasks the comparison scripts run with `sbi` (two_moons, gaussian_linear) and
the files of an observation, shared by `sbi_vector_field.py`, `sbi_smcabc.py` and
`sbi_sbc_timing.py`."""
import csv
import math

import torch
from sbi.utils import BoxUniform


def two_moons(theta):
    """sbibm's two_moons simulator."""
    n = theta.shape[0]
    a = (torch.rand(n) - 0.5) * math.pi
    r = 0.1 + 0.01 * torch.randn(n)
    p = torch.stack([r * torch.cos(a) + 0.25, r * torch.sin(a)], 1)
    z0 = (theta[:, 0] + theta[:, 1]) / math.sqrt(2)
    z1 = (theta[:, 1] - theta[:, 0]) / math.sqrt(2)
    return torch.stack([p[:, 0] - z0.abs(), p[:, 1] + z1], 1)


def read(path):
    """A CSV file with a header, as a float tensor."""
    with open(path) as f:
        rows = list(csv.reader(f))[1:]
    return torch.tensor([[float(v) for v in r] for r in rows], dtype=torch.float32)


def task(name):
    """The prior and simulator of a task."""
    if name == "two_moons":
        return BoxUniform(-torch.ones(2), torch.ones(2)), two_moons
    if name == "gaussian_linear":
        prior = torch.distributions.MultivariateNormal(torch.zeros(10), 0.1 * torch.eye(10))
        return prior, lambda theta: theta + math.sqrt(0.1) * torch.randn_like(theta)
    raise SystemExit(f"unknown task {name}")


def observation(name, obs):
    """The observation and 10,000 reference posterior draws of sbibm observation `obs`."""
    base = f"../shared/tasks/{name}/obs{obs}"
    return read(f"{base}/observation.csv"), read(f"{base}/reference_posterior_samples.csv")[:10_000]
