#!/usr/bin/env bash
# test_alternatives.sh - the rejected alternatives end to end on a tiny synthetic world (issue 14):
# `train --pairwise` trains and judges the pairwise model (train.json "pairwise" with held-out
# agreement of both models in [0, 1]); `serendip rl` (both rewards) writes its model and records
# (step 0 first, the asked steps last, finite reward and KL >= 0, shares in [0, 1]) into rl.json
# and refuses bad flags; `plan --generator rl` and `plan --selector pairwise` write their tables
# under plans/ without replacing explore.tbl; eval finds them as arms of kinds rl and llm_pairwise
# (the kind comes from the table header; the guarded RL arm is named apart) and the report shows
# the RL and pairwise sections.
set -euo pipefail
BIN=${BUILD:-build}/serendip
ws=$(mktemp -d /tmp/sdalt.XXXXXX)
trap 'rm -rf "$ws"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$BIN" world --ws "$ws" --users 400 --items 240 --topics 4 --subtopics 3 >/dev/null 2>&1
"$BIN" split --ws "$ws" >/dev/null 2>&1
"$BIN" cluster --ws "$ws" --top 3 --clusters 12 >/dev/null 2>&1
"$BIN" journeys --ws "$ws" >/dev/null 2>&1
"$BIN" train --ws "$ws" --pairwise --vocab 400 --dim 48 --layers 2 --heads 2 --kv-heads 1 --hidden 96 --lr 5e-3 \
    --sft-lr 5e-3 --pretrain-steps 100 --novelty-steps 150 --align-steps 60 --batch 16 --novelty-examples 400 \
    --no-retrieval >/dev/null 2>&1 || fail "train --pairwise"
[ -s "$ws/models/align_pairwise.gguf" ] || fail "train --pairwise wrote no pairwise model"

set +e
"$BIN" rl --ws "$ws" --group 1 >/dev/null 2>&1; [ $? -eq 2 ] || fail "rl --group 1 should exit 2"
"$BIN" rl --ws "$ws" --reward bogus >/dev/null 2>&1; [ $? -eq 2 ] || fail "rl --reward bogus should exit 2"
"$BIN" plan --ws "$ws" --generator rl_guarded >/dev/null 2>&1; [ $? -eq 1 ] || fail "plan --generator rl_guarded before rl should exit 1"
"$BIN" plan --ws "$ws" --selector pairwise --no-align >/dev/null 2>&1; [ $? -eq 2 ] || fail "--selector pairwise --no-align should exit 2"
set -e
"$BIN" rl --ws "$ws" --steps 12 --every 5 --contexts 4 --group 3 --eval-contexts 8 --eval-samples 2 >/dev/null 2>&1 || fail "rl raw"
"$BIN" rl --ws "$ws" --reward guarded --steps 6 --every 5 --contexts 4 --group 3 --eval-contexts 8 --eval-samples 2 \
    --beta 0 >/dev/null 2>&1 || fail "rl guarded"
[ -s "$ws/models/rl.gguf" ] && [ -s "$ws/models/rl_guarded.gguf" ] || fail "rl models not written"
python3 - "$ws/models/rl.json" "$ws/models/train.json" <<'PY'
import json, math, sys
rl = json.load(open(sys.argv[1]))["runs"]
for variant, steps in (("raw", 12), ("guarded", 6)):
    r = rl[variant]
    assert r["reward"] == variant and r["steps"] == steps, r
    st = [x["step"] for x in r["records"]]
    assert st == sorted(st) and st[0] == 0 and st[-1] == steps, (variant, st)
    assert st == [0, 5, 10, 12][:len(st)] if variant == "raw" else st == [0, 5, 6], (variant, st)
    for x in r["records"][1:]:
        assert math.isfinite(x["reward"]) and x["kl"] >= 0, x
        for k in ("compliance", "distinct", "novelty"):
            assert 0 <= x[k] <= 1, (k, x)
        assert 0 <= x["eval_reward"] <= 9, x
        if variant == "guarded":
            assert x["reward"] >= 0
pw = json.load(open(sys.argv[2]))["pairwise"]
assert pw["examples"] > 0 and pw["seconds"] > 0 and pw["pointwise_seconds"] > 0, pw
for k in ("pointwise_accuracy", "pairwise_accuracy"):
    assert pw[k] is None or 0 <= pw[k] <= 1, (k, pw)
PY

"$BIN" plan --ws "$ws" --n-sweep 1,4 --top 4 >/dev/null 2>&1 || fail "plan"
"$BIN" plan --ws "$ws" --generator rl --n 1 --top 4 >/dev/null 2>&1 || fail "plan --generator rl"
"$BIN" plan --ws "$ws" --generator rl_guarded --n 1 --top 4 >/dev/null 2>&1 || fail "plan --generator rl_guarded"
"$BIN" plan --ws "$ws" --selector pairwise --n-sweep 1,4 --top 4 >/dev/null 2>&1 || fail "plan --selector pairwise"
for t in plans/rl_n1.tbl plans/rl_guarded_n1.tbl plans/explore_pairwise_n1.tbl plans/explore_pairwise_n4.tbl; do
    [ -s "$ws/$t" ] || fail "$t not written"
done
cmp -s "$ws/explore.tbl" "$ws/plans/explore_n4.tbl" || fail "a pairwise or rl run replaced explore.tbl"
out=$("$BIN" eval --ws "$ws" --serve 1 --bootstrap 20 2>/dev/null) || fail "eval"
python3 - "$ws/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
kinds = {a["kind"]: a for a in m["arms"]}
assert "rl" in kinds and "llm_pairwise" in kinds, sorted(kinds)
names = sorted(a["name"] for a in m["arms"] if a["kind"] == "rl")
assert names == ["RL (best-of-1)", "RL guarded (best-of-1)"], names
assert sorted(a["name"] for a in m["arms"] if a["kind"] == "llm_pairwise") == ["best-of-1 pairwise", "best-of-4 pairwise"]
PY
"$BIN" report --ws "$ws" >/dev/null 2>&1 || fail "report"
grep -q "RL against the alignment reward" "$ws/report.html" || fail "report lacks the RL section"
grep -q "Pointwise against pairwise" "$ws/report.html" || fail "report lacks the pairwise section"
echo "alternatives: ok"
