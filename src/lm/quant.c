/* quant.c - ggml block formats: decoders (reference and fast), encoders, and the dequantising
 * matrix products of lm_quant.h. Layouts from ggml-common.h, described in lm_quant.h. */
#include "serendip/lm_quant.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void openblas_set_num_threads(int);
int openblas_get_num_threads(void);

#define QK 32   /* elements of a Q4_0 / Q8_0 block */
#define QK_K 256 /* elements of a K-format super-block */

/* Floats of the stack tile of dequantised weight rows in the matrix products (128 KiB: inside
 * any thread's stack, and large enough that the tile of a 1536-wide matrix has 21 rows, which
 * BLAS runs near its full speed). */
#define TILE_FLOATS 32768

/* ---------------------------------------------------------------- types */

typedef struct {
    uint32_t type;
    const char *name;
    int blck;
    size_t bytes;
} qtype_info;

static const qtype_info qtypes[] = {
    {LM_Q_F32, "F32", 1, 4},        {LM_Q_F16, "F16", 1, 2},        {LM_Q_Q4_0, "Q4_0", QK, 18},
    {LM_Q_Q5_0, "Q5_0", QK, 22},    {LM_Q_Q5_1, "Q5_1", QK, 24},    {LM_Q_Q8_0, "Q8_0", QK, 34},    {LM_Q_Q4_K, "Q4_K", QK_K, 144}, {LM_Q_Q5_K, "Q5_K", QK_K, 176},
    {LM_Q_Q6_K, "Q6_K", QK_K, 210},
};
#define N_QTYPES (sizeof qtypes / sizeof qtypes[0])

static const qtype_info *qinfo(uint32_t t) {
    for (size_t i = 0; i < N_QTYPES; i++)
        if (qtypes[i].type == t) return &qtypes[i];
    return NULL;
}

int lm_qtype_ok(uint32_t type) { return qinfo(type) != NULL; }
const char *lm_qtype_name(uint32_t type) { return qinfo(type) ? qinfo(type)->name : "?"; }
int lm_qtype_block(uint32_t type) { return qinfo(type) ? qinfo(type)->blck : 0; }
size_t lm_qtype_block_bytes(uint32_t type) { return qinfo(type) ? qinfo(type)->bytes : 0; }
size_t lm_qrow_bytes(uint32_t type, int64_t n) {
    const qtype_info *q = qinfo(type);
    return q ? (size_t)(n / q->blck) * q->bytes : 0;
}

int lm_qtype_parse(const char *name) {
    for (size_t i = 0; i < N_QTYPES; i++)
        if (!strcasecmp(name, qtypes[i].name)) return (int)qtypes[i].type;
    return -1;
}

/* ---------------------------------------------------------------- half precision */

uint16_t lm_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xFF, man = x & 0x7FFFFFu;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00u | (man ? 0x200u | (man >> 13) : 0)); /* inf/nan */
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7C00u); /* overflow -> inf */
    if (e <= 0) {                                   /* subnormal half or zero */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* may carry into the exponent: correct */
    return (uint16_t)(sign | h);
}

float lm_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FFu, x;
    if (exp == 0) {
        if (!man) x = sign;
        else { /* subnormal: value = man * 2^-24 */
            float v = (float)man * 0x1p-24f;
            memcpy(&x, &v, 4);
            x |= sign;
        }
    } else if (exp == 31) x = sign | 0x7F800000u | (man << 13);
    else x = sign | ((exp - 15 + 127) << 23) | (man << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* Every half-precision value decoded once (256 KiB, as ggml's table): the build targets x86-64-v2,
 * which has no F16C instruction, and F16 weights and block scales are decoded in the hot loops. */
static float f16_table[65536];

__attribute__((constructor)) static void f16_table_init(void) {
    for (uint32_t h = 0; h < 65536; h++) f16_table[h] = lm_fp16_to_fp32((uint16_t)h);
}

static inline float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return f16_table[h];
}

static void wr_f16(uint8_t *p, float f) {
    uint16_t h = lm_fp32_to_fp16(f);
    memcpy(p, &h, 2);
}

/* 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block's 12 scale bytes: j < 4 in the
 * low 6 bits of bytes j (scale) and j + 4 (min); j >= 4 in the nibbles of byte j + 4 with the two
 * high bits in the top bits of bytes j - 4 (scale) and j (min). */
static inline void k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* The reference's half decoder: the arithmetic conversion, not the table. */
static float ref_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return lm_fp16_to_fp32(h);
}

/* ---------------------------------------------------------------- reference decoders
 * One element at a time, each from its own byte/bit position (the layout of lm_quant.h). */

static float ref_elem(uint32_t type, const uint8_t *row, int64_t i) {
    switch (type) {
    case LM_Q_F32: {
        float f;
        memcpy(&f, row + 4 * i, 4);
        return f;
    }
    case LM_Q_F16: return ref_f16(row + 2 * i);
    case LM_Q_Q8_0: {
        const uint8_t *b = row + (i / QK) * 34;
        return ref_f16(b) * (float)(int8_t)b[2 + i % QK];
    }
    case LM_Q_Q4_0: {
        const uint8_t *b = row + (i / QK) * 18;
        int j = (int)(i % QK), q = j < 16 ? (b[2 + j] & 0xF) : (b[2 + j - 16] >> 4);
        return ref_f16(b) * (float)(q - 8);
    }
    case LM_Q_Q5_0:
    case LM_Q_Q5_1: {
        int one = type == LM_Q_Q5_1;
        const uint8_t *b = row + (i / QK) * (one ? 24 : 22);
        int j = (int)(i % QK), h = one ? 4 : 2;
        uint32_t qh;
        memcpy(&qh, b + h, 4);
        int q = (j < 16 ? (b[h + 4 + j] & 0xF) : (b[h + 4 + j - 16] >> 4)) | (int)(((qh >> j) & 1) << 4);
        return one ? ref_f16(b) * (float)q + ref_f16(b + 2) : ref_f16(b) * (float)(q - 16);
    }
    case LM_Q_Q4_K:
    case LM_Q_Q5_K: {
        int five = type == LM_Q_Q5_K;
        const uint8_t *b = row + (i / QK_K) * (five ? 176 : 144);
        int j = (int)(i % QK_K), chunk = j / 64, w = j % 64, sub = j / 32, sc, m;
        const uint8_t *qs = b + 16 + (five ? 32 : 0);
        int q = w < 32 ? (qs[chunk * 32 + w] & 0xF) : (qs[chunk * 32 + w - 32] >> 4);
        if (five) q += ((b[16 + w % 32] >> sub) & 1) << 4; /* qh bit: 2 chunk + (w >= 32) == sub */
        k_scale_min(b + 4, sub, &sc, &m);
        return ref_f16(b) * (float)sc * (float)q - ref_f16(b + 2) * (float)m;
    }
    case LM_Q_Q6_K: {
        const uint8_t *b = row + (i / QK_K) * 210;
        int j = (int)(i % QK_K), half = j / 128, k = j % 128, quarter = k / 32, l = k % 32;
        uint8_t lo = b[half * 64 + l + (quarter & 1) * 32];
        int q = (quarter < 2 ? lo & 0xF : lo >> 4) | (((b[128 + half * 32 + l] >> (2 * quarter)) & 3) << 4);
        int sc = (int8_t)b[192 + half * 8 + l / 16 + 2 * quarter];
        return ref_f16(b + 208) * (float)sc * (float)(q - 32);
    }
    default: return NAN;
    }
}

void lm_dequant_ref(uint32_t type, const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = ref_elem(type, src, i);
}

/* ---------------------------------------------------------------- fast decoders (block loops) */
/* The block loops are written to vectorize (fixed trip counts, no variable shifts); GCC's -O2
 * cost model leaves most of them scalar, so they are compiled at -O3 (measured: see lm_quant.h). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define DEQ_FAST __attribute__((optimize("O3"), target_clones("arch=x86-64-v3", "default")))
#elif defined(__GNUC__) && !defined(__clang__)
#define DEQ_FAST __attribute__((optimize("O3")))
#else
#define DEQ_FAST
#endif


DEQ_FAST static void deq_q8_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t k = 0; k < nb; k++, b += 34, y += QK) {
        float d = rd_f16(b);
        const int8_t *q = (const int8_t *)(b + 2);
        for (int i = 0; i < QK; i++) y[i] = d * (float)q[i];
    }
}

DEQ_FAST static void deq_q4_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t k = 0; k < nb; k++, b += 18, y += QK) {
        float d = rd_f16(b);
        for (int i = 0; i < 16; i++) {
            y[i] = d * (float)((b[2 + i] & 0xF) - 8);
            y[i + 16] = d * (float)((b[2 + i] >> 4) - 8);
        }
    }
}

/* bit_x16[v][k] = 16 when bit k of byte v is set: the 5th bits of Q5_0/Q5_1 spread with four
 * table reads per block instead of a variable shift per element (x86-64-v2 has none in SIMD). */
static uint8_t bit_x16[256][8];

__attribute__((constructor)) static void bit_x16_init(void) {
    for (int v = 0; v < 256; v++)
        for (int k = 0; k < 8; k++) bit_x16[v][k] = (uint8_t)(((v >> k) & 1) << 4);
}

DEQ_FAST static void deq_q5_01(const uint8_t *b, float *y, int64_t nb, int one) {
    size_t bytes = one ? 24 : 22, h = one ? 4 : 2;
    for (int64_t k = 0; k < nb; k++, b += bytes, y += QK) {
        float d = rd_f16(b), m = one ? rd_f16(b + 2) : 0.0f;
        uint8_t hb[32]; /* 0 or 16 for element j: bit j of the little-endian u32 qh */
        for (int j = 0; j < 4; j++) memcpy(hb + 8 * j, bit_x16[b[h + j]], 8);
        const uint8_t *qs = b + h + 4;
        if (one)
            for (int i = 0; i < 16; i++) {
                y[i] = d * (float)((qs[i] & 0xF) | hb[i]) + m;
                y[i + 16] = d * (float)((qs[i] >> 4) | hb[i + 16]) + m;
            }
        else /* d (q - 16), not d q - 16 d: the same value and, as ggml, the same sign of a zero */
            for (int i = 0; i < 16; i++) {
                y[i] = d * (float)(((qs[i] & 0xF) | hb[i]) - 16);
                y[i + 16] = d * (float)(((qs[i] >> 4) | hb[i + 16]) - 16);
            }
    }
}

DEQ_FAST static void deq_q45_k(const uint8_t *b, float *y, int64_t nb, int five) {
    size_t bytes = five ? 176 : 144;
    for (int64_t k = 0; k < nb; k++, b += bytes) {
        float d = rd_f16(b), dmin = rd_f16(b + 2);
        const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + 16 + (five ? 32 : 0);
        for (int c = 0; c < 4; c++, qs += 32, y += 64) {
            int s0, m0, s1, m1;
            k_scale_min(sc, 2 * c, &s0, &m0);
            k_scale_min(sc, 2 * c + 1, &s1, &m1);
            float d0 = d * s0, n0 = dmin * m0, d1 = d * s1, n1 = dmin * m1;
            if (five) {
                int u0 = 1 << (2 * c), u1 = 2 << (2 * c);
                for (int l = 0; l < 32; l++) {
                    y[l] = d0 * (float)((qs[l] & 0xF) + (qh[l] & u0 ? 16 : 0)) - n0;
                    y[l + 32] = d1 * (float)((qs[l] >> 4) + (qh[l] & u1 ? 16 : 0)) - n1;
                }
            } else
                for (int l = 0; l < 32; l++) {
                    y[l] = d0 * (float)(qs[l] & 0xF) - n0;
                    y[l + 32] = d1 * (float)(qs[l] >> 4) - n1;
                }
        }
    }
}

DEQ_FAST static void deq_q6_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t k = 0; k < nb; k++, b += 210) {
        float d = rd_f16(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128)
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                y[l] = d * sc[is] * (float)(((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
                y[l + 32] = d * sc[is + 2] * (float)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                y[l + 64] = d * sc[is + 4] * (float)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                y[l + 96] = d * sc[is + 6] * (float)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
    }
}

void lm_dequant_row(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    switch (type) {
    case LM_Q_F32: memcpy(dst, src, (size_t)n * 4); break;
    case LM_Q_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = rd_f16(b + 2 * i);
        break;
    case LM_Q_Q8_0: deq_q8_0(b, dst, n / QK); break;
    case LM_Q_Q4_0: deq_q4_0(b, dst, n / QK); break;
    case LM_Q_Q5_0: deq_q5_01(b, dst, n / QK, 0); break;
    case LM_Q_Q5_1: deq_q5_01(b, dst, n / QK, 1); break;
    case LM_Q_Q4_K: deq_q45_k(b, dst, n / QK_K, 0); break;
    case LM_Q_Q5_K: deq_q45_k(b, dst, n / QK_K, 1); break;
    case LM_Q_Q6_K: deq_q6_k(b, dst, n / QK_K); break;
    default:
        for (int64_t i = 0; i < n; i++) dst[i] = NAN;
    }
}

/* ---------------------------------------------------------------- encoders */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Q8_0 as ggml's reference: d = max|x| / 127, q = round(x / d). */
static void enc_q8_0(const float *x, uint8_t *b) {
    float amax = 0;
    for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(x[i]));
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int i = 0; i < QK; i++) b[2 + i] = (uint8_t)(int8_t)roundf(x[i] * id);
}

/* Q4_0 as ggml's reference: d = (the element of largest magnitude, with its sign) / -8, so that
 * element maps to q = 0 exactly; q = clamp(round(x / d) + 8, 0, 15). */
static void enc_q4_0(const float *x, uint8_t *b) {
    float amax = 0, mx = 0;
    for (int i = 0; i < QK; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), mx = x[i];
    float d = mx / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int i = 0; i < 16; i++) {
        int q0 = clampi((int)(x[i] * id + 8.5f), 0, 15), q1 = clampi((int)(x[i + 16] * id + 8.5f), 0, 15);
        b[2 + i] = (uint8_t)(q0 | (q1 << 4));
    }
}

/* Q5_0 as Q4_0 with 32 levels: d = (signed extreme) / -16; Q5_1: d = (max - min) / 31, m = min,
 * q = round((x - m) / d). The 5th bits of the 32 quants go to the u32 qh (bit j for element j). */
static void enc_q5_01(const float *x, uint8_t *b, int one) {
    float d, m = 0, id;
    if (one) {
        float lo = x[0], hi = x[0];
        for (int i = 1; i < QK; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
        d = (hi - lo) / 31.0f, m = lo;
        wr_f16(b, d);
        wr_f16(b + 2, m);
    } else {
        float amax = 0, mx = 0;
        for (int i = 0; i < QK; i++)
            if (fabsf(x[i]) > amax) amax = fabsf(x[i]), mx = x[i];
        d = mx / -16.0f;
        wr_f16(b, d);
    }
    id = d != 0 ? 1.0f / d : 0.0f;
    size_t h = one ? 4 : 2;
    uint32_t qh = 0;
    for (int i = 0; i < 16; i++) {
        int q0 = one ? clampi((int)((x[i] - m) * id + 0.5f), 0, 31) : clampi((int)(x[i] * id + 16.5f), 0, 31);
        int q1 = one ? clampi((int)((x[i + 16] - m) * id + 0.5f), 0, 31) : clampi((int)(x[i + 16] * id + 16.5f), 0, 31);
        b[h + 4 + i] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
        qh |= (uint32_t)(q0 >> 4) << i;
        qh |= (uint32_t)(q1 >> 4) << (i + 16);
    }
    memcpy(b + h, &qh, 4);
}

/* Packs 8 six-bit scales and mins into 12 bytes (the inverse of k_scale_min). */
static void pack_k_scales(uint8_t *s, const int *sc, const int *m) {
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] |= (uint8_t)(sc[j] & 63);
            s[j + 4] |= (uint8_t)(m[j] & 63);
        } else {
            s[j + 4] = (uint8_t)((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
            s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            s[j] |= (uint8_t)((m[j] >> 4) << 6);
        }
    }
}

/* Q4_K / Q5_K: each sub-block of 32 fitted by its own min/max (x ~ step q - min, min >= 0 offset,
 * q in 0..nmax), then the 8 steps and mins quantized to 6 bits against the block's d and dmin. */
static void enc_q45_k(const float *x, uint8_t *b, int five) {
    int nmax = five ? 31 : 15;
    float step[8], mn[8], smax = 0, mmax = 0;
    for (int j = 0; j < 8; j++) {
        float lo = 0, hi = 0; /* the range always includes 0: mins are stored as non-negative offsets */
        for (int i = 0; i < 32; i++) lo = fminf(lo, x[32 * j + i]), hi = fmaxf(hi, x[32 * j + i]);
        step[j] = (hi - lo) / nmax;
        mn[j] = -lo;
        smax = fmaxf(smax, step[j]);
        mmax = fmaxf(mmax, mn[j]);
    }
    float d = smax / 63.0f, dmin = mmax / 63.0f;
    wr_f16(b, d);
    wr_f16(b + 2, dmin);
    d = rd_f16(b), dmin = rd_f16(b + 2); /* encode against the stored (f16) values */
    int sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = d > 0 ? clampi((int)lroundf(step[j] / d), 0, 63) : 0;
        m[j] = dmin > 0 ? clampi((int)lroundf(mn[j] / dmin), 0, 63) : 0;
    }
    pack_k_scales(b + 4, sc, m);
    uint8_t *qh = b + 16, *qs = b + 16 + (five ? 32 : 0);
    if (five) memset(qh, 0, 32);
    memset(qs, 0, 128);
    for (int j = 0; j < 8; j++) {
        float ds = d * sc[j], dm = dmin * m[j];
        for (int i = 0; i < 32; i++) {
            int q = ds > 0 ? clampi((int)lroundf((x[32 * j + i] + dm) / ds), 0, nmax) : 0;
            int c = j / 2, hi = j & 1;
            qs[32 * c + i] |= (uint8_t)((q & 0xF) << (hi ? 4 : 0));
            if (five && (q & 16)) qh[i] |= (uint8_t)(1 << j);
        }
    }
}

/* Q6_K: per 16 elements a signed scale (max |x| / 32), the 16 scales as int8 against d. */
static void enc_q6_k(const float *x, uint8_t *b) {
    float s[16], smax = 0;
    for (int j = 0; j < 16; j++) {
        float amax = 0;
        for (int i = 0; i < 16; i++) amax = fmaxf(amax, fabsf(x[16 * j + i]));
        s[j] = amax / 31.0f;
        smax = fmaxf(smax, s[j]);
    }
    float d = smax / 127.0f;
    wr_f16(b + 208, d);
    d = rd_f16(b + 208);
    int8_t *sc = (int8_t *)(b + 192);
    memset(b, 0, 192);
    for (int j = 0; j < 16; j++) sc[j] = (int8_t)(d > 0 ? clampi((int)lroundf(s[j] / d), -128, 127) : 0);
    for (int i = 0; i < QK_K; i++) {
        int half = i / 128, k = i % 128, quarter = k / 32, l = k % 32;
        float ds = d * sc[half * 8 + l / 16 + 2 * quarter];
        int q = ds != 0 ? clampi((int)lroundf(x[i] / ds), -32, 31) + 32 : 32;
        b[half * 64 + l + (quarter & 1) * 32] |= (uint8_t)((q & 0xF) << (quarter < 2 ? 0 : 4));
        b[128 + half * 32 + l] |= (uint8_t)((q >> 4) << (2 * quarter));
    }
}

void lm_quantize_row(uint32_t type, const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    switch (type) {
    case LM_Q_F32: memcpy(dst, src, (size_t)n * 4); break;
    case LM_Q_F16:
        for (int64_t i = 0; i < n; i++) wr_f16(b + 2 * i, src[i]);
        break;
    case LM_Q_Q8_0:
        for (int64_t k = 0; k < n / QK; k++) enc_q8_0(src + k * QK, b + k * 34);
        break;
    case LM_Q_Q4_0:
        for (int64_t k = 0; k < n / QK; k++) enc_q4_0(src + k * QK, b + k * 18);
        break;
    case LM_Q_Q5_0:
        for (int64_t k = 0; k < n / QK; k++) enc_q5_01(src + k * QK, b + k * 22, 0);
        break;
    case LM_Q_Q5_1:
        for (int64_t k = 0; k < n / QK; k++) enc_q5_01(src + k * QK, b + k * 24, 1);
        break;
    case LM_Q_Q4_K:
        for (int64_t k = 0; k < n / QK_K; k++) enc_q45_k(src + k * QK_K, b + k * 144, 0);
        break;
    case LM_Q_Q5_K:
        for (int64_t k = 0; k < n / QK_K; k++) enc_q45_k(src + k * QK_K, b + k * 176, 1);
        break;
    case LM_Q_Q6_K:
        for (int64_t k = 0; k < n / QK_K; k++) enc_q6_k(src + k * QK_K, b + k * 210);
        break;
    default: break;
    }
}

/* ---------------------------------------------------------------- matrices */

lm_qmat lm_qmat_f32(const float *W, int rows, int cols) {
    lm_qmat q = {.type = LM_Q_F32, .rows = rows, .cols = cols, .row_bytes = (size_t)cols * 4, .data = W};
    return q;
}

void lm_qmat_get_row(const lm_qmat *W, int64_t r, float *dst) {
    lm_dequant_row(W->type, lm_qmat_row_ptr(W, r), dst, W->cols);
}

static int in_parallel(void) {
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return 1;
#endif
}

/* out[:, r0 : r0 + n] for the rows r0.. of W: decode them into tile, one BLAS call. */
static void qmatmul_tile(float *out, const float *x, const lm_qmat *W, int N, float beta, int r0, int n, float *tile) {
    int C = W->cols, R = W->rows;
    for (int r = 0; r < n; r++) lm_qmat_get_row(W, r0 + r, tile + (size_t)r * C);
    if (N == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, n, C, 1.0f, tile, C, x, 1, beta, out + r0, 1);
    else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, n, C, 1.0f, x, C, tile, C, beta, out + r0, R);
}

static int tile_rows(int C) {
    int t = TILE_FLOATS / C;
    return t < 1 ? 1 : t;
}

void lm_qmatmul(float *out, const float *x, const lm_qmat *W, int N, float beta) {
    int C = W->cols, R = W->rows;
    if (N <= 0) return;
    if (W->type == LM_Q_F32) { /* no decoding: straight to BLAS, as lm_matmul_forward */
        if (N == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, R, C, 1.0f, W->data, C, x, 1, beta, out, 1);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, C, 1.0f, x, C, W->data, C, beta, out, R);
        return;
    }
    if (C > TILE_FLOATS) { /* a row wider than the tile: the heap (never for published models) */
        float *row = sd_malloc((size_t)C * sizeof(float));
        for (int r = 0; r < R; r++) qmatmul_tile(out, x, W, N, beta, r, 1, row);
        free(row);
        return;
    }
    int tr = tile_rows(C), nt = (R + tr - 1) / tr;
    if (in_parallel()) {
        float tile[TILE_FLOATS];
        for (int t = 0; t < nt; t++) qmatmul_tile(out, x, W, N, beta, t * tr, R - t * tr < tr ? R - t * tr : tr, tile);
        return;
    }
    int blas_prev = openblas_get_num_threads();
    if (blas_prev != 1) openblas_set_num_threads(1);
#pragma omp parallel
    {
        float tile[TILE_FLOATS];
#pragma omp for schedule(static)
        for (int t = 0; t < nt; t++) qmatmul_tile(out, x, W, N, beta, t * tr, R - t * tr < tr ? R - t * tr : tr, tile);
    }
    if (blas_prev != 1) openblas_set_num_threads(blas_prev);
}

/* dx[n0 : n0 + nn] += dout[n0 : n0 + nn] W, tile by tile of W's rows. */
static void qmatmul_dx_rows(float *dx, const float *dout, const lm_qmat *W, int n0, int nn, float *tile) {
    int C = W->cols, R = W->rows, tr = tile_rows(C);
    if (nn <= 0) return;
    for (int r0 = 0; r0 < R; r0 += tr) {
        int n = R - r0 < tr ? R - r0 : tr;
        for (int r = 0; r < n; r++) lm_qmat_get_row(W, r0 + r, tile + (size_t)r * C);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nn, C, n, 1.0f, dout + (size_t)n0 * R + r0, R, tile, C,
                    1.0f, dx + (size_t)n0 * C, C);
    }
}

void lm_qmatmul_dx(float *dx, const float *dout, const lm_qmat *W, int N) {
    int C = W->cols, R = W->rows;
    if (N <= 0) return;
    if (W->type == LM_Q_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, R, 1.0f, dout, R, W->data, C, 1.0f, dx, C);
        return;
    }
    if (C > TILE_FLOATS) {
        float *row = sd_malloc((size_t)C * sizeof(float));
        for (int r = 0; r < R; r++) {
            lm_qmat_get_row(W, r, row);
            for (int n = 0; n < N; n++) cblas_saxpy(C, dout[(size_t)n * R + r], row, 1, dx + (size_t)n * C, 1);
        }
        free(row);
        return;
    }
    if (in_parallel()) {
        float tile[TILE_FLOATS];
        qmatmul_dx_rows(dx, dout, W, 0, N, tile);
        return;
    }
    int blas_prev = openblas_get_num_threads();
    if (blas_prev != 1) openblas_set_num_threads(1);
#pragma omp parallel
    {
        float tile[TILE_FLOATS];
        int T = 1, tid = 0;
#ifdef _OPENMP
        T = omp_get_num_threads(), tid = omp_get_thread_num();
#endif
        int per = (N + T - 1) / T, n0 = tid * per;
        qmatmul_dx_rows(dx, dout, W, n0, N - n0 < per ? N - n0 : per, tile);
    }
    if (blas_prev != 1) openblas_set_num_threads(blas_prev);
}

void lm_qmatmul_ref(float *out, const float *x, const lm_qmat *W, int N, float beta) {
    int C = W->cols, R = W->rows;
    float *row = sd_malloc((size_t)C * sizeof(float));
    for (int r = 0; r < R; r++) {
        lm_dequant_ref(W->type, lm_qmat_row_ptr(W, r), row, C);
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int i = 0; i < C; i++) s += (double)x[(size_t)n * C + i] * row[i];
            float *o = &out[(size_t)n * R + r];
            *o = (float)(s + (beta != 0 ? (double)beta * *o : 0.0));
        }
    }
    free(row);
}

void lm_qmatmul_dx_ref(float *dx, const float *dout, const lm_qmat *W, int N) {
    int C = W->cols, R = W->rows;
    float *w = sd_malloc((size_t)R * C * sizeof(float));
    for (int r = 0; r < R; r++) lm_dequant_ref(W->type, lm_qmat_row_ptr(W, r), w + (size_t)r * C, C);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < C; i++) {
            double s = 0;
            for (int r = 0; r < R; r++) s += (double)dout[(size_t)n * R + r] * w[(size_t)r * C + i];
            dx[(size_t)n * C + i] += (float)s;
        }
    free(w);
}
