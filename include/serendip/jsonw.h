/* jsonw.h - a JSON appender: one growing buffer that JSON text is written into.
 *
 * Hand-written rather than cJSON for answers on the serving hot path: cJSON allocates a node per
 * value and prints afterwards; the appender writes each value once into one buffer. Readers
 * still parse JSON with cJSON. */
#ifndef SERENDIP_JSONW_H
#define SERENDIP_JSONW_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *p;          /* NUL-terminated text (heap; the owner frees it) */
    size_t len, cap;  /* bytes written (without the NUL), bytes allocated */
} jw_buf;

/* Starts an empty buffer of cap bytes (grows on demand; aborts only on allocation failure). */
void jw_init(jw_buf *b, size_t cap);
/* Appends n raw bytes / the string s / printf output. */
void jw_raw(jw_buf *b, const char *s, size_t n);
void jw_str(jw_buf *b, const char *s);
void jw_fmt(jw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quotes included, control characters escaped; well-formed
 * UTF-8 passes through, each byte of an ill-formed sequence becomes U+FFFD: the output always
 * parses, whatever the titles hold). */
void jw_quoted(jw_buf *b, const char *s);
/* Appends a decimal integer. */
void jw_i64(jw_buf *b, int64_t x);
/* Appends x with at most 4 decimals, trailing zeros trimmed ("2.9075", "-1.5", "7"); `null` when
 * x is not finite. */
void jw_num(jw_buf *b, double x);

#endif
