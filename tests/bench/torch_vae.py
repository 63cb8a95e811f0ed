#!/usr/bin/python3
# PyTorch reference for bench_vae: training images/s of the spec's VAE (latent 128, batch 64,
# Adam) on 2 threads, the same loop vae-train runs. torch 1.13 (Debian 12).
import sys
import time

import torch

sys.path.insert(0, "tests/fixtures")
from gen_vae import VAE, vae_loss  # noqa: E402

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
torch.manual_seed(0)
B, L = 64, 128
model = VAE(L)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.rand(B, 3, 32, 32) * 2 - 1


def step():
    opt.zero_grad()
    xhat, mu, logvar = model(x, torch.randn(B, L))
    loss, _, _ = vae_loss(xhat, x, mu, logvar, 1.0)
    loss.backward()
    opt.step()


for _ in range(5):
    step()
best, c0, imgs = 0, time.process_time(), 0
for _ in range(3):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        step()
        n += 1
    best = max(best, n * B / (time.perf_counter() - t0))
    imgs += n * B
cpu = imgs / (time.process_time() - c0)
print(f"torch_vae: train batch {B} latent {L} threads {torch.get_num_threads()}: {best:.0f} img/s, "
      f"{cpu:.0f} img per CPU-second")
