/* cmd_journeys.c - `serendip journeys`: journeys, transitions and collective feedback of a
 * workspace (the work is jr_run in src/journeys/). */
#include "cmd.h"

#include "serendip/journeys.h"

int cmd_journeys(int argc, char **argv) {
    const char *ws = NULL, *positive = "rating:4,watch:0.7";
    int k = JR_K_DEFAULT;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder"},
        {"k", FL_INT, &k, "context length K: the last K distinct positive clusters (1..4)"},
        {"positive", FL_STR, &positive, "positive engagement: rating:X and/or watch:X (comma-separated)"},
        {0},
    };
    int rc = fl_parse("journeys --ws DIR [--k 2] [--positive RULE]",
                      "Per-user journeys over level-2 clusters (train window), transitions (last K distinct positive\n"
                      "clusters -> next) and collective feedback per (context, candidate). Writes journeys.bin and\n"
                      "feedback.tsv.",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    if (k < 1 || k > JR_K_MAX) return cmd_usage_error(argv[0], "--k %d is not in 1..%d", k, JR_K_MAX);
    sd_err err = {0};
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    if (jr_parse_positive(positive, &rule, &err)) return cmd_fail(&err);
    jr_journeys j;
    if (jr_run(ws, k, &rule, &j, &err)) return cmd_fail(&err);
    int64_t users_with = 0;
    for (int64_t u = 0; u < j.n_users; u++) users_with += j.journey_off[u + 1] > j.journey_off[u];
    int64_t kept3 = 0;
    for (int64_t i = 0; i < j.n_feedback; i++) kept3 += j.feedback[i].users >= 3;
    printf("journeys: K = %d, positive = rating >= %g or watch >= %g, window: %s\n", j.k, (double)rule.min_rating,
           (double)rule.min_watch, j.train_end == INT64_MAX ? "all events" : "train");
    printf("  users with a journey   %lld of %lld\n", (long long)users_with, (long long)j.n_users);
    printf("  journey steps          %lld (%.1f per user)\n", (long long)j.n_steps,
           users_with ? (double)j.n_steps / (double)users_with : 0.0);
    printf("  transitions            %lld\n", (long long)j.n_transitions);
    printf("  novel transitions      %lld (%.1f%%)\n", (long long)j.n_novel,
           j.n_transitions ? 100.0 * (double)j.n_novel / (double)j.n_transitions : 0.0);
    printf("  feedback tuples        %lld (%lld backed by >= 3 users)\n", (long long)j.n_feedback, (long long)kept3);
    printf("  wrote %s/%s and %s/%s\n", ws, JR_FILE, ws, JR_FEEDBACK_TSV);
    jr_free(&j);
    return 0;
}
