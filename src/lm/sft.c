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

int lm_sft_load_jsonl(const lm_tokenizer *tok, const char *path, size_t max_len, lm_examples *ex, size_t *n_read,
                      int *longest, size_t *n_cut, sd_err *err) {
    char *buf;
    size_t len, count = 0, cut = 0;
    int rc = sd_read_file(path, &buf, &len, err), most = 0;
    if (rc) return rc;
    long line_no = 0;
    for (char *line = buf, *next; line && *line; line = next) {
        line_no++;
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        cJSON *j = cJSON_Parse(line);
        const cJSON *p = j ? cJSON_GetObjectItemCaseSensitive(j, "prompt") : NULL;
        const cJSON *a = j ? cJSON_GetObjectItemCaseSensitive(j, "answer") : NULL;
        if (!cJSON_IsString(p) || !cJSON_IsString(a)) {
            cJSON_Delete(j);
            rc = sd_fail(err, SD_ERR_DATA, "%s:%ld: expected a JSON object with string fields \"prompt\" and \"answer\"",
                         path, line_no);
            break;
        }
        cut += (size_t)lm_examples_add_sft(ex, tok, p->valuestring, a->valuestring, max_len);
        cJSON_Delete(j);
        const size_t *off = ex->off.data;
        size_t n = lm_examples_count(ex), l = off[n] - off[n - 1];
        if ((int)l > most) most = (int)l;
        count++;
    }
    free(buf);
    if (!rc && count == 0) rc = sd_fail(err, SD_ERR_DATA, "%s: no examples (empty file)", path);
    if (n_read) *n_read = count;
    if (longest) *longest = most;
    if (n_cut) *n_cut = cut;
    return rc;
}
