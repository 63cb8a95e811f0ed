load helpers
setup() {
    setup_tools
    V="$FIX/vae"
    D="$BATS_TEST_TMPDIR/w"    # bats keeps its own files in $BATS_TEST_TMPDIR
    mkdir -p "$D"
    M="$V/init.safetensors"    # written by PyTorch (gen_vae.py), latent 16
}

# the .npy shape of $1 as '5,32,32,3', from its header
shape() { head -c 128 "$1" | tr -d '\0' | grep -ao "'shape': ([0-9, ]*)" | sed "s/'shape': (//; s/[ )]//g; s/,$//"; }
# image $2 (0-based) of a uint8 (N,32,32,3) .npy with a 128-byte header
image() { tail -c +$((129 + $2 * 3072)) "$1" | head -c 3072; }

@test "vae-recon --help names every option, its defaults and an example" {
    help_names_options vae-recon tools/vae-recon.c
}

@test "vae-recon names a missing option and the flag of a bad value" {
    run -2 --separate-stderr vae-recon --model "$M"
    [ "${stderr%%$'\n'*}" = "vae-recon: --data X.npy is required" ]
    run -2 --separate-stderr vae-recon --model "$M" --data "$V/val.npy" -b 0
    [ "${stderr%%$'\n'*}" = "vae-recon: --batch-size: bad value: 0 (want an integer from 1 to 65536)" ]
}

@test "vae-recon --help prints usage on stdout" {
    run -0 --separate-stderr vae-recon --help
    [[ "$output" == "usage: vae-recon "* ]]
    [ -z "$stderr" ]
}

@test "vae-recon without --model or --data is a usage error" {
    run -2 --separate-stderr vae-recon --model "$M"
    [ -z "$output" ]
    [[ "$stderr" == *"usage: vae-recon "* ]]
    run -2 --separate-stderr vae-recon --data "$V/val.npy"
}

@test "vae-recon writes one reconstruction per image, deterministic without --sample" {
    vae-recon --model "$M" --data "$V/val.npy" -o "$D/a.npy"
    [ "$(shape "$D/a.npy")" = "8,32,32,3" ]
    vae-recon --model "$M" --data "$V/val.npy" --batch-size 3 > "$D/b.npy"
    cmp "$D/a.npy" "$D/b.npy"
    vae-recon --model "$M" --data - < "$V/val.npy" > "$D/c.npy"
    cmp "$D/a.npy" "$D/c.npy"
    run -1 cmp -s "$D/a.npy" "$V/val.npy"
}

@test "vae-recon --sample draws z from the seed" {
    vae-recon --model "$M" --data "$V/val.npy" -o "$D/mean.npy"
    vae-recon --model "$M" --data "$V/val.npy" --sample --seed 1 -o "$D/s1.npy"
    vae-recon --model "$M" --data "$V/val.npy" --sample --seed 1 -o "$D/s1b.npy"
    vae-recon --model "$M" --data "$V/val.npy" --sample --seed 2 -o "$D/s2.npy"
    cmp "$D/s1.npy" "$D/s1b.npy"
    run -1 cmp -s "$D/s1.npy" "$D/s2.npy"
    run -1 cmp -s "$D/s1.npy" "$D/mean.npy"
}

@test "vae-recon --pairs interleaves each original with its reconstruction" {
    vae-recon --model "$M" --data "$V/val.npy" -o "$D/r.npy"
    vae-recon --model "$M" --data "$V/val.npy" --pairs -o "$D/p.npy"
    [ "$(shape "$D/p.npy")" = "16,32,32,3" ]
    for i in 0 3 7; do
        cmp <(image "$D/p.npy" $((2 * i))) <(image "$V/val.npy" $i)
        cmp <(image "$D/p.npy" $((2 * i + 1))) <(image "$D/r.npy" $i)
    done
}

@test "vae-recon --pairs | imgrid - draws originals next to reconstructions" {
    run -0 bash -c "vae-recon --pairs --model '$M' --data '$V/val.npy' | imgrid -c 4 -o '$D/g.png' -"
    [ "$(head -c 8 "$D/g.png" | od -An -tx1 | tr -d ' ')" = "89504e470d0a1a0a" ]
}

@test "vae-recon rejects bad images and bad checkpoints, leaving no file" {
    for f in vae_16px vae_float vae_empty; do
        run -1 --separate-stderr vae-recon --model "$M" --data "$FIX/bad/$f.npy" -o "$D/r.npy"
        [ -z "$output" ]
        [[ "$stderr" == "vae-recon: $FIX/bad/$f.npy: "* ]]
        [ "$(echo "$stderr" | wc -l)" -eq 1 ]
    done
    for f in vae_trunc vae_unet vae_missing; do
        run -1 --separate-stderr vae-recon --model "$FIX/bad/$f.safetensors" --data "$V/val.npy" -o "$D/r.npy"
        [ -z "$output" ]
        [[ "$stderr" == "vae-recon: $FIX/bad/$f.safetensors: "* ]]
    done
    [ -z "$(ls "$D")" ]
}

@test "vae-recon checks -o before the work" {
    mkdir "$D/dir"
    run -1 --separate-stderr vae-recon --model "$M" --data "$V/val.npy" -o "$D/dir"
    [ "$stderr" = "vae-recon: $D/dir: is a directory" ]
}
