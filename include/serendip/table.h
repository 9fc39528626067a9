/* table.h - the explore table (file `explore.tbl`; format in docs/formats-table.md).
 *
 * For every context index i in [0, M^K) (jr_context_index) a fixed-size slot holds up to `top`
 * novel clusters, best first, with their alignment score and novelty log-probability. The file is
 * mmapped; a lookup is one multiplication. A shard file holds only the slots of its range
 * [begin, end); tbl_merge joins shards into a file byte-identical to an unsharded run: the header
 * holds only deterministic fields (parameters, hashes, counters that add up), no wall-clock time
 * (the planner reports seconds in its own log/plan.json). */
#ifndef SERENDIP_TABLE_H
#define SERENDIP_TABLE_H

#include "serendip/base.h"

#define TBL_FILE "explore.tbl"
#define TBL_MAGIC "SDTBL\0\0" /* 8 bytes with the NULs */
#define TBL_VERSION 2 /* 2: the table kind in the header */
#define TBL_HEADER_SIZE 256
#define TBL_TOP_MAX 64
#define TBL_FLAG_FALLBACK 1u    /* the slot's entries come from the fallback, not the models */
#define TBL_FLAG_NO_FEEDBACK 2u /* llm_feedback tables: no candidate had observed feedback (model alone) */
#define TBL_FLAGS_KNOWN (TBL_FLAG_FALLBACK | TBL_FLAG_NO_FEEDBACK)

/* What produced a table: evaluation names its arm kind after it ("llm", "single", ...), never
 * after the file name. */
typedef enum {
    TBL_KIND_LLM = 1,          /* best-of-n: novelty model proposes, alignment model scores */
    TBL_KIND_SINGLE = 2,       /* the single model fine-tuned on feedback (the rejected baseline) */
    TBL_KIND_LLM_FEEDBACK = 3, /* best-of-n with the alignment score shrunk toward observed feedback */
    TBL_KIND_RL = 4,           /* novelty model fine-tuned by RL against the alignment reward */
    TBL_KIND_LLM_PAIRWISE = 5, /* best-of-n scored by a pairwise-trained alignment model */
    TBL_KIND_MAX = 5
} tbl_kind;
/* "llm", "single", "llm_feedback", "rl", "llm_pairwise"; "unknown" outside the range. */
const char *tbl_kind_name(int32_t kind);

typedef struct {
    int32_t cluster;         /* level-2 cluster */
    float align_score;       /* expected score of the alignment model, 0..9 */
    float novelty_logprob;   /* log-probability of the description under the novelty model (nats) */
} tbl_entry;                 /* 12 bytes, on disk as is (little-endian) */

typedef struct {
    int32_t k;               /* context length */
    int32_t n_clusters;      /* M */
    int64_t n_contexts;      /* M^K */
    int32_t top;             /* entries per slot (1..TBL_TOP_MAX) */
    int32_t n_samples;       /* n of best-of-n */
    float temperature;
    uint64_t seed;           /* sampling seed of the run */
    uint64_t tax_hash;       /* tx_hash of the taxonomy */
    uint64_t novelty_hash;   /* sd_hash_file of novelty.gguf */
    uint64_t align_hash;     /* sd_hash_file of align.gguf */
    int64_t begin, end;      /* slots covered: [begin, end); a full table has 0, n_contexts */
    int32_t kind;            /* tbl_kind (1..TBL_KIND_MAX) */
    float top_p;             /* nucleus-sampling mass of the run (1 = off; 0 in tables written without it) */
} tbl_params;

/* Run statistics; every field is a count so that shards merge by addition. */
typedef struct {
    int64_t contexts_planned;  /* valid contexts (distinct clusters) in the range */
    int64_t samples;           /* candidates sampled from the novelty model */
    int64_t samples_compliant; /* samples that are exactly one valid cluster description */
    int64_t samples_novel;     /* compliant, not in the context, not a duplicate */
    int64_t contexts_fallback; /* contexts with no valid candidate (slot filled by the fallback) */
    int64_t fallback_kind;     /* planner-defined code of the fallback policy (same in all shards) */
} tbl_stats;

/* ---------------------------------------------------------------- writer */

typedef struct tbl_builder tbl_builder;
/* A builder for the slots [p->begin, p->end); all slots start empty. NULL + err on bad params. */
tbl_builder *tbl_builder_new(const tbl_params *p, sd_err *err);
/* Sets slot ctx_index (in the builder's range) to entries e[0..n), n <= top; flags TBL_FLAG_*. */
int tbl_builder_set(tbl_builder *b, int64_t ctx_index, const tbl_entry *e, int n, uint32_t flags, sd_err *err);
/* Adds s to the builder's statistics. */
void tbl_builder_add_stats(tbl_builder *b, const tbl_stats *s);
int tbl_write(const tbl_builder *b, const char *path, sd_err *err); /* atomic */
void tbl_builder_free(tbl_builder *b);

/* ---------------------------------------------------------------- reader */

typedef struct {
    tbl_params p;
    tbl_stats s;
    size_t slot_size;        /* bytes per slot: 8 + 12 * top */
    const uint8_t *slots;    /* (end - begin) slots */
    sd_map map;              /* the mapping (tbl_open) or {0} (tbl_open_mem: borrowed) */
} tbl_table;

/* Opens and validates (magic, version, sizes, params, slot counts); refuses foreign, truncated
 * and wrong-version files with a message naming the file and what is wrong. */
int tbl_open(tbl_table *t, const char *path, sd_err *err);
/* Same over a caller's buffer (borrowed, must outlive t; 4-byte aligned). */
int tbl_open_mem(tbl_table *t, const void *data, size_t size, sd_err *err);
void tbl_close(tbl_table *t);
/* Entries of context ctx_index (*e points into the map, best first); returns their count (0 for an
 * empty slot), or -1 when ctx_index is outside the file's range. flags may be NULL. */
int tbl_lookup(const tbl_table *t, int64_t ctx_index, const tbl_entry **e, uint32_t *flags);

/* Joins shard files (same params except the range; ranges disjoint and together [0, M^K)) into
 * one full table at out (atomic). */
int tbl_merge(const char *const *shards, int n, const char *out, sd_err *err);

/* Builders across processes (plan --mpi, plan_mpi.c). The bytes tbl_write would write for b
 * (header + slots), in a fresh malloc'd *buf of *len bytes (caller frees). */
int tbl_builder_image(const tbl_builder *b, void **buf, size_t *len);
/* Copies the slots of part s (a table of the same run whose range lies inside b's) into b and adds
 * its statistics; SD_ERR_DATA when s is from another run or outside b's range. */
int tbl_builder_absorb(tbl_builder *b, const tbl_table *s, sd_err *err);

#endif
