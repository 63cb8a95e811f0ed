#!/usr/bin/env bats
# mpirun -np K ddpm-train: data-parallel training. K = 2 and 3 (3 oversubscribes 2 cores)
# train the 1-process model to float rounding (the sums are in another order), the same bytes
# again for the same K; a checkpoint resumes with another K; --gradient-accumulation-steps 2
# at batch B is batch 2B; a rank that fails or is killed ends the job, nothing half written.
#
# The tolerance is per tensor, relative to its largest value (st_close). The attention key
# biases are left out: softmax ignores a shift of the keys, so their gradient is float noise
# (~1e-10) that Adam normalises into lr-sized steps of either sign, different for every
# summation order (test_ddpm_train.c leaves them out of the PyTorch comparison likewise).
load helpers
setup() {
  setup_tools
  G="$FIX/unet_grad"
  D="$BATS_TEST_TMPDIR/w"
  mkdir -p "$D"
  # the tiny 16x16 UNet and 10 images: batch 4 is 3 steps an epoch (the last of 2)
  TRAIN=(--data "$G/train16.npy" --train-batch-size 4 --lr-warmup-steps 2 --seed 5 -q)
  M=diffusion_pytorch_model.safetensors
  KEYB='key\.bias$'
}

# node.sh: each rank writes its pid to $D/../pid.RANK, then runs ddpm-train
node_script() {
  printf '#!/bin/sh\necho $$ > "%s/pid.$OMPI_COMM_WORLD_RANK"\nexec ddpm-train "$@"\n' \
    "$BATS_TEST_TMPDIR" > "$BATS_TEST_TMPDIR/node.sh"
  chmod +x "$BATS_TEST_TMPDIR/node.sh"
}

@test "mpirun ddpm-train: 2 and 3 ranks train the 1-process model; the same K, the same bytes" {
  a=("${TRAIN[@]}" --init "$G/tiny" --max-steps 10 --checkpointing-steps 10 --use-ema --random-flip)
  ddpm-train "${a[@]}" -o "$D/one"
  run -0 --separate-stderr mpirun_t -np 2 ddpm-train "${a[@]}" -o "$D/two"
  [ -z "$stderr" ] && [ -z "$output" ]
  mpirun_t -np 3 --oversubscribe ddpm-train "${a[@]}" -o "$D/three"
  for k in two three; do
    st_close "$D/one/$M" "$D/$k/$M" 1e-5 "$KEYB"                            # EMA weights
    st_close "$D/one/checkpoint-10/$M" "$D/$k/checkpoint-10/$M" 1e-5 "$KEYB"  # raw weights
  done
  mpirun_t -np 3 --oversubscribe ddpm-train "${a[@]}" -o "$D/again"
  cmp "$D/three/$M" "$D/again/$M"
  cmp "$D/three/checkpoint-10/$M" "$D/again/checkpoint-10/$M"
  # rank 0 alone wrote, and nothing of the number of processes went into the checkpoint
  [ "$(ls "$D/two" | xargs)" = "checkpoint-10 config.json $M model_index.json scheduler_config.json" ]
  [ "$(ls -a "$D" | grep -c -e tmp -e old -e eval)" -eq 0 ]
  head -c 400 "$D/two/checkpoint-10/training_state.safetensors" | grep -aq '"step":"10"'
  ! head -c 400 "$D/two/checkpoint-10/training_state.safetensors" | grep -aqi -e process -e rank
}

@test "mpirun ddpm-train: --gradient-accumulation-steps 2 at batch 2 is batch 4, in 1 and 2 processes" {
  a=("${TRAIN[@]}" --init "$G/tiny" --max-steps 7 --use-ema --random-flip)
  ddpm-train "${a[@]}" -o "$D/b4" --log "$D/b4.csv"
  ddpm-train "${a[@]}" --train-batch-size 2 --gradient-accumulation-steps 2 -o "$D/a2" \
    --log "$D/a2.csv"
  mpirun_t -np 2 ddpm-train "${a[@]}" --train-batch-size 2 --gradient-accumulation-steps 2 \
    -o "$D/a2n2"
  st_close "$D/b4/$M" "$D/a2/$M" 1e-5 "$KEYB"
  st_close "$D/b4/$M" "$D/a2n2/$M" 1e-5 "$KEYB"
  # the log counts optimizer steps: 7 rows, 3 an epoch (4 + 4 + 2 images), one lr schedule
  [ "$(wc -l < "$D/a2.csv")" -eq 8 ]
  diff <(cut -d, -f1,2,4 "$D/b4.csv") <(cut -d, -f1,2,4 "$D/a2.csv")
}

@test "mpirun ddpm-train: a checkpoint resumes with another number of processes" {
  a=("${TRAIN[@]}" --max-steps 7 --checkpointing-steps 3 --use-ema --random-flip)
  ddpm-train "${a[@]}" --init "$G/tiny" -o "$D/full1"
  mpirun_t -np 2 ddpm-train "${a[@]}" --init "$G/tiny" -o "$D/full2"
  # the same K: bit for bit the uninterrupted run
  mkdir "$D/r2" && cp -r "$D/full2/checkpoint-3" "$D/r2/"
  mpirun_t -np 2 ddpm-train "${a[@]}" -o "$D/r2" --resume-from-checkpoint latest
  cmp "$D/full2/$M" "$D/r2/$M"
  # 2 -> 3 processes, and 2 -> 1: the 1-process run to float rounding
  mkdir "$D/r3" && cp -r "$D/full2/checkpoint-3" "$D/r3/"
  run -0 --separate-stderr mpirun_t -np 3 --oversubscribe ddpm-train "${a[@]}" -o "$D/r3" \
    --resume-from-checkpoint latest
  [ -z "$stderr" ]
  st_close "$D/full1/$M" "$D/r3/$M" 1e-5 "$KEYB"
  st_close "$D/full1/checkpoint-6/$M" "$D/r3/checkpoint-6/$M" 1e-5 "$KEYB"
  ddpm-train "${a[@]}" -o "$D/r1" --resume-from-checkpoint "$D/full2/checkpoint-3"
  st_close "$D/full1/$M" "$D/r1/$M" 1e-5 "$KEYB"
  # the batch and the accumulation must stay (they decide which images a step takes)
  run -1 --separate-stderr mpirun_t -np 2 ddpm-train "${a[@]}" -o "$D/r2" --max-steps 9 \
    --gradient-accumulation-steps 2 --resume-from-checkpoint latest
  [ "$stderr" = "ddpm-train: $D/r2/checkpoint-6: trained with --seed 5 --train-batch-size 4 --gradient-accumulation-steps 1; resume with the same" ]
}

@test "mpirun ddpm-train: a rank without its --data, or with other data, ends the job; nothing written" {
  printf '#!/bin/sh\n[ "$OMPI_COMM_WORLD_RANK" = 1 ] && exec ddpm-train --data "%s" "$@"\nexec ddpm-train --data "%s" "$@"\n' \
    "$D/gone.npy" "$G/train16.npy" > "$BATS_TEST_TMPDIR/gone.sh"
  npy_make "$BATS_TEST_TMPDIR/other.npy" '|u1' '10, 16, 16, 3' 7680 '\x07'
  printf '#!/bin/sh\n[ "$OMPI_COMM_WORLD_RANK" = 2 ] && exec ddpm-train --data "%s" "$@"\nexec ddpm-train --data "%s" "$@"\n' \
    "$BATS_TEST_TMPDIR/other.npy" "$G/train16.npy" > "$BATS_TEST_TMPDIR/other.sh"
  chmod +x "$BATS_TEST_TMPDIR/gone.sh" "$BATS_TEST_TMPDIR/other.sh"
  a=(--train-batch-size 4 -q --init "$G/tiny" -o "$D/o" --max-steps 3 --log "$D/log.csv")
  run -1 --separate-stderr mpirun_t -np 3 --oversubscribe "$BATS_TEST_TMPDIR/gone.sh" "${a[@]}"
  [ "$stderr" = "ddpm-train: $D/gone.npy: No such file or directory" ]
  run -1 --separate-stderr mpirun_t -np 3 --oversubscribe "$BATS_TEST_TMPDIR/other.sh" "${a[@]}"
  [[ "$stderr" == "ddpm-train: $BATS_TEST_TMPDIR/other.npy: not the --data of rank 0 (rank 2: 10 images, hash "*")" ]]
  # checked once, on rank 0, before any rank starts
  run -1 --separate-stderr mpirun_t -np 3 --oversubscribe ddpm-train --data "$G/train16.npy" \
    "${a[@]}" --train-batch-size 2
  [ "$stderr" = "ddpm-train: 3 processes for --train-batch-size 2: want at least one image each" ]
  run -2 --separate-stderr mpirun_t -np 2 ddpm-train --data "$G/train16.npy" "${a[@]}" --bogus
  [ "${stderr%%$'\n'*}" = "ddpm-train: unrecognized option '--bogus'" ]
  [ -z "$output" ]
  [ -z "$(ls "$D")" ] || { ls -la "$D"; false; }
}

@test "mpirun ddpm-train: SIGINT to one rank stops every rank after the same step, with a checkpoint" {
  node_script
  a=("${TRAIN[@]}" --init "$G/tiny" --max-steps 100000 --checkpointing-steps 1000000)
  mpirun_t -np 2 "$BATS_TEST_TMPDIR/node.sh" "${a[@]}" -o "$D/o" --log "$D/log.csv" \
    2> "$BATS_TEST_TMPDIR/err" &
  pid=$!
  # a first step logged: every rank has set its signal handlers (they do before the first
  # step, which needs them all)
  for i in $(seq 600); do [ "$(cat "$D/log.csv" 2> /dev/null | wc -l)" -ge 3 ] && break; sleep 0.1; done
  kill -INT "$(cat "$BATS_TEST_TMPDIR/pid.1")"
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 130 ]
  step=$(ls -d "$D"/o/checkpoint-* | sed 's/.*checkpoint-//')
  [ "$(cat "$BATS_TEST_TMPDIR/err")" = "ddpm-train: interrupted at step $step of 100000; saved $D/o/checkpoint-$step (continue with --resume-from-checkpoint latest)" ]
  [ -s "$D/o/$M" ]
  # and it resumes, with another K
  mpirun_t -np 3 --oversubscribe ddpm-train "${a[@]}" -o "$D/o" --max-steps $((step + 2)) \
    --log "$D/log.csv" --resume-from-checkpoint latest
  [ "$(tail -n 1 "$D/log.csv" | cut -d, -f1)" = $((step + 2)) ]
  [ -d "$D/o/checkpoint-$step" ]
  [ -z "$(ls -a "$D/o" | grep -e tmp -e old)" ]
}

@test "mpirun ddpm-train: kill -9 of one rank ends the job; the last checkpoint resumes" {
  node_script
  a=("${TRAIN[@]}" --init "$G/tiny" --checkpointing-steps 1 --checkpoints-total-limit 2)
  mpirun_t -np 2 "$BATS_TEST_TMPDIR/node.sh" "${a[@]}" --max-steps 100000 -o "$D/o" \
    2> "$BATS_TEST_TMPDIR/err" &
  pid=$!
  for i in $(seq 100); do [ -n "$(ls "$D/o" 2> /dev/null | grep checkpoint-)" ] && break; sleep 0.1; done
  sleep 0.5
  kill -9 "$(cat "$BATS_TEST_TMPDIR/pid.1")"
  rc=0
  wait "$pid" || rc=$?
  # mpirun ends the other ranks and exits 128 + 9; -q keeps its notice off, and rank 0,
  # ended by mpirun's SIGTERM, says so in one line
  [ "$rc" -eq 137 ]
  [ "$(cat "$BATS_TEST_TMPDIR/err")" = "ddpm-train: ended by mpirun: a process was killed or failed, or mpirun was interrupted; the newest checkpoint in $D/o resumes (--resume-from-checkpoint latest)" ]
  run pgrep -f -- "-o $D/o"
  [ -z "$output" ]
  [ ! -e "$D/o/$M" ]   # no final model: the run did not end
  last=$(ls "$D/o" | sed -n 's/^checkpoint-\([0-9]*\)$/\1/p' | sort -n | tail -1)
  [ -n "$last" ]
  # the newest complete checkpoint loads (a half-written one is swept), in 1 process too
  run -0 --separate-stderr ddpm-train "${TRAIN[@]}" --checkpointing-steps 1 \
    --checkpoints-total-limit 2 -o "$D/o" --max-steps $((last + 2)) --resume-from-checkpoint latest
  [ -s "$D/o/$M" ]
  [ -z "$(ls "$D/o" | grep -e '\.tmp-' -e '\.old-')" ]
}

@test "mpirun ddpm-train: --eval-every and --final-eval-json are sharded; the 1-process scores" {
  # 5 samples and 10 reference images: 3 ranks take 2, 2, 1 samples and 4, 3, 3 images
  e=(--eval-samples 5 --eval-steps 2 --eval-ref "$G/train16.npy" --eval-weights synthetic)
  export TMPDIR="$BATS_TEST_TMPDIR/tmp"  # where ranks > 0 work (this test's only)
  mkdir "$TMPDIR"
  run -0 --separate-stderr mpirun_t -np 3 --oversubscribe ddpm-train "${TRAIN[@]}" "${e[@]}" \
    --init "$G/tiny" --use-ema --max-steps 3 --eval-every 2 --checkpointing-steps 3 -o "$D/t" \
    --log "$D/t.csv"
  [ -z "$output" ]
  [[ "$(sed -n 3p "$D/t.csv" | cut -d, -f1,7,8)" =~ ^2,[0-9.e+]+,[0-9.e+]+$ ]]
  # the evaluation's warnings (synthetic weights, N below the dimension) are said once, by
  # rank 0, as many as in one process
  warned=$(grep -c 'warning:' <<< "$stderr")
  run -0 --separate-stderr ddpm-train "${TRAIN[@]}" "${e[@]}" --init "$G/tiny" --use-ema \
    --max-steps 3 --eval-every 2 --checkpointing-steps 3 -o "$D/t1"
  [ "$warned" -gt 0 ]
  [ "$warned" = "$(grep -c 'warning:' <<< "$stderr")" ]
  # K processes train other floats than 1 (rounding): the scores of the same weights,
  # checkpoint-3 scored by 1, 2 and 3 processes (a resumed run with no step left to train)
  for k in 1 2 3; do
    mkdir "$D/r$k" && cp -r "$D/t/checkpoint-3" "$D/r$k/"
    c=(ddpm-train "${TRAIN[@]}" "${e[@]}" --use-ema --max-steps 3 -o "$D/r$k"
       --resume-from-checkpoint latest --final-eval-json "$D/r$k.json")
    if [ $k = 1 ]; then "${c[@]}" 2> /dev/null; else mpirun_t -np $k --oversubscribe "${c[@]}" 2> /dev/null; fi
  done
  grep -q '"fid": [0-9]' "$D/r1.json"
  grep -q '"step": 3' "$D/r1.json"
  diff "$D/r1.json" "$D/r2.json"
  diff "$D/r1.json" "$D/r3.json"
  # no temporary files left (the evaluation runs in memory)
  [ -z "$(ls -a "$D"/* | grep eval)" ]
  [ -z "$(ls -A "$TMPDIR")" ]
}

@test "mpirun ddpm-train: an evaluation that fails on one rank ends the job with its line" {
  printf '#!/bin/sh\n[ "$OMPI_COMM_WORLD_RANK" = 1 ] && exec ddpm-train --eval-ref "%s" "$@"\nexec ddpm-train --eval-ref "%s" "$@"\n' \
    "$D/gone.npy" "$G/train16.npy" > "$BATS_TEST_TMPDIR/gone.sh"
  chmod +x "$BATS_TEST_TMPDIR/gone.sh"
  export TMPDIR="$BATS_TEST_TMPDIR/tmp"
  mkdir "$TMPDIR"
  run -1 --separate-stderr mpirun_t -np 2 \
    "$BATS_TEST_TMPDIR/gone.sh" "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --max-steps 2 \
    --eval-every 1 --eval-samples 4 --eval-steps 2 --eval-weights synthetic
  # the failed rank's line, once
  [ "$(grep '^ddpm-train:' <<< "$stderr")" = "ddpm-train: evaluation: $D/gone.npy: No such file or directory (process 1 of 2)" ]
  [ -z "$output" ]
  [ -z "$(ls -A "$BATS_TEST_TMPDIR/tmp")" ]
  # more processes than samples: refused before the training
  run -1 --separate-stderr mpirun_t -np 3 --oversubscribe ddpm-train "${TRAIN[@]}" \
    --init "$G/tiny" -o "$D/p" --max-steps 2 --eval-every 1 --eval-samples 2 \
    --eval-ref "$G/train16.npy"
  [ "$stderr" = "ddpm-train: 3 processes for --eval-samples 2: want at least one sample each" ]
  [ ! -e "$D/p" ]
}

@test "mpirun ddpm-train: the progress line says the batch is global; plain runs load no MPI" {
  run -0 --separate-stderr mpirun_t -np 2 ddpm-train --data "$G/train16.npy" --train-batch-size 4 \
    --gradient-accumulation-steps 2 --lr-warmup-steps 2 --init "$G/tiny" -o "$D/o" --max-steps 1
  [ "${stderr%%$'\n'*}" = "ddpm-train: 8 images a step (global batch): 2 micro-batches of 4, each split over 2 processes (2 images or fewer each)" ]
  run -0 ldd "$(command -v ddpm-train)"
  [[ "$output" != *libmpi* ]]
  # a plain run does not map it either
  ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/p" --max-steps 100000 &
  pid=$!
  sleep 0.5
  run grep -c libmpi "/proc/$pid/maps"
  kill -INT "$pid"
  wait "$pid" || true
  [ "$output" = 0 ]
}
