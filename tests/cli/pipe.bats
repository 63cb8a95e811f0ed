#!/usr/bin/env bats
# pipe: the pipeline runner, on small shell-stage pipelines in tests/fixtures/pipe/.
load helpers

setup() {
    setup_tools
    cd "$BATS_TEST_TMPDIR"
    cp "$FIX"/pipe/*.yaml .
    printf 'src\n' > src.txt
}

# the names of the stages that ran, one line, in order
ran() { if [ -e log.txt ]; then tr '\n' ' ' < log.txt; fi; }

@test "pipe without arguments prints usage and exits 2" {
    run -2 --separate-stderr pipe
    [ -z "$output" ]
    [[ "$stderr" == *"usage: pipe run FILE"* ]]
}

@test "pipe names a missing subcommand or FILE, and an unknown subcommand" {
    run -2 --separate-stderr pipe
    [ "${stderr%%$'\n'*}" = "pipe: a subcommand is required: run, status, dag or time" ]
    run -2 --separate-stderr pipe go basic.yaml
    [ "${stderr%%$'\n'*}" = "pipe: unknown subcommand 'go' (want run, status, dag or time)" ]
    run -2 --separate-stderr pipe run -q
    [ "${stderr%%$'\n'*}" = "pipe: FILE is required" ]
}

@test "pipe --help names every option and an example" {
    help_names_options pipe tools/pipe.c
}

@test "pipe --help prints usage on stdout" {
    run -0 pipe --help
    [[ "$output" == "usage: pipe run FILE"* ]]
    run -0 pipe run --help
    [[ "$output" == "usage: pipe run FILE"* ]]
}

@test "pipe rejects a bad -j" {
    run -2 --separate-stderr pipe run basic.yaml -j 0
    [[ "$stderr" == "pipe: --jobs: bad value: 0 (want an integer from 1 to 64)"* ]]
    run -2 --separate-stderr "$(command -v pipe)" run basic.yaml --bogus
    [[ "$stderr" == "pipe: unrecognized option '--bogus'"* ]]
    [ ! -e log.txt ]
}

@test "pipe run runs every stage once, in dependency order" {
    run -0 --separate-stderr pipe run basic.yaml
    [ -z "$output" ]
    [ "$(ran)" = "make_input upper count join " ]
    [ "$(cat out/joined.txt)" = "$(printf 'SRC\nHELLO\n1\n2\n3')" ]
    [ -s .pipe/basic.lock ]
    [[ "$stderr" == *"pipe: running make_input (never run)"* ]]
}

@test "pipe run again runs nothing when nothing changed" {
    pipe run -q basic.yaml
    run -0 --separate-stderr pipe run basic.yaml
    [ "$(ran)" = "make_input upper count join " ]
    [ "$stderr" = "pipe: basic.yaml: everything is up to date" ]
    run -0 --separate-stderr pipe status basic.yaml
    [ -z "$output" ]
}

@test "a changed dep re-runs exactly the stages downstream of it" {
    pipe run -q basic.yaml
    rm log.txt
    printf 'changed\n' > src.txt
    run -0 pipe run -q basic.yaml
    [ "$(ran)" = "make_input upper join " ]
    [ "$(head -1 out/joined.txt)" = "CHANGED" ]
}

@test "-P overrides a param and re-runs exactly the stages using it" {
    pipe run -q basic.yaml
    rm log.txt
    run -0 pipe run -q basic.yaml -P n=5
    [ "$(ran)" = "count join " ]
    [ "$(tail -1 out/joined.txt)" = "5" ]
    rm log.txt
    run -0 pipe run -q -P greeting=bye basic.yaml -P n=5
    [ "$(ran)" = "make_input upper join " ]
    [ "$(sed -n 2p out/joined.txt)" = "BYE" ]
}

@test "-P of an unknown param or without '=' is an error before anything runs" {
    run -1 --separate-stderr pipe run basic.yaml -P lr=1
    [ "$stderr" = "pipe: basic.yaml: -P lr=1: no param 'lr' in the pipeline" ]
    run -1 --separate-stderr pipe run basic.yaml -P n
    [[ "$stderr" == "pipe: basic.yaml: -P n: want NAME=VALUE" ]]
    [ ! -e log.txt ]
}

@test "a changed or deleted out re-runs its stage" {
    pipe run -q basic.yaml
    rm log.txt
    echo junk > count.txt
    run -0 --separate-stderr pipe status basic.yaml
    [ "$output" = "count: out count.txt changed
join: upstream stage count is stale" ]
    run -0 pipe run -q basic.yaml
    [ "$(ran)" = "count " ] # count.txt comes back identical: join is up to date
    rm out/joined.txt
    run -0 --separate-stderr pipe status basic.yaml
    [ "$output" = "join: out out/joined.txt missing" ]
}

@test "status explains what is stale and why" {
    run -0 --separate-stderr pipe status basic.yaml
    [ "$output" = "make_input: never run
upper: never run
count: never run
join: never run" ]
    pipe run -q basic.yaml
    run -0 --separate-stderr pipe status basic.yaml -P greeting=hi
    [ "$output" = "make_input: param greeting changed
upper: upstream stage make_input is stale
join: upstream stage upper is stale" ]
    printf 'x\n' > src.txt
    run -0 --separate-stderr pipe status basic.yaml
    [ "$output" = "make_input: dep src.txt changed
upper: upstream stage make_input is stale
join: upstream stage upper is stale" ]
    [ "$(ran)" = "make_input upper count join " ]
}

@test "--dry-run lists the stages and commands and runs nothing" {
    run -0 --separate-stderr pipe run --dry-run basic.yaml
    [ "${lines[0]}" = "make_input: never run" ]
    [ "${lines[1]}" = "	{ cat src.txt; printf '%s\n' 'hello'; } > in.txt && echo make_input >> log.txt" ]
    [ "${lines[6]}" = "join: never run" ]
    [ ! -e log.txt ]
    [ ! -e in.txt ]
    [ ! -e .pipe ]
    pipe run -q basic.yaml
    run -0 pipe run -n basic.yaml -P n=9
    [ "$output" = "count: param n changed
	seq 9 > count.txt && echo count >> log.txt
join: upstream stage count is stale
	cat up.txt count.txt > out/joined.txt && echo join >> log.txt" ]
    [ "$(tail -1 count.txt)" = "3" ]
}

@test "targets run only themselves and what they need" {
    run -0 pipe run -q basic.yaml upper
    [ "$(ran)" = "make_input upper " ]
    [ ! -e count.txt ]
    run -1 --separate-stderr pipe run basic.yaml nosuch
    [ "$stderr" = "pipe: basic.yaml: no stage 'nosuch'" ]
}

@test "--force re-runs up-to-date stages" {
    pipe run -q basic.yaml
    rm log.txt
    run -0 pipe run -q -f basic.yaml count
    [ "$(ran)" = "count " ]
}

@test "dag prints each stage with the stages it needs" {
    run -0 pipe dag basic.yaml
    [ "$output" = "make_input:
upper: make_input
count:
join: upper count" ]
    run -0 pipe dag --dot foreach.yaml
    [[ "$output" == *'"train@0.1" -> "eval@small";'* ]]
    [ ! -e log.txt ]
}

@test "foreach expands into one stage per item" {
    run -0 pipe run -q foreach.yaml
    [ "$(cat lr-0.1.txt)" = "lr=0.1 epochs=2" ]
    [ "$(cat lr-0.01.txt)" = "lr=0.01 epochs=2" ]
    [ "$(cat eval-small.txt)" = "small n=1 lr=0.1 epochs=2" ]
    [ "$(cat eval-big.txt)" = "big n=2 lr=0.01 epochs=2" ]
    run -0 pipe status foreach.yaml -P epochs=3
    [ "${lines[0]}" = "train@0.1: param epochs changed" ]
    [ "${#lines[@]}" -eq 4 ]
    run -0 pipe run -q foreach.yaml eval@big -P epochs=3
    [ "$(cat eval-big.txt)" = "big n=2 lr=0.01 epochs=3" ]
    [ "$(cat lr-0.1.txt)" = "lr=0.1 epochs=2" ]
}

@test "a failing stage stops the run, names itself and leaves no outs" {
    run -1 --separate-stderr pipe run -q fail.yaml
    [ -z "$output" ]
    [ "$stderr" = "pipe: stage bad failed with exit status 3" ]
    [ -e good.txt ]
    [ ! -e half.txt ]
    [ ! -e after.txt ]
    run -0 pipe status fail.yaml
    [ "$output" = "bad: never run
after: never run" ]
}

@test "-j 2 runs independent stages at the same time" {
    run -0 pipe run -q -j 2 parallel.yaml
    [ "$(cat both.txt)" = "$(printf 'a\nb')" ]
}

@test "-j N shares the cores out through OMP_NUM_THREADS unless it is set" {
    printf 'stages:\n  t:\n    cmd: printenv OMP_NUM_THREADS > t.txt || echo unset > t.txt\n    outs: [t.txt]\n' > omp.yaml
    cores=$(nproc)
    run -0 env -u OMP_NUM_THREADS pipe run -q -f omp.yaml
    [ "$(cat t.txt)" = unset ]
    run -0 env -u OMP_NUM_THREADS pipe run -q -f -j 2 omp.yaml
    [ "$(cat t.txt)" = "$(( cores > 2 ? cores / 2 : 1 ))" ]
    run -0 env -u OMP_NUM_THREADS pipe run -q -f -j 64 omp.yaml
    [ "$(cat t.txt)" = 1 ]
    run -0 env OMP_NUM_THREADS=3 pipe run -q -f -j 2 omp.yaml
    [ "$(cat t.txt)" = 3 ]
}

@test "stages find the tools next to pipe on PATH" {
    run -0 env PATH=/usr/bin:/bin "$(command -v pipe)" run -q tools.yaml
    [[ "$(cat help.txt)" == "usage: pipe run FILE"* ]]
}

@test "SIGINT stops the running stage, removes its outs and exits 130" {
    pipe run -q slow.yaml slow 2> err.txt &
    pid=$!
    for i in $(seq 100); do [ -e started ] && break; sleep 0.1; done
    [ -e started ]
    [ -e slow.txt ]
    kill -INT "$pid"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 130 ]
    [ ! -e slow.txt ]
    [ "$(cat err.txt)" = "pipe: interrupted: stopped stage slow and removed its outs" ]
    ! kill -0 "$(cat slow.pid)" 2> /dev/null
    run -0 pipe status slow.yaml slow
    [ "$output" = "slow: never run" ]
}

bad_yaml() { # FILE MESSAGE: exit 1 before anything runs, one stderr line
    run -1 --separate-stderr pipe run "$1"
    [ -z "$output" ]
    [ "$stderr" = "pipe: $1:$2" ]
    [ ! -e .pipe ]
    [ "$(ls | grep -v -e '\.yaml$' -e '^separate-stderr' | tr '\n' ' ')" = "src.txt " ]
}

@test "bad YAML syntax names the line" {
    bad_yaml bad-syntax.yaml "5: bad YAML: did not find expected ',' or ']' while parsing a flow sequence at line 4"
}

@test "a cycle is an error" {
    bad_yaml bad-cycle.yaml "2: cycle: a needs b needs c needs a"
    bad_yaml bad-self.yaml "4: cycle: stage 'a' depends on its own out 'a.txt'"
}

@test "an out made by two stages is an error" {
    bad_yaml bad-two-makers.yaml "7: out 'x.txt' of stage 'b' is also an out of stage 'a'"
    bad_yaml bad-overlap.yaml "7: out 'd/b.txt' of stage 'b' overlaps out 'd' of stage 'a'"
}

@test "an undefined param is an error" {
    bad_yaml bad-param.yaml "5: undefined param 'lr'"
    bad_yaml bad-item.yaml "3: '\${item}' outside foreach"
}

@test "unknown and duplicate keys are errors" {
    bad_yaml bad-key.yaml "5: unknown key 'dependencies' in stage 'a'"
    bad_yaml bad-top-key.yaml "1: unknown key 'vars' (want 'params' or 'stages')"
    bad_yaml bad-dup-key.yaml "5: duplicate key 'cmd' in a stage"
    bad_yaml bad-foreach.yaml "4: unknown key 'cmd' in foreach stage 'train' (put it under 'do')"
    bad_yaml bad-no-cmd.yaml "2: stage 'a' has no 'cmd'"
}

@test "a dep that no stage makes and that does not exist is an error" {
    bad_yaml bad-missing-dep.yaml "5: dep 'no-such-input.txt' of stage 'a' does not exist and no stage makes it"
}

@test "an empty or missing pipeline file is an error" {
    run -1 --separate-stderr pipe run bad-empty.yaml
    [ "$stderr" = "pipe: bad-empty.yaml: empty pipeline: want a mapping with 'stages'" ]
    run -1 --separate-stderr pipe status nosuch.yaml
    [[ "$stderr" == "pipe: nosuch.yaml: "* ]]
}

@test "a corrupt lock file is an error that says what to do" {
    mkdir .pipe
    printf 'garbage\n' > .pipe/basic.lock
    run -1 --separate-stderr pipe run basic.yaml
    [ "$stderr" = "pipe: .pipe/basic.lock:1: malformed lock file (delete it to run every stage again)" ]
    [ ! -e log.txt ]
}

@test "pipe time writes the seconds a command took" {
    run -0 pipe time -o t.txt sh -c 'echo hi'
    [ "$output" = "hi" ]
    [[ "$(cat t.txt)" =~ ^[0-9]+\.[0-9]{3}$ ]]
    run -3 pipe time -o t2.txt sh -c 'exit 3'
    [ ! -e t2.txt ]
    run -2 --separate-stderr pipe time sh -c true
    [[ "$stderr" == *"usage: pipe"* ]]
}

@test "persist: true keeps a stage's outs before a run and after a failure" {
    run -1 pipe run -q slow.yaml resumable -P fail=1
    [ "$(cat part.txt)" = "more" ]
    run -0 pipe run -q slow.yaml resumable
    [ "$(cat part.txt)" = "$(printf 'more\nmore')" ]
}

@test "foreach item values may name params; a cmd list runs in order" {
    run -0 --separate-stderr pipe run -q foreach-params.yaml -P epochs=7
    [ "$output" = "small 100
big 7" ]
    [ "$(cat res/big.txt)" = "big 7" ]
    run -0 pipe status foreach-params.yaml
    [ "$output" = "score@big: param epochs changed" ]
}

@test "a foreach item naming a param names its stage with the value" {
    cat > named.yaml << 'EOF'
params:
  n: 100
stages:
  count:
    foreach:
      - real-${n}
      - fake
    do:
      cmd: echo "${item}" > "${item}.txt"
      outs:
        - ${item}.txt
EOF
    run -0 pipe dag named.yaml
    [ "$output" = "count@real-100:
count@fake:" ]
    run -0 pipe run -q named.yaml count@real-7 -P n=7
    [ "$(cat real-7.txt)" = "real-7" ]
    [ ! -e fake.txt ]
}

@test "always_changed: true runs the stage every time" {
    pipe run -q always.yaml
    pipe run -q always.yaml
    [ "$(ran)" = "stamp stamp " ]
    run -0 pipe status always.yaml
    [ "$output" = "stamp: always_changed" ]
}

@test "pipe time checks -o before running the command" {
    run -1 --separate-stderr pipe time -o /proc/t touch ran
    [[ "$stderr" == "pipe: /proc/t: cannot create a file in /proc: "* ]]
    [ ! -e ran ]
}

# the stage of two.yaml waits for the file go: a failing test must not leave it waiting
teardown() { touch "$BATS_TEST_TMPDIR/go"; }

@test "two 'pipe run' of one pipeline at once: the second refuses, saying why" {
    cat > two.yaml <<'YAML'
stages:
  wait:
    cmd: echo wait >> log.txt; touch started; while [ ! -e go ]; do sleep 0.05; done; echo done > wait.txt
    outs: [wait.txt]
YAML
    pipe run -q two.yaml 3>&- &
    pid=$!
    for i in $(seq 100); do [ -e started ] && break; sleep 0.1; done
    [ -e started ]
    run -1 --separate-stderr timeout 20 pipe run two.yaml
    [ "$stderr" = "pipe: two.yaml: another 'pipe run' of this pipeline is running (pid $pid); wait for it to finish" ]
    touch go
    wait "$pid"
    # the stage ran once and the lock file is whole: everything is up to date
    [ "$(ran)" = "wait " ]
    run -0 --separate-stderr pipe run two.yaml
    [ "$stderr" = "pipe: two.yaml: everything is up to date" ]
    [ "$(ran)" = "wait " ]
}

@test "a 'pipe run' killed with -9 does not block the next one" {
    cat > two.yaml <<'YAML'
stages:
  wait:
    cmd: echo wait >> log.txt; touch started; while [ ! -e go ]; do sleep 0.05; done; echo done > wait.txt
    outs: [wait.txt]
YAML
    pipe run -q two.yaml 3>&- &
    pid=$!
    for i in $(seq 100); do [ -e started ] && break; sleep 0.1; done
    kill -9 "$pid"
    wait "$pid" || true
    touch go   # the orphaned stage ends too
    run -0 --separate-stderr pipe run -q two.yaml
    [ "$(cat wait.txt)" = done ]
}

@test "an empty param leaves no trace: no space, no dependency; set, it prefixes the command" {
    printf 'params:\n  launch: ""\nstages:\n  a:\n    cmd: ${launch} echo a > a.txt\n    outs:\n      - a.txt\n  b:\n    cmd: echo x${launch}y ${launch} > b.txt\n    outs:\n      - b.txt\n' > launch.yaml
    run -0 pipe run -n launch.yaml
    [ "$output" = "$(printf 'a: never run\n\techo a > a.txt\nb: never run\n\techo xy > b.txt')" ]
    pipe run -q launch.yaml
    [ "$(cat a.txt)" = a ]
    run -0 pipe status launch.yaml
    [ "$output" = "pipe: launch.yaml: everything is up to date" ]
    run -0 pipe run -n launch.yaml -P launch=env
    [ "$output" = "$(printf 'a: param launch added\n\tenv echo a > a.txt\nb: param launch added\n\techo xenvy env > b.txt')" ]
    pipe run -q launch.yaml -P launch=env
    [ "$(cat a.txt)" = a ]
}
