/* serendip.c - main: dispatches `serendip <command> [flags]` to the command functions. */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command commands[] = {
    {"world", cmd_world, "generate the embedded synthetic world into a workspace"},
    {"ingest", cmd_ingest, "read MovieLens (any layout) or a generic CSV log into a workspace"},
    {"split", cmd_split, "global temporal split into train / valid / test windows"},
    {"cluster", cmd_cluster, "item embeddings, two-level k-means taxonomy, cluster descriptions"},
    {"journeys", cmd_journeys, "cluster journeys, transitions and collective feedback"},
    {"info", cmd_info, "summary of a workspace (--json for machines)"},
    {"train", cmd_train, "pretrain the base LM and fine-tune the novelty and alignment models"},
    {"rl", cmd_rl, "RL fine-tuning of the novelty model against the alignment reward (the rejected alternative)"},
    {"plan", cmd_plan, "best-of-n explore table over every context"},
    {"plan-merge", cmd_plan_merge, "join sharded plan slices into one explore table"},
    {"explore", cmd_explore, "novel clusters (and items) for a user or a context"},
    {"eval", cmd_eval, "offline evaluation of every arm on the test window"},
    {"report", cmd_report, "write report.html from metrics.json (evaluating first when needed)"},
    {"serve", cmd_serve, "HTTP API over the explore table"},
    {"abtest", cmd_abtest, "simulated live A/B experiment on the synthetic world, with table refreshes"},
};

static const command lm_commands[] = {
    {"pretrain", cmd_lm_pretrain, "train a BPE tokenizer and a Llama model on text, write GGUF"},
    {"sft", cmd_lm_sft, "supervised fine-tuning on prompt/answer JSONL (loss on answers only)"},
    {"generate", cmd_lm_generate, "sample continuations of prompts (batched, best-of-n ready)"},
    {"score", cmd_lm_score, "log-probabilities of continuations after prompts"},
    {"info", cmd_lm_info, "describe a GGUF model file"},
    {"init", cmd_lm_init, "a random-weight model of given shapes (or a preset) with a GGUF file's vocabulary"},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void usage(FILE *f) {
    fprintf(f, "serendip - LLM-powered interest exploration for recommender systems\n\n"
               "usage: serendip <command> [flags]      (serendip <command> --help for its flags)\n\ncommands:\n");
    for (size_t i = 0; i < N_OF(commands); i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-12s %s\n", "lm", "language-model engine: lm pretrain | sft | generate | score | info");
}

static int dispatch(const command *cs, size_t n, const char *group, int argc, char **argv) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[0], cs[i].name)) continue;
        char name[64];
        if (*group) { /* "lm generate", so that usage errors name the command as typed */
            snprintf(name, sizeof name, "%s %s", group, argv[0]);
            argv[0] = name;
        }
        return cs[i].fn(argc, argv);
    }
    fprintf(stderr, "serendip: unknown command '%s%s%s' (run 'serendip --help')\n", group, *group ? " " : "", argv[0]);
    return 2;
}

/* OpenMP threads spin while they wait by default, which on a shared or oversubscribed machine
 * burns the cores other threads (OpenBLAS, other processes) need: measured on 2 cores under load,
 * batched inference fell from ~28k to ~1k tokens/s. libgomp reads OMP_WAIT_POLICY only at start-up,
 * so main re-executes itself once with "passive" unless the user chose a policy. */
static void prefer_passive_wait(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv); /* returns only on failure: then run as we are */
}

int main(int argc, char **argv) {
    prefer_passive_wait(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "lm")) {
        if (argc < 3 || !strcmp(argv[2], "--help")) {
            fprintf(argc < 3 ? stderr : stdout, "usage: serendip lm <command> [flags]\n\ncommands:\n");
            for (size_t i = 0; i < N_OF(lm_commands); i++)
                fprintf(argc < 3 ? stderr : stdout, "  %-10s %s\n", lm_commands[i].name, lm_commands[i].summary);
            return argc < 3 ? 2 : 0;
        }
        return cmd_mpi_finish(dispatch(lm_commands, N_OF(lm_commands), "lm", argc - 2, argv + 2));
    }
    return cmd_mpi_finish(dispatch(commands, N_OF(commands), "", argc - 1, argv + 1));
}
