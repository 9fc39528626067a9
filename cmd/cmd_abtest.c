/* cmd_abtest.c - `serendip abtest`: the simulated live A/B experiment (src/abtest/, docs/abtest.md). */
#include "cmd.h"
#include "serendip/abtest.h"
#include "serendip/mpi.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Prints the final table of abtest.json: one line per metric, one column per arm. */
static void print_table(const char *path) {
    char *text;
    size_t len;
    sd_err err = {0};
    if (sd_read_file(path, &text, &len, &err)) return;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return;
    const cJSON *arms = cJSON_GetObjectItemCaseSensitive(root, "arms"), *ms = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    const cJSON *a, *m;
    printf("%-44s", "metric (95% bootstrap interval over users)");
    cJSON_ArrayForEach(a, arms) printf(" | %-34.34s", cJSON_GetObjectItemCaseSensitive(a, "name")->valuestring);
    printf("\n");
    cJSON_ArrayForEach(m, ms) {
        const char *key = cJSON_GetObjectItemCaseSensitive(m, "key")->valuestring;
        printf("%-44.44s", cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring);
        cJSON_ArrayForEach(a, arms) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(a, "final"), key);
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(v, "value"), *lo = cJSON_GetObjectItemCaseSensitive(v, "lo"),
                        *hi = cJSON_GetObjectItemCaseSensitive(v, "hi"), *rel = cJSON_GetObjectItemCaseSensitive(v, "rel"),
                        *sig = cJSON_GetObjectItemCaseSensitive(v, "significant");
            char cell[96];
            if (!cJSON_IsNumber(x)) snprintf(cell, sizeof cell, "-");
            else {
                double big = fabs(x->valuedouble) >= 100;
                int n = snprintf(cell, sizeof cell, big ? "%.0f [%.0f,%.0f]" : "%.3f [%.3f,%.3f]", x->valuedouble,
                                 cJSON_IsNumber(lo) ? lo->valuedouble : NAN, cJSON_IsNumber(hi) ? hi->valuedouble : NAN);
                if (cJSON_IsNumber(rel) && n > 0 && (size_t)n < sizeof cell)
                    snprintf(cell + n, sizeof cell - (size_t)n, " %+.1f%%%s", 100 * rel->valuedouble, cJSON_IsTrue(sig) ? "*" : "");
            }
            printf(" | %-34s", cell);
        }
        printf("\n");
    }
    printf("(%% = relative difference to the reference arm, * = its 95%% interval excludes 0)\n");
    /* does the refresh help: the refresh arm against the explore arm */
    cJSON_ArrayForEach(a, arms) {
        const cJSON *fin = cJSON_GetObjectItemCaseSensitive(a, "final");
        int head = 0;
        cJSON_ArrayForEach(m, ms) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(fin, cJSON_GetObjectItemCaseSensitive(m, "key")->valuestring);
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(v, "rel_explore");
            if (!cJSON_IsNumber(r)) continue;
            if (!head++) printf("%s against the explore arm:\n", cJSON_GetObjectItemCaseSensitive(a, "name")->valuestring);
            printf("  %-44.44s %+.2f%% [%+.2f%%, %+.2f%%]%s\n", cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring,
                   100 * r->valuedouble, 100 * cJSON_GetObjectItemCaseSensitive(v, "rel_explore_lo")->valuedouble,
                   100 * cJSON_GetObjectItemCaseSensitive(v, "rel_explore_hi")->valuedouble,
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "significant_explore")) ? " *" : "");
        }
    }
    cJSON_Delete(root);
}

int cmd_abtest(int argc, char **argv) {
    ab_opts o;
    ab_opts_default(&o);
    const char *ws = NULL, *arms_spec = "control,explore,explore-refresh", *out = NULL;
    int json = 0, seed = (int)o.seed, max_users = 0, mpi = 0;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace made by `serendip world` (needs world_truth.bin; explore arms need a plan)"},
        {"days", FL_INT, &o.days, "simulated days"},
        {"arms", FL_STR, &arms_spec,
         "comma-separated arms: control, explore[:TABLE], explore-refresh[:TABLE], oracle, disliked (control,control = A/A)"},
        {"refresh-every", FL_INT, &o.refresh_every, "refresh the explore-refresh arm's table every R days (0 = never)"},
        {"seed", FL_INT, &seed, "experiment seed (arms, every simulated draw, the bootstrap)"},
        {"threads", FL_INT, &o.threads, "threads of the day loop (0 = all; results are identical for any count)"},
        {"bootstrap", FL_INT, &o.bootstrap, "bootstrap replicates over users for the 95% intervals"},
        {"refresh-n", FL_INT, &o.refresh_n, "best-of-n of each refresh's re-plan"},
        {"refresh-steps", FL_INT, &o.refresh_steps, "fine-tuning steps of the alignment model per refresh"},
        {"refresh-lr", FL_FLOAT, &o.refresh_lr, "peak learning rate of those steps"},
        {"lora", FL_INT, &o.lora_rank, "LoRA rank of the refresh fine-tune (0 = full fine-tune)"},
        {"slot-items", FL_INT, &o.model.slot_items, "items shown by the exploration slot per visit"},
        {"max-users", FL_INT, &max_users, "simulate only the first N users (0 = all; no refresh then)"},
        {"out", FL_STR, &out, "output file (default WS/abtest.json)"},
        {"json", FL_BOOL, &json, "print abtest.json instead of the table"},
        {"mpi", FL_BOOL, &mpi, "run on MPI (under mpirun/srun): ranks split the users, rank 0 refreshes and writes"},
        {0},
    };
    int rc = fl_parse("abtest --ws DIR [flags]",
                      "A simulated live A/B experiment on the synthetic world: users split into arms by a hash of\n"
                      "(user, seed); every day each user visits or not (more likely when satisfied), consumes their\n"
                      "interests, and a treatment user also sees the exploration slot, answered by the same function\n"
                      "as GET /v1/explore. The hidden truth decides every response. The explore-refresh arm's table is\n"
                      "rebuilt every R days from the experiment's own feedback (a new dataset version in WS/abtest/v<r>,\n"
                      "journeys, a further fine-tune of the alignment model, a re-plan). Writes WS/abtest.json with\n"
                      "daily and final metrics and 95% bootstrap intervals; `serendip report` plots them.\n"
                      "See docs/abtest.md.",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    if (seed < 0) return cmd_usage_error(argv[0], "--seed %d is negative", seed);
    if (o.threads < 0) return cmd_usage_error(argv[0], "--threads %d is negative", o.threads);
    if (o.bootstrap < 20 || o.bootstrap > 100000) return cmd_usage_error(argv[0], "--bootstrap %d is not in 20..100000", o.bootstrap);
    if (max_users < 0) return cmd_usage_error(argv[0], "--max-users %d is negative", max_users);
    o.seed = (uint64_t)seed;
    o.max_users = max_users;
    o.out = out;
    o.mpi = mpi;
    if ((rc = cmd_mpi_start(argv[0], mpi))) return rc;
    sd_err err = {0};
    ab_arm arms[AB_MAX_ARMS];
    int n_arms = 0;
    if (ab_parse_arms(arms_spec, ws, arms, &n_arms, &err)) return cmd_fail(&err);
    if (o.out && cmd_check_out(o.out)) return 1;
    ab_summary s;
    if (ab_run(ws, arms, n_arms, &o, &s, &err)) return cmd_fail(&err);
    if (cmd_mpi_quiet()) return 0;
    if (json) {
        char *text;
        size_t len;
        if (sd_read_file(s.out, &text, &len, &err)) return cmd_fail(&err);
        fwrite(text, 1, len, stdout);
        printf("\n");
        free(text);
        return 0;
    }
    printf("abtest: %lld users x %d days, %d arms, seed %d, %d threads%s\n", (long long)s.users, o.days, n_arms, seed, s.threads,
           mpi ? " per rank" : "");
    if (mpi) printf("  ranks        %d (each simulates its range of users)\n", sd_mpi_size());
    printf("  simulation   %.1f s (%.0f simulated user-days/s; %lld active user-days)\n", s.simulate_s, s.user_days_per_s,
           (long long)s.active_user_days);
    printf("  refreshes    %d in %.1f s", s.n_refresh, s.refresh_s);
    for (int i = 0; i < s.n_refresh; i++) printf("%s day %d: %.1f s", i ? "," : " (", s.refresh[i].day, s.refresh[i].seconds);
    printf("%s\n", s.n_refresh ? ")" : "");
    printf("  statistics   %.1f s; total %.1f s\n", s.stats_s, s.total_s);
    print_table(s.out);
    printf("wrote %s\n", s.out);
    return 0;
}
