#!/bin/sh
# Issue 18: FID and KID against steps (10, 20, 50) for every scheduler of ddpm-sample on the demo
# pipeline's UNet (results/demo/ddpm, `make demo`), beside DDIM-50 and DDPM-1000, the latter at
# several seeds for its run-to-run noise. N samples per run (default 50, the README's run; the
# demo draws 100) scored against the demo's 100 real test images with the demo's Inception
# weights (synthetic): pool3 features by `fid --save-features` as the demo's, the real ones
# computed once; FID against their statistics, KID on the features (subset size 50, as the
# demo). Wall and CPU seconds (user+sys) of each ddpm-sample run by GNU time.
#
# Runs are cached in $WORK (default results/samplers-demo/nN) keyed by the model, the real
# images, N and the weights, so a second run only redoes what is missing. Writes $OUT.csv (a
# row per run), $OUT.md (the README's table) and $OUT.png (FID against steps; `plot`), OUT
# default docs/samplers-demo. Skips, with a message, when the demo has not been run.
# Environment: N, SEEDS (DDPM-1000's seeds, default "1 2 3"), SEED2 (second seed of the
# 10- and 20-step runs, default 2; empty: none), WEIGHTS, WORK, OUT. Measured at N=50 (README,
# Samplers): 1699 s of ddpm-sample CPU over the 53 runs, 45 min wall on 2 shared cores; N=100
# doubles that.
model=${MODEL:-results/demo/ddpm}
real=${REAL:-results/demo/real-100.npy}
weights=${WEIGHTS:-synthetic}
n=${N:-50}
seeds=${SEEDS:-1 2 3}
seed2=${SEED2-2}
work=${WORK:-results/samplers-demo/n$n}
out=${OUT:-docs/samplers-demo}
kid_subset=50

if [ ! -f "$model/config.json" ] || [ ! -f "$real" ]; then
	echo "samplers_demo: skipped: no $model or $real (run make demo first)"
	exit 0
fi
if [ ! -x /usr/bin/time ]; then
	echo "samplers_demo: skipped: needs GNU time (/usr/bin/time) for the CPU seconds"
	exit 0
fi
mkdir -p "$work" "$(dirname "$out")" || exit 1

# cached runs are valid for this model, these real images, N and weights only
key=$(cat "$model"/*.safetensors "$model"/*.json "$real" | cksum)
key="$key n=$n weights=$weights"
if [ "$(cat "$work/key.txt" 2> /dev/null)" != "$key" ]; then
	rm -f "$work"/*.row "$work"/*.npy "$work"/*.npz "$work"/*.time
	printf '%s\n' "$key" > "$work/key.txt"
fi

if [ ! -f "$work/real-stats.npz" ]; then
	fid --save-features "$real" "$work/real-feat.npy" --weights "$weights" &&
		fid --save-stats "$work/real-feat.npy" "$work/real-stats.npz" || exit 1
fi

# run LABEL STEPS SEED CALLS ddpm-sample-args...: one run's CSV row in $work/LABEL-STEPS-sSEED.row
run() {
	label=$1 steps=$2 seed=$3 calls=$4
	shift 4
	r=$work/$(printf '%s' "$label" | tr ' +' '_p')-$steps-s$seed
	[ -f "$r.row" ] && return 0
	/usr/bin/time -f '%e %U %S' -o "$r.time" ddpm-sample --model "$model" -n "$n" \
		--seed "$seed" --steps "$steps" "$@" -o "$r.npy" || exit 1
	fid --save-features "$r.npy" "$r-feat.npy" --weights "$weights" || exit 1
	f=$(fid "$r-feat.npy" "$work/real-stats.npz" | awk '/^FID:/ { print $2 }')
	k=$(kid "$r-feat.npy" "$work/real-feat.npy" --subset-size $kid_subset |
		awk '/_mean:/ { m = $2 } /_std:/ { s = $2 } END { print m "," s }')
	t=$(awk '{ printf "%.1f,%.1f", $1, $2 + $3 }' "$r.time")
	printf '%s,%d,%d,%d,%s,%s,%s\n' "$label" "$steps" "$seed" "$calls" "$f" "$k" "$t" > "$r.row.tmp" &&
		mv "$r.row.tmp" "$r.row"
	rm -f "$r-feat.npy"
	echo "samplers_demo: $(cat "$r.row")"
}

# every scheduler at STEPS with SEED
grid() {
	steps=$1 seed=$2
	run ddim "$steps" "$seed" "$steps" --scheduler ddim
	run "dpm-solver++ 1" "$steps" "$seed" "$steps" --scheduler dpm-solver++ --solver-order 1
	run "dpm-solver++ 2" "$steps" "$seed" "$steps" --scheduler dpm-solver++ --solver-order 2
	run "dpm-solver++ 3" "$steps" "$seed" "$steps" --scheduler dpm-solver++ --solver-order 3
	run "sde-dpm-solver++ 2" "$steps" "$seed" "$steps" --scheduler sde-dpm-solver++ --solver-order 2
	run "unipc 2" "$steps" "$seed" "$steps" --scheduler unipc
	run pndm "$steps" "$seed" $((steps + 1)) --scheduler pndm
	run euler "$steps" "$seed" "$steps" --scheduler euler
	run euler-a "$steps" "$seed" "$steps" --scheduler euler-a
	run ddpm "$steps" "$seed" "$steps" --scheduler ddpm
}

# the cheap grid first, then the references; seed 1 is the demo's
for s in 10 20 50; do
	grid $s 1
done
first=1
for s in $seeds; do
	run ddpm 1000 "$s" 1000 --scheduler ddpm
	if [ $first = 1 ] && [ -n "$seed2" ]; then
		grid 10 "$seed2"
		grid 20 "$seed2"
		first=0
	fi
done

csv=$out.csv
{
	echo "sampler,steps,seed,model_calls,fid,kid_mean,kid_std,wall_s,cpu_s"
	cat "$work"/*.row | sort -t, -k1,1 -k2,2n -k3,3n
} > "$csv.tmp" && mv "$csv.tmp" "$csv" || exit 1

# the table: a row per sampler, FID and KID per step count at seed 1, the 10- and 20-step
# seed-2 scores, the CPU seconds at 20 steps; DDPM-1000 a row per seed
awk -F, -v s2="$seed2" '
NR == 1 { next }
$2 == 1000 { ref[++nr] = $0; next }
{
	if (!($1 in seen)) { seen[$1] = 1; order[++ns] = $1 }
	if ($3 == 1) { f[$1, $2] = $5; k[$1, $2] = $6; if ($2 == 20) c[$1] = $9 }
	else if ($3 == s2) { f2[$1, $2] = $5; k2[$1, $2] = $6 }
}
function cell(x) { return x == "" ? "" : sprintf("%.1f", x) }
function kcell(x) { return x == "" ? "" : sprintf("%.2f", x) }
function pair(a, b) { return a == "" && b == "" ? "" : a " / " b }
END {
	printf "| sampler | FID 10 | FID 20 | FID 50 | KID 10 | KID 20 | KID 50 | FID 10 / 20, seed %s | KID 10 / 20, seed %s | CPU s at 20 |\n", s2, s2
	print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for (i = 1; i <= ns; i++) {
		a = order[i]
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", a,
			cell(f[a, 10]), cell(f[a, 20]), cell(f[a, 50]),
			kcell(k[a, 10]), kcell(k[a, 20]), kcell(k[a, 50]),
			pair(cell(f2[a, 10]), cell(f2[a, 20])),
			pair(((a, 10) in k2) ? kcell(k2[a, 10]) : "", ((a, 20) in k2) ? kcell(k2[a, 20]) : ""), c[a]
	}
	print ""
	print "| DDPM-1000 | seed | FID | KID | CPU s |"
	print "| --- | --- | --- | --- | --- |"
	for (i = 1; i <= nr; i++) {
		split(ref[i], r, ",")
		printf "| | %s | %.1f | %.2f | %s |\n", r[3], r[5], r[6], r[9]
	}
}' "$csv" > "$out.md.tmp" && mv "$out.md.tmp" "$out.md" || exit 1

# the plot: FID at seed 1 against steps, a line per fast scheduler (plot draws at most 10), and
# DDPM-1000's mean over its seeds as a flat line; DDPM at 10-50 steps is in the table only.
# Log scale: the samplers that do not clip x0 saturate on an under-trained UNet, and
# synthetic Inception weights score that in the thousands.
awk -F, '
NR == 1 { next }
$2 == 1000 { sum += $5; nref++; next }
$3 == 1 && $1 != "ddpm" {
	if (!($1 in seen)) { seen[$1] = 1; order[++ns] = $1 }
	f[$1, $2] = $5; st[$2] = 1
}
END {
	printf "steps"
	for (i = 1; i <= ns; i++) printf ",%s", order[i]
	print ",ddpm 1000 (mean)"
	for (s = 10; s <= 50; s += 10) {
		if (!(s in st)) continue
		printf "%d", s
		for (i = 1; i <= ns; i++) printf ",%s", f[order[i], s]
		printf ",%s\n", nref ? sum / nref : ""
	}
}' "$csv" > "$work/plot.csv" || exit 1
cols=$(head -n 1 "$work/plot.csv" | cut -d, -f2-)
plot "$work/plot.csv" --x steps --y "$cols" --width 640 --height 400 --logy \
	--title "FID vs steps, demo UNet, N=$n, synthetic Inception" -o "$out.png" || exit 1
echo "samplers_demo: wrote $csv, $out.md, $out.png"
