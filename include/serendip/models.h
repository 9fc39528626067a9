/* models.h - the `train` stage: corpora, the shared base model, and the two separate fine-tunes
 * of the method (novelty and alignment), plus the single-model baseline the paper rejects.
 *
 * Files (ws/models/): base.gguf, novelty.gguf, align.gguf, single.gguf (with --baseline),
 * *.lora.gguf (adapters, with --lora), train.json (every figure of the run); and the item-level
 * retrieval model ws/retrieval.bin (retrieve.h). */
#ifndef SERENDIP_MODELS_H
#define SERENDIP_MODELS_H

#include "serendip/corpus.h"
#include "serendip/lm.h"
#include "serendip/tokenizer.h"

#define MD_DIR "models"
#define MD_BASE "base.gguf"
#define MD_NOVELTY "novelty.gguf"
#define MD_ALIGN "align.gguf"
#define MD_SINGLE "single.gguf"
#define MD_ALIGN_PAIRWISE "align_pairwise.gguf" /* with --pairwise: the alignment model on relative labels */
#define MD_REPORT "train.json"

typedef struct {
    lm_config cfg;        /* base model shape; vocab_size is set from the trained tokenizer */
    int vocab;            /* BPE vocabulary size to train */
    int pretrain_steps;   /* optimizer steps of pretraining */
    int novelty_steps;    /* steps of each fine-tune */
    int align_steps;
    int batch;            /* rows per step */
    float lr, sft_lr;     /* peak learning rates */
    int lora_rank;        /* 0: full fine-tunes; r: rank-r LoRA adapters (merged into the saved model) */
    int baseline;         /* also fine-tune the single model on high-feedback tuples */
    int no_retrieval;     /* skip the item-level retrieval model (serving then ranks items by popularity) */
    uint64_t seed;
    const char *base;     /* NULL: train a tokenizer and a base; else start from this GGUF (its
                           * tokenizer and sizes; pretrain_steps > 0 continues pretraining on the corpus) */
    cp_opts corpus;
    int mpi;              /* train --mpi (mpi.h active): the language models train data-parallel over the
                           * ranks (lm_train_opts.dp); use md_train_mpi */
} md_opts;
void md_opts_default(md_opts *o);

typedef struct {
    double align_spearman; /* rank correlation of the model's score with the held-out pos_rate */
    double align_spearman_label; /* ... with the held-out label (rounded percentile) */
    double align_auc;      /* AUC of the score for "label in the upper half" (percentile labels >= 5) */
    int64_t align_heldout; /* tuples judged */
    /* against what the label stands for (md_tuple_refs; NaN when not computable): */
    double spearman_truth;      /* model score vs the true mean like-probability of the candidate over the
                                 * users who had the context (world only) */
    double rate_spearman_truth; /* the pooled rate itself vs the truth: how good counting is on these tuples */
    int64_t truth_tuples;       /* tuples with a truth value */
    double split_half;          /* Spearman between the pooled rates of the two halves of each tuple's users */
    double noise_ceiling;       /* sqrt(Spearman-Brown(split_half)): about the best Spearman any model can reach
                                 * against the pooled rate on these tuples */
    int64_t split_tuples;       /* tuples with exposures in both halves */
    /* on the probe (held-out tuples backed by fewer than min_users users, align_probe.jsonl): */
    double spearman_truth_sparse;      /* model score vs the truth */
    double rate_spearman_truth_sparse; /* the pooled rate of those few users vs the truth */
    int64_t sparse_tuples;
} md_align_quality;

/* Held-out agreement of the pointwise and the pairwise alignment models on pairs of held-out tuples
 * of the same context (md_pair_quality_of). A pointwise model orders a pair by its two expected
 * scores; the pairwise model by p = (P(A first wins) + 1 - P(B first wins)) / 2 > 1/2 (both orders,
 * so a position bias cancels). A tie (equal scores, p = 1/2) counts one half. */
typedef struct {
    int64_t pairs;            /* pairs whose labels differ */
    double acc_point, acc_pair; /* share ordered as the labels */
    int64_t truth_pairs;      /* pairs whose true mean like-probabilities differ (world only) */
    double truth_acc_point, truth_acc_pair; /* share ordered as the truth (NaN without one) */
} md_pair_quality;

typedef struct {
    cp_stats corpus;
    int64_t n_params;
    float pretrain_loss, novelty_loss, align_loss, single_loss; /* final training losses */
    double pretrain_s, novelty_s, align_s, single_s, retrieval_s; /* seconds */
    float pairwise_loss;  /* with corpus.pairwise: the pairwise model's final loss, */
    double pairwise_s;    /* its training seconds (as many steps as the pointwise model) */
    md_pair_quality pair_quality; /* and both models on held-out pairs */
    double tokens_per_s;                                        /* pretraining */
    md_align_quality quality;
} md_report;

/* Runs the whole stage on a workspace (needs dataset.bin, taxonomy.bin, journeys.bin). */
int md_train(const char *ws, const md_opts *o, md_report *r, sd_err *err);
/* train --mpi (models_mpi.c), on every rank: rank 0 runs md_train on ws; every other rank runs it
 * on a private scratch workspace (ws's files linked in, removed afterwards) without the retrieval
 * model, so that only rank 0 writes into ws while all ranks take part in every training step.
 * The corpora and tokenizer are deterministic, so every rank trains on the same examples. */
int md_train_mpi(const char *ws, const md_opts *o, md_report *r, sd_err *err);

/* Expected score (0..9) of the alignment model for each prompt (already formatted with
 * cp_align_prompt): sum over digits d of p(d) * d, p renormalised over the ten digit tokens. */
typedef struct lm_infer lm_infer;
int md_align_scores(lm_infer *inf, const lm_tokenizer *tok, const char *const *prompts, int n, float *out, sd_err *err);
/* The same over token ids, with shared prefixes: score i reads the tokens of prompts[cprompt[i]]
 * followed by conts[i] (clen[i] tokens; cprompt non-decreasing). The planner passes each
 * context's prompt once and its candidates as continuations. */
int md_align_scores_ids(lm_infer *inf, const lm_tokenizer *tok, const int32_t *const *prompts, const int *plen, int np,
                        const int32_t *const *conts, const int *clen, const int *cprompt, int n, float *out, sd_err *err);

/* Pairwise preference of the pairwise model: out[i] = P("A") / (P("A") + P("B")) for the next
 * token after prompts[cprompt[i]] + conts[i] (arguments as md_align_scores_ids; the prompt of a
 * pair is cp_pair_prompt: the first candidate is A). */
int md_pair_probs_ids(lm_infer *inf, const lm_tokenizer *tok, const int32_t *const *prompts, const int *plen, int np,
                      const int32_t *const *conts, const int *clen, const int *cprompt, int n, float *out, sd_err *err);

/* Judges the pointwise model at point_path and the pairwise model at pair_path on the pairs of
 * held-out tuples (heldout_path, align_heldout.jsonl) of one context; ws gives the taxonomy (for
 * the pair prompts) and the truth (md_tuple_refs). */
int md_pair_quality_of(const char *point_path, const char *pair_path, const char *heldout_path, const char *ws,
                       md_pair_quality *q, sd_err *err);

/* Judges the alignment model at model_path on the held-out tuples file (align_heldout.jsonl).
 * ws non-NULL: also against the workspace's references (md_tuple_refs), and on the probe file
 * ws/corpus/align_probe.jsonl when it exists. */
int md_align_quality_of(const char *model_path, const char *heldout_path, const char *ws, md_align_quality *q,
                        sd_err *err);

/* Reference values of tuples (ctx[i*k..], cand[i]), i < n, from the workspace's train-window
 * exposures (src/plan/align_refs.c): truth[i] = mean true like-probability of cand over the users
 * who had that context in the train window (world_truth.bin; NaN without it or without users), half_a/half_b
 * = pooled positive rate of the users whose hashed id is even / odd (NaN when a half saw none). */
int md_tuple_refs(const char *ws, int k, const int32_t *ctx, const int32_t *cand, int64_t n, double *truth,
                  double *half_a, double *half_b, sd_err *err);

#endif
