/* test_ingest.c - MovieLens layouts (100k, 1M, 10M, latest) and generic CSV on fixtures generated
 * here, and every bad-input case: the error code and a message naming file, line and field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/ingest.h"

/* ---------------------------------------------------------------- fixtures */

static char *g_dir; /* a fresh folder per test */

static int setup(void **state) {
    (void)state;
    g_dir = sd_strdup("/tmp/sd_test_ingestXXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char *cmd = sd_asprintf("rm -rf '%s'", g_dir);
    int rc = system(cmd);
    free(cmd);
    free(g_dir);
    return rc;
}

/* Writes n bytes (or strlen(s) when n < 0) to g_dir/name; returns the path (caller frees). */
static char *put(const char *name, const char *s, long n) {
    char *p = sd_path_join(g_dir, name);
    sd_err err = {0};
    assert_int_equal(sd_write_file_atomic(p, s, n < 0 ? strlen(s) : (size_t)n, &err), SD_OK);
    return p;
}

static void put0(const char *name, const char *s) { free(put(name, s, -1)); }

static int64_t item_of(const ds_dataset *d, int64_t raw) {
    int64_t i = ds_find_item(d, raw);
    assert_true(i >= 0);
    return i;
}

/* Expects ingest_movielens(g_dir) to fail with code and a message holding file:line and field. */
static void expect_ml_error(int code, const char *where, const char *field, const char *what) {
    ds_dataset d;
    sd_err err = {0};
    int rc = ingest_movielens(g_dir, &d, NULL, &err);
    if (rc != code) fail_msg("expected code %d, got %d (%s)", code, rc, err.msg);
    const char *w[3] = {where, field, what};
    for (int i = 0; i < 3; i++)
        if (w[i] && !strstr(err.msg, w[i])) fail_msg("message '%s' lacks '%s'", err.msg, w[i]);
    assert_null(d.events);
}

static const char *LATEST_MOVIES = "movieId,title,genres\n"
                                   "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
                                   "2,\"American President, The (1995)\",Comedy|Drama|Romance\n"
                                   "3,\"\"\"Great Performances\"\" Cats (1998)\",(no genres listed)\n";
static const char *LATEST_RATINGS = "userId,movieId,rating,timestamp\n"
                                    "1,1,4.0,964982703\n"
                                    "1,3,0.5,964981247\n"
                                    "2,2,5.0,964982224\n"
                                    "2,42,3.5,964983815\n"; /* 42: no catalogue entry */

/* ---------------------------------------------------------------- layouts */

static void test_latest_layout_with_tags(void **state) {
    (void)state;
    put0("movies.csv", LATEST_MOVIES);
    put0("ratings.csv", LATEST_RATINGS);
    put0("tags.csv", "userId,movieId,tag,timestamp\n"
                     "1,1,pixar,1\n5,1,Pixar,2\n6,1,fun,3\n7,1,comedy,4\n8,1,\"toys, talking\",5\n9,1, pixar ,6\n"
                     "1,99,orphan,7\n");
    ds_dataset d;
    ingest_report rep;
    sd_err err = {0};
    int rc = ingest_movielens(g_dir, &d, &rep, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_string_equal(rep.layout, "movielens-latest");
    assert_int_equal(d.n_users, 2);
    assert_int_equal(d.n_items, 4);
    assert_int_equal(d.n_events, 4);
    assert_int_equal(d.n_unknown_items, 1);
    assert_int_equal(rep.rating_rows, 4);
    assert_int_equal(rep.catalogue_rows, 3);
    assert_int_equal(rep.tag_rows, 7);
    assert_int_equal(rep.tag_rows_ignored, 1); /* item 99 */
    assert_string_equal(ds_item_title(&d, item_of(&d, 2)), "American President, The (1995)");
    assert_string_equal(ds_item_title(&d, item_of(&d, 3)), "\"Great Performances\" Cats (1998)");
    assert_string_equal(ds_item_tags(&d, item_of(&d, 3)), "");
    /* genres, then user tags by count (pixar x3 in any case), "comedy" already a genre */
    assert_string_equal(ds_item_tags(&d, item_of(&d, 1)), "Adventure|Animation|Children|Comedy|Fantasy|pixar|fun|toys, talking");
    int64_t unk = item_of(&d, 42);
    assert_int_equal(d.item_meta[unk], 0);
    /* user 1's events sorted by time: item 3 (964981247) before item 1 */
    int64_t u1 = ds_find_user(&d, 1);
    const ds_event *e = d.events + d.user_off[u1];
    assert_int_equal(e[0].item, item_of(&d, 3));
    assert_true(e[0].rating == 0.5f);
    assert_true(e[0].watch == DS_NO_VALUE);
    assert_int_equal(e[1].ts, 964982703);
    assert_int_equal(d.ts_min, 964981247);
    assert_int_equal(d.ts_max, 964983815);
    ds_free(&d);
}

static void test_latest_bom_and_crlf_parse_right(void **state) {
    (void)state;
    put0("movies.csv", "\xef\xbb\xbfmovieId,title,genres\r\n1,\"Heat (1995)\",Action|Crime\r\n");
    put0("ratings.csv", "\xef\xbb\xbfuserId,movieId,rating,timestamp\r\n7,1,4.5,100\r\n7,1,3.0,50\r\n");
    ds_dataset d;
    sd_err err = {0};
    int rc = ingest_movielens(g_dir, &d, NULL, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(d.n_events, 2);
    assert_string_equal(ds_item_tags(&d, 0), "Action|Crime"); /* no "\r" left on the last field */
    assert_int_equal(d.user_ids[0], 7);
    assert_int_equal(d.events[0].ts, 50);
    assert_int_equal(d.events[1].ts, 100);
    ds_free(&d);
}

static void test_100k_layout_latin1_and_genre_flags(void **state) {
    (void)state;
    put0("u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t999\t1\t881250950\n");
    /* 242: Animation + Children's + Comedy; 302: unknown only; title in Latin-1 */
    put0("u.item", "242|Kolya (1996)|24-Jan-1997||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
                   "302|Mis\xe9rables, Les (1995)|01-Jan-1995||http://y|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n");
    ds_dataset d;
    ingest_report rep;
    sd_err err = {0};
    int rc = ingest_movielens(g_dir, &d, &rep, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_string_equal(rep.layout, "movielens-100k");
    assert_int_equal(d.n_users, 2);
    assert_int_equal(d.n_events, 3);
    assert_int_equal(d.n_unknown_items, 1);
    assert_string_equal(ds_item_tags(&d, item_of(&d, 242)), "Animation|Children's|Comedy");
    assert_string_equal(ds_item_title(&d, item_of(&d, 302)), "Mis\xc3\xa9rables, Les (1995)");
    assert_string_equal(ds_item_tags(&d, item_of(&d, 302)), "");
    assert_true(d.events[d.user_off[ds_find_user(&d, 196)]].rating == 3.0f);
    ds_free(&d);
}

static void test_100k_bad_genre_flag(void **state) {
    (void)state;
    put0("u.data", "1\t1\t3\t5\n");
    put0("u.item", "1|A|d||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
                   "2|B|d||u|0|0|2|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n");
    expect_ml_error(SD_ERR_DATA, "u.item:2:", "field 8", "not 0 or 1");
}

static void test_1m_and_10m_layouts(void **state) {
    (void)state;
    put0("ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n");
    put0("movies.dat", "1193::One Flew Over the Cuckoo's Nest: A Story (1975)::Drama\n"
                       "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
                       "5::\"Quoted\" Caf\xe9 (1990)::Comedy\n");
    ds_dataset d;
    ingest_report rep;
    sd_err err = {0};
    int rc = ingest_movielens(g_dir, &d, &rep, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_string_equal(rep.layout, "movielens-1m");
    assert_int_equal(d.n_users, 2);
    assert_int_equal(d.n_items, 3);
    assert_int_equal(d.n_events, 3);
    assert_int_equal(d.n_unknown_items, 0);
    assert_string_equal(ds_item_title(&d, item_of(&d, 1193)), "One Flew Over the Cuckoo's Nest: A Story (1975)");
    assert_string_equal(ds_item_title(&d, item_of(&d, 5)), "\"Quoted\" Caf\xc3\xa9 (1990)");
    assert_string_equal(ds_item_tags(&d, item_of(&d, 661)), "Animation|Children's|Musical");
    ds_free(&d);

    put0("tags.dat", "15::1193::classic::1215184630\n20::1193::Jack Nicholson::1188263867\n21::1193::classic::1\n");
    rc = ingest_movielens(g_dir, &d, &rep, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_string_equal(rep.layout, "movielens-10m");
    assert_string_equal(ds_item_tags(&d, item_of(&d, 1193)), "Drama|classic|Jack Nicholson");
    ds_free(&d);
}

static void test_generic_csv(void **state) {
    (void)state;
    char *r = put("log.csv", "when;who;what;stars;seen\n"
                             "2016-02-29;10;7;;0.9\n"
                             "2016-02-29 12:00;11;8;4.5;\n"
                             "1456704000;10;9;2;0.1\n", -1);
    char *i = put("cat.csv", "what;name;kw\n7;Seven;crime|dark\n8;Eight;\n", -1);
    ingest_csv_opts o = {.ratings = r, .items = i, .sep = ";", .user_col = "who", .item_col = "what", .ts_col = "when",
                         .rating_col = "stars", .watch_col = "seen", .title_col = "name", .tags_col = "kw"};
    ds_dataset d;
    ingest_report rep;
    sd_err err = {0};
    int rc = ingest_csv(&o, &d, &rep, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_string_equal(rep.layout, "csv");
    assert_int_equal(d.n_events, 3);
    assert_int_equal(d.n_unknown_items, 1); /* 9 */
    assert_string_equal(ds_item_tags(&d, item_of(&d, 7)), "crime|dark");
    const ds_event *e = d.events + d.user_off[ds_find_user(&d, 10)];
    /* user 10: both at 1456704000; ordered by item index (7 before 9) */
    assert_int_equal(e[0].ts, 1456704000);
    assert_true(e[0].rating == DS_NO_VALUE && e[0].watch > 0.89f && e[0].watch < 0.91f);
    assert_true(e[1].rating == 2.0f);
    e = d.events + d.user_off[ds_find_user(&d, 11)];
    assert_int_equal(e[0].ts, 1456704000 + 12 * 3600);
    assert_true(e[0].watch == DS_NO_VALUE && e[0].rating == 4.5f);
    ds_free(&d);

    /* headerless, columns by number */
    char *h = put("h.tsv", "5\t1\t100\n6\t2\t200\n", -1);
    ingest_csv_opts n = {.ratings = h, .sep = "\t", .no_header = 1, .user_col = "2", .item_col = "1", .ts_col = "3"};
    rc = ingest_csv(&n, &d, &rep, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(d.n_users, 2);
    assert_int_equal(d.user_ids[0], 1);
    assert_int_equal(d.item_ids[1], 6);
    ds_free(&d);
    n.ts_col = "4";
    assert_int_equal(ingest_csv(&n, &d, &rep, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "h.tsv:1: field 4"));

    /* watch outside [0,1], unknown column name */
    char *w = put("w.csv", "u,i,t,watch\n1,2,3,1.5\n", -1);
    ingest_csv_opts ow = {.ratings = w, .user_col = "u", .item_col = "i", .ts_col = "t", .watch_col = "watch"};
    assert_int_equal(ingest_csv(&ow, &d, &rep, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "w.csv:2: field 4 (watch): 1.5 is outside [0, 1]"));
    ow.rating_col = "stars";
    assert_int_equal(ingest_csv(&ow, &d, &rep, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "w.csv:1: no column named \"stars\""));
    free(r);
    free(i);
    free(h);
    free(w);
}

/* ---------------------------------------------------------------- bad input */

static void test_wrong_column_count(void **state) {
    (void)state;
    put0("movies.csv", LATEST_MOVIES);
    put0("ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,5\n1,2,4.0\n");
    expect_ml_error(SD_ERR_DATA, "ratings.csv:3:", "field 4 (timestamp)", "missing");
    put0("ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,5,extra\n");
    expect_ml_error(SD_ERR_DATA, "ratings.csv:2:", "field 5", "extra field");
    put0("ratings.dat", "1::1::5\n"); /* detection order: u.data, ratings.dat, ratings.csv */
    put0("movies.dat", "1::A (1990)::Drama\n");
    expect_ml_error(SD_ERR_DATA, "ratings.dat:1:", "field 4 (timestamp)", "missing");
}

static void test_bad_ratings(void **state) {
    (void)state;
    put0("movies.csv", LATEST_MOVIES);
    const char *bad[] = {"abc", "NaN", "nan", "inf", "4,5", "", "-1", "4.0x"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char *s = sd_asprintf("userId,movieId,rating,timestamp\n1,1,4,5\n2,2,\"%s\",6\n", bad[k]);
        put0("ratings.csv", s);
        free(s);
        expect_ml_error(SD_ERR_DATA, "ratings.csv:3:", "field 3 (rating)", NULL);
    }
}

static void test_bad_timestamps_and_ids(void **state) {
    (void)state;
    put0("movies.csv", LATEST_MOVIES);
    put0("ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,-5\n");
    expect_ml_error(SD_ERR_DATA, "ratings.csv:2:", "field 4 (timestamp)", "negative timestamp -5");
    put0("ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,yesterday\n");
    expect_ml_error(SD_ERR_DATA, "ratings.csv:2:", "field 4 (timestamp)", "not a time");
    put0("ratings.csv", "userId,movieId,rating,timestamp\nu1,1,4,5\n");
    expect_ml_error(SD_ERR_DATA, "ratings.csv:2:", "field 1 (userId)", "\"u1\" is not an integer");
}

static void test_empty_files(void **state) {
    (void)state;
    put0("movies.csv", LATEST_MOVIES);
    put0("ratings.csv", "");
    expect_ml_error(SD_ERR_DATA, "ratings.csv:1:", "empty file", NULL);
    put0("ratings.csv", "userId,movieId,rating,timestamp\n\n");
    expect_ml_error(SD_ERR_DATA, "ratings.csv:2:", "empty file", NULL);
    put0("ratings.csv", LATEST_RATINGS);
    put0("movies.csv", "\xef\xbb\xbf");
    expect_ml_error(SD_ERR_DATA, "movies.csv:1:", "empty file", NULL);
    put0("u.data", "");
    put0("u.item", "1|A|d||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n");
    expect_ml_error(SD_ERR_DATA, "u.data:1:", "empty file", NULL);
}

static void test_unterminated_quote_and_megabyte_line(void **state) {
    (void)state;
    put0("ratings.csv", LATEST_RATINGS);
    put0("movies.csv", "movieId,title,genres\n1,A,Drama\n2,\"Never closed (1995),Drama\n3,C,Drama\n");
    expect_ml_error(SD_ERR_DATA, "movies.csv:3:", "field 2 (title)", "unterminated quoted field");
    put0("movies.csv", LATEST_MOVIES);
    size_t n = (1 << 20) + 100;
    char *big = sd_malloc(n + 64);
    size_t k = (size_t)sprintf(big, "userId,movieId,rating,timestamp\n1,1,4,5\n1,");
    memset(big + k, '7', n - k);
    memcpy(big + n, ",4,5\n", 5);
    free(put("ratings.csv", big, (long)n + 5));
    free(big);
    expect_ml_error(SD_ERR_DATA, "ratings.csv:3:", "field 2 (movieId)", "bytes or more");
}

static void test_duplicate_catalogue_and_missing_files(void **state) {
    (void)state;
    put0("ratings.csv", LATEST_RATINGS);
    put0("movies.csv", "movieId,title,genres\n1,A,Drama\n1,B,Comedy\n");
    expect_ml_error(SD_ERR_DATA, "movies.csv:3:", "field 1 (movieId)", "appears twice");
    put0("movies.csv", "movieId,name,genres\n1,A,Drama\n");
    expect_ml_error(SD_ERR_DATA, "movies.csv:1:", "no column named \"title\"", NULL);
    char *m = sd_path_join(g_dir, "movies.csv");
    unlink(m);
    free(m);
    expect_ml_error(SD_ERR_DATA, "movies.csv", "missing", NULL);
    char *r = sd_path_join(g_dir, "ratings.csv");
    unlink(r);
    free(r);
    expect_ml_error(SD_ERR_USAGE, "no MovieLens or RecBole files", NULL, NULL);
    /* a folder that does not exist is the same kind of error (the same exit code) as an empty one */
    ds_dataset d;
    sd_err err = {0};
    char *gone = sd_path_join(g_dir, "no-such-folder");
    assert_int_equal(ingest_movielens(gone, &d, NULL, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "no such folder"));
    free(gone);
}

/* Text that is not valid UTF-8 in the latest layout (a stray Latin-1 byte) is read as Latin-1, so
 * titles and tags are valid UTF-8 and every JSON answer built from them parses: "Caf\xe9" becomes
 * "Caf\xc3\xa9"; a valid UTF-8 field is untouched. */
static void test_latest_invalid_utf8_becomes_valid(void **state) {
    (void)state;
    put0("movies.csv", "movieId,title,genres\n1,Caf\xe9 (1990),Drama|R\xf6mance\n2,Am\xc3\xa9lie (2001),Comedy\n");
    put0("ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,10\n1,2,4.0,20\n");
    put0("tags.csv", "userId,movieId,tag,timestamp\n1,1,na\xefve,1\n");
    ds_dataset d;
    sd_err err = {0};
    if (ingest_movielens(g_dir, &d, NULL, &err)) fail_msg("%s", err.msg);
    assert_string_equal(ds_item_title(&d, item_of(&d, 1)), "Caf\xc3\xa9 (1990)");
    assert_string_equal(ds_item_tags(&d, item_of(&d, 1)), "Drama|R\xc3\xb6mance|na\xc3\xafve");
    assert_string_equal(ds_item_title(&d, item_of(&d, 2)), "Am\xc3\xa9lie (2001)");
    ds_free(&d);
}

/* A tags file that fails half-way (a short row after a good one) frees the tags already read: the
 * 4 bytes of "fun" leaked here before (seen by `make asan`). */
static void test_short_tags_row_fails_without_leak(void **state) {
    (void)state;
    put0("movies.csv", LATEST_MOVIES);
    put0("ratings.csv", LATEST_RATINGS);
    put0("tags.csv", "userId,movieId,tag,timestamp\n1,1,fun,1\n2,1\n");
    expect_ml_error(SD_ERR_DATA, "tags.csv:3:", "tag", NULL);
}

/* The real MovieLens latest-small (../shared/data, relative to the repository; skipped when absent).
 * 671 users and 100,004 ratings are in its README; 5 rated movies are missing from movies.csv. */
static void test_ml_latest_small(void **state) {
    (void)state;
    const char *dir = "../shared/data/ml-latest-small";
    char *r = sd_path_join(dir, "ratings.csv");
    int present = sd_file_exists(r);
    free(r);
    if (!present) {
        printf("SKIP: %s absent (ml-latest-small counts not checked)\n", dir);
        skip();
    }
    ds_dataset d;
    ingest_report rep;
    sd_err err = {0};
    int rc = ingest_movielens(dir, &d, &rep, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(d.n_users, 671);
    assert_int_equal(d.n_events, 100004);
    assert_int_equal(d.n_unknown_items, 5);
    assert_int_equal(rep.catalogue_rows, 9061); /* lines of movies.csv after the header */
    assert_int_equal(d.n_items, 9066);
    int64_t toy = ds_find_item(&d, 1);
    assert_true(toy >= 0);
    assert_string_equal(ds_item_title(&d, toy), "Toy Story (1995)");
    assert_string_equal(ds_item_tags(&d, toy), "Adventure|Animation|Children|Comedy|Fantasy");
    /* first line of ratings.csv: 1,31,2.5,1260759144 */
    int64_t u = ds_find_user(&d, 1), m = ds_find_item(&d, 31);
    int found = 0;
    for (int64_t k = d.user_off[u]; k < d.user_off[u + 1]; k++)
        found |= d.events[k].item == m && d.events[k].ts == 1260759144 && d.events[k].rating == 2.5f;
    assert_true(found);
    ds_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_latest_layout_with_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_bom_and_crlf_parse_right, setup, teardown),
        cmocka_unit_test_setup_teardown(test_100k_layout_latin1_and_genre_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_100k_bad_genre_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_1m_and_10m_layouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generic_csv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_column_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_ratings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_timestamps_and_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unterminated_quote_and_megabyte_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_catalogue_and_missing_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_invalid_utf8_becomes_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_tags_row_fails_without_leak, setup, teardown),
        cmocka_unit_test(test_ml_latest_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
