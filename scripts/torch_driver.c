/* torch_driver.c - dumps serendip's training numbers for scripts/torch_reference.py.
 *
 * Built and run by scripts/conformance-torch.sh:  torch_driver OUTDIR TIED LORA
 * Writes into OUTDIR (little-endian raw arrays):
 *   config.json    model config, B, T, optimizer options, steps
 *   params.bin     float32 model parameter block (lm.h order) before training
 *   lora.bin       float32 LoRA block (lm_train.h order), when LORA > 0
 *   tokens.bin     int32 (B, T+1);  mask.bin  uint8 (B, T)
 *   logits.bin     float32 (B, T, V) raw logits;  loss.txt  mean masked loss
 *   grads.bin      float32 gradient of the trainable block (params or LoRA)
 *   losses.bin     float32 (steps) losses of `steps` AdamW steps on the same batch
 *   final.bin      float32 trainable block after those steps */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/lm_train.h"

static void dump(const char *dir, const char *name, const void *p, size_t n) {
    char *path = sd_path_join(dir, name);
    sd_err err = {0};
    if (sd_write_file_atomic(path, p, n, &err)) fprintf(stderr, "%s\n", err.msg), exit(1);
    free(path);
}

int main(int argc, char **argv) {
    if (argc != 4) return fprintf(stderr, "usage: torch_driver OUTDIR TIED LORA_RANK\n"), 2;
    const char *dir = argv[1];
    int tied = atoi(argv[2]), lora = atoi(argv[3]);
    lm_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 48, .vocab_size = 50,
                   .seq_len = 16, .tied = tied, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    sd_err err = {0};
    lm_model m;
    if (lm_model_init(&m, &c, 42, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    sd_rng r;
    sd_rng_seed(&r, 7);
    /* move away from the init's special values (gains 1, tiny weights) so every term matters */
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += (float)(sd_rng_normal(&r) * 0.05);
    lm_train_opts o;
    lm_train_opts_default(&o);
    o.batch = 3;
    o.seq_len = 16;
    o.steps = 6;
    o.warmup = 2;
    o.lr = 1e-2f;
    o.min_lr = 1e-3f;
    o.weight_decay = 0.1f;
    o.clip = 0.5f; /* low enough to be active */
    o.lora_rank = lora;
    o.lora_alpha = 8;
    o.threads = 1;
    lm_trainer *t;
    if (lm_trainer_new(&t, &m, &o, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    if (lora) /* B starts at 0; randomise so that A's gradient is not trivially 0 */
        for (size_t i = 0; i < t->n_train; i++) t->train[i] = (float)(sd_rng_normal(&r) * 0.1);
    int B = o.batch, T = o.seq_len, V = c.vocab_size;
    int32_t tok[3 * 17];
    uint8_t mask[3 * 16];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)sd_rng_below(&r, V);
    for (int i = 0; i < B * T; i++) mask[i] = sd_rng_below(&r, 3) != 0;
    FILE *f = fopen(sd_path_join(dir, "config.json"), "w"); /* small leak: a one-shot tool */
    if (!f) return perror("config.json"), 1;
    fprintf(f,
            "{\"dim\": %d, \"n_layers\": %d, \"n_heads\": %d, \"n_kv_heads\": %d, \"hidden_dim\": %d, "
            "\"vocab_size\": %d, \"seq_len\": %d, \"tied\": %d, \"norm_eps\": %.9g, \"rope_theta\": %.9g, "
            "\"B\": %d, \"T\": %d, \"lr\": %.9g, \"min_lr\": %.9g, \"warmup\": %d, \"steps\": %d, "
            "\"weight_decay\": %.9g, \"clip\": %.9g, \"beta1\": %.9g, \"beta2\": %.9g, \"eps\": %.9g, "
            "\"lora_rank\": %d, \"lora_alpha\": %.9g}\n",
            c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.hidden_dim, c.vocab_size, c.seq_len, c.tied,
            (double)c.norm_eps, (double)c.rope_theta, B, T, (double)o.lr, (double)o.min_lr, o.warmup, o.steps,
            (double)o.weight_decay, (double)o.clip, (double)o.beta1, (double)o.beta2, (double)o.eps, lora,
            (double)o.lora_alpha);
    fclose(f);
    dump(dir, "params.bin", m.params, m.n_params * 4);
    if (lora) dump(dir, "lora.bin", t->train, t->n_train * 4);
    dump(dir, "tokens.bin", tok, sizeof tok);
    dump(dir, "mask.bin", mask, sizeof mask);
    float *logits = malloc((size_t)B * T * V * 4);
    lm_trainer_logits(t, tok, logits);
    dump(dir, "logits.bin", logits, (size_t)B * T * V * 4);
    float loss;
    lm_trainer_grad(t, tok, mask, 1, &loss);
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%.9g\n", (double)loss);
    dump(dir, "loss.txt", buf, (size_t)n);
    dump(dir, "grads.bin", t->grads, t->n_train * 4);
    float losses[6];
    for (int s = 0; s < o.steps; s++)
        if (lm_trainer_step(t, tok, mask, &losses[s], &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    dump(dir, "losses.bin", losses, sizeof losses);
    dump(dir, "final.bin", t->train, t->n_train * 4);
    free(logits);
    lm_trainer_free(t);
    lm_model_free(&m);
    return 0;
}
