# Shared set-up for every bats file: tools on PATH, fixture folder, small helpers.
bats_require_minimum_version 1.7.0

setup_tools() {
    REPO="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    FIX="$REPO/tests/fixtures"
    PATH="${TOOLS_BIN:-$REPO/bin}:$PATH"
    export REPO FIX PATH
    # bats feeds its list of tests to the loop that runs them on stdin, which every test
    # inherits: a command that reads stdin (script(1), a tool given '-' without a pipe) would
    # eat the names of the tests still to run, and they would silently not run
    exec </dev/null
}

# shape of a .npy on stdin or in $1, as npyinfo --shape prints it: 1,32,32,3; a 1-D array as
# 600, (numpy's (600,)); a scalar as an empty line
npy_shape() { npyinfo --shape "${1:--}"; }
export -f npy_shape

# The options a tool accepts, read from its source files ($@, relative to the repo): the
# names of getopt_long tables ({"name", ...}, METRICS_CLI_LONGOPTS' too), the letters of
# getopt/opt_init short-option strings, and the case patterns (-k|--key) of shell tools.
# One per line, as typed: --name, -k.
source_options() {
  local f
  for f in "$@"; do
    case $f in
    *.c|*.h)
      grep -oE '\{ *"[a-z0-9][a-z0-9-]*", *(0|1|2|no_argument|required_argument|optional_argument)' "$REPO/$f" |
        sed -E 's/\{ *"([^"]*)".*/--\1/'
      grep -oE '(getopt|getopt_long|opt_init)\([^"]*"[^"]*"' "$REPO/$f" |
        sed -E 's/.*"([^"]*)"/\1/' | tr -d ':+-' | grep -o . | sed 's/^/-/' ;;
    *)
      grep -oE '^[[:space:]]*-[-a-zA-Z0-9_| ]*\)' "$REPO/$f" | tr -d ' \t)' | tr '|' '\n' |
        grep -vx -- '-\*\|--' ;;
    esac
  done | sort -u
}

# `TOOL --help` exits 0, prints on stdout only, names every option of source_options
# SOURCE... (a long option as --name, a short one as -k followed by a space, comma, ']', '|'
# or '/') and shows an example.
help_names_options() {
  local tool=$1 o missing=
  shift
  run -0 --separate-stderr "$tool" --help
  [ -z "$stderr" ] || { echo "stderr: $stderr"; return 1; }
  for o in $(source_options "$@"); do
    case $o in
    --*) [[ "$output" == *"$o"* ]] || missing="$missing $o" ;;
    *) grep -qE -- "(^|[^-[:alnum:]])$o([], /|]|$)" <<< "$output" || missing="$missing $o" ;;
    esac
  done
  [ -z "$missing" ] || { echo "$tool --help does not mention:$missing"; return 1; }
  [[ "$output" == *"Example"* ]] || { echo "$tool --help has no example"; return 1; }
  [ "$(source_options "$@" | wc -l)" -gt 1 ]
}

# npy_make OUT DESCR SHAPE N BYTES: an .npy of dtype DESCR ('<f4', '|u1'), SHAPE ('3, 64') and
# N copies of BYTES (a printf format: '\x00\x00\xc0\x7f' is a float32 NaN); no Python needed
npy_make() {
  local h="{'descr': '$2', 'fortran_order': False, 'shape': ($3), }" n pad i
  pad=$(( 63 - (10 + ${#h}) % 64 ))
  n=$(( ${#h} + pad + 1 ))
  {
    printf '\223NUMPY\001\000'
    printf "\\$(printf %03o $((n % 256)))\\$(printf %03o $((n / 256)))"
    printf '%s%*s\n' "$h" "$pad" ''
    for ((i = 0; i < $4; i++)); do printf "$5"; done
  } > "$1"
}
export -f npy_make

# OPENBLAS_CORETYPE values this CPU runs, one per family of SGEMM kernels (as test_kernels.h):
# Prescott (generic SSE3), Sandybridge (AVX), Haswell and Zen (AVX2), SkylakeX and Cooperlake
# (AVX-512). The tools' promise (outputs independent of --batch-size and --threads) must hold
# under each, whatever the environment picks.
blas_kernels() {
    local f
    f=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    echo Prescott
    [[ "$f" == *" avx "* ]] && echo Sandybridge
    [[ "$f" == *" avx2 "* && "$f" == *" fma "* ]] && echo Haswell Zen
    if [[ "$f" == *" avx512f "* && "$f" == *" avx512bw "* && "$f" == *" avx512dq "* &&
          "$f" == *" avx512vl "* ]]; then
        echo SkylakeX
        [[ "$f" == *" avx512_bf16 "* ]] && echo Cooperlake
    fi
    return 0
}

# mpirun as the MPI tests run it: -q (mpirun's own notices off, so a failing rank's line is
# the whole of stderr), --bind-to none (2 cores shared with others), shared memory without
# CMA's single copy (containers often lack the ptrace permission it needs). As root, Open MPI
# refuses to start unless told twice; the variables are set for this command only. Under
# make sanitize, no leak check for these runs: Open MPI leaves ~120 KB in ~3400 allocations
# after MPI_Finalize, in plugins it has unloaded (so LSan cannot name them for a suppression).
# plm_rsh_agent false: the ranks start on this machine only, but Open MPI 4.1 will not start
# at all without an ssh or rsh to name, and a minimal container may have neither.
mpirun_t() {
    local ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    export ASAN_OPTIONS
    if [ "$(id -u)" = 0 ]; then
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -q --bind-to none \
            --mca btl self,vader --mca btl_vader_single_copy_mechanism none \
            --mca plm_rsh_agent false "$@"
    else
        mpirun -q --bind-to none --mca btl self,vader \
            --mca btl_vader_single_copy_mechanism none --mca plm_rsh_agent false "$@"
    fi
}
export -f mpirun_t

# st_close A B RTOL [SKIP]: the F32 tensors of safetensors files A and B have the same names
# and shapes, and within each tensor every |a - b| <= RTOL * (the tensor's largest |a|):
# relative to the tensor's scale, so that a weight near 0 does not count its last bits as a
# large relative error. Tensors whose name matches the Perl regex SKIP are left out. Prints
# the worst tensor; on failure also the tensors out of tolerance. Perl only, no numpy.
st_close() {
    perl -MJSON::PP -e '
        my ($fa, $fb, $rtol, $skip) = @ARGV;
        sub load { my ($f) = @_; open(my $h, "<:raw", $f) or die "$f: $!\n"; local $/;
                   my $d = <$h>; my $n = unpack("Q<", substr($d, 0, 8));
                   return (decode_json(substr($d, 8, $n)), substr($d, 8 + $n)); }
        sub vals { my ($h, $d, $t) = @_; my ($o, $e) = @{$h->{$t}{data_offsets}};
                   return unpack("f<*", substr($d, $o, $e - $o)); }
        my ($ha, $da) = load($fa); my ($hb, $db) = load($fb);
        my @na = sort grep { $_ ne "__metadata__" } keys %$ha;
        my @nb = sort grep { $_ ne "__metadata__" } keys %$hb;
        die "tensor names differ\n" if "@na" ne "@nb";
        my ($worst, $wname, $bad) = (0, "", 0);
        for my $t (@na) {
            next if defined $skip && length $skip && $t =~ /$skip/;
            die "$t: not F32 of one shape\n" if $ha->{$t}{dtype} ne "F32" ||
                $hb->{$t}{dtype} ne "F32" || "@{$ha->{$t}{shape}}" ne "@{$hb->{$t}{shape}}";
            my @x = vals($ha, $da, $t); my @y = vals($hb, $db, $t);
            my ($scale, $d) = (0, 0);
            for my $i (0 .. $#x) {
                $scale = abs($x[$i]) if abs($x[$i]) > $scale;
                $d = abs($x[$i] - $y[$i]) if abs($x[$i] - $y[$i]) > $d;
            }
            my $r = $scale > 0 ? $d / $scale : ($d > 0 ? 1 : 0);
            ($worst, $wname) = ($r, $t) if $r > $worst;
            if ($r > $rtol) {
                printf "%s: max |a - b| %.3g, %.3g of its largest value\n", $t, $d, $r;
                $bad++;
            }
        }
        printf "worst: %.3g of the largest value (%s)\n", $worst, $wname;
        exit($bad ? 1 : 0);
    ' "$@"
}
export -f st_close
