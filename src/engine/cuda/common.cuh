/*
 * Device helpers shared by the CUDA kernels (internal to src/engine/cuda/).
 * Weight conversions reproduce src/core/dtype.c exactly: bf16 is the top
 * half of an fp32, f16 -> fp32 is exact in hardware.
 */
#ifndef KVL_ENGINE_CUDA_COMMON_CUH
#define KVL_ENGINE_CUDA_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kvlab.h"

#define KVL_CU_WARP 32
#define KVL_CU_FULL_MASK 0xffffffffu
#define KVL_CU_MAX_HEAD_DIM 256

static __device__ __forceinline__ float kvl_cu_bf16f(uint16_t h)
{
    return __uint_as_float((uint32_t)h << 16);
}

static __device__ __forceinline__ float kvl_cu_f16f(uint16_t h)
{
    return __half2float(__ushort_as_half(h));
}

/* Element i of a weight stored as DT, converted to fp32. */
template <int DT>
static __device__ __forceinline__ float kvl_cu_load(const void *p, int64_t i)
{
    if (DT == KVL_DTYPE_F32)
        return __ldg((const float *)p + i);
    const unsigned short h = __ldg((const unsigned short *)p + i);
    return DT == KVL_DTYPE_BF16 ? kvl_cu_bf16f(h) : kvl_cu_f16f(h);
}

/* The same with the dtype known only at run time (bias, norm weight). */
static __device__ __forceinline__ float kvl_cu_load_rt(const void *p, int dt,
                                                       int64_t i)
{
    switch (dt) {
    case KVL_DTYPE_F32: return kvl_cu_load<KVL_DTYPE_F32>(p, i);
    case KVL_DTYPE_F16: return kvl_cu_load<KVL_DTYPE_F16>(p, i);
    default: return kvl_cu_load<KVL_DTYPE_BF16>(p, i);
    }
}

static __device__ __forceinline__ float kvl_cu_warp_sum(float v)
{
#pragma unroll
    for (int o = KVL_CU_WARP / 2; o > 0; o >>= 1)
        v += __shfl_xor_sync(KVL_CU_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ float kvl_cu_warp_max(float v)
{
#pragma unroll
    for (int o = KVL_CU_WARP / 2; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(KVL_CU_FULL_MASK, v, o));
    return v;
}

/* Host side: the weight dtypes the kernels read. */
static inline bool kvl_cu_weight_dtype_ok(kvl_dtype dt)
{
    return dt == KVL_DTYPE_F32 || dt == KVL_DTYPE_F16 || dt == KVL_DTYPE_BF16;
}

/* Host side: blocks for a grid-stride loop over n items. */
static inline unsigned kvl_cu_blocks(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    const int64_t cap = 1 << 20; /* grid-stride loops cover the rest */
    return (unsigned)(b < 1 ? 1 : (b > cap ? cap : b));
}

#endif
