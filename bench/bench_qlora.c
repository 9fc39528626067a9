/* bench_qlora.c - LoRA fine-tuning throughput over a base kept in its file encoding (QLoRA).
 *
 * Run: make BUILD=build build/bench/bench_qlora && build/bench/bench_qlora MODEL.gguf [batch] [seq] [steps] [rank]
 *      (default 4 x 64 tokens, 3 steps after one untimed, rank 16; bench/lm_real_size.sh runs it)
 *
 * Loads MODEL with lm_gguf_load_quant (F16 or quantized matrices stay encoded), trains rank-r
 * adapters on random tokens (every position counts), and prints "key value" lines: training
 * tokens/s (median step), the model's bytes in memory and the peak RSS. Exits 1 on any error or
 * a non-finite loss. */
#include "serendip/gguf.h"
#include "serendip/lm_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_qlora MODEL.gguf [batch] [seq] [steps] [rank]\n");
        return 2;
    }
    int B = argc > 2 ? atoi(argv[2]) : 4, T = argc > 3 ? atoi(argv[3]) : 64, steps = argc > 4 ? atoi(argv[4]) : 3;
    int rank = argc > 5 ? atoi(argv[5]) : 16;
    if (steps < 1 || steps > 99) steps = 3;
    sd_err err = {0};
    lm_model m;
    if (lm_gguf_load_quant(argv[1], &m, NULL, &err)) {
        fprintf(stderr, "bench_qlora: %s\n", err.msg);
        return 1;
    }
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = B, o.seq_len = T, o.steps = steps + 1, o.lora_rank = rank, o.warmup = 1;
    lm_trainer *t;
    if (lm_trainer_new(&t, &m, &o, &err)) {
        fprintf(stderr, "bench_qlora: %s\n", err.msg);
        return 1;
    }
    int32_t *tok = malloc(sizeof(int32_t) * B * (T + 1));
    uint8_t *mask = malloc((size_t)B * T);
    sd_rng r;
    sd_rng_seed(&r, 3);
    double times[99];
    float loss = 0;
    for (int s = 0; s <= steps; s++) { /* step 0 untimed: first touch of every buffer */
        for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)sd_rng_below(&r, (uint32_t)m.cfg.vocab_size);
        memset(mask, 1, (size_t)B * T);
        double t0 = sd_now();
        if (lm_trainer_step(t, tok, mask, &loss, &err) || !isfinite(loss)) {
            fprintf(stderr, "bench_qlora: step %d: %s (loss %g)\n", s, err.msg, (double)loss);
            return 1;
        }
        if (s) times[s - 1] = sd_now() - t0;
    }
    qsort(times, steps, sizeof *times, cmp_d);
    double med = times[steps / 2];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("qlora_base_encoded %d\nqlora_rank %d\nqlora_batch %d\nqlora_seq %d\n", m.qm != NULL, rank, B, T);
    printf("qlora_step_seconds %.3f\nqlora_tokens_per_s %.1f\n", med, B * T / med);
    printf("qlora_model_mib %.1f\nqlora_adapter_params %zu\nqlora_peak_rss_mib %.1f\n",
           ((double)m.qbytes + m.n_params * 4.0) / 1048576, t->n_train, ru.ru_maxrss / 1024.0);
    lm_trainer_free(t);
    lm_model_free(&m);
    free(tok), free(mask);
    return 0;
}
