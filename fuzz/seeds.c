/* seeds.c - writes a seed corpus for every fuzz target, generated at fuzz time by the library's own
 * writers (so the seeds follow the formats as they are today, and nothing binary is committed):
 * a fuzzer that starts from valid inputs mutates its way into the deep paths (slot checks, tensor
 * conversion, tokenizer loading, the explore answer) instead of spending its time discovering a
 * magic number and a checksum.
 *
 * Usage: seeds OUTDIR  ->  OUTDIR/fuzz_gguf/, OUTDIR/fuzz_table/, OUTDIR/fuzz_csv/, OUTDIR/fuzz_ingest/, OUTDIR/fuzz_http/
 * (scripts/fuzz builds and runs it, then hands each folder to its target as a second corpus).
 * fuzz-sources: src/base/base.c src/lm/gguf.c src/lm/tokenizer.c src/lm/tokenizer_gguf.c src/lm/model.c src/lm/quant.c src/plan/table.c */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/gguf.h"
#include "serendip/lm_quant.h"
#include "serendip/lm.h"
#include "serendip/table.h"
#include "serendip/tokenizer.h"

static const char *g_out;

static void die(const char *what, const sd_err *err) {
    fprintf(stderr, "seeds: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

/* Writes bytes to OUT/target/name. */
static void put(const char *target, const char *name, const void *data, size_t len) {
    sd_err err = {0};
    char *dir = sd_path_join(g_out, target), *path = sd_path_join(dir, name);
    if (sd_mkdir_p(dir, &err) || sd_write_file_atomic(path, data, len, &err)) die(path, &err);
    free(dir), free(path);
}

/* The first byte of a fuzz_csv / fuzz_http input selects options / the method. */
static void put_prefixed(const char *target, const char *name, uint8_t first, const char *text) {
    size_t n = strlen(text);
    char *buf = sd_malloc(n + 1);
    buf[0] = (char)first;
    memcpy(buf + 1, text, n);
    put(target, name, buf, n + 1);
    free(buf);
}

/* Copies a file written by a library writer into the corpus. */
static void put_file(const char *target, const char *name, const char *path) {
    char *buf;
    size_t len;
    sd_err err = {0};
    if (sd_read_file(path, &buf, &len, &err)) die(path, &err);
    put(target, name, buf, len);
    free(buf);
}

/* Tiny Llama models with a trained BPE tokenizer, in F32, F16, Q8_0, Q4_0, Q5_0 and Q5_1 (dim 32 so
 * that rows are whole blocks), a qwen2 one, and one without a tokenizer. */
static void gguf_seeds(const char *tmp) {
    sd_err err = {0};
    const char *text = "war drama space alien comedy family noir crime <|ctx|> war, drama <|sep|> space, alien\n"
                       "the quick brown fox jumps over the lazy dog; caf\xc3\xa9 na\xc3\xafve \xe6\x98\x9f\n";
    lm_tokenizer *tok;
    if (tok_train(text, strlen(text), 270, &tok, &err)) die("tok_train", &err);
    lm_config c = {.dim = 32, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .hidden_dim = 32,
                   .vocab_size = tok_vocab_size(tok), .seq_len = 16, .tied = 1, .norm_eps = 1e-5f, .rope_theta = 10000};
    lm_model m;
    if (lm_model_init(&m, &c, 3, &err)) die("lm_model_init", &err);
    char *path = sd_path_join(tmp, "m.gguf");
    const struct { uint32_t type; const char *name; } kinds[] = {
        {GGUF_TENSOR_F32, "model-f32.gguf"}, {GGUF_TENSOR_F16, "model-f16.gguf"}, {GGUF_TENSOR_Q8_0, "model-q8_0.gguf"},
        {LM_Q_Q4_0, "model-q4_0.gguf"},       {LM_Q_Q5_0, "model-q5_0.gguf"},       {LM_Q_Q5_1, "model-q5_1.gguf"}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (lm_gguf_save_as(path, &m, tok, "seed", kinds[i].type, &err)) die(kinds[i].name, &err);
        put_file("fuzz_gguf", kinds[i].name, path);
    }
    if (lm_gguf_save(path, &m, NULL, "seed", &err)) die("model without tokenizer", &err);
    put_file("fuzz_gguf", "model-no-tokenizer.gguf", path);
    /* a SentencePiece vocabulary (<unk> <s> </s>, the 256 <0xAB> byte tokens, a few pieces) */
    {
        static char bytes[256][8];
        const char *pieces[] = {"\xE2\x96\x81", "a", "b", "ab", "\xE2\x96\x81" "ab", "\xE2\x96\x81" "the"};
        const char *toks[3 + 256 + 6];
        float sc[3 + 256 + 6];
        int32_t ty[3 + 256 + 6];
        toks[0] = "<unk>", toks[1] = "<s>", toks[2] = "</s>", ty[0] = TOK_TYPE_UNKNOWN, ty[1] = ty[2] = TOK_TYPE_CONTROL;
        for (int b = 0; b < 256; b++) snprintf(bytes[b], 8, "<0x%02X>", b), toks[3 + b] = bytes[b], ty[3 + b] = TOK_TYPE_BYTE;
        for (int i = 0; i < 6; i++) toks[259 + i] = pieces[i], ty[259 + i] = TOK_TYPE_NORMAL, sc[259 + i] = -(float)i;
        for (int i = 0; i < 259; i++) sc[i] = 0;
        lm_tokenizer *spm;
        if (tok_from_spm(toks, sc, ty, 265, 1, 2, -1, 1, &spm, &err)) die("tok_from_spm", &err);
        lm_config cs = c;
        cs.vocab_size = 265;
        lm_model ms;
        if (lm_model_init(&ms, &cs, 3, &err) || lm_gguf_save(path, &ms, spm, "seed-spm", &err)) die("spm model", &err);
        put_file("fuzz_gguf", "model-spm.gguf", path);
        lm_model_free(&ms);
        tok_free(spm);
    }
    lm_model q;
    c.arch = LM_ARCH_QWEN2; /* qwen2: biases and the q/k row order */
    if (lm_model_init(&q, &c, 3, &err) || lm_gguf_save_as(path, &q, tok, "seed", LM_Q_Q4_0, &err)) die("qwen2", &err);
    put_file("fuzz_gguf", "model-qwen2-q4_0.gguf", path);
    lm_model_free(&q);
    /* a file of assorted metadata types and small tensors */
    gguf_writer *w = gguf_writer_new();
    gguf_set_str(w, "general.name", "kv");
    gguf_set_u32(w, "k.u32", 7), gguf_set_i32(w, "k.i32", -7), gguf_set_u64(w, "k.u64", 1ull << 40);
    gguf_set_f32(w, "k.f32", 0.5f), gguf_set_bool(w, "k.bool", 1);
    const char *strs[] = {"a", "", "\xce\xb3"};
    gguf_set_arr_str(w, "k.astr", strs, 3);
    int32_t ints[] = {1, -2, 3};
    gguf_set_arr_i32(w, "k.ai32", ints, 3);
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)i / 8 - 2;
    int64_t ne[2] = {32, 1};
    if (gguf_add_tensor(w, "x32", GGUF_TENSOR_F32, 2, ne, x, &err) || gguf_add_tensor(w, "x16", GGUF_TENSOR_F16, 2, ne, x, &err) ||
        gguf_add_tensor(w, "xq8", GGUF_TENSOR_Q8_0, 2, ne, x, &err) || gguf_writer_write(w, path, &err))
        die("kv gguf", &err);
    gguf_writer_free(w);
    put_file("fuzz_gguf", "kv.gguf", path);
    free(path);
    lm_model_free(&m);
    tok_free(tok);
}

/* K = 2, M = 4 tables: a full one with model entries and a fallback slot (NaN values, as the
 * planner writes them), an unaligned one (NaN scores), and a shard. */
static void table_seeds(const char *tmp) {
    sd_err err = {0};
    char *path = sd_path_join(tmp, "t.tbl");
    for (int v = 0; v < 3; v++) {
        tbl_params p = {.k = 2, .n_clusters = 4, .n_contexts = 16, .top = 2, .n_samples = 4, .temperature = 1, .seed = 1,
                        .tax_hash = 0x1234, .novelty_hash = 0x5678, .align_hash = v == 1 ? 0 : 0x9abc,
                        .begin = v == 2 ? 4 : 0, .end = v == 2 ? 12 : 16, .kind = TBL_KIND_LLM};
        tbl_builder *b = tbl_builder_new(&p, &err);
        if (!b) die("tbl_builder_new", &err);
        for (int64_t i = p.begin; i < p.end; i++) {
            int a = (int)(i / 4), c = (int)(i % 4);
            if (a == c) continue;
            tbl_entry e[2];
            int n = 0;
            uint32_t flags = i == 6 ? TBL_FLAG_FALLBACK : 0;
            for (int x = 0; x < 4 && n < 2; x++)
                if (x != a && x != c) {
                    e[n].cluster = x;
                    e[n].align_score = flags || v == 1 ? NAN : 5.0f + (float)x / 4;
                    e[n++].novelty_logprob = flags ? NAN : -1.25f * (float)(x + 1);
                }
            if (tbl_builder_set(b, i, e, flags ? 1 : n, flags, &err)) die("tbl_builder_set", &err);
        }
        tbl_stats st = {.contexts_planned = 12, .samples = 48, .samples_compliant = 40, .samples_novel = 30, .contexts_fallback = 1};
        tbl_builder_add_stats(b, &st);
        if (tbl_write(b, path, &err)) die("tbl_write", &err);
        tbl_builder_free(b);
        static const char *const names[3] = {"full.tbl", "unaligned.tbl", "shard.tbl"};
        put_file("fuzz_table", names[v], path);
    }
    free(path);
}

/* CSV files in the layouts ingest reads; the first byte picks fuzz_csv's options:
 * bits 0-2 separator (0 ',', 1 tab, 4 '::'), bit 3 no quotes, bits 4-5 encoding (1 Latin-1, 2 auto). */
static void csv_seeds(void) {
    put_prefixed("fuzz_csv", "latest-movies.csv", 0x00,
                 "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
                 "2,\"American President, The (1995)\",Comedy|Drama\n3,\"\"\"Cats\"\" (1998)\",(no genres listed)\n");
    put_prefixed("fuzz_csv", "latest-ratings.csv", 0x00,
                 "\xef\xbb\xbfuserId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,0.5,964981247\r\n2,2,5.0,2005-04-02 23:53\r\n");
    put_prefixed("fuzz_csv", "1m-movies.dat", 0x04 | 0x08 | 0x20, "1::Toy Story (1995)::Animation|Comedy\n2::Caf\xe9 (1990)::Drama\n");
    put_prefixed("fuzz_csv", "100k-data.tsv", 0x01 | 0x08, "196\t242\t3\t881250949\n186\t302\t3\t891717742\n");
    put_prefixed("fuzz_csv", "latin1-auto.csv", 0x20, "a,b,c\nna\xefve,\xe6\x98\x9f,-1.5e3\n");
}

/* Logs for fuzz_ingest: first byte bits 0-1 the reader (0 RecBole, 1 CSV string ids, 2 CSV integer
 * ids, 3 CSV without header), bit 2 a catalogue follows the log after a 0x01 byte. */
static void ingest_seeds(void) {
    put_prefixed("fuzz_ingest", "recbole", 0x04,
                 "user_id:token\titem_id:token\trating:float\ttimestamp:float\nalice\tB00A\t4\t881250949.5\n"
                 "bob\tB00B\t3\t10\nalice\tB00B\t5\t11\n\x01item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
                 "B00A\tThe Thing\tHorror  Sci-Fi\nB00B\t\"Am, elie\"\tComedy\n");
    put_prefixed("fuzz_ingest", "recbole-int", 0x00,
                 "user_id:token\titem_id:token\ttimestamp:float\tlabel:float\n196\t242\t881250949\t1\n007\t242\t5\t0\n");
    put_prefixed("fuzz_ingest", "csv-strings", 0x05,
                 "\xef\xbb\xbfuser,item,ts,rating\r\nA1,0451,2014-03-01,5\r\n\"x, y\",B7,2014-03-02 10:00,\r\n\x01"
                 "item,title,tags\n0451,The Tale,fiction|classic\nB7,Chess,\n");
    put_prefixed("fuzz_ingest", "csv-int", 0x06, "user,item,ts,rating\n1,10,5,4\n2,11,6,3.5\n\x01item,title,tags\n10,A,x|y\n");
    put_prefixed("fuzz_ingest", "csv-noheader", 0x03, "u1,i1,5,4\nu2,i1,6,1\n");
}

/* Requests for fuzz_http's state (users 0..29, items 100..111, clusters 0..3, token
 * "fuzz-token-123"): first byte the method (0 GET, 1 POST, 2 HEAD, 3 PUT), then the target, a line
 * with the Authorization value, a line break and the body. */
static void http_seeds(void) {
    put_prefixed("fuzz_http", "get-explore", 0, "/v1/explore?user=3&k=3&n=2");
    put_prefixed("fuzz_http", "get-explore-escaped", 0, "/v1/explore?user=%33&k=2&&x=%41");
    put_prefixed("fuzz_http", "post-explore", 1, "/v1/explore\n\n{\"items\": [100, 104, 107], \"k\": 2, \"n\": 1}");
    put_prefixed("fuzz_http", "post-unknown-items", 1, "/v1/explore\n\n{\"items\": [1, 2, 100]}  \n");
    put_prefixed("fuzz_http", "get-cluster", 0, "/v1/clusters/2?k=2");
    put_prefixed("fuzz_http", "get-users", 0, "/v1/users?limit=5");
    put_prefixed("fuzz_http", "get-health", 0, "/healthz");
    put_prefixed("fuzz_http", "get-metrics", 0, "/metrics");
    put_prefixed("fuzz_http", "head-page", 2, "/");
    put_prefixed("fuzz_http", "post-reload-wrong-token", 1, "/admin/reload\nbearer not-the-token\n");
    put_prefixed("fuzz_http", "put-explore", 3, "/v1/explore?user=1");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds OUTDIR\n");
        return 2;
    }
    sd_verbosity = 0;
    g_out = argv[1];
    sd_err err = {0};
    char *tmp = sd_path_join(g_out, "tmp");
    if (sd_mkdir_p(tmp, &err)) die(tmp, &err);
    gguf_seeds(tmp);
    table_seeds(tmp);
    csv_seeds();
    ingest_seeds();
    http_seeds();
    char *cmd = sd_asprintf("rm -rf '%s'", tmp);
    int rc = system(cmd);
    free(cmd), free(tmp);
    return rc != 0;
}
