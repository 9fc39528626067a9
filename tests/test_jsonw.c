/* test_jsonw.c - the JSON appender (jsonw.h): escapes, UTF-8 (well-formed passes, ill-formed
 * bytes become U+FFFD so the output always parses), numbers (4 decimals, trimmed, null when not
 * finite), integers, growth. Expected strings are written by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/base.h"
#include "serendip/jsonw.h"

static char *quoted(const char *s) {
    jw_buf b;
    jw_init(&b, 4);
    jw_quoted(&b, s);
    return b.p;
}

static void expect_quoted(const char *in, const char *want) {
    char *got = quoted(in);
    assert_string_equal(got, want);
    cJSON *j = cJSON_Parse(got); /* and it parses */
    assert_non_null(j);
    cJSON_Delete(j);
    free(got);
}

static void test_quoted(void **state) {
    (void)state;
    expect_quoted("plain", "\"plain\"");
    expect_quoted("Le \"Film\" \\ Noir\t\n\r\x01\x7f", "\"Le \\\"Film\\\" \\\\ Noir\\t\\n\\r\\u0001\\u007f\"");
    expect_quoted("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xac", "\"\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xac\""); /* été € 🎬 */
    /* ill-formed: a lone continuation byte, a truncated 2-byte sequence at the end, an overlong
     * '/', a surrogate (ED A0 80), a code point above U+10FFFF (F4 90 80 80), a Latin-1 byte */
    expect_quoted("a\x80z", "\"a\xef\xbf\xbdz\"");
    expect_quoted("z\xc3", "\"z\xef\xbf\xbd\"");
    expect_quoted("\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\"");
    expect_quoted("\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    expect_quoted("\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    expect_quoted("caf\xe9!", "\"caf\xef\xbf\xbd!\"");
    /* the largest code point and the last before the surrogates pass */
    expect_quoted("\xf4\x8f\xbf\xbf\xed\x9f\xbf", "\"\xf4\x8f\xbf\xbf\xed\x9f\xbf\"");
}

static void test_numbers(void **state) {
    (void)state;
    jw_buf b;
    jw_init(&b, 1);
    double xs[] = {2.9075, -1.5, 7, 0, -0.00001, 0.12345, 1e15, NAN, INFINITY};
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        if (i) jw_str(&b, " ");
        jw_num(&b, xs[i]);
    }
    assert_string_equal(b.p, "2.9075 -1.5 7 0 0 0.1235 1e+15 null null");
    b.len = 0;
    jw_i64(&b, INT64_MIN);
    jw_str(&b, " ");
    jw_i64(&b, 42);
    jw_fmt(&b, " %s-%d", "x", 3);
    assert_string_equal(b.p, "-9223372036854775808 42 x-3");
    assert_int_equal(b.len, strlen(b.p));
    free(b.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
