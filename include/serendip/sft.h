/* sft.h - supervised fine-tuning examples from JSON lines.
 *
 * Each line of the file is {"prompt": "...", "answer": "..."}. The example's tokens are
 * encode(prompt, specials parsed) + encode(answer) + EOS; only the answer tokens and the EOS are
 * targets (the loss mask), so fine-tuning learns to answer, not to repeat prompts. */
#ifndef SERENDIP_SFT_H
#define SERENDIP_SFT_H

#include "serendip/lm_train.h"
#include "serendip/tokenizer.h"

/* Appends every line of path to ex. Fails with SD_ERR_DATA naming "<path>:<line>" and the field
 * for malformed JSON, a missing or non-string field, or an example longer than max_tokens
 * (max_tokens <= 0: no limit). *n_lines (may be NULL) receives the number of examples read. */
int lm_sft_load_jsonl(const lm_tokenizer *tok, const char *path, int max_tokens, lm_examples *ex, size_t *n_lines,
                      sd_err *err);

/* Appends one prompt/answer example (same token layout as above). Returns its token count. */
size_t lm_sft_add(const lm_tokenizer *tok, const char *prompt, const char *answer, lm_examples *ex);

#endif
