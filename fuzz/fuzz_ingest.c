/* fuzz_ingest.c - libFuzzer target for the ingest paths beyond the CSV reader itself (fuzz_csv):
 * RecBole atomic files (typed headers, float times, token_seq tags, string ids) and generic CSV
 * logs with string or integer ids, down to the dataset builder (string-id maps, the settling of
 * all-integer string sides) and dataset.bin version 2 (name sections and their index).
 * Build and run: bash scripts/fuzz 60 fuzz_ingest.
 *
 * The first input byte picks the reader (bits 0-1: RecBole, CSV with string ids, CSV with integer
 * ids, CSV without header), whether a catalogue is given (bit 2) and whether the dataset goes
 * through ds_save + ds_load (bit 3: an fsync'ed write, slow); the rest is the log, then,
 * after the first 0x01 byte, the catalogue. Both are written to files in a private temporary
 * folder (ingest reads paths). Besides crashes and sanitizer reports it checks: an error names the
 * file it is about; a dataset that comes out has every raw id found back by ds_find_*_raw, event
 * and catalogue counts that add up, and (bit 3) survives ds_save + ds_load with the same content.
 * fuzz-sources: src/base/base.c src/data/csv.c src/data/dataset.c src/data/ingest.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/ingest.h"

static char g_dir[64];

static void put(const char *path, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

static void cleanup(void) {
    char path[128];
    static const char *const names[] = {"x.inter", "x.item", "x.csv", "x.items", "dataset.bin"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        unlink(path);
    }
    rmdir(g_dir);
}

/* Every raw id of d found back, and (save) d equal to itself after ds_save + ds_load. */
static void check(const ds_dataset *d, int save) {
    char buf[DS_ID_BUF], path[128];
    for (int64_t u = 0; u < d->n_users; u++)
        if (ds_find_user_raw(d, ds_user_raw_id(d, u, buf, sizeof buf)) != u) abort();
    for (int64_t i = 0; i < d->n_items; i++)
        if (ds_find_item_raw(d, ds_item_raw_id(d, i, buf, sizeof buf)) != i) abort();
    if (d->user_off[d->n_users] != d->n_events) abort();
    if (!save) return;
    snprintf(path, sizeof path, "%s/dataset.bin", g_dir);
    sd_err err = {0};
    ds_dataset l;
    if (ds_save(d, path, &err) || ds_load(&l, path, &err)) abort();
    if (l.n_users != d->n_users || l.n_items != d->n_items || l.n_events != d->n_events ||
        ds_has_user_names(&l) != ds_has_user_names(d) || ds_has_item_names(&l) != ds_has_item_names(d) ||
        memcmp(l.events, d->events, (size_t)d->n_events * sizeof *d->events))
        abort();
    for (int64_t u = 0; u < d->n_users; u++) {
        char b2[DS_ID_BUF];
        if (strcmp(ds_user_raw_id(&l, u, buf, sizeof buf), ds_user_raw_id(d, u, b2, sizeof b2))) abort();
    }
    ds_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (!g_dir[0]) {
        /* a memory file system when there is one: 20x the executions of a disk-backed /tmp */
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(g_dir, sizeof g_dir, "%s/sd_fuzz_ingestXXXXXX", tmp);
        if (!mkdtemp(g_dir)) abort();
        atexit(cleanup);
    }
    const uint8_t mode = data[0] & 3, with_items = (data[0] >> 2) & 1;
    const uint8_t *log = data + 1, *cut = memchr(log, 0x01, size - 1);
    size_t nlog = cut ? (size_t)(cut - log) : size - 1;
    char lp[128], ip[128];
    snprintf(lp, sizeof lp, "%s/x.%s", g_dir, mode == 0 ? "inter" : "csv");
    snprintf(ip, sizeof ip, "%s/x.%s", g_dir, mode == 0 ? "item" : "items");
    put(lp, log, nlog);
    if (with_items) put(ip, cut ? cut + 1 : log, cut ? size - 1 - nlog - 1 : 0);
    else unlink(ip);

    ds_dataset d;
    ingest_report rep;
    sd_err err = {0};
    int rc;
    if (mode == 0) {
        rc = ingest_recbole(lp, &d, &rep, &err);
    } else {
        ingest_csv_opts o = {.ratings = lp, .items = with_items ? ip : NULL, .user_col = "user", .item_col = "item",
                             .ts_col = "ts", .rating_col = "rating", .title_col = "title", .tags_col = "tags",
                             .int_ids = mode == 2};
        if (mode == 3) o.no_header = 1, o.user_col = "1", o.item_col = "2", o.ts_col = "3", o.rating_col = "4",
                       o.title_col = "2", o.tags_col = "";
        rc = ingest_csv(&o, &d, &rep, &err);
    }
    if (rc == SD_OK) {
        if (rep.rating_rows != d.n_events) abort();
        check(&d, (data[0] >> 3) & 1);
        ds_free(&d);
    } else if (!strstr(err.msg, g_dir) || (!strstr(err.msg, "x.") && !strstr(err.msg, "dataset"))) {
        abort(); /* every error names the file */
    }
    return 0;
}
