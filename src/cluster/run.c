/* run.c - the cluster stage on a workspace (tx_run): dataset + split in, taxonomy.bin and
 * clusters.tsv out. The command line only parses flags and prints the summary. */
#include <stdlib.h>

#include "serendip/manifest.h"
#include "serendip/taxonomy.h"

int tx_run(const char *ws, const tx_config *cfg, tx_taxonomy *out, tx_stats *stats, double *secs_total, sd_err *err) {
    char *dpath = sd_path_join(ws, DS_FILE), *spath = sd_path_join(ws, DS_SPLIT_FILE);
    char *tpath = sd_path_join(ws, TX_FILE), *cpath = sd_path_join(ws, TX_TSV);
    ds_dataset d;
    ds_split split = {0};
    tx_taxonomy t;
    tx_stats st;
    int have_d = 0, have_s = 0, have_t = 0, rc = SD_OK;
    double t0 = sd_now();
    if (!sd_file_exists(dpath))
        rc = sd_fail(err, SD_ERR_STATE, "%s is missing (run 'serendip ingest' or 'serendip world')", dpath);
    else if (!sd_file_exists(spath))
        rc = sd_fail(err, SD_ERR_STATE, "%s is missing (run 'serendip split')", spath);
    if (!rc && !(rc = ds_load(&d, dpath, err))) have_d = 1;
    if (!rc && !(rc = ds_split_load(&split, spath, err))) have_s = 1;
    if (!rc && !(rc = tx_build(&d, &split, cfg, &t, &st, err))) have_t = 1;
    if (!rc) rc = tx_save(&t, tpath, err);
    if (!rc) rc = tx_write_tsv(&t, &d, cpath, 5, err);
    const char *inputs[] = {DS_FILE, DS_SPLIT_FILE};
    if (!rc) rc = mf_record(ws, TX_FILE, "cluster", inputs, 2, err);
    if (!rc) rc = mf_record(ws, TX_TSV, "cluster", inputs, 2, err);
    if (!rc && out) *out = t, have_t = 0;
    if (!rc && stats) *stats = st;
    if (!rc && secs_total) *secs_total = sd_now() - t0;
    if (have_t) tx_free(&t);
    if (have_s) ds_split_free(&split);
    if (have_d) ds_free(&d);
    free(dpath), free(spath), free(tpath), free(cpath);
    return rc;
}
