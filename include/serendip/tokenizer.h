/* tokenizer.h - the tokenizers of GGUF files: byte-level BPE (GPT-2 style, tokenizer.ggml.model
 * "gpt2", with the pre-tokenizers of the common families) and SentencePiece (model "llama");
 * BPE training, encode/decode, special tokens.
 *
 * A BPE tokenizer is a vocabulary of token strings plus a ranked list of merges, exactly what a
 * `gpt2`-model GGUF stores (tokenizer.ggml.tokens / .merges / .token_type). Token strings use
 * GPT-2's bytes_to_unicode mapping (every byte is one printable code point), so any byte
 * sequence, valid UTF-8 or not, encodes and decodes back exactly. Text is first split by the
 * pre-tokenizer named by tokenizer.ggml.pre (GPT-2's regex unless tok_set_pre chose another; see
 * tokenizer.c); merges never cross a pre-token boundary.
 *
 * A SentencePiece tokenizer (TinyLlama, Llama 2) is a vocabulary of pieces with scores
 * (tokenizer.ggml.scores); spaces are U+2581 in the pieces, and bytes without a piece become the
 * <0xAB> byte tokens (byte fallback). It encodes as llama.cpp does: a space is put before the text
 * and after each special token (tokenizer.ggml.add_space_prefix, default on), so decoding gives
 * the text back with that leading space.
 *
 * Layout of a vocabulary trained by tok_train (fixed convention, relied on by the planner):
 *   ids 0..255           the 256 single-byte tokens, id == byte value
 *   ids 256..262         the control tokens, in this order: TOK_BOS .. TOK_SCORE below
 *   ids 263..            merged tokens, in merge order (rank r -> id 263 + r)
 * A vocabulary loaded from GGUF (e.g. GPT-2's own) keeps the file's ids; find its specials
 * with tok_special(), which returns -1 for a name the vocabulary lacks. */
#ifndef SERENDIP_TOKENIZER_H
#define SERENDIP_TOKENIZER_H

#include "serendip/base.h"

typedef struct lm_tokenizer lm_tokenizer; /* opaque; tok_free */

/* Token types: the values llama.cpp stores in tokenizer.ggml.token_type. */
enum {
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6,
};

/* The control tokens of a serendip vocabulary (ids TOK_SPECIAL_BASE + index when trained). */
#define TOK_SPECIAL_BASE 256
#define TOK_N_SPECIAL 7
#define TOK_BOS "<|bos|>"
#define TOK_EOS "<|eos|>"
#define TOK_PAD "<|pad|>"
#define TOK_CTX "<|ctx|>"     /* precedes the context cluster descriptions */
#define TOK_SEP "<|sep|>"     /* separates items of a list */
#define TOK_ANS "<|ans|>"     /* precedes the answer the model must produce */
#define TOK_SCORE "<|score|>" /* precedes the alignment score */
extern const char *const tok_special_names[TOK_N_SPECIAL]; /* in id order */

/* Trains a byte-level BPE on text[0..len) until the vocabulary has vocab_size tokens
 * (256 bytes + TOK_N_SPECIAL specials + merges; 263 <= vocab_size <= 65536) or no pair occurs
 * twice. Deterministic: ties between equally frequent pairs go to the smaller (left id, right id).
 * On success *out is a new tokenizer (caller frees with tok_free). */
int tok_train(const char *text, size_t len, int32_t vocab_size, lm_tokenizer **out, sd_err *err);

/* Builds a tokenizer from a stored vocabulary (what lm_gguf_load_tokenizer reads):
 * tokens[n_tokens] NUL-terminated GPT-2-mapped strings, types[n_tokens] (NULL: all NORMAL),
 * merges[n_merges] strings "left right" in rank order. bos/eos/pad ids or -1.
 * Fails with SD_ERR_FORMAT naming the first bad token or merge. Copies everything. The
 * pre-tokenizer is GPT-2's; tok_set_pre chooses another. A byte without a token is allowed (it
 * is dropped when met, as llama.cpp does); a byte token that does not decode to its byte is not. */
int tok_from_vocab(const char *const *tokens, const int32_t *types, int32_t n_tokens,
                   const char *const *merges, int32_t n_merges, int32_t bos, int32_t eos, int32_t pad,
                   lm_tokenizer **out, sd_err *err);

/* Chooses the BPE pre-tokenizer by its tokenizer.ggml.pre value, as llama.cpp maps it: "gpt-2",
 * "llama-bpe", "qwen2", "starcoder" (and "refact", "command-r", "smollm", ...), "default" (also
 * NULL or "": the key absent), and the aliases llama.cpp treats the same (tok_supported_pre).
 * Anything else: SD_ERR_FORMAT naming the value and the supported ones; t unchanged. */
int tok_set_pre(lm_tokenizer *t, const char *pre, sd_err *err);
const char *tok_supported_pre(void); /* human-readable list of the accepted values (static) */

/* Builds a SentencePiece tokenizer: tokens[n_tokens] pieces as stored (U+2581 for space),
 * scores[n_tokens] (NULL: all 0), types[n_tokens] (NULL: all NORMAL; BYTE tokens must read
 * "<0xAB>"), bos/eos/pad ids or -1, add_space_prefix as tokenizer.ggml.add_space_prefix.
 * Fails with SD_ERR_FORMAT when a byte has neither a <0xAB> token nor a one-byte piece. Copies
 * everything. */
int tok_from_spm(const char *const *tokens, const float *scores, const int32_t *types, int32_t n_tokens, int32_t bos,
                 int32_t eos, int32_t pad, int add_space_prefix, lm_tokenizer **out, sd_err *err);

/* Reads the tokenizer of an open GGUF file (tokenizer.ggml.*): model "gpt2" with a supported
 * tokenizer.ggml.pre, or model "llama". Any other model or pre value: SD_ERR_FORMAT naming the
 * value and the supported ones. On success *out is new (tok_free). (lm_gguf_load_tokenizer
 * calls this.) */
struct gguf_file;
int tok_load_gguf(const struct gguf_file *g, lm_tokenizer **out, sd_err *err);

void tok_free(lm_tokenizer *t);

int32_t tok_vocab_size(const lm_tokenizer *t);
/* Id of a control token by its text ("<|eos|>"), or -1. "<|bos|>", "<|eos|>", "<|pad|>" also
 * resolve to the vocabulary's declared bos/eos/pad ids (e.g. GPT-2's "<|endoftext|>"). */
int32_t tok_special(const lm_tokenizer *t, const char *name);
int32_t tok_bos(const lm_tokenizer *t); /* -1 if none */
int32_t tok_eos(const lm_tokenizer *t);
int32_t tok_pad(const lm_tokenizer *t);

/* Encodes text[0..len) into ids. USER_DEFINED token texts always become those tokens; with
 * parse_specials, CONTROL (and UNKNOWN) token texts do too; without, they are ordinary text
 * (llama.cpp's rules: longest special first). Writes min(count, cap) ids to
 * out and the full count to *n; returns SD_OK, or SD_ERR_USAGE when cap was too small (call
 * again with cap >= *n). Never adds BOS/EOS by itself. */
int tok_encode(const lm_tokenizer *t, const char *text, size_t len, int32_t *out, size_t cap, size_t *n,
               int parse_specials);

/* The raw bytes of token id (borrowed, valid until tok_free; *len its length; not NUL-safe:
 * a piece may contain NUL bytes). Control tokens give their text ("<|eos|>"); use
 * tok_token_type to skip them. NULL for an id out of range. */
const char *tok_decode_piece(const lm_tokenizer *t, int32_t id, size_t *len);

/* Concatenates the pieces of ids[0..n) into out (no NUL added). Writes min(bytes, cap) bytes and
 * the full byte count to *len; SD_OK, or SD_ERR_USAGE if cap was too small or an id is out of
 * range (out-of-range ids contribute nothing). out may be NULL with cap 0 to query the size. */
int tok_decode(const lm_tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap, size_t *len);

/* For tests: 1 makes tok_encode use the plain O(n^2) merge loop for every pre-token (the
 * reference), 0 (default) the heap for long ones. Process-wide; not thread-safe to flip. */
void tok_set_reference_bpe(int on);

/* For tests: the pre-tokens of text[0..len) under t's pre-tokenizer, as byte end offsets
 * (ends[i] is where pre-token i ends; no special-token handling). An SPM tokenizer has one
 * piece. Writes min(count, cap) ends and the count to *n; SD_ERR_USAGE if cap was too small. */
int tok_pretokenize(const lm_tokenizer *t, const char *text, size_t len, size_t *ends, size_t cap, size_t *n);

/* For tests: 1 makes the hand-written pre-tokenizer stages (GPT-2, Llama 3, Qwen2 rules) run as
 * the regexes they implement, through PCRE2 (the reference); 0 (default) the hand-written code.
 * Process-wide; not thread-safe to flip. */
void tok_set_reference_pre(int on);

/* Stored form, for writers (GGUF): the GPT-2-mapped token string (borrowed, NUL-terminated),
 * its type, and merge rank r as "left right" (borrowed). */
const char *tok_token_text(const lm_tokenizer *t, int32_t id);
int32_t tok_token_type(const lm_tokenizer *t, int32_t id);
int32_t tok_n_merges(const lm_tokenizer *t);
const char *tok_merge(const lm_tokenizer *t, int32_t rank);
const char *tok_model_name(const lm_tokenizer *t); /* tokenizer.ggml.model: "gpt2" or "llama" */
const char *tok_pre_name(const lm_tokenizer *t);   /* tokenizer.ggml.pre it was chosen by ("gpt-2" if none); NULL for SPM */
float tok_token_score(const lm_tokenizer *t, int32_t id); /* SPM score; 0 for BPE */
int tok_add_space_prefix(const lm_tokenizer *t);   /* 1 for an SPM tokenizer that adds one */

#endif
