/* ops.c - forward/backward kernels of the Llama decoder (lm_ops.h), each fast version beside a
 * plain reference that the tests compare it with.
 *
 * Matrix products go through cblas_sgemm (OpenBLAS). Everything else is hand-written loops with
 * OpenMP over rows or (batch, head) pairs, because these are element-wise or small per-head
 * operations that no BLAS routine expresses, and fusing them (e.g. the causal softmax with its
 * mask) keeps the activations small. Every output element is produced by exactly one thread in a
 * fixed order (static schedule, no atomics), so results are bit-identical run to run. */
#include "serendip/lm_ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ================================================================ embedding */

void lm_embedding_forward(float *out, const int32_t *tok, const float *emb, int N, int D) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * D, emb + (size_t)tok[n] * D, (size_t)D * sizeof(float));
}

/* Serial: rows with the same token add into the same gradient row, and a fixed order keeps the
 * sum deterministic; N*D adds are negligible next to the matrix products. */
void lm_embedding_backward(float *demb, const float *dout, const int32_t *tok, int N, int D) {
    for (int n = 0; n < N; n++) {
        float *d = demb + (size_t)tok[n] * D;
        const float *g = dout + (size_t)n * D;
        for (int i = 0; i < D; i++) d[i] += g[i];
    }
}

/* ================================================================ rmsnorm */

void lm_rmsnorm_forward(float *out, float *rstd, const float *x, const float *g, int N, int D, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * D;
        float *o = out + (size_t)n * D;
        float ss = 0;
        for (int i = 0; i < D; i++) ss += xr[i] * xr[i];
        float r = 1.0f / sqrtf(ss / (float)D + eps);
        rstd[n] = r;
        for (int i = 0; i < D; i++) o[i] = xr[i] * r * g[i];
    }
}

/* dx_i += r g_i dy_i - x_i r^3 / D * sum_j dy_j g_j x_j;  dg_i += sum_n dy_i x_i r */
void lm_rmsnorm_backward(float *dx, float *dg, const float *dout, const float *x, const float *g, const float *rstd,
                         int N, int D) {
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * D, *dy = dout + (size_t)n * D;
            float *d = dx + (size_t)n * D;
            float r = rstd[n], dot = 0;
            for (int i = 0; i < D; i++) dot += dy[i] * g[i] * xr[i];
            float c = dot * r * r * r / (float)D;
            for (int i = 0; i < D; i++) d[i] += r * g[i] * dy[i] - c * xr[i];
        }
    }
    if (dg) {
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * D, *dy = dout + (size_t)n * D;
            float r = rstd[n];
            for (int i = 0; i < D; i++) dg[i] += dy[i] * xr[i] * r;
        }
    }
}

void lm_rmsnorm_forward_ref(float *out, float *rstd, const float *x, const float *g, int N, int D, float eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[n * D + i] * x[n * D + i];
        double r = 1.0 / sqrt(ss / D + eps);
        rstd[n] = (float)r;
        for (int i = 0; i < D; i++) out[n * D + i] = (float)(x[n * D + i] * r * g[i]);
    }
}

void lm_rmsnorm_backward_ref(float *dx, float *dg, const float *dout, const float *x, const float *g,
                             const float *rstd, int N, int D) {
    for (int n = 0; n < N; n++) {
        double r = rstd[n];
        /* y_i = x_i r g_i with r = (mean(x^2)+eps)^(-1/2), dr/dx_j = -r^3 x_j / D */
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (int i = 0; i < D; i++) {
                double dyi_dxj = (i == j ? r : 0.0) * g[i] - (double)x[n * D + i] * g[i] * r * r * r * x[n * D + j] / D;
                s += dout[n * D + i] * dyi_dxj;
            }
            if (dx) dx[n * D + j] += (float)s;
        }
        if (dg)
            for (int i = 0; i < D; i++) dg[i] += (float)((double)dout[n * D + i] * x[n * D + i] * r);
    }
}

/* ================================================================ matmul */

/* Threads for splitting a product of `work` multiply-adds: OpenMP's count when OpenBLAS itself is
 * single-threaded (the trainer arranges that), else 1 so that OpenBLAS does its own threading and
 * the two thread pools never run at once (on a busy 2-core box that made training 6x slower). */
static int mm_threads(double work) {
#ifdef _OPENMP
    if (work < 2e6 || omp_in_parallel() || openblas_get_num_threads() > 1) return 1;
    return omp_get_max_threads();
#else
    (void)work;
    return 1;
#endif
}

/* [lo, hi) of part p of n split into np parts, boundaries rounded to multiples of 8 rows. */
static void split_range(int n, int np, int p, int *lo, int *hi) {
    int chunk = ((n + np - 1) / np + 7) / 8 * 8;
    *lo = p * chunk < n ? p * chunk : n;
    *hi = (p + 1) * chunk < n ? (p + 1) * chunk : n;
}

/* Each thread computes a fixed block of output rows with a single-threaded sgemm, so every output
 * element comes from one call with the same inner dimension: deterministic. */
void lm_matmul_forward(float *out, const float *x, const float *w, int N, int C, int OC) {
    int nt = mm_threads((double)N * C * OC);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int p = 0; p < nt; p++) {
        int lo, hi;
        split_range(N, nt, p, &lo, &hi);
        if (hi > lo)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, hi - lo, OC, C, 1.0f, x + (size_t)lo * C, C, w, C, 0.0f,
                        out + (size_t)lo * OC, OC);
    }
}

void lm_matmul_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, int N, int C, int OC) {
    int nt = mm_threads((double)N * C * OC);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        int p = omp_get_thread_num(), np = omp_get_num_threads();
#else
        int p = 0, np = 1;
#endif
        int lo, hi;
        if (dx) { /* dx rows [lo, hi) += dout[lo:hi] W */
            split_range(N, np, p, &lo, &hi);
            if (hi > lo)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hi - lo, C, OC, 1.0f, dout + (size_t)lo * OC, OC,
                            w, C, 1.0f, dx + (size_t)lo * C, C);
        }
        if (dw) { /* dw rows [lo, hi) += dout[:, lo:hi]^T x */
            split_range(OC, np, p, &lo, &hi);
            if (hi > lo)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hi - lo, C, N, 1.0f, dout + lo, OC, x, C, 1.0f,
                            dw + (size_t)lo * C, C);
        }
    }
}

void lm_matmul_forward_ref(float *out, const float *x, const float *w, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int oc = 0; oc < OC; oc++) {
            double s = 0;
            for (int i = 0; i < C; i++) s += (double)x[(size_t)n * C + i] * w[(size_t)oc * C + i];
            out[(size_t)n * OC + oc] = (float)s;
        }
}

void lm_matmul_backward_ref(float *dx, float *dw, const float *dout, const float *x, const float *w, int N, int C,
                            int OC) {
    if (dx)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < C; i++) {
                double s = 0;
                for (int oc = 0; oc < OC; oc++) s += (double)dout[(size_t)n * OC + oc] * w[(size_t)oc * C + i];
                dx[(size_t)n * C + i] += (float)s;
            }
    if (dw)
        for (int oc = 0; oc < OC; oc++)
            for (int i = 0; i < C; i++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += (double)dout[(size_t)n * OC + oc] * x[(size_t)n * C + i];
                dw[(size_t)oc * C + i] += (float)s;
            }
}

/* ================================================================ rope */

void lm_rope_table(float *cosv, float *sinv, int T, int hd, float theta) {
    int half = hd / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double freq = pow((double)theta, -2.0 * i / hd);
            double a = t * freq;
            cosv[t * half + i] = (float)cos(a);
            sinv[t * half + i] = (float)sin(a);
        }
}

/* Rotation of pair (x0, x1) by angle with sign s (+1 forward, -1 for the transpose). */
static void rope_apply(float *x, const float *cosv, const float *sinv, int B, int T, int nh, int hd, float s) {
    int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        const float *c = cosv + (size_t)t * half, *sn = sinv + (size_t)t * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + (size_t)bt * nh * hd + (size_t)h * hd;
            for (int i = 0; i < half; i++) {
                float x0 = v[2 * i], x1 = v[2 * i + 1], si = s * sn[i];
                v[2 * i] = x0 * c[i] - x1 * si;
                v[2 * i + 1] = x0 * si + x1 * c[i];
            }
        }
    }
}

void lm_rope_forward(float *x, const float *cosv, const float *sinv, int B, int T, int nh, int hd) {
    rope_apply(x, cosv, sinv, B, T, nh, hd, 1.0f);
}

void lm_rope_backward(float *dx, const float *cosv, const float *sinv, int B, int T, int nh, int hd) {
    rope_apply(dx, cosv, sinv, B, T, nh, hd, -1.0f);
}

void lm_rope_forward_ref(float *x, float theta, int B, int T, int nh, int hd) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++)
                for (int i = 0; i < hd / 2; i++) {
                    float *v = x + ((size_t)(b * T + t) * nh + h) * hd;
                    double a = t * pow((double)theta, -2.0 * i / hd);
                    double x0 = v[2 * i], x1 = v[2 * i + 1];
                    v[2 * i] = (float)(x0 * cos(a) - x1 * sin(a));
                    v[2 * i + 1] = (float)(x0 * sin(a) + x1 * cos(a));
                }
}

/* ================================================================ attention */

/* Threads for the per-head loops: OpenMP's when OpenBLAS is single-threaded and we are not
 * already inside a parallel region, else 1 (the same rule as mm_threads). */
static int head_threads(void) {
#ifdef _OPENMP
    if (omp_in_parallel() || openblas_get_num_threads() > 1) return 1;
    return omp_get_max_threads();
#else
    return 1;
#endif
}

size_t lm_attention_scratch_floats(int T) {
#ifdef _OPENMP
    return (size_t)T * T * (size_t)omp_get_max_threads();
#else
    return (size_t)T * T;
#endif
}

/* Per (batch, head): S = Q K^T / sqrt(hd) by sgemm straight into att, causal softmax in place
 * (entries above the diagonal set to 0), then O = P V by sgemm. The full T x T product costs twice
 * the causal half but runs at BLAS speed, several times faster than per-row dot products. */
void lm_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int B, int T,
                          int nh, int nkv, int hd) {
    int D = nh * hd, KvD = nkv * hd, group = nh / nkv, nt = head_threads();
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int bh = 0; bh < B * nh; bh++) {
        int b = bh / nh, h = bh % nh, kh = h / group;
        float *S = att + (size_t)bh * T * T;
        const float *Q = q + (size_t)b * T * D + h * hd, *K = k + (size_t)b * T * KvD + kh * hd;
        const float *Vh = v + (size_t)b * T * KvD + kh * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, Q, D, K, KvD, 0.0f, S, T);
        for (int t = 0; t < T; t++) {
            float *p = S + (size_t)t * T, mx = -INFINITY, sum = 0;
            for (int s = 0; s <= t; s++) mx = p[s] > mx ? p[s] : mx;
            for (int s = 0; s <= t; s++) {
                p[s] = expf(p[s] - mx);
                sum += p[s];
            }
            float inv = 1.0f / sum;
            for (int s = 0; s <= t; s++) p[s] *= inv;
            for (int s = t + 1; s < T; s++) p[s] = 0;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, S, T, Vh, KvD, 0.0f,
                    out + (size_t)b * T * D + h * hd, D);
    }
}

/* Parallel over (batch, kv head): the query heads sharing a kv head add into the same dk/dv rows,
 * so one thread owns each kv head to keep the sums race-free and in a fixed order. Per head:
 * dV += P^T dO; X = dO V^T; dS = P * (X - rowsum(P * X)) / sqrt(hd); dQ += dS K; dK += dS^T Q. */
void lm_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                           const float *k, const float *v, int B, int T, int nh, int nkv, int hd, float *scratch) {
    int D = nh * hd, KvD = nkv * hd, group = nh / nkv, nt = head_threads();
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int bk = 0; bk < B * nkv; bk++) {
        int b = bk / nkv, kh = bk % nkv;
#ifdef _OPENMP
        float *X = scratch + (size_t)omp_get_thread_num() * T * T;
#else
        float *X = scratch;
#endif
        const float *K = k + (size_t)b * T * KvD + kh * hd, *Vh = v + (size_t)b * T * KvD + kh * hd;
        float *dK = dk + (size_t)b * T * KvD + kh * hd, *dV = dv + (size_t)b * T * KvD + kh * hd;
        for (int h = kh * group; h < (kh + 1) * group; h++) {
            const float *P = att + (size_t)(b * nh + h) * T * T;
            const float *dO = dout + (size_t)b * T * D + h * hd, *Q = q + (size_t)b * T * D + h * hd;
            float *dQ = dq + (size_t)b * T * D + h * hd;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, P, T, dO, D, 1.0f, dV, KvD);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dO, D, Vh, KvD, 0.0f, X, T);
            for (int t = 0; t < T; t++) {
                const float *p = P + (size_t)t * T;
                float *x = X + (size_t)t * T, r = 0;
                for (int s = 0; s <= t; s++) r += p[s] * x[s];
                for (int s = 0; s <= t; s++) x[s] = p[s] * (x[s] - r) * scale;
                for (int s = t + 1; s < T; s++) x[s] = 0;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, X, T, K, KvD, 1.0f, dQ, D);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, X, T, Q, D, 1.0f, dK, KvD);
        }
    }
}

void lm_attention_forward_ref(float *out, float *att, const float *q, const float *k, const float *v, int B, int T,
                              int nh, int nkv, int hd) {
    int D = nh * hd, KvD = nkv * hd;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++) {
            int kh = h / (nh / nkv);
            for (int t = 0; t < T; t++) {
                double sc[T], mx = -INFINITY, sum = 0;
                for (int s = 0; s < T; s++) {
                    if (s > t) { sc[s] = -INFINITY; continue; }
                    double d = 0;
                    for (int i = 0; i < hd; i++)
                        d += (double)q[(b * T + t) * D + h * hd + i] * k[(b * T + s) * KvD + kh * hd + i];
                    sc[s] = d / sqrt((double)hd);
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int s = 0; s < T; s++) sum += (sc[s] = s > t ? 0.0 : exp(sc[s] - mx));
                for (int s = 0; s < T; s++) att[((b * nh + h) * T + t) * T + s] = (float)(sc[s] / sum);
                for (int i = 0; i < hd; i++) {
                    double o = 0;
                    for (int s = 0; s <= t; s++) o += sc[s] / sum * v[(b * T + s) * KvD + kh * hd + i];
                    out[(b * T + t) * D + h * hd + i] = (float)o;
                }
            }
        }
}

void lm_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                               const float *k, const float *v, int B, int T, int nh, int nkv, int hd) {
    int D = nh * hd, KvD = nkv * hd;
    double scale = 1.0 / sqrt((double)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++) {
            int kh = h / (nh / nkv);
            for (int t = 0; t < T; t++) {
                const float *p = att + ((size_t)(b * nh + h) * T + t) * T;
                double dp[T], pdot = 0;
                for (int s = 0; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += (double)dout[(b * T + t) * D + h * hd + i] * v[(b * T + s) * KvD + kh * hd + i];
                    dp[s] = d;
                    pdot += p[s] * d;
                }
                for (int s = 0; s <= t; s++)
                    for (int i = 0; i < hd; i++) {
                        double ds = p[s] * (dp[s] - pdot) * scale;
                        dv[(b * T + s) * KvD + kh * hd + i] += (float)(p[s] * (double)dout[(b * T + t) * D + h * hd + i]);
                        dq[(b * T + t) * D + h * hd + i] += (float)(ds * k[(b * T + s) * KvD + kh * hd + i]);
                        dk[(b * T + s) * KvD + kh * hd + i] += (float)(ds * q[(b * T + t) * D + h * hd + i]);
                    }
            }
        }
}

/* ================================================================ swiglu, residual */

void lm_swiglu_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}

void lm_swiglu_backward(float *da, float *db, const float *dout, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + expf(-a[i]));
        float silu = a[i] * sg;
        if (da) da[i] += dout[i] * b[i] * sg * (1.0f + a[i] * (1.0f - sg));
        if (db) db[i] += dout[i] * silu;
    }
}

void lm_residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void lm_residual_backward(float *da, float *db, const float *dout, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}

/* ================================================================ cross-entropy */

void lm_xent_forward(float *probs, float *losses, const float *logits, const int32_t *targets, int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        float mx = l[0], lt = l[targets[n]]; /* read before p (which may alias l) overwrites it */
        for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        float sum = 0;
        for (int i = 0; i < V; i++) {
            p[i] = expf(l[i] - mx);
            sum += p[i];
        }
        float inv = 1.0f / sum;
        for (int i = 0; i < V; i++) p[i] *= inv;
        /* from the logits rather than log(p), which loses precision when p is tiny */
        losses[n] = logf(sum) - (lt - mx);
    }
}

void lm_xent_backward(float *dlogits, const float *probs, const int32_t *targets, const uint8_t *mask, float scale,
                      int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *d = dlogits + (size_t)n * V;
        const float *p = probs + (size_t)n * V;
        float s = (mask && !mask[n]) ? 0.0f : scale;
        for (int i = 0; i < V; i++) d[i] = p[i] * s;
        d[targets[n]] -= s;
    }
}

void lm_xent_forward_ref(float *probs, float *losses, const float *logits, const int32_t *targets, int N, int V) {
    for (int n = 0; n < N; n++) {
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < V; i++) mx = fmax(mx, logits[(size_t)n * V + i]);
        for (int i = 0; i < V; i++) sum += exp(logits[(size_t)n * V + i] - mx);
        for (int i = 0; i < V; i++) probs[(size_t)n * V + i] = (float)(exp(logits[(size_t)n * V + i] - mx) / sum);
        losses[n] = (float)(log(sum) + mx - logits[(size_t)n * V + targets[n]]);
    }
}
