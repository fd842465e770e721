/* Causal grouped-query attention of T new queries over the cache. */
#ifndef KVL_ENGINE_CPU_ATTENTION_H
#define KVL_ENGINE_CPU_ATTENTION_H

#include "kvlab.h"

/*
 * q: [T][n_heads*head_dim] (rotated).  Query t sits at cache index
 * n_past + t and attends to cache entries 0..n_past+t of kv head
 * h / (n_heads / n_kv_heads).  out: [T][n_heads*head_dim].
 * scores: n_threads * score_cap floats of scratch, score_cap >= n_past + T.
 */
void kvl_attention(float *out, const float *q, const kvl_cache *cache,
                   int32_t layer, int32_t n_past, int32_t T, int32_t n_heads,
                   float *scores, size_t score_cap, int n_threads);

#endif
