/* retrieve.h - restricted item retrieval: the low level of the hierarchical plan (file
 * `retrieval.bin`; format in docs/serving.md).
 *
 * The model is a sequential skip-gram over item sequences (prod2vec, Grbovic et al. 2015;
 * item2vec, Barkan & Koenigstein 2016) with FORWARD windows: each train-window event predicts the
 * next `window` items of the same user with negative sampling, so that an item's input vector U
 * points at the output vectors V (+ bias b) of the items that tend to FOLLOW it. A user's recent
 * items r_1..r_L (oldest first) score a candidate j as
 *     s(j) = b_j + sum_l decay^(L-l) <U[r_l], V[j]> / sum_l decay^(L-l)
 * and rt_recommend ranks only the items of one level-2 cluster (the planned novel cluster), never
 * returning an item the caller marks as seen. */
#ifndef SERENDIP_RETRIEVE_H
#define SERENDIP_RETRIEVE_H

#include <cjson/cJSON.h>

#include "serendip/base.h"
#include "serendip/dataset.h"
#include "serendip/taxonomy.h"

#define RT_FILE "retrieval.bin"
#define RT_MAGIC "SDRETR\0\0" /* 8 bytes with the NULs */
#define RT_VERSION 1
#define RT_HEADER_SIZE 128
#define RT_DIM_MAX 256
#define RT_K_MAX 200     /* most items rt_recommend returns */
#define RT_RECENT_MAX 64 /* most recent items a query uses */

typedef struct {
    int dim;          /* embedding dimension (default 48) */
    int window;       /* forward window: following events each event predicts (default 10) */
    int negatives;    /* negative samples per positive pair (default 5) */
    int epochs;       /* passes over the train sequences (default 10) */
    float lr;         /* initial SGD step, decayed linearly to lr/100 (default 0.025, as word2vec) */
    float decay;      /* recency weight ratio between consecutive recent items (default 0.8) */
    int recent;       /* recent items used by a query (default 10, <= RT_RECENT_MAX) */
    uint64_t seed;
} rt_options;

#define RT_OPTIONS_DEFAULT \
    ((rt_options){.dim = 48, .window = 10, .negatives = 5, .epochs = 10, .lr = 0.025f, .decay = 0.8f, .recent = 10, .seed = 1})

typedef struct {
    int32_t dim, window, negatives, epochs, recent;
    float lr, decay;
    uint64_t seed;
    int64_t n_items;
    int64_t train_end;       /* events with ts < train_end were used (INT64_MAX: all; a per-user
                              * split: its largest user boundary, each user's own window was used) */
    int64_t n_train_events;
    uint64_t items_hash;     /* sd_hash64 of the dataset's raw item ids: the model fits one catalogue */
    const float *U;          /* (n_items, dim) input ("history") vectors */
    const float *V;          /* (n_items, dim) output ("next item") vectors */
    const float *bias;       /* (n_items) output bias */
    const int64_t *pop;      /* (n_items) train-window event count: the popularity baseline */
    sd_map map;              /* rt_open: the mapping; rt_train_data: {0} and heap below */
    void *heap;
} rt_model;

typedef struct {
    int32_t item;            /* dense item index */
    float score;
} rt_scored;

/* Trains on each user's train-window events (ds_split_train_end; s NULL: all events), deterministic for a seed.
 * out owns its memory (rt_close). SD_ERR_USAGE on bad options, SD_ERR_DATA when no sequence has
 * two events. */
int rt_train_data(const ds_dataset *d, const ds_split *s, const rt_options *o, rt_model *out, sd_err *err);
int rt_save(const rt_model *m, const char *path, sd_err *err); /* atomic */
/* mmaps and validates; refuses foreign, truncated and wrong-version files. */
int rt_open(rt_model *m, const char *path, sd_err *err);
void rt_close(rt_model *m);
/* Hash of the raw item ids of d, compared with m->items_hash to refuse a model of another dataset. */
uint64_t rt_items_hash(const ds_dataset *d);

/* The stage on a workspace (called by `serendip train`): loads dataset.bin and split.json (absent:
 * all events, logged), trains, writes ws/retrieval.bin. o NULL = defaults. */
int rt_train(const char *ws, const rt_options *o, sd_err *err);

/* A user's history as every caller of the rankers takes it (serve, explore): rt_user_recent
 * writes the items of dense user u's last min(limit, events) events, oldest first, into recent
 * (room for limit <= RT_RECENT_MAX) and returns the count; rt_user_seen writes the user's distinct
 * items sorted ascending into seen (room for the user's event count) and returns the count. */
int rt_user_recent(const ds_dataset *d, int64_t u, int limit, int32_t *recent);
int64_t rt_user_seen(const ds_dataset *d, int64_t u, int32_t *seen);
/* 1 when item is in seen[0..n) (ascending, as rt_user_seen writes it): a binary search. */
static inline int rt_seen_has(const int32_t *seen, int64_t n, int32_t item) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (seen[mid] < item) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && seen[lo] == item;
}

/* Top-k items of cluster (level-2, in tax) for a user whose recent items are recent[0..n_recent)
 * (dense ids, oldest first; out-of-range ids are ignored), excluding every item of seen[0..n_seen)
 * (dense ids sorted ascending). Best first; ties by ascending item index. Writes out[0..k) and
 * returns the count (fewer when the cluster has fewer unseen items), or -1 on a bad cluster.
 * No recent items: the scores are the biases. Allocation-free; thread-safe. k <= RT_K_MAX. */
int rt_recommend(const rt_model *m, const tx_taxonomy *tax, const int32_t *recent, int n_recent, int32_t cluster,
                 const int32_t *seen, int64_t n_seen, int k, rt_scored *out);
/* The same in two steps, for several clusters of one request: the query vector once, then one
 * ranking per cluster. seen_mask (bit j of word j/64 set = item j seen, n_items bits) replaces the
 * sorted seen list when non-NULL (a bit test instead of a binary search per member). */
typedef struct {
    float q[RT_DIM_MAX];     /* (dim) recency-weighted mean of the recent items' U rows */
    int has_q;               /* 0 when no recent item was valid: scores are the biases */
} rt_query;
void rt_query_init(const rt_model *m, const int32_t *recent, int n_recent, rt_query *q);
int rt_rank(const rt_model *m, const tx_taxonomy *tax, const rt_query *q, int32_t cluster, const int32_t *seen,
            int64_t n_seen, const uint64_t *seen_mask, int k, rt_scored *out);
/* The serving layout: every cluster's members with their V row and bias copied contiguously, so
 * that ranking a cluster streams one block of memory instead of gathering scattered rows. Scores
 * equal rt_rank's up to float rounding (the dot products are summed in another order). */
typedef struct {
    int32_t n_clusters, dim;
    uint64_t items_hash;
    int64_t *off;            /* (n_clusters + 1) cluster c's members are [off[c], off[c+1]) */
    int32_t *items;          /* (members) item index */
    float *vb;               /* (members, dim + 1) V row then bias */
} rt_index;
int rt_index_build(const rt_model *m, const tx_taxonomy *tax, rt_index *ix, sd_err *err);
void rt_index_free(rt_index *ix);
/* rt_rank over the index; seen_mask may be NULL (nothing seen). */
int rt_rank_indexed(const rt_index *ix, const rt_query *q, int32_t cluster, const uint64_t *seen_mask, int k, rt_scored *out);
/* The popularity-within-cluster baseline with the same contract (score = train event count). */
int rt_recommend_popular(const rt_model *m, const tx_taxonomy *tax, int32_t cluster, const int32_t *seen,
                         int64_t n_seen, int k, rt_scored *out);

/* ---------------------------------------------------------------- evaluation
 * Next-item prediction on the test window, restricted to the served cluster: every positive
 * test-window event (ds_split_of(s, u, ts) == DS_TEST) on a clustered item the user had not seen before is a
 * case; the served cluster is the target's cluster (the plan's choice, taken as given), the
 * history is every earlier event of the user (recent = its last m->recent items, seen = all its
 * items). Both rankers rank ALL unseen items of the cluster (no sampled negatives); ties go to the
 * lower item index. HR@k = 1 when the target is in the top k; NDCG@k = 1 / log2(rank + 1) (rank
 * from 1). Cases with no history are counted and skipped. Means over cases. */
typedef struct {
    int64_t cases;           /* evaluated test events */
    int64_t skipped_no_history;
    int at;                  /* the cut-off k (10) */
    double hr, ndcg;         /* the model */
    double pop_hr, pop_ndcg; /* popularity within the cluster */
    double mean_candidates;  /* mean number of unseen items ranked per case */
} rt_eval;

int rt_evaluate(const rt_model *m, const ds_dataset *d, const ds_split *s, const tx_taxonomy *tax,
                const ds_positive_rule *rule, int at, rt_eval *out, sd_err *err);
/* The same on a workspace (dataset.bin, split.json, taxonomy.bin, retrieval.bin). */
int rt_evaluate_ws(const char *ws, int at, rt_eval *out, sd_err *err);
/* {"cases":..,"at":10,"model":{"hr":..,"ndcg":..},"popularity":{..},"mean_candidates":..}; caller frees. */
cJSON *rt_eval_json(const rt_eval *e);

#endif
