/* test_eval_arms.c - the evaluation arms that rank by counts, feedback and truth, on hand-made
 * fixtures with answers computed by hand below: the feedback-rate arm (threshold, back-off to
 * the last cluster, then popularity), the user oracle and the context oracle (NaN last), like_frac
 * (a paired ratio), the support of contexts and its buckets, and the last-K-distinct update
 * jr_ctx_push that both journeys and evaluation use. */
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
#include "serendip/journeys.h"
#include "serendip/taxonomy.h"

#define TOL 1e-12

/* A hand-made ev_data with M = 5, K = 2 and popularity c0 > c1 > c2 > c3 > c4 (no dataset). */
static void small_data(ev_data *d, int n_users, const int32_t *ctx) {
    memset(d, 0, sizeof *d);
    d->K = 2, d->M = 5, d->n_users = n_users;
    d->pop = sd_malloc(sizeof(int64_t) * 5);
    d->by_pop = sd_malloc(sizeof(int32_t) * 5);
    for (int c = 0; c < 5; c++) d->pop[c] = 50 - 10 * c, d->by_pop[c] = c;
    d->ctx = sd_malloc(sizeof(int32_t) * 2 * (size_t)(n_users + 1));
    memcpy(d->ctx, ctx, sizeof(int32_t) * 2 * (size_t)n_users);
}

static void expect_list(const int32_t *got, int n, const int32_t *want, int n_want) {
    assert_int_equal(n, n_want);
    for (int i = 0; i < n; i++) assert_int_equal(got[i], want[i]);
}

#define FB(a, b, cand, users, exp, pos) {{a, b, -1, -1}, cand, users, exp, pos, (float)(pos) / (exp), 0}

/* Train feedback tuples (context, candidate: users, exposures, positives), sorted by
 * (context index c1*5 + c2, candidate):
 *   (0,1)->2: 3 users, 5/10 = 0.5      (0,1)->3: 4 users, 3/4 = 0.75     (0,1)->4: 2 users, 2/2
 *   (2,1)->0: 5 users, 1/10 = 0.1      (2,1)->4: 2 users, 2/8
 * Last-cluster level (context ending in c1), users summed: c4: 2 + 2 = 4 users, (2+2)/(2+8) = 0.4;
 *   c3: 4 users, 0.75; c2: 3 users, 0.5; c0: 5 users, 0.1. */
static const jr_feedback fb_tuples[5] = {
    FB(0, 1, 2, 3, 10, 5), FB(0, 1, 3, 4, 4, 3), FB(0, 1, 4, 2, 2, 2), FB(2, 1, 0, 5, 10, 1), FB(2, 1, 4, 2, 8, 2),
};

static void test_feedback_rate_arm(void **state) {
    (void)state;
    ev_data d;
    small_data(&d, 1, (int32_t[]){0, 1});
    jr_journeys j = {0};
    j.k = 2, j.n_clusters = 5, j.n_feedback = 5, j.feedback = fb_tuples;
    ev_baseline b;
    sd_err err = {0};
    assert_int_equal(ev_baseline_init(&b, EV_KIND_FEEDBACK, &d, 0, &j, 3, &err), SD_OK);
    int32_t out[5];
    /* (0,1): c3 0.75 and c2 0.5 pass the 3-user threshold; c4 (2 users) backs off to the last
     * cluster: 4 users, 0.4 -> [c3, c2, c4] */
    expect_list(out, ev_baseline_serve(&b, 0, (int32_t[]){0, 1}, 2, out, 5), (int32_t[]){3, 2, 4}, 3);
    /* (2,1): c0 0.1 at the context level beats the back-off level's c3 0.75 and c4 0.4; the
     * context tuple (2,1)->4 has 2 users only -> [c0, c3, c4] */
    expect_list(out, ev_baseline_serve(&b, 0, (int32_t[]){2, 1}, 2, out, 5), (int32_t[]){0, 3, 4}, 3);
    /* (3,4): no feedback at either level -> popularity [c0, c1, c2] */
    expect_list(out, ev_baseline_serve(&b, 0, (int32_t[]){3, 4}, 2, out, 5), (int32_t[]){0, 1, 2}, 3);
    /* max is respected */
    expect_list(out, ev_baseline_serve(&b, 0, (int32_t[]){0, 1}, 2, out, 1), (int32_t[]){3}, 1);
    ev_baseline_free(&b);
    /* --min-users 1: (0,1)->4 (1.0) now counts at the context level -> [c4, c3, c2] */
    assert_int_equal(ev_baseline_init(&b, EV_KIND_FEEDBACK, &d, 0, &j, 1, &err), SD_OK);
    expect_list(out, ev_baseline_serve(&b, 0, (int32_t[]){0, 1}, 2, out, 5), (int32_t[]){4, 3, 2}, 3);
    ev_baseline_free(&b);
    /* --min-users 5: only (2,1)->0 passes, at the last level c0 (5 users) too -> (0,1): c0 is in
     * the context, so popularity [c2, c3, c4]; (2,1): [c0, c3, c4] by popularity after c0 */
    assert_int_equal(ev_baseline_init(&b, EV_KIND_FEEDBACK, &d, 0, &j, 5, &err), SD_OK);
    expect_list(out, ev_baseline_serve(&b, 0, (int32_t[]){0, 1}, 2, out, 5), (int32_t[]){2, 3, 4}, 3);
    expect_list(out, ev_baseline_serve(&b, 0, (int32_t[]){2, 1}, 2, out, 5), (int32_t[]){0, 3, 4}, 3);
    ev_baseline_free(&b);
    /* journeys of another K are refused with the stage to rerun; min_users < 1 is a usage error */
    j.k = 3;
    assert_int_equal(ev_baseline_init(&b, EV_KIND_FEEDBACK, &d, 0, &j, 3, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "serendip journeys"));
    j.k = 2;
    assert_int_equal(ev_baseline_init(&b, EV_KIND_FEEDBACK, &d, 0, &j, 0, &err), SD_ERR_USAGE);
    ev_data_free(&d);
}

/* Three users: u0 and u1 share context (0,1), u2 has (2,3). True like-probabilities:
 *   u0: .9 .8 .1 .5 .3     u1: .9 .8 .7 .1 .2     u2: .1 .2 .3 .4 NaN
 * User oracle: u0 [c3 .5, c4 .3, c2 .1]; u1 [c2, c4, c3]; u2 [c1 .2, c0 .1, c4 unknown last].
 * Context oracle, (0,1): means c2 .4, c3 .3, c4 .25 -> [c2, c3, c4] for u0 and u1;
 * (2,3): u2 alone -> [c1, c0, c4]. */
static void test_oracles(void **state) {
    (void)state;
    ev_data d;
    small_data(&d, 3, (int32_t[]){0, 1, 0, 1, 2, 3});
    static const float like[15] = {.9f, .8f, .1f, .5f, .3f, .9f, .8f, .7f, .1f, .2f, .1f, .2f, .3f, .4f, NAN};
    d.like = sd_malloc(sizeof like);
    memcpy(d.like, like, sizeof like);
    ev_baseline o, co;
    sd_err err = {0};
    assert_int_equal(ev_baseline_init(&o, EV_KIND_ORACLE, &d, 0, NULL, 3, &err), SD_OK);
    assert_int_equal(ev_baseline_init(&co, EV_KIND_CONTEXT_ORACLE, &d, 0, NULL, 3, &err), SD_OK);
    int32_t out[5];
    expect_list(out, ev_baseline_serve(&o, 0, d.ctx, 2, out, 5), (int32_t[]){3, 4, 2}, 3);
    expect_list(out, ev_baseline_serve(&o, 1, d.ctx + 2, 2, out, 5), (int32_t[]){2, 4, 3}, 3);
    expect_list(out, ev_baseline_serve(&o, 2, d.ctx + 4, 2, out, 5), (int32_t[]){1, 0, 4}, 3);
    expect_list(out, ev_baseline_serve(&co, 0, d.ctx, 2, out, 5), (int32_t[]){2, 3, 4}, 3);
    expect_list(out, ev_baseline_serve(&co, 1, d.ctx + 2, 2, out, 5), (int32_t[]){2, 3, 4}, 3);
    expect_list(out, ev_baseline_serve(&co, 2, d.ctx + 4, 2, out, 5), (int32_t[]){1, 0, 4}, 3);
    assert_int_equal(ev_baseline_serve(&o, 3, d.ctx, 2, out, 5), -1); /* not an evaluated user */
    ev_baseline_free(&o);
    ev_baseline_free(&co);
    ev_data_free(&d);
}

static void test_like_frac(void **state) {
    (void)state;
    /* point: random .3, oracle .9, arm .6 -> (.6 - .3) / (.9 - .3) = 0.5. The resamples move all
     * three together (paired) and every resample's ratio is exactly 0.5, so the interval is
     * [0.5, 0.5]: an unpaired interval would be wide. */
    double rb[3] = {.3, .2, .4}, ob[3] = {.9, .8, 1.0}, ab[3] = {.6, .5, .7};
    ev_result r = {0}, o = {0}, a = {0};
    r.value[EV_LIKE] = .3, o.value[EV_LIKE] = .9, a.value[EV_LIKE] = .6;
    r.B = o.B = a.B = 3;
    r.boot = sd_calloc(3 * EV_N_METRICS, sizeof(double));
    o.boot = sd_calloc(3 * EV_N_METRICS, sizeof(double));
    a.boot = sd_calloc(3 * EV_N_METRICS, sizeof(double));
    memcpy(r.boot + 3 * EV_LIKE, rb, sizeof rb);
    memcpy(o.boot + 3 * EV_LIKE, ob, sizeof ob);
    memcpy(a.boot + 3 * EV_LIKE, ab, sizeof ab);
    double v, lo, hi;
    assert_int_equal(ev_like_frac(&a, &r, &o, &v, &lo, &hi), 1);
    assert_true(fabs(v - 0.5) < 1e-9 && fabs(lo - 0.5) < 1e-9 && fabs(hi - 0.5) < 1e-9);
    /* the oracle itself is 1, random 0 */
    assert_int_equal(ev_like_frac(&o, &r, &o, &v, &lo, &hi), 1);
    assert_true(fabs(v - 1.0) < 1e-9);
    assert_int_equal(ev_like_frac(&r, &r, &o, &v, &lo, &hi), 1);
    assert_true(fabs(v) < 1e-9);
    /* oracle == random: undefined */
    assert_int_equal(ev_like_frac(&a, &r, &r, &v, &lo, &hi), 0);
    assert_true(isnan(v) && isnan(lo));
    ev_result_free(&r), ev_result_free(&o), ev_result_free(&a);
}

static void add(ds_builder *b, int u, int item, int ts, float r) { ds_builder_add_event(b, u, item, ts, r, DS_NO_VALUE); }

/* Ranks [c4, c0] whatever the context. */
static int c4_c0_arm(void *state, int32_t user, const int32_t *ctx, int k, int32_t *out, int max) {
    (void)state, (void)user, (void)ctx, (void)k;
    int n = 0;
    if (n < max) out[n++] = 4;
    if (n < max) out[n++] = 0;
    return n;
}

/* Support of contexts. Clusters c0..c4, items 2c+1 and 2c+2 in cluster c; train ts < 100, test
 * ts >= 200; every rating 5 (positive) unless said.
 *   users 1-10: c2, c0, c1 -> ten transitions (c2,c0) -> c1; no test event (not evaluated)
 *   user 11: c0, c1, c2 -> (c0,c1) -> c2;  user 12: c0, c1, c3 -> (c0,c1) -> c3  (not evaluated)
 *   user 20: c0, c1; test c4 r5 -> context (c0,c1), support 2 -> bucket "1-9"
 *   user 21: c1, c2, c0; test c4 r1 -> context (c2,c0), support 10 -> bucket "10+"
 *   user 22: c3, c4; test c0 r5 -> context (c3,c4), support 0 -> bucket "0"
 * The arm ranking [c4, c0] serves u20 c4 (positive), u21 c4 (negative), u22 c0 (c4 is seen): the
 * pooled positive rate is 1 in buckets "0" and "1-9", 0 in "10+", 2/3 overall. */
static void test_support_buckets(void **state) {
    (void)state;
    assert_int_equal(ev_support_bucket_of(0), 0);
    assert_int_equal(ev_support_bucket_of(1), 1);
    assert_int_equal(ev_support_bucket_of(9), 1);
    assert_int_equal(ev_support_bucket_of(10), 2);
    assert_int_equal(ev_support_bucket_of(123456), 2);
    assert_string_equal(ev_support_buckets[0].name, "0");
    assert_string_equal(ev_support_buckets[1].name, "1-9");
    assert_string_equal(ev_support_buckets[2].name, "10+");

    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    for (int i = 1; i <= 10; i++) {
        char t[32];
        snprintf(t, sizeof t, "item %d", i);
        assert_int_equal(ds_builder_add_item(b, i, t, "tag", &err), SD_OK);
    }
    for (int u = 1; u <= 10; u++) add(b, u, 5, 10, 5), add(b, u, 1, 20, 5), add(b, u, 3, 30, 5);
    add(b, 11, 1, 10, 5), add(b, 11, 3, 20, 5), add(b, 11, 5, 30, 5);
    add(b, 12, 1, 10, 5), add(b, 12, 3, 20, 5), add(b, 12, 7, 30, 5);
    add(b, 20, 1, 10, 5), add(b, 20, 3, 20, 5), add(b, 20, 9, 300, 5);
    add(b, 21, 3, 10, 5), add(b, 21, 5, 20, 5), add(b, 21, 1, 30, 5), add(b, 21, 10, 300, 1);
    add(b, 22, 7, 10, 5), add(b, 22, 9, 20, 5), add(b, 22, 2, 300, 5);
    ds_dataset ds;
    assert_int_equal(ds_builder_finish(b, &ds, &err), SD_OK);
    tx_taxonomy tx = {0};
    tx.n_top = 1, tx.n_clusters = 5, tx.n_items = ds.n_items;
    tx.item_cluster = sd_malloc(sizeof(int32_t) * (size_t)ds.n_items);
    for (int64_t i = 0; i < ds.n_items; i++) tx.item_cluster[i] = (int32_t)((ds.item_ids[i] - 1) / 2);
    ds_split split = {.train_end = 100, .valid_end = 200};
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    ev_data d;
    assert_int_equal(ev_data_build(&d, &ds, &split, &tx, 2, &rule, &err), SD_OK);
    assert_int_equal(d.n_users, 3);
    int64_t want_support[3] = {2, 10, 0}; /* users 20, 21, 22 in dataset order */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ds.user_ids[d.user[i]], 20 + i);
        assert_int_equal(d.support[i], want_support[i]);
    }
    ev_arm arm = {"c4 then c0", EV_KIND_LLM, 1, NULL, c4_c0_arm, NULL};
    ev_opts o = EV_OPTS_DEFAULT;
    ev_result res, by[EV_N_SUPPORT];
    int64_t n_support[EV_N_SUPPORT];
    assert_int_equal(ev_run(&d, &arm, 1, &o, &res, &err), SD_OK);
    assert_true(fabs(res.value[EV_POS_POOLED] - 2.0 / 3) < TOL);
    ev_run_by_support(&d, &res, 1, &o, by, n_support);
    assert_int_equal(n_support[0], 1), assert_int_equal(n_support[1], 1), assert_int_equal(n_support[2], 1);
    assert_true(fabs(by[0].value[EV_POS_POOLED] - 1.0) < TOL);
    assert_true(fabs(by[1].value[EV_POS_POOLED] - 1.0) < TOL);
    assert_true(fabs(by[2].value[EV_POS_POOLED] - 0.0) < TOL);
    for (int k = 0; k < EV_N_SUPPORT; k++) {
        assert_int_equal(by[k].users, 1);
        assert_int_equal(by[k].served, 1);
        ev_result_free(&by[k]);
    }
    ev_result_free(&res);
    ev_data_free(&d);
    free(tx.item_cluster);
    ds_free(&ds);
}

static void test_ctx_push(void **state) {
    (void)state;
    int32_t ctx[3];
    int n = 0;
    jr_ctx_push(ctx, &n, 2, 7); /* () + 7 -> (7) */
    assert_int_equal(n, 1), assert_int_equal(ctx[0], 7);
    jr_ctx_push(ctx, &n, 2, 7); /* a repeat changes nothing */
    assert_int_equal(n, 1), assert_int_equal(ctx[0], 7);
    jr_ctx_push(ctx, &n, 2, 3); /* (7, 3) */
    assert_int_equal(n, 2), assert_int_equal(ctx[0], 7), assert_int_equal(ctx[1], 3);
    jr_ctx_push(ctx, &n, 2, 7); /* 7 moves to the most recent end: (3, 7) */
    assert_int_equal(n, 2), assert_int_equal(ctx[0], 3), assert_int_equal(ctx[1], 7);
    jr_ctx_push(ctx, &n, 2, 5); /* full: the oldest (3) falls off: (7, 5) */
    assert_int_equal(n, 2), assert_int_equal(ctx[0], 7), assert_int_equal(ctx[1], 5);
    /* K = 3: the journey A B A C B -> last 3 distinct, most recent last: (A, C, B) */
    n = 0;
    int32_t journey[5] = {0, 1, 0, 2, 1};
    for (int i = 0; i < 5; i++) jr_ctx_push(ctx, &n, 3, journey[i]);
    assert_int_equal(n, 3), assert_int_equal(ctx[0], 0), assert_int_equal(ctx[1], 2), assert_int_equal(ctx[2], 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feedback_rate_arm), cmocka_unit_test(test_oracles),  cmocka_unit_test(test_like_frac),
        cmocka_unit_test(test_support_buckets),   cmocka_unit_test(test_ctx_push),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
