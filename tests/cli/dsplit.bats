#!/usr/bin/env bats
# dsplit: seeded splits, exact sizes (train = floor(N*a/sum), val = floor(N*b/sum), test = rest),
# stratification, rare-class dropping, all-or-nothing outputs.
# Fixtures (gen_io.py): img20/lab20 (20 rows, labels 0..2), img24/lab24 (24 rows; classes
# 7, 2, 9, 4 with 12, 8, 3, 1 rows).
load helpers
# outputs go to a subdirectory: bats keeps its own files in $BATS_TEST_TMPDIR
setup() { setup_tools; IO="$FIX/io"; T="$BATS_TEST_TMPDIR/w"; mkdir -p "$T"; }

# int64 (N,) .npy of the whitespace-separated integers on stdin
npy_i64() {
  perl -e 'my @v = split " ", join(" ", <STDIN>);
           my $h = "{\x27descr\x27: \x27<i8\x27, \x27fortran_order\x27: False, \x27shape\x27: (" . scalar(@v) . ",), }";
           $h .= " " x (63 - (10 + length($h)) % 64) . "\n";
           print "\x93NUMPY\x01\x00", pack("v", length $h), $h, pack("q<*", @v)'
}

# PREFIX RATIOS: the -train/-val/-test label files of a stratified split have the totals of
# the unstratified split and every class within 1 of its share cls_n*part/N in every part
strat_check() {
  perl -e '
    my ($prefix, $ratios) = @ARGV;
    my @r = split /,/, $ratios;
    my @parts = @r == 3 ? qw(train val test) : qw(train test);
    my (%n, @cnt, @tot, $N);
    for my $i (0..$#parts) {
      open my $f, "<:raw", "$prefix-$parts[$i]-labels.npy" or die "$parts[$i]: $!";
      local $/; my $b = <$f>; my $hl = unpack("v", substr($b, 8, 2));
      my @v = unpack("q<*", substr($b, 10 + $hl));
      $tot[$i] = @v; $N += @v;
      $cnt[$i]{$_}++, $n{$_}++ for @v;
    }
    my $sum = 0; $sum += $_ for @r;
    my $used = 0;
    for my $i (0..$#parts - 1) {
      my $want = int($N * $r[$i] / $sum + 1e-9);
      die "$parts[$i]: $tot[$i] rows, want $want\n" if $tot[$i] != $want;
      $used += $want;
    }
    for my $c (keys %n) {
      for my $i (0..$#parts) {
        my $share = $n{$c} * $tot[$i] / $N, $got = $cnt[$i]{$c} // 0;
        die "class $c $parts[$i]: $got rows, share $share\n" if abs($got - $share) >= 1;
      }
    }' "$@"
}

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
  # totals as unstratified: 16, 3, 5; shares 12 -> 8,1.5,2.5; 8 -> 5.33,1,1.67;
  # 3 -> 2,.375,.625; 1 -> .67,.125,.21; rounded by largest remainder: 8,2,2; 5,1,2; 2,0,1; 1,0,0
  [ "$(npy_shape "$T/st-train.npy")" = "16,2,2,3" ]
  [ "$(npy_shape "$T/st-val.npy")" = "3,2,2,3" ]
  [ "$(npy_shape "$T/st-test.npy")" = "5,2,2,3" ]
  run -0 strat_check "$T/st" 70,15,15
  # label sums: train 8*7+5*2+2*9+4 = 88, val 2*7+2 = 16, test 2*7+2*2+9 = 27
  run -0 npyinfo --json "$T/st-train-labels.npy" "$T/st-val-labels.npy" "$T/st-test-labels.npy"
  [[ "${lines[0]}" == *'"mean": 5.5,'* ]]
  [[ "${lines[1]}" == *'"mean": 5.33333333,'* ]]
  [[ "${lines[2]}" == *'"mean": 5.4,'* ]]
}

@test "dsplit --stratify on Flowers102's trnid (10 per class) gives 714/153/153" {
  perl -e 'print join(" ", map { int($_ / 10) } 0..1019)' | npy_i64 > "$T/lab.npy"
  for seed in 0 1 2; do
    run -0 dsplit "$T/lab.npy" --labels "$T/lab.npy" --ratios 70,15,15 --stratify --seed $seed -o "$T/f$seed"
    [ "$(npy_shape "$T/f$seed-train.npy")" = "714," ]
    [ "$(npy_shape "$T/f$seed-val.npy")" = "153," ]
    [ "$(npy_shape "$T/f$seed-test.npy")" = "153," ]
    # every class 7 train and 1 or 2 val / test
    run -0 strat_check "$T/f$seed" 70,15,15
  done
  # the seed decides which classes get the second val row
  run -1 cmp -s "$T/f0-val-labels.npy" "$T/f1-val-labels.npy"
}

@test "dsplit --stratify on Pet-like class sizes keeps the unstratified totals" {
  # 37 classes of 93..100 rows, in a shuffled label order, plus two tiny classes
  perl -e 'my @l; for my $c (0..36) { push @l, ($c * 7 % 37) x (93 + $c % 8) } push @l, 37, 38, 38;
           print join(" ", @l)' | npy_i64 > "$T/lab.npy"
  n=$(npy_shape "$T/lab.npy")
  for r in 70,15,15 80,20 1,1,1 0.6,0.3,0.1; do
    run -0 dsplit "$T/lab.npy" --labels "$T/lab.npy" --ratios $r --stratify --seed 3 -o "$T/p"
    run -0 strat_check "$T/p" $r
    unstrat=$(dsplit "$T/lab.npy" --ratios $r -o "$T/u" && for s in train val test; do
              [ -e "$T/u-$s.npy" ] && npy_shape "$T/u-$s.npy"; done | tr '\n' ' ')
    strat=$(for s in train val test; do [ -e "$T/p-$s.npy" ] && npy_shape "$T/p-$s.npy"; done | tr '\n' ' ')
    [ "$strat" = "$unstrat" ]
    rm -f "$T"/[pu]-*
  done
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

@test "dsplit outputs are all or nothing, checked before the work" {
  mkdir "$T/o-test.npy"   # the last output is a directory: refused before anything is written
  run -1 --separate-stderr dsplit "$IO/img20.npy" --ratios 70,15,15 -o "$T/o"
  [ "$stderr" = "dsplit: $T/o-test.npy: is a directory" ]
  [ "$(ls -A "$T")" = "o-test.npy" ]
  run -1 --separate-stderr dsplit "$IO/img20.npy" --ratios 70,15,15 -o "$T/nodir/o"
  [ "$stderr" = "dsplit: $T/nodir/o-train.npy: cannot create a file in $T/nodir: No such file or directory" ]
  # the input is not even read
  run -1 --separate-stderr dsplit "$T/missing.npy" --ratios 1,1 -o /proc/o
  [[ "$stderr" == "dsplit: /proc/o-train.npy: cannot create a file in /proc: "* ]]
}

@test "dsplit -o - is refused (it wrote ./--train.npy)" {
  cd "$T"
  run -2 --separate-stderr dsplit "$IO/img20.npy" --ratios 1,1 -o -
  [ "${stderr_lines[0]}" = "dsplit: -o -: the outputs are several files; give a file name prefix" ]
  [[ "${stderr_lines[1]}" == "usage: dsplit "* ]]
  [ -z "$(ls -A)" ]
}
