#!/usr/bin/env bats
# pick-best: copies the model folder of the run with the best score; never deletes a folder
# it did not make.
load helpers

setup() {
    setup_tools
    # a subfolder: bats keeps its own files in $BATS_TEST_TMPDIR
    mkdir "$BATS_TEST_TMPDIR/w"
    cd "$BATS_TEST_TMPDIR/w"
    mkdir r1 r2
    echo one > r1/w
    echo two > r2/w
    printf '{\n    "step": 3,\n    "fid": 12.5,\n    "kid": 0.1,\n    "is": 4.5\n}\n' > r1.json
    printf '{"fid": 3.25e+00, "kid": 0.3, "is": 2.0}\n' > r2.json
}

@test "pick-best copies the run with the lowest fid, and records the table" {
    run -0 --separate-stderr pick-best -o best r1.json r2.json
    [ "$(cat best/w)" = "two" ]
    [ "$(head -1 best/picked.txt)" = "picked r2 (lowest fid)" ]
    [ "$(sed -n 2p best/picked.txt)" = "fid 3.25e+00 r2.json" ]
    [ "$stderr" = "pick-best: r2 has the lowest fid" ]
    [ "$(ls -A)" = "$(printf 'best\nr1\nr1.json\nr2\nr2.json')" ]
}

@test "pick-best -k kid picks by another key; --force replaces an older pick" {
    run -0 pick-best -o best r1.json r2.json
    run -1 --separate-stderr pick-best -k kid -o best r1.json r2.json
    [ "$stderr" = "pick-best: best: holds an earlier pick; --force replaces it" ]
    [ "$(cat best/w)" = "two" ]
    run -0 pick-best -k kid --force -o best r1.json r2.json
    [ "$(cat best/w)" = "one" ]
    [ "$(head -1 best/picked.txt)" = "picked r1 (lowest kid)" ]
}

@test "pick-best: the direction follows the metric, --min and --max override it" {
    run -0 --separate-stderr pick-best -k is -o a r1.json r2.json
    [ "$(cat a/w)" = "one" ]
    [ "$stderr" = "pick-best: r1 has the highest is" ]
    run -0 pick-best -k is --min -o b r1.json r2.json
    [ "$(cat b/w)" = "two" ]
    run -0 pick-best -k fid --max -o c r1.json r2.json
    [ "$(cat c/w)" = "one" ]
    run -2 --separate-stderr pick-best -k step -o d r1.json r2.json
    [[ "$stderr" == "pick-best: -k step: say whether lower (--min) or higher (--max) is better"* ]]
    run -0 pick-best -k step --max -o d r1.json
    [ ! -e best ]
}

@test "pick-best never deletes a folder it did not make" {
    mkdir notes
    echo precious > notes/todo
    run -1 --separate-stderr pick-best -o notes r1.json r2.json
    [ "$stderr" = "pick-best: notes: exists, is not empty and was not made by pick-best; not replacing it" ]
    run -1 --separate-stderr pick-best --force -o notes r1.json r2.json
    [ "$(cat notes/todo)" = precious ]
    echo data > file
    run -1 --separate-stderr pick-best -o file r1.json r2.json
    [ "$stderr" = "pick-best: file: exists and is not a folder" ]
    [ "$(cat file)" = data ]
    # a folder named like the old fixed temporary name is not touched either
    mkdir best.tmp
    echo mine > best.tmp/x
    run -0 pick-best -o best r1.json r2.json
    [ "$(cat best.tmp/x)" = mine ]
    # an empty folder is used
    mkdir empty
    run -0 pick-best -o empty/ r1.json r2.json
    [ "$(cat empty/w)" = two ]
    [ -z "$(ls -A | grep '^\.')" ]
}

@test "pick-best refuses -o equal to, inside or around an input run" {
    for o in r2 ./r2/ r2/sub "$PWD/r1" .; do
        run -1 --separate-stderr pick-best --force -o "$o" r1.json r2.json
        [[ "$stderr" == "pick-best: ${o%/}: "*" run "* ]]
    done
    ln -s r2 link
    run -1 --separate-stderr pick-best --force -o link/x r1.json r2.json
    [ "$(ls -A r2)" = w ]
    [ "$(cat r2/w)" = two ]
    [ "$(ls -A r1)" = w ]
}

@test "pick-best: a JSON without the key, or without its folder, is an error and leaves nothing" {
    printf '{"fid": 1}\n' > r3.json
    mkdir r3
    run -1 --separate-stderr pick-best -k kid -o best r1.json r3.json
    [ "$stderr" = 'pick-best: r3.json: no number for "kid"' ]
    [ ! -e best ]
    rm -r r2
    run -1 --separate-stderr pick-best -o best r1.json r2.json
    [ "$stderr" = "pick-best: r2: no model folder next to r2.json" ]
    [ "$(ls -A)" = "$(printf 'r1\nr1.json\nr2.json\nr3\nr3.json')" ]
}

@test "pick-best: usage; --help says each RUN.json needs its RUN/ folder" {
    run -2 pick-best r1.json
    [[ "$output" == "usage: pick-best "* ]]
    run -2 pick-best --bogus -o x r1.json
    run -0 pick-best --help
    [[ "$output" == "usage: pick-best "* ]]
    [[ "$output" == *"RUN.json needs its"*"RUN/ folder"* ]]
    [[ "$output" == *"--force"* ]]
}

@test "pick-best --help names every option, that RUN/ must be next to RUN.json, an example" {
    help_names_options pick-best tools/pick-best
    [[ "$output" == *"each RUN.json needs its RUN/ folder (the path without .json) beside it"* ]]
}
