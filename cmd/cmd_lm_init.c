/* cmd_lm_init.c - `serendip lm init`: a random-weight model of given shapes with the vocabulary of
 * an existing GGUF file (e.g. llama.cpp's models/ggml-vocab-*.gguf), written in a chosen tensor
 * type. For benchmarks at real sizes and for tests of `train --base` without downloadable weights. */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "serendip/gguf.h"
#include "serendip/lm_quant.h"

int cmd_lm_init(int argc, char **argv) {
    const char *vocab = NULL, *out = NULL, *arch = "llama", *type = "F32", *preset = NULL;
    int dim = 64, layers = 2, heads = 4, kv_heads = 2, hidden = 160, seq_len = 256, untied = 0, seed = 1;
    float theta = 10000.0f;
    fl_spec specs[] = {
        {"vocab", FL_STR, &vocab, "GGUF file whose tokenizer to use (any model or ggml-vocab-*.gguf)"},
        {"out", FL_STR, &out, "output GGUF"},
        {"preset", FL_STR, &preset, "smollm2-135m: the shapes of SmolLM2-135M (overrides the size flags)"},
        {"arch", FL_STR, &arch, "llama or qwen2"},
        {"type", FL_STR, &type, "matrix type: F32, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K"},
        {"dim", FL_INT, &dim, "model width"},
        {"layers", FL_INT, &layers, "layers"},
        {"heads", FL_INT, &heads, "query heads"},
        {"kv-heads", FL_INT, &kv_heads, "key/value heads"},
        {"hidden", FL_INT, &hidden, "feed-forward width"},
        {"seq-len", FL_INT, &seq_len, "context length"},
        {"rope-theta", FL_FLOAT, &theta, "RoPE base"},
        {"untied", FL_BOOL, &untied, "a separate output head (default: tied to the embeddings)"},
        {"seed", FL_INT, &seed, "random seed"},
        {0},
    };
    int rc = fl_parse("lm init --vocab F.gguf --out M.gguf [--preset smollm2-135m] [--type Q4_K] [sizes]",
                      "Writes a model with random weights (N(0, 0.02), as `lm pretrain` starts) and the tokenizer of\n"
                      "--vocab. With no weights to download, this gives files of real shapes for benchmarks and\n"
                      "for `train --base` tests; the values carry no knowledge.",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if (!vocab || !out) return cmd_usage_error(argv[0], "--vocab and --out are required");
    int ty = lm_qtype_parse(type);
    if (ty < 0) return cmd_usage_error(argv[0], "--type %s: use F32, F16, Q8_0, Q4_0, Q4_K, Q5_K or Q6_K", type);
    if (strcmp(arch, "llama") && strcmp(arch, "qwen2")) return cmd_usage_error(argv[0], "--arch is llama or qwen2");
    if (preset) {
        if (strcmp(preset, "smollm2-135m")) return cmd_usage_error(argv[0], "--preset: only smollm2-135m is known");
        /* SmolLM2-135M's config.json: 30 layers, width 576, 9 heads, 3 KV heads, FFN 1536, tied
         * embeddings, RoPE base 100000, context 8192 (the vocabulary is --vocab's) */
        dim = 576, layers = 30, heads = 9, kv_heads = 3, hidden = 1536, theta = 100000.0f, untied = 0;
        if (seq_len == 256) seq_len = 8192;
    }
    if ((rc = cmd_check_out(out))) return rc;
    sd_err err = {0};
    gguf_file *g;
    lm_tokenizer *tok = NULL;
    if ((rc = gguf_open(&g, vocab, &err))) return cmd_fail(&err);
    rc = lm_gguf_load_tokenizer(g, &tok, &err);
    gguf_close(g);
    if (rc) return cmd_fail(&err);
    lm_config c = {.dim = dim, .n_layers = layers, .n_heads = heads, .n_kv_heads = kv_heads, .hidden_dim = hidden,
                   .vocab_size = tok_vocab_size(tok), .seq_len = seq_len, .tied = !untied, .norm_eps = 1e-5f,
                   .rope_theta = theta, .arch = strcmp(arch, "qwen2") ? LM_ARCH_LLAMA : LM_ARCH_QWEN2};
    lm_model m;
    if ((rc = lm_model_init(&m, &c, (uint64_t)seed, &err)) ||
        (rc = lm_gguf_save_as(out, &m, tok, preset ? preset : "serendip-random", (uint32_t)ty, &err))) {
        tok_free(tok);
        lm_model_free(&m);
        return cmd_fail(&err);
    }
    printf("wrote %s: %s, %d layers, width %d, %d/%d heads, FFN %d, vocabulary %d, %s, %.1fM parameters\n", out, arch,
           layers, dim, heads, kv_heads, hidden, c.vocab_size, lm_qtype_name((uint32_t)ty), lm_param_count(&c) / 1e6);
    tok_free(tok);
    lm_model_free(&m);
    return 0;
}
