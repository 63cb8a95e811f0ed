#!/usr/bin/env bats
# npycat: .npy arrays joined along the first axis; the --shard route of ddpm-sample and
# vae-sample (shards joined = the 1-process output, byte for byte) is tested in
# ddpm-sample.bats and vae-sample.bats, and here end to end with fid.
load helpers
setup() {
  setup_tools
  D="$BATS_TEST_TMPDIR/w"
  mkdir -p "$D"
}

@test "npycat --help names every option and an example" {
  help_names_options npycat tools/npycat.c
}

@test "npycat without a file is a usage error" {
  run -2 --separate-stderr npycat
  [ -z "$output" ]
  [[ "$stderr" == "npycat: FILE is required"$'\n'"usage: npycat "* ]]
  run -2 --separate-stderr npycat --bogus a.npy
  [ -z "$output" ]
}

@test "npycat joins along the first axis: the bytes of numpy.concatenate" {
  npy_make "$D/a.npy" '<f4' '2, 3' 6 '\x00\x00\x80\x3f'   # 1.0
  npy_make "$D/b.npy" '<f4' '1, 3' 3 '\x00\x00\x00\x40'   # 2.0
  npy_make "$D/want.npy" '<f4' '3, 3' 0 ''
  { cat "$D/want.npy"; for i in 1 2 3 4 5 6; do printf '\x00\x00\x80\x3f'; done
    for i in 1 2 3; do printf '\x00\x00\x00\x40'; done; } > "$D/want2.npy"
  run -0 npycat -o "$D/ab.npy" "$D/a.npy" "$D/b.npy"
  cmp "$D/ab.npy" "$D/want2.npy"
  # stdin, and stdout
  run -0 bash -c "npycat '$D/a.npy' - < '$D/b.npy' > '$D/ab2.npy'"
  cmp "$D/ab2.npy" "$D/want2.npy"
  # one file is a copy
  npycat "$D/a.npy" > "$D/a2.npy"
  cmp "$D/a.npy" "$D/a2.npy"
}

@test "npycat refuses another dtype or trailing shape, naming both; no output left" {
  npy_make "$D/a.npy" '<f4' '2, 3' 6 '\x00\x00\x80\x3f'
  npy_make "$D/c.npy" '<f4' '2, 4' 8 '\x00\x00\x80\x3f'
  npy_make "$D/u.npy" '|u1' '2, 3' 6 '\x01'
  run -1 --separate-stderr npycat -o "$D/o.npy" "$D/a.npy" "$D/c.npy"
  [ "$stderr" = "npycat: $D/c.npy: float32 (2,4) does not join float32 (2,3) of $D/a.npy" ]
  run -1 --separate-stderr npycat -o "$D/o.npy" "$D/a.npy" "$D/u.npy"
  [ "$stderr" = "npycat: $D/u.npy: uint8 (2,3) does not join float32 (2,3) of $D/a.npy" ]
  run -1 --separate-stderr npycat -o "$D/o.npy" "$D/a.npy" "$D/missing.npy"
  [[ "$stderr" == "npycat: $D/missing.npy: "* ]]
  [ "${#lines[@]}" -eq 0 ]
  head -c 100 "$D/a.npy" > "$D/t.npy"
  run -1 --separate-stderr npycat -o "$D/o.npy" "$D/a.npy" "$D/t.npy"
  [[ "$stderr" == "npycat: $D/t.npy: "* && "$stderr" != *$'\n'* ]]
  run -1 --separate-stderr npycat - -
  [ "$stderr" = "npycat: -: stdin given twice" ]
  [ "$(ls "$D")" = "$(printf 'a.npy\nc.npy\nt.npy\nu.npy')" ]
}

@test "vae-sample shards joined by npycat score the fid of one run exactly" {
  M="$FIX/vae/init.safetensors"
  vae-sample --model "$M" -n 10 -S 3 -o "$D/full.npy"
  for i in 0 1 2; do vae-sample --model "$M" -n 10 -S 3 -b 3 --shard $i/3 -o "$D/s$i.npy"; done
  npycat -o "$D/merged.npy" "$D/s0.npy" "$D/s1.npy" "$D/s2.npy"
  cmp "$D/full.npy" "$D/merged.npy"
  a=$(fid --weights synthetic "$D/full.npy" "$FIX/inception/img32.npy" 2>/dev/null)
  b=$(fid --weights synthetic "$D/merged.npy" "$FIX/inception/img32.npy" 2>/dev/null)
  [ -n "$a" ] && [ "$a" = "$b" ]
}

@test "npycat --rows A:B keeps rows A to B-1 of the joined array, as numpy's x[A:B]" {
  M="$FIX/vae/init.safetensors"
  vae-sample --model "$M" -n 10 -S 3 -o "$D/full.npy"
  vae-sample --model "$M" -n 5 -S 3 -o "$D/first5.npy"  # image i depends on the seed and i only
  vae-sample --model "$M" -n 10 -S 3 --shard 0/2 -o "$D/s0.npy"
  vae-sample --model "$M" -n 10 -S 3 --shard 1/2 -o "$D/s1.npy"
  run -0 npycat -r :5 "$D/full.npy" -o "$D/r5.npy"
  cmp "$D/r5.npy" "$D/first5.npy"
  run -0 npycat --rows 0:5 "$D/s0.npy" "$D/s1.npy" -o "$D/r5b.npy"
  cmp "$D/r5b.npy" "$D/first5.npy"
  # rows 3..7 span both shards: the same bytes as those rows of the full file (3072 a row)
  run -0 npycat -r 3:8 "$D/s0.npy" "$D/s1.npy" -o "$D/mid.npy"
  [ "$(npyinfo --shape "$D/mid.npy")" = "5,32,32,3" ]
  full=$(stat -c %s "$D/full.npy")
  cmp <(tail -c $((5 * 3072)) "$D/mid.npy") \
      <(tail -c $((full - (full - 10 * 3072) - 3 * 3072)) "$D/full.npy" | head -c $((5 * 3072)))
  # past the end is the end; an empty range is a (0,...) array
  run -0 npycat -r 8: "$D/full.npy" -o "$D/tail.npy"
  [ "$(npyinfo --shape "$D/tail.npy")" = "2,32,32,3" ]
  run -0 npycat -r 20:30 "$D/full.npy" -o "$D/none.npy"
  [ "$(npyinfo --shape "$D/none.npy")" = "0,32,32,3" ]
  run -0 npycat -r : "$D/full.npy" -o "$D/all.npy"
  cmp "$D/all.npy" "$D/full.npy"
}

@test "npycat --rows refuses a malformed range, names it, writes nothing" {
  for bad in 5 a:b -1:3 3:x 1:2:3 ""; do
    run -2 --separate-stderr npycat -r "$bad" "$FIX/vae/x.npy" -o "$D/o.npy"
    [[ "$stderr" == "npycat: --rows: bad value: $bad (want A:B, e.g. 0:16 or :16)"$'\n'"usage: npycat "* ]]
    [ ! -e "$D/o.npy" ]
  done
}
