/* align_refs.c - what the alignment model's held-out scores are compared with, beyond the pooled
 * rate it was trained on (see md_tuple_refs in models.h):
 *  - the TRUTH, on the synthetic world: for a (context, candidate) tuple, the mean true
 *    like-probability of the candidate over every user who had that context in the train window
 *    (whether or not they met the candidate): what a per-context table should maximise;
 *  - the two HALVES of the pooled rate: the tuple's users split in two by a hash of the user, each
 *    half's pooled rate. Their rank correlation is the split-half reliability of the label, from
 *    which the noise ceiling of any model's correlation with the pooled rate follows.
 * The exposures are found by the same walk journeys.c makes for collective feedback (train
 * window, running context of the last K distinct positive clusters, an event on a cluster outside
 * a full context is an exposure), restricted to the requested tuples. */
#include "serendip/models.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/dataset.h"
#include "serendip/journeys.h"
#include "serendip/taxonomy.h"
#include "serendip/world.h"

typedef struct {
    int64_t key;  /* context index * M + candidate */
    int64_t i;    /* the caller's tuple index */
} tuple_key;

static int cmp_key(const void *a, const void *b) {
    int64_t x = ((const tuple_key *)a)->key, y = ((const tuple_key *)b)->key;
    return (x > y) - (x < y);
}

/* Majority hidden subtopic of each cluster's items (-1 when none is known). */
static void cluster_subtopics(const world_truth *t, const ds_dataset *ds, const tx_taxonomy *tx, int32_t *sub) {
    const int32_t M = tx->n_clusters;
    int32_t *cnt = sd_calloc((size_t)M * (size_t)t->n_sub, sizeof *cnt);
    for (int64_t i = 0; i < ds->n_items; i++) {
        int32_t c = tx->item_cluster[i], s = world_item_subtopic(t, ds->item_ids[i]);
        if (c >= 0 && c < M && s >= 0 && s < t->n_sub) cnt[(size_t)c * t->n_sub + s]++;
    }
    for (int32_t c = 0; c < M; c++) {
        sub[c] = -1;
        int32_t best = 0;
        for (int32_t s = 0; s < t->n_sub; s++)
            if (cnt[(size_t)c * t->n_sub + s] > best) best = cnt[(size_t)c * t->n_sub + s], sub[c] = s;
    }
    free(cnt);
}

int md_tuple_refs(const char *ws, int k, const int32_t *ctx, const int32_t *cand, int64_t n, double *truth,
                  double *half_a, double *half_b, sd_err *err) {
    for (int64_t i = 0; i < n; i++) truth[i] = half_a[i] = half_b[i] = NAN;
    ds_dataset ds = {0};
    tx_taxonomy tx = {0};
    jr_journeys jr = {0};
    ds_split split = {0};
    world_truth wt = {0};
    int have_split = 0, have_truth = 0, rc;
    char *p = sd_path_join(ws, DS_FILE);
    rc = ds_load(&ds, p, err);
    free(p);
    if (rc) return rc;
    p = sd_path_join(ws, TX_FILE);
    rc = tx_load(&tx, p, err);
    free(p);
    if (!rc) {
        p = sd_path_join(ws, JR_FILE);
        rc = jr_load(&jr, p, err);
        free(p);
    }
    if (!rc && jr.k != k) rc = sd_fail(err, SD_ERR_DATA, "%s: journeys have K = %d, the tuples K = %d", ws, jr.k, k);
    if (!rc) {
        p = sd_path_join(ws, DS_SPLIT_FILE);
        if (sd_file_exists(p)) have_split = !(rc = ds_split_load(&split, p, err));
        free(p);
    }
    if (!rc) {
        p = sd_path_join(ws, WORLD_TRUTH_FILE);
        if (sd_file_exists(p)) have_truth = !(rc = world_truth_load(&wt, p, err));
        free(p);
    }
    if (rc) goto done;

    const int32_t M = tx.n_clusters;
    tuple_key *keys = sd_malloc(((size_t)n + 1) * sizeof *keys);
    int64_t nk = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t ci = jr_context_index(ctx + i * k, k, M);
        if (ci < 0 || cand[i] < 0 || cand[i] >= M) continue;
        keys[nk++] = (tuple_key){ci * M + cand[i], i};
    }
    qsort(keys, (size_t)nk, sizeof *keys, cmp_key);
    int64_t *exp = sd_calloc(2 * ((size_t)n + 1), sizeof *exp), *pos = sd_calloc(2 * ((size_t)n + 1), sizeof *pos);
    int64_t *users = sd_calloc((size_t)n + 1, sizeof *users); /* users averaged into truth[i] */
    double *like_sum = sd_calloc((size_t)n + 1, sizeof *like_sum);
    int32_t *sub = sd_malloc(((size_t)M + 1) * sizeof *sub);
    if (have_truth) cluster_subtopics(&wt, &ds, &tx, sub);
    /* the distinct contexts of the tuples, and the users who had each (CSR built after the walk) */
    tuple_key *ckeys = sd_malloc(((size_t)nk + 1) * sizeof *ckeys);
    int64_t nck = 0;
    for (int64_t a = 0; a < nk; a++) {
        int64_t ci = keys[a].key / M;
        if (!nck || ckeys[nck - 1].key != ci) {
            ckeys[nck] = (tuple_key){ci, nck};
            nck++;
        }
    }
    int64_t *ctx_last = sd_malloc(((size_t)nck + 1) * sizeof *ctx_last);
    for (int64_t a = 0; a < nck; a++) ctx_last[a] = -1;
    sd_vec had; /* (context slot, user) pairs */
    sd_vec_init(&had, 2 * sizeof(int64_t));
    for (int64_t u = 0; u < ds.n_users; u++) {
        int32_t c_ctx[JR_K_MAX];
        int len = 0;
        const int half = (int)(sd_mix64((uint64_t)ds.user_ids[u]) & 1);
        const int64_t end = have_split ? ds_split_train_end(&split, u) : INT64_MAX;
        for (int64_t e = ds.user_off[u]; e < ds.user_off[u + 1]; e++) {
            const ds_event *ev = &ds.events[e];
            if (ev->ts >= end) break;
            if (ev->item < 0 || ev->item >= tx.n_items) continue;
            int32_t c = tx.item_cluster[ev->item];
            if (c < 0 || c >= M) continue;
            int is_pos = ds_is_positive(&jr.rule, ev);
            if (len == k && !jr_ctx_has(c_ctx, len, c)) {
                tuple_key want = {jr_context_index(c_ctx, k, M) * M + c, 0};
                const tuple_key *hit = bsearch(&want, keys, (size_t)nk, sizeof *keys, cmp_key);
                if (hit) {
                    int64_t i = hit->i;
                    exp[2 * i + half]++;
                    pos[2 * i + half] += is_pos;
                }
            }
            if (!is_pos) continue;
            jr_ctx_push(c_ctx, &len, k, c);
            if (len == k) { /* u has this context now */
                tuple_key want = {jr_context_index(c_ctx, k, M), 0};
                const tuple_key *hit = bsearch(&want, ckeys, (size_t)nck, sizeof *ckeys, cmp_key);
                if (hit && ctx_last[hit->i] != u) {
                    ctx_last[hit->i] = u;
                    int64_t *pr = sd_vec_push(&had);
                    pr[0] = hit->i;
                    pr[1] = u;
                }
            }
        }
    }
    /* truth: each tuple's candidate averaged over the users who had its context (had is in walk
     * order: sort it by context slot into a CSR) */
    if (have_truth) {
        qsort(had.data, had.len, 2 * sizeof(int64_t), cmp_key); /* the first int64 of a pair is the slot */
        int64_t *off = sd_calloc((size_t)nck + 1, sizeof *off);
        const int64_t *pr = had.data;
        for (size_t h = 0; h < had.len; h++) off[pr[2 * h] + 1]++;
        for (int64_t a = 0; a < nck; a++) off[a + 1] += off[a];
        for (int64_t a = 0; a < nk; a++) {
            int64_t i = keys[a].i;
            int32_t cd = (int32_t)(keys[a].key % M);
            tuple_key want = {keys[a].key / M, 0};
            const tuple_key *hit = bsearch(&want, ckeys, (size_t)nck, sizeof *ckeys, cmp_key);
            if (!hit || sub[cd] < 0) continue;
            for (int64_t h = off[hit->i]; h < off[hit->i + 1]; h++) {
                double lp = world_like_prob(&wt, ds.user_ids[pr[2 * h + 1]], sub[cd]);
                if (lp >= 0) like_sum[i] += lp, users[i]++;
            }
        }
        free(off);
    }
    for (int64_t i = 0; i < n; i++) {
        if (have_truth && users[i] > 0) truth[i] = like_sum[i] / (double)users[i];
        if (exp[2 * i]) half_a[i] = (double)pos[2 * i] / (double)exp[2 * i];
        if (exp[2 * i + 1]) half_b[i] = (double)pos[2 * i + 1] / (double)exp[2 * i + 1];
    }
    free(keys), free(exp), free(pos), free(users), free(like_sum), free(sub), free(ckeys), free(ctx_last);
    sd_vec_free(&had);
done:
    if (have_truth) world_truth_free(&wt);
    if (have_split) ds_split_free(&split);
    jr_free(&jr);
    tx_free(&tx);
    ds_free(&ds);
    return rc;
}
