#!/bin/sh
# bench_ddpm_train side by side with PyTorch in one run (issue 16): the same training step
# (tests/bench/torch_ddpm_train.py, batch 16, 2 threads) and ours, alternating ROUNDS=2 times,
# so that both sides see the same machine load. Each round prints both lines; ours carries the
# ratio to the PyTorch figure of the same round (TORCH_TRAIN_IMGS). Run from the repo root
# (make bench does, with BENCH_DIR set).
/usr/bin/python3 -c 'import torch' 2> /dev/null || exit 0
b=${BENCH_DIR:-build/bench}/bench_ddpm_train
[ -x "$b" ] || { echo "ddpm_train.sh: no $b (make bench builds it)" >&2; exit 1; }
r=0
while [ "$r" -lt "${ROUNDS:-2}" ]; do
	line=$(/usr/bin/python3 tests/bench/torch_ddpm_train.py 16 2) || exit 1
	echo "$line"
	imgs=$(echo "$line" | sed -E 's/.*threads: ([0-9.]+) img\/s.*/\1/')
	TORCH_TRAIN_IMGS=$imgs "$b" || exit 1
	r=$((r + 1))
done
