/* lm_quant.h - ggml's block-quantized weight formats: decoding, encoding and matrix products.
 *
 * A published GGUF model stores its matrices in ggml block formats (docs/formats-gguf.md); this
 * module reads them as they are, so a quantized base stays quantized in memory (inference and
 * QLoRA fine-tuning). Formats, as ggml-common.h lays them out (row-major, blocks along a row):
 *   F32, F16                   block 1
 *   Q8_0  32 elems, 34 bytes:  f16 d, int8 q[32];                     x = d q
 *   Q4_0  32 elems, 18 bytes:  f16 d, u8 qs[16] (elem j low nibble of qs[j], j+16 the high one);
 *                              x = d (q - 8)
 *   Q5_0  32 elems, 22 bytes:  f16 d, u32 qh (5th bit of elem j at bit j), u8 qs[16] as Q4_0;
 *                              x = d (q - 16)
 *   Q5_1  32 elems, 24 bytes:  f16 d, f16 m, then as Q5_0;           x = d q + m
 *   Q4_K 256 elems, 144 bytes: f16 d, f16 dmin, u8 scales[12] (8 sub-blocks of 32: 6-bit scale
 *                              sc and min m each), u8 qs[128];        x = d sc q - dmin m
 *   Q5_K 256 elems, 176 bytes: as Q4_K plus u8 qh[32] holding the 5th bit of every q
 *   Q6_K 256 elems, 210 bytes: u8 ql[128] (low 4 bits), u8 qh[64] (high 2 bits), int8 scales[16]
 *                              (one per 16 elems), f16 d;             x = d sc (q - 32)
 *
 * Why hand-written: ggml is the only library implementing these formats, and linking it would
 * clash with serendip's own gguf_* symbols (ggml exports the same names); the formats are small
 * and fixed, and the conformance check (scripts/conformance-llamacpp.sh) checks every tensor of
 * files quantized by llama.cpp's own tool decodes bit for bit as ggml decodes it (and the other
 * way round for serendip's encoders), then the logits.
 *
 * Every decoder exists twice: lm_dequant_ref (element by element from the layout above, for
 * tests) and lm_dequant_row (block loops, used by the kernels). The matrix products dequantise a
 * tile of weight rows into a stack buffer and hand it to BLAS: the dequantisation is paid once
 * per weight per call and amortised over the N rows of the batch. */
#ifndef SERENDIP_LM_QUANT_H
#define SERENDIP_LM_QUANT_H

#include "serendip/base.h"
#include "serendip/lm.h"

/* ggml_type values (same numbers as GGUF_TENSOR_* in gguf.h) */
#define LM_Q_F32 0
#define LM_Q_F16 1
#define LM_Q_Q4_0 2
#define LM_Q_Q5_0 6
#define LM_Q_Q5_1 7
#define LM_Q_Q8_0 8
#define LM_Q_Q4_K 12
#define LM_Q_Q5_K 13
#define LM_Q_Q6_K 14

/* 1 when the type is one this module decodes (the list above). The K formats need rows of whole
 * 256-blocks; llama-quantize stores narrower rows (SmolLM2's 576, Qwen2.5-0.5B's 896) in its
 * fallbacks Q5_0 (for Q4_K), Q5_1 (Q5_K) and Q8_0 (Q6_K), which is why those are here too. */
int lm_qtype_ok(uint32_t type);
const char *lm_qtype_name(uint32_t type); /* "Q4_K", ... or "?" */
int lm_qtype_block(uint32_t type);        /* elements per block (1, 32 or 256); 0 if unsupported */
size_t lm_qtype_block_bytes(uint32_t type);
/* Bytes of a row of n elements (n a multiple of the block). */
size_t lm_qrow_bytes(uint32_t type, int64_t n);
/* Parses "F32", "f16", "q4_k", ... into a type; -1 if not a supported name. */
int lm_qtype_parse(const char *name);

float lm_fp16_to_fp32(uint16_t h);
uint16_t lm_fp32_to_fp16(float f); /* round to nearest even */

/* n elements (a multiple of the block) from src into dst. */
void lm_dequant_ref(uint32_t type, const void *src, float *dst, int64_t n);
void lm_dequant_row(uint32_t type, const void *src, float *dst, int64_t n);
/* Encodes n floats (a multiple of the block) into dst (lm_qrow_bytes bytes). Q8_0, Q4_0 (and Q5_0,
 * Q5_1 alike) follow ggml's reference quantizers; the K formats use a plain per-sub-block min/max fit (not ggml's
 * search, so files differ from llama-quantize's in the last bit, but decode by the same rules). */
void lm_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);

/* A view of a typed matrix of lm.h's lm_qmat. Row r of W: (const char *)W->data + r * W->row_bytes. */
static inline const void *lm_qmat_row_ptr(const lm_qmat *W, int64_t r) {
    return (const char *)W->data + (size_t)r * W->row_bytes;
}
/* An F32 view of a row-major (rows, cols) float matrix (borrowed). */
lm_qmat lm_qmat_f32(const float *W, int rows, int cols);
/* dst (cols) = row r of W, decoded. */
void lm_qmat_get_row(const lm_qmat *W, int64_t r, float *dst);

/* out (N, rows) = x (N, cols) W^T + beta * out. Single-threaded when called inside an OpenMP
 * region (inference calls it per thread on its own rows); otherwise parallel over tiles of W's
 * rows with OpenBLAS set to one thread meanwhile. */
void lm_qmatmul(float *out, const float *x, const lm_qmat *W, int N, float beta);
/* dx (N, cols) += dout (N, rows) W. Parallel over the N rows when not inside an OpenMP region. */
void lm_qmatmul_dx(float *dx, const float *dout, const lm_qmat *W, int N);
/* The references: lm_dequant_ref of each row, double accumulators, no BLAS. */
void lm_qmatmul_ref(float *out, const float *x, const lm_qmat *W, int N, float beta);
void lm_qmatmul_dx_ref(float *dx, const float *dout, const lm_qmat *W, int N);

#endif
