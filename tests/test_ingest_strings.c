/* test_ingest_strings.c - logs with string ids: RecBole atomic files (.inter / .item with typed
 * headers, detected in a folder) and generic CSV with string ids, on fixtures written here; and
 * every malformed case of the foundation issue for these formats (wrong column count, non-numeric
 * or NaN rating, negative timestamp, empty file, byte-order mark, CRLF, unterminated quote, a line
 * of a megabyte) plus the RecBole header types and string-id cases (empty, too long, duplicate),
 * each with its code and a message naming file, line and field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/ingest.h"

static char *g_dir; /* a fresh folder per test */

static int setup(void **state) {
    (void)state;
    g_dir = sd_strdup("/tmp/sd_test_ingest_strXXXXXX");
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

/* Writes n bytes (strlen(s) when n < 0) to g_dir/name. */
static void put(const char *name, const char *s, long n) {
    char *p = sd_path_join(g_dir, name);
    sd_err err = {0};
    assert_int_equal(sd_write_file_atomic(p, s, n < 0 ? strlen(s) : (size_t)n, &err), SD_OK);
    free(p);
}

static void put0(const char *name, const char *s) { put(name, s, -1); }

static int64_t item_named(const ds_dataset *d, const char *raw) {
    int64_t i = ds_find_item_raw(d, raw);
    if (i < 0) fail_msg("no item \"%s\"", raw);
    return i;
}

/* Expects ingest_recbole(g_dir) to fail with code and a message holding each non-NULL piece. */
static void expect_rb_error(int code, const char *where, const char *field, const char *what) {
    ds_dataset d;
    sd_err err = {0};
    int rc = ingest_recbole(g_dir, &d, NULL, &err);
    if (rc != code) fail_msg("expected code %d, got %d (%s)", code, rc, err.msg);
    const char *w[3] = {where, field, what};
    for (int i = 0; i < 3; i++)
        if (w[i] && !strstr(err.msg, w[i])) fail_msg("message '%s' lacks '%s'", err.msg, w[i]);
    assert_null(d.events);
}

static const char *INTER_HEAD = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n";
static const char *ITEMS = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                           "B00A\tThe Thing\t1982\tHorror  Sci-Fi\n"
                           "B00B\tAm\xc3\xa9lie\t2001\tComedy|Romance\n"
                           "B00C\t\"Quoted, title\"\t1999\t\n";

/* Writes x.inter as INTER_HEAD + rows. */
static void put_inter(const char *rows) {
    char *s = sd_asprintf("%s%s", INTER_HEAD, rows);
    put0("x.inter", s);
    free(s);
}

/* ---------------------------------------------------------------- RecBole */

static void test_recbole_layout(void **state) {
    (void)state;
    put0("x.item", ITEMS);
    /* a byte-order mark and CRLF line ends; float seconds; an item absent from x.item */
    put0("x.inter", "\xef\xbb\xbfuser_id:token\titem_id:token\trating:float\ttimestamp:float\r\n"
                    "alice\tB00A\t4\t881250949.7\r\n"
                    "bob\tB00B\t5\t881250000\r\n"
                    "alice\tB00B\t2.5\t881250000\r\n"
                    "carol smith\tZZZ\t1\t5\r\n");
    ds_dataset d;
    ingest_report rep;
    sd_err err = {0};
    /* detected in the folder, as the MovieLens layouts are */
    if (ingest_movielens(g_dir, &d, &rep, &err)) fail_msg("%s", err.msg);
    assert_string_equal(rep.layout, "recbole");
    assert_true(rep.string_user_ids && rep.string_item_ids);
    assert_int_equal(d.n_users, 3);
    assert_int_equal(d.n_items, 4);
    assert_int_equal(d.n_events, 4);
    assert_int_equal(d.n_unknown_items, 1);
    assert_int_equal(rep.catalogue_rows, 3);
    assert_string_equal(ds_item_title(&d, item_named(&d, "B00A")), "The Thing");
    assert_string_equal(ds_item_tags(&d, item_named(&d, "B00A")), "Horror|Sci-Fi"); /* token_seq words */
    assert_string_equal(ds_item_tags(&d, item_named(&d, "B00B")), "Comedy/Romance");  /* '|' is ours */
    assert_string_equal(ds_item_title(&d, item_named(&d, "B00C")), "Quoted, title");
    assert_int_equal(d.item_meta[item_named(&d, "ZZZ")], 0);
    int64_t a = ds_find_user_raw(&d, "alice"), c = ds_find_user_raw(&d, "carol smith");
    assert_true(a >= 0 && c >= 0);
    char buf[DS_ID_BUF];
    assert_string_equal(ds_user_raw_id(&d, a, buf, sizeof buf), "alice");
    /* alice: (881250000, B00B, 2.5) then (881250949, B00A, 4): floored float seconds */
    const ds_event *e = d.events + d.user_off[a];
    assert_int_equal(d.user_off[a + 1] - d.user_off[a], 2);
    assert_int_equal(e[0].item, item_named(&d, "B00B"));
    assert_true(e[0].rating == 2.5f);
    assert_int_equal(e[1].ts, 881250949);
    assert_true(e[1].rating == 4.0f);
    ds_free(&d);

    /* the .inter path itself; no rating column (every rating absent); no catalogue */
    char *item = sd_path_join(g_dir, "x.item");
    unlink(item);
    free(item);
    put0("x.inter", "item_id:token\tuser_id:token\ttimestamp:float\tlabel:float\nB1\tu1\t10\t1\nB2\tu1\t11\t0\n");
    char *inter = sd_path_join(g_dir, "x.inter");
    if (ingest_recbole(inter, &d, &rep, &err)) fail_msg("%s", err.msg);
    free(inter);
    assert_int_equal(d.n_events, 2);
    assert_int_equal(d.n_unknown_items, 2);
    assert_true(d.events[0].rating == DS_NO_VALUE && d.events[1].rating == DS_NO_VALUE);
    assert_string_equal(ds_item_raw_id(&d, 1, buf, sizeof buf), "B2");
    ds_free(&d);
}

/* RecBole's ml-100k as RecBole distributes it has integer tokens: the dataset then has integer ids,
 * the same as the MovieLens 100k layout gives. */
static void test_recbole_integer_tokens_give_integer_ids(void **state) {
    (void)state;
    put_inter("196\t242\t3\t881250949\n186\t302\t3\t891717742\n");
    put0("x.item", "item_id:token\tmovie_title:token_seq\tclass:token_seq\n242\tKolya\tComedy\n");
    ds_dataset d;
    ingest_report rep;
    sd_err err = {0};
    if (ingest_recbole(g_dir, &d, &rep, &err)) fail_msg("%s", err.msg);
    assert_false(rep.string_user_ids || rep.string_item_ids);
    assert_false(ds_has_user_names(&d) || ds_has_item_names(&d));
    assert_int_equal(d.user_ids[0], 196);
    assert_int_equal(ds_find_item(&d, 242), 0);
    assert_string_equal(ds_item_title(&d, 0), "Kolya");
    ds_free(&d);
}

static void test_recbole_header_types(void **state) {
    (void)state;
    put0("x.inter", "user_id\titem_id:token\ttimestamp:float\nu\ti\t1\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:1:", "field 1 (user_id)", "no type");
    put0("x.inter", "user_id:token\titem_id:str\ttimestamp:float\nu\ti\t1\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:1:", "field 2 (item_id:str)", "unknown type");
    put0("x.inter", "user_id:float\titem_id:token\ttimestamp:float\n1\ti\t1\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:1:", "field 1 (user_id:float)", "the user column must have type token");
    put0("x.inter", "user_id:token\titem_id:token\ttimestamp:token\nu\ti\t1\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:1:", "field 3 (timestamp:token)", "must have type float");
    put0("x.inter", "user_id:token\titem:token\ttimestamp:float\nu\ti\t1\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:1:", "no column named \"item_id\"", "user_id:token, item:token");
    put_inter("u\ti\t4\t1\n");
    put0("x.item", "item_id:token\tclass:float\ni\t3\n");
    expect_rb_error(SD_ERR_DATA, "x.item:1:", "field 2 (class:float)", "must have type token|token_seq");
}

static void test_recbole_wrong_column_count(void **state) {
    (void)state;
    put_inter("u1\ti1\t4\t10\nu1\ti2\t4\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:3:", "field 4 (timestamp:float)", "missing");
    put_inter("u1\ti1\t4\t10\textra\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:2:", "field 5", "extra field");
    put_inter("u1\ti1\t4\t10\n");
    put0("x.item", ITEMS);
    put0("x.item", "item_id:token\tmovie_title:token_seq\ni1\tA\tB\n");
    expect_rb_error(SD_ERR_DATA, "x.item:2:", "field 3", "extra field");
}

static void test_recbole_bad_ratings_and_timestamps(void **state) {
    (void)state;
    const char *bad[] = {"abc", "NaN", "nan", "inf", "4,5", "-1", "4.0x"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char *s = sd_asprintf("u1\ti1\t4\t10\nu2\ti2\t%s\t11\n", bad[k]);
        put_inter(s);
        free(s);
        expect_rb_error(SD_ERR_DATA, "x.inter:3:", "field 3 (rating:float)", NULL);
    }
    put_inter("u1\ti1\tNaN\t10\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:2:", "field 3 (rating:float)", "\"NaN\" is not a finite number");
    put_inter("u1\ti1\t4\t-5\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:2:", "field 4 (timestamp:float)", "negative timestamp -5");
    put_inter("u1\ti1\t4\t2016-01-01\n"); /* RecBole times are float seconds */
    expect_rb_error(SD_ERR_DATA, "x.inter:2:", "field 4 (timestamp:float)", "\"2016-01-01\" is not a finite number");
    put_inter("u1\ti1\t4\t1e30\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:2:", "field 4 (timestamp:float)", "out of range");
}

static void test_recbole_empty_files_and_ids(void **state) {
    (void)state;
    put0("x.inter", "");
    expect_rb_error(SD_ERR_DATA, "x.inter:1:", "empty file", NULL);
    put0("x.inter", "\xef\xbb\xbf");
    expect_rb_error(SD_ERR_DATA, "x.inter:1:", "empty file", NULL);
    put_inter("\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:2:", "empty file", NULL);
    put_inter("u1\ti1\t4\t10\n");
    put0("x.item", "item_id:token\tmovie_title:token_seq\n");
    expect_rb_error(SD_ERR_DATA, "x.item:2:", "empty file (no catalogue rows)", NULL);
    put0("x.item", ITEMS);
    put_inter("u1\t \t4\t10\n");
    expect_rb_error(SD_ERR_DATA, "x.inter:2:", "field 2 (item_id:token)", "empty item id");
    char *s = sd_malloc(400);
    memset(s, 'x', 300);
    memcpy(s + 300, "\ti1\t4\t10\n", 10);
    put_inter(s);
    free(s);
    expect_rb_error(SD_ERR_DATA, "x.inter:2:", "field 1 (user_id:token)", "user id of 300 bytes (limit 255)");
    put_inter("u1\ti1\t4\t10\n");
    put0("x.item", "item_id:token\tmovie_title:token_seq\nB7\tA\nB8\tB\nB7\tC\n");
    expect_rb_error(SD_ERR_DATA, "x.item:4:", "field 1 (item_id:token)", "item \"B7\" appears twice in the catalogue");
}

static void test_recbole_quote_and_megabyte_line(void **state) {
    (void)state;
    put_inter("u1\ti1\t4\t10\n");
    put0("x.item", "item_id:token\tmovie_title:token_seq\ni1\tA\ni2\t\"Never closed\ni3\tC\n");
    expect_rb_error(SD_ERR_DATA, "x.item:3:", "field 2 (movie_title:token_seq)", "unterminated quoted field");
    put0("x.item", ITEMS);
    size_t n = (1 << 20) + 100;
    char *big = sd_malloc(n + 64);
    size_t k = (size_t)sprintf(big, "%su1\ti1\t4\t10\nu1\t", INTER_HEAD);
    memset(big + k, '7', n - k);
    memcpy(big + n, "\t4\t5\n", 5);
    put("x.inter", big, (long)n + 5);
    free(big);
    expect_rb_error(SD_ERR_DATA, "x.inter:3:", "field 2 (item_id:token)", "bytes or more");
}

static void test_recbole_which_files(void **state) {
    (void)state;
    ds_dataset d;
    sd_err err = {0};
    expect_rb_error(SD_ERR_USAGE, "no RecBole .inter file", NULL, NULL);
    put0("x.item", ITEMS); /* a catalogue alone is not a log */
    expect_rb_error(SD_ERR_USAGE, "no RecBole .inter file", NULL, NULL);
    assert_int_equal(ingest_movielens(g_dir, &d, NULL, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "no MovieLens or RecBole files found"));
    put_inter("u1\ti1\t4\t10\n");
    put0("y.inter", INTER_HEAD);
    expect_rb_error(SD_ERR_USAGE, "2 RecBole .inter files", "give the one to read", NULL);
    assert_int_equal(ingest_movielens(g_dir, &d, NULL, &err), SD_ERR_USAGE);
    char *item = sd_path_join(g_dir, "x.item");
    assert_int_equal(ingest_recbole(item, &d, NULL, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "ends in .inter"));
    free(item);
    /* MovieLens files win over a stray .inter, as the detection order says */
    put0("ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,5\n");
    put0("movies.csv", "movieId,title,genres\n1,A,Drama\n");
    ingest_report rep;
    if (ingest_movielens(g_dir, &d, &rep, &err)) fail_msg("%s", err.msg);
    assert_string_equal(rep.layout, "movielens-latest");
    ds_free(&d);
}

/* ---------------------------------------------------------------- generic CSV with string ids */

static void test_csv_string_ids(void **state) {
    (void)state;
    put0("log.csv", "\xef\xbb\xbfuser,item,when,stars\r\n"
                    "A1B2C3,0451526538,2014-03-01,5\r\n"
                    "\"x, y\",0451526538,2014-03-02,3\r\n"
                    "A1B2C3,B000FA64PK,2014-03-03,\r\n"
                    "42,B000FA64PK,2014-03-04,1\r\n");
    put0("cat.csv", "item,title,tags\n0451526538,The Tale,fiction|classic\nB000FA64PK,Chess,games\n");
    char *r = sd_path_join(g_dir, "log.csv"), *c = sd_path_join(g_dir, "cat.csv");
    ingest_csv_opts o = {.ratings = r, .items = c, .user_col = "user", .item_col = "item", .ts_col = "when",
                         .rating_col = "stars", .title_col = "title", .tags_col = "tags"};
    ds_dataset d;
    ingest_report rep;
    sd_err err = {0};
    if (ingest_csv(&o, &d, &rep, &err)) fail_msg("%s", err.msg);
    assert_true(rep.string_user_ids && rep.string_item_ids);
    assert_int_equal(d.n_users, 3);
    assert_int_equal(d.n_items, 2);
    assert_int_equal(d.n_unknown_items, 0);
    /* "0451526538" keeps its leading zero: an ISBN is not the number 451526538 */
    assert_string_equal(ds_item_title(&d, item_named(&d, "0451526538")), "The Tale");
    assert_int_equal(ds_find_item_raw(&d, "451526538"), -1);
    int64_t u = ds_find_user_raw(&d, "x, y");
    assert_int_equal(d.user_off[u + 1] - d.user_off[u], 1);
    assert_int_equal(d.events[d.user_off[u]].ts, 1393718400);
    int64_t a = ds_find_user_raw(&d, "A1B2C3");
    assert_true(d.events[d.user_off[a] + 1].rating == DS_NO_VALUE);
    /* "42" is a string raw id on a string side: found as such, shown as such */
    char buf[DS_ID_BUF];
    int64_t u42 = ds_find_user_raw(&d, "42");
    assert_true(u42 >= 0);
    assert_string_equal(ds_user_raw_id(&d, u42, buf, sizeof buf), "42");
    ds_free(&d);

    /* --ids int: the first id that is not an integer is an error naming it */
    o.int_ids = 1;
    assert_int_equal(ingest_csv(&o, &d, &rep, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "cat.csv:3: field 1 (item): \"B000FA64PK\" is not an integer"));
    /* the same ids as integers, in auto mode, give integer ids */
    put0("log.csv", "user,item,when,stars\n7,10,1,4\n8,11,2,5\n");
    put0("cat.csv", "item,title,tags\n10,A,\n11,B,\n");
    o.int_ids = 0;
    if (ingest_csv(&o, &d, &rep, &err)) fail_msg("%s", err.msg);
    assert_false(rep.string_user_ids || rep.string_item_ids);
    assert_int_equal(d.user_ids[1], 8);
    ds_free(&d);
    free(r);
    free(c);
}

static void test_csv_string_ids_malformed(void **state) {
    (void)state;
    char *r = sd_path_join(g_dir, "log.csv");
    ingest_csv_opts o = {.ratings = r, .user_col = "user", .item_col = "item", .ts_col = "when", .rating_col = "stars"};
    const struct {
        const char *text, *where, *field, *what;
    } cases[] = {
        {"user,item,when,stars\nal,b1,5,4\nbo,b2,6\n", "log.csv:3:", "field 4 (stars)", "missing"},
        {"user,item,when,stars\nal,b1,5,4,9\n", "log.csv:2:", "field 5", "extra field"},
        {"user,item,when,stars\nal,b1,5,NaN\n", "log.csv:2:", "field 4 (stars)", "\"NaN\" is not a finite number"},
        {"user,item,when,stars\nal,b1,5,four\n", "log.csv:2:", "field 4 (stars)", "\"four\" is not a finite number"},
        {"user,item,when,stars\nal,b1,-5,4\n", "log.csv:2:", "field 3 (when)", "negative timestamp -5"},
        {"", "log.csv:1:", "empty file", NULL},
        {"user,item,when,stars\n", "log.csv:2:", "empty file", NULL},
        {"user,item,when,stars\nal,\"b1,5,4\nbo,b2,6,4\n", "log.csv:2:", "field 2 (item)", "unterminated quoted field"},
        {"user,item,when,stars\n,b1,5,4\n", "log.csv:2:", "field 1 (user)", "empty user id"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        put0("log.csv", cases[k].text);
        ds_dataset d;
        sd_err err = {0};
        assert_int_equal(ingest_csv(&o, &d, NULL, &err), SD_ERR_DATA);
        const char *w[3] = {cases[k].where, cases[k].field, cases[k].what};
        for (int i = 0; i < 3; i++)
            if (w[i] && !strstr(err.msg, w[i])) fail_msg("case %zu: message '%s' lacks '%s'", k, err.msg, w[i]);
    }
    /* a line of a megabyte */
    size_t n = (1 << 20) + 100;
    char *big = sd_malloc(n + 64);
    size_t k = (size_t)sprintf(big, "user,item,when,stars\nal,b1,5,4\nal,");
    memset(big + k, 'b', n - k);
    memcpy(big + n, ",6,4\n", 5);
    put("log.csv", big, (long)n + 5);
    free(big);
    ds_dataset d;
    sd_err err = {0};
    assert_int_equal(ingest_csv(&o, &d, NULL, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "log.csv:3: field 2 (item): record of 1048576 bytes or more"));
    free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recbole_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recbole_integer_tokens_give_integer_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recbole_header_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recbole_wrong_column_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recbole_bad_ratings_and_timestamps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recbole_empty_files_and_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recbole_quote_and_megabyte_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recbole_which_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_string_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_string_ids_malformed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
