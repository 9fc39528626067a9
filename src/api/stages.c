/* stages.c - the pipeline stages of the public API (serendip_run): "name=value" options in, the
 * command's --json summary out. The options, their defaults, help and checks are NOT written here:
 * each stage reads its one table and check from stage.h (src/api/stage.c), the same ones its
 * command cmd/cmd_<stage>.c parses argv with, and runs the same library calls. tests (python/tests)
 * hold the two paths to byte-identical files on the same seed.
 *
 * The "name=value" parser is hand-written because it is twenty lines over that table; getopt
 * parses argv, not "name=value" lists. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/api.h"
#include "serendip/csv.h"
#include "serendip/dataset.h"
#include "serendip/eval.h"
#include "serendip/ingest.h"
#include "serendip/journeys.h"
#include "serendip/models.h"
#include "serendip/plan.h"
#include "serendip/stage.h"
#include "serendip/taxonomy.h"
#include "serendip/world.h"

/* ---------------------------------------------------------------- options */


/* The default of s as text into buf. */
static const char *op_default(const sd_opt *s, char *buf, size_t n) {
    switch (s->type) {
    case SD_OPT_STR: snprintf(buf, n, "%s", *(const char **)s->ptr ? *(const char **)s->ptr : "none"); break;
    case SD_OPT_INT: snprintf(buf, n, "%d", *(int *)s->ptr); break;
    case SD_OPT_I64: snprintf(buf, n, "%lld", (long long)*(int64_t *)s->ptr); break;
    case SD_OPT_FLOAT: snprintf(buf, n, "%g", (double)*(float *)s->ptr); break;
    case SD_OPT_BOOL: snprintf(buf, n, "%s", *(int *)s->ptr ? "on" : "off"); break;
    }
    return buf;
}

/* Appends the printf text to the heap buffer *out (length *len, capacity *cap) on one line: each
 * newline of the text and the indentation after it become one space (the table's help and the
 * summary are written for the command's wider --help). */
static void add_line(char **out, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add_line(char **out, size_t *len, size_t *cap, const char *fmt, ...) {
    va_list ap, aq;
    va_start(ap, fmt);
    va_copy(aq, ap);
    int l = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t n = l > 0 ? (size_t)l : 0;
    char *text = sd_malloc(n + 1);
    vsnprintf(text, n + 1, fmt, aq);
    va_end(aq);
    if (*len + n + 2 > *cap) *out = sd_realloc(*out, *cap = 2 * *cap + n + 2);
    for (const char *c = text; *c; c++) {
        if (*c != '\n') {
            (*out)[(*len)++] = *c;
            continue;
        }
        (*out)[(*len)++] = ' ';
        while (c[1] == ' ') c++;
    }
    (*out)[(*len)++] = '\n';
    (*out)[*len] = 0;
    free(text);
}

/* The help text of stage t with its table specs (terminated by {0}) in a fresh heap string: the
 * summary on one line, "options:", then one line per option. */
static char *op_help(const sd_stage_text *t, const sd_opt *specs) {
    static const char *const tn[] = {"TEXT", "INT", "INT", "FLOAT", ""};
    size_t cap = 4096, len = 0;
    char *out = sd_malloc(cap), d[128];
    out[0] = 0;
    add_line(&out, &len, &cap, "%s: %s", t->name, t->summary);
    add_line(&out, &len, &cap, "options:");
    for (const sd_opt *s = specs; s->name; s++) {
        char head[96];
        snprintf(head, sizeof head, "%s%s%s", s->name, s->type == SD_OPT_BOOL ? "" : "=", tn[s->type]);
        add_line(&out, &len, &cap, "  %-24s %s (default: %s)", head, s->help, op_default(s, d, sizeof d));
    }
    return out;
}

/* Applies "name=value" options to specs; SD_ERR_USAGE names the stage, the option and the value. */
static int op_parse(const char *stage, sd_opt *specs, const char *const *options, sd_err *err) {
    for (const char *const *o = options; o && *o; o++) {
        char name[64];
        const char *eq = strchr(*o, '='), *val = eq ? eq + 1 : NULL;
        size_t nl = eq ? (size_t)(eq - *o) : strlen(*o);
        if (nl == 0 || nl >= sizeof name) return sd_fail(err, SD_ERR_USAGE, "%s: option '%.60s' has no name", stage, *o);
        for (size_t i = 0; i < nl; i++) name[i] = (*o)[i] == '_' ? '-' : (*o)[i];
        name[nl] = 0;
        sd_opt *s = specs;
        while (s->name && strcmp(s->name, name)) s++;
        if (!s->name) {
            char known[1024] = "";
            size_t kl = 0;
            for (const sd_opt *k = specs; k->name && kl + 40 < sizeof known; k++)
                kl += (size_t)snprintf(known + kl, sizeof known - kl, "%s%s", kl ? ", " : "", k->name);
            return sd_fail(err, SD_ERR_USAGE, "%s: unknown option '%s' (options: %s)", stage, name, known);
        }
        if (s->type == SD_OPT_BOOL) {
            if (!val || !strcmp(val, "1") || !strcmp(val, "true")) *(int *)s->ptr = 1;
            else if (!strcmp(val, "0") || !strcmp(val, "false")) *(int *)s->ptr = 0;
            else return sd_fail(err, SD_ERR_USAGE, "%s: option %s='%.60s' is not a boolean (1 or 0)", stage, name, val);
            continue;
        }
        if (!val) return sd_fail(err, SD_ERR_USAGE, "%s: option %s needs a value (%s=VALUE)", stage, name, name);
        char *end;
        errno = 0;
        if (s->type == SD_OPT_STR) {
            *(const char **)s->ptr = val;
        } else if (s->type == SD_OPT_FLOAT) {
            double v = strtod(val, &end);
            if (end == val || *end || errno || !isfinite(v))
                return sd_fail(err, SD_ERR_USAGE, "%s: option %s='%.60s' is not a number", stage, name, val);
            *(float *)s->ptr = (float)v;
        } else {
            long long v = strtoll(val, &end, 10);
            if (end == val || *end || errno || (s->type == SD_OPT_INT && (v < INT32_MIN || v > INT32_MAX)))
                return sd_fail(err, SD_ERR_USAGE, "%s: option %s='%.60s' is not an integer", stage, name, val);
            if (s->type == SD_OPT_INT) *(int *)s->ptr = (int)v;
            else *(int64_t *)s->ptr = v;
        }
    }
    return SD_OK;
}

/* Every stage below: help non-NULL asks only for the option text (*help, heap). Otherwise parses
 * options into the stage's table (stage.h; n entries in specs), checks them with the stage's check
 * (its messages prefixed "stage: "), runs the stage on ws and fills *report (heap JSON) when
 * report is non-NULL. */
#define STAGE_PROLOGUE(text, n, check, args)          \
    specs[n] = (sd_opt){0};                          \
    if (help) {                                      \
        *help = op_help(&(text), specs);             \
        return SD_OK;                                \
    }                                                \
    int rc = op_parse(stage, specs, options, err);   \
    if (rc) return rc;                               \
    if ((rc = check(args, "", err))) {               \
        sd_err_prefix(err, "%s", stage);             \
        return rc;                                   \
    }
/* The usual opening: args a of stage X with their defaults, its table, the prologue. */
#define STAGE_OPEN(X)                      \
    sd_##X##_args a;                       \
    sd_##X##_args_init(&a);                \
    sd_opt specs[SD_STAGE_OPTS + 1];       \
    int n = sd_##X##_opts(&a, specs);      \
    STAGE_PROLOGUE(sd_stage_##X, n, sd_##X##_check, &a)
#define STAGE_ARGS const char *stage, const char *ws, const char *const *options, char **report, char **help, sd_err *err

static void put_json(char **report, cJSON *j) {
    if (report) *report = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
}

/* The text of file ws/rel as the report (the command's --json prints these files). */
static int put_file(char **report, const char *ws, const char *rel, sd_err *err) {
    if (!report) return SD_OK;
    char *path = sd_path_join(ws, rel);
    int rc = sd_read_file(path, report, NULL, err);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- world (cmd_world.c) */

static int st_world(STAGE_ARGS) {
    const char *preset = NULL;
    for (const char *const *o = options; o && *o; o++) /* the preset sets the defaults first */
        if (!strncmp(*o, "preset=", 7)) preset = *o + 7;
    sd_world_args a;
    int prc = sd_world_args_init(&a, preset, err);
    if (prc) return prc;
    sd_opt specs[SD_STAGE_OPTS + 1];
    int n = sd_world_opts(&a, specs);
    STAGE_PROLOGUE(sd_stage_world, n, sd_world_check, &a);
    world_summary s;
    if ((rc = world_write(&a.p, ws, &s, err))) return rc;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "users", (double)s.n_users);
    cJSON_AddNumberToObject(j, "items", (double)s.n_items);
    cJSON_AddNumberToObject(j, "interactions", (double)s.n_events);
    cJSON_AddNumberToObject(j, "ts_min", (double)s.ts_min);
    cJSON_AddNumberToObject(j, "ts_max", (double)s.ts_max);
    cJSON_AddNumberToObject(j, "positive_share", s.positive_share);
    cJSON_AddNumberToObject(j, "explore_share", s.explore_share);
    cJSON_AddNumberToObject(j, "subtopics", a.topics * a.subtopics);
    cJSON_AddNumberToObject(j, "word_sharing", (double)a.p.word_sharing);
    cJSON_AddNumberToObject(j, "seconds", s.seconds);
    put_json(report, j);
    return SD_OK;
}

/* ---------------------------------------------------------------- ingest (cmd_data.c) */

static int st_ingest(STAGE_ARGS) {
    STAGE_OPEN(ingest);
    ingest_report rep = {0};
    char *path;
    if ((rc = sd_ingest_run(&a, ws, &rep, &path, err))) return rc;
    if (report) *report = sd_ingest_json(&rep, path, 0);
    free(path);
    return SD_OK;
}

/* ---------------------------------------------------------------- split (cmd_data.c) */

static int st_split(STAGE_ARGS) {
    STAGE_OPEN(split);
    ds_dataset d;
    ds_split_counts c;
    char *spath;
    if ((rc = sd_split_run(&a, ws, &d, &c, &spath, err))) return rc;
    if (report) *report = sd_split_json(&a, &c, spath, 0);
    ds_free(&d);
    ds_split_free(&a.s);
    free(spath);
    return SD_OK;
}

/* ---------------------------------------------------------------- cluster (cmd_cluster.c) */

static int st_cluster(STAGE_ARGS) {
    STAGE_OPEN(cluster);
    tx_taxonomy t;
    tx_stats st;
    double secs;
    if ((rc = tx_run(ws, &a.cfg, &t, &st, &secs, err))) return rc;
    char hash[24];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)tx_hash(&t));
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "clusters_top", t.n_top);
    cJSON_AddNumberToObject(j, "clusters", t.n_clusters);
    cJSON_AddNumberToObject(j, "items", (double)t.n_items);
    cJSON_AddNumberToObject(j, "items_clustered", (double)st.n_embedded);
    cJSON_AddNumberToObject(j, "train_events", (double)st.n_train_events);
    cJSON_AddNumberToObject(j, "dim", st.dim);
    cJSON_AddNumberToObject(j, "inertia", st.inertia);
    cJSON_AddStringToObject(j, "taxonomy_hash", hash);
    cJSON_AddNumberToObject(j, "seconds", secs);
    put_json(report, j);
    tx_free(&t);
    return SD_OK;
}

/* ---------------------------------------------------------------- journeys (cmd_journeys.c) */

static int st_journeys(STAGE_ARGS) {
    STAGE_OPEN(journeys);
    jr_journeys j;
    if ((rc = jr_run(ws, a.k, &a.rule, &j, err))) return rc;
    int64_t users_with = 0, kept3 = 0;
    for (int64_t u = 0; u < j.n_users; u++) users_with += j.journey_off[u + 1] > j.journey_off[u];
    for (int64_t i = 0; i < j.n_feedback; i++) kept3 += j.feedback[i].users >= 3;
    char pos[64];
    jr_format_positive(&a.rule, pos, sizeof pos);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "k", j.k);
    cJSON_AddStringToObject(o, "positive", pos);
    cJSON_AddNumberToObject(o, "users", (double)j.n_users);
    cJSON_AddNumberToObject(o, "users_with_journey", (double)users_with);
    cJSON_AddNumberToObject(o, "steps", (double)j.n_steps);
    cJSON_AddNumberToObject(o, "transitions", (double)j.n_transitions);
    cJSON_AddNumberToObject(o, "novel_transitions", (double)j.n_novel);
    cJSON_AddNumberToObject(o, "feedback_tuples", (double)j.n_feedback);
    cJSON_AddNumberToObject(o, "feedback_tuples_3_users", (double)kept3);
    put_json(report, o);
    jr_free(&j);
    return SD_OK;
}

/* ---------------------------------------------------------------- train (cmd_train.c) */

static int st_train(STAGE_ARGS) {
    STAGE_OPEN(train);
    md_report r;
    if ((rc = md_train(ws, &a.o, &r, err))) return rc;
    return put_file(report, ws, MD_DIR "/" MD_REPORT, err);
}

/* ---------------------------------------------------------------- plan (cmd_plan.c) */

static int st_plan(STAGE_ARGS) {
    STAGE_OPEN(plan);
    pl_report rep;
    if ((rc = pl_plan(ws, &a.o, &rep, err))) return rc;
    char rel[128];
    snprintf(rel, sizeof rel, "%s/plan-%s%s.json", PL_DIR, pl_prefix(&a.o), a.o.n_shards > 1 ? "-shard" : "");
    return put_file(report, ws, rel, err);
}

/* ---------------------------------------------------------------- eval and report (cmd_eval.c) */

static int st_eval(STAGE_ARGS) {
    sd_eval_args a;
    sd_eval_args_init(&a);
    sd_opt specs[SD_STAGE_OPTS + 1];
    int n = sd_eval_opts(&a, 0, specs);
    STAGE_PROLOGUE(sd_stage_eval, n, sd_eval_check, &a);
    ev_eval_run r = {0};
    if (!(rc = sd_eval_run(ws, ws, &a, 0, &r, err)) && report) *report = sd_strdup(r.json);
    ev_eval_run_free(&r);
    return rc;
}

static int st_report(STAGE_ARGS) {
    sd_eval_args a;
    sd_eval_args_init(&a);
    sd_opt specs[SD_STAGE_OPTS + 1];
    int n = sd_eval_opts(&a, 1, specs);
    STAGE_PROLOGUE(sd_stage_report, n, sd_eval_check, &a);
    char *mpath = sd_path_join(ws, EV_METRICS_FILE), *hpath = sd_path_join(ws, EV_REPORT_FILE), *json = NULL;
    size_t len;
    if (a.rerun || !sd_file_exists(mpath)) {
        ev_eval_run r = {0};
        if (!(rc = sd_eval_run(ws, ws, &a, 0, &r, err))) json = r.json, r.json = NULL;
        ev_eval_run_free(&r);
    } else {
        rc = sd_read_file(mpath, &json, &len, err);
    }
    if (!rc) rc = ev_report_write(json, hpath, err);
    if (!rc && report) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "report", hpath);
        cJSON_AddStringToObject(j, "metrics", mpath);
        put_json(report, j);
    }
    free(json), free(mpath), free(hpath);
    return rc;
}

/* ---------------------------------------------------------------- dispatch */

typedef int (*stage_fn)(STAGE_ARGS);
static const struct {
    const char *name;
    stage_fn fn;
} stages[] = {
    {"world", st_world}, {"ingest", st_ingest}, {"split", st_split}, {"cluster", st_cluster}, {"journeys", st_journeys},
    {"train", st_train}, {"plan", st_plan},     {"eval", st_eval},   {"report", st_report},
};
#define N_STAGES (sizeof stages / sizeof stages[0])

int sd_api_run_stage(const char *ws, const char *stage, const char *const *options, char **report, sd_err *err) {
    if (report) *report = NULL;
    for (size_t i = 0; i < N_STAGES; i++)
        if (!strcmp(stage, stages[i].name)) return stages[i].fn(stage, ws, options, report, NULL, err);
    return sd_fail(err, SD_ERR_USAGE, "unknown stage '%.40s' (world, ingest, split, cluster, journeys, train, plan, eval, "
                                      "report)", stage);
}

static char *help_text[N_STAGES];
static pthread_once_t help_once = PTHREAD_ONCE_INIT;

static void build_help(void) {
    for (size_t i = 0; i < N_STAGES; i++) stages[i].fn(stages[i].name, NULL, NULL, NULL, &help_text[i], NULL);
}

const char *sd_api_stage_help(const char *stage) {
    pthread_once(&help_once, build_help);
    for (size_t i = 0; stage && i < N_STAGES; i++)
        if (!strcmp(stage, stages[i].name)) return help_text[i];
    return NULL;
}
