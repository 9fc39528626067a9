/* csv.c - a streaming CSV/DSV reader (see csv.h) and strict number / time parsers.
 *
 * Hand-written because no Debian C library covers what ingest needs at once: the two-byte "::"
 * separator of MovieLens 1M/10M, Latin-1 transcoding (MovieLens 100k u.item), a per-record length
 * limit, and errors that name the file, line and field (libcsv has none of these). The reader is
 * a byte-at-a-time state machine over a 64 KiB buffer; it holds one record in memory. */
#include "serendip/csv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CSV_BUF (64 * 1024)

struct csv_reader {
    char *name;
    FILE *f;                  /* NULL for an in-memory source */
    const unsigned char *buf; /* current window: the file buffer or the whole memory source */
    unsigned char *fbuf;      /* (CSV_BUF) owned file buffer */
    size_t pos, len;
    int64_t consumed;         /* bytes of earlier windows */
    int sep0, sep1;           /* separator bytes; sep1 = -1 for a one-byte separator */
    int quotes;
    csv_encoding enc;
    size_t max_record;
    char *rec;                /* current record: fields back to back, each NUL-terminated */
    size_t rec_len, rec_cap;
    size_t *foff, *flen;      /* (fcap) offset and length of each field in rec */
    int nf, fcap;
    int64_t line;             /* physical line of the next byte (1-based) */
    int64_t rec_line;         /* line where the current record starts */
    int64_t nrec;
    int started, bom, failed;
    const char *const *names;
    int nnames;
};

/* ---------------------------------------------------------------- opening */

static csv_reader *reader_new(const char *name, const csv_opts *o) {
    csv_reader *r = sd_calloc(1, sizeof *r);
    csv_opts def = {0};
    if (!o) o = &def;
    const char *sep = o->sep && *o->sep ? o->sep : ",";
    r->name = sd_strdup(name);
    r->sep0 = (unsigned char)sep[0];
    r->sep1 = sep[1] ? (unsigned char)sep[1] : -1;
    r->quotes = !o->no_quotes;
    r->enc = o->enc;
    r->max_record = o->max_record ? o->max_record : CSV_MAX_RECORD_DEFAULT;
    r->rec_cap = 256;
    r->rec = sd_malloc(r->rec_cap);
    r->fcap = 16;
    r->foff = sd_malloc((size_t)r->fcap * sizeof *r->foff);
    r->flen = sd_malloc((size_t)r->fcap * sizeof *r->flen);
    r->line = 1;
    return r;
}

int csv_open(csv_reader **out, const char *path, const csv_opts *opts, sd_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sd_fail(err, SD_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    csv_reader *r = reader_new(path, opts);
    r->f = f;
    r->fbuf = sd_malloc(CSV_BUF);
    r->buf = r->fbuf;
    *out = r;
    return SD_OK;
}

csv_reader *csv_open_mem(const void *data, size_t len, const char *name, const csv_opts *opts) {
    csv_reader *r = reader_new(name, opts);
    r->buf = data;
    r->len = len;
    return r;
}

void csv_close(csv_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    free(r->fbuf);
    free(r->name);
    free(r->rec);
    free(r->foff);
    free(r->flen);
    free(r);
}

/* ---------------------------------------------------------------- bytes */

/* Loads the next window of the file; returns 0 at end of input. */
static int refill(csv_reader *r) {
    if (!r->f) return 0;
    r->consumed += (int64_t)r->len;
    r->len = fread(r->fbuf, 1, CSV_BUF, r->f);
    r->pos = 0;
    return r->len > 0;
}

static inline int get(csv_reader *r) {
    if (r->pos < r->len || refill(r)) return r->buf[r->pos++];
    return -1;
}

static inline int peek(csv_reader *r) {
    if (r->pos < r->len || refill(r)) return r->buf[r->pos];
    return -1;
}

/* ---------------------------------------------------------------- errors */

static const char *field_name(const csv_reader *r, int k) {
    return r->names && k >= 0 && k < r->nnames && r->names[k] ? r->names[k] : NULL;
}

static int fail_at(const csv_reader *r, int64_t line, int k, sd_err *err, int code, const char *fmt, va_list ap) {
    char what[768];
    vsnprintf(what, sizeof what, fmt, ap);
    const char *nm = field_name(r, k);
    if (nm) return sd_fail(err, code, "%s:%lld: field %d (%s): %s", r->name, (long long)line, k + 1, nm, what);
    return sd_fail(err, code, "%s:%lld: field %d: %s", r->name, (long long)line, k + 1, what);
}

int csv_fail_field(const csv_reader *r, int k, sd_err *err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = fail_at(r, r->rec_line, k, err, code, fmt, ap);
    va_end(ap);
    return rc;
}

/* A parse error at the current line; makes the reader fail from now on. */
static int parse_fail(csv_reader *r, int64_t line, sd_err *err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int parse_fail(csv_reader *r, int64_t line, sd_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = fail_at(r, line, r->nf, err, SD_ERR_DATA, fmt, ap);
    va_end(ap);
    r->failed = rc;
    return rc;
}

/* ---------------------------------------------------------------- encoding */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

static int utf8_valid(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

static void rec_reserve(csv_reader *r, size_t extra) {
    while (r->rec_len + extra > r->rec_cap) r->rec = sd_realloc(r->rec, r->rec_cap *= 2);
}

/* Rewrites the field that starts at rec[start] (ending at rec_len) from Latin-1 to UTF-8. */
static void latin1_to_utf8(csv_reader *r, size_t start) {
    size_t high = 0;
    for (size_t i = start; i < r->rec_len; i++) high += (unsigned char)r->rec[i] >= 0x80;
    if (!high) return;
    rec_reserve(r, high);
    size_t src = r->rec_len, dst = r->rec_len + high;
    while (src > start) {
        unsigned char c = (unsigned char)r->rec[--src];
        if (c < 0x80) r->rec[--dst] = (char)c;
        else {
            r->rec[--dst] = (char)(0x80 | (c & 0x3f));
            r->rec[--dst] = (char)(0xc0 | (c >> 6));
        }
    }
    r->rec_len += high;
}

/* ---------------------------------------------------------------- records */

static inline void put(csv_reader *r, int c) {
    if (r->rec_len + 1 > r->rec_cap) r->rec = sd_realloc(r->rec, r->rec_cap *= 2);
    r->rec[r->rec_len++] = (char)c;
}

static void field_begin(csv_reader *r) {
    if (r->nf == r->fcap) {
        r->fcap *= 2;
        r->foff = sd_realloc(r->foff, (size_t)r->fcap * sizeof *r->foff);
        r->flen = sd_realloc(r->flen, (size_t)r->fcap * sizeof *r->flen);
    }
    r->foff[r->nf] = r->rec_len;
}

static void field_end(csv_reader *r) {
    size_t start = r->foff[r->nf];
    if (r->enc == CSV_LATIN1 || (r->enc == CSV_AUTO && !utf8_valid((unsigned char *)r->rec + start, r->rec_len - start)))
        latin1_to_utf8(r, start);
    r->flen[r->nf] = r->rec_len - start;
    put(r, 0);
    r->nf++;
}

/* Checks the first bytes of the input for a byte-order mark. */
static int check_bom(csv_reader *r, sd_err *err) {
    if (peek(r) < 0) return SD_OK;
    /* the first window holds at least 3 bytes unless the input is shorter */
    const unsigned char *b = r->buf + r->pos;
    size_t n = r->len - r->pos;
    if (n >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf) {
        r->pos += 3;
        r->bom = 1;
    } else if (n >= 2 && ((b[0] == 0xff && b[1] == 0xfe) || (b[0] == 0xfe && b[1] == 0xff))) {
        r->failed = sd_fail(err, SD_ERR_DATA, "%s:1: the file is UTF-16 (byte-order mark %02x %02x); convert it to UTF-8", r->name, b[0], b[1]);
        return r->failed;
    }
    return SD_OK;
}

int csv_next(csv_reader *r, sd_err *err) {
    if (r->failed) return sd_fail(err, r->failed, "%s: reading stopped at an earlier error", r->name);
    if (!r->started) {
        r->started = 1;
        int rc = check_bom(r, err);
        if (rc) return rc;
    }
    r->rec_len = 0;
    r->nf = 0;
    int c;
    for (;;) { /* skip blank lines */
        c = get(r);
        if (c == '\n') r->line++;
        else if (c == '\r') {
            if (peek(r) == '\n') get(r);
            r->line++;
        } else break;
    }
    r->rec_line = r->line;
    if (c < 0) {
        if (r->f && ferror(r->f)) return r->failed = sd_fail(err, SD_ERR_IO, "%s:%lld: read failed", r->name, (long long)r->line);
        return CSV_EOF;
    }
    for (;;) { /* one field per iteration; c is its first byte */
        field_begin(r);
        if (r->quotes && c == '"') {
            int64_t opened = r->line;
            for (;;) {
                c = get(r);
                if (c < 0)
                    return parse_fail(r, opened, err, "unterminated quoted field (the quote opened on line %lld is never closed)", (long long)opened);
                if (c == '"') {
                    if (peek(r) != '"') break;
                    get(r);
                } else if (c == '\n') r->line++;
                else if (c == 0) return parse_fail(r, r->line, err, "contains a NUL byte (is this a text file?)");
                put(r, c);
                if (r->rec_len >= r->max_record)
                    return parse_fail(r, r->rec_line, err, "record of %zu bytes or more (limit %zu; is the separator or the quoting right?)", r->max_record, r->max_record);
            }
            c = get(r); /* after the closing quote: a separator or the end of the line */
            int sep = c == r->sep0 && (r->sep1 < 0 || peek(r) == r->sep1);
            if (!sep && c != '\n' && c != '\r' && c >= 0)
                return parse_fail(r, r->line, err, "unexpected '%c' after a closing quote (a quote inside a field must be doubled)", c);
            if (sep && r->sep1 >= 0) get(r);
        } else {
            for (;;) {
                if (c < 0 || c == '\n' || c == '\r') break;
                if (c == r->sep0) {
                    if (r->sep1 < 0) break;
                    if (peek(r) == r->sep1) {
                        get(r);
                        break;
                    }
                }
                if (c == 0) return parse_fail(r, r->line, err, "contains a NUL byte (is this a text file?)");
                put(r, c);
                if (r->rec_len >= r->max_record)
                    return parse_fail(r, r->rec_line, err, "record of %zu bytes or more (limit %zu; is the separator or the quoting right?)", r->max_record, r->max_record);
                c = get(r);
            }
        }
        field_end(r);
        if (c < 0) break;
        if (c == '\n') {
            r->line++;
            break;
        }
        if (c == '\r') {
            if (peek(r) == '\n') get(r);
            r->line++;
            break;
        }
        c = get(r); /* first byte of the next field (after a separator) */
        if (c < 0 || c == '\n' || c == '\r') { /* a trailing separator: one more, empty field */
            field_begin(r);
            field_end(r);
            if (c == '\r' && peek(r) == '\n') get(r);
            if (c >= 0) r->line++;
            break;
        }
    }
    if (r->f && ferror(r->f)) return r->failed = sd_fail(err, SD_ERR_IO, "%s:%lld: read failed", r->name, (long long)r->line);
    r->nrec++;
    return SD_OK;
}

int csv_nfields(const csv_reader *r) { return r->nf; }
const char *csv_field(const csv_reader *r, int k) { return k >= 0 && k < r->nf ? r->rec + r->foff[k] : ""; }
size_t csv_field_len(const csv_reader *r, int k) { return k >= 0 && k < r->nf ? r->flen[k] : 0; }
int64_t csv_line(const csv_reader *r) { return r->rec_line; }
int64_t csv_records(const csv_reader *r) { return r->nrec; }
const char *csv_name(const csv_reader *r) { return r->name; }
int csv_had_bom(const csv_reader *r) { return r->bom; }
int64_t csv_bytes_read(const csv_reader *r) { return r->consumed + (int64_t)r->pos; }

void csv_set_names(csv_reader *r, const char *const *names, int n) {
    r->names = names;
    r->nnames = n;
}

int csv_expect_fields(const csv_reader *r, int n, sd_err *err) {
    if (r->nf == n) return SD_OK;
    if (r->nf < n)
        return csv_fail_field(r, r->nf, err, SD_ERR_DATA, "missing (the line has %d field%s, expected %d; is the separator right?)", r->nf,
                              r->nf == 1 ? "" : "s", n);
    return csv_fail_field(r, n, err, SD_ERR_DATA, "unexpected extra field (the line has %d fields, expected %d)", r->nf, n);
}

/* ---------------------------------------------------------------- numbers */

static const char *skip_space(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

int csv_parse_i64(const char *s, int64_t *out) {
    s = skip_space(s);
    /* fast path: [+-] and at most 18 digits cannot overflow; anything else goes to strtoll */
    const char *p = s;
    int neg = *p == '-';
    p += *p == '-' || *p == '+';
    uint64_t v = 0;
    int nd = 0;
    while (*p >= '0' && *p <= '9' && nd < 18) v = v * 10 + (uint64_t)(*p++ - '0'), nd++;
    if (nd && !(*p >= '0' && *p <= '9') && !*skip_space(p)) {
        *out = neg ? -(int64_t)v : (int64_t)v;
        return 0;
    }
    if (!*s) return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *skip_space(end)) return -1;
    *out = x;
    return 0;
}

/* Exact powers of ten (every 10^k with k <= 22 is a double). */
static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                       1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

int csv_parse_f64(const char *s, double *out) {
    s = skip_space(s);
    if (!*s) return -1;
    /* Fast path (Clinger): [+-]digits[.digits] with at most 15 significant digits is an exact
     * integer divided by an exact power of ten, and IEEE division rounds that correctly, so the
     * result equals strtod's. Exponents and longer numbers take the strtod path. */
    const char *p = s;
    int neg = *p == '-', nd = 0, nf = 0;
    p += *p == '-' || *p == '+';
    uint64_t m = 0;
    while (*p >= '0' && *p <= '9' && nd < 16) m = m * 10 + (uint64_t)(*p++ - '0'), nd++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9' && nd < 16) m = m * 10 + (uint64_t)(*p++ - '0'), nd++, nf++;
    }
    if (nd && nd <= 15 && !*skip_space(p)) {
        double x = (double)m / pow10_exact[nf];
        *out = neg ? -x : x;
        return 0;
    }
    /* strtod also takes "nan", "inf" and hex floats: allow only decimal notation */
    for (const char *p = s; *p && *p != ' ' && *p != '\t'; p++)
        if (!strchr("0123456789+-.eE", *p)) return -1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *skip_space(end) || !isfinite(x) || (errno == ERANGE && fabs(x) > 1)) return -1;
    *out = x;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Reads exactly n digits at *s into *v. */
static int digits(const char **s, int n, int *v) {
    *v = 0;
    for (int i = 0; i < n; i++) {
        if ((*s)[i] < '0' || (*s)[i] > '9') return -1;
        *v = *v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    return 0;
}

int csv_parse_time(const char *s, int64_t *out) {
    if (csv_parse_i64(s, out) == 0) return 0;
    s = skip_space(s);
    int y, mo, d, h = 0, mi = 0, se = 0;
    if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' || digits(&s, 2, &d)) return -1;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap)) return -1;
    if (*s == 'T' || *s == ' ') {
        s++;
        if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi)) return -1;
        if (*s == ':' && (s++, digits(&s, 2, &se))) return -1;
        if (h > 23 || mi > 59 || se > 60) return -1;
        if (*s == 'Z') s++;
    }
    if (*skip_space(s)) return -1;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return 0;
}

/* Shortened copy of a field for messages. */
static void excerpt(const char *s, char *buf, size_t n) {
    size_t len = strlen(s);
    if (len < n) memcpy(buf, s, len + 1);
    else snprintf(buf, n, "%.*s...", (int)(n - 4), s);
}

int csv_get_i64(const csv_reader *r, int k, int64_t *out, sd_err *err) {
    if (csv_parse_i64(csv_field(r, k), out) == 0) return SD_OK;
    char ex[48];
    excerpt(csv_field(r, k), ex, sizeof ex);
    return csv_fail_field(r, k, err, SD_ERR_DATA, "\"%s\" is not an integer", ex);
}

int csv_get_f64(const csv_reader *r, int k, double *out, sd_err *err) {
    if (csv_parse_f64(csv_field(r, k), out) == 0) return SD_OK;
    char ex[48];
    excerpt(csv_field(r, k), ex, sizeof ex);
    return csv_fail_field(r, k, err, SD_ERR_DATA, "\"%s\" is not a finite number", ex);
}

int csv_get_time(const csv_reader *r, int k, int64_t *out, sd_err *err) {
    if (csv_parse_time(csv_field(r, k), out) == 0) return SD_OK;
    char ex[48];
    excerpt(csv_field(r, k), ex, sizeof ex);
    return csv_fail_field(r, k, err, SD_ERR_DATA, "\"%s\" is not a time (unix seconds or YYYY-MM-DD[ HH:MM[:SS]])", ex);
}
