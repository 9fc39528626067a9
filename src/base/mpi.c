/* mpi.c - the optional MPI layer (see mpi.h for why it is ours and what it promises). */
#include "serendip/mpi.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#ifdef SERENDIP_MPI
#include <mpi.h>
#endif

static int g_active, g_rank, g_size = 1;

int sd_mpi_built(void) {
#ifdef SERENDIP_MPI
    return 1;
#else
    return 0;
#endif
}

int sd_mpi_active(void) { return g_active; }
int sd_mpi_rank(void) { return g_rank; }
int sd_mpi_size(void) { return g_size; }

void sd_mpi_range(int64_t n, int64_t *begin, int64_t *end) {
    *begin = n * g_rank / g_size;
    *end = n * (g_rank + 1) / g_size;
}

void sd_mpi_test_fault(const char *where) {
    const char *r = getenv("SERENDIP_MPI_TEST_KILL_RANK"), *at = getenv("SERENDIP_MPI_TEST_KILL_AT");
    if (!g_active || !r || atoi(r) != g_rank || (at && strcmp(at, where))) return;
    fprintf(stderr, "serendip: rank %d: SERENDIP_MPI_TEST_KILL_RANK: killing myself at %s\n", g_rank, where);
    fflush(stderr);
    raise(SIGKILL);
}

const char *sd_mpi_test_ws(const char *ws) {
    const char *v = getenv("SERENDIP_MPI_TEST_WS"), *colon = v ? strchr(v, ':') : NULL;
    if (!g_active || !colon || atoi(v) != g_rank) return ws;
    fprintf(stderr, "serendip: rank %d: SERENDIP_MPI_TEST_WS: reading %s instead of %s\n", g_rank, colon + 1, ws);
    return colon + 1;
}

#ifdef SERENDIP_MPI

/* MPI counts are int: big transfers go in pieces of at most this many elements. */
#define PIECE ((size_t)1 << 28)

static void finalize_at_exit(void) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

int sd_mpi_init(sd_err *err) {
    if (g_active) return SD_OK;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS) return sd_fail(err, SD_ERR_IO, "--mpi: MPI_Init failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_active = 1;
    atexit(finalize_at_exit);
    return SD_OK;
}

static int mpi_fail(sd_err *err, const char *what, int code) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, s, &len);
    return sd_fail(err, SD_ERR_IO, "rank %d of %d: %s failed: %.*s", g_rank, g_size, what, len, s);
}

int sd_mpi_agree(int rc, sd_err *err) {
    if (!g_active) return rc;
    /* the lowest failing rank, then its code and message from it */
    int mine = rc ? g_rank : g_size, first = g_size;
    int e = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (e != MPI_SUCCESS) return mpi_fail(err, "MPI_Allreduce (agreement)", e);
    if (first == g_size) return SD_OK;
    struct {
        int code;
        char msg[sizeof err->msg];
    } m = {0};
    if (g_rank == first) {
        m.code = rc;
        snprintf(m.msg, sizeof m.msg, "%s", err ? err->msg : "(no message)");
    }
    e = MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, first, MPI_COMM_WORLD);
    if (e != MPI_SUCCESS) return mpi_fail(err, "MPI_Bcast (agreement)", e);
    return sd_fail(err, m.code ? m.code : SD_ERR_IO, "rank %d of %d failed: %.900s", first, g_size, m.msg);
}

static int allreduce(void *x, size_t n, size_t elem, MPI_Datatype t, MPI_Op op, sd_err *err) {
    if (!g_active || g_size == 1) return SD_OK;
    for (size_t off = 0; off < n; off += PIECE) {
        size_t k = n - off < PIECE ? n - off : PIECE;
        int e = MPI_Allreduce(MPI_IN_PLACE, (char *)x + off * elem, (int)k, t, op, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) return mpi_fail(err, "MPI_Allreduce", e);
    }
    return SD_OK;
}

int sd_mpi_sum_f32(float *x, size_t n, sd_err *err) { return allreduce(x, n, sizeof *x, MPI_FLOAT, MPI_SUM, err); }
int sd_mpi_sum_f64(double *x, size_t n, sd_err *err) { return allreduce(x, n, sizeof *x, MPI_DOUBLE, MPI_SUM, err); }
int sd_mpi_sum_i64(int64_t *x, size_t n, sd_err *err) { return allreduce(x, n, sizeof *x, MPI_INT64_T, MPI_SUM, err); }
int sd_mpi_max_f64(double *x, size_t n, sd_err *err) { return allreduce(x, n, sizeof *x, MPI_DOUBLE, MPI_MAX, err); }

/* Sends / receives len bytes in pieces (tag 7). */
static int send_bytes(const void *p, size_t len, int to, sd_err *err) {
    for (size_t off = 0; off < len; off += PIECE) {
        size_t k = len - off < PIECE ? len - off : PIECE;
        int e = MPI_Send((const char *)p + off, (int)k, MPI_BYTE, to, 7, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) return mpi_fail(err, "MPI_Send", e);
    }
    return SD_OK;
}

static int recv_bytes(void *p, size_t len, int from, sd_err *err) {
    for (size_t off = 0; off < len; off += PIECE) {
        size_t k = len - off < PIECE ? len - off : PIECE;
        int e = MPI_Recv((char *)p + off, (int)k, MPI_BYTE, from, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (e != MPI_SUCCESS) return mpi_fail(err, "MPI_Recv", e);
    }
    return SD_OK;
}

int sd_mpi_gather_bytes(const void *buf, size_t len, void ***bufs, size_t **lens, sd_err *err) {
    *bufs = NULL;
    *lens = NULL;
    if (g_rank != 0) {
        uint64_t l = len;
        int rc = send_bytes(&l, sizeof l, 0, err);
        return rc ? rc : send_bytes(buf, len, 0, err);
    }
    void **b = sd_calloc((size_t)g_size, sizeof *b);
    size_t *n = sd_calloc((size_t)g_size, sizeof *n);
    b[0] = sd_malloc(len + 1);
    memcpy(b[0], buf, len);
    n[0] = len;
    int rc = SD_OK;
    for (int r = 1; r < g_size && !rc; r++) {
        uint64_t l = 0;
        if ((rc = recv_bytes(&l, sizeof l, r, err))) break;
        n[r] = (size_t)l;
        b[r] = sd_malloc(n[r] + 1);
        rc = recv_bytes(b[r], n[r], r, err);
    }
    if (rc) {
        for (int r = 0; r < g_size; r++) free(b[r]);
        free(b);
        free(n);
        return rc;
    }
    *bufs = b;
    *lens = n;
    return SD_OK;
}

int sd_mpi_allgather_rows(void *rows, size_t row_bytes, int64_t n, sd_err *err) {
    if (!g_active || g_size == 1) return SD_OK;
    /* each rank's block broadcast from its owner: blocks may exceed INT_MAX bytes */
    for (int r = 0; r < g_size; r++) {
        int64_t b = n * r / g_size, e = n * (r + 1) / g_size;
        size_t len = (size_t)(e - b) * row_bytes;
        char *p = (char *)rows + (size_t)b * row_bytes;
        for (size_t off = 0; off < len; off += PIECE) {
            size_t k = len - off < PIECE ? len - off : PIECE;
            int x = MPI_Bcast(p + off, (int)k, MPI_BYTE, r, MPI_COMM_WORLD);
            if (x != MPI_SUCCESS) return mpi_fail(err, "MPI_Bcast (rows)", x);
        }
    }
    return SD_OK;
}

#else /* !SERENDIP_MPI: one process, every collective the identity */

int sd_mpi_init(sd_err *err) {
    return sd_fail(err, SD_ERR_USAGE,
                   "--mpi: this serendip was built without MPI (install openmpi-bin and libopenmpi-dev: "
                   "bash scripts/install-deps does; then rebuild without NO_MPI: make clean all)");
}
int sd_mpi_agree(int rc, sd_err *err) {
    (void)err;
    return rc;
}
int sd_mpi_sum_f32(float *x, size_t n, sd_err *err) { return (void)x, (void)n, (void)err, SD_OK; }
int sd_mpi_sum_f64(double *x, size_t n, sd_err *err) { return (void)x, (void)n, (void)err, SD_OK; }
int sd_mpi_sum_i64(int64_t *x, size_t n, sd_err *err) { return (void)x, (void)n, (void)err, SD_OK; }
int sd_mpi_max_f64(double *x, size_t n, sd_err *err) { return (void)x, (void)n, (void)err, SD_OK; }
int sd_mpi_gather_bytes(const void *buf, size_t len, void ***bufs, size_t **lens, sd_err *err) {
    (void)err;
    *bufs = sd_calloc(1, sizeof **bufs);
    *lens = sd_calloc(1, sizeof **lens);
    (*bufs)[0] = sd_malloc(len + 1);
    memcpy((*bufs)[0], buf, len);
    (*lens)[0] = len;
    return SD_OK;
}
int sd_mpi_allgather_rows(void *rows, size_t row_bytes, int64_t n, sd_err *err) {
    return (void)rows, (void)row_bytes, (void)n, (void)err, SD_OK;
}

#endif
