/* stage.h - the ONE definition of each pipeline stage's options: their names, types, defaults and
 * help (a table bound to a stage's args struct), the checks of their values and the filling of the
 * library's option structs. Both front ends read them: the command line (cmd/cmd_<stage>.c parses
 * argv into the table with fl_parse, adding its process flags --ws, --json, --mpi, --show) and the
 * public API (src/api/stages.c parses "name=value" lists into the same table for serendip_run).
 * So a flag added here is a flag of `serendip <stage>` and an option of serendip_run at once, with
 * the same help line in `--help` and serendip_stage_help.
 *
 * Every stage X has:
 *   sd_X_args            its values (defaults set by sd_X_args_init);
 *   sd_X_opts(a, out)    writes its option table, bound to a, into out[] (at most SD_STAGE_OPTS
 *                        entries, no terminator) and returns the count;
 *   sd_X_check(a, d, e)  checks the values after parsing and fills the library structs inside a;
 *                        SD_ERR_USAGE messages name an option as d followed by its name ("--" on
 *                        the command line, "" in the API, which prefixes "stage: ");
 * and sd_stage_X: its name, the command's usage line and the summary both help texts print.
 *
 * Hand-written because the table is the project's own flag model (typed defaults printed in the
 * help, numbers validated); no Debian library parses both argv and "name=value" lists into one. */
#ifndef SERENDIP_STAGE_H
#define SERENDIP_STAGE_H

#include <stdint.h>

#include "serendip/base.h"
#include "serendip/dataset.h"
#include "serendip/eval.h"
#include "serendip/ingest.h"
#include "serendip/models.h"
#include "serendip/plan.h"
#include "serendip/taxonomy.h"
#include "serendip/world.h"

typedef enum { SD_OPT_STR, SD_OPT_INT, SD_OPT_I64, SD_OPT_FLOAT, SD_OPT_BOOL } sd_opt_type;

/* One option. ptr (borrowed, the args struct's field) is a const char ** (STR; the parsed string is
 * borrowed from argv or the options list), int * (INT, BOOL 0/1), int64_t * (I64) or float *. */
typedef struct {
    const char *name; /* the flag without "--" */
    sd_opt_type type;
    void *ptr;
    const char *help; /* one line; the help prints the default from *ptr */
} sd_opt;

#define SD_STAGE_OPTS 32 /* entries of the largest stage table (train) with room to grow */

typedef struct {
    const char *name;    /* "world" ... */
    const char *usage;   /* the command's usage line after "serendip " */
    const char *summary; /* what the stage does (both help texts) */
} sd_stage_text;

extern const sd_stage_text sd_stage_world, sd_stage_ingest, sd_stage_split, sd_stage_cluster, sd_stage_journeys,
    sd_stage_train, sd_stage_plan, sd_stage_eval, sd_stage_report;

/* ---------------------------------------------------------------- world */
typedef struct {
    world_params p; /* filled by the check */
    const char *preset;
    int64_t seed, users, items;
    int topics, subtopics, days;
    float explore, sessions, sharing;
} sd_world_args;
/* The defaults of preset (NULL: "default"), read before the other options so that they override it. */
int sd_world_args_init(sd_world_args *a, const char *preset, sd_err *err);
int sd_world_opts(sd_world_args *a, sd_opt *out);
int sd_world_check(sd_world_args *a, const char *dash, sd_err *err);

/* ---------------------------------------------------------------- ingest */
typedef struct {
    const char *movielens, *recbole, *ids;
    ingest_csv_opts csv; /* ratings, items and the column options are bound here */
} sd_ingest_args;
void sd_ingest_args_init(sd_ingest_args *a);
int sd_ingest_opts(sd_ingest_args *a, sd_opt *out);
int sd_ingest_check(sd_ingest_args *a, const char *dash, sd_err *err);
/* Reads the chosen source and writes ws/dataset.bin (created folder); *path (heap) is its path. */
int sd_ingest_run(const sd_ingest_args *a, const char *ws, ingest_report *rep, char **path, sd_err *err);
/* The --json summary of an ingest (heap cJSON text, indented when pretty). */
char *sd_ingest_json(const ingest_report *rep, const char *path, int pretty);

/* ---------------------------------------------------------------- split */
typedef struct {
    const char *train_end, *valid_end, *per_user, *per_user_valid;
    float train_frac, valid_frac;
    ds_user_window wt, wv; /* filled by the check (per-user) */
    ds_split s;            /* train_end / valid_end filled by the check (global dates) */
} sd_split_args;
void sd_split_args_init(sd_split_args *a);
int sd_split_opts(sd_split_args *a, sd_opt *out);
int sd_split_check(sd_split_args *a, const char *dash, sd_err *err);
/* Loads ws's dataset into *d, splits it into a->s, writes ws/split.json (*spath, heap) and counts
 * the windows into *c. On success the caller frees d (ds_free), a->s (ds_split_free) and *spath. */
int sd_split_run(sd_split_args *a, const char *ws, ds_dataset *d, ds_split_counts *c, char **spath, sd_err *err);
/* The --json summary of a split (heap cJSON text, indented when pretty). */
char *sd_split_json(const sd_split_args *a, const ds_split_counts *c, const char *spath, int pretty);

/* ---------------------------------------------------------------- cluster */
typedef struct {
    tx_config cfg;
    int64_t seed;
} sd_cluster_args;
void sd_cluster_args_init(sd_cluster_args *a);
int sd_cluster_opts(sd_cluster_args *a, sd_opt *out);
int sd_cluster_check(sd_cluster_args *a, const char *dash, sd_err *err);

/* ---------------------------------------------------------------- journeys */
typedef struct {
    const char *positive;
    int k;
    ds_positive_rule rule; /* filled by the check */
} sd_journeys_args;
void sd_journeys_args_init(sd_journeys_args *a);
int sd_journeys_opts(sd_journeys_args *a, sd_opt *out);
int sd_journeys_check(sd_journeys_args *a, const char *dash, sd_err *err);

/* ---------------------------------------------------------------- train */
typedef struct {
    md_opts o; /* seeds and label_shrink filled by the check */
    int seed;
    float label_shrink;
} sd_train_args;
void sd_train_args_init(sd_train_args *a);
int sd_train_opts(sd_train_args *a, sd_opt *out);
int sd_train_check(sd_train_args *a, const char *dash, sd_err *err);

/* ---------------------------------------------------------------- plan */
typedef struct {
    pl_opts o; /* n_sweep, shard, generator, selector, out, seed, feedback_m filled by the check */
    const char *sweep, *shard, *gen, *out, *selector;
    int n, seed;
    float fb_m;
} sd_plan_args;
void sd_plan_args_init(sd_plan_args *a);
int sd_plan_opts(sd_plan_args *a, sd_opt *out);
int sd_plan_check(sd_plan_args *a, const char *dash, sd_err *err);

/* ---------------------------------------------------------------- eval and report */
typedef struct {
    int serve, bootstrap, k, depth, min_users;
    int64_t seed;
    float shrink;
    const char *positive; /* NULL: the workspace's rule */
    int rerun;            /* report only */
} sd_eval_args;
void sd_eval_args_init(sd_eval_args *a);
/* report: the report stage's table (adds rerun). */
int sd_eval_opts(sd_eval_args *a, int report, sd_opt *out);
int sd_eval_check(const sd_eval_args *a, const char *dash, sd_err *err);
/* Evaluates workspace ws (reading eval_ws: ws, or another rank's test copy) into *r. mpi: ranks
 * split the users. */
int sd_eval_run(const char *ws, const char *eval_ws, const sd_eval_args *a, int mpi, ev_eval_run *r, sd_err *err);

#endif
