/* test_manifest.c - workspaces that know what they were built from (manifest.h): a record is
 * fresh until an input's bytes change (a touch is not a change), staleness propagates down the
 * chain and names the first stage to rerun, a gone input is stale, a file changed after its record
 * or without one is "unrecorded", a malformed record is an error naming it; world_truth.bin is
 * refused when dataset.bin was replaced; leftovers of killed runs are removed by the next run.
 * Files are written by the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "serendip/dataset.h"
#include "serendip/manifest.h"
#include "serendip/world.h"

static char g_ws[64];

static void put(const char *name, const char *text) {
    sd_err err = {0};
    char *p = sd_path_join(g_ws, name);
    assert_int_equal(sd_write_file_atomic(p, text, strlen(text), &err), SD_OK);
    free(p);
}

static mf_status status(const char *name) {
    mf_status st;
    sd_err err = {0};
    assert_int_equal(mf_status_of(g_ws, name, &st, &err), SD_OK);
    return st;
}

static int setup(void **state) {
    (void)state;
    snprintf(g_ws, sizeof g_ws, "/tmp/sdmanifest.XXXXXX");
    return mkdtemp(g_ws) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    sd_err err;
    sd_remove_tree(g_ws, &err);
    return 0;
}

static void test_fresh_stale_chain(void **state) {
    (void)state;
    sd_err err = {0};
    put("a.bin", "alpha");
    put("b.bin", "bravo");
    put("c.bin", "charlie, built from a and b");
    const char *ab[] = {"a.bin", "b.bin", "optional.bin"}; /* optional.bin does not exist: left out */
    assert_int_equal(mf_record(g_ws, "c.bin", "stagec", ab, 3, &err), SD_OK);
    put("d.bin", "delta, built from c");
    const char *c[] = {"c.bin"};
    assert_int_equal(mf_record(g_ws, "d.bin", "staged", c, 1, &err), SD_OK);
    mf_status st = status("c.bin");
    assert_int_equal(st.state, MF_FRESH);
    assert_string_equal(st.stage, "stagec");
    assert_int_equal(status("d.bin").state, MF_FRESH);
    assert_int_equal(status("a.bin").state, MF_UNRECORDED);
    assert_int_equal(status("nothing.bin").state, MF_MISSING);
    const char *both[] = {"c.bin", "d.bin", "a.bin", "nothing.bin"};
    assert_int_equal(mf_check(g_ws, both, 4, &err), SD_OK);

    /* a touch (new mtime, same bytes) is not a change */
    char *pa = sd_path_join(g_ws, "a.bin");
    struct timespec ts[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    assert_int_equal(utimensat(AT_FDCWD, pa, ts, 0), 0);
    assert_int_equal(status("c.bin").state, MF_FRESH);

    /* new bytes in a.bin: c is stale (rerun its stage), d is stale through c (rerun c's stage first) */
    put("a.bin", "alpha, rewritten");
    st = status("c.bin");
    assert_int_equal(st.state, MF_STALE);
    assert_string_equal(st.rerun, "stagec");
    assert_string_equal(st.why, "c.bin was built from another a.bin");
    st = status("d.bin");
    assert_int_equal(st.state, MF_STALE);
    assert_string_equal(st.rerun, "stagec");
    assert_string_equal(st.why, "d.bin was built from c.bin, and c.bin was built from another a.bin");
    assert_int_equal(mf_check(g_ws, both, 4, &err), SD_ERR_STATE);
    assert_non_null(strstr(err.msg, "c.bin is stale"));
    assert_non_null(strstr(err.msg, "rerun `serendip stagec`"));

    /* rerunning the stage records the new inputs: fresh again, and d now sees a new c.bin */
    put("c.bin", "charlie, rebuilt");
    assert_int_equal(mf_record(g_ws, "c.bin", "stagec", ab, 3, &err), SD_OK);
    assert_int_equal(status("c.bin").state, MF_FRESH);
    st = status("d.bin");
    assert_int_equal(st.state, MF_STALE);
    assert_string_equal(st.rerun, "staged");

    /* a gone input */
    char *pb = sd_path_join(g_ws, "b.bin");
    assert_int_equal(remove(pb), 0);
    st = status("c.bin");
    assert_int_equal(st.state, MF_STALE);
    assert_string_equal(st.why, "c.bin was built from b.bin, which is gone");
    put("b.bin", "bravo");
    assert_int_equal(status("c.bin").state, MF_FRESH); /* the same bytes again */

    /* a file rewritten without recording: its record describes another version */
    put("c.bin", "charlie, written by hand");
    assert_int_equal(status("c.bin").state, MF_UNRECORDED);

    /* a malformed record is an error naming it */
    put("manifest/d.bin.json", "{\"stage\": 3}");
    assert_int_equal(mf_status_of(g_ws, "d.bin", &st, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "manifest/d.bin.json"));
    free(pa), free(pb);
}

/* world_truth.bin describes the dataset.bin `serendip world` wrote with it, no other. */
static void test_world_truth_tied(void **state) {
    (void)state;
    sd_err err = {0};
    char ws[128];
    snprintf(ws, sizeof ws, "%s/world", g_ws);
    world_params p;
    world_params_default(&p);
    p.n_users = 40, p.n_items = 60, p.n_topics = 2, p.n_subtopics = 2, p.days = 30;
    assert_int_equal(world_write(&p, ws, NULL, &err), SD_OK);
    char *tp = sd_path_join(ws, WORLD_TRUTH_FILE), *dp = sd_path_join(ws, DS_FILE);
    world_truth t;
    assert_int_equal(world_truth_load(&t, tp, &err), SD_OK);
    world_truth_free(&t);
    /* another dataset in its place (what `serendip ingest` over a world workspace does) */
    ds_builder *b = ds_builder_new();
    assert_int_equal(ds_builder_add_item(b, 1, "A film", "Drama", &err), SD_OK);
    ds_builder_add_event(b, 1, 1, 10, 5, DS_NO_VALUE);
    ds_dataset d;
    assert_int_equal(ds_builder_finish(b, &d, &err), SD_OK);
    assert_int_equal(ds_save(&d, dp, &err), SD_OK);
    ds_free(&d);
    assert_int_equal(world_truth_load(&t, tp, &err), SD_ERR_STATE);
    assert_non_null(strstr(err.msg, "describes another dataset.bin"));
    free(tp), free(dp);
}

/* A pid that was a process and is gone: a child that exited and was reaped. */
static long dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    assert_true(p > 0);
    waitpid(p, NULL, 0);
    return (long)p;
}

static int exists(const char *name) {
    char *p = sd_path_join(g_ws, name);
    int e = sd_file_exists(p);
    free(p);
    return e;
}

/* The next atomic write of a file removes the temporaries killed runs left beside it (and only
 * those: a live process's stays); the next folder replacement removes killed runs' new/old folders. */
static void test_leftovers_removed(void **state) {
    (void)state;
    sd_err err = {0};
    long dead = dead_pid();
    char n1[64], n2[64], n3[64], n4[64];
    snprintf(n1, sizeof n1, "out.bin.tmp.%ld", dead);
    snprintf(n2, sizeof n2, "out.bin.tmp.%ld", (long)getppid()); /* alive */
    snprintf(n3, sizeof n3, "other.bin.tmp.%ld", dead);           /* another file's */
    snprintf(n4, sizeof n4, "models.new.%ld/base.gguf", dead);
    put(n1, "half"), put(n2, "in progress"), put(n3, "half");
    char *d4 = sd_asprintf("%s/models.new.%ld", g_ws, dead);
    assert_int_equal(sd_mkdir_p(d4, &err), SD_OK);
    put(n4, "half a model");
    put("out.bin", "whole"); /* sd_write_file_atomic -> sd_afile_open */
    assert_false(exists(n1));
    assert_true(exists(n2));
    assert_true(exists(n3));
    assert_true(exists("out.bin"));
    char *src = sd_path_join(g_ws, "models.mine"), *dst = sd_path_join(g_ws, "models");
    assert_int_equal(sd_mkdir_p(src, &err), SD_OK);
    assert_int_equal(sd_replace_dir(src, dst, &err), SD_OK);
    assert_false(sd_file_exists(d4));
    assert_true(sd_file_exists(dst));
    free(d4), free(src), free(dst);
}

int main(void) {
    sd_verbosity = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_stale_chain),
        cmocka_unit_test(test_world_truth_tied),
        cmocka_unit_test(test_leftovers_removed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
