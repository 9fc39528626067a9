/* serve_table.c - helper of bench/bench_serve.sh: writes an explore table for a workspace from its
 * empirical novel transitions (journeys.bin), so that the serving benchmark needs no trained
 * language models. For every valid context the slot holds the clusters users most often moved to
 * next (novel moves only), then the globally most frequent novel targets not in the context
 * (slot flagged TBL_FLAG_FALLBACK when only those). The serving cost does not depend on how a
 * slot was planned: a lookup is a lookup.
 *
 * usage: serve_table WS OUT.tbl [TOP] [SEED]   (SEED changes only the header, so two tables with
 * different seeds differ in bytes and hash: what the reload benchmark swaps between) */
#include <stdlib.h>
#include <string.h>

#include "serendip/journeys.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"

static const int64_t *g_cnt; /* qsort context */
static int by_count(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (g_cnt[x] != g_cnt[y]) return g_cnt[x] > g_cnt[y] ? -1 : 1;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: serve_table WS OUT.tbl [TOP] [SEED]\n");
        return 2;
    }
    int top = argc > 3 ? atoi(argv[3]) : 8;
    uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;
    sd_err err = {0};
    char *tp = sd_path_join(argv[1], TX_FILE), *jp = sd_path_join(argv[1], JR_FILE);
    tx_taxonomy tax;
    jr_journeys j;
    if (tx_load(&tax, tp, &err) || jr_load(&j, jp, &err)) {
        fprintf(stderr, "serve_table: %s\n", err.msg);
        return 1;
    }
    int32_t m = tax.n_clusters, k = j.k;
    int64_t nctx = jr_n_contexts(k, m);
    if (nctx < 0 || nctx * m > ((int64_t)1 << 31)) {
        fprintf(stderr, "serve_table: %d^%d contexts is too many for this helper\n", m, k);
        return 1;
    }
    int64_t *cnt = sd_calloc((size_t)(nctx * m), sizeof(int64_t)), *glob = sd_calloc((size_t)m, sizeof(int64_t));
    for (int64_t i = 0; i < j.n_transitions; i++) {
        const jr_transition *t = &j.transitions[i];
        if (!t->novel) continue;
        int64_t ci = jr_context_index(t->ctx, k, m);
        if (ci < 0 || t->next < 0 || t->next >= m) continue;
        cnt[ci * m + t->next]++;
        glob[t->next]++;
    }
    int32_t *gorder = sd_malloc((size_t)m * sizeof(int32_t)), *order = sd_malloc((size_t)m * sizeof(int32_t));
    for (int32_t c = 0; c < m; c++) gorder[c] = c;
    g_cnt = glob;
    qsort(gorder, (size_t)m, sizeof *gorder, by_count);
    tbl_params p = {.k = k, .n_clusters = m, .n_contexts = nctx, .top = top, .n_samples = 0, .temperature = 0,
                    .seed = seed, .tax_hash = tx_hash(&tax), .begin = 0, .end = nctx, .kind = TBL_KIND_LLM};
    tbl_builder *b = tbl_builder_new(&p, &err);
    if (!b) {
        fprintf(stderr, "serve_table: %s\n", err.msg);
        return 1;
    }
    tbl_stats st = {0};
    int32_t ctx[JR_K_MAX];
    tbl_entry e[TBL_TOP_MAX];
    for (int64_t ci = 0; ci < nctx; ci++) {
        jr_context_from_index(ci, k, m, ctx);
        if (!jr_context_valid(ctx, k, m)) continue;
        st.contexts_planned++;
        const int64_t *row = cnt + ci * m;
        int64_t total = 0;
        for (int32_t c = 0; c < m; c++) order[c] = c, total += row[c];
        g_cnt = row;
        qsort(order, (size_t)m, sizeof *order, by_count);
        int n = 0;
        for (int32_t x = 0; x < m && n < top && row[order[x]] > 0; x++)
            e[n].cluster = order[x], e[n].align_score = (float)(9.0 * (double)row[order[x]] / (double)total), e[n++].novelty_logprob = 0;
        int fallback = n == 0;
        for (int32_t x = 0; x < m && n < top; x++) {
            int32_t c = gorder[x], dup = 0;
            for (int q = 0; q < k; q++) dup |= ctx[q] == c;
            for (int q = 0; q < n; q++) dup |= e[q].cluster == c;
            if (!dup) e[n].cluster = c, e[n].align_score = 0, e[n++].novelty_logprob = 0;
        }
        st.contexts_fallback += fallback;
        if (tbl_builder_set(b, ci, e, n, fallback ? TBL_FLAG_FALLBACK : 0, &err)) {
            fprintf(stderr, "serve_table: %s\n", err.msg);
            return 1;
        }
    }
    tbl_builder_add_stats(b, &st);
    if (tbl_write(b, argv[2], &err)) {
        fprintf(stderr, "serve_table: %s\n", err.msg);
        return 1;
    }
    printf("serve_table: %lld contexts (%lld from the popularity fallback) -> %s\n", (long long)st.contexts_planned,
           (long long)st.contexts_fallback, argv[2]);
    tbl_builder_free(b);
    free(cnt), free(glob), free(gorder), free(order), free(tp), free(jp);
    jr_free(&j);
    tx_free(&tax);
    return 0;
}
