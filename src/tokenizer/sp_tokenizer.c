/*
 * SentencePiece tokenizer.model files of model type BPE (Llama 2,
 * TinyLlama, ...), with the behaviour of the sentencepiece library 0.2
 * (SentencePieceProcessor::Encode / Decode over bpe::Model).
 *
 * Loading (sp_proto.c reads the protobuf).  As sentencepiece's
 * ModelInterface::InitializePieces does, pieces of type NORMAL,
 * USER_DEFINED and UNUSED form the "pieces" map (the only ones BPE may
 * build); UNKNOWN, CONTROL and BYTE pieces form the "reserved" map, which
 * PieceToId consults first.  Empty pieces, pieces holding NUL, pieces of
 * 8000 bytes or more, duplicates within a map, no or two UNKNOWN pieces,
 * BYTE pieces without byte_fallback and byte_fallback without all 256
 * "<0xXX>" pieces are format errors, as they are load errors there.
 * Unsupported (KVL_ERR_UNSUPPORTED, never a wrong encoding): model types
 * other than BPE, a non-empty precompiled_charsmap in the normalizer or
 * denormalizer (e.g. "nmt_nfkc": kvlab has no charsmap interpreter; Llama
 * 2's normaliser is "identity" with no charsmap), and
 * treat_whitespace_as_suffix.
 *
 * Encoding (KVL_ENCODE_ADD_SPECIAL prepends the BOS piece, "<s>", when it
 * is a CONTROL piece, as transformers' LlamaTokenizer does; no EOS):
 *  1. Normalizer::Normalize without a charsmap: the text is cut into
 *     chunks, a user-defined symbol (longest match) or one UTF-8
 *     character, where a malformed byte becomes U+FFFD; with
 *     remove_extra_whitespaces, leading spaces, runs of spaces and
 *     trailing spaces are dropped; each ' ' becomes U+2581 "▁" (when
 *     escape_whitespaces); a "▁" is prepended when add_dummy_prefix and the
 *     text is not empty after space removal.
 *  2. bpe::Model::SampleEncode with no dropout: the normalized text is cut
 *     into symbols (user-defined symbols, frozen, else one character);
 *     repeatedly the adjacent pair whose concatenation is in the pieces map
 *     with the highest score is merged (ties: the leftmost pair), through a
 *     heap of candidate pairs with lazy invalidation, O(n log n); a symbol
 *     that is an UNUSED piece is split back into the two symbols whose
 *     last-recorded merge built it ("resegment").  Two speed-ups that
 *     leave every merge unchanged: the symbols are cut into runs at places
 *     where no piece holds the two neighbouring characters (for Llama 2:
 *     before every "▁" that follows another character), each run merged
 *     with its own small heap; and pieces are hashed polynomially, so the
 *     hash of a pair is computed from its halves' in O(1).
 *  3. PopulateSentencePieceText: each symbol becomes PieceToId(symbol);
 *     an unknown symbol becomes its UTF-8 bytes as "<0xXX>" pieces with
 *     byte_fallback, else consecutive unknown symbols become one <unk>.
 * Control pieces written in the text ("<s>", "</s>") are NOT special in
 * SentencePiece: they are not in the pieces map and so are encoded as
 * ordinary text ("<", "s", ">" merged as the scores say).  There are no
 * special tokens to match, so KVL_ENCODE_PLAIN_SPECIAL changes nothing.
 *
 * Decoding (SentencePieceProcessor::Decode): CONTROL pieces give nothing,
 * the UNKNOWN piece gives trainer_spec.unk_surface (default " ⁇ ", U+2047
 * between spaces), runs of BYTE pieces are reassembled and each
 * malformed byte in them becomes U+FFFD, every "▁" becomes " ", and the
 * first piece that starts with "▁" while nothing visible was output yet
 * loses that "▁" (the dummy prefix; only when add_dummy_prefix or
 * remove_extra_whitespaces; with remove_extra_whitespaces every such
 * leading piece loses it).  KVL_DECODE_SKIP_SPECIAL drops CONTROL and
 * UNKNOWN pieces before decoding (transformers' skip_special_tokens drops
 * <s>, </s> and <unk>); the internal KVL_DECODE_RAW_BYTES (used by
 * kvl_tokenizer_decode_piece) outputs byte pieces as raw bytes instead.
 *
 * The tokenizer is read-only after loading: encode and decode allocate
 * their working memory per call.
 */
#include "core/error.h"
#include "tokenizer/merge_heap.h"
#include "tokenizer/sp_proto.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SP_MAX_FILE (1ll << 30)   /* refuse model files above 1 GiB          */
#define SP_MAX_PIECE 8000         /* sentencepiece: kMaxPieceSize            */
#define SP_SPACE "\xe2\x96\x81"   /* U+2581 LOWER ONE EIGHTH BLOCK           */
#define SP_FFFD "\xef\xbf\xbd"    /* U+FFFD REPLACEMENT CHARACTER            */
#define SP_MAX_TEXT ((size_t)INT32_MAX / 4)

typedef struct sp_tok {
    int32_t n;                  /* pieces                                  */
    char *arena;                /* every piece, NUL-terminated             */
    size_t *offset;             /* [n] start in arena                      */
    int32_t *length;            /* [n] bytes                               */
    float *score;               /* [n]                                     */
    uint8_t *type;              /* [n] KVL_SP_*                            */
    int32_t *canon;             /* [n] PieceToId(piece i): i unless a      */
                                /*     reserved piece has the same text    */
    uint64_t *pieces_tab;       /* hash: NORMAL/USER/UNUSED, see tab_entry */
    uint64_t *reserved_tab;     /* hash: UNKNOWN/CONTROL/BYTE              */
    size_t tab_mask;
    uint64_t *pow;              /* [max_piece_len + 1] SP_HASH_MUL^k       */
    int32_t max_piece_len;      /* longest piece in the pieces map         */
    int32_t unk_id;             /* the UNKNOWN piece                       */
    int32_t bos_id, eos_id;     /* PieceToId(bos/eos piece) if CONTROL     */
    int32_t byte_id[256];       /* PieceToId("<0xXX>")                     */
    int byte_fallback;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    int has_unused;
    char *unk_surface;
    size_t unk_surface_len;
    int32_t user_lens[32];      /* distinct lengths of USER_DEFINED pieces, */
    int n_user_lens;            /* longest first (0: none)                  */
    int32_t *user_lens_big;     /* when more than 32 distinct lengths       */
    uint64_t *bigrams;          /* set of adjacent character pairs inside  */
    size_t bigram_mask;         /* pieces of the pieces map (0 = empty)    */
} sp_tok;

/* ------------------------------------------------------------------------ */
/* Hashing and lookups                                                       */
/* ------------------------------------------------------------------------ */

/* Piece hashes are polynomial, h(s) = sum (s[i] + 1) * M^(n-1-i) mod 2^64,
 * so that the hash of two neighbouring symbols' concatenation is
 * h(a) * M^|b| + h(b): pair look-ups cost O(1) whatever the lengths. */
#define SP_HASH_MUL 0x100000001b3ull

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++)
        h = h * SP_HASH_MUL + (unsigned char)s[i] + 1;
    return h;
}

static uint64_t hash_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* A table slot: the high 32 bits of the mixed hash, then id + 1 (0 =
 * empty), so that most mismatches are rejected without reading the piece. */
static uint64_t tab_entry(uint64_t mixed, int32_t id)
{
    return (mixed & 0xffffffff00000000ull) | (uint32_t)(id + 1);
}

static const char *piece_of(const sp_tok *t, int32_t id)
{
    return t->arena + t->offset[id];
}

/* Id of the piece s[0..n) whose hash_bytes is h in table tab, or -1. */
static int32_t tab_lookup_h(const sp_tok *t, const uint64_t *tab, const char *s,
                            size_t n, uint64_t h)
{
    uint64_t mixed = hash_mix(h);
    uint64_t tag = mixed & 0xffffffff00000000ull;
    size_t i = (size_t)mixed & t->tab_mask;
    for (;;) {
        uint64_t e = tab[i];
        if (e == 0)
            return -1;
        if ((e & 0xffffffff00000000ull) == tag) {
            int32_t id = (int32_t)(uint32_t)e - 1;
            if ((size_t)t->length[id] == n && memcmp(piece_of(t, id), s, n) == 0)
                return id;
        }
        i = (i + 1) & t->tab_mask;
    }
}

static int32_t tab_lookup(const sp_tok *t, const uint64_t *tab, const char *s,
                          size_t n)
{
    return tab_lookup_h(t, tab, s, n, hash_bytes(s, n));
}

/* Inserts id; returns the id of an equal piece already there, else -1. */
static int32_t tab_insert(sp_tok *t, uint64_t *tab, int32_t id)
{
    const char *s = piece_of(t, id);
    size_t n = (size_t)t->length[id];
    uint64_t mixed = hash_mix(hash_bytes(s, n));
    size_t i = (size_t)mixed & t->tab_mask;
    for (;;) {
        uint64_t e = tab[i];
        if (e == 0) {
            tab[i] = tab_entry(mixed, id);
            return -1;
        }
        int32_t other = (int32_t)(uint32_t)e - 1;
        if ((size_t)t->length[other] == n && memcmp(piece_of(t, other), s, n) == 0)
            return other;
        i = (i + 1) & t->tab_mask;
    }
}

/* sentencepiece ModelInterface::PieceToId: reserved map, pieces map, else
 * the unknown id. */
static int32_t piece_to_id(const sp_tok *t, const char *s, size_t n)
{
    int32_t id = tab_lookup(t, t->reserved_tab, s, n);
    if (id >= 0)
        return id;
    id = tab_lookup(t, t->pieces_tab, s, n);
    return id >= 0 ? id : t->unk_id;
}

static int is_normal_type(int type)
{
    return type == KVL_SP_NORMAL || type == KVL_SP_USER_DEFINED ||
           type == KVL_SP_UNUSED;
}

/* Length of the longest USER_DEFINED piece that s[0..n) starts with, or 0
 * (sentencepiece's PrefixMatcher). */
static size_t user_match(const sp_tok *t, const char *s, size_t n)
{
    const int32_t *lens = t->user_lens_big ? t->user_lens_big : t->user_lens;
    for (int k = 0; k < t->n_user_lens; k++) {
        size_t len = (size_t)lens[k];
        if (len > n)
            continue;
        int32_t id = tab_lookup(t, t->pieces_tab, s, len);
        if (id >= 0 && t->type[id] == KVL_SP_USER_DEFINED)
            return len;
    }
    return 0;
}

/* sentencepiece string_util::DecodeUTF8 + IsValidDecodeUTF8: the length of
 * the character at s[0..n) (1..4) when it is well formed (shortest form, no
 * surrogates, at most U+10FFFF), else 0. */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (n >= 2 && (c & 0xE0) == 0xC0) {
        uint32_t cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        if ((s[1] & 0xC0) == 0x80 && cp >= 0x80)
            return 2;
    } else if (n >= 3 && (c & 0xF0) == 0xE0) {
        uint32_t cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && cp >= 0x800 &&
            (cp < 0xD800 || cp > 0xDFFF))
            return 3;
    } else if (n >= 4 && (c & 0xF8) == 0xF0) {
        uint32_t cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) |
                      ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
        if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
            (s[3] & 0xC0) == 0x80 && cp >= 0x10000 && cp <= 0x10FFFF)
            return 4;
    }
    return 0;
}

/* sentencepiece string_util::OneCharLen: from the lead byte alone. */
static size_t one_char_len(unsigned char c)
{
    static const unsigned char len[16] = {1, 1, 1, 1, 1, 1, 1, 1,
                                          1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

/* The bytes of one character (1..4 bytes) packed into 32 bits; distinct
 * characters give distinct values (continuation bytes are never 0). */
static uint32_t pack_char(const char *s, size_t n)
{
    uint32_t v = 0;
    for (size_t k = 0; k < n && k < 4; k++)
        v |= (uint32_t)(unsigned char)s[k] << (8 * k);
    return v;
}

static uint64_t bigram_slot(uint64_t key)
{
    key ^= key >> 31;
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 29);
}

static int bigram_has(const sp_tok *t, uint64_t key)
{
    size_t i = (size_t)bigram_slot(key) & t->bigram_mask;
    for (;;) {
        uint64_t e = t->bigrams[i];
        if (e == key)
            return 1;
        if (e == 0)
            return 0;
        i = (i + 1) & t->bigram_mask;
    }
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

static void sp_destroy(void *impl)
{
    sp_tok *t = impl;
    if (!t)
        return;
    free(t->arena);
    free(t->offset);
    free(t->length);
    free(t->score);
    free(t->type);
    free(t->canon);
    free(t->pieces_tab);
    free(t->reserved_tab);
    free(t->unk_surface);
    free(t->user_lens_big);
    free(t->bigrams);
    free(t->pow);
    free(t);
}

static const char *model_type_name(int type)
{
    switch (type) {
    case KVL_SP_MODEL_UNIGRAM: return "UNIGRAM";
    case KVL_SP_MODEL_BPE: return "BPE";
    case KVL_SP_MODEL_WORD: return "WORD";
    case KVL_SP_MODEL_CHAR: return "CHAR";
    default: return "unknown";
    }
}

/* Checks what kvlab supports, before building anything. */
static kvl_status check_supported(const char *path, const kvl_sp_model_proto *m,
                                  kvl_error *err)
{
    if (m->trainer.model_type != KVL_SP_MODEL_BPE)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': SentencePiece model type %d (%s) is not "
                        "supported; kvlab implements BPE models (type 2) only",
                        path, m->trainer.model_type,
                        model_type_name(m->trainer.model_type));
    const kvl_sp_normalizer_spec *specs[2] = {&m->normalizer, &m->denormalizer};
    const char *spec_names[2] = {"normalizer_spec", "denormalizer_spec"};
    for (int k = 0; k < 2; k++) {
        const kvl_sp_normalizer_spec *s = specs[k];
        if (s->precompiled_charsmap.n > 0)
            return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                            "file '%s': the %s '%.*s' has a %zu-byte "
                            "precompiled_charsmap; kvlab supports only the "
                            "identity normaliser (no charsmap) and would "
                            "encode this model wrongly",
                            path, spec_names[k],
                            s->name.s ? (int)(s->name.n > 64 ? 64 : s->name.n) : 7,
                            s->name.s ? s->name.s : "unnamed",
                            s->precompiled_charsmap.n);
    }
    if (m->trainer.treat_whitespace_as_suffix)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': treat_whitespace_as_suffix is not "
                        "supported",
                        path);
    if (m->n_pieces == 0)
        return kvl_fail(err, KVL_ERR_FORMAT, "file '%s': the model has no pieces",
                        path);
    if (m->n_pieces > (size_t)INT32_MAX / 4)
        return kvl_fail(err, KVL_ERR_FORMAT, "file '%s': %zu pieces is too many",
                        path, m->n_pieces);
    return KVL_OK;
}

/* Validates the pieces as InitializePieces does and fills the maps. */
static kvl_status build_maps(const char *path, sp_tok *t,
                             const kvl_sp_model_proto *m, kvl_error *err)
{
    int byte_found[256] = {0};
    t->unk_id = -1;
    for (int32_t i = 0; i < t->n; i++) {
        const char *s = piece_of(t, i);
        size_t len = (size_t)t->length[i];
        int type = t->type[i];
        if (len >= SP_MAX_PIECE)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': piece %d is %zu bytes long (limit %d)",
                            path, i, len, SP_MAX_PIECE - 1);
        if (len == 0)
            return kvl_fail(err, KVL_ERR_FORMAT, "file '%s': piece %d is empty",
                            path, i);
        if (memchr(s, '\0', len))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': piece %d contains a NUL byte", path, i);
        if (isnan(t->score[i]))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': piece %d has a NaN score", path, i);
        uint64_t *tab = is_normal_type(type) ? t->pieces_tab : t->reserved_tab;
        int32_t dup = tab_insert(t, tab, i);
        if (dup >= 0)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': piece %d '%.*s' is already defined as "
                            "piece %d",
                            path, i, (int)(len > 64 ? 64 : len), s, dup);
        if (is_normal_type(type) && (int32_t)len > t->max_piece_len)
            t->max_piece_len = (int32_t)len;
        if (type == KVL_SP_UNUSED)
            t->has_unused = 1;
        if (type == KVL_SP_UNKNOWN) {
            if (t->unk_id >= 0)
                return kvl_fail(err, KVL_ERR_FORMAT,
                                "file '%s': pieces %d and %d are both of type "
                                "UNKNOWN",
                                path, t->unk_id, i);
            t->unk_id = i;
        }
        if (type == KVL_SP_BYTE) {
            if (!m->trainer.byte_fallback)
                return kvl_fail(err, KVL_ERR_FORMAT,
                                "file '%s': byte piece %d '%.*s' although "
                                "byte_fallback is false",
                                path, i, (int)(len > 64 ? 64 : len), s);
            int b = kvl_byte_piece_value(s, len, 0);
            if (b < 0)
                return kvl_fail(err, KVL_ERR_FORMAT,
                                "file '%s': byte piece %d '%.*s' is not of the "
                                "form <0xHH>",
                                path, i, (int)(len > 64 ? 64 : len), s);
            byte_found[b] = 1;
        }
    }
    if (t->unk_id < 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': no piece of type UNKNOWN (unk)", path);
    if (t->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (!byte_found[b])
                return kvl_fail(err, KVL_ERR_FORMAT,
                                "file '%s': byte_fallback is true but there is "
                                "no byte piece <0x%02X>",
                                path, b);
    return KVL_OK;
}

/* The id PieceToId gives a named special piece (trainer_spec.*_piece or
 * the default), when that piece has the wanted type; else -1. */
static int32_t special_id(const sp_tok *t, kvl_sp_str name, const char *dflt,
                          int want_type)
{
    const char *s = name.s && name.n ? name.s : dflt;
    size_t n = name.s && name.n ? name.n : strlen(dflt);
    int32_t id = piece_to_id(t, s, n);
    return t->type[id] == want_type ? id : -1;
}

static int cmp_desc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x < y) - (x > y);
}

static kvl_status collect_user_lens(sp_tok *t, kvl_error *err)
{
    size_t n_user = 0;
    for (int32_t i = 0; i < t->n; i++)
        n_user += t->type[i] == KVL_SP_USER_DEFINED;
    if (n_user == 0)
        return KVL_OK;
    int32_t *lens = malloc(n_user * sizeof *lens);
    if (!lens)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for user-defined pieces");
    size_t k = 0;
    for (int32_t i = 0; i < t->n; i++)
        if (t->type[i] == KVL_SP_USER_DEFINED)
            lens[k++] = t->length[i];
    qsort(lens, k, sizeof *lens, cmp_desc);
    size_t distinct = 0;
    for (size_t i = 0; i < k; i++)
        if (distinct == 0 || lens[distinct - 1] != lens[i])
            lens[distinct++] = lens[i];
    if (distinct <= sizeof t->user_lens / sizeof t->user_lens[0]) {
        memcpy(t->user_lens, lens, distinct * sizeof *lens);
        free(lens);
    } else {
        t->user_lens_big = lens;
    }
    t->n_user_lens = (int)distinct;
    return KVL_OK;
}

/* The set of pairs of adjacent characters (cut as the encoder cuts text
 * into symbols) inside the pieces BPE may build.  Two neighbouring symbols
 * whose pair is not in it can never end up in one piece, so the encoder
 * merges the runs between such places independently: the very same merges,
 * with smaller heaps. */
static kvl_status collect_bigrams(sp_tok *t, kvl_error *err)
{
    size_t count = 0;
    for (int32_t i = 0; i < t->n; i++)
        if (is_normal_type(t->type[i]) && t->length[i] > 1)
            count += (size_t)t->length[i] - 1; /* upper bound */
    size_t size = 16;
    while (size < 2 * count + 2)
        size *= 2;
    t->bigrams = calloc(size, sizeof *t->bigrams);
    if (!t->bigrams)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for the pair set");
    t->bigram_mask = size - 1;
    for (int32_t i = 0; i < t->n; i++) {
        if (!is_normal_type(t->type[i]))
            continue;
        const char *p = piece_of(t, i);
        size_t n = (size_t)t->length[i], pos = 0;
        size_t l1 = one_char_len((unsigned char)p[0]);
        if (l1 > n)
            l1 = n;
        while (pos + l1 < n) {
            size_t l2 = one_char_len((unsigned char)p[pos + l1]);
            if (l2 > n - pos - l1)
                l2 = n - pos - l1;
            uint64_t key = (uint64_t)pack_char(p + pos, l1) << 32 |
                           pack_char(p + pos + l1, l2);
            size_t k = (size_t)bigram_slot(key) & t->bigram_mask;
            while (t->bigrams[k] != 0 && t->bigrams[k] != key)
                k = (k + 1) & t->bigram_mask;
            t->bigrams[k] = key;
            pos += l1;
            l1 = l2;
        }
    }
    return KVL_OK;
}

static const kvl_tokenizer_ops sp_ops;

kvl_status kvl_sp_tokenizer_open(const char *path, kvl_tokenizer *out,
                                 kvl_error *err)
{
    unsigned char *data;
    size_t size;
    kvl_status st = kvl_tokenizer_read_file(path, SP_MAX_FILE,
                                            "a SentencePiece model", &data,
                                            &size, err);
    if (st != KVL_OK)
        return st;
    if (size == 0) {
        free(data);
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': empty file, not a SentencePiece model", path);
    }
    kvl_sp_model_proto m;
    st = kvl_sp_proto_parse(data, size, &m, err);
    if (st != KVL_OK) {
        free(data);
        return kvl_error_prefix(err, st,
                                "file '%s': not a valid SentencePiece model", path);
    }
    st = check_supported(path, &m, err);
    if (st != KVL_OK)
        goto fail_proto;

    sp_tok *t = calloc(1, sizeof *t);
    if (!t) {
        st = kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory", path);
        goto fail_proto;
    }
    t->n = (int32_t)m.n_pieces;
    size_t text_bytes = 0;
    for (size_t i = 0; i < m.n_pieces; i++)
        text_bytes += m.pieces[i].piece.n + 1;
    size_t table_size = 16;
    while (table_size < 2 * m.n_pieces)
        table_size *= 2;
    t->tab_mask = table_size - 1;
    t->arena = malloc(text_bytes);
    t->offset = malloc(m.n_pieces * sizeof *t->offset);
    t->length = malloc(m.n_pieces * sizeof *t->length);
    t->score = malloc(m.n_pieces * sizeof *t->score);
    t->type = malloc(m.n_pieces);
    t->canon = malloc(m.n_pieces * sizeof *t->canon);
    t->pieces_tab = calloc(table_size, sizeof *t->pieces_tab);
    t->reserved_tab = calloc(table_size, sizeof *t->reserved_tab);
    const kvl_sp_str surf = m.trainer.unk_surface;
    t->unk_surface = malloc(surf.n + 1);
    if (!t->arena || !t->offset || !t->length || !t->score || !t->type ||
        !t->canon || !t->pieces_tab || !t->reserved_tab || !t->unk_surface) {
        st = kvl_fail(err, KVL_ERR_NOMEM,
                      "file '%s': cannot allocate a %zu-piece vocabulary", path,
                      m.n_pieces);
        goto fail_tok;
    }
    if (surf.n)
        memcpy(t->unk_surface, surf.s, surf.n);
    t->unk_surface[surf.n] = '\0';
    t->unk_surface_len = surf.n;
    size_t at = 0;
    for (size_t i = 0; i < m.n_pieces; i++) {
        const kvl_sp_piece *p = &m.pieces[i];
        t->offset[i] = at;
        if (p->piece.n)
            memcpy(t->arena + at, p->piece.s, p->piece.n);
        t->arena[at + p->piece.n] = '\0';
        at += p->piece.n + 1;
        t->length[i] = p->piece.n > (size_t)INT32_MAX ? INT32_MAX : (int32_t)p->piece.n;
        t->score[i] = p->score;
        t->type[i] = (uint8_t)p->type;
    }
    t->byte_fallback = m.trainer.byte_fallback;
    t->add_dummy_prefix = m.normalizer.add_dummy_prefix;
    t->remove_extra_ws = m.normalizer.remove_extra_whitespaces;
    t->escape_ws = m.normalizer.escape_whitespaces;
    if ((st = build_maps(path, t, &m, err)) != KVL_OK ||
        (st = collect_user_lens(t, err)) != KVL_OK ||
        (st = collect_bigrams(t, err)) != KVL_OK)
        goto fail_tok;
    t->pow = malloc(((size_t)t->max_piece_len + 1) * sizeof *t->pow);
    if (!t->pow) {
        st = kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory", path);
        goto fail_tok;
    }
    t->pow[0] = 1;
    for (int32_t k = 1; k <= t->max_piece_len; k++)
        t->pow[k] = t->pow[k - 1] * SP_HASH_MUL;
    for (int32_t i = 0; i < t->n; i++)
        t->canon[i] = piece_to_id(t, piece_of(t, i), (size_t)t->length[i]);
    for (int b = 0; b < 256; b++) {
        char bp[8];
        snprintf(bp, sizeof bp, "<0x%02X>", b);
        t->byte_id[b] = piece_to_id(t, bp, 6);
    }
    t->bos_id = special_id(t, m.trainer.bos_piece, "<s>", KVL_SP_CONTROL);
    t->eos_id = special_id(t, m.trainer.eos_piece, "</s>", KVL_SP_CONTROL);

    kvl_sp_proto_free(&m);
    free(data);
    out->ops = &sp_ops;
    out->impl = t;
    out->kind = KVL_TOKENIZER_SENTENCEPIECE;
    out->vocab_size = t->n;
    out->bos_id = t->bos_id;
    out->eos_id = t->eos_id;
    return KVL_OK;

fail_tok:
    sp_destroy(t);
fail_proto:
    kvl_sp_proto_free(&m);
    free(data);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Normalization                                                             */
/* ------------------------------------------------------------------------ */

/* Normalizer::NormalizePrefix without a charsmap: the chunk at text[0..n)
 * (a user-defined symbol, one well-formed character, or U+FFFD for one
 * malformed byte) into *chunk / *chunk_len; returns the bytes consumed. */
static size_t next_chunk(const sp_tok *t, const char *text, size_t n,
                         const char **chunk, size_t *chunk_len)
{
    if (t->n_user_lens) {
        size_t u = user_match(t, text, n);
        if (u) {
            *chunk = text;
            *chunk_len = u;
            return u;
        }
    }
    size_t len = utf8_valid_len((const unsigned char *)text, n);
    if (len == 0) {
        *chunk = SP_FFFD;
        *chunk_len = 3;
        return 1;
    }
    *chunk = text;
    *chunk_len = len;
    return len;
}

/* Writes the normalized text into out (capacity 3 * len + 3); returns its
 * length. */
static size_t normalize(const sp_tok *t, const char *text, size_t len, char *out)
{
    size_t pos = 0, m = 0;
    const char *chunk;
    size_t chunk_len;
    if (len == 0)
        return 0;
    if (t->remove_extra_ws) {
        while (pos < len) {
            size_t used = next_chunk(t, text + pos, len - pos, &chunk, &chunk_len);
            if (!(chunk_len == 1 && chunk[0] == ' '))
                break;
            pos += used;
        }
        if (pos == len)
            return 0;
    }
    const char *space = t->escape_ws ? SP_SPACE : " ";
    const size_t space_len = t->escape_ws ? 3 : 1;
    if (t->add_dummy_prefix) {
        memcpy(out + m, space, space_len);
        m += space_len;
    }
    int is_prev_space = t->remove_extra_ws;
    while (pos < len) {
        size_t used = next_chunk(t, text + pos, len - pos, &chunk, &chunk_len);
        while (is_prev_space && chunk_len > 0 && chunk[0] == ' ') {
            chunk++;
            chunk_len--;
        }
        if (chunk_len > 0) {
            for (size_t k = 0; k < chunk_len; k++) {
                if (t->escape_ws && chunk[k] == ' ') {
                    memcpy(out + m, SP_SPACE, 3);
                    m += 3;
                } else {
                    out[m++] = chunk[k];
                }
            }
            is_prev_space = chunk[chunk_len - 1] == ' ';
        }
        pos += used;
        if (!t->remove_extra_ws)
            is_prev_space = 0;
    }
    if (t->remove_extra_ws)
        while (m >= space_len && memcmp(out + m - space_len, space, space_len) == 0)
            m -= space_len;
    return m;
}

/* ------------------------------------------------------------------------ */
/* BPE                                                                       */
/* ------------------------------------------------------------------------ */

typedef struct merge_cand {
    float score;
    int32_t left;     /* symbol index of the left side                   */
    int32_t size;     /* bytes of the merged piece                       */
    int32_t piece;    /* its id in the pieces map                        */
} merge_cand;

/* For resegmenting UNUSED pieces: the last pair pushed for each piece. */
typedef struct rev_merge {
    int32_t l_start, l_len, r_start, r_len; /* l_len 0: none */
} rev_merge;

typedef struct encode_state {
    const sp_tok *t;
    const char *norm;
    int32_t *start, *len, *prev, *next, *piece; /* per symbol; piece -1:   */
    uint8_t *frozen;                             /* not merged              */
    uint64_t *hash;                              /* hash_bytes of symbol    */
    merge_cand *heap;
    size_t n_heap, cap_heap;
    rev_merge *rev;                              /* [n pieces] or NULL      */
    int oom;
    /* output (PopulateSentencePieceText) */
    kvl_idbuf *out;
    int is_prev_unk;
} encode_state;

KVL_MERGE_HEAP_DEFINE(cand_heap, merge_cand)

/* Pushes c, growing the heap (on failure: s->oom, c dropped). */
static void heap_push(encode_state *s, merge_cand c)
{
    if (s->n_heap == s->cap_heap) {
        size_t cap = s->cap_heap ? 2 * s->cap_heap : 256;
        merge_cand *h = realloc(s->heap, cap * sizeof *h);
        if (!h) {
            s->oom = 1;
            return;
        }
        s->heap = h;
        s->cap_heap = cap;
    }
    cand_heap_push(s->heap, &s->n_heap, c);
}

/* MaybeAddNewSymbolPair: pushes (l, r) when their concatenation (they are
 * adjacent in the normalized text) is in the pieces map. */
static void maybe_add_pair(encode_state *s, int32_t l, int32_t r)
{
    if (l < 0 || r < 0 || s->frozen[l] || s->frozen[r])
        return;
    const sp_tok *t = s->t;
    int32_t size = s->len[l] + s->len[r];
    if (size > t->max_piece_len)
        return;
    uint64_t h = s->hash[l] * t->pow[s->len[r]] + s->hash[r];
    int32_t id = tab_lookup_h(t, t->pieces_tab, s->norm + s->start[l], (size_t)size, h);
    if (id < 0)
        return;
    merge_cand c = {t->score[id], l, size, id};
    heap_push(s, c);
    if (s->rev && t->type[id] == KVL_SP_UNUSED) {
        rev_merge *rm = &s->rev[id];
        rm->l_start = s->start[l];
        rm->l_len = s->len[l];
        rm->r_start = s->start[r];
        rm->r_len = s->len[r];
    }
}

/* One (piece, id) of the model's result, as PopulateSentencePieceText
 * turns it into ids. */
static kvl_status emit(encode_state *s, const char *w, size_t n, int32_t id,
                       kvl_error *err)
{
    const sp_tok *t = s->t;
    const int is_unk = t->type[id] == KVL_SP_UNKNOWN;
    kvl_status st = KVL_OK;
    if (is_unk && t->byte_fallback) {
        for (size_t k = 0; k < n && st == KVL_OK; k++)
            st = kvl_idbuf_push(s->out, t->byte_id[(unsigned char)w[k]], err);
    } else if (!(is_unk && s->is_prev_unk)) {
        st = kvl_idbuf_push(s->out, id, err);
    } /* else: a run of unknown pieces becomes one <unk> */
    s->is_prev_unk = is_unk;
    return st;
}

/* Emits the symbol norm[start, start+n) with id, splitting UNUSED pieces
 * back into the pair that built them (explicit stack; each entry is shorter
 * than its parent, so depth <= n). */
static kvl_status emit_symbol(encode_state *s, int32_t start, int32_t n,
                              int32_t id, int32_t *stack, kvl_error *err)
{
    const sp_tok *t = s->t;
    if (!s->rev || t->type[id] != KVL_SP_UNUSED)
        return emit(s, s->norm + start, (size_t)n, id, err);
    size_t depth = 0;
    stack[depth++] = start;
    stack[depth++] = n;
    while (depth > 0) {
        int32_t len = stack[--depth];
        int32_t at = stack[--depth];
        int32_t wid = piece_to_id(t, s->norm + at, (size_t)len);
        const rev_merge *rm = t->type[wid] == KVL_SP_UNUSED ? &s->rev[wid] : NULL;
        if (!rm || rm->l_len == 0) {
            kvl_status st = emit(s, s->norm + at, (size_t)len, wid, err);
            if (st != KVL_OK)
                return st;
            continue;
        }
        /* Right first, so the left comes off the stack first. */
        stack[depth++] = rm->r_start;
        stack[depth++] = rm->r_len;
        stack[depth++] = rm->l_start;
        stack[depth++] = rm->l_len;
    }
    return KVL_OK;
}

/* No piece can hold both initial symbols i - 1 and i. */
static int no_piece_spans(const encode_state *s, int32_t i)
{
    if (s->frozen[i - 1] || s->frozen[i])
        return 1;
    uint64_t key = (uint64_t)pack_char(s->norm + s->start[i - 1],
                                       (size_t)s->len[i - 1]) << 32 |
                   pack_char(s->norm + s->start[i], (size_t)s->len[i]);
    return !bigram_has(s->t, key);
}

/* bpe::Model's main loop over symbols [from, to): pushes the adjacent
 * pairs, then merges the best pair until none is left. */
static void merge_run(encode_state *s, int32_t from, int32_t to)
{
    for (int32_t i = from + 1; i < to; i++)
        maybe_add_pair(s, i - 1, i);
    while (s->n_heap > 0 && !s->oom) {
        merge_cand c = cand_heap_pop(s->heap, &s->n_heap);
        int32_t l = c.left, r = s->next[l];
        /* Stale: the left was absorbed, or one side grew since the push
         * (symbols only grow, so equal sizes mean both are unchanged). */
        if (s->len[l] == 0 || r < 0 || s->len[l] + s->len[r] != c.size)
            continue;
        s->hash[l] = s->hash[l] * s->t->pow[s->len[r]] + s->hash[r];
        s->len[l] += s->len[r];
        s->piece[l] = c.piece;
        s->len[r] = 0;
        s->next[l] = s->next[r];
        if (s->next[r] >= 0)
            s->prev[s->next[r]] = l;
        maybe_add_pair(s, s->prev[l], l);
        maybe_add_pair(s, l, s->next[l]);
    }
}

static kvl_status sp_encode(const void *impl, const char *text, size_t text_len,
                            unsigned flags, kvl_idbuf *out, kvl_error *err)
{
    const sp_tok *t = impl;
    if (text_len > SP_MAX_TEXT)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_tokenizer_encode: text of %zu bytes is too long "
                        "(limit %zu)",
                        text_len, SP_MAX_TEXT);
    kvl_status st = KVL_OK;
    if ((flags & KVL_ENCODE_ADD_SPECIAL) && t->bos_id >= 0 &&
        (st = kvl_idbuf_push(out, t->bos_id, err)) != KVL_OK)
        return st;
    if (text_len == 0)
        return KVL_OK;

    encode_state s = {0};
    s.t = t;
    s.out = out;
    int32_t *stack = NULL;
    char *norm = malloc(3 * text_len + 3);
    if (!norm)
        goto oom;
    size_t m = normalize(t, text, text_len, norm);
    s.norm = norm;
    if (m == 0)
        goto done;

    /* Symbols: user-defined pieces (frozen) or one character each. */
    s.start = malloc(m * sizeof *s.start);
    s.len = malloc(m * sizeof *s.len);
    s.prev = malloc(m * sizeof *s.prev);
    s.next = malloc(m * sizeof *s.next);
    s.piece = malloc(m * sizeof *s.piece);
    s.frozen = malloc(m);
    s.hash = malloc(m * sizeof *s.hash);
    if (t->has_unused) {
        s.rev = calloc((size_t)t->n, sizeof *s.rev);
        stack = malloc(2 * ((size_t)t->max_piece_len + 1) * sizeof *stack);
        if (!s.rev || !stack)
            goto oom;
    }
    if (!s.start || !s.len || !s.prev || !s.next || !s.piece || !s.frozen ||
        !s.hash)
        goto oom;
    int32_t n_sym = 0;
    for (size_t pos = 0; pos < m;) {
        size_t u = t->n_user_lens ? user_match(t, norm + pos, m - pos) : 0;
        size_t l = u;
        if (!u) {
            l = one_char_len((unsigned char)norm[pos]);
            if (l > m - pos)
                l = m - pos;
        }
        s.start[n_sym] = (int32_t)pos;
        s.len[n_sym] = (int32_t)l;
        s.frozen[n_sym] = u > 0;
        s.hash[n_sym] = hash_bytes(norm + pos, l);
        s.piece[n_sym] = -1;
        s.prev[n_sym] = n_sym - 1;
        s.next[n_sym] = pos + l < m ? n_sym + 1 : -1;
        n_sym++;
        pos += l;
    }

    /* Merges, best pair first, run by run between places no piece spans
     * (not with UNUSED pieces: their resegmentation uses the last pair
     * recorded anywhere in the text, which depends on the global order). */
    for (int32_t seg = 0, i = 1; i <= n_sym && !s.oom; i++) {
        if (i == n_sym || (!t->has_unused && no_piece_spans(&s, i))) {
            merge_run(&s, seg, i);
            seg = i;
        }
    }
    if (s.oom)
        goto oom;

    /* Output. */
    for (int32_t i = 0; i >= 0 && st == KVL_OK; i = s.next[i]) {
        int32_t id = s.piece[i] >= 0
                         ? t->canon[s.piece[i]]
                         : piece_to_id(t, norm + s.start[i], (size_t)s.len[i]);
        st = emit_symbol(&s, s.start[i], s.len[i], id, stack, err);
    }
    goto done;

oom:
    st = kvl_fail(err, KVL_ERR_NOMEM,
                  "kvl_tokenizer_encode: out of memory for %zu bytes of text",
                  text_len);
done:
    free(norm);
    free(s.start);
    free(s.len);
    free(s.prev);
    free(s.next);
    free(s.piece);
    free(s.frozen);
    free(s.hash);
    free(s.heap);
    free(s.rev);
    free(stack);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                  */
/* ------------------------------------------------------------------------ */

/* ProcessBytePieces: appends bytes[0..n) with each malformed byte as
 * U+FFFD (KVL_DECODE_RAW_BYTES: the bytes as they are). */
static kvl_status flush_bytes(const unsigned char *bytes, size_t n, unsigned flags,
                              kvl_strbuf *out, kvl_error *err)
{
    if (flags & KVL_DECODE_RAW_BYTES)
        return kvl_strbuf_append(out, (const char *)bytes, n, err);
    size_t i = 0;
    while (i < n) {
        size_t len = utf8_valid_len(bytes + i, n - i);
        kvl_status st = len ? kvl_strbuf_append(out, (const char *)bytes + i, len, err)
                            : kvl_strbuf_append(out, SP_FFFD, 3, err);
        if (st != KVL_OK)
            return st;
        i += len ? len : 1;
    }
    return KVL_OK;
}

/* Appends p[0..n) with every U+2581 replaced by ' '. */
static kvl_status append_unescaped(const char *p, size_t n, kvl_strbuf *out,
                                   kvl_error *err)
{
    size_t from = 0;
    for (size_t i = 0; i + 3 <= n;) {
        if (memcmp(p + i, SP_SPACE, 3) == 0) {
            kvl_status st;
            if ((st = kvl_strbuf_append(out, p + from, i - from, err)) != KVL_OK ||
                (st = kvl_strbuf_append(out, " ", 1, err)) != KVL_OK)
                return st;
            i += 3;
            from = i;
        } else {
            i++;
        }
    }
    return kvl_strbuf_append(out, p + from, n - from, err);
}

static kvl_status sp_decode(const void *impl, const int32_t *ids, size_t n,
                            unsigned flags, kvl_strbuf *out, kvl_error *err)
{
    const sp_tok *t = impl;
    const size_t out_start = out->n;
    const int strip_ok = t->add_dummy_prefix || t->remove_extra_ws;
    kvl_strbuf bytes = {0}; /* the current run of byte pieces */
    int is_bos_ws = 1, bos_ws_seen = 0;
    kvl_status st = KVL_OK;
    for (size_t i = 0; i < n && st == KVL_OK; i++) {
        const int32_t id = t->canon[ids[i]];
        const int type = t->type[id];
        if ((flags & KVL_DECODE_SKIP_SPECIAL) &&
            (type == KVL_SP_CONTROL || type == KVL_SP_UNKNOWN))
            continue;
        if (type == KVL_SP_BYTE) {
            char b = (char)kvl_byte_piece_value(piece_of(t, id),
                                                (size_t)t->length[id], 0);
            st = kvl_strbuf_append(&bytes, &b, 1, err);
            continue;
        }
        if (bytes.n) {
            st = flush_bytes((const unsigned char *)bytes.s, bytes.n, flags, out, err);
            bytes.n = 0;
            if (st != KVL_OK)
                break;
        }
        if (bos_ws_seen || out->n > out_start)
            is_bos_ws = 0;
        if (type == KVL_SP_CONTROL) {
            bos_ws_seen = 0;
            continue;
        }
        if (type == KVL_SP_UNKNOWN) {
            bos_ws_seen = 0;
            st = kvl_strbuf_append(out, t->unk_surface, t->unk_surface_len, err);
            continue;
        }
        const char *p = piece_of(t, id);
        size_t len = (size_t)t->length[id];
        int has_bos_ws = 0;
        if (is_bos_ws && strip_ok && len >= 3 && memcmp(p, SP_SPACE, 3) == 0) {
            p += 3;
            len -= 3;
            /* remove_extra_whitespaces: every leading "\u2581" goes. */
            has_bos_ws = !t->remove_extra_ws;
        }
        bos_ws_seen = has_bos_ws;
        st = append_unescaped(p, len, out, err);
    }
    if (st == KVL_OK && bytes.n)
        st = flush_bytes((const unsigned char *)bytes.s, bytes.n, flags, out, err);
    kvl_strbuf_free(&bytes);
    return st;
}

static const char *sp_id_to_token(const void *impl, int32_t id)
{
    return piece_of(impl, id);
}

static int32_t sp_token_to_id(const void *impl, const char *token, size_t len)
{
    const sp_tok *t = impl;
    int32_t id = tab_lookup(t, t->reserved_tab, token, len);
    return id >= 0 ? id : tab_lookup(t, t->pieces_tab, token, len);
}

static const kvl_tokenizer_ops sp_ops = {sp_destroy, sp_encode, sp_decode,
                                         sp_id_to_token, sp_token_to_id};
