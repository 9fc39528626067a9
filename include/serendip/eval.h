/* eval.h - offline evaluation of exploration arms on the test window, baselines, and the report.
 *
 * An ARM is any function context -> ranked clusters (ev_serve_fn): the baselines and the LLM
 * explore tables are judged by exactly the same code. ev_data_build turns a workspace's dataset,
 * split and taxonomy into everything the metrics need (per-user contexts from the train window,
 * clusters engaged before the test window, test-window engagement, train popularity and
 * transitions, test-window collective feedback); ev_run serves every evaluated user from every arm
 * and computes each metric with a bootstrap confidence interval over users.
 * Metric definitions, with a worked example: docs/evaluation.md. */
#ifndef SERENDIP_EVAL_H
#define SERENDIP_EVAL_H

#include "serendip/base.h"
#include "serendip/dataset.h"
#include "serendip/taxonomy.h"

#define EV_MAX_K 4          /* longest context supported (the papers use K = 2) */
#define EV_METRICS_FILE "metrics.json"
#define EV_REPORT_FILE "report.html"
#define EV_RETRIEVAL_AT 10  /* cut-off of the retrieval figures in metrics.json (HR@10, NDCG@10) */

/* An arm: writes up to max clusters for context ctx (k clusters, oldest first) into out, best
 * first; returns how many it wrote (0..max). Must never return a cluster twice. */
typedef int (*ev_serve_fn)(void *arm_state, const int32_t *ctx, int k, int32_t *out, int max);

typedef struct {
    const char *name;  /* e.g. "best-of-16", "empirical transition table" (borrowed) */
    int is_llm;        /* 1 for explore tables, 0 for baselines */
    int n;             /* best-of-n of an LLM table (0 for baselines or when unknown) */
    const char *file;  /* table file name for LLM arms, NULL for baselines (borrowed) */
    ev_serve_fn fn;
    void *state;
} ev_arm;

/* ---------------------------------------------------------------- evaluation data */

typedef struct ev_tuple_map ev_tuple_map; /* (cluster tuple) -> (count a, count b) */

typedef struct {
    int32_t K, M;                /* context length, number of level-2 clusters */
    int64_t n_users_total;       /* users in the dataset */
    int64_t n_skip_context;      /* users with fewer than K distinct positive train clusters */
    int64_t n_skip_test;         /* users with a full context but no test-window event (in a cluster) */
    int32_t n_users;             /* evaluated users */
    int32_t *user;               /* (n_users) dataset user index */
    int32_t *ctx;                /* (n_users, K) last K distinct positive train clusters, oldest first */
    uint8_t *seen;               /* (n_users, M) 1 if any interaction with the cluster before the test window */
    int64_t *test_off;           /* (n_users + 1) CSR over the user's test-window clusters */
    int32_t *test_cluster;       /* (nnz) cluster, ascending within a user */
    int32_t *test_n;             /* (nnz) test-window events in that cluster */
    int32_t *test_pos;           /* (nnz) of which positive */
    int64_t *pop;                /* (M) train-window interactions per cluster */
    ev_tuple_map *trans;         /* train transitions (K context, next) -> (count, 0) */
    ev_tuple_map *trans1;        /* train transitions (last cluster, next) -> (count, 0) */
    ev_tuple_map *feedback;      /* test-window (K context, cluster) -> (exposures, positives) */
    float *like;                 /* (n_users, M) simulated like-probability, or NULL (world only) */
} ev_data;

/* Builds d from a dataset, its split and taxonomy with context length K (1..EV_MAX_K) and the
 * positive rule. Train window: ts < split.train_end; test window: ts >= split.valid_end. */
int ev_data_build(ev_data *d, const ds_dataset *ds, const ds_split *split, const tx_taxonomy *tx, int K,
                  const ds_positive_rule *rule, sd_err *err);
void ev_data_free(ev_data *d);

/* Count pair stored for a tuple of len clusters (0,0 when absent). */
void ev_tuple_get(const ev_tuple_map *m, const int32_t *tuple, int len, int64_t *a, int64_t *b);
/* Adds (da, db) to a tuple's counts; creates the map when *m is NULL. */
void ev_tuple_add(ev_tuple_map **m, const int32_t *tuple, int len, int64_t da, int64_t db);
void ev_tuple_map_free(ev_tuple_map *m);

/* ---------------------------------------------------------------- metrics */

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
    uint64_t seed;      /* bootstrap seed */
} ev_opts;
#define EV_OPTS_DEFAULT ((ev_opts){1, 200, 20250407})

typedef struct {
    double value[EV_N_METRICS]; /* point estimate on all users; NAN when undefined */
    double lo[EV_N_METRICS];    /* 2.5% bootstrap percentile (NAN when B = 0 or undefined) */
    double hi[EV_N_METRICS];    /* 97.5% */
    int64_t n[EV_N_METRICS];    /* users contributing to the metric (denominator > 0) */
    int64_t served;             /* clusters served in total */
    int B;                      /* bootstrap resamples held in boot */
    double *boot;               /* (EV_N_METRICS, B) resample statistics, paired across arms (owned) */
} ev_result;
void ev_result_free(ev_result *r);

/* Paired difference a - b of metric m with its 95% percentile interval over the shared bootstrap
 * resamples (both results from one ev_run). Returns 0 when it cannot be computed (no bootstrap,
 * undefined metric), else 1. */
int ev_compare(const ev_result *a, const ev_result *b, int m, double *diff, double *lo, double *hi);

/* Serves every evaluated user of d from every arm and fills res[n_arms] (free each with
 * ev_result_free, also after an error). The bootstrap draws the same user resamples for every arm
 * (paired), so arms can be compared with ev_compare. */
int ev_run(const ev_data *d, const ev_arm *arms, int n_arms, const ev_opts *o, ev_result *res, sd_err *err);

/* The metrics of one arm from its served lists (served[u*S + j], -1 = nothing), on the users
 * listed in idx[n_idx] (a bootstrap resample, or 0..n_users-1). Exposed for tests. */
void ev_metrics_compute(const ev_data *d, const int32_t *served, int S, const int32_t *idx, int64_t n_idx,
                        double *value, int64_t *n);

/* Percentile bootstrap of the mean of x[n] (B resamples, seed) - exposed for tests. */
void ev_bootstrap_mean(const double *x, int64_t n, int B, uint64_t seed, double *lo, double *hi);

/* ---------------------------------------------------------------- baselines (baselines.c) */

typedef enum { EV_BASE_RANDOM, EV_BASE_POPULAR, EV_BASE_TRANSITION } ev_baseline_kind;
typedef struct {
    ev_baseline_kind kind;
    const ev_data *d;    /* borrowed */
    uint64_t seed;       /* random baseline */
    int32_t *by_pop;     /* (M) clusters by descending train popularity, ties by id */
} ev_baseline;

void ev_baseline_init(ev_baseline *b, ev_baseline_kind kind, const ev_data *d, uint64_t seed);
void ev_baseline_free(ev_baseline *b);
/* ev_serve_fn over an ev_baseline. Random: distinct uniformly drawn clusters not in the context,
 * the draw seeded by (seed, context) so the arm is a function of the context. Popular: most
 * popular train clusters not in the context. Transition: argmax count(next | context) among
 * clusters not in the context over train transitions, backing off to the last context cluster
 * alone (K = 1), then to popularity; ties by popularity, then id. */
int ev_baseline_serve(void *state, const int32_t *ctx, int k, int32_t *out, int max);
extern const char *const ev_baseline_names[3];

/* ---------------------------------------------------------------- output (metrics.c, report.c) */

typedef struct {
    const char *dataset;  /* workspace path (borrowed) */
    int K, M;
    const int32_t *cluster_size; /* (M) items per cluster, may be NULL */
    const char *const *cluster_desc; /* (M) descriptions, may be NULL */
    const struct cJSON *retrieval; /* rt_eval_json of the restricted retrieval model, or NULL (key omitted) */
} ev_meta;

/* metrics.json text (caller frees): every figure with its CI, users, arms, table n, and paired
 * comparisons: every LLM arm against the empirical transition table (when present) and every
 * best-of-n arm against the smallest n; "retrieval" when meta->retrieval is set. */
char *ev_metrics_json(const ev_data *d, const ev_meta *meta, const ev_arm *arms, const ev_result *res, int n_arms,
                      const ev_opts *o);

/* Reads metrics.json text and writes the self-contained report.html (atomic) at html_path. */
int ev_report_write(const char *metrics_json, const char *html_path, sd_err *err);

/* ---------------------------------------------------------------- the stage on a workspace */

/* One evaluation of a workspace: its data, arms and results (everything owned). */
typedef struct {
    ev_data d;
    int n_arms;
    ev_arm *arms;          /* (n_arms) baselines first, then LLM tables by file name order */
    ev_result *res;        /* (n_arms) */
    char *json;            /* the metrics.json text written */
    void *owned;           /* baselines, tables and names */
} ev_eval_run;

/* Loads <ws>/dataset.bin, split.json, taxonomy.bin (and world_truth.bin when present: the
 * simulated like-probability), evaluates the three baselines and every *.tbl table in <ws>/plans,
 * and, when <ws>/retrieval.bin exists, the restricted item retrieval (rt_evaluate at 10 with the
 * same positive rule: key "retrieval"), and writes <ws>/metrics.json atomically. K = 0 takes K from the tables (2 when there are none). */
int ev_eval_workspace(const char *ws, const ev_opts *o, int K, const ds_positive_rule *rule, ev_eval_run *out,
                      sd_err *err);
void ev_eval_run_free(ev_eval_run *r);

/* Arm name of a plan table file name: explore_n16.tbl -> "best-of-16", explore_n1.tbl ->
 * "best-of-1 (novelty alone)", single_n1.tbl -> "single model"; writes n (0 if none found). */
void ev_arm_name_of_table(const char *file, char *name, size_t cap, int *n);

#endif
