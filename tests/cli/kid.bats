load helpers
setup() { setup_tools; }

IMG() { echo "$FIX/inception/img32.npy"; }
ODD() { echo "$FIX/inception/img40x24.npy"; }
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

@test "kid without arguments prints usage and exits 2" {
  run -2 --separate-stderr kid
  [ -z "$output" ]
  [[ "$stderr" == *"usage: kid"* ]]
}

@test "kid --help prints usage on stdout" {
  run -0 kid --help
  [[ "$output" == "usage: kid"* ]]
}

@test "kid --help names every option, its defaults and an example" {
  help_names_options kid tools/kid.c common/eval/metrics_cli.h common/eval/metrics_cli.c
}

@test "kid rejects --subset-size 1" {
  run -2 --separate-stderr kid --subset-size 1 a b
  [[ "$stderr" == "kid: --subset-size: bad value: 1 (want an integer from 2 to 1000000)"* ]]
}

@test "kid names the input with too few samples" {
  npy_make "$BATS_TEST_TMPDIR/one.npy" '<f4' '1, 64' 64 '\x00\x00\x80\x3f'
  run -1 --separate-stderr kid "$FIX/metrics/kid_a.npy" "$BATS_TEST_TMPDIR/one.npy"
  [ -z "$output" ]
  [ "$stderr" = "kid: $BATS_TEST_TMPDIR/one.npy: 1 sample: KID needs at least 2 on each side" ]
  [ "${#stderr_lines[@]}" -eq 1 ]
}

@test "kid on cached features matches torch-fidelity's code" {
  run -0 --separate-stderr kid --subsets 10 --subset-size 20 "$FIX/metrics/kid_a.npy" "$FIX/metrics/kid_b.npy"
  [ "${#lines[@]}" -eq 2 ]
  near "${lines[0]#kernel_inception_distance_mean: }" 0.13915976 2e-6
  near "${lines[1]#kernel_inception_distance_std: }" 0.079810577 2e-6
}

@test "kid uses the smaller N as subset size when below 1000, with a note" {
  run -0 --separate-stderr kid --subsets 7 "$FIX/metrics/kid_a.npy" "$FIX/metrics/kid_b.npy"
  near "${lines[0]#kernel_inception_distance_mean: }" 0.14234501 2e-6
  [[ "$stderr" == *"kid: note: 60 samples < 1000: subset size 60"* ]]
}

@test "kid rejects a subset size above N" {
  run -1 --separate-stderr kid --subset-size 61 "$FIX/metrics/kid_a.npy" "$FIX/metrics/kid_b.npy"
  [ -z "$output" ]
  [[ "$stderr" == "kid: subset size 61 is larger"*"--subset-size"* ]]
}

@test "kid --json" {
  run -0 --separate-stderr kid --json --subsets 10 --subset-size 20 "$FIX/metrics/kid_a.npy" "$FIX/metrics/kid_b.npy"
  [ "${lines[0]}" = "{" ]
  [[ "$output" == *'"kernel_inception_distance_mean": 0.13915'* ]]
  [[ "$output" == *'"subset_size": 20'* ]]
  [ "${lines[-1]}" = "}" ]
}

@test "kid on images: stdin, folder and --save-features give the same score" {
  run -0 --separate-stderr kid --weights synthetic --subsets 3 "$(IMG)" "$(ODD)"
  want=$output
  [[ "$stderr" == *"kid: warning: synthetic Inception weights"* ]]
  run -0 --separate-stderr bash -c "cat '$(IMG)' | kid --weights synthetic --subsets 3 - '$(ODD)'"
  [ "$output" = "$want" ]
  run -0 --separate-stderr kid --weights synthetic --subsets 3 "$FIX/inception/folder" "$(ODD)"
  [ "$output" = "$want" ]
  run -0 --separate-stderr kid --weights synthetic --save-features "$(IMG)" "$BATS_TEST_TMPDIR/f.npy"
  run -0 npy_shape "$BATS_TEST_TMPDIR/f.npy"
  [ "$output" = "3,2048" ]
  run -0 --separate-stderr kid --weights synthetic --subsets 3 "$BATS_TEST_TMPDIR/f.npy" "$(ODD)"
  [ "$output" = "$want" ]
}

@test "kid rejects statistics, mixed feature widths and bad arrays" {
  run -1 --separate-stderr kid "$FIX/metrics/kid_a.npy" "$FIX/metrics/stats64_compressed.npz"
  [ -z "$output" ]
  [[ "$stderr" == "kid: "*"stats64_compressed.npz: KID needs features or images"* ]]
  run -1 --separate-stderr kid --weights synthetic "$FIX/metrics/kid_a.npy" "$(IMG)"
  [[ "$stderr" == "kid: "*"kid_a.npy: features have 64 columns"* ]]
  run -1 --separate-stderr kid "$FIX/bad/metrics_int32_feats.npy" "$FIX/metrics/kid_a.npy"
  [[ "$stderr" == "kid: "*"metrics_int32_feats.npy: expected"* ]]
}

@test "kid refuses DINOv2 features (1024-d) in one line" {
  npy_make "$BATS_TEST_TMPDIR/d.npy" '<f4' '4, 1024' 4096 '\x00\x00\x80\x3f'
  run -1 --separate-stderr kid --subset-size 2 "$FIX/metrics/kid_a.npy" "$BATS_TEST_TMPDIR/d.npy"
  [ -z "$output" ]
  [ "$stderr" = "kid: $BATS_TEST_TMPDIR/d.npy: 1024-d features are DINOv2's (score --save-dinov2-features): KID needs Inception features" ]
  run -1 --separate-stderr kid --subset-size 2 "$BATS_TEST_TMPDIR/d.npy" "$BATS_TEST_TMPDIR/d.npy"
  [ "$stderr" = "kid: $BATS_TEST_TMPDIR/d.npy: 1024-d features are DINOv2's (score --save-dinov2-features): KID needs Inception features" ]
}

@test "kid names make weights when the weights are missing" {
  run -1 --separate-stderr env FID_WEIGHTS=/nonexistent/w.pth kid "$(IMG)" "$(ODD)"
  [ -z "$output" ]
  [[ "$stderr" == "kid: "*"make weights"* ]]
}

@test "kid --save-features leaves no file behind on failure" {
  mkdir "$BATS_TEST_TMPDIR/out"
  run -1 --separate-stderr kid --save-features "$FIX/bad/metrics_rgba.npy" "$BATS_TEST_TMPDIR/out/f.npy"
  [ -z "$output" ]
  [ -z "$(ls -A "$BATS_TEST_TMPDIR/out")" ]
}

@test "kid --save-features checks the output before any work" {
  run -1 --separate-stderr kid -v --weights synthetic --save-features "$(IMG)" /proc/f.npy
  [[ "$stderr" == "kid: /proc/f.npy: cannot create a file in /proc: "* ]]
  [ "${#stderr_lines[@]}" -eq 1 ]
  mkdir "$BATS_TEST_TMPDIR/dir"
  run -1 --separate-stderr kid -v --weights synthetic --save-features "$(IMG)" "$BATS_TEST_TMPDIR/dir"
  [ "$stderr" = "kid: $BATS_TEST_TMPDIR/dir: is a directory" ]
}
