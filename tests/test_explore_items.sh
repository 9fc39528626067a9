#!/usr/bin/env bash
# test_explore_items.sh - `serendip explore --items K` end to end on a small synthetic world with an
# explore table that needs no language model (tests/test_table --fixture, else bench/serve_table.c)
# and a retrieval model from `serendip serve --train-retrieval`. Checked independently of the
# code under test by reading dataset.bin and taxonomy.bin in Python (docs/formats-*.md): every
# listed item belongs to its listed cluster, no listed item was seen by the user, k is respected
# (and a large k lists exactly the cluster's unseen items), scores are non-increasing, no served
# cluster holds an item the user interacted with (novel for the user); without retrieval.bin the
# items are the cluster's most popular (scores = event counts, checked) and the text says so;
# exit codes 0 / 1 (unknown user) / 2 (bad flag).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/serendip
FIX=$BUILD/tests/test_table
fail=0
bad() { echo "FAIL: $*"; fail=1; }
expect_rc() { local want=$1; shift; "$@" >/dev/null 2>&1; local got=$?; [ $got -eq $want ] || bad "'$*' exited $got, expected $want"; }
W=$(mktemp -d /tmp/sdexit.XXXXXX)
trap 'rm -rf "$W"' EXIT
ws=$W/w

$BIN world --ws $ws --users 400 --items 240 --topics 4 --subtopics 3 --seed 5 >/dev/null 2>&1 || bad "world"
$BIN split --ws $ws >/dev/null 2>&1 || bad "split"
$BIN cluster --ws $ws --top 3 --clusters 12 >/dev/null 2>&1 || bad "cluster"
$BIN journeys --ws $ws >/dev/null 2>&1 || bad "journeys"
if [ -x $FIX ]; then
    $FIX --fixture $ws || bad "fixture table"
elif [ -f $BUILD/libserendip.a ]; then
    cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -fopenmp bench/serve_table.c $BUILD/libserendip.a \
        $(make -s --no-print-directory BUILD=$BUILD print-link-libs) -o $W/serve_table && $W/serve_table $ws $ws/explore.tbl 3 1 >/dev/null \
        || bad "serve_table"
else
    echo "SKIP: test_explore_items.sh: neither $FIX nor $BUILD/libserendip.a (make test-bin)"; exit 0
fi
# a user with a full context and at least 3 planned (not fallback) novel clusters
U=$(python3 - "$ws" "$BIN" <<'PY'
import json, struct, subprocess, sys
ws, BIN = sys.argv[1], sys.argv[2]
b = open(ws + "/dataset.bin", "rb").read()
nu, ni, ne = struct.unpack_from("<qqq", b, 24)
sec = [struct.unpack_from("<QQ", b, 80 + 16 * i) for i in range(10)]
user_ids = struct.unpack_from("<%dq" % nu, b, sec[2][0])
item_cluster = struct.unpack_from("<%di" % ni, open(ws + "/taxonomy.bin", "rb").read(), 64)
seen_cl = [set() for _ in range(nu)]
for e in range(ne):
    u, it = struct.unpack_from("<ii", b, sec[0][0] + 24 * e)
    seen_cl[u].add(item_cluster[it])
for u in range(min(nu, 60)):
    d = json.loads(subprocess.run([BIN, "explore", "--ws", ws, "--user", str(user_ids[u]), "--items", "0", "--json"],
                                  capture_output=True, text=True).stdout)
    if d["context_complete"] and sum(not c["fallback"] for c in d["novel"]) >= 3:
        print(user_ids[u]); break
PY
)
[ -n "$U" ] || bad "no user with a full context"

# without retrieval.bin: the clusters, items by popularity within the cluster, a one-line note, exit 0
out=$($BIN explore --ws $ws --user $U); rc=$?
[ $rc -eq 0 ] || bad "explore without retrieval.bin exited $rc"
echo "$out" | grep -q "serendip train" || bad "explore without retrieval.bin: no note naming serendip train: $out"
echo "$out" | grep -q "novel clusters" || bad "explore without retrieval.bin: clusters missing"
$BIN explore --ws $ws --user $U --json >$W/p5.json || bad "explore --json without retrieval.bin"
grep -q '"ranker":"popularity"' $W/p5.json || bad "explore --json without retrieval.bin: ranker is not popularity"

$BIN serve --ws $ws --train-retrieval >/dev/null 2>&1 || bad "serve --train-retrieval"
[ -s $ws/retrieval.bin ] || bad "retrieval.bin not written"
$BIN explore --ws $ws --user $U >$W/h.txt || bad "explore --user"
[ "$(grep -c -- '- item ' $W/h.txt)" -ge 3 ] || bad "human output lists no items: $(cat $W/h.txt)"
grep -q "serendip train" $W/h.txt && bad "note printed although retrieval.bin exists"
$BIN explore --ws $ws --user $U --json >$W/u5.json || bad "explore --user --json"
$BIN explore --ws $ws --user $U --json --items 2 >$W/u2.json || bad "explore --items 2"
$BIN explore --ws $ws --user $U --json --items 200 >$W/u200.json || bad "explore --items 200"
$BIN explore --ws $ws --user $U --json --items 0 >$W/u0.json || bad "explore --items 0"
ctx=$(python3 -c "import json,sys;print(','.join(str(c['id']) for c in json.load(open(sys.argv[1]))['context']))" $W/u5.json)
$BIN explore --ws $ws --clusters $ctx --json --items 4 >$W/c4.json || bad "explore --clusters --items 4"
$BIN explore --ws $ws --clusters $ctx --json --items 200 >$W/c200.json || bad "explore --clusters --items 200"

python3 - "$ws" "$U" "$W" <<'PY' || fail=1
import json, struct, sys
ws, U, W = sys.argv[1], int(sys.argv[2]), sys.argv[3]
b = open(ws + "/dataset.bin", "rb").read()
nu, ni, ne = struct.unpack_from("<qqq", b, 24)
sec = [struct.unpack_from("<QQ", b, 80 + 16 * i) for i in range(10)]
user_ids = struct.unpack_from("<%dq" % nu, b, sec[2][0])
item_ids = struct.unpack_from("<%dq" % ni, b, sec[3][0])
seen = set()
for e in range(ne):
    u, it = struct.unpack_from("<ii", b, sec[0][0] + 24 * e)
    if user_ids[u] == U: seen.add(item_ids[it])
t = open(ws + "/taxonomy.bin", "rb").read()
assert t[:8] == b"SDTAXO\x1a\x01"
tni = struct.unpack_from("<q", t, 24)[0]
assert tni == ni
cluster_of = {item_ids[i]: c for i, c in enumerate(struct.unpack_from("<%di" % ni, t, 64))}
members = {}
for raw, c in cluster_of.items(): members.setdefault(c, set()).add(raw)
# events per item (the popularity ranker's score)
pop = {}
for e in range(ne):
    u, it = struct.unpack_from("<ii", b, sec[0][0] + 24 * e)
    pop[item_ids[it]] = pop.get(item_ids[it], 0) + 1
errors = []
def check(name, k, user_seen):
    d = json.load(open("%s/%s.json" % (W, name)))
    novel = d["novel"]
    if not novel: errors.append(name + ": no novel cluster"); return d
    for c in novel:
        if members[c["id"]] & user_seen: errors.append("%s: cluster %d holds items the user interacted with" % (name, c["id"]))
        items = c.get("items")
        if items is None: errors.append("%s: cluster %d has no items array" % (name, c["id"])); continue
        if k == 0:
            if items: errors.append(name + ": items listed with --items 0")
            continue
        raws = [x["id"] for x in items]
        unseen = members[c["id"]] - user_seen
        if len(raws) != min(k, len(unseen)): errors.append("%s: cluster %d lists %d items, expected min(%d, %d)" % (name, c["id"], len(raws), k, len(unseen)))
        if len(set(raws)) != len(raws): errors.append("%s: duplicate items" % name)
        for x in items:
            if cluster_of.get(x["id"]) != c["id"]: errors.append("%s: item %d is in cluster %s, listed under %d" % (name, x["id"], cluster_of.get(x["id"]), c["id"]))
            if x["id"] in user_seen: errors.append("%s: item %d was seen by the user" % (name, x["id"]))
            if not x["title"]: errors.append("%s: item %d has no title" % (name, x["id"]))
            if d["ranker"] == "popularity" and x["score"] != pop.get(x["id"], 0): errors.append("%s: item %d scored %s, has %d events" % (name, x["id"], x["score"], pop.get(x["id"], 0)))
        sc = [x["score"] for x in items]
        if any(a < b for a, b in zip(sc, sc[1:])): errors.append("%s: scores not non-increasing %s" % (name, sc))
        if k >= 200 and set(raws) != unseen: errors.append("%s: --items 200 should list every unseen member of %d" % (name, c["id"]))
    return d
p5 = check("p5", 5, seen)
if p5["ranker"] != "popularity": errors.append("p5: ranker " + p5["ranker"])
u5, u2 = check("u5", 5, seen), check("u2", 2, seen)
check("u200", 200, seen); check("u0", 0, seen)
c4 = check("c4", 4, set()); check("c200", 200, set())
# k only truncates: the top 2 are the first 2 of the top 5
for a, b2 in zip(u5["novel"], u2["novel"]):
    if [x["id"] for x in a["items"][:2]] != [x["id"] for x in b2["items"]]: errors.append("top 2 is not a prefix of top 5")
# the user's history matters: some cluster of a user who has seen items there differs from the no-history ranking
if [x["id"] for c in u5["novel"] for x in c["items"][:4]] == [x["id"] for c in c4["novel"] for x in c["items"]]:
    errors.append("the user's ranking equals the no-history ranking")
if errors:
    print("FAIL: " + "\nFAIL: ".join(errors)); sys.exit(1)
print("checked %d novel clusters of user %d (%d seen items)" % (len(u5["novel"]), U, len(seen)))
PY

expect_rc 0 $BIN explore --ws $ws --user $U --items 1
expect_rc 1 $BIN explore --ws $ws --user 99999999 --items 3   # unknown user
expect_rc 2 $BIN explore --ws $ws --user $U --items -1        # bad flag values
expect_rc 2 $BIN explore --ws $ws --user $U --items 201
expect_rc 2 $BIN explore --ws $ws --user $U --items x
expect_rc 2 $BIN explore --ws $ws --user $U --itemz 3
# a retrieval.bin of another dataset is refused (runtime error)
$BIN world --ws $W/o --users 50 --items 100 --topics 2 --subtopics 2 --seed 9 >/dev/null 2>&1 && \
    $BIN serve --ws $W/o --train-retrieval >/dev/null 2>&1 && cp $W/o/retrieval.bin $ws/retrieval.bin || bad "other model"
expect_rc 1 $BIN explore --ws $ws --user $U

[ $fail -eq 0 ] && echo "ok: explore --items"
exit $fail
