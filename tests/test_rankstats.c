/* test_rankstats.c - Spearman and AUC against values computed by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>

#include "serendip/rankstats.h"

static void test_ranks_with_ties(void **state) {
    (void)state;
    double x[] = {10, 20, 20, 5}, r[4];
    rs_ranks(x, 4, r);
    /* sorted: 5(1) 10(2) 20,20 (3,4 -> 3.5) */
    assert_true(r[0] == 2 && r[1] == 3.5 && r[2] == 3.5 && r[3] == 1);
}

static void test_spearman_by_hand(void **state) {
    (void)state;
    double x[] = {1, 2, 3, 4, 5}, up[] = {2, 4, 6, 8, 100}, down[] = {5, 4, 3, 2, 1};
    assert_true(fabs(rs_spearman(x, up, 5) - 1) < 1e-12);
    assert_true(fabs(rs_spearman(x, down, 5) + 1) < 1e-12);
    /* ranks y = {1,3,2,5,4}: d^2 = 0+1+1+1+1 = 4, rho = 1 - 6*4/(5*24) = 0.8 */
    double y[] = {10, 30, 20, 50, 40};
    assert_true(fabs(rs_spearman(x, y, 5) - 0.8) < 1e-12);
    double c[] = {3, 3, 3, 3, 3};
    assert_true(isnan(rs_spearman(x, c, 5)));
}

static void test_auc_by_hand(void **state) {
    (void)state;
    /* positives score {0.9, 0.4}, negatives {0.5, 0.1}: pairs (0.9>0.5)(0.9>0.1)(0.4<0.5)(0.4>0.1)
     * = 3 of 4 -> 0.75 */
    double s[] = {0.9, 0.5, 0.4, 0.1};
    int p[] = {1, 0, 1, 0};
    assert_true(fabs(rs_auc(s, p, 4) - 0.75) < 1e-12);
    /* one tie between a positive and a negative counts a half: {0.5+, 0.5-, 0.9+}: pairs 0.5 vs 0.5
     * (0.5), 0.9 vs 0.5 (1) -> 1.5 / 2 */
    double t[] = {0.5, 0.5, 0.9};
    int q[] = {1, 0, 1};
    assert_true(fabs(rs_auc(t, q, 3) - 0.75) < 1e-12);
    int none[] = {0, 0, 0};
    assert_true(isnan(rs_auc(t, none, 3)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranks_with_ties),
        cmocka_unit_test(test_spearman_by_hand),
        cmocka_unit_test(test_auc_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
