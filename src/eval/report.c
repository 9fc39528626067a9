/* report.c - report.html from metrics.json: a self-contained page (inline SVG and CSS, no
 * JavaScript, opens from the file system) with each metric against n for the best-of-n arms
 * (baselines as horizontal lines, CIs as bands), novelty-vs-relevance scatters for every arm, the
 * results by context support (plot and tables), the taxonomy's cluster sizes, the table of arms x
 * metrics, and findings computed from the numbers (never written in advance): did relevance rise
 * with n while novelty held, and did the LLM arms beat the backoff and feedback-rate arms. Arms
 * are found by their "kind", never by name. HTML is written by hand: it is a few tags of text. */
#include "serendip/eval.h"
#include "serendip/svg.h"
#include "serendip/abtest.h" /* the A/B experiment's section (report_abtest.c) */

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/report_alt.h"

/* ================================================================ reading metrics.json */

typedef struct {
    const char *name, *kind, *table;
    int n;
    double v[EV_N_METRICS], lo[EV_N_METRICS], hi[EV_N_METRICS];
    int has[EV_N_METRICS];
    double fallback_share;
    double frac, frac_lo, frac_hi; /* like_frac, NAN when absent */
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

/* A best-of-n arm of the n sweep: kind "llm" with its n. */
static int is_sweep(const rep_arm *a) { return !strcmp(a->kind, "llm") && a->n > 0; }

/* An arm planned by language models. */
static int is_llm(const rep_arm *a) {
    static const char *const kinds[] = {"llm", "single", "llm_feedback", "rl", "llm_pairwise"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(a->kind, kinds[i])) return 1;
    return 0;
}

static const rep_arm *arm_of_kind(const rep_arm *arms, int na, const char *kind) {
    for (int i = 0; i < na; i++)
        if (!strcmp(arms[i].kind, kind)) return &arms[i];
    return NULL;
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

/* The headline relevance metric: the simulated like-probability on the world, else the pooled
 * positive rate. */
static int headline(const rep_arm *arms, int na) {
    for (int i = 0; i < na; i++)
        if (arms[i].has[EV_LIKE]) return EV_LIKE;
    return EV_POS_POOLED;
}

static void findings(svg_buf *h, rep_arm *arms, int na) {
    static const int relevance[] = {EV_LIKE, EV_POS_POOLED, EV_COLLECTIVE, EV_HIT};
    static const char *const rival_kinds[] = {"backoff", "feedback", "feedback_shrunk"};
    static const char *const rival_names[] = {"back-off transition counts", "feedback-rate table",
                                              "shrunk feedback without a model"};
    svg_buf_printf(h, "<h2>Findings</h2>\n<p class=\"note\">Computed from the figures above. Two arms differ when "
                      "the 95%% interval of their paired difference (the same bootstrap resamples of users) excludes "
                      "0; where metrics.json has no paired comparison, when their own intervals do not overlap.</p>\n");
    const rep_arm *lo_n = NULL, *hi_n = NULL;
    for (int i = 0; i < na; i++) {
        if (!is_sweep(&arms[i])) continue;
        if (!lo_n || arms[i].n < lo_n->n) lo_n = &arms[i];
        if (!hi_n || arms[i].n > hi_n->n) hi_n = &arms[i];
    }
    const int R = headline(arms, na);
    const char *rname = R == EV_LIKE ? "simulated like-probability" : "relevance (pooled positive rate)";
    svg_buf_printf(h, "<p class=\"summary\"><b>In short:</b> ");
    if (lo_n && hi_n != lo_n && isfinite(lo_n->v[R]) && isfinite(hi_n->v[R])) {
        int c = ci_compare(hi_n, lo_n, R), nv = ci_compare(hi_n, lo_n, EV_NOVELTY);
        svg_buf_printf(h, "%s %s from n = %d to n = %d, and novelty %s. ", rname,
                       c > 0 ? "<b>rose</b>" : c < 0 ? "<b>fell</b>" : "<b>did not change beyond noise</b>", lo_n->n,
                       hi_n->n, nv < 0 ? "<b>did not hold</b>" : "<b>held</b>");
    } else {
        svg_buf_printf(h, "no trend with n can be judged (fewer than two best-of-n tables). ");
    }
    int n_llm = 0;
    for (int i = 0; i < na; i++) n_llm += is_llm(&arms[i]) && isfinite(arms[i].v[R]);
    int said = 0;
    for (size_t k = 0; k < 3; k++) {
        const rep_arm *tr = arm_of_kind(arms, na, rival_kinds[k]);
        if (!tr || !n_llm || !isfinite(tr->v[R])) continue;
        int beat = 0;
        for (int i = 0; i < na; i++)
            beat += is_llm(&arms[i]) && isfinite(arms[i].v[R]) && ci_compare(&arms[i], tr, R) > 0;
        svg_buf_printf(h, "%s LLM arm%s beat the %s on it (%d of %d). ", beat == n_llm ? "Every" : beat ? "Some" : "No",
                       beat == n_llm && n_llm == 1 ? "" : "s", rival_names[k], beat, n_llm);
        said = 1;
    }
    if (!said) svg_buf_printf(h, "There is no LLM arm and back-off or feedback-rate arm to compare.");
    const rep_arm *orc = arm_of_kind(arms, na, "oracle");
    if (orc && isfinite(orc->v[EV_LIKE]))
        svg_buf_printf(h, " The user oracle (the upper bound) reaches %.3f.", orc->v[EV_LIKE]);
    svg_buf_printf(h, "</p>\n<ul>\n");
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
    /* LLM arms against the back-off and feedback-rate arms */
    n_llm = 0;
    for (int i = 0; i < na; i++) n_llm += is_llm(&arms[i]);
    for (size_t k = 0; k < 3; k++) {
        const rep_arm *tr = arm_of_kind(arms, na, rival_kinds[k]);
        if (!tr || !n_llm) {
            svg_buf_printf(h, "<li>LLM arms against the %s: %s.</li>\n", rival_names[k],
                           !n_llm ? "no LLM table was evaluated" : "that arm is missing");
            continue;
        }
        for (size_t r = 0; r < sizeof relevance / sizeof relevance[0]; r++) {
            int m = relevance[r];
            if (!tr->has[m] || !isfinite(tr->v[m])) continue;
            int beat = 0, lost = 0, tie = 0;
            svg_buf sub = {0};
            for (int i = 0; i < na; i++) {
                if (!is_llm(&arms[i]) || !arms[i].has[m] || !isfinite(arms[i].v[m])) continue;
                int c = ci_compare(&arms[i], tr, m);
                beat += c > 0, lost += c < 0, tie += c == 0;
                svg_buf_printf(&sub, "%s%s %.3f", sub.len ? "; " : "", arms[i].name, arms[i].v[m]);
            }
            svg_buf_printf(h,
                           "<li>%s: of %d LLM arms, %d <b>beat</b> the %s (%.3f), %d <b>lost</b> to it, %d "
                           "<b>indistinguishable</b> from it (",
                           ev_metric_infos[m].name, beat + lost + tie, beat, rival_names[k], tr->v[m], lost, tie);
            svg_buf_escape(h, sub.s ? sub.s : "");
            svg_buf_printf(h, ").</li>\n");
            free(sub.s);
        }
    }
    svg_buf_printf(h, "</ul>\n");
}

/* ================================================================ by context support */

static void plot_append(svg_buf *h, char *svg) {
    svg_buf_printf(h, "%s", svg);
    free(svg);
}

/* The "by_support" section: every arm's headline metric per support bucket (plot and table) and
 * the paired differences of the LLM arms against backoff and feedback within each bucket. */
static void support_section(svg_buf *h, const cJSON *root, int metric) {
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(root, "by_support");
    if (!cJSON_IsArray(bs) || !cJSON_GetArraySize(bs)) return;
    const char *key = ev_metric_infos[metric].key;
    int nb = cJSON_GetArraySize(bs);
    const cJSON *b0arms = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(bs, 0), "arms");
    int na = cJSON_GetArraySize(b0arms);
    svg_buf_printf(h, "<h2>By context support</h2>\n<p class=\"note\">Support of a user's context: train transitions "
                      "observed from that exact K-context. Each bucket's figures and 95%% intervals come from a "
                      "bootstrap over the bucket's users. Where counting has nothing to go on (support 0), does the "
                      "language model still choose well? Metric: %s.</p>\n", ev_metric_infos[metric].name);
    /* plot: one series per arm over the buckets */
    double *x = sd_calloc((size_t)nb + 1, sizeof(double)), *v = sd_calloc((size_t)(na * nb) + 1, sizeof(double));
    double *lo = sd_calloc((size_t)(na * nb) + 1, sizeof(double)), *hi = sd_calloc((size_t)(na * nb) + 1, sizeof(double));
    svg_series *ser = sd_calloc((size_t)na + 1, sizeof(svg_series));
    for (int b = 0; b < nb; b++) {
        x[b] = b + 1;
        const cJSON *arms = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(bs, b), "arms");
        for (int a = 0; a < na; a++) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arms, a), "metrics"), key);
            v[a * nb + b] = num_or_nan(m, "value");
            lo[a * nb + b] = num_or_nan(m, "lo");
            hi[a * nb + b] = num_or_nan(m, "hi");
        }
    }
    for (int a = 0; a < na; a++) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(b0arms, a), "name");
        ser[a] = (svg_series){cJSON_IsString(nm) ? nm->valuestring : "?", x, v + a * nb, lo + a * nb, hi + a * nb, nb};
    }
    char(*gl)[64] = sd_calloc((size_t)nb + 1, sizeof *gl);
    const char **groups = sd_calloc((size_t)nb + 1, sizeof *groups);
    for (int b = 0; b < nb; b++) {
        const cJSON *bk = cJSON_GetArrayItem(bs, b), *nm = cJSON_GetObjectItemCaseSensitive(bk, "name");
        snprintf(gl[b], sizeof gl[b], "support %s (%g users)", cJSON_IsString(nm) ? nm->valuestring : "?",
                 num_or_nan(bk, "users"));
        groups[b] = gl[b];
    }
    svg_frame f = svg_frame_make(960, 400, "by context support", "support of the user's context (train transitions from it)", key);
    svg_buf_printf(h, "<div class=\"plots\">\n");
    plot_append(h, svg_group_plot(&f, groups, nb, ser, na));
    free(gl);
    free(groups);
    svg_buf_printf(h, "</div>\n<table>\n<tr><th>arm</th>");
    for (int b = 0; b < nb; b++) {
        const cJSON *bk = cJSON_GetArrayItem(bs, b), *nm = cJSON_GetObjectItemCaseSensitive(bk, "name");
        svg_buf_printf(h, "<th>support %s<br><small>%g users</small></th>", cJSON_IsString(nm) ? nm->valuestring : "?",
                       num_or_nan(bk, "users"));
    }
    svg_buf_printf(h, "</tr>\n");
    for (int a = 0; a < na; a++) {
        svg_buf_printf(h, "<tr><td class=\"name\">");
        svg_buf_escape(h, ser[a].label);
        svg_buf_printf(h, "</td>");
        for (int b = 0; b < nb; b++) {
            double y = v[a * nb + b], l = lo[a * nb + b], u = hi[a * nb + b];
            if (!isfinite(y)) svg_buf_printf(h, "<td>&ndash;</td>");
            else if (isfinite(l)) svg_buf_printf(h, "<td>%.3f <small>[%.3f, %.3f]</small></td>", y, l, u);
            else svg_buf_printf(h, "<td>%.3f</td>", y);
        }
        svg_buf_printf(h, "</tr>\n");
    }
    svg_buf_printf(h, "</table>\n");
    /* paired differences within buckets */
    const cJSON *c0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(bs, 0), "comparisons");
    if (cJSON_GetArraySize(c0) > 0) {
        svg_buf_printf(h, "<p class=\"note\">Paired differences (LLM arm minus rival) of the %s within each bucket, "
                          "with 95%% intervals; <b>bold</b> when the interval excludes 0.</p>\n<table>\n<tr><th>arm "
                          "&minus; rival</th>", ev_metric_infos[metric].name);
        for (int b = 0; b < nb; b++) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(bs, b), "name");
            svg_buf_printf(h, "<th>support %s</th>", cJSON_IsString(nm) ? nm->valuestring : "?");
        }
        svg_buf_printf(h, "</tr>\n");
        for (int c = 0; c < cJSON_GetArraySize(c0); c++) {
            const cJSON *cc = cJSON_GetArrayItem(c0, c);
            const cJSON *an = cJSON_GetObjectItemCaseSensitive(cc, "arm"), *ag = cJSON_GetObjectItemCaseSensitive(cc, "against");
            svg_buf_printf(h, "<tr><td class=\"name\">");
            svg_buf_escape(h, cJSON_IsString(an) ? an->valuestring : "?");
            svg_buf_printf(h, " &minus; ");
            svg_buf_escape(h, cJSON_IsString(ag) ? ag->valuestring : "?");
            svg_buf_printf(h, "</td>");
            for (int b = 0; b < nb; b++) {
                const cJSON *cb = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(bs, b), "comparisons"), c);
                double d = num_or_nan(cb, "diff"), l = num_or_nan(cb, "lo"), u = num_or_nan(cb, "hi");
                int sig = isfinite(l) && isfinite(u) && (l > 0 || u < 0);
                if (!isfinite(d)) svg_buf_printf(h, "<td>&ndash;</td>");
                else svg_buf_printf(h, "<td>%s%+.3f%s <small>[%+.3f, %+.3f]</small></td>", sig ? "<b>" : "", d,
                                    sig ? "</b>" : "", l, u);
            }
            svg_buf_printf(h, "</tr>\n");
        }
        svg_buf_printf(h, "</table>\n");
    }
    /* the verdict per bucket, from the paired differences */
    svg_buf_printf(h, "<ul>\n");
    for (int b = 0; b < nb; b++) {
        const cJSON *bk = cJSON_GetArrayItem(bs, b), *nm = cJSON_GetObjectItemCaseSensitive(bk, "name"), *c;
        static const char *const rk[3] = {"backoff", "feedback", "feedback_shrunk"};
        for (int k = 0; k < 3; k++) {
            int beat = 0, lost = 0, tie = 0;
            const char *against = NULL;
            cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(bk, "comparisons")) {
                const cJSON *ak = cJSON_GetObjectItemCaseSensitive(c, "against_kind");
                if (!cJSON_IsString(ak) || strcmp(ak->valuestring, rk[k])) continue;
                const cJSON *ag = cJSON_GetObjectItemCaseSensitive(c, "against");
                against = cJSON_IsString(ag) ? ag->valuestring : rk[k];
                double l = num_or_nan(c, "lo"), u = num_or_nan(c, "hi");
                beat += l > 0, lost += u < 0, tie += !(l > 0) && !(u < 0);
            }
            if (!against) continue;
            svg_buf_printf(h, "<li>Support %s (%g users): of %d LLM arms, %d <b>beat</b> ",
                           cJSON_IsString(nm) ? nm->valuestring : "?", num_or_nan(bk, "users"), beat + lost + tie, beat);
            svg_buf_escape(h, against);
            svg_buf_printf(h, " on the %s, %d <b>lost</b> to it, %d <b>indistinguishable</b>.</li>\n",
                           ev_metric_infos[metric].name, lost, tie);
        }
    }
    svg_buf_printf(h, "</ul>\n");
    free(x), free(v), free(lo), free(hi), free(ser);
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
        a->kind = cJSON_IsString(x) ? x->valuestring : "unknown";
        x = cJSON_GetObjectItemCaseSensitive(ja, "table");
        a->table = cJSON_IsString(x) ? x->valuestring : NULL;
        a->n = (int)num_or_nan(ja, "n");
        a->fallback_share = num_or_nan(ja, "fallback_share");
        x = cJSON_GetObjectItemCaseSensitive(ja, "like_frac");
        a->frac = num_or_nan(x, "value"), a->frac_lo = num_or_nan(x, "lo"), a->frac_hi = num_or_nan(x, "hi");
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
    int has_frac = 0;
    for (int a = 0; a < na; a++) has_frac |= isfinite(arms[a].frac);
    svg_buf_printf(&h, "<h2>Arms</h2>\n<p class=\"note\">Every arm goes through the same per-user filter: the "
                       "user is served the first clusters of the arm's ranking they never interacted with; when the "
                       "ranking runs out, the most popular unseen cluster (the fallback share is the share of users "
                       "served one).%s</p>\n<table>\n<tr><th>arm</th><th>kind</th><th>fallback share</th>",
                   has_frac ? " like_frac = (arm &minus; random) / (oracle &minus; random) of the like-probability." : "");
    if (has_frac) svg_buf_printf(&h, "<th>like_frac</th>");
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
        svg_buf_printf(&h, "</td><td>");
        svg_buf_escape(&h, arms[a].kind);
        if (isfinite(arms[a].fallback_share)) svg_buf_printf(&h, "</td><td>%.4f</td>", arms[a].fallback_share);
        else svg_buf_printf(&h, "</td><td>&ndash;</td>");
        if (has_frac) {
            if (!isfinite(arms[a].frac)) svg_buf_printf(&h, "<td>&ndash;</td>");
            else if (isfinite(arms[a].frac_lo))
                svg_buf_printf(&h, "<td>%.3f <small>[%.3f, %.3f]</small></td>", arms[a].frac, arms[a].frac_lo, arms[a].frac_hi);
            else svg_buf_printf(&h, "<td>%.3f</td>", arms[a].frac);
        }
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
    support_section(&h, root, has_metric[EV_LIKE] ? EV_LIKE : EV_POS_POOLED);
    retrieval_table(&h, root);
    ev_report_alternatives_beside(&h, html_path); /* RL and pairwise, when the workspace has them (report_alt.c) */
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
    { /* the simulated A/B experiment, when abtest.json lies beside the report */
        char *dir = sd_strdup(html_path), *sl = strrchr(dir, '/');
        if (sl) *sl = 0;
        ab_report_section(&h, sl ? dir : ".");
        free(dir);
    }
    svg_buf_printf(&h, "</body>\n</html>\n");
    int rc = sd_write_file_atomic(html_path, h.s, h.len, err);
    free(h.s);
    free(x), free(y), free(lo), free(hi), free(hl), free(pts), free(arms);
    cJSON_Delete(root);
    return rc;
}
