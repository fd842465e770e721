#include "engine/cpu/matmul.h"

#include "core/dtype.h"
#include "core/error.h"

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define KVL_HAVE_AVX2 1
#endif

/* Products with at most this many rows of x go through the matrix-vector
 * kernels: weight-bandwidth bound, and BLAS gains nothing there. */
#define KVL_MATVEC_MAX_T 1
/* Weight tile converted per sgemm call, in floats (fits in L2). */
#define KVL_TILE_FLOATS (64 * 1024)

#ifdef KVL_HAVE_AVX2
static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}

static inline __m256 load8_bf16(const uint16_t *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
    return _mm256_castsi256_ps(w);
}

static inline __m256 load8_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}
#endif

static float dot_f32(const float *w, const float *x, int64_t n)
{
    int64_t i = 0;
    float sum = 0.0f;
#ifdef KVL_HAVE_AVX2
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    sum = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
#endif
    for (; i < n; i++)
        sum += w[i] * x[i];
    return sum;
}

static float dot_bf16(const uint16_t *w, const float *x, int64_t n)
{
    int64_t i = 0;
    float sum = 0.0f;
#ifdef KVL_HAVE_AVX2
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load8_bf16(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(load8_bf16(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load8_bf16(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load8_bf16(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(load8_bf16(w + i), _mm256_loadu_ps(x + i), a0);
    sum = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
#endif
    for (; i < n; i++)
        sum += kvl_bf16_to_f32(w[i]) * x[i];
    return sum;
}

static float dot_f16(const uint16_t *w, const float *x, int64_t n)
{
    int64_t i = 0;
    float sum = 0.0f;
#ifdef KVL_HAVE_AVX2
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load8_f16(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(load8_f16(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load8_f16(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load8_f16(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(load8_f16(w + i), _mm256_loadu_ps(x + i), a0);
    sum = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
#endif
    for (; i < n; i++)
        sum += kvl_f16_to_f32(w[i]) * x[i];
    return sum;
}

float kvl_dot_row(const kvl_weight *w, int64_t row, const float *x)
{
    const int64_t K = w->cols;
    switch (w->dtype) {
    case KVL_DTYPE_F32:
        return dot_f32((const float *)w->data + row * K, x, K);
    case KVL_DTYPE_BF16:
        return dot_bf16((const uint16_t *)w->data + row * K, x, K);
    case KVL_DTYPE_F16:
        return dot_f16((const uint16_t *)w->data + row * K, x, K);
    default:
        return 0.0f;
    }
}

static void matvec(float *out, const float *x, const kvl_weight *w,
                   int n_threads)
{
    const int64_t N = w->rows;
#pragma omp parallel for schedule(static) num_threads(n_threads)
    for (int64_t i = 0; i < N; i++)
        out[i] = kvl_dot_row(w, i, x);
}

static kvl_status scratch_reserve(kvl_matmul_scratch *s, size_t n,
                                  kvl_error *err)
{
    if (s->cap >= n)
        return KVL_OK;
    float *p = realloc(s->buf, n * sizeof(float));
    if (!p)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "out of memory for a %zu-float weight tile", n);
    s->buf = p;
    s->cap = n;
    return KVL_OK;
}

/* sgemm over tiles of W converted to fp32; F32 weights go straight in. */
static kvl_status gemm(float *out, const float *x, int T, const kvl_weight *w,
                       kvl_matmul_scratch *scratch, int n_threads,
                       kvl_error *err)
{
    const int64_t N = w->rows, K = w->cols;
    if (w->dtype == KVL_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)N, (int)K,
                    1.0f, x, (int)K, (const float *)w->data, (int)K, 0.0f, out,
                    (int)N);
        return KVL_OK;
    }
    int64_t tile_rows = KVL_TILE_FLOATS / K;
    if (tile_rows < 16)
        tile_rows = 16;
    if (tile_rows > N)
        tile_rows = N;
    kvl_status st = scratch_reserve(scratch, (size_t)(tile_rows * K), err);
    if (st != KVL_OK)
        return st;
    const size_t esz = kvl_dtype_size(w->dtype);
    for (int64_t r0 = 0; r0 < N; r0 += tile_rows) {
        int64_t rows = N - r0 < tile_rows ? N - r0 : tile_rows;
        const unsigned char *src = (const unsigned char *)w->data + (size_t)(r0 * K) * esz;
#pragma omp parallel for schedule(static) num_threads(n_threads)
        for (int64_t r = 0; r < rows; r++)
            kvl_convert_to_f32(scratch->buf + r * K, src + (size_t)(r * K) * esz,
                               w->dtype, (size_t)K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)rows,
                    (int)K, 1.0f, x, (int)K, scratch->buf, (int)K, 0.0f,
                    out + r0, (int)N);
    }
    return KVL_OK;
}

/* out[t][i] += bias[i]; the bias is converted once into the scratch
 * (free again once the product is done), so no allocation per call. */
static kvl_status add_bias(float *out, int T, const kvl_weight *bias,
                           kvl_matmul_scratch *scratch, kvl_error *err)
{
    const int64_t N = bias->cols;
    const float *b = bias->data;
    if (bias->dtype != KVL_DTYPE_F32) {
        kvl_status st = scratch_reserve(scratch, (size_t)N, err);
        if (st != KVL_OK)
            return st;
        kvl_convert_to_f32(scratch->buf, bias->data, bias->dtype, (size_t)N);
        b = scratch->buf;
    }
    for (int t = 0; t < T; t++)
        for (int64_t i = 0; i < N; i++)
            out[(int64_t)t * N + i] += b[i];
    return KVL_OK;
}

kvl_status kvl_matmul(float *out, const float *x, int T, const kvl_weight *w,
                      const kvl_weight *bias, kvl_matmul_scratch *scratch,
                      int n_threads, kvl_error *err)
{
    if (T <= KVL_MATVEC_MAX_T) {
        for (int t = 0; t < T; t++)
            matvec(out + (int64_t)t * w->rows, x + (int64_t)t * w->cols, w,
                   n_threads);
    } else {
        kvl_status st = gemm(out, x, T, w, scratch, n_threads, err);
        if (st != KVL_OK)
            return st;
    }
    if (bias && bias->data)
        return add_bias(out, T, bias, scratch, err);
    return KVL_OK;
}

void kvl_matmul_scratch_free(kvl_matmul_scratch *s)
{
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}
