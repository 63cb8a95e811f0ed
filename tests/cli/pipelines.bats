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

# issue 19: an FD-DINOv2 column in the study's reports, - when the weights are absent; the real
# set goes through DINOv2 once (stage dinov2-real), every row reads its features
@test "flowers and pets: every N=100 row of the report has FD-DINOv2 against the real set's DINOv2 cache" {
    for p in flowers pets; do
        dry_run $p > cmds
        report=$(awk -F'\t' '$1 == "report" { print $2 }' cmds)
        cache=results/$p/real-100-dinov2.npy
        # one DINOv2 pass over the real images in the whole pipeline, in its own stage
        [ "$(grep -c -- '--save-dinov2-features' cmds)" -eq 1 ]
        grep -F -- "dinov2-real	" cmds | grep -F -- "score --save-dinov2-features results/$p/real-100.npy $cache --dinov2-weights weights/dinov2_vitl14_pretrain.pth" > /dev/null
        local rows=0
        for key in vae ddim50 ddpm1000 pndm20 ft-ddim50 ft-ddpm1000 ft-pndm20; do
            f=results/$p/$key-fdd.json
            [[ $report == *"prc=results/$p/$key-prc.json,fdd=$f,time="* ]] ||
                { echo "$p: no FD-DINOv2 in the row of $key"; return 1; }
            grep -Fx "fd-dinov2@$key	score results/$p/$key.npy $cache --fd-dinov2-if-weights --dinov2-weights weights/dinov2_vitl14_pretrain.pth --json > $f" cmds > /dev/null ||
                { echo "$p: nothing writes $f from the cache"; return 1; }
            pipe dag "$REPO/pipelines/$p.yaml" | grep -Fx "fd-dinov2@$key: sample@$key dinov2-real" ||
                { echo "$p: fd-dinov2@$key does not wait for the cache"; return 1; }
            rows=$((rows + 1))
        done
        [ $rows -eq 7 ]
        # the N=1000 rows have no DINOv2 pass
        [[ $report != *"big-fdd"* ]]
    done
}

# runs the commands of the stages dinov2-real and fd-dinov2@* of pipeline $1 as they are, in
# order, on fake samples under out/ (pipe itself would first sample and fetch): -P args follow
run_fdd_stages() {
    local p=$1
    shift
    pipe run -n "$REPO/pipelines/$p.yaml" -P out=out "$@" |
        awk '/^[^\t]/ { sub(/:.*/, ""); stage = $0; next } { sub(/^\t/, ""); print stage "\t" $0 }' |
        awk -F'\t' '$1 == "dinov2-real" || $1 ~ /^fd-dinov2@/' > fdd-cmds
    [ "$(wc -l < fdd-cmds)" -eq 8 ]
    [ "$(head -1 fdd-cmds | cut -f1)" = dinov2-real ]
    while IFS=$'\t' read -r stage cmd; do
        sh -c "$cmd" 2>> fdd-err || { echo "$stage failed: $cmd"; cat fdd-err; return 1; }
    done < fdd-cmds
}

# distinct sample sets per row, so a row scored on another's samples would show
fake_samples() {
    local I=$FIX/inception D=$FIX/dinov2
    mkdir -p out
    cp "$D/img32.npy" out/real-100.npy
    cp "$I/img32.npy" out/vae.npy
    cp "$I/img40x24.npy" out/ddim50.npy
    npycat -o out/ddpm1000.npy "$I/img32.npy" "$D/img32.npy"
    npycat -o out/pndm20.npy "$D/img32.npy" "$I/img32.npy"
    cp "$D/img32.npy" out/ft-ddim50.npy
    npycat -o out/ft-ddpm1000.npy "$I/img32.npy" "$I/img32.npy"
    npycat -o out/ft-pndm20.npy "$D/img32.npy" "$D/img32.npy" "$I/img32.npy"
}

@test "flowers and pets: the rows' FD-DINOv2 from the real set's cache are those of the images (small ViT)" {
    local W=$FIX/dinov2/small.pth
    for p in flowers pets; do
        rm -rf out fdd-err
        fake_samples
        run_fdd_stages $p -P dinov2_weights="$W"
        # the cache holds features (the small ViT is 64 wide), not the images
        [ "$(npyinfo --shape out/real-100-dinov2.npy)" = 3,64 ]
        for key in vae ddim50 ddpm1000 pndm20 ft-ddim50 ft-ddpm1000 ft-pndm20; do
            want=$(score out/$key.npy out/real-100.npy --fd-dinov2 --dinov2-weights "$W" --json |
                grep '"fd_dinov2"')
            [[ $want == *'"fd_dinov2": '[0-9]* ]]
            [ "$(grep '"fd_dinov2"' out/$key-fdd.json)" = "$want" ] ||
                { echo "$p $key: $(cat out/$key-fdd.json) vs $want"; return 1; }
        done
        # a mix-up of rows would show: the sets differ, so do their distances
        [ "$(grep -h '"fd_dinov2"' out/*-fdd.json | sort -u | wc -l)" -ge 6 ]
    done
}

@test "flowers and pets: without the DINOv2 weights the cache stage succeeds and every row is null (-)" {
    for p in flowers pets; do
        rm -rf out fdd-err
        fake_samples
        run_fdd_stages $p -P dinov2_weights=absent/dinov2.pth
        for key in vae ddim50 ddpm1000 pndm20 ft-ddim50 ft-ddpm1000 ft-pndm20; do
            grep -F '"fd_dinov2": null,' out/$key-fdd.json > /dev/null || { cat out/$key-fdd.json; return 1; }
        done
        [ "$(grep -c 'warning: fd_dinov2 not computed: absent/dinov2.pth: No such file' fdd-err)" -eq 7 ]
        # a file that is there but is no DINOv2 is still an error, in the cache stage
        echo junk > bad.pth
        run -1 sh -c "$(head -1 fdd-cmds | cut -f2 | sed 's|absent/dinov2.pth|bad.pth|g')"
    done
}

# issue 17: -P launch="mpirun ..." runs the heavy commands on a cluster; empty, it is not there
@test "flowers and pets: -P launch=X puts X before every heavy command, and without it nothing changes" {
    local heavy='(ddpm-sample|vae-sample|ddpm-train|fid --save-features|kid --save-features|is-score|score --save-dinov2-features|score [^ ]+ [^ ]+ --fd-dinov2-if-weights) '
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
        # the feature passes, FD-DINOv2 rows, sampling and fine-tuning stages start with it (sampling: timed)
        awk -F'\t' '$1 ~ /^(fid-features|kid-features|finetune|fd-dinov2)@/ && index($2, "mpirun -np 4 --hostfile h ") != 1 { bad = 1; print } END { exit bad }' launched
        awk -F'\t' '$1 ~ /^sample@/ && $2 !~ /^pipe time -o [^ ]+ mpirun -np 4 --hostfile h / { bad = 1; print } END { exit bad }' launched
        # and nothing else changes: removing X gives back the plain commands
        sed 's/mpirun -np 4 --hostfile h //g' launched | cmp - plain
    done
}
