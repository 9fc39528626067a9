/* flags.c - flag parsing shared by every command (see cmd.h). Hand-written because getopt_long
 * neither prints typed defaults nor validates numbers, and argp is glibc-only. */
#include "cmd.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void print_default(const fl_spec *s) {
    switch (s->type) {
    case FL_STR: {
        const char *v = *(const char **)s->ptr;
        if (v) fprintf(stdout, " (default: %s)", v);
        break;
    }
    case FL_INT: fprintf(stdout, " (default: %d)", *(int *)s->ptr); break;
    case FL_I64: fprintf(stdout, " (default: %lld)", (long long)*(int64_t *)s->ptr); break;
    case FL_FLOAT: fprintf(stdout, " (default: %g)", (double)*(float *)s->ptr); break;
    case FL_BOOL: break;
    }
}

static void print_help(const char *usage, const char *summary, const fl_spec *specs) {
    fprintf(stdout, "usage: serendip %s\n\n%s\n\nflags:\n", usage, summary);
    for (const fl_spec *s = specs; s->name; s++) {
        const char *arg = s->type == FL_STR ? " S" : s->type == FL_BOOL ? "" : s->type == FL_FLOAT ? " X" : " N";
        char left[64];
        snprintf(left, sizeof left, "--%s%s", s->name, arg);
        fprintf(stdout, "  %-22s %s", left, s->help);
        print_default(s);
        fputc('\n', stdout);
    }
    fprintf(stdout, "  %-22s %s\n", "--help", "show this help");
}

int cmd_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "serendip %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(run 'serendip %s --help' for the flags)\n", cmd);
    va_end(ap);
    return 2;
}

int fl_parse(const char *usage, const char *summary, fl_spec *specs, int argc, char **argv) {
    const char *cmd = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(usage, summary, specs);
            return FL_HELP;
        }
        if (strncmp(a, "--", 2) != 0) return cmd_usage_error(cmd, "unexpected argument '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        fl_spec *s = specs;
        while (s->name && !(strlen(s->name) == nlen && !strncmp(s->name, name, nlen))) s++;
        if (!s->name) return cmd_usage_error(cmd, "unknown flag '--%.*s'", (int)nlen, name);
        if (s->type == FL_BOOL) {
            if (eq) return cmd_usage_error(cmd, "flag '--%s' takes no value", s->name);
            *(int *)s->ptr = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return cmd_usage_error(cmd, "flag '--%s' needs a value", s->name);
        char *end = NULL;
        errno = 0;
        switch (s->type) {
        case FL_STR: *(const char **)s->ptr = v; break;
        case FL_INT: {
            long x = strtol(v, &end, 10);
            if (errno || end == v || *end || x < -2147483647L || x > 2147483647L)
                return cmd_usage_error(cmd, "flag '--%s': '%s' is not an integer", s->name, v);
            *(int *)s->ptr = (int)x;
            break;
        }
        case FL_I64: {
            long long x = strtoll(v, &end, 10);
            if (errno || end == v || *end) return cmd_usage_error(cmd, "flag '--%s': '%s' is not an integer", s->name, v);
            *(int64_t *)s->ptr = x;
            break;
        }
        case FL_FLOAT: {
            float x = strtof(v, &end);
            if (errno || end == v || *end || !isfinite(x))
                return cmd_usage_error(cmd, "flag '--%s': '%s' is not a finite number", s->name, v);
            *(float *)s->ptr = x;
            break;
        }
        case FL_BOOL: break;
        }
    }
    return 0;
}

int cmd_fail(const sd_err *err) {
    fprintf(stderr, "serendip: error: %s\n", err->msg);
    if (err->code == SD_ERR_STATE) fprintf(stderr, "serendip: hint: run the earlier pipeline stages first (see README.md, 'The pipeline')\n");
    return err->code == SD_ERR_USAGE ? 2 : 1;
}

int cmd_need_ws(const char *cmd, const char *ws) {
    if (ws && *ws) return 0;
    return cmd_usage_error(cmd, "--ws DIR is required (the workspace folder)");
}

int cmd_check_out(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? sd_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : sd_strdup(".");
    int ok = access(dir, W_OK) == 0;
    if (!ok) fprintf(stderr, "serendip: error: %s: the output folder does not exist or is not writable\n", dir);
    free(dir);
    return ok ? 0 : 1;
}

/* ---------------------------------------------------------------- memory bounds */

int cmd_check_memory(const char *cmd, double bytes, const char *flags) {
    double have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE);
    if (have <= 0 || bytes <= have) return 0;
    return cmd_usage_error(cmd, "%s need at least %.1f GiB, more than this machine's %.1f GiB of memory", flags,
                           bytes / 1073741824.0, have / 1073741824.0);
}

/* lm_param_count in double (no overflow for absurd flags). */
static double params_of(const lm_config *c, double V) {
    double D = c->dim, L = c->n_layers, H = c->hidden_dim, KvD = c->n_heads > 0 ? D / c->n_heads * c->n_kv_heads : D;
    return V * D * (c->tied ? 1 : 2) + L * (2 * D + 2 * D * D + 2 * KvD * D + 3 * H * D) + D;
}

double cmd_train_bytes(const lm_config *c, int vocab, int batch) {
    double V = vocab > 0 ? vocab : c->vocab_size;
    return 16.0 * params_of(c, V) + 4.0 * batch * c->seq_len * V;
}

double cmd_infer_bytes(const lm_config *c, int rows, int seq) {
    double KvD = c->n_heads > 0 ? (double)c->dim / c->n_heads * c->n_kv_heads : c->dim;
    return 4.0 * (params_of(c, c->vocab_size) + 2.0 * rows * seq * c->n_layers * KvD + (double)rows * c->vocab_size);
}

int cmd_stage_fail(const char *cmd, const sd_err *err) {
    if (err->code == SD_ERR_USAGE) return cmd_usage_error(cmd, "%s", err->msg);
    return cmd_fail(err);
}

int cmd_stage_parse(const sd_stage_text *t, const char **ws, const char *ws_help, const fl_spec *stage, int n,
                    const fl_spec *extra, int argc, char **argv) {
    fl_spec specs[SD_STAGE_OPTS + 8] = {{"ws", FL_STR, ws, ws_help}};
    int k = 1;
    for (int i = 0; i < n && k < SD_STAGE_OPTS + 7; i++) specs[k++] = stage[i];
    for (const fl_spec *e = extra; e && e->name && k < SD_STAGE_OPTS + 7; e++) specs[k++] = *e;
    int rc = fl_parse(t->usage, t->summary, specs, argc, argv);
    return rc ? rc : cmd_need_ws(argv[0], *ws);
}
