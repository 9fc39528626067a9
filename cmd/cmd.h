/* cmd.h - the serendip command line: flag parsing and one entry point per command.
 *
 * Commands are thin: they parse flags with fl_parse and call the library. Each returns the process
 * exit code: 0 success, 1 runtime error (bad data, I/O), 2 usage error. */
#ifndef SERENDIP_CMD_H
#define SERENDIP_CMD_H

#include "serendip/base.h"

typedef enum { FL_STR, FL_INT, FL_I64, FL_FLOAT, FL_BOOL } fl_type;

typedef struct {
    const char *name; /* without the leading "--" */
    fl_type type;
    void *ptr;        /* const char **, int *, int64_t *, float *, int * (bool) */
    const char *help; /* one line; the default is printed from *ptr */
} fl_spec;

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

/* Commands. Declared weak so that the command links while a module is being written; every
 * command listed here must exist in a release (tests/test_cli.sh checks `--help` of each). */
#define SD_CMD(name) int name(int argc, char **argv) __attribute__((weak))
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
SD_CMD(cmd_train);
SD_CMD(cmd_plan);
SD_CMD(cmd_plan_merge);
SD_CMD(cmd_explore);
SD_CMD(cmd_eval);
SD_CMD(cmd_report);
SD_CMD(cmd_serve);

#endif
