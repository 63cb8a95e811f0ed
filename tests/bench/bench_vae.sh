#!/bin/sh
# The PyTorch side of bench_vae: the same VAE training loop (latent 128, batch 64, Adam) on 2
# threads, where Debian's python has torch. Run from the repo root (make bench does).
if /usr/bin/python3 -c 'import torch' 2> /dev/null; then
	/usr/bin/python3 tests/bench/torch_vae.py 2
fi
