#!/usr/bin/python3
# PyTorch reference speed of the FID Inception v3 (the network of tests/fixtures/gen_inception.py,
# same as pytorch-fid's) on 2 threads: images/s for a batch of 32x32 uint8 images through the
# pytorch-fid preprocessing (resize to 299) and the network up to pool3, as bench_inception does.
# Usage: /usr/bin/python3 tests/bench/torch_inception.py [batch] [repeats]
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from gen_inception import FIDInception  # noqa: E402

torch.set_num_threads(2)
batch = int(sys.argv[1]) if len(sys.argv) > 1 else 50
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
net = FIDInception().eval()
x8 = torch.from_numpy(np.random.RandomState(0).randint(0, 256, (batch, 3, 32, 32)).astype(np.uint8))
with torch.no_grad():
    def run():
        x = F.interpolate(x8.float() / 255, size=(299, 299), mode="bilinear", align_corners=False)
        return net.stages(2 * x - 1)[-1]
    run()  # warm-up
    t, c = time.perf_counter(), time.process_time()
    for _ in range(reps):
        run()
    dt, dc = (time.perf_counter() - t) / reps, (time.process_time() - c) / reps
print(f"torch_inception batch {batch} threads 2: {batch / dt:.2f} img/s ({dc / batch:.3f} s/img of CPU)")
