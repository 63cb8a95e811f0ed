#!/usr/bin/env bats
# report: Markdown results table from fid/is-score/kid/score --json files.
load helpers

setup() {
    setup_tools
    cd "$BATS_TEST_TMPDIR"
    mkdir -p res fig
    echo '{"fid": 123.456, "n1": 100, "n2": 60, "extra": [1, 2]}' > res/fid.json
    echo '{"inception_score_mean": 2.5, "inception_score_std": 0.25}' > res/is.json
    echo '{"kernel_inception_distance_mean": 0.0123, "kernel_inception_distance_std": 0.001}' > res/kid.json
    echo '{"precision": 0.6543, "recall": 0.25, "f_score": 0.3618, "n_gen": 100, "n_real": 60}' > res/prc.json
    echo '12.25' > res/time.txt
    printf 'png' > res/grid.png
    printf 'png' > fig/loss.png
}

@test "report without a model prints usage and exits 2" {
    run -2 --separate-stderr report --title T
    [ -z "$output" ]
    [[ "$stderr" == "report: --model NAME is required"*"usage: report "* ]]
    run -0 report --help
    [[ "$output" == "usage: report "* ]]
}

@test "report --help names every option, its defaults and an example" {
    help_names_options report tools/report.c
}

@test "report writes the table, the grids and the figures" {
    run -0 report --title "Demo results" --note "Synthetic Inception weights." \
        --model vae fid=res/fid.json,is=res/is.json,kid=res/kid.json,prc=res/prc.json,time=res/time.txt,grid=res/grid.png \
        --model "VAE (study)" fid=318.14,is=2.36,n=100 \
        --figure "Training loss=fig/loss.png" -o res/report.md
    [ -z "$output" ]
    [ "$(cat res/report.md)" = "# Demo results

Synthetic Inception weights.

| model | FID | IS | KID | precision | recall | N | seconds |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| vae | 123.46 | 2.50 ± 0.25 | 0.0123 ± 0.0010 | 0.654 | 0.250 | 100 | 12.25 |
| VAE (study) | 318.14 | 2.36 | - | - | - | 100 | - |

## Samples

### vae

![vae samples](grid.png)

## Figures

### Training loss

![Training loss](../fig/loss.png)" ]
}

@test "report shows a missing score as '-' and writes to stdout by default" {
    echo '{"something_else": 1}' > res/odd.json
    run -0 report --model m fid=res/odd.json,is=res/fid.json
    [ "${lines[3]}" = "| m | - | - | - | - | - | 100 | - |" ] # N: the n1 of any of its files
}

@test "report reads torch-fidelity style keys from one file" {
    echo '{"frechet_inception_distance": 18.12198, "inception_score_mean": 11.23678, "inception_score_std": 0.09514061, "kernel_inception_distance_mean": 0.01369556, "kernel_inception_distance_std": 0.001310059}' > res/all.json
    run -0 report --model m fid=res/all.json,is=res/all.json,kid=res/all.json,n=50000
    [ "${lines[3]}" = "| m | 18.12 | 11.24 ± 0.10 | 0.0137 ± 0.0013 | - | - | 50000 | - |" ]
}

@test "report takes precision and recall from score --prc --json, or as numbers" {
    run -0 report --model m prc=res/prc.json --model s precision=0.5,recall=0.125,n=3
    [ "${lines[3]}" = "| m | - | - | - | 0.654 | 0.250 | 100 | - |" ] # N: score's n_gen
    [ "${lines[4]}" = "| s | - | - | - | 0.500 | 0.125 | 3 | - |" ]
    run -0 score --prc --json "$FIX/prdc/small_gen.npy" "$FIX/prdc/small_real.npy"
    echo "$output" > res/score.json
    run -0 report --model m prc=res/score.json
    [ "${lines[3]}" = "| m | - | - | - | 0.333 | 0.950 | 30 | - |" ]
    run -2 --separate-stderr report --model m precision=high
    [ "$stderr" = "report: model m: precision=high: want a number" ]
}

@test "report: fdd= adds an FD-DINOv2 column, - where a model has none; without it the table is unchanged" {
    run -0 --separate-stderr score --fd-dinov2 --json --dinov2-weights "$FIX/dinov2/small.pth" "$FIX/dinov2/img32.npy" "$FIX/inception/img40x24.npy"
    echo "$output" > res/fdd.json
    echo '{"fid": 1.5, "n1": 3}' > res/nofdd.json
    run -0 report --model m fid=res/fid.json,fdd=res/fdd.json --model n fdd=res/nofdd.json --model o fdd=2.5,n=4
    [ "${lines[1]}" = "| model | FID | FD-DINOv2 | IS | KID | precision | recall | N | seconds |" ]
    [ "${lines[2]}" = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" ]
    [ "${lines[3]}" = "| m | 123.46 | 0.03 | - | - | - | - | 100 | - |" ]
    [ "${lines[4]}" = "| n | - | - | - | - | - | - | - | - |" ]
    [ "${lines[5]}" = "| o | - | 2.50 | - | - | - | - | 4 | - |" ]
    run -0 report --model m fid=res/fid.json
    [ "${lines[1]}" = "| model | FID | IS | KID | precision | recall | N | seconds |" ]
}

@test "report rejects bad input and leaves no file" {
    echo '{"fid": ' > res/bad.json
    run -1 --separate-stderr report --model m fid=res/bad.json -o out.md
    [ -z "$output" ]
    [[ "$stderr" == "report: res/bad.json: "* ]]
    run -1 --separate-stderr report --model m grid=res/none.png -o out.md
    [[ "$stderr" == "report: res/none.png: "* ]]
    run -1 --separate-stderr report --model m fid=res/none.json -o out.md
    [[ "$stderr" == "report: res/none.json: "* ]]
    run -2 --separate-stderr report --model m what=1 -o out.md
    [[ "$stderr" == "report: model m: unknown key 'what'"* ]]
    run -2 --separate-stderr report fid=1 -o out.md
    [[ "$stderr" == "report: 'fid=1' before any --model"* ]]
    [ ! -e out.md ]
}
