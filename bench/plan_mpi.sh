#!/usr/bin/env bash
# plan --mpi scaling (issue 12): the same plan (same workspace, n, seed) as 1 rank x 1 thread and as
# 2 ranks x 1 thread under mpirun, loopback only; prints both times, the speed-up and the parallel
# efficiency T1 / (2 T2) (the target is 0.9; this machine has 2 cores shared with others: the load
# is printed before and after), and checks the two tables are byte-identical. Exits non-zero when
# a run fails or the tables differ. Efficiency is reported twice: from the wall time of the whole
# command (process start, model loading, MPI start-up, gathering, writing) and from the planner's
# own total_seconds (rank 0's pl_plan, gathering included). Both runs go through mpirun. Also the
# CPU time of all processes of each run: their ratio (work efficiency) does not depend on the load.
#   BUILD=build bash bench/plan_mpi.sh                     (M = 50: 2,450 contexts, default model sizes)
#   BENCH_WS=/path/to/ws BUILD=build bash bench/plan_mpi.sh  (a copy of an existing workspace, e.g. the demo's)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${BUILD:-build}/serendip")
N=${BENCH_N:-16}
T=$(mktemp -d /tmp/serendip-bench-plan-mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
command -v mpirun >/dev/null || { echo "FAIL: no mpirun (install openmpi-bin libopenmpi-dev: scripts/install-deps)"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
MPIRUN="mpirun --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none --mca oob_tcp_if_include lo"
W=$T/ws
if [ -n "${BENCH_WS:-}" ]; then
    cp -r "$BENCH_WS" "$W"
else
    STEPS=${BENCH_STEPS:---pretrain-steps 200 --novelty-steps 150 --align-steps 150}
    { $BIN world --ws "$W" && $BIN split --ws "$W" && $BIN cluster --ws "$W" --clusters ${BENCH_M:-50} &&
      $BIN journeys --ws "$W" && $BIN train --ws "$W" $STEPS --no-retrieval; } >"$T/setup.log" 2>&1 ||
        { tail -5 "$T/setup.log"; echo "FAIL: building the workspace"; exit 1; }
fi
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), cores: $(getconf _NPROCESSORS_ONLN), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
secs() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_seconds"])' "$W/plans/plan-explore.json"; }
run() { # run LABEL CMD...: wall seconds into $T/LABEL.wall, CPU seconds of every process into
          # $T/LABEL.cpu, planner seconds into $T/LABEL.plan
    local label=$1; shift
    python3 - "$T/$label" "$@" <<'PY' || { tail -5 "$T/$label.err"; echo "FAIL: $label run failed"; exit 1; }
import resource, subprocess, sys, time
base = sys.argv[1]
t0 = time.time()
with open(base + ".out", "w") as o, open(base + ".err", "w") as e:
    rc = subprocess.call(sys.argv[2:], stdout=o, stderr=e)
wall = time.time() - t0
u = resource.getrusage(resource.RUSAGE_CHILDREN)  # every waited-for descendant: mpirun, the ranks
open(base + ".wall", "w").write("%f\n" % wall)
open(base + ".cpu", "w").write("%f\n" % (u.ru_utime + u.ru_stime))
sys.exit(rc)
PY
    secs >"$T/$label.plan"
}
# Every rank in a session of its own (setsid): Linux's autogroup scheduling gives one CPU share to
# each session, so on a machine loaded by other sessions two ranks of one session would share one
# rank's CPU time (measured here at load 13-19: efficiency 0.46 without this). Separate sessions
# schedule the ranks as separate machines would; the 1-rank run is launched the same way.
SESS=$(command -v setsid >/dev/null && [ "${BENCH_SESSIONS:-1}" = 1 ] && echo "setsid -w" || true)
run r1 $MPIRUN -n 1 $SESS $BIN plan --ws "$W" --n $N --out "$T/r1.tbl" --mpi
run r2 $MPIRUN -n 2 $SESS $BIN plan --ws "$W" --n $N --out "$T/r2.tbl" --mpi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
cmp -s "$T/r1.tbl" "$T/r2.tbl" || { echo "FAIL: the 2-rank table differs from the 1-rank table"; exit 1; }
contexts=$(sed -n 's/^planned \([0-9]*\) contexts.*/\1/p' "$T/r1.out")
python3 - "$contexts" "$N" "$(cat $T/r1.wall)" "$(cat $T/r2.wall)" "$(cat $T/r1.plan)" "$(cat $T/r2.plan)" \
    "$(cat $T/r1.cpu)" "$(cat $T/r2.cpu)" <<'PY'
import sys
ctx, n = int(sys.argv[1]), int(sys.argv[2])
w1, w2, p1, p2, c1, c2 = map(float, sys.argv[3:9])
print("%-34s %10s %10s %9s %11s" % ("plan (n = %d, %d contexts)" % (n, ctx), "seconds", "contexts/s", "speed-up", "efficiency"))
print("%-34s %10.1f %10.0f %9s %11s" % ("1 rank x 1 thread (wall)", w1, ctx / w1, "1", "1"))
print("%-34s %10.1f %10.0f %9.2f %11.2f" % ("2 ranks x 1 thread (wall)", w2, ctx / w2, w1 / w2, w1 / (2 * w2)))
print("%-34s %10.1f %10.0f %9s %11s" % ("1 rank x 1 thread (planner)", p1, ctx / p1, "1", "1"))
print("%-34s %10.1f %10.0f %9.2f %11.2f" % ("2 ranks x 1 thread (planner)", p2, ctx / p2, p1 / p2, p1 / (2 * p2)))
print("%-34s %10.1f %10s %9s %11.2f" % ("CPU seconds, 1 rank / 2 ranks", c1, "", "", c1 / c2))
print("  (work efficiency: the CPU time of one rank over that of both; unlike the wall-time figures it")
print("   does not depend on how much of the cores other jobs take, only on the work MPI adds)")
print("tables byte-identical; parallel efficiency target 0.9 (2 cores: any other load on them lowers it)")
PY
