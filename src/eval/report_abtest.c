/* report_abtest.c - the A/B experiment's section of report.html (abtest.h, ab_report_section):
 * one plot per metric with a curve per arm over the days (95% bands), the final table with the
 * relative difference of each arm to the reference, and the refreshes' times. Read from the
 * abtest.json beside the report; HTML by hand as the rest of the report (src/eval/report.c). */
#include "serendip/abtest.h"
#include "serendip/svg.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double jnum(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

/* The values of a JSON array of numbers (null -> NAN) into a fresh array of n. */
static double *jarray(const cJSON *a, int n) {
    double *v = sd_malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        v[i] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    }
    return v;
}

static void cell(svg_buf *h, const cJSON *v) {
    double x = jnum(v, "value"), lo = jnum(v, "lo"), hi = jnum(v, "hi"), rel = jnum(v, "rel");
    if (!isfinite(x)) {
        svg_buf_printf(h, "<td>&ndash;</td>");
        return;
    }
    const char *f = fabs(x) >= 100 ? "%.0f" : "%.3f";
    svg_buf_printf(h, "<td>");
    svg_buf_printf(h, f, x);
    if (isfinite(lo) && isfinite(hi)) {
        svg_buf_printf(h, " <small>[");
        svg_buf_printf(h, f, lo);
        svg_buf_printf(h, ", ");
        svg_buf_printf(h, f, hi);
        svg_buf_printf(h, "]</small>");
    }
    if (isfinite(rel)) {
        const cJSON *sig = cJSON_GetObjectItemCaseSensitive(v, "significant");
        svg_buf_printf(h, "<br><small>%s%+.1f%% [%+.1f%%, %+.1f%%]%s</small>", cJSON_IsTrue(sig) ? "<b>" : "", 100 * rel,
                       100 * jnum(v, "rel_lo"), 100 * jnum(v, "rel_hi"), cJSON_IsTrue(sig) ? "</b>" : "");
    }
    double alt = jnum(v, "rel_explore");
    if (isfinite(alt)) {
        const cJSON *sig = cJSON_GetObjectItemCaseSensitive(v, "significant_explore");
        svg_buf_printf(h, "<br><small>vs explore: %s%+.1f%% [%+.1f%%, %+.1f%%]%s</small>", cJSON_IsTrue(sig) ? "<b>" : "",
                       100 * alt, 100 * jnum(v, "rel_explore_lo"), 100 * jnum(v, "rel_explore_hi"),
                       cJSON_IsTrue(sig) ? "</b>" : "");
    }
    svg_buf_printf(h, "</td>");
}

void ab_report_section(void *hv, const char *dir) {
    svg_buf *h = hv;
    char *path = sd_path_join(dir, AB_FILE), *text = NULL;
    size_t len;
    sd_err err = {0};
    int rc = sd_read_file(path, &text, &len, &err);
    free(path);
    if (rc) return; /* no experiment: no section */
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *arms = cJSON_GetObjectItemCaseSensitive(root, "arms"), *ms = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    if (!root || !cJSON_IsArray(arms) || !cJSON_IsArray(ms)) {
        svg_buf_printf(h, "<h2 id=\"abtest\">Simulated A/B experiment</h2>\n<p class=\"note\">abtest.json is not readable "
                          "(rerun <code>serendip abtest</code>).</p>\n");
        cJSON_Delete(root);
        return;
    }
    int na = cJSON_GetArraySize(arms), D = (int)jnum(root, "days");
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(root, "reference");
    svg_buf_printf(h, "<h2 id=\"abtest\">Simulated A/B experiment</h2>\n<p class=\"note\">%d users of the synthetic "
                      "world over %d days, seed %g, arms by a hash of (user, seed); the explore slot is answered by "
                      "the same function as <code>/v1/explore</code>; the hidden truth decides every response "
                      "(docs/abtest.md, the day model in docs/world.md). Curves: each metric per arm and day with "
                      "its 95%% band; ",
                   (int)jnum(root, "users"), D, jnum(root, "seed"));
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(root, "interval");
    svg_buf_escape(h, cJSON_IsString(iv) ? iv->valuestring : "");
    svg_buf_printf(h, ", B = %g. Relative differences are to <b>", jnum(root, "bootstrap"));
    svg_buf_escape(h, cJSON_IsString(ref) ? ref->valuestring : "?");
    svg_buf_printf(h, "</b>; bold = its interval excludes 0.</p>\n<div class=\"plots\">\n");
    double *x = sd_malloc(sizeof(double) * (size_t)(D > 0 ? D : 1));
    for (int d = 0; d < D; d++) x[d] = d + 1;
    svg_series *s = sd_calloc((size_t)na + 1, sizeof *s);
    double **bufs = sd_calloc((size_t)na * 3 + 1, sizeof(double *));
    const cJSON *m;
    cJSON_ArrayForEach(m, ms) {
        const char *key = cJSON_GetObjectItemCaseSensitive(m, "key")->valuestring;
        const char *name = cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring;
        int ns = 0;
        for (int a = 0; a < na; a++) {
            const cJSON *arm = cJSON_GetArrayItem(arms, a);
            const cJSON *dv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(arm, "daily"), key);
            if (!dv) continue;
            /* an arm without values (control's slot) keeps its series, empty, so that every arm has
             * the same colour in every plot */
            double *y = jarray(cJSON_GetObjectItemCaseSensitive(dv, "value"), D);
            bufs[3 * ns] = y, bufs[3 * ns + 1] = jarray(cJSON_GetObjectItemCaseSensitive(dv, "lo"), D);
            bufs[3 * ns + 2] = jarray(cJSON_GetObjectItemCaseSensitive(dv, "hi"), D);
            s[ns] = (svg_series){cJSON_GetObjectItemCaseSensitive(arm, "name")->valuestring, x, bufs[3 * ns],
                                 bufs[3 * ns + 1], bufs[3 * ns + 2], D};
            ns++;
        }
        if (ns) {
            svg_frame f = svg_frame_make(540, 300, name, "day of the experiment", key);
            char *svg = svg_line_plot(&f, s, ns, NULL, 0);
            svg_buf_printf(h, "%s\n", svg);
            free(svg);
        }
        for (int i = 0; i < 3 * ns; i++) free(bufs[i]), bufs[i] = NULL;
    }
    svg_buf_printf(h, "</div>\n<table>\n<tr><th>metric (over the experiment)</th>");
    const cJSON *arm;
    cJSON_ArrayForEach(arm, arms) {
        svg_buf_printf(h, "<th>");
        svg_buf_escape(h, cJSON_GetObjectItemCaseSensitive(arm, "name")->valuestring);
        svg_buf_printf(h, " <small>(%g users)</small></th>", jnum(arm, "users"));
    }
    svg_buf_printf(h, "</tr>\n");
    cJSON_ArrayForEach(m, ms) {
        const char *key = cJSON_GetObjectItemCaseSensitive(m, "key")->valuestring;
        svg_buf_printf(h, "<tr><td class=\"name\">");
        svg_buf_escape(h, cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring);
        svg_buf_printf(h, "</td>");
        cJSON_ArrayForEach(arm, arms) cell(h, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(arm, "final"), key));
        svg_buf_printf(h, "</tr>\n");
    }
    svg_buf_printf(h, "</table>\n");
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "refreshes"), *r;
    if (cJSON_GetArraySize(rf) > 0) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "refresh_settings");
        svg_buf_printf(h, "<p class=\"note\">Refreshes of the explore-refresh arm (re-plan best-of-%g, %g fine-tuning "
                          "steps of the alignment model%s):</p>\n<table>\n<tr><th>after day</th><th>events</th>"
                          "<th>seconds</th><th>dataset</th><th>journeys</th><th>corpus</th><th>fine-tune</th><th>plan</th>"
                          "<th>compliance</th></tr>\n",
                       jnum(st, "n"), jnum(st, "steps"), jnum(st, "lora_rank") > 0 ? ", LoRA" : "");
        cJSON_ArrayForEach(r, rf)
            svg_buf_printf(h, "<tr><td>%g</td><td>%.0f</td><td>%.1f</td><td>%.1f</td><td>%.1f</td><td>%.1f</td><td>%.1f</td>"
                              "<td>%.1f</td><td>%.3f</td></tr>\n",
                           jnum(r, "after_day"), jnum(r, "events"), jnum(r, "seconds"), jnum(r, "dataset_s"),
                           jnum(r, "journeys_s"), jnum(r, "corpus_s"), jnum(r, "finetune_s"), jnum(r, "plan_s"),
                           jnum(r, "compliance"));
        svg_buf_printf(h, "</table>\n");
    }
    free(x), free(s), free(bufs);
    cJSON_Delete(root);
}
