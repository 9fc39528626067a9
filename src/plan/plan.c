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
#include "serendip/select.h"
#include "serendip/sft.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"
#include "serendip/tokenizer.h"

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
    o->n_shards = 1;
    o->chunk = 64;
    o->feedback_m = 0;
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
static void record_table(const char *ws, const char *path, int single_gen, int *rc, sd_err *err) {
    size_t n = strlen(ws);
    if (*rc || strncmp(path, ws, n) || path[n] != '/') return; /* --out elsewhere: not the workspace's */
    const char *in[4] = {TX_FILE, JR_FILE, MD_DIR "/" MD_ALIGN, single_gen ? MD_DIR "/" MD_SINGLE : MD_DIR "/" MD_NOVELTY};
    *rc = mf_record(ws, path + n + 1, "plan", in, single_gen ? 3 : 4, err);
}

/* Loads a model from ws/models/name, with a hint when it is missing. */
static int load_model(const char *ws, const char *name, lm_model *m, lm_tokenizer **tok, uint64_t *hash, sd_err *err) {
    char *dir = sd_path_join(ws, MD_DIR), *path = sd_path_join(dir, name);
    int rc;
    if (!sd_file_exists(path))
        rc = sd_fail(err, SD_ERR_STATE, "%s: no such model (run 'serendip train%s' first)", path,
                     strcmp(name, MD_SINGLE) ? "" : " --baseline");
    else if (!(rc = lm_gguf_load(path, m, tok, err))) rc = sd_hash_file(path, hash, err);
    free(dir);
    free(path);
    return rc;
}

int pl_plan(const char *ws, const pl_opts *o, pl_report *rep, sd_err *err) {
    memset(rep, 0, sizeof *rep);
    double t_start = sd_now();
    if (o->n_count < 1) return sd_fail(err, SD_ERR_USAGE, "plan: no n given");
    if (o->top < 1 || o->top > TBL_TOP_MAX) return sd_fail(err, SD_ERR_USAGE, "plan: --top %d must be in 1..%d", o->top, TBL_TOP_MAX);
    if (o->n_shards < 1 || o->shard < 0 || o->shard >= o->n_shards)
        return sd_fail(err, SD_ERR_USAGE, "plan: shard %d of %d is not a valid slice", o->shard + 1, o->n_shards);
    if (o->n_shards > 1 && o->n_count > 1) return sd_fail(err, SD_ERR_USAGE, "plan: --shard and --n-sweep cannot be combined");
    int single_gen = !strcmp(o->generator, "single");
    if (!single_gen && strcmp(o->generator, "novelty"))
        return sd_fail(err, SD_ERR_USAGE, "plan: --generator '%s' must be 'novelty' or 'single'", o->generator);

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
    int rc;
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
    if ((rc = load_model(ws, single_gen ? MD_SINGLE : MD_NOVELTY, &gen, &tok, &gen_hash, err))) goto done;
    if (!o->no_align && (rc = load_model(ws, MD_ALIGN, &al, &atok, &al_hash, err))) goto done;
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
    if (!o->no_align) {
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
                        .end = end, .kind = fb ? TBL_KIND_LLM_FEEDBACK : single_gen ? TBL_KIND_SINGLE : TBL_KIND_LLM};
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
                if (!o->no_align)
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
        rep->score_s += sd_now() - t0;

        /* 3. every n of the sweep from the first n samples (best-of-n), then the feedback table */
        for (int si = 0; si < n_tb && !rc; si++) {
            const int fb = si == o->n_count, n = o->n_sweep[fb ? o->n_count - 1 : si];
            tbl_stats st = {.fallback_kind = PL_FALLBACK_POPULAR};
            for (int x = 0; x < nc; x++) {
                int32_t c[JR_K_MAX];
                jr_context_from_index(ctx_idx[x], K, M, c);
                const sl_cand *cs = &cands[(size_t)x * per_ctx];
                sl_counts cnt;
                int ne = sl_best_of_n(&samples[x * n_max], n, c, K, cs, n_cands[x], o->no_align, work, ent, o->top, &cnt);
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
            r->kind = fb ? TBL_KIND_LLM_FEEDBACK : single_gen ? TBL_KIND_SINGLE : TBL_KIND_LLM;
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

    /* write the tables */
    const char *prefix = single_gen ? "single" : "explore";
    char *pdir = sd_path_join(ws, PL_DIR);
    if (!rc && o->n_count > 1) rc = sd_mkdir_p(pdir, err);
    for (int si = 0; si < n_tb && !rc; si++) {
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
        } else if (o->n_shards > 1) {
            snprintf(name, sizeof name, "%s.%d-of-%d", TBL_FILE, o->shard + 1, o->n_shards);
            path = sd_path_join(ws, name);
        } else {
            path = sd_path_join(ws, TBL_FILE);
        }
        snprintf(r->path, sizeof r->path, "%s", path);
        rc = tbl_write(tb[si], path, err);
        record_table(ws, path, single_gen, &rc, err);
        free(path);
        if (!rc && o->n_count > 1 && si == o->n_count - 1 && !single_gen) {
            char *main_path = sd_path_join(ws, TBL_FILE);
            rc = tbl_write(tb[si], main_path, err);
            record_table(ws, main_path, 0, &rc, err);
            free(main_path);
        }
    }
    rep->count = n_tb;
    rep->total_s = sd_now() - t_start;
    rep->contexts_per_s = rep->total_s > 0 ? (double)planned_total / rep->total_s : 0;
    if (!rc) {
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
    free(fb_rates);
    free(fb_last);
    free(choice);
    free(choice_lp);
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
