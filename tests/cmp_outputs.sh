#!/bin/bash
# The outputs a refactor must not change (issue 15: "every output bit-identical before and
# after"), written by the tools in BIN into OUT. Run it on a build of the commit before the
# change and on the one after, then compare the two folders byte for byte:
#   git worktree add --detach /tmp/base <before> && make -C /tmp/base -j2 all
#   tests/cmp_outputs.sh /tmp/base/bin /tmp/before
#   make -j2 all && tests/cmp_outputs.sh bin /tmp/after
#   diff -r /tmp/before /tmp/after && echo identical
# Covers the UNet on its real shape (F(4x4) Winograd, 128-256 channels) and on the tiny
# fixtures, its training step, the VAE's training, sampling and reconstruction, the Inception
# features and the four metric tools' printed scores. Timing lines are dropped; scores,
# weights, checkpoints and arrays are compared whole. OUT must not exist yet.
set -euo pipefail
BIN=$(cd "${1:?usage: cmp_outputs.sh BIN OUT}" && pwd)
OUT=${2:?usage: cmp_outputs.sh BIN OUT}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FIX=$ROOT/tests/fixtures
[ ! -e "$OUT" ] || { echo "cmp_outputs.sh: $OUT exists" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PATH="$BIN:$PATH"
step() { echo "cmp_outputs: $*" >&2; }

# the google/ddpm-cifar10-32 shape with closed-form weights (as tests/bench/ddpm_sample.sh)
m=$tmp/m
. "$ROOT/tests/bench/lib/cifar_unet.sh"
cifar_unet "$m"
cp "$m/diffusion_pytorch_model.safetensors" "$OUT/full_closed_form.safetensors"

step "ddpm-sample, full shape: DDPM, DDIM at batch 3 and 1"
ddpm-sample --model "$m" -n 3 --steps 3 --seed 11 -o "$OUT/full_ddpm.npy"
ddpm-sample --model "$m" -n 3 --scheduler ddim --steps 2 --seed 12 --batch-size 3 -o "$OUT/full_ddim.npy"
ddpm-sample --model "$m" -n 1 --scheduler ddim --steps 1 --seed 13 -o "$OUT/full_ddim_b1.npy"

step "ddpm-sample, tiny fixtures: every scheduler"
U=$FIX/unet/tiny_st_legacy
for s in ddpm ddim dpm-solver++ sde-dpm-solver++ unipc pndm euler euler-a; do
    ddpm-sample --model "$U" -n 4 --scheduler "$s" --steps 5 --seed 3 -o "$OUT/tiny_$s.npy"
done

step "ddpm-train: 3 steps on the full shape, 4 on the small fixture, with a checkpoint"
G=$FIX/unet_grad
ddpm-train --data "$FIX/vae/train.npy" --init "$m" -o "$tmp/tf" --train-batch-size 4 --max-steps 3 \
    --lr-warmup-steps 1 --seed 5 -q --checkpointing-steps 2
cp "$tmp/tf/diffusion_pytorch_model.safetensors" "$OUT/train_full.safetensors"
ddpm-train --data "$G/train16.npy" --init "$G/small" -o "$tmp/ts" --train-batch-size 4 \
    --max-steps 4 --lr-warmup-steps 2 --seed 5 -q --checkpointing-steps 2 --log "$tmp/log.csv"
cp "$tmp/ts/diffusion_pytorch_model.safetensors" "$OUT/train_small.safetensors"
for c in "$tmp"/ts/checkpoint-*; do
    for f in "$c"/*; do [ -f "$f" ] && cp "$f" "$OUT/train_small_$(basename "$c")_$(basename "$f")"; done
done
# step, epoch, loss, lr, grad_norm (not the seconds)
cut -d, -f1-5 "$tmp/log.csv" > "$OUT/train_small_log.csv"

step "vae-train, vae-sample, vae-recon"
V=$FIX/vae
vae-train --data "$V/train.npy" --batch-size 16 --latent 16 --seed 3 -q --epochs 2 \
    -o "$OUT/vae.safetensors"
vae-sample --model "$OUT/vae.safetensors" -n 7 --seed 1 -o "$OUT/vae_sample.npy"
vae-recon --model "$OUT/vae.safetensors" --data "$V/val.npy" --sample -o "$OUT/vae_recon.npy"

step "fid --save-features, fid, kid, is-score on synthetic Inception weights"
fid --weights synthetic --save-features "$OUT/vae_sample.npy" "$OUT/features.npy"
fid --weights synthetic "$OUT/vae_sample.npy" "$OUT/full_ddpm.npy" > "$OUT/fid.txt"
kid --subset-size 5 --subsets 4 "$FIX/metrics/kid_a.npy" "$FIX/metrics/kid_b.npy" > "$OUT/kid.txt"
is-score --weights synthetic --splits 3 "$OUT/vae_sample.npy" > "$OUT/is.txt"
# training states record their wall time: blank it (the files are only compared, not loaded)
for f in "$OUT"/*state*.safetensors; do
    LC_ALL=C sed -i -E 's/"seconds":"[0-9.e+-]*"/"seconds":"-"/' "$f"
done
step "done: $(ls "$OUT" | wc -l) files in $OUT"
