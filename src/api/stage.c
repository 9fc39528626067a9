/* stage.c - the options of every pipeline stage, their checks and the filling of the library's
 * option structs: the one definition the command line (cmd/cmd_<stage>.c) and the public API
 * (stages.c, serendip_run) both use (see stage.h). Each stage's table is one block. */
#include "serendip/stage.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/csv.h"
#include "serendip/journeys.h"
#include "serendip/table.h"

/* Copies the table t (n entries) into out and returns n. */
static int put_opts(sd_opt *out, const sd_opt *t, size_t n) {
    memcpy(out, t, n * sizeof *t);
    return (int)n;
}
/* Ends an sd_X_opts: copies its table t into out and returns the count; a table longer than
 * SD_STAGE_OPTS (the callers' array size) does not compile. */
#define RETURN_TABLE(out, t)                                                                    \
    _Static_assert(sizeof t / sizeof t[0] <= SD_STAGE_OPTS, "a stage table exceeds SD_STAGE_OPTS"); \
    return put_opts(out, t, sizeof t / sizeof t[0])
#define USAGE(...) sd_fail(err, SD_ERR_USAGE, __VA_ARGS__)

/* ---------------------------------------------------------------- world */

const sd_stage_text sd_stage_world = {
    "world", "world --ws DIR [flags]",
    "Generates the embedded synthetic world: a hidden topic hierarchy, items with titles and tags,\n"
    "users whose interests drift and who explore, and their interaction log. Writes\n"
    "DIR/dataset.bin and the ground truth DIR/world_truth.bin (see docs/world.md).\n"
    "--preset paper builds the papers' scale (~761 level-2 interests, 578k contexts for K = 2):\n"
    "  serendip world --ws W --preset paper && serendip split --ws W &&\n"
    "  serendip cluster --ws W --clusters 760 --top 40"};

int sd_world_args_init(sd_world_args *a, const char *preset, sd_err *err) {
    memset(a, 0, sizeof *a);
    int rc = world_params_preset(&a->p, preset, err);
    if (rc) return rc;
    const world_params *p = &a->p;
    a->preset = preset ? preset : "default";
    a->seed = (int64_t)p->seed, a->users = p->n_users, a->items = p->n_items;
    a->topics = p->n_topics, a->subtopics = p->n_subtopics, a->days = p->days;
    a->explore = p->explore_prob, a->sessions = p->sessions_mean, a->sharing = p->word_sharing;
    return SD_OK;
}

int sd_world_opts(sd_world_args *a, sd_opt *out) {
    const sd_opt t[] = {
        {"preset", SD_OPT_STR, &a->preset,
         "default, or paper (40x19 = 760 subtopics, 100000 users, 20000 items); other flags override it"},
        {"seed", SD_OPT_I64, &a->seed, "random seed: the same seed gives byte-identical files"},
        {"users", SD_OPT_I64, &a->users, "number of users"},
        {"items", SD_OPT_I64, &a->items, "number of items (at least topics x subtopics)"},
        {"topics", SD_OPT_INT, &a->topics, "hidden top-level topics"},
        {"subtopics", SD_OPT_INT, &a->subtopics, "hidden subtopics per topic"},
        {"days", SD_OPT_INT, &a->days, "length of the log in days (starting 2023-01-01 UTC)"},
        {"explore", SD_OPT_FLOAT, &a->explore, "mean probability that a session explores a new subtopic"},
        {"sessions", SD_OPT_FLOAT, &a->sessions, "median number of sessions per user"},
        {"word-sharing", SD_OPT_FLOAT, &a->sharing,
         "[0,1] probability that an interest's theme word is its taste community's (0 = unrelated words)"},
    };
    RETURN_TABLE(out, t);
}

int sd_world_check(sd_world_args *a, const char *dash, sd_err *err) {
    (void)dash, (void)err; /* world_write checks the values (its messages name the parameter) */
    world_params *p = &a->p;
    p->seed = (uint64_t)a->seed, p->n_users = a->users, p->n_items = a->items;
    p->n_topics = a->topics, p->n_subtopics = a->subtopics, p->days = a->days;
    p->explore_prob = a->explore, p->sessions_mean = a->sessions, p->word_sharing = a->sharing;
    return SD_OK;
}

/* ---------------------------------------------------------------- ingest */

const sd_stage_text sd_stage_ingest = {
    "ingest", "ingest --ws DIR (--movielens PATH | --recbole PATH | --ratings FILE [--items FILE] [column flags])",
    "Reads interaction logs and a catalogue into the workspace dataset (dataset.bin)."};

void sd_ingest_args_init(sd_ingest_args *a) {
    *a = (sd_ingest_args){.ids = "auto",
                          .csv = {.sep = ",", .user_col = "userId", .item_col = "movieId", .ts_col = "timestamp",
                                  .rating_col = "rating", .watch_col = "", .title_col = "title", .tags_col = "genres"}};
}

int sd_ingest_opts(sd_ingest_args *a, sd_opt *out) {
    ingest_csv_opts *c = &a->csv;
    const sd_opt t[] = {
        {"movielens", SD_OPT_STR, &a->movielens, "MovieLens folder: 100k, 1M, 10M, latest/20M/25M/32M (detected; a folder with one RecBole .inter is read as --recbole)"},
        {"recbole", SD_OPT_STR, &a->recbole, "RecBole atomic files: a NAME.inter (or a folder with one) and NAME.item beside it (optional)"},
        {"ratings", SD_OPT_STR, &c->ratings, "generic log: one event per line (instead of --movielens)"},
        {"items", SD_OPT_STR, &c->items, "generic catalogue (optional)"},
        {"sep", SD_OPT_STR, &c->sep, "separator of the generic files: one byte, \\t, or two bytes such as ::"},
        {"no-header", SD_OPT_BOOL, &c->no_header, "generic files have no header: columns are 1-based numbers"},
        {"user-col", SD_OPT_STR, &c->user_col, "user id column"},
        {"item-col", SD_OPT_STR, &c->item_col, "item id column, in both files"},
        {"ids", SD_OPT_STR, &a->ids, "generic ids: auto (strings; a side whose ids are all integers keeps integers) or int (integers only)"},
        {"rating-col", SD_OPT_STR, &c->rating_col, "rating column (\"\" for none; empty cells = no rating)"},
        {"ts-col", SD_OPT_STR, &c->ts_col, "time column: unix seconds or YYYY-MM-DD[ HH:MM[:SS]] UTC"},
        {"watch-col", SD_OPT_STR, &c->watch_col, "watch-fraction column in [0,1] (\"\" for none)"},
        {"title-col", SD_OPT_STR, &c->title_col, "catalogue title column"},
        {"tags-col", SD_OPT_STR, &c->tags_col, "catalogue tags column ('|'-separated)"},
    };
    RETURN_TABLE(out, t);
}

int sd_ingest_check(sd_ingest_args *a, const char *d, sd_err *err) {
    ingest_csv_opts *c = &a->csv;
    if (!!a->movielens + !!a->recbole + !!c->ratings != 1)
        return USAGE("give exactly one of %smovielens PATH, %srecbole PATH or %sratings FILE", d, d, d);
    if (!c->ratings && c->items) return USAGE("%sitems goes with %sratings", d, d);
    if (strcmp(a->ids, "auto") && strcmp(a->ids, "int")) return USAGE("%sids must be auto or int, not '%s'", d, a->ids);
    if (!strcmp(c->sep, "\\t") || !strcmp(c->sep, "tab")) c->sep = "\t";
    if (!*c->sep || strlen(c->sep) > 2) return USAGE("%ssep must be one byte, \\t or a two-byte separator like ::", d);
    c->int_ids = !strcmp(a->ids, "int");
    return SD_OK;
}

int sd_ingest_run(const sd_ingest_args *a, const char *ws, ingest_report *rep, char **path, sd_err *err) {
    ds_dataset d;
    int rc;
    *path = NULL;
    if (a->movielens) rc = ingest_movielens(a->movielens, &d, rep, err);
    else if (a->recbole) rc = ingest_recbole(a->recbole, &d, rep, err);
    else rc = ingest_csv(&a->csv, &d, rep, err);
    if (rc) return rc;
    char *p = sd_path_join(ws, DS_FILE);
    if (!(rc = sd_mkdir_p(ws, err))) rc = ds_save(&d, p, err);
    ds_free(&d);
    if (rc) free(p);
    else *path = p;
    return rc;
}

/* cJSON text of j (indented when pretty), j freed. */
static char *json_text(cJSON *j, int pretty) {
    char *s = pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

char *sd_ingest_json(const ingest_report *rep, const char *path, int pretty) {
    double rows = (double)(rep->rating_rows + rep->catalogue_rows + rep->tag_rows);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "layout", rep->layout);
    cJSON_AddNumberToObject(j, "users", (double)rep->n_users);
    cJSON_AddNumberToObject(j, "items", (double)rep->n_items);
    cJSON_AddNumberToObject(j, "interactions", (double)rep->n_events);
    cJSON_AddNumberToObject(j, "unknown_items", (double)rep->n_unknown_items);
    cJSON_AddStringToObject(j, "user_ids", rep->string_user_ids ? "string" : "integer");
    cJSON_AddStringToObject(j, "item_ids", rep->string_item_ids ? "string" : "integer");
    cJSON_AddNumberToObject(j, "catalogue_rows", (double)rep->catalogue_rows);
    cJSON_AddNumberToObject(j, "tag_rows", (double)rep->tag_rows);
    cJSON_AddNumberToObject(j, "tag_rows_ignored", (double)rep->tag_rows_ignored);
    cJSON_AddNumberToObject(j, "seconds", rep->seconds);
    cJSON_AddNumberToObject(j, "rows_per_second", rep->seconds > 0 ? rows / rep->seconds : 0);
    cJSON_AddStringToObject(j, "dataset", path);
    return json_text(j, pretty);
}

/* ---------------------------------------------------------------- split */

const sd_stage_text sd_stage_split = {
    "split",
    "split --ws DIR [--train-end DATE --valid-end DATE | --train-frac X --valid-frac X | --per-user last:N|frac:F "
    "[--per-user-valid last:M|frac:G]]",
    "Temporal split of the events into train / valid / test windows (split.json): global (one cut in time, the "
    "default) or per user (each user's own last events). See docs/evaluation.md, \"Splits\"."};

void sd_split_args_init(sd_split_args *a) { *a = (sd_split_args){.train_frac = 0.8f, .valid_frac = 0.1f}; }

int sd_split_opts(sd_split_args *a, sd_opt *out) {
    const sd_opt t[] = {
        {"train-end", SD_OPT_STR, &a->train_end, "global: end of the train window (exclusive): YYYY-MM-DD[ HH:MM[:SS]] UTC or unix seconds"},
        {"valid-end", SD_OPT_STR, &a->valid_end, "global: end of the valid window (exclusive); the rest is test"},
        {"train-frac", SD_OPT_FLOAT, &a->train_frac, "global: train window as a fraction of the time range (without --train-end)"},
        {"valid-frac", SD_OPT_FLOAT, &a->valid_frac, "global: valid window as a fraction of the time range"},
        {"per-user", SD_OPT_STR, &a->per_user,
         "per-user split instead: each user's own last:N events or last frac:F of their events (rounded up) are test; "
         "events tied in time with the last earlier event stay before the cut (the window can hold fewer), "
         "and every user keeps at least one train event (a one-event user is all train)"},
        {"per-user-valid", SD_OPT_STR, &a->per_user_valid, "with --per-user: the last:M or frac:G events just before the test window are valid"},
    };
    RETURN_TABLE(out, t);
}

int sd_split_check(sd_split_args *a, const char *d, sd_err *err) {
    if (!a->train_end != !a->valid_end) return USAGE("give both %strain-end and %svalid-end, or neither", d, d);
    if (a->per_user_valid && !a->per_user) return USAGE("%sper-user-valid goes with %sper-user", d, d);
    if (a->per_user && (a->train_end || a->train_frac != 0.8f || a->valid_frac != 0.1f))
        return USAGE("%sper-user replaces the global flags %strain-end / %svalid-end / %strain-frac / %svalid-frac", d, d, d, d, d);
    if (a->per_user && ds_user_window_parse(a->per_user, &a->wt, err)) {
        sd_err_prefix(err, "%sper-user", d);
        return err->code = SD_ERR_USAGE;
    }
    if (a->per_user_valid && ds_user_window_parse(a->per_user_valid, &a->wv, err)) {
        sd_err_prefix(err, "%sper-user-valid", d);
        return err->code = SD_ERR_USAGE;
    }
    if (a->train_end) {
        if (csv_parse_time(a->train_end, &a->s.train_end))
            return USAGE("%strain-end '%.60s' is not a date or unix time", d, a->train_end);
        if (csv_parse_time(a->valid_end, &a->s.valid_end))
            return USAGE("%svalid-end '%.60s' is not a date or unix time", d, a->valid_end);
        if (a->s.valid_end < a->s.train_end) return USAGE("%svalid-end is before %strain-end", d, d);
    }
    return SD_OK;
}

int sd_split_run(sd_split_args *a, const char *ws, ds_dataset *d, ds_split_counts *c, char **spath, sd_err *err) {
    memset(d, 0, sizeof *d);
    char *dpath = sd_path_join(ws, DS_FILE);
    *spath = sd_path_join(ws, DS_SPLIT_FILE);
    uint64_t hash = 0;
    int rc = ds_load(d, dpath, err);
    if (!rc) rc = sd_hash_file(dpath, &hash, err);
    if (!rc && a->per_user) rc = ds_split_per_user(d, a->wt, a->wv, &a->s, err);
    else if (!rc && !a->train_end) rc = ds_split_by_fraction(d, a->train_frac, a->valid_frac, &a->s, err);
    a->s.dataset_hash = hash;
    if (!rc) rc = ds_split_save(&a->s, *spath, err);
    free(dpath);
    if (rc) {
        if (d->events || d->n_users) ds_free(d);
        ds_split_free(&a->s);
        free(*spath);
        *spath = NULL;
        return rc;
    }
    ds_split_count(d, &a->s, c);
    return SD_OK;
}

char *sd_split_json(const sd_split_args *a, const ds_split_counts *c, const char *spath, int pretty) {
    static const char *const names[3] = {"train", "valid", "test"};
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", a->per_user ? "per-user" : "global");
    if (a->per_user) {
        char x[32], y[32];
        ds_user_window_format(a->wt, x, sizeof x);
        ds_user_window_format(a->wv, y, sizeof y);
        cJSON_AddStringToObject(j, "test", x);
        cJSON_AddStringToObject(j, "valid", y);
    } else {
        cJSON_AddNumberToObject(j, "train_end", (double)a->s.train_end);
        cJSON_AddNumberToObject(j, "valid_end", (double)a->s.valid_end);
    }
    for (int w = 0; w < 3; w++) {
        cJSON *o = cJSON_AddObjectToObject(j, names[w]);
        cJSON_AddNumberToObject(o, "events", (double)c->events[w]);
        cJSON_AddNumberToObject(o, "users", (double)c->users[w]);
    }
    cJSON_AddStringToObject(j, "split", spath);
    return json_text(j, pretty);
}

/* ---------------------------------------------------------------- cluster */

const sd_stage_text sd_stage_cluster = {
    "cluster", "cluster --ws DIR [flags]",
    "Learns item embeddings from train-window co-occurrence (PPMI + truncated SVD), groups items\n"
    "into M level-2 clusters by k-means and those into K1 level-1 clusters, and describes each\n"
    "cluster with a few unique keywords. Writes DIR/taxonomy.bin and DIR/clusters.tsv\n"
    "(see docs/formats-taxonomy.md)."};

void sd_cluster_args_init(sd_cluster_args *a) {
    a->cfg = TX_DEFAULT;
    a->seed = (int64_t)a->cfg.seed;
}

int sd_cluster_opts(sd_cluster_args *a, sd_opt *out) {
    tx_config *c = &a->cfg;
    const sd_opt t[] = {
        {"top", SD_OPT_INT, &c->n_top, "level-1 clusters K1"},
        {"clusters", SD_OPT_INT, &c->n_clusters, "level-2 clusters M (capped at the number of embedded items)"},
        {"dim", SD_OPT_INT, &c->dim, "item embedding dimension"},
        {"window", SD_OPT_INT, &c->window, "co-occurrence window in positions of a user's history (0 = whole history)"},
        {"iters", SD_OPT_INT, &c->iters, "k-means iterations"},
        {"seed", SD_OPT_I64, &a->seed, "random seed (same seed, same thread count: same taxonomy)"},
    };
    RETURN_TABLE(out, t);
}

int sd_cluster_check(sd_cluster_args *a, const char *d, sd_err *err) {
    tx_config *c = &a->cfg;
    if (c->n_clusters < 1) return USAGE("%sclusters must be at least 1 (got %d)", d, c->n_clusters);
    if (c->n_top < 1 || c->n_top > c->n_clusters)
        return USAGE("%stop must be in 1..%sclusters (got %d, clusters %d)", d, d, c->n_top, c->n_clusters);
    if (c->dim < 1 || c->dim > 1024) return USAGE("%sdim must be in 1..1024 (got %d)", d, c->dim);
    if (c->iters < 1) return USAGE("%siters must be at least 1 (got %d)", d, c->iters);
    if (c->window < 0) return USAGE("%swindow must be >= 0 (got %d)", d, c->window);
    c->seed = (uint64_t)a->seed;
    return SD_OK;
}

/* ---------------------------------------------------------------- journeys */

const sd_stage_text sd_stage_journeys = {
    "journeys", "journeys --ws DIR [--k 2] [--positive RULE]",
    "Per-user journeys over level-2 clusters (train window), transitions (last K distinct positive\n"
    "clusters -> next) and collective feedback per (context, candidate). Writes journeys.bin and\n"
    "feedback.tsv."};

void sd_journeys_args_init(sd_journeys_args *a) {
    *a = (sd_journeys_args){.positive = "rating:4,watch:0.7", .k = JR_K_DEFAULT, .rule = DS_POSITIVE_DEFAULT};
}

int sd_journeys_opts(sd_journeys_args *a, sd_opt *out) {
    const sd_opt t[] = {
        {"k", SD_OPT_INT, &a->k, "context length K: the last K distinct positive clusters (1..4)"},
        {"positive", SD_OPT_STR, &a->positive, "positive engagement: rating:X and/or watch:X (comma-separated)"},
    };
    RETURN_TABLE(out, t);
}

int sd_journeys_check(sd_journeys_args *a, const char *d, sd_err *err) {
    if (a->k < 1 || a->k > JR_K_MAX) return USAGE("%sk %d is not in 1..%d", d, a->k, JR_K_MAX);
    return jr_parse_positive(a->positive, &a->rule, err);
}

/* ---------------------------------------------------------------- train */

const sd_stage_text sd_stage_train = {
    "train", "train --ws DIR [flags]",
    "Builds the corpora, pretrains the base model on the catalogue's language, and fine-tunes the\n"
    "novelty model and the alignment model from it (ws/models/*.gguf, ws/models/train.json)."};

void sd_train_args_init(sd_train_args *a) {
    md_opts_default(&a->o);
    a->seed = (int)a->o.seed;
    a->label_shrink = (float)a->o.corpus.label_shrink;
}

int sd_train_opts(sd_train_args *a, sd_opt *out) {
    md_opts *o = &a->o;
    const sd_opt t[] = {
        {"base", SD_OPT_STR, &o->base, "start from this GGUF base model (e.g. a pretrained Llama) instead of training one"},
        {"vocab", SD_OPT_INT, &o->vocab, "BPE vocabulary size"},
        {"dim", SD_OPT_INT, &o->cfg.dim, "model width"},
        {"layers", SD_OPT_INT, &o->cfg.n_layers, "transformer blocks"},
        {"heads", SD_OPT_INT, &o->cfg.n_heads, "attention heads"},
        {"kv-heads", SD_OPT_INT, &o->cfg.n_kv_heads, "key/value heads (grouped-query attention)"},
        {"hidden", SD_OPT_INT, &o->cfg.hidden_dim, "feed-forward width"},
        {"seq-len", SD_OPT_INT, &o->cfg.seq_len, "context length in tokens"},
        {"pretrain-steps", SD_OPT_INT, &o->pretrain_steps, "optimizer steps of base pretraining"},
        {"novelty-steps", SD_OPT_INT, &o->novelty_steps, "steps of the novelty fine-tune (and the single baseline)"},
        {"align-steps", SD_OPT_INT, &o->align_steps, "steps of the alignment fine-tune"},
        {"batch", SD_OPT_INT, &o->batch, "rows per step"},
        {"lr", SD_OPT_FLOAT, &o->lr, "peak learning rate of pretraining"},
        {"sft-lr", SD_OPT_FLOAT, &o->sft_lr, "peak learning rate of the fine-tunes"},
        {"lora", SD_OPT_INT, &o->lora_rank, "LoRA rank of the fine-tunes (0 = full fine-tune)"},
        {"no-retrieval", SD_OPT_BOOL, &o->no_retrieval, "skip the item-level retrieval model (its training grows with the log)"},
        {"baseline", SD_OPT_BOOL, &o->baseline, "also train the single model fine-tuned on high-feedback tuples"},
        {"novelty-examples", SD_OPT_INT, &o->corpus.novelty_examples, "size of the diversified novelty set"},
        {"per-target-cap", SD_OPT_INT, &o->corpus.per_target_cap, "max novelty examples per target cluster (0 = automatic)"},
        {"min-users", SD_OPT_INT, &o->corpus.min_users, "held-out alignment tuples backed by fewer users are judged on the probe only"},
        {"train-min-users", SD_OPT_INT, &o->corpus.train_min_users, "alignment training tuples backed by fewer users are dropped"},
        {"label-shrink", SD_OPT_FLOAT, &a->label_shrink, "alignment labels: percentile of the rate shrunk with this many pseudo-exposures (0 = raw)"},
        {"pairwise", SD_OPT_BOOL, &o->corpus.pairwise, "also write the pairwise alignment corpus and train the pairwise model on it\n"
                                                       "(models/align_pairwise.gguf, as many steps as the alignment model)"},
        {"pairwise-examples", SD_OPT_INT, &o->corpus.pairwise_examples, "pairs in the pairwise corpus"},
        {"seed", SD_OPT_INT, &a->seed, "random seed"},
    };
    RETURN_TABLE(out, t);
}

int sd_train_check(sd_train_args *a, const char *dash, sd_err *err) {
    (void)dash, (void)err; /* md_train checks the model shape (its messages name the value) */
    a->o.seed = (uint64_t)a->seed;
    a->o.corpus.seed = (uint64_t)a->seed;
    a->o.corpus.label_shrink = a->label_shrink;
    return SD_OK;
}

/* ---------------------------------------------------------------- plan */

const sd_stage_text sd_stage_plan = {
    "plan", "plan --ws DIR [--n N | --n-sweep LIST] [flags]",
    "Best-of-n over every context: samples n novel-cluster descriptions per context from the novelty\n"
    "model, scores them with the alignment model and keeps the best in the explore table."};

void sd_plan_args_init(sd_plan_args *a) {
    memset(a, 0, sizeof *a);
    pl_opts_default(&a->o);
    a->gen = "novelty", a->selector = "pointwise";
    a->n = 16, a->seed = 1;
}

int sd_plan_opts(sd_plan_args *a, sd_opt *out) {
    pl_opts *o = &a->o;
    const sd_opt t[] = {
        {"n", SD_OPT_INT, &a->n, "candidates sampled per context (best-of-n)"},
        {"n-sweep", SD_OPT_STR, &a->sweep, "comma-separated n values: one table per n in ws/plans/ (e.g. 1,2,4,8,16)"},
        {"temperature", SD_OPT_FLOAT, &o->temperature, "sampling temperature of the novelty model"},
        {"top-k", SD_OPT_INT, &o->top_k, "sample only from the k most likely tokens (0 = off)"},
        {"top-p", SD_OPT_FLOAT, &o->top_p, "nucleus sampling: the most likely tokens holding this probability (1 = off)"},
        {"top", SD_OPT_INT, &o->top, "clusters kept per context"},
        {"shard", SD_OPT_STR, &a->shard, "plan only slice I of N, written as ws/explore.tbl.I-of-N (join with plan-merge)"},
        {"generator", SD_OPT_STR, &a->gen, "proposing model: novelty, single (the baseline), or rl / rl_guarded (serendip rl)"},
        {"selector", SD_OPT_STR, &a->selector, "pointwise (the alignment model's score) or pairwise (a tournament of the pairwise\n"
                                               "model over every pair of candidates: train --pairwise; tables plans/explore_pairwise_n<N>.tbl)"},
        {"constrained", SD_OPT_BOOL, &o->constrained, "constrained decoding: sample only valid descriptions (a token trie)"},
        {"no-align", SD_OPT_BOOL, &o->no_align, "rank by the generator's log-probability, without the alignment model"},
        {"out", SD_OPT_STR, &a->out, "table path for a single-n run (default ws/explore.tbl)"},
        {"feedback-shrink", SD_OPT_FLOAT, &a->fb_m, "also write plans/explore_feedback_n<N>.tbl: the alignment score shrunk toward observed\n"
                                                    "feedback with this strength in pseudo-exposures (e.g. 10; 0 = off)"},
        {"seed", SD_OPT_INT, &a->seed, "sampling seed"},
    };
    RETURN_TABLE(out, t);
}

int sd_plan_check(sd_plan_args *a, const char *d, sd_err *err) {
    pl_opts *o = &a->o;
    if (a->sweep) {
        if (pl_parse_sweep(a->sweep, o, err)) return err->code = SD_ERR_USAGE;
    } else {
        if (a->n < 1 || a->n > 1024) return USAGE("%sn %d must be in 1..1024", d, a->n);
        o->n_sweep[0] = a->n;
        o->n_count = 1;
    }
    if (a->shard) {
        int i = 0, k = 0;
        char tail;
        if (sscanf(a->shard, "%d/%d%c", &i, &k, &tail) != 2 || k < 1 || i < 1 || i > k)
            return USAGE("%sshard '%.40s': expected I/N with 1 <= I <= N", d, a->shard);
        o->shard = i - 1;
        o->n_shards = k;
    }
    if (!(o->temperature >= 0)) return USAGE("%stemperature must be >= 0", d);
    if (o->top_k < 0) return USAGE("%stop-k %d must be >= 0 (0 = off)", d, o->top_k);
    if (!(o->top_p > 0 && o->top_p <= 1)) return USAGE("%stop-p must be in (0, 1]", d);
    if (a->out && a->sweep) return USAGE("%sout names one table; %sn-sweep writes one per n into ws/plans/", d, d);
    if (!(a->fb_m >= 0 && a->fb_m <= 1e6)) return USAGE("%sfeedback-shrink must be in 0..1e6", d);
    if (a->fb_m > 0 && (o->no_align || !strcmp(a->gen, "single")))
        return USAGE("%sfeedback-shrink needs the alignment model and the novelty generator", d);
    o->feedback_m = a->fb_m;
    o->generator = a->gen;
    o->selector = a->selector;
    o->out = a->out;
    o->seed = (uint64_t)a->seed;
    return SD_OK;
}

/* ---------------------------------------------------------------- eval and report */

const sd_stage_text sd_stage_eval = {
    "eval", "eval --ws DIR [--serve S] [--bootstrap B] [--depth L] [--min-users U] [--json]",
    "Serves every evaluated user (full train-window context, a test-window event) from each arm:\n"
    "random, most popular, transition and back-off counts, the feedback-rate table (journeys.bin),\n"
    "the two oracles (world only) and every table in DIR/plans/, each the first clusters of its\n"
    "ranking the user never interacted with. Prints the arms x metrics with 95% bootstrap\n"
    "intervals, the same by context support, and writes DIR/metrics.json."};

const sd_stage_text sd_stage_report = {
    "report", "report --ws DIR [--rerun]",
    "Writes DIR/report.html (self-contained: inline SVG and CSS, no JavaScript) from\n"
    "DIR/metrics.json, running the evaluation first when metrics.json is absent (or --rerun)."};

void sd_eval_args_init(sd_eval_args *a) {
    ev_opts def = EV_OPTS_DEFAULT;
    *a = (sd_eval_args){.serve = def.serve, .bootstrap = def.bootstrap, .k = 0, .depth = def.depth,
                        .min_users = def.min_users, .seed = (int64_t)def.seed, .shrink = (float)def.shrink};
}

int sd_eval_opts(sd_eval_args *a, int report, sd_opt *out) {
    const sd_opt t[] = {
        {"serve", SD_OPT_INT, &a->serve, "clusters served per user (S)"},
        {"bootstrap", SD_OPT_INT, &a->bootstrap, "bootstrap resamples for the 95% intervals (0: none)"},
        {"seed", SD_OPT_I64, &a->seed, "seed of the bootstrap and of the random baseline"},
        {"k", SD_OPT_INT, &a->k, "context length K (0: from the tables, else 2)"},
        {"depth", SD_OPT_INT, &a->depth, "clusters asked of each arm before the per-user filter (0: all M)"},
        {"min-users", SD_OPT_INT, &a->min_users, "feedback-rate arm: tuples backed by fewer users are ignored"},
        {"shrink", SD_OPT_FLOAT, &a->shrink, "shrunk-feedback arm: prior strength in pseudo-exposures (as plan --feedback-shrink)"},
        {"positive", SD_OPT_STR, &a->positive, "positive engagement rule (rating:R,watch:W; default: the workspace's)"},
        {"rerun", SD_OPT_BOOL, &a->rerun, "recompute metrics.json even when it exists"},
    };
    return put_opts(out, t, sizeof t / sizeof t[0] - (report ? 0 : 1));
}

int sd_eval_check(const sd_eval_args *a, const char *d, sd_err *err) {
    if (a->serve < 1) return USAGE("%sserve must be at least 1", d);
    if (a->serve > TBL_TOP_MAX) return USAGE("%sserve must be at most %d (a table slot's clusters)", d, TBL_TOP_MAX);
    if (a->bootstrap < 0) return USAGE("%sbootstrap must be >= 0", d);
    if (a->k < 0 || a->k > EV_MAX_K) return USAGE("%sk must be in 0..%d", d, EV_MAX_K);
    if (a->depth < 0) return USAGE("%sdepth must be >= 0", d);
    if (a->min_users < 1) return USAGE("%smin-users must be at least 1", d);
    if (!(a->shrink >= 0 && a->shrink <= 1e6)) return USAGE("%sshrink must be in 0..1e6", d);
    return SD_OK;
}

int sd_eval_run(const char *ws, const char *eval_ws, const sd_eval_args *a, int mpi, ev_eval_run *r, sd_err *err) {
    ds_positive_rule rule;
    int rc = jr_resolve_rule(ws, a->positive, &rule, err);
    if (rc) return rc;
    ev_opts o = {.serve = a->serve, .bootstrap = a->bootstrap, .seed = (uint64_t)a->seed, .depth = a->depth,
                 .min_users = a->min_users, .shrink = a->shrink, .mpi = mpi};
    return ev_eval_workspace(eval_ws, &o, a->k, &rule, r, err);
}
