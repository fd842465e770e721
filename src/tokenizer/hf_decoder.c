/*
 * tokenizer.json decoders.  Decoding gives every id its token string (an
 * added token: its content) and runs the decoder steps over that list, as
 * tokenizers' Decoder::decode_chain does; the result is the concatenation.
 *
 *   ByteLevel      all tokens -> one: each character through GPT-2's
 *                  character -> byte map (a token with a character outside
 *                  the map keeps its own bytes)
 *   Metaspace      replacement -> ' ', dropped in the first token unless
 *                  prepend_scheme is "never"
 *   ByteFallback   runs of "<0xXX>" tokens -> one token of those bytes
 *   Fuse           all tokens -> one
 *   Strip          up to `start` leading and `stop` trailing `content`
 *                  characters removed from each token
 *   Replace        pattern (string or regex) -> content in each token
 *   BPEDecoder     suffix -> ' ' (-> "" in the last token)
 *   Sequence       the steps of each, in order
 *
 * Unlike tokenizers, which returns a Rust String, no step repairs invalid
 * UTF-8 (ByteLevel / ByteFallback would write U+FFFD): decode yields the
 * raw bytes, so pieces of a streamed decode concatenate to the full text.
 */
#include "core/error.h"
#include "tokenizer/hf_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

static kvl_status get_size(json_t *j, const char *key, const char *path,
                           size_t *out, kvl_error *err)
{
    json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v)) {
        *out = 0;
        return KVL_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': decoder Strip: \"%s\" must be a "
                        "non-negative integer", path, key);
    *out = (size_t)json_integer_value(v);
    return KVL_OK;
}

static kvl_status parse_one(json_t *j, const char *path, hf_decoder *d,
                            int depth, kvl_error *err)
{
    if (!j || json_is_null(j))
        return KVL_OK;
    if (!json_is_object(j))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': a decoder must be an object or null", path);
    const char *type = hf_json_type(j);
    if (!type)
        return kvl_fail(err, KVL_ERR_FORMAT, "file '%s': a decoder has no \"type\"",
                        path);
    d->present = 1;
    kvl_status st;
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "decoders");
        if (!json_is_array(list))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': decoder Sequence needs a \"decoders\" array",
                            path);
        if (depth > 8)
            return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                            "file '%s': decoder Sequences nested too deep", path);
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) {
            if ((st = parse_one(x, path, d, depth + 1, err)) != KVL_OK)
                return st;
        }
        return KVL_OK;
    }
    if (d->n >= HF_MAX_STEPS)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED, "file '%s': more than %d decoders",
                        path, HF_MAX_STEPS);
    hf_dec_step *s = &d->step[d->n];
    memset(s, 0, sizeof *s);
    if (strcmp(type, "ByteLevel") == 0) {
        s->kind = HF_D_BYTELEVEL;
    } else if (strcmp(type, "ByteFallback") == 0) {
        s->kind = HF_D_BYTEFALLBACK;
    } else if (strcmp(type, "Fuse") == 0) {
        s->kind = HF_D_FUSE;
    } else if (strcmp(type, "Metaspace") == 0) {
        s->kind = HF_D_METASPACE;
        const char *scheme;
        int legacy_prefix;
        if ((st = hf_json_char(j, "replacement", "\xe2\x96\x81", path,
                               "decoder Metaspace", s->ch, &s->ch_len, err)) != KVL_OK ||
            (st = hf_json_opt_bool(j, "add_prefix_space", 1, path,
                                   "decoder Metaspace", &legacy_prefix, err)) != KVL_OK ||
            (st = hf_json_opt_string(j, "prepend_scheme", path, "decoder Metaspace",
                                     &scheme, NULL, err)) != KVL_OK)
            return st;
        s->prepend = HF_PREPEND_ALWAYS;
        if (scheme && strcmp(scheme, "never") == 0)
            s->prepend = HF_PREPEND_NEVER;
        else if (scheme && strcmp(scheme, "first") == 0)
            s->prepend = HF_PREPEND_FIRST;
        else if (scheme && strcmp(scheme, "always") != 0)
            return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                            "file '%s': decoder Metaspace: prepend_scheme '%s' is "
                            "not supported", path, scheme);
        if (!legacy_prefix)
            s->prepend = HF_PREPEND_NEVER;
    } else if (strcmp(type, "Strip") == 0) {
        s->kind = HF_D_STRIP;
        if ((st = hf_json_char(j, "content", " ", path, "decoder Strip", s->ch,
                               &s->ch_len, err)) != KVL_OK ||
            (st = get_size(j, "start", path, &s->start, err)) != KVL_OK ||
            (st = get_size(j, "stop", path, &s->stop, err)) != KVL_OK)
            return st;
    } else if (strcmp(type, "Replace") == 0) {
        s->kind = HF_D_REPLACE;
        if ((st = hf_json_string_copy(j, "content", path, "decoder Replace",
                                      &s->str, &s->str_len, err)) != KVL_OK)
            return st;
        d->n++; /* owned from here on */
        return hf_json_pattern(j, path, "decoder Replace", &s->re, err);
    } else if (strcmp(type, "BPEDecoder") == 0) {
        s->kind = HF_D_BPE;
        const char *c;
        size_t n;
        if ((st = hf_json_opt_string(j, "suffix", path, "decoder BPEDecoder", &c, &n,
                                     err)) != KVL_OK)
            return st;
        if (!c) {
            c = "</w>";
            n = 4;
        }
        s->str = malloc(n + 1);
        if (!s->str)
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        memcpy(s->str, c, n);
        s->str[n] = '\0';
        s->str_len = n;
    } else {
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': decoder type '%s' is not supported", path, type);
    }
    d->n++;
    return KVL_OK;
}

kvl_status hf_decoder_parse(json_t *j, const char *path, hf_decoder *out,
                            kvl_error *err)
{
    memset(out, 0, sizeof *out);
    kvl_status st = parse_one(j, path, out, 0, err);
    if (st != KVL_OK)
        hf_decoder_free(out);
    return st;
}

void hf_decoder_free(hf_decoder *d)
{
    for (int i = 0; i < d->n; i++) {
        free(d->step[i].str);
        hf_regex_free(&d->step[i].re);
    }
    d->n = 0;
}

/* ------------------------------------------------------------------------ */
/* Token lists                                                               */
/* ------------------------------------------------------------------------ */

kvl_status hf_toklist_push(hf_toklist *l, const char *s, size_t n,
                           kvl_error *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        size_t *o = realloc(l->off, cap * sizeof *o);
        if (o)
            l->off = o;
        size_t *len = realloc(l->len, cap * sizeof *len);
        if (len)
            l->len = len;
        if (!o || !len)
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory decoding");
        l->cap = cap;
    }
    l->off[l->n] = l->data.n;
    l->len[l->n] = n;
    kvl_status st = kvl_strbuf_append(&l->data, s, n, err);
    if (st == KVL_OK)
        l->n++;
    return st;
}

/* Appends to the last token (which must exist). */
static kvl_status toklist_extend(hf_toklist *l, const char *s, size_t n,
                                 kvl_error *err)
{
    l->len[l->n - 1] += n;
    return kvl_strbuf_append(&l->data, s, n, err);
}

void hf_toklist_free(hf_toklist *l)
{
    kvl_strbuf_free(&l->data);
    free(l->off);
    free(l->len);
    memset(l, 0, sizeof *l);
}

static void toklist_clear(hf_toklist *l)
{
    l->n = 0;
    l->data.n = 0;
}

#define TOK(l, i) ((l)->data.s + (l)->off[i])

/* ------------------------------------------------------------------------ */
/* Steps                                                                     */
/* ------------------------------------------------------------------------ */

static kvl_status dec_bytelevel(const hf_bytemap *bm, const hf_toklist *in,
                                hf_toklist *out, kvl_error *err)
{
    kvl_status st = hf_toklist_push(out, "", 0, err);
    for (size_t i = 0; i < in->n && st == KVL_OK; i++) {
        const char *t = TOK(in, i);
        size_t n = in->len[i], j = 0;
        /* all characters in the map? */
        while (j < n) {
            int32_t cp;
            size_t len = hf_utf8_next(t, n, j, &cp);
            if (cp < 0 || cp >= 324 || bm->rev[cp] < 0)
                break;
            j += len;
        }
        if (j < n) {
            st = toklist_extend(out, t, n, err);
            continue;
        }
        for (j = 0; j < n && st == KVL_OK;) {
            int32_t cp;
            j += hf_utf8_next(t, n, j, &cp);
            char b = (char)bm->rev[cp];
            st = toklist_extend(out, &b, 1, err);
        }
    }
    return st;
}

static kvl_status dec_metaspace(const hf_dec_step *s, const hf_toklist *in,
                                hf_toklist *out, kvl_error *err)
{
    kvl_status st = KVL_OK;
    for (size_t i = 0; i < in->n && st == KVL_OK; i++) {
        const char *t = TOK(in, i);
        size_t n = in->len[i], last = 0;
        int drop = i == 0 && s->prepend != HF_PREPEND_NEVER;
        st = hf_toklist_push(out, "", 0, err);
        for (size_t j = 0; j + s->ch_len <= n && st == KVL_OK;) {
            if (memcmp(t + j, s->ch, s->ch_len) != 0) {
                j++;
                continue;
            }
            st = toklist_extend(out, t + last, j - last, err);
            if (st == KVL_OK && !drop)
                st = toklist_extend(out, " ", 1, err);
            j += s->ch_len;
            last = j;
        }
        if (st == KVL_OK)
            st = toklist_extend(out, t + last, n - last, err);
    }
    return st;
}

/* "<0xHH>" -> 0..255 (Rust's u8::from_str_radix(HH, 16)), else -1. */
static int byte_token(const char *t, size_t n)
{
    if (n != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>')
        return -1;
    if (t[3] == '+') {
        int v = hf_hexval(t[4]);
        return v;
    }
    int hi = hf_hexval(t[3]), lo = hf_hexval(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static kvl_status dec_bytefallback(const hf_toklist *in, hf_toklist *out,
                                   kvl_error *err)
{
    kvl_status st = KVL_OK;
    int in_bytes = 0;
    for (size_t i = 0; i < in->n && st == KVL_OK; i++) {
        const char *t = TOK(in, i);
        int b = byte_token(t, in->len[i]);
        if (b >= 0) {
            char c = (char)b;
            if (!in_bytes) {
                st = hf_toklist_push(out, &c, 1, err);
                in_bytes = 1;
            } else {
                st = toklist_extend(out, &c, 1, err);
            }
            continue;
        }
        in_bytes = 0;
        st = hf_toklist_push(out, t, in->len[i], err);
    }
    return st;
}

static kvl_status dec_fuse(const hf_toklist *in, hf_toklist *out, kvl_error *err)
{
    kvl_status st = hf_toklist_push(out, "", 0, err);
    for (size_t i = 0; i < in->n && st == KVL_OK; i++)
        st = toklist_extend(out, TOK(in, i), in->len[i], err);
    return st;
}

static kvl_status dec_strip(const hf_dec_step *s, const hf_toklist *in,
                            hf_toklist *out, kvl_error *err)
{
    kvl_status st = KVL_OK;
    for (size_t i = 0; i < in->n && st == KVL_OK; i++) {
        const char *t = TOK(in, i);
        size_t b = 0, e = in->len[i];
        for (size_t k = 0; k < s->start && e - b >= s->ch_len &&
                           memcmp(t + b, s->ch, s->ch_len) == 0; k++)
            b += s->ch_len;
        for (size_t k = 0; k < s->stop && e - b >= s->ch_len &&
                           memcmp(t + e - s->ch_len, s->ch, s->ch_len) == 0; k++)
            e -= s->ch_len;
        st = hf_toklist_push(out, t + b, e - b, err);
    }
    return st;
}

static kvl_status dec_replace(const hf_dec_step *s, pcre2_match_data *md,
                              const hf_toklist *in, hf_toklist *out,
                              kvl_error *err)
{
    kvl_status st = KVL_OK;
    for (size_t i = 0; i < in->n && st == KVL_OK; i++) {
        if ((st = hf_toklist_push(out, "", 0, err)) != KVL_OK)
            break;
        size_t before = out->data.n;
        st = hf_regex_replace(&s->re, md, TOK(in, i), in->len[i], s->str,
                              s->str_len, &out->data, err);
        out->len[out->n - 1] = out->data.n - before;
    }
    return st;
}

static kvl_status dec_bpe(const hf_dec_step *s, const hf_toklist *in,
                          hf_toklist *out, kvl_error *err)
{
    kvl_status st = KVL_OK;
    for (size_t i = 0; i < in->n && st == KVL_OK; i++) {
        const char *t = TOK(in, i);
        size_t n = in->len[i], last = 0;
        const char *with = i + 1 == in->n ? "" : " ";
        st = hf_toklist_push(out, "", 0, err);
        for (size_t j = 0; s->str_len && j + s->str_len <= n && st == KVL_OK;) {
            if (memcmp(t + j, s->str, s->str_len) != 0) {
                j++;
                continue;
            }
            st = toklist_extend(out, t + last, j - last, err);
            if (st == KVL_OK)
                st = toklist_extend(out, with, strlen(with), err);
            j += s->str_len;
            last = j;
        }
        if (st == KVL_OK)
            st = toklist_extend(out, t + last, n - last, err);
    }
    return st;
}

kvl_status hf_decode_tokens(const hf_decoder *d, const hf_bytemap *bm,
                            hf_toklist *in, kvl_strbuf *out, kvl_error *err)
{
    hf_toklist other = {0};
    hf_toklist *cur = in, *nxt = &other;
    pcre2_match_data *md = NULL;
    kvl_status st = KVL_OK;
    for (int i = 0; i < d->n && st == KVL_OK; i++) {
        const hf_dec_step *s = &d->step[i];
        toklist_clear(nxt);
        switch (s->kind) {
        case HF_D_BYTELEVEL: st = dec_bytelevel(bm, cur, nxt, err); break;
        case HF_D_METASPACE: st = dec_metaspace(s, cur, nxt, err); break;
        case HF_D_BYTEFALLBACK: st = dec_bytefallback(cur, nxt, err); break;
        case HF_D_FUSE: st = dec_fuse(cur, nxt, err); break;
        case HF_D_STRIP: st = dec_strip(s, cur, nxt, err); break;
        case HF_D_BPE: st = dec_bpe(s, cur, nxt, err); break;
        case HF_D_REPLACE:
            if (!md && !(md = pcre2_match_data_create(16, NULL))) {
                st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory decoding");
                break;
            }
            st = dec_replace(s, md, cur, nxt, err);
            break;
        }
        hf_toklist *t = cur;
        cur = nxt;
        nxt = t;
    }
    for (size_t i = 0; i < cur->n && st == KVL_OK; i++)
        st = kvl_strbuf_append(out, TOK(cur, i), cur->len[i], err);
    pcre2_match_data_free(md);
    hf_toklist_free(&other);
    return st;
}
