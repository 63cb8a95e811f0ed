#!/usr/bin/env bats
# The demo pipeline end to end (what `make demo` runs, minus the build): built-in data, a VAE,
# a tiny DDPM from scratch with a learning-rate search, DDIM, DDPM and PLMS sampling,
# FID/IS/KID and precision/recall with synthetic Inception weights, grid, loss plot and
# report. A few minutes on 2 cores. Runs in a scratch directory, so data/ and results/ of the
# checkout are untouched.
load helpers

setup() {
    setup_tools
    for t in pipe mkdemo imgresize dsplit npyinfo vae-train vae-sample imgrid plot fid \
        is-score kid score report ddpm-train ddpm-sample pick-best; do
        command -v "$t" > /dev/null || skip "tool $t not built yet"
    done
    cd "$BATS_TEST_TMPDIR"
}

# "WIDTHxHEIGHT" of a PNG, after checking the signature
png_size() {
    local -a v
    read -r -a v <<< "$(od -A n -t u1 -N 24 "$1" | tr -s ' \n' ' ')"
    [ "${v[*]:0:8}" = "137 80 78 71 13 10 26 10" ] || { echo "not a png"; return; }
    echo "$(( (v[18] << 8) | v[19] ))x$(( (v[22] << 8) | v[23] ))"
}

# Statistics of a uint8 (N,H,W,3) .npy that need no Inception weights, on one line: the
# high-frequency energy (mean |difference| of horizontally adjacent values of a channel,
# 0..255), then each channel's mean, then each channel's standard deviation. Noise a
# deterministic sampler failed to remove raises the first; saturated samples (pixels at 0
# or 255) raise the deviations.
img_stats() {
    local w lo hi
    w=$(npy_shape "$1" | cut -d, -f3)
    read -r lo hi <<< "$(od -A n -t u1 -j 8 -N 2 "$1")" # .npy 1.0: header length, LE
    od -A n -v -t u1 -w$((w * 3)) -j $((10 + lo + 256 * hi)) "$1" |
        awk '{ for (i = 1; i <= NF; i++) {
                   c = (i - 1) % 3; s[c] += $i; q[c] += $i * $i; m[c]++
                   if (i > 3) { d = $i - $(i - 3); h += d < 0 ? -d : d; n++ } } }
             END { printf "%.2f", h / n
                   for (c = 0; c < 3; c++) printf " %.1f", s[c] / m[c]
                   for (c = 0; c < 3; c++) printf " %.1f", sqrt(q[c] / m[c] - (s[c] / m[c]) ^ 2)
                   printf "\n" }'
}

# like_real GEN REAL: GEN's img_stats near REAL's, and if not, which one is off: the
# high-frequency energy within a factor 3, each channel's mean within 80 (the tiny UNet
# does not learn the colour balance well: runs measured put the blue mean at 86..128 against
# the real 63, so this catches only a collapse to black, white or one colour), its deviation
# at most 2.5 times the real one (saturation: images of only 0 and 255 have about 127, 2.9
# times the real green and blue ones) and at least a third (DDIM's clipped samples are
# low in contrast: 19..34 against 40..50). The bound was twice until 2026-12-07, right
# inside PLMS's spread on the 6e-3 run, which the search picks on some builds: its deviations
# were 87.6 68.8 74.8 on 27518c3 and 85.2 89.7 79.4 after the training's GEMMs moved to the
# chain kernel (real 49.9 43.3 39.9; the 3e-3 run 73.1 73.0 72.2 and 74.2 73.1 63.6; 900 steps
# of 8, seed 1, 100 samples); the hf check, within 3x, is what catches noise. Issue 20's demo (200 steps of 16 at 1e-3) fails
# the first with DDIM (23.9 against 6.6), PLMS the first and the last (114; deviations 119);
# today's demo passes (900 steps of 8, DDIM with the clipped model output: DDIM 10.8..11.1,
# DDPM 6.4..6.5, PLMS 15.5..16.0, both OpenBLAS kernels).
like_real() {
    local g r
    g=$(img_stats "$1") r=$(img_stats "$2")
    echo "$1: $g (real: $r)"
    awk -v g="$g" -v r="$r" 'BEGIN {
        split(g, a, " "); split(r, b, " "); bad = 0
        if (a[1] > 3 * b[1] || a[1] < b[1] / 3) { print "high-frequency energy off"; bad = 1 }
        for (c = 2; c <= 4; c++) if (a[c] - b[c] > 80 || b[c] - a[c] > 80) { print "channel mean off"; bad = 1 }
        for (c = 5; c <= 7; c++) if (a[c] > 2.5 * b[c] || a[c] < b[c] / 3) { print "channel std off"; bad = 1 }
        exit bad }'
}

@test "the demo pipeline runs end to end, then has nothing left to do" {
    # the pipeline's paths are relative to where it runs; its UNet config is in the repo
    P=(-P "unet_config=$REPO/pipelines/demo-unet.json")
    run -0 --separate-stderr pipe run -q "$REPO/pipelines/demo.yaml" "${P[@]}"
    [ -z "$output" ]
    r=results/demo
    [ "$(npy_shape data/demo/demo-32-train.npy)" = "490,32,32,3" ]
    [ "$(npy_shape $r/vae.npy)" = "100,32,32,3" ]
    [ "$(png_size $r/vae-loss.png)" = "640x400" ]
    [ "$(png_size $r/vae.png)" != "not a png" ]
    [ "$(head -1 $r/report.md)" = "# Demo: procedural flowers, 32x32" ]
    # a row with a number in every column: FID, FD-DINOv2 (synthetic DINOv2 weights, 16
    # images a side), IS ± std, KID ± std, precision, recall, N,
    # seconds
    grep -Eq '^\| VAE \(10 epochs\) \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ ± [0-9.]+ \| -?[0-9.]+ ± [0-9.]+ \| [01]\.[0-9]{3} \| [01]\.[0-9]{3} \| 100 \| [0-9.]+ \|$' $r/report.md
    grep -Fq '![VAE (10 epochs) samples](vae.png)' $r/report.md
    grep -Fq '![VAE training loss](vae-loss.png)' $r/report.md
    # the tiny DDPM: the learning-rate search kept one run, sampled three ways
    grep -Eq '^picked results/demo/ddpm-lr(3e-3|6e-3) \(lowest fid\)$' $r/ddpm/picked.txt
    [ "$(npy_shape $r/ddim.npy)" = "100,32,32,3" ]
    [ "$(npy_shape $r/ddpm.npy)" = "100,32,32,3" ]
    [ "$(npy_shape $r/pndm.npy)" = "100,32,32,3" ]
    grep -Eq '^\| tiny DDPM, DDIM 50 steps \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ ± [0-9.]+ \| -?[0-9.]+ ± [0-9.]+ \| [01]\.[0-9]{3} \| [01]\.[0-9]{3} \| 100 \| [0-9.]+ \|$' $r/report.md
    grep -Eq '^\| tiny DDPM, DDPM 50 steps \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ ± [0-9.]+ \| -?[0-9.]+ ± [0-9.]+ \| [01]\.[0-9]{3} \| [01]\.[0-9]{3} \| 100 \| [0-9.]+ \|$' $r/report.md
    grep -Eq '^\| tiny DDPM, PLMS \(pndm\) 20 steps \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ ± [0-9.]+ \| -?[0-9.]+ ± [0-9.]+ \| [01]\.[0-9]{3} \| [01]\.[0-9]{3} \| 100 \| [0-9.]+ \|$' $r/report.md
    grep -Fq '![tiny DDPM, PLMS (pndm) 20 steps samples](pndm.png)' $r/report.md
    grep -Fq '![DDPM training loss](ddpm-loss.png)' $r/report.md
    # the samples look like pictures, not noise, without Inception weights (issue 20), with
    # every sampler the report shows. PLMS (no x0 clipping) is the closest: at 900 steps of 8,
    # 2 threads, hf 15.5..16.0 and deviations 63..73 (600 steps: hf 22..30, failing)
    like_real $r/ddim.npy $r/real-100.npy
    like_real $r/ddpm.npy $r/real-100.npy
    like_real $r/pndm.npy $r/real-100.npy
    # FD-DINOv2 from the DINOv2 features of the first 16 images of each side
    [ "$(npy_shape $r/real-100-dinov2.npy)" = "16,1024" ]
    [ "$(npy_shape $r/pndm-dinov2.npy)" = "16,1024" ]
    grep -q "\"fd_dinov2\": [0-9]" $r/vae-fdd.json
    run -0 --separate-stderr pipe run "$REPO/pipelines/demo.yaml" "${P[@]}"
    [ "$stderr" = "pipe: $REPO/pipelines/demo.yaml: everything is up to date" ]
    run -0 pipe status "$REPO/pipelines/demo.yaml" "${P[@]}" -P vae_epochs=11
    [ "${lines[0]}" = "vae-train: param vae_epochs changed" ]
}

@test "demo.yaml's header names every tool its stages run" {
    y="$REPO/pipelines/demo.yaml"
    header=$(sed -n '/^params:/q; p' "$y")
    [[ "$header" != *"Not here yet"* ]]
    for t in $(grep -v '^ *#' "$y" | grep -oE '(^|[ :"])(mkdemo|imgresize|dsplit|vae-train|vae-sample|ddpm-train|ddpm-sample|pick-best|imgrid|plot|fid|is-score|kid|score|report|pipe time)( |$)' |
               sed -E 's/^[ :"]//; s/ $//' | sort -u); do
        [[ "$header" == *"$t"* ]] || { echo "the header does not name $t"; return 1; }
    done
}
