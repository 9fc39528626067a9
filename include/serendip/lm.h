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
 *  - Tied output: when cfg.tied, out == tok_emb and the block stores it once.
 *  - qwen2 (cfg.arch LM_ARCH_QWEN2): the same plus biases on q, k, v (added before RoPE). Its
 *    files use llama.cpp's NEOX RoPE (pairs (x[i], x[i + hd/2])); the loader permutes the rows of
 *    wq, wk (and bq, bk) of every head into the adjacent-pair order above, the writer back, so
 *    one RoPE serves both (attention scores are invariant under a common permutation of q, k).
 *  - Quantized base (m->qm non-NULL): the matrices stay in their GGUF encoding (lm_quant.h) and
 *    are reached through lm_model_mat; the float block then holds only norms and biases. */
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
    int32_t arch;       /* LM_ARCH_LLAMA (0) or LM_ARCH_QWEN2 (q, k, v biases) */
} lm_config;

#define LM_ARCH_LLAMA 0
#define LM_ARCH_QWEN2 1

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
    float *bq;        /* (L, D)   qwen2 only, else NULL (after out in the block) */
    float *bk;        /* (L, KvD) */
    float *bv;        /* (L, KvD) */
} lm_weights;

/* A weight matrix in one of lm_quant.h's encodings (F32, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K):
 * rows x cols, row r at data + r * row_bytes. */
typedef struct {
    uint32_t type;     /* ggml type number (LM_Q_*) */
    int32_t rows, cols;
    size_t row_bytes;
    const void *data;  /* borrowed */
} lm_qmat;

/* Matrices of a layer (same order as lm_train.h's LoRA targets) and the two global ones. */
enum { LM_MAT_WQ, LM_MAT_WK, LM_MAT_WV, LM_MAT_WO, LM_MAT_W1, LM_MAT_W2, LM_MAT_W3, LM_MAT_PER_LAYER,
       LM_MAT_EMB = LM_MAT_PER_LAYER, LM_MAT_OUT };

typedef struct {
    lm_config cfg;
    lm_weights w;
    float *params;     /* the one block, n_params floats */
    size_t n_params;
    int owns_params;   /* 0 when params points into a mapping */
    lm_qmat *qm;       /* NULL, or a quantized base: 7 L + 2 typed matrices (layer l's matrix t at
                          7 l + t, then tok_emb, out); w's matrix pointers are then NULL */
    void *qdata;       /* owned bytes of qm's matrices */
    size_t qbytes;
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

/* Floats of the block of a quantized base: norms, then biases (qwen2). */
size_t lm_norm_param_count(const lm_config *c);
/* Points the norms and biases of w into base (lm_norm_param_count floats); matrices NULL. */
void lm_weights_point_norms(lm_weights *w, const lm_config *c, float *base);
/* Matrix `which` (LM_MAT_*) of layer l (ignored for LM_MAT_EMB / LM_MAT_OUT): the quantized one,
 * or an F32 view into the float block. */
lm_qmat lm_model_mat(const lm_model *m, int l, int which);
/* qwen2: the file row (NEOX order) of serendip's row r of a q or k matrix or bias; hd = head_dim.
 * Row 2i + j of a head is row i + j hd/2 of the same head in the file. */
static inline int64_t lm_qwen2_file_row(int64_t r, int hd) {
    int64_t h = r / hd, k = r % hd;
    return h * hd + k / 2 + (k % 2) * (hd / 2);
}
/* A full F32 copy of m (dequantising a quantized base) into *out, owned. */
void lm_model_to_f32(lm_model *out, const lm_model *m);

#endif
