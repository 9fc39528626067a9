/* fuzz_http.c - libFuzzer target over the HTTP request handlers (no sockets): the input is split
 * into a method (first byte), a request target and an Authorization value (lines), and a body
 * (the rest); sv_handle must answer every request with a status in 100..599 and, whenever the
 * answer is JSON, with a body that parses as JSON (the hand-written JSON appender is checked too).
 * The state is a small in-memory workspace (dataset, taxonomy, explore table, retrieval model).
 * fuzz-sources: src/base/base.c src/data/dataset.c src/data/split.c src/cluster/taxonomy.c src/cluster/embed.c src/cluster/kmeans.c src/cluster/describe.c src/journeys/journeys.c src/plan/table.c src/retrieve/retrieve.c src/serve/handlers.c
 * fuzz-libs: -lcjson -lopenblas -llapacke */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/serve.h"

static sv_state *g_st;
static ds_dataset g_ds;
static tx_taxonomy g_tax;
static rt_model g_rt;

/* 12 items in 4 clusters, a few users with contexts, a K = 2 table planning every valid context. */
static void init_state(void) {
    sd_err err = {0};
    sd_verbosity = 0;
    ds_builder *b = ds_builder_new();
    for (int i = 0; i < 12; i++) {
        char title[32];
        snprintf(title, sizeof title, i == 3 ? "T\"i\\t\x01le %d" : "Title %d", i);
        ds_builder_add_item(b, 100 + i, title, "", &err);
    }
    for (int u = 0; u < 30; u++)
        for (int e = 0; e < 6; e++) ds_builder_add_event(b, u, 100 + (u * 7 + e * 5) % 12, e, e % 2 ? 5 : 3, DS_NO_VALUE);
    if (ds_builder_finish(b, &g_ds, &err)) abort();
    memset(&g_tax, 0, sizeof g_tax);
    g_tax.n_top = 1, g_tax.n_clusters = 4, g_tax.n_items = g_ds.n_items;
    g_tax.item_cluster = sd_malloc(12 * sizeof(int32_t));
    g_tax.parent = sd_calloc(4, sizeof(int32_t));
    g_tax.size = sd_malloc(4 * sizeof(int32_t));
    g_tax.desc = sd_malloc(4 * sizeof(char *));
    g_tax.top_desc = sd_malloc(sizeof(char *));
    g_tax.top_desc[0] = sd_strdup("all");
    g_tax.members = sd_malloc(12 * sizeof(int32_t));
    g_tax.member_off = sd_malloc(5 * sizeof(int64_t));
    for (int i = 0; i < 12; i++) g_tax.item_cluster[i] = i / 3, g_tax.members[i] = i;
    for (int c = 0; c < 4; c++) g_tax.size[c] = 3, g_tax.desc[c] = sd_asprintf("desc \"%d\"", c), g_tax.member_off[c] = 3 * c;
    g_tax.member_off[4] = 12;
    tbl_params p = {.k = 2, .n_clusters = 4, .n_contexts = 16, .top = 2, .n_samples = 1, .temperature = 1, .seed = 1,
                    .tax_hash = tx_hash(&g_tax), .begin = 0, .end = 16, .kind = TBL_KIND_LLM};
    tbl_builder *tb = tbl_builder_new(&p, &err);
    for (int a = 0; a < 4; a++)
        for (int c = 0; c < 4; c++) {
            if (a == c) continue;
            tbl_entry e[2];
            int n = 0;
            for (int x = 0; x < 4; x++)
                if (x != a && x != c) e[n].cluster = x, e[n].align_score = (float)x, e[n++].novelty_logprob = -1;
            tbl_builder_set(tb, a * 4 + c, e, n, 0, &err);
        }
    char dir[] = "/tmp/sdfuzzXXXXXX";
    if (!mkdtemp(dir)) abort();
    char *path = sd_path_join(dir, "explore.tbl");
    if (tbl_write(tb, path, &err)) abort();
    tbl_builder_free(tb);
    rt_options o = RT_OPTIONS_DEFAULT;
    o.dim = 4, o.epochs = 1;
    if (rt_train_data(&g_ds, NULL, &o, &g_rt, &err)) abort();
    sv_options so = SV_OPTIONS_DEFAULT;
    so.max_body = 2048;
    if (sv_state_new(&g_st, &g_ds, &g_tax, &g_rt, path, "fuzz-token-123", NULL, &so, &err)) abort();
    free(path);
}

static const char *const METHODS[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "get"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_st) init_state();
    if (size < 1) return 0;
    const char *method = METHODS[data[0] & 7];
    /* target: up to the first '\n' (NUL-free, as libmicrohttpd hands it over) */
    char *buf = malloc(size + 1);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    size_t rest = size - 1;
    char *nl = memchr(buf, '\n', rest);
    char *url = buf, *auth = NULL, *body = NULL;
    size_t blen = 0;
    if (nl) {
        *nl = 0;
        auth = nl + 1;
        char *nl2 = memchr(auth, '\n', rest - (size_t)(auth - buf));
        if (nl2) {
            *nl2 = 0;
            body = nl2 + 1;
            blen = rest - (size_t)(body - buf);
        }
    }
    if (strlen(url) != (size_t)((nl ? nl : buf + rest) - buf)) url = "/"; /* embedded NUL: not a real target */
    if (auth && !*auth) auth = NULL;
    /* the body is handed over exactly (not NUL-terminated): copy it so ASan sees any overread */
    char *bcopy = NULL;
    if (body) {
        bcopy = malloc(blen ? blen : 1);
        memcpy(bcopy, body, blen);
    }
    /* a reload with the right token must not be reached by accident every run: it reopens the file,
     * which is fine, but keep the fuzzer on parsing */
    sv_request rq = {.method = method, .url = url, .auth = auth, .body = bcopy, .body_len = blen,
                     .body_too_large = blen > 2048};
    sv_response rs;
    sv_handle(g_st, &rq, &rs);
    if (rs.status < 100 || rs.status > 599) abort();
    if (!rs.body && rs.len) abort();
    if (rs.content_type && !strcmp(rs.content_type, "application/json")) {
        cJSON *j = cJSON_ParseWithLength(rs.body, rs.len);
        if (!j) {
            fprintf(stderr, "invalid JSON for %s %s: %.*s\n", method, url, (int)rs.len, rs.body);
            abort();
        }
        cJSON_Delete(j);
    }
    sv_response_free(&rs);
    free(bcopy);
    free(buf);
    return 0;
}
