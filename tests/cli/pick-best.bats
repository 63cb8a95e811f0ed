#!/usr/bin/env bats
# pick-best: copies the model folder of the run with the lowest score.
load helpers

setup() {
    setup_tools
    cd "$BATS_TEST_TMPDIR"
    mkdir r1 r2
    echo one > r1/w
    echo two > r2/w
    printf '{\n    "step": 3,\n    "fid": 12.5,\n    "kid": 0.1\n}\n' > r1.json
    printf '{"fid": 3.25e+00, "kid": 0.3}\n' > r2.json
}

@test "pick-best copies the run with the lowest fid, and records the table" {
    run -0 --separate-stderr pick-best -o best r1.json r2.json
    [ "$(cat best/w)" = "two" ]
    [ "$(head -1 best/picked.txt)" = "picked r2 (lowest fid)" ]
    [ "$(sed -n 2p best/picked.txt)" = "fid 3.25e+00 r2.json" ]
    [ "$stderr" = "pick-best: r2 has the lowest fid" ]
}

@test "pick-best -k kid picks by another key, replacing an older pick" {
    run -0 pick-best -o best r1.json r2.json
    run -0 pick-best -k kid -o best r1.json r2.json
    [ "$(cat best/w)" = "one" ]
}

@test "pick-best: a JSON without the key, or without its folder, is an error and leaves nothing" {
    run -1 --separate-stderr pick-best -k is -o best r1.json
    [ "$stderr" = 'pick-best: r1.json: no number for "is"' ]
    [ ! -e best ]
    [ ! -e best.tmp ]
    rm -r r2
    run -1 --separate-stderr pick-best -o best r1.json r2.json
    [ "$stderr" = "pick-best: r2: no model folder next to r2.json" ]
    [ ! -e best ]
    [ ! -e best.tmp ]
}

@test "pick-best: usage" {
    run -2 pick-best r1.json
    [[ "$output" == "usage: pick-best "* ]]
    run -0 pick-best --help
    [[ "$output" == "usage: pick-best "* ]]
}

@test "pick-best --help names every option, that RUN/ must be next to RUN.json, an example" {
    help_names_options pick-best tools/pick-best
    [[ "$output" == *"its run"*"folder RUN (the path without .json) must be next to it"* ]]
}
