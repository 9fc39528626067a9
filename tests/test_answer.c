/* test_answer.c - the one answer path (answer.h) on a workspace written by the test: the
 * novel-for-the-user filter (a user who has seen the top planned cluster gets the next one; a user
 * who has seen every planned cluster gets flagged fallbacks), the popularity fallback's order,
 * items by popularity within the cluster without retrieval.bin, stateless and context queries,
 * the exact JSON field set, errors, concurrent readers, and the workspace's positive rule
 * (jr_workspace_rule / jr_resolve_rule). Every expected value is worked out by hand below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/answer.h"
#include "serendip/journeys.h"

/* ---------------------------------------------------------------- fixture
 * 12 items, raw 100+i, in cluster i/2 (M = 6 clusters of 2 items; K = 2). No retrieval.bin.
 * user 1: 100 r5 (c0) | 102 r5 (c1)                               context (0, 1), touched {0, 1}
 * user 2: as user 1, then 110 r2 (c5, not positive)               context (0, 1), touched {0, 1, 5}
 * user 3: as user 2, then 108 r1 (c4, not positive)               context (0, 1), touched {0, 1, 4, 5}
 * user 4: 100 r5 (c0) | 102 r4 (c1) | 104 r5 (c2)                 context (1, 2) under rating >= 4,
 *                                                                 (0, 2) under rating >= 5
 * users 20..29: one event each on 106 (c3), rating 3; users 30..32: one on 104 (c2), rating 3.
 * Events per item: 100: 4, 102: 4, 104: 4, 106: 10, 108: 1, 110: 2, the rest 0.
 * Events per cluster: c0 4, c1 4, c2 4, c3 10, c4 1, c5 2 -> popularity order 3, 0, 1, 2, 5, 4.
 * Table: every valid context (a, b) plans the two highest cluster ids not in it, scores 8 then 7,
 * log-probabilities -1 then -2; the slot of (2, 3) is flagged as a planner fallback. */

enum { N_ITEMS = 12, M = 6 };
static const char *DESCS[M] = {"war, drama", "space, alien", "comedy, family", "noir, crime", "sport, team", "music, band"};
static char g_ws[64];
static an_workspace *g_w;

static void fixture_tax(const ds_dataset *d, tx_taxonomy *t) {
    memset(t, 0, sizeof *t);
    t->n_top = 1, t->n_clusters = M, t->n_items = d->n_items;
    t->item_cluster = sd_malloc((size_t)d->n_items * sizeof(int32_t));
    t->parent = sd_calloc(M, sizeof(int32_t));
    t->size = sd_malloc(M * sizeof(int32_t));
    t->desc = sd_malloc(M * sizeof(char *));
    t->top_desc = sd_malloc(sizeof(char *));
    t->top_desc[0] = sd_strdup("everything");
    t->members = sd_malloc(N_ITEMS * sizeof(int32_t));
    t->member_off = sd_malloc((M + 1) * sizeof(int64_t));
    /* members deliberately listed least popular first: the ranker must sort by events itself */
    for (int i = 0; i < N_ITEMS; i++) {
        int32_t di = (int32_t)ds_find_item(d, 100 + i);
        t->item_cluster[di] = i / 2;
        t->members[(i / 2) * 2 + (1 - i % 2)] = di;
    }
    for (int c = 0; c < M; c++) t->size[c] = 2, t->desc[c] = sd_strdup(DESCS[c]), t->member_off[c] = 2 * c;
    t->member_off[M] = N_ITEMS;
}

static int write_table(const char *path, uint64_t th, int64_t begin, int64_t end, sd_err *err) {
    tbl_params p = {.k = 2, .n_clusters = M, .n_contexts = M * M, .top = 3, .n_samples = 4, .temperature = 1,
                    .seed = 1, .tax_hash = th, .begin = begin, .end = end, .kind = TBL_KIND_LLM};
    tbl_builder *b = tbl_builder_new(&p, err);
    if (!b) return err->code;
    for (int a = begin / M; a < M && a * M < end; a++)
        for (int c2 = 0; c2 < M; c2++) {
            if (a == c2 || a * M + c2 < begin || a * M + c2 >= end) continue;
            tbl_entry e[2];
            int n = 0;
            for (int c = M - 1; c >= 0 && n < 2; c--)
                if (c != a && c != c2) e[n].cluster = c, e[n].align_score = 8.0f - (float)n, e[n].novelty_logprob = -1.0f - (float)n, n++;
            if (tbl_builder_set(b, a * M + c2, e, n, a == 2 && c2 == 3 ? TBL_FLAG_FALLBACK : 0, err)) return err->code;
        }
    int rc = tbl_write(b, path, err);
    tbl_builder_free(b);
    return rc;
}

static int write_fixture(const char *dir, sd_err *err) {
    ds_builder *b = ds_builder_new();
    for (int i = 0; i < N_ITEMS; i++) {
        char title[32];
        snprintf(title, sizeof title, "Movie %d", 100 + i);
        if (ds_builder_add_item(b, 100 + i, title, "Drama", err)) return err->code;
    }
    const float N = DS_NO_VALUE;
    for (int u = 1; u <= 3; u++) ds_builder_add_event(b, u, 100, 10, 5, N), ds_builder_add_event(b, u, 102, 20, 5, N);
    ds_builder_add_event(b, 2, 110, 30, 2, N);
    ds_builder_add_event(b, 3, 110, 30, 2, N), ds_builder_add_event(b, 3, 108, 40, 1, N);
    ds_builder_add_event(b, 4, 100, 10, 5, N), ds_builder_add_event(b, 4, 102, 20, 4, N), ds_builder_add_event(b, 4, 104, 30, 5, N);
    for (int u = 20; u < 30; u++) ds_builder_add_event(b, u, 106, 10, 3, N);
    for (int u = 30; u < 33; u++) ds_builder_add_event(b, u, 104, 10, 3, N);
    ds_dataset d;
    if (ds_builder_finish(b, &d, err)) return err->code;
    tx_taxonomy t;
    fixture_tax(&d, &t);
    char *p;
    int rc = ds_save(&d, p = sd_path_join(dir, DS_FILE), err);
    free(p);
    if (!rc) rc = tx_save(&t, p = sd_path_join(dir, TX_FILE), err), free(p);
    if (!rc) rc = write_table(p = sd_path_join(dir, TBL_FILE), tx_hash(&t), 0, M * M, err), free(p);
    if (!rc) rc = write_table(p = sd_path_join(dir, "shard.tbl"), tx_hash(&t), 0, 18, err), free(p);
    tx_free(&t);
    ds_free(&d);
    return rc;
}

static int setup(void **state) {
    (void)state;
    sd_err err = {0};
    snprintf(g_ws, sizeof g_ws, "/tmp/sdanswer.XXXXXX");
    if (!mkdtemp(g_ws) || write_fixture(g_ws, &err)) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return -1;
    }
    if (an_open(&g_w, g_ws, NULL, &err)) {
        fprintf(stderr, "an_open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    an_free(g_w);
    sd_err err;
    sd_remove_tree(g_ws, &err);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static cJSON *answer(const an_query *q) {
    an_result r;
    sd_err err = {0};
    int rc = an_answer(g_w, NULL, 7, q, &r, &err);
    if (rc) fail_msg("an_answer: %s", err.msg);
    cJSON *j = cJSON_ParseWithLength(r.json, r.len);
    assert_non_null(j);
    assert_int_equal(r.json[r.len - 1], '\n');
    an_result_free(&r);
    return j;
}

static an_query user_query(int64_t user, int clusters, int items) {
    return (an_query){.kind = AN_QUERY_USER, .user = user, .clusters = clusters, .items_per = items};
}

/* The novel list as "id:score:F id:score:F ..." (score "-" when null, F for fallback). */
static void novel_string(const cJSON *j, char *out, size_t cap) {
    out[0] = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "novel")) {
        size_t l = strlen(out);
        int id = (int)cJSON_GetObjectItem(c, "id")->valuedouble;
        const cJSON *sc = cJSON_GetObjectItem(c, "score");
        char s[16] = "-";
        if (cJSON_IsNumber(sc)) snprintf(s, sizeof s, "%g", sc->valuedouble);
        snprintf(out + l, cap - l, "%s%d:%s%s", l ? " " : "", id, s,
                 cJSON_IsTrue(cJSON_GetObjectItem(c, "fallback")) ? ":F" : "");
        assert_string_equal(cJSON_GetObjectItem(c, "description")->valuestring, DESCS[id]);
    }
}

/* The items of novel cluster i as "raw:score raw:score". */
static void items_string(const cJSON *j, int i, char *out, size_t cap) {
    out[0] = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "novel"), i), "items")) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%d:%g", l ? " " : "", (int)cJSON_GetObjectItem(x, "id")->valuedouble,
                 cJSON_GetObjectItem(x, "score")->valuedouble);
    }
}

static void context_string(const cJSON *j, char *out, size_t cap) {
    out[0] = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "context")) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%d", l ? "," : "", (int)cJSON_GetObjectItem(c, "id")->valuedouble);
    }
}

/* The object's keys, in order, comma-separated. */
static void keys(const cJSON *o, char *out, size_t cap) {
    out[0] = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, o) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", l ? "," : "", c->string);
    }
}

/* ---------------------------------------------------------------- tests */

static void test_novel_for_the_user(void **state) {
    (void)state;
    char s[256];
    /* user 1 touched only its context: the plan (5, 4), then the popular 3 and 2, flagged */
    cJSON *j = answer(&(an_query){.kind = AN_QUERY_USER, .user = 1, .clusters = 5, .items_per = 2});
    novel_string(j, s, sizeof s);
    assert_string_equal(s, "5:8 4:7 3:-:F 2:-:F");
    context_string(j, s, sizeof s);
    assert_string_equal(s, "0,1");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "context_complete")));
    assert_string_equal(cJSON_GetObjectItem(j, "ranker")->valuestring, "popularity");
    assert_int_equal((int)cJSON_GetObjectItem(j, "table_version")->valuedouble, 7);
    assert_int_equal((int)cJSON_GetObjectItem(j, "k")->valuedouble, 2);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "novel"), 2), "logprob")));
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "novel"), 1), "logprob")->valuedouble, -2);
    cJSON_Delete(j);

    /* user 2 has an event on item 110 of the top planned cluster 5: it gets the next one, 4 */
    j = answer(&(an_query){.kind = AN_QUERY_USER, .user = 2, .clusters = 1, .items_per = 2});
    novel_string(j, s, sizeof s);
    assert_string_equal(s, "4:7");
    cJSON_Delete(j);
    j = answer(&(an_query){.kind = AN_QUERY_USER, .user = 2, .clusters = 5, .items_per = 2});
    novel_string(j, s, sizeof s);
    assert_string_equal(s, "4:7 3:-:F 2:-:F");
    cJSON_Delete(j);

    /* user 3 touched both planned clusters (5 and 4, by non-positive events): only fallbacks, in
     * popularity order among the untouched clusters (3: 10 events, then 2: 4) */
    an_result r;
    sd_err err = {0};
    an_query q = user_query(3, 5, 2);
    assert_int_equal(an_answer(g_w, NULL, 1, &q, &r, &err), SD_OK);
    assert_int_equal(r.n_planned, 0);
    assert_int_equal(r.n_fallback, 2);
    /* the structured form says the same: clusters 3 then 2, fallbacks without scores, context (0, 1) */
    assert_int_equal(r.n_picks, 2);
    assert_int_equal(r.picks[0].cluster, 3);
    assert_int_equal(r.picks[1].cluster, 2);
    assert_true(r.picks[0].fallback && r.picks[1].fallback && isnan(r.picks[0].score));
    assert_int_equal(r.n_context, 2);
    assert_int_equal(r.context[0], 0);
    assert_int_equal(r.context[1], 1);
    j = cJSON_ParseWithLength(r.json, r.len);
    an_result_free(&r);
    novel_string(j, s, sizeof s);
    assert_string_equal(s, "3:-:F 2:-:F");
    cJSON_Delete(j);

    /* the counts of user 1's answer */
    q = user_query(1, 5, 0);
    assert_int_equal(an_answer(g_w, NULL, 1, &q, &r, &err), SD_OK);
    assert_int_equal(r.n_planned, 2);
    assert_int_equal(r.n_fallback, 2);
    assert_int_equal(r.context_complete, 1);
    an_result_free(&r);
}

static void test_items_by_popularity(void **state) {
    (void)state;
    char s[256];
    /* no retrieval.bin: the cluster's unseen items by events, ties to the lower index; the
     * taxonomy lists them least popular first, so its order alone would be wrong */
    cJSON *j = answer(&(an_query){.kind = AN_QUERY_USER, .user = 1, .clusters = 4, .items_per = 2});
    items_string(j, 0, s, sizeof s);
    assert_string_equal(s, "110:2 111:0");
    items_string(j, 1, s, sizeof s);
    assert_string_equal(s, "108:1 109:0");
    items_string(j, 2, s, sizeof s);
    assert_string_equal(s, "106:10 107:0");
    items_string(j, 3, s, sizeof s);
    assert_string_equal(s, "104:4 105:0");
    cJSON_Delete(j);
    /* k = 1 keeps the first; k = 0 gives an empty array */
    j = answer(&(an_query){.kind = AN_QUERY_USER, .user = 1, .clusters = 1, .items_per = 1});
    items_string(j, 0, s, sizeof s);
    assert_string_equal(s, "110:2");
    cJSON_Delete(j);
    j = answer(&(an_query){.kind = AN_QUERY_USER, .user = 1, .clusters = 1, .items_per = 0});
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "novel"), 0), "items")), 0);
    cJSON_Delete(j);
}

static void test_stateless_and_context(void **state) {
    (void)state;
    char s[256];
    /* items 100 (c0), 102 (c1), 110 (c5), 999 (unknown): context (1, 5) plans 4, 3; touched
     * {0, 1, 5}; then the popular untouched 2. Cluster 4's items exclude nothing (none given). */
    int64_t items[] = {100, 102, 110, 999};
    cJSON *j = answer(&(an_query){.kind = AN_QUERY_ITEMS, .items = items, .n = 4, .clusters = 5, .items_per = 2});
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "user")));
    assert_int_equal((int)cJSON_GetObjectItem(j, "unknown_items")->valuedouble, 1);
    context_string(j, s, sizeof s);
    assert_string_equal(s, "1,5");
    novel_string(j, s, sizeof s);
    assert_string_equal(s, "4:8 3:7 2:-:F");
    items_string(j, 0, s, sizeof s);
    assert_string_equal(s, "108:1 109:0");
    cJSON_Delete(j);

    /* one item: context incomplete, only fallbacks (3, then 1, 2, 5, 4: c0 touched) */
    int64_t one[] = {100};
    j = answer(&(an_query){.kind = AN_QUERY_ITEMS, .items = one, .n = 1, .clusters = 3, .items_per = 0});
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "context_complete")));
    novel_string(j, s, sizeof s);
    assert_string_equal(s, "3:-:F 1:-:F 2:-:F");
    cJSON_Delete(j);

    /* a given context (2, 3) whose slot the planner filled by its fallback: its entries 5, 4 keep
     * their scores but are flagged; then the popular clusters outside the context (0, 1) */
    int32_t ctx[] = {2, 3};
    j = answer(&(an_query){.kind = AN_QUERY_CONTEXT, .context = ctx, .n = 2, .clusters = 5, .items_per = 0});
    novel_string(j, s, sizeof s);
    assert_string_equal(s, "5:8:F 4:7:F 0:-:F 1:-:F");
    cJSON_Delete(j);
    int32_t ctx01[] = {0, 1};
    j = answer(&(an_query){.kind = AN_QUERY_CONTEXT, .context = ctx01, .n = 2, .clusters = 2, .items_per = 0});
    novel_string(j, s, sizeof s);
    assert_string_equal(s, "5:8 4:7");
    cJSON_Delete(j);
}

static void test_json_fields(void **state) {
    (void)state;
    char s[256];
    cJSON *j = answer(&(an_query){.kind = AN_QUERY_USER, .user = 1, .clusters = 1, .items_per = 1});
    keys(j, s, sizeof s);
    assert_string_equal(s, "user,unknown_items,table_version,k,context,context_complete,ranker,novel");
    keys(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "context"), 0), s, sizeof s);
    assert_string_equal(s, "id,description");
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "novel"), 0);
    keys(c, s, sizeof s);
    assert_string_equal(s, "id,description,score,logprob,fallback,items");
    keys(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "items"), 0), s, sizeof s);
    assert_string_equal(s, "id,title,score");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "items"), 0), "title")->valuestring,
                        "Movie 110");
    cJSON_Delete(j);
}

static void test_errors(void **state) {
    (void)state;
    an_result r;
    sd_err err = {0};
    an_query q = user_query(424242, 5, 5);
    assert_int_equal(an_answer(g_w, NULL, 1, &q, &r, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "unknown user 424242"));
    assert_null(r.json);
    q = user_query(1, 0, 5);
    assert_int_equal(an_answer(g_w, NULL, 1, &q, &r, &err), SD_ERR_USAGE);
    q = user_query(1, AN_CLUSTERS_MAX + 1, 5);
    assert_int_equal(an_answer(g_w, NULL, 1, &q, &r, &err), SD_ERR_USAGE);
    q = user_query(1, 5, AN_ITEMS_MAX + 1);
    assert_int_equal(an_answer(g_w, NULL, 1, &q, &r, &err), SD_ERR_USAGE);
    int32_t rep[] = {3, 3}, out[] = {3, 6};
    q = (an_query){.kind = AN_QUERY_CONTEXT, .context = rep, .n = 2, .clusters = 1};
    assert_int_equal(an_answer(g_w, NULL, 1, &q, &r, &err), SD_ERR_USAGE);
    q.context = out;
    assert_int_equal(an_answer(g_w, NULL, 1, &q, &r, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "unknown cluster 6"));
    q.n = 1;
    assert_int_equal(an_answer(g_w, NULL, 1, &q, &r, &err), SD_ERR_USAGE);
    q = (an_query){.kind = AN_QUERY_ITEMS, .n = AN_HISTORY_MAX + 1, .clusters = 1};
    assert_int_equal(an_answer(g_w, NULL, 1, &q, &r, &err), SD_ERR_USAGE);

    /* opening: a shard is refused as a usage error naming plan-merge; a missing table names plan */
    an_workspace *w;
    char *p = sd_path_join(g_ws, "shard.tbl");
    an_options o = {.table = p};
    assert_int_equal(an_open(&w, g_ws, &o, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "plan-merge"));
    free(p);
    p = sd_path_join(g_ws, "absent.tbl");
    o.table = p;
    assert_int_equal(an_open(&w, g_ws, &o, &err), SD_ERR_STATE);
    assert_non_null(strstr(err.msg, "serendip plan"));
    free(p);
}

/* an_select on hand-made entries: out-of-range and repeated ids are skipped, touched ones too. */
static void test_select(void **state) {
    (void)state;
    uint8_t touched[M] = {1, 0, 0, 0, 1, 0}; /* 0 and 4 */
    tbl_entry e[] = {{4, 9, -1}, {-1, 8, -1}, {2, 7, -2}, {9, 6, -3}, {2, 5, -4}, {5, 4, -5}};
    an_pick p[8];
    int n = an_select(g_w, touched, e, 6, 0, 8, p);
    /* planned 2 then 5; popularity 3, 0, 1, 2, 5, 4 adds 3 and 1 */
    assert_int_equal(n, 4);
    int want[] = {2, 5, 3, 1}, fb[] = {0, 0, 1, 1};
    for (int i = 0; i < n; i++) {
        assert_int_equal(p[i].cluster, want[i]);
        assert_int_equal(p[i].fallback, fb[i]);
    }
    assert_true(p[0].score == 7.0f && p[1].logprob == -5.0f && isnan(p[2].score));
    assert_int_equal(an_select(g_w, touched, e, 6, 0, 1, p), 1);
    assert_int_equal(p[0].cluster, 2);
    assert_int_equal(an_select(g_w, touched, e, 6, TBL_FLAG_FALLBACK, 1, p), 1);
    assert_int_equal(p[0].fallback, 1);
    /* an_user_clusters marks every cluster with an event, positive or not: user 3 -> {0, 1, 4, 5} */
    uint8_t mk[M];
    an_user_clusters(g_w, ds_find_user(g_w->ds, 3), mk);
    uint8_t want_mk[M] = {1, 1, 0, 0, 1, 1};
    assert_memory_equal(mk, want_mk, M);
}

/* Concurrent readers get the same bytes as one reader. */
typedef struct {
    const char *want[4];
    int bad;
} conc;

static an_query conc_query(int i) {
    static const int64_t items[] = {100, 102, 110};
    return i % 4 == 3 ? (an_query){.kind = AN_QUERY_ITEMS, .items = items, .n = 3, .clusters = 4, .items_per = 2}
                      : user_query(1 + i % 4, 4, 2);
}

static void *conc_run(void *arg) {
    conc *c = arg;
    for (int i = 0; i < 400; i++) {
        an_query q = conc_query(i);
        an_result r;
        sd_err err;
        if (an_answer(g_w, NULL, 1, &q, &r, &err) || strcmp(r.json, c->want[i % 4])) c->bad++;
        an_result_free(&r);
    }
    return NULL;
}

static void test_concurrent(void **state) {
    (void)state;
    an_result want[4];
    conc c = {.bad = 0};
    sd_err err;
    for (int i = 0; i < 4; i++) {
        an_query q = conc_query(i);
        assert_int_equal(an_answer(g_w, NULL, 1, &q, &want[i], &err), SD_OK);
        c.want[i] = want[i].json;
    }
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, conc_run, &c);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    assert_int_equal(c.bad, 0);
    for (int i = 0; i < 4; i++) an_result_free(&want[i]);
}

/* The positive rule is the workspace's: none without journeys.bin, then the one journeys.bin
 * records, which changes user 4's context; --positive overrides it. */
static void test_workspace_rule(void **state) {
    (void)state;
    sd_err err = {0};
    ds_positive_rule rule;
    int from_file = -1;
    assert_int_equal(jr_workspace_rule(g_ws, &rule, &from_file, &err), SD_OK);
    assert_int_equal(from_file, 0);
    assert_true(rule.min_rating == 4.0f && rule.min_watch == 0.7f);
    char s[64];
    cJSON *j = answer(&(an_query){.kind = AN_QUERY_USER, .user = 4, .clusters = 1, .items_per = 0});
    context_string(j, s, sizeof s); /* 102 r4 is positive under rating >= 4 */
    assert_string_equal(s, "1,2");
    cJSON_Delete(j);

    /* a journeys.bin built with rating >= 5 */
    ds_dataset d;
    tx_taxonomy t;
    char *dp = sd_path_join(g_ws, DS_FILE), *tp = sd_path_join(g_ws, TX_FILE), *jp = sd_path_join(g_ws, JR_FILE);
    assert_int_equal(ds_load(&d, dp, &err), SD_OK);
    assert_int_equal(tx_load(&t, tp, &err), SD_OK);
    jr_journeys jr;
    ds_positive_rule five = {5.0f, 0.7f};
    assert_int_equal(jr_build(&d, NULL, &t, &five, 2, &jr, &err), SD_OK);
    assert_int_equal(jr_save(&jr, jp, &err), SD_OK);
    jr_free(&jr);
    tx_free(&t);
    ds_free(&d);
    assert_int_equal(jr_workspace_rule(g_ws, &rule, &from_file, &err), SD_OK);
    assert_int_equal(from_file, 1);
    assert_true(rule.min_rating == 5.0f && rule.min_watch == 0.7f);
    an_workspace *w;
    assert_int_equal(an_open(&w, g_ws, NULL, &err), SD_OK);
    an_result r;
    an_query q = user_query(4, 1, 0);
    assert_int_equal(an_answer(w, NULL, 1, &q, &r, &err), SD_OK);
    j = cJSON_ParseWithLength(r.json, r.len);
    context_string(j, s, sizeof s); /* 102 r4 no longer positive: (0, 2) */
    assert_string_equal(s, "0,2");
    cJSON_Delete(j);
    an_result_free(&r);
    an_free(w);
    /* --positive overrides the workspace's */
    assert_int_equal(jr_resolve_rule(g_ws, "rating:3", &rule, &err), SD_OK);
    assert_true(rule.min_rating == 3.0f && rule.min_watch == 0.7f);
    assert_int_equal(jr_resolve_rule(g_ws, NULL, &rule, &err), SD_OK);
    assert_true(rule.min_rating == 5.0f);
    assert_int_equal(jr_resolve_rule(g_ws, "likes:3", &rule, &err), SD_ERR_USAGE);

    /* a journeys.bin that is not one is an error naming the file */
    assert_int_equal(sd_write_file_atomic(jp, "not a journeys file at all, just text", 37, &err), SD_OK);
    assert_int_not_equal(jr_workspace_rule(g_ws, &rule, NULL, &err), SD_OK);
    assert_non_null(strstr(err.msg, JR_FILE));
    assert_int_not_equal(an_open(&w, g_ws, NULL, &err), SD_OK);
    remove(jp);
    free(dp), free(tp), free(jp);
}

int main(void) {
    sd_verbosity = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_novel_for_the_user), cmocka_unit_test(test_items_by_popularity),
        cmocka_unit_test(test_stateless_and_context), cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_errors), cmocka_unit_test(test_select),
        cmocka_unit_test(test_concurrent), cmocka_unit_test(test_workspace_rule),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
