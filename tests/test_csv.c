/* test_csv.c - the streaming CSV/DSV reader: RFC-4180 quoting, separators, line ends, BOM,
 * Latin-1, record limit, error messages naming file/line/field, strict number and time parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/csv.h"

/* Reads the next record of r and checks it has exactly the n given fields. */
static void expect_row(csv_reader *r, int64_t line, int n, ...) {
    sd_err err = {0};
    int rc = csv_next(r, &err);
    if (rc != SD_OK) fail_msg("csv_next: %d %s", rc, err.msg);
    assert_int_equal(csv_line(r), line);
    assert_int_equal(csv_nfields(r), n);
    va_list ap;
    va_start(ap, n);
    for (int k = 0; k < n; k++) {
        const char *want = va_arg(ap, const char *);
        assert_string_equal(csv_field(r, k), want);
        assert_int_equal(csv_field_len(r, k), strlen(want));
    }
    va_end(ap);
}

static void expect_eof(csv_reader *r) {
    sd_err err = {0};
    assert_int_equal(csv_next(r, &err), CSV_EOF);
}

/* Expects csv_next to fail with SD_ERR_DATA and a message containing each of the strings. */
static void expect_error(csv_reader *r, const char *a, const char *b, const char *c) {
    sd_err err = {0};
    assert_int_equal(csv_next(r, &err), SD_ERR_DATA);
    const char *w[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (w[i] && !strstr(err.msg, w[i])) fail_msg("message '%s' lacks '%s'", err.msg, w[i]);
}

static void test_rfc4180_quoting(void **state) {
    (void)state;
    const char *s = "id,title,genres\r\n"
                    "1,\"Toy Story, The (1995)\",Animation|Comedy\r\n"
                    "2,\"Say \"\"Hi\"\"\",\r\n"
                    "\n"
                    "3,\"two\nlines\",\"\"\n"
                    "4,plain\"quote,x";
    csv_reader *r = csv_open_mem(s, strlen(s), "m.csv", NULL);
    expect_row(r, 1, 3, "id", "title", "genres");
    expect_row(r, 2, 3, "1", "Toy Story, The (1995)", "Animation|Comedy");
    expect_row(r, 3, 3, "2", "Say \"Hi\"", "");
    expect_row(r, 5, 3, "3", "two\nlines", ""); /* the blank line 4 is skipped, line numbers still count it */
    expect_row(r, 7, 3, "4", "plain\"quote", "x"); /* a quote inside an unquoted field is kept */
    expect_eof(r);
    assert_int_equal(csv_records(r), 5);
    csv_close(r);
}

static void test_separators_and_line_ends(void **state) {
    (void)state;
    csv_opts dc = {.sep = "::", .no_quotes = 1};
    const char *s = "1::Star Wars: Episode IV (1977)::Action|Sci-Fi\n2::\"Quoted\" Title::\n";
    csv_reader *r = csv_open_mem(s, strlen(s), "movies.dat", &dc);
    expect_row(r, 1, 3, "1", "Star Wars: Episode IV (1977)", "Action|Sci-Fi");
    expect_row(r, 2, 3, "2", "\"Quoted\" Title", "");
    expect_eof(r);
    csv_close(r);

    csv_opts tab = {.sep = "\t"};
    const char *t = "196\t242\t3\t881250949\r196\t302\t3\t891717742";
    r = csv_open_mem(t, strlen(t), "u.data", &tab);
    expect_row(r, 1, 4, "196", "242", "3", "881250949");
    expect_row(r, 2, 4, "196", "302", "3", "891717742");
    expect_eof(r);
    csv_close(r);
}

static void test_bom_and_encodings(void **state) {
    (void)state;
    const char *s = "\xef\xbb\xbf" "a,b\r\n1,2\r\n";
    csv_reader *r = csv_open_mem(s, strlen(s), "bom.csv", NULL);
    expect_row(r, 1, 2, "a", "b"); /* not "\xef\xbb\xbf" "a" */
    expect_row(r, 2, 2, "1", "2");
    expect_eof(r);
    assert_int_equal(csv_had_bom(r), 1);
    csv_close(r);

    const char *u16 = "\xff\xfe" "a\0,\0b\0";
    r = csv_open_mem(u16, 8, "u16.csv", NULL);
    expect_error(r, "u16.csv:1", "UTF-16", NULL);
    csv_close(r);

    csv_opts l1 = {.sep = "|", .no_quotes = 1, .enc = CSV_LATIN1};
    const char *m = "1|Mis\xe9rables, Les (1995)|\xff\n";
    r = csv_open_mem(m, strlen(m), "u.item", &l1);
    expect_row(r, 1, 3, "1", "Mis\xc3\xa9rables, Les (1995)", "\xc3\xbf");
    csv_close(r);

    /* auto: valid UTF-8 is kept as is, anything else is read as Latin-1 */
    csv_opts au = {.sep = "|", .no_quotes = 1, .enc = CSV_AUTO};
    const char *x = "Mis\xc3\xa9rables|Mis\xe9rables|\xc3\x28\n";
    r = csv_open_mem(x, strlen(x), "auto", &au);
    expect_row(r, 1, 3, "Mis\xc3\xa9rables", "Mis\xc3\xa9rables", "\xc3\x83(");
    csv_close(r);
}

static void test_unterminated_quote_names_line_and_field(void **state) {
    (void)state;
    const char *s = "userId,movieId,tag\n1,2,ok\n3,4,\"never closed\n5,6,x\n";
    csv_reader *r = csv_open_mem(s, strlen(s), "tags.csv", NULL);
    const char *names[] = {"userId", "movieId", "tag"};
    csv_set_names(r, names, 3);
    expect_row(r, 1, 3, "userId", "movieId", "tag");
    expect_row(r, 2, 3, "1", "2", "ok");
    expect_error(r, "tags.csv:3:", "field 3 (tag)", "unterminated");
    /* the reader stays failed */
    sd_err err = {0};
    assert_int_not_equal(csv_next(r, &err), SD_OK);
    csv_close(r);
}

static void test_junk_after_quote_and_nul(void **state) {
    (void)state;
    const char *s = "a,\"b\"c,d\n";
    csv_reader *r = csv_open_mem(s, strlen(s), "j.csv", NULL);
    expect_error(r, "j.csv:1:", "field 2", "after a closing quote");
    csv_close(r);
    const char z[] = "a,b\n1,x\0y\n";
    r = csv_open_mem(z, sizeof z - 1, "z.csv", NULL);
    expect_row(r, 1, 2, "a", "b");
    expect_error(r, "z.csv:2:", "field 2", "NUL byte");
    csv_close(r);
}

static void test_megabyte_line_is_an_error(void **state) {
    (void)state;
    /* a line of 1 MiB + 10 bytes on line 2, read from a file through the streaming buffer */
    char path[] = "/tmp/sd_test_csvXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("a,b\n1,", f);
    for (int i = 0; i < (1 << 20) + 10; i++) fputc('x', f);
    fputs("\n2,3\n", f);
    fclose(f);
    csv_reader *r;
    sd_err err = {0};
    assert_int_equal(csv_open(&r, path, NULL, &err), SD_OK);
    expect_row(r, 1, 2, "a", "b");
    expect_error(r, path, ":2:", "field 2");
    csv_close(r);
    /* the same with a smaller limit, in memory: a quoted field that never ends before the limit */
    csv_opts small = {.max_record = 64};
    char big[200];
    memset(big, 'y', sizeof big);
    big[0] = '"';
    r = csv_open_mem(big, sizeof big, "q.csv", &small);
    expect_error(r, "q.csv:1:", "field 1", "64 bytes or more");
    csv_close(r);
    /* a record just under the limit is fine */
    char ok[70];
    memset(ok, 'z', 63);
    ok[63] = '\n';
    r = csv_open_mem(ok, 64, "ok.csv", &small);
    sd_err e2 = {0};
    assert_int_equal(csv_next(r, &e2), SD_OK);
    assert_int_equal(csv_field_len(r, 0), 63);
    csv_close(r);
    unlink(path);
}

/* The file path (64 KiB windows) must give the same records as the in-memory path, including
 * quotes, "" escapes, two-byte separators and CRLF split across window boundaries. */
static void test_streaming_matches_memory(void **state) {
    (void)state;
    const char *seps[] = {",", "::"};
    for (int si = 0; si < 2; si++) {
        size_t cap = 1 << 22, n = 0;
        char *buf = malloc(cap);
        sd_rng rng;
        sd_rng_seed(&rng, 7 + si);
        for (int row = 0; row < 30000; row++) {
            for (int k = 0; k < 4; k++) {
                if (k) n += (size_t)sprintf(buf + n, "%s", seps[si]);
                uint32_t kind = sd_rng_below(&rng, 4);
                if (kind == 0 && si == 0) n += (size_t)sprintf(buf + n, "\"q,%u\"\"x\r\ny\"", sd_rng_below(&rng, 1000));
                else n += (size_t)sprintf(buf + n, "v%u:%u", sd_rng_below(&rng, 100000), kind);
            }
            n += (size_t)sprintf(buf + n, row % 3 ? "\r\n" : "\n");
        }
        assert_true(n < cap);
        char path[] = "/tmp/sd_test_csvXXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, buf, n), (ssize_t)n);
        close(fd);
        csv_opts o = {.sep = seps[si]};
        csv_reader *m = csv_open_mem(buf, n, "mem", &o), *f;
        sd_err err = {0};
        assert_int_equal(csv_open(&f, path, &o, &err), SD_OK);
        int rows = 0;
        for (;;) {
            int a = csv_next(m, &err), b = csv_next(f, &err);
            assert_int_equal(a, b);
            if (a == CSV_EOF) break;
            assert_int_equal(a, SD_OK);
            assert_int_equal(csv_nfields(m), 4);
            assert_int_equal(csv_nfields(f), 4);
            assert_int_equal(csv_line(m), csv_line(f));
            for (int k = 0; k < 4; k++) assert_string_equal(csv_field(m, k), csv_field(f, k));
            rows++;
        }
        assert_int_equal(rows, 30000);
        csv_close(m);
        csv_close(f);
        unlink(path);
        free(buf);
    }
}

static void test_expect_fields_messages(void **state) {
    (void)state;
    const char *s = "1,2,3\n1,2,3,4,5\n";
    csv_reader *r = csv_open_mem(s, strlen(s), "r.csv", NULL);
    const char *names[] = {"userId", "movieId", "rating", "timestamp"};
    csv_set_names(r, names, 4);
    sd_err err = {0};
    assert_int_equal(csv_next(r, &err), SD_OK);
    assert_int_equal(csv_expect_fields(r, 4, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "r.csv:1: field 4 (timestamp): missing"));
    assert_int_equal(csv_next(r, &err), SD_OK);
    assert_int_equal(csv_expect_fields(r, 4, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "r.csv:2: field 5: unexpected extra field"));
    int64_t v;
    assert_int_equal(csv_get_i64(r, 3, &v, &err), SD_OK);
    assert_int_equal(v, 4);
    csv_close(r);
}

static void test_number_parsers(void **state) {
    (void)state;
    double x;
    int64_t i;
    const char *good_f[] = {"4.5", "0", "-1e3", " 3 ", "5.", ".5", "+2"};
    const double want_f[] = {4.5, 0, -1000, 3, 5, 0.5, 2};
    for (size_t k = 0; k < sizeof good_f / sizeof *good_f; k++) {
        assert_int_equal(csv_parse_f64(good_f[k], &x), 0);
        assert_true(x == want_f[k]);
    }
    const char *bad_f[] = {"", " ", "nan", "NaN", "inf", "-Infinity", "1e999", "4,5", "4.5x", "0x10", "abc", "1 2", "e5", "."};
    for (size_t k = 0; k < sizeof bad_f / sizeof *bad_f; k++)
        if (csv_parse_f64(bad_f[k], &x) == 0) fail_msg("'%s' accepted as a number", bad_f[k]);
    assert_int_equal(csv_parse_i64("881250949", &i), 0);
    assert_int_equal(i, 881250949);
    assert_int_equal(csv_parse_i64("-5", &i), 0);
    assert_int_equal(i, -5);
    const char *bad_i[] = {"", "1.5", "12a", "99999999999999999999", "0x1f", "nan"};
    for (size_t k = 0; k < sizeof bad_i / sizeof *bad_i; k++)
        if (csv_parse_i64(bad_i[k], &i) == 0) fail_msg("'%s' accepted as an integer", bad_i[k]);
    /* times: reference values from `date -u -d ... +%s` */
    assert_int_equal(csv_parse_time("2016-02-29", &i), 0);
    assert_int_equal(i, 1456704000);
    assert_int_equal(csv_parse_time("1970-01-01T00:00:01Z", &i), 0);
    assert_int_equal(i, 1);
    assert_int_equal(csv_parse_time("2000-03-01 12:30", &i), 0);
    assert_int_equal(i, 951913800);
    assert_int_equal(csv_parse_time("1260759144", &i), 0);
    assert_int_equal(i, 1260759144);
    const char *bad_t[] = {"2015-02-29", "2016-13-01", "2016-1-1", "2016-01-01x", "yesterday", "2016-01-01 25:00"};
    for (size_t k = 0; k < sizeof bad_t / sizeof *bad_t; k++)
        if (csv_parse_time(bad_t[k], &i) == 0) fail_msg("'%s' accepted as a time", bad_t[k]);
}

/* The fast paths of csv_parse_i64 / csv_parse_f64 must agree bit for bit with strtoll / strtod
 * (the reference) on the numbers they take, and the long ones must still go through. */
static void test_number_fast_paths_match_libc(void **state) {
    (void)state;
    sd_rng rng;
    sd_rng_seed(&rng, 99);
    char buf[64];
    for (int it = 0; it < 200000; it++) {
        int ndig = 1 + (int)sd_rng_below(&rng, 19), nfrac = (int)sd_rng_below(&rng, 8), n = 0;
        if (sd_rng_below(&rng, 4) == 0) buf[n++] = '-';
        for (int k = 0; k < ndig; k++) buf[n++] = (char)('0' + sd_rng_below(&rng, 10));
        buf[n] = 0;
        int64_t i;
        if (ndig <= 18) { /* fits in int64 whatever the digits */
            assert_int_equal(csv_parse_i64(buf, &i), 0);
            assert_int_equal(i, strtoll(buf, NULL, 10));
        }
        if (nfrac) {
            buf[n++] = '.';
            for (int k = 0; k < nfrac; k++) buf[n++] = (char)('0' + sd_rng_below(&rng, 10));
            buf[n] = 0;
            assert_int_equal(csv_parse_i64(buf, &i), -1);
        }
        double x, want = strtod(buf, NULL);
        assert_int_equal(csv_parse_f64(buf, &x), 0);
        if (memcmp(&x, &want, sizeof x)) fail_msg("'%s': %.17g, strtod says %.17g", buf, x, want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4180_quoting),
        cmocka_unit_test(test_separators_and_line_ends),
        cmocka_unit_test(test_bom_and_encodings),
        cmocka_unit_test(test_unterminated_quote_names_line_and_field),
        cmocka_unit_test(test_junk_after_quote_and_nul),
        cmocka_unit_test(test_megabyte_line_is_an_error),
        cmocka_unit_test(test_streaming_matches_memory),
        cmocka_unit_test(test_expect_fields_messages),
        cmocka_unit_test(test_number_parsers),
        cmocka_unit_test(test_number_fast_paths_match_libc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
