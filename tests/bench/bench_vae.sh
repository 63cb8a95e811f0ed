#!/bin/sh
# bench_vae side by side with PyTorch in one run: the same VAE training loop (latent 128,
# batch 64, Adam; tests/bench/torch_vae.py on 2 threads) just before ours, so both see the
# same machine load; ours prints the ratio (TORCH_VAE_IMGS). Run from the repo root (make
# bench does, with BENCH_DIR set).
/usr/bin/python3 -c 'import torch' 2> /dev/null || exit 0
b=${BENCH_DIR:-build/bench}/bench_vae
[ -x "$b" ] || { echo "bench_vae.sh: no $b (make bench builds it)" >&2; exit 1; }
line=$(/usr/bin/python3 tests/bench/torch_vae.py 2) || exit 1
echo "$line"
TORCH_VAE_IMGS=$(echo "$line" | sed -E 's/.*threads [0-9]+: ([0-9.]+) img\/s.*/\1/') "$b"
