#!/usr/bin/env bash
# serendip lm pretrain / lm sft end to end on a small generated corpus: the commands train (loss
# falls), write loadable GGUF files (full, LoRA-merged, LoRA adapter) and refuse bad input.
set -u
BIN=${BUILD:-build}/serendip
tmp=$(mktemp -d); [ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }
json_num() { sed -n "s/.*\"$2\":[[:space:]]*\([-0-9.e+]*\).*/\1/p" "$1" | head -1; }

# a corpus with learnable structure: counting sentences
for i in $(seq 1 400); do echo "item $((i % 37)) follows item $(((i + 36) % 37)) in the list of $((i % 7)) colours."; done > "$tmp/corpus.txt"
common=(--dim 32 --layers 2 --heads 4 --kv-heads 2 --hidden 64 --threads 1)
if ! $BIN lm pretrain --text "$tmp/corpus.txt" --out "$tmp/base.gguf" --vocab 320 --seq-len 32 --steps 80 --batch 8 \
        "${common[@]}" --json > "$tmp/pt.json" 2>"$tmp/pt.err"; then
    die "pretrain failed: $(cat "$tmp/pt.err")"
else
    first=$(json_num "$tmp/pt.json" first_loss); final=$(json_num "$tmp/pt.json" final_loss)
    awk -v a="$first" -v b="$final" 'BEGIN{exit !(b < 0.6 * a)}' || die "pretrain loss $first -> $final did not fall by 40%"
fi
[ -s "$tmp/base.gguf" ] || die "no base.gguf"

# a run split in two with --stop-at / --resume writes the same model, byte for byte
small=(--text "$tmp/corpus.txt" --vocab 300 --seq-len 16 --steps 12 --batch 4 --accum 2 "${common[@]}")
$BIN lm pretrain "${small[@]}" --out "$tmp/whole.gguf" >/dev/null 2>&1 || die "pretrain (whole) failed"
$BIN lm pretrain "${small[@]}" --out "$tmp/half.gguf" --stop-at 5 --checkpoint "$tmp/run.ckpt" >/dev/null 2>&1 ||
    die "pretrain (first half) failed"
cmp -s "$tmp/whole.gguf" "$tmp/half.gguf" && die "stopping at step 5 gave the finished model"
[ -s "$tmp/run.ckpt" ] || die "no checkpoint written by --stop-at"
$BIN lm pretrain "${small[@]}" --out "$tmp/resumed.gguf" --resume "$tmp/run.ckpt" >/dev/null 2>"$tmp/res.err" ||
    die "pretrain (resumed) failed"
grep -q "resumed from .* at step 5" "$tmp/res.err" || die "the resumed run did not start at step 5: $(cat "$tmp/res.err")"
cmp -s "$tmp/whole.gguf" "$tmp/resumed.gguf" || die "stop + resume differs from the uninterrupted run"

# prompt/answer pairs: the answer is the prompt's number plus one
for i in $(seq 1 200); do n=$((i % 30)); printf '{"prompt": "<|ctx|>item %d<|ans|>", "answer": "item %d"}\n' $n $((n + 1)); done > "$tmp/sft.jsonl"
if ! $BIN lm sft --model "$tmp/base.gguf" --data "$tmp/sft.jsonl" --out "$tmp/ft.gguf" --epochs 6 --lr 3e-3 --threads 1 \
        --json > "$tmp/sft.json" 2>"$tmp/sft.err"; then
    die "sft failed: $(cat "$tmp/sft.err")"
else
    first=$(json_num "$tmp/sft.json" first_loss); final=$(json_num "$tmp/sft.json" final_loss)
    awk -v a="$first" -v b="$final" 'BEGIN{exit !(b < 0.5 * a)}' || die "sft loss $first -> $final did not halve"
fi
$BIN lm sft --model "$tmp/base.gguf" --data "$tmp/sft.jsonl" --out "$tmp/merged.gguf" --lora 4 --merge --steps 20 \
    --threads 1 >/dev/null 2>"$tmp/l.err" || die "sft --lora --merge failed: $(cat "$tmp/l.err")"
$BIN lm sft --model "$tmp/base.gguf" --data "$tmp/sft.jsonl" --out "$tmp/adapter.gguf" --lora 4 --steps 5 \
    --threads 1 >/dev/null 2>"$tmp/a.err" || die "sft --lora failed: $(cat "$tmp/a.err")"
grep -q "adapter.lora.alpha" "$tmp/adapter.gguf" || die "adapter GGUF lacks adapter.lora.alpha"
grep -q "blk.1.ffn_down.weight.lora_b" "$tmp/adapter.gguf" || die "adapter GGUF lacks blk.1.ffn_down.weight.lora_b"
if $BIN lm info --help >/dev/null 2>&1; then
    for f in ft merged; do $BIN lm info --model "$tmp/$f.gguf" >/dev/null 2>&1 || die "lm info cannot read $f.gguf"; done
fi

# bad input: a malformed line is named; usage errors exit 2
printf '{"prompt": "a", "answer": "b"}\n{"prompt": 3}\n' > "$tmp/bad.jsonl"
$BIN lm sft --model "$tmp/base.gguf" --data "$tmp/bad.jsonl" --out "$tmp/x.gguf" 2>"$tmp/bad.err" >/dev/null
[ $? -eq 1 ] && grep -q "bad.jsonl:2:" "$tmp/bad.err" || die "malformed JSONL not reported with its line: $(cat "$tmp/bad.err")"
[ -e "$tmp/x.gguf" ] && die "an output was written despite the error"
$BIN lm sft --model "$tmp/base.gguf" --data "$tmp/sft.jsonl" --out "$tmp/x.gguf" --merge >/dev/null 2>&1
[ $? -eq 2 ] || die "--merge without --lora is not a usage error"
$BIN lm pretrain --text "$tmp/corpus.txt" --out "$tmp/x.gguf" --dim 30 --heads 4 >/dev/null 2>&1
[ $? -eq 2 ] || die "dim not divisible by heads is not a usage error"

[ $fail -eq 0 ] && echo "ok: lm pretrain / sft"
exit $fail
