# The ViT's Linear kernel (common/nn/nn_linear_packed.c) has an AVX-512 and an AVX2 version,
# and the build picks one by -march=native: an AVX2-only machine (or a Haswell-class one)
# runs the other. Both are the same FMA chains, so they must give the same bits; this builds
# the kernel both ways, with a driver that needs nothing else of the library, and compares.
load helpers

setup() { setup_tools; T=$BATS_TEST_TMPDIR; cd "$REPO"; }

build_driver() { # $1: -march value, $2: output
    cc -O3 -march="$1" -std=c11 -D_GNU_SOURCE -fopenmp -iquote common \
        -c common/nn/nn_linear_packed.c -o "$T/lp-$1.o"
    cc -O2 -std=c11 -fopenmp -iquote common tests/unit/isa_linear_packed.c "$T/lp-$1.o" \
        -o "$2"
}

@test "nn_linear_packed: the AVX2 kernel gives the AVX-512 kernel's bits" {
    grep -qw avx2 /proc/cpuinfo || skip "no AVX2 on this CPU"
    build_driver haswell "$T/hsw"
    "$T/hsw" > "$T/hsw.out"
    [ "$(stat -c %s "$T/hsw.out")" -eq $(( (32 + 320 + 1248 + 5920 + 928) * 4 )) ]
    if grep -qw avx512f /proc/cpuinfo; then
        build_driver skylake-avx512 "$T/skx"
        "$T/skx" > "$T/skx.out"
        cmp "$T/hsw.out" "$T/skx.out"
    fi
    # and the AVX2 build has its own kernel: ymm FMAs (the plain C loop multiplies and adds)
    objdump -d "$T/lp-haswell.o" | grep -q 'vfmadd...ps.*%ymm'
}

# nn_wino4.c's transforms (weights, input with the fused norm + SiLU, output with the bias,
# per-channel and residual adds) are AVX-512 intrinsics on AVX-512 and plain C loops
# elsewhere, the same float operations: the same bits. Its driver stubs the GEMMs (one build
# of them for both), so only the transforms differ between the two.
@test "nn_wino4: the transforms' AVX-512 code gives the plain C code's bits" {
    grep -qw avx512f /proc/cpuinfo || skip "no AVX-512 on this CPU"
    for m in haswell skylake-avx512; do
        cc -O3 -march=$m -std=c11 -D_GNU_SOURCE -fopenmp -iquote common \
            -c common/nn/nn_wino4.c -o "$T/w4-$m.o"
        cc -O2 -std=c11 -fopenmp -iquote common tests/unit/isa_wino4.c "$T/w4-$m.o" -lm \
            -o "$T/w4-$m"
        "$T/w4-$m" > "$T/w4-$m.out"
    done
    [ "$(stat -c %s "$T/w4-haswell.out")" -gt 1000000 ]
    cmp "$T/w4-haswell.out" "$T/w4-skylake-avx512.out"
    # and the AVX-512 build has its own transforms: zmm permutes
    objdump -d "$T/w4-skylake-avx512.o" | grep -Eq 'vperm[it]2ps.*%zmm'
}
