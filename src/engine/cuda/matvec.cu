/*
 * kvl_cu_matvec: y[t][M] = W[M][K] . x[t][K] (+ bias) for T <= 8 rows, the
 * memory-bound decode product.  W is streamed once for all T rows:
 *  - `wpr` warps of a 256-thread block share one output row (more warps per
 *    row when M is small, so that a 896-row matrix still fills 132 SMs);
 *  - each lane reads 16-byte chunks of the row (8 bf16/f16 or 4 f32),
 *    consecutive lanes consecutive chunks (coalesced), MV_UNROLL chunks
 *    loaded before the first is used (loads in flight), through the
 *    non-coherent path without L1 allocation (W is read once);
 *  - x is read as float4 through the read-only cache (it is re-read by every
 *    row, so it lives in L1/L2);
 *  - fp32 accumulation, warp-shuffle then shared-memory reduction.
 * Rows that are not 16-byte aligned (K * elsize not a multiple of 16, or an
 * unaligned W or x) take the scalar kernel, same structure, one element per
 * lane per step.
 */
#include "engine/cuda/kernels.h"

#include "engine/cuda/common.cuh"
#include "engine/cuda/decode_common.cuh"

#define MV_THREADS 256
#define MV_WARPS (MV_THREADS / KVL_CU_WARP)
#define MV_UNROLL 4


/* Sums the warps of one row (shared memory), adds the bias, writes y. */
template <int T>
static __device__ __forceinline__ void finish_row(float *acc, float *y,
                                                  const void *bias, int bdt,
                                                  int32_t M, int32_t row,
                                                  int wpr)
{
    __shared__ float red[MV_WARPS][T];
    const int warp = threadIdx.x / KVL_CU_WARP, lane = threadIdx.x % KVL_CU_WARP;
#pragma unroll
    for (int t = 0; t < T; t++)
        acc[t] = kvl_cu_warp_sum(acc[t]);
    if (lane == 0) {
#pragma unroll
        for (int t = 0; t < T; t++)
            red[warp][t] = acc[t];
    }
    __syncthreads();
    if (warp % wpr == 0 && row < M && lane < T) {
        float s = 0.0f;
        for (int p = 0; p < wpr; p++)
            s += red[warp + p][lane];
        if (bias)
            s += kvl_cu_load_rt(bias, bdt, row);
        y[(int64_t)lane * M + row] = s;
    }
}

template <int T, int DT>
__global__ void __launch_bounds__(MV_THREADS)
matvec_vec_kernel(float *y, const void *W, const float *x, const void *bias,
                  int bdt, int32_t M, int32_t K, int wpr)
{
    constexpr int EPC = fm_chunk<DT>::n;
    const int warp = threadIdx.x / KVL_CU_WARP, lane = threadIdx.x % KVL_CU_WARP;
    const int32_t row = blockIdx.x * (MV_WARPS / wpr) + warp / wpr;
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; t++)
        acc[t] = 0.0f;
    if (row < M) {
        const int32_t nch = K / EPC;
        const uint4 *wr = (const uint4 *)((const char *)W +
                                          (int64_t)row * K * fm_chunk<DT>::size);
        const int32_t stride = KVL_CU_WARP * wpr;
        for (int32_t c0 = (warp % wpr) * KVL_CU_WARP + lane; c0 < nch;
             c0 += stride * MV_UNROLL) {
            uint4 w[MV_UNROLL];
#pragma unroll
            for (int u = 0; u < MV_UNROLL; u++) {
                const int32_t c = c0 + u * stride;
                w[u] = c < nch ? fm_ld_stream(wr + c) : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
            for (int u = 0; u < MV_UNROLL; u++) {
                const int32_t c = c0 + u * stride;
                if (c >= nch)
                    break;
                float f[EPC];
                fm_unpack<DT>(w[u], f);
#pragma unroll
                for (int t = 0; t < T; t++) {
                    const float4 *xv =
                        (const float4 *)(x + (int64_t)t * K + (int64_t)c * EPC);
#pragma unroll
                    for (int q = 0; q < EPC / 4; q++) {
                        const float4 xx = __ldg(xv + q);
                        acc[t] = fmaf(f[4 * q], xx.x, acc[t]);
                        acc[t] = fmaf(f[4 * q + 1], xx.y, acc[t]);
                        acc[t] = fmaf(f[4 * q + 2], xx.z, acc[t]);
                        acc[t] = fmaf(f[4 * q + 3], xx.w, acc[t]);
                    }
                }
            }
        }
    }
    finish_row<T>(acc, y, bias, bdt, M, row, wpr);
}

template <int T, int DT>
__global__ void __launch_bounds__(MV_THREADS)
matvec_scalar_kernel(float *y, const void *W, const float *x, const void *bias,
                     int bdt, int32_t M, int32_t K, int wpr)
{
    const int warp = threadIdx.x / KVL_CU_WARP, lane = threadIdx.x % KVL_CU_WARP;
    const int32_t row = blockIdx.x * (MV_WARPS / wpr) + warp / wpr;
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; t++)
        acc[t] = 0.0f;
    if (row < M) {
        const int64_t base = (int64_t)row * K;
        const int32_t stride = KVL_CU_WARP * wpr;
        for (int32_t k0 = (warp % wpr) * KVL_CU_WARP + lane; k0 < K;
             k0 += stride * MV_UNROLL) {
            float w[MV_UNROLL];
#pragma unroll
            for (int u = 0; u < MV_UNROLL; u++) {
                const int32_t k = k0 + u * stride;
                w[u] = k < K ? kvl_cu_load<DT>(W, base + k) : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < MV_UNROLL; u++) {
                const int32_t k = k0 + u * stride;
                if (k >= K)
                    break;
#pragma unroll
                for (int t = 0; t < T; t++)
                    acc[t] = fmaf(w[u], __ldg(x + (int64_t)t * K + k), acc[t]);
            }
        }
    }
    finish_row<T>(acc, y, bias, bdt, M, row, wpr);
}

template <int T, int DT>
static void launch_dt(float *y, const void *W, const float *x, const void *bias,
                      int bdt, int32_t M, int32_t K, bool vec,
                      cudaStream_t stream)
{
    const int wpr = kvl_cu_warps_per_row(M);
    const int rows_per_block = MV_WARPS / wpr;
    const unsigned grid = (unsigned)((M + rows_per_block - 1) / rows_per_block);
    if (vec)
        matvec_vec_kernel<T, DT><<<grid, MV_THREADS, 0, stream>>>(y, W, x, bias, bdt,
                                                                 M, K, wpr);
    else
        matvec_scalar_kernel<T, DT><<<grid, MV_THREADS, 0, stream>>>(y, W, x, bias,
                                                                    bdt, M, K, wpr);
}

template <int T>
static void launch_t(float *y, const void *W, kvl_dtype wdt, const float *x,
                     const void *bias, int bdt, int32_t M, int32_t K, bool vec,
                     cudaStream_t stream)
{
    switch (wdt) {
    case KVL_DTYPE_F32:
        launch_dt<T, KVL_DTYPE_F32>(y, W, x, bias, bdt, M, K, vec, stream);
        break;
    case KVL_DTYPE_F16:
        launch_dt<T, KVL_DTYPE_F16>(y, W, x, bias, bdt, M, K, vec, stream);
        break;
    default:
        launch_dt<T, KVL_DTYPE_BF16>(y, W, x, bias, bdt, M, K, vec, stream);
        break;
    }
}

extern "C" cudaError_t kvl_cu_matvec(float *y, const void *W, kvl_dtype wdt,
                                     const float *x, const void *bias,
                                     kvl_dtype bdt, int32_t T, int32_t M,
                                     int32_t K, cudaStream_t stream)
{
    if (!y || !W || !x || T <= 0 || T > KVL_CU_MATVEC_MAX_T || M <= 0 ||
        K <= 0 || !kvl_cu_weight_dtype_ok(wdt) ||
        (bias && !kvl_cu_weight_dtype_ok(bdt)))
        return cudaErrorInvalidValue;
    const size_t esz = wdt == KVL_DTYPE_F32 ? 4 : 2;
    /* Every row 16-byte aligned (base aligned and row length a multiple of
     * 16 bytes), x rows too: then the 128-bit path; else scalar loads. */
    const bool vec = (uintptr_t)W % 16 == 0 && ((size_t)K * esz) % 16 == 0 &&
                     (uintptr_t)x % 16 == 0;
    const int b = (int)bdt;
    switch (T) {
    case 1: launch_t<1>(y, W, wdt, x, bias, b, M, K, vec, stream); break;
    case 2: launch_t<2>(y, W, wdt, x, bias, b, M, K, vec, stream); break;
    case 3: launch_t<3>(y, W, wdt, x, bias, b, M, K, vec, stream); break;
    case 4: launch_t<4>(y, W, wdt, x, bias, b, M, K, vec, stream); break;
    case 5: launch_t<5>(y, W, wdt, x, bias, b, M, K, vec, stream); break;
    case 6: launch_t<6>(y, W, wdt, x, bias, b, M, K, vec, stream); break;
    case 7: launch_t<7>(y, W, wdt, x, bias, b, M, K, vec, stream); break;
    default: launch_t<8>(y, W, wdt, x, bias, b, M, K, vec, stream); break;
    }
    return cudaGetLastError();
}
