#include "core/dtype.h"

#include <strings.h>

static const char *const dtype_names[KVL_DTYPE_COUNT] = {"F32", "F16", "BF16",
                                                         "I32", "I64"};
static const size_t dtype_sizes[KVL_DTYPE_COUNT] = {4, 2, 2, 4, 8};

const char *kvl_dtype_name(kvl_dtype dtype)
{
    if ((unsigned)dtype >= KVL_DTYPE_COUNT)
        return "?";
    return dtype_names[dtype];
}

size_t kvl_dtype_size(kvl_dtype dtype)
{
    if ((unsigned)dtype >= KVL_DTYPE_COUNT)
        return 0;
    return dtype_sizes[dtype];
}

kvl_status kvl_dtype_parse(const char *name, kvl_dtype *out)
{
    static const struct { const char *name; kvl_dtype dtype; } names[] = {
        {"F32", KVL_DTYPE_F32},   {"float32", KVL_DTYPE_F32},
        {"fp32", KVL_DTYPE_F32},  {"F16", KVL_DTYPE_F16},
        {"float16", KVL_DTYPE_F16}, {"fp16", KVL_DTYPE_F16},
        {"half", KVL_DTYPE_F16},  {"BF16", KVL_DTYPE_BF16},
        {"bfloat16", KVL_DTYPE_BF16}, {"I32", KVL_DTYPE_I32},
        {"int32", KVL_DTYPE_I32}, {"I64", KVL_DTYPE_I64},
        {"int64", KVL_DTYPE_I64},
    };
    if (!name || !out)
        return KVL_ERR_ARG;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].dtype;
            return KVL_OK;
        }
    }
    return KVL_ERR_ARG;
}

float kvl_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while ((mant & 0x400u) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + (127 - 15)) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t kvl_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) /* NaN */
        return (uint16_t)(sign | 0x7e00u);
    if (absu >= 0x477ff000u) /* rounds to >= 65520: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (absu < 0x38800000u) { /* below the smallest normal half: subnormal */
        if (absu < 0x33000000u) /* < 2^-25 rounds to zero */
            return (uint16_t)sign;
        uint32_t e = absu >> 23;
        uint32_t mant = (absu & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14 + (113 - e) */
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t rounded = absu + 0xfffu + ((absu >> 13) & 1u);
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

void kvl_convert_to_f32(float *dst, const void *src, kvl_dtype dtype, size_t n)
{
    const unsigned char *s = src;
    switch (dtype) {
    case KVL_DTYPE_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case KVL_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = kvl_bf16_to_f32(h);
        }
        break;
    case KVL_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = kvl_f16_to_f32(h);
        }
        break;
    default:
        break;
    }
}

void kvl_convert_from_f32(void *dst, kvl_dtype dtype, const float *src,
                          size_t n)
{
    unsigned char *d = dst;
    switch (dtype) {
    case KVL_DTYPE_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case KVL_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = kvl_f32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    case KVL_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = kvl_f32_to_f16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    default:
        break;
    }
}
