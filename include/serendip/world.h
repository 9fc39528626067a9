/* world.h - the embedded synthetic world: a generator of interaction logs with a hidden two-level
 * topic hierarchy, and the ground truth + user simulator that the evaluation stage queries.
 *
 * The hidden model (docs/world.md has the details and the truth file layout):
 *  - T topics x S subtopics each (subtopic id = topic * S + j). Every item belongs to one subtopic.
 *  - Taste communities: a random partition of the subtopics into groups of 6 across topics.
 *  - An affinity graph A (n_sub x n_sub): A[s][x] says how much a fan of subtopic s likes x.
 *    Each s has a few strongly loved (half of them in its community) and a few strongly disliked
 *    subtopics (never in its community), mild liking of its siblings in the same topic, and a
 *    mildly negative noisy value for the rest.
 *  - Words: each topic and subtopic has its own pseudo-words; a subtopic's theme word is, with
 *    probability word_sharing, its community's word (so interests liked together share words).
 *  - A user's state is a weighted set of interest subtopics. The probability that the user engages
 *    positively with an item of subtopic x is
 *        p = sigmoid( [x in interests] * self_bonus + g(u,x) + quality[x] + noise_sd * eps(u,x) )
 *    where g(u,x) = sum_{s in I, s != x} w_s A[s][x] / sum_{s in I} w_s + 0.5 (max_s A[s][x]^+ +
 *    min_s A[s][x]^-) (one interest that loves or hates x sways the user), and eps(u,x) ~ N(0,1) is
 *    a fixed per-(user, subtopic) taste drawn from a hash of the world seed (no storage needed).
 *  - Users live through sessions: mostly items of current interests, sometimes an exploration of a
 *    never-engaged subtopic chosen by affinity + popularity + noise. Liked explorations are adopted
 *    as interests (drift); interest weights decay with time.
 *
 * Raw ids: users are 1..n_users and items 1..n_items (the raw ids written to dataset.bin); the
 * simulator functions take raw ids so that callers map dense dataset indices through
 * ds_dataset.user_ids / item_ids. */
#ifndef SERENDIP_WORLD_H
#define SERENDIP_WORLD_H

#include "serendip/base.h"

#define WORLD_TRUTH_FILE "world_truth.bin"
#define WORLD_TRUTH_VERSION 1

/* Generation parameters. world_params_default fills the defaults listed in docs/world.md. */
typedef struct {
    uint64_t seed;
    int64_t n_users;      /* default 5000 */
    int64_t n_items;      /* default 3000, at least n_topics * n_subtopics */
    int32_t n_topics;     /* default 12 */
    int32_t n_subtopics;  /* subtopics per topic, default 8 */
    int32_t days;         /* length of the log, default 730 */
    int64_t t_start;      /* unix s of the first possible event, default 2023-01-01 00:00 UTC */
    float explore_prob;   /* mean per-session exploration probability, default 0.15 */
    float sessions_mean;  /* median sessions per user (log-normal), default 26 */
    float word_sharing;   /* [0, 1]: probability that a subtopic's theme word is its taste
                           * community's (0 = unrelated words everywhere), default 0.8 */
} world_params;

void world_params_default(world_params *p);
/* Overwrites p with the named preset (docs/world.md): "default" (world_params_default) or "paper"
 * (the papers' scale: 40 topics x 19 subtopics = 760 level-2 interests, 100,000 users, 20,000
 * items). SD_ERR_USAGE naming the preset when it is unknown. */
int world_params_preset(world_params *p, const char *name, sd_err *err);
/* Checks ranges; SD_ERR_USAGE with the offending field named. */
int world_params_check(const world_params *p, sd_err *err);

/* The ground truth. All arrays owned (heap); world_truth_free releases them. */
typedef struct {
    uint64_t seed;
    int32_t n_topics, n_sub;        /* n_sub = n_topics * subtopics per topic */
    int64_t n_users, n_items;
    int64_t t_start, t_end;         /* unix s; events lie in [t_start, t_end) */
    float self_bonus, noise_sd;     /* the like-probability model's constants (see above) */
    float word_sharing;             /* the vocabulary's sharing strength (world_params) */
    int32_t *sub_topic;             /* (n_sub) topic of each subtopic */
    float *sub_pop;                 /* (n_sub) exploration popularity, sums to 1 */
    float *sub_quality;             /* (n_sub) additive logit of each subtopic */
    float *affinity;                /* (n_sub, n_sub) A[s * n_sub + x] */
    int32_t *sub_community;         /* (n_sub) taste community of each subtopic; NULL when loaded from
                                     * world_truth.bin (generation only, not stored) */
    int32_t n_community;
    int32_t *item_sub;              /* (n_items) subtopic of raw item i+1 */
    int64_t *user_off;              /* (n_users + 1) user u+1's interests are [off[u], off[u+1]) */
    int32_t *int_sub;               /* (n_int) interest subtopics at the end of the log */
    float *int_w;                   /* (n_int) their weights (> 0) */
    int64_t n_int;
    char **sub_name;                /* (n_sub) "topicword/subword" keywords of the hidden subtopic */
    char **topic_name;              /* (n_topics) keyword of the hidden topic */
} world_truth;

/* An in-memory generated world: catalogue, events and truth. */
typedef struct {
    world_truth truth;
    char **title;     /* (n_items) title of raw item i+1 */
    char **tags;      /* (n_items) '|'-separated tags of raw item i+1 */
    int64_t n_events;
    int64_t *ev_user; /* (n_events) raw user id; events grouped by user, ts increasing */
    int64_t *ev_item; /* (n_events) raw item id */
    int64_t *ev_ts;   /* (n_events) unix s */
    float *ev_rating; /* (n_events) 0.5 .. 5 in half stars */
    float *ev_watch;  /* (n_events) [0, 1] */
    uint8_t *ev_explore; /* (n_events) 1 if the event belongs to an exploration session */
} world_gen;

/* Generates the world for p (deterministic in p). Fills g; free with world_gen_free. */
int world_generate(const world_params *p, world_gen *g, sd_err *err);
void world_gen_free(world_gen *g);

/* Summary of what world_write produced. */
typedef struct {
    int64_t n_users, n_items, n_events;
    int64_t ts_min, ts_max;
    double positive_share; /* share of events that are positive under DS_POSITIVE_DEFAULT */
    double explore_share;  /* share of events from exploration sessions */
    double seconds;        /* wall time of generation + writing */
} world_summary;

/* Generates and writes <ws>/dataset.bin (through ds_builder) and <ws>/world_truth.bin, both
 * atomically; creates ws if needed. sum may be NULL. */
int world_write(const world_params *p, const char *ws, world_summary *sum, sd_err *err);

/* Truth file I/O: atomic save; load refuses foreign, truncated, corrupted or wrong-version files
 * with a message naming the path and the problem. */
int world_truth_save(const world_truth *t, const char *path, sd_err *err);
int world_truth_load(world_truth *t, const char *path, sd_err *err);
void world_truth_free(world_truth *t);

/* ---------------------------------------------------------------- simulator */

/* Hidden subtopic of raw item id, or -1 when unknown. */
int32_t world_item_subtopic(const world_truth *t, int64_t raw_item);
/* Probability that raw user id engages positively with an item of subtopic sub, given the user's
 * interests at the end of the log. Returns -1 for an unknown user or subtopic. */
double world_like_prob(const world_truth *t, int64_t raw_user, int32_t sub);
/* The same for an explicit interest state (subs/weights of length n) of user raw_user (whose
 * fixed personal taste eps(u, x) is still used). */
double world_like_prob_given(const world_truth *t, int64_t raw_user, const int32_t *subs, const float *w, int n,
                             int32_t sub);
/* Samples a response of raw_user to an item of subtopic sub: returns 1 when positive, 0 when not,
 * -1 on unknown user/subtopic; fills rating (0.5..5 half stars) and watch ([0,1]) when non-NULL,
 * consistent with the positive rule (rating >= 4 <=> positive). */
int world_response(const world_truth *t, int64_t raw_user, int32_t sub, sd_rng *rng, float *rating, float *watch);

/* Added for the A/B experiment (src/abtest/sim.c). The hidden affinity term g(I, x) of the like
 * probability (see above) for an explicit interest state; the exploration choice of the generator
 * weighs it. */
double world_affinity(const world_truth *t, const int32_t *subs, const float *w, int n, int32_t x);
/* world_response for an explicit interest state (subs/w of length n) of raw_user. */
int world_response_given(const world_truth *t, int64_t raw_user, const int32_t *subs, const float *w, int n,
                         int32_t sub, sd_rng *rng, float *rating, float *watch);
/* The generator's forgetting, shared with the A/B simulator (src/abtest/sim.c): multiplies the n
 * interest weights w by exp(-days / 150) and drops those below 0.08, keeping at least the strongest;
 * compacts sub and w in place and updates *n. */
void world_interests_decay(int32_t *sub, float *w, int *n, double days);

#endif
