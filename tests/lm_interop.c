/* lm_interop.c - the serendip side of the llama.cpp conformance check (scripts/conformance-llamacpp.sh).
 *
 *   lm_interop make OUT.gguf [tied 0|1 [arch llama|qwen2 [dim hidden [type]]]]
 *                                         trains a BPE tokenizer on built-in text, initialises a
 *                                         small model (weights N(0, 0.8/sqrt(width)) so that logits
 *                                         are far from uniform; width 64, FFN 160 unless given) and writes
 *                                         it with lm_gguf_save_as (type F32 unless given: F16,
 *                                         Q8_0, Q4_0, Q4_K, Q5_K, Q6_K - serendip's own encoders)
 *   lm_interop dump MODEL.gguf CASES.txt OUT.txt
 *                                         for each line of CASES.txt: serendip's tokens
 *                                         (tok_encode, specials not parsed), the reference logits
 *                                         of every position (lm_forward_reference) and the fast
 *                                         path's log-softmax of the next token (lm_next_logprobs);
 *                                         a quantized file stays quantized (lm_gguf_load_quant)
 *
 *   lm_interop dequant MODEL.gguf OUT.bin
 *                                         every tensor in file order decoded to float32 by
 *                                         serendip's fast decoder (lm_dequant_row), appended to
 *                                         OUT.bin; exits 1 if the reference decoder disagrees
 *
 *   lm_interop adapter BASE.gguf ADAPTER.gguf MERGED.gguf
 *                                         rank-4 LoRA adapters (alpha 8) with random A and B
 *                                         (B nonzero, so they change the logits) for BASE (kept
 *                                         quantized), written with lm_lora_save_gguf; MERGED is
 *                                         the decoded base + adapters (lm_lora_merge), F32, for
 *                                         `dump`: llama.cpp applies ADAPTER to BASE and compares
 *
 * OUT.txt, per case:   "case <hex of the text>" / "tokens <n> <ids...>" /
 *                      "logits <n> <V>" + n lines of V floats / "next <V floats>"
 * Not built by the Makefile (it is not a test_*.c): the conformance script compiles it against
 * build/libserendip.a. It is a separate program from the llama.cpp driver because ggml exports
 * gguf_* symbols that would clash with serendip's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/gguf.h"
#include "serendip/lm_infer.h"
#include "serendip/lm_quant.h"
#include "serendip/lm_train.h"
#include "serendip/tokenizer.h"

static const char *TRAIN_TEXT =
    "The quick brown fox jumps over the lazy dog. Space opera, war drama, romantic comedy!\n"
    "Film noir and crime thrillers; animation for the family; horror, musicals, westerns.\n"
    "Documentaries about robots, heists and 1990s sci-fi. It's what they'll watch, isn't it?\n"
    "Café au lait, naïve résumé, Zürich, São Paulo, 東京, emoji 🎬🍿 and    extra   spaces.\n";

static int make(const char *out, int tied, int arch, int dim, int hidden, int type) {
    sd_err err = {0};
    size_t n1 = strlen(TRAIN_TEXT), reps = 50;
    char *text = malloc(n1 * reps + 1);
    for (size_t i = 0; i < reps; i++) memcpy(text + i * n1, TRAIN_TEXT, n1);
    text[n1 * reps] = 0;
    lm_tokenizer *tok;
    if (tok_train(text, n1 * reps, 600, &tok, &err)) goto fail;
    free(text);
    lm_config c = {.dim = dim, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = hidden,
                   .vocab_size = tok_vocab_size(tok), .seq_len = 128, .tied = tied, .norm_eps = 1e-5f,
                   .rope_theta = arch == LM_ARCH_QWEN2 ? 1000000.0f : 10000.0f, .arch = arch};
    lm_model m;
    if (lm_model_init(&m, &c, 3, &err)) goto fail;
    /* std 0.02 -> 0.8 / sqrt(dim) (0.1 at width 64): each matrix then has a gain of ~0.8, so logits
     * are far from uniform without the network amplifying rounding noise layer after layer */
    float mult = 0.8f / sqrtf((float)dim) / 0.02f;
    for (size_t i = 0; i < m.n_params; i++) m.params[i] *= mult;
    for (int i = 0; i < c.n_layers * c.dim; i++) m.w.attn_norm[i] = m.w.ffn_norm[i] = 1.0f;
    for (int i = 0; i < c.dim; i++) m.w.out_norm[i] = 1.0f;
    if (lm_gguf_save_as(out, &m, tok, "serendip-interop", (uint32_t)type, &err)) goto fail;
    printf("lm_interop: wrote %s (%s, %s, vocab %d, %zu params, tied %d)\n", out, arch ? "qwen2" : "llama",
           lm_qtype_name((uint32_t)type), c.vocab_size, m.n_params, tied);
    lm_model_free(&m);
    tok_free(tok);
    return 0;
fail:
    fprintf(stderr, "lm_interop: %s\n", err.msg);
    return 1;
}

static int dump(const char *model, const char *cases, const char *out) {
    sd_err err = {0};
    lm_model m;
    lm_tokenizer *tok;
    if (lm_gguf_load_quant(model, &m, &tok, &err)) goto fail;
    FILE *in = fopen(cases, "r"), *f = fopen(out, "w");
    if (!in || !f) {
        fprintf(stderr, "lm_interop: cannot open %s or %s\n", cases, out);
        return 1;
    }
    lm_infer *inf = lm_infer_new(&m, 64, m.cfg.seq_len, &err);
    if (!inf) goto fail;
    int V = m.cfg.vocab_size;
    char line[4096];
    while (fgets(line, sizeof line, in)) {
        size_t len = strcspn(line, "\n");
        line[len] = 0;
        if (!len) continue;
        int32_t ids[4096];
        size_t n = 0;
        if (tok_encode(tok, line, len, ids, 4096, &n, 0)) goto fail;
        fprintf(f, "case ");
        for (size_t i = 0; i < len; i++) fprintf(f, "%02x", (unsigned char)line[i]);
        fprintf(f, "\ntokens %zu", n);
        for (size_t i = 0; i < n; i++) fprintf(f, " %d", ids[i]);
        fprintf(f, "\nlogits %zu %d\n", n, V);
        float *lg = malloc(sizeof(float) * n * V), *next = malloc(sizeof(float) * V);
        lm_forward_reference(&m, ids, (int)n, lg);
        for (size_t t = 0; t < n; t++) {
            for (int v = 0; v < V; v++) fprintf(f, "%.9g%c", lg[t * V + v], v + 1 < V ? ' ' : '\n');
        }
        const int32_t *pp[1] = {ids};
        int pl = (int)n;
        if (lm_next_logprobs(inf, pp, &pl, 1, next, &err)) goto fail;
        fprintf(f, "next");
        for (int v = 0; v < V; v++) fprintf(f, " %.9g", next[v]);
        fprintf(f, "\n");
        free(lg);
        free(next);
    }
    fclose(in);
    if (fclose(f)) {
        fprintf(stderr, "lm_interop: write error on %s\n", out);
        return 1;
    }
    lm_infer_free(inf);
    tok_free(tok);
    lm_model_free(&m);
    return 0;
fail:
    fprintf(stderr, "lm_interop: %s\n", err.msg);
    return 1;
}

static int dequant(const char *model, const char *out) {
    sd_err err = {0};
    gguf_file *g;
    if (gguf_open(&g, model, &err)) {
        fprintf(stderr, "lm_interop: %s\n", err.msg);
        return 1;
    }
    FILE *f = fopen(out, "wb");
    if (!f) return 1;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        size_t n = (size_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
        if (gguf_tensor_to_f32(g, t, a, &err)) {
            fprintf(stderr, "lm_interop: %s\n", err.msg);
            return 1;
        }
        lm_dequant_ref(t->type, t->data, b, (int64_t)n);
        if (memcmp(a, b, n * sizeof(float))) {
            fprintf(stderr, "lm_interop: %s: fast and reference decoders differ\n", t->name);
            return 1;
        }
        fwrite(a, sizeof(float), n, f);
        free(a), free(b);
    }
    fclose(f);
    gguf_close(g);
    return 0;
}

static int adapter(const char *base, const char *apath, const char *merged) {
    sd_err err = {0};
    lm_model m, f;
    lm_tokenizer *tok;
    lm_lora lo;
    if (lm_gguf_load_quant(base, &m, &tok, &err) || lm_lora_init(&lo, &m.cfg, 4, 8.0f, 5, &err)) goto fail;
    sd_rng r;
    sd_rng_seed(&r, 9);
    for (size_t i = 0; i < lo.n_params; i++) lo.params[i] = (float)(sd_rng_normal(&r) * 0.05);
    if (lm_lora_save_gguf(&lo, apath, &err)) goto fail;
    lm_model_to_f32(&f, &m);
    lm_lora_merge(&lo, &f);
    if (lm_gguf_save(merged, &f, tok, "serendip-merged", &err)) goto fail;
    printf("lm_interop: wrote %s and the merged %s\n", apath, merged);
    lm_lora_free(&lo);
    lm_model_free(&f);
    lm_model_free(&m);
    tok_free(tok);
    return 0;
fail:
    fprintf(stderr, "lm_interop: %s\n", err.msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "make")) {
        int arch = argc > 4 && !strcmp(argv[4], "qwen2") ? LM_ARCH_QWEN2 : LM_ARCH_LLAMA;
        int type = argc > 7 ? lm_qtype_parse(argv[7]) : LM_Q_F32;
        if (type < 0) {
            fprintf(stderr, "lm_interop: unknown type %s\n", argv[7]);
            return 2;
        }
        return make(argv[2], argc > 3 ? atoi(argv[3]) : 1, arch, argc > 5 ? atoi(argv[5]) : 64,
                    argc > 6 ? atoi(argv[6]) : 160, type);
    }
    if (argc == 4 && !strcmp(argv[1], "dequant")) return dequant(argv[2], argv[3]);
    if (argc == 5 && !strcmp(argv[1], "adapter")) return adapter(argv[2], argv[3], argv[4]);
    if (argc == 5 && !strcmp(argv[1], "dump")) return dump(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: lm_interop make OUT.gguf [tied [arch [dim hidden [type]]]] | dump MODEL.gguf CASES.txt OUT.txt\n");
    return 2;
}
