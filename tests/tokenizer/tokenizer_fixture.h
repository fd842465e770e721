/*
 * Shared by the tokenizer conformance tests (test_hf_conformance.c,
 * test_sp_conformance.c): reading the zstd-compressed JSON Lines fixtures
 * that tests/reference/make_tokenizer_fixtures.py writes, rebuilding its val
 * selection from shared/corpus/val.txt.zst, and comparing kvlab's encodings
 * and decodings with the recorded ones.  Header-only (every function is
 * static inline) because tests/CMakeLists.txt links one .c per test.
 *
 * Fixture layout (see the script's docstring): line 1 is a header object
 * with "count", "bytes", "rule", "vocab_size", ...; every other line is a
 * record {"i", "len", "fnv", "ids", "rt", ...} for text number i.
 */
#ifndef KVL_TEST_TOKENIZER_FIXTURE_H
#define KVL_TEST_TOKENIZER_FIXTURE_H

#include "test_util.h"

#include <jansson.h>
#include <zstd.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The val selection rule, as in make_tokenizer_fixtures.py (VAL_RULE). */
#define TF_VAL_EVERY 7
#define TF_VAL_MIN_BYTES 1000000
/* Mismatches printed in full per check before only counting. */
#define TF_SHOW 5

static inline double tf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline uint32_t tf_fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* The whole file into a malloc'ed buffer (NUL-terminated); NULL on error
 * (reason printed). */
static inline char *tf_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "cannot read %s\n", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Decompresses a zstd file (streaming: the frame need not record its
 * size) into a malloc'ed NUL-terminated buffer; NULL on error. */
static inline char *tf_read_zst(const char *path, size_t *len)
{
    size_t in_len = 0;
    char *in = tf_read_file(path, &in_len);
    if (!in)
        return NULL;
    ZSTD_DStream *ds = ZSTD_createDStream();
    size_t cap = in_len * 4 + (1 << 16), n = 0;
    char *out = malloc(cap);
    ZSTD_inBuffer ib = {in, in_len, 0};
    int ok = ds && out && !ZSTD_isError(ZSTD_initDStream(ds));
    while (ok) {
        if (cap - n < (1 << 16) + 1) {
            char *o = realloc(out, cap * 2);
            if (!o) {
                ok = 0;
                break;
            }
            out = o;
            cap *= 2;
        }
        ZSTD_outBuffer ob = {out + n, cap - n - 1, 0};
        size_t ret = ZSTD_decompressStream(ds, &ob, &ib);
        n += ob.pos;
        if (ZSTD_isError(ret)) {
            fprintf(stderr, "%s: zstd: %s\n", path, ZSTD_getErrorName(ret));
            ok = 0;
        } else if (ib.pos == ib.size && ret == 0) {
            break; /* every frame decoded and flushed */
        } else if (ib.pos == ib.size && ob.pos < ob.size) {
            fprintf(stderr, "%s: truncated zstd data\n", path);
            ok = 0;
        }
    }
    ZSTD_freeDStream(ds);
    free(in);
    if (!ok) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

/* ---- texts ----------------------------------------------------------------- */

typedef struct tf_text {
    const char *s; /* NUL-terminated (may point into a shared buffer) */
    size_t len;
} tf_text;

typedef struct tf_texts {
    tf_text *v;
    size_t n;
    size_t bytes;
    char *storage; /* owned buffer the texts point into, or NULL */
    json_t *json;  /* owned JSON the texts point into, or NULL */
} tf_texts;

static inline void tf_texts_free(tf_texts *t)
{
    free(t->v);
    free(t->storage);
    json_decref(t->json);
    memset(t, 0, sizeof *t);
}

/*
 * The val selection of make_tokenizer_fixtures.py: split the decompressed
 * corpus on '\n', number the non-empty pieces 1, 2, 3, ..., take pieces 7,
 * 14, 21, ... until their byte lengths add up to >= 1,000,000.  Returns 0,
 * or -1 (reason printed).
 */
static inline int tf_val_select(const char *zst_path, tf_texts *out)
{
    memset(out, 0, sizeof *out);
    size_t len = 0;
    char *data = tf_read_zst(zst_path, &len);
    if (!data)
        return -1;
    size_t cap = 1024;
    out->v = malloc(cap * sizeof *out->v);
    out->storage = data;
    if (!out->v)
        return -1;
    size_t k = 0;
    char *p = data, *end = data + len;
    while (p < end && out->bytes < TF_VAL_MIN_BYTES) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        size_t n = (size_t)(e - p);
        if (n > 0 && ++k % TF_VAL_EVERY == 0) {
            if (out->n == cap) {
                tf_text *v = realloc(out->v, 2 * cap * sizeof *v);
                if (!v)
                    return -1;
                out->v = v;
                cap *= 2;
            }
            *e = '\0'; /* the '\n' (or the buffer's terminator) */
            out->v[out->n].s = p;
            out->v[out->n].len = n;
            out->n++;
            out->bytes += n;
        }
        p = e + 1;
    }
    if (out->bytes < TF_VAL_MIN_BYTES) {
        fprintf(stderr, "%s: only %zu selectable bytes\n", zst_path,
                out->bytes);
        return -1;
    }
    return 0;
}

/* The JSON list of strings at path (the torture set). */
static inline int tf_torture_load(const char *path, tf_texts *out)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    out->json = json_load_file(path, 0, &je);
    if (!out->json || !json_is_array(out->json)) {
        fprintf(stderr, "%s:%d: %s\n", path, je.line, je.text);
        return -1;
    }
    size_t n = json_array_size(out->json);
    out->v = calloc(n ? n : 1, sizeof *out->v);
    if (!out->v)
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(out->json, i);
        if (!json_is_string(s)) {
            fprintf(stderr, "%s: entry %zu is not a string\n", path, i);
            return -1;
        }
        out->v[i].s = json_string_value(s);
        out->v[i].len = json_string_length(s);
        out->bytes += out->v[i].len;
    }
    out->n = n;
    return 0;
}

/* ---- fixtures -------------------------------------------------------------- */

typedef struct tf_fixture {
    const char *path;
    json_t *header;
    json_t **rec;
    size_t n;
} tf_fixture;

static inline void tf_fixture_free(tf_fixture *f)
{
    json_decref(f->header);
    for (size_t i = 0; i < f->n; i++)
        json_decref(f->rec[i]);
    free(f->rec);
    memset(f, 0, sizeof *f);
}

static inline int64_t tf_int(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* Every element an integer. */
static inline int tf_is_id_array(const json_t *a)
{
    if (!json_is_array(a))
        return 0;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_is_integer(json_array_get(a, i)))
            return 0;
    return 1;
}

/*
 * Reads and checks the structure of a fixture: the header names the
 * expected tokenizer and set, "count" records follow, numbered 0..count-1,
 * each with "len", "fnv", an integer array "ids" and a boolean "rt".
 * Every failed expectation is a CHECK failure; returns 0 when usable.
 */
static inline int tf_fixture_load(const char *path, const char *tokenizer,
                                  const char *set, tf_fixture *f)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    size_t len = 0;
    char *text = tf_read_zst(path, &len);
    CHECK(text != NULL, "cannot read fixture %s", path);
    if (!text)
        return -1;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    f->rec = calloc(lines + 1, sizeof *f->rec);
    int ok = f->rec != NULL;
    char *p = text, *end = text + len;
    size_t line_no = 0;
    while (ok && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        json_error_t je;
        json_t *obj = json_loadb(p, (size_t)(e - p), 0, &je);
        line_no++;
        if (!json_is_object(obj)) {
            fprintf(stderr, "%s line %zu: not a JSON object: %s\n", path,
                    line_no, je.text);
            json_decref(obj);
            ok = 0;
            break;
        }
        if (line_no == 1)
            f->header = obj;
        else
            f->rec[f->n++] = obj;
        p = e + 1;
    }
    free(text);
    CHECK(ok && f->header, "%s: unreadable (line %zu)", path, line_no);
    if (!ok || !f->header)
        return -1;
    const char *tn = json_string_value(json_object_get(f->header, "tokenizer"));
    const char *sn = json_string_value(json_object_get(f->header, "set"));
    CHECK(tf_int(f->header, "kvlab_tokenizer_fixture") == 1, "%s: format", path);
    CHECK(tn && strcmp(tn, tokenizer) == 0, "%s: tokenizer '%s'", path,
          tn ? tn : "(none)");
    CHECK(sn && strcmp(sn, set) == 0, "%s: set '%s'", path, sn ? sn : "(none)");
    CHECK(tf_int(f->header, "count") == (int64_t)f->n,
          "%s: header count %lld, %zu records", path,
          (long long)tf_int(f->header, "count"), f->n);
    size_t bad = 0;
    for (size_t i = 0; i < f->n; i++) {
        json_t *r = f->rec[i];
        int good = tf_int(r, "i") == (int64_t)i && tf_int(r, "len") >= 0 &&
                   tf_int(r, "fnv") >= 0 &&
                   tf_is_id_array(json_object_get(r, "ids")) &&
                   json_is_boolean(json_object_get(r, "rt"));
        if (!good && bad++ < TF_SHOW)
            fprintf(stderr, "%s: malformed record %zu\n", path, i);
    }
    CHECK(bad == 0, "%s: %zu malformed records", path, bad);
    return bad == 0 && tf_int(f->header, "count") == (int64_t)f->n ? 0 : -1;
}

/* The texts and the fixture's records describe the same texts (count,
 * bytes, per-record length and FNV-1a hash). */
static inline int tf_match_texts(const tf_fixture *f, const tf_texts *t)
{
    CHECK(f->n == t->n, "%s: %zu records, %zu texts", f->path, f->n, t->n);
    CHECK(tf_int(f->header, "bytes") == (int64_t)t->bytes,
          "%s: header bytes %lld, texts %zu", f->path,
          (long long)tf_int(f->header, "bytes"), t->bytes);
    size_t bad = 0;
    for (size_t i = 0; i < f->n && i < t->n; i++) {
        int same = tf_int(f->rec[i], "len") == (int64_t)t->v[i].len &&
                   tf_int(f->rec[i], "fnv") ==
                       (int64_t)tf_fnv1a(t->v[i].s, t->v[i].len);
        if (!same && bad++ < TF_SHOW)
            fprintf(stderr, "%s: record %zu is not the text \"%.60s\"\n",
                    f->path, i, t->v[i].s);
    }
    CHECK(bad == 0, "%s: %zu records do not match their texts", f->path, bad);
    return f->n == t->n && bad == 0 ? 0 : -1;
}

/* ---- comparing ------------------------------------------------------------- */

/* Text with control characters and non-ASCII bytes escaped, cut at 160
 * bytes. */
static inline void tf_print_text(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n && i < 160; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputs(n > 160 ? "\"..." : "\"", out);
}

static inline void tf_print_ids(FILE *out, const int32_t *v, size_t n)
{
    fputc('[', out);
    for (size_t i = 0; i < n && i < 48; i++)
        fprintf(out, i ? ", %d" : "%d", (int)v[i]);
    fputs(n > 48 ? ", ...]" : "]", out);
}

/* ids of a JSON array into a malloc'ed array (NULL + 0 for []). */
static inline int32_t *tf_ids(const json_t *a, size_t *n)
{
    *n = json_array_size(a);
    int32_t *v = malloc((*n ? *n : 1) * sizeof *v);
    if (!v)
        return NULL;
    for (size_t i = 0; i < *n; i++)
        v[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return v;
}

/* Counters of one kind of check over a set. */
typedef struct tf_stat {
    char what[64]; /* e.g. "qwen3 val: encode" */
    size_t checked, failed;
    double seconds; /* in kvl_tokenizer_encode_alloc */
} tf_stat;

static inline void tf_fail_head(tf_stat *st, size_t index, const tf_text *t)
{
    fprintf(stderr, "MISMATCH %s, text %zu: ", st->what, index);
    tf_print_text(stderr, t->s, t->len);
    fputc('\n', stderr);
}

/* kvl encode of t with flags == expected (a JSON id array).  When `got`
 * is given it receives kvlab's ids (malloc'ed, caller frees; NULL for
 * none) whenever the encode call succeeded, equal to the expected ones or
 * not; *called (if given) says whether it succeeded. */
static inline int tf_check_encode(kvl_tokenizer *tok, tf_stat *st,
                                  size_t index, const tf_text *t,
                                  unsigned flags, const json_t *expected,
                                  int32_t **got, size_t *n_got, int *called)
{
    size_t n_want = 0;
    int32_t *want = tf_ids(expected, &n_want);
    int32_t *ids = NULL;
    size_t n = 0;
    kvl_error err = {0};
    double t0 = tf_now();
    kvl_status s = kvl_tokenizer_encode_alloc(tok, t->s, t->len, flags, &ids,
                                              &n, &err);
    st->seconds += tf_now() - t0;
    int same = want && s == KVL_OK && n == n_want &&
               (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    st->checked++;
    if (!same && st->failed++ < TF_SHOW) {
        tf_fail_head(st, index, t);
        if (s != KVL_OK) {
            fprintf(stderr, "  error %s: %s\n", kvl_status_name(s),
                    err.message);
        } else {
            size_t first = 0;
            while (first < n && first < n_want && ids[first] == want[first])
                first++;
            fprintf(stderr, "  expected (%zu) ", n_want);
            tf_print_ids(stderr, want, n_want);
            fprintf(stderr, "\n  actual   (%zu) ", n);
            tf_print_ids(stderr, ids, n);
            fprintf(stderr, "\n  first difference at index %zu\n", first);
        }
    }
    free(want);
    if (called)
        *called = s == KVL_OK;
    if (got && s == KVL_OK) {
        *got = ids;
        *n_got = n;
    } else {
        free(ids);
    }
    return same;
}

/* kvl decode of ids with flags == expected text (len bytes). */
static inline int tf_check_decode(kvl_tokenizer *tok, tf_stat *st,
                                  size_t index, const tf_text *t,
                                  const int32_t *ids, size_t n,
                                  unsigned flags, const char *want,
                                  size_t want_len)
{
    char *text = NULL;
    size_t len = 0;
    kvl_error err = {0};
    kvl_status s = kvl_tokenizer_decode(tok, ids, n, flags, &text, &len, &err);
    int same = s == KVL_OK && text && len == want_len &&
               memcmp(text, want, len) == 0;
    st->checked++;
    if (!same && st->failed++ < TF_SHOW) {
        tf_fail_head(st, index, t);
        fprintf(stderr, "  ids ");
        tf_print_ids(stderr, ids, n);
        if (s != KVL_OK) {
            fprintf(stderr, "\n  error %s: %s\n", kvl_status_name(s),
                    err.message);
        } else {
            fprintf(stderr, "\n  expected ");
            tf_print_text(stderr, want, want_len);
            fprintf(stderr, "\n  actual   ");
            tf_print_text(stderr, text ? text : "", text ? len : 0);
            fputc('\n', stderr);
        }
    }
    kvl_free(text);
    return same;
}

/* decode(JSON ids) == expected string field of a record. */
static inline void tf_check_decode_json(kvl_tokenizer *tok, tf_stat *st,
                                        size_t index, const tf_text *t,
                                        const json_t *ids_json,
                                        unsigned flags, const json_t *want)
{
    size_t n = 0;
    int32_t *ids = tf_ids(ids_json, &n);
    if (ids && json_is_string(want))
        tf_check_decode(tok, st, index, t, ids, n, flags,
                        json_string_value(want), json_string_length(want));
    free(ids);
}

/* One CHECK per stat: all of them agreed. */
static inline void tf_report(const tf_stat *st)
{
    if (!st->checked)
        return;
    printf("%-46s %6zu checked, %zu differ\n", st->what, st->checked,
           st->failed);
    CHECK(st->failed == 0, "%s: %zu of %zu differ from the reference",
          st->what, st->failed, st->checked);
}

/* Concatenated kvl_tokenizer_decode_piece(previous id, id) over ids ==
 * want: the streaming contract ("concatenating the pieces gives the
 * text"), checked against the reference decoding. */
static inline void tf_check_pieces(kvl_tokenizer *tok, tf_stat *st,
                                   size_t index, const tf_text *t,
                                   const int32_t *ids, size_t n,
                                   const char *want, size_t want_len)
{
    size_t len = 0, bad_at = n;
    int ok = 1;
    for (size_t j = 0; j < n; j++) {
        const char *p = kvl_tokenizer_decode_piece(tok, j ? ids[j - 1] : -1,
                                                   ids[j]);
        size_t pl = p ? strlen(p) : 0;
        if (!p || len + pl > want_len || memcmp(want + len, p, pl) != 0) {
            ok = 0;
            bad_at = j;
            break;
        }
        len += pl;
    }
    ok = ok && len == want_len;
    st->checked++;
    if (!ok && st->failed++ < TF_SHOW) {
        tf_fail_head(st, index, t);
        fprintf(stderr, "  ids ");
        tf_print_ids(stderr, ids, n);
        fprintf(stderr, "\n  pieces stop matching the reference decoding ");
        tf_print_text(stderr, want, want_len);
        fprintf(stderr, " at id index %zu (byte %zu)\n", bad_at, len);
    }
}

/* What differs between the formats' fixtures. */
typedef struct tf_spec {
    const char *name;      /* "qwen3", "llama2"                            */
    const char *add_field; /* record field with KVL_ENCODE_ADD_SPECIAL ids */
    /* Extra encode flags for a text, or NULL: SentencePiece itself reads
     * "<s>" in a text as plain text, so such texts are compared with
     * KVL_ENCODE_PLAIN_SPECIAL. */
    unsigned (*text_flags)(const tf_text *t);
    /* "ids" are also what KVL_ENCODE_PLAIN_SPECIAL must give. */
    int ids_are_plain;
    /* >= 0: decode([bos] + ids, KVL_DECODE_SKIP_SPECIAL) == decode(ids). */
    int32_t bos;
} tf_spec;

enum { TF_ENC, TF_PLAIN, TF_ADD, TF_RT, TF_DEC, TF_DEC_SKIP, TF_BOS_SKIP,
       TF_PIECES, TF_N_STAT };

/*
 * Every check of a set (fixture f over texts t, already matched):
 *   encode(x)                      == "ids"
 *   encode(x, PLAIN_SPECIAL)       == "ids_plain" (or "ids", ids_are_plain)
 *   encode(x, ADD_SPECIAL)         == spec->add_field, where recorded
 *   decode(encode(x))              == x, where the reference round-trips
 *   decode("ids")                  == "dec" (or x where "rt")
 *   decode("ids", SKIP_SPECIAL)    == "dec_skip", where recorded
 *   decode([BOS] + "ids", SKIP)    == the same text (spec->bos >= 0)
 *   concatenated decode_piece      == the same text
 * Each kind of check is one CHECK (all agreed) after the loop; the first
 * TF_SHOW disagreements of each are printed in full.
 */
static inline void tf_run_set(kvl_tokenizer *tok, const tf_spec *spec,
                              const char *set, const tf_fixture *f,
                              const tf_texts *t)
{
    static const char *const names[TF_N_STAT] = {
        "encode", "encode plain-special", "encode add-special",
        "decode(encode(x)) == x", "decode(reference ids)",
        "decode skip-special", "decode [BOS]+ids skip-special",
        "decode_piece concatenation"};
    tf_stat st[TF_N_STAT];
    memset(st, 0, sizeof st);
    for (int k = 0; k < TF_N_STAT; k++)
        snprintf(st[k].what, sizeof st[k].what, "%s %s: %s", spec->name, set,
                 names[k]);
    size_t n_ids = 0, n_no_dec = 0;
    for (size_t i = 0; i < f->n && i < t->n; i++) {
        const json_t *r = f->rec[i];
        const tf_text *x = &t->v[i];
        unsigned extra = spec->text_flags ? spec->text_flags(x) : 0;
        const json_t *ids = json_object_get(r, "ids");
        n_ids += json_array_size(ids);
        int32_t *own = NULL;
        size_t n_own = 0;
        int encoded = 0;
        tf_check_encode(tok, &st[TF_ENC], i, x, extra, ids, &own, &n_own,
                        &encoded);
        if (spec->ids_are_plain && !extra)
            tf_check_encode(tok, &st[TF_PLAIN], i, x, KVL_ENCODE_PLAIN_SPECIAL,
                            ids, NULL, NULL, NULL);
        const json_t *plain = json_object_get(r, "ids_plain");
        if (plain)
            tf_check_encode(tok, &st[TF_PLAIN], i, x, KVL_ENCODE_PLAIN_SPECIAL,
                            plain, NULL, NULL, NULL);
        const json_t *add = json_object_get(r, spec->add_field);
        if (add)
            tf_check_encode(tok, &st[TF_ADD], i, x,
                            KVL_ENCODE_ADD_SPECIAL | extra, add, NULL, NULL,
                            NULL);
        int rt = json_is_true(json_object_get(r, "rt"));
        if (rt && encoded)
            tf_check_decode(tok, &st[TF_RT], i, x, own, n_own, 0, x->s,
                            x->len);
        free(own);

        const json_t *dec = json_object_get(r, "dec");
        const char *want = json_is_string(dec) ? json_string_value(dec)
                           : rt                ? x->s
                                               : NULL;
        size_t want_len = json_is_string(dec) ? json_string_length(dec)
                                              : x->len;
        if (!want) {
            n_no_dec++;
            continue;
        }
        size_t n = 0;
        int32_t *ref = tf_ids(ids, &n);
        if (!ref)
            continue;
        tf_check_decode(tok, &st[TF_DEC], i, x, ref, n, 0, want, want_len);
        tf_check_pieces(tok, &st[TF_PIECES], i, x, ref, n, want, want_len);
        const json_t *dec_skip = json_object_get(r, "dec_skip");
        if (dec_skip)
            tf_check_decode_json(tok, &st[TF_DEC_SKIP], i, x, ids,
                                 KVL_DECODE_SKIP_SPECIAL, dec_skip);
        if (spec->bos >= 0) {
            int32_t *with = malloc((n + 1) * sizeof *with);
            if (with) {
                with[0] = spec->bos;
                if (n)
                    memcpy(with + 1, ref, n * sizeof *ref);
                tf_check_decode(tok, &st[TF_BOS_SKIP], i, x, with, n + 1,
                                KVL_DECODE_SKIP_SPECIAL, want, want_len);
            }
            free(with);
        }
        free(ref);
    }
    CHECK(n_no_dec == 0, "%s %s: %zu records neither round-trip nor carry "
          "\"dec\"", spec->name, set, n_no_dec);
    for (int k = 0; k < TF_N_STAT; k++)
        tf_report(&st[k]);
    double mb = (double)t->bytes / 1e6;
    printf("%s %s: %zu texts, %.3f MB, %zu reference ids; kvlab encoded "
           "them in %.3f s (%.2f MB/s)\n",
           spec->name, set, t->n, mb, n_ids, st[TF_ENC].seconds,
           st[TF_ENC].seconds > 0 ? mb / st[TF_ENC].seconds : 0.0);
}

/* ---- a format's two sets ---------------------------------------------------- */

/*
 * The torture texts (tests/fixtures/tokenizers/torture.json) and a
 * format's two committed fixtures, <name>_torture.jsonl.zst and
 * <name>_val.jsonl.zst, as every conformance test reads them.  The paths
 * are kept here (not in kvt_source_path's ring): tf_fixture.path points at
 * them, so a tf_sets must stay where tf_sets_load filled it.
 */
typedef struct tf_sets {
    char torture_path[1024], val_path[1024];
    tf_texts torture;
    tf_fixture ft, fv;   /* torture and val fixtures                   */
    int ft_ok, fv_ok;    /* usable (ft: also matched to torture.json)  */
} tf_sets;

/* Reads the torture texts and both fixtures of `name` ("qwen3",
 * "llama2"), checks them (CHECKs) and matches the torture fixture to the
 * texts; prints the record counts. */
static inline void tf_sets_load(const char *name, tf_sets *s)
{
    memset(s, 0, sizeof *s);
    const char *torture_json =
        kvt_source_path("tests/fixtures/tokenizers/torture.json");
    int torture_ok = tf_torture_load(torture_json, &s->torture) == 0;
    CHECK(torture_ok, "cannot read %s", torture_json);
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/tokenizers/%s_torture.jsonl.zst",
             name);
    snprintf(s->torture_path, sizeof s->torture_path, "%s",
             kvt_source_path(rel));
    snprintf(rel, sizeof rel, "tests/fixtures/tokenizers/%s_val.jsonl.zst",
             name);
    snprintf(s->val_path, sizeof s->val_path, "%s", kvt_source_path(rel));
    s->ft_ok = tf_fixture_load(s->torture_path, name, "torture", &s->ft) == 0;
    s->fv_ok = tf_fixture_load(s->val_path, name, "val", &s->fv) == 0;
    if (s->ft_ok && torture_ok)
        s->ft_ok = tf_match_texts(&s->ft, &s->torture) == 0;
    printf("fixtures: %zu torture records, %zu val records (%s)\n", s->ft.n,
           s->fv.n,
           s->fv.header
               ? json_string_value(json_object_get(s->fv.header, "library"))
               : "?");
}

/* Without ../shared's tokenizer or corpus only the fixtures were checked:
 * kvt_skip's 77 when those checks passed, else -1 (kvt_finish reports the
 * failures). */
static inline int tf_sets_skip(const char *tokenizer, const char *corpus)
{
    if (kvt_failed)
        return -1;
    return kvt_skip("%s or %s absent (fixtures read and matched to "
                    "torture.json: %d checks passed)",
                    tokenizer, corpus, kvt_passed);
}

/* tf_run_set over the torture set, then over the val selection rebuilt
 * from corpus (checked against the val fixture first). */
static inline void tf_sets_run(kvl_tokenizer *tok, const tf_spec *spec,
                               const char *corpus, const tf_sets *s)
{
    if (s->ft_ok)
        tf_run_set(tok, spec, "torture", &s->ft, &s->torture);
    if (!s->fv_ok)
        return;
    tf_texts val;
    double t0 = tf_now();
    int val_ok = tf_val_select(corpus, &val) == 0;
    CHECK(val_ok, "cannot rebuild the val selection from %s", corpus);
    if (val_ok) {
        printf("val selection: %zu lines, %zu bytes (%.2f s)\n", val.n,
               val.bytes, tf_now() - t0);
        if (tf_match_texts(&s->fv, &val) == 0)
            tf_run_set(tok, spec, "val", &s->fv, &val);
    }
    tf_texts_free(&val);
}

static inline void tf_sets_free(tf_sets *s)
{
    tf_fixture_free(&s->ft);
    tf_fixture_free(&s->fv);
    tf_texts_free(&s->torture);
}

#endif
