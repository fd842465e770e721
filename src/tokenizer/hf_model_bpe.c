/*
 * The BPE model of tokenizer.json, as the `tokenizers` library runs it.
 *
 * Loading: vocab (token -> id; a duplicated token keeps its last id, as a
 * HashMap would), merges (rank = position, pairs written "a b" or
 * ["a", "b"]; a pair listed twice keeps its last rank; every token of a
 * merge and its result must be in the vocabulary), and the options
 * unk_token, continuing_subword_prefix, end_of_word_suffix, fuse_unk,
 * byte_fallback, ignore_merges.  dropout must be null (or 0).
 *
 * Encoding one pre-token (tokenizers' BPE::merge_word + Word::merge_all):
 *   1. with ignore_merges, a pre-token that is itself a token is that token;
 *   2. each character becomes its token (with the continuing-subword
 *      prefix after the first character and the end-of-word suffix on the
 *      last); a character that is no token becomes its bytes' "<0xXX>"
 *      tokens (byte_fallback, when all exist), else unk_token (consecutive
 *      unknowns fused into one with fuse_unk), else it is dropped;
 *   3. repeatedly, the adjacent pair with the lowest merge rank is merged
 *      (ties: the leftmost), until no adjacent pair has a merge.
 * Step 3 scans an array for short words and uses a heap with lazy deletion
 * for long ones; both pick the same pair at every step.
 *
 * Pieces coming from a ByteLevel pre-tokenizer arrive as raw bytes: the
 * byte -> character map is applied here, after the word cache, and when
 * all 256 byte characters are tokens the initial symbols come straight
 * from a byte -> id table.  The word cache lives in the per-call state.
 */
#include "core/error.h"
#include "tokenizer/hf_internal.h"

#include <stdlib.h>
#include <string.h>

#define SMALL_WORD 48             /* symbols: array scan up to this size  */
#define CACHE_MAX_KEY 128         /* longer pieces are not cached          */
#define CACHE_MAX_ENTRIES (1u << 17)
#define MERGE_EMPTY UINT64_MAX

/* ------------------------------------------------------------------------ */
/* Tables                                                                    */
/* ------------------------------------------------------------------------ */

int32_t hf_bpe_lookup(const hf_bpe *b, const char *s, size_t n)
{
    if (!b->table)
        return -1;
    size_t i = (size_t)hf_hash(s, n) & b->table_mask;
    for (;;) {
        int32_t e = b->table[i];
        if (e == 0)
            return -1;
        size_t k = (size_t)e - 1;
        if (b->e_len[k] == n && memcmp(b->arena + b->e_off[k], s, n) == 0)
            return b->e_id[k];
        i = (i + 1) & b->table_mask;
    }
}

static inline size_t merge_index(uint64_t key, size_t mask)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static inline int merge_find(const hf_bpe *b, int32_t l, int32_t r,
                             uint32_t *rank, int32_t *id)
{
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t i = merge_index(key, b->merges_mask);
    for (;;) {
        const hf_merge_slot *m = &b->merges[i];
        if (m->key == key) {
            *rank = m->rank;
            *id = m->id;
            return 1;
        }
        if (m->key == MERGE_EMPTY)
            return 0;
        i = (i + 1) & b->merges_mask;
    }
}

static kvl_status merge_insert(hf_bpe *b, int32_t l, int32_t r, uint32_t rank,
                               int32_t id, kvl_error *err)
{
    if (2 * (b->n_merges + 1) > b->merges_mask + 1) {
        size_t cap = (b->merges_mask + 1) * 2;
        hf_merge_slot *t = malloc(cap * sizeof *t);
        if (!t)
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for merges");
        for (size_t i = 0; i < cap; i++)
            t[i].key = MERGE_EMPTY;
        for (size_t i = 0; i <= b->merges_mask; i++) {
            if (b->merges[i].key == MERGE_EMPTY)
                continue;
            size_t j = merge_index(b->merges[i].key, cap - 1);
            while (t[j].key != MERGE_EMPTY)
                j = (j + 1) & (cap - 1);
            t[j] = b->merges[i];
        }
        free(b->merges);
        b->merges = t;
        b->merges_mask = cap - 1;
    }
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t i = merge_index(key, b->merges_mask);
    while (b->merges[i].key != MERGE_EMPTY && b->merges[i].key != key)
        i = (i + 1) & b->merges_mask;
    if (b->merges[i].key == MERGE_EMPTY)
        b->n_merges++;
    b->merges[i].key = key;
    b->merges[i].rank = rank;
    b->merges[i].id = id;
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct load_ctx {
    hf_bpe *b;
    const char *path;
    kvl_strbuf cat;
    int32_t max_id;
} load_ctx;

static kvl_status add_vocab(void *vctx, const char *key, size_t len,
                            int64_t id, kvl_error *err)
{
    load_ctx *c = vctx;
    hf_bpe *b = c->b;
    if (b->arena_n + len + 1 > b->arena_cap) {
        size_t cap = b->arena_cap ? b->arena_cap : 1 << 16;
        while (cap < b->arena_n + len + 1)
            cap *= 2;
        char *p = realloc(b->arena, cap);
        if (!p)
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for the vocabulary");
        b->arena = p;
        b->arena_cap = cap;
    }
    if (b->n_e == b->cap_e) {
        size_t cap = b->cap_e ? 2 * b->cap_e : 1024;
        uint32_t *o = realloc(b->e_off, cap * sizeof *o);
        if (o)
            b->e_off = o;
        uint32_t *l = realloc(b->e_len, cap * sizeof *l);
        if (l)
            b->e_len = l;
        int32_t *d = realloc(b->e_id, cap * sizeof *d);
        if (d)
            b->e_id = d;
        if (!o || !l || !d)
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for the vocabulary");
        b->cap_e = cap;
    }
    b->e_off[b->n_e] = (uint32_t)b->arena_n;
    b->e_len[b->n_e] = (uint32_t)len;
    b->e_id[b->n_e] = (int32_t)id;
    b->n_e++;
    memcpy(b->arena + b->arena_n, key, len);
    b->arena[b->arena_n + len] = '\0';
    b->arena_n += len + 1;
    if ((int32_t)id > c->max_id)
        c->max_id = (int32_t)id;
    return KVL_OK;
}

static kvl_status add_merge(void *vctx, size_t index, const char *a,
                            size_t la, const char *bs, size_t lb,
                            kvl_error *err)
{
    load_ctx *c = vctx;
    hf_bpe *b = c->b;
    int32_t ia = hf_bpe_lookup(b, a, la), ib = hf_bpe_lookup(b, bs, lb);
    if (ia < 0 || ib < 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': model.merges[%zu]: token \"%.*s\" is not "
                        "in the vocabulary",
                        c->path, index, (int)(ia < 0 ? (la > 60 ? 60 : la) : (lb > 60 ? 60 : lb)),
                        ia < 0 ? a : bs);
    /* the merged token: a, then b without the continuing-subword prefix */
    size_t cut = b->prefix_len;
    if (cut > lb)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': model.merges[%zu]: \"%.*s\" is shorter "
                        "than continuing_subword_prefix",
                        c->path, index, (int)(lb > 60 ? 60 : lb), bs);
    c->cat.n = 0;
    kvl_status st;
    if ((st = kvl_strbuf_append(&c->cat, a, la, err)) != KVL_OK ||
        (st = kvl_strbuf_append(&c->cat, bs + cut, lb - cut, err)) != KVL_OK)
        return st;
    int32_t im = hf_bpe_lookup(b, c->cat.s, c->cat.n);
    if (im < 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': model.merges[%zu]: the merged token "
                        "\"%.*s\" is not in the vocabulary",
                        c->path, index, (int)(c->cat.n > 60 ? 60 : c->cat.n),
                        c->cat.s);
    if (index >= UINT32_MAX)
        return kvl_fail(err, KVL_ERR_FORMAT, "file '%s': too many merges",
                        c->path);
    return merge_insert(b, ia, ib, (uint32_t)index, im, err);
}

static kvl_status dup_opt(json_t *model, const char *key, const char *path,
                          char **out, size_t *len, kvl_error *err)
{
    const char *s;
    size_t n;
    kvl_status st = hf_json_opt_string(model, key, path, "model", &s, &n, err);
    if (st != KVL_OK)
        return st;
    *out = NULL;
    *len = 0;
    if (!s || (n == 0 && strcmp(key, "unk_token") != 0))
        return KVL_OK; /* "" prefix / suffix = none */
    *out = malloc(n + 1);
    if (!*out)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    memcpy(*out, s, n);
    (*out)[n] = '\0';
    *len = n;
    return KVL_OK;
}

kvl_status hf_bpe_load(const hf_file *f, json_t *model, const char *path,
                       const hf_bytemap *bm, hf_bpe *b, kvl_error *err)
{
    memset(b, 0, sizeof *b);
    b->unk_id = -1;
    kvl_status st;
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout)) {
        if (!json_is_number(dropout))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': model.dropout must be a number or null",
                            path);
        if (json_number_value(dropout) != 0.0)
            return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                            "file '%s': BPE dropout %g is not supported "
                            "(tokenization would be random)",
                            path, json_number_value(dropout));
    }
    if ((st = dup_opt(model, "unk_token", path, &b->unk, &b->unk_len, err)) != KVL_OK ||
        (st = dup_opt(model, "continuing_subword_prefix", path, &b->prefix,
                      &b->prefix_len, err)) != KVL_OK ||
        (st = dup_opt(model, "end_of_word_suffix", path, &b->suffix,
                      &b->suffix_len, err)) != KVL_OK ||
        (st = hf_json_opt_bool(model, "fuse_unk", 0, path, "model", &b->fuse_unk,
                               err)) != KVL_OK ||
        (st = hf_json_opt_bool(model, "byte_fallback", 0, path, "model",
                               &b->byte_fallback, err)) != KVL_OK ||
        (st = hf_json_opt_bool(model, "ignore_merges", 0, path, "model",
                               &b->ignore_merges, err)) != KVL_OK)
        return st;

    if (!f->vocab_e || !f->merges_e) {
        const char *what = !f->vocab_e ? "vocab" : "merges";
        json_t *v = json_object_get(model, what);
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': the BPE model's \"%s\" %s", path, what,
                        v ? (!f->vocab_e ? "must be an object" : "must be an array")
                          : "is missing");
    }

    load_ctx c = {b, path, {0}, -1};
    if ((st = hf_file_each_vocab(f, path, add_vocab, &c, err)) != KVL_OK)
        goto fail;

    /* string -> entry table; a repeated string keeps its last id */
    size_t cap = 16;
    while (cap < 2 * b->n_e + 2)
        cap *= 2;
    b->table = calloc(cap, sizeof *b->table);
    if (!b->table) {
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory for the vocabulary");
        goto fail;
    }
    b->table_mask = cap - 1;
    for (size_t k = 0; k < b->n_e; k++) {
        const char *s = b->arena + b->e_off[k];
        size_t n = b->e_len[k];
        size_t i = (size_t)hf_hash(s, n) & b->table_mask;
        for (;;) {
            int32_t e = b->table[i];
            if (e == 0) {
                b->table[i] = (int32_t)k + 1;
                b->n_entries++;
                break;
            }
            size_t o = (size_t)e - 1;
            if (b->e_len[o] == n && memcmp(b->arena + b->e_off[o], s, n) == 0) {
                b->e_id[o] = -1; /* replaced */
                b->table[i] = (int32_t)k + 1;
                break;
            }
            i = (i + 1) & b->table_mask;
        }
    }
    b->n_ids = c.max_id + 1;
    if (b->n_ids > 0) {
        b->off = malloc((size_t)b->n_ids * sizeof *b->off);
        b->len = malloc((size_t)b->n_ids * sizeof *b->len);
        if (!b->off || !b->len) {
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory for the vocabulary");
            goto fail;
        }
        for (int32_t i = 0; i < b->n_ids; i++)
            b->len[i] = -1;
        for (size_t k = 0; k < b->n_e; k++) {
            int32_t id = b->e_id[k];
            if (id < 0)
                continue;
            b->off[id] = b->e_off[k];
            b->len[id] = (int32_t)b->e_len[k];
        }
    }

    /* merges */
    b->merges = malloc(1024 * sizeof *b->merges);
    if (!b->merges) {
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory for merges");
        goto fail;
    }
    for (size_t i = 0; i < 1024; i++)
        b->merges[i].key = MERGE_EMPTY;
    b->merges_mask = 1023;
    if ((st = hf_file_each_merge(f, path, add_merge, &c, err)) != KVL_OK)
        goto fail;

    /* one-character tokens, byte-level characters, <0xXX> tokens */
    b->cp_id = malloc(65536 * sizeof *b->cp_id);
    if (!b->cp_id) {
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < 65536; i++)
        b->cp_id[i] = -1;
    for (size_t k = 0; k < b->n_e; k++) {
        int32_t cp;
        if (b->e_id[k] >= 0 &&
            hf_utf8_single(b->arena + b->e_off[k], b->e_len[k], &cp) &&
            cp < 65536)
            b->cp_id[cp] = b->e_id[k];
    }
    b->bytes_complete = 1;
    for (int x = 0; x < 256; x++) {
        b->byte_id[x] = hf_bpe_lookup(b, bm->utf8[x], bm->len[x]);
        if (b->byte_id[x] < 0)
            b->bytes_complete = 0;
        char hex[8];
        static const char digits[] = "0123456789ABCDEF";
        memcpy(hex, "<0x", 3);
        hex[3] = digits[x >> 4];
        hex[4] = digits[x & 15];
        hex[5] = '>';
        b->fallback_id[x] = hf_bpe_lookup(b, hex, 6);
    }
    if (b->unk)
        b->unk_id = hf_bpe_lookup(b, b->unk, b->unk_len);
    kvl_strbuf_free(&c.cat);
    return KVL_OK;
fail:
    kvl_strbuf_free(&c.cat);
    hf_bpe_free(b);
    return st;
}

void hf_bpe_free(hf_bpe *b)
{
    if (!b)
        return;
    free(b->arena);
    free(b->e_off);
    free(b->e_len);
    free(b->e_id);
    free(b->off);
    free(b->len);
    free(b->table);
    free(b->merges);
    free(b->cp_id);
    free(b->unk);
    free(b->prefix);
    free(b->suffix);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct heap_ent {
    uint32_t rank;
    int32_t pos;
} heap_ent;

void hf_bpe_state_init(hf_bpe_state *s, const hf_bpe *bpe, int bytelevel,
                       const hf_bytemap *bm)
{
    memset(s, 0, sizeof *s);
    s->bpe = bpe;
    s->bytelevel = bytelevel;
    s->bm = bm;
}

void hf_bpe_state_free(hf_bpe_state *s)
{
    free(s->slots);
    free(s->ent);
    kvl_strbuf_free(&s->keys);
    kvl_idbuf_free(&s->ids);
    free(s->sym);
    free(s->rank);
    free(s->newid);
    free(s->next);
    free(s->prev);
    free(s->ver);
    free(s->heap);
    kvl_strbuf_free(&s->str);
    kvl_strbuf_free(&s->tmp);
    memset(s, 0, sizeof *s);
}

static kvl_status reserve(hf_bpe_state *s, size_t need, kvl_error *err)
{
    if (need <= s->cap)
        return KVL_OK;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < need)
        cap *= 2;
    int32_t *sym = realloc(s->sym, cap * sizeof *sym);
    if (sym)
        s->sym = sym;
    uint32_t *rank = realloc(s->rank, cap * sizeof *rank);
    if (rank)
        s->rank = rank;
    int32_t *newid = realloc(s->newid, cap * sizeof *newid);
    if (newid)
        s->newid = newid;
    int32_t *next = realloc(s->next, cap * sizeof *next);
    if (next)
        s->next = next;
    int32_t *prev = realloc(s->prev, cap * sizeof *prev);
    if (prev)
        s->prev = prev;
    uint32_t *ver = realloc(s->ver, cap * sizeof *ver);
    if (ver)
        s->ver = ver;
    /* every merge pushes at most 2 entries: 3 * cap bounds the heap */
    heap_ent *heap = realloc(s->heap, 3 * cap * sizeof *heap);
    if (heap)
        s->heap = heap;
    if (!sym || !rank || !newid || !next || !prev || !ver || !heap)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory encoding a word of "
                        "%zu symbols", need);
    s->cap = cap;
    return KVL_OK;
}

static inline int heap_less(heap_ent a, heap_ent b)
{
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void heap_push(heap_ent *h, size_t *n, heap_ent x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(x, h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static heap_ent heap_pop(heap_ent *h, size_t *n)
{
    heap_ent top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && heap_less(h[c + 1], h[c]))
            c++;
        if (!heap_less(h[c], last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m > 0)
        h[i] = last;
    return top;
}

/* Merges s->sym[0..n) in place; returns the new count (small words). */
static size_t merge_small(hf_bpe_state *s, size_t n)
{
    const hf_bpe *b = s->bpe;
    int32_t *sym = s->sym, *nid = s->newid;
    uint32_t *rank = s->rank;
    for (size_t i = 0; i + 1 < n; i++)
        if (!merge_find(b, sym[i], sym[i + 1], &rank[i], &nid[i]))
            rank[i] = UINT32_MAX;
    while (n > 1) {
        size_t best = 0;
        uint32_t br = rank[0];
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < br) {
                br = rank[i];
                best = i;
            }
        if (br == UINT32_MAX)
            break;
        sym[best] = nid[best];
        /* drop symbol best+1 and pair best+1 */
        memmove(sym + best + 1, sym + best + 2, (n - best - 2) * sizeof *sym);
        if (best + 2 < n) {
            memmove(rank + best + 1, rank + best + 2,
                    (n - best - 3) * sizeof *rank);
            memmove(nid + best + 1, nid + best + 2, (n - best - 3) * sizeof *nid);
        }
        n--;
        if (best > 0 &&
            !merge_find(b, sym[best - 1], sym[best], &rank[best - 1], &nid[best - 1]))
            rank[best - 1] = UINT32_MAX;
        if (best + 1 < n &&
            !merge_find(b, sym[best], sym[best + 1], &rank[best], &nid[best]))
            rank[best] = UINT32_MAX;
    }
    return n;
}

/* The same for long words: linked list + heap keyed by (rank, position). */
static size_t merge_large(hf_bpe_state *s, size_t n)
{
    const hf_bpe *b = s->bpe;
    int32_t *sym = s->sym, *next = s->next, *prev = s->prev;
    heap_ent *h = s->heap;
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t r;
        int32_t id;
        if (merge_find(b, sym[i], sym[i + 1], &r, &id))
            heap_push(h, &nh, (heap_ent){r, (int32_t)i});
    }
    while (nh > 0) {
        heap_ent top = heap_pop(h, &nh);
        int32_t p = top.pos;
        if (sym[p] < 0 || next[p] < 0)
            continue; /* absorbed, or now last */
        int32_t q = next[p];
        uint32_t r;
        int32_t id;
        if (!merge_find(b, sym[p], sym[q], &r, &id) || r != top.rank)
            continue; /* stale: the pair at p changed */
        sym[p] = id;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0)
            prev[next[q]] = p;
        if (prev[p] >= 0 && merge_find(b, sym[prev[p]], sym[p], &r, &id))
            heap_push(h, &nh, (heap_ent){r, prev[p]});
        if (next[p] >= 0 && merge_find(b, sym[p], sym[next[p]], &r, &id))
            heap_push(h, &nh, (heap_ent){r, p});
    }
    size_t w = 0;
    for (int32_t i = 0; i >= 0; i = next[i])
        sym[w++] = sym[i];
    return w;
}

/* Builds the initial symbols of word w[0..n) (tokenizers' merge_word). */
static kvl_status initial_symbols(hf_bpe_state *s, const char *w, size_t n,
                                  size_t *count, kvl_error *err)
{
    const hf_bpe *b = s->bpe;
    size_t ns = 0;
    int unk_pending = 0;
    kvl_status st;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t clen = hf_utf8_next(w, n, i, &cp);
        int use_prefix = i > 0 && b->prefix;
        int use_suffix = i + clen == n && b->suffix;
        const char *cs = w + i;
        size_t cn = clen;
        int32_t id;
        if (!use_prefix && !use_suffix) {
            id = (cp >= 0 && cp < 65536) ? b->cp_id[cp] : hf_bpe_lookup(b, cs, cn);
        } else {
            s->tmp.n = 0;
            if ((use_prefix &&
                 (st = kvl_strbuf_append(&s->tmp, b->prefix, b->prefix_len, err)) != KVL_OK) ||
                (st = kvl_strbuf_append(&s->tmp, cs, cn, err)) != KVL_OK ||
                (use_suffix &&
                 (st = kvl_strbuf_append(&s->tmp, b->suffix, b->suffix_len, err)) != KVL_OK))
                return st;
            cs = s->tmp.s;
            cn = s->tmp.n;
            id = hf_bpe_lookup(b, cs, cn);
        }
        i += clen;
        if ((st = reserve(s, ns + cn + 2, err)) != KVL_OK)
            return st;
        if (id >= 0) {
            if (unk_pending) {
                s->sym[ns++] = b->unk_id;
                unk_pending = 0;
            }
            s->sym[ns++] = id;
            continue;
        }
        if (b->byte_fallback) {
            size_t k = 0;
            while (k < cn && b->fallback_id[(unsigned char)cs[k]] >= 0)
                k++;
            if (k == cn) {
                /* tokenizers adds these without flushing a pending unknown */
                for (k = 0; k < cn; k++)
                    s->sym[ns++] = b->fallback_id[(unsigned char)cs[k]];
                continue;
            }
        }
        if (b->unk) {
            if (b->unk_id < 0)
                return kvl_fail(err, KVL_ERR_FORMAT,
                                "kvl_tokenizer_encode: the text needs "
                                "unk_token \"%s\", which is not in the "
                                "vocabulary",
                                b->unk);
            if (unk_pending && !b->fuse_unk)
                s->sym[ns++] = b->unk_id;
            unk_pending = 1;
        }
        /* else: the character is dropped */
    }
    if (unk_pending) {
        if ((st = reserve(s, ns + 1, err)) != KVL_OK)
            return st;
        s->sym[ns++] = b->unk_id;
    }
    *count = ns;
    return KVL_OK;
}

static kvl_status encode_word(hf_bpe_state *s, const char *piece, size_t n,
                              kvl_idbuf *out, kvl_error *err)
{
    const hf_bpe *b = s->bpe;
    kvl_status st;
    const char *w = piece;
    size_t wn = n;
    int fast = s->bytelevel && b->bytes_complete && !b->prefix && !b->suffix;
    if (s->bytelevel && (b->ignore_merges || !fast)) {
        s->str.n = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)piece[i];
            if ((st = kvl_strbuf_append(&s->str, s->bm->utf8[c], s->bm->len[c],
                                        err)) != KVL_OK)
                return st;
        }
        w = s->str.s;
        wn = s->str.n;
    }
    if (b->ignore_merges) {
        int32_t id = hf_bpe_lookup(b, w, wn);
        if (id >= 0)
            return kvl_idbuf_push(out, id, err);
    }
    size_t ns = 0;
    if (fast) {
        if ((st = reserve(s, n, err)) != KVL_OK)
            return st;
        for (size_t i = 0; i < n; i++)
            s->sym[i] = b->byte_id[(unsigned char)piece[i]];
        ns = n;
    } else if ((st = initial_symbols(s, w, wn, &ns, err)) != KVL_OK) {
        return st;
    }
    if (ns > 1)
        ns = ns <= SMALL_WORD ? merge_small(s, ns) : merge_large(s, ns);
    return kvl_idbuf_append(out, s->sym, ns, err);
}

/* Word cache: piece bytes -> ids, for this call only. */
static const hf_bpe_cache_entry *cache_get(const hf_bpe_state *s,
                                           const char *p, size_t n,
                                           uint64_t h)
{
    if (!s->slots)
        return NULL;
    size_t i = (size_t)h & s->slot_mask;
    for (;;) {
        uint32_t e = s->slots[i];
        if (e == 0)
            return NULL;
        const hf_bpe_cache_entry *x = &s->ent[e - 1];
        if (x->hash == h && x->key_len == n &&
            memcmp(s->keys.s + x->key_off, p, n) == 0)
            return x;
        i = (i + 1) & s->slot_mask;
    }
}

static void cache_put(hf_bpe_state *s, const char *p, size_t n, uint64_t h,
                      const int32_t *ids, size_t n_ids)
{
    if (s->n_ent >= CACHE_MAX_ENTRIES)
        return;
    /* grow the slot table at half load */
    if (2 * (s->n_ent + 1) > (s->slots ? s->slot_mask + 1 : 0)) {
        size_t cap = s->slots ? 2 * (s->slot_mask + 1) : 64;
        uint32_t *t = calloc(cap, sizeof *t);
        if (!t)
            return;
        for (size_t k = 0; k < s->n_ent; k++) {
            size_t i = (size_t)s->ent[k].hash & (cap - 1);
            while (t[i])
                i = (i + 1) & (cap - 1);
            t[i] = (uint32_t)k + 1;
        }
        free(s->slots);
        s->slots = t;
        s->slot_mask = cap - 1;
    }
    if (s->n_ent == s->cap_ent) {
        size_t cap = s->cap_ent ? 2 * s->cap_ent : 32;
        hf_bpe_cache_entry *e = realloc(s->ent, cap * sizeof *e);
        if (!e)
            return;
        s->ent = e;
        s->cap_ent = cap;
    }
    size_t key_off = s->keys.n, ids_off = s->ids.n;
    if (kvl_strbuf_append(&s->keys, p, n, NULL) != KVL_OK)
        return;
    if (kvl_idbuf_append(&s->ids, ids, n_ids, NULL) != KVL_OK) {
        s->keys.n = key_off;
        return;
    }
    if (s->keys.n > UINT32_MAX || s->ids.n > UINT32_MAX)
        return;
    hf_bpe_cache_entry *x = &s->ent[s->n_ent];
    x->hash = h;
    x->key_off = (uint32_t)key_off;
    x->key_len = (uint32_t)n;
    x->ids_off = (uint32_t)ids_off;
    x->ids_n = (uint32_t)n_ids;
    size_t i = (size_t)h & s->slot_mask;
    while (s->slots[i])
        i = (i + 1) & s->slot_mask;
    s->slots[i] = (uint32_t)s->n_ent + 1;
    s->n_ent++;
}

kvl_status hf_bpe_encode_piece(hf_bpe_state *s, const char *piece, size_t n,
                               kvl_idbuf *out, kvl_error *err)
{
    if (n == 0)
        return KVL_OK;
    if (n > CACHE_MAX_KEY)
        return encode_word(s, piece, n, out, err);
    uint64_t h = hf_hash(piece, n);
    const hf_bpe_cache_entry *hit = cache_get(s, piece, n, h);
    if (hit)
        return hit->ids_n ? kvl_idbuf_append(out, s->ids.v + hit->ids_off, hit->ids_n, err)
                          : KVL_OK;
    size_t start = out->n;
    kvl_status st = encode_word(s, piece, n, out, err);
    if (st == KVL_OK)
        cache_put(s, piece, n, h, out->n > start ? out->v + start : NULL, out->n - start);
    return st;
}
