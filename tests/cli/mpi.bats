#!/usr/bin/env bats
# mpirun -np K for ddpm-sample and vae-sample: rank 0 gathers, in image order, one output
# that is byte for byte the 1-process output, for K = 2 and 3 (3 oversubscribes 2 cores);
# a rank that fails ends the job with its one line and no output; plain runs never start MPI.
load helpers
setup() {
  setup_tools
  U="$FIX/unet/tiny_st_legacy"
  V="$FIX/vae/init.safetensors"
  D="$BATS_TEST_TMPDIR/w"
  mkdir -p "$D"
}

@test "mpirun ddpm-sample: 2 and 3 ranks write the 1-process bytes, trajectory too" {
  a=(--model "$U" -n 7 --scheduler ddim --steps 3 -S 5)
  ddpm-sample "${a[@]}" -o "$D/one.npy" --save-trajectory "$D/tone.npy"
  run -0 --separate-stderr mpirun_t -np 2 ddpm-sample "${a[@]}" -b 2 -o "$D/two.npy" \
    --save-trajectory "$D/ttwo.npy"
  [ -z "$stderr" ]
  cmp "$D/one.npy" "$D/two.npy"
  cmp "$D/tone.npy" "$D/ttwo.npy"
  mpirun_t -np 3 --oversubscribe ddpm-sample "${a[@]}" -o "$D/three.npy"
  cmp "$D/one.npy" "$D/three.npy"
  [ "$(ls "$D" | tr '\n' ' ')" = "one.npy three.npy tone.npy ttwo.npy two.npy " ]  # no temp left
}

@test "mpirun vae-sample: 2 and 3 ranks write the 1-process bytes" {
  vae-sample --model "$V" -n 11 -S 2 -o "$D/one.npy"
  mpirun_t -np 2 vae-sample --model "$V" -n 11 -S 2 -b 4 -o "$D/two.npy"
  cmp "$D/one.npy" "$D/two.npy"
  mpirun_t -np 3 --oversubscribe vae-sample --model "$V" -n 11 -S 2 -b 2 -o "$D/three.npy"
  cmp "$D/one.npy" "$D/three.npy"
}

@test "mpirun with --shard: the ranks split the shard; the shards join to one run" {
  vae-sample --model "$V" -n 9 -o "$D/one.npy"
  mpirun_t -np 2 vae-sample --model "$V" -n 9 --shard 0/2 -o "$D/s0.npy"
  mpirun_t -np 3 --oversubscribe vae-sample --model "$V" -n 9 --shard 1/2 -o "$D/s1.npy"
  npycat "$D/s0.npy" "$D/s1.npy" | cmp - "$D/one.npy"
}

@test "mpirun: a bad argument ends every rank with one line and no output" {
  run -1 --separate-stderr mpirun_t -np 3 --oversubscribe ddpm-sample --model "$D/none" -n 4 \
    -o "$D/o.npy"
  [ "$stderr" = "ddpm-sample: $D/none: not a model directory" ]
  run -1 --separate-stderr mpirun_t -np 3 --oversubscribe vae-sample --model "$V" -n 2 -o "$D/o.npy"
  [ "$stderr" = "vae-sample: 3 processes for 2 images: want at least one image each" ]
  run -1 --separate-stderr mpirun_t -np 2 vae-sample --model "$V" -n 2
  [ "$stderr" = "vae-sample: under mpirun, write with -o FILE: mpirun passes stdout on as text" ]
  [ -z "$output" ]
  [ -z "$(ls "$D")" ] || { ls -la "$D"; false; }
}

@test "mpirun: one rank that fails (a file missing on its node) ends the job, no output left" {
  # rank 1 alone is given a model that does not exist, as if its node lacked the file
  printf '#!/bin/sh\n[ "$OMPI_COMM_WORLD_RANK" = 1 ] && exec vae-sample --model "%s" "$@"\nexec vae-sample --model "%s" "$@"\n' \
    "$D/gone.safetensors" "$V" > "$BATS_TEST_TMPDIR/node.sh"
  chmod +x "$BATS_TEST_TMPDIR/node.sh"
  run -1 --separate-stderr mpirun_t -np 3 --oversubscribe "$BATS_TEST_TMPDIR/node.sh" -n 6 \
    -o "$D/o.npy"
  [ "$stderr" = "vae-sample: $D/gone.safetensors: No such file or directory" ]
  [ -z "$(ls "$D")" ] || { ls -la "$D"; false; }
}

@test "without mpirun the samplers start no MPI and say nothing of it" {
  run -0 --separate-stderr vae-sample --model "$V" -n 2 -o "$D/a.npy"
  [ -z "$stderr" ]
  # libmpi is loaded under mpirun only (dlopen): a plain run does not even map it
  for t in ddpm-sample vae-sample; do
    run -0 ldd "$(command -v $t)"
    [[ "$output" != *libmpi* ]]
  done
}

@test "mpirun: the output's folder need exist on rank 0's node only" {
  # ranks > 0 start in a folder without out/, as on a node that does not share it
  mkdir -p "$D/out" "$BATS_TEST_TMPDIR/elsewhere"
  printf '#!/bin/sh\n[ "$OMPI_COMM_WORLD_RANK" = 0 ] || cd "%s"\nexec vae-sample "$@"\n' \
    "$BATS_TEST_TMPDIR/elsewhere" > "$BATS_TEST_TMPDIR/node.sh"
  chmod +x "$BATS_TEST_TMPDIR/node.sh"
  vae-sample --model "$V" -n 5 -o "$D/one.npy"
  cd "$D"
  mpirun_t -np 2 "$BATS_TEST_TMPDIR/node.sh" --model "$V" -n 5 -o out/two.npy
  cmp "$D/one.npy" "$D/out/two.npy"
  [ -z "$(ls "$BATS_TEST_TMPDIR/elsewhere")" ]
}
