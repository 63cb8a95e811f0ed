load helpers
setup() { setup_tools; }

# Synthetic weights and a few tiny images keep these fast (Inception is ~0.1 s/image).
IMG() { echo "$FIX/inception/img32.npy"; }
ODD() { echo "$FIX/inception/img40x24.npy"; }

# |$1 - $2| <= $3
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

@test "fid without arguments prints usage and exits 2" {
  run -2 --separate-stderr fid
  [ -z "$output" ]
  [[ "$stderr" == *"usage: fid"* ]]
}

@test "fid --help prints usage on stdout" {
  run -0 fid --help
  [[ "$output" == "usage: fid"* ]]
}

@test "fid --help names every option, its defaults and an example" {
  help_names_options fid tools/fid.c common/eval/metrics_cli.h common/eval/metrics_cli.c
}

@test "fid rejects a bad --dims" {
  run -2 --separate-stderr fid --dims 100 a b
  [[ "$stderr" == "fid: --dims: bad value: 100 (want 64, 192, 768, 2048 or 2023)"* ]]
  run -2 --separate-stderr fid -b 0 a b
  [[ "$stderr" == "fid: --batch-size: bad value: 0 (want an integer from 1 to 4096)"* ]]
}

@test "fid runs pytorch-fid's command line: --device and --num-workers are ignored, said once" {
  run -0 --separate-stderr fid --device cpu --num-workers 4 --batch-size 2 --dims 64 \
    "$FIX/metrics/feat64_a.npy" "$FIX/metrics/feat64_b.npy"
  near "${output#FID:  }" 8.660084959189675 1e-8
  [ "$stderr" = "fid: note: --device and --num-workers are ignored: this runs on the CPU with --threads 2" ]
  run -0 --separate-stderr fid -t 1 --dims 64 "$FIX/metrics/feat64_a.npy" "$FIX/metrics/feat64_b.npy"
  [ -z "$stderr" ]
}

@test "fid of a set with itself is never negative: round-off below 0 prints as 0" {
  for d in 64 192 768 2048; do
    run -0 --separate-stderr fid --weights synthetic --dims $d "$(IMG)" "$(IMG)"
    [[ "$output" != "FID:  -"* ]]
    run -0 --separate-stderr fid --weights synthetic --dims $d "$(ODD)" "$(ODD)"
    [[ "$output" != "FID:  -"* ]]
  done
}

@test "fid names the file whose statistics are not finite" {
  npy_make "$BATS_TEST_TMPDIR/nan.npy" '<f4' '100, 64' 6400 '\x00\x00\xc0\x7f'
  run -1 --separate-stderr fid --dims 64 "$FIX/metrics/feat64_a.npy" "$BATS_TEST_TMPDIR/nan.npy"
  [ -z "$output" ]
  [ "$stderr" = "fid: $BATS_TEST_TMPDIR/nan.npy: statistics are not finite" ]
}

@test "fid rejects two stdin inputs" {
  run -2 --separate-stderr fid - -
  [[ "$stderr" == *"only one input can be stdin"* ]]
}

@test "fid of an image set with itself is 0, with the synthetic-weights warning" {
  run -0 --separate-stderr fid --weights synthetic "$(IMG)" "$(IMG)"
  [[ "$output" == "FID:  "* ]]
  near "${output#FID:  }" 0 1e-6
  [[ "$stderr" == *"fid: warning: synthetic Inception weights"* ]]
  [[ "$stderr" == *"3 samples < 2048 dims"*"consider kid"* ]]
}

@test "fid reads images from stdin, same score as from the file" {
  run -0 --separate-stderr fid --weights synthetic "$(IMG)" "$(ODD)" --batch-size 2
  want=$output
  run -0 --separate-stderr bash -c "cat '$(ODD)' | fid --weights synthetic '$(IMG)' -"
  [ "$output" = "$want" ]
}

@test "fid does not depend on batch size or thread count" {
  run -0 --separate-stderr fid --weights synthetic "$(IMG)" "$(ODD)"
  want=$output
  run -0 --separate-stderr fid --weights synthetic --batch-size 1 --threads 1 "$(IMG)" "$(ODD)"
  [ "$output" = "$want" ]
}

@test "fid reads a folder of PNGs like the same images in an array" {
  run -0 --separate-stderr fid --weights synthetic "$(IMG)" "$(ODD)"
  want=$output
  run -0 --separate-stderr fid --weights synthetic "$FIX/inception/folder" "$(ODD)"
  [ "$output" = "$want" ]
}

@test "fid --save-stats round trip: fid A B = fid A stats(B)" {
  run -0 --separate-stderr fid --weights synthetic "$(IMG)" "$(ODD)"
  want=$output
  run -0 --separate-stderr fid --weights synthetic --save-stats "$(ODD)" "$BATS_TEST_TMPDIR/s.npz"
  [ -z "$output" ]
  run -0 --separate-stderr fid --weights synthetic "$(IMG)" "$BATS_TEST_TMPDIR/s.npz"
  [ "$output" = "$want" ]
}

@test "fid --save-features round trip: features stand in for the images" {
  run -0 --separate-stderr fid --weights synthetic "$(IMG)" "$(ODD)"
  want=$output
  run -0 --separate-stderr fid --weights synthetic --save-features "$(IMG)" "$BATS_TEST_TMPDIR/f.npy"
  run -0 npy_shape "$BATS_TEST_TMPDIR/f.npy"
  [ "$output" = "3,2048" ]
  run -0 --separate-stderr fid --weights synthetic "$BATS_TEST_TMPDIR/f.npy" "$(ODD)"
  [ "$output" = "$want" ]
}

@test "fid on features needs no weights and matches pytorch-fid's scipy formula" {
  run -0 --separate-stderr env FID_WEIGHTS=/nonexistent fid --dims 64 "$FIX/metrics/feat64_a.npy" "$FIX/metrics/feat64_b.npy"
  near "${output#FID:  }" 8.660084959189675 1e-8
}

@test "fid --json" {
  run -0 --separate-stderr fid --dims 64 --json "$FIX/metrics/feat64_a.npy" "$FIX/metrics/stats64_compressed.npz"
  [[ "${lines[0]}" == "{" ]]
  [[ "$output" == *'"frechet_inception_distance": '* ]]
  [[ "$output" == *'"dims": 64'* ]]
  [[ "${lines[-1]}" == "}" ]]
}

@test "fid rejects statistics of other dims than --dims" {
  run -1 --separate-stderr fid "$FIX/metrics/feat64_a.npy" "$FIX/metrics/stats64_compressed.npz"
  [ -z "$output" ]
  [[ "$stderr" == "fid: "* ]]
}

@test "fid rejects a feature file with one row" {
  run -1 --separate-stderr fid --weights synthetic "$FIX/bad/metrics_one_feature.npy" "$(IMG)"
  [ -z "$output" ]
  [[ "$stderr" == *"fid: "*"metrics_one_feature.npy: need at least 2 samples"* ]]
}

@test "fid rejects int32 arrays and RGBA arrays" {
  run -1 --separate-stderr fid "$FIX/bad/metrics_int32_feats.npy" "$(IMG)"
  [ -z "$output" ]
  [[ "$stderr" == "fid: "*"metrics_int32_feats.npy: expected uint8 images"* ]]
  run -1 --separate-stderr fid "$(IMG)" "$FIX/bad/metrics_rgba.npy"
  [[ "$stderr" == "fid: "*"metrics_rgba.npy: "* ]]
}

@test "fid rejects truncated statistics" {
  run -1 --separate-stderr fid "$(IMG)" "$FIX/bad/metrics_stats_trunc.npz"
  [ -z "$output" ]
  [[ "$stderr" == "fid: "*"metrics_stats_trunc.npz: "* ]]
}

@test "fid names make weights when the weights are missing" {
  run -1 --separate-stderr env FID_WEIGHTS=/nonexistent/w.pth fid "$(IMG)" "$(ODD)"
  [ -z "$output" ]
  [[ "$stderr" == "fid: "*"make weights"* ]]
}

@test "fid without FID_WEIGHTS looks next to the executable and names make weights" {
  bin=$(dirname "$(command -v fid)")
  [ ! -e "$bin/../weights/pt_inception-2015-12-05-6726825d.pth" ] || skip "real weights present"
  cd "$BATS_TEST_TMPDIR"
  run -1 --separate-stderr env -u FID_WEIGHTS fid "$(IMG)" "$(ODD)"
  [[ "$stderr" == "fid: no Inception weights"*"make weights"* ]]
}

@test "fid rejects a corrupt weights file" {
  run -1 --separate-stderr fid --weights "$FIX/bad/metrics_inception_trunc.pth" "$(IMG)" "$(ODD)"
  [ -z "$output" ]
  [[ "$stderr" == "fid: "*"metrics_inception_trunc.pth: "* ]]
}

@test "fid --save-features leaves no file behind on failure" {
  mkdir "$BATS_TEST_TMPDIR/out"
  run -1 --separate-stderr fid --save-features "$FIX/bad/metrics_rgba.npy" "$BATS_TEST_TMPDIR/out/f.npy"
  [ -z "$output" ]
  [ -z "$(ls -A "$BATS_TEST_TMPDIR/out")" ]
  run -1 --separate-stderr fid --weights synthetic --save-stats "$FIX/bad/metrics_one_feature.npy" "$BATS_TEST_TMPDIR/out/s.npz"
  [ -z "$(ls -A "$BATS_TEST_TMPDIR/out")" ]
}

@test "fid --save-stats / --save-features check the output before any work" {
  mkdir "$BATS_TEST_TMPDIR/dir"
  for o in --save-stats --save-features; do
    # -v would print the settings and progress first if the work had started
    run -1 --separate-stderr fid -v --weights synthetic $o "$(IMG)" /proc/x.npz
    [[ "$stderr" == "fid: /proc/x.npz: cannot create a file in /proc: "* ]]
    [ "${#stderr_lines[@]}" -eq 1 ]
    run -1 --separate-stderr fid -v --weights synthetic $o "$(IMG)" "$BATS_TEST_TMPDIR/dir"
    [ "$stderr" = "fid: $BATS_TEST_TMPDIR/dir: is a directory" ]
  done
  [ -z "$(ls -A "$BATS_TEST_TMPDIR/dir")" ]
}

@test "fid: a corrupt JPEG in a folder is an error; --skip-bad names and skips it" {
  T="$BATS_TEST_TMPDIR"
  mkdir "$T/good" "$T/mixed"
  cp "$FIX/img/dir/a.jpg" "$FIX/img/dir/b.png" "$FIX/img/dir/c_gray.jpg" "$T/good/"
  cp "$T"/good/* "$T/mixed/"
  cp "$FIX/bad/img_corrupt_data.jpg" "$T/mixed/b2.jpg"
  run -1 --separate-stderr fid --weights synthetic "$T/mixed" "$(IMG)"
  [[ "$stderr" == *"$T/mixed/b2.jpg: corrupt JPEG: premature end of data segment" ]]
  [ -z "$output" ]
  run -0 --separate-stderr fid --weights synthetic --skip-bad "$T/mixed" "$(IMG)"
  [ "${stderr_lines[0]}" = "fid: $T/mixed/b2.jpg: corrupt JPEG: premature end of data segment (skipped)" ]
  [ "${stderr_lines[1]}" = "fid: $T/mixed: skipped 1 of 4 images" ]
  want="$(fid --weights synthetic "$T/good" "$(IMG)" 2> /dev/null)"
  [ "$output" = "$want" ]
  # kid and is-score take it too
  run -0 --separate-stderr kid --weights synthetic --skip-bad --subset-size 2 "$T/mixed" "$(IMG)"
  [ "${stderr_lines[0]}" = "kid: $T/mixed/b2.jpg: corrupt JPEG: premature end of data segment (skipped)" ]
  run -0 --separate-stderr is-score --weights synthetic --skip-bad --splits 1 "$T/mixed"
  [ "${stderr_lines[0]}" = "is-score: $T/mixed/b2.jpg: corrupt JPEG: premature end of data segment (skipped)" ]
  mkdir "$T/bad"
  cp "$FIX/bad/img_corrupt_data.jpg" "$T/bad/x.jpg"
  run -1 --separate-stderr fid --weights synthetic --skip-bad "$T/bad" "$(IMG)"
  [ "${stderr_lines[1]}" = "fid: $T/bad: no image in the folder could be read" ]
}

@test "fid on a folder of only subfolders says so" {
  mkdir -p "$BATS_TEST_TMPDIR/d/a" "$BATS_TEST_TMPDIR/d/b"
  cp "$FIX/inception/folder/"* "$BATS_TEST_TMPDIR/d/a/"
  run -1 --separate-stderr fid --weights synthetic "$BATS_TEST_TMPDIR/d" "$(IMG)"
  [ -z "$output" ]
  [ "$stderr" = "fid: $BATS_TEST_TMPDIR/d: no images in folder, only 2 subfolders: images are read from the folder itself, not its subfolders (as pytorch-fid)" ]
}

@test "fid reads a folder of BMP, PPM, TIFF and WebP files like pytorch-fid" {
  F=$FIX/img/fmt
  mkdir "$BATS_TEST_TMPDIR/d"
  cp "$F/bmp_rgb24.bmp" "$F/pnm_rgb.ppm" "$F/pnm_gray.pgm" "$F/tif_rgb_lzw.tif" \
     "$F/tif_rgb_deflate.tiff" "$F/webp_lossless.webp" "$BATS_TEST_TMPDIR/d/"
  imgresize -s 13x7 "$BATS_TEST_TMPDIR/d" -o "$BATS_TEST_TMPDIR/d.npy"
  run -0 --separate-stderr fid --weights synthetic --dims 64 "$BATS_TEST_TMPDIR/d.npy" "$(IMG)"
  want=$output
  run -0 --separate-stderr fid --weights synthetic --dims 64 "$BATS_TEST_TMPDIR/d" "$(IMG)"
  [ "$output" = "$want" ]
}

@test "fid says how to transpose an (N,3,H,W) array" {
  npy_make "$BATS_TEST_TMPDIR/nchw.npy" '|u1' '2, 3, 8, 8' 384 '\x80'
  run -1 --separate-stderr fid --weights synthetic "$BATS_TEST_TMPDIR/nchw.npy" "$(IMG)"
  [ -z "$output" ]
  [[ "$stderr" == "fid: $BATS_TEST_TMPDIR/nchw.npy: "*"(2,3,8,8): looks like PyTorch's (N,C,H,W); np.transpose(x, (0,2,3,1)) gives (N,H,W,C)" ]]
}

@test "fid, kid and is-score name a missing input" {
  run -2 --separate-stderr fid "$(IMG)"
  [ "${stderr%%$'\n'*}" = "fid: A and B are required" ]
  run -2 --separate-stderr fid --save-stats "$(IMG)"
  [ "${stderr%%$'\n'*}" = "fid: A and OUT are required" ]
  run -2 --separate-stderr kid "$(IMG)"
  [ "${stderr%%$'\n'*}" = "kid: A and B are required" ]
  run -2 --separate-stderr is-score
  [ "${stderr%%$'\n'*}" = "is-score: INPUT is required" ]
}
