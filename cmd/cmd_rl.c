/* cmd_rl.c - `serendip rl`: RL fine-tuning of the novelty model against the alignment reward, the
 * alternative the paper rejected (the work is rl_train in src/plan/rl.c). */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "serendip/rl.h"

int cmd_rl(int argc, char **argv) {
    const char *ws = NULL, *reward = "raw";
    rl_opts o;
    rl_opts_default(&o);
    int seed = (int)o.seed, no_std = 0, json = 0;
    float max_s = 0;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder (needs taxonomy, journeys, models/novelty.gguf and align.gguf)"},
        {"reward", FL_STR, &reward, "raw (the alignment score of any text, as the paper) or guarded (0 unless a valid novel description)"},
        {"steps", FL_INT, &o.steps, "optimizer steps"},
        {"max-seconds", FL_FLOAT, &max_s, "also stop after this many seconds (0 = no limit)"},
        {"contexts", FL_INT, &o.contexts, "contexts per step"},
        {"group", FL_INT, &o.group, "completions sampled per context (advantages are relative to the group)"},
        {"lr", FL_FLOAT, &o.lr, "learning rate (constant after a 10-step warm-up)"},
        {"beta", FL_FLOAT, &o.beta, "weight of the KL penalty to the SFT novelty model (0 = none)"},
        {"no-std", FL_BOOL, &no_std, "advantages are reward minus the group mean, not divided by its std"},
        {"every", FL_INT, &o.every, "record the metrics every k steps"},
        {"eval-contexts", FL_INT, &o.eval_contexts, "fixed contexts of the records"},
        {"eval-samples", FL_INT, &o.eval_samples, "samples per fixed context"},
        {"out", FL_STR, &o.out, "model file under ws/models (default rl.gguf, or rl_guarded.gguf)"},
        {"seed", FL_INT, &seed, "random seed"},
        {"json", FL_BOOL, &json, "print the records as JSON lines"},
        {0},
    };
    int rc = fl_parse("rl --ws DIR [--reward raw|guarded] [flags]",
                      "Policy-gradient fine-tuning (group-relative advantages, KL penalty) of the novelty model against\n"
                      "the alignment model's expected score; records compliance, reward, KL, distinct share and novelty\n"
                      "in ws/models/rl.json. Plan with it: serendip plan --generator rl (or rl_guarded).",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    if (strcmp(reward, "raw") && strcmp(reward, "guarded"))
        return cmd_usage_error(argv[0], "--reward '%s' must be raw or guarded", reward);
    o.guarded = !strcmp(reward, "guarded");
    o.std_norm = !no_std;
    o.max_seconds = max_s;
    o.seed = (uint64_t)seed;
    rl_report rep;
    sd_err err = {0};
    if (rl_train(ws, &o, &rep, &err)) return cmd_fail(&err);
    if (!json) printf("%6s %8s %8s %8s %11s %9s %8s %11s\n", "step", "seconds", "reward", "kl", "compliance", "distinct",
                      "novelty", "eval_score");
    for (int i = 0; i < rep.n_rec; i++) {
        const rl_record *r = &rep.rec[i];
        if (json)
            printf("{\"step\": %d, \"seconds\": %.1f, \"reward\": %.4f, \"kl\": %.5f, \"compliance\": %.4f, \"distinct\": %.4f, "
                   "\"novelty\": %.4f, \"eval_reward\": %.4f}\n",
                   r->step, r->seconds, r->reward, r->kl, r->compliance, r->distinct, r->novelty, r->eval_reward);
        else
            printf("%6d %8.1f %8.3f %8.4f %10.1f%% %8.1f%% %7.1f%% %11.3f\n", r->step, r->seconds, r->reward, r->kl,
                   100 * r->compliance, 100 * r->distinct, 100 * r->novelty, r->eval_reward);
    }
    if (!json) printf("%d steps in %.1fs; model %s; records in %s/models/%s\n", rep.steps, rep.seconds, rep.model, ws, RL_JSON);
    rl_report_free(&rep);
    return 0;
}
