/* cmd_plan_merge.c - `serendip plan-merge`: joins the explore-table shards of one sharded plan run. */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

#include "serendip/table.h"

/* Splits argv into flag arguments (kept in place, argv[0] first) and positional ones (into pos).
 * Every flag of the caller takes a value unless it is --help, -h or written --name=value. */
static int split_positional(int argc, char **argv, char **pos, int *npos) {
    int out = 1;
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--", 2) || !strcmp(a, "-h")) {
            argv[out++] = argv[i];
            if (strcmp(a, "--help") && strcmp(a, "-h") && !strchr(a, '=') && i + 1 < argc) argv[out++] = argv[++i];
        } else {
            pos[(*npos)++] = argv[i];
        }
    }
    return out;
}

int cmd_plan_merge(int argc, char **argv) {
    const char *ws = NULL, *out = NULL;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder (the output defaults to DIR/explore.tbl)"},
        {"out", FL_STR, &out, "merged table file"},
        {0},
    };
    char **pos = sd_calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    argc = split_positional(argc, argv, pos, &npos);
    int rc = fl_parse("plan-merge --ws DIR [--out FILE] SHARD...",
                      "Joins the explore-table shards of one plan run (same parameters and hashes, disjoint ranges\n"
                      "covering every context) into one table, byte-identical to an unsharded run.",
                      specs, argc, argv);
    if (rc) { free(pos); return rc == FL_HELP ? 0 : rc; }
    if (!out && (rc = cmd_need_ws(argv[0], ws))) { free(pos); return rc; }
    if (npos == 0) { free(pos); return cmd_usage_error(argv[0], "give the shard files to merge"); }
    char *dflt = out ? NULL : sd_path_join(ws, TBL_FILE);
    if (!out) out = dflt;
    sd_err err = {0};
    if (tbl_merge((const char *const *)pos, npos, out, &err)) {
        free(pos);
        free(dflt);
        return cmd_fail(&err);
    }
    tbl_table t;
    if (tbl_open(&t, out, &err)) { free(pos); free(dflt); return cmd_fail(&err); }
    printf("merged %d shards into %s\n", npos, out);
    printf("  contexts          %lld (K = %d, M = %d), top %d, n = %d\n", (long long)t.p.n_contexts, t.p.k, t.p.n_clusters,
           t.p.top, t.p.n_samples);
    printf("  planned           %lld valid contexts\n", (long long)t.s.contexts_planned);
    printf("  compliance        %.2f%% of %lld samples\n",
           t.s.samples ? 100.0 * (double)t.s.samples_compliant / (double)t.s.samples : 0.0, (long long)t.s.samples);
    printf("  fallbacks         %lld contexts (%.2f%%)\n", (long long)t.s.contexts_fallback,
           t.s.contexts_planned ? 100.0 * (double)t.s.contexts_fallback / (double)t.s.contexts_planned : 0.0);
    tbl_close(&t);
    free(pos);
    free(dflt);
    return 0;
}
