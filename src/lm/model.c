/* model.c - the Llama model's config validation, parameter layout and initialisation (lm.h).
 *
 * All parameters live in one float block (llm.c style); lm_weights_point carves it into named
 * tensors in the fixed order of lm.h, which is also the order the trainer's gradient and AdamW
 * blocks use, so a parameter and its gradient sit at the same offset. */
#include "serendip/lm.h"

#include "serendip/lm_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Initial standard deviation of every matrix (GPT-2 / llm.c). */
#define LM_INIT_STD 0.02

/* Returns SD_OK when every size is positive and the divisibility rules of lm.h hold; otherwise
 * SD_ERR_USAGE with the offending field named in err. */
int lm_config_check(const lm_config *c, sd_err *err) {
    if (c->dim <= 0) return sd_fail(err, SD_ERR_USAGE, "model config: dim %d must be positive", c->dim);
    if (c->n_layers <= 0) return sd_fail(err, SD_ERR_USAGE, "model config: n_layers %d must be positive", c->n_layers);
    if (c->n_heads <= 0) return sd_fail(err, SD_ERR_USAGE, "model config: n_heads %d must be positive", c->n_heads);
    if (c->n_kv_heads <= 0)
        return sd_fail(err, SD_ERR_USAGE, "model config: n_kv_heads %d must be positive", c->n_kv_heads);
    if (c->hidden_dim <= 0)
        return sd_fail(err, SD_ERR_USAGE, "model config: hidden_dim %d must be positive", c->hidden_dim);
    if (c->vocab_size <= 0)
        return sd_fail(err, SD_ERR_USAGE, "model config: vocab_size %d must be positive", c->vocab_size);
    if (c->seq_len <= 0) return sd_fail(err, SD_ERR_USAGE, "model config: seq_len %d must be positive", c->seq_len);
    if (c->dim % c->n_heads)
        return sd_fail(err, SD_ERR_USAGE, "model config: dim %d is not a multiple of n_heads %d", c->dim, c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        return sd_fail(err, SD_ERR_USAGE, "model config: n_heads %d is not a multiple of n_kv_heads %d", c->n_heads,
                       c->n_kv_heads);
    if (lm_head_dim(c) % 2)
        return sd_fail(err, SD_ERR_USAGE, "model config: head_dim %d (dim/n_heads) must be even for RoPE",
                       lm_head_dim(c));
    if (c->tied != 0 && c->tied != 1) return sd_fail(err, SD_ERR_USAGE, "model config: tied %d must be 0 or 1", c->tied);
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return sd_fail(err, SD_ERR_USAGE, "model config: norm_eps %g must be a positive number", (double)c->norm_eps);
    if (c->arch != LM_ARCH_LLAMA && c->arch != LM_ARCH_QWEN2)
        return sd_fail(err, SD_ERR_USAGE, "model config: arch %d is neither llama (0) nor qwen2 (1)", c->arch);
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return sd_fail(err, SD_ERR_USAGE, "model config: rope_theta %g must be a positive number", (double)c->rope_theta);
    return SD_OK;
}

/* Floats in the block: sizes in the order of lm_weights. */
size_t lm_param_count(const lm_config *c) {
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers, H = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
    size_t KvD = (size_t)lm_kv_dim(c);
    size_t n = V * D;                              /* tok_emb */
    n += L * D;                                    /* attn_norm */
    n += L * D * D + 2 * L * KvD * D + L * D * D;  /* wq wk wv wo */
    n += L * D;                                    /* ffn_norm */
    n += 3 * L * H * D;                            /* w1 w2 w3 */
    n += D;                                        /* out_norm */
    if (!c->tied) n += V * D;                      /* out */
    if (c->arch == LM_ARCH_QWEN2) n += L * (D + 2 * KvD); /* bq bk bv */
    return n;
}

void lm_weights_point(lm_weights *w, const lm_config *c, float *base) {
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers, H = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
    size_t KvD = (size_t)lm_kv_dim(c);
    float *p = base;
    w->tok_emb = p; p += V * D;
    w->attn_norm = p; p += L * D;
    w->wq = p; p += L * D * D;
    w->wk = p; p += L * KvD * D;
    w->wv = p; p += L * KvD * D;
    w->wo = p; p += L * D * D;
    w->ffn_norm = p; p += L * D;
    w->w1 = p; p += L * H * D;
    w->w2 = p; p += L * D * H;
    w->w3 = p; p += L * H * D;
    w->out_norm = p; p += D;
    if (c->tied) {
        w->out = w->tok_emb;
    } else {
        w->out = p;
        p += V * D;
    }
    w->bq = w->bk = w->bv = NULL;
    if (c->arch == LM_ARCH_QWEN2) {
        w->bq = p; p += L * D;
        w->bk = p; p += L * KvD;
        w->bv = p; p += L * KvD;
    }
}

size_t lm_norm_param_count(const lm_config *c) {
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers, KvD = (size_t)lm_kv_dim(c);
    return 2 * L * D + D + (c->arch == LM_ARCH_QWEN2 ? L * (D + 2 * KvD) : 0);
}

void lm_weights_point_norms(lm_weights *w, const lm_config *c, float *base) {
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers, KvD = (size_t)lm_kv_dim(c);
    memset(w, 0, sizeof *w);
    float *p = base;
    w->attn_norm = p; p += L * D;
    w->ffn_norm = p; p += L * D;
    w->out_norm = p; p += D;
    if (c->arch == LM_ARCH_QWEN2) {
        w->bq = p; p += L * D;
        w->bk = p; p += L * KvD;
        w->bv = p; p += L * KvD;
    }
}

/* (rows, cols) of matrix `which` and its F32 storage in w (NULL for a quantized base). */
static const float *mat_f32(const lm_weights *w, const lm_config *c, int l, int which, int *rows, int *cols) {
    size_t D = (size_t)c->dim, H = (size_t)c->hidden_dim, KvD = (size_t)lm_kv_dim(c);
    size_t L = (size_t)l;
    switch (which) {
    case LM_MAT_WQ: *rows = (int)D, *cols = (int)D; return w->wq ? w->wq + L * D * D : NULL;
    case LM_MAT_WK: *rows = (int)KvD, *cols = (int)D; return w->wk ? w->wk + L * KvD * D : NULL;
    case LM_MAT_WV: *rows = (int)KvD, *cols = (int)D; return w->wv ? w->wv + L * KvD * D : NULL;
    case LM_MAT_WO: *rows = (int)D, *cols = (int)D; return w->wo ? w->wo + L * D * D : NULL;
    case LM_MAT_W1: *rows = (int)H, *cols = (int)D; return w->w1 ? w->w1 + L * H * D : NULL;
    case LM_MAT_W2: *rows = (int)D, *cols = (int)H; return w->w2 ? w->w2 + L * D * H : NULL;
    case LM_MAT_W3: *rows = (int)H, *cols = (int)D; return w->w3 ? w->w3 + L * H * D : NULL;
    case LM_MAT_EMB: *rows = c->vocab_size, *cols = (int)D; return w->tok_emb;
    default: *rows = c->vocab_size, *cols = (int)D; return w->out;
    }
}

lm_qmat lm_model_mat(const lm_model *m, int l, int which) {
    if (m->qm) return which >= LM_MAT_PER_LAYER ? m->qm[LM_MAT_PER_LAYER * m->cfg.n_layers + (which - LM_MAT_EMB)]
                                                : m->qm[LM_MAT_PER_LAYER * l + which];
    int rows, cols;
    const float *p = mat_f32(&m->w, &m->cfg, l, which, &rows, &cols);
    return lm_qmat_f32(p, rows, cols);
}

/* Dequantises every matrix into a fresh F32 block; norms and biases copied. */
void lm_model_to_f32(lm_model *out, const lm_model *m) {
    const lm_config *c = &m->cfg;
    memset(out, 0, sizeof *out);
    out->cfg = *c;
    out->n_params = lm_param_count(c);
    out->params = sd_malloc(out->n_params * sizeof(float));
    out->owns_params = 1;
    lm_weights_point(&out->w, c, out->params);
    if (!m->qm) {
        memcpy(out->params, m->params, out->n_params * sizeof(float));
        return;
    }
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers, KvD = (size_t)lm_kv_dim(c);
    memcpy(out->w.attn_norm, m->w.attn_norm, L * D * sizeof(float));
    memcpy(out->w.ffn_norm, m->w.ffn_norm, L * D * sizeof(float));
    memcpy(out->w.out_norm, m->w.out_norm, D * sizeof(float));
    if (c->arch == LM_ARCH_QWEN2) {
        memcpy(out->w.bq, m->w.bq, L * D * sizeof(float));
        memcpy(out->w.bk, m->w.bk, L * KvD * sizeof(float));
        memcpy(out->w.bv, m->w.bv, L * KvD * sizeof(float));
    }
    for (int l = 0; l <= c->n_layers; l++)
        for (int t = 0; t < LM_MAT_PER_LAYER; t++) {
            int which = l < c->n_layers ? t : LM_MAT_EMB + t;
            if (l == c->n_layers && (t > 1 || (t == 1 && c->tied))) break;
            int rows, cols;
            float *dst = (float *)mat_f32(&out->w, c, l, which, &rows, &cols);
            lm_qmat q = lm_model_mat(m, l, which);
#pragma omp parallel for schedule(static)
            for (int r = 0; r < rows; r++) lm_qmat_get_row(&q, r, dst + (size_t)r * cols);
        }
}

static void fill_normal(float *x, size_t n, double std, sd_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(sd_rng_normal(r) * std);
}

static void fill_const(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

/* Allocates m->params and initialises it deterministically from seed: one xoshiro stream consumed
 * tensor by tensor in lm.h order. Norm gains 1; matrices N(0, 0.02); wo and w2 (the projections
 * that write into the residual stream) N(0, 0.02/sqrt(2L)). */
int lm_model_init(lm_model *m, const lm_config *c, uint64_t seed, sd_err *err) {
    memset(m, 0, sizeof *m);
    int rc = lm_config_check(c, err);
    if (rc) return rc;
    m->cfg = *c;
    m->n_params = lm_param_count(c);
    m->params = sd_malloc(m->n_params * sizeof(float));
    m->owns_params = 1;
    lm_weights_point(&m->w, c, m->params);
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers, H = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
    size_t KvD = (size_t)lm_kv_dim(c);
    double proj_std = LM_INIT_STD / sqrt(2.0 * (double)L);
    sd_rng r;
    sd_rng_seed(&r, seed);
    fill_normal(m->w.tok_emb, V * D, LM_INIT_STD, &r);
    fill_const(m->w.attn_norm, L * D, 1.0f);
    fill_normal(m->w.wq, L * D * D, LM_INIT_STD, &r);
    fill_normal(m->w.wk, L * KvD * D, LM_INIT_STD, &r);
    fill_normal(m->w.wv, L * KvD * D, LM_INIT_STD, &r);
    fill_normal(m->w.wo, L * D * D, proj_std, &r);
    fill_const(m->w.ffn_norm, L * D, 1.0f);
    fill_normal(m->w.w1, L * H * D, LM_INIT_STD, &r);
    fill_normal(m->w.w2, L * D * H, proj_std, &r);
    fill_normal(m->w.w3, L * H * D, LM_INIT_STD, &r);
    fill_const(m->w.out_norm, D, 1.0f);
    if (!c->tied) fill_normal(m->w.out, V * D, LM_INIT_STD, &r);
    if (c->arch == LM_ARCH_QWEN2) /* last, so a llama config draws the same stream as before */
        fill_normal(m->w.bq, L * (D + 2 * KvD), LM_INIT_STD, &r);
    return SD_OK;
}

/* Frees the block when the model owns it; leaves m zeroed. Safe on a zeroed model. */
void lm_model_free(lm_model *m) {
    if (m->owns_params) free(m->params);
    free(m->qm);
    free(m->qdata);
    memset(m, 0, sizeof *m);
}
