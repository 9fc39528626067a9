#!/usr/bin/env bash
# serendip split --per-user through the command line: windows of a hand-made log (ties in time,
# a one-event user), split.json's per-user arrays, usage errors, a split refused after the
# dataset changed (cluster exits 1 naming the stage to rerun; info reports it), and on
# ml-latest-small the windows checked against an independent computation in Python (skipped
# visibly when the data or python3 is absent).
set -u
BIN=${BUILD:-build}/serendip
fail=0
ws=$(mktemp -d /tmp/sd_test_splitXXXXXX)
trap 'rm -rf "$ws"' EXIT
bad() { echo "FAIL: $*"; fail=1; }

# user 1: four days; user 2: one event; user 3: the last two events share a second.
cat >"$ws/log.csv" <<'EOF'
user,item,t,r
1,10,2020-01-01,4
1,11,2020-01-02,5
1,12,2020-01-03,4
1,13,2020-01-04,3
2,10,2020-01-05,4
3,10,2020-01-01,4
3,11,2020-01-02,4
3,12,2020-01-02,4
EOF
ingest() { $BIN ingest --ws "$ws/w" --ratings "$1" --user-col user --item-col item --ts-col t --rating-col r >"$ws/out" 2>&1 \
    || bad "ingest $1 failed: $(cat "$ws/out")"; }
ingest "$ws/log.csv"
counts() { tr -d '\n\t ' <"$ws/out" | grep -q "$1" || bad "$2: expected $1 in: $(tr -d '\n\t ' <"$ws/out")"; }

# last:1 -> user 1 tests its fourth day; user 2 is all train; user 3's tie stays train.
$BIN split --ws "$ws/w" --per-user last:1 --json >"$ws/out" 2>&1 || bad "split --per-user last:1 failed: $(cat "$ws/out")"
counts '"kind":"per-user","test":"last:1","valid":"none","train":{"events":7,"users":3},"valid":{"events":0,"users":0},"test":{"events":1,"users":1}' "last:1"

# last:2 with a valid window of last:1: user 1 = 1 train, 1 valid, 2 test; user 3 = 1 train, 2 test (the tie).
$BIN split --ws "$ws/w" --per-user last:2 --per-user-valid last:1 --json >"$ws/out" 2>&1 || bad "split last:2 + valid failed: $(cat "$ws/out")"
counts '"train":{"events":3,"users":3},"valid":{"events":1,"users":1},"test":{"events":4,"users":2}' "last:2 valid last:1"
# boundaries: the second after the last event before each cut (2020-01-01 = 1577836800)
tr -d '\n\t ' <"$ws/w/split.json" >"$ws/flat"
grep -q '"user_train_end":\[1577836801,1578182401,1577836801\]' "$ws/flat" || bad "user_train_end: $(cat "$ws/flat")"
grep -q '"user_valid_end":\[1577923201,1578182401,1577836801\]' "$ws/flat" || bad "user_valid_end: $(cat "$ws/flat")"
grep -q '"users":3' "$ws/flat" || bad "split.json lacks \"users\": 3"
grep -Eq '"dataset_hash":"[0-9a-f]{16}"' "$ws/flat" || bad "split.json lacks the dataset hash"
$BIN split --ws "$ws/w" --per-user frac:0.5 >"$ws/out" 2>&1 || bad "split frac:0.5 failed"
grep -q "per-user: test = each user's frac:0.5, valid = none" "$ws/out" || bad "summary: $(cat "$ws/out")"
$BIN info --ws "$ws/w" >"$ws/out" 2>&1 || bad "info failed: $(cat "$ws/out")"
grep -q "split *per-user: test = each user's frac:0.5" "$ws/out" || bad "info does not describe the split: $(cat "$ws/out")"

# Usage errors exit 2 and name the flag.
usage() {
    $BIN split --ws "$ws/w" "$@" >"$ws/out" 2>&1
    local rc=$?
    [ $rc -eq 2 ] || bad "split $* exited $rc, expected 2"
}
usage --per-user first:3; grep -q "first:3" "$ws/out" || bad "bad window not named: $(cat "$ws/out")"
usage --per-user last:0
usage --per-user frac:1.5
usage --per-user last:2 --train-frac 0.5
usage --per-user last:2 --train-end 2020-01-02 --valid-end 2020-01-03
usage --per-user-valid last:1
usage --per-user last:2 --per-user-valid frac:2

# The dataset changes under the split: stages refuse it, info says so (and exits 0).
$BIN split --ws "$ws/w" --per-user last:1 >/dev/null 2>&1 || bad "split failed"
printf 'user,item,t,r\n1,10,2020-01-01,4\n1,11,2020-01-02,5\n' >"$ws/log2.csv"
ingest "$ws/log2.csv"
$BIN cluster --ws "$ws/w" >"$ws/out" 2>&1
rc=$?
[ $rc -eq 1 ] || bad "cluster over a stale split exited $rc, expected 1"
grep -q "rerun 'serendip split'" "$ws/out" || bad "stale split message: $(cat "$ws/out")"
$BIN info --ws "$ws/w" >"$ws/out" 2>&1 || bad "info with a stale split failed: $(cat "$ws/out")"
grep -q "split *(unusable: .*rerun 'serendip split')" "$ws/out" || bad "info does not flag the stale split: $(cat "$ws/out")"
# the global split still works and is the default
$BIN split --ws "$ws/w" --json >"$ws/out" 2>&1 || bad "global split failed: $(cat "$ws/out")"
counts '"kind":"global"' "global split"

ML=../shared/data/ml-latest-small
if [ ! -f "$ML/ratings.csv" ]; then
    echo "SKIP: $ML absent (per-user split on ml-latest-small not checked)"
elif ! command -v python3 >/dev/null; then
    echo "SKIP: python3 absent (per-user split on ml-latest-small not checked)"
else
    $BIN ingest --ws "$ws/ml" --movielens "$ML" >/dev/null 2>&1 || bad "ml-latest-small ingest failed"
    $BIN split --ws "$ws/ml" --per-user last:5 --per-user-valid frac:0.1 --json >"$ws/out" 2>&1 || bad "ml split failed: $(cat "$ws/out")"
    # the same rule written independently: per user, cut indices by count, ties before a cut stay before it
    python3 - "$ML/ratings.csv" >"$ws/expect" <<'EOF'
import csv, math, sys
ts = {}
for row in csv.DictReader(open(sys.argv[1])):
    ts.setdefault(row["userId"], []).append(int(row["timestamp"]))
ev, us = [0, 0, 0], [0, 0, 0]
for t in ts.values():
    t.sort()
    n = len(t)
    c_test = max(1, n - 5)
    c_valid = max(1, c_test - math.ceil(0.1 * n - 1e-9))
    te, ve = t[c_valid - 1] + 1, t[c_test - 1] + 1
    w = [0 if x < te else 1 if x < ve else 2 for x in t]
    for k in range(3):
        ev[k] += w.count(k)
        us[k] += k in w
print('"train":{"events":%d,"users":%d},"valid":{"events":%d,"users":%d},"test":{"events":%d,"users":%d}'
      % (ev[0], us[0], ev[1], us[1], ev[2], us[2]))
EOF
    grep -q '"test":{"events":[1-9]' "$ws/expect" || bad "the Python reference printed no windows: $(cat "$ws/expect")"
    counts "$(cat "$ws/expect")" "ml-latest-small last:5 + frac:0.1"
fi
[ $fail -eq 0 ] && echo "ok: split --per-user command line"
exit $fail
