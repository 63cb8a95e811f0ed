#!/bin/sh
# make bench: every benchmark binary in $1, then every tests/bench/*.sh with the tools ($2) on
# PATH. Each prints one line per case. PyTorch comparisons run where /usr/bin/python3 has torch.
bench=$1
PATH="$(cd "$2" && pwd):$PATH"
export PATH
for b in "$bench"/bench_*; do
	[ -x "$b" ] && "$b"
done
for s in tests/bench/*.sh; do
	[ -f "$s" ] && sh "$s"
done
exit 0
