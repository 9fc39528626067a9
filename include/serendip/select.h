/* select.h - the selection rules of the planner, as pure functions over hand-sized inputs:
 * best-of-n (the paper's inference-time scaling), the pairwise tournament, and confidence-aware selection (best-of-n whose
 * alignment score is shrunk toward the observed collective feedback; docs/planning.md).
 * plan.c applies them to every context; tests/test_select.c checks them on hand-made candidates. */
#ifndef SERENDIP_SELECT_H
#define SERENDIP_SELECT_H

#include "serendip/base.h"
#include "serendip/table.h"

/* One sample of the novelty model for a context. */
typedef struct {
    int32_t cluster;  /* the cluster whose description the sample is exactly; -1 = not one (invalid) */
    float logprob;    /* log-probability of the sample under the generator (nats) */
} sl_sample;

/* A distinct candidate with its score (higher is better). */
typedef struct {
    int32_t cluster;
    float score;      /* alignment expected score 0..9, or the shrunk rate 0..1 (see sl_shrink) */
    float logprob;    /* best log-probability among the samples that proposed it; NAN when never sampled */
} sl_cand;

/* Counts of one selection, to add to the table's statistics. */
typedef struct {
    int samples, compliant, novel; /* samples seen; exactly one description; distinct and not in ctx */
} sl_counts;

/* qsort order of candidates, best first: score descending, then sampled before never sampled
 * (logprob NAN), logprob descending, cluster ascending (deterministic tables). */
int sl_cand_cmp(const void *a, const void *b);

/* Best-of-n over samples s[0..n) of context ctx[0..k): keeps the samples that are exactly one
 * description (cluster >= 0) and not in the context, merges duplicates (the best logprob wins),
 * gives each the score scores[i] of its entry in scored[0..n_scored) (a candidate absent there
 * gets -INFINITY; use_logprob = 1 ranks by logprob instead, as `plan --no-align` does), and
 * writes the distinct candidates to out[0..top) best first: score descending, then logprob
 * descending, then cluster ascending (deterministic). out's score is NAN when use_logprob.
 * Returns the number written; c (may be NULL) receives the counts. work must hold n entries. */
int sl_best_of_n(const sl_sample *s, int n, const int32_t *ctx, int k, const sl_cand *scored, int n_scored,
                 int use_logprob, sl_cand *work, tbl_entry *out, int top, sl_counts *c);

/* Pairwise tournament (best-of-n with the pairwise alignment model): p is (n, n) row-major,
 * p[i*n+j] = the model's probability that candidate i beats j when i is shown first (as "A"); the
 * diagonal is ignored. Both orders are pooled, q_ij = (p_ij + 1 - p_ji) / 2 (so q_ij + q_ji = 1 and
 * a position bias cancels), and score[i] = Copeland wins (the number of j with q_ij > 1/2, plus
 * 1/2 per j with q_ij = 1/2) + sum_j q_ij / (2n), a Borda tie-break below 1/2 that never overturns
 * a difference in wins. Higher is better; n = 1 gives score 0. */
void sl_pairwise_scores(const float *p, int n, float *score);

/* The prior positive rate of an alignment score: the model is trained on labels that are the
 * percentile rank of a tuple's pooled rate among all kept tuples, rounded to a digit (corpus.h),
 * so the expected score s in [0, 9] maps back to the rate at percentile p = (s + 0.5) / 10 of
 * the sorted kept rates rates[0..n) (linear interpolation between order statistics; p is clamped
 * to [0, 1]). Returns NAN when n == 0 or s is not finite. */
double sl_prior_rate(double s, const double *rates, int64_t n);

/* Shrinkage of a prior rate toward observed feedback: the posterior mean of a Beta prior with
 * mean prior and strength m pseudo-exposures after pos positives in exp exposures,
 *     (pos + m * prior) / (exp + m).
 * exp = 0 gives the prior; m = 0 gives the observed rate (the prior when exp = 0). */
double sl_shrink(double prior, int64_t pos, int64_t exp, double m);

#endif
