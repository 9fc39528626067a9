/* mpi.h - the optional MPI layer (Open MPI): the plan, eval and fine-tuning across processes and
 * machines (`--mpi`, docs/scale.md).
 *
 * Why a wrapper of our own around a library: the rest of serendip must build and run without MPI
 * (the Makefile defines SERENDIP_MPI only when mpicc is present), so every MPI call lives here,
 * behind functions that are no-ops on one process; and the few collectives serendip needs carry
 * its conventions (sd_err with the failing rank named, counts beyond INT_MAX in chunks).
 *
 * Model: every rank runs the same command on the same inputs (a path every rank can read). Work is
 * split by index ranges (sd_mpi_range); a rank that fails reports through sd_mpi_agree, so that
 * all ranks stop together with the failing rank's message; rank 0 alone writes outputs. Until
 * sd_mpi_init succeeds, rank is 0 and size 1 and every collective is the identity. */
#ifndef SERENDIP_MPI_H
#define SERENDIP_MPI_H

#include "serendip/base.h"

/* 1 when built with MPI (SERENDIP_MPI), else 0. */
int sd_mpi_built(void);
/* Initialises MPI (once; MPI_Finalize is registered with atexit). Without MPI in the build: fails
 * with SD_ERR_USAGE and a message saying how to build with it. */
int sd_mpi_init(sd_err *err);
/* 1 after a successful sd_mpi_init. */
int sd_mpi_active(void);
int sd_mpi_rank(void); /* 0 when not active */
int sd_mpi_size(void); /* 1 when not active */

/* Collective agreement: every rank passes its status rc (and err when rc != 0). Returns SD_OK when
 * every rank passed SD_OK; otherwise, on every rank, the code of the lowest failing rank with err
 * set to "rank R of N failed: <that rank's message>". Identity when not active. */
int sd_mpi_agree(int rc, sd_err *err);

/* In-place sums over all ranks (MPI_Allreduce, MPI_SUM); n may exceed INT_MAX. */
int sd_mpi_sum_f32(float *x, size_t n, sd_err *err);
int sd_mpi_sum_f64(double *x, size_t n, sd_err *err);
int sd_mpi_sum_i64(int64_t *x, size_t n, sd_err *err);
/* In-place maximum over all ranks. */
int sd_mpi_max_f64(double *x, size_t n, sd_err *err);

/* Gathers each rank's byte block to rank 0: on rank 0, bufs[r] (malloc'd, caller frees each and
 * the array) and lens[r] for r in 0..size-1 (bufs[0] a copy of buf); on other ranks *bufs and
 * *lens are NULL. Blocks may exceed INT_MAX bytes. */
int sd_mpi_gather_bytes(const void *buf, size_t len, void ***bufs, size_t **lens, sd_err *err);

/* Every rank owns rows [sd_mpi_range(n, r)) of a (n, row_bytes) array; after the call every rank
 * holds all rows (MPI_Allgatherv in row blocks). */
int sd_mpi_allgather_rows(void *rows, size_t row_bytes, int64_t n, sd_err *err);

/* This rank's share [*begin, *end) of n items cut evenly (rank r of size: n*r/size .. n*(r+1)/size). */
void sd_mpi_range(int64_t n, int64_t *begin, int64_t *end);

/* Test hook, used by tests/test_mpi.sh only: when SERENDIP_MPI_TEST_KILL_RANK equals this rank and
 * SERENDIP_MPI_TEST_KILL_AT equals `where` (or is unset), the process kills itself with SIGKILL
 * (a crashed rank). No effect when not active. */
void sd_mpi_test_fault(const char *where);

/* Test hook, used by tests/test_mpi.sh only: when SERENDIP_MPI_TEST_WS is "R:PATH" and R is this
 * rank, returns PATH (that rank then reads another workspace: a bad model file on one machine);
 * otherwise ws. */
const char *sd_mpi_test_ws(const char *ws);

#endif
