#!/usr/bin/env bash
# make bench: runs every benchmark; each prints its own side-by-side table. Exits non-zero when
# any benchmark (or the comparison it makes) fails, naming them at the end; a benchmark whose
# data is absent says "SKIP: ..." itself and succeeds.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
lscpu | grep -E "Model name" | sed 's/^ */cpu: /'
echo "threads: $(nproc)"
failed=()
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo; echo "=== $(basename "$b")"
    "$b" || { echo "FAIL: benchmark $(basename "$b") exited $?"; failed+=("$(basename "$b")"); }
done
for s in bench/*.sh; do
    [ -f "$s" ] || continue
    echo; echo "=== $s"
    BUILD="$BUILD" bash "$s" || { echo "FAIL: benchmark $s exited $?"; failed+=("$s"); }
done
echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "benchmarks FAILED: ${failed[*]}"
    exit 1
fi
echo "all benchmarks ran"
