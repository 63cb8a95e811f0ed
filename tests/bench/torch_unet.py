#!/usr/bin/python3
# PyTorch 1.13 reference for bench_unet: the diffusers UNet2DModel re-implementation of
# tests/fixtures/gen_unet.py on the google/ddpm-cifar10-32 shape, 2 threads, batch 16, eval,
# no_grad. Prints images per second and per CPU-second (best of 3). Run from the repo root:
#   /usr/bin/python3 tests/bench/torch_unet.py [BATCH [THREADS]]
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from gen_unet import CIFAR, UNet2DModel, closed_form  # noqa: E402

TH = int(sys.argv[2]) if len(sys.argv) > 2 else 2
torch.set_num_threads(TH)
B = int(sys.argv[1]) if len(sys.argv) > 1 else 16
m = UNet2DModel(CIFAR).eval()
with torch.no_grad():
    closed_form(m)
    x = torch.randn(B, 3, 32, 32)
    t = torch.arange(B) * 61 % 1000
    m(x, t)
    best = cbest = 1e30
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        m(x, t)
        best = min(best, time.perf_counter() - t0)
        cbest = min(cbest, time.process_time() - c0)
print(f"torch unet forward cifar10 batch {B}, {TH} threads: {B / best:.2f} img/s; "
      f"{B / cbest:.2f} img per CPU-second")
