#!/usr/bin/env bash
# The paper-scale explore table (issue 12): every context of the paper's regime, 760 level-2
# clusters (760 x 759 = 576,840 contexts for K = 2), n = 16, planned with `--constrained` (the fast
# path; free generation names a cluster in 1.6% of samples at this scale, docs/results.md), on this
# machine's threads. Prints the wall time against the 20-minute goal, where it went (sampling,
# alignment scoring), contexts/s, the achieved GFLOP/s, peak memory, the table's size, the CPU, the
# thread count and the load before and after.
#
#   BUILD=build bash bench/plan_paper.sh          (builds the workspace first: world --preset paper,
#                                                  split, cluster, journeys, train: about 6 minutes;
#                                                  then the plan: about 16 minutes on 2 quiet cores)
#   BENCH_WS=ws-paper BUILD=build bash bench/plan_paper.sh   (an existing paper workspace, e.g.
#                                                  `make study-paper-scale`'s; it is not modified:
#                                                  the table goes to a temporary file)
#   SHARD=3/20 ...                                (one slice of the contexts only: a quick look)
#
# Exits non-zero when a stage or the plan fails, or when the table does not hold every context of
# the range with a complete report; the 20-minute goal itself is printed, not enforced (on a
# machine shared with other jobs the wall time moves with their load).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$(realpath "$BUILD/serendip")
make --no-print-directory BUILD="$BUILD" "$BUILD/serendip" >/dev/null
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # as bench/plan.sh: robust on a shared machine
T=$(mktemp -d /tmp/serendip-bench-plan-paper.XXXXXX)
trap 'rm -rf "$T"' EXIT
if [ -n "${BENCH_WS:-}" ]; then
    W=$(realpath "$BENCH_WS")
    [ -f "$W/models/align.gguf" ] || { echo "FAIL: $W has no trained models (run make study-paper-scale or drop BENCH_WS)"; exit 1; }
else
    W=$T/ws
    echo "building the paper-scale workspace in $W (about 6 minutes)"
    t0=$(date +%s)
    { $BIN world --ws "$W" --preset paper && $BIN split --ws "$W" && $BIN cluster --ws "$W" --clusters 760 --top 40 &&
      $BIN journeys --ws "$W" && $BIN train --ws "$W" --no-retrieval; } >"$T/setup.log" 2>&1 ||
        { tail -5 "$T/setup.log"; echo "FAIL: building the workspace"; exit 1; }
    echo "workspace built in $(( $(date +%s) - t0 )) s"
fi
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), threads: ${OMP_NUM_THREADS:-$(nproc)}, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
if ! /usr/bin/time -v -o "$T/time.txt" "$BIN" plan --ws "$W" --n 16 --constrained ${SHARD:+--shard $SHARD} \
    --out "$T/paper.tbl" --json >"$T/plan.json" 2>"$T/plan.err"; then
    tail -5 "$T/plan.err"; echo "FAIL: the plan failed"; exit 1
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$T/plan.json" "$T/time.txt" "$T/paper.tbl" "${SHARD:-}" <<'EOF'
import json, os, re, sys
j = json.load(open(sys.argv[1])); tv = open(sys.argv[2]).read(); tbl, shard = sys.argv[3], sys.argv[4]
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv).group(1))
cpu = sum(float(re.search(p, tv).group(1)) for p in (r"User time \(seconds\): ([\d.]+)", r"System time \(seconds\): ([\d.]+)"))
run = j["runs"][0]
ok = run["contexts"] > 0 and run["format_compliance"] == 1 and os.path.getsize(tbl) > 0
if not shard: ok = ok and run["contexts"] == 760 * 759
wall = j["total_seconds"]
print("contexts %d, n = 16, constrained, %d thread(s)" % (run["contexts"], j["threads"]))
print("plan_seconds %.1f (%s)" % (wall, "%d min %02d s" % (wall // 60, wall % 60)))
print("sample_seconds %.1f" % j["sample_seconds"])
print("score_seconds %.1f" % j["score_seconds"])
print("cpu_seconds %.1f" % cpu)
print("contexts_per_second %.1f" % j["contexts_per_second"])
print("pairs_scored %d (%.1f per context)" % (j["pairs_scored"], j["pairs_scored"] / run["contexts"]))
print("achieved_gflops %.1f" % j["achieved_gflops"])
print("peak_rss_mb %.0f" % (rss / 1024))
print("table_bytes %d" % os.path.getsize(tbl))
print("fallback_share %.4f" % run["fallback_share"])
if shard:
    print("slice %s: the whole table would take about %.1f minutes at this rate" % (shard, 760 * 759 / j["contexts_per_second"] / 60))
else:
    print("goal: the whole table within 20 minutes: %s" % ("met" if wall <= 1200 else "MISSED"))
if not ok:
    print("FAIL: the plan's report or table is incomplete"); sys.exit(1)
EOF
