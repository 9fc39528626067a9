/* models.c - the `train` stage (see models.h): build the corpora, train a BPE tokenizer and the
 * base model on the catalogue's language, then fine-tune two SEPARATE models from the base — the
 * novelty model on diversified novel transitions and the alignment model on collective-feedback
 * labels — as the paper prescribes (one model on both objectives loses novelty). The optional
 * single model (fine-tuned directly on high-feedback tuples) is the baseline the paper rejects. */
#include "serendip/models.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/gguf.h"
#include "serendip/lm_infer.h"
#include "serendip/lm_train.h"
#include "serendip/manifest.h"
#include "serendip/rankstats.h"
#include "serendip/retrieve.h"
#include "serendip/sft.h"
#include "serendip/taxonomy.h"

void md_opts_default(md_opts *o) {
    memset(o, 0, sizeof *o);
    /* Small on purpose: the whole table (9,900 contexts x 16 samples) must be planned in about a
     * minute on two cores, and the catalogue language is a few thousand words. */
    o->cfg = (lm_config){.dim = 128, .n_layers = 4, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 384,
                         .vocab_size = 0, .seq_len = 64, .tied = 1, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    o->vocab = 1024;
    o->pretrain_steps = 400;
    o->novelty_steps = 300;
    o->align_steps = 1200; /* about 3 passes over the demo's 11k tuples: docs/planning.md */
    o->batch = 32;
    o->lr = 3e-3f;
    o->sft_lr = 1e-3f;
    o->seed = 1;
    cp_opts_default(&o->corpus);
}

/* ---------------------------------------------------------------- training helpers */

static void train_opts(lm_train_opts *to, const md_opts *o, int steps, float lr, int T, uint64_t seed) {
    lm_train_opts_default(to);
    to->steps = steps;
    to->lr = lr;
    to->min_lr = lr / 10;
    to->warmup = steps / 10 + 1;
    to->batch = o->batch;
    to->seq_len = T;
    to->seed = seed;
    to->lora_rank = o->lora_rank;
    to->dp = o->mpi; /* train --mpi: every rank's share of each batch (models_mpi.c) */
}

/* Trains m on ex for to's steps; *loss the final step's loss, *secs the time taken. */
static int run_training(lm_model *m, const lm_examples *ex, const lm_train_opts *to, int32_t pad, const char *label,
                        lm_lora **lora_out, float *loss, double *secs, double *tps, sd_err *err) {
    double t0 = sd_now();
    lm_trainer *tr = NULL;
    lm_batcher b;
    int rc = lm_trainer_new(&tr, m, to, err);
    if (rc) return rc;
    rc = lm_batcher_init(&b, ex, to->batch, to->seq_len, pad, to->seed, err);
    if (rc) {
        lm_trainer_free(tr);
        return rc;
    }
    double tok_s = 0;
    rc = lm_train_run(tr, &b, label, NULL, NULL, loss, &tok_s, err);
    if (tps) *tps = tok_s;
    if (lora_out && tr->lora) {
        /* hand the adapters to the caller: it merges and saves them */
        *lora_out = sd_malloc(sizeof **lora_out);
        **lora_out = *tr->lora;
        tr->lora->params = NULL;
    }
    lm_batcher_free(&b);
    lm_trainer_free(tr);
    *secs = sd_now() - t0;
    return rc;
}

/* Padding token of tok; a vocabulary without one (GPT-2's) pads with EOS (padded positions carry
 * no loss, so the choice only needs to be a valid id). */
static int32_t pad_id(const lm_tokenizer *tok) {
    return tok_pad(tok) >= 0 ? tok_pad(tok) : tok_eos(tok) >= 0 ? tok_eos(tok) : 0;
}

static void model_copy(lm_model *dst, const lm_model *src) {
    *dst = *src;
    dst->params = sd_malloc(src->n_params * sizeof(float));
    memcpy(dst->params, src->params, src->n_params * sizeof(float));
    dst->owns_params = 1;
    lm_weights_point(&dst->w, &dst->cfg, dst->params);
}

/* Fine-tunes a copy of base on the prompt/answer file and saves it (merged adapters with LoRA). */
static int finetune(const char *dir, const lm_model *base, const lm_tokenizer *tok, const md_opts *o, const char *data,
                    const char *out_name, const char *role, int steps, float *loss, double *secs, sd_err *err) {
    lm_examples ex;
    lm_examples_init(&ex);
    lm_model m;
    /* a quantized base (QLoRA) is trained in place: LoRA never writes the base; the merge below
     * works on a decoded F32 copy */
    if (base->qm) m = *base;
    else model_copy(&m, base);
    lm_lora *lora = NULL;
    size_t n = 0, n_cut = 0;
    int longest = 0;
    int rc = lm_sft_load_jsonl(tok, data, (size_t)base->cfg.seq_len + 1, &ex, &n, &longest, &n_cut, err);
    if (rc) goto done;
    if (n_cut) sd_log("warning: %zu %s examples longer than %d tokens were cut from the left", n_cut, role, base->cfg.seq_len + 1);
    /* rows only as long as the longest example: padding to seq_len would waste most of the compute */
    lm_train_opts to;
    train_opts(&to, o, steps, o->sft_lr, longest - 1 < base->cfg.seq_len ? longest - 1 : base->cfg.seq_len, o->seed + 17);
    /* no weight decay in the fine-tunes (as `lm sft`): decaying toward 0 pulls the model away from
     * its base; measured on the demo, the alignment model's Spearman with the truth was 0.28 with
     * 0.1 and 0.44-0.45 without (docs/planning.md) */
    to.weight_decay = 0;
    sd_log("fine-tuning the %s model on %zu examples (%d steps%s)", role, n, steps, o->lora_rank ? ", LoRA" : "");
    rc = run_training(&m, &ex, &to, pad_id(tok), role, &lora, loss, secs, NULL, err);
    if (rc) goto done;
    char *path = sd_path_join(dir, out_name);
    if (lora) {
        char *apath = sd_asprintf("%.*s.lora.gguf", (int)(strlen(path) - 5), path);
        rc = lm_lora_save_gguf(lora, apath, err);
        free(apath);
        if (!rc && base->qm) lm_model_to_f32(&m, base);
        if (!rc) lm_lora_merge(lora, &m);
    }
    if (!rc) rc = lm_gguf_save(path, &m, tok, role, err);
    free(path);
done:
    if (lora) {
        lm_lora_free(lora);
        free(lora);
    }
    lm_examples_free(&ex);
    if (m.params != base->params) lm_model_free(&m); /* not the borrowed quantized base */
    return rc;
}

/* Pretraining examples: the corpus text cut into windows of T+1 tokens. */
static void pretrain_examples(const lm_tokenizer *tok, const char *text, size_t len, int T, lm_examples *ex) {
    size_t n = 0, cap = len + 16;
    int32_t *ids = sd_malloc(cap * sizeof *ids);
    tok_encode(tok, text, len, ids, cap, &n, 1);
    for (size_t s = 0; s + 2 <= n; s += (size_t)T) {
        size_t w = n - s < (size_t)T + 1 ? n - s : (size_t)T + 1;
        lm_examples_add(ex, ids + s, NULL, w);
    }
    free(ids);
}

/* ---------------------------------------------------------------- alignment scores */

/* The ten score tokens "0".."9" of tok. */
static int score_tokens(const lm_tokenizer *tok, int32_t *digit, sd_err *err) {
    for (int d = 0; d < CP_SCORE_LEVELS; d++) {
        char c = (char)('0' + d);
        size_t k = 0;
        if (tok_encode(tok, &c, 1, digit + d, 1, &k, 0) || k != 1)
            return sd_fail(err, SD_ERR_DATA, "the tokenizer does not encode the digit '%c' as one token", c);
    }
    return SD_OK;
}

int md_align_scores_ids(lm_infer *inf, const lm_tokenizer *tok, const int32_t *const *prompts, const int *plen, int np,
                        const int32_t *const *conts, const int *clen, const int *cprompt, int n, float *out, sd_err *err) {
    int32_t digit[CP_SCORE_LEVELS];
    int rc = score_tokens(tok, digit, err);
    if (rc || n == 0) return rc;
    /* the softmax renormalised over the ten digits needs only their logits (the normaliser over
     * the vocabulary cancels) */
    float *lg = sd_malloc((size_t)n * CP_SCORE_LEVELS * sizeof *lg);
    rc = lm_next_logits_after(inf, prompts, plen, np, conts, clen, cprompt, n, digit, CP_SCORE_LEVELS, lg, err);
    for (int i = 0; i < n && !rc; i++) {
        const float *row = lg + (size_t)i * CP_SCORE_LEVELS;
        double mx = -INFINITY, z = 0, ev = 0;
        for (int d = 0; d < CP_SCORE_LEVELS; d++) mx = fmax(mx, row[d]);
        for (int d = 0; d < CP_SCORE_LEVELS; d++) {
            double p = exp(row[d] - mx);
            z += p;
            ev += p * d;
        }
        out[i] = (float)(ev / z);
    }
    free(lg);
    return rc;
}

/* The scorer of md_align_scores_ids / md_pair_probs_ids over whole prompt strings: each prompt is
 * encoded as lm_sft_encode_prompt and is its own continuation of length 0, in chunks of 256. */
typedef int (*ids_scorer)(lm_infer *, const lm_tokenizer *, const int32_t *const *, const int *, int, const int32_t *const *,
                          const int *, const int *, int, float *, sd_err *);
static int score_prompts(ids_scorer fn, lm_infer *inf, const lm_tokenizer *tok, const char *const *prompts, int n, float *out,
                         sd_err *err) {
    const int chunk = 256;
    int32_t **ids = sd_calloc(chunk, sizeof *ids);
    int *lens = sd_calloc(chunk, sizeof *lens), *cp = sd_calloc(chunk, sizeof *cp), *zero = sd_calloc(chunk, sizeof *zero);
    int rc = SD_OK;
    for (int s = 0; s < n && !rc; s += chunk) {
        int m = n - s < chunk ? n - s : chunk;
        for (int i = 0; i < m; i++) {
            free(ids[i]);
            lens[i] = lm_sft_encode_prompt(tok, prompts[s + i], &ids[i]);
            cp[i] = i;
        }
        rc = fn(inf, tok, (const int32_t *const *)ids, lens, m, (const int32_t *const *)ids, zero, cp, m, out + s, err);
    }
    for (int i = 0; i < chunk; i++) free(ids[i]);
    free(ids), free(lens), free(cp), free(zero);
    return rc;
}

int md_align_scores(lm_infer *inf, const lm_tokenizer *tok, const char *const *prompts, int n, float *out, sd_err *err) {
    return score_prompts(md_align_scores_ids, inf, tok, prompts, n, out, err);
}

int md_pair_probs_ids(lm_infer *inf, const lm_tokenizer *tok, const int32_t *const *prompts, const int *plen, int np,
                      const int32_t *const *conts, const int *clen, const int *cprompt, int n, float *out, sd_err *err) {
    int32_t ab[2];
    for (int d = 0; d < 2; d++) {
        char c = (char)('A' + d);
        size_t k = 0;
        if (tok_encode(tok, &c, 1, ab + d, 1, &k, 0) || k != 1)
            return sd_fail(err, SD_ERR_DATA, "the tokenizer does not encode the answer '%c' as one token", c);
    }
    if (n == 0) return SD_OK;
    int V = tok_vocab_size(tok);
    float *lp = sd_malloc((size_t)n * V * sizeof *lp);
    int rc = lm_next_logprobs_after(inf, prompts, plen, np, conts, clen, cprompt, n, lp, err);
    for (int i = 0; i < n && !rc; i++) {
        const float *row = lp + (size_t)i * V;
        out[i] = (float)(1.0 / (1.0 + exp((double)row[ab[1]] - row[ab[0]]))); /* P(A) / (P(A) + P(B)) */
    }
    free(lp);
    return rc;
}

/* md_pair_probs_ids over whole prompt strings (each encoded as lm_sft_encode_prompt). */
static int pair_probs(lm_infer *inf, const lm_tokenizer *tok, const char *const *prompts, int n, float *out, sd_err *err) {
    return score_prompts(md_pair_probs_ids, inf, tok, prompts, n, out, err);
}

typedef struct {
    const char *path;
    int k;                               /* context length (from the first line) */
    sd_vec prompts, rate, label, ctx, cand; /* char *, double, double, int32_t[JR_K_MAX], int32_t */
} heldout_reader;

static int add_heldout_line(void *ctx, const cJSON *o, long line, sd_err *err) {
    heldout_reader *h = ctx;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt"), *r = cJSON_GetObjectItemCaseSensitive(o, "pos_rate"),
                *l = cJSON_GetObjectItemCaseSensitive(o, "label"), *c = cJSON_GetObjectItemCaseSensitive(o, "ctx"),
                *d = cJSON_GetObjectItemCaseSensitive(o, "cand");
    if (!cJSON_IsString(p) || !cJSON_IsNumber(r) || !cJSON_IsNumber(l))
        return sd_fail(err, SD_ERR_DATA, "%s:%ld: expected {\"prompt\", \"pos_rate\", \"label\"}", h->path, line);
    int32_t tuple[JR_K_MAX] = {-1, -1, -1, -1}, cand = -1;
    int k = cJSON_IsArray(c) ? cJSON_GetArraySize(c) : 0;
    if (k >= 1 && k <= JR_K_MAX && cJSON_IsNumber(d) && (h->k == 0 || h->k == k)) { /* optional: the references need it */
        h->k = k;
        for (int i = 0; i < k; i++) tuple[i] = (int32_t)cJSON_GetArrayItem(c, i)->valueint;
        cand = (int32_t)d->valueint;
    }
    *(char **)sd_vec_push(&h->prompts) = sd_strdup(p->valuestring);
    *(double *)sd_vec_push(&h->rate) = r->valuedouble;
    *(double *)sd_vec_push(&h->label) = l->valuedouble;
    memcpy(sd_vec_push(&h->ctx), tuple, sizeof tuple);
    *(int32_t *)sd_vec_push(&h->cand) = cand;
    return SD_OK;
}

/* Spearman over the pairs where both x[i] and y[i] are finite; *m receives their number. */
static double spearman_finite(const double *x, const double *y, int n, int64_t *m) {
    double *a = sd_malloc(((size_t)n + 1) * sizeof *a), *b = sd_malloc(((size_t)n + 1) * sizeof *b);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) a[k] = x[i], b[k++] = y[i];
    double r = k >= 3 ? rs_spearman(a, b, (size_t)k) : NAN;
    free(a), free(b);
    if (m) *m = k;
    return r;
}

/* Reads a held-out JSONL file into h (init'd here; free with reader_free). */
static int reader_load(heldout_reader *h, const char *path, sd_err *err) {
    memset(h, 0, sizeof *h);
    h->path = path;
    sd_vec_init(&h->prompts, sizeof(char *));
    sd_vec_init(&h->rate, sizeof(double));
    sd_vec_init(&h->label, sizeof(double));
    sd_vec_init(&h->ctx, sizeof(int32_t) * JR_K_MAX);
    sd_vec_init(&h->cand, sizeof(int32_t));
    return lm_jsonl_each(path, add_heldout_line, h, err);
}

static void reader_free(heldout_reader *h) {
    for (size_t i = 0; i < h->prompts.len; i++) free(((char **)h->prompts.data)[i]);
    sd_vec_free(&h->prompts);
    sd_vec_free(&h->rate);
    sd_vec_free(&h->label);
    sd_vec_free(&h->ctx);
    sd_vec_free(&h->cand);
}

/* The model's expected score of every prompt of h into s[n] (doubles). */
static int reader_scores(lm_infer *inf, const lm_tokenizer *tok, const heldout_reader *h, double *s, sd_err *err) {
    int n = (int)h->prompts.len;
    float *f = sd_malloc(((size_t)n + 1) * sizeof *f);
    int rc = md_align_scores(inf, tok, (const char *const *)h->prompts.data, n, f, err);
    for (int i = 0; !rc && i < n; i++) s[i] = f[i];
    free(f);
    return rc;
}

/* md_tuple_refs of h's tuples: truth, half_a, half_b (n each, caller frees). */
static int reader_refs(const char *ws, const heldout_reader *h, double **truth, double **ha, double **hb, sd_err *err) {
    int n = (int)h->prompts.len, k = h->k;
    *truth = sd_malloc(((size_t)n + 1) * sizeof **truth);
    *ha = sd_malloc(((size_t)n + 1) * sizeof **ha);
    *hb = sd_malloc(((size_t)n + 1) * sizeof **hb);
    for (int i = 0; i < n; i++) (*truth)[i] = (*ha)[i] = (*hb)[i] = NAN;
    if (k < 1) return SD_OK; /* an old file without ctx/cand */
    int32_t *ctx = sd_malloc(((size_t)n * k + 1) * sizeof *ctx);
    for (int i = 0; i < n; i++)
        memcpy(ctx + (size_t)i * k, (const int32_t *)h->ctx.data + (size_t)i * JR_K_MAX, sizeof(int32_t) * k);
    int rc = md_tuple_refs(ws, k, ctx, h->cand.data, n, *truth, *ha, *hb, err);
    free(ctx);
    return rc;
}

int md_align_quality_of(const char *model_path, const char *heldout_path, const char *ws, md_align_quality *q,
                        sd_err *err) {
    memset(q, 0, sizeof *q);
    q->align_spearman = q->align_spearman_label = q->align_auc = NAN;
    q->spearman_truth = q->rate_spearman_truth = q->split_half = q->noise_ceiling = NAN;
    q->spearman_truth_sparse = q->rate_spearman_truth_sparse = NAN;
    lm_model m;
    lm_tokenizer *tok = NULL;
    int rc = lm_gguf_load(model_path, &m, &tok, err);
    if (rc) return rc;
    heldout_reader hr, pr;
    char *probe = ws ? sd_asprintf("%s/%s/%s", ws, CP_DIR, CP_ALIGN_PROBE) : NULL;
    int have_probe = probe && sd_file_exists(probe);
    lm_infer *inf = NULL;
    double *s = NULL, *ps = NULL, *truth = NULL, *ha = NULL, *hb = NULL, *pt = NULL, *pa = NULL, *pb = NULL;
    memset(&pr, 0, sizeof pr);
    rc = reader_load(&hr, heldout_path, err);
    if (!rc && have_probe) rc = reader_load(&pr, probe, err);
    int n = (int)hr.prompts.len, np = have_probe ? (int)pr.prompts.len : 0;
    if (!rc && n > 0 && !(inf = lm_infer_new(&m, 256, m.cfg.seq_len, err))) rc = err ? err->code : SD_ERR_USAGE;
    if (!rc && n > 0) {
        s = sd_malloc((size_t)n * sizeof *s);
        int *pos = sd_malloc((size_t)n * sizeof *pos);
        if (!(rc = reader_scores(inf, tok, &hr, s, err))) {
            /* "good" = label in the upper half of the score levels: labels are percentile ranks, so
             * this splits the tuples near their median even when many rates tie (e.g. at 1.0) */
            const double *lb = hr.label.data;
            for (int i = 0; i < n; i++) pos[i] = lb[i] >= CP_SCORE_LEVELS / 2;
            q->align_spearman = rs_spearman(s, hr.rate.data, (size_t)n);
            q->align_spearman_label = rs_spearman(s, hr.label.data, (size_t)n);
            q->align_auc = rs_auc(s, pos, (size_t)n);
            q->align_heldout = n;
        }
        free(pos);
    }
    if (!rc && n > 0 && ws && !(rc = reader_refs(ws, &hr, &truth, &ha, &hb, err))) {
        q->spearman_truth = spearman_finite(s, truth, n, &q->truth_tuples);
        q->rate_spearman_truth = spearman_finite(hr.rate.data, truth, n, NULL);
        q->split_half = spearman_finite(ha, hb, n, &q->split_tuples);
        /* Spearman-Brown: the reliability of the full label from that of its halves; a model
         * cannot correlate with a label better than the square root of the label's reliability */
        double r = q->split_half, sb = isfinite(r) && r > 0 ? 2 * r / (1 + r) : NAN;
        q->noise_ceiling = isfinite(sb) ? sqrt(sb) : NAN;
    }
    if (!rc && np > 0) {
        ps = sd_malloc((size_t)np * sizeof *ps);
        if (!(rc = reader_scores(inf, tok, &pr, ps, err)) && !(rc = reader_refs(ws, &pr, &pt, &pa, &pb, err))) {
            q->spearman_truth_sparse = spearman_finite(ps, pt, np, &q->sparse_tuples);
            q->rate_spearman_truth_sparse = spearman_finite(pr.rate.data, pt, np, NULL);
        }
    }
    free(s), free(ps), free(truth), free(ha), free(hb), free(pt), free(pa), free(pb), free(probe);
    lm_infer_free(inf);
    reader_free(&hr);
    if (have_probe) reader_free(&pr);
    lm_model_free(&m);
    tok_free(tok);
    return rc;
}

/* 1 when x orders i before j as y does, 0 when the opposite, 1/2 when x ties. */
static double agrees(double xi, double xj, double yi, double yj) {
    if (xi == xj) return 0.5;
    return (xi > xj) == (yi > yj) ? 1.0 : 0.0;
}

int md_pair_quality_of(const char *point_path, const char *pair_path, const char *heldout_path, const char *ws,
                       md_pair_quality *q, sd_err *err) {
    memset(q, 0, sizeof *q);
    q->acc_point = q->acc_pair = q->truth_acc_point = q->truth_acc_pair = NAN;
    tx_taxonomy tax = {0};
    heldout_reader hr;
    lm_model m = {0};
    lm_tokenizer *tok = NULL;
    lm_infer *inf = NULL;
    double *s = NULL, *truth = NULL, *ha = NULL, *hb = NULL;
    char *p_tax = sd_path_join(ws, TX_FILE), **prompts = NULL;
    float *pab = NULL;
    int *pi = NULL, *pj = NULL, np = 0;
    int rc = reader_load(&hr, heldout_path, err);
    int n = (int)hr.prompts.len, k = hr.k;
    if (!rc) rc = tx_load(&tax, p_tax, err);
    if (rc || n < 2 || k < 1) goto done;
    /* the pointwise model's scores and the references of every held-out tuple */
    s = sd_malloc((size_t)n * sizeof *s);
    if ((rc = lm_gguf_load(point_path, &m, &tok, err))) goto done;
    if (!(inf = lm_infer_new(&m, 256, m.cfg.seq_len, err))) rc = err ? err->code : SD_ERR_USAGE;
    if (!rc) rc = reader_scores(inf, tok, &hr, s, err);
    lm_infer_free(inf), inf = NULL;
    lm_model_free(&m), tok_free(tok), tok = NULL;
    if (rc || (rc = reader_refs(ws, &hr, &truth, &ha, &hb, err))) goto done;
    /* pairs of one context that labels or truth order; each asked in both orders */
    const int32_t *ctx = hr.ctx.data, *cand = hr.cand.data;
    const double *lab = hr.label.data;
    sd_vec vi, vj;
    sd_vec_init(&vi, sizeof(int));
    sd_vec_init(&vj, sizeof(int));
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (!memcmp(ctx + (size_t)i * JR_K_MAX, ctx + (size_t)j * JR_K_MAX, sizeof(int32_t) * JR_K_MAX) &&
                (lab[i] != lab[j] || (isfinite(truth[i]) && isfinite(truth[j]) && truth[i] != truth[j]))) {
                *(int *)sd_vec_push(&vi) = i;
                *(int *)sd_vec_push(&vj) = j;
            }
    np = (int)vi.len;
    pi = vi.data, pj = vj.data;
    prompts = sd_calloc((size_t)2 * np + 1, sizeof *prompts);
    pab = sd_malloc(((size_t)2 * np + 1) * sizeof *pab);
    char buf[4096];
    for (int x = 0; x < np; x++)
        for (int o = 0; o < 2; o++) {
            int a = o ? pj[x] : pi[x], b = o ? pi[x] : pj[x];
            cp_pair_prompt(&tax, ctx + (size_t)a * JR_K_MAX, k, cand[a], cand[b], buf, sizeof buf);
            prompts[2 * x + o] = sd_strdup(buf);
        }
    if ((rc = lm_gguf_load(pair_path, &m, &tok, err))) goto done;
    if (!(inf = lm_infer_new(&m, 256, m.cfg.seq_len, err))) rc = err ? err->code : SD_ERR_USAGE;
    if (!rc) rc = pair_probs(inf, tok, (const char *const *)prompts, 2 * np, pab, err);
    if (rc) goto done;
    double ap = 0, aq = 0, tp = 0, tq = 0;
    for (int x = 0; x < np; x++) {
        int i = pi[x], j = pj[x];
        double p = 0.5 * (pab[2 * x] + 1.0 - pab[2 * x + 1]); /* P(i beats j), both orders */
        if (lab[i] != lab[j]) {
            q->pairs++;
            ap += agrees(s[i], s[j], lab[i], lab[j]);
            aq += agrees(p, 0.5, lab[i], lab[j]);
        }
        if (isfinite(truth[i]) && isfinite(truth[j]) && truth[i] != truth[j]) {
            q->truth_pairs++;
            tp += agrees(s[i], s[j], truth[i], truth[j]);
            tq += agrees(p, 0.5, truth[i], truth[j]);
        }
    }
    if (q->pairs) q->acc_point = ap / (double)q->pairs, q->acc_pair = aq / (double)q->pairs;
    if (q->truth_pairs) q->truth_acc_point = tp / (double)q->truth_pairs, q->truth_acc_pair = tq / (double)q->truth_pairs;
done:
    for (int x = 0; prompts && x < 2 * np; x++) free(prompts[x]);
    free(prompts), free(pab), free(pi), free(pj);
    free(s), free(truth), free(ha), free(hb), free(p_tax);
    lm_infer_free(inf);
    lm_model_free(&m);
    tok_free(tok);
    tx_free(&tax);
    reader_free(&hr);
    return rc;
}

/* ---------------------------------------------------------------- the stage */

static int write_report(const char *path, const md_opts *o, const md_report *r, sd_err *err) {
    cJSON *j = cJSON_CreateObject();
    cJSON *c = cJSON_AddObjectToObject(j, "config");
    cJSON_AddNumberToObject(c, "dim", o->cfg.dim);
    cJSON_AddNumberToObject(c, "layers", o->cfg.n_layers);
    cJSON_AddNumberToObject(c, "heads", o->cfg.n_heads);
    cJSON_AddNumberToObject(c, "kv_heads", o->cfg.n_kv_heads);
    cJSON_AddNumberToObject(c, "hidden", o->cfg.hidden_dim);
    cJSON_AddNumberToObject(c, "seq_len", o->cfg.seq_len);
    cJSON_AddNumberToObject(c, "vocab", o->vocab);
    cJSON_AddNumberToObject(c, "lora_rank", o->lora_rank);
    cJSON_AddNumberToObject(j, "params", (double)r->n_params);
    cJSON_AddNumberToObject(j, "pretrain_loss", r->pretrain_loss);
    cJSON_AddNumberToObject(j, "novelty_loss", r->novelty_loss);
    cJSON_AddNumberToObject(j, "align_loss", r->align_loss);
    if (o->baseline) cJSON_AddNumberToObject(j, "single_loss", r->single_loss);
    cJSON_AddNumberToObject(j, "pretrain_seconds", r->pretrain_s);
    cJSON_AddNumberToObject(j, "novelty_seconds", r->novelty_s);
    cJSON_AddNumberToObject(j, "align_seconds", r->align_s);
    cJSON_AddNumberToObject(j, "retrieval_seconds", r->retrieval_s);
    cJSON_AddNumberToObject(j, "pretrain_tokens_per_s", r->tokens_per_s);
    cJSON_AddNumberToObject(j, "novelty_examples", (double)r->corpus.novelty_examples);
    cJSON_AddNumberToObject(j, "align_train", (double)r->corpus.align_train);
    cJSON_AddNumberToObject(j, "align_heldout", (double)r->corpus.align_heldout);
    if (o->corpus.pairwise) { /* the pairwise alternative beside the pointwise model (issue 14) */
        const md_pair_quality *pq = &r->pair_quality;
        cJSON *pw = cJSON_AddObjectToObject(j, "pairwise");
        cJSON_AddNumberToObject(pw, "loss", r->pairwise_loss);
        cJSON_AddNumberToObject(pw, "seconds", r->pairwise_s);
        cJSON_AddNumberToObject(pw, "pointwise_seconds", r->align_s);
        cJSON_AddNumberToObject(pw, "examples", (double)r->corpus.pairwise_examples);
        cJSON_AddNumberToObject(pw, "heldout_pairs", (double)pq->pairs);
        cJSON_AddNumberToObject(pw, "truth_pairs", (double)pq->truth_pairs);
        double v[4] = {pq->acc_point, pq->acc_pair, pq->truth_acc_point, pq->truth_acc_pair};
        const char *k[4] = {"pointwise_accuracy", "pairwise_accuracy", "pointwise_truth_accuracy", "pairwise_truth_accuracy"};
        for (int i = 0; i < 4; i++) cJSON_AddItemToObject(pw, k[i], isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull());
    }
    cJSON *q = cJSON_AddObjectToObject(j, "align_quality");
    /* NaN is not JSON: a figure that could not be computed is null */
    const md_align_quality *aq = &r->quality;
    double v[9] = {aq->align_spearman, aq->align_spearman_label, aq->align_auc, aq->spearman_truth,
                   aq->rate_spearman_truth, aq->split_half, aq->noise_ceiling, aq->spearman_truth_sparse,
                   aq->rate_spearman_truth_sparse};
    const char *k[9] = {"spearman_pos_rate", "spearman_label", "auc_upper_half", "spearman_truth",
                        "pos_rate_spearman_truth", "split_half_spearman", "noise_ceiling", "sparse_spearman_truth",
                        "sparse_pos_rate_spearman_truth"};
    for (int i = 0; i < 9; i++) cJSON_AddItemToObject(q, k[i], isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull());
    cJSON_AddNumberToObject(q, "heldout_tuples", (double)r->quality.align_heldout);
    cJSON_AddNumberToObject(q, "truth_tuples", (double)aq->truth_tuples);
    cJSON_AddNumberToObject(q, "split_half_tuples", (double)aq->split_tuples);
    cJSON_AddNumberToObject(q, "sparse_tuples", (double)aq->sparse_tuples);
    char *s = cJSON_Print(j);
    int rc = sd_write_file_atomic(path, s, strlen(s), err);
    free(s);
    cJSON_Delete(j);
    return rc;
}

int md_train(const char *ws, const md_opts *o, md_report *r, sd_err *err) {
    memset(r, 0, sizeof *r);
    /* refuse a bad model shape before minutes of corpus building and tokenizer training */
    lm_config want = o->cfg;
    want.vocab_size = o->vocab;
    int rc = o->base ? SD_OK : lm_config_check(&want, err);
    if (!rc && !o->base && (o->vocab < 256 + TOK_N_SPECIAL || o->vocab > 65536))
        rc = sd_fail(err, SD_ERR_USAGE, "--vocab %d must be in %d..65536", o->vocab, 256 + TOK_N_SPECIAL);
    if (!rc && (o->batch < 1 || o->pretrain_steps < 0 || o->novelty_steps < 1 || o->align_steps < 1))
        rc = sd_fail(err, SD_ERR_USAGE, "--batch and the fine-tuning steps must be positive, --pretrain-steps >= 0");
    if (!rc && (!(o->lr > 0) || !(o->sft_lr > 0) || o->lora_rank < 0))
        rc = sd_fail(err, SD_ERR_USAGE, "--lr and --sft-lr must be positive and --lora >= 0");
    if (!rc && !o->base && o->cfg.seq_len < 32)
        rc = sd_fail(err, SD_ERR_USAGE, "--seq-len %d is too short for the prompts (context and candidate "
                                        "descriptions need about 32 tokens)", o->cfg.seq_len);
    if (!rc && o->base && !sd_file_exists(o->base)) rc = sd_fail(err, SD_ERR_IO, "%s: no such base model", o->base);
    if (rc) return rc;
    const char *const reads[2] = {TX_FILE, JR_FILE};
    if ((rc = mf_check(ws, reads, 2, err))) return rc; /* built from an older dataset */
    rc = cp_build_all(ws, &o->corpus, &r->corpus, err);
    if (rc) return rc;
    /* every model is written into a fresh folder that replaces ws/models only when the whole
     * stage succeeded: a failed run leaves the previous models untouched, never a mix */
    char *final_dir = sd_path_join(ws, MD_DIR), *mdir = sd_asprintf("%s.new.%ld", final_dir, (long)getpid());
    char *cdir = sd_path_join(ws, CP_DIR);
    char *pre = sd_path_join(cdir, CP_PRETRAIN), *nov = sd_path_join(cdir, CP_NOVELTY),
         *ali = sd_path_join(cdir, CP_ALIGN), *held = sd_path_join(cdir, CP_ALIGN_HELDOUT),
         *bas = sd_path_join(cdir, CP_BASELINE), *pai = sd_path_join(cdir, CP_ALIGN_PAIRWISE);
    char *text = NULL, *base_path = sd_path_join(mdir, MD_BASE), *align_path = sd_path_join(mdir, MD_ALIGN);
    lm_tokenizer *tok = NULL;
    lm_model base = {0};
    lm_examples ex;
    lm_examples_init(&ex);
    size_t len = 0;
    if ((rc = sd_remove_tree(mdir, err)) || (rc = sd_mkdir_p(mdir, err)) || (rc = sd_read_file(pre, &text, &len, err)))
        goto done;

    double t0 = sd_now();
    lm_config cfg = o->cfg;
    if (o->base) {
        /* a given base (e.g. a pretrained Llama-family GGUF): its tokenizer and sizes are kept;
         * pretraining on the corpus, if any steps are asked, continues from it */
        sd_log("starting from the base model %s", o->base);
        /* with LoRA fine-tunes and no pretraining the base stays in its encoding (QLoRA: F16 or
         * quantized matrices never decoded); any training of the base itself decodes it to F32 */
        int keep = o->pretrain_steps == 0 && o->lora_rank > 0;
        if ((rc = (keep ? lm_gguf_load_quant : lm_gguf_load)(o->base, &base, &tok, err))) goto done;
        if (tok_eos(tok) < 0) {
            rc = sd_fail(err, SD_ERR_DATA, "%s: the tokenizer has no end-of-sequence token to end answers with", o->base);
            goto done;
        }
        cfg = base.cfg;
    } else {
        sd_log("training a %d-token BPE vocabulary on %zu bytes", o->vocab, len);
        if ((rc = tok_train(text, len, o->vocab, &tok, err))) goto done;
        cfg.vocab_size = tok_vocab_size(tok);
        if ((rc = lm_model_init(&base, &cfg, o->seed, err))) goto done;
    }
    r->n_params = (int64_t)lm_param_count(&base.cfg); /* all of them, also for a quantized base */
    if (o->pretrain_steps > 0) {
        pretrain_examples(tok, text, len, cfg.seq_len, &ex);
        sd_log("pretraining the base model: %lld parameters, %zu windows of %d tokens, %d steps",
               (long long)r->n_params, lm_examples_count(&ex), cfg.seq_len + 1, o->pretrain_steps);
        lm_train_opts to;
        md_opts full = *o;
        full.lora_rank = 0; /* the base is always trained in full */
        train_opts(&to, &full, o->pretrain_steps, o->lr, cfg.seq_len, o->seed);
        if ((rc = run_training(&base, &ex, &to, pad_id(tok), "pretrain", NULL, &r->pretrain_loss, &r->pretrain_s,
                               &r->tokens_per_s, err)))
            goto done;
    }
    r->pretrain_s = sd_now() - t0;
    if ((rc = lm_gguf_save_as(base_path, &base, tok, "serendip-base", base.qm ? base.qm[0].type : GGUF_TENSOR_F32, err)))
        goto done;

    if ((rc = finetune(mdir, &base, tok, o, nov, MD_NOVELTY, "novelty", o->novelty_steps, &r->novelty_loss,
                       &r->novelty_s, err)))
        goto done;
    if ((rc = finetune(mdir, &base, tok, o, ali, MD_ALIGN, "align", o->align_steps, &r->align_loss, &r->align_s, err)))
        goto done;
    if (o->corpus.pairwise && r->corpus.pairwise_examples > 0 &&
        (rc = finetune(mdir, &base, tok, o, pai, MD_ALIGN_PAIRWISE, "pairwise", o->align_steps, &r->pairwise_loss,
                       &r->pairwise_s, err)))
        goto done;
    if (o->baseline && (rc = finetune(mdir, &base, tok, o, bas, MD_SINGLE, "single", o->novelty_steps,
                                      &r->single_loss, &r->single_s, err)))
        goto done;
    /* the low level of the plan: the sequential item recommender restricted to a cluster */
    double t_rt = sd_now();
    if (!o->no_retrieval && (rc = rt_train(ws, NULL, err))) goto done;
    r->retrieval_s = sd_now() - t_rt;
    if (sd_file_exists(held) && r->corpus.align_heldout > 0) {
        if ((rc = md_align_quality_of(align_path, held, ws, &r->quality, err))) goto done;
        char *pair_path = sd_path_join(mdir, MD_ALIGN_PAIRWISE);
        if (o->corpus.pairwise && sd_file_exists(pair_path))
            rc = md_pair_quality_of(align_path, pair_path, held, ws, &r->pair_quality, err);
        free(pair_path);
        if (rc) goto done;
    }
    char *rep = sd_path_join(mdir, MD_REPORT);
    rc = write_report(rep, o, r, err);
    free(rep);
    if (!rc) rc = sd_replace_dir(mdir, final_dir, err);
    /* the models were built from the corpora, themselves from these (manifest.h) */
    const char *const from[4] = {DS_FILE, DS_SPLIT_FILE, TX_FILE, JR_FILE};
    const char *const made[4] = {MD_DIR "/" MD_BASE, MD_DIR "/" MD_NOVELTY, MD_DIR "/" MD_ALIGN, MD_DIR "/" MD_SINGLE};
    for (int i = 0; i < 3 + !!o->baseline && !rc; i++) rc = mf_record(ws, made[i], "train", from, 4, err);
    if (!rc && o->corpus.pairwise && r->pairwise_s > 0)
        rc = mf_record(ws, MD_DIR "/" MD_ALIGN_PAIRWISE, "train", from, 4, err);
done:
    if (rc) sd_remove_tree(mdir, NULL);
    lm_examples_free(&ex);
    lm_model_free(&base);
    tok_free(tok);
    free(text);
    free(cdir), free(mdir), free(final_dir), free(pre), free(nov), free(ali), free(held), free(bas), free(pai), free(base_path), free(align_path);
    return rc;
}
