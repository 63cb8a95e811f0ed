#!/bin/sh
# imgresize throughput on 1,000 photo-like JPEGs of 500x375 (made once in /tmp by PIL) against
# PIL's Image.open(p).convert('RGB').resize((32,32), BILINEAR) on the same files (only where
# /usr/bin/python3 has PIL), plus how many output values differ. One line per case.
set -eu
dir=${BENCH_IMG_DIR:-/tmp/bench_imgresize_jpegs}
n=1000
py=/usr/bin/python3
have_pil=0
[ -x "$py" ] && "$py" -c 'import PIL, numpy' 2>/dev/null && have_pil=1
if [ ! -f "$dir/.done" ]; then
	if [ "$have_pil" -eq 0 ]; then
		echo "bench_imgresize: skipped (no $py with PIL to make the JPEGs)"
		exit 0
	fi
	mkdir -p "$dir"
	"$py" - "$dir" "$n" <<'PY'
import sys, numpy as np
from PIL import Image
d, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
y, x = np.mgrid[0:375, 0:500].astype(np.float32)
for i in range(n):
    a, b = rng.uniform(20, 90, 2)
    img = np.stack([128 + 100 * np.sin(x / a + i), 128 + 100 * np.cos(y / b), (x + y + i) % 256], -1)
    img += rng.normal(0, 10, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save("%s/img_%04d.jpg" % (d, i), quality=85)
PY
	touch "$dir/.done"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# warm the page cache
cat "$dir"/*.jpg > /dev/null
for t in 1 2; do
	s=$(date +%s.%N)
	imgresize -t $t -o "$out/c.npy" "$dir"
	e=$(date +%s.%N)
	echo "$s $e $t" | awk '{ printf "imgresize %d images 500x375 -> 32x32, %d thread(s): %.1f images/s\n", '"$n"', $3, '"$n"' / ($2 - $1) }'
	[ "$t" -eq 2 ] && c_ips=$(echo "$s $e" | awk '{ print '"$n"' / ($2 - $1) }')
done
if [ "$have_pil" -eq 1 ]; then
	r=$("$py" tests/bench/pil_resize.py "$dir" "$out/p.npy")
	p_ips=$(echo "$r" | awk '{ print $1 / $2 }')
	echo "$p_ips $c_ips" | awk '{ printf "PIL open+convert+resize (1 process): %.1f images/s; imgresize (2 threads) is %.2fx\n", $1, $2 / $1 }'
	"$py" -c "
import numpy as np, sys
a, b = np.load('$out/c.npy'), np.load('$out/p.npy')
print('imgresize vs PIL: %d of %d values differ, max %d' % ((a != b).sum(), a.size, np.abs(a.astype(int) - b).max()))"
fi
