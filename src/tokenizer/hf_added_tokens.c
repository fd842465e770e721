/*
 * Added tokens of tokenizer.json ("added_tokens").
 *
 * Ids are assigned as tokenizers' AddedVocabulary::add_tokens does when a
 * file is loaded (the "id" written in the file is only checked there, with
 * a warning): a token whose content is already an added token or a model
 * token takes that id, any other takes the next id after the model
 * vocabulary (vocab.len(), then one more for each new token).  For the
 * files tokenizers writes this gives back the written ids.  Empty contents
 * are ignored; a repeated content keeps its id and takes the later flags.
 *
 * Matching (AddedVocabulary::find_matches): a byte trie finds, left to
 * right, the longest token starting at the leftmost position where any
 * token starts (Aho-Corasick LeftmostLongest); the search resumes after
 * the match whatever happens to it.  A special token is skipped (left as
 * text) with KVL_ENCODE_PLAIN_SPECIAL; a single_word token is skipped when
 * a word character (\w) touches it; lstrip / rstrip widen the match over
 * the whitespace before / after it (not before the end of the previous
 * match).  normalized=false tokens are matched in the raw text, and
 * normalized=true tokens, in their normalised form, in each normalised
 * segment.
 */
#include "core/error.h"
#include "tokenizer/hf_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Trie                                                                      */
/* ------------------------------------------------------------------------ */

static int32_t trie_new_node(hf_trie *t, uint8_t byte)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        hf_trie_node *p = realloc(t->node, cap * sizeof *p);
        if (!p)
            return -1;
        t->node = p;
        t->cap = cap;
    }
    t->node[t->n] = (hf_trie_node){-1, -1, -1, byte};
    return (int32_t)t->n++;
}

static kvl_status trie_insert(hf_trie *t, const char *s, size_t n,
                              int32_t term, kvl_error *err)
{
    if (n == 0)
        return KVL_OK;
    if (t->n == 0 && trie_new_node(t, 0) < 0)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for added tokens");
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = t->node[cur].child;
        while (c >= 0 && t->node[c].byte != b)
            c = t->node[c].sibling;
        if (c < 0) {
            c = trie_new_node(t, b);
            if (c < 0)
                return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for added tokens");
            t->node[c].sibling = t->node[cur].child;
            t->node[cur].child = c;
        }
        cur = c;
    }
    if (t->node[cur].term < 0)
        t->node[cur].term = term; /* identical patterns: the first wins */
    t->first[(uint8_t)s[0]] = 1;
    t->empty = 0;
    return KVL_OK;
}

/* Longest pattern starting at s[i]: its token index and end, or -1. */
static int32_t trie_longest(const hf_trie *t, const char *s, size_t n,
                            size_t i, size_t *end)
{
    int32_t cur = 0, best = -1;
    for (size_t j = i; j < n; j++) {
        uint8_t b = (uint8_t)s[j];
        int32_t c = t->node[cur].child;
        while (c >= 0 && t->node[c].byte != b)
            c = t->node[c].sibling;
        if (c < 0)
            break;
        cur = c;
        if (t->node[cur].term >= 0) {
            best = t->node[cur].term;
            *end = j + 1;
        }
    }
    return best;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

int32_t hf_added_find(const hf_added_set *a, const char *s, size_t n)
{
    if (!a->table)
        return -1;
    size_t i = (size_t)hf_hash(s, n) & a->table_mask;
    for (;;) {
        int32_t e = a->table[i];
        if (e == 0)
            return -1;
        const hf_added *t = &a->tok[e - 1];
        if (t->len == n && memcmp(t->content, s, n) == 0)
            return e - 1;
        i = (i + 1) & a->table_mask;
    }
}

static kvl_status flag(json_t *o, const char *key, int dflt, const char *path,
                       size_t index, uint8_t *out, kvl_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = (uint8_t)dflt;
        return KVL_OK;
    }
    if (!json_is_boolean(v))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': added_tokens[%zu].%s must be true or false",
                        path, index, key);
    *out = (uint8_t)json_is_true(v);
    return KVL_OK;
}

kvl_status hf_added_load(json_t *arr, const char *path, const hf_bpe *bpe,
                         const hf_normalizer *norm, const hf_bytemap *bm,
                         hf_added_set *a, kvl_error *err)
{
    memset(a, 0, sizeof *a);
    if (!arr || json_is_null(arr))
        return KVL_OK;
    if (!json_is_array(arr))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': \"added_tokens\" must be an array", path);
    size_t count = json_array_size(arr);
    kvl_status st = KVL_OK;
    pcre2_match_data *md = NULL;
    kvl_strbuf scratch[2] = {{0}, {0}};
    size_t cap = 16;
    while (cap < 2 * count + 2)
        cap *= 2;
    a->tok = calloc(count ? count : 1, sizeof *a->tok);
    a->table = calloc(cap, sizeof *a->table);
    md = pcre2_match_data_create(16, NULL);
    if (!a->tok || !a->table || !md) {
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory for added tokens");
        goto done;
    }
    a->table_mask = cap - 1;

    int64_t next_id = bpe->n_entries;
    for (size_t i = 0; i < count; i++) {
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) {
            st = kvl_fail(err, KVL_ERR_FORMAT,
                          "file '%s': added_tokens[%zu] must be an object", path, i);
            goto done;
        }
        json_t *c = json_object_get(o, "content");
        json_t *id = json_object_get(o, "id");
        if (!json_is_string(c)) {
            st = kvl_fail(err, KVL_ERR_FORMAT,
                          "file '%s': added_tokens[%zu] has no \"content\" string",
                          path, i);
            goto done;
        }
        if (id && !(json_is_integer(id) && json_integer_value(id) >= 0)) {
            st = kvl_fail(err, KVL_ERR_FORMAT,
                          "file '%s': added_tokens[%zu].id must be a "
                          "non-negative integer", path, i);
            goto done;
        }
        hf_added x = {0};
        if ((st = flag(o, "special", 0, path, i, &x.special, err)) != KVL_OK ||
            (st = flag(o, "lstrip", 0, path, i, &x.lstrip, err)) != KVL_OK ||
            (st = flag(o, "rstrip", 0, path, i, &x.rstrip, err)) != KVL_OK ||
            (st = flag(o, "single_word", 0, path, i, &x.single_word, err)) != KVL_OK ||
            (st = flag(o, "normalized", !x.special, path, i, &x.normalized, err)) != KVL_OK)
            goto done;
        const char *content = json_string_value(c);
        size_t len = json_string_length(c);
        if (len == 0)
            continue;
        int32_t known = hf_added_find(a, content, len);
        if (known >= 0) {
            /* same content again: same id, the later flags */
            hf_added *t = &a->tok[known];
            t->special = x.special;
            t->lstrip = x.lstrip;
            t->rstrip = x.rstrip;
            t->single_word = x.single_word;
            t->normalized = x.normalized;
            continue;
        }
        int32_t model_id = hf_bpe_lookup(bpe, content, len);
        if (model_id >= 0) {
            x.id = model_id;
        } else {
            if (next_id >= HF_MAX_ID) {
                st = kvl_fail(err, KVL_ERR_FORMAT,
                              "file '%s': too many added tokens", path);
                goto done;
            }
            x.id = (int32_t)next_id++;
        }
        x.content = malloc(len + 1);
        if (!x.content) {
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory for added tokens");
            goto done;
        }
        memcpy(x.content, content, len);
        x.content[len] = '\0';
        x.len = len;
        a->tok[a->n] = x;
        size_t h = (size_t)hf_hash(content, len) & a->table_mask;
        while (a->table[h])
            h = (h + 1) & a->table_mask;
        a->table[h] = (int32_t)a->n + 1;
        a->n++;
    }

    /* normalised forms and tries: special tokens first (tokenizers' pattern
     * order), which only matters for identical patterns */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < a->n; i++) {
            hf_added *t = &a->tok[i];
            if ((pass == 0) != (t->special != 0))
                continue;
            if (!t->normalized) {
                if ((st = trie_insert(&a->raw, t->content, t->len, (int32_t)i, err)) != KVL_OK)
                    goto done;
                continue;
            }
            const char *p;
            size_t pn;
            if ((st = hf_normalize(norm, bm, md, t->content, t->len, scratch, &p,
                                   &pn, err)) != KVL_OK)
                goto done;
            t->norm = malloc(pn + 1);
            if (!t->norm) {
                st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory for added tokens");
                goto done;
            }
            memcpy(t->norm, p, pn);
            t->norm[pn] = '\0';
            t->norm_len = pn;
            if ((st = trie_insert(&a->norm, t->norm, pn, (int32_t)i, err)) != KVL_OK)
                goto done;
        }
    }
    if (a->raw.n == 0)
        a->raw.empty = 1;
    if (a->norm.n == 0)
        a->norm.empty = 1;
done:
    kvl_strbuf_free(&scratch[0]);
    kvl_strbuf_free(&scratch[1]);
    pcre2_match_data_free(md);
    if (st != KVL_OK)
        hf_added_free(a);
    return st;
}

void hf_added_free(hf_added_set *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->tok[i].content);
        free(a->tok[i].norm);
    }
    free(a->tok);
    free(a->table);
    free(a->raw.node);
    free(a->norm.node);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------------ */
/* Matching                                                                  */
/* ------------------------------------------------------------------------ */

int hf_added_next(const hf_added_set *a, const hf_trie *t, const char *s,
                  size_t n, size_t *from, size_t start_offset,
                  int plain_special, hf_added_match *m)
{
    if (t->empty || t->n == 0) {
        *from = n;
        return 0;
    }
    size_t i = *from;
    while (i < n) {
        if (!t->first[(uint8_t)s[i]]) {
            i++;
            continue;
        }
        size_t e = 0;
        int32_t k = trie_longest(t, s, n, i, &e);
        if (k < 0) {
            i++;
            continue;
        }
        const hf_added *tok = &a->tok[k];
        if (plain_special && tok->special) {
            i = e;
            continue;
        }
        if (tok->single_word) {
            int32_t cp = -1;
            int before = 0, after = 0;
            if (i > 0) {
                size_t p = hf_utf8_prev(s, i);
                hf_utf8_next(s, i, p, &cp);
                before = hf_is_word(cp);
            }
            if (e < n) {
                hf_utf8_next(s, n, e, &cp);
                after = hf_is_word(cp);
            }
            if (before || after) {
                i = e;
                continue;
            }
        }
        size_t b = i, end = e;
        if (tok->lstrip) {
            while (b > start_offset) {
                int32_t cp;
                size_t p = hf_utf8_prev(s, b);
                if (p < start_offset)
                    break;
                hf_utf8_next(s, b, p, &cp);
                if (!hf_is_whitespace(cp))
                    break;
                b = p;
            }
        }
        if (tok->rstrip) {
            while (end < n) {
                int32_t cp;
                size_t len = hf_utf8_next(s, n, end, &cp);
                if (!hf_is_whitespace(cp))
                    break;
                end += len;
            }
        }
        *from = end;
        m->b = b;
        m->e = end;
        m->id = tok->id;
        return 1;
    }
    *from = n;
    return 0;
}
