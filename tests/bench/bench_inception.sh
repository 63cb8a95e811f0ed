#!/bin/sh
# The PyTorch side of bench_inception: the same FID Inception v3 on a batch of 16 32x32 images
# through the pytorch-fid preprocessing, 2 threads, where Debian's python has torch. Run from
# the repo root (make bench does). Compare with bench_inception's "fused 1x1" line.
if /usr/bin/python3 -c 'import torch' 2> /dev/null; then
	/usr/bin/python3 tests/bench/torch_inception.py 16 1
fi
