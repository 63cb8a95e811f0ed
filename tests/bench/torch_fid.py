#!/usr/bin/python3
# The PyTorch side of tests/bench/bench_inception.sh's whole-program line: what pytorch-fid's
# `python -m pytorch_fid` does for two sets of 32x32 uint8 images, start-up included: load the
# FID Inception weights from a .pth file (torch.load), resize to 299 (pytorch-fid's bilinear),
# pool3 features in batches of 50, mean and covariance, Frechet distance. pytorch-fid takes
# the matrix square root with scipy.linalg.sqrtm; Debian's python here has no scipy, so the
# trace of sqrtm(s1 s2) comes from the eigenvalues of s1 s2 (numpy), about the same work.
# Usage: /usr/bin/python3 tests/bench/torch_fid.py WEIGHTS.pth GEN.npy REAL.npy
#        /usr/bin/python3 tests/bench/torch_fid.py --write WEIGHTS.pth   (the closed-form
#        synthetic weights of inception.h, which `fid --weights synthetic` also makes, in the
#        official file's names and legacy format)
import os
import sys
import time

T_START = time.perf_counter()
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from gen_inception import FIDInception, preprocess, synthetic_state_dict  # noqa: E402

torch.set_num_threads(2)
if sys.argv[1] == "--write":
    torch.save(synthetic_state_dict(FIDInception()), sys.argv[2],
               _use_new_zipfile_serialization=False)
    sys.exit(0)
net = FIDInception().eval()
net.load_state_dict(torch.load(sys.argv[1]))
T_READY = time.perf_counter()


def stats(path):
    u8 = np.load(path)
    with torch.no_grad():
        f = torch.cat([net.stages(preprocess(u8[i:i + 50], "pytorch-fid"))[-1]
                       for i in range(0, len(u8), 50)]).double().numpy()
    return f.mean(0), np.cov(f, rowvar=False)


m1, s1 = stats(sys.argv[2])
m2, s2 = stats(sys.argv[3])
tr_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).astype(complex)).real.sum()
fid = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
t1 = time.perf_counter()
print(f"torch fid: {fid:.4f}; whole script {t1 - T_START:.2f} s (weights loaded after "
      f"{T_READY - T_START:.2f} s)")
