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

@test "vae-sample --help names every option, its defaults and an example" {
    help_names_options vae-sample tools/vae-sample.c
}

@test "vae-sample names a missing option and the flag of a bad value" {
    run -2 --separate-stderr vae-sample -n 4
    [ "${stderr%%$'\n'*}" = "vae-sample: --model VAE.safetensors is required" ]
    run -2 --separate-stderr vae-sample --model "$M" -b 0
    [ "${stderr%%$'\n'*}" = "vae-sample: --batch-size: bad value: 0 (want an integer from 1 to 65536)" ]
}

@test "vae-sample --help prints usage on stdout" {
    run -0 --separate-stderr vae-sample --help
    [[ "$output" == "usage: vae-sample "* ]]
    [ -z "$stderr" ]
}

@test "vae-sample without --model is a usage error" {
    run -2 --separate-stderr vae-sample -n 4
    [ -z "$output" ]
    [[ "$stderr" == *"usage: vae-sample "* ]]
    run -2 --separate-stderr vae-sample --model "$M" -n 0
    run -2 --separate-stderr vae-sample --model "$M" extra
}

@test "vae-sample writes uint8 (N,32,32,3) to stdout, the same as -o" {
    vae-sample --model "$M" -n 5 --seed 1 > "$D/a.npy"
    [ "$(shape "$D/a.npy")" = "5,32,32,3" ]
    head -c 64 "$D/a.npy" | grep -aq "'descr': '|u1'"
    [ "$(stat -c %s "$D/a.npy")" -eq $((128 + 5 * 3072)) ]
    run -0 --separate-stderr vae-sample --model "$M" -n 5 --seed 1 -o "$D/b.npy"
    [ -z "$output" ]
    [ -z "$stderr" ]
    cmp "$D/a.npy" "$D/b.npy"
}

@test "vae-sample: the seed fixes the samples, the batch size does not change them" {
    vae-sample --model "$M" -n 7 --seed 1 -o "$D/a.npy"
    vae-sample --model "$M" -n 7 --seed 1 --batch-size 3 --threads 1 -o "$D/b.npy"
    cmp "$D/a.npy" "$D/b.npy"
    vae-sample --model "$M" -n 7 --seed 2 -o "$D/c.npy"
    run -1 cmp -s "$D/a.npy" "$D/c.npy"
}

@test "vae-sample works in a pipe" {
    run -0 bash -c "vae-sample --model '$M' -n 3 | wc -c"
    [ "$output" -eq $((128 + 3 * 3072)) ]
}

@test "vae-sample rejects unreadable checkpoints and other models, leaving no file" {
    for f in vae_trunc vae_unet vae_missing; do
        run -1 --separate-stderr vae-sample --model "$FIX/bad/$f.safetensors" -n 2 -o "$D/s.npy"
        [ -z "$output" ]
        [[ "$stderr" == "vae-sample: $FIX/bad/$f.safetensors: "* ]]
        [ "$(echo "$stderr" | wc -l)" -eq 1 ]
    done
    [[ "$stderr" == *'"dec.6.bias"'* ]]
    run -1 --separate-stderr vae-sample --model "$FIX/bad/vae_unet.safetensors" -n 2
    [[ "$stderr" == *"not a VAE checkpoint"* ]]
    [ -z "$output" ]
    run -1 --separate-stderr vae-sample --model "$D/none.safetensors" -n 2 -o "$D/s.npy"
    [ -z "$(ls "$D")" ]
}

@test "vae-sample checks -o before the work" {
    mkdir "$D/dir"
    run -1 --separate-stderr vae-sample --model "$M" -n 2 -o "$D/dir"
    [ "$stderr" = "vae-sample: $D/dir: is a directory" ]
    run -1 --separate-stderr vae-sample --model "$D/missing" -n 2 -o /proc/x.npy
    [[ "$stderr" == "vae-sample: /proc/x.npy: cannot create a file in /proc: "* ]]
}

@test "vae-sample names the path it could not write, once" {
    run -1 --separate-stderr vae-sample --model "$M" -n 2 -o "$D/no/such/s.npy"
    [ "$stderr" = "vae-sample: $D/no/such/s.npy: cannot create a file in $D/no/such: No such file or directory" ]
    mkdir "$D/s.npy"
    run -1 --separate-stderr vae-sample --model "$M" -n 2 -o "$D/s.npy"
    [ "$stderr" = "vae-sample: $D/s.npy: is a directory" ]
    [ "$(ls "$D")" = "s.npy" ]
}

@test "vae-sample given a PyTorch .pth says to convert it with ckpt-convert" {
    for f in pth_zip.pth pth_legacy.pth; do
        run -1 --separate-stderr vae-sample --model "$FIX/ckpt/$f" -n 2 -o "$D/s.npy"
        [ "$stderr" = "vae-sample: $FIX/ckpt/$f: a PyTorch checkpoint, not safetensors: convert it with ckpt-convert IN OUT.safetensors" ]
    done
    [ ! -e "$D/s.npy" ]
}

@test "vae-sample --shard I/N: the shards joined are the bytes of one run" {
  vae-sample --model "$M" -n 11 -b 4 -o "$D/full.npy"
  for i in 0 1 2 3; do vae-sample --model "$M" -n 11 -b 2 --shard $i/4 -o "$D/s$i.npy"; done
  [ "$(shape "$D/s0.npy")" = "3,32,32,3" ]
  [ "$(shape "$D/s3.npy")" = "2,32,32,3" ]
  npycat "$D/s0.npy" "$D/s1.npy" "$D/s2.npy" "$D/s3.npy" | cmp - "$D/full.npy"
  run -2 --separate-stderr vae-sample --model "$M" --shard 2/2
  [ "${stderr%%$'\n'*}" = "vae-sample: --shard: bad value: 2/2 (want I/N with 0 <= I < N <= 65536)" ]
  run -1 --separate-stderr vae-sample --model "$M" -n 2 --shard 0/3 -o "$D/o.npy"
  [ "$stderr" = "vae-sample: --shard 0/3: more shards than the 2 images" ]
}
