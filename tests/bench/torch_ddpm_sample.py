#!/usr/bin/python3
# PyTorch 1.13 side of tests/bench/ddpm_sample.sh: DDIM sampling (a DDIM step as diffusers
# do it, eta 0, x0 clipped, leading spacing) of N images in batches of B on the
# google/ddpm-cifar10-32 shape (the re-implementation of tests/fixtures/gen_unet.py,
# closed-form weights: time and memory do not depend on the values), eval, no_grad, like
# DDIMPipeline. Run it under /usr/bin/time -v for the peak RSS. Run from the repo root:
#   /usr/bin/python3 tests/bench/torch_ddpm_sample.py [N [BATCH [STEPS [THREADS]]]]
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from gen_unet import CIFAR, UNet2DModel, closed_form  # noqa: E402

a = [int(v) for v in sys.argv[1:]]
N, B, STEPS, TH = (a + [100, 16, 50, 2][len(a):])[:4]
torch.set_num_threads(TH)
m = UNet2DModel(CIFAR).eval()
betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float32)
abar = torch.cumprod(1 - betas, 0)
ts = list(range(0, 1000, 1000 // STEPS))[::-1]
g = torch.Generator().manual_seed(0)
t0, c0 = time.perf_counter(), time.process_time()
with torch.no_grad():
    closed_form(m)
    for i0 in range(0, N, B):
        x = torch.randn(min(B, N - i0), 3, 32, 32, generator=g)
        for k, t in enumerate(ts):
            eps = m(x, torch.full((x.shape[0],), t))
            ap = abar[ts[k + 1]] if k + 1 < len(ts) else torch.tensor(1.0)
            x0 = ((x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()).clamp(-1, 1)
            x = ap.sqrt() * x0 + (1 - ap).sqrt() * eps
print(f"torch ddim sampling, {N} images, batch {B}, {STEPS} steps, {TH} threads: "
      f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU")
