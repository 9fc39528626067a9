/* plan_mpi.c - `plan --mpi`: which contexts this rank plans, and rank 0's gathering of the rows
 * (pl_plan calls these two at its edges; the sampling and scoring in between are unchanged).
 *
 * Why the split is by whole chunks: pl_plan feeds the models chunk by chunk (plan.c), and a chunk's
 * batch fixes every bit of its float results; cutting only at chunk boundaries makes the gathered
 * table byte-identical to a one-process run, exactly as `--shard` does. Why by cost: a chunk costs
 * its valid contexts (n samples and their scoring each), and chunks differ (the diagonal of the
 * context grid, repeated clusters, is skipped), so ranks get runs of chunks with equal valid
 * contexts rather than equal chunk counts. */
#include <stdlib.h>
#include <string.h>

#include "serendip/journeys.h"
#include "serendip/mpi.h"
#include "serendip/plan.h"
#include "serendip/table.h"

void pl_mpi_range(int K, int M, int chunk, int64_t *begin, int64_t *end) {
    const int64_t n_ctx = jr_n_contexts(K, M), n_chunks = (n_ctx + chunk - 1) / chunk;
    const int R = sd_mpi_size(), r = sd_mpi_rank();
    /* prefix sums of valid contexts per chunk: cost[c] = valid contexts in chunks [0, c) */
    int64_t *cost = sd_calloc((size_t)n_chunks + 1, sizeof *cost);
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t v = 0, e = (c + 1) * chunk < n_ctx ? (c + 1) * chunk : n_ctx;
        for (int64_t i = c * chunk; i < e; i++) {
            int32_t x[JR_K_MAX];
            jr_context_from_index(i, K, M, x);
            v += jr_context_valid(x, K, M);
        }
        cost[c + 1] = cost[c] + v;
    }
    /* rank q starts at the chunk boundary whose prefix is nearest to total * q / R */
    int64_t cut[2];
    for (int s = 0; s < 2; s++) {
        int q = r + s;
        int64_t target = cost[n_chunks] * q / R, c = 0;
        if (q == R) c = n_chunks;
        else {
            while (c < n_chunks && cost[c] < target) c++;
            if (c > 0 && target - cost[c - 1] < cost[c] - target) c--;
        }
        cut[s] = c;
    }
    free(cost);
    *begin = cut[0] * chunk < n_ctx ? cut[0] * chunk : n_ctx;
    *end = cut[1] * chunk < n_ctx ? cut[1] * chunk : n_ctx;
}

int pl_mpi_gather(tbl_builder **tb, int n_tb, pl_report *rep, int64_t *planned_total, sd_err *err) {
    int rc = SD_OK;
    for (int si = 0; si < n_tb && !rc; si++) {
        void *img, **parts = NULL;
        size_t len, *lens = NULL;
        tbl_builder_image(tb[si], &img, &len);
        rc = sd_mpi_gather_bytes(img, len, &parts, &lens, err);
        free(img);
        if (rc || !parts) continue; /* not rank 0: its rows are sent */
        tbl_builder *full = NULL;
        for (int q = 0; q < sd_mpi_size() && !rc; q++) {
            tbl_table t;
            if ((rc = tbl_open_mem(&t, parts[q], lens[q], err))) {
                sd_err_prefix(err, "plan --mpi: the rows of rank %d", q);
                break;
            }
            if (!full) {
                tbl_params p = t.p;
                p.begin = 0;
                p.end = p.n_contexts;
                if (!(full = tbl_builder_new(&p, err))) rc = err ? err->code : SD_ERR_DATA;
            }
            if (!rc) rc = tbl_builder_absorb(full, &t, err);
            tbl_close(&t);
        }
        for (int q = 0; q < sd_mpi_size(); q++) free(parts[q]);
        free(parts);
        free(lens);
        if (rc) {
            tbl_builder_free(full);
            break;
        }
        tbl_builder_free(tb[si]);
        tb[si] = full;
    }
    /* the report's counts add up over ranks; the seconds are the slowest rank's */
    int64_t c[5 * (PL_MAX_SWEEP + 1) + 4];
    int k = 0;
    for (int si = 0; si < n_tb; si++) {
        const pl_result *x = &rep->r[si];
        c[k++] = x->contexts, c[k++] = x->samples, c[k++] = x->compliant, c[k++] = x->novel_unique, c[k++] = x->fallback;
    }
    c[k++] = rep->scored;
    c[k++] = *planned_total;
    c[k++] = rep->gen_rows;
    c[k++] = rep->align_rows;
    double s[2] = {rep->sample_s, rep->score_s}, flops = rep->flops;
    /* every rank takes part in the sums, whatever happened above (no rank waits alone) */
    sd_err e2 = {0};
    int rc2 = sd_mpi_sum_i64(c, (size_t)k, &e2);
    if (!rc2) rc2 = sd_mpi_max_f64(s, 2, &e2);
    if (!rc2) rc2 = sd_mpi_sum_f64(&flops, 1, &e2);
    if (rc) return rc;
    if (rc2) return *err = e2, rc2;
    k = 0;
    for (int si = 0; si < n_tb; si++) {
        pl_result *x = &rep->r[si];
        x->contexts = c[k++], x->samples = c[k++], x->compliant = c[k++], x->novel_unique = c[k++], x->fallback = c[k++];
    }
    rep->scored = c[k++];
    *planned_total = c[k++];
    rep->gen_rows = c[k++];
    rep->align_rows = c[k++];
    rep->flops = flops;
    rep->sample_s = s[0];
    rep->score_s = s[1];
    return SD_OK;
}
