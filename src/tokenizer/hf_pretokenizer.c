/*
 * tokenizer.json pre-tokenizers, compiled into a flat list of steps:
 *
 *   Split{pattern, behavior, invert}     SPLIT (PCRE2; a String pattern is
 *                                        a literal)
 *   ByteLevel{add_prefix_space,          PREFIX_SPACE (each piece not
 *             use_regex}                 starting with ' ' gets one), SPLIT
 *                                        with GPT-2's pattern (Isolated),
 *                                        BYTEMAP
 *   Metaspace{replacement,               METASPACE: ' ' -> replacement,
 *             prepend_scheme, split}     prepend (always / first: only the
 *                                        piece at offset 0 of the input /
 *                                        never), cut before each
 *                                        replacement (MergedWithNext)
 *   Digits{individual_digits}            SPLIT \p{N}, Isolated / Contiguous
 *   Punctuation{behavior}                SPLIT one punctuation character
 *   WhitespaceSplit                      SPLIT one White_Space char, Removed
 *   Whitespace                           SPLIT \w+|[^\w\s]+, invert, Removed
 *   BertPreTokenizer                     WhitespaceSplit then Punctuation
 *   CharDelimiterSplit{delimiter}        SPLIT the character, Removed
 *   Sequence{pretokenizers}              the steps of each, in order
 *
 * Each step acts on every piece the previous one produced, exactly as
 * tokenizers' PreTokenizedString::split does; pieces are processed depth
 * first (equivalent, since every step looks at one piece at a time) and
 * empty pieces are dropped.  Delimiter behaviours follow tokenizers'
 * NormalizedString::split.
 */
#include "core/error.h"
#include "tokenizer/hf_internal.h"

#include <stdlib.h>
#include <string.h>

#define GPT2_PATTERN \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
/* Rust's char::is_whitespace (White_Space) */
#define WS_CHARS \
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
    "\\x{202F}\\x{205F}\\x{3000}"
/* Rust regex's \w */
#define WORD_CHARS "\\p{L}\\p{M}\\p{Nd}\\p{Nl}\\p{Pc}\\x{200C}\\x{200D}\\x{24B6}-\\x{24E9}"
/* char::is_ascii_punctuation || Unicode punctuation */
#define PUNCT_CLASS \
    "[\\p{P}\\x{21}-\\x{2F}\\x{3A}-\\x{40}\\x{5B}-\\x{60}\\x{7B}-\\x{7E}]"

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

static kvl_status new_step(hf_pretok *p, const char *path, hf_pre_kind kind,
                           hf_pre_step **out, kvl_error *err)
{
    if (p->n >= HF_MAX_STEPS)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': more than %d pre-tokenizer steps", path,
                        HF_MAX_STEPS);
    hf_pre_step *s = &p->step[p->n++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    *out = s;
    return KVL_OK;
}

static kvl_status split_step(hf_pretok *p, const char *path, const char *re,
                             int literal, hf_behavior b, int invert,
                             const char *what, kvl_error *err)
{
    hf_pre_step *s = NULL;
    kvl_status st = new_step(p, path, HF_P_SPLIT, &s, err);
    if (st != KVL_OK)
        return st;
    s->behavior = b;
    s->invert = invert;
    return hf_regex_compile(&s->re, re, strlen(re), literal, path, what, err);
}

static kvl_status parse_behavior(json_t *j, const char *path,
                                 const char *where, hf_behavior dflt,
                                 hf_behavior *out, kvl_error *err)
{
    const char *b;
    kvl_status st = hf_json_opt_string(j, "behavior", path, where, &b, NULL, err);
    if (st != KVL_OK)
        return st;
    if (!b)
        *out = dflt;
    else if (strcmp(b, "Removed") == 0)
        *out = HF_B_REMOVED;
    else if (strcmp(b, "Isolated") == 0)
        *out = HF_B_ISOLATED;
    else if (strcmp(b, "MergedWithPrevious") == 0)
        *out = HF_B_MERGED_PREV;
    else if (strcmp(b, "MergedWithNext") == 0)
        *out = HF_B_MERGED_NEXT;
    else if (strcmp(b, "Contiguous") == 0)
        *out = HF_B_CONTIGUOUS;
    else
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': %s: behavior '%s' is not supported", path,
                        where, b);
    return KVL_OK;
}

static kvl_status parse_one(json_t *j, const char *path, hf_pretok *p,
                            int depth, kvl_error *err)
{
    if (!j || json_is_null(j))
        return KVL_OK;
    if (!json_is_object(j))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': a pre_tokenizer must be an object or null",
                        path);
    const char *type = hf_json_type(j);
    if (!type)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': a pre_tokenizer has no \"type\"", path);
    kvl_status st;
    hf_pre_step *s = NULL;
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "pretokenizers");
        if (!json_is_array(list))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': pre_tokenizer Sequence needs a "
                            "\"pretokenizers\" array", path);
        if (depth > 8)
            return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                            "file '%s': pre_tokenizer Sequences nested too deep",
                            path);
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) {
            if ((st = parse_one(x, path, p, depth + 1, err)) != KVL_OK)
                return st;
        }
        return KVL_OK;
    }
    if (strcmp(type, "Split") == 0) {
        hf_behavior b;
        int invert;
        if ((st = parse_behavior(j, path, "pre_tokenizer Split", HF_B_REMOVED,
                                 &b, err)) != KVL_OK ||
            (st = hf_json_opt_bool(j, "invert", 0, path, "pre_tokenizer Split",
                                   &invert, err)) != KVL_OK ||
            (st = new_step(p, path, HF_P_SPLIT, &s, err)) != KVL_OK)
            return st;
        s->behavior = b;
        s->invert = invert;
        return hf_json_pattern(j, path, "pre_tokenizer Split", &s->re, err);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        int prefix, use_regex;
        if ((st = hf_json_opt_bool(j, "add_prefix_space", 1, path,
                                   "pre_tokenizer ByteLevel", &prefix, err)) != KVL_OK ||
            (st = hf_json_opt_bool(j, "use_regex", 1, path,
                                   "pre_tokenizer ByteLevel", &use_regex, err)) != KVL_OK)
            return st;
        if (prefix && (st = new_step(p, path, HF_P_PREFIX_SPACE, &s, err)) != KVL_OK)
            return st;
        if (use_regex &&
            (st = split_step(p, path, GPT2_PATTERN, 0, HF_B_ISOLATED, 0,
                             "pre_tokenizer ByteLevel", err)) != KVL_OK)
            return st;
        return new_step(p, path, HF_P_BYTEMAP, &s, err);
    }
    if (strcmp(type, "Metaspace") == 0) {
        char rep[8];
        size_t rep_len;
        int split, legacy_prefix;
        const char *scheme;
        if ((st = hf_json_char(j, "replacement", "\xe2\x96\x81", path,
                               "pre_tokenizer Metaspace", rep, &rep_len, err)) != KVL_OK ||
            (st = hf_json_opt_bool(j, "split", 1, path, "pre_tokenizer Metaspace",
                                   &split, err)) != KVL_OK ||
            (st = hf_json_opt_bool(j, "add_prefix_space", 1, path,
                                   "pre_tokenizer Metaspace", &legacy_prefix,
                                   err)) != KVL_OK ||
            (st = hf_json_opt_string(j, "prepend_scheme", path,
                                     "pre_tokenizer Metaspace", &scheme, NULL,
                                     err)) != KVL_OK)
            return st;
        int prepend = HF_PREPEND_ALWAYS;
        if (scheme && strcmp(scheme, "first") == 0)
            prepend = HF_PREPEND_FIRST;
        else if (scheme && strcmp(scheme, "never") == 0)
            prepend = HF_PREPEND_NEVER;
        else if (scheme && strcmp(scheme, "always") != 0)
            return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                            "file '%s': pre_tokenizer Metaspace: prepend_scheme "
                            "'%s' is not supported", path, scheme);
        if (!legacy_prefix)
            prepend = HF_PREPEND_NEVER; /* add_prefix_space: false */
        if ((st = new_step(p, path, HF_P_METASPACE, &s, err)) != KVL_OK)
            return st;
        memcpy(s->rep, rep, sizeof rep);
        s->rep_len = rep_len;
        s->prepend = prepend;
        s->split = split;
        return KVL_OK;
    }
    if (strcmp(type, "Digits") == 0) {
        int individual;
        if ((st = hf_json_opt_bool(j, "individual_digits", 0, path,
                                   "pre_tokenizer Digits", &individual, err)) != KVL_OK)
            return st;
        return split_step(p, path, "\\p{N}", 0,
                          individual ? HF_B_ISOLATED : HF_B_CONTIGUOUS, 0,
                          "pre_tokenizer Digits", err);
    }
    if (strcmp(type, "Punctuation") == 0) {
        hf_behavior b;
        if ((st = parse_behavior(j, path, "pre_tokenizer Punctuation",
                                 HF_B_ISOLATED, &b, err)) != KVL_OK)
            return st;
        return split_step(p, path, PUNCT_CLASS, 0, b, 0,
                          "pre_tokenizer Punctuation", err);
    }
    if (strcmp(type, "WhitespaceSplit") == 0)
        return split_step(p, path, "[" WS_CHARS "]", 0, HF_B_REMOVED, 0,
                          "pre_tokenizer WhitespaceSplit", err);
    if (strcmp(type, "Whitespace") == 0)
        return split_step(p, path,
                          "[" WORD_CHARS "]+|[^" WORD_CHARS WS_CHARS "]+", 0,
                          HF_B_REMOVED, 1, "pre_tokenizer Whitespace", err);
    if (strcmp(type, "BertPreTokenizer") == 0) {
        if ((st = split_step(p, path, "[" WS_CHARS "]", 0, HF_B_REMOVED, 0,
                             "pre_tokenizer BertPreTokenizer", err)) != KVL_OK)
            return st;
        return split_step(p, path, PUNCT_CLASS, 0, HF_B_ISOLATED, 0,
                          "pre_tokenizer BertPreTokenizer", err);
    }
    if (strcmp(type, "CharDelimiterSplit") == 0) {
        char d[8];
        size_t dn;
        if ((st = hf_json_char(j, "delimiter", NULL, path,
                               "pre_tokenizer CharDelimiterSplit", d, &dn, err)) != KVL_OK ||
            (st = new_step(p, path, HF_P_SPLIT, &s, err)) != KVL_OK)
            return st;
        s->behavior = HF_B_REMOVED;
        return hf_regex_compile(&s->re, d, dn, 1, path,
                                "pre_tokenizer CharDelimiterSplit", err);
    }
    return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                    "file '%s': pre_tokenizer type '%s' is not supported", path,
                    type);
}

kvl_status hf_pretok_parse(json_t *j, const char *path, hf_pretok *out,
                           kvl_error *err)
{
    memset(out, 0, sizeof *out);
    kvl_status st = parse_one(j, path, out, 0, err);
    if (st != KVL_OK)
        hf_pretok_free(out);
    return st;
}

void hf_pretok_free(hf_pretok *p)
{
    for (int i = 0; i < p->n; i++)
        hf_regex_free(&p->step[i].re);
    p->n = 0;
}

/* ------------------------------------------------------------------------ */
/* Running                                                                   */
/* ------------------------------------------------------------------------ */

void hf_pre_run_init(hf_pre_run *r, const hf_pretok *p, int n_steps,
                     const hf_bytemap *bm, pcre2_match_data *md,
                     hf_piece_fn emit, void *ctx)
{
    memset(r, 0, sizeof *r);
    r->p = p;
    r->n_steps = n_steps;
    r->bm = bm;
    r->md = md;
    r->emit = emit;
    r->ctx = ctx;
}

void hf_pre_run_free(hf_pre_run *r)
{
    for (int i = 0; i < HF_MAX_STEPS; i++) {
        kvl_strbuf_free(&r->buf[i]);
        free(r->span[i]);
    }
}

static kvl_status push_span(hf_pre_run *r, int k, size_t *n, size_t b,
                            size_t e, int match, kvl_error *err)
{
    if (*n == r->span_cap[k]) {
        size_t cap = r->span_cap[k] ? 2 * r->span_cap[k] : 64;
        hf_span *p = realloc(r->span[k], cap * sizeof *p);
        if (!p)
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory splitting text");
        r->span[k] = p;
        r->span_cap[k] = cap;
    }
    r->span[k][(*n)++] = (hf_span){b, e, match};
    return KVL_OK;
}

static kvl_status run_split(hf_pre_run *r, int k, const hf_pre_step *step,
                            const char *s, size_t n, int at_origin,
                            kvl_error *err)
{
    hf_finder f;
    hf_finder_init(&f, &step->re, s, n, r->md);
    size_t last = 0, b = 0, e = 0;
    int got;
    kvl_status st;
    if (step->behavior == HF_B_ISOLATED || step->behavior == HF_B_REMOVED) {
        /* streaming: matches and gaps in order; Removed drops the matches,
         * or with invert the gaps (which are then the "matches") */
        int isolated = step->behavior == HF_B_ISOLATED;
        int keep_gaps = isolated || !step->invert;
        int keep_matches = isolated || step->invert;
        while ((got = hf_finder_next(&f, &b, &e, err)) == 1) {
            if (b > last && keep_gaps &&
                (st = hf_pre_run_piece(r, k + 1, s + last, b - last,
                                       at_origin && last == 0, err)) != KVL_OK)
                return st;
            if (keep_matches &&
                (st = hf_pre_run_piece(r, k + 1, s + b, e - b,
                                       at_origin && b == 0, err)) != KVL_OK)
                return st;
            last = e;
        }
        if (got < 0)
            return (kvl_status)-got;
        if (keep_gaps && last < n)
            return hf_pre_run_piece(r, k + 1, s + last, n - last,
                                    at_origin && last == 0, err);
        return KVL_OK;
    }

    /* the other behaviours look at neighbours: collect the spans */
    size_t ns = 0;
    while ((got = hf_finder_next(&f, &b, &e, err)) == 1) {
        if (b > last && (st = push_span(r, k, &ns, last, b, step->invert, err)) != KVL_OK)
            return st;
        if ((st = push_span(r, k, &ns, b, e, !step->invert, err)) != KVL_OK)
            return st;
        last = e;
    }
    if (got < 0)
        return (kvl_status)-got;
    if (last < n && (st = push_span(r, k, &ns, last, n, step->invert, err)) != KVL_OK)
        return st;
    hf_span *sp = r->span[k];
    size_t w = 0;
    int prev = 0;
    if (step->behavior == HF_B_MERGED_NEXT) {
        /* right to left: a match joins the piece after it, unless that
         * piece was itself a match */
        size_t i = ns;
        w = ns;
        while (i-- > 0) {
            if (sp[i].match && !prev && w < ns)
                sp[w].b = sp[i].b;
            else
                sp[--w] = sp[i];
            prev = sp[i].match;
        }
        /* pieces now in sp[w..ns) */
        for (size_t x = w; x < ns; x++) {
            size_t pb = sp[x].b, pe = sp[x].e;
            if ((st = hf_pre_run_piece(r, k + 1, s + pb, pe - pb,
                                       at_origin && pb == 0, err)) != KVL_OK)
                return st;
        }
        return KVL_OK;
    }
    for (size_t i = 0; i < ns; i++) {
        int merge;
        if (step->behavior == HF_B_CONTIGUOUS)
            merge = sp[i].match == prev && w > 0;
        else /* MergedWithPrevious */
            merge = sp[i].match && !prev && w > 0;
        prev = sp[i].match;
        if (merge)
            sp[w - 1].e = sp[i].e;
        else
            sp[w++] = sp[i];
    }
    for (size_t x = 0; x < w; x++) {
        size_t pb = sp[x].b, pe = sp[x].e;
        if ((st = hf_pre_run_piece(r, k + 1, s + pb, pe - pb,
                                   at_origin && pb == 0, err)) != KVL_OK)
            return st;
    }
    return KVL_OK;
}

static kvl_status run_metaspace(hf_pre_run *r, int k, const hf_pre_step *step,
                                const char *s, size_t n, int at_origin,
                                kvl_error *err)
{
    kvl_strbuf *buf = &r->buf[k];
    buf->n = 0;
    kvl_status st = KVL_OK;
    int starts_with_rep = n >= step->rep_len &&
                          memcmp(s, step->rep, step->rep_len) == 0;
    if (!starts_with_rep && n > 0 && s[0] == ' ')
        starts_with_rep = 1; /* the space becomes the replacement */
    if (!starts_with_rep &&
        (step->prepend == HF_PREPEND_ALWAYS ||
         (step->prepend == HF_PREPEND_FIRST && at_origin)))
        st = kvl_strbuf_append(buf, step->rep, step->rep_len, err);
    size_t last = 0;
    for (size_t i = 0; i < n && st == KVL_OK; i++) {
        if (s[i] != ' ')
            continue;
        if ((st = kvl_strbuf_append(buf, s + last, i - last, err)) == KVL_OK)
            st = kvl_strbuf_append(buf, step->rep, step->rep_len, err);
        last = i + 1;
    }
    if (st == KVL_OK)
        st = kvl_strbuf_append(buf, s + last, n - last, err);
    if (st != KVL_OK)
        return st;
    const char *t = buf->s;
    size_t tn = buf->n;
    if (!step->split)
        return hf_pre_run_piece(r, k + 1, t, tn, at_origin, err);
    /* cut before every replacement character */
    size_t start = 0;
    for (size_t i = 1; i + step->rep_len <= tn; i++) {
        if (memcmp(t + i, step->rep, step->rep_len) != 0)
            continue;
        if ((st = hf_pre_run_piece(r, k + 1, t + start, i - start,
                                   at_origin && start == 0, err)) != KVL_OK)
            return st;
        start = i;
        i += step->rep_len - 1;
    }
    return hf_pre_run_piece(r, k + 1, t + start, tn - start,
                            at_origin && start == 0, err);
}

kvl_status hf_pre_run_piece(hf_pre_run *r, int k, const char *s, size_t n,
                            int at_origin, kvl_error *err)
{
    if (n == 0)
        return KVL_OK;
    if (k >= r->n_steps)
        return r->emit(r->ctx, s, n, err);
    const hf_pre_step *step = &r->p->step[k];
    kvl_strbuf *buf = &r->buf[k];
    kvl_status st;
    switch (step->kind) {
    case HF_P_SPLIT:
        return run_split(r, k, step, s, n, at_origin, err);
    case HF_P_PREFIX_SPACE:
        if (s[0] == ' ')
            return hf_pre_run_piece(r, k + 1, s, n, at_origin, err);
        buf->n = 0;
        if ((st = kvl_strbuf_append(buf, " ", 1, err)) != KVL_OK ||
            (st = kvl_strbuf_append(buf, s, n, err)) != KVL_OK)
            return st;
        return hf_pre_run_piece(r, k + 1, buf->s, buf->n, at_origin, err);
    case HF_P_BYTEMAP:
        buf->n = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if ((st = kvl_strbuf_append(buf, r->bm->utf8[c], r->bm->len[c], err)) != KVL_OK)
                return st;
        }
        return hf_pre_run_piece(r, k + 1, buf->s, buf->n, at_origin, err);
    case HF_P_METASPACE:
        return run_metaspace(r, k, step, s, n, at_origin, err);
    }
    return kvl_fail(err, KVL_ERR_INTERNAL, "unknown pre-tokenizer step");
}
