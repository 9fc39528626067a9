/* journeys.c - per-user cluster journeys, transitions (context of the last K distinct positive
 * clusters -> next positive cluster, novel or not) and collective feedback (pooled positive rate
 * of every (context, candidate) tuple), with the versioned binary store `journeys.bin` and the
 * human-readable `feedback.tsv` (formats in docs/formats-journeys.md).
 *
 * The tuple counter is a small open-addressing hash map from a 64-bit key to a slot: a generic
 * library map (glib's GHashTable) would add a dependency for twenty lines. The file reader and
 * writer are hand-written because the format is ours. */
#include "serendip/journeys.h"
#include "serendip/manifest.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- contexts */

int64_t jr_n_contexts(int k, int32_t m) {
    if (k < 1 || m < 1) return -1;
    int64_t n = 1;
    for (int i = 0; i < k; i++) {
        if (n > INT64_MAX / m) return -1;
        n *= m;
    }
    return n;
}

int64_t jr_context_index(const int32_t *ctx, int k, int32_t m) {
    int64_t idx = 0;
    for (int i = 0; i < k; i++) {
        if (ctx[i] < 0 || ctx[i] >= m) return -1;
        idx = idx * m + ctx[i];
    }
    return idx;
}

void jr_context_from_index(int64_t idx, int k, int32_t m, int32_t *ctx) {
    for (int i = k - 1; i >= 0; i--) {
        ctx[i] = (int32_t)(idx % m);
        idx /= m;
    }
}

int jr_context_valid(const int32_t *ctx, int k, int32_t m) {
    for (int i = 0; i < k; i++) {
        if (ctx[i] < 0 || ctx[i] >= m) return 0;
        for (int j = 0; j < i; j++)
            if (ctx[j] == ctx[i]) return 0;
    }
    return 1;
}

void jr_ctx_push(int32_t *ctx, int *n, int k, int32_t c) {
    int at = -1;
    for (int i = 0; i < *n; i++)
        if (ctx[i] == c) at = i;
    if (at >= 0) {
        memmove(ctx + at, ctx + at + 1, (size_t)(*n - at - 1) * sizeof *ctx);
        (*n)--;
    } else if (*n == k) {
        memmove(ctx, ctx + 1, (size_t)(k - 1) * sizeof *ctx);
        (*n)--;
    }
    ctx[(*n)++] = c;
}

/* Copies the n clusters found walking backwards (most recent first) into ctx, most recent last.
 * Returns n. */
static int last_distinct(const int32_t *found_rev, int n, int32_t *ctx) {
    for (int i = 0; i < n; i++) ctx[i] = found_rev[n - 1 - i];
    return n;
}

int jr_context_at(const ds_dataset *ds, const tx_taxonomy *tax, const ds_positive_rule *rule, int64_t user,
                  int64_t ts_end, int k, int32_t *ctx) {
    if (user < 0 || user >= ds->n_users || k < 1 || k > JR_K_MAX) return 0;
    int32_t rev[JR_K_MAX];
    int n = 0;
    for (int64_t i = ds->user_off[user + 1] - 1; i >= ds->user_off[user] && n < k; i--) {
        const ds_event *e = &ds->events[i];
        if (e->ts >= ts_end || !ds_is_positive(rule, e)) continue;
        if (e->item < 0 || e->item >= tax->n_items) continue;
        int32_t c = tax->item_cluster[e->item];
        if (c < 0 || jr_ctx_has(rev, n, c)) continue;
        rev[n++] = c;
    }
    return last_distinct(rev, n, ctx);
}

int jr_context_of_items(const tx_taxonomy *tax, const int32_t *items, int n_items, int k, int32_t *ctx) {
    if (k < 1 || k > JR_K_MAX) return 0;
    int32_t rev[JR_K_MAX];
    int n = 0;
    for (int i = n_items - 1; i >= 0 && n < k; i--) {
        if (items[i] < 0 || items[i] >= tax->n_items) continue;
        int32_t c = tax->item_cluster[items[i]];
        if (c < 0 || jr_ctx_has(rev, n, c)) continue;
        rev[n++] = c;
    }
    return last_distinct(rev, n, ctx);
}

/* ---------------------------------------------------------------- tuple counter */

typedef struct {
    int64_t key;        /* jr_context_index(ctx) * M + cand, -1 = empty */
    int32_t users;
    int32_t last_user;  /* users are visited one after another: a new user is a change */
    int64_t exposures, positives;
} tuple_acc;

typedef struct {
    tuple_acc *t;
    size_t cap, len; /* cap a power of two */
} tuple_map;

static void map_init(tuple_map *m, size_t cap) {
    m->cap = cap;
    m->len = 0;
    m->t = sd_malloc(cap * sizeof *m->t);
    for (size_t i = 0; i < cap; i++) m->t[i].key = -1;
}

static tuple_acc *map_get(tuple_map *m, int64_t key) {
    if (2 * (m->len + 1) > m->cap) { /* keep the load under 1/2 */
        tuple_map g;
        map_init(&g, m->cap * 2);
        for (size_t i = 0; i < m->cap; i++) {
            if (m->t[i].key < 0) continue;
            size_t h = sd_mix64((uint64_t)m->t[i].key) & (g.cap - 1);
            while (g.t[h].key >= 0) h = (h + 1) & (g.cap - 1);
            g.t[h] = m->t[i];
        }
        g.len = m->len;
        free(m->t);
        *m = g;
    }
    size_t h = sd_mix64((uint64_t)key) & (m->cap - 1);
    while (m->t[h].key >= 0 && m->t[h].key != key) h = (h + 1) & (m->cap - 1);
    if (m->t[h].key < 0) {
        m->t[h] = (tuple_acc){.key = key, .last_user = -1};
        m->len++;
    }
    return &m->t[h];
}

static int cmp_acc(const void *a, const void *b) {
    int64_t x = ((const tuple_acc *)a)->key, y = ((const tuple_acc *)b)->key;
    return (x > y) - (x < y);
}

/* ---------------------------------------------------------------- build */

int jr_build(const ds_dataset *ds, const ds_split *split, const tx_taxonomy *tax, const ds_positive_rule *rule,
             int k, jr_journeys *out, sd_err *err) {
    memset(out, 0, sizeof *out);
    if (k < 1 || k > JR_K_MAX) return sd_fail(err, SD_ERR_USAGE, "journeys: K = %d is not in 1..%d", k, JR_K_MAX);
    const int32_t m = tax->n_clusters;
    if (m < 1) return sd_fail(err, SD_ERR_DATA, "journeys: the taxonomy has no clusters");
    if (tax->n_items != ds->n_items)
        return sd_fail(err, SD_ERR_DATA, "journeys: the taxonomy covers %lld items, the dataset has %lld (rerun 'serendip cluster')",
                       (long long)tax->n_items, (long long)ds->n_items);
    int64_t nctx = jr_n_contexts(k, m);
    if (nctx < 0 || nctx > INT64_MAX / m) return sd_fail(err, SD_ERR_USAGE, "journeys: M^(K+1) = %d^%d overflows", m, k + 1);
    const int64_t train_end = split ? split->train_end : INT64_MAX;

    int64_t *journey_off = sd_calloc((size_t)ds->n_users + 1, sizeof *journey_off);
    sd_vec journey, trans;
    sd_vec_init(&journey, sizeof(int32_t));
    sd_vec_init(&trans, sizeof(jr_transition));
    tuple_map map;
    map_init(&map, 1024);
    int32_t *seen = sd_malloc((size_t)m * sizeof *seen); /* user who last engaged c positively, -1 */
    for (int32_t c = 0; c < m; c++) seen[c] = -1;
    int64_t n_novel = 0;

    sd_progress prog;
    sd_progress_start(&prog, "journeys", ds->n_users);
    for (int64_t u = 0; u < ds->n_users; u++) {
        int32_t ctx[JR_K_MAX];
        int nctx_u = 0;
        int32_t last = -1; /* last journey step */
        for (int64_t i = ds->user_off[u]; i < ds->user_off[u + 1]; i++) {
            const ds_event *e = &ds->events[i];
            if (e->ts >= (split ? ds_split_train_end(split, u) : INT64_MAX)) break; /* sorted by time within a user */
            if (e->item < 0 || e->item >= tax->n_items) continue;
            int32_t c = tax->item_cluster[e->item];
            if (c < 0 || c >= m) continue;
            int pos = ds_is_positive(rule, e);
            if (nctx_u == k && !jr_ctx_has(ctx, k, c)) { /* an exposure of (ctx, c) */
                tuple_acc *a = map_get(&map, jr_context_index(ctx, k, m) * m + c);
                if (a->last_user != (int32_t)u) {
                    a->last_user = (int32_t)u;
                    a->users++;
                }
                a->exposures++;
                a->positives += pos;
            }
            if (!pos || c == last) continue;
            *(int32_t *)sd_vec_push(&journey) = c;
            last = c;
            if (nctx_u == k) {
                jr_transition *t = sd_vec_push(&trans);
                t->ts = e->ts;
                t->user = (int32_t)u;
                t->next = c;
                for (int j = 0; j < JR_K_MAX; j++) t->ctx[j] = j < k ? ctx[j] : -1;
                t->novel = seen[c] != (int32_t)u;
                n_novel += t->novel;
            }
            seen[c] = (int32_t)u;
            jr_ctx_push(ctx, &nctx_u, k, c);
        }
        journey_off[u + 1] = (int64_t)journey.len;
        sd_progress_update(&prog, u + 1, NULL);
    }
    sd_progress_end(&prog);
    free(seen);

    /* compact the map into the sorted feedback array */
    size_t nf = 0;
    for (size_t i = 0; i < map.cap; i++)
        if (map.t[i].key >= 0) map.t[nf++] = map.t[i];
    qsort(map.t, nf, sizeof *map.t, cmp_acc);
    jr_feedback *fb = sd_calloc(nf + 1, sizeof *fb);
    for (size_t i = 0; i < nf; i++) {
        const tuple_acc *a = &map.t[i];
        jr_feedback *f = &fb[i];
        for (int j = 0; j < JR_K_MAX; j++) f->ctx[j] = -1;
        jr_context_from_index(a->key / m, k, m, f->ctx);
        f->cand = (int32_t)(a->key % m);
        f->users = a->users;
        f->exposures = a->exposures;
        f->positives = a->positives;
        f->pos_rate = (float)((double)a->positives / (double)a->exposures);
    }
    free(map.t);

    out->k = k;
    out->n_clusters = m;
    out->n_users = ds->n_users;
    out->train_end = train_end;
    out->tax_hash = tx_hash(tax);
    out->rule = *rule;
    out->n_steps = (int64_t)journey.len;
    out->journey_off = journey_off;
    out->journey = journey.data ? journey.data : sd_calloc(1, sizeof(int32_t));
    out->n_transitions = (int64_t)trans.len;
    out->n_novel = n_novel;
    out->transitions = trans.data ? trans.data : sd_calloc(1, sizeof(jr_transition));
    out->n_feedback = (int64_t)nf;
    out->feedback = fb;
    out->owned[0] = journey_off;
    out->owned[1] = (void *)out->journey;
    out->owned[2] = (void *)out->transitions;
    out->owned[3] = fb;
    return SD_OK;
}

void jr_free(jr_journeys *j) {
    for (int i = 0; i < 4; i++) free(j->owned[i]);
    memset(j, 0, sizeof *j);
}

const jr_feedback *jr_feedback_find(const jr_journeys *j, const int32_t *ctx, int32_t cand) {
    if (cand < 0 || cand >= j->n_clusters) return NULL;
    int64_t ci = jr_context_index(ctx, j->k, j->n_clusters);
    if (ci < 0) return NULL;
    int64_t key = ci * j->n_clusters + cand, lo = 0, hi = j->n_feedback;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const jr_feedback *f = &j->feedback[mid];
        int64_t fk = jr_context_index(f->ctx, j->k, j->n_clusters) * j->n_clusters + f->cand;
        if (fk == key) return f;
        if (fk < key) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* ---------------------------------------------------------------- file: journeys.bin */

#define JR_MAGIC "SDJRN\0\0" /* 8 bytes with the NULs */
#define JR_VERSION 1
#define JR_HEADER_SIZE 128

typedef struct {
    char magic[8];
    uint32_t version, header_size;
    int32_t k, n_clusters;
    int64_t n_users, train_end;
    uint64_t tax_hash;
    float min_rating, min_watch;
    int64_t n_steps, n_transitions, n_novel, n_feedback;
    uint64_t file_size;
    uint8_t reserved[32];
} jr_header;
_Static_assert(sizeof(jr_header) == JR_HEADER_SIZE, "jr_header is 128 bytes");
_Static_assert(sizeof(jr_transition) == 40, "jr_transition is the 40-byte on-disk record");
_Static_assert(sizeof(jr_feedback) == 48, "jr_feedback is the 48-byte on-disk record");

static uint64_t pad8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

/* Section offsets from the counts: journey_off, journey (padded to 8), transitions, feedback. */
static void jr_layout(const jr_header *h, uint64_t off[5]) {
    off[0] = JR_HEADER_SIZE;
    off[1] = off[0] + ((uint64_t)h->n_users + 1) * 8;
    off[2] = off[1] + pad8((uint64_t)h->n_steps * 4);
    off[3] = off[2] + (uint64_t)h->n_transitions * sizeof(jr_transition);
    off[4] = off[3] + (uint64_t)h->n_feedback * sizeof(jr_feedback);
}

int jr_save(const jr_journeys *j, const char *path, sd_err *err) {
    jr_header h = {0};
    memcpy(h.magic, JR_MAGIC, 8);
    h.version = JR_VERSION;
    h.header_size = JR_HEADER_SIZE;
    h.k = j->k;
    h.n_clusters = j->n_clusters;
    h.n_users = j->n_users;
    h.train_end = j->train_end;
    h.tax_hash = j->tax_hash;
    h.min_rating = j->rule.min_rating;
    h.min_watch = j->rule.min_watch;
    h.n_steps = j->n_steps;
    h.n_transitions = j->n_transitions;
    h.n_novel = j->n_novel;
    h.n_feedback = j->n_feedback;
    uint64_t off[5];
    jr_layout(&h, off);
    h.file_size = off[4];
    sd_afile a;
    int rc = sd_afile_open(&a, path, err);
    if (rc) return rc;
    static const uint8_t zeros[8] = {0};
    fwrite(&h, sizeof h, 1, a.f);
    fwrite(j->journey_off, 8, (size_t)j->n_users + 1, a.f);
    fwrite(j->journey, 4, (size_t)j->n_steps, a.f);
    fwrite(zeros, 1, (size_t)(pad8((uint64_t)j->n_steps * 4) - (uint64_t)j->n_steps * 4), a.f);
    fwrite(j->transitions, sizeof(jr_transition), (size_t)j->n_transitions, a.f);
    fwrite(j->feedback, sizeof(jr_feedback), (size_t)j->n_feedback, a.f);
    return sd_afile_commit(&a, err);
}

int jr_load(jr_journeys *j, const char *path, sd_err *err) {
    memset(j, 0, sizeof *j);
    if (!sd_file_exists(path))
        return sd_fail(err, SD_ERR_STATE, "%s: no journeys in this workspace (run 'serendip journeys')", path);
    char *buf;
    size_t size;
    int rc = sd_read_file(path, &buf, &size, err);
    if (rc) return rc;
    jr_header h;
    if (size < 8 || memcmp(buf, JR_MAGIC, 8) != 0) {
        rc = sd_fail(err, SD_ERR_FORMAT, "%s: not a journeys file (magic is not \"SDJRN\")", path);
        goto fail;
    }
    if (size < sizeof h) {
        rc = sd_fail(err, SD_ERR_FORMAT, "%s: truncated journeys file (%zu bytes)", path, size);
        goto fail;
    }
    memcpy(&h, buf, sizeof h);
    if (h.version != JR_VERSION) {
        rc = sd_fail(err, SD_ERR_FORMAT, "%s: journeys version %u, this build reads %d (rerun 'serendip journeys')", path,
                     h.version, JR_VERSION);
        goto fail;
    }
    if (h.header_size != JR_HEADER_SIZE || h.k < 1 || h.k > JR_K_MAX || h.n_clusters < 1 || h.n_users < 0 ||
        h.n_steps < 0 || h.n_transitions < 0 || h.n_feedback < 0 || h.n_novel < 0 || h.n_novel > h.n_transitions ||
        h.n_users > ((int64_t)1 << 40) || h.n_steps > ((int64_t)1 << 40) || h.n_transitions > ((int64_t)1 << 40) ||
        h.n_feedback > ((int64_t)1 << 40) || jr_n_contexts(h.k + 1, h.n_clusters) < 0) {
        rc = sd_fail(err, SD_ERR_FORMAT, "%s: inconsistent journeys header", path);
        goto fail;
    }
    uint64_t off[5];
    jr_layout(&h, off);
    if (h.file_size != off[4] || size != off[4]) {
        rc = sd_fail(err, SD_ERR_FORMAT, "%s: truncated or padded journeys file (%zu bytes, expected %llu)", path, size,
                     (unsigned long long)off[4]);
        goto fail;
    }
    j->k = h.k;
    j->n_clusters = h.n_clusters;
    j->n_users = h.n_users;
    j->train_end = h.train_end;
    j->tax_hash = h.tax_hash;
    j->rule = (ds_positive_rule){h.min_rating, h.min_watch};
    j->n_steps = h.n_steps;
    j->n_transitions = h.n_transitions;
    j->n_novel = h.n_novel;
    j->n_feedback = h.n_feedback;
    j->journey_off = (const int64_t *)(buf + off[0]);
    j->journey = (const int32_t *)(buf + off[1]);
    j->transitions = (const jr_transition *)(buf + off[2]);
    j->feedback = (const jr_feedback *)(buf + off[3]);
    j->owned[0] = buf;
    /* validate what later code indexes with */
    if (j->journey_off[0] != 0 || j->journey_off[j->n_users] != j->n_steps) goto corrupt;
    for (int64_t u = 0; u < j->n_users; u++)
        if (j->journey_off[u + 1] < j->journey_off[u]) goto corrupt;
    for (int64_t i = 0; i < j->n_steps; i++)
        if (j->journey[i] < 0 || j->journey[i] >= j->n_clusters) goto corrupt;
    for (int64_t i = 0; i < j->n_transitions; i++) {
        const jr_transition *t = &j->transitions[i];
        if (t->user < 0 || t->user >= j->n_users || t->next < 0 || t->next >= j->n_clusters ||
            jr_context_index(t->ctx, j->k, j->n_clusters) < 0)
            goto corrupt;
    }
    int64_t prev = -1;
    for (int64_t i = 0; i < j->n_feedback; i++) {
        const jr_feedback *f = &j->feedback[i];
        int64_t ci = jr_context_index(f->ctx, j->k, j->n_clusters);
        if (ci < 0 || f->cand < 0 || f->cand >= j->n_clusters || f->exposures < 1 || f->positives < 0 ||
            f->positives > f->exposures || ci * j->n_clusters + f->cand <= prev)
            goto corrupt;
        prev = ci * j->n_clusters + f->cand;
    }
    return SD_OK;
corrupt:
    jr_free(j);
    return sd_fail(err, SD_ERR_FORMAT, "%s: corrupted journeys file (a cluster or offset is out of range)", path);
fail:
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- feedback.tsv */

/* Writes s with tabs and newlines turned into spaces (descriptions are free text). */
static void put_clean(FILE *f, const char *s) {
    for (; *s; s++) fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

int jr_write_feedback_tsv(const jr_journeys *j, const tx_taxonomy *tax, const char *path, sd_err *err) {
    if (tax->n_clusters != j->n_clusters)
        return sd_fail(err, SD_ERR_DATA, "feedback.tsv: taxonomy has %d clusters, journeys %d", tax->n_clusters, j->n_clusters);
    sd_afile a;
    int rc = sd_afile_open(&a, path, err);
    if (rc) return rc;
    fprintf(a.f, "context\tcontext_desc\tcandidate\tcandidate_desc\tusers\texposures\tpositives\tpos_rate\n");
    for (int64_t i = 0; i < j->n_feedback; i++) {
        const jr_feedback *f = &j->feedback[i];
        for (int c = 0; c < j->k; c++) fprintf(a.f, "%s%d", c ? "," : "", f->ctx[c]);
        fputc('\t', a.f);
        for (int c = 0; c < j->k; c++) {
            if (c) fputs(" > ", a.f);
            put_clean(a.f, tax->desc[f->ctx[c]]);
        }
        fprintf(a.f, "\t%d\t", f->cand);
        put_clean(a.f, tax->desc[f->cand]);
        fprintf(a.f, "\t%d\t%lld\t%lld\t%.6f\n", f->users, (long long)f->exposures, (long long)f->positives,
                (double)f->pos_rate);
    }
    return sd_afile_commit(&a, err);
}

/* ---------------------------------------------------------------- the stage */

int jr_parse_positive(const char *s, ds_positive_rule *rule, sd_err *err) {
    ds_positive_rule r = *rule;
    const char *p = s;
    if (!*p) goto bad;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char part[64];
        if (len == 0 || len >= sizeof part) goto bad;
        memcpy(part, p, len);
        part[len] = 0;
        char *colon = strchr(part, ':'), *end;
        if (!colon) goto bad;
        *colon = 0;
        float v = strtof(colon + 1, &end);
        if (end == colon + 1 || *end || v != v) goto bad;
        if (!strcmp(part, "rating")) r.min_rating = v;
        else if (!strcmp(part, "watch")) {
            if (v < 0 || v > 1) return sd_fail(err, SD_ERR_USAGE, "--positive: watch fraction %g is not in [0, 1]", (double)v);
            r.min_watch = v;
        } else goto bad;
        if (comma && !comma[1]) goto bad; /* trailing comma */
        p += len + (comma ? 1 : 0);
    }
    *rule = r;
    return SD_OK;
bad:
    return sd_fail(err, SD_ERR_USAGE, "--positive: '%s' is not of the form rating:X, watch:X or rating:X,watch:Y", s);
}

int jr_workspace_rule(const char *ws, ds_positive_rule *rule, int *from_file, sd_err *err) {
    *rule = DS_POSITIVE_DEFAULT;
    if (from_file) *from_file = 0;
    char *path = sd_path_join(ws, JR_FILE);
    if (!sd_file_exists(path)) {
        free(path);
        return SD_OK;
    }
    sd_map m;
    int rc = sd_map_open(&m, path, err);
    if (rc) {
        free(path);
        return rc;
    }
    jr_header h;
    if (m.size < sizeof h || memcmp(m.data, JR_MAGIC, 8) != 0) {
        rc = sd_fail(err, SD_ERR_FORMAT, "%s: not a journeys file (rerun 'serendip journeys')", path);
    } else {
        memcpy(&h, m.data, sizeof h);
        if (h.version != JR_VERSION || h.header_size != JR_HEADER_SIZE)
            rc = sd_fail(err, SD_ERR_FORMAT, "%s: journeys version %u, this build reads %d (rerun 'serendip journeys')", path,
                         h.version, JR_VERSION);
        else if (!(h.min_rating == h.min_rating) || !(h.min_watch >= 0 && h.min_watch <= 1))
            rc = sd_fail(err, SD_ERR_FORMAT, "%s: invalid positive rule in the header (rating %g, watch %g)", path,
                         (double)h.min_rating, (double)h.min_watch);
        else {
            *rule = (ds_positive_rule){h.min_rating, h.min_watch};
            if (from_file) *from_file = 1;
        }
    }
    sd_map_close(&m);
    free(path);
    return rc;
}

int jr_resolve_rule(const char *ws, const char *positive, ds_positive_rule *rule, sd_err *err) {
    ds_positive_rule own;
    int from_file, rc = jr_workspace_rule(ws, &own, &from_file, err);
    if (rc) return rc;
    *rule = own;
    if (!positive) return SD_OK;
    if ((rc = jr_parse_positive(positive, rule, err))) return rc;
    if (rule->min_rating != own.min_rating || rule->min_watch != own.min_watch) {
        char a[64], b[64];
        jr_format_positive(rule, a, sizeof a), jr_format_positive(&own, b, sizeof b);
        sd_log("note: --positive %s differs from the workspace's rule %s%s", a, b,
               from_file ? " (recorded in journeys.bin)" : " (the default: no journeys.bin)");
    }
    return SD_OK;
}

void jr_format_positive(const ds_positive_rule *rule, char *buf, size_t cap) {
    snprintf(buf, cap, "rating:%g,watch:%g", (double)rule->min_rating, (double)rule->min_watch);
}

int jr_run(const char *ws, int k, const ds_positive_rule *rule, jr_journeys *out, sd_err *err) {
    char *pd = sd_path_join(ws, DS_FILE), *ps = sd_path_join(ws, DS_SPLIT_FILE), *pt = sd_path_join(ws, TX_FILE),
         *pj = sd_path_join(ws, JR_FILE), *pf = sd_path_join(ws, JR_FEEDBACK_TSV);
    ds_dataset ds;
    tx_taxonomy tax;
    ds_split split, *sp = NULL;
    jr_journeys j;
    int rc, have_ds = 0, have_tax = 0, have_j = 0;
    if (!sd_file_exists(pd)) {
        rc = sd_fail(err, SD_ERR_STATE, "%s: no dataset in this workspace (run 'serendip world' or 'serendip ingest')", pd);
        goto done;
    }
    if ((rc = ds_load(&ds, pd, err))) goto done;
    have_ds = 1;
    if (!sd_file_exists(pt)) {
        rc = sd_fail(err, SD_ERR_STATE, "%s: no taxonomy in this workspace (run 'serendip cluster')", pt);
        goto done;
    }
    const char *tx_in[] = {TX_FILE};
    if ((rc = mf_check(ws, tx_in, 1, err))) goto done; /* a taxonomy of an older dataset */
    if ((rc = tx_load(&tax, pt, err))) goto done;
    have_tax = 1;
    if (sd_file_exists(ps)) {
        if ((rc = ds_split_load(&split, ps, err))) goto done;
        sp = &split;
    } else {
        sd_log("journeys: no %s, using every event (run 'serendip split' for a train window)", DS_SPLIT_FILE);
    }
    if ((rc = jr_build(&ds, sp, &tax, rule, k, &j, err))) goto done;
    have_j = 1;
    if ((rc = jr_save(&j, pj, err))) goto done;
    if ((rc = jr_write_feedback_tsv(&j, &tax, pf, err))) goto done;
    const char *inputs[] = {DS_FILE, DS_SPLIT_FILE, TX_FILE};
    if ((rc = mf_record(ws, JR_FILE, "journeys", inputs, 3, err))) goto done;
    if ((rc = mf_record(ws, JR_FEEDBACK_TSV, "journeys", inputs, 3, err))) goto done;
done:
    if (have_j) {
        if (rc == SD_OK && out) *out = j;
        else jr_free(&j);
    }
    if (sp) ds_split_free(&split);
    if (have_tax) tx_free(&tax);
    if (have_ds) ds_free(&ds);
    free(pd); free(ps); free(pt); free(pj); free(pf);
    return rc;
}
