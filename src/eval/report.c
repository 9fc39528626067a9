/* report.c - report.html from metrics.json: a self-contained page (inline SVG and CSS, no
 * JavaScript, opens from the file system) with each metric against n for the best-of-n arms
 * (baselines as horizontal lines, CIs as bands), novelty-vs-relevance scatters for every arm, the
 * taxonomy's cluster sizes, the table of arms x metrics, and findings computed from the numbers
 * (never written in advance): did relevance rise with n while novelty held, and did the LLM arms
 * beat the empirical transition table. HTML is written by hand: it is a few tags of text. */
#include "serendip/eval.h"
#include "serendip/svg.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ev_arm_name_of_table(const char *file, char *name, size_t cap, int *n) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t len = strlen(base);
    if (len > 4 && !strcmp(base + len - 4, ".tbl")) len -= 4;
    *n = 0;
    /* "<prefix>_n<digits>" */
    const char *us = NULL;
    for (size_t i = 0; i + 1 < len; i++)
        if (base[i] == '_' && base[i + 1] == 'n') us = base + i;
    if (us) {
        const char *d = us + 2;
        size_t nd = 0;
        while (d + nd < base + len && isdigit((unsigned char)d[nd])) nd++;
        if (nd && d + nd == base + len && nd < 9) *n = atoi(d);
    }
    size_t plen = *n ? (size_t)(us - base) : len;
    if (*n && plen == 7 && !strncmp(base, "explore", 7)) {
        if (*n == 1) snprintf(name, cap, "best-of-1 (novelty alone)");
        else snprintf(name, cap, "best-of-%d", *n);
    } else if (*n && plen == 6 && !strncmp(base, "single", 6)) {
        if (*n == 1) snprintf(name, cap, "single model");
        else snprintf(name, cap, "single model (best-of-%d)", *n);
    } else {
        snprintf(name, cap, "%.*s", (int)len, base);
    }
}

/* ================================================================ reading metrics.json */

typedef struct {
    const char *name, *kind, *table;
    int n;
    double v[EV_N_METRICS], lo[EV_N_METRICS], hi[EV_N_METRICS];
    int has[EV_N_METRICS];
} rep_arm;

static double num_or_nan(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static int metric_of_key(const char *key) {
    for (int m = 0; m < EV_N_METRICS; m++)
        if (!strcmp(ev_metric_infos[m].key, key)) return m;
    return -1;
}

/* A best-of-n arm of the n sweep: an LLM table from explore_n*.tbl (or the planner's explore.tbl). */
static int is_sweep(const rep_arm *a) {
    return !strcmp(a->kind, "llm") && a->n > 0 && a->table &&
           (!strncmp(a->table, "explore_n", 9) || !strcmp(a->table, "explore.tbl"));
}

static void fmt_ci(char *s, size_t cap, const rep_arm *a, int m) {
    if (!a->has[m] || !isfinite(a->v[m])) snprintf(s, cap, "&ndash;");
    else if (isfinite(a->lo[m])) snprintf(s, cap, "%.3f <small>[%.3f, %.3f]</small>", a->v[m], a->lo[m], a->hi[m]);
    else snprintf(s, cap, "%.3f", a->v[m]);
}

/* ================================================================ findings */

static const cJSON *g_root; /* the metrics.json being reported (for the paired comparisons) */

/* -1 when a is below b, +1 above, 0 when the data cannot tell: by the paired difference's 95%
 * interval when metrics.json has it (it excludes 0), else when the two intervals do not overlap. */
static int ci_compare(const rep_arm *a, const rep_arm *b, int m) {
    const cJSON *c, *cmp = g_root ? cJSON_GetObjectItemCaseSensitive(g_root, "comparisons") : NULL;
    cJSON_ArrayForEach(c, cmp) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, "arm"), *y = cJSON_GetObjectItemCaseSensitive(c, "against");
        int sign = 0;
        if (cJSON_IsString(x) && cJSON_IsString(y) && !strcmp(x->valuestring, a->name) && !strcmp(y->valuestring, b->name)) sign = 1;
        if (cJSON_IsString(x) && cJSON_IsString(y) && !strcmp(x->valuestring, b->name) && !strcmp(y->valuestring, a->name)) sign = -1;
        if (!sign) continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "metrics"), ev_metric_infos[m].key);
        double lo = num_or_nan(v, "lo"), hi = num_or_nan(v, "hi");
        if (!isfinite(lo) || !isfinite(hi)) break;
        return lo > 0 ? sign : hi < 0 ? -sign : 0;
    }
    if (!isfinite(a->lo[m]) || !isfinite(b->lo[m])) return 0;
    if (a->lo[m] > b->hi[m]) return 1;
    if (a->hi[m] < b->lo[m]) return -1;
    return 0;
}

static void findings(svg_buf *h, rep_arm *arms, int na) {
    static const int relevance[] = {EV_POS_POOLED, EV_COLLECTIVE, EV_HIT};
    svg_buf_printf(h, "<h2>Findings</h2>\n<p class=\"note\">Computed from the figures above. Two arms differ when "
                      "the 95%% interval of their paired difference (the same bootstrap resamples of users) excludes "
                      "0; where metrics.json has no paired comparison, when their own intervals do not overlap.</p>\n");
    const rep_arm *lo_n = NULL, *hi_n = NULL, *tr = NULL;
    for (int i = 0; i < na; i++) {
        if (!strcmp(arms[i].name, ev_baseline_names[EV_BASE_TRANSITION])) tr = &arms[i];
        if (!is_sweep(&arms[i])) continue;
        if (!lo_n || arms[i].n < lo_n->n) lo_n = &arms[i];
        if (!hi_n || arms[i].n > hi_n->n) hi_n = &arms[i];
    }
    /* the short answer, on the headline relevance metric (pooled positive rate) */
    const int R = EV_POS_POOLED;
    svg_buf_printf(h, "<p class=\"summary\"><b>In short:</b> ");
    if (lo_n && hi_n != lo_n && isfinite(lo_n->v[R]) && isfinite(hi_n->v[R])) {
        int c = ci_compare(hi_n, lo_n, R), nv = ci_compare(hi_n, lo_n, EV_NOVELTY);
        svg_buf_printf(h, "relevance (pooled positive rate) %s from n = %d to n = %d, and novelty %s. ",
                       c > 0 ? "<b>rose</b>" : c < 0 ? "<b>fell</b>" : "<b>did not change beyond noise</b>", lo_n->n,
                       hi_n->n, nv < 0 ? "<b>did not hold</b>" : "<b>held</b>");
    } else {
        svg_buf_printf(h, "no trend with n can be judged (fewer than two best-of-n tables). ");
    }
    int beat = 0, n_llm = 0;
    for (int i = 0; i < na; i++) {
        if (strcmp(arms[i].kind, "llm") || !isfinite(arms[i].v[R])) continue;
        n_llm++;
        beat += tr && isfinite(tr->v[R]) && ci_compare(&arms[i], tr, R) > 0;
    }
    if (tr && n_llm)
        svg_buf_printf(h, "%s LLM arm%s beat the empirical transition table on it (%d of %d).</p>\n",
                       beat == n_llm ? "Every" : beat ? "Some" : "No", beat == n_llm && n_llm == 1 ? "" : "s", beat, n_llm);
    else
        svg_buf_printf(h, "There is no LLM arm and transition table to compare.</p>\n");
    svg_buf_printf(h, "<ul>\n");
    if (!lo_n || lo_n == hi_n) {
        svg_buf_printf(h, "<li>Relevance against n: fewer than two best-of-n tables were found, so no trend can be "
                          "judged.</li>\n");
    } else {
        for (size_t r = 0; r < sizeof relevance / sizeof relevance[0]; r++) {
            int m = relevance[r];
            if (!lo_n->has[m] || !hi_n->has[m] || !isfinite(lo_n->v[m]) || !isfinite(hi_n->v[m])) continue;
            int c = ci_compare(hi_n, lo_n, m);
            const char *verdict = c > 0                        ? "<b>rose</b>"
                                  : c < 0                      ? "<b>fell</b>"
                                  : hi_n->v[m] > lo_n->v[m]    ? "rose slightly (<b>within noise</b>)"
                                  : hi_n->v[m] < lo_n->v[m]    ? "fell slightly (<b>within noise</b>)"
                                                               : "did not change";
            svg_buf_printf(h, "<li>%s %s from n = %d (%.3f) to n = %d (%.3f).</li>\n", ev_metric_infos[m].name,
                           verdict, lo_n->n, lo_n->v[m], hi_n->n, hi_n->v[m]);
        }
        if (lo_n->has[EV_NOVELTY] && hi_n->has[EV_NOVELTY]) {
            int c = ci_compare(hi_n, lo_n, EV_NOVELTY);
            svg_buf_printf(h, "<li>Novelty %s: cluster novelty rate %.3f at n = %d, %.3f at n = %d.</li>\n",
                           c < 0 ? "<b>did not hold</b> (it fell beyond noise)"
                                 : c > 0 ? "<b>held</b> (it rose)" : "<b>held</b> (no change beyond noise)",
                           lo_n->v[EV_NOVELTY], lo_n->n, hi_n->v[EV_NOVELTY], hi_n->n);
        }
    }
    /* LLM arms against the empirical transition table */
    n_llm = 0;
    for (int i = 0; i < na; i++) n_llm += !strcmp(arms[i].kind, "llm");
    if (!tr || !n_llm) {
        svg_buf_printf(h, "<li>LLM arms against the empirical transition table: %s.</li>\n",
                       !n_llm ? "no LLM table was evaluated" : "the transition-table baseline is missing");
    } else {
        for (size_t r = 0; r < sizeof relevance / sizeof relevance[0]; r++) {
            int m = relevance[r];
            if (!tr->has[m] || !isfinite(tr->v[m])) continue;
            int beat = 0, lost = 0, tie = 0;
            svg_buf sub = {0};
            for (int i = 0; i < na; i++) {
                if (strcmp(arms[i].kind, "llm") || !arms[i].has[m] || !isfinite(arms[i].v[m])) continue;
                int c = ci_compare(&arms[i], tr, m);
                beat += c > 0, lost += c < 0, tie += c == 0;
                svg_buf_printf(&sub, "%s%s %.3f", sub.len ? "; " : "", arms[i].name, arms[i].v[m]);
            }
            svg_buf_printf(h,
                           "<li>%s: of %d LLM arms, %d <b>beat</b> the empirical transition table (%.3f), %d "
                           "<b>lost</b> to it, %d <b>indistinguishable</b> from it (",
                           ev_metric_infos[m].name, beat + lost + tie, beat, tr->v[m], lost, tie);
            svg_buf_escape(h, sub.s ? sub.s : "");
            svg_buf_printf(h, ").</li>\n");
            free(sub.s);
        }
        if (tr->has[EV_NOVELTY]) {
            svg_buf_printf(h, "<li>Novelty of the empirical transition table: %.3f; of the LLM arms:", tr->v[EV_NOVELTY]);
            for (int i = 0; i < na; i++)
                if (!strcmp(arms[i].kind, "llm") && arms[i].has[EV_NOVELTY]) {
                    svg_buf_printf(h, " ");
                    svg_buf_escape(h, arms[i].name);
                    svg_buf_printf(h, " %.3f;", arms[i].v[EV_NOVELTY]);
                }
            svg_buf_printf(h, "</li>\n");
        }
    }
    svg_buf_printf(h, "</ul>\n");
}

/* ================================================================ the page */

static const char *css =
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
    "th{background:#f4f4f4}td.name{text-align:left}small{color:#666}.note{color:#555;font-size:13px}"
    ".plots{display:flex;flex-wrap:wrap;gap:12px}svg{background:#fff;border:1px solid #eee}";

/* The items level, when metrics.json has "retrieval" (the restricted retrieval model was
 * trained): HR@k and NDCG@k within the served cluster, model against popularity. */
static void retrieval_table(svg_buf *h, const cJSON *root) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "retrieval");
    if (!cJSON_IsObject(r)) return;
    const cJSON *mo = cJSON_GetObjectItemCaseSensitive(r, "model"), *po = cJSON_GetObjectItemCaseSensitive(r, "popularity");
    double at = num_or_nan(r, "at");
    svg_buf_printf(h,
                   "<h2>Items within the chosen cluster</h2>\n<p class=\"note\">The level below the plan: next-item "
                   "prediction on the test window, ranking every unseen item of the target's cluster (%g cases, %.1f "
                   "candidates per case on average). Definitions: docs/serving.md.</p>\n<table>\n"
                   "<tr><th>ranker</th><th>HR@%g</th><th>NDCG@%g</th></tr>\n",
                   num_or_nan(r, "cases"), num_or_nan(r, "mean_candidates"), at, at);
    svg_buf_printf(h, "<tr><td class=\"name\">sequential skip-gram (retrieval.bin)</td><td>%.4f</td><td>%.4f</td></tr>\n",
                   num_or_nan(mo, "hr"), num_or_nan(mo, "ndcg"));
    svg_buf_printf(h, "<tr><td class=\"name\">popularity within the cluster</td><td>%.4f</td><td>%.4f</td></tr>\n</table>\n",
                   num_or_nan(po, "hr"), num_or_nan(po, "ndcg"));
}

static void plot_append(svg_buf *h, char *svg) {
    svg_buf_printf(h, "%s", svg);
    free(svg);
}

int ev_report_write(const char *metrics_json, const char *html_path, sd_err *err) {
    cJSON *root = cJSON_Parse(metrics_json);
    if (!root) return sd_fail(err, SD_ERR_DATA, "metrics.json: not valid JSON (near \"%.20s\")", cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
    const cJSON *jarms = cJSON_GetObjectItemCaseSensitive(root, "arms");
    const cJSON *jmetrics = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    if (!cJSON_IsArray(jarms) || !cJSON_IsArray(jmetrics)) {
        cJSON_Delete(root);
        return sd_fail(err, SD_ERR_DATA, "metrics.json: missing \"arms\" or \"metrics\" array (rerun 'serendip eval')");
    }
    int na = cJSON_GetArraySize(jarms);
    rep_arm *arms = sd_calloc((size_t)(na ? na : 1), sizeof *arms);
    int has_metric[EV_N_METRICS] = {0};
    const cJSON *jm;
    cJSON_ArrayForEach(jm, jmetrics) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(jm, "key");
        int m = cJSON_IsString(k) ? metric_of_key(k->valuestring) : -1;
        if (m >= 0) has_metric[m] = 1;
    }
    int i = 0;
    const cJSON *ja;
    cJSON_ArrayForEach(ja, jarms) {
        rep_arm *a = &arms[i++];
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(ja, "name");
        a->name = cJSON_IsString(x) ? x->valuestring : "?";
        x = cJSON_GetObjectItemCaseSensitive(ja, "kind");
        a->kind = cJSON_IsString(x) ? x->valuestring : "baseline";
        x = cJSON_GetObjectItemCaseSensitive(ja, "table");
        a->table = cJSON_IsString(x) ? x->valuestring : NULL;
        a->n = (int)num_or_nan(ja, "n");
        const cJSON *mv = cJSON_GetObjectItemCaseSensitive(ja, "metrics");
        for (int m = 0; m < EV_N_METRICS; m++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(mv, ev_metric_infos[m].key);
            a->has[m] = v != NULL;
            a->v[m] = num_or_nan(v, "value");
            a->lo[m] = num_or_nan(v, "lo");
            a->hi[m] = num_or_nan(v, "hi");
        }
    }
    svg_buf h = {0};
    svg_buf_printf(&h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                       "<title>serendip evaluation report</title>\n<style>%s</style>\n</head>\n<body>\n", css);
    svg_buf_printf(&h, "<h1>serendip evaluation report</h1>\n<p class=\"note\">Workspace ");
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(root, "workspace");
    svg_buf_escape(&h, cJSON_IsString(ws) ? ws->valuestring : "?");
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(root, "users");
    svg_buf_printf(&h,
                   ". K = %g, M = %g clusters, %g cluster(s) served per user. Users: %g evaluated of %g (%g with "
                   "fewer than K distinct positive train clusters, %g with no test-window event). Intervals: 95%% "
                   "bootstrap over users (percentile interval, bias-shifted), B = %g. Definitions: docs/evaluation.md.</p>\n",
                   num_or_nan(root, "k"), num_or_nan(root, "clusters"), num_or_nan(root, "serve"),
                   num_or_nan(users, "evaluated"), num_or_nan(users, "total"), num_or_nan(users, "skipped_short_context"),
                   num_or_nan(users, "skipped_no_test_event"), num_or_nan(root, "bootstrap"));
    /* the table */
    svg_buf_printf(&h, "<h2>Arms</h2>\n<table>\n<tr><th>arm</th>");
    for (int m = 0; m < EV_N_METRICS; m++)
        if (has_metric[m]) {
            svg_buf_printf(&h, "<th>");
            svg_buf_escape(&h, ev_metric_infos[m].name);
            svg_buf_printf(&h, "</th>");
        }
    svg_buf_printf(&h, "</tr>\n");
    for (int a = 0; a < na; a++) {
        svg_buf_printf(&h, "<tr><td class=\"name\">");
        svg_buf_escape(&h, arms[a].name);
        svg_buf_printf(&h, "</td>");
        for (int m = 0; m < EV_N_METRICS; m++) {
            if (!has_metric[m]) continue;
            char s[128];
            fmt_ci(s, sizeof s, &arms[a], m);
            svg_buf_printf(&h, "<td>%s</td>", s);
        }
        svg_buf_printf(&h, "</tr>\n");
    }
    svg_buf_printf(&h, "</table>\n");
    g_root = root;
    findings(&h, arms, na);
    g_root = NULL;
    retrieval_table(&h, root);
    /* each metric against n */
    int ns = 0;
    for (int a = 0; a < na; a++) ns += is_sweep(&arms[a]);
    double *x = sd_calloc((size_t)ns + 1, sizeof(double)), *y = sd_calloc((size_t)ns + 1, sizeof(double));
    double *lo = sd_calloc((size_t)ns + 1, sizeof(double)), *hi = sd_calloc((size_t)ns + 1, sizeof(double));
    svg_hline *hl = sd_calloc((size_t)na + 1, sizeof(svg_hline));
    svg_buf_printf(&h, "<h2>Metrics against n (best-of-n)</h2>\n<p class=\"note\">Lines with bands: the best-of-n "
                       "explore tables with their 95%% intervals. Dashed lines with light bands: the baselines and "
                       "other arms.%s</p>\n<div class=\"plots\">\n",
                   ns ? "" : " <b>No best-of-n table (plans/explore_n*.tbl) was evaluated, so there is nothing to plot "
                             "against n.</b>");
    for (int m = 0; m < EV_N_METRICS && ns; m++) {
        if (!has_metric[m]) continue;
        /* sweep arms sorted by n */
        int k = 0;
        for (int pass_n = 0; k < ns;) {
            int best = -1;
            for (int a = 0; a < na; a++)
                if (is_sweep(&arms[a]) && arms[a].n > pass_n && (best < 0 || arms[a].n < arms[best].n)) best = a;
            if (best < 0) break;
            x[k] = arms[best].n, y[k] = arms[best].v[m], lo[k] = arms[best].lo[m], hi[k] = arms[best].hi[m];
            k++;
            pass_n = arms[best].n;
        }
        int nh = 0;
        for (int a = 0; a < na; a++)
            if (!is_sweep(&arms[a])) hl[nh++] = (svg_hline){arms[a].name, arms[a].v[m], arms[a].lo[m], arms[a].hi[m]};
        svg_series s = {"best-of-n (LLM)", x, y, lo, hi, k};
        svg_frame f = svg_frame_make(540, 300, ev_metric_infos[m].name, "n (samples per context, log scale)",
                                     ev_metric_infos[m].key);
        f.xlog2 = 1;
        plot_append(&h, svg_line_plot(&f, &s, k ? 1 : 0, hl, nh));
    }
    svg_buf_printf(&h, "</div>\n");
    /* novelty against relevance */
    svg_buf_printf(&h, "<h2>Novelty against relevance</h2>\n<p class=\"note\">Every arm; bars are 95%% "
                       "intervals. Up and to the right is better.</p>\n<div class=\"plots\">\n");
    svg_point *pts = sd_calloc((size_t)na + 1, sizeof(svg_point));
    static const int rel[] = {EV_POS_POOLED, EV_COLLECTIVE};
    for (size_t r = 0; r < 2; r++) {
        int m = rel[r];
        if (!has_metric[m]) continue;
        for (int a = 0; a < na; a++)
            pts[a] = (svg_point){arms[a].name, arms[a].v[EV_NOVELTY], arms[a].v[m], arms[a].lo[EV_NOVELTY],
                                 arms[a].hi[EV_NOVELTY], arms[a].lo[m], arms[a].hi[m]};
        char title[128];
        snprintf(title, sizeof title, "novelty vs %s", ev_metric_infos[m].name);
        svg_frame f = svg_frame_make(540, 340, title, ev_metric_infos[EV_NOVELTY].name, ev_metric_infos[m].key);
        plot_append(&h, svg_scatter(&f, pts, na));
    }
    svg_buf_printf(&h, "</div>\n");
    /* cluster sizes */
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(root, "cluster_sizes");
    if (cJSON_IsArray(cs) && cJSON_GetArraySize(cs) > 0) {
        int nc = cJSON_GetArraySize(cs);
        double *v = sd_malloc(sizeof(double) * (size_t)nc);
        int j = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cs) v[j++] = cJSON_IsNumber(c) ? c->valuedouble : 0;
        for (int a = 1; a < nc; a++) /* insertion sort, descending (M is at most a few thousand) */
            for (int b = a; b > 0 && v[b] > v[b - 1]; b--) {
                double t = v[b];
                v[b] = v[b - 1];
                v[b - 1] = t;
            }
        svg_buf_printf(&h, "<h2>Taxonomy</h2>\n<p class=\"note\">Items per level-2 cluster, largest first (%d "
                           "clusters).</p>\n", nc);
        svg_frame f = svg_frame_make(900, 300, "cluster sizes (sorted)", "cluster rank", "items");
        plot_append(&h, svg_bar_chart(&f, v, NULL, nc));
        free(v);
    }
    svg_buf_printf(&h, "</body>\n</html>\n");
    int rc = sd_write_file_atomic(html_path, h.s, h.len, err);
    free(h.s);
    free(x), free(y), free(lo), free(hi), free(hl), free(pts), free(arms);
    cJSON_Delete(root);
    return rc;
}
