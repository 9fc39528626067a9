#!/usr/bin/env bash
# serendip lm generate / lm score end to end on a small GGUF model written by tests/lm_interop.c
# (compiled here against $BUILD/libserendip.a): constrained samples are allowed strings, a seed
# reproduces its samples, scores do not depend on how lines are grouped, errors exit 1 / 2.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/serendip
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

SAN=""
[ -n "${SERENDIP_SANITIZED:-}" ] && SAN="-fsanitize=address,undefined"
cc -O1 -std=c11 -D_GNU_SOURCE -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-pthread -fopenmp $SAN \
    tests/lm_interop.c "$BUILD/libserendip.a" $(make -s --no-print-directory BUILD="$BUILD" print-link-libs) -o "$T/lm_interop" \
    || { echo "FAIL: cannot compile tests/lm_interop.c"; exit 1; }
"$T/lm_interop" make "$T/m.gguf" 1 >/dev/null || { echo "FAIL: cannot write the model"; exit 1; }

printf 'drama\nspace opera\nwar\nromantic comedy\nfilm noir\n' >"$T/allowed.txt"
"$BIN" lm generate --model "$T/m.gguf" --prompt "The quick<|sep|>" --n 20 --allowed "$T/allowed.txt" --seed 5 --json \
    >"$T/c1.json" || bad "constrained generate exited $?"
# the JSON checks need python3: install it (make test does) or fail, never skip them
command -v python3 >/dev/null || SERENDIP_EXTRA_PKGS="python3=python3" bash scripts/install-deps >&2
PY=$(command -v python3) || { echo "FAIL: python3 is needed for the JSON checks and could not be installed"; exit 1; }
$PY - "$T/c1.json" "$T/allowed.txt" <<'EOF' || fail=1
import json, sys
out = json.load(open(sys.argv[1]))
allowed = [l.rstrip("\n") for l in open(sys.argv[2]) if l.strip()]
s = out[0]["samples"]
assert len(s) == 20, "expected 20 samples"
for x in s:
    assert x["text"] == allowed[x["choice"]], x
    assert x["logprob"] <= x["logprob_renorm"] + 1e-5 and x["logprob_renorm"] <= 0, x
EOF
"$BIN" lm generate --model "$T/m.gguf" --prompt "The quick<|sep|>" --n 20 --allowed "$T/allowed.txt" --seed 5 --json \
    >"$T/c2.json"
cmp -s "$T/c1.json" "$T/c2.json" || bad "same seed gave different constrained samples"

printf '{"prompt": "The quick"}\n{"prompt": "Space<|sep|>war"}\n' >"$T/prompts.jsonl"
"$BIN" lm generate --model "$T/m.gguf" --prompts "$T/prompts.jsonl" --n 4 --max-new 6 --top-k 20 --seed 9 --json \
    >"$T/g1.json" || bad "generate exited $?"
$PY -c "
import json, sys
o = json.load(open('$T/g1.json'))
assert len(o) == 2 and all(len(p['samples']) == 4 for p in o)
assert all(x['tokens'] <= 6 and x['logprob'] < 0 for p in o for x in p['samples'])
" || bad "generate --json output"

# the same continuation scored in a group of lines sharing the prompt and alone
printf '{"prompt":"The quick","continuation":" brown fox"}\n{"prompt":"The quick","continuation":" red"}\n' >"$T/s1.jsonl"
printf '{"prompt":"The quick","continuation":" red"}\n' >"$T/s2.jsonl"
a=$("$BIN" lm score --model "$T/m.gguf" --data "$T/s1.jsonl" 2>/dev/null | awk 'NR == 2 { print $2 }')
b=$("$BIN" lm score --model "$T/m.gguf" --data "$T/s2.jsonl" 2>/dev/null | awk 'NR == 1 { print $2 }')
[ -n "$a" ] && awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; exit !(d < 1e-4 && d > -1e-4 && a < 0) }' \
    || bad "score of the same line grouped ($a) and alone ($b) differ"

"$BIN" lm generate --prompt x >/dev/null 2>&1; [ $? -eq 2 ] || bad "generate without --model should exit 2"
"$BIN" lm generate --model "$T/none.gguf" --prompt x >/dev/null 2>&1; [ $? -eq 1 ] || bad "missing model file should exit 1"
echo '{"prompt": 3}' >"$T/bad.jsonl"
"$BIN" lm score --model "$T/m.gguf" --data "$T/bad.jsonl" >/dev/null 2>&1; [ $? -eq 1 ] || bad "bad JSONL should exit 1"
printf 'war\nwar\n' >"$T/dup.txt"
"$BIN" lm generate --model "$T/m.gguf" --prompt x --allowed "$T/dup.txt" >/dev/null 2>&1
[ $? -eq 1 ] || bad "duplicate allowed strings should exit 1"

# flags that size memory are refused before any work (exit 2), not by an out-of-memory abort:
# a bound on --max-new / --rows / --n before the model is read, and the memory the KV cache, the
# logits and the samples need once it is known (1M rows x 1M positions: petabytes)
"$BIN" lm generate --model "$T/none.gguf" --prompt x --max-new 2000000 >/dev/null 2>"$T/err"
[ $? -eq 2 ] && grep -q -- "--max-new" "$T/err" || bad "--max-new 2000000 should be a usage error before the model is read"
"$BIN" lm generate --model "$T/m.gguf" --prompt x --rows 1000000 --max-new 1000000 >/dev/null 2>"$T/err"
[ $? -eq 2 ] && grep -q "GiB" "$T/err" || bad "--rows/--max-new beyond memory should exit 2: $(cat "$T/err")"
"$BIN" lm score --model "$T/m.gguf" --data "$T/s1.jsonl" --rows 2000000 >/dev/null 2>&1
[ $? -eq 2 ] || bad "score --rows 2000000 should exit 2"

[ $fail -eq 0 ] && echo "ok: lm generate / lm score"
exit $fail
