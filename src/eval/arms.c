/* arms.c - the arm kinds, and the arms that are not explore tables: random and most popular,
 * the transition and back-off transition counts, the empirical feedback-rate table (collective
 * feedback without any language model), and on the synthetic world the two upper bounds (the
 * user's own oracle and the per-context oracle). Each is an ev_serve_fn that ranks the clusters
 * not in the context; ev_run applies the same per-user novelty filter to every arm.
 * Exact definitions: docs/evaluation.md. */
#include "serendip/eval.h"
#include "serendip/select.h"
#include "serendip/table.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[EV_N_KINDS] = {
    "random", "popular", "transition", "backoff", "feedback", "feedback_shrunk", "oracle", "context_oracle",
    "llm",    "single",  "llm_feedback", "rl",    "llm_pairwise",
};

const char *ev_kind_name(int kind) { return kind >= 0 && kind < EV_N_KINDS ? kind_names[kind] : "unknown"; }

int ev_kind_is_llm(int kind) { return kind >= EV_KIND_LLM && kind < EV_N_KINDS; }

int ev_kind_of_table(int32_t tbl_kind) {
    switch (tbl_kind) {
    case TBL_KIND_LLM: return EV_KIND_LLM;
    case TBL_KIND_SINGLE: return EV_KIND_SINGLE;
    case TBL_KIND_LLM_FEEDBACK: return EV_KIND_LLM_FEEDBACK;
    case TBL_KIND_RL: return EV_KIND_RL;
    case TBL_KIND_LLM_PAIRWISE: return EV_KIND_LLM_PAIRWISE;
    default: return -1;
    }
}

const char *ev_baseline_name(int kind) {
    switch (kind) {
    case EV_KIND_RANDOM: return "random";
    case EV_KIND_POPULAR: return "most popular";
    case EV_KIND_TRANSITION: return "transition counts";
    case EV_KIND_BACKOFF: return "backoff transition";
    case EV_KIND_FEEDBACK: return "feedback rate";
    case EV_KIND_FEEDBACK_SHRUNK: return "feedback shrunk";
    case EV_KIND_ORACLE: return "oracle (user)";
    case EV_KIND_CONTEXT_ORACLE: return "oracle (context)";
    default: return "unknown";
    }
}

void ev_arm_name(int kind, int n, char *name, size_t cap) {
    switch (kind) {
    case EV_KIND_LLM:
        if (n == 1) snprintf(name, cap, "best-of-1 (novelty alone)");
        else snprintf(name, cap, "best-of-%d", n);
        break;
    case EV_KIND_SINGLE:
        if (n <= 1) snprintf(name, cap, "single model");
        else snprintf(name, cap, "single model (best-of-%d)", n);
        break;
    case EV_KIND_LLM_FEEDBACK: snprintf(name, cap, "best-of-%d + feedback", n); break;
    case EV_KIND_RL: snprintf(name, cap, "RL (best-of-%d)", n); break;
    case EV_KIND_LLM_PAIRWISE: snprintf(name, cap, "best-of-%d pairwise", n); break;
    default: snprintf(name, cap, "%s", ev_baseline_name(kind)); break;
    }
}

/* ================================================================ ranking */

/* qsort_r order of candidates: tier ascending, score descending, then popularity rank. */
static int cmp_ranked(const void *x, const void *y, void *state) {
    const ev_baseline *b = state;
    int32_t p = *(const int32_t *)x, q = *(const int32_t *)y;
    if (b->tier[p] != b->tier[q]) return b->tier[p] - b->tier[q];
    if (b->score[p] != b->score[q]) return b->score[p] > b->score[q] ? -1 : 1;
    return b->pop_rank[p] - b->pop_rank[q];
}

/* Writes to out[0..max) the clusters not in ctx ranked by (tier, -score, popularity rank), from
 * b->tier and b->score (set by the caller for every cluster); returns how many. */
static int rank_out(ev_baseline *b, const int32_t *ctx, int k, int32_t *out, int max) {
    int n = 0;
    for (int32_t c = 0; c < b->d->M; c++)
        if (!jr_ctx_has(ctx, k, c)) b->cand[n++] = c;
    qsort_r(b->cand, (size_t)n, sizeof(int32_t), cmp_ranked, b);
    if (n > max) n = max;
    memcpy(out, b->cand, sizeof(int32_t) * (size_t)n);
    return n;
}

/* Sets tier t and score count for every cluster c with count(prefix, c) > 0 in map that is still
 * in a later tier. */
static void tier_counts(ev_baseline *b, const ev_tuple_map *map, const int32_t *prefix, int plen, int8_t t) {
    int32_t key[EV_MAX_K + 1];
    memcpy(key, prefix, sizeof(int32_t) * (size_t)plen);
    for (int32_t c = 0; c < b->d->M; c++) {
        if (b->tier[c] <= t) continue;
        key[plen] = c;
        int64_t n, unused;
        ev_tuple_get(map, key, plen + 1, &n, &unused);
        if (n > 0) b->tier[c] = t, b->score[c] = (double)n;
    }
}

/* ================================================================ init */

/* Context oracle: groups of evaluated users by context, and each group's mean like-probability. */
static void context_oracle_init(ev_baseline *b) {
    const ev_data *d = b->d;
    const int32_t M = d->M, K = d->K;
    ev_tuple_map *ids = NULL;
    int32_t n_groups = 0;
    b->group = sd_malloc(sizeof(int32_t) * (size_t)(d->n_users + 1));
    for (int32_t i = 0; i < d->n_users; i++) {
        int64_t g, unused;
        ev_tuple_get(ids, d->ctx + (size_t)i * K, K, &g, &unused);
        if (!g) ev_tuple_add(&ids, d->ctx + (size_t)i * K, K, g = ++n_groups, 0);
        b->group[i] = (int32_t)(g - 1);
    }
    ev_tuple_map_free(ids);
    double *sum = sd_calloc((size_t)n_groups * M + 1, sizeof(double));
    int32_t *cnt = sd_calloc((size_t)n_groups * M + 1, sizeof(int32_t));
    for (int32_t i = 0; i < d->n_users; i++)
        for (int32_t c = 0; c < M; c++) {
            float p = d->like[(size_t)i * M + c];
            if (isfinite(p)) sum[(size_t)b->group[i] * M + c] += p, cnt[(size_t)b->group[i] * M + c]++;
        }
    b->group_like = sd_malloc(sizeof(float) * ((size_t)n_groups * M + 1));
    for (size_t x = 0; x < (size_t)n_groups * M; x++) b->group_like[x] = cnt[x] ? (float)(sum[x] / cnt[x]) : NAN;
    free(sum);
    free(cnt);
}

/* Feedback back-off level: (last context cluster, candidate) -> users, exposures, positives summed
 * over the train feedback tuples. Users are summed over contexts: a user exposed under two contexts
 * with the same last cluster counts twice (journeys.bin keeps only per-tuple distinct users). */
static void feedback_init(ev_baseline *b) {
    const int32_t M = b->d->M, K = b->d->K;
    b->fb1 = sd_calloc((size_t)M * M * 3 + 1, sizeof(int64_t));
    for (int64_t i = 0; i < b->jr->n_feedback; i++) {
        const jr_feedback *f = &b->jr->feedback[i];
        int64_t *x = b->fb1 + ((size_t)f->ctx[K - 1] * M + f->cand) * 3;
        x[0] += f->users, x[1] += f->exposures, x[2] += f->positives;
    }
}

int ev_baseline_init(ev_baseline *b, int kind, const ev_data *d, uint64_t seed, const jr_journeys *jr, int min_users,
                     sd_err *err) {
    memset(b, 0, sizeof *b);
    if (kind < 0 || kind > EV_KIND_CONTEXT_ORACLE)
        return sd_fail(err, SD_ERR_USAGE, "arm kind '%s' is not a baseline", ev_kind_name(kind));
    if ((kind == EV_KIND_ORACLE || kind == EV_KIND_CONTEXT_ORACLE) && !d->like)
        return sd_fail(err, SD_ERR_USAGE, "the %s arm needs the world's truth (world_truth.bin)", ev_kind_name(kind));
    if (kind == EV_KIND_FEEDBACK || kind == EV_KIND_FEEDBACK_SHRUNK) {
        if (!jr) return sd_fail(err, SD_ERR_USAGE, "the feedback arm needs journeys.bin (run 'serendip journeys')");
        if (jr->k != d->K || jr->n_clusters != d->M)
            return sd_fail(err, SD_ERR_DATA,
                           "journeys.bin: K = %d, M = %d, but the evaluation uses K = %d, M = %d (rerun 'serendip journeys')",
                           jr->k, jr->n_clusters, d->K, d->M);
        if (min_users < 1) return sd_fail(err, SD_ERR_USAGE, "--min-users must be at least 1 (got %d)", min_users);
    }
    const int32_t M = d->M;
    b->kind = kind;
    b->d = d;
    b->seed = seed;
    b->jr = jr;
    b->min_users = min_users;
    b->pop_rank = sd_malloc(sizeof(int32_t) * (size_t)(M + 1));
    for (int32_t r = 0; r < M; r++) b->pop_rank[d->by_pop[r]] = r;
    b->cand = sd_malloc(sizeof(int32_t) * (size_t)(M + 1));
    b->tier = sd_malloc((size_t)M + 1);
    b->score = sd_malloc(sizeof(double) * (size_t)(M + 1));
    if (kind == EV_KIND_CONTEXT_ORACLE) context_oracle_init(b);
    b->shrink = 10;
    if (kind == EV_KIND_FEEDBACK || kind == EV_KIND_FEEDBACK_SHRUNK) feedback_init(b);
    if (kind == EV_KIND_FEEDBACK_SHRUNK) {
        int64_t e = 0, p = 0;
        for (int64_t i = 0; i < jr->n_feedback; i++) e += jr->feedback[i].exposures, p += jr->feedback[i].positives;
        b->mu = e ? (double)p / (double)e : 0.5;
    }
    return SD_OK;
}

void ev_baseline_free(ev_baseline *b) {
    free(b->pop_rank);
    free(b->fb1);
    free(b->group);
    free(b->group_like);
    free(b->cand);
    free(b->tier);
    free(b->score);
    memset(b, 0, sizeof *b);
}

/* ================================================================ serving */

int ev_baseline_serve(void *state, int32_t user, const int32_t *ctx, int k, int32_t *out, int max) {
    ev_baseline *b = state;
    const ev_data *d = b->d;
    const int32_t M = d->M;
    if (b->kind == EV_KIND_RANDOM) { /* a shuffle seeded by (seed, context): a function of the context */
        sd_rng r;
        sd_rng_seed(&r, sd_hash64(ctx, sizeof(int32_t) * (size_t)k, b->seed ^ SD_HASH_SEED));
        int n = 0;
        for (int32_t c = 0; c < M; c++)
            if (!jr_ctx_has(ctx, k, c)) b->cand[n++] = c;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)sd_rng_below(&r, (uint32_t)(i + 1));
            int32_t t = b->cand[i];
            b->cand[i] = b->cand[j], b->cand[j] = t;
        }
        if (n > max) n = max;
        memcpy(out, b->cand, sizeof(int32_t) * (size_t)n);
        return n;
    }
    for (int32_t c = 0; c < M; c++) b->tier[c] = 2, b->score[c] = 0;
    switch (b->kind) {
    case EV_KIND_POPULAR: break;
    case EV_KIND_TRANSITION:
        if (k == d->K) tier_counts(b, d->trans, ctx, k, 0);
        break;
    case EV_KIND_BACKOFF:
        if (k == d->K) tier_counts(b, d->trans, ctx, k, 0);
        if (k >= 1) tier_counts(b, d->trans1, ctx + k - 1, 1, 1);
        break;
    case EV_KIND_FEEDBACK:
        for (int32_t c = 0; c < M && k == d->K; c++) {
            if (jr_ctx_has(ctx, k, c)) continue;
            const jr_feedback *f = jr_feedback_find(b->jr, ctx, c);
            const int64_t *x = b->fb1 + ((size_t)ctx[k - 1] * M + c) * 3;
            if (f && f->users >= b->min_users && f->exposures > 0)
                b->tier[c] = 0, b->score[c] = (double)f->positives / (double)f->exposures;
            else if (x[0] >= b->min_users && x[1] > 0)
                b->tier[c] = 1, b->score[c] = (double)x[2] / (double)x[1];
        }
        break;
    case EV_KIND_FEEDBACK_SHRUNK:
        for (int32_t c = 0; c < M && k == d->K; c++) {
            if (jr_ctx_has(ctx, k, c)) continue;
            const jr_feedback *f = jr_feedback_find(b->jr, ctx, c);
            const int64_t *x = b->fb1 + ((size_t)ctx[k - 1] * M + c) * 3;
            int64_t fe = f ? f->exposures : 0, fp = f ? f->positives : 0;
            double prior = sl_shrink(b->mu, x[2] - fp, x[1] - fe, b->shrink);
            b->tier[c] = 0, b->score[c] = sl_shrink(prior, fp, fe, b->shrink);
        }
        break;
    case EV_KIND_ORACLE:
    case EV_KIND_CONTEXT_ORACLE: {
        if (user < 0 || user >= d->n_users) return -1;
        const float *p = b->kind == EV_KIND_ORACLE ? d->like + (size_t)user * M : b->group_like + (size_t)b->group[user] * M;
        for (int32_t c = 0; c < M; c++)
            if (isfinite(p[c])) b->tier[c] = 0, b->score[c] = p[c];
        break;
    }
    default: return -1;
    }
    return rank_out(b, ctx, k, out, max);
}
