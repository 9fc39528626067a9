/* cmd_eval.c - `serendip eval` (every arm on the test window, metrics.json) and `serendip report`
 * (report.html with inline SVG plots). Printing only: the flags and their checks are the eval and report
 * stages' table in stage.h (shared with serendip_run); the work is in src/eval/. */
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

/* Parses argv with the eval stage's table (stage.h; report: the report stage's) after --ws, plus
 * --json and --mpi for eval; checks it. Returns 0, FL_HELP or an exit code. */
static int eval_parse(const sd_stage_text *t, sd_eval_args *a, const char **ws, int *json, int *mpi, int argc, char **argv) {
    sd_eval_args_init(a);
    fl_spec opts[SD_STAGE_OPTS], extra[3] = {{0}};
    int n = sd_eval_opts(a, json == NULL, opts), k = 0;
    if (json) extra[k++] = (fl_spec){"json", FL_BOOL, json, "print metrics.json to stdout instead of the table"};
    if (mpi) extra[k++] = (fl_spec){"mpi", FL_BOOL, mpi, "run on MPI (under mpirun/srun): ranks split the users, rank 0 writes"};
    int rc = cmd_stage_parse(t, ws, "workspace folder", opts, n, extra, argc, argv);
    if (rc) return rc;
    sd_err err = {0};
    if (sd_eval_check(a, "--", &err)) return cmd_stage_fail(argv[0], &err);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    sd_eval_args f;
    const char *ws = NULL;
    int json = 0, mpi = 0;
    int rc = eval_parse(&sd_stage_eval, &f, &ws, &json, &mpi, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_mpi_start(argv[0], mpi))) return rc;
    sd_err err = {0};
    ev_eval_run r = {0};
    rc = sd_eval_run(ws, sd_mpi_test_ws(ws), &f, mpi, &r, &err);
    if (rc) {
        ev_eval_run_free(&r);
        return cmd_fail(&err);
    }
    if (cmd_mpi_quiet()) {
        ev_eval_run_free(&r);
        return 0;
    }
    if (json) fputs(r.json, stdout);
    else {
        print_table(&r);
        print_support(&r);
        print_retrieval(r.json, ws);
        char *p = sd_path_join(ws, EV_METRICS_FILE);
        printf("wrote %s\n", p);
        free(p);
    }
    ev_eval_run_free(&r);
    return 0;
}

int cmd_report(int argc, char **argv) {
    sd_eval_args f;
    const char *ws = NULL;
    int rc = eval_parse(&sd_stage_report, &f, &ws, NULL, NULL, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    const int force = f.rerun;
    sd_err err = {0};
    char *mpath = sd_path_join(ws, EV_METRICS_FILE), *hpath = sd_path_join(ws, EV_REPORT_FILE);
    char *json = NULL;
    size_t len;
    if (!force && sd_file_exists(mpath) && argc > 3)
        sd_log("report: using the existing %s; evaluation flags apply only with --rerun", mpath);
    if (force || !sd_file_exists(mpath)) {
        ev_eval_run r = {0};
        rc = sd_eval_run(ws, sd_mpi_test_ws(ws), &f, 0, &r, &err);
        if (!rc) {
            print_table(&r);
            print_support(&r);
            print_retrieval(r.json, ws);
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
