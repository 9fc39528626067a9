/* bench_ingest.c - ingest speed (rows/s) and peak memory (ru_maxrss) side by side.
 * Run: make BUILD=build build/bench/bench_ingest && build/bench/bench_ingest [ROWS (default 1000000)] [REPEATS (default 3)]
 *
 * Cases, each run REPEATS times in a fresh child process (so ru_maxrss is that case's own peak),
 * median wall time of the work and median CPU time (user + sys) of the child reported:
 *   fgets+strtol    naive baseline: a line loop with no quoting, no validation, no dataset
 *   csv reader      csv_next over the ratings file (quoting, line/field bookkeeping), no dataset
 *   ingest latest   ingest_movielens on a generated MovieLens-latest folder (ratings.csv + movies.csv)
 *   ingest 1m       the same rows in the 1M '::' layout (ratings.dat + movies.dat)
 *   ds_save/ds_load write dataset.bin atomically / mmap it back with full validation
 *   ml-latest-small the real data, when ../shared/data/ml-latest-small is present */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serendip/csv.h"
#include "serendip/dataset.h"
#include "serendip/ingest.h"

enum { CASE_FGETS, CASE_CSV, CASE_LATEST, CASE_DAT, CASE_SAVE, CASE_LOAD, CASE_SMALL };

static char g_dir[64];

/* The measured work of one case; returns the rows handled (or -1 on error). */
static int64_t run_case(int c) {
    sd_err err = {0};
    char path[256];
    if (c == CASE_FGETS) {
        snprintf(path, sizeof path, "%s/latest/ratings.csv", g_dir);
        FILE *f = fopen(path, "r");
        if (!f) return -1;
        char line[256];
        int64_t rows = 0, sum = 0;
        while (fgets(line, sizeof line, f)) {
            char *p = line;
            for (int k = 0; k < 4; k++) {
                sum += strtol(p, &p, 10);
                if (*p) p++;
            }
            rows++;
        }
        fclose(f);
        return sum == 42 ? rows + 1 : rows; /* keeps sum alive */
    }
    if (c == CASE_CSV) {
        snprintf(path, sizeof path, "%s/latest/ratings.csv", g_dir);
        csv_reader *r;
        if (csv_open(&r, path, NULL, &err)) return -1;
        int64_t rows = 0;
        while (csv_next(r, &err) == SD_OK) rows++;
        csv_close(r);
        return rows;
    }
    ds_dataset d;
    if (c == CASE_LATEST || c == CASE_DAT || c == CASE_SMALL || c == CASE_SAVE) {
        if (c == CASE_SMALL) snprintf(path, sizeof path, "../shared/data/ml-latest-small");
        else snprintf(path, sizeof path, "%s/%s", g_dir, c == CASE_DAT ? "dat" : "latest");
        ingest_report rep;
        if (ingest_movielens(path, &d, &rep, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return -1;
        }
        int64_t rows = rep.rating_rows + rep.catalogue_rows;
        if (c == CASE_SAVE) { /* only the save is timed: see the parent */
            snprintf(path, sizeof path, "%s/dataset.bin", g_dir);
            double t0 = sd_now();
            if (ds_save(&d, path, &err)) return -1;
            rows = -(int64_t)((sd_now() - t0) * 1e9) - 2; /* time in ns, encoded negative */
        }
        ds_free(&d);
        return rows;
    }
    snprintf(path, sizeof path, "%s/dataset.bin", g_dir);
    if (ds_load(&d, path, &err)) return -1;
    int64_t rows = d.n_events;
    ds_free(&d);
    return rows;
}

typedef struct {
    double seconds;   /* wall time of the work */
    int64_t rows;
    double maxrss_mb; /* peak resident memory of the child */
    double cpu;       /* user + system CPU seconds of the whole child (robust on a loaded machine) */
} sample;

/* Runs case c in a child; its time comes back through a pipe, its peak memory from wait4. */
static int measure(int c, sample *s) {
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        double t0 = sd_now();
        int64_t rows = run_case(c);
        double dt = sd_now() - t0;
        if (rows < -1) { /* CASE_SAVE: only the save counts */
            dt = (double)(-rows - 2) / 1e9;
            rows = 0;
        }
        sample out = {dt, rows, 0, 0};
        if (write(fd[1], &out, sizeof out) != sizeof out) _exit(1);
        _exit(rows < 0);
    }
    close(fd[1]);
    sample got;
    ssize_t n = read(fd[0], &got, sizeof got);
    close(fd[0]);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    if (n != sizeof got || !WIFEXITED(status) || WEXITSTATUS(status)) return -1;
    *s = got;
    s->maxrss_mb = ru.ru_maxrss / 1024.0;
    s->cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double file_mb(const char *dir, const char *a, const char *b) {
    double mb = 0;
    const char *names[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        if (!names[i]) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        FILE *f = fopen(p, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        mb += ftell(f) / 1e6;
        fclose(f);
    }
    return mb;
}

/* Writes ROWS ratings of a synthetic log in both the latest (CSV) and 1M ('::') layouts. */
static void generate(int64_t rows) {
    char p[256];
    for (int lay = 0; lay < 2; lay++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, lay ? "dat" : "latest");
        sd_mkdir_p(p, NULL);
    }
    int64_t n_items = rows / 50 + 100, n_users = rows / 100 + 10;
    sd_rng rng;
    sd_rng_seed(&rng, 1);
    snprintf(p, sizeof p, "%s/latest/movies.csv", g_dir);
    FILE *mc = fopen(p, "w");
    snprintf(p, sizeof p, "%s/dat/movies.dat", g_dir);
    FILE *md = fopen(p, "w");
    fprintf(mc, "movieId,title,genres\n");
    for (int64_t i = 1; i <= n_items; i++) {
        fprintf(mc, "%lld,\"Movie %lld, The (%d)\",Drama|Comedy\n", (long long)i, (long long)i, 1950 + (int)(i % 70));
        fprintf(md, "%lld::Movie %lld, The (%d)::Drama|Comedy\n", (long long)i, (long long)i, 1950 + (int)(i % 70));
    }
    fclose(mc);
    fclose(md);
    snprintf(p, sizeof p, "%s/latest/ratings.csv", g_dir);
    FILE *rc = fopen(p, "w");
    snprintf(p, sizeof p, "%s/dat/ratings.dat", g_dir);
    FILE *rd = fopen(p, "w");
    fprintf(rc, "userId,movieId,rating,timestamp\n");
    int64_t ts = 1000000000;
    for (int64_t k = 0; k < rows; k++) {
        long long u = 1 + (long long)sd_rng_below(&rng, (uint32_t)n_users), i = 1 + (long long)sd_rng_below(&rng, (uint32_t)n_items);
        double r = 0.5 * (1 + sd_rng_below(&rng, 10));
        ts += sd_rng_below(&rng, 100);
        fprintf(rc, "%lld,%lld,%.1f,%lld\n", u, i, r, (long long)ts);
        fprintf(rd, "%lld::%lld::%.1f::%lld\n", u, i, r, (long long)ts);
    }
    fclose(rc);
    fclose(rd);
}

int main(int argc, char **argv) {
    int64_t rows = argc > 1 ? atoll(argv[1]) : 1000000;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    if (rows < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_ingest [ROWS] [REPEATS]\n");
        return 2;
    }
    char cpu[512] = "unknown";
    FILE *ci = fopen("/proc/cpuinfo", "r");
    if (ci) {
        char line[512];
        while (fgets(line, sizeof line, ci))
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                snprintf(cpu, sizeof cpu, "%s", c ? c + 2 : line);
                cpu[strcspn(cpu, "\n")] = 0;
                break;
            }
        fclose(ci);
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/sd_bench_ingestXXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    generate(rows);
    printf("bench_ingest: CPU %s, 1 thread (ingest is single-threaded), %lld generated rows, median of %d runs\n", cpu, (long long)rows, reps);
    printf("%-18s %10s %8s %10s %9s %12s %8s %10s\n", "case", "rows", "MB", "median s", "cpu s", "rows/s", "MB/s", "peak RSS MB");
    struct {
        int c;
        const char *name, *dir, *a, *b;
    } cases[] = {
        {CASE_FGETS, "fgets+strtol", "latest", "ratings.csv", NULL},
        {CASE_CSV, "csv reader", "latest", "ratings.csv", NULL},
        {CASE_LATEST, "ingest latest", "latest", "ratings.csv", "movies.csv"},
        {CASE_DAT, "ingest 1m (::)", "dat", "ratings.dat", "movies.dat"},
        {CASE_SAVE, "ds_save", NULL, NULL, NULL},
        {CASE_LOAD, "ds_load", NULL, "dataset.bin", NULL},
        {CASE_SMALL, "ml-latest-small", NULL, "ratings.csv", "movies.csv"},
    };
    double base = 0;
    int failed = 0; /* a case that failed makes the benchmark fail (bench/run-all.sh reports it) */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char dir[512];
        if (cases[i].c == CASE_SMALL) snprintf(dir, sizeof dir, "../shared/data/ml-latest-small");
        else if (cases[i].dir) snprintf(dir, sizeof dir, "%s/%s", g_dir, cases[i].dir);
        else snprintf(dir, sizeof dir, "%s", g_dir);
        if (cases[i].c == CASE_SMALL && access("../shared/data/ml-latest-small/ratings.csv", R_OK)) {
            printf("%-18s SKIP: ../shared/data/ml-latest-small absent\n", cases[i].name);
            continue;
        }
        double t[64], cpu[64], rss = 0;
        int64_t n = 0;
        int nr = reps < 64 ? reps : 64, ok = 1;
        for (int r = 0; r < nr && ok; r++) {
            sample s = {0, 0, 0, 0};
            if (measure(cases[i].c, &s)) ok = 0;
            t[r] = s.seconds;
            cpu[r] = s.cpu;
            n = s.rows;
            if (s.maxrss_mb > rss) rss = s.maxrss_mb;
        }
        if (!ok) {
            printf("%-18s FAILED\n", cases[i].name);
            failed = 1;
            continue;
        }
        qsort(t, (size_t)nr, sizeof *t, cmp_double);
        qsort(cpu, (size_t)nr, sizeof *cpu, cmp_double);
        double med = t[nr / 2], mb = file_mb(dir, cases[i].a, cases[i].b);
        if (cases[i].c == CASE_FGETS) base = med;
        char cpus[16] = "-"; /* the save case's child also ingests: its CPU time is not the save's */
        if (cases[i].c != CASE_SAVE) snprintf(cpus, sizeof cpus, "%.4f", cpu[nr / 2]);
        printf("%-18s %10lld %8.1f %10.4f %9s %12.0f %8.0f %10.1f", cases[i].name, (long long)n, mb, med, cpus, n ? n / med : 0, mb / med, rss);
        if (base > 0 && cases[i].c <= CASE_DAT) printf("   x%.2f of fgets", med / base);
        putchar('\n');
    }
    char *cmd = sd_asprintf("rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "bench: could not remove %s\n", g_dir);
    free(cmd);
    return failed;
}
