/* table.c - the explore table: a versioned binary file of fixed-size slots, one per context,
 * mmapped for O(1) lookups (format in docs/formats-table.md).
 *
 * Hand-written rather than a key-value store (LMDB, SQLite): the keys are dense integers
 * 0..M^K-1, so an array in a flat file is the fastest possible index and needs no library; the
 * file is validated completely when opened, so a lookup never reads outside the map. */
#include "serendip/table.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *tbl_kind_name(int32_t kind) {
    static const char *const names[] = {"unknown", "llm", "single", "llm_feedback", "rl", "llm_pairwise"};
    return kind >= 1 && kind <= TBL_KIND_MAX ? names[kind] : names[0];
}

/* ---------------------------------------------------------------- header layout (little-endian) */

enum {
    H_MAGIC = 0,       /* char[8] "SDTBL\0\0\0" */
    H_VERSION = 8,     /* u32 */
    H_HSIZE = 12,      /* u32 TBL_HEADER_SIZE */
    H_K = 16,          /* i32 */
    H_M = 20,          /* i32 */
    H_NCTX = 24,       /* i64 */
    H_TOP = 32,        /* i32 */
    H_NSAMPLES = 36,   /* i32 */
    H_TEMP = 40,       /* f32 */
    H_SLOT = 44,       /* u32 slot size */
    H_SEED = 48,       /* u64 */
    H_TAX = 56,        /* u64 */
    H_NOV = 64,        /* u64 */
    H_ALIGN = 72,      /* u64 */
    H_BEGIN = 80,      /* i64 */
    H_END = 88,        /* i64 */
    H_STATS = 96,      /* 6 x i64 */
    H_KIND = 144,      /* i32 tbl_kind (version 2) */
    H_TOP_P = 148,     /* f32 nucleus-sampling mass (version 2) */
    H_CHECKSUM = 248,  /* u64 FNV-1a of bytes [0, 248) */
};
#define SLOT_HEAD 8 /* u32 count, u32 flags */

struct tbl_builder {
    tbl_params p;
    tbl_stats s;
    size_t slot_size;
    uint8_t *slots; /* (end - begin, slot_size) */
};

static size_t slot_size_of(int top) { return SLOT_HEAD + (size_t)top * sizeof(tbl_entry); }

/* M^K or -1 on overflow. */
static int64_t pow_ctx(int k, int32_t m) {
    int64_t n = 1;
    for (int i = 0; i < k; i++) {
        if (m != 0 && n > INT64_MAX / m) return -1;
        n *= m;
    }
    return n;
}

/* Checks params for consistency; returns SD_OK or fills err (what names the source). */
static int check_params(const tbl_params *p, const char *what, sd_err *err) {
    if (p->k < 1 || p->k > 4) return sd_fail(err, SD_ERR_FORMAT, "%s: context length K = %d is not in 1..4", what, p->k);
    if (p->n_clusters < 1) return sd_fail(err, SD_ERR_FORMAT, "%s: cluster count M = %d is not positive", what, p->n_clusters);
    int64_t n = pow_ctx(p->k, p->n_clusters);
    if (n < 0 || n > ((int64_t)1 << 40))
        return sd_fail(err, SD_ERR_FORMAT, "%s: M^K = %d^%d is too large", what, p->n_clusters, p->k);
    if (p->n_contexts != n)
        return sd_fail(err, SD_ERR_FORMAT, "%s: n_contexts = %lld, expected M^K = %lld", what, (long long)p->n_contexts,
                       (long long)n);
    if (p->top < 1 || p->top > TBL_TOP_MAX)
        return sd_fail(err, SD_ERR_FORMAT, "%s: top = %d is not in 1..%d", what, p->top, TBL_TOP_MAX);
    if (p->begin < 0 || p->end > p->n_contexts || p->begin > p->end)
        return sd_fail(err, SD_ERR_FORMAT, "%s: range [%lld, %lld) is not within [0, %lld)", what, (long long)p->begin,
                       (long long)p->end, (long long)p->n_contexts);
    if (p->kind < 1 || p->kind > TBL_KIND_MAX)
        return sd_fail(err, SD_ERR_FORMAT, "%s: table kind %d is not in 1..%d", what, p->kind, TBL_KIND_MAX);
    return SD_OK;
}

/* Why entry e of a slot with `flags` of a table with params p carries a value no reader can
 * use, or NULL when it is fine. The rule (docs/formats-table.md): no infinity anywhere; NaN means
 * "no value" and is allowed only where there is none: both fields of a fallback slot's entries,
 * and the alignment score of every entry of a table planned without the alignment model
 * (align_hash 0). */
static const char *entry_value_problem(const tbl_params *p, uint32_t flags, float score, float logprob) {
    if (isinf(score) || isinf(logprob)) return "an infinite score or log-probability";
    if (flags & TBL_FLAG_FALLBACK) return NULL;
    if (isnan(logprob) && p->kind != TBL_KIND_LLM_FEEDBACK) /* there: an observed candidate never sampled */
        return "a NaN log-probability outside a fallback slot";
    if (isnan(score) && p->align_hash) return "a NaN alignment score outside a fallback slot of an aligned table";
    return NULL;
}

/* ---------------------------------------------------------------- writer */

tbl_builder *tbl_builder_new(const tbl_params *p, sd_err *err) {
    if (check_params(p, "table parameters", err)) {
        if (err) err->code = SD_ERR_USAGE;
        return NULL;
    }
    tbl_builder *b = sd_calloc(1, sizeof *b);
    b->p = *p;
    b->slot_size = slot_size_of(p->top);
    b->slots = sd_calloc((size_t)(p->end - p->begin) + 1, b->slot_size);
    return b;
}

int tbl_builder_set(tbl_builder *b, int64_t ctx_index, const tbl_entry *e, int n, uint32_t flags, sd_err *err) {
    if (ctx_index < b->p.begin || ctx_index >= b->p.end)
        return sd_fail(err, SD_ERR_USAGE, "table: context %lld is outside the shard [%lld, %lld)", (long long)ctx_index,
                       (long long)b->p.begin, (long long)b->p.end);
    if (n < 0 || n > b->p.top) return sd_fail(err, SD_ERR_USAGE, "table: %d entries exceed top = %d", n, b->p.top);
    if (flags & ~TBL_FLAGS_KNOWN) return sd_fail(err, SD_ERR_USAGE, "table: unknown slot flags 0x%x", flags);
    for (int i = 0; i < n; i++) {
        if (e[i].cluster < 0 || e[i].cluster >= b->p.n_clusters)
            return sd_fail(err, SD_ERR_USAGE, "table: entry cluster %d is not in [0, %d)", e[i].cluster, b->p.n_clusters);
        const char *why = entry_value_problem(&b->p, flags, e[i].align_score, e[i].novelty_logprob);
        if (why) return sd_fail(err, SD_ERR_USAGE, "table: context %lld entry %d has %s", (long long)ctx_index, i, why);
    }
    uint8_t *s = b->slots + (size_t)(ctx_index - b->p.begin) * b->slot_size;
    memset(s, 0, b->slot_size);
    uint32_t cnt = (uint32_t)n;
    memcpy(s, &cnt, 4);
    memcpy(s + 4, &flags, 4);
    if (n) memcpy(s + SLOT_HEAD, e, (size_t)n * sizeof(tbl_entry));
    return SD_OK;
}

void tbl_builder_add_stats(tbl_builder *b, const tbl_stats *s) {
    b->s.contexts_planned += s->contexts_planned;
    b->s.samples += s->samples;
    b->s.samples_compliant += s->samples_compliant;
    b->s.samples_novel += s->samples_novel;
    b->s.contexts_fallback += s->contexts_fallback;
    b->s.fallback_kind = s->fallback_kind; /* a policy code, not a count: the same in every shard */
}

static void put32(uint8_t *h, int off, uint32_t v) { memcpy(h + off, &v, 4); }
static void put64(uint8_t *h, int off, uint64_t v) { memcpy(h + off, &v, 8); }
static uint32_t get32(const uint8_t *h, int off) { uint32_t v; memcpy(&v, h + off, 4); return v; }
static uint64_t get64(const uint8_t *h, int off) { uint64_t v; memcpy(&v, h + off, 8); return v; }

static void encode_header(uint8_t h[TBL_HEADER_SIZE], const tbl_params *p, const tbl_stats *s, size_t slot_size) {
    memset(h, 0, TBL_HEADER_SIZE);
    memcpy(h + H_MAGIC, TBL_MAGIC, 8);
    put32(h, H_VERSION, TBL_VERSION);
    put32(h, H_HSIZE, TBL_HEADER_SIZE);
    put32(h, H_K, (uint32_t)p->k);
    put32(h, H_M, (uint32_t)p->n_clusters);
    put64(h, H_NCTX, (uint64_t)p->n_contexts);
    put32(h, H_TOP, (uint32_t)p->top);
    put32(h, H_NSAMPLES, (uint32_t)p->n_samples);
    memcpy(h + H_TEMP, &p->temperature, 4);
    put32(h, H_SLOT, (uint32_t)slot_size);
    put64(h, H_SEED, p->seed);
    put64(h, H_TAX, p->tax_hash);
    put64(h, H_NOV, p->novelty_hash);
    put64(h, H_ALIGN, p->align_hash);
    put64(h, H_BEGIN, (uint64_t)p->begin);
    put64(h, H_END, (uint64_t)p->end);
    put32(h, H_KIND, (uint32_t)p->kind);
    memcpy(h + H_TOP_P, &p->top_p, 4);
    const int64_t st[6] = {s->contexts_planned, s->samples, s->samples_compliant, s->samples_novel, s->contexts_fallback,
                           s->fallback_kind};
    for (int i = 0; i < 6; i++) put64(h, H_STATS + 8 * i, (uint64_t)st[i]);
    put64(h, H_CHECKSUM, sd_hash64(h, H_CHECKSUM, SD_HASH_SEED));
}

int tbl_write(const tbl_builder *b, const char *path, sd_err *err) {
    uint8_t h[TBL_HEADER_SIZE];
    encode_header(h, &b->p, &b->s, b->slot_size);
    sd_afile a;
    if (sd_afile_open(&a, path, err)) return err ? err->code : SD_ERR_IO;
    fwrite(h, 1, sizeof h, a.f);
    size_t body = (size_t)(b->p.end - b->p.begin) * b->slot_size;
    if (body) fwrite(b->slots, 1, body, a.f);
    return sd_afile_commit(&a, err);
}

void tbl_builder_free(tbl_builder *b) {
    if (!b) return;
    free(b->slots);
    free(b);
}

/* ---------------------------------------------------------------- reader */

int tbl_open_mem(tbl_table *t, const void *data, size_t size, sd_err *err) {
    memset(t, 0, sizeof *t);
    const uint8_t *h = data;
    if (size < 8 || memcmp(h, TBL_MAGIC, 8) != 0)
        return sd_fail(err, SD_ERR_FORMAT, "not an explore table (magic is not \"SDTBL\")");
    if (size < TBL_HEADER_SIZE)
        return sd_fail(err, SD_ERR_FORMAT, "truncated explore table: %zu bytes, the header alone is %d", size,
                       TBL_HEADER_SIZE);
    uint32_t version = get32(h, H_VERSION);
    if (version != TBL_VERSION)
        return sd_fail(err, SD_ERR_FORMAT, "explore table version %u, this build reads version %d (rerun 'serendip plan')",
                       version, TBL_VERSION);
    if (get32(h, H_HSIZE) != TBL_HEADER_SIZE)
        return sd_fail(err, SD_ERR_FORMAT, "explore table header size %u, expected %d", get32(h, H_HSIZE), TBL_HEADER_SIZE);
    if (get64(h, H_CHECKSUM) != sd_hash64(h, H_CHECKSUM, SD_HASH_SEED))
        return sd_fail(err, SD_ERR_FORMAT, "explore table header checksum mismatch (corrupted file)");
    tbl_params *p = &t->p;
    p->k = (int32_t)get32(h, H_K);
    p->n_clusters = (int32_t)get32(h, H_M);
    p->n_contexts = (int64_t)get64(h, H_NCTX);
    p->top = (int32_t)get32(h, H_TOP);
    p->n_samples = (int32_t)get32(h, H_NSAMPLES);
    memcpy(&p->temperature, h + H_TEMP, 4);
    p->seed = get64(h, H_SEED);
    p->tax_hash = get64(h, H_TAX);
    p->novelty_hash = get64(h, H_NOV);
    p->align_hash = get64(h, H_ALIGN);
    p->begin = (int64_t)get64(h, H_BEGIN);
    p->end = (int64_t)get64(h, H_END);
    p->kind = (int32_t)get32(h, H_KIND);
    memcpy(&p->top_p, h + H_TOP_P, 4);
    int64_t st[6];
    for (int i = 0; i < 6; i++) st[i] = (int64_t)get64(h, H_STATS + 8 * i);
    t->s = (tbl_stats){st[0], st[1], st[2], st[3], st[4], st[5]};
    if (check_params(p, "explore table", err)) return err ? err->code : SD_ERR_FORMAT;
    t->slot_size = slot_size_of(p->top);
    if (get32(h, H_SLOT) != t->slot_size)
        return sd_fail(err, SD_ERR_FORMAT, "explore table slot size %u, expected %zu for top = %d", get32(h, H_SLOT),
                       t->slot_size, p->top);
    uint64_t nslots = (uint64_t)(p->end - p->begin);
    uint64_t want = TBL_HEADER_SIZE + nslots * t->slot_size;
    if (size < want)
        return sd_fail(err, SD_ERR_FORMAT, "truncated explore table: %zu bytes, expected %llu for %llu slots", size,
                       (unsigned long long)want, (unsigned long long)nslots);
    if (size > want)
        return sd_fail(err, SD_ERR_FORMAT, "explore table has %zu trailing bytes after %llu slots", size - (size_t)want,
                       (unsigned long long)nslots);
    t->slots = h + TBL_HEADER_SIZE;
    /* validate every slot once, so that lookups need no checks beyond the range */
    for (uint64_t i = 0; i < nslots; i++) {
        const uint8_t *s = t->slots + i * t->slot_size;
        uint32_t cnt = get32(s, 0), flags = get32(s, 4);
        if (cnt > (uint32_t)p->top || (flags & ~TBL_FLAGS_KNOWN))
            return sd_fail(err, SD_ERR_FORMAT, "explore table slot %llu is corrupted (count %u, flags 0x%x)",
                           (unsigned long long)(p->begin + (int64_t)i), cnt, flags);
        for (uint32_t j = 0; j < cnt; j++) {
            tbl_entry e;
            memcpy(&e, s + SLOT_HEAD + j * sizeof(tbl_entry), sizeof e);
            if (e.cluster < 0 || e.cluster >= p->n_clusters)
                return sd_fail(err, SD_ERR_FORMAT, "explore table slot %llu entry %u: cluster %d is not in [0, %d)",
                               (unsigned long long)(p->begin + (int64_t)i), j, e.cluster, p->n_clusters);
            const char *why = entry_value_problem(p, flags, e.align_score, e.novelty_logprob);
            if (why)
                return sd_fail(err, SD_ERR_FORMAT, "explore table slot %llu entry %u has %s (score %g, logprob %g)",
                               (unsigned long long)(p->begin + (int64_t)i), j, why, (double)e.align_score,
                               (double)e.novelty_logprob);
        }
    }
    return SD_OK;
}

int tbl_open(tbl_table *t, const char *path, sd_err *err) {
    sd_map m;
    if (sd_map_open(&m, path, err)) return err ? err->code : SD_ERR_IO;
    int rc = tbl_open_mem(t, m.data, m.size, err);
    if (rc) {
        sd_err_prefix(err, "%s", path);
        sd_map_close(&m);
        memset(t, 0, sizeof *t);
        return rc;
    }
    t->map = m;
    return SD_OK;
}

void tbl_close(tbl_table *t) {
    if (t->map.data) sd_map_close(&t->map);
    memset(t, 0, sizeof *t);
}

int tbl_lookup(const tbl_table *t, int64_t ctx_index, const tbl_entry **e, uint32_t *flags) {
    if (ctx_index < t->p.begin || ctx_index >= t->p.end) return -1;
    const uint8_t *s = t->slots + (size_t)(ctx_index - t->p.begin) * t->slot_size;
    if (flags) *flags = get32(s, 4);
    *e = (const tbl_entry *)(s + SLOT_HEAD); /* 4-byte aligned: header 256, slots 8 + 12 * top */
    return (int)get32(s, 0);
}

/* ---------------------------------------------------------------- merge */

static int same_run(const tbl_params *a, const tbl_params *b) {
    return a->k == b->k && a->n_clusters == b->n_clusters && a->n_contexts == b->n_contexts && a->top == b->top &&
           a->n_samples == b->n_samples && memcmp(&a->temperature, &b->temperature, 4) == 0 && a->seed == b->seed &&
           a->tax_hash == b->tax_hash && a->novelty_hash == b->novelty_hash && a->align_hash == b->align_hash;
}

int tbl_merge(const char *const *shards, int n, const char *out, sd_err *err) {
    if (n < 1) return sd_fail(err, SD_ERR_USAGE, "plan-merge: no shard files given");
    tbl_table *t = sd_calloc((size_t)n, sizeof *t);
    int *order = sd_calloc((size_t)n, sizeof *order);
    int rc = SD_OK, opened = 0;
    for (; opened < n; opened++) {
        if ((rc = tbl_open(&t[opened], shards[opened], err))) goto done;
        order[opened] = opened;
    }
    for (int i = 1; i < n; i++)
        if (!same_run(&t[0].p, &t[i].p) || t[0].s.fallback_kind != t[i].s.fallback_kind) {
            rc = sd_fail(err, SD_ERR_DATA,
                         "plan-merge: %s and %s come from different runs (parameters, seed or taxonomy/model hashes differ)",
                         shards[0], shards[i]);
            goto done;
        }
    /* insertion sort by begin: n is a handful of shards */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[order[j]].p.begin < t[order[j - 1]].p.begin; j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        const tbl_params *p = &t[order[i]].p;
        if (p->begin > at) {
            rc = sd_fail(err, SD_ERR_DATA, "plan-merge: contexts [%lld, %lld) are covered by no shard", (long long)at,
                         (long long)p->begin);
            goto done;
        }
        if (p->begin < at) {
            rc = sd_fail(err, SD_ERR_DATA, "plan-merge: %s overlaps another shard at context %lld", shards[order[i]],
                         (long long)p->begin);
            goto done;
        }
        at = p->end;
    }
    if (at != t[0].p.n_contexts) {
        rc = sd_fail(err, SD_ERR_DATA, "plan-merge: contexts [%lld, %lld) are covered by no shard", (long long)at,
                     (long long)t[0].p.n_contexts);
        goto done;
    }
    tbl_params full = t[0].p;
    full.begin = 0;
    full.end = full.n_contexts;
    tbl_builder *b = tbl_builder_new(&full, err);
    if (!b) { rc = err ? err->code : SD_ERR_DATA; goto done; }
    for (int i = 0; i < n; i++) {
        const tbl_table *s = &t[order[i]];
        size_t bytes = (size_t)(s->p.end - s->p.begin) * s->slot_size;
        if (bytes) memcpy(b->slots + (size_t)s->p.begin * b->slot_size, s->slots, bytes);
        tbl_builder_add_stats(b, &s->s);
    }
    rc = tbl_write(b, out, err);
    tbl_builder_free(b);
done:
    for (int i = 0; i < opened; i++) tbl_close(&t[i]);
    free(t);
    free(order);
    return rc;
}

/* ---------------------------------------------------------------- builders across processes (plan --mpi) */

int tbl_builder_image(const tbl_builder *b, void **buf, size_t *len) {
    size_t body = (size_t)(b->p.end - b->p.begin) * b->slot_size;
    uint8_t *p = sd_malloc(TBL_HEADER_SIZE + body);
    encode_header(p, &b->p, &b->s, b->slot_size);
    if (body) memcpy(p + TBL_HEADER_SIZE, b->slots, body);
    *buf = p;
    *len = TBL_HEADER_SIZE + body;
    return SD_OK;
}

int tbl_builder_absorb(tbl_builder *b, const tbl_table *s, sd_err *err) {
    if (!same_run(&b->p, &s->p) || s->p.kind != b->p.kind || (b->s.fallback_kind && s->s.fallback_kind != b->s.fallback_kind))
        return sd_fail(err, SD_ERR_DATA, "table: a part comes from a different run (parameters, seed or hashes differ)");
    if (s->p.begin < b->p.begin || s->p.end > b->p.end || s->p.begin > s->p.end)
        return sd_fail(err, SD_ERR_DATA, "table: part [%lld, %lld) is outside [%lld, %lld)", (long long)s->p.begin,
                       (long long)s->p.end, (long long)b->p.begin, (long long)b->p.end);
    size_t bytes = (size_t)(s->p.end - s->p.begin) * b->slot_size;
    if (bytes) memcpy(b->slots + (size_t)(s->p.begin - b->p.begin) * b->slot_size, s->slots, bytes);
    tbl_builder_add_stats(b, &s->s);
    return SD_OK;
}
