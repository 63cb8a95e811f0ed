#!/usr/bin/env bats
# plot: CSV columns -> PNG line chart.
load helpers

setup() {
    setup_tools
    cd "$BATS_TEST_TMPDIR"
    printf 'step,loss,val_loss\n0,5.2,\n10,3.1,\n20,2.5,2.9\n30,2.0,\n40,1.7,2.1\n' > train.csv
}

# "WIDTHxHEIGHT" from a PNG's signature and IHDR chunk, or "not a png"
png_size() {
    local b
    b=$(od -A n -t u1 -N 24 "$1" | tr -s ' \n' ' ')
    read -r -a v <<< "$b"
    [ "${v[*]:0:8}" = "137 80 78 71 13 10 26 10" ] && [ "${v[*]:12:4}" = "73 72 68 82" ] || { echo "not a png"; return; }
    echo "$(( (v[16] << 24) | (v[17] << 16) | (v[18] << 8) | v[19] ))x$(( (v[20] << 24) | (v[21] << 16) | (v[22] << 8) | v[23] ))"
}

@test "plot without arguments prints usage and exits 2" {
    run -2 --separate-stderr plot
    [ -z "$output" ]
    [[ "$stderr" == "plot: FILE.csv is required"*"usage: plot "* ]]
    run -0 plot --help
    [[ "$output" == "usage: plot "* ]]
}

@test "plot --help names every option, its defaults and an example" {
    help_names_options plot tools/plot.c
}

@test "plot names a missing option; --title and --output spelled out, -t kept" {
    run -2 --separate-stderr plot train.csv -o x.png
    [ "${stderr%%$'\n'*}" = "plot: --y COL is required" ]
    run -2 --separate-stderr plot train.csv --y loss
    [ "${stderr%%$'\n'*}" = "plot: -o OUT.png is required" ]
    run -0 plot train.csv --y loss --output a.png --title T
    run -0 plot train.csv --y loss -o b.png -t T
    cmp a.png b.png
}

@test "plot writes a PNG of the default size" {
    run -0 plot train.csv --x step --y loss,val_loss -o loss.png --title "VAE loss"
    [ -z "$output" ]
    [ "$(png_size loss.png)" = "640x400" ]
}

@test "plot honours --width and --height, and --logy" {
    run -0 plot train.csv --x step --y loss -o small.png --width 320 --height 200 --logy
    [ "$(png_size small.png)" = "320x200" ]
}

@test "plot is deterministic" {
    plot train.csv --x step --y loss,val_loss -o a.png
    plot train.csv --x step --y loss,val_loss -o b.png
    cmp a.png b.png
}

@test "plot draws something: different data, different picture" {
    plot train.csv --x step --y loss -o a.png
    plot train.csv --x step --y val_loss -o b.png
    ! cmp -s a.png b.png
}

@test "plot rejects an unknown column and leaves no file" {
    run -1 --separate-stderr plot train.csv --x step --y nope -o x.png
    [ -z "$output" ]
    [ "$stderr" = "plot: train.csv: no column 'nope'" ]
    [ ! -e x.png ]
}

@test "plot rejects empty and non-numeric CSV files" {
    : > empty.csv
    run -1 --separate-stderr plot empty.csv --y a -o x.png
    [ "$stderr" = "plot: empty.csv: empty CSV file (want a header line)" ]
    printf 'a,b\nx,y\n' > text.csv
    run -1 --separate-stderr plot text.csv --y b -o x.png
    [ "$stderr" = "plot: text.csv: no numeric rows in the columns to plot" ]
    run -1 --separate-stderr plot missing.csv --y b -o x.png
    [[ "$stderr" == "plot: missing.csv: "* ]]
    [ ! -e x.png ]
}

@test "plot rejects bad sizes" {
    run -2 --separate-stderr plot train.csv --y loss -o x.png --width 10
    [[ "$stderr" == "plot: --width: "* ]]
}

@test "plot checks -o before the work" {
    mkdir dir
    run -1 --separate-stderr plot train.csv --x step --y loss -o dir
    [ "$stderr" = "plot: dir: is a directory" ]
}

@test "plot names the path it could not write, once" {
    run -1 --separate-stderr plot train.csv --y loss -o "$BATS_TEST_TMPDIR/no/such/loss.png"
    [ "$stderr" = "plot: $BATS_TEST_TMPDIR/no/such/loss.png: cannot create a file in $BATS_TEST_TMPDIR/no/such: No such file or directory" ]
    mkdir dir.png
    run -1 --separate-stderr plot train.csv --y loss -o dir.png
    [ "$stderr" = "plot: dir.png: is a directory" ]
    [ -z "$(ls | grep 'dir\.png\.')" ]
}
