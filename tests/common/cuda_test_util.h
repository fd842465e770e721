/*
 * Helpers shared by the CUDA kernel tests (tests/engine/test_cuda_*.c):
 * a seeded splitmix64 generator, weights in every dtype with their exact
 * values in double, device buffers, and relative errors against double
 * references.  Only for builds with CUDA (KVL_HAVE_CUDA).
 */
#ifndef KVL_TESTS_CUDA_TEST_UTIL_H
#define KVL_TESTS_CUDA_TEST_UTIL_H

#include "test_util.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t s;
} rng_t;

static inline uint64_t rng_next(rng_t *r) /* splitmix64 */
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline double rng_unif(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [-a, a], never exactly zero. */
static inline float rng_sym(rng_t *r, float a)
{
    float f = (float)((2.0 * rng_unif(r) - 1.0) * a);
    return f != 0.0f ? f : a / 3.0f;
}

static inline int32_t rng_int(rng_t *r, int32_t n)
{
    return (int32_t)(rng_next(r) % (uint64_t)n);
}

static inline void fill_sym(rng_t *r, float *x, size_t n, float a)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rng_sym(r, a);
}

static inline size_t esize(kvl_dtype dt)
{
    return dt == KVL_DTYPE_F32 ? 4 : 2;
}

/* n random weights of dtype dt: raw bits into `raw`, exact values into
 * `val`.  bf16: exponent 2^-9 .. 2^0, f16: 2^-10 .. 2^1, random mantissa
 * and sign, decoded independently of the library with ldexp. */
static inline void gen_weights(rng_t *r, kvl_dtype dt, size_t n, void *raw, double *val)
{
    for (size_t i = 0; i < n; i++) {
        const uint64_t b = rng_next(r);
        const int neg = (int)(b & 1);
        if (dt == KVL_DTYPE_F32) {
            float f = rng_sym(r, 1.0f);
            memcpy((char *)raw + 4 * i, &f, 4);
            val[i] = f;
        } else if (dt == KVL_DTYPE_BF16) {
            const unsigned e = 118 + (unsigned)((b >> 1) % 10), m = (unsigned)((b >> 8) & 0x7f);
            const uint16_t h = (uint16_t)((neg << 15) | (e << 7) | m);
            memcpy((char *)raw + 2 * i, &h, 2);
            val[i] = (neg ? -1 : 1) * ldexp(1.0 + m / 128.0, (int)e - 127);
        } else {
            const unsigned e = 5 + (unsigned)((b >> 1) % 12), m = (unsigned)((b >> 8) & 0x3ff);
            const uint16_t h = (uint16_t)((neg << 15) | (e << 10) | m);
            memcpy((char *)raw + 2 * i, &h, 2);
            val[i] = (neg ? -1 : 1) * ldexp(1.0 + m / 1024.0, (int)e - 15);
        }
    }
}

#define CU_OK(call)                                                          \
    do {                                                                     \
        cudaError_t e_ = (call);                                             \
        CHECK(e_ == cudaSuccess, "%s", cudaGetErrorString(e_));              \
    } while (0)

static inline void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        fprintf(stderr, "cudaMalloc(%zu) failed\n", bytes);
        exit(1);
    }
    return p;
}

static inline void *dev_copy(const void *host, size_t bytes)
{
    void *p = dev_alloc(bytes);
    if (cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
        fprintf(stderr, "cudaMemcpy to device failed\n");
        exit(1);
    }
    return p;
}

static inline void to_host(void *host, const void *dev, size_t bytes)
{
    CU_OK(cudaDeviceSynchronize());
    CU_OK(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost));
}

static inline size_t count_nan(const float *x, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += isnan(x[i]) != 0;
    return c;
}

/* ||got - ref|| / ||ref|| with a double reference; inf when got has NaN. */
static inline double rel_err_d(const float *got, const double *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    if (!isfinite(num))
        return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static inline void make_inv_freq(float *f, int32_t rotary_dim, double theta)
{
    for (int32_t i = 0; i < rotary_dim / 2; i++)
        f[i] = (float)(1.0 / pow(theta, (double)(2 * i) / rotary_dim));
}

/* Attention inputs: caches [n_kv][cap][hd] with n_ctx random rows per head
 * and NaN past them (a kernel must never let those in), and nq random
 * query values. */
static inline void make_attention_inputs(rng_t *r, int32_t n_kv, int32_t cap, int32_t n_ctx,
                                         int32_t hd, size_t nq, float **kc, float **vc,
                                         float **q)
{
    const size_t plane = (size_t)n_kv * cap * hd;
    *kc = malloc(plane * sizeof **kc);
    *vc = malloc(plane * sizeof **vc);
    *q = malloc(nq * sizeof **q);
    for (size_t i = 0; i < plane; i++)
        (*kc)[i] = (*vc)[i] = NAN;
    for (int32_t h = 0; h < n_kv; h++)
        for (int32_t j = 0; j < n_ctx; j++) {
            const size_t o = ((size_t)h * cap + j) * hd;
            fill_sym(r, *kc + o, (size_t)hd, 1.0f);
            fill_sym(r, *vc + o, (size_t)hd, 1.0f);
        }
    fill_sym(r, *q, nq, 2.0f);
}

/* Causal grouped-query attention in double from the fp32 inputs:
 * ref[t][h][d] for T query rows after n_past cached tokens (the cache
 * [n_kv][cap][hd] holds all n_past + T). */
static inline void ref_attention(double *ref, const float *q, const float *kc,
                                 const float *vc, int32_t cap, int32_t n_past, int32_t T,
                                 int32_t n_heads, int32_t n_kv, int32_t hd)
{
    const int32_t g = n_heads / n_kv, n_ctx = n_past + T;
    double *p = malloc((size_t)n_ctx * sizeof *p);
    double *o = malloc((size_t)hd * sizeof *o);
    const double scale = 1.0 / sqrt((double)hd);
    for (int32_t t = 0; t < T; t++)
        for (int32_t h = 0; h < n_heads; h++) {
            const float *qr = q + ((size_t)t * n_heads + h) * hd;
            const float *kh = kc + (size_t)(h / g) * cap * hd;
            const float *vh = vc + (size_t)(h / g) * cap * hd;
            const int32_t nj = n_past + t + 1;
            double mx = -INFINITY, sum = 0.0;
            for (int32_t j = 0; j < nj; j++) {
                const float *kr = kh + (size_t)j * hd;
                double dot = 0.0;
                for (int32_t d = 0; d < hd; d++)
                    dot += (double)qr[d] * kr[d];
                p[j] = dot * scale;
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int32_t d = 0; d < hd; d++)
                o[d] = 0.0;
            for (int32_t j = 0; j < nj; j++) {
                const double w = exp(p[j] - mx);
                sum += w;
                const float *vr = vh + (size_t)j * hd;
                for (int32_t d = 0; d < hd; d++)
                    o[d] += w * vr[d];
            }
            for (int32_t d = 0; d < hd; d++)
                ref[((size_t)t * n_heads + h) * hd + d] = o[d] / sum;
        }
    free(p), free(o);
}

/* 0 when a CUDA device is there; else prints the skip line (with the ASan
 * hint where it applies) and returns the skip exit code for main. */
static inline int kvt_cuda_require(void)
{
    int n_dev = 0;
    const cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e == cudaSuccess && n_dev > 0)
        return 0;
    return kvt_skip("no CUDA device (%s)%s", cudaGetErrorString(e),
#if defined(__SANITIZE_ADDRESS__)
                    "; under ASan try ASAN_OPTIONS=protect_shadow_gap=0"
#else
                    ""
#endif
    );
}

#endif
