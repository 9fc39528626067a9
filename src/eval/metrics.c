/* metrics.c - offline evaluation: per-user contexts and test-window engagement, the metrics of
 * an arm's served clusters, percentile-bootstrap confidence intervals over users, metrics.json.
 *
 * Definitions (with a worked example) are in docs/evaluation.md. Two small pieces are written by
 * hand: an open-addressing hash map from cluster tuples to counts (the tuple space M^(K+1) is too
 * big for an array and no Debian C library offers a plain int-tuple map), and the bootstrap
 * (a dozen lines; no C statistics library in Debian does percentile bootstrap). */
#include "serendip/eval.h"
#include "serendip/journeys.h"
#include "serendip/retrieve.h"
#include "serendip/table.h"
#include "serendip/world.h"

#include <cjson/cJSON.h>
#include <glob.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const ev_metric_info ev_metric_infos[EV_N_METRICS] = {
    {"novelty", "cluster novelty rate", 1},
    {"coverage", "coverage", 1},
    {"entropy", "entropy of served clusters (bits)", 1},
    {"gini", "Gini of served clusters", 0},
    {"hit", "novel-cluster hit rate", 1},
    {"pos_rate", "positive rate in served clusters (pooled)", 1},
    {"pos_rate_user", "positive rate in served clusters (per-user mean)", 1},
    {"collective", "held-out collective score", 1},
    {"expansion", "user-interest expansion (new clusters per user)", 1},
    {"like_prob", "simulated like-probability (world)", 1},
};

/* ================================================================ tuple map */

#define TUPLE_W (EV_MAX_K + 1)

struct ev_tuple_map {
    size_t cap, len;  /* cap is a power of two */
    int32_t *keys;    /* (cap, TUPLE_W) padded with -1; keys[i*W] == INT32_MIN marks an empty slot */
    int64_t *a, *b;   /* (cap) */
};

static uint64_t tuple_hash(const int32_t *t) { return sd_hash64(t, sizeof(int32_t) * TUPLE_W, SD_HASH_SEED); }

static void tuple_pad(int32_t *dst, const int32_t *t, int len) {
    for (int i = 0; i < TUPLE_W; i++) dst[i] = i < len ? t[i] : -1;
}

static ev_tuple_map *tuple_map_new(size_t cap) {
    ev_tuple_map *m = sd_calloc(1, sizeof *m);
    m->cap = cap;
    m->keys = sd_malloc(sizeof(int32_t) * TUPLE_W * cap);
    for (size_t i = 0; i < cap; i++) m->keys[i * TUPLE_W] = INT32_MIN;
    m->a = sd_calloc(cap, sizeof(int64_t));
    m->b = sd_calloc(cap, sizeof(int64_t));
    return m;
}

/* Slot of key k (padded): the slot holding it, or the empty slot where it would go. */
static size_t tuple_slot(const ev_tuple_map *m, const int32_t *k) {
    size_t i = tuple_hash(k) & (m->cap - 1);
    for (;;) {
        const int32_t *s = m->keys + i * TUPLE_W;
        if (s[0] == INT32_MIN || !memcmp(s, k, sizeof(int32_t) * TUPLE_W)) return i;
        i = (i + 1) & (m->cap - 1);
    }
}

void ev_tuple_get(const ev_tuple_map *m, const int32_t *tuple, int len, int64_t *a, int64_t *b) {
    *a = *b = 0;
    if (!m) return;
    int32_t k[TUPLE_W];
    tuple_pad(k, tuple, len);
    size_t i = tuple_slot(m, k);
    if (m->keys[i * TUPLE_W] == INT32_MIN) return;
    *a = m->a[i];
    *b = m->b[i];
}

void ev_tuple_add(ev_tuple_map **mp, const int32_t *tuple, int len, int64_t da, int64_t db) {
    if (!*mp) *mp = tuple_map_new(1024);
    ev_tuple_map *m = *mp;
    if ((m->len + 1) * 10 > m->cap * 7) { /* grow at 70% load */
        ev_tuple_map *g = tuple_map_new(m->cap * 2);
        for (size_t i = 0; i < m->cap; i++) {
            const int32_t *s = m->keys + i * TUPLE_W;
            if (s[0] == INT32_MIN) continue;
            size_t j = tuple_slot(g, s);
            memcpy(g->keys + j * TUPLE_W, s, sizeof(int32_t) * TUPLE_W);
            g->a[j] = m->a[i];
            g->b[j] = m->b[i];
        }
        g->len = m->len;
        ev_tuple_map_free(m);
        *mp = m = g;
    }
    int32_t k[TUPLE_W];
    tuple_pad(k, tuple, len);
    size_t i = tuple_slot(m, k);
    if (m->keys[i * TUPLE_W] == INT32_MIN) {
        memcpy(m->keys + i * TUPLE_W, k, sizeof k);
        m->len++;
    }
    m->a[i] += da;
    m->b[i] += db;
}

void ev_tuple_map_free(ev_tuple_map *m) {
    if (!m) return;
    free(m->keys);
    free(m->a);
    free(m->b);
    free(m);
}

/* ================================================================ building the evaluation data */

/* The last-K-distinct recency list: ctx[0..*len) oldest first. A positive engagement with c moves
 * c to the end (most recent), dropping the oldest when more than K are held. */
static void recency_push(int32_t *ctx, int *len, int K, int32_t c) {
    int at = -1;
    for (int i = 0; i < *len; i++)
        if (ctx[i] == c) at = i;
    if (at >= 0) {
        memmove(ctx + at, ctx + at + 1, sizeof(int32_t) * (size_t)(*len - at - 1));
        ctx[*len - 1] = c;
        return;
    }
    if (*len == K) {
        memmove(ctx, ctx + 1, sizeof(int32_t) * (size_t)(K - 1));
        ctx[K - 1] = c;
    } else {
        ctx[(*len)++] = c;
    }
}

static int in_ctx(const int32_t *ctx, int len, int32_t c) {
    for (int i = 0; i < len; i++)
        if (ctx[i] == c) return 1;
    return 0;
}

int ev_data_build(ev_data *d, const ds_dataset *ds, const ds_split *split, const tx_taxonomy *tx, int K,
                  const ds_positive_rule *rule, sd_err *err) {
    memset(d, 0, sizeof *d);
    if (K < 1 || K > EV_MAX_K) return sd_fail(err, SD_ERR_USAGE, "context length K=%d is outside 1..%d", K, EV_MAX_K);
    if (tx->n_items != ds->n_items)
        return sd_fail(err, SD_ERR_DATA, "taxonomy has %lld items but the dataset has %lld (rerun 'serendip cluster')",
                       (long long)tx->n_items, (long long)ds->n_items);
    const int32_t M = tx->n_clusters;
    d->K = K;
    d->M = M;
    d->n_users_total = ds->n_users;
    d->pop = sd_calloc((size_t)M, sizeof(int64_t));
    sd_vec users, ctxs, seen, toff, tcl, tn, tp;
    sd_vec_init(&users, sizeof(int32_t));
    sd_vec_init(&ctxs, sizeof(int32_t) * K);
    sd_vec_init(&seen, (size_t)M);
    sd_vec_init(&toff, sizeof(int64_t));
    sd_vec_init(&tcl, sizeof(int32_t));
    sd_vec_init(&tn, sizeof(int32_t));
    sd_vec_init(&tp, sizeof(int32_t));
    *(int64_t *)sd_vec_push(&toff) = 0;
    uint8_t *useen = sd_malloc((size_t)M);
    int32_t *cnt_n = sd_calloc((size_t)M, sizeof(int32_t)), *cnt_p = sd_calloc((size_t)M, sizeof(int32_t));
    sd_progress prog;
    sd_progress_start(&prog, "eval data", ds->n_users);
    for (int64_t u = 0; u < ds->n_users; u++) {
        int32_t ctx[EV_MAX_K], tctx[EV_MAX_K];
        int len = 0, tlen = 0, n_test = 0;
        memset(useen, 0, (size_t)M);
        for (int64_t e = ds->user_off[u]; e < ds->user_off[u + 1]; e++) {
            const ds_event *ev = &ds->events[e];
            int32_t c = tx->item_cluster[ev->item];
            if (c < 0) continue;
            int w = ds_split_of(split, u, ev->ts), pos = ds_is_positive(rule, ev);
            if (w == DS_TRAIN) {
                d->pop[c]++;
                if (pos) {
                    int32_t t[EV_MAX_K + 1];
                    if (len == K && !in_ctx(ctx, len, c)) { /* (context, next) */
                        memcpy(t, ctx, sizeof(int32_t) * (size_t)K);
                        t[K] = c;
                        ev_tuple_add(&d->trans, t, K + 1, 1, 0);
                    }
                    if (len >= 1 && ctx[len - 1] != c) { /* (last, next) */
                        t[0] = ctx[len - 1];
                        t[1] = c;
                        ev_tuple_add(&d->trans1, t, 2, 1, 0);
                    }
                    recency_push(ctx, &len, K, c);
                }
            }
            if (w != DS_TEST) {
                useen[c] = 1;
            } else { /* test window: collective-feedback exposure under the running context */
                if (tlen == K && !in_ctx(tctx, tlen, c)) {
                    int32_t t[EV_MAX_K + 1];
                    memcpy(t, tctx, sizeof(int32_t) * (size_t)K);
                    t[K] = c;
                    ev_tuple_add(&d->feedback, t, K + 1, 1, pos);
                }
                cnt_n[c]++;
                cnt_p[c] += pos;
                n_test++;
            }
            if (pos) recency_push(tctx, &tlen, K, c); /* the running context over all windows */
        }
        if (len < K) {
            d->n_skip_context++;
        } else if (n_test == 0) {
            d->n_skip_test++;
        } else {
            *(int32_t *)sd_vec_push(&users) = (int32_t)u;
            memcpy(sd_vec_push(&ctxs), ctx, sizeof(int32_t) * (size_t)K);
            memcpy(sd_vec_push(&seen), useen, (size_t)M);
            for (int32_t c = 0; c < M; c++) {
                if (!cnt_n[c]) continue;
                *(int32_t *)sd_vec_push(&tcl) = c;
                *(int32_t *)sd_vec_push(&tn) = cnt_n[c];
                *(int32_t *)sd_vec_push(&tp) = cnt_p[c];
            }
            *(int64_t *)sd_vec_push(&toff) = (int64_t)tcl.len;
        }
        if (n_test) /* reset only the touched counters */
            for (int64_t e = ds->user_off[u]; e < ds->user_off[u + 1]; e++) {
                int32_t c = tx->item_cluster[ds->events[e].item];
                if (c >= 0) cnt_n[c] = cnt_p[c] = 0;
            }
        sd_progress_update(&prog, u + 1, NULL);
    }
    sd_progress_end(&prog);
    free(useen);
    free(cnt_n);
    free(cnt_p);
    d->n_users = (int32_t)users.len;
    d->user = users.data;
    d->ctx = ctxs.data;
    d->seen = seen.data;
    d->test_off = toff.data;
    d->test_cluster = tcl.data;
    d->test_n = tn.data;
    d->test_pos = tp.data;
    (void)err;
    return SD_OK;
}

void ev_data_free(ev_data *d) {
    free(d->user);
    free(d->ctx);
    free(d->seen);
    free(d->test_off);
    free(d->test_cluster);
    free(d->test_n);
    free(d->test_pos);
    free(d->pop);
    free(d->like);
    ev_tuple_map_free(d->trans);
    ev_tuple_map_free(d->trans1);
    ev_tuple_map_free(d->feedback);
    memset(d, 0, sizeof *d);
}

/* ================================================================ metrics */

/* Test-window (events, positives) of evaluated user i in cluster c (binary search in the CSR). */
static void test_counts(const ev_data *d, int64_t i, int32_t c, int32_t *n, int32_t *p) {
    int64_t lo = d->test_off[i], hi = d->test_off[i + 1];
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (d->test_cluster[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    if (lo < d->test_off[i + 1] && d->test_cluster[lo] == c) {
        *n = d->test_n[lo];
        *p = d->test_pos[lo];
    } else {
        *n = *p = 0;
    }
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void ev_metrics_compute(const ev_data *d, const int32_t *served, int S, const int32_t *idx, int64_t n_idx,
                        double *value, int64_t *n) {
    const int32_t M = d->M, K = d->K;
    double num[EV_N_METRICS] = {0}, den[EV_N_METRICS] = {0};
    int64_t cnt[EV_N_METRICS] = {0};
    int64_t *freq = sd_calloc((size_t)M, sizeof(int64_t));
    for (int64_t r = 0; r < n_idx; r++) {
        int64_t i = idx ? idx[r] : r;
        const int32_t *s = served + i * S;
        const int32_t *ctx = d->ctx + i * K;
        const uint8_t *seen = d->seen + i * M;
        int n_served = 0, n_novel = 0, hit = 0, expansion = 0;
        int64_t in_n = 0, in_p = 0;
        double coll = 0;
        int n_coll = 0;
        double like = 0;
        int n_like = 0;
        for (int j = 0; j < S; j++) {
            int32_t c = s[j];
            if (c < 0) continue;
            n_served++;
            freq[c]++;
            int32_t tn, tp;
            test_counts(d, i, c, &tn, &tp);
            in_n += tn;
            in_p += tp;
            if (!seen[c]) {
                n_novel++;
                if (tp > 0) {
                    hit = 1;
                    expansion++;
                }
            }
            int32_t t[EV_MAX_K + 1];
            memcpy(t, ctx, sizeof(int32_t) * (size_t)K);
            t[K] = c;
            int64_t fe, fp;
            ev_tuple_get(d->feedback, t, K + 1, &fe, &fp);
            if (fe > 0) {
                coll += (double)fp / (double)fe;
                n_coll++;
            }
            if (d->like && isfinite(d->like[i * M + c])) { /* NaN: cluster without a known subtopic */
                like += d->like[i * M + c];
                n_like++;
            }
        }
        if (n_served) {
            num[EV_NOVELTY] += n_novel;
            den[EV_NOVELTY] += n_served;
            cnt[EV_NOVELTY]++;
        }
        num[EV_HIT] += hit;
        den[EV_HIT] += 1;
        cnt[EV_HIT]++;
        if (in_n) {
            num[EV_POS_POOLED] += (double)in_p;
            den[EV_POS_POOLED] += (double)in_n;
            cnt[EV_POS_POOLED]++;
            num[EV_POS_USER] += (double)in_p / (double)in_n;
            den[EV_POS_USER] += 1;
            cnt[EV_POS_USER]++;
        }
        if (n_coll) {
            num[EV_COLLECTIVE] += coll;
            den[EV_COLLECTIVE] += n_coll;
            cnt[EV_COLLECTIVE]++;
        }
        num[EV_EXPANSION] += expansion;
        den[EV_EXPANSION] += 1;
        cnt[EV_EXPANSION]++;
        if (n_like) {
            num[EV_LIKE] += like;
            den[EV_LIKE] += n_like;
            cnt[EV_LIKE]++;
        }
    }
    for (int m = 0; m < EV_N_METRICS; m++) {
        value[m] = den[m] > 0 ? num[m] / den[m] : NAN;
        n[m] = cnt[m];
    }
    /* distribution of served clusters over all M clusters */
    int64_t total = 0, distinct = 0;
    double H = 0;
    for (int32_t c = 0; c < M; c++) total += freq[c];
    for (int32_t c = 0; c < M; c++) {
        if (!freq[c]) continue;
        distinct++;
        double p = (double)freq[c] / (double)total;
        H -= p * log2(p);
    }
    int64_t users = n_idx;
    value[EV_COVERAGE] = M ? (double)distinct / M : NAN;
    value[EV_ENTROPY] = total ? H : NAN;
    /* Gini over the ascending counts x_(1..M): G = 2 sum_i i x_(i) / (M sum x) - (M + 1) / M */
    if (total) {
        qsort(freq, (size_t)M, sizeof(int64_t), cmp_i64);
        double acc = 0;
        for (int32_t c = 0; c < M; c++) acc += (double)(c + 1) * (double)freq[c];
        value[EV_GINI] = 2.0 * acc / ((double)M * (double)total) - (double)(M + 1) / M;
    } else {
        value[EV_GINI] = NAN;
    }
    n[EV_COVERAGE] = n[EV_ENTROPY] = n[EV_GINI] = users;
    free(freq);
}

/* ================================================================ bootstrap */

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear-interpolated q-quantile of the finite values of x[n] (sorted in place); NAN if none. */
static double quantile(double *x, int n, double q) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) x[m++] = x[i];
    if (!m) return NAN;
    qsort(x, (size_t)m, sizeof(double), cmp_dbl);
    double pos = q * (m - 1);
    int lo = (int)floor(pos);
    int hi = lo + 1 < m ? lo + 1 : lo;
    return x[lo] + (pos - lo) * (x[hi] - x[lo]);
}

/* The b-th resample of n users: the same for every arm (seeded by seed and b only). */
static void resample(int32_t *idx, int64_t n, uint64_t seed, int b) {
    sd_rng r;
    sd_rng_seed(&r, seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(b + 1));
    for (int64_t i = 0; i < n; i++) idx[i] = (int32_t)sd_rng_below(&r, (uint32_t)n);
}

void ev_bootstrap_mean(const double *x, int64_t n, int B, uint64_t seed, double *lo, double *hi) {
    double *st = sd_malloc(sizeof(double) * (size_t)(B > 0 ? B : 1));
    int32_t *idx = sd_malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    for (int b = 0; b < B; b++) {
        resample(idx, n, seed, b);
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += x[idx[i]];
        st[b] = n ? s / n : NAN;
    }
    *lo = B ? quantile(st, B, 0.025) : NAN;
    *hi = B ? quantile(st, B, 0.975) : NAN;
    free(st);
    free(idx);
}

void ev_result_free(ev_result *r) {
    free(r->boot);
    r->boot = NULL;
    r->B = 0;
}

/* The 95% interval of a statistic whose point estimate is `point` from its B bootstrap values x
 * (not modified): the 2.5/97.5% percentiles shifted by the bootstrap's bias estimate
 * (point - mean of x). Plug-in statistics of the served distribution (coverage, entropy) are
 * biased low on resamples, which repeat users; unshifted, their percentile interval would not
 * even contain the estimate. Clamped to [floor, ceil]. */
static void interval(const double *x, int B, double point, double floor_, double ceil_, double *lo, double *hi) {
    *lo = *hi = NAN;
    if (!B || !isfinite(point)) return;
    double *t = sd_malloc(sizeof(double) * (size_t)B), sum = 0;
    int n = 0;
    for (int i = 0; i < B; i++)
        if (isfinite(x[i])) sum += x[i], n++;
    if (n) {
        double shift = point - sum / n;
        memcpy(t, x, sizeof(double) * (size_t)B);
        *lo = quantile(t, B, 0.025) + shift;
        memcpy(t, x, sizeof(double) * (size_t)B);
        *hi = quantile(t, B, 0.975) + shift;
        *lo = fmax(floor_, fmin(ceil_, *lo));
        *hi = fmax(floor_, fmin(ceil_, *hi));
    }
    free(t);
}

/* Natural range of a metric: rates and shares in [0, 1], entropy and expansion >= 0. */
static void metric_range(int m, double *lo, double *hi) {
    *lo = 0;
    *hi = (m == EV_ENTROPY || m == EV_EXPANSION) ? INFINITY : 1;
}

int ev_compare(const ev_result *a, const ev_result *b, int m, double *diff, double *lo, double *hi) {
    *diff = a->value[m] - b->value[m];
    *lo = *hi = NAN;
    if (!isfinite(*diff) || !a->B || a->B != b->B || !a->boot || !b->boot) return 0;
    int B = a->B;
    double *x = sd_malloc(sizeof(double) * (size_t)B);
    for (int i = 0; i < B; i++) x[i] = a->boot[(size_t)m * B + i] - b->boot[(size_t)m * B + i];
    interval(x, B, *diff, -INFINITY, INFINITY, lo, hi);
    free(x);
    return isfinite(*lo) && isfinite(*hi);
}

int ev_run(const ev_data *d, const ev_arm *arms, int n_arms, const ev_opts *o, ev_result *res, sd_err *err) {
    memset(res, 0, sizeof *res * (size_t)(n_arms > 0 ? n_arms : 0));
    if (o->serve < 1) return sd_fail(err, SD_ERR_USAGE, "--serve must be at least 1 (got %d)", o->serve);
    if (o->bootstrap < 0) return sd_fail(err, SD_ERR_USAGE, "--bootstrap must be >= 0 (got %d)", o->bootstrap);
    const int S = o->serve, B = d->n_users ? o->bootstrap : 0, K = d->K;
    const int64_t n = d->n_users;
    int32_t *served = sd_malloc(sizeof(int32_t) * (size_t)(n * S + 1));
    int32_t *idx = sd_malloc(sizeof(int32_t) * (size_t)(n + 1));
    int rc = SD_OK;
    for (int a = 0; a < n_arms && !rc; a++) {
        ev_result *r = &res[a];
        r->B = B;
        r->boot = sd_malloc(sizeof(double) * (size_t)(B + 1) * EV_N_METRICS);
        sd_progress prog;
        char label[96];
        snprintf(label, sizeof label, "eval %s", arms[a].name);
        sd_progress_start(&prog, label, n + B);
        for (int64_t i = 0; i < n && !rc; i++) {
            int32_t *out = served + i * S;
            int got = arms[a].fn(arms[a].state, d->ctx + i * K, K, out, S);
            if (got < 0 || got > S) {
                rc = sd_fail(err, SD_ERR_DATA, "arm '%s' failed for user %d", arms[a].name, d->user[i]);
                break;
            }
            for (int j = got; j < S; j++) out[j] = -1;
            r->served += got;
            if ((i & 1023) == 0) sd_progress_update(&prog, i, NULL);
        }
        if (rc) break;
        ev_metrics_compute(d, served, S, NULL, n, r->value, r->n);
        for (int b = 0; b < B; b++) {
            int64_t nn[EV_N_METRICS];
            double v[EV_N_METRICS];
            resample(idx, n, o->seed, b);
            ev_metrics_compute(d, served, S, idx, n, v, nn);
            for (int m = 0; m < EV_N_METRICS; m++) r->boot[(size_t)m * B + b] = v[m];
            sd_progress_update(&prog, n + b + 1, NULL);
        }
        for (int m = 0; m < EV_N_METRICS; m++) {
            double f, c;
            metric_range(m, &f, &c);
            interval(r->boot + (size_t)m * B, B, r->value[m], f, c, &r->lo[m], &r->hi[m]);
        }
        sd_progress_end(&prog);
    }
    free(served);
    free(idx);
    return rc;
}

/* ================================================================ metrics.json */

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* A best-of-n arm of the n sweep: an LLM table explore_n<N>.tbl. */
static int is_sweep_arm(const ev_arm *a) {
    return a->is_llm && a->n > 0 && a->file && (!strncmp(a->file, "explore_n", 9) || !strcmp(a->file, TBL_FILE));
}

char *ev_metrics_json(const ev_data *d, const ev_meta *meta, const ev_arm *arms, const ev_result *res, int n_arms,
                      const ev_opts *o) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "workspace", meta && meta->dataset ? meta->dataset : "");
    cJSON_AddNumberToObject(root, "k", d->K);
    cJSON_AddNumberToObject(root, "clusters", d->M);
    cJSON_AddNumberToObject(root, "serve", o->serve);
    cJSON_AddNumberToObject(root, "bootstrap", o->bootstrap);
    cJSON_AddNumberToObject(root, "seed", (double)o->seed);
    cJSON_AddStringToObject(root, "ci", "95% bootstrap over users: percentile interval shifted by the bootstrap bias estimate");
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
    cJSON *as = cJSON_AddArrayToObject(root, "arms");
    for (int a = 0; a < n_arms; a++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", arms[a].name);
        cJSON_AddStringToObject(x, "kind", arms[a].is_llm ? "llm" : "baseline");
        cJSON_AddNumberToObject(x, "n", arms[a].n);
        if (arms[a].file) cJSON_AddStringToObject(x, "table", arms[a].file);
        cJSON_AddNumberToObject(x, "served", (double)res[a].served);
        cJSON *mv = cJSON_AddObjectToObject(x, "metrics");
        for (int m = 0; m < EV_N_METRICS; m++) {
            if (m == EV_LIKE && !d->like) continue;
            cJSON *v = cJSON_AddObjectToObject(mv, ev_metric_infos[m].key);
            add_num(v, "value", res[a].value[m]);
            add_num(v, "lo", res[a].lo[m]);
            add_num(v, "hi", res[a].hi[m]);
            cJSON_AddNumberToObject(v, "n_users", (double)res[a].n[m]);
        }
        cJSON_AddItemToArray(as, x);
    }
    /* paired comparisons */
    int tr = -1, base = -1;
    for (int a = 0; a < n_arms; a++) {
        if (!arms[a].is_llm && !strcmp(arms[a].name, ev_baseline_names[EV_BASE_TRANSITION])) tr = a;
        if (is_sweep_arm(&arms[a]) && (base < 0 || arms[a].n < arms[base].n)) base = a;
    }
    cJSON *cmp = cJSON_AddArrayToObject(root, "comparisons");
    for (int a = 0; a < n_arms; a++) {
        int against[2] = {tr, is_sweep_arm(&arms[a]) ? base : -1};
        for (int j = 0; j < 2; j++) {
            int b = against[j];
            if (!arms[a].is_llm || b < 0 || b == a) continue;
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "arm", arms[a].name);
            cJSON_AddStringToObject(x, "against", arms[b].name);
            cJSON *mv = cJSON_AddObjectToObject(x, "metrics");
            for (int m = 0; m < EV_N_METRICS; m++) {
                if (m == EV_LIKE && !d->like) continue;
                double df, lo, hi;
                ev_compare(&res[a], &res[b], m, &df, &lo, &hi);
                cJSON *v = cJSON_AddObjectToObject(mv, ev_metric_infos[m].key);
                add_num(v, "diff", df);
                add_num(v, "lo", lo);
                add_num(v, "hi", hi);
            }
            cJSON_AddItemToArray(cmp, x);
        }
    }
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

/* ================================================================ the stage on a workspace */

/* An explore table as an arm: the table's ranked entries for the context. */
typedef struct {
    tbl_table t;
    int32_t M;
    char name[128];
    char file[128];
    int n;
} table_arm;

static int table_serve(void *state, const int32_t *ctx, int k, int32_t *out, int max) {
    const table_arm *a = state;
    const tbl_entry *e;
    int n = tbl_lookup(&a->t, jr_context_index(ctx, k, a->M), &e, NULL);
    if (n < 0) return -1;
    int got = 0;
    for (int i = 0; i < n && got < max; i++) {
        int dup = 0;
        for (int j = 0; j < got; j++) dup |= out[j] == e[i].cluster;
        if (!dup && e[i].cluster >= 0 && e[i].cluster < a->M) out[got++] = e[i].cluster;
    }
    return got;
}

typedef struct {
    ds_dataset ds;
    tx_taxonomy tx;
    ev_baseline base[3];
    table_arm *tables;
    int n_tables;
} run_owned;

/* Table order: explore_n* by n, then single_n* by n, then the rest by name. */
static int table_rank(const table_arm *a) {
    return (!strncmp(a->file, "explore_n", 9) || !strcmp(a->file, TBL_FILE)) && a->n ? 0 : !strncmp(a->file, "single_n", 8) && a->n ? 1 : 2;
}
static int cmp_tables(const void *x, const void *y) {
    const table_arm *a = x, *b = y;
    int ra = table_rank(a), rb = table_rank(b);
    if (ra != rb) return ra - rb;
    if (a->n != b->n) return a->n - b->n;
    return strcmp(a->file, b->file);
}

/* Simulated like-probability (users x clusters) from the world's truth: each cluster stands for
 * the hidden subtopic most of its items belong to. */
static int world_like(ev_data *d, const ds_dataset *ds, const tx_taxonomy *tx, const char *path, sd_err *err) {
    world_truth t;
    int rc = world_truth_load(&t, path, err);
    if (rc) return rc;
    int32_t *cnt = sd_calloc((size_t)d->M * (size_t)t.n_sub, sizeof(int32_t)), *sub = sd_malloc(sizeof(int32_t) * (size_t)d->M);
    for (int64_t i = 0; i < ds->n_items; i++) {
        int32_t c = tx->item_cluster[i], s = world_item_subtopic(&t, ds->item_ids[i]);
        if (c >= 0 && s >= 0 && s < t.n_sub) cnt[(size_t)c * t.n_sub + s]++;
    }
    for (int32_t c = 0; c < d->M; c++) {
        sub[c] = -1;
        int32_t best = 0;
        for (int32_t s = 0; s < t.n_sub; s++)
            if (cnt[(size_t)c * t.n_sub + s] > best) best = cnt[(size_t)c * t.n_sub + s], sub[c] = s;
    }
    d->like = sd_malloc(sizeof(float) * (size_t)d->n_users * (size_t)d->M);
    for (int32_t i = 0; i < d->n_users; i++)
        for (int32_t c = 0; c < d->M; c++) {
            double p = sub[c] >= 0 ? world_like_prob(&t, ds->user_ids[d->user[i]], sub[c]) : -1;
            d->like[(size_t)i * d->M + c] = p >= 0 ? (float)p : NAN;
        }
    free(cnt);
    free(sub);
    world_truth_free(&t);
    return SD_OK;
}

/* Opens table path as the next arm of own, checking it against the workspace; *K = 0 takes the
 * table's K. default_table: the planner's explore.tbl, named by its header's n. */
static int open_table(run_owned *own, const char *path, int default_table, int *K, sd_err *err) {
    table_arm *a = &own->tables[own->n_tables];
    int rc = tbl_open(&a->t, path, err);
    if (rc) return rc;
    own->n_tables++;
    const char *base = strrchr(path, '/');
    snprintf(a->file, sizeof a->file, "%s", base ? base + 1 : path);
    if (default_table) {
        char as_sweep[64];
        snprintf(as_sweep, sizeof as_sweep, "explore_n%d.tbl", a->t.p.n_samples);
        ev_arm_name_of_table(as_sweep, a->name, sizeof a->name, &a->n);
    } else {
        ev_arm_name_of_table(a->file, a->name, sizeof a->name, &a->n);
    }
    a->M = a->t.p.n_clusters;
    if (a->t.p.n_clusters != own->tx.n_clusters || a->t.p.tax_hash != tx_hash(&own->tx))
        return sd_fail(err, SD_ERR_DATA,
                       "%s: built for another taxonomy (M = %d, hash %016llx; workspace M = %d, hash %016llx); rerun 'serendip plan'",
                       path, a->t.p.n_clusters, (unsigned long long)a->t.p.tax_hash, own->tx.n_clusters,
                       (unsigned long long)tx_hash(&own->tx));
    if (a->t.p.begin != 0 || a->t.p.end != a->t.p.n_contexts)
        return sd_fail(err, SD_ERR_DATA, "%s: a shard (slots %lld..%lld), not a full table; run 'serendip plan-merge'",
                       path, (long long)a->t.p.begin, (long long)a->t.p.end);
    if (*K == 0) *K = a->t.p.k;
    if (a->t.p.k != *K)
        return sd_fail(err, SD_ERR_DATA, "%s: context length K = %d, but the evaluation uses K = %d", path, a->t.p.k, *K);
    return SD_OK;
}

int ev_eval_workspace(const char *ws, const ev_opts *o, int K, const ds_positive_rule *rule, ev_eval_run *out,
                      sd_err *err) {
    memset(out, 0, sizeof *out);
    run_owned *own = sd_calloc(1, sizeof *own);
    out->owned = own;
    char *p = sd_path_join(ws, DS_FILE);
    int rc = ds_load(&own->ds, p, err);
    free(p);
    if (rc) return rc;
    ds_split split;
    p = sd_path_join(ws, DS_SPLIT_FILE);
    if (!sd_file_exists(p)) {
        rc = sd_fail(err, SD_ERR_STATE, "%s: no temporal split (run 'serendip split'); evaluation needs a test window", p);
        free(p);
        return rc;
    }
    rc = ds_split_load(&split, p, err);
    free(p);
    if (rc) return rc;
    p = sd_path_join(ws, TX_FILE);
    rc = tx_load(&own->tx, p, err);
    free(p);
    if (rc) return rc;
    /* the LLM tables: every *.tbl in plans/, or the planner's default explore.tbl when there is none */
    char *pat = sd_path_join(ws, "plans/*.tbl"), *deflt = sd_path_join(ws, TBL_FILE);
    glob_t g;
    int gr = glob(pat, 0, NULL, &g);
    free(pat);
    size_t n_found = gr == 0 ? g.gl_pathc : 0;
    int use_default = n_found == 0 && sd_file_exists(deflt);
    own->tables = sd_calloc(n_found + 2, sizeof(table_arm));
    for (size_t i = 0; i < n_found + (size_t)use_default && !rc; i++)
        rc = open_table(own, use_default ? deflt : g.gl_pathv[i], use_default, &K, err);
    if (gr == 0) globfree(&g);
    free(deflt);
    if (rc) return rc;
    qsort(own->tables, (size_t)own->n_tables, sizeof(table_arm), cmp_tables);
    if (K == 0) K = JR_K_DEFAULT;
    rc = ev_data_build(&out->d, &own->ds, &split, &own->tx, K, rule, err);
    if (rc) return rc;
    if (out->d.n_users == 0)
        return sd_fail(err, SD_ERR_DATA, "%s: no user has both %d distinct positive train clusters and a test-window event", ws, K);
    p = sd_path_join(ws, WORLD_TRUTH_FILE);
    if (sd_file_exists(p)) {
        rc = world_like(&out->d, &own->ds, &own->tx, p, err);
        if (rc) {
            free(p);
            return rc;
        }
    }
    free(p);
    /* arms */
    out->n_arms = 3 + own->n_tables;
    out->arms = sd_calloc((size_t)out->n_arms, sizeof(ev_arm));
    out->res = sd_calloc((size_t)out->n_arms, sizeof(ev_result));
    for (int b = 0; b < 3; b++) {
        ev_baseline_init(&own->base[b], (ev_baseline_kind)b, &out->d, o->seed);
        out->arms[b] = (ev_arm){ev_baseline_names[b], 0, 0, NULL, ev_baseline_serve, &own->base[b]};
    }
    for (int t = 0; t < own->n_tables; t++) {
        table_arm *a = &own->tables[t];
        out->arms[3 + t] = (ev_arm){a->name, 1, a->n ? a->n : a->t.p.n_samples, a->file, table_serve, a};
    }
    rc = ev_run(&out->d, out->arms, out->n_arms, o, out->res, err);
    if (rc) return rc;
    /* the items level: the restricted retrieval model, when trained (docs/serving.md) */
    cJSON *rj = NULL;
    p = sd_path_join(ws, RT_FILE);
    if (sd_file_exists(p)) {
        rt_model m;
        rt_eval e;
        if (!(rc = rt_open(&m, p, err))) {
            rc = rt_evaluate(&m, &own->ds, &split, &own->tx, rule, EV_RETRIEVAL_AT, &e, err);
            rt_close(&m);
        }
        if (rc) {
            free(p);
            return rc;
        }
        rj = rt_eval_json(&e);
    }
    free(p);
    ev_meta meta = {ws, K, own->tx.n_clusters, own->tx.size, (const char *const *)own->tx.desc, rj};
    out->json = ev_metrics_json(&out->d, &meta, out->arms, out->res, out->n_arms, o);
    cJSON_Delete(rj);
    p = sd_path_join(ws, EV_METRICS_FILE);
    rc = sd_write_file_atomic(p, out->json, strlen(out->json), err);
    free(p);
    return rc;
}

void ev_eval_run_free(ev_eval_run *r) {
    run_owned *own = r->owned;
    if (own) {
        for (int b = 0; b < 3; b++)
            if (own->base[b].by_pop) ev_baseline_free(&own->base[b]);
        for (int t = 0; t < own->n_tables; t++) tbl_close(&own->tables[t].t);
        free(own->tables);
        tx_free(&own->tx);
        ds_free(&own->ds);
        free(own);
    }
    ev_data_free(&r->d);
    for (int a = 0; a < r->n_arms && r->res; a++) ev_result_free(&r->res[a]);
    free(r->arms);
    free(r->res);
    free(r->json);
    memset(r, 0, sizeof *r);
}
