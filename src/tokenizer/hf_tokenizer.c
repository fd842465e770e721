/*
 * Hugging Face tokenizer.json: loading and the kvl_tokenizer_ops.
 *
 * Supported (what Llama / Qwen / Mistral / GPT-2 style checkpoints ship):
 *   model           BPE (see hf_model_bpe.c)
 *   normalizer      NFC NFD NFKC NFKD Lowercase Strip StripAccents Prepend
 *                   Replace ByteLevel Sequence, or null
 *   pre_tokenizer   Split ByteLevel Metaspace Digits Punctuation
 *                   WhitespaceSplit Whitespace BertPreTokenizer
 *                   CharDelimiterSplit Sequence, or null
 *   post_processor  TemplateProcessing (the "single" template),
 *                   RobertaProcessing, BertProcessing, ByteLevel (no ids),
 *                   Sequence, or null -- used with KVL_ENCODE_ADD_SPECIAL
 *   decoder         ByteLevel Metaspace ByteFallback Fuse Strip Replace
 *                   BPEDecoder Sequence, or null (tokens joined by ' ')
 *   added_tokens    see hf_added_tokens.c
 * Any other component type is KVL_ERR_UNSUPPORTED naming the type.
 *
 * Encoding follows tokenizers' encode(text, add_special_tokens) for one
 * sequence (hf_internal.h has the pipeline).  Text that is not valid UTF-8
 * (which tokenizers cannot receive) is still encoded: invalid bytes are
 * characters of their own that normalizers leave alone and that regexes
 * never match.
 *
 * BOS / EOS ids: the first id the post-processor puts before the text
 * (e.g. <|begin_of_text|> of Llama 3, <s> of Llama 2) and the last id it
 * puts after it; when it puts none, the added token (from
 * "added_tokens", not a plain vocabulary entry) named "<s>",
 * "<|begin_of_text|>" or "<bos>" (BOS) and "</s>", "<|end_of_text|>",
 * "<|endoftext|>" or "<eos>" (EOS), first found; else -1.  So Qwen2/3 get
 * no BOS and EOS = <|endoftext|> (the instruct models' config.json names
 * <|im_end|> as well; generation should take eos from the model config).
 */
#include "core/error.h"
#include "tokenizer/hf_internal.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

typedef struct hf_tok {
    hf_bytemap bm;
    hf_normalizer norm;
    hf_pretok pre;
    int pre_steps;         /* steps run before the model                  */
    int model_bytelevel;   /* the last step (byte map) is left to the model */
    hf_bpe bpe;
    hf_added_set added;
    hf_decoder dec;
    int32_t *prefix, *suffix; /* post-processor ids around the text        */
    size_t n_prefix, n_suffix;
    int32_t n_ids;
    int32_t *added_of_id;  /* [n_ids] added-token index or -1             */
    uint8_t *special;      /* [n_ids] the id's token is a special token   */
} hf_tok;

static const char *token_of(const hf_tok *t, int32_t id, size_t *len);

static void hf_destroy(void *impl)
{
    hf_tok *t = impl;
    if (!t)
        return;
    hf_normalizer_free(&t->norm);
    hf_pretok_free(&t->pre);
    hf_bpe_free(&t->bpe);
    hf_added_free(&t->added);
    hf_decoder_free(&t->dec);
    free(t->prefix);
    free(t->suffix);
    free(t->added_of_id);
    free(t->special);
    free(t);
}

/* ------------------------------------------------------------------------ */
/* Post-processor                                                            */
/* ------------------------------------------------------------------------ */

static kvl_status append_ids(int32_t **v, size_t *n, const int32_t *ids,
                             size_t k, int front, kvl_error *err)
{
    int32_t *p = realloc(*v, (*n + k + 1) * sizeof *p);
    if (!p)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    if (front) {
        memmove(p + k, p, *n * sizeof *p);
        memcpy(p, ids, k * sizeof *p);
    } else {
        memcpy(p + *n, ids, k * sizeof *p);
    }
    *v = p;
    *n += k;
    return KVL_OK;
}

static kvl_status id_in_range(int64_t id, const char *path, const char *what,
                              kvl_error *err)
{
    if (id < 0 || id >= HF_MAX_ID)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': post_processor %s: id %lld is out of range",
                        path, what, (long long)id);
    return KVL_OK;
}

/* ["<s>", 1] of RobertaProcessing / BertProcessing */
static kvl_status pair_id(json_t *j, const char *key, const char *path,
                          const char *type, int32_t *id, kvl_error *err)
{
    json_t *v = json_object_get(j, key);
    json_t *x = json_is_array(v) && json_array_size(v) == 2 ? json_array_get(v, 1) : NULL;
    if (!json_is_integer(x))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': post_processor %s: \"%s\" must be "
                        "[token, id]", path, type, key);
    kvl_status st = id_in_range(json_integer_value(x), path, type, err);
    *id = (int32_t)json_integer_value(x);
    return st;
}

static kvl_status template_ids(json_t *j, const char *path, int32_t **pre,
                               size_t *npre, int32_t **suf, size_t *nsuf,
                               kvl_error *err)
{
    json_t *single = json_object_get(j, "single");
    json_t *specials = json_object_get(j, "special_tokens");
    if (!json_is_array(single))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': post_processor TemplateProcessing needs a "
                        "\"single\" array", path);
    int seen_a = 0;
    size_t i;
    json_t *piece;
    json_array_foreach(single, i, piece) {
        json_t *sp = json_object_get(piece, "SpecialToken");
        json_t *sq = json_object_get(piece, "Sequence");
        if (json_is_object(sq)) {
            json_t *which = json_object_get(sq, "id");
            if (!json_is_string(which) || strcmp(json_string_value(which), "A") != 0)
                return kvl_fail(err, KVL_ERR_FORMAT,
                                "file '%s': post_processor TemplateProcessing: "
                                "the single template may only hold sequence A",
                                path);
            if (seen_a)
                return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                                "file '%s': post_processor TemplateProcessing: "
                                "sequence A appears twice", path);
            seen_a = 1;
            continue;
        }
        json_t *name = json_is_object(sp) ? json_object_get(sp, "id") : NULL;
        if (!json_is_string(name))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': post_processor TemplateProcessing: "
                            "single[%zu] must be {\"SpecialToken\": {\"id\": ...}} "
                            "or {\"Sequence\": {\"id\": \"A\"}}", path, i);
        json_t *entry = json_is_object(specials)
                            ? json_object_get(specials, json_string_value(name))
                            : NULL;
        json_t *ids = json_is_object(entry) ? json_object_get(entry, "ids") : NULL;
        if (!json_is_array(ids))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': post_processor TemplateProcessing: "
                            "special token '%s' has no \"ids\" in special_tokens",
                            path, json_string_value(name));
        size_t k;
        json_t *x;
        json_array_foreach(ids, k, x) {
            if (!json_is_integer(x))
                return kvl_fail(err, KVL_ERR_FORMAT,
                                "file '%s': post_processor TemplateProcessing: "
                                "ids of '%s' must be integers", path,
                                json_string_value(name));
            kvl_status st = id_in_range(json_integer_value(x), path,
                                        "TemplateProcessing", err);
            int32_t id = (int32_t)json_integer_value(x);
            if (st == KVL_OK)
                st = seen_a ? append_ids(suf, nsuf, &id, 1, 0, err)
                            : append_ids(pre, npre, &id, 1, 0, err);
            if (st != KVL_OK)
                return st;
        }
    }
    if (!seen_a)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': post_processor TemplateProcessing: the "
                        "single template has no sequence $A", path);
    return KVL_OK;
}

static kvl_status parse_post(json_t *j, const char *path, hf_tok *t,
                             int depth, kvl_error *err)
{
    if (!j || json_is_null(j))
        return KVL_OK;
    if (!json_is_object(j))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': post_processor must be an object or null", path);
    const char *type = hf_json_type(j);
    if (!type)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': post_processor has no \"type\"", path);
    kvl_status st;
    if (strcmp(type, "ByteLevel") == 0)
        return KVL_OK;
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "processors");
        if (!json_is_array(list))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': post_processor Sequence needs a "
                            "\"processors\" array", path);
        if (depth > 8)
            return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                            "file '%s': post_processor Sequences nested too deep",
                            path);
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) {
            if ((st = parse_post(x, path, t, depth + 1, err)) != KVL_OK)
                return st;
        }
        return KVL_OK;
    }
    int32_t *pre = NULL, *suf = NULL;
    size_t npre = 0, nsuf = 0;
    if (strcmp(type, "TemplateProcessing") == 0) {
        st = template_ids(j, path, &pre, &npre, &suf, &nsuf, err);
    } else if (strcmp(type, "RobertaProcessing") == 0 ||
               strcmp(type, "BertProcessing") == 0) {
        int32_t cls, sep;
        st = pair_id(j, "cls", path, type, &cls, err);
        if (st == KVL_OK)
            st = pair_id(j, "sep", path, type, &sep, err);
        if (st == KVL_OK)
            st = append_ids(&pre, &npre, &cls, 1, 0, err);
        if (st == KVL_OK)
            st = append_ids(&suf, &nsuf, &sep, 1, 0, err);
    } else {
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': post_processor type '%s' is not supported",
                        path, type);
    }
    /* a later processor wraps what the earlier ones produced */
    if (st == KVL_OK && npre)
        st = append_ids(&t->prefix, &t->n_prefix, pre, npre, 1, err);
    if (st == KVL_OK && nsuf)
        st = append_ids(&t->suffix, &t->n_suffix, suf, nsuf, 0, err);
    free(pre);
    free(suf);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

static const kvl_tokenizer_ops hf_ops;

/* Id of the added token spelled s, or -1 (plain vocabulary entries such
 * as Qwen's "<s>" do not count). */
static int32_t find_added(const hf_tok *t, const char *s)
{
    int32_t a = hf_added_find(&t->added, s, strlen(s));
    return a >= 0 ? t->added.tok[a].id : -1;
}

kvl_status kvl_hf_tokenizer_open(const char *path, kvl_tokenizer *out,
                                 kvl_error *err)
{
    hf_file f;
    kvl_status st = hf_file_load(path, &f, err);
    if (st != KVL_OK)
        return st;
    hf_tok *t = calloc(1, sizeof *t);
    if (!t) {
        hf_file_free(&f);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a tokenizer");
    }
    hf_bytemap_init(&t->bm);
    json_t *root = f.root;
    if (!json_is_object(root)) {
        st = kvl_fail(err, KVL_ERR_FORMAT,
                      "file '%s': a tokenizer.json must be a JSON object", path);
        goto fail;
    }
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) {
        st = kvl_fail(err, KVL_ERR_FORMAT,
                      "file '%s': no \"model\" object; not a tokenizer.json?", path);
        goto fail;
    }
    const char *mtype = hf_json_type(model);
    if (mtype ? strcmp(mtype, "BPE") != 0 : !json_object_get(model, "merges")) {
        st = kvl_fail(err, KVL_ERR_UNSUPPORTED,
                      "file '%s': model type '%s' is not supported (only BPE)",
                      path, mtype ? mtype : "(none)");
        goto fail;
    }
    if ((st = hf_normalizer_parse(json_object_get(root, "normalizer"), path,
                                  &t->norm, err)) != KVL_OK ||
        (st = hf_pretok_parse(json_object_get(root, "pre_tokenizer"), path,
                              &t->pre, err)) != KVL_OK ||
        (st = hf_decoder_parse(json_object_get(root, "decoder"), path, &t->dec,
                               err)) != KVL_OK ||
        (st = parse_post(json_object_get(root, "post_processor"), path, t, 0,
                         err)) != KVL_OK ||
        (st = hf_bpe_load(&f, model, path, &t->bm, &t->bpe, err)) != KVL_OK ||
        (st = hf_added_load(json_object_get(root, "added_tokens"), path, &t->bpe,
                            &t->norm, &t->bm, &t->added, err)) != KVL_OK)
        goto fail;
    hf_file_free(&f);

    t->pre_steps = t->pre.n;
    if (t->pre.n > 0 && t->pre.step[t->pre.n - 1].kind == HF_P_BYTEMAP) {
        t->pre_steps--;
        t->model_bytelevel = 1;
    }

    /* ids: the model's, then added tokens (which may lie beyond) */
    int32_t n_ids = t->bpe.n_ids;
    for (size_t i = 0; i < t->added.n; i++)
        if (t->added.tok[i].id + 1 > n_ids)
            n_ids = t->added.tok[i].id + 1;
    for (size_t i = 0; i < t->n_prefix; i++)
        if (t->prefix[i] >= n_ids) {
            st = kvl_fail(err, KVL_ERR_FORMAT,
                          "file '%s': post_processor id %d is not a token id "
                          "(vocabulary size %d)", path, (int)t->prefix[i], (int)n_ids);
            goto fail_nofile;
        }
    for (size_t i = 0; i < t->n_suffix; i++)
        if (t->suffix[i] >= n_ids) {
            st = kvl_fail(err, KVL_ERR_FORMAT,
                          "file '%s': post_processor id %d is not a token id "
                          "(vocabulary size %d)", path, (int)t->suffix[i], (int)n_ids);
            goto fail_nofile;
        }
    if (n_ids <= 0) {
        st = kvl_fail(err, KVL_ERR_FORMAT, "file '%s': the vocabulary is empty", path);
        goto fail_nofile;
    }
    t->n_ids = n_ids;
    t->added_of_id = malloc((size_t)n_ids * sizeof *t->added_of_id);
    t->special = calloc((size_t)n_ids, 1);
    if (!t->added_of_id || !t->special) {
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a tokenizer");
        goto fail_nofile;
    }
    for (int32_t i = 0; i < n_ids; i++)
        t->added_of_id[i] = -1;
    for (size_t i = 0; i < t->added.n; i++)
        t->added_of_id[t->added.tok[i].id] = (int32_t)i;
    /* special (dropped by KVL_DECODE_SKIP_SPECIAL): the id's decoding
     * string is the content of a special token, as tokenizers checks it */
    for (int32_t id = 0; id < n_ids; id++) {
        size_t len;
        const char *s = token_of(t, id, &len);
        int32_t a = s ? hf_added_find(&t->added, s, len) : -1;
        t->special[id] = a >= 0 && t->added.tok[a].special;
    }

    out->ops = &hf_ops;
    out->impl = t;
    out->kind = KVL_TOKENIZER_HF;
    out->vocab_size = n_ids;
    out->bos_id = t->n_prefix ? t->prefix[0] : -1;
    out->eos_id = t->n_suffix ? t->suffix[t->n_suffix - 1] : -1;
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<bos>"};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>",
                                            "<|endoftext|>", "<eos>"};
    for (size_t i = 0; out->bos_id < 0 && i < sizeof bos_names / sizeof *bos_names; i++)
        out->bos_id = find_added(t, bos_names[i]);
    for (size_t i = 0; out->eos_id < 0 && i < sizeof eos_names / sizeof *eos_names; i++)
        out->eos_id = find_added(t, eos_names[i]);
    return KVL_OK;

fail:
    hf_file_free(&f);
fail_nofile:
    hf_destroy(t);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct enc_ctx {
    const hf_tok *t;
    int plain_special;
    kvl_idbuf *out;
    pcre2_match_data *md;
    kvl_strbuf nbuf[2];
    hf_pre_run pre;
    hf_bpe_state bpe;
} enc_ctx;

static kvl_status emit_piece(void *vctx, const char *s, size_t n, kvl_error *err)
{
    enc_ctx *c = vctx;
    return hf_bpe_encode_piece(&c->bpe, s, n, c->out, err);
}

/* A normalised segment: normalized=true added tokens, then pre-tokenizer
 * and model on the text between them. */
static kvl_status encode_normalized(enc_ctx *c, const char *s, size_t n,
                                    int at_origin, kvl_error *err)
{
    const hf_added_set *a = &c->t->added;
    size_t from = 0, done = 0;
    hf_added_match m;
    kvl_status st;
    while (hf_added_next(a, &a->norm, s, n, &from, done, c->plain_special, &m)) {
        if (m.b > done &&
            (st = hf_pre_run_piece(&c->pre, 0, s + done, m.b - done,
                                   at_origin && done == 0, err)) != KVL_OK)
            return st;
        if ((st = kvl_idbuf_push(c->out, m.id, err)) != KVL_OK)
            return st;
        done = m.e;
    }
    if (done < n)
        return hf_pre_run_piece(&c->pre, 0, s + done, n - done,
                                at_origin && done == 0, err);
    return KVL_OK;
}

static kvl_status encode_raw(enc_ctx *c, const char *s, size_t n,
                             int at_origin, kvl_error *err)
{
    const char *p = s;
    size_t pn = n;
    if (c->t->norm.n > 0) {
        kvl_status st = hf_normalize(&c->t->norm, &c->t->bm, c->md, s, n, c->nbuf,
                                     &p, &pn, err);
        if (st != KVL_OK)
            return st;
    }
    return encode_normalized(c, p, pn, at_origin, err);
}

static kvl_status hf_encode(const void *impl, const char *text, size_t len,
                            unsigned flags, kvl_idbuf *out, kvl_error *err)
{
    const hf_tok *t = impl;
    enc_ctx c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.plain_special = (flags & KVL_ENCODE_PLAIN_SPECIAL) != 0;
    c.out = out;
    c.md = pcre2_match_data_create(16, NULL);
    if (!c.md)
        return kvl_fail(err, KVL_ERR_NOMEM, "kvl_tokenizer_encode: out of memory");
    hf_pre_run_init(&c.pre, &t->pre, t->pre_steps, &t->bm, c.md, emit_piece, &c);
    hf_bpe_state_init(&c.bpe, &t->bpe, t->model_bytelevel, &t->bm);

    const int add = (flags & KVL_ENCODE_ADD_SPECIAL) != 0;
    kvl_status st = KVL_OK;
    if (add && t->n_prefix)
        st = kvl_idbuf_append(out, t->prefix, t->n_prefix, err);
    const hf_added_set *a = &t->added;
    size_t from = 0, done = 0;
    hf_added_match m;
    while (st == KVL_OK &&
           hf_added_next(a, &a->raw, text, len, &from, done, c.plain_special, &m)) {
        if (m.b > done)
            st = encode_raw(&c, text + done, m.b - done, done == 0, err);
        if (st == KVL_OK)
            st = kvl_idbuf_push(out, m.id, err);
        done = m.e;
    }
    if (st == KVL_OK && done < len)
        st = encode_raw(&c, text + done, len - done, done == 0, err);
    if (st == KVL_OK && add && t->n_suffix)
        st = kvl_idbuf_append(out, t->suffix, t->n_suffix, err);

    hf_bpe_state_free(&c.bpe);
    hf_pre_run_free(&c.pre);
    kvl_strbuf_free(&c.nbuf[0]);
    kvl_strbuf_free(&c.nbuf[1]);
    pcre2_match_data_free(c.md);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Decoding and lookups                                                      */
/* ------------------------------------------------------------------------ */

/* The string of id for decoding: an added token's content (its normalised
 * form when normalized=true, as tokenizers 0.23 decodes it), else the
 * model's token; NULL for an id no token has. */
static const char *token_of(const hf_tok *t, int32_t id, size_t *len)
{
    int32_t a = t->added_of_id[id];
    if (a >= 0) {
        const hf_added *x = &t->added.tok[a];
        if (x->norm) {
            *len = x->norm_len;
            return x->norm;
        }
        *len = x->len;
        return x->content;
    }
    if (id < t->bpe.n_ids && t->bpe.len[id] >= 0) {
        *len = (size_t)t->bpe.len[id];
        return hf_bpe_token(&t->bpe, id);
    }
    return NULL;
}

static kvl_status hf_decode(const void *impl, const int32_t *ids, size_t n,
                            unsigned flags, kvl_strbuf *out, kvl_error *err)
{
    const hf_tok *t = impl;
    const int skip = (flags & KVL_DECODE_SKIP_SPECIAL) != 0;
    hf_toklist list = {0};
    kvl_status st = KVL_OK;
    for (size_t i = 0; i < n && st == KVL_OK; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || (skip && t->special[id]))
            continue;
        size_t len;
        const char *s = token_of(t, id, &len);
        if (!s)
            continue; /* an id no token has: tokenizers skips it */
        st = hf_toklist_push(&list, s, len, err);
    }
    if (st == KVL_OK) {
        if (t->dec.present) {
            st = hf_decode_tokens(&t->dec, &t->bm, &list, out, err);
        } else {
            for (size_t i = 0; i < list.n && st == KVL_OK; i++) {
                if (i > 0)
                    st = kvl_strbuf_append(out, " ", 1, err);
                if (st == KVL_OK)
                    st = kvl_strbuf_append(out, list.data.s + list.off[i],
                                           list.len[i], err);
            }
        }
    }
    hf_toklist_free(&list);
    return st;
}

static const char *hf_id_to_token(const void *impl, int32_t id)
{
    const hf_tok *t = impl;
    if (id < 0 || id >= t->n_ids)
        return NULL;
    size_t len;
    return token_of(t, id, &len);
}

static int32_t hf_token_to_id(const void *impl, const char *token, size_t len)
{
    const hf_tok *t = impl;
    int32_t a = hf_added_find(&t->added, token, len);
    if (a >= 0)
        return t->added.tok[a].id;
    return hf_bpe_lookup(&t->bpe, token, len);
}

static const kvl_tokenizer_ops hf_ops = {hf_destroy, hf_encode, hf_decode,
                                         hf_id_to_token, hf_token_to_id};
