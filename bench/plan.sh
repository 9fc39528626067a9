#!/usr/bin/env bash
# Explore-table build throughput (issue 4): contexts/s and its breakdown (sampling, alignment
# scoring) for M = 100 level-2 clusters, K = 2 (9,900 contexts), with the DEFAULT model sizes of
# `serendip train`, for n in {1, 4, 16}; and for M = 50 (2,450 contexts) at n = 16, to show how the
# time grows with M. Models are trained briefly (their size, not their quality, sets the cost;
# compliance is printed since it sets how many candidates are scored).
#   BUILD=build bash bench/plan.sh            (about 10 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/serendip
W=${BENCH_WS:-/tmp/serendip-bench-plan}
STEPS=${BENCH_STEPS:---pretrain-steps 200 --novelty-steps 150 --align-steps 150}
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), threads: $(nproc)"
printf "%5s %6s %9s %10s %10s %10s %12s %11s\n" M n contexts total_s sample_s score_s contexts/s compliance
for M in 100 50; do
    rm -rf "$W"
    $BIN world --ws "$W" >/dev/null
    $BIN split --ws "$W" >/dev/null
    $BIN cluster --ws "$W" --clusters $M >/dev/null
    $BIN journeys --ws "$W" >/dev/null
    $BIN train --ws "$W" $STEPS >/dev/null 2>&1
    for n in 1 4 16; do
        [ $M -eq 50 ] && [ $n -ne 16 ] && continue
        $BIN plan --ws "$W" --n $n --json 2>/dev/null | python3 -c '
import json, sys
j = json.load(sys.stdin); r = j["runs"][0]
print("%5s %6d %9d %10.1f %10.1f %10.1f %12.0f %10.1f%%" % (sys.argv[1], r["n"], r["contexts"], j["total_seconds"],
      j["sample_seconds"], j["score_seconds"], j["contexts_per_second"], 100 * r["format_compliance"]))' $M
    done
done
rm -rf "$W"
