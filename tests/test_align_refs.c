/* test_align_refs.c - md_tuple_refs, the references the alignment model is judged against, on a
 * tiny generated world: every figure is recomputed here by brute force, straight from the events
 * (for each tuple, replay every user's train events; no hashing, no sorting), and must agree.
 *  - truth: the candidate's mean true like-probability over the users who ever had the context;
 *  - halves: pooled positives / exposures of the tuple among users of each hashed half.
 * Runs the real `serendip` binary ($BUILD/serendip) to build the workspace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/dataset.h"
#include "serendip/journeys.h"
#include "serendip/models.h"
#include "serendip/taxonomy.h"
#include "serendip/world.h"

static char ws[256];

static int setup(void **state) {
    (void)state;
    const char *b = getenv("BUILD");
    char cmd[2048];
    snprintf(ws, sizeof ws, "/tmp/sd_test_align_refs_%d", (int)getpid());
    snprintf(cmd, sizeof cmd,
             "B=%s/serendip; rm -rf %s && $B world --ws %s --users 300 --items 180 --topics 3 --subtopics 3 >/dev/null 2>&1 && "
             "$B split --ws %s >/dev/null 2>&1 && $B cluster --ws %s --top 3 --clusters 9 >/dev/null 2>&1 && "
             "$B journeys --ws %s >/dev/null 2>&1",
             b ? b : "build", ws, ws, ws, ws, ws);
    return system(cmd) ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", ws);
    return system(cmd) ? -1 : 0;
}

static void *load(const char *name, int (*fn)(void *, const char *, sd_err *), void *obj) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", ws, name);
    sd_err err = {0};
    int rc = fn(obj, p, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SD_OK);
    return obj;
}
static int ds_load_(void *o, const char *p, sd_err *e) { return ds_load(o, p, e); }
static int tx_load_(void *o, const char *p, sd_err *e) { return tx_load(o, p, e); }
static int jr_load_(void *o, const char *p, sd_err *e) { return jr_load(o, p, e); }
static int sp_load_(void *o, const char *p, sd_err *e) { return ds_split_load(o, p, e); }
static int wt_load_(void *o, const char *p, sd_err *e) { return world_truth_load(o, p, e); }

static void test_refs_match_brute_force(void **state) {
    (void)state;
    ds_dataset ds;
    tx_taxonomy tx;
    jr_journeys jr;
    ds_split sp;
    world_truth wt;
    load(DS_FILE, ds_load_, &ds);
    load(TX_FILE, tx_load_, &tx);
    load(JR_FILE, jr_load_, &jr);
    load(DS_SPLIT_FILE, sp_load_, &sp);
    load(WORLD_TRUTH_FILE, wt_load_, &wt);
    const int k = jr.k, M = tx.n_clusters;
    assert_int_equal(k, 2);
    /* every tenth feedback tuple, and one tuple nobody was exposed to (its halves are NaN) */
    int n = 0;
    int32_t ctx[64 * 2], cand[64];
    for (int64_t f = 0; f < jr.n_feedback && n < 40; f += 10, n++) {
        memcpy(ctx + 2 * n, jr.feedback[f].ctx, 2 * sizeof(int32_t));
        cand[n] = jr.feedback[f].cand;
    }
    assert_true(n >= 10);
    double truth[64], ha[64], hb[64];
    sd_err err = {0};
    assert_int_equal(md_tuple_refs(ws, k, ctx, cand, n, truth, ha, hb, &err), SD_OK);

    /* the cluster -> subtopic map by majority vote (ties: the smaller subtopic), recomputed */
    int32_t sub[64];
    assert_true(M <= 64 && wt.n_sub <= 64);
    for (int32_t c = 0; c < M; c++) {
        int cnt[64] = {0}, best = 0;
        sub[c] = -1;
        for (int64_t i = 0; i < ds.n_items; i++) {
            int32_t s = world_item_subtopic(&wt, ds.item_ids[i]);
            if (tx.item_cluster[i] == c && s >= 0) cnt[s]++;
        }
        for (int s = 0; s < wt.n_sub; s++)
            if (cnt[s] > best) best = cnt[s], sub[c] = s;
    }
    int checked_truth = 0, checked_half = 0;
    for (int t = 0; t < n; t++) {
        double like = 0;
        int users = 0;
        int64_t e2[2] = {0, 0}, p2[2] = {0, 0};
        for (int64_t u = 0; u < ds.n_users; u++) {
            int32_t c2[2] = {-1, -1};
            int len = 0, had = 0, half = (int)(sd_mix64((uint64_t)ds.user_ids[u]) & 1);
            for (int64_t e = ds.user_off[u]; e < ds.user_off[u + 1]; e++) {
                const ds_event *ev = &ds.events[e];
                if (ds_split_of(&sp, u, ev->ts) != DS_TRAIN) break;
                int32_t c = tx.item_cluster[ev->item];
                if (c < 0) continue;
                int pos = ds_is_positive(&jr.rule, ev);
                if (len == 2 && c != c2[0] && c != c2[1] && c2[0] == ctx[2 * t] && c2[1] == ctx[2 * t + 1] && c == cand[t]) {
                    e2[half]++;
                    p2[half] += pos;
                }
                if (!pos) continue;
                /* last two distinct positive clusters, most recent last */
                if (len == 0) c2[len++] = c;
                else if (len == 1) {
                    if (c != c2[0]) c2[len++] = c;
                } else if (c == c2[0]) {
                    c2[0] = c2[1];
                    c2[1] = c;
                } else if (c != c2[1]) {
                    c2[0] = c2[1];
                    c2[1] = c;
                }
                had |= len == 2 && c2[0] == ctx[2 * t] && c2[1] == ctx[2 * t + 1];
            }
            if (had && sub[cand[t]] >= 0) {
                like += world_like_prob(&wt, ds.user_ids[u], sub[cand[t]]);
                users++;
            }
        }
        if (users) {
            assert_float_equal(truth[t], like / users, 1e-9);
            checked_truth++;
        } else {
            assert_true(isnan(truth[t]));
        }
        for (int h = 0; h < 2; h++) {
            double got = h ? hb[t] : ha[t];
            if (e2[h]) {
                assert_float_equal(got, (double)p2[h] / (double)e2[h], 1e-12);
                checked_half++;
            } else {
                assert_true(isnan(got));
            }
        }
    }
    assert_true(checked_truth >= n / 2);
    assert_true(checked_half >= n / 2);
    world_truth_free(&wt);
    ds_split_free(&sp);
    jr_free(&jr);
    tx_free(&tx);
    ds_free(&ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refs_match_brute_force),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
