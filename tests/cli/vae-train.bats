load helpers
setup() {
    setup_tools
    V="$FIX/vae"
    D="$BATS_TEST_TMPDIR/w"    # bats keeps its own files in $BATS_TEST_TMPDIR
    mkdir -p "$D"
    # small and fast: 40 images, batch 16 (3 steps an epoch, the last one of 8), latent 16
    TRAIN=(--data "$V/train.npy" --batch-size 16 --latent 16 --seed 3 -q)
}

# the .npy shape of $1 as '5,32,32,3', from its header
shape() { head -c 128 "$1" | tr -d '\0' | grep -ao "'shape': ([0-9, ]*)" | sed "s/'shape': (//; s/[ )]//g; s/,$//"; }

@test "vae-train --help prints usage on stdout" {
    run -0 --separate-stderr vae-train --help
    [[ "$output" == "usage: vae-train "* ]]
    [ -z "$stderr" ]
}

@test "vae-train --help names every option, its defaults and an example; SIGTERM is 143" {
    help_names_options vae-train tools/vae-train.c
    [[ "$output" == *"SIGTERM (exit status 143)"* ]]
    [[ "$output" != *"SIGTERM"*"exit 130"* ]]
}

@test "vae-train names a missing option and refuses --epochs 0 and a learning rate of 0" {
    run -2 --separate-stderr vae-train -o "$D/m.safetensors"
    [ "${stderr%%$'\n'*}" = "vae-train: --data TRAIN.npy is required" ]
    run -2 --separate-stderr vae-train --data "$V/train.npy"
    [ "${stderr%%$'\n'*}" = "vae-train: -o VAE.safetensors is required" ]
    run -2 --separate-stderr vae-train "${TRAIN[@]}" -o "$D/m.safetensors" --epochs 0
    [ "${stderr%%$'\n'*}" = "vae-train: --epochs: bad value: 0 (want an integer from 1 to 1000000)" ]
    run -2 --separate-stderr vae-train "${TRAIN[@]}" -o "$D/m.safetensors" --learning-rate 0
    [ "${stderr%%$'\n'*}" = "vae-train: --lr: bad value: 0 (want > 0)" ]
    [ -z "$(ls "$D")" ]
}

@test "vae-train takes diffusers' names: --learning-rate, --train_batch_size, --num-epochs" {
    vae-train "${TRAIN[@]}" -o "$D/a.safetensors" --epochs 1 --lr 2e-3 --batch-size 8
    vae-train --data "$V/train.npy" --latent 16 --seed 3 -q -o "$D/b.safetensors" \
        --num-epochs 1 --learning-rate 2e-3 --train_batch_size 8
    cmp "$D/a.safetensors" "$D/b.safetensors"
}

@test "vae-train --resume-from-checkpoint: PATH continues that run into -o; latest starts anew" {
    vae-train "${TRAIN[@]}" -o "$D/full.safetensors" --epochs 2
    run -0 --separate-stderr vae-train "${TRAIN[@]}" -o "$D/part.safetensors" --epochs 1 \
        --resume-from-checkpoint latest -q
    [ -z "$stderr" ]
    cp "$D/part.safetensors" "$D/keep.safetensors"
    vae-train "${TRAIN[@]}" -o "$D/next.safetensors" --epochs 2 --resume-from-checkpoint "$D/part.safetensors"
    cmp "$D/full.safetensors" "$D/next.safetensors"
    [ -s "$D/next.state.safetensors" ]
    cmp "$D/part.safetensors" "$D/keep.safetensors"
    vae-train "${TRAIN[@]}" -o "$D/part.safetensors" --epochs 2 --resume-from-checkpoint latest
    cmp "$D/full.safetensors" "$D/part.safetensors"
    run -2 --separate-stderr vae-train "${TRAIN[@]}" -o "$D/part.safetensors" --resume \
        --resume-from-checkpoint latest
    [[ "$stderr" == "vae-train: --resume and --resume-from-checkpoint exclude each other"* ]]
}

@test "vae-train without --data or -o is a usage error" {
    run -2 --separate-stderr vae-train -o "$D/m.safetensors"
    [[ "$stderr" == *"usage: vae-train "* ]]
    run -2 --separate-stderr vae-train --data "$V/train.npy"
    run -2 --separate-stderr vae-train --data "$V/train.npy" -o "$D/m.safetensors" --lr x
    [[ "$stderr" == "vae-train: --lr: bad value: x (want a number from 0 to 10)"* ]]
    run -2 --separate-stderr vae-train --data "$V/train.npy" -o "$D/m.safetensors" --batch-size 0
    [ -z "$output" ]
    [ -z "$(ls "$D")" ]
}

@test "vae-train writes the model, its state and a CSV log with a row per step" {
    run -0 --separate-stderr vae-train "${TRAIN[@]}" --val "$V/val.npy" -o "$D/m.safetensors" \
        --epochs 2 --log "$D/log.csv"
    [ -z "$output" ]
    [ -s "$D/m.safetensors" ]
    [ -s "$D/m.state.safetensors" ]
    [ "$(head -1 "$D/log.csv")" = "step,epoch,loss,recon,kl,val_loss,lr,seconds" ]
    [ "$(wc -l < "$D/log.csv")" -eq 7 ]          # header + 2 epochs x ceil(40/16) steps
    [ "$(cut -d, -f6 "$D/log.csv" | grep -c .)" -eq 3 ]  # val_loss at each epoch end
    # metadata PyTorch users need, in the JSON header
    head -c 1000 "$D/m.safetensors" | grep -aq '"latent":"16"'
    head -c 1000 "$D/m.safetensors" | grep -aq '"enc.0.weight"'
    head -c 1000 "$D/m.safetensors" | grep -aq '"dec.6.bias"'
    [ "$(ls "$D" | wc -l)" -eq 3 ]
}

@test "vae-train is reproducible: the same seed gives the same bytes" {
    vae-train "${TRAIN[@]}" -o "$D/a.safetensors" --epochs 1
    vae-train "${TRAIN[@]}" -o "$D/b.safetensors" --epochs 1
    cmp "$D/a.safetensors" "$D/b.safetensors"
    vae-train "${TRAIN[@]}" -o "$D/c.safetensors" --epochs 1 --seed 4
    run -1 cmp -s "$D/a.safetensors" "$D/c.safetensors"
}

@test "vae-train gives the same bytes on 1 and 2 threads, and resumes across them" {
    args=(--data "$V/train.npy" --batch-size 40 --latent 16 -q)   # chunks of 16, 16, 8
    vae-train "${args[@]}" -o "$D/t1.safetensors" --epochs 3 --threads 1
    vae-train "${args[@]}" -o "$D/t2.safetensors" --epochs 3 --threads 2
    cmp "$D/t1.safetensors" "$D/t2.safetensors"
    vae-train "${args[@]}" -o "$D/r.safetensors" --epochs 1 --threads 2
    vae-train "${args[@]}" -o "$D/r.safetensors" --epochs 3 --threads 1 --resume
    cmp "$D/t1.safetensors" "$D/r.safetensors"
}

@test "vae-train: 1 epoch + --resume 1 more equals 2 epochs exactly" {
    vae-train "${TRAIN[@]}" -o "$D/full.safetensors" --epochs 2
    vae-train "${TRAIN[@]}" -o "$D/part.safetensors" --epochs 1 --log "$D/l.csv"
    run -1 cmp -s "$D/full.safetensors" "$D/part.safetensors"
    vae-train --data "$V/train.npy" -q -o "$D/part.safetensors" --epochs 2 --resume --log "$D/l.csv"
    cmp "$D/full.safetensors" "$D/part.safetensors"
    # the log continues: one header, steps 1..6
    [ "$(cut -d, -f1 "$D/l.csv" | tr '\n' ' ')" = "step 1 2 3 4 5 6 " ]
}

@test "vae-train: --save-every checkpoints do not change the result" {
    vae-train "${TRAIN[@]}" -o "$D/full.safetensors" --epochs 3
    vae-train "${TRAIN[@]}" -o "$D/part.safetensors" --epochs 3 --save-every 4
    cmp "$D/full.safetensors" "$D/part.safetensors"
    vae-train "${TRAIN[@]}" -o "$D/s4.safetensors" --epochs 3 --save-every 4 --log "$D/l.csv"
    [ "$(wc -l < "$D/l.csv")" -eq 10 ]
}

@test "vae-train: SIGINT saves a checkpoint and exits 130; --resume finishes like an uninterrupted run" {
    args=(--data "$V/train.npy" --batch-size 8 --latent 16 --seed 3 -q --epochs 40 --save-every 0)
    vae-train "${args[@]}" -o "$D/full.safetensors"
    vae-train "${args[@]}" -o "$D/int.safetensors" --log "$D/int.csv" 2> "$D/err" &
    pid=$!
    # interrupt once training runs (3 steps logged), whatever the machine's speed
    for i in $(seq 600); do
        [ "$(cat "$D/int.csv" 2> /dev/null | wc -l)" -ge 4 ] && break
        sleep 0.05
    done
    kill -INT $pid
    rc=0
    wait $pid || rc=$?
    [ "$rc" -eq 130 ]
    grep -q "^vae-train: interrupted at step [0-9]* of 200" "$D/err"
    step=$(sed -n 's/^vae-train: interrupted at step \([0-9]*\) of 200.*/\1/p' "$D/err")
    [ "$step" -ge 3 ]
    [ "$step" -lt 200 ]
    [ -s "$D/int.safetensors" ]
    run -1 cmp -s "$D/full.safetensors" "$D/int.safetensors"
    vae-train "${args[@]}" -o "$D/int.safetensors" --resume
    cmp "$D/full.safetensors" "$D/int.safetensors"
    [ -z "$(ls "$D" | grep XXXX)" ]
    [ -z "$(ls "$D" | grep '\.safetensors\.')" ]
}

@test "vae-train --resume refuses changed hyper-parameters and other data" {
    vae-train "${TRAIN[@]}" -o "$D/m.safetensors" --epochs 1
    cp "$D/m.safetensors" "$D/keep"
    run -1 --separate-stderr vae-train --data "$V/train.npy" -o "$D/m.safetensors" --resume --batch-size 8
    [[ "$stderr" == "vae-train: --batch-size 8 differs from the checkpoint's 16"* ]]
    run -1 --separate-stderr vae-train --data "$V/val.npy" -o "$D/m.safetensors" --resume
    [[ "$stderr" == "vae-train: "*"m.safetensors: trained on 40 images, --data has 8" ]]
    cmp "$D/m.safetensors" "$D/keep"
}

@test "vae-train rejects images of the wrong size, dtype, or none, leaving no file" {
    for f in vae_16px vae_float vae_empty; do
        run -1 --separate-stderr vae-train --data "$FIX/bad/$f.npy" -o "$D/m.safetensors"
        [ -z "$output" ]
        [[ "$stderr" == "vae-train: $FIX/bad/$f.npy: "* ]]
        [ "$(echo "$stderr" | wc -l)" -eq 1 ]
    done
    run -1 --separate-stderr vae-train --data "$FIX/bad/vae_16px.npy" -o "$D/m.safetensors"
    [[ "$stderr" == *"want 32x32 images, got 16x16" ]]
    run -1 --separate-stderr vae-train --data "$D/nonexistent.npy" -o "$D/m.safetensors"
    [[ "$stderr" == "vae-train: $D/nonexistent.npy: "* ]]
    run -1 --separate-stderr vae-train --data "$V/train.npy" -o "$D/no/such/dir/m.safetensors"
    [ "$stderr" = "vae-train: $D/no/such/dir/m.safetensors: cannot create a file in $D/no/such/dir: No such file or directory" ]
    [ -z "$(ls "$D")" ]
}

@test "vae-train --resume rejects an unreadable checkpoint or another model's" {
    for f in vae_trunc vae_unet vae_missing; do
        cp "$FIX/bad/$f.safetensors" "$D/m.safetensors"
        run -1 --separate-stderr vae-train --data "$V/train.npy" -o "$D/m.safetensors" --resume
        [ -z "$output" ]
        [[ "$stderr" == "vae-train: $D/m.safetensors: "* ]]
        cmp "$FIX/bad/$f.safetensors" "$D/m.safetensors"
    done
    [[ "$stderr" == *"dec.6.bias"* ]]
    cp "$FIX/bad/vae_unet.safetensors" "$D/m.safetensors"
    run -1 --separate-stderr vae-train --data "$V/train.npy" -o "$D/m.safetensors" --resume
    [[ "$stderr" == *"not a VAE checkpoint"* ]]
    # a model without its state file
    rm "$D/m.safetensors"
    vae-train "${TRAIN[@]}" -o "$D/m.safetensors" --epochs 1
    rm "$D/m.state.safetensors"
    run -1 --separate-stderr vae-train --data "$V/train.npy" -o "$D/m.safetensors" --resume
    [[ "$stderr" == "vae-train: $D/m.state.safetensors: "* ]]
    [ "$(ls "$D")" = "m.safetensors" ]
}

@test "vae-train checks its outputs before training: /proc, a directory, a bad log" {
    # 100000 epochs would take hours: these must fail at once (timeout says 124 otherwise)
    long=(--data "$V/train.npy" --batch-size 16 --latent 16 -q --epochs 100000)
    run -1 --separate-stderr timeout 60 vae-train "${long[@]}" -o /proc/x.safetensors
    [[ "$stderr" == "vae-train: /proc/x.safetensors: cannot create a file in /proc: "* ]]
    [ "${#stderr_lines[@]}" -eq 1 ]
    mkdir "$D/dir"
    run -1 --separate-stderr timeout 60 vae-train "${long[@]}" -o "$D/dir"
    [ "$stderr" = "vae-train: $D/dir: is a directory" ]
    # all of a run's outputs or none: no dir.state.safetensors beside it
    [ "$(ls "$D")" = "dir" ]
    run -1 --separate-stderr timeout 60 vae-train "${long[@]}" -o "$D/m.safetensors" --log /proc/l.csv
    [[ "$stderr" == "vae-train: /proc/l.csv: cannot create a file in /proc: "* ]]
    mkdir "$D/m.state.safetensors"
    run -1 --separate-stderr timeout 60 vae-train "${long[@]}" -o "$D/m.safetensors"
    [ "$stderr" = "vae-train: $D/m.state.safetensors: is a directory" ]
    [ "$(ls "$D" | xargs)" = "dir m.state.safetensors" ]
}

@test "vae-train: kill -9 at any moment, then --resume, equals the uninterrupted run" {
    args=(--data "$V/train.npy" --batch-size 8 --latent 16 --seed 3 -q --epochs 40)
    vae-train "${args[@]}" -o "$D/full.safetensors" --log "$D/full.csv"
    # a checkpoint every step, so kills land in the middle of writing one too
    for delay in 0.05 0.13 0.21 0.3 0.37; do
        vae-train "${args[@]}" -o "$D/k.safetensors" --log "$D/k.csv" --save-every 1 \
            $([ -e "$D/k.state.safetensors" ] && echo --resume) 2> /dev/null &
        pid=$!
        sleep $delay
        kill -9 $pid 2> /dev/null || true
        wait $pid || true
    done
    [ -e "$D/k.state.safetensors" ]
    run -0 --separate-stderr vae-train "${args[@]}" -o "$D/k.safetensors" --log "$D/k.csv" --resume
    cmp "$D/full.safetensors" "$D/k.safetensors"
    # what a kill inside a save left (k.safetensors.PID.XXXXXX) is gone
    [ "$(ls "$D" | grep '^k\.' | xargs)" = "k.csv k.safetensors k.state.safetensors" ]
    # the log too reads as one run: every step once (the seconds column aside)
    diff <(cut -d, -f1-7 "$D/full.csv") <(cut -d, -f1-7 "$D/k.csv")
}

@test "vae-train removes the temporary files of a killed run's saves, not a running one's" {
    vae-train "${TRAIN[@]}" -o "$D/m.safetensors" --epochs 1
    true & dead=$!
    wait $dead
    touch "$D/m.safetensors.$dead.a1B2c3" "$D/m.state.safetensors.$dead.x9Y8z7"
    touch "$D/m.safetensors.$$.q1W2e3" "$D/m.safetensors.b4N5m6" "$D/other.$dead.a1B2c3"
    vae-train --data "$V/train.npy" -q -o "$D/m.safetensors" --epochs 2 --resume
    [ "$(ls "$D" | xargs)" = "m.safetensors m.safetensors.$$.q1W2e3 m.safetensors.b4N5m6 m.state.safetensors other.$dead.a1B2c3" ]
}

@test "vae-train resumes from the state when the model file lags behind it or is missing" {
    vae-train "${TRAIN[@]}" -o "$D/full.safetensors" --epochs 3
    # killed between the two renames of a checkpoint: the state is newer than the model
    vae-train "${TRAIN[@]}" -o "$D/m.safetensors" --epochs 1
    cp "$D/m.safetensors" "$D/m1"
    vae-train --data "$V/train.npy" -q -o "$D/m.safetensors" --epochs 2 --resume
    cp "$D/m1" "$D/m.safetensors"
    vae-train --data "$V/train.npy" -q -o "$D/m.safetensors" --epochs 3 --resume
    cmp "$D/full.safetensors" "$D/m.safetensors"
    # killed between the first state and the first model
    vae-train "${TRAIN[@]}" -o "$D/n.safetensors" --epochs 1
    rm "$D/n.safetensors"
    vae-train --data "$V/train.npy" -q -o "$D/n.safetensors" --epochs 3 --resume
    cmp "$D/full.safetensors" "$D/n.safetensors"
    # a model ahead of its state is not something vae-train writes: refused
    cp "$D/full.safetensors" "$D/n.safetensors"
    vae-train "${TRAIN[@]}" -o "$D/o.safetensors" --epochs 1
    cp "$D/full.safetensors" "$D/o.safetensors"
    run -1 --separate-stderr vae-train --data "$V/train.npy" -q -o "$D/o.safetensors" --epochs 4 --resume
    [ "$stderr" = "vae-train: $D/o.state.safetensors: state is at step 3 but $D/o.safetensors at step 9" ]
}

@test "vae-train on a full disk (ulimit -f): one clear line, no partial file" {
    run -1 --separate-stderr bash -c "ulimit -f 100; exec vae-train ${TRAIN[*]} -o '$D/m.safetensors' --epochs 1"
    [[ "$stderr" == "vae-train: $D/m.state.safetensors: "*"File too large" ]]
    [ "${#stderr_lines[@]}" -eq 1 ]
    [ -z "$(ls -A "$D")" ]
    # a later checkpoint that does not fit keeps the earlier one
    vae-train "${TRAIN[@]}" -o "$D/m.safetensors" --epochs 1
    cp "$D/m.state.safetensors" "$D/keep"
    run -1 --separate-stderr bash -c "ulimit -f 1000; exec vae-train --data '$V/train.npy' -q -o '$D/m.safetensors' --epochs 2 --resume"
    [[ "$stderr" == *"File too large" ]]
    cmp "$D/m.state.safetensors" "$D/keep"
    [ "$(ls "$D" | xargs)" = "keep m.safetensors m.state.safetensors" ]
}

@test "vae-train says how to transpose an (N,3,32,32) array" {
    npy_make "$D/nchw.npy" '|u1' '1, 3, 32, 32' 3072 '\x80'
    run -1 --separate-stderr vae-train --data "$D/nchw.npy" -o "$D/m.safetensors"
    [ "$stderr" = "vae-train: $D/nchw.npy: expected uint8 images (N,H,W,3), got uint8 (1,3,32,32): looks like PyTorch's (N,C,H,W); np.transpose(x, (0,2,3,1)) gives (N,H,W,C)" ]
}
