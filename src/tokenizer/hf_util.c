/* Helpers shared by the tokenizer.json engine: UTF-8, character classes,
 * the GPT-2 byte map, PCRE2 wrappers and small jansson accessors. */
#include "core/error.h"
#include "tokenizer/hf_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */
/* ------------------------------------------------------------------------ */

size_t hf_utf8_next(const char *str, size_t n, size_t i, int32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[i];
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        *cp = -1;
        return 1;
    }
    if (n - i < len) {
        *cp = -1;
        return 1;
    }
    for (size_t k = 1; k < len; k++) {
        unsigned d = s[i + k];
        if ((d & 0xC0) != 0x80) {
            *cp = -1;
            return 1;
        }
        v = (v << 6) | (d & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = -1;
        return 1;
    }
    *cp = (int32_t)v;
    return len;
}

size_t hf_utf8_prev(const char *s, size_t end)
{
    /* Walk back over at most 3 continuation bytes and check that the
     * character found really ends at `end`. */
    size_t i = end - 1;
    size_t k = 0;
    while (i > 0 && k < 3 && ((unsigned char)s[i] & 0xC0) == 0x80) {
        i--;
        k++;
    }
    int32_t cp;
    if (hf_utf8_next(s, end, i, &cp) == end - i)
        return i;
    return end - 1;
}

size_t hf_utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int hf_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hf_utf8_single(const char *s, size_t n, int32_t *cp)
{
    if (n == 0)
        return 0;
    return hf_utf8_next(s, n, 0, cp) == n && *cp >= 0;
}

int hf_is_whitespace(int32_t cp)
{
    if (cp < 0)
        return 0;
    if (cp <= 0x7F)
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

int hf_is_word(int32_t cp)
{
    if (cp < 0)
        return 0;
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
               (cp >= '0' && cp <= '9') || cp == '_';
    if (cp == 0x200C || cp == 0x200D || (cp >= 0x24B6 && cp <= 0x24E9))
        return 1;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

uint64_t hf_hash(const char *s, size_t n)
{
    /* FNV-1a over 8-byte words, then a final mix. */
    uint64_t h = 1469598103934665603ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 1099511628211ull;
        h ^= h >> 32;
    }
    for (; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    h ^= h >> 31;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

/* ------------------------------------------------------------------------ */
/* GPT-2 byte map                                                            */
/* ------------------------------------------------------------------------ */

void hf_byte_codepoints(uint32_t cp[256])
{
    /* Printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for
     * themselves; the other 68 bytes, in increasing order, become
     * U+0100, U+0101, ... */
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
                   b >= 0xAE;
        cp[b] = keep ? (uint32_t)b : next++;
    }
}

void hf_bytemap_init(hf_bytemap *m)
{
    uint32_t cps[256];
    hf_byte_codepoints(cps);
    for (int i = 0; i < 324; i++)
        m->rev[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = cps[b];
        char tmp[4];
        size_t n = hf_utf8_put(cp, tmp);
        memcpy(m->utf8[b], tmp, n);
        m->len[b] = (uint8_t)n;
        m->cp[b] = (uint16_t)cp;
        m->rev[cp] = (int16_t)b;
    }
}

/* ------------------------------------------------------------------------ */
/* PCRE2                                                                     */
/* ------------------------------------------------------------------------ */

kvl_status hf_regex_compile(hf_regex *re, const char *pattern, size_t len,
                            int literal, const char *path, const char *what,
                            kvl_error *err)
{
    int code;
    PCRE2_SIZE at;
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    opts |= literal ? PCRE2_LITERAL : PCRE2_UCP; /* UCP is refused with LITERAL */
    re->code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &code, &at, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': %s: pattern \"%.*s\" does not compile "
                        "(at offset %zu: %s)",
                        path, what, (int)(len > 200 ? 200 : len), pattern,
                        (size_t)at, (const char *)msg);
    }
    /* JIT is an optimisation: without it pcre2_match interprets. */
    (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
    return KVL_OK;
}

void hf_regex_free(hf_regex *re)
{
    if (re && re->code) {
        pcre2_code_free(re->code);
        re->code = NULL;
    }
}

void hf_finder_init(hf_finder *f, const hf_regex *re, const char *s,
                    size_t n, pcre2_match_data *md)
{
    f->code = re->code;
    f->s = s;
    f->n = n;
    f->pos = 0;
    f->have_last = 0;
    f->last_end = 0;
    f->md = md;
}

int hf_finder_next(hf_finder *f, size_t *b, size_t *e, kvl_error *err)
{
    for (;;) {
        if (f->pos > f->n)
            return 0;
        int rc = pcre2_match(f->code, (PCRE2_SPTR)f->s, f->n, f->pos, 0,
                             f->md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(f->code, (PCRE2_SPTR)f->s, f->n, f->pos,
                             PCRE2_NO_JIT, f->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return -(int)kvl_fail(err, KVL_ERR_RANGE,
                                  "kvl_tokenizer_encode: regex matching "
                                  "failed on %zu bytes of text: %s",
                                  f->n, (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(f->md);
        size_t ms = ov[0], me = ov[1];
        if (ms > me || me > f->n)
            return -(int)kvl_fail(err, KVL_ERR_INTERNAL,
                                  "regex returned a bad match");
        if (ms == me && f->have_last && f->last_end == me) {
            /* no empty match right after the previous one: step over one
             * character and search again */
            if (f->pos >= f->n) {
                f->pos = f->n + 1;
                return 0;
            }
            int32_t cp;
            f->pos += hf_utf8_next(f->s, f->n, f->pos, &cp);
            continue;
        }
        f->pos = me;
        f->have_last = 1;
        f->last_end = me;
        *b = ms;
        *e = me;
        return 1;
    }
}

kvl_status hf_regex_replace(const hf_regex *re, pcre2_match_data *md,
                            const char *s, size_t n, const char *content,
                            size_t content_len, kvl_strbuf *out,
                            kvl_error *err)
{
    hf_finder f;
    hf_finder_init(&f, re, s, n, md);
    size_t last = 0, b = 0, e = 0;
    kvl_status st;
    int r;
    while ((r = hf_finder_next(&f, &b, &e, err)) == 1) {
        if ((st = kvl_strbuf_append(out, s + last, b - last, err)) != KVL_OK ||
            (st = kvl_strbuf_append(out, content, content_len, err)) != KVL_OK)
            return st;
        last = e;
    }
    if (r < 0)
        return (kvl_status)-r;
    return kvl_strbuf_append(out, s + last, n - last, err);
}

/* ------------------------------------------------------------------------ */
/* jansson accessors                                                         */
/* ------------------------------------------------------------------------ */

const char *hf_json_type(json_t *obj)
{
    json_t *t = json_object_get(obj, "type");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

kvl_status hf_json_opt_string(json_t *obj, const char *key, const char *path,
                              const char *where, const char **s, size_t *len,
                              kvl_error *err)
{
    json_t *v = json_object_get(obj, key);
    *s = NULL;
    if (len)
        *len = 0;
    if (!v || json_is_null(v))
        return KVL_OK;
    if (!json_is_string(v))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %s: \"%s\" must be a string", path, where,
                        key);
    *s = json_string_value(v);
    if (len)
        *len = json_string_length(v);
    return KVL_OK;
}

kvl_status hf_json_string_copy(json_t *obj, const char *key, const char *path,
                               const char *where, char **out, size_t *len,
                               kvl_error *err)
{
    const char *s;
    size_t n;
    kvl_status st = hf_json_opt_string(obj, key, path, where, &s, &n, err);
    if (st != KVL_OK)
        return st;
    if (!s)
        return kvl_fail(err, KVL_ERR_FORMAT, "file '%s': %s needs \"%s\"",
                        path, where, key);
    char *p = malloc(n + 1);
    if (!p)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    memcpy(p, s, n);
    p[n] = '\0';
    *out = p;
    *len = n;
    return KVL_OK;
}

kvl_status hf_json_opt_bool(json_t *obj, const char *key, int dflt,
                            const char *path, const char *where, int *out,
                            kvl_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return KVL_OK;
    }
    if (!json_is_boolean(v))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %s: \"%s\" must be true or false", path,
                        where, key);
    *out = json_is_true(v);
    return KVL_OK;
}

kvl_status hf_json_pattern(json_t *obj, const char *path, const char *where,
                           hf_regex *re, kvl_error *err)
{
    json_t *p = json_object_get(obj, "pattern");
    if (!json_is_object(p))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %s: \"pattern\" must be an object "
                        "{\"String\": ...} or {\"Regex\": ...}",
                        path, where);
    json_t *s = json_object_get(p, "String");
    json_t *r = json_object_get(p, "Regex");
    if (json_is_string(s))
        return hf_regex_compile(re, json_string_value(s), json_string_length(s),
                                1, path, where, err);
    if (json_is_string(r))
        return hf_regex_compile(re, json_string_value(r), json_string_length(r),
                                0, path, where, err);
    return kvl_fail(err, KVL_ERR_FORMAT,
                    "file '%s': %s: \"pattern\" needs a \"String\" or "
                    "\"Regex\" string",
                    path, where);
}

kvl_status hf_json_char(json_t *obj, const char *key, const char *dflt,
                        const char *path, const char *where, char out[8],
                        size_t *len, kvl_error *err)
{
    const char *s;
    size_t n;
    kvl_status st = hf_json_opt_string(obj, key, path, where, &s, &n, err);
    if (st != KVL_OK)
        return st;
    if (!s) {
        if (!dflt)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': %s: \"%s\" is missing", path, where,
                            key);
        s = dflt;
        n = strlen(dflt);
    }
    int32_t cp;
    if (!hf_utf8_single(s, n, &cp))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %s: \"%s\" must be a single character, "
                        "got \"%.*s\"",
                        path, where, key, (int)(n > 40 ? 40 : n), s);
    memcpy(out, s, n);
    out[n] = '\0';
    *len = n;
    return KVL_OK;
}
