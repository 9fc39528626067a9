/* base.h - errors, allocation, RNG, atomic writes, mmap, progress, hashing, paths.
 *
 * Everything every stage needs and nothing stage-specific. Library code never exits: it returns
 * an sd_status and fills an sd_err with a message naming the file, line and field at fault.
 * The one exception is allocation failure, which aborts in sd_oom() (Redis style), so that
 * error paths stay one line long. */
#ifndef SERENDIP_BASE_H
#define SERENDIP_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------- errors */

typedef enum {
    SD_OK = 0,
    SD_ERR_IO = 1,     /* open/read/write/rename failed */
    SD_ERR_DATA = 2,   /* malformed or inconsistent input data */
    SD_ERR_FORMAT = 3, /* foreign, truncated or wrong-version binary file */
    SD_ERR_USAGE = 4,  /* invalid argument from the caller (bad flag value, unknown id) */
    SD_ERR_STATE = 5,  /* a previous stage has not been run (missing workspace file) */
} sd_status;

typedef struct {
    int code;       /* sd_status */
    char msg[1024]; /* human-readable, e.g. "ratings.csv:1042: field 3 (rating) "4,5" is not a number" */
} sd_err;

/* Fills err (if non-NULL) with code and a printf-formatted message; returns code. */
int sd_fail(sd_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes err->msg with "prefix: " (for adding context when an error travels up). */
void sd_err_prefix(sd_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- memory (abort on OOM) */

void sd_oom(size_t n) __attribute__((noreturn));
void *sd_malloc(size_t n);
void *sd_calloc(size_t count, size_t size);
void *sd_realloc(void *p, size_t n);
char *sd_strdup(const char *s);
char *sd_strndup(const char *s, size_t n);
/* printf into a fresh heap string; caller frees. */
char *sd_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable array of fixed-size elements. */
typedef struct {
    void *data;
    size_t len, cap, elem;
} sd_vec;
void sd_vec_init(sd_vec *v, size_t elem);
void *sd_vec_push(sd_vec *v); /* returns a pointer to a new zeroed slot */
void sd_vec_free(sd_vec *v);

/* ---------------------------------------------------------------- RNG
 * xoshiro256** seeded through splitmix64: fast, well-tested, reproducible across platforms. */

typedef struct {
    uint64_t s[4];
} sd_rng;
void sd_rng_seed(sd_rng *r, uint64_t seed);
uint64_t sd_rng_u64(sd_rng *r);
double sd_rng_uniform(sd_rng *r);        /* [0, 1) */
uint32_t sd_rng_below(sd_rng *r, uint32_t n); /* [0, n), unbiased */
double sd_rng_normal(sd_rng *r);         /* standard normal (Box-Muller) */
void sd_rng_shuffle_i32(sd_rng *r, int32_t *a, size_t n);

/* ---------------------------------------------------------------- files */

/* A file written atomically: data goes to "<path>.tmp.<pid>", and sd_afile_commit flushes,
 * fsyncs and renames it over <path>. sd_afile_abort removes the temporary. Either way the
 * previous content of <path> is intact until the rename. */
typedef struct {
    FILE *f;
    char *path;
    char *tmp;
} sd_afile;
int sd_afile_open(sd_afile *a, const char *path, sd_err *err);
int sd_afile_commit(sd_afile *a, sd_err *err); /* checks ferror too; aborts on failure */
void sd_afile_abort(sd_afile *a);
/* Writes len bytes to path atomically. */
int sd_write_file_atomic(const char *path, const void *data, size_t len, sd_err *err);
/* Reads a whole file into a NUL-terminated heap buffer (caller frees); *len excludes the NUL. */
int sd_read_file(const char *path, char **out, size_t *len, sd_err *err);

/* A read-only memory map of a whole file. */
typedef struct {
    void *data;
    size_t size;
} sd_map;
int sd_map_open(sd_map *m, const char *path, sd_err *err);
void sd_map_close(sd_map *m);

int sd_file_exists(const char *path);
/* mkdir -p */
int sd_mkdir_p(const char *dir, sd_err *err);
/* rm -rf path (a file or a folder); missing is not an error. */
int sd_remove_tree(const char *path, sd_err *err);
/* Removes the leftovers of killed runs beside path: files or folders named <path><tag><pid> whose
 * process is gone (tag ".tmp." for sd_afile, ".new." / ".old." for sd_replace_dir). Returns how
 * many were removed; never fails (a leftover that cannot be removed stays). sd_afile_open and
 * sd_replace_dir call it, so the next run of a stage cleans what a killed run of it left. */
int sd_remove_stale(const char *path, const char *tag);
/* Replaces folder dst by folder src (both on one file system): dst is renamed aside, src renamed
 * to dst, the old one removed. A failure leaves dst as it was. */
int sd_replace_dir(const char *src, const char *dst, sd_err *err);
/* dir + "/" + name in a fresh heap string; caller frees. */
char *sd_path_join(const char *dir, const char *name);

/* ---------------------------------------------------------------- hashing */

/* FNV-1a 64-bit, chainable through seed (pass SD_HASH_SEED to start). */
#define SD_HASH_SEED 0xcbf29ce484222325ULL
uint64_t sd_hash64(const void *data, size_t len, uint64_t seed);
/* MurmurHash3's 64-bit finaliser: a cheap, well-mixed hash of one integer (hash-table keys). */
static inline uint64_t sd_mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}
/* Hash of a whole file's bytes (0 and an error if it cannot be read). */
int sd_hash_file(const char *path, uint64_t *out, sd_err *err);

/* ---------------------------------------------------------------- time */

double sd_now(void); /* monotonic seconds */

/* ---------------------------------------------------------------- logging and progress
 * Library code talks to people only through these. Everything goes to stderr, so stdout stays
 * clean for results (--json). */

extern int sd_verbosity; /* 0 quiet, 1 normal (default), 2 verbose */
void sd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* "serendip: ..." line */
void sd_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* only when verbose */

/* A progress bar on a terminal (stderr is a tty); silent otherwise. Redraws at most ~10 times a
 * second, so calling sd_progress_update in a loop is cheap. */
typedef struct {
    const char *label;
    int64_t total;
    double t0, last_draw;
    int tty;
    char extra[128];
} sd_progress;
void sd_progress_start(sd_progress *p, const char *label, int64_t total);
/* done = units finished so far; extra = optional short text (e.g. "loss 2.31"), may be NULL. */
void sd_progress_update(sd_progress *p, int64_t done, const char *extra);
void sd_progress_end(sd_progress *p);
/* A progress observer for the calling thread (the public API's progress callback): while one is
 * set, every bar started on this thread reports to it (label, done, total; rate-limited like the
 * drawing, and once at the end with done == total) and draws nothing itself. fn NULL removes it.
 * Thread-local: a stage on another thread is not observed. */
typedef void (*sd_progress_hook)(void *user, const char *label, int64_t done, int64_t total);
void sd_progress_set_hook(sd_progress_hook fn, void *user);

/* ---------------------------------------------------------------- threads */

int sd_num_threads(void); /* OpenMP max threads, or 1 without OpenMP */

#endif
