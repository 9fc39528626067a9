/* api.c - the public C API (include/serendip/serendip.h): handles, errors, the explore answer
 * over the one answer path (an_answer), clusters and metrics, item embeddings, and GGUF models
 * (generate / score through the batched inference engine). The stages are in stages.c.
 *
 * Every function here is a thin translation between the stable public types and the internal
 * ones; there is no logic of its own beyond argument checks, so a binding and the command line
 * get the same results from the same library calls. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "serendip/api.h"
#include "serendip/dataset.h"
#include "serendip/eval.h"
#include "serendip/gguf.h"
#include "serendip/journeys.h"
#include "serendip/lm_infer.h"
#include "serendip/retrieve.h"
#include "serendip/taxonomy.h"
#include "serendip/tokenizer.h"

_Static_assert(SERENDIP_CLUSTERS_MAX == AN_CLUSTERS_MAX, "public cluster bound follows the answer's");
_Static_assert(SERENDIP_ITEMS_MAX == AN_ITEMS_MAX, "public item bound follows the answer's");
_Static_assert(SERENDIP_HISTORY_MAX == AN_HISTORY_MAX, "public history bound follows the answer's");
_Static_assert((int)SERENDIP_ERR_STATE == (int)SD_ERR_STATE && (int)SERENDIP_ERR_USAGE == (int)SD_ERR_USAGE &&
                   (int)SERENDIP_ERR_IO == (int)SD_ERR_IO && (int)SERENDIP_ERR_DATA == (int)SD_ERR_DATA &&
                   (int)SERENDIP_ERR_FORMAT == (int)SD_ERR_FORMAT,
               "public status codes are the library's");

#define SERENDIP_VERSION_PATCH 0
#define STR2(x) #x
#define STR(x) STR2(x)

/* ---------------------------------------------------------------- errors, strings, handles */

/* The one process-wide value of the API: a count of live handles for leak tests. It never
 * changes a result. */
static atomic_llong live_handles;

void sd_api_count(int delta) { atomic_fetch_add(&live_handles, delta); }

SERENDIP_API int64_t serendip_live_handles(void) { return (int64_t)atomic_load(&live_handles); }

void sd_api_error(serendip_error *out, const sd_err *in) {
    if (!out) return;
    out->code = in ? in->code : SERENDIP_OK;
    snprintf(out->message, sizeof out->message, "%s", in ? in->msg : "");
}

/* Returns rc after copying err into the public error (success clears it). */
static int done(serendip_error *out, int rc, const sd_err *err) {
    if (rc) sd_api_error(out, err);
    else if (out) out->code = 0, out->message[0] = 0;
    return rc;
}

/* A usage error straight into the public error. */
static int usage(serendip_error *out, const char *msg) {
    sd_err e = {0};
    sd_fail(&e, SD_ERR_USAGE, "%s", msg);
    return done(out, SD_ERR_USAGE, &e);
}

SERENDIP_API const char *serendip_status_name(int code) {
    static const char *const names[] = {"ok", "io", "data", "format", "usage", "state"};
    return code >= 0 && code <= SERENDIP_ERR_STATE ? names[code] : "unknown";
}

SERENDIP_API const char *serendip_version(int *major, int *minor) {
    if (major) *major = SERENDIP_API_VERSION_MAJOR;
    if (minor) *minor = SERENDIP_API_VERSION_MINOR;
    return STR(SERENDIP_API_VERSION_MAJOR) "." STR(SERENDIP_API_VERSION_MINOR) "." STR(SERENDIP_VERSION_PATCH);
}

SERENDIP_API void serendip_free(void *p) { free(p); }

/* ---------------------------------------------------------------- workspaces and stages */

struct serendip_workspace {
    char *path; /* owned */
};

SERENDIP_API int serendip_workspace_open(serendip_workspace **out, const char *path, int create, serendip_error *err) {
    sd_err e = {0};
    *out = NULL;
    if (!path || !*path) return usage(err, "workspace: the path is empty");
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            sd_fail(&e, SD_ERR_IO, "%s: not a folder", path);
            return done(err, SD_ERR_IO, &e);
        }
    } else if (create) {
        int rc = sd_mkdir_p(path, &e);
        if (rc) return done(err, rc, &e);
    } else {
        sd_fail(&e, SD_ERR_STATE, "%s: no such workspace folder (open it with create, or run the world or ingest stage)", path);
        return done(err, SD_ERR_STATE, &e);
    }
    serendip_workspace *w = sd_calloc(1, sizeof *w);
    w->path = sd_strdup(path);
    sd_api_count(1);
    *out = w;
    return done(err, SD_OK, NULL);
}

SERENDIP_API void serendip_workspace_free(serendip_workspace *ws) {
    if (!ws) return;
    free(ws->path);
    free(ws);
    sd_api_count(-1);
}

SERENDIP_API const char *serendip_workspace_path(const serendip_workspace *ws) { return ws->path; }

typedef struct {
    serendip_progress_fn fn;
    void *user;
} progress_ctx;

static void progress_relay(void *user, const char *label, int64_t done_units, int64_t total) {
    const progress_ctx *c = user;
    c->fn(c->user, label, done_units, total);
}

SERENDIP_API int serendip_run(serendip_workspace *ws, const char *stage, const char *const *options,
                              serendip_progress_fn progress, void *user, char **report, serendip_error *err) {
    if (report) *report = NULL;
    if (!ws || !stage) return usage(err, "run: no workspace or no stage given");
    sd_err e = {0};
    progress_ctx ctx = {progress, user};
    if (progress) sd_progress_set_hook(progress_relay, &ctx);
    int rc = sd_api_run_stage(ws->path, stage, options, report, &e);
    if (progress) sd_progress_set_hook(NULL, NULL);
    return done(err, rc, &e);
}

SERENDIP_API const char *serendip_stage_help(const char *stage) { return sd_api_stage_help(stage); }

SERENDIP_API int serendip_clusters_json(const serendip_workspace *ws, char **out, serendip_error *err) {
    *out = NULL;
    sd_err e = {0};
    char *path = sd_path_join(ws->path, TX_FILE);
    if (!sd_file_exists(path)) {
        sd_fail(&e, SD_ERR_STATE, "%s: no taxonomy (run the cluster stage first)", path);
        free(path);
        return done(err, SD_ERR_STATE, &e);
    }
    tx_taxonomy t;
    int rc = tx_load(&t, path, &e);
    free(path);
    if (rc) return done(err, rc, &e);
    cJSON *a = cJSON_CreateArray();
    for (int32_t c = 0; c < t.n_clusters; c++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", c);
        cJSON_AddNumberToObject(o, "parent", t.parent[c]);
        cJSON_AddNumberToObject(o, "size", t.size[c]);
        cJSON_AddStringToObject(o, "description", t.desc[c]);
        cJSON_AddStringToObject(o, "parent_description", t.top_desc[t.parent[c]]);
        cJSON_AddItemToArray(a, o);
    }
    *out = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    tx_free(&t);
    return done(err, SD_OK, NULL);
}

SERENDIP_API int serendip_metrics_json(const serendip_workspace *ws, char **out, serendip_error *err) {
    *out = NULL;
    sd_err e = {0};
    char *path = sd_path_join(ws->path, EV_METRICS_FILE);
    int rc;
    if (!sd_file_exists(path)) rc = sd_fail(&e, SD_ERR_STATE, "%s: no metrics (run the eval stage first)", path);
    else rc = sd_read_file(path, out, NULL, &e);
    free(path);
    return done(err, rc, &e);
}

/* ---------------------------------------------------------------- item embeddings */

struct serendip_embeddings {
    rt_model rt;    /* mmapped retrieval.bin */
    ds_dataset ds;  /* for the raw item ids */
};

SERENDIP_API int serendip_embeddings_open(serendip_embeddings **out, const serendip_workspace *ws, serendip_error *err) {
    *out = NULL;
    sd_err e = {0};
    char *rp = sd_path_join(ws->path, RT_FILE), *dp = sd_path_join(ws->path, DS_FILE);
    serendip_embeddings *x = sd_calloc(1, sizeof *x);
    int rc = SD_OK;
    if (!sd_file_exists(rp)) rc = sd_fail(&e, SD_ERR_STATE, "%s: no retrieval model (run the train stage first)", rp);
    if (!rc) rc = rt_open(&x->rt, rp, &e);
    if (!rc && (rc = ds_load(&x->ds, dp, &e))) rt_close(&x->rt);
    if (!rc && (x->ds.n_items != x->rt.n_items || rt_items_hash(&x->ds) != x->rt.items_hash)) {
        rc = sd_fail(&e, SD_ERR_STATE, "%s: trained on another dataset than %s (run the train stage again)", rp, dp);
        rt_close(&x->rt);
        ds_free(&x->ds);
    }
    free(rp), free(dp);
    if (rc) {
        free(x);
        return done(err, rc, &e);
    }
    sd_api_count(1);
    *out = x;
    return done(err, SD_OK, NULL);
}

SERENDIP_API void serendip_embeddings_free(serendip_embeddings *x) {
    if (!x) return;
    rt_close(&x->rt);
    ds_free(&x->ds);
    free(x);
    sd_api_count(-1);
}

SERENDIP_API const float *serendip_embeddings_data(const serendip_embeddings *x, int64_t *n_items, int *dim) {
    if (n_items) *n_items = x->rt.n_items;
    if (dim) *dim = x->rt.dim;
    return x->rt.U;
}

SERENDIP_API const int64_t *serendip_embeddings_item_ids(const serendip_embeddings *x) { return x->ds.item_ids; }

/* ---------------------------------------------------------------- explore */

SERENDIP_API int serendip_explorer_open(serendip_explorer **out, const char *ws, const char *table, const char *positive,
                                        serendip_error *err) {
    *out = NULL;
    sd_err e = {0};
    ds_positive_rule rule;
    int rc = jr_resolve_rule(ws, positive, &rule, &e);
    if (rc) return done(err, rc, &e);
    an_options o = {.table = table, .rule = &rule};
    an_workspace *w;
    if ((rc = an_open(&w, ws, &o, &e))) return done(err, rc, &e);
    sd_api_count(1);
    *out = (serendip_explorer *)w;
    return done(err, SD_OK, NULL);
}

SERENDIP_API void serendip_explorer_free(serendip_explorer *x) {
    if (!x) return;
    an_free((an_workspace *)x);
    sd_api_count(-1);
}

SERENDIP_API int serendip_explorer_k(const serendip_explorer *x) { return sd_api_workspace(x)->k; }

/* A decimal integer id, strictly: an optional '-' then digits, nothing around them (the server's
 * query rule). Returns 0 or -1. */
static int strict_i64(const char *s, int64_t *out) {
    if (!(*s == '-' || (*s >= '0' && *s <= '9'))) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

/* Raw ids typed as text: the rule of serendip.h ("Raw ids as text"), which is ds_find_*_raw on a
 * string side and a strict integer parse on an integer side. */
SERENDIP_API int serendip_explorer_user(const serendip_explorer *x, const char *raw, int64_t *user, serendip_error *err) {
    if (!x || !raw || !user) return usage(err, "explore: no explorer, user text or output given");
    const ds_dataset *d = sd_api_workspace(x)->ds;
    sd_err e = {0};
    int64_t v, u;
    if (ds_has_user_names(d)) {
        if ((u = ds_find_user_raw(d, raw)) < 0) return done(err, sd_fail(&e, SD_ERR_DATA, "unknown user \"%.200s\"", raw), &e);
    } else {
        if (strict_i64(raw, &v))
            return done(err, sd_fail(&e, SD_ERR_USAGE, "user \"%.200s\" is not an integer id", raw), &e);
        if ((u = ds_find_user(d, v)) < 0) return done(err, sd_fail(&e, SD_ERR_DATA, "unknown user %lld", (long long)v), &e);
    }
    *user = d->user_ids[u];
    return done(err, SD_OK, NULL);
}

SERENDIP_API int serendip_explorer_items(const serendip_explorer *x, const char *const *raw, int n, int64_t *out,
                                         serendip_error *err) {
    if (!x || n < 0 || n > SERENDIP_HISTORY_MAX || (n && (!raw || !out)))
        return usage(err, "explore: items: expected 0..1000 item id texts and an output array");
    const ds_dataset *d = sd_api_workspace(x)->ds;
    sd_err e = {0};
    for (int i = 0; i < n; i++) {
        if (!raw[i]) return done(err, sd_fail(&e, SD_ERR_USAGE, "explore: items: id %d is NULL", i), &e);
        if (ds_has_item_names(d)) {
            int64_t k = ds_find_item_raw(d, raw[i]);
            out[i] = k < 0 ? SERENDIP_ITEM_UNKNOWN : d->item_ids[k];
        } else if (strict_i64(raw[i], &out[i])) {
            return done(err, sd_fail(&e, SD_ERR_USAGE, "item \"%.200s\" is not an integer id", raw[i]), &e);
        }
    }
    return done(err, SD_OK, NULL);
}

struct serendip_answer {
    an_result r;
};

SERENDIP_API int serendip_explore(const serendip_explorer *x, const serendip_table *table, int64_t version,
                                  const serendip_query *q, serendip_answer **out, serendip_error *err) {
    *out = NULL;
    if (!x || !q) return usage(err, "explore: no explorer or no query given");
    if (q->kind < SERENDIP_QUERY_USER || q->kind > SERENDIP_QUERY_CONTEXT) return usage(err, "explore: unknown query kind");
    const an_workspace *w = sd_api_workspace(x); /* an_answer checks the rest of the query */
    an_query aq = {.kind = (an_query_kind)q->kind, .user = q->user, .items = q->items, .context = q->context, .n = q->n,
                   .clusters = q->clusters, .items_per = q->items_per_cluster};
    serendip_answer *a = sd_malloc(sizeof *a);
    sd_err e = {0};
    int rc = an_answer(w, (const tbl_table *)table, version, &aq, &a->r, &e);
    if (rc) {
        free(a);
        return done(err, rc, &e);
    }
    sd_api_count(1);
    *out = a;
    return done(err, SD_OK, NULL);
}

SERENDIP_API const char *serendip_answer_json(const serendip_answer *a, size_t *len) {
    if (len) *len = a->r.json ? a->r.len : 0;
    return a->r.json ? a->r.json : "";
}

SERENDIP_API char *serendip_answer_take_json(serendip_answer *a, size_t *len) {
    char *j = a->r.json ? a->r.json : sd_strdup("");
    if (len) *len = a->r.json ? a->r.len : 0;
    a->r.json = NULL;
    a->r.len = 0;
    return j;
}

SERENDIP_API void serendip_answer_counts(const serendip_answer *a, int *planned, int *fallback) {
    if (planned) *planned = a->r.n_planned;
    if (fallback) *fallback = a->r.n_fallback;
}

SERENDIP_API void serendip_answer_free(serendip_answer *a) {
    if (!a) return;
    an_result_free(&a->r);
    free(a);
    sd_api_count(-1);
}

/* ---------------------------------------------------------------- language models */

struct serendip_model {
    lm_model m;
    lm_tokenizer *tok;
};

SERENDIP_API int serendip_model_open(serendip_model **out, const char *path, serendip_error *err) {
    *out = NULL;
    if (!path) return usage(err, "model: no path given");
    sd_err e = {0};
    serendip_model *m = sd_calloc(1, sizeof *m);
    int rc = lm_gguf_load(path, &m->m, &m->tok, &e);
    if (rc) {
        free(m);
        return done(err, rc, &e);
    }
    sd_api_count(1);
    *out = m;
    return done(err, SD_OK, NULL);
}

SERENDIP_API void serendip_model_free(serendip_model *m) {
    if (!m) return;
    tok_free(m->tok);
    lm_model_free(&m->m);
    free(m);
    sd_api_count(-1);
}

/* Tokenizes text into a fresh array (caller frees); specials parsed when specials is 1. */
static int32_t *encode(const lm_tokenizer *t, const char *text, int specials, int *n, sd_err *err) {
    size_t len = strlen(text), cap = len + 2, got = 0;
    int32_t *ids = sd_malloc(sizeof(int32_t) * cap);
    if (tok_encode(t, text, len, ids, cap, &got, specials) != SD_OK) {
        free(ids);
        sd_fail(err, SD_ERR_DATA, "cannot tokenize \"%.60s\"", text);
        return NULL;
    }
    *n = (int)got;
    return ids;
}

#define GEN_MAX (1 << 20) /* bound of n and max_new, as `serendip lm generate` */
#define GEN_ROWS 256      /* rows per batched forward, the command's default */

SERENDIP_API int serendip_model_generate(const serendip_model *m, const char *prompt, int n, float temperature, int top_k,
                                         float top_p, uint64_t seed, int max_new, char **json, serendip_error *err) {
    *json = NULL;
    if (!m || !prompt) return usage(err, "generate: no model or no prompt given");
    if (n < 1 || max_new < 1 || n > GEN_MAX || max_new > GEN_MAX) return usage(err, "generate: n and max_new must be in 1..1048576");
    if (!(temperature >= 0) || top_k < 0 || !(top_p > 0)) return usage(err, "generate: temperature and top_k must be >= 0 and top_p > 0");
    sd_err e = {0};
    int plen;
    int32_t *ids = encode(m->tok, prompt, 1, &plen, &e);
    if (!ids) return done(err, e.code, &e);
    if (plen == 0) {
        free(ids);
        return usage(err, "generate: the prompt is empty");
    }
    lm_infer *inf = lm_infer_new(&m->m, GEN_ROWS, plen + max_new, &e);
    if (!inf) {
        free(ids);
        return done(err, e.code, &e);
    }
    lm_sampler s = {.temperature = temperature, .top_k = top_k, .top_p = top_p, .seed = seed};
    lm_gen_out g = {0};
    const int32_t *pp = ids;
    int rc = lm_generate(inf, &pp, &plen, 1, n, &s, max_new, tok_eos(m->tok), &g, &e);
    if (!rc) {
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; i < n; i++) {
            const int32_t *t = g.tokens + (size_t)i * g.max_new;
            size_t len = 0;
            tok_decode(m->tok, t, (size_t)g.len[i], NULL, 0, &len);
            char *txt = sd_malloc(len + 1);
            tok_decode(m->tok, t, (size_t)g.len[i], txt, len, &len);
            txt[len] = 0;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "text", txt); /* cJSON escapes control bytes; invalid UTF-8 passes through */
            cJSON_AddItemToObject(o, "ids", cJSON_CreateIntArray(t, g.len[i]));
            cJSON_AddNumberToObject(o, "tokens", g.len[i]);
            cJSON_AddBoolToObject(o, "stopped", g.stopped[i]);
            cJSON_AddNumberToObject(o, "logprob", g.logprob[i]);
            cJSON_AddItemToArray(a, o);
            free(txt);
        }
        *json = cJSON_PrintUnformatted(a);
        cJSON_Delete(a);
        lm_gen_out_free(&g);
    }
    lm_infer_free(inf);
    free(ids);
    return done(err, rc, &e);
}

SERENDIP_API int serendip_model_score(const serendip_model *m, const char *prompt, const char *const *conts, int n,
                                      double *out, serendip_error *err) {
    if (!m || !prompt || (n > 0 && (!conts || !out)) || n < 0) return usage(err, "score: missing model, prompt or continuations");
    if (n == 0) return done(err, SD_OK, NULL);
    sd_err e = {0};
    int plen, rc = SD_OK, maxc = 1;
    int32_t *pid = encode(m->tok, prompt, 1, &plen, &e);
    if (!pid) return done(err, e.code, &e);
    int32_t **cid = sd_calloc((size_t)n, sizeof *cid);
    int *cl = sd_calloc((size_t)n, sizeof *cl);
    for (int i = 0; i < n && !rc; i++) {
        if (!conts[i]) rc = sd_fail(&e, SD_ERR_USAGE, "score: continuation %d is NULL", i);
        else if (!(cid[i] = encode(m->tok, conts[i], 0, &cl[i], &e))) rc = e.code;
        else if (cl[i] > maxc) maxc = cl[i];
    }
    if (!rc && plen == 0) rc = sd_fail(&e, SD_ERR_USAGE, "score: the prompt is empty");
    lm_infer *inf = rc ? NULL : lm_infer_new(&m->m, GEN_ROWS, plen + maxc, &e);
    if (!rc && !inf) rc = e.code;
    float *f = sd_calloc((size_t)n, sizeof *f);
    if (!rc) rc = lm_score_continuations(inf, pid, plen, (const int32_t *const *)cid, cl, n, f, &e);
    if (!rc)
        for (int i = 0; i < n; i++) out[i] = f[i];
    lm_infer_free(inf);
    for (int i = 0; i < n; i++) free(cid[i]);
    free(cid), free(cl), free(f), free(pid);
    return done(err, rc, &e);
}
