#!/usr/bin/env bash
# Explore-table build throughput at n = 16 (issue 12 part 1): contexts/s, where the time goes
# (sampling, alignment scoring, rows forwarded by each model) and the plan's achieved FLOP rate
# beside OpenBLAS sgemm at 1024^3 measured in the same run on the same threads:
#
#   plan_vs_sgemm R   = (forward FLOPs of the plan / its wall seconds) / (sgemm GFLOP/s at 1024^3
#                       on the same number of threads, median of 5 products)
#
# FLOPs are those of the forward passes actually done, counted by lm_infer_stats
# (include/serendip/lm_infer.h has the formula: 2 x multiply-adds of the weight products, the
# attention over the positions each row reads, the output head of rows that want logits). The
# sgemm rate is the mean of the medians measured just before and just after all the plans. On a
# machine shared with other jobs the wall-clock ratio moves with the load (a run under load 2.6
# printed 0.95 where a quiet one printed 0.60: sgemm had less of the machine than the plan), so
# read it on a quiet machine; the bench also prints the same ratio per CPU-second (plan FLOPs /
# its user+sys seconds, over sgemm FLOPs / its CPU seconds), less sensitive to the load, and
# the load average (uptime) before and after.
#
# The old figure: the commit before this work (OLD_REV, default 083878e) is checked out in a
# detached worktree under /tmp and built there, and runs the same plans on the same workspace in
# the same run, alternating with the new binary (set OLD_REV= to skip it).
#
#   BUILD=build bash bench/plan.sh                  (builds an M = 100 world and briefly trained
#                                                    models, as before: about 10 minutes)
#   BENCH_WS=ws-demo BUILD=build bash bench/plan.sh (a copy of an existing workspace instead)
#   SHARD=1/10 ...                                  (plan one slice of the contexts only)
#
# Exits non-zero when a plan, the sgemm measure or the old build fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/serendip
THREADS=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
# As bench/lm_infer_vs_llamacpp.sh: on a machine shared with other jobs, spinning OpenMP waits make
# every barrier wait for a descheduled thread and count the spinning as work (measured: the same
# plan took 3.1 CPU-seconds with spinning waits, 1.6 with passive ones); passive for both binaries.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
OLD_REV=${OLD_REV-083878e}
N=${N:-16}
W=${BENCH_DIR:-/tmp/serendip-bench-plan}
STEPS=${BENCH_STEPS:---pretrain-steps 200 --novelty-steps 150 --align-steps 150}
SHARD_FLAG=${SHARD:+--shard $SHARD}
make --no-print-directory BUILD="$BUILD" "$BIN" "$BUILD/bench/bench_sgemm" >/dev/null

OLD_BIN=""
if [ -n "$OLD_REV" ]; then
    OLD_DIR=/tmp/serendip-plan-old-$OLD_REV
    [ -d "$OLD_DIR" ] || git worktree add --detach "$OLD_DIR" "$OLD_REV" >/dev/null 2>&1
    make --no-print-directory -C "$OLD_DIR" BUILD=build build/serendip >/dev/null
    OLD_BIN=$OLD_DIR/build/serendip
fi

rm -rf "$W"
if [ -n "${BENCH_WS:-}" ]; then
    cp -r "$BENCH_WS" "$W"
else
    $BIN world --ws "$W" >/dev/null
    $BIN split --ws "$W" >/dev/null
    $BIN cluster --ws "$W" --clusters 100 >/dev/null
    $BIN journeys --ws "$W" >/dev/null
    $BIN train --ws "$W" $STEPS >/dev/null 2>&1
fi

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), threads: $THREADS"
echo "load before: $(uptime | sed 's/.*load average: //')"
sg() { "$BUILD/bench/bench_sgemm" 1024 5 "$THREADS"; }
get() { echo "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
s1=$(sg)

# one plan: prints "total sample score ctx/s gflop cpu_s gen_rows align_rows"
plan() { # plan BIN MODE_FLAGS
    if ! /usr/bin/time -o "$W/time.txt" -f "%U %S" "$1" plan --ws "$W" --n "$N" $2 $SHARD_FLAG --out "$W/bench.tbl" \
        --json >"$W/plan.json" 2>"$W/plan.err"; then
        echo "plan.sh: $1 plan $2 failed:" >&2; tail -n 3 "$W/plan.err" >&2; return 1
    fi
    python3 - "$W/plan.json" "$(tail -n 1 "$W/time.txt")" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1])); u, s = map(float, sys.argv[2].split())
print("%.2f %.2f %.2f %.1f %.1f %.2f %d %d" % (j["total_seconds"], j["sample_seconds"], j["score_seconds"],
      j["contexts_per_second"], j.get("forward_gflop", float("nan")), u + s, j.get("generator_rows", -1),
      j.get("alignment_rows", -1)))
EOF
}
printf "%-4s %-12s %8s %8s %8s %10s %9s %8s %10s %10s\n" bin mode total_s sample_s score_s contexts/s gflop cpu_s gen_rows align_rows
declare -A R
for mode in free constrained; do
    flags=""; [ $mode = constrained ] && flags=--constrained
    R[new_$mode]=$(plan "$BIN" "$flags")
    printf "%-4s %-12s %8s %8s %8s %10s %9s %8s %10s %10s\n" new $mode ${R[new_$mode]}
    if [ -n "$OLD_BIN" ]; then
        R[old_$mode]=$(plan "$OLD_BIN" "$flags")
        o=(${R[old_$mode]})
        printf "%-4s %-12s %8s %8s %8s %10s %9s %8s %10s %10s\n" old $mode "${o[0]}" "${o[1]}" "${o[2]}" "${o[3]}" - "${o[5]}" - -
    fi
done
s2=$(sg)
echo "load after: $(uptime | sed 's/.*load average: //')"
python3 - "$s1" "$s2" "${R[new_free]}" "${R[new_constrained]}" "${R[old_free]:-}" "${R[old_constrained]:-}" <<'EOF'
import sys
def kv(t): return {l.split()[0]: float(l.split()[1]) for l in t.strip().splitlines()}
a, b = kv(sys.argv[1]), kv(sys.argv[2])
sg = (a["sgemm_median_gflops"] + b["sgemm_median_gflops"]) / 2
sg_cpu = (a["sgemm_cpu_gflops"] + b["sgemm_cpu_gflops"]) / 2
print("sgemm_1024_gflops %.1f (median before %.1f, after %.1f; best %.1f); per CPU-second %.1f" % (
      sg, a["sgemm_median_gflops"], b["sgemm_median_gflops"], max(a["sgemm_best_gflops"], b["sgemm_best_gflops"]), sg_cpu))
def row(t): return [float(x) for x in t.split()] if t else None
for key, name in ((3, "plan_vs_sgemm"), (4, "plan_vs_sgemm_constrained")):
    r = row(sys.argv[key])
    q = lambda a, b: a / b if b > 0 else float("nan")
    print("%s: tokens forwarded per second: generator %.0f (%.1f per context), alignment %.0f" % (
          name, q(r[6], r[1]), q(r[6], r[3] * r[0]), q(r[7], r[2])))
    print("%s %.2f" % (name, r[4] / r[0] / sg))
    print("%s_per_cpu_second %.2f" % (name, r[4] / r[5] / sg_cpu))
for key, old, name in ((3, 5, "free"), (4, 6, "constrained")):
    r, o = row(sys.argv[key]), row(sys.argv[old])
    print("contexts_per_s_%s %.1f" % (name, r[3]) + (" (old %.1f: %.2fx; per CPU-second %.2fx)" % (o[3], r[3] / o[3], o[5] / r[5]) if o else ""))
n, o = row(sys.argv[4]), row(sys.argv[5])
if o: print("contexts_per_s_constrained_vs_old_default %.2fx" % (n[3] / o[3]))
EOF
rm -rf "$W"
