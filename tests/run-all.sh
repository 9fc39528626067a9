#!/usr/bin/env bash
# Runs every test binary in $BUILD/tests and every tests/*.sh script; exits 1 if any failed.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
fail=0; failed=()
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "=== $(basename "$t")"
    if ! "$t"; then fail=1; failed+=("$(basename "$t")"); fi
done
for s in tests/test_*.sh; do
    [ -f "$s" ] || continue
    echo "=== $(basename "$s")"
    if ! BUILD="$BUILD" bash "$s"; then fail=1; failed+=("$(basename "$s")"); fi
done
if [ $fail -ne 0 ]; then echo "FAILED: ${failed[*]}"; exit 1; fi
echo "all tests passed"
