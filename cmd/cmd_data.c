/* cmd_data.c - `serendip ingest` (MovieLens, RecBole atomic files or a generic CSV log -> ws/dataset.bin) and
 * `serendip split` (global or per-user temporal split -> ws/split.json). */
#include "cmd.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serendip/csv.h"
#include "serendip/dataset.h"
#include "serendip/ingest.h"

/* Prints a cJSON object on stdout and frees it. */
static void print_json(cJSON *j) {
    char *s = cJSON_Print(j);
    puts(s);
    free(s);
    cJSON_Delete(j);
}

int cmd_ingest(int argc, char **argv) {
    const char *ws = NULL, *ml = NULL, *rb = NULL, *ratings = NULL, *items = NULL, *sep = ",", *ids = "auto";
    const char *user_col = "userId", *item_col = "movieId", *rating_col = "rating", *ts_col = "timestamp";
    const char *watch_col = "", *title_col = "title", *tags_col = "genres";
    int no_header = 0, json = 0;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder (created if needed); writes dataset.bin"},
        {"movielens", FL_STR, &ml, "MovieLens folder: 100k, 1M, 10M, latest/20M/25M/32M (detected; a folder with one RecBole .inter is read as --recbole)"},
        {"recbole", FL_STR, &rb, "RecBole atomic files: a NAME.inter (or a folder with one) and NAME.item beside it (optional)"},
        {"ratings", FL_STR, &ratings, "generic log: one event per line (instead of --movielens)"},
        {"items", FL_STR, &items, "generic catalogue (optional)"},
        {"sep", FL_STR, &sep, "separator of the generic files: one byte, \\t, or two bytes such as ::"},
        {"no-header", FL_BOOL, &no_header, "generic files have no header: columns are 1-based numbers"},
        {"user-col", FL_STR, &user_col, "user id column"},
        {"item-col", FL_STR, &item_col, "item id column, in both files"},
        {"ids", FL_STR, &ids, "generic ids: auto (strings; a side whose ids are all integers keeps integers) or int (integers only)"},
        {"rating-col", FL_STR, &rating_col, "rating column (\"\" for none; empty cells = no rating)"},
        {"ts-col", FL_STR, &ts_col, "time column: unix seconds or YYYY-MM-DD[ HH:MM[:SS]] UTC"},
        {"watch-col", FL_STR, &watch_col, "watch-fraction column in [0,1] (\"\" for none)"},
        {"title-col", FL_STR, &title_col, "catalogue title column"},
        {"tags-col", FL_STR, &tags_col, "catalogue tags column ('|'-separated)"},
        {"json", FL_BOOL, &json, "print the summary as JSON"},
        {0},
    };
    int rc = fl_parse("ingest --ws DIR (--movielens PATH | --recbole PATH | --ratings FILE [--items FILE] [column flags])",
                      "Reads interaction logs and a catalogue into the workspace dataset (dataset.bin).", specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    if (!!ml + !!rb + !!ratings != 1) return cmd_usage_error(argv[0], "give exactly one of --movielens PATH, --recbole PATH or --ratings FILE");
    if (!ratings && items) return cmd_usage_error(argv[0], "--items goes with --ratings");
    if (strcmp(ids, "auto") && strcmp(ids, "int")) return cmd_usage_error(argv[0], "--ids must be auto or int, not '%s'", ids);
    if (!strcmp(sep, "\\t") || !strcmp(sep, "tab")) sep = "\t";
    if (!*sep || strlen(sep) > 2) return cmd_usage_error(argv[0], "--sep must be one byte, \\t or a two-byte separator like ::");

    sd_err err = {0};
    ds_dataset d;
    ingest_report rep = {0};
    if (ml) rc = ingest_movielens(ml, &d, &rep, &err);
    else if (rb) rc = ingest_recbole(rb, &d, &rep, &err);
    else {
        ingest_csv_opts o = {.ratings = ratings, .items = items, .sep = sep, .no_header = no_header, .user_col = user_col,
                             .item_col = item_col, .ts_col = ts_col, .rating_col = rating_col, .watch_col = watch_col,
                             .title_col = title_col, .tags_col = tags_col, .int_ids = !strcmp(ids, "int")};
        rc = ingest_csv(&o, &d, &rep, &err);
    }
    if (rc) return cmd_fail(&err);
    char *path = sd_path_join(ws, DS_FILE);
    if (!(rc = sd_mkdir_p(ws, &err))) rc = ds_save(&d, path, &err);
    ds_free(&d);
    if (rc) {
        free(path);
        return cmd_fail(&err);
    }
    double rows = (double)(rep.rating_rows + rep.catalogue_rows + rep.tag_rows);
    double rate = rep.seconds > 0 ? rows / rep.seconds : 0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "layout", rep.layout);
        cJSON_AddNumberToObject(j, "users", (double)rep.n_users);
        cJSON_AddNumberToObject(j, "items", (double)rep.n_items);
        cJSON_AddNumberToObject(j, "interactions", (double)rep.n_events);
        cJSON_AddNumberToObject(j, "unknown_items", (double)rep.n_unknown_items);
        cJSON_AddStringToObject(j, "user_ids", rep.string_user_ids ? "string" : "integer");
        cJSON_AddStringToObject(j, "item_ids", rep.string_item_ids ? "string" : "integer");
        cJSON_AddNumberToObject(j, "catalogue_rows", (double)rep.catalogue_rows);
        cJSON_AddNumberToObject(j, "tag_rows", (double)rep.tag_rows);
        cJSON_AddNumberToObject(j, "tag_rows_ignored", (double)rep.tag_rows_ignored);
        cJSON_AddNumberToObject(j, "seconds", rep.seconds);
        cJSON_AddNumberToObject(j, "rows_per_second", rate);
        cJSON_AddStringToObject(j, "dataset", path);
        print_json(j);
    } else {
        printf("ingested %s (%s)\n", ml ? ml : rb ? rb : ratings, rep.layout);
        printf("  raw ids        users %s, items %s\n", rep.string_user_ids ? "string" : "integer", rep.string_item_ids ? "string" : "integer");
        printf("  users          %lld\n", (long long)rep.n_users);
        printf("  items          %lld (catalogue rows %lld)\n", (long long)rep.n_items, (long long)rep.catalogue_rows);
        printf("  events         %lld\n", (long long)rep.n_events);
        printf("  unknown items  %lld (rated but absent from the catalogue; kept)\n", (long long)rep.n_unknown_items);
        if (rep.tag_rows)
            printf("  user tags      %lld rows (%lld items' tags unused: not in the catalogue)\n", (long long)rep.tag_rows,
                   (long long)rep.tag_rows_ignored);
        printf("  speed          %.0f rows/s (%.0f rows in %.3f s, %.1f MB)\n", rate, rows, rep.seconds, rep.bytes / 1e6);
        printf("wrote %s\n", path);
    }
    free(path);
    return 0;
}

/* "YYYY-MM-DD HH:MM" (UTC) of t. */
static const char *utc(int64_t t, char *buf, size_t n) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M", &tm)) snprintf(buf, n, "%lld", (long long)t);
    return buf;
}

int cmd_split(int argc, char **argv) {
    const char *ws = NULL, *train_end = NULL, *valid_end = NULL, *per_user = NULL, *per_user_valid = NULL;
    float train_frac = 0.8f, valid_frac = 0.1f;
    int json = 0;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder with dataset.bin; writes split.json"},
        {"train-end", FL_STR, &train_end, "global: end of the train window (exclusive): YYYY-MM-DD[ HH:MM[:SS]] UTC or unix seconds"},
        {"valid-end", FL_STR, &valid_end, "global: end of the valid window (exclusive); the rest is test"},
        {"train-frac", FL_FLOAT, &train_frac, "global: train window as a fraction of the time range (without --train-end)"},
        {"valid-frac", FL_FLOAT, &valid_frac, "global: valid window as a fraction of the time range"},
        {"per-user", FL_STR, &per_user,
         "per-user split instead: each user's own last:N events or last frac:F of their events (rounded up) are test; "
         "events tied in time with the last earlier event stay before the cut (the window can hold fewer), "
         "and every user keeps at least one train event (a one-event user is all train)"},
        {"per-user-valid", FL_STR, &per_user_valid, "with --per-user: the last:M or frac:G events just before the test window are valid"},
        {"json", FL_BOOL, &json, "print the windows as JSON"},
        {0},
    };
    int rc = fl_parse("split --ws DIR [--train-end DATE --valid-end DATE | --train-frac X --valid-frac X | --per-user last:N|frac:F "
                      "[--per-user-valid last:M|frac:G]]",
                      "Temporal split of the events into train / valid / test windows (split.json): global (one cut in time, the "
                      "default) or per user (each user's own last events). See docs/evaluation.md, \"Splits\".",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    if (!train_end != !valid_end) return cmd_usage_error(argv[0], "give both --train-end and --valid-end, or neither");
    if (per_user_valid && !per_user) return cmd_usage_error(argv[0], "--per-user-valid goes with --per-user");
    if (per_user && (train_end || train_frac != 0.8f || valid_frac != 0.1f))
        return cmd_usage_error(argv[0], "--per-user replaces the global flags --train-end / --valid-end / --train-frac / --valid-frac");
    sd_err err = {0};
    ds_user_window wt = {0}, wv = {0};
    if (per_user && ds_user_window_parse(per_user, &wt, &err)) return cmd_usage_error(argv[0], "--per-user: %s", err.msg);
    if (per_user_valid && ds_user_window_parse(per_user_valid, &wv, &err)) return cmd_usage_error(argv[0], "--per-user-valid: %s", err.msg);
    ds_split s = {0};
    if (train_end) {
        if (csv_parse_time(train_end, &s.train_end)) return cmd_usage_error(argv[0], "--train-end '%s' is not a date or unix time", train_end);
        if (csv_parse_time(valid_end, &s.valid_end)) return cmd_usage_error(argv[0], "--valid-end '%s' is not a date or unix time", valid_end);
        if (s.valid_end < s.train_end) return cmd_usage_error(argv[0], "--valid-end is before --train-end");
    }
    ds_dataset d = {0};
    char *dpath = sd_path_join(ws, DS_FILE), *spath = sd_path_join(ws, DS_SPLIT_FILE);
    uint64_t hash = 0;
    rc = ds_load(&d, dpath, &err);
    if (!rc) rc = sd_hash_file(dpath, &hash, &err);
    if (!rc && per_user) rc = ds_split_per_user(&d, wt, wv, &s, &err);
    else if (!rc && !train_end) rc = ds_split_by_fraction(&d, train_frac, valid_frac, &s, &err);
    s.dataset_hash = hash;
    if (!rc) rc = ds_split_save(&s, spath, &err);
    if (rc) {
        if (d.events || d.n_users) ds_free(&d);
        ds_split_free(&s);
        free(dpath);
        free(spath);
        return cmd_fail(&err);
    }
    ds_split_counts c;
    ds_split_count(&d, &s, &c);
    const char *names[3] = {"train", "valid", "test"};
    char desc[256], a[32], b[32];
    ds_split_describe(&s, desc, sizeof desc);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "kind", per_user ? "per-user" : "global");
        if (per_user) {
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
        print_json(j);
    } else if (per_user) {
        printf("%s\n", desc);
        printf("%-6s %10s %8s\n", "window", "events", "users");
        for (int w = 0; w < 3; w++) printf("%-6s %10lld %8lld\n", names[w], (long long)c.events[w], (long long)c.users[w]);
        printf("wrote %s\n", spath);
    } else {
        int64_t from[3] = {d.ts_min, s.train_end, s.valid_end}, to[3] = {s.train_end, s.valid_end, d.ts_max < INT64_MAX ? d.ts_max + 1 : INT64_MAX};
        printf("%-6s %-16s   %-16s %10s %8s\n", "window", "from (UTC)", "to (exclusive)", "events", "users");
        for (int w = 0; w < 3; w++) {
            printf("%-6s %-16s", names[w], utc(from[w], a, sizeof a));
            printf(" - %-16s %10lld %8lld\n", utc(to[w], b, sizeof b), (long long)c.events[w], (long long)c.users[w]);
        }
        printf("wrote %s\n", spath);
    }
    ds_split_free(&s);
    ds_free(&d);
    free(dpath);
    free(spath);
    return 0;
}
