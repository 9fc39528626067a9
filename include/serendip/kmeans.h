/* kmeans.h - Lloyd's k-means with k-means++ seeding, BLAS assignment and empty-cluster repair.
 *
 * Points are row-major float (n, d). The assignment step computes ||x||^2 - 2 x.c + ||c||^2 with
 * one sgemm per block of points; km_assign_ref is the plain, obviously-correct kernel it is
 * tested against. Deterministic for a seed (at a fixed thread count). */
#ifndef SERENDIP_KMEANS_H
#define SERENDIP_KMEANS_H

#include "serendip/base.h"

typedef struct {
    int k;          /* clusters, 1 <= k <= n */
    int max_iter;   /* Lloyd iterations at most (default 25) */
    double tol;     /* stop when the relative inertia decrease is below tol; 0 = run max_iter */
    uint64_t seed;  /* k-means++ seeding */
    int pp_trials;  /* candidates per k-means++ step (greedy k-means++); 0 = 3 */
} km_config;

#define KM_DEFAULT ((km_config){.k = 8, .max_iter = 25, .tol = 1e-4, .seed = 1, .pp_trials = 0})

typedef struct {
    int k, d;
    float *centroids;  /* (k, d) */
    int32_t *assign;   /* (n) cluster of each point, every cluster non-empty */
    double inertia;    /* sum of squared distances to the assigned centroid, exact (double) */
    int n_iter;        /* assignment steps run: max_iter updates + a final assignment, or fewer
                        * when the tolerance stopped it */
    double *trace;     /* (n_iter) inertia of each assignment step, before its update */
    int n_repaired;    /* empty clusters refilled over the run */
} km_result;

/* Clusters x (n, d) into cfg->k clusters. Fills out (caller frees with km_result_free).
 * Returns SD_ERR_USAGE when k < 1, k > n, d < 1 or a point is not finite. */
int km_fit(const float *x, int64_t n, int d, const km_config *cfg, km_result *out, sd_err *err);
void km_result_free(km_result *r);

/* Assignment kernels: for each point the nearest of the k centroids c (k, d) (lowest index on a
 * tie); assign (n), dist (n) squared distances (may be NULL). The BLAS kernel is the fast path:
 * it ranks centroids by the expanded form, then computes the chosen distance directly. */
void km_assign_blas(const float *x, int64_t n, int d, const float *c, int k, int32_t *assign, float *dist);
void km_assign_ref(const float *x, int64_t n, int d, const float *c, int k, int32_t *assign, float *dist);

/* Exact inertia (double accumulation) of an assignment. */
double km_inertia(const float *x, int64_t n, int d, const float *c, const int32_t *assign);

/* k-means++ seeding alone: writes k centroids (k, d) chosen among the points; trials <= 0 means
 * 2 + ln k. km_fit seeds from a uniform sample of 32 k points when n is larger. */
void km_seed_pp(const float *x, int64_t n, int d, int k, int trials, uint64_t seed, float *c);

#endif
