/* cmd_plan.c - `serendip plan` (best-of-n over every context into the explore table; the work is
 * pl_plan in src/plan/, the flags and their checks are the plan stage's table in stage.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "serendip/models.h"
#include "serendip/mpi.h"
#include "serendip/plan.h"
#include "serendip/table.h"

int cmd_plan(int argc, char **argv) {
    sd_plan_args a;
    sd_plan_args_init(&a);
    const char *ws = NULL;
    int json = 0, mpi = 0;
    fl_spec opts[SD_STAGE_OPTS];
    const fl_spec extra[] = {
        {"json", FL_BOOL, &json, "print the run report as JSON"},
        {"mpi", FL_BOOL, &mpi, "run on MPI (under mpirun/srun): ranks split the contexts, rank 0 writes the table"},
        {0},
    };
    int rc = cmd_stage_parse(&sd_stage_plan, &ws, "workspace folder (needs taxonomy, journeys, models)", opts, sd_plan_opts(&a, opts), extra, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    sd_err err = {0};
    if (sd_plan_check(&a, "--", &err)) return cmd_stage_fail(argv[0], &err);
    pl_opts o = a.o;
    const char *shard = a.shard;
    if (mpi && shard) return cmd_usage_error(argv[0], "--mpi splits the contexts itself; drop --shard");
    if ((rc = cmd_mpi_start(argv[0], mpi))) return rc;
    o.mpi = mpi;
    pl_report rep;
    if (pl_plan(sd_mpi_test_ws(ws), &o, &rep, &err)) return cmd_fail(&err);
    if (cmd_mpi_quiet()) return 0;
    if (json) {
        char *path = sd_asprintf("%s/plans/plan-%s%s.json", ws, pl_prefix(&o), o.n_shards > 1 ? "-shard" : "");
        char *text;
        if (!sd_read_file(path, &text, NULL, &err)) {
            fputs(text, stdout);
            fputc('\n', stdout);
            free(text);
        }
        free(path);
        return 0;
    }
    printf("planned %lld contexts in %.1fs (%.0f contexts/s, %d threads): sampling %.1fs, alignment scoring %.1fs (%lld pairs)\n",
           (long long)rep.r[0].contexts, rep.total_s, rep.contexts_per_s, sd_num_threads(), rep.sample_s, rep.score_s,
           (long long)rep.scored);
    printf("%6s %-13s %12s %18s %12s  %s\n", "n", "kind", "compliance", "novel cand/ctx", "fallback", "table");
    for (int i = 0; i < rep.count; i++) {
        const pl_result *r = &rep.r[i];
        printf("%6d %-13s %11.1f%% %18.2f %11.2f%%  %s\n", r->n, tbl_kind_name(r->kind), 100 * r->compliance,
               r->contexts ? (double)r->novel_unique / (double)r->contexts : 0, 100 * r->fallback_share, r->path);
    }
    return 0;
}
