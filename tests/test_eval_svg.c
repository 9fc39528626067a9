/* test_eval_svg.c - the grouped dot-and-interval plot of the report's "by context support"
 * section: positions computed by hand from the layout in svg.h, labels escaped, undefined values
 * skipped.
 *
 * Frame 400 x 200 with y fixed to [0, 1]: plot area x 64..184 (400 - 16 margin - 200 legend),
 * y 30 (top) .. 156 (bottom), so y = 156 - 126 v. Two groups of width 60; series i of 2 in group
 * g sits at x = 64 + 60 g + 60 (0.1 + 0.8 (i + 0.5) / 2): 82, 106 in group 0; 142, 166 in group 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/svg.h"

static void test_group_plot_positions(void **state) {
    (void)state;
    double ya[2] = {0.5, 0.25}, loa[2] = {0.4, 0.0}, hia[2] = {0.6, 0.5};
    double yb[2] = {1.0, NAN}, lob[2] = {NAN, NAN}, hib[2] = {NAN, NAN};
    svg_series s[2] = {{"arm <a>", NULL, ya, loa, hia, 2}, {"arm b", NULL, yb, lob, hib, 2}};
    const char *groups[2] = {"support 0", "support 1-9 & more"};
    svg_frame f = svg_frame_make(400, 200, "t", "x", "y");
    f.ymin = 0, f.ymax = 1;
    char *svg = svg_group_plot(&f, groups, 2, s, 2);
    assert_non_null(svg);
    /* series a, group 0: x 82, y 156 - 63 = 93; its interval 0.4..0.6 -> y 105.6..80.4 */
    assert_non_null(strstr(svg, "cx=\"82.00\" cy=\"93.00\""));
    assert_non_null(strstr(svg, "x1=\"82.00\" y1=\"105.60\" x2=\"82.00\" y2=\"80.40\""));
    /* series a, group 1: x 142, y 156 - 31.5 = 124.5 */
    assert_non_null(strstr(svg, "cx=\"142.00\" cy=\"124.50\""));
    /* series b, group 0: x 106, y 30 (the top); no interval bar; group 1 is NaN: no dot */
    assert_non_null(strstr(svg, "cx=\"106.00\" cy=\"30.00\""));
    assert_null(strstr(svg, "x1=\"106.00\""));
    assert_null(strstr(svg, "cx=\"166.00\""));
    int dots = 0;
    for (const char *p = svg; (p = strstr(p, "<circle")); p++) dots++;
    assert_int_equal(dots, 3);
    /* labels escaped, groups centred at 94 and 154 */
    assert_non_null(strstr(svg, "arm &lt;a&gt;"));
    assert_non_null(strstr(svg, "x=\"94.00\" y=\"172.00\" text-anchor=\"middle\">support 0<"));
    assert_non_null(strstr(svg, ">support 1-9 &amp; more<"));
    assert_null(strstr(svg, "nan"));
    free(svg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_plot_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
