/* bench_answer.c - an_answer over every user of a workspace, three times, one thread: time per
 * answer, answer size, and the share of users with a full context served a fallback cluster.
 * Usage: build/bench/bench_answer [WS=ws-demo] [clusters=5] [items=5]; without the workspace (make
 * demo builds ws-demo) it prints SKIP and succeeds. */
#include <stdio.h>
#include <stdlib.h>
#include "serendip/answer.h"
int main(int argc, char **argv) {
    const char *ws = argc > 1 ? argv[1] : "ws-demo";
    char *tbl = sd_path_join(ws, TBL_FILE);
    int have = sd_file_exists(tbl);
    free(tbl);
    if (!have) {
        printf("SKIP: bench_answer: no %s/%s (run `make demo`, or give a planned workspace)\n", ws, TBL_FILE);
        return 0;
    }
    sd_err err = {0};
    an_workspace *w;
    double t0 = sd_now();
    if (an_open(&w, ws, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double topen = sd_now() - t0;
    int n = argc > 2 ? atoi(argv[2]) : 5, k = argc > 3 ? atoi(argv[3]) : 5;
    int64_t full = 0, any_fb = 0, all_fb = 0, clusters = 0, fb = 0;
    size_t bytes = 0;
    t0 = sd_now();
    int reps = 3;
    for (int r = 0; r < reps; r++)
        for (int64_t u = 0; u < w->ds->n_users; u++) {
            an_query q = {.kind = AN_QUERY_USER, .user = w->ds->user_ids[u], .clusters = n, .items_per = k};
            an_result res;
            if (an_answer(w, NULL, 1, &q, &res, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            if (r == 0 && res.context_complete) {
                full++;
                any_fb += res.n_fallback > 0;
                all_fb += res.n_planned == 0;
                clusters += res.n_planned + res.n_fallback;
                fb += res.n_fallback;
            }
            bytes += res.len;
            an_result_free(&res);
        }
    double t = sd_now() - t0;
    int64_t na = reps * w->ds->n_users;
    printf("open %.3f s; %lld answers (n=%d, k=%d) in %.3f s: %.1f us/answer, %.0f bytes/answer\n", topen, (long long)na, n, k,
           t, 1e6 * t / na, (double)bytes / na);
    if (full)
        printf("users with a full context %lld: with >= 1 fallback cluster %.2f%%, only fallbacks %.2f%%; fallback share of "
               "clusters %.2f%%\n",
               (long long)full, 100.0 * any_fb / full, 100.0 * all_fb / full, clusters ? 100.0 * fb / clusters : 0.0);
    an_free(w);
    return 0;
}
