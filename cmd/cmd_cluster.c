/* cmd_cluster.c - `serendip cluster`: the summary of the cluster stage (its flags and checks: stage.h) (tx_run builds the
 * two-level interest-cluster taxonomy from the train window: taxonomy.bin and clusters.tsv). */
#include "cmd.h"
#include "serendip/taxonomy.h"

#include <stdlib.h>

int cmd_cluster(int argc, char **argv) {
    sd_cluster_args a;
    sd_cluster_args_init(&a);
    const char *ws = NULL;
    int show = 8, json = 0;
    fl_spec opts[SD_STAGE_OPTS];
    const fl_spec extra[] = {
        {"show", FL_INT, &show, "example clusters to print"},
        {"json", FL_BOOL, &json, "print the summary as JSON"},
        {0},
    };
    int rc = cmd_stage_parse(&sd_stage_cluster, &ws, "workspace folder (needs dataset.bin and split.json)", opts, sd_cluster_opts(&a, opts), extra, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    sd_err err = {0};
    if (sd_cluster_check(&a, "--", &err)) return cmd_stage_fail(argv[0], &err);
    const tx_config cfg = a.cfg;

    tx_taxonomy t;
    tx_stats st;
    ds_dataset d;
    double secs;
    if (tx_run(ws, &cfg, &t, &st, &secs, &err)) return cmd_fail(&err);
    char *dpath = sd_path_join(ws, DS_FILE), *tpath = sd_path_join(ws, TX_FILE), *cpath = sd_path_join(ws, TX_TSV);
    if (ds_load(&d, dpath, &err)) { /* for the example titles */
        tx_free(&t);
        free(dpath), free(tpath), free(cpath);
        return cmd_fail(&err);
    }
    if (json) {
        printf("{\"clusters_top\": %d, \"clusters\": %d, \"items\": %lld, \"items_clustered\": %lld, \"train_events\": %lld, "
               "\"dim\": %d, \"inertia\": %.6g, \"taxonomy_hash\": \"%016llx\", \"seconds\": %.3f}\n",
               t.n_top, t.n_clusters, (long long)t.n_items, (long long)st.n_embedded, (long long)st.n_train_events, st.dim,
               st.inertia, (unsigned long long)tx_hash(&t), secs);
    } else {
        printf("cluster: %d level-1 and %d level-2 clusters over %lld of %lld items (%lld train events)\n", t.n_top, t.n_clusters,
               (long long)st.n_embedded, (long long)t.n_items, (long long)st.n_train_events);
        printf("  embeddings    dim %d, %.2f s\n  k-means       inertia %.4g, %.2f s\n  descriptions  %.2f s\n", st.dim,
               st.secs_embed, st.inertia, st.secs_kmeans, st.secs_describe);
        printf("  wrote         %s, %s (%.2f s in all)\n\nlevel-1 clusters:\n", tpath, cpath, secs);
        for (int32_t p = 0; p < t.n_top; p++) {
            int64_t items = 0;
            int kids = 0;
            for (int32_t c = 0; c < t.n_clusters; c++)
                if (t.parent[c] == p) items += t.size[c], kids++;
            printf("  %3d  %-40s %3d clusters, %5lld items\n", p, t.top_desc[p], kids, (long long)items);
        }
        if (show > t.n_clusters) show = t.n_clusters;
        printf("\nexample level-2 clusters:\n");
        for (int i = 0; i < show; i++) {
            int32_t c = (int32_t)((int64_t)i * t.n_clusters / (show > 0 ? show : 1)); /* spread over parents */
            printf("  %3d  %-40s (%d items) e.g. ", c, t.desc[c], t.size[c]);
            int shown = 0;
            for (int64_t e = t.member_off[c]; e < t.member_off[c + 1] && shown < 3; e++) {
                int32_t it = t.members[e];
                if (!d.item_meta[it]) continue;
                printf("%s%s", shown++ ? "; " : "", ds_item_title(&d, it));
            }
            printf("\n");
        }
    }
    tx_free(&t);
    ds_free(&d);
    free(dpath), free(tpath), free(cpath);
    return 0;
}
