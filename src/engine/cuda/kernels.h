/*
 * CUDA kernels of the GPU backend (issue 6), C-callable launchers.
 *
 * Conventions: activations are fp32 on the device; weights stay in their
 * stored dtype (KVL_DTYPE_BF16, KVL_DTYPE_F16 or KVL_DTYPE_F32) on the
 * device, read and converted in registers, with fp32 accumulation.  The
 * device cache of one layer is two arrays k, v of [n_kv_heads][cap][head_dim]
 * fp32, the host cache's layout (cache/cache.h), so export and import are
 * plain copies.  Every launcher enqueues on `stream`, checks its arguments
 * (cudaErrorInvalidValue for a bad size or NULL), and returns
 * cudaGetLastError() after the launch; nothing is synchronised or printed.
 * Pointers are device pointers unless a comment says otherwise.
 */
#ifndef KVL_ENGINE_CUDA_KERNELS_H
#define KVL_ENGINE_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "kvlab.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[t][dim] = table[tokens[t]][dim] converted to fp32. */
cudaError_t kvl_cu_embed(float *out, const void *table, kvl_dtype dtype,
                         const int32_t *tokens, int32_t T, int32_t dim,
                         cudaStream_t stream);

/* RMSNorm of each of `rows` rows of `width` values:
 * out = x * rsqrt(mean(x^2) + eps) * w  (w: [width] in dtype wdt).
 * out may alias x.  Used for the block norms (rows = T, width = dim) and
 * for Qwen3's per-head q/k norms (rows = T * heads, width = head_dim). */
cudaError_t kvl_cu_rmsnorm(float *out, const float *x, const void *w,
                           kvl_dtype wdt, int32_t rows, int32_t width,
                           float eps, cudaStream_t stream);

/* RoPE in place on x[T][n_heads][head_dim] at positions[T] (device),
 * rotating the first rotary_dim dims with inv_freq[rotary_dim / 2]
 * (device, from kvl_rope_inv_freq).  layout: KVL_ROPE_ROTATE_HALF pairs
 * (i, i + rotary_dim/2), KVL_ROPE_INTERLEAVED pairs (2i, 2i+1).  The angle
 * is computed as the CPU does: fp32 pos * inv_freq, then cos / sin in
 * double rounded to fp32.  sign = +1 rotates to the position, -1 back. */
cudaError_t kvl_cu_rope(float *x, const int32_t *positions, int32_t T,
                        int32_t n_heads, int32_t head_dim, int32_t rotary_dim,
                        const float *inv_freq, kvl_rope_layout layout,
                        int sign, cudaStream_t stream);

/* y[t][M] = W[M][K] . x[t][K] (+ bias[M] if non-NULL, dtype bdt) for T
 * rows, by a memory-bound kernel that reads W once for all T rows
 * (T <= KVL_CU_MATVEC_MAX_T): the decode path. */
#define KVL_CU_MATVEC_MAX_T 8
cudaError_t kvl_cu_matvec(float *y, const void *W, kvl_dtype wdt,
                          const float *x, const void *bias, kvl_dtype bdt,
                          int32_t T, int32_t M, int32_t K,
                          cudaStream_t stream);

/* fp32 -> bf16 (round to nearest even), n values (out: uint16 bits). */
cudaError_t kvl_cu_to_bf16(uint16_t *out, const float *x, int64_t n,
                           cudaStream_t stream);

/* y[t][M] += bias[M] (dtype bdt) for T rows. */
cudaError_t kvl_cu_add_bias(float *y, const void *bias, kvl_dtype bdt,
                            int32_t T, int32_t M, cudaStream_t stream);

/* x[i] += y[i]. */
cudaError_t kvl_cu_add(float *x, const float *y, int64_t n,
                       cudaStream_t stream);

/* out[i] = silu(gate[i]) * up[i]; out may alias gate. */
cudaError_t kvl_cu_swiglu(float *out, const float *gate, const float *up,
                          int64_t n, cudaStream_t stream);

/* Writes T tokens' k and v rows ([T][n_kv_heads * head_dim], fp32) into
 * the layer cache at token slots n_past .. n_past + T - 1
 * (k_cache / v_cache: [n_kv_heads][cap][head_dim]). */
cudaError_t kvl_cu_cache_store(float *k_cache, float *v_cache, int32_t cap,
                               const float *k, const float *v, int32_t n_past,
                               int32_t T, int32_t n_kv_heads, int32_t head_dim,
                               cudaStream_t stream);

/* Causal grouped-query attention for T query rows that follow n_past cached
 * tokens (the cache already holds all n_past + T):
 *   out[t][h][:] = softmax_j(q[t][h] . k[h / g][j] * scale) v[h / g][j],
 *   j = 0 .. n_past + t,  g = n_heads / n_kv_heads,  scale = 1/sqrt(hd),
 * q and out [T][n_heads][head_dim].  Never materialises the T x n score
 * matrix: T = 1 splits the keys over blocks (flash-decoding: partial max,
 * sum and output per split in `scratch`, then a combine pass); T > 1 runs
 * tiled online-softmax attention.  scratch holds
 * kvl_cu_attention_scratch(...) floats. */
cudaError_t kvl_cu_attention(float *out, const float *q, const float *k_cache,
                             const float *v_cache, int32_t cap, int32_t n_past,
                             int32_t T, int32_t n_heads, int32_t n_kv_heads,
                             int32_t head_dim, float *scratch,
                             size_t scratch_floats, cudaStream_t stream);
size_t kvl_cu_attention_scratch(int32_t T, int32_t n_heads, int32_t n_ctx,
                                int32_t head_dim);

/* Graph-friendly decode (one query row): as kvl_cu_attention with T = 1,
 * but n_ctx (= n_past + 1, at most cap) is read from device memory at run
 * time and the key split is sized for cap, so that a captured CUDA graph
 * can be replayed at every step.  scratch holds
 * kvl_cu_attention_scratch(1, n_heads, cap, head_dim) floats. */
cudaError_t kvl_cu_attention_decode_dev(float *out, const float *q,
                                        const float *k_cache, const float *v_cache,
                                        int32_t cap, const int32_t *d_n_ctx,
                                        int32_t n_heads, int32_t n_kv_heads,
                                        int32_t head_dim, float *scratch,
                                        size_t scratch_floats, cudaStream_t stream);

/* kvl_cu_cache_store of one token at slot *d_n_past (device memory). */
cudaError_t kvl_cu_cache_store_dev(float *k_cache, float *v_cache, int32_t cap,
                                   const float *k, const float *v,
                                   const int32_t *d_n_past, int32_t n_kv_heads,
                                   int32_t head_dim, cudaStream_t stream);

/* Re-positions n cached keys of one layer in place: each row of every kv
 * head is rotated back from old_pos[i] and to new_pos[i] (device arrays),
 * with the same angles as kvl_cu_rope. */
cudaError_t kvl_cu_rerotate(float *k_cache, int32_t cap, int32_t n_kv_heads,
                            int32_t head_dim, int32_t rotary_dim,
                            const float *inv_freq, kvl_rope_layout layout,
                            const int32_t *old_pos, const int32_t *new_pos,
                            int32_t n, cudaStream_t stream);

/* Fills n values of dtype dt (BF16, F16 or F32) with seeded pseudo-random
 * values uniform in [offset - scale, offset + scale) from a counter-based
 * hash (no state, any launch order): weights generated on the device for
 * benchmarks. */
cudaError_t kvl_cu_fill_random(void *p, kvl_dtype dt, int64_t n, float offset,
                               float scale, uint64_t seed, cudaStream_t stream);

/* out[r] = argmax of logits[r][vocab] (lowest index on ties), rows r. */
cudaError_t kvl_cu_argmax(int32_t *out, const float *logits, int32_t rows,
                          int32_t vocab, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
