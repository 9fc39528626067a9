/* infer.c - batched KV-cache inference for the Llama decoder of lm.h: generation (free and
 * constrained to a token trie), next-token log-probabilities, continuation scoring, and the plain
 * reference forward the fast path is tested against.
 *
 * The fast path works on "rows": one row = one token of one sequence at one position. A batch of
 * up to max_rows rows goes through every layer together: each weight matrix is applied with one
 * cblas_sgemm over all rows, and attention (OpenMP over rows x heads) reads each row's keys and
 * values from two segments:
 *   - a read-only prefix (the prompt's cache, shared by all the samples drawn from that prompt),
 *   - the row's own segment, where the row writes its key/value at own_idx and attends to
 *     own[0..own_idx] (for a prompt being prefilled, the own segment IS the prompt's cache).
 * Caches are "pools" of slots: k, v (L, slots, cap, KvD). Pools grow between calls, never inside
 * a step loop. The attention and the glue (RMSNorm, RoPE, SwiGLU) are hand-written: they are the
 * model's definition (lm.h) and no Debian library implements this decoder; matrix products go to
 * OpenBLAS.
 *
 * Less work for the same result (issue 12): keys/values depend only on the tokens up to their
 * position, so whatever two sequences share is computed once and copied — consecutive prompts'
 * common prefix (prefill), the tokens drawn alike by samples of one prompt (tree_generate: one
 * row per distinct prefix, each sample still drawing from its own RNG stream), the common prefix
 * of continuations scored after one prompt (next_after). lm_generate keeps the plain one row per
 * sample and step, the reference the shared path is tested against. Every forward's work is
 * counted in lm_infer_stats. */
#include "serendip/lm_infer.h"
#include "serendip/lm_quant.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Vectorised glue. The row-wise steps (RMSNorm, SwiGLU, attention) are cloned for x86-64-v3
 * (AVX2 + FMA) and x86-64-v4 (AVX-512), chosen at load time by the CPU: the build targets
 * x86-64-v2, whose 4-wide SSE made these short loops the second cost after sgemm. With libmvec
 * (glibc's vector math, SERENDIP_MVEC from the Makefile) expf is declared SIMD-callable, so the
 * `omp simd` loops that call it use glibc's vector expf (within 4 ulp of the scalar one). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define GLUE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GLUE_CLONES
#endif
#if defined(SERENDIP_MVEC) && defined(__GNUC__) && !defined(__clang__) && defined(_OPENMP)
#pragma omp declare simd notinbranch
float expf(float);
#endif

/* ---------------------------------------------------------------- context */

/* Positions or dimensions per register block of the attention (attend_row). */
#define AB 16

/* Keys are stored transposed, (L, slots, KvD, cap): the scores of one query against a slot's
 * keys are then a loop over positions for each of the head's dimensions, which vectorises across
 * positions with no horizontal sums (attend_row). Values stay one vector per position. */
typedef struct {
    float *k; /* (L, slots, KvD, cap) */
    float *v; /* (L, slots, cap, KvD) */
    int slots, cap;
} kv_pool;

struct lm_infer {
    const lm_model *m; /* borrowed */
    lm_config c;
    int max_rows, max_seq, n_threads;
    /* activations, one row per batched token */
    float *x;        /* (R, D) residual stream */
    float *xb;       /* (R, D) normed input of a sub-layer */
    float *q;        /* (R, D) */
    float *k, *v;    /* (R, KvD) */
    float *att;      /* (R, D) attention output */
    float *h1, *h3;  /* (R, H) gate, up */
    float *logits;   /* (R, V) for the rows that asked for logits, in row order */
    float *plog;     /* (R, V) last-token logits of the prompts of a chunk */
    float *att_buf;  /* (threads, 2 max_seq) attention scores of two heads */
    float *samp_buf; /* (threads, 3V) sampler scratch */
    float *rope_cos, *rope_sin; /* (max_seq, head_dim/2) */
    int *live;       /* (R) forward_rows: the rows of a block still computed in the last layer */
    kv_pool prompt, gen;
    lm_infer_stats st; /* work of the forward passes (lm_infer_get_stats) */
};

static void pool_free(kv_pool *p) {
    free(p->k);
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* Makes room for slots x cap positions (cap rounded up to a multiple of AB, attend_row); the
 * content is not kept. */
static void pool_reserve(kv_pool *p, const lm_config *c, int slots, int cap) {
    if (slots < 1) slots = 1;
    if (cap < 1) cap = 1;
    cap = (cap + AB - 1) / AB * AB;
    if ((size_t)slots * cap <= (size_t)p->slots * p->cap && p->k) {
        p->slots = slots; /* reuse the block with the new shape */
        p->cap = cap;
        return;
    }
    pool_free(p);
    size_t n = (size_t)c->n_layers * slots * cap * lm_kv_dim(c);
    p->k = sd_calloc(n, sizeof(float)); /* zeros: what a block of scores reads past the last position */
    p->v = sd_malloc(n * sizeof(float));
    p->slots = slots;
    p->cap = cap;
}

/* The keys of layer l, slot s: KvD rows of cap positions. */
static inline float *pool_k(const kv_pool *p, const lm_config *c, int l, int s) {
    return p->k + ((size_t)l * p->slots + s) * p->cap * lm_kv_dim(c);
}

/* The value vector of layer l, slot s, position i. */
static inline float *pool_v(const kv_pool *p, const lm_config *c, int l, int s, int i) {
    return p->v + (((size_t)l * p->slots + s) * p->cap + i) * lm_kv_dim(c);
}

/* Stores key k and value v (KvD each) at layer l, slot s, position i. */
static inline void pool_put(const kv_pool *p, const lm_config *c, int l, int s, int i, const float *k, const float *v) {
    int KvD = lm_kv_dim(c);
    float *kt = pool_k(p, c, l, s) + i;
    for (int j = 0; j < KvD; j++) kt[(size_t)j * p->cap] = k[j];
    memcpy(pool_v(p, c, l, s, i), v, sizeof(float) * KvD);
}

/* Copies positions [0, n) of slot src of pool sp to slot dst of pool dp, every layer. */
static void pool_copy(kv_pool *dp, int dst, const kv_pool *sp, int src, const lm_config *c, int n) {
    int KvD = lm_kv_dim(c);
    for (int l = 0; l < c->n_layers && n > 0; l++) {
        float *dk = pool_k(dp, c, l, dst);
        const float *sk = pool_k(sp, c, l, src);
        for (int j = 0; j < KvD; j++) memcpy(dk + (size_t)j * dp->cap, sk + (size_t)j * sp->cap, sizeof(float) * n);
        memcpy(pool_v(dp, c, l, dst, 0), pool_v(sp, c, l, src, 0), sizeof(float) * KvD * n);
    }
}

lm_infer *lm_infer_new(const lm_model *m, int max_rows, int max_seq, sd_err *err) {
    if (!m || lm_config_check(&m->cfg, err) != SD_OK) {
        if (!m) sd_fail(err, SD_ERR_USAGE, "lm_infer_new: no model");
        return NULL;
    }
    if (max_rows < 1 || max_seq < 2) {
        sd_fail(err, SD_ERR_USAGE, "lm_infer_new: max_rows %d must be >= 1 and max_seq %d >= 2", max_rows, max_seq);
        return NULL;
    }
    lm_infer *inf = sd_calloc(1, sizeof *inf);
    const lm_config *c = &m->cfg;
    inf->m = m;
    inf->c = *c;
    inf->max_rows = max_rows;
    inf->max_seq = max_seq;
    inf->n_threads = sd_num_threads();
    size_t R = (size_t)max_rows, D = c->dim, KvD = lm_kv_dim(c), H = c->hidden_dim, V = c->vocab_size;
    inf->x = sd_malloc(R * D * sizeof(float));
    inf->xb = sd_malloc(R * D * sizeof(float));
    inf->q = sd_malloc(R * D * sizeof(float));
    inf->k = sd_malloc(R * KvD * sizeof(float));
    inf->v = sd_malloc(R * KvD * sizeof(float));
    inf->att = sd_malloc(R * D * sizeof(float));
    inf->h1 = sd_malloc(R * H * sizeof(float));
    inf->h3 = sd_malloc(R * H * sizeof(float));
    inf->logits = sd_malloc(R * V * sizeof(float));
    inf->plog = sd_malloc(R * V * sizeof(float));
    inf->att_buf = sd_malloc((size_t)inf->n_threads * 2 * max_seq * sizeof(float));
    inf->samp_buf = sd_malloc((size_t)inf->n_threads * 3 * V * sizeof(float));
    inf->live = sd_malloc(R * sizeof(int));
    int half = lm_head_dim(c) / 2;
    inf->rope_cos = sd_malloc((size_t)max_seq * half * sizeof(float));
    inf->rope_sin = sd_malloc((size_t)max_seq * half * sizeof(float));
    for (int p = 0; p < max_seq; p++)
        for (int i = 0; i < half; i++) {
            double freq = pow((double)c->rope_theta, -2.0 * i / lm_head_dim(c));
            inf->rope_cos[(size_t)p * half + i] = (float)cos(p * freq);
            inf->rope_sin[(size_t)p * half + i] = (float)sin(p * freq);
        }
    return inf;
}

void lm_infer_free(lm_infer *inf) {
    if (!inf) return;
    free(inf->x);
    free(inf->xb);
    free(inf->q);
    free(inf->k);
    free(inf->v);
    free(inf->att);
    free(inf->h1);
    free(inf->h3);
    free(inf->logits);
    free(inf->plog);
    free(inf->att_buf);
    free(inf->samp_buf);
    free(inf->live);
    free(inf->rope_cos);
    free(inf->rope_sin);
    pool_free(&inf->prompt);
    pool_free(&inf->gen);
    free(inf);
}

void lm_infer_get_stats(const lm_infer *inf, lm_infer_stats *st) { *st = inf->st; }
void lm_infer_reset_stats(lm_infer *inf) { memset(&inf->st, 0, sizeof inf->st); }

static inline int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---------------------------------------------------------------- the batched forward */

typedef struct {
    int32_t token;
    int pos;              /* absolute position (RoPE) */
    const kv_pool *pre;   /* read-only prefix, NULL for none */
    int pre_slot, pre_len;
    kv_pool *own;         /* the row writes here at own_idx and attends own[0..own_idx] */
    int own_slot, own_idx;
    int want_logits;      /* 1: a row of inf->logits, in the order of the rows that want one */
} row_desc;

/* Rotates adjacent pairs of each head of vec (n_heads * head_dim) at position pos. */
static inline void rope_row(const lm_infer *inf, float *vec, int n_heads, int hd, int pos) {
    int half = hd / 2;
    const float *cs = inf->rope_cos + (size_t)pos * half, *sn = inf->rope_sin + (size_t)pos * half;
    for (int h = 0; h < n_heads; h++) {
        float *v = vec + (size_t)h * hd;
        for (int i = 0; i < half; i++) {
            float a = v[2 * i], b = v[2 * i + 1];
            v[2 * i] = a * cs[i] - b * sn[i];
            v[2 * i + 1] = a * sn[i] + b * cs[i];
        }
    }
}

/* C (n, rows of W) = A . W^T (+ C when beta 1) for weight matrix `which` of layer l, whatever its
 * encoding (lm_quant.h: F32 goes straight to BLAS, a quantized base is decoded tile by tile). */
static void wmatmul(float *C, const float *A, const lm_model *m, int l, int which, int n, float beta) {
    lm_qmat W = lm_model_mat(m, l, which);
    lm_qmatmul(C, A, &W, n, beta);
}

/* qwen2: k, v (n rows each) and q (nq rows) += their layer's biases (before RoPE). */
static void add_qkv_bias(const lm_weights *w, const lm_config *c, int l, float *q, float *k, float *v, int n, int nq) {
    int D = c->dim, KvD = lm_kv_dim(c);
    for (int r = 0; r < nq; r++)
        for (int i = 0; i < D; i++) q[(size_t)r * D + i] += w->bq[(size_t)l * D + i];
    for (int r = 0; r < n; r++)
        for (int i = 0; i < KvD; i++) {
            k[(size_t)r * KvD + i] += w->bk[(size_t)l * KvD + i];
            v[(size_t)r * KvD + i] += w->bv[(size_t)l * KvD + i];
        }
}

/* h1 = silu(h1) * h3, element-wise over n values (SwiGLU). */
GLUE_CLONES static void swiglu(float *restrict h1, const float *restrict h3, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = h1[i];
        h1[i] = g / (1.0f + expf(-g)) * h3[i];
    }
}

/* out = rmsnorm(x) * g for n rows of width D (out and x may not overlap). */
GLUE_CLONES static void rmsnorm_rows(float *restrict out, const float *restrict x, const float *g, int n, int D, float eps) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * D;
        float *o = out + (size_t)r * D, ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < D; i++) ss += xr[i] * xr[i];
        float s = 1.0f / sqrtf(ss / D + eps);
#pragma omp simd
        for (int i = 0; i < D; i++) o[i] = xr[i] * s * g[i];
    }
}

/* Attention works in register blocks of AB floats: AB positions' scores, or AB dimensions of the
 * weighted values, accumulate in registers across the loop over the other index (no horizontal
 * sums, no stores inside the loop). Two query heads that share a key/value head (grouped-query
 * attention) go together, each key and value read once for both: the functions take a second
 * head's pointers (qb, sb, wb, ob) when `two`, unused otherwise; they are always inlined and
 * called with a constant `two`, so each call site compiles for its case. Pool capacities are multiples of AB, so a block of scores may
 * read keys past the last valid position (inside the slot, never past it: zeros or stale keys)
 * and discards them. */
#define ATT_INLINE static inline __attribute__((always_inline))

/* sa[t] = qa . key[t] (and, two, sb[t] = qb . key[t]) for t < n; kt: hd rows of cap positions (cap a
 * multiple of AB). */
ATT_INLINE void att_scores(int two, float *restrict sa, float *restrict sb, const float *restrict qa,
                           const float *restrict qb, const float *restrict kt, size_t cap, int hd, int n) {
    for (int t0 = 0; t0 < n; t0 += AB) {
        float a[AB] = {0}, b[AB] = {0};
        for (int i = 0; i < hd; i++) {
            const float x = qa[i], y = two ? qb[i] : 0, *k = kt + (size_t)i * cap + t0;
#pragma omp simd
            for (int j = 0; j < AB; j++) {
                a[j] += x * k[j];
                if (two) b[j] += y * k[j];
            }
        }
        int w = n - t0 < AB ? n - t0 : AB;
        for (int j = 0; j < w; j++) {
            sa[t0 + j] = a[j];
            if (two) sb[t0 + j] = b[j];
        }
    }
}

/* oa[i] += sum_t wa[t] v[t][i] (and, two, ob with wb) for i < hd; v: one vector per position, stride
 * floats apart. */
ATT_INLINE void att_values(int two, float *restrict oa, float *restrict ob, const float *restrict wa,
                           const float *restrict wb, const float *restrict v, size_t stride, int hd, int n) {
    int i0 = 0;
    for (; i0 + AB <= hd; i0 += AB) {
        float a[AB] = {0}, b[AB] = {0};
        for (int t = 0; t < n; t++) {
            const float x = wa[t], y = two ? wb[t] : 0, *vr = v + (size_t)t * stride + i0;
#pragma omp simd
            for (int j = 0; j < AB; j++) {
                a[j] += x * vr[j];
                if (two) b[j] += y * vr[j];
            }
        }
#pragma omp simd
        for (int j = 0; j < AB; j++) {
            oa[i0 + j] += a[j];
            if (two) ob[i0 + j] += b[j];
        }
    }
    for (; i0 < hd; i0++) /* a head_dim that is not a multiple of AB: the rest one by one */
        for (int t = 0; t < n; t++) {
            oa[i0] += wa[t] * v[(size_t)t * stride + i0];
            if (two) ob[i0] += wb[t] * v[(size_t)t * stride + i0];
        }
}

/* sc[0, nt) = softmax(sc[0, nt)). */
ATT_INLINE void att_softmax(float *sc, int nt) {
    float mx = -INFINITY;
    for (int t = 0; t < nt; t++)
        if (sc[t] > mx) mx = sc[t];
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int t = 0; t < nt; t++) {
        sc[t] = expf(sc[t] - mx);
        sum += sc[t];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int t = 0; t < nt; t++) sc[t] *= inv;
}

/* Head qa (and, two, qb) of kv head kvh attends over row rd's prefix and own segments into oa
 * (and ob); sa, sb: max_seq floats of scratch each. */
ATT_INLINE void att_heads(int two, const lm_infer *inf, const row_desc *rd, int l, int kvh, const float *qa,
                          const float *qb, float *oa, float *ob, float *sa, float *sb) {
    const lm_config *c = &inf->c;
    const int KvD = lm_kv_dim(c), hd = lm_head_dim(c), np = rd->pre ? rd->pre_len : 0, no = rd->own_idx + 1;
    /* keys: the kv head's hd rows of positions (transposed, kv_pool); values: one vector per
     * position, KvD floats apart */
    if (np) {
        const float *pk = pool_k(rd->pre, c, l, rd->pre_slot) + (size_t)kvh * hd * rd->pre->cap;
        att_scores(two, sa, sb, qa, qb, pk, (size_t)rd->pre->cap, hd, np);
    }
    att_scores(two, sa + np, sb + np, qa, qb, pool_k(rd->own, c, l, rd->own_slot) + (size_t)kvh * hd * rd->own->cap,
               (size_t)rd->own->cap, hd, no);
    att_softmax(sa, np + no);
    if (two) att_softmax(sb, np + no);
    if (np) att_values(two, oa, ob, sa, sb, pool_v(rd->pre, c, l, rd->pre_slot, 0) + (size_t)kvh * hd, (size_t)KvD, hd, np);
    att_values(two, oa, ob, sa + np, sb + np, pool_v(rd->own, c, l, rd->own_slot, 0) + (size_t)kvh * hd, (size_t)KvD, hd,
               no);
}

/* Causal attention of one row over its prefix and own segments, all heads, into out (D). Scales
 * the query q in place; sc: 2 max_seq floats of scratch. The heads of a kv head's group go two at
 * a time (an odd one alone). */
GLUE_CLONES static void attend_row(const lm_infer *inf, const row_desc *rd, int l, float *q, float *out, float *sc) {
    const lm_config *c = &inf->c;
    const int hd = lm_head_dim(c), nh = c->n_heads, group = nh / c->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i < nh * hd; i++) q[i] *= scale;
    memset(out, 0, sizeof(float) * nh * hd);
    for (int h = 0; h < nh;) {
        const int kvh = h / group, two = h + 1 < nh && (h + 1) / group == kvh;
        float *qa = q + (size_t)h * hd, *oa = out + (size_t)h * hd;
        if (two) att_heads(1, inf, rd, l, kvh, qa, qa + hd, oa, oa + hd, sc, sc + inf->max_seq);
        else att_heads(0, inf, rd, l, kvh, qa, qa, oa, oa, sc, sc + inf->max_seq);
        h += 1 + two;
    }
}

/* Runs n (<= max_rows) rows through the model; writes their keys/values into their own
 * segments and the logits of the rows with want_logits into inf->logits (in row order).
 * Returns how many rows produced logits. THE hot loop of inference.
 *
 * One OpenMP region for the whole forward: each thread owns a contiguous block of rows and runs
 * every row-wise step on it (norms, its block's sgemm for each weight matrix, RoPE, SwiGLU,
 * attention of its rows). With sync, a barrier per layer separates writing the new keys/values
 * from attention: a prefilled prompt's rows (or a continuation's, lm_score_continuations) read
 * each other's. Without it (every row's slot is its own, as in a generation step or a level of
 * continuations) the threads meet only at the end of the forward. OpenBLAS is set to one thread
 * meanwhile: one pool of threads instead of two spinning against each other, and few barriers,
 * which matters on a machine shared with other jobs (a descheduled thread stalls every barrier). */
static int forward_rows(lm_infer *inf, const row_desc *rows, int n, int sync) {
    const lm_config *c = &inf->c;
    const lm_weights *w = &inf->m->w;
    int D = c->dim, KvD = lm_kv_dim(c), H = c->hidden_dim, V = c->vocab_size, hd = lm_head_dim(c);
    int nh = c->n_heads, nkv = c->n_kv_heads;
    int blas_prev = openblas_get_num_threads();
    if (blas_prev != 1) openblas_set_num_threads(1);
    int nl = 0;
    /* positions attended over all rows and over the rows with logits (the FLOP count of
     * lm_infer_stats: every layer computes keys/values of every row, and the rest of a layer for
     * every row but in the last, where only rows with logits go on) */
    int64_t att_pos = 0, att_pos_l = 0;
    for (int r = 0; r < n; r++) {
        int64_t a = (rows[r].pre ? rows[r].pre_len : 0) + rows[r].own_idx + 1;
        att_pos += a;
        if (rows[r].want_logits) nl++, att_pos_l += a;
    }
    inf->st.rows += n;
    inf->st.logit_rows += nl;
    inf->st.forwards++;
    double kv = 4.0 * D * KvD, rest = 4.0 * D * D + 6.0 * D * H, att = 4.0 * nh * hd;
    inf->st.flops += (c->n_layers - 1) * ((kv + rest) * n + att * (double)att_pos) + kv * n + rest * nl +
                     att * (double)att_pos_l + 2.0 * D * V * nl;
    int nthreads = n >= 8 * inf->n_threads ? inf->n_threads : 1;

#pragma omp parallel num_threads(nthreads)
    {
        int tid = thread_id(), T = nthreads;
#ifdef _OPENMP
        T = omp_get_num_threads();
#endif
        int per = (n + T - 1) / T, r0 = tid * per, rn = n - r0 < per ? n - r0 : per;
        if (rn < 0) rn = 0;
        float *x = inf->x + (size_t)r0 * D, *xb = inf->xb + (size_t)r0 * D, *q = inf->q + (size_t)r0 * D;
        float *k = inf->k + (size_t)r0 * KvD, *v = inf->v + (size_t)r0 * KvD, *att = inf->att + (size_t)r0 * D;
        float *h1 = inf->h1 + (size_t)r0 * H, *h3 = inf->h3 + (size_t)r0 * H;
        float *sc = inf->att_buf + (size_t)tid * 2 * inf->max_seq;
        lm_qmat emb = lm_model_mat(inf->m, 0, LM_MAT_EMB);
        for (int r = 0; r < rn; r++) lm_qmat_get_row(&emb, rows[r0 + r].token, x + (size_t)r * D);

        /* the rows this block carries through a layer: all of them, except in the last layer,
         * where a row without logits only leaves its key/value behind (nothing reads its output):
         * there the rows that want logits are moved to the front (live[j] = their index) and only
         * they get queries, attention and the feed-forward block */
        int *live = inf->live + r0, nlive = rn;
        for (int r = 0; r < rn; r++) live[r] = r;
        for (int l = 0; l < c->n_layers; l++) {
            /* attention block: norm, k v (q for the live rows), RoPE, keys/values into the cache */
            rmsnorm_rows(xb, x, w->attn_norm + (size_t)l * D, rn, D, c->norm_eps);
            wmatmul(k, xb, inf->m, l, LM_MAT_WK, rn, 0.0f);
            wmatmul(v, xb, inf->m, l, LM_MAT_WV, rn, 0.0f);
            if (l == c->n_layers - 1) {
                nlive = 0;
                for (int r = 0; r < rn; r++)
                    if (rows[r0 + r].want_logits) {
                        if (nlive != r) {
                            memcpy(xb + (size_t)nlive * D, xb + (size_t)r * D, D * sizeof(float));
                            memcpy(x + (size_t)nlive * D, x + (size_t)r * D, D * sizeof(float));
                        }
                        live[nlive++] = r;
                    }
            }
            wmatmul(q, xb, inf->m, l, LM_MAT_WQ, nlive, 0.0f);
            if (w->bq) add_qkv_bias(w, c, l, q, k, v, rn, nlive);
            for (int r = 0; r < rn; r++) {
                const row_desc *rd = &rows[r0 + r];
                rope_row(inf, k + (size_t)r * KvD, nkv, hd, rd->pos);
                pool_put(rd->own, c, l, rd->own_slot, rd->own_idx, k + (size_t)r * KvD, v + (size_t)r * KvD);
            }
            for (int j = 0; j < nlive; j++) rope_row(inf, q + (size_t)j * D, nh, hd, rows[r0 + live[j]].pos);
            if (sync) {
#pragma omp barrier
            }
            for (int j = 0; j < nlive; j++)
                attend_row(inf, &rows[r0 + live[j]], l, q + (size_t)j * D, att + (size_t)j * D, sc);
            wmatmul(x, att, inf->m, l, LM_MAT_WO, nlive, 1.0f);

            /* feed-forward block */
            rmsnorm_rows(xb, x, w->ffn_norm + (size_t)l * D, nlive, D, c->norm_eps);
            wmatmul(h1, xb, inf->m, l, LM_MAT_W1, nlive, 0.0f);
            wmatmul(h3, xb, inf->m, l, LM_MAT_W3, nlive, 0.0f);
            swiglu(h1, h3, (size_t)nlive * H);
            wmatmul(x, h1, inf->m, l, LM_MAT_W2, nlive, 1.0f);
        }

        /* output head on this block's rows that want logits (the first nlive rows of x after the
         * last layer), written at their rank among all such rows (ranks are increasing, so a
         * block's are contiguous) */
        int first = 0;
        for (int r = 0; r < r0; r++) first += rows[r].want_logits != 0;
        rmsnorm_rows(xb, x, w->out_norm, nlive, D, c->norm_eps);
        wmatmul(inf->logits + (size_t)first * V, xb, inf->m, 0, LM_MAT_OUT, nlive, 0.0f);
    }
    if (blas_prev != 1) openblas_set_num_threads(blas_prev);
    return nl;
}

/* ---------------------------------------------------------------- the reference forward */

/* Naive, one sequence, no cache; double accumulators. Written straight from lm.h's conventions
 * and sharing no code with the fast path. */
void lm_forward_reference(const lm_model *m, const int32_t *tokens, int n, float *logits) {
    if (m->qm) { /* a quantized base: the same numbers, decoded once */
        lm_model f;
        lm_model_to_f32(&f, m);
        lm_forward_reference(&f, tokens, n, logits);
        lm_model_free(&f);
        return;
    }
    const lm_config *c = &m->cfg;
    const lm_weights *w = &m->w;
    int D = c->dim, KvD = lm_kv_dim(c), H = c->hidden_dim, V = c->vocab_size, hd = lm_head_dim(c);
    int nh = c->n_heads, group = c->n_heads / c->n_kv_heads;
    double *x = sd_malloc(sizeof(double) * n * D), *xn = sd_malloc(sizeof(double) * D);
    double *q = sd_malloc(sizeof(double) * n * D), *k = sd_malloc(sizeof(double) * n * KvD);
    double *v = sd_malloc(sizeof(double) * n * KvD), *att = sd_malloc(sizeof(double) * n * D);
    double *h = sd_malloc(sizeof(double) * H), *sc = sd_malloc(sizeof(double) * n);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < D; i++) x[(size_t)t * D + i] = w->tok_emb[(size_t)tokens[t] * D + i];
    for (int l = 0; l < c->n_layers; l++) {
        for (int t = 0; t < n; t++) {
            double ss = 0;
            for (int i = 0; i < D; i++) ss += x[t * D + i] * x[t * D + i];
            double s = 1.0 / sqrt(ss / D + c->norm_eps);
            for (int i = 0; i < D; i++) xn[i] = x[t * D + i] * s * w->attn_norm[(size_t)l * D + i];
            for (int o = 0; o < D; o++) {
                double a = 0;
                for (int i = 0; i < D; i++) a += w->wq[((size_t)l * D + o) * D + i] * xn[i];
                q[t * D + o] = a + (w->bq ? w->bq[(size_t)l * D + o] : 0);
            }
            for (int o = 0; o < KvD; o++) {
                double a = 0, b = 0;
                for (int i = 0; i < D; i++) {
                    a += w->wk[((size_t)l * KvD + o) * D + i] * xn[i];
                    b += w->wv[((size_t)l * KvD + o) * D + i] * xn[i];
                }
                k[t * KvD + o] = a + (w->bk ? w->bk[(size_t)l * KvD + o] : 0);
                v[t * KvD + o] = b + (w->bv ? w->bv[(size_t)l * KvD + o] : 0);
            }
            /* RoPE: adjacent pairs, angle pos * theta^(-2i/hd) */
            for (int j = 0; j < D; j += 2) {
                int i = (j % hd) / 2;
                double ang = t * pow((double)c->rope_theta, -2.0 * i / hd);
                double a = q[t * D + j], b = q[t * D + j + 1];
                q[t * D + j] = a * cos(ang) - b * sin(ang);
                q[t * D + j + 1] = a * sin(ang) + b * cos(ang);
                if (j < KvD) {
                    a = k[t * KvD + j], b = k[t * KvD + j + 1];
                    k[t * KvD + j] = a * cos(ang) - b * sin(ang);
                    k[t * KvD + j + 1] = a * sin(ang) + b * cos(ang);
                }
            }
        }
        for (int t = 0; t < n; t++)
            for (int hh = 0; hh < nh; hh++) {
                int kvh = hh / group;
                double mx = -INFINITY, sum = 0;
                for (int u = 0; u <= t; u++) {
                    double s = 0;
                    for (int i = 0; i < hd; i++) s += q[t * D + hh * hd + i] * k[u * KvD + kvh * hd + i];
                    sc[u] = s / sqrt((double)hd);
                    if (sc[u] > mx) mx = sc[u];
                }
                for (int u = 0; u <= t; u++) sum += (sc[u] = exp(sc[u] - mx));
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int u = 0; u <= t; u++) a += sc[u] / sum * v[u * KvD + kvh * hd + i];
                    att[t * D + hh * hd + i] = a;
                }
            }
        for (int t = 0; t < n; t++) {
            for (int o = 0; o < D; o++) {
                double a = 0;
                for (int i = 0; i < D; i++) a += w->wo[((size_t)l * D + o) * D + i] * att[t * D + i];
                x[t * D + o] += a;
            }
            double ss = 0;
            for (int i = 0; i < D; i++) ss += x[t * D + i] * x[t * D + i];
            double s = 1.0 / sqrt(ss / D + c->norm_eps);
            for (int i = 0; i < D; i++) xn[i] = x[t * D + i] * s * w->ffn_norm[(size_t)l * D + i];
            for (int j = 0; j < H; j++) {
                double g = 0, u = 0;
                for (int i = 0; i < D; i++) {
                    g += w->w1[((size_t)l * H + j) * D + i] * xn[i];
                    u += w->w3[((size_t)l * H + j) * D + i] * xn[i];
                }
                h[j] = g / (1 + exp(-g)) * u;
            }
            for (int o = 0; o < D; o++) {
                double a = 0;
                for (int j = 0; j < H; j++) a += w->w2[((size_t)l * D + o) * H + j] * h[j];
                x[t * D + o] += a;
            }
        }
    }
    for (int t = 0; t < n; t++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += x[t * D + i] * x[t * D + i];
        double s = 1.0 / sqrt(ss / D + c->norm_eps);
        for (int i = 0; i < D; i++) xn[i] = x[t * D + i] * s * w->out_norm[i];
        for (int o = 0; o < V; o++) {
            double a = 0;
            for (int i = 0; i < D; i++) a += w->out[(size_t)o * D + i] * xn[i];
            logits[(size_t)t * V + o] = (float)a;
        }
    }
    free(x);
    free(xn);
    free(q);
    free(k);
    free(v);
    free(att);
    free(h);
    free(sc);
}

/* ---------------------------------------------------------------- prefill */

static int check_prompts(const lm_infer *inf, const int32_t *const *prompts, const int *plen, int n, int extra,
                         sd_err *err) {
    for (int p = 0; p < n; p++) {
        if (plen[p] < 1) return sd_fail(err, SD_ERR_USAGE, "prompt %d is empty", p);
        if (plen[p] + extra > inf->max_seq)
            return sd_fail(err, SD_ERR_USAGE, "prompt %d: %d tokens + %d new exceed the context's max_seq %d", p, plen[p],
                           extra, inf->max_seq);
        for (int t = 0; t < plen[p]; t++)
            if (prompts[p][t] < 0 || prompts[p][t] >= inf->c.vocab_size)
                return sd_fail(err, SD_ERR_USAGE, "prompt %d token %d: id %d outside the vocabulary [0, %d)", p, t,
                               prompts[p][t], inf->c.vocab_size);
    }
    return SD_OK;
}

/* Consecutive prompts sharing fewer leading tokens than this are prefilled apart (a copy of the
 * keys/values per layer is not worth a token or two). */
#define PREFILL_SHARE_MIN 2

/* Forwards rows[0..n) of a prefill and copies the last-token logits to plog (row owner[i]). */
static void prefill_flush(lm_infer *inf, const row_desc *rows, const int *owner, int n) {
    if (n == 0) return;
    int V = inf->c.vocab_size;
    forward_rows(inf, rows, n, 1);
    int j = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].want_logits) memcpy(inf->plog + (size_t)owner[i] * V, inf->logits + (size_t)(j++) * V, V * sizeof(float));
}

/* Prefills prompts[0..np) (np <= max_rows) into prompt-pool slots 0..np-1 and copies each
 * prompt's last-token logits into plog row p. Rows of several prompts share each forward.
 * A prompt that starts with >= PREFILL_SHARE_MIN tokens of the last "leader" prompt before it
 * (a prompt computed in full) copies the leader's keys/values for those tokens (all but its last
 * token at most) and computes only the rest: in the plan, the contexts of a chunk share their
 * first cluster's part of the prompt. Keys/values at a position depend only on the tokens up to
 * it, so the copy is what the computation would give. */
static void prefill(lm_infer *inf, const int32_t *const *prompts, const int *plen, int np, row_desc *rows,
                    int *owner) {
    const lm_config *c = &inf->c;
    int maxlen = 1;
    for (int p = 0; p < np; p++)
        if (plen[p] > maxlen) maxlen = plen[p];
    pool_reserve(&inf->prompt, c, np, maxlen);
    int *lead = sd_malloc(sizeof(int) * (np + 1)), *shared = sd_malloc(sizeof(int) * (np + 1));
    for (int p = 0, l = -1; p < np; p++) {
        int sh = 0;
        if (l >= 0) {
            int m = plen[p] - 1 < plen[l] ? plen[p] - 1 : plen[l];
            while (sh < m && prompts[p][sh] == prompts[l][sh]) sh++;
        }
        if (l < 0 || sh < PREFILL_SHARE_MIN) l = p, sh = 0;
        lead[p] = l;
        shared[p] = sh;
    }
    for (int phase = 0; phase < 2; phase++) { /* 0: the leaders; 1: the others, from their leader's copy */
        int n = 0;
        for (int p = 0; p < np; p++) {
            if ((lead[p] == p) != (phase == 0)) continue;
            pool_copy(&inf->prompt, p, &inf->prompt, lead[p], c, shared[p]);
            for (int t = shared[p]; t < plen[p]; t++) {
                row_desc *r = &rows[n];
                r->token = prompts[p][t];
                r->pos = t;
                r->pre = NULL;
                r->pre_slot = r->pre_len = 0;
                r->own = &inf->prompt;
                r->own_slot = p;
                r->own_idx = t;
                r->want_logits = t == plen[p] - 1;
                owner[n++] = p;
                if (n == inf->max_rows) {
                    prefill_flush(inf, rows, owner, n);
                    n = 0;
                }
            }
        }
        prefill_flush(inf, rows, owner, n);
    }
    free(lead);
    free(shared);
}

/* ---------------------------------------------------------------- generation */

typedef struct {
    int p, s;        /* prompt (absolute) and sample index */
    int out;         /* output sequence index */
    int32_t last;    /* token to feed next */
    int len, done, node;
    double lp, lp_renorm;
    sd_rng rng;
} gen_row;

/* Chooses the next token of row g from logits; updates its state. */
static void gen_choose(lm_infer *inf, gen_row *g, const float *logits, const lm_sampler *s, int max_new, int32_t stop_id,
                       lm_gen_out *out) {
    int V = inf->c.vocab_size;
    float *scratch = inf->samp_buf + (size_t)thread_id() * 3 * V;
    int32_t tok = lm_sample(s, logits, V, NULL, 0, &g->rng, scratch);
    g->lp += lm_logprob_of(logits, V, tok);
    if (tok == stop_id) {
        g->done = 1;
        out->stopped[g->out] = 1;
    } else {
        out->tokens[(size_t)g->out * out->max_new + g->len++] = tok;
        g->last = tok;
        if (g->len >= max_new) g->done = 1;
    }
}

/* The argument checks shared by the generators. */
static int check_gen_args(const lm_infer *inf, const int32_t *const *prompts, const int *plen, int n_prompts,
                          int n_samples, int max_new, sd_err *err) {
    if (n_prompts < 0 || n_samples < 1 || max_new < 1)
        return sd_fail(err, SD_ERR_USAGE, "generate: n_prompts %d, n_samples %d, max_new %d must be positive", n_prompts,
                       n_samples, max_new);
    return check_prompts(inf, prompts, plen, n_prompts, max_new, err);
}

/* The driver of lm_generate: one row per sample and step (the plain path; lm_generate_shared
 * is the same with the rows of equal samples shared, and is tested against this one). */
static int generate_core(lm_infer *inf, const int32_t *const *prompts, const int *plen, int n_prompts, int n_samples,
                         const lm_sampler *s, int max_new, int32_t stop_id, lm_gen_out *out, sd_err *err) {
    int rc = check_gen_args(inf, prompts, plen, n_prompts, n_samples, max_new, err);
    if (rc) return rc;
    int V = inf->c.vocab_size, R = inf->max_rows;
    int ns = n_samples < R ? n_samples : R, pc = R / ns;
    row_desc *rows = sd_malloc(sizeof(row_desc) * R);
    int *owner = sd_malloc(sizeof(int) * R);
    gen_row *g = sd_malloc(sizeof(gen_row) * R);
    int *active = sd_malloc(sizeof(int) * R);
    pool_reserve(&inf->gen, &inf->c, R, max_new);
    sd_progress prog;
    sd_progress_start(&prog, "generating", n_prompts);
    for (int p0 = 0; p0 < n_prompts; p0 += pc) {
        int np = n_prompts - p0 < pc ? n_prompts - p0 : pc;
        for (int s0 = 0; s0 < n_samples; s0 += ns) {
            int nsc = n_samples - s0 < ns ? n_samples - s0 : ns, nr = np * nsc;
            prefill(inf, prompts + p0, plen + p0, np, rows, owner);
            for (int i = 0; i < nr; i++) {
                gen_row *gi = &g[i];
                memset(gi, 0, sizeof *gi);
                gi->p = p0 + i / nsc;
                gi->s = s0 + i % nsc;
                gi->out = gi->p * n_samples + gi->s;
                lm_sampler_stream(&gi->rng, s->seed, prompts[gi->p], plen[gi->p], gi->s);
            }
#pragma omp parallel for schedule(static) if (nr > 8) num_threads(inf->n_threads)
            for (int i = 0; i < nr; i++)
                gen_choose(inf, &g[i], inf->plog + (size_t)(i / nsc) * V, s, max_new, stop_id, out);
            for (int step = 0;; step++) {
                int na = 0;
                for (int i = 0; i < nr; i++)
                    if (!g[i].done) active[na++] = i;
                if (na == 0) break;
                for (int j = 0; j < na; j++) {
                    gen_row *gi = &g[active[j]];
                    row_desc *r = &rows[j];
                    r->token = gi->last;
                    r->pre = &inf->prompt;
                    r->pre_slot = gi->p - p0;
                    r->pre_len = plen[gi->p];
                    r->own = &inf->gen;
                    r->own_slot = active[j];
                    r->own_idx = step;
                    r->pos = r->pre_len + step;
                    r->want_logits = 1;
                }
                forward_rows(inf, rows, na, 0);
#pragma omp parallel for schedule(static) if (na > 8) num_threads(inf->n_threads)
                for (int j = 0; j < na; j++)
                    gen_choose(inf, &g[active[j]], inf->logits + (size_t)j * V, s, max_new, stop_id, out);
            }
            for (int i = 0; i < nr; i++) {
                out->len[g[i].out] = g[i].len;
                out->logprob[g[i].out] = (float)g[i].lp;
            }
        }
        sd_progress_update(&prog, p0 + np, NULL);
    }
    sd_progress_end(&prog);
    free(rows);
    free(owner);
    free(g);
    free(active);
    return SD_OK;
}

/* ---------------------------------------------------------------- shared-prefix generation */

/* A group: the samples of one prompt that have drawn the same tokens so far. They share one
 * forward row per step and one gen-pool slot (keys/values of their generated tokens). */
typedef struct {
    int p;         /* prompt, relative to the batch */
    int slot;      /* gen-pool slot holding positions 0..depth-2 (depth-1 after the next forward); -1 none */
    int depth;     /* tokens drawn by every member */
    int32_t last;  /* the last token drawn, fed next */
    int node;      /* trie node after those tokens (constrained) */
    int m0, nm;    /* members: mem[m0 .. m0+nm) */
} tgroup;

/* log-softmax parts of logits over cand (all V when cand is NULL): *mx and log(sum exp(x - mx)),
 * through lm_logsumexp as lm_logprob_of, so the values are the same. */
static void lse_parts(const float *logits, int V, const int32_t *cand, int n, float *mx, double *lse) {
    if (!cand) {
        *lse = lm_logsumexp(logits, V, mx);
        return;
    }
    float m = -INFINITY;
    for (int j = 0; j < n; j++) m = logits[cand[j]] > m ? logits[cand[j]] : m;
    double sum = 0;
    for (int j = 0; j < n; j++) sum += exp((double)(logits[cand[j]] - m));
    *mx = m;
    *lse = log(sum);
}

/* Draws the next token of every member of group gr from logits (V) and updates the members
 * (gen_row: len, lp, lp_renorm, done, stopped/tokens in out). Thread-safe across groups. */
static void tree_draw(lm_infer *inf, const tgroup *gr, const int *mem, gen_row *g, const float *logits,
                      const lm_sampler *s, const lm_trie *trie, int want_lp, int max_new, int32_t stop_id,
                      lm_gen_out *out) {
    int V = inf->c.vocab_size, nm = gr->nm;
    float *scratch = inf->samp_buf + (size_t)thread_id() * 3 * V;
    sd_rng *rngs[64];
    int32_t toks[64];
    const int32_t *ct = NULL;
    const int *ch;
    int nc = trie ? lm_trie_children(trie, gr->node, &ct, &ch) : 0;
    float mx = 0, mxr = 0;
    double lse = 0, lser = 0;
    if (want_lp) lse_parts(logits, V, NULL, 0, &mx, &lse);
    if (trie) lse_parts(logits, V, ct, nc, &mxr, &lser);
    for (int b = 0; b < nm; b += 64) { /* members in blocks of 64 rngs */
        int k = nm - b < 64 ? nm - b : 64;
        for (int i = 0; i < k; i++) rngs[i] = &g[mem[gr->m0 + b + i]].rng;
        lm_sample_many(s, logits, V, ct, nc, rngs, k, toks, scratch);
        for (int i = 0; i < k; i++) {
            gen_row *gi = &g[mem[gr->m0 + b + i]];
            int32_t tok = toks[i];
            if (want_lp) gi->lp += (float)((double)(logits[tok] - mx) - lse); /* as lm_logprob_of */
            gi->last = tok;
            if (!trie) {
                if (tok == stop_id) {
                    gi->done = 1;
                    out->stopped[gi->out] = 1;
                } else {
                    out->tokens[(size_t)gi->out * out->max_new + gi->len++] = tok;
                    if (gi->len >= max_new) gi->done = 1;
                }
                continue;
            }
            gi->lp_renorm += (double)(logits[tok] - mxr) - lser;
            gi->node = lm_trie_step(trie, gr->node, tok);
            gi->len++;
            if (tok == lm_trie_end(trie)) gi->done = 1;
            else if (!want_lp && lm_trie_only(trie, gi->node) >= 0) gi->done = 1; /* the rest is forced */
        }
    }
}

/* Copies positions [0, n) of gen-pool slot src to slot dst, every layer. */
static void gen_copy(lm_infer *inf, int dst, int src, int n) { pool_copy(&inf->gen, dst, &inf->gen, src, &inf->c, n); }

/* The driver of lm_generate_shared and lm_generate_constrained: like generate_core, but samples
 * are grouped by the tokens drawn so far (see tgroup). want_lp 0 (constrained only) skips the
 * unconstrained log-probability and finishes samples whose string the trie already determines. */
static int tree_generate(lm_infer *inf, const int32_t *const *prompts, const int *plen, int n_prompts, int n_samples,
                         const lm_sampler *s, int max_new, int32_t stop_id, const lm_trie *trie, int want_lp,
                         lm_gen_out *out, int *choice, float *logprob, float *logprob_renorm, sd_err *err) {
    int rc = check_gen_args(inf, prompts, plen, n_prompts, n_samples, max_new, err);
    if (rc) return rc;
    int V = inf->c.vocab_size, R = inf->max_rows;
    int ns = n_samples < R ? n_samples : R, pc = R / ns;
    row_desc *rows = sd_malloc(sizeof(row_desc) * R);
    int *owner = sd_malloc(sizeof(int) * R);
    gen_row *g = sd_malloc(sizeof(gen_row) * R);
    tgroup *grp = sd_malloc(sizeof(tgroup) * R), *ngrp = sd_malloc(sizeof(tgroup) * R);
    int *mem = sd_malloc(sizeof(int) * R), *nmem = sd_malloc(sizeof(int) * R);
    int *free_slots = sd_malloc(sizeof(int) * R);
    pool_reserve(&inf->gen, &inf->c, R, max_new);
    sd_progress prog;
    sd_progress_start(&prog, trie ? "constrained decoding" : "generating", n_prompts);
    for (int p0 = 0; p0 < n_prompts; p0 += pc) {
        int np = n_prompts - p0 < pc ? n_prompts - p0 : pc;
        for (int s0 = 0; s0 < n_samples; s0 += ns) {
            int nsc = n_samples - s0 < ns ? n_samples - s0 : ns, nr = np * nsc;
            prefill(inf, prompts + p0, plen + p0, np, rows, owner);
            int ng = np, n_free = R;
            for (int i = 0; i < R; i++) free_slots[i] = R - 1 - i;
            for (int i = 0; i < nr; i++) {
                gen_row *gi = &g[i];
                memset(gi, 0, sizeof *gi);
                gi->p = p0 + i / nsc;
                gi->s = s0 + i % nsc;
                gi->out = gi->p * n_samples + gi->s;
                lm_sampler_stream(&gi->rng, s->seed, prompts[gi->p], plen[gi->p], gi->s);
                mem[i] = i;
            }
            for (int p = 0; p < np; p++) grp[p] = (tgroup){.p = p, .slot = -1, .depth = 0, .node = 0, .m0 = p * nsc, .nm = nsc};
            for (int step = 0;; step++) {
                /* draw: from the prompt's logits first, then from the groups' rows */
#pragma omp parallel for schedule(dynamic, 4) if (ng > 8) num_threads(inf->n_threads)
                for (int j = 0; j < ng; j++)
                    tree_draw(inf, &grp[j], mem, g,
                              step == 0 ? inf->plog + (size_t)grp[j].p * V : inf->logits + (size_t)j * V, s, trie,
                              want_lp, max_new, stop_id, out);
                /* regroup the members still running by the token they drew (stable: members stay
                 * in sample order within a group); the first child keeps the parent's slot */
                int nng = 0, nmm = 0;
                for (int j = 0; j < ng; j++) {
                    const tgroup *gr = &grp[j];
                    int m0 = nmm, kept = 0;
                    for (int i = 0; i < gr->nm; i++) {
                        int gi = mem[gr->m0 + i];
                        if (g[gi].done) continue;
                        int k = nmm++; /* insertion by token, stable */
                        while (k > m0 && g[nmem[k - 1]].last > g[gi].last) nmem[k] = nmem[k - 1], k--;
                        nmem[k] = gi;
                    }
                    for (int i = m0; i < nmm;) {
                        int e = i + 1;
                        while (e < nmm && g[nmem[e]].last == g[nmem[i]].last) e++;
                        tgroup *ch = &ngrp[nng++];
                        *ch = (tgroup){.p = gr->p, .depth = gr->depth + 1, .last = g[nmem[i]].last,
                                       .node = g[nmem[i]].node, .m0 = i, .nm = e - i};
                        if (!kept && gr->slot >= 0) {
                            ch->slot = gr->slot;
                            kept = 1;
                        } else {
                            ch->slot = free_slots[--n_free];
                            if (gr->slot >= 0) gen_copy(inf, ch->slot, gr->slot, gr->depth);
                        }
                        i = e;
                    }
                    if (!kept && gr->slot >= 0) free_slots[n_free++] = gr->slot;
                }
                tgroup *tg = grp;
                grp = ngrp, ngrp = tg;
                int *tm = mem;
                mem = nmem, nmem = tm;
                ng = nng;
                if (ng == 0) break;
                /* one row per group: its last token at position depth-1 of its slot */
                for (int j = 0; j < ng; j++) {
                    const tgroup *gr = &grp[j];
                    row_desc *r = &rows[j];
                    r->token = gr->last;
                    r->pre = &inf->prompt;
                    r->pre_slot = gr->p;
                    r->pre_len = plen[p0 + gr->p];
                    r->own = &inf->gen;
                    r->own_slot = gr->slot;
                    r->own_idx = gr->depth - 1;
                    r->pos = r->pre_len + gr->depth - 1;
                    r->want_logits = 1;
                }
                forward_rows(inf, rows, ng, 0);
            }
            for (int i = 0; i < nr; i++) {
                if (out) {
                    out->len[g[i].out] = g[i].len;
                    out->logprob[g[i].out] = (float)g[i].lp;
                } else {
                    int leaf = lm_trie_leaf(trie, g[i].node);
                    choice[g[i].out] = leaf >= 0 ? leaf : lm_trie_only(trie, g[i].node);
                    if (logprob) logprob[g[i].out] = (float)g[i].lp;
                    if (logprob_renorm) logprob_renorm[g[i].out] = (float)g[i].lp_renorm;
                }
            }
        }
        sd_progress_update(&prog, p0 + np, NULL);
    }
    sd_progress_end(&prog);
    free(rows);
    free(owner);
    free(g);
    free(grp);
    free(ngrp);
    free(mem);
    free(nmem);
    free(free_slots);
    return SD_OK;
}

/* Checks the counts of a generation and allocates out for n_prompts x n_samples sequences of at
 * most max_new tokens (zeroed; lm_gen_out_free frees). */
static int gen_out_init(lm_gen_out *out, int n_prompts, int n_samples, int max_new, sd_err *err) {
    memset(out, 0, sizeof *out);
    if (n_samples < 1 || max_new < 1 || n_prompts < 0)
        return sd_fail(err, SD_ERR_USAGE, "generate: n_prompts %d, n_samples %d, max_new %d must be positive", n_prompts,
                       n_samples, max_new);
    size_t n = (size_t)n_prompts * n_samples;
    out->n = (int)n;
    out->max_new = max_new;
    out->tokens = sd_calloc(n * max_new + 1, sizeof(int32_t));
    out->len = sd_calloc(n + 1, sizeof(int));
    out->stopped = sd_calloc(n + 1, sizeof(int));
    out->logprob = sd_calloc(n + 1, sizeof(float));
    return SD_OK;
}

int lm_generate_shared(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                       int n_samples, const lm_sampler *s, int max_new, int32_t stop_id, lm_gen_out *out, sd_err *err) {
    int rc = gen_out_init(out, n_prompts, n_samples, max_new, err);
    if (rc) return rc;
    rc = tree_generate(inf, prompts, prompt_len, n_prompts, n_samples, s, max_new, stop_id, NULL, 1, out, NULL, NULL,
                           NULL, err);
    if (rc) lm_gen_out_free(out);
    return rc;
}

int lm_generate(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts, int n_samples,
                const lm_sampler *s, int max_new, int32_t stop_id, lm_gen_out *out, sd_err *err) {
    int rc = gen_out_init(out, n_prompts, n_samples, max_new, err);
    if (rc) return rc;
    rc = generate_core(inf, prompts, prompt_len, n_prompts, n_samples, s, max_new, stop_id, out, err);
    if (rc) lm_gen_out_free(out);
    return rc;
}

void lm_gen_out_free(lm_gen_out *out) {
    if (!out) return;
    free(out->tokens);
    free(out->len);
    free(out->stopped);
    free(out->logprob);
    memset(out, 0, sizeof *out);
}

int lm_generate_constrained(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                            int n_samples, const lm_sampler *s, const lm_trie *trie, int *choice, float *logprob,
                            float *logprob_renorm, sd_err *err) {
    return tree_generate(inf, prompts, prompt_len, n_prompts, n_samples, s, lm_trie_max_depth(trie), -1, trie,
                         logprob != NULL, NULL, choice, logprob, logprob_renorm, err);
}

/* ---------------------------------------------------------------- scoring */

/* log-softmax of logits (V) into out (V). */
static void log_softmax(float *out, const float *logits, int V) {
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)(logits[i] - mx));
    float lse = (float)log(s) + mx;
    for (int i = 0; i < V; i++) out[i] = logits[i] - lse;
}

int lm_next_logprobs(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts, float *out,
                     sd_err *err) {
    int rc = check_prompts(inf, prompts, prompt_len, n_prompts, 0, err);
    if (rc) return rc;
    int V = inf->c.vocab_size, R = inf->max_rows;
    row_desc *rows = sd_malloc(sizeof(row_desc) * R);
    int *owner = sd_malloc(sizeof(int) * R);
    for (int p0 = 0; p0 < n_prompts; p0 += R) {
        int np = n_prompts - p0 < R ? n_prompts - p0 : R;
        prefill(inf, prompts + p0, prompt_len + p0, np, rows, owner);
#pragma omp parallel for schedule(static)
        for (int p = 0; p < np; p++) log_softmax(out + (size_t)(p0 + p) * V, inf->plog + (size_t)p * V, V);
    }
    free(rows);
    free(owner);
    return SD_OK;
}

int lm_score_continuations(lm_infer *inf, const int32_t *prompt, int prompt_len, const int32_t *const *conts,
                           const int *cont_len, int n, float *out, sd_err *err) {
    int maxc = 0;
    for (int i = 0; i < n; i++) {
        if (cont_len[i] < 0) return sd_fail(err, SD_ERR_USAGE, "continuation %d has negative length", i);
        if (cont_len[i] > maxc) maxc = cont_len[i];
        for (int j = 0; j < cont_len[i]; j++)
            if (conts[i][j] < 0 || conts[i][j] >= inf->c.vocab_size)
                return sd_fail(err, SD_ERR_USAGE, "continuation %d token %d: id %d outside the vocabulary", i, j,
                               conts[i][j]);
    }
    int rc = check_prompts(inf, &prompt, &prompt_len, 1, maxc, err);
    if (rc) return rc;
    int V = inf->c.vocab_size, R = inf->max_rows;
    row_desc *rows = sd_malloc(sizeof(row_desc) * R);
    int *owner = sd_malloc(sizeof(int) * R);
    int *who = sd_malloc(sizeof(int) * R); /* continuation of each row wanting logits */
    int *at = sd_malloc(sizeof(int) * R);  /* index of the token that row predicts */
    double *acc = sd_calloc(n > 0 ? n : 1, sizeof(double));
    prefill(inf, &prompt, &prompt_len, 1, rows, owner);
    for (int i = 0; i < n; i++)
        if (cont_len[i] > 0) acc[i] = lm_logprob_of(inf->plog, V, conts[i][0]);
    pool_reserve(&inf->gen, &inf->c, R, maxc > 1 ? maxc - 1 : 1);
    /* rows: the tokens of each continuation but its last, reading the prompt's cache; each
     * continuation owns one gen slot; when the slots run out every pending row is flushed first */
    int nr = 0, slot = 0;
#define FLUSH()                                                                                             \
    do {                                                                                                    \
        if (nr > 0) forward_rows(inf, rows, nr, 1);                                                         \
        for (int u = 0; u < nr; u++) acc[who[u]] += lm_logprob_of(inf->logits + (size_t)u * V, V, conts[who[u]][at[u]]); \
        nr = 0;                                                                                             \
    } while (0)
    for (int i = 0; i < n; i++) {
        if (cont_len[i] <= 1) continue;
        if (slot == R) {
            FLUSH();
            slot = 0;
        }
        for (int j = 0; j + 1 < cont_len[i]; j++) {
            if (nr == R) FLUSH(); /* the slot keeps the keys/values already written */
            row_desc *r = &rows[nr];
            r->token = conts[i][j];
            r->pre = &inf->prompt;
            r->pre_slot = 0;
            r->pre_len = prompt_len;
            r->own = &inf->gen;
            r->own_slot = slot;
            r->own_idx = j;
            r->pos = prompt_len + j;
            r->want_logits = 1;
            who[nr] = i;
            at[nr] = j + 1;
            nr++;
        }
        slot++;
    }
    FLUSH();
#undef FLUSH
    for (int i = 0; i < n; i++) out[i] = (float)acc[i];
    free(rows);
    free(owner);
    free(who);
    free(at);
    free(acc);
    return SD_OK;
}

/* Row i of the result of lm_next_logprobs_after (pick NULL: log-softmax, V floats) or of
 * lm_next_logits_after (the n_pick raw logits at pick) from logits (V). */
static void after_out(float *out, const float *logits, int V, const int32_t *pick, int n_pick) {
    if (!pick) {
        log_softmax(out, logits, V);
        return;
    }
    for (int j = 0; j < n_pick; j++) out[j] = logits[pick[j]];
}

static int next_after(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                      const int32_t *const *conts, const int *cont_len, const int *cont_prompt, int n, const int32_t *pick,
                      int n_pick, float *out, sd_err *err);

int lm_next_logprobs_after(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                           const int32_t *const *conts, const int *cont_len, const int *cont_prompt, int n, float *out,
                           sd_err *err) {
    return next_after(inf, prompts, prompt_len, n_prompts, conts, cont_len, cont_prompt, n, NULL, 0, out, err);
}

int lm_next_logits_after(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                         const int32_t *const *conts, const int *cont_len, const int *cont_prompt, int n,
                         const int32_t *pick, int n_pick, float *out, sd_err *err) {
    if (!pick || n_pick < 1) return sd_fail(err, SD_ERR_USAGE, "next logits: no tokens to pick");
    for (int j = 0; j < n_pick; j++)
        if (pick[j] < 0 || pick[j] >= inf->c.vocab_size)
            return sd_fail(err, SD_ERR_USAGE, "next logits: picked id %d outside the vocabulary", pick[j]);
    return next_after(inf, prompts, prompt_len, n_prompts, conts, cont_len, cont_prompt, n, pick, n_pick, out, err);
}

/* The driver of lm_next_logprobs_after / lm_next_logits_after; rows of out are W = pick ? n_pick : V wide. */
static int next_after(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                      const int32_t *const *conts, const int *cont_len, const int *cont_prompt, int n, const int32_t *pick,
                      int n_pick, float *out, sd_err *err) {
    int maxc = 0;
    for (int i = 0; i < n; i++) {
        if (cont_len[i] < 0) return sd_fail(err, SD_ERR_USAGE, "continuation %d has negative length", i);
        if (cont_prompt[i] < 0 || cont_prompt[i] >= n_prompts || (i && cont_prompt[i] < cont_prompt[i - 1]))
            return sd_fail(err, SD_ERR_USAGE, "continuation %d: prompt %d out of range or out of order", i, cont_prompt[i]);
        if (cont_len[i] > maxc) maxc = cont_len[i];
        for (int j = 0; j < cont_len[i]; j++)
            if (conts[i][j] < 0 || conts[i][j] >= inf->c.vocab_size)
                return sd_fail(err, SD_ERR_USAGE, "continuation %d token %d: id %d outside the vocabulary", i, j,
                               conts[i][j]);
    }
    int rc = check_prompts(inf, prompts, prompt_len, n_prompts, maxc, err);
    if (rc) return rc;
    int V = inf->c.vocab_size, R = inf->max_rows, W = pick ? n_pick : V;
    row_desc *rows = sd_malloc(sizeof(row_desc) * R);
    int *owner = sd_malloc(sizeof(int) * R);
    int *who = sd_malloc(sizeof(int) * R); /* continuation of each row that wants logits */
    /* per continuation of a block: the earlier one it copies its first sh tokens' keys/values
     * from, the equal earlier one whose result it takes (dup), its gen slot */
    int *par = sd_malloc(sizeof(int) * (n + 1)), *sh = sd_malloc(sizeof(int) * (n + 1));
    int *dup = sd_malloc(sizeof(int) * (n + 1)), *slot = sd_malloc(sizeof(int) * (n + 1));
    pool_reserve(&inf->gen, &inf->c, R, maxc > 0 ? maxc : 1);
    int nr = 0, nw = 0;
#define FLUSH()                                                                                         \
    do {                                                                                                \
        if (nr > 0) forward_rows(inf, rows, nr, 0);                                                     \
        for (int u = 0; u < nw; u++) after_out(out + (size_t)who[u] * W, inf->logits + (size_t)u * V, V, pick, n_pick); \
        nr = nw = 0;                                                                                    \
    } while (0)
    int ci = 0;
    for (int p0 = 0; p0 < n_prompts; p0 += R) {
        int np = n_prompts - p0 < R ? n_prompts - p0 : R;
        prefill(inf, prompts + p0, prompt_len + p0, np, rows, owner);
        while (ci < n && cont_prompt[ci] < p0 + np) {
            /* a block: the next continuations of these prompts, at most R of them needing a slot.
             * Within it, continuation i shares with par[i], the first earlier one of its prompt
             * with the longest common prefix, sh[i] tokens (all but its last at most). The first
             * such one shares fewer tokens with its own par (else an even earlier one would tie),
             * so par's keys/values are in place by the level where i first has a row. */
            int b0 = ci, used = 0, maxl = 0, pstart = ci;
            for (; ci < n && cont_prompt[ci] < p0 + np; ci++) {
                if (ci > b0 && cont_prompt[ci] != cont_prompt[ci - 1]) pstart = ci;
                int len = cont_len[ci], best = 0, bj = -1;
                dup[ci] = -1;
                for (int j = pstart; j < ci && len > 0; j++) {
                    if (dup[j] >= 0 || cont_len[j] == 0) continue;
                    int m = len < cont_len[j] ? len : cont_len[j], k = 0;
                    while (k < m && conts[ci][k] == conts[j][k]) k++;
                    if (k == len && cont_len[j] == len) {
                        dup[ci] = j; /* equal: computed once */
                        break;
                    }
                    if (k > best) best = k, bj = j;
                }
                if (len == 0 || dup[ci] >= 0) continue;
                if (used == R) break;
                par[ci] = bj;
                sh[ci] = best < len - 1 ? best : len - 1;
                slot[ci] = used++;
                if (len > maxl) maxl = len;
            }
            for (int d = 0; d < maxl; d++) { /* level d: the d-th token of every continuation */
                for (int i = b0; i < ci; i++)
                    if (cont_len[i] > 0 && dup[i] < 0 && sh[i] == d && d > 0) gen_copy(inf, slot[i], slot[par[i]], d);
                for (int i = b0; i < ci; i++) {
                    int len = cont_len[i];
                    if (len == 0 || dup[i] >= 0 || d < sh[i] || d >= len) continue;
                    if (nr == R) FLUSH(); /* rows of one level do not read each other */
                    row_desc *r = &rows[nr++];
                    r->token = conts[i][d];
                    r->pre = &inf->prompt;
                    r->pre_slot = cont_prompt[i] - p0;
                    r->pre_len = prompt_len[cont_prompt[i]];
                    r->own = &inf->gen;
                    r->own_slot = slot[i];
                    r->own_idx = d;
                    r->pos = r->pre_len + d;
                    r->want_logits = d == len - 1;
                    if (r->want_logits) who[nw++] = i;
                }
                FLUSH();
            }
            for (int i = b0; i < ci; i++) {
                if (cont_len[i] == 0) after_out(out + (size_t)i * W, inf->plog + (size_t)(cont_prompt[i] - p0) * V, V, pick, n_pick);
                else if (dup[i] >= 0) memcpy(out + (size_t)i * W, out + (size_t)dup[i] * W, sizeof(float) * W);
            }
        }
    }
#undef FLUSH
    free(rows);
    free(owner);
    free(who);
    free(par);
    free(sh);
    free(dup);
    free(slot);
    return SD_OK;
}

/* ---------------------------------------------------------------- exact trie log-probabilities */

int lm_trie_logprobs(lm_infer *inf, const int32_t *const *prompts, const int *prompt_len, int n_prompts,
                     const lm_trie *trie, float *out, sd_err *err) {
    int depth = lm_trie_max_depth(trie);
    int rc = check_prompts(inf, prompts, prompt_len, n_prompts, depth, err);
    if (rc) return rc;
    const lm_config *c = &inf->c;
    int V = c->vocab_size, R = inf->max_rows, N = lm_trie_n_nodes(trie), S = lm_trie_count(trie);
    /* level d holds nodes [lvl[d], lvl[d+1]) (breadth-first numbering) */
    int *lvl = sd_calloc((size_t)depth + 2, sizeof(int));
    for (int nd = 0; nd < N; nd++) lvl[lm_trie_depth(trie, nd) + 1]++;
    for (int d = 0; d <= depth; d++) lvl[d + 1] += lvl[d];
    int width = 1;
    for (int d = 0; d <= depth; d++)
        if (lvl[d + 1] - lvl[d] > width) width = lvl[d + 1] - lvl[d];
    int pc = R / width > 0 ? R / width : 1;
    kv_pool lv[2] = {{0}};
    pool_reserve(&lv[0], c, pc * width, depth);
    pool_reserve(&lv[1], c, pc * width, depth);
    row_desc *rows = sd_malloc(sizeof(row_desc) * R);
    int *owner = sd_malloc(sizeof(int) * R);
    int *rp = sd_malloc(sizeof(int) * R), *rn = sd_malloc(sizeof(int) * R);
    float *lp = sd_malloc(sizeof(float) * (size_t)pc * N); /* (pc, N) log-prob of reaching node */
    for (int p0 = 0; p0 < n_prompts; p0 += pc) {
        int np = n_prompts - p0 < pc ? n_prompts - p0 : pc;
        prefill(inf, prompts + p0, prompt_len + p0, np, rows, owner);
        const int32_t *ct;
        const int *ch;
        int nc = lm_trie_children(trie, 0, &ct, &ch);
        for (int p = 0; p < np; p++) {
            lp[(size_t)p * N] = 0;
            for (int j = 0; j < nc; j++) lp[(size_t)p * N + ch[j]] = lm_logprob_of(inf->plog + (size_t)p * V, V, ct[j]);
        }
        for (int d = 1; d < depth; d++) {
            kv_pool *cur = &lv[d % 2], *prev = &lv[(d + 1) % 2];
            int nr = 0;
            for (int p = 0; p < np; p++)
                for (int nd = lvl[d]; nd <= lvl[d + 1]; nd++) {
                    int last = p == np - 1 && nd == lvl[d + 1];
                    if (nd < lvl[d + 1] && lm_trie_leaf(trie, nd) < 0) {
                        /* this node's row: copy the parent's path keys/values, feed its token */
                        int slot = p * width + (nd - lvl[d]), par = lm_trie_parent(trie, nd);
                        int pslot = p * width + (par - lvl[d - 1]);
                        if (d > 1) pool_copy(cur, slot, prev, pslot, c, d - 1);
                        row_desc *r = &rows[nr];
                        r->token = lm_trie_token(trie, nd);
                        r->pre = &inf->prompt;
                        r->pre_slot = p;
                        r->pre_len = prompt_len[p0 + p];
                        r->own = cur;
                        r->own_slot = slot;
                        r->own_idx = d - 1;
                        r->pos = r->pre_len + d - 1;
                        r->want_logits = 1;
                        rp[nr] = p;
                        rn[nr] = nd;
                        nr++;
                    }
                    if (nr == R || (last && nr > 0)) {
                        forward_rows(inf, rows, nr, 0);
                        for (int j = 0; j < nr; j++) {
                            int k = lm_trie_children(trie, rn[j], &ct, &ch);
                            float *lg = inf->logits + (size_t)j * V;
                            float base = lp[(size_t)rp[j] * N + rn[j]];
                            for (int u = 0; u < k; u++) lp[(size_t)rp[j] * N + ch[u]] = base + lm_logprob_of(lg, V, ct[u]);
                        }
                        nr = 0;
                    }
                }
        }
        for (int p = 0; p < np; p++)
            for (int nd = 0; nd < N; nd++) {
                int leaf = lm_trie_leaf(trie, nd);
                if (leaf >= 0) out[(size_t)(p0 + p) * S + leaf] = lp[(size_t)p * N + nd];
            }
    }
    pool_free(&lv[0]);
    pool_free(&lv[1]);
    free(lvl);
    free(rows);
    free(owner);
    free(rp);
    free(rn);
    free(lp);
    return SD_OK;
}
