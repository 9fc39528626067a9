/* lm_train.h - training the lm.h decoder: full fine-tuning or LoRA, AdamW, schedule, clipping,
 * gradient accumulation, checkpoints with exact resume, and a batcher for (tokens, loss mask)
 * examples.
 *
 * Token/mask convention: a training row is T+1 token ids; position t (0..T-1) reads tokens[0..t]
 * and is trained to predict tokens[t+1] when mask[t] is 1. The loss of a step is the mean
 * cross-entropy over all masked positions of the step (over every micro-batch when accumulating),
 * so accum micro-batches of B rows give the same gradient as one batch of accum*B rows. */
#ifndef SERENDIP_LM_TRAIN_H
#define SERENDIP_LM_TRAIN_H

#include "serendip/lm.h"

/* ---------------------------------------------------------------- options */

typedef struct {
    float lr;           /* peak learning rate */
    float min_lr;       /* floor of the cosine decay */
    int warmup;         /* steps of linear warm-up from lr/warmup to lr */
    int steps;          /* total optimizer steps (the cosine reaches min_lr at the last one) */
    int batch;          /* B, rows per micro-batch */
    int seq_len;        /* T, positions per row (<= model seq_len); rows hold T+1 tokens */
    int accum;          /* micro-batches per optimizer step */
    float weight_decay; /* decoupled (AdamW); applied to matrices and embeddings, never to norm gains */
    float clip;         /* global gradient-norm clip; <= 0 disables */
    float beta1, beta2, eps;
    uint64_t seed;      /* LoRA init and anything random in the trainer */
    int lora_rank;      /* 0: full training; r > 0: rank-r LoRA with the base frozen */
    float lora_alpha;   /* LoRA scale is alpha / rank */
    int threads;        /* OpenMP threads; 0 keeps the current setting */
    int dp;             /* 1: data-parallel over the MPI ranks (mpi.h active; --mpi): each rank computes
                         * rows [batch*r/R, batch*(r+1)/R) of every micro-batch, and the gradient, loss
                         * and target count are summed with MPI_Allreduce, so every rank takes the same
                         * step as one process on the whole batch (docs/scale.md); needs batch >= R */
} lm_train_opts;

/* Fills defaults: lr 1e-3, min_lr 1e-4, warmup 20, steps 200, batch 8, seq_len 128, accum 1,
 * weight_decay 0.1, clip 1.0, betas 0.9/0.95, eps 1e-8, seed 1, lora_rank 0, lora_alpha 16. */
void lm_train_opts_default(lm_train_opts *o);

/* Learning rate at optimizer step `step` (0-based) for o: linear warm-up then cosine decay. */
float lm_train_lr(const lm_train_opts *o, int step);

/* ---------------------------------------------------------------- LoRA adapters */

/* The seven adapted projections of each layer, in block order. */
enum { LM_LORA_WQ, LM_LORA_WK, LM_LORA_WV, LM_LORA_WO, LM_LORA_W1, LM_LORA_W2, LM_LORA_W3, LM_LORA_NTARGETS };

/* Rank-r adapters for every layer and target, one float block: for layer l, target t (enum order),
 * A (r, in) then B (out, r). The adapted projection is W x + (alpha/r) B (A x). */
typedef struct {
    lm_config cfg;
    int rank;
    float alpha;
    float *params; /* the block, n_params floats; owned */
    size_t n_params;
} lm_lora;

/* Allocates adapters for cfg: A ~ N(0, 1/sqrt(in)), B = 0 (so the adapted model starts equal to
 * the base), deterministic for seed. */
int lm_lora_init(lm_lora *lo, const lm_config *cfg, int rank, float alpha, uint64_t seed, sd_err *err);
void lm_lora_free(lm_lora *lo);
/* Points *A (rank, in) and *B (out, rank) at layer l, target t inside base (a block laid out like
 * lo->params: the adapters themselves, their gradients or optimizer moments). */
void lm_lora_point(const lm_lora *lo, float *base, int l, int t, float **A, float **B, int *in, int *out);
/* The base weight matrix (out, in) of layer l, target t in w. */
float *lm_lora_base_matrix(const lm_weights *w, const lm_config *cfg, int l, int t);
/* Adds (alpha/r) B A into every adapted matrix of m (m's config must match; m must hold F32
 * matrices: lm_model_to_f32 a quantized base first). */
void lm_lora_merge(const lm_lora *lo, lm_model *m);
/* Writes the adapters as a llama.cpp LoRA adapter GGUF (general.type "adapter", adapter.type
 * "lora", adapter.lora.alpha; tensors "blk.N.attn_q.weight.lora_a" ne={in,r} / ".lora_b"
 * ne={r,out}), atomically. */
int lm_lora_save_gguf(const lm_lora *lo, const char *path, sd_err *err);

/* ---------------------------------------------------------------- trainer */

/* Activations of one micro-batch (B, T), one allocation; shapes per field. */
typedef struct lm_acts lm_acts;

typedef struct {
    lm_model *model;     /* borrowed; updated in place (full training) or frozen (LoRA) */
    lm_lora *lora;       /* owned when opts.lora_rank > 0, else NULL */
    lm_train_opts opts;
    int B, T;
    float *train;        /* the trainable block: model->params or lora->params (borrowed) */
    size_t n_train;      /* floats in it */
    float *grads;        /* (n_train) one allocation, laid out like train */
    float *m, *v;        /* (n_train) AdamW moments */
    uint8_t *decay;      /* (n_train) 1 where weight decay applies */
    int n_shards;        /* data-parallel shards of each micro-batch: one per thread, <= B */
    struct lm_shard *shards; /* per shard: its rows, activations and gradient buffer */
    float *logits;       /* (B, T, V) after lm_trainer_forward: logits; after a backward: softmax */
    int step;            /* optimizer steps taken */
    sd_rng rng;
    double last_loss, last_grad_norm, last_lr;
    int blas_threads_before; /* restored by lm_trainer_free */
    int dp_size, dp_row0;    /* opts.dp: ranks (1 = not data-parallel); this rank's first row; B is its row count */
} lm_trainer;

/* Creates a trainer over model (borrowed; must outlive the trainer) for opts. Every buffer the
 * step loop needs is allocated here. With opts->lora_rank > 0 the adapters are created from
 * opts->seed. Threads: each micro-batch is split by rows into one shard per OpenMP thread (one
 * parallel region per micro-batch; gradients summed in shard order), and OpenBLAS is set to run
 * single-threaded inside them (openblas_set_num_threads(1), process-wide, restored by
 * lm_trainer_free). Results are
 * bit-identical run to run for a given thread count. */
int lm_trainer_new(lm_trainer **out, lm_model *model, const lm_train_opts *opts, sd_err *err);
void lm_trainer_free(lm_trainer *t);

/* Forward only over one micro-batch: fills t->logits (B, T, V) and *loss = mean cross-entropy over
 * the masked positions (0 when no position is masked). tokens (B, T+1), mask (B, T). */
void lm_trainer_forward(lm_trainer *t, const int32_t *tokens, const uint8_t *mask, float *loss);

/* Forward only, copying the raw (pre-softmax) logits (B, T, V) into logits (caller's buffer). */
void lm_trainer_logits(lm_trainer *t, const int32_t *tokens, float *logits);

/* Zeroes t->grads, then accumulates the gradient of the mean masked loss over n_micro
 * micro-batches (tokens (n_micro, B, T+1), mask (n_micro, B, T)) into t->grads; *loss is that mean.
 * Does not change the parameters. */
void lm_trainer_grad(lm_trainer *t, const int32_t *tokens, const uint8_t *mask, int n_micro, float *loss);

/* One optimizer step over opts.accum micro-batches (tokens (accum, B, T+1), mask (accum, B, T)):
 * gradient, global-norm clipping, AdamW with the scheduled lr. *loss (may be NULL) gets the
 * step's mean masked loss (before the update). Returns SD_OK, or SD_ERR_DATA when the loss or
 * gradient is not finite (the parameters are then left unchanged). */
int lm_trainer_step(lm_trainer *t, const int32_t *tokens, const uint8_t *mask, float *loss, sd_err *err);

/* The update half of lm_trainer_step: clips t->grads (already computed, e.g. by
 * lm_trainer_grad_weighted) by the global norm and takes one AdamW step at the scheduled lr; l is
 * the loss recorded in t->last_loss. SD_ERR_DATA (parameters unchanged) when l or the gradient
 * is not finite. */
int lm_trainer_update(lm_trainer *t, float l, sd_err *err);

/* Forward only over one micro-batch tokens (B, T+1): nll (B, T) receives, at position i of row b,
 * -log p(tokens[b][i+1] | tokens[b][0..i]) (natural log; caller's buffer). */
void lm_trainer_token_nll(lm_trainer *t, const int32_t *tokens, float *nll);

/* Per-token weights of a weighted loss: called once per row b after the forward pass with that
 * row's nll[0..T) (as lm_trainer_token_nll) and writes w[0..T) (0 = no gradient from that
 * position). Called from several threads at once for different rows: must only write w. */
typedef void (*lm_weight_fn)(void *ctx, int row, const float *nll, float *w, int T);

/* Zeroes t->grads, then accumulates into it the gradient of sum_{b,i} w[b,i] * nll[b,i] over one
 * micro-batch tokens (B, T+1), the weights w (B, T, caller's scratch) being what weigh writes for
 * each row given its nll at the current parameters (treated as constants: the gradient flows
 * through nll only). nll (B, T, may be NULL) receives the nll; *wloss (may be NULL) the weighted
 * sum. A policy-gradient loss -A log p is the weight A; any loss f(nll) has the gradient of the
 * weight f'(nll). Does not change the parameters (lm_trainer_update does). */
void lm_trainer_grad_weighted(lm_trainer *t, const int32_t *tokens, lm_weight_fn weigh, void *ctx, float *w,
                              float *nll, double *wloss);

/* ---------------------------------------------------------------- examples and batches */

/* A list of examples: token ids with a per-token target flag (1: this token is predicted and
 * counts in the loss; the first token of an example is never predicted). */
typedef struct {
    sd_vec tok;  /* int32_t, all examples concatenated */
    sd_vec tgt;  /* uint8_t, parallel to tok */
    sd_vec off;  /* size_t, n_examples + 1 offsets into tok */
} lm_examples;
void lm_examples_init(lm_examples *e);
void lm_examples_free(lm_examples *e);
/* Appends one example of n tokens; tgt NULL means every token after the first is a target. */
void lm_examples_add(lm_examples *e, const int32_t *tok, const uint8_t *tgt, size_t n);
static inline size_t lm_examples_count(const lm_examples *e) { return e->off.len ? e->off.len - 1 : 0; }

struct lm_tokenizer;
/* Appends one supervised example: BOS (if the vocabulary has one) + prompt + answer + EOS (if any),
 * with targets on the answer tokens and EOS only; control tokens written in the text (e.g.
 * "<|ctx|>") become tokens. An example longer than max_len tokens keeps its last max_len (the
 * answer matters more than the prompt's start); returns 1 when it was cut, else 0. */
int lm_examples_add_sft(lm_examples *e, const struct lm_tokenizer *tok, const char *prompt, const char *answer,
                        size_t max_len);

/* Deals examples into (B, T) rows, one example per row (cut to T+1 tokens, padded with pad_id and
 * mask 0), in an order reshuffled every epoch from seed. Its whole state is (epoch, cursor), so a
 * checkpoint restores it exactly. */
typedef struct {
    const lm_examples *ex; /* borrowed */
    int B, T;
    int32_t pad_id;
    uint64_t seed;
    uint64_t epoch;        /* completed passes */
    size_t cursor;         /* next position in order */
    int32_t *order;        /* (n_examples) permutation for the current epoch */
} lm_batcher;
int lm_batcher_init(lm_batcher *b, const lm_examples *ex, int B, int T, int32_t pad_id, uint64_t seed, sd_err *err);
void lm_batcher_free(lm_batcher *b);
/* Fills tokens (B, T+1) and mask (B, T) with the next B examples (wrapping into a new epoch). */
void lm_batcher_next(lm_batcher *b, int32_t *tokens, uint8_t *mask);
/* Repositions b at (epoch, cursor) exactly as if it had been advanced there. */
void lm_batcher_seek(lm_batcher *b, uint64_t epoch, size_t cursor);

/* ---------------------------------------------------------------- checkpoints */

/* Writes the trainable block, AdamW m and v, step, RNG and the batcher position (b may be NULL)
 * to a versioned binary file, atomically. */
int lm_checkpoint_save(const lm_trainer *t, const lm_batcher *b, const char *path, sd_err *err);
/* Restores a checkpoint into a trainer built with the same model config and options; refuses a
 * foreign, truncated or mismatched file with a message saying what differs. */
int lm_checkpoint_load(lm_trainer *t, lm_batcher *b, const char *path, sd_err *err);

/* ---------------------------------------------------------------- training loop */

/* Called after every optimizer step (may be NULL). Return nonzero to stop early. */
typedef int (*lm_train_cb)(void *ctx, const lm_trainer *t, float loss, double tokens_per_s);

/* Runs opts.steps - t->step optimizer steps drawing micro-batches from b (data-parallel: b deals
 * whole batches of opts.batch rows on every rank and each rank trains on its rows), showing an sd_progress
 * bar labelled label (loss, tokens/s, ETA). *final_loss gets the mean loss of the last step(s).
 * Returns SD_OK or the first step error. */
int lm_train_run(lm_trainer *t, lm_batcher *b, const char *label, lm_train_cb cb, void *ctx, float *final_loss,
                 double *tokens_per_s, sd_err *err);

#endif
