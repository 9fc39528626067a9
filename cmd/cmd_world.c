/* cmd_world.c - `serendip world`: generate the embedded synthetic world into a workspace (the flags
 * and their checks are the world stage's table in stage.h, shared with serendip_run). */
#include "cmd.h"
#include "serendip/world.h"

#include <string.h>
#include <time.h>

static void fmt_date(int64_t ts, char *out, size_t n) {
    time_t t = (time_t)ts;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M", &tm);
}

/* The value of --preset in argv ("--preset NAME" or "--preset=NAME"), or NULL. Read before the
 * other flags so that a preset sets the defaults and explicit flags override it. */
static const char *find_preset(int argc, char **argv) {
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) name = argv[++i];
        else if (!strncmp(argv[i], "--preset=", 9)) name = argv[i] + 9;
    }
    return name;
}

int cmd_world(int argc, char **argv) {
    sd_err err = {0};
    sd_world_args w;
    if (sd_world_args_init(&w, find_preset(argc, argv), &err)) return cmd_fail(&err);
    const char *ws = NULL;
    int json = 0;
    fl_spec opts[SD_STAGE_OPTS];
    const fl_spec extra[] = {
        {"json", FL_BOOL, &json, "print the summary as JSON"},
        {0},
    };
    int rc = cmd_stage_parse(&sd_stage_world, &ws, "workspace folder (created if missing)", opts, sd_world_opts(&w, opts), extra, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if (sd_world_check(&w, "--", &err)) return cmd_stage_fail(argv[0], &err);
    const world_params p = w.p;
    const char *preset = w.preset;
    int topics = w.topics, subtopics = w.subtopics;
    world_summary s;
    if ((rc = world_write(&p, ws, &s, &err))) return cmd_fail(&err);
    char a[32], b[32];
    fmt_date(s.ts_min, a, sizeof a);
    fmt_date(s.ts_max, b, sizeof b);
    if (json) {
        printf("{\"users\": %lld, \"items\": %lld, \"interactions\": %lld, \"ts_min\": %lld, \"ts_max\": %lld, "
               "\"positive_share\": %.4f, \"explore_share\": %.4f, \"subtopics\": %d, \"word_sharing\": %.4f, "
               "\"seconds\": %.3f}\n",
               (long long)s.n_users, (long long)s.n_items, (long long)s.n_events, (long long)s.ts_min,
               (long long)s.ts_max, s.positive_share, s.explore_share, topics * subtopics, (double)p.word_sharing, s.seconds);
    } else {
        printf("world: preset %s, seed %llu, %d topics x %d subtopics, word sharing %.2f\n", preset,
               (unsigned long long)p.seed, topics, subtopics, (double)p.word_sharing);
        printf("  users         %lld\n  items         %lld\n  interactions  %lld\n", (long long)s.n_users,
               (long long)s.n_items, (long long)s.n_events);
        printf("  time range    %s .. %s UTC\n", a, b);
        printf("  positive      %.1f%% (rating >= 4)\n  exploration   %.1f%% of events\n", 100 * s.positive_share,
               100 * s.explore_share);
        printf("  wrote         %s/dataset.bin, %s/%s in %.2f s\n", ws, ws, WORLD_TRUTH_FILE, s.seconds);
    }
    return 0;
}
