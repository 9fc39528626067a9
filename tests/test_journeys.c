/* test_journeys.c - journeys, transitions, collective feedback and contexts on a hand-made
 * fixture whose expected values are worked out by hand in the comments below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/journeys.h"

/* ---------------------------------------------------------------- fixture
 * 4 clusters, 9 items: raw item 100+i is in cluster i/2 for i < 8; item 108 is unclustered (-1).
 * Train window: ts < 1000. Ratings >= 4 are positive; without a rating, watch >= 0.7.
 *
 * user 1 (A): 10 i0 r5 (c0+) | 20 i2 r4 (c1+) -> ctx (0,1) | 30 i4 r2 (c2-): exposure (0,1)->2 neg
 *             | 35 i5 r1 (c2-): exposure (0,1)->2 neg | 40 i6 r5 (c3+): exposure (0,1)->3 pos,
 *             transition (0,1)->3 novel, ctx (1,3) | 50 i1 r4 (c0+): exposure (1,3)->0 pos,
 *             transition (1,3)->0 NOT novel, ctx (3,0) | 60 i3 r1 (c1-): exposure (3,0)->1 neg
 *             | 70 i7 r5 (c3+): in ctx, no exposure; transition (3,0)->3 NOT novel, ctx (0,3)
 *             | 2000 i5 r5: test window, ignored by journeys.   journey: 0 1 3 0 3
 * user 2 (B): 10 i1 r5 (c0+) | 20 i0 r5 (c0+, repeat: no step) | 30 i3 r4.5 (c1+) -> ctx (0,1)
 *             | 40 i5 r5 (c2+): exposure (0,1)->2 pos, transition (0,1)->2 novel, ctx (1,2)
 *             | 50 i4 r3: in ctx.                                   journey: 0 1 2
 * user 3 (C): 10 i2 r4 (c1+) | 20 i0 r4 (c0+) -> ctx (1,0) | 30 i4 watch .9 (c2+): exposure
 *             (1,0)->2 pos, transition (1,0)->2 novel, ctx (0,2) | 40 i6 watch .2 (c3-): exposure
 *             (0,2)->3 neg | 50 i7 watch .8 (c3+): exposure (0,2)->3 pos, transition (0,2)->3
 *             novel, ctx (2,3) | 60 i6 r4: in ctx | 70 i8 r5: unclustered, skipped.
 *                                                                   journey: 1 0 2 3
 * Feedback: (0,1)->2: users 2 (A, B), exposures 3, positives 1, rate 1/3
 *           (0,1)->3: 1, 1, 1 | (1,3)->0: 1, 1, 1 | (3,0)->1: 1, 1, 0 | (1,0)->2: 1, 1, 1
 *           (0,2)->3: users 1, exposures 2, positives 1, rate 1/2          -> 6 tuples
 * Transitions: 6, of which 4 novel. */

static ds_dataset g_ds;
static tx_taxonomy g_tax;
static int32_t g_item[9];  /* raw 100+i -> dense */
static int64_t g_user[3];  /* raw 1..3 -> dense */
static char g_dir[64];

static int setup(void **state) {
    (void)state;
    ds_builder *b = ds_builder_new();
    sd_err err = {0};
    for (int i = 0; i < 9; i++) {
        char title[32];
        snprintf(title, sizeof title, "Movie %d", i);
        if (ds_builder_add_item(b, 100 + i, title, i < 4 ? "Drama|War" : "Comedy", &err)) return 1;
    }
    const float N = DS_NO_VALUE;
    struct { int64_t u, item, ts; float r, w; } evs[] = {
        {1, 100, 10, 5, N}, {1, 102, 20, 4, N}, {1, 104, 30, 2, N}, {1, 105, 35, 1, N}, {1, 106, 40, 5, N},
        {1, 101, 50, 4, N}, {1, 103, 60, 1, N}, {1, 107, 70, 5, N}, {1, 105, 2000, 5, N},
        {2, 101, 10, 5, N}, {2, 100, 20, 5, N}, {2, 103, 30, 4.5f, N}, {2, 105, 40, 5, N}, {2, 104, 50, 3, N},
        {3, 102, 10, 4, N}, {3, 100, 20, 4, N}, {3, 104, 30, N, 0.9f}, {3, 106, 40, N, 0.2f}, {3, 107, 50, N, 0.8f},
        {3, 106, 60, 4, N}, {3, 108, 70, 5, N},
    };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) ds_builder_add_event(b, evs[i].u, evs[i].item, evs[i].ts, evs[i].r, evs[i].w);
    if (ds_builder_finish(b, &g_ds, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < 9; i++) g_item[i] = (int32_t)ds_find_item(&g_ds, 100 + i);
    for (int i = 0; i < 3; i++) g_user[i] = ds_find_user(&g_ds, 1 + i);

    static const char *descs[4] = {"war, drama", "space, alien", "comedy, family", "noir, crime"};
    memset(&g_tax, 0, sizeof g_tax);
    g_tax.n_top = 1;
    g_tax.n_clusters = 4;
    g_tax.n_items = g_ds.n_items;
    g_tax.item_cluster = sd_malloc(9 * sizeof(int32_t));
    for (int i = 0; i < 9; i++) g_tax.item_cluster[g_item[i]] = i < 8 ? i / 2 : -1;
    g_tax.parent = sd_calloc(4, sizeof(int32_t));
    g_tax.size = sd_malloc(4 * sizeof(int32_t));
    g_tax.desc = sd_malloc(4 * sizeof(char *));
    g_tax.members = sd_malloc(8 * sizeof(int32_t));
    g_tax.member_off = sd_malloc(5 * sizeof(int64_t));
    for (int c = 0; c < 4; c++) {
        g_tax.size[c] = 2;
        g_tax.desc[c] = (char *)descs[c];
        g_tax.members[2 * c] = g_item[2 * c];
        g_tax.members[2 * c + 1] = g_item[2 * c + 1];
        g_tax.member_off[c] = 2 * c;
    }
    g_tax.member_off[4] = 8;
    static char *top[1] = {"all"};
    g_tax.top_desc = top;
    strcpy(g_dir, "/tmp/sdjrXXXXXX");
    return mkdtemp(g_dir) ? 0 : 1;
}

static int teardown(void **state) {
    (void)state;
    ds_free(&g_ds);
    free(g_tax.item_cluster); free(g_tax.parent); free(g_tax.size); free(g_tax.desc); free(g_tax.members); free(g_tax.member_off);
    char *cmd = sd_asprintf("rm -rf %s", g_dir);
    int rc = system(cmd);
    free(cmd);
    return rc != 0;
}

static void build(int k, jr_journeys *j) {
    ds_split split = {.train_end = 1000, .valid_end = 1500};
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    sd_err err = {0};
    assert_int_equal(jr_build(&g_ds, &split, &g_tax, &rule, k, j, &err), SD_OK);
}

static void expect_journey(const jr_journeys *j, int user, const int32_t *want, int n) {
    int64_t u = g_user[user];
    assert_int_equal(j->journey_off[u + 1] - j->journey_off[u], n);
    for (int i = 0; i < n; i++) assert_int_equal(j->journey[j->journey_off[u] + i], want[i]);
}

/* Finds the transition of user with ctx (a, b) -> next; fails the test when absent. */
static const jr_transition *find_tr(const jr_journeys *j, int user, int a, int b, int next) {
    for (int64_t i = 0; i < j->n_transitions; i++) {
        const jr_transition *t = &j->transitions[i];
        if (t->user == g_user[user] && t->ctx[0] == a && t->ctx[1] == b && t->next == next) return t;
    }
    fail_msg("transition user %d (%d,%d)->%d missing", user, a, b, next);
    return NULL;
}

static void expect_fb(const jr_journeys *j, int a, int b, int cand, int users, int exposures, int positives) {
    int32_t ctx[2] = {a, b};
    const jr_feedback *f = jr_feedback_find(j, ctx, cand);
    if (!f) fail_msg("feedback (%d,%d)->%d missing", a, b, cand);
    assert_int_equal(f->users, users);
    assert_int_equal(f->exposures, exposures);
    assert_int_equal(f->positives, positives);
    /* pos_rate is a float of positives/exposures: exact to float rounding (1e-6) */
    assert_true(fabs(f->pos_rate - (double)positives / exposures) < 1e-6);
}

static void check_fixture_k2(const jr_journeys *j) {
    assert_int_equal(j->k, 2);
    assert_int_equal(j->n_clusters, 4);
    expect_journey(j, 0, (int32_t[]){0, 1, 3, 0, 3}, 5);
    expect_journey(j, 1, (int32_t[]){0, 1, 2}, 3);
    expect_journey(j, 2, (int32_t[]){1, 0, 2, 3}, 4);
    assert_int_equal(j->n_transitions, 6);
    assert_int_equal(j->n_novel, 4);
    assert_int_equal(find_tr(j, 0, 0, 1, 3)->novel, 1);
    assert_int_equal(find_tr(j, 0, 1, 3, 0)->novel, 0);
    assert_int_equal(find_tr(j, 0, 3, 0, 3)->novel, 0);
    assert_int_equal(find_tr(j, 1, 0, 1, 2)->novel, 1);
    assert_int_equal(find_tr(j, 2, 1, 0, 2)->novel, 1);
    const jr_transition *t = find_tr(j, 2, 0, 2, 3);
    assert_int_equal(t->novel, 1);
    assert_int_equal(t->ts, 50);
    assert_int_equal(t->ctx[2], -1);
    assert_int_equal(j->n_feedback, 6);
    expect_fb(j, 0, 1, 2, 2, 3, 1);
    expect_fb(j, 0, 1, 3, 1, 1, 1);
    expect_fb(j, 1, 3, 0, 1, 1, 1);
    expect_fb(j, 3, 0, 1, 1, 1, 0);
    expect_fb(j, 1, 0, 2, 1, 1, 1);
    expect_fb(j, 0, 2, 3, 1, 2, 1);
    int32_t ctx[2] = {1, 0};
    assert_null(jr_feedback_find(j, ctx, 3)); /* never exposed */
    assert_null(jr_feedback_find(j, ctx, 0)); /* in the context */
    /* sorted by (context index, candidate) */
    for (int64_t i = 1; i < j->n_feedback; i++) {
        int64_t a = jr_context_index(j->feedback[i - 1].ctx, 2, 4) * 4 + j->feedback[i - 1].cand;
        int64_t b = jr_context_index(j->feedback[i].ctx, 2, 4) * 4 + j->feedback[i].cand;
        assert_true(a < b);
    }
}

static void test_fixture_k2(void **state) {
    (void)state;
    jr_journeys j;
    build(2, &j);
    check_fixture_k2(&j);
    assert_int_equal(j.train_end, 1000);
    jr_free(&j);
}

static void test_fixture_k1(void **state) {
    (void)state;
    /* K = 1: A 0>1 n, 1>3 n, 3>0, 0>3 ; B 0>1 n, 1>2 n ; C 1>0 n, 0>2 n, 2>3 n -> 9, 7 novel */
    jr_journeys j;
    build(1, &j);
    assert_int_equal(j.n_transitions, 9);
    assert_int_equal(j.n_novel, 7);
    /* exposures with ctx (0) of cluster 1: A i2 (c1+) at 20 and i3 (c1-) at 60 (ctx back to (0)
     * at 50); B i3 (c1+) at 30 -> users 2, exposures 3, positives 2. Of cluster 2: C i4 at 30 only. */
    int32_t c0 = 0;
    const jr_feedback *f = jr_feedback_find(&j, &c0, 1);
    assert_non_null(f);
    assert_int_equal(f->users, 2);
    assert_int_equal(f->exposures, 3);
    assert_int_equal(f->positives, 2);
    f = jr_feedback_find(&j, &c0, 2);
    assert_non_null(f);
    assert_int_equal(f->users, 1);
    jr_free(&j);
}

static void test_save_load_round_trip(void **state) {
    (void)state;
    jr_journeys j, l;
    build(2, &j);
    sd_err err = {0};
    char *path = sd_path_join(g_dir, JR_FILE), *tsv = sd_path_join(g_dir, JR_FEEDBACK_TSV);
    assert_int_equal(jr_save(&j, path, &err), SD_OK);
    assert_int_equal(jr_load(&l, path, &err), SD_OK);
    check_fixture_k2(&l);
    assert_int_equal(l.train_end, 1000);
    assert_true(l.rule.min_rating == 4.0f);
    assert_int_equal(memcmp(l.transitions, j.transitions, (size_t)j.n_transitions * sizeof(jr_transition)), 0);
    jr_free(&l);

    /* truncated and foreign files are refused */
    char *buf;
    size_t n;
    assert_int_equal(sd_read_file(path, &buf, &n, &err), SD_OK);
    char *bad = sd_path_join(g_dir, "bad.bin");
    assert_int_equal(sd_write_file_atomic(bad, buf, n - 8, &err), SD_OK);
    assert_int_equal(jr_load(&l, bad, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "truncated"));
    buf[0] = 'X';
    assert_int_equal(sd_write_file_atomic(bad, buf, n, &err), SD_OK);
    assert_int_equal(jr_load(&l, bad, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "not a journeys file"));
    char *missing = sd_path_join(g_dir, "none.bin");
    assert_int_equal(jr_load(&l, missing, &err), SD_ERR_STATE);

    /* feedback.tsv names the descriptions and the counts of (0,1)->2 */
    assert_int_equal(jr_write_feedback_tsv(&j, &g_tax, tsv, &err), SD_OK);
    char *text;
    assert_int_equal(sd_read_file(tsv, &text, &n, &err), SD_OK);
    assert_non_null(strstr(text, "0,1\twar, drama > space, alien\t2\tcomedy, family\t2\t3\t1\t0.333333\n"));
    free(text); free(buf); free(bad); free(missing); free(path); free(tsv);
    jr_free(&j);
}

static void test_context_index_round_trip(void **state) {
    (void)state;
    for (int k = 1; k <= JR_K_MAX; k++) {
        const int32_t m = 5;
        int64_t n = jr_n_contexts(k, m);
        assert_int_equal(n, (int64_t)pow(5, k));
        int valid = 0;
        for (int64_t i = 0; i < n; i++) {
            int32_t ctx[JR_K_MAX];
            jr_context_from_index(i, k, m, ctx);
            assert_int_equal(jr_context_index(ctx, k, m), i);
            valid += jr_context_valid(ctx, k, m);
        }
        /* ordered k-tuples of distinct clusters: 5! / (5 - k)! */
        int want = 1;
        for (int i = 0; i < k; i++) want *= 5 - i;
        assert_int_equal(valid, want);
    }
    int32_t ctx[2] = {3, 4};
    assert_int_equal(jr_context_index(ctx, 2, 7), 3 * 7 + 4);
    ctx[1] = 7;
    assert_int_equal(jr_context_index(ctx, 2, 7), -1);
    assert_int_equal(jr_n_contexts(4, 1 << 20), -1); /* 2^80 overflows */
}

static void test_context_at_and_of_items(void **state) {
    (void)state;
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    int32_t ctx[JR_K_MAX];
    /* A before 45: positives c0@10 c1@20 c3@40 -> (1, 3) */
    assert_int_equal(jr_context_at(&g_ds, &g_tax, &rule, g_user[0], 45, 2, ctx), 2);
    assert_int_equal(ctx[0], 1);
    assert_int_equal(ctx[1], 3);
    /* any window: before 2001 the last positive is c2@2000, before it c3@70 -> (3, 2) */
    assert_int_equal(jr_context_at(&g_ds, &g_tax, &rule, g_user[0], 2001, 2, ctx), 2);
    assert_int_equal(ctx[0], 3);
    assert_int_equal(ctx[1], 2);
    /* B before 25: c0 twice -> only one distinct */
    assert_int_equal(jr_context_at(&g_ds, &g_tax, &rule, g_user[1], 25, 2, ctx), 1);
    assert_int_equal(ctx[0], 0);
    assert_int_equal(jr_context_at(&g_ds, &g_tax, &rule, g_user[1], 10, 2, ctx), 0);
    /* C: K = 3 before 1000: 1 0 2 3 -> (0, 2, 3) ; the unclustered i8 is skipped */
    assert_int_equal(jr_context_at(&g_ds, &g_tax, &rule, g_user[2], 1000, 3, ctx), 3);
    assert_int_equal(ctx[0], 0);
    assert_int_equal(ctx[2], 3);
    /* items 0 2 1 4 4 8 -> clusters 0 1 0 2 2 (-1) -> (0, 2) */
    int32_t items[6] = {g_item[0], g_item[2], g_item[1], g_item[4], g_item[4], g_item[8]};
    assert_int_equal(jr_context_of_items(&g_tax, items, 6, 2, ctx), 2);
    assert_int_equal(ctx[0], 0);
    assert_int_equal(ctx[1], 2);
    int32_t bad[2] = {-5, 1000};
    assert_int_equal(jr_context_of_items(&g_tax, bad, 2, 2, ctx), 0);
}

static void test_parse_positive(void **state) {
    (void)state;
    sd_err err = {0};
    ds_positive_rule r = DS_POSITIVE_DEFAULT;
    assert_int_equal(jr_parse_positive("rating:3.5", &r, &err), SD_OK);
    assert_true(r.min_rating == 3.5f && r.min_watch == 0.7f);
    assert_int_equal(jr_parse_positive("watch:0.5,rating:4", &r, &err), SD_OK);
    assert_true(r.min_rating == 4.0f && r.min_watch == 0.5f);
    assert_int_equal(jr_parse_positive("rating", &r, &err), SD_ERR_USAGE);
    assert_int_equal(jr_parse_positive("likes:3", &r, &err), SD_ERR_USAGE);
    assert_int_equal(jr_parse_positive("watch:1.5", &r, &err), SD_ERR_USAGE);
    assert_int_equal(jr_parse_positive("rating:4,", &r, &err), SD_ERR_USAGE);
    assert_true(r.min_rating == 4.0f && r.min_watch == 0.5f); /* unchanged by failures */
    /* a stricter rule changes the transitions: with rating >= 5 only 5-star events count */
    r = (ds_positive_rule){5.0f, 0.7f};
    jr_journeys j;
    ds_split split = {.train_end = 1000, .valid_end = 1500};
    assert_int_equal(jr_build(&g_ds, &split, &g_tax, &r, 2, &j, &err), SD_OK);
    /* A: c0@10 c3@40 c3@70 -> journey 0 3 ; B: c0 c0 c2 -> 0 2 ; C: watch .9 c2, .8 c3 -> 2 3 */
    assert_int_equal(j.n_steps, 6);
    assert_int_equal(j.n_transitions, 0);
    jr_free(&j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_k2),
        cmocka_unit_test(test_fixture_k1),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_context_index_round_trip),
        cmocka_unit_test(test_context_at_and_of_items),
        cmocka_unit_test(test_parse_positive),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
