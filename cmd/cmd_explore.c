/* cmd_explore.c - `serendip explore`: the explore answer for a user, a list of items or a context,
 * from the one answer path (serendip_explore, the public API over an_answer) that the server and
 * the Python package also call. --json prints that answer as is; the text form is printed from it. */
#include "cmd.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/answer.h"
#include "serendip/journeys.h"
#include "serendip/serendip.h"

/* Parses "A,B,..." into at most cap integers in [lo, hi]; returns the count or -1. */
static int parse_list(const char *s, int64_t *out, int cap, int64_t lo, int64_t hi) {
    int n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < lo || v > hi || n == cap) return -1;
        out[n++] = v;
        if (*end == ',' && end[1]) end++;
        else if (*end) return -1;
        s = end;
    }
    return n;
}

/* Splits "A,B,..." (modified in place) into at most cap texts; returns the count or -1. The
 * texts are resolved by serendip_explorer_items, which knows whether item ids are strings. */
static int split_list(char *s, const char **out, int cap) {
    int n = 0;
    while (*s) {
        char *e = strchr(s, ',');
        if (n == cap) return -1;
        out[n++] = s;
        if (!e) break;
        *e = 0;
        s = e + 1;
    }
    return n;
}

static double num(const cJSON *o, const char *k) { return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k)); }
static const char *str(const cJSON *o, const char *k) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
    return s ? s : "";
}

/* The text form of an answer (json as an_answer wrote it). */
static void print_text(const char *json, int kind, int n_history, int k, int items_per) {
    cJSON *j = cJSON_Parse(json);
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(j, "context"), *nov = cJSON_GetObjectItemCaseSensitive(j, "novel"), *c;
    int nctx = cJSON_GetArraySize(ctx);
    if (kind == AN_QUERY_USER && *str(j, "user_raw_id"))
        printf("user %s, context (last %d distinct positive clusters, most recent last):\n", str(j, "user_raw_id"), k);
    else if (kind == AN_QUERY_USER)
        printf("user %.0f, context (last %d distinct positive clusters, most recent last):\n", num(j, "user"), k);
    else if (kind == AN_QUERY_ITEMS)
        printf("history of %d items (%.0f unknown), context (last %d distinct clusters, most recent last):\n", n_history,
               num(j, "unknown_items"), k);
    else printf("context:\n");
    cJSON_ArrayForEach(c, ctx) printf("  %5.0f  %s\n", num(c, "id"), str(c, "description"));
    if (nctx < k)
        printf("%d distinct positive cluster%s, fewer than K = %d: the table has no entry for it\n", nctx, nctx == 1 ? "" : "s",
               k);
    if (cJSON_GetArraySize(nov) == 0) {
        printf("no cluster left that was never interacted with\n");
    } else {
        printf("novel clusters (never interacted with; fallback = not planned for this context):\n");
        printf("  %4s  %5s  %-40s %7s %9s\n", "rank", "id", "description", "align", "logprob");
        int rank = 0;
        cJSON_ArrayForEach(c, nov) {
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(c, "score"), *lp = cJSON_GetObjectItemCaseSensitive(c, "logprob");
            char s1[16] = "      -", s2[16] = "        -";
            if (cJSON_IsNumber(sc)) snprintf(s1, sizeof s1, "%7.3f", sc->valuedouble);
            if (cJSON_IsNumber(lp)) snprintf(s2, sizeof s2, "%9.3f", lp->valuedouble);
            printf("  %4d  %5.0f  %-40s %s %s%s\n", ++rank, num(c, "id"), str(c, "description"), s1, s2,
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "fallback")) ? "  (fallback)" : "");
            const cJSON *items = cJSON_GetObjectItemCaseSensitive(c, "items"), *x;
            if (items_per > 0 && cJSON_GetArraySize(items) == 0) printf("               (every item of this cluster was seen)\n");
            cJSON_ArrayForEach(x, items) {
                if (*str(x, "raw_id")) printf("               - item %s  %s  (score %.3f)\n", str(x, "raw_id"), str(x, "title"), num(x, "score"));
                else printf("               - item %.0f  %s  (score %.3f)\n", num(x, "id"), str(x, "title"), num(x, "score"));
            }
        }
        if (items_per > 0 && !strcmp(str(j, "ranker"), "popularity"))
            printf("items: ranked by popularity within the cluster (no retrieval.bin: run `serendip train` or "
                   "`serendip serve --train-retrieval`)\n");
    }
    cJSON_Delete(j);
}

/* cmd_fail for an error of the public API. */
static int fail_public(const serendip_error *pe) {
    sd_err e = {.code = pe->code};
    snprintf(e.msg, sizeof e.msg, "%s", pe->message);
    return cmd_fail(&e);
}

int cmd_explore(int argc, char **argv) {
    const char *ws = NULL, *clusters = NULL, *history = NULL, *table = NULL, *positive = NULL, *user_str = NULL;
    int json = 0, per = AN_ITEMS_DEFAULT, n = AN_CLUSTERS_DEFAULT;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder"},
        {"user", FL_STR, &user_str, "raw user id (a string id as ingested, or an integer): its context is its last K distinct positive clusters"},
        {"history", FL_STR, &history, "stateless: raw item ids I1,I2,... oldest first, each taken as a positive"},
        {"clusters", FL_STR, &clusters, "context given as cluster ids A,B (K of them, distinct), no history"},
        {"n", FL_INT, &n, "novel clusters in the answer"},
        {"items", FL_INT, &per, "unseen items listed per novel cluster (0: none)"},
        {"table", FL_STR, &table, "explore table (default DIR/explore.tbl)"},
        {"positive", FL_STR, &positive, "positive rule for the user's context (default: the workspace's, from journeys.bin)"},
        {"json", FL_BOOL, &json, "print the answer as JSON (the fields of GET /v1/explore, docs/serving.md)"},
        {0},
    };
    int rc = fl_parse("explore --ws DIR (--user RAW_ID | --history I1,I2,... | --clusters A,B) [--n N] [--items K] "
                      "[--table FILE] [--json]",
                      "The best planned clusters for a user's context that the user never interacted with (no event on\n"
                      "any of their items), walking down the context's ranked list in the explore table; when it runs\n"
                      "out, the most popular clusters the user never interacted with, flagged fallback. Each with its\n"
                      "alignment score, novelty log-probability and top K unseen items (the retrieval model restricted\n"
                      "to the cluster, or popularity within it without retrieval.bin). The same answer as the server's.",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if (per < 0 || per > AN_ITEMS_MAX) return cmd_usage_error(argv[0], "--items must be in 0..%d", AN_ITEMS_MAX);
    if (n < 1 || n > AN_CLUSTERS_MAX) return cmd_usage_error(argv[0], "--n must be in 1..%d", AN_CLUSTERS_MAX);
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    if (!!user_str + !!clusters + !!history != 1)
        return cmd_usage_error(argv[0], "give exactly one of --user, --history and --clusters");
    an_query q = {.clusters = n, .items_per = per};
    int64_t list[AN_HISTORY_MAX];
    int32_t ctx[JR_K_MAX];
    if (user_str) {
        q.kind = AN_QUERY_USER; /* resolved by the public API once the dataset is open */
    } else if (history) {
        q.kind = AN_QUERY_ITEMS, q.items = list;
    } else {
        q.kind = AN_QUERY_CONTEXT, q.context = ctx;
        if ((q.n = parse_list(clusters, list, JR_K_MAX, 0, INT32_MAX)) < 0)
            return cmd_usage_error(argv[0], "--clusters '%s': expected at most %d comma-separated cluster ids", clusters,
                                   JR_K_MAX);
        for (int i = 0; i < q.n; i++) ctx[i] = (int32_t)list[i];
    }
    /* the public API (serendip.h), the same calls as the server's and the Python package's: raw
     * ids typed as text (strings or integers) are resolved by serendip_explorer_user / _items */
    serendip_error perr;
    serendip_explorer *x;
    if (serendip_explorer_open(&x, ws, table, positive, &perr)) return fail_public(&perr);
    if (user_str && (rc = serendip_explorer_user(x, user_str, &q.user, &perr))) {
        serendip_explorer_free(x);
        if (rc == SERENDIP_ERR_USAGE) return cmd_usage_error(argv[0], "--user '%s' is not an integer id", user_str);
        return fail_public(&perr);
    }
    if (history) {
        char *texts = sd_strdup(history);
        const char *raw[AN_HISTORY_MAX];
        q.n = split_list(texts, raw, AN_HISTORY_MAX);
        rc = q.n < 0 ? SERENDIP_ERR_USAGE : serendip_explorer_items(x, raw, q.n, list, &perr);
        free(texts);
        if (rc) {
            serendip_explorer_free(x);
            if (rc != SERENDIP_ERR_USAGE) return fail_public(&perr);
            return cmd_usage_error(argv[0], "--history '%.40s': expected at most %d comma-separated item ids", history,
                                   AN_HISTORY_MAX);
        }
    }
    if (q.kind == AN_QUERY_CONTEXT && q.n != serendip_explorer_k(x)) {
        int k = serendip_explorer_k(x);
        serendip_explorer_free(x);
        return cmd_usage_error(argv[0], "--clusters '%s': the table needs K = %d comma-separated cluster ids", clusters, k);
    }
    serendip_query pq = {.kind = (int)q.kind, .user = q.user, .items = q.items, .context = q.context, .n = q.n,
                         .clusters = q.clusters, .items_per_cluster = q.items_per};
    serendip_answer *res;
    if (serendip_explore(x, NULL, 1, &pq, &res, &perr)) {
        serendip_explorer_free(x);
        return fail_public(&perr);
    }
    size_t len;
    const char *answer = serendip_answer_json(res, &len);
    if (json) fwrite(answer, 1, len, stdout);
    else print_text(answer, q.kind, q.n, serendip_explorer_k(x), per);
    serendip_answer_free(res);
    serendip_explorer_free(x);
    return 0;
}
