/* workspace.c - `serendip eval` on a workspace: loads the dataset, split, taxonomy, the world's
 * truth (like-probability, oracles) and journeys.bin (feedback arm), opens every explore table as
 * an arm of the kind its header records, runs every arm with the per-user filter, breaks the
 * results down by context support, and writes metrics.json atomically. */
#include "serendip/eval.h"
#include "serendip/manifest.h"
#include "serendip/journeys.h"
#include "serendip/retrieve.h"
#include "serendip/table.h"
#include "serendip/world.h"
#include "serendip/mpi.h"

#include <cjson/cJSON.h>
#include <glob.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* An explore table as an arm: the table's ranked entries for the context. */
typedef struct {
    tbl_table t;
    int32_t M;
    char name[160];
    char file[128];
    int kind; /* ev_kind from the header */
    int n;
} table_arm;

static int table_serve(void *state, int32_t user, const int32_t *ctx, int k, int32_t *out, int max) {
    const table_arm *a = state;
    (void)user;
    const tbl_entry *e;
    int n = tbl_lookup(&a->t, jr_context_index(ctx, k, a->M), &e, NULL);
    if (n < 0) return -1;
    int got = 0;
    for (int i = 0; i < n && got < max; i++) {
        int dup = 0;
        for (int j = 0; j < got; j++) dup |= out[j] == e[i].cluster;
        if (!dup && e[i].cluster >= 0 && e[i].cluster < a->M) out[got++] = e[i].cluster;
    }
    return got;
}

#define N_BASE (EV_KIND_CONTEXT_ORACLE + 1)

typedef struct {
    ds_dataset ds;
    ds_split split; /* per-user boundaries owned (ds_split_free) */
    tx_taxonomy tx;
    jr_journeys jr;
    int has_jr;
    ev_baseline base[N_BASE];
    int n_base;
    table_arm *tables;
    int n_tables;
} run_owned;

/* Table order: by kind, then n, then file name. */
static int cmp_tables(const void *x, const void *y) {
    const table_arm *a = x, *b = y;
    if (a->kind != b->kind) return a->kind - b->kind;
    if (a->n != b->n) return a->n - b->n;
    return strcmp(a->file, b->file);
}

/* Simulated like-probability (users x clusters) from the world's truth: each cluster stands for
 * the hidden subtopic most of its items belong to. */
static int world_like(ev_data *d, const ds_dataset *ds, const tx_taxonomy *tx, const char *path, sd_err *err) {
    world_truth t;
    int rc = world_truth_load(&t, path, err);
    if (rc) return rc;
    int32_t *cnt = sd_calloc((size_t)d->M * (size_t)t.n_sub, sizeof(int32_t)), *sub = sd_malloc(sizeof(int32_t) * (size_t)d->M);
    for (int64_t i = 0; i < ds->n_items; i++) {
        int32_t c = tx->item_cluster[i], s = world_item_subtopic(&t, ds->item_ids[i]);
        if (c >= 0 && s >= 0 && s < t.n_sub) cnt[(size_t)c * t.n_sub + s]++;
    }
    for (int32_t c = 0; c < d->M; c++) {
        sub[c] = -1;
        int32_t best = 0;
        for (int32_t s = 0; s < t.n_sub; s++)
            if (cnt[(size_t)c * t.n_sub + s] > best) best = cnt[(size_t)c * t.n_sub + s], sub[c] = s;
    }
    d->like = sd_malloc(sizeof(float) * (size_t)d->n_users * (size_t)d->M);
    for (int32_t i = 0; i < d->n_users; i++)
        for (int32_t c = 0; c < d->M; c++) {
            double p = sub[c] >= 0 ? world_like_prob(&t, ds->user_ids[d->user[i]], sub[c]) : -1;
            d->like[(size_t)i * d->M + c] = p >= 0 ? (float)p : NAN;
        }
    free(cnt);
    free(sub);
    world_truth_free(&t);
    return SD_OK;
}

/* Opens table path as the next arm of own, checking it against the workspace; *K = 0 takes the
 * table's K. The arm's kind and n come from the header, never from the file name. */
static int open_table(run_owned *own, const char *ws, const char *path, int *K, sd_err *err) {
    table_arm *a = &own->tables[own->n_tables];
    size_t nw = strlen(ws);
    const char *rel = !strncmp(path, ws, nw) && path[nw] == '/' ? path + nw + 1 : NULL;
    int rc = rel ? mf_check(ws, &rel, 1, err) : SD_OK; /* planned from models or data rebuilt since */
    if (rc) return rc;
    rc = tbl_open(&a->t, path, err);
    if (rc) return rc;
    own->n_tables++;
    const char *base = strrchr(path, '/');
    snprintf(a->file, sizeof a->file, "%s", base ? base + 1 : path);
    a->kind = ev_kind_of_table(a->t.p.kind);
    if (a->kind < 0)
        return sd_fail(err, SD_ERR_DATA, "%s: unknown table kind %d in the header (a newer serendip?)", path, a->t.p.kind);
    a->n = a->t.p.n_samples;
    ev_arm_name(a->kind, a->n, a->name, sizeof a->name);
    if (a->kind == EV_KIND_RL && strstr(a->file, "guarded")) /* plan --generator rl_guarded: the display name says so */
        snprintf(a->name, sizeof a->name, "RL guarded (best-of-%d)", a->n);
    a->M = a->t.p.n_clusters;
    if (a->t.p.n_clusters != own->tx.n_clusters || a->t.p.tax_hash != tx_hash(&own->tx))
        return sd_fail(err, SD_ERR_DATA,
                       "%s: built for another taxonomy (M = %d, hash %016llx; workspace M = %d, hash %016llx); rerun 'serendip plan'",
                       path, a->t.p.n_clusters, (unsigned long long)a->t.p.tax_hash, own->tx.n_clusters,
                       (unsigned long long)tx_hash(&own->tx));
    if (a->t.p.begin != 0 || a->t.p.end != a->t.p.n_contexts)
        return sd_fail(err, SD_ERR_DATA, "%s: a shard (slots %lld..%lld), not a full table; run 'serendip plan-merge'",
                       path, (long long)a->t.p.begin, (long long)a->t.p.end);
    if (*K == 0) *K = a->t.p.k;
    if (a->t.p.k != *K)
        return sd_fail(err, SD_ERR_DATA, "%s: context length K = %d, but the evaluation uses K = %d", path, a->t.p.k, *K);
    return SD_OK;
}

/* ev_eval_workspace; *entered is set when the ranks' first agreement (before ev_run) was reached. */
static int eval_workspace(const char *ws, const ev_opts *o, int K, const ds_positive_rule *rule, ev_eval_run *out,
                          int *entered, sd_err *err) {
    memset(out, 0, sizeof *out);
    run_owned *own = sd_calloc(1, sizeof *own);
    out->owned = own;
    char *p = sd_path_join(ws, DS_FILE);
    int rc = ds_load(&own->ds, p, err);
    free(p);
    if (rc) return rc;
    ds_split split = {0};
    p = sd_path_join(ws, DS_SPLIT_FILE);
    if (!sd_file_exists(p)) {
        rc = sd_fail(err, SD_ERR_STATE, "%s: no temporal split (run 'serendip split'); evaluation needs a test window", p);
        free(p);
        return rc;
    }
    rc = ds_split_load(&split, p, err);
    free(p);
    if (rc) return rc;
    own->split = split;
    p = sd_path_join(ws, TX_FILE);
    const char *const reads[3] = {TX_FILE, JR_FILE, WORLD_TRUTH_FILE};
    if ((rc = mf_check(ws, reads, 3, err))) { /* built from an older dataset */
        free(p);
        return rc;
    }
    rc = tx_load(&own->tx, p, err);
    free(p);
    if (rc) return rc;
    /* the LLM tables: every *.tbl in plans/, or the planner's default explore.tbl when there is none */
    char *pat = sd_path_join(ws, "plans/*.tbl"), *deflt = sd_path_join(ws, TBL_FILE);
    glob_t g;
    int gr = glob(pat, 0, NULL, &g);
    free(pat);
    size_t n_found = gr == 0 ? g.gl_pathc : 0;
    int use_default = n_found == 0 && sd_file_exists(deflt);
    own->tables = sd_calloc(n_found + 2, sizeof(table_arm));
    for (size_t i = 0; i < n_found + (size_t)use_default && !rc; i++)
        rc = open_table(own, ws, use_default ? deflt : g.gl_pathv[i], &K, err);
    if (gr == 0) globfree(&g);
    free(deflt);
    if (rc) return rc;
    qsort(own->tables, (size_t)own->n_tables, sizeof(table_arm), cmp_tables);
    for (int t = 1; t < own->n_tables; t++) /* two tables of one kind and n: tell them apart by file */
        for (int s = 0; s < t; s++)
            if (!strcmp(own->tables[s].name, own->tables[t].name)) {
                size_t len = strlen(own->tables[t].name);
                snprintf(own->tables[t].name + len, sizeof own->tables[t].name - len, " [%s]", own->tables[t].file);
                break;
            }
    if (K == 0) K = JR_K_DEFAULT;
    rc = ev_data_build(&out->d, &own->ds, &split, &own->tx, K, rule, err);
    if (rc) return rc;
    if (out->d.n_users == 0)
        return sd_fail(err, SD_ERR_DATA, "%s: no user has both %d distinct positive train clusters and a test-window event", ws, K);
    p = sd_path_join(ws, WORLD_TRUTH_FILE);
    if (sd_file_exists(p)) {
        rc = world_like(&out->d, &own->ds, &own->tx, p, err);
        if (rc) {
            free(p);
            return rc;
        }
    }
    free(p);
    /* the collective feedback of the train window, for the feedback arm */
    p = sd_path_join(ws, JR_FILE);
    if (sd_file_exists(p)) {
        rc = jr_load(&own->jr, p, err);
        if (!rc) own->has_jr = 1;
        if (!rc && own->jr.tax_hash != tx_hash(&own->tx))
            rc = sd_fail(err, SD_ERR_STATE, "%s: built from another taxonomy; rerun 'serendip journeys'", p);
        if (!rc && own->jr.k != K)
            rc = sd_fail(err, SD_ERR_STATE, "%s: context length K = %d, but the evaluation uses K = %d; rerun 'serendip journeys --k %d'",
                         p, own->jr.k, K, K);
    } else {
        sd_log("eval: no %s: the feedback-rate arm is left out (run 'serendip journeys')", p);
    }
    free(p);
    if (rc) return rc;
    /* arms: baselines (those whose inputs exist), then the tables */
    out->arms = sd_calloc((size_t)(N_BASE + own->n_tables), sizeof(ev_arm));
    out->res = sd_calloc((size_t)(N_BASE + own->n_tables), sizeof(ev_result));
    for (int kind = 0; kind < N_BASE; kind++) {
        if ((kind == EV_KIND_FEEDBACK || kind == EV_KIND_FEEDBACK_SHRUNK) && !own->has_jr) continue;
        if ((kind == EV_KIND_ORACLE || kind == EV_KIND_CONTEXT_ORACLE) && !out->d.like) continue;
        ev_baseline *b = &own->base[own->n_base];
        rc = ev_baseline_init(b, kind, &out->d, o->seed, own->has_jr ? &own->jr : NULL, o->min_users, err);
        if (rc) return rc;
        b->shrink = o->shrink;
        own->n_base++;
        out->arms[out->n_arms++] = (ev_arm){ev_baseline_name(kind), kind, 0, NULL, ev_baseline_serve, b};
    }
    for (int t = 0; t < own->n_tables; t++) {
        table_arm *a = &own->tables[t];
        out->arms[out->n_arms++] = (ev_arm){a->name, a->kind, a->n, a->file, table_serve, a};
    }
    if (o->mpi) { /* every rank has its inputs: evaluate, or stop together with the failing rank's message */
        *entered = 1;
        if ((rc = sd_mpi_agree(SD_OK, err))) return rc;
    }
    rc = ev_run(&out->d, out->arms, out->n_arms, o, out->res, err);
    if (rc) return rc;
    out->by_support = sd_calloc((size_t)EV_N_SUPPORT * (size_t)out->n_arms + 1, sizeof(ev_result));
    ev_run_by_support(&out->d, out->res, out->n_arms, o, out->by_support, out->n_support);
    if (o->mpi && sd_mpi_rank() != 0) return SD_OK; /* rank 0 alone reports and writes */
    /* the items level: the restricted retrieval model, when trained (docs/serving.md) */
    cJSON *rj = NULL;
    p = sd_path_join(ws, RT_FILE);
    if (sd_file_exists(p)) {
        rt_model m;
        rt_eval e;
        if (!(rc = rt_open(&m, p, err))) {
            rc = rt_evaluate(&m, &own->ds, &split, &own->tx, rule, EV_RETRIEVAL_AT, &e, err);
            rt_close(&m);
        }
        if (rc) {
            free(p);
            return rc;
        }
        rj = rt_eval_json(&e);
    }
    free(p);
    ev_meta meta = {ws, K, own->tx.n_clusters, own->tx.size, (const char *const *)own->tx.desc, rj};
    out->json = ev_metrics_json(&out->d, &meta, out->arms, out->res, out->n_arms, out->by_support, out->n_support, o);
    cJSON_Delete(rj);
    p = sd_path_join(ws, EV_METRICS_FILE);
    rc = sd_write_file_atomic(p, out->json, strlen(out->json), err);
    free(p);
    return rc;
}

int ev_eval_workspace(const char *ws, const ev_opts *o, int K, const ds_positive_rule *rule, ev_eval_run *out,
                      sd_err *err) {
    int entered = 0;
    int rc = eval_workspace(ws, o, K, rule, out, &entered, err);
    if (o->mpi && rc && !entered) rc = sd_mpi_agree(rc, err); /* failed before evaluating: tell the others */
    return rc;
}

void ev_eval_run_free(ev_eval_run *r) {
    run_owned *own = r->owned;
    if (own) {
        for (int b = 0; b < own->n_base; b++) ev_baseline_free(&own->base[b]);
        if (own->has_jr) jr_free(&own->jr);
        for (int t = 0; t < own->n_tables; t++) tbl_close(&own->tables[t].t);
        free(own->tables);
        tx_free(&own->tx);
        ds_split_free(&own->split);
        ds_free(&own->ds);
        free(own);
    }
    ev_data_free(&r->d);
    for (int a = 0; a < r->n_arms && r->res; a++) ev_result_free(&r->res[a]);
    for (int a = 0; a < EV_N_SUPPORT * r->n_arms && r->by_support; a++) ev_result_free(&r->by_support[a]);
    free(r->by_support);
    free(r->arms);
    free(r->res);
    free(r->json);
    memset(r, 0, sizeof *r);
}
