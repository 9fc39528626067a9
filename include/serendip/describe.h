/* describe.h - short, unique keyword descriptions of groups of items from their metadata.
 *
 * An item's terms are its tags/genres ('|'-separated) and the words of its title, lower-cased,
 * with stop words, numbers and years removed. A group's keywords are its terms ranked by
 * distinctiveness: coverage p (share of the group's items carrying the term) times the log-lift
 * log(p / q), q the term's share over the whole catalogue; only over-represented terms qualify.
 * A description is 2-4 keywords joined by ", ", at most 40 bytes, and unique among the groups:
 * when two groups would get the same words, the later one (groups are served largest first) takes
 * more or other keywords until it differs. Level-2 clusters are described under their parent
 * (dc_describe_under with DC_CHILD): "crime, drama (film-noir)". */
#ifndef SERENDIP_DESCRIBE_H
#define SERENDIP_DESCRIBE_H

#include "serendip/base.h"

typedef struct {
    int min_words;  /* default 2 */
    int max_words;  /* default 4 */
    int max_chars;  /* bytes, default 40 */
    int min_count;  /* a keyword must occur in at least min(min_count, group size) items; default 2 */
    int sort_words; /* 1: keywords in byte order rather than by distinctiveness; default 0 */
} dc_config;

#define DC_DEFAULT ((dc_config){.min_words = 2, .max_words = 4, .max_chars = 40, .min_count = 2, .sort_words = 0})
/* Level-2 descriptions (src/cluster/taxonomy.c): exactly two own keywords in byte order, then the
 * parent's label: "crime, drama (film-noir)". Why (measured on ml-latest-small free generation,
 * docs/formats-taxonomy.md): the novelty model generates descriptions token by token; a fixed
 * length leaves it no stop-or-continue choice, one order no reordered near-miss, and the parent
 * last (determined by the own words, which are unique on their own) no early commitment to a
 * parent that the own words then contradict (parent first: 95.1% compliance; last: 96.8%). */
#define DC_CHILD ((dc_config){.min_words = 2, .max_words = 2, .max_chars = 40, .min_count = 2, .sort_words = 1})
#define DC_SEP ", "
#define DC_PARENT_OPEN " (" /* a level-2 description ends with its parent's label in parentheses */
#define DC_PARENT_CLOSE ")"
#define DC_OWN_MIN_CHARS 16 /* own keywords keep at least this many bytes after a long parent label */

/* Describes n_groups groups: group g holds items[group_off[g] .. group_off[g+1]) (indices into
 * titles/tags, which have n_items entries; NULL entries mean no metadata). Writes desc (n_groups)
 * heap strings, each non-empty, valid UTF-8, free of '\t' and '\n', unique; caller frees each. */
int dc_describe(int64_t n_items, const char *const *titles, const char *const *tags, int32_t n_groups, const int64_t *group_off,
                const int32_t *items, const dc_config *cfg, char **desc, sd_err *err);

/* Hierarchical descriptions: as dc_describe, but group g's description is "<own keywords> (<parent[g]>)"
 * when parent[g] is non-NULL: the own keywords are the group's (never the parent label itself),
 * min_words..max_words of them within max_chars minus the label's bytes (at least
 * DC_OWN_MIN_CHARS), and they are unique on their own among all groups, so the label is an
 * annotation the keywords determine. parent may be NULL (= dc_describe); a label must pass
 * dc_parent_label_ok, else SD_ERR_USAGE naming the group. */
int dc_describe_under(int64_t n_items, const char *const *titles, const char *const *tags, int32_t n_groups,
                      const int64_t *group_off, const int32_t *items, const char *const *parent, const dc_config *cfg,
                      char **desc, sd_err *err);

/* 1 when w can be a parent label: 1..63 bytes of UTF-8 without tab, line break, parenthesis or
 * DC_SEP. */
int dc_parent_label_ok(const char *w);

/* The label each level-1 description gives its children (word[p], heap, caller frees; NULL when
 * no keyword of top_desc[p] is a valid label). Parents are visited in order (largest first):
 * each takes its first keyword that no earlier parent took, so that the label names the parent
 * ("drama, war" after "drama, romance" gives "war"); when every keyword is taken, its first
 * valid one. */
void dc_parent_words(char *const *top_desc, int32_t n_top, char **word);

/* Splits a title into its keyword words (the same rules as dc_describe): writes at most max_words
 * NUL-terminated words into words[i] (each a buffer of 64 bytes); returns the count. */
int dc_title_words(const char *title, char (*words)[64], int max_words);

/* 1 when s is valid UTF-8 (no overlong forms, no surrogates). */
int dc_utf8_valid(const char *s, size_t len);

#endif
