#!/usr/bin/env bash
# serendip journeys / info / explore / plan-merge end to end on a small synthetic world, and on
# MovieLens latest-small when ../shared/data has it (the counts the issue names).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/serendip
FIX=$BUILD/tests/test_table
fail=0
bad() { echo "FAIL: $*"; fail=1; }
expect_rc() { local want=$1; shift; "$@" >/dev/null 2>&1; local got=$?; [ $got -eq $want ] || bad "'$*' exited $got, expected $want"; }
W=$(mktemp -d /tmp/sdjrsh.XXXXXX)
trap 'rm -rf "$W"' EXIT

# ---------------------------------------------------------------- synthetic world
$BIN world --ws $W/w --users 400 --items 600 --seed 3 >/dev/null 2>&1 || bad "world"
$BIN split --ws $W/w >/dev/null 2>&1 || bad "split"
$BIN cluster --ws $W/w --top 4 --clusters 20 >/dev/null 2>&1 || bad "cluster"
expect_rc 1 $BIN explore --ws $W/w --clusters 1,2          # no journeys/table yet: runtime error
$BIN info --ws $W/w --json > $W/info0.json || bad "info before journeys"
grep -q '"transitions":	null' $W/info0.json || bad "info: transitions should be null before journeys"
out=$($BIN journeys --ws $W/w --k 2) || bad "journeys"
echo "$out" | grep -q "novel transitions" || bad "journeys prints counts"
[ -s $W/w/journeys.bin ] && [ -s $W/w/feedback.tsv ] || bad "journeys files"
head -1 $W/w/feedback.tsv | grep -q "^context	context_desc	candidate	candidate_desc	users	exposures	positives	pos_rate$" || bad "feedback.tsv header"
$BIN info --ws $W/w --json > $W/info.json || bad "info --json"
for key in users items interactions unknown_items clusters_top clusters transitions novel_transitions feedback_tuples; do
    grep -Eq "\"$key\":	[0-9]+," $W/info.json || bad "info --json: key $key missing or not a number"
done
grep -q '"clusters":	20,' $W/info.json || bad "info: clusters = 20"
grep -q '"users":	400,' $W/info.json || bad "info: users = 400"
# the feedback tuple count in info equals the rows of feedback.tsv
rows=$(($(wc -l < $W/w/feedback.tsv) - 1))
grep -q "\"feedback_tuples\":	$rows," $W/info.json || bad "info feedback_tuples != feedback.tsv rows ($rows)"
expect_rc 2 $BIN journeys --ws $W/w --k 5
expect_rc 2 $BIN journeys --ws $W/w --positive likes:3
$BIN journeys --ws $W/w --k 1 --positive rating:5 >/dev/null || bad "journeys --k 1 --positive rating:5"
grep -q '"k":	1,' <($BIN info --ws $W/w --json) || bad "info k after --k 1"
$BIN journeys --ws $W/w >/dev/null || bad "journeys rerun"

# ---------------------------------------------------------------- explore and plan-merge on a fixture table
if [ -x $FIX ]; then
    $FIX --fixture $W/w || bad "fixture table"
    # fixture: entry j of (c1, c2) is the j-th cluster after c2 not in the context, align 9 - j
    out=$($BIN explore --ws $W/w --clusters 3,7) || bad "explore --clusters"
    echo "$out" | grep -Eq "^ +1 +8 .* 9\.000 +-1\.000$" || bad "explore --clusters 3,7: first novel cluster should be 8: $out"
    echo "$out" | grep -Eq "^ +3 +10 " || bad "explore --clusters 3,7: third should be 10"
    # 19,0: after 0 comes 1, 2, 3 (19 is not in the way); 0 * 20 + 0.. index 19*20+0 = 380 is not a multiple of 7
    $BIN explore --ws $W/w --clusters 19,0 --n 3 --json > $W/e.json || bad "explore --json"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); n=d["novel"]
assert [(c["id"], c["score"], c["fallback"]) for c in n] == [(1, 9, False), (2, 8, False), (3, 7, False)], n' $W/e.json \
        || bad "explore json: the 3 planned clusters 1, 2, 3 with scores 9, 8, 7, not fallbacks"
    # the default 5 clusters: the 3 planned ones, then 2 popular clusters outside the context, flagged, no score
    $BIN explore --ws $W/w --clusters 19,0 --json > $W/e5.json || bad "explore --json (n = 5)"
    python3 -c 'import json,sys; n=json.load(open(sys.argv[1]))["novel"]
assert len(n) == 5 and [c["id"] for c in n[:3]] == [1, 2, 3], n
assert all(c["fallback"] and c["score"] is None and c["id"] not in (19, 0, 1, 2, 3) for c in n[3:]), n' $W/e5.json \
        || bad "explore json: fallbacks after the planned clusters"
    # 0,7 has index 7: a fallback in the fixture
    $BIN explore --ws $W/w --clusters 0,7 | grep -q "fallback" || bad "explore shows the fallback flag"
    expect_rc 0 $BIN explore --ws $W/w --user 1
    $BIN explore --ws $W/w --user 1 --json | grep -q '"context"' || bad "explore --user --json"
    expect_rc 1 $BIN explore --ws $W/w --user 99999999       # unknown user
    expect_rc 1 $BIN explore --ws $W/w --clusters 3,20        # unknown cluster (M = 20)
    expect_rc 2 $BIN explore --ws $W/w --clusters 3,3         # repeated cluster
    expect_rc 2 $BIN explore --ws $W/w --clusters 3           # K = 2 needed
    expect_rc 2 $BIN explore --ws $W/w                        # neither --user nor --clusters
    expect_rc 2 $BIN explore --ws $W/w --user 1 --clusters 1,2
    expect_rc 2 $BIN explore --ws $W/w --user 1 --history 1,2
    # a stateless history of one unknown item: counted, no context, only flagged fallbacks
    $BIN explore --ws $W/w --history 999999999 --n 2 --json > $W/h.json || bad "explore --history"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
assert d["user"] is None and d["unknown_items"] == 1 and not d["context_complete"] and d["context"] == [], d
assert len(d["novel"]) == 2 and all(c["fallback"] and c["score"] is None for c in d["novel"]), d' $W/h.json \
        || bad "explore --history of an unknown item: $(cat $W/h.json)"
    # --positive overrides the workspace's rule (rating:4 recorded by journeys) with a note
    $BIN explore --ws $W/w --user 1 --positive rating:5 2>&1 >/dev/null | grep -q "differs from the workspace's rule rating:4" \
        || bad "explore --positive: no note"
    $BIN explore --ws $W/w --user 1 --positive rating:4 2>&1 >/dev/null | grep -q "differs" && bad "explore --positive same rule: a note"
    $BIN plan-merge --ws $W/w --out $W/merged.tbl $W/w/shard1.tbl $W/w/shard0.tbl >/dev/null || bad "plan-merge"
    cmp -s $W/merged.tbl $W/w/explore.tbl || bad "plan-merge output differs from the unsharded table"
    expect_rc 1 $BIN plan-merge --ws $W/w --out $W/m2.tbl $W/w/shard1.tbl   # a gap
    head -c 1000 $W/w/explore.tbl > $W/trunc.tbl
    expect_rc 1 $BIN explore --ws $W/w --clusters 3,7 --table $W/trunc.tbl
    $BIN explore --ws $W/w --clusters 3,7 --table $W/trunc.tbl 2>&1 | grep -q "truncated" || bad "truncated table message"
    expect_rc 2 $BIN explore --ws $W/w --clusters 3,7 --table $W/w/shard0.tbl  # a shard is not a table
    $BIN info --ws $W/w --json | grep -q '"format_compliance":	0.75' || bad "info: table compliance from the fixture (3 of 4)"
else
    echo "SKIP: explore/plan-merge part: $FIX absent (make test-bin)"
fi

# ---------------------------------------------------------------- MovieLens latest-small
ML=../shared/data/ml-latest-small
if [ -f $ML/ratings.csv ]; then
    $BIN ingest --ws $W/ml --movielens $ML >/dev/null 2>&1 || bad "ingest ml"
    $BIN split --ws $W/ml >/dev/null 2>&1 || bad "split ml"
    $BIN cluster --ws $W/ml >/dev/null 2>&1 || bad "cluster ml"
    $BIN journeys --ws $W/ml >/dev/null || bad "journeys ml"
    $BIN info --ws $W/ml --json > $W/ml.json || bad "info ml"
    grep -q '"users":	671,' $W/ml.json || bad "ml users 671"
    grep -q '"interactions":	100004,' $W/ml.json || bad "ml interactions 100004"
    grep -q '"unknown_items":	5,' $W/ml.json || bad "ml unknown_items 5"
    grep -Eq '"novel_transitions":	[1-9][0-9]*,' $W/ml.json || bad "ml novel transitions"
else
    echo "SKIP: MovieLens part: $ML absent"
fi

[ $fail -eq 0 ] && echo "ok: journeys, info, explore, plan-merge"
exit $fail
