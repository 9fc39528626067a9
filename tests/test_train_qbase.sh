#!/usr/bin/env bash
# test_train_qbase.sh - `serendip train --base F.gguf` end to end from a quantized base (QLoRA):
# a random-weight model of SmolLM2-135M's structure, shrunk (9 heads of 32 over 3 KV heads, 2
# layers, width 288, FFN 512, tied head) and quantized to Q4_K by `lm init` - which stores rows of
# partial 256-blocks in Q5_0, as llama-quantize does with SmolLM2's width 576 - with llama.cpp's
# starcoder vocabulary (models/ggml-vocab-starcoder.gguf: 49,152 tokens, the family of SmolLM2's
# own tokenizer; without llama.cpp's source, which `make test` may run before `make conformance`
# fetches it, a vocabulary serendip trains, said so).
# Checks: the fine-tunes train through LoRA over the quantized
# base, the saved base keeps its encodings, the adapters are written, the fine-tuned models keep
# the base's shape and `plan` runs on them.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/serendip
VOCAB=${SERENDIP_VOCAB_GGUF:-third_party/llama.cpp/models/ggml-vocab-starcoder.gguf}
fail=0
bad() { echo "FAIL: $*"; fail=1; }
W=$(mktemp -d /tmp/sdqb.XXXXXX)
trap 'rm -rf "$W"' EXIT
if [ ! -f $VOCAB ] && [ -n "${SERENDIP_VOCAB_REQUIRED:-}" ]; then # make conformance: llama.cpp's is a must
    echo "FAIL: test_train_qbase: $VOCAB absent (bash scripts/fetch-llama-cpp)"; exit 1
fi
if [ ! -f $VOCAB ]; then
    # without llama.cpp's source (scripts/fetch-llama-cpp), the same path runs with a vocabulary
    # serendip trains itself, and says so
    echo "test_train_qbase: $VOCAB absent: using a vocabulary trained by serendip instead"
    for i in $(seq 200); do echo "Space opera $i, war drama, romantic comedy; the quick brown fox."; done >$W/text.txt
    VOCAB=$W/vocab.gguf
    $BIN lm pretrain --text $W/text.txt --out $VOCAB --vocab 400 --dim 32 --layers 1 --hidden 64 --seq-len 32 \
        --steps 1 >/dev/null 2>&1 || bad "lm pretrain (the stand-in vocabulary)"
fi
ws=$W/w
$BIN world --ws $ws --users 300 --items 200 --topics 3 --subtopics 3 --seed 3 >/dev/null 2>&1 || bad "world"
$BIN split --ws $ws >/dev/null 2>&1 || bad "split"
$BIN cluster --ws $ws --top 3 --clusters 6 >/dev/null 2>&1 || bad "cluster"
$BIN journeys --ws $ws >/dev/null 2>&1 || bad "journeys"
Q=$W/smol_q4k.gguf
$BIN lm init --vocab $VOCAB --out $Q --type Q4_K --layers 2 --dim 288 --heads 9 --kv-heads 3 --hidden 512 \
    --seq-len 256 --rope-theta 100000 >/dev/null || bad "lm init"
types=$($BIN lm info --model $Q | grep "tensor types")
echo "$types" | grep -q "Q4_K" && echo "$types" | grep -q "Q5_0" || bad "the base's types: $types"

start=$(date +%s)
out=$($BIN train --ws $ws --base $Q --lora 4 --pretrain-steps 0 --novelty-steps 3 --align-steps 3 --batch 4 \
    --novelty-examples 60 2>&1) || bad "train --base (QLoRA): $out"
echo "test_train_qbase: train --base (Q4_K, QLoRA rank 4) took $(($(date +%s) - start)) s"
for f in base.gguf novelty.gguf align.gguf novelty.lora.gguf align.lora.gguf; do
    [ -s $ws/models/$f ] || bad "models/$f missing"
done
$BIN lm info --model $ws/models/base.gguf | grep "tensor types" | grep -q "Q4_K" || bad "the saved base lost its encoding"
cfg() { $BIN lm info --model "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"])'; }
[ "$(cfg $Q)" = "$(cfg $ws/models/novelty.gguf)" ] || bad "novelty.gguf's shape differs from the base's"
$BIN plan --ws $ws --n 2 --top 2 >/dev/null 2>&1 || bad "plan on the QLoRA models"
[ $fail -eq 0 ] && echo "test_train_qbase: ok"
exit $fail
