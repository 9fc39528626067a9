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
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/base.h"
#include "serendip/dataset.h"
#include "serendip/eval.h"
#include "serendip/journeys.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"

#include <unistd.h>

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
        char t[32];
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
    f->split = (ds_split){.train_end = 100, .valid_end = 200};
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    assert_int_equal(ev_data_build(&f->d, &f->ds, &f->split, &f->tx, 2, &rule, &err), SD_OK);
}

static void fixture_free(fixture *f) {
    ev_data_free(&f->d);
    free(f->tx.item_cluster);
    ds_free(&f->ds);
}

static int32_t fixed_arm_list[2] = {2, 3};
static int fixed_arm(void *state, int32_t user, const int32_t *ctx, int k, int32_t *out, int max) {
    (void)state, (void)user, (void)ctx, (void)k;
    int n = 0;
    for (; n < max && n < 2; n++) out[n] = fixed_arm_list[n];
    return n;
}

/* An arm ranking only fixed_arm_list[0]. */
static int one_arm(void *state, int32_t user, const int32_t *ctx, int k, int32_t *out, int max) {
    (void)state, (void)user, (void)ctx, (void)k;
    if (max < 1) return 0;
    out[0] = fixed_arm_list[0];
    return 1;
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
    /* the same contexts as the journeys stage's definition */
    for (int i = 0; i < f.d.n_users; i++) {
        int32_t ctx[2];
        ds_positive_rule rule = DS_POSITIVE_DEFAULT;
        assert_int_equal(jr_context_at(&f.ds, &f.tx, &rule, f.d.user[i], f.split.train_end, 2, ctx), 2);
        assert_int_equal(ctx[0], f.d.ctx[i * 2]), assert_int_equal(ctx[1], f.d.ctx[i * 2 + 1]);
    }
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

/* The metric definitions on given served lists (no filter): ev_metrics_compute. */
static void metrics_of(const fixture *f, const int32_t *served, int S, double *v, int64_t *n) {
    ev_metrics_compute(&f->d, served, S, NULL, f->d.n_users, v, n);
}

static void test_metrics_serve1(void **state) {
    (void)state;
    fixture f;
    fixture_build(&f);
    double v[EV_N_METRICS];
    int64_t n[EV_N_METRICS];
    int32_t served[3] = {2, 2, 2}; /* c2 to every user */
    metrics_of(&f, served, 1, v, n);
    /* novelty: u1 saw c2 in the valid window -> 2 novel of 3 */
    assert_true(fabs(v[EV_NOVELTY] - 2.0 / 3) < TOL);
    assert_true(fabs(v[EV_COVERAGE] - 0.25) < TOL); /* {c2} of 4 */
    assert_true(fabs(v[EV_ENTROPY] - 0.0) < TOL);   /* one cluster */
    /* Gini of counts (0,0,0,3): 2*(4*3)/(4*3) - 5/4 = 0.75 */
    assert_true(fabs(v[EV_GINI] - 0.75) < TOL);
    /* hit: u2 (c2 novel, 2 positives) only -> 1/3 */
    assert_true(fabs(v[EV_HIT] - 1.0 / 3) < TOL);
    /* positive rate pooled (1 + 2 + 0) / (1 + 2 + 1) = 3/4; per user (1 + 1 + 0) / 3 */
    assert_true(fabs(v[EV_POS_POOLED] - 0.75) < TOL);
    assert_true(fabs(v[EV_POS_USER] - 2.0 / 3) < TOL);
    /* collective: u1's (c0,c1,c2) has no test feedback; u2, u5 get (c1,c0,c2) = 0.5 */
    assert_true(fabs(v[EV_COLLECTIVE] - 0.5) < TOL);
    assert_int_equal(n[EV_COLLECTIVE], 2);
    /* expansion: u2 one new cluster; mean 1/3 */
    assert_true(fabs(v[EV_EXPANSION] - 1.0 / 3) < TOL);
    assert_true(isnan(v[EV_LIKE])); /* no world truth */
    /* simulated like-probability: the mean over served slots with a known value; the served c2
     * has 0.2 for the first user, 0.4 for the second, unknown (NaN) for the third -> 0.3 */
    f.d.like = sd_malloc(sizeof(float) * 3 * 4);
    for (int i = 0; i < 12; i++) f.d.like[i] = 0.9f;
    f.d.like[0 * 4 + 2] = 0.2f, f.d.like[1 * 4 + 2] = 0.4f, f.d.like[2 * 4 + 2] = NAN;
    metrics_of(&f, served, 1, v, n);
    assert_true(fabs(v[EV_LIKE] - 0.3) < 1e-7); /* float inputs: 1e-7 */
    assert_int_equal(n[EV_LIKE], 2);
    fixture_free(&f);
}

static void test_metrics_serve2(void **state) {
    (void)state;
    fixture f;
    fixture_build(&f);
    double v[EV_N_METRICS];
    int64_t n[EV_N_METRICS];
    int32_t served[6] = {2, 3, 2, 3, 2, 3}; /* c2, c3 to every user */
    metrics_of(&f, served, 2, v, n);
    /* novelty: u1 1 of 2, u2 2, u5 2 -> 5/6 */
    assert_true(fabs(v[EV_NOVELTY] - 5.0 / 6) < TOL);
    assert_true(fabs(v[EV_COVERAGE] - 0.5) < TOL);
    assert_true(fabs(v[EV_ENTROPY] - 1.0) < TOL); /* 3 and 3: one bit */
    /* Gini of (0,0,3,3): 2*(3*3 + 4*3)/(4*6) - 5/4 = 0.5 */
    assert_true(fabs(v[EV_GINI] - 0.5) < TOL);
    /* hit: u1 via c3 (novel, 1 positive), u2 via c2; u5 none -> 2/3 */
    assert_true(fabs(v[EV_HIT] - 2.0 / 3) < TOL);
    /* pooled: u1 (1+2 events, 1+1 pos), u2 (2, 2), u5 (1, 0) -> 4/6; per user (2/3 + 1 + 0)/3 = 5/9 */
    assert_true(fabs(v[EV_POS_POOLED] - 4.0 / 6) < TOL);
    assert_true(fabs(v[EV_POS_USER] - 5.0 / 9) < TOL);
    /* collective: u1 (c0,c1,c3) = 1; u2 and u5 (c1,c0,c2) = 0.5 -> (1 + .5 + .5)/3 */
    assert_true(fabs(v[EV_COLLECTIVE] - 2.0 / 3) < TOL);
    /* expansion: u1 c3, u2 c2 -> 2/3 */
    assert_true(fabs(v[EV_EXPANSION] - 2.0 / 3) < TOL);
    /* a resample given as idx: user 2 twice -> that user's figures */
    int32_t idx[2] = {1, 1};
    ev_metrics_compute(&f.d, served, 2, idx, 2, v, n);
    assert_true(fabs(v[EV_POS_POOLED] - 1.0) < TOL && fabs(v[EV_HIT] - 1.0) < TOL);
    fixture_free(&f);
}

/* ev_run applies the per-user filter: the fixed arm ranks [c2, c3] for everyone; u1 has seen c2
 * (valid window) and is served c3, u2 and u5 get c2. */
static void test_run_filters_per_user(void **state) {
    (void)state;
    fixture f;
    fixture_build(&f);
    ev_arm arm = {"fixed", EV_KIND_LLM, 0, NULL, fixed_arm, NULL};
    ev_opts o = EV_OPTS_DEFAULT;
    ev_result r;
    sd_err err = {0};
    assert_int_equal(ev_run(&f.d, &arm, 1, &o, &r, &err), SD_OK);
    int u1 = eval_index(&f, 1), u2 = eval_index(&f, 2), u5 = eval_index(&f, 5);
    assert_int_equal(r.list[u1], 3), assert_int_equal(r.list[u2], 2), assert_int_equal(r.list[u5], 2);
    assert_true(fabs(r.value[EV_NOVELTY] - 1.0) < TOL);
    /* hit: u1 (c3: 1 positive), u2 (c2: 2) -> 2/3; pooled (1 + 2 + 0) / (2 + 2 + 1) = 3/5 */
    assert_true(fabs(r.value[EV_HIT] - 2.0 / 3) < TOL);
    assert_true(fabs(r.value[EV_POS_POOLED] - 0.6) < TOL);
    assert_int_equal(r.fallback_users, 0);
    assert_int_equal(r.served, 3);
    /* the bootstrap interval contains the point estimate of every defined metric */
    for (int m = 0; m < EV_N_METRICS; m++) {
        if (isnan(r.value[m])) continue;
        assert_true(r.lo[m] <= r.value[m] + TOL && r.value[m] <= r.hi[m] + TOL);
    }
    ev_result_free(&r);
    /* a list that runs out: only [c2]. u1 falls back to the most popular unseen train cluster:
     * by popularity c0 (seen), c1 (seen), c2 (seen), c3 -> c3; counted */
    fixed_arm_list[0] = 2;
    ev_arm short_arm = {"short", EV_KIND_LLM, 0, NULL, one_arm, NULL};
    assert_int_equal(ev_run(&f.d, &short_arm, 1, &o, &r, &err), SD_OK);
    assert_int_equal(r.list[u1], 3), assert_int_equal(r.list[u2], 2);
    assert_int_equal(r.fallback_users, 1);
    assert_int_equal(r.fell_back[u1], 1), assert_int_equal(r.fell_back[u2], 0);
    ev_result_free(&r);
    /* S = 2 from [c2]: u2 gets c2 then the fallback c3 (c0, c1 seen); u1 gets c3 and nothing more
     * is unseen, so one slot stays empty */
    o.serve = 2;
    assert_int_equal(ev_run(&f.d, &short_arm, 1, &o, &r, &err), SD_OK);
    assert_int_equal(r.list[u2 * 2], 2), assert_int_equal(r.list[u2 * 2 + 1], 3);
    assert_int_equal(r.list[u1 * 2], 3), assert_int_equal(r.list[u1 * 2 + 1], -1);
    assert_int_equal(r.fallback_users, 3);
    assert_int_equal(r.served, 5);
    ev_result_free(&r);
    fixture_free(&f);
}

static void test_baselines(void **state) {
    (void)state;
    fixture f;
    fixture_build(&f);
    ev_baseline pop, tr, bo, rnd;
    sd_err err = {0};
    assert_int_equal(ev_baseline_init(&pop, EV_KIND_POPULAR, &f.d, 0, NULL, 3, &err), SD_OK);
    assert_int_equal(ev_baseline_init(&tr, EV_KIND_TRANSITION, &f.d, 0, NULL, 3, &err), SD_OK);
    assert_int_equal(ev_baseline_init(&bo, EV_KIND_BACKOFF, &f.d, 0, NULL, 3, &err), SD_OK);
    assert_int_equal(ev_baseline_init(&rnd, EV_KIND_RANDOM, &f.d, 7, NULL, 3, &err), SD_OK);
    int32_t out[4];
    /* popular: c0 (5) > c1 (3) > c2 (1) = c3 (1, larger id) */
    assert_int_equal(ev_baseline_serve(&pop, 0, (int32_t[]){0, 1}, 2, out, 2), 2);
    assert_int_equal(out[0], 2), assert_int_equal(out[1], 3);
    assert_int_equal(ev_baseline_serve(&pop, 0, (int32_t[]){1, 3}, 2, out, 1), 1);
    assert_int_equal(out[0], 0);
    /* backoff: (c0,c2) -> c3 by the K=2 table although c1 is more popular; then the K=1
     * back-off from c2 has only c3 (taken), so popularity gives c1 */
    assert_int_equal(ev_baseline_serve(&bo, 0, (int32_t[]){0, 2}, 2, out, 2), 2);
    assert_int_equal(out[0], 3), assert_int_equal(out[1], 1);
    /* (c1,c0): no K=2 transitions; back-off from c0: c0->c1 (in context) and c0->c2 -> c2 */
    assert_int_equal(ev_baseline_serve(&bo, 0, (int32_t[]){1, 0}, 2, out, 1), 1);
    assert_int_equal(out[0], 2);
    /* (c1,c2): no K=2 transitions; back-off from c2: c2->c3 -> [c3, c0]. The transition arm has no
     * back-off level: popularity [c0, c3] */
    assert_int_equal(ev_baseline_serve(&bo, 0, (int32_t[]){1, 2}, 2, out, 2), 2);
    assert_int_equal(out[0], 3), assert_int_equal(out[1], 0);
    assert_int_equal(ev_baseline_serve(&tr, 0, (int32_t[]){1, 2}, 2, out, 2), 2);
    assert_int_equal(out[0], 0), assert_int_equal(out[1], 3);
    /* ... but uses its K=2 counts: (c0,c2) -> c3 first */
    assert_int_equal(ev_baseline_serve(&tr, 0, (int32_t[]){0, 2}, 2, out, 1), 1);
    assert_int_equal(out[0], 3);
    /* at most M - K clusters exist outside the context */
    assert_int_equal(ev_baseline_serve(&bo, 0, (int32_t[]){1, 0}, 2, out, 4), 2);
    /* random: never a context cluster, never a repeat, the same for the same context, and every
     * non-context cluster reachable */
    int seen[4] = {0};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            if (a == b) continue;
            int32_t ctx[2] = {a, b}, o2[2];
            int n = ev_baseline_serve(&rnd, 0, ctx, 2, out, 2);
            assert_int_equal(n, 2);
            assert_int_equal(ev_baseline_serve(&rnd, 1, ctx, 2, o2, 2), 2);
            assert_true(out[0] != out[1]);
            for (int j = 0; j < 2; j++) {
                assert_true(out[j] != a && out[j] != b && out[j] >= 0 && out[j] < 4);
                assert_int_equal(out[j], o2[j]);
                seen[out[j]] = 1;
            }
        }
    for (int c = 0; c < 4; c++) assert_true(seen[c]);
    /* no arm ranks a context cluster */
    ev_baseline *all[3] = {&pop, &tr, &bo};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            if (a == b) continue;
            int32_t ctx[2] = {a, b};
            for (int kind = 0; kind < 3; kind++) {
                int n = ev_baseline_serve(all[kind], 0, ctx, 2, out, 4);
                assert_int_equal(n, 2);
                for (int j = 0; j < n; j++) assert_true(out[j] != a && out[j] != b);
            }
        }
    /* the oracles need the truth, the feedback arm journeys.bin, LLM kinds are no baseline */
    ev_baseline x;
    assert_int_equal(ev_baseline_init(&x, EV_KIND_ORACLE, &f.d, 0, NULL, 3, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "world_truth.bin"));
    assert_int_equal(ev_baseline_init(&x, EV_KIND_FEEDBACK, &f.d, 0, NULL, 3, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "journeys.bin"));
    assert_int_equal(ev_baseline_init(&x, EV_KIND_LLM, &f.d, 0, NULL, 3, &err), SD_ERR_USAGE);
    ev_baseline_free(&pop);
    ev_baseline_free(&tr);
    ev_baseline_free(&bo);
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
    f->split = (ds_split){.train_end = 100, .valid_end = 200};
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
        ev_arm arm = {"fixed", EV_KIND_LLM, 0, NULL, fixed_arm, NULL};
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
        ev_result_free(&r);
        ev_result_free(&r2);
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
    ev_arm arm = {"fixed", EV_KIND_LLM, 0, NULL, fixed_arm, NULL};
    ev_opts o = EV_OPTS_DEFAULT;
    o.serve = 0;
    ev_result r;
    sd_err err = {0};
    assert_int_equal(ev_run(&f.d, &arm, 1, &o, &r, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "--serve"));
    ev_result_free(&r);
    fixture_free(&f);
}

static void test_arm_names_and_kinds(void **state) {
    (void)state;
    char name[64];
    ev_arm_name(EV_KIND_LLM, 16, name, sizeof name);
    assert_string_equal(name, "best-of-16");
    ev_arm_name(EV_KIND_LLM, 1, name, sizeof name);
    assert_string_equal(name, "best-of-1 (novelty alone)");
    ev_arm_name(EV_KIND_SINGLE, 1, name, sizeof name);
    assert_string_equal(name, "single model");
    ev_arm_name(EV_KIND_LLM_FEEDBACK, 16, name, sizeof name);
    assert_string_equal(name, "best-of-16 + feedback");
    ev_arm_name(EV_KIND_BACKOFF, 0, name, sizeof name);
    assert_string_equal(name, "backoff transition");
    /* the kind names metrics.json uses, and the table kinds they come from */
    static const char *const names[EV_N_KINDS] = {"random", "popular", "transition", "backoff", "feedback", "feedback_shrunk",
                                                  "oracle", "context_oracle", "llm", "single", "llm_feedback", "rl",
                                                  "llm_pairwise"};
    for (int k = 0; k < EV_N_KINDS; k++) {
        assert_string_equal(ev_kind_name(k), names[k]);
        assert_int_equal(ev_kind_is_llm(k), k >= EV_KIND_LLM);
    }
    assert_string_equal(ev_kind_name(EV_N_KINDS), "unknown");
    for (int32_t t = 1; t <= TBL_KIND_MAX; t++) assert_string_equal(ev_kind_name(ev_kind_of_table(t)), tbl_kind_name(t));
    assert_int_equal(ev_kind_of_table(0), -1);
    assert_int_equal(ev_kind_of_table(TBL_KIND_MAX + 1), -1);
}


/* ---------------------------------------------------------------- workspace + report */

/* Writes a table of the given kind and n for every context of M = 4, K = 2: the first `top`
 * clusters of pref not in it. */
static void write_table_kind(const char *dir, const char *name, const int32_t *pref, int npref, uint64_t tax_hash,
                             int32_t kind, int n) {
    sd_err err = {0};
    tbl_params p = {2, 4, 16, 2, n, 1.0f, 1, tax_hash, 0, 0, 0, 16, kind, 1.0f};
    tbl_builder *b = tbl_builder_new(&p, &err);
    assert_non_null(b);
    for (int64_t i = 0; i < 16; i++) {
        int32_t ctx[2];
        jr_context_from_index(i, 2, 4, ctx);
        if (!jr_context_valid(ctx, 2, 4)) continue;
        tbl_entry e[2];
        int n = 0;
        for (int j = 0; j < npref && n < 2; j++)
            if (pref[j] != ctx[0] && pref[j] != ctx[1]) e[n++] = (tbl_entry){pref[j], 5.0f, -1.0f};
        assert_int_equal(tbl_builder_set(b, i, e, n, 0, &err), SD_OK);
    }
    char *path = sd_path_join(dir, name);
    assert_int_equal(tbl_write(b, path, &err), SD_OK);
    free(path);
    tbl_builder_free(b);
}

static void write_table(const char *dir, const char *name, const int32_t *pref, int npref, uint64_t tax_hash) {
    write_table_kind(dir, name, pref, npref, tax_hash, TBL_KIND_LLM, 1);
}

static void rm_rf(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static char *read_text(const char *path) {
    char *s;
    size_t n;
    sd_err err = {0};
    assert_int_equal(sd_read_file(path, &s, &n, &err), SD_OK);
    return s;
}

static void test_workspace_eval_and_report(void **state) {
    (void)state;
    fixture f;
    fixture_build(&f);
    char dir[] = "/tmp/sdevalXXXXXX";
    assert_non_null(mkdtemp(dir));
    sd_err err = {0};
    char *p = sd_path_join(dir, DS_FILE);
    assert_int_equal(ds_save(&f.ds, p, &err), SD_OK);
    free(p);
    p = sd_path_join(dir, DS_SPLIT_FILE);
    assert_int_equal(ds_split_save(&f.split, p, &err), SD_OK);
    free(p);
    /* complete the hand-built taxonomy so that it can be saved */
    tx_taxonomy *t = &f.tx;
    int32_t parent[4] = {0}, size[4] = {2, 2, 2, 2};
    char *desc[4] = {"zero", "one", "two", "three"}, *top[1] = {"all"};
    int32_t members[8];
    int64_t off[5] = {0, 2, 4, 6, 8};
    for (int c = 0, k = 0; c < 4; c++)
        for (int64_t i = 0; i < f.ds.n_items; i++)
            if (t->item_cluster[i] == c) members[k++] = (int32_t)i;
    t->parent = parent, t->size = size, t->desc = desc, t->top_desc = top, t->members = members, t->member_off = off;
    p = sd_path_join(dir, TX_FILE);
    assert_int_equal(tx_save(t, p, &err), SD_OK);
    free(p);
    char *plans = sd_path_join(dir, "plans");
    assert_int_equal(sd_mkdir_p(plans, &err), SD_OK);
    uint64_t h = tx_hash(t);
    /* kinds and n come from the headers: the file names say nothing */
    write_table_kind(plans, "a.tbl", (int32_t[]){2, 3}, 2, h, TBL_KIND_LLM, 4); /* = the fixed arm */
    write_table_kind(plans, "b.tbl", (int32_t[]){3, 2}, 2, h, TBL_KIND_LLM, 1);
    write_table_kind(plans, "explore_n8.tbl", (int32_t[]){0, 1, 2, 3}, 4, h, TBL_KIND_SINGLE, 1);
    jr_journeys jr; /* the train feedback, saved later (the feedback arm) */
    ds_positive_rule jrule = DS_POSITIVE_DEFAULT;
    assert_int_equal(jr_build(&f.ds, &f.split, t, &jrule, 2, &jr, &err), SD_OK);
    t->parent = NULL, t->size = NULL, t->desc = NULL, t->top_desc = NULL, t->members = NULL, t->member_off = NULL;

    ev_opts o = EV_OPTS_DEFAULT;
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    ev_eval_run r;
    /* no journeys.bin, no world truth: random, popular, transition, backoff, then the tables by kind and n */
    assert_int_equal(ev_eval_workspace(dir, &o, 0, &rule, &r, &err), SD_OK);
    assert_int_equal(r.n_arms, 7);
    static const int kinds[7] = {EV_KIND_RANDOM, EV_KIND_POPULAR, EV_KIND_TRANSITION, EV_KIND_BACKOFF,
                                 EV_KIND_LLM,    EV_KIND_LLM,     EV_KIND_SINGLE};
    for (int a = 0; a < 7; a++) assert_int_equal(r.arms[a].kind, kinds[a]);
    assert_string_equal(r.arms[4].name, "best-of-1 (novelty alone)");
    assert_string_equal(r.arms[5].name, "best-of-4");
    assert_string_equal(r.arms[6].name, "single model");
    assert_int_equal(r.arms[5].n, 4);
    /* best-of-4 serves what the fixed arm serves after the filter: hit 2/3, pooled 3/5 */
    assert_true(fabs(r.res[5].value[EV_HIT] - 2.0 / 3) < TOL);
    assert_true(fabs(r.res[5].value[EV_POS_POOLED] - 0.6) < TOL);
    /* best-of-1 serves c3 to everyone: u1 only has c3 events (2, 1 positive) -> pooled 1/2, hit 1/3 */
    assert_true(fabs(r.res[4].value[EV_POS_POOLED] - 0.5) < TOL);
    assert_true(fabs(r.res[4].value[EV_HIT] - 1.0 / 3) < TOL);
    /* paired comparisons: an arm against itself differs by exactly 0; best-of-4 - best-of-1 on the
     * pooled positive rate is 0.6 - 0.5 with an interval around it */
    double df, lo, hi;
    assert_int_equal(ev_compare(&r.res[5], &r.res[5], EV_POS_POOLED, &df, &lo, &hi), 1);
    assert_true(df == 0 && lo == 0 && hi == 0);
    assert_int_equal(ev_compare(&r.res[5], &r.res[4], EV_POS_POOLED, &df, &lo, &hi), 1);
    assert_true(fabs(df - 0.1) < TOL && lo <= df + TOL && df <= hi + TOL);
    /* by support: every user's context has support 0 except none: u1 (c0,c1), u2 and u5 (c1,c0)
     * have no K = 2 train transition (the only one is from (c0,c2)) */
    assert_int_equal(r.n_support[0], 3), assert_int_equal(r.n_support[1], 0), assert_int_equal(r.n_support[2], 0);
    assert_true(fabs(r.by_support[5].value[EV_POS_POOLED] - 0.6) < TOL); /* bucket 0 = everyone */
    /* metrics.json is on disk and names every arm with its kind */
    p = sd_path_join(dir, EV_METRICS_FILE);
    char *json = read_text(p);
    free(p);
    for (int a = 0; a < r.n_arms; a++) assert_non_null(strstr(json, r.arms[a].name));
    assert_non_null(strstr(json, "\"evaluated\":\t3"));
    assert_non_null(strstr(json, "\"kind\":\t\"single\""));
    assert_non_null(strstr(json, "\"kind\":\t\"backoff\""));
    assert_non_null(strstr(json, "\"against\":\t\"best-of-1 (novelty alone)\""));
    assert_non_null(strstr(json, "\"against\":\t\"backoff transition\""));
    assert_non_null(strstr(json, "\"by_support\""));
    /* the report */
    p = sd_path_join(dir, EV_REPORT_FILE);
    assert_int_equal(ev_report_write(json, p, &err), SD_OK);
    char *html = read_text(p);
    free(p);
    for (int a = 0; a < r.n_arms; a++) assert_non_null(strstr(html, r.arms[a].name));
    int n_svg = 0;
    for (const char *q = html; (q = strstr(q, "<svg ")); q++) n_svg++;
    assert_int_equal(n_svg, (EV_N_METRICS - 1) + 2 + 1 + 1); /* metrics (no world), 2 scatters, by support, sizes */
    assert_non_null(strstr(html, "By context support"));
    assert_null(strstr(html, "<script"));
    assert_non_null(strstr(html, "Findings"));
    free(html);
    free(json);
    ev_eval_run_free(&r);
    /* with journeys.bin the feedback-rate arm joins; metrics.json: every arm's name, kind and n,
     * the LLM arms compared with backoff and feedback, by_support with every arm in each bucket */
    p = sd_path_join(dir, JR_FILE);
    assert_int_equal(jr_save(&jr, p, &err), SD_OK);
    free(p);
    jr_free(&jr);
    assert_int_equal(ev_eval_workspace(dir, &o, 0, &rule, &r, &err), SD_OK);
    assert_int_equal(r.n_arms, 9);
    assert_int_equal(r.arms[4].kind, EV_KIND_FEEDBACK);
    assert_int_equal(r.arms[5].kind, EV_KIND_FEEDBACK_SHRUNK);
    cJSON *root = cJSON_Parse(r.json);
    assert_non_null(root);
    static const char *const jkinds[9] = {"random", "popular", "transition", "backoff", "feedback", "feedback_shrunk",
                                          "llm", "llm", "single"};
    static const int jn[9] = {0, 0, 0, 0, 0, 0, 1, 4, 1};
    const cJSON *arms = cJSON_GetObjectItem(root, "arms");
    assert_int_equal(cJSON_GetArraySize(arms), 9);
    for (int a = 0; a < 9; a++) {
        const cJSON *x = cJSON_GetArrayItem(arms, a);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(x, "kind")), jkinds[a]);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(x, "name")), r.arms[a].name);
        assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(x, "n")), jn[a]);
        assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(x, "fallback_share")) == 0);
    }
    /* comparisons: 3 LLM arms x {backoff, feedback, feedback_shrunk}, and best-of-4 against best-of-1 */
    const cJSON *cmp = cJSON_GetObjectItem(root, "comparisons"), *c;
    int n_fb = 0, n_bo = 0, n_fs = 0, n_small = 0;
    cJSON_ArrayForEach(c, cmp) {
        const char *k = cJSON_GetStringValue(cJSON_GetObjectItem(c, "against_kind"));
        n_fb += !strcmp(k, "feedback"), n_bo += !strcmp(k, "backoff"), n_fs += !strcmp(k, "feedback_shrunk");
        n_small += !strcmp(k, "llm");
        assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "metrics"), "pos_rate"), "diff"));
    }
    assert_int_equal(n_fb, 3), assert_int_equal(n_bo, 3), assert_int_equal(n_fs, 3), assert_int_equal(n_small, 1);
    assert_int_equal(cJSON_GetArraySize(cmp), 10);
    const cJSON *bs = cJSON_GetObjectItem(root, "by_support");
    assert_int_equal(cJSON_GetArraySize(bs), 3);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(bs, 2), "name")), "10+");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(bs, 2), "hi")));
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(bs, 0), "users")), 3);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(bs, 0), "arms")), 9);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(bs, 0), "comparisons")), 9);
    cJSON_Delete(root);
    ev_eval_run_free(&r);
    /* a table built for another taxonomy is refused */
    write_table(plans, "explore_n8.tbl", (int32_t[]){2, 3}, 2, h ^ 1);
    assert_int_equal(ev_eval_workspace(dir, &o, 0, &rule, &r, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "another taxonomy"));
    ev_eval_run_free(&r);
    /* without plans/, the planner's default explore.tbl is evaluated, named by its header's n */
    rm_rf(plans);
    write_table(dir, TBL_FILE, (int32_t[]){3, 2}, 2, h);
    assert_int_equal(ev_eval_workspace(dir, &o, 0, &rule, &r, &err), SD_OK);
    assert_int_equal(r.n_arms, 7);
    assert_string_equal(r.arms[6].name, "best-of-1 (novelty alone)");
    assert_string_equal(r.arms[6].file, TBL_FILE);
    assert_true(fabs(r.res[6].value[EV_POS_POOLED] - 0.5) < TOL);
    ev_eval_run_free(&r);
    free(plans);
    rm_rf(dir);
    fixture_free(&f);
}

/* A metrics.json written by hand: the findings must follow the numbers. */
static char *report_of_x(const char *arms_json, const char *extra) {
    char dir[] = "/tmp/sdrepXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *json = sd_asprintf("{\"workspace\":\"w\",\"k\":2,\"clusters\":3,\"serve\":1,\"bootstrap\":200,"
                             "\"users\":{\"total\":10,\"evaluated\":9},\"cluster_sizes\":[5,9,1],"
                             "\"metrics\":[{\"key\":\"novelty\"},{\"key\":\"pos_rate\"}],\"arms\":[%s]%s}", arms_json, extra);
    char *p = sd_path_join(dir, "r.html");
    sd_err err = {0};
    assert_int_equal(ev_report_write(json, p, &err), SD_OK);
    char *html = read_text(p);
    free(p);
    free(json);
    rm_rf(dir);
    return html;
}

static char *report_of(const char *arms_json) { return report_of_x(arms_json, ""); }

#define ARM(name, kind, n, table, nov, nlo, nhi, pos, plo, phi)                                                      \
    "{\"name\":\"" name "\",\"kind\":\"" kind "\",\"n\":" #n ",\"table\":\"" table "\",\"metrics\":{\"novelty\":{"   \
    "\"value\":" #nov ",\"lo\":" #nlo ",\"hi\":" #nhi "},\"pos_rate\":{\"value\":" #pos ",\"lo\":" #plo ",\"hi\":" #phi \
    "}}}"

static void test_report_findings_follow_numbers(void **state) {
    (void)state;
    /* relevance rises beyond the intervals, novelty holds, best-of-16 beats the transition table */
    char *h = report_of(ARM("backoff transition", "backoff", 0, "", 0.7, 0.68, 0.72, 0.6, 0.55, 0.65) ","
                        ARM("best-of-1 (novelty alone)", "llm", 1, "explore_n1.tbl", 0.9, 0.88, 0.92, 0.5, 0.45, 0.54) ","
                        ARM("best-of-16", "llm", 16, "explore_n16.tbl", 0.89, 0.87, 0.91, 0.8, 0.75, 0.85));
    assert_non_null(strstr(h, "positive rate in served clusters (pooled) <b>rose</b> from n = 1 (0.500) to n = 16 (0.800)"));
    assert_non_null(strstr(h, "Novelty <b>held</b> (no change beyond noise)"));
    assert_non_null(strstr(h, "of 2 LLM arms, 1 <b>beat</b> the back-off transition counts (0.600), 1 <b>lost</b>"));
    assert_non_null(strstr(h, "relevance (pooled positive rate) <b>rose</b> from n = 1 to n = 16, and novelty <b>held</b>."));
    assert_non_null(strstr(h, "Some LLM arms beat the back-off transition counts on it (1 of 2)."));
    free(h);
    /* the reverse: relevance falls and novelty collapses */
    h = report_of(ARM("backoff transition", "backoff", 0, "", 0.7, 0.68, 0.72, 0.6, 0.55, 0.65) ","
                  ARM("best-of-1 (novelty alone)", "llm", 1, "explore_n1.tbl", 0.9, 0.88, 0.92, 0.8, 0.75, 0.85) ","
                  ARM("best-of-16", "llm", 16, "explore_n16.tbl", 0.5, 0.45, 0.55, 0.62, 0.58, 0.66));
    assert_non_null(strstr(h, "<b>fell</b> from n = 1 (0.800) to n = 16 (0.620)"));
    assert_non_null(strstr(h, "Novelty <b>did not hold</b>"));
    assert_non_null(strstr(h, "<b>fell</b> from n = 1 to n = 16, and novelty <b>did not hold</b>."));
    assert_non_null(strstr(h, "1 <b>beat</b> the back-off transition counts (0.600), 0 <b>lost</b> to it, 1 <b>indistinguishable</b> from it"));
    free(h);
    /* overlapping intervals, but the paired difference excludes 0: the paired test decides */
    h = report_of_x(ARM("best-of-1 (novelty alone)", "llm", 1, "explore_n1.tbl", 0.9, 0.88, 0.92, 0.60, 0.55, 0.65) ","
                    ARM("best-of-16", "llm", 16, "explore_n16.tbl", 0.9, 0.88, 0.92, 0.62, 0.57, 0.67),
                    ",\"comparisons\":[{\"arm\":\"best-of-16\",\"against\":\"best-of-1 (novelty alone)\","
                    "\"metrics\":{\"pos_rate\":{\"diff\":0.02,\"lo\":0.01,\"hi\":0.03},"
                    "\"novelty\":{\"diff\":0,\"lo\":-0.01,\"hi\":0.01}}}]");
    assert_non_null(strstr(h, "(pooled) <b>rose</b> from n = 1 (0.600) to n = 16 (0.620)"));
    free(h);
    /* by_support: the bucket table and the verdict per bucket follow the paired differences */
    h = report_of_x(ARM("backoff transition", "backoff", 0, "", 1, 1, 1, 0.6, 0.55, 0.65) ","
                    ARM("best-of-16", "llm", 16, "x.tbl", 1, 1, 1, 0.62, 0.57, 0.67),
                    ",\"by_support\":[{\"name\":\"0\",\"users\":40,\"arms\":["
                    ARM("backoff transition", "backoff", 0, "", 1, 1, 1, 0.3, 0.2, 0.4) ","
                    ARM("best-of-16", "llm", 16, "x.tbl", 1, 1, 1, 0.5, 0.4, 0.6) "],\"comparisons\":[{\"arm\":"
                    "\"best-of-16\",\"against\":\"backoff transition\",\"against_kind\":\"backoff\",\"metric\":"
                    "\"pos_rate\",\"diff\":0.2,\"lo\":0.05,\"hi\":0.35}]},{\"name\":\"10+\",\"users\":60,"
                    "\"arms\":[" ARM("backoff transition", "backoff", 0, "", 1, 1, 1, 0.8, 0.7, 0.9) ","
                    ARM("best-of-16", "llm", 16, "x.tbl", 1, 1, 1, 0.7, 0.6, 0.8) "],\"comparisons\":[{\"arm\":"
                    "\"best-of-16\",\"against\":\"backoff transition\",\"against_kind\":\"backoff\",\"metric\":"
                    "\"pos_rate\",\"diff\":-0.1,\"lo\":-0.15,\"hi\":-0.05}]}]");
    assert_non_null(strstr(h, "<h2>By context support</h2>"));
    assert_non_null(strstr(h, "<th>support 10+<br><small>60 users</small></th>"));
    assert_non_null(strstr(h, "<td>0.500 <small>[0.400, 0.600]</small></td>"));
    assert_non_null(strstr(h, "Support 0 (40 users): of 1 LLM arms, 1 <b>beat</b> backoff transition"));
    assert_non_null(strstr(h, "Support 10+ (60 users): of 1 LLM arms, 0 <b>beat</b> backoff transition on the "
                              "positive rate in served clusters (pooled), 1 <b>lost</b> to it"));
    assert_non_null(strstr(h, "<b>+0.200</b> <small>[+0.050, +0.350]</small>"));
    free(h);
    /* a single LLM table: no trend is claimed */
    h = report_of(ARM("best-of-16", "llm", 16, "explore_n16.tbl", 0.5, 0.45, 0.55, 0.62, 0.58, 0.66));
    assert_non_null(strstr(h, "fewer than two best-of-n tables"));
    assert_non_null(strstr(h, "There is no LLM arm and back-off or feedback-rate arm to compare."));
    assert_non_null(strstr(h, "LLM arms against the back-off transition counts: that arm is missing"));
    free(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_contexts_and_counts),
        cmocka_unit_test(test_metrics_serve1),
        cmocka_unit_test(test_metrics_serve2),
        cmocka_unit_test(test_run_filters_per_user),
        cmocka_unit_test(test_baselines),
        cmocka_unit_test(test_bootstrap_contains_and_shrinks),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_arm_names_and_kinds),
        cmocka_unit_test(test_workspace_eval_and_report),
        cmocka_unit_test(test_report_findings_follow_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
