/* kmeans.c - Lloyd's k-means: greedy k-means++ seeding, BLAS assignment, empty-cluster repair.
 *
 * Hand-written because no Debian C library offers k-means with these pieces (FAISS is C++ and is
 * what bench/bench_kmeans_faiss.cpp compares us against). The hot loop is the assignment: one
 * sgemm per block of points gives x.c, and ||x||^2 - 2 x.c + ||c||^2 is minimised per row under
 * OpenMP. km_assign_ref is the plain double loop kept beside it for tests.
 *
 * Empty clusters are repaired after each assignment by moving the point farthest from its
 * centroid (taken from a cluster with more than one point) into the empty cluster. That point's
 * cost drops to zero and the following mean update can only lower the cost further, so the
 * inertia sequence stays non-increasing (tests/test_kmeans.c checks it). */
#include "serendip/kmeans.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- assignment kernels */

/* Loops with less work than this (in multiply-adds) run on one thread: a parallel region costs
 * more than it saves below it, and much more on a loaded machine. */
#define KM_PAR_MIN ((int64_t)1 << 20)

static float sqdist(const float *a, const float *b, int d) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int t = 0; t < d; t++) {
        float df = a[t] - b[t];
        s += df * df;
    }
    return s;
}

void km_assign_ref(const float *x, int64_t n, int d, const float *c, int k, int32_t *assign, float *dist) {
#pragma omp parallel for schedule(static) if(n * d * k >= KM_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        double best = INFINITY;
        int32_t arg = 0;
        for (int j = 0; j < k; j++) {
            double s = 0;
            for (int t = 0; t < d; t++) {
                double df = (double)xi[t] - (double)c[(int64_t)j * d + t];
                s += df * df;
            }
            if (s < best) best = s, arg = j;
        }
        assign[i] = arg;
        if (dist) dist[i] = (float)best;
    }
}

/* Rows per sgemm block: large enough for BLAS efficiency, small enough that the (rows, k) block of
 * dot products stays within ~16 MB. */
static int64_t assign_block_rows(int k) {
    int64_t b = ((int64_t)1 << 22) / (k > 0 ? k : 1);
    if (b > 8192) b = 8192;
    if (b < 64) b = 64;
    return b;
}

void km_assign_blas(const float *x, int64_t n, int d, const float *c, int k, int32_t *assign, float *dist) {
    float *cnorm = sd_malloc(sizeof(float) * (size_t)k); /* (k) */
    for (int j = 0; j < k; j++) {
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int t = 0; t < d; t++) s += c[(int64_t)j * d + t] * c[(int64_t)j * d + t];
        cnorm[j] = s;
    }
    int64_t brows = assign_block_rows(k);
    float *g = sd_malloc(sizeof(float) * (size_t)(brows * k)); /* (brows, k) -2 x.c, then + ||c||^2 */
    for (int64_t i0 = 0; i0 < n; i0 += brows) {
        int64_t b = n - i0 < brows ? n - i0 : brows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, k, d, -2.0f, x + i0 * d, d, c, d, 0.0f, g, k);
        /* hot loop: argmin over centroids of ||c||^2 - 2 x.c, as a vectorised min then a scan for
         * its first position (an argmin with an index does not vectorise) */
#pragma omp parallel for schedule(static) if(b * (k + d) >= KM_PAR_MIN)
        for (int64_t r = 0; r < b; r++) {
            float *gr = g + r * k;
            float best = INFINITY;
#pragma omp simd reduction(min : best)
            for (int j = 0; j < k; j++) {
                gr[j] += cnorm[j];
                best = gr[j] < best ? gr[j] : best;
            }
            int32_t arg = 0;
            while (arg < k - 1 && !(gr[arg] <= best)) arg++;
            assign[i0 + r] = arg;
            /* the chosen centroid's distance directly: no cancellation, cheap (d flops) */
            if (dist) dist[i0 + r] = sqdist(x + (i0 + r) * d, c + (int64_t)arg * d, d);
        }
    }
    free(g);
    free(cnorm);
}

double km_inertia(const float *x, int64_t n, int d, const float *c, const int32_t *assign) {
    double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total) if(n * d >= KM_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * d, *ci = c + (int64_t)assign[i] * d;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int t = 0; t < d; t++) {
            double df = (double)xi[t] - (double)ci[t];
            s += df * df;
        }
        total += s;
    }
    return total;
}

/* ---------------------------------------------------------------- k-means++ seeding */


/* Index i with cum[i-1] <= u < cum[i] (cum inclusive prefix sums, non-decreasing). */
static int64_t search_cum(const double *cum, int64_t n, double u) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* Seeding steps with less work than this (multiply-adds) run on one thread: seeding is k short
 * steps, each with its own synchronisation, which costs more than it saves on small samples. */
#define KM_SEED_PAR_MIN ((int64_t)1 << 22)

/* Greedy k-means++ (Arthur & Vassilvitskii 2007; the greedy variant with `trials` D^2-sampled
 * candidates per step keeps the one that lowers the potential most, as scikit-learn does). */
void km_seed_pp(const float *x, int64_t n, int d, int k, int trials, uint64_t seed, float *c) {
    sd_rng rng;
    sd_rng_seed(&rng, seed);
    if (trials <= 0) trials = 2 + (int)log((double)k);
    if (trials > 64) trials = 64;
    float *mind = sd_malloc(sizeof(float) * (size_t)n);             /* (n) min sq dist to chosen */
    float *cand_d = sd_malloc(sizeof(float) * (size_t)(n * trials)); /* (n, trials) */
    double *cum = sd_malloc(sizeof(double) * (size_t)n);
    int64_t *cand = sd_malloc(sizeof(int64_t) * (size_t)trials);
    int64_t first = (int64_t)(sd_rng_uniform(&rng) * (double)n);
    if (first >= n) first = n - 1;
    memcpy(c, x + first * d, sizeof(float) * (size_t)d);
#pragma omp parallel for schedule(static) if(n * d >= KM_SEED_PAR_MIN)
    for (int64_t i = 0; i < n; i++) mind[i] = sqdist(x + i * d, c, d);
    for (int j = 1; j < k; j++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) cum[i] = (s += mind[i]);
        for (int t = 0; t < trials; t++) {
            /* all points coincide with chosen centroids: any point will do */
            cand[t] = s > 0 ? search_cum(cum, n, sd_rng_uniform(&rng) * s) : (int64_t)sd_rng_below(&rng, (uint32_t)(n < UINT32_MAX ? n : UINT32_MAX));
        }
        double pot[64] = {0};
        int nt = trials;
#pragma omp parallel if(n * d * trials >= KM_SEED_PAR_MIN)
        {
            double lp[64] = {0};
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n; i++) {
                for (int t = 0; t < nt; t++) {
                    float dd = sqdist(x + i * d, x + cand[t] * d, d);
                    cand_d[i * nt + t] = dd;
                    lp[t] += dd < mind[i] ? dd : mind[i];
                }
            }
#pragma omp critical
            for (int t = 0; t < nt; t++) pot[t] += lp[t];
        }
        int bt = 0;
        for (int t = 1; t < nt; t++)
            if (pot[t] < pot[bt]) bt = t;
        memcpy(c + (int64_t)j * d, x + cand[bt] * d, sizeof(float) * (size_t)d);
#pragma omp parallel for schedule(static) if(n * trials >= KM_SEED_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float dd = cand_d[i * nt + bt];
            if (dd < mind[i]) mind[i] = dd;
        }
    }
    free(cand), free(cum), free(cand_d), free(mind);
}

/* ---------------------------------------------------------------- Lloyd iterations */

/* k-means++ seeds from at most this many points per cluster (a uniform sample), with
 * KM_SEED_TRIALS candidates per step unless the caller asks for more: full greedy k-means++ on
 * every point costs O(n k d trials), several Lloyd iterations' worth. Measured with
 * bench/kmeans.sh (k = 100, 25 iterations, 1 thread): 32 points and 3 trials cut the seeding time
 * ~4x against 64 and 2 + ln k, and still end 4% (100k generated points) and 1.4% (MovieLens
 * embeddings) below FAISS's inertia with its random seeding. */
#define KM_SEED_SAMPLE_PER_K 32
#define KM_SEED_TRIALS 3

/* Refills empty clusters (see the file comment). counts (k) is updated; dist is consumed (taken
 * points get -1). Returns the number of clusters refilled. */
static int repair_empty(int64_t n, int k, int32_t *assign, float *dist, int64_t *counts) {
    int repaired = 0;
    for (int j = 0; j < k; j++) {
        if (counts[j] > 0) continue;
        int64_t far = -1;
        for (int64_t i = 0; i < n; i++)
            if (counts[assign[i]] > 1 && dist[i] >= 0 && (far < 0 || dist[i] > dist[far])) far = i;
        if (far < 0) continue; /* cannot happen when k <= n */
        counts[assign[far]]--;
        assign[far] = j;
        counts[j] = 1;
        dist[far] = -1;
        repaired++;
    }
    return repaired;
}

/* Centroids = means of their points (every cluster non-empty after repair). */
static void update_centroids(const float *x, int64_t n, int d, int k, const int32_t *assign, const int64_t *counts, float *c) {
    int nth = sd_num_threads();
    double *acc = sd_calloc((size_t)nth * (size_t)k * (size_t)d, sizeof(double)); /* (threads, k, d) */
#pragma omp parallel if(n * d >= KM_PAR_MIN)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        double *a = acc + (size_t)tid * (size_t)k * (size_t)d;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double *ac = a + (int64_t)assign[i] * d;
            const float *xi = x + i * d;
            for (int t = 0; t < d; t++) ac[t] += xi[t];
        }
    }
    for (int j = 0; j < k; j++) {
        if (counts[j] == 0) continue; /* keep the old centroid */
        for (int t = 0; t < d; t++) {
            double s = 0;
            for (int th = 0; th < nth; th++) s += acc[((size_t)th * k + j) * d + t];
            c[(int64_t)j * d + t] = (float)(s / (double)counts[j]);
        }
    }
    free(acc);
}

int km_fit(const float *x, int64_t n, int d, const km_config *cfg, km_result *out, sd_err *err) {
    memset(out, 0, sizeof *out);
    int k = cfg->k;
    if (d < 1) return sd_fail(err, SD_ERR_USAGE, "k-means: dimension %d < 1", d);
    if (k < 1 || (int64_t)k > n) return sd_fail(err, SD_ERR_USAGE, "k-means: k = %d must be in 1..%lld (the number of points)", k, (long long)n);
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(x[i])) return sd_fail(err, SD_ERR_USAGE, "k-means: point %lld has a non-finite coordinate", (long long)(i / d));
    int max_iter = cfg->max_iter > 0 ? cfg->max_iter : 1;
    out->k = k;
    out->d = d;
    out->centroids = sd_malloc(sizeof(float) * (size_t)k * (size_t)d);
    out->assign = sd_malloc(sizeof(int32_t) * (size_t)n);
    out->trace = sd_malloc(sizeof(double) * (size_t)(max_iter + 1));
    float *dist = sd_malloc(sizeof(float) * (size_t)n);
    int64_t *counts = sd_malloc(sizeof(int64_t) * (size_t)k);
    if (n > (int64_t)KM_SEED_SAMPLE_PER_K * k) {
        /* seed on a uniform sample (partial Fisher-Yates over indices, deterministic for the seed) */
        int64_t ns = (int64_t)KM_SEED_SAMPLE_PER_K * k;
        int64_t *idx = sd_malloc(sizeof(int64_t) * (size_t)n);
        for (int64_t i = 0; i < n; i++) idx[i] = i;
        sd_rng rng;
        sd_rng_seed(&rng, cfg->seed ^ 0x5eedULL);
        float *xs = sd_malloc(sizeof(float) * (size_t)(ns * d));
        for (int64_t i = 0; i < ns; i++) {
            int64_t j = i + (int64_t)(sd_rng_uniform(&rng) * (double)(n - i));
            if (j >= n) j = n - 1;
            int64_t tmp = idx[i];
            idx[i] = idx[j], idx[j] = tmp;
            memcpy(xs + i * d, x + idx[i] * d, sizeof(float) * (size_t)d);
        }
        km_seed_pp(xs, ns, d, k, cfg->pp_trials > 0 ? cfg->pp_trials : KM_SEED_TRIALS, cfg->seed, out->centroids);
        free(xs);
        free(idx);
    } else {
        km_seed_pp(x, n, d, k, cfg->pp_trials > 0 ? cfg->pp_trials : KM_SEED_TRIALS, cfg->seed, out->centroids);
    }
    for (int it = 0; it <= max_iter; it++) {
        km_assign_blas(x, n, d, out->centroids, k, out->assign, dist);
        double in = 0;
        for (int64_t i = 0; i < n; i++) in += dist[i];
        out->trace[out->n_iter++] = in;
        memset(counts, 0, sizeof(int64_t) * (size_t)k);
        for (int64_t i = 0; i < n; i++) counts[out->assign[i]]++;
        int empty = 0;
        for (int j = 0; j < k; j++) empty += counts[j] == 0;
        int converged = it > 0 && cfg->tol > 0 && out->trace[it - 1] - in <= cfg->tol * out->trace[it - 1];
        int last = it == max_iter || converged;
        if (last && !empty) break;
        out->n_repaired += repair_empty(n, k, out->assign, dist, counts);
        update_centroids(x, n, d, k, out->assign, counts, out->centroids);
        if (last) break;
        sd_debug("k-means: iteration %d inertia %.6g", it, in);
    }
    out->inertia = km_inertia(x, n, d, out->centroids, out->assign);
    free(counts);
    free(dist);
    return SD_OK;
}

void km_result_free(km_result *r) {
    free(r->centroids);
    free(r->assign);
    free(r->trace);
    memset(r, 0, sizeof *r);
}
