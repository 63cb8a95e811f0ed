#!/usr/bin/python3
# PyTorch reference speed of DINOv2 ViT-L/14 (the transcription in
# tests/fixtures/gen_dinov2.py, facebookresearch/dinov2's modules) on 2 threads: images/s for
# a batch of 32x32 uint8 images through dgm-eval's transform (PIL bicubic to 224, ImageNet
# mean/std) and the network to the cls token, as bench_dinov2 does. The model is fed the
# whole batch at once, as dgm-eval does. Best of `repeats` runs.
# Usage: /usr/bin/python3 tests/bench/torch_dinov2.py [batch] [repeats]
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from gen_dinov2 import DinoVisionTransformer, preprocess  # noqa: E402

torch.set_num_threads(2)
batch = int(sys.argv[1]) if len(sys.argv) > 1 else 4
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
net = DinoVisionTransformer(14, 1024, 24, 16, 4096, 37).eval()
img = np.random.RandomState(0).randint(0, 256, (batch, 32, 32, 3)).astype(np.uint8)
with torch.no_grad():
    def run():
        return net(torch.stack([preprocess(u8) for u8 in img]))
    net(preprocess(img[0])[None])  # warm-up
    best, cpu = 1e30, 0
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        run()
        if time.perf_counter() - t < best:
            best, cpu = time.perf_counter() - t, time.process_time() - c
print(f"torch dinov2 vitl14 224 batch {batch} threads 2: {batch / best:.2f} img/s "
      f"({cpu / batch:.2f} s/img of CPU)")
