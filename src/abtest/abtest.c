/* abtest.c - the simulated live A/B experiment: arms, the day loop, the exploration slot served by
 * an_answer (the function behind /v1/explore), the refreshes, the metrics with bootstrap intervals
 * and abtest.json (abtest.h; docs/abtest.md).
 *
 * Hand-written because it is the experiment design itself: no library runs a closed-loop
 * experiment against a hidden truth. The statistics are a plain percentile bootstrap over users
 * (arms resampled independently), small enough to state here rather than depend on a package. */
#include "serendip/abtest.h"
#include "serendip/answer.h"
#include "serendip/journeys.h"
#include "serendip/mpi.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define AB_DAY_EVENTS 64 /* events of one user-day: 3 sessions x 5 items + the slot, with room */

void ab_opts_default(ab_opts *o) {
    memset(o, 0, sizeof *o);
    o->days = 28;
    o->refresh_every = 7;
    o->seed = 1;
    o->bootstrap = 200;
    o->refresh_n = 4;
    o->refresh_steps = 150;
    o->refresh_lr = 5e-4f;
    o->slot_candidates = 8;
    ab_model_default(&o->model);
}

const char *ab_arm_kind_name(int kind) {
    static const char *const names[] = {"control", "explore", "explore-refresh", "oracle", "disliked"};
    return kind >= 0 && kind <= AB_ARM_DISLIKED ? names[kind] : "unknown";
}

int ab_parse_arms(const char *spec, const char *ws, ab_arm *arms, int *n, sd_err *err) {
    *n = 0;
    char *s = sd_strdup(spec ? spec : ""), *save = NULL;
    int rc = SD_OK, n_refresh = 0;
    for (char *tok = strtok_r(s, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        if (*n == AB_MAX_ARMS) {
            rc = sd_fail(err, SD_ERR_USAGE, "--arms: at most %d arms", AB_MAX_ARMS);
            break;
        }
        ab_arm *a = &arms[*n];
        memset(a, 0, sizeof *a);
        char *colon = strchr(tok, ':');
        const char *table = colon ? colon + 1 : NULL;
        if (colon) *colon = 0;
        int kind = -1;
        for (int k = 0; k <= AB_ARM_DISLIKED; k++)
            if (!strcmp(tok, ab_arm_kind_name(k))) kind = k;
        if (kind < 0) {
            rc = sd_fail(err, SD_ERR_USAGE,
                         "--arms: \"%s\" is not an arm (control, explore[:TABLE], explore-refresh[:TABLE], oracle, disliked)", tok);
            break;
        }
        int explore = kind == AB_ARM_EXPLORE || kind == AB_ARM_EXPLORE_REFRESH;
        if (table && !explore) {
            rc = sd_fail(err, SD_ERR_USAGE, "--arms: a %s arm takes no table (\"%s:%s\")", tok, tok, table);
            break;
        }
        if (table && !*table) {
            rc = sd_fail(err, SD_ERR_USAGE, "--arms: \"%s:\" names no table", tok);
            break;
        }
        n_refresh += kind == AB_ARM_EXPLORE_REFRESH;
        a->kind = kind;
        if (explore) {
            const char *t = table ? table : TBL_FILE;
            if (t[0] == '/') snprintf(a->table, sizeof a->table, "%s", t);
            else snprintf(a->table, sizeof a->table, "%s/%s", ws ? ws : ".", t);
        }
        if (table) snprintf(a->name, sizeof a->name, "%s:%s", tok, table);
        else snprintf(a->name, sizeof a->name, "%s", tok);
        /* unique names: A/A runs have two control arms */
        int same = 1;
        size_t L0 = strlen(a->name);
        for (int i = 0; i < *n; i++)
            same += strncmp(arms[i].name, a->name, L0) == 0 && (arms[i].name[L0] == 0 || arms[i].name[L0] == '#');
        if (same > 1) {
            size_t L = strlen(a->name);
            snprintf(a->name + (L < 56 ? L : 56), sizeof a->name - (L < 56 ? L : 56), "#%d", same);
        }
        (*n)++;
    }
    free(s);
    if (rc) return rc;
    if (*n < 2) return sd_fail(err, SD_ERR_USAGE, "--arms: at least two arms are needed (e.g. control,control for an A/A test)");
    if (n_refresh > 1) return sd_fail(err, SD_ERR_USAGE, "--arms: at most one explore-refresh arm");
    return SD_OK;
}

/* ================================================================ the metrics */

enum {
    M_POS,        /* positive playback rate: positives / events */
    M_COMPLETION, /* completion rate: mean watch fraction of the events */
    M_DAU,        /* share of the arm's users active that day (final: mean over days) */
    M_WAU,        /* share active in the last 7 days (final: at the end) */
    M_UEUC,       /* unique user-cluster positive engagement pairs per user, cumulative */
    M_INTERESTS,  /* interests per user at the end of the day */
    M_SLOT_POS,   /* the exploration slot's positive rate */
    M_USER_N,     /* metrics above are per-user sums: bootstrapped by resampling users */
    M_DISC_CLUSTERS = M_USER_N, /* discoverable corpus: hidden interests over a positive threshold (disc_count) */
    M_DISC_ITEMS, /* items over a positive threshold, so far */
    M_N
};
static const char *const m_key[M_N] = {"pos_rate", "completion", "dau", "active_7d", "ueuc",
                                       "interests", "slot_pos_rate", "disc_clusters", "disc_items"};
static const char *const m_name[M_N] = {
    "positive playback rate", "completion rate (mean watch fraction)", "daily active users (share)",
    "active users in the last 7 days (share)", "unique user-cluster positive pairs per user", "interests per user",
    "exploration slot positive rate", "discoverable corpus: interests with >= 50 positives / 1000 users",
    "discoverable corpus: items with >= 5 positives / 1000 users"};

/* What one user did on one day. */
typedef struct {
    uint16_t events, pos, slot_events, slot_pos, new_pairs;
    uint8_t active, n_int;
    float watch;
} ab_ud;

/* A metric's value with its interval and the relative difference to the reference arm. */
typedef struct {
    double v, lo, hi, rel, rel_lo, rel_hi;
    double alt, alt_lo, alt_hi; /* the refresh arm against the (first) explore arm: does the refresh help? */
} ab_val;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile interval of x[0..n) (finite values only; sorts a copy): [2.5%, 97.5%]. */
static void percentile_ci(const double *x, int n, double *lo, double *hi) {
    double *c = sd_malloc(sizeof(double) * (size_t)(n ? n : 1));
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) c[m++] = x[i];
    if (m < 2) {
        *lo = *hi = NAN;
        free(c);
        return;
    }
    qsort(c, (size_t)m, sizeof *c, cmp_double);
    double pl = 0.025 * (m - 1), ph = 0.975 * (m - 1);
    int il = (int)pl, ih = (int)ph;
    *lo = c[il] + (pl - il) * (il + 1 < m ? c[il + 1] - c[il] : 0);
    *hi = c[ih] + (ph - ih) * (ih + 1 < m ? c[ih + 1] - c[ih] : 0);
    free(c);
}

/* Per-user numerator / denominator of user-level metric m on day d (fin: over the whole
 * experiment instead). ud is the user's row of D days. */
static void user_terms(const ab_ud *ud, int D, int d, int fin, int m, double *a, double *b) {
    int d0 = fin ? 0 : d, d1 = fin ? D - 1 : d;
    *a = *b = 0;
    switch (m) {
    case M_POS:
    case M_COMPLETION:
    case M_SLOT_POS:
        for (int i = d0; i <= d1; i++) {
            *a += m == M_POS ? ud[i].pos : m == M_COMPLETION ? ud[i].watch : ud[i].slot_pos;
            *b += m == M_SLOT_POS ? ud[i].slot_events : ud[i].events;
        }
        break;
    case M_DAU:
        for (int i = d0; i <= d1; i++) *a += ud[i].active;
        *a /= (d1 - d0 + 1), *b = 1;
        break;
    case M_WAU: {
        int e = fin ? D - 1 : d;
        for (int i = e - 6 < 0 ? 0 : e - 6; i <= e; i++) *a = *a || ud[i].active;
        *b = 1;
        break;
    }
    case M_UEUC:
        for (int i = 0; i <= (fin ? D - 1 : d); i++) *a += ud[i].new_pairs;
        *b = 1;
        break;
    case M_INTERESTS:
        *a = ud[fin ? D - 1 : d].n_int, *b = 1;
        break;
    }
}

/* The experiment's state (one per run). */
typedef struct {
    const world_truth *t;
    const ab_opts *o;
    int D, n_arms, ref;           /* days, arms, reference arm (the first control; -1: none) */
    const ab_arm *arms;
    int64_t n;                    /* users simulated (raw ids 1..n) */
    int8_t *arm_of;               /* (n) */
    ab_user *st;                  /* (n) */
    uint64_t *seen;               /* (n, wi) items met: the dataset's and the experiment's */
    uint64_t *engaged;            /* (n, ws) subtopics met */
    uint64_t *pos_sub;            /* (n, ws) subtopics positively engaged during the experiment */
    uint64_t *exp_cl;             /* (n, wc) taxonomy clusters met during the experiment (serving arms) */
    int64_t wi, wsub, wc;
    ab_ud *ud;                    /* (n, D) */
    sd_vec *logs;                 /* (n) ab_logged */
    ab_items ix;
    /* serving */
    const an_workspace *w;        /* the serving workspace of the current dataset version */
    const tbl_table *table[AB_MAX_ARMS]; /* each explore arm's current table */
    int64_t version;              /* dataset version served (0: the workspace's) */
    const int32_t *item_cluster;  /* (n_items raw - 1 -> taxonomy cluster) or NULL */
    int32_t m;                    /* taxonomy clusters */
    int64_t t0;                   /* unix s of day 0, 00:00 */
    int n_errors;
    sd_err first_err;
} ab_state;

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c) {
    return sd_mix64(a ^ sd_mix64(b + 0x9E3779B97F4A7C15ULL * (c + 1)));
}

static int bit_get(const uint64_t *b, int64_t i) { return (int)((b[i >> 6] >> (i & 63)) & 1); }
static void bit_set(uint64_t *b, int64_t i) { b[i >> 6] |= 1ull << (i & 63); }

/* The slot of an explore arm: an_answer over the arm's table for this user; the first answered
 * cluster the user has not met during the experiment (the serving log knows the experiment only up
 * to the last refresh), and its first items the user has not seen. Returns the events appended. */
static int slot_explore(ab_state *S, int64_t u, int arm, const ab_user *s, int64_t ts, sd_rng *r, ab_event *ev, int n,
                        int session) {
    an_query q = {.kind = AN_QUERY_USER, .user = u + 1, .clusters = S->o->slot_candidates,
                  .items_per = S->o->model.slot_items + 4};
    if (q.clusters > AN_CLUSTERS_MAX) q.clusters = AN_CLUSTERS_MAX;
    if (q.items_per > AN_ITEMS_MAX) q.items_per = AN_ITEMS_MAX;
    if (ds_find_user(S->w->ds, u + 1) < 0) return n; /* not in the serving log: nothing to answer */
    an_result res;
    sd_err err = {0};
    if (an_answer(S->w, S->table[arm], S->version, &q, &res, &err)) {
#pragma omp critical(ab_err)
        {
            if (!S->n_errors++) S->first_err = err;
        }
        return n;
    }
    cJSON *root = cJSON_Parse(res.json);
    an_result_free(&res);
    const cJSON *nov = cJSON_GetObjectItemCaseSensitive(root, "novel"), *c;
    const uint64_t *met = S->exp_cl + u * S->wc;
    uint64_t *seen = S->seen + u * S->wi;
    int shown = 0;
    cJSON_ArrayForEach(c, nov) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
        if (!cJSON_IsNumber(id) || id->valueint < 0 || id->valueint >= S->m || bit_get(met, id->valueint)) continue;
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(c, "items"), *it;
        cJSON_ArrayForEach(it, items) {
            const cJSON *iid = cJSON_GetObjectItemCaseSensitive(it, "id");
            if (!cJSON_IsNumber(iid)) continue;
            int64_t item = (int64_t)iid->valuedouble;
            int32_t sub = world_item_subtopic(S->t, item);
            if (sub < 0 || bit_get(seen, item - 1) || n >= AB_DAY_EVENTS) continue;
            bit_set(seen, item - 1);
            ab_event *o = &ev[n++];
            o->item = item, o->sub = sub, o->session = session, o->source = AB_SLOT, o->ts = ts;
            o->pos = (uint8_t)world_response_given(S->t, u + 1, s->sub, s->w, s->n, sub, r, &o->rating, &o->watch);
            ts += 120 + (int64_t)sd_rng_below(r, 600);
            if (++shown == S->o->model.slot_items) break;
        }
        if (shown) break;
    }
    cJSON_Delete(root);
    return n;
}

/* The slot of a truth arm: the never-met subtopic with the highest (oracle) or lowest (disliked)
 * like probability under the user's current state, and slot_items of its unseen items. */
static int slot_truth(ab_state *S, int64_t u, int good, const ab_user *s, int64_t ts, sd_rng *r, ab_event *ev, int n,
                      int session) {
    const uint64_t *eng = S->engaged + u * S->wsub;
    int32_t best = -1;
    double bp = 0;
    for (int32_t x = 0; x < S->t->n_sub; x++) {
        if (bit_get(eng, x)) continue;
        double p = world_like_prob_given(S->t, u + 1, s->sub, s->w, s->n, x);
        if (best < 0 || (good ? p > bp : p < bp)) best = x, bp = p;
    }
    if (best < 0) return n;
    uint64_t *seen = S->seen + u * S->wi;
    for (int k = 0; k < S->o->model.slot_items && n < AB_DAY_EVENTS; k++) {
        int64_t item = ab_items_pick(&S->ix, best, seen, r);
        if (item < 0) break;
        bit_set(seen, item - 1);
        ab_event *o = &ev[n++];
        o->item = item, o->sub = best, o->session = session, o->source = AB_SLOT, o->ts = ts;
        o->pos = (uint8_t)world_response_given(S->t, u + 1, s->sub, s->w, s->n, best, r, &o->rating, &o->watch);
        ts += 120 + (int64_t)sd_rng_below(r, 600);
    }
    return n;
}

/* Day d of user u: visit or not, organic sessions, the arm's slot, the update, the record. */
static void simulate_user_day(ab_state *S, int64_t u, int d) {
    sd_rng r;
    sd_rng_seed(&r, mix3(S->o->seed, (uint64_t)u, (uint64_t)d));
    ab_user *s = &S->st[u];
    ab_ud *rec = &S->ud[u * S->D + d];
    memset(rec, 0, sizeof *rec);
    ab_event ev[AB_DAY_EVENTS];
    int n = 0;
    int arm = S->arm_of[u], kind = S->arms[arm].kind;
    if (sd_rng_uniform(&r) < ab_visit_prob(s)) {
        int64_t day_start = S->t0 + (int64_t)d * 86400;
        int session = 0;
        n = ab_simulate_organic(S->t, &S->o->model, &S->ix, u, s, S->seen + u * S->wi, S->engaged + u * S->wsub,
                                day_start, &r, ev, 0, AB_DAY_EVENTS - 8, &session);
        int64_t ts = day_start + 22 * 3600; /* the slot's session, after the organic ones */
        if (kind == AB_ARM_EXPLORE || kind == AB_ARM_EXPLORE_REFRESH) n = slot_explore(S, u, arm, s, ts, &r, ev, n, session);
        else if (kind == AB_ARM_ORACLE || kind == AB_ARM_DISLIKED)
            n = slot_truth(S, u, kind == AB_ARM_ORACLE, s, ts, &r, ev, n, session);
        rec->active = 1;
    }
    uint64_t *ps = S->pos_sub + u * S->wsub, *eng = S->engaged + u * S->wsub;
    for (int i = 0; i < n; i++) {
        const ab_event *e = &ev[i];
        bit_set(eng, e->sub);
        rec->events++;
        rec->pos += e->pos;
        rec->watch += e->watch;
        if (e->source == AB_SLOT) rec->slot_events++, rec->slot_pos += e->pos;
        if (e->pos && !bit_get(ps, e->sub)) bit_set(ps, e->sub), rec->new_pairs++;
        if (S->exp_cl && S->item_cluster) {
            int32_t c = S->item_cluster[e->item - 1];
            if (c >= 0 && c < S->m) bit_set(S->exp_cl + u * S->wc, c);
        }
        ab_logged *l = sd_vec_push(&S->logs[u]);
        *l = (ab_logged){e->item, e->ts, e->rating, e->watch, (int16_t)d, e->pos, e->source == AB_SLOT};
    }
    ab_user_apply_day(&S->o->model, s, ev, n);
    rec->n_int = (uint8_t)s->n;
}

/* ================================================================ statistics and abtest.json */

/* Values of every metric for every arm, per day (d < D) and over the experiment (d = D). */
typedef struct {
    ab_val *v; /* (n_arms, D + 1, M_N) */
} ab_table;

static ab_val *tab_at(const ab_state *S, ab_table *T, int a, int d, int m) {
    return &T->v[((int64_t)a * (S->D + 1) + d) * M_N + m];
}

/* The discoverable corpus (Su et al., WSDM 2024): items and hidden interests whose positive
 * engagements in the arm reach a threshold proportional to the arm's size, AB_DISC_ITEM (resp.
 * AB_DISC_CLUSTER) per 1,000 users, so that arms of unequal size compare fairly and the count is not
 * saturated by the long tail of single positives (every item of the demo world gets one). */
#define AB_DISC_ITEM 5.0     /* positives per 1,000 users for an item to count */
#define AB_DISC_CLUSTER 50.0 /* positives per 1,000 users for a hidden interest to count */

/* Counts over the users idx[0..ni) (with repetition) by day d; cnt_sub / cnt_item are scratch. */
static void disc_count(const ab_state *S, const int64_t *idx, int64_t ni, int d, uint32_t *cnt_sub, uint32_t *cnt_item,
                       double *nc, double *nitems) {
    memset(cnt_sub, 0, sizeof(uint32_t) * (size_t)S->t->n_sub);
    memset(cnt_item, 0, sizeof(uint32_t) * (size_t)S->t->n_items);
    for (int64_t i = 0; i < ni; i++) {
        const ab_logged *l = S->logs[idx[i]].data;
        for (size_t k = 0; k < S->logs[idx[i]].len; k++) {
            if (!l[k].pos || l[k].day > d) continue;
            cnt_sub[S->t->item_sub[l[k].item - 1]]++;
            cnt_item[l[k].item - 1]++;
        }
    }
    double ti = ceil(AB_DISC_ITEM * (double)ni / 1000.0), tc = ceil(AB_DISC_CLUSTER * (double)ni / 1000.0);
    int64_t c = 0, it = 0;
    for (int32_t x = 0; x < S->t->n_sub; x++) c += cnt_sub[x] >= tc;
    for (int64_t x = 0; x < S->t->n_items; x++) it += cnt_item[x] >= ti;
    *nc = (double)c, *nitems = (double)it;
}

static void compute_stats(const ab_state *S, ab_table *T) {
    int D = S->D, A = S->n_arms, B = S->o->bootstrap > 1 ? S->o->bootstrap : 2;
    T->v = sd_calloc((size_t)A * (D + 1) * M_N, sizeof(ab_val));
    /* the users of each arm */
    int64_t *cnt = sd_calloc((size_t)A, sizeof(int64_t)), **members = sd_calloc((size_t)A, sizeof(int64_t *));
    for (int64_t u = 0; u < S->n; u++) cnt[S->arm_of[u]]++;
    for (int a = 0; a < A; a++) members[a] = sd_malloc(sizeof(int64_t) * (size_t)(cnt[a] ? cnt[a] : 1)), cnt[a] = 0;
    for (int64_t u = 0; u < S->n; u++) members[S->arm_of[u]][cnt[S->arm_of[u]]++] = u;
    /* replicate values: rep[((a * (D+1) + d) * M_N + m) * B + b]; b = B is the point estimate */
    size_t nrep = (size_t)A * (D + 1) * M_N;
    double *rep = sd_malloc(sizeof(double) * nrep * (size_t)(B + 1));
    /* every user's terms, per day and over the experiment: (n, D + 1, M_USER_N, 2) */
    double *terms = sd_malloc(sizeof(double) * (size_t)S->n * (size_t)(D + 1) * M_USER_N * 2);
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < S->n; u++) {
        double *tu = terms + (size_t)u * (size_t)(D + 1) * M_USER_N * 2;
        for (int d = 0; d <= D; d++)
            for (int m = 0; m < M_USER_N; m++) {
                double x, y;
                user_terms(S->ud + u * D, D, d < D ? d : D - 1, d == D, m, &x, &y);
                tu[(d * M_USER_N + m) * 2] = x, tu[(d * M_USER_N + m) * 2 + 1] = y;
            }
    }
#pragma omp parallel
    {
        int64_t nmax = 1;
        for (int a = 0; a < A; a++) nmax = cnt[a] > nmax ? cnt[a] : nmax;
        int64_t *idx = sd_malloc(sizeof(int64_t) * (size_t)nmax);
        uint32_t *msub = sd_calloc((size_t)S->t->n_sub, sizeof(uint32_t)), *mitem = sd_calloc((size_t)S->t->n_items, sizeof(uint32_t));
        double *sa = sd_malloc(sizeof(double) * (size_t)(D + 1) * M_USER_N), *sb = sd_malloc(sizeof(double) * (size_t)(D + 1) * M_USER_N);
#pragma omp for schedule(dynamic, 1) collapse(2)
        for (int a = 0; a < A; a++)
            for (int b = 0; b <= B; b++) {
                sd_rng r;
                sd_rng_seed(&r, mix3(S->o->seed ^ 0x424F4F54ULL, (uint64_t)a, (uint64_t)b)); /* "BOOT" */
                int64_t na = cnt[a];
                for (int64_t i = 0; i < na; i++) idx[i] = b == B ? members[a][i] : members[a][sd_rng_below(&r, (uint32_t)na)];
                memset(sa, 0, sizeof(double) * (size_t)(D + 1) * M_USER_N);
                memset(sb, 0, sizeof(double) * (size_t)(D + 1) * M_USER_N);
                for (int64_t i = 0; i < na; i++) {
                    const double *tu = terms + (size_t)idx[i] * (size_t)(D + 1) * M_USER_N * 2;
                    for (int j = 0; j < (D + 1) * M_USER_N; j++) sa[j] += tu[2 * j], sb[j] += tu[2 * j + 1];
                }
                for (int d = 0; d <= D; d++) {
                    for (int m = 0; m < M_USER_N; m++)
                        rep[(((size_t)a * (D + 1) + d) * M_N + m) * (B + 1) + b] =
                            sb[d * M_USER_N + m] > 0 ? sa[d * M_USER_N + m] / sb[d * M_USER_N + m] : NAN;
                    /* the discoverable corpus: intervals only over the experiment (d = D); per day
                     * the point estimate */
                    double nc = NAN, ni = NAN;
                    if (d == D || b == B) disc_count(S, idx, na, d < D ? d : D - 1, msub, mitem, &nc, &ni);
                    rep[(((size_t)a * (D + 1) + d) * M_N + M_DISC_CLUSTERS) * (B + 1) + b] = nc;
                    rep[(((size_t)a * (D + 1) + d) * M_N + M_DISC_ITEMS) * (B + 1) + b] = ni;
                }
            }
        free(idx), free(msub), free(mitem), free(sa), free(sb);
    }
    double *tmp = sd_malloc(sizeof(double) * (size_t)B);
    int alt = -1; /* the explore arm the refresh arm is compared with */
    for (int a = 0; a < A && alt < 0; a++)
        if (S->arms[a].kind == AB_ARM_EXPLORE) alt = a;
    for (int a = 0; a < A; a++)
        for (int d = 0; d <= D; d++)
            for (int m = 0; m < M_N; m++) {
                const double *x = rep + (((size_t)a * (D + 1) + d) * M_N + m) * (B + 1);
                ab_val *v = tab_at(S, T, a, d, m);
                v->v = x[B];
                percentile_ci(x, B, &v->lo, &v->hi);
                v->rel = v->rel_lo = v->rel_hi = v->alt = v->alt_lo = v->alt_hi = NAN;
                if (S->arms[a].kind == AB_ARM_EXPLORE_REFRESH && alt >= 0) {
                    const double *y = rep + (((size_t)alt * (D + 1) + d) * M_N + m) * (B + 1);
                    v->alt = y[B] != 0 ? x[B] / y[B] - 1 : NAN;
                    for (int b = 0; b < B; b++) tmp[b] = y[b] != 0 ? x[b] / y[b] - 1 : NAN;
                    percentile_ci(tmp, B, &v->alt_lo, &v->alt_hi);
                }
                if (S->ref < 0 || a == S->ref) continue;
                const double *y = rep + (((size_t)S->ref * (D + 1) + d) * M_N + m) * (B + 1);
                v->rel = y[B] != 0 ? x[B] / y[B] - 1 : NAN;
                for (int b = 0; b < B; b++) tmp[b] = y[b] != 0 ? x[b] / y[b] - 1 : NAN;
                percentile_ci(tmp, B, &v->rel_lo, &v->rel_hi);
            }
    free(tmp);
    free(rep);
    free(terms);
    for (int a = 0; a < A; a++) free(members[a]);
    free(members), free(cnt);
}

static cJSON *num_or_null(double x) { return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull(); }

static int write_json(const char *ws, const ab_state *S, ab_table *T, const ab_summary *sum, const char *path,
                      sd_err *err) {
    const ab_opts *o = S->o;
    int D = S->D;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "serendip-abtest");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "workspace", ws);
    cJSON_AddNumberToObject(root, "days", D);
    cJSON_AddNumberToObject(root, "refresh_every", o->refresh_every);
    cJSON_AddNumberToObject(root, "seed", (double)o->seed);
    cJSON_AddNumberToObject(root, "users", (double)S->n);
    cJSON_AddNumberToObject(root, "bootstrap", o->bootstrap);
    cJSON_AddStringToObject(root, "interval",
                            "95% percentile bootstrap over users (each arm's users resampled independently); the "
                            "relative difference to the reference arm is the ratio of two replicates minus 1");
    cJSON_AddStringToObject(root, "reference", S->ref >= 0 ? S->arms[S->ref].name : "");
    cJSON *md = cJSON_AddObjectToObject(root, "model");
    cJSON_AddNumberToObject(md, "visit_base", o->model.visit_base);
    cJSON_AddNumberToObject(md, "visit_sd", o->model.visit_sd);
    cJSON_AddNumberToObject(md, "sat_decay", o->model.sat_decay);
    cJSON_AddNumberToObject(md, "sat_gain", o->model.sat_gain);
    cJSON_AddNumberToObject(md, "sat_ref", o->model.sat_ref);
    cJSON_AddNumberToObject(md, "sat_dislike", o->model.sat_dislike);
    cJSON_AddNumberToObject(md, "sat_max", o->model.sat_max);
    cJSON_AddNumberToObject(md, "extra_session", o->model.extra_session);
    cJSON_AddNumberToObject(md, "slot_items", o->model.slot_items);
    cJSON_AddNumberToObject(md, "slot_candidates", o->slot_candidates);
    cJSON *rs = cJSON_AddObjectToObject(root, "refresh_settings");
    cJSON_AddNumberToObject(rs, "n", o->refresh_n);
    cJSON_AddNumberToObject(rs, "steps", o->refresh_steps);
    cJSON_AddNumberToObject(rs, "lr", o->refresh_lr);
    cJSON_AddNumberToObject(rs, "lora_rank", o->lora_rank);
    cJSON *ms = cJSON_AddArrayToObject(root, "metrics");
    for (int m = 0; m < M_N; m++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "key", m_key[m]);
        cJSON_AddStringToObject(x, "name", m_name[m]);
        cJSON_AddItemToArray(ms, x);
    }
    cJSON *arms = cJSON_AddArrayToObject(root, "arms");
    for (int a = 0; a < S->n_arms; a++) {
        int64_t users = 0;
        for (int64_t u = 0; u < S->n; u++) users += S->arm_of[u] == a;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", S->arms[a].name);
        cJSON_AddStringToObject(x, "kind", ab_arm_kind_name(S->arms[a].kind));
        if (S->arms[a].table[0]) cJSON_AddStringToObject(x, "table", S->arms[a].table);
        cJSON_AddNumberToObject(x, "users", (double)users);
        cJSON *fin = cJSON_AddObjectToObject(x, "final");
        for (int m = 0; m < M_N; m++) {
            const ab_val *v = tab_at(S, T, a, D, m);
            cJSON *y = cJSON_CreateObject();
            cJSON_AddItemToObject(y, "value", num_or_null(v->v));
            cJSON_AddItemToObject(y, "lo", num_or_null(v->lo));
            cJSON_AddItemToObject(y, "hi", num_or_null(v->hi));
            if (isfinite(v->rel)) {
                cJSON_AddItemToObject(y, "rel", num_or_null(v->rel));
                cJSON_AddItemToObject(y, "rel_lo", num_or_null(v->rel_lo));
                cJSON_AddItemToObject(y, "rel_hi", num_or_null(v->rel_hi));
                cJSON_AddBoolToObject(y, "significant", v->rel_lo > 0 || v->rel_hi < 0);
            }
            if (isfinite(v->alt)) {
                cJSON_AddItemToObject(y, "rel_explore", num_or_null(v->alt));
                cJSON_AddItemToObject(y, "rel_explore_lo", num_or_null(v->alt_lo));
                cJSON_AddItemToObject(y, "rel_explore_hi", num_or_null(v->alt_hi));
                cJSON_AddBoolToObject(y, "significant_explore", v->alt_lo > 0 || v->alt_hi < 0);
            }
            cJSON_AddItemToObject(fin, m_key[m], y);
        }
        cJSON *daily = cJSON_AddObjectToObject(x, "daily");
        for (int m = 0; m < M_N; m++) {
            cJSON *y = cJSON_CreateObject(), *vv = cJSON_CreateArray(), *lo = cJSON_CreateArray(), *hi = cJSON_CreateArray(),
                  *rel = cJSON_CreateArray();
            for (int d = 0; d < D; d++) {
                const ab_val *v = tab_at(S, T, a, d, m);
                cJSON_AddItemToArray(vv, num_or_null(v->v));
                cJSON_AddItemToArray(lo, num_or_null(v->lo));
                cJSON_AddItemToArray(hi, num_or_null(v->hi));
                cJSON_AddItemToArray(rel, num_or_null(v->rel));
            }
            cJSON_AddItemToObject(y, "value", vv);
            cJSON_AddItemToObject(y, "lo", lo);
            cJSON_AddItemToObject(y, "hi", hi);
            cJSON_AddItemToObject(y, "rel", rel);
            cJSON_AddItemToObject(daily, m_key[m], y);
        }
        cJSON_AddItemToArray(arms, x);
    }
    cJSON *rf = cJSON_AddArrayToObject(root, "refreshes");
    for (int i = 0; i < sum->n_refresh; i++) {
        const ab_refresh_info *r = &sum->refresh[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "after_day", r->day);
        cJSON_AddStringToObject(x, "dir", r->dir);
        cJSON_AddNumberToObject(x, "events", (double)r->events);
        cJSON_AddNumberToObject(x, "experiment_events", (double)r->experiment_events);
        cJSON_AddNumberToObject(x, "compliance", r->compliance);
        cJSON_AddNumberToObject(x, "seconds", r->seconds);
        cJSON_AddNumberToObject(x, "dataset_s", r->dataset_s);
        cJSON_AddNumberToObject(x, "journeys_s", r->journeys_s);
        cJSON_AddNumberToObject(x, "corpus_s", r->corpus_s);
        cJSON_AddNumberToObject(x, "finetune_s", r->finetune_s);
        cJSON_AddNumberToObject(x, "plan_s", r->plan_s);
        cJSON_AddItemToArray(rf, x);
    }
    cJSON *tm = cJSON_AddObjectToObject(root, "timing");
    cJSON_AddNumberToObject(tm, "threads", sum->threads);
    cJSON_AddNumberToObject(tm, "ranks", sum->ranks > 0 ? sum->ranks : 1); /* --mpi: processes, each with `threads` */
    cJSON_AddNumberToObject(tm, "user_days", (double)sum->user_days);
    cJSON_AddNumberToObject(tm, "simulate_s", sum->simulate_s);
    cJSON_AddNumberToObject(tm, "refresh_s", sum->refresh_s);
    cJSON_AddNumberToObject(tm, "stats_s", sum->stats_s);
    cJSON_AddNumberToObject(tm, "user_days_per_s", sum->user_days_per_s);
    struct rusage ru; /* the process's CPU time so far (every thread, the refreshes included) */
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cJSON_AddNumberToObject(tm, "cpu_s", (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
                                                 (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    int rc = sd_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

/* ================================================================ --mpi */

/* --mpi: gathers to rank 0 the events that every other rank's users logged on days >= since (a
 * user's log grows in day order) and appends them to rank 0's logs, so that rank 0 holds the
 * experiment's events of every user, as a single process does. Rank r owns the users
 * [n*r/size, n*(r+1)/size) (sd_mpi_range). Message of a rank: per user of its range, an int64 count
 * then that many ab_logged. Collective; identity on one process. */
static int gather_logs(ab_state *S, int since, sd_err *err) {
    if (!sd_mpi_active() || sd_mpi_size() == 1) return SD_OK;
    int64_t b, e;
    sd_mpi_range(S->n, &b, &e);
    size_t len = 0;
    int64_t *first = sd_malloc(sizeof(int64_t) * (size_t)(e - b + 1)); /* each user's first entry to send */
    for (int64_t u = b; u < e; u++) {
        const ab_logged *l = S->logs[u].data;
        int64_t k = (int64_t)S->logs[u].len;
        while (k > 0 && l[k - 1].day >= since) k--;
        first[u - b] = k;
        len += sizeof(int64_t) + ((size_t)((int64_t)S->logs[u].len - k)) * sizeof(ab_logged);
    }
    char *buf = sd_malloc(len ? len : 1), *p = buf;
    for (int64_t u = b; u < e; u++) {
        int64_t c = (int64_t)S->logs[u].len - first[u - b];
        memcpy(p, &c, sizeof c), p += sizeof c;
        memcpy(p, (const ab_logged *)S->logs[u].data + first[u - b], (size_t)c * sizeof(ab_logged)), p += (size_t)c * sizeof(ab_logged);
    }
    free(first);
    void **bufs = NULL;
    size_t *lens = NULL;
    int rc = sd_mpi_gather_bytes(buf, len, &bufs, &lens, err);
    free(buf);
    if (rc || !bufs) return rc;
    const int R = sd_mpi_size();
    for (int r = 1; r < R && !rc; r++) {
        const char *q = bufs[r], *end = q + lens[r];
        for (int64_t u = S->n * r / R; u < S->n * (r + 1) / R && !rc; u++) {
            int64_t c;
            if ((size_t)(end - q) < sizeof c) {
                rc = sd_fail(err, SD_ERR_DATA, "abtest --mpi: rank %d sent %zu bytes of events, too few for its users", r, lens[r]);
                break;
            }
            memcpy(&c, q, sizeof c), q += sizeof c;
            if (c < 0 || (size_t)(end - q) / sizeof(ab_logged) < (size_t)c) {
                rc = sd_fail(err, SD_ERR_DATA, "abtest --mpi: rank %d sent a bad event count %lld for user %lld", r, (long long)c,
                             (long long)(u + 1));
                break;
            }
            for (int64_t k = 0; k < c; k++, q += sizeof(ab_logged)) memcpy(sd_vec_push(&S->logs[u]), q, sizeof(ab_logged));
        }
        if (!rc && q != end) rc = sd_fail(err, SD_ERR_DATA, "abtest --mpi: rank %d sent %zu bytes more than its users' events", r, (size_t)(end - q));
    }
    for (int r = 0; r < R; r++) free(bufs[r]);
    free(bufs), free(lens);
    return rc;
}

/* ================================================================ the run */

int ab_run(const char *ws, const ab_arm *arms, int n_arms, const ab_opts *o, ab_summary *sum_out, sd_err *err) {
    double t_start = sd_now();
    ab_summary sum;
    memset(&sum, 0, sizeof sum);
    if (o->days < 1 || o->days > 3650) return sd_fail(err, SD_ERR_USAGE, "abtest: --days %d is not in 1..3650", o->days);
    if (o->refresh_every < 0) return sd_fail(err, SD_ERR_USAGE, "abtest: --refresh-every %d is negative", o->refresh_every);
    if (o->refresh_n < 1 || o->refresh_steps < 0 || !(o->refresh_lr > 0) || o->lora_rank < 0)
        return sd_fail(err, SD_ERR_USAGE, "abtest: --refresh-n must be >= 1, --refresh-steps >= 0, --refresh-lr > 0, --lora >= 0");
    if (o->slot_candidates < 1 || o->model.slot_items < 1 || o->model.slot_items > 8)
        return sd_fail(err, SD_ERR_USAGE, "abtest: --slot-items must be in 1..8 and the slot candidates >= 1");
    if (n_arms < 2 || n_arms > AB_MAX_ARMS) return sd_fail(err, SD_ERR_USAGE, "abtest: %d arms (2..%d)", n_arms, AB_MAX_ARMS);
    for (int a = 0; a < n_arms; a++)
        if (arms[a].kind == AB_ARM_EXPLORE_REFRESH && o->refresh_every > 0 &&
            (o->days - 1) / o->refresh_every > (int)(sizeof sum.refresh / sizeof sum.refresh[0]))
            return sd_fail(err, SD_ERR_USAGE, "abtest: --days %d with --refresh-every %d makes more than %d refreshes",
                           o->days, o->refresh_every, (int)(sizeof sum.refresh / sizeof sum.refresh[0]));
    /* --mpi: this rank reads its inputs from rws (a test hook may point one rank elsewhere); a rank
     * that fails before the day loop tells the others through sd_mpi_agree (mpi_entered: the
     * agreement before the loop is done, every later failure is agreed where it happens) */
    const char *rws = o->mpi ? sd_mpi_test_ws(ws) : ws;
    int mpi_entered = 0;
    world_truth truth;
    char *tp = sd_path_join(rws, WORLD_TRUTH_FILE);
    if (!sd_file_exists(tp)) {
        free(tp);
        int rc0 = sd_fail(err, SD_ERR_STATE,
                          "%s/%s is missing: abtest simulates users from the synthetic world's hidden truth, so it runs "
                          "only on a workspace made by `serendip world` (a log from elsewhere has no truth to answer with)",
                          rws, WORLD_TRUTH_FILE);
        return o->mpi ? sd_mpi_agree(rc0, err) : rc0;
    }
    int rc = world_truth_load(&truth, tp, err);
    free(tp);
    if (rc) return o->mpi ? sd_mpi_agree(rc, err) : rc;

    ab_state S;
    memset(&S, 0, sizeof S);
    S.t = &truth, S.o = o, S.D = o->days, S.n_arms = n_arms, S.arms = arms, S.ref = -1;
    for (int a = 0; a < n_arms && S.ref < 0; a++)
        if (arms[a].kind == AB_ARM_CONTROL) S.ref = a;
    S.n = o->max_users > 0 && o->max_users < truth.n_users ? o->max_users : truth.n_users;
    int serving = 0, refresh_arm = -1;
    for (int a = 0; a < n_arms; a++) {
        serving |= arms[a].kind == AB_ARM_EXPLORE || arms[a].kind == AB_ARM_EXPLORE_REFRESH;
        if (arms[a].kind == AB_ARM_EXPLORE_REFRESH) refresh_arm = a;
    }
    /* the serving workspace (the server's an_open) and every arm's table */
    an_workspace *w0 = NULL, *wcur = NULL;
    ds_dataset own_ds, ver_ds;
    int have_own_ds = 0, have_ver_ds = 0;
    tbl_table tables[AB_MAX_ARMS], ver_table;
    int have_table[AB_MAX_ARMS] = {0}, have_ver_table = 0;
    const ds_dataset *ds = NULL;
    int32_t *item_cluster = NULL;
    sd_progress pr;
    int pr_started = 0;
    if (serving) {
        int first = -1;
        for (int a = 0; a < n_arms && first < 0; a++)
            if (arms[a].kind == AB_ARM_EXPLORE || arms[a].kind == AB_ARM_EXPLORE_REFRESH) first = a;
        an_options ao = {.table = arms[first].table};
        if ((rc = an_open(&w0, rws, &ao, err))) goto done;
        ds = w0->ds;
        for (int a = 0; a < n_arms; a++) {
            if (arms[a].kind != AB_ARM_EXPLORE && arms[a].kind != AB_ARM_EXPLORE_REFRESH) continue;
            if ((rc = tbl_open(&tables[a], arms[a].table, err))) goto done;
            have_table[a] = 1;
            if (tables[a].p.k != w0->k || tables[a].p.n_clusters != w0->m || tables[a].p.tax_hash != w0->table->p.tax_hash) {
                rc = sd_fail(err, SD_ERR_STATE, "%s: planned for another taxonomy or context length than %s's (rerun `serendip plan`)",
                             arms[a].table, ws);
                goto done;
            }
            S.table[a] = &tables[a];
        }
        S.m = w0->m;
        item_cluster = sd_malloc(sizeof(int32_t) * (size_t)truth.n_items);
        for (int64_t i = 0; i < truth.n_items; i++) {
            int64_t di = ds_find_item(ds, i + 1);
            item_cluster[i] = di >= 0 ? w0->tax->item_cluster[di] : -1;
        }
        S.item_cluster = item_cluster;
        wcur = w0;
    } else {
        char *dp = sd_path_join(rws, DS_FILE);
        rc = ds_load(&own_ds, dp, err);
        free(dp);
        if (rc) goto done;
        have_own_ds = 1;
        ds = &own_ds;
    }
    if (refresh_arm >= 0 && o->refresh_every > 0 && S.n != ds->n_users) {
        rc = sd_fail(err, SD_ERR_USAGE, "abtest: a refresh needs every user of the world (drop --max-users)");
        goto done;
    }
    S.w = wcur;
    /* day 0 starts at the first midnight after the log and the world's window */
    int64_t tend = truth.t_end > ds->ts_max + 1 ? truth.t_end : ds->ts_max + 1;
    S.t0 = (tend + 86399) / 86400 * 86400;
    /* state */
    S.wi = (truth.n_items + 63) / 64, S.wsub = (truth.n_sub + 63) / 64, S.wc = serving ? (S.m + 63) / 64 : 0;
    S.arm_of = sd_malloc((size_t)S.n);
    S.st = sd_malloc(sizeof(ab_user) * (size_t)S.n);
    S.seen = sd_calloc((size_t)(S.n * S.wi), sizeof(uint64_t));
    S.engaged = sd_calloc((size_t)(S.n * S.wsub), sizeof(uint64_t));
    S.pos_sub = sd_calloc((size_t)(S.n * S.wsub), sizeof(uint64_t));
    if (serving) S.exp_cl = sd_calloc((size_t)(S.n * S.wc), sizeof(uint64_t));
    S.ud = sd_calloc((size_t)(S.n * S.D), sizeof(ab_ud));
    S.logs = sd_malloc(sizeof(sd_vec) * (size_t)S.n);
    ab_items_build(&truth, &S.ix);
    for (int64_t u = 0; u < S.n; u++) {
        S.arm_of[u] = (int8_t)(mix3(o->seed ^ 0x41524D53ULL, (uint64_t)(u + 1), 0) % (uint64_t)n_arms); /* "ARMS" */
        ab_user_init(&truth, &o->model, o->seed, u, &S.st[u]);
        sd_vec_init(&S.logs[u], sizeof(ab_logged));
        int64_t du = ds_find_user(ds, u + 1);
        if (du < 0) continue;
        for (int64_t e = ds->user_off[du]; e < ds->user_off[du + 1]; e++) {
            int64_t raw = ds->item_ids[ds->events[e].item];
            int32_t sub = world_item_subtopic(&truth, raw);
            if (sub < 0) continue;
            bit_set(S.seen + u * S.wi, raw - 1);
            bit_set(S.engaged + u * S.wsub, sub);
        }
    }
    int nt = o->threads > 0 ? o->threads : sd_num_threads();
    sum.threads = nt;
    /* this rank's users (every user on one process); each user-day's draws depend on (seed, user,
     * day) only, so any split gives a single process's results */
    int64_t ub = 0, ue = S.n;
    int synced = 0; /* --mpi: rank 0 holds every rank's events of the days before this one */
    if (o->mpi) {
        mpi_entered = 1;
        if ((rc = sd_mpi_agree(SD_OK, err))) goto done;
        sd_mpi_range(S.n, &ub, &ue);
        sd_log("abtest: rank %d of %d simulates users %lld..%lld of %lld", sd_mpi_rank(), sd_mpi_size(), (long long)ub + 1,
               (long long)ue, (long long)S.n);
    }
    sd_progress_start(&pr, "abtest", (int64_t)S.D * S.n);
    pr_started = 1;
    char *prev_dir = sd_strdup(ws);
    for (int d = 0; d < S.D && !rc; d++) {
        double t = sd_now();
#pragma omp parallel for schedule(dynamic, 64) num_threads(nt)
        for (int64_t u = ub; u < ue; u++) simulate_user_day(&S, u, d);
        sum.simulate_s += sd_now() - t;
        if (S.n_errors) {
            *err = S.first_err;
            sd_err_prefix(err, "abtest: day %d: %d slot answers failed, the first", d + 1, S.n_errors);
            rc = err->code ? err->code : SD_ERR_DATA;
        }
        if (o->mpi) {
            sd_mpi_test_fault("day");
            rc = sd_mpi_agree(rc, err);
        }
        if (rc) break;
        char extra[64];
        snprintf(extra, sizeof extra, "day %d/%d", d + 1, S.D);
        sd_progress_update(&pr, (int64_t)(d + 1) * S.n, extra);
        /* the refresh after day R, 2R, ... (not after the last day: nobody would be served by it) */
        if (refresh_arm >= 0 && o->refresh_every > 0 && (d + 1) % o->refresh_every == 0 && d + 1 < S.D) {
            ab_refresh_info *ri = &sum.refresh[sum.n_refresh];
            int r = sum.n_refresh + 1;
            sd_progress_end(&pr);
            /* --mpi: rank 0 gathers every rank's events, alone builds and writes the version; the
             * others wait for it, then read the version from the shared workspace */
            if (o->mpi) {
                rc = gather_logs(&S, synced, err);
                synced = d + 1;
            }
            if (!rc && (!o->mpi || sd_mpi_rank() == 0)) rc = ab_refresh(ws, prev_dir, r, d + 1, ds, S.logs, S.n, o, ri, err);
            else if (!rc) {
                memset(ri, 0, sizeof *ri);
                ri->day = d + 1;
                char *root = sd_path_join(ws, AB_DIR);
                snprintf(ri->dir, sizeof ri->dir, "%s/v%d", root, r); /* as ab_refresh names it */
                free(root);
            }
            if (o->mpi) rc = sd_mpi_agree(rc, err);
            if (rc) break;
            sum.refresh_s += ri->seconds;
            sum.n_refresh++;
            if (!o->mpi || sd_mpi_rank() == 0)
                sd_log("abtest: refresh %d after day %d: %.1f s (dataset %.1f, journeys %.1f, corpus %.1f, fine-tune %.1f, "
                       "plan %.1f); compliance %.3f",
                       r, d + 1, ri->seconds, ri->dataset_s, ri->journeys_s, ri->corpus_s, ri->finetune_s, ri->plan_s, ri->compliance);
            /* swap: the new version's log for every explore arm, its table for the refresh arm */
            ds_dataset nds;
            tbl_table ntab;
            int have_nds = 0, have_ntab = 0;
            char *p = sd_path_join(ri->dir, DS_FILE);
            rc = ds_load(&nds, p, err);
            free(p);
            have_nds = !rc;
            if (!rc) {
                p = sd_path_join(ri->dir, TBL_FILE);
                rc = tbl_open(&ntab, p, err);
                free(p);
                have_ntab = !rc;
            }
            if (o->mpi) rc = sd_mpi_agree(rc, err);
            if (rc) {
                if (have_ntab) tbl_close(&ntab);
                if (have_nds) ds_free(&nds);
                break;
            }
            /* an_new borrows the dataset: the old serving workspace goes first, then the version's
             * dataset moves into ver_ds, where it stays while served */
            if (wcur != w0) an_free(wcur);
            wcur = w0;
            if (have_ver_ds) ds_free(&ver_ds);
            if (have_ver_table) tbl_close(&ver_table);
            ver_ds = nds, have_ver_ds = 1;
            ver_table = ntab, have_ver_table = 1;
            an_workspace *nw = NULL;
            rc = an_new(&nw, &ver_ds, w0->tax, w0->rt, w0->k, &w0->rule, err);
            if (rc) nw = NULL;
            if (o->mpi) rc = sd_mpi_agree(rc, err);
            if (rc) {
                if (nw) an_free(nw);
                break;
            }
            wcur = nw;
            S.w = wcur;
            S.table[refresh_arm] = &ver_table;
            S.version = r;
            free(prev_dir);
            prev_dir = sd_strdup(ri->dir);
            sd_progress_start(&pr, "abtest", (int64_t)S.D * S.n);
        }
    }
    free(prev_dir);
    sd_progress_end(&pr);
    pr_started = 0;
    if (rc) goto done;
    if (o->mpi) { /* every rank's user-days and events to rank 0, which alone computes and writes */
        rc = sd_mpi_allgather_rows(S.ud, sizeof(ab_ud) * (size_t)S.D, S.n, err);
        if (!rc) rc = gather_logs(&S, synced, err);
        rc = sd_mpi_agree(rc, err);
        if (!rc) rc = sd_mpi_max_f64(&sum.simulate_s, 1, err); /* the slowest rank's simulation time */
        if (rc) goto done;
        sum.ranks = sd_mpi_size();
    }
    sum.users = S.n;
    sum.user_days = S.n * (int64_t)S.D;
    sum.user_days_per_s = sum.simulate_s > 0 ? (double)sum.user_days / sum.simulate_s : 0;
    for (int64_t i = 0; i < S.n * (int64_t)S.D; i++) sum.active_user_days += S.ud[i].active;
    if (o->mpi && sd_mpi_rank() != 0) {
        sum.n_arms = n_arms;
    } else {
        double t = sd_now();
        ab_table T;
        compute_stats(&S, &T);
        sum.stats_s = sd_now() - t;
        sum.n_arms = n_arms;
        sum.total_s = sd_now() - t_start;
        char *out = o->out ? sd_strdup(o->out) : sd_path_join(ws, AB_FILE);
        snprintf(sum.out, sizeof sum.out, "%s", out);
        rc = write_json(ws, &S, &T, &sum, out, err);
        free(out);
        free(T.v);
    }
done:
    if (o->mpi && !mpi_entered && rc) rc = sd_mpi_agree(rc, err); /* failed before the loop: tell the others */
    if (pr_started) sd_progress_end(&pr);
    if (S.logs)
        for (int64_t u = 0; u < S.n; u++) sd_vec_free(&S.logs[u]);
    free(S.logs), free(S.arm_of), free(S.st), free(S.seen), free(S.engaged), free(S.pos_sub), free(S.exp_cl), free(S.ud);
    ab_items_free(&S.ix);
    free(item_cluster);
    if (wcur && wcur != w0) an_free(wcur);
    if (w0) an_free(w0);
    if (have_ver_ds) ds_free(&ver_ds);
    if (have_ver_table) tbl_close(&ver_table);
    for (int a = 0; a < AB_MAX_ARMS; a++)
        if (have_table[a]) tbl_close(&tables[a]);
    if (have_own_ds) ds_free(&own_ds);
    world_truth_free(&truth);
    sum.total_s = sd_now() - t_start;
    if (sum_out) *sum_out = sum;
    return rc;
}
