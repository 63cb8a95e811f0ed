#!/usr/bin/env bats
# The shipped pipelines (pipelines/*.yaml) as written, without running them: what `pipe run -n`
# would run. flowers.yaml and pets.yaml need the network and hours; demo.bats runs the demo.
load helpers

setup() {
    setup_tools
    command -v pipe > /dev/null || skip "tool pipe not built yet"
    cd "$BATS_TEST_TMPDIR"
}

# the commands `pipe run -n` prints for pipeline $1, one line each: "STAGE<TAB>COMMAND"
dry_run() {
    local P=()
    [ "$1" = demo ] && P=(-P "unet_config=$REPO/pipelines/demo-unet.json") # a dep in the repo
    pipe run -n "$REPO/pipelines/$1.yaml" "${P[@]}" |
        awk '/^[^\t]/ { sub(/:.*/, ""); stage = $0; next } { sub(/^\t/, ""); print stage "\t" $0 }'
}

# the value of option $2 in command $1 ("--model", "-n", "-o")
opt_of() { sed -E "s/.* $2 ([^ ]+).*/\\1/" <<< "$1"; }

@test "flowers.yaml and pets.yaml have the same stages" {
    diff <(sed -n '/^stages:/,$p' "$REPO/pipelines/flowers.yaml") \
        <(sed -n '/^stages:/,$p' "$REPO/pipelines/pets.yaml")
}

# issue 18: the report shows quality against cost for the fast sampler too
@test "every model the pipelines sample with DDIM is also sampled with PLMS 20 steps, timed, scored and reported" {
    for p in demo flowers pets; do
        dry_run $p > cmds
        [ "$(wc -l < cmds)" -gt 10 ]
        report=$(awk -F'\t' '$1 == "report" { print $2 }' cmds)
        n_ddim=0
        while IFS=$'\t' read -r stage cmd; do
            [[ $stage == sample@* && $cmd == *"--scheduler ddim "* ]] || continue
            n_ddim=$((n_ddim + 1))
            model=$(opt_of "$cmd" --model) n=$(opt_of "$cmd" -n)
            fast=$(awk -F'\t' -v m="$model" -v n="$n" '$1 ~ /^sample@/ &&
                index($2, "--scheduler pndm --steps 20 --model " m " -n " n " ") { print $2 }' cmds)
            [ -n "$fast" ] || { echo "$p: $stage has no PLMS 20-step twin"; return 1; }
            [ "$(wc -l <<< "$fast")" -eq 1 ] || { echo "$p: $stage has two twins"; return 1; }
            [[ $fast == "pipe time -o "* ]] || { echo "$p: untimed: $fast"; return 1; }
            key=$(opt_of "$fast" -o) key=${key%.npy}
            [[ $report == *"fid=$key-fid.json,is=$key-is.json,kid=$key-kid.json,prc=$key-prc.json,time=$key.time"* ||
               $report == *"fid=$key-fid.json,is=$key-is.json,kid=$key-kid.json,prc=$key-prc.json,fdd=$key-fdd.json,time=$key.time"* ]] ||
                { echo "$p: the report has no row for $key"; return 1; }
            for m in fid is kid prc; do
                grep -Fq "> $key-$m.json" cmds || { echo "$p: nothing writes $key-$m.json"; return 1; }
            done
        done < cmds
        # demo: the tiny DDPM; flowers, pets: the original and the fine-tuned at N=100, and N=1000
        [ $n_ddim -eq "$([ $p = demo ] && echo 1 || echo 3)" ] || { echo "$p: $n_ddim DDIM rows"; return 1; }
    done
}

# issue 19: an FD-DINOv2 column in the study's reports, - when the weights are absent
@test "flowers and pets: every N=100 row of the report has FD-DINOv2 from score --fd-dinov2-if-weights" {
    for p in flowers pets; do
        dry_run $p > cmds
        report=$(awk -F'\t' '$1 == "report" { print $2 }' cmds)
        local rows=0
        for key in vae ddim50 ddpm1000 pndm20 ft-ddim50 ft-ddpm1000 ft-pndm20; do
            f=results/$p/$key-fdd.json
            [[ $report == *"prc=results/$p/$key-prc.json,fdd=$f,time="* ]] ||
                { echo "$p: no FD-DINOv2 in the row of $key"; return 1; }
            grep -F "score results/$p/$key.npy results/$p/real-100.npy --fd-dinov2-if-weights --dinov2-weights weights/dinov2_vitl14_pretrain.pth --json > $f" cmds > /dev/null ||
                { echo "$p: nothing writes $f"; return 1; }
            rows=$((rows + 1))
        done
        [ $rows -eq 7 ]
        # the N=1000 rows have no DINOv2 pass
        [[ $report != *"big-fdd"* ]]
    done
}

# issue 17: -P launch="mpirun ..." runs the heavy commands on a cluster; empty, it is not there
@test "flowers and pets: -P launch=X puts X before every heavy command, and without it nothing changes" {
    local heavy='(ddpm-sample|vae-sample|ddpm-train|fid --save-features|kid --save-features|is-score) '
    for p in flowers pets; do
        dry_run $p > plain
        pipe run -n "$REPO/pipelines/$p.yaml" -P launch= |
            awk '/^[^\t]/ { sub(/:.*/, ""); stage = $0; next } { sub(/^\t/, ""); print stage "\t" $0 }' > empty
        cmp plain empty
        if grep 'launch\|mpirun\|  ' plain; then return 1; fi
        pipe run -n "$REPO/pipelines/$p.yaml" -P launch="mpirun -np 4 --hostfile h" |
            awk '/^[^\t]/ { sub(/:.*/, ""); stage = $0; next } { sub(/^\t/, ""); print stage "\t" $0 }' > launched
        # every heavy tool, wherever it runs in a command (after pipe time, in a list), is launched
        n=$(grep -cE "$heavy" plain)
        [ "$n" -ge 40 ]
        [ "$(grep -oE "mpirun -np 4 --hostfile h $heavy" launched | wc -l)" -eq "$(grep -oE "$heavy" plain | wc -l)" ]
        # the feature passes, sampling and fine-tuning stages start with it (sampling: timed)
        awk -F'\t' '$1 ~ /^(fid-features|kid-features|finetune)@/ && index($2, "mpirun -np 4 --hostfile h ") != 1 { bad = 1; print } END { exit bad }' launched
        awk -F'\t' '$1 ~ /^sample@/ && $2 !~ /^pipe time -o [^ ]+ mpirun -np 4 --hostfile h / { bad = 1; print } END { exit bad }' launched
        # and nothing else changes: removing X gives back the plain commands
        sed 's/mpirun -np 4 --hostfile h //g' launched | cmp - plain
    done
}
