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

#endif
