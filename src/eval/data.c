/* data.c - the evaluation data of a workspace: per-user contexts (last K distinct positive train
 * clusters, jr_ctx_push), clusters seen before the test window, test-window engagement, train
 * popularity, transitions and the support of each context, and test-window collective feedback.
 *
 * The map from cluster tuples to counts is written by hand: an open-addressing hash map (the
 * tuple space M^(K+1) is too big for an array and no Debian C library offers a plain int-tuple
 * map). Definitions: docs/evaluation.md. */
#include "serendip/eval.h"
#include "serendip/journeys.h"

#include <stdlib.h>
#include <string.h>

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

/* qsort_r order of cluster ids by descending count pop[] (the context), ties by lower id. */
static int cmp_pop_desc(const void *a, const void *b, void *pop_) {
    const int64_t *pop = pop_;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (pop[x] != pop[y]) return pop[x] > pop[y] ? -1 : 1;
    return (x > y) - (x < y);
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
                    if (len == K && !jr_ctx_has(ctx, len, c)) { /* (context, next) */
                        memcpy(t, ctx, sizeof(int32_t) * (size_t)K);
                        t[K] = c;
                        ev_tuple_add(&d->trans, t, K + 1, 1, 0);
                        ev_tuple_add(&d->trans_from, t, K, 1, 0);
                    }
                    if (len >= 1 && ctx[len - 1] != c) { /* (last, next) */
                        t[0] = ctx[len - 1];
                        t[1] = c;
                        ev_tuple_add(&d->trans1, t, 2, 1, 0);
                    }
                    jr_ctx_push(ctx, &len, K, c);
                }
            }
            if (w != DS_TEST) {
                useen[c] = 1;
            } else { /* test window: collective-feedback exposure under the running context */
                if (tlen == K && !jr_ctx_has(tctx, tlen, c)) {
                    int32_t t[EV_MAX_K + 1];
                    memcpy(t, tctx, sizeof(int32_t) * (size_t)K);
                    t[K] = c;
                    ev_tuple_add(&d->feedback, t, K + 1, 1, pos);
                }
                cnt_n[c]++;
                cnt_p[c] += pos;
                n_test++;
            }
            if (pos) jr_ctx_push(tctx, &tlen, K, c); /* the running context over all windows */
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
    d->support = sd_malloc(sizeof(int64_t) * (users.len + 1));
    for (size_t i = 0; i < users.len; i++) {
        int64_t unused;
        ev_tuple_get(d->trans_from, (const int32_t *)ctxs.data + i * (size_t)K, K, &d->support[i], &unused);
    }
    d->by_pop = sd_malloc(sizeof(int32_t) * (size_t)(M ? M : 1));
    for (int32_t c = 0; c < M; c++) d->by_pop[c] = c;
    qsort_r(d->by_pop, (size_t)M, sizeof(int32_t), cmp_pop_desc, d->pop);
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
    free(d->by_pop);
    free(d->support);
    free(d->like);
    ev_tuple_map_free(d->trans);
    ev_tuple_map_free(d->trans1);
    ev_tuple_map_free(d->trans_from);
    ev_tuple_map_free(d->feedback);
    memset(d, 0, sizeof *d);
}

