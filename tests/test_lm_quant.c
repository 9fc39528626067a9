/* test_lm_quant.c - quantized weights (lm_quant.h), the quantized base in inference and LoRA
 * training, and the qwen2 architecture.
 *
 * Kernels: every fast decoder equals the element-by-element reference on random blocks bit for
 * bit (both compute the same float products in the same order); every fast matrix product (BLAS over decoded
 * tiles, inside and outside an OpenMP region) is within 1e-5 (1 + |ref|) of the double-accumulated
 * reference within 3e-5 of the sum of |products| of each output (the worst-case error of a
 * float32 sum of 512 terms, 512 * 2^-24; random scales make some weights O(100), so a bound
 * relative to |ref| alone would not hold). Encoders: a round
 * trip stays within half a quantization step of each format (stated per format below).
 * Models: a model saved in each format and loaded quantized (lm_gguf_load_quant) gives the same
 * next-token log-probabilities as the same file decoded to F32 (lm_gguf_load) - the same numbers,
 * only the order of float operations differs (1e-4); and the log-probabilities stay correlated
 * with the unquantized model's (>= 0.9 for 4- and 5-bit formats, >= 0.99 above: a wrong layout
 * gives ~0; 2-layer random models amplify weight noise, so 5 bits sit near 4 here). QLoRA: adapter gradients over a quantized
 * base against finite differences (tolerances of test_lm_train.c), the base bytes untouched by
 * training, and a few steps lowering the loss. qwen2: biases change the output, the q/k row
 * order survives a save/load round trip, full-model gradients (biases included) against finite
 * differences. llama.cpp agreement is checked by scripts/conformance-llamacpp.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "serendip/gguf.h"
#include "serendip/lm_infer.h"
#include "serendip/lm_quant.h"
#include "serendip/lm_train.h"

static const uint32_t TYPES[] = {LM_Q_F16, LM_Q_Q8_0, LM_Q_Q4_0, LM_Q_Q5_0, LM_Q_Q5_1, LM_Q_Q4_K, LM_Q_Q5_K, LM_Q_Q6_K};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

/* Random valid encoded bytes: random payload, every f16 scale field set to a finite value in
 * [-0.1, 0.1] (random bits would give inf/NaN scales). n elements. */
static void random_encoded(uint32_t type, uint8_t *b, int64_t n, sd_rng *r) {
    size_t bytes = lm_qrow_bytes(type, n), bb = lm_qtype_block_bytes(type);
    for (size_t i = 0; i < bytes; i++) b[i] = (uint8_t)sd_rng_below(r, 256);
    for (size_t k = 0; k < bytes / bb; k++) {
        uint8_t *blk = b + k * bb;
        uint16_t h[2] = {lm_fp32_to_fp16((float)(sd_rng_uniform(r) * 0.2 - 0.1)),
                         lm_fp32_to_fp16((float)(sd_rng_uniform(r) * 0.1))};
        switch (type) {
        case LM_Q_F16: memcpy(blk, h, 2); break;
        case LM_Q_Q8_0: case LM_Q_Q4_0: case LM_Q_Q5_0: memcpy(blk, h, 2); break;
        case LM_Q_Q5_1: memcpy(blk, h, 4); break;
        case LM_Q_Q4_K: case LM_Q_Q5_K: memcpy(blk, h, 4); break;
        case LM_Q_Q6_K: memcpy(blk + 208, h, 2); break;
        }
    }
}

static void test_decoders_fast_vs_ref(void **state) {
    (void)state;
    sd_rng r;
    sd_rng_seed(&r, 1);
    int64_t n = 1024;
    uint8_t *b = malloc(lm_qrow_bytes(LM_Q_F32, n));
    float *a = malloc(n * sizeof(float)), *c = malloc(n * sizeof(float));
    for (size_t k = 0; k < N_TYPES; k++) {
        random_encoded(TYPES[k], b, n, &r);
        lm_dequant_ref(TYPES[k], b, a, n);
        lm_dequant_row(TYPES[k], b, c, n);
        double worst = 0, amax = 0;
        for (int64_t i = 0; i < n; i++) {
            assert_true(isfinite(a[i]));
            worst = fmax(worst, fabs((double)a[i] - c[i]) / (1e-30 + fabs((double)a[i])));
            amax = fmax(amax, fabs(a[i]));
        }
        print_message("%s: fast decoder vs reference, worst relative difference %.2g\n", lm_qtype_name(TYPES[k]), worst);
        /* the same float operations in the same order: equal bit for bit (signs of zeros too, which
         * the conformance check against ggml compares) */
        assert_memory_equal(a, c, n * sizeof(float));
        assert_true(amax > 0); /* not vacuous */
    }
    free(b), free(a), free(c);
}

/* Round trip of a smooth-ish random row: |x - decode(encode(x))| within the format's step.
 * Q8_0: step d = max|x|/127, error <= d/2 + 127 |d - f16(d)| <= (0.5 + 127 * 2^-11) d.
 * Q4_0: step d = max|x|/8 signed so the extreme maps to q = -8 exactly; the other side is
 * clamped at q = +7, so error <= (1 + 8 * 2^-11) d (ggml's design).
 * Q5_0: as Q4_0 with 32 levels: error <= (1 + 16 * 2^-11) max|x|/16.
 * Q5_1: step d = (max - min)/31 from m = min: error <= 0.5 d + f16 rounding of d (31 d 2^-11) and
 * of m (|min| 2^-11).
 * Q4_K / Q5_K: per sub-block step (range/15 or /31), with 6-bit scales and mins quantized
 * against the block's largest: error <= 1.5 steps of the block's largest sub-block.
 * Q6_K: per 16 elements step max|x|/31 with 8-bit scales: error <= 1 step of the largest. */
static void test_encoders_round_trip(void **state) {
    (void)state;
    sd_rng r;
    sd_rng_seed(&r, 2);
    int64_t n = 512;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    uint8_t *b = malloc(lm_qrow_bytes(LM_Q_F32, n));
    for (int i = 0; i < n; i++) x[i] = (float)(sd_rng_normal(&r) * 0.05 + (i % 64 < 32 ? 0.02 : -0.01));
    for (size_t k = 0; k < N_TYPES; k++) {
        uint32_t t = TYPES[k];
        lm_quantize_row(t, x, b, n);
        lm_dequant_ref(t, b, y, n);
        int blk = lm_qtype_block(t) == 1 ? 32 : lm_qtype_block(t);
        double worst = 0;
        for (int64_t s = 0; s < n; s += blk) {
            double amax = 0, lo = 0, hi = 0;
            for (int i = 0; i < blk; i++) {
                amax = fmax(amax, fabs(x[s + i]));
                lo = fmin(lo, x[s + i]), hi = fmax(hi, x[s + i]);
            }
            double bound = t == LM_Q_F16    ? amax * 1e-3
                           : t == LM_Q_Q8_0 ? (0.5 + 127.0 / 2048) * amax / 127
                           : t == LM_Q_Q4_0 ? (1 + 8.0 / 2048) * amax / 8
                           : t == LM_Q_Q5_0 ? (1 + 16.0 / 2048) * amax / 16
                           : t == LM_Q_Q5_1 ? (0.5 + 31.0 / 2048) * (hi - lo) / 31 + fabs(lo) / 2048
                           : t == LM_Q_Q4_K ? 1.5 * (hi - lo) / 15
                           : t == LM_Q_Q5_K ? 1.5 * (hi - lo) / 31
                                            : amax / 31;
            for (int i = 0; i < blk; i++) worst = fmax(worst, fabs((double)x[s + i] - y[s + i]) / bound);
        }
        print_message("%s: round trip worst error / bound %.3f\n", lm_qtype_name(t), worst);
        assert_true(worst <= 1.0);
    }
    /* values on the Q4_0 grid (d * (q - 8), d a power of two, the extreme -8 d present) are exact */
    for (int i = 0; i < 32; i++) x[i] = 0.125f * (float)((i * 7) % 16 - 8);
    x[3] = -1.0f;
    lm_quantize_row(LM_Q_Q4_0, x, b, 32);
    lm_dequant_ref(LM_Q_Q4_0, b, y, 32);
    assert_memory_equal(x, y, 32 * sizeof(float));
    free(x), free(y), free(b);
}

static void check_matmuls(uint32_t type, int R, int C, int N, sd_rng *r) {
    size_t rb = lm_qrow_bytes(type, C);
    uint8_t *w = malloc(rb * R);
    if (type == LM_Q_F32)
        for (int i = 0; i < R * C; i++) ((float *)w)[i] = (float)sd_rng_normal(r);
    else random_encoded(type, w, (int64_t)R * C, r);
    lm_qmat W = {.type = type, .rows = R, .cols = C, .row_bytes = rb, .data = w};
    float *x = malloc(sizeof(float) * N * C), *o1 = malloc(sizeof(float) * N * R), *o2 = malloc(sizeof(float) * N * R);
    float *d1 = malloc(sizeof(float) * N * C), *d2 = malloc(sizeof(float) * N * C), *g = malloc(sizeof(float) * N * R);
    float *wd = malloc(sizeof(float) * R * C);
    double *so = calloc((size_t)N * R, sizeof(double)), *sd = calloc((size_t)N * C, sizeof(double));
    for (int i = 0; i < N * C; i++) x[i] = (float)sd_rng_normal(r);
    for (int i = 0; i < N * R; i++) g[i] = (float)sd_rng_normal(r);
    for (int k = 0; k < R; k++) lm_dequant_ref(type, w + k * rb, wd + (size_t)k * C, C);
    for (int n = 0; n < N; n++) /* sums of |products|: the scale of each output's rounding error */
        for (int k = 0; k < R; k++)
            for (int i = 0; i < C; i++) {
                so[n * R + k] += fabs((double)x[n * C + i] * wd[(size_t)k * C + i]);
                sd[n * C + i] += fabs((double)g[n * R + k] * wd[(size_t)k * C + i]);
            }
    double worst = 0;
    for (int beta = 0; beta <= 1; beta++) {
        for (int i = 0; i < N * R; i++) o1[i] = o2[i] = (float)i / (N * R);
        lm_qmatmul(o1, x, &W, N, (float)beta);
        lm_qmatmul_ref(o2, x, &W, N, (float)beta);
        for (int i = 0; i < N * R; i++) worst = fmax(worst, fabs((double)o1[i] - o2[i]) / (3e-5 * (1 + so[i])));
        /* inside an OpenMP region (inference's path): each thread its own copy */
        float *o3 = malloc(sizeof(float) * 2 * N * R);
#pragma omp parallel num_threads(2)
        {
#ifdef _OPENMP
            int tid = omp_get_thread_num();
#else
            int tid = 0;
#endif
            float *o = o3 + (size_t)tid * N * R;
            for (int i = 0; i < N * R; i++) o[i] = (float)i / (N * R);
            lm_qmatmul(o, x, &W, N, (float)beta);
        }
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < N * R; i++)
                worst = fmax(worst, fabs((double)o3[(size_t)t * N * R + i] - o2[i]) / (3e-5 * (1 + so[i])));
        free(o3);
    }
    for (int i = 0; i < N * C; i++) d1[i] = d2[i] = 0.5f;
    lm_qmatmul_dx(d1, g, &W, N);
    lm_qmatmul_dx_ref(d2, g, &W, N);
    for (int i = 0; i < N * C; i++) worst = fmax(worst, fabs((double)d1[i] - d2[i]) / (3e-5 * (1 + sd[i])));
    print_message("%s (%d x %d, N %d): fast products vs reference, worst error / bound %.3f\n", lm_qtype_name(type), R, C,
                  N, worst);
    assert_true(worst <= 1);
    free(w), free(x), free(o1), free(o2), free(d1), free(d2), free(g), free(wd), free(so), free(sd);
}

static void test_matmuls_fast_vs_ref(void **state) {
    (void)state;
    sd_rng r;
    sd_rng_seed(&r, 3);
    for (size_t k = 0; k < N_TYPES; k++) {
        check_matmuls(TYPES[k], 70, 512, 1, &r);
        check_matmuls(TYPES[k], 70, 512, 5, &r);
    }
    check_matmuls(LM_Q_F32, 33, 64, 3, &r);
}

/* ---------------------------------------------------------------- models */

static char *tmp_path(const char *tag) {
    char *p = sd_asprintf("/tmp/test_lm_quant_%d_%s.gguf", (int)getpid(), tag);
    return p;
}

/* A random model with weights N(0, 0.1) (finite-difference tests, as test_lm_train.c), or, for
 * the wider models, N(0, 0.8 / sqrt(dim)): logits far from uniform, each matrix a gain of ~0.8,
 * so that weight rounding is not amplified layer after layer. */
static void random_model(lm_model *m, const lm_config *c, uint64_t seed) {
    double std = c->dim >= 64 ? 0.8 / sqrt((double)c->dim) : 0.1;
    sd_err err = {0};
    assert_int_equal(lm_model_init(m, c, seed, &err), SD_OK);
    sd_rng r;
    sd_rng_seed(&r, seed + 1);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = (float)(sd_rng_normal(&r) * std);
    size_t D = c->dim, L = c->n_layers;
    for (size_t i = 0; i < L * D; i++) m->w.attn_norm[i] += 1, m->w.ffn_norm[i] += 1;
    for (size_t i = 0; i < D; i++) m->w.out_norm[i] += 1;
}

static lm_config k_cfg(int arch, int tied) {
    /* rows of 256: the K formats' super-block */
    lm_config c = {.dim = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 512, .vocab_size = 61,
                   .seq_len = 32, .tied = tied, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .arch = arch};
    return c;
}

static void next_logprobs(const lm_model *m, const int32_t *tok, int n, float *out) {
    sd_err err = {0};
    lm_infer *inf = lm_infer_new(m, 8, 32, &err);
    assert_non_null(inf);
    const int32_t *p[1] = {tok};
    assert_int_equal(lm_next_logprobs(inf, p, &n, 1, out, &err), SD_OK);
    lm_infer_free(inf);
}

/* Quantized in memory == decoded to F32, for every format and both architectures. */
static void test_quantized_model_inference(void **state) {
    (void)state;
    int32_t tok[9] = {1, 5, 9, 3, 60, 2, 2, 7, 11};
    for (int arch = 0; arch <= 1; arch++)
        for (size_t k = 0; k < N_TYPES; k++) {
            lm_config c = k_cfg(arch, (int)(k % 2));
            lm_model m, q, f;
            random_model(&m, &c, 11 + k);
            char *path = tmp_path("model");
            sd_err err = {0};
            assert_int_equal(lm_gguf_save_as(path, &m, NULL, "q", TYPES[k], &err), SD_OK);
            assert_int_equal(lm_gguf_load_quant(path, &q, NULL, &err), SD_OK);
            assert_int_equal(lm_gguf_load(path, &f, NULL, &err), SD_OK);
            assert_non_null(q.qm);
            assert_null(f.qm);
            assert_int_equal(q.cfg.arch, arch);
            assert_true(q.n_params < f.n_params / 20); /* the float block holds only norms and biases */
            assert_true(q.qm[0].type == TYPES[k]);
            float a[61], b[61], ref[9 * 61], orig[61];
            next_logprobs(&q, tok, 9, a);
            next_logprobs(&f, tok, 9, b);
            next_logprobs(&m, tok, 9, orig);
            lm_forward_reference(&q, tok, 9, ref);
            double d = 0, dq = 0, spread = 0, sa = 0, so = 0, saa = 0, soo = 0, sao = 0;
            float mx = -INFINITY;
            for (int v = 0; v < 61; v++) mx = fmaxf(mx, ref[8 * 61 + v]);
            double s = 0;
            for (int v = 0; v < 61; v++) s += exp(ref[8 * 61 + v] - mx);
            for (int v = 0; v < 61; v++) {
                d = fmax(d, fabs(a[v] - b[v]));
                d = fmax(d, fabs(a[v] - (ref[8 * 61 + v] - mx - log(s))));
                dq = fmax(dq, fabs(a[v] - orig[v]));
                spread = fmax(spread, fabs(orig[v] - orig[0]));
                sa += a[v], so += orig[v], saa += (double)a[v] * a[v], soo += (double)orig[v] * orig[v];
                sao += (double)a[v] * orig[v];
            }
            double corr = (sao - sa * so / 61) / sqrt((saa - sa * sa / 61) * (soo - so * so / 61));
            print_message("%s %s: quantized vs decoded %.2g; vs the unquantized model: max %.3f (spread %.2f), "
                          "correlation %.4f\n", arch ? "qwen2" : "llama", lm_qtype_name(TYPES[k]), d, dq, spread, corr);
            assert_true(d < 1e-4);
            int four_bit = TYPES[k] == LM_Q_Q4_0 || TYPES[k] == LM_Q_Q4_K || TYPES[k] == LM_Q_Q5_K ||
                           TYPES[k] == LM_Q_Q5_0 || TYPES[k] == LM_Q_Q5_1;
            assert_true(corr >= (four_bit ? 0.9 : 0.99));
            unlink(path);
            free(path);
            lm_model_free(&m), lm_model_free(&q), lm_model_free(&f);
        }
}

/* The q/k row permutation of qwen2 files round-trips; biases matter. */
static void test_qwen2_round_trip_and_biases(void **state) {
    (void)state;
    lm_config c = k_cfg(LM_ARCH_QWEN2, 0);
    c.dim = 64, c.hidden_dim = 96;
    lm_model m, f;
    random_model(&m, &c, 5);
    char *path = tmp_path("qwen2");
    sd_err err = {0};
    assert_int_equal(lm_gguf_save(path, &m, NULL, "qwen", &err), SD_OK);
    gguf_file *g;
    assert_int_equal(gguf_open(&g, path, &err), SD_OK);
    char *arch;
    assert_int_equal(gguf_get_str(g, "general.architecture", &arch, &err), SD_OK);
    assert_string_equal(arch, "qwen2");
    free(arch);
    /* file row i + hd/2 of head 0 of attn_q.bias is serendip's row 1 */
    const gguf_tensor *bq = gguf_find_tensor(g, "blk.0.attn_q.bias");
    assert_non_null(bq);
    float v;
    memcpy(&v, (const float *)bq->data + 16 / 2, 4); /* hd = 16 */
    assert_float_equal(v, m.w.bq[1], 0);
    gguf_close(g);
    assert_int_equal(lm_gguf_load(path, &f, NULL, &err), SD_OK);
    assert_int_equal(f.n_params, m.n_params);
    assert_memory_equal(f.params, m.params, m.n_params * sizeof(float));
    int32_t tok[5] = {3, 1, 4, 1, 5};
    float a[61], b[61];
    next_logprobs(&m, tok, 5, a);
    for (size_t i = 0; i < (size_t)c.n_layers * (c.dim + 2 * lm_kv_dim(&c)); i++) f.w.bq[i] = 0;
    next_logprobs(&f, tok, 5, b);
    double d = 0;
    for (int i = 0; i < 61; i++) d = fmax(d, fabs(a[i] - b[i]));
    assert_true(d > 1e-2); /* the biases are used */
    unlink(path);
    free(path);
    lm_model_free(&m), lm_model_free(&f);
}

/* A file with RoPE frequency scaling (Llama 3.1's rope_freqs tensor, or a scaling type) is refused
 * by name instead of run with wrong positions. */
static void test_rope_scaling_refused(void **state) {
    (void)state;
    lm_config c = k_cfg(LM_ARCH_LLAMA, 1);
    c.dim = 64, c.hidden_dim = 96;
    lm_model m, f;
    random_model(&m, &c, 5);
    char *path = tmp_path("ropefreqs");
    sd_err err = {0};
    for (int k = 0; k < 2; k++) {
        gguf_writer *w = gguf_writer_new();
        assert_int_equal(lm_gguf_build(w, &m, NULL, "r", LM_Q_F32, &err), SD_OK);
        float freqs[8] = {1, 1, 1, 1, 2, 4, 8, 8};
        int64_t ne[1] = {8};
        if (k == 0) assert_int_equal(gguf_add_tensor(w, "rope_freqs.weight", LM_Q_F32, 1, ne, freqs, &err), SD_OK);
        else gguf_set_str(w, "llama.rope.scaling.type", "yarn");
        assert_int_equal(gguf_writer_write(w, path, &err), SD_OK);
        gguf_writer_free(w);
        assert_int_equal(lm_gguf_load(path, &f, NULL, &err), SD_ERR_FORMAT);
        assert_non_null(strstr(err.msg, k == 0 ? "rope_freqs" : "rope.scaling.type"));
    }
    unlink(path);
    free(path);
    lm_model_free(&m);
}

/* ---------------------------------------------------------------- training */

#define FD_H 3e-3f
#define FD_ATOL 1e-3
#define FD_RTOL 3e-2

/* As test_lm_train.c: every trainable element against central differences of the mean loss. */
static void fd_whole(lm_trainer *t, const int32_t *tok, const uint8_t *mask, const char *what) {
    float loss;
    lm_trainer_grad(t, tok, mask, 1, &loss);
    float *g = malloc(t->n_train * sizeof(float));
    memcpy(g, t->grads, t->n_train * sizeof(float));
    double w = 0, gmax = 0;
    for (size_t i = 0; i < t->n_train; i++) {
        float x0 = t->train[i], lp, lm;
        t->train[i] = x0 + FD_H;
        lm_trainer_forward(t, tok, mask, &lp);
        t->train[i] = x0 - FD_H;
        lm_trainer_forward(t, tok, mask, &lm);
        t->train[i] = x0;
        double num = ((double)lp - lm) / (2.0 * FD_H);
        w = fmax(w, fabs(num - g[i]) / (FD_ATOL + FD_RTOL * fabs((double)g[i])));
        gmax = fmax(gmax, fabs(g[i]));
    }
    print_message("%s: %zu parameters, worst error / tolerance %.3f\n", what, t->n_train, w);
    assert_true(w <= 1);
    assert_true(gmax > 0.05);
    free(g);
}

static lm_config tiny_cfg(int arch) {
    lm_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 64, .vocab_size = 17,
                   .seq_len = 8, .tied = 0, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .arch = arch};
    return c;
}

static void rand_tokens(sd_rng *r, int32_t *tok, uint8_t *mask, int B, int T, int V) {
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)sd_rng_below(r, (uint32_t)V);
    for (int i = 0; i < B * T; i++) mask[i] = sd_rng_below(r, 4) != 0;
}

/* qwen2 full training: every parameter (biases included) against finite differences. */
static void test_qwen2_gradients_fd(void **state) {
    (void)state;
    lm_config c = tiny_cfg(LM_ARCH_QWEN2);
    c.dim = 16, c.hidden_dim = 24;
    lm_model m;
    random_model(&m, &c, 9);
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = 2, o.seq_len = 6, o.threads = 1;
    lm_trainer *t;
    sd_err err = {0};
    assert_int_equal(lm_trainer_new(&t, &m, &o, &err), SD_OK);
    int32_t tok[2 * 7];
    uint8_t mask[2 * 6];
    sd_rng r;
    sd_rng_seed(&r, 4);
    rand_tokens(&r, tok, mask, 2, 6, c.vocab_size);
    fd_whole(t, tok, mask, "qwen2 full model");
    lm_trainer_free(t);
    lm_model_free(&m);
}

/* QLoRA: adapters over a Q4_0 base (rows of 32) against finite differences; full training of a
 * quantized base is refused. */
static void test_qlora_gradients_fd(void **state) {
    (void)state;
    for (int arch = 0; arch <= 1; arch++) {
        lm_config c = tiny_cfg(arch);
        lm_model m, q;
        random_model(&m, &c, 13);
        char *path = tmp_path("qlora");
        sd_err err = {0};
        assert_int_equal(lm_gguf_save_as(path, &m, NULL, "q", LM_Q_Q4_0, &err), SD_OK);
        assert_int_equal(lm_gguf_load_quant(path, &q, NULL, &err), SD_OK);
        assert_non_null(q.qm);
        lm_train_opts o;
        lm_train_opts_default(&o);
        o.batch = 2, o.seq_len = 6, o.threads = 1;
        lm_trainer *t;
        assert_int_equal(lm_trainer_new(&t, &q, &o, &err), SD_ERR_USAGE); /* no full training */
        o.lora_rank = 2, o.lora_alpha = 4;
        assert_int_equal(lm_trainer_new(&t, &q, &o, &err), SD_OK);
        sd_rng r;
        sd_rng_seed(&r, 6);
        for (size_t i = 0; i < t->n_train; i++) t->train[i] = (float)(sd_rng_normal(&r) * 0.3);
        int32_t tok[2 * 7];
        uint8_t mask[2 * 6];
        rand_tokens(&r, tok, mask, 2, 6, c.vocab_size);
        fd_whole(t, tok, mask, arch ? "QLoRA adapters, qwen2 Q4_0 base" : "QLoRA adapters, llama Q4_0 base");
        lm_trainer_free(t);
        unlink(path);
        free(path);
        lm_model_free(&m), lm_model_free(&q);
    }
}

/* A few QLoRA steps on a Q4_K base: the loss falls, the base bytes do not change, and the
 * adapter file is written; the merged model (decoded base + adapters) gives the adapted logits. */
static void test_qlora_steps(void **state) {
    (void)state;
    lm_config c = k_cfg(LM_ARCH_LLAMA, 1);
    c.seq_len = 12;
    lm_model m, q;
    random_model(&m, &c, 17);
    char *path = tmp_path("qk");
    sd_err err = {0};
    assert_int_equal(lm_gguf_save_as(path, &m, NULL, "q", LM_Q_Q4_K, &err), SD_OK);
    assert_int_equal(lm_gguf_load_quant(path, &q, NULL, &err), SD_OK);
    void *before = malloc(q.qbytes);
    memcpy(before, q.qdata, q.qbytes);
    lm_examples ex;
    lm_examples_init(&ex);
    sd_rng r;
    sd_rng_seed(&r, 77);
    for (int k = 0; k < 64; k++) {
        int32_t tok[12];
        int s = (int)sd_rng_below(&r, c.vocab_size);
        for (int i = 0; i < 12; i++) tok[i] = (s + i) % c.vocab_size;
        lm_examples_add(&ex, tok, NULL, 12);
    }
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = 4, o.seq_len = 11, o.steps = 12, o.warmup = 2, o.lr = 1e-2f, o.lora_rank = 4, o.lora_alpha = 8;
    lm_trainer *t;
    assert_int_equal(lm_trainer_new(&t, &q, &o, &err), SD_OK);
    lm_batcher b;
    assert_int_equal(lm_batcher_init(&b, &ex, o.batch, o.seq_len, 0, 1, &err), SD_OK);
    int32_t tok[4 * 12];
    uint8_t mask[4 * 11];
    lm_batcher_next(&b, tok, mask);
    float l0, l1, fin;
    lm_trainer_forward(t, tok, mask, &l0);
    assert_int_equal(lm_train_run(t, &b, "qlora", NULL, NULL, &fin, NULL, &err), SD_OK);
    lm_trainer_forward(t, tok, mask, &l1);
    print_message("QLoRA on a Q4_K base: loss %.3f -> %.3f in %d steps\n", l0, l1, o.steps);
    assert_true(l1 < 0.8f * l0);
    assert_memory_equal(before, q.qdata, q.qbytes);
    char *apath = tmp_path("adapter");
    assert_int_equal(lm_lora_save_gguf(t->lora, apath, &err), SD_OK);
    size_t nl = (size_t)4 * 11 * c.vocab_size;
    float *adapted = malloc(nl * sizeof(float));
    memcpy(adapted, t->logits, nl * sizeof(float));
    lm_model f;
    lm_model_to_f32(&f, &q);
    lm_lora_merge(t->lora, &f);
    lm_train_opts o2 = o;
    o2.lora_rank = 0;
    lm_trainer *plain;
    assert_int_equal(lm_trainer_new(&plain, &f, &o2, &err), SD_OK);
    float l2;
    lm_trainer_forward(plain, tok, mask, &l2);
    double md = 0;
    for (size_t i = 0; i < nl; i++) md = fmax(md, fabs((double)adapted[i] - plain->logits[i]));
    print_message("QLoRA merged into the decoded base: max |prob difference| %.2g\n", md);
    assert_true(md < 1e-4);
    lm_trainer_free(plain);
    lm_model_free(&f);
    free(adapted);
    unlink(apath);
    free(apath);
    lm_batcher_free(&b);
    lm_examples_free(&ex);
    lm_trainer_free(t);
    free(before);
    unlink(path);
    free(path);
    lm_model_free(&m), lm_model_free(&q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decoders_fast_vs_ref),     cmocka_unit_test(test_encoders_round_trip),
        cmocka_unit_test(test_matmuls_fast_vs_ref),      cmocka_unit_test(test_quantized_model_inference),
        cmocka_unit_test(test_qwen2_round_trip_and_biases), cmocka_unit_test(test_rope_scaling_refused),
        cmocka_unit_test(test_qwen2_gradients_fd),
        cmocka_unit_test(test_qlora_gradients_fd),       cmocka_unit_test(test_qlora_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
