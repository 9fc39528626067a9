/* test_tokenizer.c - byte-level BPE: round trips, training, specials, pre-tokenizer rules, GGUF;
 * the pre-tokenizer families and SentencePiece on vocabularies built by the tests; and (when
 * llama.cpp's source is present) conformance with llama.cpp's test vectors for every family.
 *
 * Conformance: llama.cpp's models/ggml-vocab-<family>.gguf with .inp / .out beside it, in
 * SERENDIP_VOCAB_DIR (default third_party/llama.cpp/models, fetched by scripts/fetch-llama-cpp).
 * Absent -> the test prints SKIP, unless SERENDIP_VOCAB_REQUIRED=1 (scripts/conformance-vocab.sh),
 * where absence fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/gguf.h"
#include "serendip/lm.h"
#include "serendip/tokenizer.h"

/* A deterministic text corpus: words of 1-3 syllables drawn with a skewed distribution (so
 * there are thousands of distinct words with Zipf-like counts), some accented, some numbers and
 * contractions, separated by spaces, commas and newlines. */
static char *make_corpus(size_t want, uint64_t seed, size_t *len) {
    static const char *syl[] = {"the", "mo", "vie", "dra", "ma", "co", "me", "dy", "of", "and", "sci", "en",
                                "ce", "fic", "tion", "thril", "ler", "ro", "man", "in", "spa", "war", "lo",
                                "ve", "sto", "ry", "night", "ci", "ty", "caf\xc3\xa9", "\xc3\xa9t\xc3\xa9", "'s", "'re",
                                "19", "95", "20"};
    const size_t ns = sizeof syl / sizeof syl[0];
    sd_rng r;
    sd_rng_seed(&r, seed);
    char *s = malloc(want + 64);
    size_t n = 0;
    while (n < want) {
        uint32_t k = 1 + sd_rng_below(&r, 3);
        for (uint32_t j = 0; j < k; j++) {
            double u = sd_rng_uniform(&r); /* skewed: index = floor(ns * u^2) */
            const char *w = syl[(size_t)(u * u * (double)ns)];
            size_t l = strlen(w);
            memcpy(s + n, w, l);
            n += l;
        }
        uint32_t p = sd_rng_below(&r, 12);
        s[n++] = p == 0 ? '\n' : p == 1 ? ',' : ' ';
    }
    s[n] = 0;
    *len = n;
    return s;
}

static lm_tokenizer *train(size_t bytes, int32_t vocab) {
    size_t len;
    char *text = make_corpus(bytes, 7, &len);
    lm_tokenizer *t;
    sd_err err = {0};
    int rc = tok_train(text, len, vocab, &t, &err);
    if (rc) fprintf(stderr, "tok_train: %s\n", err.msg);
    assert_int_equal(rc, SD_OK);
    free(text);
    return t;
}

static void assert_round_trip(const lm_tokenizer *t, const char *s, size_t len, int specials) {
    size_t cap = len + 8, n, out_len;
    int32_t *ids = malloc(cap * sizeof *ids);
    assert_int_equal(tok_encode(t, s, len, ids, cap, &n, specials), SD_OK);
    assert_true(n <= len); /* every token holds at least one byte */
    char *back = malloc(len + 1);
    assert_int_equal(tok_decode(t, ids, n, back, len, &out_len), SD_OK);
    assert_int_equal(out_len, len);
    assert_memory_equal(back, s, len);
    free(ids);
    free(back);
}

static void test_round_trip_random_bytes(void **state) {
    (void)state;
    lm_tokenizer *t = train(200000, 1000);
    sd_rng r;
    sd_rng_seed(&r, 123);
    char buf[600];
    for (int it = 0; it < 400; it++) {
        size_t len = sd_rng_below(&r, sizeof buf);
        for (size_t i = 0; i < len; i++) {
            /* mix: uniform bytes, ASCII text, UTF-8 lead/continuation bytes and "<|" openers */
            uint32_t k = sd_rng_below(&r, 4);
            buf[i] = k == 0   ? (char)sd_rng_below(&r, 256)
                     : k == 1 ? (char)(' ' + sd_rng_below(&r, 95))
                     : k == 2 ? (char)(0x80 + sd_rng_below(&r, 0x80))
                              : "<|eos|> \n'"[sd_rng_below(&r, 10)];
        }
        assert_round_trip(t, buf, len, 0);
        assert_round_trip(t, buf, len, 1);
    }
    /* specific invalid UTF-8: lone continuation, truncated sequences, overlong, 5-byte lead, NUL */
    const char bad[] = "\x80 \xC3 \xE2\x82 \xF0\x9F\x98 \xC0\xAF \xF8\x88\x80\x80\x80 a\0b \xFF\xFE 'll";
    assert_round_trip(t, bad, sizeof bad - 1, 0);
    assert_round_trip(t, "", 0, 0);
    /* very long pre-tokens (one run of spaces, one of digits, one of letters): BPE must stay
     * O(n log n) per pre-token; a quadratic merge loop would take minutes here */
    size_t big = 400000;
    char *run = malloc(3 * big);
    memset(run, ' ', big);
    for (size_t i = 0; i < big; i++) run[big + i] = (char)('0' + i % 10), run[2 * big + i] = "ceinomrtvy"[i % 10];
    double t0 = sd_now();
    assert_round_trip(t, run, 3 * big, 0);
    printf("encode+decode of 1.2 MB of three pre-tokens: %.3f s\n", sd_now() - t0);
    free(run);
    tok_free(t);
}

/* The heap BPE (long pre-tokens) against the plain reference loop, on text with long runs. */
static void test_fast_bpe_matches_reference(void **state) {
    (void)state;
    lm_tokenizer *t = train(200000, 1500);
    sd_rng r;
    sd_rng_seed(&r, 77);
    size_t len;
    char *text = make_corpus(60000, 3, &len);
    /* glue words into long pre-tokens by dropping most separators */
    for (size_t i = 0; i < len; i++)
        if ((text[i] == ' ' || text[i] == ',') && sd_rng_below(&r, 8)) text[i] = "ae1 "[sd_rng_below(&r, 4)];
    int32_t *a = malloc(len * sizeof *a), *b = malloc(len * sizeof *b);
    size_t na, nb;
    assert_int_equal(tok_encode(t, text, len, a, len, &na, 0), SD_OK);
    tok_set_reference_bpe(1);
    assert_int_equal(tok_encode(t, text, len, b, len, &nb, 0), SD_OK);
    tok_set_reference_bpe(0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    assert_true(na < len / 2); /* merges really happened */
    free(a);
    free(b);
    free(text);
    tok_free(t);
}

static void test_training_deterministic_and_compresses(void **state) {
    (void)state;
    lm_tokenizer *a = train(300000, 800), *b = train(300000, 800);
    assert_int_equal(tok_vocab_size(a), 800);
    assert_int_equal(tok_vocab_size(a), tok_vocab_size(b));
    assert_int_equal(tok_n_merges(a), 800 - 263);
    for (int32_t i = 0; i < tok_vocab_size(a); i++) assert_string_equal(tok_token_text(a, i), tok_token_text(b, i));
    for (int32_t r = 0; r < tok_n_merges(a); r++) assert_string_equal(tok_merge(a, r), tok_merge(b, r));
    /* id layout: bytes, then the specials, then merges */
    for (int k = 0; k < TOK_N_SPECIAL; k++) {
        assert_int_equal(tok_special(a, tok_special_names[k]), TOK_SPECIAL_BASE + k);
        assert_int_equal(tok_token_type(a, TOK_SPECIAL_BASE + k), TOK_TYPE_CONTROL);
    }
    assert_int_equal(tok_eos(a), tok_special(a, TOK_EOS));
    size_t len, n;
    char *text = make_corpus(100000, 7, &len);
    int32_t *ids = malloc(len * sizeof *ids);
    assert_int_equal(tok_encode(a, text, len, ids, len, &n, 0), SD_OK);
    /* 537 merges cover the frequent syllables and words: expect under 1/3 of a token per byte
     * (bytes alone would be 1 per byte; measured ~0.25) */
    if (n * 3 >= len) fail_msg("%zu tokens for %zu bytes", n, len);
    /* a larger vocabulary never gives more tokens on its own training text */
    lm_tokenizer *small = train(300000, 300);
    size_t n_small;
    assert_int_equal(tok_encode(small, text, len, ids, len, &n_small, 0), SD_OK);
    assert_true(n < n_small && n_small < len);
    free(ids);
    free(text);
    tok_free(a);
    tok_free(b);
    tok_free(small);
}

static void test_specials_parse_only_when_asked(void **state) {
    (void)state;
    lm_tokenizer *t = train(50000, 400);
    const char *s = "drama<|ctx|>comedy<|sep|>war<|ans|> love<|eos|><|bogus|>";
    int32_t ids[256];
    size_t n;
    assert_int_equal(tok_encode(t, s, strlen(s), ids, 256, &n, 1), SD_OK);
    int32_t want[] = {tok_special(t, TOK_CTX), tok_special(t, TOK_SEP), tok_special(t, TOK_ANS), tok_special(t, TOK_EOS)};
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= TOK_SPECIAL_BASE && ids[i] < TOK_SPECIAL_BASE + TOK_N_SPECIAL) {
            assert_true(found < 4);
            assert_int_equal(ids[i], want[found++]);
        }
    assert_int_equal(found, 4);
    assert_int_equal(ids[n - 1] == tok_eos(t), 0); /* "<|bogus|>" is text after the eos */
    assert_round_trip(t, s, strlen(s), 1);
    /* without parsing: no control token at all, and the text still round-trips */
    assert_int_equal(tok_encode(t, s, strlen(s), ids, 256, &n, 0), SD_OK);
    for (size_t i = 0; i < n; i++) assert_int_not_equal(tok_token_type(t, ids[i]), TOK_TYPE_CONTROL);
    assert_round_trip(t, s, strlen(s), 0);
    /* capacity: too small reports the full count */
    size_t need;
    assert_int_equal(tok_encode(t, s, strlen(s), ids, 2, &need, 0), SD_ERR_USAGE);
    assert_int_equal(need, n);
    /* decode size query (out NULL, cap 0), then a too-small buffer gets a prefix */
    size_t dlen, dlen2;
    char small[4];
    assert_int_equal(tok_decode(t, ids, n, NULL, 0, &dlen), SD_ERR_USAGE);
    assert_int_equal(dlen, strlen(s));
    assert_int_equal(tok_decode(t, ids, n, small, sizeof small, &dlen2), SD_ERR_USAGE);
    assert_int_equal(dlen2, dlen);
    assert_memory_equal(small, s, sizeof small);
    size_t piece_len;
    const char *piece = tok_decode_piece(t, tok_special(t, TOK_SCORE), &piece_len);
    assert_int_equal(piece_len, strlen(TOK_SCORE));
    assert_memory_equal(piece, TOK_SCORE, piece_len);
    assert_null(tok_decode_piece(t, tok_vocab_size(t), &piece_len));
    assert_int_equal(tok_special(t, "<|nope|>"), -1);
    tok_free(t);
}

/* A hand-made vocabulary whose merges would cross pre-token boundaries if the GPT-2 split were
 * wrong; expected ids derived by hand from the regex. */
static void test_pretokenizer_rules_known_answers(void **state) {
    (void)state;
    /* GPT-2 byte->unicode: printable ASCII maps to itself, space -> U+0120 "Ġ", 0xC3 -> "Ã",
     * 0xA9 -> "©", newline -> U+010A "Ċ" */
    const char *merges[] = {"Ġ Ġ", "n '", "a b", "Ġ a", "Ã ©", "© 1", "Ġ ab", "' t"};
    const int nm = 8;
    const char *toks[256 + 8];
    char store[256][8];
    /* bytes in byte order using the mapping: build the text of each byte token */
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        static int extra = 0;
        if (b == 0) extra = 0;
        uint32_t cp = keep ? (uint32_t)b : (uint32_t)(256 + extra++);
        if (cp < 0x80) store[b][0] = (char)cp, store[b][1] = 0;
        else store[b][0] = (char)(0xC0 | (cp >> 6)), store[b][1] = (char)(0x80 | (cp & 0x3F)), store[b][2] = 0;
        toks[b] = store[b];
    }
    const char *extra_toks[] = {"ĠĠ", "n'", "ab", "Ġa", "Ã©", "©1", "Ġab", "'t"};
    for (int i = 0; i < nm; i++) toks[256 + i] = extra_toks[i];
    lm_tokenizer *t;
    sd_err err = {0};
    assert_int_equal(tok_from_vocab(toks, NULL, 256 + nm, merges, nm, -1, -1, -1, &t, &err), SD_OK);
    struct {
        const char *in;
        int32_t want[8];
        int n;
    } cases[] = {
        {"x  y", {'x', ' ', ' ', 'y'}, 4},       /* \s+(?!\S): "x" " " " y" */
        {"x  ", {'x', 256}, 2},                  /* trailing \s+ stays whole -> "ĠĠ" */
        {"can't", {'c', 'a', 'n', 263}, 4},      /* "'t" is its own pre-token: no "n'" */
        {" ab", {262}, 1},                       /* "a b" (2) before "Ġ a" (3), then "Ġ ab" (6) */
        {" ba", {' ', 'b', 'a'}, 3},             /* no merge applies */
        {"\xC3\xA9" "1", {260, '1'}, 2},         /* letter é then number 1: no "©1" */
        {"ab'ab", {258, '\'', 258}, 3},         /* "'a" is no contraction: "ab" "'" "ab" */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t ids[16];
        size_t n;
        assert_int_equal(tok_encode(t, cases[c].in, strlen(cases[c].in), ids, 16, &n, 0), SD_OK);
        if ((int)n != cases[c].n || memcmp(ids, cases[c].want, n * sizeof *ids) != 0) {
            fprintf(stderr, "case %zu \"%s\": got", c, cases[c].in);
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n");
            fail();
        }
    }
    tok_free(t);
    /* a merge naming a non-token is refused */
    const char *bad_merges[] = {"q zz"};
    assert_int_equal(tok_from_vocab(toks, NULL, 256, bad_merges, 1, -1, -1, -1, &t, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "q zz"));
    /* a byte token typed CONTROL would decode to its text, not its byte: refused */
    int32_t types[256 + 8];
    for (int i = 0; i < 256 + nm; i++) types[i] = TOK_TYPE_NORMAL;
    types[' '] = TOK_TYPE_CONTROL;
    assert_int_equal(tok_from_vocab(toks, types, 256 + nm, merges, nm, -1, -1, -1, &t, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "byte 0x20"));
    /* a merged token typed CONTROL: its bytes are not its parts' bytes: refused */
    types[' '] = TOK_TYPE_NORMAL;
    types[256] = TOK_TYPE_CONTROL; /* "ĠĠ" */
    assert_int_equal(tok_from_vocab(toks, types, 256 + nm, merges, nm, -1, -1, -1, &t, &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "merge 0"));
}

static void test_gguf_tokenizer_round_trip(void **state) {
    (void)state;
    lm_tokenizer *t = train(100000, 500);
    lm_config c = {.dim = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .hidden_dim = 32,
                   .vocab_size = tok_vocab_size(t), .seq_len = 32, .tied = 1, .norm_eps = 1e-5f, .rope_theta = 10000};
    lm_model m;
    sd_err err = {0};
    assert_int_equal(lm_model_init(&m, &c, 1, &err), SD_OK);
    char path[] = "/tmp/sdtoktestXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(lm_gguf_save(path, &m, t, "tok-test", &err), SD_OK);
    gguf_file *g;
    assert_int_equal(gguf_open(&g, path, &err), SD_OK);
    char *s;
    assert_int_equal(gguf_get_str(g, "tokenizer.ggml.pre", &s, &err), SD_OK);
    assert_string_equal(s, "gpt-2");
    free(s);
    lm_tokenizer *u;
    assert_int_equal(lm_gguf_load_tokenizer(g, &u, &err), SD_OK);
    gguf_close(g);
    assert_int_equal(tok_vocab_size(u), tok_vocab_size(t));
    assert_int_equal(tok_n_merges(u), tok_n_merges(t));
    for (int32_t i = 0; i < tok_vocab_size(t); i++) {
        assert_string_equal(tok_token_text(u, i), tok_token_text(t, i));
        assert_int_equal(tok_token_type(u, i), tok_token_type(t, i));
        size_t la, lb;
        const char *pa = tok_decode_piece(t, i, &la), *pb = tok_decode_piece(u, i, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(pa, pb, la);
    }
    for (int k = 0; k < TOK_N_SPECIAL; k++)
        assert_int_equal(tok_special(u, tok_special_names[k]), tok_special(t, tok_special_names[k]));
    assert_int_equal(tok_bos(u), tok_bos(t));
    assert_int_equal(tok_pad(u), tok_pad(t));
    size_t len;
    char *text = make_corpus(20000, 99, &len);
    int32_t *ia = malloc(len * sizeof *ia), *ib = malloc(len * sizeof *ib);
    size_t na, nb;
    assert_int_equal(tok_encode(t, text, len, ia, len, &na, 1), SD_OK);
    assert_int_equal(tok_encode(u, text, len, ib, len, &nb, 1), SD_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(ia, ib, na * sizeof *ia);
    free(ia);
    free(ib);
    free(text);
    unlink(path);
    lm_model_free(&m);
    tok_free(t);
    tok_free(u);
}

/* ---------------------------------------------------------------- families (fixtures built here) */

/* GPT-2 text of byte b (bytes_to_unicode) into buf (>= 3 bytes). */
static const char *gpt2_byte_text(int b, char *buf) {
    static const int shift_base = 256;
    int extra = 0;
    for (int x = 0; x < b; x++) {
        int keep = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
        if (!keep) extra++;
    }
    int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    uint32_t cp = keep ? (uint32_t)b : (uint32_t)(shift_base + extra);
    if (cp < 0x80) buf[0] = (char)cp, buf[1] = 0;
    else buf[0] = (char)(0xC0 | (cp >> 6)), buf[1] = (char)(0x80 | (cp & 0x3F)), buf[2] = 0;
    return buf;
}

/* A BPE vocabulary: the 256 byte tokens (id == byte), then extra[] (GPT-2-mapped texts) with
 * types xtypes[] (NULL: NORMAL), and merges[]. */
static lm_tokenizer *bpe_vocab(const char *const *extra, const int32_t *xtypes, int n_extra, const char *const *merges,
                               int n_merges) {
    static char store[256][4];
    const char *toks[256 + 64];
    int32_t types[256 + 64];
    for (int b = 0; b < 256; b++) toks[b] = gpt2_byte_text(b, store[b]), types[b] = TOK_TYPE_NORMAL;
    for (int i = 0; i < n_extra; i++) toks[256 + i] = extra[i], types[256 + i] = xtypes ? xtypes[i] : TOK_TYPE_NORMAL;
    lm_tokenizer *t;
    sd_err err = {0};
    int rc = tok_from_vocab(toks, types, 256 + n_extra, merges, n_merges, -1, -1, -1, &t, &err);
    if (rc) fail_msg("tok_from_vocab: %s", err.msg);
    return t;
}

/* Asserts that t's pre-tokenizer cuts text into want[] ("|"-separated pieces). */
static void assert_pieces(const lm_tokenizer *t, const char *family, const char *text, const char *want) {
    size_t ends[64], n, len = strlen(text);
    assert_int_equal(tok_pretokenize(t, text, len, ends, 64, &n), SD_OK);
    char got[512];
    size_t k = 0, prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) got[k++] = '|';
        memcpy(got + k, text + prev, ends[i] - prev);
        k += ends[i] - prev;
        prev = ends[i];
    }
    got[k] = 0;
    if (strcmp(got, want)) fail_msg("%s: \"%s\" split as \"%s\", want \"%s\"", family, text, got, want);
}

/* Each family's rules on inputs whose pieces follow from its regexes by hand (llama.cpp's
 * regex_exprs in src/llama-vocab.cpp). */
static void test_pre_families_known_answers(void **state) {
    (void)state;
    lm_tokenizer *t = bpe_vocab(NULL, NULL, 0, NULL, 0);
    sd_err err = {0};
    struct {
        const char *pre, *in, *want;
    } cases[] = {
        /* GPT-2: digits one run, "'S" no contraction (case-sensitive), \s+(?!\S) */
        {"gpt-2", "I'M 12345  x\r\n\ty", "I|'|M| 12345| | x|\r\n|\t|y"},
        {"gpt-2", "it's", "it|'s"},
        /* Llama 3: contractions either case, digits by three, a non-letter glued before letters,
         * newlines kept together with the whitespace before them */
        {"llama-bpe", "I'M 12345  x\r\n\ty", "I|'M| |123|45| | x|\r\n|\ty"},
        {"llama-bpe", "(abc)...\n\nz", "(abc|)...\n\n|z"},
        /* Qwen2: the same but one digit per piece */
        {"qwen2", "I'M 12345  x\r\n\ty", "I|'M| |1|2|3|4|5| | x|\r\n|\ty"},
        /* StarCoder: every digit alone first, then GPT-2 */
        {"starcoder", "x 123abc", "x| |1|2|3|abc"},
        {"smollm", "v2.0", "v|2|.|0"},
        /* default: punctuation runs, GPT-2, digit runs, then [0-9]{3} */
        {"default", "a,b!!1234 x", "a|,|b|!!|123|4| x"},
        {"", "$+1", "$+|1"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        assert_int_equal(tok_set_pre(t, cases[c].pre, &err), SD_OK);
        assert_pieces(t, cases[c].pre, cases[c].in, cases[c].want);
    }
    assert_string_equal(tok_pre_name(t), "default");
    /* unsupported values are refused with the value and the supported ones named */
    assert_int_equal(tok_set_pre(t, "falcon", &err), SD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "\"falcon\""));
    assert_non_null(strstr(err.msg, "llama-bpe"));
    assert_non_null(strstr(err.msg, "starcoder"));
    tok_free(t);
}

/* The hand-written splitters (GPT-2, Llama 3, Qwen2 rules, as llama.cpp's custom splitters) against
 * the regexes they implement run by PCRE2, on random valid UTF-8 mixing every class the rules
 * tell apart. */
static void test_pre_hand_written_matches_pcre2(void **state) {
    (void)state;
    static const char *const units[] = {
        "a", "Z", "q", "'", "s", "S", "t", "re", "LL", "d", "0", "7", " ", " ", " ", "  ", "\t", "\r", "\n", ".", ",",
        "!", "$", "+", "<", "|", "~", "(", ")", "-", "_",
        "\xC3\xA9",         /* é letter */
        "\xD9\xA3",         /* ٣ Arabic-Indic digit: \p{N} */
        "\xC2\xB2",         /* ² superscript two: \p{N} (No) */
        "\xE2\x85\xA2",     /* Ⅲ roman numeral: \p{N} (Nl) */
        "\xCC\x81",         /* combining acute: \p{M}, neither letter nor number */
        "\xE4\xB8\xAD",     /* 中 letter (Lo) */
        "\xC2\xA0",         /* no-break space: \s */
        "\xE3\x80\x80",     /* ideographic space: \s */
        "\xE2\x80\xA8",     /* line separator: \s */
        "\xC2\x85",         /* next line: \s */
        "\xF0\x9F\x98\x80", /* 😀 symbol */
        "\xE2\x80\x94",     /* — punctuation */
        "\xEF\xBF\xBD",     /* replacement character */
    };
    const size_t nu = sizeof units / sizeof units[0];
    lm_tokenizer *t = bpe_vocab(NULL, NULL, 0, NULL, 0);
    sd_err err = {0};
    const char *pres[] = {"gpt-2", "llama-bpe", "qwen2", "starcoder", "default"};
    sd_rng r;
    sd_rng_seed(&r, 2024);
    size_t fast[512], ref[512], nf, nr, n_pieces = 0;
    for (size_t f = 0; f < sizeof pres / sizeof pres[0]; f++) {
        assert_int_equal(tok_set_pre(t, pres[f], &err), SD_OK);
        for (int it = 0; it < 3000; it++) {
            char buf[400];
            size_t len = 0, k = 1 + sd_rng_below(&r, 40);
            for (size_t j = 0; j < k; j++) {
                const char *u = units[sd_rng_below(&r, (uint32_t)nu)];
                memcpy(buf + len, u, strlen(u));
                len += strlen(u);
            }
            assert_int_equal(tok_pretokenize(t, buf, len, fast, 512, &nf), SD_OK);
            tok_set_reference_pre(1);
            assert_int_equal(tok_pretokenize(t, buf, len, ref, 512, &nr), SD_OK);
            tok_set_reference_pre(0);
            if (nf != nr || memcmp(fast, ref, nf * sizeof *fast)) {
                fprintf(stderr, "%s: \"%.*s\": hand-written %zu pieces, PCRE2 %zu\n", pres[f], (int)len, buf, nf, nr);
                fail();
            }
            n_pieces += nf;
        }
    }
    printf("pre-tokenizers: hand-written == PCRE2 on 15000 random strings (%zu pieces)\n", n_pieces);
    tok_free(t);
}

/* Llama 3's ignore_merges: a pre-token that is itself a token is taken whole even when the merges
 * would not build it; GPT-2's family runs the merges. */
static void test_llama_bpe_ignore_merges(void **state) {
    (void)state;
    const char *extra[] = {"xy", "xyz", "ab"};
    const char *merges[] = {"x y"};
    lm_tokenizer *t = bpe_vocab(extra, NULL, 3, merges, 1);
    sd_err err = {0};
    int32_t ids[16];
    size_t n;
    assert_int_equal(tok_encode(t, "xyz ab", 6, ids, 16, &n, 0), SD_OK); /* gpt-2: merges only */
    int32_t want_gpt2[] = {256, 'z', ' ', 'a', 'b'};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want_gpt2, sizeof want_gpt2);
    assert_int_equal(tok_set_pre(t, "llama-bpe", &err), SD_OK);
    assert_int_equal(tok_encode(t, "xyz ab", 6, ids, 16, &n, 0), SD_OK); /* "xyz" whole; " ab" is no token */
    int32_t want_llama[] = {257, ' ', 'a', 'b'};
    assert_int_equal(n, 4);
    assert_memory_equal(ids, want_llama, sizeof want_llama);
    tok_free(t);
}

/* Special tokens as llama.cpp cuts them: longest first over the whole text (not leftmost first),
 * USER_DEFINED always, CONTROL only when asked. */
static void test_specials_llama_cpp_order(void **state) {
    (void)state;
    const char *extra[] = {"ab", "bcd", "<c>"};
    const int32_t types[] = {TOK_TYPE_USER_DEFINED, TOK_TYPE_USER_DEFINED, TOK_TYPE_CONTROL};
    lm_tokenizer *t = bpe_vocab(extra, types, 3, NULL, 0);
    int32_t ids[16];
    size_t n;
    assert_int_equal(tok_encode(t, "abcd<c>ab", 9, ids, 16, &n, 0), SD_OK);
    /* "bcd" (longer) is taken before "ab" could be: a, bcd, then "<c>" as text, then ab */
    int32_t want0[] = {'a', 257, '<', 'c', '>', 256};
    assert_int_equal(n, 6);
    assert_memory_equal(ids, want0, sizeof want0);
    assert_int_equal(tok_encode(t, "abcd<c>ab", 9, ids, 16, &n, 1), SD_OK);
    int32_t want1[] = {'a', 257, 258, 256};
    assert_int_equal(n, 4);
    assert_memory_equal(ids, want1, sizeof want1);
    tok_free(t);
}

/* A published vocabulary may lack byte tokens (StarCoder's lacks 0xC0, 0xC1, 0xF5..0xFF): loaded,
 * and such a byte is dropped when met, as llama.cpp drops it; a trained one may not lack any. */
static void test_missing_byte_dropped(void **state) {
    (void)state;
    char store[256][4];
    const char *toks[257];
    int n = 0;
    for (int b = 0; b < 256; b++)
        if (b != 0xFF) toks[n++] = gpt2_byte_text(b, store[b]);
    toks[n++] = "ab";
    toks[n++] = "xy";
    const char *merges[] = {"a b"};
    lm_tokenizer *t;
    sd_err err = {0};
    assert_int_equal(tok_from_vocab(toks, NULL, n, merges, 1, -1, -1, -1, &t, &err), SD_OK);
    int32_t ids[16];
    size_t k;
    assert_int_equal(tok_encode(t, "ab\xFF" "ab", 5, ids, 16, &k, 0), SD_OK);
    assert_int_equal(k, 2); /* "ab" "ab": the byte is gone, the merges still apply around it */
    assert_int_equal(ids[0], 255);
    assert_int_equal(ids[1], 255);
    tok_free(t);
}

/* A small SentencePiece vocabulary: <unk> <s> </s>, the 256 <0xAB> byte tokens (ids 3..258), then
 * pieces[] with scores[]. */
static lm_tokenizer *spm_vocab(const char *const *pieces, const float *scores, int np, int add_prefix) {
    const char *toks[3 + 256 + 16];
    float sc[3 + 256 + 16];
    int32_t types[3 + 256 + 16];
    static char bytes[256][8];
    toks[0] = "<unk>", toks[1] = "<s>", toks[2] = "</s>";
    types[0] = TOK_TYPE_UNKNOWN, types[1] = types[2] = TOK_TYPE_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        toks[3 + b] = bytes[b], types[3 + b] = TOK_TYPE_BYTE;
    }
    for (int i = 0; i < 3 + 256; i++) sc[i] = 0;
    for (int i = 0; i < np; i++) toks[259 + i] = pieces[i], sc[259 + i] = scores[i], types[259 + i] = TOK_TYPE_NORMAL;
    lm_tokenizer *t;
    sd_err err = {0};
    if (tok_from_spm(toks, sc, types, 259 + np, 1, 2, -1, add_prefix, &t, &err)) fail_msg("tok_from_spm: %s", err.msg);
    return t;
}

#define SPM_BYTE(b) (3 + (b))
#define U2581 "\xE2\x96\x81"

static void expect_ids(const lm_tokenizer *t, const char *in, int parse, const int32_t *want, size_t nw) {
    int32_t ids[64];
    size_t n;
    assert_int_equal(tok_encode(t, in, strlen(in), ids, 64, &n, parse), SD_OK);
    if (n != nw || (n > 0 && memcmp(ids, want, n * sizeof *ids))) {
        fprintf(stderr, "\"%s\": got", in);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
        fail();
    }
}

/* SentencePiece: highest score merges first, space prefix, byte fallback, specials. */
static void test_spm_known_answers(void **state) {
    (void)state;
    /* ids:                 259      260  261  262  263   264   265        266 */
    const char *pieces[] = {U2581, "a", "b", "c", "ab", "bc", U2581 "a", U2581 "ab"};
    float scores[] = {-5, -10, -10, -10, -1, -2, -4, -0.5f};
    lm_tokenizer *t = spm_vocab(pieces, scores, 8, 1);
    expect_ids(t, "ab", 0, (int32_t[]){266}, 1);             /* ▁ a b -> ▁ ab (-1 beats ▁a -4) -> ▁ab */
    expect_ids(t, "abc", 0, (int32_t[]){266, 262}, 2);       /* ab (-1) before bc (-2); "▁abc" no piece */
    expect_ids(t, "a bc", 0, (int32_t[]){265, 259, 264}, 3); /* ▁a ▁ bc */
    expect_ids(t, "\xC3\xA9", 0, (int32_t[]){259, SPM_BYTE(0xC3), SPM_BYTE(0xA9)}, 3); /* byte fallback */
    /* "<s>" is text unless parsed; after a special token the space prefix comes again */
    expect_ids(t, "<s>ab", 0, (int32_t[]){259, SPM_BYTE('<'), SPM_BYTE('s'), SPM_BYTE('>'), 263}, 5);
    expect_ids(t, "<s>ab", 1, (int32_t[]){1, 266}, 2);
    expect_ids(t, "", 0, NULL, 0);
    int32_t ab = 266;
    char out[8];
    size_t len;
    assert_int_equal(tok_decode(t, &ab, 1, out, sizeof out, &len), SD_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(out, " ab", 3);
    assert_int_equal(tok_add_space_prefix(t), 1);
    assert_string_equal(tok_model_name(t), "llama");
    tok_free(t);
    /* the other score order: bc before ab */
    float scores2[] = {-5, -10, -10, -10, -3, -2, -4, -0.5f};
    t = spm_vocab(pieces, scores2, 8, 0); /* and no space prefix */
    expect_ids(t, "abc", 0, (int32_t[]){260, 264}, 2);
    expect_ids(t, " ab", 0, (int32_t[]){266}, 1);
    tok_free(t);
    /* valid UTF-8 round-trips through pieces and the byte fallback (with the prefix space in
     * front). (Invalid UTF-8 need not: a lead byte takes the next bytes as its character, as in
     * llama.cpp, and those may be an escaped space's.) */
    t = spm_vocab(pieces, scores, 8, 1);
    sd_rng r;
    sd_rng_seed(&r, 5);
    static const char *const chars[] = {"a", "b", "c", " ", "  ", "\n", "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\x00", "~"};
    for (int it = 0; it < 300; it++) {
        char buf[200], back[512];
        size_t n = 0, nid, lb, k = 1 + sd_rng_below(&r, 40);
        for (size_t i = 0; i < k; i++) {
            const char *c = chars[sd_rng_below(&r, 11)];
            size_t l = c[0] ? strlen(c) : 1;
            memcpy(buf + n, c, l);
            n += l;
        }
        int32_t ids[800];
        assert_int_equal(tok_encode(t, buf, n, ids, 800, &nid, 0), SD_OK);
        assert_int_equal(tok_decode(t, ids, nid, back, sizeof back, &lb), SD_OK);
        assert_int_equal(lb, n + 1);
        assert_int_equal(back[0], ' ');
        assert_memory_equal(back + 1, buf, n);
    }
    tok_free(t);
}

/* GGUF: a SentencePiece tokenizer written by serendip's model writer loads back identical; files
 * with an unsupported tokenizer are refused, naming the value and the supported ones. */
static void test_gguf_families_and_refusals(void **state) {
    (void)state;
    const char *pieces[] = {U2581, "a", "b", "c", "ab", "bc", U2581 "a", U2581 "ab"};
    float scores[] = {-5, -10, -10, -10, -1, -2, -4, -0.5f};
    lm_tokenizer *t = spm_vocab(pieces, scores, 8, 1);
    lm_config c = {.dim = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .hidden_dim = 32,
                   .vocab_size = tok_vocab_size(t), .seq_len = 32, .tied = 1, .norm_eps = 1e-5f, .rope_theta = 10000};
    lm_model m;
    sd_err err = {0};
    assert_int_equal(lm_model_init(&m, &c, 1, &err), SD_OK);
    char path[] = "/tmp/sdtokfamXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(lm_gguf_save(path, &m, t, "spm-test", &err), SD_OK);
    gguf_file *g;
    lm_tokenizer *u;
    assert_int_equal(gguf_open(&g, path, &err), SD_OK);
    assert_int_equal(lm_gguf_load_tokenizer(g, &u, &err), SD_OK);
    gguf_close(g);
    assert_string_equal(tok_model_name(u), "llama");
    assert_int_equal(tok_vocab_size(u), tok_vocab_size(t));
    for (int32_t i = 0; i < tok_vocab_size(t); i++) {
        assert_string_equal(tok_token_text(u, i), tok_token_text(t, i));
        assert_true(tok_token_score(u, i) == tok_token_score(t, i));
    }
    const char *s = "a bc ab<s>\xC3\xA9" "abc";
    int32_t ia[64], ib[64];
    size_t na, nb;
    assert_int_equal(tok_encode(t, s, strlen(s), ia, 64, &na, 1), SD_OK);
    assert_int_equal(tok_encode(u, s, strlen(s), ib, 64, &nb, 1), SD_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(ia, ib, na * sizeof *ia);
    tok_free(u);
    lm_model_free(&m);
    tok_free(t);
    /* llama.cpp reads a USER_DEFINED "</s>" as a control token: plain text unless parsing */
    {
        gguf_writer *w = gguf_writer_new();
        char store[256][4];
        const char *toks[257];
        int32_t types[257];
        for (int b = 0; b < 256; b++) toks[b] = gpt2_byte_text(b, store[b]), types[b] = TOK_TYPE_NORMAL;
        toks[256] = "</s>", types[256] = TOK_TYPE_USER_DEFINED;
        gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
        gguf_set_str(w, "tokenizer.ggml.pre", "qwen2");
        gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 257);
        gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, 257);
        gguf_set_arr_str(w, "tokenizer.ggml.merges", toks, 0);
        assert_int_equal(gguf_writer_write(w, path, &err), SD_OK);
        gguf_writer_free(w);
        assert_int_equal(gguf_open(&g, path, &err), SD_OK);
        assert_int_equal(lm_gguf_load_tokenizer(g, &u, &err), SD_OK);
        gguf_close(g);
        assert_string_equal(tok_pre_name(u), "qwen2");
        assert_int_equal(tok_token_type(u, 256), TOK_TYPE_CONTROL);
        int32_t ids[16];
        size_t n;
        assert_int_equal(tok_encode(u, "a</s>", 5, ids, 16, &n, 0), SD_OK);
        assert_int_equal(n, 5);
        assert_int_equal(tok_encode(u, "a</s>", 5, ids, 16, &n, 1), SD_OK);
        assert_int_equal(n, 2);
        assert_int_equal(ids[1], 256);
        tok_free(u);
    }
    /* refusals: an unknown model, an unknown pre-tokenizer */
    struct {
        const char *model, *pre, *want1, *want2;
    } bad[] = {{"bert", NULL, "\"bert\"", "\"llama\""}, {"gpt2", "deepseek-llm", "\"deepseek-llm\"", "qwen2"}};
    for (size_t k = 0; k < 2; k++) {
        gguf_writer *w = gguf_writer_new();
        char store[256][4];
        const char *toks[256];
        for (int b = 0; b < 256; b++) toks[b] = gpt2_byte_text(b, store[b]);
        gguf_set_str(w, "general.architecture", "llama");
        gguf_set_str(w, "tokenizer.ggml.model", bad[k].model);
        if (bad[k].pre) gguf_set_str(w, "tokenizer.ggml.pre", bad[k].pre);
        gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 256);
        gguf_set_arr_str(w, "tokenizer.ggml.merges", toks, 0);
        assert_int_equal(gguf_writer_write(w, path, &err), SD_OK);
        gguf_writer_free(w);
        assert_int_equal(gguf_open(&g, path, &err), SD_OK);
        assert_int_equal(lm_gguf_load_tokenizer(g, &u, &err), SD_ERR_FORMAT);
        gguf_close(g);
        assert_null(u);
        if (!strstr(err.msg, bad[k].want1) || !strstr(err.msg, bad[k].want2)) fail_msg("message: %s", err.msg);
    }
    unlink(path);
}

/* Checks one vocabulary against one vector file pair in llama.cpp's tests/test-tokenizer-0 format
 * (inputs separated by "\n__ggml_vocab_test__\n"; one line of space-separated ids per input):
 * every input must tokenize (no BOS/EOS, no special parsing: test-tokenizer-0's settings) to
 * exactly the expected ids, and decode back to the input (SPM: with its leading space; vocabularies
 * lacking some byte tokens: skipped for inputs holding those bytes, which llama.cpp drops too).
 * Prints one line naming the family; returns the number of mismatches. */
static size_t check_vectors(const char *family, const char *gguf, const char *pi, const char *po, const char *want_model,
                            const char *want_pre) {
    sd_err err = {0};
    gguf_file *g;
    if (gguf_open(&g, gguf, &err)) fail_msg("%s", err.msg);
    lm_tokenizer *t;
    if (lm_gguf_load_tokenizer(g, &t, &err)) fail_msg("%s", err.msg);
    gguf_close(g);
    assert_string_equal(tok_model_name(t), want_model);
    if (want_pre) assert_string_equal(tok_pre_name(t), want_pre);
    char *inp, *out;
    size_t li, lo;
    if (sd_read_file(pi, &inp, &li, &err) || sd_read_file(po, &out, &lo, &err)) fail_msg("%s", err.msg);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t pos = 0, n_tests = 0, n_bad = 0, n_ids = 0;
    char *line = out;
    int32_t *want = malloc(sizeof(int32_t) << 18), *got = malloc(sizeof(int32_t) << 18);
    char *back = malloc(li + 8), *expect = malloc(li + 8);
    while (pos < li) {
        char *next = strstr(inp + pos, sep);
        size_t end = next ? (size_t)(next - inp) : li;
        char *nl = strchr(line, '\n');
        if (!nl && !*line) fail_msg("%s has fewer lines than %s has tests", po, pi);
        if (nl) *nl = 0;
        size_t nw = 0;
        for (char *p = line; *p && nw < (1u << 18);) {
            char *e;
            long v = strtol(p, &e, 10);
            if (e == p) { p++; continue; }
            want[nw++] = (int32_t)v;
            p = e;
        }
        size_t ng;
        assert_int_equal(tok_encode(t, inp + pos, end - pos, got, 1u << 18, &ng, 0), SD_OK);
        n_ids += ng;
        if (ng != nw || memcmp(got, want, ng * sizeof *got)) {
            n_bad++;
            fprintf(stderr, "MISMATCH %s test %zu \"%.*s\"\n  want:", family, n_tests, (int)(end - pos), inp + pos);
            for (size_t i = 0; i < nw && i < 64; i++) fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n  got: ");
            for (size_t i = 0; i < ng && i < 64; i++) fprintf(stderr, " %d", got[i]);
            fprintf(stderr, "\n");
        }
        size_t lb, sp = tok_add_space_prefix(t) && end > pos; /* SPM: the space put before the text */
        assert_int_equal(tok_decode(t, got, ng, back, li + 8, &lb), SD_OK);
        /* SPM: a literal U+2581 in the text is a space to SentencePiece (and llama.cpp) */
        size_t le = 0;
        int spm = !strcmp(want_model, "llama");
        for (size_t i = pos; i < end;) {
            if (spm && end - i >= 3 && !memcmp(inp + i, "\xE2\x96\x81", 3)) expect[le++] = ' ', i += 3;
            else expect[le++] = inp[i++];
        }
        if (lb != le + sp || (sp && back[0] != ' ') || memcmp(back + sp, expect, le)) {
            /* a dropped byte (no token for it) is the only accepted reason */
            int dropped = 0;
            for (size_t i = pos; i < end && !dropped; i++) {
                int32_t one;
                size_t k;
                dropped = tok_encode(t, inp + i, 1, &one, 1, &k, 0) == SD_OK && k == 0;
            }
            if (!dropped) fail_msg("%s test %zu does not decode back to its input", family, n_tests);
        }
        n_tests++;
        line = nl ? nl + 1 : line + strlen(line);
        pos = next ? end + strlen(sep) : li;
    }
    printf("vocab conformance: %-10s (%s%s%s): %zu/%zu test vectors (%zu ids) of %s identical to llama.cpp\n", family,
           want_model, want_pre ? ", pre " : "", want_pre ? want_pre : "", n_tests - n_bad, n_tests, n_ids,
           strrchr(gguf, '/') ? strrchr(gguf, '/') + 1 : gguf);
    assert_true(n_tests >= 10);
    free(want);
    free(got);
    free(back);
    free(expect);
    free(inp);
    free(out);
    tok_free(t);
    return n_bad;
}

/* llama.cpp's own vocabulary files and test vectors (models/ggml-vocab-*.gguf{,.inp,.out}, in the
 * source scripts/fetch-llama-cpp brings), one per family serendip reads. SERENDIP_VOCAB_DIR
 * overrides the directory. SERENDIP_VOCAB_EXTRA adds checks, entries "family,model,pre,gguf,inp,out"
 * separated by ';' (pre "-" for none): scripts/conformance-vocab.sh passes vectors it made with
 * llama.cpp's tokenizer (more inputs, and the "default" family, which ships none). */
static void test_llama_cpp_vocab_conformance(void **state) {
    (void)state;
    static const struct {
        const char *family, *file, *model, *pre;
    } files[] = {
        {"gpt-2", "ggml-vocab-gpt-2.gguf", "gpt2", "gpt-2"},
        {"llama-bpe", "ggml-vocab-llama-bpe.gguf", "gpt2", "llama-bpe"},
        {"qwen2", "ggml-vocab-qwen2.gguf", "gpt2", "qwen2"},
        {"starcoder", "ggml-vocab-starcoder.gguf", "gpt2", "starcoder"},
        {"refact", "ggml-vocab-refact.gguf", "gpt2", "refact"},
        {"command-r", "ggml-vocab-command-r.gguf", "gpt2", "command-r"},
        {"mpt", "ggml-vocab-mpt.gguf", "gpt2", "mpt"},
        {"llama-spm", "ggml-vocab-llama-spm.gguf", "llama", NULL},
        {"phi-3", "ggml-vocab-phi-3.gguf", "llama", NULL},
    };
    const char *dir = getenv("SERENDIP_VOCAB_DIR");
    if (!dir) dir = "third_party/llama.cpp/models";
    const char *req = getenv("SERENDIP_VOCAB_REQUIRED");
    char *first = sd_asprintf("%s/%s", dir, files[0].file);
    if (!sd_file_exists(first)) {
        if (req && !strcmp(req, "1")) fail_msg("%s absent (run scripts/fetch-llama-cpp)", first);
        printf("SKIP: %s absent (scripts/fetch-llama-cpp fetches it)\n", first);
        free(first);
        skip();
    }
    free(first);
    size_t bad = 0, n_checks = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *g = sd_asprintf("%s/%s", dir, files[i].file), *pi = sd_asprintf("%s.inp", g), *po = sd_asprintf("%s.out", g);
        if (!sd_file_exists(g) || !sd_file_exists(pi)) fail_msg("%s or its .inp absent", g);
        bad += check_vectors(files[i].family, g, pi, po, files[i].model, files[i].pre);
        n_checks++;
        free(g), free(pi), free(po);
    }
    const char *extra = getenv("SERENDIP_VOCAB_EXTRA");
    char *list = extra ? sd_strdup(extra) : NULL;
    for (char *save = NULL, *e = list ? strtok_r(list, ";", &save) : NULL; e; e = strtok_r(NULL, ";", &save)) {
        char *f[6];
        int k = 0;
        for (char *s2 = NULL, *x = strtok_r(e, ",", &s2); x && k < 6; x = strtok_r(NULL, ",", &s2)) f[k++] = x;
        if (k != 6) fail_msg("SERENDIP_VOCAB_EXTRA entry needs family,model,pre,gguf,inp,out");
        bad += check_vectors(f[0], f[3], f[4], f[5], f[1], strcmp(f[2], "-") ? f[2] : NULL);
        n_checks++;
    }
    free(list);
    printf("vocab conformance: %zu checks, %zu mismatching vectors\n", n_checks, bad);
    assert_int_equal(bad, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_random_bytes),
        cmocka_unit_test(test_fast_bpe_matches_reference),
        cmocka_unit_test(test_training_deterministic_and_compresses),
        cmocka_unit_test(test_specials_parse_only_when_asked),
        cmocka_unit_test(test_pretokenizer_rules_known_answers),
        cmocka_unit_test(test_gguf_tokenizer_round_trip),
        cmocka_unit_test(test_pre_families_known_answers),
        cmocka_unit_test(test_pre_hand_written_matches_pcre2),
        cmocka_unit_test(test_llama_bpe_ignore_merges),
        cmocka_unit_test(test_specials_llama_cpp_order),
        cmocka_unit_test(test_missing_byte_dropped),
        cmocka_unit_test(test_spm_known_answers),
        cmocka_unit_test(test_gguf_families_and_refusals),
        cmocka_unit_test(test_llama_cpp_vocab_conformance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
