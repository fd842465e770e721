/*
 * Byte-level BPE training (src/tokenizer/bpe_train.c).
 *
 * References, none of them kvlab's own earlier output:
 *  - a hand-made corpus whose merge sequence is derived below by hand;
 *  - hand-derived GPT-2 byte-alphabet spellings in the written JSON;
 *  - a deliberately naive trainer written in this file (whole text split
 *    at once with PCRE2, utf8proc NFC of whole segments, all pair counts
 *    recomputed every step) on a synthetic text, run with small batches
 *    and two threads so that the library's batch cuts and parallel pieces
 *    are exercised;
 *  - merges computed by tests/reference/check_trained_tokenizer.py (a naive
 *    Python trainer fed by Hugging Face `tokenizers`' own normaliser and
 *    pre-tokenizer) for prefixes of shared/corpus/train-00.txt.zst
 *    (skipped when ../shared is absent).
 */
#include "test_util.h"

#include "tokenizer/bpe_train.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>
#include <zstd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Raw bytes of token id. */
static void tok_bytes(const kvl_bpe_model *m, int32_t id, const char **p, size_t *n)
{
    *p = m->bytes + m->tok_off[id];
    *n = m->tok_len[id];
}

static int tok_is(const kvl_bpe_model *m, int32_t id, const char *s)
{
    const char *p;
    size_t n;
    if (id < 0 || id >= m->n_tokens)
        return 0;
    tok_bytes(m, id, &p, &n);
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

static kvl_bpe_model *train_text(const kvl_bpe_train_options *o, const char *text,
                                 size_t len, size_t batch)
{
    kvl_error err = {0};
    kvl_bpe_model *m = NULL;
    const char *texts[1] = {text};
    kvl_status st = kvl_bpe_train_texts(o, texts, &len, 1, batch, &m, &err);
    CHECK(st == KVL_OK, "training failed: %s", err.message);
    return m;
}

/* ---- 1. the hand-derived corpus ------------------------------------------ */

/*
 * Words (one per line, so every pre-token is a bare word or "\n", and "\n"
 * has no pairs): hug x10, pug x5, pun x12, bun x4, hugs x5, interleaved.
 * Pair counts (weighted by word counts):
 *   u g 10+5+5 = 20, p u 5+12 = 17, u n 12+4 = 16, h u 10+5 = 15, g s 5, b u 4
 * 1. (u, g) 20 -> "ug" id 256.  Words: h ug, p ug, p u n, b u n, h ug s.
 *    Now u n 16, h ug 15, p u 12, p ug 5, ug s 5, b u 4.
 * 2. (u, n) 16 -> "un" 257.   Now h ug 15, p un 12, p ug 5, ug s 5, b un 4.
 * 3. (h, ug) 15 -> "hug" 258. Now p un 12, p ug 5, hug s 5, b un 4.
 * 4. (p, un) 12 -> "pun" 259. Now p ug 5, hug s 5, b un 4.
 * 5. Tie at 5 between (p, ug) and (hug, s): the smaller left id wins, and
 *    'p' is 112 < 258: (p, ug) -> "pug" 260.
 * 6. (hug, s) 5 -> "hugs" 261.
 * 7. (b, un) 4 -> "bun" 262.  No pair is left: training stops at 263
 *    model tokens, and the 3 default special tokens take ids 263..265.
 */
static const struct {
    const char *a, *b, *result;
    int64_t count;
} hand_merges[] = {{"u", "g", "ug", 20},    {"u", "n", "un", 16},
                   {"h", "ug", "hug", 15},  {"p", "un", "pun", 12},
                   {"p", "ug", "pug", 5},   {"hug", "s", "hugs", 5},
                   {"b", "un", "bun", 4}};

static char *hand_corpus(size_t *len)
{
    static const char *words[] = {"hug", "pug", "pun", "bun", "hugs"};
    int left[] = {10, 5, 12, 4, 5};
    kvl_strbuf b = {0};
    for (int round = 0; round < 12; round++)
        for (int w = 4; w >= 0; w--)
            if (left[w]-- > 0) {
                kvl_strbuf_puts(&b, words[w], NULL);
                kvl_strbuf_puts(&b, "\n", NULL);
            }
    *len = b.n;
    return b.s;
}

static void check_hand_merges(const kvl_bpe_model *m, size_t n_expected)
{
    CHECK(m->n_merges == n_expected, "%zu merges, expected %zu", m->n_merges, n_expected);
    CHECK(m->n_tokens == 256 + (int32_t)n_expected, "%d tokens", m->n_tokens);
    for (size_t i = 0; i < m->n_merges && i < n_expected; i++) {
        const kvl_bpe_merge *g = &m->merges[i];
        CHECK(tok_is(m, g->a, hand_merges[i].a) && tok_is(m, g->b, hand_merges[i].b),
              "merge %zu is not (%s, %s)", i + 1, hand_merges[i].a, hand_merges[i].b);
        CHECK(g->result == 256 + (int32_t)i && tok_is(m, g->result, hand_merges[i].result),
              "merge %zu result %d", i + 1, g->result);
        CHECK(g->count == hand_merges[i].count, "merge %zu count %lld, expected %lld",
              i + 1, (long long)g->count, (long long)hand_merges[i].count);
    }
}

static void test_hand_corpus(void)
{
    size_t len;
    char *text = hand_corpus(&len);
    kvl_bpe_train_options o = {0};
    o.vocab_size = 1000; /* more than the corpus can give */
    kvl_bpe_model *m = train_text(&o, text, len, 0);
    if (m) {
        check_hand_merges(m, 7);
        CHECK(m->stats.words == 72, "pre-tokens %lld (36 words + 36 newlines)",
              (long long)m->stats.words);
        CHECK(m->stats.unique_words == 6, "distinct pre-tokens %lld",
              (long long)m->stats.unique_words);
        CHECK(m->stats.vocab_size == 266, "vocab %d", m->stats.vocab_size);
        CHECK(m->n_special == 3 && strcmp(m->special[0], "<|endoftext|>") == 0 &&
                  strcmp(m->special[2], "<|im_end|>") == 0, "default specials");
    }
    kvl_bpe_model_free(m);

    /* vocab 264 = 256 + 5 merges + 3 specials: stops after the tie */
    o.vocab_size = 264;
    m = train_text(&o, text, len, 0);
    if (m)
        check_hand_merges(m, 5);
    kvl_bpe_model_free(m);

    /* min_frequency 5: merges 1-6 have counts >= 5, (b, un) has 4 */
    o.vocab_size = 1000;
    o.min_frequency = 5;
    m = train_text(&o, text, len, 0);
    if (m)
        check_hand_merges(m, 6);
    kvl_bpe_model_free(m);
    free(text);
}

/* ---- 2. special tokens ------------------------------------------------------ */

static void test_specials(void)
{
    /* The special token is cut out: the words are "hug" twice, so the only
     * merges are (h, u) (tie with (u, g) at 2; 'h' 104 < 'u' 117) and
     * (hu, g).  Learned as text, "<|endoftext|>" would add pairs such as
     * (<, |) and (e, n). */
    kvl_bpe_train_options o = {0};
    o.vocab_size = 1000;
    const char *t1 = "hug<|endoftext|>hug";
    kvl_bpe_model *m = train_text(&o, t1, strlen(t1), 0);
    if (m) {
        CHECK(m->n_merges == 2 && tok_is(m, 256, "hu") && tok_is(m, 257, "hug"),
              "specials not cut out: %zu merges", m->n_merges);
        CHECK(m->stats.words == 2, "%lld pre-tokens", (long long)m->stats.words);
    }
    kvl_bpe_model_free(m);

    /* A merge whose byte-level spelling equals a special token is never
     * made: with the special "\u0120hi" (" hi" spelled byte-level) and the
     * corpus " hi hi hi", the first merge is (\u0120, h) (tie with (h, i) at
     * 3; byte 32 < 'h'), the next would be (\u0120h, i) = "\u0120hi": it is
     * skipped and nothing else is left. */
    const char *sp[] = {"\xc4\xa0hi", "<|x|>"};
    o.special_tokens = sp;
    o.n_special = 2;
    const char *t2 = " hi hi hi";
    m = train_text(&o, t2, strlen(t2), 0);
    if (m) {
        CHECK(m->n_merges == 1 && tok_is(m, 256, " h"), "%zu merges", m->n_merges);
        CHECK(m->stats.vocab_size == 257 + 2, "vocab %d", m->stats.vocab_size);
    }
    kvl_bpe_model_free(m);

    /* No special tokens at all. */
    o.special_tokens = sp;
    o.n_special = 0;
    m = train_text(&o, t1, strlen(t1), 0);
    if (m)
        CHECK(m->n_special == 0 && m->n_merges > 2, "learned as text: %zu merges",
              m->n_merges);
    kvl_bpe_model_free(m);
}

/* ---- 3. the written files -------------------------------------------------- */

static json_t *load_json(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    CHECK(j != NULL, "%s: %s", path, je.text);
    return j;
}

static const char *nz(const char *s) { return s ? s : ""; }

static const char *jstr(json_t *o, const char *path)
{
    /* path like "a.b.c" through objects */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_object_get(cur, tok);
    return cur && json_is_string(cur) ? json_string_value(cur) : NULL;
}

static void rm_dir(const char *dir)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    unlink(p);
    rmdir(dir);
}

static void test_written_files(void)
{
    size_t len;
    char *text = hand_corpus(&len);
    kvl_bpe_train_options o = {0};
    o.vocab_size = 1000;
    kvl_bpe_model *m = train_text(&o, text, len, 0);
    free(text);
    if (!m)
        return;
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/kvlab-test-bpe-%d/sub", (int)getpid());
    kvl_error err = {0};
    CHECK_OK(kvl_bpe_model_write(m, &o, dir, &err), &err);
    json_t *tj = load_json(dir, "tokenizer.json");
    json_t *cj = load_json(dir, "tokenizer_config.json");
    if (tj && cj) {
        json_t *model = json_object_get(tj, "model");
        json_t *vocab = json_object_get(model, "vocab");
        json_t *merges = json_object_get(model, "merges");
        CHECK(json_object_size(vocab) == 263, "vocab entries %zu", json_object_size(vocab));
        CHECK(json_array_size(merges) == 7, "merges %zu", json_array_size(merges));
        /* GPT-2's byte alphabet, by hand: bytes 33-126, 161-172 and 174-255
         * stand for themselves; the other 68 bytes take U+0100, U+0101, ...
         * in byte order: 0x00 -> U+0100, 0x0A -> U+010A, 0x20 (the 33rd) ->
         * U+0120, 0x7F -> U+0121, 0xAD (after 0x7F-0xA0, 34 bytes) ->
         * U+0143.  Ids of single bytes are the byte values. */
        static const struct {
            const char *s;
            int id;
        } bytes[] = {{"\xc4\x80", 0},   {"\xc4\x8a", 10},  {"\xc4\xa0", 32},
                     {"!", 33},         {"~", 126},        {"\xc4\xa1", 127},
                     {"\xc5\x83", 173}, {"\xc2\xa1", 161}, {"\xc3\xbf", 255},
                     {"hugs", 261},     {"bun", 262}};
        for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++) {
            json_t *v = json_object_get(vocab, bytes[i].s);
            CHECK(v && json_integer_value(v) == bytes[i].id, "vocab[%s] != %d",
                  bytes[i].s, bytes[i].id);
        }
        json_t *m5 = json_array_get(merges, 5);
        CHECK(json_array_size(m5) == 2 &&
                  strcmp(json_string_value(json_array_get(m5, 0)), "hug") == 0 &&
                  strcmp(json_string_value(json_array_get(m5, 1)), "s") == 0,
              "merges[5] is not [hug, s]");
        CHECK(strcmp(nz(jstr(tj, "model.type")), "BPE") == 0, "model.type");
        CHECK(json_is_false(json_object_get(model, "byte_fallback")) &&
                  json_is_false(json_object_get(model, "ignore_merges")),
              "byte_fallback / ignore_merges");
        CHECK(strcmp(nz(jstr(tj, "normalizer.type")), "NFC") == 0, "normalizer");
        CHECK(strcmp(nz(jstr(tj, "decoder.type")), "ByteLevel") == 0, "decoder");
        json_t *pre = json_object_get(json_object_get(tj, "pre_tokenizer"), "pretokenizers");
        const char *want =
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
            "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
        CHECK(strcmp(nz(jstr(json_array_get(pre, 0), "pattern.Regex")), want) == 0,
              "split regex");
        CHECK(strcmp(nz(jstr(json_array_get(pre, 0), "behavior")), "Isolated") == 0,
              "split behaviour");
        CHECK(strcmp(nz(jstr(json_array_get(pre, 1), "type")), "ByteLevel") == 0 &&
                  json_is_false(json_object_get(json_array_get(pre, 1), "use_regex")),
              "ByteLevel pre-tokenizer");
        json_t *added = json_object_get(tj, "added_tokens");
        CHECK(json_array_size(added) == 3, "added tokens");
        json_t *a0 = json_array_get(added, 0);
        CHECK(json_integer_value(json_object_get(a0, "id")) == 263 &&
                  strcmp(nz(jstr(a0, "content")), "<|endoftext|>") == 0 &&
                  json_is_true(json_object_get(a0, "special")) &&
                  json_is_false(json_object_get(a0, "normalized")),
              "added_tokens[0]");
        CHECK(strcmp(nz(jstr(cj, "eos_token")), "<|endoftext|>") == 0 &&
                  strcmp(nz(jstr(cj, "pad_token")), "<|endoftext|>") == 0 &&
                  json_is_null(json_object_get(cj, "bos_token")),
              "config special tokens");
        CHECK(jstr(cj, "chat_template") && strstr(jstr(cj, "chat_template"), "<|im_start|>"),
              "ChatML template");
    }
    json_decref(tj);
    json_decref(cj);

    /* The kvlab tokenizer engine reads the file: by hand, "hug pug" is the
     * pre-tokens "hug" (one merged token, 258) and " pug" (byte 32, then
     * p u g -> p ug -> pug 260; no merge joins the space). */
    kvl_tokenizer *tok = NULL;
    kvl_status st = kvl_tokenizer_load(dir, 0, &tok, &err);
    if (st == KVL_ERR_UNSUPPORTED) {
        printf("note: tokenizer.json engine not available (%s)\n", err.message);
    } else {
        CHECK(st == KVL_OK, "load: %s", err.message);
        if (tok) {
            int32_t ids[8], n = 0;
            CHECK_OK(kvl_tokenizer_encode(tok, "hug pug", 0, ids, 8, &n, &err), &err);
            CHECK(n == 3 && ids[0] == 258 && ids[1] == 32 && ids[2] == 260,
                  "encode 'hug pug': %d ids", (int)n);
            CHECK(kvl_tokenizer_vocab_size(tok) == 266, "vocab %d",
                  kvl_tokenizer_vocab_size(tok));
        }
    }
    kvl_tokenizer_free(tok);
    rm_dir(dir);
    char parent[256];
    snprintf(parent, sizeof parent, "/tmp/kvlab-test-bpe-%d", (int)getpid());
    rmdir(parent);

    /* gpt2 pattern, no NFC */
    o.pretokenizer = "gpt2";
    o.no_nfc = 1;
    CHECK_OK(kvl_bpe_model_write(m, &o, dir, &err), &err);
    tj = load_json(dir, "tokenizer.json");
    if (tj) {
        CHECK(json_is_null(json_object_get(tj, "normalizer")), "normalizer null");
        json_t *pre = json_object_get(json_object_get(tj, "pre_tokenizer"), "pretokenizers");
        CHECK(strcmp(nz(jstr(json_array_get(pre, 0), "pattern.Regex")),
                     "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
                     "\\s+(?!\\S)|\\s+") == 0,
              "gpt2 regex");
    }
    json_decref(tj);
    rm_dir(dir);
    rmdir(parent);
    kvl_bpe_model_free(m);
}

/* ---- 4. against a naive trainer ------------------------------------------ */

typedef struct nword {
    int32_t *s;
    size_t n;
    int64_t c;
} nword;

typedef struct naive {
    nword *w;
    size_t n, cap;
} naive;

/* Pre-tokens are collected, sorted and folded into counts. */
typedef struct raw_word {
    const char *p;
    size_t n;
} raw_word;

static int cmp_raw(const void *x, const void *y)
{
    const raw_word *a = x, *b = y;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->p, b->p, n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* Splits the whole text with PCRE2 (special tokens cut first, NFC per
 * segment) and folds equal words. */
static int naive_words(const char *text, size_t len, const char *pattern,
                       const char *const *sp, size_t n_sp, naive *out,
                       char ***keep, size_t *n_keep)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    raw_word *rw = NULL;
    size_t n_rw = 0, cap_rw = 0;
    *keep = NULL;
    *n_keep = 0;
    size_t pos = 0;
    while (pos <= len) {
        size_t best = len, blen = 0;
        for (size_t k = 0; k < n_sp; k++) {
            const char *f = memmem(text + pos, len - pos, sp[k], strlen(sp[k]));
            if (f && ((size_t)(f - text) < best ||
                      ((size_t)(f - text) == best && strlen(sp[k]) > blen))) {
                best = (size_t)(f - text);
                blen = strlen(sp[k]);
            }
        }
        utf8proc_uint8_t *seg = NULL;
        utf8proc_ssize_t sn = utf8proc_map((const utf8proc_uint8_t *)text + pos,
                                           (utf8proc_ssize_t)(best - pos), &seg,
                                           UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (sn < 0)
            return -1;
        *keep = realloc(*keep, (*n_keep + 1) * sizeof **keep);
        (*keep)[(*n_keep)++] = (char *)seg;
        size_t off = 0;
        while (off < (size_t)sn) {
            int rc = pcre2_match(re, seg, (size_t)sn, off, 0, md, NULL);
            if (rc < 0)
                return -1;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (ov[0] != off || ov[1] <= off)
                return -1; /* both patterns match every character */
            if (n_rw == cap_rw) {
                cap_rw = cap_rw ? 2 * cap_rw : 1024;
                rw = realloc(rw, cap_rw * sizeof *rw);
            }
            rw[n_rw++] = (raw_word){(const char *)seg + off, ov[1] - off};
            off = ov[1];
        }
        if (best == len)
            break;
        pos = best + blen;
    }
    qsort(rw, n_rw, sizeof *rw, cmp_raw);
    out->n = 0;
    for (size_t i = 0; i < n_rw; i++) {
        if (i > 0 && cmp_raw(&rw[i], &rw[i - 1]) == 0) {
            out->w[out->n - 1].c++;
            continue;
        }
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 1024;
            out->w = realloc(out->w, out->cap * sizeof *out->w);
        }
        nword *w = &out->w[out->n++];
        w->n = rw[i].n;
        w->s = malloc(w->n * sizeof *w->s);
        for (size_t j = 0; j < w->n; j++)
            w->s[j] = (unsigned char)rw[i].p[j];
        w->c = 1;
    }
    free(rw);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return 0;
}

/* Every step: count all pairs in a dense table, take the largest count
 * (ties: smallest left id, then right id), merge it everywhere. */
static size_t naive_merges(naive *nv, size_t n_merges, int32_t (*out)[2], int64_t *counts)
{
    size_t V = 256 + n_merges;
    int64_t *pc = malloc(V * V * sizeof *pc);
    size_t done = 0;
    for (; done < n_merges; done++) {
        memset(pc, 0, V * V * sizeof *pc);
        for (size_t i = 0; i < nv->n; i++)
            for (size_t j = 0; j + 1 < nv->w[i].n; j++)
                pc[(size_t)nv->w[i].s[j] * V + (size_t)nv->w[i].s[j + 1]] += nv->w[i].c;
        size_t best = 0;
        for (size_t k = 1; k < V * V; k++)
            if (pc[k] > pc[best])
                best = k; /* strict: the first (smallest a, then b) wins ties */
        if (pc[best] == 0)
            break;
        int32_t a = (int32_t)(best / V), b = (int32_t)(best % V), id = 256 + (int32_t)done;
        out[done][0] = a;
        out[done][1] = b;
        counts[done] = pc[best];
        for (size_t i = 0; i < nv->n; i++) {
            nword *w = &nv->w[i];
            size_t k = 0;
            for (size_t j = 0; j < w->n;) {
                if (j + 1 < w->n && w->s[j] == a && w->s[j + 1] == b) {
                    w->s[k++] = id;
                    j += 2;
                } else {
                    w->s[k++] = w->s[j++];
                }
            }
            w->n = k;
        }
    }
    free(pc);
    return done;
}

/* Synthetic text: syllable words, capitals, digits, punctuation runs,
 * contractions, runs of spaces / tabs / newlines (also before a line
 * starting with text: the places where batches are cut), CRLF, precomposed
 * and decomposed accents (NFC joins them), curly quotes, CJK, special
 * tokens. */
static char *synthetic_text(size_t target, size_t *len)
{
    static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi",
                                "qu", "the", "and", "ing", "er", "st"};
    static const char *extra[] = {
        "caf\xc3\xa9", "cafe\xcc\x81", "\xe2\x80\x9cquoted\xe2\x80\x9d", "it's",
        "WE'LL", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "12345", "3.14", "--",
        "...", "<|endoftext|>", "<|im_start|>", "na\xc3\xafve", "\xc2\xa0x"};
    static const char *gaps[] = {" ", " ", " ", " ", "  ", "\n", "\n\n", "   \n",
                                 "\t", "\r\n", " \n  ", "\n\n\n", ", ", ". "};
    uint64_t r = 88172645463325252ull;
    kvl_strbuf b = {0};
    while (b.n < target) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        unsigned x = (unsigned)(r >> 11);
        if (x % 11 == 0) {
            kvl_strbuf_puts(&b, extra[(x / 11) % 14], NULL);
        } else {
            int n = 1 + (int)(x % 3);
            for (int i = 0; i < n; i++) {
                const char *s = syl[(x >> (4 * i + 2)) % 14];
                if (i == 0 && (x >> 20) % 7 == 0) {
                    char up[8];
                    snprintf(up, sizeof up, "%s", s);
                    up[0] = (char)(up[0] - 32);
                    kvl_strbuf_puts(&b, up, NULL);
                } else {
                    kvl_strbuf_puts(&b, s, NULL);
                }
            }
        }
        kvl_strbuf_puts(&b, gaps[(x >> 24) % 14], NULL);
    }
    *len = b.n;
    return b.s;
}

static void test_against_naive(void)
{
    size_t len;
    char *text = synthetic_text(400000, &len);
    const char *sp[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    enum { K = 150 };
    for (int pat = 0; pat < 2; pat++) {
        const char *name = pat ? "gpt2" : "qwen";
        naive nv = {0};
        char **keep;
        size_t n_keep;
        int rc = naive_words(text, len, kvl_bpe_pretokenizer_pattern(name), sp, 3, &nv,
                             &keep, &n_keep);
        CHECK(rc == 0, "naive pre-tokenisation failed");
        int64_t total = 0;
        for (size_t i = 0; i < nv.n; i++)
            total += nv.w[i].c;
        int32_t (*ref)[2] = malloc(K * sizeof *ref);
        int64_t *refc = malloc(K * sizeof *refc);
        size_t n_ref = naive_merges(&nv, K, ref, refc);
        CHECK(n_ref == K, "naive: only %zu merges", n_ref);

        kvl_bpe_train_options o = {0};
        o.vocab_size = 256 + K + 3;
        o.pretokenizer = name;
        o.n_threads = 2;
        /* 50 kB batches: many batch cuts, several pieces per batch */
        kvl_bpe_model *m = train_text(&o, text, len, 50000);
        if (m) {
            CHECK(m->stats.words == total && m->stats.unique_words == (int64_t)nv.n,
                  "%s: %lld/%lld pre-tokens, naive %lld/%zu", name,
                  (long long)m->stats.words, (long long)m->stats.unique_words,
                  (long long)total, nv.n);
            CHECK(m->n_merges == n_ref, "%s: %zu merges", name, m->n_merges);
            size_t bad = 0;
            for (size_t i = 0; i < m->n_merges && i < n_ref; i++)
                if (m->merges[i].a != ref[i][0] || m->merges[i].b != ref[i][1] ||
                    m->merges[i].count != refc[i] || m->merges[i].result != 256 + (int32_t)i)
                    if (bad++ == 0)
                        CHECK(0, "%s: merge %zu is (%d, %d) x%lld, naive (%d, %d) x%lld",
                              name, i, m->merges[i].a, m->merges[i].b,
                              (long long)m->merges[i].count, ref[i][0], ref[i][1],
                              (long long)refc[i]);
            CHECK(bad == 0, "%s: %zu merges differ from the naive trainer", name, bad);
        }
        kvl_bpe_model_free(m);

        /* the same with one thread and the default batch: same merges */
        o.n_threads = 1;
        m = train_text(&o, text, len, 0);
        if (m) {
            size_t bad = m->n_merges == n_ref ? 0 : 1;
            for (size_t i = 0; !bad && i < n_ref; i++)
                bad += m->merges[i].a != ref[i][0] || m->merges[i].b != ref[i][1];
            CHECK(bad == 0, "%s: one thread differs", name);
        }
        kvl_bpe_model_free(m);

        for (size_t i = 0; i < nv.n; i++)
            free(nv.w[i].s);
        free(nv.w);
        for (size_t i = 0; i < n_keep; i++)
            free(keep[i]);
        free(keep);
        free(ref);
        free(refc);
    }
    free(text);
}

/* ---- 5. files: plain, zstd, errors ---------------------------------------- */

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static int same_merges(const kvl_bpe_model *a, const kvl_bpe_model *b)
{
    if (a->n_merges != b->n_merges)
        return 0;
    for (size_t i = 0; i < a->n_merges; i++)
        if (a->merges[i].a != b->merges[i].a || a->merges[i].b != b->merges[i].b)
            return 0;
    return 1;
}

static void test_files(void)
{
    size_t len;
    char *text = synthetic_text(200000, &len);
    kvl_bpe_train_options o = {0};
    o.vocab_size = 400;
    kvl_bpe_model *ref = train_text(&o, text, len, 0);

    /* zstd: two frames (the halves compressed separately) */
    const char *plain = kvt_temp_path(".txt");
    const char *zst = kvt_temp_path(".zst");
    size_t half = len / 2, cap = ZSTD_compressBound(len) + 64;
    char *z = malloc(cap);
    size_t z1 = ZSTD_compress(z, cap, text, half, 3);
    size_t z2 = ZSTD_compress(z + z1, cap - z1, text + half, len - half, 3);
    CHECK(!ZSTD_isError(z1) && !ZSTD_isError(z2), "zstd");
    CHECK(write_file(plain, text, len) == 0 && write_file(zst, z, z1 + z2) == 0, "write");
    kvl_error err = {0};
    const char *files[2] = {plain, NULL};
    kvl_bpe_model *m = NULL;
    CHECK_OK(kvl_bpe_train_files(&o, files, 1, &m, &err), &err);
    CHECK(m && ref && same_merges(m, ref) && m->stats.bytes == (int64_t)len,
          "plain file differs from memory");
    kvl_bpe_model_free(m);
    m = NULL;
    files[0] = zst;
    CHECK_OK(kvl_bpe_train_files(&o, files, 1, &m, &err), &err);
    CHECK(m && ref && same_merges(m, ref) && m->stats.bytes == (int64_t)len,
          "zstd file differs from memory");
    kvl_bpe_model_free(m);
    m = NULL;

    /* truncated zstd */
    const char *cut = kvt_temp_path(".zst");
    CHECK(write_file(cut, z, z1 + z2 - 9) == 0, "write");
    files[0] = cut;
    kvl_status st = kvl_bpe_train_files(&o, files, 1, &m, &err);
    CHECK(st == KVL_ERR_FORMAT && strstr(err.message, cut), "truncated: %s %s",
          kvl_status_name(st), err.message);

    /* invalid UTF-8 at byte 6 */
    const char *bad = kvt_temp_path(".txt");
    CHECK(write_file(bad, "hello \xff world", 13) == 0, "write");
    files[0] = bad;
    st = kvl_bpe_train_files(&o, files, 1, &m, &err);
    CHECK(st == KVL_ERR_FORMAT && strstr(err.message, bad) &&
              strstr(err.message, "byte 6"),
          "invalid UTF-8: %s %s", kvl_status_name(st), err.message);
    /* a surrogate (ED A0 80) and an overlong "/" (C0 AF) are invalid too */
    CHECK(write_file(bad, "ab\xed\xa0\x80", 5) == 0, "write");
    st = kvl_bpe_train_files(&o, files, 1, &m, &err);
    CHECK(st == KVL_ERR_FORMAT && strstr(err.message, "byte 2"), "surrogate: %s",
          err.message);
    CHECK(write_file(bad, "\xc0\xaf", 2) == 0, "write");
    st = kvl_bpe_train_files(&o, files, 1, &m, &err);
    CHECK(st == KVL_ERR_FORMAT, "overlong: %s", err.message);

    files[0] = "/nonexistent/corpus.txt";
    st = kvl_bpe_train_files(&o, files, 1, &m, &err);
    CHECK(st == KVL_ERR_IO && strstr(err.message, "/nonexistent/corpus.txt"), "missing: %s",
          err.message);
    CHECK(m == NULL, "no model on failure");

    /* two files are two texts: "ab" + "c" never form a pre-token "abc" */
    const char *f1 = kvt_temp_path(".txt"), *f2 = kvt_temp_path(".txt");
    CHECK(write_file(f1, "ab", 2) == 0 && write_file(f2, "c", 1) == 0, "write");
    const char *two[2] = {f1, f2};
    o.vocab_size = 1000;
    CHECK_OK(kvl_bpe_train_files(&o, two, 2, &m, &err), &err);
    CHECK(m && m->n_merges == 1 && tok_is(m, 256, "ab") && m->stats.words == 2,
          "two files: %zu merges", m ? m->n_merges : 0);
    kvl_bpe_model_free(m);

    free(z);
    free(text);
    kvl_bpe_model_free(ref);
}

static void test_bad_options(void)
{
    kvl_error err = {0};
    kvl_bpe_model *m = NULL;
    const char *t[1] = {"some text"};
    kvl_bpe_train_options o = {0};
    o.vocab_size = 258; /* < 256 + 3 default specials */
    CHECK(kvl_bpe_train_texts(&o, t, NULL, 1, 0, &m, &err) == KVL_ERR_ARG, "small vocab");
    o.vocab_size = 300;
    o.pretokenizer = "llama";
    CHECK(kvl_bpe_train_texts(&o, t, NULL, 1, 0, &m, &err) == KVL_ERR_ARG &&
              strstr(err.message, "llama"),
          "pretokenizer: %s", err.message);
    o.pretokenizer = NULL;
    const char *dup[] = {"<a>", "<a>"};
    o.special_tokens = dup;
    o.n_special = 2;
    CHECK(kvl_bpe_train_texts(&o, t, NULL, 1, 0, &m, &err) == KVL_ERR_ARG, "duplicate");
    const char *nl[] = {"<a>\n"};
    o.special_tokens = nl;
    o.n_special = 1;
    CHECK(kvl_bpe_train_texts(&o, t, NULL, 1, 0, &m, &err) == KVL_ERR_ARG, "newline");
    const char *byte[] = {"\xc4\xa0"}; /* the spelling of byte 0x20 */
    o.special_tokens = byte;
    CHECK(kvl_bpe_train_texts(&o, t, NULL, 1, 0, &m, &err) == KVL_ERR_ARG, "byte token");
    const char *empty[] = {""};
    o.special_tokens = empty;
    CHECK(kvl_bpe_train_texts(&o, t, NULL, 1, 0, &m, &err) == KVL_ERR_ARG, "empty");
    o.special_tokens = NULL;
    o.n_special = 0;
    CHECK(kvl_bpe_train_texts(&o, t, NULL, 0, 0, &m, &err) == KVL_ERR_ARG, "no texts");
    o.min_frequency = -1;
    CHECK(kvl_bpe_train_texts(&o, t, NULL, 1, 0, &m, &err) == KVL_ERR_ARG, "min freq");
    CHECK(m == NULL, "no model");
    CHECK(kvl_tokenizer_train_bpe(&o, t, 1, NULL, NULL, &err) == KVL_ERR_ARG, "no out_dir");
}

/* ---- 6. the shared corpus --------------------------------------------------- */

/* The first `n` bytes of the decompressed file, cut after the last '\n'. */
static char *zst_prefix(const char *path, size_t n, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    ZSTD_DCtx *z = ZSTD_createDCtx();
    char *out = malloc(n);
    size_t in_cap = ZSTD_DStreamInSize();
    char *in = malloc(in_cap);
    ZSTD_outBuffer ob = {out, n, 0};
    while (ob.pos < ob.size) {
        size_t k = fread(in, 1, in_cap, f);
        if (k == 0)
            break;
        ZSTD_inBuffer ib = {in, k, 0};
        while (ib.pos < ib.size && ob.pos < ob.size)
            if (ZSTD_isError(ZSTD_decompressStream(z, &ob, &ib)))
                ob.size = ob.pos; /* stop */
    }
    fclose(f);
    free(in);
    ZSTD_freeDCtx(z);
    size_t m = ob.pos;
    while (m > 0 && out[m - 1] != '\n')
        m--;
    *len = m;
    return out;
}

/* Compares the first merges of m with {"merges": [[a, b], ...]} in the
 * file (byte-level spellings); returns how many were compared. */
static size_t compare_reference(const kvl_bpe_model *m, const char *path, size_t limit)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    CHECK(j != NULL, "%s: %s", path, je.text);
    json_t *arr = json_object_get(j, "merges");
    size_t n = json_array_size(arr), bad = 0;
    if (limit && n > limit)
        n = limit;
    kvl_strbuf a = {0}, b = {0};
    for (size_t i = 0; i < n && i < m->n_merges; i++) {
        a.n = b.n = 0;
        kvl_bpe_byte_level(m->bytes + m->tok_off[m->merges[i].a], m->tok_len[m->merges[i].a],
                           &a, NULL);
        kvl_bpe_byte_level(m->bytes + m->tok_off[m->merges[i].b], m->tok_len[m->merges[i].b],
                           &b, NULL);
        json_t *p = json_array_get(arr, i);
        if (strcmp(a.s, nz(json_string_value(json_array_get(p, 0)))) != 0 ||
            strcmp(b.s, nz(json_string_value(json_array_get(p, 1)))) != 0)
            if (bad++ == 0)
                CHECK(0, "%s: merge %zu is (%s, %s), reference (%s, %s)", path, i, a.s,
                      b.s, json_string_value(json_array_get(p, 0)),
                      json_string_value(json_array_get(p, 1)));
    }
    CHECK(bad == 0 && m->n_merges >= n, "%s: %zu of %zu merges differ", path, bad, n);
    kvl_strbuf_free(&a);
    kvl_strbuf_free(&b);
    json_decref(j);
    return n;
}

static int test_shared_corpus(void)
{
    const char *path = kvt_shared_path("corpus/train-00.txt.zst");
    if (!kvt_file_exists(path)) {
        printf("SKIP (partly): %s absent\n", path);
        return 0;
    }
    size_t n5, n2;
    char *c5 = zst_prefix(path, 5000000, &n5);
    char *c2 = zst_prefix(path, 2000000, &n2);
    CHECK(c5 && c2 && n5 == 4999999 && n2 == 1999965, "prefix lengths %zu %zu", n5, n2);
    if (!c5 || !c2) {
        free(c5);
        free(c2);
        return 0;
    }
    kvl_bpe_train_options o = {0};
    o.vocab_size = 4096;
    double t0 = now();
    kvl_bpe_model *m = train_text(&o, c5, n5, 0);
    double dt = now() - t0;
    if (m) {
        printf("5 MB -> vocab 4096: %.2f s (counting %.2f s, merging %.2f s), "
               "%lld pre-tokens, %lld distinct\n",
               dt, m->stats.seconds_count, m->stats.seconds_merge,
               (long long)m->stats.words, (long long)m->stats.unique_words);
        CHECK(m->stats.vocab_size == 4096 && m->n_tokens == 4093, "vocab %d",
              m->stats.vocab_size);
        size_t k = compare_reference(
            m, kvt_source_path("tests/fixtures/tokenizers/trained/reference_merges_5m.json"), 0);
        CHECK(k == 200, "compared %zu merges with the 5 MB reference", k);
    }
    kvl_bpe_model_free(m);

    /* the committed fixture's training run: all 765 merges against the
     * naive reference */
    o.vocab_size = 1024;
    m = train_text(&o, c2, n2, 0);
    if (m) {
        CHECK(m->n_merges == 765, "%zu merges", m->n_merges);
        size_t k = compare_reference(
            m, kvt_source_path("tests/fixtures/tokenizers/trained/reference_merges.json"), 0);
        CHECK(k == 765, "compared %zu merges with the 2 MB reference", k);
    }
    kvl_bpe_model_free(m);
    free(c5);
    free(c2);
    return 1;
}

int main(void)
{
    test_hand_corpus();
    test_specials();
    test_written_files();
    test_against_naive();
    test_files();
    test_bad_options();
    test_shared_corpus();
    return kvt_finish();
}
