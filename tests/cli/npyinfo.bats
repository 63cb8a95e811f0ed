#!/usr/bin/env bats
# npyinfo: shape, dtype and statistics of .npy and .npz (fixtures: tests/fixtures/gen_io.py;
# expected numbers computed with numpy there).
load helpers
setup() { setup_tools; IO="$FIX/io"; }

@test "npyinfo --help prints usage on stdout" {
  run -0 --separate-stderr npyinfo --help
  [[ "$output" == "usage: npyinfo "* ]]
  [ -z "$stderr" ]
}

@test "npyinfo without a file is a usage error" {
  run -2 --separate-stderr npyinfo
  [ -z "$output" ]
  [[ "$stderr" == "npyinfo: FILE is required"$'\n'"usage: npyinfo "* ]]
  run -2 --separate-stderr npyinfo --bogus "$IO/img1.npy"
  [ -z "$output" ]
}

@test "npyinfo prints dtype, shape and per-channel stats of images" {
  run -0 --separate-stderr npyinfo "$IO/img20.npy"
  [ "$output" = "$IO/img20.npy: uint8 (20,4,4,3) min 0 max 255 mean 125.884375 channel min 0,2,0 max 255,254,254 mean 119.33125,130.05625,128.265625" ]
  [ -z "$stderr" ]
}

@test "npyinfo --shape prints only the shape" {
  run -0 npyinfo --shape "$IO/img1.npy"
  [ "$output" = "1,4,4,3" ]
  run -0 npyinfo --shape "$IO/f8_0d.npy"
  [ "$output" = "" ]
}

@test "npyinfo --shape writes a 1-D shape as numpy does, with its comma" {
  run -0 npyinfo --shape "$IO/stats.npz:mu"
  [ "$output" = "64," ]
  run -0 npy_shape "$IO/lab20.npy"
  [ "$output" = "20," ]
}

@test "npyinfo --help names every option and an example" {
  help_names_options npyinfo tools/npyinfo.c
}

@test "npyinfo reads stdin and pipes" {
  run -0 bash -c "npyinfo --shape - < '$IO/u1_4d.npy'"
  [ "$output" = "2,3,4,3" ]
  run -0 bash -c "cat '$IO/img20.npy' | npy_shape"
  [ "$output" = "20,4,4,3" ]
  run -0 bash -c "cat '$IO/samples.npz' | npyinfo -"
  [ "${lines[0]}" = "-:arr_0: uint8 (3,4,4,3) min 0 max 254 mean 123.493056 channel min 6,9,0 max 254,254,251 mean 121.479167,122.4375,126.5625" ]
  [ "${lines[1]}" = "-:arr_1: int64 (3,) min 1 max 6 mean 2.66666667" ]
}

@test "npyinfo lists every member of an npz, or the one named" {
  run -0 npyinfo "$IO/stats.npz"
  [ "${#lines[@]}" -eq 2 ]
  [ "${lines[0]}" = "$IO/stats.npz:mu: float64 (64,) min 0 max 9 mean 4.5" ]
  [ "${lines[1]}" = "$IO/stats.npz:sigma: float64 (64,64) min 0.015625 max 1 mean 0.103687944" ]
  run -0 npyinfo --shape "$IO/stats.npz:sigma"
  [ "$output" = "64,64" ]
  run -0 npyinfo --shape "$IO/stats.npz"
  [ "$output" = $'mu: 64,\nsigma: 64,64' ]
}

@test "npyinfo --json is one object per array" {
  run -0 npyinfo --json "$IO/pair.npz:b" "$IO/f4_empty.npy"
  [ "${lines[0]}" = "{\"name\": \"$IO/pair.npz:b\", \"dtype\": \"float32\", \"shape\": [3, 4], \"min\": -1, \"max\": 1.75, \"mean\": 0.375, \"nonfinite\": 0}" ]
  [ "${lines[1]}" = "{\"name\": \"$IO/f4_empty.npy\", \"dtype\": \"float32\", \"shape\": [0, 3], \"min\": null, \"max\": null, \"mean\": null, \"channel_min\": [null, null, null], \"channel_max\": [null, null, null], \"channel_mean\": [null, null, null], \"nonfinite\": 0}" ]
}

@test "npyinfo rejects every broken npy and npz with one line" {
  for f in "$FIX"/bad/io_*.npy "$FIX"/bad/io_*.npz; do
    run -1 --separate-stderr npyinfo "$f"
    [ -z "$output" ]
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == "npyinfo: $f: "* ]]
  done
}

@test "npyinfo rejects a truncated pipe and a missing file" {
  run -1 --separate-stderr bash -c "head -c 1000 '$IO/img20.npy' | npyinfo -"
  [ -z "$output" ]
  [ "$stderr" = "npyinfo: -: truncated: want 960 bytes, got 872" ]
  run -1 --separate-stderr npyinfo "$BATS_TEST_TMPDIR/none.npy"
  [ "$stderr" = "npyinfo: $BATS_TEST_TMPDIR/none.npy: No such file or directory" ]
  run -1 --separate-stderr npyinfo "$IO/pair.npz:zz"
  [ "$stderr" = "npyinfo: $IO/pair.npz:zz: no member 'zz' in the .npz" ]
}
