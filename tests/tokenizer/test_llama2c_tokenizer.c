/*
 * llama2.c tokenizer.bin: loading, validation, encoding and decoding.
 *
 * Part 1 builds small vocabularies by hand (no shared data needed) and
 * checks merge order, tie breaking, byte fallback, UTF-8 grouping and the
 * file validation.  Part 2 uses the real stories260K tokenizer
 * (shared/models/stories260K/tok512.bin, 512 pieces) and checks encodings
 * derived by hand from its pieces and scores, plus round trips.
 */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Writing tokenizer files                                                   */
/* ------------------------------------------------------------------------ */

typedef struct tokfile {
    unsigned char data[16384];
    size_t n;
} tokfile;

static void put_u32(tokfile *f, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        f->data[f->n++] = (unsigned char)(v >> (8 * i));
}

static void put_i32(tokfile *f, int32_t v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    put_u32(f, u);
}

static void put_f32(tokfile *f, float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    put_u32(f, u);
}

static void put_piece(tokfile *f, float score, const char *piece)
{
    put_f32(f, score);
    put_i32(f, (int32_t)strlen(piece));
    memcpy(f->data + f->n, piece, strlen(piece));
    f->n += strlen(piece);
}

static const char *write_file(const tokfile *f)
{
    const char *path = kvt_temp_path(".bin");
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return path;
    fwrite(f->data, 1, f->n, fp);
    fclose(fp);
    return path;
}

/* A small vocabulary: <unk> <s> </s>, the 256 byte pieces (ids 3..258),
 * then ids 259.. as listed. */
static const struct {
    const char *piece;
    float score;
} small_pieces[] = {
    {" ", -1.0f},     /* 259 */
    {"a", -2.0f},     /* 260 */
    {"b", -3.0f},     /* 261 */
    {"aa", -5.0f},    /* 262 */
    {" a", -10.0f},   /* 263 */
    {"ab", -4.0f},    /* 264 */
    {"aab", -6.0f},   /* 265 */
    {"\xc3\xa9", -7.0f}, /* 266: e-acute as one piece */
    {"x", -1e11f},    /* 267: scores at or below -1e10 never merge ...  */
    {"xx", -1e11f},   /* 268: ... so "xx" stays two tokens              */
};

static void build_small(tokfile *f, int with_bytes)
{
    f->n = 0;
    put_i32(f, 8);
    put_piece(f, 0.0f, "<unk>");
    put_piece(f, 0.0f, "\n<s>\n");
    put_piece(f, 0.0f, "\n</s>\n");
    for (int b = 0; b < 256; b++) {
        char p[8];
        snprintf(p, sizeof p, with_bytes ? "<0x%02X>" : "<1x%02X>", b);
        put_piece(f, 0.0f, p);
    }
    for (size_t i = 0; i < sizeof small_pieces / sizeof small_pieces[0]; i++)
        put_piece(f, small_pieces[i].score, small_pieces[i].piece);
}

static int encode_eq(kvl_tokenizer *tok, const char *text, int bos,
                     const int32_t *want, int32_t n_want)
{
    int32_t ids[256];
    int32_t n = -1;
    kvl_error err;
    kvl_status st = kvl_tokenizer_encode(tok, text, bos, ids, 256, &n, &err);
    int ok = st == KVL_OK && n == n_want;
    for (int32_t i = 0; ok && i < n; i++)
        ok = ids[i] == want[i];
    if (!ok) {
        fprintf(stderr, "encode(\"%s\") = %s [", text, kvl_status_name(st));
        for (int32_t i = 0; i < n && i < 256; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, " ], want [");
        for (int32_t i = 0; i < n_want; i++)
            fprintf(stderr, " %d", want[i]);
        fprintf(stderr, " ]\n");
    }
    return ok;
}

/* Concatenation of decode_piece over ids[1..n) (prev = the previous id;
 * ids[0] is the BOS, which run.c feeds but never prints) into out. */
static void decode_all(kvl_tokenizer *tok, const int32_t *ids, int32_t n,
                       char *out, size_t cap)
{
    size_t w = 0;
    out[0] = '\0';
    for (int32_t i = 1; i < n; i++) {
        const char *p = kvl_tokenizer_decode_piece(tok, ids[i - 1], ids[i]);
        if (!p)
            continue;
        size_t len = strlen(p);
        /* a "<0x00>" piece decodes to the empty string */
        if (w + len + 1 > cap)
            break;
        memcpy(out + w, p, len);
        w += len;
        out[w] = '\0';
    }
}

static void test_small_vocab(void)
{
    tokfile f;
    build_small(&f, 1);
    const char *path = write_file(&f);
    kvl_tokenizer *tok = NULL;
    kvl_error err = {0};
    CHECK_OK(kvl_tokenizer_load(path, 0, &tok, &err), &err);
    if (!tok)
        return;
    CHECK(kvl_tokenizer_vocab_size(tok) == 269, "%d",
          kvl_tokenizer_vocab_size(tok));
    CHECK(kvl_tokenizer_bos(tok) == 1, "bos");
    CHECK(kvl_tokenizer_eos(tok) == 2, "eos");

    /* "" -> nothing (no dummy prefix); with BOS just [1]. */
    CHECK(encode_eq(tok, "", 0, NULL, 0), "empty");
    CHECK(encode_eq(tok, "", 1, (const int32_t[]){1}, 1), "empty+bos");

    /* "a": " " "a" -> " a" (263). */
    CHECK(encode_eq(tok, "a", 1, (const int32_t[]){1, 263}, 2), "a");

    /* "aab": " " a a b.  Pairs: " a" -10, "aa" -5, "ab" -4.  Best is "ab"
     * (-4): " " a ab.  Then " a" -10 and "aab" (a+ab) -6: "aab" wins:
     * " " aab.  " aab" is no piece: [259, 265]. */
    CHECK(encode_eq(tok, "aab", 0, (const int32_t[]){259, 265}, 2), "aab");

    /* Ties go to the leftmost pair.  "aaa" = " " a a a: "aa" (-5) beats
     * " a" (-10) and is found twice; the leftmost merges: " " aa a, after
     * which " aa" and "aaa" are no pieces: [259, 262, 260].  (Merging the
     * rightmost first would give " " a aa -> " a" aa = [263, 262].)
     * "aaaa": " " aa a a -> " " aa aa = [259, 262, 262]. */
    CHECK(encode_eq(tok, "aaa", 0, (const int32_t[]){259, 262, 260}, 3),
          "tie goes left");
    CHECK(encode_eq(tok, "aaaa", 0, (const int32_t[]){259, 262, 262}, 3),
          "aaaa");

    /* Byte fallback: 'c' (0x63) is no piece -> id 0x63 + 3 = 102; the
     * 2-byte code point e-acute is a piece (266); the 3-byte snowman
     * E2 98 83 is not -> 229, 155, 134. */
    CHECK(encode_eq(tok, "c\xc3\xa9\xe2\x98\x83", 0,
                    (const int32_t[]){259, 102, 266, 229, 155, 134}, 6),
          "byte fallback");
    /* A stray continuation byte (A9 with no lead byte) is a code point of
     * its own, even right after the dummy prefix: byte fallback 0xA9 + 3 =
     * 172.  A lead byte C3 followed by ASCII 'a' is alone too: 198.  Text
     * "\xa9\xc3a": " " | A9 | C3 | a -> [259, 172, 198, 260] (no pair of
     * these is a piece). */
    CHECK(encode_eq(tok, "\xa9\xc3" "a", 0,
                    (const int32_t[]){259, 172, 198, 260}, 4),
          "stray bytes");
    /* More than 3 continuation bytes: the code point stops after 4 bytes
     * (run.c): F0 80 80 80 | 80 -> five byte tokens anyway. */
    CHECK(encode_eq(tok, "\xf0\x80\x80\x80\x80", 0,
                    (const int32_t[]){259, 243, 131, 131, 131, 131}, 6),
          "long sequence");
    /* Pieces scoring <= -1e10 never merge: "xx" -> " " x x. */
    CHECK(encode_eq(tok, "xx", 0, (const int32_t[]){259, 267, 267}, 3),
          "low score");

    /* Capacity: 2 ids needed, room for 1 -> KVL_ERR_RANGE, n = 2. */
    {
        int32_t ids[1] = {-7};
        int32_t n = 0;
        kvl_status st = kvl_tokenizer_encode(tok, "a", 1, ids, 1, &n, &err);
        CHECK(st == KVL_ERR_RANGE, "%s", kvl_status_name(st));
        CHECK(n == 2, "n = %d", n);
        st = kvl_tokenizer_encode(tok, "a", 1, NULL, 0, &n, &err);
        CHECK(st == KVL_ERR_RANGE && n == 2, "size query %s %d",
              kvl_status_name(st), n);
        st = kvl_tokenizer_encode(tok, "a", 1, NULL, 4, &n, &err);
        CHECK(st == KVL_ERR_ARG, "NULL ids with cap: %s", kvl_status_name(st));
        st = kvl_tokenizer_encode(tok, NULL, 1, ids, 1, &n, &err);
        CHECK(st == KVL_ERR_ARG, "NULL text: %s", kvl_status_name(st));
    }

    /* Decoding. */
    CHECK(strcmp(kvl_tokenizer_decode_piece(tok, -1, 263), " a") == 0,
          "piece");
    CHECK(strcmp(kvl_tokenizer_decode_piece(tok, 1, 263), "a") == 0,
          "leading space stripped after BOS");
    CHECK(strcmp(kvl_tokenizer_decode_piece(tok, 1, 259), "") == 0,
          "lone space after BOS");
    CHECK(strcmp(kvl_tokenizer_decode_piece(tok, 5, 263), " a") == 0,
          "not after BOS");
    CHECK(strcmp(kvl_tokenizer_decode_piece(tok, -1, 3 + 0x41), "A") == 0,
          "byte piece");
    CHECK(strcmp(kvl_tokenizer_decode_piece(tok, -1, 3 + 0x0A), "\n") == 0,
          "newline byte");
    const char *b = kvl_tokenizer_decode_piece(tok, -1, 3 + 0xE2);
    CHECK(b && (unsigned char)b[0] == 0xE2 && b[1] == 0, "high byte");
    CHECK(kvl_tokenizer_decode_piece(tok, -1, 269) == NULL, "id too large");
    CHECK(kvl_tokenizer_decode_piece(tok, -1, -1) == NULL, "negative id");
    CHECK(kvl_tokenizer_decode_piece(NULL, -1, 3) == NULL, "NULL tokenizer");
    kvl_tokenizer_free(tok);

    /* Without byte pieces (ids 3..258 are "<1xHH>") unknown code points map
     * to <unk> = 0. */
    build_small(&f, 0);
    path = write_file(&f);
    CHECK_OK(kvl_tokenizer_load(path, 269, &tok, &err), &err);
    if (tok) {
        CHECK(encode_eq(tok, "ca", 0, (const int32_t[]){259, 0, 260}, 3),
              "unk without byte fallback");
        kvl_tokenizer_free(tok);
    }
    kvl_tokenizer_free(NULL);
}

/* A malformed file must fail with `code` and a message naming the file. */
static void expect_bad(const tokfile *f, int32_t vocab, kvl_status code,
                       const char *what, const char *needle)
{
    const char *path = write_file(f);
    kvl_tokenizer *tok = (kvl_tokenizer *)&tok; /* must be reset to NULL */
    kvl_error err = {0};
    kvl_status st = kvl_tokenizer_load(path, vocab, &tok, &err);
    CHECK(st == code, "%s: got %s (%s)", what, kvl_status_name(st),
          err.message);
    CHECK(tok == NULL, "%s: out not NULL on failure", what);
    CHECK(strstr(err.message, path) != NULL, "%s: message lacks the path: %s",
          what, err.message);
    CHECK(strstr(err.message, needle) != NULL, "%s: message lacks '%s': %s",
          what, needle, err.message);
    if (st == KVL_OK)
        kvl_tokenizer_free(tok);
}

static void test_malformed(void)
{
    tokfile f;
    f.n = 0;
    expect_bad(&f, 0, KVL_ERR_FORMAT, "empty file", "too short");
    f.n = 0;
    put_i32(&f, 8);
    expect_bad(&f, 0, KVL_ERR_FORMAT, "header only", "at least");
    f.n = 0;
    put_i32(&f, -3);
    put_piece(&f, 0, "a");
    expect_bad(&f, 0, KVL_ERR_FORMAT, "negative max_token_length",
               "max_token_length");

    /* Entries after three valid ones. */
    tokfile base;
    base.n = 0;
    put_i32(&base, 8);
    put_piece(&base, 0, "<unk>");
    put_piece(&base, 0, "<s>");
    put_piece(&base, 0, "</s>");

    f = base;
    put_f32(&f, -1.0f);
    put_i32(&f, -5);
    expect_bad(&f, 0, KVL_ERR_FORMAT, "negative length", "negative length");
    f = base;
    put_f32(&f, -1.0f);
    put_i32(&f, 0x7fffffff);
    expect_bad(&f, 0, KVL_ERR_FORMAT, "huge length", "max_token_length");
    f = base;
    put_f32(&f, -1.0f);
    put_i32(&f, 6);
    memcpy(f.data + f.n, "abc", 3);
    f.n += 3;
    expect_bad(&f, 0, KVL_ERR_FORMAT, "truncated piece", "truncated");
    f = base;
    put_f32(&f, -1.0f);
    f.n -= 2;
    expect_bad(&f, 0, KVL_ERR_FORMAT, "truncated score", "truncated");
    f = base;
    expect_bad(&f, 5, KVL_ERR_FORMAT, "vocab_size too large", "truncated");
    expect_bad(&f, 2, KVL_ERR_FORMAT, "vocab_size too small", "trailing");
    f = base;
    put_f32(&f, NAN);
    put_i32(&f, 1);
    f.data[f.n++] = 'x';
    expect_bad(&f, 0, KVL_ERR_FORMAT, "NaN score", "NaN");

    /* The well-formed base loads with 0 and with its exact size. */
    kvl_tokenizer *tok = NULL;
    kvl_error err;
    const char *path = write_file(&base);
    CHECK_OK(kvl_tokenizer_load(path, 3, &tok, &err), &err);
    CHECK(kvl_tokenizer_vocab_size(tok) == 3, "vocab 3");
    kvl_tokenizer_free(tok);

    /* Arguments. */
    tok = NULL;
    kvl_status st = kvl_tokenizer_load("/nonexistent/kvlab/tok.bin", 0, &tok,
                                       &err);
    CHECK(st == KVL_ERR_IO && tok == NULL, "missing file: %s",
          kvl_status_name(st));
    CHECK(strstr(err.message, "/nonexistent/kvlab/tok.bin") != NULL, "%s",
          err.message);
    st = kvl_tokenizer_load("/tmp", 0, &tok, &err);
    CHECK(st == KVL_ERR_IO, "directory: %s", kvl_status_name(st));
    st = kvl_tokenizer_load(path, -1, &tok, &err);
    CHECK(st == KVL_ERR_ARG, "negative vocab: %s", kvl_status_name(st));
    st = kvl_tokenizer_load(NULL, 0, &tok, &err);
    CHECK(st == KVL_ERR_ARG, "NULL path: %s", kvl_status_name(st));
    st = kvl_tokenizer_load(path, 0, NULL, NULL);
    CHECK(st == KVL_ERR_ARG, "NULL out: %s", kvl_status_name(st));
}

/* ------------------------------------------------------------------------ */
/* The real stories260K tokenizer                                            */
/* ------------------------------------------------------------------------ */

static void round_trip(kvl_tokenizer *tok, const char *text)
{
    int32_t ids[1024];
    int32_t n = 0;
    kvl_error err;
    CHECK_OK(kvl_tokenizer_encode(tok, text, 1, ids, 1024, &n, &err), &err);
    char out[4096];
    decode_all(tok, ids, n, out, sizeof out);
    CHECK(strcmp(out, text) == 0, "round trip:\n  in  \"%s\"\n  out \"%s\"",
          text, out);
    /* All but the BOS are real tokens, fewer than the bytes + 1. */
    CHECK(n >= 1 && ids[0] == 1, "BOS first");
    CHECK((size_t)n <= strlen(text) + 2, "%d ids for %zu bytes", n,
          strlen(text));
}

static void test_tok512(kvl_tokenizer *tok)
{
    CHECK(kvl_tokenizer_vocab_size(tok) == 512, "%d",
          kvl_tokenizer_vocab_size(tok));

    /*
     * "Once upon a time", derived by hand from tok512's pieces (the file
     * gives score = -(id - 259) for ids >= 259, so a lower id merges
     * first):
     *   code points, after the dummy prefix " ":
     *     " "410 O441 n416 c429 e411 " "410 u425 p427 o414 n416 " "410
     *     a412 " "410 t413 i417 m423 e411
     *   adjacent pairs that are pieces: " O"319 "ce"331 " u"318 "on"289
     *     " a"261 " t"259 "im"288
     *     (not pieces: "On" "nc" "up" "po" "ti" "me", nor any pair ending
     *     in " ")
     *   merges in score order, with the pairs each one creates:
     *     " t"259  " a"261  "im"288 (" tim" no piece)  "on"289
     *     " u"318  " O"319 -> " On"321
     *     " On"321 (+ "c": " Onc" no piece)  "ce"331 -> " Once"403
     *     " up"350 (from " u"+"p") -> " upon"407
     *     "ime"369 (from "im"+"e") -> " time"378
     *     " time"378  " Once"403  " upon"407
     *   result: [403 " Once", 407 " upon", 261 " a", 378 " time"].
     */
    CHECK(encode_eq(tok, "Once upon a time", 1,
                    (const int32_t[]){1, 403, 407, 261, 378}, 5),
          "Once upon a time");

    /*
     * "Hello, world!":
     *   " "410 H440 e411 l421 l421 o414 ,432 " "410 w424 o414 r420 l421
     *   d418 !443
     *   pairs that are pieces: " H"320(-61) "ll"306(-47) " w"263(-4)
     *     "or"304(-45) "ld"341(-82)  (not: "He" "el" "lo" "o," ", "
     *     "wo" "rl")
     *   merges: " w"(-4) "or"(-45) "ll"(-47) " H"(-61) -> " He"346(-87);
     *     "ld"(-82) " He"(-87); then " He"+"ll", "ll"+"o", " w"+"or",
     *     "or"+"ld" are no pieces.
     *   result: [346 " He", 306 "ll", 414 "o", 432 ",", 263 " w",
     *            304 "or", 341 "ld", 443 "!"].
     */
    CHECK(encode_eq(tok, "Hello, world!", 0,
                    (const int32_t[]){346, 306, 414, 432, 263, 304, 341, 443},
                    8),
          "Hello, world!");

    /*
     * "café naïve": é (C3 A9) is piece 485, ï (C3 AF) is not -> bytes
     * 0xC3+3 = 198, 0xAF+3 = 178.
     *   " "410 c429 a412 f431 é485 " "410 n416 a412 198 178 v435 e411
     *   pairs that are pieces: " c"280(-21) " n"297(-38) "ve"360(-101)
     *     (not: "ca" "af" "fé" "é " "na"; byte pieces join nothing)
     *   result: [280 " c", 412 "a", 431 "f", 485 "é", 297 " n", 412 "a",
     *            198, 178, 360 "ve"].
     */
    CHECK(encode_eq(tok, "caf\xc3\xa9 na\xc3\xafve", 0,
                    (const int32_t[]){280, 412, 431, 485, 297, 412, 198, 178,
                                      360},
                    9),
          "cafe naive");

    /* BOS is a control token: its stored piece is "\n<s>\n" (what run.c
     * would print), but it decodes to nothing, as SentencePiece decodes
     * control symbols. */
    CHECK(strcmp(kvl_tokenizer_id_to_token(tok, 1), "\n<s>\n") == 0,
          "bos entry");
    CHECK(strcmp(kvl_tokenizer_decode_piece(tok, -1, 1), "") == 0,
          "bos decodes to nothing");
    CHECK(kvl_tokenizer_token_to_id(tok, " upon") == 407, "token_to_id");
    CHECK(kvl_tokenizer_get_kind(tok) == KVL_TOKENIZER_LLAMA2C, "kind");
    CHECK(strcmp(kvl_tokenizer_decode_piece(tok, 1, 403), "Once") == 0,
          "Once after BOS");
    CHECK(strcmp(kvl_tokenizer_decode_piece(tok, 403, 407), " upon") == 0,
          "upon");

    round_trip(tok, "Once upon a time, there was a little girl named Lily.");
    round_trip(tok, "Lily's mom said, \"Don't worry.\"\nThey played.");
    round_trip(tok, "  two leading spaces, trailing space ");
    round_trip(tok, "tabs\tand\nnewlines\r\n~|`{}");
    round_trip(tok, "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x9cquoted\xe2\x80\x9d "
                    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
                    "\xf0\x9f\x98\x80 \xd0\x9f\xd1\x80\xd0\xb8");
    /* Every byte 1..255 (also invalid UTF-8) survives byte fallback. */
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    round_trip(tok, all);
}

int main(void)
{
    test_small_vocab();
    test_malformed();

    const char *path = kvt_source_path("models/stories260K/tok512.bin");
    if (!kvt_file_exists(path)) {
        if (kvt_failed)
            return kvt_finish();
        return kvt_skip("%s absent (synthetic tests passed: %d)", path,
                        kvt_passed);
    }
    kvl_tokenizer *tok = NULL;
    kvl_error err = {0};
    CHECK_OK(kvl_tokenizer_load(path, 512, &tok, &err), &err);
    if (tok)
        test_tok512(tok);
    kvl_tokenizer_free(tok);
    /* Reading to EOF finds the same 512 pieces. */
    CHECK_OK(kvl_tokenizer_load(path, 0, &tok, &err), &err);
    CHECK(kvl_tokenizer_vocab_size(tok) == 512, "vocab to EOF");
    kvl_tokenizer_free(tok);
    /* 513 is more than the file holds. */
    kvl_status st = kvl_tokenizer_load(path, 513, &tok, &err);
    CHECK(st == KVL_ERR_FORMAT, "vocab 513: %s", kvl_status_name(st));
    return kvt_finish();
}
