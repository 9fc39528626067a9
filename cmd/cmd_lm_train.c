/* cmd_lm_train.c - `serendip lm pretrain` and `serendip lm sft`: flag parsing, reading text/JSONL,
 * tokenizing, and calling the training library (lm_train.h); models go to GGUF (gguf.h). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "serendip/gguf.h"
#include "serendip/lm_train.h"
#include "serendip/sft.h"
#include "serendip/tokenizer.h"

/* ---------------------------------------------------------------- shared */

typedef struct {
    float lr, min_lr, weight_decay, clip;
    int steps, warmup, batch, accum, seed, threads, save_every, stop_at;
    const char *checkpoint, *resume;
    int mpi; /* data-parallel over MPI ranks; rank 0 writes checkpoints and the model */
} train_flags;

typedef struct {
    lm_batcher *b;
    const char *ckpt;
    int every, stop_at;
    float first_loss;
    int failed;
    sd_err err;
} run_ctx;

/* Saves a checkpoint every `every` steps; remembers the first step's loss. */
static int on_step(void *p, const lm_trainer *t, float loss, double tps) {
    (void)tps;
    run_ctx *c = p;
    if (c->first_loss < 0) c->first_loss = loss;
    if (c->ckpt && c->every > 0 && t->step % c->every == 0 && t->step < t->opts.steps && !cmd_mpi_quiet())
        if (lm_checkpoint_save(t, c->b, c->ckpt, &c->err)) return c->failed = 1;
    return c->stop_at > 0 && t->step >= c->stop_at;
}

static void opts_from_flags(lm_train_opts *o, const train_flags *f) {
    o->lr = f->lr;
    o->min_lr = f->min_lr;
    o->weight_decay = f->weight_decay;
    o->clip = f->clip;
    o->steps = f->steps;
    o->warmup = f->warmup;
    o->batch = f->batch;
    o->accum = f->accum;
    o->seed = (uint64_t)f->seed;
    o->threads = f->threads;
    o->dp = f->mpi;
}

/* Runs training with optional resume/checkpointing; fills the summary numbers. */
static int run_training(lm_trainer *t, lm_batcher *b, const train_flags *f, const char *label, float *first,
                        float *final, double *tps, double *secs, sd_err *err) {
    if (f->resume && sd_file_exists(f->resume)) {
        int rc = lm_checkpoint_load(t, b, f->resume, err);
        if (rc) return rc;
        sd_log("resumed from %s at step %d", f->resume, t->step);
    }
    run_ctx ctx = {.b = b, .ckpt = f->checkpoint, .every = f->save_every, .stop_at = f->stop_at, .first_loss = -1};
    double t0 = sd_now();
    int rc = lm_train_run(t, b, label, on_step, &ctx, final, tps, err);
    *secs = sd_now() - t0;
    if (ctx.failed) return *err = ctx.err, err->code;
    if (rc) return rc;
    *first = ctx.first_loss;
    if (f->checkpoint && !cmd_mpi_quiet()) rc = lm_checkpoint_save(t, b, f->checkpoint, err);
    return rc;
}

static void print_summary(int json, const char *what, const char *out, const lm_model *m, int steps, float first,
                          float final, double tps, double secs, size_t n_ex, size_t n_tok) {
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "command", what);
        cJSON_AddStringToObject(j, "out", out);
        cJSON_AddNumberToObject(j, "params", (double)m->n_params);
        cJSON_AddNumberToObject(j, "steps", steps);
        cJSON_AddNumberToObject(j, "first_loss", first);
        cJSON_AddNumberToObject(j, "final_loss", final);
        cJSON_AddNumberToObject(j, "tokens_per_s", tps);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "examples", (double)n_ex);
        cJSON_AddNumberToObject(j, "tokens", (double)n_tok);
        char *s = cJSON_Print(j);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        printf("%s: wrote %s (%.2f M params), %d steps, loss %.4f -> %.4f, %.0f tokens/s, %.1f s\n", what, out,
               m->n_params / 1e6, steps, first, final, tps, secs);
    }
}

#define TRAIN_FLAGS(f)                                                                                       \
    {"steps", FL_INT, &(f).steps, "optimizer steps (0: one pass over the data)"},                            \
        {"batch", FL_INT, &(f).batch, "rows per micro-batch"},                                               \
        {"accum", FL_INT, &(f).accum, "micro-batches per step (gradient accumulation)"},                     \
        {"lr", FL_FLOAT, &(f).lr, "peak learning rate"}, {"min-lr", FL_FLOAT, &(f).min_lr, "final learning rate"}, \
        {"warmup", FL_INT, &(f).warmup, "warm-up steps"},                                                    \
        {"weight-decay", FL_FLOAT, &(f).weight_decay, "AdamW decoupled weight decay"},                       \
        {"clip", FL_FLOAT, &(f).clip, "gradient-norm clip (0: off)"}, {"seed", FL_INT, &(f).seed, "random seed"}, \
        {"threads", FL_INT, &(f).threads, "threads (0: all)"},                                               \
        {"checkpoint", FL_STR, &(f).checkpoint, "write a training checkpoint here (for --resume)"},          \
        {"save-every", FL_INT, &(f).save_every, "checkpoint every N steps"},                                 \
        {"resume", FL_STR, &(f).resume, "resume from this checkpoint if it exists"},                         \
        {"stop-at", FL_INT, &(f).stop_at, "stop after this step (with --checkpoint: resume later, same result)"}, \
        {"mpi", FL_BOOL, &(f).mpi, "data-parallel on MPI (under mpirun/srun): ranks split every batch's rows"}

static int check_train_flags(const char *cmd, const train_flags *f) {
    if (f->steps < 0) return cmd_usage_error(cmd, "--steps must be >= 0");
    if (f->batch <= 0 || f->accum <= 0) return cmd_usage_error(cmd, "--batch and --accum must be positive");
    if (!(f->lr > 0) || f->min_lr < 0) return cmd_usage_error(cmd, "--lr must be positive and --min-lr >= 0");
    if (f->warmup < 0) return cmd_usage_error(cmd, "--warmup must be >= 0");
    return cmd_mpi_start(cmd, f->mpi);
}

/* ---------------------------------------------------------------- pretrain */

int cmd_lm_pretrain(int argc, char **argv) {
    const char *text = NULL, *out = NULL, *name = "serendip";
    int vocab = 2000, dim = 128, layers = 4, heads = 4, kv_heads = 2, hidden = 384, seq_len = 128, untied = 0,
        json = 0;
    train_flags f = {.lr = 3e-3f, .min_lr = 3e-4f, .weight_decay = 0.1f, .clip = 1.0f, .steps = 0, .warmup = 20,
                     .batch = 8, .accum = 1, .seed = 1, .threads = 0, .save_every = 100};
    fl_spec specs[] = {
        {"text", FL_STR, &text, "training text (UTF-8 or any bytes)"},
        {"out", FL_STR, &out, "output GGUF model"},
        {"name", FL_STR, &name, "general.name of the model"},
        {"vocab", FL_INT, &vocab, "BPE vocabulary size (>= 263)"},
        {"dim", FL_INT, &dim, "model width"},
        {"layers", FL_INT, &layers, "transformer layers"},
        {"heads", FL_INT, &heads, "attention heads"},
        {"kv-heads", FL_INT, &kv_heads, "key/value heads (grouped-query attention)"},
        {"hidden", FL_INT, &hidden, "feed-forward width"},
        {"seq-len", FL_INT, &seq_len, "context length (training window)"},
        {"untied", FL_BOOL, &untied, "separate output head (default: tied to the embedding)"},
        TRAIN_FLAGS(f),
        {"json", FL_BOOL, &json, "print a JSON summary"},
        {0},
    };
    int rc = fl_parse("lm pretrain --text FILE --out MODEL.gguf [flags]",
                      "Trains a byte-level BPE tokenizer on the text, then a Llama-architecture model on the\n"
                      "tokenized text cut into windows of --seq-len + 1 tokens, and writes both to a GGUF file.",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if (!text || !out) return cmd_usage_error(argv[0], "--text and --out are required");
    if ((rc = cmd_check_out(out))) return rc;
    if ((rc = check_train_flags(argv[0], &f))) return rc;
    sd_err err = {0};
    lm_config c = {.dim = dim, .n_layers = layers, .n_heads = heads, .n_kv_heads = kv_heads, .hidden_dim = hidden,
                   .vocab_size = vocab, .seq_len = seq_len, .tied = !untied, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    if ((rc = lm_config_check(&c, &err))) return cmd_fail(&err);
    if ((rc = cmd_check_memory(argv[0], cmd_train_bytes(&c, vocab, f.batch), "--dim, --layers, --hidden, --vocab, --seq-len and --batch")))
        return rc;
    char *buf;
    size_t len;
    if ((rc = sd_read_file(text, &buf, &len, &err))) return cmd_fail(&err);
    lm_tokenizer *tok = NULL;
    double t0 = sd_now();
    if ((rc = tok_train(buf, len, vocab, &tok, &err))) {
        free(buf);
        return cmd_fail(&err);
    }
    sd_log("tokenizer: %d tokens trained in %.1f s", tok_vocab_size(tok), sd_now() - t0);
    c.vocab_size = tok_vocab_size(tok); /* fewer when the text has too few distinct pairs */
    size_t n_ids = 0;
    tok_encode(tok, buf, len, NULL, 0, &n_ids, 1);
    int32_t *ids = sd_malloc((n_ids + 1) * sizeof(int32_t));
    int32_t bos = tok_bos(tok);
    size_t off = bos >= 0 ? 1 : 0;
    if (bos >= 0) ids[0] = bos;
    tok_encode(tok, buf, len, ids + off, n_ids, &n_ids, 1);
    n_ids += off;
    free(buf);
    /* windows of T+1 tokens overlapping by one, so every token after the first is a target once */
    lm_examples ex;
    lm_examples_init(&ex);
    for (size_t s = 0; s + 1 < n_ids; s += (size_t)seq_len) {
        size_t n = n_ids - s < (size_t)seq_len + 1 ? n_ids - s : (size_t)seq_len + 1;
        lm_examples_add(&ex, ids + s, NULL, n);
    }
    free(ids);
    size_t n_ex = lm_examples_count(&ex);
    rc = SD_ERR_DATA;
    lm_model m = {0};
    lm_trainer *t = NULL;
    lm_batcher b = {0};
    if (n_ex == 0) {
        sd_fail(&err, SD_ERR_DATA, "%s: too little text to train on (%zu tokens)", text, n_ids);
        goto done;
    }
    if (f.steps == 0) f.steps = (int)((n_ex + (size_t)f.batch * f.accum - 1) / ((size_t)f.batch * f.accum));
    if (f.warmup >= f.steps) f.warmup = f.steps / 10;
    sd_log("data: %zu tokens in %zu windows of %d; %d steps of %d x %d rows", n_ids, n_ex, seq_len, f.steps, f.batch,
           f.accum);
    lm_train_opts o;
    lm_train_opts_default(&o);
    opts_from_flags(&o, &f);
    o.seq_len = seq_len;
    if ((rc = lm_model_init(&m, &c, (uint64_t)f.seed, &err))) goto done;
    if ((rc = lm_trainer_new(&t, &m, &o, &err))) goto done;
    if ((rc = lm_batcher_init(&b, &ex, f.batch, seq_len, tok_pad(tok) >= 0 ? tok_pad(tok) : 0, (uint64_t)f.seed, &err)))
        goto done;
    float first = 0, final = 0;
    double tps = 0, secs = 0;
    if ((rc = run_training(t, &b, &f, "pretrain", &first, &final, &tps, &secs, &err))) goto done;
    if (cmd_mpi_quiet()) goto done; /* rank 0 writes and reports */
    if ((rc = lm_gguf_save(out, &m, tok, name, &err))) goto done;
    print_summary(json, "pretrain", out, &m, t->step, first, final, tps, secs, n_ex, n_ids);
done:
    lm_batcher_free(&b);
    lm_trainer_free(t);
    lm_model_free(&m);
    lm_examples_free(&ex);
    tok_free(tok);
    return rc ? cmd_fail(&err) : 0;
}

/* ---------------------------------------------------------------- sft */

int cmd_lm_sft(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *out = NULL, *name = NULL;
    int lora = 0, merge = 0, json = 0, seq_len = 0, epochs = 1;
    float lora_alpha = 16.0f;
    train_flags f = {.lr = 1e-3f, .min_lr = 1e-4f, .weight_decay = 0.0f, .clip = 1.0f, .steps = 0, .warmup = 10,
                     .batch = 16, .accum = 1, .seed = 1, .threads = 0, .save_every = 100};
    fl_spec specs[] = {
        {"model", FL_STR, &model, "base GGUF model (with tokenizer)"},
        {"data", FL_STR, &data, "JSONL, one {\"prompt\": ..., \"answer\": ...} per line"},
        {"out", FL_STR, &out, "output GGUF (a full model; with --lora and no --merge: the adapter)"},
        {"name", FL_STR, &name, "general.name of the output (default: the base's)"},
        {"lora", FL_INT, &lora, "LoRA rank (0: full fine-tuning)"},
        {"lora-alpha", FL_FLOAT, &lora_alpha, "LoRA alpha (scale alpha/rank)"},
        {"merge", FL_BOOL, &merge, "with --lora: merge the adapters and write a full model"},
        {"seq-len", FL_INT, &seq_len, "training window (0: the longest example, capped by the model)"},
        {"epochs", FL_INT, &epochs, "passes over the data when --steps is 0"},
        TRAIN_FLAGS(f),
        {"json", FL_BOOL, &json, "print a JSON summary"},
        {0},
    };
    int rc = fl_parse("lm sft --model BASE.gguf --data TRAIN.jsonl --out OUT.gguf [flags]",
                      "Supervised fine-tuning: each example is BOS + prompt + answer + EOS, and the loss counts\n"
                      "only the answer tokens and EOS. Prompts may contain control tokens such as <|ctx|>.\n"
                      "Full fine-tuning, or rank-R LoRA adapters on every attention and feed-forward\n"
                      "projection (--lora R), saved as a llama.cpp LoRA adapter GGUF or merged (--merge).",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if (!model || !data || !out) return cmd_usage_error(argv[0], "--model, --data and --out are required");
    if ((rc = cmd_check_out(out))) return rc;
    if ((rc = check_train_flags(argv[0], &f))) return rc;
    if (lora < 0 || epochs <= 0 || seq_len < 0) return cmd_usage_error(argv[0], "--lora, --seq-len >= 0 and --epochs > 0");
    if (merge && !lora) return cmd_usage_error(argv[0], "--merge needs --lora R");
    sd_err err = {0};
    lm_model m = {0};
    lm_tokenizer *tok = NULL;
    lm_trainer *t = NULL;
    lm_batcher b = {0};
    lm_examples ex;
    lm_examples_init(&ex);
    char *base_name = NULL;
    if ((rc = lm_gguf_load(model, &m, &tok, &err))) goto done;
    int longest;
    size_t n_cut;
    if ((rc = lm_sft_load_jsonl(tok, data, (size_t)m.cfg.seq_len + 1, &ex, NULL, &longest, &n_cut, &err))) goto done;
    if (n_cut) sd_log("warning: %zu examples longer than the context %d were cut from the left", n_cut, m.cfg.seq_len);
    int T = seq_len ? seq_len : longest - 1;
    if (T < 1) T = 1;
    if (T > m.cfg.seq_len) T = m.cfg.seq_len;
    lm_config need = m.cfg; /* the logits of a micro-batch of T-token windows; Adam state only for full fine-tuning */
    need.seq_len = T;
    if (cmd_check_memory(argv[0], cmd_train_bytes(&need, 0, f.batch) - (lora ? 12.0 * (double)lm_param_count(&m.cfg) : 0),
                         "--batch and --seq-len (or --lora 0: full fine-tuning) with this model")) {
        rc = -2; /* printed */
        goto done;
    }
    size_t n_ex = lm_examples_count(&ex);
    if (f.steps == 0)
        f.steps = (int)(((size_t)epochs * n_ex + (size_t)f.batch * f.accum - 1) / ((size_t)f.batch * f.accum));
    if (f.warmup >= f.steps) f.warmup = f.steps / 10;
    sd_log("sft: %zu examples, window %d, %d steps of %d x %d rows%s", n_ex, T, f.steps, f.batch, f.accum,
           lora ? ", LoRA" : "");
    lm_train_opts o;
    lm_train_opts_default(&o);
    opts_from_flags(&o, &f);
    o.seq_len = T;
    o.lora_rank = lora;
    o.lora_alpha = lora_alpha;
    if ((rc = lm_trainer_new(&t, &m, &o, &err))) goto done;
    if ((rc = lm_batcher_init(&b, &ex, f.batch, T, tok_pad(tok) >= 0 ? tok_pad(tok) : 0, (uint64_t)f.seed, &err)))
        goto done;
    float first = 0, final = 0;
    double tps = 0, secs = 0;
    if ((rc = run_training(t, &b, &f, "sft", &first, &final, &tps, &secs, &err))) goto done;
    if (!name) {
        gguf_file *g;
        if (gguf_open(&g, model, NULL) == SD_OK) {
            gguf_get_str(g, "general.name", &base_name, NULL);
            gguf_close(g);
        }
        name = base_name ? base_name : "serendip";
    }
    if (cmd_mpi_quiet()) goto done; /* rank 0 writes and reports */
    if (lora && !merge) {
        rc = lm_lora_save_gguf(t->lora, out, &err);
    } else {
        if (lora) lm_lora_merge(t->lora, &m);
        rc = lm_gguf_save(out, &m, tok, name, &err);
    }
    if (rc) goto done;
    print_summary(json, "sft", out, &m, t->step, first, final, tps, secs, n_ex, ex.tok.len);
done:
    free(base_name);
    lm_batcher_free(&b);
    lm_trainer_free(t);
    lm_examples_free(&ex);
    lm_model_free(&m);
    tok_free(tok);
    return rc == -2 ? 2 : rc ? cmd_fail(&err) : 0;
}
