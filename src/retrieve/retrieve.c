/* retrieve.c - restricted item retrieval: a sequential skip-gram item recommender (prod2vec /
 * item2vec with forward windows and negative sampling), top-k within one cluster, the
 * popularity-within-cluster baseline, HR/NDCG evaluation, and the retrieval.bin file.
 *
 * Hand-written rather than taken from a library: Debian has no C word2vec library, and the
 * SGNS update is twenty lines. Training is single-threaded on purpose so that a seed gives the
 * same file on every machine (Hogwild threads would not); on MovieLens-small it takes seconds. */
#include "serendip/retrieve.h"

#include "serendip/manifest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- file layout (docs/serving.md) */

enum {
    H_MAGIC = 0, H_VERSION = 8, H_DIM = 12, H_WINDOW = 16, H_NEG = 20, H_EPOCHS = 24, H_RECENT = 28,
    H_LR = 32, H_DECAY = 36, H_SEED = 40, H_NITEMS = 48, H_TRAIN_END = 56, H_NEVENTS = 64,
    H_ITEMS_HASH = 72, H_FILE_SIZE = 80, H_BODY_HASH = 88, H_CHECKSUM = 120
};

static size_t body_size(int64_t n_items, int dim) {
    return (size_t)n_items * 8 + (size_t)n_items * (size_t)dim * 4 * 2 + (size_t)n_items * 4;
}

/* Points the model's arrays into a body laid out as pop, U, V, bias. */
static void point_body(rt_model *m, const uint8_t *body) {
    size_t n = (size_t)m->n_items, d = (size_t)m->dim;
    m->pop = (const int64_t *)body;
    m->U = (const float *)(body + n * 8);
    m->V = m->U + n * d;
    m->bias = m->V + n * d;
}

uint64_t rt_items_hash(const ds_dataset *d) {
    uint64_t h = sd_hash64(d->item_ids, (size_t)d->n_items * sizeof(int64_t), SD_HASH_SEED);
    /* string raw ids: item_ids are internal numbers 1..n, the names tell catalogues apart */
    for (int64_t i = 0; d->item_name_off && i < d->n_items; i++) {
        const char *name = d->strings + d->item_name_off[i];
        h = sd_hash64(name, strlen(name) + 1, h);
    }
    return h;
}

static int check_options(const rt_options *o, sd_err *err) {
    if (o->dim < 1 || o->dim > RT_DIM_MAX) return sd_fail(err, SD_ERR_USAGE, "retrieval: dim %d not in 1..%d", o->dim, RT_DIM_MAX);
    if (o->window < 1 || o->window > 100) return sd_fail(err, SD_ERR_USAGE, "retrieval: window %d not in 1..100", o->window);
    if (o->negatives < 1 || o->negatives > 50) return sd_fail(err, SD_ERR_USAGE, "retrieval: negatives %d not in 1..50", o->negatives);
    if (o->epochs < 1 || o->epochs > 1000) return sd_fail(err, SD_ERR_USAGE, "retrieval: epochs %d not in 1..1000", o->epochs);
    if (!(o->lr > 0 && o->lr < 10)) return sd_fail(err, SD_ERR_USAGE, "retrieval: lr %g not in (0, 10)", (double)o->lr);
    if (!(o->decay > 0 && o->decay <= 1)) return sd_fail(err, SD_ERR_USAGE, "retrieval: decay %g not in (0, 1]", (double)o->decay);
    if (o->recent < 1 || o->recent > RT_RECENT_MAX) return sd_fail(err, SD_ERR_USAGE, "retrieval: recent %d not in 1..%d", o->recent, RT_RECENT_MAX);
    return SD_OK;
}

/* ---------------------------------------------------------------- training */

static inline float sigmoidf(float x) {
    if (x > 20) return 1;
    if (x < -20) return 0;
    return 1.0f / (1.0f + expf(-x));
}

#define RT_NEG_TABLE (1 << 20) /* word2vec's unigram table, 4 MiB: O(1) negative sampling */

int rt_train_data(const ds_dataset *d, const ds_split *s, const rt_options *o, rt_model *out, sd_err *err) {
    memset(out, 0, sizeof *out);
    if (check_options(o, err)) return err ? err->code : SD_ERR_USAGE;
    int64_t n = d->n_items, train_end = s ? s->train_end : INT64_MAX;
    const size_t D = (size_t)o->dim;

    /* the train sequences: per user, items of the user's train-window events in time order
     * (train_end, kept in the header, is the largest per-user boundary of a per-user split) */
    int32_t *seq = sd_malloc((size_t)(d->n_events ? d->n_events : 1) * sizeof(int32_t));
    int64_t *seq_off = sd_malloc((size_t)(d->n_users + 1) * sizeof(int64_t));
    int64_t *pop = sd_calloc((size_t)(n ? n : 1), sizeof(int64_t));
    int64_t len = 0, pairs_per_epoch = 0;
    for (int64_t u = 0; u < d->n_users; u++) {
        seq_off[u] = len;
        for (int64_t i = d->user_off[u]; i < d->user_off[u + 1]; i++) {
            if (d->events[i].ts >= (s ? ds_split_train_end(s, u) : INT64_MAX)) break;
            seq[len++] = d->events[i].item;
            pop[d->events[i].item]++;
        }
        int64_t l = len - seq_off[u];
        for (int64_t t = 0; t < l; t++) pairs_per_epoch += (l - 1 - t) < o->window ? (l - 1 - t) : o->window;
    }
    seq_off[d->n_users] = len;
    if (pairs_per_epoch == 0) {
        free(seq), free(seq_off), free(pop);
        return sd_fail(err, SD_ERR_DATA, "retrieval: no user has two train-window events (train_end %lld)", (long long)train_end);
    }

    /* negatives ~ pop^0.75 (word2vec's smoothing): item i fills a share of the table */
    int32_t *negt = sd_malloc(RT_NEG_TABLE * sizeof(int32_t));
    double acc = 0, total_w = 0;
    for (int64_t i = 0; i < n; i++) total_w += pow((double)pop[i], 0.75);
    for (int64_t i = 0, slot = 0; i < n; i++) {
        acc += pow((double)pop[i], 0.75);
        int64_t upto = (int64_t)(acc / total_w * RT_NEG_TABLE + 0.5);
        for (; slot < upto && slot < RT_NEG_TABLE; slot++) negt[slot] = (int32_t)i;
    }

    uint8_t *body = sd_calloc(1, body_size(n, o->dim));
    out->dim = o->dim, out->window = o->window, out->negatives = o->negatives, out->epochs = o->epochs;
    out->recent = o->recent, out->lr = o->lr, out->decay = o->decay, out->seed = o->seed;
    out->n_items = n, out->train_end = train_end, out->n_train_events = len, out->items_hash = rt_items_hash(d);
    out->heap = body;
    point_body(out, body);
    memcpy(body, pop, (size_t)n * 8);
    float *U = (float *)out->U, *V = (float *)out->V, *b = (float *)out->bias; /* (n, D) (n, D) (n) */
    sd_rng rng;
    sd_rng_seed(&rng, o->seed);
    for (size_t i = 0; i < (size_t)n * D; i++) U[i] = (float)((sd_rng_uniform(&rng) - 0.5) / (double)D);

    int32_t *order = sd_malloc((size_t)(d->n_users ? d->n_users : 1) * sizeof(int32_t));
    for (int64_t u = 0; u < d->n_users; u++) order[u] = (int32_t)u;
    float grad[RT_DIM_MAX];
    const double total = (double)pairs_per_epoch * o->epochs;
    double done = 0;
    sd_progress prog;
    sd_progress_start(&prog, "retrieval", o->epochs * d->n_users);
    for (int ep = 0; ep < o->epochs; ep++) {
        sd_rng_shuffle_i32(&rng, order, (size_t)d->n_users);
        for (int64_t ui = 0; ui < d->n_users; ui++) {
            int64_t u = order[ui], a = seq_off[u], e = seq_off[u + 1];
            for (int64_t t = a; t < e; t++) {
                int32_t c = seq[t];
                float *uc = U + (size_t)c * D;
                for (int64_t t2 = t + 1; t2 < e && t2 <= t + o->window; t2++, done++) {
                    int32_t target = seq[t2];
                    if (target == c) continue;
                    float lr = (float)(o->lr * (1.0 - 0.99 * done / total));
                    memset(grad, 0, D * sizeof(float));
                    for (int j = 0; j <= o->negatives; j++) {
                        int32_t w = target;
                        float label = 1;
                        if (j > 0) {
                            w = negt[sd_rng_u64(&rng) >> 44]; /* top 20 bits */
                            if (w == target) continue;
                            label = 0;
                        }
                        float *vw = V + (size_t)w * D, f = b[w];
#pragma omp simd reduction(+ : f)
                        for (size_t x = 0; x < D; x++) f += uc[x] * vw[x];
                        float g = (label - sigmoidf(f)) * lr;
#pragma omp simd
                        for (size_t x = 0; x < D; x++) grad[x] += g * vw[x], vw[x] += g * uc[x];
                        b[w] += g;
                    }
                    for (size_t x = 0; x < D; x++) uc[x] += grad[x];
                }
            }
            sd_progress_update(&prog, ep * d->n_users + ui + 1, NULL);
        }
    }
    sd_progress_end(&prog);
    /* SGNS fits u.v + b = log P(j | c) - log(k Pn(j)) (Levy & Goldberg 2014, shifted PMI), a score
     * that favours rare items. Adding log Pn(j) back makes the scores estimate log P(j | c) up to a
     * constant, which is what ranking the next item needs. Items never seen in training get the
     * weight of half an event. */
    for (int64_t i = 0; i < n; i++) b[i] += (float)(0.75 * log(pop[i] > 0 ? (double)pop[i] : 0.5));
    free(order), free(negt), free(seq), free(seq_off), free(pop);
    return SD_OK;
}

/* ---------------------------------------------------------------- file */

static void put32(uint8_t *h, int off, uint32_t v) { memcpy(h + off, &v, 4); }
static void put64(uint8_t *h, int off, uint64_t v) { memcpy(h + off, &v, 8); }
static uint32_t get32(const uint8_t *h, int off) { uint32_t v; memcpy(&v, h + off, 4); return v; }
static uint64_t get64(const uint8_t *h, int off) { uint64_t v; memcpy(&v, h + off, 8); return v; }

int rt_save(const rt_model *m, const char *path, sd_err *err) {
    size_t bs = body_size(m->n_items, m->dim);
    uint8_t h[RT_HEADER_SIZE] = {0};
    memcpy(h + H_MAGIC, RT_MAGIC, 8);
    put32(h, H_VERSION, RT_VERSION);
    put32(h, H_DIM, (uint32_t)m->dim), put32(h, H_WINDOW, (uint32_t)m->window), put32(h, H_NEG, (uint32_t)m->negatives);
    put32(h, H_EPOCHS, (uint32_t)m->epochs), put32(h, H_RECENT, (uint32_t)m->recent);
    memcpy(h + H_LR, &m->lr, 4), memcpy(h + H_DECAY, &m->decay, 4);
    put64(h, H_SEED, m->seed), put64(h, H_NITEMS, (uint64_t)m->n_items), put64(h, H_TRAIN_END, (uint64_t)m->train_end);
    put64(h, H_NEVENTS, (uint64_t)m->n_train_events), put64(h, H_ITEMS_HASH, m->items_hash);
    put64(h, H_FILE_SIZE, RT_HEADER_SIZE + bs);
    /* the body is pop, U, V, bias contiguous (as in rt_train_data and rt_open) */
    const uint8_t *body = (const uint8_t *)m->pop;
    put64(h, H_BODY_HASH, sd_hash64(body, bs, SD_HASH_SEED));
    put64(h, H_CHECKSUM, sd_hash64(h, H_CHECKSUM, SD_HASH_SEED));
    sd_afile a;
    if (sd_afile_open(&a, path, err)) return err->code;
    fwrite(h, 1, sizeof h, a.f);
    fwrite(body, 1, bs, a.f);
    return sd_afile_commit(&a, err);
}

int rt_open(rt_model *m, const char *path, sd_err *err) {
    memset(m, 0, sizeof *m);
    if (sd_map_open(&m->map, path, err)) return err ? err->code : SD_ERR_IO;
    const uint8_t *h = m->map.data;
    size_t size = m->map.size;
    const char *why = NULL;
    if (size < RT_HEADER_SIZE || memcmp(h, RT_MAGIC, 8)) why = "not a serendip retrieval model (bad magic)";
    else if (get32(h, H_VERSION) != RT_VERSION) why = "unsupported version (rerun `serendip train`)";
    else if (get64(h, H_CHECKSUM) != sd_hash64(h, H_CHECKSUM, SD_HASH_SEED)) why = "header checksum mismatch (corrupt file)";
    if (!why) {
        m->dim = (int32_t)get32(h, H_DIM), m->window = (int32_t)get32(h, H_WINDOW), m->negatives = (int32_t)get32(h, H_NEG);
        m->epochs = (int32_t)get32(h, H_EPOCHS), m->recent = (int32_t)get32(h, H_RECENT);
        memcpy(&m->lr, h + H_LR, 4), memcpy(&m->decay, h + H_DECAY, 4);
        m->seed = get64(h, H_SEED), m->n_items = (int64_t)get64(h, H_NITEMS), m->train_end = (int64_t)get64(h, H_TRAIN_END);
        m->n_train_events = (int64_t)get64(h, H_NEVENTS), m->items_hash = get64(h, H_ITEMS_HASH);
        if (m->dim < 1 || m->dim > RT_DIM_MAX || m->recent < 1 || m->recent > RT_RECENT_MAX || !(m->decay > 0 && m->decay <= 1))
            why = "bad parameters in header";
        else if (m->n_items < 0 || m->n_items > ((int64_t)1 << 34)) why = "bad item count";
        else if (get64(h, H_FILE_SIZE) != RT_HEADER_SIZE + body_size(m->n_items, m->dim) || size != get64(h, H_FILE_SIZE))
            why = "truncated or wrong size";
        else if (get64(h, H_BODY_HASH) != sd_hash64(h + RT_HEADER_SIZE, size - RT_HEADER_SIZE, SD_HASH_SEED))
            why = "body checksum mismatch (corrupt file)";
    }
    if (why) {
        sd_map_close(&m->map);
        memset(m, 0, sizeof *m);
        return sd_fail(err, SD_ERR_FORMAT, "%s: %s", path, why);
    }
    point_body(m, h + RT_HEADER_SIZE);
    return SD_OK;
}

void rt_close(rt_model *m) {
    if (m->map.data) sd_map_close(&m->map);
    free(m->heap);
    memset(m, 0, sizeof *m);
}

int rt_train(const char *ws, const rt_options *o, sd_err *err) {
    rt_options def = RT_OPTIONS_DEFAULT;
    if (!o) o = &def;
    char *dpath = sd_path_join(ws, DS_FILE), *spath = sd_path_join(ws, DS_SPLIT_FILE), *mpath = sd_path_join(ws, RT_FILE);
    ds_dataset d;
    ds_split split, *s = NULL;
    rt_model m;
    int rc = ds_load(&d, dpath, err);
    if (rc) {
        if (rc == SD_ERR_IO) err->code = rc = SD_ERR_STATE;
        goto out;
    }
    if (sd_file_exists(spath)) {
        if ((rc = ds_split_load(&split, spath, err))) goto out_ds;
        s = &split;
    } else {
        sd_log("retrieval: no %s in %s, training on every event", DS_SPLIT_FILE, ws);
    }
    double t0 = sd_now();
    if ((rc = rt_train_data(&d, s, o, &m, err))) goto out_ds;
    rc = rt_save(&m, mpath, err);
    const char *inputs[] = {DS_FILE, DS_SPLIT_FILE};
    if (!rc) rc = mf_record(ws, RT_FILE, "train", inputs, 2, err);
    if (!rc) sd_log("retrieval: %lld train events, %lld items, dim %d, %.1f s -> %s", (long long)m.n_train_events,
                    (long long)m.n_items, m.dim, sd_now() - t0, mpath);
    rt_close(&m);
out_ds:
    if (s) ds_split_free(s);
    ds_free(&d);
out:
    free(dpath), free(spath), free(mpath);
    return rc;
}

/* ---------------------------------------------------------------- scoring (the serving hot path) */

/* q = recency-weighted mean of the U vectors of the valid recent items; returns 0 when none. */
static int query_vector(const rt_model *m, const int32_t *recent, int n_recent, float *q) {
    const int D = m->dim;
    memset(q, 0, (size_t)D * sizeof(float));
    if (n_recent > m->recent) recent += n_recent - m->recent, n_recent = m->recent;
    float w = 1, wsum = 0;
    for (int l = n_recent - 1; l >= 0; l--, w *= m->decay) { /* newest has weight 1 */
        int32_t r = recent[l];
        if (r < 0 || r >= m->n_items) continue;
        const float *ur = m->U + (size_t)r * D;
        for (int x = 0; x < D; x++) q[x] += w * ur[x];
        wsum += w;
    }
    if (wsum == 0) return 0;
    for (int x = 0; x < D; x++) q[x] /= wsum;
    return 1;
}

static inline float score_item(const rt_model *m, const float *q, int has_q, int32_t j) {
    float s = m->bias[j];
    if (has_q) {
        const float *vj = m->V + (size_t)j * m->dim;
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int x = 0; x < m->dim; x++) dot += q[x] * vj[x];
        s += dot;
    }
    return s;
}

static inline int better(float sa, int32_t a, float sb, int32_t b) { return sa > sb || (sa == sb && a < b); }

/* Inserts (item, s) into the best-first list out[0..*n) capped at k. */
static void topk_push(rt_scored *out, int *n, int k, int32_t item, float s) {
    if (*n == k && !better(s, item, out[k - 1].score, out[k - 1].item)) return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && better(s, item, out[i - 1].score, out[i - 1].item)) {
        out[i] = out[i - 1];
        i--;
    }
    out[i].item = item, out[i].score = s;
}

static int cluster_ok(const rt_model *m, const tx_taxonomy *tax, int32_t cluster) {
    return tax && cluster >= 0 && cluster < tax->n_clusters && tax->n_items == m->n_items;
}

void rt_query_init(const rt_model *m, const int32_t *recent, int n_recent, rt_query *q) {
    q->has_q = query_vector(m, recent, n_recent, q->q);
}

static inline int seen_test(const int32_t *seen, int64_t n_seen, const uint64_t *mask, int32_t j) {
    return mask ? (int)((mask[j >> 6] >> (j & 63)) & 1) : rt_seen_has(seen, n_seen, j);
}

int rt_rank(const rt_model *m, const tx_taxonomy *tax, const rt_query *q, int32_t cluster, const int32_t *seen,
            int64_t n_seen, const uint64_t *seen_mask, int k, rt_scored *out) {
    if (!cluster_ok(m, tax, cluster)) return -1;
    if (k > RT_K_MAX) k = RT_K_MAX;
    if (k <= 0) return 0;
    int n = 0;
    for (int64_t i = tax->member_off[cluster]; i < tax->member_off[cluster + 1]; i++) { /* the hot loop */
        int32_t j = tax->members[i];
        if (j < 0 || j >= m->n_items || seen_test(seen, n_seen, seen_mask, j)) continue;
        topk_push(out, &n, k, j, score_item(m, q->q, q->has_q, j));
    }
    return n;
}

int rt_index_build(const rt_model *m, const tx_taxonomy *tax, rt_index *ix, sd_err *err) {
    memset(ix, 0, sizeof *ix);
    if (tax->n_items != m->n_items)
        return sd_fail(err, SD_ERR_DATA, "retrieval: the taxonomy has %lld items, the model %lld", (long long)tax->n_items,
                       (long long)m->n_items);
    int64_t nm = tax->member_off[tax->n_clusters];
    size_t row = (size_t)m->dim + 1;
    ix->n_clusters = tax->n_clusters, ix->dim = m->dim, ix->items_hash = m->items_hash;
    ix->off = sd_malloc((size_t)(tax->n_clusters + 1) * sizeof(int64_t));
    ix->items = sd_malloc((size_t)(nm ? nm : 1) * sizeof(int32_t));
    ix->vb = sd_malloc((size_t)(nm ? nm : 1) * row * sizeof(float));
    int64_t w = 0;
    for (int32_t c = 0; c < tax->n_clusters; c++) {
        ix->off[c] = w;
        for (int64_t i = tax->member_off[c]; i < tax->member_off[c + 1]; i++) {
            int32_t j = tax->members[i];
            if (j < 0 || j >= m->n_items) continue;
            ix->items[w] = j;
            memcpy(ix->vb + (size_t)w * row, m->V + (size_t)j * m->dim, (size_t)m->dim * sizeof(float));
            ix->vb[(size_t)w * row + (size_t)m->dim] = m->bias[j];
            w++;
        }
    }
    ix->off[tax->n_clusters] = w;
    return SD_OK;
}

void rt_index_free(rt_index *ix) {
    free(ix->off), free(ix->items), free(ix->vb);
    memset(ix, 0, sizeof *ix);
}

int rt_rank_indexed(const rt_index *ix, const rt_query *q, int32_t cluster, const uint64_t *seen_mask, int k, rt_scored *out) {
    if (cluster < 0 || cluster >= ix->n_clusters) return -1;
    if (k > RT_K_MAX) k = RT_K_MAX;
    if (k <= 0) return 0;
    const int D = ix->dim;
    const size_t row = (size_t)D + 1;
    int n = 0;
    float dots[4];
    /* the hot loop: contiguous rows, four dot products at a time so that their additions overlap */
    for (int64_t i = ix->off[cluster]; i < ix->off[cluster + 1]; i += 4) {
        int nb = ix->off[cluster + 1] - i < 4 ? (int)(ix->off[cluster + 1] - i) : 4;
        const float *v0 = ix->vb + (size_t)i * row;
        const float *v1 = nb > 1 ? v0 + row : v0, *v2 = nb > 2 ? v0 + 2 * row : v0, *v3 = nb > 3 ? v0 + 3 * row : v0;
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        if (q->has_q) {
#pragma omp simd reduction(+ : a0, a1, a2, a3)
            for (int x = 0; x < D; x++) a0 += q->q[x] * v0[x], a1 += q->q[x] * v1[x], a2 += q->q[x] * v2[x], a3 += q->q[x] * v3[x];
        }
        dots[0] = a0, dots[1] = a1, dots[2] = a2, dots[3] = a3;
        for (int r = 0; r < nb; r++) {
            int32_t j = ix->items[i + r];
            if (seen_mask && ((seen_mask[j >> 6] >> (j & 63)) & 1)) continue;
            topk_push(out, &n, k, j, v0[(size_t)r * row + (size_t)D] + dots[r]);
        }
    }
    return n;
}

int rt_user_recent(const ds_dataset *d, int64_t u, int limit, int32_t *recent) {
    if (u < 0 || u >= d->n_users || limit <= 0) return 0;
    if (limit > RT_RECENT_MAX) limit = RT_RECENT_MAX;
    int64_t e = d->user_off[u + 1], n = e - d->user_off[u] < limit ? e - d->user_off[u] : limit;
    for (int64_t i = 0; i < n; i++) recent[i] = d->events[e - n + i].item;
    return (int)n;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int64_t rt_user_seen(const ds_dataset *d, int64_t u, int32_t *seen) {
    if (u < 0 || u >= d->n_users) return 0;
    int64_t a = d->user_off[u], n = d->user_off[u + 1] - a, w = 0;
    for (int64_t i = 0; i < n; i++) seen[i] = d->events[a + i].item;
    qsort(seen, (size_t)n, sizeof *seen, cmp_i32);
    for (int64_t i = 0; i < n; i++)
        if (!w || seen[w - 1] != seen[i]) seen[w++] = seen[i];
    return w;
}

int rt_recommend(const rt_model *m, const tx_taxonomy *tax, const int32_t *recent, int n_recent, int32_t cluster,
                 const int32_t *seen, int64_t n_seen, int k, rt_scored *out) {
    rt_query q;
    rt_query_init(m, recent, n_recent, &q);
    return rt_rank(m, tax, &q, cluster, seen, n_seen, NULL, k, out);
}

int rt_recommend_popular(const rt_model *m, const tx_taxonomy *tax, int32_t cluster, const int32_t *seen,
                         int64_t n_seen, int k, rt_scored *out) {
    if (!cluster_ok(m, tax, cluster)) return -1;
    if (k > RT_K_MAX) k = RT_K_MAX;
    if (k <= 0) return 0;
    int n = 0;
    for (int64_t i = tax->member_off[cluster]; i < tax->member_off[cluster + 1]; i++) {
        int32_t j = tax->members[i];
        if (j < 0 || j >= m->n_items || rt_seen_has(seen, n_seen, j)) continue;
        topk_push(out, &n, k, j, (float)m->pop[j]);
    }
    return n;
}

/* ---------------------------------------------------------------- evaluation */


/* Inserts item into the sorted unique array a[0..*n) (no-op when present). */
static void seen_insert(int32_t *a, int64_t *n, int32_t item) {
    int64_t lo = 0, hi = *n;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (a[mid] < item) lo = mid + 1;
        else hi = mid;
    }
    if (lo < *n && a[lo] == item) return;
    memmove(a + lo + 1, a + lo, (size_t)(*n - lo) * sizeof *a);
    a[lo] = item;
    (*n)++;
}

int rt_evaluate(const rt_model *m, const ds_dataset *d, const ds_split *s, const tx_taxonomy *tax,
                const ds_positive_rule *rule, int at, rt_eval *out, sd_err *err) {
    memset(out, 0, sizeof *out);
    out->at = at;
    if (at < 1) return sd_fail(err, SD_ERR_USAGE, "retrieval eval: cut-off %d < 1", at);
    if (m->n_items != d->n_items || m->items_hash != rt_items_hash(d))
        return sd_fail(err, SD_ERR_DATA, "retrieval eval: the model was trained on another dataset (rerun `serendip train`)");
    if (tax->n_items != d->n_items)
        return sd_fail(err, SD_ERR_DATA, "retrieval eval: taxonomy has %lld items, dataset %lld", (long long)tax->n_items, (long long)d->n_items);
    int32_t *seen = sd_malloc((size_t)(d->n_events ? d->n_events : 1) * sizeof(int32_t));
    double cand_sum = 0;
    float q[RT_DIM_MAX];
    int32_t recent[RT_RECENT_MAX];
    for (int64_t u = 0; u < d->n_users; u++) {
        int64_t a = d->user_off[u], e = d->user_off[u + 1], ns = 0;
        for (int64_t i = a; i < e; seen_insert(seen, &ns, d->events[i].item), i++) {
            const ds_event *ev = &d->events[i];
            if (ds_split_of(s, u, ev->ts) != DS_TEST || !ds_is_positive(rule, ev) || tax->item_cluster[ev->item] < 0 ||
                rt_seen_has(seen, ns, ev->item))
                continue;
            if (i == a) {
                out->skipped_no_history++;
                continue;
            }
            int nr = (int)(i - a < m->recent ? i - a : m->recent);
            for (int r = 0; r < nr; r++) recent[r] = d->events[i - nr + r].item;
            int has_q = query_vector(m, recent, nr, q);
            int32_t target = ev->item, c = tax->item_cluster[target];
            float st = score_item(m, q, has_q, target);
            double pt = (double)m->pop[target];
            int64_t rank = 1, rank_pop = 1, cands = 0;
            for (int64_t x = tax->member_off[c]; x < tax->member_off[c + 1]; x++) {
                int32_t j = tax->members[x];
                if (rt_seen_has(seen, ns, j)) continue;
                cands++;
                if (j == target) continue;
                if (better(score_item(m, q, has_q, j), j, st, target)) rank++;
                double pj = (double)m->pop[j];
                if (pj > pt || (pj == pt && j < target)) rank_pop++;
            }
            out->cases++;
            cand_sum += (double)cands;
            if (rank <= at) out->hr += 1, out->ndcg += 1.0 / log2((double)rank + 1);
            if (rank_pop <= at) out->pop_hr += 1, out->pop_ndcg += 1.0 / log2((double)rank_pop + 1);
        }
    }
    if (out->cases) {
        double nc = (double)out->cases;
        out->hr /= nc, out->ndcg /= nc, out->pop_hr /= nc, out->pop_ndcg /= nc, out->mean_candidates = cand_sum / nc;
    }
    free(seen);
    return SD_OK;
}

int rt_evaluate_ws(const char *ws, int at, rt_eval *out, sd_err *err) {
    char *dp = sd_path_join(ws, DS_FILE), *sp = sd_path_join(ws, DS_SPLIT_FILE), *tp = sd_path_join(ws, TX_FILE),
         *mp = sd_path_join(ws, RT_FILE);
    ds_dataset d;
    ds_split s;
    tx_taxonomy t;
    rt_model m;
    int rc;
    const char *missing = !sd_file_exists(dp) ? dp : !sd_file_exists(sp) ? sp : !sd_file_exists(tp) ? tp : !sd_file_exists(mp) ? mp : NULL;
    if (missing) {
        rc = sd_fail(err, SD_ERR_STATE, "retrieval eval: %s is missing", missing);
        goto out;
    }
    if ((rc = ds_load(&d, dp, err))) goto out;
    if ((rc = ds_split_load(&s, sp, err))) goto out_d;
    if ((rc = tx_load(&t, tp, err))) goto out_s;
    if (!(rc = rt_open(&m, mp, err))) {
        ds_positive_rule rule = DS_POSITIVE_DEFAULT;
        rc = rt_evaluate(&m, &d, &s, &t, &rule, at, out, err);
        rt_close(&m);
    }
    tx_free(&t);
out_s:
    ds_split_free(&s);
out_d:
    ds_free(&d);
out:
    free(dp), free(sp), free(tp), free(mp);
    return rc;
}

cJSON *rt_eval_json(const rt_eval *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "cases", (double)e->cases);
    cJSON_AddNumberToObject(o, "skipped_no_history", (double)e->skipped_no_history);
    cJSON_AddNumberToObject(o, "at", e->at);
    cJSON_AddNumberToObject(o, "mean_candidates", e->mean_candidates);
    cJSON *mo = cJSON_AddObjectToObject(o, "model");
    cJSON_AddNumberToObject(mo, "hr", e->hr);
    cJSON_AddNumberToObject(mo, "ndcg", e->ndcg);
    cJSON *po = cJSON_AddObjectToObject(o, "popularity");
    cJSON_AddNumberToObject(po, "hr", e->pop_hr);
    cJSON_AddNumberToObject(po, "ndcg", e->pop_ndcg);
    return o;
}
