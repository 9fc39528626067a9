#!/usr/bin/env bash
# bench/kmeans.sh - serendip k-means vs FAISS (bench/bench_kmeans_faiss.cpp).
# Usage: bash bench/kmeans.sh [--ws WORKSPACE] [--runs N] [--threads T]
# Needs the Debian package libfaiss-dev (bench-only; not in scripts/install-deps).
# BUILD (default build) selects the build tree whose libserendip.a is linked.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ ! -f /usr/include/faiss/Clustering.h ]; then
    echo "bench/kmeans.sh: FAISS is not installed (apt-get install libfaiss-dev); skipping" >&2
    exit 0
fi
make --no-print-directory BUILD="$BUILD" "$BUILD/libserendip.a" >/dev/null
mkdir -p "$BUILD/bench"
g++ -O2 -march=x86-64-v2 -mtune=native -std=c++17 -fopenmp -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-pthread \
    bench/bench_kmeans_faiss.cpp "$BUILD/libserendip.a" -lfaiss -lopenblas -llapacke -lcjson -lm -lpthread \
    -o "$BUILD/bench/bench_kmeans_faiss"
"$BUILD/bench/bench_kmeans_faiss" "$@"
