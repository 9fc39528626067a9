/* server.c - libmicrohttpd glue for the handlers of handlers.c: listening, limits, request
 * bodies, the connection count behind the 503 overload answer, and per-request accounting.
 *
 * Threading (sv_options.mode): by default one thread per connection (libmicrohttpd's
 * MHD_USE_THREAD_PER_CONNECTION with its internal accept thread); a pool of epoll or poll loops is
 * selectable. On the shared 2-core machine the three gave the same throughput, and thread per
 * connection the best p99 by far (a connection never waits behind others on a loop whose thread
 * was descheduled); docs/serving.md has the figures. Connections are capped (max_conns, 503
 * beyond; idle timeout), which also caps the threads.
 *
 * A request's life: the URI-log callback sees the raw request target first and allocates the
 * request context (start time, raw URL, body buffer); the access handler collects the body (up to
 * max_body, beyond which the rest is discarded and 413 answered) and answers through sv_handle;
 * the completion callback records status and latency and frees the context.
 *
 * Strict framing: the first (header-only) call refuses with 400 a request with more than one
 * Content-Length, or one beside Transfer-Encoding (libmicrohttpd reads the first Content-Length
 * and ignores it beside Transfer-Encoding: the ambiguities request smuggling lives on), before any
 * body is read. A Content-Length that is not a decimal number never reaches us: libmicrohttpd
 * 0.9.75 answers it itself (docs/serving.md lists what it answers itself, and how).
 *
 * The head deadline: libmicrohttpd's timeout is an idle timeout, so a client sending one header
 * line a second holds a connection (and, by default, a thread) forever. Each connection records
 * when its current request head began to be awaited (connection start, or the end of the previous
 * response on a kept-alive connection) and whether it has arrived (the first access-handler call);
 * a watchdog thread, ten times a second, answers 408 to the connections past head_timeout_s and
 * shuts their sockets down, which makes libmicrohttpd close them. libmicrohttpd reports a
 * connection closed before it closes its socket, and the watchdog only touches sockets of listed
 * connections under the list's lock, so it never shuts down a reused descriptor. */
#include "serendip/serve.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

/* One open connection, for the head deadline. */
typedef struct conn_rec {
    struct conn_rec *prev, *next;
    int fd;
    double head_t0;  /* sd_now() when the current request head began to be awaited */
    int head_done;   /* the current request's head has arrived */
    int killed;      /* the watchdog answered 408 and shut the socket down */
} conn_rec;

struct sv_server {
    struct MHD_Daemon *d;
    sv_state *st;
    sv_options o;
    atomic_int conns;
    int port;
    pthread_mutex_t lock;    /* guards the list, the records' fields and stopping */
    pthread_cond_t wake;
    conn_rec *list;
    int stopping;
    pthread_t watchdog;
    int has_watchdog;
};

/* The record of con (its socket context), or NULL. */
static conn_rec *conn_of(struct MHD_Connection *con) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Marks con's request head as arrived (done = 1) or as awaited from now on (done = 0). */
static void head_mark(sv_server *srv, struct MHD_Connection *con, int done) {
    conn_rec *k = conn_of(con);
    if (!k) return;
    pthread_mutex_lock(&srv->lock);
    k->head_done = done;
    if (!done) k->head_t0 = sd_now();
    pthread_mutex_unlock(&srv->lock);
}

static const char MSG_408[] = "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
                              "Content-Length: 57\r\n\r\n{\"error\":\"request head not received within the deadline\"}";

static void *watchdog_main(void *arg) {
    sv_server *srv = arg;
    pthread_mutex_lock(&srv->lock);
    while (!srv->stopping) {
        double now = sd_now();
        for (conn_rec *k = srv->list; k; k = k->next)
            if (!k->head_done && !k->killed && now - k->head_t0 > srv->o.head_timeout_s) {
                k->killed = 1;
                ssize_t w = send(k->fd, MSG_408, sizeof MSG_408 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                (void)w; /* best effort: the client may have stopped reading */
                shutdown(k->fd, SHUT_RDWR);
                sv_metrics_head_timeout(srv->st);
            }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&srv->wake, &srv->lock, &ts);
    }
    pthread_mutex_unlock(&srv->lock);
    return NULL;
}

typedef struct {
    double t0;
    char *url;        /* raw request target */
    char *body;       /* (cap) collected body */
    size_t len, cap;
    int too_large;
    int started;      /* the header-only first call has happened */
    int status;       /* 0 until a response is queued */
    int answered;
} req_ctx;

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *con) {
    (void)cls, (void)con;
    req_ctx *c = sd_calloc(1, sizeof *c);
    c->t0 = sd_now();
    c->url = sd_strdup(uri ? uri : "");
    return c;
}

static void completed(void *cls, struct MHD_Connection *con, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)con, (void)toe;
    sv_server *srv = cls;
    req_ctx *c = *con_cls;
    if (!c) return;
    if (c->status) sv_metrics_record(srv->st, c->status, sd_now() - c->t0);
    free(c->url), free(c->body), free(c);
    *con_cls = NULL;
    head_mark(srv, con, 0); /* a kept-alive connection now awaits its next head */
}

static void notify_conn(void *cls, struct MHD_Connection *con, void **socket_ctx, enum MHD_ConnectionNotificationCode toe) {
    sv_server *srv = cls;
    int d = toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1;
    atomic_fetch_add(&srv->conns, d);
    sv_metrics_connections(srv->st, d);
    pthread_mutex_lock(&srv->lock);
    if (d > 0) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_rec *k = sd_calloc(1, sizeof *k);
        k->fd = ci ? ci->connect_fd : -1;
        k->head_t0 = sd_now();
        k->killed = k->fd < 0;
        k->next = srv->list;
        if (srv->list) srv->list->prev = k;
        srv->list = k;
        *socket_ctx = k;
    } else if (*socket_ctx) {
        conn_rec *k = *socket_ctx;
        if (k->prev) k->prev->next = k->next;
        else srv->list = k->next;
        if (k->next) k->next->prev = k->prev;
        free(k);
        *socket_ctx = NULL;
    }
    pthread_mutex_unlock(&srv->lock);
}

/* Counts the Content-Length headers into *(int *)cls. */
static enum MHD_Result count_cl(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind, (void)value;
    if (key && !strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) ++*(int *)cls;
    return MHD_YES;
}

static enum MHD_Result queue(struct MHD_Connection *con, req_ctx *c, sv_response *rs, int close) {
    struct MHD_Response *r = rs->body_static
                                 ? MHD_create_response_from_buffer(rs->len, rs->body, MHD_RESPMEM_PERSISTENT)
                                 : MHD_create_response_from_buffer(rs->len, rs->body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        sv_response_free(rs);
        return MHD_NO;
    }
    rs->body = NULL; /* owned by the response now */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type);
    if (rs->allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rs->allow);
    if (rs->auth_challenge) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (rs->status == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (close) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(con, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    c->status = rs->status;
    c->answered = 1;
    return ret;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *con, const char *url, const char *method,
                                      const char *version, const char *upload_data, size_t *upload_data_size,
                                      void **con_cls) {
    (void)url, (void)version;
    sv_server *srv = cls;
    req_ctx *c = *con_cls;
    if (!c) return MHD_NO; /* cannot happen: uri_log always runs first */
    if (c->answered) { /* discard the rest of an upload we already answered */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!c->started) head_mark(srv, con, 1);
    sv_response rs;
    if (atomic_load(&srv->conns) > srv->o.max_conns) {
        sv_metrics_overload(srv->st);
        sv_response_error(&rs, 503, "overloaded: more than %d connections, retry later", srv->o.max_conns);
        return queue(con, c, &rs, 1);
    }
    if (!c->started) { /* first call: headers only. Answering now would make libmicrohttpd close the
                          * connection (the body, if any, is unread), so only refusals answer here. */
        c->started = 1;
        int ncl = 0;
        MHD_get_connection_values(con, MHD_HEADER_KIND, count_cl, &ncl);
        if (ncl > 1 || (ncl && MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))) {
            sv_response_error(&rs, 400, "%s", ncl > 1 ? "more than one Content-Length header"
                                                      : "Content-Length and Transfer-Encoding together");
            return queue(con, c, &rs, 1);
        }
        const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > srv->o.max_body) {
            sv_response_error(&rs, 413, "request body larger than %zu bytes", srv->o.max_body);
            return queue(con, c, &rs, 1);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (c->len + n > srv->o.max_body) c->too_large = 1;
        else {
            if (c->len + n > c->cap) {
                size_t cap = c->cap < 1024 ? 1024 : c->cap;
                while (cap < c->len + n) cap *= 2;
                c->body = sd_realloc(c->body, cap);
                c->cap = cap;
            }
            memcpy(c->body + c->len, upload_data, n);
            c->len += n;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    sv_request rq = {.method = method, .url = c->url, .body = c->body, .body_len = c->len, .body_too_large = c->too_large,
                     .auth = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION)};
    sv_handle(srv->st, &rq, &rs);
    return queue(con, c, &rs, c->too_large);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    if (sd_verbosity < 2) return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    sd_debug("serve: libmicrohttpd: %s", msg);
}

int sv_server_start(sv_state *s, const sv_options *o, sv_server **out, sd_err *err) {
    *out = NULL;
    if (o->threads < 1 || o->threads > 256) return sd_fail(err, SD_ERR_USAGE, "serve: threads %d not in 1..256", o->threads);
    if (o->port < 0 || o->port > 65535) return sd_fail(err, SD_ERR_USAGE, "serve: port %d not in 0..65535", o->port);
    if (o->max_conns < 1) return sd_fail(err, SD_ERR_USAGE, "serve: max connections %d < 1", o->max_conns);
    if (o->head_timeout_s < 0) return sd_fail(err, SD_ERR_USAGE, "serve: head timeout %d < 0", o->head_timeout_s);
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *addr;
    unsigned flags = MHD_USE_TURBO | MHD_USE_ERROR_LOG;
    if (o->mode == SV_MODE_EPOLL) flags |= MHD_USE_EPOLL_INTERNAL_THREAD;
    else if (o->mode == SV_MODE_POLL) flags |= MHD_USE_POLL_INTERNAL_THREAD;
    else if (o->mode == SV_MODE_THREAD) flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
    else return sd_fail(err, SD_ERR_USAGE, "serve: unknown mode %d", o->mode);
    const char *bind = o->bind ? o->bind : "127.0.0.1";
    memset(&a4, 0, sizeof a4), memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, bind, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET, a4.sin_port = htons((uint16_t)o->port);
        addr = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, bind, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6, a6.sin6_port = htons((uint16_t)o->port);
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        return sd_fail(err, SD_ERR_USAGE, "serve: bind address '%s' is not an IPv4 or IPv6 literal", bind);
    }
    sv_server *srv = sd_calloc(1, sizeof *srv);
    srv->st = s, srv->o = *o;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->wake, NULL);
    /* MHD refuses connections beyond its own limit outright; below it, ours answers 503 */
    unsigned hard = (unsigned)o->max_conns + 64;
    srv->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, access_handler, srv,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, /* first: it logs the options */
                              MHD_OPTION_SOCK_ADDR, addr,
                              MHD_OPTION_THREAD_POOL_SIZE, o->mode == SV_MODE_THREAD ? 0u : (unsigned)o->threads,
                              MHD_OPTION_CONNECTION_LIMIT, hard,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->conn_memory,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout_s,
                              MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                              MHD_OPTION_URI_LOG_CALLBACK, uri_log, srv,
                              MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
                              MHD_OPTION_NOTIFY_CONNECTION, notify_conn, srv,
                              MHD_OPTION_END);
    if (!srv->d) {
        pthread_mutex_destroy(&srv->lock), pthread_cond_destroy(&srv->wake);
        free(srv);
        return sd_fail(err, SD_ERR_IO, "serve: cannot listen on %s:%d (in use, or not allowed)", bind, o->port);
    }
    if (o->head_timeout_s > 0) {
        if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv)) {
            sv_server_stop(srv);
            return sd_fail(err, SD_ERR_IO, "serve: cannot start the head-deadline thread");
        }
        srv->has_watchdog = 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : o->port;
    *out = srv;
    return SD_OK;
}

int sv_server_port(const sv_server *srv) { return srv->port; }

void sv_server_stop(sv_server *srv) {
    if (!srv) return;
    if (srv->has_watchdog) {
        pthread_mutex_lock(&srv->lock);
        srv->stopping = 1;
        pthread_cond_signal(&srv->wake);
        pthread_mutex_unlock(&srv->lock);
        pthread_join(srv->watchdog, NULL);
    }
    MHD_stop_daemon(srv->d); /* closes the remaining connections: their records are freed */
    pthread_mutex_destroy(&srv->lock), pthread_cond_destroy(&srv->wake);
    free(srv);
}
