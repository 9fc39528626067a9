/* test_plan.c - the train and plan stages end to end on a tiny synthetic world:
 * every valid context gets novel clusters (never one of the context, never twice), the sweep's
 * tables agree with their definition (best-of-n uses the first n samples), sharded planning
 * merges into a table byte-identical to the unsharded one, and the run report's figures are
 * consistent. Runs the real `serendip` binary ($BUILD/serendip) for the stages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serendip/journeys.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"

static char ws[256], bin[256];

static int run(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static int setup(void **state) {
    (void)state;
    const char *b = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/serendip", b ? b : "build");
    snprintf(ws, sizeof ws, "/tmp/sd_test_plan_%d", (int)getpid());
    /* tiny: 12 clusters -> 132 contexts; a 60k-parameter model trained just enough to produce some
     * valid descriptions (about 40% of samples) */
    if (run("rm -rf %s && %s world --ws %s --users 400 --items 240 --topics 4 --subtopics 3 >/dev/null 2>&1", ws, bin, ws) ||
        run("%s split --ws %s >/dev/null 2>&1", bin, ws) ||
        run("%s cluster --ws %s --top 3 --clusters 12 >/dev/null 2>&1", bin, ws) ||
        run("%s journeys --ws %s >/dev/null 2>&1", bin, ws) ||
        run("%s train --ws %s --baseline --vocab 400 --dim 48 --layers 2 --heads 2 --kv-heads 1 --hidden 96 --lr 5e-3 "
            "--sft-lr 5e-3 --pretrain-steps 100 --novelty-steps 150 --align-steps 60 --batch 16 --novelty-examples 400 "
            ">/dev/null 2>&1",
            bin, ws) ||
        run("%s plan --ws %s --n-sweep 1,4 --top 4 --feedback-shrink 10 >/dev/null 2>&1", bin, ws))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    run("rm -rf %s", ws);
    return 0;
}

static void open_table(tbl_table *t, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", ws, name);
    sd_err err = {0};
    int rc = tbl_open(t, path, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SD_OK);
}

/* Every valid context has 1..top entries, none in the context, no duplicates; invalid contexts
 * (repeated clusters) are empty. */
static void test_table_covers_every_context(void **state) {
    (void)state;
    const char *names[] = {"plans/explore_n1.tbl", "plans/explore_n4.tbl", "explore.tbl"};
    for (int f = 0; f < 3; f++) {
        tbl_table t;
        open_table(&t, names[f]);
        int M = t.p.n_clusters, K = t.p.k;
        assert_int_equal(K, 2);
        assert_int_equal(t.p.n_contexts, (int64_t)M * M);
        int64_t valid = 0;
        for (int64_t i = 0; i < t.p.n_contexts; i++) {
            int32_t c[JR_K_MAX];
            jr_context_from_index(i, K, M, c);
            const tbl_entry *e;
            uint32_t flags;
            int n = tbl_lookup(&t, i, &e, &flags);
            if (!jr_context_valid(c, K, M)) {
                assert_int_equal(n, 0);
                continue;
            }
            valid++;
            assert_true(n >= 1 && n <= t.p.top);
            for (int a = 0; a < n; a++) {
                assert_true(e[a].cluster >= 0 && e[a].cluster < M);
                assert_true(e[a].cluster != c[0] && e[a].cluster != c[1]);
                for (int b = 0; b < a; b++) assert_true(e[a].cluster != e[b].cluster);
                if (!(flags & TBL_FLAG_FALLBACK)) {
                    /* ranked by alignment score, best first */
                    assert_true(e[a].align_score >= 0 && e[a].align_score <= 9);
                    if (a) assert_true(e[a].align_score <= e[a - 1].align_score);
                }
            }
        }
        assert_int_equal(valid, (int64_t)M * (M - 1));
        assert_int_equal(t.s.contexts_planned, valid);
        assert_int_equal(t.s.samples, valid * t.p.n_samples);
        assert_true(t.s.samples_compliant <= t.s.samples);
        tbl_close(&t);
    }
}

/* best-of-4 draws its first sample exactly as best-of-1 does, so a context whose single sample
 * was valid and novel must find that cluster among best-of-4's candidates. */
static void test_sweep_is_nested(void **state) {
    (void)state;
    tbl_table t1, t4;
    open_table(&t1, "plans/explore_n1.tbl");
    open_table(&t4, "plans/explore_n4.tbl");
    int64_t checked = 0;
    for (int64_t i = 0; i < t1.p.n_contexts; i++) {
        const tbl_entry *e1, *e4;
        uint32_t f1, f4;
        int n1 = tbl_lookup(&t1, i, &e1, &f1), n4 = tbl_lookup(&t4, i, &e4, &f4);
        if (n1 == 0 || (f1 & TBL_FLAG_FALLBACK)) continue;
        assert_false(f4 & TBL_FLAG_FALLBACK);
        int found = 0;
        for (int a = 0; a < n4; a++) found |= e4[a].cluster == e1[0].cluster;
        /* top 4 of at most 4 distinct candidates keeps them all */
        assert_true(found);
        checked++;
    }
    assert_true(checked > 0);
    assert_true(t4.s.samples_compliant >= t1.s.samples_compliant);
    tbl_close(&t1);
    tbl_close(&t4);
}

/* The confidence-aware table (kind llm_feedback) for the largest n: every entry is novel for the
 * context, scores are posterior rates in [0, 1], best first; it holds every candidate that best-of-4
 * proposed (up to top) or an observed candidate that outranks it; a slot is flagged no-feedback
 * exactly when none of its entries has observed feedback in journeys.bin. */
static void test_feedback_table(void **state) {
    (void)state;
    tbl_table t, t4;
    open_table(&t, "plans/explore_feedback_n4.tbl");
    open_table(&t4, "plans/explore_n4.tbl");
    assert_int_equal(t.p.kind, TBL_KIND_LLM_FEEDBACK);
    assert_int_equal(t4.p.kind, TBL_KIND_LLM);
    assert_int_equal(t.p.n_samples, 4);
    char path[512];
    snprintf(path, sizeof path, "%s/journeys.bin", ws);
    jr_journeys j;
    sd_err err = {0};
    assert_int_equal(jr_load(&j, path, &err), SD_OK);
    int64_t with_fb = 0, without = 0;
    for (int64_t i = 0; i < t.p.n_contexts; i++) {
        int32_t c[JR_K_MAX];
        jr_context_from_index(i, t.p.k, t.p.n_clusters, c);
        const tbl_entry *e;
        uint32_t f;
        int n = tbl_lookup(&t, i, &e, &f);
        if (n == 0 || (f & TBL_FLAG_FALLBACK)) continue;
        int observed = 0;
        for (int a = 0; a < n; a++) {
            assert_false(e[a].cluster == c[0] || e[a].cluster == c[1]);
            assert_true(e[a].align_score >= 0 && e[a].align_score <= 1);
            if (a) assert_true(e[a].align_score <= e[a - 1].align_score);
            const jr_feedback *fb = jr_feedback_find(&j, c, e[a].cluster);
            observed |= fb && fb->exposures > 0;
        }
        assert_int_equal(!!(f & TBL_FLAG_NO_FEEDBACK), !observed);
        with_fb += observed;
        without += !observed;
    }
    assert_true(with_fb > 0); /* the tiny world has feedback for some contexts */
    jr_free(&j);
    tbl_close(&t);
    tbl_close(&t4);
    (void)without;
}

/* --constrained samples through the descriptions' token trie: every sample is exactly one
 * description (compliance 1, counted in the table's statistics), where free generation of this
 * briefly trained model is valid for only some samples; every valid context gets novel entries. */
static void test_constrained_decoding(void **state) {
    (void)state;
    assert_int_equal(run("%s plan --ws %s --n 4 --top 4 --constrained --out %s/constrained.tbl >/dev/null 2>&1", bin, ws, ws), 0);
    tbl_table t, f;
    open_table(&t, "constrained.tbl");
    open_table(&f, "plans/explore_n4.tbl");
    assert_true(t.s.samples > 0);
    assert_int_equal(t.s.samples_compliant, t.s.samples);
    assert_true(f.s.samples_compliant < f.s.samples); /* the free run of the same model is not */
    assert_int_equal(t.s.contexts_fallback, 0);
    for (int64_t i = 0; i < t.p.n_contexts; i++) {
        int32_t c[JR_K_MAX];
        jr_context_from_index(i, t.p.k, t.p.n_clusters, c);
        const tbl_entry *e;
        int n = tbl_lookup(&t, i, &e, NULL);
        if (!jr_context_valid(c, t.p.k, t.p.n_clusters)) continue;
        assert_true(n >= 1);
        for (int a = 0; a < n; a++) assert_false(e[a].cluster == c[0] || e[a].cluster == c[1]);
    }
    tbl_close(&t);
    tbl_close(&f);
    /* the fast constrained path (shared rows, trie-determined completion) keeps the guarantees:
     * the same seed gives the same bytes, and shards merge into the whole table */
    assert_int_equal(run("%s plan --ws %s --n 4 --top 4 --constrained --out %s/constrained2.tbl >/dev/null 2>&1", bin, ws, ws), 0);
    assert_int_equal(run("cmp -s %s/constrained.tbl %s/constrained2.tbl", ws, ws), 0);
    for (int k = 1; k <= 2; k++)
        assert_int_equal(run("%s plan --ws %s --n 4 --top 4 --constrained --shard %d/2 --out %s/c%d.tbl >/dev/null 2>&1", bin, ws,
                             k, ws, k),
                         0);
    assert_int_equal(run("%s plan-merge --ws %s --out %s/cm.tbl %s/c1.tbl %s/c2.tbl >/dev/null 2>&1", bin, ws, ws, ws, ws), 0);
    assert_int_equal(run("cmp -s %s/constrained.tbl %s/cm.tbl", ws, ws), 0);
    /* the run report counts the forward passes' work */
    assert_int_equal(run("python3 -c \"import json,sys; j=json.load(open('%s/plans/plan-explore.json')); "
                         "sys.exit(not (j['forward_gflop'] > 0 and j['generator_rows'] > 0 and j['alignment_rows'] > 0))\"",
                         ws),
                     0);
}

static void test_shards_merge_to_the_unsharded_table(void **state) {
    (void)state;
    assert_int_equal(run("%s plan --ws %s --n 4 --top 4 --out %s/full.tbl >/dev/null 2>&1", bin, ws, ws), 0);
    assert_int_equal(run("%s plan --ws %s --n 4 --top 4 --shard 1/2 >/dev/null 2>&1", bin, ws), 0);
    assert_int_equal(run("%s plan --ws %s --n 4 --top 4 --shard 2/2 >/dev/null 2>&1", bin, ws), 0);
    assert_int_equal(run("%s plan-merge --ws %s --out %s/merged.tbl %s/explore.tbl.1-of-2 %s/explore.tbl.2-of-2 >/dev/null 2>&1",
                         bin, ws, ws, ws, ws), 0);
    assert_int_equal(run("cmp -s %s/full.tbl %s/merged.tbl", ws, ws), 0);
    /* and the sweep's n = 4 table is that same table: the sweep really is best-of-4 */
    assert_int_equal(run("cmp -s %s/full.tbl %s/plans/explore_n4.tbl", ws, ws), 0);
}

static void test_single_model_and_usage_errors(void **state) {
    (void)state;
    assert_int_equal(run("%s plan --ws %s --generator single --no-align --n 1 --out %s/single.tbl >/dev/null 2>&1", bin, ws, ws), 0);
    tbl_table t;
    open_table(&t, "single.tbl");
    assert_true(t.p.align_hash == 0);
    tbl_close(&t);
    /* usage errors exit 2, a workspace without models exits 1 */
    assert_int_equal(WEXITSTATUS(run("%s plan --ws %s --n-sweep 4,2 2>/dev/null", bin, ws)), 2);
    assert_int_equal(WEXITSTATUS(run("%s plan --ws %s --shard 3/2 2>/dev/null", bin, ws)), 2);
    assert_int_equal(WEXITSTATUS(run("%s plan --ws %s --generator bogus 2>/dev/null", bin, ws)), 2);
    /* a model shape that cannot work is refused before any corpus is built */
    assert_int_equal(WEXITSTATUS(run("%s train --ws %s --dim 33 2>%s/train_err.txt", bin, ws, ws)), 2);
    assert_int_equal(run("grep -q 'dim 33' %s/train_err.txt && ! grep -q corpus %s/train_err.txt", ws, ws), 0);
    assert_int_equal(WEXITSTATUS(run("mkdir -p %s/empty && %s plan --ws %s/empty 2>/dev/null", ws, bin, ws)), 1);
}

/* --base: fine-tune from a given GGUF (here the base this workspace trained) without training a
 * tokenizer or pretraining; the fine-tuned models keep the base's sizes and vocabulary. */
static void test_train_from_a_given_base(void **state) {
    (void)state;
    char ws2[300];
    snprintf(ws2, sizeof ws2, "%s/from-base", ws);
    assert_int_equal(run("mkdir -p %s && cp %s/dataset.bin %s/split.json %s/taxonomy.bin %s/journeys.bin %s/ && "
                         "cp %s/models/base.gguf %s/given.gguf", ws2, ws, ws, ws, ws, ws2, ws, ws2), 0);
    /* --dim and --vocab are ignored with --base: the given model's shape and vocabulary are kept */
    assert_int_equal(run("%s train --ws %s --base %s/given.gguf --dim 64 --vocab 300 --pretrain-steps 0 --novelty-steps 20 "
                         "--align-steps 20 --batch 8 --novelty-examples 100 >/dev/null 2>&1", bin, ws2, ws2), 0);
    assert_int_equal(run("%s lm info --model %s/given.gguf --json | sed -n '/\"config\"/,/}/p' > %s/a.txt && "
                         "%s lm info --model %s/models/novelty.gguf --json | sed -n '/\"config\"/,/}/p' > %s/b.txt && "
                         "grep -q dim %s/a.txt && cmp -s %s/a.txt %s/b.txt",
                         bin, ws2, ws2, bin, ws2, ws2, ws2, ws2, ws2), 0);
    assert_int_equal(run("%s plan --ws %s --n 2 --top 2 >/dev/null 2>&1", bin, ws2), 0);
    tbl_table t;
    char path[400];
    snprintf(path, sizeof path, "from-base/%s", TBL_FILE);
    open_table(&t, path);
    assert_int_equal(t.s.contexts_planned, (int64_t)t.p.n_clusters * (t.p.n_clusters - 1));
    tbl_close(&t);
    /* a base that is not a GGUF is refused with its name, and the failed run leaves the models of
     * the previous run as they were (no mix, no temporary folder) */
    assert_int_equal(run("cp %s/models/novelty.gguf %s/before.gguf", ws2, ws2), 0);
    assert_int_equal(WEXITSTATUS(run("%s train --ws %s --base %s/split.json 2>%s/err.txt", bin, ws2, ws2, ws2)), 1);
    assert_int_equal(run("grep -q 'split.json' %s/err.txt", ws2), 0);
    assert_int_equal(run("cmp -s %s/before.gguf %s/models/novelty.gguf && test -f %s/models/align.gguf", ws2, ws2, ws2), 0);
    assert_int_equal(run("ls -d %s/models.new.* >/dev/null 2>&1", ws2), 512); /* ls exits 2: nothing left */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_covers_every_context),
        cmocka_unit_test(test_sweep_is_nested),
        cmocka_unit_test(test_feedback_table),
        cmocka_unit_test(test_constrained_decoding),
        cmocka_unit_test(test_shards_merge_to_the_unsharded_table),
        cmocka_unit_test(test_single_model_and_usage_errors),
        cmocka_unit_test(test_train_from_a_given_base),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
