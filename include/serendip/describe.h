/* describe.h - short, unique keyword descriptions of groups of items from their metadata.
 *
 * An item's terms are its tags/genres ('|'-separated) and the words of its title, lower-cased,
 * with stop words, numbers and years removed. A group's keywords are its terms ranked by
 * distinctiveness: coverage p (share of the group's items carrying the term) times the log-lift
 * log(p / q), q the term's share over the whole catalogue; only over-represented terms qualify. A description is 2-4 keywords joined by ", ", at most 40
 * bytes, and unique among the groups: when two groups would get the same words, the later one
 * (groups are served largest first) takes more or other keywords until it differs. */
#ifndef SERENDIP_DESCRIBE_H
#define SERENDIP_DESCRIBE_H

#include "serendip/base.h"

typedef struct {
    int min_words;  /* default 2 */
    int max_words;  /* default 4 */
    int max_chars;  /* bytes, default 40 */
    int min_count;  /* a keyword must occur in at least min(min_count, group size) items; default 2 */
} dc_config;

#define DC_DEFAULT ((dc_config){.min_words = 2, .max_words = 4, .max_chars = 40, .min_count = 2})
#define DC_SEP ", "

/* Describes n_groups groups: group g holds items[group_off[g] .. group_off[g+1]) (indices into
 * titles/tags, which have n_items entries; NULL entries mean no metadata). Writes desc (n_groups)
 * heap strings, each non-empty, valid UTF-8, free of '\t' and '\n', unique; caller frees each. */
int dc_describe(int64_t n_items, const char *const *titles, const char *const *tags, int32_t n_groups, const int64_t *group_off,
                const int32_t *items, const dc_config *cfg, char **desc, sd_err *err);

/* Splits a title into its keyword words (the same rules as dc_describe): writes at most max_words
 * NUL-terminated words into words[i] (each a buffer of 64 bytes); returns the count. */
int dc_title_words(const char *title, char (*words)[64], int max_words);

/* 1 when s is valid UTF-8 (no overlong forms, no surrogates). */
int dc_utf8_valid(const char *s, size_t len);

#endif
