/* sim.c - the day model of the simulated A/B experiment: visits driven by satisfaction, organic
 * sessions as in the world's generator, and the daily state update (abtest.h; the model and its
 * constants are stated in docs/world.md, "The day model of the A/B experiment").
 *
 * Hand-written for the same reason as the world itself (src/world/world.c): no library simulates
 * users against a hidden affinity structure. It reuses the generator's like probability, response
 * sampler and affinity term (world_response_given, world_affinity) and restates its session rules
 * (item counts, weight updates, adoption, decay) with the same constants, so that a user of the
 * experiment behaves as the users who made the log. One difference, on purpose: the state changes
 * once a day (ab_user_apply_day) instead of after every event, so that a day's outcome is a pure
 * function of the state and the events, which a test computes by hand. */
#include "serendip/abtest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The generator's session constants (src/world/world.c, simulate_user / int_decay). */
#define AB_W_STEP 0.15f        /* a positive on an interest adds this to its weight */
#define AB_W_MAX 3.0f          /* weight cap */
#define AB_W_NEG 0.85f         /* a negative multiplies the weight by this */
#define AB_ADOPT_BASE 0.5f     /* an adopted exploration starts at this weight ... */
#define AB_ADOPT_PER_POS 0.3f  /* ... plus this per positive */
#define AB_EXPLORE_AFF 0.6     /* weight of the affinity in the exploration choice */
#define AB_EXPLORE_MEAN 0.15   /* the generator's default mean exploration probability */
#define AB_EXPLORE_CAP 0.6

void ab_model_default(ab_model *m) {
    m->visit_base = 0.55;
    m->visit_sd = 0.8;
    m->sat_decay = 0.7;
    m->sat_gain = 1.5;
    m->sat_ref = 0.7;
    m->sat_dislike = 0.15;
    m->sat_max = 3.0;
    m->extra_session = 0.4;
    m->slot_items = 2;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

void ab_user_init(const world_truth *t, const ab_model *m, uint64_t seed, int64_t u, ab_user *s) {
    memset(s, 0, sizeof *s);
    int64_t a = t->user_off[u], b = t->user_off[u + 1];
    for (int64_t i = a; i < b && s->n < AB_MAX_INTERESTS; i++) {
        s->sub[s->n] = t->int_sub[i];
        s->w[s->n] = t->int_w[i];
        s->n++;
    }
    sd_rng r;
    uint64_t st = seed ^ ((uint64_t)(u + 1) * 0xA24BAED4963EE407ULL) ^ 0x55534552494E4954ULL; /* "USERINIT" */
    sd_rng_seed(&r, splitmix(&st));
    double vb = m->visit_base;
    s->visit_logit = (float)(log(vb / (1 - vb)) + m->visit_sd * sd_rng_normal(&r));
    double pe = AB_EXPLORE_MEAN * exp(0.5 * sd_rng_normal(&r));
    s->explore_p = (float)(pe > AB_EXPLORE_CAP ? AB_EXPLORE_CAP : pe);
    s->sat = 0;
}

double ab_visit_prob(const ab_user *s) { return sigmoid((double)s->visit_logit + (double)s->sat); }

static int find_interest(const ab_user *s, int32_t x) {
    for (int i = 0; i < s->n; i++)
        if (s->sub[i] == x) return i;
    return -1;
}

void ab_user_apply_day(const ab_model *m, ab_user *s, const ab_event *ev, int n) {
    /* 1. organic consumption of interests */
    int npos = 0, ndis = 0;
    for (int i = 0; i < n; i++) {
        npos += ev[i].pos;
        ndis += !ev[i].pos && ev[i].rating <= AB_DISLIKE_RATING;
        if (ev[i].source != AB_ORGANIC) continue;
        int j = find_interest(s, ev[i].sub);
        if (j < 0) continue;
        s->w[j] = ev[i].pos ? (s->w[j] + AB_W_STEP > AB_W_MAX ? AB_W_MAX : s->w[j] + AB_W_STEP) : s->w[j] * AB_W_NEG;
    }
    /* 2. exploration sessions: a liked novel subtopic is adopted */
    for (int i = 0; i < n; i++) {
        if (ev[i].source == AB_ORGANIC) continue;
        int first = 1;
        for (int j = 0; j < i && first; j++)
            if (ev[j].source != AB_ORGANIC && ev[j].session == ev[i].session && ev[j].sub == ev[i].sub) first = 0;
        if (!first) continue;
        int done = 0, pos = 0;
        for (int j = i; j < n; j++)
            if (ev[j].source != AB_ORGANIC && ev[j].session == ev[i].session && ev[j].sub == ev[i].sub)
                done++, pos += ev[j].pos;
        if (pos > 0 && 2 * pos >= done && find_interest(s, ev[i].sub) < 0 && s->n < AB_MAX_INTERESTS) {
            s->sub[s->n] = ev[i].sub;
            s->w[s->n] = AB_ADOPT_BASE + AB_ADOPT_PER_POS * (float)pos;
            s->n++;
        }
    }
    /* 3. satisfaction */
    double sat = m->sat_decay * s->sat;
    if (n) sat += m->sat_gain * ((double)npos / n - m->sat_ref) - m->sat_dislike * ndis;
    if (sat > m->sat_max) sat = m->sat_max;
    if (sat < -m->sat_max) sat = -m->sat_max;
    s->sat = (float)sat;
    /* 4. one day of decay, as the world's generator forgets */
    world_interests_decay(s->sub, s->w, &s->n, 1.0);
}

/* ---------------------------------------------------------------- items */

void ab_items_build(const world_truth *t, ab_items *ix) {
    int32_t n = t->n_sub;
    int64_t N = t->n_items;
    ix->off = sd_calloc((size_t)n + 1, sizeof(int64_t));
    ix->item = sd_malloc(sizeof(int64_t) * (size_t)(N ? N : 1));
    ix->cum = sd_malloc(sizeof(double) * (size_t)(N ? N : 1));
    for (int64_t i = 0; i < N; i++) ix->off[t->item_sub[i] + 1]++;
    for (int s = 0; s < n; s++) ix->off[s + 1] += ix->off[s];
    int64_t *fill = sd_malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    for (int s = 0; s < n; s++) fill[s] = ix->off[s];
    for (int64_t i = 0; i < N; i++) {
        int s = t->item_sub[i];
        int64_t rank = fill[s] - ix->off[s];
        ix->item[fill[s]] = i + 1;
        ix->cum[fill[s]] = (rank ? ix->cum[fill[s] - 1] : 0) + pow((double)rank + 2.0, -0.9);
        fill[s]++;
    }
    free(fill);
}

void ab_items_free(ab_items *ix) {
    free(ix->off), free(ix->item), free(ix->cum);
    memset(ix, 0, sizeof *ix);
}

static int bit_get(const uint64_t *b, int64_t i) { return (int)((b[i >> 6] >> (i & 63)) & 1); }
static void bit_set(uint64_t *b, int64_t i) { b[i >> 6] |= 1ull << (i & 63); }

int64_t ab_items_pick(const ab_items *ix, int32_t s, const uint64_t *seen, sd_rng *r) {
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
        if (!bit_get(seen, ix->item[lo] - 1)) return ix->item[lo];
    }
    for (int64_t j = a; j < b; j++)
        if (!bit_get(seen, ix->item[j] - 1)) return ix->item[j];
    return -1;
}

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

/* ---------------------------------------------------------------- the organic day */

int ab_simulate_organic(const world_truth *t, const ab_model *m, const ab_items *ix, int64_t u, const ab_user *s,
                        uint64_t *seen, uint64_t *engaged, int64_t day_start, sd_rng *r, ab_event *ev, int n, int cap,
                        int *session) {
    int n_sess = 1;
    while (n_sess < 3 && sd_rng_uniform(r) < m->extra_session) n_sess++;
    /* first session 06:00-09:00, events 2-20 min apart, sessions 1-3 h apart: a day ends before 21:00,
     * and the exploration slot's session (abtest.c) comes at 22:00 */
    int64_t ts = day_start + 6 * 3600 + (int64_t)sd_rng_below(r, 3 * 3600);
    for (int k = 0; k < n_sess; k++) {
        int explore = s->n == 0 || sd_rng_uniform(r) < s->explore_p;
        int32_t x = -1;
        if (explore) { /* a never-engaged subtopic by affinity + popularity + Gumbel noise */
            double best = -1e300;
            for (int32_t c = 0; c < t->n_sub; c++) {
                if (bit_get(engaged, c)) continue;
                double gum = -log(-log(sd_rng_uniform(r) * (1 - 1e-12) + 1e-300));
                double l = AB_EXPLORE_AFF * world_affinity(t, s->sub, s->w, s->n, c) + log(t->sub_pop[c]) + gum;
                if (l > best) best = l, x = c;
            }
            if (x < 0) explore = 0;
        }
        if (!explore) {
            if (s->n == 0) break;
            x = s->sub[pick_weighted(r, s->w, s->n)];
        }
        bit_set(engaged, x);
        int n_ev = explore ? 1 + (int)sd_rng_below(r, 3) : 1 + (int)sd_rng_below(r, 5);
        for (int e = 0; e < n_ev && n < cap; e++) {
            int64_t item = ab_items_pick(ix, x, seen, r);
            if (item < 0) break;
            bit_set(seen, item - 1);
            ab_event *o = &ev[n++];
            o->item = item;
            o->sub = x;
            o->session = *session;
            o->source = explore ? AB_ORGANIC_EXPLORE : AB_ORGANIC;
            o->pos = (uint8_t)world_response_given(t, u + 1, s->sub, s->w, s->n, x, r, &o->rating, &o->watch);
            o->ts = ts;
            ts += 120 + (int64_t)sd_rng_below(r, 1080);
        }
        (*session)++;
        ts += 3600 + (int64_t)sd_rng_below(r, 2 * 3600);
    }
    return n;
}
