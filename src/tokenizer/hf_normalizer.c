/*
 * tokenizer.json normalizers: NFC, NFD, NFKC, NFKD (utf8proc), Lowercase,
 * Strip, StripAccents, Prepend, Replace (string or regex), ByteLevel and
 * Sequence; null means none.
 *
 * Unicode normal forms are computed only where they can change anything:
 * the text is cut before every ASCII character that starts a run (ASCII
 * characters are starters that never combine with what precedes them, so
 * such boundaries are stable under every normal form), runs of ASCII are
 * copied, and each remaining chunk (an ASCII base, if any, plus the
 * non-ASCII characters after it) goes through utf8proc.  Invalid UTF-8 in
 * a chunk leaves that chunk unchanged.
 *
 * StripAccents drops every combining mark (General_Category M: Mn, Mc, Me),
 * as unicode-normalization's is_combining_mark does.
 *
 * Lowercase maps each character on its own, as tokenizers does with Rust's
 * char::to_lowercase: utf8proc's lower-case mapping plus the one
 * unconditional special case U+0130 -> "i\u0307" (so no final-sigma rule:
 * "ΟΔΟΣ" -> "οδοσ").
 */
#include "core/error.h"
#include "tokenizer/hf_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

static kvl_status parse_one(json_t *j, const char *path, hf_normalizer *out,
                            int depth, kvl_error *err)
{
    if (!j || json_is_null(j))
        return KVL_OK;
    if (!json_is_object(j))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': a normalizer must be an object or null", path);
    const char *type = hf_json_type(j);
    if (!type)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': a normalizer has no \"type\"", path);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "normalizers");
        if (!json_is_array(list))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': normalizer Sequence needs a "
                            "\"normalizers\" array", path);
        if (depth > 8)
            return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                            "file '%s': normalizer Sequences nested too deep", path);
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) {
            kvl_status st = parse_one(x, path, out, depth + 1, err);
            if (st != KVL_OK)
                return st;
        }
        return KVL_OK;
    }
    if (out->n >= HF_MAX_STEPS)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': more than %d normalizers", path, HF_MAX_STEPS);
    hf_norm_step *s = &out->step[out->n];
    memset(s, 0, sizeof *s);
    kvl_status st = KVL_OK;
    if (strcmp(type, "NFC") == 0) {
        s->kind = HF_N_NFC;
    } else if (strcmp(type, "NFD") == 0) {
        s->kind = HF_N_NFD;
    } else if (strcmp(type, "NFKC") == 0) {
        s->kind = HF_N_NFKC;
    } else if (strcmp(type, "NFKD") == 0) {
        s->kind = HF_N_NFKD;
    } else if (strcmp(type, "Lowercase") == 0) {
        s->kind = HF_N_LOWERCASE;
    } else if (strcmp(type, "StripAccents") == 0) {
        s->kind = HF_N_STRIP_ACCENTS;
    } else if (strcmp(type, "ByteLevel") == 0) {
        s->kind = HF_N_BYTELEVEL;
    } else if (strcmp(type, "Strip") == 0) {
        s->kind = HF_N_STRIP;
        if ((st = hf_json_opt_bool(j, "strip_left", 0, path, "normalizer Strip",
                                   &s->left, err)) != KVL_OK ||
            (st = hf_json_opt_bool(j, "strip_right", 0, path, "normalizer Strip",
                                   &s->right, err)) != KVL_OK)
            return st;
    } else if (strcmp(type, "Prepend") == 0) {
        s->kind = HF_N_PREPEND;
        if ((st = hf_json_string_copy(j, "prepend", path, "normalizer Prepend",
                                      &s->str, &s->str_len, err)) != KVL_OK)
            return st;
    } else if (strcmp(type, "Replace") == 0) {
        s->kind = HF_N_REPLACE;
        if ((st = hf_json_string_copy(j, "content", path, "normalizer Replace",
                                      &s->str, &s->str_len, err)) != KVL_OK)
            return st;
        out->n++; /* owned from here on (freed with the normalizer) */
        return hf_json_pattern(j, path, "normalizer Replace", &s->re, err);
    } else {
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': normalizer type '%s' is not supported",
                        path, type);
    }
    out->n++;
    return KVL_OK;
}

kvl_status hf_normalizer_parse(json_t *j, const char *path,
                               hf_normalizer *out, kvl_error *err)
{
    memset(out, 0, sizeof *out);
    kvl_status st = parse_one(j, path, out, 0, err);
    if (st != KVL_OK)
        hf_normalizer_free(out);
    return st;
}

void hf_normalizer_free(hf_normalizer *n)
{
    for (int i = 0; i < n->n; i++) {
        free(n->step[i].str);
        hf_regex_free(&n->step[i].re);
    }
    n->n = 0;
}

/* ------------------------------------------------------------------------ */
/* Applying                                                                  */
/* ------------------------------------------------------------------------ */

static kvl_status unicode_form(utf8proc_option_t opts, const char *s,
                               size_t n, kvl_strbuf *dst, int *changed,
                               kvl_error *err)
{
    size_t i = 0;
    while (i < n && (unsigned char)s[i] < 0x80)
        i++;
    if (i == n) {
        *changed = 0;
        return KVL_OK;
    }
    *changed = 1;
    kvl_status st;
    size_t done = 0;
    for (;;) {
        size_t j = i; /* first non-ASCII byte at or after i */
        while (j < n && (unsigned char)s[j] < 0x80)
            j++;
        if (j == n)
            break;
        size_t r = j > done ? j - 1 : j; /* include an ASCII base */
        if ((st = kvl_strbuf_append(dst, s + done, r - done, err)) != KVL_OK)
            return st;
        size_t e = j;
        while (e < n && (unsigned char)s[e] >= 0x80)
            e++;
        utf8proc_uint8_t *res = NULL;
        utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s + r,
                                          (utf8proc_ssize_t)(e - r), &res, opts);
        if (m < 0)
            st = kvl_strbuf_append(dst, s + r, e - r, err);
        else
            st = kvl_strbuf_append(dst, (const char *)res, (size_t)m, err);
        free(res);
        if (st != KVL_OK)
            return st;
        done = i = e;
    }
    return kvl_strbuf_append(dst, s + done, n - done, err);
}

static kvl_status lowercase(const char *s, size_t n, kvl_strbuf *dst,
                            int *changed, kvl_error *err)
{
    size_t i = 0;
    while (i < n && (unsigned char)s[i] < 0x80 && !(s[i] >= 'A' && s[i] <= 'Z'))
        i++;
    if (i == n) {
        *changed = 0;
        return KVL_OK;
    }
    *changed = 1;
    kvl_status st = kvl_strbuf_append(dst, s, i, err);
    while (st == KVL_OK && i < n) {
        int32_t cp;
        size_t len = hf_utf8_next(s, n, i, &cp);
        char buf[8];
        size_t bn;
        if (cp < 0) {
            st = kvl_strbuf_append(dst, s + i, len, err);
        } else if (cp < 0x80) {
            buf[0] = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
            st = kvl_strbuf_append(dst, buf, 1, err);
        } else if (cp == 0x130) {
            st = kvl_strbuf_append(dst, "i\xcc\x87", 3, err);
        } else {
            bn = hf_utf8_put((uint32_t)utf8proc_tolower(cp), buf);
            st = kvl_strbuf_append(dst, buf, bn, err);
        }
        i += len;
    }
    return st;
}

static kvl_status strip_accents(const char *s, size_t n, kvl_strbuf *dst,
                                int *changed, kvl_error *err)
{
    size_t i = 0;
    while (i < n && (unsigned char)s[i] < 0x80)
        i++;
    if (i == n) {
        *changed = 0;
        return KVL_OK;
    }
    *changed = 1;
    kvl_status st = kvl_strbuf_append(dst, s, i, err);
    while (st == KVL_OK && i < n) {
        int32_t cp;
        size_t len = hf_utf8_next(s, n, i, &cp);
        utf8proc_category_t c = cp < 0 ? UTF8PROC_CATEGORY_CN : utf8proc_category(cp);
        if (c != UTF8PROC_CATEGORY_MN && c != UTF8PROC_CATEGORY_MC &&
            c != UTF8PROC_CATEGORY_ME)
            st = kvl_strbuf_append(dst, s + i, len, err);
        i += len;
    }
    return st;
}

/* One step from (s, n) into *o / *on: either a sub-range of s or dst. */
static kvl_status apply_step(const hf_norm_step *step, const hf_bytemap *bm,
                             pcre2_match_data *md, const char *s, size_t n,
                             kvl_strbuf *dst, const char **o, size_t *on,
                             kvl_error *err)
{
    int changed = 1;
    kvl_status st = KVL_OK;
    dst->n = 0;
    *o = s;
    *on = n;
    switch (step->kind) {
    case HF_N_NFC:
        st = unicode_form(UTF8PROC_STABLE | UTF8PROC_COMPOSE, s, n, dst, &changed, err);
        break;
    case HF_N_NFD:
        st = unicode_form(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, s, n, dst, &changed, err);
        break;
    case HF_N_NFKC:
        st = unicode_form(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, s, n,
                          dst, &changed, err);
        break;
    case HF_N_NFKD:
        st = unicode_form(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, s,
                          n, dst, &changed, err);
        break;
    case HF_N_LOWERCASE:
        st = lowercase(s, n, dst, &changed, err);
        break;
    case HF_N_STRIP_ACCENTS:
        st = strip_accents(s, n, dst, &changed, err);
        break;
    case HF_N_STRIP: {
        size_t b = 0, e = n;
        int32_t cp;
        if (step->left)
            while (b < e) {
                size_t len = hf_utf8_next(s, e, b, &cp);
                if (!hf_is_whitespace(cp))
                    break;
                b += len;
            }
        if (step->right)
            while (e > b) {
                size_t p = hf_utf8_prev(s, e);
                hf_utf8_next(s, e, p, &cp);
                if (!hf_is_whitespace(cp))
                    break;
                e = p;
            }
        *o = s + b;
        *on = e - b;
        return KVL_OK;
    }
    case HF_N_PREPEND:
        if (n == 0)
            return KVL_OK;
        if ((st = kvl_strbuf_append(dst, step->str, step->str_len, err)) == KVL_OK)
            st = kvl_strbuf_append(dst, s, n, err);
        break;
    case HF_N_REPLACE:
        st = hf_regex_replace(&step->re, md, s, n, step->str, step->str_len, dst, err);
        break;
    case HF_N_BYTELEVEL:
        for (size_t i = 0; i < n && st == KVL_OK; i++) {
            unsigned char c = (unsigned char)s[i];
            st = kvl_strbuf_append(dst, bm->utf8[c], bm->len[c], err);
        }
        break;
    }
    if (st != KVL_OK)
        return st;
    if (changed) {
        if (!dst->s && (st = kvl_strbuf_append(dst, "", 0, err)) != KVL_OK)
            return st;
        *o = dst->s;
        *on = dst->n;
    }
    return KVL_OK;
}

kvl_status hf_normalize(const hf_normalizer *nz, const hf_bytemap *bm,
                        pcre2_match_data *md, const char *s, size_t len,
                        kvl_strbuf scratch[2], const char **out,
                        size_t *out_len, kvl_error *err)
{
    const char *cur = s;
    size_t cur_n = len;
    int which = 0;
    for (int i = 0; i < nz->n; i++) {
        kvl_strbuf *dst = &scratch[which];
        const char *o;
        size_t on;
        kvl_status st = apply_step(&nz->step[i], bm, md, cur, cur_n, dst, &o, &on, err);
        if (st != KVL_OK)
            return st;
        if (o == dst->s && dst->s)
            which ^= 1; /* the next step writes into the other buffer */
        cur = o;
        cur_n = on;
    }
    *out = cur;
    *out_len = cur_n;
    return KVL_OK;
}
