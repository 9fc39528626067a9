/* jsonw.c - the JSON appender (jsonw.h). Hand-written: see the header. */
#include "serendip/jsonw.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "serendip/base.h"

void jw_init(jw_buf *b, size_t cap) {
    b->p = sd_malloc(cap);
    b->len = 0, b->cap = cap;
    b->p[0] = 0;
}

static void jw_reserve(jw_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    while (b->len + extra + 1 > b->cap) b->cap *= 2;
    b->p = sd_realloc(b->p, b->cap);
}

void jw_raw(jw_buf *b, const char *s, size_t n) {
    jw_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void jw_str(jw_buf *b, const char *s) { jw_raw(b, s, strlen(s)); }

void jw_fmt(jw_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= b->cap - b->len) {
        jw_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* Length of the well-formed UTF-8 sequence at p (1..4; Unicode's table 3-7: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when p does not start one. */
static int utf8_len(const unsigned char *p) {
    unsigned c = p[0];
#define CONT(x) ((x) >= 0x80 && (x) <= 0xBF)
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return CONT(p[1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return p[1] >= lo && p[1] <= hi && CONT(p[2]) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return p[1] >= lo && p[1] <= hi && CONT(p[2]) && CONT(p[3]) ? 4 : 0;
    }
    return 0;
#undef CONT
}

/* A JSON string literal of s (quotes included). Well-formed UTF-8 passes through; each byte of an
 * ill-formed sequence becomes U+FFFD, so the output always parses. */
void jw_quoted(jw_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    jw_reserve(b, strlen(s) * 6 + 2);
    char *o = b->p + b->len;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') *o++ = '\\', *o++ = (char)c;
        else if (c == '\n') *o++ = '\\', *o++ = 'n';
        else if (c == '\t') *o++ = '\\', *o++ = 't';
        else if (c == '\r') *o++ = '\\', *o++ = 'r';
        else if (c < 0x20 || c == 0x7f) *o++ = '\\', *o++ = 'u', *o++ = '0', *o++ = '0', *o++ = hex[c >> 4], *o++ = hex[c & 15];
        else if (c < 0x80) *o++ = (char)c;
        else {
            int n = utf8_len(p);
            if (n == 0) *o++ = (char)0xEF, *o++ = (char)0xBF, *o++ = (char)0xBD; /* U+FFFD */
            for (int i = 0; i < n; i++) *o++ = (char)p[i];
            if (n > 1) p += n - 1;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    b->p[b->len] = 0;
}

void jw_i64(jw_buf *b, int64_t x) {
    char d[24], *e = d + sizeof d, *o = e;
    uint64_t v = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
    do *--o = (char)('0' + v % 10), v /= 10;
    while (v);
    if (x < 0) *--o = '-';
    jw_raw(b, o, (size_t)(e - o));
}

/* x with at most 4 decimals, trailing zeros trimmed ("2.9075", "-1.5", "7"); null when not finite.
 * Hand-written because printf's %g costs more than the whole ranking of a cluster. */
void jw_num(jw_buf *b, double x) {
    if (!isfinite(x)) {
        jw_str(b, "null");
        return;
    }
    if (fabs(x) >= 1e14) {
        jw_fmt(b, "%.6g", x);
        return;
    }
    char tmp[40], *o = tmp;
    uint64_t v = (uint64_t)(fabs(x) * 10000 + 0.5), ip = v / 10000, fp = v % 10000;
    if (x < 0 && v) *o++ = '-';
    char d[24];
    int nd = 0;
    do d[nd++] = (char)('0' + ip % 10), ip /= 10;
    while (ip);
    while (nd) *o++ = d[--nd];
    if (fp) {
        *o++ = '.';
        char f[4] = {(char)('0' + fp / 1000), (char)('0' + fp / 100 % 10), (char)('0' + fp / 10 % 10), (char)('0' + fp % 10)};
        int nf = 4;
        while (f[nf - 1] == '0') nf--;
        for (int i = 0; i < nf; i++) *o++ = f[i];
    }
    jw_raw(b, tmp, (size_t)(o - tmp));
}
