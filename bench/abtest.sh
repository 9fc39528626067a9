#!/usr/bin/env bash
# bench/abtest.sh - the simulated A/B experiment's speed (docs/abtest.md, "Speed").
#  1. simulated user-days per second on a 10,000-user world (control, oracle and disliked arms:
#     no table needed), 28 days, with 1 and with 2 threads; the two abtest.json must be identical
#     but for the timing (users are independent within a day), else the benchmark fails;
#  2. when a planned workspace is given (WS=..., default ./ws-demo when it has explore.tbl): the
#     issue's run, control vs explore vs explore-refresh, 28 days, a refresh every 7 days, with the
#     split simulation / refreshes / statistics; it fails when the run fails or when its CPU time
#     exceeds what 2 cores give in 5 minutes (600 core-seconds; wall time is printed beside it, and
#     depends on how many other jobs share the machine: the load average is printed too).
# Writes into a scratch folder (a copy of WS: the experiment's versions go to WS/abtest/).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/serendip
[ -x $BIN ] || { echo "bench/abtest.sh: $BIN missing (make)"; exit 1; }
lscpu | grep -E "Model name" | sed 's/^ */cpu: /'
echo "threads: $(nproc); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
T=$(mktemp -d /tmp/sdabbench.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0

$BIN world --ws $T/w --users 10000 --seed 42 >/dev/null 2>&1 || { echo "FAIL: world"; exit 1; }
for th in 1 2; do
    $BIN abtest --ws $T/w --arms control,oracle,disliked --days 28 --threads $th --out $T/ab$th.json >$T/o$th.txt 2>&1 \
        || { echo "FAIL: abtest --threads $th: $(tail -2 $T/o$th.txt)"; fail=1; }
done
python3 - $T <<'PY' || fail=1
import json, sys
t = sys.argv[1]
a, b = json.load(open(t + "/ab1.json")), json.load(open(t + "/ab2.json"))
for j in (a, b):
    tm = j["timing"]
    print("threads %d: %d user-days in %.2f s of simulation = %.0f simulated user-days/s (statistics %.2f s)"
          % (tm["threads"], tm["user_days"], tm["simulate_s"], tm["user_days_per_s"], tm["stats_s"]))
print("speed-up 2 threads / 1: %.2f" % (b["timing"]["user_days_per_s"] / a["timing"]["user_days_per_s"]))
ta, tb = a.pop("timing"), b.pop("timing")
a.pop("workspace"), b.pop("workspace")
if a != b:
    print("FAIL: the results differ between 1 and 2 threads"); sys.exit(1)
print("results identical with 1 and 2 threads: yes")
PY

WS=${WS:-ws-demo}
if [ -f "$WS/explore.tbl" ] && [ -f "$WS/world_truth.bin" ]; then
    cp -r "$WS" $T/demo
    rm -rf $T/demo/abtest $T/demo/abtest.json
    echo "issue run on $WS: control,explore,explore-refresh, 28 days, refresh every 7 (defaults: best-of-4 re-plan, 150 steps)"
    s0=$(date +%s.%N)
    /usr/bin/time -f "%U %S %e" -o $T/time.txt $BIN abtest --ws $T/demo ${ABTEST_FLAGS:-} >$T/demo.txt 2>$T/demo.err \
        || { echo "FAIL: the issue run: $(tail -3 $T/demo.err)"; fail=1; }
    cat $T/demo.txt
    grep "refresh [0-9]* after" $T/demo.err | sed 's/^serendip: //'
    read u s e <$T/time.txt
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    python3 - "$u" "$s" "$e" <<'PY' || fail=1
import sys
u, s, e = map(float, sys.argv[1:])
print("wall %.1f s, CPU %.1f core-seconds (user %.1f + sys %.1f); budget: 600 core-seconds (2 cores x 5 minutes)" % (e, u + s, u, s))
if u + s > 600:
    print("FAIL: over the budget"); sys.exit(1)
PY
else
    echo "SKIP (issue run): no planned synthetic workspace at $WS (make demo, or WS=...)"
fi
[ $fail -eq 0 ] || { echo "bench/abtest.sh FAILED"; exit 1; }
