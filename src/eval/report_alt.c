/* report_alt.c - the report's section on the rejected alternatives (see report_alt.h): RL against
 * the alignment reward (ws/models/rl.json, written by `serendip rl`) and pairwise alignment
 * (ws/models/train.json "pairwise", written by `serendip train --pairwise`). */
#include "serendip/report_alt.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/base.h"
#include "serendip/models.h"
#include "serendip/rl.h"

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Parsed JSON of ws/models/<name>, or NULL when missing or malformed (*bad = 1 then). */
static cJSON *load_json(const char *ws, const char *name, int *bad) {
    char *path = sd_asprintf("%s/%s/%s", ws, MD_DIR, name), *text = NULL;
    cJSON *j = NULL;
    if (sd_file_exists(path)) {
        if (!sd_read_file(path, &text, NULL, NULL)) j = cJSON_Parse(text);
        if (!j) *bad = 1;
    }
    free(text);
    free(path);
    return j;
}

enum { N_VARIANTS = 2, N_PLOTS = 4 };
static const char *const variants[N_VARIANTS] = {"raw", "guarded"};

static void rl_section(svg_buf *h, const cJSON *rl) {
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(rl, "runs");
    svg_buf_printf(h, "<h2>RL against the alignment reward (the alternative the paper rejected)</h2>\n"
                      "<p class=\"note\">`serendip rl`: the novelty model fine-tuned by policy gradient (group-relative "
                      "advantages, KL penalty to the SFT model) against the alignment model's expected score. "
                      "<b>raw</b>: the score of whatever text was generated (the paper's setup); <b>guarded</b>: 0 for an "
                      "output that is not a valid novel cluster description. Compliance, distinct share and novelty are "
                      "measured by free generation on a fixed set of contexts (temperature 1, top-p 0.95, as plan); "
                      "reward and KL are the training batches' means since the previous record. docs/training.md.</p>\n");
    /* table: first and last record of each run */
    svg_buf_printf(h, "<table>\n<tr><th>reward</th><th>steps</th><th>seconds</th><th>beta</th><th>step</th><th>reward</th>"
                      "<th>KL</th><th>compliance</th><th>distinct</th><th>novelty</th><th>eval score</th></tr>\n");
    for (int v = 0; v < N_VARIANTS; v++) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(runs, variants[v]);
        const cJSON *rec = cJSON_GetObjectItemCaseSensitive(r, "records");
        int n = cJSON_IsArray(rec) ? cJSON_GetArraySize(rec) : 0;
        for (int e = 0; e < n; e += n - 1 > 0 ? n - 1 : 1) {
            const cJSON *x = cJSON_GetArrayItem(rec, e);
            svg_buf_printf(h, "<tr><td class=\"name\">%s</td><td>%g</td><td>%.0f</td><td>%g</td><td>%g</td><td>%.3f</td>"
                              "<td>%.4f</td><td>%.1f%%</td><td>%.1f%%</td><td>%.1f%%</td><td>%.3f</td></tr>\n",
                           variants[v], num(r, "steps"), num(r, "seconds"), num(r, "beta"), num(x, "step"), num(x, "reward"),
                           num(x, "kl"), 100 * num(x, "compliance"), 100 * num(x, "distinct"), 100 * num(x, "novelty"),
                           num(x, "eval_reward"));
        }
    }
    svg_buf_printf(h, "</table>\n<div class=\"plots\">\n");
    static const char *const keys[N_PLOTS] = {"compliance", "reward", "kl", "distinct"};
    static const char *const titles[N_PLOTS] = {"format compliance (free generation)", "mean training reward",
                                                "KL(policy || SFT), token estimate", "distinct outputs / samples"};
    for (int p = 0; p < N_PLOTS; p++) {
        svg_series s[N_VARIANTS];
        double *xs[N_VARIANTS] = {0}, *ys[N_VARIANTS] = {0};
        int ns = 0;
        for (int v = 0; v < N_VARIANTS; v++) {
            const cJSON *rec = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(runs, variants[v]), "records");
            int n = cJSON_IsArray(rec) ? cJSON_GetArraySize(rec) : 0;
            if (!n) continue;
            xs[v] = sd_malloc((size_t)n * sizeof(double));
            ys[v] = sd_malloc((size_t)n * sizeof(double));
            int k = 0;
            const cJSON *x;
            cJSON_ArrayForEach(x, rec) xs[v][k] = num(x, "step"), ys[v][k++] = num(x, keys[p]);
            s[ns++] = (svg_series){variants[v], xs[v], ys[v], NULL, NULL, n};
        }
        if (ns) {
            svg_frame f = svg_frame_make(540, 300, titles[p], "RL step", keys[p]);
            if (p == 0 || p == 3) f.ymin = 0, f.ymax = 1;
            char *svg = svg_line_plot(&f, s, ns, NULL, 0);
            svg_buf_printf(h, "%s", svg);
            free(svg);
        }
        for (int v = 0; v < N_VARIANTS; v++) free(xs[v]), free(ys[v]);
    }
    svg_buf_printf(h, "</div>\n");
}

static void pairwise_section(svg_buf *h, const cJSON *pw) {
    svg_buf_printf(h, "<h2>Pointwise against pairwise alignment labels</h2>\n<p class=\"note\">`serendip train --pairwise`: "
                      "the pairwise model (answer A or B for two candidates of one context) trained for as many steps as "
                      "the pointwise model (a digit per candidate). Agreement on pairs of held-out tuples of one context: "
                      "the pointwise model orders them by its two scores, the pairwise model by its preference averaged over "
                      "both orders; a tie counts one half. Plan with it: plan --selector pairwise (eval arm "
                      "\"best-of-N pairwise\" above).</p>\n<table>\n<tr><th>model</th><th>training seconds</th>"
                      "<th>held-out pairs ordered as labels</th><th>as the truth</th></tr>\n");
    svg_buf_printf(h, "<tr><td class=\"name\">pointwise</td><td>%.1f</td><td>%.3f (%g pairs)</td><td>%.3f (%g pairs)</td></tr>\n",
                   num(pw, "pointwise_seconds"), num(pw, "pointwise_accuracy"), num(pw, "heldout_pairs"),
                   num(pw, "pointwise_truth_accuracy"), num(pw, "truth_pairs"));
    svg_buf_printf(h, "<tr><td class=\"name\">pairwise</td><td>%.1f</td><td>%.3f</td><td>%.3f</td></tr>\n</table>\n",
                   num(pw, "seconds"), num(pw, "pairwise_accuracy"), num(pw, "pairwise_truth_accuracy"));
}

void ev_report_alternatives(svg_buf *h, const char *ws) {
    int bad_rl = 0, bad_train = 0;
    cJSON *rl = load_json(ws, RL_JSON, &bad_rl), *train = load_json(ws, MD_REPORT, &bad_train);
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(train, "pairwise");
    if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(rl, "runs"))) rl_section(h, rl);
    else if (bad_rl) svg_buf_printf(h, "<p class=\"note\">models/%s is not valid JSON: RL runs not shown.</p>\n", RL_JSON);
    if (cJSON_IsObject(pw)) pairwise_section(h, pw);
    cJSON_Delete(rl);
    cJSON_Delete(train);
}

void ev_report_alternatives_beside(svg_buf *h, const char *html_path) {
    const char *slash = strrchr(html_path, '/');
    char *ws = slash ? sd_asprintf("%.*s", (int)(slash - html_path), html_path) : sd_strdup(".");
    ev_report_alternatives(h, ws);
    free(ws);
}
