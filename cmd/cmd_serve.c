/* cmd_serve.c - `serendip serve`: the HTTP API over a workspace, plus the retrieval model's
 * training (--train-retrieval, what `serendip train` runs) and evaluation (--eval-retrieval). */
#include "cmd.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/journeys.h"
#include "serendip/retrieve.h"
#include "serendip/serve.h"

static int eval_retrieval(const char *ws, int json) {
    rt_eval e;
    sd_err err = {0};
    if (rt_evaluate_ws(ws, 10, &e, &err)) return cmd_fail(&err);
    if (json) {
        cJSON *j = rt_eval_json(&e);
        char *s = cJSON_Print(j);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
        return 0;
    }
    printf("restricted retrieval, test window, full ranking within the target's cluster\n");
    printf("  cases %lld (skipped without history %lld), mean candidates per case %.1f\n", (long long)e.cases,
           (long long)e.skipped_no_history, e.mean_candidates);
    printf("  %-28s %8s %8s\n", "ranker", "HR@10", "NDCG@10");
    printf("  %-28s %8.4f %8.4f\n", "sequential skip-gram", e.hr, e.ndcg);
    printf("  %-28s %8.4f %8.4f\n", "popularity within cluster", e.pop_hr, e.pop_ndcg);
    if (e.pop_hr > 0) printf("  ratio model / popularity    %8.3f %8.3f\n", e.hr / e.pop_hr, e.pop_ndcg > 0 ? e.ndcg / e.pop_ndcg : 0);
    return 0;
}

int cmd_serve(int argc, char **argv) {
    const char *ws = NULL, *bind = "127.0.0.1", *token_file = NULL, *positive = NULL, *mode = "thread";
    int port = SV_DEFAULT_PORT, threads = 2, max_conns = 512, max_body = 65536, header_mem = 16384, timeout = 30;
    int head_timeout = 10;
    int cache_mb = 256;
    int train = 0, eval = 0, json = 0, verbose = 0;
    rt_options ro = RT_OPTIONS_DEFAULT;
    int rt_dim = ro.dim, rt_epochs = ro.epochs, rt_window = ro.window;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace with dataset.bin, taxonomy.bin, explore.tbl (and retrieval.bin)"},
        {"port", FL_INT, &port, "TCP port (0: any free port, printed at start)"},
        {"bind", FL_STR, &bind, "listen address (IPv4 or IPv6 literal)"},
        {"mode", FL_STR, &mode, "connection handling: thread (one per connection), epoll or poll (a pool of --threads loops)"},
        {"threads", FL_INT, &threads, "loops of the epoll and poll modes"},
        {"token-file", FL_STR, &token_file, "file holding the bearer token of POST /admin/reload (absent: reload disabled)"},
        {"max-conns", FL_INT, &max_conns, "connections served at once; beyond, requests get 503"},
        {"max-body", FL_INT, &max_body, "largest request body in bytes (413 beyond)"},
        {"header-mem", FL_INT, &header_mem, "per-connection memory for the request line and headers"},
        {"timeout", FL_INT, &timeout, "idle connection timeout in seconds"},
        {"head-timeout", FL_INT, &head_timeout, "seconds a client has to send a whole request head (408 beyond; 0: no limit)"},
        {"cache-mb", FL_INT, &cache_mb, "budget of the per-user answer cache in MiB (0: compute every answer)"},
        {"positive", FL_STR, &positive, "positive rule for users' contexts (default: the workspace's, from journeys.bin)"},
        {"train-retrieval", FL_BOOL, &train, "train the retrieval model (ws/retrieval.bin) and exit"},
        {"eval-retrieval", FL_BOOL, &eval, "print HR@10 / NDCG@10 of the retrieval model and exit"},
        {"rt-dim", FL_INT, &rt_dim, "retrieval embedding dimension (with --train-retrieval)"},
        {"rt-epochs", FL_INT, &rt_epochs, "retrieval training epochs (with --train-retrieval)"},
        {"rt-window", FL_INT, &rt_window, "retrieval forward window (with --train-retrieval)"},
        {"json", FL_BOOL, &json, "JSON output (with --eval-retrieval)"},
        {"verbose", FL_BOOL, &verbose, "log libmicrohttpd messages"},
        {0},
    };
    int rc = fl_parse("serve --ws DIR [--port P] [--bind ADDR] [--threads N] [--token-file F]",
                      "HTTP API over the explore table: GET /v1/explore?user=ID&k=N, POST /v1/explore, GET "
                      "/v1/clusters/ID, /healthz, /metrics, POST /admin/reload, and a page at /.",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws("serve", ws))) return rc;
    if (verbose) sd_verbosity = 2;
    sd_err err = {0};
    if (train) {
        ro.dim = rt_dim, ro.epochs = rt_epochs, ro.window = rt_window;
        if (rt_train(ws, &ro, &err)) return cmd_fail(&err);
        printf("wrote %s/%s\n", ws, RT_FILE);
        return eval ? eval_retrieval(ws, json) : 0;
    }
    if (eval) return eval_retrieval(ws, json);

    sv_options o = SV_OPTIONS_DEFAULT;
    o.bind = bind, o.port = port, o.threads = threads, o.token_file = token_file, o.max_conns = max_conns;
    o.timeout_s = timeout, o.head_timeout_s = head_timeout;
    if (max_body < 1 || max_body > (1 << 30) || header_mem < 1024 || header_mem > (1 << 24) || timeout < 1 ||
        head_timeout < 0 || cache_mb < 0 || cache_mb > (1 << 20) || max_conns < 1 || max_conns > 100000)
        return cmd_usage_error("serve", "--max-body must be in 1..2^30, --header-mem in 1024..2^24, --timeout >= 1, "
                                        "--head-timeout >= 0, --cache-mb in 0..2^20, --max-conns in 1..100000");
    o.cache_bytes = (size_t)cache_mb << 20;
    o.max_body = (size_t)max_body, o.conn_memory = (size_t)header_mem;
    if (!strcmp(mode, "epoll")) o.mode = SV_MODE_EPOLL;
    else if (!strcmp(mode, "poll")) o.mode = SV_MODE_POLL;
    else if (!strcmp(mode, "thread")) o.mode = SV_MODE_THREAD;
    else return cmd_usage_error("serve", "--mode must be epoll, poll or thread, not '%s'", mode);
    if (jr_resolve_rule(ws, positive, &o.rule, &err)) return cmd_fail(&err);

    /* signals are taken synchronously by this thread; server threads inherit the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT), sigaddset(&set, SIGTERM), sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    double t0 = sd_now();
    sv_state *st;
    if (sv_state_open(&st, ws, &o, &err)) return cmd_fail(&err);
    sv_server *srv;
    if (sv_server_start(st, &o, &srv, &err)) {
        sv_state_free(st);
        return cmd_fail(&err);
    }
    const char *fmt = strchr(o.bind, ':') ? "serving http://[%s]:%d/ (ready in %.2f s; Ctrl-C stops, SIGHUP reloads the table)\n"
                                          : "serving http://%s:%d/ (ready in %.2f s; Ctrl-C stops, SIGHUP reloads the table)\n";
    printf(fmt, o.bind, sv_server_port(srv), sd_now() - t0);
    fflush(stdout);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig)) continue;
        if (sig != SIGHUP) break;
        sv_reload(st, NULL); /* a refusal is logged by sv_reload */
    }
    sd_log("serve: stopping");
    sv_server_stop(srv);
    sv_state_free(st);
    return 0;
}
