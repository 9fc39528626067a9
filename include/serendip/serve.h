/* serve.h - the HTTP API over the explore table (API and limits in docs/serving.md).
 *
 * Two layers. The request handlers (src/serve/handlers.c) turn one parsed request into one
 * response without sockets, so they can be fuzzed and tested directly; they read a shared
 * sv_state: the dataset, taxonomy and retrieval model (read-only), per-user contexts computed at
 * start-up, the explore table behind an atomically swapped, reference-counted pointer, a cache
 * of computed per-user answers (valid for one table version), and the metrics. The server (src/serve/server.c) is libmicrohttpd glue: limits, the connection count,
 * request bodies, latency and status accounting. */
#ifndef SERENDIP_SERVE_H
#define SERENDIP_SERVE_H

#include "serendip/base.h"
#include "serendip/dataset.h"
#include "serendip/retrieve.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"

#define SV_DEFAULT_PORT 8080
#define SV_K_DEFAULT 5       /* items per novel cluster */
#define SV_K_MAX 50
#define SV_ITEMS_MAX 1000    /* items of a stateless POST /v1/explore */

typedef struct {
    const char *bind;        /* listen address, IPv4 or IPv6 literal (default 127.0.0.1) */
    int port;                /* 0: an ephemeral port (read it with sv_server_port) */
    int threads;             /* libmicrohttpd thread pool of the epoll/poll modes (default 2 = the cores here) */
    const char *token_file;  /* bearer token for POST /admin/reload; NULL: reload disabled */
    int max_conns;           /* connections served; beyond, requests get 503 (default 512) */
    size_t max_body;         /* request body bytes; beyond: 413 (default 64 KiB) */
    size_t conn_memory;      /* per-connection buffer for the request line and headers (default 16 KiB) */
    int timeout_s;           /* idle connection timeout (default 30) */
    int head_timeout_s;      /* deadline for a whole request head, from the connection's start or the
                              * previous response; beyond: 408 and close (default 10; 0: none) */
    ds_positive_rule rule;   /* what makes an event count for a user's context: the workspace's (jr_resolve_rule) */
    int mode;                /* SV_MODE_*: how libmicrohttpd runs connections */
    size_t cache_bytes;      /* budget of the per-user answer cache (0: off; default 256 MiB) */
} sv_options;

enum {
    SV_MODE_EPOLL = 0,       /* a pool of `threads` threads, each with its own epoll loop */
    SV_MODE_POLL = 1,        /* the same pool with poll() */
    SV_MODE_THREAD = 2,      /* one thread per connection, `threads` ignored (default: the best p99
                              * on the shared 2-core machine, same throughput; docs/serving.md) */
};

#define SV_OPTIONS_DEFAULT                                                                                       \
    ((sv_options){.bind = "127.0.0.1", .port = SV_DEFAULT_PORT, .threads = 2, .max_conns = 512, .max_body = 65536, \
                  .conn_memory = 16384, .timeout_s = 30, .head_timeout_s = 10, .rule = {4.0f, 0.7f}, .mode = 2 /* SV_MODE_THREAD */,   \
                  .cache_bytes = (size_t)256 << 20})

/* ---------------------------------------------------------------- state and handlers */

typedef struct sv_state sv_state;

/* Loads a workspace: dataset.bin, taxonomy.bin, explore.tbl (required), retrieval.bin (absent:
 * items ranked by popularity, logged), report.html (optional, read per request), and the token
 * file. Checks that the table was built from this taxonomy. Precomputes every user's context. */
int sv_state_open(sv_state **out, const char *ws, const sv_options *o, sd_err *err);
/* Same over borrowed pieces (they must outlive the state): rt may be NULL; table_path is opened
 * now and by every reload; token NULL disables reload; report_path may be NULL. */
int sv_state_new(sv_state **out, const ds_dataset *ds, const tx_taxonomy *tax, const rt_model *rt,
                 const char *table_path, const char *token, const char *report_path, const sv_options *o,
                 sd_err *err);
void sv_state_free(sv_state *s);

/* Reads the table file again and swaps it in atomically: requests already holding the old table
 * finish with it, new ones see the new one; a table that cannot be read or does not fit the
 * taxonomy is refused, the refusal logged (sd_log) and counted, and the old one stays. The table
 * is served from a private copy in memory, so truncating or rewriting the file in place never
 * touches what is served. err may be NULL. */
int sv_reload(sv_state *s, sd_err *err);
int64_t sv_table_version(const sv_state *s); /* 1 at start, +1 per successful reload */

typedef struct {
    const char *method;      /* "GET", "POST", ... */
    const char *url;         /* raw request target: path and optional "?query", not decoded */
    const char *auth;        /* the Authorization header, or NULL */
    const char *body;        /* request body (not NUL-terminated), may be NULL */
    size_t body_len;
    int body_too_large;      /* the server cut the body at max_body */
} sv_request;

typedef struct {
    int status;
    const char *content_type; /* static string */
    char *body;               /* heap (sv_response_free) unless body_static */
    size_t len;
    int body_static;
    const char *allow;        /* 405: the Allow header; else NULL */
    int auth_challenge;       /* 401: send WWW-Authenticate: Bearer */
} sv_response;

/* Reads a bearer-token file: one line of at least 8 visible ASCII bytes, surrounding spaces and
 * the final newline trimmed; anything else (two lines, inner spaces, control bytes) is refused
 * naming the file. *out is heap (caller frees). */
int sv_token_read(const char *path, char **out, sd_err *err);

/* Answers one request. Never fails: every problem becomes a JSON error response
 * {"error": "..."} with its status. Thread-safe. */
void sv_handle(sv_state *s, const sv_request *rq, sv_response *rs);
void sv_response_free(sv_response *rs);
/* An error response (JSON), as sv_handle makes them. */
void sv_response_error(sv_response *rs, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Answers of GET /v1/explore served from the per-user cache, and computed. */
void sv_cache_stats(const sv_state *s, uint64_t *hits, uint64_t *misses);

/* Metrics, counted by the server and rendered by GET /metrics. */
void sv_metrics_record(sv_state *s, int status, double seconds);
void sv_metrics_connections(sv_state *s, int delta);
void sv_metrics_overload(sv_state *s);
void sv_metrics_head_timeout(sv_state *s); /* a connection closed for a late request head */

/* ---------------------------------------------------------------- server */

typedef struct sv_server sv_server;
/* Starts listening (threads run in the background) over s (borrowed). */
int sv_server_start(sv_state *s, const sv_options *o, sv_server **out, sd_err *err);
int sv_server_port(const sv_server *srv);
/* Stops accepting, finishes in-flight requests, frees the server (not the state). */
void sv_server_stop(sv_server *srv);

#endif
