/* ingest.c - MovieLens (100k, 1M, 10M, latest/20M/25M/32M), RecBole atomic files (.inter, .item)
 * and generic CSV logs (integer or string ids) into a dataset.
 *
 * Every file is read through the streaming CSV reader as a "table": columns are found by header
 * name or by position, the field count of every record is checked, and every value is validated
 * with a message naming file, line and field. The catalogue is read before the ratings so that
 * items get dense indices in catalogue order; user tags (tags.csv / tags.dat) are read first of
 * all and merged into the item tags after the genres. RecBole's typed headers ("user_id:token")
 * are matched by the name before the colon, and the type of every column used is checked. */
#include "serendip/ingest.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "serendip/csv.h"

/* ---------------------------------------------------------------- tables */

enum { COL_USER, COL_ITEM, COL_RATING, COL_TS, COL_WATCH, COL_TITLE, COL_TAGS, COL_TAG, NCOL };
static const char *const col_label[NCOL] = {"user", "item", "rating", "timestamp", "watch", "title", "tags", "tag"};

typedef struct {
    const char *path;
    csv_opts opts;
    int header;            /* the first record names the columns */
    int nfields;           /* without header: fields per record (0 = those of the first record) */
    const char *col[NCOL]; /* header name ('|'-separated alternatives, the first present is
                            * used), or 1-based number without header; NULL = not used */
    int required[NCOL];
    int optional[NCOL];    /* a named column that may be absent from the header */
    int string_ids;        /* user and item ids are strings (ds_builder_add_*_str) */
    int typed_header;      /* RecBole: header fields are name:type, matched by name */
    const char *type[NCOL]; /* typed_header: the types a used column may have, '|'-separated */
    int float_ts;          /* times are float seconds (RecBole), floored */
    int tags_words;        /* the tags column is a space-separated token_seq (RecBole) */
} table_spec;

typedef struct {
    csv_reader *r;
    int idx[NCOL];       /* field index of each column, -1 when absent */
    int expect;          /* fields per record */
    char **names;        /* (expect) name of each field for messages */
    int64_t rows;        /* data records read */
    const char *path;
    int float_ts;        /* from the spec */
} table;

static void table_close(table *t) {
    csv_close(t->r);
    if (t->names)
        for (int k = 0; k < t->expect; k++) free(t->names[k]);
    free(t->names);
    memset(t, 0, sizeof *t);
}

/* Gives names to the fields of a headerless table once its width is known. */
static void table_name_fields(table *t) {
    t->names = sd_calloc((size_t)t->expect, sizeof *t->names);
    for (int c = 0; c < NCOL; c++)
        if (t->idx[c] >= 0 && t->idx[c] < t->expect && !t->names[t->idx[c]]) t->names[t->idx[c]] = sd_strdup(col_label[c]);
}

/* RecBole field types (docs/formats-dataset.md). */
static const char *const recbole_types[] = {"token", "token_seq", "float", "float_seq"};

/* 1 when word is one of the '|'-separated words of list. */
static int in_list(const char *list, const char *word, size_t n) {
    for (const char *p = list; *p;) {
        const char *e = strchr(p, '|');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && !strncmp(p, word, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* Length of the name part of header field h ("user_id" of "user_id:token"; all of h untyped). */
static size_t head_name_len(const char *h, int typed) {
    const char *c = typed ? strrchr(h, ':') : NULL;
    return c ? (size_t)(c - h) : strlen(h);
}

/* Field index of column c: the first of its '|'-separated alternative names that the header has
 * (exact, then case-insensitive); -1 when none. */
static int find_column(const table *t, const table_spec *s, int c) {
    for (const char *p = s->col[c]; *p;) {
        const char *e = strchr(p, '|');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < t->expect; k++) {
                const char *h = t->names[k];
                if (head_name_len(h, s->typed_header) == n && !(pass ? strncasecmp(h, p, n) : strncmp(h, p, n))) return k;
            }
        if (!e) break;
        p = e + 1;
    }
    return -1;
}

/* RecBole: every header field is name:type with a known type, and each used column has one of
 * the types its spec allows. */
static int check_types(const table *t, const table_spec *s, sd_err *err) {
    for (int k = 0; k < t->expect; k++) {
        const char *h = t->names[k], *c = strrchr(h, ':');
        int known = 0;
        for (size_t i = 0; c && i < sizeof recbole_types / sizeof *recbole_types; i++) known |= !strcmp(c + 1, recbole_types[i]);
        if (!known)
            return sd_fail(err, SD_ERR_DATA, "%s:1: field %d (%s): %s (a RecBole header field is name:type with type token, "
                           "token_seq, float or float_seq)", s->path, k + 1, h, c ? "unknown type" : "no type");
    }
    for (int c = 0; c < NCOL; c++) {
        if (t->idx[c] < 0 || !s->type[c]) continue;
        const char *h = t->names[t->idx[c]], *ty = strrchr(h, ':') + 1;
        if (!in_list(s->type[c], ty, strlen(ty)))
            return sd_fail(err, SD_ERR_DATA, "%s:1: field %d (%s): the %s column must have type %s", s->path, t->idx[c] + 1, h,
                           col_label[c], s->type[c]);
    }
    return SD_OK;
}

/* Opens the table and resolves its columns; SD_ERR_DATA on an empty file or a missing column. */
static int table_open(table *t, const table_spec *s, sd_err *err) {
    memset(t, 0, sizeof *t);
    t->path = s->path;
    t->float_ts = s->float_ts;
    int rc = csv_open(&t->r, s->path, &s->opts, err);
    if (rc) return rc;
    for (int c = 0; c < NCOL; c++) t->idx[c] = -1;
    if (s->header) {
        rc = csv_next(t->r, err);
        if (rc == CSV_EOF) rc = sd_fail(err, SD_ERR_DATA, "%s:1: empty file (expected a header line)", s->path);
        if (rc) goto fail;
        t->expect = csv_nfields(t->r);
        t->names = sd_calloc((size_t)t->expect, sizeof *t->names);
        for (int k = 0; k < t->expect; k++) t->names[k] = sd_strdup(csv_field(t->r, k));
        csv_set_names(t->r, (const char *const *)t->names, t->expect);
        for (int c = 0; c < NCOL; c++) {
            if (!s->col[c] || !*s->col[c]) continue;
            t->idx[c] = find_column(t, s, c);
            if (t->idx[c] < 0 && s->optional[c]) continue;
            if (t->idx[c] < 0) {
                char have[512] = "";
                for (int k = 0; k < t->expect && strlen(have) < 400; k++) {
                    strcat(have, k ? ", " : "");
                    strncat(have, t->names[k], 60);
                }
                rc = sd_fail(err, SD_ERR_DATA, "%s:1: no column named \"%s\" for the %s (the header has: %s)", s->path, s->col[c], col_label[c], have);
                goto fail;
            }
        }
        if (s->typed_header && (rc = check_types(t, s, err))) goto fail;
    } else {
        t->expect = s->nfields;
        for (int c = 0; c < NCOL; c++) {
            if (!s->col[c] || !*s->col[c]) continue;
            int64_t k;
            if (csv_parse_i64(s->col[c], &k) || k < 1 || k > 1000) {
                rc = sd_fail(err, SD_ERR_USAGE, "%s: column \"%s\" for the %s must be a field number from 1 (the file has no header)", s->path,
                             s->col[c], col_label[c]);
                goto fail;
            }
            t->idx[c] = (int)k - 1;
        }
    }
    for (int c = 0; c < NCOL; c++)
        if (s->required[c] && t->idx[c] < 0) {
            rc = sd_fail(err, SD_ERR_USAGE, "%s: the %s column is required", s->path, col_label[c]);
            goto fail;
        }
    if (!s->header && t->expect) {
        table_name_fields(t);
        csv_set_names(t->r, (const char *const *)t->names, t->expect);
    }
    return SD_OK;
fail:
    table_close(t);
    return rc;
}

/* Reads the next data record and checks its width. Returns SD_OK, CSV_EOF or an error. */
static int table_next(table *t, sd_err *err) {
    int rc = csv_next(t->r, err);
    if (rc) return rc;
    if (!t->names) { /* first record of a headerless table */
        if (!t->expect) t->expect = csv_nfields(t->r);
        for (int c = 0; c < NCOL; c++)
            if (t->idx[c] >= t->expect) {
                table_name_fields(t);
                return csv_fail_field(t->r, t->idx[c], err, SD_ERR_DATA, "missing: the %s column is field %d but the line has %d field%s",
                                      col_label[c], t->idx[c] + 1, csv_nfields(t->r), csv_nfields(t->r) == 1 ? "" : "s");
            }
        table_name_fields(t);
        csv_set_names(t->r, (const char *const *)t->names, t->expect);
    }
    rc = csv_expect_fields(t->r, t->expect, err);
    if (rc) return rc;
    t->rows++;
    return SD_OK;
}

static const char *table_get(const table *t, int c) { return csv_field(t->r, t->idx[c]); }

static int table_id(const table *t, int c, int64_t *out, sd_err *err) { return csv_get_i64(t->r, t->idx[c], out, err); }

/* A string id: the field without surrounding spaces, copied into buf (DS_RAW_ID_MAX + 1 bytes);
 * SD_ERR_DATA when empty or longer than DS_RAW_ID_MAX bytes. */
static int table_name(const table *t, int c, char *buf, sd_err *err) {
    const char *s = table_get(t, c);
    s += strspn(s, " \t");
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (!n) return csv_fail_field(t->r, t->idx[c], err, SD_ERR_DATA, "empty %s id", col_label[c]);
    if (n > DS_RAW_ID_MAX)
        return csv_fail_field(t->r, t->idx[c], err, SD_ERR_DATA, "%s id of %zu bytes (limit %d)", col_label[c], n, DS_RAW_ID_MAX);
    memcpy(buf, s, n);
    buf[n] = 0;
    return SD_OK;
}

/* A non-negative time. */
static int table_ts(const table *t, int64_t *out, sd_err *err) {
    int rc;
    if (t->float_ts) { /* float seconds, floored; must fit an int64 */
        double x;
        if ((rc = csv_get_f64(t->r, t->idx[COL_TS], &x, err))) return rc;
        if (x < 0) return csv_fail_field(t->r, t->idx[COL_TS], err, SD_ERR_DATA, "negative timestamp %g", x);
        if (x >= 9.2e18) return csv_fail_field(t->r, t->idx[COL_TS], err, SD_ERR_DATA, "timestamp %g is out of range", x);
        *out = (int64_t)floor(x);
        return SD_OK;
    }
    rc = csv_get_time(t->r, t->idx[COL_TS], out, err);
    if (rc) return rc;
    if (*out < 0) return csv_fail_field(t->r, t->idx[COL_TS], err, SD_ERR_DATA, "negative timestamp %lld", (long long)*out);
    return SD_OK;
}

/* An optional non-negative value in [lo, hi]: DS_NO_VALUE when the column is absent, or the cell
 * is empty and empty_ok. */
static int table_value(const table *t, int c, int empty_ok, double lo, double hi, float *out, sd_err *err) {
    *out = DS_NO_VALUE;
    if (t->idx[c] < 0) return SD_OK;
    const char *s = table_get(t, c);
    if (empty_ok && !s[strspn(s, " \t")]) return SD_OK;
    double x;
    int rc = csv_get_f64(t->r, t->idx[c], &x, err);
    if (rc) return rc;
    if (x < lo || x > hi) return csv_fail_field(t->r, t->idx[c], err, SD_ERR_DATA, "%g is outside [%g, %g]", x, lo, hi);
    *out = (float)x;
    return SD_OK;
}

/* ---------------------------------------------------------------- user tags */

typedef struct {
    int64_t item;
    char *tag;
} tag_row;

typedef struct {
    int64_t item;
    char *tags; /* '|'-joined, most frequent first */
} item_tags;

typedef struct {
    sd_vec rows;  /* tag_row, while reading */
    item_tags *by_item;
    size_t n;
} tag_set;

static int cmp_tag_row(const void *pa, const void *pb) {
    const tag_row *a = pa, *b = pb;
    if (a->item != b->item) return a->item < b->item ? -1 : 1;
    return strcasecmp(a->tag, b->tag);
}

typedef struct {
    const char *tag;
    int64_t count;
} tag_count;

static int cmp_tag_count(const void *pa, const void *pb) {
    const tag_count *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return strcasecmp(a->tag, b->tag);
}

/* Copies a user tag with '|' (our separator) replaced and spaces trimmed; NULL when empty. */
static char *clean_tag(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (!n) return NULL;
    char *t = sd_strndup(s, n);
    for (char *p = t; *p; p++)
        if (*p == '|' || *p == '\n' || *p == '\r') *p = '/';
    return t;
}

static int read_tags(const table_spec *s, tag_set *ts, ingest_report *rep, sd_err *err) {
    table t;
    int rc = table_open(&t, s, err);
    if (rc) return rc;
    while ((rc = table_next(&t, err)) == SD_OK) {
        int64_t item;
        if ((rc = table_id(&t, COL_ITEM, &item, err))) break;
        if (t.idx[COL_TS] >= 0) {
            int64_t when;
            if ((rc = table_ts(&t, &when, err))) break;
        }
        char *tag = clean_tag(table_get(&t, COL_TAG));
        if (!tag) continue;
        tag_row *r = sd_vec_push(&ts->rows);
        r->item = item;
        r->tag = tag;
    }
    rep->tag_rows += t.rows;
    rep->bytes += csv_bytes_read(t.r);
    table_close(&t);
    if (rc != CSV_EOF) return rc;

    /* aggregate: per item, distinct tags (case-insensitive) by count, at most INGEST_MAX_USER_TAGS */
    tag_row *rows = ts->rows.data;
    size_t n = ts->rows.len;
    qsort(rows, n, sizeof *rows, cmp_tag_row);
    ts->by_item = sd_malloc((n ? n : 1) * sizeof *ts->by_item);
    tag_count *tc = sd_malloc((n ? n : 1) * sizeof *tc);
    for (size_t i = 0; i < n;) {
        size_t j = i, m = 0;
        while (j < n && rows[j].item == rows[i].item) {
            size_t k = j;
            while (k < n && rows[k].item == rows[j].item && !strcasecmp(rows[k].tag, rows[j].tag)) k++;
            tc[m++] = (tag_count){rows[j].tag, (int64_t)(k - j)};
            j = k;
        }
        qsort(tc, m, sizeof *tc, cmp_tag_count);
        if (m > INGEST_MAX_USER_TAGS) m = INGEST_MAX_USER_TAGS;
        size_t len = 1;
        for (size_t k = 0; k < m; k++) len += strlen(tc[k].tag) + 1;
        char *joined = sd_malloc(len), *p = joined;
        for (size_t k = 0; k < m; k++) p += sprintf(p, "%s%s", k ? "|" : "", tc[k].tag);
        *p = 0;
        ts->by_item[ts->n++] = (item_tags){rows[i].item, joined};
        i = j;
    }
    free(tc);
    for (size_t i = 0; i < n; i++) free(rows[i].tag);
    sd_vec_free(&ts->rows);
    return SD_OK;
}

static void tag_set_free(tag_set *ts) {
    for (size_t i = 0; i < ts->n; i++) free(ts->by_item[i].tags);
    for (size_t i = 0; i < ts->rows.len; i++) free(((tag_row *)ts->rows.data)[i].tag); /* a read that failed half-way */
    free(ts->by_item);
    sd_vec_free(&ts->rows);
    memset(ts, 0, sizeof *ts);
}

static int cmp_item_tags(const void *pa, const void *pb) {
    const item_tags *a = pa, *b = pb;
    return (a->item > b->item) - (a->item < b->item);
}

/* The user tags of item (NULL when none). */
static item_tags *tags_of(tag_set *ts, int64_t item) {
    item_tags key = {item, NULL};
    return ts->n ? bsearch(&key, ts->by_item, ts->n, sizeof key, cmp_item_tags) : NULL;
}

/* Appends to the '|'-list genres the user tags not already in it (case-insensitive). Caller frees. */
static char *merge_tags(const char *genres, const char *user) {
    size_t cap = strlen(genres) + (user ? strlen(user) : 0) + 2;
    char *out = sd_malloc(cap);
    strcpy(out, genres);
    if (!user) return out;
    const char *p = user;
    while (*p) {
        const char *e = strchr(p, '|');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int dup = 0;
        for (const char *g = out; *g && !dup;) {
            const char *ge = strchr(g, '|');
            size_t gn = ge ? (size_t)(ge - g) : strlen(g);
            dup = gn == n && !strncasecmp(g, p, n);
            g += gn + (ge != NULL);
        }
        if (!dup) {
            if (*out) strcat(out, "|");
            strncat(out, p, n);
        }
        p += n + (e != NULL);
    }
    return out;
}

/* ---------------------------------------------------------------- catalogue and ratings */

/* MovieLens 100k: the 19 genre flags of u.item, in the order of u.genre. "unknown" is not a genre
 * and gives no tag. */
static const char *const ml100k_genres[19] = {"unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                                              "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                                              "Romance", "Sci-Fi", "Thriller", "War", "Western"};
#define ML100K_ITEM_FIELDS 24
#define ML100K_FLAG0 5

/* A RecBole token_seq of tags ("Action Adventure") as our '|'-list, in place. */
static void words_to_tags(char *s) {
    char *w = s;
    for (const char *r = s; *r;) {
        if (*r == ' ' || *r == '\t') {
            while (*r == ' ' || *r == '\t') r++;
            if (w > s && *r) *w++ = '|';
            continue;
        }
        *w++ = *r == '|' ? '/' : *r;
        r++;
    }
    *w = 0;
}

/* Reads the catalogue into b. genre_flags: 100k u.item (genres are 0/1 flags from field 6). */
static int read_catalogue(const table_spec *s, int genre_flags, tag_set *ts, ds_builder *b, ingest_report *rep, sd_err *err) {
    table t;
    int rc = table_open(&t, s, err);
    if (rc) return rc;
    char genres[512], name[DS_RAW_ID_MAX + 1];
    while ((rc = table_next(&t, err)) == SD_OK) {
        int64_t item = 0;
        if ((rc = s->string_ids ? table_name(&t, COL_ITEM, name, err) : table_id(&t, COL_ITEM, &item, err))) break;
        const char *title = t.idx[COL_TITLE] >= 0 ? table_get(&t, COL_TITLE) : "";
        genres[0] = 0;
        if (genre_flags) {
            for (int g = 0; g < 19; g++) {
                const char *f = csv_field(t.r, ML100K_FLAG0 + g);
                if (strcmp(f, "0") && strcmp(f, "1")) {
                    rc = csv_fail_field(t.r, ML100K_FLAG0 + g, err, SD_ERR_DATA, "genre flag \"%.20s\" is not 0 or 1", f);
                    break;
                }
                if (f[0] == '1' && g > 0) {
                    if (genres[0]) strcat(genres, "|");
                    strcat(genres, ml100k_genres[g]);
                }
            }
            if (rc) break;
        } else if (t.idx[COL_TAGS] >= 0) {
            const char *g = table_get(&t, COL_TAGS);
            if (!strcmp(g, "(no genres listed)")) g = ""; /* MovieLens latest's way of saying none */
            snprintf(genres, sizeof genres, "%s", g);
            if (s->tags_words) words_to_tags(genres);
        }
        item_tags *ut = s->string_ids ? NULL : tags_of(ts, item);
        char *tags = merge_tags(genres, ut ? ut->tags : NULL);
        rc = s->string_ids ? ds_builder_add_item_str(b, name, title, tags, err) : ds_builder_add_item(b, item, title, tags, err);
        free(tags);
        if (rc) {
            if (s->string_ids)
                rc = csv_fail_field(t.r, t.idx[COL_ITEM], err, SD_ERR_DATA, "item \"%s\" appears twice in the catalogue", name);
            else
                rc = csv_fail_field(t.r, t.idx[COL_ITEM], err, SD_ERR_DATA, "item %lld appears twice in the catalogue", (long long)item);
            break;
        }
    }
    rep->catalogue_rows += t.rows;
    rep->bytes += csv_bytes_read(t.r);
    if (rc == CSV_EOF && t.rows == 0) rc = sd_fail(err, SD_ERR_DATA, "%s:%lld: empty file (no catalogue rows)", s->path, (long long)(s->header ? 2 : 1));
    table_close(&t);
    return rc == CSV_EOF ? SD_OK : rc;
}

static int read_ratings(const table_spec *s, ds_builder *b, ingest_report *rep, sd_err *err) {
    table t;
    int rc = table_open(&t, s, err);
    if (rc) return rc;
    struct stat st;
    sd_progress pg;
    sd_progress_start(&pg, "ingest", stat(s->path, &st) == 0 ? (int64_t)st.st_size : 0); /* in bytes */
    char uname[DS_RAW_ID_MAX + 1], iname[DS_RAW_ID_MAX + 1];
    while ((rc = table_next(&t, err)) == SD_OK) {
        int64_t user = 0, item = 0, ts;
        float rating, watch;
        if (s->string_ids) rc = table_name(&t, COL_USER, uname, err) || table_name(&t, COL_ITEM, iname, err) ? SD_ERR_DATA : SD_OK;
        else if (!(rc = table_id(&t, COL_USER, &user, err))) rc = table_id(&t, COL_ITEM, &item, err);
        if (rc || (rc = table_ts(&t, &ts, err)) || (rc = table_value(&t, COL_RATING, !s->required[COL_RATING], 0, 1e9, &rating, err)) ||
            (rc = table_value(&t, COL_WATCH, 1, 0, 1, &watch, err)))
            break;
        if (s->string_ids) ds_builder_add_event_str(b, uname, iname, ts, rating, watch);
        else ds_builder_add_event(b, user, item, ts, rating, watch);
        if ((t.rows & 0xffff) == 0) {
            char extra[48];
            snprintf(extra, sizeof extra, "%lld rows", (long long)t.rows);
            sd_progress_update(&pg, csv_bytes_read(t.r), extra);
        }
    }
    sd_progress_end(&pg);
    rep->rating_rows += t.rows;
    rep->bytes += csv_bytes_read(t.r);
    if (rc == CSV_EOF && t.rows == 0) rc = sd_fail(err, SD_ERR_DATA, "%s:%lld: empty file (no ratings)", s->path, (long long)(s->header ? 2 : 1));
    table_close(&t);
    return rc == CSV_EOF ? SD_OK : rc;
}

/* Counts the tag rows whose item the finished dataset does not describe. */
static void count_ignored_tags(const tag_set *ts, const ds_dataset *d, ingest_report *rep) {
    for (size_t i = 0; i < ts->n; i++) {
        int64_t k = ds_find_item(d, ts->by_item[i].item);
        if (k < 0 || !d->item_meta[k]) rep->tag_rows_ignored++;
    }
}

/* ---------------------------------------------------------------- MovieLens */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

/* The one NAME.inter of folder dir (*path, caller frees). SD_ERR_STATE when there is none (or dir
 * is not a folder), SD_ERR_USAGE naming them when there are several. */
static int find_inter(const char *dir, char **path, sd_err *err) {
    *path = NULL;
    DIR *dp = opendir(dir);
    if (!dp) return SD_ERR_STATE;
    char found[2][256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (!ends_with(e->d_name, ".inter")) continue;
        if (n < 2) snprintf(found[n], sizeof found[n], "%s", e->d_name);
        n++;
    }
    closedir(dp);
    if (n == 0) return SD_ERR_STATE;
    if (n > 1)
        return sd_fail(err, SD_ERR_USAGE, "%s: %d RecBole .inter files (%s, %s%s): give the one to read", dir, n, found[0], found[1],
                       n > 2 ? ", ..." : "");
    *path = sd_path_join(dir, found[0]);
    return SD_OK;
}

static int file_in(const char *dir, const char *name, char **path) {
    *path = sd_path_join(dir, name);
    if (sd_file_exists(*path)) return 1;
    free(*path);
    *path = NULL;
    return 0;
}

static void fill_report(ingest_report *rep, const ds_dataset *d, double t0) {
    rep->string_user_ids = ds_has_user_names(d);
    rep->string_item_ids = ds_has_item_names(d);
    rep->n_users = d->n_users;
    rep->n_items = d->n_items;
    rep->n_events = d->n_events;
    rep->n_unknown_items = d->n_unknown_items;
    rep->seconds = sd_now() - t0;
}

int ingest_movielens(const char *dir, ds_dataset *out, ingest_report *rep_out, sd_err *err) {
    double t0 = sd_now();
    ingest_report rep = {0};
    memset(out, 0, sizeof *out);
    char *ratings = NULL, *items = NULL, *tags = NULL;
    table_spec rs = {0}, is = {0}, tsp = {0};
    int flags = 0, rc = SD_OK;
    rs.required[COL_USER] = rs.required[COL_ITEM] = rs.required[COL_TS] = rs.required[COL_RATING] = 1;
    is.required[COL_ITEM] = 1;
    tsp.required[COL_ITEM] = tsp.required[COL_TAG] = 1;
    if (file_in(dir, "u.data", &ratings)) {
        rep.layout = "movielens-100k";
        rs.opts = (csv_opts){.sep = "\t", .no_quotes = 1};
        rs.nfields = 4;
        rs.col[COL_USER] = "1", rs.col[COL_ITEM] = "2", rs.col[COL_RATING] = "3", rs.col[COL_TS] = "4";
        if (!file_in(dir, "u.item", &items)) goto missing_items;
        is.opts = (csv_opts){.sep = "|", .no_quotes = 1, .enc = CSV_LATIN1};
        is.nfields = ML100K_ITEM_FIELDS;
        is.col[COL_ITEM] = "1", is.col[COL_TITLE] = "2";
        flags = 1;
    } else if (file_in(dir, "ratings.dat", &ratings)) {
        rs.opts = (csv_opts){.sep = "::", .no_quotes = 1};
        rs.nfields = 4;
        rs.col[COL_USER] = "1", rs.col[COL_ITEM] = "2", rs.col[COL_RATING] = "3", rs.col[COL_TS] = "4";
        if (!file_in(dir, "movies.dat", &items)) goto missing_items;
        is.opts = (csv_opts){.sep = "::", .no_quotes = 1, .enc = CSV_AUTO};
        is.nfields = 3;
        is.col[COL_ITEM] = "1", is.col[COL_TITLE] = "2", is.col[COL_TAGS] = "3";
        rep.layout = file_in(dir, "tags.dat", &tags) ? "movielens-10m" : "movielens-1m";
        tsp.opts = is.opts;
        tsp.nfields = 4;
        tsp.col[COL_USER] = "1", tsp.col[COL_ITEM] = "2", tsp.col[COL_TAG] = "3", tsp.col[COL_TS] = "4";
    } else if (file_in(dir, "ratings.csv", &ratings)) {
        rep.layout = "movielens-latest";
        rs.header = 1;
        rs.col[COL_USER] = "userId", rs.col[COL_ITEM] = "movieId", rs.col[COL_RATING] = "rating", rs.col[COL_TS] = "timestamp";
        if (!file_in(dir, "movies.csv", &items)) goto missing_items;
        is.header = 1;
        is.opts.enc = CSV_AUTO; /* a title or tag that is not valid UTF-8 is read as Latin-1: JSON output always parses */
        is.col[COL_ITEM] = "movieId", is.col[COL_TITLE] = "title", is.col[COL_TAGS] = "genres";
        is.required[COL_TITLE] = is.required[COL_TAGS] = 1;
        if (file_in(dir, "tags.csv", &tags)) {
            tsp.header = 1;
            tsp.opts.enc = CSV_AUTO;
            tsp.col[COL_USER] = "userId", tsp.col[COL_ITEM] = "movieId", tsp.col[COL_TAG] = "tag", tsp.col[COL_TS] = "timestamp";
        }
    } else {
        char *inter = NULL;
        int rc2 = find_inter(dir, &inter, err);
        if (rc2 == SD_OK) {
            free(inter);
            return ingest_recbole(dir, out, rep_out, err);
        }
        if (rc2 != SD_ERR_STATE) return rc2;
        /* the same code for a missing and an empty folder: both are a wrong --movielens */
        return sd_fail(err, SD_ERR_USAGE, "%s: %s (expected u.data for 100k, ratings.dat for 1M/10M, ratings.csv for latest/20M/25M/32M, "
                       "or a RecBole NAME.inter)", dir, sd_file_exists(dir) ? "no MovieLens or RecBole files found" : "no such folder");
    }
    rs.path = ratings, is.path = items, tsp.path = tags;

    tag_set ts = {0};
    sd_vec_init(&ts.rows, sizeof(tag_row));
    ds_builder *b = ds_builder_new();
    if (tags) rc = read_tags(&tsp, &ts, &rep, err);
    if (!rc) rc = read_catalogue(&is, flags, &ts, b, &rep, err);
    if (!rc) rc = read_ratings(&rs, b, &rep, err);
    if (rc) ds_builder_free(b);
    else rc = ds_builder_finish(b, out, err);
    if (!rc) {
        count_ignored_tags(&ts, out, &rep);
        fill_report(&rep, out, t0);
        if (rep_out) *rep_out = rep;
    }
    tag_set_free(&ts);
    free(ratings);
    free(items);
    free(tags);
    return rc;

missing_items:;
    char *want = sd_path_join(dir, strstr(ratings, "u.data") ? "u.item" : strstr(ratings, ".dat") ? "movies.dat" : "movies.csv");
    rc = sd_fail(err, SD_ERR_DATA, "%s: missing (the catalogue that goes with %s)", want, ratings);
    free(want);
    free(ratings);
    return rc;
}

/* ---------------------------------------------------------------- generic CSV */

int ingest_csv(const ingest_csv_opts *o, ds_dataset *out, ingest_report *rep_out, sd_err *err) {
    double t0 = sd_now();
    ingest_report rep = {.layout = "csv"};
    memset(out, 0, sizeof *out);
    if (!o->ratings || !*o->ratings) return sd_fail(err, SD_ERR_USAGE, "ingest: a ratings file is required");
    if (!o->user_col || !*o->user_col || !o->item_col || !*o->item_col || !o->ts_col || !*o->ts_col)
        return sd_fail(err, SD_ERR_USAGE, "ingest: the user, item and timestamp columns are required");
    csv_opts co = {.sep = o->sep && *o->sep ? o->sep : ",", .enc = CSV_AUTO};
    if (strlen(co.sep) > 2) return sd_fail(err, SD_ERR_USAGE, "ingest: separator \"%s\" is longer than 2 bytes", co.sep);
    table_spec rs = {.path = o->ratings, .opts = co, .header = !o->no_header, .string_ids = !o->int_ids};
    rs.col[COL_USER] = o->user_col, rs.col[COL_ITEM] = o->item_col, rs.col[COL_TS] = o->ts_col;
    rs.col[COL_RATING] = o->rating_col, rs.col[COL_WATCH] = o->watch_col;
    rs.required[COL_USER] = rs.required[COL_ITEM] = rs.required[COL_TS] = 1;
    ds_builder *b = ds_builder_new();
    tag_set ts = {0};
    sd_vec_init(&ts.rows, sizeof(tag_row));
    int rc = SD_OK;
    if (o->items && *o->items) {
        table_spec is = {.path = o->items, .opts = co, .header = !o->no_header, .string_ids = !o->int_ids};
        is.col[COL_ITEM] = o->item_col, is.col[COL_TITLE] = o->title_col, is.col[COL_TAGS] = o->tags_col;
        is.required[COL_ITEM] = 1;
        rc = read_catalogue(&is, 0, &ts, b, &rep, err);
    }
    if (!rc) rc = read_ratings(&rs, b, &rep, err);
    if (rc) ds_builder_free(b);
    else rc = ds_builder_finish(b, out, err);
    if (!rc) {
        fill_report(&rep, out, t0);
        if (rep_out) *rep_out = rep;
    }
    tag_set_free(&ts);
    return rc;
}

/* ---------------------------------------------------------------- RecBole atomic files */

int ingest_recbole(const char *path, ds_dataset *out, ingest_report *rep_out, sd_err *err) {
    double t0 = sd_now();
    ingest_report rep = {.layout = "recbole"};
    memset(out, 0, sizeof *out);
    char *inter = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return sd_fail(err, SD_ERR_USAGE, "%s: no such file or folder", path);
    if (S_ISDIR(st.st_mode)) {
        int rc = find_inter(path, &inter, err);
        if (rc == SD_ERR_STATE) return sd_fail(err, SD_ERR_USAGE, "%s: no RecBole .inter file in this folder", path);
        if (rc) return rc;
    } else {
        if (!ends_with(path, ".inter")) return sd_fail(err, SD_ERR_USAGE, "%s: a RecBole interaction file ends in .inter", path);
        inter = sd_strdup(path);
    }
    /* NAME.item beside NAME.inter, when present */
    char *item = sd_malloc(strlen(inter) + 1);
    memcpy(item, inter, strlen(inter) - strlen("inter"));
    strcpy(item + strlen(inter) - strlen("inter"), "item");
    if (!sd_file_exists(item)) {
        free(item);
        item = NULL;
    }
    const csv_opts co = {.sep = "\t", .enc = CSV_AUTO};
    table_spec rs = {.path = inter, .opts = co, .header = 1, .string_ids = 1, .typed_header = 1, .float_ts = 1};
    rs.col[COL_USER] = "user_id", rs.col[COL_ITEM] = "item_id", rs.col[COL_TS] = "timestamp", rs.col[COL_RATING] = "rating";
    rs.required[COL_USER] = rs.required[COL_ITEM] = rs.required[COL_TS] = 1;
    rs.optional[COL_RATING] = 1;
    rs.type[COL_USER] = rs.type[COL_ITEM] = "token";
    rs.type[COL_TS] = rs.type[COL_RATING] = "float";
    ds_builder *b = ds_builder_new();
    tag_set ts = {0};
    sd_vec_init(&ts.rows, sizeof(tag_row));
    int rc = SD_OK;
    if (item) {
        table_spec is = {.path = item, .opts = co, .header = 1, .string_ids = 1, .typed_header = 1, .tags_words = 1};
        is.col[COL_ITEM] = "item_id";
        is.col[COL_TITLE] = "movie_title|title|name";
        is.col[COL_TAGS] = "class|genre|genres|categories|tags";
        is.required[COL_ITEM] = 1;
        is.optional[COL_TITLE] = is.optional[COL_TAGS] = 1;
        is.type[COL_ITEM] = "token";
        is.type[COL_TITLE] = is.type[COL_TAGS] = "token|token_seq";
        rc = read_catalogue(&is, 0, &ts, b, &rep, err);
    }
    if (!rc) rc = read_ratings(&rs, b, &rep, err);
    if (rc) ds_builder_free(b);
    else rc = ds_builder_finish(b, out, err);
    if (!rc) {
        fill_report(&rep, out, t0);
        if (rep_out) *rep_out = rep;
    }
    tag_set_free(&ts);
    free(inter);
    free(item);
    return rc;
}
