/* stages.c - the pipeline stages of the public API (serendip_run): "name=value" options in, the
 * same library calls as the command's cmd/cmd_<stage>.c out, with the same defaults and the same
 * checks, and the command's --json summary as the report. tests (python/tests) hold the two paths
 * to byte-identical files on the same seed.
 *
 * The option parser is hand-written because it is twenty lines over the flag table each stage
 * already needs for its help text; getopt parses argv, not "name=value" lists. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
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
#include "serendip/taxonomy.h"
#include "serendip/world.h"

/* ---------------------------------------------------------------- options */

typedef enum { OP_STR, OP_INT, OP_I64, OP_FLOAT, OP_BOOL } op_type;

typedef struct {
    const char *name; /* the command's flag without "--" */
    op_type type;
    void *ptr;        /* const char **, int *, int64_t *, float *, int * */
    const char *help;
} op_spec;

/* The default of s as text into buf. */
static const char *op_default(const op_spec *s, char *buf, size_t n) {
    switch (s->type) {
    case OP_STR: snprintf(buf, n, "%s", *(const char **)s->ptr ? *(const char **)s->ptr : "none"); break;
    case OP_INT: snprintf(buf, n, "%d", *(int *)s->ptr); break;
    case OP_I64: snprintf(buf, n, "%lld", (long long)*(int64_t *)s->ptr); break;
    case OP_FLOAT: snprintf(buf, n, "%g", (double)*(float *)s->ptr); break;
    case OP_BOOL: snprintf(buf, n, "%s", *(int *)s->ptr ? "on" : "off"); break;
    }
    return buf;
}

/* The help text of specs (terminated by {0}) in a fresh heap string. */
static char *op_help(const char *summary, const op_spec *specs) {
    static const char *const tn[] = {"TEXT", "INT", "INT", "FLOAT", ""};
    size_t cap = 4096, len = 0;
    char *out = sd_malloc(cap), d[128];
    len += (size_t)snprintf(out, cap, "%s\noptions:\n", summary);
    for (const op_spec *s = specs; s->name; s++) {
        char line[1024];
        char head[96];
        snprintf(head, sizeof head, "%s%s%s", s->name, s->type == OP_BOOL ? "" : "=", tn[s->type]);
        int l = snprintf(line, sizeof line, "  %-24s %s (default: %s)\n", head, s->help, op_default(s, d, sizeof d));
        if (l < 0) continue;
        if (len + (size_t)l + 1 > cap) out = sd_realloc(out, cap = 2 * cap + (size_t)l);
        memcpy(out + len, line, (size_t)l + 1);
        len += (size_t)l;
    }
    return out;
}

/* Applies "name=value" options to specs; SD_ERR_USAGE names the stage, the option and the value. */
static int op_parse(const char *stage, op_spec *specs, const char *const *options, sd_err *err) {
    for (const char *const *o = options; o && *o; o++) {
        char name[64];
        const char *eq = strchr(*o, '='), *val = eq ? eq + 1 : NULL;
        size_t nl = eq ? (size_t)(eq - *o) : strlen(*o);
        if (nl == 0 || nl >= sizeof name) return sd_fail(err, SD_ERR_USAGE, "%s: option '%.60s' has no name", stage, *o);
        for (size_t i = 0; i < nl; i++) name[i] = (*o)[i] == '_' ? '-' : (*o)[i];
        name[nl] = 0;
        op_spec *s = specs;
        while (s->name && strcmp(s->name, name)) s++;
        if (!s->name) {
            char known[1024] = "";
            size_t kl = 0;
            for (const op_spec *k = specs; k->name && kl + 40 < sizeof known; k++)
                kl += (size_t)snprintf(known + kl, sizeof known - kl, "%s%s", kl ? ", " : "", k->name);
            return sd_fail(err, SD_ERR_USAGE, "%s: unknown option '%s' (options: %s)", stage, name, known);
        }
        if (s->type == OP_BOOL) {
            if (!val || !strcmp(val, "1") || !strcmp(val, "true")) *(int *)s->ptr = 1;
            else if (!strcmp(val, "0") || !strcmp(val, "false")) *(int *)s->ptr = 0;
            else return sd_fail(err, SD_ERR_USAGE, "%s: option %s='%.60s' is not a boolean (1 or 0)", stage, name, val);
            continue;
        }
        if (!val) return sd_fail(err, SD_ERR_USAGE, "%s: option %s needs a value (%s=VALUE)", stage, name, name);
        char *end;
        errno = 0;
        if (s->type == OP_STR) {
            *(const char **)s->ptr = val;
        } else if (s->type == OP_FLOAT) {
            double v = strtod(val, &end);
            if (end == val || *end || errno || !isfinite(v))
                return sd_fail(err, SD_ERR_USAGE, "%s: option %s='%.60s' is not a number", stage, name, val);
            *(float *)s->ptr = (float)v;
        } else {
            long long v = strtoll(val, &end, 10);
            if (end == val || *end || errno || (s->type == OP_INT && (v < INT32_MIN || v > INT32_MAX)))
                return sd_fail(err, SD_ERR_USAGE, "%s: option %s='%.60s' is not an integer", stage, name, val);
            if (s->type == OP_INT) *(int *)s->ptr = (int)v;
            else *(int64_t *)s->ptr = v;
        }
    }
    return SD_OK;
}

/* Every stage below: help non-NULL asks only for the option text (*help, heap). Otherwise parses
 * options, runs the stage on ws and fills *report (heap JSON) when report is non-NULL. */
#define STAGE_PROLOGUE(summary)                                   \
    if (help) {                                                   \
        *help = op_help(summary, specs);                          \
        return SD_OK;                                             \
    }                                                             \
    int rc = op_parse(stage, specs, options, err);                \
    if (rc) return rc
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
    world_params p;
    const char *preset = NULL;
    for (const char *const *o = options; o && *o; o++) /* the preset sets the defaults first */
        if (!strncmp(*o, "preset=", 7)) preset = *o + 7;
    int prc = world_params_preset(&p, preset, err);
    if (prc) return prc;
    if (!preset) preset = "default";
    int64_t seed = (int64_t)p.seed, users = p.n_users, items = p.n_items;
    int topics = p.n_topics, subtopics = p.n_subtopics, days = p.days;
    float explore = p.explore_prob, sessions = p.sessions_mean, sharing = p.word_sharing;
    op_spec specs[] = {
        {"preset", OP_STR, &preset, "default, or paper (760 subtopics, 100000 users); other options override it"},
        {"seed", OP_I64, &seed, "random seed: the same seed gives byte-identical files"},
        {"users", OP_I64, &users, "number of users"},
        {"items", OP_I64, &items, "number of items (at least topics x subtopics)"},
        {"topics", OP_INT, &topics, "hidden top-level topics"},
        {"subtopics", OP_INT, &subtopics, "hidden subtopics per topic"},
        {"days", OP_INT, &days, "length of the log in days (starting 2023-01-01 UTC)"},
        {"explore", OP_FLOAT, &explore, "mean probability that a session explores a new subtopic"},
        {"sessions", OP_FLOAT, &sessions, "median number of sessions per user"},
        {"word-sharing", OP_FLOAT, &sharing, "[0,1] probability that an interest's theme word is its community's"},
        {0},
    };
    STAGE_PROLOGUE("world: generates the embedded synthetic world (dataset.bin, world_truth.bin; docs/world.md).");
    p.seed = (uint64_t)seed, p.n_users = users, p.n_items = items, p.n_topics = topics, p.n_subtopics = subtopics;
    p.days = days, p.explore_prob = explore, p.sessions_mean = sessions, p.word_sharing = sharing;
    world_summary s;
    if ((rc = world_write(&p, ws, &s, err))) return rc;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "users", (double)s.n_users);
    cJSON_AddNumberToObject(j, "items", (double)s.n_items);
    cJSON_AddNumberToObject(j, "interactions", (double)s.n_events);
    cJSON_AddNumberToObject(j, "ts_min", (double)s.ts_min);
    cJSON_AddNumberToObject(j, "ts_max", (double)s.ts_max);
    cJSON_AddNumberToObject(j, "positive_share", s.positive_share);
    cJSON_AddNumberToObject(j, "explore_share", s.explore_share);
    cJSON_AddNumberToObject(j, "subtopics", topics * subtopics);
    cJSON_AddNumberToObject(j, "word_sharing", (double)p.word_sharing);
    cJSON_AddNumberToObject(j, "seconds", s.seconds);
    put_json(report, j);
    return SD_OK;
}

/* ---------------------------------------------------------------- ingest (cmd_data.c) */

static int st_ingest(STAGE_ARGS) {
    const char *ml = NULL, *ratings = NULL, *items = NULL, *sep = ",";
    const char *user_col = "userId", *item_col = "movieId", *rating_col = "rating", *ts_col = "timestamp";
    const char *watch_col = "", *title_col = "title", *tags_col = "genres";
    int no_header = 0;
    op_spec specs[] = {
        {"movielens", OP_STR, &ml, "MovieLens folder: 100k, 1M, 10M, latest/20M/25M/32M (detected)"},
        {"ratings", OP_STR, &ratings, "generic log: one event per line (instead of movielens)"},
        {"items", OP_STR, &items, "generic catalogue (optional)"},
        {"sep", OP_STR, &sep, "separator of the generic files: one byte, \\t, or two bytes such as ::"},
        {"no-header", OP_BOOL, &no_header, "generic files have no header: columns are 1-based numbers"},
        {"user-col", OP_STR, &user_col, "user id column"},
        {"item-col", OP_STR, &item_col, "item id column, in both files"},
        {"rating-col", OP_STR, &rating_col, "rating column (\"\" for none)"},
        {"ts-col", OP_STR, &ts_col, "time column: unix seconds or YYYY-MM-DD[ HH:MM[:SS]] UTC"},
        {"watch-col", OP_STR, &watch_col, "watch-fraction column in [0,1] (\"\" for none)"},
        {"title-col", OP_STR, &title_col, "catalogue title column"},
        {"tags-col", OP_STR, &tags_col, "catalogue tags column ('|'-separated)"},
        {0},
    };
    STAGE_PROLOGUE("ingest: reads interaction logs and a catalogue into the workspace dataset (dataset.bin).");
    if (!ml == !ratings) return sd_fail(err, SD_ERR_USAGE, "ingest: give exactly one of movielens=PATH or ratings=FILE");
    if (ml && items) return sd_fail(err, SD_ERR_USAGE, "ingest: items goes with ratings, not movielens");
    if (!strcmp(sep, "\\t") || !strcmp(sep, "tab")) sep = "\t";
    if (!*sep || strlen(sep) > 2) return sd_fail(err, SD_ERR_USAGE, "ingest: sep must be one byte, \\t or two bytes like ::");
    ds_dataset d;
    ingest_report rep = {0};
    if (ml) rc = ingest_movielens(ml, &d, &rep, err);
    else {
        ingest_csv_opts o = {.ratings = ratings, .items = items, .sep = sep, .no_header = no_header, .user_col = user_col,
                             .item_col = item_col, .ts_col = ts_col, .rating_col = rating_col, .watch_col = watch_col,
                             .title_col = title_col, .tags_col = tags_col};
        rc = ingest_csv(&o, &d, &rep, err);
    }
    if (rc) return rc;
    char *path = sd_path_join(ws, DS_FILE);
    if (!(rc = sd_mkdir_p(ws, err))) rc = ds_save(&d, path, err);
    ds_free(&d);
    if (!rc) {
        double rows = (double)(rep.rating_rows + rep.catalogue_rows + rep.tag_rows);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "layout", rep.layout);
        cJSON_AddNumberToObject(j, "users", (double)rep.n_users);
        cJSON_AddNumberToObject(j, "items", (double)rep.n_items);
        cJSON_AddNumberToObject(j, "interactions", (double)rep.n_events);
        cJSON_AddNumberToObject(j, "unknown_items", (double)rep.n_unknown_items);
        cJSON_AddNumberToObject(j, "catalogue_rows", (double)rep.catalogue_rows);
        cJSON_AddNumberToObject(j, "tag_rows", (double)rep.tag_rows);
        cJSON_AddNumberToObject(j, "tag_rows_ignored", (double)rep.tag_rows_ignored);
        cJSON_AddNumberToObject(j, "seconds", rep.seconds);
        cJSON_AddNumberToObject(j, "rows_per_second", rep.seconds > 0 ? rows / rep.seconds : 0);
        cJSON_AddStringToObject(j, "dataset", path);
        put_json(report, j);
    }
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- split (cmd_data.c) */

static int st_split(STAGE_ARGS) {
    const char *train_end = NULL, *valid_end = NULL, *per_user = NULL, *per_user_valid = NULL;
    float train_frac = 0.8f, valid_frac = 0.1f;
    op_spec specs[] = {
        {"train-end", OP_STR, &train_end, "global: end of the train window (exclusive), a date or unix seconds"},
        {"valid-end", OP_STR, &valid_end, "global: end of the valid window (exclusive); the rest is test"},
        {"train-frac", OP_FLOAT, &train_frac, "global: train window as a fraction of the time range"},
        {"valid-frac", OP_FLOAT, &valid_frac, "global: valid window as a fraction of the time range"},
        {"per-user", OP_STR, &per_user, "per-user split instead: each user's own last:N or frac:F events are test"},
        {"per-user-valid", OP_STR, &per_user_valid, "with per-user: the last:M or frac:G events before the test window"},
        {0},
    };
    STAGE_PROLOGUE("split: temporal split of the events into train / valid / test windows (split.json).");
    if (!train_end != !valid_end) return sd_fail(err, SD_ERR_USAGE, "split: give both train-end and valid-end, or neither");
    if (per_user_valid && !per_user) return sd_fail(err, SD_ERR_USAGE, "split: per-user-valid goes with per-user");
    if (per_user && (train_end || train_frac != 0.8f || valid_frac != 0.1f))
        return sd_fail(err, SD_ERR_USAGE, "split: per-user replaces train-end / valid-end / train-frac / valid-frac");
    ds_user_window wt = {0}, wv = {0};
    if (per_user && ds_user_window_parse(per_user, &wt, err)) return SD_ERR_USAGE;
    if (per_user_valid && ds_user_window_parse(per_user_valid, &wv, err)) return SD_ERR_USAGE;
    ds_split s = {0};
    if (train_end) {
        if (csv_parse_time(train_end, &s.train_end))
            return sd_fail(err, SD_ERR_USAGE, "split: train-end '%.60s' is not a date or unix time", train_end);
        if (csv_parse_time(valid_end, &s.valid_end))
            return sd_fail(err, SD_ERR_USAGE, "split: valid-end '%.60s' is not a date or unix time", valid_end);
        if (s.valid_end < s.train_end) return sd_fail(err, SD_ERR_USAGE, "split: valid-end is before train-end");
    }
    ds_dataset d = {0};
    char *dpath = sd_path_join(ws, DS_FILE), *spath = sd_path_join(ws, DS_SPLIT_FILE);
    uint64_t hash = 0;
    rc = ds_load(&d, dpath, err);
    if (!rc) rc = sd_hash_file(dpath, &hash, err);
    if (!rc && per_user) rc = ds_split_per_user(&d, wt, wv, &s, err);
    else if (!rc && !train_end) rc = ds_split_by_fraction(&d, train_frac, valid_frac, &s, err);
    s.dataset_hash = hash;
    if (!rc) rc = ds_split_save(&s, spath, err);
    if (!rc) {
        ds_split_counts c;
        ds_split_count(&d, &s, &c);
        static const char *const names[3] = {"train", "valid", "test"};
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "kind", per_user ? "per-user" : "global");
        if (per_user) {
            char a[32], b[32];
            ds_user_window_format(wt, a, sizeof a);
            ds_user_window_format(wv, b, sizeof b);
            cJSON_AddStringToObject(j, "test", a);
            cJSON_AddStringToObject(j, "valid", b);
        } else {
            cJSON_AddNumberToObject(j, "train_end", (double)s.train_end);
            cJSON_AddNumberToObject(j, "valid_end", (double)s.valid_end);
        }
        for (int w = 0; w < 3; w++) {
            cJSON *o = cJSON_AddObjectToObject(j, names[w]);
            cJSON_AddNumberToObject(o, "events", (double)c.events[w]);
            cJSON_AddNumberToObject(o, "users", (double)c.users[w]);
        }
        cJSON_AddStringToObject(j, "split", spath);
        put_json(report, j);
    }
    if (d.events || d.n_users) ds_free(&d);
    ds_split_free(&s);
    free(dpath), free(spath);
    return rc;
}

/* ---------------------------------------------------------------- cluster (cmd_cluster.c) */

static int st_cluster(STAGE_ARGS) {
    tx_config cfg = TX_DEFAULT;
    int64_t seed = (int64_t)cfg.seed;
    op_spec specs[] = {
        {"top", OP_INT, &cfg.n_top, "level-1 clusters K1"},
        {"clusters", OP_INT, &cfg.n_clusters, "level-2 clusters M (capped at the number of embedded items)"},
        {"dim", OP_INT, &cfg.dim, "item embedding dimension"},
        {"window", OP_INT, &cfg.window, "co-occurrence window in positions (0 = whole history)"},
        {"iters", OP_INT, &cfg.iters, "k-means iterations"},
        {"seed", OP_I64, &seed, "random seed (same seed, same thread count: same taxonomy)"},
        {0},
    };
    STAGE_PROLOGUE("cluster: item embeddings (PPMI + SVD), two-level k-means, descriptions (taxonomy.bin, clusters.tsv).");
    if (cfg.n_clusters < 1) return sd_fail(err, SD_ERR_USAGE, "cluster: clusters must be at least 1 (got %d)", cfg.n_clusters);
    if (cfg.n_top < 1 || cfg.n_top > cfg.n_clusters)
        return sd_fail(err, SD_ERR_USAGE, "cluster: top must be in 1..clusters (got %d, clusters %d)", cfg.n_top, cfg.n_clusters);
    if (cfg.dim < 1 || cfg.dim > 1024) return sd_fail(err, SD_ERR_USAGE, "cluster: dim must be in 1..1024 (got %d)", cfg.dim);
    if (cfg.iters < 1) return sd_fail(err, SD_ERR_USAGE, "cluster: iters must be at least 1 (got %d)", cfg.iters);
    if (cfg.window < 0) return sd_fail(err, SD_ERR_USAGE, "cluster: window must be >= 0 (got %d)", cfg.window);
    cfg.seed = (uint64_t)seed;
    tx_taxonomy t;
    tx_stats st;
    double secs;
    if ((rc = tx_run(ws, &cfg, &t, &st, &secs, err))) return rc;
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
    const char *positive = "rating:4,watch:0.7";
    int k = JR_K_DEFAULT;
    op_spec specs[] = {
        {"k", OP_INT, &k, "context length K: the last K distinct positive clusters (1..4)"},
        {"positive", OP_STR, &positive, "positive engagement: rating:X and/or watch:X (comma-separated)"},
        {0},
    };
    STAGE_PROLOGUE("journeys: per-user journeys over level-2 clusters, transitions, collective feedback "
                   "(journeys.bin, feedback.tsv).");
    if (k < 1 || k > JR_K_MAX) return sd_fail(err, SD_ERR_USAGE, "journeys: k %d is not in 1..%d", k, JR_K_MAX);
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    if ((rc = jr_parse_positive(positive, &rule, err))) return rc;
    jr_journeys j;
    if ((rc = jr_run(ws, k, &rule, &j, err))) return rc;
    int64_t users_with = 0, kept3 = 0;
    for (int64_t u = 0; u < j.n_users; u++) users_with += j.journey_off[u + 1] > j.journey_off[u];
    for (int64_t i = 0; i < j.n_feedback; i++) kept3 += j.feedback[i].users >= 3;
    char pos[64];
    jr_format_positive(&rule, pos, sizeof pos);
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
    md_opts o;
    md_opts_default(&o);
    int seed = (int)o.seed;
    float label_shrink = (float)o.corpus.label_shrink;
    op_spec specs[] = {
        {"base", OP_STR, &o.base, "start from this GGUF base model (e.g. a pretrained Llama) instead of training one"},
        {"vocab", OP_INT, &o.vocab, "BPE vocabulary size"},
        {"dim", OP_INT, &o.cfg.dim, "model width"},
        {"layers", OP_INT, &o.cfg.n_layers, "transformer blocks"},
        {"heads", OP_INT, &o.cfg.n_heads, "attention heads"},
        {"kv-heads", OP_INT, &o.cfg.n_kv_heads, "key/value heads (grouped-query attention)"},
        {"hidden", OP_INT, &o.cfg.hidden_dim, "feed-forward width"},
        {"seq-len", OP_INT, &o.cfg.seq_len, "context length in tokens"},
        {"pretrain-steps", OP_INT, &o.pretrain_steps, "optimizer steps of base pretraining"},
        {"novelty-steps", OP_INT, &o.novelty_steps, "steps of the novelty fine-tune (and the single baseline)"},
        {"align-steps", OP_INT, &o.align_steps, "steps of the alignment fine-tune"},
        {"batch", OP_INT, &o.batch, "rows per step"},
        {"lr", OP_FLOAT, &o.lr, "peak learning rate of pretraining"},
        {"sft-lr", OP_FLOAT, &o.sft_lr, "peak learning rate of the fine-tunes"},
        {"lora", OP_INT, &o.lora_rank, "LoRA rank of the fine-tunes (0 = full fine-tune)"},
        {"no-retrieval", OP_BOOL, &o.no_retrieval, "skip the item-level retrieval model"},
        {"baseline", OP_BOOL, &o.baseline, "also train the single model fine-tuned on high-feedback tuples"},
        {"novelty-examples", OP_INT, &o.corpus.novelty_examples, "size of the diversified novelty set"},
        {"per-target-cap", OP_INT, &o.corpus.per_target_cap, "max novelty examples per target cluster (0 = automatic)"},
        {"min-users", OP_INT, &o.corpus.min_users, "held-out alignment tuples backed by fewer users: probe only"},
        {"train-min-users", OP_INT, &o.corpus.train_min_users, "alignment training tuples backed by fewer users are dropped"},
        {"label-shrink", OP_FLOAT, &label_shrink, "alignment labels: rate shrunk with this many pseudo-exposures (0 = raw)"},
        {"pairwise", OP_BOOL, &o.corpus.pairwise, "also write the pairwise alignment corpus and train the pairwise model on it"},
        {"pairwise-examples", OP_INT, &o.corpus.pairwise_examples, "pairs in the pairwise corpus"},
        {"seed", OP_INT, &seed, "random seed"},
        {0},
    };
    STAGE_PROLOGUE("train: corpora, the base model, the novelty and alignment fine-tunes, the retrieval model "
                   "(models/*.gguf, models/train.json, retrieval.bin).");
    o.seed = (uint64_t)seed;
    o.corpus.seed = (uint64_t)seed;
    o.corpus.label_shrink = label_shrink;
    md_report r;
    if ((rc = md_train(ws, &o, &r, err))) return rc;
    return put_file(report, ws, MD_DIR "/" MD_REPORT, err);
}

/* ---------------------------------------------------------------- plan (cmd_plan.c) */

static int st_plan(STAGE_ARGS) {
    const char *sweep = NULL, *shard = NULL, *gen = "novelty", *out = NULL, *selector = "pointwise";
    pl_opts o;
    pl_opts_default(&o);
    int n = 16, seed = 1;
    float fb_m = 0;
    op_spec specs[] = {
        {"n", OP_INT, &n, "candidates sampled per context (best-of-n)"},
        {"n-sweep", OP_STR, &sweep, "comma-separated n values: one table per n in ws/plans/ (e.g. 1,2,4,8,16)"},
        {"temperature", OP_FLOAT, &o.temperature, "sampling temperature of the novelty model"},
        {"top-k", OP_INT, &o.top_k, "sample only from the k most likely tokens (0 = off)"},
        {"top-p", OP_FLOAT, &o.top_p, "nucleus sampling threshold (1 = off)"},
        {"top", OP_INT, &o.top, "clusters kept per context"},
        {"shard", OP_STR, &shard, "plan only slice I of N (I/N), joined with `serendip plan-merge`"},
        {"generator", OP_STR, &gen, "proposing model: novelty, single (the baseline), or rl / rl_guarded (serendip rl)"},
        {"selector", OP_STR, &selector, "pointwise (the alignment model's score) or pairwise (a tournament of the pairwise model)"},
        {"constrained", OP_BOOL, &o.constrained, "constrained decoding: sample only valid descriptions"},
        {"no-align", OP_BOOL, &o.no_align, "rank by the generator's log-probability, without the alignment model"},
        {"out", OP_STR, &out, "table path for a single-n run (default ws/explore.tbl)"},
        {"feedback-shrink", OP_FLOAT, &fb_m, "also write the table shrunk toward observed feedback (0 = off)"},
        {"seed", OP_INT, &seed, "sampling seed"},
        {0},
    };
    STAGE_PROLOGUE("plan: best-of-n over every context into the explore table (explore.tbl, plans/).");
    if (sweep) {
        if (pl_parse_sweep(sweep, &o, err)) return SD_ERR_USAGE;
    } else {
        if (n < 1 || n > 1024) return sd_fail(err, SD_ERR_USAGE, "plan: n %d must be in 1..1024", n);
        o.n_sweep[0] = n;
        o.n_count = 1;
    }
    if (shard) {
        int i = 0, k = 0;
        char tail;
        if (sscanf(shard, "%d/%d%c", &i, &k, &tail) != 2 || k < 1 || i < 1 || i > k)
            return sd_fail(err, SD_ERR_USAGE, "plan: shard '%.40s': expected I/N with 1 <= I <= N", shard);
        o.shard = i - 1;
        o.n_shards = k;
    }
    if (!(o.temperature >= 0)) return sd_fail(err, SD_ERR_USAGE, "plan: temperature must be >= 0");
    if (o.top_k < 0) return sd_fail(err, SD_ERR_USAGE, "plan: top-k %d must be >= 0 (0 = off)", o.top_k);
    if (!(o.top_p > 0 && o.top_p <= 1)) return sd_fail(err, SD_ERR_USAGE, "plan: top-p must be in (0, 1]");
    if (out && sweep) return sd_fail(err, SD_ERR_USAGE, "plan: out names one table; n-sweep writes one per n into ws/plans/");
    if (!(fb_m >= 0 && fb_m <= 1e6)) return sd_fail(err, SD_ERR_USAGE, "plan: feedback-shrink must be in 0..1e6");
    if (fb_m > 0 && (o.no_align || !strcmp(gen, "single")))
        return sd_fail(err, SD_ERR_USAGE, "plan: feedback-shrink needs the alignment model and the novelty generator");
    o.feedback_m = fb_m;
    o.generator = gen;
    o.selector = selector;
    o.out = out;
    o.seed = (uint64_t)seed;
    pl_report rep;
    if ((rc = pl_plan(ws, &o, &rep, err))) return rc;
    char rel[128];
    snprintf(rel, sizeof rel, "%s/plan-%s%s.json", PL_DIR, pl_prefix(&o), o.n_shards > 1 ? "-shard" : "");
    return put_file(report, ws, rel, err);
}

/* ---------------------------------------------------------------- eval and report (cmd_eval.c) */

typedef struct {
    int serve, bootstrap, k, depth, min_users;
    int64_t seed;
    float shrink;
    const char *positive;
} eval_flags;

static void eval_specs(eval_flags *f, op_spec *specs) {
    ev_opts def = EV_OPTS_DEFAULT;
    *f = (eval_flags){def.serve, def.bootstrap, 0, def.depth, def.min_users, (int64_t)def.seed, (float)def.shrink, NULL};
    op_spec s[] = {
        {"serve", OP_INT, &f->serve, "clusters served per user (S)"},
        {"bootstrap", OP_INT, &f->bootstrap, "bootstrap resamples for the 95% intervals (0: none)"},
        {"seed", OP_I64, &f->seed, "seed of the bootstrap and of the random baseline"},
        {"k", OP_INT, &f->k, "context length K (0: from the tables, else 2)"},
        {"depth", OP_INT, &f->depth, "clusters asked of each arm before the per-user filter (0: all M)"},
        {"min-users", OP_INT, &f->min_users, "feedback-rate arm: tuples backed by fewer users are ignored"},
        {"shrink", OP_FLOAT, &f->shrink, "shrunk-feedback arm: prior strength in pseudo-exposures"},
        {"positive", OP_STR, &f->positive, "positive engagement rule (rating:R,watch:W; default: the workspace's)"},
        {0},
    };
    memcpy(specs, s, sizeof s);
}
#define EVAL_SPECS 9

static int eval_run(const char *stage, const char *ws, const eval_flags *f, ev_eval_run *r, sd_err *err) {
    if (f->serve < 1 || f->serve > TBL_TOP_MAX) return sd_fail(err, SD_ERR_USAGE, "%s: serve must be in 1..%d", stage, TBL_TOP_MAX);
    if (f->bootstrap < 0) return sd_fail(err, SD_ERR_USAGE, "%s: bootstrap must be >= 0", stage);
    if (f->k < 0 || f->k > EV_MAX_K) return sd_fail(err, SD_ERR_USAGE, "%s: k must be in 0..%d", stage, EV_MAX_K);
    if (f->depth < 0) return sd_fail(err, SD_ERR_USAGE, "%s: depth must be >= 0", stage);
    if (f->min_users < 1) return sd_fail(err, SD_ERR_USAGE, "%s: min-users must be at least 1", stage);
    if (!(f->shrink >= 0 && f->shrink <= 1e6)) return sd_fail(err, SD_ERR_USAGE, "%s: shrink must be in 0..1e6", stage);
    ds_positive_rule rule;
    int rc = jr_resolve_rule(ws, f->positive, &rule, err);
    if (rc) return rc;
    ev_opts o = {.serve = f->serve, .bootstrap = f->bootstrap, .seed = (uint64_t)f->seed, .depth = f->depth,
                 .min_users = f->min_users, .shrink = f->shrink};
    return ev_eval_workspace(ws, &o, f->k, &rule, r, err);
}

static int st_eval(STAGE_ARGS) {
    eval_flags f;
    op_spec specs[EVAL_SPECS];
    eval_specs(&f, specs);
    STAGE_PROLOGUE("eval: serves every evaluated user from each arm; metrics with 95% bootstrap intervals (metrics.json).");
    ev_eval_run r = {0};
    if (!(rc = eval_run(stage, ws, &f, &r, err)) && report) *report = sd_strdup(r.json);
    ev_eval_run_free(&r);
    return rc;
}

static int st_report(STAGE_ARGS) {
    eval_flags f;
    op_spec specs[EVAL_SPECS + 1];
    int force = 0;
    eval_specs(&f, specs);
    specs[EVAL_SPECS - 1] = (op_spec){"rerun", OP_BOOL, &force, "recompute metrics.json even when it exists"};
    specs[EVAL_SPECS] = (op_spec){0};
    STAGE_PROLOGUE("report: report.html (inline SVG) from metrics.json, evaluating first when it is absent.");
    char *mpath = sd_path_join(ws, EV_METRICS_FILE), *hpath = sd_path_join(ws, EV_REPORT_FILE), *json = NULL;
    size_t len;
    if (force || !sd_file_exists(mpath)) {
        ev_eval_run r = {0};
        if (!(rc = eval_run(stage, ws, &f, &r, err))) json = r.json, r.json = NULL;
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
