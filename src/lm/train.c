/* train.c - training the lm.h decoder (lm_train.h): the model's forward and backward passes over
 * a micro-batch, AdamW with warm-up + cosine schedule, global-norm clipping, gradient
 * accumulation, full or LoRA training, versioned checkpoints with exact resume, and a batcher.
 *
 * Memory follows llm.c: parameters (the model's block), gradients, AdamW m and v each live in one
 * allocation, and all activations of a (B, T) micro-batch in one more, sized at lm_trainer_new;
 * the step loop allocates nothing. Determinism: the kernels in ops.c are schedule-independent,
 * and the reductions here (loss, gradient norm) sum fixed chunks in a fixed order. */
#include "serendip/lm_train.h"

#include "serendip/lm_ops.h"
#include "serendip/mpi.h"
#include "serendip/lm_quant.h"
#include "serendip/tokenizer.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ================================================================ options and schedule */

void lm_train_opts_default(lm_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->lr = 1e-3f;
    o->min_lr = 1e-4f;
    o->warmup = 20;
    o->steps = 200;
    o->batch = 8;
    o->seq_len = 128;
    o->accum = 1;
    o->weight_decay = 0.1f;
    o->clip = 1.0f;
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->seed = 1;
    o->lora_rank = 0;
    o->lora_alpha = 16.0f;
    o->threads = 0;
}

/* Linear warm-up over `warmup` steps to lr, then cosine from lr down to min_lr at the last step. */
float lm_train_lr(const lm_train_opts *o, int step) {
    if (step < o->warmup) return o->lr * (float)(step + 1) / (float)o->warmup;
    int span = o->steps - 1 - o->warmup;
    if (span <= 0) return o->lr;
    double r = (double)(step - o->warmup) / span;
    if (r > 1) r = 1;
    return (float)(o->min_lr + 0.5 * (1.0 + cos(M_PI * r)) * (o->lr - o->min_lr));
}

/* ================================================================ activations */

struct lm_acts {
    float *block; /* the one allocation */
    /* saved by the forward pass, per layer l (arrays of L pointers into block) */
    float **x;     /* (L+1) x (N, D): residual stream entering layer l; x[L] leaves the last */
    float **rstd1, **xn1;  /* (N), (N, D) attention RMSNorm */
    float **q, **k, **v;   /* (N, D), (N, KvD), (N, KvD) after RoPE */
    float **att;           /* (B, nh, T, T) */
    float **ao;            /* (N, D) attention output before wo */
    float **xmid;          /* (N, D) residual after attention */
    float **rstd2, **xn2;  /* (N), (N, D) feed-forward RMSNorm */
    float **h1, **h3, **hg;/* (N, H) gate, up, silu(gate)*up */
    float **lh;            /* (L * 7) x (N, r): LoRA A x per adapted projection (NULL without LoRA) */
    float *rstdf, *xnf;    /* (N), (N, D) final norm */
    float *losses;         /* (N) */
    /* backward scratch, reused by every layer */
    float *dres, *dxn, *dq, *dk, *dv, *dao, *dh1, *dh3, *dhg, *dlh; /* dlh (N, r) */
    float *tmp;            /* (N, D) projection output before the residual add */
    float *att_scratch;    /* lm_attention_scratch_floats(T) */
    int32_t *inp, *tgt;    /* (N) */
    uint8_t *mask;         /* (N) */
    float *rope_cos, *rope_sin; /* (T, hd/2) */
    void *ptrs;            /* the pointer arrays, one allocation */
};

static float *take(float **p, size_t n) {
    float *r = *p;
    *p += n;
    return r;
}

static lm_acts *acts_new(const lm_config *c, int B, int T, int rank) {
    size_t N = (size_t)B * T, D = c->dim, L = c->n_layers, H = c->hidden_dim;
    size_t KvD = lm_kv_dim(c), nh = c->n_heads, hd = lm_head_dim(c), r = rank;
    size_t per_layer = N * (D /*xn1*/ + D + 2 * KvD /*q k v*/ + D /*ao*/ + D /*xmid*/ + D /*xn2*/ + 3 * H) + 2 * N +
                       (size_t)B * nh * T * T + (rank ? LM_LORA_NTARGETS * N * r : 0);
    size_t maxw = H > D ? H : D;
    size_t total = (L + 1) * N * D + L * per_layer + N * (1 + D + 1) /* rstdf xnf losses */ +
                   N * (D + D + D + 2 * KvD + D + 3 * H + r + maxw) + 2 * T * (hd / 2) +
                   3 * N /* inp tgt mask, as floats' worth */ + lm_attention_scratch_floats(T);
    lm_acts *a = sd_calloc(1, sizeof *a);
    a->block = sd_calloc(total, sizeof(float));
    float *p = a->block;
    float **pp = sd_calloc(15 * L + 1 + L * LM_LORA_NTARGETS, sizeof(float *));
    a->ptrs = pp;
    a->x = pp; pp += L + 1;
    a->rstd1 = pp; pp += L; a->xn1 = pp; pp += L; a->q = pp; pp += L; a->k = pp; pp += L; a->v = pp; pp += L;
    a->att = pp; pp += L; a->ao = pp; pp += L; a->xmid = pp; pp += L; a->rstd2 = pp; pp += L; a->xn2 = pp; pp += L;
    a->h1 = pp; pp += L; a->h3 = pp; pp += L; a->hg = pp; pp += L;
    a->lh = rank ? pp : NULL;
    for (size_t l = 0; l <= L; l++) a->x[l] = take(&p, N * D);
    for (size_t l = 0; l < L; l++) {
        a->rstd1[l] = take(&p, N);
        a->xn1[l] = take(&p, N * D);
        a->q[l] = take(&p, N * D);
        a->k[l] = take(&p, N * KvD);
        a->v[l] = take(&p, N * KvD);
        a->att[l] = take(&p, (size_t)B * nh * T * T);
        a->ao[l] = take(&p, N * D);
        a->xmid[l] = take(&p, N * D);
        a->rstd2[l] = take(&p, N);
        a->xn2[l] = take(&p, N * D);
        a->h1[l] = take(&p, N * H);
        a->h3[l] = take(&p, N * H);
        a->hg[l] = take(&p, N * H);
        if (rank)
            for (int t = 0; t < LM_LORA_NTARGETS; t++) a->lh[l * LM_LORA_NTARGETS + t] = take(&p, N * r);
    }
    a->rstdf = take(&p, N);
    a->xnf = take(&p, N * D);
    a->losses = take(&p, N);
    a->dres = take(&p, N * D);
    a->dxn = take(&p, N * D);
    a->dq = take(&p, N * D);
    a->dk = take(&p, N * KvD);
    a->dv = take(&p, N * KvD);
    a->dao = take(&p, N * D);
    a->dh1 = take(&p, N * H);
    a->dh3 = take(&p, N * H);
    a->dhg = take(&p, N * H);
    a->dlh = take(&p, N * r);
    a->tmp = take(&p, N * maxw);
    a->att_scratch = take(&p, lm_attention_scratch_floats(T));
    a->rope_cos = take(&p, T * (hd / 2));
    a->rope_sin = take(&p, T * (hd / 2));
    a->inp = (int32_t *)take(&p, N);
    a->tgt = (int32_t *)take(&p, N);
    a->mask = (uint8_t *)take(&p, N);
    if ((size_t)(p - a->block) > total) sd_oom(0); /* layout bug: cannot happen */
    lm_rope_table(a->rope_cos, a->rope_sin, T, (int)hd, c->rope_theta);
    return a;
}

static void acts_free(lm_acts *a) {
    if (!a) return;
    free(a->block);
    free(a->ptrs);
    free(a);
}

/* One data-parallel slice of every micro-batch. */
typedef struct lm_shard {
    int b0, nb;     /* rows [b0, b0 + nb) of each micro-batch */
    lm_acts *a;     /* activations for (nb, T) */
    float *logits;  /* (nb, T, V): a slice of t->logits */
    float *grads;   /* (n_train): t->grads for shard 0, an own buffer for the others */
    lm_weights gw;  /* gradient tensors inside grads (full training only) */
    double loss;    /* sum of masked losses of the shard's rows */
} lm_shard;

/* ================================================================ projections (with LoRA) */

/* The adapter of one projection: NULL A when the projection is not adapted. */
typedef struct {
    const float *A, *Bm; /* (r, in), (out, r) */
    float *dA, *dB;      /* gradients, same shapes */
    float *lh;           /* (N, r) saved A x */
    int r;
    float scale;
} proj_lora;

/* out (N, OC) = x W^T [+ scale * (x A^T) B^T]. W F32 (lm_ops) or a quantized base (lm_quant). */
static void proj_forward(float *out, const float *x, const lm_qmat *W, const proj_lora *lo, int N, int C, int OC) {
    if (W->type == LM_Q_F32) lm_matmul_forward(out, x, W->data, N, C, OC);
    else lm_qmatmul(out, x, W, N, 0.0f);
    if (lo && lo->A) {
        lm_matmul_forward(lo->lh, x, lo->A, N, C, lo->r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, lo->r, lo->scale, lo->lh, lo->r, lo->Bm, lo->r,
                    1.0f, out, OC);
    }
}

/* dx += dout W [+ adapter path]; dw (may be NULL) += dout^T x; adapter grads accumulate. dlh is
 * (N, r) scratch. */
static void proj_backward(float *dx, float *dw, const float *dout, const float *x, const lm_qmat *W, const proj_lora *lo,
                          float *dlh, int N, int C, int OC) {
    if (W->type == LM_Q_F32) lm_matmul_backward(dx, dw, dout, x, W->data, N, C, OC);
    else lm_qmatmul_dx(dx, dout, W, N); /* a quantized base is frozen: dw is NULL */
    if (lo && lo->A) {
        int r = lo->r;
        /* dB (OC, r) += scale * dout^T lh */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, r, N, lo->scale, dout, OC, lo->lh, r, 1.0f, lo->dB, r);
        /* dlh (N, r) = scale * dout B */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, OC, lo->scale, dout, OC, lo->Bm, r, 0.0f, dlh, r);
        lm_matmul_backward(dx, lo->dA, dlh, x, lo->A, N, C, r);
    }
}

static proj_lora lora_of(const lm_trainer *t, const lm_shard *sh, int l, int target) {
    proj_lora p = {0};
    if (!t->lora) return p;
    float *A, *Bm, *dA, *dB;
    int in, out;
    lm_lora_point(t->lora, t->lora->params, l, target, &A, &Bm, &in, &out);
    lm_lora_point(t->lora, sh->grads, l, target, &dA, &dB, &in, &out);
    p.A = A;
    p.Bm = Bm;
    p.dA = dA;
    p.dB = dB;
    p.lh = sh->a->lh[l * LM_LORA_NTARGETS + target];
    p.r = t->lora->rank;
    p.scale = t->lora->alpha / (float)t->lora->rank;
    return p;
}

/* ================================================================ trainer */

int lm_trainer_new(lm_trainer **out, lm_model *model, const lm_train_opts *o, sd_err *err) {
    *out = NULL;
    const lm_config *c = &model->cfg;
    int rc = lm_config_check(c, err);
    if (rc) return rc;
    if (o->batch <= 0) return sd_fail(err, SD_ERR_USAGE, "training: batch %d must be positive", o->batch);
    if (o->seq_len <= 0 || o->seq_len > c->seq_len)
        return sd_fail(err, SD_ERR_USAGE, "training: seq_len %d must be in 1..%d (the model's context)", o->seq_len,
                       c->seq_len);
    if (o->accum <= 0) return sd_fail(err, SD_ERR_USAGE, "training: accum %d must be positive", o->accum);
    if (o->steps <= 0) return sd_fail(err, SD_ERR_USAGE, "training: steps %d must be positive", o->steps);
    if (o->warmup < 0) return sd_fail(err, SD_ERR_USAGE, "training: warmup %d must be >= 0", o->warmup);
    if (!(o->lr > 0) || o->min_lr < 0)
        return sd_fail(err, SD_ERR_USAGE, "training: lr %g must be positive and min_lr %g >= 0", (double)o->lr,
                       (double)o->min_lr);
    if (o->lora_rank < 0) return sd_fail(err, SD_ERR_USAGE, "training: lora rank %d must be >= 0", o->lora_rank);
    if (model->qm && o->lora_rank == 0)
        return sd_fail(err, SD_ERR_USAGE,
                       "training: a quantized base trains only through LoRA adapters (set a LoRA rank; QLoRA)");
    lm_trainer *t = sd_calloc(1, sizeof *t);
    t->blas_threads_before = openblas_get_num_threads();
#ifdef _OPENMP
    if (o->threads > 0) omp_set_num_threads(o->threads);
    /* one thread pool: OpenMP splits the products and OpenBLAS runs single-threaded inside
     * (re-asserted by every pass, see blas_single) */
    openblas_set_num_threads(1);
#else
    if (o->threads > 0) openblas_set_num_threads(o->threads);
#endif
    t->model = model;
    t->opts = *o;
    t->B = o->batch;
    t->dp_size = 1;
    if (o->dp && sd_mpi_size() > 1) { /* this rank's rows of every micro-batch */
        int R = sd_mpi_size(), r = sd_mpi_rank();
        if (o->batch < R) {
            openblas_set_num_threads(t->blas_threads_before);
            free(t);
            return sd_fail(err, SD_ERR_USAGE, "training: batch %d is smaller than the %d MPI ranks (each needs a row)", o->batch, R);
        }
        t->dp_size = R;
        t->dp_row0 = o->batch * r / R;
        t->B = o->batch * (r + 1) / R - t->dp_row0;
    }
    t->T = o->seq_len;
    sd_rng_seed(&t->rng, o->seed);
    if (o->lora_rank > 0) {
        t->lora = sd_calloc(1, sizeof *t->lora);
        rc = lm_lora_init(t->lora, c, o->lora_rank, o->lora_alpha, sd_rng_u64(&t->rng), err);
        if (rc) {
            free(t->lora);
            free(t);
            return rc;
        }
        t->train = t->lora->params;
        t->n_train = t->lora->n_params;
    } else {
        t->train = model->params;
        t->n_train = model->n_params;
    }
    t->grads = sd_calloc(t->n_train, sizeof(float));
    t->m = sd_calloc(t->n_train, sizeof(float));
    t->v = sd_calloc(t->n_train, sizeof(float));
    t->decay = sd_malloc(t->n_train);
    memset(t->decay, 1, t->n_train);
    if (!t->lora) {
        lm_weights gw;
        lm_weights_point(&gw, c, t->grads);
        /* no decay on norm gains */
        size_t D = c->dim, L = c->n_layers;
        memset(t->decay + (gw.attn_norm - t->grads), 0, L * D);
        memset(t->decay + (gw.ffn_norm - t->grads), 0, L * D);
        memset(t->decay + (gw.out_norm - t->grads), 0, D);
        if (gw.bq) memset(t->decay + (gw.bq - t->grads), 0, L * (D + 2 * (size_t)lm_kv_dim(c))); /* nor biases */
    }
    int ns = 1;
#ifdef _OPENMP
    ns = omp_get_max_threads();
#endif
    if (ns > t->B) ns = t->B;
    t->n_shards = ns;
    t->shards = sd_calloc(ns, sizeof(lm_shard));
    t->logits = sd_malloc((size_t)t->B * t->T * c->vocab_size * sizeof(float));
    for (int p = 0; p < ns; p++) {
        lm_shard *sh = &t->shards[p];
        sh->b0 = t->B * p / ns;
        sh->nb = t->B * (p + 1) / ns - sh->b0;
        sh->a = acts_new(c, sh->nb, t->T, o->lora_rank);
        sh->logits = t->logits + (size_t)sh->b0 * t->T * c->vocab_size;
        sh->grads = p == 0 ? t->grads : sd_calloc(t->n_train, sizeof(float));
        if (!t->lora) lm_weights_point(&sh->gw, c, sh->grads);
    }
    *out = t;
    return SD_OK;
}

void lm_trainer_free(lm_trainer *t) {
    if (!t) return;
    openblas_set_num_threads(t->blas_threads_before);
    if (t->lora) {
        lm_lora_free(t->lora);
        free(t->lora);
    }
    free(t->grads);
    free(t->m);
    free(t->v);
    free(t->decay);
    for (int p = 0; p < t->n_shards; p++) {
        acts_free(t->shards[p].a);
        if (p) free(t->shards[p].grads);
    }
    free(t->shards);
    free(t->logits);
    free(t);
}

/* Copies the shard's rows of a micro-batch into its activations (inputs, targets, mask); returns
 * the masked count. */
static size_t load_batch(const lm_trainer *t, lm_shard *sh, const int32_t *tokens, const uint8_t *mask) {
    lm_acts *a = sh->a;
    int T = t->T, V = t->model->cfg.vocab_size;
    size_t n = 0;
    tokens += (size_t)sh->b0 * (T + 1);
    if (mask) mask += (size_t)sh->b0 * T;
    for (int b = 0; b < sh->nb; b++)
        for (int i = 0; i < T; i++) {
            int32_t x = tokens[(size_t)b * (T + 1) + i], y = tokens[(size_t)b * (T + 1) + i + 1];
            /* out-of-range ids would read outside the embedding: clamp them to 0 and never train
             * on them (callers validate ids; this only keeps memory safe) */
            if (x < 0 || x >= V) x = 0;
            uint8_t m = mask ? mask[(size_t)b * T + i] : 1;
            if (y < 0 || y >= V) y = 0, m = 0;
            a->inp[b * T + i] = x;
            a->tgt[b * T + i] = y;
            a->mask[b * T + i] = m ? 1 : 0;
            n += m ? 1 : 0;
        }
    return n;
}

/* The forward pass over the loaded micro-batch: fills every saved activation, t->logits -> probs
 * and a->losses. Returns the sum of masked losses. */
static double forward(const lm_trainer *t, lm_shard *sh, float *raw_logits) {
    const lm_config *c = &t->model->cfg;
    const lm_weights *w = &t->model->w;
    lm_acts *a = sh->a;
    int B = sh->nb, T = t->T, N = B * T, D = c->dim, H = c->hidden_dim, V = c->vocab_size;
    int nh = c->n_heads, nkv = c->n_kv_heads, hd = lm_head_dim(c), KvD = lm_kv_dim(c);
    const lm_model *md = t->model;
    if (md->qm) {
        lm_qmat emb = lm_model_mat(md, 0, LM_MAT_EMB);
        for (int i = 0; i < N; i++) lm_qmat_get_row(&emb, a->inp[i], a->x[0] + (size_t)i * D);
    } else lm_embedding_forward(a->x[0], a->inp, w->tok_emb, N, D);
    for (int l = 0; l < c->n_layers; l++) {
        lm_qmat Wq = lm_model_mat(md, l, LM_MAT_WQ), Wk = lm_model_mat(md, l, LM_MAT_WK), Wv = lm_model_mat(md, l, LM_MAT_WV);
        lm_qmat Wo = lm_model_mat(md, l, LM_MAT_WO), W1 = lm_model_mat(md, l, LM_MAT_W1), W2 = lm_model_mat(md, l, LM_MAT_W2);
        lm_qmat W3 = lm_model_mat(md, l, LM_MAT_W3);
        size_t oD = (size_t)l * D;
        proj_lora lq = lora_of(t, sh, l, LM_LORA_WQ), lk = lora_of(t, sh, l, LM_LORA_WK), lv = lora_of(t, sh, l, LM_LORA_WV);
        proj_lora lo = lora_of(t, sh, l, LM_LORA_WO), l1 = lora_of(t, sh, l, LM_LORA_W1), l2 = lora_of(t, sh, l, LM_LORA_W2);
        proj_lora l3 = lora_of(t, sh, l, LM_LORA_W3);
        lm_rmsnorm_forward(a->xn1[l], a->rstd1[l], a->x[l], w->attn_norm + oD, N, D, c->norm_eps);
        proj_forward(a->q[l], a->xn1[l], &Wq, &lq, N, D, D);
        proj_forward(a->k[l], a->xn1[l], &Wk, &lk, N, D, KvD);
        proj_forward(a->v[l], a->xn1[l], &Wv, &lv, N, D, KvD);
        if (w->bq) /* qwen2: biases before RoPE */
            for (int i = 0; i < N; i++) {
                for (int j = 0; j < D; j++) a->q[l][(size_t)i * D + j] += w->bq[oD + j];
                for (int j = 0; j < KvD; j++) {
                    a->k[l][(size_t)i * KvD + j] += w->bk[(size_t)l * KvD + j];
                    a->v[l][(size_t)i * KvD + j] += w->bv[(size_t)l * KvD + j];
                }
            }
        lm_rope_forward(a->q[l], a->rope_cos, a->rope_sin, B, T, nh, hd);
        lm_rope_forward(a->k[l], a->rope_cos, a->rope_sin, B, T, nkv, hd);
        lm_attention_forward(a->ao[l], a->att[l], a->q[l], a->k[l], a->v[l], B, T, nh, nkv, hd);
        proj_forward(a->tmp, a->ao[l], &Wo, &lo, N, D, D);
        lm_residual_forward(a->xmid[l], a->x[l], a->tmp, (size_t)N * D);
        lm_rmsnorm_forward(a->xn2[l], a->rstd2[l], a->xmid[l], w->ffn_norm + oD, N, D, c->norm_eps);
        proj_forward(a->h1[l], a->xn2[l], &W1, &l1, N, D, H);
        proj_forward(a->h3[l], a->xn2[l], &W3, &l3, N, D, H);
        lm_swiglu_forward(a->hg[l], a->h1[l], a->h3[l], (size_t)N * H);
        proj_forward(a->tmp, a->hg[l], &W2, &l2, N, H, D);
        lm_residual_forward(a->x[l + 1], a->xmid[l], a->tmp, (size_t)N * D);
    }
    lm_rmsnorm_forward(a->xnf, a->rstdf, a->x[c->n_layers], w->out_norm, N, D, c->norm_eps);
    lm_qmat Wout = lm_model_mat(md, 0, LM_MAT_OUT);
    proj_forward(sh->logits, a->xnf, &Wout, NULL, N, D, V);
    if (raw_logits) memcpy(raw_logits + (size_t)sh->b0 * T * V, sh->logits, (size_t)N * V * sizeof(float));
    lm_xent_forward(sh->logits, a->losses, sh->logits, a->tgt, N, V);
    double s = 0;
    for (int i = 0; i < N; i++)
        if (a->mask[i]) s += a->losses[i];
    return s;
}

/* The backward pass after forward(): accumulates d(sum of masked losses * scale) into t->grads;
 * with pw (the shard's rows, (nb, T)), d(sum of masked losses * pw) instead (scale unused). */
static void backward(const lm_trainer *t, lm_shard *sh, float scale, const float *pw) {
    const lm_config *c = &t->model->cfg;
    const lm_weights *w = &t->model->w;
    lm_weights *g = t->lora ? NULL : &sh->gw; /* NULL: base frozen */
    lm_acts *a = sh->a;
    int B = sh->nb, T = t->T, N = B * T, D = c->dim, H = c->hidden_dim, V = c->vocab_size;
    int nh = c->n_heads, nkv = c->n_kv_heads, hd = lm_head_dim(c), KvD = lm_kv_dim(c);
    size_t ND = (size_t)N * D, NH = (size_t)N * H, NK = (size_t)N * KvD;
    if (pw) { /* per-position weights: dlogits = pw (probs - onehot), in place */
        for (int n = 0; n < N; n++) {
            float *d = sh->logits + (size_t)n * V, s = a->mask[n] ? pw[n] : 0.0f;
            for (int i = 0; i < V; i++) d[i] *= s;
            d[a->tgt[n]] -= s;
        }
    } else {
        lm_xent_backward(sh->logits, sh->logits, a->tgt, a->mask, scale, N, V); /* logits now hold dlogits */
    }
    memset(a->dxn, 0, ND * sizeof(float));
    const lm_model *md = t->model;
    lm_qmat Wout = lm_model_mat(md, 0, LM_MAT_OUT);
    proj_backward(a->dxn, g ? g->out : NULL, sh->logits, a->xnf, &Wout, NULL, NULL, N, D, V);
    memset(a->dres, 0, ND * sizeof(float));
    lm_rmsnorm_backward(a->dres, g ? g->out_norm : NULL, a->dxn, a->x[c->n_layers], w->out_norm, a->rstdf, N, D);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        size_t oD = (size_t)l * D;
        proj_lora lq = lora_of(t, sh, l, LM_LORA_WQ), lk = lora_of(t, sh, l, LM_LORA_WK), lv = lora_of(t, sh, l, LM_LORA_WV);
        proj_lora lo = lora_of(t, sh, l, LM_LORA_WO), l1 = lora_of(t, sh, l, LM_LORA_W1), l2 = lora_of(t, sh, l, LM_LORA_W2);
        proj_lora l3 = lora_of(t, sh, l, LM_LORA_W3);
        lm_qmat Wq = lm_model_mat(md, l, LM_MAT_WQ), Wk = lm_model_mat(md, l, LM_MAT_WK), Wv = lm_model_mat(md, l, LM_MAT_WV);
        lm_qmat Wo = lm_model_mat(md, l, LM_MAT_WO), W1 = lm_model_mat(md, l, LM_MAT_W1), W2 = lm_model_mat(md, l, LM_MAT_W2);
        lm_qmat W3 = lm_model_mat(md, l, LM_MAT_W3);
        /* feed-forward: x[l+1] = xmid + w2(swiglu(w1 xn2, w3 xn2)); dres is d x[l+1] */
        memset(a->dhg, 0, NH * sizeof(float));
        proj_backward(a->dhg, g ? g->w2 + (size_t)l * D * H : NULL, a->dres, a->hg[l], &W2, &l2,
                      a->dlh, N, H, D);
        memset(a->dh1, 0, NH * sizeof(float));
        memset(a->dh3, 0, NH * sizeof(float));
        lm_swiglu_backward(a->dh1, a->dh3, a->dhg, a->h1[l], a->h3[l], NH);
        memset(a->dxn, 0, ND * sizeof(float));
        proj_backward(a->dxn, g ? g->w1 + (size_t)l * H * D : NULL, a->dh1, a->xn2[l], &W1, &l1,
                      a->dlh, N, D, H);
        proj_backward(a->dxn, g ? g->w3 + (size_t)l * H * D : NULL, a->dh3, a->xn2[l], &W3, &l3,
                      a->dlh, N, D, H);
        lm_rmsnorm_backward(a->dres, g ? g->ffn_norm + oD : NULL, a->dxn, a->xmid[l], w->ffn_norm + oD, a->rstd2[l], N,
                            D);
        /* attention: xmid = x[l] + wo(attn(rope(wq xn1), rope(wk xn1), wv xn1)); dres is d xmid */
        memset(a->dao, 0, ND * sizeof(float));
        proj_backward(a->dao, g ? g->wo + (size_t)l * D * D : NULL, a->dres, a->ao[l], &Wo, &lo,
                      a->dlh, N, D, D);
        memset(a->dq, 0, ND * sizeof(float));
        memset(a->dk, 0, NK * sizeof(float));
        memset(a->dv, 0, NK * sizeof(float));
        lm_attention_backward(a->dq, a->dk, a->dv, a->dao, a->att[l], a->q[l], a->k[l], a->v[l], B, T, nh, nkv, hd,
                              a->att_scratch);
        lm_rope_backward(a->dq, a->rope_cos, a->rope_sin, B, T, nh, hd);
        lm_rope_backward(a->dk, a->rope_cos, a->rope_sin, B, T, nkv, hd);
        if (g && g->bq) /* qwen2 biases: the column sums of dq, dk, dv before RoPE */
            for (int i = 0; i < N; i++) {
                for (int j = 0; j < D; j++) g->bq[oD + j] += a->dq[(size_t)i * D + j];
                for (int j = 0; j < KvD; j++) {
                    g->bk[(size_t)l * KvD + j] += a->dk[(size_t)i * KvD + j];
                    g->bv[(size_t)l * KvD + j] += a->dv[(size_t)i * KvD + j];
                }
            }
        memset(a->dxn, 0, ND * sizeof(float));
        proj_backward(a->dxn, g ? g->wq + (size_t)l * D * D : NULL, a->dq, a->xn1[l], &Wq, &lq,
                      a->dlh, N, D, D);
        proj_backward(a->dxn, g ? g->wk + (size_t)l * KvD * D : NULL, a->dk, a->xn1[l], &Wk,
                      &lk, a->dlh, N, D, KvD);
        proj_backward(a->dxn, g ? g->wv + (size_t)l * KvD * D : NULL, a->dv, a->xn1[l], &Wv,
                      &lv, a->dlh, N, D, KvD);
        lm_rmsnorm_backward(a->dres, g ? g->attn_norm + oD : NULL, a->dxn, a->x[l], w->attn_norm + oD, a->rstd1[l], N,
                            D);
    }
    if (g) lm_embedding_backward(g->tok_emb, a->dres, a->inp, N, D);
}

/* Masked positions of a micro-batch with the rule of load_batch (a target outside the vocabulary
 * never counts). */
static size_t count_targets(const lm_trainer *t, const int32_t *tokens, const uint8_t *mask) {
    int T = t->T, V = t->model->cfg.vocab_size;
    size_t n = 0;
    for (int b = 0; b < t->B; b++)
        for (int i = 0; i < T; i++) {
            int32_t y = tokens[(size_t)b * (T + 1) + i + 1];
            n += (!mask || mask[(size_t)b * T + i]) && y >= 0 && y < V;
        }
    return n;
}

/* Makes OpenBLAS single-threaded for the shards (another trainer's free may have restored more). */
static void blas_single(void) {
#ifdef _OPENMP
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
#endif
}

static void forward_all(lm_trainer *t, const int32_t *tokens, const uint8_t *mask, float *loss, float *raw) {
    blas_single();
    size_t n = count_targets(t, tokens, mask);
    int ns = t->n_shards;
#pragma omp parallel for schedule(static) num_threads(ns) if (ns > 1)
    for (int p = 0; p < ns; p++) {
        lm_shard *sh = &t->shards[p];
        load_batch(t, sh, tokens, mask);
        sh->loss = forward(t, sh, raw);
    }
    double s = 0;
    for (int p = 0; p < ns; p++) s += t->shards[p].loss;
    if (loss) *loss = n ? (float)(s / (double)n) : 0.0f;
}

void lm_trainer_forward(lm_trainer *t, const int32_t *tokens, const uint8_t *mask, float *loss) {
    forward_all(t, tokens, mask, loss, NULL);
}

void lm_trainer_logits(lm_trainer *t, const int32_t *tokens, float *logits) {
    forward_all(t, tokens, NULL, NULL, logits);
}

/* grads (shard 0's buffer) += those of shards 1..ns-1, in shard order (so that a run's bits do
 * not depend on scheduling); returns the shards' summed loss. */
static double reduce_shards(lm_trainer *t, int ns) {
    if (ns > 1) {
        size_t n = t->n_train;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            float g = t->grads[i];
            for (int p = 1; p < ns; p++) g += t->shards[p].grads[i];
            t->grads[i] = g;
        }
    }
    double s = 0;
    for (int p = 0; p < ns; p++) s += t->shards[p].loss;
    return s;
}

void lm_trainer_grad(lm_trainer *t, const int32_t *tokens, const uint8_t *mask, int n_micro, float *loss) {
    blas_single();
    size_t rowtok = (size_t)t->B * (t->T + 1), rowmask = (size_t)t->B * t->T;
    /* the normaliser is the masked count of the whole step, so micro-batches add up exactly to
     * the gradient of one big batch */
    size_t total = 0;
    for (int k = 0; k < n_micro; k++) total += count_targets(t, tokens + k * rowtok, mask ? mask + k * rowmask : NULL);
    if (t->dp_size > 1) { /* data-parallel: the normaliser is the whole batch's count, over every rank */
        int64_t all = (int64_t)total;
        sd_mpi_sum_i64(&all, 1, NULL); /* MPI errors abort the job (MPI_ERRORS_ARE_FATAL) */
        total = (size_t)all;
    }
    float scale = total ? 1.0f / (float)total : 0.0f;
    int ns = t->n_shards;
    /* one parallel region: each thread runs whole forward/backward passes over its rows, and the
     * kernels inside run single-threaded (no barriers per operation) */
#pragma omp parallel for schedule(static) num_threads(ns) if (ns > 1)
    for (int p = 0; p < ns; p++) {
        lm_shard *sh = &t->shards[p];
        memset(sh->grads, 0, t->n_train * sizeof(float));
        sh->loss = 0;
        for (int k = 0; k < n_micro; k++) {
            load_batch(t, sh, tokens + k * rowtok, mask ? mask + k * rowmask : NULL);
            sh->loss += forward(t, sh, NULL);
            backward(t, sh, scale, NULL);
        }
    }
    double s = reduce_shards(t, ns);
    if (t->dp_size > 1) { /* data-parallel: every rank's rows summed (then every rank steps alike) */
        sd_mpi_sum_f32(t->grads, t->n_train, NULL);
        sd_mpi_sum_f64(&s, 1, NULL);
    }
    if (loss) *loss = total ? (float)(s / (double)total) : 0.0f;
}

/* Sum of squares of x[0..n) in double: 64 fixed chunks summed in order, so the result does not
 * depend on the thread count. */
static double sumsq_fixed(const float *x, size_t n) {
    enum { CHUNKS = 64 };
    double part[CHUNKS];
    size_t step = (n + CHUNKS - 1) / CHUNKS;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < CHUNKS; c++) {
        size_t lo = (size_t)c * step, hi = lo + step < n ? lo + step : n;
        double s = 0;
        for (size_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
    double s = 0;
    for (int c = 0; c < CHUNKS; c++) s += part[c];
    return s;
}

void lm_trainer_token_nll(lm_trainer *t, const int32_t *tokens, float *nll) {
    forward_all(t, tokens, NULL, NULL, NULL);
    for (int p = 0; p < t->n_shards; p++) {
        const lm_shard *sh = &t->shards[p];
        memcpy(nll + (size_t)sh->b0 * t->T, sh->a->losses, (size_t)sh->nb * t->T * sizeof(float));
    }
}

void lm_trainer_grad_weighted(lm_trainer *t, const int32_t *tokens, lm_weight_fn weigh, void *ctx, float *w,
                              float *nll, double *wloss) {
    blas_single();
    int ns = t->n_shards, T = t->T;
#pragma omp parallel for schedule(static) num_threads(ns) if (ns > 1)
    for (int p = 0; p < ns; p++) {
        lm_shard *sh = &t->shards[p];
        memset(sh->grads, 0, t->n_train * sizeof(float));
        load_batch(t, sh, tokens, NULL);
        forward(t, sh, NULL);
        double s = 0;
        for (int b = 0; b < sh->nb; b++) {
            const float *rl = sh->a->losses + (size_t)b * T;
            float *rw = w + (size_t)(sh->b0 + b) * T;
            weigh(ctx, sh->b0 + b, rl, rw, T);
            for (int i = 0; i < T; i++)
                if (sh->a->mask[b * T + i]) s += (double)rw[i] * rl[i];
            if (nll) memcpy(nll + (size_t)(sh->b0 + b) * T, rl, (size_t)T * sizeof(float));
        }
        sh->loss = s;
        backward(t, sh, 0.0f, w + (size_t)sh->b0 * T);
    }
    double s = reduce_shards(t, ns);
    if (wloss) *wloss = s;
}

int lm_trainer_step(lm_trainer *t, const int32_t *tokens, const uint8_t *mask, float *loss, sd_err *err) {
    float l;
    lm_trainer_grad(t, tokens, mask, t->opts.accum, &l);
    if (loss) *loss = l;
    return lm_trainer_update(t, l, err);
}

int lm_trainer_update(lm_trainer *t, float l, sd_err *err) {
    const lm_train_opts *o = &t->opts;
    double norm = sqrt(sumsq_fixed(t->grads, t->n_train));
    t->last_loss = l;
    t->last_grad_norm = norm;
    if (!isfinite(l) || !isfinite(norm))
        return sd_fail(err, SD_ERR_DATA, "training step %d: loss %g, gradient norm %g is not finite (lower --lr?)",
                       t->step + 1, (double)l, norm);
    /* as torch.nn.utils.clip_grad_norm_: coefficient clip / (norm + 1e-6), only when below 1 */
    double coef = o->clip > 0 ? o->clip / (norm + 1e-6) : 1.0;
    float clip = coef < 1.0 ? (float)coef : 1.0f;
    float lr = lm_train_lr(o, t->step);
    t->last_lr = lr;
    t->step++;
    /* AdamW exactly as torch.optim.AdamW: decoupled decay p *= 1 - lr*wd, then the Adam update
     * with bias corrections */
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps, wd = o->weight_decay;
    float bc1 = 1.0f - powf(b1, (float)t->step), bc2 = 1.0f - powf(b2, (float)t->step);
    float step_size = lr / bc1, bc2_sqrt = sqrtf(bc2);
    float *p = t->train, *gr = t->grads, *m = t->m, *v = t->v;
    const uint8_t *dec = t->decay;
    size_t n = t->n_train;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = gr[i] * clip;
        if (dec[i]) p[i] *= 1.0f - lr * wd;
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        p[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
    return SD_OK;
}

/* ================================================================ examples and batcher */

void lm_examples_init(lm_examples *e) {
    sd_vec_init(&e->tok, sizeof(int32_t));
    sd_vec_init(&e->tgt, sizeof(uint8_t));
    sd_vec_init(&e->off, sizeof(size_t));
    *(size_t *)sd_vec_push(&e->off) = 0;
}

void lm_examples_free(lm_examples *e) {
    sd_vec_free(&e->tok);
    sd_vec_free(&e->tgt);
    sd_vec_free(&e->off);
}

void lm_examples_add(lm_examples *e, const int32_t *tok, const uint8_t *tgt, size_t n) {
    for (size_t i = 0; i < n; i++) {
        *(int32_t *)sd_vec_push(&e->tok) = tok[i];
        *(uint8_t *)sd_vec_push(&e->tgt) = i == 0 ? 0 : tgt ? (tgt[i] ? 1 : 0) : 1;
    }
    *(size_t *)sd_vec_push(&e->off) = e->tok.len;
}

/* Appends the tokens of s (control tokens parsed) to v (int32_t). */
static void encode_append(const lm_tokenizer *tok, const char *s, sd_vec *v) {
    size_t n = 0, len = strlen(s);
    tok_encode(tok, s, len, NULL, 0, &n, 1); /* sizes the output (returns SD_ERR_USAGE by design) */
    size_t at = v->len;
    for (size_t i = 0; i < n; i++) sd_vec_push(v);
    tok_encode(tok, s, len, (int32_t *)v->data + at, n, &n, 1);
}

int lm_examples_add_sft(lm_examples *e, const lm_tokenizer *tok, const char *prompt, const char *answer,
                        size_t max_len) {
    sd_vec ids;
    sd_vec_init(&ids, sizeof(int32_t));
    int32_t bos = tok_bos(tok), eos = tok_eos(tok);
    if (bos >= 0) *(int32_t *)sd_vec_push(&ids) = bos;
    encode_append(tok, prompt, &ids);
    size_t n_prompt = ids.len;
    encode_append(tok, answer, &ids);
    if (eos >= 0) *(int32_t *)sd_vec_push(&ids) = eos;
    uint8_t *tgt = sd_malloc(ids.len ? ids.len : 1);
    for (size_t i = 0; i < ids.len; i++) tgt[i] = i >= n_prompt;
    size_t start = max_len && ids.len > max_len ? ids.len - max_len : 0;
    lm_examples_add(e, (int32_t *)ids.data + start, tgt + start, ids.len - start);
    free(tgt);
    sd_vec_free(&ids);
    return start > 0;
}

/* The permutation of epoch `epoch`: a Fisher-Yates shuffle seeded from (seed, epoch) alone, so any
 * position can be reached again without replaying earlier epochs. */
static void batcher_shuffle(lm_batcher *b) {
    size_t n = lm_examples_count(b->ex);
    for (size_t i = 0; i < n; i++) b->order[i] = (int32_t)i;
    sd_rng r;
    sd_rng_seed(&r, b->seed ^ (0x9e3779b97f4a7c15ULL * (b->epoch + 1)));
    sd_rng_shuffle_i32(&r, b->order, n);
}

int lm_batcher_init(lm_batcher *b, const lm_examples *ex, int B, int T, int32_t pad_id, uint64_t seed, sd_err *err) {
    memset(b, 0, sizeof *b);
    size_t n = lm_examples_count(ex);
    if (n == 0) return sd_fail(err, SD_ERR_DATA, "training data: no examples");
    if (n > INT32_MAX) return sd_fail(err, SD_ERR_DATA, "training data: %zu examples is too many", n);
    if (B <= 0 || T <= 0) return sd_fail(err, SD_ERR_USAGE, "batcher: batch %d and seq_len %d must be positive", B, T);
    b->ex = ex;
    b->B = B;
    b->T = T;
    b->pad_id = pad_id;
    b->seed = seed;
    b->order = sd_malloc(n * sizeof(int32_t));
    batcher_shuffle(b);
    return SD_OK;
}

void lm_batcher_free(lm_batcher *b) {
    free(b->order);
    memset(b, 0, sizeof *b);
}

void lm_batcher_seek(lm_batcher *b, uint64_t epoch, size_t cursor) {
    b->epoch = epoch;
    b->cursor = cursor;
    batcher_shuffle(b);
}

void lm_batcher_next(lm_batcher *b, int32_t *tokens, uint8_t *mask) {
    size_t n = lm_examples_count(b->ex);
    const size_t *off = b->ex->off.data;
    const int32_t *tok = b->ex->tok.data;
    const uint8_t *tgt = b->ex->tgt.data;
    int T = b->T;
    for (int row = 0; row < b->B; row++) {
        if (b->cursor >= n) {
            b->epoch++;
            b->cursor = 0;
            batcher_shuffle(b);
        }
        size_t e = (size_t)b->order[b->cursor++];
        size_t len = off[e + 1] - off[e];
        if (len > (size_t)T + 1) len = (size_t)T + 1;
        int32_t *tr = tokens + (size_t)row * (T + 1);
        uint8_t *mr = mask + (size_t)row * T;
        for (int i = 0; i <= T; i++) tr[i] = (size_t)i < len ? tok[off[e] + i] : b->pad_id;
        for (int i = 0; i < T; i++) mr[i] = (size_t)(i + 1) < len ? tgt[off[e] + i + 1] : 0;
    }
}

/* ================================================================ checkpoints
 *
 * Layout (little-endian, see docs/training.md): magic "SDCKPT01", u32 version, u32 header bytes,
 * then the header (config, LoRA rank/alpha, n_train, step, RNG, batcher state), then the trainable
 * block, m and v as float32, then a u64 FNV-1a of everything before it. */

#define CKPT_MAGIC "SDCKPT01"
#define CKPT_VERSION 1u

typedef struct {
    int32_t dim, n_layers, n_heads, n_kv_heads, hidden_dim, vocab_size, seq_len, tied;
    float norm_eps, rope_theta;
    int32_t lora_rank;
    float lora_alpha;
    uint64_t n_train;
    int32_t step, has_batcher;
    uint64_t rng[4];
    uint64_t epoch, cursor, n_examples, batch_seed;
    int32_t B, T;
} ckpt_header;

static void ckpt_fill(ckpt_header *h, const lm_trainer *t, const lm_batcher *b) {
    memset(h, 0, sizeof *h);
    const lm_config *c = &t->model->cfg;
    h->dim = c->dim;
    h->n_layers = c->n_layers;
    h->n_heads = c->n_heads;
    h->n_kv_heads = c->n_kv_heads;
    h->hidden_dim = c->hidden_dim;
    h->vocab_size = c->vocab_size;
    h->seq_len = c->seq_len;
    h->tied = c->tied;
    h->norm_eps = c->norm_eps;
    h->rope_theta = c->rope_theta;
    h->lora_rank = t->lora ? t->lora->rank : 0;
    h->lora_alpha = t->lora ? t->lora->alpha : 0;
    h->n_train = t->n_train;
    h->step = t->step;
    memcpy(h->rng, t->rng.s, sizeof h->rng);
    h->B = t->dp_size > 1 ? t->opts.batch : t->B; /* the whole batch: resumable on any rank count */
    h->T = t->T;
    if (b) {
        h->has_batcher = 1;
        h->epoch = b->epoch;
        h->cursor = b->cursor;
        h->n_examples = lm_examples_count(b->ex);
        h->batch_seed = b->seed;
    }
}

int lm_checkpoint_save(const lm_trainer *t, const lm_batcher *b, const char *path, sd_err *err) {
    ckpt_header h;
    ckpt_fill(&h, t, b);
    uint32_t ver = CKPT_VERSION, hsize = sizeof h;
    sd_afile a;
    int rc = sd_afile_open(&a, path, err);
    if (rc) return rc;
    uint64_t hash = SD_HASH_SEED;
    const void *parts[] = {CKPT_MAGIC, &ver, &hsize, &h, t->train, t->m, t->v};
    size_t sizes[] = {8, 4, 4, sizeof h, t->n_train * 4, t->n_train * 4, t->n_train * 4};
    for (int i = 0; i < 7; i++) {
        fwrite(parts[i], 1, sizes[i], a.f);
        hash = sd_hash64(parts[i], sizes[i], hash);
    }
    fwrite(&hash, 8, 1, a.f);
    return sd_afile_commit(&a, err);
}

#define CKPT_CHECK(field, what)                                                                                   \
    if (h.field != want.field)                                                                                    \
        return sd_map_close(&map), sd_fail(err, SD_ERR_FORMAT, "%s: checkpoint %s %g differs from this run's %g", \
                                           path, what, (double)h.field, (double)want.field)

int lm_checkpoint_load(lm_trainer *t, lm_batcher *b, const char *path, sd_err *err) {
    sd_map map;
    int rc = sd_map_open(&map, path, err);
    if (rc) return rc;
    const uint8_t *p = map.data;
    ckpt_header h, want;
    uint32_t ver, hsize;
    if (map.size < 16 + sizeof h || memcmp(p, CKPT_MAGIC, 8) != 0)
        return sd_map_close(&map),
               sd_fail(err, SD_ERR_FORMAT, "%s: not a serendip training checkpoint (bad magic or too short)", path);
    memcpy(&ver, p + 8, 4);
    memcpy(&hsize, p + 12, 4);
    if (ver != CKPT_VERSION || hsize != sizeof h)
        return sd_map_close(&map), sd_fail(err, SD_ERR_FORMAT,
                                           "%s: checkpoint version %u (header %u bytes); this build reads version %u "
                                           "(header %zu bytes): retrain or use the matching serendip",
                                           path, ver, hsize, CKPT_VERSION, sizeof h);
    memcpy(&h, p + 16, sizeof h);
    ckpt_fill(&want, t, b);
    CKPT_CHECK(dim, "dim");
    CKPT_CHECK(n_layers, "n_layers");
    CKPT_CHECK(n_heads, "n_heads");
    CKPT_CHECK(n_kv_heads, "n_kv_heads");
    CKPT_CHECK(hidden_dim, "hidden_dim");
    CKPT_CHECK(vocab_size, "vocab_size");
    CKPT_CHECK(seq_len, "seq_len");
    CKPT_CHECK(tied, "tied");
    CKPT_CHECK(lora_rank, "LoRA rank");
    CKPT_CHECK(n_train, "trainable parameter count");
    CKPT_CHECK(B, "batch");
    CKPT_CHECK(T, "sequence length");
    if (b) {
        if (!h.has_batcher)
            return sd_map_close(&map), sd_fail(err, SD_ERR_FORMAT, "%s: checkpoint has no data position", path);
        CKPT_CHECK(n_examples, "example count");
        CKPT_CHECK(batch_seed, "data seed");
        if (h.cursor > h.n_examples)
            return sd_map_close(&map), sd_fail(err, SD_ERR_FORMAT, "%s: data cursor %llu beyond %llu examples", path,
                                               (unsigned long long)h.cursor, (unsigned long long)h.n_examples);
    }
    size_t body = 3 * t->n_train * 4, need = 16 + sizeof h + body + 8;
    if (map.size != need)
        return sd_map_close(&map), sd_fail(err, SD_ERR_FORMAT, "%s: %zu bytes, expected %zu (truncated or corrupt)",
                                           path, map.size, need);
    uint64_t hash = sd_hash64(p, need - 8, SD_HASH_SEED), stored;
    memcpy(&stored, p + need - 8, 8);
    if (hash != stored)
        return sd_map_close(&map), sd_fail(err, SD_ERR_FORMAT, "%s: checksum mismatch (corrupt file)", path);
    const uint8_t *q = p + 16 + sizeof h;
    memcpy(t->train, q, t->n_train * 4);
    memcpy(t->m, q + t->n_train * 4, t->n_train * 4);
    memcpy(t->v, q + 2 * t->n_train * 4, t->n_train * 4);
    t->step = h.step;
    memcpy(t->rng.s, h.rng, sizeof h.rng);
    if (b) lm_batcher_seek(b, h.epoch, (size_t)h.cursor);
    sd_map_close(&map);
    return SD_OK;
}

/* ================================================================ training loop */

int lm_train_run(lm_trainer *t, lm_batcher *b, const char *label, lm_train_cb cb, void *ctx, float *final_loss,
                 double *tokens_per_s, sd_err *err) {
    const lm_train_opts *o = &t->opts;
    const int gB = t->dp_size > 1 ? o->batch : t->B; /* rows the batcher deals per micro-batch */
    if (b->B != gB || b->T != t->T)
        return sd_fail(err, SD_ERR_USAGE, "training: batcher is (%d, %d) but the trainer is (%d, %d)", b->B, b->T,
                       gB, t->T);
    size_t rowtok = (size_t)t->B * (t->T + 1), rowmask = (size_t)t->B * t->T;
    size_t growtok = (size_t)gB * (t->T + 1), growmask = (size_t)gB * t->T;
    int32_t *tokens = sd_malloc(o->accum * rowtok * sizeof(int32_t));
    uint8_t *mask = sd_malloc(o->accum * rowmask);
    int32_t *gtokens = t->dp_size > 1 ? sd_malloc(growtok * sizeof(int32_t)) : NULL; /* (gB, T+1) one whole micro-batch */
    uint8_t *gmask = t->dp_size > 1 ? sd_malloc(growmask) : NULL;
    sd_progress pr;
    sd_progress_start(&pr, label ? label : "training", o->steps);
    double t0 = sd_now(), tps = 0, ema = NAN;
    int first = t->step, rc = SD_OK;
    float loss = 0;
    while (t->step < o->steps) {
        for (int k = 0; k < o->accum; k++) {
            if (!gtokens) {
                lm_batcher_next(b, tokens + k * rowtok, mask + k * rowmask);
                continue;
            }
            lm_batcher_next(b, gtokens, gmask); /* the whole micro-batch, then this rank's rows of it */
            memcpy(tokens + k * rowtok, gtokens + (size_t)t->dp_row0 * (t->T + 1), rowtok * sizeof(int32_t));
            memcpy(mask + k * rowmask, gmask + (size_t)t->dp_row0 * t->T, rowmask);
        }
        rc = lm_trainer_step(t, tokens, mask, &loss, err);
        if (rc) break;
        ema = isnan(ema) ? loss : 0.9 * ema + 0.1 * loss;
        double dt = sd_now() - t0;
        tps = dt > 0 ? (double)(t->step - first) * o->accum * (gtokens ? growmask : rowmask) / dt : 0; /* the whole job's */
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.4f  %.0f tok/s", ema, tps);
        sd_progress_update(&pr, t->step, extra);
        if (cb && cb(ctx, t, loss, tps)) break;
    }
    sd_progress_end(&pr);
    free(tokens);
    free(mask);
    free(gtokens);
    free(gmask);
    if (final_loss) *final_loss = loss;
    if (tokens_per_s) *tokens_per_s = tps;
    return rc;
}
