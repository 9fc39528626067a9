/* test_align_scores.c - md_align_scores / md_align_scores_ids (src/plan/models.c), the score
 * best-of-n maximises, against values computed by hand from known logits.
 *
 * The model is a real 1-layer decoder whose weights are set so that the logits are known: wo and
 * w2 are zero, so attention and feed-forward add nothing and the last position's hidden state is
 * its token's embedding; the embeddings are rows of an 8x8 Hadamard matrix (h1 = all ones for
 * every token, h2 for 'b', h3 for 'c'), each with RMS 1, so the final RMSNorm (gain 1) maps h to
 * h / sqrt(1 + eps); the output row of token t is sum_m w[m][t] * h_m / 8, so a prompt ending in
 * the token of pattern m gets logits w[m][t] / sqrt(1 + eps) (the rows are orthogonal, h.h = 8).
 *
 * models.c defines the score as sum_d d * p(d) with p renormalised over the ten digit tokens, i.e.
 * softmax over the digits' logits. By hand:
 *   ends in 'a' (h1): digit 2 logit ln 3, digit 7 logit 0, other digits -60 -> (3*2 + 1*7) / 4 = 3.25
 *   ends in 'b' (h2): every digit logit 0                                 -> (0 + ... + 9) / 10 = 4.5
 *   ends in 'c' (h3): digit 9 logit ln 4, digit 0 logit 0, others -60     -> (4*9 + 1*0) / 5 = 7.2
 * Tolerance 1e-4: the eps factor changes the logits by 5e-6 relative (moving the scores by < 1e-5),
 * e^-60 terms are < 1e-25, the rest is float32 rounding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/lm_infer.h"
#include "serendip/models.h"
#include "serendip/sft.h"

enum { D = 8 };
static const float H[3][D] = {
    {1, 1, 1, 1, 1, 1, 1, 1},
    {1, 1, 1, 1, -1, -1, -1, -1},
    {1, 1, -1, -1, 1, 1, -1, -1},
};

static lm_tokenizer *g_tok;
static lm_model g_m;
static lm_infer *g_inf;

static int setup(void **state) {
    (void)state;
    sd_err err = {0};
    static const char text[] = "abc xyz 0123456789";
    if (tok_train(text, sizeof text - 1, 256 + TOK_N_SPECIAL, &g_tok, &err)) return -1; /* bytes + specials only */
    lm_config c = {.dim = D, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2, .hidden_dim = 8,
                   .vocab_size = tok_vocab_size(g_tok), .seq_len = 32, .tied = 0, .norm_eps = 1e-5f, .rope_theta = 10000};
    if (lm_model_init(&g_m, &c, 1, &err)) return -1;
    const int V = c.vocab_size;
    lm_weights *w = &g_m.w;
    memset(w->wo, 0, (size_t)D * D * sizeof(float));
    memset(w->w2, 0, (size_t)D * c.hidden_dim * sizeof(float));
    for (int i = 0; i < D; i++) w->out_norm[i] = 1, w->attn_norm[i] = 1, w->ffn_norm[i] = 1;
    for (int t = 0; t < V; t++) {
        int m = t == 'b' ? 1 : t == 'c' ? 2 : 0;
        memcpy(w->tok_emb + (size_t)t * D, H[m], sizeof H[m]);
    }
    /* the wanted logits w[m][t]: 0 for every non-digit token */
    static float want[3][256 + TOK_N_SPECIAL];
    for (int d = 0; d < 10; d++) {
        want[0]['0' + d] = d == 2 ? logf(3) : d == 7 ? 0 : -60;
        want[1]['0' + d] = 0;
        want[2]['0' + d] = d == 9 ? logf(4) : d == 0 ? 0 : -60;
    }
    for (int t = 0; t < V; t++)
        for (int i = 0; i < D; i++)
            w->out[(size_t)t * D + i] = (want[0][t] * H[0][i] + want[1][t] * H[1][i] + want[2][t] * H[2][i]) / D;
    g_inf = lm_infer_new(&g_m, 4, 32, &err);
    return g_inf ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    lm_infer_free(g_inf);
    lm_model_free(&g_m);
    tok_free(g_tok);
    return 0;
}

/* The fixture is what the header says: the reference forward pass gives the designed logits. */
static void test_fixture_logits(void **state) {
    (void)state;
    int32_t *ids;
    int n = lm_sft_encode_prompt(g_tok, "xa", &ids);
    assert_int_equal(ids[n - 1], 'a');
    const int V = g_m.cfg.vocab_size;
    float *logits = sd_malloc((size_t)n * V * sizeof *logits);
    lm_forward_reference(&g_m, ids, n, logits);
    const float *last = logits + (size_t)(n - 1) * V, scale = 1 / sqrtf(1 + 1e-5f);
    assert_float_equal(last['2'], logf(3) * scale, 1e-5);
    assert_float_equal(last['7'], 0, 1e-5);
    assert_float_equal(last['5'], -60 * scale, 1e-3);
    assert_float_equal(last['q'], 0, 1e-5);
    free(logits), free(ids);
}

static void test_scores_of_prompts(void **state) {
    (void)state;
    const char *prompts[] = {"xa", "yb", "zc", "c"};
    float out[4];
    sd_err err = {0};
    assert_int_equal(md_align_scores(g_inf, g_tok, prompts, 4, out, &err), SD_OK);
    assert_float_equal(out[0], 3.25, 1e-4);
    assert_float_equal(out[1], 4.5, 1e-4);
    assert_float_equal(out[2], 7.2, 1e-4);
    assert_float_equal(out[3], 7.2, 1e-4);
}

static void test_scores_of_continuations(void **state) {
    (void)state;
    int32_t *p0, *p1;
    int l0 = lm_sft_encode_prompt(g_tok, "x", &p0), l1 = lm_sft_encode_prompt(g_tok, "yb", &p1);
    const int32_t *prompts[] = {p0, p1};
    int plen[] = {l0, l1};
    const int32_t ca[] = {'a'}, cbc[] = {'b', 'c'}, cc[] = {'c', 'x', 'a'};
    const int32_t *conts[] = {ca, cbc, cc, NULL};
    int clen[] = {1, 2, 3, 0}, cprompt[] = {0, 0, 0, 1};
    float out[4];
    sd_err err = {0};
    assert_int_equal(md_align_scores_ids(g_inf, g_tok, prompts, plen, 2, conts, clen, cprompt, 4, out, &err), SD_OK);
    assert_float_equal(out[0], 3.25, 1e-4); /* "x" + "a" */
    assert_float_equal(out[1], 7.2, 1e-4);  /* "x" + "bc" */
    assert_float_equal(out[2], 3.25, 1e-4); /* "x" + "cxa" */
    assert_float_equal(out[3], 4.5, 1e-4);  /* "yb" itself */
    free(p0), free(p1);
}

int main(void) {
    sd_verbosity = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_logits),
        cmocka_unit_test(test_scores_of_prompts),
        cmocka_unit_test(test_scores_of_continuations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
