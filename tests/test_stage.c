/* test_stage.c - the one definition of each pipeline stage's options (stage.h): every stage's table
 * is what serendip_stage_help lists, line for line; a check names a flag in the caller's style
 * ("--clusters" for the command, "clusters" after "cluster: " in serendip_run) with one wording;
 * checks fill the library structs; and the API's ingest has the command's recbole and ids options
 * (a RecBole file and a string-id CSV written here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/serendip.h"
#include "serendip/stage.h"

static char g_root[64];

/* Room for any stage's args. */
typedef union {
    sd_world_args world;
    sd_ingest_args ingest;
    sd_split_args split;
    sd_cluster_args cluster;
    sd_journeys_args journeys;
    sd_train_args train;
    sd_plan_args plan;
    sd_eval_args eval;
} any_args;

/* The table of stage (its args in *store) into out; returns the entry count. */
static int table_of(const char *stage, any_args *store, sd_opt *out) {
    if (!strcmp(stage, "world")) {
        assert_int_equal(sd_world_args_init(&store->world, NULL, NULL), SD_OK);
        return sd_world_opts(&store->world, out);
    }
    if (!strcmp(stage, "ingest")) return sd_ingest_args_init(&store->ingest), sd_ingest_opts(&store->ingest, out);
    if (!strcmp(stage, "split")) return sd_split_args_init(&store->split), sd_split_opts(&store->split, out);
    if (!strcmp(stage, "cluster")) return sd_cluster_args_init(&store->cluster), sd_cluster_opts(&store->cluster, out);
    if (!strcmp(stage, "journeys")) return sd_journeys_args_init(&store->journeys), sd_journeys_opts(&store->journeys, out);
    if (!strcmp(stage, "train")) return sd_train_args_init(&store->train), sd_train_opts(&store->train, out);
    if (!strcmp(stage, "plan")) return sd_plan_args_init(&store->plan), sd_plan_opts(&store->plan, out);
    sd_eval_args_init(&store->eval);
    return sd_eval_opts(&store->eval, !strcmp(stage, "report"), out);
}

static void test_help_is_the_table(void **state) {
    (void)state;
    static const char *const stages[] = {"world", "ingest", "split", "cluster", "journeys", "train", "plan", "eval", "report"};
    static any_args store;
    for (size_t s = 0; s < sizeof stages / sizeof stages[0]; s++) {
        sd_opt t[SD_STAGE_OPTS];
        int n = table_of(stages[s], &store, t);
        assert_true(n > 0 && n <= SD_STAGE_OPTS);
        const char *help = serendip_stage_help(stages[s]);
        assert_non_null(help);
        /* the option lines, in order, are the table's names */
        const char *line = strstr(help, "\noptions:\n");
        assert_non_null(line);
        line += strlen("\noptions:\n");
        int i = 0;
        for (; *line; i++) {
            assert_true(i < n);
            size_t nl = strlen(t[i].name);
            assert_memory_equal(line, "  ", 2);
            assert_memory_equal(line + 2, t[i].name, nl);
            assert_true(line[2 + nl] == (t[i].type == SD_OPT_BOOL ? ' ' : '='));
            line = strchr(line, '\n');
            assert_non_null(line);
            line++;
        }
        assert_int_equal(i, n);
    }
    assert_null(serendip_stage_help("no-such-stage"));
}

static void test_checks_name_the_flag_in_the_callers_style(void **state) {
    (void)state;
    sd_err err = {0};
    sd_cluster_args c;
    sd_cluster_args_init(&c);
    c.cfg.n_clusters = 0;
    assert_int_equal(sd_cluster_check(&c, "--", &err), SD_ERR_USAGE);
    assert_string_equal(err.msg, "--clusters must be at least 1 (got 0)");
    assert_int_equal(sd_cluster_check(&c, "", &err), SD_ERR_USAGE);
    assert_string_equal(err.msg, "clusters must be at least 1 (got 0)");
    sd_cluster_args_init(&c);
    c.seed = 77;
    assert_int_equal(sd_cluster_check(&c, "--", &err), SD_OK);
    assert_int_equal((int)c.cfg.seed, 77);

    sd_ingest_args g;
    sd_ingest_args_init(&g);
    assert_int_equal(sd_ingest_check(&g, "--", &err), SD_ERR_USAGE); /* no source */
    assert_string_equal(err.msg, "give exactly one of --movielens PATH, --recbole PATH or --ratings FILE");
    g.recbole = "x.inter", g.csv.ratings = "y.csv";
    assert_int_equal(sd_ingest_check(&g, "", &err), SD_ERR_USAGE);
    g.recbole = NULL, g.ids = "strings";
    assert_int_equal(sd_ingest_check(&g, "--", &err), SD_ERR_USAGE);
    assert_string_equal(err.msg, "--ids must be auto or int, not 'strings'");
    g.ids = "int", g.csv.sep = "tab";
    assert_int_equal(sd_ingest_check(&g, "--", &err), SD_OK);
    assert_string_equal(g.csv.sep, "\t");
    assert_int_equal(g.csv.int_ids, 1);

    sd_plan_args p;
    sd_plan_args_init(&p);
    p.shard = "3/2";
    assert_int_equal(sd_plan_check(&p, "--", &err), SD_ERR_USAGE);
    assert_non_null(strstr(err.msg, "--shard '3/2'"));
    sd_plan_args_init(&p);
    p.shard = "2/3", p.n = 5, p.seed = 9, p.gen = "single";
    assert_int_equal(sd_plan_check(&p, "", &err), SD_OK);
    assert_int_equal(p.o.shard, 1);
    assert_int_equal(p.o.n_shards, 3);
    assert_int_equal(p.o.n_count, 1);
    assert_int_equal(p.o.n_sweep[0], 5);
    assert_int_equal((int)p.o.seed, 9);
    assert_string_equal(p.o.generator, "single");

    sd_split_args s;
    sd_split_args_init(&s);
    s.per_user_valid = "last:1";
    assert_int_equal(sd_split_check(&s, "--", &err), SD_ERR_USAGE);
    assert_string_equal(err.msg, "--per-user-valid goes with --per-user");
    sd_split_args_init(&s);
    s.per_user = "last:zero";
    assert_int_equal(sd_split_check(&s, "--", &err), SD_ERR_USAGE);
    assert_memory_equal(err.msg, "--per-user: ", 12);

    sd_eval_args e;
    sd_eval_args_init(&e);
    e.min_users = 0;
    assert_int_equal(sd_eval_check(&e, "", &err), SD_ERR_USAGE);
    assert_string_equal(err.msg, "min-users must be at least 1");
}

/* Writes text into g_root/name; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text) {
    static char p[192];
    snprintf(p, sizeof p, "%s/%s", g_root, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static void test_api_runs_the_same_checks_and_options(void **state) {
    (void)state;
    serendip_error err;
    serendip_workspace *ws = NULL;
    char wpath[128], opt[256];
    snprintf(wpath, sizeof wpath, "%s/ws", g_root);
    assert_int_equal(serendip_workspace_open(&ws, wpath, 1, &err), SERENDIP_OK);
    char *report = NULL;
    const char *const bad[] = {"clusters=0", NULL};
    assert_int_equal(serendip_run(ws, "cluster", bad, NULL, NULL, &report, &err), SERENDIP_ERR_USAGE);
    assert_string_equal(err.message, "cluster: clusters must be at least 1 (got 0)");
    assert_null(report);
    const char *const bad_ids[] = {"ratings=x.csv", "ids=strings", NULL};
    assert_int_equal(serendip_run(ws, "ingest", bad_ids, NULL, NULL, &report, &err), SERENDIP_ERR_USAGE);
    assert_string_equal(err.message, "ingest: ids must be auto or int, not 'strings'");

    /* recbole: string ids, through the shared table */
    write_file("log.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                            "ann\tB1\t5\t1672531200\nann\tB2\t4\t1672617600\nbob\tB1\t3\t1672704000\n"
                            "bob\tB3\t5\t1672790400\ncid\tB2\t4\t1672876800\n");
    snprintf(opt, sizeof opt, "recbole=%s/log.inter", g_root);
    const char *const rb[] = {opt, NULL};
    assert_int_equal(serendip_run(ws, "ingest", rb, NULL, NULL, &report, &err), SERENDIP_OK);
    assert_non_null(report);
    assert_non_null(strstr(report, "\"layout\":\"recbole\""));
    assert_non_null(strstr(report, "\"user_ids\":\"string\""));
    assert_non_null(strstr(report, "\"interactions\":5"));
    serendip_free(report);

    /* ids=int refuses the string user ids that ids=auto reads */
    write_file("log.csv", "user,item,rating,when\nann,1,5,1672531200\nbob,2,4,1672617600\n");
    char ropt[256];
    snprintf(ropt, sizeof ropt, "ratings=%s/log.csv", g_root);
    const char *const csv_auto[] = {ropt, "user_col=user", "item_col=item", "ts_col=when", "ids=auto", NULL};
    assert_int_equal(serendip_run(ws, "ingest", csv_auto, NULL, NULL, &report, &err), SERENDIP_OK);
    assert_non_null(strstr(report, "\"user_ids\":\"string\""));
    assert_non_null(strstr(report, "\"item_ids\":\"integer\""));
    serendip_free(report);
    report = NULL;
    const char *const csv_int[] = {ropt, "user_col=user", "item_col=item", "ts_col=when", "ids=int", NULL};
    assert_int_not_equal(serendip_run(ws, "ingest", csv_int, NULL, NULL, &report, &err), SERENDIP_OK);
    assert_non_null(strstr(err.message, "ann"));
    assert_null(report);
    serendip_workspace_free(ws);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/sd_test_stage_%d", (int)getpid());
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", g_root, g_root);
    if (system(cmd)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_is_the_table),
        cmocka_unit_test(test_checks_name_the_flag_in_the_callers_style),
        cmocka_unit_test(test_api_runs_the_same_checks_and_options),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_root);
    return rc;
}
