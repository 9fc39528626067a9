/* abtest.h - a simulated live A/B experiment on the synthetic world (`serendip abtest`), with the
 * explore table refreshed from the feedback the experiment creates (issue 13; docs/abtest.md).
 *
 * Two parts:
 *  - the day model (src/abtest/sim.c): every simulated day, each user of the world visits or not
 *    (the chance rises with satisfaction), has organic sessions as in the world's generator, and a
 *    treatment user also sees the exploration slot; the hidden truth decides every response, and
 *    the day's events update the user (interest weights, adoption of a liked novel interest,
 *    decay, satisfaction). The model and its constants are stated in docs/world.md ("The day
 *    model of the A/B experiment").
 *  - the experiment (src/abtest/abtest.c): users split into arms by a hash of (user, seed); the
 *    explore slot is answered by an_answer (src/answer/answer.c, the function behind /v1/explore);
 *    every R days the experiment's events become a new dataset version (ws/abtest/v<r>/; the
 *    workspace's own dataset.bin is never touched), journeys and feedback are recomputed, the
 *    alignment model is fine-tuned further, the table re-planned and swapped in for the refresh
 *    arm; metrics per day and over the experiment with 95% bootstrap intervals (over users),
 *    written to ws/abtest.json.
 *
 * Determinism: every random draw of a user-day comes from a generator seeded by (seed, user, day),
 * users are independent within a day, so the results are identical whatever the thread count, and
 * under --mpi whatever the number of ranks (each rank simulates its range of users; docs/scale.md). */
#ifndef SERENDIP_ABTEST_H
#define SERENDIP_ABTEST_H

#include "serendip/base.h"
#include "serendip/dataset.h"
#include "serendip/world.h"

#define AB_FILE "abtest.json"
#define AB_DIR "abtest"          /* ws/abtest/v<r>/: the dataset versions and tables of the refreshes */
#define AB_MAX_INTERESTS 24      /* interests a simulated user can hold (the generator's users hold < 12) */
#define AB_MAX_ARMS 8
#define AB_KILL_ENV "SERENDIP_ABTEST_KILL_AT" /* fault injection: "<stage>[:<refresh>]", see ab_refresh */

/* ---------------------------------------------------------------- the day model (sim.c) */

/* Constants of the day model; ab_model_default fills the values documented in docs/world.md. */
typedef struct {
    double visit_base;     /* mean daily visit probability of a user with satisfaction 0 (0.55) */
    double visit_sd;       /* sd of the per-user visit logit around logit(visit_base) (0.8) */
    double sat_decay;      /* satisfaction kept from one day to the next (0.7) */
    double sat_gain;       /* gain per unit of the day's positive share above sat_ref (1.5) */
    double sat_ref;        /* positive share that leaves satisfaction unchanged (0.7, the log's ~72%) */
    double sat_dislike;    /* satisfaction lost per disliked event, rating <= AB_DISLIKE_RATING (0.15) */
    double sat_max;        /* |satisfaction| is clamped here, in logits (3.0) */
    double extra_session;  /* probability of a 2nd, and again of a 3rd, session in a visit (0.4) */
    int slot_items;        /* items shown by the exploration slot (2) */
} ab_model;
void ab_model_default(ab_model *m);

#define AB_DISLIKE_RATING 2.0f /* a negative response rated this or lower is a disliked exposure */

/* A simulated user's state (world subtopics, not taxonomy clusters). */
typedef struct {
    int32_t sub[AB_MAX_INTERESTS]; /* interests */
    float w[AB_MAX_INTERESTS];     /* their weights (> 0) */
    int n;
    float sat;                     /* satisfaction, logits */
    float visit_logit;             /* fixed per user */
    float explore_p;               /* per-session probability of an organic exploration (as the generator) */
} ab_user;

/* One response of a day. */
typedef enum { AB_ORGANIC = 0, AB_ORGANIC_EXPLORE = 1, AB_SLOT = 2 } ab_source;
typedef struct {
    int64_t item;     /* raw item id */
    int32_t sub;      /* its hidden subtopic */
    int32_t session;  /* session number within the day (events of one session share it) */
    uint8_t source;   /* ab_source */
    uint8_t pos;      /* positive engagement */
    float rating, watch;
    int64_t ts;       /* unix s */
} ab_event;

/* Initial state of 0-based user u: the truth's final interests (the state the experiment starts
 * from), satisfaction 0, a visit logit and an exploration probability drawn from (seed, u). */
void ab_user_init(const world_truth *t, const ab_model *m, uint64_t seed, int64_t u, ab_user *s);
/* Probability that the user visits today: sigmoid(visit_logit + sat). */
double ab_visit_prob(const ab_user *s);
/* Applies a day's events ev[0..n) (n = 0: the user did not visit) to s, in this order:
 *  1. every AB_ORGANIC event on an interest: positive -> w = min(3, w + 0.15), else w *= 0.85;
 *  2. every exploration session (AB_ORGANIC_EXPLORE or AB_SLOT events sharing a session number) on
 *     a subtopic that is not an interest: adopted with weight 0.5 + 0.3 * positives when at least
 *     half of its events are positive (and one is);
 *  3. satisfaction: sat = sat_decay * sat + (n ? sat_gain * (positives / n - sat_ref)
 *     - sat_dislike * disliked : 0), clamped to +-sat_max;
 *  4. interest decay by one day: w *= exp(-1 / 150), interests below 0.08 forgotten (the strongest
 *     kept), as the generator between sessions.
 * Pure (no randomness): tests compute its outcome by hand. */
void ab_user_apply_day(const ab_model *m, ab_user *s, const ab_event *ev, int n);

/* Items of each subtopic with the generator's Zipf weights (rank r within the subtopic, in raw-id
 * order, weighs (r + 2)^-0.9): rebuilt from the truth, which does not store the generator's index. */
typedef struct {
    int64_t *off;   /* (n_sub + 1) */
    int64_t *item;  /* (n_items) raw item ids grouped by subtopic */
    double *cum;    /* (n_items) cumulative weights within each subtopic */
} ab_items;
void ab_items_build(const world_truth *t, ab_items *ix);
void ab_items_free(ab_items *ix);
/* An item of subtopic s not marked in seen (bit raw_id - 1), drawn by weight; -1 when all seen. */
int64_t ab_items_pick(const ab_items *ix, int32_t s, const uint64_t *seen, sd_rng *r);

/* The user's organic day with the state at the start of the day: 1 to 3 sessions
 * (extra_session), each an exploration with probability explore_p (a never-engaged subtopic by
 * affinity + popularity + Gumbel noise, 1-3 items) or else an interest by weight (1-5 unseen
 * items); responses drawn from world_response_given. Appends to ev (capacity cap), marks items in
 * seen and subtopics in engaged (bit per subtopic), returns the new count. Sessions are numbered
 * from *session, events timed from day_start. */
int ab_simulate_organic(const world_truth *t, const ab_model *m, const ab_items *ix, int64_t u, const ab_user *s,
                        uint64_t *seen, uint64_t *engaged, int64_t day_start, sd_rng *r, ab_event *ev, int n, int cap,
                        int *session);

/* ---------------------------------------------------------------- the experiment (abtest.c) */

typedef enum {
    AB_ARM_CONTROL = 0,        /* no exploration slot */
    AB_ARM_EXPLORE = 1,        /* slot answered by an_answer over a fixed table */
    AB_ARM_EXPLORE_REFRESH = 2,/* the same, the table re-planned every R days */
    AB_ARM_ORACLE = 3,         /* slot: the novel subtopic the user likes most (hidden truth): a known good effect */
    AB_ARM_DISLIKED = 4,       /* slot: the novel subtopic the user likes least: a known bad effect */
} ab_arm_kind;
const char *ab_arm_kind_name(int kind); /* "control", "explore", "explore-refresh", "oracle", "disliked" */

typedef struct {
    int kind;          /* ab_arm_kind */
    char name[64];     /* as given ("control", "explore:explore.tbl", ...; repeated names get "#2") */
    char table[512];   /* table path (explore arms), resolved against the workspace */
} ab_arm;

/* Parses "control,explore:TABLE,explore-refresh:TABLE,oracle,disliked" (TABLE optional: the
 * workspace's explore.tbl; relative paths are taken in ws). At least 2 arms, at most AB_MAX_ARMS,
 * at most one explore-refresh arm. SD_ERR_USAGE naming the bad entry. */
int ab_parse_arms(const char *spec, const char *ws, ab_arm *arms, int *n, sd_err *err);

typedef struct {
    int days;            /* simulated days (28) */
    int refresh_every;   /* R: refresh after days R, 2R, ... before the last (0: never) (7) */
    uint64_t seed;       /* experiment seed: arms, every draw (1) */
    int threads;         /* 0: OpenMP's default */
    int bootstrap;       /* replicates of the bootstrap over users (200) */
    int refresh_n;       /* best-of-n of the re-plan (4) */
    int refresh_steps;   /* fine-tuning steps of the alignment model per refresh (150) */
    float refresh_lr;    /* their peak learning rate (5e-4) */
    int lora_rank;       /* 0: full fine-tune; r: rank-r LoRA, merged (0) */
    int slot_candidates; /* clusters asked of an_answer (the slot shows the first not met during the
                          * experiment since the serving log's version) (8) */
    int64_t max_users;   /* 0: every user of the world; else the first max_users (tests, benchmarks) */
    const char *out;     /* NULL: ws/abtest.json */
    int mpi;             /* --mpi (mpi.h active): ranks split the users (sd_mpi_range), rank 0 gathers the
                          * experiment's events, alone runs the refreshes, the statistics and writes */
    ab_model model;
} ab_opts;
void ab_opts_default(ab_opts *o);

typedef struct {
    int day;             /* refreshed after this day */
    double seconds, dataset_s, journeys_s, corpus_s, finetune_s, plan_s;
    int64_t events;      /* events of the new dataset version */
    int64_t experiment_events;
    double compliance;   /* of the re-plan */
    char dir[512];       /* the version's folder */
} ab_refresh_info;

typedef struct {
    int n_arms;
    int64_t users, user_days, active_user_days;
    double simulate_s, refresh_s, stats_s, total_s;
    double user_days_per_s; /* simulated user-days (every user, every day) per second of simulation */
    int threads;
    int ranks;              /* --mpi: processes (0: not under MPI) */
    int n_refresh;
    ab_refresh_info refresh[64];
    char out[512];
} ab_summary;

/* One logged event of the experiment (raw user = index + 1 of the log array). */
typedef struct {
    int64_t item, ts;  /* raw item id, unix s */
    float rating, watch;
    int16_t day;       /* 0-based day of the experiment */
    uint8_t pos, slot; /* positive; shown by the exploration slot */
} ab_logged;

/* One refresh (src/abtest/refresh.c), building version r in ws/abtest/v<r>/ from the previous one
 * (prev_dir: ws itself for r = 1, else ws/abtest/v<r-1>):
 *   dataset.bin  = base's events + every experiment event so far (logs[u], raw user u + 1), items
 *                  and users keeping their dense indices (refused otherwise: the retrieval model
 *                  indexes items densely); split.json: every event in train;
 *   taxonomy.bin = ws's (linked); journeys.bin, feedback.tsv recomputed (jr_run);
 *   corpus/      = rebuilt with ws's corpus options (cp_build_all);
 *   models/align.gguf = prev_dir's alignment model fine-tuned o->refresh_steps more steps on the
 *                  new alignment corpus (full, or LoRA merged); models/novelty.gguf = ws's (linked);
 *   explore.tbl  = re-planned, best-of-o->refresh_n (pl_plan).
 * Everything is built in ws/abtest/v<r>.new.<pid> and renamed to v<r> at the end, so a refresh
 * that fails or is killed midway leaves every earlier version, the workspace's dataset and its
 * tables as they were (the leftover folder is removed by the next refresh). Fault injection: when
 * the environment variable AB_KILL_ENV is "<stage>" or "<stage>:<r>" (stage: dataset, journeys,
 * corpus, finetune, plan, rename) the process kills itself with SIGKILL at that point of refresh
 * r (any r without ":<r>"). */
int ab_refresh(const char *ws, const char *prev_dir, int r, int day, const ds_dataset *base,
               const sd_vec *logs, int64_t n_users, const ab_opts *o, ab_refresh_info *info, sd_err *err);

/* Runs the experiment on workspace ws with arms[0..n_arms) (control first is the reference of the
 * relative differences: the first control arm). Refuses (SD_ERR_STATE) a workspace without
 * world_truth.bin. Explore arms need the workspace's taxonomy, dataset and tables (an_open);
 * the refresh arm also its journeys, corpus options and models. Writes ab_opts.out atomically;
 * sum may be NULL. With o->mpi every rank calls it (same arguments); ranks other than 0 write
 * nothing and return SD_OK with sum's timing of their own share; a failure on any rank is returned
 * on every rank as "rank R of N failed: ..." (sd_mpi_agree). */
int ab_run(const char *ws, const ab_arm *arms, int n_arms, const ab_opts *o, ab_summary *sum, sd_err *err);

/* Appends the A/B section of the report (curves per metric per arm over days, the final table)
 * to h (an svg_buf) when abtest.json exists in dir; nothing otherwise. Called by report.c. */
void ab_report_section(void *h, const char *dir);

#endif
