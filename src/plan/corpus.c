/* corpus.c - the texts the language models learn from: pretraining text, diversified novelty
 * examples, pointwise (and pairwise) alignment examples from collective feedback, and the
 * single-model baseline's examples; plus THE prompt format (see corpus.h). Formats and the
 * reasons for each choice are in docs/formats-journeys.md ("Corpora").
 *
 * JSON lines are written with cJSON (escaping); the rest is plain text. */
#include "serendip/corpus.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the prompt format */

/* Appends s to buf at *len; returns 0, or -1 when it does not fit (cap includes the NUL). */
static int put(char *buf, size_t cap, size_t *len, const char *s) {
    size_t n = strlen(s);
    if (*len + n + 1 > cap) return -1;
    memcpy(buf + *len, s, n + 1);
    *len += n;
    return 0;
}

static int put_ctx(const tx_taxonomy *tax, const int32_t *ctx, int k, char *buf, size_t cap, size_t *len) {
    if (k < 1 || put(buf, cap, len, CP_TOK_CTX)) return -1;
    for (int i = 0; i < k; i++) {
        if (ctx[i] < 0 || ctx[i] >= tax->n_clusters) return -1;
        if ((i && put(buf, cap, len, CP_TOK_SEP)) || put(buf, cap, len, tax->desc[ctx[i]])) return -1;
    }
    return put(buf, cap, len, CP_TOK_ANS);
}

int cp_novelty_prompt(const tx_taxonomy *tax, const int32_t *ctx, int k, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    if (put_ctx(tax, ctx, k, buf, cap, &len)) return -1;
    return (int)len;
}

int cp_align_prompt(const tx_taxonomy *tax, const int32_t *ctx, int k, int32_t cand, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    if (cand < 0 || cand >= tax->n_clusters || put_ctx(tax, ctx, k, buf, cap, &len) ||
        put(buf, cap, &len, tax->desc[cand]) || put(buf, cap, &len, CP_TOK_SCORE))
        return -1;
    return (int)len;
}

int cp_pair_prompt(const tx_taxonomy *tax, const int32_t *ctx, int k, int32_t a, int32_t b, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    if (a < 0 || a >= tax->n_clusters || b < 0 || b >= tax->n_clusters || put_ctx(tax, ctx, k, buf, cap, &len) ||
        put(buf, cap, &len, tax->desc[a]) || put(buf, cap, &len, CP_TOK_SEP) || put(buf, cap, &len, tax->desc[b]) ||
        put(buf, cap, &len, CP_TOK_SCORE))
        return -1;
    return (int)len;
}

int cp_score_digit(double x) {
    if (!(x > 0)) return 0; /* also NaN */
    int d = (int)floor(x * CP_SCORE_LEVELS);
    return d >= CP_SCORE_LEVELS ? CP_SCORE_LEVELS - 1 : d;
}

double cp_digit_value(int d) { return (d + 0.5) / CP_SCORE_LEVELS; }

void cp_opts_default(cp_opts *o) {
    *o = (cp_opts){
        .pretrain_bytes = 1000000,
        .novelty_examples = 4000,
        .per_target_cap = 0,
        .min_users = 3,
        .train_min_users = 2,
        .label_shrink = 10,
        .heldout_pct = 10,
        .pairwise = 0,
        .pairwise_examples = 4000,
        .baseline_quantile = 0.75,
        .seed = 1,
    };
}

/* ---------------------------------------------------------------- helpers */

#define PROMPT_CAP 65536 /* bytes; descriptions are a few words, so K + 1 of them fit easily */

static double entropy_bits(const int64_t *count, int m) {
    int64_t total = 0;
    for (int i = 0; i < m; i++) total += count[i];
    double h = 0;
    for (int i = 0; i < m; i++)
        if (count[i]) {
            double p = (double)count[i] / (double)total;
            h -= p * log2(p);
        }
    return h;
}

static int distinct_of(const int64_t *count, int m) {
    int n = 0;
    for (int i = 0; i < m; i++) n += count[i] > 0;
    return n;
}

/* Writes one JSON object as a line and frees it. */
static void put_json_line(FILE *f, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (!s) sd_oom(0);
    fputs(s, f);
    fputc('\n', f);
    free(s);
    cJSON_Delete(o);
}

static cJSON *ctx_array(const int32_t *ctx, int k) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < k; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ctx[i]));
    return a;
}

/* Held-out membership of a tuple: a hash of (ctx, cand), stable across runs and seeds. */
static int is_heldout(const jr_feedback *f, int pct) {
    int32_t key[JR_K_MAX + 1];
    memcpy(key, f->ctx, sizeof f->ctx);
    key[JR_K_MAX] = f->cand;
    return (int)(sd_hash64(key, sizeof key, SD_HASH_SEED) % 100) < pct;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Mid-rank percentile of x in sorted[0..n): (#less + (#equal - 1) / 2) / (n - 1), in [0, 1];
 * 0.5 when n == 1. Ties share one value, so equal rates always get equal labels. */
static double percentile(const double *sorted, int64_t n, double x) {
    if (n <= 1) return 0.5;
    int64_t lo = 0, hi = n;
    while (lo < hi) { /* first >= x */
        int64_t mid = (lo + hi) / 2;
        if (sorted[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    int64_t less = lo;
    hi = n;
    while (lo < hi) { /* first > x */
        int64_t mid = (lo + hi) / 2;
        if (sorted[mid] <= x) lo = mid + 1;
        else hi = mid;
    }
    int64_t equal = lo - less;
    return ((double)less + (double)(equal - 1) / 2.0) / (double)(n - 1);
}

/* Appends the text of item `it` as "title (tag, tag)" to f. */
static void put_item(FILE *f, const ds_dataset *ds, int32_t it) {
    fputs(ds_item_title(ds, it), f);
    const char *tags = ds_item_tags(ds, it);
    if (*tags) {
        fputs(" (", f);
        for (const char *s = tags; *s; s++) {
            if (*s == '|') fputs(", ", f);
            else fputc(*s, f);
        }
        fputc(')', f);
    }
}

/* ---------------------------------------------------------------- pretrain.txt */

#define PRETRAIN_ITEMS_PER_CLUSTER 6 /* items listed under each description: a few lines per cluster */
#define PRETRAIN_JOURNEY_CHUNK 8     /* clusters per journey line */

/* Builds the units (one cluster block, one journey chunk, one transition in prompt format) as
 * strings, keeps every cluster block and fills the byte budget with journey units in a seeded
 * random order (skipping those that would overflow it), then writes all kept units shuffled. */
static int build_pretrain(const char *path, const ds_dataset *ds, const tx_taxonomy *tax, const jr_journeys *j,
                          const cp_opts *o, cp_stats *st, sd_err *err) {
    sd_rng rng;
    sd_rng_seed(&rng, o->seed ^ 0x70726574ULL);
    sd_vec units; /* char * */
    sd_vec_init(&units, sizeof(char *));
    size_t bytes = 0;
    char *mem;
    size_t memlen;
    for (int32_t c = 0; c < tax->n_clusters; c++) {
        FILE *f = open_memstream(&mem, &memlen);
        if (!f) sd_oom(0);
        fprintf(f, "%s", tax->desc[c]);
        if (tax->top_desc && tax->parent && tax->parent[c] >= 0 && tax->parent[c] < tax->n_top)
            fprintf(f, " | %s", tax->top_desc[tax->parent[c]]);
        fputc('\n', f);
        if (ds && tax->members && tax->member_off) {
            int64_t b = tax->member_off[c], e = tax->member_off[c + 1];
            for (int64_t i = b; i < e && i - b < PRETRAIN_ITEMS_PER_CLUSTER; i++) {
                int32_t it = tax->members[i];
                if (it < 0 || it >= ds->n_items) continue;
                fprintf(f, "%s: ", tax->desc[c]);
                put_item(f, ds, it);
                fputc('\n', f);
            }
        }
        fclose(f);
        bytes += memlen;
        *(char **)sd_vec_push(&units) = mem;
    }
    size_t cluster_bytes = bytes;

    /* candidate journey units: chunks of journeys and transitions in the prompt format */
    sd_vec extra;
    sd_vec_init(&extra, sizeof(char *));
    for (int64_t u = 0; u < j->n_users; u++) {
        int64_t b = j->journey_off[u], e = j->journey_off[u + 1];
        for (int64_t s = b; s + 1 < e; s += PRETRAIN_JOURNEY_CHUNK) {
            FILE *f = open_memstream(&mem, &memlen);
            if (!f) sd_oom(0);
            for (int64_t i = s; i < e && i < s + PRETRAIN_JOURNEY_CHUNK + 1; i++) /* chunks overlap by one */
                fprintf(f, "%s%s", i > s ? " > " : "", tax->desc[j->journey[i]]);
            fputc('\n', f);
            fclose(f);
            *(char **)sd_vec_push(&extra) = mem;
        }
    }
    char *prompt = sd_malloc(PROMPT_CAP);
    for (int64_t i = 0; i < j->n_transitions; i++) {
        const jr_transition *t = &j->transitions[i];
        if (cp_novelty_prompt(tax, t->ctx, j->k, prompt, PROMPT_CAP) < 0) continue;
        char *s = sd_asprintf("%s%s\n", prompt, tax->desc[t->next]);
        *(char **)sd_vec_push(&extra) = s;
    }
    free(prompt);
    /* seeded shuffle of the candidates, then take while under budget */
    char **ex = extra.data;
    for (size_t i = extra.len; i > 1; i--) {
        size_t r = sd_rng_below(&rng, (uint32_t)i);
        char *x = ex[i - 1];
        ex[i - 1] = ex[r];
        ex[r] = x;
    }
    for (size_t i = 0; i < extra.len; i++) {
        size_t n = strlen(ex[i]);
        if ((int64_t)(bytes + n) > o->pretrain_bytes) {
            free(ex[i]);
            continue;
        }
        bytes += n;
        *(char **)sd_vec_push(&units) = ex[i];
    }
    sd_vec_free(&extra);

    char **us = units.data;
    for (size_t k = units.len; k > 1; k--) {
        size_t r = sd_rng_below(&rng, (uint32_t)k);
        char *x = us[k - 1];
        us[k - 1] = us[r];
        us[r] = x;
    }
    sd_afile a;
    int rc = sd_afile_open(&a, path, err);
    if (rc == SD_OK) {
        int64_t lines = 0;
        for (size_t k = 0; k < units.len; k++) {
            fputs(us[k], a.f);
            for (const char *s = us[k]; *s; s++) lines += *s == '\n';
        }
        rc = sd_afile_commit(&a, err);
        st->pretrain_bytes = (int64_t)bytes;
        st->pretrain_lines = lines;
    }
    for (size_t k = 0; k < units.len; k++) free(us[k]);
    sd_vec_free(&units);
    if (rc == SD_OK && (int64_t)cluster_bytes > o->pretrain_bytes)
        sd_log("corpus: the cluster blocks alone take %zu bytes, more than the %lld asked for (all are kept)",
               cluster_bytes, (long long)o->pretrain_bytes);
    return rc;
}

/* ---------------------------------------------------------------- novelty.jsonl */

/* The smallest cap c with sum_t min(count_t, c) >= want (water-filling): the most even
 * distribution of targets a set of that size can have. */
static int64_t water_fill_cap(const int64_t *count, int m, int64_t want) {
    int64_t lo = 1, hi = 1;
    for (int i = 0; i < m; i++) hi = count[i] > hi ? count[i] : hi;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2, s = 0;
        for (int i = 0; i < m; i++) s += count[i] < mid ? count[i] : mid;
        if (s >= want) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static int build_novelty(const char *path, const tx_taxonomy *tax, const jr_journeys *j, const cp_opts *o, cp_stats *st,
                         sd_err *err) {
    const int m = tax->n_clusters;
    int64_t *before = sd_calloc((size_t)m, sizeof *before), *after = sd_calloc((size_t)m, sizeof *after);
    int64_t *idx = sd_malloc(((size_t)j->n_novel + 1) * sizeof *idx);
    int64_t n = 0;
    for (int64_t i = 0; i < j->n_transitions; i++)
        if (j->transitions[i].novel) {
            idx[n++] = i;
            before[j->transitions[i].next]++;
        }
    st->novel_transitions = n;
    st->target_entropy_before = entropy_bits(before, m);
    st->targets_before = distinct_of(before, m);
    int64_t cap = o->per_target_cap > 0 ? o->per_target_cap : water_fill_cap(before, m, o->novelty_examples);
    sd_rng rng;
    sd_rng_seed(&rng, o->seed ^ 0x6e6f76ULL);
    for (int64_t i = n; i > 1; i--) {
        int64_t r = (int64_t)(sd_rng_u64(&rng) % (uint64_t)i);
        int64_t x = idx[i - 1];
        idx[i - 1] = idx[r];
        idx[r] = x;
    }
    sd_afile a;
    int rc = sd_afile_open(&a, path, err);
    if (rc) goto done;
    char *prompt = sd_malloc(PROMPT_CAP);
    int64_t written = 0;
    for (int64_t i = 0; i < n && written < o->novelty_examples; i++) {
        const jr_transition *t = &j->transitions[idx[i]];
        if (after[t->next] >= cap) continue;
        if (cp_novelty_prompt(tax, t->ctx, j->k, prompt, PROMPT_CAP) < 0) continue;
        after[t->next]++;
        written++;
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "prompt", prompt);
        cJSON_AddStringToObject(obj, "answer", tax->desc[t->next]);
        cJSON_AddItemToObject(obj, "ctx", ctx_array(t->ctx, j->k));
        cJSON_AddNumberToObject(obj, "target", t->next);
        put_json_line(a.f, obj);
    }
    free(prompt);
    rc = sd_afile_commit(&a, err);
    st->novelty_examples = written;
    st->target_entropy_after = entropy_bits(after, m);
    st->targets_after = distinct_of(after, m);
done:
    free(before);
    free(after);
    free(idx);
    return rc;
}

/* ---------------------------------------------------------------- alignment, pairwise, baseline */

typedef struct {
    const jr_feedback *f;
    int label;
    int heldout;
} kept_tuple;

void cp_labeler_init(cp_labeler *l, const jr_journeys *j, const cp_opts *o) {
    const int32_t M = j->n_clusters, K = j->k;
    memset(l, 0, sizeof *l);
    l->o = *o;
    l->M = M;
    l->K = K;
    l->last = sd_calloc(2 * (size_t)M * (size_t)M + 1, sizeof *l->last);
    int64_t e = 0, p = 0;
    for (int64_t i = 0; i < j->n_feedback; i++) { /* held-out tuples never inform a label */
        const jr_feedback *f = &j->feedback[i];
        if (is_heldout(f, o->heldout_pct)) continue;
        e += f->exposures, p += f->positives;
        int64_t *x = l->last + 2 * ((size_t)f->ctx[K - 1] * M + (size_t)f->cand);
        x[0] += f->exposures, x[1] += f->positives;
    }
    l->mu = e ? (double)p / (double)e : 0.5;
    const int min = o->train_min_users < o->min_users ? o->train_min_users : o->min_users;
    l->basis = sd_malloc(((size_t)j->n_feedback + 1) * sizeof *l->basis);
    for (int64_t i = 0; i < j->n_feedback; i++)
        if (j->feedback[i].users >= min) l->basis[l->n_basis++] = cp_labeler_rate(l, &j->feedback[i]);
    qsort(l->basis, (size_t)l->n_basis, sizeof *l->basis, cmp_double);
}

double cp_labeler_rate(const cp_labeler *l, const jr_feedback *f) {
    const double m = l->o.label_shrink;
    const int64_t *x = l->last + 2 * ((size_t)f->ctx[l->K - 1] * l->M + (size_t)f->cand);
    int64_t le = x[0], lp = x[1];
    if (!is_heldout(f, l->o.heldout_pct)) le -= f->exposures, lp -= f->positives; /* not its own evidence twice */
    double prior = le + m > 0 ? ((double)lp + m * l->mu) / ((double)le + m) : l->mu;
    return f->exposures + m > 0 ? ((double)f->positives + m * prior) / ((double)f->exposures + m) : prior;
}

int cp_labeler_digit(const cp_labeler *l, const jr_feedback *f) {
    return cp_score_digit(percentile(l->basis, l->n_basis, cp_labeler_rate(l, f)));
}

void cp_labeler_free(cp_labeler *l) {
    free(l->last);
    free(l->basis);
    memset(l, 0, sizeof *l);
}

static int build_align(const char *dir, const tx_taxonomy *tax, const jr_journeys *j, const cp_opts *o, cp_stats *st,
                       sd_err *err) {
    st->feedback_tuples = j->n_feedback;
    kept_tuple *kt = sd_malloc(((size_t)j->n_feedback + 1) * sizeof *kt);
    cp_labeler lab;
    cp_labeler_init(&lab, j, o);
    int64_t nk = 0;
    /* kept: train tuples backed by >= train_min_users users, held-out ones by >= min_users (the
     * sparser held-out tuples go to the probe below) */
    for (int64_t i = 0; i < j->n_feedback; i++) {
        const jr_feedback *f = &j->feedback[i];
        int held = is_heldout(f, o->heldout_pct);
        if (f->users < (held ? o->min_users : o->train_min_users)) continue;
        kt[nk].f = f;
        kt[nk].heldout = held;
        kt[nk].label = cp_labeler_digit(&lab, f);
        st->label_hist[kt[nk].label]++;
        nk++;
    }
    st->align_kept = nk;
    /* the single model's tuples: pooled rate in the upper baseline_quantile of the kept ones */
    double *rates = sd_malloc(((size_t)nk + 1) * sizeof *rates);
    for (int64_t i = 0; i < nk; i++) rates[i] = kt[i].f->pos_rate;
    qsort(rates, (size_t)nk, sizeof *rates, cmp_double);
    double q = nk ? rates[(int64_t)floor(o->baseline_quantile * (double)(nk - 1))] : 0;

    char *p_train = sd_path_join(dir, CP_ALIGN), *p_held = sd_path_join(dir, CP_ALIGN_HELDOUT),
         *p_base = sd_path_join(dir, CP_BASELINE), *p_pair = sd_path_join(dir, CP_ALIGN_PAIRWISE),
         *p_probe = sd_path_join(dir, CP_ALIGN_PROBE);
    char *prompt = sd_malloc(PROMPT_CAP);
    sd_afile at = {0}, ah = {0}, ab = {0}, ap = {0}, aq = {0};
    int rc;
    if ((rc = sd_afile_open(&at, p_train, err)) || (rc = sd_afile_open(&ah, p_held, err)) ||
        (rc = sd_afile_open(&ab, p_base, err)))
        goto done;
    /* a seeded order of the train tuples (the file is read in order by the trainer) */
    int64_t *order = sd_malloc(((size_t)nk + 1) * sizeof *order);
    for (int64_t i = 0; i < nk; i++) order[i] = i;
    sd_rng rng;
    sd_rng_seed(&rng, o->seed ^ 0x616c6eULL);
    for (int64_t i = nk; i > 1; i--) {
        int64_t r = (int64_t)(sd_rng_u64(&rng) % (uint64_t)i);
        int64_t x = order[i - 1];
        order[i - 1] = order[r];
        order[r] = x;
    }
    for (int64_t oi = 0; oi < nk; oi++) {
        const kept_tuple *t = &kt[order[oi]];
        if (cp_align_prompt(tax, t->f->ctx, j->k, t->f->cand, prompt, PROMPT_CAP) < 0) continue;
        char digit[2] = {(char)('0' + t->label), 0};
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "prompt", prompt);
        cJSON_AddStringToObject(obj, "answer", digit);
        cJSON_AddItemToObject(obj, "ctx", ctx_array(t->f->ctx, j->k));
        cJSON_AddNumberToObject(obj, "cand", t->f->cand);
        cJSON_AddNumberToObject(obj, "users", t->f->users);
        cJSON_AddNumberToObject(obj, "exposures", (double)t->f->exposures);
        cJSON_AddNumberToObject(obj, "pos_rate", round((double)t->f->pos_rate * 1e6) / 1e6); /* float noise off */
        cJSON_AddNumberToObject(obj, "label", t->label);
        put_json_line(t->heldout ? ah.f : at.f, obj);
        if (t->heldout) st->align_heldout++;
        else st->align_train++;
        if (!t->heldout && t->f->pos_rate >= q && cp_novelty_prompt(tax, t->f->ctx, j->k, prompt, PROMPT_CAP) >= 0) {
            obj = cJSON_CreateObject();
            cJSON_AddStringToObject(obj, "prompt", prompt);
            cJSON_AddStringToObject(obj, "answer", tax->desc[t->f->cand]);
            cJSON_AddItemToObject(obj, "ctx", ctx_array(t->f->ctx, j->k));
            cJSON_AddNumberToObject(obj, "target", t->f->cand);
            put_json_line(ab.f, obj);
            st->baseline_examples++;
        }
    }
    free(order);

    if (o->pairwise) {
        if ((rc = sd_afile_open(&ap, p_pair, err))) goto done;
        /* kt is sorted by context (feedback order): pairs within one context's train tuples with
         * different labels, visited in a seeded order of contexts */
        sd_vec groups; /* int64 start index of each context's run */
        sd_vec_init(&groups, sizeof(int64_t));
        for (int64_t i = 0; i < nk; i++)
            if (i == 0 || memcmp(kt[i].f->ctx, kt[i - 1].f->ctx, sizeof kt[i].f->ctx) != 0) *(int64_t *)sd_vec_push(&groups) = i;
        int64_t ng = (int64_t)groups.len, *gs = groups.data;
        int64_t written = 0;
        for (int round = 0; round < 8 && written < o->pairwise_examples; round++) {
            for (int64_t g = 0; g < ng && written < o->pairwise_examples; g++) {
                int64_t b = gs[g], e = g + 1 < ng ? gs[g + 1] : nk;
                if (e - b < 2) continue;
                int64_t x = b + (int64_t)sd_rng_below(&rng, (uint32_t)(e - b)), y = b + (int64_t)sd_rng_below(&rng, (uint32_t)(e - b));
                if (kt[x].heldout || kt[y].heldout || kt[x].label == kt[y].label) continue;
                if (cp_pair_prompt(tax, kt[x].f->ctx, j->k, kt[x].f->cand, kt[y].f->cand, prompt, PROMPT_CAP) < 0) continue;
                cJSON *obj = cJSON_CreateObject();
                cJSON_AddStringToObject(obj, "prompt", prompt);
                cJSON_AddStringToObject(obj, "answer", kt[x].label > kt[y].label ? "A" : "B");
                cJSON_AddItemToObject(obj, "ctx", ctx_array(kt[x].f->ctx, j->k));
                cJSON_AddNumberToObject(obj, "a", kt[x].f->cand);
                cJSON_AddNumberToObject(obj, "b", kt[y].f->cand);
                put_json_line(ap.f, obj);
                written++;
            }
        }
        sd_vec_free(&groups);
        st->pairwise_examples = written;
        if ((rc = sd_afile_commit(&ap, err))) goto done;
    }
    /* the probe: held-out tuples too sparse to label (users < min_users), for judging the model
     * against the truth exactly where counting has least to go on (md_align_quality_of) */
    if ((rc = sd_afile_open(&aq, p_probe, err))) goto done;
    for (int64_t i = 0; i < j->n_feedback; i++) {
        const jr_feedback *f = &j->feedback[i];
        if (f->users >= o->min_users || !is_heldout(f, o->heldout_pct)) continue;
        if (cp_align_prompt(tax, f->ctx, j->k, f->cand, prompt, PROMPT_CAP) < 0) continue;
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "prompt", prompt);
        cJSON_AddItemToObject(obj, "ctx", ctx_array(f->ctx, j->k));
        cJSON_AddNumberToObject(obj, "cand", f->cand);
        cJSON_AddNumberToObject(obj, "users", f->users);
        cJSON_AddNumberToObject(obj, "exposures", (double)f->exposures);
        cJSON_AddNumberToObject(obj, "pos_rate", round((double)f->pos_rate * 1e6) / 1e6);
        cJSON_AddNumberToObject(obj, "label", cp_labeler_digit(&lab, f));
        put_json_line(aq.f, obj);
        st->align_probe++;
    }
    if ((rc = sd_afile_commit(&at, err)) || (rc = sd_afile_commit(&ah, err)) || (rc = sd_afile_commit(&ab, err)) ||
        (rc = sd_afile_commit(&aq, err)))
        goto done;
done:
    if (aq.f) sd_afile_abort(&aq);
    if (ap.f) sd_afile_abort(&ap);
    if (at.f) sd_afile_abort(&at);
    if (ah.f) sd_afile_abort(&ah);
    if (ab.f) sd_afile_abort(&ab);
    free(prompt);
    free(p_train); free(p_held); free(p_base); free(p_pair); free(p_probe);
    free(kt);
    free(rates);
    cp_labeler_free(&lab);
    return rc;
}

/* ---------------------------------------------------------------- entry points */

int cp_build(const char *dir, const ds_dataset *ds, const tx_taxonomy *tax, const jr_journeys *j, const cp_opts *o,
             cp_stats *st, sd_err *err) {
    memset(st, 0, sizeof *st);
    if (j->n_clusters != tax->n_clusters)
        return sd_fail(err, SD_ERR_STATE, "corpus: journeys were computed on %d clusters, the taxonomy has %d (rerun 'serendip journeys')",
                       j->n_clusters, tax->n_clusters);
    if (o->novelty_examples < 0 || o->min_users < 1 || o->train_min_users < 1 || !(o->label_shrink >= 0) ||
        o->heldout_pct < 0 || o->heldout_pct > 100 ||
        o->baseline_quantile < 0 || o->baseline_quantile > 1 || o->pretrain_bytes < 0 || o->pairwise_examples < 0)
        return sd_fail(err, SD_ERR_USAGE, "corpus: invalid option (sizes >= 0, min-users >= 1, heldout 0..100, quantile 0..1)");
    int rc = sd_mkdir_p(dir, err);
    if (rc) return rc;
    char *p = sd_path_join(dir, CP_PRETRAIN);
    rc = build_pretrain(p, ds, tax, j, o, st, err);
    free(p);
    if (rc) return rc;
    p = sd_path_join(dir, CP_NOVELTY);
    rc = build_novelty(p, tax, j, o, st, err);
    free(p);
    if (rc) return rc;
    return build_align(dir, tax, j, o, st, err);
}

static int write_stats(const char *path, const cp_opts *o, const cp_stats *st, sd_err *err) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "version", 1);
    cJSON *opt = cJSON_AddObjectToObject(r, "options");
    cJSON_AddNumberToObject(opt, "pretrain_bytes", (double)o->pretrain_bytes);
    cJSON_AddNumberToObject(opt, "novelty_examples", o->novelty_examples);
    cJSON_AddNumberToObject(opt, "per_target_cap", o->per_target_cap);
    cJSON_AddNumberToObject(opt, "min_users", o->min_users);
    cJSON_AddNumberToObject(opt, "train_min_users", o->train_min_users);
    cJSON_AddNumberToObject(opt, "label_shrink", o->label_shrink);
    cJSON_AddNumberToObject(opt, "heldout_pct", o->heldout_pct);
    cJSON_AddBoolToObject(opt, "pairwise", o->pairwise);
    cJSON_AddNumberToObject(opt, "baseline_quantile", o->baseline_quantile);
    cJSON_AddNumberToObject(opt, "seed", (double)o->seed);
    cJSON_AddNumberToObject(r, "pretrain_bytes", (double)st->pretrain_bytes);
    cJSON_AddNumberToObject(r, "pretrain_lines", (double)st->pretrain_lines);
    cJSON_AddNumberToObject(r, "novel_transitions", (double)st->novel_transitions);
    cJSON_AddNumberToObject(r, "novelty_examples", (double)st->novelty_examples);
    cJSON_AddNumberToObject(r, "target_entropy_before", st->target_entropy_before);
    cJSON_AddNumberToObject(r, "target_entropy_after", st->target_entropy_after);
    cJSON_AddNumberToObject(r, "targets_before", st->targets_before);
    cJSON_AddNumberToObject(r, "targets_after", st->targets_after);
    cJSON_AddNumberToObject(r, "feedback_tuples", (double)st->feedback_tuples);
    cJSON_AddNumberToObject(r, "align_kept", (double)st->align_kept);
    cJSON_AddNumberToObject(r, "align_train", (double)st->align_train);
    cJSON_AddNumberToObject(r, "align_heldout", (double)st->align_heldout);
    cJSON_AddNumberToObject(r, "align_probe", (double)st->align_probe);
    cJSON *h = cJSON_AddArrayToObject(r, "label_hist");
    for (int i = 0; i < CP_SCORE_LEVELS; i++) cJSON_AddItemToArray(h, cJSON_CreateNumber((double)st->label_hist[i]));
    cJSON_AddNumberToObject(r, "pairwise_examples", (double)st->pairwise_examples);
    cJSON_AddNumberToObject(r, "baseline_examples", (double)st->baseline_examples);
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    int rc = sd_write_file_atomic(path, s, strlen(s), err);
    free(s);
    return rc;
}

int cp_opts_load(const char *ws, cp_opts *o, sd_err *err) {
    cp_opts_default(o);
    char *p = sd_asprintf("%s/%s/%s", ws, CP_DIR, CP_STATS), *text = NULL;
    size_t n = 0;
    int rc = sd_file_exists(p) ? sd_read_file(p, &text, &n, err)
                               : sd_fail(err, SD_ERR_STATE, "%s: no corpus in this workspace (run 'serendip train')", p);
    cJSON *j = rc ? NULL : cJSON_ParseWithLength(text, n);
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(j, "options");
    if (!rc && !cJSON_IsObject(opt)) rc = sd_fail(err, SD_ERR_FORMAT, "%s: no \"options\" object", p);
    if (!rc) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(opt, "min_users"),
                    *b = cJSON_GetObjectItemCaseSensitive(opt, "train_min_users"),
                    *c = cJSON_GetObjectItemCaseSensitive(opt, "label_shrink");
        if (cJSON_IsNumber(a)) o->min_users = a->valueint;
        if (cJSON_IsNumber(b)) o->train_min_users = b->valueint;
        else o->train_min_users = o->min_users; /* a corpus from before the option: one threshold */
        if (cJSON_IsNumber(c)) o->label_shrink = c->valuedouble;
        else o->label_shrink = 0;
        if (o->min_users < 1 || o->train_min_users < 1 || !(o->label_shrink >= 0))
            rc = sd_fail(err, SD_ERR_FORMAT, "%s: options out of range (min_users %d, train_min_users %d, label_shrink %g)", p,
                         o->min_users, o->train_min_users, o->label_shrink);
    }
    cJSON_Delete(j);
    free(text);
    free(p);
    return rc;
}

int cp_build_all(const char *ws, const cp_opts *o, cp_stats *st, sd_err *err) {
    char *pd = sd_path_join(ws, DS_FILE), *pt = sd_path_join(ws, TX_FILE), *pj = sd_path_join(ws, JR_FILE),
         *dir = sd_path_join(ws, CP_DIR);
    ds_dataset ds;
    tx_taxonomy tax;
    jr_journeys j;
    int have_ds = 0, have_tax = 0, have_j = 0, rc;
    if (!sd_file_exists(pt)) {
        rc = sd_fail(err, SD_ERR_STATE, "%s: no taxonomy in this workspace (run 'serendip cluster')", pt);
        goto done;
    }
    if ((rc = tx_load(&tax, pt, err))) goto done;
    have_tax = 1;
    if ((rc = jr_load(&j, pj, err))) goto done;
    have_j = 1;
    if (j.tax_hash != tx_hash(&tax)) {
        rc = sd_fail(err, SD_ERR_STATE, "%s was computed on another taxonomy (rerun 'serendip journeys')", pj);
        goto done;
    }
    if (sd_file_exists(pd)) {
        if ((rc = ds_load(&ds, pd, err))) goto done;
        have_ds = 1;
        if (ds.n_items != tax.n_items) {
            rc = sd_fail(err, SD_ERR_STATE, "%s has %lld items, the taxonomy %lld (rerun 'serendip cluster')", pd,
                         (long long)ds.n_items, (long long)tax.n_items);
            goto done;
        }
    }
    if ((rc = cp_build(dir, have_ds ? &ds : NULL, &tax, &j, o, st, err))) goto done;
    sd_log("corpus: %lld novelty examples of %lld novel transitions; target entropy %.3f -> %.3f bits (%d -> %d targets)",
           (long long)st->novelty_examples, (long long)st->novel_transitions, st->target_entropy_before,
           st->target_entropy_after, st->targets_before, st->targets_after);
    sd_log("corpus: %lld of %lld feedback tuples kept: %lld train (>= %d users), %lld held out (>= %d users), %lld sparser "
           "held out in the probe; %lld baseline examples",
           (long long)st->align_kept, (long long)st->feedback_tuples, (long long)st->align_train, o->train_min_users,
           (long long)st->align_heldout, o->min_users, (long long)st->align_probe, (long long)st->baseline_examples);
    char *ps = sd_path_join(dir, CP_STATS);
    rc = write_stats(ps, o, st, err);
    free(ps);
done:
    if (have_j) jr_free(&j);
    if (have_tax) tx_free(&tax);
    if (have_ds) ds_free(&ds);
    free(pd); free(pt); free(pj); free(dir);
    return rc;
}
