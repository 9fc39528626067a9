/* lm_ops.h - the transformer's operations as forward/backward pairs (llm.c style), each with a
 * plain reference version (naive loops, double accumulators) beside the fast one (BLAS/OpenMP).
 *
 * Conventions: N = B*T rows; activations are row-major (N, width). Every *_backward ACCUMULATES
 * (+=) into the gradients it is given (callers zero them), except lm_xent_backward, which writes.
 * A NULL gradient pointer means "not needed" (frozen weight, or input that needs no gradient).
 * Fast and reference versions are deterministic: every output element is computed by one thread
 * in a fixed order, so results do not depend on scheduling. */
#ifndef SERENDIP_LM_OPS_H
#define SERENDIP_LM_OPS_H

#include <stddef.h>
#include <stdint.h>

/* out (N, D) = emb[tok[n]] */
void lm_embedding_forward(float *out, const int32_t *tok, const float *emb, int N, int D);
/* demb (V, D) += scatter of dout (N, D) by tok */
void lm_embedding_backward(float *demb, const float *dout, const int32_t *tok, int N, int D);

/* out (N, D) = x / sqrt(mean(x^2) + eps) * g;  rstd (N) saved for backward. */
void lm_rmsnorm_forward(float *out, float *rstd, const float *x, const float *g, int N, int D, float eps);
void lm_rmsnorm_backward(float *dx, float *dg, const float *dout, const float *x, const float *g, const float *rstd,
                         int N, int D);
void lm_rmsnorm_forward_ref(float *out, float *rstd, const float *x, const float *g, int N, int D, float eps);
void lm_rmsnorm_backward_ref(float *dx, float *dg, const float *dout, const float *x, const float *g,
                             const float *rstd, int N, int D);

/* out (N, OC) = x (N, C) W^T, W (OC, C) row-major [out][in]. */
void lm_matmul_forward(float *out, const float *x, const float *w, int N, int C, int OC);
/* dx (N, C) += dout W;  dw (OC, C) += dout^T x */
void lm_matmul_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, int N, int C, int OC);
void lm_matmul_forward_ref(float *out, const float *x, const float *w, int N, int C, int OC);
void lm_matmul_backward_ref(float *dx, float *dw, const float *dout, const float *x, const float *w, int N, int C,
                            int OC);

/* RoPE tables for positions 0..T-1: cos/sin (T, hd/2), angle = pos * theta^(-2i/hd). */
void lm_rope_table(float *cosv, float *sinv, int T, int hd, float theta);
/* Rotates adjacent pairs of every head of x (B, T, nh*hd) in place; position = t. */
void lm_rope_forward(float *x, const float *cosv, const float *sinv, int B, int T, int nh, int hd);
/* dx in place: the transpose of the rotation (rotation by -angle). */
void lm_rope_backward(float *dx, const float *cosv, const float *sinv, int B, int T, int nh, int hd);
void lm_rope_forward_ref(float *x, float theta, int B, int T, int nh, int hd);

/* Causal grouped-query attention. q (B, T, nh*hd), k, v (B, T, nkv*hd), out (B, T, nh*hd),
 * att (B, nh, T, T) softmax probabilities saved for backward (entries above the diagonal are 0).
 * Query head h reads kv head h / (nh / nkv); scores are scaled by 1/sqrt(hd). */
void lm_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int B, int T,
                          int nh, int nkv, int hd);
/* scratch: lm_attention_scratch_floats(T) floats (T x T per OpenMP thread), caller-owned. */
void lm_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                           const float *k, const float *v, int B, int T, int nh, int nkv, int hd, float *scratch);
size_t lm_attention_scratch_floats(int T);
void lm_attention_forward_ref(float *out, float *att, const float *q, const float *k, const float *v, int B, int T,
                              int nh, int nkv, int hd);
void lm_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                               const float *k, const float *v, int B, int T, int nh, int nkv, int hd);

/* out (n) = silu(a) * b  (a = gate = w1 x, b = up = w3 x) */
void lm_swiglu_forward(float *out, const float *a, const float *b, size_t n);
void lm_swiglu_backward(float *da, float *db, const float *dout, const float *a, const float *b, size_t n);

/* out (n) = a + b;  backward: da += dout, db += dout */
void lm_residual_forward(float *out, const float *a, const float *b, size_t n);
void lm_residual_backward(float *da, float *db, const float *dout, size_t n);

/* Softmax cross-entropy. probs (N, V) = softmax(logits) (probs may alias logits); losses (N) =
 * -log probs[target] for every row (masked or not). */
void lm_xent_forward(float *probs, float *losses, const float *logits, const int32_t *targets, int N, int V);
/* dlogits (N, V) = (probs - onehot(target)) * mask * scale  (WRITES; may alias probs).
 * mask NULL means all ones. */
void lm_xent_backward(float *dlogits, const float *probs, const int32_t *targets, const uint8_t *mask, float scale,
                      int N, int V);
void lm_xent_forward_ref(float *probs, float *losses, const float *logits, const int32_t *targets, int N, int V);

#endif
