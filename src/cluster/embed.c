/* embed.c - item embeddings: windowed co-occurrence counts -> PPMI -> randomized truncated
 * eigendecomposition -> L2-normalised rows (see embed.h for the formulas).
 *
 * Hand-written parts and why: the sparse co-occurrence build and the sparse-times-dense product
 * (no Debian C library does sparse BLAS that we already link; both are a dozen lines), and the
 * randomized range finder (Halko, Martinsson & Tropp 2011), which is a few calls into BLAS
 * (sgemm) and LAPACK (sgeqrf/sorgqr for orthonormalisation, ssyevd for the small eigenproblem).
 * A full dense eigendecomposition of a 9,000 x 9,000 PPMI matrix would cost minutes; the
 * randomized one costs a few sparse products. */
#include "serendip/embed.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void em_csr_free(em_csr *m) {
    free(m->row_off);
    free(m->col);
    free(m->val);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- co-occurrence counts */

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int em_cooc_build(int64_t n_items, int64_t n_seq, const int64_t *seq_off, const int32_t *items, int window, em_csr *out, sd_err *err) {
    memset(out, 0, sizeof *out);
    if (n_items < 1 || n_items > INT32_MAX) return sd_fail(err, SD_ERR_USAGE, "co-occurrence: %lld items", (long long)n_items);
    if (window < 0) return sd_fail(err, SD_ERR_USAGE, "co-occurrence: window %d < 0", window);
    int64_t total = seq_off[n_seq];
    for (int64_t p = 0; p < total; p++)
        if (items[p] < 0 || items[p] >= n_items)
            return sd_fail(err, SD_ERR_DATA, "co-occurrence: item %d at position %lld is out of range", items[p], (long long)p);
    /* inverted index: the positions of each item, and the sequence of each position */
    int64_t *occ_off = sd_calloc((size_t)n_items + 1, sizeof(int64_t)); /* (n_items + 1) */
    int64_t *occ = sd_malloc(sizeof(int64_t) * (size_t)(total ? total : 1)); /* (total) positions */
    int64_t *pos_seq = sd_malloc(sizeof(int64_t) * (size_t)(total ? total : 1)); /* (total) */
    for (int64_t s = 0; s < n_seq; s++)
        for (int64_t p = seq_off[s]; p < seq_off[s + 1]; p++) pos_seq[p] = s, occ_off[items[p] + 1]++;
    for (int64_t i = 0; i < n_items; i++) occ_off[i + 1] += occ_off[i];
    int64_t *fill = sd_malloc(sizeof(int64_t) * (size_t)n_items);
    memcpy(fill, occ_off, sizeof(int64_t) * (size_t)n_items);
    for (int64_t p = 0; p < total; p++) occ[fill[items[p]]++] = p;
    free(fill);

    int32_t **rcol = sd_calloc((size_t)n_items, sizeof(int32_t *));
    float **rval = sd_calloc((size_t)n_items, sizeof(float *));
    int64_t *rlen = sd_calloc((size_t)n_items, sizeof(int64_t));
#pragma omp parallel
    {
        float *acc = sd_calloc((size_t)n_items, sizeof(float)); /* (n_items) scratch row */
        int32_t *touched = sd_malloc(sizeof(int32_t) * (size_t)n_items);
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n_items; i++) {
            int64_t nt = 0;
            for (int64_t o = occ_off[i]; o < occ_off[i + 1]; o++) {
                int64_t p = occ[o], s = pos_seq[p];
                int64_t lo = seq_off[s], hi = seq_off[s + 1];
                if (window > 0) {
                    if (p - window > lo) lo = p - window;
                    if (p + window + 1 < hi) hi = p + window + 1;
                }
                for (int64_t q = lo; q < hi; q++) {
                    int32_t j = items[q];
                    if (j == i) continue;
                    if (acc[j] == 0) touched[nt++] = j;
                    acc[j] += 1;
                }
            }
            qsort(touched, (size_t)nt, sizeof(int32_t), cmp_i32);
            rcol[i] = sd_malloc(sizeof(int32_t) * (size_t)(nt ? nt : 1));
            rval[i] = sd_malloc(sizeof(float) * (size_t)(nt ? nt : 1));
            for (int64_t t = 0; t < nt; t++) {
                rcol[i][t] = touched[t];
                rval[i][t] = acc[touched[t]];
                acc[touched[t]] = 0;
            }
            rlen[i] = nt;
        }
        free(touched);
        free(acc);
    }
    out->n = n_items;
    out->row_off = sd_malloc(sizeof(int64_t) * (size_t)(n_items + 1));
    out->row_off[0] = 0;
    for (int64_t i = 0; i < n_items; i++) out->row_off[i + 1] = out->row_off[i] + rlen[i];
    int64_t nnz = out->row_off[n_items];
    out->col = sd_malloc(sizeof(int32_t) * (size_t)(nnz ? nnz : 1));
    out->val = sd_malloc(sizeof(float) * (size_t)(nnz ? nnz : 1));
    for (int64_t i = 0; i < n_items; i++) {
        memcpy(out->col + out->row_off[i], rcol[i], sizeof(int32_t) * (size_t)rlen[i]);
        memcpy(out->val + out->row_off[i], rval[i], sizeof(float) * (size_t)rlen[i]);
        free(rcol[i]);
        free(rval[i]);
    }
    free(rcol), free(rval), free(rlen), free(occ_off), free(occ), free(pos_seq);
    return SD_OK;
}

/* ---------------------------------------------------------------- PPMI */

void em_ppmi(em_csr *m, float alpha) {
    int64_t n = m->n;
    double *rs = sd_calloc((size_t)n, sizeof(double)); /* (n) row sums c_i */
    double d = 0, z = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t e = m->row_off[i]; e < m->row_off[i + 1]; e++) rs[i] += m->val[e];
        d += rs[i];
        if (rs[i] > 0) z += pow(rs[i], alpha);
    }
    double *ra = sd_malloc(sizeof(double) * (size_t)(n ? n : 1)); /* c_i^alpha */
    for (int64_t i = 0; i < n; i++) ra[i] = rs[i] > 0 ? pow(rs[i], alpha) : 0;
    /* compact in place, keeping positive entries */
    int64_t w = 0, start = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t end = m->row_off[i + 1];
        for (int64_t e = start; e < end; e++) {
            int32_t j = m->col[e];
            double v = log((double)m->val[e] * z * z / (d * ra[i] * ra[j]));
            if (v > 0) m->col[w] = j, m->val[w] = (float)v, w++;
        }
        start = end;
        m->row_off[i + 1] = w;
    }
    free(ra);
    free(rs);
}

void em_ppmi_dense_ref(const float *counts, int64_t n, float alpha, float *out) {
    double d = 0, z = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = 0;
        for (int64_t j = 0; j < n; j++) r += counts[i * n + j];
        d += r;
        if (r > 0) z += pow(r, alpha);
    }
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < n; j++) {
            double c = counts[i * n + j], ri = 0, rj = 0;
            for (int64_t t = 0; t < n; t++) ri += counts[i * n + t], rj += counts[j * n + t];
            double pij = c / d, pi = pow(ri, alpha) / z, pj = pow(rj, alpha) / z;
            double v = c > 0 ? log(pij / (pi * pj)) : 0;
            out[i * n + j] = v > 0 ? (float)v : 0.0f;
        }
    }
}

/* ---------------------------------------------------------------- randomized eigendecomposition */

/* y (n, l) = a (n, n) * q (n, l), all row-major. */
static void spmm(const em_csr *a, const float *q, int l, float *y) {
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < a->n; i++) {
        float *yi = y + i * l;
        for (int t = 0; t < l; t++) yi[t] = 0;
        for (int64_t e = a->row_off[i]; e < a->row_off[i + 1]; e++) {
            const float *qj = q + (int64_t)a->col[e] * l;
            float v = a->val[e];
            for (int t = 0; t < l; t++) yi[t] += v * qj[t];
        }
    }
}

/* Orthonormalises the columns of y (n, l) in place (thin QR). */
static int orthonormalise(float *y, int64_t n, int l, sd_err *err) {
    float *tau = sd_malloc(sizeof(float) * (size_t)l);
    lapack_int info = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, (lapack_int)n, l, y, l, tau);
    if (!info) info = LAPACKE_sorgqr(LAPACK_ROW_MAJOR, (lapack_int)n, l, l, y, l, tau);
    free(tau);
    if (info) return sd_fail(err, SD_ERR_DATA, "embedding: QR failed (LAPACK info %d)", (int)info);
    return SD_OK;
}

int em_svd_sym(const em_csr *a, int dim, int oversample, int power_iters, uint64_t seed, float *vecs, float *vals, sd_err *err) {
    int64_t n = a->n;
    if (dim < 1 || dim > n) return sd_fail(err, SD_ERR_USAGE, "embedding: dimension %d must be in 1..%lld", dim, (long long)n);
    int64_t l64 = (int64_t)dim + (oversample > 0 ? oversample : 0);
    int l = (int)(l64 < n ? l64 : n);
    float *q = sd_malloc(sizeof(float) * (size_t)(n * l)); /* (n, l) */
    float *y = sd_malloc(sizeof(float) * (size_t)(n * l)); /* (n, l) */
    sd_rng rng;
    sd_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n * l; i++) q[i] = (float)sd_rng_normal(&rng);
    spmm(a, q, l, y);
    int rc = SD_OK;
    for (int it = 0; it < power_iters && rc == SD_OK; it++) {
        rc = orthonormalise(y, n, l, err);
        if (rc == SD_OK) spmm(a, y, l, q), memcpy(y, q, sizeof(float) * (size_t)(n * l));
    }
    if (rc == SD_OK) rc = orthonormalise(y, n, l, err); /* y = Q */
    float *t = sd_malloc(sizeof(float) * (size_t)l * (size_t)l); /* (l, l) Q^T A Q */
    float *ev = sd_malloc(sizeof(float) * (size_t)l);
    if (rc == SD_OK) {
        spmm(a, y, l, q); /* q = A Q */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l, l, (int)n, 1.0f, y, l, q, l, 0.0f, t, l);
        for (int i = 0; i < l; i++)
            for (int j = i + 1; j < l; j++) t[i * l + j] = t[j * l + i] = 0.5f * (t[i * l + j] + t[j * l + i]);
        lapack_int info = LAPACKE_ssyevd(LAPACK_ROW_MAJOR, 'V', 'U', l, t, l, ev); /* columns of t */
        if (info) rc = sd_fail(err, SD_ERR_DATA, "embedding: eigendecomposition failed (LAPACK info %d)", (int)info);
    }
    if (rc == SD_OK) {
        /* order by |eigenvalue| descending (ties: larger index first, i.e. the positive one) */
        int *ord = sd_malloc(sizeof(int) * (size_t)l);
        for (int i = 0; i < l; i++) ord[i] = l - 1 - i;
        for (int i = 1; i < l; i++) { /* insertion sort, l is small */
            int v = ord[i], j = i;
            while (j > 0 && fabsf(ev[ord[j - 1]]) < fabsf(ev[v])) ord[j] = ord[j - 1], j--;
            ord[j] = v;
        }
        float *w = sd_malloc(sizeof(float) * (size_t)l * (size_t)dim); /* (l, dim) selected vectors */
        for (int i = 0; i < l; i++)
            for (int c = 0; c < dim; c++) w[i * dim + c] = t[i * l + ord[c]];
        for (int c = 0; c < dim; c++) vals[c] = ev[ord[c]];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, dim, l, 1.0f, y, l, w, dim, 0.0f, vecs, dim);
        /* fix each vector's sign (largest-magnitude entry positive) so results do not depend on
         * LAPACK's sign choice */
        for (int c = 0; c < dim; c++) {
            int64_t arg = 0;
            for (int64_t i = 1; i < n; i++)
                if (fabsf(vecs[i * dim + c]) > fabsf(vecs[arg * dim + c])) arg = i;
            if (vecs[arg * dim + c] < 0)
                for (int64_t i = 0; i < n; i++) vecs[i * dim + c] = -vecs[i * dim + c];
        }
        free(w);
        free(ord);
    }
    free(ev), free(t), free(y), free(q);
    return rc;
}

/* ---------------------------------------------------------------- the pipeline */

int em_embed(int64_t n_items, int64_t n_seq, const int64_t *seq_off, const int32_t *items, const em_config *cfg, em_embedding *out, sd_err *err) {
    memset(out, 0, sizeof *out);
    em_csr m;
    double t0 = sd_now();
    int rc = em_cooc_build(n_items, n_seq, seq_off, items, cfg->window, &m, err);
    if (rc) return rc;
    int64_t nnz_counts = m.row_off[n_items];
    em_ppmi(&m, cfg->cds_alpha);
    out->n_items = n_items;
    out->has = sd_calloc((size_t)n_items, 1);
    int64_t ne = 0;
    for (int64_t i = 0; i < n_items; i++)
        if (m.row_off[i + 1] > m.row_off[i]) out->has[i] = 1, ne++;
    if (ne == 0) {
        em_csr_free(&m);
        em_embedding_free(out);
        return sd_fail(err, SD_ERR_DATA, "embedding: no item co-occurs with another one (every sequence has fewer than 2 distinct items?)");
    }
    int dim = cfg->dim < ne ? cfg->dim : (int)ne;
    if (dim < 1) dim = 1;
    out->dim = dim;
    sd_debug("embedding: %lld co-occurring pairs, %lld positive PPMI entries, %lld items embedded (%.2f s)", (long long)nnz_counts,
             (long long)m.row_off[n_items], (long long)ne, sd_now() - t0);
    out->vec = sd_malloc(sizeof(float) * (size_t)(n_items * dim));
    float *vals = sd_malloc(sizeof(float) * (size_t)dim);
    rc = em_svd_sym(&m, dim, cfg->oversample, cfg->power_iters, cfg->seed, out->vec, vals, err);
    em_csr_free(&m);
    if (rc) {
        free(vals);
        em_embedding_free(out);
        return rc;
    }
    for (int c = 0; c < dim; c++) vals[c] = sqrtf(fabsf(vals[c]));
    for (int64_t i = 0; i < n_items; i++) {
        float *v = out->vec + i * dim;
        double s = 0;
        for (int c = 0; c < dim; c++) v[c] *= vals[c], s += (double)v[c] * v[c];
        if (!out->has[i] || s <= 0) {
            out->has[i] = 0;
            memset(v, 0, sizeof(float) * (size_t)dim);
            continue;
        }
        float inv = (float)(1.0 / sqrt(s));
        for (int c = 0; c < dim; c++) v[c] *= inv;
    }
    out->n_embedded = 0;
    for (int64_t i = 0; i < n_items; i++) out->n_embedded += out->has[i];
    free(vals);
    sd_debug("embedding: dim %d done in %.2f s", dim, sd_now() - t0);
    return SD_OK;
}

void em_embedding_free(em_embedding *e) {
    free(e->vec);
    free(e->has);
    memset(e, 0, sizeof *e);
}
