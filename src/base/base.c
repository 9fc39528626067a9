/* base.c - see include/serendip/base.h. */
#include "serendip/base.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- errors */

int sd_fail(sd_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void sd_err_prefix(sd_err *err, const char *fmt, ...) {
    if (!err) return;
    char pre[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%.500s: %.500s", pre, old);
}

/* ---------------------------------------------------------------- memory */

void sd_oom(size_t n) {
    fprintf(stderr, "serendip: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sd_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) sd_oom(n);
    return p;
}

void *sd_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) sd_oom(count * size);
    return p;
}

void *sd_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) sd_oom(n);
    return q;
}

char *sd_strdup(const char *s) { return sd_strndup(s, strlen(s)); }

char *sd_strndup(const char *s, size_t n) {
    char *d = sd_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *sd_asprintf(const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = sd_malloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

void sd_vec_init(sd_vec *v, size_t elem) {
    memset(v, 0, sizeof *v);
    v->elem = elem;
}

void *sd_vec_push(sd_vec *v) {
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->data = sd_realloc(v->data, v->cap * v->elem);
    }
    void *slot = (char *)v->data + v->len * v->elem;
    memset(slot, 0, v->elem);
    v->len++;
    return slot;
}

void sd_vec_free(sd_vec *v) {
    free(v->data);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------- RNG */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sd_rng_seed(sd_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sd_rng_u64(sd_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sd_rng_uniform(sd_rng *r) { return (double)(sd_rng_u64(r) >> 11) * 0x1.0p-53; }

uint32_t sd_rng_below(sd_rng *r, uint32_t n) {
    if (n == 0) return 0;
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m = (uint64_t)(uint32_t)sd_rng_u64(r) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)(uint32_t)sd_rng_u64(r) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double sd_rng_normal(sd_rng *r) {
    double u1 = sd_rng_uniform(r), u2 = sd_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void sd_rng_shuffle_i32(sd_rng *r, int32_t *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = sd_rng_below(r, (uint32_t)i);
        int32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* ---------------------------------------------------------------- files */

int sd_remove_stale(const char *path, const char *tag) {
    char *dir = sd_strdup(path), *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : path;
    if (slash) *slash = 0;
    char *prefix = sd_asprintf("%s%s", base, tag);
    size_t plen = strlen(prefix);
    DIR *d = opendir(slash ? (dir[0] ? dir : "/") : ".");
    struct dirent *e;
    int removed = 0;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, prefix, plen)) continue;
        char *end;
        errno = 0;
        long pid = strtol(e->d_name + plen, &end, 10);
        if (*end || errno || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        char *p = slash ? sd_path_join(dir[0] ? dir : "/", e->d_name) : sd_strdup(e->d_name);
        sd_err err;
        if (sd_remove_tree(p, &err) == SD_OK) {
            removed++;
            sd_log("removed %s, left by a killed run (process %ld is gone)", p, pid);
        }
        free(p);
    }
    if (d) closedir(d);
    free(dir), free(prefix);
    return removed;
}

int sd_afile_open(sd_afile *a, const char *path, sd_err *err) {
    memset(a, 0, sizeof *a);
    sd_remove_stale(path, ".tmp.");
    a->path = sd_strdup(path);
    a->tmp = sd_asprintf("%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int rc = sd_fail(err, SD_ERR_IO, "%s: cannot create (%s)", a->tmp, strerror(errno));
        free(a->path);
        free(a->tmp);
        memset(a, 0, sizeof *a);
        return rc;
    }
    return SD_OK;
}

int sd_afile_commit(sd_afile *a, sd_err *err) {
    int bad = ferror(a->f) != 0;
    if (fflush(a->f) != 0) bad = 1;
    if (!bad && fsync(fileno(a->f)) != 0) bad = 1;
    int saved = errno;
    if (fclose(a->f) != 0) bad = 1;
    a->f = NULL;
    if (bad) {
        int rc = sd_fail(err, SD_ERR_IO, "%s: write failed (%s)", a->path, strerror(saved ? saved : errno));
        sd_afile_abort(a);
        return rc;
    }
    if (rename(a->tmp, a->path) != 0) {
        int rc = sd_fail(err, SD_ERR_IO, "%s: rename from %s failed (%s)", a->path, a->tmp, strerror(errno));
        sd_afile_abort(a);
        return rc;
    }
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
    return SD_OK;
}

void sd_afile_abort(sd_afile *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
}

int sd_write_file_atomic(const char *path, const void *data, size_t len, sd_err *err) {
    sd_afile a;
    int rc = sd_afile_open(&a, path, err);
    if (rc) return rc;
    if (len && fwrite(data, 1, len, a.f) != len) {
        sd_afile_abort(&a);
        return sd_fail(err, SD_ERR_IO, "%s: write failed (%s)", path, strerror(errno));
    }
    return sd_afile_commit(&a, err);
}

int sd_read_file(const char *path, char **out, size_t *len, sd_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return sd_fail(err, SD_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st = {0};
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return sd_fail(err, SD_ERR_IO, "%s: is a directory, not a file", path);
    }
    /* one read of the announced size; the loop still copes with files that grow or are pipes */
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 2 : (size_t)1 << 16, n = 0;
    char *buf = sd_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = sd_realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f), eno = errno;
    fclose(f);
    if (bad) {
        free(buf);
        return sd_fail(err, SD_ERR_IO, "%s: read failed (%s)", path, strerror(eno));
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return SD_OK;
}

int sd_map_open(sd_map *m, const char *path, sd_err *err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return sd_fail(err, SD_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return sd_fail(err, SD_ERR_IO, "%s: cannot stat (%s)", path, strerror(errno));
    }
    m->size = (size_t)st.st_size;
    if (m->size == 0) {
        close(fd);
        m->data = NULL;
        return SD_OK;
    }
    void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return sd_fail(err, SD_ERR_IO, "%s: cannot mmap (%s)", path, strerror(errno));
    m->data = p;
    return SD_OK;
}

void sd_map_close(sd_map *m) {
    if (m->data) munmap(m->data, m->size);
    memset(m, 0, sizeof *m);
}

int sd_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int sd_mkdir_p(const char *dir, sd_err *err) {
    char *p = sd_strdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) goto fail;
        *s = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST) goto fail;
    free(p);
    return SD_OK;
fail:;
    int rc = sd_fail(err, SD_ERR_IO, "%s: cannot create directory (%s)", p, strerror(errno));
    free(p);
    return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int sd_remove_tree(const char *path, sd_err *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return SD_OK;
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return sd_fail(err, SD_ERR_IO, "%s: cannot remove (%s)", path, strerror(errno));
    return SD_OK;
}

int sd_replace_dir(const char *src, const char *dst, sd_err *err) {
    sd_remove_stale(dst, ".old.");
    sd_remove_stale(dst, ".new.");
    char *old = sd_asprintf("%s.old.%ld", dst, (long)getpid());
    int had = sd_file_exists(dst), rc = SD_OK;
    if (had && rename(dst, old) != 0) {
        rc = sd_fail(err, SD_ERR_IO, "%s: cannot move aside (%s)", dst, strerror(errno));
    } else if (rename(src, dst) != 0) {
        rc = sd_fail(err, SD_ERR_IO, "%s: cannot rename to %s (%s)", src, dst, strerror(errno));
        if (had) rename(old, dst);
    } else if (had) {
        rc = sd_remove_tree(old, err);
    }
    free(old);
    return rc;
}

char *sd_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir);
    if (n && dir[n - 1] == '/') return sd_asprintf("%s%s", dir, name);
    return sd_asprintf("%s/%s", dir, name);
}

/* ---------------------------------------------------------------- hashing */

uint64_t sd_hash64(const void *data, size_t len, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int sd_hash_file(const char *path, uint64_t *out, sd_err *err) {
    sd_map m;
    *out = 0;
    int rc = sd_map_open(&m, path, err);
    if (rc) return rc;
    *out = sd_hash64(m.data, m.size, SD_HASH_SEED);
    sd_map_close(&m);
    return SD_OK;
}

/* ---------------------------------------------------------------- time */

double sd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- logging and progress */

int sd_verbosity = 1;

void sd_log(const char *fmt, ...) {
    if (sd_verbosity < 1) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("serendip: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void sd_debug(const char *fmt, ...) {
    if (sd_verbosity < 2) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("serendip: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void progress_draw(sd_progress *p, int64_t done, int final) {
    double now = sd_now(), el = now - p->t0;
    double frac = p->total > 0 ? (double)done / (double)p->total : 0;
    if (frac > 1) frac = 1;
    int width = 30, fill = (int)(frac * width);
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    double eta = frac > 0 ? el / frac - el : 0;
    fprintf(stderr, "\r%-14s [%s] %5.1f%% %6.1fs", p->label, bar, 100 * frac, el);
    if (!final && frac > 0 && frac < 1) fprintf(stderr, " eta %5.1fs", eta);
    if (p->extra[0]) fprintf(stderr, "  %s", p->extra);
    fputs("\033[K", stderr);
    if (final) fputc('\n', stderr);
    fflush(stderr);
    p->last_draw = now;
}

static _Thread_local sd_progress_hook progress_hook;
static _Thread_local void *progress_hook_user;

void sd_progress_set_hook(sd_progress_hook fn, void *user) {
    progress_hook = fn;
    progress_hook_user = user;
}

void sd_progress_start(sd_progress *p, const char *label, int64_t total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->t0 = sd_now();
    p->tty = !progress_hook && sd_verbosity > 0 && isatty(fileno(stderr));
    if (progress_hook) progress_hook(progress_hook_user, label, 0, total);
}

void sd_progress_update(sd_progress *p, int64_t done, const char *extra) {
    if (!p->tty && !progress_hook) return;
    double now = sd_now();
    if (now - p->last_draw < 0.1) return;
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
    if (progress_hook) {
        p->last_draw = now;
        progress_hook(progress_hook_user, p->label, done, p->total);
    }
    if (p->tty) progress_draw(p, done, 0);
}

void sd_progress_end(sd_progress *p) {
    if (progress_hook) progress_hook(progress_hook_user, p->label, p->total, p->total);
    if (!p->tty) return;
    progress_draw(p, p->total, 1);
}

/* ---------------------------------------------------------------- threads */

int sd_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
