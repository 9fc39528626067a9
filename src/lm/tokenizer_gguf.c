/* tokenizer_gguf.c - reads a GGUF file's tokenizer (the tokenizer.ggml.* keys) into an
 * lm_tokenizer: BPE ("gpt2" model, with the pre-tokenizer named by tokenizer.ggml.pre) or
 * SentencePiece ("llama" model). The keys and their defaults are llama.cpp's (src/llama-vocab.cpp,
 * llama_vocab::impl::load); a model or pre-tokenizer serendip cannot reproduce exactly is refused
 * with a message naming it, rather than tokenized differently from llama.cpp. */
#include <stdlib.h>
#include <string.h>

#include "serendip/gguf.h"
#include "serendip/tokenizer.h"

/* The string array at key (n strings, each a fresh NUL-terminated copy; free with free_strs). */
static int read_strs(const gguf_file *g, const char *key, char ***out, uint64_t *n, sd_err *err) {
    int64_t i = gguf_find_kv(g, key);
    if (i < 0) return sd_fail(err, SD_ERR_FORMAT, "%s: key %s missing", gguf_name(g), key);
    if (gguf_kv_type(g, i) != GGUF_TYPE_ARRAY || gguf_kv_arr_type(g, i) != GGUF_TYPE_STRING)
        return sd_fail(err, SD_ERR_FORMAT, "%s: %s must be a string array", gguf_name(g), key);
    *n = gguf_kv_arr_n(g, i);
    if (*n > INT32_MAX) return sd_fail(err, SD_ERR_FORMAT, "%s: %s has too many entries", gguf_name(g), key);
    char **v = sd_calloc((size_t)*n + 1, sizeof *v);
    for (uint64_t j = 0; j < *n; j++) {
        const char *s;
        uint64_t l;
        gguf_get_arr_str(g, i, j, &s, &l);
        v[j] = sd_strndup(s, (size_t)l);
    }
    *out = v;
    return SD_OK;
}

static void free_strs(char **v, uint64_t n) {
    if (!v) return;
    for (uint64_t j = 0; j < n; j++) free(v[j]);
    free(v);
}

/* tokenizer.ggml.token_type if present (NULL otherwise); must have n entries. */
static int read_types(const gguf_file *g, uint64_t n, int32_t **types, sd_err *err) {
    *types = NULL;
    if (gguf_find_kv(g, "tokenizer.ggml.token_type") < 0) return SD_OK;
    uint64_t nt;
    int rc = gguf_get_arr_i32(g, "tokenizer.ggml.token_type", types, &nt, err);
    if (rc) return rc;
    if (nt != n) {
        free(*types);
        *types = NULL;
        return sd_fail(err, SD_ERR_FORMAT, "%s: %llu token types for %llu tokens", gguf_name(g), (unsigned long long)nt,
                       (unsigned long long)n);
    }
    return SD_OK;
}

/* Token texts llama.cpp's loader treats as control tokens whatever type the file gives them
 * (llama_vocab::impl::load, "auto-detect special tokens by text": end-of-turn, end-of-generation
 * and fill-in-the-middle markers), so that e.g. a USER_DEFINED "</s>" is not cut out of plain
 * text. */
static const char *const control_looking[] = {
    "</s>", "<EOT>", "<MID>", "<PAD>", "<PRE>", "<REPO>", "<SUF>", "<end_of_turn>", "<end_of_utterance>", "<eos>",
    "<fim-middle>", "<fim-pad>", "<fim-prefix>", "<fim-repo>", "<fim-suffix>", "<fim_middle>", "<fim_pad>",
    "<fim_prefix>", "<fim_suffix>", "<reponame>", "<turn|>", "<|calls|>", "<|call|>", "<|code_middle|>",
    "<|code_prefix|>", "<|code_suffix|>", "<|end_of_text|>", "<|endoftext|>", "<|end|>", "<|eom_id|>", "<|eot_id|>",
    "<|file_sep|>", "<|fim_middle|>", "<|fim_pad|>", "<|fim_prefix|>", "<|fim_repo|>", "<|fim_suffix|>", "<|flush|>",
    "<|im_end|>", "<|middle|>", "<|prefix|>", "<|repo_name|>", "<|return|>", "<|suffix|>", "<|tool_response>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>",
    "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "[EOS]", "[EOT]",
    "[PAD]", "[e~[", "_<EOT>", "\xE2\x96\x81<MID>", "\xE2\x96\x81<PRE>", "\xE2\x96\x81<SUF>",
};

/* Makes the control-looking tokens of toks[n] CONTROL in *types (allocated if NULL). */
static void mark_control_looking(char **toks, uint64_t n, int32_t **types) {
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c0 = (unsigned char)toks[i][0]; /* every listed text starts with one of these */
        if (c0 != '<' && c0 != '[' && c0 != '_' && c0 != 0xE2) continue;
        for (size_t k = 0; k < sizeof control_looking / sizeof *control_looking; k++)
            if (!strcmp(toks[i], control_looking[k])) {
                if (!*types) {
                    *types = sd_malloc((size_t)n * sizeof **types + 1);
                    for (uint64_t j = 0; j < n; j++) (*types)[j] = TOK_TYPE_NORMAL;
                }
                (*types)[i] = TOK_TYPE_CONTROL;
                break;
            }
    }
}

/* bos, eos, pad ids from their keys, each -1 unless the key is present (or def[k] >= 0). */
static int read_special_ids(const gguf_file *g, const int32_t def[3], int32_t ids[3], sd_err *err) {
    static const char *const keys[3] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                        "tokenizer.ggml.padding_token_id"};
    for (int k = 0; k < 3; k++) {
        ids[k] = def[k];
        if (gguf_find_kv(g, keys[k]) >= 0) {
            int rc = gguf_get_i32(g, keys[k], &ids[k], err);
            if (rc) return rc;
        }
    }
    return SD_OK;
}

static int load_bpe(const gguf_file *g, const char *pre, lm_tokenizer **out, sd_err *err) {
    char **toks = NULL, **merges = NULL;
    uint64_t n = 0, nm = 0;
    int32_t *types = NULL, ids[3];
    static const int32_t none[3] = {-1, -1, -1};
    int rc = read_strs(g, "tokenizer.ggml.tokens", &toks, &n, err);
    if (!rc) rc = read_strs(g, "tokenizer.ggml.merges", &merges, &nm, err);
    if (!rc) rc = read_types(g, n, &types, err);
    if (!rc) mark_control_looking(toks, n, &types);
    if (!rc) rc = read_special_ids(g, none, ids, err);
    if (!rc) {
        rc = tok_from_vocab((const char *const *)toks, types, (int32_t)n, (const char *const *)merges, (int32_t)nm, ids[0],
                            ids[1], ids[2], out, err);
        if (rc) sd_err_prefix(err, "%s", gguf_name(g));
    }
    if (!rc && (rc = tok_set_pre(*out, pre, err))) {
        sd_err_prefix(err, "%s", gguf_name(g));
        tok_free(*out);
        *out = NULL;
    }
    free_strs(toks, n);
    free_strs(merges, nm);
    free(types);
    return rc;
}

static int load_spm(const gguf_file *g, lm_tokenizer **out, sd_err *err) {
    char **toks = NULL;
    uint64_t n = 0;
    int32_t *types = NULL, ids[3];
    static const int32_t def[3] = {1, 2, -1}; /* llama.cpp's defaults for a "llama" vocabulary */
    float *scores = NULL;
    int add_prefix = 1, rc = read_strs(g, "tokenizer.ggml.tokens", &toks, &n, err);
    if (!rc) rc = read_types(g, n, &types, err);
    if (!rc) mark_control_looking(toks, n, &types);
    if (!rc) rc = read_special_ids(g, def, ids, err);
    if (!rc && gguf_find_kv(g, "tokenizer.ggml.add_space_prefix") >= 0)
        rc = gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &add_prefix, err);
    if (!rc && gguf_find_kv(g, "tokenizer.ggml.scores") >= 0) {
        gguf_type et;
        uint64_t ns;
        const void *data;
        rc = gguf_get_arr(g, "tokenizer.ggml.scores", &et, &ns, &data, err);
        if (!rc && (et != GGUF_TYPE_FLOAT32 || ns != n))
            rc = sd_fail(err, SD_ERR_FORMAT, "%s: tokenizer.ggml.scores must be %llu float32 values", gguf_name(g),
                         (unsigned long long)n);
        if (!rc) {
            scores = sd_malloc((size_t)n * sizeof *scores + 1);
            memcpy(scores, data, (size_t)n * sizeof *scores); /* may be unaligned in the file */
        }
    }
    for (int k = 0; k < 3 && !rc; k++)
        if (ids[k] >= (int64_t)n) ids[k] = -1; /* a default beyond a tiny vocabulary */
    if (!rc) {
        rc = tok_from_spm((const char *const *)toks, scores, types, (int32_t)n, ids[0], ids[1], ids[2], add_prefix, out,
                          err);
        if (rc) sd_err_prefix(err, "%s", gguf_name(g));
    }
    free_strs(toks, n);
    free(types);
    free(scores);
    return rc;
}

int tok_load_gguf(const gguf_file *g, lm_tokenizer **out, sd_err *err) {
    *out = NULL;
    char *model = NULL, *pre = NULL;
    int rc = gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (rc) return rc;
    if (gguf_find_kv(g, "tokenizer.ggml.pre") >= 0 && (rc = gguf_get_str(g, "tokenizer.ggml.pre", &pre, err))) {
        free(model);
        return rc;
    }
    if (!strcmp(model, "gpt2")) rc = load_bpe(g, pre ? pre : "", out, err);
    else if (!strcmp(model, "llama")) rc = load_spm(g, out, err);
    else
        rc = sd_fail(err, SD_ERR_FORMAT,
                     "%s: tokenizer.ggml.model \"%s\" is not supported; serendip reads \"gpt2\" (byte-level BPE, "
                     "tokenizer.ggml.pre one of: %s) and \"llama\" (SentencePiece)",
                     gguf_name(g), model, tok_supported_pre());
    free(model);
    free(pre);
    return rc;
}
