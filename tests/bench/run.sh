#!/bin/sh
# make bench: every benchmark binary in $1, then every tests/bench/*.sh with the tools ($2) on
# PATH and $1 in BENCH_DIR. Each prints one line per case. PyTorch comparisons run where /usr/bin/python3 has torch.
bench=$1
PATH="$(cd "$2" && pwd):$PATH"
BENCH_DIR="$(cd "$bench" && pwd)" # for the scripts that run a benchmark binary (mpi_train.sh)
export PATH BENCH_DIR
for b in "$bench"/bench_*; do
	[ -x "$b" ] && "$b"
done
for s in tests/bench/*.sh; do
	[ -f "$s" ] && sh "$s"
done
exit 0
