#!/usr/bin/env bats
# mkdemo: the built-in demo data set (procedural flower PNGs).
load helpers

setup() {
    setup_tools
    cd "$BATS_TEST_TMPDIR"
}

# "WIDTH HEIGHT" from a PNG's IHDR, after checking the signature
png_dims() {
    local -a v
    read -r -a v <<< "$(od -A n -t u1 -N 24 "$1" | tr -s ' \n' ' ')"
    [ "${v[*]:0:8}" = "137 80 78 71 13 10 26 10" ] || { echo "not a png"; return; }
    echo "$(( (v[18] << 8) | v[19] )) $(( (v[22] << 8) | v[23] ))"
}

@test "mkdemo without -o prints usage and exits 2" {
    run -2 --separate-stderr mkdemo -n 3
    [ -z "$output" ]
    [[ "$stderr" == "mkdemo: -o DIR is required"*"usage: mkdemo "* ]]
    run -2 --separate-stderr mkdemo -n 0 -o d
    [[ "$stderr" == "mkdemo: --num: bad value: 0 (want an integer from 1 to 1000000)"* ]]
    [ ! -e d ]
}

@test "mkdemo --help names every option, its defaults and an example" {
    help_names_options mkdemo tools/mkdemo.c
}

@test "mkdemo writes N PNG files of sizes 64..96 x 48..96" {
    run -0 mkdemo -n 12 -o demo
    [ -z "$output" ]
    [ "$(ls demo | wc -l)" -eq 12 ]
    [ -e demo/flower_0000.png ]
    [ -e demo/flower_0011.png ]
    sizes=""
    for f in demo/*.png; do
        read -r w h <<< "$(png_dims "$f")"
        [ "$w" -ge 64 ]
        [ "$w" -le 96 ]
        [ "$h" -ge 48 ]
        [ "$h" -le 96 ]
        sizes="$sizes $w"x"$h"
    done
    [ "$(echo $sizes | tr ' ' '\n' | sort -u | wc -l)" -gt 1 ] # varied
}

@test "mkdemo is deterministic for a seed and varies with it" {
    mkdemo -n 5 -o a
    mkdemo -n 5 -o b
    diff -r a b
    mkdemo -n 5 --seed 2 -o c
    ! cmp -s a/flower_0000.png c/flower_0000.png
    mkdemo -n 8 -o d
    cmp a/flower_0004.png d/flower_0004.png # image i depends only on (seed, i)
}

@test "mkdemo images decode with imgresize" {
    command -v imgresize > /dev/null || skip "imgresize not built yet"
    mkdemo -n 4 -o demo
    run -0 bash -c "imgresize -s 32 demo | npy_shape"
    [ "$output" = "4,32,32,3" ]
}

@test "mkdemo -o refuses a folder holding files it did not make, and leaves it alone" {
    mkdir notes
    echo precious > notes/todo.txt
    run -1 --separate-stderr mkdemo -n 3 -o notes
    [ "$stderr" = "mkdemo: notes: holds todo.txt, which mkdemo did not make: give an empty or new folder" ]
    [ "$(ls notes)" = "todo.txt" ]
    echo data > file
    run -1 --separate-stderr mkdemo -n 3 -o file
    [ "$stderr" = "mkdemo: file: exists and is not a directory" ]
    [ "$(ls | grep -v -e '^bats' -e '^separate-stderr' | xargs)" = "file notes" ]
}

@test "mkdemo -o over an earlier output replaces it whole: old and new images never mix" {
    mkdemo -n 6 -o demo
    mkdemo -n 3 --seed 2 -o demo
    [ "$(ls demo | xargs)" = "flower_0000.png flower_0001.png flower_0002.png" ]
    mkdemo -n 3 --seed 2 -o fresh
    diff -r demo fresh
    mkdir empty
    mkdemo -n 2 -o empty/
    [ "$(ls empty | wc -l)" -eq 2 ]
    [ "$(stat -c %a fresh)" = "$(mkdir m && stat -c %a m)" ]
    [ "$(ls | grep -c '\.\(old-\)*[A-Za-z0-9]\{6\}$')" -eq 0 ]
}

@test "mkdemo that fails midway (a full disk) leaves no folder" {
    run -1 --separate-stderr bash -c "ulimit -f 13; exec mkdemo -n 50 -o demo"
    [[ "$stderr" == "mkdemo: demo: "*"File too large" ]]
    [ ! -e demo ]
    [ "$(ls | grep -c '^demo')" -eq 0 ]
}
