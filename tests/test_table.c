/* test_table.c - explore table: write/open/lookup round trip, shard + merge byte-identical to an
 * unsharded build, refusal of truncated, foreign, wrong-version and corrupted files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/journeys.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"

static char g_dir[64];

static char *tmp_path(const char *name) { return sd_path_join(g_dir, name); }

static tbl_params params(int64_t begin, int64_t end) {
    /* K = 2, M = 7: 49 contexts, top 3 */
    tbl_params p = {.k = 2, .n_clusters = 7, .n_contexts = 49, .top = 3, .n_samples = 16, .temperature = 0.8f,
                    .seed = 99, .tax_hash = 0x1111, .novelty_hash = 0x2222, .align_hash = 0x3333, .kind = TBL_KIND_LLM};
    p.begin = begin;
    p.end = end;
    return p;
}

/* The content of context i, a function of i alone (as a deterministic planner's would be):
 * contexts with c1 == c2 stay empty, i % 5 == 0 are fallbacks with one entry, others have
 * 1 + i % 3 entries. */
static int fill_context(int64_t i, tbl_entry *e, uint32_t *flags) {
    int c1 = (int)(i / 7), c2 = (int)(i % 7);
    *flags = 0;
    if (c1 == c2) return 0;
    if (i % 5 == 0) {
        *flags = TBL_FLAG_FALLBACK;
        e[0] = (tbl_entry){(c2 + 1) % 7, 0.0f, -1.0f};
        return 1;
    }
    int n = 1 + (int)(i % 3);
    for (int j = 0; j < n; j++) e[j] = (tbl_entry){(int)((i + j + 2) % 7), 9.0f - (float)j - (float)i / 100.0f, -0.5f * (float)(j + 1)};
    return n;
}

static void build_range(int64_t begin, int64_t end, const char *path) {
    tbl_params p = params(begin, end);
    sd_err err = {0};
    tbl_builder *b = tbl_builder_new(&p, &err);
    assert_non_null(b);
    tbl_stats st = {0};
    for (int64_t i = begin; i < end; i++) {
        tbl_entry e[3];
        uint32_t fl;
        int n = fill_context(i, e, &fl);
        if (i / 7 == i % 7) continue;
        st.contexts_planned++;
        st.samples += 16;
        st.samples_compliant += 15;
        st.samples_novel += 10;
        st.contexts_fallback += fl ? 1 : 0;
        assert_int_equal(tbl_builder_set(b, i, e, n, fl, &err), SD_OK);
    }
    st.fallback_kind = 2;
    tbl_builder_add_stats(b, &st);
    assert_int_equal(tbl_write(b, path, &err), SD_OK);
    tbl_builder_free(b);
}

static void test_round_trip(void **state) {
    (void)state;
    char *path = tmp_path("full.tbl");
    build_range(0, 49, path);
    tbl_table t;
    sd_err err = {0};
    assert_int_equal(tbl_open(&t, path, &err), SD_OK);
    assert_int_equal(t.p.k, 2);
    assert_int_equal(t.p.n_clusters, 7);
    assert_int_equal(t.p.top, 3);
    assert_true(t.p.align_hash == 0x3333 && t.p.seed == 99);
    assert_int_equal(t.s.contexts_planned, 42);
    assert_int_equal(t.s.samples, 42 * 16);
    assert_int_equal(t.s.fallback_kind, 2);
    for (int64_t i = 0; i < 49; i++) {
        tbl_entry want[3];
        uint32_t wfl, fl = 77;
        int wn = fill_context(i, want, &wfl);
        const tbl_entry *got;
        int n = tbl_lookup(&t, i, &got, &fl);
        assert_int_equal(n, wn);
        assert_int_equal(fl, wfl);
        for (int j = 0; j < n; j++) {
            assert_int_equal(got[j].cluster, want[j].cluster);
            assert_true(got[j].align_score == want[j].align_score); /* stored bit for bit */
            assert_true(got[j].novelty_logprob == want[j].novelty_logprob);
        }
    }
    const tbl_entry *e;
    assert_int_equal(tbl_lookup(&t, 49, &e, NULL), -1);
    assert_int_equal(tbl_lookup(&t, -1, &e, NULL), -1);
    tbl_close(&t);
    free(path);
}

static void test_builder_refuses_bad_input(void **state) {
    (void)state;
    tbl_params p = params(10, 20);
    sd_err err = {0};
    tbl_builder *b = tbl_builder_new(&p, &err);
    tbl_entry e[4] = {{1, 0, 0}, {2, 0, 0}, {3, 0, 0}, {4, 0, 0}};
    assert_int_not_equal(tbl_builder_set(b, 9, e, 1, 0, &err), SD_OK);  /* outside the shard */
    assert_int_not_equal(tbl_builder_set(b, 20, e, 1, 0, &err), SD_OK);
    assert_int_not_equal(tbl_builder_set(b, 10, e, 4, 0, &err), SD_OK); /* more than top */
    e[0].cluster = 7;
    assert_int_not_equal(tbl_builder_set(b, 10, e, 1, 0, &err), SD_OK); /* cluster out of range */
    tbl_builder_free(b);
    p.n_contexts = 50; /* not M^K */
    assert_null(tbl_builder_new(&p, &err));
}

static int files_equal(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    sd_err err = {0};
    assert_int_equal(sd_read_file(a, &x, &nx, &err), SD_OK);
    assert_int_equal(sd_read_file(b, &y, &ny, &err), SD_OK);
    int eq = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return eq;
}

static void test_shard_merge_is_byte_identical(void **state) {
    (void)state;
    char *full = tmp_path("u.tbl"), *s0 = tmp_path("s0.tbl"), *s1 = tmp_path("s1.tbl"), *s2 = tmp_path("s2.tbl"),
         *merged = tmp_path("m.tbl");
    build_range(0, 49, full);
    build_range(0, 17, s0);
    build_range(17, 33, s1);
    build_range(33, 49, s2);
    sd_err err = {0};
    const char *order[3] = {s2, s0, s1}; /* given out of order on purpose */
    assert_int_equal(tbl_merge(order, 3, merged, &err), SD_OK);
    assert_true(files_equal(full, merged));

    /* a gap, an overlap and a foreign run are refused */
    const char *gap[2] = {s0, s2};
    assert_int_equal(tbl_merge(gap, 2, merged, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "covered by no shard"));
    char *s1b = tmp_path("s1b.tbl");
    build_range(16, 33, s1b);
    const char *ovl[3] = {s0, s1b, s2};
    assert_int_equal(tbl_merge(ovl, 3, merged, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "overlaps"));
    /* same range, different model hash */
    tbl_params p = params(17, 33);
    p.align_hash = 0x4444;
    tbl_builder *b = tbl_builder_new(&p, &err);
    char *other = tmp_path("other.tbl");
    assert_int_equal(tbl_write(b, other, &err), SD_OK);
    tbl_builder_free(b);
    const char *foreign[3] = {s0, other, s2};
    assert_int_equal(tbl_merge(foreign, 3, merged, &err), SD_ERR_DATA);
    assert_non_null(strstr(err.msg, "different runs"));
    free(full); free(s0); free(s1); free(s2); free(merged); free(s1b); free(other);
}

static void test_refuses_bad_files(void **state) {
    (void)state;
    char *path = tmp_path("good.tbl"), *bad = tmp_path("bad.tbl");
    build_range(0, 49, path);
    char *buf;
    size_t n;
    sd_err err = {0};
    tbl_table t;
    assert_int_equal(sd_read_file(path, &buf, &n, &err), SD_OK);
    assert_int_equal(n, 256 + 49 * (8 + 12 * 3));

    /* truncated: by one byte, and to half a header */
    assert_int_equal(sd_write_file_atomic(bad, buf, n - 1, &err), SD_OK);
    assert_int_equal(tbl_open(&t, bad, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "truncated"));
    assert_non_null(strstr(err.msg, "bad.tbl"));
    assert_int_equal(sd_write_file_atomic(bad, buf, 100, &err), SD_OK);
    assert_int_equal(tbl_open(&t, bad, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "truncated"));
    /* empty */
    assert_int_equal(sd_write_file_atomic(bad, buf, 0, &err), SD_OK);
    assert_int_equal(tbl_open(&t, bad, &err), SD_ERR_FORMAT);

    /* foreign */
    char *copy = sd_malloc(n);
    memcpy(copy, buf, n);
    memcpy(copy, "GGUF\3\0\0\0", 8);
    assert_int_equal(tbl_open_mem(&t, copy, n, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "not an explore table"));
    /* wrong version */
    memcpy(copy, buf, n);
    copy[8] = 1; /* version 1 had no kind: refused as stale */
    assert_int_equal(tbl_open_mem(&t, copy, n, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "version 1"));
    /* header bit flip: checksum */
    memcpy(copy, buf, n);
    copy[60] ^= 1;
    assert_int_equal(tbl_open_mem(&t, copy, n, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "checksum"));
    /* corrupted slot: count beyond top (slot 1 starts at 256 + 44) */
    memcpy(copy, buf, n);
    copy[256 + 44] = 9;
    assert_int_equal(tbl_open_mem(&t, copy, n, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "slot 1"));
    /* corrupted entry: cluster 7 in slot 1 (which has 1 + 1 % 3 = 2 entries) */
    memcpy(copy, buf, n);
    copy[256 + 44 + 8] = 7;
    assert_int_equal(tbl_open_mem(&t, copy, n, &err), SD_ERR_FORMAT);
    /* trailing garbage */
    char *longer = sd_calloc(n + 4, 1);
    memcpy(longer, buf, n);
    assert_int_equal(tbl_open_mem(&t, longer, n + 4, &err), SD_ERR_FORMAT);
    /* the intact buffer opens */
    memcpy(copy, buf, n);
    assert_int_equal(tbl_open_mem(&t, copy, n, &err), SD_OK);
    tbl_close(&t);
    free(longer); free(copy); free(buf); free(path); free(bad);
}

/* `test_table --fixture WS`: writes WS/explore.tbl for the workspace's taxonomy (K = 2, top 3)
 * with a content that is a function of the context alone: entry j of (c1, c2) is the j-th cluster
 * after c2 (cyclically) not in the context, align score 9 - j, log-probability -(j + 1); every
 * context whose index is a multiple of 7 is a fallback. Also WS/shard0.tbl and WS/shard1.tbl, the
 * same table in two slices, for tests/test_journeys.sh (explore, plan-merge). */
static int write_fixture(const char *ws) {
    sd_err err = {0};
    tx_taxonomy tax;
    char *pt = sd_path_join(ws, TX_FILE);
    if (tx_load(&tax, pt, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    free(pt);
    const int32_t m = tax.n_clusters;
    tbl_params full = {.k = 2, .n_clusters = m, .n_contexts = (int64_t)m * m, .top = 3, .n_samples = 4,
                       .temperature = 1.0f, .seed = 7, .tax_hash = tx_hash(&tax), .novelty_hash = 1, .align_hash = 2, .kind = TBL_KIND_LLM};
    int64_t cut = full.n_contexts / 3;
    int64_t ranges[3][2] = {{0, full.n_contexts}, {0, cut}, {cut, full.n_contexts}};
    const char *names[3] = {TBL_FILE, "shard0.tbl", "shard1.tbl"};
    for (int r = 0; r < 3; r++) {
        tbl_params p = full;
        p.begin = ranges[r][0];
        p.end = ranges[r][1];
        tbl_builder *b = tbl_builder_new(&p, &err);
        tbl_stats st = {0};
        for (int64_t i = p.begin; i < p.end; i++) {
            int32_t ctx[2];
            jr_context_from_index(i, 2, m, ctx);
            if (!jr_context_valid(ctx, 2, m)) continue;
            tbl_entry e[3];
            int n = 0;
            for (int32_t d = 1; d < m && n < 3; d++) {
                int32_t c = (ctx[1] + d) % m;
                if (c == ctx[0]) continue;
                e[n] = (tbl_entry){c, 9.0f - (float)n, -(float)(n + 1)};
                n++;
            }
            uint32_t fl = i % 7 == 0 ? TBL_FLAG_FALLBACK : 0;
            st.contexts_planned++;
            st.samples += 4;
            st.samples_compliant += 3;
            st.contexts_fallback += fl != 0;
            if (tbl_builder_set(b, i, e, n, fl, &err)) return 1;
        }
        tbl_builder_add_stats(b, &st);
        char *path = sd_path_join(ws, names[r]);
        if (tbl_write(b, path, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        free(path);
        tbl_builder_free(b);
    }
    tx_free(&tax);
    return 0;
}

/* Values no header check covers (docs/formats-table.md): no infinity anywhere; NaN only where
 * there is no value: a fallback slot's entries, and the alignment score of a table planned without
 * the alignment model (align_hash 0). A one-slot-filled K = 2, M = 7 table is written with a
 * finite entry, then the entry's bytes are patched (the header checksum does not cover slots). */
static void test_refuses_nan_and_inf(void **state) {
    (void)state;
    const float NaN = NAN, Inf = INFINITY;
    const struct {
        uint64_t align_hash;
        uint32_t flags;
        float score, logprob;
        int ok;
        const char *why;
    } cases[] = {
        {0x3333, 0, 7.5f, -1.0f, 1, NULL},
        {0x3333, 0, NaN, -1.0f, 0, "NaN alignment score"},
        {0x3333, 0, 7.5f, NaN, 0, "NaN log-probability"},
        {0x3333, 0, Inf, -1.0f, 0, "infinite"},
        {0x3333, 0, 7.5f, -Inf, 0, "infinite"},
        {0x3333, TBL_FLAG_FALLBACK, NaN, NaN, 1, NULL},   /* the planner's fallback entries */
        {0x3333, TBL_FLAG_FALLBACK, 7.5f, Inf, 0, "infinite"},
        {0, 0, NaN, -1.0f, 1, NULL},                      /* plan --no-align */
        {0, 0, NaN, NaN, 0, "NaN log-probability"},
    };
    char *path = tmp_path("values.tbl");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tbl_params p = params(0, 49);
        p.align_hash = cases[i].align_hash;
        sd_err err = {0};
        tbl_builder *b = tbl_builder_new(&p, &err);
        assert_non_null(b);
        tbl_entry e = {3, 7.5f, -1.0f};
        assert_int_equal(tbl_builder_set(b, 1, &e, 1, cases[i].flags, &err), SD_OK);
        assert_int_equal(tbl_write(b, path, &err), SD_OK);
        /* the builder applies the same rule */
        e = (tbl_entry){3, cases[i].score, cases[i].logprob};
        assert_int_equal(tbl_builder_set(b, 1, &e, 1, cases[i].flags, &err) == SD_OK, cases[i].ok);
        tbl_builder_free(b);
        char *buf;
        size_t len;
        assert_int_equal(sd_read_file(path, &buf, &len, &err), SD_OK);
        size_t off = TBL_HEADER_SIZE + 1 * (8 + 3 * sizeof(tbl_entry)) + 8; /* slot 1, entry 0 */
        memcpy(buf + off + 4, &cases[i].score, 4);
        memcpy(buf + off + 8, &cases[i].logprob, 4);
        assert_int_equal(sd_write_file_atomic(path, buf, len, &err), SD_OK);
        free(buf);
        tbl_table t;
        int rc = tbl_open(&t, path, &err);
        if (cases[i].ok) {
            if (rc) fail_msg("case %zu refused: %s", i, err.msg);
            const tbl_entry *got;
            assert_int_equal(tbl_lookup(&t, 1, &got, NULL), 1);
            assert_memory_equal(&got->align_score, &cases[i].score, 4);
            tbl_close(&t);
        } else {
            if (rc != SD_ERR_FORMAT) fail_msg("case %zu accepted", i);
            if (!strstr(err.msg, cases[i].why) || !strstr(err.msg, "slot 1 entry 0") || !strstr(err.msg, "values.tbl"))
                fail_msg("case %zu: message '%s' lacks '%s', the slot or the file", i, err.msg, cases[i].why);
        }
    }
    free(path);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--fixture")) return write_fixture(argv[2]);
    strcpy(g_dir, "/tmp/sdtblXXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_builder_refuses_bad_input),
        cmocka_unit_test(test_shard_merge_is_byte_identical),
        cmocka_unit_test(test_refuses_bad_files),
        cmocka_unit_test(test_refuses_nan_and_inf),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char *cmd = sd_asprintf("rm -rf %s", g_dir);
    if (system(cmd) != 0) rc = rc ? rc : 1;
    free(cmd);
    return rc;
}
