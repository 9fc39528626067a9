/* embed.h - item embeddings from co-occurrence in users' sequences: counts -> PPMI -> truncated
 * SVD (randomized, symmetric) -> L2-normalised rows.
 *
 * Pipeline: em_cooc_build counts, for every ordered pair of positions p != q of a sequence with
 * |p - q| <= window (any distance when window = 0), one co-occurrence of (item[p], item[q]) when
 * the items differ. em_ppmi turns the counts into positive PMI with context-distribution smoothing
 * (Levy, Goldberg & Dagan 2015). em_svd_sym gives the top eigenpairs (by |eigenvalue|) of the
 * symmetric PPMI matrix, and an item's embedding is its eigenvector row scaled by sqrt|lambda|,
 * L2-normalised. em_ppmi_dense_ref is the plain dense reference the sparse path is tested against. */
#ifndef SERENDIP_EMBED_H
#define SERENDIP_EMBED_H

#include "serendip/base.h"

/* A square sparse matrix in CSR form, columns sorted within each row. */
typedef struct {
    int64_t n;        /* rows = columns */
    int64_t *row_off; /* (n + 1) */
    int32_t *col;     /* (nnz) */
    float *val;       /* (nnz) */
} em_csr;
void em_csr_free(em_csr *m);

typedef struct {
    int dim;          /* embedding dimension (default 64) */
    int window;       /* co-occurrence window in positions, 0 = whole sequence (default 50) */
    float cds_alpha;  /* context-distribution smoothing exponent (default 0.75) */
    int oversample;   /* extra random directions in the randomized SVD (default 16) */
    int power_iters;  /* subspace iterations (default 4) */
    uint64_t seed;
} em_config;

#define EM_DEFAULT ((em_config){.dim = 64, .window = 50, .cds_alpha = 0.75f, .oversample = 16, .power_iters = 4, .seed = 1})

/* Co-occurrence counts of n_items items over n_seq sequences: sequence s is
 * items[seq_off[s] .. seq_off[s+1]). The result is symmetric. */
int em_cooc_build(int64_t n_items, int64_t n_seq, const int64_t *seq_off, const int32_t *items, int window, em_csr *out, sd_err *err);

/* In place: counts -> PPMI_ij = max(0, log(P(i,j) / (P_a(i) P_a(j)))) with P(i,j) = c_ij / D,
 * P_a(i) = c_i^alpha / Z, c_i the row sums, D their total and Z = sum_i c_i^alpha. The smoothing
 * is applied to both sides (Levy et al. smooth the context side only) so that the result stays
 * symmetric. Entries that are not positive are dropped. */
void em_ppmi(em_csr *m, float alpha);
/* The same formula on a dense (n, n) count matrix, plainly: out (n, n). */
void em_ppmi_dense_ref(const float *counts, int64_t n, float alpha, float *out);

/* Top `dim` eigenpairs of the symmetric matrix a by |eigenvalue| (descending): vecs (n, dim)
 * row-major, vals (dim). Randomized subspace iteration with dim + oversample directions. */
int em_svd_sym(const em_csr *a, int dim, int oversample, int power_iters, uint64_t seed, float *vecs, float *vals, sd_err *err);

typedef struct {
    int64_t n_items;
    int dim;
    float *vec;           /* (n_items, dim) L2-normalised rows; zero rows for items not embedded */
    uint8_t *has;         /* (n_items) 1 when the item has an embedding */
    int64_t n_embedded;
} em_embedding;

/* The whole pipeline on sequences. Items with no co-occurrence (never in a sequence, or whose
 * PPMI row is empty) get has = 0. dim is capped at the number of embedded items. */
int em_embed(int64_t n_items, int64_t n_seq, const int64_t *seq_off, const int32_t *items, const em_config *cfg, em_embedding *out, sd_err *err);
void em_embedding_free(em_embedding *e);

#endif
