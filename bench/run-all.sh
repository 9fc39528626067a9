#!/usr/bin/env bash
# make bench: runs every benchmark; each prints its own side-by-side table.
# Benchmarks that need data or extra packages say so and skip.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
lscpu | grep -E "Model name" | sed 's/^ */cpu: /'
echo "threads: $(nproc)"
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo; echo "=== $(basename "$b")"
    "$b" || echo "(benchmark $(basename "$b") failed)"
done
for s in bench/*.sh; do
    [ -f "$s" ] || continue
    echo; echo "=== $s"
    BUILD="$BUILD" bash "$s" || echo "(benchmark $s failed)"
done
