/*
 * Element-wise, normalisation, RoPE, cache and argmax kernels of the GPU
 * backend (kernels.h).  Each mirrors its CPU counterpart operation for
 * operation so the two paths agree to fp32 rounding: rmsnorm as
 * kvl_rmsnorm (double sum of squares), rope as kvl_rope_rotate, swiglu as
 * kvl_swiglu, bf16 rounding as kvl_f32_to_bf16.  matvec.cu and
 * attention.cu hold the two hot kernels.
 */
#include "engine/cuda/kernels.h"

#include "engine/cuda/common.cuh"

#include <float.h>
#include <limits.h>
#include <math.h>

#define EW_THREADS 256
#define NORM_THREADS 256
#define ARGMAX_THREADS 512

/* ------------------------------------------------------------------------ */
/* embed                                                                      */
/* ------------------------------------------------------------------------ */

template <int DT>
__global__ void embed_kernel(float *out, const void *table,
                             const int32_t *tokens, int32_t T, int32_t dim)
{
    const int64_t n = (int64_t)T * dim;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / dim, d = i - t * dim;
        out[i] = kvl_cu_load<DT>(table, (int64_t)__ldg(tokens + t) * dim + d);
    }
}

extern "C" cudaError_t kvl_cu_embed(float *out, const void *table,
                                    kvl_dtype dtype, const int32_t *tokens,
                                    int32_t T, int32_t dim,
                                    cudaStream_t stream)
{
    if (!out || !table || !tokens || T <= 0 || dim <= 0 ||
        !kvl_cu_weight_dtype_ok(dtype))
        return cudaErrorInvalidValue;
    const unsigned g = kvl_cu_blocks((int64_t)T * dim, EW_THREADS);
    switch (dtype) {
    case KVL_DTYPE_F32:
        embed_kernel<KVL_DTYPE_F32><<<g, EW_THREADS, 0, stream>>>(out, table, tokens, T, dim);
        break;
    case KVL_DTYPE_F16:
        embed_kernel<KVL_DTYPE_F16><<<g, EW_THREADS, 0, stream>>>(out, table, tokens, T, dim);
        break;
    default:
        embed_kernel<KVL_DTYPE_BF16><<<g, EW_THREADS, 0, stream>>>(out, table, tokens, T, dim);
        break;
    }
    return cudaGetLastError();
}

/* ------------------------------------------------------------------------ */
/* rmsnorm: one block per row                                                 */
/* ------------------------------------------------------------------------ */

/* Sum of v over the block (blockDim.x a multiple of 32, <= 1024); every
 * thread gets the total.  Double, as the CPU's kvl_rmsnorm accumulates. */
static __device__ double block_sum_double(double v, double *shared32)
{
    const int lane = threadIdx.x % KVL_CU_WARP, warp = threadIdx.x / KVL_CU_WARP;
#pragma unroll
    for (int o = KVL_CU_WARP / 2; o > 0; o >>= 1)
        v += __shfl_xor_sync(KVL_CU_FULL_MASK, v, o);
    if (lane == 0)
        shared32[warp] = v;
    __syncthreads();
    const int n_warps = blockDim.x / KVL_CU_WARP;
    double s = 0.0;
    for (int w = 0; w < n_warps; w++)
        s += shared32[w];
    return s;
}

__global__ void rmsnorm_kernel(float *out, const float *x, const void *w,
                               int wdt, int32_t width, float eps)
{
    __shared__ double partial[NORM_THREADS / KVL_CU_WARP];
    const int64_t base = (int64_t)blockIdx.x * width;
    double ss = 0.0;
    for (int32_t i = threadIdx.x; i < width; i += blockDim.x) {
        const double v = (double)x[base + i];
        ss += v * v;
    }
    ss = block_sum_double(ss, partial);
    /* HF: x * rsqrt(mean + eps) in fp32, then weight * that (ops.c). */
    const float inv = (float)(1.0 / sqrt(ss / (double)width + (double)eps));
    /* All reads of x for ss happened before the barrier in block_sum, so
     * out may alias x. */
    for (int32_t i = threadIdx.x; i < width; i += blockDim.x)
        out[base + i] = kvl_cu_load_rt(w, wdt, i) * (x[base + i] * inv);
}

extern "C" cudaError_t kvl_cu_rmsnorm(float *out, const float *x,
                                      const void *w, kvl_dtype wdt,
                                      int32_t rows, int32_t width, float eps,
                                      cudaStream_t stream)
{
    if (!out || !x || !w || rows <= 0 || width <= 0 ||
        !kvl_cu_weight_dtype_ok(wdt) || !(eps >= 0.0f) || isinf(eps))
        return cudaErrorInvalidValue;
    rmsnorm_kernel<<<(unsigned)rows, NORM_THREADS, 0, stream>>>(out, x, w, (int)wdt,
                                                                width, eps);
    return cudaGetLastError();
}

/* ------------------------------------------------------------------------ */
/* RoPE                                                                       */
/* ------------------------------------------------------------------------ */

/* Rotates the pair (x[a], x[b]) of one row by pos * inv_freq[i], exactly as
 * kvl_rope_rotate: fp32 angle, cos / sin in double rounded to fp32. */
static __device__ __forceinline__ void rope_pair(float *row, int32_t i,
                                                 int32_t half, int interleaved,
                                                 int32_t pos, float inv_freq,
                                                 float sign)
{
    const float angle = __fmul_rn((float)pos, inv_freq);
    double sd, cd;
    sincos((double)angle, &sd, &cd);
    const float c = (float)cd;
    const float s = __fmul_rn((float)sd, sign);
    const int32_t a = interleaved ? 2 * i : i;
    const int32_t b = interleaved ? 2 * i + 1 : i + half;
    const float xa = row[a], xb = row[b];
    row[a] = xa * c - xb * s;
    row[b] = xb * c + xa * s;
}

__global__ void rope_kernel(float *x, const int32_t *positions, int32_t T,
                            int32_t n_heads, int32_t head_dim, int32_t half,
                            const float *inv_freq, int interleaved, float sign)
{
    const int64_t n = (int64_t)T * n_heads * half;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < n;
         k += (int64_t)gridDim.x * blockDim.x) {
        const int32_t i = (int32_t)(k % half);
        const int64_t row = k / half; /* t * n_heads + h */
        const int32_t t = (int32_t)(row / n_heads);
        rope_pair(x + row * head_dim, i, half, interleaved, __ldg(positions + t),
                  __ldg(inv_freq + i), sign);
    }
}

static bool rope_args_ok(int32_t head_dim, int32_t rotary_dim,
                         kvl_rope_layout layout)
{
    return head_dim > 0 && rotary_dim > 0 && rotary_dim % 2 == 0 &&
           rotary_dim <= head_dim &&
           (layout == KVL_ROPE_ROTATE_HALF || layout == KVL_ROPE_INTERLEAVED);
}

extern "C" cudaError_t kvl_cu_rope(float *x, const int32_t *positions,
                                   int32_t T, int32_t n_heads,
                                   int32_t head_dim, int32_t rotary_dim,
                                   const float *inv_freq,
                                   kvl_rope_layout layout, int sign,
                                   cudaStream_t stream)
{
    if (!x || !positions || !inv_freq || T <= 0 || n_heads <= 0 ||
        !rope_args_ok(head_dim, rotary_dim, layout) || (sign != 1 && sign != -1))
        return cudaErrorInvalidValue;
    const int32_t half = rotary_dim / 2;
    const unsigned g = kvl_cu_blocks((int64_t)T * n_heads * half, EW_THREADS);
    rope_kernel<<<g, EW_THREADS, 0, stream>>>(x, positions, T, n_heads, head_dim,
                                              half, inv_freq,
                                              layout == KVL_ROPE_INTERLEAVED,
                                              (float)sign);
    return cudaGetLastError();
}

/* Back from old_pos[i], then to new_pos[i], for the key rows of slot i of
 * every kv head, as kvl_cache_reposition; unchanged slots stay untouched
 * (bit-identical). */
__global__ void rerotate_kernel(float *k_cache, int32_t cap, int32_t n_kv_heads,
                                int32_t head_dim, int32_t half,
                                const float *inv_freq, int interleaved,
                                const int32_t *old_pos, const int32_t *new_pos,
                                int32_t n)
{
    const int64_t total = (int64_t)n * n_kv_heads * half;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total;
         k += (int64_t)gridDim.x * blockDim.x) {
        const int32_t i = (int32_t)(k % half);
        const int64_t rest = k / half;
        const int32_t slot = (int32_t)(rest % n);
        const int32_t h = (int32_t)(rest / n);
        const int32_t from = __ldg(old_pos + slot), to = __ldg(new_pos + slot);
        if (from == to)
            continue;
        float *row = k_cache + ((int64_t)h * cap + slot) * head_dim;
        const float f = __ldg(inv_freq + i);
        rope_pair(row, i, half, interleaved, from, f, -1.0f);
        rope_pair(row, i, half, interleaved, to, f, 1.0f);
    }
}

extern "C" cudaError_t kvl_cu_rerotate(float *k_cache, int32_t cap,
                                       int32_t n_kv_heads, int32_t head_dim,
                                       int32_t rotary_dim,
                                       const float *inv_freq,
                                       kvl_rope_layout layout,
                                       const int32_t *old_pos,
                                       const int32_t *new_pos, int32_t n,
                                       cudaStream_t stream)
{
    if (!k_cache || !inv_freq || !old_pos || !new_pos || cap <= 0 ||
        n_kv_heads <= 0 || n <= 0 || n > cap ||
        !rope_args_ok(head_dim, rotary_dim, layout))
        return cudaErrorInvalidValue;
    const int32_t half = rotary_dim / 2;
    const unsigned g = kvl_cu_blocks((int64_t)n * n_kv_heads * half, EW_THREADS);
    rerotate_kernel<<<g, EW_THREADS, 0, stream>>>(
        k_cache, cap, n_kv_heads, head_dim, half, inv_freq,
        layout == KVL_ROPE_INTERLEAVED, old_pos, new_pos, n);
    return cudaGetLastError();
}

/* ------------------------------------------------------------------------ */
/* element-wise                                                               */
/* ------------------------------------------------------------------------ */

/* Round to nearest even, NaN kept quiet: kvl_f32_to_bf16 (core/dtype.h). */
static __device__ __forceinline__ uint16_t f32_to_bf16_rne(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__global__ void to_bf16_kernel(uint16_t *out, const float *x, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = f32_to_bf16_rne(x[i]);
}

extern "C" cudaError_t kvl_cu_to_bf16(uint16_t *out, const float *x,
                                      int64_t n, cudaStream_t stream)
{
    if (!out || !x || n <= 0)
        return cudaErrorInvalidValue;
    to_bf16_kernel<<<kvl_cu_blocks(n, EW_THREADS), EW_THREADS, 0, stream>>>(out, x, n);
    return cudaGetLastError();
}

__global__ void add_bias_kernel(float *y, const void *bias, int bdt, int32_t T,
                                int32_t M)
{
    const int64_t n = (int64_t)T * M;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] += kvl_cu_load_rt(bias, bdt, i % M);
}

extern "C" cudaError_t kvl_cu_add_bias(float *y, const void *bias,
                                       kvl_dtype bdt, int32_t T, int32_t M,
                                       cudaStream_t stream)
{
    if (!y || !bias || T <= 0 || M <= 0 || !kvl_cu_weight_dtype_ok(bdt))
        return cudaErrorInvalidValue;
    add_bias_kernel<<<kvl_cu_blocks((int64_t)T * M, EW_THREADS), EW_THREADS, 0,
                      stream>>>(y, bias, (int)bdt, T, M);
    return cudaGetLastError();
}

__global__ void add_kernel(float *x, const float *y, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] += y[i];
}

extern "C" cudaError_t kvl_cu_add(float *x, const float *y, int64_t n,
                                  cudaStream_t stream)
{
    if (!x || !y || n <= 0)
        return cudaErrorInvalidValue;
    add_kernel<<<kvl_cu_blocks(n, EW_THREADS), EW_THREADS, 0, stream>>>(x, y, n);
    return cudaGetLastError();
}

__global__ void swiglu_kernel(float *out, const float *gate, const float *up,
                              int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float g = gate[i];
        /* ops.c: g / (1 + exp(-g)) * up, full-precision expf and divide. */
        out[i] = __fmul_rn(__fdiv_rn(g, 1.0f + expf(-g)), up[i]);
    }
}

extern "C" cudaError_t kvl_cu_swiglu(float *out, const float *gate,
                                     const float *up, int64_t n,
                                     cudaStream_t stream)
{
    if (!out || !gate || !up || n <= 0)
        return cudaErrorInvalidValue;
    swiglu_kernel<<<kvl_cu_blocks(n, EW_THREADS), EW_THREADS, 0, stream>>>(out, gate,
                                                                           up, n);
    return cudaGetLastError();
}

/* The same on bf16 inputs, bf16 output (the prefill's FFN: the gate and up
 * products come out of cuBLAS in bf16 and the result is the down
 * product's bf16 operand, so the [T][hidden] intermediates cross memory in
 * 2 bytes instead of 4, with no separate conversion pass). */
__global__ void swiglu_bf16_kernel(uint16_t *out, const uint16_t *gate, const uint16_t *up,
                                   int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float g = kvl_cu_bf16f(gate[i]);
        out[i] = f32_to_bf16_rne(__fmul_rn(__fdiv_rn(g, 1.0f + expf(-g)),
                                           kvl_cu_bf16f(up[i])));
    }
}

extern "C" cudaError_t kvl_cu_swiglu_bf16(uint16_t *out, const uint16_t *gate,
                                          const uint16_t *up, int64_t n,
                                          cudaStream_t stream)
{
    if (!out || !gate || !up || n <= 0)
        return cudaErrorInvalidValue;
    swiglu_bf16_kernel<<<kvl_cu_blocks(n, EW_THREADS), EW_THREADS, 0, stream>>>(out, gate,
                                                                                up, n);
    return cudaGetLastError();
}

/* ------------------------------------------------------------------------ */
/* cache store                                                                */
/* ------------------------------------------------------------------------ */

/* One thread per element of k (and the same of v): consecutive threads
 * write consecutive dims of one cache row, so both sides are coalesced. */
__global__ void cache_store_kernel(float *k_cache, float *v_cache, int32_t cap,
                                   const float *k, const float *v,
                                   int32_t n_past, int32_t T, int32_t n_kv_heads,
                                   int32_t head_dim)
{
    const int64_t row = (int64_t)n_kv_heads * head_dim;
    const int64_t n = (int64_t)T * row;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / row, r = i - t * row;
        const int64_t h = r / head_dim, d = r - h * head_dim;
        const int64_t dst = (h * cap + n_past + t) * head_dim + d;
        k_cache[dst] = k[i];
        v_cache[dst] = v[i];
    }
}

extern "C" cudaError_t kvl_cu_cache_store(float *k_cache, float *v_cache,
                                          int32_t cap, const float *k,
                                          const float *v, int32_t n_past,
                                          int32_t T, int32_t n_kv_heads,
                                          int32_t head_dim,
                                          cudaStream_t stream)
{
    if (!k_cache || !v_cache || !k || !v || cap <= 0 || n_past < 0 || T <= 0 ||
        n_kv_heads <= 0 || head_dim <= 0 || (int64_t)n_past + T > cap)
        return cudaErrorInvalidValue;
    const int64_t n = (int64_t)T * n_kv_heads * head_dim;
    cache_store_kernel<<<kvl_cu_blocks(n, EW_THREADS), EW_THREADS, 0, stream>>>(
        k_cache, v_cache, cap, k, v, n_past, T, n_kv_heads, head_dim);
    return cudaGetLastError();
}

/* ------------------------------------------------------------------------ */
/* argmax: one block per row                                                  */
/* ------------------------------------------------------------------------ */

/* (v, i) beats (bv, bi) when larger, or equal with a lower index; NaN never
 * wins (the CPU's `x[i] > best` comparison). */
static __device__ __forceinline__ bool beats(float v, int32_t i, float bv,
                                             int32_t bi)
{
    return v > bv || (v == bv && i < bi);
}

__global__ void argmax_kernel(int32_t *out, const float *logits, int32_t vocab)
{
    __shared__ float sv[ARGMAX_THREADS / KVL_CU_WARP];
    __shared__ int32_t si[ARGMAX_THREADS / KVL_CU_WARP];
    const float *row = logits + (int64_t)blockIdx.x * vocab;
    float bv = -INFINITY;
    int32_t bi = INT_MAX;
    for (int32_t i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float v = row[i];
        if (beats(v, i, bv, bi)) {
            bv = v;
            bi = i;
        }
    }
#pragma unroll
    for (int o = KVL_CU_WARP / 2; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(KVL_CU_FULL_MASK, bv, o);
        const int32_t oi = __shfl_xor_sync(KVL_CU_FULL_MASK, bi, o);
        if (beats(ov, oi, bv, bi)) {
            bv = ov;
            bi = oi;
        }
    }
    const int lane = threadIdx.x % KVL_CU_WARP, warp = threadIdx.x / KVL_CU_WARP;
    if (lane == 0) {
        sv[warp] = bv;
        si[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x / KVL_CU_WARP); w++)
            if (beats(sv[w], si[w], bv, bi)) {
                bv = sv[w];
                bi = si[w];
            }
        /* Only a row of NaN leaves no winner (-inf still wins on the
         * index tie-break): report index 0, as the CPU scan does. */
        out[blockIdx.x] = bi == INT_MAX ? 0 : bi;
    }
}

extern "C" cudaError_t kvl_cu_argmax(int32_t *out, const float *logits,
                                     int32_t rows, int32_t vocab,
                                     cudaStream_t stream)
{
    if (!out || !logits || rows <= 0 || vocab <= 0)
        return cudaErrorInvalidValue;
    argmax_kernel<<<(unsigned)rows, ARGMAX_THREADS, 0, stream>>>(out, logits, vocab);
    return cudaGetLastError();
}

/* ------------------------------------------------------------------------ */
/* random fill (benchmark weights)                                           */
/* ------------------------------------------------------------------------ */

/* splitmix64 of (seed, index): a counter-based generator. */
static __device__ __forceinline__ float unit_hash(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
}

__global__ void fill_random_kernel(void *p, int dt, int64_t n, float offset,
                                   float scale, uint64_t seed)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float v = offset + scale * (2.0f * unit_hash(seed, (uint64_t)i) - 1.0f);
        if (dt == KVL_DTYPE_BF16)
            ((uint16_t *)p)[i] = f32_to_bf16_rne(v);
        else if (dt == KVL_DTYPE_F16)
            ((__half *)p)[i] = __float2half_rn(v);
        else
            ((float *)p)[i] = v;
    }
}

extern "C" cudaError_t kvl_cu_fill_random(void *p, kvl_dtype dt, int64_t n, float offset,
                                          float scale, uint64_t seed, cudaStream_t stream)
{
    if (!p || n <= 0 ||
        (dt != KVL_DTYPE_BF16 && dt != KVL_DTYPE_F16 && dt != KVL_DTYPE_F32))
        return cudaErrorInvalidValue;
    fill_random_kernel<<<kvl_cu_blocks(n, EW_THREADS), EW_THREADS, 0, stream>>>(
        p, (int)dt, n, offset, scale, seed);
    return cudaGetLastError();
}
