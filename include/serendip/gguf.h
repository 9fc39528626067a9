/* gguf.h - GGUF v3 files: a bounds-checked reader, an atomic writer, and Llama models in GGUF.
 *
 * GGUF (ggml's format, see docs/formats-gguf.md): magic "GGUF", version, tensor count, KV count,
 * typed key/value metadata, tensor infos (name, dims ne[] innermost first, ggml type, offset),
 * padding to general.alignment (default 32), then the tensor data. Little-endian.
 *
 * Reader (gguf_file): mmaps the file and checks every length, count, offset and type against the
 * file size before anything is used; a truncated, foreign, wrong-version or inconsistent file is
 * refused with SD_ERR_FORMAT and a message naming the file and what is wrong.
 * Writer (gguf_writer): collects KVs and tensors, then writes the file atomically.
 * lm_gguf_*: the `llama` and `qwen2` architectures' keys and tensor names as llama.cpp expects
 * them, plus the tokenizer as `gpt2` BPE metadata. */
#ifndef SERENDIP_GGUF_H
#define SERENDIP_GGUF_H

#include "serendip/base.h"
#include "serendip/lm.h"
#include "serendip/tokenizer.h"

#define GGUF_VERSION 3
#define GGUF_DEFAULT_ALIGNMENT 32

/* Metadata value types (gguf_type in ggml). */
typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

/* Tensor types (ggml_type values) that serendip converts; the reader knows the block sizes of
 * every ggml type so it can bounds-check (and `lm info` can describe) files using others. */
#define GGUF_TENSOR_F32 0
#define GGUF_TENSOR_F16 1
#define GGUF_TENSOR_Q8_0 8
/* (and the Q4_0, Q4_K, Q5_K, Q6_K numbers of lm_quant.h, LM_Q_*) */

const char *gguf_type_name(gguf_type t);     /* "u32", "string", ... */
const char *gguf_tensor_type_name(uint32_t t); /* "F32", "Q8_0", ... or NULL if unknown */

/* ---------------------------------------------------------------- reader */

typedef struct gguf_file gguf_file; /* opaque */

typedef struct {
    const char *name;   /* NUL-terminated copy */
    uint32_t n_dims;    /* 1..4 */
    int64_t ne[4];      /* elements per dim, ne[0] innermost (row length); unused dims are 1 */
    uint32_t type;      /* ggml type */
    uint64_t offset;    /* from the start of the data section */
    size_t nbytes;
    const void *data;   /* borrowed: points into the mapping */
} gguf_tensor;

/* Opens and validates path (mmap). *out owns the mapping; gguf_close releases it. */
int gguf_open(gguf_file **out, const char *path, sd_err *err);
/* Same over a caller's buffer (borrowed; must outlive *out). name is used in messages. */
int gguf_parse(gguf_file **out, const void *data, size_t size, const char *name, sd_err *err);
void gguf_close(gguf_file *g);

uint32_t gguf_version(const gguf_file *g);
size_t gguf_alignment(const gguf_file *g);
const char *gguf_name(const gguf_file *g); /* file name given to open/parse */

/* KVs, in file order. */
int64_t gguf_n_kv(const gguf_file *g);
const char *gguf_kv_key(const gguf_file *g, int64_t i);
gguf_type gguf_kv_type(const gguf_file *g, int64_t i);
gguf_type gguf_kv_arr_type(const gguf_file *g, int64_t i); /* element type of an ARRAY */
uint64_t gguf_kv_arr_n(const gguf_file *g, int64_t i);
int64_t gguf_find_kv(const gguf_file *g, const char *key); /* index or -1 */

/* Typed getters. Each returns SD_OK, or SD_ERR_FORMAT with "<file>: key <key> missing" or
 * "... has type X, expected Y". gguf_get_int accepts any integer type (and bool), checking that the
 * value fits; gguf_get_float accepts f32 and f64. Strings are borrowed, not NUL-terminated in the
 * file: use the length (gguf_get_str copies into a NUL-terminated heap string the caller frees). */
int gguf_get_int(const gguf_file *g, const char *key, int64_t *out, sd_err *err);
int gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out, sd_err *err);
int gguf_get_i32(const gguf_file *g, const char *key, int32_t *out, sd_err *err);
int gguf_get_float(const gguf_file *g, const char *key, double *out, sd_err *err);
int gguf_get_f32(const gguf_file *g, const char *key, float *out, sd_err *err);
int gguf_get_bool(const gguf_file *g, const char *key, int *out, sd_err *err);
int gguf_get_str(const gguf_file *g, const char *key, char **out, sd_err *err);
/* A raw string view: *s points into the mapping, *len its length. */
int gguf_get_strv(const gguf_file *g, const char *key, const char **s, uint64_t *len, sd_err *err);
/* Arrays: element type and count; for numeric arrays *data points at n packed little-endian
 * elements (possibly unaligned; memcpy them). String arrays: use gguf_get_arr_str. */
int gguf_get_arr(const gguf_file *g, const char *key, gguf_type *elem, uint64_t *n, const void **data,
                 sd_err *err);
/* Element j of the string array at KV index i: borrowed view. */
int gguf_get_arr_str(const gguf_file *g, int64_t i, uint64_t j, const char **s, uint64_t *len);
/* An int32/uint32 (or any integer) array copied into a fresh int32 array (caller frees). */
int gguf_get_arr_i32(const gguf_file *g, const char *key, int32_t **out, uint64_t *n, sd_err *err);

/* Tensors, in file order. */
int64_t gguf_n_tensors(const gguf_file *g);
const gguf_tensor *gguf_tensor_at(const gguf_file *g, int64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name); /* NULL if absent */
/* Converts n elements of a tensor of any lm_quant.h type to floats (n = product of ne). */
int gguf_tensor_to_f32(const gguf_file *g, const gguf_tensor *t, float *out, sd_err *err);

/* ---------------------------------------------------------------- writer */

typedef struct gguf_writer gguf_writer; /* opaque */

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
/* Setting a key twice replaces the value. Values are copied. */
void gguf_set_str(gguf_writer *w, const char *key, const char *val);
void gguf_set_u32(gguf_writer *w, const char *key, uint32_t val);
void gguf_set_i32(gguf_writer *w, const char *key, int32_t val);
void gguf_set_u64(gguf_writer *w, const char *key, uint64_t val);
void gguf_set_f32(gguf_writer *w, const char *key, float val);
void gguf_set_bool(gguf_writer *w, const char *key, int val);
void gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *vals, size_t n);
void gguf_set_arr_i32(gguf_writer *w, const char *key, const int32_t *vals, size_t n);
void gguf_set_arr_f32(gguf_writer *w, const char *key, const float *vals, size_t n);
/* Adds a tensor with n_dims dims ne[] (ne[0] innermost) from float data (borrowed until
 * gguf_writer_write), stored as type GGUF_TENSOR_F32, GGUF_TENSOR_F16 (round to nearest even) or
 * GGUF_TENSOR_Q8_0 (ggml's reference quantizer; ne[0] a multiple of 32). SD_ERR_USAGE on a
 * duplicate name, bad dims or unsupported type. */
int gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                    const float *data, sd_err *err);
/* Same with data already encoded in type (lm_qrow_bytes(type, ne[0]) bytes per row, borrowed). */
int gguf_add_tensor_raw(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                        const void *bytes, sd_err *err);
/* Writes the file atomically; tensor data aligned to general.alignment (set as a u32 KV to
 * change it; default 32). */
int gguf_writer_write(gguf_writer *w, const char *path, sd_err *err);

/* ---------------------------------------------------------------- Llama models */

/* Fills w with the llama architecture KVs, the tokenizer metadata (if t) and the tensors of m
 * (borrowed: m must outlive the write) stored as tensor_type (see lm_gguf_save_as). Callers may add their
 * own KVs (use the "serendip." prefix, e.g. serendip.role) before gguf_writer_write. */
int lm_gguf_build(gguf_writer *w, const lm_model *m, const lm_tokenizer *t, const char *name,
                  uint32_t tensor_type, sd_err *err);
/* lm_gguf_build + write, F32. */
int lm_gguf_save(const char *path, const lm_model *m, const lm_tokenizer *t, const char *name, sd_err *err);
/* Same with a chosen matrix type: GGUF_TENSOR_F32, GGUF_TENSOR_F16, GGUF_TENSOR_Q8_0 or lm_quant.h's
 * Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (for inference or a QLoRA base; a matrix whose rows are not
 * whole blocks falls back as llama-quantize does: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; rows
 * not a multiple of 32 -> F16). Norms and biases are always F32. A quantized base (m->qm) is
 * written with its matrices as they are (tensor_type then only names general.file_type). */
int lm_gguf_save_as(const char *path, const lm_model *m, const lm_tokenizer *t, const char *name,
                    uint32_t tensor_type, sd_err *err);

/* Reads the config from llama.* (or qwen2.*) keys and the weights (any lm_quant.h type, converted
 * to F32) into a
 * freshly allocated, owned parameter block of m (free with lm_model_free). If t is non-NULL, also
 * loads the tokenizer (a file without one is then refused with SD_ERR_FORMAT). Checks every tensor's
 * presence and dims against the config, naming what is missing or wrong. */
int lm_gguf_load(const char *path, lm_model *m, lm_tokenizer **t, sd_err *err);
/* Same from an open file (to also read serendip.* keys from g). */
int lm_gguf_load_from(const gguf_file *g, lm_model *m, lm_tokenizer **t, sd_err *err);
/* Same, but matrices stored F16 or quantized (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) stay in that encoding
 * in memory (m->qm, lm.h: inference and LoRA fine-tuning of a quantized base); a file whose
 * matrices are all F32 loads as lm_gguf_load. qwen2 files: see lm.h for the q/k row order. */
int lm_gguf_load_quant(const char *path, lm_model *m, lm_tokenizer **t, sd_err *err);
int lm_gguf_load_quant_from(const gguf_file *g, lm_model *m, lm_tokenizer **t, sd_err *err);
/* Only the lm_config (from llama.* or qwen2.* keys and tensor shapes). */
int lm_gguf_read_config(const gguf_file *g, lm_config *c, sd_err *err);
/* The gpt2-style tokenizer stored in g's metadata (tokenizer.ggml.model must be "gpt2"). */
int lm_gguf_load_tokenizer(const gguf_file *g, lm_tokenizer **out, sd_err *err);

#endif
