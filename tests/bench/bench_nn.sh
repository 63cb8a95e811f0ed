#!/bin/sh
# The PyTorch side of bench_nn: the same ops and shapes in PyTorch on 2 threads, where
# Debian's python has torch, against the results bench_nn just wrote (make bench runs the
# binaries first). Run from the repo root.
if /usr/bin/python3 -c 'import torch' 2> /dev/null; then
	/usr/bin/python3 tests/bench/torch_nn.py "${BENCH_NN_OUT:-/tmp/bench_nn.txt}" 2
fi
