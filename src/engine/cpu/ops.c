#include "engine/cpu/ops.h"

#include "core/dtype.h"

#include <math.h>

static float weight_at(const kvl_weight *w, int64_t i)
{
    float v;
    kvl_convert_to_f32(&v, (const unsigned char *)w->data +
                               (size_t)i * kvl_dtype_size(w->dtype),
                       w->dtype, 1);
    return v;
}

void kvl_rmsnorm(float *out, const float *x, const kvl_weight *w, int64_t rows,
                 int64_t n, double eps, int n_threads)
{
#pragma omp parallel for schedule(static) num_threads(n_threads) if (rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *orow = out + r * n;
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)xr[i] * (double)xr[i];
        /* HF: x * rsqrt(mean + eps) in fp32, then weight * that. */
        float inv = (float)(1.0 / sqrt(ss / (double)n + eps));
        for (int64_t i = 0; i < n; i++)
            orow[i] = weight_at(w, i) * (xr[i] * inv);
    }
}

void kvl_swiglu(float *out, const float *gate, const float *up, int64_t n,
                int n_threads)
{
#pragma omp parallel for schedule(static) num_threads(n_threads) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void kvl_add_inplace(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

void kvl_embed_row(float *out, const kvl_weight *table, int32_t id)
{
    const size_t esz = kvl_dtype_size(table->dtype);
    kvl_convert_to_f32(out, (const unsigned char *)table->data +
                                (size_t)id * (size_t)table->cols * esz,
                       table->dtype, (size_t)table->cols);
}
