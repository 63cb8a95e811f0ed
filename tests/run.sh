#!/bin/sh
# Runs every unit test binary in $1 and every bats file in tests/cli with $2 on PATH.
# Both speak TAP ('ok N - name' / 'not ok N - name'); this counts them and ends with
# one line 'N passed, N failed'. Exit status 1 if anything failed.
units=$1
bin=$(cd "$2" && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for t in "$units"/test_*; do
	[ -x "$t" ] || continue
	if ! "$t" > "$log.one" 2>&1; then
		grep -q '^not ok' "$log.one" || echo "not ok - $(basename "$t") exited with status $?" >> "$log.one"
	fi
	sed "s|^\(not \)*ok |&$(basename "$t"): |" "$log.one" >> "$log"
	rm -f "$log.one"
done
if ls tests/cli/*.bats > /dev/null 2>&1; then
	TOOLS_BIN="$bin" PATH="$bin:$PATH" bats --tap tests/cli > "$log.bats" 2>&1 || status=1
	# bats' plan line '1..N' says how many tests it found; fewer results means some never ran
	planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$log.bats" | head -1)
	ran=$(grep -c '^\(not \)*ok ' "$log.bats")
	[ "${planned:-0}" -eq "$ran" ] ||
		echo "not ok - bats planned ${planned:-no} tests but reported $ran" >> "$log.bats"
	cat "$log.bats" >> "$log"
	rm -f "$log.bats"
fi
grep '^not ok' "$log" | sed 's/^/FAIL: /'
grep -A12 '^not ok' "$log" | grep '^#' | head -100
passed=$(grep -c '^ok' "$log")
failed=$(grep -c '^not ok' "$log")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] || exit 1
