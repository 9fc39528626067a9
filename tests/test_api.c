/* test_api.c - the public C API (serendip.h) driven as a program using libserendip would: errors
 * as codes with messages, handles counted back to zero, options parsed and refused by name, the
 * progress callback, a tiny pipeline run through serendip_run, the explore answer equal to the
 * internal answer path's bytes (an_answer), raw ids typed as text (integer and string
 * datasets), embeddings, and models (generate is reproducible,
 * scores are log-probabilities). The Python suite (python/tests) compares everything with the
 * command line; this one needs no Python. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/answer.h"
#include "serendip/serendip.h"

static char g_root[64], g_ws[128];

static void rm_rf(const char *p) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", p);
}

/* ---------------------------------------------------------------- errors and handles */

static void test_workspace_errors(void **state) {
    (void)state;
    serendip_error err;
    serendip_workspace *ws = (serendip_workspace *)1;
    char p[192];
    snprintf(p, sizeof p, "%s/absent", g_root);
    assert_int_equal(serendip_workspace_open(&ws, p, 0, &err), SERENDIP_ERR_STATE);
    assert_null(ws);
    assert_int_equal(err.code, SERENDIP_ERR_STATE);
    assert_non_null(strstr(err.message, "absent"));
    snprintf(p, sizeof p, "%s/file", g_root);
    FILE *f = fopen(p, "w");
    fputs("x", f);
    fclose(f);
    assert_int_equal(serendip_workspace_open(&ws, p, 1, &err), SERENDIP_ERR_IO);
    assert_non_null(strstr(err.message, "not a folder"));
    assert_int_equal(serendip_live_handles(), 0);
    snprintf(p, sizeof p, "%s/new/deeper", g_root);
    assert_int_equal(serendip_workspace_open(&ws, p, 1, &err), SERENDIP_OK);
    assert_string_equal(err.message, "");
    assert_string_equal(serendip_workspace_path(ws), p);
    assert_int_equal(serendip_live_handles(), 1);
    serendip_workspace_free(ws);
    serendip_workspace_free(NULL);
    assert_int_equal(serendip_live_handles(), 0);
    assert_string_equal(serendip_status_name(SERENDIP_ERR_USAGE), "usage");
    assert_string_equal(serendip_status_name(99), "unknown");
    int major, minor;
    const char *v = serendip_version(&major, &minor);
    assert_int_equal(major, SERENDIP_API_VERSION_MAJOR);
    assert_int_equal(minor, SERENDIP_API_VERSION_MINOR);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.0", major, minor);
    assert_string_equal(v, want);
}

static void test_options_refused(void **state) {
    (void)state;
    serendip_error err;
    serendip_workspace *ws;
    char p[192];
    snprintf(p, sizeof p, "%s/opts", g_root);
    assert_int_equal(serendip_workspace_open(&ws, p, 1, &err), 0);
    char *rep = (char *)1;
    const char *bogus[] = {"clusters=3", "bogus=1", NULL};
    assert_int_equal(serendip_run(ws, "cluster", bogus, NULL, NULL, &rep, &err), SERENDIP_ERR_USAGE);
    assert_null(rep);
    assert_non_null(strstr(err.message, "unknown option 'bogus'"));
    const char *notint[] = {"users=many", NULL};
    assert_int_equal(serendip_run(ws, "world", notint, NULL, NULL, NULL, &err), SERENDIP_ERR_USAGE);
    assert_non_null(strstr(err.message, "users='many' is not an integer"));
    const char *novalue[] = {"seed", NULL};
    assert_int_equal(serendip_run(ws, "world", novalue, NULL, NULL, NULL, &err), SERENDIP_ERR_USAGE);
    const char *range[] = {"clusters=0", NULL};
    assert_int_equal(serendip_run(ws, "cluster", range, NULL, NULL, NULL, &err), SERENDIP_ERR_USAGE);
    assert_int_equal(serendip_run(ws, "nonsense", NULL, NULL, NULL, NULL, &err), SERENDIP_ERR_USAGE);
    assert_int_equal(serendip_run(ws, "split", NULL, NULL, NULL, NULL, &err), SERENDIP_ERR_STATE); /* no dataset */
    assert_null(serendip_stage_help("nonsense"));
    const char *h = serendip_stage_help("cluster");
    assert_non_null(h);
    assert_non_null(strstr(h, "clusters=INT"));
    assert_non_null(strstr(serendip_stage_help("train"), "no-retrieval "));
    assert_ptr_equal(h, serendip_stage_help("cluster")); /* built once */
    serendip_workspace_free(ws);
    assert_int_equal(serendip_live_handles(), 0);
}

/* ---------------------------------------------------------------- the pipeline */

typedef struct {
    int calls, ends, bad;
    char last_label[64];
    int64_t last_done;
} progress_log;

static void on_progress(void *user, const char *label, int64_t done, int64_t total) {
    progress_log *l = user;
    l->calls++;
    if (strcmp(label, l->last_label)) snprintf(l->last_label, sizeof l->last_label, "%s", label), l->last_done = 0;
    if (done < l->last_done || (total > 0 && done > total)) l->bad++;
    l->last_done = done;
    if (total > 0 && done == total) l->ends++;
}

static void run_ok(serendip_workspace *ws, const char *stage, const char *const *opts, progress_log *log) {
    serendip_error err;
    char *rep = NULL;
    int rc = serendip_run(ws, stage, opts, log ? on_progress : NULL, log, &rep, &err);
    if (rc) fprintf(stderr, "%s: %s\n", stage, err.message);
    assert_int_equal(rc, 0);
    assert_non_null(rep);
    assert_true(rep[0] == '{');
    serendip_free(rep);
}

static void test_pipeline(void **state) {
    (void)state;
    serendip_error err;
    serendip_workspace *ws;
    assert_int_equal(serendip_workspace_open(&ws, g_ws, 1, &err), 0);
    progress_log log = {0};
    const char *world[] = {"users=300", "items=200", "topics=4", "subtopics=3", "seed=5", NULL};
    char *rep;
    assert_int_equal(serendip_run(ws, "world", world, on_progress, &log, &rep, &err), 0);
    assert_non_null(strstr(rep, "\"users\":300"));
    serendip_free(rep);
    assert_true(log.calls >= 2);
    assert_true(log.ends >= 1);
    assert_int_equal(log.bad, 0);
    run_ok(ws, "split", NULL, NULL);
    const char *cluster[] = {"top=3", "clusters=12", NULL};
    run_ok(ws, "cluster", cluster, NULL);
    run_ok(ws, "journeys", NULL, NULL);
    const char *train[] = {"dim=16", "layers=1", "heads=2", "kv_heads=1", "hidden=32", "vocab=300", "pretrain-steps=5",
                           "novelty_steps=5", "align_steps=5", "batch=4", "seq_len=64", NULL};
    log = (progress_log){0};
    run_ok(ws, "train", train, &log);
    assert_true(log.ends >= 3); /* tokenizer, pretraining, fine-tunes, retrieval */
    assert_int_equal(log.bad, 0);
    const char *plan[] = {"n=2", "constrained", "seed=3", NULL};
    run_ok(ws, "plan", plan, NULL);
    const char *ev[] = {"bootstrap=10", NULL};
    run_ok(ws, "eval", ev, NULL);
    char *json;
    assert_int_equal(serendip_metrics_json(ws, &json, &err), 0);
    assert_non_null(strstr(json, "\"arms\""));
    serendip_free(json);
    assert_int_equal(serendip_clusters_json(ws, &json, &err), 0);
    assert_non_null(strstr(json, "\"id\":11,"));
    assert_null(strstr(json, "\"id\":12,"));
    serendip_free(json);
    serendip_workspace_free(ws);
    assert_int_equal(serendip_live_handles(), 0);
}

/* The public answer is the internal answer path's, byte for byte. */
static void test_explore(void **state) {
    (void)state;
    serendip_error err;
    serendip_explorer *x;
    assert_int_equal(serendip_explorer_open(&x, g_ws, NULL, NULL, &err), 0);
    assert_int_equal(serendip_explorer_k(x), 2);
    an_workspace *w;
    sd_err e = {0};
    assert_int_equal(an_open(&w, g_ws, NULL, &e), 0);
    int planned_total = 0;
    for (int64_t user = 1; user <= 20; user++) {
        serendip_query q = {.kind = SERENDIP_QUERY_USER, .user = user, .clusters = 4, .items_per_cluster = 3};
        serendip_answer *a;
        assert_int_equal(serendip_explore(x, NULL, 1, &q, &a, &err), 0);
        an_query aq = {.kind = AN_QUERY_USER, .user = user, .clusters = 4, .items_per = 3};
        an_result r;
        assert_int_equal(an_answer(w, NULL, 1, &aq, &r, &e), 0);
        size_t len;
        const char *j = serendip_answer_json(a, &len);
        assert_int_equal(len, r.len);
        assert_memory_equal(j, r.json, len);
        int planned, fallback;
        serendip_answer_counts(a, &planned, &fallback);
        assert_int_equal(planned, r.n_planned);
        assert_int_equal(fallback, r.n_fallback);
        planned_total += planned;
        char *taken = serendip_answer_take_json(a, &len);
        assert_int_equal(len, r.len);
        assert_memory_equal(taken, r.json, len);
        assert_string_equal(serendip_answer_json(a, NULL), "");
        serendip_free(taken);
        serendip_answer_free(a);
        an_result_free(&r);
    }
    assert_true(planned_total > 0);
    an_free(w);
    serendip_answer *a = (serendip_answer *)1;
    serendip_query q = {.kind = SERENDIP_QUERY_USER, .user = 987654, .clusters = 4};
    assert_int_equal(serendip_explore(x, NULL, 1, &q, &a, &err), SERENDIP_ERR_DATA);
    assert_null(a);
    assert_non_null(strstr(err.message, "unknown user 987654"));
    int32_t ctx[1] = {0};
    q = (serendip_query){.kind = SERENDIP_QUERY_CONTEXT, .context = ctx, .n = 1, .clusters = 2};
    assert_int_equal(serendip_explore(x, NULL, 1, &q, &a, &err), SERENDIP_ERR_USAGE);
    q = (serendip_query){.kind = 7, .clusters = 2};
    assert_int_equal(serendip_explore(x, NULL, 1, &q, &a, &err), SERENDIP_ERR_USAGE);
    q = (serendip_query){.kind = SERENDIP_QUERY_USER, .user = 1, .clusters = 0};
    assert_int_equal(serendip_explore(x, NULL, 1, &q, &a, &err), SERENDIP_ERR_USAGE);
    assert_int_equal(serendip_live_handles(), 1);
    serendip_explorer_free(x);
    assert_int_equal(serendip_live_handles(), 0);
    char p[192];
    snprintf(p, sizeof p, "%s/opts", g_root); /* no table there */
    assert_int_equal(serendip_explorer_open(&x, p, NULL, NULL, &err), SERENDIP_ERR_STATE);
}

/* Raw ids typed as text (serendip_explorer_user / _items, API 1.1). On the integer workspace they
 * give the numbers a program passes today and the same answer; on a copy of it whose dataset has
 * string ids ("u_<id>", "i_<id>", same dense order) they name users and items by those strings,
 * an unknown user is SERENDIP_ERR_DATA naming it, and an unknown item is counted, not an error. */
static void test_raw_ids(void **state) {
    (void)state;
    serendip_error err;
    serendip_explorer *x;
    assert_int_equal(serendip_explorer_open(&x, g_ws, NULL, NULL, &err), 0);
    /* integer ids: text -> the same number and the same answer as before */
    int64_t user = 0;
    assert_int_equal(serendip_explorer_user(x, "17", &user, &err), 0);
    assert_int_equal(user, 17);
    serendip_query q = {.kind = SERENDIP_QUERY_USER, .user = 17, .clusters = 4, .items_per_cluster = 3};
    serendip_answer *a, *b;
    assert_int_equal(serendip_explore(x, NULL, 1, &q, &a, &err), 0);
    q.user = user;
    assert_int_equal(serendip_explore(x, NULL, 1, &q, &b, &err), 0);
    assert_string_equal(serendip_answer_json(a, NULL), serendip_answer_json(b, NULL));
    assert_null(strstr(serendip_answer_json(a, NULL), "raw_id")); /* integer datasets: no raw id fields */
    serendip_answer_free(a);
    serendip_answer_free(b);
    assert_int_equal(serendip_explorer_user(x, "987654", &user, &err), SERENDIP_ERR_DATA);
    assert_non_null(strstr(err.message, "unknown user 987654"));
    assert_int_equal(serendip_explorer_user(x, "u_17", &user, &err), SERENDIP_ERR_USAGE);
    assert_non_null(strstr(err.message, "user \"u_17\" is not an integer id"));
    assert_int_equal(serendip_explorer_user(x, " 17", &user, &err), SERENDIP_ERR_USAGE); /* strict, as the server */
    assert_int_equal(serendip_explorer_user(x, NULL, &user, &err), SERENDIP_ERR_USAGE);
    const char *items[] = {"5", "999999", "7"};
    int64_t ids[3];
    assert_int_equal(serendip_explorer_items(x, items, 3, ids, &err), 0);
    assert_true(ids[0] == 5 && ids[1] == 999999 && ids[2] == 7); /* unknown integers stay: the answer counts them */
    const char *bad_items[] = {"5", "B0001"};
    assert_int_equal(serendip_explorer_items(x, bad_items, 2, ids, &err), SERENDIP_ERR_USAGE);
    assert_non_null(strstr(err.message, "item \"B0001\" is not an integer id"));
    assert_int_equal(serendip_explorer_items(x, items, SERENDIP_HISTORY_MAX + 1, ids, &err), SERENDIP_ERR_USAGE);
    serendip_explorer_free(x);

    /* the same workspace with string ids */
    char sws[192], cmd[512], path[256];
    snprintf(sws, sizeof sws, "%s/strws", g_root);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", g_ws, sws);
    assert_int_equal(system(cmd), 0);
    ds_dataset d, s;
    sd_err e = {0};
    snprintf(path, sizeof path, "%s/dataset.bin", g_ws);
    assert_int_equal(ds_load(&d, path, &e), 0);
    ds_builder *bl = ds_builder_new();
    char name[64], name2[64];
    for (int64_t i = 0; i < d.n_items; i++) {
        snprintf(name, sizeof name, "i_%lld", (long long)d.item_ids[i]);
        assert_int_equal(ds_builder_add_item_str(bl, name, ds_item_title(&d, i), ds_item_tags(&d, i), &e), 0);
    }
    for (int64_t k = 0; k < d.n_events; k++) {
        const ds_event *ev = &d.events[k];
        snprintf(name, sizeof name, "u_%lld", (long long)d.user_ids[ev->user]);
        snprintf(name2, sizeof name2, "i_%lld", (long long)d.item_ids[ev->item]);
        ds_builder_add_event_str(bl, name, name2, ev->ts, ev->rating, ev->watch);
    }
    assert_int_equal(ds_builder_finish(bl, &s, &e), 0);
    assert_true(ds_has_user_names(&s) && ds_has_item_names(&s));
    snprintf(path, sizeof path, "%s/dataset.bin", sws);
    assert_int_equal(ds_save(&s, path, &e), 0);
    snprintf(path, sizeof path, "%s/world_truth.bin", sws); /* the world's truth names the integer dataset */
    unlink(path);
    int64_t u17 = ds_find_user(&d, 17), i5 = ds_find_item(&d, 5);
    assert_true(u17 >= 0 && i5 >= 0);
    int64_t want_user = s.user_ids[u17], want_item = s.item_ids[i5]; /* internal numbers, dense order kept */
    ds_free(&s);
    ds_free(&d);
    serendip_workspace *ws; /* the later stages again, over the string-id dataset */
    assert_int_equal(serendip_workspace_open(&ws, sws, 0, &err), 0);
    const char *cluster[] = {"top=3", "clusters=12", NULL};
    const char *train[] = {"dim=16", "layers=1", "heads=2", "kv_heads=1", "hidden=32", "vocab=300", "pretrain-steps=5",
                           "novelty_steps=5", "align_steps=5", "batch=4", "seq_len=64", NULL};
    const char *plan[] = {"n=2", "constrained", "seed=3", NULL};
    run_ok(ws, "split", NULL, NULL);
    run_ok(ws, "cluster", cluster, NULL);
    run_ok(ws, "journeys", NULL, NULL);
    run_ok(ws, "train", train, NULL);
    run_ok(ws, "plan", plan, NULL);
    serendip_workspace_free(ws);
    assert_int_equal(serendip_explorer_open(&x, sws, NULL, NULL, &err), 0);
    assert_int_equal(serendip_explorer_user(x, "u_17", &user, &err), 0);
    assert_int_equal(user, want_user);
    q = (serendip_query){.kind = SERENDIP_QUERY_USER, .user = user, .clusters = 4, .items_per_cluster = 3};
    assert_int_equal(serendip_explore(x, NULL, 1, &q, &a, &err), 0);
    const char *j = serendip_answer_json(a, NULL);
    assert_non_null(strstr(j, "\"user_raw_id\":\"u_17\""));
    assert_non_null(strstr(j, "\"raw_id\":\"i_"));
    serendip_answer_free(a);
    assert_int_equal(serendip_explorer_user(x, "nobody-here", &user, &err), SERENDIP_ERR_DATA);
    assert_int_equal(err.code, SERENDIP_ERR_DATA);
    assert_non_null(strstr(err.message, "unknown user \"nobody-here\""));
    snprintf(name, sizeof name, "%lld", (long long)want_user); /* the internal number shown in "user" */
    assert_int_equal(serendip_explorer_user(x, name, &user, &err), 0);
    assert_int_equal(user, want_user);
    const char *sitems[] = {"i_5", "no-such-item", "i_7"};
    assert_int_equal(serendip_explorer_items(x, sitems, 3, ids, &err), 0);
    assert_int_equal(ids[0], want_item);
    assert_true(ids[1] == SERENDIP_ITEM_UNKNOWN);
    q = (serendip_query){.kind = SERENDIP_QUERY_ITEMS, .items = ids, .n = 3, .clusters = 2, .items_per_cluster = 2};
    assert_int_equal(serendip_explore(x, NULL, 1, &q, &a, &err), 0);
    assert_non_null(strstr(serendip_answer_json(a, NULL), "\"unknown_items\":1,"));
    serendip_answer_free(a);
    serendip_explorer_free(x);
    assert_int_equal(serendip_live_handles(), 0);
}

static void test_embeddings_and_models(void **state) {
    (void)state;
    serendip_error err;
    serendip_workspace *ws;
    assert_int_equal(serendip_workspace_open(&ws, g_ws, 0, &err), 0);
    serendip_embeddings *e;
    assert_int_equal(serendip_embeddings_open(&e, ws, &err), 0);
    int64_t n;
    int dim;
    const float *U = serendip_embeddings_data(e, &n, &dim);
    assert_int_equal(n, 200);
    assert_int_equal(dim, 48);
    double norm = 0;
    for (int64_t i = 0; i < n * dim; i++) norm += (double)U[i] * U[i];
    assert_true(norm > 0 && isfinite(norm));
    const int64_t *ids = serendip_embeddings_item_ids(e);
    for (int64_t i = 1; i < n; i++) assert_true(ids[i] != ids[0]);
    serendip_embeddings_free(e);

    char path[192];
    snprintf(path, sizeof path, "%s/models/novelty.gguf", g_ws);
    serendip_model *m;
    assert_int_equal(serendip_model_open(&m, path, &err), 0);
    char *a, *b;
    assert_int_equal(serendip_model_generate(m, "<|ctx|>", 3, 1.0f, 0, 1.0f, 7, 6, &a, &err), 0);
    assert_int_equal(serendip_model_generate(m, "<|ctx|>", 3, 1.0f, 0, 1.0f, 7, 6, &b, &err), 0);
    assert_string_equal(a, b); /* the same seed, the same samples */
    assert_non_null(strstr(a, "\"logprob\""));
    serendip_free(a), serendip_free(b);
    assert_int_equal(serendip_model_generate(m, "<|ctx|>", 0, 1.0f, 0, 1.0f, 7, 6, &a, &err), SERENDIP_ERR_USAGE);
    const char *conts[] = {"a", "bb ccc"};
    double lp[2];
    assert_int_equal(serendip_model_score(m, "<|ctx|>", conts, 2, lp, &err), 0);
    assert_true(lp[0] < 0 && lp[1] < 0 && isfinite(lp[0]) && isfinite(lp[1])); /* log-probabilities */
    serendip_model_free(m);
    snprintf(path, sizeof path, "%s/clusters.tsv", g_ws);
    assert_int_equal(serendip_model_open(&m, path, &err), SERENDIP_ERR_FORMAT);
    serendip_workspace_free(ws);
    assert_int_equal(serendip_live_handles(), 0);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/sdapi.XXXXXX");
    if (!mkdtemp(g_root)) return 1;
    snprintf(g_ws, sizeof g_ws, "%s/ws", g_root);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workspace_errors), cmocka_unit_test(test_options_refused),
        cmocka_unit_test(test_pipeline),         cmocka_unit_test(test_explore),
        cmocka_unit_test(test_raw_ids),
        cmocka_unit_test(test_embeddings_and_models),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rm_rf(g_root);
    return rc;
}
