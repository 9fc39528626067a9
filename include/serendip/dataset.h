/* dataset.h - the interaction log and item catalogue of a workspace (file `dataset.bin`).
 *
 * Users and items get dense indices 0..n-1 in order of first appearance; their raw ids (as in the
 * source data) are kept. A raw id is an integer (MovieLens, integer CSV logs) or, per side, a
 * string (RecBole tokens, Amazon/Yelp ids): a string side keeps its names in the string pool
 * (user_name_off / item_name_off) and its int64 ids are then the internal numbers dense index + 1,
 * so every stage that indexes with the int64 ids works unchanged. Show raw ids with ds_user_raw_id
 * / ds_item_raw_id and look typed ids up with ds_find_user_raw / ds_find_item_raw. Events are sorted by (user, ts, item). Ratings that name an item with no
 * metadata are kept: the item exists with has_meta = 0 and counts in n_unknown_items.
 * The on-disk layout is specified in docs/formats-dataset.md; ds_load mmaps it (no copy). */
#ifndef SERENDIP_DATASET_H
#define SERENDIP_DATASET_H

#include "serendip/base.h"

#define DS_FILE "dataset.bin"
#define DS_NO_VALUE (-1.0f) /* rating or watch fraction absent */

typedef struct {
    int32_t user;  /* dense user index */
    int32_t item;  /* dense item index */
    int64_t ts;    /* unix seconds */
    float rating;  /* source scale (MovieLens 0.5..5), DS_NO_VALUE if absent */
    float watch;   /* watch fraction in [0,1], DS_NO_VALUE if absent */
} ds_event;        /* 24 bytes, the on-disk record */

typedef struct {
    int64_t n_users, n_items, n_events;
    int64_t n_unknown_items;   /* items referenced by events but absent from the catalogue */
    const ds_event *events;    /* (n_events) sorted by user, ts, item */
    const int64_t *user_off;   /* (n_users + 1) user u's events are [user_off[u], user_off[u+1]) */
    const int64_t *user_ids;   /* (n_users) raw ids */
    const int64_t *item_ids;   /* (n_items) raw ids */
    const uint8_t *item_meta;  /* (n_items) 1 if the catalogue describes the item */
    const uint64_t *title_off; /* (n_items) offset of the NUL-terminated title in strings */
    const uint64_t *tags_off;  /* (n_items) offset of the '|'-separated tags (genres) */
    const char *strings;       /* string pool */
    int64_t ts_min, ts_max;    /* range of event timestamps */
    /* string raw ids (dataset.bin version 2); NULL when that side has integer raw ids */
    const uint64_t *user_name_off;  /* (n_users) offset of user u's NUL-terminated raw id in strings */
    const uint64_t *item_name_off;  /* (n_items) */
    const int32_t *user_name_index; /* (n_users) dense users sorted by raw id (strcmp); NULL: scan */
    const int32_t *item_name_index; /* (n_items) */
    /* owned storage: either a mapping of the file or heap blocks from ds_builder */
    sd_map map;
    void *heap[8];
} ds_dataset;

static inline const char *ds_item_title(const ds_dataset *d, int64_t item) { return d->strings + d->title_off[item]; }
static inline const char *ds_item_tags(const ds_dataset *d, int64_t item) { return d->strings + d->tags_off[item]; }

/* Builder: add catalogue items and events with raw ids in any order, then finish. Each side
 * (users, items) takes either integer ids (ds_builder_add_item / _add_event) or string ids (the
 * _str variants); mixing the two on one side makes ds_builder_finish fail with SD_ERR_USAGE. */
typedef struct ds_builder ds_builder;
ds_builder *ds_builder_new(void);
/* Adds (or, if present, describes) item raw_id. title/tags are copied. Returns SD_ERR_DATA on a
 * duplicate catalogue entry. */
int ds_builder_add_item(ds_builder *b, int64_t raw_id, const char *title, const char *tags, sd_err *err);
void ds_builder_add_event(ds_builder *b, int64_t raw_user, int64_t raw_item, int64_t ts, float rating, float watch);
/* String raw ids (copied; at most DS_RAW_ID_MAX bytes, not empty: the caller checks, longer ones
 * are cut). A string side whose ids are all canonical decimal integers ("42", "-7", not "007" or
 * "+3") becomes an integer side at ds_builder_finish, so an integer log read as strings gives the
 * same dataset as when read as integers. */
#define DS_RAW_ID_MAX 255
int ds_builder_add_item_str(ds_builder *b, const char *raw_id, const char *title, const char *tags, sd_err *err);
void ds_builder_add_event_str(ds_builder *b, const char *raw_user, const char *raw_item, int64_t ts, float rating, float watch);
/* Sorts, assigns dense ids, fills out (which owns the memory afterwards); frees b. */
int ds_builder_finish(ds_builder *b, ds_dataset *out, sd_err *err);
void ds_builder_free(ds_builder *b);

/* Writes atomically / mmaps. ds_load refuses foreign, truncated or wrong-version files. ds_save
 * writes format version 1 when both sides have integer ids (the files of earlier builds, byte for
 * byte) and version 2 when a side has string ids; ds_load reads both. */
int ds_save(const ds_dataset *d, const char *path, sd_err *err);
int ds_load(ds_dataset *d, const char *path, sd_err *err);
void ds_free(ds_dataset *d);

/* Lookup of raw ids (binary search over the sorted index kept in dataset.bin; a dataset assembled
 * by hand without it is scanned linearly); -1 when unknown. */
int64_t ds_find_user(const ds_dataset *d, int64_t raw_id);
int64_t ds_find_item(const ds_dataset *d, int64_t raw_id);

/* Raw ids as text, for people and JSON. Returns the string raw id (borrowed from the pool) or, on
 * an integer side, the decimal id written into buf (n >= DS_ID_BUF is always enough). */
#define DS_ID_BUF 24
const char *ds_user_raw_id(const ds_dataset *d, int64_t u, char *buf, size_t n);
const char *ds_item_raw_id(const ds_dataset *d, int64_t item, char *buf, size_t n);
static inline int ds_has_user_names(const ds_dataset *d) { return d->user_name_off != NULL; }
static inline int ds_has_item_names(const ds_dataset *d) { return d->item_name_off != NULL; }
/* Dense index of a raw id typed by a person or a client (-1 when unknown). A string side matches
 * the text exactly and, when no id has that text and it is an integer, takes it as the internal
 * number (dense index + 1) shown in "id" fields; an integer side parses the text as an integer. */
int64_t ds_find_user_raw(const ds_dataset *d, const char *text);
int64_t ds_find_item_raw(const ds_dataset *d, const char *text);

/* ---------------------------------------------------------------- temporal split (split.json)
 * Either a GLOBAL temporal split (events with ts < train_end are train, ts < valid_end are
 * valid, the rest test), or a PER-USER split (user u's own boundaries user_train_end[u] and
 * user_valid_end[u], the same rule applied per user; see docs/evaluation.md, "Splits"). Every
 * reader asks through ds_split_of / ds_split_train_end, so both kinds work everywhere. */
#define DS_SPLIT_FILE "split.json"
/* A per-user window: each user's own last `last` events, or the last fraction `frac` of them
 * (rounded up). At most one of the two is > 0; both 0 = no window. */
typedef struct {
    int64_t last;
    double frac;
} ds_user_window;
typedef struct {
    int64_t train_end, valid_end; /* unix seconds; for a per-user split: the largest user boundary */
    int64_t n_users;              /* per-user split: users covered (== dataset users); 0 = global */
    int64_t *user_train_end;      /* (n_users) per-user boundaries, unix s; NULL = global (owned) */
    int64_t *user_valid_end;      /* (n_users) */
    ds_user_window user_test, user_valid; /* per-user split: the windows it was computed with */
    uint64_t dataset_hash; /* sd_hash_file of the dataset.bin it was computed from; 0 = unrecorded */
} ds_split;
enum { DS_TRAIN = 0, DS_VALID = 1, DS_TEST = 2 };
/* End of the train window of dense user index u (exclusive). */
static inline int64_t ds_split_train_end(const ds_split *s, int64_t u) {
    return s->user_train_end ? s->user_train_end[u] : s->train_end;
}
/* Window of an event of dense user index u at time ts. */
static inline int ds_split_of(const ds_split *s, int64_t u, int64_t ts) {
    int64_t te = s->user_train_end ? s->user_train_end[u] : s->train_end;
    int64_t ve = s->user_valid_end ? s->user_valid_end[u] : s->valid_end;
    return ts < te ? DS_TRAIN : ts < ve ? DS_VALID : DS_TEST;
}
void ds_split_free(ds_split *s); /* frees the per-user arrays (a global split owns nothing) */
/* Writes split.json atomically (format: docs/formats-dataset.md). SD_ERR_USAGE when a boundary is
 * beyond +-2^53 s (a JSON number would not hold it exactly) or a valid end precedes its train end. */
int ds_split_save(const ds_split *s, const char *path, sd_err *err);
/* Reads split.json into s (caller frees with ds_split_free). When the file records a dataset hash,
 * the dataset.bin in the same folder must still have it: otherwise SD_ERR_STATE ("rerun 'serendip
 * split'"). SD_ERR_FORMAT, naming the field, on a malformed file or per-user arrays of the wrong
 * length; SD_ERR_STATE when the file is missing. */
int ds_split_load(ds_split *s, const char *path, sd_err *err);

/* Positive engagement rule shared by every stage: rating >= min_rating when a rating is present,
 * else watch >= min_watch. */
typedef struct {
    float min_rating; /* default 4 */
    float min_watch;  /* default 0.7 */
} ds_positive_rule;
#define DS_POSITIVE_DEFAULT ((ds_positive_rule){4.0f, 0.7f})
static inline int ds_is_positive(const ds_positive_rule *r, const ds_event *e) {
    if (e->rating != DS_NO_VALUE) return e->rating >= r->min_rating;
    return e->watch != DS_NO_VALUE && e->watch >= r->min_watch;
}


/* ---------------------------------------------------------------- added by the data module
 * Computing a split (src/data/split.c). */

/* Cut-offs at fractions of the event time range [ts_min, ts_max] (train_frac in (0,1], valid_frac
 * in [0,1], sum <= 1). SD_ERR_USAGE on bad fractions, SD_ERR_DATA on a dataset with no events. */
int ds_split_by_fraction(const ds_dataset *d, double train_frac, double valid_frac, ds_split *out, sd_err *err);
/* "last:N" (N >= 1) or "frac:F" (0 < F < 1) into w; SD_ERR_USAGE naming the text otherwise. */
int ds_user_window_parse(const char *text, ds_user_window *w, sd_err *err);
/* "last:N", "frac:F" or "none" into buf. */
void ds_user_window_format(ds_user_window w, char *buf, size_t n);
/* Per-user split: each user's own last events by `test` form the test window, the events just
 * before them by `valid` (no window when both fields are 0) the valid window, the rest train.
 * Counts are taken in event order; a boundary is then the timestamp just after the last event
 * before the cut, so events tied in time never straddle a boundary: ties go to the EARLIER window
 * and a later window can hold fewer events than asked. A user keeps at least one train event: a
 * one-event user is all train. out owns two arrays of d->n_users (ds_split_free). SD_ERR_USAGE on
 * an empty or malformed test window, SD_ERR_DATA on a dataset with no events. */
int ds_split_per_user(const ds_dataset *d, ds_user_window test, ds_user_window valid, ds_split *out, sd_err *err);
typedef struct {
    int64_t events[3]; /* per window (DS_TRAIN, DS_VALID, DS_TEST) */
    int64_t users[3];  /* users with at least one event in the window */
} ds_split_counts;
/* Events and users per window (a user counts in every window holding one of their events). */
void ds_split_count(const ds_dataset *d, const ds_split *s, ds_split_counts *c);
/* One line for people: "global: train < 2012-06-09 11:55:25 UTC <= valid < ... <= test" or
 * "per-user: test = each user's last:5, valid = none". */
void ds_split_describe(const ds_split *s, char *buf, size_t n);


/* Binds d to an image of dataset.bin already in memory (borrowed, 8-byte aligned, must outlive d),
 * validated exactly like ds_load; name is used in messages. ds_free(d) frees nothing of it. */
int ds_load_mem(ds_dataset *d, const void *data, size_t size, const char *name, sd_err *err);

#endif
