/* split.c - the global temporal split (split.json): cut-offs by fractions of the time range,
 * counts per window, and the JSON file (cJSON) that later stages read. */
#include "serendip/dataset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ds_split_by_fraction(const ds_dataset *d, double train_frac, double valid_frac, ds_split *out, sd_err *err) {
    if (!(train_frac > 0 && train_frac <= 1) || !(valid_frac >= 0 && valid_frac <= 1) || train_frac + valid_frac > 1 + 1e-9)
        return sd_fail(err, SD_ERR_USAGE, "split fractions: train %g and valid %g must be in (0,1] and [0,1] with a sum of at most 1",
                       train_frac, valid_frac);
    if (d->n_events == 0) return sd_fail(err, SD_ERR_DATA, "split: the dataset has no events");
    memset(out, 0, sizeof *out);
    /* The window [ts_min, ts_max] holds span seconds; a fraction of 1 puts every event before the cut. */
    double span = (double)(d->ts_max - d->ts_min) + 1;
    out->train_end = d->ts_min + (int64_t)floor(train_frac * span);
    out->valid_end = d->ts_min + (int64_t)floor((train_frac + valid_frac) * span);
    if (out->valid_end > d->ts_max + 1) out->valid_end = d->ts_max + 1;
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
    if (!gmtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm)) snprintf(buf, n, "?");
}

int ds_split_save(const ds_split *s, const char *path, sd_err *err) {
    if (s->valid_end < s->train_end)
        return sd_fail(err, SD_ERR_USAGE, "split: valid end %lld is before train end %lld", (long long)s->valid_end, (long long)s->train_end);
    char a[64], b[64];
    utc_string(s->train_end, a, sizeof a);
    utc_string(s->valid_end, b, sizeof b);
    char *text = sd_asprintf("{\n  \"format\": \"serendip-split\",\n  \"version\": 1,\n"
                             "  \"train_end\": %lld,\n  \"valid_end\": %lld,\n"
                             "  \"train_end_utc\": \"%s\",\n  \"valid_end_utc\": \"%s\"\n}\n",
                             (long long)s->train_end, (long long)s->valid_end, a, b);
    int rc = sd_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

/* Reads an integer-valued JSON number member; returns 0 when absent or not an exact integer. */
static int json_i64(const cJSON *o, const char *key, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return 0;
    double x = v->valuedouble;
    if (!isfinite(x) || x != floor(x) || fabs(x) > 9.0e15) return 0; /* exact in a double */
    *out = (int64_t)x;
    return 1;
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
    if (!json_i64(j, "version", &version) || version != 1) rc = sd_fail(err, SD_ERR_FORMAT, "%s: missing or unsupported \"version\" (expected 1)", path);
    else if (!json_i64(j, "train_end", &t.train_end)) rc = sd_fail(err, SD_ERR_FORMAT, "%s: \"train_end\" missing or not an integer", path);
    else if (!json_i64(j, "valid_end", &t.valid_end)) rc = sd_fail(err, SD_ERR_FORMAT, "%s: \"valid_end\" missing or not an integer", path);
    else if (t.valid_end < t.train_end) rc = sd_fail(err, SD_ERR_FORMAT, "%s: valid_end is before train_end", path);
    else *s = t;
    cJSON_Delete(j);
    return rc;
}
