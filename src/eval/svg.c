/* svg.c - the report's plotting module: axes with nice ticks, line plots with error bands and
 * reference lines, labelled scatter with error bars, bar charts, legends, as inline SVG text.
 *
 * Hand-written because no C plotting library in Debian emits clean, self-contained SVG:
 * gnuplot and PLplot are programs/large runtimes whose SVG output embeds scripts or fonts and
 * cannot be driven as a library call that returns a string; cairo draws SVG through a surface and
 * loses the text as glyph paths. A few hundred lines of SVG text are simpler and fully testable. */
#include "serendip/svg.h"

#include "serendip/base.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Tableau 10, readable on white and distinct for colour-blind readers in its first few entries. */
static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
                                      "#a0cbe8", "#ffbe7d", "#8cd17d", "#499894"};
#define N_PALETTE (int)(sizeof palette / sizeof palette[0])

/* ================================================================ strings */

void svg_buf_printf(svg_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (b->len + (size_t)n + 1 > cap) cap *= 2;
        b->s = sd_realloc(b->s, cap);
        b->cap = cap;
    }
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

void svg_buf_escape(svg_buf *b, const char *t) {
    for (; t && *t; t++) {
        switch (*t) {
        case '&': svg_buf_printf(b, "&amp;"); break;
        case '<': svg_buf_printf(b, "&lt;"); break;
        case '>': svg_buf_printf(b, "&gt;"); break;
        case '"': svg_buf_printf(b, "&quot;"); break;
        case '\'': svg_buf_printf(b, "&#39;"); break;
        default: svg_buf_printf(b, "%c", *t);
        }
    }
}

static char *buf_take(svg_buf *b) {
    if (!b->s) svg_buf_printf(b, "%s", "");
    return b->s;
}

/* ================================================================ scales and ticks */

double svg_map(const svg_scale *s, double v) {
    double a = s->d0, z = s->d1;
    if (s->log2) {
        a = log2(a);
        z = log2(z);
        v = log2(v);
    }
    if (z == a) return (s->r0 + s->r1) / 2;
    return s->r0 + (v - a) / (z - a) * (s->r1 - s->r0);
}

/* The nice step (1, 2 or 5 x 10^k) not smaller than raw. */
static double nice_step(double raw) {
    double p = pow(10, floor(log10(raw))), f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

int svg_nice_ticks(double lo, double hi, int max_ticks, double *ticks, int cap, double *axis_lo, double *axis_hi) {
    if (!isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
    if (hi < lo) {
        double t = lo;
        lo = hi;
        hi = t;
    }
    if (hi == lo) { /* a single value: a unit-wide window around it */
        double w = lo == 0 ? 1 : fabs(lo) * 0.1;
        lo -= w;
        hi += w;
    }
    if (max_ticks < 2) max_ticks = 2;
    double step = nice_step((hi - lo) / (max_ticks - 1));
    double a = floor(lo / step + 1e-9) * step, z = ceil(hi / step - 1e-9) * step;
    int n = 0;
    for (int i = 0;; i++) {
        double t = a + i * step;
        if (t > z + step * 1e-6 || n >= cap) break;
        if (fabs(t) < step * 1e-9) t = 0; /* avoid "-0" and 1e-17 */
        ticks[n++] = t;
    }
    *axis_lo = a;
    *axis_hi = z;
    return n;
}

svg_frame svg_frame_make(int w, int h, const char *title, const char *xlabel, const char *ylabel) {
    return (svg_frame){w, h, title, xlabel, ylabel, 0, NAN, NAN, NAN, NAN};
}

/* ================================================================ frame, axes, legend */

typedef struct {
    svg_scale x, y;
    double px0, px1, py0, py1; /* plot area: left, right, top, bottom */
    double xt[32], yt[32];
    int nxt, nyt;
} axes;

static void fmt_tick(char *s, size_t cap, double v, double step) {
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    snprintf(s, cap, "%.*f", dec, v);
}

/* Chooses the axis ranges from the data range (or the frame's fixed range) and the plot area. */
static void axes_make(axes *ax, const svg_frame *f, int legend, double xlo, double xhi, double ylo, double yhi) {
    memset(ax, 0, sizeof *ax);
    ax->px0 = SVG_MARGIN_L;
    ax->px1 = f->width - SVG_MARGIN_R - (legend ? SVG_LEGEND_W : 0);
    ax->py0 = SVG_MARGIN_T;
    ax->py1 = f->height - SVG_MARGIN_B;
    if (isfinite(f->xmin)) xlo = f->xmin;
    if (isfinite(f->xmax)) xhi = f->xmax;
    if (isfinite(f->ymin)) ylo = f->ymin;
    if (isfinite(f->ymax)) yhi = f->ymax;
    double a, z;
    if (f->xlog2) {
        if (!(xlo > 0) || !isfinite(xlo)) xlo = 1;
        if (!isfinite(xhi)) xhi = xlo * 2;
        if (!(xhi > xlo)) xhi = xlo * 2;
        a = pow(2, floor(log2(xlo))), z = pow(2, ceil(log2(xhi)));
        for (double t = a; t <= z * 1.0000001 && ax->nxt < 32; t *= 2) ax->xt[ax->nxt++] = t;
    } else {
        ax->nxt = svg_nice_ticks(xlo, xhi, 8, ax->xt, 32, &a, &z);
    }
    if (isfinite(f->xmin)) a = f->xmin;
    if (isfinite(f->xmax)) z = f->xmax;
    ax->x = (svg_scale){a, z, ax->px0, ax->px1, f->xlog2};
    ax->nyt = svg_nice_ticks(ylo, yhi, 6, ax->yt, 32, &a, &z);
    if (isfinite(f->ymin)) a = f->ymin;
    if (isfinite(f->ymax)) z = f->ymax;
    ax->y = (svg_scale){a, z, ax->py1, ax->py0, 0};
}

static void svg_open(svg_buf *b, const svg_frame *f) {
    svg_buf_printf(b,
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                   "font-family=\"sans-serif\" font-size=\"11\" role=\"img\">\n",
                   f->width, f->height, f->width, f->height);
    if (f->title) {
        svg_buf_printf(b, "<title>");
        svg_buf_escape(b, f->title);
        svg_buf_printf(b, "</title>\n<text x=\"%d\" y=\"18\" font-size=\"13\" font-weight=\"bold\">", SVG_MARGIN_L);
        svg_buf_escape(b, f->title);
        svg_buf_printf(b, "</text>\n");
    }
}

static int in_range(const svg_scale *s, double v) {
    double a = s->d0 < s->d1 ? s->d0 : s->d1, z = s->d0 < s->d1 ? s->d1 : s->d0, eps = (z - a) * 1e-9;
    return v >= a - eps && v <= z + eps;
}

static void axes_draw(svg_buf *b, const axes *ax, const svg_frame *f) {
    svg_buf_printf(b, "<g class=\"axes\" stroke=\"#333\" stroke-width=\"1\">\n");
    svg_buf_printf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\"/>\n", ax->px0, ax->py0,
                   ax->px1 - ax->px0, ax->py1 - ax->py0);
    svg_buf_printf(b, "</g>\n<g class=\"ticks\" fill=\"#333\">\n");
    double xstep = ax->nxt > 1 ? fabs(ax->xt[1] - ax->xt[0]) : 1, ystep = ax->nyt > 1 ? ax->yt[1] - ax->yt[0] : 1;
    for (int i = 0; i < ax->nxt; i++) {
        if (!in_range(&ax->x, ax->xt[i])) continue;
        double x = svg_map(&ax->x, ax->xt[i]);
        char s[32];
        fmt_tick(s, sizeof s, ax->xt[i], f->xlog2 ? 1 : xstep);
        svg_buf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#333\"/>", x, ax->py1, x,
                       ax->py1 + 4);
        svg_buf_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n", x, ax->py1 + 16, s);
    }
    for (int i = 0; i < ax->nyt; i++) {
        if (!in_range(&ax->y, ax->yt[i])) continue;
        double y = svg_map(&ax->y, ax->yt[i]);
        char s[32];
        fmt_tick(s, sizeof s, ax->yt[i], ystep);
        svg_buf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#ddd\"/>", ax->px0, y, ax->px1,
                       y);
        svg_buf_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", ax->px0 - 6, y + 4, s);
    }
    svg_buf_printf(b, "</g>\n");
    if (f->xlabel) {
        svg_buf_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">", (ax->px0 + ax->px1) / 2,
                       (double)f->height - 8);
        svg_buf_escape(b, f->xlabel);
        svg_buf_printf(b, "</text>\n");
    }
    if (f->ylabel) {
        double cy = (ax->py0 + ax->py1) / 2;
        svg_buf_printf(b, "<text x=\"14\" y=\"%.2f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.2f)\">", cy, cy);
        svg_buf_escape(b, f->ylabel);
        svg_buf_printf(b, "</text>\n");
    }
}

static void legend_item(svg_buf *b, const axes *ax, int i, const char *color, int dashed, const char *label) {
    double x = ax->px1 + 12, y = ax->py0 + 8 + 16 * i;
    svg_buf_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"2\"%s/>", x, y,
                   x + 18, y, color, dashed ? " stroke-dasharray=\"5,3\"" : "");
    svg_buf_printf(b, "<text x=\"%.2f\" y=\"%.2f\">", x + 24, y + 4);
    svg_buf_escape(b, label);
    svg_buf_printf(b, "</text>\n");
}

static void upd(double v, double *lo, double *hi) {
    if (!isfinite(v)) return;
    if (v < *lo) *lo = v;
    if (v > *hi) *hi = v;
}

/* ================================================================ plots */

char *svg_line_plot(const svg_frame *f, const svg_series *s, int ns, const svg_hline *h, int nh) {
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (int j = 0; j < s[i].n; j++) {
            if (!isfinite(s[i].y[j])) continue;
            upd(s[i].x[j], &xlo, &xhi);
            upd(s[i].y[j], &ylo, &yhi);
            if (s[i].lo) upd(s[i].lo[j], &ylo, &yhi);
            if (s[i].hi) upd(s[i].hi[j], &ylo, &yhi);
        }
    for (int i = 0; i < nh; i++) {
        upd(h[i].y, &ylo, &yhi);
        upd(h[i].lo, &ylo, &yhi);
        upd(h[i].hi, &ylo, &yhi);
    }
    axes ax;
    axes_make(&ax, f, 1, xlo, xhi, ylo, yhi);
    svg_buf b = {0};
    svg_open(&b, f);
    axes_draw(&b, &ax, f);
    int li = 0;
    for (int i = 0; i < nh; i++) { /* reference lines below the series */
        const char *col = palette[(ns + i) % N_PALETTE];
        if (!isfinite(h[i].y)) continue;
        if (isfinite(h[i].lo) && isfinite(h[i].hi)) {
            double y0 = svg_map(&ax.y, h[i].hi), y1 = svg_map(&ax.y, h[i].lo);
            svg_buf_printf(&b,
                           "<rect class=\"hband\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" "
                           "fill-opacity=\"0.12\"/>\n",
                           ax.px0, y0, ax.px1 - ax.px0, y1 - y0, col);
        }
        double y = svg_map(&ax.y, h[i].y);
        svg_buf_printf(&b,
                       "<line class=\"hline\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                       "stroke-width=\"1.5\" stroke-dasharray=\"5,3\"/>\n",
                       ax.px0, y, ax.px1, y, col);
    }
    for (int i = 0; i < ns; i++) {
        const char *col = palette[i % N_PALETTE];
        if (s[i].lo && s[i].hi) { /* band: along hi, back along lo */
            svg_buf_printf(&b, "<polygon class=\"band\" fill=\"%s\" fill-opacity=\"0.2\" stroke=\"none\" points=\"", col);
            for (int j = 0; j < s[i].n; j++)
                if (isfinite(s[i].hi[j]) && isfinite(s[i].lo[j]))
                    svg_buf_printf(&b, "%.2f,%.2f ", svg_map(&ax.x, s[i].x[j]), svg_map(&ax.y, s[i].hi[j]));
            for (int j = s[i].n - 1; j >= 0; j--)
                if (isfinite(s[i].hi[j]) && isfinite(s[i].lo[j]))
                    svg_buf_printf(&b, "%.2f,%.2f ", svg_map(&ax.x, s[i].x[j]), svg_map(&ax.y, s[i].lo[j]));
            svg_buf_printf(&b, "\"/>\n");
        }
        svg_buf_printf(&b, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (int j = 0; j < s[i].n; j++)
            if (isfinite(s[i].y[j]))
                svg_buf_printf(&b, "%.2f,%.2f ", svg_map(&ax.x, s[i].x[j]), svg_map(&ax.y, s[i].y[j]));
        svg_buf_printf(&b, "\"/>\n");
        for (int j = 0; j < s[i].n; j++) {
            if (!isfinite(s[i].y[j])) continue;
            svg_buf_printf(&b, "<circle class=\"pt\" cx=\"%.2f\" cy=\"%.2f\" r=\"3.5\" fill=\"%s\"><title>",
                           svg_map(&ax.x, s[i].x[j]), svg_map(&ax.y, s[i].y[j]), col);
            svg_buf_escape(&b, s[i].label);
            svg_buf_printf(&b, ": x=%g y=%.4g</title></circle>\n", s[i].x[j], s[i].y[j]);
        }
        legend_item(&b, &ax, li++, col, 0, s[i].label);
    }
    for (int i = 0; i < nh; i++)
        if (isfinite(h[i].y)) legend_item(&b, &ax, li++, palette[(ns + i) % N_PALETTE], 1, h[i].label);
    svg_buf_printf(&b, "</svg>\n");
    return buf_take(&b);
}

char *svg_scatter(const svg_frame *f, const svg_point *p, int n) {
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(p[i].x) || !isfinite(p[i].y)) continue;
        upd(p[i].x, &xlo, &xhi);
        upd(p[i].y, &ylo, &yhi);
        upd(p[i].xlo, &xlo, &xhi);
        upd(p[i].xhi, &xlo, &xhi);
        upd(p[i].ylo, &ylo, &yhi);
        upd(p[i].yhi, &ylo, &yhi);
    }
    axes ax;
    axes_make(&ax, f, 1, xlo, xhi, ylo, yhi);
    svg_buf b = {0};
    svg_open(&b, f);
    axes_draw(&b, &ax, f);
    int li = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(p[i].x) || !isfinite(p[i].y)) continue;
        const char *col = palette[i % N_PALETTE];
        double cx = svg_map(&ax.x, p[i].x), cy = svg_map(&ax.y, p[i].y);
        if (isfinite(p[i].xlo) && isfinite(p[i].xhi))
            svg_buf_printf(&b, "<line class=\"err\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\"/>",
                           svg_map(&ax.x, p[i].xlo), cy, svg_map(&ax.x, p[i].xhi), cy, col);
        if (isfinite(p[i].ylo) && isfinite(p[i].yhi))
            svg_buf_printf(&b, "<line class=\"err\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\"/>", cx,
                           svg_map(&ax.y, p[i].ylo), cx, svg_map(&ax.y, p[i].yhi), col);
        svg_buf_printf(&b, "<circle class=\"pt\" cx=\"%.2f\" cy=\"%.2f\" r=\"4.5\" fill=\"%s\"><title>", cx, cy, col);
        svg_buf_escape(&b, p[i].label);
        svg_buf_printf(&b, ": x=%.4g y=%.4g</title></circle>", p[i].x, p[i].y);
        /* points are labelled by number, keyed in the legend: long names would collide */
        svg_buf_printf(&b, "<text class=\"lab\" x=\"%.2f\" y=\"%.2f\" font-size=\"10\" font-weight=\"bold\">%d</text>\n",
                       cx + 5, cy - 5, i + 1);
        char key[160];
        snprintf(key, sizeof key, "%d  %s", i + 1, p[i].label ? p[i].label : "");
        legend_item(&b, &ax, li++, col, 0, key);
    }
    svg_buf_printf(&b, "</svg>\n");
    return buf_take(&b);
}

char *svg_bar_chart(const svg_frame *f, const double *values, const char *const *labels, int n) {
    double ylo = 0, yhi = -INFINITY;
    for (int i = 0; i < n; i++) upd(values[i], &ylo, &yhi);
    if (!(yhi > ylo)) yhi = ylo + 1;
    axes ax;
    axes_make(&ax, f, 0, 0.5, n + 0.5, ylo, yhi);
    /* bars sit at integer x = 1..n: fix the x range to [0.5, n + 0.5] whatever the ticks say */
    ax.x.d0 = isfinite(f->xmin) ? f->xmin : 0.5;
    ax.x.d1 = isfinite(f->xmax) ? f->xmax : n + 0.5;
    svg_buf b = {0};
    svg_open(&b, f);
    axes_draw(&b, &ax, f);
    double w = n ? (ax.px1 - ax.px0) / n : 0, y0 = svg_map(&ax.y, 0);
    for (int i = 0; i < n; i++) {
        if (!isfinite(values[i])) continue;
        double x = svg_map(&ax.x, i + 1), y = svg_map(&ax.y, values[i]);
        svg_buf_printf(&b,
                       "<rect class=\"bar\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>",
                       x - w * 0.4, y < y0 ? y : y0, w * 0.8, fabs(y0 - y), palette[0]);
        if (labels && labels[i]) {
            svg_buf_escape(&b, labels[i]);
            svg_buf_printf(&b, ": ");
        }
        svg_buf_printf(&b, "%g</title></rect>\n", values[i]);
        if (labels && labels[i] && n <= 24) {
            svg_buf_printf(&b, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"9\" text-anchor=\"end\" transform=\"rotate(-45 %.2f %.2f)\">",
                           x, ax.py1 + 12, x, ax.py1 + 12);
            svg_buf_escape(&b, labels[i]);
            svg_buf_printf(&b, "</text>\n");
        }
    }
    svg_buf_printf(&b, "</svg>\n");
    return buf_take(&b);
}

char *svg_group_plot(const svg_frame *f, const char *const *groups, int ng, const svg_series *s, int ns) {
    double ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (int g = 0; g < ng && g < s[i].n; g++) {
            if (!isfinite(s[i].y[g])) continue;
            upd(s[i].y[g], &ylo, &yhi);
            if (s[i].lo) upd(s[i].lo[g], &ylo, &yhi);
            if (s[i].hi) upd(s[i].hi[g], &ylo, &yhi);
        }
    axes ax;
    axes_make(&ax, f, 1, 0, ng > 0 ? ng : 1, ylo, yhi);
    ax.nxt = 0; /* the x axis is categorical: group labels instead of ticks */
    svg_buf b = {0};
    svg_open(&b, f);
    axes_draw(&b, &ax, f);
    double gw = ng > 0 ? (ax.px1 - ax.px0) / ng : 0;
    for (int g = 0; g < ng; g++) {
        if (g > 0)
            svg_buf_printf(&b, "<line class=\"sep\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#ccc\" "
                               "stroke-dasharray=\"3,3\"/>\n", ax.px0 + g * gw, ax.py0, ax.px0 + g * gw, ax.py1);
        svg_buf_printf(&b, "<text class=\"group\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">", ax.px0 + (g + 0.5) * gw,
                       ax.py1 + 16);
        svg_buf_escape(&b, groups[g]);
        svg_buf_printf(&b, "</text>\n");
    }
    for (int i = 0; i < ns; i++) {
        const char *col = palette[i % N_PALETTE];
        for (int g = 0; g < ng && g < s[i].n; g++) {
            if (!isfinite(s[i].y[g])) continue;
            double x = ax.px0 + g * gw + gw * (0.1 + 0.8 * (i + 0.5) / ns), y = svg_map(&ax.y, s[i].y[g]);
            if (s[i].lo && s[i].hi && isfinite(s[i].lo[g]) && isfinite(s[i].hi[g]))
                svg_buf_printf(&b, "<line class=\"bar\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                                   "stroke-width=\"1.5\"/>", x, svg_map(&ax.y, s[i].lo[g]), x, svg_map(&ax.y, s[i].hi[g]), col);
            svg_buf_printf(&b, "<circle class=\"pt\" cx=\"%.2f\" cy=\"%.2f\" r=\"3.5\" fill=\"%s\"><title>", x, y, col);
            svg_buf_escape(&b, s[i].label);
            svg_buf_printf(&b, " (");
            svg_buf_escape(&b, groups[g]);
            svg_buf_printf(&b, "): %.4g</title></circle>\n", s[i].y[g]);
        }
        legend_item(&b, &ax, i, col, 0, s[i].label);
    }
    svg_buf_printf(&b, "</svg>\n");
    return buf_take(&b);
}
