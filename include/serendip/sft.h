/* sft.h - supervised fine-tuning examples from JSON lines, and the matching prompt encoding.
 *
 * Each line of the file is {"prompt": "...", "answer": "..."}. An example's tokens are
 * BOS + encode(prompt, specials parsed) + encode(answer) + EOS (lm_examples_add_sft); only the
 * answer tokens and the EOS are targets (the loss mask), so fine-tuning learns to answer, not to
 * repeat prompts. lm_sft_encode_prompt gives the same prefix for inference, so a fine-tuned
 * model is always prompted exactly as it was trained. */
#ifndef SERENDIP_SFT_H
#define SERENDIP_SFT_H

#include "serendip/lm_train.h"
#include "serendip/tokenizer.h"

/* Calls fn(ctx, obj, line) for every non-blank line of the JSON-lines file path, in order (obj is
 * freed after the call). A line that is not a JSON object fails with SD_ERR_DATA naming
 * "<path>:<line>"; a nonzero return of fn stops the walk and is returned. */
struct cJSON;
typedef int (*lm_jsonl_fn)(void *ctx, const struct cJSON *obj, long line, sd_err *err);
int lm_jsonl_each(const char *path, lm_jsonl_fn fn, void *ctx, sd_err *err);

/* Appends every line of path to ex, each cut to its last max_len tokens (0: no cut). Fails with
 * SD_ERR_DATA naming "<path>:<line>" for malformed JSON or a missing / non-string field, or for a
 * file without examples. n_read, longest (tokens of the longest example) and n_cut (examples cut)
 * may be NULL. */
int lm_sft_load_jsonl(const lm_tokenizer *tok, const char *path, size_t max_len, lm_examples *ex, size_t *n_read,
                      int *longest, size_t *n_cut, sd_err *err);

/* BOS (when the vocabulary has one) + encode(prompt, specials parsed) into *out (caller frees);
 * returns the token count. */
int lm_sft_encode_prompt(const lm_tokenizer *tok, const char *prompt, int32_t **out);

#endif
