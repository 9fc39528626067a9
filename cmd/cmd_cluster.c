/* cmd_cluster.c - `serendip cluster`: flags and the summary of the cluster stage (tx_run builds the
 * two-level interest-cluster taxonomy from the train window: taxonomy.bin and clusters.tsv). */
#include "cmd.h"
#include "serendip/taxonomy.h"

#include <stdlib.h>

int cmd_cluster(int argc, char **argv) {
    tx_config cfg = TX_DEFAULT;
    const char *ws = NULL;
    int64_t seed = (int64_t)cfg.seed;
    int show = 8, json = 0;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder (needs dataset.bin and split.json)"},
        {"top", FL_INT, &cfg.n_top, "level-1 clusters K1"},
        {"clusters", FL_INT, &cfg.n_clusters, "level-2 clusters M (capped at the number of embedded items)"},
        {"dim", FL_INT, &cfg.dim, "item embedding dimension"},
        {"window", FL_INT, &cfg.window, "co-occurrence window in positions of a user's history (0 = whole history)"},
        {"iters", FL_INT, &cfg.iters, "k-means iterations"},
        {"seed", FL_I64, &seed, "random seed (same seed, same thread count: same taxonomy)"},
        {"show", FL_INT, &show, "example clusters to print"},
        {"json", FL_BOOL, &json, "print the summary as JSON"},
        {0},
    };
    int rc = fl_parse("cluster --ws DIR [flags]",
                      "Learns item embeddings from train-window co-occurrence (PPMI + truncated SVD), groups items\n"
                      "into M level-2 clusters by k-means and those into K1 level-1 clusters, and describes each\n"
                      "cluster with a few unique keywords. Writes DIR/taxonomy.bin and DIR/clusters.tsv\n"
                      "(see docs/formats-taxonomy.md).",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    if (cfg.n_clusters < 1) return cmd_usage_error(argv[0], "--clusters must be at least 1 (got %d)", cfg.n_clusters);
    if (cfg.n_top < 1 || cfg.n_top > cfg.n_clusters)
        return cmd_usage_error(argv[0], "--top must be in 1..--clusters (got %d, clusters %d)", cfg.n_top, cfg.n_clusters);
    if (cfg.dim < 1 || cfg.dim > 1024) return cmd_usage_error(argv[0], "--dim must be in 1..1024 (got %d)", cfg.dim);
    if (cfg.iters < 1) return cmd_usage_error(argv[0], "--iters must be at least 1 (got %d)", cfg.iters);
    if (cfg.window < 0) return cmd_usage_error(argv[0], "--window must be >= 0 (got %d)", cfg.window);
    cfg.seed = (uint64_t)seed;

    sd_err err = {0};
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
