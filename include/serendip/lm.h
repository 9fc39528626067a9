/* lm.h - the Llama-architecture decoder shared by training, inference and GGUF I/O.
 *
 * One model = a config + one float block holding every parameter, which lm_weights points into
 * (llm.c style: one allocation per object class). Matrices are row-major [out][in], which is the
 * memory layout GGUF/ggml uses for a tensor with ne = {in, out}, so weights go to and from GGUF
 * without transposition.
 *
 * Conventions fixed here because training, inference and llama.cpp must agree on them:
 *  - RMSNorm: y = x / sqrt(mean(x^2) + norm_eps) * g
 *  - RoPE rotates adjacent pairs (x[2i], x[2i+1]) of each head with angle pos * theta^(-2i/head_dim)
 *    (llama.cpp's LLAMA_ROPE_TYPE_NORM, used by the `llama` architecture).
 *  - Grouped-query attention: query head h reads kv head h / (n_heads / n_kv_heads).
 *  - Feed-forward: w2( silu(w1 x) * (w3 x) ); w1 = gate, w3 = up, w2 = down.
 *  - Tied output: when cfg.tied, out == tok_emb and the block stores it once. */
#ifndef SERENDIP_LM_H
#define SERENDIP_LM_H

#include "serendip/base.h"

typedef struct {
    int32_t dim;        /* D, model width */
    int32_t n_layers;   /* L */
    int32_t n_heads;    /* query heads; head_dim = D / n_heads */
    int32_t n_kv_heads; /* key/value heads, divides n_heads */
    int32_t hidden_dim; /* H, feed-forward width */
    int32_t vocab_size; /* V */
    int32_t seq_len;    /* maximum context length (T) */
    int32_t tied;       /* 1: output head shares tok_emb */
    float norm_eps;     /* 1e-5 */
    float rope_theta;   /* 10000 */
} lm_config;

static inline int lm_head_dim(const lm_config *c) { return c->dim / c->n_heads; }
static inline int lm_kv_dim(const lm_config *c) { return lm_head_dim(c) * c->n_kv_heads; }

typedef struct {
    float *tok_emb;   /* (V, D) */
    float *attn_norm; /* (L, D) */
    float *wq;        /* (L, D, D)     [out][in] */
    float *wk;        /* (L, KvD, D) */
    float *wv;        /* (L, KvD, D) */
    float *wo;        /* (L, D, D) */
    float *ffn_norm;  /* (L, D) */
    float *w1;        /* (L, H, D)  gate */
    float *w2;        /* (L, D, H)  down */
    float *w3;        /* (L, H, D)  up */
    float *out_norm;  /* (D) */
    float *out;       /* (V, D), == tok_emb when tied */
} lm_weights;

typedef struct {
    lm_config cfg;
    lm_weights w;
    float *params;     /* the one block, n_params floats */
    size_t n_params;
    int owns_params;   /* 0 when params points into a mapping */
} lm_model;

/* Validates a config (positive sizes, divisibility, even head_dim); fills err naming the field. */
int lm_config_check(const lm_config *c, sd_err *err);
/* Number of floats in the parameter block for c. */
size_t lm_param_count(const lm_config *c);
/* Points w's tensors into base (n = lm_param_count floats) in the order listed above. */
void lm_weights_point(lm_weights *w, const lm_config *c, float *base);
/* Allocates and initialises (norm gains 1, matrices N(0, 0.02), output projections scaled by
 * 1/sqrt(2L) as in GPT-2), deterministic for seed. */
int lm_model_init(lm_model *m, const lm_config *c, uint64_t seed, sd_err *err);
void lm_model_free(lm_model *m);

#endif
