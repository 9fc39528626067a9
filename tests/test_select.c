/* test_select.c - best-of-n and the confidence-aware shrinkage on hand-made candidates, with every
 * expected value worked out by hand in the comments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>

#include "serendip/select.h"

/* Context (3, 5). Samples: 7, invalid, 3 (in the context), 9, 7 again with a better logprob,
 * 2. Scores: 7 -> 6.0, 9 -> 8.5, 2 -> 6.0. Expected best-of-6: 9 (8.5), then 7 and 2 tie at 6.0
 * and the better logprob wins: 7 has max(-2.0, -1.0) = -1.0, 2 has -1.5 -> 7 before 2. */
static void test_best_of_n_filters_merges_and_orders(void **state) {
    (void)state;
    const int32_t ctx[2] = {3, 5};
    const sl_sample s[6] = {{7, -2.0f}, {-1, -0.1f}, {3, -0.2f}, {9, -3.0f}, {7, -1.0f}, {2, -1.5f}};
    const sl_cand scored[3] = {{7, 6.0f, NAN}, {9, 8.5f, NAN}, {2, 6.0f, NAN}};
    sl_cand work[6];
    tbl_entry out[4];
    sl_counts c;
    int ne = sl_best_of_n(s, 6, ctx, 2, scored, 3, 0, work, out, 4, &c);
    assert_int_equal(ne, 3);
    assert_int_equal(out[0].cluster, 9);
    assert_float_equal(out[0].align_score, 8.5f, 0);
    assert_float_equal(out[0].novelty_logprob, -3.0f, 0);
    assert_int_equal(out[1].cluster, 7);
    assert_float_equal(out[1].novelty_logprob, -1.0f, 0);
    assert_int_equal(out[2].cluster, 2);
    assert_int_equal(c.samples, 6);
    assert_int_equal(c.compliant, 5); /* all but the invalid one */
    assert_int_equal(c.novel, 3);     /* 7, 9, 2 */

    /* top 1 keeps the best only */
    assert_int_equal(sl_best_of_n(s, 6, ctx, 2, scored, 3, 0, work, out, 1, NULL), 1);
    assert_int_equal(out[0].cluster, 9);

    /* best-of-2 reads only the first two samples: 7 (valid) and an invalid one */
    assert_int_equal(sl_best_of_n(s, 2, ctx, 2, scored, 3, 0, work, out, 4, &c), 1);
    assert_int_equal(out[0].cluster, 7);
    assert_float_equal(out[0].novelty_logprob, -2.0f, 0);
    assert_int_equal(c.compliant, 1);

    /* ranked by logprob (plan --no-align): 7 (-1.0), 2 (-1.5), 9 (-3.0); scores are NaN */
    assert_int_equal(sl_best_of_n(s, 6, ctx, 2, scored, 3, 1, work, out, 4, NULL), 3);
    assert_int_equal(out[0].cluster, 7);
    assert_int_equal(out[1].cluster, 2);
    assert_int_equal(out[2].cluster, 9);
    assert_true(isnan(out[0].align_score));

    /* a context whose samples are all invalid or in the context: nothing, the caller falls back */
    const sl_sample bad[3] = {{-1, 0}, {3, 0}, {5, 0}};
    assert_int_equal(sl_best_of_n(bad, 3, ctx, 2, scored, 3, 0, work, out, 4, &c), 0);
    assert_int_equal(c.novel, 0);
}

/* Equal score and logprob: the smaller cluster id first (deterministic tables). */
static void test_best_of_n_ties_by_cluster(void **state) {
    (void)state;
    const int32_t ctx[1] = {0};
    const sl_sample s[2] = {{8, -1.0f}, {4, -1.0f}};
    const sl_cand scored[2] = {{8, 5.0f, NAN}, {4, 5.0f, NAN}};
    sl_cand work[2];
    tbl_entry out[2];
    assert_int_equal(sl_best_of_n(s, 2, ctx, 1, scored, 2, 0, work, out, 2, NULL), 2);
    assert_int_equal(out[0].cluster, 4);
    assert_int_equal(out[1].cluster, 8);
}

/* Kept rates 0.2, 0.4, 0.6, 0.8, 1.0 (n = 5). Score s -> percentile p = (s + 0.5) / 10, position
 * p * 4: s = 4.5 -> p = 0.5 -> position 2 -> 0.6; s = 0 -> p = 0.05 -> position 0.2 -> 0.2 + 0.2 *
 * 0.2 = 0.24; s = 9 -> p = 0.95 -> position 3.8 -> 0.8 + 0.8 * 0.2 = 0.96; s = 12 clamps to p = 1
 * -> 1.0. */
static void test_prior_rate_is_the_percentile_of_the_score(void **state) {
    (void)state;
    const double r[5] = {0.2, 0.4, 0.6, 0.8, 1.0};
    assert_float_equal(sl_prior_rate(4.5, r, 5), 0.6, 1e-12);
    assert_float_equal(sl_prior_rate(0.0, r, 5), 0.24, 1e-12);
    assert_float_equal(sl_prior_rate(9.0, r, 5), 0.96, 1e-12);
    assert_float_equal(sl_prior_rate(12.0, r, 5), 1.0, 1e-12);
    assert_float_equal(sl_prior_rate(-3.0, r, 5), 0.2, 1e-12);
    assert_true(isnan(sl_prior_rate(4.5, r, 0)));
    assert_true(isnan(sl_prior_rate(NAN, r, 5)));
}

/* Posterior mean (pos + m * prior) / (exp + m): prior 0.5, m = 10, 9 of 10 positive -> (9 + 5) / 20
 * = 0.7; no exposure -> the prior; m = 0 -> the observed rate 0.9; much evidence dominates:
 * 900 of 1000 -> (900 + 5) / 1010 = 0.896... */
static void test_shrink_is_the_beta_posterior_mean(void **state) {
    (void)state;
    assert_float_equal(sl_shrink(0.5, 9, 10, 10), 0.7, 1e-12);
    assert_float_equal(sl_shrink(0.5, 0, 0, 10), 0.5, 1e-12);
    assert_float_equal(sl_shrink(0.5, 9, 10, 0), 0.9, 1e-12);
    assert_float_equal(sl_shrink(0.5, 900, 1000, 10), 905.0 / 1010.0, 1e-12);
    /* a weak observation moves a strong prior only a little, and in the right direction */
    double low = sl_shrink(0.8, 0, 2, 10), high = sl_shrink(0.8, 2, 2, 10);
    assert_float_equal(low, 8.0 / 12.0, 1e-12);
    assert_float_equal(high, 10.0 / 12.0, 1e-12);
}

/* Four candidates; p[i][j] = P(i beats j | i shown first). Pooled q_ij = (p_ij + 1 - p_ji) / 2:
 *   q01 = (0.8 + 0.7)/2 = 0.75   q02 = (0.6 + 0.4)/2 = 0.50   q03 = (0.9 + 0.8)/2 = 0.85
 *   q12 = (0.4 + 0.3)/2 = 0.35   q13 = (0.7 + 0.9)/2 = 0.80   q23 = (0.2 + 0.1)/2 = 0.15
 * Wins: 0 beats 1 and 3, ties 2 -> 2.5; 1 beats 3 -> 1; 2 ties 0, beats 1 -> 1.5; 3 beats 2 -> 1.
 * Borda sums: 0: 0.75+0.5+0.85 = 2.1; 1: 0.25+0.35+0.8 = 1.4; 2: 0.5+0.65+0.15 = 1.3;
 * 3: 0.15+0.2+0.85 = 1.2; each divided by 2n = 8 and added. Order 0, 2, 1, 3: 1 and 3 tie on wins
 * and the Borda sum puts 1 first. (Reading one order only, p_02 = 0.6 would make 0 beat 2.) */
static void test_pairwise_tournament(void **state) {
    (void)state;
    const float p[16] = {0, 0.8f, 0.6f, 0.9f, /**/ 0.3f, 0, 0.4f, 0.7f, /**/ 0.6f, 0.7f, 0, 0.2f, /**/ 0.2f, 0.1f, 0.9f, 0};
    float s[4];
    sl_pairwise_scores(p, 4, s);
    assert_float_equal(s[0], 2.5 + 2.1 / 8, 1e-6);
    assert_float_equal(s[1], 1.0 + 1.4 / 8, 1e-6);
    assert_float_equal(s[2], 1.5 + 1.3 / 8, 1e-6);
    assert_float_equal(s[3], 1.0 + 1.2 / 8, 1e-6);
    assert_true(s[0] > s[2] && s[2] > s[1] && s[1] > s[3]);
    /* a model that always answers "A" with 0.9 has no preference: every pooled q is 1/2 */
    float a[9] = {0, 0.9f, 0.9f, 0.9f, 0, 0.9f, 0.9f, 0.9f, 0};
    sl_pairwise_scores(a, 3, s);
    for (int i = 0; i < 3; i++) assert_float_equal(s[i], 1.0 + 1.0 / 6, 1e-6);
    /* one candidate: score 0 */
    sl_pairwise_scores(a, 1, s);
    assert_float_equal(s[0], 0, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_best_of_n_filters_merges_and_orders),
        cmocka_unit_test(test_best_of_n_ties_by_cluster),
        cmocka_unit_test(test_prior_rate_is_the_percentile_of_the_score),
        cmocka_unit_test(test_shrink_is_the_beta_posterior_mean),
        cmocka_unit_test(test_pairwise_tournament),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
