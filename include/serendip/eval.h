/* eval.h - offline evaluation of exploration arms on the test window, baselines, and the report.
 *
 * An ARM is any function (user, context) -> ranked clusters (ev_serve_fn) with a kind (ev_kind):
 * the baselines, the oracles and the LLM explore tables are judged by exactly the same code.
 * ev_data_build turns a workspace's dataset, split and taxonomy into everything the metrics need
 * (per-user contexts from the train window, clusters seen before the test window, test-window
 * engagement, train popularity, transitions and context support, test-window collective
 * feedback); ev_run serves every evaluated user from every arm through the same per-user filter
 * (the first clusters of the arm's ranking the user never interacted with, then the most popular
 * unseen ones) and computes each metric with a bootstrap confidence interval over users;
 * ev_run_by_support repeats it within buckets of context support.
 * Definitions, with worked examples: docs/evaluation.md. */
#ifndef SERENDIP_EVAL_H
#define SERENDIP_EVAL_H

#include "serendip/base.h"
#include "serendip/dataset.h"
#include "serendip/journeys.h"
#include "serendip/taxonomy.h"

#define EV_MAX_K 4          /* longest context supported (the papers use K = 2) */
#define EV_METRICS_FILE "metrics.json"
#define EV_REPORT_FILE "report.html"
#define EV_RETRIEVAL_AT 10  /* cut-off of the retrieval figures in metrics.json (HR@10, NDCG@10) */

/* What an arm is, the key the report and its findings find arms by (never the display name).
 * Baselines, upper bounds (synthetic world only) and the LLM kinds, one per explore-table kind. */
typedef enum {
    EV_KIND_RANDOM = 0,     /* a random cluster */
    EV_KIND_POPULAR,        /* the most popular train cluster */
    EV_KIND_TRANSITION,     /* argmax count(next | K-context), then popularity */
    EV_KIND_BACKOFF,        /* K-context counts, then last-cluster counts, then popularity */
    EV_KIND_FEEDBACK,       /* empirical pooled positive rate of train feedback, backed off likewise */
    EV_KIND_FEEDBACK_SHRUNK, /* the same feedback, shrunk level by level from the global rate (no LM) */
    EV_KIND_ORACLE,         /* the user's true like-probability (world only) */
    EV_KIND_CONTEXT_ORACLE, /* mean true like-probability over the evaluated users of the context */
    EV_KIND_LLM,            /* explore tables, by their header's tbl_kind */
    EV_KIND_SINGLE,
    EV_KIND_LLM_FEEDBACK,
    EV_KIND_RL,
    EV_KIND_LLM_PAIRWISE,
    EV_N_KINDS
} ev_kind;
/* "random", "popular", ..., "llm_pairwise" ("unknown" outside the range). */
const char *ev_kind_name(int kind);
/* 1 for the kinds planned by language models (llm, single, llm_feedback, rl, llm_pairwise). */
int ev_kind_is_llm(int kind);
/* The arm kind of an explore table's header kind (tbl_params.kind); -1 when unknown. */
int ev_kind_of_table(int32_t tbl_kind);

/* An arm: writes up to max clusters for evaluated user `user` (index into ev_data, 0..n_users-1)
 * with context ctx (k clusters, oldest first) into out, best first; returns how many it wrote
 * (0..max), or -1 on failure. Must never return a cluster twice. Only the oracles look at user;
 * ev_run applies the per-user novelty filter to whatever the arm ranks. */
typedef int (*ev_serve_fn)(void *arm_state, int32_t user, const int32_t *ctx, int k, int32_t *out, int max);

typedef struct {
    const char *name;  /* display only, e.g. "best-of-16", "single model" (borrowed, unique) */
    int kind;          /* ev_kind */
    int n;             /* best-of-n of an LLM table (0 for baselines) */
    const char *file;  /* table file name for LLM arms, NULL for baselines (borrowed) */
    ev_serve_fn fn;
    void *state;
} ev_arm;

/* ---------------------------------------------------------------- evaluation data (data.c) */

typedef struct ev_tuple_map ev_tuple_map; /* (cluster tuple) -> (count a, count b) */

typedef struct {
    int32_t K, M;                /* context length, number of level-2 clusters */
    int64_t n_users_total;       /* users in the dataset */
    int64_t n_skip_context;      /* users with fewer than K distinct positive train clusters */
    int64_t n_skip_test;         /* users with a full context but no test-window event (in a cluster) */
    int32_t n_users;             /* evaluated users */
    int32_t *user;               /* (n_users) dataset user index */
    int32_t *ctx;                /* (n_users, K) last K distinct positive train clusters, oldest first */
    int64_t *support;            /* (n_users) train transitions observed from the user's exact K-context */
    uint8_t *seen;               /* (n_users, M) 1 if any interaction with the cluster before the test window */
    int64_t *test_off;           /* (n_users + 1) CSR over the user's test-window clusters */
    int32_t *test_cluster;       /* (nnz) cluster, ascending within a user */
    int32_t *test_n;             /* (nnz) test-window events in that cluster */
    int32_t *test_pos;           /* (nnz) of which positive */
    int64_t *pop;                /* (M) train-window interactions per cluster */
    int32_t *by_pop;             /* (M) clusters by descending pop, ties by lower id */
    ev_tuple_map *trans;         /* train transitions (K context, next) -> (count, 0) */
    ev_tuple_map *trans1;        /* train transitions (last cluster, next) -> (count, 0) */
    ev_tuple_map *trans_from;    /* train transitions (K context) -> (count over every next, 0) */
    ev_tuple_map *feedback;      /* test-window (K context, cluster) -> (exposures, positives) */
    float *like;                 /* (n_users, M) simulated like-probability, or NULL (world only) */
} ev_data;

/* Builds d from a dataset, its split and taxonomy with context length K (1..EV_MAX_K) and the
 * positive rule. Train window: ds_split_of(split, user, ts) == DS_TRAIN; test window: DS_TEST. */
int ev_data_build(ev_data *d, const ds_dataset *ds, const ds_split *split, const tx_taxonomy *tx, int K,
                  const ds_positive_rule *rule, sd_err *err);
void ev_data_free(ev_data *d);

/* Count pair stored for a tuple of len clusters (0,0 when absent). */
void ev_tuple_get(const ev_tuple_map *m, const int32_t *tuple, int len, int64_t *a, int64_t *b);
/* Adds (da, db) to a tuple's counts; creates the map when *m is NULL. */
void ev_tuple_add(ev_tuple_map **m, const int32_t *tuple, int len, int64_t da, int64_t db);
void ev_tuple_map_free(ev_tuple_map *m);

/* ---------------------------------------------------------------- metrics (metrics.c) */

typedef enum {
    EV_NOVELTY = 0,   /* share of served clusters never engaged before the test window */
    EV_COVERAGE,      /* distinct served clusters / M */
    EV_ENTROPY,       /* Shannon entropy (bits) of served-cluster frequencies */
    EV_GINI,          /* Gini coefficient of served-cluster frequencies over all M clusters */
    EV_HIT,           /* share of users with a positive test event in a served novel cluster */
    EV_POS_POOLED,    /* positives / events of test events inside served clusters, pooled (headline) */
    EV_POS_USER,      /* the same, per-user mean over users with such events */
    EV_COLLECTIVE,    /* mean test-window pooled feedback of served (context, cluster) tuples */
    EV_EXPANSION,     /* distinct served novel clusters engaged positively in test, mean per user */
    EV_LIKE,          /* mean simulated like-probability of served clusters (world only) */
    EV_N_METRICS
} ev_metric;

typedef struct {
    const char *key;   /* JSON key, e.g. "novelty" */
    const char *name;  /* human name, e.g. "cluster novelty rate" */
    int higher_better; /* 1 when higher is better, 0 when it is neither/lower (Gini) */
} ev_metric_info;
extern const ev_metric_info ev_metric_infos[EV_N_METRICS];

typedef struct {
    int serve;          /* clusters served per user (S, default 1) */
    int bootstrap;      /* resamples (B, default 200); 0 = no interval */
    uint64_t seed;      /* bootstrap seed (and the random arm's) */
    int depth;          /* clusters asked of each arm before the per-user filter; 0 = M */
    int min_users;      /* feedback arm: tuples backed by fewer users are ignored (default 3, as corpus.c) */
    double shrink;      /* feedback_shrunk arm: prior strength in pseudo-exposures (default 10, as the
                         * demo's `plan --feedback-shrink`) */
    int mpi;            /* eval --mpi (mpi.h active): ranks serve their share of the users and of the
                         * bootstrap resamples, every rank then holds all; rank 0 writes (docs/scale.md) */
} ev_opts;
#define EV_OPTS_DEFAULT ((ev_opts){1, 200, 20250407, 0, 3, 10, 0})

typedef struct {
    double value[EV_N_METRICS]; /* point estimate on all users; NAN when undefined */
    double lo[EV_N_METRICS];    /* 2.5% bootstrap percentile (NAN when B = 0 or undefined) */
    double hi[EV_N_METRICS];    /* 97.5% */
    int64_t n[EV_N_METRICS];    /* users contributing to the metric (denominator > 0) */
    int64_t users;              /* users scored */
    int64_t served;             /* clusters served in total */
    int64_t fallback_users;     /* users served at least one fallback cluster */
    int B;                      /* bootstrap resamples held in boot */
    double *boot;               /* (EV_N_METRICS, B) resample statistics, paired across arms (owned) */
    int S;                      /* clusters per user in list */
    int32_t *list;              /* (d->n_users, S) served clusters, -1 = none; ev_run only (owned) */
    uint8_t *fell_back;         /* (d->n_users) 1 when the user got a fallback cluster; ev_run only (owned) */
} ev_result;
void ev_result_free(ev_result *r);

/* Paired difference a - b of metric m with its 95% percentile interval over the shared bootstrap
 * resamples (both results from one ev_run, or from ev_result_subset on the same users). Returns 0
 * when it cannot be computed (no bootstrap, undefined metric), else 1. */
int ev_compare(const ev_result *a, const ev_result *b, int m, double *diff, double *lo, double *hi);

/* like_frac = (arm - random) / (oracle - random) of the like-probability, with the 95% interval of
 * the same ratio over the shared resamples. Returns 0 (and NANs) when undefined (no truth, no
 * bootstrap for the interval, or oracle == random), else 1. */
int ev_like_frac(const ev_result *arm, const ev_result *random, const ev_result *oracle, double *v, double *lo,
                 double *hi);

/* Serves every evaluated user of d from every arm and fills res[n_arms] (free each with
 * ev_result_free, also after an error). Each arm is asked for its first `depth` clusters; the user
 * gets the first S of them never interacted with before the test window (d->seen); when the list
 * runs out, the most popular train clusters the user has not seen (the fallback, counted in
 * fallback_users). The bootstrap draws the same user resamples for every arm (paired), so arms can
 * be compared with ev_compare. */
int ev_run(const ev_data *d, const ev_arm *arms, int n_arms, const ev_opts *o, ev_result *res, sd_err *err);

/* The metrics of full's served lists (from ev_run) on the evaluated users users[n] only, with a
 * bootstrap over those users (paired across arms given the same users and options). out has no
 * list. */
void ev_result_subset(const ev_data *d, const ev_result *full, const int32_t *users, int64_t n, const ev_opts *o,
                      ev_result *out);

/* The metrics of one arm from its served lists (served[u*S + j], -1 = nothing), on the users
 * listed in idx[n_idx] (a bootstrap resample, or 0..n_users-1 when idx is NULL). Exposed for tests. */
void ev_metrics_compute(const ev_data *d, const int32_t *served, int S, const int32_t *idx, int64_t n_idx,
                        double *value, int64_t *n);

/* Percentile bootstrap of the mean of x[n] (B resamples, seed) - exposed for tests. */
void ev_bootstrap_mean(const double *x, int64_t n, int B, uint64_t seed, double *lo, double *hi);

/* ---------------------------------------------------------------- results by context support */

/* Support of a context: train transitions observed from that exact K-context (d->support). */
typedef struct {
    const char *name;   /* "0", "1-9", "10+" */
    int64_t lo, hi;     /* support in [lo, hi]; hi = INT64_MAX for the open bucket */
} ev_support_bucket;
#define EV_N_SUPPORT 3
extern const ev_support_bucket ev_support_buckets[EV_N_SUPPORT];
/* Bucket index of a support value (0..EV_N_SUPPORT-1). */
int ev_support_bucket_of(int64_t support);

/* Every arm's metrics within each support bucket: out[b * n_arms + a] = ev_result_subset of res[a]
 * over the bucket's users (bootstrap over them). n_users[b] receives the bucket sizes. */
void ev_run_by_support(const ev_data *d, const ev_result *res, int n_arms, const ev_opts *o, ev_result *out,
                       int64_t n_users[EV_N_SUPPORT]);

/* ---------------------------------------------------------------- arms (arms.c) */

typedef struct {
    int kind;                /* ev_kind: one of the non-LLM kinds */
    const ev_data *d;        /* borrowed */
    uint64_t seed;           /* random */
    int32_t *pop_rank;       /* (M) rank of each cluster in d->by_pop */
    int64_t *fb1;            /* feedback: (M, M, 3) last-level pooled (users, exposures, positives) */
    const jr_journeys *jr;   /* feedback: train-window collective feedback (borrowed) */
    int min_users;           /* feedback */
    double shrink;           /* feedback_shrunk: prior strength in pseudo-exposures */
    double mu;               /* feedback_shrunk: pooled positive rate of every train feedback tuple */
    int32_t *group;          /* context oracle: (n_users) context group of each evaluated user */
    float *group_like;       /* context oracle: (n_groups, M) mean like-probability, NAN when unknown */
    int32_t *cand;           /* (M) scratch */
    int8_t *tier;            /* (M) scratch: 0 ranked first, then 1, 2 */
    double *score;           /* (M) scratch: higher first within a tier */
} ev_baseline;

/* Prepares a baseline arm of the given kind on d. jr (its K equal to d->K) and min_users are used by EV_KIND_FEEDBACK only; the oracles need d->like. Fails (usage/data
 * error) on a kind that is not a baseline, or on missing inputs. */
int ev_baseline_init(ev_baseline *b, int kind, const ev_data *d, uint64_t seed, const jr_journeys *jr, int min_users,
                     sd_err *err);
void ev_baseline_free(ev_baseline *b);
/* ev_serve_fn over an ev_baseline; every kind ranks only clusters not in the context, ties at
 * every level by popularity (then lower id). Random: the non-context clusters in a random order
 * seeded by (seed, context). Popular: by train popularity. Transition: clusters with
 * count(context -> c) > 0 by that count, then popularity. Backoff: the same, then clusters with
 * count(last -> c) > 0 by that count, then popularity. Feedback: candidates whose train feedback
 * tuple (context, c) is backed by >= min_users users, by pooled positive rate; then by the rate
 * pooled over every tuple with the same last context cluster and candidate (users summed,
 * >= min_users); then popularity. Feedback shrunk: every candidate by the posterior rate of
 * select.h's sl_shrink applied level by level, the global pooled rate shrunk toward the
 * last-cluster level (without this context's own tuple), then toward the context's tuple, with
 * strength `shrink` (the llm_feedback table's rule with a flat prior instead of the model). Oracle: by the user's like-probability. Context oracle: by the
 * mean like-probability over the evaluated users sharing the user's context. Unknown
 * like-probabilities rank last, by popularity. */
int ev_baseline_serve(void *state, int32_t user, const int32_t *ctx, int k, int32_t *out, int max);
/* Display name of a baseline kind ("random", "most popular", "backoff transition", ...). */
const char *ev_baseline_name(int kind);
/* Display name of an LLM arm from its kind and n: "best-of-16", "best-of-1 (novelty alone)",
 * "single model", "best-of-16 + feedback", "RL (best-of-4)", "best-of-16 pairwise". */
void ev_arm_name(int kind, int n, char *name, size_t cap);

/* ---------------------------------------------------------------- output (json.c, report.c) */

typedef struct {
    const char *dataset;  /* workspace path (borrowed) */
    int K, M;
    const int32_t *cluster_size; /* (M) items per cluster, may be NULL */
    const char *const *cluster_desc; /* (M) descriptions, may be NULL */
    const struct cJSON *retrieval; /* rt_eval_json of the restricted retrieval model, or NULL (key omitted) */
} ev_meta;

/* metrics.json text (caller frees): every figure with its CI, users, arms (name, kind, n,
 * fallback_share, like_frac on the world), and paired comparisons: every LLM-kind arm against the
 * backoff and feedback arms, every best-of-n (kind llm) against the smallest n; "by_support" when
 * by_support (EV_N_SUPPORT x n_arms from ev_run_by_support, sizes n_support) is given; "retrieval"
 * when meta->retrieval is set. */
char *ev_metrics_json(const ev_data *d, const ev_meta *meta, const ev_arm *arms, const ev_result *res, int n_arms,
                      const ev_result *by_support, const int64_t *n_support, const ev_opts *o);

/* Reads metrics.json text and writes the self-contained report.html (atomic) at html_path. */
int ev_report_write(const char *metrics_json, const char *html_path, sd_err *err);

/* ---------------------------------------------------------------- the stage on a workspace (workspace.c) */

/* One evaluation of a workspace: its data, arms and results (everything owned). */
typedef struct {
    ev_data d;
    int n_arms;
    ev_arm *arms;          /* (n_arms) baselines, oracles, then LLM tables by kind, n, file */
    ev_result *res;        /* (n_arms) */
    ev_result *by_support; /* (EV_N_SUPPORT, n_arms) */
    int64_t n_support[EV_N_SUPPORT];
    char *json;            /* the metrics.json text written */
    void *owned;           /* baselines, tables and names */
} ev_eval_run;

/* Loads <ws>/dataset.bin, split.json, taxonomy.bin (world_truth.bin when present: the simulated
 * like-probability and the oracles; journeys.bin when present: the feedback arm), evaluates the
 * baselines and every *.tbl table in <ws>/plans (or <ws>/explore.tbl when plans/ has none), each
 * table's arm kind from its header, and, when <ws>/retrieval.bin exists, the restricted item
 * retrieval (rt_evaluate at 10 with the same positive rule: key "retrieval"), and writes
 * <ws>/metrics.json atomically. K = 0 takes K from the tables (2 when there are none). */
int ev_eval_workspace(const char *ws, const ev_opts *o, int K, const ds_positive_rule *rule, ev_eval_run *out,
                      sd_err *err);
void ev_eval_run_free(ev_eval_run *r);

#endif
