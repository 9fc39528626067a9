/* test_rl.c - the pieces of RL fine-tuning (rl.h): the policy-gradient loss's gradient through the
 * trainer's weighted backward against finite differences, the KL term at policy == reference,
 * the weighted backward against the plain mean cross-entropy backward, and group-relative
 * advantages on hand-computed groups.
 *
 * Finite differences as tests/test_lm_train.c: every parameter of a tiny model perturbed by
 * h = 3e-3, the loss recomputed in float32 from the token nlls; accepted |num - ana| <= 1e-3 +
 * 3e-2 |ana| (that file measures the float rounding and truncation error behind it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/lm_train.h"
#include "serendip/rl.h"

#define FD_H 3e-3f
#define FD_ATOL 1e-3
#define FD_RTOL 3e-2
enum { B = 3, T = 6 };

static lm_config tiny_cfg(void) {
    lm_config c = {.dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 24, .vocab_size = 17,
                   .seq_len = 8, .tied = 1, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    return c;
}

static void random_model(lm_model *m, uint64_t seed) {
    lm_config c = tiny_cfg();
    sd_err err = {0};
    assert_int_equal(lm_model_init(m, &c, seed, &err), SD_OK);
    sd_rng r;
    sd_rng_seed(&r, seed * 31 + 1);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = (float)(sd_rng_normal(&r) * 0.1);
    size_t D = c.dim, L = c.n_layers;
    for (size_t i = 0; i < L * D; i++) m->w.attn_norm[i] += 1, m->w.ffn_norm[i] += 1;
    for (size_t i = 0; i < D; i++) m->w.out_norm[i] += 1;
}

static lm_trainer *trainer_of(lm_model *m) {
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = B;
    o.seq_len = T;
    o.threads = 1;
    lm_trainer *t = NULL;
    sd_err err = {0};
    assert_int_equal(lm_trainer_new(&t, m, &o, &err), SD_OK);
    return t;
}

/* tokens (B, T+1) and a generated-token mask: row b's completion starts at position 2 + b. */
static void fixture(int32_t *tok, uint8_t *gen, float *adv) {
    sd_rng r;
    sd_rng_seed(&r, 4242);
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)sd_rng_below(&r, 17);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) gen[b * T + i] = i >= 1 + b;
    adv[0] = 1.3f, adv[1] = -0.7f, adv[2] = 0.4f;
}

/* The policy loss of the whole batch from token nlls (the definition, written out). */
static double batch_loss(const float *nll, const float *ref, const uint8_t *gen, const float *adv, float beta, float scale) {
    double s = 0;
    for (int k = 0; k < B * T; k++)
        if (gen[k]) s += rl_token_loss(nll[k], ref[k], adv[k / T], beta);
    return s * scale;
}

static void test_policy_loss_gradient_fd(void **state) {
    (void)state;
    lm_model pol, ref;
    random_model(&pol, 7);
    random_model(&ref, 8); /* a different reference: the KL term and its gradient are not 0 */
    lm_trainer *tp = trainer_of(&pol), *tr = trainer_of(&ref);
    int32_t tok[B * (T + 1)];
    uint8_t gen[B * T];
    float adv[B], ref_nll[B * T], nll[B * T], w[B * T];
    fixture(tok, gen, adv);
    lm_trainer_token_nll(tr, tok, ref_nll);
    int ntok = 0;
    for (int k = 0; k < B * T; k++) ntok += gen[k];
    const float beta = 0.5f;
    rl_weights rw = {.adv = adv, .ref = ref_nll, .gen = gen, .beta = beta, .scale = 1.0f / (float)ntok};
    double wloss = 0;
    lm_trainer_grad_weighted(tp, tok, rl_weigh, &rw, w, nll, &wloss);
    double kl = 0;
    for (int k = 0; k < B * T; k++)
        if (gen[k]) kl += rl_token_loss(nll[k], ref_nll[k], 0, 1);
    assert_true(kl > 1e-3); /* the KL part is really exercised */
    float *g = sd_malloc(tp->n_train * sizeof(float));
    memcpy(g, tp->grads, tp->n_train * sizeof(float));
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < tp->n_train; i++) {
        float x0 = tp->train[i];
        tp->train[i] = x0 + FD_H;
        lm_trainer_token_nll(tp, tok, nll);
        double lp = batch_loss(nll, ref_nll, gen, adv, beta, rw.scale);
        tp->train[i] = x0 - FD_H;
        lm_trainer_token_nll(tp, tok, nll);
        double lm = batch_loss(nll, ref_nll, gen, adv, beta, rw.scale);
        tp->train[i] = x0;
        double num = (lp - lm) / (2.0 * FD_H), e = fabs(num - g[i]) / (FD_ATOL + FD_RTOL * fabs((double)g[i]));
        if (e > worst) worst = e;
        if (fabs(g[i]) > gmax) gmax = fabs(g[i]);
    }
    print_message("policy loss: %zu parameters, worst error / tolerance %.3f, max |grad| %.3f\n", tp->n_train, worst, gmax);
    assert_true(worst <= 1);
    assert_true(gmax > 0.02);
    free(g);
    lm_trainer_free(tp);
    lm_trainer_free(tr);
    lm_model_free(&pol);
    lm_model_free(&ref);
}

static void test_kl_zero_at_reference(void **state) {
    (void)state;
    /* the token-level term itself: 0 (and 0 derivative) when nll == nll_ref, > 0 otherwise */
    const float xs[4] = {0.01f, 0.7f, 2.5f, 9.0f};
    for (int i = 0; i < 4; i++) {
        assert_true(rl_token_loss(xs[i], xs[i], 0, 1) == 0.0);
        assert_true(rl_token_weight(xs[i], xs[i], 0, 1) == 0.0f);
        assert_true(rl_token_weight(xs[i], xs[i], 0.25f, 3) == 0.25f); /* only the advantage remains */
        assert_true(rl_token_loss(xs[i], xs[i] + 0.3f, 0, 1) > 0 && rl_token_loss(xs[i] + 0.3f, xs[i], 0, 1) > 0);
    }
    /* through the model: policy == reference and zero advantages give exactly zero gradient */
    lm_model m;
    random_model(&m, 11);
    lm_trainer *tp = trainer_of(&m), *tr = trainer_of(&m);
    int32_t tok[B * (T + 1)];
    uint8_t gen[B * T];
    float adv[B], ref_nll[B * T], nll[B * T], w[B * T];
    fixture(tok, gen, adv);
    lm_trainer_token_nll(tr, tok, ref_nll);
    float zero[B] = {0, 0, 0};
    rl_weights rw = {.adv = zero, .ref = ref_nll, .gen = gen, .beta = 1.0f, .scale = 0.1f};
    double wloss = -1;
    lm_trainer_grad_weighted(tp, tok, rl_weigh, &rw, w, nll, &wloss);
    assert_true(wloss == 0.0);
    for (int k = 0; k < B * T; k++) assert_true(nll[k] == ref_nll[k]);
    for (size_t i = 0; i < tp->n_train; i++) assert_true(tp->grads[i] == 0.0f);
    lm_trainer_free(tp);
    lm_trainer_free(tr);
    lm_model_free(&m);
}

/* Weights 1/N on the masked positions are the mean masked cross-entropy: the same gradient as
 * the trainer's plain path (lm_trainer_grad), the reference this weighted backward extends. */
static void test_weighted_equals_mean_xent(void **state) {
    (void)state;
    lm_model m;
    random_model(&m, 13);
    lm_trainer *t = trainer_of(&m);
    int32_t tok[B * (T + 1)];
    uint8_t gen[B * T];
    float adv[B], ref_nll[B * T], w[B * T];
    fixture(tok, gen, adv);
    int ntok = 0;
    for (int k = 0; k < B * T; k++) ntok += gen[k];
    float ones[B] = {1, 1, 1};
    for (int k = 0; k < B * T; k++) ref_nll[k] = 0;
    rl_weights rw = {.adv = ones, .ref = ref_nll, .gen = gen, .beta = 0, .scale = 1.0f / (float)ntok};
    double wloss;
    lm_trainer_grad_weighted(t, tok, rl_weigh, &rw, w, NULL, &wloss);
    float *g = sd_malloc(t->n_train * sizeof(float));
    memcpy(g, t->grads, t->n_train * sizeof(float));
    float loss;
    lm_trainer_grad(t, tok, gen, 1, &loss);
    assert_float_equal(wloss, loss, 1e-5);
    double worst = 0;
    for (size_t i = 0; i < t->n_train; i++) worst = fmax(worst, fabs(g[i] - t->grads[i]));
    print_message("weighted vs mean cross-entropy: max |grad difference| %.2e\n", worst);
    assert_true(worst < 1e-6); /* same operations up to float rounding of the scale */
    free(g);
    lm_trainer_free(t);
    lm_model_free(&m);
}

static void test_group_advantages(void **state) {
    (void)state;
    /* group 1: mean 3, deviations -2 -1 0 3, population std sqrt(14/4); group 2: constant */
    const float r[8] = {1, 2, 3, 6, 5, 5, 5, 5};
    float a[8];
    rl_group_advantages(r, 2, 4, 0, a);
    const float dev[8] = {-2, -1, 0, 3, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++) assert_float_equal(a[i], dev[i], 1e-6);
    rl_group_advantages(r, 2, 4, 1, a);
    double sd = sqrt(14.0 / 4);
    for (int i = 0; i < 4; i++) assert_float_equal(a[i], dev[i] / sd, 1e-6);
    for (int i = 4; i < 8; i++) assert_true(a[i] == 0.0f); /* no spread, no signal */
    /* a pair: +-1 whatever the gap */
    const float p[2] = {0.5f, 8.5f};
    rl_group_advantages(p, 1, 2, 1, a);
    assert_float_equal(a[0], -1, 1e-6);
    assert_float_equal(a[1], 1, 1e-6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_loss_gradient_fd),
        cmocka_unit_test(test_kl_zero_at_reference),
        cmocka_unit_test(test_weighted_equals_mean_xent),
        cmocka_unit_test(test_group_advantages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
