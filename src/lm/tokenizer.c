/* tokenizer.c - the tokenizers of GGUF files: byte-level BPE in the style of GPT-2 (training,
 * encoding, decoding) with the pre-tokenizers of llama.cpp's common families, and SentencePiece.
 *
 * Stored form (what GGUF's tokenizer.ggml.* keys hold): each BPE token is a string over GPT-2's
 * bytes_to_unicode alphabet (one printable code point per byte), merges are "left right" strings
 * in rank order. Internally everything works on token ids: a merge is (left id, right id) ->
 * (rank, result id), and a word starts as its byte tokens. SentencePiece pieces are UTF-8 with
 * U+2581 for space, ranked by score; bytes without a piece use the <0xAB> tokens.
 *
 * The goal is llama.cpp's exact ids for the same vocabulary (scripts/conformance-vocab.sh checks
 * every family), so each step follows llama.cpp's src/llama-vocab.cpp and src/unicode.cpp:
 * special tokens cut out longest first, then per family a chain of pre-tokenizer stages, then
 * BPE (or SentencePiece's score-ordered bigram merging) per piece.
 *
 * Written by hand, and why:
 *  - The pre-tokenizer regexes need Unicode properties and look-ahead. Those that llama.cpp runs
 *    through a regex engine (StarCoder's \p{N}, the default family's four) go through PCRE2
 *    (UTF + UCP). GPT-2's, Llama 3's and Qwen2's llama.cpp replaces with hand-written splitters;
 *    the splitters below make the same left-to-right decisions, so that llama.cpp's vocabularies
 *    tokenize identically; invalid UTF-8 splits as in llama.cpp too (one "other" unit per bad
 *    byte, where a regex engine would refuse or skip it; serendip keeps the byte where llama.cpp
 *    substitutes U+FFFD, so that decoding gives it back), and they are faster. test_tokenizer
 *    checks them against PCRE2 running the very regexes (tok_set_reference_pre) on random text.
 *  - \p{L} and \p{N} come from a range table generated from the Unicode Character Database
 *    (Python 3.11 unicodedata, Unicode 14.0): general categories L* and N*. Whitespace (\s) is
 *    the list llama.cpp uses. Every other code point, unassigned ones included, counts as
 *    "other" ([^\s\p{L}\p{N}]), as in llama.cpp. A byte that does not start a valid UTF-8
 *    sequence is one "other" unit of its own, so invalid UTF-8 still round-trips.
 *  - BPE encoding and SentencePiece's merging are a few dozen lines over the vocabulary's own
 *    tables; no Debian package implements llama.cpp's variants of them in C.
 *  - BPE training: no Debian package trains GPT-2 BPE in C. Training counts pairs over the unique
 *    pre-tokenized words (weighted by frequency), keeps for every pair the list of words holding
 *    it, and after each merge updates only the words that held the merged pair (lazy max-heap of
 *    pair counts), so a merge costs time proportional to the words it touches, not the corpus. */
#include "serendip/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const char *const tok_special_names[TOK_N_SPECIAL] = {TOK_BOS, TOK_EOS, TOK_PAD, TOK_CTX,
                                                      TOK_SEP, TOK_ANS, TOK_SCORE};

/* ---------------------------------------------------------------- Unicode classes */

enum { UC_OTHER = 0, UC_LETTER = 1, UC_NUMBER = 2, UC_SPACE = 3, UC_NONE = 4 };

typedef struct {
    uint32_t lo, hi;
    uint8_t cls; /* UC_LETTER or UC_NUMBER */
} tok_urange;

/* Generated: maximal runs of code points whose general category is L* (1) or N* (2). */
static const tok_urange tok_uranges[] = {
    {0x30,0x39,2}, {0x41,0x5A,1}, {0x61,0x7A,1}, {0xAA,0xAA,1}, {0xB2,0xB3,2}, {0xB5,0xB5,1},
    {0xB9,0xB9,2}, {0xBA,0xBA,1}, {0xBC,0xBE,2}, {0xC0,0xD6,1}, {0xD8,0xF6,1}, {0xF8,0x2C1,1},
    {0x2C6,0x2D1,1}, {0x2E0,0x2E4,1}, {0x2EC,0x2EC,1}, {0x2EE,0x2EE,1}, {0x370,0x374,1},
    {0x376,0x377,1}, {0x37A,0x37D,1}, {0x37F,0x37F,1}, {0x386,0x386,1}, {0x388,0x38A,1},
    {0x38C,0x38C,1}, {0x38E,0x3A1,1}, {0x3A3,0x3F5,1}, {0x3F7,0x481,1}, {0x48A,0x52F,1},
    {0x531,0x556,1}, {0x559,0x559,1}, {0x560,0x588,1}, {0x5D0,0x5EA,1}, {0x5EF,0x5F2,1},
    {0x620,0x64A,1}, {0x660,0x669,2}, {0x66E,0x66F,1}, {0x671,0x6D3,1}, {0x6D5,0x6D5,1},
    {0x6E5,0x6E6,1}, {0x6EE,0x6EF,1}, {0x6F0,0x6F9,2}, {0x6FA,0x6FC,1}, {0x6FF,0x6FF,1},
    {0x710,0x710,1}, {0x712,0x72F,1}, {0x74D,0x7A5,1}, {0x7B1,0x7B1,1}, {0x7C0,0x7C9,2},
    {0x7CA,0x7EA,1}, {0x7F4,0x7F5,1}, {0x7FA,0x7FA,1}, {0x800,0x815,1}, {0x81A,0x81A,1},
    {0x824,0x824,1}, {0x828,0x828,1}, {0x840,0x858,1}, {0x860,0x86A,1}, {0x870,0x887,1},
    {0x889,0x88E,1}, {0x8A0,0x8C9,1}, {0x904,0x939,1}, {0x93D,0x93D,1}, {0x950,0x950,1},
    {0x958,0x961,1}, {0x966,0x96F,2}, {0x971,0x980,1}, {0x985,0x98C,1}, {0x98F,0x990,1},
    {0x993,0x9A8,1}, {0x9AA,0x9B0,1}, {0x9B2,0x9B2,1}, {0x9B6,0x9B9,1}, {0x9BD,0x9BD,1},
    {0x9CE,0x9CE,1}, {0x9DC,0x9DD,1}, {0x9DF,0x9E1,1}, {0x9E6,0x9EF,2}, {0x9F0,0x9F1,1},
    {0x9F4,0x9F9,2}, {0x9FC,0x9FC,1}, {0xA05,0xA0A,1}, {0xA0F,0xA10,1}, {0xA13,0xA28,1},
    {0xA2A,0xA30,1}, {0xA32,0xA33,1}, {0xA35,0xA36,1}, {0xA38,0xA39,1}, {0xA59,0xA5C,1},
    {0xA5E,0xA5E,1}, {0xA66,0xA6F,2}, {0xA72,0xA74,1}, {0xA85,0xA8D,1}, {0xA8F,0xA91,1},
    {0xA93,0xAA8,1}, {0xAAA,0xAB0,1}, {0xAB2,0xAB3,1}, {0xAB5,0xAB9,1}, {0xABD,0xABD,1},
    {0xAD0,0xAD0,1}, {0xAE0,0xAE1,1}, {0xAE6,0xAEF,2}, {0xAF9,0xAF9,1}, {0xB05,0xB0C,1},
    {0xB0F,0xB10,1}, {0xB13,0xB28,1}, {0xB2A,0xB30,1}, {0xB32,0xB33,1}, {0xB35,0xB39,1},
    {0xB3D,0xB3D,1}, {0xB5C,0xB5D,1}, {0xB5F,0xB61,1}, {0xB66,0xB6F,2}, {0xB71,0xB71,1},
    {0xB72,0xB77,2}, {0xB83,0xB83,1}, {0xB85,0xB8A,1}, {0xB8E,0xB90,1}, {0xB92,0xB95,1},
    {0xB99,0xB9A,1}, {0xB9C,0xB9C,1}, {0xB9E,0xB9F,1}, {0xBA3,0xBA4,1}, {0xBA8,0xBAA,1},
    {0xBAE,0xBB9,1}, {0xBD0,0xBD0,1}, {0xBE6,0xBF2,2}, {0xC05,0xC0C,1}, {0xC0E,0xC10,1},
    {0xC12,0xC28,1}, {0xC2A,0xC39,1}, {0xC3D,0xC3D,1}, {0xC58,0xC5A,1}, {0xC5D,0xC5D,1},
    {0xC60,0xC61,1}, {0xC66,0xC6F,2}, {0xC78,0xC7E,2}, {0xC80,0xC80,1}, {0xC85,0xC8C,1},
    {0xC8E,0xC90,1}, {0xC92,0xCA8,1}, {0xCAA,0xCB3,1}, {0xCB5,0xCB9,1}, {0xCBD,0xCBD,1},
    {0xCDD,0xCDE,1}, {0xCE0,0xCE1,1}, {0xCE6,0xCEF,2}, {0xCF1,0xCF2,1}, {0xD04,0xD0C,1},
    {0xD0E,0xD10,1}, {0xD12,0xD3A,1}, {0xD3D,0xD3D,1}, {0xD4E,0xD4E,1}, {0xD54,0xD56,1},
    {0xD58,0xD5E,2}, {0xD5F,0xD61,1}, {0xD66,0xD78,2}, {0xD7A,0xD7F,1}, {0xD85,0xD96,1},
    {0xD9A,0xDB1,1}, {0xDB3,0xDBB,1}, {0xDBD,0xDBD,1}, {0xDC0,0xDC6,1}, {0xDE6,0xDEF,2},
    {0xE01,0xE30,1}, {0xE32,0xE33,1}, {0xE40,0xE46,1}, {0xE50,0xE59,2}, {0xE81,0xE82,1},
    {0xE84,0xE84,1}, {0xE86,0xE8A,1}, {0xE8C,0xEA3,1}, {0xEA5,0xEA5,1}, {0xEA7,0xEB0,1},
    {0xEB2,0xEB3,1}, {0xEBD,0xEBD,1}, {0xEC0,0xEC4,1}, {0xEC6,0xEC6,1}, {0xED0,0xED9,2},
    {0xEDC,0xEDF,1}, {0xF00,0xF00,1}, {0xF20,0xF33,2}, {0xF40,0xF47,1}, {0xF49,0xF6C,1},
    {0xF88,0xF8C,1}, {0x1000,0x102A,1}, {0x103F,0x103F,1}, {0x1040,0x1049,2}, {0x1050,0x1055,1},
    {0x105A,0x105D,1}, {0x1061,0x1061,1}, {0x1065,0x1066,1}, {0x106E,0x1070,1}, {0x1075,0x1081,1},
    {0x108E,0x108E,1}, {0x1090,0x1099,2}, {0x10A0,0x10C5,1}, {0x10C7,0x10C7,1}, {0x10CD,0x10CD,1},
    {0x10D0,0x10FA,1}, {0x10FC,0x1248,1}, {0x124A,0x124D,1}, {0x1250,0x1256,1}, {0x1258,0x1258,1},
    {0x125A,0x125D,1}, {0x1260,0x1288,1}, {0x128A,0x128D,1}, {0x1290,0x12B0,1}, {0x12B2,0x12B5,1},
    {0x12B8,0x12BE,1}, {0x12C0,0x12C0,1}, {0x12C2,0x12C5,1}, {0x12C8,0x12D6,1}, {0x12D8,0x1310,1},
    {0x1312,0x1315,1}, {0x1318,0x135A,1}, {0x1369,0x137C,2}, {0x1380,0x138F,1}, {0x13A0,0x13F5,1},
    {0x13F8,0x13FD,1}, {0x1401,0x166C,1}, {0x166F,0x167F,1}, {0x1681,0x169A,1}, {0x16A0,0x16EA,1},
    {0x16EE,0x16F0,2}, {0x16F1,0x16F8,1}, {0x1700,0x1711,1}, {0x171F,0x1731,1}, {0x1740,0x1751,1},
    {0x1760,0x176C,1}, {0x176E,0x1770,1}, {0x1780,0x17B3,1}, {0x17D7,0x17D7,1}, {0x17DC,0x17DC,1},
    {0x17E0,0x17E9,2}, {0x17F0,0x17F9,2}, {0x1810,0x1819,2}, {0x1820,0x1878,1}, {0x1880,0x1884,1},
    {0x1887,0x18A8,1}, {0x18AA,0x18AA,1}, {0x18B0,0x18F5,1}, {0x1900,0x191E,1}, {0x1946,0x194F,2},
    {0x1950,0x196D,1}, {0x1970,0x1974,1}, {0x1980,0x19AB,1}, {0x19B0,0x19C9,1}, {0x19D0,0x19DA,2},
    {0x1A00,0x1A16,1}, {0x1A20,0x1A54,1}, {0x1A80,0x1A89,2}, {0x1A90,0x1A99,2}, {0x1AA7,0x1AA7,1},
    {0x1B05,0x1B33,1}, {0x1B45,0x1B4C,1}, {0x1B50,0x1B59,2}, {0x1B83,0x1BA0,1}, {0x1BAE,0x1BAF,1},
    {0x1BB0,0x1BB9,2}, {0x1BBA,0x1BE5,1}, {0x1C00,0x1C23,1}, {0x1C40,0x1C49,2}, {0x1C4D,0x1C4F,1},
    {0x1C50,0x1C59,2}, {0x1C5A,0x1C7D,1}, {0x1C80,0x1C88,1}, {0x1C90,0x1CBA,1}, {0x1CBD,0x1CBF,1},
    {0x1CE9,0x1CEC,1}, {0x1CEE,0x1CF3,1}, {0x1CF5,0x1CF6,1}, {0x1CFA,0x1CFA,1}, {0x1D00,0x1DBF,1},
    {0x1E00,0x1F15,1}, {0x1F18,0x1F1D,1}, {0x1F20,0x1F45,1}, {0x1F48,0x1F4D,1}, {0x1F50,0x1F57,1},
    {0x1F59,0x1F59,1}, {0x1F5B,0x1F5B,1}, {0x1F5D,0x1F5D,1}, {0x1F5F,0x1F7D,1}, {0x1F80,0x1FB4,1},
    {0x1FB6,0x1FBC,1}, {0x1FBE,0x1FBE,1}, {0x1FC2,0x1FC4,1}, {0x1FC6,0x1FCC,1}, {0x1FD0,0x1FD3,1},
    {0x1FD6,0x1FDB,1}, {0x1FE0,0x1FEC,1}, {0x1FF2,0x1FF4,1}, {0x1FF6,0x1FFC,1}, {0x2070,0x2070,2},
    {0x2071,0x2071,1}, {0x2074,0x2079,2}, {0x207F,0x207F,1}, {0x2080,0x2089,2}, {0x2090,0x209C,1},
    {0x2102,0x2102,1}, {0x2107,0x2107,1}, {0x210A,0x2113,1}, {0x2115,0x2115,1}, {0x2119,0x211D,1},
    {0x2124,0x2124,1}, {0x2126,0x2126,1}, {0x2128,0x2128,1}, {0x212A,0x212D,1}, {0x212F,0x2139,1},
    {0x213C,0x213F,1}, {0x2145,0x2149,1}, {0x214E,0x214E,1}, {0x2150,0x2182,2}, {0x2183,0x2184,1},
    {0x2185,0x2189,2}, {0x2460,0x249B,2}, {0x24EA,0x24FF,2}, {0x2776,0x2793,2}, {0x2C00,0x2CE4,1},
    {0x2CEB,0x2CEE,1}, {0x2CF2,0x2CF3,1}, {0x2CFD,0x2CFD,2}, {0x2D00,0x2D25,1}, {0x2D27,0x2D27,1},
    {0x2D2D,0x2D2D,1}, {0x2D30,0x2D67,1}, {0x2D6F,0x2D6F,1}, {0x2D80,0x2D96,1}, {0x2DA0,0x2DA6,1},
    {0x2DA8,0x2DAE,1}, {0x2DB0,0x2DB6,1}, {0x2DB8,0x2DBE,1}, {0x2DC0,0x2DC6,1}, {0x2DC8,0x2DCE,1},
    {0x2DD0,0x2DD6,1}, {0x2DD8,0x2DDE,1}, {0x2E2F,0x2E2F,1}, {0x3005,0x3006,1}, {0x3007,0x3007,2},
    {0x3021,0x3029,2}, {0x3031,0x3035,1}, {0x3038,0x303A,2}, {0x303B,0x303C,1}, {0x3041,0x3096,1},
    {0x309D,0x309F,1}, {0x30A1,0x30FA,1}, {0x30FC,0x30FF,1}, {0x3105,0x312F,1}, {0x3131,0x318E,1},
    {0x3192,0x3195,2}, {0x31A0,0x31BF,1}, {0x31F0,0x31FF,1}, {0x3220,0x3229,2}, {0x3248,0x324F,2},
    {0x3251,0x325F,2}, {0x3280,0x3289,2}, {0x32B1,0x32BF,2}, {0x3400,0x4DBF,1}, {0x4E00,0xA48C,1},
    {0xA4D0,0xA4FD,1}, {0xA500,0xA60C,1}, {0xA610,0xA61F,1}, {0xA620,0xA629,2}, {0xA62A,0xA62B,1},
    {0xA640,0xA66E,1}, {0xA67F,0xA69D,1}, {0xA6A0,0xA6E5,1}, {0xA6E6,0xA6EF,2}, {0xA717,0xA71F,1},
    {0xA722,0xA788,1}, {0xA78B,0xA7CA,1}, {0xA7D0,0xA7D1,1}, {0xA7D3,0xA7D3,1}, {0xA7D5,0xA7D9,1},
    {0xA7F2,0xA801,1}, {0xA803,0xA805,1}, {0xA807,0xA80A,1}, {0xA80C,0xA822,1}, {0xA830,0xA835,2},
    {0xA840,0xA873,1}, {0xA882,0xA8B3,1}, {0xA8D0,0xA8D9,2}, {0xA8F2,0xA8F7,1}, {0xA8FB,0xA8FB,1},
    {0xA8FD,0xA8FE,1}, {0xA900,0xA909,2}, {0xA90A,0xA925,1}, {0xA930,0xA946,1}, {0xA960,0xA97C,1},
    {0xA984,0xA9B2,1}, {0xA9CF,0xA9CF,1}, {0xA9D0,0xA9D9,2}, {0xA9E0,0xA9E4,1}, {0xA9E6,0xA9EF,1},
    {0xA9F0,0xA9F9,2}, {0xA9FA,0xA9FE,1}, {0xAA00,0xAA28,1}, {0xAA40,0xAA42,1}, {0xAA44,0xAA4B,1},
    {0xAA50,0xAA59,2}, {0xAA60,0xAA76,1}, {0xAA7A,0xAA7A,1}, {0xAA7E,0xAAAF,1}, {0xAAB1,0xAAB1,1},
    {0xAAB5,0xAAB6,1}, {0xAAB9,0xAABD,1}, {0xAAC0,0xAAC0,1}, {0xAAC2,0xAAC2,1}, {0xAADB,0xAADD,1},
    {0xAAE0,0xAAEA,1}, {0xAAF2,0xAAF4,1}, {0xAB01,0xAB06,1}, {0xAB09,0xAB0E,1}, {0xAB11,0xAB16,1},
    {0xAB20,0xAB26,1}, {0xAB28,0xAB2E,1}, {0xAB30,0xAB5A,1}, {0xAB5C,0xAB69,1}, {0xAB70,0xABE2,1},
    {0xABF0,0xABF9,2}, {0xAC00,0xD7A3,1}, {0xD7B0,0xD7C6,1}, {0xD7CB,0xD7FB,1}, {0xF900,0xFA6D,1},
    {0xFA70,0xFAD9,1}, {0xFB00,0xFB06,1}, {0xFB13,0xFB17,1}, {0xFB1D,0xFB1D,1}, {0xFB1F,0xFB28,1},
    {0xFB2A,0xFB36,1}, {0xFB38,0xFB3C,1}, {0xFB3E,0xFB3E,1}, {0xFB40,0xFB41,1}, {0xFB43,0xFB44,1},
    {0xFB46,0xFBB1,1}, {0xFBD3,0xFD3D,1}, {0xFD50,0xFD8F,1}, {0xFD92,0xFDC7,1}, {0xFDF0,0xFDFB,1},
    {0xFE70,0xFE74,1}, {0xFE76,0xFEFC,1}, {0xFF10,0xFF19,2}, {0xFF21,0xFF3A,1}, {0xFF41,0xFF5A,1},
    {0xFF66,0xFFBE,1}, {0xFFC2,0xFFC7,1}, {0xFFCA,0xFFCF,1}, {0xFFD2,0xFFD7,1}, {0xFFDA,0xFFDC,1},
    {0x10000,0x1000B,1}, {0x1000D,0x10026,1}, {0x10028,0x1003A,1}, {0x1003C,0x1003D,1},
    {0x1003F,0x1004D,1}, {0x10050,0x1005D,1}, {0x10080,0x100FA,1}, {0x10107,0x10133,2},
    {0x10140,0x10178,2}, {0x1018A,0x1018B,2}, {0x10280,0x1029C,1}, {0x102A0,0x102D0,1},
    {0x102E1,0x102FB,2}, {0x10300,0x1031F,1}, {0x10320,0x10323,2}, {0x1032D,0x10340,1},
    {0x10341,0x10341,2}, {0x10342,0x10349,1}, {0x1034A,0x1034A,2}, {0x10350,0x10375,1},
    {0x10380,0x1039D,1}, {0x103A0,0x103C3,1}, {0x103C8,0x103CF,1}, {0x103D1,0x103D5,2},
    {0x10400,0x1049D,1}, {0x104A0,0x104A9,2}, {0x104B0,0x104D3,1}, {0x104D8,0x104FB,1},
    {0x10500,0x10527,1}, {0x10530,0x10563,1}, {0x10570,0x1057A,1}, {0x1057C,0x1058A,1},
    {0x1058C,0x10592,1}, {0x10594,0x10595,1}, {0x10597,0x105A1,1}, {0x105A3,0x105B1,1},
    {0x105B3,0x105B9,1}, {0x105BB,0x105BC,1}, {0x10600,0x10736,1}, {0x10740,0x10755,1},
    {0x10760,0x10767,1}, {0x10780,0x10785,1}, {0x10787,0x107B0,1}, {0x107B2,0x107BA,1},
    {0x10800,0x10805,1}, {0x10808,0x10808,1}, {0x1080A,0x10835,1}, {0x10837,0x10838,1},
    {0x1083C,0x1083C,1}, {0x1083F,0x10855,1}, {0x10858,0x1085F,2}, {0x10860,0x10876,1},
    {0x10879,0x1087F,2}, {0x10880,0x1089E,1}, {0x108A7,0x108AF,2}, {0x108E0,0x108F2,1},
    {0x108F4,0x108F5,1}, {0x108FB,0x108FF,2}, {0x10900,0x10915,1}, {0x10916,0x1091B,2},
    {0x10920,0x10939,1}, {0x10980,0x109B7,1}, {0x109BC,0x109BD,2}, {0x109BE,0x109BF,1},
    {0x109C0,0x109CF,2}, {0x109D2,0x109FF,2}, {0x10A00,0x10A00,1}, {0x10A10,0x10A13,1},
    {0x10A15,0x10A17,1}, {0x10A19,0x10A35,1}, {0x10A40,0x10A48,2}, {0x10A60,0x10A7C,1},
    {0x10A7D,0x10A7E,2}, {0x10A80,0x10A9C,1}, {0x10A9D,0x10A9F,2}, {0x10AC0,0x10AC7,1},
    {0x10AC9,0x10AE4,1}, {0x10AEB,0x10AEF,2}, {0x10B00,0x10B35,1}, {0x10B40,0x10B55,1},
    {0x10B58,0x10B5F,2}, {0x10B60,0x10B72,1}, {0x10B78,0x10B7F,2}, {0x10B80,0x10B91,1},
    {0x10BA9,0x10BAF,2}, {0x10C00,0x10C48,1}, {0x10C80,0x10CB2,1}, {0x10CC0,0x10CF2,1},
    {0x10CFA,0x10CFF,2}, {0x10D00,0x10D23,1}, {0x10D30,0x10D39,2}, {0x10E60,0x10E7E,2},
    {0x10E80,0x10EA9,1}, {0x10EB0,0x10EB1,1}, {0x10F00,0x10F1C,1}, {0x10F1D,0x10F26,2},
    {0x10F27,0x10F27,1}, {0x10F30,0x10F45,1}, {0x10F51,0x10F54,2}, {0x10F70,0x10F81,1},
    {0x10FB0,0x10FC4,1}, {0x10FC5,0x10FCB,2}, {0x10FE0,0x10FF6,1}, {0x11003,0x11037,1},
    {0x11052,0x1106F,2}, {0x11071,0x11072,1}, {0x11075,0x11075,1}, {0x11083,0x110AF,1},
    {0x110D0,0x110E8,1}, {0x110F0,0x110F9,2}, {0x11103,0x11126,1}, {0x11136,0x1113F,2},
    {0x11144,0x11144,1}, {0x11147,0x11147,1}, {0x11150,0x11172,1}, {0x11176,0x11176,1},
    {0x11183,0x111B2,1}, {0x111C1,0x111C4,1}, {0x111D0,0x111D9,2}, {0x111DA,0x111DA,1},
    {0x111DC,0x111DC,1}, {0x111E1,0x111F4,2}, {0x11200,0x11211,1}, {0x11213,0x1122B,1},
    {0x11280,0x11286,1}, {0x11288,0x11288,1}, {0x1128A,0x1128D,1}, {0x1128F,0x1129D,1},
    {0x1129F,0x112A8,1}, {0x112B0,0x112DE,1}, {0x112F0,0x112F9,2}, {0x11305,0x1130C,1},
    {0x1130F,0x11310,1}, {0x11313,0x11328,1}, {0x1132A,0x11330,1}, {0x11332,0x11333,1},
    {0x11335,0x11339,1}, {0x1133D,0x1133D,1}, {0x11350,0x11350,1}, {0x1135D,0x11361,1},
    {0x11400,0x11434,1}, {0x11447,0x1144A,1}, {0x11450,0x11459,2}, {0x1145F,0x11461,1},
    {0x11480,0x114AF,1}, {0x114C4,0x114C5,1}, {0x114C7,0x114C7,1}, {0x114D0,0x114D9,2},
    {0x11580,0x115AE,1}, {0x115D8,0x115DB,1}, {0x11600,0x1162F,1}, {0x11644,0x11644,1},
    {0x11650,0x11659,2}, {0x11680,0x116AA,1}, {0x116B8,0x116B8,1}, {0x116C0,0x116C9,2},
    {0x11700,0x1171A,1}, {0x11730,0x1173B,2}, {0x11740,0x11746,1}, {0x11800,0x1182B,1},
    {0x118A0,0x118DF,1}, {0x118E0,0x118F2,2}, {0x118FF,0x11906,1}, {0x11909,0x11909,1},
    {0x1190C,0x11913,1}, {0x11915,0x11916,1}, {0x11918,0x1192F,1}, {0x1193F,0x1193F,1},
    {0x11941,0x11941,1}, {0x11950,0x11959,2}, {0x119A0,0x119A7,1}, {0x119AA,0x119D0,1},
    {0x119E1,0x119E1,1}, {0x119E3,0x119E3,1}, {0x11A00,0x11A00,1}, {0x11A0B,0x11A32,1},
    {0x11A3A,0x11A3A,1}, {0x11A50,0x11A50,1}, {0x11A5C,0x11A89,1}, {0x11A9D,0x11A9D,1},
    {0x11AB0,0x11AF8,1}, {0x11C00,0x11C08,1}, {0x11C0A,0x11C2E,1}, {0x11C40,0x11C40,1},
    {0x11C50,0x11C6C,2}, {0x11C72,0x11C8F,1}, {0x11D00,0x11D06,1}, {0x11D08,0x11D09,1},
    {0x11D0B,0x11D30,1}, {0x11D46,0x11D46,1}, {0x11D50,0x11D59,2}, {0x11D60,0x11D65,1},
    {0x11D67,0x11D68,1}, {0x11D6A,0x11D89,1}, {0x11D98,0x11D98,1}, {0x11DA0,0x11DA9,2},
    {0x11EE0,0x11EF2,1}, {0x11FB0,0x11FB0,1}, {0x11FC0,0x11FD4,2}, {0x12000,0x12399,1},
    {0x12400,0x1246E,2}, {0x12480,0x12543,1}, {0x12F90,0x12FF0,1}, {0x13000,0x1342E,1},
    {0x14400,0x14646,1}, {0x16800,0x16A38,1}, {0x16A40,0x16A5E,1}, {0x16A60,0x16A69,2},
    {0x16A70,0x16ABE,1}, {0x16AC0,0x16AC9,2}, {0x16AD0,0x16AED,1}, {0x16B00,0x16B2F,1},
    {0x16B40,0x16B43,1}, {0x16B50,0x16B59,2}, {0x16B5B,0x16B61,2}, {0x16B63,0x16B77,1},
    {0x16B7D,0x16B8F,1}, {0x16E40,0x16E7F,1}, {0x16E80,0x16E96,2}, {0x16F00,0x16F4A,1},
    {0x16F50,0x16F50,1}, {0x16F93,0x16F9F,1}, {0x16FE0,0x16FE1,1}, {0x16FE3,0x16FE3,1},
    {0x17000,0x187F7,1}, {0x18800,0x18CD5,1}, {0x18D00,0x18D08,1}, {0x1AFF0,0x1AFF3,1},
    {0x1AFF5,0x1AFFB,1}, {0x1AFFD,0x1AFFE,1}, {0x1B000,0x1B122,1}, {0x1B150,0x1B152,1},
    {0x1B164,0x1B167,1}, {0x1B170,0x1B2FB,1}, {0x1BC00,0x1BC6A,1}, {0x1BC70,0x1BC7C,1},
    {0x1BC80,0x1BC88,1}, {0x1BC90,0x1BC99,1}, {0x1D2E0,0x1D2F3,2}, {0x1D360,0x1D378,2},
    {0x1D400,0x1D454,1}, {0x1D456,0x1D49C,1}, {0x1D49E,0x1D49F,1}, {0x1D4A2,0x1D4A2,1},
    {0x1D4A5,0x1D4A6,1}, {0x1D4A9,0x1D4AC,1}, {0x1D4AE,0x1D4B9,1}, {0x1D4BB,0x1D4BB,1},
    {0x1D4BD,0x1D4C3,1}, {0x1D4C5,0x1D505,1}, {0x1D507,0x1D50A,1}, {0x1D50D,0x1D514,1},
    {0x1D516,0x1D51C,1}, {0x1D51E,0x1D539,1}, {0x1D53B,0x1D53E,1}, {0x1D540,0x1D544,1},
    {0x1D546,0x1D546,1}, {0x1D54A,0x1D550,1}, {0x1D552,0x1D6A5,1}, {0x1D6A8,0x1D6C0,1},
    {0x1D6C2,0x1D6DA,1}, {0x1D6DC,0x1D6FA,1}, {0x1D6FC,0x1D714,1}, {0x1D716,0x1D734,1},
    {0x1D736,0x1D74E,1}, {0x1D750,0x1D76E,1}, {0x1D770,0x1D788,1}, {0x1D78A,0x1D7A8,1},
    {0x1D7AA,0x1D7C2,1}, {0x1D7C4,0x1D7CB,1}, {0x1D7CE,0x1D7FF,2}, {0x1DF00,0x1DF1E,1},
    {0x1E100,0x1E12C,1}, {0x1E137,0x1E13D,1}, {0x1E140,0x1E149,2}, {0x1E14E,0x1E14E,1},
    {0x1E290,0x1E2AD,1}, {0x1E2C0,0x1E2EB,1}, {0x1E2F0,0x1E2F9,2}, {0x1E7E0,0x1E7E6,1},
    {0x1E7E8,0x1E7EB,1}, {0x1E7ED,0x1E7EE,1}, {0x1E7F0,0x1E7FE,1}, {0x1E800,0x1E8C4,1},
    {0x1E8C7,0x1E8CF,2}, {0x1E900,0x1E943,1}, {0x1E94B,0x1E94B,1}, {0x1E950,0x1E959,2},
    {0x1EC71,0x1ECAB,2}, {0x1ECAD,0x1ECAF,2}, {0x1ECB1,0x1ECB4,2}, {0x1ED01,0x1ED2D,2},
    {0x1ED2F,0x1ED3D,2}, {0x1EE00,0x1EE03,1}, {0x1EE05,0x1EE1F,1}, {0x1EE21,0x1EE22,1},
    {0x1EE24,0x1EE24,1}, {0x1EE27,0x1EE27,1}, {0x1EE29,0x1EE32,1}, {0x1EE34,0x1EE37,1},
    {0x1EE39,0x1EE39,1}, {0x1EE3B,0x1EE3B,1}, {0x1EE42,0x1EE42,1}, {0x1EE47,0x1EE47,1},
    {0x1EE49,0x1EE49,1}, {0x1EE4B,0x1EE4B,1}, {0x1EE4D,0x1EE4F,1}, {0x1EE51,0x1EE52,1},
    {0x1EE54,0x1EE54,1}, {0x1EE57,0x1EE57,1}, {0x1EE59,0x1EE59,1}, {0x1EE5B,0x1EE5B,1},
    {0x1EE5D,0x1EE5D,1}, {0x1EE5F,0x1EE5F,1}, {0x1EE61,0x1EE62,1}, {0x1EE64,0x1EE64,1},
    {0x1EE67,0x1EE6A,1}, {0x1EE6C,0x1EE72,1}, {0x1EE74,0x1EE77,1}, {0x1EE79,0x1EE7C,1},
    {0x1EE7E,0x1EE7E,1}, {0x1EE80,0x1EE89,1}, {0x1EE8B,0x1EE9B,1}, {0x1EEA1,0x1EEA3,1},
    {0x1EEA5,0x1EEA9,1}, {0x1EEAB,0x1EEBB,1}, {0x1F100,0x1F10C,2}, {0x1FBF0,0x1FBF9,2},
    {0x20000,0x2A6DF,1}, {0x2A700,0x2B738,1}, {0x2B740,0x2B81D,1}, {0x2B820,0x2CEA1,1},
    {0x2CEB0,0x2EBE0,1}, {0x2F800,0x2FA1D,1}, {0x30000,0x3134A,1},
};

#define TOK_N_URANGES (sizeof tok_uranges / sizeof tok_uranges[0])

static int uc_is_space(uint32_t c) {
    /* llama.cpp's unicode_set_whitespace */
    if ((c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680) return 1;
    if ((c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
        c == 0x3000)
        return 1;
    return 0;
}

/* Class of code point c: binary search in the range table. */
static int uc_class(uint32_t c) {
    if (uc_is_space(c)) return UC_SPACE;
    size_t lo = 0, hi = TOK_N_URANGES;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tok_uranges[mid].hi < c) lo = mid + 1;
        else hi = mid;
    }
    if (lo < TOK_N_URANGES && tok_uranges[lo].lo <= c) return tok_uranges[lo].cls;
    return UC_OTHER;
}

#define UC_INVALID 0xFFFFFFFEu /* a byte that does not start a valid UTF-8 sequence */

/* Decodes one unit at s[0..n): returns its length in bytes (1..4) and sets *cp. Accepts what
 * llama.cpp's unicode_cpt_from_utf8 accepts; anything else is one invalid byte. */
static size_t utf8_unit(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t b = s[0];
    if (b < 0x80) { *cp = b; return 1; }
    size_t need;
    uint32_t v;
    if ((b & 0xE0) == 0xC0) need = 1, v = b & 0x1F;
    else if ((b & 0xF0) == 0xE0) need = 2, v = b & 0x0F;
    else if ((b & 0xF8) == 0xF0) need = 3, v = b & 0x07;
    else { *cp = UC_INVALID; return 1; }
    if (need >= n) { *cp = UC_INVALID; return 1; }
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = UC_INVALID; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return need + 1;
}

/* ---------------------------------------------------------------- pre-tokenizer */

/* Splits s[0..n) into GPT-2 pre-tokens; calls emit(ctx, start, len) for each, in order, covering
 * every byte exactly once. */
typedef void (*pretok_fn)(void *ctx, const uint8_t *p, size_t len);

typedef struct {
    uint32_t *cp;  /* (m) code point of each unit */
    uint8_t *cls;  /* (m) */
    size_t *off;   /* (m + 1) byte offset of each unit */
    size_t cap;
} pretok_buf;

/* Decodes s[0..n) into b's units (code point, class, byte offset); returns the unit count m
 * (b->off[m] == n). */
static size_t pretok_fill(pretok_buf *b, const uint8_t *s, size_t n) {
    if (n + 1 > b->cap) {
        b->cap = n + 1;
        b->cp = sd_realloc(b->cp, b->cap * sizeof *b->cp);
        b->cls = sd_realloc(b->cls, b->cap);
        b->off = sd_realloc(b->off, b->cap * sizeof *b->off);
    }
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t k = utf8_unit(s + i, n - i, &c);
        b->cp[m] = c;
        b->cls[m] = c == UC_INVALID ? UC_OTHER : (uint8_t)uc_class(c);
        b->off[m++] = i;
        i += k;
    }
    b->off[m] = n;
    return m;
}

/* The GPT-2 rules: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void pretok_split(pretok_buf *b, const uint8_t *s, size_t n, pretok_fn emit, void *ctx) {
    size_t m = pretok_fill(b, s, n);
#define CP(i) ((i) < m ? b->cp[i] : 0xFFFFFFFFu)
#define CL(i) ((i) < m ? b->cls[i] : UC_NONE)
#define ADD(end)                                                            \
    do {                                                                    \
        size_t e_ = (end);                                                  \
        if (e_ > prev) emit(ctx, s + b->off[prev], b->off[e_] - b->off[prev]); \
        prev = e_;                                                          \
        pos = e_;                                                           \
    } while (0)
    size_t pos = 0, prev = 0;
    while (pos < m) {
        uint32_t c = CP(pos);
        if (c == '\'' && pos + 1 < m) { /* 's|'t|'re|'ve|'m|'ll|'d */
            uint32_t c1 = CP(pos + 1);
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') { ADD(pos + 2); continue; }
            if (pos + 2 < m) {
                uint32_t c2 = CP(pos + 2);
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    ADD(pos + 3);
                    continue;
                }
            }
        }
        int f2 = c == ' ' ? CL(pos + 1) : CL(pos);
        if (f2 == UC_LETTER || f2 == UC_NUMBER || f2 == UC_OTHER) { /* ' ?\p{L}+' etc. */
            size_t p = pos + (c == ' ');
            while (CL(p) == f2) p++;
            ADD(p);
            continue;
        }
        size_t nw = 0;
        while (CL(pos + nw) == UC_SPACE) nw++;
        if (nw > 1 && pos + nw < m) { ADD(pos + nw - 1); continue; } /* \s+(?!\S) */
        if (nw > 0) { ADD(pos + nw); continue; }                      /* \s+ */
        ADD(pos + 1);
    }
#undef CP
#undef CL
#undef ADD
}

/* The Llama 3 rules (max_digits 3) and the Qwen2 rules (max_digits 1):
 *   (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|
 *   \p{N}{1,max_digits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * Same left-to-right decisions as llama.cpp's unicode_regex_split_custom_llama3 / _qwen2 (which
 * llama.cpp uses instead of a regex engine for these two expressions). */
static void pretok_split_llama3(pretok_buf *b, const uint8_t *s, size_t n, int max_digits, pretok_fn emit,
                                void *ctx) {
    size_t m = pretok_fill(b, s, n);
#define CP(i) ((i) < m ? b->cp[i] : 0xFFFFFFFFu)
#define CL(i) ((i) < m ? b->cls[i] : UC_NONE)
#define ADD(end)                                                            \
    do {                                                                    \
        size_t e_ = (end);                                                  \
        if (e_ > prev) emit(ctx, s + b->off[prev], b->off[e_] - b->off[prev]); \
        prev = e_;                                                          \
        pos = e_;                                                           \
    } while (0)
#define LOWER(c) ((c) >= 'A' && (c) <= 'Z' ? (c) + 32 : (c))
    size_t pos = 0, prev = 0;
    while (pos < m) {
        uint32_t c = CP(pos);
        int f = CL(pos);
        if (c == '\'' && pos + 1 < m) { /* contractions, either case */
            uint32_t c1 = LOWER(CP(pos + 1));
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') { ADD(pos + 2); continue; }
            if (pos + 2 < m) {
                uint32_t c2 = LOWER(CP(pos + 2));
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    ADD(pos + 3);
                    continue;
                }
            }
        }
        if (c != '\r' && c != '\n' && f != UC_NUMBER && (f == UC_LETTER || CL(pos + 1) == UC_LETTER)) {
            size_t p = pos + 1; /* [^\r\n\p{L}\p{N}]?\p{L}+ */
            while (CL(p) == UC_LETTER) p++;
            ADD(p);
            continue;
        }
        if (f == UC_NUMBER) { /* \p{N}{1,max_digits} */
            size_t p = pos, run = 0;
            while (CL(p) == UC_NUMBER) {
                p++;
                if (++run == (size_t)max_digits) { ADD(p); run = 0; }
            }
            ADD(p);
            continue;
        }
        int f2 = c == ' ' ? CL(pos + 1) : f;
        if (f2 == UC_OTHER || f2 == UC_NONE) { /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
            size_t p = pos + (c == ' ');
            while (CL(p) == UC_OTHER) p++;
            while (CP(p) == '\r' || CP(p) == '\n') p++;
            ADD(p);
            continue;
        }
        size_t nw = 0, last_rn = 0;
        while (CL(pos + nw) == UC_SPACE) {
            uint32_t c2 = CP(pos + nw);
            if (c2 == '\r' || c2 == '\n') last_rn = pos + nw + 1;
            nw++;
        }
        if (last_rn > 0) { ADD(last_rn); continue; }                 /* \s*[\r\n]+ */
        if (nw > 1 && pos + nw < m) { ADD(pos + nw - 1); continue; } /* \s+(?!\S) */
        if (nw > 0) { ADD(pos + nw); continue; }                      /* \s+ */
        ADD(pos + 1);
    }
#undef LOWER
#undef CP
#undef CL
#undef ADD
}

/* A regex stage through PCRE2 (UTF + UCP: \p{..} are Unicode properties): the matches and the
 * text between them become pre-tokens, as llama.cpp's unicode_regex_split_stl makes them.
 * PCRE2_MATCH_INVALID_UTF: an invalid UTF-8 byte never matches (llama.cpp sees U+FFFD there,
 * which none of the expressions used here match either). */
static void pretok_split_regex(const pcre2_code *re, pcre2_match_data *md, const uint8_t *s, size_t n,
                               pretok_fn emit, void *ctx) {
    size_t at = 0, prev = 0;
    while (at < n) {
        int rc = pcre2_match(re, s, n, at, 0, md, NULL);
        if (rc < 0) break; /* PCRE2_ERROR_NOMATCH (or a resource limit: rest stays one piece) */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: step over one unit */
            uint32_t c;
            at = ms + utf8_unit(s + ms, n - ms, &c);
            continue;
        }
        if (ms > prev) emit(ctx, s + prev, ms - prev);
        emit(ctx, s + ms, me - ms);
        prev = at = me;
    }
    if (n > prev) emit(ctx, s + prev, n - prev);
}

static void pretok_free(pretok_buf *b) {
    free(b->cp);
    free(b->cls);
    free(b->off);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------- GPT-2 byte <-> unicode */

static uint32_t g_byte_cp[256]; /* byte -> code point */
static int16_t g_cp_byte[324];  /* code point (< 324) -> byte, or -1 */
static pthread_once_t g_bytes_once = PTHREAD_ONCE_INIT;

static void bytes_build(void) {
    int n = 0;
    for (int i = 0; i < 324; i++) g_cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        g_byte_cp[b] = keep ? (uint32_t)b : (uint32_t)(256 + n++);
        g_cp_byte[g_byte_cp[b]] = (int16_t)b;
    }
}

static void bytes_init(void) { pthread_once(&g_bytes_once, bytes_build); }

static size_t utf8_put(char *o, uint32_t c) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* raw bytes -> stored (mapped) string; caller frees. */
static char *bytes_to_text(const char *raw, size_t n) {
    char *t = sd_malloc(2 * n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += utf8_put(t + k, g_byte_cp[(uint8_t)raw[i]]);
    t[k] = 0;
    return t;
}

/* stored string -> raw bytes (caller frees); code points outside the byte alphabet are kept as
 * their UTF-8 (llama.cpp would print a placeholder; keeping the text is more useful). */
static char *text_to_bytes(const char *t, size_t *n) {
    size_t len = strlen(t);
    char *r = sd_malloc(len + 1);
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t u = utf8_unit((const uint8_t *)t + i, len - i, &c);
        if (c < 324 && g_cp_byte[c] >= 0) r[k++] = (char)g_cp_byte[c];
        else { memcpy(r + k, t + i, u); k += u; }
        i += u;
    }
    r[k] = 0;
    *n = k;
    return r;
}

/* ---------------------------------------------------------------- hash maps */

/* bytes -> int32, open addressing; keys are borrowed pointers. */
typedef struct {
    const char **key;
    uint32_t *klen;
    int32_t *val;
    size_t cap, n; /* cap a power of two */
} bmap;

static void bmap_init(bmap *m, size_t want) {
    m->cap = 16;
    while (m->cap < 2 * want) m->cap *= 2;
    m->key = sd_calloc(m->cap, sizeof *m->key);
    m->klen = sd_calloc(m->cap, sizeof *m->klen);
    m->val = sd_calloc(m->cap, sizeof *m->val);
    m->n = 0;
}

static void bmap_free(bmap *m) {
    free(m->key);
    free(m->klen);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static size_t bmap_slot(const bmap *m, const char *k, size_t n) {
    size_t i = (size_t)sd_hash64(k, n, SD_HASH_SEED) & (m->cap - 1);
    while (m->key[i] && !(m->klen[i] == n && memcmp(m->key[i], k, n) == 0)) i = (i + 1) & (m->cap - 1);
    return i;
}

static int32_t bmap_get(const bmap *m, const char *k, size_t n) {
    size_t i = bmap_slot(m, k, n);
    return m->key[i] ? m->val[i] : -1;
}

/* Inserts k -> v unless present; returns the value now stored. */
static int32_t bmap_put(bmap *m, const char *k, size_t n, int32_t v) {
    if (2 * (m->n + 1) > m->cap) {
        bmap old = *m;
        bmap_init(m, old.cap);
        for (size_t i = 0; i < old.cap; i++)
            if (old.key[i]) bmap_put(m, old.key[i], old.klen[i], old.val[i]);
        bmap_free(&old);
    }
    size_t i = bmap_slot(m, k, n);
    if (m->key[i]) return m->val[i];
    m->key[i] = k;
    m->klen[i] = (uint32_t)n;
    m->val[i] = v;
    m->n++;
    return v;
}

/* Sets k -> v, replacing the value of a present key. */
static void bmap_set(bmap *m, const char *k, size_t n, int32_t v) {
    if (bmap_put(m, k, n, v) != v) m->val[bmap_slot(m, k, n)] = v;
}

/* u64 -> int32, open addressing; key UINT64_MAX is the empty marker (never a pair of ids). */
typedef struct {
    uint64_t *key;
    int32_t *val;
    size_t cap, n;
} pmap;

#define PMAP_EMPTY UINT64_MAX
#define PAIR(a, b) (((uint64_t)(uint32_t)(a) << 32) | (uint32_t)(b))

static void pmap_init(pmap *m, size_t want) {
    m->cap = 16;
    while (m->cap < 2 * want) m->cap *= 2;
    m->key = sd_malloc(m->cap * sizeof *m->key);
    for (size_t i = 0; i < m->cap; i++) m->key[i] = PMAP_EMPTY;
    m->val = sd_calloc(m->cap, sizeof *m->val);
    m->n = 0;
}

static void pmap_free(pmap *m) {
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static size_t pmap_slot(const pmap *m, uint64_t k) {
    uint64_t h = k * 0x9E3779B97F4A7C15ULL;
    size_t i = (size_t)(h >> 20) & (m->cap - 1);
    while (m->key[i] != PMAP_EMPTY && m->key[i] != k) i = (i + 1) & (m->cap - 1);
    return i;
}

static int32_t pmap_get(const pmap *m, uint64_t k) {
    if (!m->cap) return -1;
    size_t i = pmap_slot(m, k);
    return m->key[i] == PMAP_EMPTY ? -1 : m->val[i];
}

static int32_t pmap_put(pmap *m, uint64_t k, int32_t v) {
    if (2 * (m->n + 1) > m->cap) {
        pmap old = *m;
        pmap_init(m, old.cap);
        for (size_t i = 0; i < old.cap; i++)
            if (old.key[i] != PMAP_EMPTY) pmap_put(m, old.key[i], old.val[i]);
        pmap_free(&old);
    }
    size_t i = pmap_slot(m, k);
    if (m->key[i] != PMAP_EMPTY) return m->val[i];
    m->key[i] = k;
    m->val[i] = v;
    m->n++;
    return v;
}

/* ---------------------------------------------------------------- pre-tokenizer families */

/* One stage of a pre-tokenizer: each piece left by the previous stage is split again. */
typedef enum { STAGE_GPT2, STAGE_LLAMA3, STAGE_QWEN2, STAGE_REGEX } stage_kind;

typedef struct {
    stage_kind kind;
    const char *regex; /* STAGE_REGEX: the expression, as llama.cpp's llama-vocab.cpp writes it */
} pre_stage;

#define PRE_MAX_STAGES 4

/* The expressions the hand-written stages implement (llama.cpp's regex_exprs), for the reference
 * mode (tok_set_reference_pre), where PCRE2 runs them instead. GPT-2's gets the "|\\s+" that
 * llama.cpp's regex splitter achieves by keeping unmatched text as pieces of their own. */
static const char *const stage_regex[] = {
    [STAGE_GPT2] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    [STAGE_LLAMA3] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                     "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    [STAGE_QWEN2] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

/* The BPE pre-tokenizers serendip reads, by tokenizer.ggml.pre value, with llama.cpp's settings
 * (src/llama-vocab.cpp: the pre_type each value maps to, its regex_exprs, ignore_merges). The
 * regexes llama.cpp runs through hand-written splitters (GPT-2, Llama 3, Qwen2) are hand-written
 * here too (PCRE2 would differ from llama.cpp on invalid UTF-8, and is slower); the others go
 * through PCRE2. Only values whose llama.cpp settings equal one of these rows are listed. */
typedef struct {
    const char *name;     /* the family, as docs and conformance name it */
    const char *values;   /* the tokenizer.ggml.pre values, '|'-separated */
    int ignore_merges;    /* a pre-token that is itself a token is emitted whole (Llama 3) */
    int n_stages;
    pre_stage stages[PRE_MAX_STAGES];
} pre_family;

static const pre_family pre_families[] = {
    {"gpt-2", "gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|mpt|olmo", 0, 1,
     {{STAGE_GPT2, NULL}}},
    {"llama-bpe", "llama-bpe|llama3|llama-v3|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", 1, 1, {{STAGE_LLAMA3, NULL}}},
    {"qwen2", "qwen2|deepseek-r1-qwen|kormo|f2llmv2|stablelm2|megrez", 0, 1, {{STAGE_QWEN2, NULL}}},
    {"starcoder", "starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", 0, 2,
     {{STAGE_REGEX, "\\p{N}"}, {STAGE_GPT2, NULL}}},
    {"default", "default|", 0, 4,
     {{STAGE_REGEX, "[\\p{P}\\$\\+<=>\\^~\\|]+"}, {STAGE_GPT2, NULL}, {STAGE_REGEX, "\\p{N}+"},
      {STAGE_REGEX, "[0-9][0-9][0-9]"}}},
};
#define N_PRE_FAMILIES (sizeof pre_families / sizeof pre_families[0])

/* The family whose values list holds pre ("" for an absent key), or NULL. */
static const pre_family *pre_family_find(const char *pre) {
    size_t l = strlen(pre);
    for (size_t i = 0; i < N_PRE_FAMILIES; i++)
        for (const char *v = pre_families[i].values;;) {
            const char *e = strchr(v, '|');
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            if (vl == l && memcmp(v, pre, l) == 0) return &pre_families[i];
            if (!e) break;
            v = e + 1;
        }
    return NULL;
}

const char *tok_supported_pre(void) {
    return "gpt-2 (also phi-2, mpt, olmo, ...), llama-bpe (llama3), qwen2, starcoder (also refact, command-r, "
           "smollm, codeshell, exaone), default (or the key absent)";
}

/* ---------------------------------------------------------------- the tokenizer */

struct lm_tokenizer {
    int32_t n;          /* vocabulary size */
    char **text;        /* (n) stored strings, NUL-terminated */
    char **raw;         /* (n) raw bytes (NUL-terminated for convenience; may hold NULs) */
    uint32_t *raw_len;  /* (n) */
    int32_t *type;      /* (n) TOK_TYPE_* */
    int32_t n_merges;
    char **merge;       /* (n_merges) "left right" */
    int32_t *merge_out; /* (n_merges) id of the merged token */
    int32_t byte_id[256];
    bmap by_text;       /* stored string -> id */
    pmap ranks;         /* (left, right) -> rank */
    int32_t bos, eos, pad;
    int32_t *parse_ids; /* ids of CONTROL / USER_DEFINED / UNKNOWN tokens, longest first */
    int32_t n_parse;
    int spm;              /* 0: byte-level BPE (tokenizer.ggml.model "gpt2"); 1: SentencePiece ("llama") */
    float *score;         /* (n) SPM piece scores (higher merges first); NULL for BPE */
    int add_space_prefix; /* SPM: a space before the text and after every special token */
    int trained;          /* made by tok_train (every byte has its token) */
    int n_missing_bytes;  /* imported BPE: bytes without a token (byte_id -1) */
    const pre_family *pre;            /* BPE pre-tokenizer (gpt-2 unless tok_set_pre) */
    char *pre_value;                  /* the tokenizer.ggml.pre value it was chosen by, or NULL */
    pcre2_code *re[PRE_MAX_STAGES];   /* compiled STAGE_REGEX stages of pre, else NULL */
    pcre2_code *re_ref[PRE_MAX_STAGES]; /* the hand-written stages as PCRE2 regexes (reference mode) */
    bmap by_raw;          /* raw bytes -> id of NORMAL tokens (pre->ignore_merges only) */
};

static lm_tokenizer *tok_alloc(int32_t n) {
    lm_tokenizer *t = sd_calloc(1, sizeof *t);
    t->n = n;
    t->text = sd_calloc((size_t)n, sizeof *t->text);
    t->raw = sd_calloc((size_t)n, sizeof *t->raw);
    t->raw_len = sd_calloc((size_t)n, sizeof *t->raw_len);
    t->type = sd_calloc((size_t)n, sizeof *t->type);
    t->bos = t->eos = t->pad = -1;
    t->pre = &pre_families[0];
    return t;
}

void tok_free(lm_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->n; i++) {
        free(t->text[i]);
        free(t->raw[i]);
    }
    for (int32_t i = 0; i < t->n_merges; i++) free(t->merge[i]);
    free(t->text);
    free(t->raw);
    free(t->raw_len);
    free(t->type);
    free(t->merge);
    free(t->merge_out);
    free(t->parse_ids);
    free(t->score);
    free(t->pre_value);
    for (int k = 0; k < PRE_MAX_STAGES; k++) pcre2_code_free(t->re[k]), pcre2_code_free(t->re_ref[k]);
    if (t->by_raw.cap) bmap_free(&t->by_raw);
    bmap_free(&t->by_text);
    pmap_free(&t->ranks);
    free(t);
}

static int cmp_parse_len_desc(const void *a, const void *b, void *ctx) {
    const lm_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->raw_len[x] != t->raw_len[y]) return t->raw_len[x] > t->raw_len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Builds by_text (a repeated text maps to its last id, as llama.cpp's token_to_id), byte_id and
 * the special-token list once text/raw/type/spm are filled. */
static int tok_index(lm_tokenizer *t, sd_err *err) {
    bmap_init(&t->by_text, (size_t)t->n);
    for (int32_t i = 0; i < t->n; i++) bmap_set(&t->by_text, t->text[i], strlen(t->text[i]), i);
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t k;
        if (t->spm) { /* byte fallback token "<0xAB>", else the byte itself as a token (llama.cpp) */
            k = (size_t)snprintf(s, sizeof s, "<0x%02X>", b);
            t->byte_id[b] = bmap_get(&t->by_text, s, k);
            if (t->byte_id[b] < 0) s[0] = (char)b, k = 1, t->byte_id[b] = bmap_get(&t->by_text, s, k);
        } else {
            k = utf8_put(s, g_byte_cp[b]);
            t->byte_id[b] = bmap_get(&t->by_text, s, k);
        }
        if (t->byte_id[b] < 0 && !t->spm && !t->trained) {
            t->n_missing_bytes++; /* dropped when met, as llama.cpp does (enc_word) */
            continue;
        }
        if (t->byte_id[b] < 0)
            return sd_fail(err, SD_ERR_FORMAT, "vocabulary lacks the token for byte 0x%02x (\"%.*s\")", b,
                           (int)k, s);
        int32_t id = t->byte_id[b];
        if (t->raw_len[id] != 1 || (uint8_t)t->raw[id][0] != b)
            return sd_fail(err, SD_ERR_FORMAT, "token %d for byte 0x%02x has type %d, so it does not decode to that byte",
                           id, b, t->type[id]);
    }
    t->parse_ids = sd_malloc(((size_t)t->n + 1) * sizeof *t->parse_ids);
    t->n_parse = 0;
    for (int32_t i = 0; i < t->n; i++)
        if ((t->type[i] == TOK_TYPE_CONTROL || t->type[i] == TOK_TYPE_USER_DEFINED || t->type[i] == TOK_TYPE_UNKNOWN) &&
            t->raw_len[i] > 0) {
            t->parse_ids[t->n_parse++] = i;
        }
    qsort_r(t->parse_ids, (size_t)t->n_parse, sizeof *t->parse_ids, cmp_parse_len_desc, t);
    return SD_OK;
}

int tok_from_vocab(const char *const *tokens, const int32_t *types, int32_t n_tokens,
                   const char *const *merges, int32_t n_merges, int32_t bos, int32_t eos, int32_t pad,
                   lm_tokenizer **out, sd_err *err) {
    *out = NULL;
    bytes_init();
    if (n_tokens < 256 || n_merges < 0)
        return sd_fail(err, SD_ERR_FORMAT, "vocabulary of %d tokens and %d merges is too small", n_tokens,
                       n_merges);
    lm_tokenizer *t = tok_alloc(n_tokens);
    for (int32_t i = 0; i < n_tokens; i++) {
        if (!tokens[i]) {
            tok_free(t);
            return sd_fail(err, SD_ERR_FORMAT, "token %d is missing", i);
        }
        t->text[i] = sd_strdup(tokens[i]);
        t->type[i] = types ? types[i] : TOK_TYPE_NORMAL;
        size_t n;
        if (t->type[i] == TOK_TYPE_NORMAL || t->type[i] == TOK_TYPE_UNUSED)
            t->raw[i] = text_to_bytes(tokens[i], &n);
        else {
            t->raw[i] = sd_strdup(tokens[i]);
            n = strlen(tokens[i]);
        }
        t->raw_len[i] = (uint32_t)n;
    }
    int rc = tok_index(t, err);
    if (rc) { tok_free(t); return rc; }
    t->n_merges = n_merges;
    t->merge = sd_calloc((size_t)n_merges + 1, sizeof *t->merge);
    t->merge_out = sd_calloc((size_t)n_merges + 1, sizeof *t->merge_out);
    pmap_init(&t->ranks, (size_t)n_merges);
    for (int32_t r = 0; r < n_merges; r++) {
        const char *m = merges[r];
        const char *sp = m ? strchr(m, ' ') : NULL;
        /* a space inside a token is mapped to U+0120, so the first space separates the halves */
        if (!sp) {
            tok_free(t);
            return sd_fail(err, SD_ERR_FORMAT, "merge %d \"%s\" is not \"left right\"", r, m ? m : "(null)");
        }
        size_t ll = (size_t)(sp - m), rl = strlen(sp + 1);
        int32_t a = bmap_get(&t->by_text, m, ll), b = bmap_get(&t->by_text, sp + 1, rl);
        char *cat = sd_malloc(ll + rl + 1);
        memcpy(cat, m, ll);
        memcpy(cat + ll, sp + 1, rl + 1);
        int32_t c = bmap_get(&t->by_text, cat, ll + rl);
        free(cat);
        if (a < 0 || b < 0 || c < 0) {
            sd_fail(err, SD_ERR_FORMAT, "merge %d \"%s\": %s is not a token", r, m,
                    a < 0 ? "the left part" : b < 0 ? "the right part" : "the merged string");
            tok_free(t);
            return SD_ERR_FORMAT;
        }
        /* the merged token must decode to its parts' bytes, or encode/decode would not round-trip
         * (possible with invalid UTF-8 or non-normal token types in a foreign file) */
        if (t->raw_len[c] != t->raw_len[a] + t->raw_len[b] || memcmp(t->raw[c], t->raw[a], t->raw_len[a]) != 0 ||
            memcmp(t->raw[c] + t->raw_len[a], t->raw[b], t->raw_len[b]) != 0) {
            sd_fail(err, SD_ERR_FORMAT, "merge %d \"%s\": the merged token's bytes are not its parts' bytes", r, m);
            tok_free(t);
            return SD_ERR_FORMAT;
        }
        t->merge[r] = sd_strdup(m);
        t->merge_out[r] = c;
        pmap_put(&t->ranks, PAIR(a, b), r); /* a repeated pair keeps its first (best) rank */
    }
    if (bos >= n_tokens || eos >= n_tokens || pad >= n_tokens) {
        sd_fail(err, SD_ERR_FORMAT, "special token id out of range (bos %d, eos %d, pad %d, vocab %d)", bos,
                eos, pad, n_tokens);
        tok_free(t);
        return SD_ERR_FORMAT;
    }
    t->bos = bos < 0 ? -1 : bos;
    t->eos = eos < 0 ? -1 : eos;
    t->pad = pad < 0 ? -1 : pad;
    *out = t;
    return SD_OK;
}

/* Compiles regex for PCRE2 (UTF, Unicode properties, invalid UTF-8 tolerated); NULL + err on failure. */
static pcre2_code *pre_compile(const char *family, const char *regex, sd_err *err) {
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        sd_fail(err, SD_ERR_FORMAT, "pre-tokenizer %s: regex \"%s\" at %zu: %s", family, regex, (size_t)eo,
                (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: interpreted if JIT is unavailable */
    return re;
}

int tok_set_pre(lm_tokenizer *t, const char *pre, sd_err *err) {
    if (t->spm) return sd_fail(err, SD_ERR_USAGE, "tok_set_pre: a SentencePiece vocabulary has no pre-tokenizer");
    const pre_family *f = pre_family_find(pre ? pre : "");
    if (!f)
        return sd_fail(err, SD_ERR_FORMAT, "tokenizer.ggml.pre \"%s\" is not supported; serendip reads: %s", pre,
                       tok_supported_pre());
    pcre2_code *re[PRE_MAX_STAGES] = {0}, *ref[PRE_MAX_STAGES] = {0};
    int ok = 1;
    for (int k = 0; k < f->n_stages && ok; k++) {
        stage_kind kind = f->stages[k].kind;
        re[k] = pre_compile(f->name, kind == STAGE_REGEX ? f->stages[k].regex : stage_regex[kind], err);
        ok = re[k] != NULL;
        if (kind != STAGE_REGEX) ref[k] = re[k], re[k] = NULL;
    }
    if (!ok) { /* t unchanged */
        for (int k = 0; k < PRE_MAX_STAGES; k++) pcre2_code_free(re[k]), pcre2_code_free(ref[k]);
        return SD_ERR_FORMAT;
    }
    for (int k = 0; k < PRE_MAX_STAGES; k++) {
        pcre2_code_free(t->re[k]);
        pcre2_code_free(t->re_ref[k]);
        t->re[k] = re[k];
        t->re_ref[k] = ref[k];
    }
    t->pre = f;
    free(t->pre_value);
    t->pre_value = sd_strdup(pre && *pre ? pre : "default");
    if (f->ignore_merges && !t->by_raw.cap) {
        bmap_init(&t->by_raw, (size_t)t->n);
        for (int32_t i = 0; i < t->n; i++)
            if (t->type[i] == TOK_TYPE_NORMAL) bmap_set(&t->by_raw, t->raw[i], t->raw_len[i], i);
    }
    return SD_OK;
}

const char *tok_pre_name(const lm_tokenizer *t) {
    return t->spm ? NULL : t->pre_value ? t->pre_value : t->pre->name;
}
const char *tok_model_name(const lm_tokenizer *t) { return t->spm ? "llama" : "gpt2"; }
int tok_add_space_prefix(const lm_tokenizer *t) { return t->spm && t->add_space_prefix; }
float tok_token_score(const lm_tokenizer *t, int32_t id) {
    return t->score && id >= 0 && id < t->n ? t->score[id] : 0.0f;
}

/* SentencePiece piece text -> raw bytes (caller frees): U+2581 "▁" is a space. */
static char *spm_unescape(const char *text, size_t *n) {
    size_t len = strlen(text), k = 0;
    char *r = sd_malloc(len + 1);
    for (size_t i = 0; i < len;) {
        if (i + 3 <= len && memcmp(text + i, "\xE2\x96\x81", 3) == 0) r[k++] = ' ', i += 3;
        else r[k++] = text[i++];
    }
    r[k] = 0;
    *n = k;
    return r;
}

int tok_from_spm(const char *const *tokens, const float *scores, const int32_t *types, int32_t n_tokens, int32_t bos,
                 int32_t eos, int32_t pad, int add_space_prefix, lm_tokenizer **out, sd_err *err) {
    *out = NULL;
    if (n_tokens < 1) return sd_fail(err, SD_ERR_FORMAT, "SentencePiece vocabulary is empty");
    if (bos >= n_tokens || eos >= n_tokens || pad >= n_tokens)
        return sd_fail(err, SD_ERR_FORMAT, "special token id out of range (bos %d, eos %d, pad %d, vocab %d)", bos, eos,
                       pad, n_tokens);
    lm_tokenizer *t = tok_alloc(n_tokens);
    t->spm = 1;
    t->add_space_prefix = add_space_prefix != 0;
    t->score = sd_malloc((size_t)n_tokens * sizeof *t->score);
    for (int32_t i = 0; i < n_tokens; i++) {
        if (!tokens[i]) {
            tok_free(t);
            return sd_fail(err, SD_ERR_FORMAT, "token %d is missing", i);
        }
        t->text[i] = sd_strdup(tokens[i]);
        t->type[i] = types ? types[i] : TOK_TYPE_NORMAL;
        t->score[i] = scores ? scores[i] : 0.0f;
        size_t n = strlen(tokens[i]);
        unsigned v;
        int used = 0;
        if (t->type[i] == TOK_TYPE_BYTE) {
            if (n != 6 || sscanf(tokens[i], "<0x%2X>%n", &v, &used) != 1 || used != 6) {
                tok_free(t);
                return sd_fail(err, SD_ERR_FORMAT, "byte token %d \"%s\" is not <0xAB>", i, tokens[i]);
            }
            t->raw[i] = sd_malloc(2);
            t->raw[i][0] = (char)v, t->raw[i][1] = 0;
            n = 1;
        } else if (t->type[i] == TOK_TYPE_NORMAL || t->type[i] == TOK_TYPE_UNUSED)
            t->raw[i] = spm_unescape(tokens[i], &n);
        else
            t->raw[i] = sd_strdup(tokens[i]);
        t->raw_len[i] = (uint32_t)n;
    }
    int rc = tok_index(t, err);
    if (rc) { tok_free(t); return rc; }
    t->bos = bos < 0 ? -1 : bos;
    t->eos = eos < 0 ? -1 : eos;
    t->pad = pad < 0 ? -1 : pad;
    *out = t;
    return SD_OK;
}

int32_t tok_vocab_size(const lm_tokenizer *t) { return t->n; }
int32_t tok_bos(const lm_tokenizer *t) { return t->bos; }
int32_t tok_eos(const lm_tokenizer *t) { return t->eos; }
int32_t tok_pad(const lm_tokenizer *t) { return t->pad; }

int32_t tok_special(const lm_tokenizer *t, const char *name) {
    int32_t id = bmap_get(&t->by_text, name, strlen(name));
    if (id >= 0 && (t->type[id] == TOK_TYPE_CONTROL || t->type[id] == TOK_TYPE_USER_DEFINED)) return id;
    if (!strcmp(name, TOK_BOS)) return t->bos;
    if (!strcmp(name, TOK_EOS)) return t->eos;
    if (!strcmp(name, TOK_PAD)) return t->pad;
    return -1;
}

const char *tok_token_text(const lm_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n ? t->text[id] : NULL;
}
int32_t tok_token_type(const lm_tokenizer *t, int32_t id) { return id >= 0 && id < t->n ? t->type[id] : 0; }
int32_t tok_n_merges(const lm_tokenizer *t) { return t->n_merges; }
const char *tok_merge(const lm_tokenizer *t, int32_t r) {
    return r >= 0 && r < t->n_merges ? t->merge[r] : NULL;
}

const char *tok_decode_piece(const lm_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n) { *len = 0; return NULL; }
    *len = t->raw_len[id];
    return t->raw[id];
}

int tok_decode(const lm_tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap, size_t *len) {
    size_t k = 0;
    int rc = SD_OK;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n) { rc = SD_ERR_USAGE; continue; }
        size_t l = t->raw_len[ids[i]];
        if (l > 0 && k + l <= cap) memcpy(out + k, t->raw[ids[i]], l);
        else if (l > 0 && k < cap) memcpy(out + k, t->raw[ids[i]], cap - k);
        k += l;
    }
    *len = k;
    if (k > cap) rc = SD_ERR_USAGE;
    return rc;
}

/* ---------------------------------------------------------------- encoding */

typedef struct {
    int32_t rank, pos; /* merge rank of the pair starting at symbol pos */
    int32_t a, b;      /* the pair's ids when queued (stale if the symbols changed since) */
} enc_ent;

typedef struct {
    const lm_tokenizer *t;
    int32_t *out;
    size_t cap, n;
    int32_t *sym, *prev, *next; /* scratch: the symbols of the current word as a linked list */
    enc_ent *heap;              /* scratch: min-heap by (rank, pos) */
    size_t scap, hcap, hn;
} enc_ctx;

static void enc_push(enc_ctx *e, int32_t id) {
    if (e->n < e->cap) e->out[e->n] = id;
    e->n++;
}

static int ent_less(const enc_ent *x, const enc_ent *y) {
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

/* Queues the pair starting at symbol i if the vocabulary has a merge for it. */
static void enc_queue(enc_ctx *e, int32_t i) {
    int32_t j = e->next[i];
    if (i < 0 || j < 0) return;
    int32_t r = pmap_get(&e->t->ranks, PAIR(e->sym[i], e->sym[j]));
    if (r < 0) return;
    if (e->hn == e->hcap) {
        e->hcap = e->hcap ? 2 * e->hcap : 64;
        e->heap = sd_realloc(e->heap, e->hcap * sizeof *e->heap);
    }
    enc_ent *h = e->heap;
    size_t k = e->hn++;
    h[k] = (enc_ent){r, i, e->sym[i], e->sym[j]};
    while (k > 0 && ent_less(&h[k], &h[(k - 1) / 2])) {
        enc_ent t = h[k]; h[k] = h[(k - 1) / 2]; h[(k - 1) / 2] = t;
        k = (k - 1) / 2;
    }
}

static enc_ent enc_pop(enc_ctx *e) {
    enc_ent *h = e->heap, top = h[0];
    h[0] = h[--e->hn];
    size_t k = 0;
    for (;;) {
        size_t l = 2 * k + 1, r = l + 1, m = k;
        if (l < e->hn && ent_less(&h[l], &h[m])) m = l;
        if (r < e->hn && ent_less(&h[r], &h[m])) m = r;
        if (m == k) break;
        enc_ent t = h[m]; h[m] = h[k]; h[k] = t;
        k = m;
    }
    return top;
}

/* Pre-tokens up to this many bytes use the plain merge loop (faster when short); longer ones the
 * heap. tok_set_reference_bpe(1) makes every word use the plain loop, for tests. */
#define ENC_SCAN_MAX 32
static int g_reference_bpe;
static int g_reference_pre;

void tok_set_reference_pre(int on) { g_reference_pre = on; }

void tok_set_reference_bpe(int on) { g_reference_bpe = on; }

/* The reference BPE: rescan all adjacent pairs for the lowest rank (leftmost on ties), merge it,
 * repeat. O(n^2) in the pre-token's length. Leaves the result in e->sym[0..*n). */
static void enc_word_scan(enc_ctx *e, const uint8_t *p, size_t len, int32_t *n_out) {
    const lm_tokenizer *t = e->t;
    int32_t *s = e->sym, n = (int32_t)len;
    for (int32_t i = 0; i < n; i++) s[i] = t->byte_id[p[i]];
    while (n > 1) {
        int32_t best = -1, best_rank = INT32_MAX;
        for (int32_t i = 0; i + 1 < n; i++) {
            int32_t r = pmap_get(&t->ranks, PAIR(s[i], s[i + 1]));
            if (r >= 0 && r < best_rank) best = i, best_rank = r;
        }
        if (best < 0) break;
        s[best] = t->merge_out[best_rank];
        memmove(s + best + 1, s + best + 2, (size_t)(n - best - 2) * sizeof *s);
        n--;
    }
    *n_out = n;
}

/* BPE on one pre-token: start from byte tokens, repeatedly merge the lowest-ranked adjacent pair
 * (leftmost on ties), as GPT-2 and llama.cpp do. A heap of candidate pairs with lazy
 * invalidation makes this O(n log n) in the pre-token's length (a long run of spaces or digits is
 * one pre-token). A symbol keeps the index of its first byte, so index order is text order. */
static void enc_bpe(enc_ctx *e, const uint8_t *p, size_t len) {
    const lm_tokenizer *t = e->t;
    if (len > e->scap) {
        e->scap = len;
        e->sym = sd_realloc(e->sym, len * sizeof *e->sym);
        e->prev = sd_realloc(e->prev, len * sizeof *e->prev);
        e->next = sd_realloc(e->next, len * sizeof *e->next);
    }
    int32_t n = (int32_t)len;
    if (len <= ENC_SCAN_MAX || g_reference_bpe) {
        enc_word_scan(e, p, len, &n);
        for (int32_t i = 0; i < n; i++) enc_push(e, e->sym[i]);
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        e->sym[i] = t->byte_id[p[i]];
        e->prev[i] = i - 1;
        e->next[i] = i + 1 < n ? i + 1 : -1;
    }
    e->hn = 0;
    for (int32_t i = 0; i + 1 < n; i++) enc_queue(e, i);
    while (e->hn > 0) {
        enc_ent x = enc_pop(e);
        int32_t i = x.pos, j = e->next[i];
        if (e->sym[i] < 0 || j < 0 || e->sym[i] != x.a || e->sym[j] != x.b) continue; /* stale */
        e->sym[i] = t->merge_out[x.rank];
        e->sym[j] = -1; /* removed */
        e->next[i] = e->next[j];
        if (e->next[j] >= 0) e->prev[e->next[j]] = i;
        if (e->prev[i] >= 0) enc_queue(e, e->prev[i]);
        enc_queue(e, i);
    }
    for (int32_t i = 0; i >= 0 && i < n; i = e->next[i]) enc_push(e, e->sym[i]);
}

/* One pre-token: whole if ignore_merges and it is a token (Llama 3), else BPE. A byte the
 * vocabulary has no token for (some published vocabularies lack the bytes that never occur in
 * valid UTF-8, 0xC0 0xC1 0xF5..0xFF, or in their training text) is dropped, as llama.cpp drops
 * it (so such text does not round-trip); the BPE runs on the parts around it. */
static void enc_word(void *ctx, const uint8_t *p, size_t len) {
    enc_ctx *e = ctx;
    const lm_tokenizer *t = e->t;
    if (t->pre->ignore_merges) {
        int32_t id = bmap_get(&t->by_raw, (const char *)p, len);
        if (id >= 0) { enc_push(e, id); return; }
    }
    if (!t->n_missing_bytes) { enc_bpe(e, p, len); return; }
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && t->byte_id[p[j]] >= 0) j++;
        if (j > i) enc_bpe(e, p + i, j - i);
        i = j + 1;
    }
}

/* ---- the pre-tokenizer chain: stage k splits each piece of stage k-1; the last feeds BPE */

typedef struct chain_ctx chain_ctx;
typedef struct {
    chain_ctx *c;
    int stage; /* the stage the pieces go to */
} chain_hop;

struct chain_ctx {
    const lm_tokenizer *t;
    pretok_buf buf[PRE_MAX_STAGES]; /* one per stage: stage k's is in use while k+1 runs */
    pcre2_match_data *md;           /* shared: the regex splitter copies a match out before emitting */
    chain_hop hop[PRE_MAX_STAGES + 1];
    pretok_fn final;
    void *final_ctx;
};

static void chain_stage(chain_ctx *c, int k, const uint8_t *p, size_t n);

static void chain_emit(void *ctx, const uint8_t *p, size_t n) {
    chain_hop *h = ctx;
    chain_stage(h->c, h->stage, p, n);
}

static void chain_stage(chain_ctx *c, int k, const uint8_t *p, size_t n) {
    const pre_family *f = c->t->pre;
    if (k == f->n_stages) { c->final(c->final_ctx, p, n); return; }
    chain_hop *next = &c->hop[k + 1];
    if (g_reference_pre && c->t->re_ref[k]) { /* the hand-written stage's regex, through PCRE2 */
        pretok_split_regex(c->t->re_ref[k], c->md, p, n, chain_emit, next);
        return;
    }
    switch (f->stages[k].kind) {
    case STAGE_GPT2: pretok_split(&c->buf[k], p, n, chain_emit, next); break;
    case STAGE_LLAMA3: pretok_split_llama3(&c->buf[k], p, n, 3, chain_emit, next); break;
    case STAGE_QWEN2: pretok_split_llama3(&c->buf[k], p, n, 1, chain_emit, next); break;
    case STAGE_REGEX: pretok_split_regex(c->t->re[k], c->md, p, n, chain_emit, next); break;
    }
}

static void chain_init(chain_ctx *c, const lm_tokenizer *t, pretok_fn final, void *final_ctx) {
    memset(c, 0, sizeof *c);
    c->t = t;
    c->final = final;
    c->final_ctx = final_ctx;
    for (int k = 0; k <= PRE_MAX_STAGES; k++) c->hop[k] = (chain_hop){c, k};
    for (int k = 0; k < t->pre->n_stages && !c->md; k++)
        if (t->re[k] || (g_reference_pre && t->re_ref[k])) c->md = pcre2_match_data_create(1, NULL);
}

static void chain_free(chain_ctx *c) {
    for (int k = 0; k < PRE_MAX_STAGES; k++) pretok_free(&c->buf[k]);
    pcre2_match_data_free(c->md);
}

/* ---- SentencePiece (llama.cpp's llm_tokenizer_spm_session) */

typedef struct {
    float score;
    int32_t left, right; /* symbol indices */
    uint32_t size;       /* bytes of the pair when queued (stale if the symbols changed since) */
} spm_bigram;

static int spm_before(const spm_bigram *x, const spm_bigram *y) { /* higher score, then leftmost */
    return x->score != y->score ? x->score > y->score : x->left < y->left;
}

typedef struct {
    const lm_tokenizer *t;
    const char *buf;           /* the escaped text */
    uint32_t *off, *len;       /* (m) symbol start and length in buf; len 0 once merged away */
    int32_t *prev, *next;      /* (m) the live symbols as a list */
    spm_bigram *heap;          /* max-heap by spm_before */
    size_t hn, hcap;
} spm_ctx;

static void spm_try(spm_ctx *c, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    uint32_t size = c->len[l] + c->len[r];
    int32_t id = bmap_get(&c->t->by_text, c->buf + c->off[l], size);
    if (id < 0) return;
    if (c->hn == c->hcap) {
        c->hcap = c->hcap ? 2 * c->hcap : 64;
        c->heap = sd_realloc(c->heap, c->hcap * sizeof *c->heap);
    }
    spm_bigram *h = c->heap;
    size_t k = c->hn++;
    h[k] = (spm_bigram){c->t->score[id], l, r, size};
    while (k > 0 && spm_before(&h[k], &h[(k - 1) / 2])) {
        spm_bigram x = h[k]; h[k] = h[(k - 1) / 2]; h[(k - 1) / 2] = x;
        k = (k - 1) / 2;
    }
}

static spm_bigram spm_pop(spm_ctx *c) {
    spm_bigram *h = c->heap, top = h[0];
    h[0] = h[--c->hn];
    size_t k = 0;
    for (;;) {
        size_t l = 2 * k + 1, r = l + 1, m = k;
        if (l < c->hn && spm_before(&h[l], &h[m])) m = l;
        if (r < c->hn && spm_before(&h[r], &h[m])) m = r;
        if (m == k) break;
        spm_bigram x = h[m]; h[m] = h[k]; h[k] = x;
        k = m;
    }
    return top;
}

/* Encodes one raw-text fragment: spaces become U+2581 (one more in front when prefix), the text is
 * cut into UTF-8 characters (by lead byte, as llama.cpp: an invalid byte is one character), and
 * the adjacent pair whose concatenation is the highest-scoring token is merged until none is.
 * A final symbol that is not a token (an unknown character) becomes its bytes' <0xAB> tokens.
 * (llama.cpp's resegment also consults the pairs it queued, but every merged symbol is a token,
 * so that path never changes the result.) */
static void spm_encode(enc_ctx *e, const uint8_t *s, size_t len, int prefix) {
    static const uint8_t lead_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    char *buf = sd_malloc(3 * len + 4);
    size_t k = 0;
    if (prefix) memcpy(buf, "\xE2\x96\x81", 3), k = 3;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') memcpy(buf + k, "\xE2\x96\x81", 3), k += 3;
        else buf[k++] = (char)s[i];
    }
    if (k == 0) { free(buf); return; }
    spm_ctx c = {.t = e->t, .buf = buf};
    c.off = sd_malloc(k * sizeof *c.off);
    c.len = sd_malloc(k * sizeof *c.len);
    c.prev = sd_malloc(k * sizeof *c.prev);
    c.next = sd_malloc(k * sizeof *c.next);
    int32_t m = 0;
    for (size_t i = 0; i < k; m++) {
        size_t l = lead_len[(uint8_t)buf[i] >> 4];
        if (l > k - i) l = k - i;
        c.off[m] = (uint32_t)i, c.len[m] = (uint32_t)l;
        c.prev[m] = m - 1;
        i += l;
        c.next[m] = i == k ? -1 : m + 1;
    }
    for (int32_t i = 1; i < m; i++) spm_try(&c, i - 1, i);
    while (c.hn > 0) {
        spm_bigram b = spm_pop(&c);
        int32_t l = b.left, r = b.right;
        if (c.len[l] == 0 || c.len[r] == 0 || c.len[l] + c.len[r] != b.size) continue; /* stale */
        c.len[l] += c.len[r];
        c.len[r] = 0;
        c.next[l] = c.next[r];
        if (c.next[r] >= 0) c.prev[c.next[r]] = l;
        spm_try(&c, c.prev[l], l);
        spm_try(&c, l, c.next[l]);
    }
    for (int32_t i = 0; i >= 0; i = c.next[i]) {
        int32_t id = bmap_get(&e->t->by_text, buf + c.off[i], c.len[i]);
        if (id >= 0) enc_push(e, id);
        else
            for (uint32_t j = 0; j < c.len[i]; j++) enc_push(e, e->t->byte_id[(uint8_t)buf[c.off[i] + j]]);
    }
    free(c.off);
    free(c.len);
    free(c.prev);
    free(c.next);
    free(c.heap);
    free(buf);
}

/* ---- special tokens (llama.cpp's tokenizer_st_partition) */

typedef struct {
    size_t off, len; /* bytes of the text */
    int32_t id;      /* a special token, or -1 for raw text */
} tok_frag;

/* Cuts text[0..len) into raw-text fragments and special tokens like llama.cpp: each special token,
 * longest first, takes every occurrence in the raw fragments the longer ones left. USER_DEFINED
 * tokens are always matched; CONTROL and UNKNOWN ones only with parse_specials. Returns the
 * fragments (caller frees), *nf their count. */
static tok_frag *tok_partition(const lm_tokenizer *t, const uint8_t *s, size_t len, int parse_specials, size_t *nf) {
    size_t n = 0, cap = 8;
    tok_frag *f = sd_malloc(cap * sizeof *f);
    if (len > 0) f[n++] = (tok_frag){0, len, -1};
    for (int32_t j = 0; j < t->n_parse && n > 0; j++) {
        int32_t id = t->parse_ids[j];
        if (!parse_specials && t->type[id] != TOK_TYPE_USER_DEFINED) continue;
        const char *tx = t->raw[id];
        size_t tl = t->raw_len[id];
        for (size_t i = 0; i < n; i++) {
            if (f[i].id >= 0 || f[i].len < tl) continue;
            const uint8_t *base = s + f[i].off;
            const uint8_t *hit = memmem(base, f[i].len, tx, tl);
            if (!hit) continue;
            size_t a = (size_t)(hit - base), rest = f[i].len - a - tl, off = f[i].off;
            size_t grow = (a > 0) + (rest > 0); /* entries added besides the replaced one */
            if (n + grow > cap) {
                cap = 2 * (n + grow);
                f = sd_realloc(f, cap * sizeof *f);
            }
            memmove(f + i + 1 + grow, f + i + 1, (n - i - 1) * sizeof *f);
            n += grow;
            size_t k = i;
            if (a > 0) f[k++] = (tok_frag){off, a, -1};
            f[k++] = (tok_frag){off + a, tl, id};
            if (rest > 0) f[k++] = (tok_frag){off + a + tl, rest, -1};
            i = rest > 0 ? k - 2 : k - 1; /* go on searching in the right remainder */
        }
    }
    *nf = n;
    return f;
}

int tok_encode(const lm_tokenizer *t, const char *text, size_t len, int32_t *out, size_t cap, size_t *n,
               int parse_specials) {
    enc_ctx e = {.t = t, .out = out, .cap = cap};
    const uint8_t *s = (const uint8_t *)text;
    size_t nf;
    tok_frag *f = tok_partition(t, s, len, parse_specials, &nf);
    chain_ctx c;
    if (!t->spm) chain_init(&c, t, enc_word, &e);
    int prev_special = 1; /* SPM: the text start counts as after a special token */
    for (size_t i = 0; i < nf; i++) {
        if (f[i].id >= 0) {
            enc_push(&e, f[i].id);
            prev_special = 1;
        } else if (t->spm) {
            spm_encode(&e, s + f[i].off, f[i].len, t->add_space_prefix && prev_special);
            prev_special = 0;
        } else {
            chain_stage(&c, 0, s + f[i].off, f[i].len);
        }
    }
    if (!t->spm) chain_free(&c);
    free(f);
    free(e.sym);
    free(e.prev);
    free(e.next);
    free(e.heap);
    *n = e.n;
    return e.n <= cap ? SD_OK : SD_ERR_USAGE;
}

typedef struct {
    const uint8_t *base;
    size_t *ends, cap, n;
} pretok_out;

static void pretok_collect(void *ctx, const uint8_t *p, size_t len) {
    pretok_out *o = ctx;
    if (o->n < o->cap) o->ends[o->n] = (size_t)(p + len - o->base);
    o->n++;
}

int tok_pretokenize(const lm_tokenizer *t, const char *text, size_t len, size_t *ends, size_t cap, size_t *n) {
    pretok_out o = {(const uint8_t *)text, ends, cap, 0};
    if (t->spm) {
        if (len > 0) pretok_collect(&o, o.base, len);
    } else {
        chain_ctx c;
        chain_init(&c, t, pretok_collect, &o);
        chain_stage(&c, 0, o.base, len);
        chain_free(&c);
    }
    *n = o.n;
    return o.n <= cap ? SD_OK : SD_ERR_USAGE;
}

/* ---------------------------------------------------------------- training */

typedef struct {
    int32_t *sym; /* current symbols */
    int32_t n;
    int64_t freq;
    uint32_t stamp; /* last merge that visited this word */
} tr_word;

typedef struct {
    int32_t a, b;
    int64_t count;
    int64_t before; /* count when first touched in the current merge */
    uint32_t stamp;
    int32_t last_word; /* last word pushed on the posting list (cheap de-duplication) */
    sd_vec words;      /* int32 word indices that held this pair at some point (may be stale) */
} tr_pair;

typedef struct {
    int64_t count;
    int32_t a, b;
} tr_heap_ent;

typedef struct {
    bmap word_ix;  /* word bytes -> index */
    sd_vec words;  /* tr_word */
    pmap pair_ix;  /* (a, b) -> index into pairs */
    sd_vec pairs;  /* tr_pair */
    sd_vec heap;   /* tr_heap_ent, max-heap by (count desc, a asc, b asc) */
    sd_vec touched; /* int32 pair indices touched in the current merge */
    uint32_t stamp;
} trainer;

static void tr_add_word(void *ctx, const uint8_t *p, size_t len) {
    trainer *tr = ctx;
    int32_t ix = bmap_get(&tr->word_ix, (const char *)p, len);
    if (ix < 0) {
        ix = (int32_t)tr->words.len;
        tr_word *w = sd_vec_push(&tr->words);
        w->n = (int32_t)len;
        w->sym = sd_malloc(len * sizeof *w->sym);
        for (size_t i = 0; i < len; i++) w->sym[i] = p[i];
        bmap_put(&tr->word_ix, (const char *)p, len, ix); /* key borrowed from the training text */
    }
    ((tr_word *)tr->words.data)[ix].freq++;
}

static int heap_less(const tr_heap_ent *x, const tr_heap_ent *y) { /* x below y */
    if (x->count != y->count) return x->count < y->count;
    if (x->a != y->a) return x->a > y->a;
    return x->b > y->b;
}

static void heap_push(sd_vec *h, int64_t count, int32_t a, int32_t b) {
    tr_heap_ent *e = sd_vec_push(h);
    e->count = count, e->a = a, e->b = b;
    tr_heap_ent *d = h->data;
    size_t i = h->len - 1;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&d[p], &d[i])) break;
        tr_heap_ent t = d[p]; d[p] = d[i]; d[i] = t;
        i = p;
    }
}

static tr_heap_ent heap_pop(sd_vec *h) {
    tr_heap_ent *d = h->data, top = d[0];
    d[0] = d[--h->len];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->len && heap_less(&d[m], &d[l])) m = l;
        if (r < h->len && heap_less(&d[m], &d[r])) m = r;
        if (m == i) break;
        tr_heap_ent t = d[m]; d[m] = d[i]; d[i] = t;
        i = m;
    }
    return top;
}

/* Adds delta occurrences of (a, b) held by word w. */
static void tr_count(trainer *tr, int32_t a, int32_t b, int64_t delta, int32_t w) {
    int32_t ix = pmap_get(&tr->pair_ix, PAIR(a, b));
    if (ix < 0) {
        ix = (int32_t)tr->pairs.len;
        tr_pair *np = sd_vec_push(&tr->pairs);
        np->a = a, np->b = b, np->last_word = -1;
        sd_vec_init(&np->words, sizeof(int32_t));
        pmap_put(&tr->pair_ix, PAIR(a, b), ix);
    }
    tr_pair *p = (tr_pair *)tr->pairs.data + ix;
    if (p->stamp != tr->stamp) {
        p->stamp = tr->stamp;
        p->before = p->count;
        *(int32_t *)sd_vec_push(&tr->touched) = ix;
    }
    p->count += delta;
    if (delta > 0 && p->last_word != w) {
        p->last_word = w;
        *(int32_t *)sd_vec_push(&p->words) = w;
    }
}

static void tr_word_pairs(trainer *tr, int32_t wi, int sign) {
    tr_word *w = (tr_word *)tr->words.data + wi;
    for (int32_t i = 0; i + 1 < w->n; i++) tr_count(tr, w->sym[i], w->sym[i + 1], sign * w->freq, wi);
}

/* Pushes the current count of every pair touched since the stamp moved, if it changed. */
static void tr_flush_touched(trainer *tr) {
    for (size_t i = 0; i < tr->touched.len; i++) {
        tr_pair *p = (tr_pair *)tr->pairs.data + ((int32_t *)tr->touched.data)[i];
        if (p->count != p->before && p->count > 0) heap_push(&tr->heap, p->count, p->a, p->b);
    }
    tr->touched.len = 0;
}

/* Splits the training text around literal special-token texts (they are never merged). */
static void tr_feed(trainer *tr, pretok_buf *pb, const uint8_t *s, size_t len) {
    size_t start = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '<' || s[i + 1] != '|') continue;
        for (int k = 0; k < TOK_N_SPECIAL; k++) {
            size_t l = strlen(tok_special_names[k]);
            if (l <= len - i && memcmp(s + i, tok_special_names[k], l) == 0) {
                pretok_split(pb, s + start, i - start, tr_add_word, tr);
                i += l - 1;
                start = i + 1;
                break;
            }
        }
    }
    pretok_split(pb, s + start, len - start, tr_add_word, tr);
}

int tok_train(const char *text, size_t len, int32_t vocab_size, lm_tokenizer **out, sd_err *err) {
    *out = NULL;
    bytes_init();
    int32_t base = TOK_SPECIAL_BASE + TOK_N_SPECIAL;
    if (vocab_size < base || vocab_size > 65536)
        return sd_fail(err, SD_ERR_USAGE, "vocabulary size %d is outside [%d, 65536]", vocab_size, base);
    trainer tr = {0};
    bmap_init(&tr.word_ix, 1024);
    sd_vec_init(&tr.words, sizeof(tr_word));
    pmap_init(&tr.pair_ix, 4096);
    sd_vec_init(&tr.pairs, sizeof(tr_pair));
    sd_vec_init(&tr.heap, sizeof(tr_heap_ent));
    sd_vec_init(&tr.touched, sizeof(int32_t));
    pretok_buf pb = {0};
    tr_feed(&tr, &pb, (const uint8_t *)text, len);
    pretok_free(&pb);

    tr.stamp = 1;
    for (int32_t w = 0; w < (int32_t)tr.words.len; w++) tr_word_pairs(&tr, w, +1);
    tr_flush_touched(&tr);

    int32_t max_merges = vocab_size - base, n_merges = 0;
    int32_t *ma = sd_malloc(((size_t)max_merges + 1) * sizeof *ma), *mb = sd_malloc(((size_t)max_merges + 1) * sizeof *mb);
    sd_progress prog;
    sd_progress_start(&prog, "bpe merges", max_merges);
    while (n_merges < max_merges && tr.heap.len > 0) {
        tr_heap_ent top = heap_pop(&tr.heap);
        int32_t pix = pmap_get(&tr.pair_ix, PAIR(top.a, top.b));
        tr_pair *p = (tr_pair *)tr.pairs.data + pix;
        if (p->count != top.count) continue; /* stale entry */
        if (top.count < 2) break;            /* nothing left that occurs twice */
        int32_t a = top.a, b = top.b, id = base + n_merges;
        ma[n_merges] = a, mb[n_merges] = b;
        n_merges++;
        tr.stamp++;
        /* the posting list may grow while we walk it (new pairs of the same word never equal
         * (a, b) because id is new), so index it afresh each step */
        for (size_t k = 0; k < ((tr_pair *)tr.pairs.data + pix)->words.len; k++) {
            int32_t wi = ((int32_t *)((tr_pair *)tr.pairs.data + pix)->words.data)[k];
            tr_word *w = (tr_word *)tr.words.data + wi;
            if (w->stamp == tr.stamp) continue;
            w->stamp = tr.stamp;
            int has = 0;
            for (int32_t i = 0; i + 1 < w->n && !has; i++) has = w->sym[i] == a && w->sym[i + 1] == b;
            if (!has) continue;
            tr_word_pairs(&tr, wi, -1);
            w = (tr_word *)tr.words.data + wi;
            int32_t j = 0;
            for (int32_t i = 0; i < w->n; i++) {
                if (i + 1 < w->n && w->sym[i] == a && w->sym[i + 1] == b) {
                    w->sym[j++] = id;
                    i++;
                } else w->sym[j++] = w->sym[i];
            }
            w->n = j;
            tr_word_pairs(&tr, wi, +1);
        }
        tr_flush_touched(&tr);
        sd_progress_update(&prog, n_merges, NULL);
    }
    sd_progress_end(&prog);

    /* the vocabulary: bytes, specials, merges */
    lm_tokenizer *t = tok_alloc(base + n_merges);
    for (int bb = 0; bb < 256; bb++) {
        char c = (char)bb;
        t->raw[bb] = sd_malloc(2);
        t->raw[bb][0] = c, t->raw[bb][1] = 0;
        t->raw_len[bb] = 1;
        t->text[bb] = bytes_to_text(&c, 1);
        t->type[bb] = TOK_TYPE_NORMAL;
    }
    for (int k = 0; k < TOK_N_SPECIAL; k++) {
        int32_t id = TOK_SPECIAL_BASE + k;
        t->text[id] = sd_strdup(tok_special_names[k]);
        t->raw[id] = sd_strdup(tok_special_names[k]);
        t->raw_len[id] = (uint32_t)strlen(tok_special_names[k]);
        t->type[id] = TOK_TYPE_CONTROL;
    }
    t->n_merges = n_merges;
    t->merge = sd_calloc((size_t)n_merges + 1, sizeof *t->merge);
    t->merge_out = sd_calloc((size_t)n_merges + 1, sizeof *t->merge_out);
    pmap_init(&t->ranks, (size_t)n_merges);
    for (int32_t r = 0; r < n_merges; r++) {
        int32_t id = base + r, a = ma[r], b = mb[r];
        size_t la = t->raw_len[a], lb = t->raw_len[b];
        t->raw[id] = sd_malloc(la + lb + 1);
        memcpy(t->raw[id], t->raw[a], la);
        memcpy(t->raw[id] + la, t->raw[b], lb);
        t->raw[id][la + lb] = 0;
        t->raw_len[id] = (uint32_t)(la + lb);
        t->text[id] = bytes_to_text(t->raw[id], la + lb);
        t->type[id] = TOK_TYPE_NORMAL;
        t->merge[r] = sd_asprintf("%s %s", t->text[a], t->text[b]);
        t->merge_out[r] = id;
        pmap_put(&t->ranks, PAIR(a, b), r);
    }
    t->trained = 1;
    t->bos = TOK_SPECIAL_BASE + 0;
    t->eos = TOK_SPECIAL_BASE + 1;
    t->pad = TOK_SPECIAL_BASE + 2;
    int rc = tok_index(t, err);

    free(ma);
    free(mb);
    for (size_t i = 0; i < tr.words.len; i++) free(((tr_word *)tr.words.data)[i].sym);
    for (size_t i = 0; i < tr.pairs.len; i++) sd_vec_free(&((tr_pair *)tr.pairs.data)[i].words);
    sd_vec_free(&tr.words);
    sd_vec_free(&tr.pairs);
    sd_vec_free(&tr.heap);
    sd_vec_free(&tr.touched);
    bmap_free(&tr.word_ix);
    pmap_free(&tr.pair_ix);
    if (rc) { tok_free(t); return rc; }
    sd_debug("tokenizer: %d tokens (%d merges) from %zu bytes", t->n, n_merges, len);
    *out = t;
    return SD_OK;
}
