/* report_alt.h - the report's section on the alternatives the paper rejected (issue 14): RL of the
 * novelty model against the alignment reward and pairwise alignment labels (src/eval/report_alt.c). */
#ifndef SERENDIP_REPORT_ALT_H
#define SERENDIP_REPORT_ALT_H

#include "serendip/svg.h"

/* Appends to h, when the workspace ws has them: the RL runs of ws/models/rl.json (format
 * compliance, reward, KL and distinct share against steps, one line per reward variant, and their
 * first and last records) and the pointwise-vs-pairwise figures of ws/models/train.json
 * ("pairwise"). Appends nothing when neither exists; a malformed file is noted, not fatal. */
void ev_report_alternatives(svg_buf *h, const char *ws);
/* The same for the workspace that holds html_path (its folder; "." for a bare file name). */
void ev_report_alternatives_beside(svg_buf *h, const char *html_path);

#endif
