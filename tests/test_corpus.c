/* test_corpus.c - the prompt format (exact strings), score digits, diversification of the novelty
 * set (cap respected, entropy), alignment labels (min-users filter, percentile rounding, held-out
 * split), baseline and pairwise files, pretraining text, on fixtures built here by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/corpus.h"

static char g_dir[64];
static tx_taxonomy g_tax;
static const char *g_desc[6] = {"war, drama", "space, alien", "comedy, family", "noir, crime", "anime, robot", "docu, nature"};

static int setup(void **state) {
    (void)state;
    memset(&g_tax, 0, sizeof g_tax);
    g_tax.n_top = 1;
    g_tax.n_clusters = 6;
    g_tax.n_items = 0;
    g_tax.desc = (char **)g_desc;
    static int32_t parent[6] = {0};
    static char *top[1] = {"everything"};
    g_tax.parent = parent;
    g_tax.top_desc = top;
    strcpy(g_dir, "/tmp/sdcpXXXXXX");
    return mkdtemp(g_dir) ? 0 : 1;
}

static int teardown(void **state) {
    (void)state;
    char *cmd = sd_asprintf("rm -rf %s", g_dir);
    int rc = system(cmd);
    free(cmd);
    return rc != 0;
}

static void test_prompt_format(void **state) {
    (void)state;
    char buf[256];
    int32_t ctx[2] = {0, 1};
    assert_int_equal(cp_novelty_prompt(&g_tax, ctx, 2, buf, sizeof buf), 43);
    assert_string_equal(buf, "<|ctx|>war, drama<|sep|>space, alien<|ans|>");
    assert_true(cp_align_prompt(&g_tax, ctx, 2, 3, buf, sizeof buf) > 0);
    assert_string_equal(buf, "<|ctx|>war, drama<|sep|>space, alien<|ans|>noir, crime<|score|>");
    assert_true(cp_pair_prompt(&g_tax, ctx, 2, 3, 5, buf, sizeof buf) > 0);
    assert_string_equal(buf, "<|ctx|>war, drama<|sep|>space, alien<|ans|>noir, crime<|sep|>docu, nature<|score|>");
    int32_t one = 4;
    assert_true(cp_novelty_prompt(&g_tax, &one, 1, buf, sizeof buf) > 0);
    assert_string_equal(buf, "<|ctx|>anime, robot<|ans|>");
    /* too small a buffer (exactly one byte short of the NUL) and bad clusters are refused */
    assert_int_equal(cp_novelty_prompt(&g_tax, ctx, 2, buf, 43), -1);
    assert_int_equal(cp_novelty_prompt(&g_tax, ctx, 2, buf, 44), 43);
    int32_t bad[2] = {0, 6};
    assert_int_equal(cp_novelty_prompt(&g_tax, bad, 2, buf, sizeof buf), -1);
    assert_int_equal(cp_align_prompt(&g_tax, ctx, 2, -1, buf, sizeof buf), -1);
}

static void test_score_digits(void **state) {
    (void)state;
    assert_int_equal(cp_score_digit(0.0), 0);
    assert_int_equal(cp_score_digit(-0.5), 0);
    assert_int_equal(cp_score_digit(NAN), 0);
    assert_int_equal(cp_score_digit(0.0999), 0);
    assert_int_equal(cp_score_digit(0.125), 1);
    assert_int_equal(cp_score_digit(0.75), 7);
    assert_int_equal(cp_score_digit(0.95), 9);
    assert_int_equal(cp_score_digit(1.0), 9);
    assert_true(fabs(cp_digit_value(3) - 0.35) < 1e-12);
}

/* ---------------------------------------------------------------- a hand-made journeys result */

static jr_transition g_tr[200];
static jr_feedback g_fb[7];
static int64_t g_joff[3] = {0, 3, 5};
static int32_t g_journey[5] = {0, 1, 2, 3, 4};

/* Novel transitions: 100 to target 0, 10 to target 1, 5 to target 2; 20 non-novel to target 3.
 * Feedback (users, rate): (0,1)->2 (3, .1) (0,1)->3 (5, .2) (0,1)->4 (3, .5) (0,1)->5 (10, .9)
 * (1,0)->2 (4, .2) | dropped by min-users 3: (2,3)->4 (2, .99) (2,3)->5 (1, 0). */
static void make_journeys(jr_journeys *j) {
    memset(j, 0, sizeof *j);
    j->k = 2;
    j->n_clusters = 6;
    j->n_users = 2;
    j->journey_off = g_joff;
    j->journey = g_journey;
    j->n_steps = 5;
    int n = 0;
    struct { int target, count, novel; } spec[4] = {{0, 100, 1}, {1, 10, 1}, {2, 5, 1}, {3, 20, 0}};
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < spec[s].count; i++, n++) {
            jr_transition *t = &g_tr[n];
            memset(t, 0, sizeof *t);
            t->user = n % 2;
            t->ts = n;
            t->next = spec[s].target;
            t->ctx[0] = 4 + (i % 2); /* contexts (4,5) or (5,4): never contain the target */
            t->ctx[1] = 5 - (i % 2);
            t->ctx[2] = t->ctx[3] = -1;
            t->novel = spec[s].novel;
        }
    j->transitions = g_tr;
    j->n_transitions = n;
    j->n_novel = 115;
    struct { int a, b, cand, users; float rate; } fb[7] = {
        {0, 1, 2, 3, 0.1f}, {0, 1, 3, 5, 0.2f}, {0, 1, 4, 3, 0.5f}, {0, 1, 5, 10, 0.9f},
        {1, 0, 2, 4, 0.2f}, {2, 3, 4, 2, 0.99f}, {2, 3, 5, 1, 0.0f},
    };
    for (int i = 0; i < 7; i++) {
        jr_feedback *f = &g_fb[i];
        memset(f, 0, sizeof *f);
        f->ctx[0] = fb[i].a;
        f->ctx[1] = fb[i].b;
        f->ctx[2] = f->ctx[3] = -1;
        f->cand = fb[i].cand;
        f->users = fb[i].users;
        f->exposures = 10 * fb[i].users;
        f->pos_rate = fb[i].rate;
        f->positives = (int64_t)lround(fb[i].rate * (double)f->exposures);
    }
    j->feedback = g_fb;
    j->n_feedback = 7;
}

/* Reads a JSON-lines file into an array of objects (caller deletes); returns the count. */
static int read_jsonl(const char *dir, const char *name, cJSON **out, int cap) {
    char *p = sd_path_join(dir, name), *text;
    size_t n;
    sd_err err = {0};
    assert_int_equal(sd_read_file(p, &text, &n, &err), SD_OK);
    int cnt = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        assert_true(cnt < cap);
        out[cnt] = cJSON_Parse(line);
        assert_non_null(out[cnt]);
        cnt++;
    }
    free(text);
    free(p);
    return cnt;
}

static int get_int(const cJSON *o, const char *k) { return (int)cJSON_GetObjectItem(o, k)->valuedouble; }
static const char *get_str(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuestring; }

static double entropy3(double a, double b, double c) {
    double t = a + b + c;
    return -(a / t * log2(a / t) + b / t * log2(b / t) + c / t * log2(c / t));
}

static void test_novelty_cap(void **state) {
    (void)state;
    jr_journeys j;
    make_journeys(&j);
    cp_opts o;
    cp_opts_default(&o);
    o.per_target_cap = 8;
    o.novelty_examples = 1000;
    cp_stats st;
    sd_err err = {0};
    char *dir = sd_path_join(g_dir, "cap");
    assert_int_equal(cp_build(dir, NULL, &g_tax, &j, &o, &st, &err), SD_OK);
    assert_int_equal(st.novel_transitions, 115);
    assert_int_equal(st.novelty_examples, 8 + 8 + 5);
    assert_int_equal(st.targets_before, 3);
    assert_int_equal(st.targets_after, 3);
    /* entropies in bits, computed here from the counts; 1e-9 covers summation order */
    assert_true(fabs(st.target_entropy_before - entropy3(100, 10, 5)) < 1e-9);
    assert_true(fabs(st.target_entropy_after - entropy3(8, 8, 5)) < 1e-9);
    assert_true(st.target_entropy_after > st.target_entropy_before);
    cJSON *lines[64];
    int n = read_jsonl(dir, CP_NOVELTY, lines, 64);
    assert_int_equal(n, 21);
    int per[6] = {0};
    for (int i = 0; i < n; i++) {
        int t = get_int(lines[i], "target");
        per[t]++;
        assert_string_equal(get_str(lines[i], "answer"), g_desc[t]);
        const char *p = get_str(lines[i], "prompt");
        assert_true(!strcmp(p, "<|ctx|>anime, robot<|sep|>docu, nature<|ans|>") ||
                    !strcmp(p, "<|ctx|>docu, nature<|sep|>anime, robot<|ans|>"));
        cJSON_Delete(lines[i]);
    }
    assert_int_equal(per[0], 8);
    assert_int_equal(per[1], 8);
    assert_int_equal(per[2], 5);
    assert_int_equal(per[3], 0); /* non-novel transitions never enter */

    /* automatic cap for 18 examples: water-filling gives 7 (7+7+5 >= 18 > 6+6+5) */
    o.per_target_cap = 0;
    o.novelty_examples = 18;
    assert_int_equal(cp_build(dir, NULL, &g_tax, &j, &o, &st, &err), SD_OK);
    assert_int_equal(st.novelty_examples, 18);
    n = read_jsonl(dir, CP_NOVELTY, lines, 64);
    memset(per, 0, sizeof per);
    for (int i = 0; i < n; i++) {
        per[get_int(lines[i], "target")]++;
        cJSON_Delete(lines[i]);
    }
    assert_int_equal(n, 18);
    assert_true(per[0] <= 7 && per[1] <= 7 && per[2] <= 5);
    assert_true(per[0] >= 6 && per[1] >= 6); /* 18 - 7 - 5 */
    free(dir);
}

/* The default labels: empirical-Bayes rates (label_shrink 10) of the tuples backed by >= 2 users.
 * make_journeys' tuples (exposures = 10 x users): pos 3/30, 10/50, 15/30, 90/100, 8/40, 20/20, 0/10,
 * mu = 146/280. No two share (last cluster, candidate), so each prior is mu and the rate is
 * (pos + 10 mu) / (exp + 10): .2054 .2536 .5054 .8656 .2643 .8405 (.2607 for the 1-user tuple, which
 * is neither kept nor in the basis). Basis of six, ranks 0..5 / 5 -> digits 0 2 6 9 4 8. */
static void test_alignment_labels_shrunk(void **state) {
    (void)state;
    jr_journeys j;
    make_journeys(&j);
    cp_opts o;
    cp_opts_default(&o);
    assert_int_equal(o.train_min_users, 2);
    assert_true(o.label_shrink == 10);
    o.heldout_pct = 0;
    cp_stats st;
    sd_err err = {0};
    char *dir = sd_path_join(g_dir, "align_shrunk");
    assert_int_equal(cp_build(dir, NULL, &g_tax, &j, &o, &st, &err), SD_OK);
    assert_int_equal(st.align_kept, 6);
    int want[6][6];
    memset(want, -1, sizeof want);
    want[1][2] = 0, want[1][3] = 2, want[1][4] = 6, want[1][5] = 9, want[0][2] = 4, want[3][4] = 8;
    cJSON *lines[64];
    int n = read_jsonl(dir, CP_ALIGN, lines, 64);
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++) {
        cJSON *ctx = cJSON_GetObjectItem(lines[i], "ctx");
        int last = (int)cJSON_GetArrayItem(ctx, 1)->valuedouble, cand = get_int(lines[i], "cand");
        char digit[2] = {(char)('0' + want[last][cand]), 0};
        assert_true(want[last][cand] >= 0);
        assert_string_equal(get_str(lines[i], "answer"), digit);
        cJSON_Delete(lines[i]);
    }
    free(dir);
}

/* The last-cluster level: A = (0,1)->2 9/10, B = (3,1)->2 10/40, C = (0,1)->3 25/50; mu = 44/100.
 * A's prior is B's evidence: (10 + 10 * .44) / (40 + 10) = .288, its rate (9 + 2.88) / 20 = .594;
 * B's prior is A's: (9 + 4.4) / 20 = .67, its rate (10 + 6.7) / 50 = .334; C alone: (25 + 4.4) / 60. */
static void test_labeler_levels(void **state) {
    (void)state;
    jr_feedback fb[3];
    memset(fb, 0, sizeof fb);
    const int spec[3][5] = {{0, 1, 2, 10, 9}, {3, 1, 2, 40, 10}, {0, 1, 3, 50, 25}};
    for (int i = 0; i < 3; i++) {
        fb[i].ctx[0] = spec[i][0], fb[i].ctx[1] = spec[i][1], fb[i].ctx[2] = fb[i].ctx[3] = -1;
        fb[i].cand = spec[i][2], fb[i].exposures = spec[i][3], fb[i].positives = spec[i][4], fb[i].users = 5;
    }
    jr_journeys j;
    memset(&j, 0, sizeof j);
    j.k = 2, j.n_clusters = 6, j.n_feedback = 3, j.feedback = fb;
    cp_opts o;
    cp_opts_default(&o);
    o.heldout_pct = 0;
    cp_labeler l;
    cp_labeler_init(&l, &j, &o);
    assert_float_equal(l.mu, 0.44, 1e-12);
    assert_float_equal(cp_labeler_rate(&l, &fb[0]), (9 + 10 * 0.288) / 20, 1e-12);
    assert_float_equal(cp_labeler_rate(&l, &fb[1]), (10 + 10 * 0.67) / 50, 1e-12);
    assert_float_equal(cp_labeler_rate(&l, &fb[2]), (25 + 4.4) / 60, 1e-12);
    assert_int_equal(l.n_basis, 3);
    assert_true(l.basis[0] < l.basis[1] && l.basis[1] < l.basis[2]);
    /* B lowest, C, then A: digits of percentiles 0, .5, 1 */
    assert_int_equal(cp_labeler_digit(&l, &fb[1]), 0);
    assert_int_equal(cp_labeler_digit(&l, &fb[2]), 5);
    assert_int_equal(cp_labeler_digit(&l, &fb[0]), 9);
    cp_labeler_free(&l);
}

static void test_alignment_labels(void **state) {
    (void)state;
    jr_journeys j;
    make_journeys(&j);
    cp_opts o;
    cp_opts_default(&o);
    o.heldout_pct = 0;
    o.pairwise = 1;
    o.pairwise_examples = 30;
    o.train_min_users = 3; /* the paper's labels: raw pooled rates of tuples backed by >= 3 users */
    o.label_shrink = 0;
    cp_stats st;
    sd_err err = {0};
    char *dir = sd_path_join(g_dir, "align");
    assert_int_equal(cp_build(dir, NULL, &g_tax, &j, &o, &st, &err), SD_OK);
    assert_int_equal(st.feedback_tuples, 7);
    assert_int_equal(st.align_kept, 5);
    assert_int_equal(st.align_train, 5);
    assert_int_equal(st.align_heldout, 0);
    /* kept rates .1 .2 .2 .5 .9: mid-rank percentiles 0, 1.5/4, 1.5/4, 3/4, 1 -> digits 0 3 3 7 9 */
    int want[6][6]; /* want[last context cluster][cand]: (0,1)->c is want[1][c], (1,0)->2 is want[0][2] */
    memset(want, -1, sizeof want);
    want[1][2] = 0;
    want[1][3] = 3;
    want[1][4] = 7;
    want[1][5] = 9;
    want[0][2] = 3;
    cJSON *lines[64];
    int n = read_jsonl(dir, CP_ALIGN, lines, 64);
    assert_int_equal(n, 5);
    char buf[256];
    for (int i = 0; i < n; i++) {
        cJSON *ctx = cJSON_GetObjectItem(lines[i], "ctx");
        int32_t c[2] = {(int32_t)cJSON_GetArrayItem(ctx, 0)->valuedouble, (int32_t)cJSON_GetArrayItem(ctx, 1)->valuedouble};
        int cand = get_int(lines[i], "cand");
        int w = want[c[1]][cand];
        assert_true(w >= 0);
        char digit[2] = {(char)('0' + w), 0};
        assert_string_equal(get_str(lines[i], "answer"), digit);
        cp_align_prompt(&g_tax, c, 2, cand, buf, sizeof buf);
        assert_string_equal(get_str(lines[i], "prompt"), buf);
        assert_true(get_int(lines[i], "users") >= 3);
        cJSON_Delete(lines[i]);
    }
    assert_int_equal(st.label_hist[0], 1);
    assert_int_equal(st.label_hist[3], 2);
    assert_int_equal(st.label_hist[7], 1);
    assert_int_equal(st.label_hist[9], 1);

    /* baseline: quantile 0.75 of the kept rates is .5 -> the .5 and .9 tuples, as novelty prompts */
    assert_int_equal(st.baseline_examples, 2);
    n = read_jsonl(dir, CP_BASELINE, lines, 64);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++) {
        int t = get_int(lines[i], "target");
        assert_true(t == 4 || t == 5);
        assert_string_equal(get_str(lines[i], "prompt"), "<|ctx|>war, drama<|sep|>space, alien<|ans|>");
        assert_string_equal(get_str(lines[i], "answer"), g_desc[t]);
        cJSON_Delete(lines[i]);
    }

    /* pairwise: only within context (0,1) (the other has one tuple); the answer names the higher label */
    n = read_jsonl(dir, CP_ALIGN_PAIRWISE, lines, 64);
    assert_int_equal(n, st.pairwise_examples);
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        int a = get_int(lines[i], "a"), b = get_int(lines[i], "b");
        assert_true(want[1][a] >= 0 && want[1][b] >= 0 && want[1][a] != want[1][b]);
        assert_string_equal(get_str(lines[i], "answer"), want[1][a] > want[1][b] ? "A" : "B");
        int32_t c[2] = {0, 1};
        cp_pair_prompt(&g_tax, c, 2, a, b, buf, sizeof buf);
        assert_string_equal(get_str(lines[i], "prompt"), buf);
        cJSON_Delete(lines[i]);
    }

    /* min-users 1 keeps all 7; held-out 100% moves every tuple out of align.jsonl */
    o.min_users = 1;
    o.heldout_pct = 100;
    assert_int_equal(cp_build(dir, NULL, &g_tax, &j, &o, &st, &err), SD_OK);
    assert_int_equal(st.align_kept, 7);
    assert_int_equal(st.align_heldout, 7);
    assert_int_equal(st.align_train, 0);
    /* and 50% splits the same tuples the same way every time, each in exactly one file */
    o.heldout_pct = 50;
    assert_int_equal(cp_build(dir, NULL, &g_tax, &j, &o, &st, &err), SD_OK);
    int64_t h1 = st.align_heldout;
    assert_int_equal(st.align_train + st.align_heldout, 7);
    o.seed = 12345;
    assert_int_equal(cp_build(dir, NULL, &g_tax, &j, &o, &st, &err), SD_OK);
    assert_int_equal(st.align_heldout, h1);
    free(dir);
}

static void test_pretrain_text(void **state) {
    (void)state;
    /* a dataset with titles so the cluster blocks list items */
    ds_builder *b = ds_builder_new();
    sd_err err = {0};
    for (int i = 0; i < 6; i++) {
        char t[32];
        snprintf(t, sizeof t, "Title %c", 'A' + i);
        assert_int_equal(ds_builder_add_item(b, i, t, "Drama|War", &err), SD_OK);
    }
    ds_builder_add_event(b, 1, 0, 1, 5, DS_NO_VALUE);
    ds_dataset ds;
    assert_int_equal(ds_builder_finish(b, &ds, &err), SD_OK);
    tx_taxonomy tax = g_tax;
    tax.n_items = 6;
    int32_t members[6];
    int64_t off[7];
    for (int c = 0; c < 6; c++) {
        members[c] = (int32_t)ds_find_item(&ds, c);
        off[c] = c;
    }
    off[6] = 6;
    tax.members = members;
    tax.member_off = off;
    jr_journeys j;
    make_journeys(&j);
    cp_opts o;
    cp_opts_default(&o);
    cp_stats st;
    char *dir = sd_path_join(g_dir, "pre"), *p = sd_path_join(dir, CP_PRETRAIN);
    assert_int_equal(cp_build(dir, &ds, &tax, &j, &o, &st, &err), SD_OK);
    char *text, *again;
    size_t n, n2;
    assert_int_equal(sd_read_file(p, &text, &n, &err), SD_OK);
    assert_int_equal((int64_t)n, st.pretrain_bytes);
    for (int c = 0; c < 6; c++) {
        char line[128];
        snprintf(line, sizeof line, "%s: Title %c (Drama, War)\n", g_desc[c], 'A' + c);
        assert_non_null(strstr(text, line));
    }
    assert_non_null(strstr(text, "war, drama > space, alien > comedy, family\n")); /* user 0's journey */
    assert_non_null(strstr(text, "<|ctx|>anime, robot<|sep|>docu, nature<|ans|>")); /* a transition */
    /* 135 transitions of ~60 bytes: a 2000-byte budget keeps every cluster block and some of the rest */
    free(text);
    o.pretrain_bytes = 2000;
    assert_int_equal(cp_build(dir, &ds, &tax, &j, &o, &st, &err), SD_OK);
    assert_int_equal(sd_read_file(p, &text, &n, &err), SD_OK);
    assert_true(n <= 2000 && n > 1500);
    assert_non_null(strstr(text, "docu, nature: Title F (Drama, War)\n"));
    /* deterministic for a seed */
    assert_int_equal(cp_build(dir, &ds, &tax, &j, &o, &st, &err), SD_OK);
    assert_int_equal(sd_read_file(p, &again, &n2, &err), SD_OK);
    assert_true(n == n2 && !memcmp(text, again, n));
    free(text); free(again); free(p); free(dir);
    ds_free(&ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_format),
        cmocka_unit_test(test_score_digits),
        cmocka_unit_test(test_novelty_cap),
        cmocka_unit_test(test_alignment_labels),
        cmocka_unit_test(test_alignment_labels_shrunk),
        cmocka_unit_test(test_labeler_levels),
        cmocka_unit_test(test_pretrain_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
