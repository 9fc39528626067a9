/* rankstats.c - Spearman and AUC with average ranks for ties (see rankstats.h). */
#include "serendip/rankstats.h"

#include <math.h>
#include <stdlib.h>

#include "serendip/base.h"

typedef struct {
    double v;
    size_t i;
} keyed;

static int keyed_cmp(const void *a, const void *b) {
    double x = ((const keyed *)a)->v, y = ((const keyed *)b)->v;
    return x < y ? -1 : x > y;
}

void rs_ranks(const double *x, size_t n, double *rank) {
    keyed *k = sd_malloc(n * sizeof *k);
    for (size_t i = 0; i < n; i++) k[i] = (keyed){x[i], i};
    qsort(k, n, sizeof *k, keyed_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && k[j + 1].v == k[i].v) j++;
        double avg = 0.5 * (double)(i + j) + 1.0; /* mean of 1-based positions i+1 .. j+1 */
        for (size_t t = i; t <= j; t++) rank[k[t].i] = avg;
        i = j + 1;
    }
    free(k);
}

double rs_spearman(const double *x, const double *y, size_t n) {
    if (n < 2) return NAN;
    double *rx = sd_malloc(n * sizeof *rx), *ry = sd_malloc(n * sizeof *ry);
    rs_ranks(x, n, rx);
    rs_ranks(y, n, ry);
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) mx += rx[i], my += ry[i];
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    free(rx);
    free(ry);
    if (sxx == 0 || syy == 0) return NAN;
    return sxy / sqrt(sxx * syy);
}

double rs_auc(const double *score, const int *positive, size_t n) {
    double *r = sd_malloc(n * sizeof *r);
    rs_ranks(score, n, r);
    double npos = 0, nneg = 0, rsum = 0;
    for (size_t i = 0; i < n; i++) {
        if (positive[i]) npos++, rsum += r[i];
        else nneg++;
    }
    free(r);
    if (npos == 0 || nneg == 0) return NAN;
    return (rsum - npos * (npos + 1) / 2) / (npos * nneg);
}
