/*
 * The batched, fused decode step (kernels.h, "decode.cu"): per layer
 *   matvec_fused (norm + [Wq;Wk;Wv] + bias) -> decode_qkv_finish ->
 *   attention_decode_batch -> matvec_fused (Wo, residual) ->
 *   matvec_swiglu (norm + gate + up + SwiGLU) -> matvec_fused (Wdown, residual)
 * so that a decode step runs 6 kernels per layer instead of ~17, each able
 * to start as a programmatic dependent launch (PDL) while its predecessor
 * drains.
 *
 * PDL protocol, every kernel of this file: griddepcontrol.launch_dependents
 * first (the next kernel may be scheduled at once), then the work that needs
 * nothing from the previous kernel (the matvecs issue their first weight
 * loads into registers, ask L2 to prefetch the block's weight rows, stage
 * the norm weights in shared memory and load the first row group's biases;
 * the q/k finish loads its head's norm weights and computes the RoPE
 * cos / sin; attention loads the old K / V rows), then griddepcontrol.wait
 * (returns once the previous grid has completed and its writes are visible;
 * a no-op for an ordinary launch) before any activation, meta or cache is
 * read and before anything is written.  Every dependent memory round trip
 * left after the wait costs ~0.5-1 us of the kernel's critical path, and a
 * dependent kernel costs ~3-3.7 us even when it moves 0.1 MB
 * (bench_cuda_matvec), which is what bounds batch-1 decode of small models.
 *
 * Matvec design as matvec.cu (16-byte streaming loads of W without L1
 * allocation, MV_UNROLL loads in flight, warps per row chosen by M, scalar
 * fallback for unaligned rows); x, normalised as kvl_cu_rmsnorm does, is
 * staged once per block in shared memory when T * K floats fit in 48 KB,
 * else read from global memory with the norm applied on the fly (the same
 * products, so the same values).  The vector kernel's grid is at most one
 * wave of resident blocks, each looping over row groups (no block waits
 * for a second wave; the norm and staging are done once per block).
 */
#include "engine/cuda/kernels.h"

#include "engine/cuda/common.cuh"
#include "engine/cuda/decode_common.cuh"

#include <math.h>

#include <cooperative_groups.h>
#include <utility>

#define FM_THREADS 256
#define FM_WARPS (FM_THREADS / KVL_CU_WARP)
#define FM_UNROLL 4
#define FM_SMEM_X_MAX (48 * 1024) /* staged x: no opt-in needed */
/* L2 prefetch per block before the wait: with the grid at most one wave,
 * ~500 blocks x 64 KB stays under the 50 MB L2 (the lm_head's 272 MB is
 * not prefetched whole). */
#define FM_PREFETCH (64 * 1024)

#define QF_WARPS 4 /* qkv_finish: one warp per (sequence, head) */

#define AD_THREADS 256
#define AD_WARPS (AD_THREADS / KVL_CU_WARP)
/* Query heads per block (one warp each in the softmax).  4, not 8: at
 * batch 1 the short path has only 8 blocks per block row, so halving each
 * block's dot / PV work (twice the blocks, K/V read twice, the second time
 * mostly from L2) measured 5.3 us instead of 6.9 at 512 keys (H200); 8 was
 * better for B = 32 (27 us instead of 35) and 4096 keys (12 instead of 15). */
#define AD_MAX_G 4
#define AD_CLUSTER 8     /* blocks per cluster (the portable maximum) */
#define AD_MAX_BLOCKS 128 /* key blocks per (sequence, head group) at most */
#define AD_MAX_KPB 64    /* key rows per shared-memory tile at most */
#define AD_SHORT_TILES 2 /* one cluster while a block needs <= 2 tiles */
/* Dynamic shared memory of the attention kernel: K and V tiles, q, scores;
 * under the 48 KB that needs no opt-in, with room for the static part. */
#define AD_SMEM_FLOATS (47 * 1024 / 4)
#define AD_OUT_PT ((AD_MAX_G * KVL_CU_MAX_HEAD_DIM) / AD_THREADS) /* outputs per thread */

/* ------------------------------------------------------------------------ */
/* fused matvec (NMAT = 1: matvec_fused; NMAT = 2: gate + up + SwiGLU)       */
/* ------------------------------------------------------------------------ */

struct fm_args {
    float *y;
    const void *W[2];
    const float *x;
    const void *norm_w;
    int ndt;
    float eps;
    const void *bias[2];
    int bdt;
    const float *residual;
    int32_t M, K;
    int wpr;
    int nw_smem; /* vector kernel with staged x: the norm weights staged too */
};

/* inv[t] = (float)(1 / sqrt(mean(x[t]^2) + eps)) for the T rows, the sum of
 * squares in double as kvl_cu_rmsnorm; every thread of the block calls. */
template <int T>
static __device__ __forceinline__ void fm_norm_inv(const fm_args &a, float *s_inv)
{
    __shared__ double red[FM_WARPS][T];
    const int warp = threadIdx.x / KVL_CU_WARP, lane = threadIdx.x % KVL_CU_WARP;
    double ss[T];
#pragma unroll
    for (int t = 0; t < T; t++)
        ss[t] = 0.0;
    for (int32_t k = threadIdx.x; k < a.K; k += FM_THREADS) {
#pragma unroll
        for (int t = 0; t < T; t++) {
            const double v = (double)a.x[(int64_t)t * a.K + k];
            ss[t] += v * v;
        }
    }
#pragma unroll
    for (int t = 0; t < T; t++) {
        ss[t] = fm_warp_sum_d(ss[t]);
        if (lane == 0)
            red[warp][t] = ss[t];
    }
    __syncthreads();
    if ((int)threadIdx.x < T) {
        double s = 0.0;
        for (int w = 0; w < FM_WARPS; w++)
            s += red[w][threadIdx.x];
        s_inv[threadIdx.x] = (float)(1.0 / sqrt(s / (double)a.K + (double)a.eps));
    }
    __syncthreads();
}

/* Sums the warps of one row, adds bias / residual or applies SwiGLU, writes
 * y.  Reads residual before writing y in the same thread: y may alias it. */
/* pre: the writer's bias (pb, per matrix) and residual (pr) were loaded
 * ahead (the block's first row group), else they are read here. */
template <int T, int NMAT>
static __device__ __forceinline__ void fm_finish(float (*acc)[T], const fm_args &a,
                                                 int32_t row, bool pre, const float *pb,
                                                 float pr)
{
    __shared__ float red[FM_WARPS][NMAT * T];
    const int warp = threadIdx.x / KVL_CU_WARP, lane = threadIdx.x % KVL_CU_WARP;
#pragma unroll
    for (int m = 0; m < NMAT; m++)
#pragma unroll
        for (int t = 0; t < T; t++)
            acc[m][t] = kvl_cu_warp_sum(acc[m][t]);
    if (lane == 0) {
#pragma unroll
        for (int m = 0; m < NMAT; m++)
#pragma unroll
            for (int t = 0; t < T; t++)
                red[warp][m * T + t] = acc[m][t];
    }
    __syncthreads();
    if (warp % a.wpr == 0 && row < a.M && lane < T) {
        float s[NMAT];
#pragma unroll
        for (int m = 0; m < NMAT; m++) {
            s[m] = 0.0f;
            for (int p = 0; p < a.wpr; p++)
                s[m] += red[warp + p][m * T + lane];
            if (a.bias[m])
                s[m] += pre ? pb[m] : kvl_cu_load_rt(a.bias[m], a.bdt, row);
        }
        const int64_t o = (int64_t)lane * a.M + row;
        float v;
        if (NMAT == 2) {
            /* kvl_cu_swiglu: g / (1 + expf(-g)) * up, IEEE divide. */
            v = __fmul_rn(__fdiv_rn(s[0], 1.0f + expf(-s[0])), s[NMAT - 1]);
        } else {
            v = s[0];
            if (a.residual)
                v = (pre ? pr : a.residual[o]) + v;
        }
        a.y[o] = v;
    }
    __syncthreads(); /* red[] is reused by the block's next row group */
}

/* 16-byte path.  SX: x (normalised) staged in dynamic shared memory
 * [T][K]; else read through the read-only path, norm applied on the fly. */
template <int T, int DT, int NMAT, bool SX>
__global__ void __launch_bounds__(FM_THREADS, 2) fm_vec_kernel(const fm_args a)
{
    extern __shared__ float4 fm_xs4[];
    __shared__ float s_inv[T];
    constexpr int EPC = fm_chunk<DT>::n;
    const float *xs = (const float *)fm_xs4;
    const int warp = threadIdx.x / KVL_CU_WARP, lane = threadIdx.x % KVL_CU_WARP;
    const int rpb = FM_WARPS / a.wpr;
    const int32_t n_rg = (a.M + rpb - 1) / rpb; /* row groups; the grid loops */
    const int32_t nch = a.K / EPC;
    const int32_t stride = KVL_CU_WARP * a.wpr;
    const int32_t cbeg = (warp % a.wpr) * KVL_CU_WARP + lane;
    const int64_t row_bytes = (int64_t)a.K * fm_chunk<DT>::size;

    pdl_trigger();
    /* Independent of the previous kernel: the weights.  L2 prefetch of the
     * block's row groups (up to FM_PREFETCH bytes), then the first batch
     * of the first row group into registers. */
    if (threadIdx.x == 0) {
        int64_t budget = FM_PREFETCH;
        for (int32_t rg = blockIdx.x; rg < n_rg && budget > 0; rg += gridDim.x) {
            const int32_t r0 = rg * rpb, nr = min(rpb, a.M - r0);
#pragma unroll
            for (int m = 0; m < NMAT; m++)
                fm_prefetch_l2((const char *)a.W[m] + r0 * row_bytes,
                               (uint32_t)(nr * row_bytes));
            budget -= NMAT * nr * row_bytes;
        }
    }
    /* Loads in flight per thread and matrix: 8 where registers allow (one
     * matrix, T <= 2: the down product's 4864-long rows come in one batch),
     * else 4 (no spill at T = 8 or for the gate + up pair). */
    constexpr int U = (NMAT == 1 && T <= 2) ? 2 * FM_UNROLL : FM_UNROLL;
    int32_t row = blockIdx.x * rpb + warp / a.wpr;
    const uint4 *wr[NMAT];
    uint4 w[NMAT][U];
    /* First batch of a row group's weights into w (zeros past the row). */
    auto load_first = [&](int32_t r) {
#pragma unroll
        for (int m = 0; m < NMAT; m++)
            wr[m] = (const uint4 *)((const char *)a.W[m] + (int64_t)min(r, a.M - 1) * row_bytes);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int32_t c = cbeg + u * stride;
#pragma unroll
            for (int m = 0; m < NMAT; m++)
                w[m][u] = (r < a.M && c < nch) ? fm_ld_stream(wr[m] + c) : make_uint4(0, 0, 0, 0);
        }
    };
    load_first(row);
    /* Also independent of the previous kernel, and otherwise read on the
     * critical path after the wait: the norm weights (into shared memory,
     * behind the staged x) and the first row group's biases. */
    float *nws = (float *)fm_xs4 + (int64_t)T * a.K;
    if (SX && a.nw_smem)
        for (int32_t k = threadIdx.x; k < a.K; k += FM_THREADS)
            nws[k] = kvl_cu_load_rt(a.norm_w, a.ndt, k);
    const bool writer = warp % a.wpr == 0 && lane < T && row < a.M;
    float pb[NMAT], pr = 0.0f;
#pragma unroll
    for (int m = 0; m < NMAT; m++)
        pb[m] = writer && a.bias[m] ? kvl_cu_load_rt(a.bias[m], a.bdt, row) : 0.0f;
    pdl_wait();
    /* The residual of the first row group now, beside the x loads. */
    if (writer && a.residual)
        pr = a.residual[(int64_t)lane * a.M + row];

    if (a.norm_w)
        fm_norm_inv<T>(a, s_inv);
    if (SX) {
        float4 *xw = fm_xs4;
        const int32_t k4 = a.K / 4;
        for (int32_t i = threadIdx.x; i < T * k4; i += FM_THREADS) {
            const int32_t t = i / k4, k = (i - t * k4) * 4;
            float4 v = __ldg((const float4 *)(a.x + (int64_t)t * a.K + k));
            if (a.norm_w) {
                const float inv = s_inv[t];
                if (a.nw_smem) {
                    const float4 g = *(const float4 *)(nws + k);
                    v.x = g.x * (v.x * inv);
                    v.y = g.y * (v.y * inv);
                    v.z = g.z * (v.z * inv);
                    v.w = g.w * (v.w * inv);
                } else {
                    v.x = kvl_cu_load_rt(a.norm_w, a.ndt, k) * (v.x * inv);
                    v.y = kvl_cu_load_rt(a.norm_w, a.ndt, k + 1) * (v.y * inv);
                    v.z = kvl_cu_load_rt(a.norm_w, a.ndt, k + 2) * (v.z * inv);
                    v.w = kvl_cu_load_rt(a.norm_w, a.ndt, k + 3) * (v.w * inv);
                }
            }
            xw[i] = v;
        }
        __syncthreads();
    }

    for (int32_t rg = blockIdx.x; rg < n_rg; rg += gridDim.x) {
    row = rg * rpb + warp / a.wpr;
    float acc[NMAT][T];
#pragma unroll
    for (int m = 0; m < NMAT; m++)
#pragma unroll
        for (int t = 0; t < T; t++)
            acc[m][t] = 0.0f;
    for (int32_t c0 = cbeg; row < a.M;) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int32_t c = c0 + u * stride;
            if (c >= nch)
                break;
            float f[NMAT][EPC];
#pragma unroll
            for (int m = 0; m < NMAT; m++)
                fm_unpack<DT>(w[m][u], f[m]);
#pragma unroll
            for (int t = 0; t < T; t++) {
#pragma unroll
                for (int q = 0; q < EPC / 4; q++) {
                    const int32_t k = c * EPC + 4 * q;
                    float4 xx;
                    if (SX) {
                        xx = *(const float4 *)(xs + (int64_t)t * a.K + k);
                    } else {
                        xx = __ldg((const float4 *)(a.x + (int64_t)t * a.K + k));
                        if (a.norm_w) {
                            const float inv = s_inv[t];
                            xx.x = kvl_cu_load_rt(a.norm_w, a.ndt, k) * (xx.x * inv);
                            xx.y = kvl_cu_load_rt(a.norm_w, a.ndt, k + 1) * (xx.y * inv);
                            xx.z = kvl_cu_load_rt(a.norm_w, a.ndt, k + 2) * (xx.z * inv);
                            xx.w = kvl_cu_load_rt(a.norm_w, a.ndt, k + 3) * (xx.w * inv);
                        }
                    }
#pragma unroll
                    for (int m = 0; m < NMAT; m++) {
                        acc[m][t] = fmaf(f[m][4 * q], xx.x, acc[m][t]);
                        acc[m][t] = fmaf(f[m][4 * q + 1], xx.y, acc[m][t]);
                        acc[m][t] = fmaf(f[m][4 * q + 2], xx.z, acc[m][t]);
                        acc[m][t] = fmaf(f[m][4 * q + 3], xx.w, acc[m][t]);
                    }
                }
            }
        }
        c0 += stride * U;
        if (c0 >= nch)
            break;
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int32_t c = c0 + u * stride;
#pragma unroll
            for (int m = 0; m < NMAT; m++)
                w[m][u] = c < nch ? fm_ld_stream(wr[m] + c) : make_uint4(0, 0, 0, 0);
        }
    }
    /* Software pipelining across row groups: the next group's first batch
     * is in flight during this group's reduction and write. */
    if (rg + (int32_t)gridDim.x < n_rg)
        load_first((rg + (int32_t)gridDim.x) * rpb + warp / a.wpr);
    fm_finish<T, NMAT>(acc, a, row, rg == (int32_t)blockIdx.x, pb, pr);
    }
}

/* Scalar path (rows not 16-byte aligned): one element per lane per step,
 * x from global memory, norm on the fly. */
template <int T, int DT, int NMAT>
__global__ void __launch_bounds__(FM_THREADS, 2) fm_scalar_kernel(const fm_args a)
{
    __shared__ float s_inv[T];
    const int warp = threadIdx.x / KVL_CU_WARP, lane = threadIdx.x % KVL_CU_WARP;
    const int rpb = FM_WARPS / a.wpr;
    const int32_t row = blockIdx.x * rpb + warp / a.wpr;
    const int32_t stride = KVL_CU_WARP * a.wpr;
    const int32_t kbeg = (warp % a.wpr) * KVL_CU_WARP + lane;
    const int64_t base = (int64_t)min(row, a.M - 1) * a.K;

    pdl_trigger();
    float w[NMAT][FM_UNROLL];
#pragma unroll
    for (int u = 0; u < FM_UNROLL; u++) {
        const int32_t k = kbeg + u * stride;
#pragma unroll
        for (int m = 0; m < NMAT; m++)
            w[m][u] = (row < a.M && k < a.K) ? kvl_cu_load<DT>(a.W[m], base + k) : 0.0f;
    }
    pdl_wait();

    if (a.norm_w)
        fm_norm_inv<T>(a, s_inv);
    float acc[NMAT][T];
#pragma unroll
    for (int m = 0; m < NMAT; m++)
#pragma unroll
        for (int t = 0; t < T; t++)
            acc[m][t] = 0.0f;
    if (row < a.M) {
        for (int32_t k0 = kbeg;;) {
#pragma unroll
            for (int u = 0; u < FM_UNROLL; u++) {
                const int32_t k = k0 + u * stride;
                if (k >= a.K)
                    break;
                const float nw = a.norm_w ? kvl_cu_load_rt(a.norm_w, a.ndt, k) : 1.0f;
#pragma unroll
                for (int t = 0; t < T; t++) {
                    float xv = __ldg(a.x + (int64_t)t * a.K + k);
                    if (a.norm_w)
                        xv = nw * (xv * s_inv[t]);
#pragma unroll
                    for (int m = 0; m < NMAT; m++)
                        acc[m][t] = fmaf(w[m][u], xv, acc[m][t]);
                }
            }
            k0 += stride * FM_UNROLL;
            if (k0 >= a.K)
                break;
#pragma unroll
            for (int u = 0; u < FM_UNROLL; u++) {
                const int32_t k = k0 + u * stride;
#pragma unroll
                for (int m = 0; m < NMAT; m++)
                    w[m][u] = k < a.K ? kvl_cu_load<DT>(a.W[m], base + k) : 0.0f;
            }
        }
    }
    fm_finish<T, NMAT>(acc, a, row, false, NULL, 0.0f);
}

/* Launches `kernel` on `stream`, as a programmatic dependent launch when
 * pdl is set. */
template <typename... P, typename... A>
static cudaError_t kvl_launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                              int pdl, cudaStream_t stream, A &&...args)
{
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...);
}

/* Blocks of `kernel` resident at once on the device (one wave), so that no
 * block waits for a second wave: the vector kernel loops over row groups. */
template <typename K>
static unsigned fm_wave(K kernel, size_t smem, unsigned want)
{
    int dev = 0, n_sm = 0, per_sm = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, FM_THREADS, smem) !=
            cudaSuccess ||
        n_sm <= 0 || per_sm <= 0) {
        (void)cudaGetLastError(); /* not sticky; fall back to one block per group */
        return want;
    }
    const unsigned wave = (unsigned)n_sm * (unsigned)per_sm;
    return want < wave ? want : wave;
}

template <int T, int DT, int NMAT>
static cudaError_t fm_launch_dt(const fm_args &a, bool vec, int pdl, cudaStream_t stream)
{
    const int rpb = FM_WARPS / a.wpr;
    const unsigned n_rg = (unsigned)((a.M + rpb - 1) / rpb);
    const dim3 grid(n_rg);
    if (!vec)
        return kvl_launch(fm_scalar_kernel<T, DT, NMAT>, grid, dim3(FM_THREADS), 0, pdl,
                          stream, a);
    /* Staging pays when x is normalised (the norm applied once per block,
     * not once per row); a plain x is read through L1 as matvec.cu does,
     * without the block-wide round trip through shared memory. */
    const size_t xs = (size_t)T * a.K * sizeof(float);
    if (a.norm_w && xs <= FM_SMEM_X_MAX) {
        /* the norm weights staged behind x when they fit too */
        fm_args b = a;
        const size_t nwb = (size_t)a.K * sizeof(float);
        b.nw_smem = xs + nwb <= FM_SMEM_X_MAX;
        const size_t smem = b.nw_smem ? xs + nwb : xs;
        return kvl_launch(fm_vec_kernel<T, DT, NMAT, true>,
                          dim3(fm_wave(fm_vec_kernel<T, DT, NMAT, true>, smem, n_rg)),
                          dim3(FM_THREADS), smem, pdl, stream, b);
    }
    return kvl_launch(fm_vec_kernel<T, DT, NMAT, false>,
                      dim3(fm_wave(fm_vec_kernel<T, DT, NMAT, false>, 0, n_rg)),
                      dim3(FM_THREADS), 0, pdl, stream, a);
}

template <int T, int NMAT>
static cudaError_t fm_launch_t(const fm_args &a, kvl_dtype wdt, bool vec, int pdl,
                               cudaStream_t stream)
{
    switch (wdt) {
    case KVL_DTYPE_F32: return fm_launch_dt<T, KVL_DTYPE_F32, NMAT>(a, vec, pdl, stream);
    case KVL_DTYPE_F16: return fm_launch_dt<T, KVL_DTYPE_F16, NMAT>(a, vec, pdl, stream);
    default: return fm_launch_dt<T, KVL_DTYPE_BF16, NMAT>(a, vec, pdl, stream);
    }
}

template <int NMAT>
static cudaError_t fm_launch(const fm_args &a, kvl_dtype wdt, int32_t T, int pdl,
                             cudaStream_t stream)
{
    const size_t esz = wdt == KVL_DTYPE_F32 ? 4 : 2;
    /* Every row 16-byte aligned (base aligned, row length a multiple of 16
     * bytes) and x too: the 128-bit path; else scalar loads. */
    bool vec = ((size_t)a.K * esz) % 16 == 0 && (uintptr_t)a.x % 16 == 0;
    for (int m = 0; m < NMAT; m++)
        vec = vec && (uintptr_t)a.W[m] % 16 == 0;
    cudaError_t e;
    switch (T) {
    case 1: e = fm_launch_t<1, NMAT>(a, wdt, vec, pdl, stream); break;
    case 2: e = fm_launch_t<2, NMAT>(a, wdt, vec, pdl, stream); break;
    case 3: e = fm_launch_t<3, NMAT>(a, wdt, vec, pdl, stream); break;
    case 4: e = fm_launch_t<4, NMAT>(a, wdt, vec, pdl, stream); break;
    case 5: e = fm_launch_t<5, NMAT>(a, wdt, vec, pdl, stream); break;
    case 6: e = fm_launch_t<6, NMAT>(a, wdt, vec, pdl, stream); break;
    case 7: e = fm_launch_t<7, NMAT>(a, wdt, vec, pdl, stream); break;
    default: e = fm_launch_t<8, NMAT>(a, wdt, vec, pdl, stream); break;
    }
    return e != cudaSuccess ? e : cudaGetLastError();
}

/* [p, p + n) and [q, q + m) (bytes) overlap. */
static bool ranges_overlap(const void *p, size_t n, const void *q, size_t m)
{
    const uintptr_t a = (uintptr_t)p, b = (uintptr_t)q;
    return a < b + m && b < a + n;
}

static bool fm_common_ok(const float *y, const float *x, const void *norm_w, kvl_dtype ndt,
                         float eps, kvl_dtype wdt, const void *bias, kvl_dtype bdt,
                         int32_t T, int32_t M, int32_t K)
{
    if (!y || !x || T <= 0 || T > KVL_CU_MATVEC_MAX_T || M <= 0 || K <= 0 ||
        !kvl_cu_weight_dtype_ok(wdt))
        return false;
    if (norm_w && (!kvl_cu_weight_dtype_ok(ndt) || !(eps >= 0.0f) || isinf(eps)))
        return false;
    if (bias && !kvl_cu_weight_dtype_ok(bdt))
        return false;
    /* x must not overlap y: blocks read x while others write y. */
    return !ranges_overlap(x, (size_t)T * K * sizeof(float), y,
                           (size_t)T * M * sizeof(float));
}

extern "C" cudaError_t kvl_cu_matvec_fused(float *y, const void *W, kvl_dtype wdt,
                                           const float *x, const void *norm_w,
                                           kvl_dtype ndt, float eps, const void *bias,
                                           kvl_dtype bdt, const float *residual,
                                           int32_t T, int32_t M, int32_t K, int pdl,
                                           cudaStream_t stream)
{
    if (!W || !fm_common_ok(y, x, norm_w, ndt, eps, wdt, bias, bdt, T, M, K))
        return cudaErrorInvalidValue;
    const size_t ybytes = (size_t)T * M * sizeof(float);
    /* residual: y itself (in place) or disjoint from it. */
    if (residual && residual != y && ranges_overlap(residual, ybytes, y, ybytes))
        return cudaErrorInvalidValue;
    fm_args a = {};
    a.y = y;
    a.W[0] = a.W[1] = W;
    a.x = x;
    a.norm_w = norm_w;
    a.ndt = (int)ndt;
    a.eps = eps;
    a.bias[0] = a.bias[1] = bias;
    a.bdt = (int)bdt;
    a.residual = residual;
    a.M = M;
    a.K = K;
    a.wpr = kvl_cu_warps_per_row(M);
    return fm_launch<1>(a, wdt, T, pdl, stream);
}

extern "C" cudaError_t kvl_cu_matvec_swiglu(float *y, const void *Wg, const void *Wu,
                                            kvl_dtype wdt, const float *x,
                                            const void *norm_w, kvl_dtype ndt, float eps,
                                            const void *bg, const void *bu, kvl_dtype bdt,
                                            int32_t T, int32_t M, int32_t K, int pdl,
                                            cudaStream_t stream)
{
    if (!Wg || !Wu || !fm_common_ok(y, x, norm_w, ndt, eps, wdt, bg ? bg : bu, bdt, T, M, K))
        return cudaErrorInvalidValue;
    fm_args a = {};
    a.y = y;
    a.W[0] = Wg;
    a.W[1] = Wu;
    a.x = x;
    a.norm_w = norm_w;
    a.ndt = (int)ndt;
    a.eps = eps;
    a.bias[0] = bg;
    a.bias[1] = bu;
    a.bdt = (int)bdt;
    a.M = M;
    a.K = K;
    /* Two rows (gate and up) per warp row: the matrix pair counts double. */
    a.wpr = kvl_cu_warps_per_row(M);
    return fm_launch<2>(a, wdt, T, pdl, stream);
}

/* ------------------------------------------------------------------------ */
/* qkv finish: per-head norm, RoPE, cache store                               */
/* ------------------------------------------------------------------------ */

struct qf_args {
    float *qkv;
    int32_t stride;
    const void *q_norm, *k_norm;
    int ndt;
    float eps;
    const float *inv_freq;
    int32_t rotary_dim;
    int interleaved;
    float *const *kv_tab;
    int32_t layer, n_layers;
    const int32_t *meta;
    int32_t B, n_heads, n_kv, hd;
};

/* One warp per (sequence, head slot): slots 0 .. n_heads - 1 are the query
 * heads, then the key heads, then the value heads. */
__global__ void __launch_bounds__(QF_WARPS * KVL_CU_WARP) qf_kernel(const qf_args a)
{
    __shared__ float buf[QF_WARPS][KVL_CU_MAX_HEAD_DIM];
    __shared__ float cosin[QF_WARPS][KVL_CU_MAX_HEAD_DIM];
    pdl_trigger();
    /* meta and kv_tab are written by the host before the graph starts: read
     * them (and find the destination) before waiting for qkv. */
    const int warp = threadIdx.x / KVL_CU_WARP, lane = threadIdx.x % KVL_CU_WARP;
    const int32_t hs = blockIdx.x * QF_WARPS + warp, b = blockIdx.y;
    if (hs >= a.n_heads + 2 * a.n_kv)
        return; /* warp-uniform; no block barrier below */
    const int32_t hd = a.hd;
    const float *src = a.qkv + (int64_t)b * a.stride + (int64_t)hs * hd;
    const bool is_q = hs < a.n_heads, is_v = hs >= a.n_heads + a.n_kv;
    float *dst;
    if (is_q) {
        dst = a.qkv + (int64_t)b * a.stride + (int64_t)hs * hd;
    } else {
        const int32_t slot = a.meta[KVL_CU_META_SLOT * a.B + b];
        const int32_t cap = a.meta[KVL_CU_META_CAP * a.B + b];
        if (slot < 0 || slot >= cap)
            return; /* outside the cache: nothing to store */
        const int32_t kvh = hs - a.n_heads - (is_v ? a.n_kv : 0);
        float *cache = a.kv_tab[((int64_t)b * a.n_layers + a.layer) * 2 + (is_v ? 1 : 0)];
        dst = cache + ((int64_t)kvh * cap + slot) * hd;
    }
    const int32_t pos = a.meta[KVL_CU_META_POS * a.B + b];
    /* Also before the wait: this head's norm weights and the rotation's
     * cos / sin (they depend on pos and inv_freq only). */
    enum { QF_PER_LANE = KVL_CU_MAX_HEAD_DIM / KVL_CU_WARP };
    const void *nw = is_q ? a.q_norm : a.k_norm;
    const int32_t half = a.rotary_dim / 2;
    float nwv[QF_PER_LANE];
    float *cs = cosin[warp]; /* cos at [i], sin at [half + i] */
    if (!is_v) {
#pragma unroll
        for (int j = 0; j < QF_PER_LANE; j++) {
            const int32_t d = lane + j * KVL_CU_WARP;
            nwv[j] = nw && d < hd ? kvl_cu_load_rt(nw, a.ndt, d) : 0.0f;
        }
        /* RoPE as kvl_cu_rope (rope_pair): fp32 angle, cos / sin in double. */
        for (int32_t i = lane; i < half; i += KVL_CU_WARP) {
            const float angle = __fmul_rn((float)pos, __ldg(a.inv_freq + i));
            double sd, cd;
            sincos((double)angle, &sd, &cd);
            cs[i] = (float)cd;
            cs[half + i] = __fmul_rn((float)sd, 1.0f);
        }
    }
    pdl_wait(); /* qkv comes from the previous kernel */
    if (is_v) {
        for (int32_t d = lane; d < hd; d += KVL_CU_WARP)
            dst[d] = src[d];
        return;
    }
    float *row = buf[warp];
    for (int32_t d = lane; d < hd; d += KVL_CU_WARP)
        row[d] = src[d];
    if (nw) {
        /* As kvl_cu_rmsnorm over one head: double sum of squares. */
        double ss = 0.0;
        for (int32_t d = lane; d < hd; d += KVL_CU_WARP)
            ss += (double)row[d] * (double)row[d];
        ss = fm_warp_sum_d(ss);
        const float inv = (float)(1.0 / sqrt(ss / (double)hd + (double)a.eps));
#pragma unroll
        for (int j = 0; j < QF_PER_LANE; j++) {
            const int32_t d = lane + j * KVL_CU_WARP;
            if (d < hd)
                row[d] = nwv[j] * (row[d] * inv);
        }
    }
    __syncwarp();
    for (int32_t i = lane; i < half; i += KVL_CU_WARP) {
        const float c = cs[i], s = cs[half + i]; /* this lane's own writes */
        const int32_t ia = a.interleaved ? 2 * i : i;
        const int32_t ib = a.interleaved ? 2 * i + 1 : i + half;
        const float xa = row[ia], xb = row[ib];
        dst[ia] = xa * c - xb * s;
        dst[ib] = xb * c + xa * s;
    }
    for (int32_t d = a.rotary_dim + lane; d < hd; d += KVL_CU_WARP)
        dst[d] = row[d];
}

extern "C" cudaError_t kvl_cu_decode_qkv_finish(float *qkv, int32_t stride,
                                                const void *q_norm, const void *k_norm,
                                                kvl_dtype ndt, float eps,
                                                const float *inv_freq, int32_t rotary_dim,
                                                kvl_rope_layout layout,
                                                float *const *kv_tab, int32_t layer,
                                                int32_t n_layers, const int32_t *meta,
                                                int32_t B, int32_t n_heads,
                                                int32_t n_kv_heads, int32_t head_dim,
                                                int pdl, cudaStream_t stream)
{
    if (!qkv || !inv_freq || !kv_tab || !meta || B <= 0 || B > 65535 || n_heads <= 0 ||
        n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || head_dim <= 0 ||
        head_dim > KVL_CU_MAX_HEAD_DIM || rotary_dim <= 0 || rotary_dim % 2 != 0 ||
        rotary_dim > head_dim ||
        (layout != KVL_ROPE_ROTATE_HALF && layout != KVL_ROPE_INTERLEAVED) ||
        n_layers <= 0 || layer < 0 || layer >= n_layers ||
        (int64_t)stride < (int64_t)(n_heads + 2 * n_kv_heads) * head_dim)
        return cudaErrorInvalidValue;
    if ((q_norm || k_norm) && (!kvl_cu_weight_dtype_ok(ndt) || !(eps >= 0.0f) || isinf(eps)))
        return cudaErrorInvalidValue;
    const qf_args a = {qkv, stride, q_norm, k_norm, (int)ndt, eps, inv_freq, rotary_dim,
                       layout == KVL_ROPE_INTERLEAVED, kv_tab, layer, n_layers, meta, B,
                       n_heads, n_kv_heads, head_dim};
    const int32_t slots = n_heads + 2 * n_kv_heads;
    const dim3 grid((unsigned)((slots + QF_WARPS - 1) / QF_WARPS), (unsigned)B);
    const cudaError_t e = kvl_launch(qf_kernel, grid, dim3(QF_WARPS * KVL_CU_WARP), 0, pdl,
                                     stream, a);
    return e != cudaSuccess ? e : cudaGetLastError();
}

/* ------------------------------------------------------------------------ */
/* batched decode attention: tiles in shared memory, cluster combine          */
/* ------------------------------------------------------------------------ */

/* Design (why): at decode the kernel is latency-bound, not bandwidth-bound
 * (0.5 MB of K/V at 512 keys).  So
 *  - everything that does not depend on the previous kernel happens before
 *    griddepcontrol.wait: meta and kv_tab are written by the host before the
 *    graph starts, and cache rows j < SLOT[b] by earlier steps, so a block
 *    reads meta / pointers and starts cp.async copies of its old K and V rows
 *    into shared memory (and an L2 prefetch of its later tiles) first; only
 *    q and the new row j = SLOT[b] are read after the wait (through L2:
 *    ld.global.cg, never a possibly stale L1 line);
 *  - the blocks of one (sequence, head group) form clusters of AD_CLUSTER;
 *    a cluster combines its blocks' (max, sum, o) through distributed shared
 *    memory.  Up to AD_CLUSTER * AD_SHORT_TILES * kpb keys (1024 at hd 64)
 *    one cluster holds the whole context: no partials in global memory, no
 *    fence, no atomic.  Longer contexts spread over up to AD_MAX_BLOCKS
 *    blocks; each active cluster writes one partial and the last cluster to
 *    finish (fence + atomic counter, as before) combines them.
 * A block handles `chunk` consecutive keys in tiles of kpb rows (online
 * softmax across tiles); kpb depends on hd only (shared-memory budget). */

/* Row stride of a shared-memory tile: hd rounded up to 4, plus 4 floats, so
 * that 16-byte reads of consecutive rows fall in different banks. */
static __host__ __device__ __forceinline__ int32_t ad_ldk(int32_t hd)
{
    return (hd + 3) / 4 * 4 + 4;
}

/* Keys per tile: K and V tiles [kpb][ldk], q [AD_MAX_G][ldk] and scores
 * [AD_MAX_G][kpb] in AD_SMEM_FLOATS; a multiple of 8, at most AD_MAX_KPB
 * (64 at hd <= 96, 40 at 128, 16 at 256). */
static int32_t ad_kpb(int32_t hd)
{
    const int32_t ldk = ad_ldk(hd);
    int32_t kpb = (AD_SMEM_FLOATS - AD_MAX_G * ldk) / (2 * ldk + AD_MAX_G);
    kpb = kpb / 8 * 8;
    return kpb < 8 ? 8 : (kpb > AD_MAX_KPB ? AD_MAX_KPB : kpb);
}

static size_t ad_smem_bytes(int32_t hd, int32_t kpb)
{
    const int32_t ldk = ad_ldk(hd);
    return (size_t)(2 * kpb * ldk + AD_MAX_G * ldk + AD_MAX_G * kpb) * sizeof(float);
}

/* Blocks along x: enough for cap_max keys at kpb keys each, at most
 * AD_MAX_BLOCKS (longer contexts loop over tiles), a multiple of the
 * cluster size. */
static int32_t ad_blocks(int32_t cap_max, int32_t hd)
{
    const int32_t kpb = ad_kpb(hd);
    int32_t n = (int32_t)(((int64_t)cap_max + kpb - 1) / kpb);
    n = n > AD_MAX_BLOCKS ? AD_MAX_BLOCKS : n;
    return (n + AD_CLUSTER - 1) / AD_CLUSTER * AD_CLUSTER;
}

/* Partials [B][n_heads][clusters][hd + 2] (max, sum, o) from the start of
 * the scratch; the counters (one int per (sequence, block row), at most
 * B * n_heads) are the LAST B * n_heads floats of the buffer passed, so that
 * one buffer, zeroed once and sized for the largest B it serves, keeps every
 * smaller launch's counters clear of every launch's partials. */
extern "C" size_t kvl_cu_attention_decode_batch_scratch(int32_t B, int32_t n_heads,
                                                        int32_t cap_max, int32_t head_dim)
{
    if (B <= 0 || n_heads <= 0 || cap_max <= 0 || head_dim <= 0)
        return 0;
    const int32_t hd = head_dim > KVL_CU_MAX_HEAD_DIM ? KVL_CU_MAX_HEAD_DIM : head_dim;
    return (size_t)B * n_heads + (size_t)B * n_heads *
                                     (size_t)(ad_blocks(cap_max, hd) / AD_CLUSTER) *
                                     (size_t)(head_dim + 2);
}

struct ad_args {
    float *out;
    const float *q;
    int32_t q_stride;
    float *const *kv_tab;
    int32_t layer, n_layers;
    const int32_t *meta;
    int32_t B, n_heads, group, hd, per_kv, n_blocks, kpb;
    float scale;
    int *cnt;
    float *part;
};

static __device__ __forceinline__ void ad_cp16(float *s, const float *g)
{
    const uint32_t sa = (uint32_t)__cvta_generic_to_shared(s);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa), "l"(g) : "memory");
}

static __device__ __forceinline__ void ad_cp_commit_wait(void)
{
    asm volatile("cp.async.commit_group;\n\tcp.async.wait_all;" ::: "memory");
}

/* Rows [r0, r1) of a tile (global rows at kg / vg, stride hd) into the
 * shared tiles (stride ldk).  v16: 16-byte cp.async (L2 only, completes at
 * ad_cp_commit_wait); else 4-byte loads through L2 (ld.global.cg). */
static __device__ __forceinline__ void ad_load_rows(float *sK, float *sV, const float *kg,
                                                    const float *vg, int32_t r0, int32_t r1,
                                                    int32_t hd, int32_t ldk, bool v16)
{
    if (v16) {
        const int32_t q4 = hd / 4, n = (r1 - r0) * q4;
        for (int32_t i = threadIdx.x; i < n; i += AD_THREADS) {
            const int32_t r = r0 + i / q4, c = (i % q4) * 4;
            ad_cp16(sK + r * ldk + c, kg + (int64_t)r * hd + c);
            ad_cp16(sV + r * ldk + c, vg + (int64_t)r * hd + c);
        }
    } else {
        const int32_t n = (r1 - r0) * hd;
        for (int32_t i = threadIdx.x; i < n; i += AD_THREADS) {
            const int32_t r = r0 + i / hd, c = i % hd;
            sK[r * ldk + c] = __ldcg(kg + (int64_t)r * hd + c);
            sV[r * ldk + c] = __ldcg(vg + (int64_t)r * hd + c);
        }
    }
}

__global__ void __launch_bounds__(AD_THREADS, 2) ad_kernel(const ad_args a)
{
    namespace cgx = cooperative_groups;
    extern __shared__ float4 ad_smem4[];
    __shared__ float s_m[AD_MAX_G], s_l[AD_MAX_G], s_alpha[AD_MAX_G];
    __shared__ float s_w[AD_MAX_G][AD_MAX_BLOCKS / AD_CLUSTER > AD_CLUSTER
                                       ? AD_MAX_BLOCKS / AD_CLUSTER
                                       : AD_CLUSTER];
    __shared__ float s_M[AD_MAX_G], s_L[AD_MAX_G];
    __shared__ int s_last;
    pdl_trigger();

    cgx::cluster_group cluster = cgx::this_cluster();
    const int tid = threadIdx.x, lane = tid % KVL_CU_WARP, warp = tid / KVL_CU_WARP;
    const int32_t b = blockIdx.z, hd = a.hd, kpb = a.kpb, ldk = ad_ldk(hd);
    const int32_t kvh = blockIdx.y / a.per_kv;
    const int32_t h0 = kvh * a.group + (int32_t)(blockIdx.y % a.per_kv) * AD_MAX_G;
    const int32_t G = min(AD_MAX_G, (kvh + 1) * a.group - h0);
    const int32_t GH = G * hd;
    float *const sK = (float *)ad_smem4;
    float *const sV = sK + kpb * ldk;
    float *const sq = sV + kpb * ldk;
    float *const sp = sq + AD_MAX_G * ldk;
    float *const so = sK; /* the block's o, after the last tile */

    /* Before the wait: meta, pointers, the old rows of the first tile. */
    const int32_t cap = a.meta[KVL_CU_META_CAP * a.B + b];
    const int32_t slot = a.meta[KVL_CU_META_SLOT * a.B + b];
    /* Keys 0 .. slot, never past the cache. */
    const int32_t n_ctx = slot < 0 ? 0 : min(slot, cap - 1) + 1;
    float *out = a.out + (int64_t)b * a.n_heads * hd + (int64_t)h0 * hd;
    if (n_ctx <= 0) { /* no key (invalid meta): a defined output, zeros */
        pdl_wait();
        if (blockIdx.x == 0)
            for (int32_t i = tid; i < GH; i += AD_THREADS)
                out[i] = 0.0f;
        return; /* uniform over the grid row: no cluster barrier is pending */
    }
    /* One cluster while each of its blocks needs <= AD_SHORT_TILES tiles;
     * else chunks of >= kpb keys over up to n_blocks blocks. */
    int32_t chunk = ((n_ctx + AD_CLUSTER - 1) / AD_CLUSTER + 7) / 8 * 8;
    if (chunk > AD_SHORT_TILES * kpb)
        chunk = max(kpb, ((n_ctx + a.n_blocks - 1) / a.n_blocks + 7) / 8 * 8);
    const int32_t n_act = (n_ctx + chunk - 1) / chunk;
    const int32_t n_cl = (n_act + AD_CLUSTER - 1) / AD_CLUSTER; /* active clusters */
    const int32_t cl = blockIdx.x / AD_CLUSTER;
    if (cl >= n_cl)
        return; /* the whole cluster: past this sequence's context */
    const int32_t j0 = blockIdx.x * chunk;
    const int32_t nk = max(0, min(n_ctx, j0 + chunk) - j0); /* 0: idle member */

    float *const *tab = a.kv_tab + ((int64_t)b * a.n_layers + a.layer) * 2;
    const int64_t kv_off = (int64_t)kvh * cap * hd;
    const float *kb = tab[0] + kv_off, *vb = tab[1] + kv_off;
    const bool v16 = hd % 4 == 0 && (((uintptr_t)kb | (uintptr_t)vb) & 15) == 0;
    if (nk > 0) {
        const int32_t nt0 = min(kpb, nk);
        const int32_t n_old = min(nt0, slot - j0); /* rows < slot: not being written */
        ad_load_rows(sK, sV, kb + (int64_t)j0 * hd, vb + (int64_t)j0 * hd, 0, n_old, hd, ldk,
                     v16);
        if (v16 && tid == 0) { /* later tiles' old rows: to L2 in the background */
            const int32_t r0 = j0 + kpb, r1 = min(j0 + nk, slot);
            if (r1 > r0) {
                fm_prefetch_l2(kb + (int64_t)r0 * hd, (uint32_t)((r1 - r0) * hd * 4));
                fm_prefetch_l2(vb + (int64_t)r0 * hd, (uint32_t)((r1 - r0) * hd * 4));
            }
        }
    }
    if (tid < AD_MAX_G) {
        s_m[tid] = -INFINITY;
        s_l[tid] = 0.0f;
    }
    pdl_wait(); /* q and the new K/V row come from the previous kernels */

    const float *q = a.q + (int64_t)b * a.q_stride + (int64_t)h0 * hd;
    for (int32_t i = tid; i < GH; i += AD_THREADS)
        sq[(i / hd) * ldk + i % hd] = __ldcg(q + i);
    if (nk > 0 && slot >= j0 && slot < j0 + min(kpb, nk)) /* the new row, tile 0 */
        for (int32_t d = tid; d < hd; d += AD_THREADS) {
            sK[(slot - j0) * ldk + d] = __ldcg(kb + (int64_t)slot * hd + d);
            sV[(slot - j0) * ldk + d] = __ldcg(vb + (int64_t)slot * hd + d);
        }
    float acc[AD_OUT_PT];
#pragma unroll
    for (int r = 0; r < AD_OUT_PT; r++)
        acc[r] = 0.0f;
    ad_cp_commit_wait();
    __syncthreads();

    for (int32_t t0 = 0; t0 < nk; t0 += kpb) {
        const int32_t nt = min(kpb, nk - t0);
        if (t0 > 0) { /* after the wait: every row, the new one included */
            ad_load_rows(sK, sV, kb + (int64_t)(j0 + t0) * hd, vb + (int64_t)(j0 + t0) * hd,
                         0, nt, hd, ldk, v16);
            ad_cp_commit_wait();
            __syncthreads();
        }
        /* Scores: one (head, key) dot per thread, 4 partial sums. */
        for (int32_t i = tid; i < G * nt; i += AD_THREADS) {
            const int32_t gi = i / nt, j = i - gi * nt;
            const float *kr = sK + j * ldk, *qr = sq + gi * ldk;
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            if (hd % 4 == 0) {
                for (int32_t d = 0; d < hd; d += 4) {
                    const float4 k4 = *(const float4 *)(kr + d);
                    const float4 q4 = *(const float4 *)(qr + d);
                    s0 = fmaf(q4.x, k4.x, s0);
                    s1 = fmaf(q4.y, k4.y, s1);
                    s2 = fmaf(q4.z, k4.z, s2);
                    s3 = fmaf(q4.w, k4.w, s3);
                }
            } else {
                for (int32_t d = 0; d < hd; d++)
                    s0 = fmaf(qr[d], kr[d], s0);
            }
            sp[gi * kpb + j] = ((s0 + s1) + (s2 + s3)) * a.scale;
        }
        __syncthreads();
        /* Online softmax over the tile: warp gi takes head gi. */
        if (warp < G) {
            float *p = sp + warp * kpb;
            float mt = -INFINITY;
            for (int32_t j = lane; j < nt; j += KVL_CU_WARP)
                mt = fmaxf(mt, p[j]);
            mt = kvl_cu_warp_max(mt);
            const float mo = s_m[warp], mn = fmaxf(mo, mt);
            float l = 0.0f;
            for (int32_t j = lane; j < nt; j += KVL_CU_WARP) {
                const float e = expf(p[j] - mn);
                p[j] = e;
                l += e;
            }
            l = kvl_cu_warp_sum(l);
            __syncwarp();
            if (lane == 0) {
                const float al = mo == -INFINITY ? 0.0f : expf(mo - mn);
                s_alpha[warp] = al;
                s_m[warp] = mn;
                s_l[warp] = s_l[warp] * al + l;
            }
        }
        __syncthreads();
        /* o[gi][d] = alpha o[gi][d] + sum_j p[gi][j] v[j][d]. */
#pragma unroll
        for (int r = 0; r < AD_OUT_PT; r++) {
            const int32_t i = tid + r * AD_THREADS;
            if (i < GH) {
                const int32_t gi = i / hd, d = i - gi * hd;
                const float *p = sp + gi * kpb, *v = sV + d;
                /* 4 independent sums: loads of 4 keys in flight */
                float o0 = 0.0f, o1 = 0.0f, o2 = 0.0f, o3 = 0.0f;
                int32_t j = 0;
                for (; j + 3 < nt; j += 4) {
                    o0 = fmaf(p[j], v[j * ldk], o0);
                    o1 = fmaf(p[j + 1], v[(j + 1) * ldk], o1);
                    o2 = fmaf(p[j + 2], v[(j + 2) * ldk], o2);
                    o3 = fmaf(p[j + 3], v[(j + 3) * ldk], o3);
                }
                for (; j < nt; j++)
                    o0 = fmaf(p[j], v[j * ldk], o0);
                acc[r] = acc[r] * s_alpha[gi] + ((o0 + o1) + (o2 + o3));
            }
        }
        __syncthreads(); /* tiles and scores are rewritten next */
    }

    /* The block's unnormalised o (zeros for an idle member) for the cluster. */
#pragma unroll
    for (int r = 0; r < AD_OUT_PT; r++) {
        const int32_t i = tid + r * AD_THREADS;
        if (i < GH)
            so[i] = acc[r];
    }
    cluster.sync();
    const int rank = (int)cluster.block_rank();
    if (tid < G) {
        float mb[AD_CLUSTER], M = -INFINITY;
#pragma unroll
        for (int c = 0; c < AD_CLUSTER; c++) {
            mb[c] = *cluster.map_shared_rank(&s_m[tid], c);
            M = fmaxf(M, mb[c]);
        }
        float L = 0.0f;
#pragma unroll
        for (int c = 0; c < AD_CLUSTER; c++) {
            const float w = mb[c] == -INFINITY ? 0.0f : expf(mb[c] - M);
            s_w[tid][c] = w;
            if (w != 0.0f)
                L = fmaf(*cluster.map_shared_rank(&s_l[tid], c), w, L);
        }
        s_M[tid] = M;
        s_L[tid] = L;
    }
    __syncthreads();
    /* This rank's slice of the outputs. */
    const int32_t per = (GH + AD_CLUSTER - 1) / AD_CLUSTER;
    const int32_t i0 = rank * per, i1 = min(GH, i0 + per);
    const int64_t pstride = hd + 2;
    const int32_t n_clus = a.n_blocks / AD_CLUSTER;
    float *part = a.part + ((int64_t)b * a.n_heads + h0) * n_clus * pstride;
    for (int32_t i = i0 + tid; i < i1; i += AD_THREADS) {
        const int32_t gi = i / hd;
        float o = 0.0f;
#pragma unroll
        for (int c = 0; c < AD_CLUSTER; c++) {
            const float w = s_w[gi][c];
            if (w != 0.0f)
                o = fmaf(*cluster.map_shared_rank(so + i, c), w, o);
        }
        if (n_cl == 1)
            out[i] = o / s_L[gi];
        else
            part[((int64_t)gi * n_clus + cl) * pstride + 2 + (i - gi * hd)] = o;
    }
    if (n_cl == 1) {
        cluster.sync(); /* no block leaves while others read its shared memory */
        return;
    }
    if (rank == 0 && tid < G) {
        float *p = part + ((int64_t)tid * n_clus + cl) * pstride;
        p[0] = s_M[tid];
        p[1] = s_L[tid];
    }
    /* The last cluster of this (sequence, head group) to finish combines:
     * release our partial, count, and the block that completes the count
     * acquires the others'. */
    __threadfence();
    cluster.sync();
    if (rank != 0)
        return;
    int *cnt = a.cnt + (int64_t)b * a.n_heads + blockIdx.y;
    if (tid == 0)
        s_last = atomicAdd(cnt, 1) == n_cl - 1;
    __syncthreads();
    if (!s_last)
        return;
    __threadfence();
    /* out = sum_c o_c w_c / sum_c l_c w_c, w_c = e^(m_c - M); partials read
     * through L2 (__ldcg), never a stale L1 line. */
    if (tid < G) {
        const float *ph = part + (int64_t)tid * n_clus * pstride;
        float M = -INFINITY;
        for (int32_t c = 0; c < n_cl; c++)
            M = fmaxf(M, __ldcg(ph + c * pstride));
        float L = 0.0f;
        for (int32_t c = 0; c < n_cl; c++) {
            const float w = expf(__ldcg(ph + c * pstride) - M);
            s_w[tid][c] = w;
            L = fmaf(__ldcg(ph + c * pstride + 1), w, L);
        }
        s_L[tid] = L;
    }
    __syncthreads();
    for (int32_t i = tid; i < GH; i += AD_THREADS) {
        const int32_t gi = i / hd, d = i - gi * hd;
        const float *ph = part + (int64_t)gi * n_clus * pstride + 2 + d;
        float o = 0.0f;
        for (int32_t c = 0; c < n_cl; c++)
            o = fmaf(__ldcg(ph + c * pstride), s_w[gi][c], o);
        out[i] = o / s_L[gi];
    }
    if (tid == 0)
        *cnt = 0; /* ready for the next launch (graph replays) */
}

extern "C" cudaError_t kvl_cu_attention_decode_batch(float *out, const float *q,
                                                     int32_t q_stride, float *const *kv_tab,
                                                     int32_t layer, int32_t n_layers,
                                                     const int32_t *meta, int32_t B,
                                                     int32_t cap_max, int32_t n_heads,
                                                     int32_t n_kv_heads, int32_t head_dim,
                                                     float *scratch, size_t scratch_floats,
                                                     int pdl, cudaStream_t stream)
{
    if (!out || !q || !kv_tab || !meta || !scratch || B <= 0 || B > 65535 || cap_max <= 0 ||
        n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || head_dim <= 0 ||
        head_dim > KVL_CU_MAX_HEAD_DIM || n_layers <= 0 || layer < 0 || layer >= n_layers ||
        (int64_t)q_stride < (int64_t)n_heads * head_dim)
        return cudaErrorInvalidValue;
    if (scratch_floats < kvl_cu_attention_decode_batch_scratch(B, n_heads, cap_max, head_dim))
        return cudaErrorInvalidValue;
    const int32_t group = n_heads / n_kv_heads;
    const int32_t per_kv = (group + AD_MAX_G - 1) / AD_MAX_G;
    ad_args a;
    a.out = out;
    a.q = q;
    a.q_stride = q_stride;
    a.kv_tab = kv_tab;
    a.layer = layer;
    a.n_layers = n_layers;
    a.meta = meta;
    a.B = B;
    a.n_heads = n_heads;
    a.group = group;
    a.hd = head_dim;
    a.per_kv = per_kv;
    a.n_blocks = ad_blocks(cap_max, head_dim);
    a.kpb = ad_kpb(head_dim);
    a.scale = 1.0f / sqrtf((float)head_dim);
    a.cnt = (int *)(scratch + scratch_floats - (size_t)B * n_heads);
    a.part = scratch;
    if ((int64_t)n_kv_heads * per_kv > 65535)
        return cudaErrorInvalidValue;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)a.n_blocks, (unsigned)(n_kv_heads * per_kv), (unsigned)B);
    cfg.blockDim = dim3(AD_THREADS);
    cfg.dynamicSmemBytes = ad_smem_bytes(head_dim, a.kpb);
    cfg.stream = stream;
    cudaLaunchAttribute attr[2];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = AD_CLUSTER;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[1].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 2 : 1;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, ad_kernel, a);
    return e != cudaSuccess ? e : cudaGetLastError();
}
