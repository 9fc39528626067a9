/* plan.c - best-of-n over every context into explore tables (see plan.h for the method). */
#include "serendip/plan.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/corpus.h"
#include "serendip/gguf.h"
#include "serendip/journeys.h"
#include "serendip/lm_infer.h"
#include "serendip/manifest.h"
#include "serendip/models.h"
#include "serendip/mpi.h"
#include "serendip/select.h"
#include "serendip/sft.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"
#include "serendip/tokenizer.h"

#include "serendip/rl.h" /* --generator rl / rl_guarded: the RL-tuned models' file names */

#define PROMPT_CAP 4096

void pl_opts_default(pl_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_sweep[0] = 16;
    o->n_count = 1;
    o->temperature = 1.0f;
    o->top_p = 0.95f; /* nucleus sampling: cuts the tail where malformed descriptions live (docs/formats-taxonomy.md) */
    o->top = 32; /* deep enough that the per-user novelty filter rarely runs out (docs/evaluation.md) */
    o->seed = 1;
    o->generator = "novelty";
    o->selector = "pointwise";
    o->n_shards = 1;
    o->chunk = 64;
    o->feedback_m = 0;
}

const char *pl_prefix(const pl_opts *o) {
    if (o->selector && !strcmp(o->selector, "pairwise")) return "explore_pairwise";
    if (!strcmp(o->generator, "single") || !strcmp(o->generator, "rl") || !strcmp(o->generator, "rl_guarded"))
        return o->generator;
    return "explore";
}

/* The generator's model file under ws/models. */
static const char *generator_file(const char *g) {
    return !strcmp(g, "single") ? MD_SINGLE : !strcmp(g, "rl") ? RL_MODEL_RAW : !strcmp(g, "rl_guarded") ? RL_MODEL_GUARDED : MD_NOVELTY;
}

int pl_parse_sweep(const char *s, pl_opts *o, sd_err *err) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1024 || (*end && *end != ','))
            return sd_fail(err, SD_ERR_USAGE, "--n-sweep '%s': expected comma-separated integers in 1..1024", s);
        if (n == PL_MAX_SWEEP) return sd_fail(err, SD_ERR_USAGE, "--n-sweep '%s': at most %d values", s, PL_MAX_SWEEP);
        if (n && v <= o->n_sweep[n - 1]) return sd_fail(err, SD_ERR_USAGE, "--n-sweep '%s': values must increase", s);
        o->n_sweep[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!n) return sd_fail(err, SD_ERR_USAGE, "--n-sweep is empty");
    o->n_count = n;
    return SD_OK;
}

/* ---------------------------------------------------------------- description lookup */

typedef struct {
    const char *s;
    int32_t c;
} desc_key;

static int desc_cmp(const void *a, const void *b) { return strcmp(((const desc_key *)a)->s, ((const desc_key *)b)->s); }

/* Index of the first feedback tuple of context index ci in j->feedback (sorted by context index,
 * then candidate); *n receives the number of tuples of that context. */
static int64_t feedback_range(const jr_journeys *j, int64_t ci, int64_t *n) {
    int64_t lo = 0, hi = j->n_feedback;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (jr_context_index(j->feedback[mid].ctx, j->k, j->n_clusters) < ci) lo = mid + 1;
        else hi = mid;
    }
    int64_t e = lo;
    while (e < j->n_feedback && jr_context_index(j->feedback[e].ctx, j->k, j->n_clusters) == ci) e++;
    *n = e - lo;
    return lo;
}

static int write_plan_json(const char *path, const pl_opts *o, const pl_report *rep, sd_err *err) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "generator", o->generator);
    cJSON_AddBoolToObject(j, "aligned", !o->no_align);
    cJSON_AddNumberToObject(j, "temperature", o->temperature);
    cJSON_AddNumberToObject(j, "top_p", o->top_p);
    cJSON_AddBoolToObject(j, "constrained", o->constrained);
    cJSON_AddNumberToObject(j, "top", o->top);
    cJSON_AddNumberToObject(j, "feedback_shrink", o->feedback_m);
    cJSON_AddNumberToObject(j, "threads", sd_num_threads());
    cJSON_AddNumberToObject(j, "ranks", sd_mpi_size()); /* plan --mpi: processes, each with `threads` */
    cJSON_AddNumberToObject(j, "sample_seconds", rep->sample_s);
    cJSON_AddNumberToObject(j, "score_seconds", rep->score_s);
    cJSON_AddNumberToObject(j, "total_seconds", rep->total_s);
    cJSON_AddNumberToObject(j, "contexts_per_second", rep->contexts_per_s);
    cJSON_AddNumberToObject(j, "pairs_scored", (double)rep->scored);
    cJSON_AddNumberToObject(j, "forward_gflop", rep->flops / 1e9); /* lm_infer_stats: counted, not estimated */
    cJSON_AddNumberToObject(j, "achieved_gflops", rep->total_s > 0 ? rep->flops / 1e9 / rep->total_s : 0);
    cJSON_AddNumberToObject(j, "generator_rows", (double)rep->gen_rows);
    cJSON_AddNumberToObject(j, "alignment_rows", (double)rep->align_rows);
    cJSON *runs = cJSON_AddArrayToObject(j, "runs");
    for (int i = 0; i < rep->count; i++) {
        const pl_result *r = &rep->r[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "n", r->n);
        cJSON_AddStringToObject(x, "kind", tbl_kind_name(r->kind));
        cJSON_AddNumberToObject(x, "contexts", (double)r->contexts);
        cJSON_AddNumberToObject(x, "samples", (double)r->samples);
        cJSON_AddNumberToObject(x, "format_compliance", r->compliance);
        cJSON_AddNumberToObject(x, "novel_candidates_per_context", r->contexts ? (double)r->novel_unique / (double)r->contexts : 0);
        cJSON_AddNumberToObject(x, "fallback_share", r->fallback_share);
        cJSON_AddStringToObject(x, "fallback", "most popular cluster not in the context");
        cJSON_AddStringToObject(x, "table", r->path);
        cJSON_AddItemToArray(runs, x);
    }
    char *s = cJSON_Print(j);
    int rc = sd_write_file_atomic(path, s, strlen(s), err);
    free(s);
    cJSON_Delete(j);
    return rc;
}

/* Records (manifest.h) a table written at path when it lies inside ws; *rc set on failure. */
static void record_table(const char *ws, const char *path, const pl_opts *o, int *rc, sd_err *err) {
    size_t n = strlen(ws);
    if (*rc || strncmp(path, ws, n) || path[n] != '/') return; /* --out elsewhere: not the workspace's */
    int pairwise = !strcmp(pl_prefix(o), "explore_pairwise");
    char gen[256];
    snprintf(gen, sizeof gen, "%s/%s", MD_DIR, generator_file(o->generator));
    const char *in[4] = {TX_FILE, JR_FILE, pairwise ? MD_DIR "/" MD_ALIGN_PAIRWISE : MD_DIR "/" MD_ALIGN, gen};
    *rc = mf_record(ws, path + n + 1, "plan", in, 4, err);
}

/* Loads a model from ws/models/name, with a hint when it is missing. */
static int load_model(const char *ws, const char *name, lm_model *m, lm_tokenizer **tok, uint64_t *hash, sd_err *err) {
    char *dir = sd_path_join(ws, MD_DIR), *path = sd_path_join(dir, name);
    int rc;
    if (!sd_file_exists(path))
        rc = sd_fail(err, SD_ERR_STATE, "%s: no such model (run 'serendip %s' first)", path,
                     !strcmp(name, MD_SINGLE) ? "train --baseline" : !strcmp(name, MD_ALIGN_PAIRWISE) ? "train --pairwise"
                     : !strcmp(name, RL_MODEL_RAW) ? "rl" : !strcmp(name, RL_MODEL_GUARDED) ? "rl --reward guarded" : "train");
    else if (!(rc = lm_gguf_load(path, m, tok, err))) rc = sd_hash_file(path, hash, err);
    free(dir);
    free(path);
    return rc;
}

/* --selector pairwise: for each context x of a chunk, pm[x] (n_max, n_max) gets the pairwise
 * model's P(i beats j | i shown first) for every ordered pair of its distinct candidates
 * cands[x*per_ctx + i]; the prompt of (i, j) is the context's prefix + desc(i) <|sep|> desc(j)
 * <|score|> (pcont: each cluster's description tokens). Pairs are scored in batches of 1024. */
static int pair_matrices(lm_infer *ainf, const lm_tokenizer *atok, int32_t *const *aprefix, const int *aplen, int nc,
                         const sl_cand *cands, const int *n_cands, int per_ctx, int32_t *const *pcont, const int *pcont_len,
                         int32_t sep, int32_t score, int n_max, float *pm, int64_t *n_scored, sd_err *err) {
    enum { BATCH = 1024 };
    int32_t **conts = sd_calloc(BATCH, sizeof *conts);
    int *clen = sd_calloc(BATCH, sizeof *clen), *cp = sd_calloc(BATCH, sizeof *cp);
    size_t *slot = sd_malloc(BATCH * sizeof *slot);
    float *out = sd_malloc(BATCH * sizeof *out);
    int nb = 0, rc = SD_OK;
    for (int x = 0; x <= nc && !rc; x++) {
        int m = x < nc ? n_cands[x] : 0;
        for (int i = 0; i < m && !rc; i++)
            for (int j = 0; j < m && !rc; j++) {
                if (i == j) continue;
                int32_t a = cands[(size_t)x * per_ctx + i].cluster, b = cands[(size_t)x * per_ctx + j].cluster;
                int len = pcont_len[a] + pcont_len[b] + 2;
                conts[nb] = sd_realloc(conts[nb], (size_t)len * sizeof **conts);
                memcpy(conts[nb], pcont[a], (size_t)pcont_len[a] * sizeof **conts);
                conts[nb][pcont_len[a]] = sep;
                memcpy(conts[nb] + pcont_len[a] + 1, pcont[b], (size_t)pcont_len[b] * sizeof **conts);
                conts[nb][len - 1] = score;
                clen[nb] = len;
                cp[nb] = x;
                slot[nb++] = ((size_t)x * n_max + i) * n_max + j;
                if (nb == BATCH) { /* flush: every prompt is passed, the batch reads the ones it names */
                    rc = md_pair_probs_ids(ainf, atok, (const int32_t *const *)aprefix, aplen, nc, (const int32_t *const *)conts,
                                           clen, cp, nb, out, err);
                    for (int q = 0; q < nb && !rc; q++) pm[slot[q]] = out[q];
                    *n_scored += nb;
                    nb = 0;
                }
            }
        if (x == nc && nb > 0 && !rc) {
            rc = md_pair_probs_ids(ainf, atok, (const int32_t *const *)aprefix, aplen, nc, (const int32_t *const *)conts, clen,
                                   cp, nb, out, err);
            for (int q = 0; q < nb && !rc; q++) pm[slot[q]] = out[q];
            *n_scored += nb;
        }
    }
    for (int q = 0; q < BATCH; q++) free(conts[q]);
    free(conts), free(clen), free(cp), free(slot), free(out);
    return rc;
}

/* The tournament among the candidates of the first n samples of a context: they are the first m
 * entries of its candidate list cs (built in sample order), so their matrix is the top-left m x m
 * block of pm (stride n_max). Writes (cluster, Copeland + Borda score) to out[0..m); returns m. */
static int pair_scored(const sl_sample *s, int n, const sl_cand *cs, int n_cs, const float *pm, int n_max, float *sub,
                       float *score, sl_cand *out) {
    int m = 0;
    for (int d = 0; d < n_cs; d++) {
        int in = 0;
        for (int q = 0; q < n && !in; q++) in = s[q].cluster == cs[d].cluster;
        if (!in) break; /* later candidates first appeared after sample n */
        m++;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) sub[i * m + j] = i == j ? 0.5f : pm[(size_t)i * n_max + j];
    sl_pairwise_scores(sub, m, score);
    for (int i = 0; i < m; i++) out[i] = (sl_cand){cs[i].cluster, score[i], NAN};
    return m;
}

int pl_plan(const char *ws, const pl_opts *o, pl_report *rep, sd_err *err) {
    memset(rep, 0, sizeof *rep);
    double t_start = sd_now();
    if (o->n_count < 1) return sd_fail(err, SD_ERR_USAGE, "plan: no n given");
    if (o->top < 1 || o->top > TBL_TOP_MAX) return sd_fail(err, SD_ERR_USAGE, "plan: --top %d must be in 1..%d", o->top, TBL_TOP_MAX);
    if (o->n_shards < 1 || o->shard < 0 || o->shard >= o->n_shards)
        return sd_fail(err, SD_ERR_USAGE, "plan: shard %d of %d is not a valid slice", o->shard + 1, o->n_shards);
    if (o->n_shards > 1 && o->n_count > 1) return sd_fail(err, SD_ERR_USAGE, "plan: --shard and --n-sweep cannot be combined");
    if (o->mpi && o->n_shards > 1) return sd_fail(err, SD_ERR_USAGE, "plan: --mpi splits the work itself; drop --shard");
    int single_gen = !strcmp(o->generator, "single");
    if (!single_gen && strcmp(o->generator, "novelty") && strcmp(o->generator, "rl") && strcmp(o->generator, "rl_guarded"))
        return sd_fail(err, SD_ERR_USAGE, "plan: --generator '%s' must be novelty, single, rl or rl_guarded", o->generator);
    const int pairwise = o->selector && !strcmp(o->selector, "pairwise");
    if (o->selector && !pairwise && strcmp(o->selector, "pointwise"))
        return sd_fail(err, SD_ERR_USAGE, "plan: --selector '%s' must be pointwise or pairwise", o->selector);
    if (pairwise && (o->no_align || o->feedback_m > 0))
        return sd_fail(err, SD_ERR_USAGE, "plan: --selector pairwise cannot be combined with --no-align or --feedback-shrink");
    const int32_t kind = pairwise ? TBL_KIND_LLM_PAIRWISE : single_gen ? TBL_KIND_SINGLE
                         : strcmp(o->generator, "novelty") ? TBL_KIND_RL : TBL_KIND_LLM;
    const int main_table = !strcmp(pl_prefix(o), "explore"); /* only these write ws/explore.tbl */

    tx_taxonomy tax = {0};
    jr_journeys jr = {0};
    lm_model gen = {0}, al = {0};
    lm_tokenizer *tok = NULL, *atok = NULL;
    lm_infer *ginf = NULL, *ainf = NULL;
    tbl_builder *tb[PL_MAX_SWEEP + 1] = {0}; /* the sweep, then the feedback table */
    uint64_t gen_hash = 0, al_hash = 0;
    char *p_tax = sd_path_join(ws, TX_FILE), *p_jr = sd_path_join(ws, JR_FILE);
    desc_key *keys = NULL;
    int64_t *pop = NULL;
    double *fb_rates = NULL;  /* (n_rates) the alignment labels' sorted basis (--feedback-shrink) */
    lm_trie *trie = NULL;     /* --constrained: the descriptions' token trie */
    int *choice = NULL;       /* --constrained: (chunk * n_max) description sampled */
    float *choice_lp = NULL;  /* --constrained: (chunk * n_max) its log-probability */
    int64_t *fb_last = NULL;  /* (M, M, 2) exposures, positives by (last context cluster, candidate) */
    int32_t **acont = NULL;
    int *acont_len = NULL;
    int32_t **pcont = NULL, psep = -1, pscore = -1; /* --selector pairwise: description tokens, <|sep|>, <|score|> */
    int *pcont_len = NULL;
    float *pm = NULL, *psub = NULL, *pss = NULL;     /* pair matrices (chunk, n_max, n_max), scratch */
    sl_cand *pcs = NULL;
    int rc;
    int mpi_stage = 0; /* --mpi: 1 after the agreement before planning, 2 after the last one */
    if (!sd_file_exists(p_tax)) {
        rc = sd_fail(err, SD_ERR_STATE, "%s: no taxonomy (run 'serendip cluster' first)", p_tax);
        goto done;
    }
    if (!sd_file_exists(p_jr)) {
        rc = sd_fail(err, SD_ERR_STATE, "%s: no journeys (run 'serendip journeys' first)", p_jr);
        goto done;
    }
    const char *const reads[4] = {TX_FILE, JR_FILE, MD_DIR "/" MD_NOVELTY, MD_DIR "/" MD_ALIGN};
    if ((rc = mf_check(ws, reads, 4, err))) goto done; /* inputs built from older ones */
    if ((rc = tx_load(&tax, p_tax, err)) || (rc = jr_load(&jr, p_jr, err))) goto done;
    if ((rc = load_model(ws, generator_file(o->generator), &gen, &tok, &gen_hash, err))) goto done;
    if (!o->no_align && (rc = load_model(ws, pairwise ? MD_ALIGN_PAIRWISE : MD_ALIGN, &al, &atok, &al_hash, err))) goto done;
    if (tok_eos(tok) < 0) {
        rc = sd_fail(err, SD_ERR_DATA, "the generator model's tokenizer has no end-of-sequence token");
        goto done;
    }

    const int K = jr.k, M = tax.n_clusters;
    const int64_t n_ctx = jr_n_contexts(K, M);
    /* Contexts are planned in chunks of `chunk` consecutive indices, and shards cut only at chunk
     * boundaries: every batch the models see is then the same whether the table is planned whole
     * or in shards, which is what makes merged shards byte-identical to an unsharded run (batched
     * float results may differ in the last bit with the batch's composition). */
    const int chunk = o->chunk > 0 ? o->chunk : 64;
    const int64_t n_chunks = (n_ctx + chunk - 1) / chunk;
    int64_t begin = n_chunks * o->shard / o->n_shards * chunk, end = n_chunks * (o->shard + 1) / o->n_shards * chunk;
    if (begin > n_ctx) begin = n_ctx;
    if (end > n_ctx) end = n_ctx;
    if (o->mpi) { /* this rank's run of whole chunks */
        pl_mpi_range(K, M, chunk, &begin, &end);
        sd_log("plan: rank %d of %d plans contexts [%lld, %lld) of %lld", sd_mpi_rank(), sd_mpi_size(), (long long)begin,
               (long long)end, (long long)n_ctx);
    }
    const int n_max = o->n_sweep[o->n_count - 1];

    /* description -> cluster, and the longest description in tokens (bounds max_new) */
    keys = sd_malloc((size_t)M * sizeof *keys);
    int max_desc_tok = 0;
    for (int32_t c = 0; c < M; c++) {
        keys[c] = (desc_key){tax.desc[c], c};
        size_t n = 0;
        int32_t tmp[512];
        tok_encode(tok, tax.desc[c], strlen(tax.desc[c]), tmp, 512, &n, 0);
        if ((int)n > max_desc_tok) max_desc_tok = (int)n;
    }
    qsort(keys, (size_t)M, sizeof *keys, desc_cmp);
    if (o->constrained) { /* the token trie of every description, indexed by cluster (lm_infer.h) */
        int32_t **seqs = sd_calloc((size_t)M, sizeof *seqs);
        int *lens = sd_calloc((size_t)M, sizeof *lens);
        for (int32_t c = 0; c < M; c++) {
            size_t n = 0, cap = strlen(tax.desc[c]) + 8;
            seqs[c] = sd_malloc(cap * sizeof **seqs);
            tok_encode(tok, tax.desc[c], strlen(tax.desc[c]), seqs[c], cap, &n, 0);
            lens[c] = (int)n;
        }
        trie = lm_trie_new((const int32_t *const *)seqs, lens, M, tok_eos(tok), tok_vocab_size(tok), err);
        for (int32_t c = 0; c < M; c++) free(seqs[c]);
        free(seqs), free(lens);
        if (!trie) {
            rc = err ? err->code : SD_ERR_DATA;
            goto done;
        }
    }

    /* the alignment prompt of (context, c) is the novelty prompt of the context followed by
     * desc(c) "<|score|>" (corpus.h): the context is prefilled once, candidates are continuations */
    if (!o->no_align && pairwise) { /* desc(a) <|sep|> desc(b) <|score|> from each description's tokens */
        pcont = sd_calloc((size_t)M, sizeof *pcont);
        pcont_len = sd_calloc((size_t)M, sizeof *pcont_len);
        for (int32_t c = 0; c < M; c++) {
            size_t n = 0, cap = strlen(tax.desc[c]) + 8;
            pcont[c] = sd_malloc(cap * sizeof **pcont);
            tok_encode(atok, tax.desc[c], strlen(tax.desc[c]), pcont[c], cap, &n, 1);
            pcont_len[c] = (int)n;
        }
        size_t n1 = 0, n2 = 0;
        tok_encode(atok, CP_TOK_SEP, strlen(CP_TOK_SEP), &psep, 1, &n1, 1);
        tok_encode(atok, CP_TOK_SCORE, strlen(CP_TOK_SCORE), &pscore, 1, &n2, 1);
        /* the pieces must give the corpus's own prompt (cp_pair_prompt) token for token */
        int32_t c2[JR_K_MAX] = {0};
        for (int i = 0; i < K; i++) c2[i] = (M > 1 && i == 0) ? 1 : 0;
        char *pp = sd_malloc(PROMPT_CAP), *npr = sd_malloc(PROMPT_CAP);
        int nl = cp_novelty_prompt(&tax, c2, K, npr, PROMPT_CAP), pl = cp_pair_prompt(&tax, c2, K, 0, M - 1, pp, PROMPT_CAP);
        int32_t want[512];
        size_t nw = 0;
        int ok = n1 == 1 && n2 == 1 && nl >= 0 && pl > nl && !memcmp(pp, npr, (size_t)nl) &&
                 !tok_encode(atok, pp + nl, (size_t)(pl - nl), want, 512, &nw, 1) &&
                 (int)nw == pcont_len[0] + pcont_len[M - 1] + 2 && !memcmp(want, pcont[0], (size_t)pcont_len[0] * 4) &&
                 want[pcont_len[0]] == psep && !memcmp(want + pcont_len[0] + 1, pcont[M - 1], (size_t)pcont_len[M - 1] * 4) &&
                 want[nw - 1] == pscore;
        free(pp), free(npr);
        if (!ok) {
            rc = sd_fail(err, SD_ERR_STATE, "plan: the pairwise prompt is not the novelty prompt + desc <|sep|> desc <|score|>");
            goto done;
        }
    }
    if (!o->no_align && !pairwise) {
        acont = sd_calloc((size_t)M, sizeof *acont);
        acont_len = sd_calloc((size_t)M, sizeof *acont_len);
        int32_t c2[JR_K_MAX] = {0};
        for (int i = 0; i < K; i++) c2[i] = (M > 1 && i == 0) ? 1 : 0;
        char *ap = sd_malloc(PROMPT_CAP), *npr = sd_malloc(PROMPT_CAP);
        int nl = cp_novelty_prompt(&tax, c2, K, npr, PROMPT_CAP);
        for (int32_t c = 0; c < M; c++) {
            int al = cp_align_prompt(&tax, c2, K, c, ap, PROMPT_CAP);
            if (nl < 0 || al < nl || memcmp(ap, npr, (size_t)nl)) {
                free(ap), free(npr);
                rc = sd_fail(err, SD_ERR_STATE, "plan: the alignment prompt does not extend the novelty prompt");
                goto done;
            }
            size_t n = 0, cap = (size_t)(al - nl) + 8;
            acont[c] = sd_malloc(cap * sizeof **acont);
            tok_encode(atok, ap + nl, (size_t)(al - nl), acont[c], cap, &n, 1);
            acont_len[c] = (int)n;
        }
        free(ap), free(npr);
    }
    const int max_new = max_desc_tok + 4;

    /* fallback: popularity of clusters in the train journeys */
    pop = sd_calloc((size_t)M, sizeof *pop);
    for (int64_t i = 0; i < jr.n_steps; i++) pop[jr.journey[i]]++;

    /* confidence-aware selection (docs/planning.md): the alignment labels' basis (the corpus's
     * cp_labeler rates, corpus.h) maps an alignment score back to a prior rate (sl_prior_rate); every
     * observed tuple of a context joins its candidates, and the prior is shrunk toward the
     * last-cluster level's rate, then the context's own (sl_shrink) */
    const int with_fb = o->feedback_m > 0 && !o->no_align && !single_gen;
    int64_t n_rates = 0;
    if (with_fb) {
        cp_opts co;
        cp_labeler lab;
        if ((rc = cp_opts_load(ws, &co, err))) goto done;
        cp_labeler_init(&lab, &jr, &co);
        n_rates = lab.n_basis;
        fb_rates = lab.basis; /* taken over: freed with fb_rates */
        lab.basis = NULL;
        cp_labeler_free(&lab);
        if (!n_rates) {
            rc = sd_fail(err, SD_ERR_DATA, "plan: --feedback-shrink needs feedback tuples backed by >= %d users; journeys.bin has none",
                         co.train_min_users);
            goto done;
        }
        /* the last-cluster level: exposures and positives of (last context cluster, candidate)
         * pooled over every context, the evidence one level up when a context is rare */
        fb_last = sd_calloc(2 * (size_t)M * (size_t)M, sizeof *fb_last);
        for (int64_t i = 0; i < jr.n_feedback; i++) {
            const jr_feedback *f = &jr.feedback[i];
            int64_t *a = fb_last + 2 * ((size_t)f->ctx[K - 1] * (size_t)M + (size_t)f->cand);
            a[0] += f->exposures;
            a[1] += f->positives;
        }
    }

    /* builders: one per n of the sweep, and the feedback-shrunk table for the largest n */
    const int n_tb = o->n_count + with_fb;
    for (int s = 0; s < n_tb; s++) {
        int fb = s == o->n_count;
        tbl_params p = {.k = K, .n_clusters = M, .n_contexts = n_ctx, .top = o->top,
                        .n_samples = o->n_sweep[fb ? o->n_count - 1 : s], .temperature = o->temperature, .top_p = o->top_p, .seed = o->seed,
                        .tax_hash = tx_hash(&tax), .novelty_hash = gen_hash, .align_hash = al_hash, .begin = begin,
                        .end = end, .kind = fb ? TBL_KIND_LLM_FEEDBACK : kind};
        if (!(tb[s] = tbl_builder_new(&p, err))) {
            rc = err ? err->code : SD_ERR_USAGE;
            goto done;
        }
    }

    ginf = lm_infer_new(&gen, chunk * n_max < 2048 ? chunk * n_max : 2048, gen.cfg.seq_len + max_new, err);
    if (!ginf) {
        rc = err ? err->code : SD_ERR_USAGE;
        goto done;
    }
    if (!o->no_align && !(ainf = lm_infer_new(&al, 512, al.cfg.seq_len, err))) {
        rc = err ? err->code : SD_ERR_USAGE;
        goto done;
    }

    lm_sampler smp = {.temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p, .seed = o->seed};
    const int per_ctx = n_max + (with_fb ? M : 0); /* distinct candidates a context can have */
    int64_t *ctx_idx = sd_malloc((size_t)chunk * sizeof *ctx_idx);
    int32_t **prompts = sd_calloc((size_t)chunk, sizeof *prompts);
    int *plen = sd_calloc((size_t)chunk, sizeof *plen);
    sl_sample *samples = sd_malloc((size_t)chunk * n_max * sizeof *samples);
    if (trie) {
        choice = sd_malloc((size_t)chunk * n_max * sizeof *choice);
        choice_lp = sd_malloc((size_t)chunk * n_max * sizeof *choice_lp);
    }
    sl_cand *cands = sd_malloc((size_t)chunk * per_ctx * sizeof *cands); /* distinct candidates per context */
    int *n_cands = sd_calloc((size_t)chunk, sizeof *n_cands);
    int32_t **aprefix = sd_calloc((size_t)chunk, sizeof *aprefix); /* alignment prompt prefix of each context */
    int *aplen = sd_calloc((size_t)chunk, sizeof *aplen);
    const int32_t **aconts = sd_calloc((size_t)chunk * per_ctx, sizeof *aconts); /* candidate continuations */
    int *aclen = sd_calloc((size_t)chunk * per_ctx, sizeof *aclen), *acp = sd_calloc((size_t)chunk * per_ctx, sizeof *acp);
    float *ascore = sd_malloc((size_t)chunk * per_ctx * sizeof *ascore);
    if (pairwise) {
        pm = sd_malloc((size_t)chunk * n_max * n_max * sizeof *pm);
        psub = sd_malloc((size_t)n_max * n_max * sizeof *psub);
        pss = sd_malloc((size_t)n_max * sizeof *pss);
        pcs = sd_malloc((size_t)n_max * sizeof *pcs);
    }
    size_t *aslot = sd_malloc((size_t)chunk * per_ctx * sizeof *aslot); /* the candidate each scored pair belongs to */
    char *buf = sd_malloc(PROMPT_CAP), *text = sd_malloc(PROMPT_CAP);
    sl_cand *work = sd_malloc((size_t)per_ctx * sizeof *work);
    tbl_entry *ent = sd_malloc((size_t)o->top * sizeof *ent);
    int64_t planned_total = 0, valid_in_range = 0;
    for (int64_t i = begin; i < end; i++) {
        int32_t c[JR_K_MAX];
        jr_context_from_index(i, K, M, c);
        valid_in_range += jr_context_valid(c, K, M);
    }
    if (o->mpi) { /* every rank has its models: plan, or stop together with the failing rank's message */
        mpi_stage = 1;
        if ((rc = sd_mpi_agree(rc, err))) mpi_stage = 2;
        sd_mpi_test_fault("plan");
    }
    sd_progress prog;
    sd_progress_start(&prog, "plan", valid_in_range);

    for (int64_t next = begin; next < end && !rc;) {
        /* gather the next chunk of valid contexts */
        int nc = 0;
        const int64_t chunk_end = next + chunk < end ? next + chunk : end;
        while (next < chunk_end) {
            int32_t c[JR_K_MAX];
            jr_context_from_index(next, K, M, c);
            if (jr_context_valid(c, K, M)) {
                cp_novelty_prompt(&tax, c, K, buf, PROMPT_CAP);
                free(prompts[nc]);
                plen[nc] = lm_sft_encode_prompt(tok, buf, &prompts[nc]);
                if (!o->no_align) {
                    free(aprefix[nc]);
                    aplen[nc] = lm_sft_encode_prompt(atok, buf, &aprefix[nc]);
                }
                ctx_idx[nc++] = next;
            }
            next++;
        }
        if (!nc) continue;

        /* 1. sample n_max candidates per context from the generator */
        double t0 = sd_now();
        if (trie) { /* constrained decoding: every sample is exactly one description (its index), its
                     * log-probability the constrained sampler's (softmax renormalised over the trie's
                     * allowed tokens at each step): with it, a sample is finished without forward passes
                     * as soon as its prefix determines the description (lm_generate_constrained) */
            if ((rc = lm_generate_constrained(ginf, (const int32_t *const *)prompts, plen, nc, n_max, &smp, trie, choice,
                                              NULL, choice_lp, err)))
                break;
            for (int q = 0; q < nc * n_max; q++) samples[q] = (sl_sample){choice[q], choice_lp[q]};
            rep->sample_s += sd_now() - t0;
            goto sampled;
        }
        lm_gen_out g;
        /* samples of a context that drew the same tokens so far share their forward rows */
        if ((rc = lm_generate_shared(ginf, (const int32_t *const *)prompts, plen, nc, n_max, &smp, max_new, tok_eos(tok), &g,
                                     err)))
            break;
        for (int q = 0; q < nc * n_max; q++) {
            size_t tl = 0;
            sl_sample *sm = &samples[q];
            sm->cluster = -1;
            sm->logprob = g.logprob[q];
            if (!g.stopped[q] || tok_decode(tok, g.tokens + (size_t)q * g.max_new, (size_t)g.len[q], text, PROMPT_CAP - 1, &tl))
                continue;
            text[tl] = 0;
            desc_key key = {text, 0}, *hit = bsearch(&key, keys, (size_t)M, sizeof *keys, desc_cmp);
            if (hit) sm->cluster = hit->c;
        }
        lm_gen_out_free(&g);
        rep->sample_s += sd_now() - t0;
    sampled:;

        /* 2. distinct novel candidates over all n_max samples, each scored once by the alignment
         * model; then, with feedback, the context's observed candidates that were not sampled, scored
         * in a second batch (so that the sampled candidates' batch, and with it every bit of their
         * scores, is the same with and without --feedback-shrink) */
        t0 = sd_now();
        int na = 0;
        for (int pass = 0; pass < 1 + with_fb && !rc; pass++) {
            int first = na;
            for (int x = 0; x < nc; x++) {
                int32_t c[JR_K_MAX];
                jr_context_from_index(ctx_idx[x], K, M, c);
                sl_cand *cs = &cands[(size_t)x * per_ctx];
                int from = pass ? n_cands[x] : 0;
                if (!pass) {
                    n_cands[x] = 0;
                    for (int s = 0; s < n_max; s++) {
                        const sl_sample *sm = &samples[x * n_max + s];
                        if (sm->cluster < 0 || jr_ctx_has(c, K, sm->cluster)) continue;
                        int d = 0;
                        while (d < n_cands[x] && cs[d].cluster != sm->cluster) d++;
                        if (d == n_cands[x]) cs[n_cands[x]++] = (sl_cand){sm->cluster, 0, NAN};
                    }
                } else {
                    int64_t nf, f0 = feedback_range(&jr, ctx_idx[x], &nf);
                    for (int64_t f = f0; f < f0 + nf; f++) {
                        int32_t cl = jr.feedback[f].cand;
                        int d = 0;
                        while (d < n_cands[x] && cs[d].cluster != cl) d++;
                        if (d == n_cands[x] && !jr_ctx_has(c, K, cl)) cs[n_cands[x]++] = (sl_cand){cl, 0, NAN};
                    }
                }
                if (!o->no_align && !pairwise)
                    for (int d = from; d < n_cands[x]; d++) {
                        aconts[na] = acont[cs[d].cluster];
                        aclen[na] = acont_len[cs[d].cluster];
                        aslot[na] = (size_t)x * per_ctx + d;
                        acp[na++] = x;
                    }
            }
            if (na > first)
                rc = md_align_scores_ids(ainf, atok, (const int32_t *const *)aprefix, aplen, nc, aconts + first, aclen + first,
                                         acp + first, na - first, ascore + first, err);
        }
        if (rc) break;
        rep->scored += na;
        for (int a = 0; a < na; a++) cands[aslot[a]].score = ascore[a];
        if (pairwise && (rc = pair_matrices(ainf, atok, aprefix, aplen, nc, cands, n_cands, per_ctx, pcont, pcont_len, psep,
                                            pscore, n_max, pm, &rep->scored, err)))
            break;
        rep->score_s += sd_now() - t0;

        /* 3. every n of the sweep from the first n samples (best-of-n), then the feedback table */
        for (int si = 0; si < n_tb && !rc; si++) {
            const int fb = si == o->n_count, n = o->n_sweep[fb ? o->n_count - 1 : si];
            tbl_stats st = {.fallback_kind = PL_FALLBACK_POPULAR};
            for (int x = 0; x < nc; x++) {
                int32_t c[JR_K_MAX];
                jr_context_from_index(ctx_idx[x], K, M, c);
                const sl_cand *cs = &cands[(size_t)x * per_ctx], *scored = cs;
                int n_scored = n_cands[x];
                if (pairwise) { /* the tournament among the candidates of the first n samples */
                    n_scored = pair_scored(&samples[x * n_max], n, cs, n_cands[x], pm + (size_t)x * n_max * n_max, n_max, psub,
                                           pss, pcs);
                    scored = pcs;
                }
                sl_counts cnt;
                int ne = sl_best_of_n(&samples[x * n_max], n, c, K, scored, n_scored, o->no_align, work, ent, o->top, &cnt);
                uint32_t flags = 0;
                if (fb) { /* every candidate of the context, its prior shrunk toward its observed rate */
                    int nw = 0, observed = 0;
                    for (int d = 0; d < n_cands[x]; d++) {
                        const jr_feedback *f = jr_feedback_find(&jr, c, cs[d].cluster);
                        const int64_t *l = fb_last + 2 * ((size_t)c[K - 1] * (size_t)M + (size_t)cs[d].cluster);
                        int64_t fe = f ? f->exposures : 0, fp = f ? f->positives : 0;
                        /* model prior -> last-cluster evidence (without this context's own) -> context */
                        double prior = sl_prior_rate(cs[d].score, fb_rates, n_rates);
                        prior = sl_shrink(prior, l[1] - fp, l[0] - fe, o->feedback_m);
                        double post = sl_shrink(prior, fp, fe, o->feedback_m);
                        observed += f && f->exposures > 0;
                        float lp = NAN;
                        for (int s = 0; s < n; s++)
                            if (samples[x * n_max + s].cluster == cs[d].cluster &&
                                (isnan(lp) || samples[x * n_max + s].logprob > lp))
                                lp = samples[x * n_max + s].logprob;
                        work[nw++] = (sl_cand){cs[d].cluster, (float)post, lp};
                    }
                    qsort(work, (size_t)nw, sizeof *work, sl_cand_cmp);
                    for (ne = 0; ne < nw && ne < o->top; ne++) ent[ne] = (tbl_entry){work[ne].cluster, work[ne].score, work[ne].logprob};
                    if (!observed) flags |= TBL_FLAG_NO_FEEDBACK;
                }
                st.samples += cnt.samples;
                st.samples_compliant += cnt.compliant;
                st.samples_novel += cnt.novel;
                st.contexts_planned++;
                if (ne == 0) {
                    int32_t best = -1;
                    for (int32_t cl = 0; cl < M; cl++)
                        if (!jr_ctx_has(c, K, cl) && (best < 0 || pop[cl] > pop[best])) best = cl;
                    ent[ne++] = (tbl_entry){best, NAN, NAN};
                    flags = TBL_FLAG_FALLBACK;
                    st.contexts_fallback++;
                }
                if ((rc = tbl_builder_set(tb[si], ctx_idx[x], ent, ne, flags, err))) break;
            }
            tbl_builder_add_stats(tb[si], &st);
            pl_result *r = &rep->r[si];
            r->n = n;
            r->kind = fb ? TBL_KIND_LLM_FEEDBACK : kind;
            r->contexts += st.contexts_planned;
            r->samples += st.samples;
            r->compliant += st.samples_compliant;
            r->novel_unique += st.samples_novel;
            r->fallback += st.contexts_fallback;
        }
        planned_total += nc;
        char extra[96];
        snprintf(extra, sizeof extra, "%.0f contexts/s", (double)planned_total / (sd_now() - t_start));
        sd_progress_update(&prog, planned_total, extra);
    }
    sd_progress_end(&prog);
    lm_infer_stats gst, ast = {0};
    lm_infer_get_stats(ginf, &gst);
    if (ainf) lm_infer_get_stats(ainf, &ast);
    rep->flops = gst.flops + ast.flops;
    rep->gen_rows = gst.rows;
    rep->align_rows = ast.rows;
    if (o->mpi && mpi_stage == 1) { /* every rank planned: rank 0 gathers the rows */
        mpi_stage = 2;
        rc = sd_mpi_agree(rc, err);
        if (!rc) rc = pl_mpi_gather(tb, n_tb, rep, &planned_total, err);
    }
    const int writer = !o->mpi || sd_mpi_rank() == 0;

    /* write the tables */
    const char *prefix = pl_prefix(o);
    char *pdir = sd_path_join(ws, PL_DIR);
    if (!rc && o->n_count > 1) rc = sd_mkdir_p(pdir, err);
    for (int si = 0; si < n_tb && !rc && writer; si++) {
        pl_result *r = &rep->r[si];
        r->compliance = r->samples ? (double)r->compliant / (double)r->samples : 0;
        r->fallback_share = r->contexts ? (double)r->fallback / (double)r->contexts : 0;
        char *path, name[96];
        if (si == o->n_count) { /* the feedback table: plans/explore_feedback_n<N>.tbl[.I-of-S] */
            if (o->n_shards > 1) snprintf(name, sizeof name, "explore_feedback_n%d.tbl.%d-of-%d", r->n, o->shard + 1, o->n_shards);
            else snprintf(name, sizeof name, "explore_feedback_n%d.tbl", r->n);
            if (!(rc = sd_mkdir_p(pdir, err))) path = sd_path_join(pdir, name);
            else break;
        } else if (o->n_count > 1) {
            snprintf(name, sizeof name, "%s_n%d.tbl", prefix, r->n);
            path = sd_path_join(pdir, name);
        } else if (o->out) {
            path = sd_strdup(o->out);
        } else if (!main_table) { /* rl, pairwise: beside the sweep's tables, never ws/explore.tbl */
            if ((rc = sd_mkdir_p(pdir, err))) break;
            if (o->n_shards > 1) snprintf(name, sizeof name, "%s_n%d.tbl.%d-of-%d", prefix, r->n, o->shard + 1, o->n_shards);
            else snprintf(name, sizeof name, "%s_n%d.tbl", prefix, r->n);
            path = sd_path_join(pdir, name);
        } else if (o->n_shards > 1) {
            snprintf(name, sizeof name, "%s.%d-of-%d", TBL_FILE, o->shard + 1, o->n_shards);
            path = sd_path_join(ws, name);
        } else {
            path = sd_path_join(ws, TBL_FILE);
        }
        snprintf(r->path, sizeof r->path, "%s", path);
        rc = tbl_write(tb[si], path, err);
        record_table(ws, path, o, &rc, err);
        free(path);
        if (!rc && o->n_count > 1 && si == o->n_count - 1 && main_table) {
            char *main_path = sd_path_join(ws, TBL_FILE);
            rc = tbl_write(tb[si], main_path, err);
            record_table(ws, main_path, o, &rc, err);
            free(main_path);
        }
    }
    rep->count = n_tb;
    rep->total_s = sd_now() - t_start;
    rep->contexts_per_s = rep->total_s > 0 ? (double)planned_total / rep->total_s : 0;
    if (!rc && writer) {
        rc = sd_mkdir_p(pdir, err);
        char name[64];
        snprintf(name, sizeof name, "plan-%s%s.json", prefix, o->n_shards > 1 ? "-shard" : "");
        char *jp = sd_path_join(pdir, name);
        if (!rc) rc = write_plan_json(jp, o, rep, err);
        free(jp);
    }
    free(pdir);
    for (int i = 0; i < chunk; i++) free(prompts[i]);
    for (int i = 0; i < chunk; i++) free(aprefix[i]);
    free(prompts), free(plen), free(ctx_idx), free(samples), free(cands), free(n_cands), free(ascore);
    free(aprefix), free(aplen), free(aconts), free(aclen), free(acp), free(aslot);
    free(buf), free(text), free(work), free(ent);
done:
    if (o->mpi && mpi_stage == 0) rc = sd_mpi_agree(rc, err); /* failed before planning: tell the others */
    free(fb_rates);
    free(fb_last);
    free(choice);
    free(choice_lp);
    free(pm), free(psub), free(pss), free(pcs); /* --selector pairwise */
    for (int32_t c = 0; pcont && c < tax.n_clusters; c++) free(pcont[c]);
    free(pcont), free(pcont_len);
    lm_trie_free(trie);
    for (int s = 0; s <= PL_MAX_SWEEP; s++)
        if (tb[s]) tbl_builder_free(tb[s]);
    lm_infer_free(ginf);
    lm_infer_free(ainf);
    lm_model_free(&gen);
    lm_model_free(&al);
    tok_free(tok);
    tok_free(atok);
    for (int32_t c = 0; acont && c < tax.n_clusters; c++) free(acont[c]);
    free(acont);
    free(acont_len);
    tx_free(&tax);
    jr_free(&jr);
    free(keys);
    free(pop);
    free(p_tax);
    free(p_jr);
    return rc;
}
