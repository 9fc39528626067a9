/* manifest.h - what a workspace's files were built from (prefix mf_; format in
 * docs/formats-manifest.md).
 *
 * A stage that writes an output records, in ws/manifest/<output>.json (atomic, one file per
 * output so that concurrent stages never rewrite each other's records), the stage's name, the
 * output's fingerprint and the fingerprint of every input it read. A fingerprint is the file's
 * size, inode and mtime (ns) plus a 64-bit content hash (sd_hash_file). A reader then asks whether
 * each file it reads is still what its inputs were when it was built: an input whose size, inode
 * and mtime are unchanged is taken as unchanged without reading it (the common case costs a
 * stat); otherwise it is hashed, so a copy or a touch with the same bytes is not "stale".
 *
 * Recursive: a file is stale when an input changed since it was built, or when an input is itself
 * stale (taxonomy.bin built from an older dataset.bin makes journeys.bin stale too); the message
 * names the first stage to rerun. Files without a record (stages that do not record yet, or
 * workspaces built before manifests) are "unrecorded": nothing is claimed about them. */
#ifndef SERENDIP_MANIFEST_H
#define SERENDIP_MANIFEST_H

#include "serendip/base.h"

#define MF_DIR "manifest"

/* Records that `stage` (the command name, e.g. "cluster") built ws/<out> from ws/<inputs[i]>
 * (names relative to ws; inputs that do not exist are left out, e.g. an optional split.json).
 * Call once the output is in place. */
int mf_record(const char *ws, const char *out, const char *stage, const char *const *inputs, int n, sd_err *err);

typedef enum {
    MF_FRESH = 0,      /* recorded, and every input (recursively) is as it was */
    MF_UNRECORDED = 1, /* no record, or the file changed since its record was written */
    MF_STALE = 2,      /* an input changed or is gone since the file was built, or is stale */
    MF_MISSING = 3,    /* the file does not exist */
} mf_state;

typedef struct {
    mf_state state;
    char stage[32];    /* the stage that built the file ("" when unrecorded) */
    char rerun[32];    /* MF_STALE: the first stage to rerun */
    char why[512];     /* MF_STALE: which input changed, in words */
} mf_status;

/* The freshness of ws/<file>. Returns SD_OK (the state is in st) or an error for an unreadable
 * or malformed record (naming it). */
int mf_status_of(const char *ws, const char *file, mf_status *st, sd_err *err);
/* For a reader of files[0..n) (names relative to ws): SD_ERR_STATE on the first stale one, with
 * "<why> (rerun `serendip <stage>` and the stages after it)"; fresh, unrecorded and missing files
 * pass (readers report missing files themselves). */
int mf_check(const char *ws, const char *const *files, int n, sd_err *err);
/* "fresh", "unrecorded", "stale", "missing". */
const char *mf_state_name(mf_state s);

#endif
