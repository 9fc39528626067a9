/* baselines.c - the non-LLM arms the explore tables are judged against: a random novel cluster,
 * the most popular novel cluster, and the empirical transition table (argmax P(next | context)
 * from train-window transitions, with back-off). "Novel" here means what the planner can know:
 * not in the context. Each is an ev_serve_fn, so it is scored by exactly the same code as the
 * LLM tables. */
#include "serendip/eval.h"

#include <stdlib.h>
#include <string.h>

const char *const ev_baseline_names[3] = {"random novel cluster", "most popular novel cluster",
                                          "empirical transition table"};

static const ev_data *sort_data; /* qsort has no context argument in C11 */
static int cmp_pop_desc(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    int64_t px = sort_data->pop[x], py = sort_data->pop[y];
    if (px != py) return px > py ? -1 : 1;
    return (x > y) - (x < y);
}

void ev_baseline_init(ev_baseline *b, ev_baseline_kind kind, const ev_data *d, uint64_t seed) {
    memset(b, 0, sizeof *b);
    b->kind = kind;
    b->d = d;
    b->seed = seed;
    b->by_pop = sd_malloc(sizeof(int32_t) * (size_t)(d->M ? d->M : 1));
    for (int32_t c = 0; c < d->M; c++) b->by_pop[c] = c;
    sort_data = d;
    qsort(b->by_pop, (size_t)d->M, sizeof(int32_t), cmp_pop_desc);
    sort_data = NULL;
}

void ev_baseline_free(ev_baseline *b) {
    free(b->by_pop);
    memset(b, 0, sizeof *b);
}

static int contains(const int32_t *a, int n, int32_t c) {
    for (int i = 0; i < n; i++)
        if (a[i] == c) return 1;
    return 0;
}

/* Appends to out[*got..max) the clusters not in ctx nor already in out, best first by the count
 * of (prefix, c) in map (counts > 0 only); ties by popularity rank, then id. */
static void fill_from_map(const ev_baseline *b, const ev_tuple_map *map, const int32_t *prefix, int plen,
                          const int32_t *ctx, int k, int32_t *out, int *got, int max) {
    const ev_data *d = b->d;
    while (*got < max) {
        int32_t best = -1;
        int64_t best_n = 0;
        int32_t t[EV_MAX_K + 1];
        memcpy(t, prefix, sizeof(int32_t) * (size_t)plen);
        for (int32_t r = 0; r < d->M; r++) { /* by popularity rank: the first max wins ties */
            int32_t c = b->by_pop[r];
            if (contains(ctx, k, c) || contains(out, *got, c)) continue;
            t[plen] = c;
            int64_t n, unused;
            ev_tuple_get(map, t, plen + 1, &n, &unused);
            if (n > best_n) {
                best_n = n;
                best = c;
            }
        }
        if (best < 0) return;
        out[(*got)++] = best;
    }
}

int ev_baseline_serve(void *state, const int32_t *ctx, int k, int32_t *out, int max) {
    const ev_baseline *b = state;
    const ev_data *d = b->d;
    int got = 0;
    switch (b->kind) {
    case EV_BASE_RANDOM: {
        /* seeded by (seed, context): the same context always gets the same clusters */
        sd_rng r;
        sd_rng_seed(&r, sd_hash64(ctx, sizeof(int32_t) * (size_t)k, b->seed ^ SD_HASH_SEED));
        int avail = 0;
        for (int32_t c = 0; c < d->M; c++) avail += !contains(ctx, k, c);
        while (got < max && got < avail) {
            int32_t c = (int32_t)sd_rng_below(&r, (uint32_t)d->M);
            if (contains(ctx, k, c) || contains(out, got, c)) continue;
            out[got++] = c;
        }
        break;
    }
    case EV_BASE_TRANSITION:
        if (k == d->K) fill_from_map(b, d->trans, ctx, k, ctx, k, out, &got, max);
        if (k >= 1) fill_from_map(b, d->trans1, ctx + k - 1, 1, ctx, k, out, &got, max);
        /* then back off to popularity for whatever is left */
        /* fall through */
    case EV_BASE_POPULAR:
        for (int32_t r = 0; r < d->M && got < max; r++) {
            int32_t c = b->by_pop[r];
            if (!contains(ctx, k, c) && !contains(out, got, c)) out[got++] = c;
        }
        break;
    }
    return got;
}
