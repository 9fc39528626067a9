/* api.h - internal glue of the public API (serendip.h) for the library's own callers: the casts
 * between the public opaque handles and the internal structs they stand for, so that the server
 * (src/serve/handlers.c), which builds its serving workspace with an_new and hot-swaps its tables,
 * answers through the same public function serendip_explore as `serendip explore` and the Python
 * package. Not installed; not part of the stable API. */
#ifndef SERENDIP_API_H
#define SERENDIP_API_H

#include "serendip/answer.h"
#include "serendip/base.h"
#include "serendip/serendip.h"
#include "serendip/table.h"

/* A serendip_explorer IS an an_workspace (the handle is the pointer, no wrapper), and a
 * serendip_table IS a tbl_table: these casts are the whole mapping. */
static inline const serendip_explorer *sd_api_explorer(const an_workspace *w) { return (const serendip_explorer *)w; }
static inline const an_workspace *sd_api_workspace(const serendip_explorer *x) { return (const an_workspace *)x; }
static inline const serendip_table *sd_api_table(const tbl_table *t) { return (const serendip_table *)t; }

/* Copies an internal error into a public one (either may be NULL). */
void sd_api_error(serendip_error *out, const sd_err *in);

/* Counts a handle made (+1) or freed (-1) in serendip_live_handles. */
void sd_api_count(int delta);

/* Runs a stage (stages.c; serendip_run without the progress hook and the workspace handle): its
 * options parsed into the stage's one table and checked by its check (stage.h, shared with cmd/). */
int sd_api_run_stage(const char *ws, const char *stage, const char *const *options, char **report, sd_err *err);
/* The option text of a stage (stages.c; serendip_stage_help). */
const char *sd_api_stage_help(const char *stage);

#endif
