/* world.c - the embedded synthetic world: a seeded generator of interaction logs over a hidden
 * two-level topic hierarchy, the ground-truth file world_truth.bin, and the user simulator that the
 * evaluation stage queries (world_like_prob / world_response). See world.h for the model and
 * docs/world.md for the file layout.
 *
 * Everything here is hand-written because no library generates recommender logs with a hidden
 * affinity structure: the point of the world is that its ground truth is known. Vocabularies are
 * pseudo-words built from syllables (so clustering must recover topics from co-occurrence, not from
 * English it might "know"), plus a few common English filler words as noise. */
#include "serendip/world.h"
#include "serendip/manifest.h"
#include "serendip/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- model constants */

#define WORLD_SELF_BONUS 1.0f   /* logit bonus for a subtopic the user is into: p ~ 0.75 for interests */
#define WORLD_NOISE_SD 0.4f     /* sd of the fixed personal taste eps(u, x) in logits */
#define WORLD_N_LOVE 4          /* strongly liked subtopics per subtopic in the affinity graph */
#define WORLD_N_HATE 4          /* strongly disliked subtopics per subtopic */
#define WORLD_A_LOVE 3.0f       /* mean affinity of a loved edge (logits) */
#define WORLD_A_HATE (-3.0f)    /* mean affinity of a disliked edge */
#define WORLD_A_SIBLING 0.4f    /* mean affinity between subtopics of the same topic */
#define WORLD_A_OTHER (-0.6f)   /* mean affinity to an unrelated subtopic: novelty is a gamble */
#define WORLD_EDGE_GAIN 0.5     /* weight of the strongest loved / hated edge (see graph_term) */
#define WORLD_DECAY_DAYS 150.0  /* interest weights decay as exp(-days / this) */
#define WORLD_DROP_W 0.08f      /* interests below this weight are forgotten */
#define WORLD_EXPLORE_AFF 0.6   /* weight of the affinity in the exploration choice (vs popularity) */
#define WORLD_TOPIC_WORDS 5     /* vocabulary per topic */
#define WORLD_SUB_WORDS 6       /* vocabulary per subtopic */
#define WORLD_COMMUNITY 6       /* subtopics per taste community (across topics, see build_structure) */
#define WORLD_LOVE_IN_COMMUNITY 0.5 /* probability that a loved edge stays within the community */
/* Default word-sharing strength: the probability that a subtopic's theme word is its taste
 * community's word rather than its own. 0.8 leaves a fifth of the interests with names of their
 * own (as real taxonomies have isolated niches) while most interests share a word with those they
 * are liked together with (docs/world.md has the measured sharing). */
#define WORLD_WORD_SHARING 0.8f

static const char *const common_words[] = {
    "the", "of", "night", "day", "last", "return", "story", "man", "city", "world", "secret", "love",
    "dark", "new", "old", "road", "house", "time", "lost", "great", "little", "red", "blue", "king",
    "girl", "boy", "river", "song", "war", "home",
};
#define N_COMMON ((int)(sizeof common_words / sizeof common_words[0]))

void world_params_default(world_params *p) {
    memset(p, 0, sizeof *p);
    p->seed = 42;
    p->n_users = 5000;
    p->n_items = 3000;
    p->n_topics = 12;
    p->n_subtopics = 8;
    p->days = 730;
    p->t_start = 1672531200; /* 2023-01-01 00:00:00 UTC */
    p->explore_prob = 0.15f;
    p->sessions_mean = 26.0f;
    p->word_sharing = WORLD_WORD_SHARING;
}

/* The paper preset: the papers' taxonomy has ~761 level-2 clusters (578,360 contexts for K = 2);
 * 40 x 19 = 760 subtopics. Sizes measured on 2 shared cores (seed 42): 100,000 users give 7.0M
 * events, generated in 16 s; `cluster --clusters 760 --top 40` takes 54 s and recovers the
 * subtopics at NMI 0.989, purity 0.960; journeys give 12,967 feedback tuples backed by >= 3 users
 * (50,000 users: NMI 0.985, purity 0.948, 6,604 tuples). Items: ~26 per subtopic on average. */
#define WORLD_PAPER_TOPICS 40
#define WORLD_PAPER_SUBTOPICS 19
#define WORLD_PAPER_USERS 100000
#define WORLD_PAPER_ITEMS 20000

int world_params_preset(world_params *p, const char *name, sd_err *err) {
    if (!name || !strcmp(name, "default")) {
        world_params_default(p);
        return SD_OK;
    }
    if (!strcmp(name, "paper")) {
        world_params_default(p);
        p->n_topics = WORLD_PAPER_TOPICS;
        p->n_subtopics = WORLD_PAPER_SUBTOPICS;
        p->n_users = WORLD_PAPER_USERS;
        p->n_items = WORLD_PAPER_ITEMS;
        return SD_OK;
    }
    return sd_fail(err, SD_ERR_USAGE, "world: --preset \"%s\" is unknown (use default or paper)", name);
}

int world_params_check(const world_params *p, sd_err *err) {
    if (p->n_topics < 1 || p->n_topics > 1000) return sd_fail(err, SD_ERR_USAGE, "world: --topics %d is not in 1..1000", p->n_topics);
    if (p->n_subtopics < 1 || p->n_subtopics > 1000)
        return sd_fail(err, SD_ERR_USAGE, "world: --subtopics %d is not in 1..1000", p->n_subtopics);
    int64_t n_sub = (int64_t)p->n_topics * p->n_subtopics;
    if (n_sub < 2 || n_sub > 2000)
        return sd_fail(err, SD_ERR_USAGE, "world: topics x subtopics = %lld is not in 2..2000", (long long)n_sub);
    if (p->n_users < 1 || p->n_users > 100000000) return sd_fail(err, SD_ERR_USAGE, "world: --users %lld is not in 1..1e8", (long long)p->n_users);
    if (p->n_items < n_sub || p->n_items > 100000000)
        return sd_fail(err, SD_ERR_USAGE, "world: --items %lld must be at least topics x subtopics (%lld) and at most 1e8",
                       (long long)p->n_items, (long long)n_sub);
    if (p->days < 1 || p->days > 36500) return sd_fail(err, SD_ERR_USAGE, "world: --days %d is not in 1..36500", p->days);
    if (p->t_start < 0) return sd_fail(err, SD_ERR_USAGE, "world: start time %lld is negative", (long long)p->t_start);
    if (!(p->explore_prob >= 0 && p->explore_prob <= 1))
        return sd_fail(err, SD_ERR_USAGE, "world: --explore %g is not in [0,1]", (double)p->explore_prob);
    if (!(p->word_sharing >= 0 && p->word_sharing <= 1))
        return sd_fail(err, SD_ERR_USAGE, "world: --word-sharing %g is not in [0,1]", (double)p->word_sharing);
    if (!(p->sessions_mean >= 1 && p->sessions_mean <= 10000))
        return sd_fail(err, SD_ERR_USAGE, "world: --sessions %g is not in [1,10000]", (double)p->sessions_mean);
    return SD_OK;
}

/* ---------------------------------------------------------------- small helpers */

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Fixed personal taste eps(u, x) ~ N(0,1) of 0-based user u for subtopic x: a pure function of the
 * seed, so the truth file does not store an n_users x n_sub matrix. */
static double world_eps(uint64_t seed, int64_t u, int32_t x) {
    uint64_t st = seed ^ ((uint64_t)(u + 1) * 0xD6E8FEB86659FD93ULL) ^ ((uint64_t)(x + 1) * 0xC2B2AE3D27D4EB4FULL);
    double u1 = ((splitmix(&st) >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
    double u2 = (splitmix(&st) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

/* Index drawn with probability proportional to w[0..n). */
static int pick_weighted(sd_rng *r, const float *w, int n) {
    double tot = 0;
    for (int i = 0; i < n; i++) tot += w[i];
    double x = sd_rng_uniform(r) * tot;
    for (int i = 0; i < n; i++) {
        x -= w[i];
        if (x < 0) return i;
    }
    return n - 1;
}

/* Growable byte buffer for building the truth file. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf;
static void buf_put(buf *b, const void *d, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->p = sd_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

/* ---------------------------------------------------------------- vocabulary */

static const char *const syl_on[] = {"b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t",
                                      "v", "z", "br", "tr", "st", "ch", "sh", "gr", "pl", "dr"};
static const char *const syl_nu[] = {"a", "e", "i", "o", "u", "ai", "ou", "ea", "io"};
static const char *const syl_co[] = {"", "", "", "n", "r", "s", "l", "x", "m"};
#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* A fresh pseudo-word not in words[0..n). Caller frees. */
static char *make_word(sd_rng *r, char **words, int n) {
    char w[32];
    for (;;) {
        int ns = 2 + (sd_rng_uniform(r) < 0.35);
        w[0] = 0;
        for (int i = 0; i < ns; i++) {
            strcat(w, syl_on[sd_rng_below(r, N_OF(syl_on))]);
            strcat(w, syl_nu[sd_rng_below(r, N_OF(syl_nu))]);
        }
        strcat(w, syl_co[sd_rng_below(r, N_OF(syl_co))]);
        int dup = 0;
        for (int i = 0; i < n && !dup; i++) dup = !strcmp(words[i], w);
        for (int i = 0; i < N_COMMON && !dup; i++) dup = !strcmp(common_words[i], w);
        if (!dup) return sd_strdup(w);
    }
}

/* ---------------------------------------------------------------- like probability */

/* The hidden affinity of interest state (subs, w; n of them) for subtopic x:
 *     g = sum_{s != x} w_s A[s][x] / sum_s w_s + WORLD_EDGE_GAIN * (max_s A[s][x]^+ + min_s A[s][x]^-)
 * the weighted mean says "what fans of your interests think of x", the extreme edges say that one
 * interest that loves (or hates) x is enough to sway the user. *in is set when x is an interest. */
static double graph_term(const world_truth *t, const int32_t *subs, const float *w, int n, int32_t x, int *in) {
    double W = 0, g = 0, hi = 0, lo = 0;
    *in = 0;
    for (int i = 0; i < n; i++) {
        W += w[i];
        if (subs[i] == x) {
            *in = 1;
            continue;
        }
        double a = t->affinity[(int64_t)subs[i] * t->n_sub + x];
        g += w[i] * a;
        if (a > hi) hi = a;
        if (a < lo) lo = a;
    }
    if (W > 0) g /= W;
    return g + WORLD_EDGE_GAIN * (hi + lo);
}

static double like_prob_state(const world_truth *t, int64_t u, const int32_t *subs, const float *w, int n, int32_t x) {
    int in;
    double g = graph_term(t, subs, w, n, x, &in);
    double z = (in ? t->self_bonus : 0) + g + t->sub_quality[x] + t->noise_sd * world_eps(t->seed, u, x);
    return sigmoid(z);
}

/* Rating and watch fraction for an engagement that is positive (pos = 1) or not: a positive has
 * rating >= 4; the watch fraction agrees with it (>= 0.7 iff positive) 85% of the time. */
static void sample_signal(sd_rng *r, int pos, float *rating, float *watch) {
    int agree = sd_rng_uniform(r) < 0.85;
    if (pos) {
        *rating = 4.0f + 0.5f * (float)sd_rng_below(r, 3);
        *watch = agree ? 0.7f + 0.3f * (float)sd_rng_uniform(r) : 0.3f + 0.4f * (float)sd_rng_uniform(r);
    } else {
        int k = (int)floor(fabs(sd_rng_normal(r)) * 2.2); /* half-star steps below 3.5 */
        if (k > 6) k = 6;
        *rating = 3.5f - 0.5f * (float)k;
        *watch = agree ? 0.7f * (float)sd_rng_uniform(r) : 0.7f + 0.3f * (float)sd_rng_uniform(r);
    }
    if (*watch > 1.0f) *watch = 1.0f;
}

/* ---------------------------------------------------------------- hidden structure */

/* Fills the structural part of the truth (everything except the users' final interests); words
 * come from build_words. */
static void build_structure(const world_params *p, char **words, world_truth *t) {
    sd_rng r;
    sd_rng_seed(&r, p->seed ^ 0x5354525543545552ULL); /* "STRUCTUR" */
    int32_t T = p->n_topics, S = p->n_subtopics, n = T * S;
    t->seed = p->seed;
    t->n_topics = T;
    t->n_sub = n;
    t->n_users = p->n_users;
    t->n_items = p->n_items;
    t->t_start = p->t_start;
    t->t_end = p->t_start + (int64_t)p->days * 86400;
    t->self_bonus = WORLD_SELF_BONUS;
    t->noise_sd = WORLD_NOISE_SD;
    t->sub_topic = sd_malloc(sizeof(int32_t) * n);
    t->sub_pop = sd_malloc(sizeof(float) * n);
    t->sub_quality = sd_malloc(sizeof(float) * n);
    t->affinity = sd_malloc(sizeof(float) * (size_t)n * n);

    double *tpop = sd_malloc(sizeof(double) * T), tot = 0;
    for (int k = 0; k < T; k++) tpop[k] = exp(0.5 * sd_rng_normal(&r));
    double *sp = sd_malloc(sizeof(double) * n);
    for (int s = 0; s < n; s++) {
        t->sub_topic[s] = s / S;
        sp[s] = tpop[s / S] * exp(0.8 * sd_rng_normal(&r));
        tot += sp[s];
        t->sub_quality[s] = (float)(0.3 * sd_rng_normal(&r));
    }
    for (int s = 0; s < n; s++) t->sub_pop[s] = (float)(sp[s] / tot);
    free(sp);
    free(tpop);

    /* taste communities: a seeded partition of the subtopics into groups of WORLD_COMMUNITY,
     * across topics (a short last group joins the one before); most loved edges stay inside */
    int32_t *perm = sd_malloc(sizeof(int32_t) * n), *coff, n_comm = n / WORLD_COMMUNITY > 0 ? n / WORLD_COMMUNITY : 1;
    for (int s = 0; s < n; s++) perm[s] = s;
    sd_rng rc;
    sd_rng_seed(&rc, p->seed ^ 0x434F4D4D554E4954ULL); /* "COMMUNIT" */
    sd_rng_shuffle_i32(&rc, perm, (size_t)n);
    coff = sd_malloc(sizeof(int32_t) * (n_comm + 1));
    for (int c = 0; c <= n_comm; c++) coff[c] = c < n_comm ? c * WORLD_COMMUNITY : n;
    t->sub_community = sd_malloc(sizeof(int32_t) * n);
    t->n_community = n_comm;
    for (int c = 0; c < n_comm; c++)
        for (int k = coff[c]; k < coff[c + 1]; k++) t->sub_community[perm[k]] = c;
    for (int s = 0; s < n; s++) {
        float *A = t->affinity + (int64_t)s * n;
        for (int x = 0; x < n; x++) {
            if (x == s) A[x] = 0;
            else if (x / S == s / S) A[x] = WORLD_A_SIBLING + 0.3f * (float)sd_rng_normal(&r);
            else A[x] = WORLD_A_OTHER + 0.4f * (float)sd_rng_normal(&r);
        }
        /* loved and disliked subtopics: mostly across topics, where the structure is least obvious;
         * a loved one mostly from s's community, a disliked one never */
        int want = WORLD_N_LOVE + WORLD_N_HATE, got = 0, tries = 0;
        if (want > n - 1) want = n - 1;
        int32_t chosen[WORLD_N_LOVE + WORLD_N_HATE], cs = t->sub_community[s];
        while (got < want && tries < 100000) {
            tries++;
            int32_t x;
            if (got < WORLD_N_LOVE && tries < 1000 && sd_rng_uniform(&r) < WORLD_LOVE_IN_COMMUNITY)
                x = perm[coff[cs] + (int32_t)sd_rng_below(&r, (uint32_t)(coff[cs + 1] - coff[cs]))];
            else x = (int32_t)sd_rng_below(&r, (uint32_t)n);
            if (x == s) continue;
            if (got >= WORLD_N_LOVE && t->sub_community[x] == cs && tries < 1000) continue;
            if (x / S == s / S && T > 1 && sd_rng_uniform(&r) < 0.75) continue;
            int dup = 0;
            for (int i = 0; i < got; i++) dup |= chosen[i] == x;
            if (dup) continue;
            chosen[got] = x;
            A[x] = (got < WORLD_N_LOVE ? WORLD_A_LOVE : WORLD_A_HATE) + 0.3f * (float)sd_rng_normal(&r);
            got++;
        }
    }

    free(perm);
    free(coff);

    /* names are the first keywords of each topic / subtopic vocabulary */
    t->topic_name = sd_malloc(sizeof(char *) * T);
    t->sub_name = sd_malloc(sizeof(char *) * n);
    for (int k = 0; k < T; k++) t->topic_name[k] = sd_strdup(words[k * WORLD_TOPIC_WORDS]);
    for (int s = 0; s < n; s++)
        t->sub_name[s] = sd_asprintf("%s/%s", words[(s / S) * WORLD_TOPIC_WORDS], words[T * WORLD_TOPIC_WORDS + s * WORLD_SUB_WORDS]);
}

/* The vocabulary: WORLD_TOPIC_WORDS words per topic, then WORLD_SUB_WORDS per subtopic, then one
 * own theme word per subtopic, then one word per community (at most n; word_of_theme), all
 * distinct, from their own random stream. Caller frees each word and the array. */
static char **build_words(const world_params *p, int *nw_out) {
    sd_rng r;
    sd_rng_seed(&r, p->seed ^ 0x564F434142554C41ULL); /* "VOCABULA" */
    int T = p->n_topics, n = T * p->n_subtopics;
    int nw = T * WORLD_TOPIC_WORDS + n * (WORLD_SUB_WORDS + 2);
    char **words = sd_malloc(sizeof(char *) * nw);
    for (int i = 0; i < nw; i++) words[i] = make_word(&r, words, i);
    *nw_out = nw;
    return words;
}

/* The theme word of subtopic s: its community's word when it shares (theme[s] = 1), else its own. */
static char *word_of_theme(char **words, const world_truth *t, const uint8_t *theme, int32_t s) {
    int base = t->n_topics * WORLD_TOPIC_WORDS + t->n_sub * WORLD_SUB_WORDS;
    return theme[s] ? words[base + t->n_sub + t->sub_community[s]] : words[base + s];
}

/* Semantic vocabulary: each subtopic's items carry a theme word besides its own words. With
 * probability p->word_sharing (from its own seeded stream) a subtopic's theme word is its taste
 * community's word, shared with the community members that share too; otherwise it is its own.
 * Communities are where most loved edges lie (build_structure), so a shared word means "liked
 * together", as "space opera" and "hard sci-fi" share a word; with strength 0 every theme word
 * is the subtopic's own. Sets theme[s] to 1 when s shares. */
static void build_themes(const world_params *p, const world_truth *t, uint8_t *theme) {
    sd_rng r;
    sd_rng_seed(&r, p->seed ^ 0x5448454D45534841ULL); /* "THEMESHA" */
    for (int32_t s = 0; s < t->n_sub; s++) theme[s] = sd_rng_uniform(&r) < p->word_sharing;
}

/* ---------------------------------------------------------------- items */

/* Subtopic, title and tags of every item; per-subtopic item lists (CSR) with cumulative Zipf
 * weights for sampling. */
typedef struct {
    int64_t *off;  /* (n_sub + 1) */
    int64_t *item; /* (n_items) 0-based items grouped by subtopic */
    double *cum;   /* (n_items) cumulative weight within the subtopic's slice */
} item_index;

static void build_items(const world_params *p, char **words, const uint8_t *theme, world_gen *g, item_index *ix) {
    world_truth *t = &g->truth;
    sd_rng r;
    sd_rng_seed(&r, p->seed ^ 0x4954454D53495445ULL); /* "ITEMSITE" */
    int32_t n = t->n_sub, T = t->n_topics;
    int64_t N = t->n_items;
    /* items per subtopic: a floor of `base` each, the rest in proportion to 0.5/n + popularity */
    int64_t base = N / n < 3 ? N / n : 3, rest = N - base * n;
    int64_t *cnt = sd_malloc(sizeof(int64_t) * n), given = 0;
    for (int s = 0; s < n; s++) {
        cnt[s] = base + (int64_t)floor((double)rest * (0.5 / n + t->sub_pop[s]) / 1.5);
        given += cnt[s];
    }
    while (given < N) cnt[sd_rng_below(&r, (uint32_t)n)]++, given++;
    t->item_sub = sd_malloc(sizeof(int32_t) * N);
    for (int s = 0, k = 0; s < n; s++)
        for (int64_t j = 0; j < cnt[s]; j++) t->item_sub[k++] = s;
    sd_rng_shuffle_i32(&r, t->item_sub, (size_t)N); /* raw ids carry no topic order */
    free(cnt);

    ix->off = sd_calloc((size_t)n + 1, sizeof(int64_t));
    ix->item = sd_malloc(sizeof(int64_t) * N);
    ix->cum = sd_malloc(sizeof(double) * N);
    for (int64_t i = 0; i < N; i++) ix->off[t->item_sub[i] + 1]++;
    for (int s = 0; s < n; s++) ix->off[s + 1] += ix->off[s];
    int64_t *fill = sd_malloc(sizeof(int64_t) * n);
    for (int s = 0; s < n; s++) fill[s] = ix->off[s];
    for (int64_t i = 0; i < N; i++) {
        int s = t->item_sub[i];
        int64_t rank = fill[s] - ix->off[s];
        ix->item[fill[s]] = i;
        ix->cum[fill[s]] = (rank ? ix->cum[fill[s] - 1] : 0) + pow((double)rank + 2.0, -0.9); /* Zipf-like */
        fill[s]++;
    }
    free(fill);

    g->title = sd_malloc(sizeof(char *) * N);
    g->tags = sd_malloc(sizeof(char *) * N);
    for (int64_t i = 0; i < N; i++) {
        int s = t->item_sub[i], k = s / p->n_subtopics;
        char **tw = words + k * WORLD_TOPIC_WORDS, **sw = words + T * WORLD_TOPIC_WORDS + s * WORLD_SUB_WORDS;
        const char *th = word_of_theme(words, t, theme, s);
        double x = sd_rng_uniform(&r);
        int nwords = x < 0.5 ? 2 : x < 0.85 ? 3 : 4;
        char title[256] = "";
        const char *used[4];
        for (int j = 0; j < nwords; j++) {
            const char *w;
            int again;
            do { /* no word twice in a title */
                double y = sd_rng_uniform(&r);
                w = y < 0.55 ? sw[sd_rng_below(&r, WORLD_SUB_WORDS)]
                    : y < 0.65 ? th
                    : y < 0.8 ? tw[sd_rng_below(&r, WORLD_TOPIC_WORDS)]
                              : common_words[sd_rng_below(&r, N_COMMON)];
                again = 0;
                for (int q = 0; q < j; q++) again |= used[q] == w;
            } while (again);
            used[j] = w;
            size_t L = strlen(title);
            snprintf(title + L, sizeof title - L, "%s%c%s", j ? " " : "", w[0] - 'a' + 'A', w + 1);
        }
        /* tags: the topic keyword, one or two subtopic keywords, the theme word, sometimes a stray
         * tag */
        char tags[256];
        int second = 1 + (int)sd_rng_below(&r, 2);
        if (sd_rng_uniform(&r) < 0.1) snprintf(tags, sizeof tags, "%s|%s|%s", tw[0], sw[second], th);
        else snprintf(tags, sizeof tags, "%s|%s|%s|%s", tw[0], sw[0], sw[second], th);
        if (sd_rng_uniform(&r) < 0.1) {
            int o = (int)sd_rng_below(&r, (uint32_t)n);
            size_t L = strlen(tags);
            snprintf(tags + L, sizeof tags - L, "|%s", words[T * WORLD_TOPIC_WORDS + o * WORLD_SUB_WORDS]);
        }
        g->title[i] = sd_strdup(title);
        g->tags[i] = sd_strdup(tags);
    }
}

/* An unseen item of subtopic s by Zipf weight, or -1 if the user has seen them all. */
static int64_t pick_item(sd_rng *r, const item_index *ix, int s, const uint8_t *seen) {
    int64_t a = ix->off[s], b = ix->off[s + 1];
    if (a == b) return -1;
    for (int tries = 0; tries < 16; tries++) {
        double x = sd_rng_uniform(r) * ix->cum[b - 1];
        int64_t lo = a, hi = b - 1;
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            if (ix->cum[mid] > x) hi = mid;
            else lo = mid + 1;
        }
        if (!seen[ix->item[lo]]) return ix->item[lo];
    }
    for (int64_t j = a; j < b; j++)
        if (!seen[ix->item[j]]) return ix->item[j];
    return -1;
}

/* ---------------------------------------------------------------- users */

typedef struct {
    int32_t *sub;
    float *w;
    int n, cap;
} interests;

static void int_add(interests *I, int32_t s, float w) {
    if (I->n == I->cap) {
        I->cap = I->cap ? I->cap * 2 : 8;
        I->sub = sd_realloc(I->sub, sizeof(int32_t) * I->cap);
        I->w = sd_realloc(I->w, sizeof(float) * I->cap);
    }
    I->sub[I->n] = s;
    I->w[I->n] = w;
    I->n++;
}

static int int_find(const interests *I, int32_t s) {
    for (int i = 0; i < I->n; i++)
        if (I->sub[i] == s) return i;
    return -1;
}

void world_interests_decay(int32_t *sub, float *w, int *n, double days) {
    float f = (float)exp(-days / WORLD_DECAY_DAYS);
    int best = 0;
    for (int i = 0; i < *n; i++) {
        w[i] *= f;
        if (w[i] > w[best]) best = i;
    }
    int k = 0;
    for (int i = 0; i < *n; i++)
        if (w[i] >= WORLD_DROP_W || i == best) sub[k] = sub[i], w[k] = w[i], k++;
    *n = k;
}

static void int_decay(interests *I, double days) { world_interests_decay(I->sub, I->w, &I->n, days); }

typedef struct {
    int64_t n, cap;
    world_gen *g;
} ev_log;

static void ev_push(ev_log *L, int64_t user, int64_t item, int64_t ts, float rating, float watch, int explore) {
    world_gen *g = L->g;
    if (L->n == L->cap) {
        L->cap = L->cap ? L->cap * 2 : 1 << 16;
        g->ev_user = sd_realloc(g->ev_user, sizeof(int64_t) * L->cap);
        g->ev_item = sd_realloc(g->ev_item, sizeof(int64_t) * L->cap);
        g->ev_ts = sd_realloc(g->ev_ts, sizeof(int64_t) * L->cap);
        g->ev_rating = sd_realloc(g->ev_rating, sizeof(float) * L->cap);
        g->ev_watch = sd_realloc(g->ev_watch, sizeof(float) * L->cap);
        g->ev_explore = sd_realloc(g->ev_explore, L->cap);
    }
    g->ev_user[L->n] = user;
    g->ev_item[L->n] = item;
    g->ev_ts[L->n] = ts;
    g->ev_rating[L->n] = rating;
    g->ev_watch[L->n] = watch;
    g->ev_explore[L->n] = (uint8_t)explore;
    L->n++;
}

/* Simulates 0-based user u's whole history into L; leaves the final interests in I. */
static void simulate_user(const world_params *p, const world_truth *t, const item_index *ix, int64_t u, interests *I,
                          uint8_t *seen, uint8_t *engaged, double *logit, ev_log *L) {
    sd_rng r;
    uint64_t st = p->seed ^ ((uint64_t)(u + 1) * 0x9E3779B97F4A7C15ULL);
    sd_rng_seed(&r, splitmix(&st));
    int32_t n = t->n_sub;
    memset(seen, 0, (size_t)t->n_items);
    memset(engaged, 0, (size_t)n);
    I->n = 0;

    double pe = p->explore_prob * exp(0.5 * sd_rng_normal(&r));
    if (pe > 0.6) pe = 0.6;
    int n_sess = (int)lround(p->sessions_mean * exp(0.6 * sd_rng_normal(&r)));
    if (n_sess < 3) n_sess = 3;
    if (n_sess > 400) n_sess = 400;
    double span = (double)(t->t_end - t->t_start);
    int64_t ts = t->t_start + (int64_t)(sd_rng_uniform(&r) * 0.6 * span);
    double mean_gap = (double)(t->t_end - ts) / (n_sess + 1);

    /* initial interests: a popular subtopic, then siblings, loved neighbours or popular ones */
    int k0 = 2 + (int)sd_rng_below(&r, 3);
    int_add(I, (int32_t)pick_weighted(&r, t->sub_pop, n), 0.6f + 0.8f * (float)sd_rng_uniform(&r));
    for (int tries = 0; I->n < k0 && tries < 100; tries++) {
        double y = sd_rng_uniform(&r);
        int32_t s;
        if (y < 0.5) {
            int S = n / t->n_topics, top = t->sub_topic[I->sub[0]];
            s = top * S + (int32_t)sd_rng_below(&r, (uint32_t)S);
        } else if (y < 0.8) {
            const float *A = t->affinity + (int64_t)I->sub[sd_rng_below(&r, (uint32_t)I->n)] * n;
            s = (int32_t)sd_rng_below(&r, (uint32_t)n);
            for (int j = 0; j < n && A[s] < 1.5f; j++) s = (s + 1) % n;
        } else s = (int32_t)pick_weighted(&r, t->sub_pop, n);
        if (int_find(I, s) < 0) int_add(I, s, 0.6f + 0.8f * (float)sd_rng_uniform(&r));
    }

    int64_t last = ts - 1;
    for (int sess = 0; sess < n_sess; sess++) {
        if (sess > 0) {
            double gap = -mean_gap * log(1.0 - sd_rng_uniform(&r));
            if (gap < 3600) gap = 3600;
            int_decay(I, gap / 86400.0);
            ts += (int64_t)gap;
        }
        if (ts <= last) ts = last + 60;
        if (ts >= t->t_end - 86400) break;
        int explore = sd_rng_uniform(&r) < pe;
        int32_t s = -1;
        if (explore) {
            /* a never-engaged subtopic by affinity + popularity + Gumbel noise */
            double best = -1e300;
            for (int32_t x = 0; x < n; x++) {
                if (engaged[x]) continue;
                int in;
                double gx = graph_term(t, I->sub, I->w, I->n, x, &in);
                double gum = -log(-log(sd_rng_uniform(&r) * (1 - 1e-12) + 1e-300));
                logit[x] = WORLD_EXPLORE_AFF * gx + log(t->sub_pop[x]) + gum;
                if (logit[x] > best) best = logit[x], s = x;
            }
            if (s < 0) explore = 0; /* every subtopic engaged already */
        }
        if (!explore) s = I->sub[pick_weighted(&r, I->w, I->n)];
        engaged[s] = 1;
        int n_ev = explore ? 1 + (int)sd_rng_below(&r, 3) : 1 + (int)sd_rng_below(&r, 5), n_pos = 0, n_done = 0;
        int64_t te = ts;
        for (int e = 0; e < n_ev; e++) {
            int64_t item = pick_item(&r, ix, s, seen);
            if (item < 0) break;
            if (te >= t->t_end) break;
            seen[item] = 1;
            double pl = like_prob_state(t, u, I->sub, I->w, I->n, s);
            int pos = sd_rng_uniform(&r) < pl;
            float rating, watch;
            sample_signal(&r, pos, &rating, &watch);
            ev_push(L, u + 1, item + 1, te, rating, watch, explore);
            last = te;
            n_pos += pos;
            n_done++;
            if (!explore) {
                int i = int_find(I, s);
                if (i >= 0) I->w[i] = pos ? (I->w[i] + 0.15f > 3.0f ? 3.0f : I->w[i] + 0.15f) : I->w[i] * 0.85f;
            }
            te += 300 + (int64_t)sd_rng_below(&r, 7200);
        }
        /* a liked exploration becomes an interest: the drift the explorer should anticipate */
        if (explore && n_pos > 0 && 2 * n_pos >= n_done) int_add(I, s, 0.5f + 0.3f * (float)n_pos);
    }
}

int world_generate(const world_params *p, world_gen *g, sd_err *err) {
    memset(g, 0, sizeof *g);
    int rc = world_params_check(p, err);
    if (rc) return rc;
    world_truth *t = &g->truth;
    int nw;
    char **words = build_words(p, &nw);
    build_structure(p, words, t);
    t->word_sharing = p->word_sharing;
    uint8_t *theme = sd_malloc((size_t)t->n_sub);
    build_themes(p, t, theme);
    item_index ix;
    build_items(p, words, theme, g, &ix);
    free(theme);
    for (int i = 0; i < nw; i++) free(words[i]);
    free(words);

    uint8_t *seen = sd_malloc((size_t)t->n_items), *engaged = sd_malloc((size_t)t->n_sub);
    double *logit = sd_malloc(sizeof(double) * t->n_sub);
    interests I = {0};
    ev_log L = {0, 0, g};
    t->user_off = sd_malloc(sizeof(int64_t) * (t->n_users + 1));
    sd_vec isub, iw;
    sd_vec_init(&isub, sizeof(int32_t));
    sd_vec_init(&iw, sizeof(float));
    sd_progress pr;
    sd_progress_start(&pr, "world", t->n_users);
    t->user_off[0] = 0;
    for (int64_t u = 0; u < t->n_users; u++) {
        simulate_user(p, t, &ix, u, &I, seen, engaged, logit, &L);
        for (int i = 0; i < I.n; i++) {
            *(int32_t *)sd_vec_push(&isub) = I.sub[i];
            *(float *)sd_vec_push(&iw) = I.w[i];
        }
        t->user_off[u + 1] = (int64_t)isub.len;
        if ((u & 255) == 0) sd_progress_update(&pr, u, NULL);
    }
    sd_progress_end(&pr);
    t->n_int = (int64_t)isub.len;
    t->int_sub = sd_malloc(sizeof(int32_t) * (t->n_int + 1));
    t->int_w = sd_malloc(sizeof(float) * (t->n_int + 1));
    if (t->n_int) {
        memcpy(t->int_sub, isub.data, sizeof(int32_t) * t->n_int);
        memcpy(t->int_w, iw.data, sizeof(float) * t->n_int);
    }
    sd_vec_free(&isub);
    sd_vec_free(&iw);
    g->n_events = L.n;
    free(I.sub);
    free(I.w);
    free(seen);
    free(engaged);
    free(logit);
    free(ix.off);
    free(ix.item);
    free(ix.cum);
    return SD_OK;
}

void world_truth_free(world_truth *t) {
    free(t->sub_topic);
    free(t->sub_pop);
    free(t->sub_quality);
    free(t->sub_community);
    free(t->affinity);
    free(t->item_sub);
    free(t->user_off);
    free(t->int_sub);
    free(t->int_w);
    if (t->sub_name)
        for (int s = 0; s < t->n_sub; s++) free(t->sub_name[s]);
    if (t->topic_name)
        for (int k = 0; k < t->n_topics; k++) free(t->topic_name[k]);
    free(t->sub_name);
    free(t->topic_name);
    memset(t, 0, sizeof *t);
}

void world_gen_free(world_gen *g) {
    if (g->title)
        for (int64_t i = 0; i < g->truth.n_items; i++) free(g->title[i]);
    if (g->tags)
        for (int64_t i = 0; i < g->truth.n_items; i++) free(g->tags[i]);
    free(g->title);
    free(g->tags);
    free(g->ev_user);
    free(g->ev_item);
    free(g->ev_ts);
    free(g->ev_rating);
    free(g->ev_watch);
    free(g->ev_explore);
    world_truth_free(&g->truth);
    memset(g, 0, sizeof *g);
}

/* ---------------------------------------------------------------- simulator */

int32_t world_item_subtopic(const world_truth *t, int64_t raw_item) {
    if (raw_item < 1 || raw_item > t->n_items) return -1;
    return t->item_sub[raw_item - 1];
}

double world_like_prob_given(const world_truth *t, int64_t raw_user, const int32_t *subs, const float *w, int n,
                             int32_t sub) {
    if (raw_user < 1 || raw_user > t->n_users || sub < 0 || sub >= t->n_sub) return -1;
    for (int i = 0; i < n; i++)
        if (subs[i] < 0 || subs[i] >= t->n_sub) return -1;
    return like_prob_state(t, raw_user - 1, subs, w, n, sub);
}

double world_like_prob(const world_truth *t, int64_t raw_user, int32_t sub) {
    if (raw_user < 1 || raw_user > t->n_users) return -1;
    int64_t a = t->user_off[raw_user - 1], b = t->user_off[raw_user];
    return world_like_prob_given(t, raw_user, t->int_sub + a, t->int_w + a, (int)(b - a), sub);
}

int world_response(const world_truth *t, int64_t raw_user, int32_t sub, sd_rng *rng, float *rating, float *watch) {
    double p = world_like_prob(t, raw_user, sub);
    if (p < 0) return -1;
    int pos = sd_rng_uniform(rng) < p;
    float r, w;
    sample_signal(rng, pos, &r, &w);
    if (rating) *rating = r;
    if (watch) *watch = w;
    return pos;
}

/* Added for the A/B experiment's day model (src/abtest/sim.c): the same hidden quantities for an
 * explicit interest state, so that the experiment's users evolve under the generator's model. */
double world_affinity(const world_truth *t, const int32_t *subs, const float *w, int n, int32_t x) {
    int in;
    return graph_term(t, subs, w, n, x, &in);
}

int world_response_given(const world_truth *t, int64_t raw_user, const int32_t *subs, const float *w, int n,
                         int32_t sub, sd_rng *rng, float *rating, float *watch) {
    double p = world_like_prob_given(t, raw_user, subs, w, n, sub);
    if (p < 0) return -1;
    int pos = sd_rng_uniform(rng) < p;
    float r, wa;
    sample_signal(rng, pos, &r, &wa);
    if (rating) *rating = r;
    if (watch) *watch = wa;
    return pos;
}

/* ---------------------------------------------------------------- truth file
 * Little-endian, a 128-byte header then the arrays in a fixed order (docs/world.md). */

#define WT_MAGIC "SDWORLD"
#define WT_HEADER 128

typedef struct {
    char magic[8];
    uint32_t version, header_size;
    uint64_t seed;
    int64_t n_users, n_items;
    int32_t n_topics, n_sub;
    int64_t t_start, t_end, n_int, strings_bytes;
    float self_bonus, noise_sd;
    uint64_t payload_hash;
    float word_sharing; /* 0 in files written before the semantic vocabulary: their words were unrelated */
    uint8_t pad[WT_HEADER - 100];
} wt_header;
_Static_assert(sizeof(wt_header) == WT_HEADER, "truth header must be 128 bytes");

int world_truth_save(const world_truth *t, const char *path, sd_err *err) {
    buf b = {0};
    wt_header h;
    memset(&h, 0, sizeof h);
    buf_put(&b, &h, sizeof h); /* placeholder, rewritten below */
    int64_t n = t->n_sub;
    buf_put(&b, t->sub_topic, sizeof(int32_t) * n);
    buf_put(&b, t->sub_pop, sizeof(float) * n);
    buf_put(&b, t->sub_quality, sizeof(float) * n);
    buf_put(&b, t->affinity, sizeof(float) * n * n);
    buf_put(&b, t->item_sub, sizeof(int32_t) * t->n_items);
    buf_put(&b, t->user_off, sizeof(int64_t) * (t->n_users + 1));
    buf_put(&b, t->int_sub, sizeof(int32_t) * t->n_int);
    buf_put(&b, t->int_w, sizeof(float) * t->n_int);
    size_t s0 = b.len;
    for (int k = 0; k < t->n_topics; k++) buf_put(&b, t->topic_name[k], strlen(t->topic_name[k]) + 1);
    for (int s = 0; s < t->n_sub; s++) buf_put(&b, t->sub_name[s], strlen(t->sub_name[s]) + 1);
    memcpy(h.magic, WT_MAGIC, 8);
    h.version = WORLD_TRUTH_VERSION;
    h.header_size = WT_HEADER;
    h.seed = t->seed;
    h.n_users = t->n_users;
    h.n_items = t->n_items;
    h.n_topics = t->n_topics;
    h.n_sub = t->n_sub;
    h.t_start = t->t_start;
    h.t_end = t->t_end;
    h.n_int = t->n_int;
    h.strings_bytes = (int64_t)(b.len - s0);
    h.self_bonus = t->self_bonus;
    h.noise_sd = t->noise_sd;
    h.word_sharing = t->word_sharing;
    h.payload_hash = sd_hash64(b.p + WT_HEADER, b.len - WT_HEADER, SD_HASH_SEED);
    memcpy(b.p, &h, sizeof h);
    int rc = sd_write_file_atomic(path, b.p, b.len, err);
    free(b.p);
    return rc;
}

/* Copies n bytes at *pos of data into a fresh heap array and advances *pos. */
static void *take(const char *data, size_t *pos, size_t n) {
    void *p = sd_malloc(n ? n : 1);
    memcpy(p, data + *pos, n);
    *pos += n;
    return p;
}

int world_truth_load(world_truth *t, const char *path, sd_err *err) {
    memset(t, 0, sizeof *t);
    char *dir = sd_strdup(path), *slash = strrchr(dir, '/');
    const char *name = slash ? slash + 1 : path;
    if (slash) *slash = 0;
    mf_status st; /* a truth file left over from another dataset (e.g. ingest over a world workspace) */
    int rc = mf_status_of(slash ? dir : ".", name, &st, err);
    free(dir);
    if (rc) return rc;
    if (st.state == MF_STALE)
        return sd_fail(err, SD_ERR_STATE,
                       "%s describes another dataset.bin than the one beside it (the dataset was replaced after "
                       "`serendip world`): remove it, or rerun `serendip world`",
                       path);
    char *data;
    size_t len;
    rc = sd_read_file(path, &data, &len, err);
    if (rc) return rc;
    const char *fix = "re-run `serendip world` to regenerate it";
    wt_header h;
    if (len < 8 || memcmp(data, WT_MAGIC, 8) != 0) {
        free(data);
        return sd_fail(err, SD_ERR_FORMAT, "%s: not a serendip world truth file (bad magic); %s", path, fix);
    }
    if (len < sizeof h) {
        free(data);
        return sd_fail(err, SD_ERR_FORMAT, "%s: truncated: %zu bytes, shorter than the %d-byte header; %s", path, len,
                       WT_HEADER, fix);
    }
    memcpy(&h, data, sizeof h);
    if (h.version != WORLD_TRUTH_VERSION || h.header_size != WT_HEADER) {
        free(data);
        return sd_fail(err, SD_ERR_FORMAT, "%s: version %u (header %u bytes), this build reads version %d; %s", path,
                       h.version, h.header_size, WORLD_TRUTH_VERSION, fix);
    }
    if (h.n_topics < 1 || h.n_sub < 1 || h.n_sub > 1000000 || h.n_sub % h.n_topics || h.n_users < 1 ||
        h.n_users > ((int64_t)1 << 40) || h.n_items < 1 || h.n_items > ((int64_t)1 << 40) || h.n_int < 0 ||
        h.n_int > ((int64_t)1 << 40) || h.strings_bytes < 0 || h.strings_bytes > ((int64_t)1 << 40)) {
        free(data);
        return sd_fail(err, SD_ERR_FORMAT, "%s: corrupted header (impossible counts: topics %d, subtopics %d, users %lld, items %lld); %s",
                       path, h.n_topics, h.n_sub, (long long)h.n_users, (long long)h.n_items, fix);
    }
    int64_t n = h.n_sub;
    uint64_t want = WT_HEADER + 12 * (uint64_t)n + 4 * (uint64_t)n * n + 4 * (uint64_t)h.n_items +
                    8 * (uint64_t)(h.n_users + 1) + 8 * (uint64_t)h.n_int + (uint64_t)h.strings_bytes;
    if ((uint64_t)len != want) {
        free(data);
        return sd_fail(err, SD_ERR_FORMAT, "%s: %s: %zu bytes, the header promises %llu; %s", path,
                       (uint64_t)len < want ? "truncated" : "trailing garbage", len, (unsigned long long)want, fix);
    }
    if (sd_hash64(data + WT_HEADER, len - WT_HEADER, SD_HASH_SEED) != h.payload_hash) {
        free(data);
        return sd_fail(err, SD_ERR_FORMAT, "%s: corrupted (checksum mismatch); %s", path, fix);
    }
    size_t pos = WT_HEADER;
    t->seed = h.seed;
    t->n_users = h.n_users;
    t->n_items = h.n_items;
    t->n_topics = h.n_topics;
    t->n_sub = h.n_sub;
    t->t_start = h.t_start;
    t->t_end = h.t_end;
    t->n_int = h.n_int;
    t->self_bonus = h.self_bonus;
    t->noise_sd = h.noise_sd;
    t->word_sharing = h.word_sharing;
    t->sub_topic = take(data, &pos, 4 * n);
    t->sub_pop = take(data, &pos, 4 * n);
    t->sub_quality = take(data, &pos, 4 * n);
    t->affinity = take(data, &pos, 4 * n * n);
    t->item_sub = take(data, &pos, 4 * h.n_items);
    t->user_off = take(data, &pos, 8 * (h.n_users + 1));
    t->int_sub = take(data, &pos, 4 * h.n_int);
    t->int_w = take(data, &pos, 4 * h.n_int);
    /* semantic checks: every index in range, offsets monotone */
    const char *bad = NULL;
    for (int64_t s = 0; s < n && !bad; s++)
        if (t->sub_topic[s] < 0 || t->sub_topic[s] >= h.n_topics) bad = "subtopic -> topic out of range";
    for (int64_t i = 0; i < h.n_items && !bad; i++)
        if (t->item_sub[i] < 0 || t->item_sub[i] >= n) bad = "item -> subtopic out of range";
    if (!bad && (t->user_off[0] != 0 || t->user_off[h.n_users] != h.n_int)) bad = "user interest offsets do not span the interests";
    for (int64_t u = 0; u < h.n_users && !bad; u++)
        if (t->user_off[u + 1] < t->user_off[u]) bad = "user interest offsets decrease";
    for (int64_t i = 0; i < h.n_int && !bad; i++)
        if (t->int_sub[i] < 0 || t->int_sub[i] >= n || !(t->int_w[i] > 0)) bad = "interest subtopic or weight out of range";
    /* strings: exactly n_topics + n_sub NUL-terminated names */
    t->topic_name = sd_calloc((size_t)h.n_topics, sizeof(char *));
    t->sub_name = sd_calloc((size_t)n, sizeof(char *));
    const char *sp = data + pos, *end = data + len;
    for (int64_t k = 0; k < h.n_topics + n && !bad; k++) {
        const char *z = memchr(sp, 0, (size_t)(end - sp));
        if (!z) {
            bad = "names section is short of names";
            break;
        }
        if (k < h.n_topics) t->topic_name[k] = sd_strdup(sp);
        else t->sub_name[k - h.n_topics] = sd_strdup(sp);
        sp = z + 1;
    }
    if (!bad && sp != end) bad = "names section has extra bytes";
    free(data);
    if (bad) {
        world_truth_free(t);
        return sd_fail(err, SD_ERR_FORMAT, "%s: corrupted: %s; %s", path, bad, fix);
    }
    return SD_OK;
}

/* ---------------------------------------------------------------- workspace output */

int world_write(const world_params *p, const char *ws, world_summary *sum, sd_err *err) {
    double t0 = sd_now();
    int rc = sd_mkdir_p(ws, err);
    if (rc) return rc;
    world_gen g;
    rc = world_generate(p, &g, err);
    if (rc) return rc;
    /* items first, in raw-id order, then users in raw-id order: the dataset's dense indices are
     * then raw id - 1 (first appearance), though callers should still map through the ids */
    ds_builder *b = ds_builder_new();
    for (int64_t i = 0; i < g.truth.n_items && !rc; i++) rc = ds_builder_add_item(b, i + 1, g.title[i], g.tags[i], err);
    if (rc) {
        ds_builder_free(b);
        world_gen_free(&g);
        return rc;
    }
    ds_positive_rule rule = DS_POSITIVE_DEFAULT;
    int64_t n_pos = 0, n_exp = 0;
    for (int64_t k = 0; k < g.n_events; k++) {
        ds_builder_add_event(b, g.ev_user[k], g.ev_item[k], g.ev_ts[k], g.ev_rating[k], g.ev_watch[k]);
        ds_event e = {0, 0, g.ev_ts[k], g.ev_rating[k], g.ev_watch[k]};
        n_pos += ds_is_positive(&rule, &e);
        n_exp += g.ev_explore[k];
    }
    ds_dataset d;
    rc = ds_builder_finish(b, &d, err);
    if (rc) {
        world_gen_free(&g);
        return rc;
    }
    char *dpath = sd_path_join(ws, DS_FILE), *tpath = sd_path_join(ws, WORLD_TRUTH_FILE);
    rc = ds_save(&d, dpath, err);
    if (!rc) rc = world_truth_save(&g.truth, tpath, err);
    const char *truth_of[] = {DS_FILE}; /* the truth describes this dataset.bin only */
    if (!rc) rc = mf_record(ws, DS_FILE, "world", NULL, 0, err);
    if (!rc) rc = mf_record(ws, WORLD_TRUTH_FILE, "world", truth_of, 1, err);
    if (!rc && sum) {
        sum->n_users = d.n_users;
        sum->n_items = d.n_items;
        sum->n_events = d.n_events;
        sum->ts_min = d.ts_min;
        sum->ts_max = d.ts_max;
        sum->positive_share = d.n_events ? (double)n_pos / (double)d.n_events : 0;
        sum->explore_share = d.n_events ? (double)n_exp / (double)d.n_events : 0;
        sum->seconds = sd_now() - t0;
    }
    free(dpath);
    free(tpath);
    ds_free(&d);
    world_gen_free(&g);
    return rc;
}
