#include "core/rope.h"

#include "core/error.h"

#include <math.h>

void kvl_rope_inv_freq(const kvl_rope *rope, float *inv_freq)
{
    const int half = rope->rotary_dim / 2;
    for (int i = 0; i < half; i++) {
        /* HF: 1 / base ** (arange(0, dim, 2) / dim), in fp32. */
        float expo = (float)(2 * i) / (float)rope->rotary_dim;
        float f = 1.0f / powf((float)rope->theta, expo);
        if (rope->scaling == KVL_ROPE_SCALING_LINEAR) {
            f = f / (float)rope->factor;
        } else if (rope->scaling == KVL_ROPE_SCALING_LLAMA3) {
            const double old_len = rope->original_max_position;
            const double low_wavelen = old_len / rope->low_freq_factor;
            const double high_wavelen = old_len / rope->high_freq_factor;
            const double wavelen = 2.0 * M_PI / (double)f;
            if (wavelen > low_wavelen) {
                f = f / (float)rope->factor;
            } else if (wavelen >= high_wavelen) {
                double smooth = (old_len / wavelen - rope->low_freq_factor) /
                                (rope->high_freq_factor - rope->low_freq_factor);
                f = (float)((1.0 - smooth) * f / rope->factor + smooth * f);
            }
        }
        inv_freq[i] = f;
    }
}

void kvl_rope_rotate(const kvl_rope *rope, const float *inv_freq, float *x,
                     int head_dim, int32_t pos, int sign)
{
    const int half = rope->rotary_dim / 2;
    (void)head_dim;
    for (int i = 0; i < half; i++) {
        float angle = (float)pos * inv_freq[i];
        float c = (float)cos((double)angle);
        float s = (float)sin((double)angle) * (float)sign;
        int a, b;
        if (rope->layout == KVL_ROPE_INTERLEAVED) {
            a = 2 * i;
            b = 2 * i + 1;
        } else {
            a = i;
            b = i + half;
        }
        float xa = x[a], xb = x[b];
        x[a] = xa * c - xb * s;
        x[b] = xb * c + xa * s;
    }
}

kvl_status kvl_rope_validate(const kvl_rope *rope, int head_dim,
                             kvl_error *err)
{
    if (!(rope->theta > 0.0) || !isfinite(rope->theta))
        return kvl_fail(err, KVL_ERR_FORMAT, "rope theta must be positive, got %g",
                        rope->theta);
    if (rope->rotary_dim <= 0 || rope->rotary_dim % 2 != 0 ||
        rope->rotary_dim > head_dim)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "rotary dimension %d must be even and at most head_dim %d",
                        (int)rope->rotary_dim, head_dim);
    if (rope->layout != KVL_ROPE_ROTATE_HALF &&
        rope->layout != KVL_ROPE_INTERLEAVED)
        return kvl_fail(err, KVL_ERR_FORMAT, "unknown rope layout %d",
                        (int)rope->layout);
    switch (rope->scaling) {
    case KVL_ROPE_SCALING_NONE:
        break;
    case KVL_ROPE_SCALING_LINEAR:
        if (!(rope->factor > 0.0) || !isfinite(rope->factor))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "linear rope scaling needs factor > 0, got %g",
                            rope->factor);
        break;
    case KVL_ROPE_SCALING_LLAMA3:
        if (!(rope->factor > 0.0) || !(rope->low_freq_factor > 0.0) ||
            !(rope->high_freq_factor > rope->low_freq_factor) ||
            rope->original_max_position <= 0)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "llama3 rope scaling needs factor > 0, "
                            "0 < low_freq_factor < high_freq_factor and "
                            "original_max_position_embeddings > 0 "
                            "(got %g, %g, %g, %d)",
                            rope->factor, rope->low_freq_factor,
                            rope->high_freq_factor,
                            (int)rope->original_max_position);
        break;
    default:
        return kvl_fail(err, KVL_ERR_FORMAT, "unknown rope scaling %d",
                        (int)rope->scaling);
    }
    return KVL_OK;
}

const char *kvl_rope_scaling_name(kvl_rope_scaling_type t)
{
    switch (t) {
    case KVL_ROPE_SCALING_NONE: return "none";
    case KVL_ROPE_SCALING_LINEAR: return "linear";
    case KVL_ROPE_SCALING_LLAMA3: return "llama3";
    }
    return "?";
}

const char *kvl_rope_layout_name(kvl_rope_layout l)
{
    return l == KVL_ROPE_INTERLEAVED ? "interleaved" : "rotate_half";
}
