/* test_svg.c - the report's SVG plotting module: nice ticks, data-to-pixel maps, coordinates of
 * drawn points and bars against values computed by hand from the documented layout, XML escaping,
 * and well-formedness (a small tag-balance check here, plus `xmllint --noout` when installed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/base.h"
#include "serendip/svg.h"

/* Minimal XML well-formedness: every <tag> is closed in order, attributes are quoted, no stray
 * '<' or '&' in text. Returns 1 when well-formed. */
static int xml_well_formed(const char *s) {
    char stack[64][32];
    int depth = 0;
    while (*s) {
        if (*s == '&') {
            const char *e = strchr(s, ';');
            if (!e || e - s > 6) return 0;
            s = e + 1;
            continue;
        }
        if (*s != '<') {
            if (*s == '>') return 0;
            s++;
            continue;
        }
        s++;
        int closing = *s == '/';
        if (closing) s++;
        char name[32];
        int n = 0;
        while (*s && *s != ' ' && *s != '>' && *s != '/' && *s != '\n' && n < 31) name[n++] = *s++;
        name[n] = 0;
        if (!n) return 0;
        int self = 0;
        while (*s && *s != '>') {
            if (*s == '"') {
                const char *e = strchr(s + 1, '"');
                if (!e) return 0;
                if (memchr(s + 1, '<', (size_t)(e - s - 1))) return 0;
                s = e + 1;
                continue;
            }
            if (*s == '<') return 0;
            self = *s == '/';
            s++;
        }
        if (!*s) return 0;
        s++;
        if (closing) {
            if (!depth || strcmp(stack[depth - 1], name)) return 0;
            depth--;
        } else if (!self) {
            if (depth == 64) return 0;
            strcpy(stack[depth++], name);
        }
    }
    return depth == 0;
}

/* Runs xmllint --noout on text when xmllint is installed: 1 ok, 0 bad, -1 not installed. */
static int xmllint_ok(const char *text) {
    if (system("command -v xmllint >/dev/null 2>&1") != 0) return -1;
    char path[] = "/tmp/sdsvgXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "xmllint --noout %s", path);
    int rc = system(cmd);
    unlink(path);
    return rc == 0;
}

static void test_nice_ticks(void **state) {
    (void)state;
    double t[32], a, z;
    /* [0, 0.87] in <= 6 ticks: raw step 0.87/5 = 0.174 -> nice 0.2; 0, 0.2, ..., 1.0 */
    int n = svg_nice_ticks(0, 0.87, 6, t, 32, &a, &z);
    assert_int_equal(n, 6);
    for (int i = 0; i < 6; i++) assert_true(fabs(t[i] - 0.2 * i) < 1e-12);
    assert_true(a == 0 && fabs(z - 1.0) < 1e-12);
    /* [13, 87] in <= 8: raw 74/7 = 10.6 -> 20; axis 0..100 */
    n = svg_nice_ticks(13, 87, 8, t, 32, &a, &z);
    assert_int_equal(n, 6);
    assert_true(t[0] == 0 && t[5] == 100 && a == 0 && z == 100);
    /* a single value still gets a non-empty range around it */
    n = svg_nice_ticks(0.5, 0.5, 6, t, 32, &a, &z);
    assert_true(n >= 2 && a <= 0.5 && z >= 0.5 && z > a);
    /* negative range: 0 is printed as 0, not -0 */
    n = svg_nice_ticks(-1, 1, 5, t, 32, &a, &z);
    int has_zero = 0;
    for (int i = 0; i < n; i++) has_zero |= t[i] == 0 && !signbit(t[i]);
    assert_true(has_zero);
}

static void test_map(void **state) {
    (void)state;
    svg_scale lin = {0, 10, 100, 600, 0}, lg = {1, 32, 100, 600, 1}, inv = {0, 1, 356, 30, 0};
    assert_true(fabs(svg_map(&lin, 2.5) - 225) < 1e-9);
    assert_true(fabs(svg_map(&lg, 4) - 300) < 1e-9);   /* log2 4 = 2 of 5 -> 100 + 0.4 * 500 */
    assert_true(fabs(svg_map(&inv, 0.25) - 274.5) < 1e-9); /* y grows upwards */
}

static void test_line_plot_coordinates(void **state) {
    (void)state;
    /* 600 x 400 with a legend: plot area x 64 .. 600-16-200 = 384, y 30 .. 400-44 = 356.
     * x in [0, 10], y in [0, 1]: (5, 0.25) -> (64 + 0.5*320, 356 - 0.25*326) = (224, 274.5). */
    svg_frame f = svg_frame_make(600, 400, "novelty <vs> n & more", "n", "rate");
    f.xmin = 0, f.xmax = 10, f.ymin = 0, f.ymax = 1;
    double x[2] = {5, 10}, y[2] = {0.25, 1.0}, lo[2] = {0.2, 0.9}, hi[2] = {0.3, 1.0};
    svg_series s = {"best-of-n", x, y, lo, hi, 2};
    svg_hline h = {"popular \"baseline\"", 0.5, 0.4, 0.6};
    char *svg = svg_line_plot(&f, &s, 1, &h, 1);
    assert_non_null(strstr(svg, "cx=\"224.00\" cy=\"274.50\""));
    assert_non_null(strstr(svg, "cx=\"384.00\" cy=\"30.00\""));
    /* the reference line at y = 0.5 -> 356 - 163 = 193, across the plot */
    assert_non_null(strstr(svg, "class=\"hline\" x1=\"64.00\" y1=\"193.00\" x2=\"384.00\" y2=\"193.00\""));
    /* its band from 0.6 (y 160.4) to 0.4 (y 225.6) */
    assert_non_null(strstr(svg, "class=\"hband\" x=\"64.00\" y=\"160.40\" width=\"320.00\" height=\"65.20\""));
    /* escaped text, never raw */
    assert_non_null(strstr(svg, "novelty &lt;vs&gt; n &amp; more"));
    assert_non_null(strstr(svg, "popular &quot;baseline&quot;"));
    assert_null(strstr(svg, "<vs>"));
    assert_true(xml_well_formed(svg));
    assert_int_not_equal(xmllint_ok(svg), 0);
    free(svg);
}

static void test_bar_and_scatter_coordinates(void **state) {
    (void)state;
    /* bars: 400 x 300, no legend: x 64 .. 384, y 30 .. 256; x range [0.5, 2.5], y [0, 4].
     * bar 1 (value 3): centre 64 + 0.25*320 = 144, width 0.8 * 160 = 128 -> x 80; top 256 - 0.75*226 = 86.5 */
    svg_frame f = svg_frame_make(400, 300, "sizes", "cluster rank", "items");
    f.ymin = 0, f.ymax = 4;
    double v[2] = {3, 1};
    const char *lab[2] = {"a&b", "c"};
    char *svg = svg_bar_chart(&f, v, lab, 2);
    assert_non_null(strstr(svg, "x=\"80.00\" y=\"86.50\" width=\"128.00\" height=\"169.50\""));
    assert_non_null(strstr(svg, "x=\"240.00\" y=\"199.50\" width=\"128.00\" height=\"56.50\""));
    assert_true(xml_well_formed(svg));
    assert_int_not_equal(xmllint_ok(svg), 0);
    free(svg);
    /* scatter: 600 x 400 with legend, x [0, 1], y [0, 2]: (0.5, 1) -> (224, 193) */
    svg_frame g = svg_frame_make(600, 400, "novelty vs relevance", "novelty", "relevance");
    g.xmin = 0, g.xmax = 1, g.ymin = 0, g.ymax = 2;
    svg_point p[2] = {{"best-of-16", 0.5, 1, 0.4, 0.6, 0.5, 1.5}, {"random", 1, 0, NAN, NAN, NAN, NAN}};
    svg = svg_scatter(&g, p, 2);
    assert_non_null(strstr(svg, "cx=\"224.00\" cy=\"193.00\""));
    assert_non_null(strstr(svg, "cx=\"384.00\" cy=\"356.00\""));
    /* x error bar from 0.4 to 0.6 at y 193 */
    assert_non_null(strstr(svg, "x1=\"192.00\" y1=\"193.00\" x2=\"256.00\" y2=\"193.00\""));
    /* numbered next to the point, keyed in the legend */
    assert_non_null(strstr(svg, "class=\"lab\" x=\"229.00\" y=\"188.00\""));
    assert_non_null(strstr(svg, "1  best-of-16"));
    assert_non_null(strstr(svg, "2  random"));
    assert_true(xml_well_formed(svg));
    assert_int_not_equal(xmllint_ok(svg), 0);
    free(svg);
}

static void test_well_formed_checker_rejects_bad_xml(void **state) {
    (void)state; /* the checker itself must be able to fail */
    assert_false(xml_well_formed("<svg><g></svg></g>"));
    assert_false(xml_well_formed("<svg><text>a < b</text></svg>"));
    assert_false(xml_well_formed("<svg><text>a & b</text></svg>"));
    assert_true(xml_well_formed("<svg><g a=\"1\"/><text>a &amp; b</text></svg>"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nice_ticks),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_line_plot_coordinates),
        cmocka_unit_test(test_bar_and_scatter_coordinates),
        cmocka_unit_test(test_well_formed_checker_rejects_bad_xml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
