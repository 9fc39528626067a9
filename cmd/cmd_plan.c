/* cmd_plan.c - `serendip plan` (best-of-n over every context into the explore table; the work is
 * pl_plan in src/plan/). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "serendip/models.h"
#include "serendip/mpi.h"
#include "serendip/plan.h"
#include "serendip/table.h"

int cmd_plan(int argc, char **argv) {
    const char *ws = NULL, *sweep = NULL, *shard = NULL, *gen = "novelty", *out = NULL, *selector = "pointwise";
    pl_opts o;
    pl_opts_default(&o);
    int n = 16, seed = 1, json = 0, mpi = 0;
    float fb_m = 0;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder (needs taxonomy, journeys, models)"},
        {"n", FL_INT, &n, "candidates sampled per context (best-of-n)"},
        {"n-sweep", FL_STR, &sweep, "comma-separated n values: one table per n in ws/plans/ (e.g. 1,2,4,8,16)"},
        {"temperature", FL_FLOAT, &o.temperature, "sampling temperature of the novelty model"},
        {"top-k", FL_INT, &o.top_k, "sample only from the k most likely tokens (0 = off)"},
        {"top-p", FL_FLOAT, &o.top_p, "nucleus sampling: the most likely tokens holding this probability (1 = off)"},
        {"top", FL_INT, &o.top, "clusters kept per context"},
        {"shard", FL_STR, &shard, "plan only slice I of N, written as ws/explore.tbl.I-of-N (join with plan-merge)"},
        {"generator", FL_STR, &gen, "proposing model: novelty, single (the baseline), or rl / rl_guarded (serendip rl)"},
        {"selector", FL_STR, &selector, "pointwise (the alignment model's score) or pairwise (a tournament of the pairwise\n"
                                        "model over every pair of candidates: train --pairwise; tables plans/explore_pairwise_n<N>.tbl)"},
        {"constrained", FL_BOOL, &o.constrained, "constrained decoding: sample only valid descriptions (a token trie)"},
        {"no-align", FL_BOOL, &o.no_align, "rank by the generator's log-probability, without the alignment model"},
        {"out", FL_STR, &out, "table path for a single-n run (default ws/explore.tbl)"},
        {"feedback-shrink", FL_FLOAT, &fb_m, "also write plans/explore_feedback_n<N>.tbl: the alignment score shrunk toward observed\n"
                                            "feedback with this strength in pseudo-exposures (e.g. 10; 0 = off)"},
        {"seed", FL_INT, &seed, "sampling seed"},
        {"json", FL_BOOL, &json, "print the run report as JSON"},
        {"mpi", FL_BOOL, &mpi, "run on MPI (under mpirun/srun): ranks split the contexts, rank 0 writes the table"},
        {0},
    };
    int rc = fl_parse("plan --ws DIR [--n N | --n-sweep LIST] [flags]",
                      "Best-of-n over every context: samples n novel-cluster descriptions per context from the novelty\n"
                      "model, scores them with the alignment model and keeps the best in the explore table.",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    sd_err err = {0};
    if (sweep) {
        if (pl_parse_sweep(sweep, &o, &err)) return cmd_usage_error(argv[0], "%s", err.msg);
    } else {
        if (n < 1 || n > 1024) return cmd_usage_error(argv[0], "--n %d must be in 1..1024", n);
        o.n_sweep[0] = n;
        o.n_count = 1;
    }
    if (shard) {
        int i = 0, k = 0;
        char tail;
        if (sscanf(shard, "%d/%d%c", &i, &k, &tail) != 2 || k < 1 || i < 1 || i > k)
            return cmd_usage_error(argv[0], "--shard '%s': expected I/N with 1 <= I <= N", shard);
        o.shard = i - 1;
        o.n_shards = k;
    }
    if (!(o.temperature >= 0)) return cmd_usage_error(argv[0], "--temperature must be >= 0");
    if (o.top_k < 0) return cmd_usage_error(argv[0], "--top-k %d must be >= 0 (0 = off)", o.top_k);
    if (!(o.top_p > 0 && o.top_p <= 1)) return cmd_usage_error(argv[0], "--top-p must be in (0, 1]");
    if (out && sweep) return cmd_usage_error(argv[0], "--out names one table; --n-sweep writes one per n into ws/plans/");
    if (!(fb_m >= 0 && fb_m <= 1e6)) return cmd_usage_error(argv[0], "--feedback-shrink must be in 0..1e6");
    if (fb_m > 0 && (o.no_align || !strcmp(gen, "single")))
        return cmd_usage_error(argv[0], "--feedback-shrink needs the alignment model and the novelty generator");
    o.feedback_m = fb_m;
    o.generator = gen;
    o.selector = selector;
    o.out = out;
    o.seed = (uint64_t)seed;
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
