#!/usr/bin/env bats
# ckpt-convert: torch.save checkpoints and safetensors to safetensors. Goldens from
# tests/fixtures/gen_ckpt.py: pth_convert.safetensors is the same state dict written by a
# Python re-implementation of the safetensors writer (floats as F32, integers kept).
load helpers
setup() { setup_tools; CK="$FIX/ckpt"; }

@test "ckpt-convert --help prints usage on stdout" {
  run -0 --separate-stderr ckpt-convert --help
  [[ "$output" == "usage: ckpt-convert "* ]]
  [ -z "$stderr" ]
}

@test "ckpt-convert --help names every option, its defaults and an example" {
  help_names_options ckpt-convert tools/ckpt-convert.c
}

@test "ckpt-convert without arguments is a usage error" {
  run -2 --separate-stderr ckpt-convert
  [ -z "$output" ]
  [[ "$stderr" == "ckpt-convert: IN and OUT are required"*"usage: ckpt-convert "* ]]
  run -2 --separate-stderr ckpt-convert "$CK/pth_zip.pth"
  [[ "$stderr" == "ckpt-convert: OUT is required"*"usage: ckpt-convert "* ]]
  run -2 --separate-stderr ckpt-convert --bogus "$CK/pth_zip.pth" "$BATS_TEST_TMPDIR/o.safetensors"
  [ -z "$output" ]
  run -2 --separate-stderr ckpt-convert --threads 0 "$CK/pth_zip.pth" "$BATS_TEST_TMPDIR/o.safetensors"
  [[ "$stderr" == "ckpt-convert: --threads: bad value: 0 (want an integer from 1 to 1024)"* ]]
  [ ! -e "$BATS_TEST_TMPDIR/o.safetensors" ]
}

@test "ckpt-convert zip and legacy .pth give the reference safetensors bytes" {
  run -0 ckpt-convert "$CK/pth_zip.pth" "$BATS_TEST_TMPDIR/z.safetensors"
  [ -z "$output" ]
  cmp "$BATS_TEST_TMPDIR/z.safetensors" "$CK/pth_convert.safetensors"
  run -0 ckpt-convert "$CK/pth_legacy.pth" "$BATS_TEST_TMPDIR/l.safetensors"
  cmp "$BATS_TEST_TMPDIR/l.safetensors" "$CK/pth_convert.safetensors"
  run -0 ckpt-convert --float-only "$CK/pth_proto4.pth" "$BATS_TEST_TMPDIR/f.safetensors"
  cmp "$BATS_TEST_TMPDIR/f.safetensors" "$CK/pth_convert_floats.safetensors"
  [ "$(ls "$BATS_TEST_TMPDIR")" = "$(printf 'f.safetensors\nl.safetensors\nz.safetensors')" ]
}

@test "ckpt-convert --list prints name, dtype and shape" {
  run -0 --separate-stderr ckpt-convert --list "$CK/pth_legacy.pth"
  [ "${#lines[@]}" -eq 17 ]
  [ "${lines[0]}" = "$(printf 'bf.weight\tBF16\t3')" ]
  [ "${lines[1]}" = "$(printf 'bn.num_batches_tracked\tI64\t')" ]
  [ "${lines[3]}" = "$(printf 'conv.weight\tF32\t4,3,3,3')" ]
  [ "${lines[8]}" = "$(printf 'fc.weight\tF32\t5,4')" ]
  [ -z "$stderr" ]
  # a converted file lists the same tensors, floats now F32, in safetensors' data order
  run -0 ckpt-convert --list "$CK/pth_convert.safetensors"
  [ "${lines[0]}" = "$(printf 'bn.num_batches_tracked\tI64\t')" ]
  [ "${lines[1]}" = "$(printf 'bf.weight\tF32\t3')" ]
  [ "${#lines[@]}" -eq 17 ]
}

@test "ckpt-convert reads stdin and writes stdout" {
  run -0 bash -c "ckpt-convert - - < '$CK/pth_zip.pth' | cmp - '$CK/pth_convert.safetensors'"
  run -0 bash -c "cat '$CK/pth_convert.safetensors' | ckpt-convert --list - | wc -l"
  [ "$output" = "17" ]
}

@test "ckpt-convert copies a safetensors file, keeping its metadata" {
  run -0 ckpt-convert "$CK/st_model.safetensors" "$BATS_TEST_TMPDIR/m.safetensors"
  # st_model has metadata {"step": "12"}; "format": "pt" is added
  run -0 bash -c "head -c 64 '$BATS_TEST_TMPDIR/m.safetensors' | tail -c +9"
  [[ "$output" == '{"__metadata__":{"format":"pt","step":"12"},'* ]]
  run -0 ckpt-convert --keep-dtype "$CK/st_mixed.safetensors" "$BATS_TEST_TMPDIR/x.safetensors"
  run -0 ckpt-convert --list "$BATS_TEST_TMPDIR/x.safetensors"
  [[ "$output" == *"$(printf 'a.bias\tF16\t5')"* ]]
}

@test "ckpt-convert loads a diffusers diffusion_pytorch_model.bin" {
  run -0 ckpt-convert --list "$CK/diffusers/diffusion_pytorch_model.bin"
  [ "${lines[0]}" = "$(printf '0.bias\tF32\t4')" ]
  [[ "$output" == *"$(printf '1.num_batches_tracked\tI64\t')"* ]]
}

@test "ckpt-convert refuses a pickle that calls os.system, leaving no file" {
  run -1 --separate-stderr ckpt-convert "$FIX/bad/ckpt_pth_os_system_zip.pth" "$BATS_TEST_TMPDIR/o.safetensors"
  [ -z "$output" ]
  [ "$stderr" = "ckpt-convert: $FIX/bad/ckpt_pth_os_system_zip.pth: pickle: refusing global posix.system: not a tensor state dict" ]
  [ -z "$(ls "$BATS_TEST_TMPDIR" | grep '^o\.')" ]
  run -1 --separate-stderr ckpt-convert "$FIX/bad/ckpt_pth_os_system_legacy.pth" "$BATS_TEST_TMPDIR/o.safetensors"
  [[ "$stderr" == *"refusing global posix.system"* ]]
  [[ "$stderr" != *pwned* ]]
  [ -z "$(ls "$BATS_TEST_TMPDIR" | grep '^o\.')" ]
}

@test "ckpt-convert rejects broken inputs with one line, no output file" {
  for f in ckpt_pth_trunc_zip.pth ckpt_pth_trunc_data.pth ckpt_pth_opcode.pth \
           ckpt_pth_oob_stride.pth ckpt_pth_text.pth ckpt_st_overlap.safetensors \
           ckpt_st_truncated.safetensors ckpt_st_empty.safetensors; do
    run -1 --separate-stderr ckpt-convert "$FIX/bad/$f" "$BATS_TEST_TMPDIR/o.safetensors"
    [ -z "$output" ]
    [[ "$stderr" == "ckpt-convert: $FIX/bad/$f: "* ]]
    [ "${#stderr_lines[@]}" -eq 1 ]
  done
  run -1 --separate-stderr ckpt-convert "$BATS_TEST_TMPDIR/missing.pth" "$BATS_TEST_TMPDIR/o.safetensors"
  [[ "$stderr" == "ckpt-convert: $BATS_TEST_TMPDIR/missing.pth: No such file or directory" ]]
  [ -z "$(ls "$BATS_TEST_TMPDIR" | grep '^o\.')" ]
}

@test "ckpt-convert reports an unwritable output" {
  run -1 --separate-stderr ckpt-convert "$CK/pth_zip.pth" "$BATS_TEST_TMPDIR/no/such/dir/o.safetensors"
  [[ "$stderr" == "ckpt-convert: $BATS_TEST_TMPDIR/no/such/dir/o.safetensors: "* ]]
}

@test "ckpt-convert refuses a directory as output before converting" {
  mkdir "$BATS_TEST_TMPDIR/dir"
  run -1 --separate-stderr ckpt-convert "$CK/pth_zip.pth" "$BATS_TEST_TMPDIR/dir"
  [ "$stderr" = "ckpt-convert: $BATS_TEST_TMPDIR/dir: is a directory" ]
  [ -z "$(ls -A "$BATS_TEST_TMPDIR/dir")" ]
}
