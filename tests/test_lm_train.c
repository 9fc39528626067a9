/* test_lm_train.c - the training path end to end: whole-model gradients against finite
 * differences (full and LoRA, tied and untied), gradient accumulation, learning a synthetic task,
 * the SFT loss mask, LoRA (frozen base, merge), checkpoints with exact resume, and the batcher.
 *
 * Whole-model finite differences: every parameter is perturbed by h = 3e-3 (weights are drawn
 * with std 0.1, so gradients are O(0.001..1)) and the mean loss recomputed in float32. The loss
 * (~3) carries float rounding of ~3e-7, i.e. ~1.5e-4 in the numeric gradient; the central
 * difference's truncation error h^2 f'''/6 was measured at <= 3e-4 on this model (at h = 1e-2 it
 * reached 3e-3), so we accept |num - ana| <= 1e-3 + 3e-2 |ana|.
 * Any wrong term in a backward (sign, index, missing path) produces errors far above that. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/gguf.h"
#include "serendip/lm_train.h"
#include "serendip/tokenizer.h"

#define FD_H 3e-3f
#define FD_ATOL 1e-3
#define FD_RTOL 3e-2

static lm_config tiny_cfg(int tied) {
    lm_config c = {.dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 24, .vocab_size = 17,
                   .seq_len = 8, .tied = tied, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    return c;
}

static void rand_tokens(sd_rng *r, int32_t *tok, uint8_t *mask, int B, int T, int V) {
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)sd_rng_below(r, (uint32_t)V);
    for (int i = 0; i < B * T; i++) mask[i] = sd_rng_below(r, 4) != 0; /* ~3/4 of positions count */
}

/* Checks every element of the trainable block against central differences of the mean loss. */
static void fd_whole(lm_trainer *t, const int32_t *tok, const uint8_t *mask, const char *what) {
    float loss;
    lm_trainer_grad(t, tok, mask, 1, &loss);
    float *g = sd_malloc(t->n_train * sizeof(float));
    memcpy(g, t->grads, t->n_train * sizeof(float));
    double w = 0, gmax = 0;
    size_t wi = 0;
    for (size_t i = 0; i < t->n_train; i++) {
        float x0 = t->train[i], lp, lm;
        t->train[i] = x0 + FD_H;
        lm_trainer_forward(t, tok, mask, &lp);
        t->train[i] = x0 - FD_H;
        lm_trainer_forward(t, tok, mask, &lm);
        t->train[i] = x0;
        double num = ((double)lp - lm) / (2.0 * FD_H);
        double e = fabs(num - g[i]) / (FD_ATOL + FD_RTOL * fabs((double)g[i]));
        if (!(e <= w)) w = e, wi = i;
        if (fabs(g[i]) > gmax) gmax = fabs(g[i]);
    }
    print_message("%s: %zu parameters, worst error / tolerance %.3f (param %zu)\n", what, t->n_train, w, wi);
    assert_true(w <= 1);
    assert_true(gmax > 0.05); /* the check is not vacuous */
    free(g);
}

static void scale_params(lm_model *m, sd_rng *r) {
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = (float)(sd_rng_normal(r) * 0.1);
    /* norm gains around 1, so their gradients are checked at a generic point */
    size_t D = m->cfg.dim, L = m->cfg.n_layers;
    for (size_t i = 0; i < L * D; i++) m->w.attn_norm[i] = 1 + m->w.attn_norm[i], m->w.ffn_norm[i] = 1 + m->w.ffn_norm[i];
    for (size_t i = 0; i < D; i++) m->w.out_norm[i] = 1 + m->w.out_norm[i];
}

static void test_model_gradients_fd(void **state) {
    (void)state;
    for (int tied = 0; tied <= 1; tied++) {
        lm_config c = tiny_cfg(tied);
        lm_model m;
        sd_err err = {0};
        assert_int_equal(lm_model_init(&m, &c, 7, &err), SD_OK);
        sd_rng r;
        sd_rng_seed(&r, 99);
        scale_params(&m, &r);
        lm_train_opts o;
        lm_train_opts_default(&o);
        o.batch = 2;
        o.seq_len = 6;
        o.threads = 1; /* thousands of tiny forwards: threads would only add barriers */
        lm_trainer *t;
        assert_int_equal(lm_trainer_new(&t, &m, &o, &err), SD_OK);
        int32_t tok[2 * 7];
        uint8_t mask[2 * 6];
        rand_tokens(&r, tok, mask, 2, 6, c.vocab_size);
        fd_whole(t, tok, mask, tied ? "tied model" : "untied model");
        lm_trainer_free(t);
        lm_model_free(&m);
    }
}

static void test_lora_gradients_fd(void **state) {
    (void)state;
    lm_config c = tiny_cfg(1);
    lm_model m;
    sd_err err = {0};
    assert_int_equal(lm_model_init(&m, &c, 7, &err), SD_OK);
    sd_rng r;
    sd_rng_seed(&r, 5);
    scale_params(&m, &r);
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = 2;
    o.seq_len = 6;
    o.lora_rank = 2;
    o.lora_alpha = 4;
    o.threads = 1;
    lm_trainer *t;
    assert_int_equal(lm_trainer_new(&t, &m, &o, &err), SD_OK);
    assert_true(t->n_train < m.n_params / 2); /* only adapters are trainable */
    /* B starts at 0, which would make A's gradient vacuously 0: randomise every adapter */
    for (size_t i = 0; i < t->n_train; i++) t->train[i] = (float)(sd_rng_normal(&r) * 0.3);
    int32_t tok[2 * 7];
    uint8_t mask[2 * 6];
    rand_tokens(&r, tok, mask, 2, 6, c.vocab_size);
    fd_whole(t, tok, mask, "LoRA adapters");
    lm_trainer_free(t);
    lm_model_free(&m);
}

/* accum micro-batches of B rows == one batch of accum*B rows (same masked-mean normaliser) */
static void test_grad_accumulation_equals_big_batch(void **state) {
    (void)state;
    lm_config c = tiny_cfg(0);
    lm_model m;
    sd_err err = {0};
    assert_int_equal(lm_model_init(&m, &c, 3, &err), SD_OK);
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.seq_len = 8;
    o.batch = 4;
    o.threads = 2;
    lm_trainer *big, *small;
    assert_int_equal(lm_trainer_new(&big, &m, &o, &err), SD_OK);
    o.batch = 2;
    o.accum = 2;
    assert_int_equal(lm_trainer_new(&small, &m, &o, &err), SD_OK);
    sd_rng r;
    sd_rng_seed(&r, 11);
    int32_t tok[4 * 9];
    uint8_t mask[4 * 8];
    rand_tokens(&r, tok, mask, 4, 8, c.vocab_size);
    mask[0] = 0, mask[1] = 0, mask[2] = 0; /* unequal counts per micro-batch */
    float lb, ls;
    lm_trainer_grad(big, tok, mask, 1, &lb);
    lm_trainer_grad(small, tok, mask, 2, &ls);
    assert_float_equal(lb, ls, 1e-6 * fabs(lb)); /* same sum, different float order */
    double md = 0, mg = 0;
    for (size_t i = 0; i < m.n_params; i++) {
        md = fmax(md, fabs((double)big->grads[i] - small->grads[i]));
        mg = fmax(mg, fabs((double)big->grads[i]));
    }
    assert_true(md <= 1e-5 * mg); /* float32 summation-order differences only */
    lm_trainer_free(big);
    lm_trainer_free(small);
    lm_model_free(&m);
}

/* ---------------------------------------------------------------- learning */

#define SYM 10      /* symbols 0..9 */
#define TOK_SEPID 10
#define TOK_PADID 11
#define LEN 5

/* reverse task: a1..a5 SEP a5..a1, answer (after SEP) is the target */
static void reverse_examples(lm_examples *e, sd_rng *r, int n) {
    for (int k = 0; k < n; k++) {
        int32_t tok[2 * LEN + 1];
        uint8_t tgt[2 * LEN + 1] = {0};
        for (int i = 0; i < LEN; i++) tok[i] = (int32_t)sd_rng_below(r, SYM);
        tok[LEN] = TOK_SEPID;
        for (int i = 0; i < LEN; i++) tok[LEN + 1 + i] = tok[LEN - 1 - i], tgt[LEN + 1 + i] = 1;
        lm_examples_add(e, tok, tgt, 2 * LEN + 1);
    }
}

/* mean loss over masked (answer) positions and over prompt positions 1..LEN-1 (targets a2..a5,
 * which are random and so unpredictable: their best loss is ln 10 = 2.30) */
static void eval_reverse(lm_trainer *t, lm_batcher *b, float *answer, float *prompt) {
    int B = t->B, T = t->T;
    int32_t *tok = sd_malloc((size_t)B * (T + 1) * sizeof(int32_t));
    uint8_t *mask = sd_malloc((size_t)B * T), *pm = sd_calloc((size_t)B * T, 1);
    lm_batcher_next(b, tok, mask);
    for (int row = 0; row < B; row++)
        for (int i = 0; i < LEN - 1; i++) pm[row * T + i] = 1;
    lm_trainer_forward(t, tok, mask, answer);
    lm_trainer_forward(t, tok, pm, prompt);
    free(tok), free(mask), free(pm);
}

static void test_learns_reverse_only_answers(void **state) {
    (void)state;
    lm_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 64, .vocab_size = 12,
                   .seq_len = 16, .tied = 1, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    lm_model m;
    sd_err err = {0};
    assert_int_equal(lm_model_init(&m, &c, 1, &err), SD_OK);
    lm_examples ex;
    lm_examples_init(&ex);
    sd_rng r;
    sd_rng_seed(&r, 2024);
    reverse_examples(&ex, &r, 4000);
    lm_examples held;
    lm_examples_init(&held);
    reverse_examples(&held, &r, 64);
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = 32;
    o.seq_len = 2 * LEN;
    o.threads = 1; /* tiny matrices: threads only add synchronisation (and the CI box may be busy) */
    o.steps = 600;
    o.warmup = 30;
    o.lr = 3e-3f;
    o.min_lr = 3e-4f;
    o.weight_decay = 0.0f;
    lm_trainer *t;
    assert_int_equal(lm_trainer_new(&t, &m, &o, &err), SD_OK);
    lm_batcher b, hb;
    assert_int_equal(lm_batcher_init(&b, &ex, o.batch, o.seq_len, TOK_PADID, 3, &err), SD_OK);
    assert_int_equal(lm_batcher_init(&hb, &held, o.batch, o.seq_len, TOK_PADID, 4, &err), SD_OK);
    float a0, p0, a1, p1, last;
    eval_reverse(t, &hb, &a0, &p0);
    double t0 = sd_now();
    assert_int_equal(lm_train_run(t, &b, "reverse", NULL, NULL, &last, NULL, &err), SD_OK);
    double dt = sd_now() - t0;
    lm_batcher_seek(&hb, 0, 0);
    eval_reverse(t, &hb, &a1, &p1);
    print_message("reverse task: answer loss %.3f -> %.4f, prompt loss %.3f -> %.3f (ln 10 = 2.303), %.1fs\n", a0,
                  a1, p0, p1, dt);
    assert_true(a1 < 0.1f);               /* learned the answers on held-out sequences (chance: 2.30) */
    assert_true(p1 > 2.0f);               /* and not the unpredictable prompt: never trained on it */
    lm_batcher_free(&b);
    lm_batcher_free(&hb);
    lm_examples_free(&ex);
    lm_examples_free(&held);
    lm_trainer_free(t);
    lm_model_free(&m);
}

/* The targets of masked-out positions cannot influence the gradient: changing them leaves the
 * gradient bit-identical; an all-zero mask gives an exactly zero gradient. */
static void test_mask_excludes_positions(void **state) {
    (void)state;
    lm_config c = tiny_cfg(0);
    lm_model m;
    sd_err err = {0};
    assert_int_equal(lm_model_init(&m, &c, 3, &err), SD_OK);
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = 2;
    o.seq_len = 8;
    lm_trainer *t;
    assert_int_equal(lm_trainer_new(&t, &m, &o, &err), SD_OK);
    sd_rng r;
    sd_rng_seed(&r, 8);
    int32_t tok[2 * 9];
    uint8_t mask[2 * 8];
    rand_tokens(&r, tok, mask, 2, 8, c.vocab_size);
    mask[7] = 0;  /* row 0's last position: its target is tok[8], read by no input */
    mask[15] = 0; /* row 1's last position: target tok[17] */
    float l1, l2;
    lm_trainer_grad(t, tok, mask, 1, &l1);
    float *g1 = sd_malloc(m.n_params * sizeof(float));
    memcpy(g1, t->grads, m.n_params * sizeof(float));
    tok[8] = (tok[8] + 5) % c.vocab_size;
    tok[17] = (tok[17] + 3) % c.vocab_size;
    lm_trainer_grad(t, tok, mask, 1, &l2);
    assert_true(l1 == l2);
    assert_memory_equal(g1, t->grads, m.n_params * sizeof(float));
    /* control: with the mask on, the same change does move the gradient */
    mask[7] = 1;
    lm_trainer_grad(t, tok, mask, 1, &l1);
    memcpy(g1, t->grads, m.n_params * sizeof(float));
    tok[8] = (tok[8] + 5) % c.vocab_size;
    lm_trainer_grad(t, tok, mask, 1, &l2);
    assert_true(memcmp(g1, t->grads, m.n_params * sizeof(float)) != 0);
    memset(mask, 0, sizeof mask);
    lm_trainer_grad(t, tok, mask, 1, &l1);
    assert_true(l1 == 0.0f);
    for (size_t i = 0; i < m.n_params; i++) assert_true(t->grads[i] == 0.0f);
    free(g1);
    lm_trainer_free(t);
    lm_model_free(&m);
}

/* ---------------------------------------------------------------- LoRA */

static void test_lora_frozen_base_and_merge(void **state) {
    (void)state;
    lm_config c = tiny_cfg(0);
    c.seq_len = 12;
    lm_model m;
    sd_err err = {0};
    assert_int_equal(lm_model_init(&m, &c, 21, &err), SD_OK);
    /* LoRA leaves the embeddings and output head frozen; at their init scale (std 0.02) the
     * logits cannot exceed ~0.3, so no adapter could make a confident prediction. Give the base a
     * "pretrained" head scale (std 1) instead. */
    for (size_t i = 0; i < (size_t)c.vocab_size * c.dim; i++) m.w.tok_emb[i] *= 50, m.w.out[i] *= 50;
    float *base = sd_malloc(m.n_params * sizeof(float));
    memcpy(base, m.params, m.n_params * sizeof(float));
    lm_examples ex;
    lm_examples_init(&ex);
    sd_rng r;
    sd_rng_seed(&r, 77);
    for (int k = 0; k < 200; k++) { /* a deterministic pattern: x, x+1, x+2, ... mod V */
        int32_t tok[12];
        int s = (int)sd_rng_below(&r, c.vocab_size);
        for (int i = 0; i < 12; i++) tok[i] = (s + i) % c.vocab_size;
        lm_examples_add(&ex, tok, NULL, 12);
    }
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = 8;
    o.seq_len = 11;
    o.steps = 100;
    o.warmup = 10;
    o.lr = 1e-2f;
    o.threads = 1;
    o.lora_rank = 4;
    o.lora_alpha = 8;
    lm_trainer *t;
    assert_int_equal(lm_trainer_new(&t, &m, &o, &err), SD_OK);
    lm_batcher b;
    assert_int_equal(lm_batcher_init(&b, &ex, o.batch, o.seq_len, 0, 1, &err), SD_OK);
    int32_t tok[8 * 12];
    uint8_t mask[8 * 11];
    lm_batcher_next(&b, tok, mask);
    float l0, l1, final;
    lm_trainer_forward(t, tok, mask, &l0);
    assert_int_equal(lm_train_run(t, &b, "lora", NULL, NULL, &final, NULL, &err), SD_OK);
    lm_trainer_forward(t, tok, mask, &l1);
    print_message("LoRA: loss %.3f -> %.3f\n", l0, l1);
    assert_true(l1 < 0.1f * l0); /* adapters learned */
    assert_memory_equal(base, m.params, m.n_params * sizeof(float)); /* base untouched */
    /* merged model (no adapters) gives the logits of base + adapters */
    size_t nl = (size_t)8 * 11 * c.vocab_size;
    float *adapted = sd_malloc(nl * sizeof(float));
    memcpy(adapted, t->logits, nl * sizeof(float)); /* softmax probabilities of the adapted model */
    lm_lora_merge(t->lora, &m);
    lm_train_opts o2 = o;
    o2.lora_rank = 0;
    lm_trainer *plain;
    assert_int_equal(lm_trainer_new(&plain, &m, &o2, &err), SD_OK);
    float l2;
    lm_trainer_forward(plain, tok, mask, &l2);
    double md = 0;
    for (size_t i = 0; i < nl; i++) md = fmax(md, fabs((double)adapted[i] - plain->logits[i]));
    print_message("LoRA merge: max |prob difference| %.2g, loss %.5f vs %.5f\n", md, l1, l2);
    assert_true(md < 1e-4); /* float32 reassociation (W + sBA) x vs W x + s B (A x) */
    assert_float_equal(l1, l2, 1e-4);
    lm_trainer_free(plain);
    free(adapted);
    free(base);
    lm_batcher_free(&b);
    lm_examples_free(&ex);
    lm_trainer_free(t);
    lm_model_free(&m);
}

/* The adapter GGUF carries llama.cpp's keys and tensor names/shapes, and the adapter values. */
static void test_lora_adapter_gguf(void **state) {
    (void)state;
    lm_config c = tiny_cfg(1);
    lm_lora lo;
    sd_err err = {0};
    assert_int_equal(lm_lora_init(&lo, &c, 3, 6.0f, 1, &err), SD_OK);
    for (size_t i = 0; i < lo.n_params; i++) lo.params[i] = (float)i * 1e-3f; /* B nonzero too */
    char dir[] = "/tmp/sdloraXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = sd_path_join(dir, "adapter.gguf");
    assert_int_equal(lm_lora_save_gguf(&lo, path, &err), SD_OK);
    gguf_file *g;
    assert_int_equal(gguf_open(&g, path, &err), SD_OK);
    char *s;
    assert_int_equal(gguf_get_str(g, "general.type", &s, &err), SD_OK);
    assert_string_equal(s, "adapter");
    free(s);
    assert_int_equal(gguf_get_str(g, "adapter.type", &s, &err), SD_OK);
    assert_string_equal(s, "lora");
    free(s);
    float alpha;
    assert_int_equal(gguf_get_f32(g, "adapter.lora.alpha", &alpha, &err), SD_OK);
    assert_true(alpha == 6.0f);
    assert_int_equal(gguf_n_tensors(g), 2 * LM_LORA_NTARGETS * c.n_layers);
    float *A, *B;
    int in, out;
    lm_lora_point(&lo, lo.params, 1, LM_LORA_W2, &A, &B, &in, &out); /* ffn_down: in = H, out = D */
    const gguf_tensor *ta = gguf_find_tensor(g, "blk.1.ffn_down.weight.lora_a");
    const gguf_tensor *tb = gguf_find_tensor(g, "blk.1.ffn_down.weight.lora_b");
    assert_non_null(ta);
    assert_non_null(tb);
    assert_true(ta->ne[0] == c.hidden_dim && ta->ne[1] == 3); /* ne = {in, r} */
    assert_true(tb->ne[0] == 3 && tb->ne[1] == c.dim);        /* ne = {r, out} */
    assert_memory_equal(ta->data, A, (size_t)3 * in * sizeof(float));
    assert_memory_equal(tb->data, B, (size_t)out * 3 * sizeof(float));
    assert_non_null(gguf_find_tensor(g, "blk.0.attn_k.weight.lora_b"));
    gguf_close(g);
    unlink(path);
    rmdir(dir);
    free(path);
    lm_lora_free(&lo);
}

/* ---------------------------------------------------------------- checkpoints */

/* Runs `steps` steps from a fresh model (seed 5) and returns the per-step losses in out; with
 * ckpt and split > 0 it stops after split steps, saves, rebuilds everything from scratch (with a
 * different init seed, which the checkpoint must override) and continues. */
static void run_losses(int lora, int steps, int split, const char *ckpt, float *out, float *final_params) {
    lm_config c = tiny_cfg(0);
    c.seq_len = 12;
    sd_err err = {0};
    lm_examples ex;
    lm_examples_init(&ex);
    sd_rng r;
    sd_rng_seed(&r, 3);
    for (int k = 0; k < 13; k++) { /* 13 examples of varied length: epochs wrap mid-batch */
        int32_t tok[12];
        int n = 4 + (int)sd_rng_below(&r, 9);
        for (int i = 0; i < n; i++) tok[i] = (int32_t)sd_rng_below(&r, c.vocab_size);
        lm_examples_add(&ex, tok, NULL, (size_t)n);
    }
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = 3;
    o.seq_len = 11;
    o.accum = 2;
    o.steps = steps;
    o.warmup = 3;
    o.lr = 5e-3f;
    o.lora_rank = lora ? 2 : 0;
    o.threads = 2; /* exercise the parallel kernels: resume must be exact with them too */
    int done = 0;
    for (int phase = 0; phase < 2; phase++) {
        lm_model m;
        assert_int_equal(lm_model_init(&m, &c, phase == 0 ? 5 : 6, &err), SD_OK);
        if (phase == 1 && lora) { /* the frozen base is not in the checkpoint: rebuild it the same */
            lm_model_free(&m);
            assert_int_equal(lm_model_init(&m, &c, 5, &err), SD_OK);
        }
        lm_trainer *t;
        assert_int_equal(lm_trainer_new(&t, &m, &o, &err), SD_OK);
        if (phase == 1 && lora) /* and the adapters of the fresh trainer differ until loaded */
            for (size_t i = 0; i < t->n_train; i++) t->train[i] += 1.0f;
        lm_batcher b;
        assert_int_equal(lm_batcher_init(&b, &ex, o.batch, o.seq_len, 0, 9, &err), SD_OK);
        if (phase == 1) {
            int rc = lm_checkpoint_load(t, &b, ckpt, &err);
            if (rc) print_error("%s\n", err.msg);
            assert_int_equal(rc, SD_OK);
            assert_int_equal(t->step, split);
        }
        int stop = (phase == 0 && split > 0) ? split : steps;
        int32_t tok[2 * 3 * 12];
        uint8_t mask[2 * 3 * 11];
        while (t->step < stop) {
            for (int k = 0; k < 2; k++) lm_batcher_next(&b, tok + k * 36, mask + k * 33);
            assert_int_equal(lm_trainer_step(t, tok, mask, &out[done++], &err), SD_OK);
        }
        if (phase == 0 && split > 0) assert_int_equal(lm_checkpoint_save(t, &b, ckpt, &err), SD_OK);
        if (t->step == steps) memcpy(final_params, t->train, t->n_train * sizeof(float));
        lm_batcher_free(&b);
        lm_trainer_free(t);
        lm_model_free(&m);
        if (!(split > 0)) break;
    }
    lm_examples_free(&ex);
}

static void test_checkpoint_exact_resume(void **state) {
    (void)state;
    char dir[] = "/tmp/sdckptXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *ck = sd_path_join(dir, "train.ckpt");
    for (int lora = 0; lora <= 1; lora++) {
        enum { N = 12, K = 5 };
        float full[N], resumed[N];
        size_t np = 20000; /* > any trainable block of tiny_cfg */
        float *pf = sd_calloc(np, sizeof(float)), *pr = sd_calloc(np, sizeof(float));
        run_losses(lora, N, 0, NULL, full, pf);
        run_losses(lora, N, K, ck, resumed, pr);
        for (int i = 0; i < N; i++) assert_true(full[i] == resumed[i]); /* bit-identical */
        assert_memory_equal(pf, pr, np * sizeof(float));
        assert_true(full[N - 1] < full[0]);
        free(pf), free(pr);
    }
    unlink(ck);
    rmdir(dir);
    free(ck);
}

static void test_checkpoint_refuses_bad_files(void **state) {
    (void)state;
    char dir[] = "/tmp/sdckptXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *ck = sd_path_join(dir, "c.ckpt"), *bad = sd_path_join(dir, "bad.ckpt");
    lm_config c = tiny_cfg(0);
    lm_model m, m2;
    sd_err err = {0};
    assert_int_equal(lm_model_init(&m, &c, 1, &err), SD_OK);
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = 2;
    o.seq_len = 8;
    lm_trainer *t, *t2;
    assert_int_equal(lm_trainer_new(&t, &m, &o, &err), SD_OK);
    assert_int_equal(lm_checkpoint_save(t, NULL, ck, &err), SD_OK);
    assert_int_equal(lm_checkpoint_load(t, NULL, ck, &err), SD_OK);
    /* another width */
    c.hidden_dim = 32;
    assert_int_equal(lm_model_init(&m2, &c, 1, &err), SD_OK);
    assert_int_equal(lm_trainer_new(&t2, &m2, &o, &err), SD_OK);
    assert_int_equal(lm_checkpoint_load(t2, NULL, ck, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "hidden_dim"));
    /* truncated, corrupted, foreign */
    char *data;
    size_t len;
    assert_int_equal(sd_read_file(ck, &data, &len, &err), SD_OK);
    assert_int_equal(sd_write_file_atomic(bad, data, len - 9, &err), SD_OK);
    assert_int_equal(lm_checkpoint_load(t, NULL, bad, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "truncated"));
    data[len / 2] ^= 0x40;
    assert_int_equal(sd_write_file_atomic(bad, data, len, &err), SD_OK);
    assert_int_equal(lm_checkpoint_load(t, NULL, bad, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "checksum"));
    assert_int_equal(sd_write_file_atomic(bad, "GGUF\3\0\0\0 not a checkpoint at all, really", 40, &err), SD_OK);
    assert_int_equal(lm_checkpoint_load(t, NULL, bad, &err), SD_ERR_FORMAT);
    free(data);
    unlink(ck), unlink(bad), rmdir(dir);
    free(ck), free(bad);
    lm_trainer_free(t), lm_trainer_free(t2);
    lm_model_free(&m), lm_model_free(&m2);
}

/* ---------------------------------------------------------------- schedule, batcher, config */

static void test_schedule(void **state) {
    (void)state;
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.lr = 1.0f, o.min_lr = 0.1f, o.warmup = 4, o.steps = 14;
    assert_float_equal(lm_train_lr(&o, 0), 0.25f, 1e-7);
    assert_float_equal(lm_train_lr(&o, 3), 1.0f, 1e-7);
    assert_float_equal(lm_train_lr(&o, 4), 1.0f, 1e-7);      /* cosine starts at the peak */
    assert_float_equal(lm_train_lr(&o, 13), 0.1f, 1e-6);     /* and ends at min_lr */
    assert_float_equal(lm_train_lr(&o, 8), 0.1f + 0.9f * 0.5f * (1 + cosf((float)M_PI * 4 / 9)), 1e-6);
}

static void test_batcher(void **state) {
    (void)state;
    lm_examples ex;
    lm_examples_init(&ex);
    int32_t a[3] = {1, 2, 3}, bb[6] = {4, 5, 6, 7, 8, 9};
    uint8_t tb[6] = {0, 0, 0, 1, 1, 1};
    lm_examples_add(&ex, a, NULL, 3);
    lm_examples_add(&ex, bb, tb, 6);
    lm_batcher b;
    sd_err err = {0};
    assert_int_equal(lm_batcher_init(&b, &ex, 2, 4, 99, 1, &err), SD_OK);
    int32_t tok[2 * 5];
    uint8_t mask[2 * 4];
    lm_batcher_next(&b, tok, mask);
    for (int row = 0; row < 2; row++) {
        int32_t *tr = tok + row * 5;
        uint8_t *mr = mask + row * 4;
        if (tr[0] == 1) { /* short example: padded, pads masked out */
            int32_t want[5] = {1, 2, 3, 99, 99};
            uint8_t wm[4] = {1, 1, 0, 0};
            assert_memory_equal(tr, want, sizeof want);
            assert_memory_equal(mr, wm, sizeof wm);
        } else { /* long example: cut to T+1, mask follows the target flags */
            int32_t want[5] = {4, 5, 6, 7, 8};
            uint8_t wm[4] = {0, 0, 1, 1};
            assert_memory_equal(tr, want, sizeof want);
            assert_memory_equal(mr, wm, sizeof wm);
        }
    }
    assert_true(tok[0] != tok[5]); /* one of each per epoch */
    /* epochs reshuffle deterministically; seek reproduces any position */
    int32_t seq[8 * 10], seq2[8 * 10]; /* 8 batches of 2 rows of T+1 */
    for (int k = 0; k < 8; k++) lm_batcher_next(&b, seq + k * 10, mask);
    lm_batcher_seek(&b, 1, 0);
    for (int k = 0; k < 8; k++) lm_batcher_next(&b, seq2 + k * 10, mask);
    assert_memory_equal(seq, seq2, sizeof seq);
    int differ = 0; /* and the epochs are not all in the same order (2 examples: 1/2 chance each) */
    for (int k = 1; k < 8; k++) differ |= seq[k * 10] != seq[0];
    assert_true(differ);
    lm_batcher_free(&b);
    lm_examples_free(&ex);
}

/* SFT examples: BOS prompt answer EOS, targets exactly on the answer and EOS, control tokens
 * parsed, over-long examples cut from the left. */
static void test_sft_examples(void **state) {
    (void)state;
    const char *text = "the cat sat on the mat. the dog sat on the log. a cat and a dog.";
    lm_tokenizer *tok;
    sd_err err = {0};
    assert_int_equal(tok_train(text, strlen(text), 300, &tok, &err), SD_OK);
    lm_examples ex;
    lm_examples_init(&ex);
    assert_int_equal(lm_examples_add_sft(&ex, tok, "<|ctx|>the cat<|ans|>", "the dog", 0), 0);
    const int32_t *ids = ex.tok.data;
    const uint8_t *tgt = ex.tgt.data;
    size_t n = ex.tok.len, np = 0, na = 0;
    size_t pn = 0, an = 0;
    int32_t p[64], a[64];
    tok_encode(tok, "the cat", 7, p, 64, &pn, 0);
    tok_encode(tok, "the dog", 7, a, 64, &an, 0);
    assert_int_equal(n, 1 + 1 + pn + 1 + an + 1); /* BOS ctx prompt ans answer EOS */
    assert_int_equal(ids[0], tok_bos(tok));
    assert_int_equal(ids[1], tok_special(tok, "<|ctx|>"));
    assert_int_equal(ids[2 + pn], tok_special(tok, "<|ans|>"));
    assert_int_equal(ids[n - 1], tok_eos(tok));
    for (size_t i = 0; i < n; i++) {
        if (tgt[i]) na++;
        else np++;
    }
    assert_int_equal(np, n - an - 1);
    assert_int_equal(na, an + 1); /* the answer and EOS */
    for (size_t i = 0; i < an; i++) assert_int_equal(ids[3 + pn + i], a[i]), assert_true(tgt[3 + pn + i]);
    assert_int_equal(lm_examples_add_sft(&ex, tok, "<|ctx|>the cat sat on the mat<|ans|>", "the dog", 5), 1);
    assert_int_equal(ex.tok.len - n, 5);
    assert_int_equal(((const int32_t *)ex.tok.data)[ex.tok.len - 1], tok_eos(tok)); /* kept the end */
    lm_examples_free(&ex);
    tok_free(tok);
}

static void test_config_and_init(void **state) {
    (void)state;
    lm_config c = tiny_cfg(0);
    sd_err err = {0};
    assert_int_equal(lm_config_check(&c, &err), SD_OK);
    lm_config bad = c;
    bad.n_kv_heads = 3;
    assert_int_equal(lm_config_check(&bad, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "n_kv_heads"));
    bad = c;
    bad.dim = 12; /* head_dim 3 is odd */
    assert_int_equal(lm_config_check(&bad, &err), SD_ERR_USAGE);
    /* count: V*D + L*(2D + 2D*D + 2*KvD*D + 3*H*D) + D + V*D */
    size_t D = 16, L = 2, H = 24, V = 17, KvD = 8;
    assert_int_equal(lm_param_count(&c), V * D + L * (2 * D + 2 * D * D + 2 * KvD * D + 3 * H * D) + D + V * D);
    c.tied = 1;
    assert_int_equal(lm_param_count(&c), V * D + L * (2 * D + 2 * D * D + 2 * KvD * D + 3 * H * D) + D);
    lm_model a, b;
    assert_int_equal(lm_model_init(&a, &c, 4, &err), SD_OK);
    assert_int_equal(lm_model_init(&b, &c, 4, &err), SD_OK);
    assert_memory_equal(a.params, b.params, a.n_params * sizeof(float));
    assert_true(a.w.out == a.w.tok_emb);
    assert_true(a.w.out_norm + D == a.params + a.n_params); /* layout ends exactly at the block end */
    assert_true(a.w.ffn_norm[3] == 1.0f && a.w.attn_norm[0] == 1.0f);
    double s = 0; /* wo is scaled by 1/sqrt(2L): std 0.01 here */
    for (size_t i = 0; i < L * D * D; i++) s += (double)a.w.wo[i] * a.w.wo[i];
    assert_float_equal(sqrt(s / (L * D * D)), 0.01, 0.0015);
    lm_model_free(&a), lm_model_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_init),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_batcher),
        cmocka_unit_test(test_sft_examples),
        cmocka_unit_test(test_model_gradients_fd),
        cmocka_unit_test(test_lora_gradients_fd),
        cmocka_unit_test(test_grad_accumulation_equals_big_batch),
        cmocka_unit_test(test_mask_excludes_positions),
        cmocka_unit_test(test_checkpoint_exact_resume),
        cmocka_unit_test(test_checkpoint_refuses_bad_files),
        cmocka_unit_test(test_lora_frozen_base_and_merge),
        cmocka_unit_test(test_lora_adapter_gguf),
        cmocka_unit_test(test_learns_reverse_only_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
