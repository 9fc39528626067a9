/* rl.c - RL fine-tuning of the novelty model against the alignment reward (see rl.h).
 *
 * Why hand-written: the paper's negative result (RLHF reward-hacks the alignment model) is
 * reproduced on serendip's own C transformer; no RL library drives that model, and the loss is a
 * few lines of weights over the trainer's existing backward pass (lm_trainer_grad_weighted). */
#include "serendip/rl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/corpus.h"
#include "serendip/gguf.h"
#include "serendip/journeys.h"
#include "serendip/lm_infer.h"
#include "serendip/lm_train.h"
#include "serendip/manifest.h"
#include "serendip/models.h"
#include "serendip/sft.h"
#include "serendip/taxonomy.h"
#include "serendip/tokenizer.h"

#define RL_PROMPT_CAP 4096
#define RL_EVAL_TOP_P 0.95f /* the planner's default nucleus (plan.c), so compliance reads as plan's */

void rl_opts_default(rl_opts *o) {
    memset(o, 0, sizeof *o);
    o->steps = 2000;
    o->contexts = 8;
    o->group = 4;
    o->lr = 1e-4f;
    o->beta = 0.04f;
    o->std_norm = 1;
    o->every = 50;
    o->eval_contexts = 64;
    o->eval_samples = 4;
    o->seed = 1;
}

void rl_report_free(rl_report *r) {
    free(r->rec);
    r->rec = NULL;
    r->n_rec = 0;
}

/* ---------------------------------------------------------------- the pieces */

void rl_group_advantages(const float *r, int n_groups, int g, int std_norm, float *adv) {
    for (int k = 0; k < n_groups; k++) {
        const float *x = r + (size_t)k * g;
        double m = 0, v = 0;
        for (int i = 0; i < g; i++) m += x[i];
        m /= g;
        for (int i = 0; i < g; i++) v += (x[i] - m) * (x[i] - m);
        double sd = sqrt(v / g);
        for (int i = 0; i < g; i++) {
            double a = x[i] - m;
            if (std_norm) a = sd < 1e-6 ? 0 : a / sd;
            adv[(size_t)k * g + i] = (float)a;
        }
    }
}

double rl_token_loss(float nll, float nll_ref, float adv, float beta) {
    double d = (double)nll - nll_ref; /* log pi_ref - log pi */
    return (double)adv * nll + (double)beta * (exp(d) - d - 1);
}

float rl_token_weight(float nll, float nll_ref, float adv, float beta) {
    double d = (double)nll - nll_ref;
    return (float)((double)adv + (double)beta * (exp(d) - 1));
}

/* ---------------------------------------------------------------- the run */

void rl_weigh(void *vc, int row, const float *nll, float *w, int T) {
    const rl_weights *c = vc;
    for (int i = 0; i < T; i++) {
        size_t k = (size_t)row * T + i;
        w[i] = c->gen[k] ? c->scale * rl_token_weight(nll[i], c->ref[k], c->adv[row], c->beta) : 0.0f;
    }
}

/* Everything a run holds. */
typedef struct {
    const rl_opts *o;
    tx_taxonomy tax;
    int K, M;
    int64_t n_ctx;
    lm_model pol, ref, al;
    lm_tokenizer *tok, *atok;
    lm_infer *ginf, *ainf;
    int max_new;
    char *buf, *text;
} rl_run;

/* A uniformly random valid context into c. */
static void random_context(rl_run *r, sd_rng *rng, int32_t *c) {
    for (;;) {
        int64_t i = (int64_t)(sd_rng_uniform(rng) * (double)r->n_ctx);
        if (i >= r->n_ctx) i = r->n_ctx - 1;
        jr_context_from_index(i, r->K, r->M, c);
        if (jr_context_valid(c, r->K, r->M)) return;
    }
}

/* Decodes sample q of g into r->text; returns the cluster it is exactly the description of when it
 * stopped, else -1. */
static int32_t sample_cluster(rl_run *r, const lm_gen_out *g, int q) {
    size_t tl = 0;
    r->text[0] = 0;
    if (tok_decode(r->tok, g->tokens + (size_t)q * g->max_new, (size_t)g->len[q], r->text, RL_PROMPT_CAP - 1, &tl)) tl = 0;
    r->text[tl] = 0;
    return g->stopped[q] ? tx_find_desc(&r->tax, r->text) : -1;
}

/* Samples n_s completions for each of the n_c contexts (ctx (n_c, K)) with smp; fills g, cluster
 * (n_c*n_s) and score (n_c*n_s: the alignment model's expected score of each generated text after
 * its context); texts (may be NULL) receives the decoded texts (caller frees each). */
static int sample_and_score(rl_run *r, const int32_t *ctx, int n_c, int n_s, const lm_sampler *smp, lm_gen_out *g,
                            int32_t *cluster, float *score, char **texts, sd_err *err) {
    int K = r->K, n = n_c * n_s;
    int32_t **prompts = sd_calloc((size_t)n_c, sizeof *prompts);
    int *plen = sd_calloc((size_t)n_c, sizeof *plen);
    char **aprompts = sd_calloc((size_t)n, sizeof *aprompts);
    for (int x = 0; x < n_c; x++) {
        cp_novelty_prompt(&r->tax, ctx + (size_t)x * K, K, r->buf, RL_PROMPT_CAP);
        plen[x] = lm_sft_encode_prompt(r->tok, r->buf, &prompts[x]);
    }
    int rc = lm_generate(r->ginf, (const int32_t *const *)prompts, plen, n_c, n_s, smp, r->max_new, tok_eos(r->tok), g, err);
    for (int q = 0; q < n && !rc; q++) {
        const int32_t *c = ctx + (size_t)(q / n_s) * K;
        cluster[q] = sample_cluster(r, g, q);
        int pl = cp_novelty_prompt(&r->tax, c, K, r->buf, RL_PROMPT_CAP);
        /* the alignment prompt of plan (cp_align_prompt) with the generated text as the candidate */
        aprompts[q] = sd_asprintf("%.*s%s%s", pl, r->buf, r->text, CP_TOK_SCORE);
        if (texts) texts[q] = sd_strdup(r->text);
    }
    if (!rc) rc = md_align_scores(r->ainf, r->atok, (const char *const *)aprompts, n, score, err);
    for (int x = 0; x < n_c; x++) free(prompts[x]);
    for (int q = 0; q < n; q++) free(aprompts[q]);
    free(prompts), free(plen), free(aprompts);
    return rc;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Free generation on the fixed context set: compliance, distinct share, novelty, mean raw score. */
static int evaluate(rl_run *r, const int32_t *ectx, rl_record *rec, sd_err *err) {
    const rl_opts *o = r->o;
    int n = o->eval_contexts * o->eval_samples;
    lm_sampler smp = {.temperature = 1.0f, .top_k = 0, .top_p = RL_EVAL_TOP_P, .seed = o->seed + 7919};
    lm_gen_out g = {0};
    int32_t *cl = sd_malloc((size_t)n * sizeof *cl);
    float *sc = sd_malloc((size_t)n * sizeof *sc);
    char **texts = sd_calloc((size_t)n, sizeof *texts);
    int rc = sample_and_score(r, ectx, o->eval_contexts, o->eval_samples, &smp, &g, cl, sc, texts, err);
    if (!rc) {
        int valid = 0, novel = 0, distinct = 0;
        double s = 0;
        for (int q = 0; q < n; q++) {
            valid += cl[q] >= 0;
            novel += cl[q] >= 0 && !jr_ctx_has(ectx + (size_t)(q / o->eval_samples) * r->K, r->K, cl[q]);
            s += sc[q];
        }
        qsort(texts, (size_t)n, sizeof *texts, str_cmp);
        for (int q = 0; q < n; q++) distinct += q == 0 || strcmp(texts[q], texts[q - 1]);
        rec->compliance = (double)valid / n;
        rec->novelty = (double)novel / n;
        rec->distinct = (double)distinct / n;
        rec->eval_reward = s / n;
    }
    for (int q = 0; q < n; q++) free(texts[q]);
    free(texts), free(cl), free(sc);
    lm_gen_out_free(&g);
    return rc;
}

static cJSON *run_json(const rl_opts *o, const rl_report *rep, int T, int threads) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "reward", o->guarded ? "guarded" : "raw");
    cJSON_AddStringToObject(j, "model", rep->model);
    cJSON_AddNumberToObject(j, "steps_asked", o->steps);
    cJSON_AddNumberToObject(j, "steps", rep->steps);
    cJSON_AddNumberToObject(j, "max_seconds", o->max_seconds);
    cJSON_AddNumberToObject(j, "seconds", rep->seconds);
    cJSON_AddNumberToObject(j, "threads", threads);
    cJSON_AddNumberToObject(j, "contexts", o->contexts);
    cJSON_AddNumberToObject(j, "group", o->group);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "beta", o->beta);
    cJSON_AddBoolToObject(j, "std_norm", o->std_norm);
    cJSON_AddNumberToObject(j, "seq_len", T);
    cJSON_AddNumberToObject(j, "eval_contexts", o->eval_contexts);
    cJSON_AddNumberToObject(j, "eval_samples", o->eval_samples);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON *a = cJSON_AddArrayToObject(j, "records");
    for (int i = 0; i < rep->n_rec; i++) {
        const rl_record *x = &rep->rec[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "step", x->step);
        cJSON_AddNumberToObject(e, "seconds", x->seconds);
        double v[6] = {x->reward, x->kl, x->compliance, x->distinct, x->novelty, x->eval_reward};
        const char *k[6] = {"reward", "kl", "compliance", "distinct", "novelty", "eval_reward"};
        for (int f = 0; f < 6; f++) cJSON_AddItemToObject(e, k[f], isfinite(v[f]) ? cJSON_CreateNumber(v[f]) : cJSON_CreateNull());
        cJSON_AddItemToArray(a, e);
    }
    return j;
}

/* Replaces runs/<variant> of ws/models/rl.json (created when missing), atomically. */
static int write_rl_json(const char *ws, const char *variant, cJSON *run, sd_err *err) {
    char *path = sd_asprintf("%s/%s/%s", ws, MD_DIR, RL_JSON), *text = NULL;
    cJSON *root = NULL;
    if (sd_file_exists(path) && !sd_read_file(path, &text, NULL, NULL)) root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        root = cJSON_CreateObject();
    }
    cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "runs");
    if (!cJSON_IsObject(runs)) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "runs");
        runs = cJSON_AddObjectToObject(root, "runs");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(runs, variant);
    cJSON_AddItemToObject(runs, variant, run);
    char *s = cJSON_Print(root);
    int rc = sd_write_file_atomic(path, s, strlen(s), err);
    free(s);
    free(path);
    cJSON_Delete(root);
    return rc;
}

static int32_t pad_of(const lm_tokenizer *tok) {
    return tok_pad(tok) >= 0 ? tok_pad(tok) : tok_eos(tok) >= 0 ? tok_eos(tok) : 0;
}

int rl_train(const char *ws, const rl_opts *o, rl_report *rep, sd_err *err) {
    memset(rep, 0, sizeof *rep);
    if (o->steps < 1 || o->contexts < 1 || o->group < 2 || o->every < 1 || o->eval_contexts < 1 || o->eval_samples < 1)
        return sd_fail(err, SD_ERR_USAGE, "rl: --steps, --contexts, --every, --eval-contexts, --eval-samples must be >= 1 "
                                          "and --group >= 2 (advantages are relative to the group)");
    if (!(o->lr > 0) || !(o->beta >= 0) || !(o->max_seconds >= 0))
        return sd_fail(err, SD_ERR_USAGE, "rl: --lr must be > 0, --beta and --max-seconds >= 0");
    if ((size_t)o->contexts * o->group > 4096 || (size_t)o->eval_contexts * o->eval_samples > 8192)
        return sd_fail(err, SD_ERR_USAGE, "rl: at most 4096 samples per step and 8192 per record");
    double t_start = sd_now();
    rl_run r = {.o = o};
    jr_journeys jr = {0};
    lm_trainer *ptr = NULL, *rtr = NULL;
    char *p_tax = sd_path_join(ws, TX_FILE), *p_jr = sd_path_join(ws, JR_FILE);
    char *mdir = sd_path_join(ws, MD_DIR), *p_nov = sd_path_join(mdir, MD_NOVELTY), *p_al = sd_path_join(mdir, MD_ALIGN);
    const char *name = o->out ? o->out : o->guarded ? RL_MODEL_GUARDED : RL_MODEL_RAW;
    char *p_out = sd_path_join(mdir, name);
    int32_t *tokens = NULL, *ctx = NULL, *ectx = NULL, *cl = NULL;
    float *score = NULL, *reward = NULL, *adv = NULL, *ref_nll = NULL, *nll = NULL, *w = NULL;
    uint8_t *gen = NULL;
    int rc = SD_OK, cap_rec = 0;
    const char *const reads[4] = {TX_FILE, JR_FILE, MD_DIR "/" MD_NOVELTY, MD_DIR "/" MD_ALIGN};
    r.buf = sd_malloc(RL_PROMPT_CAP);
    r.text = sd_malloc(RL_PROMPT_CAP);
    for (int i = 0; i < 4 && !rc; i++) {
        char *p = sd_path_join(ws, reads[i]);
        if (!sd_file_exists(p))
            rc = sd_fail(err, SD_ERR_STATE, "%s: missing (run 'serendip %s' first)", p, i == 0 ? "cluster" : i == 1 ? "journeys" : "train");
        free(p);
    }
    if (rc || (rc = mf_check(ws, reads, 4, err))) goto done;
    if ((rc = tx_load(&r.tax, p_tax, err)) || (rc = jr_load(&jr, p_jr, err))) goto done;
    r.K = jr.k;
    r.M = r.tax.n_clusters;
    r.n_ctx = jr_n_contexts(r.K, r.M);
    if ((rc = lm_gguf_load(p_nov, &r.ref, &r.tok, err)) || (rc = lm_gguf_load(p_al, &r.al, &r.atok, err))) goto done;
    if (tok_eos(r.tok) < 0) {
        rc = sd_fail(err, SD_ERR_DATA, "%s: the tokenizer has no end-of-sequence token", p_nov);
        goto done;
    }
    /* the policy: an owned copy of the SFT model (the loaded one may be a read-only mapping) */
    r.pol = r.ref;
    r.pol.params = sd_malloc(r.ref.n_params * sizeof(float));
    memcpy(r.pol.params, r.ref.params, r.ref.n_params * sizeof(float));
    r.pol.owns_params = 1;
    lm_weights_point(&r.pol.w, &r.pol.cfg, r.pol.params);

    /* row length: the longest prompt (BOS ctx d1 sep ... dK ans) and a completion of max_new tokens */
    int max_desc = 0;
    for (int32_t c = 0; c < r.M; c++) {
        int32_t tmp[512];
        size_t n = 0;
        tok_encode(r.tok, r.tax.desc[c], strlen(r.tax.desc[c]), tmp, 512, &n, 0);
        if ((int)n > max_desc) max_desc = (int)n;
    }
    r.max_new = max_desc + 4; /* as plan.c */
    int T = 3 + r.K + r.K * max_desc + r.max_new;
    if (T > r.pol.cfg.seq_len) T = r.pol.cfg.seq_len;
    if (T < 8) {
        rc = sd_fail(err, SD_ERR_DATA, "%s: context length %d is too short for prompts and answers", p_nov, r.pol.cfg.seq_len);
        goto done;
    }
    const int C = o->contexts, G = o->group, B = C * G, E = o->eval_contexts * o->eval_samples;
    int rows = B > E ? B : E;
    if (!(r.ginf = lm_infer_new(&r.pol, rows < 1024 ? rows : 1024, r.pol.cfg.seq_len + r.max_new, err)) ||
        !(r.ainf = lm_infer_new(&r.al, 256, r.al.cfg.seq_len + r.max_new + 8, err))) {
        rc = err ? err->code : SD_ERR_USAGE;
        goto done;
    }
    lm_train_opts to;
    lm_train_opts_default(&to);
    to.steps = o->steps;
    to.lr = to.min_lr = o->lr; /* constant after the warm-up */
    to.warmup = 10;
    to.batch = B;
    to.seq_len = T;
    to.weight_decay = 0; /* as the fine-tunes: no pull toward 0 */
    to.seed = o->seed;
    if ((rc = lm_trainer_new(&ptr, &r.pol, &to, err)) || (rc = lm_trainer_new(&rtr, &r.ref, &to, err))) goto done;

    tokens = sd_malloc((size_t)B * (T + 1) * sizeof *tokens);
    gen = sd_malloc((size_t)B * T);
    ref_nll = sd_malloc((size_t)B * T * sizeof *ref_nll);
    nll = sd_malloc((size_t)B * T * sizeof *nll);
    w = sd_malloc((size_t)B * T * sizeof *w);
    ctx = sd_malloc((size_t)C * r.K * sizeof *ctx);
    ectx = sd_malloc((size_t)o->eval_contexts * r.K * sizeof *ectx);
    cl = sd_malloc((size_t)B * sizeof *cl);
    score = sd_malloc((size_t)B * sizeof *score);
    reward = sd_malloc((size_t)B * sizeof *reward);
    adv = sd_malloc((size_t)B * sizeof *adv);
    sd_rng rng, erng;
    sd_rng_seed(&rng, o->seed);
    sd_rng_seed(&erng, o->seed ^ 0x5eed5eedULL);
    for (int x = 0; x < o->eval_contexts; x++) random_context(&r, &erng, ectx + (size_t)x * r.K);
    const int32_t pad = pad_of(r.tok), eos = tok_eos(r.tok);

    snprintf(rep->model, sizeof rep->model, "%s", p_out);
    sd_log("RL fine-tuning of the novelty model (%s reward): %d steps, %d contexts x %d samples, beta %g, lr %g",
           o->guarded ? "guarded" : "raw", o->steps, C, G, (double)o->beta, (double)o->lr);
    cap_rec = o->steps / o->every + 3;
    rep->rec = sd_calloc((size_t)cap_rec, sizeof *rep->rec);
    rl_record *rec = &rep->rec[rep->n_rec++];
    rec->reward = rec->kl = NAN;
    if ((rc = evaluate(&r, ectx, rec, err))) goto done;
    rec->seconds = sd_now() - t_start;
    double sum_r = 0, sum_kl = 0;
    int64_t n_r = 0, n_kl = 0;
    sd_progress prog;
    sd_progress_start(&prog, o->guarded ? "rl guarded" : "rl raw", o->steps);
    int step = 0;
    for (; step < o->steps && !rc; step++) {
        for (int x = 0; x < C; x++) random_context(&r, &rng, ctx + (size_t)x * r.K);
        lm_sampler smp = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = o->seed * 1000003ULL + (uint64_t)step};
        lm_gen_out g = {0};
        if ((rc = sample_and_score(&r, ctx, C, G, &smp, &g, cl, score, NULL, err))) {
            lm_gen_out_free(&g);
            break;
        }
        for (int q = 0; q < B; q++) {
            int novel = cl[q] >= 0 && !jr_ctx_has(ctx + (size_t)(q / G) * r.K, r.K, cl[q]);
            reward[q] = o->guarded && !novel ? 0.0f : score[q];
            sum_r += reward[q];
            n_r++;
        }
        rl_group_advantages(reward, C, G, o->std_norm, adv);
        /* rows: prompt, generated tokens, the stop token when produced; loss on the generated part */
        int64_t ntok = 0;
        for (int q = 0; q < B; q++) {
            int32_t *row = tokens + (size_t)q * (T + 1);
            uint8_t *gm = gen + (size_t)q * T;
            for (int i = 0; i <= T; i++) row[i] = pad;
            memset(gm, 0, (size_t)T);
            cp_novelty_prompt(&r.tax, ctx + (size_t)(q / G) * r.K, r.K, r.buf, RL_PROMPT_CAP);
            int32_t *pids = NULL;
            int pl = lm_sft_encode_prompt(r.tok, r.buf, &pids), n = 0;
            for (int i = 0; i < pl && n <= T; i++) row[n++] = pids[i];
            free(pids);
            int first = n; /* first generated token's index in the row */
            const int32_t *gt = g.tokens + (size_t)q * g.max_new;
            for (int i = 0; i < g.len[q] && n <= T; i++) row[n++] = gt[i];
            if (g.stopped[q] && n <= T) row[n++] = eos;
            for (int i = first; i < n; i++) gm[i - 1] = 1, ntok++; /* position i-1 predicts token i */
        }
        lm_gen_out_free(&g);
        lm_trainer_token_nll(rtr, tokens, ref_nll);
        rl_weights wc = {.adv = adv, .ref = ref_nll, .gen = gen, .beta = o->beta, .scale = ntok ? 1.0f / (float)ntok : 0};
        double wl = 0;
        lm_trainer_grad_weighted(ptr, tokens, rl_weigh, &wc, w, nll, &wl);
        double kl = 0, loss = 0;
        for (size_t k = 0; k < (size_t)B * T; k++)
            if (gen[k]) {
                double d = (double)nll[k] - ref_nll[k];
                kl += exp(d) - d - 1;
                loss += rl_token_loss(nll[k], ref_nll[k], adv[k / T], o->beta);
            }
        sum_kl += kl;
        n_kl += ntok;
        if ((rc = lm_trainer_update(ptr, (float)(ntok ? loss / ntok : 0), err))) break;
        int last = step + 1 == o->steps || (o->max_seconds > 0 && sd_now() - t_start >= o->max_seconds);
        if ((step + 1) % o->every == 0 || last) {
            if (rep->n_rec == cap_rec) break; /* cannot happen: sized for steps / every + 2 */
            rec = &rep->rec[rep->n_rec++];
            rec->step = step + 1;
            rec->reward = n_r ? sum_r / (double)n_r : NAN;
            rec->kl = n_kl ? sum_kl / (double)n_kl : NAN;
            sum_r = sum_kl = 0;
            n_r = n_kl = 0;
            if ((rc = evaluate(&r, ectx, rec, err))) break;
            rec->seconds = sd_now() - t_start;
            char extra[128];
            snprintf(extra, sizeof extra, "reward %.2f kl %.3f compliance %.0f%%", rec->reward, rec->kl, 100 * rec->compliance);
            sd_progress_update(&prog, step + 1, extra);
            /* the records so far, so that a long run can be watched (and survives an interruption) */
            rep->steps = step + 1;
            rep->seconds = rec->seconds;
            if ((rc = write_rl_json(ws, o->guarded ? "guarded" : "raw", run_json(o, rep, T, sd_num_threads()), err))) break;
        }
        if (last) {
            step++;
            break;
        }
    }
    sd_progress_end(&prog);
    rep->steps = step;
    rep->seconds = sd_now() - t_start;
    if (rc) goto done;
    if ((rc = lm_gguf_save(p_out, &r.pol, r.tok, o->guarded ? "rl-guarded" : "rl", err))) goto done;
    if ((rc = write_rl_json(ws, o->guarded ? "guarded" : "raw", run_json(o, rep, T, sd_num_threads()), err))) goto done;
    char *made = sd_asprintf("%s/%s", MD_DIR, name);
    rc = mf_record(ws, made, "rl", reads, 4, err);
    free(made);
done:
    lm_trainer_free(ptr);
    lm_trainer_free(rtr);
    lm_infer_free(r.ginf);
    lm_infer_free(r.ainf);
    lm_model_free(&r.pol);
    lm_model_free(&r.ref);
    lm_model_free(&r.al);
    tok_free(r.tok);
    tok_free(r.atok);
    tx_free(&r.tax);
    jr_free(&jr);
    free(r.buf), free(r.text), free(tokens), free(gen), free(ref_nll), free(nll), free(w), free(ctx), free(ectx);
    free(cl), free(score), free(reward), free(adv);
    free(p_tax), free(p_jr), free(mdir), free(p_nov), free(p_al), free(p_out);
    if (rc) rl_report_free(rep);
    return rc;
}
