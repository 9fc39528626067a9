/* answer.h - answering an explore query: the one path shared by `serendip explore`, the HTTP
 * server (GET/POST /v1/explore), the simulated A/B experiment and the Python package. The JSON
 * answer and its fields are specified once, in docs/serving.md ("The explore answer").
 *
 * A serving workspace (an_workspace) holds the dataset, the taxonomy, the retrieval model when
 * present (else items are ranked by popularity within the cluster, and the answer says so with
 * "ranker": "popularity"), the workspace's positive rule (jr_workspace_rule), and what start-up
 * precomputes: every user's context (last K distinct positive clusters over the whole history)
 * and sorted seen items, and the clusters by popularity. It is read-only after an_open / an_new,
 * so any number of threads may call an_answer on it at once.
 *
 * Novel for the user: the answer serves the best planned clusters of the context's ranked list
 * (the table slot, best first) that the user has NEVER interacted with (no event, positive or
 * not, on any item of the cluster in the history available at serving time: the user's whole
 * history in the dataset, or the items of a stateless query). When the list runs out before the
 * requested number of clusters, the answer is completed with the most popular clusters (most
 * events in the dataset; ties to the lower id) the user has not interacted with, each flagged
 * "fallback": true. Entries of a table slot that the planner itself filled by its fallback
 * (TBL_FLAG_FALLBACK) are flagged too. */
#ifndef SERENDIP_ANSWER_H
#define SERENDIP_ANSWER_H

#include "serendip/base.h"
#include "serendip/dataset.h"
#include "serendip/retrieve.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"

#define AN_CLUSTERS_DEFAULT 5   /* clusters per answer */
#define AN_CLUSTERS_MAX TBL_TOP_MAX
#define AN_ITEMS_DEFAULT 5      /* items per cluster */
#define AN_ITEMS_MAX RT_K_MAX  /* items per cluster (HTTP: SV_K_MAX) */
#define AN_HISTORY_MAX 1000     /* items of a stateless query */

typedef struct {
    /* read-only after construction */
    const ds_dataset *ds;
    const tx_taxonomy *tax;
    const rt_model *rt;         /* NULL: popularity within the cluster ranks items */
    const tbl_table *table;     /* an_open's table (NULL with no_table, and for an_new) */
    ds_positive_rule rule;      /* what makes an event count for a user's context */
    int32_t k, m;               /* context length, level-2 clusters */
    rt_index ix;                /* rt's rows in cluster-major order (when rt) */
    int32_t *uctx;              /* (n_users, K) user u's context, most recent last */
    int8_t *uctx_n;             /* (n_users) clusters in it (< K: incomplete) */
    int64_t *seen_off;          /* (n_users + 1) */
    int32_t *seen;              /* sorted unique items of each user */
    int32_t *popular;           /* (m) clusters by descending event count, ties by id */
    int64_t *item_events;       /* (n_items) events on each item (the popularity ranker's score) */
    /* owned pieces (an_open) */
    ds_dataset own_ds;
    tx_taxonomy own_tax;
    rt_model own_rt;
    tbl_table own_table;
    int own_ds_ok, own_tax_ok, own_rt_ok, own_table_ok;
} an_workspace;

typedef struct {
    const char *table;              /* explore table (NULL: WS/explore.tbl) */
    const ds_positive_rule *rule;   /* NULL: the workspace's (jr_workspace_rule) */
    int no_table;                   /* 1: read K from the table and close it (the caller passes its
                                     * own table to an_answer, as the hot-swapping server does) */
} an_options;

/* Opens workspace ws for serving: dataset.bin, taxonomy.bin, the explore table (refused when it
 * was planned on another taxonomy or is a shard), retrieval.bin when present (refused when trained
 * on another dataset). A missing file is SD_ERR_STATE naming the stage to run. o may be NULL.
 * *out is freed with an_free. */
int an_open(an_workspace **out, const char *ws, const an_options *o, sd_err *err);
/* The same over borrowed pieces (they must outlive the workspace); rt may be NULL; k is the
 * context length of the tables that will be passed to an_answer. */
int an_new(an_workspace **out, const ds_dataset *ds, const tx_taxonomy *tax, const rt_model *rt, int k,
           const ds_positive_rule *rule, sd_err *err);
void an_free(an_workspace *w);

typedef enum {
    AN_QUERY_USER = 0,      /* a known user: context and history from the dataset */
    AN_QUERY_ITEMS = 1,     /* stateless: the given items are the whole history, each a positive */
    AN_QUERY_CONTEXT = 2,   /* a given context of K clusters, no history (the context's clusters
                             * count as interacted) */
} an_query_kind;

typedef struct {
    an_query_kind kind;
    int64_t user;           /* AN_QUERY_USER: raw user id */
    const int64_t *items;   /* AN_QUERY_ITEMS: raw item ids, oldest first; unknown ids are counted
                             * ("unknown_items") and skipped */
    const int32_t *context; /* AN_QUERY_CONTEXT: K cluster ids, most recent last */
    int n;                  /* length of items or context */
    int clusters;           /* clusters to answer, 1..AN_CLUSTERS_MAX */
    int items_per;          /* items per cluster, 0..AN_ITEMS_MAX */
} an_query;

typedef struct {
    int32_t cluster;
    float score;            /* alignment score (NAN for a popularity fallback) */
    float logprob;          /* novelty log-probability (NAN for a popularity fallback) */
    int fallback;           /* 1: not a planned cluster for this context */
} an_pick;

typedef struct {
    char *json;             /* one JSON object and a newline (heap; an_result_free) */
    size_t len;
    int n_planned;          /* clusters served from the plan */
    int n_fallback;         /* clusters flagged "fallback" */
    int context_complete;
    /* the same answer without its items, for callers that do not want to parse JSON (the A/B
     * simulator): the clusters served, best first, and the context */
    an_pick picks[AN_CLUSTERS_MAX];
    int n_picks;
    int32_t context[4];     /* (JR_K_MAX) most recent last */
    int n_context;
} an_result;

/* Answers q over table t (NULL: the workspace's own) whose version is reported as
 * "table_version". Errors (nothing is allocated then): unknown user (SD_ERR_DATA, "unknown user
 * ID"), a query out of its ranges or a context that is not K distinct known clusters
 * (SD_ERR_USAGE), a table that does not fit the workspace (SD_ERR_STATE). Thread-safe. */
int an_answer(const an_workspace *w, const tbl_table *t, int64_t table_version, const an_query *q, an_result *out,
              sd_err *err);
void an_result_free(an_result *r);

/* ---------------------------------------------------------------- the per-user filter */

/* Marks in interacted[0..m) every cluster with an event of dense user u (interacted zeroed first). */
void an_user_clusters(const an_workspace *w, int64_t u, uint8_t *interacted);
/* The novel-for-the-user selection: walks the planned entries e[0..ne) (best first) keeping the
 * clusters not marked in interacted[] (and in 0..m-1), then completes with w->popular clusters not
 * marked and not already kept, flagged fallback, until n picks. slot_flags TBL_FLAG_FALLBACK flags
 * the planned entries too. Writes out[0..n) and returns the count (fewer when the user has
 * interacted with almost every cluster). Pure; the evaluation applies the same filter to its arms. */
int an_select(const an_workspace *w, const uint8_t *interacted, const tbl_entry *e, int ne, uint32_t slot_flags, int n,
              an_pick *out);

#endif
