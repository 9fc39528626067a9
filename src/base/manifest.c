/* manifest.c - records of what each workspace file was built from, and freshness checks
 * (manifest.h; format in docs/formats-manifest.md). Records are small JSON files read and written
 * with cJSON. 64-bit values (hash, inode, mtime in ns) are hex or decimal strings, because JSON
 * numbers lose integers above 2^53. */
#include "serendip/manifest.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MF_DEPTH_MAX 8 /* longest chain of recorded inputs followed (the pipeline has 6 stages) */

typedef struct {
    int64_t size;
    uint64_t ino;
    int64_t mtime_ns;
    uint64_t hash;
} fingerprint;

/* Size, inode and mtime of path; -1 when it does not exist. */
static int fp_stat(const char *path, fingerprint *fp) {
    struct stat st;
    if (stat(path, &st)) return -1;
    fp->size = (int64_t)st.st_size;
    fp->ino = (uint64_t)st.st_ino;
    fp->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    fp->hash = 0;
    return 0;
}

static int fp_same_stat(const fingerprint *a, const fingerprint *b) {
    return a->size == b->size && a->ino == b->ino && a->mtime_ns == b->mtime_ns;
}

static char *record_path(const char *ws, const char *file) {
    char *dir = sd_path_join(ws, MF_DIR), *name = sd_asprintf("%s.json", file), *p = sd_path_join(dir, name);
    free(dir), free(name);
    return p;
}

/* The record of ws/<file>, parsed, or NULL (*rc set on a malformed or unreadable one). */
static cJSON *record_load(const char *ws, const char *file, int *rc, sd_err *err) {
    *rc = SD_OK;
    char *p = record_path(ws, file);
    if (!sd_file_exists(p)) {
        free(p);
        return NULL;
    }
    char *text;
    size_t len;
    if ((*rc = sd_read_file(p, &text, &len, err))) {
        free(p);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(j) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "stage")) ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "inputs"))) {
        *rc = sd_fail(err, SD_ERR_FORMAT, "%s: not a manifest record (delete it; the stage's next run writes it again)", p);
        cJSON_Delete(j);
        j = NULL;
    }
    free(p);
    return j;
}

/* Reads the fingerprint fields of a record object (output or input); -1 when malformed. */
static int fp_from_json(const cJSON *o, fingerprint *fp) {
    const cJSON *sz = cJSON_GetObjectItemCaseSensitive(o, "size"), *ino = cJSON_GetObjectItemCaseSensitive(o, "inode"),
                *mt = cJSON_GetObjectItemCaseSensitive(o, "mtime_ns"), *h = cJSON_GetObjectItemCaseSensitive(o, "hash");
    if (!cJSON_IsNumber(sz) || !cJSON_IsString(ino) || !cJSON_IsString(mt) || !cJSON_IsString(h)) return -1;
    fp->size = (int64_t)sz->valuedouble;
    fp->ino = strtoull(ino->valuestring, NULL, 10);
    fp->mtime_ns = strtoll(mt->valuestring, NULL, 10);
    fp->hash = strtoull(h->valuestring, NULL, 16);
    return 0;
}

static void fp_to_json(cJSON *o, const fingerprint *fp) {
    char b[32];
    cJSON_AddNumberToObject(o, "size", (double)fp->size);
    snprintf(b, sizeof b, "%" PRIu64, fp->ino);
    cJSON_AddStringToObject(o, "inode", b);
    snprintf(b, sizeof b, "%" PRId64, fp->mtime_ns);
    cJSON_AddStringToObject(o, "mtime_ns", b);
    snprintf(b, sizeof b, "%016" PRIx64, fp->hash);
    cJSON_AddStringToObject(o, "hash", b);
}

/* The current fingerprint of ws/<file> with its content hash: the file's own record's hash when
 * the record still describes it (a stat), else a hash of the bytes. -1: absent or unreadable. */
static int fp_current(const char *ws, const char *file, fingerprint *fp) {
    char *p = sd_path_join(ws, file);
    int rc = fp_stat(p, fp);
    if (!rc) {
        int lrc;
        sd_err e;
        cJSON *r = record_load(ws, file, &lrc, &e);
        fingerprint rec;
        if (r && !fp_from_json(r, &rec) && fp_same_stat(&rec, fp)) fp->hash = rec.hash;
        else if (sd_hash_file(p, &fp->hash, &e)) rc = -1;
        cJSON_Delete(r);
    }
    free(p);
    return rc;
}

/* 1 when ws/<file> still has the content fp describes (stat first, bytes when the stat differs). */
static int fp_unchanged(const char *ws, const char *file, const fingerprint *fp) {
    char *p = sd_path_join(ws, file);
    fingerprint now;
    int same = 0;
    if (!fp_stat(p, &now)) {
        sd_err e;
        same = fp_same_stat(&now, fp) || (!sd_hash_file(p, &now.hash, &e) && now.hash == fp->hash);
    }
    free(p);
    return same;
}

int mf_record(const char *ws, const char *out, const char *stage, const char *const *inputs, int n, sd_err *err) {
    fingerprint fp;
    char *op = sd_path_join(ws, out);
    int rc = fp_stat(op, &fp) ? sd_fail(err, SD_ERR_IO, "manifest: %s does not exist", op) : sd_hash_file(op, &fp.hash, err);
    free(op);
    if (rc) return rc;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "file", out);
    cJSON_AddStringToObject(j, "stage", stage);
    fp_to_json(j, &fp);
    cJSON *a = cJSON_AddArrayToObject(j, "inputs");
    for (int i = 0; i < n; i++) {
        fingerprint in;
        if (fp_current(ws, inputs[i], &in)) continue; /* absent: an optional input */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", inputs[i]);
        fp_to_json(o, &in);
        cJSON_AddItemToArray(a, o);
    }
    char *text = cJSON_Print(j), *p = record_path(ws, out);
    cJSON_Delete(j);
    char *dir = sd_strdup(p), *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    rc = sd_mkdir_p(dir, err);
    if (!rc) rc = sd_write_file_atomic(p, text, strlen(text), err);
    free(dir), free(p), free(text);
    return rc;
}

static int status_at(const char *ws, const char *file, mf_status *st, int depth, sd_err *err) {
    memset(st, 0, sizeof *st);
    char *p = sd_path_join(ws, file);
    int exists = sd_file_exists(p);
    free(p);
    if (!exists) {
        st->state = MF_MISSING;
        return SD_OK;
    }
    int rc;
    cJSON *r = record_load(ws, file, &rc, err);
    if (!r) {
        st->state = MF_UNRECORDED;
        return rc;
    }
    snprintf(st->stage, sizeof st->stage, "%s", cJSON_GetObjectItemCaseSensitive(r, "stage")->valuestring);
    fingerprint rec;
    if (fp_from_json(r, &rec) || !fp_unchanged(ws, file, &rec)) { /* the record is about another version */
        st->state = MF_UNRECORDED, st->stage[0] = 0;
        cJSON_Delete(r);
        return SD_OK;
    }
    st->state = MF_FRESH;
    const cJSON *in, *inputs = cJSON_GetObjectItemCaseSensitive(r, "inputs");
    /* a stale input first: its stage comes earlier in the pipeline and must be rerun first */
    cJSON_ArrayForEach(in, inputs) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "file"));
        mf_status sub;
        if (name && depth < MF_DEPTH_MAX && status_at(ws, name, &sub, depth + 1, err) == SD_OK && sub.state == MF_STALE) {
            st->state = MF_STALE;
            snprintf(st->rerun, sizeof st->rerun, "%s", sub.rerun);
            snprintf(st->why, sizeof st->why, "%s was built from %s, and %.400s", file, name, sub.why);
            cJSON_Delete(r);
            return SD_OK;
        }
    }
    cJSON_ArrayForEach(in, inputs) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "file"));
        fingerprint ifp;
        if (!name || fp_from_json(in, &ifp)) continue;
        char *ip = sd_path_join(ws, name);
        int gone = !sd_file_exists(ip);
        free(ip);
        if (gone || !fp_unchanged(ws, name, &ifp)) {
            st->state = MF_STALE;
            snprintf(st->rerun, sizeof st->rerun, "%s", st->stage);
            snprintf(st->why, sizeof st->why, gone ? "%s was built from %s, which is gone" : "%s was built from another %s",
                     file, name);
            break;
        }
    }
    cJSON_Delete(r);
    return SD_OK;
}

int mf_status_of(const char *ws, const char *file, mf_status *st, sd_err *err) { return status_at(ws, file, st, 0, err); }

int mf_check(const char *ws, const char *const *files, int n, sd_err *err) {
    for (int i = 0; i < n; i++) {
        mf_status st;
        int rc = mf_status_of(ws, files[i], &st, err);
        if (rc) return rc;
        if (st.state == MF_STALE)
            return sd_fail(err, SD_ERR_STATE, "%s/%s is stale: %s (rerun `serendip %s` and the stages after it)", ws, files[i],
                           st.why, st.rerun);
    }
    return SD_OK;
}

const char *mf_state_name(mf_state s) {
    switch (s) {
    case MF_FRESH: return "fresh";
    case MF_UNRECORDED: return "unrecorded";
    case MF_STALE: return "stale";
    default: return "missing";
    }
}
