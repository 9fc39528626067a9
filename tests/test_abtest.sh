#!/usr/bin/env bash
# test_abtest.sh - `serendip abtest` end to end with refreshes, on a tiny trained workspace (small
# world, a 1-layer model trained for a few steps, best-of-2 plan): a refresh killed midway (SIGKILL
# through the fault-injection variable SERENDIP_ABTEST_KILL_AT, at several stages) leaves the
# workspace's dataset.bin, explore.tbl, models and every earlier version exactly as they were and
# no half-built version in place; a full run then writes one version per refresh whose dataset
# holds the original events plus the experiment's, a re-planned table, and abtest.json with the
# refreshes; `report` draws the A/B section; a workspace without world_truth.bin is refused (1);
# bad flags are usage errors (2); --mpi on 2 and 3 ranks writes the one-process abtest.json (with and
# without a refresh) and a failing rank is named. About 20-40 s on 2 cores.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/serendip
fail=0
bad() { echo "FAIL: $*"; fail=1; }
W=$(mktemp -d /tmp/sdabtest.XXXXXX)
trap 'rm -rf "$W"' EXIT
ws=$W/w
q() { "$@" >/dev/null 2>&1 || bad "$*"; }

q $BIN world --ws $ws --users 300 --items 200 --topics 3 --subtopics 3 --seed 4
q $BIN split --ws $ws
q $BIN cluster --ws $ws --top 3 --clusters 9
q $BIN journeys --ws $ws
q $BIN train --ws $ws --dim 32 --layers 1 --heads 2 --kv-heads 1 --hidden 64 --vocab 300 \
    --pretrain-steps 10 --novelty-steps 5 --align-steps 5 --batch 8 --novelty-examples 200 --no-retrieval
q $BIN plan --ws $ws --n 2
[ $fail -eq 0 ] || { echo "FAILED: test_abtest.sh (workspace)"; exit 1; }

h() { sha256sum "$1" | cut -d' ' -f1; }
snap() { echo "$(h $ws/dataset.bin) $(h $ws/explore.tbl) $(h $ws/models/align.gguf) $(h $ws/journeys.bin)"; }
before=$(snap)
AB="$BIN abtest --ws $ws --days 6 --refresh-every 2 --refresh-n 2 --refresh-steps 3 --bootstrap 50 --threads 2"

# killed during refresh 1, at each stage: nothing of the workspace changes, no v1 in place
for stage in dataset journeys corpus finetune plan; do
    { SERENDIP_ABTEST_KILL_AT=$stage:1 $AB >$W/out.txt 2>&1; } 2>/dev/null
    rc=$?
    [ $rc -eq 137 ] || bad "kill at $stage:1: exit $rc, expected 137 (SIGKILL): $(tail -2 $W/out.txt)"
    [ "$(snap)" = "$before" ] || bad "kill at $stage:1 changed the workspace's dataset, table, model or journeys"
    [ -e $ws/abtest/v1 ] && bad "kill at $stage:1 left a version v1 in place"
    [ -e $ws/abtest.json ] && bad "kill at $stage:1 wrote abtest.json"
done
ls -d $ws/abtest/v1.new.* >/dev/null 2>&1 || bad "a killed refresh should leave its half-built folder aside (v1.new.PID)"

# killed during refresh 2: version 1 stays whole and loadable
{ SERENDIP_ABTEST_KILL_AT=plan:2 $AB >$W/out.txt 2>&1; } 2>/dev/null
[ $? -eq 137 ] || bad "kill at plan:2 did not kill"
[ -f $ws/abtest/v1/dataset.bin ] && [ -f $ws/abtest/v1/explore.tbl ] && [ -f $ws/abtest/v1/models/align.gguf ] \
    || bad "v1 is not whole after refresh 2 was killed"
[ -e $ws/abtest/v2 ] && bad "kill at plan:2 left v2 in place"
v1=$(h $ws/abtest/v1/explore.tbl)
$BIN explore --ws $ws/abtest/v1 --user 1 --json >/dev/null 2>&1 || bad "v1 does not serve (explore --ws v1)"
[ "$(snap)" = "$before" ] || bad "kill at plan:2 changed the workspace"

# a full run: versions 1 and 2 (after days 2 and 4; none after the last day), leftovers cleaned
$AB >$W/out.txt 2>&1 || bad "full run failed: $(tail -3 $W/out.txt)"
[ "$(snap)" = "$before" ] || bad "a full run changed the workspace's own files"
[ -f $ws/abtest/v2/explore.tbl ] || bad "no v2 after a full run"
[ -e $ws/abtest/v3 ] && bad "a refresh after the last day"
ls -d $ws/abtest/*.new.* >/dev/null 2>&1 && bad "leftovers of the killed runs were not removed"
[ "$(h $ws/abtest/v1/explore.tbl)" = "$v1" ] || echo "note: v1's table differs between runs (the plan is not bit-reproducible here)"
python3 - "$ws" <<'PY' || bad "abtest.json / dataset versions"
import json, struct, sys
ws = sys.argv[1]
j = json.load(open(ws + "/abtest.json"))
assert [a["kind"] for a in j["arms"]] == ["control", "explore", "explore-refresh"], j["arms"]
assert [r["after_day"] for r in j["refreshes"]] == [2, 4], j["refreshes"]
def n_events(p):
    return struct.unpack_from("<q", open(p, "rb").read(), 40)[0]
n0, n1, n2 = n_events(ws + "/dataset.bin"), n_events(ws + "/abtest/v1/dataset.bin"), n_events(ws + "/abtest/v2/dataset.bin")
r = j["refreshes"]
assert n1 == n0 + r[0]["experiment_events"] and n2 == n0 + r[1]["experiment_events"], (n0, n1, n2, r)
assert 0 < r[0]["experiment_events"] < r[1]["experiment_events"], r
for a in j["arms"]:
    assert len(a["daily"]["pos_rate"]["value"]) == 6
    assert a["users"] > 50
assert j["arms"][1]["final"]["slot_pos_rate"]["value"] is not None
ref = j["arms"][2]["final"]["slot_pos_rate"]
assert ref["rel_explore_lo"] <= ref["rel_explore"] <= ref["rel_explore_hi"], ref
assert "rel_explore" not in j["arms"][1]["final"]["slot_pos_rate"]
PY

# the refresh fine-tuned the alignment model (full, then LoRA): the version's model differs from the workspace's
cmp -s $ws/models/align.gguf $ws/abtest/v1/models/align.gguf && bad "refresh 1 did not change the alignment model"
cmp -s $ws/models/novelty.gguf $ws/abtest/v1/models/novelty.gguf || bad "refresh 1 changed the novelty model"
$AB --lora 2 --out $W/lora.json >$W/out.txt 2>&1 || bad "--lora 2 run failed: $(tail -2 $W/out.txt)"
grep -q "(LoRA)" $W/out.txt || bad "--lora 2: no LoRA fine-tune logged"
cmp -s $ws/models/align.gguf $ws/abtest/v1/models/align.gguf && bad "LoRA refresh did not change the alignment model"
[ "$(snap)" = "$before" ] || bad "the LoRA run changed the workspace's own files"

# the report's A/B section
$BIN report --ws $ws >/dev/null 2>&1 || bad "report"
grep -q 'id="abtest"' $ws/report.html || bad "report.html has no A/B section"
[ "$(grep -c '<svg' $ws/report.html)" -ge 8 ] || bad "report.html: fewer plots than expected"

# refusals
mkdir -p $W/nt && cp $ws/dataset.bin $W/nt/
$BIN abtest --ws $W/nt >$W/o.txt 2>&1; rc=$?
[ $rc -eq 1 ] || bad "no world_truth.bin: exit $rc, expected 1"
grep -q world_truth.bin $W/o.txt || bad "no world_truth.bin: message does not name it"
$BIN abtest --ws $ws --arms control,bogus >/dev/null 2>&1; [ $? -eq 2 ] || bad "--arms bogus not a usage error"
$BIN abtest --ws $ws --days 0 >/dev/null 2>&1; [ $? -eq 2 ] || bad "--days 0 not a usage error"

# ---------------------------------------------------------------- abtest --mpi (docs/scale.md)
# Ranks split the users; rank 0 gathers the events, runs the refresh alone, computes and writes.
# abtest.json of mpirun -n 2 and -n 3 equals the one-process file of the same seed (timing fields
# removed), without a refresh and with one (whose dataset version must hold every rank's events);
# a failing rank is named and nothing is written. Launcher flags and environment as tests/test_mpi.sh.
if $BIN abtest --ws $W/none --mpi 2>&1 | grep -q "built without MPI"; then
    echo "skip: abtest --mpi (this build has no MPI; install openmpi-bin libopenmpi-dev to test it)"
else
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    [ -n "${SERENDIP_SANITIZED:-}" ] && export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    MPIRUN="mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca btl ${SERENDIP_TEST_BTL:-self,vader} --mca btl_vader_single_copy_mechanism none --mca oob_tcp_if_include lo"
    # one thread everywhere: the refresh's fine-tune sums in thread order
    ABM="$BIN abtest --ws $ws --days 4 --refresh-n 2 --refresh-steps 3 --bootstrap 30 --threads 1"
    strip() { python3 - "$1" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j.pop("timing")
for r in j["refreshes"]:
    for k in ("seconds", "dataset_s", "journeys_s", "corpus_s", "finetune_s", "plan_s"): r.pop(k)
print(json.dumps(j, sort_keys=True))
PY
    }
    for RE in 0 2; do # no refresh; one refresh after day 2
        OMP_NUM_THREADS=1 $ABM --refresh-every $RE --out $W/m1.json >/dev/null 2>&1 || bad "one-process abtest --refresh-every $RE"
        one=$(strip $W/m1.json)
        for R in 2 3; do
            OMP_NUM_THREADS=1 $MPIRUN -n $R $ABM --refresh-every $RE --out $W/m$R.json --mpi >$W/m$R.out 2>$W/m$R.err ||
                { tail -5 $W/m$R.err; bad "mpirun -n $R abtest --mpi --refresh-every $RE failed"; }
            [ "$(strip $W/m$R.json)" = "$one" ] || bad "mpirun -n $R --refresh-every $RE: abtest.json differs from the one-process file"
            r1=$((R - 1))
            grep -q "rank $r1 of $R simulates users $((300 * r1 / R + 1))..300 of 300" $W/m$R.err || bad "-n $R: the last rank did not simulate its share"
            [ "$(grep -c '^wrote ' $W/m$R.out)" = 1 ] || bad "-n $R: the summary is not printed exactly once"
        done
    done
    python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['refreshes']; assert len(r)==1 and r[0]['experiment_events']>0, r" $W/m3.json ||
        bad "abtest --mpi --refresh-every 2: not one refresh with the experiment's events"
    # a failing rank: named, non-zero, nothing written
    SERENDIP_MPI_TEST_WS=1:$W/none timeout 60 $MPIRUN -n 2 $ABM --refresh-every 2 --out $W/f.json --mpi >/dev/null 2>$W/f.err
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || bad "abtest --mpi with a failing rank 1 exited $rc (0, or hung: 124)"
    grep -q "rank 1 of 2 failed: .*world_truth.bin is missing" $W/f.err || { cat $W/f.err; bad "abtest --mpi: the failing rank 1 is not named"; }
    [ -e $W/f.json ] && bad "abtest --mpi: a failing rank and abtest.json was written"
    rm -rf $ws/abtest
    SERENDIP_MPI_TEST_KILL_RANK=2 OMP_NUM_THREADS=1 timeout 60 $MPIRUN -n 3 $ABM --refresh-every 2 --out $W/f.json --mpi >/dev/null 2>$W/f.err
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || bad "abtest --mpi with a killed rank 2 exited $rc (0, or hung: 124)"
    grep -q "rank 2 .*exited on signal 9" $W/f.err || { cat $W/f.err; bad "abtest --mpi: the killed rank 2 is not named"; }
    [ -e $W/f.json ] && bad "abtest --mpi: a killed rank and abtest.json was written"
    [ -e $ws/abtest/v1 ] && bad "abtest --mpi: a rank killed on day 1 and a version was written"
    # rank 0 killed within its refresh: no version in place, the workspace untouched
    SERENDIP_ABTEST_KILL_AT=plan:1 OMP_NUM_THREADS=1 timeout 60 $MPIRUN -n 2 $ABM --refresh-every 2 --out $W/f.json --mpi >/dev/null 2>$W/f.err
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || bad "abtest --mpi, rank 0 killed in its refresh: exit $rc"
    grep -q "rank 0 .*exited on signal 9" $W/f.err || { cat $W/f.err; bad "abtest --mpi: the killed rank 0 is not named"; }
    [ -e $ws/abtest/v1 ] || [ -e $W/f.json ] && bad "abtest --mpi: rank 0 killed in its refresh and v1 or abtest.json was written"
    [ "$(snap)" = "$before" ] || bad "abtest --mpi changed the workspace's own files"
fi

[ $fail -eq 0 ] && echo "test_abtest.sh: ok" || { echo "FAILED: test_abtest.sh"; exit 1; }
