#include "engine/cpu/attention.h"

#include "cache/cache.h"

#include <math.h>
#include <omp.h>

static void attend_one(float *out, const float *q, const kvl_cache *c,
                       int32_t layer, int32_t kvh, int32_t n_ctx,
                       float *scores)
{
    const int32_t hd = c->head_dim;
    const float scale = 1.0f / sqrtf((float)hd);
    float maxv = -INFINITY;
    for (int32_t j = 0; j < n_ctx; j++) {
        const float *k = kvl_cache_row(c, KVL_K, layer, kvh, j);
        float dot = 0.0f;
        for (int32_t d = 0; d < hd; d++)
            dot += q[d] * k[d];
        scores[j] = dot * scale;
        if (scores[j] > maxv)
            maxv = scores[j];
    }
    float sum = 0.0f;
    for (int32_t j = 0; j < n_ctx; j++) {
        scores[j] = expf(scores[j] - maxv);
        sum += scores[j];
    }
    const float inv = 1.0f / sum;
    for (int32_t d = 0; d < hd; d++)
        out[d] = 0.0f;
    for (int32_t j = 0; j < n_ctx; j++) {
        const float *v = kvl_cache_row(c, KVL_V, layer, kvh, j);
        const float p = scores[j] * inv;
        for (int32_t d = 0; d < hd; d++)
            out[d] += p * v[d];
    }
}

void kvl_attention(float *out, const float *q, const kvl_cache *cache,
                   int32_t layer, int32_t n_past, int32_t T, int32_t n_heads,
                   float *scores, size_t score_cap, int n_threads)
{
    const int32_t hd = cache->head_dim;
    const int32_t group = n_heads / cache->n_kv_heads;
    const int64_t n_items = (int64_t)T * n_heads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
    for (int64_t item = 0; item < n_items; item++) {
        const int32_t t = (int32_t)(item / n_heads);
        const int32_t h = (int32_t)(item % n_heads);
        float *my_scores = scores + (size_t)omp_get_thread_num() * score_cap;
        attend_one(out + ((size_t)t * n_heads + h) * hd,
                   q + ((size_t)t * n_heads + h) * hd, cache, layer, h / group,
                   n_past + t + 1, my_scores);
    }
}
