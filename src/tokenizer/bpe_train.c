/*
 * Byte-level BPE training (docs/tokenizer-training.md).
 *
 * 1. Counting.  Each corpus file is streamed (plain or zstd) in batches.
 *    A batch is cut only after a '\n' that is followed by a printable
 *    ASCII character: neither split regex can match across such a point,
 *    so pre-tokenising the pieces gives the same pre-tokens as
 *    pre-tokenising the whole file as one string (the character after a
 *    piece stays visible to the regex's (?!\S) look-ahead).  The pieces of
 *    a batch are counted in parallel (OpenMP), one word table per thread:
 *    special tokens are cut out of the raw text (as `tokenizers` does for
 *    added tokens with normalized=false), each segment is NFC-normalised
 *    (utf8proc), split with the pre-tokenizer regex (PCRE2, UTF + UCP,
 *    JIT) and each pre-token's bytes are counted.  The per-thread tables
 *    are then added together.
 * 2. Merging.  Every unique word becomes a sequence of byte symbols (id ==
 *    byte value).  Pair counts are weighted by word counts; each pair keeps
 *    the list of words it occurs in.  A max-heap with lazy deletion gives
 *    the most frequent pair (ties: smallest left id, then smallest right
 *    id); merging it rewrites only the words on its list, subtracting the
 *    old word's pairs and adding the new word's, so counts stay exact.
 *
 * No state outlives a call: the compiled regex, tables and buffers belong
 * to the call.
 */
#include "tokenizer/bpe_train.h"

#include "core/error.h"
#include "tokenizer/hf_internal.h" /* UTF-8 and the GPT-2 byte map (hf_util.c) */

#include <errno.h>
#include <jansson.h>
#include <omp.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>
#include <zstd.h>

/* The Qwen2 / Qwen3 split regex and GPT-2's (as `tokenizers` writes them). */
static const char qwen_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";

static const char *const default_specials[] = {"<|endoftext|>", "<|im_start|>",
                                               "<|im_end|>"};

/* The plain ChatML template, written when <|im_start|> and <|im_end|> are
 * special tokens. */
static const char chatml_template[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' "
    "+ message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

#define BATCH_MIN (8u << 20)     /* bytes read per batch (at least)       */
#define PIECE_MIN (64u << 10)    /* smallest piece counted by one thread  */
#define JIT_STACK_MAX (8u << 20)

const char *kvl_bpe_pretokenizer_pattern(const char *name)
{
    if (!name || strcmp(name, "qwen") == 0)
        return qwen_pattern;
    if (strcmp(name, "gpt2") == 0)
        return gpt2_pattern;
    return NULL;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- GPT-2 byte-to-unicode alphabet ------------------------------------- */

kvl_status kvl_bpe_byte_level(const char *raw, size_t len, kvl_strbuf *out,
                              kvl_error *err)
{
    uint32_t cp[256]; /* computed per call: no global state */
    hf_byte_codepoints(cp);
    for (size_t i = 0; i < len; i++) {
        char u[4];
        size_t n = hf_utf8_put(cp[(unsigned char)raw[i]], u);
        kvl_status st = kvl_strbuf_append(out, u, n, err);
        if (st != KVL_OK)
            return st;
    }
    return KVL_OK;
}

/* ---- UTF-8 ------------------------------------------------------------------ */

/* Index of the first byte of an invalid UTF-8 sequence (overlong forms,
 * surrogates and values above U+10FFFF are invalid), or n. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int32_t cp;
        size_t k = hf_utf8_next((const char *)s, n, i, &cp);
        if (cp < 0)
            return i;
        i += k;
    }
    return n;
}

/* Whether NFC leaves the valid UTF-8 text unchanged because every code
 * point is below U+0300 or in U+2002..U+206F: such characters have
 * combining class 0, are NFC_QC=Yes and are never the second character of
 * a canonical composition (checked against Unicode 14 data), so no
 * reordering, decomposition or composition can touch them. */
static int nfc_inert(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c < 0xE0) { /* two bytes: U+0080..U+07FF */
            uint32_t cp = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
            if (cp >= 0x300)
                return 0;
            i += 2;
        } else if (c < 0xF0) {
            uint32_t cp = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) |
                          (s[i + 2] & 0x3Fu);
            if (cp < 0x2002 || cp > 0x206F)
                return 0;
            i += 3;
        } else {
            return 0;
        }
    }
    return 1;
}

/* ---- byte-string table: bytes -> int64 ----------------------------------- */

typedef struct stab_slot {
    uint64_t hash;
    uint32_t idx; /* UINT32_MAX: empty */
} stab_slot;

typedef struct stab {
    stab_slot *slots;
    size_t cap; /* power of two */
    size_t n;
    uint64_t *off;
    uint32_t *len;
    int64_t *val;
    size_t ent_cap;
    char *arena;
    size_t arena_n, arena_cap;
} stab;

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, p + i, n - i);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    return h;
}

static void stab_free(stab *t)
{
    free(t->slots);
    free(t->off);
    free(t->len);
    free(t->val);
    free(t->arena);
    memset(t, 0, sizeof *t);
}

static int stab_rehash(stab *t, size_t cap)
{
    stab_slot *s = malloc(cap * sizeof *s);
    if (!s)
        return -1;
    for (size_t i = 0; i < cap; i++)
        s[i].idx = UINT32_MAX;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].idx == UINT32_MAX)
            continue;
        size_t j = t->slots[i].hash & (cap - 1);
        while (s[j].idx != UINT32_MAX)
            j = (j + 1) & (cap - 1);
        s[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

/* Index of the entry for p[0..n), or -1 when absent. */
static int64_t stab_find(const stab *t, const char *p, size_t n, uint64_t h)
{
    if (!t->cap)
        return -1;
    size_t j = h & (t->cap - 1);
    while (t->slots[j].idx != UINT32_MAX) {
        uint32_t e = t->slots[j].idx;
        if (t->slots[j].hash == h && t->len[e] == n &&
            memcmp(t->arena + t->off[e], p, n) == 0)
            return e;
        j = (j + 1) & (t->cap - 1);
    }
    return -1;
}

/* Adds `add` to the value of p[0..n) (inserting it with value 0 first).
 * Returns the entry index or -1 when out of memory. */
static int64_t stab_add(stab *t, const char *p, size_t n, uint64_t h,
                        int64_t add)
{
    int64_t e = stab_find(t, p, n, h);
    if (e >= 0) {
        t->val[e] += add;
        return e;
    }
    if (n > UINT32_MAX || t->n >= UINT32_MAX - 1)
        return -1;
    if ((t->n + 1) * 4 > t->cap * 3) {
        if (stab_rehash(t, t->cap ? t->cap * 2 : 1024) != 0)
            return -1;
    }
    if (t->n == t->ent_cap) {
        size_t c = t->ent_cap ? t->ent_cap * 2 : 1024;
        uint64_t *o = realloc(t->off, c * sizeof *o);
        if (!o)
            return -1;
        t->off = o;
        uint32_t *l = realloc(t->len, c * sizeof *l);
        if (!l)
            return -1;
        t->len = l;
        int64_t *v = realloc(t->val, c * sizeof *v);
        if (!v)
            return -1;
        t->val = v;
        t->ent_cap = c;
    }
    if (t->arena_n + n + 1 > t->arena_cap) {
        size_t c = t->arena_cap ? t->arena_cap : 65536;
        while (c < t->arena_n + n + 1)
            c *= 2;
        char *a = realloc(t->arena, c);
        if (!a)
            return -1;
        t->arena = a;
        t->arena_cap = c;
    }
    memcpy(t->arena + t->arena_n, p, n);
    e = (int64_t)t->n++;
    t->off[e] = t->arena_n;
    t->len[e] = (uint32_t)n;
    t->val[e] = add;
    t->arena_n += n;
    size_t j = h & (t->cap - 1);
    while (t->slots[j].idx != UINT32_MAX)
        j = (j + 1) & (t->cap - 1);
    t->slots[j].hash = h;
    t->slots[j].idx = (uint32_t)e;
    return e;
}

/* ---- the training context -------------------------------------------------- */

typedef struct special_tok {
    const char *s;
    size_t len;
} special_tok;

typedef struct trainer {
    const kvl_bpe_train_options *opts;
    int nfc;
    int n_threads;
    special_tok *specials;
    size_t n_special;
    pcre2_code *code;
    int jit;
} trainer;

/* Per-thread counting state. */
typedef struct counter {
    stab words;
    int64_t n_words;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    size_t *next_at; /* per special token, for count_piece */
    kvl_status st;
    kvl_error err;
} counter;

static void counter_free(counter *c)
{
    stab_free(&c->words);
    pcre2_match_data_free(c->md);
    pcre2_match_context_free(c->mctx);
    pcre2_jit_stack_free(c->jit_stack);
    free(c->next_at);
}

static kvl_status counter_init(const trainer *T, counter *c, kvl_error *err)
{
    memset(c, 0, sizeof *c);
    c->md = pcre2_match_data_create_from_pattern(T->code, NULL);
    c->mctx = pcre2_match_context_create(NULL);
    c->next_at = malloc((T->n_special ? T->n_special : 1) * sizeof *c->next_at);
    if (!c->md || !c->mctx || !c->next_at)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for regex match data");
    if (T->jit) {
        c->jit_stack = pcre2_jit_stack_create(32 * 1024, JIT_STACK_MAX, NULL);
        if (!c->jit_stack)
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a regex JIT stack");
        pcre2_jit_stack_assign(c->mctx, NULL, c->jit_stack);
    }
    /* The patterns are fixed and backtrack at most linearly (e.g. \s*[\r\n]+
     * over a long run of spaces), so PCRE2's default limit of 10 million
     * steps would only reject long whitespace runs: lift it. */
    pcre2_set_match_limit(c->mctx, UINT32_MAX);
    return KVL_OK;
}

/* Where a piece of text came from, for error messages. */
typedef struct source {
    const char *name;
    uint64_t offset; /* of the piece's first byte in the (decompressed) text */
} source;

static kvl_status count_word(counter *c, const char *p, size_t n,
                             const source *src, kvl_error *err)
{
    if (n == 0)
        return KVL_OK;
    if (stab_add(&c->words, p, n, hash_bytes(p, n), 1) < 0)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "%s: out of memory counting words (or a pre-token of "
                        "%zu bytes is too long)", src->name, n);
    c->n_words++;
    return KVL_OK;
}

/* Splits text[0..n) (valid UTF-8; text[n..subject_len) is look-ahead
 * context) into pre-tokens and counts them.  Like `tokenizers`' Split with
 * behaviour Isolated, text between matches would be a piece too (the two
 * patterns match every character, so there is none in practice). */
static kvl_status split_and_count(const trainer *T, counter *c,
                                  const char *text, size_t n,
                                  size_t subject_len, const source *src,
                                  kvl_error *err)
{
    size_t off = 0;
    PCRE2_SPTR subj = (PCRE2_SPTR)text;
    while (off < n) {
        int rc = T->jit ? pcre2_jit_match(T->code, subj, subject_len, off, 0,
                                          c->md, c->mctx)
                        : pcre2_match(T->code, subj, subject_len, off,
                                      PCRE2_NO_UTF_CHECK, c->md, c->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            return count_word(c, text + off, n - off, src, err);
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return kvl_fail(err, rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_JIT_STACKLIMIT
                                     ? KVL_ERR_NOMEM : KVL_ERR_INTERNAL,
                            "%s: pre-tokenizer regex failed near byte %llu: %s",
                            src->name, (unsigned long long)(src->offset + off),
                            (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        /* neither can happen at a valid cut; stay inside the piece */
        if (ms >= n)
            return count_word(c, text + off, n - off, src, err);
        if (me > n)
            me = n;
        if (ms > off) {
            kvl_status st = count_word(c, text + off, ms - off, src, err);
            if (st != KVL_OK)
                return st;
        }
        if (me <= ms) { /* empty match: emit one character, move on */
            size_t k = 1;
            while (ms + k < n && ((unsigned char)text[ms + k] & 0xC0) == 0x80)
                k++;
            me = ms + k;
        }
        kvl_status st = count_word(c, text + ms, me - ms, src, err);
        if (st != KVL_OK)
            return st;
        off = me;
    }
    return KVL_OK;
}

/* One segment between special tokens: validate, normalise, split, count.
 * `next` is the character after the segment (-1 for none). */
static kvl_status count_segment(const trainer *T, counter *c, const char *raw,
                                size_t n, int next, const source *src,
                                kvl_error *err)
{
    if (n == 0)
        return KVL_OK;
    size_t bad = utf8_invalid_at((const unsigned char *)raw, n);
    if (bad < n)
        return kvl_fail(err, KVL_ERR_FORMAT, "%s: invalid UTF-8 at byte %llu",
                        src->name, (unsigned long long)(src->offset + bad));
    if (!T->nfc || nfc_inert((const unsigned char *)raw, n))
        /* raw[n] is the look-ahead character when next >= 0 */
        return split_and_count(T, c, raw, n, n + (next >= 0), src, err);
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)raw,
                                      (utf8proc_ssize_t)n, &norm,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) {
        free(norm);
        return kvl_fail(err, m == UTF8PROC_ERROR_NOMEM ? KVL_ERR_NOMEM : KVL_ERR_FORMAT,
                        "%s: NFC normalisation failed near byte %llu: %s",
                        src->name, (unsigned long long)src->offset,
                        utf8proc_errmsg(m));
    }
    utf8proc_uint8_t *t = realloc(norm, (size_t)m + 2);
    if (!t) {
        free(norm);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory normalising text");
    }
    if (next >= 0)
        t[m] = (utf8proc_uint8_t)next;
    kvl_status st = split_and_count(T, c, (const char *)t, (size_t)m,
                                    (size_t)m + (next >= 0), src, err);
    free(t);
    return st;
}

/* Counts raw[0..n).  When has_next, raw[n] is readable and is the
 * (printable ASCII) character that follows in the text. */
static kvl_status count_piece(const trainer *T, counter *c, const char *raw,
                              size_t n, int has_next, const source *src,
                              kvl_error *err)
{
    /* next_at[k]: next occurrence of special k at or after pos (n: none),
     * searched again only once pos has passed it */
    size_t *next_at = c->next_at;
    for (size_t k = 0; k < T->n_special; k++)
        next_at[k] = SIZE_MAX;
    size_t pos = 0;
    source s = *src;
    while (pos < n) {
        /* leftmost special token occurrence, the longest at that start */
        size_t best = n, best_len = 0;
        for (size_t k = 0; k < T->n_special; k++) {
            const special_tok *sp = &T->specials[k];
            if (next_at[k] == SIZE_MAX || (next_at[k] < n && next_at[k] < pos)) {
                const char *f = memmem(raw + pos, n - pos, sp->s, sp->len);
                next_at[k] = f ? (size_t)(f - raw) : n;
            }
            size_t at = next_at[k];
            if (at < n && (at < best || (at == best && sp->len > best_len))) {
                best = at;
                best_len = sp->len;
            }
        }
        s.offset = src->offset + pos;
        int next = best < n ? -1 : (has_next ? (unsigned char)raw[n] : -1);
        kvl_status st = count_segment(T, c, raw + pos, best - pos, next, &s, err);
        if (st != KVL_OK)
            return st;
        pos = best + best_len;
    }
    return KVL_OK;
}

/* ---- reading files ------------------------------------------------------- */

typedef struct reader {
    const char *name;
    FILE *f;             /* file source, or NULL for memory            */
    const char *mem;     /* memory source                              */
    size_t mem_n, mem_pos;
    int zstd;
    ZSTD_DCtx *z;
    unsigned char *zin;
    size_t zin_cap;
    ZSTD_inBuffer in;
    size_t z_last;       /* last ZSTD_decompressStream result (0: frame end) */
    int file_eof;
} reader;

static const unsigned char zstd_magic[4] = {0x28, 0xB5, 0x2F, 0xFD};

static kvl_status reader_open_file(reader *r, const char *path, kvl_error *err)
{
    memset(r, 0, sizeof *r);
    r->name = path;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return kvl_fail(err, KVL_ERR_IO, "corpus '%s' is a folder, not a file", path);
    r->f = fopen(path, "rb");
    if (!r->f)
        return kvl_fail(err, KVL_ERR_IO, "cannot open corpus '%s': %s", path,
                        strerror(errno));
    r->zin_cap = ZSTD_DStreamInSize();
    r->zin = malloc(r->zin_cap);
    if (!r->zin)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory reading '%s'", path);
    size_t got = fread(r->zin, 1, 4, r->f);
    if (ferror(r->f))
        return kvl_fail(err, KVL_ERR_IO, "cannot read corpus '%s': %s", path,
                        strerror(errno));
    r->in.src = r->zin;
    r->in.size = got;
    r->in.pos = 0;
    if (got == 4 && memcmp(r->zin, zstd_magic, 4) == 0) {
        r->zstd = 1;
        r->z = ZSTD_createDCtx();
        if (!r->z)
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for zstd");
    }
    return KVL_OK;
}

static void reader_close(reader *r)
{
    if (r->f)
        fclose(r->f);
    ZSTD_freeDCtx(r->z);
    free(r->zin);
    memset(r, 0, sizeof *r);
}

/* Reads up to cap bytes of text into dst; *got == 0 means end of text. */
static kvl_status reader_read(reader *r, char *dst, size_t cap, size_t *got,
                              kvl_error *err)
{
    *got = 0;
    if (!r->f) {
        size_t k = r->mem_n - r->mem_pos < cap ? r->mem_n - r->mem_pos : cap;
        if (k)
            memcpy(dst, r->mem + r->mem_pos, k);
        r->mem_pos += k;
        *got = k;
        return KVL_OK;
    }
    if (!r->zstd) {
        /* the bytes read while sniffing come first */
        while (r->in.pos < r->in.size && *got < cap)
            dst[(*got)++] = (char)r->zin[r->in.pos++];
        size_t k = fread(dst + *got, 1, cap - *got, r->f);
        if (ferror(r->f))
            return kvl_fail(err, KVL_ERR_IO, "cannot read corpus '%s': %s",
                            r->name, strerror(errno));
        *got += k;
        return KVL_OK;
    }
    ZSTD_outBuffer out = {dst, cap, 0};
    while (out.pos < out.size) {
        if (r->in.pos == r->in.size) {
            if (r->file_eof)
                break;
            size_t k = fread(r->zin, 1, r->zin_cap, r->f);
            if (ferror(r->f))
                return kvl_fail(err, KVL_ERR_IO, "cannot read corpus '%s': %s",
                                r->name, strerror(errno));
            if (k == 0) {
                r->file_eof = 1;
                /* data may still be buffered inside the decoder */
            }
            r->in.size = k;
            r->in.pos = 0;
        }
        size_t before = out.pos, in_before = r->in.pos;
        size_t ret = ZSTD_decompressStream(r->z, &out, &r->in);
        if (ZSTD_isError(ret))
            return kvl_fail(err, KVL_ERR_FORMAT, "corpus '%s': zstd: %s",
                            r->name, ZSTD_getErrorName(ret));
        /* a call without progress (no input left) says nothing about
         * whether the last frame was complete */
        if (out.pos > before || r->in.pos > in_before)
            r->z_last = ret;
        if (r->file_eof && r->in.pos == r->in.size && out.pos == before)
            break;
    }
    if (out.pos == 0 && r->file_eof && r->z_last != 0)
        return kvl_fail(err, KVL_ERR_FORMAT, "corpus '%s': truncated zstd frame",
                        r->name);
    *got = out.pos;
    return KVL_OK;
}

/* A cut point i (0 < i < n): text[i-1] == '\n' and text[i] printable ASCII.
 * No pre-token of either pattern contains a line break followed by a
 * non-space character, so pre-tokens never cross a cut. */
static int is_cut(const char *t, size_t i)
{
    unsigned char c = (unsigned char)t[i];
    return t[i - 1] == '\n' && c >= 0x21 && c <= 0x7E;
}

/* Counts the pieces [cuts[i], cuts[i+1]) of buf in parallel. */
static kvl_status count_pieces(const trainer *T, counter *cs, const char *buf,
                               size_t buf_n, const size_t *cuts, size_t n_pieces,
                               const char *name, uint64_t base, kvl_error *err)
{
    int nt = T->n_threads;
    for (int t = 0; t < nt; t++)
        cs[t].st = KVL_OK;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (size_t i = 0; i < n_pieces; i++) {
        counter *c = &cs[omp_get_thread_num()];
        if (c->st != KVL_OK)
            continue;
        source src = {name, base + cuts[i]};
        c->st = count_piece(T, c, buf + cuts[i], cuts[i + 1] - cuts[i],
                            cuts[i + 1] < buf_n, &src, &c->err);
    }
    for (int t = 0; t < nt; t++)
        if (cs[t].st != KVL_OK) {
            if (err)
                *err = cs[t].err;
            return cs[t].st;
        }
    return KVL_OK;
}

typedef struct batch {
    char *buf;
    size_t n, cap;
    size_t *cuts;
    size_t cuts_cap;
} batch;

/* Streams one text (file or memory) through the counters. */
static kvl_status count_text(const trainer *T, counter *cs, reader *r,
                             batch *b, int64_t *bytes, kvl_error *err)
{
    uint64_t base = 0; /* text offset of b->buf[0] */
    int eof = 0;
    b->n = 0;
    while (!eof || b->n > 0) {
        /* fill */
        while (!eof && b->n < b->cap) {
            size_t got;
            kvl_status st = reader_read(r, b->buf + b->n, b->cap - b->n, &got, err);
            if (st != KVL_OK)
                return st;
            if (got == 0)
                eof = 1;
            b->n += got;
            *bytes += (int64_t)got;
        }
        size_t end = b->n;
        if (!eof) {
            /* the last cut in the buffer */
            end = b->n - 1;
            while (end >= 1 && !is_cut(b->buf, end))
                end--;
            if (end == 0) { /* no cut in the whole buffer: read more */
                size_t cap = b->cap * 2;
                char *nb = realloc(b->buf, cap);
                if (!nb)
                    return kvl_fail(err, KVL_ERR_NOMEM,
                                    "%s: out of memory (no line break followed "
                                    "by text in %zu bytes)", r->name, b->cap);
                b->buf = nb;
                b->cap = cap;
                continue;
            }
        }
        if (end == 0)
            break; /* end of an empty text */
        /* pieces of about end / (4 * threads) bytes, each ending at a cut */
        size_t want = end / (size_t)(4 * T->n_threads);
        if (want < PIECE_MIN)
            want = PIECE_MIN;
        size_t n_pieces = 0;
        size_t pos = 0;
        while (pos < end) {
            size_t stop = pos + want;
            if (stop >= end) {
                stop = end;
            } else {
                while (stop < end && !is_cut(b->buf, stop))
                    stop++;
            }
            if (n_pieces + 2 > b->cuts_cap) {
                size_t c = b->cuts_cap ? b->cuts_cap * 2 : 64;
                size_t *nc = realloc(b->cuts, c * sizeof *nc);
                if (!nc)
                    return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
                b->cuts = nc;
                b->cuts_cap = c;
            }
            b->cuts[n_pieces++] = pos;
            pos = stop;
        }
        b->cuts[n_pieces] = end;
        kvl_status st = count_pieces(T, cs, b->buf, b->n, b->cuts, n_pieces,
                                     r->name, base, err);
        if (st != KVL_OK)
            return st;
        memmove(b->buf, b->buf + end, b->n - end);
        b->n -= end;
        base += end;
    }
    return KVL_OK;
}

/* ---- merging --------------------------------------------------------------- */

typedef struct pair {
    int64_t count;
    int64_t count_before; /* at the start of the current step */
    int32_t a, b;
    uint32_t *words;
    uint32_t n_words, cap_words;
    uint32_t mark;    /* last word index + 1 known to be on `words` */
    uint32_t touched; /* step + 1 when changed in that step */
    uint8_t dead;     /* merged, or forbidden */
} pair;

typedef struct heap_ent {
    int64_t count;
    uint32_t p;
} heap_ent;

typedef struct merger {
    /* words */
    int32_t *sym;
    size_t *woff;
    uint32_t *wlen;
    int64_t *wcount;
    size_t n_words;
    /* pairs: open addressing (a, b) -> index */
    pair *pairs;
    size_t n_pairs, cap_pairs;
    uint64_t *pkeys;
    uint32_t *pidx;
    size_t pcap;
    /* heap */
    heap_ent *heap;
    size_t heap_n, heap_cap;
    size_t n_live; /* pairs not dead with count > 0 (approximate) */
    uint32_t *touched;
    size_t n_touched, touched_cap;
} merger;

static uint64_t pair_key(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    x ^= x >> 33;
    return x;
}

static int64_t pair_find(const merger *M, int32_t a, int32_t b)
{
    uint64_t k = pair_key(a, b);
    size_t j = mix64(k) & (M->pcap - 1);
    while (M->pidx[j] != UINT32_MAX) {
        if (M->pkeys[j] == k)
            return M->pidx[j];
        j = (j + 1) & (M->pcap - 1);
    }
    return -1;
}

static int pair_rehash(merger *M, size_t cap)
{
    uint64_t *k = malloc(cap * sizeof *k);
    uint32_t *x = malloc(cap * sizeof *x);
    if (!k || !x) {
        free(k);
        free(x);
        return -1;
    }
    for (size_t i = 0; i < cap; i++)
        x[i] = UINT32_MAX;
    for (size_t i = 0; i < M->pcap; i++) {
        if (M->pidx[i] == UINT32_MAX)
            continue;
        size_t j = mix64(M->pkeys[i]) & (cap - 1);
        while (x[j] != UINT32_MAX)
            j = (j + 1) & (cap - 1);
        k[j] = M->pkeys[i];
        x[j] = M->pidx[i];
    }
    free(M->pkeys);
    free(M->pidx);
    M->pkeys = k;
    M->pidx = x;
    M->pcap = cap;
    return 0;
}

/* Index of pair (a, b), created with count 0 if new; -1 when out of memory. */
static int64_t pair_get(merger *M, int32_t a, int32_t b)
{
    int64_t i = pair_find(M, a, b);
    if (i >= 0)
        return i;
    if (M->n_pairs >= UINT32_MAX - 1)
        return -1;
    if ((M->n_pairs + 1) * 2 > M->pcap && pair_rehash(M, M->pcap * 2) != 0)
        return -1;
    if (M->n_pairs == M->cap_pairs) {
        size_t c = M->cap_pairs * 2;
        pair *np = realloc(M->pairs, c * sizeof *np);
        if (!np)
            return -1;
        M->pairs = np;
        M->cap_pairs = c;
    }
    i = (int64_t)M->n_pairs++;
    pair *p = &M->pairs[i];
    memset(p, 0, sizeof *p);
    p->a = a;
    p->b = b;
    uint64_t k = pair_key(a, b);
    size_t j = mix64(k) & (M->pcap - 1);
    while (M->pidx[j] != UINT32_MAX)
        j = (j + 1) & (M->pcap - 1);
    M->pkeys[j] = k;
    M->pidx[j] = (uint32_t)i;
    return i;
}

static int pair_add_word(pair *p, uint32_t w)
{
    if (p->n_words == p->cap_words) {
        uint32_t c = p->cap_words ? p->cap_words * 2 : 4;
        uint32_t *nw = realloc(p->words, c * sizeof *nw);
        if (!nw)
            return -1;
        p->words = nw;
        p->cap_words = c;
    }
    p->words[p->n_words++] = w;
    return 0;
}

/* Heap order: higher count first; ties: smaller (a, b). */
static int heap_before(const merger *M, heap_ent x, heap_ent y)
{
    if (x.count != y.count)
        return x.count > y.count;
    const pair *px = &M->pairs[x.p], *py = &M->pairs[y.p];
    if (px->a != py->a)
        return px->a < py->a;
    return px->b < py->b;
}

static int heap_push(merger *M, int64_t count, uint32_t p)
{
    if (M->heap_n == M->heap_cap) {
        size_t c = M->heap_cap ? M->heap_cap * 2 : 1024;
        heap_ent *h = realloc(M->heap, c * sizeof *h);
        if (!h)
            return -1;
        M->heap = h;
        M->heap_cap = c;
    }
    heap_ent e = {count, p};
    size_t i = M->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!heap_before(M, e, M->heap[up]))
            break;
        M->heap[i] = M->heap[up];
        i = up;
    }
    M->heap[i] = e;
    return 0;
}

static heap_ent heap_pop(merger *M)
{
    heap_ent top = M->heap[0];
    heap_ent last = M->heap[--M->heap_n];
    size_t i = 0, n = M->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        heap_ent best = last;
        if (l < n && heap_before(M, M->heap[l], best)) {
            m = l;
            best = M->heap[l];
        }
        if (r < n && heap_before(M, M->heap[r], best))
            m = r;
        if (m == i)
            break;
        M->heap[i] = M->heap[m];
        i = m;
    }
    if (n > 0)
        M->heap[i] = last;
    return top;
}

/* Rebuilds the heap from the live pairs (drops stale entries). */
static int heap_rebuild(merger *M)
{
    M->heap_n = 0;
    M->n_live = 0;
    for (size_t i = 0; i < M->n_pairs; i++) {
        if (M->pairs[i].dead || M->pairs[i].count <= 0)
            continue;
        M->n_live++;
        if (heap_push(M, M->pairs[i].count, (uint32_t)i) != 0)
            return -1;
    }
    return 0;
}

static void merger_free(merger *M)
{
    free(M->sym);
    free(M->woff);
    free(M->wlen);
    free(M->wcount);
    for (size_t i = 0; i < M->n_pairs; i++)
        free(M->pairs[i].words);
    free(M->pairs);
    free(M->pkeys);
    free(M->pidx);
    free(M->heap);
    free(M->touched);
}

static int touch(merger *M, uint32_t pi, uint32_t step)
{
    pair *p = &M->pairs[pi];
    if (p->touched == step + 1)
        return 0;
    p->touched = step + 1;
    p->count_before = p->count;
    if (M->n_touched == M->touched_cap) {
        size_t c = M->touched_cap ? M->touched_cap * 2 : 1024;
        uint32_t *t = realloc(M->touched, c * sizeof *t);
        if (!t)
            return -1;
        M->touched = t;
        M->touched_cap = c;
    }
    M->touched[M->n_touched++] = pi;
    return 0;
}

/* Replaces every (a, b) in word w by id, updating pair counts and lists. */
static int merge_word(merger *M, uint32_t w, int32_t a, int32_t b, int32_t id,
                      uint32_t step)
{
    int32_t *s = M->sym + M->woff[w];
    uint32_t L = M->wlen[w];
    int64_t c = M->wcount[w];
    uint32_t i;
    for (i = 0; i + 1 < L; i++)
        if (s[i] == a && s[i + 1] == b)
            break;
    if (i + 1 >= L)
        return 0; /* stale list entry */
    for (i = 0; i + 1 < L; i++) {
        int64_t q = pair_find(M, s[i], s[i + 1]);
        if (q < 0)
            return -2;
        if (touch(M, (uint32_t)q, step) != 0)
            return -1;
        M->pairs[q].count -= c;
        M->pairs[q].mark = w + 1;
    }
    uint32_t j = 0;
    for (i = 0; i < L;) {
        if (i + 1 < L && s[i] == a && s[i + 1] == b) {
            s[j++] = id;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    M->wlen[w] = j;
    for (i = 0; i + 1 < j; i++) {
        int64_t q = pair_get(M, s[i], s[i + 1]);
        if (q < 0)
            return -1;
        if (touch(M, (uint32_t)q, step) != 0)
            return -1;
        pair *p = &M->pairs[q];
        p->count += c;
        if (p->mark != w + 1 && !p->dead) {
            if (pair_add_word(p, w) != 0)
                return -1;
            p->mark = w + 1;
        }
    }
    return 0;
}

/* Model under construction. */
typedef struct vocab_build {
    kvl_bpe_model *m;
    size_t bytes_cap, tok_cap, merges_cap;
    stab ids; /* raw token bytes -> id */
} vocab_build;

static int vocab_add(vocab_build *vb, const char *p, size_t n, uint64_t h)
{
    kvl_bpe_model *m = vb->m;
    if ((size_t)m->n_tokens == vb->tok_cap) {
        size_t c = vb->tok_cap ? vb->tok_cap * 2 : 512;
        uint32_t *o = realloc(m->tok_off, c * sizeof *o);
        if (!o)
            return -1;
        m->tok_off = o;
        uint32_t *l = realloc(m->tok_len, c * sizeof *l);
        if (!l)
            return -1;
        m->tok_len = l;
        vb->tok_cap = c;
    }
    size_t used = m->n_tokens ? m->tok_off[m->n_tokens - 1] + m->tok_len[m->n_tokens - 1] : 0;
    if (used + n > UINT32_MAX)
        return -1;
    if (used + n + 1 > vb->bytes_cap) {
        size_t c = vb->bytes_cap ? vb->bytes_cap : 4096;
        while (c < used + n + 1)
            c *= 2;
        char *nb = realloc(m->bytes, c);
        if (!nb)
            return -1;
        m->bytes = nb;
        vb->bytes_cap = c;
    }
    memcpy(m->bytes + used, p, n);
    m->tok_off[m->n_tokens] = (uint32_t)used;
    m->tok_len[m->n_tokens] = (uint32_t)n;
    if (stab_add(&vb->ids, p, n, h, m->n_tokens) < 0)
        return -1;
    m->n_tokens++;
    return 0;
}

/* Whether the byte-level spelling of raw[0..n) equals a special token. */
static int spells_special(const trainer *T, const char *raw, size_t n,
                          kvl_strbuf *tmp)
{
    if (!T->n_special)
        return 0;
    tmp->n = 0;
    if (kvl_bpe_byte_level(raw, n, tmp, NULL) != KVL_OK)
        return 0;
    for (size_t k = 0; k < T->n_special; k++)
        if (T->specials[k].len == tmp->n &&
            memcmp(T->specials[k].s, tmp->s, tmp->n) == 0)
            return 1;
    return 0;
}

static kvl_status nomem(kvl_error *err)
{
    return kvl_fail(err, KVL_ERR_NOMEM, "out of memory while training the BPE model");
}

static kvl_status learn(const trainer *T, const stab *words, kvl_bpe_model *m,
                        kvl_error *err)
{
    merger M;
    memset(&M, 0, sizeof M);
    vocab_build vb;
    memset(&vb, 0, sizeof vb);
    vb.m = m;
    kvl_strbuf tmp = {0};
    char *cat = NULL;
    size_t cat_cap = 0;
    kvl_status st = KVL_OK;

    for (unsigned b = 0; b < 256; b++) {
        char c = (char)b;
        if (vocab_add(&vb, &c, 1, hash_bytes(&c, 1)) != 0)
            goto oom;
    }
    int32_t target = T->opts->vocab_size - (int32_t)T->n_special;

    /* words as byte symbols */
    M.n_words = words->n;
    size_t total = 0;
    for (size_t w = 0; w < words->n; w++)
        total += words->len[w];
    M.sym = malloc((total ? total : 1) * sizeof *M.sym);
    M.woff = malloc((M.n_words ? M.n_words : 1) * sizeof *M.woff);
    M.wlen = malloc((M.n_words ? M.n_words : 1) * sizeof *M.wlen);
    M.wcount = malloc((M.n_words ? M.n_words : 1) * sizeof *M.wcount);
    M.cap_pairs = 1024;
    M.pairs = malloc(M.cap_pairs * sizeof *M.pairs);
    M.pcap = 2048;
    M.pkeys = malloc(M.pcap * sizeof *M.pkeys);
    M.pidx = malloc(M.pcap * sizeof *M.pidx);
    if (!M.sym || !M.woff || !M.wlen || !M.wcount || !M.pairs || !M.pkeys || !M.pidx)
        goto oom;
    for (size_t i = 0; i < M.pcap; i++)
        M.pidx[i] = UINT32_MAX;
    size_t at = 0;
    for (size_t w = 0; w < words->n; w++) {
        const unsigned char *p = (const unsigned char *)words->arena + words->off[w];
        M.woff[w] = at;
        M.wlen[w] = words->len[w];
        M.wcount[w] = words->val[w];
        for (uint32_t i = 0; i < words->len[w]; i++)
            M.sym[at + i] = p[i];
        for (uint32_t i = 0; i + 1 < words->len[w]; i++) {
            int64_t q = pair_get(&M, p[i], p[i + 1]);
            if (q < 0)
                goto oom;
            pair *pp = &M.pairs[q];
            pp->count += words->val[w];
            if (pp->mark != w + 1) {
                if (pair_add_word(pp, (uint32_t)w) != 0)
                    goto oom;
                pp->mark = (uint32_t)w + 1;
            }
        }
        at += words->len[w];
    }
    if (heap_rebuild(&M) != 0)
        goto oom;

    int64_t min_freq = T->opts->min_frequency > 0 ? T->opts->min_frequency : 1;
    uint32_t step = 0;
    while (m->n_tokens < target && M.heap_n > 0) {
        heap_ent e = heap_pop(&M);
        pair *p = &M.pairs[e.p];
        if (p->dead || p->count <= 0)
            continue;
        if (e.count != p->count) {
            /* stale: counts of a pair only fall between pushes, so put it
             * back with its current count */
            if (heap_push(&M, p->count, e.p) != 0)
                goto oom;
            continue;
        }
        if (p->count < min_freq)
            break;
        int32_t a = p->a, b = p->b;
        size_t la = m->tok_len[a], lb = m->tok_len[b];
        if (la + lb > cat_cap) {
            size_t c = (la + lb) * 2;
            char *nc = realloc(cat, c);
            if (!nc)
                goto oom;
            cat = nc;
            cat_cap = c;
        }
        memcpy(cat, m->bytes + m->tok_off[a], la);
        memcpy(cat + la, m->bytes + m->tok_off[b], lb);
        if (spells_special(T, cat, la + lb, &tmp)) {
            p->dead = 1; /* would shadow a special token: never merge it */
            continue;
        }
        uint64_t h = hash_bytes(cat, la + lb);
        int64_t id = stab_find(&vb.ids, cat, la + lb, h);
        if (id < 0) {
            id = m->n_tokens;
            if (vocab_add(&vb, cat, la + lb, h) != 0)
                goto oom;
        }
        if (m->n_merges == vb.merges_cap) {
            size_t c = vb.merges_cap ? vb.merges_cap * 2 : 512;
            kvl_bpe_merge *nm = realloc(m->merges, c * sizeof *nm);
            if (!nm)
                goto oom;
            m->merges = nm;
            vb.merges_cap = c;
        }
        m->merges[m->n_merges++] = (kvl_bpe_merge){a, b, (int32_t)id, p->count};

        /* rewrite the words; p's list does not grow meanwhile (no word can
         * gain (a, b)), but M.pairs may move: keep the list, not p */
        uint32_t *list = p->words, n_list = p->n_words;
        uint32_t pi = e.p;
        p->words = NULL;
        p->n_words = p->cap_words = 0;
        p->dead = 1;
        M.n_touched = 0;
        for (uint32_t k = 0; k < n_list; k++) {
            int r = merge_word(&M, list[k], a, b, (int32_t)id, step);
            if (r != 0) {
                free(list);
                if (r == -2) {
                    st = kvl_fail(err, KVL_ERR_INTERNAL, "BPE training: pair table out of step");
                    goto done;
                }
                goto oom;
            }
        }
        free(list);
        M.pairs[pi].count = 0;
        /* pairs that gained need a fresh heap entry; those that only lost
         * are re-queued lazily when popped */
        for (size_t k = 0; k < M.n_touched; k++) {
            pair *q = &M.pairs[M.touched[k]];
            if (!q->dead && q->count > q->count_before) {
                if (q->count_before <= 0)
                    M.n_live++;
                if (heap_push(&M, q->count, M.touched[k]) != 0)
                    goto oom;
            }
        }
        if (M.heap_n > 4 * M.n_live + (1u << 20) && heap_rebuild(&M) != 0)
            goto oom;
        step++;
    }
    goto done;
oom:
    st = nomem(err);
done:
    stab_free(&vb.ids);
    kvl_strbuf_free(&tmp);
    free(cat);
    merger_free(&M);
    return st;
}

/* ---- options and the two entry points --------------------------------------- */

static kvl_status trainer_init(trainer *T, const kvl_bpe_train_options *o,
                               kvl_error *err)
{
    memset(T, 0, sizeof *T);
    T->opts = o;
    if (!o)
        return kvl_fail(err, KVL_ERR_ARG, "BPE training: options are required");
    const char *pattern = kvl_bpe_pretokenizer_pattern(o->pretokenizer);
    if (!pattern)
        return kvl_fail(err, KVL_ERR_ARG,
                        "unknown pre-tokenizer '%s' (expected qwen or gpt2)",
                        o->pretokenizer);
    const char *const *sp = o->special_tokens ? o->special_tokens : default_specials;
    size_t n_sp = o->special_tokens ? o->n_special
                                    : sizeof default_specials / sizeof default_specials[0];
    if (o->vocab_size < 256 + (int64_t)n_sp)
        return kvl_fail(err, KVL_ERR_ARG,
                        "vocabulary size %d is too small: it must hold the 256 "
                        "byte tokens and the %zu special tokens",
                        (int)o->vocab_size, n_sp);
    if (o->min_frequency < 0)
        return kvl_fail(err, KVL_ERR_ARG, "minimum frequency must be >= 0");
    if (o->n_threads < 0)
        return kvl_fail(err, KVL_ERR_ARG, "thread count must be >= 0");
    T->nfc = !o->no_nfc;
    T->n_threads = o->n_threads > 0 ? o->n_threads : omp_get_max_threads();
    if (T->n_threads < 1)
        T->n_threads = 1;
    T->specials = calloc(n_sp ? n_sp : 1, sizeof *T->specials);
    if (!T->specials)
        return nomem(err);
    T->n_special = n_sp;
    for (size_t k = 0; k < n_sp; k++) {
        const char *s = sp[k];
        if (!s || !*s)
            return kvl_fail(err, KVL_ERR_ARG, "special token %zu is empty", k + 1);
        size_t n = strlen(s);
        if (utf8_invalid_at((const unsigned char *)s, n) < n)
            return kvl_fail(err, KVL_ERR_ARG, "special token '%s' is not valid UTF-8", s);
        if (memchr(s, '\n', n))
            return kvl_fail(err, KVL_ERR_ARG,
                            "special token %zu contains a line break", k + 1);
        for (size_t j = 0; j < k; j++)
            if (strcmp(sp[j], s) == 0)
                return kvl_fail(err, KVL_ERR_ARG, "special token '%s' is given twice", s);
        /* one code point that is a byte symbol (e.g. "a" or "\u0120") */
        kvl_strbuf one = {0};
        int clash = 0;
        for (unsigned b = 0; b < 256 && !clash; b++) {
            char c = (char)b;
            one.n = 0;
            if (kvl_bpe_byte_level(&c, 1, &one, err) != KVL_OK) {
                kvl_strbuf_free(&one);
                return KVL_ERR_NOMEM;
            }
            clash = one.n == n && memcmp(one.s, s, n) == 0;
        }
        kvl_strbuf_free(&one);
        if (clash)
            return kvl_fail(err, KVL_ERR_ARG,
                            "special token '%s' is spelled like a byte token", s);
        T->specials[k].s = s;
        T->specials[k].len = n;
    }
    int ec;
    PCRE2_SIZE eo;
    T->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!T->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return kvl_fail(err, KVL_ERR_INTERNAL, "pre-tokenizer regex: %s at %zu",
                        (const char *)msg, (size_t)eo);
    }
    T->jit = pcre2_jit_compile(T->code, PCRE2_JIT_COMPLETE) == 0;
    return KVL_OK;
}

static void trainer_free(trainer *T)
{
    pcre2_code_free(T->code);
    free(T->specials);
}

void kvl_bpe_model_free(kvl_bpe_model *m)
{
    if (!m)
        return;
    free(m->tok_off);
    free(m->tok_len);
    free(m->bytes);
    free(m->merges);
    for (size_t k = 0; k < m->n_special; k++)
        free(m->special[k]);
    free(m->special);
    free(m);
}

/* Shared by files and texts: n sources, from `files` or from memory. */
static kvl_status train(const kvl_bpe_train_options *opts,
                        const char *const *files, const char *const *texts,
                        const size_t *lens, size_t n, size_t batch_bytes,
                        kvl_bpe_model **out, kvl_error *err)
{
    if (!out)
        return kvl_fail(err, KVL_ERR_ARG, "BPE training: out is required");
    *out = NULL;
    if (n == 0)
        return kvl_fail(err, KVL_ERR_ARG, "BPE training: no corpus given");
    trainer T;
    kvl_status st = trainer_init(&T, opts, err);
    if (st != KVL_OK) {
        trainer_free(&T);
        return st;
    }
    counter *cs = calloc((size_t)T.n_threads, sizeof *cs);
    kvl_bpe_model *m = calloc(1, sizeof *m);
    batch b = {0};
    b.cap = batch_bytes ? batch_bytes : BATCH_MIN;
    if (b.cap < 2)
        b.cap = 2;
    b.buf = malloc(b.cap);
    if (!cs || !m || !b.buf) {
        st = nomem(err);
        goto done;
    }
    for (int t = 0; t < T.n_threads; t++)
        if ((st = counter_init(&T, &cs[t], err)) != KVL_OK)
            goto done;

    double t0 = now_seconds();
    for (size_t i = 0; i < n; i++) {
        reader r;
        if (files) {
            if (!files[i]) {
                st = kvl_fail(err, KVL_ERR_ARG, "corpus file %zu is NULL", i + 1);
                goto done;
            }
            st = reader_open_file(&r, files[i], err);
        } else {
            memset(&r, 0, sizeof r);
            r.name = "text";
            r.mem = texts[i];
            r.mem_n = !texts[i] ? 0 : lens ? lens[i] : strlen(texts[i]);
            if (!texts[i] && (!lens || lens[i])) {
                st = kvl_fail(err, KVL_ERR_ARG, "text %zu is NULL", i + 1);
                goto done;
            }
        }
        if (st == KVL_OK)
            st = count_text(&T, cs, &r, &b, &m->stats.bytes, err);
        reader_close(&r);
        if (st != KVL_OK)
            goto done;
    }
    /* add the per-thread tables into the first */
    for (int t = 1; t < T.n_threads; t++) {
        stab *src = &cs[t].words;
        for (size_t e = 0; e < src->n; e++) {
            const char *p = src->arena + src->off[e];
            if (stab_add(&cs[0].words, p, src->len[e],
                         hash_bytes(p, src->len[e]), src->val[e]) < 0) {
                st = nomem(err);
                goto done;
            }
        }
        stab_free(src);
    }
    for (int t = 0; t < T.n_threads; t++)
        m->stats.words += cs[t].n_words;
    m->stats.unique_words = (int64_t)cs[0].words.n;
    double t1 = now_seconds();
    m->stats.seconds_count = t1 - t0;
    free(b.buf);
    b.buf = NULL;

    if ((st = learn(&T, &cs[0].words, m, err)) != KVL_OK)
        goto done;
    m->stats.seconds_merge = now_seconds() - t1;
    m->special = calloc(T.n_special ? T.n_special : 1, sizeof *m->special);
    if (!m->special) {
        st = nomem(err);
        goto done;
    }
    for (size_t k = 0; k < T.n_special; k++) {
        m->special[k] = strdup(T.specials[k].s);
        if (!m->special[k]) {
            st = nomem(err);
            goto done;
        }
        m->n_special++;
    }
    m->stats.vocab_size = m->n_tokens + (int32_t)m->n_special;
    m->stats.n_merges = (int32_t)m->n_merges;
    *out = m;
    m = NULL;
done:
    if (cs)
        for (int t = 0; t < T.n_threads; t++)
            counter_free(&cs[t]);
    free(cs);
    free(b.buf);
    free(b.cuts);
    kvl_bpe_model_free(m);
    trainer_free(&T);
    return st;
}

kvl_status kvl_bpe_train_files(const kvl_bpe_train_options *opts,
                               const char *const *files, size_t n_files,
                               kvl_bpe_model **out, kvl_error *err)
{
    if (!files && n_files)
        return kvl_fail(err, KVL_ERR_ARG, "BPE training: files is NULL");
    return train(opts, files, NULL, NULL, n_files, 0, out, err);
}

kvl_status kvl_bpe_train_texts(const kvl_bpe_train_options *opts,
                               const char *const *texts, const size_t *lens,
                               size_t n_texts, size_t batch_bytes,
                               kvl_bpe_model **out, kvl_error *err)
{
    if (!texts && n_texts)
        return kvl_fail(err, KVL_ERR_ARG, "BPE training: texts is NULL");
    return train(opts, NULL, texts, lens, n_texts, batch_bytes, out, err);
}

/* ---- writing tokenizer.json / tokenizer_config.json ------------------------ */

/* A failed json_* constructor returns NULL; `ok` collects that. */
static json_t *jset(int *ok, json_t *obj, const char *key, json_t *val)
{
    if (!val || json_object_set_new(obj, key, val) != 0)
        *ok = 0;
    return obj;
}

static json_t *byte_level_json(int *ok)
{
    json_t *o = json_object();
    if (!o) {
        *ok = 0;
        return NULL;
    }
    jset(ok, o, "type", json_string("ByteLevel"));
    jset(ok, o, "add_prefix_space", json_false());
    jset(ok, o, "trim_offsets", json_false());
    jset(ok, o, "use_regex", json_false());
    return o;
}

static json_t *added_token_json(int *ok, const char *content, int with_id,
                                int32_t id)
{
    json_t *o = json_object();
    if (!o) {
        *ok = 0;
        return NULL;
    }
    if (with_id)
        jset(ok, o, "id", json_integer(id));
    jset(ok, o, "content", json_string(content));
    jset(ok, o, "single_word", json_false());
    jset(ok, o, "lstrip", json_false());
    jset(ok, o, "rstrip", json_false());
    jset(ok, o, "normalized", json_false());
    jset(ok, o, "special", json_true());
    return o;
}

static int array_append(int *ok, json_t *arr, json_t *v)
{
    if (!v || json_array_append_new(arr, v) != 0)
        *ok = 0;
    return *ok;
}

static json_t *tokenizer_json(const kvl_bpe_model *m,
                              const kvl_bpe_train_options *opts, kvl_error *err)
{
    int ok = 1;
    kvl_strbuf s = {0}, s2 = {0};
    json_t *root = json_object();
    if (!root)
        return NULL;
    jset(&ok, root, "version", json_string("1.0"));
    jset(&ok, root, "truncation", json_null());
    jset(&ok, root, "padding", json_null());
    json_t *added = json_array();
    jset(&ok, root, "added_tokens", added);
    for (size_t k = 0; ok && k < m->n_special; k++)
        array_append(&ok, added,
                     added_token_json(&ok, m->special[k], 1, m->n_tokens + (int32_t)k));
    if (opts->no_nfc) {
        jset(&ok, root, "normalizer", json_null());
    } else {
        json_t *nfc = json_object();
        jset(&ok, root, "normalizer", nfc);
        if (nfc)
            jset(&ok, nfc, "type", json_string("NFC"));
    }
    json_t *pre = json_object(), *seq = json_array(), *split = json_object(),
           *pat = json_object();
    jset(&ok, root, "pre_tokenizer", pre);
    if (pre && seq && split && pat) {
        jset(&ok, pre, "type", json_string("Sequence"));
        jset(&ok, pre, "pretokenizers", json_incref(seq));
        jset(&ok, split, "type", json_string("Split"));
        jset(&ok, pat, "Regex",
             json_string(kvl_bpe_pretokenizer_pattern(opts->pretokenizer)));
        jset(&ok, split, "pattern", json_incref(pat));
        jset(&ok, split, "behavior", json_string("Isolated"));
        jset(&ok, split, "invert", json_false());
        array_append(&ok, seq, json_incref(split));
        array_append(&ok, seq, byte_level_json(&ok));
    }
    json_decref(seq);
    json_decref(split);
    json_decref(pat);
    jset(&ok, root, "post_processor", byte_level_json(&ok));
    jset(&ok, root, "decoder", byte_level_json(&ok));
    json_t *model = json_object(), *vocab = json_object(), *merges = json_array();
    jset(&ok, root, "model", model);
    if (model && vocab && merges) {
        jset(&ok, model, "type", json_string("BPE"));
        jset(&ok, model, "dropout", json_null());
        jset(&ok, model, "unk_token", json_null());
        jset(&ok, model, "continuing_subword_prefix", json_string(""));
        jset(&ok, model, "end_of_word_suffix", json_string(""));
        jset(&ok, model, "fuse_unk", json_false());
        jset(&ok, model, "byte_fallback", json_false());
        jset(&ok, model, "ignore_merges", json_false());
        jset(&ok, model, "vocab", json_incref(vocab));
        jset(&ok, model, "merges", json_incref(merges));
        for (int32_t i = 0; ok && i < m->n_tokens; i++) {
            s.n = 0;
            if (kvl_bpe_byte_level(m->bytes + m->tok_off[i], m->tok_len[i], &s, err) != KVL_OK ||
                kvl_strbuf_append(&s, "", 0, err) != KVL_OK) {
                ok = 0;
                break;
            }
            jset(&ok, vocab, s.s, json_integer(i));
        }
        for (size_t k = 0; ok && k < m->n_merges; k++) {
            const kvl_bpe_merge *g = &m->merges[k];
            s.n = s2.n = 0;
            if (kvl_bpe_byte_level(m->bytes + m->tok_off[g->a], m->tok_len[g->a], &s, err) != KVL_OK ||
                kvl_bpe_byte_level(m->bytes + m->tok_off[g->b], m->tok_len[g->b], &s2, err) != KVL_OK ||
                kvl_strbuf_append(&s, "", 0, err) != KVL_OK ||
                kvl_strbuf_append(&s2, "", 0, err) != KVL_OK) {
                ok = 0;
                break;
            }
            json_t *pr = json_array();
            if (pr) {
                array_append(&ok, pr, json_string(s.s));
                array_append(&ok, pr, json_string(s2.s));
            }
            array_append(&ok, merges, pr);
        }
    }
    json_decref(vocab);
    json_decref(merges);
    kvl_strbuf_free(&s);
    kvl_strbuf_free(&s2);
    if (!ok) {
        json_decref(root);
        return NULL;
    }
    return root;
}

static json_t *tokenizer_config_json(const kvl_bpe_model *m)
{
    int ok = 1;
    json_t *root = json_object();
    if (!root)
        return NULL;
    int has_start = 0, has_end = 0;
    for (size_t k = 0; k < m->n_special; k++) {
        has_start |= strcmp(m->special[k], "<|im_start|>") == 0;
        has_end |= strcmp(m->special[k], "<|im_end|>") == 0;
    }
    jset(&ok, root, "add_bos_token", json_false());
    jset(&ok, root, "add_eos_token", json_false());
    jset(&ok, root, "add_prefix_space", json_false());
    json_t *dec = json_object();
    jset(&ok, root, "added_tokens_decoder", dec);
    for (size_t k = 0; ok && dec && k < m->n_special; k++) {
        char id[24];
        snprintf(id, sizeof id, "%d", (int)(m->n_tokens + (int32_t)k));
        jset(&ok, dec, id, added_token_json(&ok, m->special[k], 0, 0));
    }
    jset(&ok, root, "bos_token", json_null());
    if (has_start && has_end)
        jset(&ok, root, "chat_template", json_string(chatml_template));
    jset(&ok, root, "clean_up_tokenization_spaces", json_false());
    /* the first special token ends documents and pads (none: null) */
    jset(&ok, root, "eos_token",
         m->n_special ? json_string(m->special[0]) : json_null());
    jset(&ok, root, "errors", json_string("replace"));
    jset(&ok, root, "pad_token",
         m->n_special ? json_string(m->special[0]) : json_null());
    jset(&ok, root, "split_special_tokens", json_false());
    jset(&ok, root, "tokenizer_class", json_string("PreTrainedTokenizerFast"));
    jset(&ok, root, "unk_token", json_null());
    if (!ok) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* mkdir -p */
static kvl_status make_dirs(const char *dir, kvl_error *err)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return kvl_fail(err, KVL_ERR_ARG, "output folder '%s' is empty or too long", dir);
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return kvl_fail(err, KVL_ERR_IO, "cannot create folder '%s': %s", path,
                            strerror(errno));
        path[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return kvl_fail(err, KVL_ERR_IO, "output '%s' is not a folder", dir);
    return KVL_OK;
}

static kvl_status write_json(json_t *root, const char *dir, const char *name,
                             kvl_error *err)
{
    char path[4096], tmp[4120];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return kvl_fail(err, KVL_ERR_ARG, "output folder '%s' is too long", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return kvl_fail(err, KVL_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
    int bad = json_dumpf(root, f, JSON_INDENT(2)) != 0;
    bad |= fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    if (bad) {
        unlink(tmp);
        return kvl_fail(err, KVL_ERR_IO, "cannot write '%s' (disk full?)", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return kvl_fail(err, KVL_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path,
                        strerror(e));
    }
    return KVL_OK;
}

kvl_status kvl_bpe_model_write(const kvl_bpe_model *m,
                               const kvl_bpe_train_options *opts,
                               const char *out_dir, kvl_error *err)
{
    if (!m || !opts || !out_dir)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_bpe_model_write: NULL argument");
    if (!kvl_bpe_pretokenizer_pattern(opts->pretokenizer))
        return kvl_fail(err, KVL_ERR_ARG, "unknown pre-tokenizer '%s'", opts->pretokenizer);
    kvl_status st = make_dirs(out_dir, err);
    if (st != KVL_OK)
        return st;
    json_t *tj = tokenizer_json(m, opts, err);
    if (!tj)
        return err && err->code != KVL_OK ? err->code : nomem(err);
    st = write_json(tj, out_dir, "tokenizer.json", err);
    json_decref(tj);
    if (st != KVL_OK)
        return st;
    json_t *cj = tokenizer_config_json(m);
    if (!cj)
        return nomem(err);
    st = write_json(cj, out_dir, "tokenizer_config.json", err);
    json_decref(cj);
    return st;
}

kvl_status kvl_tokenizer_train_bpe(const kvl_bpe_train_options *options,
                                   const char *const *files, size_t n_files,
                                   const char *out_dir,
                                   kvl_bpe_train_stats *stats, kvl_error *err)
{
    if (!out_dir)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_tokenizer_train_bpe: out_dir is required");
    kvl_bpe_model *m = NULL;
    kvl_status st = kvl_bpe_train_files(options, files, n_files, &m, err);
    if (st != KVL_OK)
        return st;
    st = kvl_bpe_model_write(m, options, out_dir, err);
    if (st == KVL_OK && stats)
        *stats = m->stats;
    kvl_bpe_model_free(m);
    return st;
}
