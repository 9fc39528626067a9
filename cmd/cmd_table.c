/* cmd_table.c - `serendip plan-merge` (join sharded explore tables) and `serendip explore`
 * (the novel clusters the explore table holds for a user or a context). */
#include "cmd.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/dataset.h"
#include "serendip/journeys.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"

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

/* ---------------------------------------------------------------- explore */

/* Parses "A,B,..." into at most cap cluster ids; returns the count or -1. */
static int parse_clusters(const char *s, int32_t *out, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX || n == cap) return -1;
        out[n++] = (int32_t)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        s = end;
    }
    return n;
}

/* One novel cluster of the answer. The items of the cluster will be added here by the retrieval
 * stage (restricted item recommender); the JSON object gets an "items" array then. */
static cJSON *entry_json(const tx_taxonomy *tax, const tbl_entry *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "cluster", e->cluster);
    cJSON_AddStringToObject(o, "desc", tax->desc[e->cluster]);
    cJSON_AddNumberToObject(o, "align_score", e->align_score);
    cJSON_AddNumberToObject(o, "novelty_logprob", e->novelty_logprob);
    return o;
}

int cmd_explore(int argc, char **argv) {
    const char *ws = NULL, *clusters = NULL, *table = NULL;
    int64_t user_raw = -1;
    int json = 0, have_user = 0;
    char *user_str = NULL;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder"},
        {"user", FL_STR, &user_str, "raw user id: its context is its last K distinct positive clusters"},
        {"clusters", FL_STR, &clusters, "context given as cluster ids A,B (K of them, distinct)"},
        {"table", FL_STR, &table, "explore table (default DIR/explore.tbl)"},
        {"json", FL_BOOL, &json, "print one JSON object"},
        {0},
    };
    int rc = fl_parse("explore --ws DIR (--user RAW_ID | --clusters A,B) [--table FILE] [--json]",
                      "The novel clusters the explore table holds for a user's context or a given context, with their\n"
                      "alignment scores and novelty log-probabilities.",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    if (!!user_str == !!clusters) return cmd_usage_error(argv[0], "give exactly one of --user and --clusters");
    if (user_str) {
        char *end;
        errno = 0;
        user_raw = strtoll(user_str, &end, 10);
        if (end == user_str || *end || errno) return cmd_usage_error(argv[0], "--user '%s' is not an integer id", user_str);
        have_user = 1;
    }
    sd_err err = {0};
    char *ptax = sd_path_join(ws, TX_FILE), *ptbl = table ? sd_strdup(table) : sd_path_join(ws, TBL_FILE);
    char *pds = sd_path_join(ws, DS_FILE), *pj = sd_path_join(ws, JR_FILE);
    tx_taxonomy tax;
    tbl_table t;
    ds_dataset ds;
    int have_tax = 0, have_t = 0, have_ds = 0;
    rc = 1;
    if (!sd_file_exists(ptax)) {
        sd_fail(&err, SD_ERR_STATE, "%s: no taxonomy in this workspace (run 'serendip cluster')", ptax);
        goto fail;
    }
    if (tx_load(&tax, ptax, &err)) goto fail;
    have_tax = 1;
    if (!sd_file_exists(ptbl)) {
        sd_fail(&err, SD_ERR_STATE, "%s: no explore table (run 'serendip plan')", ptbl);
        goto fail;
    }
    if (tbl_open(&t, ptbl, &err)) goto fail;
    have_t = 1;
    if (t.p.tax_hash != tx_hash(&tax) || t.p.n_clusters != tax.n_clusters) {
        sd_fail(&err, SD_ERR_STATE, "%s was planned on another taxonomy than %s (rerun 'serendip plan')", ptbl, ptax);
        goto fail;
    }
    if (t.p.begin != 0 || t.p.end != t.p.n_contexts) {
        sd_fail(&err, SD_ERR_USAGE, "%s is a shard [%lld, %lld); merge the shards first ('serendip plan-merge')", ptbl,
                (long long)t.p.begin, (long long)t.p.end);
        goto fail;
    }
    const int k = t.p.k;
    int32_t ctx[JR_K_MAX];
    int n_ctx;
    if (have_user) {
        if (ds_load(&ds, pds, &err)) goto fail;
        have_ds = 1;
        int64_t u = ds_find_user(&ds, user_raw);
        if (u < 0) {
            sd_fail(&err, SD_ERR_DATA, "unknown user %lld (not in %s)", (long long)user_raw, pds);
            goto fail;
        }
        ds_positive_rule rule = DS_POSITIVE_DEFAULT;
        jr_journeys j;
        if (sd_file_exists(pj) && jr_load(&j, pj, &err) == SD_OK) { /* the rule the journeys used */
            rule = j.rule;
            jr_free(&j);
        }
        n_ctx = jr_context_at(&ds, &tax, &rule, u, INT64_MAX, k, ctx);
    } else {
        n_ctx = parse_clusters(clusters, ctx, JR_K_MAX);
        if (n_ctx != k) {
            sd_fail(&err, SD_ERR_USAGE, "--clusters '%s': the table needs K = %d comma-separated cluster ids", clusters, k);
            goto fail;
        }
        for (int i = 0; i < k; i++)
            if (ctx[i] >= tax.n_clusters) {
                sd_fail(&err, SD_ERR_DATA, "unknown cluster %d (the taxonomy has 0..%d)", ctx[i], tax.n_clusters - 1);
                goto fail;
            }
        if (!jr_context_valid(ctx, k, tax.n_clusters)) {
            sd_fail(&err, SD_ERR_USAGE, "--clusters '%s': the clusters of a context must be distinct", clusters);
            goto fail;
        }
    }
    const tbl_entry *e = NULL;
    uint32_t flags = 0;
    int n = 0;
    if (n_ctx == k) n = tbl_lookup(&t, jr_context_index(ctx, k, tax.n_clusters), &e, &flags);
    if (n < 0) n = 0;

    if (json) {
        cJSON *o = cJSON_CreateObject();
        if (have_user) cJSON_AddNumberToObject(o, "user", (double)user_raw);
        cJSON *c = cJSON_AddArrayToObject(o, "context");
        for (int i = 0; i < n_ctx; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "cluster", ctx[i]);
            cJSON_AddStringToObject(x, "desc", tax.desc[ctx[i]]);
            cJSON_AddItemToArray(c, x);
        }
        cJSON_AddBoolToObject(o, "complete_context", n_ctx == k);
        cJSON_AddBoolToObject(o, "fallback", (flags & TBL_FLAG_FALLBACK) != 0);
        cJSON *a = cJSON_AddArrayToObject(o, "novel");
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, entry_json(&tax, &e[i]));
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        if (have_user) printf("user %lld, context (last %d distinct positive clusters, most recent last):\n", (long long)user_raw, k);
        else printf("context:\n");
        for (int i = 0; i < n_ctx; i++) printf("  %5d  %s\n", ctx[i], tax.desc[ctx[i]]);
        if (n_ctx < k) {
            printf("the user has %d distinct positive cluster%s, fewer than K = %d: the table has no entry\n", n_ctx,
                   n_ctx == 1 ? "" : "s", k);
        } else if (n == 0) {
            printf("the table holds no novel cluster for this context\n");
        } else {
            printf("novel clusters%s:\n", flags & TBL_FLAG_FALLBACK ? " (fallback: the models gave no valid candidate)" : "");
            printf("  %4s  %5s  %-40s %7s %9s\n", "rank", "id", "description", "align", "logprob");
            for (int i = 0; i < n; i++)
                printf("  %4d  %5d  %-40s %7.3f %9.3f\n", i + 1, e[i].cluster, tax.desc[e[i].cluster],
                       (double)e[i].align_score, (double)e[i].novelty_logprob);
        }
    }
    rc = 0;
fail:
    if (rc) rc = cmd_fail(&err);
    if (have_ds) ds_free(&ds);
    if (have_t) tbl_close(&t);
    if (have_tax) tx_free(&tax);
    free(ptax); free(ptbl); free(pds); free(pj);
    return rc;
}
