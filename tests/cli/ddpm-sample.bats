load helpers
setup() { setup_tools; M="$FIX/unet/tiny_st_legacy"; }

@test "ddpm-sample --help prints usage on stdout" {
  run -0 ddpm-sample --help
  [[ "$output" == "usage: ddpm-sample "* ]]
}

@test "ddpm-sample --help names every option, its defaults and an example" {
  help_names_options ddpm-sample tools/ddpm-sample.c
  [[ "$output" == *"default 1000 for ddpm, 50 for ddim"* ]]
  [[ "$output" == *"--check "*"parameters"* ]]
}

@test "ddpm-sample without --model is a usage error that says so" {
  run -2 --separate-stderr ddpm-sample -n 2
  [ -z "$output" ]
  [ "${stderr%%$'\n'*}" = "ddpm-sample: --model DIR is required" ]
  [[ "$stderr" == *"usage: ddpm-sample"* ]]
}

@test "ddpm-sample: a bad value names its flag; getopt's messages name the tool" {
  run -2 --separate-stderr ddpm-sample --model "$M" --steps 0
  [ "${stderr%%$'\n'*}" = "ddpm-sample: --steps: bad value: 0 (want an integer from 1 to 100000)" ]
  run -2 --separate-stderr "$(command -v ddpm-sample)" --model "$M" --bogus
  [ "${stderr%%$'\n'*}" = "ddpm-sample: unrecognized option '--bogus'" ]
}

@test "ddpm-sample rejects bad option values" {
  run -2 --separate-stderr ddpm-sample --model "$M" --scheduler bogus
  [[ "$stderr" == *"usage: ddpm-sample"* ]]
  run -2 --separate-stderr ddpm-sample --model "$M" --steps 0
  run -2 --separate-stderr ddpm-sample --model "$M" -n -3
  run -2 --separate-stderr ddpm-sample --model "$M" --eta 0.5
  run -2 --separate-stderr ddpm-sample --model "$M" extra
}

@test "ddpm-sample writes uint8 (N,S,S,3) to stdout and the same bytes to -o" {
  run -0 bash -c "ddpm-sample --model '$M' -n 3 --scheduler ddim --steps 5 | npy_shape"
  [ "$output" = "3,16,16,3" ]
  ddpm-sample --model "$M" -n 3 --scheduler ddim --steps 5 > "$BATS_TEST_TMPDIR/a.npy"
  run -0 ddpm-sample --model "$M" -n 3 --scheduler ddim --steps 5 -o "$BATS_TEST_TMPDIR/b.npy"
  [ -z "$output" ]
  cmp "$BATS_TEST_TMPDIR/a.npy" "$BATS_TEST_TMPDIR/b.npy"
  run -0 npyinfo "$BATS_TEST_TMPDIR/b.npy"
  [[ "$output" == *uint8* ]]
}

@test "ddpm-sample is deterministic and independent of --batch-size and --threads" {
  T=$BATS_TEST_TMPDIR
  ddpm-sample --model "$M" -n 5 --steps 8 --seed 7 --batch-size 5 -o "$T/a.npy"
  ddpm-sample --model "$M" -n 5 --steps 8 --seed 7 --batch-size 2 --threads 1 -o "$T/b.npy"
  ddpm-sample --model "$M" -n 5 --steps 8 --seed 7 --batch-size 1 -o "$T/c.npy"
  ddpm-sample --model "$M" -n 5 --steps 8 --seed 8 -o "$T/d.npy"
  cmp "$T/a.npy" "$T/b.npy"
  cmp "$T/a.npy" "$T/c.npy"
  run -1 cmp -s "$T/a.npy" "$T/d.npy"
}

@test "ddpm-sample: the first images do not depend on -n" {
  T=$BATS_TEST_TMPDIR
  ddpm-sample --model "$M" -n 2 --scheduler ddim --steps 4 --seed 3 -o "$T/a.npy"
  ddpm-sample --model "$M" -n 4 --scheduler ddim --steps 4 --seed 3 -o "$T/b.npy"
  # 2 images of 16*16*3 bytes after the 128-byte header
  cmp -n $((2 * 768)) <(tail -c +129 "$T/a.npy") <(tail -c +129 "$T/b.npy")
}

@test "ddpm-sample: a one-forward run caches no transformed weights and gives the same image" {
  T=$BATS_TEST_TMPDIR
  ddpm-sample --model "$M" -n 1 --scheduler ddim --steps 1 --seed 5 -v -o "$T/a.npy" 2> "$T/err"
  grep -q "transformed weights cached 0, " "$T/err"
  grep -Eq "ready for the first step [0-9.]+ s after start" "$T/err"
  ddpm-sample --model "$M" -n 2 --batch-size 1 --scheduler ddim --steps 1 --seed 5 -v \
    -o "$T/b.npy" 2> "$T/err"
  run grep -q "transformed weights cached 0, " "$T/err"
  [ "$status" -ne 0 ] # two forwards: the weights are transformed once, kept
  cmp -n 768 <(tail -c +129 "$T/a.npy") <(tail -c +129 "$T/b.npy")
}

# bytes that differ between two files of equal size: at most $3, each by at most 1
close_bytes() {
  [ "$(stat -c %s "$1")" = "$(stat -c %s "$2")" ] || return 1
  cmp -l "$1" "$2" | awk -v max="$3" '
    function oct(s,  v, i) { v = 0; for (i = 1; i <= length(s); i++) v = v * 8 + substr(s, i, 1); return v }
    { d = oct($2) - oct($3); if (d > 1 || d < -1) bad++; n++ }
    END { exit (bad > 0 || n > max) }'
}

@test "ddpm-sample --init-noise with DDIM eta 0 matches the PyTorch pipeline" {
  run -0 ddpm-sample --model "$M" --scheduler ddim --steps 10 \
    --init-noise "$FIX/unet/tiny_xT.npy" -o "$BATS_TEST_TMPDIR/x.npy"
  # float32 rounding (Winograd convolutions) may move a pixel across a .5 boundary
  close_bytes "$BATS_TEST_TMPDIR/x.npy" "$FIX/unet/tiny_ddim10_u8.npy" 15
  # and the check can fail: a different seed's images are far away
  ddpm-sample --model "$M" -n 2 --scheduler ddim --steps 10 -o "$BATS_TEST_TMPDIR/y.npy"
  run -1 close_bytes "$BATS_TEST_TMPDIR/y.npy" "$FIX/unet/tiny_ddim10_u8.npy" 15
}

@test "ddpm-sample --save-trajectory keeps x_T, every k-th step and x_0" {
  T=$BATS_TEST_TMPDIR
  run -0 ddpm-sample --model "$M" -n 2 --scheduler ddim --steps 10 --trajectory-every 4 \
    --save-trajectory "$T/tr.npy" -o "$T/x.npy"
  run -0 npy_shape "$T/tr.npy"
  [ "$output" = "8,3,16,16" ]   # 2 images x 4 states (x_T, after 4, 8 and 10 steps)
}

@test "ddpm-sample --check counts the parameters" {
  run -0 ddpm-sample --model "$M" --check
  [ "$output" = "45259 parameters in 144 tensors" ]
}

@test "ddpm-sample loads .bin checkpoints with modern names" {
  T=$BATS_TEST_TMPDIR
  ddpm-sample --model "$FIX/unet/tiny_bin_modern" -n 2 --steps 3 -o "$T/a.npy"
  ddpm-sample --model "$M" -n 2 --steps 3 -o "$T/b.npy"
  cmp "$T/a.npy" "$T/b.npy"
}

@test "ddpm-sample --save-dir writes a folder that samples the same" {
  T=$BATS_TEST_TMPDIR
  run -0 ddpm-sample --model "$FIX/unet/tiny_st_modern" --save-dir "$T/m"
  [ -f "$T/m/config.json" ]
  [ -f "$T/m/scheduler_config.json" ]
  [ -f "$T/m/diffusion_pytorch_model.safetensors" ]
  ddpm-sample --model "$T/m" -n 2 --steps 3 -o "$T/a.npy"
  ddpm-sample --model "$M" -n 2 --steps 3 -o "$T/b.npy"
  cmp "$T/a.npy" "$T/b.npy"
}

@test "ddpm-sample rejects a bad model folder and leaves no file" {
  T=$BATS_TEST_TMPDIR/out
  mkdir "$T"
  run -1 --separate-stderr ddpm-sample --model "$FIX/bad/unet_badblock" -n 1 -o "$T/x.npy"
  [ -z "$output" ]
  [[ "$stderr" == "ddpm-sample: "*"down_block_types[0]: unsupported block type"* ]]
  run -1 --separate-stderr ddpm-sample --model "$FIX/bad/unet_noweights" -n 1 -o "$T/x.npy"
  [[ "$stderr" == "ddpm-sample: "*"diffusion_pytorch_model"* ]]
  run -1 --separate-stderr ddpm-sample --model "$T/nowhere" -n 1
  [ -z "$output" ]
  [[ "$stderr" == "ddpm-sample: "* ]]
  [ -z "$(ls -A "$T")" ]
}

@test "ddpm-sample rejects init noise of the wrong shape" {
  T=$BATS_TEST_TMPDIR/out
  mkdir "$T"
  run -1 --separate-stderr ddpm-sample --model "$M" --init-noise "$FIX/unet/full_x.npy" \
    -o "$T/x.npy"
  [[ "$stderr" == "ddpm-sample: "*"full_x.npy: want float32 (N,3,16,16)"* ]]
  [ -z "$(ls -A "$T")" ]
}

@test "ddpm-sample checks -o and --save-trajectory before sampling" {
  T="$BATS_TEST_TMPDIR/w"   # bats keeps its own files in $BATS_TEST_TMPDIR
  mkdir -p "$T/dir"
  run -1 --separate-stderr ddpm-sample --model "$M" -n 2 --scheduler ddim --steps 5 -o "$T/dir"
  [ "$stderr" = "ddpm-sample: $T/dir: is a directory" ]
  run -1 --separate-stderr ddpm-sample --model "$M" -n 2 --scheduler ddim --steps 5 -o "$T/a.npy" \
    --save-trajectory /proc/t.npy
  [[ "$stderr" == "ddpm-sample: /proc/t.npy: cannot create a file in /proc: "* ]]
  [ "$(ls -A "$T")" = "dir" ]
}

@test "ddpm-sample --save-dir onto a file names it once" {
  touch "$BATS_TEST_TMPDIR/f"
  run -1 --separate-stderr ddpm-sample --model "$FIX/unet/tiny_st_modern" --save-dir "$BATS_TEST_TMPDIR/f"
  [ "$stderr" = "ddpm-sample: $BATS_TEST_TMPDIR/f: exists and is not a directory" ]
}

@test "ddpm-sample --shard I/N: the shards joined are the bytes of one run, trajectory too" {
  D="$BATS_TEST_TMPDIR"
  ddpm-sample --model "$M" -n 7 --scheduler ddim --steps 3 -b 4 -o "$D/full.npy" \
    --save-trajectory "$D/tfull.npy"
  for i in 0 1 2; do
    ddpm-sample --model "$M" -n 7 --scheduler ddim --steps 3 -b 2 --shard $i/3 -o "$D/s$i.npy" \
      --save-trajectory "$D/t$i.npy"
  done
  [ "$(npy_shape "$D/s0.npy")" = "3,16,16,3" ]
  [ "$(npy_shape "$D/s2.npy")" = "2,16,16,3" ]
  npycat "$D/s0.npy" "$D/s1.npy" "$D/s2.npy" | cmp - "$D/full.npy"
  npycat "$D/t0.npy" "$D/t1.npy" "$D/t2.npy" | cmp - "$D/tfull.npy"
}

@test "ddpm-sample rejects a bad --shard, and more shards than images" {
  for s in 3/3 1 -1/2 1/0 a/2 1/2/3; do
    run -2 --separate-stderr ddpm-sample --model "$M" -n 2 --shard $s
    [ "${stderr%%$'\n'*}" = "ddpm-sample: --shard: bad value: $s (want I/N with 0 <= I < N <= 65536)" ]
  done
  run -1 --separate-stderr ddpm-sample --model "$M" -n 2 --shard 0/3 -o "$BATS_TEST_TMPDIR/o.npy"
  [ "$stderr" = "ddpm-sample: --shard 0/3: more shards than the 2 images" ]
  [ ! -e "$BATS_TEST_TMPDIR/o.npy" ]
}

@test "ddpm-sample: every diffusers scheduler is deterministic and independent of --batch-size and --threads" {
  T=$BATS_TEST_TMPDIR
  for s in dpm-solver++ sde-dpm-solver++ unipc pndm euler euler-a; do
    ddpm-sample --model "$M" -n 3 --scheduler $s --steps 6 --seed 5 -b 3 -o "$T/a.npy"
    ddpm-sample --model "$M" -n 3 --scheduler $s --steps 6 --seed 5 -b 2 -t 1 -o "$T/b.npy"
    cmp "$T/a.npy" "$T/b.npy" || { echo "$s differs with the batch size"; return 1; }
    run -0 bash -c "ddpm-sample --model '$M' -n 3 --scheduler $s --steps 6 --seed 5 | cmp - '$T/a.npy'"
  done
  # the stochastic ones draw from --seed: another seed, other images
  ddpm-sample --model "$M" -n 3 --scheduler euler-a --steps 6 --seed 6 -o "$T/c.npy"
  run -1 cmp -s "$T/a.npy" "$T/c.npy"
}

@test "ddpm-sample: orders, spacings and the PRK warm-up; the trajectory has a state per model call" {
  T=$BATS_TEST_TMPDIR
  for o in 1 2 3; do
    ddpm-sample --model "$M" -n 1 --scheduler dpm-solver++ --solver-order $o --steps 5 -o "$T/d$o.npy"
  done
  run -1 cmp -s "$T/d1.npy" "$T/d2.npy"
  run -1 cmp -s "$T/d2.npy" "$T/d3.npy"
  run -0 ddpm-sample --model "$M" -n 2 --scheduler pndm --prk --steps 10 \
    --save-trajectory "$T/tr.npy" -o "$T/x.npy"
  run -0 npy_shape "$T/tr.npy"
  [ "$output" = "40,3,16,16" ]   # 2 images x (x_T + 19 calls)
  run -0 ddpm-sample --model "$M" -n 2 --scheduler pndm --steps 10 --save-trajectory "$T/tr.npy" -o "$T/x.npy"
  run -0 npy_shape "$T/tr.npy"
  [ "$output" = "24,3,16,16" ]   # 2 images x (x_T + 11 calls)
  ddpm-sample --model "$M" -n 1 --scheduler unipc --timestep-spacing trailing --steps 5 -o "$T/u1.npy"
  ddpm-sample --model "$M" -n 1 --scheduler unipc --steps 5 -o "$T/u2.npy"
  run -1 cmp -s "$T/u1.npy" "$T/u2.npy"
}

@test "ddpm-sample refuses repeated timesteps and options that do not apply" {
  run -1 --separate-stderr ddpm-sample --model "$M" -n 1 --scheduler dpm-solver++ --steps 1000
  [ -z "$output" ]
  [[ "$stderr" == "ddpm-sample: "*"steps: 1000 gives timestep 500 twice"* ]]
  [ "$(printf '%s\n' "$stderr" | wc -l)" = 1 ]
  run -2 --separate-stderr ddpm-sample --model "$M" --scheduler euler --solver-order 2
  [ "${stderr%%$'\n'*}" = "ddpm-sample: --solver-order applies to dpm-solver++, sde-dpm-solver++ and unipc only" ]
  run -2 --separate-stderr ddpm-sample --model "$M" --scheduler sde-dpm-solver++ --solver-order 3
  run -2 --separate-stderr ddpm-sample --model "$M" --scheduler ddim --prk
  run -2 --separate-stderr ddpm-sample --model "$M" --scheduler pndm --use-clipped-model-output
  [ "${stderr%%$'\n'*}" = "ddpm-sample: --use-clipped-model-output applies to --scheduler ddim only" ]
  run -2 --separate-stderr ddpm-sample --model "$M" --scheduler pndm --timestep-spacing karras
  run -1 --separate-stderr ddpm-sample --model "$M" -n 1 --scheduler pndm --prk --steps 3
  [[ "$stderr" == *"PRK warm-up needs 4 or more steps"* ]]
}

@test "ddpm-sample --init-noise with dpm-solver++, unipc, pndm and euler matches the PyTorch transcription" {
  T=$BATS_TEST_TMPDIR
  for p in dpm10:dpm-solver++ unipc10:unipc pndm10:pndm euler10:euler; do
    run -0 ddpm-sample --model "$M" --scheduler "${p#*:}" --steps 10 \
      --init-noise "$FIX/unet/tiny_xT.npy" -o "$T/x.npy"
    close_bytes "$T/x.npy" "$FIX/unet/tiny_${p%%:*}_u8.npy" 15 || { echo "${p#*:} differs"; return 1; }
  done
  # euler without init_noise_sigma or input scaling would be far off
  run -1 close_bytes "$T/x.npy" "$FIX/unet/tiny_dpm10_u8.npy" 15
}

@test "ddpm-sample --use-clipped-model-output changes DDIM only where x0 is clipped" {
  T=$BATS_TEST_TMPDIR
  # the tiny random model's x0 leaves [-1, 1] at high noise: the recomputed noise differs
  ddpm-sample --model "$M" -n 2 --scheduler ddim --steps 10 -o "$T/a.npy"
  ddpm-sample --model "$M" -n 2 --scheduler ddim --steps 10 --use-clipped-model-output -o "$T/b.npy"
  run -1 cmp -s "$T/a.npy" "$T/b.npy"
  # batch size and threads leave it alone
  ddpm-sample --model "$M" -n 2 -b 1 -t 1 --scheduler ddim --steps 10 --use-clipped-model-output -o "$T/c.npy"
  cmp "$T/b.npy" "$T/c.npy"
}

@test "ddpm-sample's default --threads is OMP_NUM_THREADS's count, else 2" {
  T=$BATS_TEST_TMPDIR
  run -0 --separate-stderr env -u OMP_NUM_THREADS ddpm-sample --model "$M" -n 1 --steps 1 -v -o "$T/a.npy"
  [[ "$stderr" == *", 2 threads;"* ]]
  run -0 --separate-stderr env OMP_NUM_THREADS=1 ddpm-sample --model "$M" -n 1 --steps 1 -v -o "$T/b.npy"
  [[ "$stderr" == *", 1 threads;"* ]]
  run -0 --separate-stderr env OMP_NUM_THREADS=3,1 ddpm-sample --model "$M" -n 1 --steps 1 -v -o "$T/c.npy"
  [[ "$stderr" == *", 3 threads;"* ]]
  run -0 --separate-stderr env OMP_NUM_THREADS=1 ddpm-sample --model "$M" -n 1 --steps 1 -t 2 -v -o "$T/d.npy"
  [[ "$stderr" == *", 2 threads;"* ]]
  cmp "$T/a.npy" "$T/b.npy"
}
