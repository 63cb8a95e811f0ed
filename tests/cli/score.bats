load helpers
setup() { setup_tools; }

P() { echo "$FIX/prdc/$1"; }
M() { echo "$FIX/metrics/$1"; }
IMG() { echo "$FIX/inception/img32.npy"; }
ODD() { echo "$FIX/inception/img40x24.npy"; }

@test "score without arguments prints usage and exits 2" {
  run -2 --separate-stderr score
  [ -z "$output" ]
  [[ "$stderr" == *"usage: score"* ]]
}

@test "score --help names every option, its defaults and an example" {
  help_names_options score tools/score.c common/eval/metrics_cli.h common/eval/metrics_cli.c
}

@test "score rejects --prc-k 0" {
  run -2 --separate-stderr score --prc-k 0 a b
  [[ "$stderr" == "score: --prc-k: bad value: 0 (want an integer from 1 to 1000)"* ]]
}

# goldens: tests/fixtures/gen_prdc.py (torch-fidelity prc and clovaai prdc transcriptions)
@test "score --prc --dc on features matches torch-fidelity's prc and clovaai's prdc" {
  run -0 --separate-stderr score --prc --dc "$(P small_gen.npy)" "$(P small_real.npy)"
  [ "$output" = "precision: 0.3333333
recall: 0.95
f_score: 0.4935065
density: 0.3133333
coverage: 0.65
resize: none (features)" ]
  [ -z "$stderr" ]
  run -0 --separate-stderr score --json --prc --dc "$(P wide_gen.npy)" "$(P wide_real.npy)"
  [[ "$output" == *'"precision": 0.9076923076923077,'* ]]
  [[ "$output" == *'"recall": 0.3,'* ]]
  [[ "$output" == *'"f_score": 0.45095541401273886,'* ]]
  [[ "$output" == *'"density": 2.763846153846154,'* ]]
  [[ "$output" == *'"coverage": 1.0,'* ]]
  [[ "$output" == *'"resize": "none (features)"'* ]]
}

@test "score: a set against itself gives precision, recall, density and coverage 1" {
  run -0 --separate-stderr score --prc --dc "$(P same_gen.npy)" "$(P same_real.npy)"
  [ "$output" = "precision: 1
recall: 1
f_score: 1
density: 1
coverage: 1
resize: none (features)" ]
}

@test "score: disjoint far sets give 0" {
  npy_make "$BATS_TEST_TMPDIR/a.npy" '<f4' '6, 2' 12 '\x00\x00\x00\x00'
  npy_make "$BATS_TEST_TMPDIR/b.npy" '<f4' '6, 2' 12 '\x00\x00\x7a\x44'
  run -0 --separate-stderr score --prc --dc "$BATS_TEST_TMPDIR/a.npy" "$BATS_TEST_TMPDIR/b.npy"
  [ "$output" = "precision: 0
recall: 0
f_score: 0
density: 0
coverage: 0
resize: none (features)" ]
}

@test "score reads GEN from stdin" {
  run -0 --separate-stderr bash -c "score --prc - '$(P small_real.npy)' < '$(P small_gen.npy)'"
  [ "${lines[0]}" = "precision: 0.3333333" ]
}

@test "score --fid --kid on features equals fid and kid" {
  run -0 --separate-stderr score --json --fid --kid --kid-subsets 10 --kid-subset-size 20 "$(M kid_a.npy)" "$(M kid_b.npy)"
  local s=$output
  run -0 --separate-stderr fid --json --dims 64 "$(M kid_a.npy)" "$(M kid_b.npy)"
  [[ "$s" == *"${lines[1]}"* ]]
  run -0 --separate-stderr kid --json --subsets 10 --subset-size 20 "$(M kid_a.npy)" "$(M kid_b.npy)"
  [[ "$s" == *"${lines[1]}"* ]]
  [[ "$s" == *"${lines[2]%,}"* ]]
}

@test "score on images: one Inception pass gives what fid, kid and is-score give" {
  run -0 --separate-stderr score --json --weights synthetic --fid --kid --is --is-splits 2 --prc --prc-k 1 "$(IMG)" "$(ODD)"
  local s=$output
  [[ "$s" == *'"resize": "torch-fidelity",'* ]]
  [[ "$s" == *'"synthetic_weights": true'* ]]
  [[ "$stderr" == *"score: warning: synthetic Inception weights"* ]]
  run -0 --separate-stderr fid --json --weights synthetic --resize torch-fidelity "$(IMG)" "$(ODD)"
  [[ "$s" == *"${lines[1]}"* ]]
  run -0 --separate-stderr kid --json --weights synthetic "$(IMG)" "$(ODD)"
  [[ "$s" == *"${lines[1]}"* ]]
  run -0 --separate-stderr is-score --json --weights synthetic --splits 2 "$(IMG)"
  [[ "$s" == *"${lines[1]}"* ]]
  [[ "$s" == *"${lines[2]%,}"* ]]
}

@test "score --fid takes REAL statistics; other scores refuse them" {
  run -0 --separate-stderr score --fid "$(M kid_a.npy)" "$(M stats64_compressed.npz)"
  [[ "${lines[0]}" == "frechet_inception_distance: "* ]]
  run -1 --separate-stderr score --prc "$(M kid_a.npy)" "$(M stats64_compressed.npz)"
  [ -z "$output" ]
  [ "$stderr" = "score: $(M stats64_compressed.npz): statistics (mu, sigma) serve --fid only; give images or features" ]
}

@test "score rejects feature sets of different widths in one line" {
  run -1 --separate-stderr score --prc "$(P small_gen.npy)" "$(P wide_real.npy)"
  [ -z "$output" ]
  [ "$stderr" = "score: $(P wide_real.npy): 64-d features; $(P small_gen.npy) gives 8-d" ]
}

@test "score names the input with fewer than k+1 samples" {
  npy_make "$BATS_TEST_TMPDIR/three.npy" '<f4' '3, 8' 24 '\x00\x00\x80\x3f'
  run -1 --separate-stderr score --prc "$BATS_TEST_TMPDIR/three.npy" "$(P small_real.npy)"
  [ -z "$output" ]
  [ "$stderr" = "score: $BATS_TEST_TMPDIR/three.npy: 3 samples: k=3 needs at least 4" ]
  run -1 --separate-stderr score --dc "$(P small_gen.npy)" "$BATS_TEST_TMPDIR/three.npy"
  [ "$stderr" = "score: $BATS_TEST_TMPDIR/three.npy: 3 samples: k=5 needs at least 6" ]
}

@test "score rejects NaN features in one line" {
  npy_make "$BATS_TEST_TMPDIR/nan.npy" '<f4' '8, 2' 16 '\x00\x00\xc0\x7f'
  npy_make "$BATS_TEST_TMPDIR/ok.npy" '<f4' '8, 2' 16 '\x00\x00\x80\x3f'
  run -1 --separate-stderr score --prc --dc "$BATS_TEST_TMPDIR/nan.npy" "$BATS_TEST_TMPDIR/ok.npy"
  [ -z "$output" ]
  [ "$stderr" = "score: $BATS_TEST_TMPDIR/nan.npy: row 0 has a NaN or infinite value" ]
}

@test "score --resize clean: the mode is printed and fid --resize clean agrees" {
  run -0 --separate-stderr score --json --resize clean --weights synthetic --fid "$(IMG)" "$(ODD)"
  local s=$output
  [[ "$s" == *'"resize": "clean",'* ]]
  run -0 --separate-stderr fid --json --resize clean --weights synthetic "$(IMG)" "$(ODD)"
  [[ "$s" == *"${lines[1]}"* ]]
  [[ "$output" == *'"resize": "clean"'* ]]
  run -0 --separate-stderr fid --resize torch-fidelity --weights synthetic "$(IMG)" "$(ODD)"
  [[ "$s" != *"${output#FID:  }"* ]]
}

@test "score rejects an unknown --resize" {
  run -2 --separate-stderr score --resize lanczos a b
  [[ "$stderr" == "score: --resize: bad value: lanczos (want pytorch-fid, torch-fidelity or clean)"* ]]
}

@test "score: --threads and --batch-size change no score" {
  run -0 --separate-stderr score --json -t 1 -b 1 --weights synthetic --fid --kid --prc --prc-k 1 "$(IMG)" "$(ODD)"
  local s=$output
  run -0 --separate-stderr score --json -t 2 -b 50 --weights synthetic --fid --kid --prc --prc-k 1 "$(IMG)" "$(ODD)"
  [ "$output" = "$s" ]
}

@test "kid and is-score --json name the resize mode" {
  run -0 --separate-stderr kid --json --resize clean --subsets 2 --subset-size 20 "$(M kid_a.npy)" "$(M kid_b.npy)"
  [[ "$output" == *'"resize": "clean"'* ]]
  run -0 --separate-stderr is-score --json --weights synthetic --splits 1 "$(IMG)"
  [[ "$output" == *'"resize": "torch-fidelity",'* ]]
}

# sFID goldens: tests/fixtures/gen_sfid.py (mixed_6/conv = Mixed_6d.branch1x1 hooked in the
# PyTorch network, [..., :7] of NHWC, exact low-rank Frechet distance); sfid_want.npy holds
# 1922.7587856211933 (torch-fidelity resize) and 2016.3124199996419 (pytorch-fid)
# |$1 - $2| <= $3 * |$2|
near_rel() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(d <= t * m) }'; }

@test "score --sfid matches guided-diffusion's sFID on the PyTorch transcription" {
  run -0 --separate-stderr score --json --weights synthetic --sfid "$(IMG)" "$(ODD)"
  [[ "$output" == *'"resize": "torch-fidelity",'* ]]
  local v=${lines[1]#*: }
  [[ "${lines[1]}" == '    "spatial_frechet_inception_distance": '* ]]
  near_rel "${v%,}" 1922.7587856211933 1e-5
  run -0 --separate-stderr score --weights synthetic --sfid --resize pytorch-fid "$(IMG)" "$(ODD)"
  [[ "${lines[0]}" == "spatial_frechet_inception_distance: "* ]]
  near_rel "${lines[0]#*: }" 2016.3124199996419 1e-5
  [ "${lines[1]}" = "resize: pytorch-fid" ]
}

@test "score --sfid of a set with itself is 0" {
  run -0 --separate-stderr score --weights synthetic --sfid "$(IMG)" "$(IMG)"
  [[ "${lines[0]}" == "spatial_frechet_inception_distance: "* ]]
  awk -v v="${lines[0]#*: }" 'BEGIN { exit !(v >= 0 && v < 1e-6) }'
}

@test "score --sfid comes from the FID pass: FID unchanged, equal to fid --dims 2023" {
  run -0 --separate-stderr score --json --weights synthetic --fid "$(IMG)" "$(ODD)"
  local f=${lines[1]}
  run -0 --separate-stderr score --json --weights synthetic --fid --sfid "$(IMG)" "$(ODD)"
  [ "${lines[1]}" = "$f" ]
  local s=${lines[2]#*: }
  run -0 --separate-stderr fid --json --weights synthetic --resize torch-fidelity --dims 2023 "$(IMG)" "$(ODD)"
  [ "${lines[1]#*: }" = "$s" ]
  [[ "$output" == *'"dims": 2023,'* ]]
}

@test "fid --dims 2023 saves sFID's spatial features and statistics; they give the same sFID" {
  run -0 --separate-stderr fid --weights synthetic --resize torch-fidelity --dims 2023 "$(IMG)" "$(ODD)"
  local want=$output
  fid --weights synthetic --resize torch-fidelity --dims 2023 --save-features "$(IMG)" "$BATS_TEST_TMPDIR/a.npy" 2>/dev/null
  fid --weights synthetic --resize torch-fidelity --dims 2023 --save-stats "$(ODD)" "$BATS_TEST_TMPDIR/b.npz" 2>/dev/null
  [ "$(npy_shape "$BATS_TEST_TMPDIR/a.npy")" = "3,2023" ]
  run -0 --separate-stderr fid --dims 2023 "$BATS_TEST_TMPDIR/a.npy" "$BATS_TEST_TMPDIR/b.npz"
  [ "$output" = "$want" ]
}

@test "score --sfid refuses a feature cache in one line; all scores of features leave it out" {
  run -1 --separate-stderr score --sfid "$(M kid_a.npy)" "$(M kid_b.npy)"
  [ -z "$output" ]
  [ "$stderr" = "score: $(M kid_a.npy): --sfid needs images: a feature cache has no spatial features" ]
  run -0 --separate-stderr score --kid-subset-size 20 --kid-subsets 2 "$(M kid_a.npy)" "$(M kid_b.npy)"
  [[ "$output" != *spatial* ]]
  fid --weights synthetic --save-stats "$(ODD)" "$BATS_TEST_TMPDIR/s.npz" 2>/dev/null
  run -1 --separate-stderr score --weights synthetic --sfid "$(IMG)" "$BATS_TEST_TMPDIR/s.npz"
  [ -z "$output" ]
  [ "$stderr" = "score: $BATS_TEST_TMPDIR/s.npz: statistics (mu, sigma) serve --fid only; give images or features" ]
}

@test "score --sfid names the input with one image" {
  run -1 --separate-stderr score --weights synthetic --sfid "$(IMG)" "$FIX/inception/img311x300.npy"
  [ -z "$output" ]
  [[ "$stderr" == *"score: $FIX/inception/img311x300.npy: "* ]]
  [ "$(grep -vc 'warning: synthetic' <<< "$stderr")" = 1 ]
}

# FD-DINOv2: tests/fixtures/gen_dinov2.py (a transcription of facebookresearch/dinov2's ViT and
# dgm-eval's transform) wrote small.pth, a small ViT in the official key layout
DW() { echo "$FIX/dinov2/small.pth"; }
D32() { echo "$FIX/dinov2/img32.npy"; }

@test "score --fd-dinov2 matches the PyTorch transcription on a small official-layout .pth" {
  run -0 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" "$(D32)" "$(ODD)"
  [ "${#lines[@]}" -eq 2 ]
  [[ "${lines[0]}" == "fd_dinov2: "* ]]
  near_rel "${lines[0]#*: }" "$(cat "$FIX/dinov2/small_fd.txt")" 1e-4
  [ "${lines[1]}" = "dinov2_preprocessing: dgm-eval (PIL bicubic to 224, ImageNet mean/std)" ]
  [ -z "$stderr" ]
}

@test "score --fd-dinov2 reads \$DINOV2_WEIGHTS, joins --json, and is not in the default set" {
  DINOV2_WEIGHTS="$(DW)" run -0 --separate-stderr score --json --fd-dinov2 --fid --weights synthetic "$(D32)" "$(ODD)"
  [[ "$output" == *'"fd_dinov2": 0.0284'* ]]
  [[ "$output" == *'"frechet_inception_distance": '* ]]
  [[ "$output" == *'"dinov2_preprocessing": "dgm-eval'* ]]
  [[ "$output" == *'"n_gen": 3,'* ]]
  DINOV2_WEIGHTS="$(DW)" run -0 --separate-stderr score --weights synthetic --is-splits 1 --prc-k 1 --dc-k 1 "$(D32)" "$(ODD)"
  [[ "$output" == *"frechet_inception_distance: "* ]]
  [[ "$output" != *fd_dinov2* ]]
}

@test "score --fd-dinov2 of a set with itself is 0; a folder reads as the array" {
  run -0 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" "$(D32)" "$(D32)"
  awk -v v="${lines[0]#*: }" 'BEGIN { exit !(v >= 0 && v < 1e-6) }'
  run -0 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" "$FIX/inception/folder" "$(ODD)"
  local a=$output
  [[ "$a" == "fd_dinov2: "* ]]
  run -0 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" "$(IMG)" "$(ODD)"
  [ "$output" = "$a" ]
}

@test "score --fd-dinov2 without weights says how to get them in one line" {
  [ -e "$REPO/weights/dinov2_vitl14_pretrain.pth" ] && skip "weights/ holds the real file"
  cd "$BATS_TEST_TMPDIR"
  DINOV2_WEIGHTS= run -1 --separate-stderr score --fd-dinov2 "$(D32)" "$(ODD)"
  [ -z "$output" ]
  [ "${#stderr_lines[@]}" -eq 1 ]
  [[ "$stderr" == "score: no DINOv2 weights weights/dinov2_vitl14_pretrain.pth: run \`make weights\` (or download https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth), set DINOV2_WEIGHTS or pass --dinov2-weights" ]]
  DINOV2_WEIGHTS=/nonexistent.pth run -1 --separate-stderr score --fd-dinov2 "$(D32)" "$(ODD)"
  [ -z "$output" ]
  [[ "$stderr" == "score: DINOV2_WEIGHTS=/nonexistent.pth: No such file (run \`make weights\`"* ]]
}

@test "score --fd-dinov2-if-weights: '-' (null in --json) and one warning without weights; computed with them; a bad file is still an error" {
  [ -e "$REPO/weights/dinov2_vitl14_pretrain.pth" ] && skip "weights/ holds the real file"
  cd "$BATS_TEST_TMPDIR"
  DINOV2_WEIGHTS= run -0 --separate-stderr score --fd-dinov2-if-weights --json "$(D32)" "$(ODD)"
  [[ "$output" == *'"fd_dinov2": null,'* ]]
  [ "${#stderr_lines[@]}" -eq 1 ]
  [[ "$stderr" == "score: warning: fd_dinov2 not computed: no DINOv2 weights weights/dinov2_vitl14_pretrain.pth: run \`make weights\`"* ]]
  echo "$output" > fdd.json
  run -0 report --model A fid=1,fdd=fdd.json --model B fid=2,fdd=3
  [[ "$output" == *"| A | 1.00 | - |"* ]]
  [[ "$output" == *"| B | 2.00 | 3.00 |"* ]]
  run -0 --separate-stderr score --fd-dinov2-if-weights --dinov2-weights /nonexistent.pth "$(D32)" "$(ODD)"
  [ "${lines[0]}" = "fd_dinov2: -" ]
  [ "$stderr" = "score: warning: fd_dinov2 not computed: /nonexistent.pth: No such file" ]
  run -0 --separate-stderr score --fd-dinov2-if-weights --dinov2-weights "$(DW)" "$(D32)" "$(ODD)"
  near_rel "${lines[0]#*: }" "$(cat "$FIX/dinov2/small_fd.txt")" 1e-4
  [ -z "$stderr" ]
  run -1 --separate-stderr score --fd-dinov2-if-weights --dinov2-weights "$FIX/bad/dinov2_trunc.pth" "$(D32)" "$(ODD)"
  [ -z "$output" ]
  [[ "$stderr" == "score: $FIX/bad/dinov2_trunc.pth: "* ]]
}

@test "score finds weights/ next to its bin/ folder and in the current folder (make weights' places)" {
  local t=$BATS_TEST_TMPDIR want
  want=$(cat "$FIX/dinov2/small_fd.txt")
  mkdir -p "$t/inst/bin" "$t/inst/weights" "$t/cwd/weights" "$t/elsewhere"
  cp "$(command -v score)" "$t/inst/bin/score"
  cp "$(DW)" "$t/inst/weights/dinov2_vitl14_pretrain.pth"
  cd "$t/elsewhere"
  DINOV2_WEIGHTS= run -0 --separate-stderr "$t/inst/bin/score" --fd-dinov2 "$(D32)" "$(ODD)"
  near_rel "${lines[0]#*: }" "$want" 1e-4
  rm "$t/inst/weights/dinov2_vitl14_pretrain.pth"
  cp "$(DW)" "$t/cwd/weights/dinov2_vitl14_pretrain.pth"
  cd "$t/cwd"
  DINOV2_WEIGHTS= run -0 --separate-stderr "$t/inst/bin/score" --fd-dinov2 "$(D32)" "$(ODD)"
  near_rel "${lines[0]#*: }" "$want" 1e-4
  cd "$t/elsewhere"
  DINOV2_WEIGHTS= run -1 --separate-stderr "$t/inst/bin/score" --fd-dinov2 "$(D32)" "$(ODD)"
  [[ "$stderr" == "score: no DINOv2 weights weights/dinov2_vitl14_pretrain.pth: "* ]]
}

@test "score --fd-dinov2 rejects corrupt, incomplete and foreign weight files in one line" {
  local f
  for f in dinov2_trunc.pth dinov2_missing.pth dinov2_register.pth metrics_inception_missing.pth; do
    run -1 --separate-stderr score --fd-dinov2 --dinov2-weights "$FIX/bad/$f" "$(D32)" "$(ODD)"
    [ -z "$output" ]
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == "score: $FIX/bad/$f: "* ]]
  done
  run -1 --separate-stderr score --fd-dinov2 --dinov2-weights "$FIX/bad/dinov2_missing.pth" "$(D32)" "$(ODD)"
  [[ "$stderr" == *"blocks.0.ls2.gamma"* ]]
  run -1 --separate-stderr score --fd-dinov2 --dinov2-weights "$FIX/bad/dinov2_register.pth" "$(D32)" "$(ODD)"
  [[ "$stderr" == *"register_tokens"* ]]
}

@test "score --fd-dinov2 refuses statistics and caches of other widths in one line" {
  run -1 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" "$(D32)" "$(M stats64_compressed.npz)"
  [ -z "$output" ]
  [ "$stderr" = "score: $(M stats64_compressed.npz): --fd-dinov2 needs images or DINOv2 features: statistics hold neither" ]
  # against images: the network's width (the small ViT's 64)
  run -1 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" "$(P small_gen.npy)" "$(D32)"
  [ -z "$output" ]
  [ "$stderr" = "score: $(P small_gen.npy): 8-d features; FD-DINOv2 wants 64-d DINOv2 features" ]
  # Inception pool3 features (2048-d) are not DINOv2's, against images or another cache
  npy_make "$BATS_TEST_TMPDIR/pool3.npy" '<f4' '3, 2048' 6144 '\x00\x00\x80\x3f'
  run -1 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" "$(D32)" "$BATS_TEST_TMPDIR/pool3.npy"
  [ "$stderr" = "score: $BATS_TEST_TMPDIR/pool3.npy: 2048-d features; FD-DINOv2 wants 64-d DINOv2 features (2048-d are Inception pool3's)" ]
  npy_make "$BATS_TEST_TMPDIR/d.npy" '<f4' '3, 1024' 3072 '\x00\x00\x80\x3f'
  run -1 --separate-stderr score --fd-dinov2 "$BATS_TEST_TMPDIR/d.npy" "$BATS_TEST_TMPDIR/pool3.npy"
  [ -z "$output" ]
  [ "$stderr" = "score: $BATS_TEST_TMPDIR/pool3.npy: 2048-d features; FD-DINOv2 wants 1024-d DINOv2 features (2048-d are Inception pool3's)" ]
  # two caches: ViT-L/14's 1024, whatever network made them (no network runs)
  run -1 --separate-stderr score --fd-dinov2 "$(P small_gen.npy)" "$(P small_real.npy)"
  [ "$stderr" = "score: $(P small_gen.npy): 8-d features; FD-DINOv2 wants 1024-d DINOv2 features" ]
}

@test "score --save-dinov2-features: --fd-dinov2 of the cache on either side prints what the images give" {
  run -0 --separate-stderr score --save-dinov2-features --dinov2-weights "$(DW)" "$(D32)" "$BATS_TEST_TMPDIR/g.npy"
  [ -z "$output" ]
  [ -z "$stderr" ]
  [ "$(npy_shape "$BATS_TEST_TMPDIR/g.npy")" = "3,64" ]
  [[ "$(npyinfo "$BATS_TEST_TMPDIR/g.npy")" == *": float32 (3,64) "* ]]
  # - is stdin as A, stdout as OUT
  run -0 bash -c "score --save-dinov2-features --dinov2-weights '$(DW)' - - < '$(D32)' | cmp - '$BATS_TEST_TMPDIR/g.npy'"
  score --save-dinov2-features --dinov2-weights "$(DW)" "$(ODD)" "$BATS_TEST_TMPDIR/r.npy"
  for j in "" --json; do
    run -0 --separate-stderr score $j --fd-dinov2 --dinov2-weights "$(DW)" "$(D32)" "$(ODD)"
    want=$output
    [[ "$want" == *"fd_dinov2"* ]]
    run -0 --separate-stderr score $j --fd-dinov2 --dinov2-weights "$(DW)" "$BATS_TEST_TMPDIR/g.npy" "$(ODD)"
    [ "$output" = "$want" ]
    run -0 --separate-stderr score $j --fd-dinov2 --dinov2-weights "$(DW)" "$(D32)" "$BATS_TEST_TMPDIR/r.npy"
    [ "$output" = "$want" ]
  done
  # a folder saves as the array it holds
  score --save-dinov2-features --dinov2-weights "$(DW)" "$FIX/inception/folder" "$BATS_TEST_TMPDIR/f.npy"
  run -0 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" "$FIX/inception/folder" "$(ODD)"
  want=$output
  run -0 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" "$BATS_TEST_TMPDIR/f.npy" "$(ODD)"
  [ "$output" = "$want" ]
}

@test "score --save-dinov2-features --shard I/N: npycat of the shards is the whole file" {
  score --save-dinov2-features --dinov2-weights "$(DW)" "$(D32)" "$BATS_TEST_TMPDIR/all.npy"
  score --save-dinov2-features --dinov2-weights "$(DW)" --shard 0/2 "$(D32)" "$BATS_TEST_TMPDIR/s0.npy"
  score --save-dinov2-features --dinov2-weights "$(DW)" --shard 1/2 "$(D32)" "$BATS_TEST_TMPDIR/s1.npy"
  [ "$(npy_shape "$BATS_TEST_TMPDIR/s0.npy")" = "2,64" ]
  npycat -o "$BATS_TEST_TMPDIR/cat.npy" "$BATS_TEST_TMPDIR/s0.npy" "$BATS_TEST_TMPDIR/s1.npy"
  cmp "$BATS_TEST_TMPDIR/all.npy" "$BATS_TEST_TMPDIR/cat.npy"
  # a score needs every image; more shards than images is an error
  run -2 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" --shard 0/2 "$(D32)" "$(ODD)"
  [ -z "$output" ]
  [[ "$stderr" == "score: --shard needs --save-dinov2-features: "* ]]
  run -1 --separate-stderr score --save-dinov2-features --dinov2-weights "$(DW)" --shard 0/4 "$(D32)" "$BATS_TEST_TMPDIR/x.npy"
  [ "$stderr" = "score: $(D32): --shard 0/4: more shards than the 3 images" ]
  [ ! -e "$BATS_TEST_TMPDIR/x.npy" ]
}

@test "score --save-dinov2-features refuses bad input in one line and leaves no file" {
  mkdir "$BATS_TEST_TMPDIR/o" && cd "$BATS_TEST_TMPDIR/o" # bats keeps its own files above
  run -2 --separate-stderr score --save-dinov2-features --fd-dinov2 "$(D32)" out.npy
  [[ "$stderr" == "score: --save-dinov2-features computes no score: give no score option"* ]]
  run -2 --separate-stderr score --save-dinov2-features "$(D32)"
  [[ "$stderr" == "score: A and OUT are required"* ]]
  run -1 --separate-stderr score --save-dinov2-features --dinov2-weights "$(DW)" "$(P small_gen.npy)" out.npy
  [ "$stderr" = "score: $(P small_gen.npy): --save-dinov2-features needs images: this is a feature cache already" ]
  run -1 --separate-stderr score --save-dinov2-features --dinov2-weights "$FIX/bad/dinov2_trunc.pth" "$(D32)" out.npy
  [[ "$stderr" == "score: $FIX/bad/dinov2_trunc.pth: "* ]]
  [ "$(wc -l <<< "$stderr")" = 1 ]
  run -1 --separate-stderr score --save-dinov2-features --dinov2-weights "$(DW)" "$(D32)" nodir/out.npy
  [[ "$stderr" == "score: nodir/out.npy: "* ]]
  [ -z "$(ls -A)" ]
}

@test "score --fd-dinov2 refuses DINOv2 caches with NaN, with one row, in one line" {
  score --save-dinov2-features --dinov2-weights "$(DW)" --shard 0/3 "$(D32)" "$BATS_TEST_TMPDIR/one.npy"
  run -1 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" "$BATS_TEST_TMPDIR/one.npy" "$(ODD)"
  [ -z "$output" ]
  [ "$stderr" = "score: $BATS_TEST_TMPDIR/one.npy: 1 feature row: FD-DINOv2 needs at least 2 for a covariance" ]
  npy_make "$BATS_TEST_TMPDIR/nan.npy" '<f4' '3, 64' 192 '\x00\x00\xc0\x7f'
  run -1 --separate-stderr score --fd-dinov2 --dinov2-weights "$(DW)" "$(D32)" "$BATS_TEST_TMPDIR/nan.npy"
  [ -z "$output" ]
  [ "$stderr" = "score: $BATS_TEST_TMPDIR/nan.npy: row 0 has a NaN or infinite value" ]
  # the second row: the first is fine
  npy_make "$BATS_TEST_TMPDIR/ok.npy" '<f4' '2, 1024' 2048 '\x00\x00\x80\x3f'
  npy_make "$BATS_TEST_TMPDIR/half.npy" '<f4' '2, 1024' 1024 '\x00\x00\x80\x3f'
  printf '\x00\x00\x80\x7f%.0s' $(seq 1024) >> "$BATS_TEST_TMPDIR/half.npy"
  run -1 --separate-stderr score --fd-dinov2 "$BATS_TEST_TMPDIR/ok.npy" "$BATS_TEST_TMPDIR/half.npy"
  [ "$stderr" = "score: $BATS_TEST_TMPDIR/half.npy: row 1 has a NaN or infinite value" ]
}

@test "score --fd-dinov2 of two ViT-L/14 caches equals the images'; Inception scores refuse 1024-d" {
  # synthetic ViT-L weights (about 2 s of CPU an image): 3 + 2 images
  a=(--dinov2-weights synthetic)
  score --save-dinov2-features "${a[@]}" "$(D32)" "$BATS_TEST_TMPDIR/g.npy" 2>/dev/null
  score --save-dinov2-features "${a[@]}" "$(ODD)" "$BATS_TEST_TMPDIR/r.npy" 2>/dev/null
  [ "$(npy_shape "$BATS_TEST_TMPDIR/g.npy")" = "3,1024" ]
  run -0 --separate-stderr score --fd-dinov2 "${a[@]}" "$(D32)" "$(ODD)"
  want=$output
  [[ "$want" == "fd_dinov2: "* ]]
  # no network runs: no weights needed
  DINOV2_WEIGHTS=/nonexistent.pth run -0 --separate-stderr score --fd-dinov2 "$BATS_TEST_TMPDIR/g.npy" "$BATS_TEST_TMPDIR/r.npy"
  [ "$output" = "$want" ]
  [ -z "$stderr" ]
  for s in --fid --kid --is; do
    run -1 --separate-stderr score $s "$BATS_TEST_TMPDIR/g.npy" "$BATS_TEST_TMPDIR/r.npy"
    [ -z "$output" ]
    [ "$stderr" = "score: $BATS_TEST_TMPDIR/g.npy: 1024-d features are DINOv2's (score --save-dinov2-features): $s needs Inception features" ]
  done
  # with a cache, --fd-dinov2 goes alone: a cache holds one network's features
  run -1 --separate-stderr score --fd-dinov2 --fid "$(IMG)" "$BATS_TEST_TMPDIR/r.npy"
  [ "$stderr" = "score: $BATS_TEST_TMPDIR/r.npy: a feature cache holds one network's features: --fd-dinov2 with Inception scores needs images here" ]
  # no score asked: the width-free ones
  run -0 --separate-stderr score --prc-k 1 --dc-k 1 "$BATS_TEST_TMPDIR/g.npy" "$BATS_TEST_TMPDIR/g.npy"
  [ "${lines[0]}" = "precision: 1" ]
  [ "${lines[4]}" = "coverage: 1" ]
}

@test "score --fd-dinov2: --threads and --batch-size change no bit" {
  run -0 --separate-stderr score --json --fd-dinov2 --dinov2-weights "$(DW)" -t 2 "$(D32)" "$(ODD)"
  local a=$output
  run -0 --separate-stderr score --json --fd-dinov2 --dinov2-weights "$(DW)" -t 1 -b 1 "$(D32)" "$(ODD)"
  [ "$output" = "$a" ]
  run -0 --separate-stderr score --json --fd-dinov2 --dinov2-weights "$(DW)" -t 3 -b 2 "$(D32)" "$(ODD)"
  [ "$output" = "$a" ]
}
