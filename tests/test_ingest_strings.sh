#!/usr/bin/env bash
# test_ingest_strings.sh - logs with string ids through the whole pipeline: a RecBole folder
# (NAME.inter + NAME.item, detected by --movielens like the MovieLens layouts) and a CSV log with
# string user and item ids each go ingest -> split -> cluster -> journeys -> train (tiny) -> plan
# -> eval, and explore / serve show the raw ids back. The fixtures are written here: a small
# synthetic world, re-written by Python (reading dataset.bin as docs/formats-dataset.md specifies)
# with user ids "user-<letter><n>" and item ids "B<8 hex digits>", so the expected counts are the
# world's and every raw id in an answer can be checked against the files.
set -u
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/serendip
fail=0
bad() { echo "FAIL: $*"; fail=1; }
W=$(mktemp -d /tmp/sd_test_ingest_strXXXXXX)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$W"' EXIT

$BIN world --ws "$W/world" --users 300 --items 200 --topics 4 --subtopics 3 --seed 5 >/dev/null 2>&1 || bad "world"
mkdir -p "$W/rb"
python3 - "$W/world" "$W" <<'PY' || bad "fixture generator"
import struct, sys
ws, out = sys.argv[1], sys.argv[2]
b = open(ws + "/dataset.bin", "rb").read()
assert b[:6] == b"SDDATA" and struct.unpack_from("<I", b, 8)[0] == 1
n_users, n_items, n_events = struct.unpack_from("<qqq", b, 24)
sec = [struct.unpack_from("<QQ", b, 80 + 16 * s) for s in range(10)]
uids = struct.unpack_from("<%dq" % n_users, b, sec[2][0])
iids = struct.unpack_from("<%dq" % n_items, b, sec[3][0])
meta = b[sec[4][0]:sec[4][0] + n_items]
toff = struct.unpack_from("<%dQ" % n_items, b, sec[5][0])
goff = struct.unpack_from("<%dQ" % n_items, b, sec[6][0])
pool = b[sec[7][0]:sec[7][0] + sec[7][1]]
text = lambda o: pool[o:pool.index(b"\0", o)].decode()
uname = lambda u: "user-%c%d" % ("abcdefgh"[u % 8], uids[u])
iname = lambda i: "B%08X" % (iids[i] * 7919)
with open(out + "/rb/log.inter", "w") as f, open(out + "/log.csv", "w") as g:
    f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
    g.write("user,item,rating,when\n")
    for k in range(n_events):
        u, i, ts, r, w = struct.unpack_from("<iiqff", b, sec[0][0] + 24 * k)
        f.write("%s\t%s\t%g\t%d.25\n" % (uname(u), iname(i), r, ts))
        g.write('"%s",%s,%g,%d\n' % (uname(u), iname(i), r, ts))
with open(out + "/rb/log.item", "w") as f, open(out + "/items.csv", "w") as g:
    f.write("item_id:token\tmovie_title:token_seq\tclass:token_seq\n")
    g.write("item,title,tags\n")
    for i in range(n_items):
        if meta[i]:
            f.write("%s\t%s\t%s\n" % (iname(i), text(toff[i]), text(goff[i]).replace(" ", "_").replace("|", " ")))
            g.write('%s,"%s",%s\n' % (iname(i), text(toff[i]), text(goff[i])))
with open(out + "/expect", "w") as f:
    f.write("%d %d %d %s\n" % (n_users, n_items, n_events, uname(0)))
PY
read -r N_USERS N_ITEMS N_EVENTS USER0 <"$W/expect"
cut -f1 "$W/rb/log.item" | tail -n +2 | sort >"$W/item_ids"

# has FILE KEY VALUE: a JSON number or string value
has() { tr -d '\n\t ' <"$1" | grep -Eq "\"$2\":\"?$3([^0-9A-Za-z]|\$)" || bad "$1: expected \"$2\": $3 in: $(tr -d '\n\t' <"$1" | head -c 400)"; }

# run_pipeline NAME INGEST-FLAGS...: ingest into $W/NAME and run every later stage on it
run_pipeline() {
    local name=$1 ws=$W/$1
    shift
    $BIN ingest --ws "$ws" "$@" --json >"$W/$name.ingest" 2>&1 || { bad "$name: ingest: $(cat "$W/$name.ingest")"; return; }
    has "$W/$name.ingest" users "$N_USERS"
    has "$W/$name.ingest" items "$N_ITEMS"
    has "$W/$name.ingest" interactions "$N_EVENTS"
    has "$W/$name.ingest" user_ids string
    has "$W/$name.ingest" item_ids string
    $BIN split --ws "$ws" >/dev/null 2>&1 || bad "$name: split"
    $BIN cluster --ws "$ws" --top 3 --clusters 12 >/dev/null 2>&1 || bad "$name: cluster"
    $BIN journeys --ws "$ws" >/dev/null 2>&1 || bad "$name: journeys"
    $BIN train --ws "$ws" --vocab 300 --dim 32 --layers 1 --heads 2 --kv-heads 1 --hidden 64 --pretrain-steps 20 \
        --novelty-steps 20 --align-steps 20 --batch 8 --novelty-examples 200 --no-retrieval >"$W/$name.train" 2>&1 \
        || bad "$name: train: $(tail -3 "$W/$name.train")"
    $BIN plan --ws "$ws" --n 2 --top 4 >"$W/$name.plan" 2>&1 || bad "$name: plan: $(tail -3 "$W/$name.plan")"
    $BIN eval --ws "$ws" --serve 2 --bootstrap 20 >"$W/$name.eval" 2>&1 || bad "$name: eval: $(tail -3 "$W/$name.eval")"
    grep -q "^best-of-2 " "$W/$name.eval" || bad "$name: eval has no best-of-2 arm: $(head -5 "$W/$name.eval")"

    # explore shows the raw ids: the user's, and each listed item's (one of the catalogue's ids)
    $BIN explore --ws "$ws" --user "$USER0" --items 3 --json >"$W/$name.json" 2>&1 || bad "$name: explore --json: $(cat "$W/$name.json")"
    python3 - "$W/$name.json" "$USER0" "$W/item_ids" <<'PY' || bad "$name: explore JSON"
import json, sys
a = json.load(open(sys.argv[1]))
ids = set(open(sys.argv[3]).read().split())
assert a["user_raw_id"] == sys.argv[2], a["user_raw_id"]
assert isinstance(a["user"], int), a["user"]
items = [x for c in a["novel"] for x in c["items"]]
assert items, "no items listed"
for x in items:
    assert x["raw_id"] in ids, x
PY
    out=$($BIN explore --ws "$ws" --user "$USER0" --items 1 2>&1) || bad "$name: explore: $out"
    grep -q "^user $USER0, context" <<<"$out" || bad "$name: explore text does not name $USER0: $(head -2 <<<"$out")"
    grep -Eq -- "- item B[0-9A-F]{8} " <<<"$out" || bad "$name: explore text does not show raw item ids: $out"
    # a history of raw item ids; an unknown one is counted
    local i1 i2
    i1=$(sed -n 1p "$W/item_ids"); i2=$(sed -n 2p "$W/item_ids")
    $BIN explore --ws "$ws" --history "$i1,$i2,no-such-item" --items 0 --json >"$W/$name.h.json" 2>&1 || bad "$name: explore --history"
    has "$W/$name.h.json" unknown_items 1
    # an unknown raw user id is a runtime error that names it
    out=$($BIN explore --ws "$ws" --user "nobody-here" 2>&1)
    [ $? -eq 1 ] || bad "$name: unknown user should exit 1"
    grep -q 'unknown user "nobody-here"' <<<"$out" || bad "$name: unknown user message: $out"
}

run_pipeline rb --movielens "$W/rb"
grep -q '"layout":"recbole"' <(tr -d '\n\t ' <"$W/rb.ingest") || bad "RecBole folder not detected: $(cat "$W/rb.ingest")"
run_pipeline csv --ratings "$W/log.csv" --items "$W/items.csv" --user-col user --item-col item --ts-col when \
    --rating-col rating --title-col title --tags-col tags
# the same log in both formats gives the same events (RecBole's .25 s are floored)
c1=$($BIN info --ws "$W/rb" --json 2>/dev/null | grep -E '"(users|items|interactions)"')
c2=$($BIN info --ws "$W/csv" --json 2>/dev/null | grep -E '"(users|items|interactions)"')
[ -n "$c1" ] && [ "$c1" = "$c2" ] || bad "RecBole and CSV counts differ: $c1 / $c2"

# the server answers for a raw user id and shows it back
$BIN serve --ws "$W/rb" --port 0 >"$W/serve.out" 2>&1 &
server=$!
for _ in $(seq 50); do grep -q "^serving http" "$W/serve.out" && break; sleep 0.1; done
url=$(sed -n 's|^serving \(http://[^ ]*/\) .*|\1|p' "$W/serve.out")
if [ -n "$url" ]; then
    curl -s "${url}v1/explore?user=$USER0&k=2" >"$W/get.json" || bad "GET /v1/explore failed"
    python3 - "$W/get.json" "$USER0" "$W/item_ids" <<'PY' || bad "GET /v1/explore?user=$USER0: $(head -c 300 "$W/get.json")"
import json, sys
a = json.load(open(sys.argv[1]))
ids = set(open(sys.argv[3]).read().split())
assert a["user_raw_id"] == sys.argv[2], a
assert all(x["raw_id"] in ids for c in a["novel"] for x in c["items"]), a
PY
    code=$(curl -s -o /dev/null -w '%{http_code}' "${url}v1/explore?user=nobody")
    [ "$code" = 404 ] || bad "GET /v1/explore?user=nobody: status $code, expected 404"
    i1=$(sed -n 1p "$W/item_ids")
    curl -s -X POST -d "{\"items\": [\"$i1\", \"no-such-item\"], \"k\": 1}" "${url}v1/explore" >"$W/post.json"
    has "$W/post.json" unknown_items 1
    curl -s "${url}v1/users?limit=3" >"$W/users.json"
    python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); assert len(a["raw_ids"]) == len(a["users"]) > 0 and all(r.startswith("user-") for r in a["raw_ids"]), a' \
        "$W/users.json" || bad "/v1/users: $(cat "$W/users.json")"
else
    bad "serve did not start: $(cat "$W/serve.out")"
fi
kill $server 2>/dev/null
wait $server 2>/dev/null
server=

# a retrieval model fits one catalogue: the same log with other item raw ids (as many items, the
# same internal numbers) refuses the model trained on the first
$BIN serve --ws "$W/rb" --train-retrieval >/dev/null 2>&1 || bad "serve --train-retrieval"
$BIN explore --ws "$W/rb" --user "$USER0" --items 2 >/dev/null 2>&1 || bad "explore with the workspace's own retrieval.bin"
mkdir -p "$W/rb2"
sed 's/\tB/\tC/' "$W/rb/log.inter" >"$W/rb2/log.inter"
$BIN ingest --ws "$W/rb2" --recbole "$W/rb2/log.inter" >/dev/null 2>&1 && $BIN split --ws "$W/rb2" >/dev/null 2>&1 &&
    cp "$W/rb/taxonomy.bin" "$W/rb/explore.tbl" "$W/rb/journeys.bin" "$W/rb/retrieval.bin" "$W/rb2/" || bad "second RecBole workspace"
out=$($BIN explore --ws "$W/rb2" --user "$USER0" --items 2 2>&1)
[ $? -eq 1 ] && grep -qi "retrieval" <<<"$out" || bad "a retrieval model of another catalogue was not refused: $(head -3 <<<"$out")"

[ $fail -eq 0 ] && echo "ok: RecBole and string-id CSV logs through ingest ... eval, raw ids in explore and serve"
exit $fail
