# Outputs do not depend on --batch-size or --threads, under every OpenBLAS kernel this CPU runs
# (issue 13: OpenBLAS's Haswell SGEMM sums a column by its place in the call). Each case runs
# once per kernel with OPENBLAS_CORETYPE set for that command only, and checks with -v that
# the tool ran the kernel asked for (the tools keep a kernel the user chose).
load helpers

setup() {
    setup_tools
    T=$BATS_TEST_TMPDIR
    U="$FIX/unet/tiny_st_legacy"
    V="$FIX/vae/init.safetensors"
}

# runs "$@" with OPENBLAS_CORETYPE=$k, stdout to $out; fails unless -v names kernel $k
under() {
    local k=$1 out=$2
    shift 2
    OPENBLAS_CORETYPE=$k "$@" -v > "$out" 2> "$T/err" || { cat "$T/err"; return 1; }
    grep -q "^nn: OpenBLAS kernel $k[:,]" "$T/err" || { echo "[$k] $(grep '^nn:' "$T/err")"; return 1; }
}

@test "blas_kernels lists the kernels of this CPU, the generic one first" {
    run -0 blas_kernels
    [ "${lines[0]}" = Prescott ]
}

@test "ddpm-sample: the same bytes for any --batch-size and --threads, under each kernel" {
    for k in $(blas_kernels); do
        a=(ddpm-sample --model "$U" -n 5 --steps 6 --seed 7)
        under $k "$T/$k-a.npy" "${a[@]}" --batch-size 5 --threads 2
        under $k "$T/$k-b.npy" "${a[@]}" --batch-size 2 --threads 1
        under $k "$T/$k-c.npy" "${a[@]}" --batch-size 1 --threads 2
        cmp "$T/$k-a.npy" "$T/$k-b.npy" || { echo "[$k] batch 2, 1 thread differs"; return 1; }
        cmp "$T/$k-a.npy" "$T/$k-c.npy" || { echo "[$k] batch 1 differs"; return 1; }
        # ddim: another path through the same UNet
        a=(ddpm-sample --model "$U" -n 3 --scheduler ddim --steps 4 --seed 2)
        under $k "$T/$k-d.npy" "${a[@]}" --batch-size 3
        under $k "$T/$k-e.npy" "${a[@]}" --batch-size 1 --threads 1
        cmp "$T/$k-d.npy" "$T/$k-e.npy" || { echo "[$k] ddim batch 1 differs"; return 1; }
    done
}

@test "ddpm-sample: the UNet forward calls no OpenBLAS, so the same bytes under every kernel" {
    # every GEMM of the forward is nn_sgemm_chain's (unet_chain.c, nn_wino4.c): one fmaf chain
    # an output, whatever kernel OpenBLAS would have chosen
    a=(ddpm-sample --model "$U" -n 3 --scheduler ddim --steps 3 --seed 5 --batch-size 2)
    first=
    for k in $(blas_kernels); do
        under $k "$T/$k-x.npy" "${a[@]}" --save-trajectory "$T/$k-t.npy"
        [ -n "$first" ] || first=$k
        cmp "$T/$first-t.npy" "$T/$k-t.npy" || { echo "[$k] differs from [$first]"; return 1; }
    done
}

@test "vae-sample and vae-recon: the same bytes for any --batch-size and --threads, under each kernel" {
    vae-sample --model "$V" -n 19 --seed 4 -o "$T/data.npy"
    for k in $(blas_kernels); do
        under $k "$T/$k-a.npy" vae-sample --model "$V" -n 19 --seed 1 --batch-size 19
        under $k "$T/$k-b.npy" vae-sample --model "$V" -n 19 --seed 1 --batch-size 3 --threads 1
        under $k "$T/$k-c.npy" vae-sample --model "$V" -n 19 --seed 1 --batch-size 1
        cmp "$T/$k-a.npy" "$T/$k-b.npy" || { echo "[$k] vae-sample batch 3 differs"; return 1; }
        cmp "$T/$k-a.npy" "$T/$k-c.npy" || { echo "[$k] vae-sample batch 1 differs"; return 1; }
        under $k "$T/$k-r.npy" vae-recon --model "$V" --data "$T/data.npy" --sample
        under $k "$T/$k-s.npy" vae-recon --model "$V" --data "$T/data.npy" --sample -b 4 -t 1
        cmp "$T/$k-r.npy" "$T/$k-s.npy" || { echo "[$k] vae-recon batch 4 differs"; return 1; }
    done
}

@test "fid, kid, is-score: Inception features and scores do not depend on the batch or threads, under each kernel" {
    # 9 images: more than one group of 8 Inception slots
    vae-sample --model "$V" -n 9 --seed 5 -o "$T/img.npy"
    for k in $(blas_kernels); do
        f=(fid --weights synthetic --save-features "$T/img.npy")
        under $k /dev/null "${f[@]}" "$T/$k-a.npy" --batch-size 9 --threads 2
        under $k /dev/null "${f[@]}" "$T/$k-b.npy" --batch-size 2 --threads 1
        under $k /dev/null "${f[@]}" "$T/$k-c.npy" --batch-size 1 --threads 2
        cmp "$T/$k-a.npy" "$T/$k-b.npy" || { echo "[$k] features, batch 2 differ"; return 1; }
        cmp "$T/$k-a.npy" "$T/$k-c.npy" || { echo "[$k] features, batch 1 differ"; return 1; }
        # KID's Gram sums from features, 1 and 2 threads
        K=(kid --subset-size 5 --subsets 4 "$FIX/metrics/kid_a.npy" "$FIX/metrics/kid_b.npy")
        under $k "$T/$k-k1" "${K[@]}" --threads 1
        under $k "$T/$k-k2" "${K[@]}" --threads 2
        cmp "$T/$k-k1" "$T/$k-k2" || { echo "[$k] kid, 1 vs 2 threads"; return 1; }
        # IS through the logits layer
        I=(is-score --weights synthetic --splits 3 "$T/img.npy")
        under $k "$T/$k-i1" "${I[@]}" --batch-size 9 --threads 2
        under $k "$T/$k-i2" "${I[@]}" --batch-size 2 --threads 1
        cmp "$T/$k-i1" "$T/$k-i2" || { echo "[$k] is-score, batch 2 on 1 thread"; return 1; }
    done
}

@test "score: FID, KID and IS equal what fid, kid and is-score print, under each kernel" {
    vae-sample --model "$V" -n 9 --seed 5 -o "$T/g.npy"
    vae-sample --model "$V" -n 7 --seed 6 -o "$T/r.npy"
    for k in $(blas_kernels); do
        under $k "$T/$k-s" score --json --weights synthetic --fid --kid --is --is-splits 3 \
            --kid-subset-size 5 --kid-subsets 4 "$T/g.npy" "$T/r.npy"
        under $k "$T/$k-f" fid --json --weights synthetic --resize torch-fidelity "$T/g.npy" "$T/r.npy"
        under $k "$T/$k-k" kid --json --weights synthetic --subset-size 5 --subsets 4 "$T/g.npy" "$T/r.npy"
        under $k "$T/$k-i" is-score --json --weights synthetic --splits 3 "$T/g.npy"
        local key line
        for key in frechet_inception_distance kernel_inception_distance_mean inception_score_mean \
            inception_score_std; do
            line=$(grep -h "\"$key\"" "$T/$k-f" "$T/$k-k" "$T/$k-i" | sed 's/,$//')
            [ -n "$line" ] || { echo "[$k] no $key from the single tools"; return 1; }
            grep -qF "$line" "$T/$k-s" || { echo "[$k] score's $key differs: $line vs $(grep "\"$key\"" "$T/$k-s")"; return 1; }
        done
    done
}

@test "-v says which OpenBLAS kernel runs and whether the user chose it" {
    for t in "vae-sample --model $V -n 1" "vae-recon --model $V --data $FIX/inception/img32.npy"; do
        OPENBLAS_CORETYPE=Prescott run -0 --separate-stderr $t -v -o /dev/null
        [[ "$stderr" == *"nn: OpenBLAS kernel Prescott: OPENBLAS_CORETYPE=Prescott set by the user, not overridden"* ]]
        [ "$(grep -c '^nn: OpenBLAS kernel' <<< "$stderr")" -eq 1 ]
    done
    run -0 --separate-stderr env -u OPENBLAS_CORETYPE vae-sample --model "$V" -n 1 -v -o /dev/null
    [[ "$stderr" == *"nn: OpenBLAS kernel "*", OpenBLAS's own choice"* ||
       "$stderr" == *"nn: OpenBLAS kernel "*", set by this tool (OpenBLAS picked "* ]]
    run -0 --separate-stderr vae-sample --model "$V" -n 1 -o /dev/null
    [ -z "$stderr" ]
}

@test "ddpm-sample and ddpm-train see -v in a cluster of short options, not in an option's value" {
    # they read -v before their option parse (for the kernel line under mpirun), the same way
    OPENBLAS_CORETYPE=Prescott run -0 --separate-stderr ddpm-sample --model "$U" -vn 1 --steps 1 -o /dev/null
    [ "$(grep -c '^nn: OpenBLAS kernel Prescott' <<< "$stderr")" -eq 1 ]
    cd "$T"
    OPENBLAS_CORETYPE=Prescott run -0 --separate-stderr ddpm-sample --model "$U" -n 1 --steps 1 -o -v
    [ -s ./-v ]
    [ "$(grep -c '^nn: OpenBLAS kernel' <<< "$stderr")" -eq 0 ]
    OPENBLAS_CORETYPE=Prescott run -0 --separate-stderr ddpm-train -vh
    [[ "$output" == usage:* ]]
    [ "$(grep -c '^nn: OpenBLAS kernel Prescott' <<< "$stderr")" -eq 1 ]
    OPENBLAS_CORETYPE=Prescott run -0 --separate-stderr ddpm-train --verb -h
    [ "$(grep -c '^nn: OpenBLAS kernel Prescott' <<< "$stderr")" -eq 1 ]
}

@test "ddpm-train: UNet training calls no OpenBLAS, so the same checkpoint under every kernel" {
    # every GEMM of the forward and the backward is nn_sgemm_chain's (nn_wino4_grad.c,
    # unet_chain.c); the tiny config has every kind of layer: conv_in, Winograd convs,
    # 1x1 shortcuts, stride-2 downsamplers, attention, the time embedding
    G="$FIX/unet_grad"
    a=(ddpm-train --data "$G/train16.npy" --init "$G/tiny" --train-batch-size 4 --max-steps 3
       --lr-warmup-steps 2 --seed 5 --use-ema --random-flip)
    first=
    for k in $(blas_kernels); do
        under $k /dev/null "${a[@]}" -o "$T/$k"
        [ -n "$first" ] || first=$k
        cmp "$T/$first/diffusion_pytorch_model.safetensors" "$T/$k/diffusion_pytorch_model.safetensors" ||
            { echo "[$k] differs from [$first]"; return 1; }
    done
}
