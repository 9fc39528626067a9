#!/usr/bin/env bash
# lm_real_size.sh - serendip and llama.cpp at a real model size: a random-weight model with the
# shapes of SmolLM2-135M (30 layers, width 576, 9 heads, 3 KV heads, FFN 1536, tied head; `serendip
# lm init --preset smollm2-135m`) and the vocabulary of llama.cpp's models/ggml-vocab-starcoder.gguf
# (49,152 tokens, the starcoder family of SmolLM2's own tokenizer; VOCAB=... to use another),
# written in F16 and in Q4_K (rows of 576 then stored Q5_0, as llama-quantize
# does for SmolLM2). Weights are random, so only speed and memory mean anything.
#
# Run: bash bench/lm_real_size.sh [PROMPTS SAMPLES NEW]   (default 8 16 12; THREADS default 2)
# Measures, per file, one round each (the machine is shared: run it when it is quiet):
#   - best-of-n generation tokens/s: serendip (bench_lm_infer, the matrices kept in their file
#     encoding: --quant 1) and llama.cpp (llamacpp_driver bench: unified KV cache, shared prompts);
#   - scoring: serendip's lm_trie_logprobs (every allowed string after every prompt, the
#     alignment model's workload; tokens/s = prompts x (prompt + trie nodes - 1) / s) beside
#     llama.cpp's prompt processing (llama-bench -p 64 -n 0: batched forward of prompt tokens);
#   - the planner's workload: constrained best-of-n prompts/s, from which the demo's plan time is
#     projected (9,900 contexts x n = 16): sampling = 9,900 / prompts-per-s (each prompt one
#     context's 16 samples), and with the alignment scoring x 16.6 / 9.8 (the demo's measured
#     total / sampling seconds at n = 16 with the default model, docs/planning.md);
#   - QLoRA fine-tuning tokens/s (bench_qlora: rank 16 adapters over the encoded base, batch 4 x
#     64 tokens; llama.cpp has no counterpart run here) and its peak RSS;
#   - peak RSS of each process (GNU time).
# Exits non-zero if any run fails, or if serendip's batched generation falls below a quarter of
# llama.cpp's on the same file (measured 0.63-1.06x under load: a regression guard, not a goal).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PROMPTS=${1:-8} SAMPLES=${2:-16} NEW=${3:-12}
PLEN=20 SINGLE=32
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
VOCAB=${VOCAB:-third_party/llama.cpp/models/ggml-vocab-starcoder.gguf}
make --no-print-directory BUILD="$BUILD" "$BUILD/serendip" "$BUILD/bench/bench_lm_infer" "$BUILD/bench/bench_qlora" >/dev/null
DRIVER=$(BUILD="$BUILD" bash scripts/conformance-llamacpp.sh --build-only)
LLAMA_BIN=$(cd "${LLAMA_BUILD:-third_party/llama-build-infer}/bin" && pwd)
OUT=$BUILD/interop
mkdir -p "$OUT"
get() { echo "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
rss() { awk '/Maximum resident/ { printf "%.0f", $NF / 1024 }' "$1"; }
fail=0

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); threads $THREADS; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "workload: $PROMPTS prompts x $SAMPLES samples x $NEW new tokens (prompts of $PLEN tokens); scoring: 100 strings of 3-8 tokens per prompt"
printf "\n%-6s %-40s %12s %12s\n" "file" "measure" "serendip" "llama.cpp"
for type in F16 Q4_K; do
    M=$OUT/smollm2_135m_$type.gguf
    [ -f "$M" ] || "$BUILD/serendip" lm init --vocab $VOCAB --out "$M" --preset smollm2-135m --type $type >/dev/null
    ours=$(/usr/bin/time -v -o "$OUT/time_ours_$type.txt" nice "$BUILD/bench/bench_lm_infer" --model "$M" --quant 1 \
        --prompts "$PROMPTS" --samples "$SAMPLES" --new "$NEW" --prompt-len $PLEN --single $SINGLE --reps 1 --rows 256)
    theirs=$(/usr/bin/time -v -o "$OUT/time_theirs_$type.txt" nice "$DRIVER" bench "$M" "$PROMPTS" "$SAMPLES" "$NEW" $PLEN \
        "$THREADS" $SINGLE 1)
    pp_ts=$(nice "$LLAMA_BIN/llama-bench" -m "$M" -p 64 -n 0 -r 1 -t "$THREADS" -o json 2>/dev/null \
        | python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)[0]["avg_ts"])')
    nodes=$(echo "$ours" | awk '$1 == "constrained_strings" { print $4 }')
    tl=$(get "$ours" trie_logprobs_seconds)
    score_ts=$(awk -v s="$tl" -v n="$nodes" -v l=$PLEN -v p="$PROMPTS" 'BEGIN { printf "%.1f", p * (l + n - 1) / s }')
    cp=$(awk -v s="$(get "$ours" constrained_seconds)" -v p="$PROMPTS" 'BEGIN { printf "%.3f", p / s }')
    row() { printf "%-6s %-40s %12s %12s\n" "$type" "$1" "$2" "$3"; }
    row "best-of-n generation tokens/s" "$(get "$ours" bestofn_tokens_per_s)" "$(get "$theirs" llamacpp_bestofn_tokens_per_s)"
    ob=$(get "$ours" bestofn_tokens_per_s) lb=$(get "$theirs" llamacpp_bestofn_tokens_per_s)
    if ! awk -v a="$ob" -v b="$lb" 'BEGIN { exit !(a > 0 && b > 0 && a >= 0.25 * b) }'; then
        echo "FAIL: $type best-of-n: serendip $ob tokens/s, llama.cpp $lb (guard: >= 0.25x)"
        fail=1
    fi
    row "single-sequence decode tokens/s" "$(get "$ours" single_tokens_per_s)" "$(get "$theirs" llamacpp_single_tokens_per_s)"
    row "scoring tokens/s (trie / prompt proc.)" "$score_ts" "$pp_ts"
    row "constrained best-of-n prompts/s" "$cp" "-"
    row "peak RSS MiB" "$(rss "$OUT/time_ours_$type.txt")" "$(rss "$OUT/time_theirs_$type.txt")"
    row "file MiB" "$(($(stat -c %s "$M") / 1048576))" "same file"
    ql=$(nice "$BUILD/bench/bench_qlora" "$M" 4 64 2 16)
    row "QLoRA training tokens/s (rank 16)" "$(get "$ql" qlora_tokens_per_s)" "-"
    row "QLoRA peak RSS MiB" "$(get "$ql" qlora_peak_rss_mib)" "-"
    row "projected demo plan sampling, h" "$(awk -v p="$cp" 'BEGIN { printf "%.1f", 9900 / p / 3600 }')" "-"
    row "projected demo plan with scoring, h" "$(awk -v p="$cp" 'BEGIN { printf "%.1f", 9900 / p / 3600 * 16.6 / 9.8 }')" "-"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $fail
