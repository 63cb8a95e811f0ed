#!/usr/bin/python3
# PyTorch 1.13 reference for bench_ddpm_train: one train_unconditional.py step (epsilon MSE,
# backward, clip_grad_norm_(1), AdamW(1e-4, 0.95, 0.999, wd 1e-6), EMA) on the
# google/ddpm-cifar10-32 shape (tests/fixtures/gen_unet.py's re-implementation, closed-form
# weights), batch 16, 2 threads. Prints images per second and per CPU-second (best of 3) and
# the peak RSS. Run from the repo root:
#   /usr/bin/python3 tests/bench/torch_ddpm_train.py [BATCH [THREADS]]
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from gen_unet import CIFAR, UNet2DModel, closed_form  # noqa: E402

TH = int(sys.argv[2]) if len(sys.argv) > 2 else 2
B = int(sys.argv[1]) if len(sys.argv) > 1 else 16
torch.set_num_threads(TH)
torch.manual_seed(0)
m = UNet2DModel(CIFAR).train()
with torch.no_grad():
    closed_form(m)
opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6,
                        eps=1e-8)
ema = [p.detach().clone() for p in m.parameters()]
ac = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)
x0 = torch.rand(B, 3, 32, 32) * 2 - 1


def step():
    noise = torch.randn_like(x0)
    t = torch.randint(0, 1000, (B,))
    a = ac[t][:, None, None, None]
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    loss = F.mse_loss(m(xt, t), noise)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    with torch.no_grad():
        for e, p in zip(ema, m.parameters()):
            e.sub_(1e-3 * (e - p))


step()
best = cbest = 1e30
for _ in range(3):
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    best = min(best, time.perf_counter() - t0)
    cbest = min(cbest, time.process_time() - c0)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"torch ddpm train step cifar10 batch {B}, {TH} threads: {B / best:.2f} img/s; "
      f"{B / cbest:.2f} img per CPU-second; peak RSS {rss:.0f} MiB")
