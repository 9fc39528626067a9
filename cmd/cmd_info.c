/* cmd_info.c - `serendip info`: a summary of whatever stages a workspace holds, and the freshness
 * of each file present (manifest.h). */
#include "cmd.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include "serendip/corpus.h"
#include "serendip/dataset.h"
#include "serendip/journeys.h"
#include "serendip/manifest.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"

static cJSON *num_or_null(int have, double v) { return have ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

/* The files a workspace can hold, in pipeline order (plans/ is listed from the folder). */
static const char *const WS_FILES[] = {
    DS_FILE, DS_SPLIT_FILE, "world_truth.bin", TX_FILE, TX_TSV, JR_FILE, JR_FEEDBACK_TSV,
    "models/base.gguf", "models/novelty.gguf", "models/align.gguf", "models/single.gguf", "models/train.json",
    "retrieval.bin", TBL_FILE, "metrics.json", "report.html",
};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every present file of the workspace with its freshness (manifest.h), as a JSON array. */
static cJSON *files_json(const char *ws, sd_err *err) {
    char *names[256];
    int n = 0;
    for (size_t i = 0; i < sizeof WS_FILES / sizeof *WS_FILES; i++) names[n++] = sd_strdup(WS_FILES[i]);
    char *pd = sd_path_join(ws, "plans");
    DIR *d = opendir(pd);
    struct dirent *e;
    int first = n;
    while (d && (e = readdir(d)) && n < 256)
        if (strlen(e->d_name) > 4 && !strcmp(e->d_name + strlen(e->d_name) - 4, ".tbl")) names[n++] = sd_asprintf("plans/%s", e->d_name);
    if (d) closedir(d);
    free(pd);
    qsort(names + first, (size_t)(n - first), sizeof *names, cmp_str);
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        mf_status st;
        if (mf_status_of(ws, names[i], &st, err) == SD_OK && st.state != MF_MISSING) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "file", names[i]);
            cJSON_AddStringToObject(o, "state", mf_state_name(st.state));
            if (st.stage[0]) cJSON_AddStringToObject(o, "stage", st.stage);
            if (st.state == MF_STALE) cJSON_AddStringToObject(o, "why", st.why), cJSON_AddStringToObject(o, "rerun", st.rerun);
            cJSON_AddItemToArray(a, o);
        }
        free(names[i]);
    }
    return a;
}

int cmd_info(int argc, char **argv) {
    const char *ws = NULL;
    int json = 0;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder"},
        {"json", FL_BOOL, &json, "print one JSON object (keys of stages not run yet are null)"},
        {0},
    };
    int rc = fl_parse("info --ws DIR [--json]", "Summary of the stages present in a workspace.", specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    sd_err err = {0};
    char *p;
    struct stat st;
    if (stat(ws, &st) != 0 || !S_ISDIR(st.st_mode)) {
        sd_fail(&err, SD_ERR_IO, "%s: no such workspace folder (create one with 'serendip world' or 'serendip ingest')", ws);
        return cmd_fail(&err);
    }

    ds_dataset ds;
    int have_ds = 0;
    p = sd_path_join(ws, DS_FILE);
    if (sd_file_exists(p)) {
        if (ds_load(&ds, p, &err)) { free(p); return cmd_fail(&err); }
        have_ds = 1;
    }
    free(p);

    ds_split split = {0};
    int have_split = 0;
    sd_err split_err = {0}; /* a stale or broken split.json is reported, not fatal */
    p = sd_path_join(ws, DS_SPLIT_FILE);
    if (sd_file_exists(p)) have_split = ds_split_load(&split, p, &split_err) == SD_OK;
    free(p);

    tx_taxonomy tax;
    int have_tax = 0;
    p = sd_path_join(ws, TX_FILE);
    if (sd_file_exists(p)) {
        if (tx_load(&tax, p, &err)) { free(p); rc = cmd_fail(&err); goto out_ds; }
        have_tax = 1;
    }
    free(p);

    jr_journeys j;
    int have_j = 0;
    p = sd_path_join(ws, JR_FILE);
    if (sd_file_exists(p)) {
        if (jr_load(&j, p, &err)) { free(p); rc = cmd_fail(&err); goto out_tax; }
        have_j = 1;
    }
    free(p);

    tbl_table t;
    int have_t = 0;
    p = sd_path_join(ws, TBL_FILE);
    if (sd_file_exists(p)) {
        if (tbl_open(&t, p, &err)) { free(p); rc = cmd_fail(&err); goto out_j; }
        have_t = 1;
    }
    free(p);

    char *corpus_dir = sd_path_join(ws, CP_DIR), *corpus_stats = sd_path_join(corpus_dir, CP_STATS);
    cJSON *cp = NULL;
    char *text;
    if (sd_file_exists(corpus_stats) && sd_read_file(corpus_stats, &text, NULL, &err) == SD_OK) {
        cp = cJSON_Parse(text);
        free(text);
    }
    free(corpus_dir);
    free(corpus_stats);

    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "users", num_or_null(have_ds, have_ds ? (double)ds.n_users : 0));
    cJSON_AddItemToObject(o, "items", num_or_null(have_ds, have_ds ? (double)ds.n_items : 0));
    cJSON_AddItemToObject(o, "interactions", num_or_null(have_ds, have_ds ? (double)ds.n_events : 0));
    cJSON_AddItemToObject(o, "unknown_items", num_or_null(have_ds, have_ds ? (double)ds.n_unknown_items : 0));
    if (have_split) cJSON_AddStringToObject(o, "split_kind", split.user_train_end ? "per-user" : "global");
    else cJSON_AddNullToObject(o, "split_kind");
    cJSON_AddItemToObject(o, "train_end", num_or_null(have_split, have_split ? (double)split.train_end : 0));
    cJSON_AddItemToObject(o, "valid_end", num_or_null(have_split, have_split ? (double)split.valid_end : 0));
    cJSON_AddItemToObject(o, "clusters_top", num_or_null(have_tax, have_tax ? tax.n_top : 0));
    cJSON_AddItemToObject(o, "clusters", num_or_null(have_tax, have_tax ? tax.n_clusters : 0));
    cJSON_AddItemToObject(o, "k", num_or_null(have_j, have_j ? j.k : 0));
    cJSON_AddItemToObject(o, "transitions", num_or_null(have_j, have_j ? (double)j.n_transitions : 0));
    cJSON_AddItemToObject(o, "novel_transitions", num_or_null(have_j, have_j ? (double)j.n_novel : 0));
    cJSON_AddItemToObject(o, "feedback_tuples", num_or_null(have_j, have_j ? (double)j.n_feedback : 0));
    cJSON_AddItemToObject(o, "corpus", cp ? cp : cJSON_CreateNull());
    if (have_t) {
        cJSON *tb = cJSON_AddObjectToObject(o, "table");
        cJSON_AddNumberToObject(tb, "contexts", (double)t.p.n_contexts);
        cJSON_AddNumberToObject(tb, "top", t.p.top);
        cJSON_AddNumberToObject(tb, "n", t.p.n_samples);
        cJSON_AddNumberToObject(tb, "contexts_planned", (double)t.s.contexts_planned);
        cJSON_AddNumberToObject(tb, "format_compliance",
                                t.s.samples ? (double)t.s.samples_compliant / (double)t.s.samples : 0.0);
        cJSON_AddNumberToObject(tb, "fallback_share",
                                t.s.contexts_planned ? (double)t.s.contexts_fallback / (double)t.s.contexts_planned : 0.0);
    } else {
        cJSON_AddNullToObject(o, "table");
    }

    cJSON *files = files_json(ws, &err);
    cJSON_AddItemToObject(o, "files", files);
    if (json) {
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        free(s);
    } else {
        printf("workspace %s\n", ws);
        if (have_ds)
            printf("  dataset     %lld users, %lld items (%lld unknown), %lld interactions\n", (long long)ds.n_users,
                   (long long)ds.n_items, (long long)ds.n_unknown_items, (long long)ds.n_events);
        else printf("  dataset     (none: run 'serendip world' or 'serendip ingest')\n");
        char desc[256];
        if (have_split) ds_split_describe(&split, desc, sizeof desc);
        if (have_split) printf("  split       %s\n", desc);
        else if (split_err.code) printf("  split       (unusable: %s)\n", split_err.msg);
        else printf("  split       (none)\n");
        if (have_tax) printf("  taxonomy    %d top clusters, %d clusters\n", tax.n_top, tax.n_clusters);
        else printf("  taxonomy    (none)\n");
        if (have_j)
            printf("  journeys    K = %d, %lld transitions (%lld novel), %lld feedback tuples\n", j.k,
                   (long long)j.n_transitions, (long long)j.n_novel, (long long)j.n_feedback);
        else printf("  journeys    (none)\n");
        if (cp) {
            cJSON *nv = cJSON_GetObjectItem(cp, "novelty_examples"), *al = cJSON_GetObjectItem(cp, "align_train");
            printf("  corpus      %.0f novelty examples, %.0f alignment examples\n", cJSON_IsNumber(nv) ? nv->valuedouble : 0,
                   cJSON_IsNumber(al) ? al->valuedouble : 0);
        } else printf("  corpus      (none)\n");
        if (have_t)
            printf("  table       %lld contexts, top %d, n = %d, compliance %.1f%%, fallbacks %lld\n",
                   (long long)t.p.n_contexts, t.p.top, t.p.n_samples,
                   t.s.samples ? 100.0 * (double)t.s.samples_compliant / (double)t.s.samples : 0.0,
                   (long long)t.s.contexts_fallback);
        else printf("  table       (none)\n");
        printf("files (fresh: its inputs are as when it was built; unrecorded: its stage keeps no record):\n");
        const cJSON *f;
        cJSON_ArrayForEach(f, files) {
            const char *state = cJSON_GetObjectItem(f, "state")->valuestring, *stage = cJSON_GetStringValue(cJSON_GetObjectItem(f, "stage"));
            printf("  %-22s %s", cJSON_GetObjectItem(f, "file")->valuestring, state);
            if (stage) printf(" (from `serendip %s`)", stage);
            if (!strcmp(state, "stale"))
                printf(": %s; rerun `serendip %s`", cJSON_GetObjectItem(f, "why")->valuestring, cJSON_GetObjectItem(f, "rerun")->valuestring);
            printf("\n");
        }
    }
    cJSON_Delete(o);
    rc = 0;
    if (have_t) tbl_close(&t);
out_j:
    if (have_j) jr_free(&j);
out_tax:
    if (have_tax) tx_free(&tax);
out_ds:
    ds_split_free(&split);
    if (have_ds) ds_free(&ds);
    return rc;
}
