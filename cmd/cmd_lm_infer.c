/* cmd_lm_infer.c - `serendip lm generate` and `serendip lm score`: thin wrappers over lm_infer.h.
 *
 * Prompts are tokenized with special tokens parsed (they carry <|ctx|>, <|sep|>, <|ans|> ...);
 * allowed strings and continuations are plain text (specials not parsed). */
#include "cmd.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/gguf.h"
#include "serendip/lm_infer.h"
#include "serendip/sft.h"
#include "serendip/tokenizer.h"

/* Upper bound of --n, --max-new and --rows, checked before any work: far above any use here, low
 * enough that their products stay in int; the memory they size is checked once the model is known. */
#define LM_FLAG_MAX (1 << 20)

/* Tokenizes text into a fresh array (caller frees); prepends BOS when bos >= 0. */
static int32_t *encode(const lm_tokenizer *t, const char *text, int specials, int32_t bos, int *n, sd_err *err) {
    size_t len = strlen(text), cap = len + 2, got = 0;
    int32_t *ids = sd_malloc(sizeof(int32_t) * cap);
    int off = bos >= 0;
    if (off) ids[0] = bos;
    if (tok_encode(t, text, len, ids + off, cap - off, &got, specials) != SD_OK) {
        free(ids);
        sd_fail(err, SD_ERR_DATA, "cannot tokenize \"%.60s\"", text);
        return NULL;
    }
    *n = (int)got + off;
    return ids;
}

/* Decoded text of ids (heap, NUL-terminated). */
static char *decode(const lm_tokenizer *t, const int32_t *ids, int n) {
    size_t len = 0;
    tok_decode(t, ids, (size_t)n, NULL, 0, &len);
    char *s = sd_malloc(len + 1);
    tok_decode(t, ids, (size_t)n, s, len, &len);
    s[len] = 0;
    return s;
}

/* Copy of s with every invalid UTF-8 sequence replaced by U+FFFD (JSON must be UTF-8; generated
 * byte-level tokens need not be). Caller frees. */
static char *utf8_clean(const char *s) {
    size_t n = strlen(s), o = 0;
    char *out = sd_malloc(3 * n + 1);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int len = u[i] < 0x80 ? 1 : (u[i] >> 5) == 6 ? 2 : (u[i] >> 4) == 14 ? 3 : (u[i] >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && i + len <= n;
        for (int k = 1; ok && k < len; k++) ok = (u[i + k] & 0xC0) == 0x80;
        if (ok && len == 2) ok = u[i] >= 0xC2;
        if (ok && len == 3) ok = !(u[i] == 0xE0 && u[i + 1] < 0xA0) && !(u[i] == 0xED && u[i + 1] >= 0xA0);
        if (ok && len == 4) ok = u[i] <= 0xF4 && !(u[i] == 0xF0 && u[i + 1] < 0x90) && !(u[i] == 0xF4 && u[i + 1] >= 0x90);
        if (ok) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = 0;
    return out;
}

static int keep_object(void *ctx, const cJSON *obj, long line, sd_err *err) {
    (void)line, (void)err;
    *(cJSON **)sd_vec_push(ctx) = cJSON_Duplicate(obj, 1);
    return SD_OK;
}

/* The lines of a JSONL file parsed to objects (caller frees each with cJSON_Delete and the array). */
static int read_jsonl(const char *path, cJSON ***out, int *n, sd_err *err) {
    sd_vec v;
    sd_vec_init(&v, sizeof(cJSON *));
    int rc = lm_jsonl_each(path, keep_object, &v, err);
    if (rc) {
        for (size_t i = 0; i < v.len; i++) cJSON_Delete(((cJSON **)v.data)[i]);
        sd_vec_free(&v);
        return rc;
    }
    *out = v.data;
    *n = (int)v.len;
    return SD_OK;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static void free_objs(cJSON **objs, int n) {
    for (int i = 0; i < n; i++) cJSON_Delete(objs[i]);
    free(objs);
}

/* ---------------------------------------------------------------- lm generate */

int cmd_lm_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *prompts_file = NULL, *allowed = NULL;
    int n = 1, top_k = 0, max_new = 16, rows = 256, json = 0, bos = 0;
    int64_t seed = 1;
    float temperature = 1.0f, top_p = 1.0f;
    fl_spec specs[] = {
        {"model", FL_STR, &model, "GGUF model file"},
        {"prompt", FL_STR, &prompt, "one prompt (special tokens like <|ctx|> are parsed)"},
        {"prompts", FL_STR, &prompts_file, "JSONL file, one {\"prompt\": \"...\"} per line"},
        {"n", FL_INT, &n, "samples per prompt"},
        {"temperature", FL_FLOAT, &temperature, "sampling temperature; 0 = greedy"},
        {"top-k", FL_INT, &top_k, "keep the k most likely tokens (0 = off)"},
        {"top-p", FL_FLOAT, &top_p, "nucleus sampling threshold (1 = off)"},
        {"seed", FL_I64, &seed, "sampling seed"},
        {"max-new", FL_INT, &max_new, "maximum new tokens per sample (free generation)"},
        {"allowed", FL_STR, &allowed, "file of allowed strings, one per line: constrained decoding"},
        {"rows", FL_INT, &rows, "rows per batched forward"},
        {"bos", FL_BOOL, &bos, "prepend the BOS token to each prompt"},
        {"json", FL_BOOL, &json, "print JSON"},
        {0},
    };
    int rc = fl_parse("lm generate --model F.gguf (--prompt S | --prompts FILE.jsonl) [flags]",
                      "Samples continuations of prompts with the batched KV-cache engine. With --allowed, every\n"
                      "sample is one of the allowed strings (token-trie constrained decoding).",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if (!model) return cmd_usage_error(argv[0], "--model is required");
    if (!prompt == !prompts_file) return cmd_usage_error(argv[0], "give exactly one of --prompt and --prompts");
    if (n < 1 || max_new < 1 || rows < 1 || n > LM_FLAG_MAX || max_new > LM_FLAG_MAX || rows > LM_FLAG_MAX)
        return cmd_usage_error(argv[0], "--n, --max-new and --rows must be in 1..%d", LM_FLAG_MAX);
    if (temperature < 0 || top_k < 0 || !(top_p > 0))
        return cmd_usage_error(argv[0], "--temperature and --top-k must be >= 0 and --top-p > 0");

    sd_err err = {0};
    lm_model m;
    lm_tokenizer *tok = NULL;
    if (lm_gguf_load_quant(model, &m, &tok, &err)) return cmd_fail(&err); /* F16/quantized matrices stay encoded */
    int32_t bos_id = bos ? tok_bos(tok) : -1, eos = tok_eos(tok);
    cJSON **objs = NULL;
    int np = 1;
    const char **texts;
    if (prompts_file) {
        if (read_jsonl(prompts_file, &objs, &np, &err)) goto fail;
        texts = sd_malloc(sizeof(char *) * (np + 1));
        for (int i = 0; i < np; i++)
            if (!(texts[i] = json_str(objs[i], "prompt"))) {
                free(texts);
                sd_fail(&err, SD_ERR_DATA, "%s: object %d has no string \"prompt\"", prompts_file, i + 1);
                goto fail;
            }
    } else {
        texts = sd_malloc(sizeof(char *));
        texts[0] = prompt;
    }
    int32_t **ids = sd_calloc(np + 1, sizeof(int32_t *));
    int *len = sd_calloc(np + 1, sizeof(int)), maxlen = 1;
    for (int i = 0; i < np; i++) {
        if (!(ids[i] = encode(tok, texts[i], 1, bos_id, &len[i], &err))) goto fail2;
        if (len[i] > maxlen) maxlen = len[i];
    }
    lm_sampler s = {.temperature = temperature, .top_k = top_k, .top_p = top_p, .seed = (uint64_t)seed};
    lm_trie *trie = NULL;
    char **allowed_str = NULL;
    int na = 0;
    if (allowed) {
        char *buf;
        size_t blen;
        if (sd_read_file(allowed, &buf, &blen, &err)) goto fail2;
        sd_vec sv;
        sd_vec_init(&sv, sizeof(char *));
        for (char *line = buf; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            size_t l = strlen(line);
            if (l && line[l - 1] == '\r') line[--l] = 0;
            if (l) *(char **)sd_vec_push(&sv) = sd_strdup(line);
            line = nl ? nl + 1 : NULL;
        }
        free(buf);
        allowed_str = sv.data;
        na = (int)sv.len;
        int32_t **aseq = sd_calloc(na + 1, sizeof(int32_t *));
        int *alen = sd_calloc(na + 1, sizeof(int));
        int ok = na > 0;
        for (int i = 0; i < na && ok; i++) ok = (aseq[i] = encode(tok, allowed_str[i], 0, -1, &alen[i], &err)) != NULL;
        if (ok) trie = lm_trie_new((const int32_t *const *)aseq, alen, na, eos, tok_vocab_size(tok), &err);
        else if (na == 0) sd_fail(&err, SD_ERR_DATA, "%s: no allowed strings", allowed);
        for (int i = 0; i < na; i++) free(aseq[i]);
        free(aseq);
        free(alen);
        if (!trie) {
            sd_err_prefix(&err, "%s", allowed);
            goto fail3;
        }
    }
    int extra = trie ? lm_trie_max_depth(trie) : max_new;
    double need = cmd_infer_bytes(&m.cfg, rows, maxlen + extra) + 4.0 * np * n * (trie ? 1 : max_new); /* + the samples */
    if ((rc = cmd_check_memory(argv[0], need, "--n, --rows and --max-new (with these prompts)"))) goto done;
    lm_infer *inf = lm_infer_new(&m, rows, maxlen + extra, &err);
    if (!inf) goto fail3;
    double t0 = sd_now();
    int total = np * n;
    lm_gen_out out = {0};
    int *choice = NULL;
    float *lp = NULL, *lpr = NULL;
    if (trie) {
        choice = sd_malloc(sizeof(int) * total);
        lp = sd_malloc(sizeof(float) * total);
        lpr = sd_malloc(sizeof(float) * total);
        rc = lm_generate_constrained(inf, (const int32_t *const *)ids, len, np, n, &s, trie, choice, lp, lpr, &err);
    } else {
        rc = lm_generate(inf, (const int32_t *const *)ids, len, np, n, &s, max_new, eos, &out, &err);
    }
    double secs = sd_now() - t0;
    if (rc) {
        lm_infer_free(inf);
        goto fail3;
    }
    cJSON *root = cJSON_CreateArray();
    for (int p = 0; p < np; p++) {
        cJSON *jp = cJSON_CreateObject(), *js = cJSON_CreateArray();
        char *cp = utf8_clean(texts[p]);
        cJSON_AddStringToObject(jp, "prompt", cp);
        free(cp);
        if (!json) printf("prompt %d: %s\n", p, texts[p]);
        for (int k = 0; k < n; k++) {
            int i = p * n + k;
            cJSON *o = cJSON_CreateObject();
            if (trie) {
                char *ca = utf8_clean(allowed_str[choice[i]]);
                cJSON_AddStringToObject(o, "text", ca);
                free(ca);
                cJSON_AddNumberToObject(o, "choice", choice[i]);
                cJSON_AddNumberToObject(o, "logprob", lp[i]);
                cJSON_AddNumberToObject(o, "logprob_renorm", lpr[i]);
                if (!json) printf("  [%d] %8.3f  %s\n", k, (double)lp[i], allowed_str[choice[i]]);
            } else {
                char *txt = decode(tok, out.tokens + (size_t)i * out.max_new, out.len[i]), *clean = utf8_clean(txt);
                cJSON_AddStringToObject(o, "text", clean);
                free(clean);
                cJSON_AddItemToObject(o, "ids", cJSON_CreateIntArray(out.tokens + (size_t)i * out.max_new, out.len[i]));
                cJSON_AddNumberToObject(o, "tokens", out.len[i]);
                cJSON_AddBoolToObject(o, "stopped", out.stopped[i]);
                cJSON_AddNumberToObject(o, "logprob", out.logprob[i]);
                if (!json) printf("  [%d] %8.3f%s  %s\n", k, (double)out.logprob[i], out.stopped[i] ? "" : " (max)", txt);
                free(txt);
            }
            cJSON_AddItemToArray(js, o);
        }
        cJSON_AddItemToObject(jp, "samples", js);
        cJSON_AddItemToArray(root, jp);
    }
    if (json) {
        char *txt = cJSON_Print(root);
        puts(txt);
        free(txt);
    } else {
        printf("%d prompts x %d samples in %.3f s\n", np, n, secs);
    }
    cJSON_Delete(root);
    lm_gen_out_free(&out);
    free(choice);
    free(lp);
    free(lpr);
    lm_infer_free(inf);
    rc = 0;
    goto done;
fail3:
    rc = cmd_fail(&err);
done:
    lm_trie_free(trie);
    for (int i = 0; i < na; i++) free(allowed_str[i]);
    free(allowed_str);
    for (int i = 0; i < np; i++) free(ids[i]);
    free(ids);
    free(len);
    free(texts);
    if (objs) free_objs(objs, np);
    tok_free(tok);
    lm_model_free(&m);
    return rc;
fail2:
    for (int i = 0; i < np; i++) free(ids[i]);
    free(ids);
    free(len);
    free(texts);
fail:
    if (objs) free_objs(objs, np);
    tok_free(tok);
    lm_model_free(&m);
    return cmd_fail(&err);
}

/* ---------------------------------------------------------------- lm score */

int cmd_lm_score(int argc, char **argv) {
    const char *model = NULL, *data = NULL;
    int rows = 256, json = 0, bos = 0;
    fl_spec specs[] = {
        {"model", FL_STR, &model, "GGUF model file"},
        {"data", FL_STR, &data, "JSONL file, one {\"prompt\": \"...\", \"continuation\": \"...\"} per line"},
        {"rows", FL_INT, &rows, "rows per batched forward"},
        {"bos", FL_BOOL, &bos, "prepend the BOS token to each prompt"},
        {"json", FL_BOOL, &json, "print JSON"},
        {0},
    };
    int rc = fl_parse("lm score --model F.gguf --data FILE.jsonl [--json]",
                      "Log-probability (natural log, temperature 1) of each continuation after its prompt.\n"
                      "Consecutive lines with the same prompt share one prefill.",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if (!model || !data) return cmd_usage_error(argv[0], "--model and --data are required");
    if (rows < 1 || rows > LM_FLAG_MAX) return cmd_usage_error(argv[0], "--rows must be in 1..%d", LM_FLAG_MAX);
    sd_err err = {0};
    lm_model m;
    lm_tokenizer *tok = NULL;
    if (lm_gguf_load_quant(model, &m, &tok, &err)) return cmd_fail(&err); /* F16/quantized matrices stay encoded */
    cJSON **objs = NULL;
    int n = 0;
    if (read_jsonl(data, &objs, &n, &err)) {
        tok_free(tok);
        lm_model_free(&m);
        return cmd_fail(&err);
    }
    int32_t bos_id = bos ? tok_bos(tok) : -1;
    int32_t **pid = sd_calloc(n + 1, sizeof(int32_t *)), **cid = sd_calloc(n + 1, sizeof(int32_t *));
    int *pl = sd_calloc(n + 1, sizeof(int)), *cl = sd_calloc(n + 1, sizeof(int)), maxlen = 2;
    float *out = sd_calloc(n + 1, sizeof(float));
    rc = SD_OK;
    for (int i = 0; i < n && !rc; i++) {
        const char *p = json_str(objs[i], "prompt"), *c = json_str(objs[i], "continuation");
        if (!p || !c) {
            rc = sd_fail(&err, SD_ERR_DATA, "%s: object %d needs string \"prompt\" and \"continuation\"", data, i + 1);
            break;
        }
        if (!(pid[i] = encode(tok, p, 1, bos_id, &pl[i], &err)) || !(cid[i] = encode(tok, c, 0, -1, &cl[i], &err)))
            rc = err.code;
        else if (pl[i] + cl[i] > maxlen)
            maxlen = pl[i] + cl[i];
    }
    int usage = !rc && cmd_check_memory(argv[0], cmd_infer_bytes(&m.cfg, rows, maxlen), "--rows (with the longest line)");
    if (usage) rc = SD_ERR_USAGE;
    lm_infer *inf = rc ? NULL : lm_infer_new(&m, rows, maxlen, &err);
    if (!rc && !inf) rc = err.code;
    double t0 = sd_now();
    for (int i = 0; i < n && !rc;) {
        int j = i + 1;
        while (j < n && pl[j] == pl[i] && !memcmp(pid[j], pid[i], sizeof(int32_t) * pl[i])) j++;
        rc = lm_score_continuations(inf, pid[i], pl[i], (const int32_t *const *)cid + i, cl + i, j - i, out + i, &err);
        i = j;
    }
    if (!rc) {
        if (json) {
            cJSON *root = cJSON_CreateArray();
            for (int i = 0; i < n; i++) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "line", i + 1);
                cJSON_AddNumberToObject(o, "logprob", out[i]);
                cJSON_AddNumberToObject(o, "tokens", cl[i]);
                cJSON_AddItemToArray(root, o);
            }
            char *txt = cJSON_Print(root);
            puts(txt);
            free(txt);
            cJSON_Delete(root);
        } else {
            for (int i = 0; i < n; i++) printf("%d\t%.6f\t%d tokens\n", i + 1, (double)out[i], cl[i]);
            fprintf(stderr, "serendip: scored %d continuations in %.3f s\n", n, sd_now() - t0);
        }
    }
    lm_infer_free(inf);
    for (int i = 0; i < n; i++) {
        free(pid[i]);
        free(cid[i]);
    }
    free(pid);
    free(cid);
    free(pl);
    free(cl);
    free(out);
    free_objs(objs, n);
    tok_free(tok);
    lm_model_free(&m);
    return usage ? 2 : rc ? cmd_fail(&err) : 0;
}
