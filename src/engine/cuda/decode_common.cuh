/*
 * Device helpers of the decode kernels (decode.cu, matvec.cu):
 * programmatic dependent launch, streaming weight loads, L2 prefetch,
 * 16-byte weight chunks to fp32.  Internal to src/engine/cuda/.
 */
#ifndef KVL_ENGINE_CUDA_DECODE_COMMON_CUH
#define KVL_ENGINE_CUDA_DECODE_COMMON_CUH

#include "engine/cuda/common.cuh"

/* ------------------------------------------------------------------------ */
/* PDL and load helpers                                                      */
/* ------------------------------------------------------------------------ */

static __device__ __forceinline__ void pdl_trigger(void)
{
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

static __device__ __forceinline__ void pdl_wait(void)
{
    asm volatile("griddepcontrol.wait;" ::: "memory");
}

/* 16 bytes of W, read once: non-coherent path, no L1 allocation. */
static __device__ __forceinline__ uint4 fm_ld_stream(const uint4 *p)
{
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

/* Asks L2 to fetch [p, p + bytes) (16-byte aligned, multiple of 16) in the
 * background: one instruction for a block's contiguous weight rows. */
static __device__ __forceinline__ void fm_prefetch_l2(const void *p, uint32_t bytes)
{
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes)
                 : "memory");
}

template <int DT> struct fm_chunk {
    static constexpr int n = DT == KVL_DTYPE_F32 ? 4 : 8; /* per 16 bytes */
    static constexpr int size = DT == KVL_DTYPE_F32 ? 4 : 2;
};

template <int DT>
static __device__ __forceinline__ void fm_unpack(const uint4 &w, float *f)
{
    const uint32_t u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        if (DT == KVL_DTYPE_F32) {
            f[j] = __uint_as_float(u[j]);
        } else if (DT == KVL_DTYPE_BF16) {
            f[2 * j] = __uint_as_float(u[j] << 16);
            f[2 * j + 1] = __uint_as_float(u[j] & 0xffff0000u);
        } else {
            f[2 * j] = kvl_cu_f16f((uint16_t)(u[j] & 0xffffu));
            f[2 * j + 1] = kvl_cu_f16f((uint16_t)(u[j] >> 16));
        }
    }
}

/* Warps per output row of a matvec: enough blocks to fill the chip for
 * small M (host side, matvec.cu and decode.cu). */
static inline int kvl_cu_warps_per_row(int32_t M)
{
    if (M >= 4096)
        return 1;
    if (M >= 2048)
        return 2;
    if (M >= 512)
        return 4;
    return 8;
}

static __device__ __forceinline__ double fm_warp_sum_d(double v)
{
#pragma unroll
    for (int o = KVL_CU_WARP / 2; o > 0; o >>= 1)
        v += __shfl_xor_sync(KVL_CU_FULL_MASK, v, o);
    return v;
}

#endif
