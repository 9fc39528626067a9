/* sft.c - prompt/answer JSON lines into masked training examples (see sft.h). */
#include "serendip/sft.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* Encodes text (specials parsed when asked) into a fresh array; *n its length. Caller frees. */
static int32_t *encode_all(const lm_tokenizer *tok, const char *text, int specials, size_t *n) {
    size_t len = strlen(text), cap = len + 16;
    int32_t *ids = sd_malloc(cap * sizeof *ids);
    if (tok_encode(tok, text, len, ids, cap, n, specials) == SD_ERR_USAGE) {
        ids = sd_realloc(ids, *n * sizeof *ids);
        tok_encode(tok, text, len, ids, *n, n, specials);
    }
    return ids;
}

size_t lm_sft_add(const lm_tokenizer *tok, const char *prompt, const char *answer, lm_examples *ex) {
    size_t np, na;
    int32_t *p = encode_all(tok, prompt, 1, &np), *a = encode_all(tok, answer, 0, &na);
    size_t n = np + na + 1;
    int32_t *ids = sd_malloc(n * sizeof *ids);
    uint8_t *tgt = sd_calloc(n, 1);
    memcpy(ids, p, np * sizeof *ids);
    memcpy(ids + np, a, na * sizeof *ids);
    ids[n - 1] = tok_eos(tok);
    for (size_t i = np; i < n; i++) tgt[i] = 1;
    lm_examples_add(ex, ids, tgt, n);
    free(p);
    free(a);
    free(ids);
    free(tgt);
    return n;
}

int lm_sft_load_jsonl(const lm_tokenizer *tok, const char *path, int max_tokens, lm_examples *ex, size_t *n_lines,
                      sd_err *err) {
    if (tok_eos(tok) < 0) return sd_fail(err, SD_ERR_DATA, "%s: the tokenizer has no end-of-sequence token", path);
    char *text;
    size_t len;
    int rc = sd_read_file(path, &text, &len, err);
    if (rc) return rc;
    size_t count = 0;
    long lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[--ll] = 0;
        if (ll == 0) continue;
        cJSON *o = cJSON_Parse(line);
        const char *what = NULL;
        if (!o || !cJSON_IsObject(o)) what = "not a JSON object";
        else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "prompt"))) what = "field \"prompt\" missing or not a string";
        else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "answer"))) what = "field \"answer\" missing or not a string";
        if (what) {
            cJSON_Delete(o);
            free(text);
            return sd_fail(err, SD_ERR_DATA, "%s:%ld: %s", path, lineno, what);
        }
        size_t n = lm_sft_add(tok, cJSON_GetObjectItemCaseSensitive(o, "prompt")->valuestring,
                              cJSON_GetObjectItemCaseSensitive(o, "answer")->valuestring, ex);
        cJSON_Delete(o);
        if (max_tokens > 0 && n > (size_t)max_tokens) {
            free(text);
            return sd_fail(err, SD_ERR_DATA, "%s:%ld: example is %zu tokens, longer than the model's %d (shorten it or raise --seq-len)",
                           path, lineno, n, max_tokens);
        }
        count++;
    }
    free(text);
    if (n_lines) *n_lines = count;
    if (count == 0) return sd_fail(err, SD_ERR_DATA, "%s: no examples (empty file)", path);
    return SD_OK;
}
