/* split.c - temporal splits (split.json): the global split (cut-offs by fractions of the time
 * range) and the per-user split (each user's own last events), counts per window, and the JSON
 * file (cJSON) that later stages read. The file records the hash of the dataset.bin it was
 * computed from, and loading refuses it against another one. */
#include "serendip/dataset.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Largest magnitude a boundary may have in split.json: a JSON number is read as a double, which
 * holds every integer up to 2^53 exactly (unix seconds reach it in 285 million years). */
#define SPLIT_MAX_ABS 9007199254740992.0

/* t + 1 without overflow: the boundary just after an event at t. INT64_MAX stays INT64_MAX, so an
 * event at exactly INT64_MAX always falls after the boundary (the one place the clamp shows). */
static int64_t after(int64_t t) { return t < INT64_MAX ? t + 1 : INT64_MAX; }

/* ts_min + floor(frac * span) with span = ts_max - ts_min + 1, clamped to [ts_min, ts_max + 1]
 * (saturated) without signed overflow (issue 11: timestamps near INT64_MAX, or a range wider
 * than INT64_MAX): the range is exact in unsigned arithmetic, the product is taken in double. */
static int64_t cut_at(const ds_dataset *d, double frac) {
    double span = (double)((uint64_t)d->ts_max - (uint64_t)d->ts_min) + 1;
    double off = floor(frac * span);
    int64_t hi = after(d->ts_max);
    uint64_t room = (uint64_t)hi - (uint64_t)d->ts_min; /* hi - ts_min, exact in uint64 */
    if (!(off > 0)) return d->ts_min;
    if (off >= (double)room) return hi;
    return (int64_t)((uint64_t)d->ts_min + (uint64_t)off); /* <= hi, so it fits */
}

int ds_split_by_fraction(const ds_dataset *d, double train_frac, double valid_frac, ds_split *out, sd_err *err) {
    if (!(train_frac > 0 && train_frac <= 1) || !(valid_frac >= 0 && valid_frac <= 1) || train_frac + valid_frac > 1 + 1e-9)
        return sd_fail(err, SD_ERR_USAGE, "split fractions: train %g and valid %g must be in (0,1] and [0,1] with a sum of at most 1",
                       train_frac, valid_frac);
    if (d->n_events == 0) return sd_fail(err, SD_ERR_DATA, "split: the dataset has no events");
    memset(out, 0, sizeof *out);
    /* The window [ts_min, ts_max] holds span seconds; a fraction of 1 puts every event before the cut. */
    out->train_end = cut_at(d, train_frac);
    out->valid_end = cut_at(d, train_frac + valid_frac);
    return SD_OK;
}

/* ---------------------------------------------------------------- per-user split */

int ds_user_window_parse(const char *text, ds_user_window *w, sd_err *err) {
    memset(w, 0, sizeof *w);
    char *end = NULL;
    errno = 0;
    if (!strncmp(text, "last:", 5)) {
        long long n = strtoll(text + 5, &end, 10);
        if (end != text + 5 && !*end && !errno && n >= 1) {
            w->last = n;
            return SD_OK;
        }
    } else if (!strncmp(text, "frac:", 5)) {
        double f = strtod(text + 5, &end);
        if (end != text + 5 && !*end && f > 0 && f < 1) {
            w->frac = f;
            return SD_OK;
        }
    }
    return sd_fail(err, SD_ERR_USAGE, "per-user window '%s': expected last:N (N >= 1 events) or frac:F (0 < F < 1)", text);
}

void ds_user_window_format(ds_user_window w, char *buf, size_t n) {
    if (w.last > 0) snprintf(buf, n, "last:%lld", (long long)w.last);
    else if (w.frac > 0) snprintf(buf, n, "frac:%.15g", w.frac);
    else snprintf(buf, n, "none");
}

/* Events window w takes of a user with n events, before the train event is reserved. The 1e-9
 * keeps products such as 0.7 * 10 = 7.000000000000001 from rounding up to 8. */
static int64_t window_events(ds_user_window w, int64_t n) {
    if (w.last > 0) return w.last;
    if (w.frac > 0) return (int64_t)ceil(w.frac * (double)n - 1e-9);
    return 0;
}

int ds_split_per_user(const ds_dataset *d, ds_user_window test, ds_user_window valid, ds_split *out, sd_err *err) {
    memset(out, 0, sizeof *out);
    if (test.last < 0 || test.frac < 0 || test.frac >= 1 || (test.last > 0) == (test.frac > 0))
        return sd_fail(err, SD_ERR_USAGE, "per-user split: the test window must be last:N (N >= 1) or frac:F (0 < F < 1)");
    if (valid.last < 0 || valid.frac < 0 || valid.frac >= 1 || (valid.last > 0 && valid.frac > 0))
        return sd_fail(err, SD_ERR_USAGE, "per-user split: the valid window must be none, last:N or frac:F (0 < F < 1)");
    if (d->n_events == 0) return sd_fail(err, SD_ERR_DATA, "split: the dataset has no events");
    out->n_users = d->n_users;
    out->user_train_end = sd_malloc((size_t)(d->n_users ? d->n_users : 1) * sizeof(int64_t));
    out->user_valid_end = sd_malloc((size_t)(d->n_users ? d->n_users : 1) * sizeof(int64_t));
    out->user_test = test;
    out->user_valid = valid;
    out->train_end = out->valid_end = INT64_MIN;
    for (int64_t u = 0; u < d->n_users; u++) {
        const ds_event *e = d->events + d->user_off[u];
        int64_t n = d->user_off[u + 1] - d->user_off[u], te, ve;
        if (n == 0) {
            te = ve = d->ts_min; /* no events: any boundary will do */
        } else {
            /* cut indices: events [0, c_valid) train, [c_valid, c_test) valid, [c_test, n) test;
             * the test window is served first, then valid, and event 0 always stays train */
            int64_t c_test = n - window_events(test, n), c_valid;
            if (c_test < 1) c_test = 1;
            c_valid = c_test - window_events(valid, n);
            if (c_valid < 1) c_valid = 1;
            te = after(e[c_valid - 1].ts); /* ties with the last event before a cut stay before it */
            ve = after(e[c_test - 1].ts);
        }
        out->user_train_end[u] = te;
        out->user_valid_end[u] = ve;
        if (te > out->train_end) out->train_end = te;
        if (ve > out->valid_end) out->valid_end = ve;
    }
    return SD_OK;
}

void ds_split_free(ds_split *s) {
    free(s->user_train_end);
    free(s->user_valid_end);
    s->user_train_end = s->user_valid_end = NULL;
    s->n_users = 0;
}

void ds_split_count(const ds_dataset *d, const ds_split *s, ds_split_counts *c) {
    memset(c, 0, sizeof *c);
    for (int64_t u = 0; u < d->n_users; u++) {
        int seen[3] = {0, 0, 0};
        for (int64_t k = d->user_off[u]; k < d->user_off[u + 1]; k++) {
            int w = ds_split_of(s, u, d->events[k].ts);
            c->events[w]++;
            seen[w] = 1;
        }
        for (int w = 0; w < 3; w++) c->users[w] += seen[w];
    }
}

/* "YYYY-MM-DD HH:MM:SS UTC" of t into buf. */
static void utc_string(int64_t t, char *buf, size_t n) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm)) snprintf(buf, n, "%lld", (long long)t);
}

void ds_split_describe(const ds_split *s, char *buf, size_t n) {
    char a[64], b[64];
    if (s->user_train_end) {
        ds_user_window_format(s->user_test, a, sizeof a);
        ds_user_window_format(s->user_valid, b, sizeof b);
        snprintf(buf, n, "per-user: test = each user's %s, valid = %s", a, b);
    } else {
        utc_string(s->train_end, a, sizeof a);
        utc_string(s->valid_end, b, sizeof b);
        snprintf(buf, n, "global: train < %s <= valid < %s <= test", a, b);
    }
}

/* ---------------------------------------------------------------- split.json */

static int too_large(int64_t t) { return fabs((double)t) > SPLIT_MAX_ABS; }

/* Writes `"key": [v0,v1,...]` for n values. */
static void put_array(FILE *f, const char *key, const int64_t *v, int64_t n) {
    fprintf(f, "  \"%s\": [", key);
    for (int64_t i = 0; i < n; i++) fprintf(f, i ? ",%lld" : "%lld", (long long)v[i]);
    fputs("]", f);
}

int ds_split_save(const ds_split *s, const char *path, sd_err *err) {
    if (s->valid_end < s->train_end)
        return sd_fail(err, SD_ERR_USAGE, "split: valid end %lld is before train end %lld", (long long)s->valid_end, (long long)s->train_end);
    if (too_large(s->train_end) || too_large(s->valid_end))
        return sd_fail(err, SD_ERR_USAGE, "split: boundary %lld is beyond 2^53 s, which split.json cannot hold exactly (are the timestamps in seconds?)",
                       (long long)(too_large(s->train_end) ? s->train_end : s->valid_end));
    int per_user = s->user_train_end != NULL;
    for (int64_t u = 0; per_user && u < s->n_users; u++) {
        if (too_large(s->user_train_end[u]) || too_large(s->user_valid_end[u]))
            return sd_fail(err, SD_ERR_USAGE, "split: user %lld's boundary is beyond 2^53 s, which split.json cannot hold exactly", (long long)u);
        if (s->user_valid_end[u] < s->user_train_end[u])
            return sd_fail(err, SD_ERR_USAGE, "split: user %lld's valid end is before their train end", (long long)u);
    }
    sd_afile a;
    int rc = sd_afile_open(&a, path, err);
    if (rc) return rc;
    FILE *f = a.f;
    fprintf(f, "{\n  \"format\": \"serendip-split\",\n  \"version\": 2,\n  \"kind\": \"%s\",\n", per_user ? "per-user" : "global");
    if (s->dataset_hash) fprintf(f, "  \"dataset_hash\": \"%016" PRIx64 "\",\n", s->dataset_hash);
    if (per_user) {
        char t[64], v[64];
        ds_user_window_format(s->user_test, t, sizeof t);
        ds_user_window_format(s->user_valid, v, sizeof v);
        fprintf(f, "  \"test\": \"%s\",\n  \"valid\": \"%s\",\n  \"users\": %lld,\n", t, v, (long long)s->n_users);
        put_array(f, "user_train_end", s->user_train_end, s->n_users);
        fputs(",\n", f);
        put_array(f, "user_valid_end", s->user_valid_end, s->n_users);
        fputs("\n}\n", f);
    } else {
        char ta[64], va[64];
        utc_string(s->train_end, ta, sizeof ta);
        utc_string(s->valid_end, va, sizeof va);
        fprintf(f, "  \"train_end\": %lld,\n  \"valid_end\": %lld,\n  \"train_end_utc\": \"%s\",\n  \"valid_end_utc\": \"%s\"\n}\n",
                (long long)s->train_end, (long long)s->valid_end, ta, va);
    }
    return sd_afile_commit(&a, err);
}

/* An integer-valued JSON number; 0 when v is absent, not a number or not an exact integer. */
static int json_int(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double x = v->valuedouble;
    if (!isfinite(x) || x != floor(x) || fabs(x) > SPLIT_MAX_ABS) return 0;
    *out = (int64_t)x;
    return 1;
}

static int json_i64(const cJSON *o, const char *key, int64_t *out) { return json_int(cJSON_GetObjectItemCaseSensitive(o, key), out); }

/* Reads array `key` of exactly n integers into a fresh heap array *out (caller frees). */
static int json_array(const cJSON *o, const char *key, int64_t n, int64_t **out, const char *path, sd_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a)) return sd_fail(err, SD_ERR_FORMAT, "%s: \"%s\" missing or not an array", path, key);
    int64_t len = cJSON_GetArraySize(a);
    if (len != n) return sd_fail(err, SD_ERR_FORMAT, "%s: \"%s\" has %lld entries, \"users\" says %lld", path, key, (long long)len, (long long)n);
    *out = sd_malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    int64_t i = 0;
    for (const cJSON *v = a->child; v; v = v->next, i++)
        if (!json_int(v, &(*out)[i])) return sd_fail(err, SD_ERR_FORMAT, "%s: \"%s\"[%lld] is not an integer", path, key, (long long)i);
    return SD_OK;
}

/* Parses the per-user part of j into t. */
static int load_per_user(const cJSON *j, ds_split *t, const char *path, sd_err *err) {
    const char *keys[2] = {"test", "valid"};
    ds_user_window *w[2] = {&t->user_test, &t->user_valid};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        if (!cJSON_IsString(v)) return sd_fail(err, SD_ERR_FORMAT, "%s: \"%s\" missing or not a string", path, keys[k]);
        if (k == 1 && !strcmp(v->valuestring, "none")) continue;
        sd_err e2 = {0};
        if (ds_user_window_parse(v->valuestring, w[k], &e2))
            return sd_fail(err, SD_ERR_FORMAT, "%s: \"%s\": %s", path, keys[k], e2.msg);
    }
    if (!json_i64(j, "users", &t->n_users) || t->n_users < 0)
        return sd_fail(err, SD_ERR_FORMAT, "%s: \"users\" missing or not a non-negative integer", path);
    int rc = json_array(j, "user_train_end", t->n_users, &t->user_train_end, path, err);
    if (!rc) rc = json_array(j, "user_valid_end", t->n_users, &t->user_valid_end, path, err);
    if (rc) return rc;
    t->train_end = t->valid_end = INT64_MIN;
    for (int64_t u = 0; u < t->n_users; u++) {
        if (t->user_valid_end[u] < t->user_train_end[u])
            return sd_fail(err, SD_ERR_FORMAT, "%s: \"user_valid_end\"[%lld] is before \"user_train_end\"[%lld]", path, (long long)u, (long long)u);
        if (t->user_train_end[u] > t->train_end) t->train_end = t->user_train_end[u];
        if (t->user_valid_end[u] > t->valid_end) t->valid_end = t->user_valid_end[u];
    }
    if (t->n_users == 0) t->train_end = t->valid_end = 0;
    return SD_OK;
}

/* The dataset.bin in the folder of the split file at path (caller frees). */
static char *sibling_dataset(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return sd_strdup(DS_FILE);
    char *dir = sd_strndup(path, (size_t)(slash - path + 1));
    char *p = sd_asprintf("%s%s", dir, DS_FILE);
    free(dir);
    return p;
}

/* SD_OK when the dataset.bin beside path still hashes to t->dataset_hash. */
static int check_dataset(const ds_split *t, const char *path, sd_err *err) {
    char *dp = sibling_dataset(path);
    uint64_t h = 0;
    int rc = SD_OK;
    if (!sd_file_exists(dp)) rc = sd_fail(err, SD_ERR_STATE, "%s: the split was computed from a %s, and %s is missing", path, DS_FILE, dp);
    else if ((rc = sd_hash_file(dp, &h, err)) == SD_OK && h != t->dataset_hash)
        rc = sd_fail(err, SD_ERR_STATE,
                     "%s was computed from another dataset (hash %016" PRIx64 ", %s now hashes to %016" PRIx64 "): rerun 'serendip split'",
                     path, t->dataset_hash, dp, h);
    free(dp);
    return rc;
}

int ds_split_load(ds_split *s, const char *path, sd_err *err) {
    if (!sd_file_exists(path)) return sd_fail(err, SD_ERR_STATE, "%s: no split in this workspace (run 'serendip split')", path);
    char *text;
    size_t n;
    int rc = sd_read_file(path, &text, &n, err);
    if (rc) return rc;
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return sd_fail(err, SD_ERR_FORMAT, "%s: not a JSON object", path);
    }
    int64_t version = 0;
    ds_split t = {0};
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kind"), *hash = cJSON_GetObjectItemCaseSensitive(j, "dataset_hash");
    if (!json_i64(j, "version", &version) || (version != 1 && version != 2))
        rc = sd_fail(err, SD_ERR_FORMAT, "%s: missing or unsupported \"version\" (expected 1 or 2)", path);
    else if (version == 2 && (!cJSON_IsString(kind) || (strcmp(kind->valuestring, "global") && strcmp(kind->valuestring, "per-user"))))
        rc = sd_fail(err, SD_ERR_FORMAT, "%s: \"kind\" missing or not \"global\" or \"per-user\"", path);
    else if (version == 2 && hash &&
             (!cJSON_IsString(hash) || strlen(hash->valuestring) != 16 || strspn(hash->valuestring, "0123456789abcdef") != 16 ||
              !(t.dataset_hash = strtoull(hash->valuestring, NULL, 16))))
        rc = sd_fail(err, SD_ERR_FORMAT, "%s: \"dataset_hash\" is not 16 hex digits", path);
    else if (version == 2 && !strcmp(kind->valuestring, "per-user"))
        rc = load_per_user(j, &t, path, err);
    else if (!json_i64(j, "train_end", &t.train_end)) rc = sd_fail(err, SD_ERR_FORMAT, "%s: \"train_end\" missing or not an integer", path);
    else if (!json_i64(j, "valid_end", &t.valid_end)) rc = sd_fail(err, SD_ERR_FORMAT, "%s: \"valid_end\" missing or not an integer", path);
    else if (t.valid_end < t.train_end) rc = sd_fail(err, SD_ERR_FORMAT, "%s: valid_end is before train_end", path);
    cJSON_Delete(j);
    if (!rc && t.dataset_hash) rc = check_dataset(&t, path, err);
    if (rc) ds_split_free(&t);
    else *s = t;
    return rc;
}
