load helpers
setup() { setup_tools; }

IMG() { echo "$FIX/inception/img32.npy"; }
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

@test "is-score without arguments prints usage and exits 2" {
  run -2 --separate-stderr is-score
  [ -z "$output" ]
  [[ "$stderr" == *"usage: is-score"* ]]
}

@test "is-score --help names every option, its defaults and an example" {
  help_names_options is-score tools/is-score.c common/eval/metrics_cli.h common/eval/metrics_cli.c
}

@test "is-score --help prints usage on stdout" {
  run -0 is-score --help
  [[ "$output" == "usage: is-score"* ]]
}

@test "is-score rejects --splits 0" {
  run -2 --separate-stderr is-score --splits 0 x.npy
  [[ "$stderr" == "is-score: --splits: bad value: 0 (want an integer from 1 to 1000000)"* ]]
}

@test "is-score matches torch-fidelity's IS on PyTorch logits (synthetic weights)" {
  read -r want _ < "$FIX/inception/img32_is.txt"
  run -0 --separate-stderr is-score --weights synthetic --splits 1 "$(IMG)"
  [ "${#lines[@]}" -eq 2 ]
  [[ "${lines[0]}" == "inception_score_mean: "* ]]
  [ "${lines[1]}" = "inception_score_std: 0" ]
  near "${lines[0]#inception_score_mean: }" "$want" 1e-5
  [[ "$stderr" == *"is-score: warning: synthetic Inception weights"* ]]
}

@test "is-score reads stdin, a folder and cached features alike" {
  run -0 --separate-stderr is-score --weights synthetic --splits 1 "$(IMG)"
  want=$output
  run -0 --separate-stderr bash -c "cat '$(IMG)' | is-score --weights synthetic --splits 1 -"
  [ "$output" = "$want" ]
  run -0 --separate-stderr is-score --weights synthetic --splits 1 "$FIX/inception/folder"
  [ "$output" = "$want" ]
  run -0 --separate-stderr kid --weights synthetic --save-features "$(IMG)" "$BATS_TEST_TMPDIR/f.npy"
  run -0 --separate-stderr is-score --weights synthetic --splits 1 "$BATS_TEST_TMPDIR/f.npy"
  [ "$output" = "$want" ]
}

@test "is-score --json" {
  run -0 --separate-stderr is-score --weights synthetic --splits 3 --json "$(IMG)"
  [ "${lines[0]}" = "{" ]
  [[ "$output" == *'"inception_score_mean": 1.0,'* ]]
  [[ "$output" == *'"inception_score_std": 0.0,'* ]]
  [[ "$output" == *'"splits": 3'* ]]
  [ "${lines[-1]}" = "}" ]
}

@test "is-score rejects fewer samples than splits" {
  run -1 --separate-stderr is-score --weights synthetic "$(IMG)"
  [ -z "$output" ]
  [[ "$stderr" == *"is-score: "*"img32.npy: need at least as many samples as splits (10), got 3"* ]]
}

@test "is-score rejects statistics and bad arrays" {
  run -1 --separate-stderr is-score --weights synthetic "$FIX/metrics/stats64_compressed.npz"
  [ -z "$output" ]
  [[ "$stderr" == "is-score: "*"stats64_compressed.npz: statistics"* ]]
  run -1 --separate-stderr is-score --weights synthetic "$FIX/bad/metrics_rgba.npy"
  [[ "$stderr" == "is-score: "*"metrics_rgba.npy: "* ]]
  run -1 --separate-stderr is-score --weights synthetic "$FIX/metrics/feat64_a.npy"
  [[ "$stderr" == "is-score: "*"feat64_a.npy: features have 64 columns"* ]]
}

@test "is-score names make weights when the weights are missing" {
  run -1 --separate-stderr env FID_WEIGHTS=/nonexistent/w.pth is-score "$(IMG)"
  [ -z "$output" ]
  [[ "$stderr" == "is-score: "*"make weights"* ]]
}
