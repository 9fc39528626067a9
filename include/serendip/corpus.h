/* corpus.h - the texts the language models learn from, built from a workspace into ws/corpus/
 * (formats in docs/formats-journeys.md, section "Corpora").
 *
 * THE PROMPT FORMAT lives here and only here; training and planning both call these functions.
 *   novelty:   "<|ctx|>" desc(c1) "<|sep|>" desc(c2) ... "<|ans|>"            answer desc(next)
 *   alignment: "<|ctx|>" desc(c1) "<|sep|>" ... "<|ans|>" desc(cand) "<|score|>"  answer "0".."9"
 *   pairwise:  "<|ctx|>" desc(c1) "<|sep|>" ... "<|ans|>" desc(A) "<|sep|>" desc(B) "<|score|>"
 *              answer "A" or "B" (the candidate with the higher label)
 * The special token strings are parsed by the tokenizer (tok_encode with parse_specials). */
#ifndef SERENDIP_CORPUS_H
#define SERENDIP_CORPUS_H

#include "serendip/base.h"
#include "serendip/journeys.h"
#include "serendip/taxonomy.h"

#define CP_TOK_CTX "<|ctx|>"
#define CP_TOK_SEP "<|sep|>"
#define CP_TOK_ANS "<|ans|>"
#define CP_TOK_SCORE "<|score|>"
#define CP_SCORE_LEVELS 10 /* labels are digits "0".."9": the normalised rate rounded to 1/10 */

#define CP_DIR "corpus"
#define CP_PRETRAIN "pretrain.txt"
#define CP_NOVELTY "novelty.jsonl"
#define CP_ALIGN "align.jsonl"
#define CP_ALIGN_HELDOUT "align_heldout.jsonl"
#define CP_ALIGN_PAIRWISE "align_pairwise.jsonl"
#define CP_ALIGN_PROBE "align_probe.jsonl" /* held-out tuples below --min-users: judged against the truth only */
#define CP_BASELINE "baseline.jsonl"
#define CP_STATS "corpus.json"

/* Writes the novelty prompt for ctx[0..k) into buf (NUL-terminated). Returns its length, or -1
 * when a cluster is out of range or cap is too small. */
int cp_novelty_prompt(const tx_taxonomy *tax, const int32_t *ctx, int k, char *buf, size_t cap);
/* Alignment prompt for (ctx, cand); same return convention. */
int cp_align_prompt(const tx_taxonomy *tax, const int32_t *ctx, int k, int32_t cand, char *buf, size_t cap);
/* Pairwise prompt for (ctx, a, b); same return convention. */
int cp_pair_prompt(const tx_taxonomy *tax, const int32_t *ctx, int k, int32_t a, int32_t b, char *buf, size_t cap);
/* Score label of a normalised value x in [0, 1]: min(9, floor(x * 10)). */
int cp_score_digit(double x);
/* The value a digit stands for (the centre of its interval): (d + 0.5) / 10. */
double cp_digit_value(int d);

typedef struct {
    int64_t pretrain_bytes;    /* target size of pretrain.txt (default 1,000,000) */
    int novelty_examples;      /* size of novelty.jsonl (default 4000) */
    int per_target_cap;        /* max novelty examples per target cluster; 0 (default) = automatic: the
                                * smallest cap that still yields novelty_examples (water-filling) */
    int min_users;             /* held-out alignment tuples backed by fewer users go to the probe, not the
                                * labelled held-out set (default 3) */
    int train_min_users;       /* train alignment tuples backed by fewer users are dropped (default 2:
                                * measured in docs/planning.md, 2-user tuples add more than they blur) */
    double label_shrink;       /* labels are the percentile of the tuple's rate shrunk level by level
                                * (cp_labeler) with this many pseudo-exposures (default 10; 0 = raw) */
    int heldout_pct;           /* share of tuples held out, by hash (default 10) */
    int pairwise;              /* also write align_pairwise.jsonl */
    int pairwise_examples;     /* default 4000 */
    double baseline_quantile;  /* baseline.jsonl keeps tuples with pos_rate >= this quantile (0.75) */
    uint64_t seed;             /* shuffling and sampling (default 1) */
} cp_opts;
void cp_opts_default(cp_opts *o);

typedef struct {
    int64_t pretrain_bytes, pretrain_lines;
    int64_t novel_transitions;           /* available novel transitions (full contexts) */
    int64_t novelty_examples;            /* written */
    double target_entropy_before;        /* bits, of the target cluster distribution */
    double target_entropy_after;
    int32_t targets_before, targets_after; /* distinct target clusters */
    int64_t feedback_tuples, align_kept;  /* all tuples / with users >= min_users */
    int64_t align_train, align_heldout;
    int64_t align_probe;                 /* held-out tuples below min_users (align_probe.jsonl) */
    int64_t label_hist[CP_SCORE_LEVELS];  /* labels of the kept tuples */
    int64_t pairwise_examples;
    int64_t baseline_examples;
} cp_stats;

/* The alignment labels. A tuple's rate is an empirical-Bayes estimate built level by level: the
 * pooled rate mu of every train tuple, shrunk toward the pooled rate of the tuples with the same
 * last context cluster and candidate (without the tuple's own evidence), then toward the tuple's
 * own positives / exposures, each step (pos + m * prior) / (exp + m) with m = label_shrink.
 * Held-out tuples (is_heldout) never enter mu or the last-cluster level. A label is the digit of
 * the percentile of that rate among the basis: the rates of every tuple backed by
 * >= min(train_min_users, min_users) users. The planner maps an alignment score back to a rate
 * through the same basis (sl_prior_rate). */
typedef struct {
    cp_opts o;
    int32_t M, K;
    double mu;          /* pooled rate of the train tuples */
    int64_t *last;      /* (M, M, 2) exposures, positives by (last context cluster, candidate), train tuples */
    double *basis;      /* (n_basis) sorted rates */
    int64_t n_basis;
} cp_labeler;
void cp_labeler_init(cp_labeler *l, const jr_journeys *j, const cp_opts *o);
double cp_labeler_rate(const cp_labeler *l, const jr_feedback *f);
int cp_labeler_digit(const cp_labeler *l, const jr_feedback *f);
void cp_labeler_free(cp_labeler *l);
/* The corpus options recorded in ws/corpus/corpus.json (the defaults for fields it lacks);
 * SD_ERR_STATE when the file is missing. */
int cp_opts_load(const char *ws, cp_opts *o, sd_err *err);

/* Builds every corpus from a journeys result and a taxonomy into dir (created). ds may be NULL
 * (then pretrain.txt has no item titles/tags). */
int cp_build(const char *dir, const ds_dataset *ds, const tx_taxonomy *tax, const jr_journeys *j, const cp_opts *o,
             cp_stats *st, sd_err *err);
/* The stage on a workspace: loads dataset.bin, taxonomy.bin, journeys.bin; writes ws/corpus/
 * (including corpus.json with the stats). */
int cp_build_all(const char *ws, const cp_opts *o, cp_stats *st, sd_err *err);

#endif
