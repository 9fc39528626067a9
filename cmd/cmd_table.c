/* cmd_table.c - `serendip plan-merge` (join sharded explore tables) and `serendip explore`
 * (the novel clusters the explore table holds for a user or a context). */
#include "cmd.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/dataset.h"
#include "serendip/journeys.h"
#include "serendip/retrieve.h"
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

/* One novel cluster of the answer, with its top items (items NULL: not ranked). */
static cJSON *entry_json(const tx_taxonomy *tax, const tbl_entry *e, const ds_dataset *ds, const rt_scored *items,
                         int n_items) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "cluster", e->cluster);
    cJSON_AddStringToObject(o, "desc", tax->desc[e->cluster]);
    cJSON_AddNumberToObject(o, "align_score", e->align_score);
    cJSON_AddNumberToObject(o, "novelty_logprob", e->novelty_logprob);
    if (items) {
        cJSON *a = cJSON_AddArrayToObject(o, "items");
        for (int i = 0; i < n_items; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "item", (double)ds->item_ids[items[i].item]);
            cJSON_AddStringToObject(x, "title", ds_item_title(ds, items[i].item));
            cJSON_AddNumberToObject(x, "score", items[i].score);
            cJSON_AddItemToArray(a, x);
        }
    }
    return o;
}

#define ITEMS_NOTE "no " RT_FILE " in this workspace: items need `serendip train` (or `serendip serve --train-retrieval`)"

/* The top `per` unseen items of each of the n novel clusters e[] from the retrieval model at path
 * (the planned cluster's level below): out[i * per ..] holds cluster i's, cnt[i] their count. The
 * history is dense user u's (u < 0: none, so the model's biases rank the cluster). */
static int rank_items(const char *path, const ds_dataset *ds, const tx_taxonomy *tax, int64_t u, const tbl_entry *e,
                      int n, int per, rt_scored *out, int *cnt, sd_err *err) {
    rt_model m;
    int rc = rt_open(&m, path, err);
    if (rc) return rc;
    if (m.n_items != ds->n_items || m.items_hash != rt_items_hash(ds) || tax->n_items != ds->n_items) {
        rt_close(&m);
        return sd_fail(err, SD_ERR_STATE, "%s was trained on another dataset than the workspace's (rerun `serendip train`)",
                       path);
    }
    int32_t recent[RT_RECENT_MAX], *seen = NULL;
    int nr = 0;
    int64_t ns = 0;
    if (u >= 0) {
        nr = rt_user_recent(ds, u, m.recent, recent);
        seen = sd_malloc((size_t)(ds->user_off[u + 1] - ds->user_off[u] + 1) * sizeof *seen);
        ns = rt_user_seen(ds, u, seen);
    }
    rt_query q;
    rt_query_init(&m, recent, nr, &q);
    for (int i = 0; i < n; i++) {
        cnt[i] = rt_rank(&m, tax, &q, e[i].cluster, seen, ns, NULL, per, out + (size_t)i * (size_t)per);
        if (cnt[i] < 0) cnt[i] = 0;
    }
    free(seen);
    rt_close(&m);
    return SD_OK;
}

int cmd_explore(int argc, char **argv) {
    const char *ws = NULL, *clusters = NULL, *table = NULL;
    int64_t user_raw = -1;
    int json = 0, have_user = 0, per = 5;
    char *user_str = NULL;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder"},
        {"user", FL_STR, &user_str, "raw user id: its context is its last K distinct positive clusters"},
        {"clusters", FL_STR, &clusters, "context given as cluster ids A,B (K of them, distinct)"},
        {"table", FL_STR, &table, "explore table (default DIR/explore.tbl)"},
        {"items", FL_INT, &per, "unseen items listed per novel cluster, from DIR/retrieval.bin (0: none)"},
        {"json", FL_BOOL, &json, "print one JSON object"},
        {0},
    };
    int rc = fl_parse("explore --ws DIR (--user RAW_ID | --clusters A,B) [--items K] [--table FILE] [--json]",
                      "The novel clusters the explore table holds for a user's context or a given context, with their\n"
                      "alignment scores and novelty log-probabilities, and the top K items of each cluster from the\n"
                      "retrieval model, excluding every item the user has seen (--clusters: no history, the model's\n"
                      "popularity bias ranks).",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if (per < 0 || per > RT_K_MAX) return cmd_usage_error(argv[0], "--items must be in 0..%d", RT_K_MAX);
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
    char *pds = sd_path_join(ws, DS_FILE), *pj = sd_path_join(ws, JR_FILE), *prt = sd_path_join(ws, RT_FILE);
    rt_scored *items = NULL;
    int *n_items = NULL, items_note = 0;
    int64_t u = -1;
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
        u = ds_find_user(&ds, user_raw);
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
    if (per > 0 && n > 0) {
        if (!sd_file_exists(prt)) {
            items_note = 1;
        } else {
            if (!have_ds) {
                if (ds_load(&ds, pds, &err)) goto fail;
                have_ds = 1;
            }
            items = sd_malloc((size_t)n * (size_t)per * sizeof *items);
            n_items = sd_calloc((size_t)n, sizeof *n_items);
            if (rank_items(prt, &ds, &tax, u, e, n, per, items, n_items, &err)) goto fail;
        }
    }

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
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(a, entry_json(&tax, &e[i], &ds, items ? items + (size_t)i * (size_t)per : NULL,
                                               items ? n_items[i] : 0));
        if (items_note) cJSON_AddStringToObject(o, "items_note", ITEMS_NOTE);
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
            for (int i = 0; i < n; i++) {
                printf("  %4d  %5d  %-40s %7.3f %9.3f\n", i + 1, e[i].cluster, tax.desc[e[i].cluster],
                       (double)e[i].align_score, (double)e[i].novelty_logprob);
                if (items && n_items[i] == 0) printf("               (every item of this cluster was seen)\n");
                for (int j = 0; items && j < n_items[i]; j++) {
                    const rt_scored *x = &items[(size_t)i * (size_t)per + (size_t)j];
                    printf("               - item %lld  %s  (score %.3f)\n", (long long)ds.item_ids[x->item],
                           ds_item_title(&ds, x->item), (double)x->score);
                }
            }
            if (items_note) printf("items: " ITEMS_NOTE "\n");
        }
    }
    rc = 0;
fail:
    if (rc) rc = cmd_fail(&err);
    if (have_ds) ds_free(&ds);
    if (have_t) tbl_close(&t);
    if (have_tax) tx_free(&tax);
    free(ptax); free(ptbl); free(pds); free(pj); free(prt);
    free(items); free(n_items);
    return rc;
}
