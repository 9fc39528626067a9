/* rl.h - the alternative the paper rejected: fine-tuning the novelty model by reinforcement
 * learning against the alignment model's reward (docs/training.md, "RL").
 *
 * Policy gradient with group-relative advantages (GRPO): each step samples `group` completions
 * for each of `contexts` random valid contexts from the current policy (temperature 1, no
 * top-p: the policy itself), rewards each with the alignment model's expected score of the
 * generated text (md_align_scores: the same scoring as `plan`, applied to whatever was generated),
 * and minimises, over every generated token (the stop token included),
 *     mean_tokens [ A * nll + beta * k3 ],   k3 = exp(d) - d - 1,  d = nll - nll_ref,
 * where nll = -log pi(token), nll_ref the same under the frozen SFT model, A the sequence's
 * advantage. k3 is the usual non-negative token-level estimate of KL(pi || ref); it and its
 * gradient are 0 when pi equals the reference. The gradient flows through the trainer's own
 * backward pass (lm_trainer_grad_weighted) with the per-token weight dL/dnll = A + beta (exp(d) - 1).
 *
 * Rewards: raw (what the paper's setup gives: the alignment model scores any text, valid or not),
 * or guarded (0 for an output that is not exactly the description of a cluster outside the
 * context). Outputs: ws/models/rl.gguf (raw) or rl_guarded.gguf, and the run's records under
 * "runs"/<variant> in ws/models/rl.json. */
#ifndef SERENDIP_RL_H
#define SERENDIP_RL_H

#include "serendip/base.h"

#define RL_JSON "rl.json"
#define RL_MODEL_RAW "rl.gguf"
#define RL_MODEL_GUARDED "rl_guarded.gguf"

typedef struct {
    int steps;          /* optimizer steps (default 2000) */
    double max_seconds; /* also stop once the run has taken this long (0 = no limit) */
    int contexts;       /* contexts per step (default 8) */
    int group;          /* completions per context (default 4) */
    float lr;           /* AdamW learning rate, constant after a 10-step warm-up (default 1e-4) */
    float beta;         /* weight of the KL term (default 0.04, as GRPO; 0 allowed) */
    int std_norm;       /* 1: advantages divided by the group's standard deviation (default 1) */
    int guarded;        /* 1: reward 0 for an output that is not a valid novel cluster description */
    int every;          /* record every k steps (default 50; also step 0 and the last) */
    int eval_contexts;  /* the fixed context set of the records (default 64) */
    int eval_samples;   /* samples per context of that set (default 4) */
    uint64_t seed;
    const char *out;    /* model file name under ws/models (NULL: rl.gguf, or rl_guarded.gguf) */
} rl_opts;
void rl_opts_default(rl_opts *o);

/* One record of the run (every `every` steps). */
typedef struct {
    int step;           /* optimizer steps taken */
    double seconds;     /* since the start */
    double reward;      /* mean training reward over the steps since the previous record */
    double kl;          /* mean token-level k3 estimate of KL(pi || ref) over those steps' tokens */
    /* free generation on the fixed context set (temperature 1, top-p 0.95 as `plan`): */
    double compliance;  /* share of samples that are exactly one cluster description */
    double distinct;    /* distinct outputs / samples */
    double novelty;     /* share of samples that are a description of a cluster outside the context */
    double eval_reward; /* mean raw alignment score of those samples */
} rl_record;

typedef struct {
    int steps;          /* steps taken (fewer than asked when max_seconds stopped the run) */
    double seconds;
    rl_record *rec;     /* (n_rec) owned; free with rl_report_free */
    int n_rec;
    char model[512];    /* path written */
} rl_report;
void rl_report_free(rl_report *r);

/* Runs the fine-tuning on a workspace (needs taxonomy.bin, journeys.bin, models/novelty.gguf,
 * models/align.gguf), writes the model and its entry in models/rl.json. */
int rl_train(const char *ws, const rl_opts *o, rl_report *rep, sd_err *err);

/* ---------------------------------------------------------------- the pieces (tested alone) */

/* Group-relative advantages: r and adv are (n_groups, g); adv = r - mean of its group, divided by
 * the group's population standard deviation when std_norm (a group with std < 1e-6 gets 0). */
void rl_group_advantages(const float *r, int n_groups, int g, int std_norm, float *adv);

/* The per-token loss A * nll + beta * k3(nll - nll_ref) (see above), and its derivative in nll. */
double rl_token_loss(float nll, float nll_ref, float adv, float beta);
float rl_token_weight(float nll, float nll_ref, float adv, float beta);

/* The per-token weights of the policy loss for lm_trainer_grad_weighted (an lm_weight_fn over an
 * rl_weights): w[i] = scale * rl_token_weight(nll[i], ref[row*T+i], adv[row], beta) where gen is 1,
 * else 0. */
typedef struct {
    const float *adv;   /* (B) advantage of each row (sequence) */
    const float *ref;   /* (B, T) nll of the same tokens under the reference model */
    const uint8_t *gen; /* (B, T) 1 at the positions that predict a generated token */
    float beta, scale;  /* scale: 1 / the number of generated tokens of the step (a token mean) */
} rl_weights;
void rl_weigh(void *rl_weights_ctx, int row, const float *nll, float *w, int T);

#endif
