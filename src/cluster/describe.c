/* describe.c - keyword descriptions of item groups (clusters) from titles and tags.
 *
 * Hand-written: the tokenizer, stop-word list and coverage x log-lift ranking are a page of code and no
 * Debian C library offers keyword extraction of this kind. The rules (see describe.h) keep the
 * descriptions short and regular, because they are what the language models learn to generate. */
#include "serendip/describe.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- words */

/* English plus the articles and particles of the languages common in film titles; roman numerals
 * (sequel markers) and generic title words that describe nothing. */
static const char *STOP[] = {
    "the", "and", "for", "with", "from", "into", "onto", "about", "over", "under", "after", "before", "than", "then", "that",
    "this", "these", "those", "what", "when", "where", "who", "whom", "why", "how", "are", "was", "were", "been", "being", "have",
    "has", "had", "not", "but", "all", "any", "can", "will", "just", "you", "your", "our", "his", "her", "its", "their", "they",
    "them", "she", "him", "out", "off", "one", "two", "three", "too", "very", "more", "most", "some", "such", "only", "own",
    "same", "other", "each", "few", "nor", "yet", "via", "per", "upon", "ever", "never", "there", "here", "les", "des", "del",
    "della", "dei", "der", "die", "das", "den", "dem", "und", "ein", "eine", "una", "uno", "los", "las", "por", "con", "que",
    "une", "sur", "dans", "pour", "avec", "aux", "qui", "il", "la", "le", "el", "lo", "di", "da", "du", "de", "et", "ii", "iii",
    "iv", "vi", "vii", "viii", "ix", "xi", "xii", "part", "vol", "volume", "chapter", "episode", "movie", "film", "aka",
    "a.k.a", "presents", "edition", "version", "cut", "collection", "special", "new", NULL};

static int is_stop(const char *w) {
    for (const char **s = STOP; *s; s++)
        if (!strcmp(*s, w)) return 1;
    return 0;
}

int dc_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s, *e = p + len;
    while (p < e) {
        unsigned c = *p;
        int n;
        uint32_t cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) n = 1, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0) n = 2, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0) n = 3, cp = c & 0x07;
        else return 0;
        if (e - p <= n) return 0;
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        p += n + 1;
    }
    return 1;
}

/* Accepts a lower-cased word as a keyword: 3..63 bytes, no digit, not a stop word, valid UTF-8. */
static int keep_word(const char *w, size_t len) {
    if (len < 3 || len >= 64) return 0;
    for (size_t i = 0; i < len; i++)
        if (isdigit((unsigned char)w[i])) return 0;
    return !is_stop(w) && dc_utf8_valid(w, len);
}

int dc_title_words(const char *title, char (*words)[64], int max_words) {
    int n = 0;
    char buf[256];
    size_t len = 0;
    for (const unsigned char *p = (const unsigned char *)title;; p++) {
        unsigned c = *p;
        if (c && (isalnum(c) || c >= 0x80)) {
            if (len < sizeof buf - 1) buf[len++] = (char)tolower(c);
            continue;
        }
        buf[len] = 0;
        if (keep_word(buf, len) && n < max_words) {
            int dup = 0;
            for (int i = 0; i < n; i++) dup |= !strcmp(words[i], buf);
            if (!dup) memcpy(words[n++], buf, len + 1);
        }
        len = 0;
        if (!c) break;
    }
    return n;
}

/* Normalises one tag in place: lower case, separators (',' tab newline) to spaces, trimmed,
 * spaces collapsed. Returns its length, or 0 when it is not usable as a keyword. */
static size_t norm_tag(char *t) {
    size_t w = 0;
    int space = 0;
    for (size_t r = 0; t[r]; r++) {
        unsigned char c = (unsigned char)t[r];
        if (c == ',' || c == '\t' || c == '\n' || c == '\r' || c == ' ' || c < 0x20) {
            space = w > 0;
            continue;
        }
        if (space) t[w++] = ' ', space = 0;
        t[w++] = (char)tolower(c);
    }
    t[w] = 0;
    if (w < 2 || w >= 40 || !strcmp(t, "(no genres listed)") || !dc_utf8_valid(t, w)) return 0;
    int alpha = 0;
    for (size_t i = 0; i < w; i++) alpha |= isalpha((unsigned char)t[i]) || (unsigned char)t[i] >= 0x80;
    return alpha ? w : 0;
}

/* ---------------------------------------------------------------- vocabulary */

typedef struct {
    char **term;   /* (n) */
    int32_t *slot; /* (cap) term id or -1 */
    int64_t n, cap_terms, cap;
} vocab;

static void vocab_init(vocab *v) {
    v->cap = 1 << 12;
    v->slot = sd_malloc(sizeof(int32_t) * (size_t)v->cap);
    for (int64_t i = 0; i < v->cap; i++) v->slot[i] = -1;
    v->n = 0;
    v->cap_terms = 256;
    v->term = sd_malloc(sizeof(char *) * (size_t)v->cap_terms);
}

static void vocab_free(vocab *v) {
    for (int64_t i = 0; i < v->n; i++) free(v->term[i]);
    free(v->term);
    free(v->slot);
}

static int32_t vocab_id(vocab *v, const char *w) {
    if (2 * (v->n + 1) > v->cap) { /* grow and rehash */
        int64_t cap = v->cap * 2;
        int32_t *slot = sd_malloc(sizeof(int32_t) * (size_t)cap);
        for (int64_t i = 0; i < cap; i++) slot[i] = -1;
        for (int64_t t = 0; t < v->n; t++) {
            uint64_t h = sd_hash64(v->term[t], strlen(v->term[t]), SD_HASH_SEED) & (uint64_t)(cap - 1);
            while (slot[h] >= 0) h = (h + 1) & (uint64_t)(cap - 1);
            slot[h] = (int32_t)t;
        }
        free(v->slot);
        v->slot = slot, v->cap = cap;
    }
    uint64_t h = sd_hash64(w, strlen(w), SD_HASH_SEED) & (uint64_t)(v->cap - 1);
    while (v->slot[h] >= 0) {
        if (!strcmp(v->term[v->slot[h]], w)) return v->slot[h];
        h = (h + 1) & (uint64_t)(v->cap - 1);
    }
    if (v->n == v->cap_terms) v->cap_terms *= 2, v->term = sd_realloc(v->term, sizeof(char *) * (size_t)v->cap_terms);
    v->term[v->n] = sd_strdup(w);
    v->slot[h] = (int32_t)v->n;
    return (int32_t)v->n++;
}

/* ---------------------------------------------------------------- ranking */

/* A title word is a keyword candidate only when at least this share of the group's items carry it
 * (tags need min_count items only): on MovieLens, words shared by 2 of 60 titles ("again",
 * "fire") describe nothing, and at 5% a cluster of 60 thrillers with 3 Harry Potter films became
 * "action, potter"; a cluster made of a series ("smokey, bandit") still passes. */
#define TITLE_MIN_COVER 0.10

typedef struct {
    int32_t term;
    int32_t count;
    double score;
} cand;

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->term > y->term) - (x->term < y->term);
}

/* Builds "w0, w1, ..." from the chosen term ids into out (cap bytes); returns 0 when too long. */
static int join_terms(const vocab *v, const int32_t *ids, int n, char *out, size_t cap, int max_chars) {
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t wl = strlen(v->term[ids[i]]), need = wl + (i ? strlen(DC_SEP) : 0);
        if (len + need > (size_t)max_chars || len + need >= cap) return 0;
        if (i) memcpy(out + len, DC_SEP, strlen(DC_SEP)), len += strlen(DC_SEP);
        memcpy(out + len, v->term[ids[i]], wl), len += wl;
        out[len] = 0;
    }
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Canonical form of a description: its keywords sorted, so that "war, drama" and "drama, war"
 * count as the same description. Caller frees. */
static char *canon(const char *s) {
    char *copy = sd_strdup(s), *words[64];
    int n = 0;
    for (char *p = copy; p && n < 64;) {
        words[n++] = p;
        char *sep = strstr(p, DC_SEP);
        if (sep) *sep = 0, p = sep + strlen(DC_SEP);
        else p = NULL;
    }
    qsort(words, (size_t)n, sizeof(char *), cmp_str);
    size_t len = 0;
    char *out = sd_malloc(strlen(s) + 2);
    for (int i = 0; i < n; i++) {
        if (i) out[len++] = '\x1f';
        memcpy(out + len, words[i], strlen(words[i])), len += strlen(words[i]);
    }
    out[len] = 0;
    free(copy);
    return out;
}

/* 1 when s (as a set of keywords) is among the descriptions already chosen (keys of done[]). */
static int taken(char **keys, const int32_t *done, int n_done, const char *s) {
    char *k = canon(s);
    int hit = 0;
    for (int i = 0; i < n_done && !hit; i++) hit = !strcmp(keys[done[i]], k);
    free(k);
    return hit;
}

/* The final description: the keywords s (in byte order with sort), then " (parent)" when parent
 * is non-NULL. Caller frees. */
static char *finish(const char *s, int sort, const char *parent) {
    char *own = sd_strdup(s);
    if (sort) { /* canon() sorts the keywords and joins them with \x1f */
        char *k = canon(s);
        size_t len = 0;
        for (char *p = k; *p; p++) {
            if (*p == '\x1f') memcpy(own + len, DC_SEP, strlen(DC_SEP)), len += strlen(DC_SEP);
            else own[len++] = *p;
        }
        own[len] = 0;
        free(k);
    }
    if (!parent) return own;
    char *out = sd_asprintf("%s" DC_PARENT_OPEN "%s" DC_PARENT_CLOSE, own, parent);
    free(own);
    return out;
}

/* Chooses a unique description for one group from its ranked candidates c (m of them; the first q
 * qualified, the rest fallbacks that are less distinctive); with a parent label, the keywords get
 * what the label leaves of the byte budget. Uniqueness is of the keyword set alone. */
static char *choose(const vocab *v, const cand *c, int m, int q, const dc_config *cfg, const char *parent, char **keys,
                    const int32_t *done, int n_done) {
    char buf[256];
    int32_t ids[16];
    int maxw = cfg->max_words < 16 ? cfg->max_words : 16;
    int minw = cfg->min_words < maxw ? cfg->min_words : maxw;
    int max_chars = cfg->max_chars;
    if (parent) {
        max_chars -= (int)(strlen(parent) + strlen(DC_PARENT_OPEN DC_PARENT_CLOSE));
        if (max_chars < DC_OWN_MIN_CHARS) max_chars = DC_OWN_MIN_CHARS;
    }
    int m1 = q >= minw ? q : m;
    /* 1. the top words, growing from min_words to max_words (a word that would overflow the byte
     *    limit is skipped in favour of the next one) */
    for (int want = minw; want <= maxw; want++) {
        int n = 0;
        for (int i = 0; i < m1 && n < want; i++) {
            ids[n] = c[i].term;
            if (join_terms(v, ids, n + 1, buf, sizeof buf, max_chars)) n++;
        }
        if (n == 0) break;
        join_terms(v, ids, n, buf, sizeof buf, max_chars);
        if (n >= (m1 < minw ? m1 : minw) && !taken(keys, done, n_done, buf)) return finish(buf, cfg->sort_words, parent);
        if (n < want) break; /* no more words fit */
    }
    /* 2. the top (keep) words and one later word, keep = max_words - 1 down to 1 */
    for (int keep = maxw - 1; keep >= 1; keep--) {
        if (keep >= m) continue;
        for (int j = keep; j < m; j++) {
            for (int i = 0; i < keep; i++) ids[i] = c[i].term;
            ids[keep] = c[j].term;
            if (join_terms(v, ids, keep + 1, buf, sizeof buf, max_chars) && !taken(keys, done, n_done, buf)) return finish(buf, cfg->sort_words, parent);
        }
    }
    /* 3. any pair of candidates, best first */
    for (int i = 1; i < m; i++)
        for (int j = i + 1; j < m; j++) {
            ids[0] = c[i].term, ids[1] = c[j].term;
            if (join_terms(v, ids, 2, buf, sizeof buf, max_chars) && !taken(keys, done, n_done, buf)) return finish(buf, cfg->sort_words, parent);
        }
    /* 4. last resort (groups with identical metadata): the best word plus a variant number */
    const char *base = m > 0 ? v->term[c[0].term] : "misc";
    if (m == 0 && !taken(keys, done, n_done, base)) return finish(base, cfg->sort_words, parent);
    for (int k = 2;; k++) {
        snprintf(buf, sizeof buf, "%.28s" DC_SEP "variant %d", base, k);
        if (!taken(keys, done, n_done, buf)) return finish(buf, cfg->sort_words, parent);
    }
}

int dc_describe(int64_t n_items, const char *const *titles, const char *const *tags, int32_t n_groups, const int64_t *group_off,
                const int32_t *items, const dc_config *cfg, char **desc, sd_err *err) {
    return dc_describe_under(n_items, titles, tags, n_groups, group_off, items, NULL, cfg, desc, err);
}

int dc_describe_under(int64_t n_items, const char *const *titles, const char *const *tags, int32_t n_groups,
                      const int64_t *group_off, const int32_t *items, const char *const *parent, const dc_config *cfg,
                      char **desc, sd_err *err) {
    if (n_groups < 0) return sd_fail(err, SD_ERR_USAGE, "describe: %d groups", n_groups);
    if (cfg->min_words < 1 || cfg->max_words < cfg->min_words || cfg->max_chars < 8)
        return sd_fail(err, SD_ERR_USAGE, "describe: bad word limits %d..%d / %d bytes", cfg->min_words, cfg->max_words, cfg->max_chars);
    for (int32_t g = 0; parent && g < n_groups; g++)
        if (parent[g] && !dc_parent_label_ok(parent[g]))
            return sd_fail(err, SD_ERR_USAGE, "describe: parent label \"%.64s\" of group %d is empty, >= 64 bytes, not UTF-8, "
                           "or holds a tab, line break, parenthesis or \"%s\"", parent[g], g, DC_SEP);
    for (int64_t e = 0; e < group_off[n_groups]; e++)
        if (items[e] < 0 || items[e] >= n_items) return sd_fail(err, SD_ERR_USAGE, "describe: item %d out of range", items[e]);
    /* item -> term ids (CSR), deduplicated per item */
    vocab v;
    vocab_init(&v);
    sd_vec tl, istag; /* item term ids; per term 1 when it occurs as a tag somewhere */
    sd_vec_init(&tl, sizeof(int32_t));
    sd_vec_init(&istag, 1);
    int64_t *it_off = sd_malloc(sizeof(int64_t) * (size_t)(n_items + 1));
    it_off[0] = 0;
    char words[32][64];
    for (int64_t i = 0; i < n_items; i++) {
        int64_t start = (int64_t)tl.len;
        if (tags && tags[i] && *tags[i]) {
            char *t = sd_strdup(tags[i]), *save = NULL;
            for (char *tok = strtok_r(t, "|", &save); tok; tok = strtok_r(NULL, "|", &save)) {
                if (!norm_tag(tok)) continue;
                int32_t id = vocab_id(&v, tok);
                if (id >= (int32_t)istag.len) {
                    while ((int32_t)istag.len <= id) sd_vec_push(&istag);
                }
                ((uint8_t *)istag.data)[id] = 1;
                *(int32_t *)sd_vec_push(&tl) = id;
            }
            free(t);
        }
        int nw = titles && titles[i] ? dc_title_words(titles[i], words, 32) : 0;
        for (int w = 0; w < nw; w++) *(int32_t *)sd_vec_push(&tl) = vocab_id(&v, words[w]);
        /* dedupe this item's ids (tiny lists) */
        int32_t *ids = (int32_t *)tl.data + start;
        int64_t n = (int64_t)tl.len - start, w = 0;
        for (int64_t a = 0; a < n; a++) {
            int dup = 0;
            for (int64_t b = 0; b < w; b++) dup |= ids[b] == ids[a];
            if (!dup) ids[w++] = ids[a];
        }
        tl.len = (size_t)(start + w);
        it_off[i + 1] = (int64_t)tl.len;
    }
    const int32_t *it_terms = tl.data;
    int32_t *df = sd_calloc((size_t)(v.n ? v.n : 1), sizeof(int32_t));
    int64_t n_docs = 0;
    for (int64_t i = 0; i < n_items; i++) {
        n_docs += it_off[i + 1] > it_off[i];
        for (int64_t e = it_off[i]; e < it_off[i + 1]; e++) df[it_terms[e]]++;
    }
    /* groups, largest first */
    int32_t *order = sd_malloc(sizeof(int32_t) * (size_t)(n_groups ? n_groups : 1));
    for (int32_t g = 0; g < n_groups; g++) order[g] = g;
    for (int32_t a = 1; a < n_groups; a++) { /* insertion sort by size desc, index asc */
        int32_t x = order[a], b = a;
        int64_t sx = group_off[x + 1] - group_off[x];
        while (b > 0 && group_off[order[b - 1] + 1] - group_off[order[b - 1]] < sx) order[b] = order[b - 1], b--;
        order[b] = x;
    }
    int32_t *cf = sd_calloc((size_t)(v.n ? v.n : 1), sizeof(int32_t));
    int32_t *touched = sd_malloc(sizeof(int32_t) * (size_t)(v.n ? v.n : 1));
    cand *c = sd_malloc(sizeof(cand) * (size_t)(v.n ? v.n : 1));
    char **keys = sd_calloc((size_t)(n_groups ? n_groups : 1), sizeof(char *)); /* canonical descriptions */
    for (int32_t gi = 0; gi < n_groups; gi++) {
        int32_t g = order[gi];
        int64_t size = group_off[g + 1] - group_off[g], nt = 0;
        const char *par = parent ? parent[g] : NULL;
        for (int64_t e = group_off[g]; e < group_off[g + 1]; e++) {
            int32_t it = items[e];
            for (int64_t k = it_off[it]; k < it_off[it + 1]; k++) {
                int32_t t = it_terms[k];
                if (!cf[t]++) touched[nt++] = t;
            }
        }
        int min_count = size < cfg->min_count ? (int)size : cfg->min_count;
        /* title words are noisier than tags: they must also cover TITLE_MIN_COVER of the group */
        int64_t word_min = (int64_t)ceil(TITLE_MIN_COVER * (double)size);
        if (word_min < min_count) word_min = min_count;
        /* qualified candidates (enough support, over-represented) by score, then the others by
         * support as fallbacks for disambiguation */
        int q = 0, m = 0;
        for (int pass = 0; pass < 2; pass++) {
            int start = m;
            for (int64_t k = 0; k < nt; k++) {
                int32_t t = touched[k];
                int tag = t < (int32_t)istag.len && ((uint8_t *)istag.data)[t];
                /* coverage x log-lift: the term's contribution to the KL divergence of the group's
                 * term distribution from the catalogue's; over-represented terms score > 0 */
                double cov = (double)cf[t] / (double)size, glob = (double)(df[t] + 1) / (double)(n_docs + 1);
                double score = cov * log(cov / glob);
                int ok = cf[t] >= (tag ? min_count : word_min) && score > 0;
                if (ok != (pass == 0) || (par && !strcmp(v.term[t], par))) continue; /* own words only */
                c[m++] = (cand){t, cf[t], pass == 0 ? score : (double)cf[t] + 1e-3 * score};
            }
            qsort(c + start, (size_t)(m - start), sizeof(cand), cmp_cand);
            if (pass == 0) {
                if (m > 16) m = 16;
                q = m;
            }
        }
        if (m > 24) m = 24;
        for (int64_t k = 0; k < nt; k++) cf[touched[k]] = 0;
        desc[g] = choose(&v, c, m, q, cfg, par, keys, order, gi);
        size_t own_len = strlen(desc[g]) - (par ? strlen(par) + strlen(DC_PARENT_OPEN DC_PARENT_CLOSE) : 0);
        char *own = sd_strdup(desc[g]);
        own[own_len] = 0;
        keys[g] = canon(own);
        free(own);
    }
    for (int32_t g = 0; g < n_groups; g++) free(keys[g]);
    free(keys);
    free(c), free(touched), free(cf), free(order), free(df), free(it_off);
    sd_vec_free(&tl);
    sd_vec_free(&istag);
    vocab_free(&v);
    return SD_OK;
}

int dc_parent_label_ok(const char *w) {
    size_t n = strlen(w);
    return n > 0 && n < 64 && dc_utf8_valid(w, n) && !strpbrk(w, "\t\n\r()") && !strstr(w, DC_SEP);
}

/* 1 when desc has at least k + 1 keywords. */
static int has_keyword(const char *desc, int k) {
    const char *p = desc;
    for (int i = 0; i < k && p; i++) {
        p = strstr(p, DC_SEP);
        if (p) p += strlen(DC_SEP);
    }
    return p != NULL;
}

/* Keyword k (0-based, DC_SEP-separated) of desc as a heap string, or NULL when desc has fewer
 * keywords or the keyword is not a valid parent label. */
static char *keyword(const char *desc, int k) {
    if (!has_keyword(desc, k)) return NULL;
    const char *p = desc;
    for (int i = 0; i < k; i++) p = strstr(p, DC_SEP) + strlen(DC_SEP);
    const char *end = strstr(p, DC_SEP);
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char *w = sd_malloc(n + 1);
    memcpy(w, p, n);
    w[n] = 0;
    if (!dc_parent_label_ok(w)) {
        free(w);
        return NULL;
    }
    return w;
}

void dc_parent_words(char *const *top_desc, int32_t n_top, char **word) {
    for (int32_t p = 0; p < n_top; p++) {
        word[p] = NULL;
        char *first = NULL; /* the first usable keyword, used when every one is taken */
        for (int k = 0; has_keyword(top_desc[p], k) && !word[p]; k++) {
            char *w = keyword(top_desc[p], k);
            if (!w) continue;
            int used = 0;
            for (int32_t q = 0; q < p && !used; q++) used = word[q] && !strcmp(word[q], w);
            if (!used) word[p] = w;
            else if (!first) first = w;
            else free(w);
        }
        if (!word[p]) word[p] = first;
        else free(first);
    }
}
