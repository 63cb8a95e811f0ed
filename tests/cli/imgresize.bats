load helpers
setup() { setup_tools; IMG="$FIX/img"; }

# payload of a .npy: everything after the header (the header length is at bytes 8..9, v1.0)
payload() {
    local n
    n=$(od -An -tu2 -j8 -N2 --endian=little "$1" | tr -d ' ')
    tail -c +$((10 + n + 1)) "$1"
}
# 'shape': (...) from a .npy header
shape() { head -c 256 "$1" | tr -d '\0' | grep -ao "'shape': ([0-9, ]*)" | sed "s/'shape': //"; }
int64s() { payload "$1" | od -An -v -td8 --endian=little | xargs; }

@test "imgresize --help prints usage on stdout" {
    run -0 --separate-stderr imgresize --help
    [[ "$output" == "usage: imgresize "* ]]
    [ -z "$stderr" ]
}

@test "imgresize without input is a usage error" {
    run -2 --separate-stderr imgresize
    [ -z "$output" ]
    [[ "$stderr" == *"usage: imgresize "* ]]
}

@test "imgresize rejects bad options with exit 2" {
    run -2 --separate-stderr imgresize -s 0 "$IMG/dir"
    [[ "$stderr" == "imgresize: --size: "* ]]
    run -2 --separate-stderr imgresize -s 32y32 "$IMG/dir"
    run -2 --separate-stderr imgresize -m stretch "$IMG/dir"
    [[ "$stderr" == "imgresize: --mode: "* ]]
    run -2 --separate-stderr imgresize -t 0 "$IMG/dir"
    run -2 --separate-stderr imgresize --split trn "$IMG/dir"
    run -2 --separate-stderr imgresize --bogus "$IMG/dir"
    run -2 --separate-stderr imgresize - -
    run -2 --separate-stderr imgresize --flowers102 "$IMG" "$IMG/dir"
    [ -z "$output" ]
}

@test "imgresize DIR matches PIL resize((32,32), BILINEAR) exactly, in name order" {
    run -0 imgresize -o "$BATS_TEST_TMPDIR/o.npy" "$IMG/dir"
    [ "$(shape "$BATS_TEST_TMPDIR/o.npy")" = "(4, 32, 32, 3)" ]
    cmp <(payload "$BATS_TEST_TMPDIR/o.npy") <(payload "$IMG/dir_32.npy")
}

@test "imgresize writes to stdout by default" {
    imgresize "$IMG/dir" > "$BATS_TEST_TMPDIR/o.npy"
    cmp <(payload "$BATS_TEST_TMPDIR/o.npy") <(payload "$IMG/dir_32.npy")
}

@test "imgresize --mode center-crop WxH matches the PIL reference" {
    run -0 imgresize -m center-crop -s 16x8 -o "$BATS_TEST_TMPDIR/o.npy" "$IMG/dir"
    [ "$(shape "$BATS_TEST_TMPDIR/o.npy")" = "(4, 8, 16, 3)" ]
    cmp <(payload "$BATS_TEST_TMPDIR/o.npy") <(payload "$IMG/dir_cc_16x8.npy")
}

@test "imgresize reads an image from stdin" {
    imgresize - < "$IMG/dir/a.jpg" > "$BATS_TEST_TMPDIR/o.npy"
    [ "$(shape "$BATS_TEST_TMPDIR/o.npy")" = "(1, 32, 32, 3)" ]
    cmp <(payload "$BATS_TEST_TMPDIR/o.npy") <(payload "$IMG/dir_32.npy" | head -c 3072)
}

@test "imgresize --list keeps list order and writes int64 labels" {
    T=$BATS_TEST_TMPDIR
    run -0 imgresize -l "$IMG/list.txt" -o "$T/o.npy" --labels-out "$T/l.npy"
    [ "$(shape "$T/o.npy")" = "(3, 32, 32, 3)" ]
    [ "$(shape "$T/l.npy")" = "(3,)" ]
    [ "$(int64s "$T/l.npy")" = "3 0 7" ]
    imgresize "$IMG/dir/b.png" "$IMG/dir/a.jpg" "$IMG/dir/d_pal.png" > "$T/want.npy"
    cmp <(payload "$T/o.npy") <(payload "$T/want.npy")
}

@test "imgresize output does not depend on the thread count" {
    imgresize -t 1 -l "$IMG/list.txt" "$IMG/dir" > "$BATS_TEST_TMPDIR/a.npy"
    imgresize -t 3 -l "$IMG/list.txt" "$IMG/dir" > "$BATS_TEST_TMPDIR/b.npy"
    cmp "$BATS_TEST_TMPDIR/a.npy" "$BATS_TEST_TMPDIR/b.npy"
}

@test "imgresize DIR | imgrid - makes a PNG" {
    run -0 bash -c "imgresize '$IMG/dir' | imgrid - > '$BATS_TEST_TMPDIR/grid.png'"
    [ "$(head -c 8 "$BATS_TEST_TMPDIR/grid.png" | od -An -tx1 | xargs)" = "89 50 4e 47 0d 0a 1a 0a" ]
}

@test "imgresize names an undecodable file and leaves no output" {
    T=$BATS_TEST_TMPDIR/out
    mkdir "$T"
    for f in img_trunc.jpg img_trunc.png img_text.jpg img_empty.png img_corrupt.jpg \
             img_corrupt_data.jpg img_bad_huffman.jpg; do
        run -1 --separate-stderr imgresize -o "$T/o.npy" --labels-out "$T/l.npy" \
            -l <(echo "$FIX/bad/$f 1")
        [ -z "$output" ]
        [[ "$stderr" == "imgresize: $FIX/bad/$f: "* ]]
        [ "$(echo "$stderr" | wc -l)" -eq 1 ]
        [ -z "$(ls -A "$T")" ]
    done
}

@test "imgresize on a missing file fails with exit 1 and empty stdout" {
    run -1 --separate-stderr imgresize "$BATS_TEST_TMPDIR/nope.jpg"
    [ -z "$output" ]
    [[ "$stderr" == "imgresize: $BATS_TEST_TMPDIR/nope.jpg: No such file or directory" ]]
}

@test "imgresize --skip-bad skips and counts undecodable files" {
    T=$BATS_TEST_TMPDIR
    mkdir "$T/d"
    cp "$IMG/dir/a.jpg" "$T/d/1.jpg"
    cp "$FIX/bad/img_trunc.jpg" "$T/d/2.jpg"
    cp "$IMG/dir/b.png" "$T/d/3.jpg"
    cp "$FIX/bad/img_text.jpg" "$T/d/4.jpg"
    run -0 --separate-stderr imgresize --skip-bad -o "$T/o.npy" "$T/d"
    [ "$(shape "$T/o.npy")" = "(2, 32, 32, 3)" ]
    cmp <(payload "$T/o.npy") <(payload "$IMG/dir_32.npy" | head -c 6144)
    [[ "$stderr" == *"imgresize: $T/d/2.jpg: "*"(skipped)"* ]]
    [[ "$stderr" == *"imgresize: skipped 2 of 4 images" ]]
    run -1 --separate-stderr imgresize -o "$T/o2.npy" "$T/d"
    [ ! -e "$T/o2.npy" ]
}

@test "imgresize --skip-bad keeps labels aligned" {
    T=$BATS_TEST_TMPDIR
    printf '%s 5\n%s 6\n%s 7\n' "$IMG/dir/a.jpg" "$FIX/bad/img_trunc.png" "$IMG/dir/b.png" > "$T/l.txt"
    run -0 --separate-stderr imgresize --skip-bad -l "$T/l.txt" -o "$T/o.npy" --labels-out "$T/l.npy"
    [ "$(int64s "$T/l.npy")" = "5 7" ]
}

@test "imgresize with nothing decodable or nothing at all fails" {
    T=$BATS_TEST_TMPDIR
    mkdir "$T/empty" "$T/bad"
    cp "$FIX/bad/img_text.jpg" "$T/bad/x.jpg"
    run -1 --separate-stderr imgresize --skip-bad -o "$T/o.npy" "$T/bad"
    [[ "$stderr" == *"imgresize: no image could be read" ]]
    run -1 --separate-stderr imgresize -o "$T/o.npy" "$T/empty"
    [[ "$stderr" == "imgresize: $T/empty: no images" ]]
    [ ! -e "$T/o.npy" ]
}

@test "imgresize --labels-out needs labelled input" {
    T=$BATS_TEST_TMPDIR/out
    mkdir "$T"
    run -1 --separate-stderr imgresize --labels-out "$T/l.npy" -o "$T/o.npy" "$IMG/dir"
    [ -z "$output" ]
    [[ "$stderr" == "imgresize: --labels-out: "* ]]
    [ -z "$(ls -A "$T")" ]
}

@test "imgresize --flowers102 reads the official trnid split with 0-based labels" {
    T=$BATS_TEST_TMPDIR
    mkdir "$T/f"
    tar -xzf "$IMG/flowers/102flowers.tgz" -C "$T/f"
    cp "$IMG/flowers/imagelabels.mat" "$IMG/flowers/setid.mat" "$T/f"
    run -0 imgresize --flowers102 "$T/f" -s 16 -o "$T/o.npy" --labels-out "$T/l.npy"
    cmp <(payload "$T/o.npy") <(payload "$IMG/flowers/trn_16.npy")
    cmp <(payload "$T/l.npy") <(payload "$IMG/flowers/trn_labels.npy")
    imgresize --flowers102 "$T/f" --split val -s 8 > "$T/v.npy"
    [ "$(shape "$T/v.npy")" = "(4, 8, 8, 3)" ]
    imgresize --flowers102 "$T/f" --split all -s 8 > "$T/a.npy"
    [ "$(shape "$T/a.npy")" = "(48, 8, 8, 3)" ]
    run -2 --separate-stderr imgresize --flowers102 "$T/f" --split train
    [[ "$stderr" == "imgresize: --split: "* ]]
}

@test "imgresize --pets reads trainval.txt or test.txt (CMYK, gray and PNG-named-.jpg files)" {
    T=$BATS_TEST_TMPDIR
    mkdir "$T/p"
    tar -xzf "$IMG/pets/images.tar.gz" -C "$T/p"
    tar -xzf "$IMG/pets/annotations.tar.gz" -C "$T/p"
    run -0 imgresize --pets "$T/p" -o "$T/o.npy" --labels-out "$T/l.npy"
    [ "$(shape "$T/o.npy")" = "(103, 32, 32, 3)" ]
    [ "$(int64s "$T/l.npy" | tr ' ' '\n' | sort | uniq -c | xargs)" = "100 0 3 1" ]
    imgresize --pets "$T/p" --split test --labels-out "$T/tl.npy" > "$T/t.npy"
    [ "$(int64s "$T/tl.npy")" = "1 0" ]
    rm "$T/p/images/beagle_4.jpg"
    run -1 --separate-stderr imgresize --pets "$T/p" --split test
    [[ "$stderr" == "imgresize: $T/p/images/beagle_4.jpg: No such file or directory" ]]
}

@test "imgresize checks -o and --labels-out before decoding anything" {
    T="$BATS_TEST_TMPDIR"
    mkdir "$T/dir"
    # -v would show progress if the decoding had started
    run -1 --separate-stderr imgresize -v "$IMG/dir" -o /proc/x.npy
    [[ "$stderr" == "imgresize: /proc/x.npy: cannot create a file in /proc: "* ]]
    [ "${#stderr_lines[@]}" -eq 1 ]
    run -1 --separate-stderr imgresize -v "$IMG/dir" -o "$T/dir"
    [ "$stderr" = "imgresize: $T/dir: is a directory" ]
    run -1 --separate-stderr imgresize -v -l "$IMG/list.txt" -o "$T/x.npy" --labels-out "$T/dir"
    [ "$stderr" = "imgresize: $T/dir: is a directory" ]
    [ ! -e "$T/x.npy" ]
    [ -z "$(ls -A "$T/dir")" ]
}

@test "imgresize: a JPEG with corrupt data (libjpeg warnings) is an error; --skip-bad names and skips it" {
    T=$BATS_TEST_TMPDIR
    run -1 --separate-stderr imgresize "$FIX/bad/img_corrupt_data.jpg" -o "$T/o.npy"
    [ "$stderr" = "imgresize: $FIX/bad/img_corrupt_data.jpg: corrupt JPEG: premature end of data segment" ]
    run -1 --separate-stderr imgresize "$FIX/bad/img_bad_huffman.jpg" -o "$T/o.npy"
    [ "$stderr" = "imgresize: $FIX/bad/img_bad_huffman.jpg: corrupt JPEG: bad Huffman code" ]
    [ ! -e "$T/o.npy" ]
    mkdir "$T/d"
    cp "$IMG/dir/a.jpg" "$T/d/1.jpg"
    cp "$FIX/bad/img_corrupt_data.jpg" "$T/d/2.jpg"
    run -0 --separate-stderr imgresize --skip-bad -o "$T/o.npy" "$T/d"
    [ "$(shape "$T/o.npy")" = "(1, 32, 32, 3)" ]
    [ "${stderr_lines[0]}" = "imgresize: $T/d/2.jpg: corrupt JPEG: premature end of data segment (skipped)" ]
    [ "${stderr_lines[1]}" = "imgresize: skipped 1 of 2 images" ]
}

@test "imgresize with stdout on a terminal refuses, as gzip does, and says to use -o or a pipe" {
    # script(1) gives the command a terminal as stdout (and stderr)
    run -0 script -qec "imgresize -v '$IMG/dir'; echo rc=\$?" /dev/null
    echo "$output"   # shown if a check fails
    [[ "$output" == *"imgresize: not writing binary data to a terminal: use -o FILE or a pipe"*"rc=1"* ]]
    [[ "$output" != *"images"* ]]   # refused before any decoding (-v shows progress)
    [[ "$output" != *NUMPY* ]]
    # a pipe or -o still work from a terminal; script(1) runs $SHELL, which may be /bin/sh (as
    # in CI), so only commands on PATH here, no exported bash functions
    run -0 script -qec "imgresize '$IMG/dir' | npyinfo --shape -; imgresize '$IMG/dir' -o '$BATS_TEST_TMPDIR/o.npy'" /dev/null
    [[ "$output" == *"4,32,32,3"* ]]
    [ -s "$BATS_TEST_TMPDIR/o.npy" ]
}

@test "imgresize --help names every option, its defaults and an example" {
    help_names_options imgresize tools/imgresize.c
}

# an ImageFolder of the four images of $IMG/dir: classes Zebra, cat, dog (sorted: 0, 1, 2)
image_folder() {
    R=$BATS_TEST_TMPDIR/r
    mkdir -p "$R/cat/sub" "$R/cat/sub b" "$R/dog" "$R/Zebra"
    cp "$IMG/dir/a.jpg" "$R/Zebra/q.jpg"
    cp "$IMG/dir/c_gray.jpg" "$R/cat/y.jpeg"
    echo notes > "$R/cat/readme.txt"
    cp "$IMG/dir/b.png" "$R/cat/sub/z.png"
    cp "$IMG/dir/d_pal.png" "$R/cat/sub b/w.png"
    cp "$IMG/dir/a.jpg" "$R/dog/x.JPG"
}
# image $2 of $1 (uint8 (N,32,32,3))
image32() { payload "$1" | tail -c +$(($2 * 3072 + 1)) | head -c 3072; }

@test "imgresize -r reads a torchvision ImageFolder: sorted classes, labels = class index" {
    image_folder
    T=$BATS_TEST_TMPDIR
    run -0 --separate-stderr imgresize -r "$R" --labels-out "$T/l.npy" -o "$T/o.npy"
    [ -z "$stderr" ]
    [ "$(shape "$T/o.npy")" = "(5, 32, 32, 3)" ]
    [ "$(int64s "$T/l.npy")" = "0 1 1 1 2" ]
    # ImageFolder's order: Zebra/q, cat/y, cat/sub/z, cat/sub b/w, dog/x (dir_32: a b c d)
    cmp <(payload "$T/o.npy") <(for i in 0 2 1 3 0; do image32 "$IMG/dir_32.npy" $i; done)
    run -0 --separate-stderr imgresize --image-folder "$R" -v -o "$T/p.npy"
    cmp "$T/o.npy" "$T/p.npy"
    [[ "$stderr" == *"class 1: cat (3 images)"* ]]
}

@test "imgresize -r refuses a class without images and a folder without classes" {
    image_folder
    mkdir "$R/empty"
    run -1 --separate-stderr imgresize -r "$R" -o "$BATS_TEST_TMPDIR/o.npy"
    [ "$stderr" = "imgresize: $R/empty: class 3 has no image files (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp)" ]
    run -1 --separate-stderr imgresize -r "$IMG/dir" -o "$BATS_TEST_TMPDIR/o.npy"
    [ "$stderr" = "imgresize: $IMG/dir: no class folders (-r reads DIR/CLASS/IMAGE)" ]
    run -2 --separate-stderr imgresize -r "$R" "$IMG/dir"
    [[ "$stderr" == "imgresize: -r, --flowers102 and --pets go alone"* ]]
    [ ! -e "$BATS_TEST_TMPDIR/o.npy" ]
}

@test "imgresize DIR of only subfolders says so and points to -r" {
    image_folder
    run -1 --separate-stderr imgresize "$R"
    [ -z "$output" ]
    [ "$stderr" = "imgresize: $R: no files, only 3 subfolders: for a torchvision ImageFolder (a folder per class) use -r $R" ]
}

@test "imgresize: bad values name their flag; no input is named" {
    run -2 --separate-stderr imgresize -s 0 "$IMG/dir"
    [ "${stderr%%$'\n'*}" = "imgresize: --size: bad value: 0 (want N or WxH, 1..4096)" ]
    run -2 --separate-stderr imgresize -m stretch "$IMG/dir"
    [ "${stderr%%$'\n'*}" = "imgresize: --mode: bad value: stretch (want squash or center-crop)" ]
    run -2 --separate-stderr imgresize
    [ "${stderr%%$'\n'*}" = "imgresize: no input: give DIR, IMAGE, -, -l LIST, -r DIR, --flowers102 or --pets" ]
}

@test "imgresize decodes BMP, PBM/PGM/PPM, TIFF and WebP (by content) as PIL does" {
    F=$FIX/img/fmt
    for f in bmp_rgb24.bmp bmp_rle8.bmp pnm_gray16.pgm pnm_plain_bit.pbm tif_cmyk.tif \
        tif_rgba.tif webp_lossy_alpha.webp webp_anim.webp; do
        # 13x7 to 13x7 is PIL's identity: the payload is the decoded pixels
        run -0 imgresize -s 13x7 -o "$BATS_TEST_TMPDIR/o.npy" "$F/$f"
        cmp <(payload "$BATS_TEST_TMPDIR/o.npy") <(payload "$F/${f%.*}.npy")
    done
    cp "$F/tif_rgb.tif" "$BATS_TEST_TMPDIR/picture.jpg"  # the name does not matter
    run -0 imgresize -s 13x7 -o "$BATS_TEST_TMPDIR/o.npy" "$BATS_TEST_TMPDIR/picture.jpg"
    cmp <(payload "$BATS_TEST_TMPDIR/o.npy") <(payload "$F/tif_rgb.npy")
}
