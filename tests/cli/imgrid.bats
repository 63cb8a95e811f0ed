load helpers
setup() { setup_tools; IMG="$FIX/img"; }

payload() {
    local n
    n=$(od -An -tu2 -j8 -N2 --endian=little "$1" | tr -d ' ')
    tail -c +$((10 + n + 1)) "$1"
}
# width and height from a PNG's IHDR
png_size() { echo "$(od -An -tu1 -j16 -N8 "$1" | awk '{ print $3*256+$4 "x" $7*256+$8 }')"; }

@test "imgrid --help prints usage on stdout" {
    run -0 --separate-stderr imgrid --help
    [[ "$output" == "usage: imgrid "* ]]
    [ -z "$stderr" ]
}

@test "imgrid --help names every option, its defaults and an example" {
    help_names_options imgrid tools/imgrid.c
    [[ "$output" == *"--scale SCALE"* ]]
}

@test "imgrid --scale; -s stays an old spelling of it" {
    T=$BATS_TEST_TMPDIR
    imgrid --scale 2 -o "$T/a.png" "$IMG/dir_32.npy"
    imgrid -s 2 -o "$T/b.png" "$IMG/dir_32.npy"
    cmp "$T/a.png" "$T/b.png"
}

@test "imgrid rejects bad usage with exit 2" {
    run -2 --separate-stderr imgrid -c 0 "$IMG/dir_32.npy"
    [ -z "$output" ]
    [[ "$stderr" == "imgrid: --cols: bad value: 0 (want an integer from 1 to 100000)"* ]]
    run -2 --separate-stderr imgrid --scale x "$IMG/dir_32.npy"
    run -2 --separate-stderr imgrid --pad-value 256 "$IMG/dir_32.npy"
    run -2 --separate-stderr imgrid "$IMG/dir_32.npy" "$IMG/dir_32.npy"
    [[ "$stderr" == *"usage: imgrid "* ]]
}

@test "imgrid lays out images like make_grid (pad 2 around every cell)" {
    T=$BATS_TEST_TMPDIR
    run -0 imgrid -o "$T/g.png" "$IMG/dir_32.npy"
    [ "$(png_size "$T/g.png")" = "70x70" ]
    imgrid -c 4 -p 0 -s 2 "$IMG/dir_32.npy" > "$T/g2.png"
    [ "$(png_size "$T/g2.png")" = "256x64" ]
    imgrid -c 3 -p 1 -n 4 "$IMG/flowers/trn_16.npy" > "$T/g3.png"
    [ "$(png_size "$T/g3.png")" = "52x35" ]
}

@test "imgrid pixels are the batch's pixels (read back with imgresize)" {
    T=$BATS_TEST_TMPDIR
    imgrid -c 1 -p 0 -n 1 "$IMG/dir_32.npy" > "$T/one.png"
    imgresize -s 32 "$T/one.png" > "$T/back.npy"
    cmp <(payload "$T/back.npy") <(payload "$IMG/dir_32.npy" | head -c 3072)
    # --scale 2: pixel (x, y) of the big grid is pixel (x/2, y/2) of the small one
    imgrid -c 4 -p 0 -s 2 "$IMG/dir_32.npy" > "$T/s2.png"
    imgresize -s 256x64 "$T/s2.png" > "$T/s2.npy"
    imgrid -c 4 -p 0 "$IMG/dir_32.npy" > "$T/s1.png"
    imgresize -s 128x32 "$T/s1.png" > "$T/s1.npy"
    run -0 awk 'NR == FNR { small[NR - 1] = $0; next }
        { i = FNR - 1; x = i % 256; y = int(i / 256)
          if ($0 != small[int(y / 2) * 128 + int(x / 2)]) bad++ }
        END { print FNR, bad + 0 }' \
        <(payload "$T/s1.npy" | od -An -v -tu1 -w3) <(payload "$T/s2.npy" | od -An -v -tu1 -w3)
    [ "$output" = "16384 0" ]
}

@test "imgrid reads stdin and writes stdout" {
    run -0 bash -c "imgrid < '$IMG/dir_32.npy' > '$BATS_TEST_TMPDIR/g.png'"
    [ "$(png_size "$BATS_TEST_TMPDIR/g.png")" = "70x70" ]
}

@test "imgrid rejects non-image arrays and non-npy input, leaving no file" {
    T=$BATS_TEST_TMPDIR/out
    mkdir "$T"
    run -1 --separate-stderr imgrid -o "$T/g.png" "$IMG/flowers/trn_labels.npy"
    [ -z "$output" ]
    [[ "$stderr" == "imgrid: $IMG/flowers/trn_labels.npy: expected uint8 images"* ]]
    run -1 --separate-stderr imgrid -o "$T/g.png" "$IMG/dir/a.jpg"
    [[ "$stderr" == "imgrid: $IMG/dir/a.jpg: "* ]]
    run -1 --separate-stderr imgrid -o "$T/g.png" "$T/missing.npy"
    [[ "$stderr" == "imgrid: $T/missing.npy: "* ]]
    [ -z "$(ls -A "$T")" ]
}

@test "imgrid checks -o before the work" {
    mkdir "$BATS_TEST_TMPDIR/dir"
    run -1 --separate-stderr imgrid -o "$BATS_TEST_TMPDIR/dir" "$IMG/dir_32.npy"
    [ "$stderr" = "imgrid: $BATS_TEST_TMPDIR/dir: is a directory" ]
}

@test "imgrid, vae-sample and ddpm-sample with stdout on a terminal refuse too" {
    run -0 script -qec "imgrid '$IMG/dir_32.npy'; echo rc=\$?" /dev/null
    [[ "$output" == *"imgrid: not writing binary data to a terminal: use -o FILE or a pipe"*"rc=1"* ]]
    run -0 script -qec "vae-sample --model '$FIX/vae/init.safetensors' -n 2; echo rc=\$?" /dev/null
    [[ "$output" == *"vae-sample: not writing binary data to a terminal"*"rc=1"* ]]
    run -0 script -qec "ddpm-sample --model '$FIX/unet/tiny_st_legacy' -n 1 --steps 2; echo rc=\$?" /dev/null
    [[ "$output" == *"ddpm-sample: not writing binary data to a terminal"*"rc=1"* ]]
    # --check prints text: fine on a terminal
    run -0 script -qec "ddpm-sample --model '$FIX/unet/tiny_st_legacy' --check; echo rc=\$?" /dev/null
    [[ "$output" == *"rc=0"* ]]
}

@test "imgrid names the path it could not write, once" {
    run -1 --separate-stderr imgrid -o "$BATS_TEST_TMPDIR/no/g.png" "$FIX/inception/img32.npy"
    [ "$stderr" = "imgrid: $BATS_TEST_TMPDIR/no/g.png: cannot create a file in $BATS_TEST_TMPDIR/no: No such file or directory" ]
}

@test "imgrid -o onto a pipe (or a device: /dev/null) writes into it instead of replacing it" {
    T=$BATS_TEST_TMPDIR
    mkfifo "$T/fifo"
    timeout 10 cat "$T/fifo" > "$T/got" &
    run -0 timeout 10 imgrid -o "$T/fifo" "$IMG/dir_32.npy"
    wait
    [ -p "$T/fifo" ]
    imgrid "$IMG/dir_32.npy" | cmp - "$T/got"
}

@test "imgrid says how to transpose an (N,3,H,W) array" {
    npy_make "$BATS_TEST_TMPDIR/nchw.npy" '|u1' '2, 3, 8, 8' 384 '\x80'
    run -1 --separate-stderr imgrid "$BATS_TEST_TMPDIR/nchw.npy" -o "$BATS_TEST_TMPDIR/g.png"
    [[ "$stderr" == *"np.transpose(x, (0,2,3,1)) gives (N,H,W,C)" ]]
    [ ! -e "$BATS_TEST_TMPDIR/g.png" ]
}
