/* cmd_world.c - `serendip world`: generate the embedded synthetic world into a workspace. */
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
    world_params p;
    sd_err err = {0};
    const char *preset = find_preset(argc, argv);
    if (world_params_preset(&p, preset, &err)) return cmd_fail(&err);
    if (!preset) preset = "default";
    const char *ws = NULL;
    int64_t seed = (int64_t)p.seed, users = p.n_users, items = p.n_items;
    int topics = p.n_topics, subtopics = p.n_subtopics, days = p.days, json = 0;
    float explore = p.explore_prob, sessions = p.sessions_mean, sharing = p.word_sharing;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder (created if missing)"},
        {"preset", FL_STR, &preset,
         "default, or paper (40x19 = 760 subtopics, 100000 users, 20000 items); other flags override it"},
        {"seed", FL_I64, &seed, "random seed: the same seed gives byte-identical files"},
        {"users", FL_I64, &users, "number of users"},
        {"items", FL_I64, &items, "number of items (at least topics x subtopics)"},
        {"topics", FL_INT, &topics, "hidden top-level topics"},
        {"subtopics", FL_INT, &subtopics, "hidden subtopics per topic"},
        {"days", FL_INT, &days, "length of the log in days (starting 2023-01-01 UTC)"},
        {"explore", FL_FLOAT, &explore, "mean probability that a session explores a new subtopic"},
        {"sessions", FL_FLOAT, &sessions, "median number of sessions per user"},
        {"word-sharing", FL_FLOAT, &sharing,
         "[0,1] probability that an interest's theme word is its taste community's (0 = unrelated words)"},
        {"json", FL_BOOL, &json, "print the summary as JSON"},
        {0},
    };
    int rc = fl_parse("world --ws DIR [flags]",
                      "Generates the embedded synthetic world: a hidden topic hierarchy, items with titles and tags,\n"
                      "users whose interests drift and who explore, and their interaction log. Writes\n"
                      "DIR/dataset.bin and the ground truth DIR/world_truth.bin (see docs/world.md).\n"
                      "--preset paper builds the papers' scale (~761 level-2 interests, 578k contexts for K = 2):\n"
                      "  serendip world --ws W --preset paper && serendip split --ws W &&\n"
                      "  serendip cluster --ws W --clusters 760 --top 40",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    p.seed = (uint64_t)seed;
    p.n_users = users;
    p.n_items = items;
    p.n_topics = topics;
    p.n_subtopics = subtopics;
    p.days = days;
    p.explore_prob = explore;
    p.sessions_mean = sessions;
    p.word_sharing = sharing;
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
