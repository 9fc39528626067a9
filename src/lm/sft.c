/* sft.c - prompt/answer JSON lines into masked training examples (see sft.h). */
#include "serendip/sft.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

int lm_sft_encode_prompt(const lm_tokenizer *tok, const char *prompt, int32_t **out) {
    size_t len = strlen(prompt), cap = len + 8, n = 0;
    int32_t bos = tok_bos(tok), *ids = sd_malloc(cap * sizeof *ids);
    int off = bos >= 0;
    if (off) ids[0] = bos;
    if (tok_encode(tok, prompt, len, ids + off, cap - (size_t)off, &n, 1) == SD_ERR_USAGE) {
        ids = sd_realloc(ids, (n + (size_t)off) * sizeof *ids);
        tok_encode(tok, prompt, len, ids + off, n, &n, 1);
    }
    *out = ids;
    return (int)n + off;
}

int lm_jsonl_each(const char *path, lm_jsonl_fn fn, void *ctx, sd_err *err) {
    char *buf;
    size_t len;
    int rc = sd_read_file(path, &buf, &len, err);
    if (rc) return rc;
    long line_no = 0;
    for (char *line = buf, *next; !rc && line && *line; line = next) {
        line_no++;
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        cJSON *j = cJSON_Parse(line);
        if (!cJSON_IsObject(j)) rc = sd_fail(err, SD_ERR_DATA, "%s:%ld: not a JSON object", path, line_no);
        else rc = fn(ctx, j, line_no, err);
        cJSON_Delete(j);
    }
    free(buf);
    return rc;
}

typedef struct {
    const lm_tokenizer *tok;
    const char *path;
    size_t max_len, count, cut;
    int longest;
    lm_examples *ex;
} sft_reader;

static int add_sft_line(void *ctx, const cJSON *j, long line, sd_err *err) {
    sft_reader *r = ctx;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt"), *a = cJSON_GetObjectItemCaseSensitive(j, "answer");
    if (!cJSON_IsString(p) || !cJSON_IsString(a))
        return sd_fail(err, SD_ERR_DATA, "%s:%ld: expected a JSON object with string fields \"prompt\" and \"answer\"",
                       r->path, line);
    r->cut += (size_t)lm_examples_add_sft(r->ex, r->tok, p->valuestring, a->valuestring, r->max_len);
    const size_t *off = r->ex->off.data;
    size_t n = lm_examples_count(r->ex), l = off[n] - off[n - 1];
    if ((int)l > r->longest) r->longest = (int)l;
    r->count++;
    return SD_OK;
}

int lm_sft_load_jsonl(const lm_tokenizer *tok, const char *path, size_t max_len, lm_examples *ex, size_t *n_read,
                      int *longest, size_t *n_cut, sd_err *err) {
    sft_reader r = {.tok = tok, .path = path, .max_len = max_len, .ex = ex};
    int rc = lm_jsonl_each(path, add_sft_line, &r, err);
    if (!rc && r.count == 0) rc = sd_fail(err, SD_ERR_DATA, "%s: no examples (empty file)", path);
    if (n_read) *n_read = r.count;
    if (longest) *longest = r.longest;
    if (n_cut) *n_cut = r.cut;
    return rc;
}
