/* test_embed.c - co-occurrence counts, PPMI and randomized eigendecomposition against plain
 * references, and planted-block structure of the resulting embeddings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/embed.h"

/* Random sequences over n items: n_seq sequences of length 0..maxlen. */
static void random_seqs(int64_t n_items, int64_t n_seq, int maxlen, uint64_t seed, int64_t **off, int32_t **items) {
    sd_rng r;
    sd_rng_seed(&r, seed);
    *off = sd_malloc(sizeof(int64_t) * (n_seq + 1));
    *items = sd_malloc(sizeof(int32_t) * (n_seq * maxlen + 1));
    (*off)[0] = 0;
    for (int64_t s = 0; s < n_seq; s++) {
        int len = (int)sd_rng_below(&r, maxlen + 1);
        for (int p = 0; p < len; p++) (*items)[(*off)[s] + p] = (int32_t)sd_rng_below(&r, (uint32_t)n_items);
        (*off)[s + 1] = (*off)[s] + len;
    }
}

/* Dense counts by the definition: ordered pairs of positions within the window, items differ. */
static float *naive_counts(int64_t n, int64_t n_seq, const int64_t *off, const int32_t *items, int window) {
    float *c = sd_calloc(n * n, sizeof(float));
    for (int64_t s = 0; s < n_seq; s++)
        for (int64_t p = off[s]; p < off[s + 1]; p++)
            for (int64_t q = off[s]; q < off[s + 1]; q++) {
                if (p == q || items[p] == items[q]) continue;
                if (window > 0 && llabs(p - q) > window) continue;
                c[items[p] * n + items[q]] += 1;
            }
    return c;
}

static float *csr_dense(const em_csr *m) {
    float *d = sd_calloc(m->n * m->n, sizeof(float));
    for (int64_t i = 0; i < m->n; i++) {
        for (int64_t e = m->row_off[i]; e < m->row_off[i + 1]; e++) {
            if (e > m->row_off[i]) assert_true(m->col[e] > m->col[e - 1]); /* sorted, no duplicates */
            d[i * m->n + m->col[e]] = m->val[e];
        }
    }
    return d;
}

static void test_cooc_matches_naive(void **state) {
    (void)state;
    int64_t n = 15, ns = 40;
    int64_t *off;
    int32_t *items;
    random_seqs(n, ns, 12, 5, &off, &items);
    int windows[3] = {0, 1, 3};
    for (int w = 0; w < 3; w++) {
        em_csr m;
        sd_err err = {0};
        assert_int_equal(em_cooc_build(n, ns, off, items, windows[w], &m, &err), SD_OK);
        float *a = csr_dense(&m), *b = naive_counts(n, ns, off, items, windows[w]);
        assert_memory_equal(a, b, sizeof(float) * n * n); /* integer counts: exact */
        free(a), free(b);
        em_csr_free(&m);
    }
    free(off), free(items);
}

static void test_ppmi_hand_value_and_sparse_matches_dense(void **state) {
    (void)state;
    /* hand-computed: c01 = 2, c02 = 1, c12 = 1 (symmetric), alpha = 1: row sums 3, 3, 2, D = 8,
     * PMI(0,1) = log((2/8) / (3/8 * 3/8)) = log(16/9); PMI(0,2) = log((1/8) / (3/8 * 2/8)) = log(4/3) */
    float c3[9] = {0, 2, 1, 2, 0, 1, 1, 1, 0}, p3[9];
    em_ppmi_dense_ref(c3, 3, 1.0f, p3);
    assert_float_equal(p3[1], log(16.0 / 9.0), 1e-6);
    assert_float_equal(p3[2], log(4.0 / 3.0), 1e-6);
    assert_float_equal(p3[5], log(4.0 / 3.0), 1e-6);
    assert_float_equal(p3[0], 0, 0);

    int64_t n = 20, ns = 60;
    int64_t *off;
    int32_t *items;
    random_seqs(n, ns, 9, 17, &off, &items);
    em_csr m;
    sd_err err = {0};
    assert_int_equal(em_cooc_build(n, ns, off, items, 2, &m, &err), SD_OK);
    float *counts = csr_dense(&m), *ref = sd_malloc(sizeof(float) * n * n);
    em_ppmi_dense_ref(counts, n, 0.75f, ref);
    em_ppmi(&m, 0.75f);
    float *fast = csr_dense(&m);
    int positive = 0;
    for (int64_t i = 0; i < n * n; i++) {
        /* both compute in double and store float: 1e-5 absolute on values of order 1 */
        assert_float_equal(fast[i], ref[i], 1e-5);
        positive += ref[i] > 0;
    }
    assert_true(positive > 10 && positive < n * n - n); /* some entries were dropped, some kept */
    free(counts), free(ref), free(fast), free(off), free(items);
    em_csr_free(&m);
}

/* Planted blocks: each sequence draws its items from one block, with prob. `noise` from anywhere.
 * Items >= n_used never occur. */
static void planted_seqs(int nb, int per_block, int64_t n_seq, int len, double noise, uint64_t seed, int64_t **off, int32_t **items) {
    sd_rng r;
    sd_rng_seed(&r, seed);
    *off = sd_malloc(sizeof(int64_t) * (n_seq + 1));
    *items = sd_malloc(sizeof(int32_t) * n_seq * len);
    (*off)[0] = 0;
    for (int64_t s = 0; s < n_seq; s++) {
        int b = (int)sd_rng_below(&r, nb);
        for (int p = 0; p < len; p++) {
            int it = sd_rng_uniform(&r) < noise ? (int)sd_rng_below(&r, nb * per_block) : b * per_block + (int)sd_rng_below(&r, per_block);
            (*items)[s * len + p] = it;
        }
        (*off)[s + 1] = (s + 1) * len;
    }
}

static void test_svd_matches_dense_eigendecomposition(void **state) {
    (void)state;
    int nb = 6, per = 25, n = nb * per, dim = 8;
    int64_t *off;
    int32_t *items;
    planted_seqs(nb, per, 400, 15, 0.2, 3, &off, &items);
    em_csr m;
    sd_err err = {0};
    assert_int_equal(em_cooc_build(n, 400, off, items, 0, &m, &err), SD_OK);
    em_ppmi(&m, 0.75f);
    float *a = csr_dense(&m), *a2 = sd_malloc(sizeof(float) * n * n), *ev = sd_malloc(sizeof(float) * n);
    memcpy(a2, a, sizeof(float) * n * n);
    assert_int_equal(LAPACKE_ssyevd(LAPACK_ROW_MAJOR, 'N', 'U', n, a2, n, ev), 0);
    /* reference: eigenvalues sorted by |value| descending */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (fabsf(ev[j]) > fabsf(ev[i])) {
                float t = ev[i];
                ev[i] = ev[j], ev[j] = t;
            }
    float *vecs = sd_malloc(sizeof(float) * n * dim), vals[8];
    assert_int_equal(em_svd_sym(&m, dim, 10, 4, 1, vecs, vals, &err), SD_OK);
    for (int c = 0; c < 6; c++) {
        /* the 6 block eigenvalues are well separated from the noise bulk, so 4 subspace iterations
         * get them to float accuracy: 1e-3 relative to the largest */
        assert_float_equal(fabsf(vals[c]), fabsf(ev[c]), 1e-3 * fabsf(ev[0]));
        /* and each vector is an eigenvector: ||A v - lambda v|| small */
        double res = 0;
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += (double)a[i * n + j] * vecs[j * dim + c];
            s -= (double)vals[c] * vecs[i * dim + c];
            res += s * s;
        }
        assert_true(sqrt(res) < 1e-2 * fabsf(ev[0]));
    }
    free(a), free(a2), free(ev), free(vecs), free(off), free(items);
    em_csr_free(&m);
}

static double cosine(const float *a, const float *b, int d) {
    double s = 0;
    for (int t = 0; t < d; t++) s += (double)a[t] * b[t];
    return s;
}

static void test_planted_blocks_embed_together(void **state) {
    (void)state;
    int nb = 8, per = 40, n_used = nb * per, n = n_used + 5; /* 5 items never occur */
    int64_t *off;
    int32_t *items;
    planted_seqs(nb, per, 1500, 20, 0.15, 9, &off, &items);
    em_config cfg = EM_DEFAULT;
    cfg.dim = 16;
    em_embedding e, e2;
    sd_err err = {0};
    assert_int_equal(em_embed(n, 1500, off, items, &cfg, &e, &err), SD_OK);
    assert_int_equal(e.n_embedded, n_used);
    for (int i = n_used; i < n; i++) assert_int_equal(e.has[i], 0);
    double within = 0, across = 0;
    int64_t nw = 0, na = 0, nn_same = 0;
    for (int i = 0; i < n_used; i++) {
        double norm = cosine(e.vec + i * e.dim, e.vec + i * e.dim, e.dim);
        assert_float_equal(norm, 1.0, 1e-5); /* L2-normalised */
        int best = -1;
        double bc = -2;
        for (int j = 0; j < n_used; j++) {
            if (j == i) continue;
            double c = cosine(e.vec + i * e.dim, e.vec + j * e.dim, e.dim);
            if (i / per == j / per) within += c, nw++;
            else across += c, na++;
            if (c > bc) bc = c, best = j;
        }
        nn_same += best / per == i / per;
    }
    within /= nw, across /= na;
    /* with 85% in-block draws the blocks dominate: a random embedding would give both ~0 */
    assert_true(within > 0.5);
    assert_true(across < 0.2);
    assert_true(nn_same >= (int64_t)(0.95 * n_used));
    /* deterministic for a seed */
    assert_int_equal(em_embed(n, 1500, off, items, &cfg, &e2, &err), SD_OK);
    assert_memory_equal(e.vec, e2.vec, sizeof(float) * n * e.dim);
    em_embedding_free(&e), em_embedding_free(&e2);
    free(off), free(items);
}

static void test_bad_input(void **state) {
    (void)state;
    int64_t off[2] = {0, 3};
    int32_t items[3] = {0, 1, 7};
    em_csr m;
    sd_err err = {0};
    assert_int_equal(em_cooc_build(5, 1, off, items, 0, &m, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "item 7"));
    /* a single one-item sequence: nothing co-occurs */
    int64_t off1[2] = {0, 1};
    em_embedding e;
    em_config cfg = EM_DEFAULT;
    assert_int_equal(em_embed(5, 1, off1, items, &cfg, &e, &err), SD_ERR_DATA);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cooc_matches_naive),
        cmocka_unit_test(test_ppmi_hand_value_and_sparse_matches_dense),
        cmocka_unit_test(test_svd_matches_dense_eigendecomposition),
        cmocka_unit_test(test_planted_blocks_embed_together),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
