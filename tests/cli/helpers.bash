# Shared set-up for every bats file: tools on PATH, fixture folder, small helpers.
bats_require_minimum_version 1.7.0

setup_tools() {
    REPO="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    FIX="$REPO/tests/fixtures"
    PATH="${TOOLS_BIN:-$REPO/bin}:$PATH"
    export REPO FIX PATH
}

# shape of a .npy on stdin or in $1, as '1,32,32,3' (read with npyinfo)
npy_shape() { npyinfo --shape "${1:--}"; }
export -f npy_shape
