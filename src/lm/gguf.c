/* gguf.c - GGUF v3: a bounds-checked mmap reader, an atomic writer, and llama/qwen2 models in GGUF.
 *
 * Written by hand, and why: ggml's own gguf reader is C++ inside libggml, which is not a Debian
 * bookworm package; the format is small and fully specified (docs/formats-gguf.md), and a reader
 * that checks every field against the file size is the part that matters for untrusted files
 * (fuzz/fuzz_gguf.c drives it). Tensor encodings (F16 and the quantized block formats) are decoded
 * and encoded by lm_quant.h (src/lm/quant.c).
 *
 * Reader: parse the header, KVs and tensor infos once into small tables (offsets into the map),
 * then every getter reads from the mapping. Nothing in the file is trusted: each length is
 * checked against the bytes left before it is used, counts are bounded by what could possibly fit,
 * sizes are computed with overflow checks. */
#include "serendip/gguf.h"

#include "serendip/lm_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- types */

static const char *const kv_type_names[GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
static const size_t kv_type_size[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_type_name(gguf_type t) {
    return (unsigned)t < GGUF_TYPE_COUNT ? kv_type_names[t] : "unknown";
}

/* ggml tensor types: block size (elements) and bytes per block, from ggml.c's type_traits. */
typedef struct {
    const char *name;
    uint32_t blck, size;
} tensor_type_info;

static const tensor_type_info tensor_types[] = {
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},        [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},     [6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},     [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},  [12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},  [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74}, [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110}, [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},       [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},       [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},  [30] = {"BF16", 1, 2},      [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},  [39] = {"MXFP4", 32, 17},
};
#define N_TENSOR_TYPES (sizeof tensor_types / sizeof tensor_types[0])

static const tensor_type_info *tensor_type(uint32_t t) {
    return t < N_TENSOR_TYPES && tensor_types[t].name ? &tensor_types[t] : NULL;
}

const char *gguf_tensor_type_name(uint32_t t) {
    const tensor_type_info *i = tensor_type(t);
    return i ? i->name : NULL;
}

/* ---------------------------------------------------------------- reader */

typedef struct {
    char *key;
    gguf_type type;
    uint64_t off;        /* file offset of the value (after the type field) */
    gguf_type arr_type;  /* for arrays */
    uint64_t arr_n;
    uint64_t *str_off;   /* string arrays: file offset of each element's length field */
} gguf_kv;

struct gguf_file {
    sd_map map;     /* owned when opened by path */
    int owns_map;
    const uint8_t *d;
    size_t size;
    char *name;
    uint32_t version;
    int64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *t;
    size_t alignment, data_off;
};

typedef struct {
    const uint8_t *d;
    size_t size, pos;
    const char *name;
    sd_err *err;
} cursor;

static int trunc_fail(cursor *c, const char *what, uint64_t need) {
    return sd_fail(c->err, SD_ERR_FORMAT, "%s: truncated: %s needs %llu bytes at offset %zu, only %zu left",
                   c->name, what, (unsigned long long)need, c->pos, c->size - c->pos);
}

static int rd(cursor *c, void *out, size_t n, const char *what) {
    if (n > c->size - c->pos) return trunc_fail(c, what, n);
    memcpy(out, c->d + c->pos, n);
    c->pos += n;
    return SD_OK;
}

/* Reads a GGUF string (u64 length + bytes): *off = offset of the bytes. */
static int rd_str(cursor *c, uint64_t *off, uint64_t *len, const char *what) {
    int rc = rd(c, len, 8, what);
    if (rc) return rc;
    if (*len > c->size - c->pos) return trunc_fail(c, what, *len);
    *off = c->pos;
    c->pos += *len;
    return SD_OK;
}

static int skip_value(cursor *c, gguf_kv *kv, const char *key) {
    if ((unsigned)kv->type >= GGUF_TYPE_COUNT)
        return sd_fail(c->err, SD_ERR_FORMAT, "%s: key %s has unknown value type %u", c->name, key, kv->type);
    if (kv->type == GGUF_TYPE_STRING) {
        uint64_t o, l;
        return rd_str(c, &o, &l, key);
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        size_t n = kv_type_size[kv->type];
        if (n > c->size - c->pos) return trunc_fail(c, key, n);
        if (kv->type == GGUF_TYPE_BOOL && c->d[c->pos] > 1)
            return sd_fail(c->err, SD_ERR_FORMAT, "%s: key %s: bool value %u is not 0 or 1", c->name, key,
                           c->d[c->pos]);
        c->pos += n;
        return SD_OK;
    }
    uint32_t et;
    int rc = rd(c, &et, 4, key);
    if (!rc) rc = rd(c, &kv->arr_n, 8, key);
    if (rc) return rc;
    kv->arr_type = (gguf_type)et;
    kv->off = c->pos;
    if (et >= GGUF_TYPE_COUNT || et == GGUF_TYPE_ARRAY)
        return sd_fail(c->err, SD_ERR_FORMAT, "%s: key %s: array element type %u is %s", c->name, key, et,
                       et == GGUF_TYPE_ARRAY ? "a nested array (unsupported)" : "unknown");
    if (et == GGUF_TYPE_STRING) {
        /* each element needs at least its 8-byte length */
        if (kv->arr_n > (c->size - c->pos) / 8) return trunc_fail(c, key, kv->arr_n * 8);
        kv->str_off = sd_malloc((size_t)(kv->arr_n ? kv->arr_n : 1) * sizeof *kv->str_off);
        for (uint64_t j = 0; j < kv->arr_n; j++) {
            uint64_t o, l;
            kv->str_off[j] = c->pos;
            if ((rc = rd_str(c, &o, &l, key))) return rc;
        }
        return SD_OK;
    }
    size_t es = kv_type_size[et];
    if (kv->arr_n > (c->size - c->pos) / es) return trunc_fail(c, key, kv->arr_n * es);
    c->pos += (size_t)kv->arr_n * es;
    return SD_OK;
}

void gguf_close(gguf_file *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str_off);
    }
    for (int64_t i = 0; i < g->n_tensors; i++) free((char *)g->t[i].name);
    free(g->kv);
    free(g->t);
    free(g->name);
    if (g->owns_map) sd_map_close(&g->map);
    free(g);
}

static int parse(gguf_file *g, sd_err *err) {
    cursor c = {g->d, g->size, 0, g->name, err};
    int rc;
    if (g->size < 4) return sd_fail(err, SD_ERR_FORMAT, "%s: not a GGUF file (%zu bytes, too short for the magic)", g->name, g->size);
    if (memcmp(g->d, "GGUF", 4) != 0)
        return sd_fail(err, SD_ERR_FORMAT, "%s: not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")",
                       g->name, g->d[0], g->d[1], g->d[2], g->d[3]);
    c.pos = 4;
    if ((rc = rd(&c, &g->version, 4, "version"))) return rc;
    if (g->version != GGUF_VERSION)
        return sd_fail(err, SD_ERR_FORMAT, "%s: GGUF version %u is not supported (serendip reads version %d)",
                       g->name, g->version, GGUF_VERSION);
    uint64_t nt, nk;
    if ((rc = rd(&c, &nt, 8, "tensor count")) || (rc = rd(&c, &nk, 8, "KV count"))) return rc;
    /* a KV takes at least 8 (key length) + 4 (type) + 1 bytes, a tensor info at least 8+4+8+4+8 */
    if (nk > (c.size - c.pos) / 13)
        return sd_fail(err, SD_ERR_FORMAT, "%s: KV count %llu cannot fit in %zu bytes", g->name,
                       (unsigned long long)nk, c.size);
    if (nt > (c.size - c.pos) / 32)
        return sd_fail(err, SD_ERR_FORMAT, "%s: tensor count %llu cannot fit in %zu bytes", g->name,
                       (unsigned long long)nt, c.size);
    g->kv = sd_calloc((size_t)nk + 1, sizeof *g->kv);
    g->t = sd_calloc((size_t)nt + 1, sizeof *g->t);
    for (uint64_t i = 0; i < nk; i++) {
        uint64_t ko, kl;
        char what[64];
        snprintf(what, sizeof what, "key of KV %llu", (unsigned long long)i);
        if ((rc = rd_str(&c, &ko, &kl, what))) return rc;
        gguf_kv *kv = &g->kv[i];
        kv->key = sd_strndup((const char *)c.d + ko, (size_t)kl);
        g->n_kv = (int64_t)i + 1;
        if (strlen(kv->key) != kl)
            return sd_fail(err, SD_ERR_FORMAT, "%s: key of KV %llu contains a NUL byte", g->name, (unsigned long long)i);
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->kv[j].key, kv->key))
                return sd_fail(err, SD_ERR_FORMAT, "%s: duplicate key %s", g->name, kv->key);
        uint32_t ty;
        if ((rc = rd(&c, &ty, 4, kv->key))) return rc;
        kv->type = (gguf_type)ty;
        kv->off = c.pos;
        if ((rc = skip_value(&c, kv, kv->key))) return rc;
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = gguf_find_kv(g, "general.alignment");
    if (ai >= 0) {
        uint32_t a;
        if (g->kv[ai].type != GGUF_TYPE_UINT32)
            return sd_fail(err, SD_ERR_FORMAT, "%s: general.alignment has type %s, expected u32", g->name,
                           gguf_type_name(g->kv[ai].type));
        memcpy(&a, g->d + g->kv[ai].off, 4);
        if (a == 0 || (a & (a - 1)))
            return sd_fail(err, SD_ERR_FORMAT, "%s: general.alignment %u is not a power of two", g->name, a);
        g->alignment = a;
    }
    for (uint64_t i = 0; i < nt; i++) {
        uint64_t no, nl;
        char what[64];
        snprintf(what, sizeof what, "name of tensor %llu", (unsigned long long)i);
        if ((rc = rd_str(&c, &no, &nl, what))) return rc;
        gguf_tensor *t = &g->t[i];
        t->name = sd_strndup((const char *)c.d + no, (size_t)nl);
        g->n_tensors = (int64_t)i + 1;
        if ((rc = rd(&c, &t->n_dims, 4, t->name))) return rc;
        if (t->n_dims < 1 || t->n_dims > 4)
            return sd_fail(err, SD_ERR_FORMAT, "%s: tensor %s has %u dims (1..4 allowed)", g->name, t->name, t->n_dims);
        for (int d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if ((rc = rd(&c, &t->ne[d], 8, t->name))) return rc;
        if ((rc = rd(&c, &t->type, 4, t->name)) || (rc = rd(&c, &t->offset, 8, t->name))) return rc;
        const tensor_type_info *ti = tensor_type(t->type);
        if (!ti) return sd_fail(err, SD_ERR_FORMAT, "%s: tensor %s has unknown type %u", g->name, t->name, t->type);
        uint64_t n = 1;
        for (int d = 0; d < 4; d++) {
            if (t->ne[d] < 0)
                return sd_fail(err, SD_ERR_FORMAT, "%s: tensor %s: dim %d is negative (%lld)", g->name, t->name, d,
                               (long long)t->ne[d]);
            if (t->ne[d] && n > (uint64_t)INT64_MAX / (uint64_t)t->ne[d])
                return sd_fail(err, SD_ERR_FORMAT, "%s: tensor %s: element count overflows", g->name, t->name);
            n *= (uint64_t)t->ne[d];
        }
        if (t->ne[0] % ti->blck)
            return sd_fail(err, SD_ERR_FORMAT, "%s: tensor %s: row length %lld is not a multiple of the %s block (%u)",
                           g->name, t->name, (long long)t->ne[0], ti->name, ti->blck);
        uint64_t nb = n / ti->blck;
        if (nb > SIZE_MAX / ti->size || nb * ti->size > g->size)
            return sd_fail(err, SD_ERR_FORMAT, "%s: tensor %s: %llu elements of %s do not fit in the file", g->name,
                           t->name, (unsigned long long)n, ti->name);
        t->nbytes = (size_t)(nb * ti->size);
        if (t->offset % g->alignment)
            return sd_fail(err, SD_ERR_FORMAT, "%s: tensor %s: offset %llu is not a multiple of the alignment %zu",
                           g->name, t->name, (unsigned long long)t->offset, g->alignment);
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->t[j].name, t->name))
                return sd_fail(err, SD_ERR_FORMAT, "%s: duplicate tensor %s", g->name, t->name);
    }
    size_t data_off = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (nt > 0 && data_off > g->size)
        return sd_fail(err, SD_ERR_FORMAT, "%s: truncated: data section at offset %zu is past the end (%zu bytes)",
                       g->name, data_off, g->size);
    g->data_off = data_off;
    uint64_t expect = 0; /* tensors are packed in order, each padded to the alignment (as ggml checks) */
    for (uint64_t i = 0; i < nt; i++) {
        gguf_tensor *t = &g->t[i];
        if (t->offset != expect)
            return sd_fail(err, SD_ERR_FORMAT, "%s: tensor %s: offset %llu, expected %llu (tensors must be packed in order)",
                           g->name, t->name, (unsigned long long)t->offset, (unsigned long long)expect);
        expect += (t->nbytes + g->alignment - 1) / g->alignment * g->alignment;
        size_t avail = g->size - data_off;
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return sd_fail(err, SD_ERR_FORMAT,
                           "%s: tensor %s: data [%llu, +%zu) lies outside the file (data section holds %zu bytes)",
                           g->name, t->name, (unsigned long long)t->offset, t->nbytes, avail);
        t->data = g->d + data_off + t->offset;
    }
    return SD_OK;
}

int gguf_parse(gguf_file **out, const void *data, size_t size, const char *name, sd_err *err) {
    *out = NULL;
    gguf_file *g = sd_calloc(1, sizeof *g);
    g->d = data;
    g->size = size;
    g->name = sd_strdup(name ? name : "(buffer)");
    int rc = parse(g, err);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *out = g;
    return SD_OK;
}

int gguf_open(gguf_file **out, const char *path, sd_err *err) {
    *out = NULL;
    sd_map m;
    int rc = sd_map_open(&m, path, err);
    if (rc) return rc;
    static const uint8_t empty[1];
    rc = gguf_parse(out, m.data ? m.data : empty, m.size, path, err);
    if (rc) {
        sd_map_close(&m);
        return rc;
    }
    (*out)->map = m;
    (*out)->owns_map = 1;
    return SD_OK;
}

uint32_t gguf_version(const gguf_file *g) { return g->version; }
size_t gguf_alignment(const gguf_file *g) { return g->alignment; }
const char *gguf_name(const gguf_file *g) { return g->name; }
int64_t gguf_n_kv(const gguf_file *g) { return g->n_kv; }
const char *gguf_kv_key(const gguf_file *g, int64_t i) { return i >= 0 && i < g->n_kv ? g->kv[i].key : NULL; }
gguf_type gguf_kv_type(const gguf_file *g, int64_t i) { return g->kv[i].type; }
gguf_type gguf_kv_arr_type(const gguf_file *g, int64_t i) { return g->kv[i].arr_type; }
uint64_t gguf_kv_arr_n(const gguf_file *g, int64_t i) { return g->kv[i].type == GGUF_TYPE_ARRAY ? g->kv[i].arr_n : 0; }

int64_t gguf_find_kv(const gguf_file *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) return i;
    return -1;
}

static int find_typed(const gguf_file *g, const char *key, int64_t *i, sd_err *err) {
    *i = gguf_find_kv(g, key);
    if (*i < 0) return sd_fail(err, SD_ERR_FORMAT, "%s: key %s missing", g->name, key);
    return SD_OK;
}

static int wrong_type(const gguf_file *g, const char *key, gguf_type have, const char *want, sd_err *err) {
    return sd_fail(err, SD_ERR_FORMAT, "%s: key %s has type %s, expected %s", g->name, key, gguf_type_name(have), want);
}

/* Reads an integer-typed scalar at off of type ty into *v; 0 if ty is not an integer type. */
static int read_int(const uint8_t *p, gguf_type ty, int64_t *v, int *unsigned_big) {
    *unsigned_big = 0;
    switch (ty) {
    case GGUF_TYPE_UINT8: { uint8_t x; memcpy(&x, p, 1); *v = x; return 1; }
    case GGUF_TYPE_INT8: { int8_t x; memcpy(&x, p, 1); *v = x; return 1; }
    case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, p, 2); *v = x; return 1; }
    case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, p, 2); *v = x; return 1; }
    case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, p, 4); *v = x; return 1; }
    case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, p, 4); *v = x; return 1; }
    case GGUF_TYPE_BOOL: { *v = p[0]; return 1; }
    case GGUF_TYPE_UINT64: { uint64_t x; memcpy(&x, p, 8); *unsigned_big = x > INT64_MAX; *v = (int64_t)x; return 1; }
    case GGUF_TYPE_INT64: { int64_t x; memcpy(&x, p, 8); *v = x; return 1; }
    default: return 0;
    }
}

int gguf_get_int(const gguf_file *g, const char *key, int64_t *out, sd_err *err) {
    int64_t i;
    int rc = find_typed(g, key, &i, err), big;
    if (rc) return rc;
    if (!read_int(g->d + g->kv[i].off, g->kv[i].type, out, &big)) return wrong_type(g, key, g->kv[i].type, "an integer", err);
    if (big) return sd_fail(err, SD_ERR_FORMAT, "%s: key %s: value does not fit in int64", g->name, key);
    return SD_OK;
}

int gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out, sd_err *err) {
    int64_t v;
    int rc = gguf_get_int(g, key, &v, err);
    if (rc) return rc;
    if (v < 0 || v > UINT32_MAX) return sd_fail(err, SD_ERR_FORMAT, "%s: key %s: value %lld out of u32 range", g->name, key, (long long)v);
    *out = (uint32_t)v;
    return SD_OK;
}

int gguf_get_i32(const gguf_file *g, const char *key, int32_t *out, sd_err *err) {
    int64_t v;
    int rc = gguf_get_int(g, key, &v, err);
    if (rc) return rc;
    if (v < INT32_MIN || v > INT32_MAX) return sd_fail(err, SD_ERR_FORMAT, "%s: key %s: value %lld out of i32 range", g->name, key, (long long)v);
    *out = (int32_t)v;
    return SD_OK;
}

int gguf_get_float(const gguf_file *g, const char *key, double *out, sd_err *err) {
    int64_t i;
    int rc = find_typed(g, key, &i, err);
    if (rc) return rc;
    if (g->kv[i].type == GGUF_TYPE_FLOAT32) {
        float f;
        memcpy(&f, g->d + g->kv[i].off, 4);
        *out = f;
    } else if (g->kv[i].type == GGUF_TYPE_FLOAT64) memcpy(out, g->d + g->kv[i].off, 8);
    else return wrong_type(g, key, g->kv[i].type, "f32", err);
    return SD_OK;
}

int gguf_get_f32(const gguf_file *g, const char *key, float *out, sd_err *err) {
    double v;
    int rc = gguf_get_float(g, key, &v, err);
    if (!rc) *out = (float)v;
    return rc;
}

int gguf_get_bool(const gguf_file *g, const char *key, int *out, sd_err *err) {
    int64_t i;
    int rc = find_typed(g, key, &i, err);
    if (rc) return rc;
    if (g->kv[i].type != GGUF_TYPE_BOOL) return wrong_type(g, key, g->kv[i].type, "bool", err);
    *out = g->d[g->kv[i].off] != 0;
    return SD_OK;
}

int gguf_get_strv(const gguf_file *g, const char *key, const char **s, uint64_t *len, sd_err *err) {
    int64_t i;
    int rc = find_typed(g, key, &i, err);
    if (rc) return rc;
    if (g->kv[i].type != GGUF_TYPE_STRING) return wrong_type(g, key, g->kv[i].type, "string", err);
    memcpy(len, g->d + g->kv[i].off, 8);
    *s = (const char *)g->d + g->kv[i].off + 8;
    return SD_OK;
}

int gguf_get_str(const gguf_file *g, const char *key, char **out, sd_err *err) {
    const char *s;
    uint64_t n;
    int rc = gguf_get_strv(g, key, &s, &n, err);
    if (!rc) *out = sd_strndup(s, (size_t)n);
    return rc;
}

int gguf_get_arr(const gguf_file *g, const char *key, gguf_type *elem, uint64_t *n, const void **data, sd_err *err) {
    int64_t i;
    int rc = find_typed(g, key, &i, err);
    if (rc) return rc;
    if (g->kv[i].type != GGUF_TYPE_ARRAY) return wrong_type(g, key, g->kv[i].type, "array", err);
    *elem = g->kv[i].arr_type;
    *n = g->kv[i].arr_n;
    *data = g->kv[i].arr_type == GGUF_TYPE_STRING ? NULL : g->d + g->kv[i].off;
    return SD_OK;
}

int gguf_get_arr_str(const gguf_file *g, int64_t i, uint64_t j, const char **s, uint64_t *len) {
    if (i < 0 || i >= g->n_kv || g->kv[i].type != GGUF_TYPE_ARRAY || g->kv[i].arr_type != GGUF_TYPE_STRING ||
        j >= g->kv[i].arr_n)
        return SD_ERR_USAGE;
    memcpy(len, g->d + g->kv[i].str_off[j], 8);
    *s = (const char *)g->d + g->kv[i].str_off[j] + 8;
    return SD_OK;
}

int gguf_get_arr_i32(const gguf_file *g, const char *key, int32_t **out, uint64_t *n, sd_err *err) {
    gguf_type et;
    const void *d;
    *out = NULL;
    int rc = gguf_get_arr(g, key, &et, n, &d, err);
    if (rc) return rc;
    if (et == GGUF_TYPE_STRING || et == GGUF_TYPE_FLOAT32 || et == GGUF_TYPE_FLOAT64)
        return sd_fail(err, SD_ERR_FORMAT, "%s: key %s is an array of %s, expected integers", g->name, key, gguf_type_name(et));
    int32_t *v = sd_malloc((size_t)(*n ? *n : 1) * sizeof *v);
    size_t es = kv_type_size[et];
    for (uint64_t j = 0; j < *n; j++) {
        int64_t x = 0;
        int big = 0;
        read_int((const uint8_t *)d + j * es, et, &x, &big);
        if (big || x < INT32_MIN || x > INT32_MAX) {
            free(v);
            return sd_fail(err, SD_ERR_FORMAT, "%s: key %s: element %llu out of i32 range", g->name, key, (unsigned long long)j);
        }
        v[j] = (int32_t)x;
    }
    *out = v;
    return SD_OK;
}

int64_t gguf_n_tensors(const gguf_file *g) { return g->n_tensors; }
const gguf_tensor *gguf_tensor_at(const gguf_file *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->t[i] : NULL;
}
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->t[i].name, name)) return &g->t[i];
    return NULL;
}

int gguf_tensor_to_f32(const gguf_file *g, const gguf_tensor *t, float *out, sd_err *err) {
    size_t n = (size_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    if (!lm_qtype_ok(t->type))
        return sd_fail(err, SD_ERR_FORMAT,
                       "%s: tensor %s has type %s; serendip converts F32, F16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K",
                       g->name, t->name, gguf_tensor_type_name(t->type));
    lm_dequant_row(t->type, t->data, out, (int64_t)n); /* rows are whole blocks (checked by parse) */
    return SD_OK;
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    char *key;
    uint8_t *val; /* serialized type + value */
    size_t len;
} w_kv;

typedef struct {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[4];
    const float *data; /* borrowed, or own */
    float *own;        /* a copy the writer frees (lm_gguf_build's permuted qwen2 rows), or NULL */
    const void *raw;   /* already encoded bytes (nbytes, borrowed or in own) instead of data */
    size_t n, nbytes;
} w_tensor;

struct gguf_writer {
    sd_vec kv; /* w_kv */
    sd_vec t;  /* w_tensor */
};

gguf_writer *gguf_writer_new(void) {
    gguf_writer *w = sd_calloc(1, sizeof *w);
    sd_vec_init(&w->kv, sizeof(w_kv));
    sd_vec_init(&w->t, sizeof(w_tensor));
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->kv.len; i++) {
        free(((w_kv *)w->kv.data)[i].key);
        free(((w_kv *)w->kv.data)[i].val);
    }
    for (size_t i = 0; i < w->t.len; i++) {
        free(((w_tensor *)w->t.data)[i].name);
        free(((w_tensor *)w->t.data)[i].own);
    }
    sd_vec_free(&w->kv);
    sd_vec_free(&w->t);
    free(w);
}

/* A growable byte buffer for one serialized value. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} bbuf;

static void bb_put(bbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 16;
        b->p = sd_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u32(bbuf *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bbuf *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_str(bbuf *b, const char *s) {
    size_t n = strlen(s);
    bb_u64(b, n);
    bb_put(b, s, n);
}

/* Stores key -> serialized value b (takes b's buffer), replacing an earlier value of key. */
static void w_set(gguf_writer *w, const char *key, bbuf *b) {
    for (size_t i = 0; i < w->kv.len; i++) {
        w_kv *k = (w_kv *)w->kv.data + i;
        if (!strcmp(k->key, key)) {
            free(k->val);
            k->val = b->p, k->len = b->n;
            return;
        }
    }
    w_kv *k = sd_vec_push(&w->kv);
    k->key = sd_strdup(key);
    k->val = b->p, k->len = b->n;
}

void gguf_set_str(gguf_writer *w, const char *key, const char *val) {
    bbuf b = {0};
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_str(&b, val);
    w_set(w, key, &b);
}

static void set_scalar(gguf_writer *w, const char *key, gguf_type t, const void *v) {
    bbuf b = {0};
    bb_u32(&b, t);
    bb_put(&b, v, kv_type_size[t]);
    w_set(w, key, &b);
}
void gguf_set_u32(gguf_writer *w, const char *key, uint32_t v) { set_scalar(w, key, GGUF_TYPE_UINT32, &v); }
void gguf_set_i32(gguf_writer *w, const char *key, int32_t v) { set_scalar(w, key, GGUF_TYPE_INT32, &v); }
void gguf_set_u64(gguf_writer *w, const char *key, uint64_t v) { set_scalar(w, key, GGUF_TYPE_UINT64, &v); }
void gguf_set_f32(gguf_writer *w, const char *key, float v) { set_scalar(w, key, GGUF_TYPE_FLOAT32, &v); }
void gguf_set_bool(gguf_writer *w, const char *key, int v) {
    uint8_t x = v != 0;
    set_scalar(w, key, GGUF_TYPE_BOOL, &x);
}

void gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *vals, size_t n) {
    bbuf b = {0};
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, n);
    for (size_t i = 0; i < n; i++) bb_str(&b, vals[i]);
    w_set(w, key, &b);
}

static void set_arr(gguf_writer *w, const char *key, gguf_type t, const void *vals, size_t n) {
    bbuf b = {0};
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, t);
    bb_u64(&b, n);
    bb_put(&b, vals, n * kv_type_size[t]);
    w_set(w, key, &b);
}
void gguf_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, size_t n) { set_arr(w, key, GGUF_TYPE_INT32, v, n); }
void gguf_set_arr_f32(gguf_writer *w, const char *key, const float *v, size_t n) { set_arr(w, key, GGUF_TYPE_FLOAT32, v, n); }

int gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                    const float *data, sd_err *err) {
    if (!lm_qtype_ok(type))
        return sd_fail(err, SD_ERR_USAGE, "tensor %s: the writer stores F32, F16, Q8_0, Q4_0, Q4_K, Q5_K or Q6_K, not type %u",
                       name, type);
    if (n_dims < 1 || n_dims > 4) return sd_fail(err, SD_ERR_USAGE, "tensor %s: %u dims (1..4 allowed)", name, n_dims);
    for (size_t i = 0; i < w->t.len; i++)
        if (!strcmp(((w_tensor *)w->t.data)[i].name, name))
            return sd_fail(err, SD_ERR_USAGE, "tensor %s added twice", name);
    w_tensor t = {.type = type, .n_dims = n_dims, .data = data, .n = 1};
    for (int d = 0; d < 4; d++) t.ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0) return sd_fail(err, SD_ERR_USAGE, "tensor %s: dim %u is %lld", name, d, (long long)ne[d]);
        t.ne[d] = ne[d];
        t.n *= (size_t)ne[d];
    }
    if (ne[0] % lm_qtype_block(type))
        return sd_fail(err, SD_ERR_USAGE, "tensor %s: row length %lld is not a multiple of the %s block (%d)", name,
                       (long long)ne[0], lm_qtype_name(type), lm_qtype_block(type));
    t.nbytes = lm_qrow_bytes(type, t.ne[0]) * (t.n / (size_t)t.ne[0]);
    t.name = sd_strdup(name);
    *(w_tensor *)sd_vec_push(&w->t) = t;
    return SD_OK;
}

int gguf_add_tensor_raw(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                        const void *bytes, sd_err *err) {
    int rc = gguf_add_tensor(w, name, type, n_dims, ne, NULL, err);
    if (!rc) ((w_tensor *)w->t.data)[w->t.len - 1].raw = bytes;
    return rc;
}

static void write_pad(FILE *f, size_t pos, size_t align) {
    static const char zeros[256];
    size_t pad = (align - pos % align) % align;
    while (pad > 0) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        fwrite(zeros, 1, k, f);
        pad -= k;
    }
}

int gguf_writer_write(gguf_writer *w, const char *path, sd_err *err) {
    size_t align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->kv.len; i++) {
        w_kv *k = (w_kv *)w->kv.data + i;
        if (!strcmp(k->key, "general.alignment")) {
            uint32_t ty, a;
            memcpy(&ty, k->val, 4);
            if (ty != GGUF_TYPE_UINT32) return sd_fail(err, SD_ERR_USAGE, "general.alignment must be a u32");
            memcpy(&a, k->val + 4, 4);
            if (a == 0 || (a & (a - 1))) return sd_fail(err, SD_ERR_USAGE, "general.alignment %u is not a power of two", a);
            align = a;
        }
    }
    bbuf h = {0};
    bb_put(&h, "GGUF", 4);
    bb_u32(&h, GGUF_VERSION);
    bb_u64(&h, w->t.len);
    bb_u64(&h, w->kv.len);
    for (size_t i = 0; i < w->kv.len; i++) {
        w_kv *k = (w_kv *)w->kv.data + i;
        bb_str(&h, k->key);
        bb_put(&h, k->val, k->len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->t.len; i++) {
        w_tensor *t = (w_tensor *)w->t.data + i;
        bb_str(&h, t->name);
        bb_u32(&h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) bb_u64(&h, (uint64_t)t->ne[d]);
        bb_u32(&h, t->type);
        bb_u64(&h, off);
        off += (t->nbytes + align - 1) / align * align;
    }
    sd_afile a;
    int rc = sd_afile_open(&a, path, err);
    if (rc) { free(h.p); return rc; }
    fwrite(h.p, 1, h.n, a.f);
    write_pad(a.f, h.n, align);
    free(h.p);
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < w->t.len; i++) {
        w_tensor *t = (w_tensor *)w->t.data + i;
        size_t rb = lm_qrow_bytes(t->type, t->ne[0]), nrows = t->n / (size_t)t->ne[0];
        if (t->raw) fwrite(t->raw, 1, t->nbytes, a.f);
        else if (t->type == GGUF_TENSOR_F32) fwrite(t->data, 4, t->n, a.f);
        else {
            if (rb > cap) buf = sd_realloc(buf, cap = rb);
            for (size_t r = 0; r < nrows; r++) { /* encoded row by row */
                lm_quantize_row(t->type, t->data + r * (size_t)t->ne[0], buf, t->ne[0]);
                fwrite(buf, 1, rb, a.f);
            }
        }
        write_pad(a.f, t->nbytes, align);
    }
    free(buf);
    return sd_afile_commit(&a, err);
}

/* ---------------------------------------------------------------- Llama models */

/* The GGUF name and ggml shape of each of a model's tensors, in lm_weights order, for layer l
 * (l < 0 for the global ones). ne = {in, out} for a row-major [out][in] matrix. */
typedef struct {
    char name[64];
    int n_dims;
    int64_t ne[2];
    float *data; /* into the parameter block */
    int mat;     /* matrix index into lm_model.qm (7 l + t, 7 L, 7 L + 1), -1 for norms and biases */
    int permute; /* qwen2 q and k (weights and biases): rows in NEOX order in the file */
} lm_tensor_ref;

#define LM_MAX_REFS(c) (3 + 12 * (size_t)(c)->n_layers)

/* Lists m's tensors into refs (capacity LM_MAX_REFS); returns the count. out is omitted when
 * tied; qwen2 adds the q, k, v biases. w may be NULL (shapes only; data pointers NULL), and its
 * matrix pointers are NULL for a quantized base. */
static int lm_tensor_refs(const lm_config *c, const lm_weights *w, lm_tensor_ref *refs) {
    int64_t D = c->dim, H = c->hidden_dim, V = c->vocab_size, KvD = lm_kv_dim(c), L = c->n_layers;
    int n = 0, qwen = c->arch == LM_ARCH_QWEN2;
#define PTR(p, off) (w && (p) ? (p) + (off) : NULL)
#define REF(nm, nd, in, out_, ptr, mat_, perm)                                                        \
    do {                                                                                             \
        lm_tensor_ref *r_ = &refs[n++];                                                              \
        snprintf(r_->name, sizeof r_->name, "%s", nm);                                               \
        r_->n_dims = nd, r_->ne[0] = in, r_->ne[1] = out_, r_->data = ptr, r_->mat = mat_, r_->permute = perm; \
    } while (0)
    REF("token_embd.weight", 2, D, V, PTR(w->tok_emb, 0), (int)(LM_MAT_PER_LAYER * L), 0);
    for (int64_t l = 0; l < L; l++) {
        char nm[64];
        int m0 = (int)(LM_MAT_PER_LAYER * l);
#define LREF(suffix, nd, in, out_, ptr, mat_, perm)                \
    snprintf(nm, sizeof nm, "blk.%lld.%s", (long long)l, suffix); \
    REF(nm, nd, in, out_, ptr, mat_, perm)
        LREF("attn_norm.weight", 1, D, 1, PTR(w->attn_norm, l * D), -1, 0);
        LREF("attn_q.weight", 2, D, D, PTR(w->wq, l * D * D), m0 + LM_MAT_WQ, qwen);
        LREF("attn_k.weight", 2, D, KvD, PTR(w->wk, l * KvD * D), m0 + LM_MAT_WK, qwen);
        LREF("attn_v.weight", 2, D, KvD, PTR(w->wv, l * KvD * D), m0 + LM_MAT_WV, 0);
        if (qwen) {
            LREF("attn_q.bias", 1, D, 1, PTR(w->bq, l * D), -1, 1);
            LREF("attn_k.bias", 1, KvD, 1, PTR(w->bk, l * KvD), -1, 1);
            LREF("attn_v.bias", 1, KvD, 1, PTR(w->bv, l * KvD), -1, 0);
        }
        LREF("attn_output.weight", 2, D, D, PTR(w->wo, l * D * D), m0 + LM_MAT_WO, 0);
        LREF("ffn_norm.weight", 1, D, 1, PTR(w->ffn_norm, l * D), -1, 0);
        LREF("ffn_gate.weight", 2, D, H, PTR(w->w1, l * H * D), m0 + LM_MAT_W1, 0);
        LREF("ffn_down.weight", 2, H, D, PTR(w->w2, l * D * H), m0 + LM_MAT_W2, 0);
        LREF("ffn_up.weight", 2, D, H, PTR(w->w3, l * H * D), m0 + LM_MAT_W3, 0);
#undef LREF
    }
    REF("output_norm.weight", 1, D, 1, PTR(w->out_norm, 0), -1, 0);
    if (!c->tied) REF("output.weight", 2, D, V, PTR(w->out, 0), (int)(LM_MAT_PER_LAYER * L + 1), 0);
#undef REF
#undef PTR
    return n;
}

/* Rows of a (rows, cols) float tensor reordered between serendip's order and the file's:
 * to_file 1 writes dst[lm_qwen2_file_row(r)] = src[r], 0 writes dst[r] = src[lm_qwen2_file_row(r)]. */
static void permute_rows_f32(float *dst, const float *src, int64_t rows, int64_t cols, int hd, int to_file) {
    for (int64_t r = 0; r < rows; r++) {
        int64_t f = lm_qwen2_file_row(r, hd);
        memcpy(dst + (to_file ? f : r) * cols, src + (to_file ? r : f) * cols, (size_t)cols * sizeof(float));
    }
}

/* llama.cpp's LLAMA_FTYPE values for general.file_type */
#define LM_FTYPE_ALL_F32 0
#define LM_FTYPE_MOSTLY_F16 1
#define LM_FTYPE_MOSTLY_Q4_0 2
#define LM_FTYPE_MOSTLY_Q8_0 7
#define LM_FTYPE_MOSTLY_Q4_K_S 14
#define LM_FTYPE_MOSTLY_Q5_K_S 16
#define LM_FTYPE_MOSTLY_Q6_K 18

static uint32_t ftype_of(uint32_t tensor_type) {
    switch (tensor_type) {
    case GGUF_TENSOR_F16: return LM_FTYPE_MOSTLY_F16;
    case GGUF_TENSOR_Q8_0: return LM_FTYPE_MOSTLY_Q8_0;
    case LM_Q_Q4_0: return LM_FTYPE_MOSTLY_Q4_0;
    case LM_Q_Q4_K: return LM_FTYPE_MOSTLY_Q4_K_S;
    case LM_Q_Q5_K: return LM_FTYPE_MOSTLY_Q5_K_S;
    case LM_Q_Q6_K: return LM_FTYPE_MOSTLY_Q6_K;
    default: return LM_FTYPE_ALL_F32;
    }
}

/* The metadata key prefix of c's architecture. */
static const char *arch_name(const lm_config *c) { return c->arch == LM_ARCH_QWEN2 ? "qwen2" : "llama"; }

static void tok_to_gguf(gguf_writer *w, const lm_tokenizer *t) {
    int32_t n = tok_vocab_size(t), nm = tok_n_merges(t);
    const char **toks = sd_malloc((size_t)n * sizeof *toks);
    int32_t *types = sd_malloc((size_t)n * sizeof *types);
    for (int32_t i = 0; i < n; i++) {
        toks[i] = tok_token_text(t, i);
        types[i] = tok_token_type(t, i);
    }
    const char **merges = sd_malloc(((size_t)nm + 1) * sizeof *merges);
    for (int32_t r = 0; r < nm; r++) merges[r] = tok_merge(t, r);
    int spm = !strcmp(tok_model_name(t), "llama"); /* SentencePiece: scores, no merges */
    gguf_set_str(w, "tokenizer.ggml.model", tok_model_name(t));
    gguf_set_str(w, "tokenizer.ggml.pre", spm ? "default" : tok_pre_name(t));
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, (size_t)n);
    gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)n);
    if (!spm) gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, (size_t)nm);
    if (spm) {
        float *scores = sd_malloc((size_t)n * sizeof *scores);
        for (int32_t i = 0; i < n; i++) scores[i] = tok_token_score(t, i);
        gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, (size_t)n);
        gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", tok_add_space_prefix(t));
        free(scores);
    }
    if (tok_bos(t) >= 0) gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)tok_bos(t));
    if (tok_eos(t) >= 0) gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)tok_eos(t));
    if (tok_pad(t) >= 0) gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)tok_pad(t));
    gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 0);
    gguf_set_bool(w, "tokenizer.ggml.add_eos_token", 0);
    free(toks);
    free(types);
    free(merges);
}

int lm_gguf_build(gguf_writer *w, const lm_model *m, const lm_tokenizer *t, const char *name, uint32_t tensor_type,
                  sd_err *err) {
    const lm_config *c = &m->cfg;
    int rc = lm_config_check(c, err);
    if (rc) return rc;
    if (!lm_qtype_ok(tensor_type))
        return sd_fail(err, SD_ERR_USAGE, "models are saved as F32, F16, Q8_0, Q4_0, Q4_K, Q5_K or Q6_K, not type %u",
                       tensor_type);
    if (t && tok_vocab_size(t) != c->vocab_size)
        return sd_fail(err, SD_ERR_USAGE, "tokenizer has %d tokens but the model's vocab_size is %d", tok_vocab_size(t),
                       c->vocab_size);
    const char *a = arch_name(c);
    char key[96];
#define AKEY(suffix) (snprintf(key, sizeof key, "%s.%s", a, suffix), key)
    gguf_set_str(w, "general.architecture", a);
    gguf_set_str(w, "general.name", name ? name : "serendip");
    gguf_set_u32(w, "general.file_type", ftype_of(tensor_type));
    gguf_set_u32(w, AKEY("context_length"), (uint32_t)c->seq_len);
    gguf_set_u32(w, AKEY("embedding_length"), (uint32_t)c->dim);
    gguf_set_u32(w, AKEY("block_count"), (uint32_t)c->n_layers);
    gguf_set_u32(w, AKEY("feed_forward_length"), (uint32_t)c->hidden_dim);
    gguf_set_u32(w, AKEY("attention.head_count"), (uint32_t)c->n_heads);
    gguf_set_u32(w, AKEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    gguf_set_f32(w, AKEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
    gguf_set_f32(w, AKEY("rope.freq_base"), c->rope_theta);
    gguf_set_u32(w, AKEY("rope.dimension_count"), (uint32_t)lm_head_dim(c));
    gguf_set_u32(w, AKEY("vocab_size"), (uint32_t)c->vocab_size);
#undef AKEY
    if (t) tok_to_gguf(w, t);
    lm_tensor_ref *refs = sd_malloc(LM_MAX_REFS(c) * sizeof *refs);
    int n = lm_tensor_refs(c, &m->w, refs);
    for (int i = 0; i < n && !rc; i++) {
        /* norms and biases stay F32, as llama.cpp's converter keeps them; a matrix whose rows are
         * not a multiple of the format's block falls back to Q8_0, then F16 */
        uint32_t ty = refs[i].n_dims == 1 ? GGUF_TENSOR_F32 : tensor_type;
        if (refs[i].ne[0] % lm_qtype_block(ty)) /* llama-quantize's fallbacks for rows of partial 256-blocks */
            ty = refs[i].ne[0] % 32          ? GGUF_TENSOR_F16
                 : tensor_type == LM_Q_Q4_K ? LM_Q_Q5_0
                 : tensor_type == LM_Q_Q5_K ? LM_Q_Q5_1
                                            : GGUF_TENSOR_Q8_0;
        if (m->qm && refs[i].mat >= 0) { /* a quantized base: its matrices as they are */
            const lm_qmat *q = &m->qm[refs[i].mat];
            char *own = NULL;
            if (refs[i].permute) { /* back to the file's row order */
                own = sd_malloc(q->row_bytes * (size_t)q->rows);
                for (int64_t r = 0; r < q->rows; r++)
                    memcpy(own + lm_qwen2_file_row(r, lm_head_dim(c)) * q->row_bytes, lm_qmat_row_ptr(q, r), q->row_bytes);
            }
            rc = gguf_add_tensor_raw(w, refs[i].name, q->type, 2, refs[i].ne, own ? (const void *)own : q->data, err);
            if (rc) free(own);
            else ((w_tensor *)w->t.data)[w->t.len - 1].own = (float *)(void *)own;
            continue;
        }
        float *own = NULL;
        if (refs[i].permute) {
            int64_t rows = refs[i].n_dims == 2 ? refs[i].ne[1] : refs[i].ne[0], cols = refs[i].n_dims == 2 ? refs[i].ne[0] : 1;
            own = sd_malloc((size_t)(rows * cols) * sizeof(float));
            permute_rows_f32(own, refs[i].data, rows, cols, lm_head_dim(c), 1);
        }
        rc = gguf_add_tensor(w, refs[i].name, ty, (uint32_t)refs[i].n_dims, refs[i].ne, own ? own : refs[i].data, err);
        if (rc) free(own);
        else ((w_tensor *)w->t.data)[w->t.len - 1].own = own;
    }
    free(refs);
    return rc;
}

int lm_gguf_save_as(const char *path, const lm_model *m, const lm_tokenizer *t, const char *name, uint32_t tensor_type,
                    sd_err *err) {
    gguf_writer *w = gguf_writer_new();
    int rc = lm_gguf_build(w, m, t, name, tensor_type, err);
    if (!rc) rc = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    return rc;
}

int lm_gguf_save(const char *path, const lm_model *m, const lm_tokenizer *t, const char *name, sd_err *err) {
    return lm_gguf_save_as(path, m, t, name, GGUF_TENSOR_F32, err);
}

static int get_i32_pos(const gguf_file *g, const char *key, int32_t *out, sd_err *err) {
    int rc = gguf_get_i32(g, key, out, err);
    if (rc) return rc;
    if (*out <= 0) return sd_fail(err, SD_ERR_FORMAT, "%s: key %s is %d, must be positive", gguf_name(g), key, *out);
    return SD_OK;
}

int lm_gguf_read_config(const gguf_file *g, lm_config *c, sd_err *err) {
    memset(c, 0, sizeof *c);
    char *arch = NULL;
    int rc = gguf_get_str(g, "general.architecture", &arch, err);
    if (rc) return rc;
    if (!strcmp(arch, "qwen2")) c->arch = LM_ARCH_QWEN2;
    else if (strcmp(arch, "llama") != 0) {
        sd_fail(err, SD_ERR_FORMAT, "%s: architecture \"%s\" is not supported (serendip runs \"llama\" and \"qwen2\")",
                gguf_name(g), arch);
        free(arch);
        return SD_ERR_FORMAT;
    }
    free(arch);
    const char *a = arch_name(c);
    char k1[96], k2[96], k3[96], k4[96], k5[96];
#define AKEY(buf, suffix) (snprintf(buf, sizeof buf, "%s.%s", a, suffix), buf)
    if ((rc = get_i32_pos(g, AKEY(k1, "embedding_length"), &c->dim, err)) ||
        (rc = get_i32_pos(g, AKEY(k2, "block_count"), &c->n_layers, err)) ||
        (rc = get_i32_pos(g, AKEY(k3, "attention.head_count"), &c->n_heads, err)) ||
        (rc = get_i32_pos(g, AKEY(k4, "feed_forward_length"), &c->hidden_dim, err)) ||
        (rc = get_i32_pos(g, AKEY(k5, "context_length"), &c->seq_len, err)))
        return rc;
    c->n_kv_heads = c->n_heads;
    if (gguf_find_kv(g, AKEY(k1, "attention.head_count_kv")) >= 0 && (rc = get_i32_pos(g, k1, &c->n_kv_heads, err)))
        return rc;
    if ((rc = gguf_get_f32(g, AKEY(k1, "attention.layer_norm_rms_epsilon"), &c->norm_eps, err))) return rc;
    c->rope_theta = 10000.0f;
    if (gguf_find_kv(g, AKEY(k1, "rope.freq_base")) >= 0 && (rc = gguf_get_f32(g, k1, &c->rope_theta, err))) return rc;
    const gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return sd_fail(err, SD_ERR_FORMAT, "%s: tensor token_embd.weight missing", gguf_name(g));
    if (gguf_find_kv(g, AKEY(k1, "vocab_size")) >= 0) {
        if ((rc = get_i32_pos(g, k1, &c->vocab_size, err))) return rc;
    } else if (emb->ne[1] > 0 && emb->ne[1] <= INT32_MAX) c->vocab_size = (int32_t)emb->ne[1];
    c->tied = gguf_find_tensor(g, "output.weight") == NULL;
    if ((rc = lm_config_check(c, err))) {
        sd_err_prefix(err, "%s", gguf_name(g));
        err->code = SD_ERR_FORMAT;
        return SD_ERR_FORMAT;
    }
    /* RoPE frequency scaling (Llama 3.1/3.2's rope_freqs factors, linear/YaRN scaling) changes every
     * position's angle: refused rather than run with the wrong positions */
    char *scaling = NULL;
    if (gguf_find_kv(g, AKEY(k1, "rope.scaling.type")) >= 0) gguf_get_str(g, k1, &scaling, NULL);
    int scaled = scaling && strcmp(scaling, "none") != 0;
    free(scaling);
    if (scaled || gguf_find_tensor(g, "rope_freqs.weight"))
        return sd_fail(err, SD_ERR_FORMAT, "%s: RoPE frequency scaling (%s) is not supported", gguf_name(g),
                       scaled ? k1 : "tensor rope_freqs.weight, Llama 3.1+");
    if (gguf_find_kv(g, AKEY(k1, "rope.dimension_count")) >= 0) {
        int32_t rd_;
        if ((rc = gguf_get_i32(g, k1, &rd_, err))) return rc;
        if (rd_ != lm_head_dim(c))
            return sd_fail(err, SD_ERR_FORMAT, "%s: %s %d differs from head_dim %d (partial RoPE is not supported)",
                           gguf_name(g), k1, rd_, lm_head_dim(c));
    }
#undef AKEY
    return SD_OK;
}

int lm_gguf_load_tokenizer(const gguf_file *g, lm_tokenizer **out, sd_err *err) {
    return tok_load_gguf(g, out, err); /* src/lm/tokenizer_gguf.c: BPE families and SentencePiece */
}

/* Checks that every tensor of config c is present with the right shape. */
static int check_tensors(const gguf_file *g, const lm_config *c, sd_err *err) {
    int64_t need = 2 + (c->arch == LM_ARCH_QWEN2 ? 12 : 9) * (int64_t)c->n_layers + !c->tied;
    if (gguf_n_tensors(g) < need)
        return sd_fail(err, SD_ERR_FORMAT, "%s: %s.block_count %d needs %lld tensors, the file has %lld", gguf_name(g),
                       arch_name(c), c->n_layers, (long long)need, (long long)gguf_n_tensors(g));
    lm_tensor_ref *refs = sd_malloc(LM_MAX_REFS(c) * sizeof *refs);
    int n = lm_tensor_refs(c, NULL, refs), rc = SD_OK;
    for (int i = 0; i < n && !rc; i++) {
        const gguf_tensor *gt = gguf_find_tensor(g, refs[i].name);
        int64_t want1 = refs[i].n_dims == 2 ? refs[i].ne[1] : 1;
        if (!gt) rc = sd_fail(err, SD_ERR_FORMAT, "%s: tensor %s missing", gguf_name(g), refs[i].name);
        else if (gt->ne[0] != refs[i].ne[0] || gt->ne[1] != want1 || gt->ne[2] != 1 || gt->ne[3] != 1)
            rc = sd_fail(err, SD_ERR_FORMAT, "%s: tensor %s has shape [%lld, %lld, %lld, %lld], the config needs [%lld, %lld]",
                         gguf_name(g), refs[i].name, (long long)gt->ne[0], (long long)gt->ne[1], (long long)gt->ne[2],
                         (long long)gt->ne[3], (long long)refs[i].ne[0], (long long)want1);
        else if (!lm_qtype_ok(gt->type))
            rc = sd_fail(err, SD_ERR_FORMAT,
                         "%s: tensor %s has type %s; serendip loads F32, F16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K (requantize "
                         "with llama-quantize to one of them)",
                         gguf_name(g), refs[i].name, gguf_tensor_type_name(gt->type));
    }
    free(refs);
    return rc;
}

/* 1 when some matrix of the file is not F32 (a quantized or half-precision base). */
static int has_encoded_matrix(const gguf_file *g, const lm_tensor_ref *refs, int n) {
    for (int i = 0; i < n; i++)
        if (refs[i].mat >= 0 && gguf_find_tensor(g, refs[i].name)->type != GGUF_TENSOR_F32) return 1;
    return 0;
}

/* Copies the matrices of g into m->qm / m->qdata in their file encoding (rows of qwen2 q and k
 * reordered), each 64-byte aligned. Values are not scanned for NaN: decoding a whole published
 * model to check it would cost as much as loading it as F32. */
static void load_quant_matrices(const gguf_file *g, lm_model *m, const lm_tensor_ref *refs, int n) {
    const lm_config *c = &m->cfg;
    size_t nq = (size_t)LM_MAT_PER_LAYER * c->n_layers + 2, total = 0;
    m->qm = sd_calloc(nq, sizeof *m->qm);
    for (int i = 0; i < n; i++)
        if (refs[i].mat >= 0) total += (gguf_find_tensor(g, refs[i].name)->nbytes + 63) / 64 * 64;
    m->qdata = sd_malloc(total ? total : 1);
    m->qbytes = total;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (refs[i].mat < 0) continue;
        const gguf_tensor *gt = gguf_find_tensor(g, refs[i].name);
        lm_qmat *q = &m->qm[refs[i].mat];
        q->type = gt->type;
        q->cols = (int32_t)gt->ne[0];
        q->rows = (int32_t)gt->ne[1];
        q->row_bytes = lm_qrow_bytes(gt->type, gt->ne[0]);
        char *dst = (char *)m->qdata + off;
        if (refs[i].permute)
            for (int64_t r = 0; r < q->rows; r++)
                memcpy(dst + r * q->row_bytes, (const char *)gt->data + lm_qwen2_file_row(r, lm_head_dim(c)) * q->row_bytes,
                       q->row_bytes);
        else memcpy(dst, gt->data, gt->nbytes);
        q->data = dst;
        off += (gt->nbytes + 63) / 64 * 64;
    }
    if (c->tied) m->qm[nq - 1] = m->qm[nq - 2];
}

/* lm_gguf_load_from, keeping encoded matrices as they are when keep_quant. */
static int load_model(const gguf_file *g, lm_model *m, lm_tokenizer **t, int keep_quant, sd_err *err) {
    memset(m, 0, sizeof *m);
    if (t) *t = NULL;
    lm_config c;
    int rc = lm_gguf_read_config(g, &c, err);
    /* shapes first: the tensors then bound the allocation by the file's size */
    if (!rc) rc = check_tensors(g, &c, err);
    if (rc) return rc;
    lm_tensor_ref *refs = sd_malloc(LM_MAX_REFS(&c) * sizeof *refs);
    int n = lm_tensor_refs(&c, NULL, refs);
    keep_quant = keep_quant && has_encoded_matrix(g, refs, n);
    lm_model mm = {.cfg = c, .n_params = keep_quant ? lm_norm_param_count(&c) : lm_param_count(&c), .owns_params = 1};
    mm.params = sd_malloc(mm.n_params * sizeof(float));
    if (keep_quant) lm_weights_point_norms(&mm.w, &c, mm.params);
    else lm_weights_point(&mm.w, &c, mm.params);
    n = lm_tensor_refs(&c, &mm.w, refs);
    if (keep_quant) load_quant_matrices(g, &mm, refs, n);
    for (int i = 0; i < n && !rc; i++) {
        if (!refs[i].data) continue; /* a matrix kept encoded */
        const gguf_tensor *gt = gguf_find_tensor(g, refs[i].name);
        if ((rc = gguf_tensor_to_f32(g, gt, refs[i].data, err))) break;
        size_t ne = (size_t)(gt->ne[0] * gt->ne[1] * gt->ne[2] * gt->ne[3]);
        if (refs[i].permute) {
            int64_t rows = gt->ne[1] > 1 ? gt->ne[1] : gt->ne[0], cols = gt->ne[1] > 1 ? gt->ne[0] : 1;
            float *tmp = sd_malloc(ne * sizeof(float));
            memcpy(tmp, refs[i].data, ne * sizeof(float));
            permute_rows_f32(refs[i].data, tmp, rows, cols, lm_head_dim(&c), 0);
            free(tmp);
        }
        /* no header check covers the values: a diverged training run or a corrupted file shows
         * here, not as NaN logits (and a table of NaN scores) much later */
        for (size_t j = 0; j < ne && !rc; j++)
            if (!isfinite(refs[i].data[j]))
                rc = sd_fail(err, SD_ERR_FORMAT, "%s: tensor %s element %zu is %s (a diverged model or a corrupted file)",
                             gguf_name(g), refs[i].name, j, isnan(refs[i].data[j]) ? "NaN" : "infinite");
    }
    free(refs);
    if (!rc && t) rc = lm_gguf_load_tokenizer(g, t, err);
    if (!rc && t && tok_vocab_size(*t) != c.vocab_size)
        rc = sd_fail(err, SD_ERR_FORMAT, "%s: tokenizer has %d tokens but %s.vocab_size is %d", gguf_name(g),
                     tok_vocab_size(*t), arch_name(&c), c.vocab_size);
    if (rc) {
        if (t) {
            tok_free(*t);
            *t = NULL;
        }
        lm_model_free(&mm);
        return rc;
    }
    *m = mm;
    return SD_OK;
}

int lm_gguf_load_from(const gguf_file *g, lm_model *m, lm_tokenizer **t, sd_err *err) {
    return load_model(g, m, t, 0, err);
}

int lm_gguf_load_quant_from(const gguf_file *g, lm_model *m, lm_tokenizer **t, sd_err *err) {
    return load_model(g, m, t, 1, err);
}

int lm_gguf_load(const char *path, lm_model *m, lm_tokenizer **t, sd_err *err) {
    gguf_file *g;
    int rc = gguf_open(&g, path, err);
    if (rc) return rc;
    rc = lm_gguf_load_from(g, m, t, err);
    gguf_close(g);
    return rc;
}

int lm_gguf_load_quant(const char *path, lm_model *m, lm_tokenizer **t, sd_err *err) {
    gguf_file *g;
    int rc = gguf_open(&g, path, err);
    if (rc) return rc;
    rc = lm_gguf_load_quant_from(g, m, t, err);
    gguf_close(g);
    return rc;
}
