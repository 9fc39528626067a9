/* rankstats.h - rank statistics used to judge the alignment model on held-out tuples:
 * Spearman rank correlation and ROC AUC, both with ties handled by average ranks. */
#ifndef SERENDIP_RANKSTATS_H
#define SERENDIP_RANKSTATS_H

#include <stddef.h>

/* Average ranks (1-based; ties share the mean of their positions) of x[0..n) into rank. */
void rs_ranks(const double *x, size_t n, double *rank);
/* Spearman's rho = Pearson correlation of the average ranks; NaN when n < 2 or a side is constant. */
double rs_spearman(const double *x, const double *y, size_t n);
/* AUC = P(score of a positive > score of a negative) + 0.5 P(tie) (Mann-Whitney U / (n+ n-));
 * NaN when one class is empty. */
double rs_auc(const double *score, const int *positive, size_t n);

#endif
