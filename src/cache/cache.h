/* Internal layout of kvl_cache and constructors used by the engine and the
 * file reader. */
#ifndef KVL_CACHE_CACHE_H
#define KVL_CACHE_CACHE_H

#include "kvlab.h"

struct kvl_cache {
    int32_t n_layers, n_kv_heads, head_dim;
    int32_t n_tokens, capacity;
    kvl_rope rope;
    float *inv_freq;          /* [rope.rotary_dim/2], from rope            */
    char arch_name[64];
    char fingerprint[65];
    /* k[l] / v[l]: [n_kv_heads][capacity][head_dim]; head h token t at
     * (h * capacity + t) * head_dim. */
    float **k;
    float **v;
    int32_t *token_ids;       /* [capacity] */
    int32_t *positions;       /* [capacity] */
};

/* An empty cache of the given geometry (capacity may be 0). */
kvl_status kvl_cache_create(int32_t n_layers, int32_t n_kv_heads,
                            int32_t head_dim, const kvl_rope *rope,
                            const char *arch_name, const char *fingerprint,
                            int32_t capacity, kvl_cache **out,
                            kvl_error *err);
/* Grows capacity to at least `capacity` tokens, keeping the content. */
kvl_status kvl_cache_reserve(kvl_cache *c, int32_t capacity, kvl_error *err);

static inline float *kvl_cache_row(const kvl_cache *c, kvl_kv which,
                                   int32_t layer, int32_t head, int32_t tok)
{
    float *base = which == KVL_K ? c->k[layer] : c->v[layer];
    return base + ((size_t)head * (size_t)c->capacity + (size_t)tok) *
                      (size_t)c->head_dim;
}

#endif
