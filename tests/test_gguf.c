/* test_gguf.c - GGUF reader/writer round trips, Llama model save/load, and refusal of truncated,
 * foreign and inconsistent files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/gguf.h"
#include "serendip/lm.h"
#include "serendip/tokenizer.h"

static char g_dir[] = "/tmp/sdggufXXXXXX";

static char *tmp_path(const char *name) { return sd_path_join(g_dir, name); }

static void read_all(const char *path, char **buf, size_t *len) {
    sd_err err = {0};
    assert_int_equal(sd_read_file(path, buf, len, &err), SD_OK);
}

static void write_all(const char *path, const void *buf, size_t len) {
    sd_err err = {0};
    assert_int_equal(sd_write_file_atomic(path, buf, len, &err), SD_OK);
}

/* Opens buf as a GGUF and asserts it is refused with SD_ERR_FORMAT, a message naming the file
 * and containing `needle` (if non-NULL). */
static void assert_refused(const void *buf, size_t len, const char *needle) {
    gguf_file *g = NULL;
    sd_err err = {0};
    int rc = gguf_parse(&g, buf, len, "bad.gguf", &err);
    if (rc != SD_ERR_FORMAT) {
        gguf_close(g);
        fail_msg("accepted a bad file (len %zu, expected \"%s\")", len, needle ? needle : "");
    }
    assert_null(g);
    assert_int_equal(err.code, SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "bad.gguf"));
    if (needle && !strstr(err.msg, needle)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
}

static void test_kv_and_tensor_round_trip(void **state) {
    (void)state;
    gguf_writer *w = gguf_writer_new();
    sd_err err = {0};
    gguf_set_str(w, "general.name", "first");
    gguf_set_str(w, "general.name", "test model"); /* replaces */
    gguf_set_u32(w, "k.u32", 4000000000u);
    gguf_set_i32(w, "k.i32", -123456);
    gguf_set_u64(w, "k.u64", 1ull << 40);
    gguf_set_f32(w, "k.f32", 0.1f);
    gguf_set_bool(w, "k.bool", 1);
    const char *strs[] = {"alpha", "", "γάμμα", "with space"};
    gguf_set_arr_str(w, "k.astr", strs, 4);
    int32_t ints[] = {-1, 0, 7, INT32_MAX};
    gguf_set_arr_i32(w, "k.ai32", ints, 4);
    float fl[] = {1.5f, -2.25f, 1e-30f};
    gguf_set_arr_f32(w, "k.af32", fl, 3);
    gguf_set_u32(w, "general.alignment", 64);
    /* tensors: F32 random, F16 from values exactly representable in half precision, and F16 edge
     * cases (max, overflow, subnormal, round-to-even) */
    float a[6 * 5], h[64], e[8];
    sd_rng r;
    sd_rng_seed(&r, 5);
    for (int i = 0; i < 30; i++) a[i] = (float)sd_rng_normal(&r);
    for (int i = 0; i < 64; i++) h[i] = (float)((int)sd_rng_below(&r, 4096) - 2048) / 256.0f; /* 12 bits: exact */
    e[0] = 65504.0f;          /* largest half */
    e[1] = 1e6f;              /* overflows to +inf */
    e[2] = 0x1p-24f;          /* smallest subnormal half */
    e[3] = 1.0f + 0x1p-11f;   /* halfway between 1 and 1+2^-10: rounds to even (1) */
    e[4] = 1.0f + 3 * 0x1p-11f; /* halfway between 1+2^-10 and 1+2^-9: rounds to even (1+2^-9) */
    e[5] = -0.0f;
    e[6] = 0x1p-26f;          /* below half the smallest subnormal: 0 */
    e[7] = -3.0f;
    int64_t ne_a[2] = {6, 5}, ne_h[3] = {4, 4, 4}, ne_e[1] = {8};
    assert_int_equal(gguf_add_tensor(w, "a", GGUF_TENSOR_F32, 2, ne_a, a, &err), SD_OK);
    assert_int_equal(gguf_add_tensor(w, "h", GGUF_TENSOR_F16, 3, ne_h, h, &err), SD_OK);
    assert_int_equal(gguf_add_tensor(w, "e", GGUF_TENSOR_F16, 1, ne_e, e, &err), SD_OK);
    assert_int_equal(gguf_add_tensor(w, "a", GGUF_TENSOR_F32, 2, ne_a, a, &err), SD_ERR_USAGE);
    assert_int_equal(gguf_add_tensor(w, "q", GGUF_TENSOR_Q8_0, 2, ne_a, a, &err), SD_ERR_USAGE);
    char *path = tmp_path("rt.gguf");
    assert_int_equal(gguf_writer_write(w, path, &err), SD_OK);
    gguf_writer_free(w);

    gguf_file *g;
    assert_int_equal(gguf_open(&g, path, &err), SD_OK);
    assert_int_equal(gguf_version(g), 3);
    assert_int_equal(gguf_alignment(g), 64);
    assert_int_equal(gguf_n_kv(g), 10);
    char *s;
    assert_int_equal(gguf_get_str(g, "general.name", &s, &err), SD_OK);
    assert_string_equal(s, "test model");
    free(s);
    uint32_t u32;
    int32_t i32;
    int64_t i64;
    float f;
    int b;
    assert_int_equal(gguf_get_u32(g, "k.u32", &u32, &err), SD_OK);
    assert_true(u32 == 4000000000u);
    assert_int_equal(gguf_get_i32(g, "k.u32", &i32, &err), SD_ERR_FORMAT); /* does not fit */
    assert_int_equal(gguf_get_i32(g, "k.i32", &i32, &err), SD_OK);
    assert_int_equal(i32, -123456);
    assert_int_equal(gguf_get_int(g, "k.u64", &i64, &err), SD_OK);
    assert_true(i64 == (1ll << 40));
    assert_int_equal(gguf_get_f32(g, "k.f32", &f, &err), SD_OK);
    assert_true(f == 0.1f);
    assert_int_equal(gguf_get_bool(g, "k.bool", &b, &err), SD_OK);
    assert_int_equal(b, 1);
    assert_int_equal(gguf_get_u32(g, "general.name", &u32, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "has type string"));
    assert_int_equal(gguf_get_u32(g, "no.such.key", &u32, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "no.such.key missing"));
    int64_t ai = gguf_find_kv(g, "k.astr");
    assert_true(ai >= 0);
    assert_int_equal(gguf_kv_arr_n(g, ai), 4);
    for (int j = 0; j < 4; j++) {
        const char *v;
        uint64_t l;
        assert_int_equal(gguf_get_arr_str(g, ai, (uint64_t)j, &v, &l), SD_OK);
        assert_int_equal(l, strlen(strs[j]));
        assert_memory_equal(v, strs[j], l);
    }
    assert_int_equal(gguf_get_arr_str(g, ai, 4, &(const char *){0}, &(uint64_t){0}), SD_ERR_USAGE);
    int32_t *iv;
    uint64_t n;
    assert_int_equal(gguf_get_arr_i32(g, "k.ai32", &iv, &n, &err), SD_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(iv, ints, sizeof ints);
    free(iv);
    gguf_type et;
    const void *d;
    assert_int_equal(gguf_get_arr(g, "k.af32", &et, &n, &d, &err), SD_OK);
    assert_int_equal(et, GGUF_TYPE_FLOAT32);
    assert_int_equal(n, 3);
    assert_memory_equal(d, fl, sizeof fl);

    assert_int_equal(gguf_n_tensors(g), 3);
    const gguf_tensor *ta = gguf_find_tensor(g, "a"), *th = gguf_find_tensor(g, "h"), *te = gguf_find_tensor(g, "e");
    assert_non_null(ta);
    assert_int_equal(ta->type, GGUF_TENSOR_F32);
    assert_int_equal(ta->n_dims, 2);
    assert_int_equal(ta->ne[0], 6);
    assert_int_equal(ta->ne[1], 5);
    assert_int_equal(ta->ne[2], 1);
    assert_memory_equal(ta->data, a, sizeof a);
    assert_int_equal(th->n_dims, 3);
    assert_int_equal(th->nbytes, 128);
    for (int i = 0; i < 3; i++) assert_int_equal(gguf_tensor_at(g, i)->offset % 64, 0);
    float back[64];
    assert_int_equal(gguf_tensor_to_f32(g, th, back, &err), SD_OK);
    assert_memory_equal(back, h, sizeof h); /* exactly representable: bit-exact */
    assert_int_equal(gguf_tensor_to_f32(g, te, back, &err), SD_OK);
    assert_true(back[0] == 65504.0f);
    assert_true(isinf(back[1]) && back[1] > 0);
    assert_true(back[2] == 0x1p-24f);
    assert_true(back[3] == 1.0f);
    assert_true(back[4] == 1.0f + 0x1p-9f);
    assert_true(back[5] == 0.0f && signbit(back[5]));
    assert_true(back[6] == 0.0f);
    assert_true(back[7] == -3.0f);
    assert_null(gguf_find_tensor(g, "nope"));
    gguf_close(g);
    free(path);
}

/* A hand-built GGUF with one Q8_0 tensor of 64 elements (2 blocks); no KVs. */
static size_t build_q8(uint8_t *buf) {
    size_t n = 0;
#define PUT(v, k) (memcpy(buf + n, &(v), k), n += k)
    uint32_t u;
    uint64_t q;
    memcpy(buf, "GGUF", 4), n = 4;
    u = 3, PUT(u, 4);
    q = 1, PUT(q, 8);
    q = 0, PUT(q, 8);
    q = 1, PUT(q, 8);
    buf[n++] = 'q';
    u = 1, PUT(u, 4);
    q = 64, PUT(q, 8);
    u = GGUF_TENSOR_Q8_0, PUT(u, 4);
    q = 0, PUT(q, 8);
    while (n % 32) buf[n++] = 0;
    for (int blk = 0; blk < 2; blk++) {
        uint16_t d = blk == 0 ? 0x3800 : 0xC000; /* f16 0.5 and -2.0 */
        PUT(d, 2);
        for (int i = 0; i < 32; i++) buf[n++] = (uint8_t)(int8_t)(i - 16);
    }
#undef PUT
    return n;
}

static void test_q8_0_dequantised(void **state) {
    (void)state;
    uint8_t buf[256];
    size_t n = build_q8(buf);
    gguf_file *g;
    sd_err err = {0};
    assert_int_equal(gguf_parse(&g, buf, n, "q8.gguf", &err), SD_OK);
    const gguf_tensor *t = gguf_find_tensor(g, "q");
    assert_non_null(t);
    assert_int_equal(t->nbytes, 68);
    float out[64];
    assert_int_equal(gguf_tensor_to_f32(g, t, out, &err), SD_OK);
    for (int i = 0; i < 32; i++) {
        assert_true(out[i] == 0.5f * (float)(i - 16));
        assert_true(out[32 + i] == -2.0f * (float)(i - 16));
    }
    gguf_close(g);
    /* cut one byte off the data: refused */
    assert_refused(buf, n - 1, "outside the file");
}

/* The scalar and array types the writer never produces (u8, i8, u16, i16, i64, f64, arrays of
 * u16 and f64), hand-encoded, through the typed getters. */
static void test_reader_other_kv_types(void **state) {
    (void)state;
    uint8_t buf[512];
    size_t n = 0;
#define PUT(v, k) (memcpy(buf + n, &(v), k), n += k)
#define KEY(s) do { uint64_t l_ = strlen(s); PUT(l_, 8); memcpy(buf + n, s, l_); n += l_; } while (0)
    uint32_t u;
    uint64_t q;
    memcpy(buf, "GGUF", 4), n = 4;
    u = 3, PUT(u, 4);
    q = 0, PUT(q, 8);
    q = 8, PUT(q, 8);
    uint8_t u8 = 200; int8_t i8 = -100; uint16_t u16 = 60000; int16_t i16 = -30000;
    int64_t i64 = -5000000000ll; double f64 = 2.5e-300;
    KEY("a.u8"); u = GGUF_TYPE_UINT8, PUT(u, 4), PUT(u8, 1);
    KEY("a.i8"); u = GGUF_TYPE_INT8, PUT(u, 4), PUT(i8, 1);
    KEY("a.u16"); u = GGUF_TYPE_UINT16, PUT(u, 4), PUT(u16, 2);
    KEY("a.i16"); u = GGUF_TYPE_INT16, PUT(u, 4), PUT(i16, 2);
    KEY("a.i64"); u = GGUF_TYPE_INT64, PUT(u, 4), PUT(i64, 8);
    KEY("a.f64"); u = GGUF_TYPE_FLOAT64, PUT(u, 4), PUT(f64, 8);
    uint16_t arr16[3] = {1, 65535, 7};
    KEY("a.arr16"); u = GGUF_TYPE_ARRAY, PUT(u, 4), u = GGUF_TYPE_UINT16, PUT(u, 4), q = 3, PUT(q, 8), PUT(arr16, 6);
    double arr64[2] = {1.0, -1.0};
    KEY("a.arrf64"); u = GGUF_TYPE_ARRAY, PUT(u, 4), u = GGUF_TYPE_FLOAT64, PUT(u, 4), q = 2, PUT(q, 8), PUT(arr64, 16);
#undef PUT
#undef KEY
    gguf_file *g;
    sd_err err = {0};
    assert_int_equal(gguf_parse(&g, buf, n, "types.gguf", &err), SD_OK);
    int64_t v;
    double d;
    assert_int_equal(gguf_get_int(g, "a.u8", &v, &err), SD_OK);
    assert_int_equal(v, 200);
    assert_int_equal(gguf_get_int(g, "a.i8", &v, &err), SD_OK);
    assert_int_equal(v, -100);
    assert_int_equal(gguf_get_int(g, "a.u16", &v, &err), SD_OK);
    assert_int_equal(v, 60000);
    assert_int_equal(gguf_get_int(g, "a.i16", &v, &err), SD_OK);
    assert_int_equal(v, -30000);
    assert_int_equal(gguf_get_int(g, "a.i64", &v, &err), SD_OK);
    assert_true(v == -5000000000ll);
    uint32_t u32;
    assert_int_equal(gguf_get_u32(g, "a.i64", &u32, &err), SD_ERR_FORMAT);
    assert_int_equal(gguf_get_float(g, "a.f64", &d, &err), SD_OK);
    assert_true(d == 2.5e-300);
    assert_int_equal(gguf_get_float(g, "a.u8", &d, &err), SD_ERR_FORMAT);
    int32_t *iv;
    uint64_t m;
    assert_int_equal(gguf_get_arr_i32(g, "a.arr16", &iv, &m, &err), SD_OK);
    assert_int_equal(m, 3);
    assert_int_equal(iv[1], 65535);
    free(iv);
    assert_int_equal(gguf_get_arr_i32(g, "a.arrf64", &iv, &m, &err), SD_ERR_FORMAT);
    gguf_type et;
    const void *data;
    assert_int_equal(gguf_get_arr(g, "a.arrf64", &et, &m, &data, &err), SD_OK);
    assert_int_equal(et, GGUF_TYPE_FLOAT64);
    assert_memory_equal(data, arr64, sizeof arr64);
    gguf_close(g);
    /* a bool byte other than 0/1 is refused */
    uint8_t bad[64];
    size_t k = 0;
    memcpy(bad, "GGUF", 4), k = 4;
    u = 3, memcpy(bad + k, &u, 4), k += 4;
    q = 0, memcpy(bad + k, &q, 8), k += 8;
    q = 1, memcpy(bad + k, &q, 8), k += 8;
    q = 1, memcpy(bad + k, &q, 8), k += 8;
    bad[k++] = 'b';
    u = GGUF_TYPE_BOOL, memcpy(bad + k, &u, 4), k += 4;
    bad[k++] = 2;
    assert_refused(bad, k, "bool value 2");
}

static lm_config tiny_config(int tied) {
    lm_config c = {.dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 40, .vocab_size = 300,
                   .seq_len = 64, .tied = tied, .norm_eps = 1e-5f, .rope_theta = 10000};
    return c;
}

static void test_model_round_trip(void **state) {
    (void)state;
    sd_err err = {0};
    for (int tied = 0; tied <= 1; tied++) {
        lm_config c = tiny_config(tied);
        lm_model m, back;
        assert_int_equal(lm_model_init(&m, &c, 42 + (uint64_t)tied, &err), SD_OK);
        /* make norms non-trivial so a swapped tensor would show */
        for (size_t i = 0; i < (size_t)(c.n_layers * c.dim); i++) m.w.attn_norm[i] = 1.0f + 0.01f * (float)i;
        char *path = tmp_path("m32.gguf");
        assert_int_equal(lm_gguf_save(path, &m, NULL, "tiny", &err), SD_OK);
        gguf_file *g;
        assert_int_equal(gguf_open(&g, path, &err), SD_OK);
        assert_int_equal(gguf_find_tensor(g, "output.weight") == NULL, tied);
        const gguf_tensor *k = gguf_find_tensor(g, "blk.1.attn_k.weight");
        assert_non_null(k);
        assert_int_equal(k->ne[0], c.dim);         /* ne = {in, out} */
        assert_int_equal(k->ne[1], lm_kv_dim(&c));
        const gguf_tensor *dn = gguf_find_tensor(g, "blk.0.ffn_down.weight");
        assert_int_equal(dn->ne[0], c.hidden_dim);
        assert_int_equal(dn->ne[1], c.dim);
        char *arch;
        assert_int_equal(gguf_get_str(g, "general.architecture", &arch, &err), SD_OK);
        assert_string_equal(arch, "llama");
        free(arch);
        uint32_t rd;
        assert_int_equal(gguf_get_u32(g, "llama.rope.dimension_count", &rd, &err), SD_OK);
        assert_int_equal(rd, 4);
        gguf_close(g);
        assert_int_equal(lm_gguf_load(path, &back, NULL, &err), SD_OK);
        assert_memory_equal(&back.cfg, &m.cfg, sizeof m.cfg);
        assert_int_equal(back.n_params, m.n_params);
        assert_int_equal(back.owns_params, 1);
        assert_memory_equal(back.params, m.params, m.n_params * sizeof(float)); /* F32: bit-exact */
        assert_true(back.w.out == (tied ? back.w.tok_emb : back.w.out));
        lm_model_free(&back);

        /* F16: each weight within half-precision rounding: relative 2^-11, plus 2^-25 absolute for
         * values in the subnormal range; norms stay F32 and are exact */
        assert_int_equal(lm_gguf_save_as(path, &m, NULL, "tiny", GGUF_TENSOR_F16, &err), SD_OK);
        assert_int_equal(lm_gguf_load(path, &back, NULL, &err), SD_OK);
        size_t differ = 0;
        for (size_t i = 0; i < m.n_params; i++) {
            float x = m.params[i], y = back.params[i];
            assert_true(fabsf(x - y) <= fabsf(x) * 0x1p-11f + 0x1p-25f);
            differ += x != y;
        }
        assert_true(differ > m.n_params / 2); /* really went through half precision */
        assert_memory_equal(back.w.attn_norm, m.w.attn_norm, (size_t)(c.n_layers * c.dim) * sizeof(float));
        lm_model_free(&back);
        lm_model_free(&m);
        free(path);
    }
}

/* Q8_0 (for inference): every matrix with rows of 32k quantised per block of 32 as ggml does;
 * each weight within 0.57 d of the original, d = max|x| / 127 over its block (half a step from
 * rounding, plus the f16 rounding of d times up to 127). */
static void test_model_q8_0_round_trip(void **state) {
    (void)state;
    sd_err err = {0};
    lm_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .hidden_dim = 72, .vocab_size = 300,
                   .seq_len = 64, .tied = 0, .norm_eps = 1e-5f, .rope_theta = 10000};
    lm_model m, back;
    assert_int_equal(lm_model_init(&m, &c, 9, &err), SD_OK);
    char *path = tmp_path("mq8.gguf");
    assert_int_equal(lm_gguf_save_as(path, &m, NULL, "q8", GGUF_TENSOR_Q8_0, &err), SD_OK);
    gguf_file *g;
    assert_int_equal(gguf_open(&g, path, &err), SD_OK);
    uint32_t ft;
    assert_int_equal(gguf_get_u32(g, "general.file_type", &ft, &err), SD_OK);
    assert_int_equal(ft, 7);
    assert_int_equal(gguf_find_tensor(g, "blk.0.attn_q.weight")->type, GGUF_TENSOR_Q8_0);
    assert_int_equal(gguf_find_tensor(g, "output.weight")->type, GGUF_TENSOR_Q8_0);
    assert_int_equal(gguf_find_tensor(g, "blk.0.ffn_down.weight")->type, GGUF_TENSOR_F16); /* rows of 72 */
    assert_int_equal(gguf_find_tensor(g, "blk.0.ffn_norm.weight")->type, GGUF_TENSOR_F32);
    gguf_close(g);
    assert_int_equal(lm_gguf_load(path, &back, NULL, &err), SD_OK);
    size_t n = (size_t)c.vocab_size * (size_t)c.dim, exact = 0; /* token_embd: all Q8_0 blocks */
    for (size_t b = 0; b < n / 32; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(m.w.tok_emb[32 * b + i]));
        for (int i = 0; i < 32; i++) {
            float x = m.w.tok_emb[32 * b + i], y = back.w.tok_emb[32 * b + i];
            assert_true(fabsf(x - y) <= 0.57f * amax / 127.0f + 1e-12f);
            exact += x == y;
        }
    }
    assert_true(exact < n / 4); /* really quantised */
    const float *w2 = m.w.w2, *w2b = back.w.w2; /* the F16 fallback */
    for (size_t i = 0; i < (size_t)(c.n_layers * c.dim * c.hidden_dim); i++)
        assert_true(fabsf(w2[i] - w2b[i]) <= fabsf(w2[i]) * 0x1p-11f + 0x1p-25f);
    assert_memory_equal(back.w.out_norm, m.w.out_norm, (size_t)c.dim * sizeof(float));
    lm_model_free(&back);
    lm_model_free(&m);
    free(path);
}

static void test_model_load_names_what_is_wrong(void **state) {
    (void)state;
    sd_err err = {0};
    lm_config c = tiny_config(0);
    lm_model m, back;
    assert_int_equal(lm_model_init(&m, &c, 1, &err), SD_OK);
    char *path = tmp_path("bad-model.gguf");

    /* a config key disagreeing with the tensors */
    gguf_writer *w = gguf_writer_new();
    assert_int_equal(lm_gguf_build(w, &m, NULL, "x", GGUF_TENSOR_F32, &err), SD_OK);
    gguf_set_u32(w, "llama.feed_forward_length", 48);
    gguf_set_str(w, "serendip.role", "novelty");
    assert_int_equal(gguf_writer_write(w, path, &err), SD_OK);
    gguf_writer_free(w);
    assert_int_equal(lm_gguf_load(path, &back, NULL, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "blk.0.ffn_gate.weight"));
    /* the extra serendip.* key is readable through the generic API */
    gguf_file *g;
    assert_int_equal(gguf_open(&g, path, &err), SD_OK);
    char *role;
    assert_int_equal(gguf_get_str(g, "serendip.role", &role, &err), SD_OK);
    assert_string_equal(role, "novelty");
    free(role);
    gguf_close(g);

    /* a missing tensor: the model's file with blk.1.attn_v.weight renamed */
    w = gguf_writer_new();
    assert_int_equal(lm_gguf_build(w, &m, NULL, "x", GGUF_TENSOR_F32, &err), SD_OK);
    assert_int_equal(gguf_writer_write(w, path, &err), SD_OK);
    gguf_writer_free(w);
    char *buf;
    size_t len;
    read_all(path, &buf, &len);
    char *at = memmem(buf, len, "blk.1.attn_v.weight", 19);
    assert_non_null(at);
    memcpy(at, "blk.1.attn_X", 12);
    write_all(path, buf, len);
    free(buf);
    assert_int_equal(lm_gguf_load(path, &back, NULL, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "blk.1.attn_v.weight missing"));

    /* too few tensors for the block count */
    w = gguf_writer_new();
    assert_int_equal(lm_gguf_build(w, &m, NULL, "x", GGUF_TENSOR_F32, &err), SD_OK);
    gguf_set_u32(w, "llama.block_count", 1000000);
    assert_int_equal(gguf_writer_write(w, path, &err), SD_OK);
    gguf_writer_free(w);
    assert_int_equal(lm_gguf_load(path, &back, NULL, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "block_count 1000000 needs"));

    /* a model without a tokenizer, asked for one */
    lm_tokenizer *t = NULL;
    assert_int_equal(lm_gguf_save(path, &m, NULL, "x", &err), SD_OK);
    assert_int_equal(lm_gguf_load(path, &back, &t, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tokenizer.ggml.model missing"));
    assert_null(t);
    /* a key missing */
    w = gguf_writer_new();
    gguf_set_str(w, "general.architecture", "llama");
    assert_int_equal(gguf_writer_write(w, path, &err), SD_OK);
    gguf_writer_free(w);
    assert_int_equal(lm_gguf_load(path, &back, NULL, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "llama.embedding_length missing"));
    lm_model_free(&m);
    free(path);
}

static size_t find_bytes(const char *hay, size_t n, const char *needle) {
    size_t l = strlen(needle);
    for (size_t i = 0; i + l <= n; i++)
        if (!memcmp(hay + i, needle, l)) return i;
    fail_msg("\"%s\" not in file", needle);
    return 0;
}

/* Values no header check covers: a NaN or infinite weight is refused at load, naming the file, the
 * tensor and the element (F32 keeps a NaN as is; 1e6 overflows half precision to infinity). */
static void test_model_non_finite_refused(void **state) {
    (void)state;
    sd_err err = {0};
    lm_config c = tiny_config(0);
    lm_model m, back;
    assert_int_equal(lm_model_init(&m, &c, 7, &err), SD_OK);
    char *path = tmp_path("nan.gguf");
    size_t at = 5; /* element 5 of blk.1.ffn_down.weight */
    m.w.w2[(size_t)c.dim * (size_t)c.hidden_dim + at] = NAN;
    assert_int_equal(lm_gguf_save(path, &m, NULL, "tiny", &err), SD_OK);
    assert_int_equal(lm_gguf_load(path, &back, NULL, &err), SD_ERR_FORMAT);
    if (!strstr(err.msg, "nan.gguf") || !strstr(err.msg, "blk.1.ffn_down.weight element 5 is NaN"))
        fail_msg("message: %s", err.msg);
    m.w.w2[(size_t)c.dim * (size_t)c.hidden_dim + at] = 1e6f;
    assert_int_equal(lm_gguf_save_as(path, &m, NULL, "tiny", GGUF_TENSOR_F16, &err), SD_OK);
    assert_int_equal(lm_gguf_load(path, &back, NULL, &err), SD_ERR_FORMAT);
    if (!strstr(err.msg, "blk.1.ffn_down.weight element 5 is infinite")) fail_msg("message: %s", err.msg);
    m.w.w2[(size_t)c.dim * (size_t)c.hidden_dim + at] = 0.5f; /* finite again: loads */
    assert_int_equal(lm_gguf_save_as(path, &m, NULL, "tiny", GGUF_TENSOR_F16, &err), SD_OK);
    assert_int_equal(lm_gguf_load(path, &back, NULL, &err), SD_OK);
    lm_model_free(&back);
    lm_model_free(&m);
    free(path);
}

static void test_corrupt_files_refused(void **state) {
    (void)state;
    sd_err err = {0};
    lm_config c = tiny_config(1);
    c.vocab_size = 263;
    lm_model m;
    assert_int_equal(lm_model_init(&m, &c, 3, &err), SD_OK);
    char *path = tmp_path("good.gguf");
    /* with a small tokenizer so that string arrays are exercised */
    lm_tokenizer *t;
    assert_int_equal(tok_train("abc abc", 7, 263, &t, &err), SD_OK);
    assert_int_equal(lm_gguf_save(path, &m, t, "good", &err), SD_OK);
    char *buf;
    size_t len;
    read_all(path, &buf, &len);
    gguf_file *g;
    assert_int_equal(gguf_parse(&g, buf, len, "good.gguf", &err), SD_OK);
    gguf_close(g);

    /* truncated at every offset up to the end of the metadata, then at a stride through the data */
    size_t meta_end = find_bytes(buf, len, "output_norm.weight") + 40;
    for (size_t cut = 0; cut < len; cut += cut < meta_end ? 1 : 97) assert_refused(buf, cut, NULL);

    char *bad = malloc(len);
    /* foreign */
    memcpy(bad, buf, len);
    memcpy(bad, "GGML", 4);
    assert_refused(bad, len, "not a GGUF file");
    /* wrong version */
    memcpy(bad, buf, len);
    uint32_t v = 2;
    memcpy(bad + 4, &v, 4);
    assert_refused(bad, len, "version 2");
    /* absurd KV count */
    memcpy(bad, buf, len);
    uint64_t big = UINT64_MAX / 2;
    memcpy(bad + 16, &big, 8);
    assert_refused(bad, len, "KV count");
    /* a string length that overflows */
    memcpy(bad, buf, len);
    size_t ks = find_bytes(buf, len, "general.architecture") - 8;
    big = UINT64_MAX - 3;
    memcpy(bad + ks, &big, 8);
    assert_refused(bad, len, "truncated");
    /* tensor info fields of output_norm.weight (1 dim): name, n_dims, ne[0], type, offset */
    size_t ti = find_bytes(buf, len, "output_norm.weight") + strlen("output_norm.weight");
    memcpy(bad, buf, len);
    uint64_t off = (uint64_t)len / 32 * 32 + 4; /* misaligned */
    memcpy(bad + ti + 4 + 8 + 4, &off, 8);
    assert_refused(bad, len, "not a multiple of the alignment");
    off = ((uint64_t)len / 32 + 1) * 32; /* aligned, but not where the packed layout puts it */
    memcpy(bad + ti + 4 + 8 + 4, &off, 8);
    assert_refused(bad, len, "must be packed in order");
    memcpy(bad, buf, len);
    int64_t ne_big = 1000; /* 4000 bytes: fits in the file, but not after this tensor's offset */
    assert_true(4000 < len);
    memcpy(bad + ti + 4, &ne_big, 8);
    assert_refused(bad, len, "outside the file");
    memcpy(bad, buf, len);
    uint32_t ty = 77;
    memcpy(bad + ti + 4 + 8, &ty, 4);
    assert_refused(bad, len, "unknown type 77");
    memcpy(bad, buf, len);
    int64_t ne0 = INT64_MAX / 2;
    memcpy(bad + ti + 4, &ne0, 8);
    assert_refused(bad, len, "output_norm.weight");
    memcpy(bad, buf, len);
    uint32_t nd = 5;
    memcpy(bad + ti, &nd, 4);
    assert_refused(bad, len, "5 dims");
    /* an unknown KV value type */
    memcpy(bad, buf, len);
    size_t kt = find_bytes(buf, len, "general.name") + strlen("general.name");
    ty = 99;
    memcpy(bad + kt, &ty, 4);
    assert_refused(bad, len, "unknown value type 99");

    /* the file API names the path too */
    char *p2 = tmp_path("trunc.gguf");
    write_all(p2, buf, len / 2);
    assert_int_equal(gguf_open(&g, p2, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, p2));
    lm_model back;
    assert_int_equal(lm_gguf_load(p2, &back, NULL, &err), SD_ERR_FORMAT);
    free(p2);
    free(bad);
    free(buf);
    free(path);
    tok_free(t);
    lm_model_free(&m);
}

int main(void) {
    if (!mkdtemp(g_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_and_tensor_round_trip),
        cmocka_unit_test(test_q8_0_dequantised),
        cmocka_unit_test(test_reader_other_kv_types),
        cmocka_unit_test(test_model_round_trip),
        cmocka_unit_test(test_model_q8_0_round_trip),
        cmocka_unit_test(test_model_load_names_what_is_wrong),
        cmocka_unit_test(test_corrupt_files_refused),
        cmocka_unit_test(test_model_non_finite_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return rc;
}
