#!/bin/sh
# The PyTorch side of bench_dinov2: the same DINOv2 ViT-L/14 on a batch of 4 32x32 images
# through dgm-eval's transform, 2 threads, where Debian's python has torch. Run from the repo
# root (make bench does).
if /usr/bin/python3 -c 'import torch' 2> /dev/null; then
	/usr/bin/python3 tests/bench/torch_dinov2.py 4 2
fi
