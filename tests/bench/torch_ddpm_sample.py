#!/usr/bin/python3
# PyTorch 1.13 side of tests/bench/ddpm_sample.sh: DDIM sampling (a DDIM step as diffusers
# do it, eta 0, x0 clipped, leading spacing) of N images in batches of B on the
# google/ddpm-cifar10-32 shape (the re-implementation of tests/fixtures/gen_unet.py,
# closed-form weights: time and memory do not depend on the values), eval, no_grad, like
# DDIMPipeline. Run it under /usr/bin/time -v for the peak RSS. Run from the repo root:
#   /usr/bin/python3 tests/bench/torch_ddpm_sample.py [N [BATCH [STEPS [THREADS [MODEL]]]]]
# MODEL: a diffusers folder whose diffusion_pytorch_model.safetensors is loaded from disk
# (parsed with numpy: Debian has no python3-safetensors), as a whole-tool comparison needs.
import json
import os
import sys
import time

T_START = time.perf_counter()
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from gen_unet import CIFAR, LEGACY, UNet2DModel, closed_form  # noqa: E402

a = [int(v) for v in sys.argv[1:5]]
N, B, STEPS, TH = (a + [100, 16, 50, 2][len(a):])[:4]
MODEL = sys.argv[5] if len(sys.argv) > 5 else None
MODERN = {legacy: modern for modern, legacy in LEGACY.items()}  # what --save-dir writes


def load_safetensors(path):
    """name -> tensor of an F32 safetensors file (8-byte header length, JSON header, data)"""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    head = json.loads(raw[8:8 + n])
    sd = {}
    for name, e in head.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", name
        b, end = e["data_offsets"]
        t = np.frombuffer(raw, np.float32, (end - b) // 4, 8 + n + b).reshape(e["shape"])
        parts = name.split(".")
        sd[".".join(MODERN.get(p, p) for p in parts)] = torch.from_numpy(t.copy())
    return sd


torch.set_num_threads(TH)
m = UNet2DModel(CIFAR).eval()
if MODEL:
    m.load_state_dict(load_safetensors(os.path.join(MODEL, "diffusion_pytorch_model.safetensors")))
T_READY = time.perf_counter()
betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float32)
abar = torch.cumprod(1 - betas, 0)
ts = list(range(0, 1000, 1000 // STEPS))[::-1]
g = torch.Generator().manual_seed(0)
t0, c0 = time.perf_counter(), time.process_time()
with torch.no_grad():
    if not MODEL:
        closed_form(m)
    for i0 in range(0, N, B):
        x = torch.randn(min(B, N - i0), 3, 32, 32, generator=g)
        for k, t in enumerate(ts):
            eps = m(x, torch.full((x.shape[0],), t))
            ap = abar[ts[k + 1]] if k + 1 < len(ts) else torch.tensor(1.0)
            x0 = ((x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()).clamp(-1, 1)
            x = ap.sqrt() * x0 + (1 - ap).sqrt() * eps
t1 = time.perf_counter()
print(f"torch ddim sampling, {N} images, batch {B}, {STEPS} steps, {TH} threads: "
      f"{t1 - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU" +
      (f"; whole script {t1 - T_START:.2f} s (ready for the first step after "
       f"{T_READY - T_START:.2f} s, loading {MODEL})" if MODEL else ""))
