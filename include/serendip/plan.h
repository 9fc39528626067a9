/* plan.h - the `plan` stage: best-of-n over EVERY context into explore tables.
 *
 * For each valid context (K distinct level-2 clusters) in the range planned: sample n candidate
 * descriptions from the novelty model (free generation, temperature T), keep the samples that are
 * exactly one cluster description (format compliance), drop duplicates and clusters of the
 * context (novelty), score the survivors with the alignment model (expected score token), and
 * keep the best `top` by score. A context with no valid candidate gets the fallback: the most
 * popular cluster (train journeys) not in the context, flagged TBL_FLAG_FALLBACK.
 *
 * An n-sweep draws max(n) samples once per context and builds the table for every n of the sweep
 * from the first n samples — each prefix is itself an i.i.d. draw of size n, so every table is a
 * true best-of-n, and the sweep costs one run at max(n).
 *
 * Confidence-aware selection (--feedback-shrink M): for the largest n, a further table (kind
 * llm_feedback) ranks the context's sampled candidates AND every candidate with observed train
 * feedback in that context by the posterior rate (select.h): the alignment score mapped to a prior
 * rate, shrunk toward the observed positives/exposures with strength M. Slots whose candidates
 * have no observed feedback are flagged TBL_FLAG_NO_FEEDBACK (the model alone decided). */
#ifndef SERENDIP_PLAN_H
#define SERENDIP_PLAN_H

#include "serendip/base.h"

#define PL_DIR "plans"
#define PL_MAX_SWEEP 16
#define PL_FALLBACK_POPULAR 1 /* tbl_stats.fallback_kind: most popular cluster not in the context */

typedef struct {
    int n_sweep[PL_MAX_SWEEP]; /* the n values (ascending); n_count of them */
    int n_count;
    float temperature;         /* sampling temperature of the novelty model (default 1) */
    int top_k;                 /* sampler top-k, 0 = off */
    float top_p;               /* nucleus sampling: the smallest set of tokens with this much probability
                                * (default 0.95; 1 = off) */
    int top;                   /* entries kept per context (default 8) */
    uint64_t seed;
    const char *generator;     /* model that proposes: "novelty" (default), "single" (baseline), or the
                                * RL-tuned novelty model "rl" / "rl_guarded" (models/rl*.gguf, rl.h) */
    const char *selector;      /* "pointwise" (default: the alignment model's expected score) or "pairwise"
                                * (a tournament of models/align_pairwise.gguf over every pair, select.h) */
    int no_align;              /* rank by novelty log-probability instead of the alignment model */
    int constrained;           /* sample through the token trie of the descriptions (every sample is a
                                * valid description; compliance is 1 by construction) instead of freely */
    int shard, n_shards;       /* plan only slice shard of n_shards (0-based; 1 shard = all) */
    const char *out;           /* table path for a single-n run (default ws/explore.tbl) */
    int chunk;                 /* contexts per batched generation call (default 64) */
    double feedback_m;         /* > 0: also write the confidence-aware table (kind llm_feedback) for the
                                * largest n, the alignment prior shrunk toward observed feedback with this
                                * strength in pseudo-exposures (docs/planning.md); 0 = off (default) */
    int mpi;                   /* --mpi (mpi.h active): plan this rank's share of whole chunks, rank 0 gathers
                                * the rows and alone writes the tables (docs/scale.md); not with a shard */
} pl_opts;
void pl_opts_default(pl_opts *o);
/* The file prefix of o's tables: "explore", "single", "rl", "rl_guarded", or "explore_pairwise"
 * (ws/plans/<prefix>_n<n>.tbl, plans/plan-<prefix>.json). Only "explore" runs write
 * ws/explore.tbl; the others' single-n tables default to ws/plans/<prefix>_n<n>.tbl. */
const char *pl_prefix(const pl_opts *o);

typedef struct {
    int n;
    int32_t kind;         /* tbl_kind of the table written */
    int64_t contexts, samples, compliant, novel_unique, fallback;
    double compliance;    /* compliant / samples */
    double fallback_share;/* fallback / contexts */
    char path[512];       /* table written */
} pl_result;

typedef struct {
    pl_result r[PL_MAX_SWEEP + 1]; /* the sweep, then the feedback table when asked */
    int count;
    double sample_s, score_s, total_s; /* generation, alignment scoring, whole run */
    double contexts_per_s;
    int64_t scored;                    /* (context, candidate) pairs scored by the alignment model */
    double flops;                      /* FLOPs of both models' forward passes (lm_infer_stats) */
    int64_t gen_rows, align_rows;      /* rows (tokens) forwarded by the generator, the alignment model */
} pl_report;

/* Plans the workspace (needs taxonomy.bin, journeys.bin, the models). Single n (n_count 1):
 * writes o->out or ws/explore.tbl (a shard: ws/explore.tbl.<shard>-of-<n>). Sweep (n_count > 1):
 * writes ws/plans/<generator-prefix>_n<n>.tbl for every n, and ws/explore.tbl for the largest n
 * when the generator is the novelty model. Also ws/plans/plan-<prefix>.json with the report. */
int pl_plan(const char *ws, const pl_opts *o, pl_report *rep, sd_err *err);

/* plan --mpi (plan_mpi.c). This rank's contexts [*begin, *end): a run of whole chunks of `chunk`
 * contexts, cut so that every rank gets about the same number of valid contexts (the cost). */
void pl_mpi_range(int K, int M, int chunk, int64_t *begin, int64_t *end);
struct tbl_builder;
/* Collective, after every rank planned its range into tb[0..n_tb): on rank 0 each tb[si] is
 * replaced by a full-range builder holding every rank's rows and statistics (byte-identical to
 * a one-process run's); rep's counts and *planned_total become sums over ranks, its seconds the
 * slowest rank's (on every rank). */
int pl_mpi_gather(struct tbl_builder **tb, int n_tb, pl_report *rep, int64_t *planned_total, sd_err *err);

/* Parses "1,2,4,8,16" into o->n_sweep (ascending, distinct, 1..1024). */
int pl_parse_sweep(const char *s, pl_opts *o, sd_err *err);

#endif
