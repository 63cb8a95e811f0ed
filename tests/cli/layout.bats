# common/'s layers (common/README.md): each folder includes only its own headers and those of
# the folders below it, and headers include one another without a cycle.
load helpers

setup() { setup_tools; cd "$REPO"; }

# bottom up; a folder may include itself and anything to its left
LAYERS="util io nn models eval pipeline"

rank() { local i=0 l; for l in $LAYERS; do [ "$l" = "$1" ] && { echo $i; return; }; i=$((i + 1)); done; echo 99; }

@test "common/ holds only its layer folders and README.md" {
    run bash -c 'ls common | grep -v -x -e README.md $(printf -- "-e %s " '"$LAYERS"')'
    [ -z "$output" ]
}

@test "common/'s folders include only headers of their own layer or below" {
    bad=
    for f in common/*/*.[ch]; do
        own=$(basename "$(dirname "$f")")
        for inc in $(sed -n 's/^#include "\([a-z]*\)\/.*/\1/p' "$f"); do
            [ "$(rank "$inc")" -le "$(rank "$own")" ] || bad+="$f includes $inc/; "
        done
        # every quoted include names its folder
        if grep -q '^#include "[a-z_0-9]*\.h"' "$f"; then bad+="$f: unqualified include; "; fi
    done
    echo "$bad"
    [ -z "$bad" ]
}

@test "the headers of common/ include one another without a cycle" {
    for h in common/*/*.h; do
        echo "${h#common/} ${h#common/}"
        sed -n 's/^#include "\(.*\)"/\1/p' "$h" | while read -r inc; do echo "${h#common/} $inc"; done
    done > "$BATS_TEST_TMPDIR/edges"
    run tsort "$BATS_TEST_TMPDIR/edges"
    [ "$status" -eq 0 ]
    [[ "$output" != *loop* ]]
}
