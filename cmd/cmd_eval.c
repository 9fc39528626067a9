/* cmd_eval.c - `serendip eval` (every arm on the test window, metrics.json) and `serendip report`
 * (report.html with inline SVG plots). Flag parsing and printing only; the work is in src/eval/. */
#include "cmd.h"
#include "serendip/eval.h"
#include "serendip/table.h"
#include "serendip/journeys.h"
#include "serendip/mpi.h"
#include "serendip/retrieve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Prints "value±half-width" (or the value, or "-") right-aligned in 14 columns. */
static void print_cell(double v, double lo, double hi) {
    char s[32];
    if (!isfinite(v)) snprintf(s, sizeof s, "-");
    else if (isfinite(lo) && isfinite(hi)) snprintf(s, sizeof s, "%.3f±%.3f", v, (hi - lo) / 2);
    else snprintf(s, sizeof s, "%.3f", v);
    printf(" %*s", 14 + (int)(strstr(s, "±") ? 1 : 0), s); /* ± is two bytes */
}

static int arm_of_kind(const ev_eval_run *r, int kind) {
    for (int a = 0; a < r->n_arms; a++)
        if (r->arms[a].kind == kind) return a;
    return -1;
}

/* The table of arms x metrics: value and half the 95% interval width; the fallback share; and on
 * the world like_frac (random 0, user oracle 1). */
static void print_table(const ev_eval_run *r) {
    const ev_data *d = &r->d;
    printf("users: %d evaluated of %lld (%lld with fewer than K=%d distinct positive train clusters, %lld with no "
           "test-window event)\n",
           d->n_users, (long long)d->n_users_total, (long long)d->n_skip_context, d->K, (long long)d->n_skip_test);
    int rnd = arm_of_kind(r, EV_KIND_RANDOM), orc = arm_of_kind(r, EV_KIND_ORACLE), frac = d->like && rnd >= 0 && orc >= 0;
    printf("%-28s %8s", "arm", "fallback");
    static const char *const short_names[EV_N_METRICS] = {"novelty", "coverage", "entropy", "gini",       "hit",
                                                          "pos_rate", "pos_user", "collect", "expansion", "like_p"};
    for (int m = 0; m < EV_N_METRICS; m++)
        if (m != EV_LIKE || d->like) printf(" %14s", short_names[m]);
    if (frac) printf(" %14s", "like_frac");
    printf("\n");
    for (int a = 0; a < r->n_arms; a++) {
        const ev_result *x = &r->res[a];
        printf("%-28.28s %8.4f", r->arms[a].name, x->users ? (double)x->fallback_users / (double)x->users : NAN);
        for (int m = 0; m < EV_N_METRICS; m++)
            if (m != EV_LIKE || d->like) print_cell(x->value[m], x->lo[m], x->hi[m]);
        if (frac) {
            double v, lo, hi;
            ev_like_frac(x, &r->res[rnd], &r->res[orc], &v, &lo, &hi);
            print_cell(v, lo, hi);
        }
        printf("\n");
    }
    printf("(± is half the 95%% bootstrap interval; exact bounds in metrics.json; fallback: share of users served "
           "the most popular unseen cluster because the arm's ranking ran out%s)\n",
           frac ? "; like_frac = (arm - random) / (oracle - random) of like_p" : "");
}

/* Per support bucket: users, and each arm's like-probability (pos_rate without the world's truth). */
static void print_support(const ev_eval_run *r) {
    const ev_data *d = &r->d;
    if (!r->by_support) return;
    int m = d->like ? EV_LIKE : EV_POS_POOLED;
    printf("by context support (train transitions from the user's exact context), %s:\n", ev_metric_infos[m].key);
    printf("%-28s", "arm");
    for (int b = 0; b < EV_N_SUPPORT; b++) {
        char h[48];
        snprintf(h, sizeof h, "%s (%lld)", ev_support_buckets[b].name, (long long)r->n_support[b]);
        printf(" %14s", h);
    }
    printf("\n");
    for (int a = 0; a < r->n_arms; a++) {
        printf("%-28.28s", r->arms[a].name);
        for (int b = 0; b < EV_N_SUPPORT; b++) {
            const ev_result *x = &r->by_support[(size_t)b * r->n_arms + a];
            print_cell(x->value[m], x->lo[m], x->hi[m]);
        }
        printf("\n");
    }
}

/* The items level: HR/NDCG within the served cluster, from metrics.json's "retrieval" key. */
static void print_retrieval(const char *json, const char *ws) {
    cJSON *root = cJSON_Parse(json);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "retrieval");
    if (!cJSON_IsObject(r)) {
        printf("items within the cluster: no %s/%s (run `serendip train` or `serendip serve --train-retrieval`)\n", ws,
               RT_FILE);
    } else {
        const cJSON *mo = cJSON_GetObjectItemCaseSensitive(r, "model"), *po = cJSON_GetObjectItemCaseSensitive(r, "popularity");
#define NUM(o, k) (cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k)))
        int at = (int)NUM(r, "at");
        printf("items within the cluster (restricted retrieval, test window, %.0f cases, %.1f candidates per case):\n",
               NUM(r, "cases"), NUM(r, "mean_candidates"));
        printf("  %-28s %8s%-2d %8s%-2d\n", "ranker", "HR@", at, "NDCG@", at);
        printf("  %-28s %10.4f %10.4f\n", "sequential skip-gram", NUM(mo, "hr"), NUM(mo, "ndcg"));
        printf("  %-28s %10.4f %10.4f\n", "popularity within cluster", NUM(po, "hr"), NUM(po, "ndcg"));
#undef NUM
    }
    cJSON_Delete(root);
}

typedef struct {
    const char *ws, *positive;
    int serve, bootstrap, k, json;
    int64_t seed;
} eval_flags;

/* Flags added with the per-user filter and the feedback-rate arm. */
typedef struct {
    int depth, min_users;
    float shrink;
    int mpi; /* eval only */
} eval_more;

static int eval_parse(const char *usage, const char *summary, eval_flags *f, eval_more *x, int *force, int argc,
                      char **argv) {
    ev_opts def = EV_OPTS_DEFAULT;
    *f = (eval_flags){NULL, NULL /* the workspace's rule */, def.serve, def.bootstrap, 0, 0, (int64_t)def.seed};
    fl_spec specs[] = {
        {"ws", FL_STR, &f->ws, "workspace folder"},
        {"serve", FL_INT, &f->serve, "clusters served per user (S)"},
        {"bootstrap", FL_INT, &f->bootstrap, "bootstrap resamples for the 95% intervals (0: none)"},
        {"seed", FL_I64, &f->seed, "seed of the bootstrap and of the random baseline"},
        {"k", FL_INT, &f->k, "context length K (0: from the tables, else 2)"},
        {"depth", FL_INT, &x->depth, "clusters asked of each arm before the per-user filter (0: all M)"},
        {"min-users", FL_INT, &x->min_users, "feedback-rate arm: tuples backed by fewer users are ignored"},
        {"shrink", FL_FLOAT, &x->shrink, "shrunk-feedback arm: prior strength in pseudo-exposures (as plan --feedback-shrink)"},
        {"positive", FL_STR, &f->positive, "positive engagement rule (rating:R,watch:W)"},
        {force ? "rerun" : "json", FL_BOOL, force ? (void *)force : (void *)&f->json,
         force ? "recompute metrics.json even when it exists" : "print metrics.json to stdout instead of the table"},
        force ? (fl_spec){0} : (fl_spec){"mpi", FL_BOOL, &x->mpi, "run on MPI (under mpirun/srun): ranks split the users, rank 0 writes"},
        {0},
    };
    *x = (eval_more){def.depth, def.min_users, (float)def.shrink, 0};
    int rc = fl_parse(usage, summary, specs, argc, argv);
    if (rc) return rc;
    if (cmd_need_ws(argv[0], f->ws)) return 2;
    if (f->serve < 1) return cmd_usage_error(argv[0], "--serve must be at least 1");
    if (f->serve > TBL_TOP_MAX) return cmd_usage_error(argv[0], "--serve must be at most %d (a table slot's clusters)", TBL_TOP_MAX);
    if (f->bootstrap < 0) return cmd_usage_error(argv[0], "--bootstrap must be >= 0");
    if (f->k < 0 || f->k > EV_MAX_K) return cmd_usage_error(argv[0], "--k must be in 0..%d", EV_MAX_K);
    if (x->depth < 0) return cmd_usage_error(argv[0], "--depth must be >= 0");
    if (x->min_users < 1) return cmd_usage_error(argv[0], "--min-users must be at least 1");
    if (!(x->shrink >= 0 && x->shrink <= 1e6)) return cmd_usage_error(argv[0], "--shrink must be in 0..1e6");
    return 0;
}

static int run(const eval_flags *f, const eval_more *x, ev_eval_run *r, sd_err *err) {
    ds_positive_rule rule;
    int rc = jr_resolve_rule(f->ws, f->positive, &rule, err);
    if (rc) return rc;
    ev_opts o = {f->serve, f->bootstrap, (uint64_t)f->seed, x->depth, x->min_users, x->shrink, x->mpi};
    return ev_eval_workspace(sd_mpi_test_ws(f->ws), &o, f->k, &rule, r, err);
}

int cmd_eval(int argc, char **argv) {
    eval_flags f;
    eval_more x;
    int rc = eval_parse("eval --ws DIR [--serve S] [--bootstrap B] [--depth L] [--min-users U] [--json]",
                        "Serves every evaluated user (full train-window context, a test-window event) from each arm:\n"
                        "random, most popular, transition and back-off counts, the feedback-rate table (journeys.bin),\n"
                        "the two oracles (world only) and every table in DIR/plans/, each the first clusters of its\n"
                        "ranking the user never interacted with. Prints the arms x metrics with 95% bootstrap\n"
                        "intervals, the same by context support, and writes DIR/metrics.json.",
                        &f, &x, NULL, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_mpi_start(argv[0], x.mpi))) return rc;
    sd_err err = {0};
    ev_eval_run r = {0};
    rc = run(&f, &x, &r, &err);
    if (rc) {
        ev_eval_run_free(&r);
        return cmd_fail(&err);
    }
    if (cmd_mpi_quiet()) {
        ev_eval_run_free(&r);
        return 0;
    }
    if (f.json) fputs(r.json, stdout);
    else {
        print_table(&r);
        print_support(&r);
        print_retrieval(r.json, f.ws);
        char *p = sd_path_join(f.ws, EV_METRICS_FILE);
        printf("wrote %s\n", p);
        free(p);
    }
    ev_eval_run_free(&r);
    return 0;
}

int cmd_report(int argc, char **argv) {
    eval_flags f;
    eval_more x;
    int force = 0;
    int rc = eval_parse("report --ws DIR [--rerun]",
                        "Writes DIR/report.html (self-contained: inline SVG and CSS, no JavaScript) from\n"
                        "DIR/metrics.json, running the evaluation first when metrics.json is absent (or --rerun).",
                        &f, &x, &force, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    sd_err err = {0};
    char *mpath = sd_path_join(f.ws, EV_METRICS_FILE), *hpath = sd_path_join(f.ws, EV_REPORT_FILE);
    char *json = NULL;
    size_t len;
    if (!force && sd_file_exists(mpath) && argc > 3)
        sd_log("report: using the existing %s; evaluation flags apply only with --rerun", mpath);
    if (force || !sd_file_exists(mpath)) {
        ev_eval_run r = {0};
        rc = run(&f, &x, &r, &err);
        if (!rc) {
            print_table(&r);
            print_support(&r);
            print_retrieval(r.json, f.ws);
            json = r.json;
            r.json = NULL;
        }
        ev_eval_run_free(&r);
    } else {
        rc = sd_read_file(mpath, &json, &len, &err);
    }
    if (!rc) rc = ev_report_write(json, hpath, &err);
    if (!rc) printf("wrote %s\n", hpath);
    free(json);
    free(mpath);
    free(hpath);
    return rc ? cmd_fail(&err) : 0;
}
