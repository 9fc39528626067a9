/* sample.c - token sampling: greedy, temperature, top-k, top-p, with per-sequence RNG streams.
 *
 * Each sample of each prompt draws from its own xoshiro stream seeded from (seed, prompt tokens,
 * sample index), so a sequence's tokens do not depend on which other sequences share its batch.
 * Hand-written because the selection rules are a few lines and no Debian library offers them.
 *
 * top-p is exact but avoids sorting the whole vocabulary: every token of the nucleus has
 * probability >= (1 - top_p) / n (the tokens below that bound sum to less than 1 - top_p, so the
 * ones above it already reach top_p), so only those are sorted. */
#include "serendip/lm_infer.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

lm_sampler lm_sampler_greedy(void) {
    lm_sampler s = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
    return s;
}

/* splitmix64 finaliser: decorrelates nearby stream keys. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void lm_sampler_stream(sd_rng *rng, uint64_t seed, const int32_t *prompt, int prompt_len, int sample) {
    uint64_t h = sd_hash64(prompt, (size_t)prompt_len * sizeof(int32_t), SD_HASH_SEED ^ mix64(seed));
    sd_rng_seed(rng, mix64(h ^ mix64((uint64_t)sample + 0x9e3779b97f4a7c15ULL)));
}

/* Vectorised like src/lm/infer.c's glue: AVX2 and AVX-512 clones, and glibc's vector expf
 * (libmvec) when the Makefile found it. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SIMD_CLONES
#endif
#if defined(SERENDIP_MVEC) && defined(__GNUC__) && !defined(__clang__) && defined(_OPENMP)
#pragma omp declare simd notinbranch
float expf(float);
#endif

SIMD_CLONES double lm_logsumexp(const float *logits, int V, float *mx) {
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int i = 0; i < V; i++) m = logits[i] > m ? logits[i] : m;
    double s = 0; /* expf terms (the cost), double sum (the accuracy) */
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < V; i++) s += (double)expf(logits[i] - m);
    *mx = m;
    return log(s);
}

float lm_logprob_of(const float *logits, int V, int32_t token) {
    float mx;
    double lse = lm_logsumexp(logits, V, &mx);
    return (float)((double)(logits[token] - mx) - lse);
}

/* Sorts candidate positions by probability, descending (ties: lower position first, so the order
 * and therefore the draw are deterministic). */
typedef struct {
    float p;
    int i;
} prob_idx;
static int cmp_prob_desc(const void *a, const void *b) {
    const prob_idx *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->i - y->i;
}

/* 1 when a ranks before b in cmp_prob_desc's order. */
static inline int ranks_before(const prob_idx *a, const prob_idx *b) {
    return a->p > b->p || (a->p == b->p && a->i < b->i);
}

/* Moves the k best of pi[0..m) (k < m) into pi[0..k), unsorted: a min-heap of the best k seen,
 * O(m log k) instead of sorting all m. */
static void select_top_k(prob_idx *pi, int m, int k) {
    /* heap order: parent ranks after (is worse than) its children; the root is the worst kept */
    for (int start = k / 2 - 1; start >= 0; start--) {
        int i = start;
        for (;;) {
            int w = i, l = 2 * i + 1, r = l + 1;
            if (l < k && ranks_before(&pi[w], &pi[l])) w = l;
            if (r < k && ranks_before(&pi[w], &pi[r])) w = r;
            if (w == i) break;
            prob_idx t = pi[i];
            pi[i] = pi[w];
            pi[w] = t;
            i = w;
        }
    }
    for (int j = k; j < m; j++) {
        if (!ranks_before(&pi[j], &pi[0])) continue;
        pi[0] = pi[j];
        int i = 0;
        for (;;) {
            int w = i, l = 2 * i + 1, r = l + 1;
            if (l < k && ranks_before(&pi[w], &pi[l])) w = l;
            if (r < k && ranks_before(&pi[w], &pi[r])) w = r;
            if (w == i) break;
            prob_idx t = pi[i];
            pi[i] = pi[w];
            pi[w] = t;
            i = w;
        }
    }
}

/* The distribution lm_sample draws from, prepared once for any number of draws. */
typedef struct {
    int kind;              /* 0: a fixed token; 1: categorical over p[0..n); 2: over pi[0..keep), u scaled by tot */
    int32_t tok;           /* kind 0 */
    const int32_t *cand;   /* candidate ids (NULL: position = token id) */
    const float *p;        /* kind 1: (n) probabilities */
    int n;
    const prob_idx *pi;    /* kind 2: (keep) survivors, most likely first */
    int keep;
    double tot;
} sample_dist;

/* Builds the distribution of lm_sample's rules into d; d points into scratch (3n floats). */
static void sample_prepare(const lm_sampler *s, const float *logits, int V, const int32_t *cand, int n_cand,
                           float *scratch, sample_dist *d) {
    int n = cand ? n_cand : V;
    memset(d, 0, sizeof *d);
    d->cand = cand;
#define TOK(j) (cand ? cand[j] : (int32_t)(j))
    if (n <= 1) {
        d->tok = TOK(0);
        return;
    }
    /* greedy: the first maximum */
    if (!(s->temperature > 0)) {
        int best = 0;
        for (int j = 1; j < n; j++)
            if (logits[TOK(j)] > logits[TOK(best)]) best = j;
        d->tok = TOK(best);
        return;
    }
    int use_k = s->top_k > 0 && s->top_k < n;
    float inv_t = 1.0f / s->temperature;
    if (use_k) {
        /* top-k by logit (the order of probabilities at any temperature), then the softmax over
         * the k survivors only: no exp over the whole vocabulary */
        prob_idx *pi = (prob_idx *)scratch, mxk = {-INFINITY, 0};
        for (int j = 0; j < n; j++) {
            pi[j].p = logits[TOK(j)];
            pi[j].i = j;
        }
        int k = s->top_k;
        select_top_k(pi, n, k);
        for (int j = 0; j < k; j++)
            if (pi[j].p > mxk.p) mxk = pi[j];
        double sum = 0;
        for (int j = 0; j < k; j++) sum += (pi[j].p = expf((pi[j].p - mxk.p) * inv_t));
        for (int j = 0; j < k; j++) pi[j].p = (float)(pi[j].p / sum);
        qsort(pi, (size_t)k, sizeof *pi, cmp_prob_desc);
        int keep = k;
        if (s->top_p > 0 && s->top_p < 1) {
            double c = 0;
            for (keep = 0; keep < k;) {
                c += pi[keep++].p;
                if (c >= s->top_p) break;
            }
        }
        double tot = 0;
        for (int j = 0; j < keep; j++) tot += pi[j].p;
        d->kind = 2, d->pi = pi, d->keep = keep, d->tot = tot;
        return;
    }
    float *p = scratch; /* (n) probabilities at the temperature */
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        p[j] = logits[TOK(j)] * inv_t;
        if (p[j] > mx) mx = p[j];
    }
    double sum = 0;
    for (int j = 0; j < n; j++) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    for (int j = 0; j < n; j++) p[j] = (float)(p[j] / sum);

    if (!(s->top_p > 0 && s->top_p < 1)) { /* plain categorical draw */
        d->kind = 1, d->p = p, d->n = n;
        return;
    }
    /* top-p: sort the survivors of the safe prefilter (see the header comment) by probability */
    prob_idx *pi = (prob_idx *)(scratch + n); /* (n) pairs = 2n floats after p */
    float thr = (1.0f - s->top_p) / (float)n;
    int m = 0;
    for (int j = 0; j < n; j++)
        if (p[j] >= thr) {
            pi[m].p = p[j];
            pi[m].i = j;
            m++;
        }
    qsort(pi, (size_t)m, sizeof *pi, cmp_prob_desc);
    int keep = 0;
    double tot = 0, c = 0;
    while (keep < m) {
        c += pi[keep++].p;
        if (c >= s->top_p) break;
    }
    for (int j = 0; j < keep; j++) tot += pi[j].p;
    d->kind = 2, d->pi = pi, d->keep = keep, d->tot = tot;
}

/* One draw from d (one uniform from rng unless d is a fixed token). */
static int32_t sample_draw(const sample_dist *d, sd_rng *rng) {
    const int32_t *cand = d->cand;
    if (d->kind == 0) return d->tok;
    if (d->kind == 1) {
        double u = sd_rng_uniform(rng), c = 0;
        for (int j = 0; j < d->n; j++) {
            c += d->p[j];
            if (u < c) return TOK(j);
        }
        for (int j = d->n - 1; j >= 0; j--)
            if (d->p[j] > 0) return TOK(j);
        return TOK(d->n - 1);
    }
    double u = sd_rng_uniform(rng) * d->tot, c = 0;
    for (int j = 0; j < d->keep; j++) {
        c += d->pi[j].p;
        if (u < c) return TOK(d->pi[j].i);
    }
    return TOK(d->pi[d->keep - 1].i);
#undef TOK
}

int32_t lm_sample(const lm_sampler *s, const float *logits, int V, const int32_t *cand, int n_cand,
                  sd_rng *rng, float *scratch) {
    sample_dist d;
    sample_prepare(s, logits, V, cand, n_cand, scratch, &d);
    return sample_draw(&d, rng);
}

void lm_sample_many(const lm_sampler *s, const float *logits, int V, const int32_t *cand, int n_cand,
                    sd_rng *const *rngs, int n, int32_t *out, float *scratch) {
    sample_dist d;
    sample_prepare(s, logits, V, cand, n_cand, scratch, &d);
    for (int i = 0; i < n; i++) out[i] = sample_draw(&d, rngs[i]);
}
