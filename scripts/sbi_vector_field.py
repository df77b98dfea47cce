"""`sbi`'s FMPE and NPSE with their defaults on an sbibm task and observation, timed end to
end (training, then 10,000 draws) with C2ST against the reference draws (`sbi`'s `c2st`),
for side-by-side runs with `cargo run --release --example sbibm -- --method fmpe|npse`.

usage: python scripts/sbi_vector_field.py two_moons|gaussian_linear fmpe|npse OBS [SEED]
(after `pip install sbi`; torch on 2 threads, as this machine has).
"""
import sys
import time

import torch
from sbi.inference import FMPE, NPSE
from sbi.utils.metrics import c2st

from sbibm_tasks import observation, task as load_task

task, method, obs = sys.argv[1], sys.argv[2], int(sys.argv[3])
seed = int(sys.argv[4]) if len(sys.argv) > 4 else obs
torch.manual_seed(seed)
torch.set_num_threads(2)

prior, simulator = load_task(task)
x_o, reference = observation(task, obs)

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
