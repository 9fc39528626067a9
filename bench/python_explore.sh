#!/usr/bin/env bash
# python_explore.sh - the cost of the Python binding on the explore hot path: the same answers
# (every user of a 2000-user synthetic world, n=5 clusters, k=5 items, three passes) from the C
# answer path (build/bench/bench_answer: an_answer in a loop) beside serendip.Workspace.explore
# (ctypes call + JSON parse into dataclasses), one thread and two threads sharing a workspace.
# Fails when a run fails or when Python's answers are not the command's bytes (20 users checked).
# Tiny models (a one-layer transformer, constrained plan): this measures serving, not the models.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
B=$BUILD/serendip
for f in "$B" "$BUILD/libserendip.so" "$BUILD/bench/bench_answer"; do
    [ -e "$f" ] || { echo "FAIL: python_explore.sh: no $f (make $BUILD/bench/bench_answer)"; exit 1; }
done
W=$(mktemp -d /tmp/sdpyb.XXXXXX)
trap 'rm -rf "$W"' EXIT
ws=$W/ws
{ $B world --ws $ws --users 2000 --items 1500 --seed 2 && $B split --ws $ws && $B cluster --ws $ws --clusters 40 --top 8 &&
  $B journeys --ws $ws &&
  $B train --ws $ws --dim 16 --layers 1 --heads 2 --kv-heads 1 --hidden 32 --vocab 300 --seq-len 128 --batch 4 \
      --pretrain-steps 5 --novelty-steps 5 --align-steps 5 && $B plan --ws $ws --n 2 --constrained; } >/dev/null 2>&1 \
    || { echo "FAIL: python_explore.sh: building the workspace"; exit 1; }
echo "C   (an_answer loop, 1 thread):   $("$BUILD/bench/bench_answer" $ws 5 5 | head -1)"
SERENDIP_LIB=$BUILD PYTHONPATH=python SERENDIP_BIN=$B $PY - "$ws" <<'PY' || exit 1
import json, subprocess, sys, threading, time, os
import serendip
ws = serendip.Workspace(sys.argv[1], create=False)
users = list(range(1, 2001))  # the world's raw user ids
ws.explore(user=1)  # opens the explorer
for u in users[:20]:
    cli = subprocess.run([os.environ["SERENDIP_BIN"], "explore", "--ws", sys.argv[1], "--user", str(u), "--json"],
                         capture_output=True, text=True, check=True).stdout
    if ws.explore(user=u).json != cli:
        sys.exit("FAIL: python_explore.sh: user %d: the Python answer differs from serendip explore --json" % u)
t0 = time.perf_counter()
for _ in range(3):
    for u in users:
        ws.explore(user=u)
t1 = time.perf_counter() - t0
print("Py  (Workspace.explore, 1 thread): %d answers in %.3f s: %.1f us/answer" % (3 * len(users), t1, 1e6 * t1 / (3 * len(users))))
def work(part):
    for _ in range(3):
        for u in part:
            ws.explore(user=u)
ts = [threading.Thread(target=work, args=(users[i::2],)) for i in range(2)]
t0 = time.perf_counter()
for t in ts: t.start()
for t in ts: t.join()
t2 = time.perf_counter() - t0
print("Py  (Workspace.explore, 2 threads): %d answers in %.3f s: %.1f us/answer (wall)" % (3 * len(users), t2, 1e6 * t2 / (3 * len(users))))
ws.close()
PY
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
