/* cmd_journeys.c - `serendip journeys`: journeys, transitions and collective feedback of a
 * workspace (the work is jr_run in src/journeys/; the flags and checks are stage.h's). */
#include "cmd.h"

#include "serendip/journeys.h"

int cmd_journeys(int argc, char **argv) {
    sd_journeys_args a;
    sd_journeys_args_init(&a);
    const char *ws = NULL;
    fl_spec opts[SD_STAGE_OPTS];
    const fl_spec extra[] = {
        {0},
    };
    int rc = cmd_stage_parse(&sd_stage_journeys, &ws, "workspace folder", opts, sd_journeys_opts(&a, opts), extra, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    sd_err err = {0};
    if (sd_journeys_check(&a, "--", &err)) return cmd_stage_fail(argv[0], &err);
    const int k = a.k;
    const ds_positive_rule rule = a.rule;
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
