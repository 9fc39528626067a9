/* test_world.c - the synthetic world: determinism, sizes and ranges, learnable structure (novel
 * subtopics with high hidden affinity to the context are liked more), drift, the truth file and
 * the simulator. Worlds are small (a few hundred users) so the whole file runs in about a second. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/dataset.h"
#include "serendip/world.h"

static world_params small_params(uint64_t seed) {
    world_params p;
    world_params_default(&p);
    p.seed = seed;
    p.n_users = 1500;
    p.n_items = 1200;
    return p;
}

static char *tmpdir(void) {
    char *d = sd_strdup("/tmp/sdworldXXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static int files_equal(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    sd_err err = {0};
    if (sd_read_file(a, &x, &nx, &err) || sd_read_file(b, &y, &ny, &err)) return -1;
    int eq = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return eq;
}

/* ---------------------------------------------------------------- determinism */

static void test_same_seed_same_bytes_other_seed_differs(void **state) {
    (void)state;
    char *d1 = tmpdir(), *d2 = tmpdir(), *d3 = tmpdir();
    world_params p = small_params(7), q = small_params(8);
    p.n_users = q.n_users = 300;
    sd_err err = {0};
    world_summary s;
    assert_int_equal(world_write(&p, d1, &s, &err), SD_OK);
    assert_int_equal(world_write(&p, d2, NULL, &err), SD_OK);
    assert_int_equal(world_write(&q, d3, NULL, &err), SD_OK);
    char *a = sd_path_join(d1, DS_FILE), *b = sd_path_join(d2, DS_FILE), *c = sd_path_join(d3, DS_FILE);
    char *ta = sd_path_join(d1, WORLD_TRUTH_FILE), *tb = sd_path_join(d2, WORLD_TRUTH_FILE),
         *tc = sd_path_join(d3, WORLD_TRUTH_FILE);
    assert_int_equal(files_equal(a, b), 1);
    assert_int_equal(files_equal(ta, tb), 1);
    assert_int_equal(files_equal(a, c), 0);
    assert_int_equal(files_equal(ta, tc), 0);
    /* the written dataset loads and matches the summary */
    ds_dataset d;
    assert_int_equal(ds_load(&d, a, &err), SD_OK);
    assert_int_equal(d.n_users, 300);
    assert_int_equal(d.n_items, 1200);
    assert_int_equal(d.n_events, s.n_events);
    assert_int_equal(d.n_unknown_items, 0);
    /* items were added first, users in order: dense index = raw id - 1 (docs/world.md) */
    for (int64_t i = 0; i < d.n_items; i++) assert_int_equal(d.item_ids[i], i + 1);
    for (int64_t u = 0; u < d.n_users; u++) assert_int_equal(d.user_ids[u], u + 1);
    assert_true(d.ts_min >= p.t_start && d.ts_max < p.t_start + (int64_t)p.days * 86400);
    ds_free(&d);
    char *all[] = {a, b, c, ta, tb, tc};
    for (int i = 0; i < 6; i++) unlink(all[i]), free(all[i]);
    rmdir(d1), rmdir(d2), rmdir(d3);
    free(d1), free(d2), free(d3);
}

/* ---------------------------------------------------------------- sizes and ranges */

static void test_sizes_and_ranges(void **state) {
    (void)state;
    world_params p = small_params(11);
    world_gen g;
    sd_err err = {0};
    assert_int_equal(world_generate(&p, &g, &err), SD_OK);
    const world_truth *t = &g.truth;
    assert_int_equal(t->n_users, p.n_users);
    assert_int_equal(t->n_items, p.n_items);
    assert_int_equal(t->n_sub, p.n_topics * p.n_subtopics);
    /* ~70 events per user by design (22 sessions x ~3 events); accept a broad band */
    assert_in_range(g.n_events, 30 * p.n_users, 120 * p.n_users);
    int64_t t_end = p.t_start + (int64_t)p.days * 86400;
    int64_t agree = 0, npos = 0;
    uint8_t *user_seen = calloc((size_t)p.n_users + 1, 1);
    for (int64_t k = 0; k < g.n_events; k++) {
        assert_in_range(g.ev_user[k], 1, p.n_users);
        assert_in_range(g.ev_item[k], 1, p.n_items);
        assert_true(g.ev_ts[k] >= p.t_start && g.ev_ts[k] < t_end);
        if (k > 0 && g.ev_user[k] == g.ev_user[k - 1]) assert_true(g.ev_ts[k] > g.ev_ts[k - 1]); /* strictly */
        else assert_int_equal(user_seen[g.ev_user[k]], 0); /* each user's events are contiguous */
        user_seen[g.ev_user[k]] = 1;
        float r = g.ev_rating[k], w = g.ev_watch[k];
        assert_true(r >= 0.5f && r <= 5.0f && r * 2 == floorf(r * 2)); /* half stars */
        assert_true(w >= 0.0f && w <= 1.0f);
        npos += r >= 4;
        agree += (r >= 4) == (w >= 0.7f);
    }
    for (int64_t u = 1; u <= p.n_users; u++) assert_int_equal(user_seen[u], 1); /* nobody is silent */
    free(user_seen);
    /* watch agrees with rating 85% of the time by construction; 4 sigma at n >= 45k is < 0.7% */
    double agree_rate = (double)agree / (double)g.n_events;
    assert_true(fabs(agree_rate - 0.85) < 0.01);
    double pos_rate = (double)npos / (double)g.n_events;
    assert_true(pos_rate > 0.4 && pos_rate < 0.95);
    /* every subtopic has items, and tags start with the item's hidden topic keyword */
    int32_t *cnt = calloc((size_t)t->n_sub, sizeof(int32_t));
    for (int64_t i = 0; i < t->n_items; i++) {
        int s = t->item_sub[i];
        cnt[s]++;
        const char *tn = t->topic_name[t->sub_topic[s]];
        assert_int_equal(strncmp(g.tags[i], tn, strlen(tn)), 0);
        assert_true(g.tags[i][strlen(tn)] == '|');
        int nw = 1;
        for (const char *c = g.title[i]; *c; c++) nw += *c == ' ';
        assert_in_range(nw, 2, 4);
    }
    for (int s = 0; s < t->n_sub; s++) assert_true(cnt[s] >= 3);
    free(cnt);
    world_gen_free(&g);
}

static void test_bad_params_are_usage_errors(void **state) {
    (void)state;
    world_params p = small_params(1);
    sd_err err = {0};
    p.n_items = 10; /* fewer than 96 subtopics */
    world_gen g;
    assert_int_equal(world_generate(&p, &g, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "--items"));
    p = small_params(1);
    p.n_users = 0;
    assert_int_equal(world_params_check(&p, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "--users"));
}

/* The paper preset has the papers' ~761 level-2 interests (40 x 19 = 760, so 760 x 759 contexts for
 * K = 2), passes the range checks, keeps the other defaults; an unknown preset is a usage error
 * naming it. */
static void test_presets(void **state) {
    (void)state;
    world_params p, d;
    sd_err err = {0};
    world_params_default(&d);
    assert_int_equal(world_params_preset(&p, "paper", &err), SD_OK);
    assert_int_equal(p.n_topics * p.n_subtopics, 760);
    assert_true(p.n_items >= 20 * 760); /* ~26 items per subtopic: enough for clustering to find them */
    assert_true(p.n_users >= 100000);
    assert_int_equal(world_params_check(&p, &err), SD_OK);
    assert_int_equal(p.days, d.days);
    assert_true(p.seed == d.seed);
    assert_int_equal(world_params_preset(&p, "default", &err), SD_OK);
    assert_memory_equal(&p, &d, sizeof p);
    assert_int_equal(world_params_preset(&p, "huge", &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "\"huge\""));
}

/* ---------------------------------------------------------------- semantic vocabulary */

/* Per subtopic, its vocabulary: the lower-cased title words and tags found in at least 40% of its
 * items and in 3 of them (the topic word, the subtopic's main words and its theme word pass;
 * filler words, in ~2% of titles each, and stray tags, in 10% of items spread over all
 * subtopics, do not). Fills
 * voc[s * cap + k] (NUL-terminated, 32 bytes each) and nv[s]. */
enum { VOC_CAP = 24 };
static void vocabularies(const world_gen *g, char (*voc)[32], int *nv) {
    const world_truth *t = &g->truth;
    for (int32_t s = 0; s < t->n_sub; s++) {
        char words[256][32];
        int cnt[256] = {0}, nw = 0, n_items = 0;
        for (int64_t i = 0; i < t->n_items; i++) {
            if (t->item_sub[i] != s) continue;
            n_items++;
            char buf[512];
            snprintf(buf, sizeof buf, "%.250s|%.250s", g->tags[i], g->title[i]);
            char seen[16][32];
            int ns = 0;
            for (char *sv = NULL, *w = strtok_r(buf, "| ", &sv); w; w = strtok_r(NULL, "| ", &sv)) {
                for (char *c = w; *c; c++) *c = (char)(*c | 0x20); /* pseudo-words are ASCII letters */
                int dup = 0;
                for (int k = 0; k < ns; k++) dup |= !strcmp(seen[k], w);
                if (dup || ns == 16) continue;
                snprintf(seen[ns++], 32, "%.31s", w);
                int k = 0;
                while (k < nw && strcmp(words[k], w)) k++;
                if (k == nw && nw < 256) snprintf(words[nw++], 32, "%.31s", w);
                if (k < 256) cnt[k]++;
            }
        }
        nv[s] = 0;
        for (int k = 0; k < nw; k++)
            if (cnt[k] >= 0.4 * n_items && cnt[k] >= 3 && nv[s] < VOC_CAP) snprintf(voc[s * VOC_CAP + nv[s]++], 32, "%.31s", words[k]);
    }
}

static int shared_words(char (*voc)[32], const int *nv, int32_t a, int32_t b) {
    int n = 0;
    for (int i = 0; i < nv[a]; i++)
        for (int j = 0; j < nv[b]; j++) n += !strcmp(voc[a * VOC_CAP + i], voc[b * VOC_CAP + j]);
    return n;
}

/* Words shared by pairs of subtopics of different topics: mean over pairs joined by a loved edge
 * (A > 1.5 in either direction) and over unrelated pairs (A < 0 both ways); and the share of
 * subtopics sharing a word with some subtopic of another topic. */
static void sharing_stats(const world_params *p, double *loved, double *unrelated, double *any) {
    world_gen g;
    sd_err err = {0};
    assert_int_equal(world_generate(p, &g, &err), SD_OK);
    const world_truth *t = &g.truth;
    int n = t->n_sub;
    char(*voc)[32] = calloc((size_t)n * VOC_CAP, 32);
    int *nv = calloc((size_t)n, sizeof(int));
    vocabularies(&g, voc, nv);
    double sl = 0, nl = 0, su = 0, nu = 0;
    int n_any = 0;
    for (int32_t a = 0; a < n; a++) {
        assert_true(nv[a] >= 2); /* the topic word and the theme word at least */
        int has = 0;
        for (int32_t b = 0; b < n; b++) {
            if (t->sub_topic[a] == t->sub_topic[b]) continue;
            float ab = t->affinity[(int64_t)a * n + b], ba = t->affinity[(int64_t)b * n + a];
            int sh = shared_words(voc, nv, a, b);
            has |= sh > 0;
            if (ab > 1.5f || ba > 1.5f) sl += sh, nl++;
            else if (ab < 0 && ba < 0) su += sh, nu++;
        }
        n_any += has;
    }
    *loved = sl / nl;
    *unrelated = su / nu;
    *any = (double)n_any / n;
    free(voc);
    free(nv);
    world_gen_free(&g);
}

/* The flag does what docs/world.md says. Strength 0: no subtopic shares a word with any subtopic
 * of another topic. Default (0.8): subtopics joined by a loved edge share words (a shared theme
 * word is a taste community's, and half the loved edges lie inside communities), unrelated pairs
 * (A < 0 both ways) rarely do: measured on this world (seed 11, 96 subtopics) 0.249 shared words
 * per loved pair against 0.014 per unrelated pair (asserted: > 0.15 and at most a fifth of it),
 * 79% of subtopics sharing a word across topics; strength 1 shares more. */
static void test_word_sharing_follows_flag(void **state) {
    (void)state;
    world_params p = small_params(11);
    p.n_users = 50; /* vocabulary does not depend on users */
    double loved, unrelated, any;
    p.word_sharing = 0;
    sharing_stats(&p, &loved, &unrelated, &any);
    print_message("word sharing 0:   %.3f words per loved pair, %.4f per unrelated pair, %.2f of subtopics share\n", loved,
                  unrelated, any);
    assert_true(loved == 0 && unrelated == 0 && any == 0);
    world_params_default(&p); /* the default strength */
    p.seed = 11, p.n_users = 50, p.n_items = 1200;
    sharing_stats(&p, &loved, &unrelated, &any);
    print_message("word sharing %.1f: %.3f words per loved pair, %.4f per unrelated pair, %.2f of subtopics share\n",
                  (double)p.word_sharing, loved, unrelated, any);
    assert_true(p.word_sharing > 0);
    assert_true(loved > 0.15);
    assert_true(unrelated <= loved / 5);
    assert_true(any > 0.5);
    double any_default = any;
    p.word_sharing = 1;
    sharing_stats(&p, &loved, &unrelated, &any);
    print_message("word sharing 1:   %.3f words per loved pair, %.4f per unrelated pair, %.2f of subtopics share\n", loved,
                  unrelated, any);
    assert_true(any > any_default);
    p.word_sharing = 1.5f;
    sd_err err = {0};
    assert_int_equal(world_params_check(&p, &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "--word-sharing"));
}

/* ---------------------------------------------------------------- learnable structure */

/* For every user's first exposure to a subtopic, with context = the user's last 2 distinct
 * positively engaged subtopics (as the journeys stage defines it): the hidden affinity of the
 * context to the new subtopic, and whether the exposure was positive. Returns pooled positive
 * rates for high (> 1) and low (< -1) affinity, and counts. */
static void novel_rates(const world_gen *g, double *hi, double *lo, int64_t *nhi, int64_t *nlo) {
    const world_truth *t = &g->truth;
    int n = t->n_sub;
    uint8_t *exposed = calloc((size_t)n, 1);
    int64_t hp = 0, hn = 0, lp = 0, ln = 0;
    int32_t c1 = -1, c2 = -1; /* c2 most recent */
    for (int64_t k = 0; k < g->n_events; k++) {
        if (k == 0 || g->ev_user[k] != g->ev_user[k - 1]) memset(exposed, 0, (size_t)n), c1 = c2 = -1;
        int32_t x = t->item_sub[g->ev_item[k] - 1];
        int pos = g->ev_rating[k] >= 4;
        if (!exposed[x] && c1 >= 0) {
            double a = 0.5 * (t->affinity[(int64_t)c1 * n + x] + t->affinity[(int64_t)c2 * n + x]);
            if (a > 1.0) hp += pos, hn++;
            else if (a < -1.0) lp += pos, ln++;
        }
        exposed[x] = 1;
        if (pos && x != c2) c1 = c2, c2 = x;
    }
    free(exposed);
    *hi = hn ? (double)hp / hn : 0;
    *lo = ln ? (double)lp / ln : 0;
    *nhi = hn;
    *nlo = ln;
}

static void test_novel_liking_follows_context_affinity(void **state) {
    (void)state;
    world_params p = small_params(3);
    world_gen g;
    sd_err err = {0};
    assert_int_equal(world_generate(&p, &g, &err), SD_OK);
    double hi, lo;
    int64_t nhi, nlo;
    novel_rates(&g, &hi, &lo, &nhi, &nlo);
    print_message("novel exposures: high-affinity context %.3f (n=%lld), low-affinity %.3f (n=%lld)\n", hi,
                  (long long)nhi, lo, (long long)nlo);
    /* enough evidence on both sides; binomial sd of each rate is < 0.03 at n >= 200, so a margin of
     * 0.25 cannot come from noise, and it is about half the gap the model builds in */
    assert_true(nhi >= 200 && nlo >= 200);
    assert_true(hi - lo > 0.25);
    world_gen_free(&g);
}

/* Collective feedback is informative: pooled positive rates of (context subtopic -> novel
 * subtopic) from even users rank odd users' novel exposures better than chance (AUC), i.e. an
 * aligned model has something to learn. */
static void test_collective_feedback_predicts_held_out_users(void **state) {
    (void)state;
    world_params p = small_params(5);
    p.n_users = 4000;
    world_gen g;
    sd_err err = {0};
    assert_int_equal(world_generate(&p, &g, &err), SD_OK);
    const world_truth *t = &g.truth;
    int n = t->n_sub;
    int64_t *pos = calloc((size_t)n * n, sizeof(int64_t)), *tot = calloc((size_t)n * n, sizeof(int64_t));
    uint8_t *exposed = calloc((size_t)n, 1);
    sd_vec score, label;
    sd_vec_init(&score, sizeof(double));
    sd_vec_init(&label, sizeof(int));
    for (int pass = 0; pass < 2; pass++) {
        int32_t c = -1;
        for (int64_t k = 0; k < g.n_events; k++) {
            if (k == 0 || g.ev_user[k] != g.ev_user[k - 1]) memset(exposed, 0, (size_t)n), c = -1;
            int64_t u = g.ev_user[k];
            int32_t x = t->item_sub[g.ev_item[k] - 1];
            int ps = g.ev_rating[k] >= 4;
            if (!exposed[x] && c >= 0 && (u & 1) == (pass == 0 ? 0 : 1)) {
                int64_t cell = (int64_t)c * n + x;
                if (pass == 0) pos[cell] += ps, tot[cell]++;
                else if (tot[cell] >= 3) {
                    *(double *)sd_vec_push(&score) = (double)pos[cell] / tot[cell];
                    *(int *)sd_vec_push(&label) = ps;
                }
            }
            exposed[x] = 1;
            if (ps) c = x;
        }
    }
    /* AUC by pairs over a sample (exact O(P*N) is fine at this size) */
    const double *sc = score.data;
    const int *lb = label.data;
    double num = 0, den = 0;
    for (size_t i = 0; i < score.len; i++) {
        if (!lb[i]) continue;
        for (size_t j = 0; j < score.len; j++) {
            if (lb[j]) continue;
            num += sc[i] > sc[j] ? 1 : sc[i] == sc[j] ? 0.5 : 0;
            den += 1;
        }
    }
    double auc = num / den;
    print_message("held-out novel exposures %zu, AUC of pooled feedback %.3f\n", score.len, auc);
    /* chance is 0.5; with > 1000 exposures the AUC's sd is ~0.02, so 0.6 is > 5 sd above chance */
    assert_true(score.len > 1000);
    assert_true(auc > 0.6);
    sd_vec_free(&score);
    sd_vec_free(&label);
    free(pos), free(tot), free(exposed);
    world_gen_free(&g);
}

/* What the evaluation stage will measure, in miniature: at the end of the log, recommending each
 * held-out (odd) user the novel subtopic with the best pooled feedback after their last positive
 * subtopic (learned from even users) gives a higher true like probability than a random novel
 * subtopic or the most popular one. */
static void test_feedback_choice_beats_random_and_popular(void **state) {
    (void)state;
    world_params p = small_params(21);
    p.n_users = 4000;
    world_gen g;
    sd_err err = {0};
    assert_int_equal(world_generate(&p, &g, &err), SD_OK);
    const world_truth *t = &g.truth;
    int n = t->n_sub;
    int64_t *pos = calloc((size_t)n * n, sizeof(int64_t)), *tot = calloc((size_t)n * n, sizeof(int64_t));
    uint8_t *exposed = calloc((size_t)n, 1);
    double sum_fb = 0, sum_rand = 0, sum_pop = 0;
    int users = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t k0 = 0; k0 < g.n_events;) {
            int64_t k1 = k0, u = g.ev_user[k0];
            while (k1 < g.n_events && g.ev_user[k1] == u) k1++;
            memset(exposed, 0, (size_t)n);
            int32_t c = -1;
            for (int64_t k = k0; k < k1; k++) {
                int32_t x = t->item_sub[g.ev_item[k] - 1];
                int ps = g.ev_rating[k] >= 4;
                if (pass == 0 && !(u & 1) && !exposed[x] && c >= 0) pos[(int64_t)c * n + x] += ps, tot[(int64_t)c * n + x]++;
                exposed[x] = 1;
                if (ps) c = x;
            }
            if (pass == 1 && (u & 1) && c >= 0) {
                int32_t best_fb = -1, best_pop = -1;
                double bf = -1, bp = -1, rs = 0;
                int nc = 0;
                for (int32_t x = 0; x < n; x++) {
                    if (exposed[x]) continue;
                    int64_t cell = (int64_t)c * n + x;
                    double f = (pos[cell] + 1.0) / (tot[cell] + 2.0); /* Laplace: unseen cells score 0.5 */
                    if (f > bf) bf = f, best_fb = x;
                    if (t->sub_pop[x] > bp) bp = t->sub_pop[x], best_pop = x;
                    rs += world_like_prob(t, u, x);
                    nc++;
                }
                if (nc) {
                    sum_fb += world_like_prob(t, u, best_fb);
                    sum_pop += world_like_prob(t, u, best_pop);
                    sum_rand += rs / nc;
                    users++;
                }
            }
            k0 = k1;
        }
    }
    print_message("held-out users %d: true like prob of the feedback choice %.3f, random novel %.3f, most popular %.3f\n",
                  users, sum_fb / users, sum_rand / users, sum_pop / users);
    /* over ~2000 users the means have sd < 0.01; the margin 0.1 is a third of the gap built in */
    assert_true(users >= 1000);
    assert_true(sum_fb / users > sum_rand / users + 0.1);
    assert_true(sum_fb / users > sum_pop / users + 0.1);
    free(pos), free(tot), free(exposed);
    world_gen_free(&g);
}

/* ---------------------------------------------------------------- drift */

static double tv(const int *a, const int *b, int n, int na, int nb) {
    double s = 0;
    for (int i = 0; i < n; i++) s += fabs((double)a[i] / na - (double)b[i] / nb);
    return 0.5 * s;
}

/* Interests drift: most of a user's final (hidden) interest weight lies on subtopics the user never
 * touched in the first quarter of their events. Without decay and adoption this share is ~0.23
 * (initial interests that the first quarter happened not to sample); with them it is ~0.7.
 * Printed beside it: the first- vs last-quarter total variation of the observed subtopic mix. */
static void test_interests_drift(void **state) {
    (void)state;
    world_params p = small_params(9);
    world_gen g;
    sd_err err = {0};
    assert_int_equal(world_generate(&p, &g, &err), SD_OK);
    const world_truth *t = &g.truth;
    int n = t->n_sub;
    int *a = calloc((size_t)n, sizeof(int)), *b = calloc((size_t)n, sizeof(int));
    double drift = 0, moved = 0;
    int users = 0;
    for (int64_t k0 = 0; k0 < g.n_events;) {
        int64_t k1 = k0, u = g.ev_user[k0];
        while (k1 < g.n_events && g.ev_user[k1] == u) k1++;
        int64_t m = k1 - k0;
        if (m >= 40) {
            int64_t q = m / 4;
            memset(a, 0, sizeof(int) * n), memset(b, 0, sizeof(int) * n);
            for (int64_t k = 0; k < q; k++) a[t->item_sub[g.ev_item[k0 + k] - 1]]++, b[t->item_sub[g.ev_item[k1 - q + k] - 1]]++;
            drift += tv(a, b, n, (int)q, (int)q);
            double W = 0, Wnew = 0;
            for (int64_t i = t->user_off[u - 1]; i < t->user_off[u]; i++) {
                W += t->int_w[i];
                if (!a[t->int_sub[i]]) Wnew += t->int_w[i];
            }
            moved += Wnew / W;
            users++;
        }
        k0 = k1;
    }
    drift /= users, moved /= users;
    print_message("users %d: final interest weight on subtopics unseen in the first quarter %.3f; TV first vs last quarter %.3f\n",
                  users, moved, drift);
    assert_true(users >= 200);
    /* the per-user share is in [0,1] with sd <= 0.5, so the mean over >= 200 users has sd < 0.035 */
    assert_true(moved > 0.5);
    free(a), free(b);
    world_gen_free(&g);
}

/* ---------------------------------------------------------------- truth file and simulator */

static void test_truth_roundtrip_and_refusals(void **state) {
    (void)state;
    world_params p = small_params(13);
    p.n_users = 200;
    world_gen g;
    sd_err err = {0};
    assert_int_equal(world_generate(&p, &g, &err), SD_OK);
    char *d = tmpdir(), *path = sd_path_join(d, WORLD_TRUTH_FILE), *bad = sd_path_join(d, "bad.bin");
    assert_int_equal(world_truth_save(&g.truth, path, &err), SD_OK);
    world_truth t;
    assert_int_equal(world_truth_load(&t, path, &err), SD_OK);
    const world_truth *o = &g.truth;
    assert_int_equal(t.n_sub, o->n_sub);
    assert_int_equal(t.n_int, o->n_int);
    assert_memory_equal(t.affinity, o->affinity, sizeof(float) * o->n_sub * o->n_sub);
    assert_memory_equal(t.item_sub, o->item_sub, sizeof(int32_t) * o->n_items);
    assert_memory_equal(t.user_off, o->user_off, sizeof(int64_t) * (o->n_users + 1));
    assert_memory_equal(t.int_sub, o->int_sub, sizeof(int32_t) * o->n_int);
    for (int s = 0; s < o->n_sub; s++) assert_string_equal(t.sub_name[s], o->sub_name[s]);
    for (int64_t u = 1; u <= o->n_users; u += 17)
        for (int s = 0; s < o->n_sub; s += 5) assert_true(world_like_prob(&t, u, s) == world_like_prob(o, u, s));
    for (int64_t i = 1; i <= o->n_items; i++) assert_int_equal(world_item_subtopic(&t, i), o->item_sub[i - 1]);
    assert_int_equal(world_item_subtopic(&t, 0), -1);
    assert_true(world_like_prob(&t, o->n_users + 1, 0) < 0);

    char *buf;
    size_t len;
    assert_int_equal(sd_read_file(path, &buf, &len, &err), SD_OK);
    size_t cuts[] = {len - 1, len / 2, 100, 5};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sd_write_file_atomic(bad, buf, cuts[i], &err), SD_OK);
        world_truth x;
        assert_int_equal(world_truth_load(&x, bad, &err), SD_ERR_FORMAT);
        assert_true(strstr(err.msg, "truncated") || strstr(err.msg, "magic"));
        assert_non_null(strstr(err.msg, "bad.bin"));
    }
    buf[len - 200] ^= 0x40; /* a flipped bit in the payload */
    assert_int_equal(sd_write_file_atomic(bad, buf, len, &err), SD_OK);
    world_truth x;
    assert_int_equal(world_truth_load(&x, bad, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "checksum"));
    buf[len - 200] ^= 0x40;
    buf[8] = 99; /* version */
    assert_int_equal(sd_write_file_atomic(bad, buf, len, &err), SD_OK);
    assert_int_equal(world_truth_load(&x, bad, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "version 99"));
    free(buf);
    world_truth_free(&t);
    unlink(path), unlink(bad), rmdir(d);
    free(path), free(bad), free(d);
    world_gen_free(&g);
}

static void test_simulator_response_matches_like_prob(void **state) {
    (void)state;
    world_params p = small_params(17);
    p.n_users = 300;
    world_gen g;
    sd_err err = {0};
    assert_int_equal(world_generate(&p, &g, &err), SD_OK);
    const world_truth *t = &g.truth;
    sd_rng r;
    sd_rng_seed(&r, 1);
    /* empirical positive rate of 20000 responses vs the probability: sd <= 0.0036, tolerance 4 sd */
    for (int64_t u = 1; u <= 3; u++) {
        int32_t s = t->int_sub[t->user_off[u - 1]];
        double pl = world_like_prob(t, u, s);
        int k = 0;
        for (int i = 0; i < 20000; i++) {
            float rating, watch;
            int pos = world_response(t, u, s, &r, &rating, &watch);
            assert_true(pos == 0 || pos == 1);
            assert_int_equal(pos, rating >= 4);
            k += pos;
        }
        assert_true(fabs(k / 20000.0 - pl) < 0.015);
    }
    /* users like their current interests much more than the average subtopic */
    double in = 0, all = 0;
    int64_t nin = 0, nall = 0;
    for (int64_t u = 1; u <= t->n_users; u++) {
        for (int64_t i = t->user_off[u - 1]; i < t->user_off[u]; i++) in += world_like_prob(t, u, t->int_sub[i]), nin++;
        for (int s = 0; s < t->n_sub; s++) all += world_like_prob(t, u, s), nall++;
    }
    print_message("mean like prob: interests %.3f, all subtopics %.3f\n", in / nin, all / nall);
    assert_true(in / nin > all / nall + 0.2);
    world_gen_free(&g);
}

int main(void) {
    sd_verbosity = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_bytes_other_seed_differs),
        cmocka_unit_test(test_sizes_and_ranges),
        cmocka_unit_test(test_bad_params_are_usage_errors),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_word_sharing_follows_flag),
        cmocka_unit_test(test_novel_liking_follows_context_affinity),
        cmocka_unit_test(test_collective_feedback_predicts_held_out_users),
        cmocka_unit_test(test_feedback_choice_beats_random_and_popular),
        cmocka_unit_test(test_interests_drift),
        cmocka_unit_test(test_truth_roundtrip_and_refusals),
        cmocka_unit_test(test_simulator_response_matches_like_prob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
