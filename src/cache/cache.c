/*
 * The KV cache object: creation, growth, access, editing (truncate, slice,
 * concat) and re-positioning of keys.  Files are in cache_file.c.
 *
 * Storage: per layer one K and one V plane [n_kv_heads][capacity][head_dim]
 * so that the n_tokens rows of one (layer, head) are contiguous: attention
 * reads them as one matrix and kvl_cache_data can hand them out directly.
 * Every cache owns at least one token of storage so that its pointers are
 * never NULL, even when empty.
 */
#include "cache/cache.h"

#include "core/error.h"
#include "core/rope.h"
#include "model/model.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sanity limits on geometry: far above any real model, low enough that a
 * corrupt file cannot make a "0 token" cache allocate absurd amounts. */
#define KVL_CACHE_MAX_LAYERS (1 << 16)
#define KVL_CACHE_MAX_DIM (1 << 16)
#define KVL_CACHE_MAX_ROW (1 << 24) /* n_kv_heads * head_dim */
#define ARCH_NAME_SIZE sizeof(((kvl_cache *)NULL)->arch_name)

/* ------------------------------------------------------------------------ */
/* Allocation                                                                */
/* ------------------------------------------------------------------------ */

/* a * b into *out; 0 on size_t overflow. */
static int mul_size(size_t a, size_t b, size_t *out)
{
    if (b != 0 && a > SIZE_MAX / b)
        return 0;
    *out = a * b;
    return 1;
}

/* Bytes of one plane of `capacity` tokens, or 0 when it would overflow. */
static size_t plane_bytes(const kvl_cache *c, int32_t capacity)
{
    size_t n;
    if (!mul_size((size_t)c->n_kv_heads * (size_t)c->head_dim,
                  (size_t)capacity, &n) ||
        !mul_size(n, sizeof(float), &n))
        return 0;
    return n;
}

static void free_planes(float **planes, int32_t n)
{
    if (!planes)
        return;
    for (int32_t i = 0; i < n; i++)
        free(planes[i]);
    free(planes);
}

/* n planes of `bytes` each, or NULL (nothing leaked). */
static float **alloc_planes(int32_t n, size_t bytes)
{
    float **p = calloc((size_t)n, sizeof *p);
    if (!p)
        return NULL;
    for (int32_t i = 0; i < n; i++) {
        p[i] = malloc(bytes);
        if (!p[i]) {
            free_planes(p, i);
            return NULL;
        }
    }
    return p;
}

/* Copies the first n_tokens rows of every head of `src` (stride src_cap)
 * into `dst` (stride dst_cap). */
static void copy_plane(float *dst, int32_t dst_cap, const float *src,
                       int32_t src_cap, const kvl_cache *c, int32_t n_tokens)
{
    const size_t hd = (size_t)c->head_dim;
    if (n_tokens == 0)
        return;
    for (int32_t h = 0; h < c->n_kv_heads; h++)
        memcpy(dst + (size_t)h * (size_t)dst_cap * hd,
               src + (size_t)h * (size_t)src_cap * hd,
               (size_t)n_tokens * hd * sizeof(float));
}

kvl_status kvl_cache_reserve(kvl_cache *c, int32_t capacity, kvl_error *err)
{
    if (!c)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cache_reserve: cache is NULL");
    if (capacity < 0)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_cache_reserve: capacity %d is negative",
                        (int)capacity);
    if (capacity <= c->capacity)
        return KVL_OK;
    const size_t bytes = plane_bytes(c, capacity);
    if (bytes == 0)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_cache_reserve: capacity %d x %d kv heads x "
                        "head_dim %d overflows the address space",
                        (int)capacity, (int)c->n_kv_heads, (int)c->head_dim);

    /* Allocate everything first so that failure leaves the cache intact. */
    float **nk = alloc_planes(c->n_layers, bytes);
    float **nv = nk ? alloc_planes(c->n_layers, bytes) : NULL;
    int32_t *ids = malloc((size_t)capacity * sizeof *ids);
    int32_t *pos = malloc((size_t)capacity * sizeof *pos);
    if (!nk || !nv || !ids || !pos) {
        free_planes(nk, c->n_layers);
        free_planes(nv, c->n_layers);
        free(ids);
        free(pos);
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "kvl_cache_reserve: out of memory for %d tokens "
                        "(%zu bytes per layer plane)",
                        (int)capacity, bytes);
    }
    for (int32_t l = 0; l < c->n_layers && c->n_tokens > 0; l++) {
        copy_plane(nk[l], capacity, c->k[l], c->capacity, c, c->n_tokens);
        copy_plane(nv[l], capacity, c->v[l], c->capacity, c, c->n_tokens);
    }
    if (c->n_tokens > 0) {
        memcpy(ids, c->token_ids, (size_t)c->n_tokens * sizeof *ids);
        memcpy(pos, c->positions, (size_t)c->n_tokens * sizeof *pos);
    }
    free_planes(c->k, c->n_layers);
    free_planes(c->v, c->n_layers);
    free(c->token_ids);
    free(c->positions);
    c->k = nk;
    c->v = nv;
    c->token_ids = ids;
    c->positions = pos;
    c->capacity = capacity;
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Creation and identity                                                     */
/* ------------------------------------------------------------------------ */

/* A fingerprint is "" or up to 64 printable non-space ASCII characters
 * (kvlab writes 64 hex digits); anything else is a corrupt value. */
static int fingerprint_ok(const char *fp)
{
    size_t n = strlen(fp);
    if (n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (fp[i] <= ' ' || fp[i] > '~')
            return 0;
    return 1;
}

static kvl_status check_geometry(int32_t n_layers, int32_t n_kv_heads,
                                 int32_t head_dim, kvl_error *err)
{
    if (n_layers <= 0 || n_layers > KVL_CACHE_MAX_LAYERS)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "cache: n_layers %d out of range [1, %d]",
                        (int)n_layers, KVL_CACHE_MAX_LAYERS);
    if (n_kv_heads <= 0 || n_kv_heads > KVL_CACHE_MAX_DIM)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "cache: n_kv_heads %d out of range [1, %d]",
                        (int)n_kv_heads, KVL_CACHE_MAX_DIM);
    if (head_dim <= 0 || head_dim > KVL_CACHE_MAX_DIM)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "cache: head_dim %d out of range [1, %d]",
                        (int)head_dim, KVL_CACHE_MAX_DIM);
    if ((int64_t)n_kv_heads * head_dim > KVL_CACHE_MAX_ROW)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "cache: n_kv_heads %d x head_dim %d exceeds %d",
                        (int)n_kv_heads, (int)head_dim, KVL_CACHE_MAX_ROW);
    return KVL_OK;
}

static kvl_status check_names(const char *arch_name, const char *fingerprint,
                              kvl_error *err)
{
    if (strlen(arch_name) >= ARCH_NAME_SIZE)
        return kvl_fail(err, KVL_ERR_ARG,
                        "cache: architecture name '%.80s' longer than %zu "
                        "characters",
                        arch_name, ARCH_NAME_SIZE - 1);
    if (!fingerprint_ok(fingerprint))
        return kvl_fail(err, KVL_ERR_ARG,
                        "cache: model fingerprint '%.80s' must be empty or "
                        "up to 64 printable non-space characters",
                        fingerprint);
    return KVL_OK;
}

kvl_status kvl_cache_create(int32_t n_layers, int32_t n_kv_heads,
                            int32_t head_dim, const kvl_rope *rope,
                            const char *arch_name, const char *fingerprint,
                            int32_t capacity, kvl_cache **out,
                            kvl_error *err)
{
    if (!out || !rope)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_cache_create: out and rope must not be NULL");
    *out = NULL;
    if (!arch_name)
        arch_name = "";
    if (!fingerprint)
        fingerprint = "";
    kvl_status st = check_geometry(n_layers, n_kv_heads, head_dim, err);
    if (st == KVL_OK)
        st = check_names(arch_name, fingerprint, err);
    if (st == KVL_OK && (st = kvl_rope_validate(rope, head_dim, err)) != KVL_OK)
        kvl_error_prefix(err, st, "cache: invalid rope");
    if (st != KVL_OK)
        return st;
    if (capacity < 0)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_cache_create: capacity %d is negative",
                        (int)capacity);

    kvl_cache *c = calloc(1, sizeof *c);
    if (!c)
        return kvl_fail(err, KVL_ERR_NOMEM, "kvl_cache_create: out of memory");
    c->n_layers = n_layers;
    c->n_kv_heads = n_kv_heads;
    c->head_dim = head_dim;
    c->rope = *rope;
    snprintf(c->arch_name, sizeof c->arch_name, "%s", arch_name);
    snprintf(c->fingerprint, sizeof c->fingerprint, "%s", fingerprint);
    c->inv_freq = malloc((size_t)(rope->rotary_dim / 2) * sizeof(float));
    if (!c->inv_freq) {
        free(c);
        return kvl_fail(err, KVL_ERR_NOMEM, "kvl_cache_create: out of memory");
    }
    kvl_rope_inv_freq(&c->rope, c->inv_freq);
    st = kvl_cache_reserve(c, capacity > 0 ? capacity : 1, err);
    if (st != KVL_OK) {
        kvl_cache_free(c);
        return st;
    }
    *out = c;
    return KVL_OK;
}

kvl_status kvl_cache_new(const kvl_model *model, int32_t capacity,
                         kvl_cache **out, kvl_error *err)
{
    if (!model)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cache_new: model is NULL");
    const kvl_config *cfg = &model->cfg;
    return kvl_cache_create(cfg->n_layers, cfg->n_kv_heads, cfg->head_dim,
                            &cfg->rope, cfg->arch_name, model->fingerprint,
                            capacity, out, err);
}

void kvl_cache_free(kvl_cache *cache)
{
    if (!cache)
        return;
    free_planes(cache->k, cache->n_layers);
    free_planes(cache->v, cache->n_layers);
    free(cache->token_ids);
    free(cache->positions);
    free(cache->inv_freq);
    free(cache);
}

void kvl_cache_get_info(const kvl_cache *cache, kvl_cache_info *info)
{
    if (!info)
        return;
    memset(info, 0, sizeof *info);
    if (!cache) {
        info->arch_name = "";
        info->fingerprint = "";
        return;
    }
    info->n_layers = cache->n_layers;
    info->n_kv_heads = cache->n_kv_heads;
    info->head_dim = cache->head_dim;
    info->n_tokens = cache->n_tokens;
    info->capacity = cache->capacity;
    info->rope = cache->rope;
    info->arch_name = cache->arch_name;
    info->fingerprint = cache->fingerprint;
}

int32_t kvl_cache_n_tokens(const kvl_cache *cache)
{
    return cache ? cache->n_tokens : 0;
}

/* A new empty cache with src's geometry, rope and identity. */
static kvl_status create_like(const kvl_cache *src, int32_t n_layers,
                              int32_t capacity, kvl_cache **out,
                              kvl_error *err)
{
    return kvl_cache_create(n_layers, src->n_kv_heads, src->head_dim,
                            &src->rope, src->arch_name, src->fingerprint,
                            capacity, out, err);
}

/* Copies tokens [tok0, tok0 + n) of layers [layer0, layer0 + dst->n_layers)
 * of src to the end of dst (which has room). */
static void append_range(kvl_cache *dst, const kvl_cache *src, int32_t layer0,
                         int32_t tok0, int32_t n)
{
    const size_t row = (size_t)src->head_dim * sizeof(float);
    if (n == 0)
        return;
    for (int32_t l = 0; l < dst->n_layers; l++) {
        for (int32_t h = 0; h < src->n_kv_heads; h++) {
            memcpy(kvl_cache_row(dst, KVL_K, l, h, dst->n_tokens),
                   kvl_cache_row(src, KVL_K, layer0 + l, h, tok0),
                   (size_t)n * row);
            memcpy(kvl_cache_row(dst, KVL_V, l, h, dst->n_tokens),
                   kvl_cache_row(src, KVL_V, layer0 + l, h, tok0),
                   (size_t)n * row);
        }
    }
    memcpy(dst->token_ids + dst->n_tokens, src->token_ids + tok0,
           (size_t)n * sizeof(int32_t));
    memcpy(dst->positions + dst->n_tokens, src->positions + tok0,
           (size_t)n * sizeof(int32_t));
    dst->n_tokens += n;
}

kvl_status kvl_cache_copy(const kvl_cache *src, kvl_cache **out,
                          kvl_error *err)
{
    if (!src || !out)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_cache_copy: src and out must not be NULL");
    /* Capacity = n_tokens: the copy is compact and grows again on append. */
    kvl_status st = create_like(src, src->n_layers, src->n_tokens, out, err);
    if (st != KVL_OK)
        return st;
    append_range(*out, src, 0, 0, src->n_tokens);
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Access                                                                    */
/* ------------------------------------------------------------------------ */

static kvl_status check_plane(const kvl_cache *c, kvl_kv which, int32_t layer,
                              int32_t kv_head, const char *fn, kvl_error *err)
{
    if (which != KVL_K && which != KVL_V)
        return kvl_fail(err, KVL_ERR_ARG, "%s: `which` is %d, not KVL_K or KVL_V",
                        fn, (int)which);
    if (layer < 0 || layer >= c->n_layers)
        return kvl_fail(err, KVL_ERR_RANGE, "%s: layer %d out of range [0, %d)",
                        fn, (int)layer, (int)c->n_layers);
    if (kv_head < 0 || kv_head >= c->n_kv_heads)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "%s: kv head %d out of range [0, %d)", fn,
                        (int)kv_head, (int)c->n_kv_heads);
    return KVL_OK;
}

kvl_status kvl_cache_read(const kvl_cache *cache, kvl_kv which, int32_t layer,
                          int32_t kv_head, int32_t tok0, int32_t n,
                          float *out, kvl_error *err)
{
    if (!cache)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cache_read: cache is NULL");
    kvl_status st = check_plane(cache, which, layer, kv_head, "kvl_cache_read",
                                err);
    if (st != KVL_OK)
        return st;
    if (tok0 < 0 || n < 0 || (int64_t)tok0 + n > cache->n_tokens)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_cache_read: tokens [%d, %lld) out of range "
                        "[0, %d)",
                        (int)tok0, (long long)tok0 + n, (int)cache->n_tokens);
    if (n == 0)
        return KVL_OK;
    if (!out)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cache_read: out is NULL");
    memcpy(out, kvl_cache_row(cache, which, layer, kv_head, tok0),
           (size_t)n * (size_t)cache->head_dim * sizeof(float));
    return KVL_OK;
}

const float *kvl_cache_data(const kvl_cache *cache, kvl_kv which,
                            int32_t layer, int32_t kv_head)
{
    if (!cache ||
        check_plane(cache, which, layer, kv_head, "kvl_cache_data", NULL) != KVL_OK)
        return NULL;
    return kvl_cache_row(cache, which, layer, kv_head, 0);
}

const int32_t *kvl_cache_token_ids(const kvl_cache *cache)
{
    return cache ? cache->token_ids : NULL;
}

const int32_t *kvl_cache_positions(const kvl_cache *cache)
{
    return cache ? cache->positions : NULL;
}

/* ------------------------------------------------------------------------ */
/* Editing                                                                   */
/* ------------------------------------------------------------------------ */

kvl_status kvl_cache_append(kvl_cache *cache, int32_t token_id,
                            int32_t position, const float *k, const float *v,
                            kvl_error *err)
{
    if (!cache || !k || !v)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_cache_append: cache, k and v must not be NULL");
    if (token_id < 0)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_cache_append: token id %d is negative",
                        (int)token_id);
    if (position < 0)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_cache_append: position %d is negative",
                        (int)position);
    if (cache->n_tokens == INT32_MAX)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_cache_append: cache already holds %d tokens",
                        (int)INT32_MAX);
    if (cache->n_tokens == cache->capacity) {
        /* Geometric growth: amortised O(1) appends. */
        int32_t cap = cache->capacity <= INT32_MAX / 2 ? 2 * cache->capacity
                                                       : INT32_MAX;
        kvl_status st = kvl_cache_reserve(cache, cap, err);
        if (st != KVL_OK)
            return st;
    }
    const size_t hd = (size_t)cache->head_dim;
    const int32_t t = cache->n_tokens;
    for (int32_t l = 0; l < cache->n_layers; l++) {
        for (int32_t h = 0; h < cache->n_kv_heads; h++) {
            size_t src = ((size_t)l * (size_t)cache->n_kv_heads + (size_t)h) * hd;
            memcpy(kvl_cache_row(cache, KVL_K, l, h, t), k + src,
                   hd * sizeof(float));
            memcpy(kvl_cache_row(cache, KVL_V, l, h, t), v + src,
                   hd * sizeof(float));
        }
    }
    cache->token_ids[t] = token_id;
    cache->positions[t] = position;
    cache->n_tokens = t + 1;
    return KVL_OK;
}

kvl_status kvl_cache_truncate(kvl_cache *cache, int32_t n_tokens,
                              kvl_error *err)
{
    if (!cache)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cache_truncate: cache is NULL");
    if (n_tokens < 0 || n_tokens > cache->n_tokens)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_cache_truncate: %d tokens out of range [0, %d]",
                        (int)n_tokens, (int)cache->n_tokens);
    cache->n_tokens = n_tokens;
    return KVL_OK;
}

kvl_status kvl_cache_slice(const kvl_cache *src, int32_t layer0,
                           int32_t layer1, int32_t tok0, int32_t tok1,
                           kvl_cache **out, kvl_error *err)
{
    if (!src || !out)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_cache_slice: src and out must not be NULL");
    if (layer0 < 0 || layer1 <= layer0 || layer1 > src->n_layers)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_cache_slice: layers [%d, %d) are not a non-empty "
                        "range within [0, %d)",
                        (int)layer0, (int)layer1, (int)src->n_layers);
    if (tok0 < 0 || tok1 < tok0 || tok1 > src->n_tokens)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_cache_slice: tokens [%d, %d) are not a range "
                        "within [0, %d)",
                        (int)tok0, (int)tok1, (int)src->n_tokens);
    kvl_status st = create_like(src, layer1 - layer0, tok1 - tok0, out, err);
    if (st != KVL_OK)
        return st;
    append_range(*out, src, layer0, tok0, tok1 - tok0);
    return KVL_OK;
}

/* Formats a difference into buf and returns 1 ("they differ"). */
static int differ(char *buf, size_t size, const char *fmt, ...) KVL_PRINTF(3, 4);
static int differ(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return 1;
}

/* Writes a description of the first difference between two ropes into buf
 * (returns 1), or returns 0 when they rotate identically.  Parameters that
 * the scaling type does not use are ignored. */
static int rope_differs(const kvl_rope *a, const kvl_rope *b, char *buf,
                        size_t size)
{
    if (a->theta != b->theta)
        return differ(buf, size, "rope theta %.17g vs %.17g", a->theta,
                      b->theta);
    if (a->layout != b->layout)
        return differ(buf, size, "rope layout %s vs %s",
                      kvl_rope_layout_name(a->layout),
                      kvl_rope_layout_name(b->layout));
    if (a->rotary_dim != b->rotary_dim)
        return differ(buf, size, "rope rotary_dim %d vs %d",
                      (int)a->rotary_dim, (int)b->rotary_dim);
    if (a->scaling != b->scaling)
        return differ(buf, size, "rope scaling %s vs %s",
                      kvl_rope_scaling_name(a->scaling),
                      kvl_rope_scaling_name(b->scaling));
    if (a->scaling != KVL_ROPE_SCALING_NONE && a->factor != b->factor)
        return differ(buf, size, "rope factor %.17g vs %.17g", a->factor,
                      b->factor);
    if (a->scaling == KVL_ROPE_SCALING_LLAMA3 &&
        (a->low_freq_factor != b->low_freq_factor ||
         a->high_freq_factor != b->high_freq_factor ||
         a->original_max_position != b->original_max_position))
        return differ(buf, size,
                      "llama3 rope low/high freq factor and original max "
                      "position %.17g/%.17g/%d vs %.17g/%.17g/%d",
                      a->low_freq_factor, a->high_freq_factor,
                      (int)a->original_max_position, b->low_freq_factor,
                      b->high_freq_factor, (int)b->original_max_position);
    return 0;
}

/* Geometry or rope difference between a cache and (n_layers, n_kv_heads,
 * head_dim, rope) of another cache or a model, described in buf. */
static int shape_differs(const kvl_cache *c, int32_t n_layers,
                         int32_t n_kv_heads, int32_t head_dim,
                         const kvl_rope *rope, char *buf, size_t size)
{
    if (c->n_layers != n_layers)
        return differ(buf, size, "n_layers %d vs %d", (int)c->n_layers,
                      (int)n_layers);
    if (c->n_kv_heads != n_kv_heads)
        return differ(buf, size, "n_kv_heads %d vs %d", (int)c->n_kv_heads,
                      (int)n_kv_heads);
    if (c->head_dim != head_dim)
        return differ(buf, size, "head_dim %d vs %d", (int)c->head_dim,
                      (int)head_dim);
    return rope_differs(&c->rope, rope, buf, size);
}

kvl_status kvl_cache_concat(const kvl_cache *a, const kvl_cache *b,
                            kvl_cache **out, kvl_error *err)
{
    char what[256];
    if (!a || !b || !out)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_cache_concat: a, b and out must not be NULL");
    if (shape_differs(a, b->n_layers, b->n_kv_heads, b->head_dim, &b->rope,
                      what, sizeof what))
        return kvl_fail(err, KVL_ERR_MISMATCH,
                        "kvl_cache_concat: caches differ (first vs second): %s",
                        what);
    /* An empty fingerprint means "unknown model" and matches any. */
    if (a->fingerprint[0] && b->fingerprint[0] &&
        strcmp(a->fingerprint, b->fingerprint) != 0)
        return kvl_fail(err, KVL_ERR_MISMATCH,
                        "kvl_cache_concat: caches come from different models "
                        "(fingerprint %s vs %s)",
                        a->fingerprint, b->fingerprint);
    if ((int64_t)a->n_tokens + b->n_tokens > INT32_MAX)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "kvl_cache_concat: %d + %d tokens exceed %d",
                        (int)a->n_tokens, (int)b->n_tokens, (int)INT32_MAX);
    kvl_status st = kvl_cache_create(
        a->n_layers, a->n_kv_heads, a->head_dim, &a->rope,
        a->arch_name[0] ? a->arch_name : b->arch_name,
        a->fingerprint[0] ? a->fingerprint : b->fingerprint,
        a->n_tokens + b->n_tokens, out, err);
    if (st != KVL_OK)
        return st;
    append_range(*out, a, 0, 0, a->n_tokens);
    append_range(*out, b, 0, 0, b->n_tokens);
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Re-positioning                                                            */
/* ------------------------------------------------------------------------ */

kvl_status kvl_cache_reposition(kvl_cache *cache, const int32_t *new_positions,
                                kvl_error *err)
{
    if (!cache)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cache_reposition: cache is NULL");
    if (cache->n_tokens == 0)
        return KVL_OK;
    if (!new_positions)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_cache_reposition: new_positions is NULL");
    /* Validate everything before touching any key: all-or-nothing. */
    for (int32_t t = 0; t < cache->n_tokens; t++)
        if (new_positions[t] < 0)
            return kvl_fail(err, KVL_ERR_RANGE,
                            "kvl_cache_reposition: new position %d of token "
                            "%d is negative",
                            (int)new_positions[t], (int)t);
    for (int32_t t = 0; t < cache->n_tokens; t++) {
        const int32_t from = cache->positions[t], to = new_positions[t];
        /* Unchanged tokens stay bit-identical (no rounding round trip). */
        if (from == to)
            continue;
        for (int32_t l = 0; l < cache->n_layers; l++) {
            for (int32_t h = 0; h < cache->n_kv_heads; h++) {
                float *x = kvl_cache_row(cache, KVL_K, l, h, t);
                kvl_rope_rotate(&cache->rope, cache->inv_freq, x,
                                cache->head_dim, from, -1);
                kvl_rope_rotate(&cache->rope, cache->inv_freq, x,
                                cache->head_dim, to, +1);
            }
        }
        cache->positions[t] = to;
    }
    return KVL_OK;
}

kvl_status kvl_cache_shift(kvl_cache *cache, int32_t delta, kvl_error *err)
{
    if (!cache)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cache_shift: cache is NULL");
    if (cache->n_tokens == 0 || delta == 0)
        return KVL_OK;
    int32_t *pos = malloc((size_t)cache->n_tokens * sizeof *pos);
    if (!pos)
        return kvl_fail(err, KVL_ERR_NOMEM, "kvl_cache_shift: out of memory");
    for (int32_t t = 0; t < cache->n_tokens; t++) {
        int64_t p = (int64_t)cache->positions[t] + delta;
        if (p < 0 || p > INT32_MAX) {
            free(pos);
            return kvl_fail(err, KVL_ERR_RANGE,
                            "kvl_cache_shift: position %d of token %d shifted "
                            "by %d gives %lld, outside [0, %d]",
                            (int)cache->positions[t], (int)t, (int)delta,
                            (long long)p, (int)INT32_MAX);
        }
        pos[t] = (int32_t)p;
    }
    kvl_status st = kvl_cache_reposition(cache, pos, err);
    free(pos);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Compatibility with a model                                                */
/* ------------------------------------------------------------------------ */

kvl_status kvl_cache_check_model(const kvl_cache *cache,
                                 const kvl_model *model, int force,
                                 kvl_error *err)
{
    char what[256];
    if (!cache || !model)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_cache_check_model: cache and model must not be "
                        "NULL");
    const kvl_config *cfg = &model->cfg;
    if (shape_differs(cache, cfg->n_layers, cfg->n_kv_heads, cfg->head_dim,
                      &cfg->rope, what, sizeof what))
        return kvl_fail(err, KVL_ERR_MISMATCH,
                        "cache does not fit the model (cache vs model): %s",
                        what);
    /* An empty fingerprint on either side means "unknown": nothing to
     * compare; geometry and rope already matched. */
    if (!force && cache->fingerprint[0] && model->fingerprint[0] &&
        strcmp(cache->fingerprint, model->fingerprint) != 0)
        return kvl_fail(err, KVL_ERR_MISMATCH,
                        "cache was made by another model (fingerprint %s, "
                        "model %s); pass force to use it anyway",
                        cache->fingerprint, model->fingerprint);
    return KVL_OK;
}
