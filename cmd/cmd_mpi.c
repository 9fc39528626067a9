/* cmd_mpi.c - `--mpi` for the commands that run on MPI (plan, eval, train, lm sft): starting MPI
 * and keeping output to rank 0 (see mpi.h and docs/scale.md). */
#include "cmd.h"
#include "serendip/mpi.h"

int cmd_mpi_start(const char *cmd, int mpi) {
    if (!mpi) return 0;
    sd_err err = {0};
    if (sd_mpi_init(&err)) return err.code == SD_ERR_USAGE ? cmd_usage_error(cmd, "%s", err.msg) : cmd_fail(&err);
    return 0;
}

int cmd_mpi_quiet(void) { return sd_mpi_rank() != 0; }

#ifdef SERENDIP_MPI
#include <mpi.h>
#endif

int cmd_mpi_finish(int rc) {
#ifdef SERENDIP_MPI
    /* A rank that fails alone must not reach MPI_Finalize: Open MPI's finalize waits for every
     * rank, and the others may be waiting in a collective for this one. MPI_Abort ends them all. */
    if (rc && sd_mpi_active() && sd_mpi_size() > 1) {
        fprintf(stderr, "serendip: rank %d of %d failed (exit code %d): stopping every rank\n", sd_mpi_rank(), sd_mpi_size(), rc);
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
#endif
    return rc;
}
