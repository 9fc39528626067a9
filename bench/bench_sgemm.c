/* bench_sgemm.c - the machine's matrix-product rate, the yardstick of bench/plan.sh.
 *
 * Run: make BUILD=build build/bench/bench_sgemm && build/bench/bench_sgemm [N] [REPS] [THREADS]
 *      (default 1024, 5 repetitions, sd_num_threads() threads, i.e. OMP_NUM_THREADS or the cores)
 *
 * Times OpenBLAS cblas_sgemm C (N, N) = A (N, N) . B (N, N) on THREADS threads, REPS times after
 * one warm-up, and prints the best and the median rate in GFLOP/s (2 N^3 FLOPs per product) as
 * "key value" lines. The best is the machine's limit on that many cores; on a shared machine the
 * median says how much of it the run had; sgemm_cpu_gflops is the rate per CPU-second (FLOPs over
 * the CPU time of all threads), the yardstick when the machine is shared. Exits non-zero on a bad argument or a wrong product
 * (one entry of C is checked against a double-precision dot product). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "serendip/base.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int N = argc > 1 ? atoi(argv[1]) : 1024, reps = argc > 2 ? atoi(argv[2]) : 5;
    int threads = argc > 3 ? atoi(argv[3]) : sd_num_threads();
    if (N < 16 || reps < 1 || reps > 1000 || threads < 1) {
        fprintf(stderr, "usage: bench_sgemm [N >= 16] [REPS 1..1000] [THREADS >= 1]\n");
        return 2;
    }
    openblas_set_num_threads(threads);
    size_t nn = (size_t)N * N;
    float *A = sd_malloc(nn * sizeof *A), *B = sd_malloc(nn * sizeof *B), *C = sd_malloc(nn * sizeof *C);
    sd_rng rng;
    sd_rng_seed(&rng, 7);
    for (size_t i = 0; i < nn; i++) A[i] = (float)sd_rng_uniform(&rng) - 0.5f, B[i] = (float)sd_rng_uniform(&rng) - 0.5f;
    double *t = sd_malloc((size_t)reps * sizeof *t);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, A, N, B, N, 0.0f, C, N); /* warm-up */
    double c0 = cpu_now();
    for (int r = 0; r < reps; r++) {
        double t0 = sd_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, A, N, B, N, 0.0f, C, N);
        t[r] = sd_now() - t0;
    }
    double cpu = cpu_now() - c0; /* CPU seconds of all threads over the reps */
    /* one entry against a double dot product: relative error of a float sum of N terms */
    double ref = 0;
    int i = N / 3, j = N / 2;
    for (int k = 0; k < N; k++) ref += (double)A[(size_t)i * N + k] * B[(size_t)k * N + j];
    int ok = fabs(C[(size_t)i * N + j] - ref) <= 1e-4 * N * 0.25 + 1e-3;
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    double flop = 2.0 * N * N * (double)N;
    printf("sgemm_n %d\nsgemm_threads %d\nsgemm_best_gflops %.1f\nsgemm_median_gflops %.1f\nsgemm_cpu_gflops %.1f\n", N, threads,
           flop / t[0] / 1e9, flop / t[reps / 2] / 1e9, flop * reps / cpu / 1e9);
    if (!ok) fprintf(stderr, "bench_sgemm: C[%d][%d] = %g, expected %g\n", i, j, C[(size_t)i * N + j], ref);
    free(A), free(B), free(C), free(t);
    return ok ? 0 : 1;
}
