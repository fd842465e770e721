/*
 * llama2.c tokenizer.bin: the SentencePiece vocabulary exported by
 * karpathy/llama2.c (tokenizer.py).  Layout, all little-endian:
 *
 *     int32 max_token_length
 *     vocab_size times: float32 score, int32 len, len bytes (the piece,
 *                       with SentencePiece's U+2581 already turned into ' ')
 *
 * The vocabulary size is not stored; the caller passes it (or 0 to read to
 * the end of the file).  Ids 0, 1, 2 are <unk>, <s> (BOS), </s> (EOS); when
 * ids 3..258 are the pieces "<0x00>".."<0xFF>" the vocabulary has byte
 * fallback.
 *
 * Encoding follows llama2.c's run.c `encode`:
 *   1. optional BOS;
 *   2. the text, with a dummy-prefix " " prepended when it is non-empty, is
 *      cut into UTF-8 code points (a byte plus at most 3 following
 *      continuation bytes); each code point that is a piece becomes that
 *      piece, otherwise each of its bytes becomes id byte + 3 (byte
 *      fallback; <unk> = 0 when the vocabulary has no byte pieces);
 *   3. repeatedly, among adjacent pairs whose concatenation is a piece, the
 *      pair whose piece has the highest score (ties: the leftmost pair; only
 *      scores above -1e10) is merged, until no pair merges.
 * run.c rescans the whole sequence after every merge (quadratic); here a
 * heap of candidate pairs keyed by (score desc, position asc) with lazy
 * invalidation picks the very same pair at every step in O(n log n).
 * Unlike run.c the BOS token never takes part in merges (its piece is
 * "\n<s>\n", which no real vocabulary extends).
 *
 * Decoding follows run.c `decode`: a piece that follows BOS loses its
 * leading space, and "<0xXX>" pieces become the raw byte.
 */
#include "core/error.h"
#include "tokenizer/merge_heap.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KVL_TOK_BOS 1
#define KVL_TOK_EOS 2
#define KVL_TOK_UNK 0
#define KVL_TOK_BYTE0 3                  /* id of "<0x00>"                  */
#define KVL_TOK_MAX_FILE (1ll << 30)     /* refuse files above 1 GiB        */
#define KVL_TOK_MAX_PIECE (1 << 16)      /* longest max_token_length taken  */
#define KVL_TOK_MIN_SCORE (-1e10f)       /* run.c: pairs must score above  */

typedef struct l2c_tok {
    int32_t vocab_size;
    int32_t max_token_length;
    int byte_fallback;     /* ids 3..258 are the 256 byte pieces          */
    char *arena;           /* all pieces, each NUL-terminated             */
    size_t *offset;        /* [vocab] start of piece i in arena           */
    int32_t *length;       /* [vocab] length in bytes (may hold NULs)     */
    float *score;          /* [vocab]                                      */
    int32_t *table;        /* open-addressing hash: id + 1, 0 = empty      */
    size_t table_mask;
} l2c_tok;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static uint32_t read_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static int32_t read_i32le(const unsigned char *p)
{
    uint32_t u = read_u32le(p);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static float read_f32le(const unsigned char *p)
{
    uint32_t u = read_u32le(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static const char *piece_of(const l2c_tok *t, int32_t id)
{
    return t->arena + t->offset[id];
}

/* Id of the piece equal to s[0..n), or -1. */
static int32_t lookup(const l2c_tok *t, const char *s, size_t n)
{
    size_t i = (size_t)hash_bytes(s, n) & t->table_mask;
    for (;;) {
        int32_t e = t->table[i];
        if (e == 0)
            return -1;
        int32_t id = e - 1;
        if ((size_t)t->length[id] == n && memcmp(piece_of(t, id), s, n) == 0)
            return id;
        i = (i + 1) & t->table_mask;
    }
}

/* Inserts id unless an equal piece is already present (lowest id wins). */
static void insert(l2c_tok *t, int32_t id)
{
    const char *s = piece_of(t, id);
    size_t n = (size_t)t->length[id];
    size_t i = (size_t)hash_bytes(s, n) & t->table_mask;
    for (;;) {
        int32_t e = t->table[i];
        if (e == 0) {
            t->table[i] = id + 1;
            return;
        }
        int32_t other = e - 1;
        if (t->length[other] == t->length[id] &&
            memcmp(piece_of(t, other), s, n) == 0)
            return;
        i = (i + 1) & t->table_mask;
    }
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

static void l2c_destroy(void *impl)
{
    l2c_tok *tok = impl;
    if (!tok)
        return;
    free(tok->arena);
    free(tok->offset);
    free(tok->length);
    free(tok->score);
    free(tok->table);
    free(tok);
}

/* Validates the layout and counts the entries (all of them when
 * vocab_size is 0, else exactly vocab_size); *text_bytes = sum of lengths. */
static kvl_status scan_entries(const char *path, const unsigned char *data,
                               size_t size, int32_t vocab_size,
                               int32_t max_len, int32_t *n_out,
                               size_t *text_bytes, kvl_error *err)
{
    size_t pos = 4, total = 0;
    int32_t n = 0;
    while (vocab_size == 0 ? pos < size : n < vocab_size) {
        size_t left = size - pos;
        if (left < 8)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': truncated at token %d (offset %zu): "
                            "needs an 8-byte score and length, %zu bytes left%s",
                            path, n, pos, left,
                            vocab_size ? " (is vocab_size too large?)" : "");
        float score = read_f32le(data + pos);
        int32_t len = read_i32le(data + pos + 4);
        if (isnan(score))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': token %d (offset %zu) has a NaN score",
                            path, n, pos);
        if (len < 0)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': token %d (offset %zu) has a negative "
                            "length %d",
                            path, n, pos, len);
        if (len > max_len)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': token %d (offset %zu) has length %d, "
                            "above the file's max_token_length %d",
                            path, n, pos, len, max_len);
        pos += 8;
        if ((size_t)len > size - pos)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': truncated at token %d: its %d-byte "
                            "piece needs more than the %zu bytes left",
                            path, n, len, size - pos);
        pos += (size_t)len;
        total += (size_t)len;
        if (n == INT32_MAX - 1)
            return kvl_fail(err, KVL_ERR_FORMAT, "file '%s': too many tokens",
                            path);
        n++;
    }
    if (pos != size)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %zu trailing bytes after %d tokens (is "
                        "vocab_size %d too small?)",
                        path, size - pos, n, vocab_size);
    *n_out = n;
    *text_bytes = total;
    return KVL_OK;
}

static const kvl_tokenizer_ops l2c_ops;

kvl_status kvl_llama2c_tokenizer_open(const char *path, int32_t vocab_size,
                                      kvl_tokenizer *out, kvl_error *err)
{
    if (vocab_size < 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "file '%s': vocab_size %d is negative (0 = read to "
                        "the end of the file)",
                        path, vocab_size);

    unsigned char *data;
    size_t size;
    kvl_status st = kvl_tokenizer_read_file(path, KVL_TOK_MAX_FILE,
                                            "a tokenizer", &data, &size, err);
    if (st != KVL_OK)
        return st;

    if (size < 4) {
        free(data);
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %zu bytes, too short for the 4-byte "
                        "max_token_length header",
                        path, size);
    }
    int32_t max_len = read_i32le(data);
    if (max_len <= 0 || max_len > KVL_TOK_MAX_PIECE) {
        free(data);
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': max_token_length %d is out of range "
                        "(1..%d); not a llama2.c tokenizer.bin?",
                        path, max_len, KVL_TOK_MAX_PIECE);
    }
    int32_t n = 0;
    size_t text_bytes = 0;
    st = scan_entries(path, data, size, vocab_size, max_len, &n, &text_bytes,
                      err);
    if (st != KVL_OK) {
        free(data);
        return st;
    }
    if (n < 3) {
        free(data);
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %d tokens; a vocabulary needs at least "
                        "<unk>, <s> and </s>",
                        path, n);
    }

    l2c_tok *t = calloc(1, sizeof *t);
    size_t table_size = 16;
    while (table_size < 2 * (size_t)n)
        table_size *= 2;
    if (t) {
        t->arena = malloc(text_bytes + (size_t)n);
        t->offset = malloc((size_t)n * sizeof *t->offset);
        t->length = malloc((size_t)n * sizeof *t->length);
        t->score = malloc((size_t)n * sizeof *t->score);
        t->table = calloc(table_size, sizeof *t->table);
    }
    if (!t || !t->arena || !t->offset || !t->length || !t->score ||
        !t->table) {
        l2c_destroy(t);
        free(data);
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "file '%s': cannot allocate a %d-token vocabulary",
                        path, n);
    }
    t->vocab_size = n;
    t->max_token_length = max_len;
    t->table_mask = table_size - 1;

    size_t pos = 4, at = 0;
    for (int32_t i = 0; i < n; i++) {
        t->score[i] = read_f32le(data + pos);
        t->length[i] = read_i32le(data + pos + 4);
        pos += 8;
        t->offset[i] = at;
        memcpy(t->arena + at, data + pos, (size_t)t->length[i]);
        t->arena[at + (size_t)t->length[i]] = '\0';
        at += (size_t)t->length[i] + 1;
        pos += (size_t)t->length[i];
    }
    free(data);
    for (int32_t i = 0; i < n; i++)
        insert(t, i);

    t->byte_fallback = n >= KVL_TOK_BYTE0 + 256;
    for (int b = 0; b < 256 && t->byte_fallback; b++) {
        int32_t id = KVL_TOK_BYTE0 + b;
        if (kvl_byte_piece_value(piece_of(t, id), (size_t)t->length[id], 1) != b)
            t->byte_fallback = 0;
    }
    out->ops = &l2c_ops;
    out->impl = t;
    out->kind = KVL_TOKENIZER_LLAMA2C;
    out->vocab_size = n;
    out->bos_id = KVL_TOK_BOS;
    out->eos_id = KVL_TOK_EOS;
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct merge_cand {
    float score;
    int32_t left;     /* node index of the left token (= its position)  */
    int32_t right;    /* node index of the right token                   */
    int32_t id;       /* the merged piece                                */
    uint32_t ver_l, ver_r;
} merge_cand;

typedef struct encode_state {
    const l2c_tok *t;
    int32_t *id, *next, *prev;
    uint32_t *ver;
    merge_cand *heap;
    size_t n_heap;
    char *buf;        /* 2 * max_token_length bytes                      */
} encode_state;

KVL_MERGE_HEAP_DEFINE(cand_heap, merge_cand)

/* Pushes the pair (left, right) if its concatenation is a piece that may
 * merge. */
static void consider_pair(encode_state *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return;
    const l2c_tok *t = s->t;
    int32_t a = s->id[left], b = s->id[right];
    size_t la = (size_t)t->length[a], lb = (size_t)t->length[b];
    if (la + lb > (size_t)t->max_token_length)
        return; /* no piece is that long */
    memcpy(s->buf, piece_of(t, a), la);
    memcpy(s->buf + la, piece_of(t, b), lb);
    int32_t id = lookup(t, s->buf, la + lb);
    if (id < 0 || !(t->score[id] > KVL_TOK_MIN_SCORE))
        return;
    merge_cand c = {t->score[id], left, right, id, s->ver[left],
                    s->ver[right]};
    cand_heap_push(s->heap, &s->n_heap, c);
}

/* Appends the token(s) of one code point cp[0..len) at ids[n]; returns the
 * new count. */
static int32_t push_code_point(const l2c_tok *t, const char *cp,
                               size_t len, int32_t *ids, int32_t n)
{
    int32_t id = lookup(t, cp, len);
    if (id >= 0) {
        ids[n++] = id;
        return n;
    }
    for (size_t k = 0; k < len; k++)
        ids[n++] = t->byte_fallback ? KVL_TOK_BYTE0 + (unsigned char)cp[k]
                                    : KVL_TOK_UNK;
    return n;
}

static kvl_status l2c_encode(const void *impl, const char *text,
                             size_t text_len, unsigned flags, kvl_idbuf *out,
                             kvl_error *err)
{
    const l2c_tok *tok = impl;
    const int add_bos = (flags & KVL_ENCODE_ADD_SPECIAL) != 0;
    if (text_len > (size_t)INT32_MAX - 3)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_tokenizer_encode: text of %zu bytes is too long",
                        text_len);

    /* At most one token per byte, plus the dummy prefix. */
    size_t max_nodes = text_len + 1;
    encode_state s = {0};
    s.t = tok;
    s.id = malloc(max_nodes * sizeof *s.id);
    s.next = malloc(max_nodes * sizeof *s.next);
    s.prev = malloc(max_nodes * sizeof *s.prev);
    s.ver = calloc(max_nodes, sizeof *s.ver);
    s.heap = malloc(3 * max_nodes * sizeof *s.heap);
    s.buf = malloc(2 * (size_t)tok->max_token_length + 4);
    kvl_status st = KVL_OK;
    if (!s.id || !s.next || !s.prev || !s.ver || !s.heap || !s.buf) {
        st = kvl_fail(err, KVL_ERR_NOMEM,
                      "kvl_tokenizer_encode: cannot allocate for %zu bytes "
                      "of text",
                      text_len);
        goto done;
    }

    /* Code points -> initial tokens.  The dummy prefix " " is a code point
     * of its own (a continuation byte at the start of the text does not
     * join it). */
    int32_t n = 0;
    if (text_len > 0)
        n = push_code_point(tok, " ", 1, s.id, n);
    for (size_t i = 0; i < text_len;) {
        size_t len = 1;
        while (i + len < text_len && len < 4 &&
               ((unsigned char)text[i + len] & 0xC0) == 0x80)
            len++;
        n = push_code_point(tok, text + i, len, s.id, n);
        i += len;
    }
    for (int32_t i = 0; i < n; i++) {
        s.prev[i] = i - 1;
        s.next[i] = i + 1 < n ? i + 1 : -1;
    }

    /* Merges, best pair first. */
    for (int32_t i = 0; i + 1 < n; i++)
        consider_pair(&s, i, i + 1);
    while (s.n_heap > 0) {
        merge_cand c = cand_heap_pop(s.heap, &s.n_heap);
        if (s.ver[c.left] != c.ver_l || s.ver[c.right] != c.ver_r ||
            s.next[c.left] != c.right)
            continue; /* stale: one side changed or was absorbed */
        int32_t r = c.right;
        s.id[c.left] = c.id;
        s.ver[c.left]++;
        s.ver[r]++; /* dead */
        s.next[c.left] = s.next[r];
        if (s.next[r] >= 0)
            s.prev[s.next[r]] = c.left;
        s.next[r] = -1;
        consider_pair(&s, s.prev[c.left], c.left);
        consider_pair(&s, c.left, s.next[c.left]);
    }

    /* Output. */
    if (add_bos && (st = kvl_idbuf_push(out, KVL_TOK_BOS, err)) != KVL_OK)
        goto done;
    for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = s.next[i])
        if ((st = kvl_idbuf_push(out, s.id[i], err)) != KVL_OK)
            goto done;

done:
    free(s.id);
    free(s.next);
    free(s.prev);
    free(s.ver);
    free(s.heap);
    free(s.buf);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                  */
/* ------------------------------------------------------------------------ */

/* BOS and EOS are control tokens: they decode to nothing. */
static kvl_status l2c_decode(const void *impl, const int32_t *ids, size_t n,
                             unsigned flags, kvl_strbuf *out, kvl_error *err)
{
    const l2c_tok *tok = impl;
    (void)flags;
    for (size_t i = 0; i < n; i++) {
        const int32_t id = ids[i];
        if (id == KVL_TOK_BOS || id == KVL_TOK_EOS)
            continue;
        const char *p = piece_of(tok, id);
        size_t len = (size_t)tok->length[id];
        if (i > 0 && ids[i - 1] == KVL_TOK_BOS && len > 0 && p[0] == ' ') {
            p++;
            len--;
        }
        int b = kvl_byte_piece_value(p, len, 1);
        char byte = (char)b;
        kvl_status st = b >= 0 ? kvl_strbuf_append(out, &byte, 1, err)
                               : kvl_strbuf_append(out, p, len, err);
        if (st != KVL_OK)
            return st;
    }
    return KVL_OK;
}

static const char *l2c_id_to_token(const void *impl, int32_t id)
{
    return piece_of(impl, id);
}

static int32_t l2c_token_to_id(const void *impl, const char *token, size_t len)
{
    return lookup(impl, token, len);
}

static const kvl_tokenizer_ops l2c_ops = {l2c_destroy, l2c_encode, l2c_decode,
                                          l2c_id_to_token, l2c_token_to_id};
