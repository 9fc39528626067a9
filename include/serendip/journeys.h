/* journeys.h - cluster journeys, transitions and collective feedback (files `journeys.bin`,
 * human-readable twin `feedback.tsv`; format in docs/formats-journeys.md).
 *
 * Window: journeys, transitions and feedback are computed on the TRAIN window only
 * (each user's events with ts < ds_split_train_end(split, user): one cut in time for a global
 * split, the user's own for a per-user split), so that evaluation on the later windows never sees them.
 *
 * A user's journey is the time-ordered list of level-2 clusters of their positive events, with
 * consecutive repeats collapsed (A A B A C -> A B A C). Items with cluster -1 are skipped.
 * The context at a point of the journey is the last K DISTINCT clusters of the journey so far,
 * most recent last (journey A B A, K = 2 -> context (B, A)). A transition is emitted for every
 * journey step whose preceding context is full (K clusters): context -> next (next != last);
 * novel when the user never engaged `next` positively before.
 *
 * Collective feedback: walking each user's train events in time order with the running context
 * (full contexts only), an event on an item of cluster c NOT in the context is an exposure of
 * (context, c), positive when ds_is_positive; after the event, a positive one updates the context.
 * Per tuple: distinct users, exposures, positives and pos_rate = positives / exposures (pooled). */
#ifndef SERENDIP_JOURNEYS_H
#define SERENDIP_JOURNEYS_H

#include "serendip/base.h"
#include "serendip/dataset.h"
#include "serendip/taxonomy.h"

#define JR_FILE "journeys.bin"
#define JR_FEEDBACK_TSV "feedback.tsv"
#define JR_K_DEFAULT 2
#define JR_K_MAX 4

typedef struct {
    int64_t ts;              /* unix s of the event that made the step */
    int32_t user;            /* dense user index */
    int32_t next;            /* level-2 cluster engaged positively */
    int32_t ctx[JR_K_MAX];   /* the K context clusters, most recent last; unused slots -1 */
    int32_t novel;           /* 1 when the user never engaged `next` positively before */
    int32_t pad_;
} jr_transition;             /* 40 bytes, the on-disk record */

typedef struct {
    int32_t ctx[JR_K_MAX];   /* context clusters, most recent last; unused slots -1 */
    int32_t cand;            /* candidate cluster (not in ctx) */
    int32_t users;           /* distinct users exposed to cand in this context */
    int64_t exposures;       /* interactions with cand's items while in this context */
    int64_t positives;       /* of which positive */
    float pos_rate;          /* positives / exposures */
    int32_t pad_;
} jr_feedback;               /* 48 bytes, the on-disk record; sorted by (context index, cand) */

typedef struct {
    int32_t k;               /* context length K (1..JR_K_MAX) */
    int32_t n_clusters;      /* M of the taxonomy */
    int64_t n_users;
    int64_t train_end;       /* window used: events with ts < train_end (INT64_MAX: all); for a per-user
                              * split the largest user boundary (each user's own window was used) */
    uint64_t tax_hash;       /* tx_hash of the taxonomy used */
    ds_positive_rule rule;
    int64_t n_steps;
    const int64_t *journey_off;       /* (n_users + 1) user u's journey is journey[off[u]..off[u+1]) */
    const int32_t *journey;           /* (n_steps) clusters, consecutive repeats collapsed */
    int64_t n_transitions, n_novel;
    const jr_transition *transitions; /* (n_transitions) by user, then time */
    int64_t n_feedback;
    const jr_feedback *feedback;      /* (n_feedback) sorted by (jr_context_index(ctx), cand) */
    void *owned[4];                   /* heap blocks or the file buffer */
} jr_journeys;

/* Computes journeys, transitions and feedback. split NULL = use every event. k in 1..JR_K_MAX.
 * out owns its memory afterwards (jr_free). */
int jr_build(const ds_dataset *ds, const ds_split *split, const tx_taxonomy *tax, const ds_positive_rule *rule,
             int k, jr_journeys *out, sd_err *err);
int jr_save(const jr_journeys *j, const char *path, sd_err *err); /* atomic */
int jr_load(jr_journeys *j, const char *path, sd_err *err);       /* refuses foreign/truncated/old */
void jr_free(jr_journeys *j);
/* Writes feedback.tsv (atomic): context descriptions, candidate, users, exposures, positives, pos_rate. */
int jr_write_feedback_tsv(const jr_journeys *j, const tx_taxonomy *tax, const char *path, sd_err *err);
/* Feedback of (ctx, cand) by binary search, or NULL. ctx has j->k clusters. */
const jr_feedback *jr_feedback_find(const jr_journeys *j, const int32_t *ctx, int32_t cand);

/* The whole stage on a workspace: loads dataset.bin, split.json (absent: all events, logged),
 * taxonomy.bin; writes journeys.bin and feedback.tsv. If out is non-NULL it receives the result. */
int jr_run(const char *ws, int k, const ds_positive_rule *rule, jr_journeys *out, sd_err *err);

/* Parses a positive rule: "rating:4", "watch:0.7" or both comma-separated ("rating:4,watch:0.7").
 * Fields not named keep their value in *rule (start from DS_POSITIVE_DEFAULT). */
int jr_parse_positive(const char *s, ds_positive_rule *rule, sd_err *err);
/* The positive rule of workspace ws: the one its journeys stage used (recorded in journeys.bin),
 * read from the file's header. A workspace without journeys.bin has DS_POSITIVE_DEFAULT
 * (*from_file = 0; from_file may be NULL). A journeys.bin that is not a valid journeys file is an
 * error naming the file. Every reader of the rule (explore, serve, eval) calls this. */
int jr_workspace_rule(const char *ws, ds_positive_rule *rule, int *from_file, sd_err *err);
/* The rule a reader of workspace ws uses: the workspace's (jr_workspace_rule), or `positive`
 * ("rating:X,watch:Y", as jr_parse_positive) when non-NULL, with a logged note when that differs
 * from the workspace's. */
int jr_resolve_rule(const char *ws, const char *positive, ds_positive_rule *rule, sd_err *err);
/* "rating:R,watch:W" of a rule into buf (cap >= 48). */
void jr_format_positive(const ds_positive_rule *rule, char *buf, size_t cap);

/* ---------------------------------------------------------------- contexts */

/* The user's last K distinct positive clusters among events with ts < ts_end (any window),
 * most recent last, into ctx[0..n). Returns n (< K when the user has fewer), or 0. */
int jr_context_at(const ds_dataset *ds, const tx_taxonomy *tax, const ds_positive_rule *rule, int64_t user,
                  int64_t ts_end, int k, int32_t *ctx);
/* Same for a stateless request: items[0..n) in chronological order (oldest first), each treated as
 * a positive engagement; unknown items (out of range or cluster -1) are skipped. */
int jr_context_of_items(const tx_taxonomy *tax, const int32_t *items, int n, int k, int32_t *ctx);

/* The last-K-distinct update: moves c to the most-recent end of ctx[0..*n) (oldest first),
 * dropping the oldest cluster when k are already held and c is not among them; *n stays <= k.
 * Equal to "the last k distinct clusters" because whatever falls off is older than what stays.
 * (A, B) + A -> (B, A); (A, B) + C with k = 2 -> (B, C); () + A -> (A). */
void jr_ctx_push(int32_t *ctx, int *n, int k, int32_t c);
/* 1 when c is one of ctx[0..n) (a context, or any short list of clusters). */
static inline int jr_ctx_has(const int32_t *ctx, int n, int32_t c) {
    for (int i = 0; i < n; i++)
        if (ctx[i] == c) return 1;
    return 0;
}

/* Dense index of a context in [0, M^K): ctx[0]*M^(K-1) + ... + ctx[K-1] (c1*M+c2 for K = 2).
 * Returns -1 when a cluster is out of [0, M). Contexts with repeated clusters get an index too but
 * are invalid (jr_context_valid); the planner skips them. */
int64_t jr_context_index(const int32_t *ctx, int k, int32_t m);
/* Inverse of jr_context_index; idx must be in [0, M^K). */
void jr_context_from_index(int64_t idx, int k, int32_t m, int32_t *ctx);
/* 1 when every cluster is in [0, M) and all are distinct. */
int jr_context_valid(const int32_t *ctx, int k, int32_t m);
/* M^K, or -1 on overflow of int64. */
int64_t jr_n_contexts(int k, int32_t m);

#endif
