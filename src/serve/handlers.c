/* handlers.c - the request handlers of the HTTP API, without sockets: routing, query and body
 * parsing, the explore answer (table read + restricted retrieval), clusters, health, Prometheus
 * metrics, the embedded page, and the hot-swappable explore table.
 *
 * Hand-written where a library would cost more than it saves: responses on the hot path are
 * written with a small JSON appender instead of cJSON (cJSON allocates a node per value; the
 * appender writes one buffer), and the query string is split by hand (libmicrohttpd would
 * decode it, but then the fuzzer could not reach the parsing). Request bodies use cJSON.
 *
 * The explore table sits behind a pointer to a reference-counted holder. A request takes a
 * reference (pointer load + increment, under a mutex held for those two instructions only so that
 * a reload cannot free the holder between them), copies its slot and drops the reference; a
 * reload reads the new file outside any lock, swaps the pointer and drops the old holder's own
 * reference, so the old copy is freed by whichever request finishes with it last. No request
 * ever fails or sees a torn table during a reload.
 *
 * The table is served from a private copy in memory (read once, then tbl_open_mem), not from a
 * mapping of the file: a mapping's pages vanish when someone truncates the file in place, and the
 * next lookup dies of SIGBUS. The copy costs the table's size in memory, which a mapping touched
 * by every lookup (and by the hash at load) costs too.
 *
 * A known user's answer depends only on (user, k, n, table version): the first GET computes it,
 * later ones copy it from a per-user cache slot (striped mutexes, held for the copy only) until a
 * reload bumps the version or the budget is spent. This is the precomputation the explore table
 * stands for, carried down to the items. */
#include "serendip/serve.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serendip/journeys.h"

/* The page (web/index.html) is linked into the binary, so the server needs no files besides the
 * workspace. (Make does not track this dependency: touch handlers.c after editing the page.) */
__asm__(".section .rodata,\"a\"\n"
        ".global sv_page_html\n"
        "sv_page_html:\n"
        ".incbin \"web/index.html\"\n"
        ".byte 0\n"
        ".global sv_page_html_end\n"
        "sv_page_html_end:\n"
        ".previous\n");
extern const char sv_page_html[], sv_page_html_end[];

/* Latency histogram bucket bounds in seconds (Prometheus `le` labels). */
static const double LAT_BOUNDS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0};
#define N_LAT (sizeof LAT_BOUNDS / sizeof LAT_BOUNDS[0])

typedef struct cache_entry {
    int64_t version;
    int k, n;
    size_t len;
    char body[]; /* (len) */
} cache_entry;

typedef struct {
    tbl_table t;             /* over buf */
    char *buf;               /* (size) the file's bytes, owned */
    atomic_int refs;  /* one for being current + one per request holding it */
    int64_t version;
    uint64_t hash;    /* sd_hash64 of the file's bytes */
} table_ref;

struct sv_state {
    sv_options o;
    const ds_dataset *ds;
    const tx_taxonomy *tax;
    const rt_model *rt;        /* NULL: popularity order of the taxonomy */
    rt_index ix;               /* rt's V rows in cluster-major order (the serving layout) */
    ds_dataset own_ds;         /* sv_state_open: owned copies the pointers above point at */
    tx_taxonomy own_tax;
    rt_model own_rt;
    int own_ds_ok, own_tax_ok, own_rt_ok;
    char *table_path, *token, *report_path;
    int32_t k, m;              /* context length and number of clusters (fixed by the first table) */
    uint64_t tax_hash;
    pthread_mutex_t tlock;     /* guards cur's load + refcount increment (see header) */
    pthread_mutex_t reload_lock;
    table_ref *_Atomic cur;
    /* per-user contexts: user u's K clusters are uctx[u*K .. u*K + uctx_n[u]), most recent last */
    int32_t *uctx;             /* (n_users, K) */
    int8_t *uctx_n;            /* (n_users) */
    int64_t *seen_off;         /* (n_users + 1) */
    int32_t *seen;             /* sorted unique items of each user */
    /* the answer cache: slot u holds user u's last computed GET answer */
    struct cache_entry **cache; /* (n_users) or NULL when off */
    pthread_mutex_t cache_lock[64];
    atomic_llong cur_version;  /* the current table's version, updated with the pointer */
    atomic_size_t cache_used;
    atomic_ullong cache_hits, cache_misses;
    /* metrics */
    atomic_ullong by_code[600];
    atomic_ullong lat_bucket[N_LAT + 1];
    atomic_ullong lat_sum_ns, lat_count, overload, reloads_ok, reloads_failed, head_timeouts;
    atomic_llong conns;
};

/* ---------------------------------------------------------------- a JSON appender */

typedef struct {
    char *p;
    size_t len, cap;
} jbuf;

static void jb_init(jbuf *b, size_t cap) {
    b->p = sd_malloc(cap);
    b->len = 0, b->cap = cap;
    b->p[0] = 0;
}

static void jb_reserve(jbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    while (b->len + extra + 1 > b->cap) b->cap *= 2;
    b->p = sd_realloc(b->p, b->cap);
}

static void jb_raw(jbuf *b, const char *s, size_t n) {
    jb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void jb_str(jbuf *b, const char *s) { jb_raw(b, s, strlen(s)); }

static void jb_fmt(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_fmt(jbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= b->cap - b->len) {
        jb_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* A JSON string literal of s (quotes included); bytes >= 0x80 pass through (titles are UTF-8). */
static void jb_quoted(jbuf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    jb_reserve(b, strlen(s) * 6 + 2);
    char *o = b->p + b->len;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') *o++ = '\\', *o++ = (char)c;
        else if (c == '\n') *o++ = '\\', *o++ = 'n';
        else if (c == '\t') *o++ = '\\', *o++ = 't';
        else if (c == '\r') *o++ = '\\', *o++ = 'r';
        else if (c < 0x20 || c == 0x7f) *o++ = '\\', *o++ = 'u', *o++ = '0', *o++ = '0', *o++ = hex[c >> 4], *o++ = hex[c & 15];
        else *o++ = (char)c;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    b->p[b->len] = 0;
}

static void jb_i64(jbuf *b, int64_t x) {
    char d[24], *e = d + sizeof d, *o = e;
    uint64_t v = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
    do *--o = (char)('0' + v % 10), v /= 10;
    while (v);
    if (x < 0) *--o = '-';
    jb_raw(b, o, (size_t)(e - o));
}

/* x with at most 4 decimals, trailing zeros trimmed ("2.9075", "-1.5", "7"); null when not finite.
 * Hand-written because printf's %g costs more than the whole ranking of a cluster. */
static void jb_num(jbuf *b, double x) {
    if (!isfinite(x)) return jb_str(b, "null");
    if (fabs(x) >= 1e14) return jb_fmt(b, "%.6g", x);
    char tmp[40], *o = tmp;
    uint64_t v = (uint64_t)(fabs(x) * 10000 + 0.5), ip = v / 10000, fp = v % 10000;
    if (x < 0 && v) *o++ = '-';
    char d[24];
    int nd = 0;
    do d[nd++] = (char)('0' + ip % 10), ip /= 10;
    while (ip);
    while (nd) *o++ = d[--nd];
    if (fp) {
        *o++ = '.';
        char f[4] = {(char)('0' + fp / 1000), (char)('0' + fp / 100 % 10), (char)('0' + fp / 10 % 10), (char)('0' + fp % 10)};
        int nf = 4;
        while (f[nf - 1] == '0') nf--;
        for (int i = 0; i < nf; i++) *o++ = f[i];
    }
    jb_raw(b, tmp, (size_t)(o - tmp));
}

/* ---------------------------------------------------------------- responses */

static void respond(sv_response *rs, int status, const char *ctype, jbuf *b) {
    memset(rs, 0, sizeof *rs);
    rs->status = status, rs->content_type = ctype, rs->body = b->p, rs->len = b->len;
}

void sv_response_error(sv_response *rs, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jbuf b;
    jb_init(&b, 128);
    jb_str(&b, "{\"error\":");
    jb_quoted(&b, msg);
    jb_str(&b, "}\n");
    respond(rs, status, "application/json", &b);
}

void sv_response_free(sv_response *rs) {
    if (!rs->body_static) free(rs->body);
    rs->body = NULL;
}

/* ---------------------------------------------------------------- the table holder */

static table_ref *table_acquire(sv_state *s) {
    pthread_mutex_lock(&s->tlock);
    table_ref *r = atomic_load_explicit(&s->cur, memory_order_acquire);
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->tlock);
    return r;
}

static void table_release(table_ref *r) {
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        tbl_close(&r->t);
        free(r->buf);
        free(r);
    }
}

/* Reads path into memory as a table that fits tax (and, once k is known, the same k). */
static int table_load(sv_state *s, const char *path, table_ref **out, sd_err *err) {
    table_ref *r = sd_calloc(1, sizeof *r);
    size_t size;
    int rc = sd_read_file(path, &r->buf, &size, err); /* malloc's alignment suits tbl_open_mem */
    if (!rc && (rc = tbl_open_mem(&r->t, r->buf, size, err))) sd_err_prefix(err, "%s", path);
    if (rc) {
        free(r->buf);
        free(r);
        return rc;
    }
    const tbl_params *p = &r->t.p;
    const char *why = NULL;
    if (p->n_clusters != s->tax->n_clusters) why = "its cluster count differs from the taxonomy's";
    else if (p->tax_hash != s->tax_hash) why = "it was planned over another taxonomy (tax_hash differs)";
    else if (p->begin != 0 || p->end != p->n_contexts) why = "it is a shard, not a full table (run `serendip plan-merge`)";
    else if (p->k < 1 || p->k > JR_K_MAX) why = "its context length is out of range";
    else if (s->k && p->k != s->k) why = "its context length differs from the served table's";
    if (why) {
        tbl_close(&r->t);
        free(r->buf);
        free(r);
        return sd_fail(err, SD_ERR_DATA, "%s: %s", path, why);
    }
    r->hash = sd_hash64(r->buf, size, SD_HASH_SEED);
    atomic_init(&r->refs, 1);
    *out = r;
    return SD_OK;
}

int sv_reload(sv_state *s, sd_err *err) {
    sd_err local = {0};
    if (!err) err = &local;
    pthread_mutex_lock(&s->reload_lock);
    table_ref *r;
    int rc = table_load(s, s->table_path, &r, err);
    if (rc) {
        atomic_fetch_add(&s->reloads_failed, 1);
        pthread_mutex_unlock(&s->reload_lock);
        sd_log("serve: reload refused, still serving version %lld: %s", (long long)atomic_load(&s->cur_version), err->msg);
        return rc;
    }
    table_ref *old = atomic_load(&s->cur);
    r->version = old->version + 1;
    pthread_mutex_lock(&s->tlock);
    atomic_store_explicit(&s->cur, r, memory_order_release);
    atomic_store(&s->cur_version, r->version);
    pthread_mutex_unlock(&s->tlock);
    table_release(old);
    atomic_fetch_add(&s->reloads_ok, 1);
    pthread_mutex_unlock(&s->reload_lock);
    sd_log("serve: reloaded %s (version %lld)", s->table_path, (long long)r->version);
    return SD_OK;
}

int64_t sv_table_version(const sv_state *s) {
    sv_state *w = (sv_state *)s;
    table_ref *r = table_acquire(w);
    int64_t v = r->version;
    table_release(r);
    return v;
}

/* ---------------------------------------------------------------- state */

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

static void precompute_users(sv_state *s) {
    const ds_dataset *d = s->ds;
    int64_t nu = d->n_users;
    s->uctx = sd_malloc((size_t)(nu ? nu : 1) * (size_t)s->k * sizeof(int32_t));
    s->uctx_n = sd_calloc((size_t)(nu ? nu : 1), 1);
    s->seen_off = sd_malloc((size_t)(nu + 1) * sizeof(int64_t));
    s->seen = sd_malloc((size_t)(d->n_events ? d->n_events : 1) * sizeof(int32_t));
    int64_t w = 0;
    for (int64_t u = 0; u < nu; u++) {
        s->uctx_n[u] = (int8_t)jr_context_at(d, s->tax, &s->o.rule, u, INT64_MAX, s->k, s->uctx + u * s->k);
        s->seen_off[u] = w;
        w += rt_user_seen(d, u, s->seen + w);
    }
    s->seen_off[nu] = w;
}

int sv_state_new(sv_state **out, const ds_dataset *ds, const tx_taxonomy *tax, const rt_model *rt,
                 const char *table_path, const char *token, const char *report_path, const sv_options *o,
                 sd_err *err) {
    *out = NULL;
    if (tax->n_items != ds->n_items)
        return sd_fail(err, SD_ERR_DATA, "serve: the taxonomy has %lld items, the dataset %lld (rerun `serendip cluster`)",
                       (long long)tax->n_items, (long long)ds->n_items);
    if (rt && (rt->n_items != ds->n_items || rt->items_hash != rt_items_hash(ds)))
        return sd_fail(err, SD_ERR_DATA, "serve: the retrieval model was trained on another dataset (rerun `serendip train`)");
    sv_state *s = sd_calloc(1, sizeof *s);
    s->o = *o;
    s->ds = ds, s->tax = tax, s->rt = rt;
    s->m = tax->n_clusters;
    s->tax_hash = tx_hash(tax);
    pthread_mutex_init(&s->tlock, NULL);
    pthread_mutex_init(&s->reload_lock, NULL);
    s->table_path = sd_strdup(table_path);
    s->token = token ? sd_strdup(token) : NULL;
    s->report_path = report_path ? sd_strdup(report_path) : NULL;
    table_ref *r;
    int rc = table_load(s, table_path, &r, err);
    if (rc) {
        sv_state_free(s);
        return rc;
    }
    r->version = 1;
    s->k = r->t.p.k;
    if (rt && (rc = rt_index_build(rt, tax, &s->ix, err))) {
        table_release(r);
        s->cur = NULL;
        sv_state_free(s);
        return rc;
    }
    atomic_store(&s->cur, r);
    atomic_store(&s->cur_version, 1);
    precompute_users(s);
    if (o->cache_bytes) {
        s->cache = sd_calloc((size_t)(ds->n_users ? ds->n_users : 1), sizeof *s->cache);
        for (int i = 0; i < 64; i++) pthread_mutex_init(&s->cache_lock[i], NULL);
    }
    *out = s;
    return SD_OK;
}

int sv_token_read(const char *path, char **out, sd_err *err) {
    *out = NULL;
    char *buf;
    size_t len;
    int rc = sd_read_file(path, &buf, &len, err);
    if (rc) return rc;
    size_t a = 0;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t')) len--;
    while (a < len && (buf[a] == ' ' || buf[a] == '\t')) a++;
    const char *why = len - a < 8 ? "is shorter than 8 bytes" : NULL;
    for (size_t i = a; !why && i < len; i++) /* the visible ASCII of RFC 6750's b64token, nothing else */
        if ((unsigned char)buf[i] <= ' ' || (unsigned char)buf[i] >= 0x7f)
            why = buf[i] == '\n' || buf[i] == '\r' ? "has more than one line" : "holds a space, a control or a non-ASCII byte";
    if (why) {
        free(buf);
        return sd_fail(err, SD_ERR_USAGE, "%s: the token %s (want one line of at least 8 visible ASCII bytes)", path, why);
    }
    memmove(buf, buf + a, len - a);
    buf[len - a] = 0;
    *out = buf;
    return SD_OK;
}

int sv_state_open(sv_state **out, const char *ws, const sv_options *o, sd_err *err) {
    *out = NULL;
    char *dp = sd_path_join(ws, DS_FILE), *tp = sd_path_join(ws, TX_FILE), *rp = sd_path_join(ws, RT_FILE),
         *bp = sd_path_join(ws, TBL_FILE), *hp = sd_path_join(ws, "report.html");
    char *token = NULL;
    ds_dataset ds;
    tx_taxonomy tax;
    rt_model rt;
    int have_ds = 0, have_tax = 0, have_rt = 0, rc;
    const char *missing = !sd_file_exists(dp) ? dp : !sd_file_exists(tp) ? tp : !sd_file_exists(bp) ? bp : NULL;
    if (missing) {
        rc = sd_fail(err, SD_ERR_STATE, "serve: %s is missing", missing);
        goto fail;
    }
    if (o->token_file && (rc = sv_token_read(o->token_file, &token, err))) goto fail;
    if ((rc = ds_load(&ds, dp, err))) goto fail;
    have_ds = 1;
    if ((rc = tx_load(&tax, tp, err))) goto fail;
    have_tax = 1;
    if (sd_file_exists(rp)) {
        if ((rc = rt_open(&rt, rp, err))) goto fail;
        have_rt = 1;
    } else {
        sd_log("serve: no %s (run `serendip serve --train-retrieval` or `serendip train`): items ranked by popularity", rp);
    }
    /* the state points at heap copies of the loaded structs, which it then owns */
    sv_state *s = NULL;
    ds_dataset *pds = sd_malloc(sizeof *pds);
    tx_taxonomy *ptax = sd_malloc(sizeof *ptax);
    rt_model *prt = have_rt ? sd_malloc(sizeof *prt) : NULL;
    *pds = ds, *ptax = tax;
    if (have_rt) *prt = rt;
    rc = sv_state_new(&s, pds, ptax, prt, bp, token, hp, o, err);
    if (rc) {
        free(pds), free(ptax), free(prt);
        goto fail;
    }
    s->own_ds_ok = s->own_tax_ok = 1, s->own_rt_ok = have_rt;
    free(dp), free(tp), free(rp), free(bp), free(hp), free(token);
    *out = s;
    return SD_OK;
fail:
    if (have_rt) rt_close(&rt);
    if (have_tax) tx_free(&tax);
    if (have_ds) ds_free(&ds);
    free(dp), free(tp), free(rp), free(bp), free(hp), free(token);
    return rc;
}

void sv_state_free(sv_state *s) {
    if (!s) return;
    table_ref *r = atomic_load(&s->cur);
    if (r) table_release(r);
    rt_index_free(&s->ix);
    if (s->cache) {
        for (int64_t u = 0; u < s->ds->n_users; u++) free(s->cache[u]);
        for (int i = 0; i < 64; i++) pthread_mutex_destroy(&s->cache_lock[i]);
        free(s->cache);
    }
    if (s->own_rt_ok) rt_close((rt_model *)s->rt), free((void *)s->rt);
    if (s->own_tax_ok) tx_free((tx_taxonomy *)s->tax), free((void *)s->tax);
    if (s->own_ds_ok) ds_free((ds_dataset *)s->ds), free((void *)s->ds);
    pthread_mutex_destroy(&s->tlock);
    pthread_mutex_destroy(&s->reload_lock);
    free(s->table_path), free(s->token), free(s->report_path);
    free(s->uctx), free(s->uctx_n), free(s->seen_off), free(s->seen);
    free(s);
}

/* ---------------------------------------------------------------- metrics */

void sv_metrics_record(sv_state *s, int status, double seconds) {
    if (status < 100 || status > 599) status = 0;
    atomic_fetch_add_explicit(&s->by_code[status], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < N_LAT && seconds > LAT_BOUNDS[b]) b++;
    atomic_fetch_add_explicit(&s->lat_bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->lat_sum_ns, (unsigned long long)(seconds * 1e9), memory_order_relaxed);
    atomic_fetch_add_explicit(&s->lat_count, 1, memory_order_relaxed);
}

void sv_metrics_connections(sv_state *s, int delta) { atomic_fetch_add_explicit(&s->conns, delta, memory_order_relaxed); }
void sv_metrics_overload(sv_state *s) { atomic_fetch_add_explicit(&s->overload, 1, memory_order_relaxed); }
void sv_metrics_head_timeout(sv_state *s) { atomic_fetch_add_explicit(&s->head_timeouts, 1, memory_order_relaxed); }

static void handle_metrics(sv_state *s, sv_response *rs) {
    jbuf b;
    jb_init(&b, 4096);
    jb_str(&b, "# HELP serendip_http_requests_total HTTP requests answered, by status code.\n"
               "# TYPE serendip_http_requests_total counter\n");
    for (int c = 0; c < 600; c++) {
        unsigned long long n = atomic_load_explicit(&s->by_code[c], memory_order_relaxed);
        if (n) jb_fmt(&b, "serendip_http_requests_total{code=\"%d\"} %llu\n", c, n);
    }
    jb_str(&b, "# HELP serendip_http_request_duration_seconds Time from request line to response sent.\n"
               "# TYPE serendip_http_request_duration_seconds histogram\n");
    unsigned long long cum = 0;
    for (size_t i = 0; i <= N_LAT; i++) {
        cum += atomic_load_explicit(&s->lat_bucket[i], memory_order_relaxed);
        if (i < N_LAT) jb_fmt(&b, "serendip_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", LAT_BOUNDS[i], cum);
        else jb_fmt(&b, "serendip_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
    }
    jb_fmt(&b, "serendip_http_request_duration_seconds_sum %.9f\n", (double)atomic_load(&s->lat_sum_ns) / 1e9);
    jb_fmt(&b, "serendip_http_request_duration_seconds_count %llu\n", (unsigned long long)atomic_load(&s->lat_count));
    table_ref *r = table_acquire(s);
    jb_fmt(&b, "# HELP serendip_table_version Explore table generation (1 at start, +1 per reload).\n"
               "# TYPE serendip_table_version gauge\nserendip_table_version %lld\n", (long long)r->version);
    jb_fmt(&b, "# HELP serendip_table_info The served explore table.\n# TYPE serendip_table_info gauge\n"
               "serendip_table_info{hash=\"%016llx\",k=\"%d\",clusters=\"%d\",top=\"%d\"} 1\n",
           (unsigned long long)r->hash, r->t.p.k, r->t.p.n_clusters, r->t.p.top);
    table_release(r);
    jb_fmt(&b, "# TYPE serendip_table_reloads_total counter\nserendip_table_reloads_total{result=\"ok\"} %llu\n"
               "serendip_table_reloads_total{result=\"failed\"} %llu\n",
           (unsigned long long)atomic_load(&s->reloads_ok), (unsigned long long)atomic_load(&s->reloads_failed));
    jb_fmt(&b, "# TYPE serendip_explore_cache_total counter\nserendip_explore_cache_total{result=\"hit\"} %llu\n"
               "serendip_explore_cache_total{result=\"miss\"} %llu\n# TYPE serendip_explore_cache_bytes gauge\n"
               "serendip_explore_cache_bytes %zu\n",
           (unsigned long long)atomic_load(&s->cache_hits), (unsigned long long)atomic_load(&s->cache_misses),
           (size_t)atomic_load(&s->cache_used));
    jb_fmt(&b, "# TYPE serendip_http_connections gauge\nserendip_http_connections %lld\n", (long long)atomic_load(&s->conns));
    jb_fmt(&b, "# TYPE serendip_http_overload_rejections_total counter\nserendip_http_overload_rejections_total %llu\n",
           (unsigned long long)atomic_load(&s->overload));
    jb_fmt(&b, "# HELP serendip_http_head_timeouts_total Connections closed (408) for not sending a whole request head in time.\n"
               "# TYPE serendip_http_head_timeouts_total counter\nserendip_http_head_timeouts_total %llu\n",
           (unsigned long long)atomic_load(&s->head_timeouts));
    respond(rs, 200, "text/plain; version=0.0.4", &b);
}

/* ---------------------------------------------------------------- parsing */

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes s[0..n) into out (cap bytes incl. NUL), '+' as space. -1 on a bad escape, an
 * embedded NUL or overflow. */
static int url_decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') c = ' ';
        else if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (c == 0 || o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    out[o] = 0;
    return 0;
}

/* Strict decimal integer (optional '-'), no spaces, no overflow. */
static int parse_i64(const char *s, int64_t *out) {
    if (!*s) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || s[0] == ' ' || s[0] == '+' || s[0] == '\t') return -1;
    *out = v;
    return 0;
}

/* Parses a request body that is exactly one JSON value, with only whitespace around it (cJSON
 * alone stops at the end of the value and ignores what follows). NULL when it is not. */
static cJSON *parse_json_body(const char *body, size_t len) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j) return NULL;
    for (const char *p = end; p < body + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(j);
            return NULL;
        }
    return j;
}

typedef struct {
    int64_t user;
    int has_user;
    int k, n, limit;
} query_params;

/* Parses the query (text after '?', NUL-terminated) into p; unknown keys are ignored. Returns 0 or
 * fills rs with a 400 and returns -1. */
static int parse_query(const char *q, query_params *p, sv_response *rs) {
    while (q && *q) {
        const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(end - q));
        char key[32], val[64];
        size_t klen = (size_t)((eq ? eq : end) - q);
        if (end > q) {
            if (url_decode(q, klen, key, sizeof key)) {
                sv_response_error(rs, 400, "malformed query parameter name");
                return -1;
            }
            const char *v = eq ? eq + 1 : end;
            if (url_decode(v, (size_t)(end - v), val, sizeof val)) {
                sv_response_error(rs, 400, "malformed value of query parameter '%s'", key);
                return -1;
            }
            int64_t x;
            if (!strcmp(key, "user")) {
                if (parse_i64(val, &x)) {
                    sv_response_error(rs, 400, "user must be an integer id");
                    return -1;
                }
                p->user = x, p->has_user = 1;
            } else if (!strcmp(key, "k") || !strcmp(key, "n") || !strcmp(key, "limit")) {
                int lo = 1, hi = key[0] == 'k' ? SV_K_MAX : key[0] == 'n' ? TBL_TOP_MAX : 1000;
                if (parse_i64(val, &x) || x < lo || x > hi) {
                    sv_response_error(rs, 400, "%s must be an integer in %d..%d", key, lo, hi);
                    return -1;
                }
                *(key[0] == 'k' ? &p->k : key[0] == 'n' ? &p->n : &p->limit) = (int)x;
            }
        }
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* ---------------------------------------------------------------- explore */

static int is_seen(const int32_t *seen, int64_t n, int32_t item) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (seen[mid] < item) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && seen[lo] == item;
}

static void put_cluster_head(jbuf *b, const sv_state *s, int32_t c) {
    jb_str(b, "{\"id\":");
    jb_i64(b, c);
    jb_str(b, ",\"description\":");
    jb_quoted(b, s->tax->desc[c]);
}

#define MASK_WORDS_MAX 4096 /* seen bitmap on the stack up to 262144 items; beyond, binary search */

static void put_items(jbuf *b, const sv_state *s, int32_t c, const rt_query *q, const int32_t *seen, int64_t ns,
                      const uint64_t *mask, int k) {
    rt_scored top[SV_K_MAX];
    int n;
    if (s->rt && mask) n = rt_rank_indexed(&s->ix, q, c, mask, k, top);
    else if (s->rt) n = rt_rank(s->rt, s->tax, q, c, seen, ns, NULL, k, top);
    else { /* the taxonomy lists members by descending popularity */
        n = 0;
        for (int64_t i = s->tax->member_off[c]; i < s->tax->member_off[c + 1] && n < k; i++)
            if (!is_seen(seen, ns, s->tax->members[i])) top[n].item = s->tax->members[i], top[n++].score = 0;
    }
    jb_str(b, ",\"items\":[");
    for (int i = 0; i < n; i++) {
        int32_t it = top[i].item;
        jb_str(b, i ? ",{\"id\":" : "{\"id\":");
        jb_i64(b, s->ds->item_ids[it]);
        jb_str(b, ",\"title\":");
        jb_quoted(b, ds_item_title(s->ds, it));
        jb_str(b, ",\"score\":");
        jb_num(b, (double)top[i].score);
        jb_str(b, "}");
    }
    jb_str(b, "]");
}

/* The explore answer for a context and a history (dense ids; seen sorted unique). */
static int64_t explore_answer(sv_state *s, sv_response *rs, const int64_t *user_raw, const int32_t *ctx, int nctx,
                           const int32_t *recent, int nr, const int32_t *seen, int64_t ns, int k, int ncl,
                           int64_t unknown_items) {
    tbl_entry ent[TBL_TOP_MAX];
    int ne = 0;
    uint32_t flags = 0;
    int64_t version;
    table_ref *r = table_acquire(s);
    version = r->version;
    if (nctx == s->k) {
        const tbl_entry *e = NULL;
        int64_t idx = jr_context_index(ctx, s->k, s->m);
        ne = idx < 0 ? 0 : tbl_lookup(&r->t, idx, &e, &flags);
        if (ne < 0 || !e) ne = 0;
        if (ne > ncl) ne = ncl;
        if (ne) memcpy(ent, e, (size_t)ne * sizeof *ent);
    }
    table_release(r);

    jbuf b;
    jb_init(&b, 2048 + (size_t)ne * (size_t)k * 96);
    if (user_raw) jb_fmt(&b, "{\"user\":%lld", (long long)*user_raw);
    else jb_fmt(&b, "{\"user\":null,\"unknown_items\":%lld", (long long)unknown_items);
    jb_fmt(&b, ",\"table_version\":%lld,\"k\":%d,\"context\":[", (long long)version, s->k);
    for (int i = 0; i < nctx; i++) {
        if (i) jb_str(&b, ",");
        put_cluster_head(&b, s, ctx[i]);
        jb_str(&b, "}");
    }
    jb_fmt(&b, "],\"context_complete\":%s,\"fallback\":%s,\"ranker\":\"%s\",\"novel\":[", nctx == s->k ? "true" : "false",
           flags & TBL_FLAG_FALLBACK ? "true" : "false", s->rt ? "sequential" : "popularity");
    rt_query q = {.has_q = 0};
    uint64_t mask_buf[MASK_WORDS_MAX], *mask = NULL;
    size_t words = (size_t)(s->ds->n_items + 63) / 64;
    if (ne && s->rt) {
        rt_query_init(s->rt, recent, nr, &q);
        if (words <= MASK_WORDS_MAX) {
            mask = mask_buf;
            memset(mask, 0, words * sizeof *mask);
            for (int64_t i = 0; i < ns; i++) mask[seen[i] >> 6] |= 1ull << (seen[i] & 63);
        }
    }
    for (int i = 0, first = 1; i < ne; i++) {
        int32_t c = ent[i].cluster;
        if (c < 0 || c >= s->m) continue;
        if (!first) jb_str(&b, ",");
        first = 0;
        put_cluster_head(&b, s, c);
        jb_str(&b, ",\"score\":");
        jb_num(&b, (double)ent[i].align_score);
        jb_str(&b, ",\"logprob\":");
        jb_num(&b, (double)ent[i].novelty_logprob);
        put_items(&b, s, c, &q, seen, ns, mask, k);
        jb_str(&b, "}");
    }
    jb_str(&b, "]}\n");
    respond(rs, 200, "application/json", &b);
    return version;
}

/* Copies user u's cached answer into rs when it was computed for (k, n) on the current table. */
static int cache_get(sv_state *s, int64_t u, int k, int n, sv_response *rs) {
    int64_t v = atomic_load(&s->cur_version);
    pthread_mutex_t *mu = &s->cache_lock[u & 63];
    pthread_mutex_lock(mu);
    const cache_entry *e = s->cache[u];
    int hit = e && e->version == v && e->k == k && e->n == n;
    if (hit) {
        jbuf b;
        jb_init(&b, e->len + 1);
        jb_raw(&b, e->body, e->len);
        respond(rs, 200, "application/json", &b);
    }
    pthread_mutex_unlock(mu);
    atomic_fetch_add_explicit(hit ? &s->cache_hits : &s->cache_misses, 1, memory_order_relaxed);
    return hit;
}

/* Stores a computed answer in user u's slot, within the budget (a replaced entry frees its bytes). */
static void cache_put(sv_state *s, int64_t u, int k, int n, int64_t version, const sv_response *rs) {
    if (rs->status != 200) return;
    size_t need = sizeof(cache_entry) + rs->len;
    if (atomic_fetch_add(&s->cache_used, need) + need > s->o.cache_bytes) {
        atomic_fetch_sub(&s->cache_used, need);
        return;
    }
    cache_entry *e = sd_malloc(need);
    e->version = version, e->k = k, e->n = n, e->len = rs->len;
    memcpy(e->body, rs->body, rs->len);
    pthread_mutex_t *mu = &s->cache_lock[u & 63];
    pthread_mutex_lock(mu);
    cache_entry *old = s->cache[u];
    s->cache[u] = e;
    pthread_mutex_unlock(mu);
    if (old) atomic_fetch_sub(&s->cache_used, sizeof(cache_entry) + old->len);
    free(old);
}

void sv_cache_stats(const sv_state *s, uint64_t *hits, uint64_t *misses) {
    *hits = atomic_load(&((sv_state *)s)->cache_hits);
    *misses = atomic_load(&((sv_state *)s)->cache_misses);
}

static int recent_limit(const sv_state *s) { return s->rt ? s->rt->recent : 10; }

static void handle_explore_get(sv_state *s, const char *query, sv_response *rs) {
    query_params p = {.k = SV_K_DEFAULT, .n = TBL_TOP_MAX};
    if (parse_query(query, &p, rs)) return;
    if (!p.has_user) return sv_response_error(rs, 400, "missing query parameter 'user'");
    int64_t u = ds_find_user(s->ds, p.user);
    if (u < 0) return sv_response_error(rs, 404, "unknown user %lld", (long long)p.user);
    if (s->cache && cache_get(s, u, p.k, p.n, rs)) return;
    int32_t recent[RT_RECENT_MAX];
    int nr = rt_user_recent(s->ds, u, recent_limit(s), recent);
    int64_t version = explore_answer(s, rs, &p.user, s->uctx + u * s->k, s->uctx_n[u], recent, nr, s->seen + s->seen_off[u],
                                     s->seen_off[u + 1] - s->seen_off[u], p.k, p.n, 0);
    if (s->cache) cache_put(s, u, p.k, p.n, version, rs);
}

/* Reads an integer-valued JSON number in [lo, hi]. */
static int json_int(const cJSON *v, double lo, double hi, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double x = v->valuedouble;
    if (!(x >= lo && x <= hi) || x != (double)(int64_t)x) return -1;
    *out = (int64_t)x;
    return 0;
}

static void handle_explore_post(sv_state *s, const sv_request *rq, sv_response *rs) {
    if (rq->body_too_large) return sv_response_error(rs, 413, "request body larger than %zu bytes", s->o.max_body);
    if (!rq->body || !rq->body_len) return sv_response_error(rs, 400, "empty body: expected {\"items\": [ids...], \"k\": N}");
    cJSON *j = parse_json_body(rq->body, rq->body_len);
    if (!j) return sv_response_error(rs, 400, "malformed JSON body (one JSON value, nothing after it but whitespace)");
    int64_t k = SV_K_DEFAULT, ncl = TBL_TOP_MAX;
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items"), *jk = cJSON_GetObjectItemCaseSensitive(j, "k"),
                *jn = cJSON_GetObjectItemCaseSensitive(j, "n");
    if (!cJSON_IsObject(j) || !cJSON_IsArray(items)) {
        cJSON_Delete(j);
        return sv_response_error(rs, 400, "body must be an object with an array \"items\" of item ids");
    }
    if ((jk && json_int(jk, 1, SV_K_MAX, &k)) || (jn && json_int(jn, 1, TBL_TOP_MAX, &ncl))) {
        cJSON_Delete(j);
        return sv_response_error(rs, 400, "\"k\" must be an integer in 1..%d and \"n\" in 1..%d", SV_K_MAX, TBL_TOP_MAX);
    }
    int n = cJSON_GetArraySize(items);
    if (n > SV_ITEMS_MAX) {
        cJSON_Delete(j);
        return sv_response_error(rs, 400, "at most %d items", SV_ITEMS_MAX);
    }
    int32_t dense[SV_ITEMS_MAX], seen[SV_ITEMS_MAX];
    int nd = 0;
    int64_t unknown = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items) {
        int64_t raw;
        if (json_int(it, -9007199254740992.0, 9007199254740992.0, &raw)) {
            cJSON_Delete(j);
            return sv_response_error(rs, 400, "items must be integer ids");
        }
        int64_t d = s->ds ? ds_find_item(s->ds, raw) : -1;
        if (d < 0) unknown++;
        else dense[nd++] = (int32_t)d;
    }
    cJSON_Delete(j);
    int32_t ctx[JR_K_MAX];
    int nctx = jr_context_of_items(s->tax, dense, nd, s->k, ctx);
    memcpy(seen, dense, (size_t)nd * sizeof *seen);
    int64_t ns = sort_unique(seen, nd);
    int nr = nd < recent_limit(s) ? nd : recent_limit(s);
    explore_answer(s, rs, NULL, ctx, nctx, dense + nd - nr, nr, seen, ns, (int)k, (int)ncl, unknown);
}

/* ---------------------------------------------------------------- other routes */

static void handle_cluster(sv_state *s, const char *id, const char *query, sv_response *rs) {
    int64_t c;
    if (parse_i64(id, &c)) return sv_response_error(rs, 400, "cluster id must be an integer");
    if (c < 0 || c >= s->m) return sv_response_error(rs, 404, "unknown cluster %lld (0..%d)", (long long)c, s->m - 1);
    query_params p = {.k = 20};
    if (parse_query(query, &p, rs)) return;
    const tx_taxonomy *t = s->tax;
    jbuf b;
    jb_init(&b, 4096);
    put_cluster_head(&b, s, (int32_t)c);
    int32_t par = t->parent ? t->parent[c] : -1;
    jb_fmt(&b, ",\"parent\":%d,\"parent_description\":", par);
    if (par >= 0 && par < t->n_top && t->top_desc && t->top_desc[par]) jb_quoted(&b, t->top_desc[par]);
    else jb_str(&b, "null");
    jb_fmt(&b, ",\"size\":%lld,\"items\":[", (long long)(t->member_off[c + 1] - t->member_off[c]));
    int n = 0;
    for (int64_t i = t->member_off[c]; i < t->member_off[c + 1] && n < p.k; i++, n++) {
        int32_t it = t->members[i];
        jb_fmt(&b, "%s{\"id\":%lld,\"title\":", n ? "," : "", (long long)s->ds->item_ids[it]);
        jb_quoted(&b, ds_item_title(s->ds, it));
        jb_str(&b, "}");
    }
    jb_str(&b, "]}\n");
    respond(rs, 200, "application/json", &b);
}

static void handle_users(sv_state *s, const char *query, sv_response *rs) {
    query_params p = {.limit = 20};
    if (parse_query(query, &p, rs)) return;
    jbuf b;
    jb_init(&b, 256 + (size_t)p.limit * 24);
    jb_str(&b, "{\"users\":[");
    int n = 0;
    for (int64_t u = 0; u < s->ds->n_users && n < p.limit; u++)
        if (s->uctx_n[u] == s->k) jb_fmt(&b, "%s%lld", n++ ? "," : "", (long long)s->ds->user_ids[u]);
    jb_str(&b, "]}\n");
    respond(rs, 200, "application/json", &b);
}

static void handle_health(sv_state *s, sv_response *rs) {
    table_ref *r = table_acquire(s);
    jbuf b;
    jb_init(&b, 512);
    jb_fmt(&b,
           "{\"status\":\"ok\",\"table_version\":%lld,\"table_hash\":\"%016llx\",\"k\":%d,\"clusters\":%d,"
           "\"users\":%lld,\"items\":%lld,\"ranker\":\"%s\",\"reload\":%s,\"report\":%s}\n",
           (long long)r->version, (unsigned long long)r->hash, s->k, s->m, (long long)s->ds->n_users,
           (long long)s->ds->n_items, s->rt ? "sequential" : "popularity", s->token ? "true" : "false",
           s->report_path && sd_file_exists(s->report_path) ? "true" : "false");
    table_release(r);
    respond(rs, 200, "application/json", &b);
}

/* Constant-time comparison of the bearer token. The scheme name is case-insensitive (RFC 9110
 * section 11.1), followed by one or more spaces. */
static int token_ok(const sv_state *s, const char *auth) {
    if (!auth || strncasecmp(auth, "Bearer ", 7)) return 0;
    const char *given = auth + 7;
    while (*given == ' ') given++;
    size_t n = strlen(s->token), g = strlen(given);
    unsigned diff = (unsigned)(n ^ g);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)s->token[i] ^ (unsigned char)(i < g ? given[i] : 0);
    return diff == 0;
}

static void handle_reload(sv_state *s, const sv_request *rq, sv_response *rs) {
    if (!s->token) return sv_response_error(rs, 403, "reload is disabled (start the server with --token-file)");
    if (!token_ok(s, rq->auth)) {
        sv_response_error(rs, 401, "missing or wrong bearer token");
        rs->auth_challenge = 1;
        return;
    }
    sd_err err = {0};
    if (sv_reload(s, &err)) return sv_response_error(rs, err.code == SD_ERR_DATA ? 409 : 500, "reload refused: %s", err.msg);
    table_ref *r = table_acquire(s);
    jbuf b;
    jb_init(&b, 128);
    jb_fmt(&b, "{\"table_version\":%lld,\"table_hash\":\"%016llx\"}\n", (long long)r->version, (unsigned long long)r->hash);
    table_release(r);
    respond(rs, 200, "application/json", &b);
}

static void handle_report(sv_state *s, sv_response *rs) {
    char *buf;
    size_t len;
    sd_err err;
    if (!s->report_path || !sd_file_exists(s->report_path) || sd_read_file(s->report_path, &buf, &len, &err))
        return sv_response_error(rs, 404, "no report.html in the workspace (run `serendip report`)");
    memset(rs, 0, sizeof *rs);
    rs->status = 200, rs->content_type = "text/html; charset=utf-8", rs->body = buf, rs->len = len;
}

/* ---------------------------------------------------------------- routing */

static int method_is(const char *m, const char *want) { return m && !strcmp(m, want); }

static int allow(const sv_request *rq, sv_response *rs, const char *allowed) {
    int get = method_is(rq->method, "GET") || method_is(rq->method, "HEAD");
    int ok = (strstr(allowed, "GET") && get) || (strstr(allowed, "POST") && method_is(rq->method, "POST"));
    if (!ok) {
        sv_response_error(rs, 405, "method %.16s not allowed here (allowed: %s)", rq->method ? rq->method : "?", allowed);
        rs->allow = allowed;
    }
    return ok;
}

void sv_handle(sv_state *s, const sv_request *rq, sv_response *rs) {
    char path[256];
    const char *url = rq->url ? rq->url : "", *qm = strchr(url, '?');
    size_t plen = qm ? (size_t)(qm - url) : strlen(url);
    if (plen >= sizeof path) return sv_response_error(rs, 404, "no such path");
    memcpy(path, url, plen);
    path[plen] = 0;
    const char *query = qm ? qm + 1 : "";
    if (!strcmp(path, "/v1/explore")) {
        if (!allow(rq, rs, "GET, HEAD, POST")) return;
        if (method_is(rq->method, "POST")) return handle_explore_post(s, rq, rs);
        return handle_explore_get(s, query, rs);
    }
    if (!strncmp(path, "/v1/clusters/", 13)) {
        if (!allow(rq, rs, "GET, HEAD")) return;
        return handle_cluster(s, path + 13, query, rs);
    }
    if (!strcmp(path, "/v1/users")) {
        if (!allow(rq, rs, "GET, HEAD")) return;
        return handle_users(s, query, rs);
    }
    if (!strcmp(path, "/healthz")) {
        if (!allow(rq, rs, "GET, HEAD")) return;
        return handle_health(s, rs);
    }
    if (!strcmp(path, "/metrics")) {
        if (!allow(rq, rs, "GET, HEAD")) return;
        return handle_metrics(s, rs);
    }
    if (!strcmp(path, "/admin/reload")) {
        if (!allow(rq, rs, "POST")) return;
        return handle_reload(s, rq, rs);
    }
    if (!strcmp(path, "/") || !strcmp(path, "/index.html")) {
        if (!allow(rq, rs, "GET, HEAD")) return;
        memset(rs, 0, sizeof *rs);
        rs->status = 200, rs->content_type = "text/html; charset=utf-8";
        rs->body = (char *)sv_page_html, rs->len = (size_t)(sv_page_html_end - sv_page_html) - 1, rs->body_static = 1;
        return;
    }
    if (!strcmp(path, "/report") || !strcmp(path, "/report.html")) {
        if (!allow(rq, rs, "GET, HEAD")) return;
        return handle_report(s, rs);
    }
    sv_response_error(rs, 404, "no such path (see /healthz, /v1/explore, /v1/clusters/ID, /metrics)");
}
