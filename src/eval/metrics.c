/* metrics.c - the metrics of an arm's served clusters, the per-user novelty filter every arm goes
 * through (ev_run), percentile-bootstrap confidence intervals over users (paired across arms),
 * like_frac, and the breakdown by context support.
 *
 * Definitions (with a worked example) are in docs/evaluation.md. The bootstrap is written by hand
 * (a dozen lines; no C statistics library in Debian does percentile bootstrap). */
#include "serendip/eval.h"
#include "serendip/mpi.h"

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

const ev_support_bucket ev_support_buckets[EV_N_SUPPORT] = {
    {"0", 0, 0},
    {"1-9", 1, 9},
    {"10+", 10, INT64_MAX},
};

int ev_support_bucket_of(int64_t support) {
    for (int b = 0; b < EV_N_SUPPORT; b++)
        if (support >= ev_support_buckets[b].lo && support <= ev_support_buckets[b].hi) return b;
    return 0; /* negative: cannot happen for counts */
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

/* The per-user numerator and denominator of every metric that is a ratio of sums over users
 * (den 0: the user does not count for it); the served-distribution metrics (coverage, entropy,
 * Gini) are left 0 here. s: the user's S served clusters (-1 = none); i: evaluated user. */
static void user_terms(const ev_data *d, const int32_t *s, int S, int64_t i, double *num, double *den) {
    const int32_t M = d->M, K = d->K;
    const int32_t *ctx = d->ctx + i * K;
    const uint8_t *seen = d->seen + i * M;
    int n_served = 0, n_novel = 0, hit = 0, expansion = 0, n_coll = 0, n_like = 0;
    int64_t in_n = 0, in_p = 0;
    double coll = 0, like = 0;
    for (int m = 0; m < EV_N_METRICS; m++) num[m] = den[m] = 0;
    for (int j = 0; j < S; j++) {
        int32_t c = s[j];
        if (c < 0) continue;
        n_served++;
        int32_t tn, tp;
        test_counts(d, i, c, &tn, &tp);
        in_n += tn;
        in_p += tp;
        if (!seen[c]) {
            n_novel++;
            if (tp > 0) hit = 1, expansion++;
        }
        int32_t t[EV_MAX_K + 1];
        memcpy(t, ctx, sizeof(int32_t) * (size_t)K);
        t[K] = c;
        int64_t fe, fp;
        ev_tuple_get(d->feedback, t, K + 1, &fe, &fp);
        if (fe > 0) coll += (double)fp / (double)fe, n_coll++;
        if (d->like && isfinite(d->like[i * M + c])) /* NaN: cluster without a known subtopic */
            like += d->like[i * M + c], n_like++;
    }
    num[EV_NOVELTY] = n_novel, den[EV_NOVELTY] = n_served;
    num[EV_HIT] = hit, den[EV_HIT] = 1;
    num[EV_POS_POOLED] = (double)in_p, den[EV_POS_POOLED] = (double)in_n;
    if (in_n) num[EV_POS_USER] = (double)in_p / (double)in_n, den[EV_POS_USER] = 1;
    num[EV_COLLECTIVE] = coll, den[EV_COLLECTIVE] = n_coll;
    num[EV_EXPANSION] = expansion, den[EV_EXPANSION] = 1;
    num[EV_LIKE] = like, den[EV_LIKE] = n_like;
}

/* The metrics over the users users[pos[r]] (r < n; pos NULL: every r), from their terms
 * (terms[r * 2M..]: num then den, indexed like users) and served lists. freq: (M) scratch. */
static void aggregate(const ev_data *d, const int32_t *list, int S, const int32_t *users, const double *terms,
                      const int32_t *pos, int64_t n, int64_t *freq, double *value, int64_t *cnt) {
    const int32_t M = d->M;
    double num[EV_N_METRICS] = {0}, den[EV_N_METRICS] = {0};
    for (int m = 0; m < EV_N_METRICS; m++) cnt[m] = 0;
    memset(freq, 0, sizeof(int64_t) * (size_t)M);
    for (int64_t r = 0; r < n; r++) {
        int64_t p = pos ? pos[r] : r;
        const double *t = terms + p * 2 * EV_N_METRICS;
        for (int m = 0; m < EV_N_METRICS; m++)
            if (t[EV_N_METRICS + m] > 0) num[m] += t[m], den[m] += t[EV_N_METRICS + m], cnt[m]++;
        const int32_t *s = list + (int64_t)users[p] * S;
        for (int j = 0; j < S; j++)
            if (s[j] >= 0) freq[s[j]]++;
    }
    for (int m = 0; m < EV_N_METRICS; m++) value[m] = den[m] > 0 ? num[m] / den[m] : NAN;
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
    cnt[EV_COVERAGE] = cnt[EV_ENTROPY] = cnt[EV_GINI] = n;
}

/* (n, 2 * EV_N_METRICS) terms of the users users[0..n) (caller frees). */
static double *terms_of(const ev_data *d, const int32_t *list, int S, const int32_t *users, int64_t n) {
    double *t = sd_malloc(sizeof(double) * 2 * EV_N_METRICS * (size_t)(n + 1));
    for (int64_t r = 0; r < n; r++) {
        double *x = t + r * 2 * EV_N_METRICS;
        user_terms(d, list + (int64_t)users[r] * S, S, users[r], x, x + EV_N_METRICS);
    }
    return t;
}

static int32_t *iota(int64_t n) {
    int32_t *u = sd_malloc(sizeof(int32_t) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++) u[i] = (int32_t)i;
    return u;
}

void ev_metrics_compute(const ev_data *d, const int32_t *served, int S, const int32_t *idx, int64_t n_idx,
                        double *value, int64_t *n) {
    int32_t *all = idx ? NULL : iota(n_idx);
    const int32_t *users = idx ? idx : all;
    double *t = terms_of(d, served, S, users, n_idx);
    int64_t *freq = sd_malloc(sizeof(int64_t) * (size_t)(d->M + 1));
    aggregate(d, served, S, users, t, NULL, n_idx, freq, value, n);
    free(freq);
    free(t);
    free(all);
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
    free(r->list);
    free(r->fell_back);
    r->boot = NULL;
    r->list = NULL;
    r->fell_back = NULL;
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

int ev_like_frac(const ev_result *arm, const ev_result *random, const ev_result *oracle, double *v, double *lo,
                 double *hi) {
    const int m = EV_LIKE;
    double span = oracle->value[m] - random->value[m];
    *v = *lo = *hi = NAN;
    if (!isfinite(span) || fabs(span) < 1e-12 || !isfinite(arm->value[m])) return 0;
    *v = (arm->value[m] - random->value[m]) / span;
    int B = arm->B;
    if (!B || random->B != B || oracle->B != B || !arm->boot || !random->boot || !oracle->boot) return 0;
    double *x = sd_malloc(sizeof(double) * (size_t)B);
    for (int b = 0; b < B; b++) {
        double a = arm->boot[(size_t)m * B + b], r = random->boot[(size_t)m * B + b], o = oracle->boot[(size_t)m * B + b];
        x[b] = fabs(o - r) > 1e-12 ? (a - r) / (o - r) : NAN;
    }
    interval(x, B, *v, -INFINITY, INFINITY, lo, hi);
    free(x);
    return isfinite(*lo) && isfinite(*hi);
}

/* ================================================================ scoring */

/* Fills r's figures from the served lists list (d->n_users, S) on users[0..n), with B resamples of
 * those users (paired: the b-th resample depends on seed, b and n only). */
static void score(const ev_data *d, const int32_t *list, const uint8_t *fell_back, int S, const int32_t *users,
                  int64_t n, int B, uint64_t seed, int mpi, ev_result *r) {
    r->B = n ? B : 0;
    r->users = n;
    r->served = r->fallback_users = 0;
    for (int64_t k = 0; k < n; k++) {
        for (int j = 0; j < S; j++) r->served += list[(int64_t)users[k] * S + j] >= 0;
        if (fell_back) r->fallback_users += fell_back[users[k]];
    }
    r->boot = sd_malloc(sizeof(double) * (size_t)(r->B + 1) * EV_N_METRICS);
    double *t = terms_of(d, list, S, users, n);
    int64_t *freq = sd_malloc(sizeof(int64_t) * (size_t)(d->M + 1));
    int32_t *pos = sd_malloc(sizeof(int32_t) * (size_t)(n + 1));
    aggregate(d, list, S, users, t, NULL, n, freq, r->value, r->n);
    /* --mpi: this rank's resamples [b0, b1), then every rank holds all (the b-th resample depends
     * on seed, b and n only, so the split changes no bit) */
    int64_t b0 = 0, b1 = r->B;
    if (mpi) sd_mpi_range(r->B, &b0, &b1);
    for (int b = (int)b0; b < (int)b1; b++) {
        int64_t nn[EV_N_METRICS];
        double v[EV_N_METRICS];
        resample(pos, n, seed, b);
        aggregate(d, list, S, users, t, pos, n, freq, v, nn);
        for (int m = 0; m < EV_N_METRICS; m++) r->boot[(size_t)m * r->B + b] = v[m];
    }
    for (int m = 0; mpi && m < EV_N_METRICS; m++) sd_mpi_allgather_rows(r->boot + (size_t)m * r->B, sizeof(double), r->B, NULL);
    for (int m = 0; m < EV_N_METRICS; m++) {
        double f, c;
        metric_range(m, &f, &c);
        interval(r->boot + (size_t)m * r->B, r->B, r->value[m], f, c, &r->lo[m], &r->hi[m]);
    }
    free(pos);
    free(freq);
    free(t);
}

/* The per-user filter: out[0..S) = the first S clusters of list[0..n) that user i never interacted
 * with before the test window, then the most popular such clusters (the fallback). Returns 1 when
 * the fallback was used, -1 on a cluster out of range. */
static int filter_user(const ev_data *d, int64_t i, const int32_t *list, int n, int S, int32_t *out) {
    const uint8_t *seen = d->seen + i * d->M;
    int got = 0, fell = 0;
    for (int j = 0; j < n && got < S; j++) {
        int32_t c = list[j];
        if (c < 0 || c >= d->M) return -1;
        int dup = 0;
        for (int q = 0; q < got; q++) dup |= out[q] == c;
        if (!seen[c] && !dup) out[got++] = c;
    }
    for (int32_t r = 0; r < d->M && got < S; r++) {
        int32_t c = d->by_pop[r];
        int dup = 0;
        for (int q = 0; q < got; q++) dup |= out[q] == c;
        if (!seen[c] && !dup) out[got++] = c, fell = 1;
    }
    for (int j = got; j < S; j++) out[j] = -1;
    return fell;
}

int ev_run(const ev_data *d, const ev_arm *arms, int n_arms, const ev_opts *o, ev_result *res, sd_err *err) {
    memset(res, 0, sizeof *res * (size_t)(n_arms > 0 ? n_arms : 0));
    if (o->serve < 1) return sd_fail(err, SD_ERR_USAGE, "--serve must be at least 1 (got %d)", o->serve);
    if (o->serve > d->M) return sd_fail(err, SD_ERR_USAGE, "--serve %d is more than the %d clusters there are", o->serve, d->M);
    if (o->bootstrap < 0) return sd_fail(err, SD_ERR_USAGE, "--bootstrap must be >= 0 (got %d)", o->bootstrap);
    if (o->depth < 0) return sd_fail(err, SD_ERR_USAGE, "--depth must be >= 0 (got %d)", o->depth);
    const int S = o->serve, K = d->K, L = o->depth > 0 ? o->depth : (d->M > 0 ? d->M : 1);
    const int64_t n = d->n_users;
    int32_t *ranked = sd_malloc(sizeof(int32_t) * (size_t)L);
    int32_t *all = iota(n);
    int rc = SD_OK;
    for (int a = 0; a < n_arms && !rc; a++) {
        ev_result *r = &res[a];
        r->S = S;
        r->list = sd_malloc(sizeof(int32_t) * (size_t)(n * S + 1));
        r->fell_back = sd_calloc((size_t)n + 1, 1);
        sd_progress prog;
        char label[96];
        snprintf(label, sizeof label, "eval %s", arms[a].name);
        sd_progress_start(&prog, label, n + 1);
        int64_t u0 = 0, u1 = n; /* --mpi: this rank's users, then every rank holds all lists */
        if (o->mpi) sd_mpi_range(n, &u0, &u1);
        for (int64_t i = u0; i < u1 && !rc; i++) {
            int got = arms[a].fn(arms[a].state, (int32_t)i, d->ctx + i * K, K, ranked, L);
            int f = got < 0 || got > L ? -1 : filter_user(d, i, ranked, got, S, r->list + i * S);
            if (f < 0) rc = sd_fail(err, SD_ERR_DATA, "arm '%s' failed for user %d", arms[a].name, d->user[i]);
            else r->fell_back[i] = (uint8_t)f;
            if ((i & 1023) == 0) sd_progress_update(&prog, i, NULL);
        }
        if (o->mpi && !(rc = sd_mpi_agree(rc, err)) && !(rc = sd_mpi_allgather_rows(r->list, sizeof(int32_t) * (size_t)S, n, err)))
            rc = sd_mpi_allgather_rows(r->fell_back, 1, n, err);
        if (!rc) score(d, r->list, r->fell_back, S, all, n, o->bootstrap, o->seed, o->mpi, r);
        sd_progress_end(&prog);
    }
    free(ranked);
    free(all);
    return rc;
}

void ev_result_subset(const ev_data *d, const ev_result *full, const int32_t *users, int64_t n, const ev_opts *o,
                      ev_result *out) {
    memset(out, 0, sizeof *out);
    out->S = full->S;
    score(d, full->list, full->fell_back, full->S, users, n, o->bootstrap, o->seed, o->mpi, out);
}

void ev_run_by_support(const ev_data *d, const ev_result *res, int n_arms, const ev_opts *o, ev_result *out,
                       int64_t n_users[EV_N_SUPPORT]) {
    int32_t *users = sd_malloc(sizeof(int32_t) * (size_t)(d->n_users + 1));
    for (int b = 0; b < EV_N_SUPPORT; b++) {
        int64_t n = 0;
        for (int32_t i = 0; i < d->n_users; i++)
            if (ev_support_bucket_of(d->support[i]) == b) users[n++] = i;
        n_users[b] = n;
        for (int a = 0; a < n_arms; a++) ev_result_subset(d, &res[a], users, n, o, &out[(size_t)b * n_arms + a]);
    }
    free(users);
}
