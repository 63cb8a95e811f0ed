#!/bin/sh
# bench_unet side by side with PyTorch in one run: the same forward at batch 16 and batch 1
# (tests/bench/torch_unet.py, 2 threads) and ours, alternating ROUNDS=2 times so that both
# sides see the same machine load; ours carries the ratios to the PyTorch figures of the same
# round (TORCH_UNET_IMGS, TORCH_UNET_IMGS1). Run from the repo root (make bench does).
/usr/bin/python3 -c 'import torch' 2> /dev/null || exit 0
b=${BENCH_DIR:-build/bench}/bench_unet
[ -x "$b" ] || { echo "unet.sh: no $b (make bench builds it)" >&2; exit 1; }
imgs() { echo "$1" | sed -E 's/.*threads: ([0-9.]+) img\/s.*/\1/'; }
r=0
while [ "$r" -lt "${ROUNDS:-2}" ]; do
	l16=$(/usr/bin/python3 tests/bench/torch_unet.py 16 2) || exit 1
	l1=$(/usr/bin/python3 tests/bench/torch_unet.py 1 2) || exit 1
	echo "$l16"
	echo "$l1"
	TORCH_UNET_IMGS=$(imgs "$l16") TORCH_UNET_IMGS1=$(imgs "$l1") "$b" || exit 1
	r=$((r + 1))
done
