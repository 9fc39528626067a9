/* taxonomy.h - the two-level interest-cluster hierarchy with language descriptions
 * (file `taxonomy.bin`, human-readable twin `clusters.tsv`).
 *
 * Level 1 ("top") clusters group level-2 clusters; level-2 clusters are what the language models
 * talk about: each has a short keyword description, unique across the taxonomy. Items that never
 * occur in the train window cannot be embedded and get cluster -1. */
#ifndef SERENDIP_TAXONOMY_H
#define SERENDIP_TAXONOMY_H

#include "serendip/base.h"

#define TX_FILE "taxonomy.bin"
#define TX_TSV "clusters.tsv"

typedef struct {
    int32_t n_top;          /* level-1 clusters */
    int32_t n_clusters;     /* level-2 clusters (M) */
    int64_t n_items;
    int32_t *item_cluster;  /* (n_items) level-2 cluster or -1 */
    int32_t *parent;        /* (n_clusters) level-1 cluster of each level-2 cluster */
    int32_t *size;          /* (n_clusters) items in each level-2 cluster */
    char **desc;            /* (n_clusters) unique keyword description, e.g. "space, alien, sci-fi" */
    char **top_desc;        /* (n_top) description of each level-1 cluster */
    int32_t *members;       /* (n_items_clustered) items grouped by cluster, by descending popularity */
    int64_t *member_off;    /* (n_clusters + 1) cluster c's items are members[member_off[c] .. [c+1]) */
} tx_taxonomy;

int tx_save(const tx_taxonomy *t, const char *path, sd_err *err); /* atomic */
int tx_load(tx_taxonomy *t, const char *path, sd_err *err);
void tx_free(tx_taxonomy *t);
/* Hash of the taxonomy's content (assignments and descriptions): tables record which taxonomy
 * built them. */
uint64_t tx_hash(const tx_taxonomy *t);
/* Level-2 cluster whose description is exactly s, or -1. */
int32_t tx_find_desc(const tx_taxonomy *t, const char *s);

/* ---------------------------------------------------------------- building (src/cluster/taxonomy.c)
 * Appended by the cluster module; the declarations above are the contract others code against. */
#include "serendip/dataset.h"

typedef struct {
    int n_top;       /* K1 level-1 clusters (default 12) */
    int n_clusters;  /* M level-2 clusters (default 100); capped at the number of embedded items */
    int dim;         /* embedding dimension (default 64) */
    int window;      /* co-occurrence window in positions, 0 = whole user (default 50) */
    int iters;       /* k-means iterations (default 25) */
    uint64_t seed;
} tx_config;

#define TX_DEFAULT ((tx_config){.n_top = 12, .n_clusters = 100, .dim = 64, .window = 50, .iters = 25, .seed = 1})

typedef struct {
    int64_t n_train_events; /* events of the train window used */
    int64_t n_embedded;     /* items with an embedding (the others get cluster -1) */
    int dim;                /* embedding dimension used */
    double inertia;         /* level-2 k-means cost */
    double secs_embed, secs_kmeans, secs_describe;
} tx_stats;

/* Builds the taxonomy from the train window of d (events with ds_split_of == DS_TRAIN): item
 * embeddings from co-occurrence, level-2 k-means over items, level-1 k-means over the level-2
 * centroids, keyword descriptions. Ids are ordered: level-1 by descending size, level-2 grouped by
 * parent and by descending size within it. out is freed with tx_free; stats may be NULL. */
int tx_build(const ds_dataset *d, const ds_split *s, const tx_config *cfg, tx_taxonomy *out, tx_stats *stats, sd_err *err);

/* Writes clusters.tsv (atomic): a header line, then one line per level-2 cluster with the columns
 * id, parent, size, description, examples (up to n_examples most popular titles joined by " | "),
 * parent_description. */
int tx_write_tsv(const tx_taxonomy *t, const ds_dataset *d, const char *path, int n_examples, sd_err *err);

/* The whole cluster stage on workspace ws (src/cluster/run.c): loads dataset.bin and split.json
 * (either missing: SD_ERR_STATE naming the stage to run), builds the taxonomy with cfg, writes
 * taxonomy.bin and clusters.tsv (both atomic). out receives the taxonomy when non-NULL (tx_free),
 * stats when non-NULL (secs_total: the whole stage). */
int tx_run(const char *ws, const tx_config *cfg, tx_taxonomy *out, tx_stats *stats, double *secs_total, sd_err *err);

#endif
