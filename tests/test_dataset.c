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
    v[8] = 3; /* a version this build does not know */
    expect_refused(q, v, n, "version 3, this build reads versions 1 and 2");
    memcpy(v, buf, n);
    v[8] = 2; /* a version 1 file that claims version 2: its header is too short for one */
    expect_refused(q, v, n, "header size 256, expected 320 for version 2");
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


/* The small dataset of build_small with string raw ids: users "u30", "u10", "u20", items "seven",
 * "five", "nine nine" (no metadata), "six". */
static void build_small_str(ds_dataset *d, const char *const users[3], const char *const items[4]) {
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    assert_int_equal(ds_builder_add_item_str(b, items[0], "Seven (1995)", "Crime|Thriller", &err), SD_OK);
    assert_int_equal(ds_builder_add_item_str(b, items[1], "Five", "Drama", &err), SD_OK);
    ds_builder_add_event_str(b, users[0], items[0], 300, 4.5f, DS_NO_VALUE);
    ds_builder_add_event_str(b, users[1], items[1], 200, 3.0f, DS_NO_VALUE);
    ds_builder_add_event_str(b, users[0], items[1], 100, DS_NO_VALUE, 0.5f);
    ds_builder_add_event_str(b, users[2], items[2], 150, 1.0f, DS_NO_VALUE);
    ds_builder_add_event_str(b, users[0], items[2], 100, 2.0f, DS_NO_VALUE);
    assert_int_equal(ds_builder_add_item_str(b, items[3], "Six", "", &err), SD_OK);
    assert_int_equal(ds_builder_finish(b, d, &err), SD_OK);
}

static const char *const S_USERS[3] = {"u30", "u10", "u20"};
static const char *const S_ITEMS[4] = {"seven", "five", "nine nine", "six"};

/* Checks the string-id small dataset: the same events as build_small's, internal numbers dense + 1,
 * raw ids shown back and found, typed internal numbers found when no raw id has that text. */
static void check_small_str(const ds_dataset *d) {
    ds_dataset r;
    build_small(&r);
    assert_int_equal(d->n_events, r.n_events);
    assert_memory_equal(d->events, r.events, (size_t)r.n_events * sizeof(ds_event));
    assert_memory_equal(d->user_off, r.user_off, (size_t)(r.n_users + 1) * sizeof(int64_t));
    assert_memory_equal(d->item_meta, r.item_meta, (size_t)r.n_items);
    for (int64_t i = 0; i < r.n_items; i++) assert_string_equal(ds_item_title(d, i), ds_item_title(&r, i));
    ds_free(&r);
    assert_true(ds_has_user_names(d) && ds_has_item_names(d));
    char buf[DS_ID_BUF];
    for (int u = 0; u < 3; u++) {
        assert_int_equal(d->user_ids[u], u + 1);
        assert_string_equal(ds_user_raw_id(d, u, buf, sizeof buf), S_USERS[u]);
        assert_int_equal(ds_find_user_raw(d, S_USERS[u]), u);
        assert_int_equal(ds_find_user(d, u + 1), u);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(d->item_ids[i], i + 1);
        assert_string_equal(ds_item_raw_id(d, i, buf, sizeof buf), S_ITEMS[i]);
        assert_int_equal(ds_find_item_raw(d, S_ITEMS[i]), i);
    }
    assert_int_equal(ds_find_user_raw(d, "u31"), -1);
    assert_int_equal(ds_find_user_raw(d, "U30"), -1); /* exact, case-sensitive */
    assert_int_equal(ds_find_user_raw(d, "2"), 1);    /* the internal number */
    assert_int_equal(ds_find_user_raw(d, "4"), -1);
    assert_int_equal(ds_find_item_raw(d, "nine"), -1);
}

static void test_string_ids_round_trip(void **state) {
    (void)state;
    ds_dataset d, l, m;
    build_small_str(&d, S_USERS, S_ITEMS);
    check_small_str(&d);
    char *dir = tmp_dir(), *p = sd_path_join(dir, DS_FILE), *q = sd_path_join(dir, "again.bin");
    sd_err err = {0};
    assert_int_equal(ds_save(&d, p, &err), SD_OK);
    char *buf, *buf2;
    size_t n, n2;
    assert_int_equal(sd_read_file(p, &buf, &n, &err), SD_OK);
    uint32_t version, header_size;
    memcpy(&version, buf + 8, 4);
    memcpy(&header_size, buf + 12, 4);
    assert_int_equal(version, 2);
    assert_int_equal(header_size, 320);
    assert_int_equal(ds_load(&l, p, &err), SD_OK);
    check_small_str(&l);
    /* saving the mapped dataset gives the same bytes */
    assert_int_equal(ds_save(&l, q, &err), SD_OK);
    assert_int_equal(sd_read_file(q, &buf2, &n2, &err), SD_OK);
    assert_int_equal(n, n2);
    assert_memory_equal(buf, buf2, n);
    /* two users with the same raw id are refused: rename "u10" to "u30" in the pool */
    char *dup = memmem(buf, n, "u10", 4);
    assert_non_null(dup);
    dup[1] = '3';
    expect_refused(q, buf, n, "user raw ids are corrupt or repeat");
    /* a name offset outside the pool */
    assert_int_equal(ds_load(&m, p, &err), SD_OK);
    size_t at = (size_t)((const char *)m.item_name_off - (const char *)m.events) + 320 + 8;
    ds_free(&m);
    dup[1] = '1';
    uint64_t far = 1u << 30;
    memcpy(buf + at, &far, 8);
    expect_refused(q, buf, n, "item raw ids are corrupt or repeat (at 1)");
    free(buf);
    free(buf2);
    ds_free(&d);
    ds_free(&l);
    unlink(p);
    unlink(q);
    rmdir(dir);
    free(p);
    free(q);
    free(dir);
}

/* String ids that are all canonical integers give, byte for byte, the version 1 file that integer
 * ids give; one non-canonical id ("007") keeps the side's names (and only that side's). */
static void test_numeric_string_ids_settle(void **state) {
    (void)state;
    static const char *const users[3] = {"30", "10", "20"}, *const items[4] = {"7", "5", "99", "6"};
    static const char *const items_pad[4] = {"7", "5", "099", "6"};
    ds_dataset a, b, c;
    build_small(&a);
    build_small_str(&b, users, items);
    build_small_str(&c, users, items_pad);
    check_small(&b);
    assert_false(ds_has_user_names(&b) || ds_has_item_names(&b));
    char *dir = tmp_dir(), *p = sd_path_join(dir, "a.bin"), *q = sd_path_join(dir, "b.bin");
    sd_err err = {0};
    char *x, *y;
    size_t nx, ny;
    assert_int_equal(ds_save(&a, p, &err), SD_OK);
    assert_int_equal(ds_save(&b, q, &err), SD_OK);
    assert_int_equal(sd_read_file(p, &x, &nx, &err), SD_OK);
    assert_int_equal(sd_read_file(q, &y, &ny, &err), SD_OK);
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, nx);
    assert_int_equal(x[8], 1); /* version 1: what earlier builds wrote and read */
    /* "099" is not canonical: items keep their names, users (all canonical) do not */
    assert_false(ds_has_user_names(&c));
    assert_true(ds_has_item_names(&c));
    assert_int_equal(c.user_ids[0], 30);
    char buf[DS_ID_BUF];
    assert_string_equal(ds_item_raw_id(&c, 2, buf, sizeof buf), "099");
    assert_string_equal(ds_user_raw_id(&c, 1, buf, sizeof buf), "10");
    assert_int_equal(ds_find_item_raw(&c, "099"), 2);
    assert_int_equal(ds_find_user_raw(&c, "10"), 1);
    assert_int_equal(ds_find_user_raw(&c, " 10 "), 1); /* an integer side parses the text */
    assert_int_equal(ds_find_user_raw(&c, "ten"), -1);
    free(x);
    free(y);
    ds_free(&a);
    ds_free(&b);
    ds_free(&c);
    unlink(p);
    unlink(q);
    rmdir(dir);
    free(p);
    free(q);
    free(dir);
}

static void test_mixed_id_kinds_refused(void **state) {
    (void)state;
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    ds_builder_add_event(b, 1, 2, 10, 4.0f, DS_NO_VALUE);
    ds_builder_add_event_str(b, "alice", "2", 11, 4.0f, DS_NO_VALUE); /* users get both kinds */
    ds_dataset d;
    assert_int_equal(ds_builder_finish(b, &d, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "mixed"));
    /* a duplicate catalogue entry by string id names it */
    b = ds_builder_new();
    assert_int_equal(ds_builder_add_item_str(b, "B0001", "A", "", &err), SD_OK);
    assert_int_equal(ds_builder_add_item_str(b, "B0001", "A", "", &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "item \"B0001\": duplicate"));
    ds_builder_free(b);
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
static void corrupt_images(int string_ids) {
    sd_err err = {0};
    ds_builder *b = ds_builder_new();
    for (int i = 0; i < 12; i++) {
        char t[32], id[32];
        snprintf(t, sizeof t, "title %d", i);
        snprintf(id, sizeof id, "item-%d", 100 + i);
        if (string_ids) assert_int_equal(ds_builder_add_item_str(b, id, t, i % 2 ? "a|b" : "", &err), SD_OK);
        else assert_int_equal(ds_builder_add_item(b, 100 + i, t, i % 2 ? "a|b" : "", &err), SD_OK);
    }
    for (int k = 0; k < 60; k++) {
        char u[32], it[32];
        snprintf(u, sizeof u, "user %d", k % 7);
        snprintf(it, sizeof it, "item-%d", 100 + (k * 5) % 15);
        if (string_ids) ds_builder_add_event_str(b, u, it, 1000 + k * 13 % 50, (float)(k % 5), DS_NO_VALUE);
        else ds_builder_add_event(b, k % 7, 100 + (k * 5) % 15, 1000 + k * 13 % 50, (float)(k % 5), DS_NO_VALUE);
    }
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
            size_t at = sd_rng_below(&rng, 2) ? sd_rng_below(&rng, string_ids ? 320 : 256) : sd_rng_below(&rng, (uint32_t)n);
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
        char buf[DS_ID_BUF];
        assert_int_equal(ds_has_user_names(&m), string_ids);
        for (int64_t u = 0; u < m.n_users; u++) {
            assert_int_equal(ds_find_user(&m, m.user_ids[u]), u);
            assert_int_equal(ds_find_user_raw(&m, ds_user_raw_id(&m, u, buf, sizeof buf)), u);
            for (int64_t k = m.user_off[u]; k < m.user_off[u + 1]; k++) {
                assert_int_equal(m.events[k].user, u);
                assert_in_range(m.events[k].item, 0, m.n_items - 1);
            }
        }
        for (int64_t i = 0; i < m.n_items; i++) {
            assert_int_equal(ds_find_item(&m, m.item_ids[i]), i);
            if (string_ids) assert_int_equal(ds_find_item_raw(&m, ds_item_raw_id(&m, i, buf, sizeof buf)), i);
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

static void test_corrupted_images_refused_or_consistent(void **state) {
    (void)state;
    corrupt_images(0);
    corrupt_images(1); /* version 2: the name sections and their index too */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builder_and_round_trip),
        cmocka_unit_test(test_duplicate_catalogue_entry),
        cmocka_unit_test(test_bad_files_refused),
        cmocka_unit_test(test_string_ids_round_trip),
        cmocka_unit_test(test_numeric_string_ids_settle),
        cmocka_unit_test(test_mixed_id_kinds_refused),
        cmocka_unit_test(test_split_fraction_counts_and_file),
        cmocka_unit_test(test_corrupted_images_refused_or_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
