/* test_dataset.c - dataset builder, dataset.bin save/load round trip, refusal of truncated /
 * foreign / wrong-version files, raw-id lookups, temporal split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>

#include "serendip/dataset.h"

static char *tmp_dir(void) {
    char *d = sd_strdup("/tmp/sd_test_datasetXXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

/* A small dataset whose expected content is known by construction. Users 30, 10, 20 (first
 * appearance order), items 7 (described), 5 (described), 99 (no metadata), 6 (described, no events). */
static void build_small(ds_dataset *d) {
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    assert_int_equal(ds_builder_add_item(b, 7, "Seven (1995)", "Crime|Thriller", &err), SD_OK);
    assert_int_equal(ds_builder_add_item(b, 5, "Five", "Drama", &err), SD_OK);
    ds_builder_add_event(b, 30, 7, 300, 4.5f, DS_NO_VALUE);
    ds_builder_add_event(b, 10, 5, 200, 3.0f, DS_NO_VALUE);
    ds_builder_add_event(b, 30, 5, 100, DS_NO_VALUE, 0.5f);
    ds_builder_add_event(b, 20, 99, 150, 1.0f, DS_NO_VALUE);
    ds_builder_add_event(b, 30, 99, 100, 2.0f, DS_NO_VALUE); /* same ts as (30,5): ordered by item index */
    assert_int_equal(ds_builder_add_item(b, 6, "Six", "", &err), SD_OK);
    assert_int_equal(ds_builder_finish(b, d, &err), SD_OK);
}

static void check_small(const ds_dataset *d) {
    assert_int_equal(d->n_users, 3);
    assert_int_equal(d->n_items, 4);
    assert_int_equal(d->n_events, 5);
    assert_int_equal(d->n_unknown_items, 1);
    assert_int_equal(d->ts_min, 100);
    assert_int_equal(d->ts_max, 300);
    /* dense ids in order of first appearance */
    assert_int_equal(d->user_ids[0], 30);
    assert_int_equal(d->user_ids[1], 10);
    assert_int_equal(d->user_ids[2], 20);
    assert_int_equal(d->item_ids[0], 7);
    assert_int_equal(d->item_ids[1], 5);
    assert_int_equal(d->item_ids[2], 99);
    assert_int_equal(d->item_ids[3], 6);
    assert_int_equal(d->user_off[0], 0);
    assert_int_equal(d->user_off[1], 3);
    assert_int_equal(d->user_off[2], 4);
    assert_int_equal(d->user_off[3], 5);
    /* user 30's events sorted by (ts, item): (100, item 5 = idx 1), (100, item 99 = idx 2), (300, item 7 = idx 0) */
    assert_int_equal(d->events[0].item, 1);
    assert_true(d->events[0].rating == DS_NO_VALUE && d->events[0].watch == 0.5f);
    assert_int_equal(d->events[1].item, 2);
    assert_int_equal(d->events[2].item, 0);
    assert_true(d->events[2].rating == 4.5f);
    assert_int_equal(d->events[3].user, 1);
    assert_int_equal(d->events[3].ts, 200);
    assert_int_equal(d->events[4].user, 2);
    assert_string_equal(ds_item_title(d, 0), "Seven (1995)");
    assert_string_equal(ds_item_tags(d, 0), "Crime|Thriller");
    assert_string_equal(ds_item_title(d, 2), "");
    assert_int_equal(d->item_meta[2], 0);
    assert_int_equal(d->item_meta[3], 1);
    assert_string_equal(ds_item_title(d, 3), "Six");
    assert_int_equal(ds_find_user(d, 10), 1);
    assert_int_equal(ds_find_user(d, 20), 2);
    assert_int_equal(ds_find_user(d, 30), 0);
    assert_int_equal(ds_find_user(d, 11), -1);
    assert_int_equal(ds_find_item(d, 99), 2);
    assert_int_equal(ds_find_item(d, 6), 3);
    assert_int_equal(ds_find_item(d, 8), -1);
}

static void test_builder_and_round_trip(void **state) {
    (void)state;
    ds_dataset d, l;
    build_small(&d);
    check_small(&d);
    char *dir = tmp_dir(), *p = sd_path_join(dir, DS_FILE);
    sd_err err = {0};
    assert_int_equal(ds_save(&d, p, &err), SD_OK);
    assert_int_equal(ds_load(&l, p, &err), SD_OK);
    check_small(&l);
    /* saving a loaded dataset gives the same bytes */
    char *q = sd_path_join(dir, "again.bin");
    assert_int_equal(ds_save(&l, q, &err), SD_OK);
    char *a, *b;
    size_t na, nb;
    assert_int_equal(sd_read_file(p, &a, &na, &err), SD_OK);
    assert_int_equal(sd_read_file(q, &b, &nb, &err), SD_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);
    ds_free(&d);
    ds_free(&l);
    unlink(p);
    unlink(q);
    rmdir(dir);
    free(p);
    free(q);
    free(dir);
}

static void test_duplicate_catalogue_entry(void **state) {
    (void)state;
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    assert_int_equal(ds_builder_add_item(b, 1, "A", "x", &err), SD_OK);
    assert_int_equal(ds_builder_add_item(b, 1, "B", "y", &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "item 1"));
    ds_builder_free(b);
}

/* Writes bytes to path, tries ds_load, expects SD_ERR_FORMAT with a message containing want. */
static void expect_refused(const char *path, const void *bytes, size_t n, const char *want) {
    sd_err err = {0};
    assert_int_equal(sd_write_file_atomic(path, bytes, n, &err), SD_OK);
    ds_dataset d;
    assert_int_equal(ds_load(&d, path, &err), SD_ERR_FORMAT);
    if (!strstr(err.msg, want)) fail_msg("message '%s' lacks '%s'", err.msg, want);
    assert_non_null(strstr(err.msg, path));
    assert_null(d.events);
}

static void test_bad_files_refused(void **state) {
    (void)state;
    ds_dataset d;
    build_small(&d);
    char *dir = tmp_dir(), *p = sd_path_join(dir, DS_FILE), *q = sd_path_join(dir, "bad.bin");
    sd_err err = {0};
    assert_int_equal(ds_save(&d, p, &err), SD_OK);
    ds_free(&d);
    char *buf;
    size_t n;
    assert_int_equal(sd_read_file(p, &buf, &n, &err), SD_OK);
    /* every truncation is refused (not just the obvious ones) */
    for (size_t cut = 0; cut < n; cut += (cut < 300 ? 1 : 7)) expect_refused(q, buf, cut, cut < 8 ? "not a serendip dataset" : cut < 256 ? "truncated" : "truncated");
    expect_refused(q, "userId,movieId,rating,timestamp\n1,2,3.5,4\n", 42, "not a serendip dataset");
    char *v = sd_malloc(n);
    memcpy(v, buf, n);
    v[8] = 2; /* version 2 */
    expect_refused(q, v, n, "version 2");
    memcpy(v, buf, n);
    int64_t big = 1000000;
    memcpy(v + 24, &big, 8); /* n_users */
    expect_refused(q, v, n, "");
    /* a corrupt event (item index out of range) */
    memcpy(v, buf, n);
    int32_t bad_item = 77;
    memcpy(v + 256 + 4, &bad_item, 4);
    expect_refused(q, v, n, "event 0 is corrupt");
    /* trailing garbage */
    char *w = sd_malloc(n + 8);
    memcpy(w, buf, n);
    memset(w + n, 0, 8);
    expect_refused(q, w, n + 8, "trailing bytes");
    /* a missing file is a state error, not a format error */
    char *none = sd_path_join(dir, "none.bin");
    assert_int_equal(ds_load(&d, none, &err), SD_ERR_STATE);
    free(none);
    free(w);
    free(v);
    free(buf);
    unlink(p);
    unlink(q);
    rmdir(dir);
    free(p);
    free(q);
    free(dir);
}

static void test_split_fraction_counts_and_file(void **state) {
    (void)state;
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    /* ts 0..99, one event each, users alternate 1/2 */
    for (int t = 0; t < 100; t++) ds_builder_add_event(b, 1 + t % 2, t, t, 4.0f, DS_NO_VALUE);
    ds_dataset d;
    assert_int_equal(ds_builder_finish(b, &d, &err), SD_OK);
    ds_split s;
    assert_int_equal(ds_split_by_fraction(&d, 0.8, 0.1, &s, &err), SD_OK);
    assert_int_equal(s.train_end, 80);
    assert_int_equal(s.valid_end, 90);
    ds_split_counts c;
    ds_split_count(&d, &s, &c);
    assert_int_equal(c.events[DS_TRAIN], 80);
    assert_int_equal(c.events[DS_VALID], 10);
    assert_int_equal(c.events[DS_TEST], 10);
    assert_int_equal(c.users[DS_TEST], 2);
    assert_int_equal(ds_split_by_fraction(&d, 1.0, 0.0, &s, &err), SD_OK);
    ds_split_count(&d, &s, &c);
    assert_int_equal(c.events[DS_TRAIN], 100);
    assert_int_equal(ds_split_by_fraction(&d, 0.9, 0.2, &s, &err), SD_ERR_USAGE);
    assert_int_equal(ds_split_by_fraction(&d, 0.0, 0.2, &s, &err), SD_ERR_USAGE);

    char *dir = tmp_dir(), *p = sd_path_join(dir, DS_SPLIT_FILE);
    ds_split w = {.train_end = 1260759144, .valid_end = 1400000000}, r = {0};
    assert_int_equal(ds_split_save(&w, p, &err), SD_OK);
    assert_int_equal(ds_split_load(&r, p, &err), SD_OK);
    assert_int_equal(r.train_end, w.train_end);
    assert_int_equal(r.valid_end, w.valid_end);
    assert_int_equal(sd_write_file_atomic(p, "{\"version\":1,\"train_end\":5.5,\"valid_end\":9}", 43, &err), SD_OK);
    assert_int_equal(ds_split_load(&r, p, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "train_end"));
    assert_int_equal(sd_write_file_atomic(p, "[1,2]", 5, &err), SD_OK);
    assert_int_equal(ds_split_load(&r, p, &err), SD_ERR_FORMAT);
    unlink(p);
    assert_int_equal(ds_split_load(&r, p, &err), SD_ERR_STATE);
    rmdir(dir);
    free(p);
    free(dir);
    ds_free(&d);
}

/* Random corruption of a valid image: every mutant is either refused with SD_ERR_FORMAT or, when
 * accepted (e.g. a changed rating), satisfies every invariant later stages index with. Run under
 * `make asan` this also proves the accepted images are read in bounds. */
static void test_corrupted_images_refused_or_consistent(void **state) {
    (void)state;
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    for (int i = 0; i < 12; i++) {
        char t[32];
        snprintf(t, sizeof t, "title %d", i);
        assert_int_equal(ds_builder_add_item(b, 100 + i, t, i % 2 ? "a|b" : "", &err), SD_OK);
    }
    for (int k = 0; k < 60; k++) ds_builder_add_event(b, k % 7, 100 + (k * 5) % 15, 1000 + k * 13 % 50, (float)(k % 5), DS_NO_VALUE);
    ds_dataset d;
    assert_int_equal(ds_builder_finish(b, &d, &err), SD_OK);
    char *dir = tmp_dir(), *p = sd_path_join(dir, DS_FILE);
    assert_int_equal(ds_save(&d, p, &err), SD_OK);
    ds_free(&d);
    char *orig;
    size_t n;
    assert_int_equal(sd_read_file(p, &orig, &n, &err), SD_OK);
    uint64_t *img = sd_malloc(n + 8); /* 8-byte aligned copy */
    sd_rng rng;
    sd_rng_seed(&rng, 2024);
    int accepted = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(img, orig, n);
        int flips = 1 + (int)sd_rng_below(&rng, 3);
        for (int f = 0; f < flips; f++) {
            /* half the mutations hit the header, where the offsets and counts are */
            size_t at = sd_rng_below(&rng, 2) ? sd_rng_below(&rng, 256) : sd_rng_below(&rng, (uint32_t)n);
            ((uint8_t *)img)[at] ^= (uint8_t)(1u << sd_rng_below(&rng, 8));
        }
        ds_dataset m;
        int rc = ds_load_mem(&m, img, n, "mutant", &err);
        if (rc) {
            assert_int_equal(rc, SD_ERR_FORMAT);
            assert_non_null(strstr(err.msg, "mutant"));
            continue;
        }
        accepted++;
        assert_int_equal(m.user_off[m.n_users], m.n_events);
        for (int64_t u = 0; u < m.n_users; u++) {
            assert_int_equal(ds_find_user(&m, m.user_ids[u]), u);
            for (int64_t k = m.user_off[u]; k < m.user_off[u + 1]; k++) {
                assert_int_equal(m.events[k].user, u);
                assert_in_range(m.events[k].item, 0, m.n_items - 1);
            }
        }
        for (int64_t i = 0; i < m.n_items; i++) {
            assert_int_equal(ds_find_item(&m, m.item_ids[i]), i);
            assert_true(strlen(ds_item_title(&m, i)) < n && strlen(ds_item_tags(&m, i)) < n);
        }
        ds_free(&m);
    }
    /* mutants of padding, ratings and strings are legitimately accepted; most others are not */
    assert_in_range(accepted, 1, 19999);
    free(img);
    free(orig);
    unlink(p);
    rmdir(dir);
    free(p);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builder_and_round_trip),
        cmocka_unit_test(test_duplicate_catalogue_entry),
        cmocka_unit_test(test_bad_files_refused),
        cmocka_unit_test(test_split_fraction_counts_and_file),
        cmocka_unit_test(test_corrupted_images_refused_or_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
