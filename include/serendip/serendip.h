/* serendip.h - the public C API of libserendip: what a binding (the Python package in python/)
 * or an embedding program needs, and only that. Every other header in include/serendip/ is
 * internal to the library and may change at any commit; this one follows the versioning rule of
 * docs/api.md (SERENDIP_API_VERSION_MAJOR changes only when a declaration below changes in an
 * incompatible way; MINOR grows when one is added).
 *
 * Conventions, for every function below:
 *   - Handles are opaque pointers made by a *_open function and released by the matching *_free
 *     (NULL is accepted by every *_free). serendip_live_handles() counts the live ones.
 *   - Errors are values: a function returns SERENDIP_OK (0) or a serendip_status, and fills *err
 *     (when err is non-NULL) with the same code and a message naming the file, line and field at
 *     fault, e.g. "ratings.csv:1042: field 3 (rating) "4,5" is not a number". Nothing exits, nothing
 *     prints to stdout (the stages log short lines to stderr, as the command does).
 *   - Strings returned as char * are heap copies owned by the caller: free them with serendip_free.
 *   - No global state: two workspaces (or two threads on two workspaces) do not interact. The
 *     explorer and model handles are read-only after opening, so any number of threads may call
 *     serendip_explore / serendip_model_generate / serendip_model_score on one handle at once.
 *     serendip_run writes the workspace's files: run one stage at a time per workspace.
 *
 * The explore answer comes from the one answer path of the library (src/answer/): `serendip
 * explore` and the HTTP server's /v1/explore call serendip_explore too, so the three answer with
 * the same bytes. */
#ifndef SERENDIP_SERENDIP_H
#define SERENDIP_SERENDIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the exported symbols: the shared library is built with -fvisibility=hidden, so only the
 * functions below are visible to a program or a binding that loads libserendip.so. */
#if defined(__GNUC__)
#define SERENDIP_API __attribute__((visibility("default")))
#else
#define SERENDIP_API
#endif

#define SERENDIP_API_VERSION_MAJOR 1 /* the soname: libserendip.so.1 */
#define SERENDIP_API_VERSION_MINOR 1 /* 1.1: raw ids as text (serendip_explorer_user / _items) */

/* ---------------------------------------------------------------- errors */

typedef enum {
    SERENDIP_OK = 0,
    SERENDIP_ERR_IO = 1,     /* open/read/write/rename failed */
    SERENDIP_ERR_DATA = 2,   /* malformed or inconsistent input data (also: an unknown user) */
    SERENDIP_ERR_FORMAT = 3, /* foreign, truncated or wrong-version binary file */
    SERENDIP_ERR_USAGE = 4,  /* invalid argument from the caller (bad option name or value) */
    SERENDIP_ERR_STATE = 5,  /* an earlier stage has not been run (a missing workspace file) */
} serendip_status;

typedef struct {
    int code;          /* serendip_status */
    char message[1024]; /* NUL-terminated; "" on success */
} serendip_error;

/* The name of a status ("ok", "io", "data", "format", "usage", "state"; "unknown" otherwise).
 * Static storage. */
SERENDIP_API const char *serendip_status_name(int code);
/* "MAJOR.MINOR.PATCH" of the library loaded (static storage); *major / *minor when non-NULL. */
SERENDIP_API const char *serendip_version(int *major, int *minor);
/* Frees a string (or any buffer) returned by this API. NULL is a no-op. */
SERENDIP_API void serendip_free(void *p);
/* Handles currently open in this process (workspaces, explorers, answers, models, embeddings):
 * a diagnostic for leak tests; it changes no behaviour. */
SERENDIP_API int64_t serendip_live_handles(void);

/* ---------------------------------------------------------------- workspaces and stages */

typedef struct serendip_workspace serendip_workspace;

/* Opens workspace folder path (creating it, and its parents, when create is non-zero). A missing
 * folder without create is SERENDIP_ERR_STATE; a path that is not a folder is SERENDIP_ERR_IO. */
SERENDIP_API int serendip_workspace_open(serendip_workspace **out, const char *path, int create, serendip_error *err);
SERENDIP_API void serendip_workspace_free(serendip_workspace *ws);
/* The folder the workspace was opened on (borrowed; lives as long as ws). */
SERENDIP_API const char *serendip_workspace_path(const serendip_workspace *ws);

/* Progress of a long stage: called on the calling thread with the step's label (borrowed), the
 * units done and the total (0 when unknown), at most about ten times a second per bar, and once
 * with done == total when a bar ends. While a callback is given, the stage draws no bar of its own. */
typedef void (*serendip_progress_fn)(void *user, const char *label, int64_t done, int64_t total);

/* Runs one pipeline stage on ws, exactly as `serendip <stage> --ws DIR <flags>` does (the same
 * library calls with the same defaults, so the same files for the same options): stage is one of
 * "world", "ingest", "split", "cluster", "journeys", "train", "plan", "eval", "report".
 * options: NULL or a NULL-terminated array of "name=value" strings, the names of the command's
 * flags (without "--"; '_' may stand for '-'; the stage's one options table, read by the command
 * too, is in stage.h); a flag without a value (a boolean) is "name" or
 * "name=1" / "name=0". An unknown name or a bad value is SERENDIP_ERR_USAGE naming it.
 * progress may be NULL. On success *report (when report is non-NULL) receives the stage's summary
 * as one JSON object (the command's --json output; serendip_free). */
SERENDIP_API int serendip_run(serendip_workspace *ws, const char *stage, const char *const *options,
                              serendip_progress_fn progress, void *user, char **report, serendip_error *err);
/* The stage's options as text (the same table and summary as `serendip <stage> --help`): a
 * summary line, then one line per option,
 * "  name=TYPE   help (default: value)" (a boolean: "  name   help (default: off)");
 * NULL for an unknown stage. Static storage (built once per stage; thread-safe). */
SERENDIP_API const char *serendip_stage_help(const char *stage);

/* The level-2 clusters of ws (taxonomy.bin) as a JSON array of objects {"id", "parent", "size",
 * "description", "parent_description"}, in id order (serendip_free). */
SERENDIP_API int serendip_clusters_json(const serendip_workspace *ws, char **out, serendip_error *err);
/* The last evaluation's metrics (ws/metrics.json, as `serendip eval --json` prints it;
 * serendip_free). Without an evaluation: SERENDIP_ERR_STATE naming the stage to run. */
SERENDIP_API int serendip_metrics_json(const serendip_workspace *ws, char **out, serendip_error *err);

/* ---------------------------------------------------------------- item embeddings */

typedef struct serendip_embeddings serendip_embeddings;

/* Maps the item embeddings of ws's retrieval model (retrieval.bin, written by the train stage):
 * the (n_items, dim) float32 input ("history") vectors, row i = the i-th item in dataset order.
 * The data is read-only, memory-mapped, and lives until serendip_embeddings_free. */
SERENDIP_API int serendip_embeddings_open(serendip_embeddings **out, const serendip_workspace *ws, serendip_error *err);
SERENDIP_API void serendip_embeddings_free(serendip_embeddings *e);
/* (n_items, dim) row-major float32, borrowed from e; *n_items and *dim receive the shape. */
SERENDIP_API const float *serendip_embeddings_data(const serendip_embeddings *e, int64_t *n_items, int *dim);
/* The raw (dataset) id of each row: (n_items) int64, borrowed from e. */
SERENDIP_API const int64_t *serendip_embeddings_item_ids(const serendip_embeddings *e);

/* ---------------------------------------------------------------- explore */

/* A workspace opened for serving: dataset, taxonomy, explore table and retrieval model. */
typedef struct serendip_explorer serendip_explorer;
/* An explore table (a server passes the one it hot-swaps; NULL: the explorer's own). */
typedef struct serendip_table serendip_table;

/* Opens ws for answering explore queries. table: the explore table file (NULL: ws/explore.tbl);
 * positive: the positive rule "rating:X,watch:Y" for users' contexts (NULL: the workspace's, from
 * journeys.bin). Missing files are SERENDIP_ERR_STATE naming the stage to run. */
SERENDIP_API int serendip_explorer_open(serendip_explorer **out, const char *ws, const char *table,
                                        const char *positive, serendip_error *err);
SERENDIP_API void serendip_explorer_free(serendip_explorer *x);
/* The context length K of the explorer's tables. */
SERENDIP_API int serendip_explorer_k(const serendip_explorer *x);

typedef enum {
    SERENDIP_QUERY_USER = 0,    /* a known user: context and history from the dataset */
    SERENDIP_QUERY_ITEMS = 1,   /* stateless: the given items are the whole history, each a positive */
    SERENDIP_QUERY_CONTEXT = 2, /* a given context of K cluster ids, no history */
} serendip_query_kind;

#define SERENDIP_CLUSTERS_MAX 64 /* clusters an answer holds at most */
#define SERENDIP_ITEMS_MAX 200   /* items per cluster at most */
#define SERENDIP_HISTORY_MAX 1000 /* items of a stateless query at most */

typedef struct {
    int kind;               /* serendip_query_kind */
    int64_t user;           /* SERENDIP_QUERY_USER: the raw user id (text: serendip_explorer_user) */
    const int64_t *items;   /* SERENDIP_QUERY_ITEMS: raw item ids, oldest first (borrowed; text: serendip_explorer_items) */
    const int32_t *context; /* SERENDIP_QUERY_CONTEXT: K cluster ids, most recent last (borrowed) */
    int n;                  /* length of items or context */
    int clusters;           /* novel clusters to answer, 1..SERENDIP_CLUSTERS_MAX */
    int items_per_cluster;  /* unseen items listed per cluster, 0..SERENDIP_ITEMS_MAX */
} serendip_query;

/* Raw ids as text (since 1.1). A dataset's users and items have integer raw ids (MovieLens) or
 * string ones (dataset.bin version 2: RecBole tokens, Amazon ids, ...); a query names them in
 * serendip_query by int64 (the integer raw id, or on a string side the internal number the answer
 * shows in "user" / "items[].id"). These two turn ids typed by a person or a client into those
 * numbers, with the one rule the command, the server and the Python package share:
 *   - a string side matches the text exactly and, when no id has that text and it is an integer,
 *     takes it as the internal number;
 *   - an integer side parses the text as a decimal integer (spaces around it allowed); text that
 *     is not one is SERENDIP_ERR_USAGE naming it. */
#define SERENDIP_ITEM_UNKNOWN INT64_MIN /* an item id no item has: the answer counts it in "unknown_items" */

/* *user (for serendip_query.user) of raw user id text raw (borrowed). A user the dataset does not
 * have is SERENDIP_ERR_DATA: `unknown user "u_17"` on a string side, `unknown user 42` on an
 * integer side (the answer's own wording). */
SERENDIP_API int serendip_explorer_user(const serendip_explorer *x, const char *raw, int64_t *user, serendip_error *err);
/* out[0..n) (for serendip_query.items) of the n raw item ids raw[0..n) (borrowed texts). An id
 * the dataset does not have is not an error: it becomes SERENDIP_ITEM_UNKNOWN on a string side and
 * stays its integer on an integer side, and the answer counts it in "unknown_items". n is
 * 0..SERENDIP_HISTORY_MAX; a NULL text is SERENDIP_ERR_USAGE. */
SERENDIP_API int serendip_explorer_items(const serendip_explorer *x, const char *const *raw, int n, int64_t *out,
                                         serendip_error *err);

typedef struct serendip_answer serendip_answer;

/* Answers q: the user's context, the best planned clusters of the context's ranked list that the
 * user never interacted with (then popular fallbacks, flagged), their scores and unseen items, as
 * the JSON object of docs/serving.md ("The explore answer"). table: NULL for x's own table, else a
 * table of the same taxonomy and K, reported as "table_version": version. Errors: an unknown user
 * (SERENDIP_ERR_DATA), a query out of its ranges (SERENDIP_ERR_USAGE), a table that does not fit
 * (SERENDIP_ERR_STATE). *out is freed with serendip_answer_free. Thread-safe. */
SERENDIP_API int serendip_explore(const serendip_explorer *x, const serendip_table *table, int64_t version,
                                  const serendip_query *q, serendip_answer **out, serendip_error *err);
/* The answer's JSON (one object and a newline; borrowed from a) and its length. */
SERENDIP_API const char *serendip_answer_json(const serendip_answer *a, size_t *len);
/* Moves the JSON out of a (the caller frees it with serendip_free; a keeps an empty string). */
SERENDIP_API char *serendip_answer_take_json(serendip_answer *a, size_t *len);
/* Clusters of the answer served from the plan and flagged fallback. */
SERENDIP_API void serendip_answer_counts(const serendip_answer *a, int *planned, int *fallback);
SERENDIP_API void serendip_answer_free(serendip_answer *a);

/* ---------------------------------------------------------------- language models */

typedef struct serendip_model serendip_model;

/* Loads a GGUF model (llama architecture, with its tokenizer): serendip's own models (ws/models/NAME.gguf) or a
 * published Llama-family file. */
SERENDIP_API int serendip_model_open(serendip_model **out, const char *path, serendip_error *err);
SERENDIP_API void serendip_model_free(serendip_model *m);
/* Samples n continuations of prompt (special tokens such as <|ctx|> are parsed), up to max_new
 * tokens each, stopping at the end token; temperature 0 is greedy; top_k 0 and top_p 1 are off;
 * the same seed gives the same samples (as `serendip lm generate`). *json receives a JSON array
 * of n objects {"text", "tokens", "stopped", "logprob"} (natural log; serendip_free). */
SERENDIP_API int serendip_model_generate(const serendip_model *m, const char *prompt, int n, float temperature, int top_k,
                                         float top_p, uint64_t seed, int max_new, char **json, serendip_error *err);
/* Log-probability (natural log, temperature 1) of each continuation conts[i] (plain text) after
 * prompt, into out[0..n) (as `serendip lm score`). */
SERENDIP_API int serendip_model_score(const serendip_model *m, const char *prompt, const char *const *conts, int n,
                                      double *out, serendip_error *err);

#ifdef __cplusplus
}
#endif

#endif
