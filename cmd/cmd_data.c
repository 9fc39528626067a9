/* cmd_data.c - `serendip ingest` (MovieLens, RecBole atomic files or a generic CSV log -> ws/dataset.bin) and
 * `serendip split` (global or per-user temporal split -> ws/split.json). Their flags, checks and runs are
 * the ingest and split stages of stage.h (shared with serendip_run); this file prints. */
#include "cmd.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serendip/csv.h"
#include "serendip/dataset.h"
#include "serendip/ingest.h"

int cmd_ingest(int argc, char **argv) {
    sd_ingest_args a;
    sd_ingest_args_init(&a);
    const char *ws = NULL;
    int json = 0;
    fl_spec opts[SD_STAGE_OPTS];
    const fl_spec extra[] = {
        {"json", FL_BOOL, &json, "print the summary as JSON"},
        {0},
    };
    int rc = cmd_stage_parse(&sd_stage_ingest, &ws, "workspace folder (created if needed); writes dataset.bin", opts, sd_ingest_opts(&a, opts), extra, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    sd_err err = {0};
    if (sd_ingest_check(&a, "--", &err)) return cmd_stage_fail(argv[0], &err);

    ingest_report rep = {0};
    char *path;
    if (sd_ingest_run(&a, ws, &rep, &path, &err)) return cmd_fail(&err);
    double rows = (double)(rep.rating_rows + rep.catalogue_rows + rep.tag_rows);
    double rate = rep.seconds > 0 ? rows / rep.seconds : 0;
    const char *ml = a.movielens, *rb = a.recbole, *ratings = a.csv.ratings;
    if (json) {
        char *text = sd_ingest_json(&rep, path, 1);
        puts(text);
        free(text);
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
    sd_split_args a;
    sd_split_args_init(&a);
    const char *ws = NULL;
    int json = 0;
    fl_spec opts[SD_STAGE_OPTS];
    const fl_spec extra[] = {
        {"json", FL_BOOL, &json, "print the windows as JSON"},
        {0},
    };
    int rc = cmd_stage_parse(&sd_stage_split, &ws, "workspace folder with dataset.bin; writes split.json", opts, sd_split_opts(&a, opts), extra, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    sd_err err = {0};
    if (sd_split_check(&a, "--", &err)) return cmd_stage_fail(argv[0], &err);
    ds_dataset d;
    ds_split_counts c;
    char *spath;
    if (sd_split_run(&a, ws, &d, &c, &spath, &err)) return cmd_fail(&err);
    const ds_split *sp = &a.s;
    const char *per_user = a.per_user;
    const char *names[3] = {"train", "valid", "test"};
    char desc[256], x[32], y[32];
    ds_split_describe(sp, desc, sizeof desc);
    if (json) {
        char *text = sd_split_json(&a, &c, spath, 1);
        puts(text);
        free(text);
    } else if (per_user) {
        printf("%s\n", desc);
        printf("%-6s %10s %8s\n", "window", "events", "users");
        for (int w = 0; w < 3; w++) printf("%-6s %10lld %8lld\n", names[w], (long long)c.events[w], (long long)c.users[w]);
        printf("wrote %s\n", spath);
    } else {
        int64_t from[3] = {d.ts_min, sp->train_end, sp->valid_end}, to[3] = {sp->train_end, sp->valid_end, d.ts_max < INT64_MAX ? d.ts_max + 1 : INT64_MAX};
        printf("%-6s %-16s   %-16s %10s %8s\n", "window", "from (UTC)", "to (exclusive)", "events", "users");
        for (int w = 0; w < 3; w++) {
            printf("%-6s %-16s", names[w], utc(from[w], x, sizeof x));
            printf(" - %-16s %10lld %8lld\n", utc(to[w], y, sizeof y), (long long)c.events[w], (long long)c.users[w]);
        }
        printf("wrote %s\n", spath);
    }
    ds_split_free(&a.s);
    ds_free(&d);
    free(spath);
    return 0;
}
