/* svg.h - a small SVG plotting module for the evaluation report: line plots with error bands and
 * horizontal reference lines, labelled scatter plots with error bars, bar charts, grouped
 * dot-and-interval plots; axes with "nice"
 * ticks; a legend. Output is one self-contained <svg> element (a heap string) to inline in HTML.
 *
 * Layout: the plot area is the frame minus fixed margins (SVG_MARGIN_*) and, when there is a
 * legend, SVG_LEGEND_W on the right. Data map linearly (or by log2 for x when xlog2) from the axis
 * range to the plot area, y growing upwards. */
#ifndef SERENDIP_SVG_H
#define SERENDIP_SVG_H

#include <stddef.h>

#define SVG_MARGIN_L 64
#define SVG_MARGIN_R 16
#define SVG_MARGIN_T 30
#define SVG_MARGIN_B 44
#define SVG_LEGEND_W 200

/* A growable string. */
typedef struct {
    char *s;
    size_t len, cap;
} svg_buf;
void svg_buf_printf(svg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends text with &, <, >, " and ' escaped. */
void svg_buf_escape(svg_buf *b, const char *text);

/* A linear or log2 map from the data interval [d0, d1] to the pixel interval [r0, r1]. */
typedef struct {
    double d0, d1, r0, r1;
    int log2;
} svg_scale;
double svg_map(const svg_scale *s, double v);

/* Up to cap "nice" tick values (1, 2, 5 x 10^k steps) covering [lo, hi] with at most about
 * max_ticks ticks; *axis_lo / *axis_hi receive the rounded-out axis range. Returns the count. */
int svg_nice_ticks(double lo, double hi, int max_ticks, double *ticks, int cap, double *axis_lo, double *axis_hi);

typedef struct {
    int width, height;          /* pixels */
    const char *title, *xlabel, *ylabel;
    int xlog2;                  /* x axis on a log2 scale (powers of two ticks) */
    double xmin, xmax, ymin, ymax; /* axis range; NAN = from the data with nice ticks */
} svg_frame;
/* A frame of w x h with automatic ranges. */
svg_frame svg_frame_make(int w, int h, const char *title, const char *xlabel, const char *ylabel);

typedef struct {
    const char *label;
    const double *x, *y;  /* (n) */
    const double *lo, *hi;/* (n) band, or NULL */
    int n;
} svg_series;

typedef struct {
    const char *label;
    double y, lo, hi;     /* lo/hi NAN: no band */
} svg_hline;

typedef struct {
    const char *label;
    double x, y;
    double xlo, xhi, ylo, yhi; /* error bars, NAN for none */
} svg_point;

/* Each returns a heap string holding one <svg> element (caller frees). Points that are not finite
 * are skipped. Colours come from a fixed palette in order: series first, then reference lines. */
char *svg_line_plot(const svg_frame *f, const svg_series *s, int ns, const svg_hline *h, int nh);
/* Scatter: each point is marked with its number (1..n) and keyed by number in the legend. */
char *svg_scatter(const svg_frame *f, const svg_point *p, int n);
/* Vertical bars values[n] at x = 1..n; labels may be NULL (then bars are not labelled). */
char *svg_bar_chart(const svg_frame *f, const double *values, const char *const *labels, int n);
/* Grouped dot-and-interval plot: ng groups side by side along x (labelled groups[g]), in each
 * group one dot per series (series i at offset i of ns, its interval lo..hi as a vertical bar),
 * s[i].y/lo/hi indexed by group (x unused); series keyed by colour in the legend. */
char *svg_group_plot(const svg_frame *f, const char *const *groups, int ng, const svg_series *s, int ns);

#endif
