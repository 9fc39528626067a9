/* test_lm_ops.c - every transformer kernel: fast version against its plain reference, and every
 * backward against central finite differences of its forward.
 *
 * Finite differences: each check differentiates the scalar loss S = sum(out * R) (R random, so
 * dout = R) with respect to one input element at a time, in float32 with step h = 1e-2 (inputs
 * are O(1)). The central difference has truncation error O(h^2 * f''') ~ 1e-4 relative, and the
 * float32 forward contributes a rounding error of about 1e-7 * sum|out*R| / h ~ 1e-4 absolute for
 * these sizes, so we accept |numeric - analytic| <= 2e-3 + 2e-2 * |analytic|. A wrong sign, a
 * missing term or a wrong index gives errors of the order of the gradient itself (0.1 .. 10). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/base.h"
#include "serendip/lm_ops.h"

#define FD_H 1e-2f
#define FD_ATOL 2e-3
#define FD_RTOL 2e-2

static sd_rng rng;

static float *randv(size_t n, float scale) {
    float *x = sd_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(sd_rng_normal(&rng) * scale);
    return x;
}

static float *zeros(size_t n) { return sd_calloc(n, sizeof(float)); }

static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* max |a-b| / (atol + rtol*|b|) over n elements; <= 1 means within tolerance */
static double worst(const float *a, const float *b, size_t n, double atol, double rtol) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(e <= w)) w = e; /* NaN propagates as failure */
    }
    return w;
}

/* A forward computing S = sum(out * R) for the current inputs. */
typedef double (*loss_fn)(void *ctx);

/* Checks analytic gradient g of loss() wrt x[0..n) by central differences on every element. */
static void fd_check(const char *what, loss_fn loss, void *ctx, float *x, const float *g, size_t n) {
    double w = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = x0 + FD_H;
        double lp = loss(ctx);
        x[i] = x0 - FD_H;
        double lm = loss(ctx);
        x[i] = x0;
        double num = (lp - lm) / (2.0 * FD_H);
        double e = fabs(num - g[i]) / (FD_ATOL + FD_RTOL * fabs((double)g[i]));
        if (!(e <= w)) w = e, wi = i;
    }
    if (w > 1) {
        float x0 = x[wi];
        x[wi] = x0 + FD_H;
        double lp = loss(ctx);
        x[wi] = x0 - FD_H;
        double lm = loss(ctx);
        x[wi] = x0;
        print_error("%s: element %zu analytic %g numeric %g\n", what, wi, (double)g[wi], (lp - lm) / (2.0 * FD_H));
    }
    assert_true(w <= 1);
}

/* ---------------------------------------------------------------- matmul */

typedef struct {
    float *x, *w, *out, *R;
    int N, C, OC;
} mm_ctx;

static double mm_loss(void *p) {
    mm_ctx *c = p;
    lm_matmul_forward(c->out, c->x, c->w, c->N, c->C, c->OC);
    return dotd(c->out, c->R, (size_t)c->N * c->OC);
}

static void test_matmul(void **state) {
    (void)state;
    int N = 7, C = 13, OC = 5;
    mm_ctx c = {randv((size_t)N * C, 1), randv((size_t)OC * C, 1), zeros((size_t)N * OC), randv((size_t)N * OC, 1), N, C, OC};
    float *ref = zeros((size_t)N * OC);
    lm_matmul_forward(c.out, c.x, c.w, N, C, OC);
    lm_matmul_forward_ref(ref, c.x, c.w, N, C, OC);
    assert_true(worst(c.out, ref, (size_t)N * OC, 1e-5, 1e-5) <= 1); /* float sums of 13 terms */
    float *dx = zeros((size_t)N * C), *dw = zeros((size_t)OC * C), *dxr = zeros((size_t)N * C), *dwr = zeros((size_t)OC * C);
    lm_matmul_backward(dx, dw, c.R, c.x, c.w, N, C, OC);
    lm_matmul_backward_ref(dxr, dwr, c.R, c.x, c.w, N, C, OC);
    assert_true(worst(dx, dxr, (size_t)N * C, 1e-5, 1e-5) <= 1);
    assert_true(worst(dw, dwr, (size_t)OC * C, 1e-5, 1e-5) <= 1);
    /* backward accumulates: a second call doubles the gradient */
    lm_matmul_backward(dx, NULL, c.R, c.x, c.w, N, C, OC);
    for (int i = 0; i < N * C; i++) assert_float_equal(dx[i], 2 * dxr[i], 1e-4);
    lm_matmul_backward(NULL, dw, c.R, c.x, c.w, N, C, OC); /* dw now 2x too */
    for (int i = 0; i < OC * C; i++) dw[i] *= 0.5f;
    fd_check("matmul dx", mm_loss, &c, c.x, dxr, (size_t)N * C);
    fd_check("matmul dw", mm_loss, &c, c.w, dw, (size_t)OC * C);
    free(c.x), free(c.w), free(c.out), free(c.R), free(ref), free(dx), free(dw), free(dxr), free(dwr);
}

/* ---------------------------------------------------------------- rmsnorm */

typedef struct {
    float *x, *g, *out, *rstd, *R;
    int N, D;
} rn_ctx;

static double rn_loss(void *p) {
    rn_ctx *c = p;
    lm_rmsnorm_forward(c->out, c->rstd, c->x, c->g, c->N, c->D, 1e-5f);
    return dotd(c->out, c->R, (size_t)c->N * c->D);
}

static void test_rmsnorm(void **state) {
    (void)state;
    int N = 6, D = 16;
    size_t n = (size_t)N * D;
    rn_ctx c = {randv(n, 1), randv(D, 1), zeros(n), zeros(N), randv(n, 1), N, D};
    float *ref = zeros(n), *rstd_ref = zeros(N);
    lm_rmsnorm_forward(c.out, c.rstd, c.x, c.g, N, D, 1e-5f);
    lm_rmsnorm_forward_ref(ref, rstd_ref, c.x, c.g, N, D, 1e-5f);
    assert_true(worst(c.out, ref, n, 1e-6, 1e-5) <= 1);
    assert_true(worst(c.rstd, rstd_ref, N, 0, 1e-5) <= 1);
    float *dx = zeros(n), *dg = zeros(D), *dxr = zeros(n), *dgr = zeros(D);
    lm_rmsnorm_backward(dx, dg, c.R, c.x, c.g, c.rstd, N, D);
    lm_rmsnorm_backward_ref(dxr, dgr, c.R, c.x, c.g, c.rstd, N, D);
    assert_true(worst(dx, dxr, n, 1e-5, 1e-4) <= 1);
    assert_true(worst(dg, dgr, D, 1e-5, 1e-4) <= 1);
    fd_check("rmsnorm dx", rn_loss, &c, c.x, dx, n);
    fd_check("rmsnorm dg", rn_loss, &c, c.g, dg, D);
    free(c.x), free(c.g), free(c.out), free(c.rstd), free(c.R), free(ref), free(rstd_ref), free(dx), free(dg), free(dxr),
        free(dgr);
}

/* ---------------------------------------------------------------- rope */

typedef struct {
    float *x, *y, *R, *cosv, *sinv;
    int B, T, nh, hd;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t n = (size_t)c->B * c->T * c->nh * c->hd;
    memcpy(c->y, c->x, n * sizeof(float));
    lm_rope_forward(c->y, c->cosv, c->sinv, c->B, c->T, c->nh, c->hd);
    return dotd(c->y, c->R, n);
}

static void test_rope(void **state) {
    (void)state;
    int B = 2, T = 9, nh = 3, hd = 8;
    size_t n = (size_t)B * T * nh * hd;
    rope_ctx c = {randv(n, 1), zeros(n), randv(n, 1), zeros((size_t)T * hd / 2), zeros((size_t)T * hd / 2), B, T, nh, hd};
    lm_rope_table(c.cosv, c.sinv, T, hd, 10000.0f);
    float *ref = sd_malloc(n * sizeof(float));
    memcpy(ref, c.x, n * sizeof(float));
    lm_rope_forward_ref(ref, 10000.0f, B, T, nh, hd);
    rope_loss(&c);
    assert_true(worst(c.y, ref, n, 1e-5, 1e-5) <= 1);
    /* llama.cpp NORM rope: at position 1, pair 0 of a head turns by exactly 1 radian */
    float v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    lm_rope_forward(v, c.cosv + 1 * hd / 2 - 0, c.sinv + 1 * hd / 2, 1, 1, 1, hd);
    assert_float_equal(v[0], cosf(1), 1e-6);
    assert_float_equal(v[1], sinf(1), 1e-6);
    float *dx = sd_malloc(n * sizeof(float));
    memcpy(dx, c.R, n * sizeof(float));
    lm_rope_backward(dx, c.cosv, c.sinv, B, T, nh, hd);
    fd_check("rope dx", rope_loss, &c, c.x, dx, n);
    free(c.x), free(c.y), free(c.R), free(c.cosv), free(c.sinv), free(ref), free(dx);
}

/* ---------------------------------------------------------------- attention */

typedef struct {
    float *q, *k, *v, *out, *att, *R;
    int B, T, nh, nkv, hd;
} at_ctx;

static double at_loss(void *p) {
    at_ctx *c = p;
    lm_attention_forward(c->out, c->att, c->q, c->k, c->v, c->B, c->T, c->nh, c->nkv, c->hd);
    return dotd(c->out, c->R, (size_t)c->B * c->T * c->nh * c->hd);
}

static void test_attention(void **state) {
    (void)state;
    int B = 2, T = 7, nh = 4, nkv = 2, hd = 4;
    size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd, na = (size_t)B * nh * T * T;
    at_ctx c = {randv(nq, 1), randv(nk, 1), randv(nk, 1), zeros(nq), zeros(na), randv(nq, 1), B, T, nh, nkv, hd};
    float *outr = zeros(nq), *attr = zeros(na);
    at_loss(&c);
    lm_attention_forward_ref(outr, attr, c.q, c.k, c.v, B, T, nh, nkv, hd);
    assert_true(worst(c.out, outr, nq, 1e-5, 1e-4) <= 1);
    assert_true(worst(c.att, attr, na, 1e-6, 1e-4) <= 1);
    /* causality: position 0 attends only to itself */
    assert_float_equal(c.att[0], 1.0f, 1e-6);
    float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk), *dqr = zeros(nq), *dkr = zeros(nk), *dvr = zeros(nk);
    float *scratch = zeros(lm_attention_scratch_floats(T));
    lm_attention_backward(dq, dk, dv, c.R, c.att, c.q, c.k, c.v, B, T, nh, nkv, hd, scratch);
    free(scratch);
    lm_attention_backward_ref(dqr, dkr, dvr, c.R, c.att, c.q, c.k, c.v, B, T, nh, nkv, hd);
    assert_true(worst(dq, dqr, nq, 1e-5, 1e-4) <= 1);
    assert_true(worst(dk, dkr, nk, 1e-5, 1e-4) <= 1);
    assert_true(worst(dv, dvr, nk, 1e-5, 1e-4) <= 1);
    fd_check("attention dq", at_loss, &c, c.q, dq, nq);
    fd_check("attention dk", at_loss, &c, c.k, dk, nk);
    fd_check("attention dv", at_loss, &c, c.v, dv, nk);
    free(c.q), free(c.k), free(c.v), free(c.out), free(c.att), free(c.R), free(outr), free(attr);
    free(dq), free(dk), free(dv), free(dqr), free(dkr), free(dvr);
}

/* ---------------------------------------------------------------- swiglu, residual, embedding */

typedef struct {
    float *a, *b, *out, *R;
    size_t n;
} sw_ctx;

static double sw_loss(void *p) {
    sw_ctx *c = p;
    lm_swiglu_forward(c->out, c->a, c->b, c->n);
    return dotd(c->out, c->R, c->n);
}

static void test_swiglu_residual(void **state) {
    (void)state;
    size_t n = 50;
    sw_ctx c = {randv(n, 2), randv(n, 1), zeros(n), randv(n, 1), n};
    sw_loss(&c);
    for (size_t i = 0; i < n; i++) /* silu(a) * b in double */
        assert_float_equal(c.out[i], c.a[i] / (1 + exp(-(double)c.a[i])) * c.b[i], 1e-5);
    float *da = zeros(n), *db = zeros(n);
    lm_swiglu_backward(da, db, c.R, c.a, c.b, n);
    fd_check("swiglu da", sw_loss, &c, c.a, da, n);
    fd_check("swiglu db", sw_loss, &c, c.b, db, n);
    float *o = zeros(n), *ga = zeros(n), *gb = zeros(n);
    lm_residual_forward(o, c.a, c.b, n);
    lm_residual_backward(ga, gb, c.R, n);
    for (size_t i = 0; i < n; i++) {
        assert_true(o[i] == c.a[i] + c.b[i]);
        assert_true(ga[i] == c.R[i] && gb[i] == c.R[i]);
    }
    free(c.a), free(c.b), free(c.out), free(c.R), free(da), free(db), free(o), free(ga), free(gb);
}

typedef struct {
    float *emb, *out, *R;
    int32_t *tok;
    int N, D;
} em_ctx;

static double em_loss(void *p) {
    em_ctx *c = p;
    lm_embedding_forward(c->out, c->tok, c->emb, c->N, c->D);
    return dotd(c->out, c->R, (size_t)c->N * c->D);
}

static void test_embedding(void **state) {
    (void)state;
    int V = 5, D = 6, N = 9;
    int32_t tok[9] = {0, 3, 3, 1, 4, 3, 0, 2, 4}; /* repeats: gradients must add */
    em_ctx c = {randv((size_t)V * D, 1), zeros((size_t)N * D), randv((size_t)N * D, 1), tok, N, D};
    em_loss(&c);
    for (int n = 0; n < N; n++) assert_memory_equal(c.out + n * D, c.emb + tok[n] * D, D * sizeof(float));
    float *g = zeros((size_t)V * D);
    lm_embedding_backward(g, c.R, tok, N, D);
    fd_check("embedding", em_loss, &c, c.emb, g, (size_t)V * D);
    free(c.emb), free(c.out), free(c.R), free(g);
}

/* ---------------------------------------------------------------- cross-entropy with mask */

typedef struct {
    float *logits, *probs, *losses;
    int32_t *tgt;
    uint8_t *mask;
    int N, V;
    float scale;
} xe_ctx;

static double xe_loss(void *p) {
    xe_ctx *c = p;
    lm_xent_forward(c->probs, c->losses, c->logits, c->tgt, c->N, c->V);
    double s = 0;
    for (int i = 0; i < c->N; i++)
        if (c->mask[i]) s += c->losses[i];
    return s * c->scale;
}

static void test_xent(void **state) {
    (void)state;
    int N = 6, V = 11;
    int32_t tgt[6] = {0, 10, 3, 3, 7, 1};
    uint8_t mask[6] = {1, 0, 1, 1, 0, 1};
    xe_ctx c = {randv((size_t)N * V, 3), zeros((size_t)N * V), zeros(N), tgt, mask, N, V, 0.25f};
    float *pr = zeros((size_t)N * V), *lr = zeros(N);
    xe_loss(&c);
    lm_xent_forward_ref(pr, lr, c.logits, tgt, N, V);
    assert_true(worst(c.probs, pr, (size_t)N * V, 1e-7, 1e-5) <= 1);
    assert_true(worst(c.losses, lr, N, 1e-6, 1e-5) <= 1);
    /* an extreme logit must not overflow: loss of a certain prediction is ~0, not NaN */
    float big[3] = {1000, 0, -1000}, bp[3], bl[1];
    int32_t t0 = 0;
    lm_xent_forward(bp, bl, big, &t0, 1, 3);
    assert_true(isfinite(bl[0]) && bl[0] < 1e-6);
    /* in place (probs aliasing logits), as the trainer calls it */
    float *inplace = sd_malloc((size_t)N * V * sizeof(float)), *il = zeros(N);
    memcpy(inplace, c.logits, (size_t)N * V * sizeof(float));
    lm_xent_forward(inplace, il, inplace, tgt, N, V);
    assert_true(worst(inplace, pr, (size_t)N * V, 1e-7, 1e-5) <= 1);
    assert_true(worst(il, lr, N, 1e-6, 1e-5) <= 1);
    free(inplace), free(il);
    float *d = zeros((size_t)N * V);
    lm_xent_backward(d, c.probs, tgt, mask, c.scale, N, V);
    for (int j = 0; j < V; j++) assert_true(d[1 * V + j] == 0.0f && d[4 * V + j] == 0.0f); /* masked rows */
    fd_check("xent dlogits", xe_loss, &c, c.logits, d, (size_t)N * V);
    free(c.logits), free(c.probs), free(c.losses), free(pr), free(lr), free(d);
}

int main(void) {
    sd_rng_seed(&rng, 1234);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),    cmocka_unit_test(test_rmsnorm), cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention), cmocka_unit_test(test_swiglu_residual), cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_xent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
