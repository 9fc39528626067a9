/* lora.c - rank-r LoRA adapters for the seven projections of every layer (lm_train.h): layout,
 * initialisation, merging into the base weights, and saving as a llama.cpp LoRA adapter GGUF.
 * The forward/backward through an adapter lives in train.c beside the projection it adapts. */
#include "serendip/lm_train.h"

#include "serendip/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp tensor name stem of each target, in enum order. */
static const char *const lora_names[LM_LORA_NTARGETS] = {"attn_q",      "attn_k",   "attn_v", "attn_output",
                                                         "ffn_gate",    "ffn_down", "ffn_up"};

/* (in, out) of target t for config c. */
static void target_shape(const lm_config *c, int t, int *in, int *out) {
    int D = c->dim, H = c->hidden_dim, KvD = lm_kv_dim(c);
    switch (t) {
    case LM_LORA_WQ: case LM_LORA_WO: *in = D, *out = D; break;
    case LM_LORA_WK: case LM_LORA_WV: *in = D, *out = KvD; break;
    case LM_LORA_W1: case LM_LORA_W3: *in = D, *out = H; break;
    default: *in = H, *out = D; break; /* W2 */
    }
}

/* Floats of one layer's adapters. */
static size_t layer_size(const lm_config *c, int r) {
    size_t n = 0;
    for (int t = 0; t < LM_LORA_NTARGETS; t++) {
        int in, out;
        target_shape(c, t, &in, &out);
        n += (size_t)r * (in + out);
    }
    return n;
}

void lm_lora_point(const lm_lora *lo, float *base, int l, int t, float **A, float **B, int *in, int *out) {
    float *p = base + (size_t)l * layer_size(&lo->cfg, lo->rank);
    for (int k = 0; k < t; k++) {
        int i, o;
        target_shape(&lo->cfg, k, &i, &o);
        p += (size_t)lo->rank * (i + o);
    }
    target_shape(&lo->cfg, t, in, out);
    *A = p;
    *B = p + (size_t)lo->rank * *in;
}

float *lm_lora_base_matrix(const lm_weights *w, const lm_config *c, int l, int t) {
    int in, out;
    target_shape(c, t, &in, &out);
    size_t off = (size_t)l * in * out;
    switch (t) {
    case LM_LORA_WQ: return w->wq + off;
    case LM_LORA_WK: return w->wk + off;
    case LM_LORA_WV: return w->wv + off;
    case LM_LORA_WO: return w->wo + off;
    case LM_LORA_W1: return w->w1 + off;
    case LM_LORA_W2: return w->w2 + off;
    default: return w->w3 + off;
    }
}

/* A ~ N(0, 1/sqrt(in)) (the Kaiming-style fan-in scale of the LoRA paper's code), B = 0. */
int lm_lora_init(lm_lora *lo, const lm_config *cfg, int rank, float alpha, uint64_t seed, sd_err *err) {
    memset(lo, 0, sizeof *lo);
    int rc = lm_config_check(cfg, err);
    if (rc) return rc;
    if (rank <= 0) return sd_fail(err, SD_ERR_USAGE, "LoRA rank %d must be positive", rank);
    if (rank > cfg->dim) return sd_fail(err, SD_ERR_USAGE, "LoRA rank %d exceeds the model width %d", rank, cfg->dim);
    if (!(alpha > 0)) return sd_fail(err, SD_ERR_USAGE, "LoRA alpha %g must be positive", (double)alpha);
    lo->cfg = *cfg;
    lo->rank = rank;
    lo->alpha = alpha;
    lo->n_params = (size_t)cfg->n_layers * layer_size(cfg, rank);
    lo->params = sd_calloc(lo->n_params, sizeof(float));
    sd_rng r;
    sd_rng_seed(&r, seed);
    for (int l = 0; l < cfg->n_layers; l++)
        for (int t = 0; t < LM_LORA_NTARGETS; t++) {
            float *A, *B;
            int in, out;
            lm_lora_point(lo, lo->params, l, t, &A, &B, &in, &out);
            double std = 1.0 / sqrt((double)in);
            for (size_t i = 0; i < (size_t)rank * in; i++) A[i] = (float)(sd_rng_normal(&r) * std);
        }
    return SD_OK;
}

void lm_lora_free(lm_lora *lo) {
    free(lo->params);
    memset(lo, 0, sizeof *lo);
}

/* m must hold F32 matrices (lm_model_to_f32 a quantized base first).
 * W (out, in) += (alpha/r) B (out, r) A (r, in), in double per element for an exact-as-possible
 * merge; cost L * 7 * out * in * r, small next to training. */
void lm_lora_merge(const lm_lora *lo, lm_model *m) {
    double scale = (double)lo->alpha / lo->rank;
    for (int l = 0; l < lo->cfg.n_layers; l++)
        for (int t = 0; t < LM_LORA_NTARGETS; t++) {
            float *A, *B;
            int in, out;
            lm_lora_point(lo, lo->params, l, t, &A, &B, &in, &out);
            float *W = lm_lora_base_matrix(&m->w, &m->cfg, l, t);
#pragma omp parallel for schedule(static)
            for (int o = 0; o < out; o++)
                for (int i = 0; i < in; i++) {
                    double s = 0;
                    for (int k = 0; k < lo->rank; k++) s += (double)B[(size_t)o * lo->rank + k] * A[(size_t)k * in + i];
                    W[(size_t)o * in + i] = (float)(W[(size_t)o * in + i] + scale * s);
                }
        }
}

int lm_lora_save_gguf(const lm_lora *lo, const char *path, sd_err *err) {
    gguf_writer *w = gguf_writer_new();
    int qwen = lo->cfg.arch == LM_ARCH_QWEN2, hd = lm_head_dim(&lo->cfg);
    gguf_set_str(w, "general.architecture", qwen ? "qwen2" : "llama");
    gguf_set_str(w, "general.type", "adapter");
    gguf_set_str(w, "adapter.type", "lora");
    gguf_set_f32(w, "adapter.lora.alpha", lo->alpha);
    int rc = SD_OK, n_perm = 0;
    float **perm = sd_calloc(2 * (size_t)lo->cfg.n_layers + 1, sizeof *perm); /* permuted copies, alive until written */
    for (int l = 0; l < lo->cfg.n_layers && !rc; l++)
        for (int t = 0; t < LM_LORA_NTARGETS && !rc; t++) {
            float *A, *B;
            int in, out;
            lm_lora_point(lo, lo->params, l, t, &A, &B, &in, &out);
            char name[96];
            int64_t nea[2] = {in, lo->rank}, neb[2] = {lo->rank, out};
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", l, lora_names[t]);
            rc = gguf_add_tensor(w, name, GGUF_TENSOR_F32, 2, nea, A, err);
            if (rc) break;
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", l, lora_names[t]);
            if (qwen && (t == LM_LORA_WQ || t == LM_LORA_WK)) {
                /* B's rows follow the base's q/k rows: back to the file's NEOX order (lm.h) */
                float *Bf = sd_malloc((size_t)out * lo->rank * sizeof(float));
                for (int o = 0; o < out; o++)
                    memcpy(Bf + lm_qwen2_file_row(o, hd) * lo->rank, B + (size_t)o * lo->rank, lo->rank * sizeof(float));
                perm[n_perm++] = Bf;
                B = Bf;
            }
            rc = gguf_add_tensor(w, name, GGUF_TENSOR_F32, 2, neb, B, err);
        }
    if (!rc) rc = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    for (int i = 0; i < n_perm; i++) free(perm[i]);
    free(perm);
    return rc;
}
