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

/* The same on bf16 values (uint16 bits), the result rounded to bf16
 * (nearest even): out = bf16(silu(g) * u), computed in fp32.  out may alias
 * gate. */
cudaError_t kvl_cu_swiglu_bf16(uint16_t *out, const uint16_t *gate,
                               const uint16_t *up, int64_t n, cudaStream_t stream);

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

/* ---- batched, fused decode step (decode.cu) ---------------------------------
 *
 * One decode step of B independent sequences (B rows), each with its own
 * cache.  Per-sequence values live in device memory as int32
 * meta[KVL_CU_META_COUNT][B]: the input token, its RoPE position, the cache
 * slot it is written to (= tokens already cached, so the attention sees
 * slot + 1 keys) and the capacity (row stride, in tokens) of that
 * sequence's cache.  kv_tab holds device pointers [B][n_layers][2]: layer
 * l's K (index 0) and V (index 1) cache of sequence b, each
 * [n_kv_heads][cap][head_dim] fp32.  Written before each replay of a
 * captured graph, so one graph serves any tokens, positions and caches.
 *
 * pdl != 0: the kernel is launched as a programmatic dependent launch
 * (cudaLaunchAttributeProgrammaticStreamSerialization): it may start while
 * the previous kernel in the stream finishes, does its independent work
 * first (it signals its own dependents to launch, and starts loading its
 * weights), then waits (griddepcontrol.wait) for the previous kernel's
 * results before reading any activation.  pdl = 0: an ordinary launch;
 * results are identical either way. */
enum {
    KVL_CU_META_TOKEN,
    KVL_CU_META_POS,
    KVL_CU_META_SLOT,
    KVL_CU_META_CAP,
    KVL_CU_META_COUNT
};

/* The decode product with its neighbours fused, for T <= KVL_CU_MATVEC_MAX_T:
 *   xn[t]   = norm_w ? x[t] * (float)(1 / sqrt(mean(x[t]^2) + eps)) * norm_w
 *                    : x[t]                     (as kvl_cu_rmsnorm, fp32)
 *   y[t][m] = (residual ? residual[t][m] : 0) + (W[m] . xn[t] + bias[m])
 * norm_w (dtype ndt, [K]), bias (dtype bdt, [M]) and residual are optional
 * (NULL).  residual may alias y (the residual add in place); x must not
 * overlap y.  Used for q/k/v (attention norm fused, weights of the three
 * products concatenated), the output and down products (residual add
 * fused) and the lm_head (final norm fused). */
cudaError_t kvl_cu_matvec_fused(float *y, const void *W, kvl_dtype wdt,
                                const float *x, const void *norm_w, kvl_dtype ndt,
                                float eps, const void *bias, kvl_dtype bdt,
                                const float *residual, int32_t T, int32_t M,
                                int32_t K, int pdl, cudaStream_t stream);

/* The gate and up products with the FFN norm and SwiGLU fused:
 *   y[t][m] = silu(Wg[m] . xn[t] + bg[m]) * (Wu[m] . xn[t] + bu[m]),
 * silu(g) = g / (1 + expf(-g)), xn as in kvl_cu_matvec_fused (norm_w may
 * be NULL), biases optional (dtype bdt).  T <= KVL_CU_MATVEC_MAX_T. */
cudaError_t kvl_cu_matvec_swiglu(float *y, const void *Wg, const void *Wu,
                                 kvl_dtype wdt, const float *x, const void *norm_w,
                                 kvl_dtype ndt, float eps, const void *bg,
                                 const void *bu, kvl_dtype bdt, int32_t T,
                                 int32_t M, int32_t K, int pdl, cudaStream_t stream);

/* After the q/k/v product of B sequences: row b of qkv (row stride
 * `stride` floats) is [q: n_heads * hd | k: n_kv_heads * hd | v: n_kv_heads * hd].
 * Per head, q and k get the per-head RMSNorm (q_norm / k_norm, [hd] of
 * dtype ndt, NULL to skip) and RoPE at position meta POS[b] (as kvl_cu_rope:
 * rotary_dim, inv_freq, layout, sign +1); q is rewritten in place; k and v
 * are written into sequence b's layer-`layer` cache (kv_tab) at token slot
 * meta SLOT[b] (row stride meta CAP[b]). */
cudaError_t kvl_cu_decode_qkv_finish(float *qkv, int32_t stride, const void *q_norm,
                                     const void *k_norm, kvl_dtype ndt, float eps,
                                     const float *inv_freq, int32_t rotary_dim,
                                     kvl_rope_layout layout, float *const *kv_tab,
                                     int32_t layer, int32_t n_layers,
                                     const int32_t *meta, int32_t B, int32_t n_heads,
                                     int32_t n_kv_heads, int32_t head_dim, int pdl,
                                     cudaStream_t stream);

/* Decode attention of B sequences, one query row each (q row b at
 * q + b * q_stride, [n_heads][hd]; out [B][n_heads * hd]):
 *   out[b][h] = softmax_j(q[b][h] . k_b[h / g][j] / sqrt(hd)) v_b[h / g][j],
 *   j = 0 .. meta SLOT[b]   (the new token's K/V already stored),
 * caches of layer `layer` from kv_tab with row stride meta CAP[b].  The key
 * split (flash-decoding) is sized for cap_max >= every CAP[b] (host value),
 * so that a captured graph serves every context length up to it; chunks
 * past a sequence's context contribute nothing.  scratch holds
 * kvl_cu_attention_decode_batch_scratch(B, n_heads, cap_max, head_dim)
 * floats: partials from its start, and one int counter per (sequence,
 * head) in its LAST B * n_heads floats, which the kernel (one launch that
 * also combines the partials) leaves at zero after every launch.  So the
 * scratch must be zeroed once (cudaMemset) after allocation, be sized for
 * the largest B / cap_max it serves, and not be written by anything else
 * in between (else zero it again). */
cudaError_t kvl_cu_attention_decode_batch(float *out, const float *q, int32_t q_stride,
                                          float *const *kv_tab, int32_t layer,
                                          int32_t n_layers, const int32_t *meta,
                                          int32_t B, int32_t cap_max, int32_t n_heads,
                                          int32_t n_kv_heads, int32_t head_dim,
                                          float *scratch, size_t scratch_floats,
                                          int pdl, cudaStream_t stream);
size_t kvl_cu_attention_decode_batch_scratch(int32_t B, int32_t n_heads,
                                             int32_t cap_max, int32_t head_dim);

/* ---- prefill attention on tensor cores (attention_tc.cu) ----------------------
 *
 * The same result as kvl_cu_attention with T > 1 (causal GQA over the
 * n_past + T cached tokens, out and q [T][n_heads][head_dim]), computed with
 * warp-level MMA: Q, K, V and the probabilities rounded to `op`
 * (KVL_DTYPE_BF16 or KVL_DTYPE_F16) as operands, fp32 accumulation and
 * fp32 online softmax.  The engine uses it for models whose weights are
 * BF16 / F16 (the precision transformers runs them at); F32 models keep
 * kvl_cu_attention.  Returns cudaErrorNotSupported (nothing launched) for a
 * head_dim it does not handle (it handles 64 and 128) or k_cache / v_cache
 * not 16-byte aligned, so the caller can fall back.  T >= 1. */
cudaError_t kvl_cu_attention_prefill_tc(float *out, const float *q,
                                        const float *k_cache, const float *v_cache,
                                        int32_t cap, int32_t n_past, int32_t T,
                                        int32_t n_heads, int32_t n_kv_heads,
                                        int32_t head_dim, kvl_dtype op,
                                        cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
