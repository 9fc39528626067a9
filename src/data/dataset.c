/* dataset.c - the interaction log and item catalogue of a workspace: the builder that turns raw
 * ids into dense indices, the versioned binary store `dataset.bin` (written atomically, mmapped by
 * ds_load after every size and offset has been checked against the file size), and raw-id lookups.
 * Format version 1 holds integer raw ids only; version 2 adds, per side, string raw ids (names in
 * the string pool and an index sorted by name). Integer-only datasets are still written as version
 * 1, so their files are the same bytes as before version 2 existed.
 *
 * The file layout is specified in docs/formats-dataset.md. It is our own format, so the reader and
 * writer are hand-written; the raw-id hash map is a few lines of open addressing, not worth a
 * dependency. */
#include "serendip/dataset.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- file layout */

#define DS_MAGIC "SDDATA\x1a\x01" /* 8 bytes; the \x1a stops `type` on DOS, the \x01 catches 7-bit transfers */
#define DS_VERSION_INT 1   /* integer raw ids only */
#define DS_VERSION 2       /* + string raw ids; the newest version this build reads and writes */
#define DS_HEADER_V1 256
#define DS_HEADER_V2 320
#define DS_ALIGN 8
#define DS_FLAG_USER_NAMES 1u /* version 2 flags: the side has string raw ids */
#define DS_FLAG_ITEM_NAMES 2u

enum {
    SEC_EVENTS,     /* (n_events) ds_event */
    SEC_USER_OFF,   /* (n_users + 1) int64 */
    SEC_USER_IDS,   /* (n_users) int64 raw ids */
    SEC_ITEM_IDS,   /* (n_items) int64 raw ids */
    SEC_ITEM_META,  /* (n_items) uint8 */
    SEC_TITLE_OFF,  /* (n_items) uint64 */
    SEC_TAGS_OFF,   /* (n_items) uint64 */
    SEC_STRINGS,    /* (strings_size) char, ends with NUL */
    SEC_USER_INDEX, /* (n_users) int32 dense user indices sorted by raw id */
    SEC_ITEM_INDEX, /* (n_items) int32 dense item indices sorted by raw id */
    SEC_V1_COUNT,   /* version 1 ends here; version 2 adds (each empty when its flag is unset): */
    SEC_USER_NAME_OFF = SEC_V1_COUNT, /* (n_users) uint64 pool offset of each user's string raw id */
    SEC_ITEM_NAME_OFF,                /* (n_items) uint64 */
    SEC_USER_NAME_INDEX,              /* (n_users) int32 dense users sorted by raw id (strcmp) */
    SEC_ITEM_NAME_INDEX,              /* (n_items) int32 */
    SEC_COUNT
};

static const char *const sec_names[SEC_COUNT] = {"events", "user_off", "user_ids", "item_ids", "item_meta",
                                                 "title_off", "tags_off", "strings", "user_index", "item_index",
                                                 "user_name_off", "item_name_off", "user_name_index", "item_name_index"};

/* The version 2 header, also the in-memory form of a version 1 header (which is the same up to
 * offset 240: the first 10 sections, then 16 zero bytes). */
typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t header_size; /* DS_HEADER_V1 or DS_HEADER_V2 */
    uint64_t file_size;
    int64_t n_users, n_items, n_events, n_unknown_items;
    int64_t ts_min, ts_max;
    uint64_t strings_size;
    struct {
        uint64_t off, size; /* bytes from the start of the file */
    } sec[SEC_COUNT];
    uint32_t flags;       /* DS_FLAG_*; version 2 only */
    uint8_t reserved[12]; /* zero */
} ds_header;

#define HEAD_FIXED 80 /* bytes before the section table, the same in both versions */
_Static_assert(sizeof(ds_event) == 24, "ds_event is the 24-byte on-disk record");
_Static_assert(sizeof(ds_header) == DS_HEADER_V2, "ds_header is 320 bytes");
_Static_assert(HEAD_FIXED + SEC_V1_COUNT * 16 + 16 == DS_HEADER_V1, "version 1 header is 256 bytes");

/* Heap slots of ds_dataset: heap[0] owns a builder's in-memory image of the file; heap[6] and
 * heap[7] are borrowed pointers to the sorted raw-id indices inside the image or the mapping. */
#define HEAP_IMAGE 0
#define HEAP_USER_INDEX 6
#define HEAP_ITEM_INDEX 7
#define HEAP_OWNED 6 /* heap[0..5] are freed by ds_free */

static uint64_t align_up(uint64_t x) { return (x + DS_ALIGN - 1) & ~(uint64_t)(DS_ALIGN - 1); }

static int n_sections(const ds_header *h) { return h->version == DS_VERSION_INT ? SEC_V1_COUNT : SEC_COUNT; }

/* Fills the section table, header_size and file_size of h from its version, flags, counts and
 * strings_size. */
static void layout(ds_header *h) {
    const uint64_t un = h->flags & DS_FLAG_USER_NAMES ? (uint64_t)h->n_users : 0;
    const uint64_t in = h->flags & DS_FLAG_ITEM_NAMES ? (uint64_t)h->n_items : 0;
    uint64_t size[SEC_COUNT] = {
        [SEC_EVENTS] = (uint64_t)h->n_events * sizeof(ds_event),
        [SEC_USER_OFF] = ((uint64_t)h->n_users + 1) * 8,
        [SEC_USER_IDS] = (uint64_t)h->n_users * 8,
        [SEC_ITEM_IDS] = (uint64_t)h->n_items * 8,
        [SEC_ITEM_META] = (uint64_t)h->n_items,
        [SEC_TITLE_OFF] = (uint64_t)h->n_items * 8,
        [SEC_TAGS_OFF] = (uint64_t)h->n_items * 8,
        [SEC_STRINGS] = h->strings_size,
        [SEC_USER_INDEX] = (uint64_t)h->n_users * 4,
        [SEC_ITEM_INDEX] = (uint64_t)h->n_items * 4,
        [SEC_USER_NAME_OFF] = un * 8,
        [SEC_ITEM_NAME_OFF] = in * 8,
        [SEC_USER_NAME_INDEX] = un * 4,
        [SEC_ITEM_NAME_INDEX] = in * 4,
    };
    h->header_size = h->version == DS_VERSION_INT ? DS_HEADER_V1 : DS_HEADER_V2;
    uint64_t off = h->header_size;
    for (int s = 0; s < n_sections(h); s++) {
        h->sec[s].off = off;
        h->sec[s].size = size[s];
        off = align_up(off + size[s]);
    }
    h->file_size = off;
}

/* ---------------------------------------------------------------- raw id -> dense index map */

typedef struct {
    int64_t *keys;
    int32_t *vals; /* -1 = empty slot */
    size_t cap, n; /* cap is a power of two */
} idmap;

static void idmap_init(idmap *m, size_t cap) {
    m->cap = cap;
    m->n = 0;
    m->keys = sd_malloc(cap * sizeof *m->keys);
    m->vals = sd_malloc(cap * sizeof *m->vals);
    memset(m->vals, 0xff, cap * sizeof *m->vals);
}

static void idmap_free(idmap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Returns the slot of key: either holding it or the empty slot where it belongs. */
static size_t idmap_slot(const idmap *m, int64_t key) {
    size_t i = sd_mix64((uint64_t)key) & (m->cap - 1);
    while (m->vals[i] >= 0 && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    return i;
}

static void idmap_grow(idmap *m) {
    idmap old = *m;
    idmap_init(m, old.cap * 2);
    for (size_t i = 0; i < old.cap; i++) {
        if (old.vals[i] < 0) continue;
        size_t j = idmap_slot(m, old.keys[i]);
        m->keys[j] = old.keys[i];
        m->vals[j] = old.vals[i];
        m->n++;
    }
    idmap_free(&old);
}

/* ---------------------------------------------------------------- string raw id -> dense index map */

/* Open addressing over names kept in the builder's name pool: a slot holds the pool offset of the
 * name and its dense index (-1 = empty). The pool moves when it grows, so names are offsets. */
typedef struct {
    uint64_t *off;
    int32_t *vals;
    size_t cap, n; /* cap is a power of two */
} strmap;

static void strmap_init(strmap *m, size_t cap) {
    m->cap = cap;
    m->n = 0;
    m->off = sd_malloc(cap * sizeof *m->off);
    m->vals = sd_malloc(cap * sizeof *m->vals);
    memset(m->vals, 0xff, cap * sizeof *m->vals);
}

static void strmap_free(strmap *m) {
    free(m->off);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Slot of name in m (names live at pool + off): holding it, or the empty slot where it belongs. */
static size_t strmap_slot(const strmap *m, const char *pool, const char *name) {
    size_t i = sd_mix64(sd_hash64(name, strlen(name), SD_HASH_SEED)) & (m->cap - 1);
    while (m->vals[i] >= 0 && strcmp(pool + m->off[i], name)) i = (i + 1) & (m->cap - 1);
    return i;
}

static void strmap_grow(strmap *m, const char *pool) {
    strmap old = *m;
    strmap_init(m, old.cap * 2);
    for (size_t i = 0; i < old.cap; i++) {
        if (old.vals[i] < 0) continue;
        size_t j = strmap_slot(m, pool, pool + old.off[i]);
        m->off[j] = old.off[i];
        m->vals[j] = old.vals[i];
        m->n++;
    }
    strmap_free(&old);
}

/* ---------------------------------------------------------------- builder */

enum { KIND_NONE = 0, KIND_INT = 1, KIND_STR = 2 }; /* the raw ids a side of the builder takes */

struct ds_builder {
    idmap users, items;
    strmap user_names, item_names; /* string sides */
    sd_vec user_name_off;          /* uint64 pool offsets (string side) */
    sd_vec item_name_off;
    int user_kind, item_kind;      /* KIND_* */
    int mixed;                     /* a side got both kinds of ids */
    sd_vec user_ids;  /* int64 */
    sd_vec item_ids;  /* int64 */
    sd_vec item_meta; /* uint8 */
    sd_vec title_off; /* uint64 */
    sd_vec tags_off;  /* uint64 */
    sd_vec events;    /* ds_event with dense user/item */
    char *pool;       /* string pool; pool[0] = "" */
    size_t pool_len, pool_cap;
    char *names;      /* string raw ids while building (copied into pool at finish when kept) */
    size_t names_len, names_cap;
};

ds_builder *ds_builder_new(void) {
    ds_builder *b = sd_calloc(1, sizeof *b);
    idmap_init(&b->users, 1024);
    idmap_init(&b->items, 1024);
    strmap_init(&b->user_names, 1024);
    strmap_init(&b->item_names, 1024);
    sd_vec_init(&b->user_name_off, sizeof(uint64_t));
    sd_vec_init(&b->item_name_off, sizeof(uint64_t));
    sd_vec_init(&b->user_ids, sizeof(int64_t));
    sd_vec_init(&b->item_ids, sizeof(int64_t));
    sd_vec_init(&b->item_meta, sizeof(uint8_t));
    sd_vec_init(&b->title_off, sizeof(uint64_t));
    sd_vec_init(&b->tags_off, sizeof(uint64_t));
    sd_vec_init(&b->events, sizeof(ds_event));
    b->pool_cap = 4096;
    b->pool = sd_malloc(b->pool_cap);
    b->pool[0] = 0;
    b->pool_len = 1;
    b->names_cap = 4096;
    b->names = sd_malloc(b->names_cap);
    b->names[0] = 0;
    b->names_len = 1;
    return b;
}

void ds_builder_free(ds_builder *b) {
    if (!b) return;
    idmap_free(&b->users);
    idmap_free(&b->items);
    strmap_free(&b->user_names);
    strmap_free(&b->item_names);
    sd_vec_free(&b->user_name_off);
    sd_vec_free(&b->item_name_off);
    sd_vec_free(&b->user_ids);
    sd_vec_free(&b->item_ids);
    sd_vec_free(&b->item_meta);
    sd_vec_free(&b->title_off);
    sd_vec_free(&b->tags_off);
    sd_vec_free(&b->events);
    free(b->pool);
    free(b->names);
    free(b);
}

/* Copies s into the pool; returns its offset (0, the empty string, for NULL or ""). */
static uint64_t pool_add(ds_builder *b, const char *s) {
    if (!s || !*s) return 0;
    size_t n = strlen(s) + 1;
    while (b->pool_len + n > b->pool_cap) b->pool = sd_realloc(b->pool, b->pool_cap *= 2);
    memcpy(b->pool + b->pool_len, s, n);
    b->pool_len += n;
    return b->pool_len - n;
}

/* Records that a side takes ids of kind k; a side given both kinds fails at finish. */
static void side_kind(ds_builder *b, int *side, int k) {
    if (*side && *side != k) b->mixed = 1;
    *side = k;
}

/* Dense index of raw user id, adding the user when new. */
static int32_t user_index(ds_builder *b, int64_t raw) {
    side_kind(b, &b->user_kind, KIND_INT);
    if (2 * (b->users.n + 1) > b->users.cap) idmap_grow(&b->users);
    size_t s = idmap_slot(&b->users, raw);
    if (b->users.vals[s] >= 0) return b->users.vals[s];
    int32_t idx = (int32_t)b->user_ids.len;
    b->users.keys[s] = raw;
    b->users.vals[s] = idx;
    b->users.n++;
    *(int64_t *)sd_vec_push(&b->user_ids) = raw;
    return idx;
}

/* Dense index of raw item id, adding an undescribed item when new; *added tells which. */
static int32_t item_index(ds_builder *b, int64_t raw, int *added) {
    side_kind(b, &b->item_kind, KIND_INT);
    if (2 * (b->items.n + 1) > b->items.cap) idmap_grow(&b->items);
    size_t s = idmap_slot(&b->items, raw);
    *added = 0;
    if (b->items.vals[s] >= 0) return b->items.vals[s];
    int32_t idx = (int32_t)b->item_ids.len;
    b->items.keys[s] = raw;
    b->items.vals[s] = idx;
    b->items.n++;
    *(int64_t *)sd_vec_push(&b->item_ids) = raw;
    sd_vec_push(&b->item_meta);
    sd_vec_push(&b->title_off);
    sd_vec_push(&b->tags_off);
    *added = 1;
    return idx;
}

/* Dense index of a string raw id on one side (names, offsets, ids of that side), adding it when
 * new with the internal number dense index + 1 as its int64 id; *added tells whether it was new.
 * The name is cut at DS_RAW_ID_MAX bytes. */
static int32_t name_index(ds_builder *b, strmap *m, sd_vec *name_off, sd_vec *ids, const char *raw, int *added) {
    char cut[DS_RAW_ID_MAX + 1];
    if (strlen(raw) > DS_RAW_ID_MAX) {
        memcpy(cut, raw, DS_RAW_ID_MAX);
        cut[DS_RAW_ID_MAX] = 0;
        raw = cut;
    }
    if (2 * (m->n + 1) > m->cap) strmap_grow(m, b->names);
    size_t s = strmap_slot(m, b->names, raw);
    *added = 0;
    if (m->vals[s] >= 0) return m->vals[s];
    int32_t idx = (int32_t)ids->len;
    uint64_t off = 0;
    if (*raw) {
        size_t n = strlen(raw) + 1;
        while (b->names_len + n > b->names_cap) b->names = sd_realloc(b->names, b->names_cap *= 2);
        memcpy(b->names + b->names_len, raw, n);
        off = b->names_len;
        b->names_len += n;
    }
    m->off[s] = off;
    m->vals[s] = idx;
    m->n++;
    *(uint64_t *)sd_vec_push(name_off) = off;
    *(int64_t *)sd_vec_push(ids) = (int64_t)idx + 1;
    *added = 1;
    return idx;
}

static int32_t user_index_str(ds_builder *b, const char *raw) {
    int added;
    side_kind(b, &b->user_kind, KIND_STR);
    return name_index(b, &b->user_names, &b->user_name_off, &b->user_ids, raw, &added);
}

static int32_t item_index_str(ds_builder *b, const char *raw) {
    int added;
    side_kind(b, &b->item_kind, KIND_STR);
    int32_t i = name_index(b, &b->item_names, &b->item_name_off, &b->item_ids, raw, &added);
    if (added) {
        sd_vec_push(&b->item_meta);
        sd_vec_push(&b->title_off);
        sd_vec_push(&b->tags_off);
    }
    return i;
}

/* Describes dense item i; SD_ERR_DATA when the catalogue already did. */
static int describe_item(ds_builder *b, int32_t i, const char *title, const char *tags) {
    uint8_t *meta = (uint8_t *)b->item_meta.data + i;
    if (*meta) return SD_ERR_DATA;
    *meta = 1;
    uint64_t t = pool_add(b, title), g = pool_add(b, tags);
    ((uint64_t *)b->title_off.data)[i] = t;
    ((uint64_t *)b->tags_off.data)[i] = g;
    return SD_OK;
}

int ds_builder_add_item_str(ds_builder *b, const char *raw_id, const char *title, const char *tags, sd_err *err) {
    int32_t i = item_index_str(b, raw_id);
    if (describe_item(b, i, title, tags)) return sd_fail(err, SD_ERR_DATA, "item \"%.*s\": duplicate catalogue entry", DS_RAW_ID_MAX, raw_id);
    return SD_OK;
}

void ds_builder_add_event_str(ds_builder *b, const char *raw_user, const char *raw_item, int64_t ts, float rating, float watch) {
    int32_t u = user_index_str(b, raw_user), i = item_index_str(b, raw_item);
    ds_event *e = sd_vec_push(&b->events);
    e->user = u;
    e->item = i;
    e->ts = ts;
    e->rating = rating;
    e->watch = watch;
}

int ds_builder_add_item(ds_builder *b, int64_t raw_id, const char *title, const char *tags, sd_err *err) {
    int added;
    int32_t i = item_index(b, raw_id, &added);
    uint8_t *meta = (uint8_t *)b->item_meta.data + i;
    if (*meta) return sd_fail(err, SD_ERR_DATA, "item %lld: duplicate catalogue entry", (long long)raw_id);
    *meta = 1;
    uint64_t t = pool_add(b, title), g = pool_add(b, tags);
    ((uint64_t *)b->title_off.data)[i] = t;
    ((uint64_t *)b->tags_off.data)[i] = g;
    return SD_OK;
}

void ds_builder_add_event(ds_builder *b, int64_t raw_user, int64_t raw_item, int64_t ts, float rating, float watch) {
    int added;
    ds_event *e = sd_vec_push(&b->events);
    e->user = user_index(b, raw_user);
    e->item = item_index(b, raw_item, &added);
    e->ts = ts;
    e->rating = rating;
    e->watch = watch;
}

static int cmp_event_in_user(const void *pa, const void *pb) {
    const ds_event *a = pa, *b = pb;
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    return (a->item > b->item) - (a->item < b->item);
}

typedef struct {
    int64_t raw;
    int32_t idx;
} raw_pair;

static int cmp_raw_pair(const void *pa, const void *pb) {
    const raw_pair *a = pa, *b = pb;
    return (a->raw > b->raw) - (a->raw < b->raw);
}

/* Fills idx (n) with the dense indices 0..n-1 ordered by raw id. */
static void sort_index(const int64_t *raw, int64_t n, int32_t *idx) {
    raw_pair *p = sd_malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (raw_pair){raw[i], (int32_t)i};
    qsort(p, (size_t)n, sizeof *p, cmp_raw_pair);
    for (int64_t i = 0; i < n; i++) idx[i] = p[i].idx;
    free(p);
}

/* Fills idx (n) with the dense indices 0..n-1 ordered by name (strcmp); names[i] is the pool offset
 * of dense index i's name. */
static int cmp_name(const void *pa, const void *pb, void *ctx) {
    const void *const *c = ctx; /* {pool, offsets} */
    const char *pool = c[0];
    const uint64_t *off = c[1];
    return strcmp(pool + off[*(const int32_t *)pa], pool + off[*(const int32_t *)pb]);
}

static void sort_names(const char *pool, const uint64_t *off, int64_t n, int32_t *idx) {
    for (int64_t i = 0; i < n; i++) idx[i] = (int32_t)i;
    const void *ctx[2] = {pool, off};
    qsort_r(idx, (size_t)n, sizeof *idx, cmp_name, (void *)ctx);
}

/* 1 when s is the canonical decimal form of an int64 ("0", "42", "-7"; not "007", "+3", "-0"). */
static int canonical_int(const char *s, int64_t *out) {
    const char *p = s + (*s == '-');
    if (!*p || (*p == '0' && (p[1] || *s == '-')) || strlen(p) > 19) return 0;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return 0;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

/* A string side whose names are all canonical integers becomes an integer side: ids get the
 * parsed values and the side's names are dropped, so the dataset is the one integer ids give.
 * Otherwise its names move into the string pool (name_off then holds pool offsets). Returns 1
 * when the side keeps its names. */
static int settle_names(ds_builder *b, sd_vec *name_off, sd_vec *ids) {
    const char *names = b->names;
    uint64_t *off = name_off->data;
    int64_t v;
    for (size_t i = 0; i < ids->len; i++)
        if (!canonical_int(names + off[i], &v)) {
            for (size_t k = 0; k < ids->len; k++) off[k] = pool_add(b, names + off[k]);
            return 1;
        }
    const char *pool = names;
    for (size_t i = 0; i < ids->len; i++) {
        canonical_int(pool + off[i], &v);
        ((int64_t *)ids->data)[i] = v;
    }
    return 0;
}

static int bind(ds_dataset *d, const void *base, size_t size, const char *path, sd_err *err);
static void put_header(void *dst, const ds_header *h);

int ds_builder_finish(ds_builder *b, ds_dataset *out, sd_err *err) {
    memset(out, 0, sizeof *out);
    if (b->user_ids.len > INT32_MAX || b->item_ids.len > INT32_MAX) {
        ds_builder_free(b);
        return sd_fail(err, SD_ERR_DATA, "dataset: more than 2^31 users or items");
    }
    if (b->mixed) {
        ds_builder_free(b);
        return sd_fail(err, SD_ERR_USAGE, "dataset: integer and string raw ids mixed on one side (a builder bug)");
    }
    ds_header h = {0};
    memcpy(h.magic, DS_MAGIC, 8);
    if (b->user_kind == KIND_STR && settle_names(b, &b->user_name_off, &b->user_ids)) h.flags |= DS_FLAG_USER_NAMES;
    if (b->item_kind == KIND_STR && settle_names(b, &b->item_name_off, &b->item_ids)) h.flags |= DS_FLAG_ITEM_NAMES;
    h.version = h.flags ? DS_VERSION : DS_VERSION_INT;
    h.n_users = (int64_t)b->user_ids.len;
    h.n_items = (int64_t)b->item_ids.len;
    h.n_events = (int64_t)b->events.len;
    h.strings_size = b->pool_len;
    const uint8_t *meta = b->item_meta.data;
    for (int64_t i = 0; i < h.n_items; i++) h.n_unknown_items += meta[i] == 0;
    layout(&h);

    char *img = sd_calloc(1, (size_t)h.file_size);
    ds_event *ev = (ds_event *)(img + h.sec[SEC_EVENTS].off);
    int64_t *uoff = (int64_t *)(img + h.sec[SEC_USER_OFF].off);
    /* counting sort by user, then (ts, item) inside each user */
    const ds_event *src = b->events.data;
    for (int64_t k = 0; k < h.n_events; k++) uoff[src[k].user + 1]++;
    for (int64_t u = 0; u < h.n_users; u++) uoff[u + 1] += uoff[u];
    int64_t *fill = sd_malloc((size_t)(h.n_users + 1) * sizeof *fill);
    memcpy(fill, uoff, (size_t)(h.n_users + 1) * sizeof *fill);
    for (int64_t k = 0; k < h.n_events; k++) ev[fill[src[k].user]++] = src[k];
    free(fill);
    for (int64_t u = 0; u < h.n_users; u++)
        qsort(ev + uoff[u], (size_t)(uoff[u + 1] - uoff[u]), sizeof *ev, cmp_event_in_user);
    for (int64_t k = 0; k < h.n_events; k++) {
        if (k == 0 || ev[k].ts < h.ts_min) h.ts_min = ev[k].ts;
        if (k == 0 || ev[k].ts > h.ts_max) h.ts_max = ev[k].ts;
    }
    memcpy(img + h.sec[SEC_USER_IDS].off, b->user_ids.data, h.sec[SEC_USER_IDS].size);
    memcpy(img + h.sec[SEC_ITEM_IDS].off, b->item_ids.data, h.sec[SEC_ITEM_IDS].size);
    memcpy(img + h.sec[SEC_ITEM_META].off, b->item_meta.data, h.sec[SEC_ITEM_META].size);
    memcpy(img + h.sec[SEC_TITLE_OFF].off, b->title_off.data, h.sec[SEC_TITLE_OFF].size);
    memcpy(img + h.sec[SEC_TAGS_OFF].off, b->tags_off.data, h.sec[SEC_TAGS_OFF].size);
    memcpy(img + h.sec[SEC_STRINGS].off, b->pool, h.sec[SEC_STRINGS].size);
    sort_index(b->user_ids.data, h.n_users, (int32_t *)(img + h.sec[SEC_USER_INDEX].off));
    sort_index(b->item_ids.data, h.n_items, (int32_t *)(img + h.sec[SEC_ITEM_INDEX].off));
    if (h.flags & DS_FLAG_USER_NAMES) {
        memcpy(img + h.sec[SEC_USER_NAME_OFF].off, b->user_name_off.data, h.sec[SEC_USER_NAME_OFF].size);
        sort_names(b->pool, b->user_name_off.data, h.n_users, (int32_t *)(img + h.sec[SEC_USER_NAME_INDEX].off));
    }
    if (h.flags & DS_FLAG_ITEM_NAMES) {
        memcpy(img + h.sec[SEC_ITEM_NAME_OFF].off, b->item_name_off.data, h.sec[SEC_ITEM_NAME_OFF].size);
        sort_names(b->pool, b->item_name_off.data, h.n_items, (int32_t *)(img + h.sec[SEC_ITEM_NAME_INDEX].off));
    }
    put_header(img, &h);
    ds_builder_free(b);

    int rc = bind(out, img, (size_t)h.file_size, "dataset (in memory)", err);
    if (rc) {
        free(img);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->heap[HEAP_IMAGE] = img;
    return SD_OK;
}

/* ---------------------------------------------------------------- validation and binding */

/* Writes h at dst in the on-disk form of its version (header_size bytes). */
static void put_header(void *dst, const ds_header *h) {
    if (h->version != DS_VERSION_INT) {
        memcpy(dst, h, sizeof *h);
        return;
    }
    memset(dst, 0, DS_HEADER_V1);
    memcpy(dst, h, HEAD_FIXED + SEC_V1_COUNT * 16);
}

/* Checks that the names of one side (pool offsets off, index idx sorted by name) lie in the pool
 * and are unique; -1 at the first problem (*at: its position). */
static int check_names(const char *strings, uint64_t strings_size, const uint64_t *off, const int32_t *idx, int64_t n, int64_t *at) {
    for (int64_t i = 0; i < n; i++)
        if (off[i] >= strings_size) return (int)(*at = i, -1);
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= n || (i > 0 && strcmp(strings + off[idx[i - 1]], strings + off[idx[i]]) >= 0))
            return (int)(*at = i, -1);
    return 0;
}

/* Points d's fields into the file image base (size bytes) after checking the header, every
 * section against the file size, and the content that later stages index with (ids, offsets,
 * order). Returns SD_ERR_FORMAT naming path and the first problem found. */
static int bind(ds_dataset *d, const void *base, size_t size, const char *path, sd_err *err) {
    const char *p = base;
    ds_header h;
    if (size < 8 || memcmp(p, DS_MAGIC, 8) != 0)
        return sd_fail(err, SD_ERR_FORMAT, "%s: not a serendip dataset (bad magic; expected a dataset.bin written by 'serendip ingest' or 'serendip world')", path);
    if (size < DS_HEADER_V1)
        return sd_fail(err, SD_ERR_FORMAT, "%s: truncated (%zu bytes, the header alone is %d)", path, size, DS_HEADER_V1);
    memset(&h, 0, sizeof h);
    memcpy(&h, p, HEAD_FIXED);
    if (h.version != DS_VERSION_INT && h.version != DS_VERSION)
        return sd_fail(err, SD_ERR_FORMAT, "%s: dataset format version %u, this build reads versions %d and %d (re-run 'serendip ingest' or 'serendip world')",
                       path, h.version, DS_VERSION_INT, DS_VERSION);
    const uint32_t want_header = h.version == DS_VERSION_INT ? DS_HEADER_V1 : DS_HEADER_V2;
    if (h.header_size != want_header)
        return sd_fail(err, SD_ERR_FORMAT, "%s: header size %u, expected %u for version %u", path, h.header_size, want_header, h.version);
    if (size < want_header)
        return sd_fail(err, SD_ERR_FORMAT, "%s: truncated (%zu bytes, the header alone is %u)", path, size, want_header);
    memcpy(&h, p, want_header == DS_HEADER_V2 ? sizeof h : HEAD_FIXED + SEC_V1_COUNT * 16);
    if (h.flags & ~(DS_FLAG_USER_NAMES | DS_FLAG_ITEM_NAMES))
        return sd_fail(err, SD_ERR_FORMAT, "%s: unknown flags 0x%x (a newer serendip wrote it?)", path, h.flags);
    if (h.file_size != size)
        return sd_fail(err, SD_ERR_FORMAT, "%s: %s (header says %llu bytes, file has %zu)", path,
                       h.file_size > size ? "truncated" : "has trailing bytes", (unsigned long long)h.file_size, size);
    if (h.n_users < 0 || h.n_items < 0 || h.n_events < 0 || h.n_users > INT32_MAX || h.n_items > INT32_MAX ||
        (uint64_t)h.n_events > size / sizeof(ds_event) || h.n_unknown_items < 0 || h.n_unknown_items > h.n_items)
        return sd_fail(err, SD_ERR_FORMAT, "%s: impossible counts (users %lld, items %lld, events %lld, unknown items %lld)", path,
                       (long long)h.n_users, (long long)h.n_items, (long long)h.n_events, (long long)h.n_unknown_items);
    if (h.strings_size < 1 || h.strings_size > size)
        return sd_fail(err, SD_ERR_FORMAT, "%s: string pool size %llu out of range", path, (unsigned long long)h.strings_size);
    ds_header want = h;
    layout(&want);
    for (int s = 0; s < n_sections(&h); s++) {
        if (h.sec[s].off != want.sec[s].off || h.sec[s].size != want.sec[s].size || h.sec[s].off % DS_ALIGN ||
            h.sec[s].off + h.sec[s].size > size)
            return sd_fail(err, SD_ERR_FORMAT, "%s: section '%s' at offset %llu size %llu does not match the counts or the file size %zu",
                           path, sec_names[s], (unsigned long long)h.sec[s].off, (unsigned long long)h.sec[s].size, size);
    }
    if (want.file_size != size)
        return sd_fail(err, SD_ERR_FORMAT, "%s: file size %zu, the counts need %llu", path, size, (unsigned long long)want.file_size);

    const ds_event *ev = (const ds_event *)(p + h.sec[SEC_EVENTS].off);
    const int64_t *uoff = (const int64_t *)(p + h.sec[SEC_USER_OFF].off);
    const int64_t *uids = (const int64_t *)(p + h.sec[SEC_USER_IDS].off);
    const int64_t *iids = (const int64_t *)(p + h.sec[SEC_ITEM_IDS].off);
    const uint8_t *meta = (const uint8_t *)(p + h.sec[SEC_ITEM_META].off);
    const uint64_t *toff = (const uint64_t *)(p + h.sec[SEC_TITLE_OFF].off);
    const uint64_t *goff = (const uint64_t *)(p + h.sec[SEC_TAGS_OFF].off);
    const char *strings = p + h.sec[SEC_STRINGS].off;
    const int32_t *uidx = (const int32_t *)(p + h.sec[SEC_USER_INDEX].off);
    const int32_t *iidx = (const int32_t *)(p + h.sec[SEC_ITEM_INDEX].off);
    const int un = (h.flags & DS_FLAG_USER_NAMES) != 0, in = (h.flags & DS_FLAG_ITEM_NAMES) != 0;
    const uint64_t *unoff = un ? (const uint64_t *)(p + h.sec[SEC_USER_NAME_OFF].off) : NULL;
    const uint64_t *inoff = in ? (const uint64_t *)(p + h.sec[SEC_ITEM_NAME_OFF].off) : NULL;
    const int32_t *unidx = un ? (const int32_t *)(p + h.sec[SEC_USER_NAME_INDEX].off) : NULL;
    const int32_t *inidx = in ? (const int32_t *)(p + h.sec[SEC_ITEM_NAME_INDEX].off) : NULL;

    if (strings[h.strings_size - 1] != 0) return sd_fail(err, SD_ERR_FORMAT, "%s: string pool is not NUL-terminated", path);
    if (uoff[0] != 0 || uoff[h.n_users] != h.n_events)
        return sd_fail(err, SD_ERR_FORMAT, "%s: user offsets do not span the %lld events", path, (long long)h.n_events);
    for (int64_t u = 0; u < h.n_users; u++) {
        if (uoff[u + 1] < uoff[u]) return sd_fail(err, SD_ERR_FORMAT, "%s: user offsets decrease at user %lld", path, (long long)u);
        for (int64_t k = uoff[u]; k < uoff[u + 1]; k++) {
            const ds_event *e = ev + k;
            if (e->user != u || e->item < 0 || e->item >= h.n_items || e->ts < h.ts_min || e->ts > h.ts_max ||
                !(e->rating == DS_NO_VALUE || isfinite(e->rating)) || !(e->watch == DS_NO_VALUE || isfinite(e->watch)))
                return sd_fail(err, SD_ERR_FORMAT, "%s: event %lld is corrupt (user %d, item %d, ts %lld)", path, (long long)k, e->user,
                               e->item, (long long)e->ts);
            if (k > uoff[u] && cmp_event_in_user(e - 1, e) > 0)
                return sd_fail(err, SD_ERR_FORMAT, "%s: events of user %lld are not sorted by (ts, item)", path, (long long)u);
        }
    }
    int64_t unknown = 0;
    for (int64_t i = 0; i < h.n_items; i++) {
        if (meta[i] > 1 || toff[i] >= h.strings_size || goff[i] >= h.strings_size)
            return sd_fail(err, SD_ERR_FORMAT, "%s: item %lld has a corrupt catalogue entry", path, (long long)i);
        unknown += meta[i] == 0;
    }
    if (unknown != h.n_unknown_items)
        return sd_fail(err, SD_ERR_FORMAT, "%s: header says %lld unknown items, the catalogue has %lld", path,
                       (long long)h.n_unknown_items, (long long)unknown);
    for (int64_t i = 0; i < h.n_users; i++)
        if (uidx[i] < 0 || uidx[i] >= h.n_users || (i > 0 && uids[uidx[i - 1]] >= uids[uidx[i]]))
            return sd_fail(err, SD_ERR_FORMAT, "%s: user index is corrupt or user ids repeat (at %lld)", path, (long long)i);
    for (int64_t i = 0; i < h.n_items; i++)
        if (iidx[i] < 0 || iidx[i] >= h.n_items || (i > 0 && iids[iidx[i - 1]] >= iids[iidx[i]]))
            return sd_fail(err, SD_ERR_FORMAT, "%s: item index is corrupt or item ids repeat (at %lld)", path, (long long)i);
    int64_t at;
    if (un && check_names(strings, h.strings_size, unoff, unidx, h.n_users, &at))
        return sd_fail(err, SD_ERR_FORMAT, "%s: user raw ids are corrupt or repeat (at %lld)", path, (long long)at);
    if (in && check_names(strings, h.strings_size, inoff, inidx, h.n_items, &at))
        return sd_fail(err, SD_ERR_FORMAT, "%s: item raw ids are corrupt or repeat (at %lld)", path, (long long)at);

    d->n_users = h.n_users;
    d->n_items = h.n_items;
    d->n_events = h.n_events;
    d->n_unknown_items = h.n_unknown_items;
    d->events = ev;
    d->user_off = uoff;
    d->user_ids = uids;
    d->item_ids = iids;
    d->item_meta = meta;
    d->title_off = toff;
    d->tags_off = goff;
    d->strings = strings;
    d->ts_min = h.ts_min;
    d->ts_max = h.ts_max;
    d->user_name_off = unoff;
    d->item_name_off = inoff;
    d->user_name_index = unidx;
    d->item_name_index = inidx;
    d->heap[HEAP_USER_INDEX] = (void *)uidx;
    d->heap[HEAP_ITEM_INDEX] = (void *)iidx;
    return SD_OK;
}

/* ---------------------------------------------------------------- save / load / free */

static int write_section(FILE *f, const void *data, uint64_t size) {
    static const char zeros[DS_ALIGN] = {0};
    if (size && fwrite(data, 1, (size_t)size, f) != size) return -1;
    uint64_t pad = align_up(size) - size;
    if (pad && fwrite(zeros, 1, (size_t)pad, f) != pad) return -1;
    return 0;
}

int ds_save(const ds_dataset *d, const char *path, sd_err *err) {
    /* The pool size is not a field of ds_dataset: it is the end of the last string referenced. */
    uint64_t strings_size = 1;
    for (int64_t i = 0; i < d->n_items; i++) {
        uint64_t t = d->title_off[i] + strlen(ds_item_title(d, i)) + 1;
        uint64_t g = d->tags_off[i] + strlen(ds_item_tags(d, i)) + 1;
        uint64_t r = d->item_name_off ? d->item_name_off[i] + strlen(d->strings + d->item_name_off[i]) + 1 : 0;
        if (t > strings_size) strings_size = t;
        if (g > strings_size) strings_size = g;
        if (r > strings_size) strings_size = r;
    }
    for (int64_t u = 0; d->user_name_off && u < d->n_users; u++) {
        uint64_t r = d->user_name_off[u] + strlen(d->strings + d->user_name_off[u]) + 1;
        if (r > strings_size) strings_size = r;
    }
    ds_header h = {0};
    memcpy(h.magic, DS_MAGIC, 8);
    h.flags = (d->user_name_off ? DS_FLAG_USER_NAMES : 0) | (d->item_name_off ? DS_FLAG_ITEM_NAMES : 0);
    h.version = h.flags ? DS_VERSION : DS_VERSION_INT;
    h.n_users = d->n_users;
    h.n_items = d->n_items;
    h.n_events = d->n_events;
    h.n_unknown_items = d->n_unknown_items;
    h.ts_min = d->ts_min;
    h.ts_max = d->ts_max;
    h.strings_size = strings_size;
    layout(&h);

    int32_t *uidx = sd_malloc((size_t)(d->n_users + 1) * sizeof *uidx);
    int32_t *iidx = sd_malloc((size_t)(d->n_items + 1) * sizeof *iidx);
    sort_index(d->user_ids, d->n_users, uidx);
    sort_index(d->item_ids, d->n_items, iidx);
    int32_t *unidx = NULL, *inidx = NULL;
    if (d->user_name_off) {
        unidx = sd_malloc((size_t)(d->n_users + 1) * sizeof *unidx);
        sort_names(d->strings, d->user_name_off, d->n_users, unidx);
    }
    if (d->item_name_off) {
        inidx = sd_malloc((size_t)(d->n_items + 1) * sizeof *inidx);
        sort_names(d->strings, d->item_name_off, d->n_items, inidx);
    }

    sd_afile a;
    int rc = sd_afile_open(&a, path, err);
    if (rc) goto done;
    const void *data[SEC_COUNT] = {d->events, d->user_off, d->user_ids, d->item_ids, d->item_meta,
                                   d->title_off, d->tags_off, d->strings, uidx, iidx,
                                   d->user_name_off, d->item_name_off, unidx, inidx};
    char head[DS_HEADER_V2];
    put_header(head, &h);
    int bad = fwrite(head, h.header_size, 1, a.f) != 1;
    for (int s = 0; s < n_sections(&h) && !bad; s++) bad = write_section(a.f, data[s], h.sec[s].size) != 0;
    if (bad) {
        sd_afile_abort(&a);
        rc = sd_fail(err, SD_ERR_IO, "%s: write failed", path);
        goto done;
    }
    rc = sd_afile_commit(&a, err);
done:
    free(uidx);
    free(iidx);
    free(unidx);
    free(inidx);
    return rc;
}

int ds_load(ds_dataset *d, const char *path, sd_err *err) {
    memset(d, 0, sizeof *d);
    if (!sd_file_exists(path))
        return sd_fail(err, SD_ERR_STATE, "%s: no dataset in this workspace (run 'serendip ingest' or 'serendip world')", path);
    sd_map m;
    int rc = sd_map_open(&m, path, err);
    if (rc) return rc;
    rc = bind(d, m.data ? m.data : "", m.size, path, err);
    if (rc) {
        sd_map_close(&m);
        memset(d, 0, sizeof *d);
        return rc;
    }
    d->map = m;
    return SD_OK;
}

int ds_load_mem(ds_dataset *d, const void *data, size_t size, const char *name, sd_err *err) {
    memset(d, 0, sizeof *d);
    if ((uintptr_t)data % DS_ALIGN) return sd_fail(err, SD_ERR_USAGE, "%s: dataset image in memory is not 8-byte aligned", name);
    int rc = bind(d, size ? data : "", size, name, err);
    if (rc) memset(d, 0, sizeof *d);
    return rc;
}

void ds_free(ds_dataset *d) {
    if (!d) return;
    for (int i = 0; i < HEAP_OWNED; i++) free(d->heap[i]);
    sd_map_close(&d->map);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------- lookups */

static int64_t find_raw(const int64_t *ids, const int32_t *idx, int64_t n, int64_t raw) {
    if (!idx) { /* a dataset assembled by hand, without the sorted index: linear scan */
        for (int64_t i = 0; i < n; i++)
            if (ids[i] == raw) return i;
        return -1;
    }
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ids[idx[mid]] < raw) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && ids[idx[lo]] == raw ? idx[lo] : -1;
}

int64_t ds_find_user(const ds_dataset *d, int64_t raw_id) {
    return find_raw(d->user_ids, d->heap[HEAP_USER_INDEX], d->n_users, raw_id);
}

int64_t ds_find_item(const ds_dataset *d, int64_t raw_id) {
    return find_raw(d->item_ids, d->heap[HEAP_ITEM_INDEX], d->n_items, raw_id);
}

/* Dense index of name on a string side (names at strings + off, idx sorted by name or NULL). */
static int64_t find_name(const char *strings, const uint64_t *off, const int32_t *idx, int64_t n, const char *name) {
    if (!idx) {
        for (int64_t i = 0; i < n; i++)
            if (!strcmp(strings + off[i], name)) return i;
        return -1;
    }
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (strcmp(strings + off[idx[mid]], name) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && !strcmp(strings + off[idx[lo]], name) ? idx[lo] : -1;
}

/* Integer of text (surrounding spaces allowed), or -1 when it is not one. */
static int parse_int(const char *text, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || errno) return -1;
    while (*end == ' ' || *end == '\t') end++;
    if (*end) return -1;
    *out = v;
    return 0;
}

const char *ds_user_raw_id(const ds_dataset *d, int64_t u, char *buf, size_t n) {
    if (d->user_name_off) return d->strings + d->user_name_off[u];
    snprintf(buf, n, "%lld", (long long)d->user_ids[u]);
    return buf;
}

const char *ds_item_raw_id(const ds_dataset *d, int64_t item, char *buf, size_t n) {
    if (d->item_name_off) return d->strings + d->item_name_off[item];
    snprintf(buf, n, "%lld", (long long)d->item_ids[item]);
    return buf;
}

int64_t ds_find_user_raw(const ds_dataset *d, const char *text) {
    int64_t v, k = -1;
    if (d->user_name_off) k = find_name(d->strings, d->user_name_off, d->user_name_index, d->n_users, text);
    if (k < 0 && !parse_int(text, &v)) k = ds_find_user(d, v);
    return k;
}

int64_t ds_find_item_raw(const ds_dataset *d, const char *text) {
    int64_t v, k = -1;
    if (d->item_name_off) k = find_name(d->strings, d->item_name_off, d->item_name_index, d->n_items, text);
    if (k < 0 && !parse_int(text, &v)) k = ds_find_item(d, v);
    return k;
}
