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
