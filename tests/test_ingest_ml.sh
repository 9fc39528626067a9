#!/usr/bin/env bash
# serendip ingest / split through the command line: exit codes, an existing dataset.bin left intact
# when ingest fails, and MovieLens latest-small (671 users, 100,004 ratings, 5 unknown items;
# skipped visibly when ../shared/data is absent).
set -u
BIN=${BUILD:-build}/serendip
fail=0
ws=$(mktemp -d /tmp/sd_test_ingest_mlXXXXXX)
trap 'rm -rf "$ws"' EXIT
bad() { echo "FAIL: $*"; fail=1; }

# A small generic log.
printf 'user,item,t,r\n1,10,2020-01-01,4\n1,11,2020-01-02,5\n2,10,2020-01-03,3\n2,12,2020-01-04,1\n' >"$ws/log.csv"
$BIN ingest --ws "$ws/w" --ratings "$ws/log.csv" --user-col user --item-col item --ts-col t --rating-col r >"$ws/out" 2>&1 \
    || bad "generic ingest failed: $(cat "$ws/out")"
grep -q "events *4" "$ws/out" || bad "generic ingest: expected 4 events in: $(cat "$ws/out")"
before=$(sha256sum "$ws/w/dataset.bin" | cut -d' ' -f1)

# A failing ingest exits 1, names file:line:field, and leaves the old dataset.bin as it was.
printf 'user,item,t,r\n1,10,2020-01-01,4\n1,11,2020-01-02,NaN\n' >"$ws/bad.csv"
$BIN ingest --ws "$ws/w" --ratings "$ws/bad.csv" --user-col user --item-col item --ts-col t --rating-col r >"$ws/out" 2>&1
rc=$?
[ $rc -eq 1 ] || bad "bad ingest exited $rc, expected 1"
grep -q 'bad.csv:3: field 4 (r): "NaN" is not a finite number' "$ws/out" || bad "bad ingest message: $(cat "$ws/out")"
after=$(sha256sum "$ws/w/dataset.bin" | cut -d' ' -f1)
[ "$before" = "$after" ] || bad "dataset.bin changed after a failed ingest"
ls "$ws/w" | grep -q tmp && bad "temporary file left behind: $(ls "$ws/w")"

# Usage errors exit 2.
$BIN ingest --ws "$ws/w" >/dev/null 2>&1; [ $? -eq 2 ] || bad "ingest without a source should exit 2"
$BIN split --ws "$ws/w" --train-end 2020-01-02 >/dev/null 2>&1; [ $? -eq 2 ] || bad "split with only --train-end should exit 2"
$BIN split --ws "$ws/w" --train-frac 0.9 --valid-frac 0.5 >/dev/null 2>&1; [ $? -eq 2 ] || bad "split with fractions over 1 should exit 2"
# split before ingest: runtime error with a hint
$BIN split --ws "$ws/empty" >/dev/null 2>&1; [ $? -eq 1 ] || bad "split without dataset should exit 1"

# Split by dates: 2 events before 2020-01-03, 1 on the 3rd, 1 after.
$BIN split --ws "$ws/w" --train-end 2020-01-03 --valid-end 2020-01-04 --json >"$ws/out" 2>&1 || bad "split failed: $(cat "$ws/out")"
has() { grep -Eq "\"$2\":[[:space:]]*$3([^0-9]|\$)" "$1" || bad "$1: expected \"$2\": $3 in: $(tr -d '\n\t' <"$1")"; }
has "$ws/w/split.json" train_end 1578009600
has "$ws/w/split.json" valid_end 1578096000
tr -d '\n\t ' <"$ws/out" | grep -q '"train":{"events":2,"users":1},"valid":{"events":1,"users":1},"test":{"events":1,"users":1}' \
    || bad "split counts wrong: $(cat "$ws/out")"

ML=../shared/data/ml-latest-small
if [ -f "$ML/ratings.csv" ]; then
    $BIN ingest --ws "$ws/ml" --movielens "$ML" --json >"$ws/out" 2>&1 || bad "ml-latest-small ingest failed: $(cat "$ws/out")"
    has "$ws/out" users 671
    has "$ws/out" interactions 100004
    has "$ws/out" unknown_items 5
    grep -q '"layout":[[:space:]]*"movielens-latest"' "$ws/out" || bad "layout not detected as movielens-latest"
    $BIN split --ws "$ws/ml" >/dev/null 2>&1 || bad "split on ml-latest-small failed"
else
    echo "SKIP: $ML absent (ml-latest-small counts not checked)"
fi
[ $fail -eq 0 ] && echo "ok: ingest / split command line"
exit $fail
