/* test_abtest.c - the simulated A/B experiment (src/abtest/): the day update on a hand-made
 * two-user world with outcomes computed by hand; determinism for a seed whatever the thread count;
 * the A/A false-positive rate over many seeds; injected good (oracle slot) and bad (disliked slot)
 * effects detected in the expected direction; a workspace without world_truth.bin refused; arm
 * parsing. The refresh (and a refresh killed midway) is tests/test_abtest.sh: it needs trained
 * models. Worlds are small (a few hundred users, a week) so the file runs in a few seconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/abtest.h"

static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }

/* ---------------------------------------------------------------- a hand-made world
 * 3 subtopics in one topic, 2 users, 6 items (2 per subtopic), no personal noise (noise_sd 0) and
 * quality 0, so every like probability is a closed form of the affinity matrix below. */
static void hand_world(world_truth *t) {
    memset(t, 0, sizeof *t);
    t->seed = 7;
    t->n_topics = 1, t->n_sub = 3, t->n_users = 2, t->n_items = 6;
    t->self_bonus = 1.0f, t->noise_sd = 0.0f;
    t->sub_topic = sd_calloc(3, sizeof(int32_t));
    t->sub_pop = sd_malloc(3 * sizeof(float));
    t->sub_quality = sd_calloc(3, sizeof(float));
    t->affinity = sd_calloc(9, sizeof(float));
    for (int s = 0; s < 3; s++) t->sub_pop[s] = 1.0f / 3;
    /* A[s][x]: fans of 0 love 1 (2.0) and hate 2 (-2.0); fans of 2 mildly like 1 (0.5) */
    t->affinity[0 * 3 + 1] = 2.0f, t->affinity[0 * 3 + 2] = -2.0f, t->affinity[2 * 3 + 1] = 0.5f;
    t->item_sub = sd_malloc(6 * sizeof(int32_t));
    for (int i = 0; i < 6; i++) t->item_sub[i] = i / 2;
    /* user 1: {0: 1.0}; user 2: {2: 0.0803, 0: 0.5} */
    t->user_off = sd_malloc(3 * sizeof(int64_t));
    t->user_off[0] = 0, t->user_off[1] = 1, t->user_off[2] = 3;
    t->n_int = 3;
    t->int_sub = sd_malloc(3 * sizeof(int32_t));
    t->int_w = sd_malloc(3 * sizeof(float));
    t->int_sub[0] = 0, t->int_w[0] = 1.0f;
    t->int_sub[1] = 2, t->int_w[1] = 0.0803f;
    t->int_sub[2] = 0, t->int_w[2] = 0.5f;
}

static ab_event ev(int32_t sub, int session, int source, int pos, float rating) {
    ab_event e;
    memset(&e, 0, sizeof e);
    e.item = 2 * sub + 1, e.sub = sub, e.session = session, e.source = (uint8_t)source, e.pos = (uint8_t)pos;
    e.rating = rating, e.watch = pos ? 0.9f : 0.3f;
    return e;
}

static void test_day_update_two_users(void **state) {
    (void)state;
    world_truth t;
    hand_world(&t);
    ab_model m;
    ab_model_default(&m);
    ab_user u1, u2;
    ab_user_init(&t, &m, 1, 0, &u1);
    ab_user_init(&t, &m, 1, 1, &u2);
    assert_int_equal(u1.n, 1);
    assert_int_equal(u2.n, 2);
    assert_true(u1.sat == 0 && u2.sat == 0);
    /* like probabilities by hand: user 1 {0: 1} for subtopic 1: g = 1 * 2.0 / 1 + 0.5 * (2.0 + 0) = 3 */
    assert_true(fabs(world_like_prob_given(&t, 1, u1.sub, u1.w, u1.n, 1) - sigm(3.0)) < 1e-6);
    /* ... for subtopic 2: g = -2 + 0.5 * (0 - 2) = -3 */
    assert_true(fabs(world_like_prob_given(&t, 1, u1.sub, u1.w, u1.n, 2) - sigm(-3.0)) < 1e-6);
    /* ... for its own interest 0: self bonus 1, g = 0 */
    assert_true(fabs(world_like_prob_given(&t, 1, u1.sub, u1.w, u1.n, 0) - sigm(1.0)) < 1e-6);

    /* user 1's day: organic 0 positive then negative (rating 3), the slot shows 1 twice, both liked */
    ab_event d1[4] = {ev(0, 0, AB_ORGANIC, 1, 4.5f), ev(0, 0, AB_ORGANIC, 0, 3.0f), ev(1, 1, AB_SLOT, 1, 4.5f),
                      ev(1, 1, AB_SLOT, 1, 5.0f)};
    ab_user_apply_day(&m, &u1, d1, 4);
    double f = exp(-1.0 / 150.0);
    assert_int_equal(u1.n, 2);
    assert_int_equal(u1.sub[0], 0);
    assert_true(fabs(u1.w[0] - (1.0 + 0.15) * 0.85 * f) < 1e-5); /* 0.9775 decayed */
    assert_int_equal(u1.sub[1], 1);                              /* adopted: 2 of 2 positive */
    assert_true(fabs(u1.w[1] - (0.5 + 0.3 * 2) * f) < 1e-5);    /* 1.1 decayed */
    assert_true(fabs(u1.sat - 1.5 * (3.0 / 4 - 0.7)) < 1e-6);    /* 0.075: 3 of 4 positive, nothing disliked */
    assert_true(fabs(ab_visit_prob(&u1) - sigm(u1.visit_logit + 0.075)) < 1e-6);
    /* the new interest now sways the like probability of 2 the hand way: I = {0: w0, 1: w1} */
    double W = u1.w[0] + u1.w[1], g2 = (u1.w[0] * -2.0 + u1.w[1] * 0.0) / W + 0.5 * (0 - 2.0);
    assert_true(fabs(world_like_prob_given(&t, 1, u1.sub, u1.w, u1.n, 2) - sigm(g2)) < 1e-6);

    /* user 2 does not visit: satisfaction decays, weight 0.0803 falls below 0.08 and is forgotten */
    u2.sat = 1.0f;
    ab_user_apply_day(&m, &u2, NULL, 0);
    assert_int_equal(u2.n, 1);
    assert_int_equal(u2.sub[0], 0);
    assert_true(fabs(u2.w[0] - 0.5 * f) < 1e-6);
    assert_true(fabs(u2.sat - 0.7) < 1e-6);
    /* then a disliked slot (rating 1.5) and one liked organic item: not adopted (0 of 1), the
     * dislike costs 0.15: sat = 0.7 * 0.7 + 1.5 * (1/2 - 0.7) - 0.15 = 0.04 */
    ab_event d2[2] = {ev(0, 0, AB_ORGANIC, 1, 4.0f), ev(1, 1, AB_SLOT, 0, 1.5f)};
    ab_user_apply_day(&m, &u2, d2, 2);
    assert_int_equal(u2.n, 1);
    assert_true(fabs(u2.w[0] - (0.5 * f + 0.15) * f) < 1e-5);
    assert_true(fabs(u2.sat - (0.7 * 0.7 + 1.5 * (0.5 - 0.7) - 0.15)) < 1e-6);
    /* a half-liked exploration of two items is adopted with 0.5 + 0.3 */
    ab_event d3[2] = {ev(2, 3, AB_ORGANIC_EXPLORE, 1, 4.0f), ev(2, 3, AB_ORGANIC_EXPLORE, 0, 3.5f)};
    ab_user_apply_day(&m, &u2, d3, 2);
    assert_int_equal(u2.n, 2);
    assert_int_equal(u2.sub[1], 2);
    assert_true(fabs(u2.w[1] - 0.8 * f) < 1e-5);
    /* satisfaction is clamped at sat_max */
    u2.sat = 2.9f;
    ab_event d4[3] = {ev(0, 0, AB_ORGANIC, 1, 5.0f), ev(0, 0, AB_ORGANIC, 1, 5.0f), ev(0, 0, AB_ORGANIC, 1, 5.0f)};
    ab_user_apply_day(&m, &u2, d4, 3);
    assert_true(fabs(u2.sat - 2.03 - 1.5 * 0.3) < 1e-5); /* 0.7 * 2.9 + 0.45 = 2.48 < 3 */
    u2.sat = 3.0f;
    m.sat_decay = 1.0;
    ab_user_apply_day(&m, &u2, d4, 3);
    assert_true(fabs(u2.sat - 3.0) < 1e-6);

    /* the response sampler's positive rate is the closed form (user 1 state before the day) */
    ab_user s0;
    ab_user_init(&t, &m, 1, 0, &s0);
    sd_rng r;
    sd_rng_seed(&r, 3);
    int pos = 0, N = 20000;
    for (int i = 0; i < N; i++) {
        float rating, watch;
        int p = world_response_given(&t, 1, s0.sub, s0.w, s0.n, 1, &r, &rating, &watch);
        pos += p;
        assert_true(p == (rating >= 4.0f));
    }
    double pr = sigm(3.0), sd = sqrt(pr * (1 - pr) / N);
    assert_true(fabs((double)pos / N - pr) < 4 * sd);
    world_truth_free(&t);
}

/* ---------------------------------------------------------------- experiments on a small world */

static char *g_ws;  /* a small world shared by the tests below */

static int setup_world(void **state) {
    (void)state;
    g_ws = sd_strdup("/tmp/sdabtestXXXXXX");
    if (!mkdtemp(g_ws)) return -1;
    world_params p;
    world_params_default(&p);
    p.seed = 11;
    p.n_users = 900;
    p.n_items = 900;
    p.n_topics = 8;
    p.n_subtopics = 6;
    sd_err err = {0};
    int saved = sd_verbosity;
    sd_verbosity = 0;
    int rc = world_write(&p, g_ws, NULL, &err);
    sd_verbosity = saved;
    return rc;
}

static int teardown_world(void **state) {
    (void)state;
    sd_remove_tree(g_ws, NULL);
    free(g_ws);
    return 0;
}

/* Runs the experiment and returns abtest.json parsed (caller deletes). */
static cJSON *run(const char *arms_spec, uint64_t seed, int days, int threads, int bootstrap, const char *out) {
    ab_opts o;
    ab_opts_default(&o);
    o.days = days, o.seed = seed, o.threads = threads, o.bootstrap = bootstrap, o.refresh_every = 0;
    char *path = out ? sd_strdup(out) : sd_asprintf("%s/ab_%llu.json", g_ws, (unsigned long long)seed);
    o.out = path;
    ab_arm arms[AB_MAX_ARMS];
    int n = 0;
    sd_err err = {0};
    assert_int_equal(ab_parse_arms(arms_spec, g_ws, arms, &n, &err), 0);
    int saved = sd_verbosity;
    sd_verbosity = 0;
    int rc = ab_run(g_ws, arms, n, &o, NULL, &err);
    sd_verbosity = saved;
    if (rc) fprintf(stderr, "ab_run: %s\n", err.msg);
    assert_int_equal(rc, 0);
    char *text;
    size_t len;
    assert_int_equal(sd_read_file(path, &text, &len, &err), 0);
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    free(text);
    free(path);
    return root;
}

static const cJSON *final_of(const cJSON *root, int arm, const char *metric) {
    const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "arms"), arm);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(a, "final"), metric);
    assert_non_null(v);
    return v;
}
static double num(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

/* The same seed gives the same abtest.json (timing aside) with 1 or 2 threads; another seed does not. */
static void test_determinism_threads(void **state) {
    (void)state;
    char *a = sd_asprintf("%s/det_a.json", g_ws), *b = sd_asprintf("%s/det_b.json", g_ws), *c = sd_asprintf("%s/det_c.json", g_ws);
    cJSON *x = run("control,oracle,disliked", 5, 7, 1, 50, a), *y = run("control,oracle,disliked", 5, 7, 2, 50, b),
          *z = run("control,oracle,disliked", 6, 7, 2, 50, c);
    cJSON_DeleteItemFromObject(x, "timing"), cJSON_DeleteItemFromObject(y, "timing"), cJSON_DeleteItemFromObject(z, "timing");
    char *sx = cJSON_PrintUnformatted(x), *sy = cJSON_PrintUnformatted(y), *sz = cJSON_PrintUnformatted(z);
    assert_string_equal(sx, sy);
    assert_true(strcmp(sx, sz) != 0);
    /* and the daily curves are there: 7 values per metric per arm */
    const cJSON *arm = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(x, "arms"), 0);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(arm, "daily"), "pos_rate");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(pr, "value")), 7);
    free(sx), free(sy), free(sz);
    cJSON_Delete(x), cJSON_Delete(y), cJSON_Delete(z);
    free(a), free(b), free(c);
}

/* A/A: two control arms. Over 60 seeds and 3 headline metrics, the share of relative differences
 * whose 95% interval excludes 0 is close to 5% (asserted within [1%, 12%]: 180 correlated tests;
 * an interval method that ignored the user-level variance would give far more). */
static void test_aa_false_positive_rate(void **state) {
    (void)state;
    static const char *const metrics[] = {"pos_rate", "completion", "dau"};
    int tests = 0, fp = 0;
    for (uint64_t seed = 100; seed < 160; seed++) {
        char *out = sd_asprintf("%s/aa.json", g_ws);
        cJSON *root = run("control,control", seed, 7, 0, 200, out);
        free(out);
        for (int m = 0; m < 3; m++) {
            const cJSON *v = final_of(root, 1, metrics[m]);
            assert_true(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(v, "significant")));
            fp += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "significant"));
            tests++;
        }
        cJSON_Delete(root);
    }
    double rate = (double)fp / tests;
    printf("A/A false-positive rate: %d of %d = %.3f\n", fp, tests, rate);
    assert_true(rate >= 0.01 && rate <= 0.12);
}

/* Injected effects: an oracle slot (the novel subtopic the user likes most) must raise the
 * engagement and interest metrics; a disliked slot must lower positive playback and activity. */
static void test_injected_effects(void **state) {
    (void)state;
    cJSON *root = run("control,oracle,disliked", 21, 14, 0, 200, NULL);
    const cJSON *v;
    /* oracle: more interests and unique user-cluster pairs, significantly */
    v = final_of(root, 1, "interests");
    assert_true(num(v, "rel_lo") > 0);
    v = final_of(root, 1, "ueuc");
    assert_true(num(v, "rel_lo") > 0);
    /* ... and, on this world and seed, positive playback and daily activity up too, significantly
     * (measured +2.8% and +7.8%): a slot that users like is not only a cost */
    assert_true(num(final_of(root, 1, "pos_rate"), "rel_lo") > 0);
    assert_true(num(final_of(root, 1, "dau"), "rel_lo") > 0);
    /* disliked: positive playback rate, completion and daily activity down, significantly */
    static const char *const down[] = {"pos_rate", "completion", "dau"};
    for (int m = 0; m < 3; m++) {
        v = final_of(root, 2, down[m]);
        assert_true(num(v, "rel_hi") < 0);
    }
    /* and the oracle beats the disliked slot on every headline metric */
    for (int m = 0; m < 3; m++) assert_true(num(final_of(root, 1, down[m]), "value") > num(final_of(root, 2, down[m]), "value"));
    assert_true(num(final_of(root, 1, "slot_pos_rate"), "value") > 0.6);
    assert_true(num(final_of(root, 2, "slot_pos_rate"), "value") < 0.2);
    /* the control arm has no slot */
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(final_of(root, 0, "slot_pos_rate"), "value")));
    cJSON_Delete(root);
}

/* The final figures agree with the daily ones: daily activity over the experiment is the mean of
 * the days, the cumulative and end-of-experiment metrics are the last day's, a ratio over the
 * experiment lies within its days' range, and every interval holds its value (ratio metrics). */
static void test_final_matches_daily(void **state) {
    (void)state;
    cJSON *root = run("control,oracle", 31, 7, 0, 100, NULL);
    const cJSON *arm;
    cJSON_ArrayForEach(arm, cJSON_GetObjectItemCaseSensitive(root, "arms")) {
        const cJSON *fin = cJSON_GetObjectItemCaseSensitive(arm, "final"), *daily = cJSON_GetObjectItemCaseSensitive(arm, "daily");
        double d[7];
#define DAILY(key)                                                                                                     \
    for (int i = 0; i < 7; i++)                                                                                        \
        d[i] = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(daily, key), "value"), i)->valuedouble
        DAILY("dau");
        double mean = 0;
        for (int i = 0; i < 7; i++) mean += d[i] / 7;
        assert_true(fabs(num(cJSON_GetObjectItemCaseSensitive(fin, "dau"), "value") - mean) < 1e-9);
        static const char *const last[] = {"ueuc", "interests", "active_7d"};
        for (int k = 0; k < 3; k++) {
            DAILY(last[k]);
            assert_true(fabs(num(cJSON_GetObjectItemCaseSensitive(fin, last[k]), "value") - d[6]) < 1e-6);
        }
        static const char *const ratio[] = {"pos_rate", "completion"};
        for (int k = 0; k < 2; k++) {
            DAILY(ratio[k]);
            double lo = 1, hi = 0, v = num(cJSON_GetObjectItemCaseSensitive(fin, ratio[k]), "value");
            for (int i = 0; i < 7; i++) lo = d[i] < lo ? d[i] : lo, hi = d[i] > hi ? d[i] : hi;
            assert_true(v >= lo && v <= hi);
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(fin, ratio[k]);
            assert_true(num(f, "lo") <= v && v <= num(f, "hi"));
        }
#undef DAILY
    }
    cJSON_Delete(root);
}

/* A workspace without the hidden truth is refused with a message that names the file. */
static void test_refuses_without_truth(void **state) {
    (void)state;
    char *d = sd_strdup("/tmp/sdabnotruthXXXXXX");
    assert_non_null(mkdtemp(d));
    char *src = sd_path_join(g_ws, DS_FILE), *dst = sd_path_join(d, DS_FILE), *data;
    size_t len;
    sd_err err = {0};
    assert_int_equal(sd_read_file(src, &data, &len, &err), 0);
    assert_int_equal(sd_write_file_atomic(dst, data, len, &err), 0);
    free(data);
    ab_opts o;
    ab_opts_default(&o);
    ab_arm arms[AB_MAX_ARMS];
    int n = 0;
    assert_int_equal(ab_parse_arms("control,control", d, arms, &n, &err), 0);
    assert_int_equal(ab_run(d, arms, n, &o, NULL, &err), SD_ERR_STATE);
    assert_non_null(strstr(err.msg, "world_truth.bin"));
    sd_remove_tree(d, NULL);
    free(d), free(src), free(dst);
}

static void test_parse_arms(void **state) {
    (void)state;
    ab_arm a[AB_MAX_ARMS];
    int n = 0;
    sd_err err = {0};
    assert_int_equal(ab_parse_arms("control,explore,explore-refresh:plans/explore_n4.tbl", "W", a, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(a[1].kind, AB_ARM_EXPLORE);
    assert_string_equal(a[1].table, "W/explore.tbl");
    assert_string_equal(a[2].table, "W/plans/explore_n4.tbl");
    assert_int_equal(ab_parse_arms("control,control", "W", a, &n, &err), 0);
    assert_string_equal(a[1].name, "control#2");
    assert_int_equal(ab_parse_arms("explore-refresh,explore,control,control,control", "W", a, &n, &err), 0);
    assert_string_equal(a[1].name, "explore");
    assert_string_equal(a[4].name, "control#3");
    assert_int_equal(ab_parse_arms("control", "W", a, &n, &err), SD_ERR_USAGE);
    assert_int_equal(ab_parse_arms("control,treatment", "W", a, &n, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "treatment"));
    assert_int_equal(ab_parse_arms("control,oracle:x.tbl", "W", a, &n, &err), SD_ERR_USAGE);
    assert_int_equal(ab_parse_arms("explore-refresh,explore-refresh", "W", a, &n, &err), SD_ERR_USAGE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_day_update_two_users),
        cmocka_unit_test(test_parse_arms),
        cmocka_unit_test(test_determinism_threads),
        cmocka_unit_test(test_aa_false_positive_rate),
        cmocka_unit_test(test_injected_effects),
        cmocka_unit_test(test_final_matches_daily),
        cmocka_unit_test(test_refuses_without_truth),
    };
    return cmocka_run_group_tests(tests, setup_world, teardown_world);
}
