/* cmd_lm_info.c - `serendip lm info`: describe a GGUF model file (architecture, sizes, parameter
 * count, tokenizer and its special tokens, tensor types, serendip.* metadata). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "serendip/gguf.h"

/* Prints a token's text with control characters escaped. */
static void print_token(const lm_tokenizer *t, int32_t id) {
    if (id < 0) {
        printf("-");
        return;
    }
    const char *s = tok_token_text(t, id);
    printf("%d \"", id);
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == '"') printf("\\x%02x", (unsigned char)*s);
        else putchar(*s);
    }
    printf("\"");
}

int cmd_lm_info(int argc, char **argv) {
    const char *model = NULL;
    int json = 0;
    fl_spec specs[] = {
        {"model", FL_STR, &model, "GGUF file to describe"},
        {"json", FL_BOOL, &json, "print the description as JSON"},
        {0},
    };
    int rc = fl_parse("lm info --model F [--json]",
                      "Describes a GGUF model file: architecture and sizes, parameter count, tokenizer and its\n"
                      "special tokens, tensor types, and serendip.* metadata. Works on any GGUF v3 file; the\n"
                      "model config is read for the `llama` architecture (see docs/formats-gguf.md).",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if (!model) return cmd_usage_error(argv[0], "--model is required");
    sd_err err = {0};
    gguf_file *g;
    if ((rc = gguf_open(&g, model, &err))) return cmd_fail(&err);

    char *arch = NULL, *name = NULL;
    gguf_get_str(g, "general.architecture", &arch, NULL);
    gguf_get_str(g, "general.name", &name, NULL);
    lm_config c;
    sd_err cerr = {0};
    int have_cfg = lm_gguf_read_config(g, &c, &cerr) == SD_OK;
    /* parameters and bytes per tensor type, from the tensor table */
    int64_t n_elems = 0, type_count[64] = {0}, type_bytes[64] = {0};
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        n_elems += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        if (t->type < 64) type_count[t->type]++, type_bytes[t->type] += (int64_t)t->nbytes;
    }
    lm_tokenizer *tok = NULL;
    sd_err terr = {0};
    int have_tok = gguf_find_kv(g, "tokenizer.ggml.model") >= 0 && lm_gguf_load_tokenizer(g, &tok, &terr) == SD_OK;
    char *tok_model = NULL, *tok_pre = NULL;
    gguf_get_str(g, "tokenizer.ggml.model", &tok_model, NULL);
    gguf_get_str(g, "tokenizer.ggml.pre", &tok_pre, NULL);

    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", model);
        cJSON_AddNumberToObject(o, "gguf_version", gguf_version(g));
        cJSON_AddNumberToObject(o, "alignment", (double)gguf_alignment(g));
        cJSON_AddStringToObject(o, "architecture", arch ? arch : "");
        cJSON_AddStringToObject(o, "name", name ? name : "");
        cJSON_AddNumberToObject(o, "n_kv", (double)gguf_n_kv(g));
        cJSON_AddNumberToObject(o, "n_tensors", (double)gguf_n_tensors(g));
        cJSON_AddNumberToObject(o, "n_params", (double)n_elems);
        if (have_cfg) {
            cJSON *k = cJSON_AddObjectToObject(o, "config");
            cJSON_AddNumberToObject(k, "dim", c.dim);
            cJSON_AddNumberToObject(k, "n_layers", c.n_layers);
            cJSON_AddNumberToObject(k, "n_heads", c.n_heads);
            cJSON_AddNumberToObject(k, "n_kv_heads", c.n_kv_heads);
            cJSON_AddNumberToObject(k, "head_dim", lm_head_dim(&c));
            cJSON_AddNumberToObject(k, "hidden_dim", c.hidden_dim);
            cJSON_AddNumberToObject(k, "vocab_size", c.vocab_size);
            cJSON_AddNumberToObject(k, "seq_len", c.seq_len);
            cJSON_AddBoolToObject(k, "tied", c.tied);
            cJSON_AddNumberToObject(k, "norm_eps", c.norm_eps);
            cJSON_AddNumberToObject(k, "rope_theta", c.rope_theta);
        } else cJSON_AddStringToObject(o, "config_error", cerr.msg);
        if (have_tok) {
            cJSON *k = cJSON_AddObjectToObject(o, "tokenizer");
            cJSON_AddStringToObject(k, "model", tok_model ? tok_model : "");
            cJSON_AddStringToObject(k, "pre", tok_pre ? tok_pre : "");
            cJSON_AddNumberToObject(k, "vocab_size", tok_vocab_size(tok));
            cJSON_AddNumberToObject(k, "merges", tok_n_merges(tok));
            cJSON_AddNumberToObject(k, "bos", tok_bos(tok));
            cJSON_AddNumberToObject(k, "eos", tok_eos(tok));
            cJSON_AddNumberToObject(k, "pad", tok_pad(tok));
            cJSON *sp = cJSON_AddObjectToObject(k, "control_tokens");
            for (int32_t i = 0; i < tok_vocab_size(tok); i++)
                if (tok_token_type(tok, i) == TOK_TYPE_CONTROL) cJSON_AddNumberToObject(sp, tok_token_text(tok, i), i);
        } else if (tok_model) cJSON_AddStringToObject(o, "tokenizer_error", terr.msg);
        cJSON *ty = cJSON_AddObjectToObject(o, "tensor_types");
        for (int i = 0; i < 64; i++)
            if (type_count[i]) {
                cJSON *e = cJSON_AddObjectToObject(ty, gguf_tensor_type_name((uint32_t)i));
                cJSON_AddNumberToObject(e, "tensors", (double)type_count[i]);
                cJSON_AddNumberToObject(e, "bytes", (double)type_bytes[i]);
            }
        cJSON *meta = cJSON_AddObjectToObject(o, "serendip");
        for (int64_t i = 0; i < gguf_n_kv(g); i++) {
            const char *key = gguf_kv_key(g, i);
            if (strncmp(key, "serendip.", 9) != 0) continue;
            char *s;
            int64_t iv;
            double fv;
            if (gguf_get_str(g, key, &s, NULL) == SD_OK) cJSON_AddStringToObject(meta, key + 9, s), free(s);
            else if (gguf_get_int(g, key, &iv, NULL) == SD_OK) cJSON_AddNumberToObject(meta, key + 9, (double)iv);
            else if (gguf_get_float(g, key, &fv, NULL) == SD_OK) cJSON_AddNumberToObject(meta, key + 9, fv);
            else cJSON_AddStringToObject(meta, key + 9, gguf_type_name(gguf_kv_type(g, i)));
        }
        char *txt = cJSON_Print(o);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        printf("file:          %s (GGUF v%u, %lld KVs, %lld tensors, alignment %zu)\n", model, gguf_version(g),
               (long long)gguf_n_kv(g), (long long)gguf_n_tensors(g), gguf_alignment(g));
        printf("architecture:  %s\n", arch ? arch : "(none)");
        printf("name:          %s\n", name ? name : "(none)");
        if (have_cfg) {
            printf("model:         dim %d, layers %d, heads %d (kv %d, head_dim %d), ffn %d, vocab %d, context %d\n", c.dim,
                   c.n_layers, c.n_heads, c.n_kv_heads, lm_head_dim(&c), c.hidden_dim, c.vocab_size, c.seq_len);
            printf("               rms_eps %g, rope_theta %g, output head %s\n", (double)c.norm_eps, (double)c.rope_theta,
                   c.tied ? "tied to token_embd" : "separate");
        } else printf("model:         not loadable by serendip: %s\n", cerr.msg);
        printf("parameters:    %lld (%.2f M)\n", (long long)n_elems, (double)n_elems / 1e6);
        printf("tensor types: ");
        for (int i = 0; i < 64; i++)
            if (type_count[i])
                printf(" %s x%lld (%.2f MB)", gguf_tensor_type_name((uint32_t)i), (long long)type_count[i],
                       (double)type_bytes[i] / 1e6);
        printf("\n");
        if (have_tok) {
            printf("tokenizer:     %s (pre %s), %d tokens, %d merges\n", tok_model, tok_pre ? tok_pre : "-",
                   tok_vocab_size(tok), tok_n_merges(tok));
            printf("  bos ");
            print_token(tok, tok_bos(tok));
            printf(", eos ");
            print_token(tok, tok_eos(tok));
            printf(", pad ");
            print_token(tok, tok_pad(tok));
            printf("\n  control:");
            int shown = 0;
            for (int32_t i = 0; i < tok_vocab_size(tok); i++)
                if (tok_token_type(tok, i) == TOK_TYPE_CONTROL && shown++ < 16) printf(" %s=%d", tok_token_text(tok, i), i);
            if (shown > 16) printf(" ... (%d in all)", shown);
            printf("\n");
        } else if (tok_model) printf("tokenizer:     %s, not loadable: %s\n", tok_model, terr.msg);
        else printf("tokenizer:     (none)\n");
        for (int64_t i = 0; i < gguf_n_kv(g); i++) {
            const char *key = gguf_kv_key(g, i);
            if (strncmp(key, "serendip.", 9) != 0) continue;
            char *s;
            int64_t iv;
            double fv;
            if (gguf_get_str(g, key, &s, NULL) == SD_OK) printf("%-14s %s\n", key, s), free(s);
            else if (gguf_get_int(g, key, &iv, NULL) == SD_OK) printf("%-14s %lld\n", key, (long long)iv);
            else if (gguf_get_float(g, key, &fv, NULL) == SD_OK) printf("%-14s %g\n", key, fv);
            else printf("%-14s (%s)\n", key, gguf_type_name(gguf_kv_type(g, i)));
        }
    }
    free(arch);
    free(name);
    free(tok_model);
    free(tok_pre);
    tok_free(tok);
    gguf_close(g);
    return 0;
}
