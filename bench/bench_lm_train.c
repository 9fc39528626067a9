/* bench_lm_train.c - training throughput of the lm_train path against the machine's sgemm.
 *
 * Run: make BUILD=build build/bench/bench_lm_train && build/bench/bench_lm_train [threads] [steps]
 *
 * Trains the default demo-sized model (dim 128, 4 layers, 4 heads, 2 kv heads, hidden 384,
 * vocab 2000, tied, T 128, batch 8) on random tokens and reports achieved GFLOP/s as
 * 6 x params x tokens/s (the usual dense-transformer training estimate: 2 forward + 4 backward
 * flops per parameter per token, attention excluded), next to OpenBLAS sgemm GFLOP/s measured in
 * the same run with the same thread count on (a) a 1024^3 product and (b) the model's own
 * projection shape (B*T x 128 x 384), interleaved round by round with the training steps.
 * Goal: ratio to (a) >= 0.5. Medians over rounds; peak RSS from getrusage. */
#include "serendip/lm_train.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One sample of sgemm GFLOP/s for C (M, N) = A (M, K) B^T over ~0.2 s; buffers from the caller. */
static double sgemm_sample(int M, int N, int K, const float *a, const float *b, float *c) {
    double t0 = sd_now();
    int inner = 0;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
        inner++;
    } while (sd_now() - t0 < 0.2);
    return 2.0 * M * N * K * inner / (sd_now() - t0) / 1e9;
}

static float *filled(size_t n) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(i % 7) * 0.1f;
    return x;
}

static void cpu_model(char *out, size_t n) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(out, n, "unknown");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *p = strchr(line, ':');
            if (p) snprintf(out, n, "%s", p + 2);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    fclose(f);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : sd_num_threads();
    int steps = argc > 2 ? atoi(argv[2]) : 9;
    lm_config c = {.dim = 128, .n_layers = 4, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 384, .vocab_size = 2000,
                   .seq_len = 128, .tied = 1, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    lm_model m;
    sd_err err = {0};
    if (lm_model_init(&m, &c, 1, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = 8;
    o.seq_len = 128;
    o.steps = steps + 2;
    o.threads = threads;
    lm_trainer *t;
    if (lm_trainer_new(&t, &m, &o, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    size_t ntok = (size_t)o.batch * (o.seq_len + 1);
    int32_t *tok = malloc(ntok * sizeof(int32_t));
    uint8_t *mask = malloc((size_t)o.batch * o.seq_len);
    memset(mask, 1, (size_t)o.batch * o.seq_len);
    sd_rng r;
    sd_rng_seed(&r, 1);
    for (size_t i = 0; i < ntok; i++) tok[i] = (int32_t)sd_rng_below(&r, c.vocab_size);
    /* rounds interleave training steps with the two sgemm references, so that load from other
     * processes on a shared machine hits all three alike; medians over rounds */
    enum { ROUNDS = 64 };
    double v[ROUNDS], vp[ROUNDS], vs[ROUNDS];
    float loss;
    int NT = o.batch * o.seq_len;
    float *A = filled(1024 * 1024), *Bm = filled(1024 * 1024), *C = filled(1024 * 1024);
    for (int s = 0; s < 2; s++) lm_trainer_step(t, tok, mask, &loss, &err); /* warm-up */
    if (steps > ROUNDS) steps = ROUNDS;
    for (int s = 0; s < steps; s++) {
        double t0 = sd_now();
        lm_trainer_step(t, tok, mask, &loss, &err);
        v[s] = (double)NT / (sd_now() - t0);
        /* the trainer runs OpenBLAS single-threaded inside its OpenMP shards; the reference
         * sgemm gets OpenBLAS's own threading with the same thread count */
        openblas_set_num_threads(threads);
        vp[s] = sgemm_sample(1024, 1024, 1024, A, Bm, C);
        vs[s] = sgemm_sample(NT, 384, 128, A, Bm, C);
    }
    free(A), free(Bm), free(C);
    double tps = median(v, steps);
    double train_gf = 6.0 * (double)m.n_params * tps / 1e9;
    double peak = median(vp, steps);
    double shape = median(vs, steps);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    double load[3] = {0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(lf);
    }
    printf("cpu: %s (%ld online), load average %.2f\nthreads: %d (OpenMP %d, OpenBLAS for the sgemm reference %d)\n",
           cpu, sysconf(_SC_NPROCESSORS_ONLN), load[0], threads,
#ifdef _OPENMP
           omp_get_max_threads(),
#else
           1,
#endif
           openblas_get_num_threads());
    printf("model: dim %d layers %d heads %d/%d hidden %d vocab %d T %d batch %d, %.2f M params\n", c.dim, c.n_layers,
           c.n_heads, c.n_kv_heads, c.hidden_dim, c.vocab_size, o.seq_len, o.batch, m.n_params / 1e6);
    printf("%-44s %12s\n", "measure (median)", "value");
    printf("%-44s %12.0f\n", "training tokens/s", tps);
    printf("%-44s %12.2f\n", "training GFLOP/s (6 x params x tokens/s)", train_gf);
    printf("%-44s %12.2f\n", "sgemm GFLOP/s 1024x1024x1024", peak);
    printf("%-44s %12.2f\n", "sgemm GFLOP/s 1024x384x128 (model shape)", shape);
    printf("%-44s %12.2f\n", "ratio training / sgemm 1024^3 (goal >= 0.5)", train_gf / peak);
    printf("%-44s %12.2f\n", "ratio training / sgemm model shape", train_gf / shape);
    printf("%-44s %12.1f\n", "peak RSS MiB", ru.ru_maxrss / 1024.0);
    free(tok), free(mask);
    lm_trainer_free(t);
    lm_model_free(&m);
    return 0;
}
