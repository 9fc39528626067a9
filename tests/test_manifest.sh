#!/usr/bin/env bash
# test_manifest.sh - a workspace knows what it was built from, end to end: rerunning `world` over
# a finished workspace makes explore, serve and journeys refuse the old taxonomy with the stage to
# rerun, `info` reports each file's freshness, and rerunning the stages makes it fresh again.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/serendip
FIX=$BUILD/tests/test_table
fail=0
bad() { echo "FAIL: $*"; fail=1; }
[ -x $FIX ] || { echo "FAIL: test_manifest.sh: $FIX missing (make test-bin)"; exit 1; }
W=$(mktemp -d /tmp/sdmf.XXXXXX)
trap 'rm -rf "$W"' EXIT
ws=$W/w
world() { $BIN world --ws $ws --users 300 --items 200 --topics 4 --subtopics 3 --seed $1 >/dev/null 2>&1 || bad "world --seed $1"; }
state() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(f["file"] + "=" + f["state"] for f in d["files"]))'; }

world 5
$BIN split --ws $ws >/dev/null 2>&1 || bad "split"
$BIN cluster --ws $ws --top 3 --clusters 12 >/dev/null 2>&1 || bad "cluster"
$BIN journeys --ws $ws >/dev/null 2>&1 || bad "journeys"
$FIX --fixture $ws >/dev/null || bad "fixture table"
s=$($BIN info --ws $ws --json | state)
echo "$s" | grep -q "dataset.bin=fresh split.json=unrecorded world_truth.bin=fresh taxonomy.bin=fresh clusters.tsv=fresh journeys.bin=fresh feedback.tsv=fresh" \
    || bad "info after the pipeline: $s"
$BIN explore --ws $ws --user 1 >/dev/null 2>&1 || bad "explore on a fresh workspace"

# a new world over the finished workspace: every reader of the old taxonomy refuses
world 6
out=$($BIN explore --ws $ws --user 1 2>&1); rc=$?
[ $rc -eq 1 ] || bad "explore on a stale taxonomy exited $rc, expected 1"
echo "$out" | grep -q 'taxonomy.bin is stale: taxonomy.bin was built from another dataset.bin (rerun `serendip cluster`' \
    || bad "explore's message: $out"
out=$(timeout 20 $BIN serve --ws $ws --port 0 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q 'rerun `serendip cluster`' || bad "serve on a stale taxonomy ($rc): $out"
out=$($BIN journeys --ws $ws 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q 'rerun `serendip cluster`' || bad "journeys on a stale taxonomy ($rc): $out"
for stage in "plan --n 2" "train" "eval"; do # the stages that read the taxonomy and journeys refuse them before any work
    out=$($BIN $stage --ws $ws 2>&1); rc=$?
    [ $rc -eq 1 ] && echo "$out" | grep -Eq "rerun .serendip (cluster|split)" || bad "$stage on a stale taxonomy ($rc): $out"
done
[ -d $ws/corpus ] && bad "train built corpora from a stale taxonomy"
s=$($BIN info --ws $ws --json | state)
echo "$s" | grep -q "taxonomy.bin=stale clusters.tsv=stale journeys.bin=stale feedback.tsv=stale" || bad "info after world: $s"
$BIN info --ws $ws | grep -q 'journeys.bin .*stale.*rerun `serendip cluster`' || bad "info text names the stage to rerun"

# rerunning the stages makes it fresh again (split.json refuses a new dataset by itself)
$BIN split --ws $ws >/dev/null 2>&1 || bad "split rerun"
$BIN cluster --ws $ws --top 3 --clusters 12 >/dev/null 2>&1 || bad "cluster rerun"
s=$($BIN info --ws $ws --json | state)
echo "$s" | grep -q "taxonomy.bin=fresh clusters.tsv=fresh journeys.bin=stale" || bad "info after cluster: $s"
$BIN journeys --ws $ws >/dev/null 2>&1 || bad "journeys rerun"
$FIX --fixture $ws >/dev/null || bad "fixture table again"
$BIN explore --ws $ws --user 1 >/dev/null 2>&1 || bad "explore after the rerun"
s=$($BIN info --ws $ws --json | state)
echo "$s" | grep -q "stale" && bad "stale after the rerun: $s"

[ $fail -eq 0 ] && echo "ok: manifest"
exit $fail
