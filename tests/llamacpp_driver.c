/* llamacpp_driver.c - the llama.cpp side of the interoperability check and of the inference bench.
 * Links llama.cpp's libllama only (never libserendip: ggml exports gguf_* symbols of its own).
 * Built by scripts/conformance-llamacpp.sh and bench/lm_infer_vs_llamacpp.sh, not by the Makefile.
 *
 *   llamacpp_driver check MODEL.gguf DUMP.txt [TOL]
 *       DUMP.txt is written by tests/lm_interop.c (serendip's tokens and logits for each case).
 *       For each case: llama_tokenize (no BOS, specials not parsed) must give serendip's tokens
 *       exactly; llama_decode of those tokens (F32 KV cache, no flash attention) must give logits
 *       within |a - b| <= LOGIT_TOL * (1 + |b|) of serendip's reference at every position, and the
 *       log-softmax of the last position within the same tolerance of serendip's fast path.
 *       Exits 1 on any mismatch. With LLAMACPP_ADAPTER=F.gguf in the environment, that LoRA adapter
 *       is applied (scale 1, so alpha/rank as the file says) and DUMP.txt holds the logits of
 *       serendip's merged model (base + adapters).
 *   llamacpp_driver dequant MODEL.gguf OUT.bin
 *       Every tensor of MODEL in file order, decoded to float32 by ggml's own to_float of its type
 *       (the reference dequantize_row_* of ggml-quants.c), appended to OUT.bin; compared with
 *       serendip's decoding (lm_interop dequant) by the conformance script, bit for bit.
 *   llamacpp_driver bench MODEL.gguf PROMPTS SAMPLES NEW PROMPT_LEN THREADS SINGLE REPS
 *       The best-of-n workload as llama.cpp does it best: per chunk of 256 sequences (llama.cpp's
 *       limit), the prompts are prefilled once into a unified KV cache with each prompt token
 *       tagged with all of its samples' sequence ids (shared cells, no copy), then all sequences
 *       decode together, one token each per llama_decode, sampled with top-k 40 / temperature 0.8
 *       (the same sampler as bench_lm_infer). Then single-sequence decode of SINGLE tokens.
 *       Prompt token ids: (p * 31 + t * 17 + 5) % 256, as in bench_lm_infer. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "llama.h"

/* ggml computes in float32 with its own reduction order, RoPE angles in float, and a float
 * softmax; serendip's reference accumulates in double. Logits here are O(1); the differences
 * observed are ~1e-6 (float rounding), so 1e-4 relative leaves a 100x margin while a wrong
 * convention (RoPE pairing, GQA mapping, norm epsilon, tied head) changes logits by 1e-1 or more. */
#define LOGIT_TOL 1e-4
/* The tolerance in force: LOGIT_TOL, or check's TOL argument for a quantized file (llama.cpp's CPU
 * kernels then quantize the activations too; scripts/conformance-llamacpp.sh states each value). */
static double tol = LOGIT_TOL;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool no_progress(float progress, void *user) {
    (void)progress;
    (void)user;
    return true;
}

static struct llama_model *load(const char *path) {
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.progress_callback = no_progress;
    struct llama_model *m = llama_model_load_from_file(path, mp);
    if (!m) fprintf(stderr, "llamacpp_driver: llama.cpp cannot load %s\n", path);
    return m;
}

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

/* ---------------------------------------------------------------- check */

static int check(const char *model_path, const char *dump_path) {
    struct llama_model *model = load(model_path);
    if (!model) return 1;
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int V = llama_vocab_n_tokens(vocab);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = cp.n_ubatch = 512;
    cp.n_seq_max = 1;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.n_threads = cp.n_threads_batch = 2;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llamacpp_driver: cannot create a context\n");
        return 1;
    }
    const char *adapter_path = getenv("LLAMACPP_ADAPTER");
    if (adapter_path && *adapter_path) {
        struct llama_adapter_lora *ad = llama_adapter_lora_init(model, adapter_path);
        float scale = 1.0f;
        if (!ad || llama_set_adapters_lora(ctx, &ad, 1, &scale)) {
            fprintf(stderr, "llamacpp_driver: llama.cpp cannot apply the adapter %s\n", adapter_path);
            return 1;
        }
        printf("llamacpp_driver: adapter %s applied\n", adapter_path);
    }
    FILE *f = fopen(dump_path, "r");
    if (!f) {
        fprintf(stderr, "llamacpp_driver: cannot open %s\n", dump_path);
        return 1;
    }
    static char line[1 << 20];
    int fail = 0, n_cases = 0;
    double worst = 0, worst_next = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "case ", 5)) continue;
        n_cases++;
        char text[4096];
        size_t tl = 0;
        for (char *p = line + 5; p[0] && p[0] != '\n' && p[1]; p += 2) text[tl++] = (char)(hexval(p[0]) * 16 + hexval(p[1]));
        text[tl] = 0;
        /* serendip's tokens */
        if (!fgets(line, sizeof line, f)) break;
        int n = 0, off = 0, k;
        sscanf(line, "tokens %d%n", &n, &off);
        llama_token *want = malloc(sizeof(llama_token) * (n + 1));
        char *p = line + off;
        for (int i = 0; i < n; i++) {
            sscanf(p, "%d%n", &want[i], &k);
            p += k;
        }
        llama_token got[4096];
        int ng = llama_tokenize(vocab, text, (int32_t)tl, got, 4096, false, false);
        int same = ng == n && !memcmp(got, want, sizeof(llama_token) * n);
        printf("case %d \"%s\": %d tokens, llama.cpp %s\n", n_cases, text, n, same ? "same tokens" : "DIFFERENT TOKENS");
        if (!same) {
            fail = 1;
            printf("  serendip:");
            for (int i = 0; i < n; i++) printf(" %d", want[i]);
            printf("\n  llama.cpp:");
            for (int i = 0; i < ng; i++) printf(" %d", got[i]);
            printf("\n");
        }
        /* logits of every position for serendip's tokens */
        if (!fgets(line, sizeof line, f)) break;
        int nl = 0, vv = 0;
        sscanf(line, "logits %d %d", &nl, &vv);
        if (vv != V || nl != n) {
            printf("  vocabulary %d vs llama.cpp %d: MISMATCH\n", vv, V);
            fail = 1;
            break;
        }
        llama_memory_clear(llama_get_memory(ctx), true);
        struct llama_batch b = llama_batch_init(n, 0, 1);
        for (int i = 0; i < n; i++) {
            b.token[i] = want[i];
            b.pos[i] = i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = 1;
        }
        b.n_tokens = n;
        if (llama_decode(ctx, b)) {
            printf("  llama_decode failed\n");
            fail = 1;
        }
        double case_worst = 0;
        for (int t = 0; t < n; t++) {
            if (!fgets(line, sizeof line, f)) break;
            const float *lg = llama_get_logits_ith(ctx, t);
            p = line;
            for (int v = 0; v < V; v++) {
                float ref = strtof(p, &p);
                double d = fabs(lg[v] - ref) / (1 + fabs(ref));
                if (d > case_worst) case_worst = d;
            }
        }
        /* next-token log-softmax of serendip's batched fast path vs llama.cpp's last logits */
        if (!fgets(line, sizeof line, f)) break;
        const float *last = llama_get_logits_ith(ctx, n - 1);
        double mx = -INFINITY, s = 0, nw = 0;
        for (int v = 0; v < V; v++) mx = last[v] > mx ? last[v] : mx;
        for (int v = 0; v < V; v++) s += exp(last[v] - mx);
        p = line + 4;
        for (int v = 0; v < V; v++) {
            float ref = strtof(p, &p);
            double lsm = last[v] - mx - log(s), d = fabs(lsm - ref) / (1 + fabs(ref));
            if (d > nw) nw = d;
        }
        printf("  logits max rel diff %.2e (reference forward), next-token log-softmax %.2e (batched path)%s\n",
               case_worst, nw, case_worst > tol || nw > tol ? "  MISMATCH" : "");
        if (case_worst > tol || nw > tol) fail = 1;
        if (case_worst > worst) worst = case_worst;
        if (nw > worst_next) worst_next = nw;
        llama_batch_free(b);
        free(want);
    }
    fclose(f);
    if (n_cases == 0) {
        printf("llamacpp_driver: no cases in %s\n", dump_path);
        fail = 1;
    }
    printf("llamacpp_driver: %d cases, worst logit diff %.2e, worst log-softmax diff %.2e (tolerance %.0e): %s\n",
           n_cases, worst, worst_next, tol, fail ? "FAIL" : "ok");
    llama_free(ctx);
    llama_model_free(model);
    return fail;
}

/* ---------------------------------------------------------------- bench */

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static struct llama_sampler *make_sampler(uint32_t seed) {
    struct llama_sampler *s = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(s, llama_sampler_init_top_k(40));
    llama_sampler_chain_add(s, llama_sampler_init_temp(0.8f));
    llama_sampler_chain_add(s, llama_sampler_init_dist(seed));
    return s;
}

#define MAX_SEQ_CHUNK 256 /* llama.cpp's LLAMA_MAX_SEQ */

static int bench(const char *model_path, int n_prompts, int n_samples, int n_new, int plen, int threads, int single,
                 int reps) {
    struct llama_model *model = load(model_path);
    if (!model) return 1;
    int spc = n_samples > MAX_SEQ_CHUNK ? 1 : MAX_SEQ_CHUNK / n_samples; /* prompts per chunk */
    if (n_samples > MAX_SEQ_CHUNK) {
        fprintf(stderr, "llamacpp_driver: samples > %d unsupported\n", MAX_SEQ_CHUNK);
        return 1;
    }
    int nseq = spc * n_samples;
    struct llama_context_params cp = llama_context_default_params();
    int n_ctx = spc * plen + nseq * n_new + 64;
    cp.n_ctx = (uint32_t)((n_ctx + 255) / 256 * 256);
    int nb = spc * plen > nseq ? spc * plen : nseq;
    cp.n_batch = cp.n_ubatch = (uint32_t)nb;
    cp.n_seq_max = (uint32_t)nseq;
    cp.kv_unified = true;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llamacpp_driver: cannot create a context (n_ctx %u, n_seq_max %d)\n", cp.n_ctx, nseq);
        return 1;
    }
    struct llama_sampler **smp = malloc(sizeof(*smp) * nseq);
    for (int i = 0; i < nseq; i++) smp[i] = make_sampler(1000 + i);
    struct llama_batch b = llama_batch_init(nb, 0, n_samples);
    int *last_idx = malloc(sizeof(int) * nseq);
    double *tb = malloc(sizeof(double) * reps), *ts = malloc(sizeof(double) * reps), *cb = malloc(sizeof(double) * reps);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up, untimed (as in bench_lm_infer) */
        double t0 = now(), c0 = cpu_now();
        for (int p0 = 0; p0 < n_prompts; p0 += spc) {
            int np = n_prompts - p0 < spc ? n_prompts - p0 : spc, ns = np * n_samples;
            llama_memory_clear(llama_get_memory(ctx), false);
            /* prefill: every prompt token belongs to all of its prompt's sample sequences */
            b.n_tokens = 0;
            for (int p = 0; p < np; p++)
                for (int t = 0; t < plen; t++) {
                    int i = b.n_tokens++;
                    b.token[i] = ((p0 + p) * 31 + t * 17 + 5) % 256;
                    b.pos[i] = t;
                    b.n_seq_id[i] = n_samples;
                    for (int s = 0; s < n_samples; s++) b.seq_id[i][s] = p * n_samples + s;
                    b.logits[i] = t == plen - 1;
                    if (t == plen - 1)
                        for (int s = 0; s < n_samples; s++) last_idx[p * n_samples + s] = i;
                }
            if (llama_decode(ctx, b)) {
                fprintf(stderr, "llamacpp_driver: prefill failed\n");
                return 1;
            }
            llama_token *tok = malloc(sizeof(llama_token) * ns);
            for (int q = 0; q < ns; q++) tok[q] = llama_sampler_sample(smp[q], ctx, last_idx[q]);
            for (int step = 1; step < n_new; step++) {
                b.n_tokens = 0;
                for (int q = 0; q < ns; q++) {
                    int i = b.n_tokens++;
                    b.token[i] = tok[q];
                    b.pos[i] = plen + step - 1;
                    b.n_seq_id[i] = 1;
                    b.seq_id[i][0] = q;
                    b.logits[i] = 1;
                }
                if (llama_decode(ctx, b)) {
                    fprintf(stderr, "llamacpp_driver: decode failed at step %d\n", step);
                    return 1;
                }
                for (int q = 0; q < ns; q++) tok[q] = llama_sampler_sample(smp[q], ctx, q);
            }
            free(tok);
        }
        if (r >= 0) tb[r] = now() - t0;
        if (r >= 0) cb[r] = cpu_now() - c0;

        /* single sequence */
        t0 = now();
        llama_memory_clear(llama_get_memory(ctx), false);
        b.n_tokens = 0;
        for (int t = 0; t < plen; t++) {
            int i = b.n_tokens++;
            b.token[i] = (t * 17 + 5) % 256;
            b.pos[i] = t;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = t == plen - 1;
        }
        llama_decode(ctx, b);
        llama_token tk = llama_sampler_sample(smp[0], ctx, plen - 1);
        for (int step = 1; step < single; step++) {
            b.n_tokens = 1;
            b.token[0] = tk;
            b.pos[0] = plen + step - 1;
            b.n_seq_id[0] = 1;
            b.seq_id[0][0] = 0;
            b.logits[0] = 1;
            if (llama_decode(ctx, b)) {
                fprintf(stderr, "llamacpp_driver: single decode failed\n");
                return 1;
            }
            tk = llama_sampler_sample(smp[0], ctx, 0);
        }
        if (r >= 0) ts[r] = now() - t0;
    }
    qsort(tb, reps, sizeof(double), cmp_d);
    qsort(ts, reps, sizeof(double), cmp_d);
    qsort(cb, reps, sizeof(double), cmp_d);
    double mb = tb[reps / 2], ms = ts[reps / 2];
    printf("llamacpp_threads %d\nllamacpp_seq_per_chunk %d\n", threads, nseq);
    printf("llamacpp_bestofn_seconds %.4f\nllamacpp_bestofn_tokens_per_s %.1f\n", mb,
           (double)n_prompts * n_samples * n_new / mb);
    printf("llamacpp_bestofn_tokens_per_cpu_s %.1f\n", (double)n_prompts * n_samples * n_new / cb[reps / 2]);
    printf("llamacpp_single_seconds %.4f\nllamacpp_single_tokens_per_s %.1f\n", ms, single / ms);
    for (int i = 0; i < nseq; i++) llama_sampler_free(smp[i]);
    free(smp);
    free(last_idx);
    free(tb);
    free(cb);
    free(ts);
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

static int dequant(const char *model_path, const char *out_path) {
    struct ggml_context *ctx = NULL;
    struct gguf_init_params gp = {.no_alloc = false, .ctx = &ctx};
    struct gguf_context *g = gguf_init_from_file(model_path, gp);
    if (!g) {
        fprintf(stderr, "llamacpp_driver: cannot read %s\n", model_path);
        return 1;
    }
    FILE *f = fopen(out_path, "wb");
    if (!f) return 1;
    int n = (int)gguf_get_n_tensors(g);
    for (int i = 0; i < n; i++) { /* file order (the context also holds the data blob) */
        struct ggml_tensor *t = ggml_get_tensor(ctx, gguf_get_tensor_name(g, i));
        int64_t ne = ggml_nelements(t);
        float *y = malloc(sizeof(float) * (size_t)ne);
        if (t->type == GGML_TYPE_F32) memcpy(y, t->data, sizeof(float) * (size_t)ne);
        else {
            const struct ggml_type_traits *tr = ggml_get_type_traits(t->type);
            if (!tr->to_float) {
                fprintf(stderr, "llamacpp_driver: no to_float for %s\n", t->name);
                return 1;
            }
            tr->to_float(t->data, y, ne);
        }
        fwrite(y, sizeof(float), (size_t)ne, f);
        free(y);
    }
    fclose(f);
    printf("llamacpp_driver: %d tensors decoded by ggml\n", n);
    gguf_free(g);
    ggml_free(ctx);
    return 0;
}

int main(int argc, char **argv) {
    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    int rc = 2;
    if (argc == 4 && !strcmp(argv[1], "dequant")) return dequant(argv[2], argv[3]);
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "check")) {
        if (argc == 5) tol = atof(argv[4]);
        rc = check(argv[2], argv[3]);
    }
    else if (argc == 10 && !strcmp(argv[1], "bench"))
        rc = bench(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]), atoi(argv[8]),
                   atoi(argv[9]));
    else
        fprintf(stderr, "usage: llamacpp_driver check MODEL.gguf DUMP.txt\n"
                        "       llamacpp_driver bench MODEL.gguf PROMPTS SAMPLES NEW PROMPT_LEN THREADS SINGLE REPS\n");
    llama_backend_free();
    return rc;
}
