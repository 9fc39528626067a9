/* test_metrics.c - the evaluation metrics on a hand-built fixture, checked against values computed
 * by hand below; the bootstrap intervals; the baselines' choices.
 *
 * Fixture (built with ds_builder): 8 items, 4 clusters, item raw id r in cluster (r-1)/2:
 *   items 1,2 -> c0   3,4 -> c1   5,6 -> c2   7,8 -> c3
 * Split: train ts < 100, valid ts < 200, test ts >= 200. Positive: rating >= 4. K = 2.
 *   user 1: train c0 r5 @10, c1 r5 @20 -> context (c0, c1); valid c2 r2 @150 (seen, not positive);
 *           test c3 r5 @210, c3 r2 @220, c2 r5 @230
 *   user 2: train c1 r4 @10, c0 r4 @20 -> context (c1, c0); test c2 r4 @300, c2 r4 @310
 *   user 3: train c0 r5 @10 only -> context too short: skipped
 *   user 4: train c0 r5 @10, c2 r5 @20, c3 r5 @30 -> no test event: skipped
 *   user 5: train c1 r5 @10, c0 r5 @20 -> context (c1, c0); test c2 r1 @250
 * Evaluated: users 1, 2, 5 (n = 3); skipped: 1 for context, 1 for no test event.
 * Seen before the test window: u1 {c0,c1,c2}; u2 {c0,c1}; u5 {c0,c1}.
 * Test engagement (events, positives): u1 c2 (1,1) c3 (2,1); u2 c2 (2,2); u5 c2 (1,0).
 * Test-window collective feedback (running context, exposure = event in a cluster not in it):
 *   u1: (c0,c1) sees c3 r5 -> (c0,c1,c3) 1/1, context -> (c1,c3); c3 r2 in context; c2 r5 ->
 *       (c1,c3,c2) 1/1.   u2: (c1,c0,c2) 1/1, then c2 in context.   u5: (c1,c0,c2) 0/1.
 *   So (c1,c0,c2) = 1 positive / 2 exposures = 0.5; (c0,c1,c3) = 1.0; (c0,c1,c2) absent.
 * Train popularity (interactions): c0 5, c1 3, c2 1, c3 1 -> by popularity c0, c1, c2, c3.
 * Train transitions, K = 2: (c0,c2) -> c3 once (user 4).  K = 1 (last -> next): c0->c1 (u1),
 *   c1->c0 (u2, u5), c0->c2 (u4), c2->c3 (u4).
 *
 * The fixed arm: context (c0,c1) -> [c2, c3]; (c1,c0) -> [c2, c3]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/base.h"
#include "serendip/dataset.h"
#include "serendip/eval.h"
#include "serendip/taxonomy.h"

/* Exact rational values computed by hand; doubles of small ratios agree to ~1e-15, 1e-12 leaves room. */
#define TOL 1e-12

typedef struct {
    ds_dataset ds;
    tx_taxonomy tx;
    ds_split split;
    ev_data d;
} fixture;

static void add(ds_builder *b, int u, int item, int ts, float r) { ds_builder_add_event(b, u, item, ts, r, DS_NO_VALUE); }

static void fixture_build(fixture *f) {
    memset(f, 0, sizeof *f);
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    for (int i = 1; i <= 8; i++) {
        char t[16];
        snprintf(t, sizeof t, "item %d", i);
        assert_int_equal(ds_builder_add_item(b, i, t, "tag", &err), SD_OK);
    }
    add(b, 1, 1, 10, 5), add(b, 1, 3, 20, 5), add(b, 1, 5, 150, 2), add(b, 1, 7, 210, 5), add(b, 1, 8, 220, 2),
        add(b, 1, 5, 230, 5);
    add(b, 2, 3, 10, 4), add(b, 2, 1, 20, 4), add(b, 2, 5, 300, 4), add(b, 2, 6, 310, 4);
    add(b, 3, 1, 10, 5), add(b, 3, 7, 250, 5);
    add(b, 4, 1, 10, 5), add(b, 4, 5, 20, 5), add(b, 4, 7, 30, 5);
    add(b, 5, 3, 10, 5), add(b, 5, 1, 20, 5), add(b, 5, 5, 250, 1);
    assert_int_equal(ds_builder_finish(b, &f->ds, &err), SD_OK);
    f->tx.n_top = 1;
    f->tx.n_clusters = 4;
    f->tx.n_items = f->ds.n_items;
    f->tx.item_cluster = sd_malloc(sizeof(int32_t) * (size_t)f->ds.n_items);
    for (int64_t i = 0; i < f->ds.n_items; i++) f->tx.item_cluster[i] = (int32_t)((f->ds.item_ids[i] - 1) / 2);
    f->split = (ds_split){100, 200};
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    assert_int_equal(ev_data_build(&f->d, &f->ds, &f->split, &f->tx, 2, &rule, &err), SD_OK);
}

static void fixture_free(fixture *f) {
    ev_data_free(&f->d);
    free(f->tx.item_cluster);
    ds_free(&f->ds);
}

static int32_t fixed_arm_list[2] = {2, 3};
static int fixed_arm(void *state, const int32_t *ctx, int k, int32_t *out, int max) {
    (void)state, (void)ctx, (void)k;
    int n = 0;
    for (; n < max && n < 2; n++) out[n] = fixed_arm_list[n];
    return n;
}

/* Evaluated user index of raw user id (or -1). */
static int eval_index(const fixture *f, int64_t raw) {
    for (int i = 0; i < f->d.n_users; i++)
        if (f->ds.user_ids[f->d.user[i]] == raw) return i;
    return -1;
}

static void test_data_contexts_and_counts(void **state) {
    (void)state;
    fixture f;
    fixture_build(&f);
    assert_int_equal(f.d.n_users_total, 5);
    assert_int_equal(f.d.n_users, 3);
    assert_int_equal(f.d.n_skip_context, 1);
    assert_int_equal(f.d.n_skip_test, 1);
    int u1 = eval_index(&f, 1), u2 = eval_index(&f, 2), u5 = eval_index(&f, 5);
    assert_true(u1 >= 0 && u2 >= 0 && u5 >= 0);
    assert_int_equal(eval_index(&f, 3), -1);
    /* contexts, most recent last */
    assert_int_equal(f.d.ctx[u1 * 2], 0), assert_int_equal(f.d.ctx[u1 * 2 + 1], 1);
    assert_int_equal(f.d.ctx[u2 * 2], 1), assert_int_equal(f.d.ctx[u2 * 2 + 1], 0);
    /* seen before the test window includes the valid window's non-positive c2 */
    assert_int_equal(f.d.seen[u1 * 4 + 2], 1);
    assert_int_equal(f.d.seen[u1 * 4 + 3], 0);
    assert_int_equal(f.d.seen[u2 * 4 + 2], 0);
    /* popularity */
    assert_int_equal(f.d.pop[0], 5), assert_int_equal(f.d.pop[1], 3), assert_int_equal(f.d.pop[2], 1),
        assert_int_equal(f.d.pop[3], 1);
    /* feedback */
    int64_t e, p;
    ev_tuple_get(f.d.feedback, (int32_t[]){1, 0, 2}, 3, &e, &p);
    assert_int_equal(e, 2), assert_int_equal(p, 1);
    ev_tuple_get(f.d.feedback, (int32_t[]){0, 1, 3}, 3, &e, &p);
    assert_int_equal(e, 1), assert_int_equal(p, 1);
    ev_tuple_get(f.d.feedback, (int32_t[]){1, 3, 2}, 3, &e, &p);
    assert_int_equal(e, 1), assert_int_equal(p, 1);
    ev_tuple_get(f.d.feedback, (int32_t[]){0, 1, 2}, 3, &e, &p);
    assert_int_equal(e, 0);
    /* transitions */
    ev_tuple_get(f.d.trans, (int32_t[]){0, 2, 3}, 3, &e, &p);
    assert_int_equal(e, 1);
    ev_tuple_get(f.d.trans1, (int32_t[]){1, 0}, 2, &e, &p);
    assert_int_equal(e, 2);
    fixture_free(&f);
}

static void test_metrics_serve1(void **state) {
    (void)state;
    fixture f;
    fixture_build(&f);
    ev_arm arm = {"fixed", 0, 0, NULL, fixed_arm, NULL};
    ev_opts o = EV_OPTS_DEFAULT;
    o.serve = 1;
    ev_result r;
    sd_err err = {0};
    assert_int_equal(ev_run(&f.d, &arm, 1, &o, &r, &err), SD_OK);
    /* every user is served c2. novelty: u1 saw c2 in the valid window -> 2 novel of 3 */
    assert_true(fabs(r.value[EV_NOVELTY] - 2.0 / 3) < TOL);
    assert_true(fabs(r.value[EV_COVERAGE] - 0.25) < TOL); /* {c2} of 4 */
    assert_true(fabs(r.value[EV_ENTROPY] - 0.0) < TOL);   /* one cluster */
    /* Gini of counts (0,0,0,3): 2*(4*3)/(4*3) - 5/4 = 0.75 */
    assert_true(fabs(r.value[EV_GINI] - 0.75) < TOL);
    /* hit: u2 (c2 novel, 2 positives) only -> 1/3 */
    assert_true(fabs(r.value[EV_HIT] - 1.0 / 3) < TOL);
    /* positive rate pooled (1 + 2 + 0) / (1 + 2 + 1) = 3/4; per user (1 + 1 + 0) / 3 */
    assert_true(fabs(r.value[EV_POS_POOLED] - 0.75) < TOL);
    assert_true(fabs(r.value[EV_POS_USER] - 2.0 / 3) < TOL);
    /* collective: u1's (c0,c1,c2) has no test feedback; u2, u5 get (c1,c0,c2) = 0.5 */
    assert_true(fabs(r.value[EV_COLLECTIVE] - 0.5) < TOL);
    assert_int_equal(r.n[EV_COLLECTIVE], 2);
    /* expansion: u2 one new cluster; mean 1/3 */
    assert_true(fabs(r.value[EV_EXPANSION] - 1.0 / 3) < TOL);
    assert_true(isnan(r.value[EV_LIKE])); /* no world truth */
    assert_int_equal(r.served, 3);
    fixture_free(&f);
}

static void test_metrics_serve2(void **state) {
    (void)state;
    fixture f;
    fixture_build(&f);
    ev_arm arm = {"fixed", 0, 0, NULL, fixed_arm, NULL};
    ev_opts o = EV_OPTS_DEFAULT;
    o.serve = 2;
    ev_result r;
    sd_err err = {0};
    assert_int_equal(ev_run(&f.d, &arm, 1, &o, &r, &err), SD_OK);
    /* every user is served c2, c3. novelty: u1 1 of 2, u2 2, u5 2 -> 5/6 */
    assert_true(fabs(r.value[EV_NOVELTY] - 5.0 / 6) < TOL);
    assert_true(fabs(r.value[EV_COVERAGE] - 0.5) < TOL);
    assert_true(fabs(r.value[EV_ENTROPY] - 1.0) < TOL); /* 3 and 3: one bit */
    /* Gini of (0,0,3,3): 2*(3*3 + 4*3)/(4*6) - 5/4 = 0.5 */
    assert_true(fabs(r.value[EV_GINI] - 0.5) < TOL);
    /* hit: u1 via c3 (novel, 1 positive), u2 via c2; u5 none -> 2/3 */
    assert_true(fabs(r.value[EV_HIT] - 2.0 / 3) < TOL);
    /* pooled: u1 (1+2 events, 1+1 pos), u2 (2, 2), u5 (1, 0) -> 4/6; per user (2/3 + 1 + 0)/3 = 5/9 */
    assert_true(fabs(r.value[EV_POS_POOLED] - 4.0 / 6) < TOL);
    assert_true(fabs(r.value[EV_POS_USER] - 5.0 / 9) < TOL);
    /* collective: u1 (c0,c1,c3) = 1; u2 and u5 (c1,c0,c2) = 0.5 -> (1 + .5 + .5)/3 */
    assert_true(fabs(r.value[EV_COLLECTIVE] - 2.0 / 3) < TOL);
    /* expansion: u1 c3, u2 c2 -> 2/3 */
    assert_true(fabs(r.value[EV_EXPANSION] - 2.0 / 3) < TOL);
    /* the bootstrap interval contains the point estimate of every defined metric */
    for (int m = 0; m < EV_N_METRICS; m++) {
        if (isnan(r.value[m])) continue;
        assert_true(r.lo[m] <= r.value[m] + TOL && r.value[m] <= r.hi[m] + TOL);
    }
    fixture_free(&f);
}

static void test_baselines(void **state) {
    (void)state;
    fixture f;
    fixture_build(&f);
    ev_baseline pop, tr, rnd;
    ev_baseline_init(&pop, EV_BASE_POPULAR, &f.d, 0);
    ev_baseline_init(&tr, EV_BASE_TRANSITION, &f.d, 0);
    ev_baseline_init(&rnd, EV_BASE_RANDOM, &f.d, 7);
    int32_t out[4];
    /* popular: c0 (5) > c1 (3) > c2 (1) = c3 (1, larger id) */
    assert_int_equal(ev_baseline_serve(&pop, (int32_t[]){0, 1}, 2, out, 2), 2);
    assert_int_equal(out[0], 2), assert_int_equal(out[1], 3);
    assert_int_equal(ev_baseline_serve(&pop, (int32_t[]){1, 3}, 2, out, 1), 1);
    assert_int_equal(out[0], 0);
    /* transition: (c0,c2) -> c3 by the K=2 table although c1 is more popular; then the K=1
     * back-off from c2 has only c3 (taken), so popularity gives c1 */
    assert_int_equal(ev_baseline_serve(&tr, (int32_t[]){0, 2}, 2, out, 2), 2);
    assert_int_equal(out[0], 3), assert_int_equal(out[1], 1);
    /* (c1,c0): no K=2 transitions; back-off from c0: c0->c1 (in context) and c0->c2 -> c2 */
    assert_int_equal(ev_baseline_serve(&tr, (int32_t[]){1, 0}, 2, out, 1), 1);
    assert_int_equal(out[0], 2);
    /* at most M - K clusters exist outside the context */
    assert_int_equal(ev_baseline_serve(&tr, (int32_t[]){1, 0}, 2, out, 4), 2);
    /* random: never a context cluster, never a repeat, the same for the same context, and every
     * non-context cluster reachable */
    int seen[4] = {0};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            if (a == b) continue;
            int32_t ctx[2] = {a, b}, o2[2];
            int n = ev_baseline_serve(&rnd, ctx, 2, out, 2);
            assert_int_equal(n, 2);
            assert_int_equal(ev_baseline_serve(&rnd, ctx, 2, o2, 2), 2);
            assert_true(out[0] != out[1]);
            for (int j = 0; j < 2; j++) {
                assert_true(out[j] != a && out[j] != b && out[j] >= 0 && out[j] < 4);
                assert_int_equal(out[j], o2[j]);
                seen[out[j]] = 1;
            }
        }
    for (int c = 0; c < 4; c++) assert_true(seen[c]);
    /* popular / transition never serve a context cluster either */
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            if (a == b) continue;
            int32_t ctx[2] = {a, b};
            for (int kind = 0; kind < 2; kind++) {
                int n = ev_baseline_serve(kind ? &tr : &pop, ctx, 2, out, 4);
                assert_int_equal(n, 2);
                for (int j = 0; j < n; j++) assert_true(out[j] != a && out[j] != b);
            }
        }
    ev_baseline_free(&pop);
    ev_baseline_free(&tr);
    ev_baseline_free(&rnd);
    fixture_free(&f);
}

/* n users with context (c0, c1) who each, in the test window, engage c2 once, positively with
 * probability 1/2 (seeded). The arm serves c2: the hit rate is a mean of Bernoulli(1/2). */
static void coin_fixture(fixture *f, int n, uint64_t seed) {
    memset(f, 0, sizeof *f);
    sd_err err = {0};
    sd_rng r;
    sd_rng_seed(&r, seed);
    ds_builder *b = ds_builder_new();
    for (int u = 1; u <= n; u++) {
        add(b, u, 1, 10, 5), add(b, u, 3, 20, 5);
        add(b, u, 5, 300, sd_rng_uniform(&r) < 0.5 ? 5 : 1);
    }
    assert_int_equal(ds_builder_finish(b, &f->ds, &err), SD_OK);
    f->tx.n_clusters = 4;
    f->tx.n_items = f->ds.n_items;
    f->tx.item_cluster = sd_malloc(sizeof(int32_t) * (size_t)f->ds.n_items);
    for (int64_t i = 0; i < f->ds.n_items; i++) f->tx.item_cluster[i] = (int32_t)((f->ds.item_ids[i] - 1) / 2);
    f->split = (ds_split){100, 200};
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    assert_int_equal(ev_data_build(&f->d, &f->ds, &f->split, &f->tx, 2, &rule, &err), SD_OK);
}

static void test_bootstrap_contains_and_shrinks(void **state) {
    (void)state;
    double width[2];
    int sizes[2] = {40, 400};
    for (int s = 0; s < 2; s++) {
        fixture f;
        coin_fixture(&f, sizes[s], 11);
        ev_arm arm = {"fixed", 0, 0, NULL, fixed_arm, NULL};
        ev_opts o = EV_OPTS_DEFAULT;
        ev_result r;
        sd_err err = {0};
        assert_int_equal(ev_run(&f.d, &arm, 1, &o, &r, &err), SD_OK);
        assert_int_equal(f.d.n_users, sizes[s]);
        assert_true(r.lo[EV_HIT] <= r.value[EV_HIT] && r.value[EV_HIT] <= r.hi[EV_HIT]);
        width[s] = r.hi[EV_HIT] - r.lo[EV_HIT];
        /* normal approximation of the 95% width: 2 * 1.96 * sqrt(p(1-p)/n); the bootstrap with 200
         * resamples matches it within ~25%, so allow 40% either way */
        double p = r.value[EV_HIT], expect = 2 * 1.96 * sqrt(p * (1 - p) / sizes[s]);
        assert_true(width[s] > 0.6 * expect && width[s] < 1.4 * expect);
        /* same seed, same interval */
        ev_result r2;
        assert_int_equal(ev_run(&f.d, &arm, 1, &o, &r2, &err), SD_OK);
        assert_true(r2.lo[EV_HIT] == r.lo[EV_HIT] && r2.hi[EV_HIT] == r.hi[EV_HIT]);
        fixture_free(&f);
    }
    /* 10x the users: width shrinks by ~sqrt(10) = 3.2; require at least 2x */
    assert_true(width[1] < width[0] / 2);
    /* the plain mean bootstrap too */
    double x[100], lo, hi;
    for (int i = 0; i < 100; i++) x[i] = i % 2;
    ev_bootstrap_mean(x, 100, 200, 3, &lo, &hi);
    assert_true(lo < 0.5 && hi > 0.5 && hi - lo < 0.3 && hi - lo > 0.1);
}

static void test_bad_options(void **state) {
    (void)state;
    fixture f;
    fixture_build(&f);
    ev_arm arm = {"fixed", 0, 0, NULL, fixed_arm, NULL};
    ev_opts o = EV_OPTS_DEFAULT;
    o.serve = 0;
    ev_result r;
    sd_err err = {0};
    assert_int_equal(ev_run(&f.d, &arm, 1, &o, &r, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "--serve"));
    fixture_free(&f);
}

static void test_arm_names(void **state) {
    (void)state;
    char name[64];
    int n;
    ev_arm_name_of_table("explore_n16.tbl", name, sizeof name, &n);
    assert_string_equal(name, "best-of-16");
    assert_int_equal(n, 16);
    ev_arm_name_of_table("explore_n1.tbl", name, sizeof name, &n);
    assert_string_equal(name, "best-of-1 (novelty alone)");
    assert_int_equal(n, 1);
    ev_arm_name_of_table("single_n1.tbl", name, sizeof name, &n);
    assert_string_equal(name, "single model");
    ev_arm_name_of_table("other.tbl", name, sizeof name, &n);
    assert_string_equal(name, "other");
    assert_int_equal(n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_contexts_and_counts),
        cmocka_unit_test(test_metrics_serve1),
        cmocka_unit_test(test_metrics_serve2),
        cmocka_unit_test(test_baselines),
        cmocka_unit_test(test_bootstrap_contains_and_shrinks),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_arm_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
