/* test_retrieve.c - restricted item retrieval: evaluation on a hand-made model whose HR/NDCG are
 * worked out by hand below, ranking invariants against a reference scorer, learning of a
 * sequential pattern that popularity gets wrong, determinism, and the retrieval.bin file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/retrieve.h"

/* ---------------------------------------------------------------- fixture helpers */

/* A taxonomy over n_items where item i (dense) is in cluster[i] (-1: none); members in index
 * order. Caller frees with free_tax. */
static void make_tax(tx_taxonomy *t, int64_t n_items, const int32_t *cluster, int32_t m) {
    memset(t, 0, sizeof *t);
    t->n_top = 1, t->n_clusters = m, t->n_items = n_items;
    t->item_cluster = sd_malloc((size_t)n_items * sizeof(int32_t));
    t->parent = sd_calloc((size_t)m, sizeof(int32_t));
    t->size = sd_calloc((size_t)m, sizeof(int32_t));
    t->desc = sd_calloc((size_t)m, sizeof(char *));
    t->members = sd_malloc((size_t)n_items * sizeof(int32_t));
    t->member_off = sd_calloc((size_t)m + 1, sizeof(int64_t));
    t->top_desc = sd_malloc(sizeof(char *));
    t->top_desc[0] = sd_strdup("all");
    memcpy(t->item_cluster, cluster, (size_t)n_items * sizeof(int32_t));
    int64_t k = 0;
    for (int32_t c = 0; c < m; c++) {
        t->member_off[c] = k;
        t->desc[c] = sd_asprintf("cluster %d", c);
        for (int64_t i = 0; i < n_items; i++)
            if (cluster[i] == c) t->members[k++] = (int32_t)i, t->size[c]++;
    }
    t->member_off[m] = k;
}

static void free_tax(tx_taxonomy *t) {
    for (int c = 0; c < t->n_clusters; c++) free(t->desc[c]);
    free(t->top_desc[0]), free(t->top_desc);
    free(t->item_cluster), free(t->parent), free(t->size), free(t->desc), free(t->members), free(t->member_off);
}

/* ---------------------------------------------------------------- evaluation by hand
 * 6 items, raw 1..6 = dense 0..5 (catalogue order). Clusters: {1,2,3} = 0, {4,5,6} = 1.
 * A hand-set model with dim 1, decay 0.5: U(1) = +1, U(4) = -1, other U 0; V(2) = 2, V(3) = -1,
 * V(5) = 1, other V 0; bias(6) = 0.5, other 0; pop = 5 1 3 2 4 6. Score = bias + q V, q = the
 * recency-weighted mean of U over the recent items (newest weight 1, then 0.5, ...).
 * Split: train < 100, valid < 200, test >= 200.
 * user A: 10 i1 r5 | 300 i2 r5 -> case 1: q = 1; cluster 0 unseen {2, 3}: s2 = 2, s3 = -1 ->
 *         rank 1; pop 1 < 3 -> pop rank 2.
 *         | 310 i3 r4 -> case 2: recent (1, 2), q = (0.5*1 + 1*0)/1.5 = 1/3; unseen {3} -> rank 1, 1.
 * user B: 20 i4 r1 | 260 i6 r5 -> case 3: q = -1; unseen {5, 6}: s5 = -1, s6 = 0.5 -> rank 1;
 *         pop 6 > 4 -> 1.
 * user C: 300 i1 r5 -> no history: skipped.
 * user D: 50 i2 r5 | 210 i2 r5 (seen: no case) | 220 i3 r1 (not positive: no case).
 * user E: 30 i3 r5 | 400 i2 r5 -> case 4: q = 0; unseen {1, 2}: s1 = s2 = 0, tie to the lower
 *         index (item 1) -> rank 2; pop 5 > 1 -> pop rank 2.
 * cases 4; candidates 2+1+2+2 -> mean 7/4.
 * @1:  model HR = NDCG = 3/4; pop HR = NDCG = 2/4.
 * @10: model HR 1, NDCG (3 + 1/log2 3)/4; pop HR 1, NDCG (2 + 2/log2 3)/4. */

static ds_dataset g_ds;
static tx_taxonomy g_tax;

static int setup_eval(void **state) {
    (void)state;
    ds_builder *b = ds_builder_new();
    sd_err err = {0};
    for (int i = 1; i <= 6; i++) {
        char title[32];
        snprintf(title, sizeof title, "Item %d", i);
        if (ds_builder_add_item(b, i, title, "", &err)) return 1;
    }
    const float N = DS_NO_VALUE;
    struct { int64_t u, item, ts; float r; } ev[] = {
        {1, 1, 10, 5}, {1, 2, 300, 5}, {1, 3, 310, 4}, {2, 4, 20, 1}, {2, 6, 260, 5}, {3, 1, 300, 5},
        {4, 2, 50, 5}, {4, 2, 210, 5}, {4, 3, 220, 1}, {5, 3, 30, 5}, {5, 2, 400, 5},
    };
    for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++) ds_builder_add_event(b, ev[i].u, ev[i].item, ev[i].ts, ev[i].r, N);
    if (ds_builder_finish(b, &g_ds, &err)) return 1;
    for (int i = 1; i <= 6; i++)
        if (ds_find_item(&g_ds, i) != i - 1) return 1; /* the hand computation assumes this */
    make_tax(&g_tax, 6, (int32_t[]){0, 0, 0, 1, 1, 1}, 2);
    return 0;
}

static int teardown_eval(void **state) {
    (void)state;
    ds_free(&g_ds);
    free_tax(&g_tax);
    return 0;
}

/* A heap model over g_ds with dim 1 and the values of the comment above. */
static void hand_model(rt_model *m, uint8_t **body) {
    memset(m, 0, sizeof *m);
    m->dim = 1, m->recent = 10, m->decay = 0.5f, m->n_items = 6, m->items_hash = rt_items_hash(&g_ds);
    *body = sd_calloc(1, 6 * 8 + 6 * 4 * 3);
    int64_t *pop = (int64_t *)*body;
    float *U = (float *)(*body + 48), *V = U + 6, *bias = V + 6;
    const int64_t p[6] = {5, 1, 3, 2, 4, 6};
    memcpy(pop, p, sizeof p);
    U[0] = 1, U[3] = -1;
    V[1] = 2, V[2] = -1, V[4] = 1;
    bias[5] = 0.5f;
    m->pop = pop, m->U = U, m->V = V, m->bias = bias;
}

static void test_evaluate_by_hand(void **state) {
    (void)state;
    rt_model m;
    uint8_t *body;
    hand_model(&m, &body);
    ds_split s = {.train_end = 100, .valid_end = 200};
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    rt_eval e;
    sd_err err = {0};
    /* tolerance 1e-12: sums of four doubles, no accumulation error to speak of */
    assert_int_equal(rt_evaluate(&m, &g_ds, &s, &g_tax, &rule, 1, &e, &err), SD_OK);
    assert_int_equal(e.cases, 4);
    assert_int_equal(e.skipped_no_history, 1);
    assert_true(fabs(e.hr - 0.75) < 1e-12 && fabs(e.ndcg - 0.75) < 1e-12);
    assert_true(fabs(e.pop_hr - 0.5) < 1e-12 && fabs(e.pop_ndcg - 0.5) < 1e-12);
    assert_true(fabs(e.mean_candidates - 1.75) < 1e-12);
    assert_int_equal(rt_evaluate(&m, &g_ds, &s, &g_tax, &rule, 10, &e, &err), SD_OK);
    double l3 = 1 / log2(3.0);
    assert_true(fabs(e.hr - 1) < 1e-12 && fabs(e.ndcg - (3 + l3) / 4) < 1e-12);
    assert_true(fabs(e.pop_hr - 1) < 1e-12 && fabs(e.pop_ndcg - (2 + 2 * l3) / 4) < 1e-12);
    cJSON *j = rt_eval_json(&e);
    assert_int_equal((int)cJSON_GetObjectItem(j, "cases")->valuedouble, 4);
    assert_true(fabs(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "popularity"), "hr")->valuedouble - 1) < 1e-12);
    cJSON_Delete(j);
    /* a model of another catalogue is refused */
    m.items_hash ^= 1;
    assert_int_equal(rt_evaluate(&m, &g_ds, &s, &g_tax, &rule, 10, &e, &err), SD_ERR_DATA);
    free(body);
}

static void test_recommend_by_hand(void **state) {
    (void)state;
    rt_model m;
    uint8_t *body;
    hand_model(&m, &body);
    rt_scored out[8];
    /* recent (1): q = 1; cluster 0 minus seen {0}: item 1 (s 2) then item 2 (s -1) */
    int n = rt_recommend(&m, &g_tax, (int32_t[]){0}, 1, 0, (int32_t[]){0}, 1, 5, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].item, 1);
    assert_true(fabs(out[0].score - 2) < 1e-6);
    assert_int_equal(out[1].item, 2);
    /* no recent items: scores are the biases; cluster 1: item 5 (0.5), then 3 and 4 tied at 0 */
    n = rt_recommend(&m, &g_tax, NULL, 0, 1, NULL, 0, 2, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].item, 5);
    assert_int_equal(out[1].item, 3);
    /* popularity baseline: cluster 1 by pop 6, 4, 2 = items 5, 4, 3 */
    n = rt_recommend_popular(&m, &g_tax, 1, (int32_t[]){4}, 1, 5, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].item, 5);
    assert_int_equal(out[1].item, 3);
    /* bad cluster and k = 0 */
    assert_int_equal(rt_recommend(&m, &g_tax, NULL, 0, 2, NULL, 0, 5, out), -1);
    assert_int_equal(rt_recommend(&m, &g_tax, NULL, 0, -1, NULL, 0, 5, out), -1);
    assert_int_equal(rt_recommend(&m, &g_tax, NULL, 0, 0, NULL, 0, 0, out), 0);
    free(body);
}

/* ---------------------------------------------------------------- learning a sequence
 * 100 users. Items (raw = dense + 1): A=1 C=2 F=3 in cluster 0; B=4 D=5 E=6 in cluster 1.
 * 30 users watch A then B; 30 watch C then D; 40 watch F then D. D is the most popular item of
 * cluster 1 (70 events vs 30), so popularity answers D; after A the model must answer B. */

static void seq_dataset(ds_dataset *d) {
    ds_builder *b = ds_builder_new();
    sd_err err = {0};
    for (int i = 1; i <= 6; i++) assert_int_equal(ds_builder_add_item(b, i, "t", "", &err), SD_OK);
    for (int u = 0; u < 100; u++) {
        int first = u < 30 ? 1 : u < 60 ? 2 : 3, second = u < 30 ? 4 : 5;
        ds_builder_add_event(b, u, first, 10 + u, 5, DS_NO_VALUE);
        ds_builder_add_event(b, u, second, 20 + u, 5, DS_NO_VALUE);
    }
    ds_builder_add_event(b, 999, 6, 5, 5, DS_NO_VALUE); /* E: one lone event */
    assert_int_equal(ds_builder_finish(b, d, &err), SD_OK);
}

static rt_options small_options(void) {
    rt_options o = RT_OPTIONS_DEFAULT;
    o.dim = 8, o.epochs = 60, o.window = 2, o.seed = 7;
    return o;
}

static void test_learns_sequence(void **state) {
    (void)state;
    ds_dataset d;
    seq_dataset(&d);
    tx_taxonomy t;
    make_tax(&t, 6, (int32_t[]){0, 0, 0, 1, 1, 1}, 2);
    rt_options o = small_options();
    rt_model m;
    sd_err err = {0};
    assert_int_equal(rt_train_data(&d, NULL, &o, &m, &err), SD_OK);
    assert_int_equal(m.n_train_events, 201);
    assert_int_equal(m.pop[4], 70);
    rt_scored out[3];
    int32_t A = 0, C = 1, F = 2;
    assert_int_equal(rt_recommend(&m, &t, &A, 1, 1, NULL, 0, 3, out), 3);
    assert_int_equal(out[0].item, 3); /* B */
    assert_int_equal(rt_recommend(&m, &t, &C, 1, 1, NULL, 0, 3, out), 3);
    assert_int_equal(out[0].item, 4); /* D */
    assert_int_equal(rt_recommend(&m, &t, &F, 1, 1, NULL, 0, 3, out), 3);
    assert_int_equal(out[0].item, 4);
    assert_int_equal(rt_recommend_popular(&m, &t, 1, NULL, 0, 3, out), 3);
    assert_int_equal(out[0].item, 4); /* popularity is wrong after A */
    /* the same seed gives the same bytes; the file round-trips them */
    rt_model m2;
    assert_int_equal(rt_train_data(&d, NULL, &o, &m2, &err), SD_OK);
    size_t bytes = (size_t)m.n_items * (8 + 4 * (2 * (size_t)m.dim + 1));
    assert_memory_equal(m.pop, m2.pop, bytes);
    rt_close(&m2);
    char dir[] = "/tmp/sdrtXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = sd_path_join(dir, RT_FILE);
    assert_int_equal(rt_save(&m, path, &err), SD_OK);
    assert_int_equal(rt_open(&m2, path, &err), SD_OK);
    assert_int_equal(m2.dim, 8);
    assert_int_equal(m2.n_items, 6);
    assert_true(m2.items_hash == rt_items_hash(&d));
    assert_memory_equal(m.pop, m2.pop, bytes);
    rt_close(&m2);

    /* refusals: truncated, flipped body byte, bad magic, wrong version */
    char *buf;
    size_t len;
    assert_int_equal(sd_read_file(path, &buf, &len, &err), SD_OK);
    char *bad = sd_path_join(dir, "bad.bin");
    struct { size_t at; int trunc; const char *want; } cases[] = {
        {0, 1, "truncated"}, {RT_HEADER_SIZE + 10, 0, "body checksum"}, {0, 0, "magic"}, {8, 0, "version"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *copy = sd_malloc(len);
        memcpy(copy, buf, len);
        size_t l = len;
        if (cases[i].trunc) l -= 4;
        else copy[cases[i].at] ^= 0x5a;
        if (cases[i].at == 8 && !cases[i].trunc) { /* version: keep the header checksum valid */
            uint64_t h = sd_hash64(copy, 120, SD_HASH_SEED);
            memcpy(copy + 120, &h, 8);
        }
        assert_int_equal(sd_write_file_atomic(bad, copy, l, &err), SD_OK);
        assert_int_equal(rt_open(&m2, bad, &err), SD_ERR_FORMAT);
        if (!strstr(err.msg, cases[i].want)) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].want);
        free(copy);
    }
    free(buf), free(bad);
    unlink(path);
    char *tmp = sd_path_join(dir, "bad.bin");
    unlink(tmp);
    free(tmp);
    rmdir(dir);
    free(path);
    rt_close(&m);
    free_tax(&t);
    ds_free(&d);
}

/* ---------------------------------------------------------------- invariants vs a reference scorer */

static float ref_score(const rt_model *m, const int32_t *recent, int n, int32_t j) {
    if (n > m->recent) recent += n - m->recent, n = m->recent;
    double q[RT_DIM_MAX] = {0}, w = 1, ws = 0;
    for (int l = n - 1; l >= 0; l--, w *= m->decay) {
        for (int x = 0; x < m->dim; x++) q[x] += w * m->U[(size_t)recent[l] * m->dim + x];
        ws += w;
    }
    double s = m->bias[j];
    for (int x = 0; ws > 0 && x < m->dim; x++) s += q[x] / ws * m->V[(size_t)j * m->dim + x];
    return (float)s;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void test_invariants_random(void **state) {
    (void)state;
    /* 300 items in 7 clusters (a few unclustered), a trained model, random queries */
    enum { NI = 300, NC = 7 };
    ds_builder *b = ds_builder_new();
    sd_err err = {0};
    sd_rng r;
    sd_rng_seed(&r, 3);
    for (int i = 0; i < NI; i++) assert_int_equal(ds_builder_add_item(b, i, "t", "", &err), SD_OK);
    for (int u = 0; u < 200; u++)
        for (int e = 0; e < 20; e++) ds_builder_add_event(b, u, (int64_t)sd_rng_below(&r, NI), e, 4, DS_NO_VALUE);
    ds_dataset d;
    assert_int_equal(ds_builder_finish(b, &d, &err), SD_OK);
    int32_t cl[NI];
    for (int i = 0; i < NI; i++) cl[i] = i % 29 == 0 ? -1 : (int32_t)(i % NC);
    tx_taxonomy t;
    make_tax(&t, d.n_items, cl, NC);
    rt_options o = small_options();
    o.epochs = 2, o.recent = 5;
    rt_model m;
    assert_int_equal(rt_train_data(&d, NULL, &o, &m, &err), SD_OK);
    rt_index ix;
    assert_int_equal(rt_index_build(&m, &t, &ix, &err), SD_OK);
    for (int trial = 0; trial < 300; trial++) {
        int32_t recent[12], seen[80];
        int nr = (int)sd_rng_below(&r, 12), ns = (int)sd_rng_below(&r, 80), k = 1 + (int)sd_rng_below(&r, 60);
        for (int i = 0; i < nr; i++) recent[i] = (int32_t)sd_rng_below(&r, (uint32_t)d.n_items);
        for (int i = 0; i < ns; i++) seen[i] = (int32_t)sd_rng_below(&r, (uint32_t)d.n_items);
        qsort(seen, (size_t)ns, sizeof *seen, cmp_i32);
        int32_t c = (int32_t)sd_rng_below(&r, NC);
        rt_scored out[RT_K_MAX];
        int n = rt_recommend(&m, &t, recent, nr, c, seen, ns, k, out);
        int unseen = 0;
        for (int64_t i = t.member_off[c]; i < t.member_off[c + 1]; i++)
            if (!bsearch(&t.members[i], seen, (size_t)ns, sizeof *seen, cmp_i32)) unseen++;
        assert_int_equal(n, unseen < k ? unseen : k);
        for (int i = 0; i < n; i++) {
            assert_int_equal(t.item_cluster[out[i].item], c);                                  /* in the cluster */
            assert_null(bsearch(&out[i].item, seen, (size_t)ns, sizeof *seen, cmp_i32));      /* never seen */
            /* float vs double reference of a dim-8 dot product: 1e-4 relative covers the rounding */
            float ref = ref_score(&m, recent, nr, out[i].item);
            assert_true(fabsf(out[i].score - ref) <= 1e-4f * (1 + fabsf(ref)));
            if (i) assert_true(out[i - 1].score > out[i].score || (out[i - 1].score == out[i].score && out[i - 1].item < out[i].item));
            for (int j = 0; j < i; j++) assert_int_not_equal(out[i].item, out[j].item);
        }
        /* nothing better was left out: every unseen item not returned scores <= the last one */
        if (n == k)
            for (int64_t i = t.member_off[c]; i < t.member_off[c + 1]; i++) {
                int32_t j = t.members[i];
                int taken = 0;
                for (int x = 0; x < n; x++) taken |= out[x].item == j;
                if (taken || bsearch(&j, seen, (size_t)ns, sizeof *seen, cmp_i32)) continue;
                float sj = ref_score(&m, recent, nr, j);
                assert_true(sj <= out[n - 1].score + 1e-4f * (1 + fabsf(sj)));
            }
        /* the serving path (query once, cluster-major index, seen bitmap) ranks the same items;
         * scores agree to float rounding of a dim-8 dot summed in another order (1e-5 relative) */
        uint64_t mask[(NI + 63) / 64] = {0};
        for (int i = 0; i < ns; i++) mask[seen[i] >> 6] |= 1ull << (seen[i] & 63);
        rt_query q;
        rt_query_init(&m, recent, nr, &q);
        rt_scored fast[RT_K_MAX], mid[RT_K_MAX];
        assert_int_equal(rt_rank_indexed(&ix, &q, c, mask, k, fast), n);
        assert_int_equal(rt_rank(&m, &t, &q, c, NULL, 0, mask, k, mid), n);
        for (int i = 0; i < n; i++) {
            assert_true(fabsf(fast[i].score - out[i].score) <= 1e-5f * (1 + fabsf(out[i].score)));
            assert_int_equal(mid[i].item, out[i].item);
            /* a near-tie may swap two items whose scores differ by rounding only */
            if (fast[i].item != out[i].item) assert_true(fabsf(fast[i].score - out[i].score) <= 1e-5f * (1 + fabsf(out[i].score)));
        }
        int np = rt_recommend_popular(&m, &t, c, seen, ns, k, out);
        assert_int_equal(np, n);
        for (int i = 1; i < np; i++) assert_true(m.pop[out[i - 1].item] >= m.pop[out[i].item]);
    }
    assert_int_equal(rt_rank_indexed(&ix, NULL, NC, NULL, 3, NULL), -1);
    rt_index_free(&ix);
    rt_close(&m);
    free_tax(&t);
    ds_free(&d);
}

/* The workspace stage: rt_train writes retrieval.bin from dataset.bin + split.json, and
 * rt_evaluate_ws gives exactly what rt_evaluate gives on the same pieces in memory. */
static void test_workspace_stage(void **state) {
    (void)state;
    char dir[] = "/tmp/sdrtwsXXXXXX";
    assert_non_null(mkdtemp(dir));
    sd_err err = {0};
    char *dp = sd_path_join(dir, DS_FILE), *sp = sd_path_join(dir, DS_SPLIT_FILE), *tp = sd_path_join(dir, TX_FILE),
         *mp = sd_path_join(dir, RT_FILE);
    rt_eval e;
    assert_int_equal(rt_evaluate_ws(dir, 10, &e, &err), SD_ERR_STATE); /* nothing there yet */
    assert_int_equal(ds_save(&g_ds, dp, &err), SD_OK);
    /* train and valid windows end at 400: everything but user E's item 2 at ts 400 is train */
    ds_split s = {.train_end = 400, .valid_end = 400};
    assert_int_equal(ds_split_save(&s, sp, &err), SD_OK);
    assert_int_equal(tx_save(&g_tax, tp, &err), SD_OK);
    rt_options o = small_options();
    assert_int_equal(rt_train(dir, &o, &err), SD_OK);
    rt_model m;
    assert_int_equal(rt_open(&m, mp, &err), SD_OK);
    assert_int_equal(m.train_end, 400);
    assert_int_equal(m.n_train_events, 10); /* all 11 events but E's at ts 400 */
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    rt_eval want;
    assert_int_equal(rt_evaluate(&m, &g_ds, &s, &g_tax, &rule, 10, &want, &err), SD_OK);
    assert_int_equal(rt_evaluate_ws(dir, 10, &e, &err), SD_OK);
    assert_int_equal(e.cases, 1); /* E: item 2 at ts 400, history item 3 */
    assert_int_equal(e.cases, want.cases);
    assert_true(e.hr == want.hr && e.ndcg == want.ndcg && e.pop_hr == want.pop_hr && e.pop_ndcg == want.pop_ndcg);
    rt_close(&m);
    unlink(dp), unlink(sp), unlink(tp), unlink(mp);
    rmdir(dir);
    free(dp), free(sp), free(tp), free(mp);
}

static void test_bad_options(void **state) {
    (void)state;
    ds_dataset d;
    seq_dataset(&d);
    rt_model m;
    sd_err err = {0};
    rt_options o = RT_OPTIONS_DEFAULT;
    o.dim = 0;
    assert_int_equal(rt_train_data(&d, NULL, &o, &m, &err), SD_ERR_USAGE);
    o = RT_OPTIONS_DEFAULT, o.recent = RT_RECENT_MAX + 1;
    assert_int_equal(rt_train_data(&d, NULL, &o, &m, &err), SD_ERR_USAGE);
    /* a split before every event leaves no sequence */
    o = RT_OPTIONS_DEFAULT;
    ds_split s = {0};
    assert_int_equal(rt_train_data(&d, &s, &o, &m, &err), SD_ERR_DATA);
    ds_free(&d);
    /* the workspace stage without a dataset is a missing-stage error */
    assert_int_equal(rt_train("/nonexistent/serendip-ws", NULL, &err), SD_ERR_STATE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_evaluate_by_hand, setup_eval, teardown_eval),
        cmocka_unit_test_setup_teardown(test_recommend_by_hand, setup_eval, teardown_eval),
        cmocka_unit_test(test_learns_sequence),
        cmocka_unit_test(test_invariants_random),
        cmocka_unit_test_setup_teardown(test_workspace_stage, setup_eval, teardown_eval),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
