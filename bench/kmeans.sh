#!/usr/bin/env bash
# bench/kmeans.sh - serendip k-means vs FAISS (bench/bench_kmeans_faiss.cpp).
# Usage: bash bench/kmeans.sh [--ws WORKSPACE] [--runs N] [--threads T]
# (no arguments: the generated set plus ml-latest-small's embeddings when ../shared/data has it)
# Needs the Debian package libfaiss-dev (`make bench` installs it); without it, or when a step
# fails, the script exits non-zero: a benchmark without its comparison is not a result.
# BUILD (default build) selects the build tree whose libserendip.a is linked.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ ! -f /usr/include/faiss/Clustering.h ]; then
    echo "bench/kmeans.sh: FAISS is not installed (apt-get install libfaiss-dev, or make bench): no comparison" >&2
    exit 1
fi
make --no-print-directory BUILD="$BUILD" "$BUILD/libserendip.a" >/dev/null
mkdir -p "$BUILD/bench"
g++ -O2 -march=x86-64-v2 -mtune=native -std=c++17 -fopenmp -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-pthread \
    bench/bench_kmeans_faiss.cpp "$BUILD/libserendip.a" -lfaiss $(make -s --no-print-directory BUILD="$BUILD" print-link-libs) \
    -o "$BUILD/bench/bench_kmeans_faiss"
# Without arguments, also bench the MovieLens latest-small item embeddings when the data is here.
if [ $# -eq 0 ] && [ -f ../shared/data/ml-latest-small/ratings.csv ]; then
    make --no-print-directory BUILD="$BUILD" "$BUILD/serendip" >/dev/null
    WS=$(mktemp -d /tmp/sdkmXXXXXX)
    trap 'rm -rf "$WS"' EXIT
    if ! "$BUILD/serendip" ingest --ws "$WS" --movielens ../shared/data/ml-latest-small >/dev/null; then
        echo "bench/kmeans.sh: ingest of ml-latest-small failed" >&2
        exit 1
    fi
    # train window until 2012-01-01 (as tests/test_cluster.sh)
    printf '{"format": "serendip-split", "version": 1, "train_end": 1325376000, "valid_end": 1388534400}\n' > "$WS/split.json"
    set -- --ws "$WS"
fi
"$BUILD/bench/bench_kmeans_faiss" "$@"
