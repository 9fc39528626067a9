/* test_kmeans.c - k-means: BLAS vs reference assignment, planted blobs, monotone inertia,
 * empty-cluster repair, determinism, argument errors. All fixtures are generated here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/kmeans.h"

static float *random_points(int64_t n, int d, uint64_t seed) {
    sd_rng r;
    sd_rng_seed(&r, seed);
    float *x = sd_malloc(sizeof(float) * (size_t)(n * d));
    for (int64_t i = 0; i < n * d; i++) x[i] = (float)sd_rng_normal(&r);
    return x;
}

/* Planted blobs: centres on a scaled simplex-like random layout at least `sep` apart, sigma 1. */
static float *blobs(int nb, const int *sizes, int d, double sep, uint64_t seed, int32_t *label) {
    sd_rng r;
    sd_rng_seed(&r, seed);
    int64_t n = 0;
    for (int b = 0; b < nb; b++) n += sizes[b];
    float *x = sd_malloc(sizeof(float) * (size_t)(n * d));
    int64_t i = 0;
    for (int b = 0; b < nb; b++) {
        for (int s = 0; s < sizes[b]; s++, i++) {
            label[i] = b;
            for (int t = 0; t < d; t++) x[i * d + t] = (float)((t == b ? sep : 0.0) + sd_rng_normal(&r));
        }
    }
    return x;
}

static void test_blas_assignment_matches_reference(void **state) {
    (void)state;
    int64_t n = 3000;
    int d = 24, k = 37;
    float *x = random_points(n, d, 7), *c = random_points(k, d, 8);
    int32_t *a1 = sd_malloc(sizeof(int32_t) * n), *a2 = sd_malloc(sizeof(int32_t) * n);
    float *d1 = sd_malloc(sizeof(float) * n), *d2 = sd_malloc(sizeof(float) * n);
    km_assign_blas(x, n, d, c, k, a1, d1);
    km_assign_ref(x, n, d, c, k, a2, d2);
    int differ = 0;
    for (int64_t i = 0; i < n; i++) {
        /* squared distances are ~50 here; float rounding of the expanded form is ~1e-5 relative,
         * so 1e-4 relative is a safe bound that a wrong kernel (a wrong sign or index) breaks */
        assert_true(fabsf(d1[i] - d2[i]) <= 1e-4f * (1.0f + d2[i]));
        if (a1[i] != a2[i]) {
            differ++;
            /* only an exact-enough tie may be resolved differently */
            double alt = 0;
            for (int t = 0; t < d; t++) {
                double df = (double)x[i * d + t] - c[a1[i] * d + t];
                alt += df * df;
            }
            assert_true(fabs(alt - d2[i]) <= 1e-4 * (1.0 + d2[i]));
        }
    }
    assert_true(differ <= 3);
    free(x), free(c), free(a1), free(a2), free(d1), free(d2);
}

static void test_recovers_planted_blobs(void **state) {
    (void)state;
    enum { NB = 8, D = 10 };
    int sizes[NB] = {40, 120, 75, 200, 33, 90, 150, 60};
    int64_t n = 0;
    for (int b = 0; b < NB; b++) n += sizes[b];
    int32_t *label = sd_malloc(sizeof(int32_t) * n);
    /* centres 25 apart (sigma 1): the blobs are separated by ~17 sigma, so any correct k-means
     * from k-means++ seeds recovers them exactly */
    float *x = blobs(NB, sizes, D, 25.0 / sqrt(2.0), 3, label);
    km_config cfg = KM_DEFAULT;
    cfg.k = NB;
    km_result r;
    sd_err err = {0};
    assert_int_equal(km_fit(x, n, D, &cfg, &r, &err), SD_OK);
    int map[NB];
    for (int b = 0; b < NB; b++) map[b] = -1;
    int used[NB] = {0};
    for (int64_t i = 0; i < n; i++) {
        int b = label[i], c = r.assign[i];
        if (map[b] < 0) {
            assert_int_equal(used[c], 0); /* bijection: no two blobs share a cluster */
            map[b] = c;
            used[c] = 1;
        }
        assert_int_equal(map[b], c);
    }
    km_result_free(&r);
    free(x), free(label);
}

static void test_inertia_never_increases(void **state) {
    (void)state;
    int64_t n = 4000;
    int d = 8;
    float *x = random_points(n, d, 11); /* one Gaussian: many iterations of real movement */
    km_config cfg = KM_DEFAULT;
    cfg.k = 40;
    cfg.max_iter = 30;
    cfg.tol = 0;
    km_result r;
    sd_err err = {0};
    assert_int_equal(km_fit(x, n, d, &cfg, &r, &err), SD_OK);
    assert_int_equal(r.n_iter, 31);
    for (int i = 1; i < r.n_iter; i++) {
        /* exact Lloyd steps never increase the cost; the only slack is the float rounding of the
         * BLAS assignment on near-ties and of float centroids: 1e-6 relative */
        assert_true(r.trace[i] <= r.trace[i - 1] * (1 + 1e-6));
    }
    assert_true(r.trace[r.n_iter - 1] < r.trace[0] * 0.999); /* it did move */
    assert_true(fabs(r.inertia - km_inertia(x, n, d, r.centroids, r.assign)) < 1e-9 * r.inertia);
    km_result_free(&r);
    free(x);
}

static void test_no_empty_clusters_with_duplicates(void **state) {
    (void)state;
    /* 60 points, only 9 distinct positions: k = 12 seeds must repeat a position, which leaves a
     * cluster empty after the first assignment (ties go to the lowest index) */
    int64_t n = 60;
    int d = 3;
    float *x = sd_calloc(n * d, sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        int p = i < 40 ? 0 : 1 + (int)(i % 8);
        x[i * d + 0] = (float)p * 5.0f;
        x[i * d + 1] = (float)(p % 3);
    }
    km_config cfg = KM_DEFAULT;
    cfg.k = 12;
    cfg.max_iter = 10;
    km_result r;
    sd_err err = {0};
    assert_int_equal(km_fit(x, n, d, &cfg, &r, &err), SD_OK);
    int64_t counts[12] = {0};
    for (int64_t i = 0; i < n; i++) {
        assert_in_range(r.assign[i], 0, 11);
        counts[r.assign[i]]++;
    }
    for (int j = 0; j < 12; j++) assert_true(counts[j] > 0);
    assert_true(r.n_repaired >= 1);
    km_result_free(&r);
    free(x);
}

static void test_deterministic_for_seed(void **state) {
    (void)state;
    int64_t n = 2500;
    int d = 16;
    float *x = random_points(n, d, 21);
    km_config cfg = KM_DEFAULT;
    cfg.k = 30;
    cfg.seed = 99;
    km_result a, b, c;
    sd_err err = {0};
    assert_int_equal(km_fit(x, n, d, &cfg, &a, &err), SD_OK);
    assert_int_equal(km_fit(x, n, d, &cfg, &b, &err), SD_OK);
    assert_memory_equal(a.assign, b.assign, sizeof(int32_t) * n);
    assert_memory_equal(a.centroids, b.centroids, sizeof(float) * 30 * d);
    cfg.seed = 100;
    assert_int_equal(km_fit(x, n, d, &cfg, &c, &err), SD_OK);
    assert_true(memcmp(a.centroids, c.centroids, sizeof(float) * 30 * d) != 0);
    km_result_free(&a), km_result_free(&b), km_result_free(&c);
    free(x);
}

static void test_bad_arguments(void **state) {
    (void)state;
    float x[6] = {0, 1, 2, 3, 4, 5};
    km_config cfg = KM_DEFAULT;
    km_result r;
    sd_err err = {0};
    cfg.k = 4;
    assert_int_equal(km_fit(x, 3, 2, &cfg, &r, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "k = 4"));
    cfg.k = 0;
    assert_int_equal(km_fit(x, 3, 2, &cfg, &r, &err), SD_ERR_USAGE);
    x[3] = NAN;
    cfg.k = 2;
    assert_int_equal(km_fit(x, 3, 2, &cfg, &r, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "point 1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blas_assignment_matches_reference),
        cmocka_unit_test(test_recovers_planted_blobs),
        cmocka_unit_test(test_inertia_never_increases),
        cmocka_unit_test(test_no_empty_clusters_with_duplicates),
        cmocka_unit_test(test_deterministic_for_seed),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
