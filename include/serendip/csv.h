/* csv.h - a streaming CSV/DSV reader and strict number parsers.
 *
 * RFC-4180 quoting ("" escapes, separators and line breaks inside quotes), any one-byte separator
 * or the two-byte "::" of MovieLens 1M/10M, LF / CRLF / CR line ends, a UTF-8 byte-order mark at
 * the start of the file skipped, Latin-1 transcoded to UTF-8, a limit on the length of one record.
 * Errors read "<file>:<line>: field <k> (<name>): <what>" with k 1-based. */
#ifndef SERENDIP_CSV_H
#define SERENDIP_CSV_H

#include "serendip/base.h"

#define CSV_EOF (-1)                  /* csv_next: no more records */
#define CSV_MAX_RECORD_DEFAULT (1 << 20) /* a record of a megabyte or more is an error */

typedef enum {
    CSV_UTF8 = 0,   /* bytes passed through */
    CSV_LATIN1 = 1, /* every byte >= 0x80 is a Latin-1 code point, written as UTF-8 */
    CSV_AUTO = 2,   /* per field: kept when valid UTF-8, else read as Latin-1 (MovieLens .dat/.item) */
} csv_encoding;

typedef struct {
    const char *sep;    /* "," (default when NULL), "\t", "|", ";", "::" ... one or two bytes */
    int no_quotes;      /* 1: '"' is an ordinary byte (MovieLens 100k/1M/10M files are not quoted) */
    csv_encoding enc;
    size_t max_record;  /* 0 = CSV_MAX_RECORD_DEFAULT; bytes of one record, line breaks excluded */
} csv_opts;

typedef struct csv_reader csv_reader;

/* Opens a file (or, with csv_open_mem, a borrowed buffer named name in messages). */
int csv_open(csv_reader **out, const char *path, const csv_opts *opts, sd_err *err);
csv_reader *csv_open_mem(const void *data, size_t len, const char *name, const csv_opts *opts);
void csv_close(csv_reader *r);

/* Reads the next record; blank lines are skipped. Returns SD_OK, CSV_EOF, or SD_ERR_DATA (bad
 * quoting, a NUL byte, a record over the limit) / SD_ERR_IO with err filled. */
int csv_next(csv_reader *r, sd_err *err);
int csv_nfields(const csv_reader *r);
/* Field k (0-based) of the current record, NUL-terminated, valid until the next csv_next. */
const char *csv_field(const csv_reader *r, int k);
size_t csv_field_len(const csv_reader *r, int k);
int64_t csv_line(const csv_reader *r);      /* line on which the current record starts (1-based) */
int64_t csv_records(const csv_reader *r);   /* records returned so far */
const char *csv_name(const csv_reader *r);  /* file name used in messages */
int csv_had_bom(const csv_reader *r);       /* 1 when a UTF-8 byte-order mark was skipped */
int64_t csv_bytes_read(const csv_reader *r); /* input bytes consumed so far (for progress) */

/* Names of the columns, used in messages (borrowed; may be NULL). */
void csv_set_names(csv_reader *r, const char *const *names, int n);
/* Fills err with "<file>:<line>: field <k+1> (<name>): <what>" and returns code. */
int csv_fail_field(const csv_reader *r, int k, sd_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Checks that the record has exactly n fields; else SD_ERR_DATA naming the first missing or
 * extra field. */
int csv_expect_fields(const csv_reader *r, int n, sd_err *err);

/* Strict parsers: the whole string (surrounding spaces allowed) must be the number. Return 0 on
 * success, -1 on garbage, trailing junk, overflow, NaN or infinity. */
int csv_parse_i64(const char *s, int64_t *out);
int csv_parse_f64(const char *s, double *out);
/* A time: unix seconds, or "YYYY-MM-DD" optionally followed by "[T ]HH:MM[:SS]" (UTC). */
int csv_parse_time(const char *s, int64_t *out);

/* The same, reading field k of the current record, with a message naming file, line and field. */
int csv_get_i64(const csv_reader *r, int k, int64_t *out, sd_err *err);
int csv_get_f64(const csv_reader *r, int k, double *out, sd_err *err);
int csv_get_time(const csv_reader *r, int k, int64_t *out, sd_err *err);

#endif
