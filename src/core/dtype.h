/* Scalar and row conversions between the stored dtypes and fp32. */
#ifndef KVL_CORE_DTYPE_H
#define KVL_CORE_DTYPE_H

#include "kvlab.h"

#include <stdint.h>
#include <string.h>

static inline float kvl_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even, NaN kept quiet (as torch does). */
static inline uint16_t kvl_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float kvl_f16_to_f32(uint16_t h);
uint16_t kvl_f32_to_f16(float f);

/* dst[i] = fp32 value of element i of src (stored as dtype), n elements.
 * src may be unaligned.  dtype must be F32, F16 or BF16. */
void kvl_convert_to_f32(float *dst, const void *src, kvl_dtype dtype,
                        size_t n);
/* dst (stored as dtype) from fp32 src; F32, F16 or BF16. */
void kvl_convert_from_f32(void *dst, kvl_dtype dtype, const float *src,
                          size_t n);

#endif
