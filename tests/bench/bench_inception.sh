#!/bin/sh
# The PyTorch side of bench_inception: the same FID Inception v3 on a batch of 16 32x32 images
# through the pytorch-fid preprocessing, 2 threads, where Debian's python has torch. Run from
# the repo root (make bench does). Compare with bench_inception's "fused 1x1" line.
# Then whole programs as a user runs them (issue 16): `fid` of 100 against 100 images, the
# Inception weights loaded from the same .pth file (the synthetic weights in the official
# file's layout, written by torch_fid.py), against tests/bench/torch_fid.py doing what
# pytorch-fid does; wall time, peak RSS and the two FIDs (which agree).
/usr/bin/python3 -c 'import torch' 2> /dev/null || exit 0
/usr/bin/python3 tests/bench/torch_inception.py 16 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 tests/bench/torch_fid.py --write "$tmp/w.pth" || exit 1
/usr/bin/python3 -c 'import numpy as np, sys
rs = np.random.RandomState(0)
for p in sys.argv[1:]:
    np.save(p, rs.randint(0, 256, (100, 32, 32, 3)).astype(np.uint8))' "$tmp/g.npy" "$tmp/r.npy"
peak() { awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1000 }' "$1"; }
wall() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
t0=$(date +%s.%N)
/usr/bin/time -v fid --weights "$tmp/w.pth" --threads 2 "$tmp/g.npy" "$tmp/r.npy" > "$tmp/c" 2> "$tmp/tc" ||
	{ cat "$tmp/tc" >&2; exit 1; }
t1=$(date +%s.%N)
/usr/bin/time -v /usr/bin/python3 tests/bench/torch_fid.py "$tmp/w.pth" "$tmp/g.npy" "$tmp/r.npy" \
	> "$tmp/p" 2> "$tmp/tp" || { cat "$tmp/tp" >&2; exit 1; }
t2=$(date +%s.%N)
awk -v c="$(wall "$t0" "$t1")" -v p="$(wall "$t1" "$t2")" -v pc="$(peak "$tmp/tc")" \
	-v pp="$(peak "$tmp/tp")" -v fc="$(cat "$tmp/c")" -v fp="$(cut -d';' -f1 "$tmp/p")" \
	'BEGIN { printf "whole tool: fid of 100 vs 100 32x32 images, weights from a .pth, 2 threads: %.2f s wall, peak RSS %d MB (%s); PyTorch script %.2f s, peak RSS %d MB (%s); ratio %.2f\n", c, pc, fc, p, pp, fp, p / c }'
