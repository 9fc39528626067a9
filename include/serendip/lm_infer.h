/* lm_infer.h - batched KV-cache inference, sampling, constrained decoding and scoring.
 *
 * The workload this is built for is best-of-n: many prompts, n samples each, a dozen new tokens.
 * A prompt is prefilled once (consecutive prompts of a call that start with the same tokens
 * compute that common prefix once: its keys/values are copied); its n samples read the prompt's
 * key/value cache in place (no copy)
 * and keep only their own generated tokens' keys/values. Every weight matrix is applied to the
 * whole batch of rows with one sgemm per layer. Calls batch internally in chunks of max_rows rows.
 *
 * Token sequences are int32 ids of the model's vocabulary; the caller tokenizes (tok_encode). No
 * BOS is added here: put one in the prompt if the model was trained with it.
 *
 * Log-probabilities reported here are always natural-log, under the model's own distribution at
 * temperature 1 (log-softmax of the raw logits), whatever sampler was used to choose the tokens,
 * unless a field says "renormalised". */
#ifndef SERENDIP_LM_INFER_H
#define SERENDIP_LM_INFER_H

#include "serendip/base.h"
#include "serendip/lm.h"

/* ---------------------------------------------------------------- inference context */

typedef struct lm_infer lm_infer;

/* A context for model m (borrowed: must outlive the context). max_rows = rows per batched forward
 * (sequences decoded at once; e.g. 256-1024), max_seq = longest prompt + new tokens a call may
 * use (calls beyond it are refused with SD_ERR_USAGE; it may exceed the model's seq_len, RoPE
 * has no limit). Returns NULL and fills err on a bad argument. Caches grow on demand between
 * calls, never inside a step. A context serves one call at a time (use one per thread); the
 * calls use OpenMP internally and set OpenBLAS to one thread while they run. */
lm_infer *lm_infer_new(const lm_model *m, int max_rows, int max_seq, sd_err *err);
void lm_infer_free(lm_infer *inf);

/* Work done by a context's forward passes since its creation (or the last reset): what the plan
 * reports to compare its achieved FLOP rate with sgemm's (bench/plan.sh). FLOPs are counted per
 * forwarded row as 2 x multiply-adds of the matrix products actually done:
 *   per layer   2 D (2 D + 2 KvD) + 6 D H        (q, o; k, v; w1, w3, w2)
 *             + 4 n_heads head_dim t              (scores and weighted values over the t positions
 *                                                  the row attends to)
 *   per logits  2 D V                             (the output head, rows that want logits only)
 * except that in the last layer a row without logits computes only its key and value (2 D 2 KvD):
 * nothing reads the rest of its output.
 * Norms, RoPE, SwiGLU, softmax and sampling are not counted (they are O(D) or O(V) per row). */
typedef struct {
    int64_t rows;       /* rows forwarded (one token of one sequence each) */
    int64_t logit_rows; /* of which went through the output head */
    int64_t forwards;   /* batched forward calls */
    double flops;
} lm_infer_stats;
void lm_infer_get_stats(const lm_infer *inf, lm_infer_stats *st);
void lm_infer_reset_stats(lm_infer *inf);

/* The plain reference forward: one sequence, no cache, naive loops in double accumulators.
 * Writes logits (n, V) for every position. Slow; for tests. */
void lm_forward_reference(const lm_model *m, const int32_t *tokens, int n, float *logits);

/* ---------------------------------------------------------------- sampling (sample.c) */

typedef struct {
    float temperature; /* 0 = greedy (argmax); otherwise logits / temperature */
    int top_k;         /* keep the k most likely tokens; 0 = off */
    float top_p;       /* nucleus: smallest top set with probability >= top_p; >= 1 = off */
    uint64_t seed;     /* the stream of sample s of a prompt is a function of (seed, prompt tokens,
                          s) only, so results do not depend on batch composition or order */
} lm_sampler;

/* Greedy defaults: temperature 0, top_k 0, top_p 1, seed 0. */
lm_sampler lm_sampler_greedy(void);

/* Seeds the RNG stream of sample `sample` of a prompt (see lm_sampler.seed). */
void lm_sampler_stream(sd_rng *rng, uint64_t seed, const int32_t *prompt, int prompt_len, int sample);

/* Draws one token from logits (V floats, not modified) restricted to cand[0..n_cand) (or all V when
 * cand is NULL), applying temperature, top-k and top-p in that order over the candidates. scratch
 * must hold 3 * (cand ? n_cand : V) floats. Returns the token id. */
int32_t lm_sample(const lm_sampler *s, const float *logits, int V, const int32_t *cand, int n_cand,
                  sd_rng *rng, float *scratch);

/* n draws from the same logits, out[i] from rngs[i]: exactly what n calls of lm_sample would give
 * (same tokens, same RNG use), with the distribution (softmax, top-k/top-p) built once. */
void lm_sample_many(const lm_sampler *s, const float *logits, int V, const int32_t *cand, int n_cand,
                    sd_rng *const *rngs, int n, int32_t *out, float *scratch);

/* log-softmax of logits at `token` (temperature 1, over all V). */
float lm_logprob_of(const float *logits, int V, int32_t token);
/* log(sum_i exp(logits[i])) over V logits, with their maximum in *mx: expf terms summed in double
 * (vectorised). lm_logprob_of and the generators' log-probabilities all go through it, so they
 * agree to the bit. */
double lm_logsumexp(const float *logits, int V, float *mx);

/* ---------------------------------------------------------------- free generation */

typedef struct {
    int n;            /* n_prompts * n_samples; sequence i = prompt i / n_samples, sample i % n_samples */
    int max_new;      /* row stride of tokens */
    int32_t *tokens;  /* (n, max_new) generated tokens, the stop token excluded */
    int *len;         /* (n) tokens generated */
    int *stopped;     /* (n) 1 when the stop token was produced */
    float *logprob;   /* (n) sum of log-softmax of the generated tokens, stop token included */
} lm_gen_out;

/* Samples n_samples continuations of each prompt, up to max_new tokens each, stopping at stop_id
 * (-1 for none). out is allocated here; free with lm_gen_out_free. */
int lm_generate(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                int n_samples, const lm_sampler *s, int max_new, int32_t stop_id, lm_gen_out *out,
                sd_err *err);
void lm_gen_out_free(lm_gen_out *out);

/* lm_generate with the samples of a prompt that have drawn the same tokens so far sharing one
 * forward row (their logits are the same; each still draws from its own RNG stream, so the
 * samples are those of lm_generate up to float rounding of the batch). At a branch the new
 * sequence's keys/values are copied from its parent. Same contract and output as lm_generate. */
int lm_generate_shared(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                       int n_samples, const lm_sampler *s, int max_new, int32_t stop_id, lm_gen_out *out,
                       sd_err *err);

/* ---------------------------------------------------------------- constrained decoding (trie.c) */

/* A token trie over a set of allowed strings, each given by its token sequence (the canonical
 * tokenization of the string, as tok_encode produces it) followed by an end token (EOS). */
typedef struct lm_trie lm_trie;

/* Builds the trie. seqs[i] (lens[i] tokens, >= 1) is allowed string i; end_id terminates every
 * string. Refuses empty sequences, ids outside [0, vocab) or == end_id inside a sequence, and two
 * strings with the same token sequence (SD_ERR_DATA naming both indices). */
lm_trie *lm_trie_new(const int32_t *const *seqs, const int *lens, int n, int32_t end_id, int32_t vocab,
                     sd_err *err);
void lm_trie_free(lm_trie *t);
int lm_trie_count(const lm_trie *t);     /* number of allowed strings */
int lm_trie_max_depth(const lm_trie *t); /* longest sequence + 1 (the end token) */
int lm_trie_n_nodes(const lm_trie *t);
/* Walks the trie along tokens; returns the string index when tokens is exactly a string followed
 * by the end token, else -1. */
int lm_trie_match(const lm_trie *t, const int32_t *tokens, int n);
/* Navigation. Node 0 is the root; nodes are numbered breadth-first (depth never decreases). */
int32_t lm_trie_end(const lm_trie *t);
/* Children of node sorted by token: *tokens[j] leads to node (*children)[j]; returns the count. */
int lm_trie_children(const lm_trie *t, int node, const int32_t **tokens, const int **children);
int lm_trie_step(const lm_trie *t, int node, int32_t tok); /* child along tok, or -1 */
int lm_trie_leaf(const lm_trie *t, int node);   /* string index if node ends a string, else -1 */
int lm_trie_only(const lm_trie *t, int node);   /* the one string below node when exactly one is, else -1 */
int lm_trie_depth(const lm_trie *t, int node);  /* tokens from the root */
int lm_trie_parent(const lm_trie *t, int node); /* -1 for the root */
int32_t lm_trie_token(const lm_trie *t, int node); /* token of the edge into node, -1 for the root */

/* Samples n_samples strings of the trie after each prompt. At each step only the trie children
 * of the current node are candidates; the sampler (temperature/top-k/top-p) acts on the model's
 * logits restricted to those candidates. For sequence i (as in lm_gen_out): choice[i] = index of
 * the completed string; logprob[i] = sum of the unconstrained log-softmax of its tokens + end
 * token (the model's probability of producing exactly that string); logprob_renorm[i] (may be
 * NULL) = the same with the softmax renormalised over the allowed children at each step.
 * Samples of a prompt at the same trie node share one forward row (as lm_generate_shared).
 * logprob may be NULL: then a sample whose prefix leaves one string only (lm_trie_only) is
 * completed without forward passes. Its forced tokens have renormalised probability 1, so
 * choice and logprob_renorm are the same as with logprob given; only the unconstrained
 * log-probability, which would need them, is not computed. */
int lm_generate_constrained(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len,
                            int n_prompts, int n_samples, const lm_sampler *s, const lm_trie *trie,
                            int *choice, float *logprob, float *logprob_renorm, sd_err *err);

/* Exact log-probability of every allowed string (tokens + end token, unconstrained log-softmax)
 * after each prompt: out is (n_prompts, lm_trie_count). Each trie node is evaluated once per
 * prompt (shared prefixes are computed once). */
int lm_trie_logprobs(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len,
                     int n_prompts, const lm_trie *trie, float *out, sd_err *err);

/* ---------------------------------------------------------------- scoring */

/* out (n_prompts, V): log-softmax of the next token after each prompt. */
int lm_next_logprobs(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len,
                     int n_prompts, float *out, sd_err *err);

/* out (n, V): log-softmax of the next token after prompts[cont_prompt[i]] + conts[i] (cont_len[i]
 * tokens, may be 0). Each prompt is prefilled once and shared by all its continuations, so
 * scoring many candidates after one context costs only the candidates' tokens; continuations of
 * the same prompt that start with the same tokens compute that common prefix once, and equal
 * continuations are computed once. cont_prompt must be non-decreasing. (The alignment model's
 * workload: one context, many candidate clusters.) */
int lm_next_logprobs_after(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                           const int32_t *const *conts, const int *cont_len, const int *cont_prompt, int n, float *out,
                           sd_err *err);

/* As lm_next_logprobs_after, but out (n, n_pick) holds only the raw logits (before any softmax)
 * of the tokens pick[0..n_pick) after each continuation: for a caller that needs a distribution
 * over a few tokens (the alignment score over ten digits), where the softmax over V cancels. */
int lm_next_logits_after(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                         const int32_t *const *conts, const int *cont_len, const int *cont_prompt, int n,
                         const int32_t *pick, int n_pick, float *out, sd_err *err);

/* out[i] = sum over the tokens of continuation i of their log-softmax after prompt + the previous
 * tokens of continuation i. The prompt is prefilled once for all n continuations. */
int lm_score_continuations(lm_infer *inf, const int32_t *prompt, int prompt_len,
                           const int32_t *const *conts, const int *cont_len, int n, float *out,
                           sd_err *err);

#endif
