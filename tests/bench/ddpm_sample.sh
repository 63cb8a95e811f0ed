#!/bin/sh
# Wall time of `ddpm-sample -n 100 --scheduler ddim --steps 50` on the google/ddpm-cifar10-32
# shape, 2 threads (goal: under 5 minutes). Uses weights/ddpm-cifar10-32 when `make weights`
# has fetched it, else the closed-form weights written by `ddpm-sample --save-dir` from a
# folder made here (timing does not depend on the values). N=... overrides -n.
# Then whole tools as a user runs them, start-up included, each side loading the same
# safetensors file from disk: -n 1 --steps 1 and -n 16 --batch-size 16 --steps 4 (the best
# of REPS=3 runs a side, alternating), with ddpm-sample's "ready for the first step" time and
# the peak RSS of each.
n=${N:-100}
m=weights/ddpm-cifar10-32
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ ! -f "$m/config.json" ]; then
	m=$tmp/m
	. tests/bench/lib/cifar_unet.sh
	cifar_unet "$m" || exit 1
fi
# peak RSS from /usr/bin/time -v ("Maximum resident set size (kbytes)"), in MB of 1000 kB
peak() { awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1000 }' "$1"; }
t0=$(date +%s.%N)
/usr/bin/time -v ddpm-sample --model "$m" -n "$n" --scheduler ddim --steps 50 --threads 2 \
	-o "$tmp/x.npy" 2> "$tmp/time" || { cat "$tmp/time" >&2; exit 1; }
t1=$(date +%s.%N)
# CPU seconds of the children (second line of `times`, "XmY.YYs XmY.YYs"): meaningful on a
# loaded machine, where the wall time is not
times > "$tmp/times"
cpu=$(tail -n 1 "$tmp/times" | awk '{ split($1, a, /[ms]/); printf "%.1f", a[1] * 60 + a[2] }')
awk -v a="$t0" -v b="$t1" -v n="$n" -v c="$cpu" -v p="$(peak "$tmp/time")" 'BEGIN { printf "ddpm-sample -n %d --scheduler ddim --steps 50, 2 threads: %.1f s wall, %.1f s user CPU, peak RSS %d MB (goal < 300 s wall for 100)\n", n, b - a, c, p }'
# PyTorch's side, where /usr/bin/python3 has torch: the same work at batch 16
if /usr/bin/python3 -c 'import torch' 2> /dev/null; then
	/usr/bin/time -v /usr/bin/python3 "$(dirname "$0")/torch_ddpm_sample.py" "$n" 16 50 2 \
		> "$tmp/torch" 2> "$tmp/time" || { cat "$tmp/time" >&2; exit 1; }
	echo "$(cat "$tmp/torch"), peak RSS $(peak "$tmp/time") MB"
fi

# whole tools: ddpm-sample against the PyTorch script, both loading $m/*.safetensors
whole() { # n batch steps
	best=1e9 bestpy=1e9 ready=- readypy=- pk=0 pkpy=0
	for r in $(seq "${REPS:-3}"); do
		t0=$(date +%s.%N)
		/usr/bin/time -v ddpm-sample --model "$m" -n "$1" --batch-size "$2" --scheduler ddim \
			--steps "$3" --threads 2 -v -o "$tmp/w.npy" 2> "$tmp/time" || { cat "$tmp/time" >&2; exit 1; }
		t1=$(date +%s.%N)
		w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
		if awk -v w="$w" -v b="$best" 'BEGIN { exit !(w < b) }'; then
			best=$w pk=$(peak "$tmp/time")
			ready=$(sed -n 's/.*ready for the first step \([0-9.]*\) s.*/\1/p' "$tmp/time")
		fi
		/usr/bin/python3 -c 'import torch' 2> /dev/null || continue
		t0=$(date +%s.%N)
		/usr/bin/time -v /usr/bin/python3 "$(dirname "$0")/torch_ddpm_sample.py" "$1" "$2" "$3" 2 \
			"$m" > "$tmp/torch" 2> "$tmp/time" || { cat "$tmp/time" >&2; exit 1; }
		t1=$(date +%s.%N)
		w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
		if awk -v w="$w" -v b="$bestpy" 'BEGIN { exit !(w < b) }'; then
			bestpy=$w pkpy=$(peak "$tmp/time")
			readypy=$(sed -n 's/.*ready for the first step after \([0-9.]*\) s.*/\1/p' "$tmp/torch")
		fi
	done
	printf 'whole tool: ddpm-sample -n %s --batch-size %s --scheduler ddim --steps %s, 2 threads: %s s wall, ready after %s s, peak RSS %s MB' \
		"$1" "$2" "$3" "$best" "$ready" "$pk"
	[ "$bestpy" = 1e9 ] && { echo; return; }
	awk -v a="$best" -v b="$bestpy" -v r="$readypy" -v p="$pkpy" 'BEGIN { printf "; PyTorch script %.2f s wall, ready after %s s, peak RSS %d MB; ratio %.2f\n", b, r, p, b / a }'
}
whole 1 1 1
whole 16 16 4
