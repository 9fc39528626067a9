#!/usr/bin/env bash
# tokenizer_vs_llamacpp.sh - serendip's tokenizers beside llama.cpp's on the same vocabularies.
#
# Run: bash bench/tokenizer_vs_llamacpp.sh [ROUNDS]   (default 5; BUILD=build-x honoured)
# Needs llama.cpp's source (scripts/fetch-llama-cpp: the vocabularies models/ggml-vocab-*.gguf) and
# a libllama built from it (third_party/llama-build-infer/bin, or LLAMA_LIB_DIR); says SKIP otherwise.
#
# The corpus is the repository's own text (docs/, README.md, headers, src/lm/), cut into paragraphs
# (~1,200 pieces of ~500 bytes, like prompts), each tokenized on its own: no BOS/EOS, no special
# parsing. Both drivers run single-threaded, alternately, ROUNDS times; the table shows the median
# throughput of each and whether the ids are identical. Exits non-zero if a run fails or any id
# differs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROUNDS=${1:-5}
M=third_party/llama.cpp/models
LLAMA_LIB_DIR=${LLAMA_LIB_DIR:-third_party/llama-build-infer/bin}
if [ ! -f "$M/ggml-vocab-gpt-2.gguf" ] || [ ! -f "$LLAMA_LIB_DIR/libllama.so" ]; then
    echo "SKIP: needs $M (scripts/fetch-llama-cpp) and $LLAMA_LIB_DIR/libllama.so"
    exit 0
fi
OUT="$BUILD/bench-tokenizer"
mkdir -p "$OUT"
make --no-print-directory BUILD="$BUILD" "$BUILD/libserendip.a" >/dev/null

# Both drivers: DRIVER VOCAB CORPUS IDS_OUT -> prints "<seconds> <bytes> <ids>"; pieces of CORPUS are
# separated by "\n\n"; IDS_OUT gets one line of ids per piece.
cat > "$OUT/common.h" <<'CEOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*n + 1);
    if (fread(b, 1, *n, f) != *n) { perror(path); exit(1); }
    fclose(f);
    b[*n] = 0;
    return b;
}
/* Tokenizes every piece with TOKENIZE(p, len, ids, cap) (returns the count), timing only that. */
#define RUN_PIECES(TOKENIZE)                                                                      \
    size_t n;                                                                                     \
    char *text = slurp(argv[2], &n);                                                              \
    FILE *o = fopen(argv[3], "w");                                                                \
    if (!o) { perror(argv[3]); return 1; }                                                        \
    static int32_t ids[1 << 20];                                                                  \
    double sec = 0;                                                                               \
    size_t total = 0;                                                                             \
    for (char *p = text; p < text + n;) {                                                         \
        char *e = strstr(p, "\n\n");                                                              \
        size_t len = e ? (size_t)(e - p) : strlen(p);                                             \
        double t0 = now();                                                                        \
        long k = TOKENIZE(p, len, ids, 1 << 20);                                                  \
        sec += now() - t0;                                                                        \
        if (k < 0) { fprintf(stderr, "tokenize failed\n"); return 1; }                            \
        for (long i = 0; i < k; i++) fprintf(o, "%s%d", i ? " " : "", ids[i]);                   \
        fprintf(o, "\n");                                                                         \
        total += (size_t)k;                                                                       \
        p = e ? e + 2 : text + n;                                                                 \
    }                                                                                             \
    fclose(o);                                                                                    \
    printf("%.6f %zu %zu\n", sec, n, total);
CEOF
cat > "$OUT/sd_tokbench.c" <<'CEOF'
#include "common.h"
#include "serendip/gguf.h"
static lm_tokenizer *tok;
static long sd_tokenize(const char *p, size_t len, int32_t *ids, size_t cap) {
    size_t k;
    return tok_encode(tok, p, len, ids, cap, &k, 0) ? -1 : (long)k;
}
int main(int argc, char **argv) {
    sd_err err = {0};
    gguf_file *g;
    if (argc != 4 || gguf_open(&g, argv[1], &err) || lm_gguf_load_tokenizer(g, &tok, &err)) {
        fprintf(stderr, "sd_tokbench: %s\n", err.msg);
        return 1;
    }
    gguf_close(g);
    RUN_PIECES(sd_tokenize)
    return 0;
}
CEOF
cat > "$OUT/llama_tokbench.c" <<'CEOF'
#include "common.h"
#include "llama.h"
static const struct llama_vocab *voc;
static long ll_tokenize(const char *p, size_t len, int32_t *ids, size_t cap) {
    return llama_tokenize(voc, p, (int32_t)len, ids, (int32_t)cap, false, false);
}
int main(int argc, char **argv) {
    if (argc != 4) return 2;
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *m = llama_model_load_from_file(argv[1], mp);
    if (!m) { fprintf(stderr, "llama_tokbench: cannot load %s\n", argv[1]); return 1; }
    voc = llama_model_get_vocab(m);
    RUN_PIECES(ll_tokenize)
    llama_model_free(m);
    return 0;
}
CEOF
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -I"$OUT" "$OUT/sd_tokbench.c" "$BUILD/libserendip.a" -fopenmp \
    $(make -s --no-print-directory BUILD="$BUILD" print-link-libs) -o "$OUT/sd_tokbench"
cc -O2 -std=c11 -D_GNU_SOURCE -I"$OUT" -Ithird_party/llama.cpp/include -Ithird_party/llama.cpp/ggml/include \
    "$OUT/llama_tokbench.c" -L"$LLAMA_LIB_DIR" -lllama -Wl,-rpath,"$(cd "$LLAMA_LIB_DIR" && pwd)" -o "$OUT/llama_tokbench"
cat docs/*.md README.md include/serendip/*.h src/lm/*.c > "$OUT/corpus.txt"
pieces=$(( $(grep -c '^$' "$OUT/corpus.txt") + 1 ))
echo "corpus: $(wc -c < "$OUT/corpus.txt") bytes in ~$pieces pieces; $ROUNDS alternating rounds, 1 thread each; load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %-28s %12s %12s %8s %s\n' family vocabulary "serendip MB/s" "llama.cpp MB/s" ids identical
status=0
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
while read -r fam file; do
    : > "$OUT/sd.t"; : > "$OUT/ll.t"
    for r in $(seq "$ROUNDS"); do
        "$OUT/sd_tokbench" "$M/$file" "$OUT/corpus.txt" "$OUT/sd.ids" > "$OUT/sd.r" 2> "$OUT/sd.log" || { cat "$OUT/sd.log"; status=1; continue 2; }
        "$OUT/llama_tokbench" "$M/$file" "$OUT/corpus.txt" "$OUT/ll.ids" > "$OUT/ll.r" 2> "$OUT/ll.log" || { tail -3 "$OUT/ll.log"; status=1; continue 2; }
        awk '{ printf "%.3f\n", $2 / $1 / 1e6 }' "$OUT/sd.r" >> "$OUT/sd.t"
        awk '{ printf "%.3f\n", $2 / $1 / 1e6 }' "$OUT/ll.r" >> "$OUT/ll.t"
    done
    same=yes
    cmp -s "$OUT/sd.ids" "$OUT/ll.ids" || { same=NO; status=1; }
    printf '%-10s %-28s %12s %12s %8s %s\n' "$fam" "$file" "$(median < "$OUT/sd.t")" "$(median < "$OUT/ll.t")" \
        "$(awk '{ print $3 }' "$OUT/sd.r")" "$same"
done <<'LIST'
gpt-2 ggml-vocab-gpt-2.gguf
llama-bpe ggml-vocab-llama-bpe.gguf
qwen2 ggml-vocab-qwen2.gguf
starcoder ggml-vocab-starcoder.gguf
default ggml-vocab-gpt-neox.gguf
llama-spm ggml-vocab-llama-spm.gguf
LIST
[ $status -eq 0 ] && echo "tokenizer bench: all ids identical" || echo "tokenizer bench: FAILED (a run failed or ids differ)"
exit $status
