/* test_lm_infer.c - the batched KV-cache inference against the plain reference forward; sampling
 * rules and determinism; the token trie; constrained decoding and exact trie log-probabilities.
 *
 * Tolerance for fast vs reference: |a - b| <= 1e-4 * (1 + |b|). The reference accumulates in
 * double, the fast path in float32 through sgemm: each dot product of length <= 64 carries a
 * relative rounding error of ~sqrt(64) * 6e-8 = 5e-7, compounded over 2 layers and a softmax, so
 * 1e-4 leaves a margin of ~100x while a wrong position, head, cache slot or RoPE angle moves the
 * log-probabilities by 1e-2 or more with these weights (std 0.3, see test_model). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/lm.h"
#include "serendip/lm_infer.h"

#define TOL 1e-4

/* A small model with weights large enough that positions and heads matter: dim 8 per head,
 * n_heads heads sharing n_kv_heads key/value heads. */
static void test_model_heads(lm_model *m, int tied, int n_heads, int n_kv_heads) {
    lm_config c = {.dim = 8 * n_heads, .n_layers = 2, .n_heads = n_heads, .n_kv_heads = n_kv_heads, .hidden_dim = 48,
                   .vocab_size = 40, .seq_len = 64, .tied = tied, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    sd_err err = {0};
    assert_int_equal(lm_model_init(m, &c, 7, &err), SD_OK);
    sd_rng r;
    sd_rng_seed(&r, 99);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = (float)(sd_rng_normal(&r) * 0.3);
    for (int i = 0; i < c.n_layers * c.dim; i++) {
        m->w.attn_norm[i] = 1.0f + 0.1f * (float)sd_rng_normal(&r);
        m->w.ffn_norm[i] = 1.0f + 0.1f * (float)sd_rng_normal(&r);
    }
}

/* The GQA model most tests use: 4 heads of 8 over 2 key/value heads. */
static void test_model(lm_model *m, int tied) { test_model_heads(m, tied, 4, 2); }

static int close_to(double a, double b) { return fabs(a - b) <= TOL * (1 + fabs(b)); }

/* Reference log-probability of cont after prompt (sum of log-softmax), through lm_forward_reference. */
static double ref_score(const lm_model *m, const int32_t *prompt, int pl, const int32_t *cont, int cl) {
    int V = m->cfg.vocab_size, n = pl + cl;
    int32_t *seq = malloc(sizeof(int32_t) * n);
    memcpy(seq, prompt, sizeof(int32_t) * pl);
    memcpy(seq + pl, cont, sizeof(int32_t) * cl);
    float *lg = malloc(sizeof(float) * (size_t)n * V);
    lm_forward_reference(m, seq, n, lg);
    double s = 0;
    for (int j = 0; j < cl; j++) s += lm_logprob_of(lg + (size_t)(pl - 1 + j) * V, V, cont[j]);
    free(seq);
    free(lg);
    return s;
}

/* Random prompts of lengths 1..maxlen. */
static void make_prompts(int n, int maxlen, int V, uint64_t seed, int32_t **p, int *len) {
    sd_rng r;
    sd_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        len[i] = 1 + (int)sd_rng_below(&r, (uint32_t)maxlen);
        p[i] = malloc(sizeof(int32_t) * len[i]);
        for (int j = 0; j < len[i]; j++) p[i][j] = (int32_t)sd_rng_below(&r, (uint32_t)V);
    }
}

static void free_prompts(int n, int32_t **p) {
    for (int i = 0; i < n; i++) free(p[i]);
}

/* ---------------------------------------------------------------- forward, scoring */

static void test_next_logprobs_match_reference(void **state) {
    (void)state;
    /* tied and untied heads; then attention groups of 1, 4 and 3 query heads per key/value head
     * (attend_row takes a group's heads two at a time, an odd one alone) */
    const int heads[5][3] = {{0, 4, 2}, {1, 4, 2}, {0, 4, 4}, {0, 4, 1}, {1, 3, 1}};
    for (int cfg = 0; cfg < 5; cfg++) {
        int tied = heads[cfg][0];
        lm_model m;
        test_model_heads(&m, tied, heads[cfg][1], heads[cfg][2]);
        int V = m.cfg.vocab_size, n = 7;
        int32_t *p[7];
        int len[7];
        make_prompts(n, 12, V, 3 + cfg, p, len);
        /* max_rows 5 forces prompts to be split across prefill batches; 64 packs them all */
        int rows_opts[2] = {5, 64};
        for (int o = 0; o < 2; o++) {
            sd_err err = {0};
            lm_infer *inf = lm_infer_new(&m, rows_opts[o], 32, &err);
            assert_non_null(inf);
            float *out = malloc(sizeof(float) * n * V);
            assert_int_equal(lm_next_logprobs(inf, (const int32_t *const *)p, len, n, out, &err), SD_OK);
            for (int i = 0; i < n; i++) {
                float *lg = malloc(sizeof(float) * len[i] * V);
                lm_forward_reference(&m, p[i], len[i], lg);
                double sum = 0;
                for (int t = 0; t < V; t++) {
                    double ref = lm_logprob_of(lg + (size_t)(len[i] - 1) * V, V, t);
                    if (!close_to(out[i * V + t], ref))
                        fail_msg("prompt %d token %d: fast %.7f ref %.7f (rows %d)", i, t, out[i * V + t], ref,
                                 rows_opts[o]);
                    sum += exp(out[i * V + t]);
                }
                assert_true(fabs(sum - 1) < 1e-4);
                free(lg);
            }
            free(out);
            lm_infer_free(inf);
        }
        free_prompts(n, p);
        lm_model_free(&m);
    }
}

/* lm_next_logprobs_after == the reference forward over prompt + continuation, for continuations
 * of several prompts (including empty ones), with row limits that split prompts, continuations
 * and slot use across several forwards. */
static void test_next_logprobs_after_match_reference(void **state) {
    (void)state;
    lm_model m;
    test_model(&m, 0);
    int V = m.cfg.vocab_size, np = 3, n = 8;
    int32_t *p[3], *c[8];
    int len[3], cl[8], cp[8] = {0, 0, 0, 1, 1, 2, 2, 2};
    make_prompts(np, 7, V, 5, p, len);
    make_prompts(n, 5, V, 6, c, cl);
    cl[4] = 0; /* an empty continuation: the prompt's own next token */
    int rows_opts[] = {3, 5, 64};
    for (int o = 0; o < 3; o++) {
        sd_err err = {0};
        lm_infer *inf = lm_infer_new(&m, rows_opts[o], 32, &err);
        assert_non_null(inf);
        float *out = malloc(sizeof(float) * n * V);
        assert_int_equal(lm_next_logprobs_after(inf, (const int32_t *const *)p, len, np, (const int32_t *const *)c, cl, cp, n,
                                                out, &err),
                         SD_OK);
        for (int i = 0; i < n; i++) {
            int total = len[cp[i]] + cl[i];
            int32_t *seq = malloc(sizeof(int32_t) * total);
            memcpy(seq, p[cp[i]], sizeof(int32_t) * len[cp[i]]);
            memcpy(seq + len[cp[i]], c[i], sizeof(int32_t) * cl[i]);
            float *lg = malloc(sizeof(float) * total * V);
            lm_forward_reference(&m, seq, total, lg);
            for (int t = 0; t < V; t++) {
                double ref = lm_logprob_of(lg + (size_t)(total - 1) * V, V, t);
                if (!close_to(out[i * V + t], ref))
                    fail_msg("continuation %d token %d: fast %.7f ref %.7f (rows %d)", i, t, out[i * V + t], ref, rows_opts[o]);
            }
            free(lg);
            free(seq);
        }
        /* continuations must come grouped by prompt */
        int bad[2] = {1, 0};
        assert_int_equal(lm_next_logprobs_after(inf, (const int32_t *const *)p, len, np, (const int32_t *const *)c, cl, bad, 2,
                                                out, &err),
                         SD_ERR_USAGE);
        free(out);
        lm_infer_free(inf);
    }
    free_prompts(np, p);
    free_prompts(n, c);
    lm_model_free(&m);
}

static void test_score_continuations_match_reference(void **state) {
    (void)state;
    lm_model m;
    test_model(&m, 1);
    int V = m.cfg.vocab_size, n = 9;
    int32_t prompt[5] = {1, 5, 9, 2, 33};
    int32_t *conts[9];
    int cl[9];
    make_prompts(n, 7, V, 11, conts, cl);
    cl[3] = 0; /* an empty continuation scores 0 */
    /* max_rows 3: continuations span batches and the gen slots are reused */
    int rows_opts[2] = {3, 128};
    for (int o = 0; o < 2; o++) {
        sd_err err = {0};
        lm_infer *inf = lm_infer_new(&m, rows_opts[o], 16, &err);
        float out[9];
        assert_int_equal(lm_score_continuations(inf, prompt, 5, (const int32_t *const *)conts, cl, n, out, &err), SD_OK);
        for (int i = 0; i < n; i++) {
            double ref = cl[i] ? ref_score(&m, prompt, 5, conts[i], cl[i]) : 0;
            if (!close_to(out[i], ref)) fail_msg("continuation %d: fast %.7f ref %.7f", i, out[i], ref);
        }
        lm_infer_free(inf);
    }
    free_prompts(n, conts);
    lm_model_free(&m);
}

static void test_prompt_too_long_is_refused(void **state) {
    (void)state;
    lm_model m;
    test_model(&m, 1);
    sd_err err = {0};
    lm_infer *inf = lm_infer_new(&m, 8, 8, &err);
    int32_t p[6] = {1, 2, 3, 4, 5, 6};
    const int32_t *pp[1] = {p};
    int len = 6;
    lm_gen_out out;
    lm_sampler s = lm_sampler_greedy();
    assert_int_equal(lm_generate(inf, pp, &len, 1, 2, &s, 4, -1, &out, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "max_seq"));
    p[2] = 40; /* == vocab */
    float lp[40];
    len = 3;
    assert_int_equal(lm_next_logprobs(inf, pp, &len, 1, lp, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "vocabulary"));
    assert_null(lm_infer_new(&m, 0, 8, &err));
    lm_infer_free(inf);
    lm_model_free(&m);
}

/* ---------------------------------------------------------------- generation */

static void test_greedy_generation_matches_reference(void **state) {
    (void)state;
    lm_model m;
    test_model(&m, 0);
    int V = m.cfg.vocab_size, n = 4, ns = 3, max_new = 10;
    int32_t *p[4];
    int len[4];
    make_prompts(n, 8, V, 21, p, len);
    sd_err err = {0};
    lm_infer *inf = lm_infer_new(&m, 7, 24, &err); /* 7 rows: 2 prompts x 3 samples per chunk */
    lm_sampler s = lm_sampler_greedy();
    lm_gen_out out;
    int32_t stop = 0;
    assert_int_equal(lm_generate(inf, (const int32_t *const *)p, len, n, ns, &s, max_new, stop, &out, &err), SD_OK);
    assert_int_equal(out.n, n * ns);
    for (int i = 0; i < n; i++) {
        /* reference greedy decoding, recomputing the whole sequence each step */
        int32_t seq[32];
        memcpy(seq, p[i], sizeof(int32_t) * len[i]);
        int sl = len[i], gl = 0, stopped = 0;
        double lp = 0;
        float *lg = malloc(sizeof(float) * 32 * V);
        while (gl < max_new) {
            lm_forward_reference(&m, seq, sl, lg);
            const float *last = lg + (size_t)(sl - 1) * V;
            int best = 0;
            for (int t = 1; t < V; t++)
                if (last[t] > last[best]) best = t;
            lp += lm_logprob_of(last, V, best);
            if (best == stop) {
                stopped = 1;
                break;
            }
            seq[sl++] = best;
            gl++;
        }
        free(lg);
        for (int s2 = 0; s2 < ns; s2++) {
            int o = i * ns + s2;
            assert_int_equal(out.len[o], gl);
            assert_int_equal(out.stopped[o], stopped);
            assert_memory_equal(out.tokens + (size_t)o * max_new, seq + len[i], sizeof(int32_t) * gl);
            if (!close_to(out.logprob[o], lp)) fail_msg("prompt %d: logprob fast %.7f ref %.7f", i, out.logprob[o], lp);
        }
    }
    lm_gen_out_free(&out);
    lm_infer_free(inf);
    free_prompts(n, p);
    lm_model_free(&m);
}

/* A sample's tokens depend on (seed, prompt, sample index) only, not on the batch around it. */
static void test_sampling_independent_of_batch(void **state) {
    (void)state;
    lm_model m;
    test_model(&m, 1);
    int V = m.cfg.vocab_size, n = 5, ns = 4, max_new = 8;
    int32_t *p[5];
    int len[5];
    make_prompts(n, 6, V, 5, p, len);
    lm_sampler s = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 1234};
    sd_err err = {0};
    lm_infer *big = lm_infer_new(&m, 64, 16, &err), *small = lm_infer_new(&m, 3, 16, &err);
    lm_gen_out all, one, other;
    assert_int_equal(lm_generate(big, (const int32_t *const *)p, len, n, ns, &s, max_new, -1, &all, &err), SD_OK);
    /* prompt 3 alone, in a context of 3 rows (samples split over two chunks) */
    assert_int_equal(lm_generate(small, (const int32_t *const *)p + 3, len + 3, 1, ns, &s, max_new, -1, &one, &err),
                     SD_OK);
    for (int k = 0; k < ns; k++) {
        assert_int_equal(one.len[k], all.len[3 * ns + k]);
        assert_memory_equal(one.tokens + (size_t)k * max_new, all.tokens + (size_t)(3 * ns + k) * max_new,
                            sizeof(int32_t) * one.len[k]);
        assert_true(close_to(one.logprob[k], all.logprob[3 * ns + k]));
    }
    /* samples of one prompt differ from each other, and another seed changes them */
    int differ = 0;
    for (int k = 1; k < ns; k++)
        differ += memcmp(all.tokens, all.tokens + (size_t)k * max_new, sizeof(int32_t) * max_new) != 0;
    assert_true(differ > 0);
    s.seed = 1235;
    assert_int_equal(lm_generate(big, (const int32_t *const *)p, len, n, ns, &s, max_new, -1, &other, &err), SD_OK);
    assert_true(memcmp(other.tokens, all.tokens, sizeof(int32_t) * n * ns * max_new) != 0);
    /* every sampled sequence's logprob is the reference score of its tokens */
    for (int o = 0; o < n * ns; o += 5) {
        double ref = ref_score(&m, p[o / ns], len[o / ns], all.tokens + (size_t)o * max_new, all.len[o]);
        if (!close_to(all.logprob[o], ref)) fail_msg("sequence %d: logprob %.7f ref %.7f", o, all.logprob[o], ref);
    }
    lm_gen_out_free(&all);
    lm_gen_out_free(&one);
    lm_gen_out_free(&other);
    lm_infer_free(big);
    lm_infer_free(small);
    free_prompts(n, p);
    lm_model_free(&m);
}

/* ---------------------------------------------------------------- the sampler */

/* Empirical frequencies of lm_sample against the target distribution: each count within 5 sigma
 * of a binomial(N, p) (false-failure chance ~1e-6 per check). */
static void check_freq(const int *cnt, const double *want, int V, int N) {
    for (int t = 0; t < V; t++) {
        double mu = N * want[t], sd = sqrt(N * want[t] * (1 - want[t]));
        if (fabs(cnt[t] - mu) > 5 * sd + 1e-9) fail_msg("token %d: %d draws, expected %.1f +- %.1f", t, cnt[t], mu, 5 * sd);
    }
}

static void test_sampler_rules(void **state) {
    (void)state;
    enum { V = 6, N = 40000 };
    float logits[V] = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.5f};
    float scratch[3 * V];
    sd_rng r;
    sd_rng_seed(&r, 5);
    lm_sampler g = lm_sampler_greedy();
    assert_int_equal(lm_sample(&g, logits, V, NULL, 0, &r, scratch), 3);
    int32_t cand[3] = {0, 2, 4};
    assert_int_equal(lm_sample(&g, logits, V, cand, 3, &r, scratch), 0);

    double p[V], z = 0;
    /* temperature 0.5 over all tokens: softmax(2 * logits) */
    for (int t = 0; t < V; t++) z += (p[t] = exp(2.0 * logits[t]));
    for (int t = 0; t < V; t++) p[t] /= z;
    lm_sampler s = {.temperature = 0.5f, .top_k = 0, .top_p = 1.0f};
    int cnt[V] = {0};
    for (int i = 0; i < N; i++) cnt[lm_sample(&s, logits, V, NULL, 0, &r, scratch)]++;
    check_freq(cnt, p, V, N);

    /* top-k 2 at temperature 1: tokens 3 and 5 only, in ratio e^3 : e^2.5 */
    s.temperature = 1.0f;
    s.top_k = 2;
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < N; i++) cnt[lm_sample(&s, logits, V, NULL, 0, &r, scratch)]++;
    double pk[V] = {0};
    pk[3] = exp(3.0) / (exp(3.0) + exp(2.5));
    pk[5] = 1 - pk[3];
    check_freq(cnt, pk, V, N);
    assert_int_equal(cnt[0] + cnt[1] + cnt[2] + cnt[4], 0);

    /* top-p 0.7: softmax = (.065 .177 .039 .482 .011 .292 ...), sorted 3, 5 (cum .77 >= .7) -> {3, 5} */
    s.top_k = 0;
    s.top_p = 0.7f;
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < N; i++) cnt[lm_sample(&s, logits, V, NULL, 0, &r, scratch)]++;
    check_freq(cnt, pk, V, N);
    /* top-k 3 then top-p 0.8: over {3, 5, 1} the probabilities are (.506 .307 .186), cumulative
     * .813 >= .8 after two -> {3, 5} again */
    s.top_k = 3;
    s.top_p = 0.8f;
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < N; i++) cnt[lm_sample(&s, logits, V, NULL, 0, &r, scratch)]++;
    check_freq(cnt, pk, V, N);
    s.top_k = 0;
    /* top-p 0.3 keeps only the top token */
    s.top_p = 0.3f;
    for (int i = 0; i < 100; i++) assert_int_equal(lm_sample(&s, logits, V, NULL, 0, &r, scratch), 3);

    /* restricted to candidates: renormalised over {0, 2, 4} */
    s.top_p = 1.0f;
    memset(cnt, 0, sizeof cnt);
    double pc[V] = {0};
    double zc = exp(1.0) + exp(0.5) + exp(-1.0);
    pc[0] = exp(1.0) / zc;
    pc[2] = exp(0.5) / zc;
    pc[4] = exp(-1.0) / zc;
    for (int i = 0; i < N; i++) cnt[lm_sample(&s, logits, V, cand, 3, &r, scratch)]++;
    check_freq(cnt, pc, V, N);

    /* log-prob at temperature 1 */
    double lz = log(exp(1.0) + exp(2.0) + exp(0.5) + exp(3.0) + exp(-1.0) + exp(2.5));
    assert_true(fabs(lm_logprob_of(logits, V, 4) - (-1.0 - lz)) < 1e-6);
}

/* ---------------------------------------------------------------- trie and constrained decoding */

static void test_trie_structure(void **state) {
    (void)state;
    int32_t a[] = {3, 4, 5}, b[] = {3, 4}, c[] = {7}, d[] = {3, 6};
    const int32_t *seqs[] = {a, b, c, d};
    int lens[] = {3, 2, 1, 2};
    sd_err err = {0};
    lm_trie *t = lm_trie_new(seqs, lens, 4, 0, 10, &err);
    assert_non_null(t);
    assert_int_equal(lm_trie_count(t), 4);
    assert_int_equal(lm_trie_max_depth(t), 4);
    /* root, 3, 7, 3-4, 3-6, 7-end, 3-4-5, 3-4-end, 3-6-end, 3-4-5-end */
    assert_int_equal(lm_trie_n_nodes(t), 10);
    int32_t q1[] = {3, 4, 0}, q2[] = {3, 4, 5, 0}, q3[] = {3, 4}, q4[] = {7, 0}, q5[] = {3, 5, 0};
    assert_int_equal(lm_trie_match(t, q1, 3), 1);
    assert_int_equal(lm_trie_match(t, q2, 4), 0);
    assert_int_equal(lm_trie_match(t, q3, 2), -1);
    assert_int_equal(lm_trie_match(t, q4, 2), 2);
    assert_int_equal(lm_trie_match(t, q5, 3), -1);
    for (int nd = 1; nd < lm_trie_n_nodes(t); nd++)
        assert_true(lm_trie_depth(t, nd) >= lm_trie_depth(t, nd - 1)); /* breadth-first */
    const int32_t *ct;
    const int *ch;
    assert_int_equal(lm_trie_children(t, 0, &ct, &ch), 2);
    assert_int_equal(ct[0], 3);
    assert_int_equal(ct[1], 7);
    lm_trie_free(t);

    const int32_t *dup[] = {a, c, a};
    int dl[] = {3, 1, 3};
    assert_null(lm_trie_new(dup, dl, 3, 0, 10, &err));
    assert_int_equal(err.code, SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "0 and 2"));
    int32_t e[] = {3, 0};
    const int32_t *bad[] = {e};
    int el[] = {2};
    assert_null(lm_trie_new(bad, el, 1, 0, 10, &err));
    assert_non_null(strstr(err.msg, "end token"));
}

/* A set of allowed strings over the test vocabulary (end token 0), with shared prefixes. */
static lm_trie *test_trie(int32_t seqs_out[][5], int *lens) {
    int32_t S[8][5] = {{5, 6, 7}, {5, 6}, {5, 8, 9, 10}, {11}, {12, 13}, {12, 14}, {5, 6, 7, 15}, {20, 21, 22, 23, 24}};
    int L[8] = {3, 2, 4, 1, 2, 2, 4, 5};
    const int32_t *ptr[8];
    for (int i = 0; i < 8; i++) {
        memcpy(seqs_out[i], S[i], sizeof S[i]);
        lens[i] = L[i];
        ptr[i] = seqs_out[i];
    }
    sd_err err = {0};
    lm_trie *t = lm_trie_new(ptr, lens, 8, 0, 40, &err);
    assert_non_null(t);
    return t;
}

static void test_trie_logprobs_match_reference(void **state) {
    (void)state;
    lm_model m;
    test_model(&m, 1);
    int32_t S[8][5];
    int L[8];
    lm_trie *t = test_trie(S, L);
    int n = 3;
    int32_t *p[3];
    int len[3];
    make_prompts(n, 6, m.cfg.vocab_size, 8, p, len);
    int rows_opts[2] = {4, 256}; /* 4 rows: levels split over several batches */
    for (int o = 0; o < 2; o++) {
        sd_err err = {0};
        lm_infer *inf = lm_infer_new(&m, rows_opts[o], 16, &err);
        float out[3 * 8];
        assert_int_equal(lm_trie_logprobs(inf, (const int32_t *const *)p, len, n, t, out, &err), SD_OK);
        for (int i = 0; i < n; i++) {
            double tot = 0;
            for (int k = 0; k < 8; k++) {
                int32_t cont[6];
                memcpy(cont, S[k], sizeof(int32_t) * L[k]);
                cont[L[k]] = 0;
                double ref = ref_score(&m, p[i], len[i], cont, L[k] + 1);
                if (!close_to(out[i * 8 + k], ref))
                    fail_msg("prompt %d string %d: %.7f ref %.7f (rows %d)", i, k, out[i * 8 + k], ref, rows_opts[o]);
                tot += exp(out[i * 8 + k]);
            }
            assert_true(tot < 1.0);
        }
        lm_infer_free(inf);
    }
    free_prompts(n, p);
    lm_trie_free(t);
    lm_model_free(&m);
}

static void test_constrained_generation(void **state) {
    (void)state;
    lm_model m;
    test_model(&m, 1);
    int32_t S[8][5];
    int L[8];
    lm_trie *t = test_trie(S, L);
    int32_t prompt[4] = {30, 31, 2, 9};
    const int32_t *pp[1] = {prompt};
    int plen = 4;
    sd_err err = {0};
    lm_infer *inf = lm_infer_new(&m, 256, 16, &err);
    float exact[8];
    assert_int_equal(lm_trie_logprobs(inf, pp, &plen, 1, t, exact, &err), SD_OK);
    /* renormalised probability of each string: product over steps of softmax over the children */
    enum { NS = 4000 };
    int *choice = malloc(sizeof(int) * NS);
    float *lp = malloc(sizeof(float) * NS), *lpr = malloc(sizeof(float) * NS);
    lm_sampler s = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 77};
    assert_int_equal(lm_generate_constrained(inf, pp, &plen, 1, NS, &s, t, choice, lp, lpr, &err), SD_OK);
    int cnt[8] = {0};
    double renorm[8];
    for (int k = 0; k < 8; k++) renorm[k] = NAN;
    for (int i = 0; i < NS; i++) {
        assert_in_range(choice[i], 0, 7);
        cnt[choice[i]]++;
        /* the unconstrained log-prob of the chosen string is its exact trie log-prob */
        if (!close_to(lp[i], exact[choice[i]])) fail_msg("sample %d: %.7f exact %.7f", i, lp[i], exact[choice[i]]);
        assert_true(lpr[i] >= lp[i] - 1e-5); /* renormalising can only raise it */
        renorm[choice[i]] = lpr[i];
    }
    /* sampling frequencies follow the renormalised probabilities (5 sigma of a binomial) */
    double tot = 0;
    for (int k = 0; k < 8; k++)
        if (cnt[k]) {
            double pk = exp(renorm[k]), mu = NS * pk, sd = sqrt(NS * pk * (1 - pk));
            tot += pk;
            if (fabs(cnt[k] - mu) > 5 * sd + 1) fail_msg("string %d: %d draws, expected %.1f", k, cnt[k], mu);
        }
    assert_true(tot <= 1.0 + 1e-4 && tot > 0.99); /* strings never drawn have probability < ~1e-3 */
    /* greedy constrained decoding: every sample is the same valid string */
    lm_sampler g = lm_sampler_greedy();
    assert_int_equal(lm_generate_constrained(inf, pp, &plen, 1, 3, &g, t, choice, lp, NULL, &err), SD_OK);
    assert_int_equal(choice[0], choice[1]);
    assert_int_equal(choice[0], choice[2]);
    assert_true(close_to(lp[0], exact[choice[0]]));
    free(choice);
    free(lp);
    free(lpr);
    lm_infer_free(inf);
    lm_trie_free(t);
    lm_model_free(&m);
}

/* ---------------------------------------------------------------- less work (issue 12) */

/* Prompts that share leading tokens (as the plan's contexts with the same first cluster): the
 * prefill copies the leader's keys/values, and every prompt's next-token distribution is still
 * the reference's; fewer rows are forwarded than the prompts have tokens. */
static void test_prefill_shares_common_prefixes(void **state) {
    (void)state;
    lm_model m;
    test_model(&m, 0);
    int V = m.cfg.vocab_size, n = 6;
    int32_t P[6][9] = {{1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 5, 9, 9}, {1, 2, 3, 4, 5, 6, 7, 8, 10},
                       {1, 2, 3}, {1, 7}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    int len[6] = {9, 7, 9, 3, 2, 9}, tokens = 0;
    const int32_t *pp[6];
    for (int i = 0; i < n; i++) pp[i] = P[i], tokens += len[i];
    int rows_opts[2] = {4, 64}; /* 4 splits leaders and followers over several forwards */
    for (int o = 0; o < 2; o++) {
        sd_err err = {0};
        lm_infer *inf = lm_infer_new(&m, rows_opts[o], 32, &err);
        float *out = malloc(sizeof(float) * n * V), *lg = malloc(sizeof(float) * 9 * V);
        assert_int_equal(lm_next_logprobs(inf, pp, len, n, out, &err), SD_OK);
        lm_infer_stats st;
        lm_infer_get_stats(inf, &st);
        /* leaders 0, 4 (shares 1 token only) and 5 (shares 1 with the last leader, 4); 1 shares 5
         * tokens with 0, 2 shares 8 (all but its last), 3 shares 2 */
        assert_int_equal(st.rows, tokens - (5 + 8 + 2));
        assert_int_equal(st.logit_rows, n);
        for (int i = 0; i < n; i++) {
            lm_forward_reference(&m, P[i], len[i], lg);
            for (int t = 0; t < V; t++) {
                double ref = lm_logprob_of(lg + (size_t)(len[i] - 1) * V, V, t);
                if (!close_to(out[i * V + t], ref)) fail_msg("prompt %d token %d: fast %.7f ref %.7f", i, t, out[i * V + t], ref);
            }
        }
        free(out);
        free(lg);
        lm_infer_free(inf);
    }
    lm_model_free(&m);
}

/* The FLOP count of one prompt of 3 tokens, by hand for test_model (D 32, 2 layers, 4 heads of 8,
 * KvD 16, H 48, V 40): tokens 0, 1 and 2 attend to 1, 2 and 3 positions; only token 2 wants logits,
 * so in the last layer tokens 0 and 1 compute their key and value and nothing else. */
static void test_flop_count(void **state) {
    (void)state;
    lm_model m;
    test_model(&m, 0);
    sd_err err = {0};
    lm_infer *inf = lm_infer_new(&m, 8, 32, &err);
    int32_t p[3] = {5, 6, 7};
    const int32_t *pp[1] = {p};
    int len[1] = {3};
    float out[40];
    assert_int_equal(lm_next_logprobs(inf, pp, len, 1, out, &err), SD_OK);
    lm_infer_stats st;
    lm_infer_get_stats(inf, &st);
    double kv = 2.0 * 32 * (16 + 16), rest = 2.0 * 32 * (32 + 32) + 2.0 * 3 * 32 * 48, att = 4.0 * 4 * 8;
    double layer0 = 3 * (kv + rest) + att * (1 + 2 + 3), layer1 = 3 * kv + 1 * rest + att * 3, head = 2.0 * 32 * 40;
    assert_true(fabs(st.flops - (layer0 + layer1 + head)) < 0.5);
    assert_int_equal(st.rows, 3);
    assert_int_equal(st.logit_rows, 1);
    lm_infer_free(inf);
    lm_model_free(&m);
}

/* Continuations of a prompt sharing prefixes, equal ones and one that is a prefix of another:
 * each result is the reference's, shared tokens are forwarded once, and lm_next_logits_after
 * gives the raw logits (log-probabilities up to one constant per row). */
static void test_next_after_shares_prefixes(void **state) {
    (void)state;
    lm_model m;
    test_model(&m, 1);
    int V = m.cfg.vocab_size;
    int32_t p0[] = {3, 4, 5, 6}, p1[] = {7, 8};
    const int32_t *pp[2] = {p0, p1};
    int plen[2] = {4, 2};
    int32_t C[7][4] = {{9, 10, 11, 12}, {9, 10, 13}, {9, 10, 11, 12}, {9, 10}, {14}, {9, 10, 11, 15}, {9, 10, 13}};
    int cl[7] = {4, 3, 4, 2, 1, 4, 3}, cp[7] = {0, 0, 0, 0, 0, 1, 1};
    const int32_t *cc[7];
    for (int i = 0; i < 7; i++) cc[i] = C[i];
    int rows_opts[3] = {2, 3, 64}; /* 2 and 3: blocks of continuations and levels split over forwards */
    for (int o = 0; o < 3; o++) {
        sd_err err = {0};
        lm_infer *inf = lm_infer_new(&m, rows_opts[o], 32, &err);
        float *out = malloc(sizeof(float) * 7 * V), *lg = malloc(sizeof(float) * 7 * V), *ref = malloc(sizeof(float) * 8 * V);
        assert_int_equal(lm_next_logprobs_after(inf, pp, plen, 2, cc, cl, cp, 7, out, &err), SD_OK);
        lm_infer_stats st;
        lm_infer_get_stats(inf, &st);
        if (rows_opts[o] == 64) /* prompts 6; prompt 0: 9 10 11 12 | 13 | (dup) | 10 (its last) | 14; prompt 1: 4 | 13 */
            assert_int_equal(st.rows, 6 + 4 + 1 + 0 + 1 + 1 + 4 + 1);
        int32_t pick[3] = {0, 17, 39};
        assert_int_equal(lm_next_logits_after(inf, pp, plen, 2, cc, cl, cp, 7, pick, 3, lg, &err), SD_OK);
        for (int i = 0; i < 7; i++) {
            int32_t seq[8];
            int tl = plen[cp[i]] + cl[i];
            memcpy(seq, pp[cp[i]], sizeof(int32_t) * plen[cp[i]]);
            memcpy(seq + plen[cp[i]], C[i], sizeof(int32_t) * cl[i]);
            lm_forward_reference(&m, seq, tl, ref);
            const float *r = ref + (size_t)(tl - 1) * V;
            for (int t = 0; t < V; t++)
                if (!close_to(out[i * V + t], lm_logprob_of(r, V, t)))
                    fail_msg("continuation %d token %d: fast %.7f ref %.7f (rows %d)", i, t, out[i * V + t], lm_logprob_of(r, V, t),
                             rows_opts[o]);
            for (int j = 0; j < 3; j++)
                if (!close_to(lg[i * 3 + j], r[pick[j]])) fail_msg("continuation %d logit %d: %.7f ref %.7f", i, j, lg[i * 3 + j], r[pick[j]]);
        }
        free(out);
        free(lg);
        free(ref);
        lm_infer_free(inf);
    }
    lm_model_free(&m);
}

/* lm_sample_many == lm_sample called once per stream, for every sampler rule. */
static void test_sample_many_equals_sample(void **state) {
    (void)state;
    int V = 40;
    float logits[40], scratch[120];
    sd_rng r;
    sd_rng_seed(&r, 5);
    for (int i = 0; i < V; i++) logits[i] = (float)sd_rng_normal(&r) * 2;
    int32_t cand[6] = {1, 4, 9, 16, 25, 36};
    lm_sampler rules[4] = {{1.0f, 0, 1.0f, 0}, {0.8f, 5, 1.0f, 0}, {1.2f, 0, 0.9f, 0}, {0.0f, 0, 1.0f, 0}};
    for (int k = 0; k < 4; k++)
        for (int c = 0; c < 2; c++) {
            sd_rng a[16], b[16];
            sd_rng *pb[16];
            int32_t many[16];
            for (int i = 0; i < 16; i++) sd_rng_seed(&a[i], 100 + i), sd_rng_seed(&b[i], 100 + i), pb[i] = &b[i];
            lm_sample_many(&rules[k], logits, V, c ? cand : NULL, 6, pb, 16, many, scratch);
            for (int i = 0; i < 16; i++) {
                assert_int_equal(many[i], lm_sample(&rules[k], logits, V, c ? cand : NULL, 6, &a[i], scratch));
                assert_true(sd_rng_uniform(&a[i]) == sd_rng_uniform(&b[i])); /* same use of the stream */
            }
        }
}

/* lm_generate_shared == lm_generate (same tokens, stops and log-probabilities) with fewer rows
 * forwarded when samples coincide (a peaked sampler, 24 samples per prompt). Tokens are compared
 * exactly: the two differ only in float rounding of the batch, far below these draws' margins. */
static void test_shared_generation_matches_plain(void **state) {
    (void)state;
    lm_model m;
    test_model(&m, 1);
    int n = 5, ns = 24, max_new = 6;
    int32_t *p[5];
    int len[5];
    make_prompts(n, 8, m.cfg.vocab_size, 21, p, len);
    lm_sampler s = {.temperature = 0.2f, .top_k = 0, .top_p = 0.9f, .seed = 3};
    sd_err err = {0};
    lm_infer *a = lm_infer_new(&m, 64, 32, &err), *b = lm_infer_new(&m, 64, 32, &err);
    lm_gen_out x, y;
    assert_int_equal(lm_generate(a, (const int32_t *const *)p, len, n, ns, &s, max_new, 7, &x, &err), SD_OK);
    assert_int_equal(lm_generate_shared(b, (const int32_t *const *)p, len, n, ns, &s, max_new, 7, &y, &err), SD_OK);
    int stopped = 0;
    for (int i = 0; i < n * ns; i++) {
        assert_int_equal(x.len[i], y.len[i]);
        assert_int_equal(x.stopped[i], y.stopped[i]);
        stopped += y.stopped[i];
        assert_memory_equal(x.tokens + (size_t)i * max_new, y.tokens + (size_t)i * max_new, sizeof(int32_t) * x.len[i]);
        if (!close_to(x.logprob[i], y.logprob[i])) fail_msg("sequence %d: %.7f vs %.7f", i, x.logprob[i], y.logprob[i]);
    }
    assert_true(stopped > 0 && stopped < n * ns); /* both ends of a sequence are exercised */
    lm_infer_stats sa, sb;
    lm_infer_get_stats(a, &sa);
    lm_infer_get_stats(b, &sb);
    /* peaked: samples coincide often (measured: 401 rows against 617) */
    if (!(sb.rows * 4 < sa.rows * 3)) fail_msg("shared %lld rows, plain %lld", (long long)sb.rows, (long long)sa.rows);
    lm_gen_out_free(&x);
    lm_gen_out_free(&y);
    lm_infer_free(a);
    lm_infer_free(b);
    free_prompts(n, p);
    lm_model_free(&m);
}

/* lm_trie_only against a brute-force count of the strings below each node; and constrained
 * decoding without the unconstrained log-probability (trie-determined completion) draws the
 * same strings with the same renormalised log-probabilities, with fewer rows forwarded. */
static void test_constrained_determined_completion(void **state) {
    (void)state;
    int32_t S[8][5];
    int L[8];
    lm_trie *t = test_trie(S, L);
    for (int nd = 0; nd < lm_trie_n_nodes(t); nd++) {
        int32_t path[8];
        int d = lm_trie_depth(t, nd), below = 0, last = -1;
        for (int x = nd, k = d - 1; k >= 0; x = lm_trie_parent(t, x), k--) path[k] = lm_trie_token(t, x);
        for (int i = 0; i < 8; i++) { /* string i is below nd when path is a prefix of S[i] + end */
            int ok = d <= L[i] + 1;
            for (int k = 0; k < d && ok; k++) ok = path[k] == (k < L[i] ? S[i][k] : 0);
            if (ok) below++, last = i;
        }
        assert_int_equal(lm_trie_only(t, nd), below == 1 ? last : -1);
    }
    lm_model m;
    test_model(&m, 1);
    int32_t p0[] = {30, 31, 2, 9}, p1[] = {30, 31, 2, 4, 4};
    const int32_t *pp[2] = {p0, p1};
    int plen[2] = {4, 5};
    enum { NS = 200 };
    int *c1 = malloc(sizeof(int) * 2 * NS), *c2 = malloc(sizeof(int) * 2 * NS);
    float *lp = malloc(sizeof(float) * 2 * NS), *r1 = malloc(sizeof(float) * 2 * NS), *r2 = malloc(sizeof(float) * 2 * NS);
    lm_sampler s = {.temperature = 1.0f, .top_k = 0, .top_p = 0.95f, .seed = 11};
    sd_err err = {0};
    lm_infer *a = lm_infer_new(&m, 512, 16, &err), *b = lm_infer_new(&m, 512, 16, &err);
    assert_int_equal(lm_generate_constrained(a, pp, plen, 2, NS, &s, t, c1, lp, r1, &err), SD_OK);
    assert_int_equal(lm_generate_constrained(b, pp, plen, 2, NS, &s, t, c2, NULL, r2, &err), SD_OK);
    int long_ones = 0;
    for (int i = 0; i < 2 * NS; i++) {
        assert_int_equal(c1[i], c2[i]);
        if (!close_to(r1[i], r2[i])) fail_msg("sample %d: renormalised %.7f vs %.7f", i, r1[i], r2[i]);
        long_ones += L[c1[i]] >= 4;
    }
    assert_true(long_ones > 0); /* strings with forced tails were drawn */
    lm_infer_stats sa, sb;
    lm_infer_get_stats(a, &sa);
    lm_infer_get_stats(b, &sb);
    assert_true(sb.rows < sa.rows);
    free(c1), free(c2), free(lp), free(r1), free(r2);
    lm_infer_free(a);
    lm_infer_free(b);
    lm_model_free(&m);
    lm_trie_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_logprobs_match_reference),
        cmocka_unit_test(test_score_continuations_match_reference),
        cmocka_unit_test(test_next_logprobs_after_match_reference),
        cmocka_unit_test(test_prompt_too_long_is_refused),
        cmocka_unit_test(test_greedy_generation_matches_reference),
        cmocka_unit_test(test_sampling_independent_of_batch),
        cmocka_unit_test(test_sampler_rules),
        cmocka_unit_test(test_trie_structure),
        cmocka_unit_test(test_trie_logprobs_match_reference),
        cmocka_unit_test(test_constrained_generation),
        cmocka_unit_test(test_prefill_shares_common_prefixes),
        cmocka_unit_test(test_flop_count),
        cmocka_unit_test(test_next_after_shares_prefixes),
        cmocka_unit_test(test_sample_many_equals_sample),
        cmocka_unit_test(test_shared_generation_matches_plain),
        cmocka_unit_test(test_constrained_determined_completion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
