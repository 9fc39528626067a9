/* select.c - best-of-n, the pairwise tournament and the shrinkage of confidence-aware selection
 * (see select.h). */
#include "serendip/select.h"
#include "serendip/journeys.h"

#include <math.h>
#include <stdlib.h>

int sl_cand_cmp(const void *a, const void *b) {
    const sl_cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    int nx = isnan(x->logprob), ny = isnan(y->logprob);
    if (nx != ny) return nx - ny;
    if (!nx && x->logprob != y->logprob) return x->logprob > y->logprob ? -1 : 1;
    return (x->cluster > y->cluster) - (x->cluster < y->cluster);
}

int sl_best_of_n(const sl_sample *s, int n, const int32_t *ctx, int k, const sl_cand *scored, int n_scored,
                 int use_logprob, sl_cand *work, tbl_entry *out, int top, sl_counts *c) {
    int nw = 0, compliant = 0;
    for (int i = 0; i < n; i++) {
        if (s[i].cluster < 0) continue;
        compliant++;
        if (jr_ctx_has(ctx, k, s[i].cluster)) continue;
        int d = 0;
        while (d < nw && work[d].cluster != s[i].cluster) d++;
        if (d < nw) {
            if (s[i].logprob > work[d].logprob) work[d].logprob = s[i].logprob;
            continue;
        }
        float score = -INFINITY;
        for (int j = 0; j < n_scored; j++)
            if (scored[j].cluster == s[i].cluster) score = scored[j].score;
        work[nw++] = (sl_cand){s[i].cluster, score, s[i].logprob};
    }
    if (use_logprob)
        for (int d = 0; d < nw; d++) work[d].score = work[d].logprob;
    qsort(work, (size_t)nw, sizeof *work, sl_cand_cmp);
    int ne = nw < top ? nw : top;
    for (int d = 0; d < ne; d++) out[d] = (tbl_entry){work[d].cluster, use_logprob ? NAN : work[d].score, work[d].logprob};
    if (c) *c = (sl_counts){n, compliant, nw};
    return ne;
}

void sl_pairwise_scores(const float *p, int n, float *score) {
    for (int i = 0; i < n; i++) {
        double wins = 0, borda = 0;
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            double q = 0.5 * ((double)p[(size_t)i * n + j] + 1.0 - (double)p[(size_t)j * n + i]);
            wins += q > 0.5 ? 1.0 : q == 0.5 ? 0.5 : 0.0;
            borda += q;
        }
        score[i] = (float)(wins + borda / (2.0 * n));
    }
}

double sl_prior_rate(double s, const double *rates, int64_t n) {
    if (n <= 0 || !isfinite(s)) return NAN;
    double p = (s + 0.5) / 10.0;
    p = p < 0 ? 0 : p > 1 ? 1 : p;
    double pos = p * (double)(n - 1);
    int64_t lo = (int64_t)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    return rates[lo] + (pos - (double)lo) * (rates[hi] - rates[lo]);
}

double sl_shrink(double prior, int64_t pos, int64_t exp, double m) {
    if (exp <= 0) return prior;
    return ((double)pos + m * prior) / ((double)exp + m);
}
