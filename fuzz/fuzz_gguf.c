/* fuzz_gguf.c - libFuzzer target for the GGUF reader and the model/tokenizer loaders on top of it.
 * fuzz-sources: src/base/base.c src/lm/gguf.c src/lm/tokenizer.c src/lm/tokenizer_gguf.c src/lm/model.c src/lm/quant.c
 * fuzz-libs: -lpcre2-8 -lopenblas
 * fuzz-max-len: 131072   (the seed models of fuzz/seeds.c are up to 65 KB)
 *
 * Build and run by hand (scripts/fuzz does this for every target):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Iinclude \
 *     fuzz/fuzz_gguf.c src/base/base.c src/lm/gguf.c src/lm/tokenizer.c src/lm/tokenizer_gguf.c src/lm/model.c \
 *     -lpcre2-8 -lm -o fuzz_gguf
 *   ./fuzz_gguf -max_total_time=30
 * Every input must be either refused with SD_ERR_FORMAT or parsed into tables whose every view
 * stays inside the buffer; the target touches every byte a successful parse hands out. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/gguf.h"
#include "serendip/lm_quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy so ASan catches any read past the end */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    gguf_file *g;
    sd_err err = {0};
    if (gguf_parse(&g, buf, size, "fuzz.gguf", &err) != SD_OK) {
        if (err.code != SD_ERR_FORMAT) abort();
        free(buf);
        return 0;
    }
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const char *key = gguf_kv_key(g, i);
        int64_t iv;
        double fv;
        char *s;
        if (gguf_get_int(g, key, &iv, &err) == SD_OK) sink ^= (uint8_t)iv;
        if (gguf_get_float(g, key, &fv, &err) == SD_OK) sink ^= (uint8_t)(fv != fv);
        if (gguf_get_str(g, key, &s, &err) == SD_OK) free(s);
        for (uint64_t j = 0; j < gguf_kv_arr_n(g, i); j++) {
            const char *v;
            uint64_t l;
            if (gguf_get_arr_str(g, i, j, &v, &l) == SD_OK)
                for (uint64_t k = 0; k < l; k++) sink ^= (uint8_t)v[k];
        }
        int32_t *a;
        uint64_t n;
        if (gguf_get_arr_i32(g, key, &a, &n, &err) == SD_OK) free(a);
    }
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        for (size_t k = 0; k < t->nbytes; k++) sink ^= ((const uint8_t *)t->data)[k];
        size_t n = (size_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        if (n <= (1u << 20)) {
            float *f = malloc((n ? n : 1) * sizeof *f);
            gguf_tensor_to_f32(g, t, f, &err);
            free(f);
        }
    }
    lm_tokenizer *tok;
    if (lm_gguf_load_tokenizer(g, &tok, &err) == SD_OK) {
        /* a loaded vocabulary must encode any bytes; a BPE one must decode them back, unless a
         * byte has no token (dropped, as llama.cpp does); SentencePiece adds a leading space and
         * need not round-trip invalid UTF-8, so only decoding is checked there */
        size_t n = size < 256 ? size : 256, k, back_len;
        int32_t ids[4 * 256 + 8]; /* SPM: a space is 3 byte tokens when the vocabulary lacks "▁" */
        char back[4 * 4 * 256];
        int exact = !strcmp(tok_model_name(tok), "gpt2");
        for (size_t i = 0; i < n && exact; i++)
            exact = tok_encode(tok, (const char *)data + i, 1, ids, 256, &k, 0) == SD_OK && k > 0;
        for (int parse = 0; parse <= 1; parse++) {
            if (tok_encode(tok, (const char *)data, n, ids, sizeof ids / sizeof *ids, &k, parse) != SD_OK) abort();
            if (tok_decode(tok, ids, k, back, sizeof back, &back_len) != SD_OK) abort();
            if (exact && (back_len != n || memcmp(back, data, n) != 0)) abort();
        }
        tok_free(tok);
    }
    lm_config c;
    if (lm_gguf_read_config(g, &c, &err) == SD_OK) { /* allocation bounded: shapes are checked first */
        lm_model m;
        if (lm_gguf_load_from(g, &m, NULL, &err) == SD_OK) lm_model_free(&m);
        if (lm_gguf_load_quant_from(g, &m, NULL, &err) == SD_OK) { /* matrices kept encoded */
            float row[64];
            if (m.cfg.dim <= 64) { /* decode one row of every matrix: offsets and sizes are in bounds */
                for (int i = 0; i < LM_MAT_PER_LAYER * m.cfg.n_layers + 2 && m.qm; i++)
                    if (m.qm[i].cols <= 64) lm_qmat_get_row(&m.qm[i], m.qm[i].rows - 1, row);
            }
            lm_model_free(&m);
        }
    }
    (void)sink;
    gguf_close(g);
    free(buf);
    return 0;
}
