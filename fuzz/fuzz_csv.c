/* fuzz_csv.c - libFuzzer target for the CSV/DSV reader and the strict number parsers.
 * Build and run: bash scripts/fuzz 60   (or `make fuzz FUZZ_SECONDS=60`).
 * The first input byte picks the options (separator, quoting, encoding, a small record limit),
 * the rest is the file. Besides crashes and sanitizer reports, it checks invariants: fields hold
 * no NUL byte, Latin-1/auto output is valid UTF-8, line numbers never go back, the reader stops
 * for good after an error. */
// fuzz-sources: src/base/base.c src/data/csv.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/csv.h"

static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (!len || i + len > n) return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *const seps[8] = {",", "\t", "|", ";", "::", ":", " ", ","};
    uint8_t o = data[0];
    csv_opts opts = {.sep = seps[o & 7], .no_quotes = (o >> 3) & 1, .enc = (csv_encoding)(((o >> 4) & 3) % 3),
                     .max_record = (o & 0x40) ? 64 : 0};
    csv_reader *r = csv_open_mem(data + 1, size - 1, "fuzz.csv", &opts);
    static const char *const names[3] = {"a", "b", "c"};
    csv_set_names(r, names, 3);
    sd_err err;
    int64_t last_line = 0;
    int rc;
    while ((rc = csv_next(r, &err)) == SD_OK) {
        int n = csv_nfields(r);
        if (n < 1 || csv_line(r) < last_line) abort();
        last_line = csv_line(r);
        for (int k = 0; k < n; k++) {
            const char *f = csv_field(r, k);
            size_t len = csv_field_len(r, k);
            if (strlen(f) != len) abort();
            if (opts.enc != CSV_UTF8 && !valid_utf8((const unsigned char *)f, len)) abort();
            int64_t i;
            double x;
            csv_parse_i64(f, &i);
            csv_parse_time(f, &i);
            if (csv_parse_f64(f, &x) == 0 && !(x == x && x - x == 0)) abort(); /* finite */
        }
        if (csv_expect_fields(r, 3, &err) != SD_OK && !strstr(err.msg, "fuzz.csv:")) abort();
    }
    if (rc != CSV_EOF) {
        if (!strstr(err.msg, "fuzz.csv")) abort();
        if (csv_next(r, &err) == SD_OK) abort(); /* stays failed */
    }
    csv_close(r);
    return 0;
}
