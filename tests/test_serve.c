/* test_serve.c - the HTTP API: a workspace fixture written by the test (dataset, hand taxonomy,
 * two explore tables, a trained retrieval model), the real server on an ephemeral port, and a
 * raw-socket HTTP client. Covers every route, every error status, the limits (body, header,
 * connections, idle timeout), bearer-token reload, and reloads under concurrent load with no
 * failed or torn response.
 *
 * `test_serve --write-fixture DIR` only writes the fixture workspace (tests/test_serve_browser.sh
 * uses it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <errno.h>
#include <sys/time.h>
#include <unistd.h>

#include "serendip/journeys.h"
#include "serendip/serve.h"

/* ---------------------------------------------------------------- fixture
 * 12 items, raw 100+i, in cluster i/3 (4 clusters, K = 2). Item 105's title needs JSON escapes.
 * user 1: 100 r5 (c0) | 103 r5 (c1) | 104 r2 (c1)      -> context (0, 1), seen {100, 103, 104}
 * user 2: 106 r5 (c2) | 109 r5 (c3) | 100 r4 (c0)      -> context (3, 0)
 * user 3: 101 r5                                       -> context (0): incomplete
 * users 10..49: 8 random events each, rating 3 (never positive: no context; retrieval material).
 * Table A: for a valid context (a, b), the other two clusters c in DESCENDING order, score 5 + c.
 * Table B: the same clusters in ASCENDING order, score 8 - c. */

enum { N_ITEMS = 12, M = 4 };
static const char *DESCS[M] = {"war, drama", "space, alien", "comedy, family", "noir, crime"};

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
    for (int i = 0; i < N_ITEMS; i++) {
        int32_t di = (int32_t)ds_find_item(d, 100 + i);
        t->item_cluster[di] = i / 3;
        t->members[i] = di;
    }
    for (int c = 0; c < M; c++) t->size[c] = 3, t->desc[c] = sd_strdup(DESCS[c]), t->member_off[c] = 3 * c;
    t->member_off[M] = N_ITEMS;
}

/* Table A (b = 0) or B (b = 1) for taxonomy hash th, written to path. */
static int write_table(const char *path, uint64_t th, int which, sd_err *err) {
    tbl_params p = {.k = 2, .n_clusters = M, .n_contexts = M * M, .top = 3, .n_samples = 4, .temperature = 1,
                    .seed = 1, .tax_hash = th, .begin = 0, .end = M * M, .kind = TBL_KIND_LLM};
    tbl_builder *b = tbl_builder_new(&p, err);
    if (!b) return err->code;
    for (int a = 0; a < M; a++)
        for (int c2 = 0; c2 < M; c2++) {
            if (a == c2) continue;
            tbl_entry e[2];
            int n = 0;
            for (int x = 0; x < M; x++) {
                int c = which ? x : M - 1 - x;
                if (c == a || c == c2) continue;
                e[n].cluster = c, e[n].align_score = which ? 8.0f - (float)c : 5.0f + (float)c;
                e[n++].novelty_logprob = -1.5f;
            }
            if (tbl_builder_set(b, a * M + c2, e, n, 0, err)) return err->code;
        }
    int rc = tbl_write(b, path, err);
    tbl_builder_free(b);
    return rc;
}

static int write_fixture(const char *dir, sd_err *err) {
    if (sd_mkdir_p(dir, err)) return err->code;
    ds_builder *b = ds_builder_new();
    for (int i = 0; i < N_ITEMS; i++) {
        char title[64];
        if (i == 5) snprintf(title, sizeof title, "Le \"Film\" \\ Noir\t\xc3\xa9t\xc3\xa9");
        else snprintf(title, sizeof title, "Movie %d (19%02d)", 100 + i, 70 + i);
        if (ds_builder_add_item(b, 100 + i, title, "Drama", err)) return err->code;
    }
    const float N = DS_NO_VALUE;
    ds_builder_add_event(b, 1, 100, 10, 5, N), ds_builder_add_event(b, 1, 103, 20, 5, N), ds_builder_add_event(b, 1, 104, 30, 2, N);
    ds_builder_add_event(b, 2, 106, 10, 5, N), ds_builder_add_event(b, 2, 109, 20, 5, N), ds_builder_add_event(b, 2, 100, 30, 4, N);
    ds_builder_add_event(b, 3, 101, 10, 5, N);
    sd_rng r;
    sd_rng_seed(&r, 5);
    for (int u = 10; u < 50; u++)
        for (int e = 0; e < 8; e++) ds_builder_add_event(b, u, 100 + sd_rng_below(&r, N_ITEMS), 100 + e, 3, N);
    ds_dataset d;
    if (ds_builder_finish(b, &d, err)) return err->code;
    tx_taxonomy t;
    fixture_tax(&d, &t);
    rt_options o = RT_OPTIONS_DEFAULT;
    o.dim = 8, o.epochs = 5;
    rt_model m;
    char *p;
    int rc = ds_save(&d, p = sd_path_join(dir, DS_FILE), err);
    free(p);
    if (!rc) rc = tx_save(&t, p = sd_path_join(dir, TX_FILE), err), free(p);
    if (!rc) rc = write_table(p = sd_path_join(dir, TBL_FILE), tx_hash(&t), 0, err), free(p);
    if (!rc) rc = write_table(p = sd_path_join(dir, "tableB.tbl"), tx_hash(&t), 1, err), free(p);
    if (!rc) rc = write_table(p = sd_path_join(dir, "tableA.tbl"), tx_hash(&t), 0, err), free(p);
    if (!rc && !(rc = rt_train_data(&d, NULL, &o, &m, err))) {
        rc = rt_save(&m, p = sd_path_join(dir, RT_FILE), err), free(p);
        rt_close(&m);
    }
    if (!rc) rc = sd_write_file_atomic(p = sd_path_join(dir, "token"), "s3cret-token\n", 13, err), free(p);
    tx_free(&t);
    ds_free(&d);
    return rc;
}

/* ---------------------------------------------------------------- a raw HTTP client */

typedef struct {
    int status;
    char headers[4096];
    char *body;
    size_t len;
} http_resp;

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

/* Reads a whole response until the server closes; returns 0 or -1 (nothing read). */
static int read_resp(int fd, http_resp *r) {
    size_t cap = 8192, len = 0;
    char *buf = sd_malloc(cap);
    for (;;) {
        if (len + 4096 > cap) buf = sd_realloc(buf, cap *= 2);
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0) break;
        len += (size_t)n;
    }
    buf[len] = 0;
    memset(r, 0, sizeof *r);
    char *sep = strstr(buf, "\r\n\r\n");
    if (!len || !sep || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        return -1;
    }
    size_t hl = (size_t)(sep - buf);
    memcpy(r->headers, buf, hl < sizeof r->headers - 1 ? hl : sizeof r->headers - 1);
    r->len = len - hl - 4;
    r->body = sd_malloc(r->len + 1);
    memcpy(r->body, sep + 4, r->len);
    r->body[r->len] = 0;
    free(buf);
    return 0;
}

/* One request on a fresh connection (Connection: close). extra: more header lines ending in \r\n. */
static int http(int port, const char *method, const char *target, const char *extra, const char *body, size_t blen, http_resp *r) {
    int fd = connect_to(port);
    if (fd < 0) return -1;
    char clen[96] = "";
    if (body) snprintf(clen, sizeof clen, "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    char *head = sd_asprintf("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s%s\r\n", method, target,
                             extra ? extra : "", clen);
    size_t n = strlen(head);
    int rc = send_all(fd, head, n);
    free(head);
    if (!rc && body) rc = send_all(fd, body, blen);
    if (!rc) rc = read_resp(fd, r);
    close(fd);
    return rc;
}

static cJSON *json_of(const http_resp *r) {
    cJSON *j = cJSON_Parse(r->body);
    if (!j) fail_msg("not JSON (status %d): %s", r->status, r->body);
    return j;
}

/* Checks an error response: status, JSON {"error": "..."} containing want. */
static void expect_error(int port, const char *method, const char *target, const char *body, int status, const char *want) {
    http_resp r;
    assert_int_equal(http(port, method, target, NULL, body, body ? strlen(body) : 0, &r), 0);
    if (r.status != status) fail_msg("%s %s: status %d, want %d: %s", method, target, r.status, status, r.body);
    cJSON *j = json_of(&r);
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    assert_true(cJSON_IsString(e));
    if (want && !strstr(e->valuestring, want)) fail_msg("%s %s: error '%s' lacks '%s'", method, target, e->valuestring, want);
    assert_non_null(strstr(r.headers, "application/json"));
    cJSON_Delete(j);
    free(r.body);
}

/* ---------------------------------------------------------------- the server under test */

static char g_ws[64];
static ds_dataset g_ds;
static tx_taxonomy g_tax;

typedef struct {
    sv_state *st;
    sv_server *srv;
    int port;
} server;

static void start(server *s, const sv_options *o) {
    sd_err err = {0};
    if (sv_state_open(&s->st, g_ws, o, &err)) fail_msg("%s", err.msg);
    if (sv_server_start(s->st, o, &s->srv, &err)) fail_msg("%s", err.msg);
    s->port = sv_server_port(s->srv);
    assert_true(s->port > 0);
}

static void stop(server *s) {
    sv_server_stop(s->srv);
    sv_state_free(s->st);
}

static sv_options test_options(void) {
    sv_options o = SV_OPTIONS_DEFAULT;
    o.port = 0, o.max_body = 4096;
    return o;
}

static int setup(void **state) {
    (void)state;
    sd_err err = {0};
    strcpy(g_ws, "/tmp/sdsvXXXXXX");
    if (!mkdtemp(g_ws) || write_fixture(g_ws, &err)) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return 1;
    }
    char *p = sd_path_join(g_ws, DS_FILE);
    int rc = ds_load(&g_ds, p, &err);
    free(p);
    if (!rc) rc = tx_load(&g_tax, p = sd_path_join(g_ws, TX_FILE), &err), free(p);
    return rc;
}

static int teardown(void **state) {
    (void)state;
    ds_free(&g_ds);
    tx_free(&g_tax);
    char *cmd = sd_asprintf("rm -rf %s", g_ws);
    int rc = system(cmd);
    free(cmd);
    return rc != 0;
}

/* Checks the items of a novel cluster: in the cluster, unseen by the user, at most k, distinct. */
static void check_items(const cJSON *cl, int cluster, const int64_t *seen, int n_seen, int k) {
    const cJSON *items = cJSON_GetObjectItem(cl, "items"), *it;
    assert_true(cJSON_IsArray(items));
    int n = cJSON_GetArraySize(items), expect = 3;
    for (int i = 0; i < n_seen; i++) expect -= (seen[i] - 100) / 3 == cluster;
    assert_int_equal(n, expect < k ? expect : k);
    cJSON_ArrayForEach(it, items) {
        int64_t raw = (int64_t)cJSON_GetObjectItem(it, "id")->valuedouble;
        assert_int_equal((raw - 100) / 3, cluster);
        for (int i = 0; i < n_seen; i++) assert_int_not_equal(raw, seen[i]);
        assert_true(cJSON_IsString(cJSON_GetObjectItem(it, "title")));
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(it, "score")));
    }
}

/* The novel list of an explore answer as "c:score c:score"; checks the descriptions. */
static void novel_string(const cJSON *j, char *out, size_t cap) {
    const cJSON *nov = cJSON_GetObjectItem(j, "novel"), *c;
    assert_true(cJSON_IsArray(nov));
    out[0] = 0;
    cJSON_ArrayForEach(c, nov) {
        int id = (int)cJSON_GetObjectItem(c, "id")->valuedouble;
        assert_string_equal(cJSON_GetObjectItem(c, "description")->valuestring, DESCS[id]);
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%d:%g", l ? " " : "", id, cJSON_GetObjectItem(c, "score")->valuedouble);
    }
}

static void test_explore_get(void **state) {
    (void)state;
    server s;
    sv_options o = test_options();
    start(&s, &o);
    http_resp r;
    assert_int_equal(http(s.port, "GET", "/v1/explore?user=1&k=2", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    cJSON *j = json_of(&r);
    assert_int_equal((int)cJSON_GetObjectItem(j, "user")->valuedouble, 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "context_complete")));
    assert_string_equal(cJSON_GetObjectItem(j, "ranker")->valuestring, "sequential");
    const cJSON *ctx = cJSON_GetObjectItem(j, "context");
    assert_int_equal(cJSON_GetArraySize(ctx), 2);
    /* context (0, 1), most recent last; table A: clusters 3 then 2, scores 8 and 7 */
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetArrayItem(ctx, 0), "id")->valuedouble, 0);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(ctx, 1), "description")->valuestring, "space, alien");
    char nov[128];
    novel_string(j, nov, sizeof nov);
    assert_string_equal(nov, "3:8 2:7");
    int64_t seen1[] = {100, 103, 104};
    check_items(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "novel"), 0), 3, seen1, 3, 2);
    check_items(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "novel"), 1), 2, seen1, 3, 2);
    cJSON_Delete(j), free(r.body);

    /* novel for the user: user 2's context (3, 0) plans clusters 2, 1, but user 2 has an event on
     * item 106 of cluster 2, so n = 1 serves cluster 1 (score 5 + 1), planned, not a fallback;
     * k = 50 returns all 3 of its items (none seen) */
    assert_int_equal(http(s.port, "GET", "/v1/explore?user=2&k=50&n=1", NULL, NULL, 0, &r), 0);
    j = json_of(&r);
    novel_string(j, nov, sizeof nov);
    assert_string_equal(nov, "1:6");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "novel"), 0), "fallback")));
    int64_t seen2[] = {106, 109, 100};
    check_items(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "novel"), 0), 1, seen2, 3, 50);
    cJSON_Delete(j), free(r.body);

    /* user 3 has one cluster: context incomplete, no planned cluster, so the answer is the popular
     * clusters user 3 never touched (1, 2, 3: not 0, where item 101 was), each a flagged fallback
     * with no score */
    assert_int_equal(http(s.port, "GET", "/v1/explore?user=3", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    j = json_of(&r);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "context_complete")));
    const cJSON *nv = cJSON_GetObjectItem(j, "novel"), *c3;
    assert_int_equal(cJSON_GetArraySize(nv), 3);
    int got = 0;
    cJSON_ArrayForEach(c3, nv) {
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(c3, "fallback")));
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(c3, "score")));
        int id = (int)cJSON_GetObjectItem(c3, "id")->valuedouble;
        assert_true(id >= 1 && id <= 3);
        got |= 1 << id;
    }
    assert_int_equal(got, 2 | 4 | 8);
    cJSON_Delete(j), free(r.body);

    /* /metrics counts the clusters by source: 2 + 1 planned (users 1 and 2), 3 fallbacks (user 3) */
    assert_int_equal(http(s.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_non_null(strstr(r.body, "serendip_explore_clusters_total{source=\"plan\"} 3\n"));
    assert_non_null(strstr(r.body, "serendip_explore_clusters_total{source=\"fallback\"} 3\n"));
    assert_non_null(strstr(r.body, "serendip_explore_fallback_answers_total 1\n"));
    free(r.body);

    /* percent-encoded parameters decode */
    assert_int_equal(http(s.port, "GET", "/v1/explore?%75ser=%31&k=1", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    free(r.body);

    /* the escaped title survives the round trip */
    assert_int_equal(http(s.port, "GET", "/v1/clusters/1?k=3", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    j = json_of(&r);
    assert_string_equal(cJSON_GetObjectItem(j, "description")->valuestring, "space, alien");
    assert_string_equal(cJSON_GetObjectItem(j, "parent_description")->valuestring, "everything");
    assert_int_equal((int)cJSON_GetObjectItem(j, "size")->valuedouble, 3);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "items"), 2), "title")->valuestring,
                        "Le \"Film\" \\ Noir\t\xc3\xa9t\xc3\xa9");
    cJSON_Delete(j), free(r.body);
    stop(&s);
}

static void test_explore_post(void **state) {
    (void)state;
    server s;
    sv_options o = test_options();
    start(&s, &o);
    http_resp r;
    /* items 109 (c3), 100 (c0), 777 (unknown) -> context (3, 0) -> table A: 2, 1 */
    const char *body = "{\"items\": [109, 100, 777], \"k\": 3}";
    assert_int_equal(http(s.port, "POST", "/v1/explore", NULL, body, strlen(body), &r), 0);
    assert_int_equal(r.status, 200);
    cJSON *j = json_of(&r);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "user")));
    assert_int_equal((int)cJSON_GetObjectItem(j, "unknown_items")->valuedouble, 1);
    char nov[128];
    novel_string(j, nov, sizeof nov);
    assert_string_equal(nov, "2:7 1:6");
    int64_t seen[] = {109, 100};
    check_items(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "novel"), 0), 2, seen, 2, 3);
    cJSON_Delete(j), free(r.body);
    /* an empty history: 200 with no context */
    body = "{\"items\": []}";
    assert_int_equal(http(s.port, "POST", "/v1/explore", NULL, body, strlen(body), &r), 0);
    assert_int_equal(r.status, 200);
    j = json_of(&r);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "context")), 0);
    cJSON_Delete(j), free(r.body);
    stop(&s);
}

static void test_errors(void **state) {
    (void)state;
    server s;
    sv_options o = test_options();
    start(&s, &o);
    expect_error(s.port, "GET", "/v1/explore?user=999", NULL, 404, "unknown user");
    expect_error(s.port, "GET", "/v1/explore", NULL, 400, "user");
    expect_error(s.port, "GET", "/v1/explore?user=abc", NULL, 400, "integer");
    expect_error(s.port, "GET", "/v1/explore?user=1&k=0", NULL, 400, "k must");
    expect_error(s.port, "GET", "/v1/explore?user=1&k=51", NULL, 400, "k must");
    expect_error(s.port, "GET", "/v1/explore?user=1%zz", NULL, 400, "malformed");
    expect_error(s.port, "GET", "/v1/explore?user=99999999999999999999", NULL, 400, "integer");
    expect_error(s.port, "GET", "/v1/clusters/4", NULL, 404, "unknown cluster");
    expect_error(s.port, "GET", "/v1/clusters/-1", NULL, 404, "unknown cluster");
    expect_error(s.port, "GET", "/v1/clusters/x", NULL, 400, "integer");
    expect_error(s.port, "GET", "/nope", NULL, 404, "no such path");
    expect_error(s.port, "POST", "/v1/explore", "{\"items\": [1,", 400, "malformed JSON");
    expect_error(s.port, "POST", "/v1/explore", "{\"items\": 5}", 400, "array");
    expect_error(s.port, "POST", "/v1/explore", "[1, 2]", 400, "array");
    expect_error(s.port, "POST", "/v1/explore", "{\"items\": [1.5]}", 400, "integer");
    expect_error(s.port, "POST", "/v1/explore", "{\"items\": [\"100\"]}", 400, "integer");
    expect_error(s.port, "POST", "/v1/explore", "{\"items\": [100], \"k\": 0}", 400, "\"k\"");
    expect_error(s.port, "POST", "/v1/explore", "", 400, "empty body");
    expect_error(s.port, "POST", "/admin/reload", "", 403, "disabled");
    expect_error(s.port, "POST", "/healthz", "", 405, "not allowed");
    expect_error(s.port, "GET", "/admin/reload", NULL, 405, "not allowed");
    /* 405 carries Allow */
    http_resp r;
    assert_int_equal(http(s.port, "DELETE", "/v1/explore", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.headers, "Allow: GET, HEAD, POST"));
    free(r.body);
    /* 413: a body above max_body (4096), announced by Content-Length ... */
    char *big = sd_malloc(5001);
    memset(big, ' ', 5000);
    big[0] = '{', big[4999] = '}', big[5000] = 0;
    expect_error(s.port, "POST", "/v1/explore", big, 413, "larger than");
    /* ... and sent chunked without a length */
    int fd = connect_to(s.port);
    const char *head = "POST /v1/explore HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(send_all(fd, head, strlen(head)), 0);
    for (int i = 0; i < 3; i++) {
        char ch[32];
        snprintf(ch, sizeof ch, "%x\r\n", 2000);
        send_all(fd, ch, strlen(ch)), send_all(fd, big, 2000), send_all(fd, "\r\n", 2);
    }
    send_all(fd, "0\r\n\r\n", 5);
    assert_int_equal(read_resp(fd, &r), 0);
    close(fd);
    assert_int_equal(r.status, 413);
    free(r.body), free(big);
    /* a header above the per-connection memory (16 KiB) is refused by libmicrohttpd (431) */
    char *hdr = sd_malloc(20100);
    strcpy(hdr, "X-Big: ");
    memset(hdr + 7, 'a', 20000);
    strcpy(hdr + 20007, "\r\n");
    assert_int_equal(http(s.port, "GET", "/healthz", hdr, NULL, 0, &r), 0);
    assert_true(r.status == 431 || r.status == 413);
    free(r.body), free(hdr);
    /* GET / is the page; HEAD has no body */
    assert_int_equal(http(s.port, "GET", "/", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "text/html"));
    assert_non_null(strstr(r.body, "serendip"));
    free(r.body);
    assert_int_equal(http(s.port, "HEAD", "/healthz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    free(r.body);
    expect_error(s.port, "GET", "/report", NULL, 404, "report");
    stop(&s);
}

static void test_health_and_metrics(void **state) {
    (void)state;
    server s;
    sv_options o = test_options();
    start(&s, &o);
    http_resp r;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(http(s.port, "GET", "/v1/explore?user=1", NULL, NULL, 0, &r), 0);
        free(r.body);
    }
    expect_error(s.port, "GET", "/v1/explore?user=424242", NULL, 404, NULL);
    assert_int_equal(http(s.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    cJSON *j = json_of(&r);
    assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "ok");
    assert_int_equal((int)cJSON_GetObjectItem(j, "table_version")->valuedouble, 1);
    assert_int_equal((int)cJSON_GetObjectItem(j, "clusters")->valuedouble, M);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "reload")));
    cJSON_Delete(j), free(r.body);
    /* completion is recorded after the response is sent: give the server a moment */
    usleep(100000);
    assert_int_equal(http(s.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "text/plain"));
    assert_non_null(strstr(r.body, "serendip_http_requests_total{code=\"200\"} 6\n"));
    assert_non_null(strstr(r.body, "serendip_http_requests_total{code=\"404\"} 1\n"));
    assert_non_null(strstr(r.body, "serendip_http_request_duration_seconds_bucket{le=\"+Inf\"} 7\n"));
    assert_non_null(strstr(r.body, "serendip_http_request_duration_seconds_count 7\n"));
    assert_non_null(strstr(r.body, "serendip_table_version 1\n"));
    assert_non_null(strstr(r.body, "serendip_table_info{hash=\""));
    free(r.body);
    stop(&s);
}

/* ---------------------------------------------------------------- reload */

static void copy_file(const char *from_name, const char *to_name) {
    char *a = sd_path_join(g_ws, from_name), *b = sd_path_join(g_ws, to_name), *buf;
    size_t len;
    sd_err err;
    assert_int_equal(sd_read_file(a, &buf, &len, &err), SD_OK);
    assert_int_equal(sd_write_file_atomic(b, buf, len, &err), SD_OK);
    free(a), free(b), free(buf);
}

static void test_reload_auth(void **state) {
    (void)state;
    server s;
    sv_options o = test_options();
    char *tok = sd_path_join(g_ws, "token");
    o.token_file = tok;
    start(&s, &o);
    http_resp r;
    expect_error(s.port, "POST", "/admin/reload", "", 401, "token");
    assert_int_equal(http(s.port, "POST", "/admin/reload", "Authorization: Bearer wrong-token!\r\n", "", 0, &r), 0);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.headers, "WWW-Authenticate: Bearer"));
    free(r.body);
    assert_int_equal(http(s.port, "POST", "/admin/reload", "Authorization: Bearer s3cret-token-and-more\r\n", "", 0, &r), 0);
    assert_int_equal(r.status, 401);
    free(r.body);
    /* the right token swaps in table B */
    copy_file("tableB.tbl", TBL_FILE);
    assert_int_equal(http(s.port, "POST", "/admin/reload", "Authorization: Bearer s3cret-token\r\n", "", 0, &r), 0);
    assert_int_equal(r.status, 200);
    cJSON *j = json_of(&r);
    assert_int_equal((int)cJSON_GetObjectItem(j, "table_version")->valuedouble, 2);
    cJSON_Delete(j), free(r.body);
    assert_int_equal(http(s.port, "GET", "/v1/explore?user=1", NULL, NULL, 0, &r), 0);
    j = json_of(&r);
    char nov[128];
    novel_string(j, nov, sizeof nov);
    assert_string_equal(nov, "2:6 3:5"); /* table B: ascending, 8 - c */
    assert_int_equal((int)cJSON_GetObjectItem(j, "table_version")->valuedouble, 2);
    cJSON_Delete(j), free(r.body);
    /* a corrupt table is refused and the served one stays */
    char *tp = sd_path_join(g_ws, TBL_FILE);
    sd_err err;
    assert_int_equal(sd_write_file_atomic(tp, "garbage", 7, &err), SD_OK);
    assert_int_equal(http(s.port, "POST", "/admin/reload", "Authorization: Bearer s3cret-token\r\n", "", 0, &r), 0);
    assert_int_equal(r.status, 500);
    free(r.body);
    /* a table of another taxonomy is refused with 409 */
    assert_int_equal(write_table(tp, 12345, 0, &err), SD_OK);
    assert_int_equal(http(s.port, "POST", "/admin/reload", "Authorization: Bearer s3cret-token\r\n", "", 0, &r), 0);
    assert_int_equal(r.status, 409);
    free(r.body);
    assert_int_equal(http(s.port, "GET", "/v1/explore?user=1", NULL, NULL, 0, &r), 0);
    j = json_of(&r);
    novel_string(j, nov, sizeof nov);
    assert_string_equal(nov, "2:6 3:5");
    cJSON_Delete(j), free(r.body);
    copy_file("tableA.tbl", TBL_FILE);
    stop(&s);
    free(tp), free(tok);
}

typedef struct {
    int port;
    atomic_int *stop;
    int ok, failed, torn, regress;
} load_arg;

static void *load_thread(void *p) {
    load_arg *a = p;
    int64_t last = 0;
    while (!atomic_load(a->stop)) {
        http_resp r;
        if (http(a->port, "GET", "/v1/explore?user=1&k=2", NULL, NULL, 0, &r) || r.status != 200) {
            a->failed++;
            if (r.body) free(r.body);
            continue;
        }
        cJSON *j = cJSON_Parse(r.body);
        char nov[128] = "";
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "novel")) {
            size_t l = strlen(nov);
            snprintf(nov + l, sizeof nov - l, "%s%d:%g", l ? " " : "", (int)cJSON_GetObjectItem(c, "id")->valuedouble,
                     cJSON_GetObjectItem(c, "score")->valuedouble);
        }
        int64_t v = (int64_t)cJSON_GetObjectItem(j, "table_version")->valuedouble;
        /* odd versions serve table A (1, 3, ...), even ones table B */
        const char *want = v % 2 ? "3:8 2:7" : "2:6 3:5";
        if (strcmp(nov, want)) a->torn++;
        if (v < last) a->regress++;
        last = v;
        a->ok++;
        cJSON_Delete(j);
        free(r.body);
    }
    return NULL;
}

static void test_reload_under_load(void **state) {
    (void)state;
    server s;
    sv_options o = test_options();
    start(&s, &o);
    atomic_int stop_flag = 0;
    enum { NT = 4 };
    pthread_t th[NT];
    load_arg args[NT];
    for (int i = 0; i < NT; i++) {
        args[i] = (load_arg){.port = s.port, .stop = &stop_flag};
        pthread_create(&th[i], NULL, load_thread, &args[i]);
    }
    sd_err err = {0};
    for (int i = 0; i < 40; i++) {
        usleep(10000);
        copy_file(i % 2 ? "tableA.tbl" : "tableB.tbl", TBL_FILE); /* version i+2: even = B */
        assert_int_equal(sv_reload(s.st, &err), SD_OK);
    }
    usleep(10000);
    atomic_store(&stop_flag, 1);
    int ok = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failed, 0);
        assert_int_equal(args[i].torn, 0);
        assert_int_equal(args[i].regress, 0);
        ok += args[i].ok;
    }
    assert_int_equal(sv_table_version(s.st), 41);
    assert_true(ok > 40); /* the load really overlapped the reloads */
    copy_file("tableA.tbl", TBL_FILE);
    stop(&s);
}

/* ---------------------------------------------------------------- overload and timeouts */

static void test_overload_503(void **state) {
    (void)state;
    server s;
    sv_options o = test_options();
    o.max_conns = 2;
    start(&s, &o);
    int idle[3];
    for (int i = 0; i < 3; i++) assert_true((idle[i] = connect_to(s.port)) >= 0);
    usleep(100000); /* let the server accept them */
    http_resp r;
    assert_int_equal(http(s.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.headers, "Retry-After"));
    cJSON *j = json_of(&r);
    assert_non_null(strstr(cJSON_GetObjectItem(j, "error")->valuestring, "overloaded"));
    cJSON_Delete(j), free(r.body);
    for (int i = 0; i < 3; i++) close(idle[i]);
    int status = 0;
    for (int t = 0; t < 50 && status != 200; t++) { /* the server notices the closes */
        usleep(20000);
        if (!http(s.port, "GET", "/healthz", NULL, NULL, 0, &r)) status = r.status, free(r.body);
    }
    assert_int_equal(status, 200);
    stop(&s);
}

static void test_idle_timeout(void **state) {
    (void)state;
    server s;
    sv_options o = test_options();
    o.timeout_s = 1;
    start(&s, &o);
    int fd = connect_to(s.port);
    assert_true(fd >= 0);
    send_all(fd, "GET /heal", 9); /* a request that never completes */
    double t0 = sd_now();
    char c;
    ssize_t n = recv(fd, &c, 1, 0); /* returns 0 when the server closes, -1 after our 5 s timeout */
    double dt = sd_now() - t0;
    close(fd);
    assert_true(n <= 0);
    assert_true(dt < 4.0); /* closed by the 1 s server timeout, not our 5 s receive timeout */
    stop(&s);
}

/* Keep-alive: two requests on one connection get two answers and no "Connection: close" (the
 * server once answered on the header-only first call, which made libmicrohttpd close every
 * connection and cost 6x in throughput). */
static void test_keep_alive(void **state) {
    (void)state;
    for (int mode = SV_MODE_EPOLL; mode <= SV_MODE_THREAD; mode++) {
        server s;
        sv_options o = test_options();
        o.mode = mode;
        start(&s, &o);
        int fd = connect_to(s.port);
        assert_true(fd >= 0);
        const char *req = "GET /v1/explore?user=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        char buf[65536];
        size_t len = 0;
        for (int i = 0; i < 2; i++) {
            assert_int_equal(send_all(fd, req, strlen(req)), 0);
            /* read one whole answer: headers, then Content-Length bytes */
            size_t start = len, body_at = 0, clen = 0;
            while (!body_at || len - body_at < clen) {
                ssize_t n = recv(fd, buf + len, sizeof buf - len - 1, 0);
                if (n <= 0) fail_msg("mode %d: connection closed after %d answers", mode, i);
                len += (size_t)n;
                buf[len] = 0;
                char *sep = strstr(buf + start, "\r\n\r\n");
                if (sep && !body_at) {
                    body_at = (size_t)(sep - buf) + 4;
                    const char *cl = strcasestr(buf + start, "Content-Length:");
                    assert_non_null(cl);
                    clen = (size_t)strtoul(cl + 15, NULL, 10);
                    assert_null(strcasestr(buf + start, "Connection: close"));
                }
            }
            assert_int_equal(strncmp(buf + start, "HTTP/1.1 200", 12), 0);
            assert_int_equal(len, body_at + clen);
        }
        close(fd);
        stop(&s);
    }
}

static void test_modes(void **state) {
    (void)state;
    for (int mode = SV_MODE_EPOLL; mode <= SV_MODE_THREAD; mode++) {
        server s;
        sv_options o = test_options();
        o.mode = mode, o.threads = 3;
        start(&s, &o);
        http_resp r;
        for (int i = 0; i < 3; i++) {
            assert_int_equal(http(s.port, "GET", "/v1/explore?user=2", NULL, NULL, 0, &r), 0);
            assert_int_equal(r.status, 200);
            free(r.body);
        }
        stop(&s);
    }
    sv_options o = test_options();
    o.mode = 7;
    sv_state *st;
    sv_server *srv;
    sd_err err = {0};
    assert_int_equal(sv_state_open(&st, g_ws, &o, &err), SD_OK);
    assert_int_equal(sv_server_start(st, &o, &srv, &err), SD_ERR_USAGE);
    o.mode = 0, o.bind = "not-an-address";
    assert_int_equal(sv_server_start(st, &o, &srv, &err), SD_ERR_USAGE);
    sv_state_free(st);
}

/* ---------------------------------------------------------------- handlers without sockets */

static void test_handlers_direct(void **state) {
    (void)state;
    sv_options o = test_options();
    sv_state *st;
    sd_err err = {0};
    char *tp = sd_path_join(g_ws, TBL_FILE);
    assert_int_equal(sv_state_new(&st, &g_ds, &g_tax, NULL, tp, "tok-12345", NULL, &o, &err), SD_OK);
    sv_response rs;
    sv_request rq = {.method = "GET", .url = "/v1/explore?user=1&k=3"};
    sv_handle(st, &rq, &rs);
    assert_int_equal(rs.status, 200);
    cJSON *j = cJSON_Parse(rs.body);
    assert_string_equal(cJSON_GetObjectItem(j, "ranker")->valuestring, "popularity");
    /* without a model, items come in the taxonomy's member order, minus seen ones */
    const cJSON *items = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "novel"), 0), "items");
    assert_int_equal(cJSON_GetArraySize(items), 3);
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "id")->valuedouble, 109);
    cJSON_Delete(j);
    sv_response_free(&rs);
    const struct { const char *m, *url, *body; int status; } cases[] = {
        {"GET", "/v1/explore?user=1&&&k=2&", NULL, 200}, {"GET", "/v1/explore?user=1&k=%", NULL, 400},
        {"GET", "/v1/explore?user=1&k=%4", NULL, 400},   {"GET", "/v1/explore?user=%00", NULL, 400},
        {"GET", "/v1/explore?user= 1", NULL, 400},       {"GET", "/v1/explore?user=+1", NULL, 400},
        {"GET", "/v1/users?limit=10", NULL, 200},        {"GET", "/v1/users?limit=0", NULL, 400},
        {"POST", "/v1/explore", "{\"items\":[100],\"k\":2,\"n\":1}", 200},
        {"POST", "/v1/explore", "{\"items\":[1e300]}", 400}, {"POST", "/admin/reload", "", 401},
        {"PUT", "/", NULL, 405}, {NULL, NULL, NULL, 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sv_request q = {.method = cases[i].m, .url = cases[i].url, .body = cases[i].body,
                        .body_len = cases[i].body ? strlen(cases[i].body) : 0};
        sv_handle(st, &q, &rs);
        if (rs.status != cases[i].status) fail_msg("case %zu (%s): %d, want %d: %.*s", i, cases[i].url, rs.status, cases[i].status, (int)rs.len, rs.body);
        sv_response_free(&rs);
    }
    /* the cache: the same request twice gives the same bytes, the second from the cache */
    uint64_t h0, m0, h1, m1;
    sv_cache_stats(st, &h0, &m0);
    rq = (sv_request){.method = "GET", .url = "/v1/explore?user=2&k=2"};
    sv_response a, b2;
    sv_handle(st, &rq, &a);
    sv_handle(st, &rq, &b2);
    sv_cache_stats(st, &h1, &m1);
    assert_int_equal(h1 - h0, 1);
    assert_int_equal(m1 - m0, 1);
    assert_int_equal(a.len, b2.len);
    assert_memory_equal(a.body, b2.body, a.len);
    sv_response_free(&a), sv_response_free(&b2);
    /* another k is another answer (a miss), then a reload invalidates: table B's order shows */
    rq.url = "/v1/explore?user=2&k=1";
    sv_handle(st, &rq, &a);
    sv_cache_stats(st, &h1, &m1);
    assert_int_equal(m1 - m0, 2);
    sv_response_free(&a);
    copy_file("tableB.tbl", TBL_FILE);
    assert_int_equal(sv_reload(st, &err), SD_OK);
    sv_handle(st, &rq, &a);
    assert_non_null(strstr(a.body, "\"table_version\":2"));
    assert_non_null(strstr(a.body, "\"novel\":[{\"id\":1,"));
    sv_response_free(&a);
    copy_file("tableA.tbl", TBL_FILE);
    /* the users list holds users 1 and 2 (complete contexts) */
    rq = (sv_request){.method = "GET", .url = "/v1/users"};
    sv_handle(st, &rq, &rs);
    assert_string_equal(rs.body, "{\"users\":[1,2]}\n");
    sv_response_free(&rs);
    sv_state_free(st);
    /* a workspace without a table is a missing-stage error */
    char *bad = sd_path_join(g_ws, "nope.tbl");
    assert_int_not_equal(sv_state_new(&st, &g_ds, &g_tax, NULL, bad, NULL, NULL, &o, &err), SD_OK);
    free(bad), free(tp);
}

/* ---------------------------------------------------------------- a harder server (issue 11) */

/* Sends a raw request on a fresh connection and returns everything the server sent until it
 * closed (heap), or NULL when nothing came. */
static char *raw_exchange(int port, const char *req) {
    int fd = connect_to(port);
    if (fd < 0) return NULL;
    send_all(fd, req, strlen(req));
    size_t cap = 8192, len = 0;
    char *buf = sd_malloc(cap);
    for (;;) {
        if (len + 4096 > cap) buf = sd_realloc(buf, cap *= 2);
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    if (!len) free(buf), buf = NULL;
    return buf;
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* A raw request must get exactly one response, with `status` and a JSON error body. */
static void expect_raw_error(int port, const char *req, int status, const char *want) {
    char *got = raw_exchange(port, req);
    if (!got) fail_msg("no answer to %s", req);
    int st = 0;
    sscanf(got, "HTTP/1.%*d %d", &st);
    if (st != status || count_of(got, "HTTP/1.") != 1) fail_msg("want one %d answer to [%s], got [%s]", status, req, got);
    const char *body = strstr(got, "\r\n\r\n");
    cJSON *j = body ? cJSON_Parse(body + 4) : NULL;
    if (!j || !cJSON_IsString(cJSON_GetObjectItem(j, "error"))) fail_msg("not a JSON error: [%s]", got);
    if (want && !strstr(cJSON_GetObjectItem(j, "error")->valuestring, want)) fail_msg("error lacks '%s': [%s]", want, got);
    cJSON_Delete(j);
    free(got);
}

/* Runs f with stderr captured into a temporary file; returns the captured text (heap). */
static char *stderr_begin(int *saved) {
    char path[] = "/tmp/sdsv-errXXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    fflush(stderr);
    *saved = dup(2);
    dup2(fd, 2);
    close(fd);
    return NULL;
}

static char *stderr_end(int saved) {
    fflush(stderr);
    off_t end = lseek(2, 0, SEEK_END);
    char *buf = sd_calloc((size_t)end + 1, 1);
    if (end > 0 && pread(2, buf, (size_t)end, 0) != end) buf[0] = 0;
    dup2(saved, 2);
    close(saved);
    return buf;
}

/* SIGBUS: the served table is a private copy, so truncating the file in place (same inode, as
 * `truncate` or a careless `cp` over it does) cannot take pages away from under a lookup; the
 * reload of the truncated file is refused, counted and logged, and the old table stays. With a
 * mapping of the file, lookups after the truncation read zeros within the file's last page (this
 * fixture: empty answers) and died of SIGBUS beyond it. */
static void test_truncate_in_place(void **state) {
    (void)state;
    copy_file("tableA.tbl", TBL_FILE);
    server s;
    sv_options o = test_options();
    char *tok = sd_path_join(g_ws, "token"), *tp = sd_path_join(g_ws, TBL_FILE);
    o.token_file = tok;
    o.cache_bytes = 0; /* every answer reads the table */
    start(&s, &o);
    http_resp r;
    assert_int_equal(http(s.port, "GET", "/v1/explore?user=1", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_int_equal(truncate(tp, 300), 0); /* header and a few bytes of slot 0 */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(http(s.port, "GET", "/v1/explore?user=1", NULL, NULL, 0, &r), 0);
        assert_int_equal(r.status, 200);
        cJSON *j = json_of(&r);
        char nov[128];
        novel_string(j, nov, sizeof nov);
        assert_string_equal(nov, "3:8 2:7"); /* still table A: context (0, 1), descending, 5 + c */
        cJSON_Delete(j), free(r.body);
    }
    const char *body = "{\"items\":[106,109]}"; /* context (2, 3): slot 11, far past the truncation */
    assert_int_equal(http(s.port, "POST", "/v1/explore", NULL, body, strlen(body), &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"novel\":[{\"id\":1,"));
    free(r.body);
    int saved, prev = sd_verbosity;
    sd_verbosity = 1;
    stderr_begin(&saved);
    assert_int_equal(http(s.port, "POST", "/admin/reload", "Authorization: Bearer s3cret-token\r\n", "", 0, &r), 0);
    char *log = stderr_end(saved);
    sd_verbosity = prev;
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "truncated"));
    free(r.body);
    if (!strstr(log, "reload refused") || !strstr(log, "truncated")) fail_msg("the refused reload was not logged: [%s]", log);
    free(log);
    assert_int_equal(http(s.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_non_null(strstr(r.body, "serendip_table_reloads_total{result=\"failed\"} 1\n"));
    assert_non_null(strstr(r.body, "serendip_table_version 1\n"));
    free(r.body);
    stop(&s);
    copy_file("tableA.tbl", TBL_FILE);
    free(tok), free(tp);
}

/* One client trickling a header line every 200 ms (for at most 5 s) against a server with a 1 s
 * head deadline: it must get a JSON 408 and a closed connection after about 1 s, while another
 * client is served meanwhile. */
static void expect_trickler_cut(int port, int mode) {
    int fd = connect_to(port);
    assert_true(fd >= 0);
    send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 32);
    double t0 = sd_now(), closed_at = 0;
    char buf[1024];
    size_t len = 0;
    for (int i = 0; i < 25 && !closed_at; i++) {
        usleep(200000);
        send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL);
        for (;;) {
            ssize_t n = recv(fd, buf + len, sizeof buf - len - 1, MSG_DONTWAIT);
            if (n > 0) len += (size_t)n;
            else {
                if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closed_at = sd_now();
                break;
            }
        }
        if (i == 2) { /* meanwhile, a normal client is served */
            http_resp r;
            assert_int_equal(http(port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
            assert_int_equal(r.status, 200);
            free(r.body);
        }
    }
    close(fd);
    buf[len] = 0;
    if (!closed_at) fail_msg("mode %d: the slow client still held its connection after %.1f s", mode, sd_now() - t0);
    if (closed_at - t0 < 0.9 || closed_at - t0 > 2.5) fail_msg("mode %d: closed after %.2f s", mode, closed_at - t0);
    if (strncmp(buf, "HTTP/1.1 408", 12)) fail_msg("mode %d: got [%s]", mode, buf);
    cJSON *j = cJSON_Parse(strstr(buf, "\r\n\r\n") + 4);
    assert_non_null(j);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "error")));
    cJSON_Delete(j);
}

/* The head deadline: libmicrohttpd's timeout is an idle timeout, which each trickled line reset,
 * so a slow client held its connection (and thread) forever; now it is cut after head_timeout_s
 * in every connection mode, counted in /metrics. */
static void test_head_deadline(void **state) {
    (void)state;
    for (int mode = SV_MODE_EPOLL; mode <= SV_MODE_THREAD; mode++) {
        server s;
        sv_options o = test_options();
        o.head_timeout_s = 1, o.mode = mode;
        start(&s, &o);
        expect_trickler_cut(s.port, mode);
        http_resp r;
        assert_int_equal(http(s.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
        assert_non_null(strstr(r.body, "serendip_http_head_timeouts_total 1\n"));
        free(r.body);
        stop(&s);
    }
    /* a kept-alive connection's second head is held to the deadline too, from the first answer */
    server s;
    sv_options o = test_options();
    o.head_timeout_s = 1;
    start(&s, &o);
    char buf[1024];
    int fd = connect_to(s.port);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, req, strlen(req));
    usleep(100000);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0 && !strncmp(buf, "HTTP/1.1 200", 12));
    double t0 = sd_now();
    send_all(fd, "GET /healthz", 12); /* and nothing more */
    n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = 0;
    assert_int_equal(strncmp(buf, "HTTP/1.1 408", 12), 0);
    assert_true(sd_now() - t0 < 2.5);
    close(fd);
    stop(&s);
}

/* Strict HTTP: ambiguous framing (two Content-Lengths: libmicrohttpd used the first and read the
 * rest as the next request; Content-Length beside chunked) and a body with trailing junk (cJSON
 * stopped at the value and the junk was ignored) are 400s with one status line and a JSON body. */
static void test_strict_http(void **state) {
    (void)state;
    server s;
    sv_options o = test_options();
    start(&s, &o);
    expect_error(s.port, "POST", "/v1/explore", "{\"items\": [100]} junk", 400, "malformed JSON");
    expect_error(s.port, "POST", "/v1/explore", "{\"items\": [100]}{}", 400, "malformed JSON");
    http_resp r; /* whitespace after the value is fine */
    const char *ok = "{\"items\": [100]}\r\n  ";
    assert_int_equal(http(s.port, "POST", "/v1/explore", NULL, ok, strlen(ok), &r), 0);
    assert_int_equal(r.status, 200);
    free(r.body);
    const char *H = "POST /v1/explore HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    char req[512];
    /* (a negative or 20-digit Content-Length is answered by libmicrohttpd 0.9.75 itself, in HTML
     * and with its status line twice; docs/serving.md) */
    snprintf(req, sizeof req, "%sContent-Length: 2\r\nContent-Length: 20\r\n\r\n{}", H);
    expect_raw_error(s.port, req, 400, "more than one Content-Length");
    snprintf(req, sizeof req, "%sContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", H);
    expect_raw_error(s.port, req, 400, "more than one Content-Length");
    snprintf(req, sizeof req, "%sContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", H);
    expect_raw_error(s.port, req, 400, "Transfer-Encoding");
    stop(&s);
}

/* The bearer scheme is case-insensitive; the token file is one trimmed line or refused at start. */
static void test_token_rules(void **state) {
    (void)state;
    server s;
    sv_options o = test_options();
    char *tok = sd_path_join(g_ws, "token");
    o.token_file = tok;
    start(&s, &o);
    http_resp r;
    const char *auths[] = {"Authorization: bearer s3cret-token\r\n", "Authorization: BEARER   s3cret-token\r\n"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(http(s.port, "POST", "/admin/reload", auths[i], "", 0, &r), 0);
        if (r.status != 200) fail_msg("%s: %d %s", auths[i], r.status, r.body);
        free(r.body);
    }
    assert_int_equal(http(s.port, "POST", "/admin/reload", "Authorization: Basic s3cret-token\r\n", "", 0, &r), 0);
    assert_int_equal(r.status, 401);
    free(r.body);
    stop(&s);
    const struct { const char *text; const char *want; } cases[] = {
        {"  s3cret-token \r\n", "s3cret-token"}, {"s3cret-token", "s3cret-token"},
        {"s3cret-token\nsecond-line\n", NULL}, {"s3cret token\n", NULL}, {"short\n", NULL},
        {"s3cret-\x01token\n", NULL}, {"\n\n", NULL},
    };
    char *p = sd_path_join(g_ws, "token2");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sd_err err = {0};
        char *got = NULL;
        assert_int_equal(sd_write_file_atomic(p, cases[i].text, strlen(cases[i].text), &err), SD_OK);
        int rc = sv_token_read(p, &got, &err);
        if (cases[i].want) {
            assert_int_equal(rc, SD_OK);
            assert_string_equal(got, cases[i].want);
        } else {
            assert_int_equal(rc, SD_ERR_USAGE);
            assert_non_null(strstr(err.msg, "token2")); /* names the file */
            assert_null(got);
        }
        free(got);
    }
    /* a server does not start on a bad token file */
    sd_err err = {0};
    o.token_file = p;
    sv_state *st;
    assert_int_equal(sv_state_open(&st, g_ws, &o, &err), SD_ERR_USAGE);
    free(p), free(tok);
}

int main(int argc, char **argv) {
    sd_verbosity = 0; /* reloads log a line each */
    if (argc == 3 && !strcmp(argv[1], "--write-fixture")) {
        sd_err err = {0};
        if (write_fixture(argv[2], &err)) {
            fprintf(stderr, "test_serve: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_explore_get),     cmocka_unit_test(test_explore_post),
        cmocka_unit_test(test_errors),          cmocka_unit_test(test_health_and_metrics),
        cmocka_unit_test(test_reload_auth),     cmocka_unit_test(test_reload_under_load),
        cmocka_unit_test(test_overload_503),    cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_keep_alive),      cmocka_unit_test(test_modes),
        cmocka_unit_test(test_handlers_direct), cmocka_unit_test(test_truncate_in_place),
        cmocka_unit_test(test_head_deadline),   cmocka_unit_test(test_strict_http),
        cmocka_unit_test(test_token_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
