load helpers
setup() {
    setup_tools
    G="$FIX/unet_grad"
    BAD="$FIX/bad"
    D="$BATS_TEST_TMPDIR/w"
    mkdir -p "$D"
    # the tiny 16x16 UNet and 10 images: batch 4 is 3 steps an epoch (the last of 2)
    TRAIN=(--data "$G/train16.npy" --train-batch-size 4 --lr-warmup-steps 2 --seed 5 -q)
}

@test "ddpm-train --help prints usage on stdout" {
    run -0 --separate-stderr ddpm-train --help
    [[ "$output" == "usage: ddpm-train "* ]]
    [ -z "$stderr" ]
}

@test "ddpm-train --help names every option, its defaults and an example" {
    help_names_options ddpm-train tools/ddpm-train.c
    [[ "$output" == *"--lr-warmup-steps N "*"(default 500)"* ]]
    [[ "$output" == *"--lr_warmup_steps"* ]]
}

@test "ddpm-train: a missing option is named; senseless values are refused" {
    run -2 --separate-stderr ddpm-train --init "$G/tiny" -o "$D/o"
    [ "${stderr%%$'\n'*}" = "ddpm-train: --data TRAIN.npy is required" ]
    run -2 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny"
    [ "${stderr%%$'\n'*}" = "ddpm-train: -o OUTDIR is required" ]
    run -2 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --checkpointing-steps 0
    [ "${stderr%%$'\n'*}" = "ddpm-train: --checkpointing-steps: bad value: 0 (want an integer >= 1)" ]
    run -2 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --num_epochs 0
    [ "${stderr%%$'\n'*}" = "ddpm-train: --num-epochs: bad value: 0 (want an integer from 1 to 100000000)" ]
    run -2 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --learning_rate 0
    [ "${stderr%%$'\n'*}" = "ddpm-train: --learning-rate: bad value: 0 (want > 0)" ]
    [ -z "$(ls "$D")" ]
}

@test "ddpm-train takes diffusers' underscore spellings" {
    run -0 --separate-stderr ddpm-train --data "$G/train16.npy" --train_batch_size 4 \
        --lr_warmup_steps 2 --seed 5 -q --init "$G/tiny" --output_dir "$D/o" --max_steps 1 \
        --learning_rate=1e-5 --lr_scheduler constant --checkpointing_steps 1
    [ -d "$D/o/checkpoint-1" ]
}

@test "ddpm-train: missing or bad arguments are usage errors" {
    run -2 --separate-stderr ddpm-train --data "$G/train16.npy" -o "$D/o"
    [[ "$stderr" == *"usage: ddpm-train "* ]]
    run -2 --separate-stderr ddpm-train --init "$G/tiny" -o "$D/o"
    run -2 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny"
    run -2 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --learning-rate x
    [[ "$stderr" == "ddpm-train: --learning-rate: bad value: x (want a number from 0 to 10)"* ]]
    run -2 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --lr-scheduler step
    run -2 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" --config "$G/tiny/config.json" -o "$D/o"
    run -2 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --eval-every 2
    [ -z "$output" ]
    [ -z "$(ls "$D")" ]
}

@test "ddpm-train fine-tunes a diffusers folder: model folder, checkpoints, CSV log" {
    run -0 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --num-epochs 2 \
        --checkpointing-steps 2 --checkpoints-total-limit 2 --log "$D/log.csv"
    [ -z "$output" ]
    for f in config.json scheduler_config.json diffusion_pytorch_model.safetensors; do
        [ -s "$D/o/$f" ]
    done
    # 2 epochs x 3 steps, checkpoints at 2, 4, 6, the last two kept
    [ "$(ls -d "$D"/o/checkpoint-* | xargs -n1 basename | tr '\n' ' ')" = "checkpoint-4 checkpoint-6 " ]
    [ -s "$D/o/checkpoint-6/training_state.safetensors" ]
    [ "$(head -1 "$D/log.csv")" = "step,epoch,loss,lr,grad_norm,seconds,fid,kid" ]
    [ "$(wc -l < "$D/log.csv")" -eq 7 ]
    [ "$(sed -n 2p "$D/log.csv" | cut -d, -f1,2,4)" = "1,1,0" ]   # warmup starts at lr 0
    [ "$(sed -n 7p "$D/log.csv" | cut -d, -f1,2)" = "6,2" ]
    # the scheduler config of the init folder is kept; legacy attention names are written
    grep -q fixed_large "$D/o/scheduler_config.json"
    head -c 20000 "$D/o/diffusion_pytorch_model.safetensors" | grep -aq '"down_blocks.1.attentions.0.query.weight"'
    # and ddpm-sample loads the result
    run -0 bash -c "ddpm-sample --model '$D/o' -n 2 --steps 3 --scheduler ddim | npy_shape"
    [ "$output" = "2,16,16,3" ]
}

@test "ddpm-train is reproducible, and the seed matters" {
    ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/a" --max-steps 3 --random-flip --use-ema
    ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/b" --max-steps 3 --random-flip --use-ema
    cmp "$D/a/diffusion_pytorch_model.safetensors" "$D/b/diffusion_pytorch_model.safetensors"
    ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/c" --max-steps 3 --random-flip --use-ema --seed 6
    run -1 cmp -s "$D/a/diffusion_pytorch_model.safetensors" "$D/c/diffusion_pytorch_model.safetensors"
}

@test "ddpm-train: resuming from a checkpoint equals the uninterrupted run exactly" {
    ARGS=("${TRAIN[@]}" --max-steps 7 --checkpointing-steps 3 --use-ema --random-flip)
    ddpm-train "${ARGS[@]}" --init "$G/tiny" -o "$D/full"
    mkdir "$D/part"
    cp -r "$D/full/checkpoint-3" "$D/part/"
    run -0 --separate-stderr ddpm-train "${ARGS[@]}" -o "$D/part" --resume-from-checkpoint latest
    [ -z "$output" ]
    cmp "$D/full/diffusion_pytorch_model.safetensors" "$D/part/diffusion_pytorch_model.safetensors"
    cmp "$D/full/checkpoint-6/diffusion_pytorch_model.safetensors" \
        "$D/part/checkpoint-6/diffusion_pytorch_model.safetensors"
    # an explicit checkpoint folder works too
    rm -r "$D/part"/*
    ddpm-train "${ARGS[@]}" -o "$D/part" --resume-from-checkpoint "$D/full/checkpoint-3"
    cmp "$D/full/diffusion_pytorch_model.safetensors" "$D/part/diffusion_pytorch_model.safetensors"
}

@test "ddpm-train: 'latest' without a checkpoint starts from --init; with a wrong seed is an error" {
    run -0 --separate-stderr ddpm-train --data "$G/train16.npy" --train-batch-size 4 --seed 5 \
        --init "$G/tiny" -o "$D/o" --max-steps 3 --checkpointing-steps 3 \
        --resume-from-checkpoint latest
    [[ "$stderr" == *"no checkpoint in $D/o: starting a new training run"* ]]
    run -1 --separate-stderr ddpm-train "${TRAIN[@]}" -o "$D/o" --max-steps 4 --seed 9 \
        --resume-from-checkpoint "$D/o/checkpoint-3"
    [[ "$stderr" == "ddpm-train: $D/o/checkpoint-3: trained with --seed 5"* ]]
    run -1 --separate-stderr ddpm-train "${TRAIN[@]}" -o "$D/o" --max-steps 4 --use-ema \
        --resume-from-checkpoint "$D/o/checkpoint-3"
    [[ "$stderr" == *"no EMA weights"* ]]
}

@test "ddpm-train: SIGINT saves a checkpoint and exits 130; resume finishes" {
    ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --max-steps 100000 --checkpointing-steps 1000000 &
    pid=$!
    sleep 1    # a training step of the tiny model takes a few ms
    kill -INT "$pid"
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 130 ]
    step=$(ls -d "$D"/o/checkpoint-* | sed 's/.*checkpoint-//')
    [ "$step" -ge 1 ]
    [ -s "$D/o/diffusion_pytorch_model.safetensors" ]
    run -0 ddpm-train "${TRAIN[@]}" -o "$D/o" --max-steps $((step + 2)) --checkpointing-steps 1000000 \
        --resume-from-checkpoint latest
    [ -z "$(ls -a "$D/o" | grep tmp)" ]
}

@test "ddpm-train builds a model from a config.json (PyTorch default init)" {
    run -0 --separate-stderr ddpm-train "${TRAIN[@]}" --config "$G/tiny/config.json" -o "$D/o" \
        --max-steps 2 --lr-scheduler constant
    [ -s "$D/o/diffusion_pytorch_model.safetensors" ]
    grep -q '"block_out_channels"' "$D/o/config.json"
}

@test "ddpm-train: periodic and final FID/KID in process, the scores fid and kid give ddpm-sample's images" {
    run -0 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --max-steps 2 \
        --use-ema --eval-every 2 --eval-samples 5 --eval-steps 2 --eval-ref "$G/train16.npy" \
        --eval-weights synthetic --final-eval-json "$D/e.json" --log "$D/log.csv"
    [ -z "$output" ]
    [ "$(sed -n 3p "$D/log.csv" | cut -d, -f7 | grep -c '^[0-9.e+-]*$')" -eq 1 ]
    [ -n "$(sed -n 3p "$D/log.csv" | cut -d, -f8)" ]
    grep -q '"fid": [0-9]' "$D/e.json"
    grep -q '"kid": ' "$D/e.json"
    grep -q '"step": 2' "$D/e.json"
    [ "$(ls -a "$D/o" | grep -c eval)" -eq 0 ]
    # the model folder holds the EMA weights the last evaluation scored: the tools' numbers
    ddpm-sample --model "$D/o" -n 5 --scheduler ddim --steps 2 --seed 5 -o "$D/s.npy"
    fid=$(fid --weights synthetic "$D/s.npy" "$G/train16.npy" 2> /dev/null | sed -n 's/^FID: *//p')
    kid=$(kid --weights synthetic "$D/s.npy" "$G/train16.npy" 2> /dev/null |
          sed -n 's/^kernel_inception_distance_mean: //p')
    [ -n "$fid" ] && [ -n "$kid" ]
    [ "$(sed -n 3p "$D/log.csv" | cut -d, -f7,8)" = "$(printf '%.6g,%.6g' "$fid" "$kid")" ]
    grep -qx "    \"fid\": $(printf '%.7g' "$fid")," "$D/e.json"
    grep -qx "    \"kid\": $kid," "$D/e.json"
}

@test "ddpm-train rejects bad data and bad models with one clear line" {
    run -1 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --data "$BAD/train_32px.npy"
    [[ "$stderr" == "ddpm-train: $BAD/train_32px.npy: want 16x16 images (the model's sample_size), got 32x32" ]]
    run -1 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --data "$BAD/train_f32.npy"
    [[ "$stderr" == "ddpm-train: $BAD/train_f32.npy: "* ]]
    run -1 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --data "$BAD/train_gray.npy"
    [[ "$stderr" == "ddpm-train: $BAD/train_gray.npy: "* ]]
    run -1 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$G/tiny" -o "$D/o" --data "$D/missing.npy"
    [[ "$stderr" == "ddpm-train: $D/missing.npy: "* ]]
    run -1 --separate-stderr ddpm-train "${TRAIN[@]}" --init "$BAD/train_noweights" -o "$D/o"
    [[ "$stderr" == "ddpm-train: $BAD/train_noweights: "* ]]
    run -1 --separate-stderr ddpm-train "${TRAIN[@]}" --config "$BAD/train_badconfig.json" -o "$D/o"
    [[ "$stderr" == "ddpm-train: $BAD/train_badconfig.json: "*"norm_num_groups"* ]]
    run -1 --separate-stderr ddpm-train "${TRAIN[@]}" --config "$BAD/train_badblock.json" -o "$D/o"
    [[ "$stderr" == "ddpm-train: $BAD/train_badblock.json: "*"CrossAttnDownBlock2D"* ]]
    [ -z "$output" ]
    [ -z "$(ls "$D")" ]
}

@test "ddpm-train checks its outputs before training" {
    long=(--data "$G/train16.npy" --train-batch-size 4 -q --init "$G/tiny" --max-steps 100000)
    touch "$D/file"
    run -1 --separate-stderr timeout 60 ddpm-train "${long[@]}" -o "$D/file"
    [ "$stderr" = "ddpm-train: $D/file: exists and is not a directory" ]
    run -1 --separate-stderr timeout 60 ddpm-train "${long[@]}" -o /proc/o
    [[ "$stderr" == "ddpm-train: /proc/o: cannot create a folder in /proc: "* ]]
    run -1 --separate-stderr timeout 60 ddpm-train "${long[@]}" -o "$D/o" --log /proc/l.csv
    [[ "$stderr" == "ddpm-train: /proc/l.csv: cannot create a file in /proc: "* ]]
    run -1 --separate-stderr timeout 60 ddpm-train "${long[@]}" -o "$D/o" --eval-ref "$G/train16.npy" \
        --final-eval-json "$D"
    [ "$stderr" = "ddpm-train: $D: is a directory" ]
    [ "$(ls "$D")" = "file" ]
}

@test "ddpm-train: kill -9 at any moment, then resume, equals the uninterrupted run" {
    ARGS=("${TRAIN[@]}" --init "$G/tiny" --max-steps 80 --checkpointing-steps 1
          --checkpoints-total-limit 2 --use-ema --random-flip)
    ddpm-train "${ARGS[@]}" -o "$D/full" --log "$D/full.csv"
    # a checkpoint every step, so kills land in the middle of writing one too
    for delay in 0.05 0.15 0.25 0.35 0.45; do
        ddpm-train "${ARGS[@]}" -o "$D/k" --log "$D/k.csv" --resume-from-checkpoint latest 2> /dev/null &
        pid=$!
        sleep $delay
        kill -9 $pid 2> /dev/null || true
        wait $pid || true
    done
    run -0 --separate-stderr ddpm-train "${ARGS[@]}" -o "$D/k" --log "$D/k.csv" --resume-from-checkpoint latest
    cmp "$D/full/diffusion_pytorch_model.safetensors" "$D/k/diffusion_pytorch_model.safetensors"
    cmp "$D/full/checkpoint-80/diffusion_pytorch_model.safetensors" \
        "$D/k/checkpoint-80/diffusion_pytorch_model.safetensors"
    # the log reads as one run: every step once (the seconds column aside)
    diff <(cut -d, -f1-5 "$D/full.csv") <(cut -d, -f1-5 "$D/k.csv")
    # nothing of an unfinished checkpoint is left
    [ -z "$(ls "$D/k" | grep -e '\.tmp-' -e '\.old-')" ]
}

@test "ddpm-train: what a killed run left of an unfinished checkpoint is cleaned up on the next run" {
    ARGS=("${TRAIN[@]}" --init "$G/tiny" --checkpointing-steps 2 --checkpoints-total-limit 3)
    ddpm-train "${ARGS[@]}" -o "$D/full" --max-steps 6
    # the same run killed after checkpoint-4
    cp -r "$D/full" "$D/k"
    rm -r "$D/k/checkpoint-6" "$D/k/diffusion_pytorch_model.safetensors"
    true & dead=$!
    wait $dead
    # killed while writing checkpoint-6, and another killed between the two renames of
    # checkpoint-4 (the folder moved aside, the new one not yet in place)
    mkdir "$D/k/checkpoint-6.tmp-$dead"
    touch "$D/k/checkpoint-6.tmp-$dead/config.json"
    # killed inside the atomic write of a file: its temporary NAME.PID.XXXXXX stays too (and
    # an older build's NAME.XXXXXX)
    touch "$D/k/checkpoint-6.tmp-$dead/diffusion_pytorch_model.safetensors.$dead.a1B2c3"
    touch "$D/k/checkpoint-6.tmp-$dead/config.json.x1Y2z3"
    mv "$D/k/checkpoint-4" "$D/k/checkpoint-4.old-$dead"
    mkdir "$D/k/checkpoint-4.tmp-$dead"
    mkdir "$D/k/checkpoint-9.tmp-$$"   # a running process's: left alone
    run -0 --separate-stderr ddpm-train "${ARGS[@]}" -o "$D/k" --max-steps 6 --resume-from-checkpoint latest
    [[ "$stderr" == *"ddpm-train: $D/k: removed what a killed run left of an unfinished checkpoint"* ]]
    [ "$(ls "$D/k" | grep checkpoint- | xargs)" = "checkpoint-2 checkpoint-4 checkpoint-6 checkpoint-9.tmp-$$" ]
    cmp "$D/full/diffusion_pytorch_model.safetensors" "$D/k/diffusion_pytorch_model.safetensors"
}

@test "ddpm-train on a full disk (ulimit -f): one clear line, no partial file" {
    run -1 --separate-stderr bash -c "ulimit -f 20; exec ddpm-train ${TRAIN[*]} --init '$G/tiny' -o '$D/o' --max-steps 2 --checkpointing-steps 1"
    [[ "$stderr" == "ddpm-train: $D/o/checkpoint-1: "*"File too large" ]]
    [ "${#stderr_lines[@]}" -eq 1 ]
    [ -z "$(find "$D" -type f)" ]
}

@test "ddpm-train resumes a checkpoint of before per-sample randomness (an rng state, no accumulation)" {
    ARGS=("${TRAIN[@]}" --init "$G/tiny" --checkpointing-steps 3)
    ddpm-train "${ARGS[@]}" -o "$D/o" --max-steps 3
    # rewrite its metadata as the older ddpm-train wrote it: "rng" in, no accumulation
    perl -MJSON::PP -e '
        open(my $h, "<:raw", $ARGV[0]) or die; local $/; my $d = <$h>; close $h;
        my $n = unpack("Q<", substr($d, 0, 8)); my $j = decode_json(substr($d, 8, $n));
        delete $j->{__metadata__}{gradient_accumulation_steps};
        $j->{__metadata__}{rng} = "6dcd11e9d88d2a3b 505574dc935a50e9 05d6a0460d406ab1 2b9a3f844eab9584 0 be88ab42";
        my $s = JSON::PP->new->canonical->encode($j); $s .= " " x ((8 - length($s) % 8) % 8);
        open($h, ">:raw", $ARGV[0]) or die; print $h pack("Q<", length $s), $s, substr($d, 8 + $n);
    ' "$D/o/checkpoint-3/training_state.safetensors"
    grep -aq '"rng":"6dcd' "$D/o/checkpoint-3/training_state.safetensors"
    run -0 --separate-stderr ddpm-train "${ARGS[@]}" -o "$D/o" --max-steps 5 --resume-from-checkpoint latest
    [ -z "$stderr" ]
    [ -s "$D/o/diffusion_pytorch_model.safetensors" ]
    run -1 --separate-stderr ddpm-train "${ARGS[@]}" -o "$D/o" --max-steps 5 --gradient-accumulation-steps 2 \
        --resume-from-checkpoint "$D/o/checkpoint-3"
    [[ "$stderr" == *"trained with --seed 5 --train-batch-size 4 --gradient-accumulation-steps 1; resume with the same" ]]
}
