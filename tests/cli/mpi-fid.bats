#!/usr/bin/env bats
# mpirun -np K for the Inception passes of fid, kid, is-score and score: the ranks split each input's
# images, rank 0 gathers the features in image order, and the file it writes or the score it
# prints is byte for byte the 1-process one, for K = 2 and 3 (3 oversubscribes 2 cores).
# Without MPI, --shard I/N with --save-features writes one shard's features; npycat of the
# shards is the 1-process file. Synthetic weights and 7 tiny images keep it fast.
load helpers
setup() {
  setup_tools
  D="$BATS_TEST_TMPDIR/w"
  mkdir -p "$D"
  I="$BATS_TEST_TMPDIR/i7.npy"
  # 7 images (from the VAE fixture): 3 ranks take 3, 2, 2 of them
  vae-sample --model "$FIX/vae/init.safetensors" -n 7 -o "$I"
  W=(--weights synthetic)
}

@test "mpirun fid --save-features and --save-stats: 2 and 3 ranks write the 1-process bytes" {
  fid "${W[@]}" --save-features "$I" "$D/one.npy" 2>/dev/null
  fid "${W[@]}" --save-stats "$I" "$D/one.npz" 2>/dev/null
  run -0 --separate-stderr mpirun_t -np 2 fid "${W[@]}" -b 2 --save-features "$I" "$D/two.npy"
  # one warning, from rank 0 only
  [ "$stderr" = "fid: warning: synthetic Inception weights: scores are NOT comparable with published ones" ]
  cmp "$D/one.npy" "$D/two.npy"
  mpirun_t -np 3 --oversubscribe fid "${W[@]}" --save-features "$I" "$D/three.npy" 2>/dev/null
  cmp "$D/one.npy" "$D/three.npy"
  mpirun_t -np 2 fid "${W[@]}" --save-stats "$I" "$D/two.npz" 2>/dev/null
  cmp "$D/one.npz" "$D/two.npz"
  mpirun_t -np 3 --oversubscribe fid "${W[@]}" -b 3 --save-stats "$I" "$D/three.npz" 2>/dev/null
  cmp "$D/one.npz" "$D/three.npz"
  [ "$(ls "$D" | tr '\n' ' ')" = "one.npy one.npz three.npy three.npz two.npy two.npz " ]  # no temp left
}

@test "mpirun fid, kid, is-score: the scores of 2 and 3 ranks are the 1-process ones" {
  fid "${W[@]}" --save-features "$FIX/inception/img32.npy" "$D/b.npy" 2>/dev/null
  # images on one side, a feature cache on the other (read by rank 0 alone)
  one=$(fid "${W[@]}" --json "$I" "$D/b.npy" 2>/dev/null)
  run -0 --separate-stderr mpirun_t -np 2 fid "${W[@]}" --json "$I" "$D/b.npy"
  [ "$output" = "$one" ]
  # images on both sides: both passes split
  one=$(fid "${W[@]}" "$I" "$FIX/inception/img32.npy" 2>/dev/null)
  run -0 --separate-stderr mpirun_t -np 3 --oversubscribe fid "${W[@]}" "$I" "$FIX/inception/img32.npy"
  [ "$output" = "$one" ]
  one=$(kid "${W[@]}" --json --subsets 5 "$I" "$FIX/inception/img32.npy" 2>/dev/null)
  for np in "-np 2" "-np 3 --oversubscribe"; do
    run -0 --separate-stderr mpirun_t $np kid "${W[@]}" --json --subsets 5 "$I" "$FIX/inception/img32.npy"
    [ "$output" = "$one" ]
  done
  one=$(is-score "${W[@]}" --json --splits 2 "$I" 2>/dev/null)
  for np in "-np 2" "-np 3 --oversubscribe"; do
    run -0 --separate-stderr mpirun_t $np is-score "${W[@]}" --json --splits 2 -b 2 "$I"
    [ "$output" = "$one" ]
  done
}

@test "mpirun score: every score of 2 and 3 ranks, sFID's spatial features too, is the 1-process output" {
  J="$BATS_TEST_TMPDIR/j8.npy"
  vae-sample --model "$FIX/vae/init.safetensors" -n 8 --seed 3 -o "$J"
  a=("${W[@]}" --kid-subsets 5 --is-splits 2)
  one=$(score "${a[@]}" --json "$I" "$J" 2>/dev/null)
  [[ "$one" == *'"spatial_frechet_inception_distance": '* ]]
  [[ "$one" == *'"density": '* ]]
  onerr=$(score "${a[@]}" --json "$I" "$J" 2>&1 >/dev/null)
  for np in "-np 2" "-np 3 --oversubscribe"; do
    run -0 --separate-stderr mpirun_t $np score "${a[@]}" --json -b 2 "$I" "$J"
    [ "$output" = "$one" ]
    [ "$stderr" = "$onerr" ]  # rank 0's warning and note, once
  done
  # the text output, and a feature cache on one side (read by rank 0 alone)
  kid "${W[@]}" --save-features "$J" "$D/j.npy" 2>/dev/null
  one=$(score "${a[@]}" --fid --kid --prc "$I" "$D/j.npy" 2>/dev/null)
  run -0 --separate-stderr mpirun_t -np 3 --oversubscribe score "${a[@]}" --fid --kid --prc "$I" "$D/j.npy"
  [ "$output" = "$one" ]
  # stdin reaches rank 0 only; more processes than images
  run -1 --separate-stderr mpirun_t -np 2 score "${W[@]}" - "$J" < "$I"
  [ "$stderr" = "score: -: under mpirun, read a file: mpirun passes stdin to rank 0 only" ]
  run -1 --separate-stderr mpirun_t -np 3 --oversubscribe score "${W[@]}" "$FIX/inception/img40x24.npy" "$J"
  [ "$stderr" = "score: $FIX/inception/img40x24.npy: 3 processes for 2 images: want at least one image each" ]
  [ -z "$output" ]
}

@test "mpirun score --fd-dinov2: the ranks split the DINOv2 pass, the 1-process output at 2 and 3 ranks" {
  # ViT-L with synthetic weights (about 2 s of CPU an image): 3 images a side
  A="$BATS_TEST_TMPDIR/a3.npy" B="$BATS_TEST_TMPDIR/b3.npy"
  vae-sample --model "$FIX/vae/init.safetensors" -n 3 -o "$A"
  vae-sample --model "$FIX/vae/init.safetensors" -n 3 --seed 3 -o "$B"
  a=(--fd-dinov2 --dinov2-weights synthetic --json -t 1)
  one=$(score "${a[@]}" "$A" "$B" 2>/dev/null)
  [[ "$one" == *'"fd_dinov2": '* ]]
  for np in "-np 2" "-np 3 --oversubscribe"; do
    run -0 --separate-stderr mpirun_t $np score "${a[@]}" "$A" "$B"
    [ "$output" = "$one" ]
    # rank 0's warning, once
    [ "$stderr" = "score: warning: synthetic DINOv2 weights: FD-DINOv2 is NOT comparable with published values" ]
  done
  # with the Inception scores, a folder on one side, the small official-layout ViT
  a=(--fd-dinov2 --dinov2-weights "$FIX/dinov2/small.pth" "${W[@]}" --fid --kid --kid-subsets 5)
  one=$(score "${a[@]}" "$FIX/inception/folder" "$I" 2>/dev/null)
  run -0 --separate-stderr mpirun_t -np 3 --oversubscribe score "${a[@]}" "$FIX/inception/folder" "$I"
  [ "$output" = "$one" ]
  # every rank runs its share: rank 1 alone lacks the weights, as if its node had no copy,
  # and its line ends the job
  printf '#!/bin/sh\n[ "$OMPI_COMM_WORLD_RANK" = 1 ] && exec score --dinov2-weights "%s" "$@"\nexec score --dinov2-weights "%s" "$@"\n' \
    "$D/gone.pth" "$FIX/dinov2/small.pth" > "$BATS_TEST_TMPDIR/node.sh"
  chmod +x "$BATS_TEST_TMPDIR/node.sh"
  run -1 --separate-stderr mpirun_t -np 2 "$BATS_TEST_TMPDIR/node.sh" --fd-dinov2 "$I" "$A"
  [ "$(grep -cxF "score: $D/gone.pth: No such file or directory" <<< "$stderr")" = 1 ] ||
    { echo "$stderr"; false; }
  [ -z "$output" ]
}

@test "mpirun score --save-dinov2-features: 2 and 3 ranks write the 1-process bytes, of a shard too" {
  a=(--save-dinov2-features --dinov2-weights "$FIX/dinov2/small.pth")
  score "${a[@]}" "$I" "$D/one.npy"
  score "${a[@]}" --shard 1/2 "$I" "$D/one-s1.npy"
  run -0 --separate-stderr mpirun_t -np 2 score "${a[@]}" "$I" "$D/two.npy"
  [ -z "$output" ]
  [ -z "$stderr" ]
  cmp "$D/one.npy" "$D/two.npy"
  mpirun_t -np 3 --oversubscribe score "${a[@]}" "$I" "$D/three.npy"
  cmp "$D/one.npy" "$D/three.npy"
  mpirun_t -np 3 --oversubscribe score "${a[@]}" --shard 1/2 "$I" "$D/three-s1.npy"
  cmp "$D/one-s1.npy" "$D/three-s1.npy"
  run -1 --separate-stderr mpirun_t -np 2 score "${a[@]}" "$I" -
  [ -z "$output" ]
  [[ "$stderr" == *"score: under mpirun, write with -o FILE"* ]]
}

@test "mpirun kid --save-features and a folder of images: the 1-process bytes; --skip-bad" {
  kid "${W[@]}" --save-features "$FIX/inception/folder" "$D/one.npy" 2>/dev/null
  mpirun_t -np 3 --oversubscribe kid "${W[@]}" --save-features "$FIX/inception/folder" "$D/three.npy" 2>/dev/null
  cmp "$D/one.npy" "$D/three.npy"
  # --skip-bad: every rank drops the bad file, rank 0 alone says so
  M="$BATS_TEST_TMPDIR/mixed"
  mkdir "$M"
  cp "$FIX/img/dir/a.jpg" "$FIX/img/dir/b.png" "$FIX/img/dir/c_gray.jpg" "$M/"
  cp "$FIX/bad/img_corrupt_data.jpg" "$M/b2.jpg"
  one=$(fid "${W[@]}" --skip-bad "$M" "$FIX/inception/img32.npy" 2>/dev/null)
  run -0 --separate-stderr mpirun_t -np 2 fid "${W[@]}" --skip-bad "$M" "$FIX/inception/img32.npy"
  [ "$output" = "$one" ]
  [ "${stderr_lines[0]}" = "fid: $M/b2.jpg: corrupt JPEG: premature end of data segment (skipped)" ]
  [ "${stderr_lines[1]}" = "fid: $M: skipped 1 of 4 images" ]
  [ "${#stderr_lines[@]}" -eq 5 ]  # then the synthetic-weights and the two N < dims warnings
}

@test "mpirun: a rank reads only its rows of an .npy: a 103 GB file, 4 GB of address space a rank" {
  # 131072 images of 512 x 512, zeros (sparse: no disk); --shard 0/65536 is images 0 and 1,
  # one a rank
  S="$BATS_TEST_TMPDIR/sparse.npy"
  npy_make "$S" '|u1' '131072, 512, 512, 3' 0 ''
  truncate -s $(( $(stat -c %s "$S") + 131072 * 512 * 512 * 3 )) "$S"
  npy_make "$D/z.npy" '|u1' '2, 512, 512, 3' 0 ''
  truncate -s $(( $(stat -c %s "$D/z.npy") + 2 * 512 * 512 * 3 )) "$D/z.npy"
  fid "${W[@]}" --save-features "$D/z.npy" "$D/one.npy" 2>/dev/null
  # a rank that loaded the whole array would need 103 GB
  printf '#!/bin/sh\nulimit -v 4000000\nexec fid "$@"\n' > "$BATS_TEST_TMPDIR/node.sh"
  chmod +x "$BATS_TEST_TMPDIR/node.sh"
  run -0 --separate-stderr mpirun_t -np 2 "$BATS_TEST_TMPDIR/node.sh" "${W[@]}" --save-features \
    --shard 0/65536 "$S" "$D/two.npy"
  cmp "$D/one.npy" "$D/two.npy"
  # a file cut short is still refused whole, whichever rows a rank reads
  truncate -s -1 "$S"
  run -1 --separate-stderr mpirun_t -np 2 "$BATS_TEST_TMPDIR/node.sh" "${W[@]}" --save-features \
    --shard 0/65536 "$S" "$D/three.npy"
  [ "$(grep -cxF "fid: $S: truncated: want 103079215104 bytes, got 103079215103" <<< "$stderr")" = 1 ] ||
    { echo "$stderr"; false; }
  [ ! -e "$D/three.npy" ]
}

@test "--shard I/N --save-features: npycat of the shards is the 1-process file, and its FID the same" {
  fid "${W[@]}" --save-features "$I" "$D/one.npy" 2>/dev/null
  for i in 0 1 2; do
    fid "${W[@]}" -b 2 --save-features --shard $i/3 "$I" "$D/s$i.npy" 2>/dev/null
  done
  [ "$(npy_shape "$D/s0.npy") $(npy_shape "$D/s2.npy")" = "3,2048 2,2048" ]
  npycat -o "$D/all.npy" "$D/s0.npy" "$D/s1.npy" "$D/s2.npy"
  cmp "$D/one.npy" "$D/all.npy"
  one=$(fid "${W[@]}" "$I" "$FIX/inception/img32.npy" 2>/dev/null)
  run -0 --separate-stderr fid "${W[@]}" "$D/all.npy" "$FIX/inception/img32.npy"
  [ "$output" = "$one" ]
  # kid's shards (torch-fidelity's resize by default), the ranks of mpirun splitting one
  kid "${W[@]}" --save-features "$I" "$D/kone.npy" 2>/dev/null
  kid "${W[@]}" --save-features --shard 0/2 "$I" "$D/k0.npy" 2>/dev/null
  mpirun_t -np 2 kid "${W[@]}" --save-features --shard 1/2 "$I" "$D/k1.npy" 2>/dev/null
  npycat "$D/k0.npy" "$D/k1.npy" | cmp - "$D/kone.npy"
  # is-score of kid's features (torch-fidelity's preprocessing, as is-score's) is its score
  one=$(is-score "${W[@]}" --json --splits 2 "$I" 2>/dev/null)
  run -0 --separate-stderr is-score "${W[@]}" --json --splits 2 "$D/kone.npy"
  [ "$output" = "$one" ]
}

@test "--shard: bad values, more shards than images, and scores that need every image" {
  for s in 2/2 -1/2 1 a/b 0/0 0/65537 1/; do
    run -2 --separate-stderr fid "${W[@]}" --save-features --shard $s "$I" "$D/o.npy"
    [ "${stderr%%$'\n'*}" = "fid: --shard: bad value: $s (want I/N with 0 <= I < N <= 65536)" ]
    run -2 --separate-stderr kid "${W[@]}" --save-features --shard $s "$I" "$D/o.npy"
    [ "${stderr%%$'\n'*}" = "kid: --shard: bad value: $s (want I/N with 0 <= I < N <= 65536)" ]
  done
  run -1 --separate-stderr fid "${W[@]}" --save-features --shard 0/8 "$I" "$D/o.npy"
  [ "$stderr" = "fid: $I: --shard 0/8: more shards than the 7 images" ]
  run -2 --separate-stderr fid "${W[@]}" --shard 0/2 "$I" "$I"
  [ "$stderr" = "fid: --shard needs --save-features: FID needs all the images; join the shards' features with npycat, then give fid the joined file" ]
  run -2 --separate-stderr fid "${W[@]}" --save-stats --shard 0/2 "$I" "$D/o.npz"
  [ "$stderr" = "fid: --shard needs --save-features: the statistics need all the images; join the shards' features with npycat, then give fid the joined file" ]
  run -2 --separate-stderr kid "${W[@]}" --shard 0/2 "$I" "$I"
  [ "$stderr" = "kid: --shard needs --save-features: KID needs all the images; join the shards' features with npycat, then give kid the joined file" ]
  run -2 --separate-stderr is-score "${W[@]}" --shard 0/2 "$I"
  [[ "$stderr" = "is-score: --shard: the Inception Score needs all the images at once; "* ]]
  [ -z "$output" ]
  [ -z "$(ls "$D")" ] || { ls -la "$D"; false; }
}

@test "mpirun: errors end every rank with one line and no output" {
  run -1 --separate-stderr mpirun_t -np 3 --oversubscribe fid "${W[@]}" --save-features \
    "$FIX/inception/img40x24.npy" "$D/o.npy"
  [ "$stderr" = "fid: $FIX/inception/img40x24.npy: 3 processes for 2 images: want at least one image each" ]
  run -1 --separate-stderr mpirun_t -np 2 fid "${W[@]}" --save-features "$I" -
  [ "$stderr" = "fid: under mpirun, write with -o FILE: mpirun passes stdout on as text" ]
  run -1 --separate-stderr mpirun_t -np 2 is-score "${W[@]}" - < "$I"
  [ "$stderr" = "is-score: -: under mpirun, read a file: mpirun passes stdin to rank 0 only" ]
  run -1 --separate-stderr mpirun_t -np 2 kid "${W[@]}" --save-features "$D/none.npy" "$D/o.npy"
  [ "$stderr" = "kid: $D/none.npy: No such file or directory" ]
  # rank 1 alone lacks the input, as if its node had no copy
  printf '#!/bin/sh\n[ "$OMPI_COMM_WORLD_RANK" = 1 ] && exec fid --save-features "%s" "$@"\nexec fid --save-features "%s" "$@"\n' \
    "$D/gone.npy" "$I" > "$BATS_TEST_TMPDIR/node.sh"
  chmod +x "$BATS_TEST_TMPDIR/node.sh"
  run -1 --separate-stderr mpirun_t -np 3 --oversubscribe "$BATS_TEST_TMPDIR/node.sh" \
    --weights synthetic "$D/o.npy"
  # rank 1's line, once; the order of what other ranks print as they are ended is not fixed
  [ "$(grep -cxF "fid: $D/gone.npy: No such file or directory" <<< "$stderr")" = 1 ] ||
    { echo "$stderr"; false; }
  [ -z "$output" ]
  [ -z "$(ls "$D")" ] || { ls -la "$D"; false; }
}

@test "without mpirun fid, kid, is-score and score start no MPI and say nothing of it" {
  run -0 --separate-stderr fid --dims 64 "$FIX/metrics/feat64_a.npy" "$FIX/metrics/feat64_b.npy"
  [ -z "$stderr" ]
  for t in fid kid is-score score; do
    run -0 ldd "$(command -v $t)"
    [[ "$output" != *libmpi* ]]
  done
}
