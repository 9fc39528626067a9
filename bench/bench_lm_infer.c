/* bench_lm_infer.c - throughput of the batched KV-cache inference on the best-of-n workload.
 *
 * Run: make BUILD=build build/bench/bench_lm_infer && build/bench/bench_lm_infer [flags]
 *      (bench/lm_infer_vs_llamacpp.sh runs it beside llama.cpp on the same GGUF and prints ratios)
 *
 *   --model F.gguf       use this model (default: a random-init ~1M-parameter model + a BPE
 *                        tokenizer trained on synthetic text, built in-process)
 *   --save-model F.gguf  write that default model as GGUF (for llama.cpp to load)
 *   --prompts N --samples N --new N --prompt-len N   workload (default 64 x 16 x 12, prompts of 20)
 *   --single N           tokens of the single-sequence decode (default 128)
 *   --rows N             rows per batched forward (default 1024)
 *   --reps N             repetitions; the median is reported (default 3)
 *   --quant 1            keep --model's F16/quantized matrices encoded in memory (lm_gguf_load_quant)
 *
 * Prompt token ids are the formula (p * 31 + t * 17 + 5) % 256 (byte tokens, valid in every
 * serendip vocabulary), shared with tests/llamacpp_driver.c. No stop token: every sample makes
 * exactly --new tokens, so the token counts of both engines are equal. Prints one line per
 * measure in "key value" form (machine-readable) and a summary. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "serendip/gguf.h"
#include "serendip/lm_infer.h"
#include "serendip/tokenizer.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                snprintf(out, cap, "%s", c + 2);
                out[strcspn(out, "\n")] = 0;
            }
            break;
        }
    fclose(f);
}

/* The default bench model: vocab 1024 BPE, dim 128, 4 layers, 4 heads / 2 kv heads, hidden 352. */
static int make_model(lm_model *m, lm_tokenizer **tok, sd_err *err) {
    sd_rng r;
    sd_rng_seed(&r, 1);
    const char *words[] = {"drama", "comedy", "space", "war", "romance", "crime", "noir", "animation", "family",
                           "horror", "musical", "western", "documentary", "thriller", "heist", "robots"};
    size_t cap = 400000, len = 0;
    char *text = sd_malloc(cap);
    while (len + 64 < cap) {
        const char *w = words[sd_rng_below(&r, 16)];
        len += (size_t)snprintf(text + len, cap - len, "%s%s", w, sd_rng_below(&r, 8) ? " " : "\n");
    }
    int rc = tok_train(text, len, 1024, tok, err);
    free(text);
    if (rc) return rc;
    lm_config c = {.dim = 128, .n_layers = 4, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 352,
                   .vocab_size = tok_vocab_size(*tok), .seq_len = 256, .tied = 1, .norm_eps = 1e-5f,
                   .rope_theta = 10000.0f};
    return lm_model_init(m, &c, 42, err);
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *save = NULL;
    int n_prompts = 64, n_samples = 16, n_new = 12, plen = 20, single = 128, rows = 1024, reps = 3, quant = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_lm_infer: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--save-model")) save = v;
        else if (!strcmp(a, "--prompts")) n_prompts = atoi(v);
        else if (!strcmp(a, "--samples")) n_samples = atoi(v);
        else if (!strcmp(a, "--new")) n_new = atoi(v);
        else if (!strcmp(a, "--prompt-len")) plen = atoi(v);
        else if (!strcmp(a, "--single")) single = atoi(v);
        else if (!strcmp(a, "--rows")) rows = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--quant")) quant = atoi(v);
        else {
            fprintf(stderr, "bench_lm_infer: unknown flag %s\n", a);
            return 2;
        }
    }
    if (reps < 1 || reps > 99) reps = 3;
    sd_err err = {0};
    lm_model m;
    lm_tokenizer *tok = NULL;
    int rc = model_path ? (quant ? lm_gguf_load_quant : lm_gguf_load)(model_path, &m, &tok, &err) : make_model(&m, &tok, &err);
    if (rc) {
        fprintf(stderr, "bench_lm_infer: %s\n", err.msg);
        return 1;
    }
    if (save && lm_gguf_save(save, &m, tok, "serendip-bench", &err)) {
        fprintf(stderr, "bench_lm_infer: %s\n", err.msg);
        return 1;
    }
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    printf("cpu %s\nthreads %d\nparams %zu\n", cpu, sd_num_threads(), lm_param_count(&m.cfg));
    printf("config dim=%d layers=%d heads=%d kv_heads=%d hidden=%d vocab=%d\n", m.cfg.dim, m.cfg.n_layers,
           m.cfg.n_heads, m.cfg.n_kv_heads, m.cfg.hidden_dim, m.cfg.vocab_size);

    /* best-of-n */
    int32_t **pr = malloc(sizeof(int32_t *) * n_prompts);
    int *pl = malloc(sizeof(int) * n_prompts);
    for (int p = 0; p < n_prompts; p++) {
        pr[p] = malloc(sizeof(int32_t) * plen);
        pl[p] = plen;
        for (int t = 0; t < plen; t++) pr[p][t] = (p * 31 + t * 17 + 5) % 256;
    }
    lm_sampler s = {.temperature = 0.8f, .top_k = 40, .top_p = 1.0f, .seed = 7};
    lm_infer *inf = lm_infer_new(&m, rows, plen + (n_new > single ? n_new : single), &err);
    if (!inf) {
        fprintf(stderr, "bench_lm_infer: %s\n", err.msg);
        return 1;
    }
    double t_bon[99], t_single[99], c_bon[99];
    {
        /* warm-up, untimed: first touch of the caches and buffers (llama.cpp pays the same when it
         * creates its context, outside its timed region) */
        lm_gen_out out;
        lm_generate(inf, (const int32_t *const *)pr, pl, n_prompts, n_samples, &s, n_new, -1, &out, &err);
        lm_gen_out_free(&out);
        lm_generate(inf, (const int32_t *const *)pr, pl, 1, 1, &s, single, -1, &out, &err);
        lm_gen_out_free(&out);
    }
    for (int k = 0; k < reps; k++) {
        lm_gen_out out;
        double t0 = sd_now(), c0 = cpu_now();
        if (lm_generate(inf, (const int32_t *const *)pr, pl, n_prompts, n_samples, &s, n_new, -1, &out, &err)) {
            fprintf(stderr, "bench_lm_infer: %s\n", err.msg);
            return 1;
        }
        t_bon[k] = sd_now() - t0;
        c_bon[k] = cpu_now() - c0;
        lm_gen_out_free(&out);
    }
    double gen_tokens = (double)n_prompts * n_samples * n_new;
    double tb = median(t_bon, reps);
    printf("bestofn_workload %dx%dx%d prompt_len=%d\n", n_prompts, n_samples, n_new, plen);
    printf("bestofn_seconds %.4f\n", tb);
    printf("bestofn_tokens_per_s %.1f\n", gen_tokens / tb);
    printf("bestofn_tokens_per_cpu_s %.1f\n", gen_tokens / median(c_bon, reps));

    /* single-sequence decode: 1 prompt, 1 sample, `single` new tokens; the prefill of the 20-token
     * prompt is included (it is a small part) */
    for (int k = 0; k < reps; k++) {
        lm_gen_out out;
        double t0 = sd_now();
        lm_generate(inf, (const int32_t *const *)pr, pl, 1, 1, &s, single, -1, &out, &err);
        t_single[k] = sd_now() - t0;
        lm_gen_out_free(&out);
    }
    double ts = median(t_single, reps);
    printf("single_tokens %d\nsingle_seconds %.4f\nsingle_tokens_per_s %.1f\n", single, ts, single / ts);
    /* constrained best-of-n: 100 allowed strings of 3..8 tokens (the planner's workload shape) */
    {
        enum { NS = 100 };
        int32_t seqs[NS][8];
        int lens[NS];
        const int32_t *ptr[NS];
        sd_rng r;
        sd_rng_seed(&r, 11);
        int32_t end = tok_eos(tok) >= 0 ? tok_eos(tok) : m.cfg.vocab_size - 1;
        for (int i = 0; i < NS; i++) {
            lens[i] = 3 + (int)sd_rng_below(&r, 6);
            for (int j = 0; j < lens[i]; j++) {
                do seqs[i][j] = (int32_t)sd_rng_below(&r, (uint32_t)m.cfg.vocab_size);
                while (seqs[i][j] == end);
            }
            ptr[i] = seqs[i];
        }
        lm_trie *trie = lm_trie_new(ptr, lens, NS, end, m.cfg.vocab_size, &err);
        if (!trie) {
            fprintf(stderr, "bench_lm_infer: %s\n", err.msg);
            return 1;
        }
        int total = n_prompts * n_samples;
        int *choice = malloc(sizeof(int) * total);
        float *lp = malloc(sizeof(float) * total), *all = malloc(sizeof(float) * n_prompts * NS);
        double tc[99], tl[99];
        for (int k = 0; k < reps; k++) {
            double t0 = sd_now();
            lm_generate_constrained(inf, (const int32_t *const *)pr, pl, n_prompts, n_samples, &s, trie, choice, lp, NULL,
                                    &err);
            tc[k] = sd_now() - t0;
            t0 = sd_now();
            lm_trie_logprobs(inf, (const int32_t *const *)pr, pl, n_prompts, trie, all, &err);
            tl[k] = sd_now() - t0;
        }
        double mc = median(tc, reps), ml = median(tl, reps);
        printf("constrained_strings %d trie_nodes %d\n", NS, lm_trie_n_nodes(trie));
        printf("constrained_prompts_per_s %.1f\n", n_prompts / mc);
        printf("trie_logprobs_prompts_per_s %.1f\n", n_prompts / ml);
        printf("constrained_seconds %.4f\ntrie_logprobs_seconds %.4f\n", mc, ml);
        free(choice);
        free(lp);
        free(all);
        lm_trie_free(trie);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak_rss_mib %.1f\n", ru.ru_maxrss / 1024.0);
    lm_infer_free(inf);
    for (int p = 0; p < n_prompts; p++) free(pr[p]);
    free(pr);
    free(pl);
    tok_free(tok);
    lm_model_free(&m);
    return 0;
}
