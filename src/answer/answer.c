/* answer.c - opening a workspace for serving and answering an explore query (answer.h): the table
 * read, the novel-for-the-user filter with its popularity fallback, the items of each cluster
 * (the retrieval model restricted to the cluster, or popularity within it), and the one JSON
 * answer (fields in docs/serving.md), written with the JSON appender (jsonw.h) because the server
 * answers with it on its hot path. */
#include "serendip/answer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/journeys.h"
#include "serendip/jsonw.h"
#include "serendip/manifest.h"

#define MASK_WORDS_MAX 4096 /* seen bitmap on the stack up to 262144 items; beyond, binary search */
_Static_assert(JR_K_MAX == 4, "an_result.context holds JR_K_MAX clusters");
#define MARK_STACK_MAX 4096 /* interacted-cluster marks on the stack up to this many clusters */

/* ---------------------------------------------------------------- construction */

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Sorts a[0..n) and removes duplicates; returns the new length. */
static int64_t sort_unique(int32_t *a, int64_t n) {
    qsort(a, (size_t)n, sizeof *a, cmp_i32);
    int64_t w = 0;
    for (int64_t i = 0; i < n; i++)
        if (!w || a[w - 1] != a[i]) a[w++] = a[i];
    return w;
}

static int cmp_pop(const void *a, const void *b, void *arg) {
    const int64_t *cnt = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (cnt[x] != cnt[y]) return cnt[x] > cnt[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* Item and cluster popularity (events in the dataset), clusters ordered by it. */
static void count_popularity(an_workspace *w) {
    const ds_dataset *d = w->ds;
    w->item_events = sd_calloc((size_t)(d->n_items ? d->n_items : 1), sizeof *w->item_events);
    for (int64_t i = 0; i < d->n_events; i++) w->item_events[d->events[i].item]++;
    int64_t *cnt = sd_calloc((size_t)w->m, sizeof *cnt);
    for (int64_t it = 0; it < d->n_items; it++) {
        int32_t c = w->tax->item_cluster[it];
        if (c >= 0 && c < w->m) cnt[c] += w->item_events[it];
    }
    w->popular = sd_malloc((size_t)w->m * sizeof *w->popular);
    for (int32_t c = 0; c < w->m; c++) w->popular[c] = c;
    qsort_r(w->popular, (size_t)w->m, sizeof *w->popular, cmp_pop, cnt);
    free(cnt);
}

static void precompute_users(an_workspace *w) {
    const ds_dataset *d = w->ds;
    int64_t nu = d->n_users;
    w->uctx = sd_malloc((size_t)(nu ? nu : 1) * (size_t)w->k * sizeof(int32_t));
    w->uctx_n = sd_calloc((size_t)(nu ? nu : 1), 1);
    w->seen_off = sd_malloc((size_t)(nu + 1) * sizeof(int64_t));
    w->seen = sd_malloc((size_t)(d->n_events ? d->n_events : 1) * sizeof(int32_t));
    int64_t at = 0;
    for (int64_t u = 0; u < nu; u++) {
        w->uctx_n[u] = (int8_t)jr_context_at(d, w->tax, &w->rule, u, INT64_MAX, w->k, w->uctx + u * w->k);
        w->seen_off[u] = at;
        at += rt_user_seen(d, u, w->seen + at);
    }
    w->seen_off[nu] = at;
}

int an_new(an_workspace **out, const ds_dataset *ds, const tx_taxonomy *tax, const rt_model *rt, int k,
           const ds_positive_rule *rule, sd_err *err) {
    *out = NULL;
    if (k < 1 || k > JR_K_MAX) return sd_fail(err, SD_ERR_USAGE, "answer: context length %d is not in 1..%d", k, JR_K_MAX);
    if (tax->n_items != ds->n_items)
        return sd_fail(err, SD_ERR_STATE, "answer: the taxonomy has %lld items, the dataset %lld (rerun `serendip cluster`)",
                       (long long)tax->n_items, (long long)ds->n_items);
    if (rt && (rt->n_items != ds->n_items || rt->items_hash != rt_items_hash(ds)))
        return sd_fail(err, SD_ERR_STATE,
                       "answer: the retrieval model was trained on another dataset than the workspace's (rerun `serendip train`)");
    an_workspace *w = sd_calloc(1, sizeof *w);
    w->ds = ds, w->tax = tax, w->rt = rt;
    w->rule = rule ? *rule : DS_POSITIVE_DEFAULT;
    w->k = k, w->m = tax->n_clusters;
    if (rt) {
        int rc = rt_index_build(rt, tax, &w->ix, err);
        if (rc) {
            free(w);
            return rc;
        }
    }
    count_popularity(w);
    precompute_users(w);
    *out = w;
    return SD_OK;
}

/* Opens path as a table that fits tax (the taxonomy it was planned on, a full table). */
static int open_table(tbl_table *t, const char *path, const tx_taxonomy *tax, sd_err *err) {
    if (!sd_file_exists(path)) return sd_fail(err, SD_ERR_STATE, "%s: no explore table (run `serendip plan`)", path);
    int rc = tbl_open(t, path, err);
    if (rc) return rc;
    if (t->p.begin != 0 || t->p.end != t->p.n_contexts) {
        tbl_close(t);
        return sd_fail(err, SD_ERR_USAGE, "%s is a shard [%lld, %lld), not a full table (merge the shards with `serendip "
                       "plan-merge`)", path, (long long)t->p.begin, (long long)t->p.end);
    }
    const char *why = NULL;
    if (t->p.n_clusters != tax->n_clusters || t->p.tax_hash != tx_hash(tax))
        why = "it was planned on another taxonomy than the workspace's (rerun `serendip plan`)";
    else if (t->p.k < 1 || t->p.k > JR_K_MAX)
        why = "its context length is out of range";
    if (why) {
        tbl_close(t);
        return sd_fail(err, SD_ERR_STATE, "%s: %s", path, why);
    }
    return SD_OK;
}

int an_open(an_workspace **out, const char *ws, const an_options *o, sd_err *err) {
    *out = NULL;
    an_options none = {0};
    if (!o) o = &none;
    char *dp = sd_path_join(ws, DS_FILE), *tp = sd_path_join(ws, TX_FILE), *rp = sd_path_join(ws, RT_FILE);
    char *bp = o->table ? sd_strdup(o->table) : sd_path_join(ws, TBL_FILE);
    ds_dataset ds;
    tx_taxonomy tax;
    rt_model rt;
    tbl_table t;
    int have_ds = 0, have_tax = 0, have_rt = 0, have_t = 0, rc;
    ds_positive_rule rule;
    if (o->rule) rule = *o->rule;
    else if ((rc = jr_workspace_rule(ws, &rule, NULL, err))) goto fail;
    if (!sd_file_exists(dp)) {
        rc = sd_fail(err, SD_ERR_STATE, "%s: no dataset in this workspace (run `serendip world` or `serendip ingest`)", dp);
        goto fail;
    }
    if (!sd_file_exists(tp)) {
        rc = sd_fail(err, SD_ERR_STATE, "%s: no taxonomy in this workspace (run `serendip cluster`)", tp);
        goto fail;
    }
    const char *reads[] = {TX_FILE, JR_FILE, RT_FILE, TBL_FILE};
    if ((rc = mf_check(ws, reads, o->table ? 3 : 4, err))) goto fail; /* built from an older dataset */
    if ((rc = ds_load(&ds, dp, err))) goto fail;
    have_ds = 1;
    if ((rc = tx_load(&tax, tp, err))) goto fail;
    have_tax = 1;
    if ((rc = open_table(&t, bp, &tax, err))) goto fail;
    have_t = 1;
    if (sd_file_exists(rp)) {
        if ((rc = rt_open(&rt, rp, err))) goto fail;
        have_rt = 1;
    }
    an_workspace *w;
    if ((rc = an_new(&w, &ds, &tax, have_rt ? &rt : NULL, t.p.k, &rule, err))) goto fail;
    /* the workspace owns the pieces from here: point at its own copies */
    w->own_ds = ds, w->own_tax = tax, w->ds = &w->own_ds, w->tax = &w->own_tax, w->own_ds_ok = w->own_tax_ok = 1;
    if (have_rt) w->own_rt = rt, w->rt = &w->own_rt, w->own_rt_ok = 1;
    if (o->no_table) tbl_close(&t);
    else w->own_table = t, w->table = &w->own_table, w->own_table_ok = 1;
    free(dp), free(tp), free(rp), free(bp);
    *out = w;
    return SD_OK;
fail:
    if (have_t) tbl_close(&t);
    if (have_rt) rt_close(&rt);
    if (have_tax) tx_free(&tax);
    if (have_ds) ds_free(&ds);
    free(dp), free(tp), free(rp), free(bp);
    return rc;
}

void an_free(an_workspace *w) {
    if (!w) return;
    if (w->rt) rt_index_free(&w->ix);
    if (w->own_table_ok) tbl_close(&w->own_table);
    if (w->own_rt_ok) rt_close(&w->own_rt);
    if (w->own_tax_ok) tx_free(&w->own_tax);
    if (w->own_ds_ok) ds_free(&w->own_ds);
    free(w->uctx), free(w->uctx_n), free(w->seen_off), free(w->seen), free(w->popular), free(w->item_events);
    free(w);
}

/* ---------------------------------------------------------------- the per-user filter */

void an_user_clusters(const an_workspace *w, int64_t u, uint8_t *interacted) {
    memset(interacted, 0, (size_t)w->m);
    for (int64_t i = w->seen_off[u]; i < w->seen_off[u + 1]; i++) {
        int32_t c = w->tax->item_cluster[w->seen[i]];
        if (c >= 0 && c < w->m) interacted[c] = 1;
    }
}

int an_select(const an_workspace *w, const uint8_t *interacted, const tbl_entry *e, int ne, uint32_t slot_flags, int n,
              an_pick *out) {
    int got = 0;
    for (int i = 0; i < ne && got < n; i++) {
        int32_t c = e[i].cluster;
        if (c < 0 || c >= w->m || interacted[c]) continue;
        int dup = 0;
        for (int j = 0; j < got; j++) dup |= out[j].cluster == c;
        if (dup) continue;
        out[got++] = (an_pick){c, e[i].align_score, e[i].novelty_logprob, (slot_flags & TBL_FLAG_FALLBACK) != 0};
    }
    for (int32_t r = 0; r < w->m && got < n; r++) {
        int32_t c = w->popular[r];
        if (interacted[c]) continue;
        int dup = 0;
        for (int j = 0; j < got; j++) dup |= out[j].cluster == c;
        if (dup) continue;
        out[got++] = (an_pick){c, NAN, NAN, 1};
    }
    return got;
}

/* ---------------------------------------------------------------- the answer */

static void put_cluster_head(jw_buf *b, const an_workspace *w, int32_t c) {
    jw_str(b, "{\"id\":");
    jw_i64(b, c);
    jw_str(b, ",\"description\":");
    jw_quoted(b, w->tax->desc[c]);
}

/* The "items" array of cluster c: the retrieval model's top unseen items, or the most popular. */
static void put_items(jw_buf *b, const an_workspace *w, int32_t c, const rt_query *q, const int32_t *seen, int64_t ns,
                      const uint64_t *mask, int k) {
    rt_scored top[AN_ITEMS_MAX];
    int n = 0;
    if (w->rt && mask) n = rt_rank_indexed(&w->ix, q, c, mask, k, top);
    else if (w->rt) n = rt_rank(w->rt, w->tax, q, c, seen, ns, NULL, k, top);
    else /* popularity within the cluster: the k unseen members with the most events, ties by index */
        for (int64_t i = w->tax->member_off[c]; i < w->tax->member_off[c + 1]; i++) {
            int32_t it = w->tax->members[i];
            if (rt_seen_has(seen, ns, it)) continue;
            rt_scored x = {.item = it, .score = (float)w->item_events[it]};
            int at = n < k ? n++ : k;
            while (at > 0 && (top[at - 1].score < x.score || (top[at - 1].score == x.score && top[at - 1].item > it))) {
                if (at < k) top[at] = top[at - 1];
                at--;
            }
            if (at < k) top[at] = x;
        }
    if (n < 0) n = 0;
    jw_str(b, ",\"items\":[");
    for (int i = 0; i < n; i++) {
        int32_t it = top[i].item;
        jw_str(b, i ? ",{\"id\":" : "{\"id\":");
        jw_i64(b, w->ds->item_ids[it]);
        if (ds_has_item_names(w->ds)) { /* string raw ids: "id" is the internal number */
            char buf[DS_ID_BUF];
            jw_str(b, ",\"raw_id\":");
            jw_quoted(b, ds_item_raw_id(w->ds, it, buf, sizeof buf));
        }
        jw_str(b, ",\"title\":");
        jw_quoted(b, ds_item_title(w->ds, it));
        jw_str(b, ",\"score\":");
        jw_num(b, (double)top[i].score);
        jw_str(b, "}");
    }
    jw_str(b, "]");
}

int an_answer(const an_workspace *w, const tbl_table *t, int64_t table_version, const an_query *q, an_result *out,
              sd_err *err) {
    memset(out, 0, sizeof *out);
    if (!t) t = w->table;
    if (!t) return sd_fail(err, SD_ERR_STATE, "answer: no explore table given");
    if (t->p.k != w->k || t->p.n_clusters != w->m)
        return sd_fail(err, SD_ERR_STATE, "answer: the table (K = %d, M = %d) does not fit the workspace (K = %d, M = %d)",
                       t->p.k, t->p.n_clusters, w->k, w->m);
    if (q->clusters < 1 || q->clusters > AN_CLUSTERS_MAX)
        return sd_fail(err, SD_ERR_USAGE, "answer: clusters must be in 1..%d, not %d", AN_CLUSTERS_MAX, q->clusters);
    if (q->items_per < 0 || q->items_per > AN_ITEMS_MAX)
        return sd_fail(err, SD_ERR_USAGE, "answer: items per cluster must be in 0..%d, not %d", AN_ITEMS_MAX, q->items_per);
    const int k = w->k, m = w->m;
    int32_t ctx[JR_K_MAX];
    int nctx = 0;
    int64_t unknown = 0, u = -1;
    const int32_t *seen = NULL, *recent = NULL;
    int64_t ns = 0;
    int nr = 0;
    int32_t *own_seen = NULL, own_recent[RT_RECENT_MAX];
    uint8_t mark_stack[MARK_STACK_MAX], *marks = m <= MARK_STACK_MAX ? mark_stack : sd_malloc((size_t)m);
    memset(marks, 0, (size_t)m);
    int recent_limit = w->rt ? w->rt->recent : 10;
    if (q->kind == AN_QUERY_USER) {
        u = ds_find_user(w->ds, q->user);
        if (u < 0) {
            if (marks != mark_stack) free(marks);
            return sd_fail(err, SD_ERR_DATA, "unknown user %lld", (long long)q->user);
        }
        nctx = w->uctx_n[u];
        memcpy(ctx, w->uctx + u * k, (size_t)nctx * sizeof *ctx);
        seen = w->seen + w->seen_off[u], ns = w->seen_off[u + 1] - w->seen_off[u];
        nr = rt_user_recent(w->ds, u, recent_limit, own_recent), recent = own_recent;
        an_user_clusters(w, u, marks);
    } else if (q->kind == AN_QUERY_ITEMS) {
        if (q->n < 0 || q->n > AN_HISTORY_MAX || (q->n && !q->items)) {
            if (marks != mark_stack) free(marks);
            return sd_fail(err, SD_ERR_USAGE, "answer: at most %d items", AN_HISTORY_MAX);
        }
        int32_t *dense = sd_malloc((size_t)(q->n ? q->n : 1) * sizeof *dense);
        int nd = 0;
        for (int i = 0; i < q->n; i++) {
            int64_t d = ds_find_item(w->ds, q->items[i]);
            if (d < 0) unknown++;
            else dense[nd++] = (int32_t)d;
        }
        nctx = jr_context_of_items(w->tax, dense, nd, k, ctx);
        nr = nd < recent_limit ? nd : recent_limit;
        memcpy(own_recent, dense + nd - nr, (size_t)nr * sizeof *own_recent), recent = own_recent;
        for (int i = 0; i < nd; i++) {
            int32_t c = w->tax->item_cluster[dense[i]];
            if (c >= 0 && c < m) marks[c] = 1;
        }
        ns = sort_unique(dense, nd);
        seen = own_seen = dense;
    } else {
        if (q->n != k || !q->context) {
            if (marks != mark_stack) free(marks);
            return sd_fail(err, SD_ERR_USAGE, "answer: the table needs a context of K = %d clusters, not %d", k, q->n);
        }
        for (int i = 0; i < k; i++)
            if (q->context[i] < 0 || q->context[i] >= m) {
                if (marks != mark_stack) free(marks);
                return sd_fail(err, SD_ERR_DATA, "unknown cluster %d (the taxonomy has 0..%d)", q->context[i], m - 1);
            }
        if (!jr_context_valid(q->context, k, m)) {
            if (marks != mark_stack) free(marks);
            return sd_fail(err, SD_ERR_USAGE, "answer: the clusters of a context must be distinct");
        }
        nctx = k;
        memcpy(ctx, q->context, (size_t)k * sizeof *ctx);
        for (int i = 0; i < k; i++) marks[ctx[i]] = 1;
    }

    /* the table read and the filter */
    const tbl_entry *e = NULL;
    uint32_t flags = 0;
    int ne = 0;
    if (nctx == k) {
        int64_t idx = jr_context_index(ctx, k, m);
        ne = idx < 0 ? 0 : tbl_lookup(t, idx, &e, &flags);
        if (ne < 0 || !e) ne = 0;
    }
    an_pick picks[AN_CLUSTERS_MAX];
    int np = an_select(w, marks, e, ne, flags, q->clusters, picks);
    if (marks != mark_stack) free(marks);

    /* the JSON */
    jw_buf b;
    jw_init(&b, 2048 + (size_t)np * (size_t)(q->items_per + 1) * 96);
    if (q->kind == AN_QUERY_USER) jw_fmt(&b, "{\"user\":%lld", (long long)q->user);
    else jw_str(&b, "{\"user\":null");
    if (q->kind == AN_QUERY_USER && ds_has_user_names(w->ds)) { /* string raw ids: "user" is the internal number */
        char buf[DS_ID_BUF];
        jw_str(&b, ",\"user_raw_id\":");
        jw_quoted(&b, ds_user_raw_id(w->ds, u, buf, sizeof buf));
    }
    jw_fmt(&b, ",\"unknown_items\":%lld,\"table_version\":%lld,\"k\":%d,\"context\":[", (long long)unknown,
           (long long)table_version, k);
    for (int i = 0; i < nctx; i++) {
        if (i) jw_str(&b, ",");
        put_cluster_head(&b, w, ctx[i]);
        jw_str(&b, "}");
    }
    jw_fmt(&b, "],\"context_complete\":%s,\"ranker\":\"%s\",\"novel\":[", nctx == k ? "true" : "false",
           w->rt ? "sequential" : "popularity");
    rt_query rq = {.has_q = 0};
    uint64_t mask_buf[MASK_WORDS_MAX], *mask = NULL;
    size_t words = (size_t)(w->ds->n_items + 63) / 64;
    if (np && q->items_per && w->rt) {
        rt_query_init(w->rt, recent, nr, &rq);
        if (words <= MASK_WORDS_MAX) {
            mask = mask_buf;
            memset(mask, 0, words * sizeof *mask);
            for (int64_t i = 0; i < ns; i++) mask[seen[i] >> 6] |= 1ull << (seen[i] & 63);
        }
    }
    for (int i = 0; i < np; i++) {
        if (i) jw_str(&b, ",");
        put_cluster_head(&b, w, picks[i].cluster);
        jw_str(&b, ",\"score\":");
        jw_num(&b, (double)picks[i].score);
        jw_str(&b, ",\"logprob\":");
        jw_num(&b, (double)picks[i].logprob);
        jw_str(&b, picks[i].fallback ? ",\"fallback\":true" : ",\"fallback\":false");
        if (q->items_per) put_items(&b, w, picks[i].cluster, &rq, seen, ns, mask, q->items_per);
        else jw_str(&b, ",\"items\":[]");
        jw_str(&b, "}");
        if (picks[i].fallback) out->n_fallback++;
        else out->n_planned++;
    }
    jw_str(&b, "]}\n");
    free(own_seen);
    out->json = b.p, out->len = b.len, out->context_complete = nctx == k;
    memcpy(out->picks, picks, (size_t)np * sizeof *picks), out->n_picks = np;
    memcpy(out->context, ctx, (size_t)nctx * sizeof *ctx), out->n_context = nctx;
    return SD_OK;
}

void an_result_free(an_result *r) {
    free(r->json);
    r->json = NULL, r->len = 0;
}
