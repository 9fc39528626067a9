#!/usr/bin/env bash
# lm_infer_vs_llamacpp.sh - serendip's batched inference beside llama.cpp on the same GGUF model.
#
# Run: bash bench/lm_infer_vs_llamacpp.sh [PROMPTS SAMPLES NEW]   (default 64 16 12)
#      BUILD=build-x and THREADS=N are honoured. Needs llama.cpp (fetched and built once by
#      scripts/conformance-llamacpp.sh --build-only: npm + cmake, a few minutes).
#
# bench_lm_infer writes its default ~0.8M-parameter model (random init, BPE vocabulary trained on
# synthetic text) as GGUF and measures itself; llamacpp_driver loads that file and runs the same
# workload (same prompts, same counts, top-k 40 / temperature 0.8 sampling, same thread count) in
# its best batched configuration: unified KV cache, each prompt prefilled once with all of its
# samples' sequence ids, 256 sequences per llama_decode. Medians of ROUNDS alternating runs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PROMPTS=${1:-64} SAMPLES=${2:-16} NEW=${3:-12}
PLEN=20 SINGLE=128
THREADS=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
# Both engines use OpenMP (ggml is built with it). On a machine shared with other jobs the default
# spinning wait policy makes every barrier wait for a descheduled thread (both engines collapsed
# to ~1k tokens/s under load); passive is the robust setting for both. Override to compare.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
make --no-print-directory BUILD="$BUILD" "$BUILD/bench/bench_lm_infer" >/dev/null
DRIVER=$(BUILD="$BUILD" bash scripts/conformance-llamacpp.sh --build-only)
MODEL=$BUILD/interop/bench_model.gguf
mkdir -p "$BUILD/interop"

# The machine may be shared: the two engines run alternately, ROUNDS times, one measurement
# each per round, and the table shows medians, so that a burst of load hits both alike.
ROUNDS=${ROUNDS:-5}
"$BUILD/bench/bench_lm_infer" --save-model "$MODEL" --prompts 1 --samples 1 --new 1 --single 2 --reps 1 >/dev/null
get() { echo "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ob="" os="" lb="" ls="" oc="" lc=""
for r in $(seq "$ROUNDS"); do
    ours=$("$BUILD/bench/bench_lm_infer" --model "$MODEL" --prompts "$PROMPTS" --samples "$SAMPLES" --new "$NEW" \
        --prompt-len $PLEN --single $SINGLE --reps 1)
    theirs=$("$DRIVER" bench "$MODEL" "$PROMPTS" "$SAMPLES" "$NEW" $PLEN "$THREADS" $SINGLE 1)
    ob="$ob $(get "$ours" bestofn_tokens_per_s)"; os="$os $(get "$ours" single_tokens_per_s)"
    oc="$oc $(get "$ours" bestofn_tokens_per_cpu_s)"; lc="$lc $(get "$theirs" llamacpp_bestofn_tokens_per_cpu_s)"
    lb="$lb $(get "$theirs" llamacpp_bestofn_tokens_per_s)"; ls="$ls $(get "$theirs" llamacpp_single_tokens_per_s)"
done
echo "per round, best-of-n tokens/s: serendip$ob; llama.cpp$lb"
echo "per round, best-of-n tokens per CPU-second: serendip$oc; llama.cpp$lc"
echo "per round, single-sequence tokens/s: serendip$os; llama.cpp$ls"
# peak memory of the llama.cpp run, measured apart with GNU time when available
llrss=NA
if [ -x /usr/bin/time ]; then
    llrss=$(/usr/bin/time -f "%M" "$DRIVER" bench "$MODEL" "$PROMPTS" "$SAMPLES" "$NEW" $PLEN "$THREADS" $SINGLE 1 2>&1 >/dev/null | tail -1)
    llrss=$(awk -v k="$llrss" 'BEGIN { printf "%.1f", k / 1024 }')
fi

echo "$ours" | grep -E '^(cpu|threads|params|config)'
echo "OMP_WAIT_POLICY=$OMP_WAIT_POLICY; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "llama.cpp threads: $THREADS; workload: $PROMPTS prompts x $SAMPLES samples x $NEW new tokens, prompts of $PLEN tokens"
echo
printf "%-34s %14s %14s %8s\n" "measure" "serendip" "llama.cpp" "ratio"
row() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%-34s %14.1f %14.1f %7.2fx\n", n, a, b, (b > 0 ? a / b : 0) }'; }
row "best-of-n tokens/s" "$(echo $ob | med)" "$(echo $lb | med)"
row "best-of-n tokens per CPU-second" "$(echo $oc | med)" "$(echo $lc | med)"
row "single-sequence decode tokens/s" "$(echo $os | med)" "$(echo $ls | med)"
printf "%-34s %14s %14s\n" "peak RSS MiB (whole process)" "$(get "$ours" peak_rss_mib)" "$llrss"
echo
echo "(ratio = serendip / llama.cpp; goals: best-of-n >= 3x, single-sequence >= 1x; medians of $ROUNDS alternating rounds)"
