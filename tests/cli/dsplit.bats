#!/usr/bin/env bats
# dsplit: seeded splits, exact sizes (train = floor(N*a/sum), val = floor(N*b/sum), test = rest),
# stratification, rare-class dropping, all-or-nothing outputs.
# Fixtures (gen_io.py): img20/lab20 (20 rows, labels 0..2), img24/lab24 (24 rows; classes
# 7, 2, 9, 4 with 12, 8, 3, 1 rows).
load helpers
# outputs go to a subdirectory: bats keeps its own files in $BATS_TEST_TMPDIR
setup() { setup_tools; IO="$FIX/io"; T="$BATS_TEST_TMPDIR/w"; mkdir -p "$T"; }

@test "dsplit --help prints usage on stdout" {
  run -0 --separate-stderr dsplit --help
  [[ "$output" == "usage: dsplit "* ]]
  [[ "$output" == *"floor(N*A/sum)"* ]]
}

@test "dsplit --help names every option, its defaults and an example" {
  help_names_options dsplit tools/dsplit.c
}

@test "dsplit takes -S for the seed like the other tools; -s stays" {
  dsplit "$IO/img20.npy" --ratios 1,1 -S 4 -o "$T/a"
  dsplit "$IO/img20.npy" --ratios 1,1 -s 4 -o "$T/b"
  dsplit "$IO/img20.npy" --ratios 1,1 --seed 5 -o "$T/c"
  cmp "$T/a-train.npy" "$T/b-train.npy"
  run -1 cmp -s "$T/a-train.npy" "$T/c-train.npy"
}

@test "dsplit usage errors exit 2 and write nothing" {
  run -2 --separate-stderr dsplit "$IO/img20.npy" --ratios 70,15,15
  [[ "$stderr" == "dsplit: -o PREFIX is required"*"usage: dsplit "* ]]
  run -2 --separate-stderr dsplit "$IO/img20.npy" -o "$T/o"
  [[ "$stderr" == "dsplit: --ratios A,B[,C] is required"*"usage: dsplit "* ]]
  run -2 --separate-stderr dsplit --ratios 1,1 -o "$T/o"
  [[ "$stderr" == "dsplit: IN.npy is required"* ]]
  run -2 --separate-stderr dsplit "$IO/img20.npy" --ratios 70 -o "$T/o"
  [[ "$stderr" == "dsplit: --ratios: "* ]]
  run -2 --separate-stderr dsplit "$IO/img20.npy" --ratios 1,2,3,4 -o "$T/o"
  run -2 --separate-stderr dsplit "$IO/img20.npy" --ratios 0,0 -o "$T/o"
  run -2 --separate-stderr dsplit "$IO/img20.npy" --ratios 1,0 -o "$T/o"
  [ "${stderr%%$'\n'*}" = "dsplit: --ratios: bad value: 1,0 (want 2 or 3 numbers > 0, e.g. 70,15,15)" ]
  run -2 --separate-stderr dsplit "$IO/img20.npy" --ratios 70,0,30 -o "$T/o"
  run -2 --separate-stderr dsplit "$IO/img20.npy" --ratios 7x,3 -o "$T/o"
  run -2 --separate-stderr dsplit "$IO/img20.npy" --ratios 7,3 --seed -1 -o "$T/o"
  run -2 --separate-stderr dsplit "$IO/img20.npy" --ratios 7,3 --stratify -o "$T/o"
  [[ "$stderr" == "dsplit: --stratify and --min-class-count need --labels"* ]]
  [ -z "$(ls -A "$T")" ]
}

@test "dsplit sizes add up with the documented rounding" {
  run -0 --separate-stderr dsplit "$IO/img20.npy" --ratios 70,15,15 -o "$T/a"
  [ -z "$output" ]
  [ -z "$stderr" ]
  [ "$(npy_shape "$T/a-train.npy")" = "14,4,4,3" ]
  [ "$(npy_shape "$T/a-val.npy")" = "3,4,4,3" ]
  [ "$(npy_shape "$T/a-test.npy")" = "3,4,4,3" ]
  run -0 dsplit "$IO/img24.npy" --ratios 0.7,0.15,0.15 -o "$T/b"
  [ "$(npy_shape "$T/b-train.npy")" = "16,2,2,3" ]
  [ "$(npy_shape "$T/b-val.npy")" = "3,2,2,3" ]
  [ "$(npy_shape "$T/b-test.npy")" = "5,2,2,3" ]
}

@test "dsplit with two ratios writes train and test only" {
  run -0 dsplit "$IO/feat10.npy" --ratios 8,2 -o "$T/c"
  [ "$(npy_shape "$T/c-train.npy")" = "8,6" ]
  [ "$(npy_shape "$T/c-test.npy")" = "2,6" ]
  [ ! -e "$T/c-val.npy" ]
}

# the 48-byte rows of a (N,4,4,3) uint8 .npy with a 128-byte header, one hex line each
rows() { tail -c +129 "$1" | od -An -v -tx1 -w48; }

@test "dsplit is a permutation: all rows kept, shuffled" {
  run -0 dsplit "$IO/img20.npy" --ratios 1,1 --seed 5 -o "$T/p"
  [ "$(cat "$T/p-train.npy" "$T/p-test.npy" | wc -c)" -eq $((2 * 128 + 20 * 48)) ]
  [ "$(rows "$T/p-train.npy"; rows "$T/p-test.npy")" != "$(rows "$IO/img20.npy")" ]
  [ "$( (rows "$T/p-train.npy"; rows "$T/p-test.npy") | sort)" = "$(rows "$IO/img20.npy" | sort)" ]
}

@test "dsplit is deterministic for a seed and differs across seeds" {
  dsplit "$IO/img20.npy" --labels "$IO/lab20.npy" --ratios 70,15,15 --seed 1 -o "$T/x"
  dsplit "$IO/img20.npy" --labels "$IO/lab20.npy" --ratios 70,15,15 --seed 1 -o "$T/y"
  dsplit "$IO/img20.npy" --labels "$IO/lab20.npy" --ratios 70,15,15 --seed 2 -o "$T/z"
  for s in train val test train-labels val-labels test-labels; do
    cmp "$T/x-$s.npy" "$T/y-$s.npy"
  done
  run -1 cmp -s "$T/x-train.npy" "$T/z-train.npy"
}

@test "dsplit reads stdin in a pipe and accepts int32 labels, writing int64" {
  run -0 bash -c "cat '$IO/img20.npy' | dsplit - --labels '$IO/lab20_i32.npy' --ratios 1,1 --seed 4 -o '$T/s'"
  dsplit "$IO/img20.npy" --labels "$IO/lab20.npy" --ratios 1,1 --seed 4 -o "$T/f"
  cmp "$T/s-train.npy" "$T/f-train.npy"
  cmp "$T/s-test-labels.npy" "$T/f-test-labels.npy"
  run -0 npyinfo "$T/s-train-labels.npy"
  [[ "$output" == *": int64 (10,) "* ]]
}

@test "dsplit --stratify applies the ratios within each class" {
  run -0 dsplit "$IO/img24.npy" --labels "$IO/lab24.npy" --ratios 70,15,15 --stratify -o "$T/st"
  # per class 12 -> 8,1,3; 8 -> 5,1,2; 3 -> 2,0,1; 1 -> 0,0,1
  [ "$(npy_shape "$T/st-train.npy")" = "15,2,2,3" ]
  [ "$(npy_shape "$T/st-val.npy")" = "2,2,2,3" ]
  [ "$(npy_shape "$T/st-test.npy")" = "7,2,2,3" ]
  # label sums: train 8*7+5*2+2*9 = 84, val 7+2 = 9, test 3*7+2*2+9+4 = 38
  run -0 npyinfo --json "$T/st-train-labels.npy" "$T/st-val-labels.npy" "$T/st-test-labels.npy"
  [[ "${lines[0]}" == *'"mean": 5.6,'* ]]
  [[ "${lines[1]}" == *'"mean": 4.5,'* ]]
  [[ "${lines[2]}" == *'"mean": 5.42857143,'* ]]
}

@test "dsplit --min-class-count drops rare classes, keeps label values, says so" {
  run -0 --separate-stderr dsplit "$IO/img24.npy" --labels "$IO/lab24.npy" --ratios 1,1 --min-class-count 5 -o "$T/m"
  [ "$stderr" = "dsplit: dropped 2 classes with fewer than 5 rows: 4 (1), 9 (3); 4 rows removed, 20 left" ]
  [ "$(npy_shape "$T/m-train.npy")" = "10,2,2,3" ]
  [ "$(npy_shape "$T/m-test.npy")" = "10,2,2,3" ]
  run -0 npyinfo "$T/m-train-labels.npy" "$T/m-test-labels.npy"
  [[ "${lines[0]}" == *" min 2 max 7 "* ]]
  [[ "${lines[1]}" == *" min 2 max 7 "* ]]
}

@test "dsplit bad input fails with one line and leaves no files" {
  for f in "$FIX"/bad/io_*.npy "$FIX"/bad/io_trunc.npz "$IO/f8_0d.npy"; do
    run -1 --separate-stderr dsplit "$f" --ratios 1,1 -o "$T/bad"
    [ -z "$output" ]
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == "dsplit: $f: "* ]]
  done
  run -1 --separate-stderr dsplit "$IO/img24.npy" --labels "$IO/lab20.npy" --ratios 1,1 -o "$T/bad"
  [ "$stderr" = "dsplit: $IO/lab20.npy: 20 labels for 24 rows" ]
  run -1 --separate-stderr dsplit "$IO/img24.npy" --labels "$IO/f4_1d.npy" --ratios 1,1 -o "$T/bad"
  [[ "$stderr" == "dsplit: $IO/f4_1d.npy: expected int32 or int64 labels"* ]]
  run -1 --separate-stderr dsplit "$IO/img24.npy" --labels "$IO/lab24.npy" --ratios 1,1 --min-class-count 13 -o "$T/bad"
  [[ "$stderr" == *"dsplit: $IO/img24.npy: no rows to split" ]]
  run -1 --separate-stderr bash -c "head -c 500 '$IO/img20.npy' | dsplit - --ratios 1,1 -o '$T/bad'"
  [ "$stderr" = "dsplit: -: truncated: want 960 bytes, got 372" ]
  [ -z "$(ls -A "$T")" ]
}

@test "dsplit outputs are all or nothing" {
  mkdir "$T/o-test.npy"   # the last rename fails
  run -1 --separate-stderr dsplit "$IO/img20.npy" --ratios 70,15,15 -o "$T/o"
  [ "$stderr" = "dsplit: $T/o-test.npy: Is a directory" ]
  [ "$(ls -A "$T")" = "o-test.npy" ]
  run -1 --separate-stderr dsplit "$IO/img20.npy" --ratios 70,15,15 -o "$T/nodir/o"
  [ "$stderr" = "dsplit: $T/nodir/o-train.npy: No such file or directory" ]
}
