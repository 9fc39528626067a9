/* cmd.h - the serendip command line: flag parsing and one entry point per command.
 *
 * Commands are thin: they parse flags with fl_parse and call the library. Each returns the process
 * exit code: 0 success, 1 runtime error (bad data, I/O), 2 usage error. */
#ifndef SERENDIP_CMD_H
#define SERENDIP_CMD_H

#include "serendip/base.h"
#include "serendip/lm.h"
#include "serendip/stage.h"

/* The flag table is the library's option table (stage.h): a pipeline stage's flags are declared
 * once there (sd_<stage>_opts) and read by both the command and serendip_run. */
typedef sd_opt_type fl_type;
typedef sd_opt fl_spec;
#define FL_STR SD_OPT_STR
#define FL_INT SD_OPT_INT
#define FL_I64 SD_OPT_I64
#define FL_FLOAT SD_OPT_FLOAT
#define FL_BOOL SD_OPT_BOOL

/* Parses argv (argv[0] is the command name) against specs (terminated by {0}). Accepts
 * "--name value" and "--name=value"; bools take no value. Prints usage on --help.
 * Returns 0 on success, FL_HELP when help was printed (exit 0), or 2 after printing a usage error.
 * Positional arguments are refused unless pos/npos are given (then collected there). */
#define FL_HELP (-1)
int fl_parse(const char *usage, const char *summary, fl_spec *specs, int argc, char **argv);

/* Prints "serendip: error: <msg>" (plus a hint for SD_ERR_STATE) and returns the exit code for
 * err->code (2 for SD_ERR_USAGE, else 1). */
int cmd_fail(const sd_err *err);
/* Prints a usage error and returns 2. */
int cmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Checks, before any work, that the folder of output file path exists and is writable; returns 0
 * or prints an error naming the folder and returns 1. */
int cmd_check_out(const char *path);
/* Checks that --ws was given; returns 0 or prints a usage error and returns 2. */
int cmd_need_ws(const char *cmd, const char *ws);
/* Parses argv (argv[0] the command) of pipeline stage t: --ws (ws_help; required) first, then the
 * stage's table (n entries from sd_<stage>_opts), then the command's own flags (extra, terminated
 * by {0}: --json, --mpi, --show). Returns 0, FL_HELP (help printed), or the exit code of a usage error. */
int cmd_stage_parse(const sd_stage_text *t, const char **ws, const char *ws_help, const fl_spec *stage, int n,
                    const fl_spec *extra, int argc, char **argv);
/* A stage's check failed with err (stage.h, flags named "--flag"): a usage error (2) for
 * SD_ERR_USAGE, as cmd_usage_error, else cmd_fail. */
int cmd_stage_fail(const char *cmd, const sd_err *err);

/* Checks, before any work, that `bytes` (a lower bound of what the command is about to allocate)
 * fits in this machine's physical memory; returns 0, or prints a usage error naming `flags` (the
 * flags that size it) and returns 2. A flag that sizes memory is refused here, not by an
 * out-of-memory abort after earlier stages rewrote their files. */
int cmd_check_memory(const char *cmd, double bytes, const char *flags);
/* Lower bound in bytes of training a model of config c with vocabulary `vocab` (0: c's) on
 * micro-batches of `batch` rows of c->seq_len tokens: weights, gradients and two Adam moments
 * (16 bytes a parameter) plus one micro-batch's logits. Computed in double: no overflow. */
double cmd_train_bytes(const lm_config *c, int vocab, int batch);
/* Lower bound in bytes of batched inference with `rows` rows of up to `seq` positions: the
 * weights, the KV cache (rows x seq x layers x kv_dim x 2) and the logits (rows x vocab). */
double cmd_infer_bytes(const lm_config *c, int rows, int seq);

/* --mpi (cmd_mpi.c): with mpi set, initialises MPI; returns 0, or prints why it cannot (built
 * without MPI: a usage error, 2) and returns the exit code. */
int cmd_mpi_start(const char *cmd, int mpi);
/* 1 on MPI ranks other than 0: they print no results (rank 0 prints them once). */
int cmd_mpi_quiet(void);
/* The exit code rc of a command; a failed rank of a multi-rank --mpi run ends the whole job
 * (MPI_Abort) instead of waiting in MPI_Finalize for ranks that wait for it. */
int cmd_mpi_finish(int rc);

/* Commands (tests/test_cli.sh checks `--help` of each). */
#define SD_CMD(name) int name(int argc, char **argv)
SD_CMD(cmd_world);
SD_CMD(cmd_ingest);
SD_CMD(cmd_split);
SD_CMD(cmd_cluster);
SD_CMD(cmd_journeys);
SD_CMD(cmd_info);
SD_CMD(cmd_lm_pretrain);
SD_CMD(cmd_lm_sft);
SD_CMD(cmd_lm_generate);
SD_CMD(cmd_lm_score);
SD_CMD(cmd_lm_info);
SD_CMD(cmd_lm_init);
SD_CMD(cmd_train);
SD_CMD(cmd_plan);
SD_CMD(cmd_plan_merge);
SD_CMD(cmd_rl);
SD_CMD(cmd_explore);
SD_CMD(cmd_eval);
SD_CMD(cmd_report);
SD_CMD(cmd_serve);
SD_CMD(cmd_abtest);

#endif
