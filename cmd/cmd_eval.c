/* cmd_eval.c - `serendip eval` (every arm on the test window, metrics.json) and `serendip report`
 * (report.html with inline SVG plots). Flag parsing and printing only; the work is in src/eval/. */
#include "cmd.h"
#include "serendip/eval.h"
#include "serendip/journeys.h"
#include "serendip/retrieve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The table of arms x metrics: value and half the 95% interval width. */
static void print_table(const ev_eval_run *r) {
    const ev_data *d = &r->d;
    printf("users: %d evaluated of %lld (%lld with fewer than K=%d distinct positive train clusters, %lld with no "
           "test-window event)\n",
           d->n_users, (long long)d->n_users_total, (long long)d->n_skip_context, d->K, (long long)d->n_skip_test);
    printf("%-28s", "arm");
    static const char *const short_names[EV_N_METRICS] = {"novelty", "coverage", "entropy", "gini",       "hit",
                                                          "pos_rate", "pos_user", "collect", "expansion", "like_p"};
    for (int m = 0; m < EV_N_METRICS; m++)
        if (m != EV_LIKE || d->like) printf(" %14s", short_names[m]);
    printf("\n");
    for (int a = 0; a < r->n_arms; a++) {
        printf("%-28.28s", r->arms[a].name);
        for (int m = 0; m < EV_N_METRICS; m++) {
            if (m == EV_LIKE && !d->like) continue;
            double v = r->res[a].value[m], lo = r->res[a].lo[m], hi = r->res[a].hi[m];
            char s[32];
            if (!isfinite(v)) snprintf(s, sizeof s, "-");
            else if (isfinite(lo)) snprintf(s, sizeof s, "%.3f±%.3f", v, (hi - lo) / 2);
            else snprintf(s, sizeof s, "%.3f", v);
            printf(" %*s", 14 + (int)(strstr(s, "±") ? 1 : 0), s); /* ± is two bytes */
        }
        printf("\n");
    }
    printf("(± is half the 95%% bootstrap interval; exact bounds in metrics.json)\n");
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

static int eval_parse(const char *usage, const char *summary, eval_flags *f, int *force, int argc, char **argv) {
    ev_opts def = EV_OPTS_DEFAULT;
    *f = (eval_flags){NULL, NULL /* the workspace's rule */, def.serve, def.bootstrap, 0, 0, (int64_t)def.seed};
    fl_spec specs[] = {
        {"ws", FL_STR, &f->ws, "workspace folder"},
        {"serve", FL_INT, &f->serve, "clusters served per user (S)"},
        {"bootstrap", FL_INT, &f->bootstrap, "bootstrap resamples for the 95% intervals (0: none)"},
        {"seed", FL_I64, &f->seed, "seed of the bootstrap and of the random baseline"},
        {"k", FL_INT, &f->k, "context length K (0: from the tables, else 2)"},
        {"positive", FL_STR, &f->positive, "positive engagement rule (rating:R,watch:W)"},
        {force ? "rerun" : "json", FL_BOOL, force ? (void *)force : (void *)&f->json,
         force ? "recompute metrics.json even when it exists" : "print metrics.json to stdout instead of the table"},
        {0},
    };
    int rc = fl_parse(usage, summary, specs, argc, argv);
    if (rc) return rc;
    if (cmd_need_ws(argv[0], f->ws)) return 2;
    if (f->serve < 1) return cmd_usage_error(argv[0], "--serve must be at least 1");
    if (f->bootstrap < 0) return cmd_usage_error(argv[0], "--bootstrap must be >= 0");
    if (f->k < 0 || f->k > EV_MAX_K) return cmd_usage_error(argv[0], "--k must be in 0..%d", EV_MAX_K);
    return 0;
}

static int run(const eval_flags *f, ev_eval_run *r, sd_err *err) {
    ds_positive_rule rule;
    int rc = jr_resolve_rule(f->ws, f->positive, &rule, err);
    if (rc) return rc;
    ev_opts o = {f->serve, f->bootstrap, (uint64_t)f->seed};
    return ev_eval_workspace(f->ws, &o, f->k, &rule, r, err);
}

int cmd_eval(int argc, char **argv) {
    eval_flags f;
    int rc = eval_parse("eval --ws DIR [--serve S] [--bootstrap B] [--json]",
                        "Serves every evaluated user (full train-window context, a test-window event) from each arm:\n"
                        "the random, most-popular and empirical-transition baselines and every table in DIR/plans/.\n"
                        "Prints the arms x metrics with 95% bootstrap intervals and writes DIR/metrics.json.",
                        &f, NULL, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    sd_err err = {0};
    ev_eval_run r = {0};
    rc = run(&f, &r, &err);
    if (rc) {
        ev_eval_run_free(&r);
        return cmd_fail(&err);
    }
    if (f.json) fputs(r.json, stdout);
    else {
        print_table(&r);
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
    int force = 0;
    int rc = eval_parse("report --ws DIR [--rerun]",
                        "Writes DIR/report.html (self-contained: inline SVG and CSS, no JavaScript) from\n"
                        "DIR/metrics.json, running the evaluation first when metrics.json is absent (or --rerun).",
                        &f, &force, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    sd_err err = {0};
    char *mpath = sd_path_join(f.ws, EV_METRICS_FILE), *hpath = sd_path_join(f.ws, EV_REPORT_FILE);
    char *json = NULL;
    size_t len;
    if (!force && sd_file_exists(mpath) && argc > 3)
        sd_log("report: using the existing %s; evaluation flags apply only with --rerun", mpath);
    if (force || !sd_file_exists(mpath)) {
        ev_eval_run r = {0};
        rc = run(&f, &r, &err);
        if (!rc) {
            print_table(&r);
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
