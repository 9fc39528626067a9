#!/usr/bin/env bash
# test_report.sh - `serendip eval` and `serendip report` end to end on a small synthetic world:
# exit codes (0 / 1 missing stage / 2 usage), the printed tables (arms, by context support),
# metrics.json contents (every baseline and oracle with its kind, users counted, intervals around
# each value, fallback shares, like_frac, by_support buckets that add up to the evaluated users),
# a self-contained report.html that names every arm and embeds its plots and the by-support
# section, that --json prints the same JSON as the file, and the retrieval
# figures ("retrieval" key, printed line, report table) only once retrieval.bin exists.
set -euo pipefail
BIN=${BUILD:-build}/serendip
ws=$(mktemp -d /tmp/sdreport.XXXXXX)
trap 'rm -rf "$ws"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# usage errors exit 2, a missing stage exits 1
set +e
"$BIN" eval >/dev/null 2>&1; [ $? -eq 2 ] || fail "eval without --ws should exit 2"
"$BIN" eval --ws "$ws" --serve 0 >/dev/null 2>&1; [ $? -eq 2 ] || fail "--serve 0 should exit 2"
"$BIN" eval --ws "$ws" >/dev/null 2>&1; [ $? -eq 1 ] || fail "eval on an empty workspace should exit 1"
set -e

"$BIN" world --ws "$ws" --users 600 --items 600 --seed 3 >/dev/null 2>&1
"$BIN" split --ws "$ws" >/dev/null 2>&1
"$BIN" cluster --ws "$ws" --clusters 24 --top 4 >/dev/null 2>&1
"$BIN" journeys --ws "$ws" >/dev/null 2>&1

out=$("$BIN" eval --ws "$ws" --serve 2 --bootstrap 50)
out_eval=$out
ARMS=("random" "most popular" "transition counts" "backoff transition" "feedback rate" "oracle (user)" "oracle (context)")
for arm in "${ARMS[@]}"; do
    grep -q "^$arm " <<<"$out" || fail "eval table lacks '$arm'"
done
grep -q "^by context support" <<<"$out" || fail "eval does not print the by-support table"
grep -Eq "^arm +0 \([0-9]+\) +1-9 \([0-9]+\) +10\+ \([0-9]+\)$" <<<"$out" || fail "by-support header missing: $out"
[ -s "$ws/metrics.json" ] || fail "metrics.json not written"

# metrics.json: 7 arms with kinds, users add up, every interval holds its value, like_prob present
# (world), fallback shares, like_frac (random 0, user oracle 1), by_support adds up
python3 - "$ws/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["serve"] == 2 and m["bootstrap"] == 50, m
u = m["users"]
assert u["evaluated"] + u["skipped_short_context"] + u["skipped_no_test_event"] == u["total"], u
assert u["evaluated"] > 50, u
kinds = [a["kind"] for a in m["arms"]]
assert kinds == ["random", "popular", "transition", "backoff", "feedback", "oracle", "context_oracle"], kinds
for a in m["arms"]:
    assert a["n"] == 0 and 0 <= a["fallback_share"] <= 1, a
    assert a["metrics"]["novelty"]["value"] == 1.0, a  # the per-user filter
fr = {a["kind"]: a["like_frac"]["value"] for a in m["arms"]}
assert abs(fr["random"]) < 1e-9 and abs(fr["oracle"] - 1) < 1e-9, fr
bs = m["by_support"]
assert [b["name"] for b in bs] == ["0", "1-9", "10+"], bs
assert sum(b["users"] for b in bs) == u["evaluated"], [b["users"] for b in bs]
assert bs[0]["lo"] == 0 and bs[0]["hi"] == 0 and bs[1]["lo"] == 1 and bs[1]["hi"] == 9 and bs[2]["hi"] is None
for b in bs:
    assert [a["kind"] for a in b["arms"]] == kinds
    for a in b["arms"]:
        assert a["users"] == b["users"], (b["name"], a)
        v = a["metrics"]["like_prob"]
        if v["value"] is not None and v["lo"] is not None:
            assert v["lo"] - 1e-9 <= v["value"] <= v["hi"] + 1e-9, (b["name"], a["name"], v)
keys = [x["key"] for x in m["metrics"]]
assert "like_prob" in keys and "novelty" in keys, keys
for a in m["arms"]:
    for k, v in a["metrics"].items():
        if v["value"] is None: continue
        assert v["lo"] - 1e-9 <= v["value"] <= v["hi"] + 1e-9, (a["name"], k, v)
    assert a["served"] == 2 * u["evaluated"], a["served"]
assert len(m["cluster_sizes"]) == m["clusters"] == 24
for a in m["arms"]:  # the world's simulated like-probability is a probability
    assert 0 < a["metrics"]["like_prob"]["value"] < 1, a["metrics"]["like_prob"]
PY

# --json prints the file's JSON
"$BIN" eval --ws "$ws" --serve 2 --bootstrap 50 --json >"$ws/stdout.json"
cmp -s "$ws/stdout.json" "$ws/metrics.json" || fail "--json output differs from metrics.json"

out=$("$BIN" report --ws "$ws")
grep -q "wrote $ws/report.html" <<<"$out" || fail "report did not print its path"
html="$ws/report.html"
for arm in "${ARMS[@]}"; do
    grep -qF "$arm" "$html" || fail "report.html lacks '$arm'"
done
n_svg=$(grep -o "<svg " "$html" | wc -l)
# no tables: the two scatters, by support and the cluster sizes, no plots against n (and it says so)
[ "$n_svg" -eq 4 ] || fail "report.html has $n_svg plots, expected 4"
grep -q "<h2>By context support</h2>" "$html" || fail "report.html has no by-support section"
grep -q "<th>support 10+<br>" "$html" || fail "report.html has no by-support table"
grep -q "No best-of-n table" "$html" || fail "report.html does not say that no table was found"
! grep -qiE '"-?(nan|inf)|[ ,"]-?(nan|inf)[, "]' "$html" || fail "report.html has non-finite coordinates"
! grep -qi "<script\|https\?://[a-z]" <(sed 's#http://www.w3.org/2000/svg##g' "$html") || fail "report.html is not self-contained"
grep -q "Findings" "$html" || fail "report.html has no findings"
# the items level: absent without retrieval.bin (a line says so, no key, no table) ...
grep -q "no $ws/retrieval.bin" <<<"$out_eval" || fail "eval does not say retrieval.bin is absent"
python3 -c "import json,sys; assert 'retrieval' not in json.load(open(sys.argv[1]))" "$ws/metrics.json" || fail "metrics.json has \"retrieval\" without retrieval.bin"
! grep -q "Items within the chosen cluster" "$html" || fail "report.html has the items table without retrieval.bin"
# ... present once it is trained: the same figures as `serve --eval-retrieval`, printed, in the file and the page
"$BIN" serve --ws "$ws" --train-retrieval >/dev/null 2>&1
"$BIN" serve --ws "$ws" --eval-retrieval --json >"$ws/rt.json"
out=$("$BIN" eval --ws "$ws" --serve 2 --bootstrap 50)
grep -Eq "^  sequential skip-gram +0\.[0-9]{4} +0\.[0-9]{4}$" <<<"$out" || fail "eval does not print the retrieval figures: $out"
grep -Eq "^  popularity within cluster +0\.[0-9]{4} +0\.[0-9]{4}$" <<<"$out" || fail "eval does not print the popularity figures"
"$BIN" report --ws "$ws" >/dev/null
python3 - "$ws/metrics.json" "$ws/rt.json" "$html" <<'PY'
import json, sys
m, rt, html = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), open(sys.argv[3]).read()
r = m["retrieval"]
assert r["at"] == 10 and r["cases"] > 100, r
# the eval's positive rule is the default one, so the figures equal serve --eval-retrieval's exactly
assert r == rt, (r, rt)
for who in ("model", "popularity"):
    assert 0 < r[who]["ndcg"] <= r[who]["hr"] <= 1, r
assert "Items within the chosen cluster" in html
for who in ("model", "popularity"):
    for k in ("hr", "ndcg"):
        assert "<td>%.4f</td>" % r[who][k] in html, (who, k)
PY
echo "test_report.sh: ok ($(python3 -c "import json;print(json.load(open('$ws/metrics.json'))['users']['evaluated'])") users evaluated)"
