/* test_split.c - the per-user split (last:N and frac:F windows on hand-made users, one- and
 * two-event users, ties in time), split.json round trip, refusal of a split computed from another
 * dataset and of malformed per-user arrays, and the clamp of the global cut-offs near INT64_MAX.
 * Every expected boundary below is computed by hand from the rule in dataset.h: cut indices by
 * count, boundary = timestamp of the last event before the cut + 1. The last test checks that the
 * consumers (journeys, the retrieval model and its evaluation, clustering) use each user's own
 * windows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/dataset.h"
#include "serendip/journeys.h"
#include "serendip/retrieve.h"
#include "serendip/taxonomy.h"

static char *tmp_dir(void) {
    char *d = sd_strdup("/tmp/sd_test_splitXXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

/* Adds n events of raw user `user` at the given times (items 1, 2, ...). */
static void add_user(ds_builder *b, int64_t user, const int64_t *ts, int n) {
    for (int i = 0; i < n; i++) ds_builder_add_event(b, user, 100 + i, ts[i], 4.0f, DS_NO_VALUE);
}

/* Users in order of first appearance (dense index = order below):
 *   0 "five":   10 20 30 40 50
 *   1 "one":    100
 *   2 "two":    5 7
 *   3 "tiedup": 10 20 20 20        (the last three share a second)
 *   4 "burst":  60 60 60           (all events in one second)
 *   5 "early":  10 10 20 30        (the first two share a second) */
static void build_users(ds_dataset *d) {
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    add_user(b, 1, (int64_t[]){10, 20, 30, 40, 50}, 5);
    add_user(b, 2, (int64_t[]){100}, 1);
    add_user(b, 3, (int64_t[]){5, 7}, 2);
    add_user(b, 4, (int64_t[]){10, 20, 20, 20}, 4);
    add_user(b, 5, (int64_t[]){60, 60, 60}, 3);
    add_user(b, 6, (int64_t[]){10, 10, 20, 30}, 4);
    assert_int_equal(ds_builder_finish(b, d, &err), SD_OK);
    assert_int_equal(d->n_users, 6);
    assert_int_equal(ds_find_user(d, 1), 0);
    assert_int_equal(ds_find_user(d, 6), 5);
}

/* Events of user u in each window. */
static void user_windows(const ds_dataset *d, const ds_split *s, int64_t u, int out[3]) {
    out[0] = out[1] = out[2] = 0;
    for (int64_t k = d->user_off[u]; k < d->user_off[u + 1]; k++) out[ds_split_of(s, u, d->events[k].ts)]++;
}

#define EXPECT_WINDOWS(d, s, u, tr, va, te)            \
    do {                                               \
        int w_[3];                                     \
        user_windows(d, s, u, w_);                     \
        assert_int_equal(w_[DS_TRAIN], tr);            \
        assert_int_equal(w_[DS_VALID], va);            \
        assert_int_equal(w_[DS_TEST], te);             \
    } while (0)

static void test_last_n_boundaries(void **state) {
    (void)state;
    sd_err err = {0};
    ds_dataset d;
    build_users(&d);
    ds_split s;
    assert_int_equal(ds_split_per_user(&d, (ds_user_window){.last = 2}, (ds_user_window){0}, &s, &err), SD_OK);
    assert_int_equal(s.n_users, 6);
    /* five: cut at index 3 -> boundary 30 + 1; test {40, 50} */
    assert_int_equal(s.user_train_end[0], 31);
    assert_int_equal(s.user_valid_end[0], 31);
    EXPECT_WINDOWS(&d, &s, 0, 3, 0, 2);
    /* one event: all train, boundary 100 + 1 */
    assert_int_equal(s.user_train_end[1], 101);
    EXPECT_WINDOWS(&d, &s, 1, 1, 0, 0);
    /* two events with last:2: the first stays train (cut clamped to 1) -> boundary 6, test {7} */
    assert_int_equal(s.user_train_end[2], 6);
    EXPECT_WINDOWS(&d, &s, 2, 1, 0, 1);
    /* tiedup: cut at index 2 falls inside the tie at 20 -> boundary 21, the tie stays train */
    assert_int_equal(s.user_valid_end[3], 21);
    EXPECT_WINDOWS(&d, &s, 3, 4, 0, 0);
    /* burst: cut at 1 inside the tie -> boundary 61, all train */
    assert_int_equal(s.user_valid_end[4], 61);
    EXPECT_WINDOWS(&d, &s, 4, 3, 0, 0);
    /* early: cut at 2 -> boundary 10 + 1, test {20, 30} */
    assert_int_equal(s.user_valid_end[5], 11);
    EXPECT_WINDOWS(&d, &s, 5, 2, 0, 2);
    /* the global fields hold the largest boundaries */
    assert_int_equal(s.train_end, 101);
    assert_int_equal(s.valid_end, 101);
    assert_int_equal(ds_split_train_end(&s, 2), 6);
    ds_split_counts c;
    ds_split_count(&d, &s, &c);
    assert_int_equal(c.events[DS_TRAIN], 3 + 1 + 1 + 4 + 3 + 2);
    assert_int_equal(c.events[DS_TEST], 2 + 1 + 2);
    assert_int_equal(c.users[DS_TRAIN], 6);
    assert_int_equal(c.users[DS_TEST], 3);
    ds_split_free(&s);
    assert_null(s.user_train_end);

    /* last:3 with a valid window of last:1: test first, then valid, and event 0 stays train */
    assert_int_equal(ds_split_per_user(&d, (ds_user_window){.last = 3}, (ds_user_window){.last = 1}, &s, &err), SD_OK);
    /* five: test cut 2 (boundary 21), valid cut 1 (boundary 11): train {10}, valid {20}, test {30,40,50} */
    assert_int_equal(s.user_train_end[0], 11);
    assert_int_equal(s.user_valid_end[0], 21);
    EXPECT_WINDOWS(&d, &s, 0, 1, 1, 3);
    /* two: test cut clamped to 1, nothing left for valid */
    EXPECT_WINDOWS(&d, &s, 2, 1, 0, 1);
    /* tiedup: test cut 1 -> boundary 11: test {20,20,20}; valid empty */
    assert_int_equal(s.user_train_end[3], 11);
    assert_int_equal(s.user_valid_end[3], 11);
    EXPECT_WINDOWS(&d, &s, 3, 1, 0, 3);
    /* early: test cut 1 falls in the tie at 10 -> boundary 11: test {20, 30}, fewer than 3 */
    EXPECT_WINDOWS(&d, &s, 5, 2, 0, 2);
    ds_split_free(&s);
    ds_free(&d);
}

static void test_frac_boundaries(void **state) {
    (void)state;
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    int64_t ts[100];
    for (int i = 0; i < 100; i++) ts[i] = 1000 + 10 * i;
    add_user(b, 1, ts, 10);                   /* 0: 10 events 1000..1090 */
    add_user(b, 2, ts, 100);                  /* 1: 100 events */
    add_user(b, 3, (int64_t[]){1, 2, 3}, 3);  /* 2: 3 events */
    add_user(b, 4, (int64_t[]){1, 2}, 2);     /* 3: 2 events */
    add_user(b, 5, (int64_t[]){1}, 1);        /* 4: 1 event */
    ds_dataset d;
    assert_int_equal(ds_builder_finish(b, &d, &err), SD_OK);
    ds_split s;
    assert_int_equal(ds_split_per_user(&d, (ds_user_window){.frac = 0.3}, (ds_user_window){.frac = 0.2}, &s, &err), SD_OK);
    /* 10 events: test ceil(3) = 3, valid ceil(2) = 2: cuts 7 and 5 -> boundaries 1060+1, 1040+1 */
    assert_int_equal(s.user_train_end[0], 1041);
    assert_int_equal(s.user_valid_end[0], 1061);
    EXPECT_WINDOWS(&d, &s, 0, 5, 2, 3);
    /* 3 events: test ceil(0.9) = 1, valid ceil(0.6) = 1 */
    EXPECT_WINDOWS(&d, &s, 2, 1, 1, 1);
    /* 2 events: test ceil(0.6) = 1, valid would take the last train event: empty */
    EXPECT_WINDOWS(&d, &s, 3, 1, 0, 1);
    /* 1 event: all train, not evaluated */
    EXPECT_WINDOWS(&d, &s, 4, 1, 0, 0);
    ds_split_free(&s);
    /* 0.07 * 100 is 7.000000000000001 in double: the window is 7 events, not 8 */
    assert_int_equal(ds_split_per_user(&d, (ds_user_window){.frac = 0.07}, (ds_user_window){0}, &s, &err), SD_OK);
    EXPECT_WINDOWS(&d, &s, 1, 93, 0, 7);
    assert_int_equal(s.user_train_end[1], 1000 + 10 * 92 + 1);
    /* 0.9 of 2 events = 2, clamped so that one train event stays */
    ds_split_free(&s);
    assert_int_equal(ds_split_per_user(&d, (ds_user_window){.frac = 0.9}, (ds_user_window){0}, &s, &err), SD_OK);
    EXPECT_WINDOWS(&d, &s, 3, 1, 0, 1);
    EXPECT_WINDOWS(&d, &s, 0, 1, 0, 9);
    ds_split_free(&s);
    /* an empty or doubly given test window is a usage error */
    assert_int_equal(ds_split_per_user(&d, (ds_user_window){0}, (ds_user_window){0}, &s, &err), SD_ERR_USAGE);
    assert_int_equal(ds_split_per_user(&d, (ds_user_window){.last = 1, .frac = 0.5}, (ds_user_window){0}, &s, &err), SD_ERR_USAGE);
    assert_null(s.user_train_end);
    ds_free(&d);
}

static void test_window_parse(void **state) {
    (void)state;
    sd_err err = {0};
    ds_user_window w;
    assert_int_equal(ds_user_window_parse("last:5", &w, &err), SD_OK);
    assert_int_equal(w.last, 5);
    assert_true(w.frac == 0);
    assert_int_equal(ds_user_window_parse("frac:0.25", &w, &err), SD_OK);
    assert_true(w.frac == 0.25);
    assert_int_equal(w.last, 0);
    const char *bad[] = {"last:0", "last:-1", "last:", "last:3x", "frac:1", "frac:0", "frac:abc", "5", "first:2", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(ds_user_window_parse(bad[i], &w, &err), SD_ERR_USAGE);
        assert_non_null(strstr(err.msg, bad[i]));
    }
    char buf[32];
    ds_user_window_format((ds_user_window){.last = 7}, buf, sizeof buf);
    assert_string_equal(buf, "last:7");
    ds_user_window_format((ds_user_window){.frac = 0.1}, buf, sizeof buf);
    assert_string_equal(buf, "frac:0.1");
    ds_user_window_format((ds_user_window){0}, buf, sizeof buf);
    assert_string_equal(buf, "none");
}

/* Saves d as dir/dataset.bin and returns its file hash. */
static uint64_t save_dataset(const ds_dataset *d, const char *dir) {
    sd_err err = {0};
    char *p = sd_path_join(dir, DS_FILE);
    assert_int_equal(ds_save(d, p, &err), SD_OK);
    uint64_t h = 0;
    assert_int_equal(sd_hash_file(p, &h, &err), SD_OK);
    free(p);
    return h;
}

static void test_round_trip_and_stale(void **state) {
    (void)state;
    sd_err err = {0};
    ds_dataset d;
    build_users(&d);
    char *dir = tmp_dir(), *sp = sd_path_join(dir, DS_SPLIT_FILE), *dp = sd_path_join(dir, DS_FILE);
    ds_split w, r;
    assert_int_equal(ds_split_per_user(&d, (ds_user_window){.last = 3}, (ds_user_window){.frac = 0.25}, &w, &err), SD_OK);
    w.dataset_hash = save_dataset(&d, dir);
    assert_int_equal(ds_split_save(&w, sp, &err), SD_OK);
    assert_int_equal(ds_split_load(&r, sp, &err), SD_OK);
    assert_int_equal(r.n_users, 6);
    for (int u = 0; u < 6; u++) {
        assert_int_equal(r.user_train_end[u], w.user_train_end[u]);
        assert_int_equal(r.user_valid_end[u], w.user_valid_end[u]);
    }
    assert_int_equal(r.train_end, w.train_end);
    assert_int_equal(r.valid_end, w.valid_end);
    assert_int_equal(r.user_test.last, 3);
    assert_true(r.user_valid.frac == 0.25);
    assert_true(r.dataset_hash == w.dataset_hash);
    char desc[256];
    ds_split_describe(&r, desc, sizeof desc);
    assert_string_equal(desc, "per-user: test = each user's last:3, valid = frac:0.25");
    ds_split_free(&r);

    /* a global split records the hash too, and round-trips */
    ds_split g = {.train_end = 20, .valid_end = 30, .dataset_hash = w.dataset_hash};
    assert_int_equal(ds_split_save(&g, sp, &err), SD_OK);
    assert_int_equal(ds_split_load(&r, sp, &err), SD_OK);
    assert_null(r.user_train_end);
    assert_int_equal(r.train_end, 20);
    assert_int_equal(r.valid_end, 30);
    assert_int_equal(ds_split_save(&w, sp, &err), SD_OK);

    /* another dataset in the workspace: the split is refused with the stage to rerun */
    ds_builder *b = ds_builder_new();
    add_user(b, 1, (int64_t[]){10, 20}, 2);
    ds_dataset other;
    assert_int_equal(ds_builder_finish(b, &other, &err), SD_OK);
    save_dataset(&other, dir);
    assert_int_equal(ds_split_load(&r, sp, &err), SD_ERR_STATE);
    assert_non_null(strstr(err.msg, "rerun 'serendip split'"));
    assert_null(r.user_train_end);
    ds_free(&other);
    /* no dataset beside it: refused as well */
    unlink(dp);
    assert_int_equal(ds_split_load(&r, sp, &err), SD_ERR_STATE);
    assert_non_null(strstr(err.msg, "missing"));

    unlink(sp);
    rmdir(dir);
    free(sp), free(dp), free(dir);
    ds_split_free(&w);
    ds_free(&d);
}

/* Writes text to path and expects ds_split_load to refuse it with SD_ERR_FORMAT naming `field`. */
static void expect_refused(const char *path, const char *text, const char *field) {
    sd_err err = {0};
    ds_split r = {0};
    assert_int_equal(sd_write_file_atomic(path, text, strlen(text), &err), SD_OK);
    int rc = ds_split_load(&r, path, &err);
    if (rc != SD_ERR_FORMAT || !strstr(err.msg, field)) fail_msg("%s: rc %d, message '%s', expected one naming %s", text, rc, err.msg, field);
    assert_null(r.user_train_end);
}

static void test_malformed_refused(void **state) {
    (void)state;
    char *dir = tmp_dir(), *p = sd_path_join(dir, DS_SPLIT_FILE);
#define HEAD "{\"format\":\"serendip-split\",\"version\":2,\"kind\":\"per-user\",\"test\":\"last:1\",\"valid\":\"none\","
    expect_refused(p, HEAD "\"users\":3,\"user_train_end\":[1,2],\"user_valid_end\":[1,2,3]}", "\"user_train_end\" has 2 entries");
    expect_refused(p, HEAD "\"users\":3,\"user_train_end\":[1,2,3],\"user_valid_end\":[1,2,3,4]}", "\"user_valid_end\" has 4 entries");
    expect_refused(p, HEAD "\"users\":2,\"user_train_end\":[1,2.5],\"user_valid_end\":[1,3]}", "\"user_train_end\"[1]");
    expect_refused(p, HEAD "\"users\":2,\"user_train_end\":[1,\"2\"],\"user_valid_end\":[1,3]}", "\"user_train_end\"[1]");
    expect_refused(p, HEAD "\"users\":2,\"user_train_end\":[1,5],\"user_valid_end\":[1,3]}", "\"user_valid_end\"[1]");
    expect_refused(p, HEAD "\"user_train_end\":[1],\"user_valid_end\":[1]}", "\"users\"");
    expect_refused(p, HEAD "\"users\":1,\"user_valid_end\":[1]}", "\"user_train_end\" missing");
    expect_refused(p, HEAD "\"users\":1,\"user_train_end\":[1e300],\"user_valid_end\":[1]}", "\"user_train_end\"[0]");
    expect_refused(p, "{\"version\":2,\"kind\":\"per-user\",\"test\":\"first:1\",\"valid\":\"none\",\"users\":0,"
                      "\"user_train_end\":[],\"user_valid_end\":[]}", "\"test\"");
    expect_refused(p, "{\"version\":2,\"kind\":\"sideways\",\"train_end\":1,\"valid_end\":2}", "\"kind\"");
    expect_refused(p, "{\"version\":2,\"train_end\":1,\"valid_end\":2}", "\"kind\"");
    expect_refused(p, "{\"version\":2,\"kind\":\"global\",\"dataset_hash\":\"xyz\",\"train_end\":1,\"valid_end\":2}", "\"dataset_hash\"");
    expect_refused(p, "{\"version\":3,\"kind\":\"global\",\"train_end\":1,\"valid_end\":2}", "\"version\"");
    /* a version-1 file (global, no hash) still loads: hand-written splits in tests and benches */
    sd_err err = {0};
    ds_split r;
    const char *v1 = "{\"format\":\"serendip-split\",\"version\":1,\"train_end\":5,\"valid_end\":9}";
    assert_int_equal(sd_write_file_atomic(p, v1, strlen(v1), &err), SD_OK);
    assert_int_equal(ds_split_load(&r, p, &err), SD_OK);
    assert_int_equal(r.valid_end, 9);
    /* a zero-user per-user split is well formed */
    const char *empty = HEAD "\"users\":0,\"user_train_end\":[],\"user_valid_end\":[]}";
    assert_int_equal(sd_write_file_atomic(p, empty, strlen(empty), &err), SD_OK);
    assert_int_equal(ds_split_load(&r, p, &err), SD_OK);
    assert_int_equal(r.n_users, 0);
    ds_split_free(&r);
#undef HEAD
    unlink(p);
    rmdir(dir);
    free(p), free(dir);
}

/* Issue 11: timestamps near INT64_MAX and a range wider than INT64_MAX used to overflow. */
static void test_overflow_clamped(void **state) {
    (void)state;
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    for (int i = 0; i <= 10; i++) ds_builder_add_event(b, 1, i, INT64_MAX - 10 + i, 4.0f, DS_NO_VALUE);
    ds_dataset d;
    assert_int_equal(ds_builder_finish(b, &d, &err), SD_OK);
    ds_split s;
    /* span 11 s: cuts at ts_min + floor(0.8 * 11) = +8 and ts_min + floor(0.9 * 11) = +9 */
    assert_int_equal(ds_split_by_fraction(&d, 0.8, 0.1, &s, &err), SD_OK);
    assert_true(s.train_end == INT64_MAX - 2);
    assert_true(s.valid_end == INT64_MAX - 1);
    ds_split_counts c;
    ds_split_count(&d, &s, &c);
    assert_int_equal(c.events[DS_TRAIN], 8);
    assert_int_equal(c.events[DS_VALID], 1);
    assert_int_equal(c.events[DS_TEST], 2);
    /* a fraction of 1 saturates at INT64_MAX instead of ts_max + 1 */
    assert_int_equal(ds_split_by_fraction(&d, 1.0, 0.0, &s, &err), SD_OK);
    assert_true(s.train_end == INT64_MAX && s.valid_end == INT64_MAX);
    /* split.json cannot hold such a boundary exactly: a clear refusal, not a file load refuses */
    char *dir = tmp_dir(), *p = sd_path_join(dir, DS_SPLIT_FILE);
    assert_int_equal(ds_split_save(&s, p, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "2^53"));
    assert_int_equal(sd_file_exists(p), 0);
    /* per user: the last event before the cut at INT64_MAX - 1 gives the boundary INT64_MAX */
    assert_int_equal(ds_split_per_user(&d, (ds_user_window){.last = 1}, (ds_user_window){0}, &s, &err), SD_OK);
    assert_true(s.user_train_end[0] == INT64_MAX);
    EXPECT_WINDOWS(&d, &s, 0, 10, 0, 1);
    assert_int_equal(ds_split_save(&s, p, &err), SD_ERR_USAGE);
    ds_split_free(&s);
    ds_free(&d);

    /* the whole int64 range: span 2^64, the middle is 0 */
    b = ds_builder_new();
    ds_builder_add_event(b, 1, 1, INT64_MIN, 4.0f, DS_NO_VALUE);
    ds_builder_add_event(b, 1, 2, INT64_MAX, 4.0f, DS_NO_VALUE);
    assert_int_equal(ds_builder_finish(b, &d, &err), SD_OK);
    assert_int_equal(ds_split_by_fraction(&d, 0.5, 0.5, &s, &err), SD_OK);
    assert_true(s.train_end == 0);
    assert_true(s.valid_end == INT64_MAX);
    ds_free(&d);
    rmdir(dir);
    free(p), free(dir);
}


/* Consumers under a per-user split. 3 clusters, items 0..5 (raw 10+i) in cluster i/2, all ratings
 * positive; --per-user last:1:
 *   user A: 10 i0 (c0) | 20 i2 (c1) | 30 i4 (c2) || 40 i1 (c0)        boundary 31
 *   user B: 50 i5 (c2, rating 1) | 100 i0 | 200 i2 | 300 i4 | 400 i1 || 500 i3 (c1)   boundary 401
 * Train journeys A: 0 1 2, B: 0 1 2 0 (the negative makes no step) -> transitions (0,1)->2 twice
 * and (1,2)->0 once = 3; one global cut at the largest boundary (401) would also take A's event
 * at 40: 4 transitions. Train events 3 + 5 = 8 (global cut at 401: 9). Retrieval test cases: A's
 * i1 at 40 and B's i3 at 500 (both positive, unseen, with history) = 2; the old global test
 * (ts >= 401) found 1. */
static void test_consumers_use_each_users_windows(void **state) {
    (void)state;
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    int64_t ev[][3] = {{1, 10, 10}, {1, 12, 20}, {1, 14, 30}, {1, 11, 40},
                       {2, 10, 100}, {2, 12, 200}, {2, 14, 300}, {2, 11, 400}, {2, 13, 500}};
    for (size_t i = 0; i < sizeof ev / sizeof *ev; i++) ds_builder_add_event(b, ev[i][0], ev[i][1], ev[i][2], 5.0f, DS_NO_VALUE);
    ds_builder_add_event(b, 2, 15, 50, 1.0f, DS_NO_VALUE); /* item 5 exists (a negative, B's train) */
    ds_dataset d;
    assert_int_equal(ds_builder_finish(b, &d, &err), SD_OK);
    ds_split s;
    assert_int_equal(ds_split_per_user(&d, (ds_user_window){.last = 1}, (ds_user_window){0}, &s, &err), SD_OK);
    assert_int_equal(s.user_train_end[ds_find_user(&d, 1)], 31);
    assert_int_equal(s.user_train_end[ds_find_user(&d, 2)], 401);

    tx_taxonomy tax = {.n_top = 1, .n_clusters = 3, .n_items = d.n_items};
    int32_t item_cluster[6], parent[3] = {0, 0, 0}, size[3] = {2, 2, 2}, members[6];
    int64_t member_off[4] = {0, 2, 4, 6};
    char *desc[3] = {"war, drama", "space, alien", "comedy, family"}, *top[1] = {"all"};
    assert_int_equal(d.n_items, 6);
    for (int i = 0; i < 6; i++) {
        int32_t it = (int32_t)ds_find_item(&d, 10 + i);
        item_cluster[it] = i / 2;
        members[i] = it;
    }
    tax.item_cluster = item_cluster, tax.parent = parent, tax.size = size, tax.members = members;
    tax.member_off = member_off, tax.desc = desc, tax.top_desc = top;

    jr_journeys j;
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    assert_int_equal(jr_build(&d, &s, &tax, &rule, 2, &j, &err), SD_OK);
    assert_int_equal(j.n_transitions, 3);
    assert_int_equal(j.train_end, 401); /* the largest user boundary */
    jr_free(&j);

    rt_options o = RT_OPTIONS_DEFAULT;
    o.dim = 4, o.epochs = 1;
    rt_model m;
    assert_int_equal(rt_train_data(&d, &s, &o, &m, &err), SD_OK);
    assert_int_equal(m.n_train_events, 8);
    rt_eval e;
    assert_int_equal(rt_evaluate(&m, &d, &s, &tax, &rule, 10, &e, &err), SD_OK);
    assert_int_equal(e.cases, 2);
    rt_close(&m);

    tx_config cfg = {.n_top = 1, .n_clusters = 2, .dim = 2, .window = 0, .iters = 5, .seed = 1};
    tx_taxonomy built;
    tx_stats st;
    assert_int_equal(tx_build(&d, &s, &cfg, &built, &st, &err), SD_OK);
    assert_int_equal(st.n_train_events, 8);
    tx_free(&built);
    ds_split_free(&s);
    ds_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_last_n_boundaries),
        cmocka_unit_test(test_frac_boundaries),
        cmocka_unit_test(test_window_parse),
        cmocka_unit_test(test_round_trip_and_stale),
        cmocka_unit_test(test_malformed_refused),
        cmocka_unit_test(test_overflow_clamped),
        cmocka_unit_test(test_consumers_use_each_users_windows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
