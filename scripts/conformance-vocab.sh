#!/usr/bin/env bash
# conformance-vocab.sh - serendip's tokenizers against llama.cpp's own, for every family serendip reads.
#
# 1. llama.cpp's shipped test vectors: fetches llama.cpp's source (scripts/fetch-llama-cpp) and
#    checks that serendip tokenizes every input of models/ggml-vocab-<v>.gguf.inp exactly as
#    models/ggml-vocab-<v>.gguf.out expects (the vectors of llama.cpp's tests/test-tokenizer-0), and
#    that decoding gives the input back, for v = gpt-2, llama-bpe, qwen2, starcoder, refact,
#    command-r, mpt (BPE) and llama-spm, phi-3 (SentencePiece): the test_llama_cpp_vocab_conformance
#    case of tests/test_tokenizer.c, run with the vocabularies required.
# 2. More inputs, tokenized by llama.cpp itself: a small driver linked to the libllama built from
#    that same source (third_party/llama-build-infer/bin as scripts/conformance-llamacpp.sh builds it,
#    or LLAMA_LIB_DIR) writes the expected ids
#    of a larger input set (the shipped inputs, stress lines for digits / punctuation / whitespace /
#    scripts / emoji, and every paragraph of docs/) for each vocabulary above, plus one that
#    carries no tokenizer.ggml.pre (gpt-neox: llama.cpp's "default" pre-tokenizer, which ships
#    no vectors); serendip must produce the same ids.
# 3. A serendip-trained vocabulary inside a serendip model GGUF, read by llama.cpp (below).
# Exits non-zero on any mismatch or if a vocabulary or llama.cpp's library cannot be found.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
bash scripts/fetch-llama-cpp
make --no-print-directory BUILD="$BUILD" "$BUILD/tests/test_tokenizer" >/dev/null
M=third_party/llama.cpp/models
OUT="$BUILD/conformance-vocab"
mkdir -p "$OUT/live"

# ---- 1. the shipped vectors
SERENDIP_VOCAB_DIR=$M SERENDIP_VOCAB_REQUIRED=1 "$BUILD/tests/test_tokenizer" > "$OUT/shipped.log" 2>&1 \
    || { cat "$OUT/shipped.log"; echo "conformance-vocab: FAILED on llama.cpp's shipped vectors"; exit 1; }
grep '^vocab conformance:' "$OUT/shipped.log"
echo "conformance-vocab: llama.cpp's shipped test vectors ok for every family"

# ---- 2. the same families (and "default") on more inputs, expected ids from llama.cpp's tokenizer
LLAMA_LIB_DIR=${LLAMA_LIB_DIR:-${LLAMA_BUILD:-third_party/llama-build-infer}/bin}
if [ ! -f "$LLAMA_LIB_DIR/libllama.so" ]; then
    echo "conformance-vocab: building libllama (scripts/conformance-llamacpp.sh --build-only, a few minutes, once)"
    BUILD="$BUILD" bash scripts/conformance-llamacpp.sh --build-only >/dev/null
fi
if [ ! -f "$LLAMA_LIB_DIR/libllama.so" ]; then
    echo "conformance-vocab: $LLAMA_LIB_DIR/libllama.so absent (set LLAMA_LIB_DIR to a libllama build of third_party/llama.cpp)"
    exit 1
fi
cat > "$OUT/tokvec.c" <<'CEOF'
/* tokvec VOCAB.gguf INPUTS OUT: tokenizes each input of INPUTS (separated by
 * "\n__ggml_vocab_test__\n", the format of llama.cpp's .gguf.inp files) with llama.cpp's own
 * tokenizer (vocabulary only; no BOS/EOS, no special-token parsing: the settings of llama.cpp's
 * tests/test-tokenizer-0) and writes one line of ids per input to OUT (the .gguf.out format). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llama.h"
int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: tokvec VOCAB.gguf INPUTS OUT\n"); return 2; }
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *m = llama_model_load_from_file(argv[1], mp);
    if (!m) { fprintf(stderr, "tokvec: llama.cpp could not load %s\n", argv[1]); return 1; }
    const struct llama_vocab *v = llama_model_get_vocab(m);
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    FILE *o = fopen(argv[3], "w");
    if (!o) { perror(argv[3]); return 1; }
    const char *sep = "\n__ggml_vocab_test__\n";
    static llama_token ids[1 << 18];
    for (char *p = buf; p < buf + n;) {
        char *e = strstr(p, sep);
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int32_t k = llama_tokenize(v, p, (int32_t)len, ids, 1 << 18, false, false);
        if (k < 0) { fprintf(stderr, "tokvec: llama_tokenize failed (%d)\n", k); return 1; }
        for (int32_t i = 0; i < k; i++) fprintf(o, "%s%d", i ? " " : "", ids[i]);
        fprintf(o, "\n");
        p = e ? e + strlen(sep) : buf + n;
    }
    if (fclose(o)) { perror(argv[3]); return 1; }
    llama_model_free(m);
    return 0;
}
CEOF
cc -O1 -std=c11 -Ithird_party/llama.cpp/include -Ithird_party/llama.cpp/ggml/include "$OUT/tokvec.c" -o "$OUT/tokvec" \
    -L"$LLAMA_LIB_DIR" -lllama -Wl,-rpath,"$(cd "$LLAMA_LIB_DIR" && pwd)"
SEP=$'\n__ggml_vocab_test__\n'
{
    cat "$M/ggml-vocab-gpt-2.gguf.inp"
    for s in '1 12 123 1234 12345 1234567890 3.14159 1,000,000 0x7f' '$+<=>^~| a+b=c |x| ~y^z `q` @h #t %p &a *s' \
             "I'M YOU'RE we'LL they'Ve it'S don'T 'd" $'a\r\n\r\n  b\n\n\n c\t\td \r x\n' $'  \t\n  lead and trail  \n\t ' \
             'naïve café Ærøskøbing Straße İstanbul' '東京都 中文字 日本語のテキスト 한국어' 'العربية ٣٤٥ हिन्दी १२३ ไทย' \
             'Ⅻ ² ½ ⑤ 𝟘𝟙 ߉' '😀👍🏽 🇫🇷 ‒—… «» “q” ‘s’' $'e\u0301 a\u0308 \u00a0nbsp\u3000ideo\u2028ls\u0085nel' \
             'int main(void) { return a->b[i] >= 0 ? x : -1; } // done' '<|endoftext|> <s> </s> [INST] <|im_start|>'; do
        printf '%s%s' "$s" "$SEP"
    done
    awk -v sep="$SEP" 'BEGIN { RS = ""; ORS = sep } { print }' docs/*.md
} > "$OUT/live/inputs.inp"
n_inputs=$(grep -c '^__ggml_vocab_test__$' "$OUT/live/inputs.inp")
extra=""
while read -r fam file model pre; do
    "$OUT/tokvec" "$M/$file" "$OUT/live/inputs.inp" "$OUT/live/$file.out" 2> "$OUT/live/$file.log" \
        || { tail -3 "$OUT/live/$file.log"; echo "conformance-vocab: llama.cpp failed on $file"; exit 1; }
    extra+="$fam,$model,$pre,$M/$file,$OUT/live/inputs.inp,$OUT/live/$file.out;"
done <<'LIST'
gpt-2 ggml-vocab-gpt-2.gguf gpt2 gpt-2
llama-bpe ggml-vocab-llama-bpe.gguf gpt2 llama-bpe
qwen2 ggml-vocab-qwen2.gguf gpt2 qwen2
starcoder ggml-vocab-starcoder.gguf gpt2 starcoder
refact ggml-vocab-refact.gguf gpt2 refact
command-r ggml-vocab-command-r.gguf gpt2 command-r
mpt ggml-vocab-mpt.gguf gpt2 mpt
default ggml-vocab-gpt-neox.gguf gpt2 default
llama-spm ggml-vocab-llama-spm.gguf llama -
phi-3 ggml-vocab-phi-3.gguf llama -
LIST
SERENDIP_VOCAB_DIR=$M SERENDIP_VOCAB_REQUIRED=1 SERENDIP_VOCAB_EXTRA="$extra" "$BUILD/tests/test_tokenizer" \
    > "$OUT/live.log" 2>&1 || { grep -A3 -e MISMATCH -e ERROR "$OUT/live.log" | head -40 || true; tail -5 "$OUT/live.log"
                                echo "conformance-vocab: FAILED against llama.cpp's tokenizer"; exit 1; }
grep '^vocab conformance:' "$OUT/live.log" | tail -n 12
echo "conformance-vocab: $n_inputs inputs per vocabulary tokenized identically by llama.cpp ($LLAMA_LIB_DIR) for every family"

# ---- 3. A serendip-trained vocabulary inside a serendip model GGUF, read by llama.cpp itself.
# llama.cpp's prebuilt libllama comes from the npm package @node-llama-cpp/linux-x64 (same
# release as the source above). Two tiny drivers tokenize the same inputs (llama.cpp's GPT-2 test
# inputs plus prompts with serendip's control tokens), with and without special-token parsing; the
# ids must be identical. This also proves llama.cpp loads the model file serendip writes.
NLC_VERSION="${NODE_LLAMA_CPP_VERSION:-3.21.1}"
NLC=third_party/nlc-linux-x64
LIBDIR="$NLC/package/bins/linux-x64"
[ -f "$LLAMA_LIB_DIR/libllama.so" ] && LIBDIR="$LLAMA_LIB_DIR" # the library built from the source above
if ! ls "$LIBDIR"/libllama.*so >/dev/null 2>&1; then
    echo "conformance-vocab: npm pack @node-llama-cpp/linux-x64@$NLC_VERSION into $NLC/"
    mkdir -p "$NLC"
    (cd "$NLC" && npm pack --silent "@node-llama-cpp/linux-x64@$NLC_VERSION" >/dev/null && tar xzf node-llama-cpp-linux-x64-"$NLC_VERSION".tgz)
fi
LIBLLAMA=$(basename "$(ls "$LIBDIR"/libllama.*so | head -1)")
LIBGGML=$(basename "$(ls "$LIBDIR"/libggml.*so | head -1)")
OUT="$BUILD/conformance-vocab"
mkdir -p "$OUT"
cat > "$OUT/llama_tok.c" <<'CEOF'
/* Tokenizes each input of a file (inputs separated by "\n__ggml_vocab_test__\n") with llama.cpp.
 * The few llama.cpp functions are declared here instead of including llama.h, and the params
 * struct is declared larger than llama_model_params: it is only passed back unchanged, so the
 * call is correct whatever the exact layout of the prebuilt library's struct. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef struct { char b[1024]; } lp_params;
lp_params llama_model_default_params(void);
void *llama_model_load_from_file(const char *path, lp_params p);
const void *llama_model_get_vocab(const void *model);
int32_t llama_tokenize(const void *vocab, const char *text, int32_t len, int32_t *tokens, int32_t n_max,
                       bool add_special, bool parse_special);
void llama_backend_init(void);
void llama_model_free(void *m);
void ggml_backend_load_all_from_path(const char *dir);
int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: llama_tok MODEL INPUTS PARSE_SPECIAL LIBDIR\n"); return 2; }
    ggml_backend_load_all_from_path(argv[4]);
    llama_backend_init();
    void *m = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!m) { fprintf(stderr, "llama.cpp could not load %s\n", argv[1]); return 1; }
    const void *v = llama_model_get_vocab(m);
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 1;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *sep = "\n__ggml_vocab_test__\n";
    static int32_t ids[1 << 16];
    for (char *p = buf; p < buf + n;) {
        char *e = strstr(p, sep);
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int32_t k = llama_tokenize(v, p, (int32_t)len, ids, 1 << 16, false, atoi(argv[3]) != 0);
        if (k < 0) { fprintf(stderr, "llama_tokenize failed (%d)\n", k); return 1; }
        for (int32_t i = 0; i < k; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
        p = e ? e + strlen(sep) : buf + n;
    }
    llama_model_free(m);
    return 0;
}
CEOF
cat > "$OUT/sd_tok.c" <<'CEOF'
/* sd_tok make CORPUS MODEL TYPE: trains a 3000-token vocabulary on CORPUS and writes a tiny llama
 * model with it, matrices of ggml type TYPE (1 F16, 8 Q8_0); sd_tok encode MODEL INPUTS
 * PARSE_SPECIAL: tokenizes like llama_tok.c. */
#include <stdlib.h>
#include <string.h>
#include "serendip/gguf.h"
int main(int argc, char **argv) {
    sd_err err = {0};
    if (argc == 5 && !strcmp(argv[1], "make")) {
        char *text; size_t len;
        lm_tokenizer *t;
        if (sd_read_file(argv[2], &text, &len, &err) || tok_train(text, len, 3000, &t, &err)) goto fail;
        lm_config c = {.dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 128,
                       .vocab_size = tok_vocab_size(t), .seq_len = 128, .tied = 1, .norm_eps = 1e-5f, .rope_theta = 10000};
        lm_model m;
        if (lm_model_init(&m, &c, 1, &err) || lm_gguf_save_as(argv[3], &m, t, "vocab-conformance", (uint32_t)atoi(argv[4]), &err)) goto fail;
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "encode")) {
        lm_model m;
        lm_tokenizer *t;
        char *buf; size_t n;
        if (lm_gguf_load(argv[2], &m, &t, &err) || sd_read_file(argv[3], &buf, &n, &err)) goto fail;
        const char *sep = "\n__ggml_vocab_test__\n";
        static int32_t ids[1 << 16];
        for (char *p = buf; p < buf + n;) {
            char *e = strstr(p, sep);
            size_t len = e ? (size_t)(e - p) : strlen(p), k;
            if (tok_encode(t, p, len, ids, 1 << 16, &k, atoi(argv[4]))) return 1;
            for (size_t i = 0; i < k; i++) printf("%s%d", i ? " " : "", ids[i]);
            printf("\n");
            p = e ? e + strlen(sep) : buf + n;
        }
        return 0;
    }
    fprintf(stderr, "usage: sd_tok make CORPUS MODEL TYPE | encode MODEL INPUTS PARSE_SPECIAL\n");
    return 2;
fail:
    fprintf(stderr, "sd_tok: %s\n", err.msg);
    return 1;
}
CEOF
make --no-print-directory BUILD="$BUILD" "$BUILD/libserendip.a" >/dev/null
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude "$OUT/sd_tok.c" "$BUILD/libserendip.a" -fopenmp \
    $(make -s --no-print-directory BUILD="$BUILD" print-link-libs) -o "$OUT/sd_tok"
cc -O1 "$OUT/llama_tok.c" -o "$OUT/llama_tok" -L"$LIBDIR" -l:"$LIBLLAMA" -l:"$LIBGGML" -l:libggml-base.so \
    -Wl,-rpath,"$(cd "$LIBDIR" && pwd)"
# corpus: the repository's own docs and headers (deterministic for a commit)
cat docs/*.md include/serendip/*.h > "$OUT/corpus.txt"
"$OUT/sd_tok" make "$OUT/corpus.txt" "$OUT/model.gguf" 1       # F16
"$OUT/sd_tok" make "$OUT/corpus.txt" "$OUT/model-q8_0.gguf" 8  # Q8_0: llama.cpp must load it too
{
    cat third_party/llama.cpp/models/ggml-vocab-gpt-2.gguf.inp
    printf '<|ctx|>drama, war<|sep|>comedy<|ans|> love story<|eos|>\n__ggml_vocab_test__\n'
    printf '<|bos|><|score|>0.75<|pad|><|pad|> <|sep|>x<|bogus|>\n__ggml_vocab_test__\n'
    printf 'int32_t tok_encode(const lm_tokenizer *t, ...); // "it'"'"'s" -- 3.14\n'
} > "$OUT/inputs.txt"
status=0
for parse in 0 1; do
    "$OUT/sd_tok" encode "$OUT/model.gguf" "$OUT/inputs.txt" $parse > "$OUT/serendip.$parse.txt"
    "$OUT/llama_tok" "$OUT/model.gguf" "$OUT/inputs.txt" $parse "$LIBDIR" > "$OUT/llama.$parse.txt" 2> "$OUT/llama.$parse.log" \
        || { echo "conformance-vocab: llama.cpp failed, see $OUT/llama.$parse.log"; tail -5 "$OUT/llama.$parse.log"; exit 1; }
    n=$(wc -l < "$OUT/serendip.$parse.txt")
    if cmp -s "$OUT/serendip.$parse.txt" "$OUT/llama.$parse.txt"; then
        echo "conformance-vocab: serendip-trained vocab, parse_special=$parse: $n/$n inputs tokenized identically by llama.cpp"
    else
        echo "conformance-vocab: MISMATCH (parse_special=$parse) between serendip and llama.cpp:"
        diff "$OUT/serendip.$parse.txt" "$OUT/llama.$parse.txt" | head -20
        status=1
    fi
done
# the same vocabulary in a Q8_0 model file (loads in llama.cpp, same ids)
"$OUT/llama_tok" "$OUT/model-q8_0.gguf" "$OUT/inputs.txt" 1 "$LIBDIR" > "$OUT/llama.q8.txt" 2> "$OUT/llama.q8.log" \
    || { echo "conformance-vocab: llama.cpp could not use the Q8_0 file, see $OUT/llama.q8.log"; tail -5 "$OUT/llama.q8.log"; exit 1; }
if cmp -s "$OUT/serendip.1.txt" "$OUT/llama.q8.txt"; then
    echo "conformance-vocab: Q8_0 model file loads in llama.cpp with the same tokenization"
else
    echo "conformance-vocab: MISMATCH with the Q8_0 model file"; status=1
fi
[ $status -eq 0 ] && echo "conformance-vocab: all ok"
exit $status
