#!/usr/bin/python3
# PyTorch 1.13 reference for bench_unet: the diffusers UNet2DModel re-implementation of
# tests/fixtures/gen_unet.py on the google/ddpm-cifar10-32 shape, 2 threads, batch 16, eval,
# no_grad. Prints images per second (best of 3). Run from the repo root.
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from gen_unet import CIFAR, UNet2DModel, closed_form  # noqa: E402

torch.set_num_threads(2)
B = int(sys.argv[1]) if len(sys.argv) > 1 else 16
m = UNet2DModel(CIFAR).eval()
with torch.no_grad():
    closed_form(m)
    x = torch.randn(B, 3, 32, 32)
    t = torch.arange(B) * 61 % 1000
    m(x, t)
    best = 1e30
    for _ in range(3):
        t0 = time.perf_counter()
        m(x, t)
        best = min(best, time.perf_counter() - t0)
print(f"torch unet forward cifar10 batch {B}, 2 threads: {B / best:.2f} img/s")
