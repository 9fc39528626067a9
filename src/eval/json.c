/* json.c - metrics.json: the evaluation's figures, arms (name, kind, n), paired comparisons and
 * the breakdown by context support, written with cJSON. Layout: docs/evaluation.md. */
#include "serendip/eval.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static void add_interval(cJSON *o, const char *k, double v, double lo, double hi) {
    cJSON *x = cJSON_AddObjectToObject(o, k);
    add_num(x, "value", v);
    add_num(x, "lo", lo);
    add_num(x, "hi", hi);
}

/* First arm of the kind, or -1. */
static int arm_of_kind(const ev_arm *arms, int n_arms, int kind) {
    for (int a = 0; a < n_arms; a++)
        if (arms[a].kind == kind) return a;
    return -1;
}

/* One arm's object: name, kind, n, table, served, fallback, metrics, like_frac (res: this
 * arm's result; rnd/orc: the random and oracle results of the same users, or NULL). */
static cJSON *arm_json(const ev_data *d, const ev_arm *arm, const ev_result *r, const ev_result *rnd,
                       const ev_result *orc) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "name", arm->name);
    cJSON_AddStringToObject(x, "kind", ev_kind_name(arm->kind));
    cJSON_AddNumberToObject(x, "n", arm->n);
    if (arm->file) cJSON_AddStringToObject(x, "table", arm->file);
    cJSON_AddNumberToObject(x, "users", (double)r->users);
    cJSON_AddNumberToObject(x, "served", (double)r->served);
    cJSON_AddNumberToObject(x, "fallback_users", (double)r->fallback_users);
    add_num(x, "fallback_share", r->users ? (double)r->fallback_users / (double)r->users : NAN);
    cJSON *mv = cJSON_AddObjectToObject(x, "metrics");
    for (int m = 0; m < EV_N_METRICS; m++) {
        if (m == EV_LIKE && !d->like) continue;
        cJSON *v = cJSON_AddObjectToObject(mv, ev_metric_infos[m].key);
        add_num(v, "value", r->value[m]);
        add_num(v, "lo", r->lo[m]);
        add_num(v, "hi", r->hi[m]);
        cJSON_AddNumberToObject(v, "n_users", (double)r->n[m]);
    }
    if (d->like && rnd && orc) {
        double v, lo, hi;
        ev_like_frac(r, rnd, orc, &v, &lo, &hi);
        add_interval(x, "like_frac", v, lo, hi);
    }
    return x;
}

/* The array of every arm's object, like_frac against the random and oracle arms of the same r. */
static cJSON *arms_json(const ev_data *d, const ev_arm *arms, int n_arms, const ev_result *r) {
    int rnd = arm_of_kind(arms, n_arms, EV_KIND_RANDOM), orc = arm_of_kind(arms, n_arms, EV_KIND_ORACLE);
    cJSON *as = cJSON_CreateArray();
    for (int a = 0; a < n_arms; a++)
        cJSON_AddItemToArray(as, arm_json(d, &arms[a], &r[a], rnd >= 0 ? &r[rnd] : NULL, orc >= 0 ? &r[orc] : NULL));
    return as;
}

/* {"arm", "against", "metrics": {key: {diff, lo, hi}}} of every metric. */
static cJSON *comparison_json(const ev_data *d, const ev_arm *a, const ev_arm *b, const ev_result *ra,
                              const ev_result *rb) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "arm", a->name);
    cJSON_AddStringToObject(x, "against", b->name);
    cJSON_AddStringToObject(x, "against_kind", ev_kind_name(b->kind));
    cJSON *mv = cJSON_AddObjectToObject(x, "metrics");
    for (int m = 0; m < EV_N_METRICS; m++) {
        if (m == EV_LIKE && !d->like) continue;
        double df, lo, hi;
        ev_compare(ra, rb, m, &df, &lo, &hi);
        cJSON *v = cJSON_AddObjectToObject(mv, ev_metric_infos[m].key);
        add_num(v, "diff", df);
        add_num(v, "lo", lo);
        add_num(v, "hi", hi);
    }
    return x;
}

/* The arms every LLM arm a is compared with: backoff, feedback, and for kind llm the smallest n. */
static int rivals(const ev_arm *arms, int n_arms, int a, int *out) {
    int n = 0;
    if (!ev_kind_is_llm(arms[a].kind)) return 0;
    int bo = arm_of_kind(arms, n_arms, EV_KIND_BACKOFF), fb = arm_of_kind(arms, n_arms, EV_KIND_FEEDBACK), small = -1;
    for (int i = 0; i < n_arms; i++)
        if (arms[i].kind == EV_KIND_LLM && arms[i].n > 0 && (small < 0 || arms[i].n < arms[small].n)) small = i;
    if (bo >= 0) out[n++] = bo;
    if (fb >= 0) out[n++] = fb;
    if (arms[a].kind == EV_KIND_LLM && small >= 0 && small != a) out[n++] = small;
    return n;
}

/* The "by_support" array: each bucket's bounds, users, every arm with its metrics and the paired
 * like-probability (else pos_rate) difference of each LLM arm against backoff and feedback. */
static cJSON *by_support_json(const ev_data *d, const ev_arm *arms, int n_arms, const ev_result *bs,
                              const int64_t *n_support) {
    cJSON *arr = cJSON_CreateArray();
    const int metric = d->like ? EV_LIKE : EV_POS_POOLED;
    for (int b = 0; b < EV_N_SUPPORT; b++) {
        const ev_result *r = bs + (size_t)b * n_arms;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", ev_support_buckets[b].name);
        cJSON_AddNumberToObject(x, "lo", (double)ev_support_buckets[b].lo);
        if (ev_support_buckets[b].hi == INT64_MAX) cJSON_AddNullToObject(x, "hi");
        else cJSON_AddNumberToObject(x, "hi", (double)ev_support_buckets[b].hi);
        cJSON_AddNumberToObject(x, "users", (double)n_support[b]);
        cJSON_AddItemToObject(x, "arms", arms_json(d, arms, n_arms, r));
        cJSON *cs = cJSON_AddArrayToObject(x, "comparisons");
        for (int a = 0; a < n_arms; a++) {
            int against[3], nr = rivals(arms, n_arms, a, against);
            for (int j = 0; j < nr; j++) {
                if (arms[against[j]].kind == EV_KIND_LLM) continue; /* only backoff and feedback here */
                double df, lo, hi;
                ev_compare(&r[a], &r[against[j]], metric, &df, &lo, &hi);
                cJSON *c = cJSON_CreateObject();
                cJSON_AddStringToObject(c, "arm", arms[a].name);
                cJSON_AddStringToObject(c, "against", arms[against[j]].name);
                cJSON_AddStringToObject(c, "against_kind", ev_kind_name(arms[against[j]].kind));
                cJSON_AddStringToObject(c, "metric", ev_metric_infos[metric].key);
                add_num(c, "diff", df);
                add_num(c, "lo", lo);
                add_num(c, "hi", hi);
                cJSON_AddItemToArray(cs, c);
            }
        }
        cJSON_AddItemToArray(arr, x);
    }
    return arr;
}

char *ev_metrics_json(const ev_data *d, const ev_meta *meta, const ev_arm *arms, const ev_result *res, int n_arms,
                      const ev_result *by_support, const int64_t *n_support, const ev_opts *o) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "version", 2);
    cJSON_AddStringToObject(root, "workspace", meta && meta->dataset ? meta->dataset : "");
    cJSON_AddNumberToObject(root, "k", d->K);
    cJSON_AddNumberToObject(root, "clusters", d->M);
    cJSON_AddNumberToObject(root, "serve", o->serve);
    cJSON_AddNumberToObject(root, "depth", o->depth > 0 ? o->depth : d->M);
    cJSON_AddNumberToObject(root, "min_users", o->min_users);
    cJSON_AddNumberToObject(root, "bootstrap", o->bootstrap);
    cJSON_AddNumberToObject(root, "seed", (double)o->seed);
    cJSON_AddStringToObject(root, "ci", "95% bootstrap over users: percentile interval shifted by the bootstrap bias estimate");
    cJSON_AddStringToObject(root, "filter", "each user is served the first clusters of the arm's ranking never "
                                            "interacted with before the test window; then the most popular unseen "
                                            "train clusters (fallback)");
    cJSON *u = cJSON_AddObjectToObject(root, "users");
    cJSON_AddNumberToObject(u, "total", (double)d->n_users_total);
    cJSON_AddNumberToObject(u, "evaluated", d->n_users);
    cJSON_AddNumberToObject(u, "skipped_short_context", (double)d->n_skip_context);
    cJSON_AddNumberToObject(u, "skipped_no_test_event", (double)d->n_skip_test);
    cJSON *ms = cJSON_AddArrayToObject(root, "metrics");
    for (int m = 0; m < EV_N_METRICS; m++) {
        if (m == EV_LIKE && !d->like) continue;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "key", ev_metric_infos[m].key);
        cJSON_AddStringToObject(x, "name", ev_metric_infos[m].name);
        cJSON_AddBoolToObject(x, "higher_is_better", ev_metric_infos[m].higher_better);
        cJSON_AddItemToArray(ms, x);
    }
    cJSON_AddItemToObject(root, "arms", arms_json(d, arms, n_arms, res));
    cJSON *cmp = cJSON_AddArrayToObject(root, "comparisons");
    for (int a = 0; a < n_arms; a++) {
        int against[3], nr = rivals(arms, n_arms, a, against);
        for (int j = 0; j < nr; j++)
            cJSON_AddItemToArray(cmp, comparison_json(d, &arms[a], &arms[against[j]], &res[a], &res[against[j]]));
    }
    if (by_support && n_support) cJSON_AddItemToObject(root, "by_support", by_support_json(d, arms, n_arms, by_support, n_support));
    if (meta && meta->cluster_size) {
        cJSON *cs = cJSON_AddArrayToObject(root, "cluster_sizes");
        for (int32_t c = 0; c < d->M; c++) cJSON_AddItemToArray(cs, cJSON_CreateNumber(meta->cluster_size[c]));
    }
    if (meta && meta->cluster_desc) {
        cJSON *cs = cJSON_AddArrayToObject(root, "cluster_descriptions");
        for (int32_t c = 0; c < d->M; c++) cJSON_AddItemToArray(cs, cJSON_CreateString(meta->cluster_desc[c]));
    }
    if (meta && meta->retrieval) cJSON_AddItemToObject(root, "retrieval", cJSON_Duplicate(meta->retrieval, 1));
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s) sd_oom(0);
    char *out = sd_asprintf("%s\n", s);
    cJSON_free(s);
    return out;
}

