/*
 * CUDA kernels of the GPU backend (src/engine/cuda/kernels.h) against
 * references computed here on the host in double precision, written
 * independently of the .cu files (plain loops over the documented
 * semantics; bf16 / f16 weights decoded from their bits with ldexp).
 * Inputs are fresh seeded random values, never zeros; outputs are poisoned
 * with NaN before each launch and every element is checked to be written.
 * Error bounds are relative, ||gpu - ref|| / ||ref||, set from fp32
 * arithmetic (unit roundoff u = 6e-8):
 *   exact ops (embed, cache_store, to_bf16 bits, argmax): equality;
 *   add, add_bias (one rounding per element): 1e-7;
 *   rmsnorm, swiglu, rope (a few roundings, expf / cos / sin to ~1 ulp):
 *     1e-6;
 *   matvec (fp32 sums of up to 4864 products split over >= 32 lanes, error
 *     ~ u * sqrt(K / 32) * cancellation): 1e-5;
 *   attention (fp32 dot of <= 256 terms, expf, sums over <= 5000 keys):
 *     1e-5;
 *   rerotate there and back: 1e-5 against the original keys.
 * Needs a CUDA device: skipped without one (or in a build without CUDA).
 * Prints matvec GB/s and decode-attention times as information.
 */
#include "test_util.h"

#ifndef KVL_HAVE_CUDA

int main(void)
{
    return kvt_skip("built without CUDA");
}

#else

#include "engine/cuda/kernels.h"
#include "cuda_test_util.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* helpers                                                                    */
/* ------------------------------------------------------------------------ */

#define CU_BAD(call)                                                         \
    do {                                                                     \
        cudaError_t e_ = (call);                                             \
        CHECK(e_ == cudaErrorInvalidValue, "got %s",                         \
              cudaGetErrorString(e_));                                       \
    } while (0)

/* Device buffer of n floats set to NaN (the poison). */
static float *dev_nan(size_t n)
{
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = NAN;
    float *d = dev_copy(h, n * sizeof *h);
    free(h);
    return d;
}

static void check_close(const char *what, const float *got, const double *ref,
                        size_t n, double bound)
{
    const size_t nan = count_nan(got, n);
    CHECK(nan == 0, "%s: %zu of %zu outputs unwritten (NaN)", what, nan, n);
    const double e = rel_err_d(got, ref, n);
    CHECK(e <= bound, "%s: relative error %.3g > %.1g", what, e, bound);
}

/* ------------------------------------------------------------------------ */
/* matvec                                                                     */
/* ------------------------------------------------------------------------ */

static void test_matvec_case(rng_t *r, kvl_dtype wdt, int32_t T, int32_t M,
                             int32_t K, int with_bias, kvl_dtype bdt,
                             size_t w_offset_elems)
{
    const size_t es = esize(wdt), nw = (size_t)M * K;
    unsigned char *wraw = malloc(nw * es + 16);
    double *wval = malloc(nw * sizeof *wval);
    gen_weights(r, wdt, nw, wraw, wval);
    unsigned char *braw = malloc((size_t)M * 4);
    double *bval = malloc((size_t)M * sizeof *bval);
    gen_weights(r, bdt, (size_t)M, braw, bval);
    float *x = malloc((size_t)T * K * sizeof *x);
    fill_sym(r, x, (size_t)T * K, 1.0f);

    /* W placed w_offset_elems elements into its allocation: rows not
     * 16-byte aligned when the offset is odd. */
    unsigned char *dwbase = dev_alloc(nw * es + 16);
    CU_OK(cudaMemcpy(dwbase + w_offset_elems * es, wraw, nw * es,
                     cudaMemcpyHostToDevice));
    void *db = with_bias ? dev_copy(braw, (size_t)M * esize(bdt)) : NULL;
    float *dx = dev_copy(x, (size_t)T * K * sizeof *x);
    float *dy = dev_nan((size_t)T * M);
    CU_OK(kvl_cu_matvec(dy, dwbase + w_offset_elems * es, wdt, dx, db, bdt, T,
                        M, K, 0));
    float *y = malloc((size_t)T * M * sizeof *y);
    to_host(y, dy, (size_t)T * M * sizeof *y);

    double *ref = malloc((size_t)T * M * sizeof *ref);
    for (int32_t t = 0; t < T; t++)
        for (int32_t m = 0; m < M; m++) {
            double s = with_bias ? bval[m] : 0.0;
            for (int32_t k = 0; k < K; k++)
                s += wval[(size_t)m * K + k] * (double)x[(size_t)t * K + k];
            ref[(size_t)t * M + m] = s;
        }
    char what[128];
    snprintf(what, sizeof what, "matvec %s T=%d M=%d K=%d bias=%d off=%zu",
             kvl_dtype_name(wdt), (int)T, (int)M, (int)K, with_bias,
             w_offset_elems);
    check_close(what, y, ref, (size_t)T * M, 1e-5);

    cudaFree(dwbase);
    cudaFree(db);
    cudaFree(dx);
    cudaFree(dy);
    free(wraw), free(wval), free(braw), free(bval), free(x), free(y), free(ref);
}

static void test_matvec(rng_t *r)
{
    test_matvec_case(r, KVL_DTYPE_BF16, 1, 896, 4864, 1, KVL_DTYPE_BF16, 0);
    test_matvec_case(r, KVL_DTYPE_BF16, 1, 4864, 896, 0, KVL_DTYPE_BF16, 0);
    test_matvec_case(r, KVL_DTYPE_BF16, 8, 300, 1000, 0, KVL_DTYPE_BF16, 0);
    test_matvec_case(r, KVL_DTYPE_F16, 3, 257, 1003, 1, KVL_DTYPE_F32, 0);
    test_matvec_case(r, KVL_DTYPE_F32, 5, 129, 515, 1, KVL_DTYPE_F32, 0);
    test_matvec_case(r, KVL_DTYPE_F32, 4, 130, 512, 0, KVL_DTYPE_F32, 1);
    test_matvec_case(r, KVL_DTYPE_BF16, 2, 64, 512, 1, KVL_DTYPE_F16, 1);
    test_matvec_case(r, KVL_DTYPE_F16, 4, 2048, 2048, 1, KVL_DTYPE_F16, 0);
    test_matvec_case(r, KVL_DTYPE_F32, 7, 4100, 64, 0, KVL_DTYPE_F32, 0);
    test_matvec_case(r, KVL_DTYPE_BF16, 6, 33, 7, 1, KVL_DTYPE_BF16, 0);
    test_matvec_case(r, KVL_DTYPE_F32, 8, 1, 1, 0, KVL_DTYPE_F32, 0);
    for (int32_t T = 1; T <= KVL_CU_MATVEC_MAX_T; T++)
        test_matvec_case(r, KVL_DTYPE_BF16, T, 520, 136, T % 2, KVL_DTYPE_BF16, 0);
}

/* ------------------------------------------------------------------------ */
/* attention                                                                  */
/* ------------------------------------------------------------------------ */

static void test_attention_case(rng_t *r, int32_t n_past, int32_t T,
                                int32_t n_heads, int32_t n_kv, int32_t hd)
{
    const int32_t n_ctx = n_past + T, cap = n_ctx + 5;
    const size_t plane = (size_t)n_kv * cap * hd, nq = (size_t)T * n_heads * hd;
    float *kc, *vc, *q;
    make_attention_inputs(r, n_kv, cap, n_ctx, hd, nq, &kc, &vc, &q);

    float *dk = dev_copy(kc, plane * sizeof *kc), *dv = dev_copy(vc, plane * sizeof *vc);
    float *dq = dev_copy(q, nq * sizeof *q), *dout = dev_nan(nq);
    const size_t ns = kvl_cu_attention_scratch(T, n_heads, n_ctx, hd);
    float *dscratch = ns ? dev_nan(ns) : NULL;
    CU_OK(kvl_cu_attention(dout, dq, dk, dv, cap, n_past, T, n_heads, n_kv, hd,
                           dscratch, ns, 0));
    float *out = malloc(nq * sizeof *out);
    to_host(out, dout, nq * sizeof *out);

    double *ref = malloc(nq * sizeof *ref);
    ref_attention(ref, q, kc, vc, cap, n_past, T, n_heads, n_kv, hd);
    char what[128];
    snprintf(what, sizeof what, "attention n_past=%d T=%d heads=%d/%d hd=%d",
             (int)n_past, (int)T, (int)n_heads, (int)n_kv, (int)hd);
    check_close(what, out, ref, nq, 1e-5);

    cudaFree(dk), cudaFree(dv), cudaFree(dq), cudaFree(dout), cudaFree(dscratch);
    free(kc), free(vc), free(q), free(out), free(ref);
}

static void test_attention(rng_t *r)
{
    test_attention_case(r, 0, 1, 4, 4, 64);      /* n_ctx = 1 */
    test_attention_case(r, 1199, 1, 14, 2, 128); /* GQA 7, several splits */
    test_attention_case(r, 4999, 1, 8, 4, 32);   /* GQA 2, many splits */
    test_attention_case(r, 39999, 1, 2, 1, 32);  /* 256-key chunks */
    test_attention_case(r, 300, 1, 2, 1, 80);    /* hd not a power of two */
    test_attention_case(r, 40, 1, 2, 2, 256);
    test_attention_case(r, 0, 37, 14, 2, 64);    /* prefill from empty */
    test_attention_case(r, 300, 5, 4, 2, 128);   /* prefill after a past */
    test_attention_case(r, 17, 20, 7, 1, 32);
    test_attention_case(r, 10, 3, 2, 2, 256);    /* > 48 KB shared memory */
    test_attention_case(r, 1000, 33, 4, 4, 96);
    test_attention_case(r, 700, 1, 20, 2, 64);   /* GQA 10: two head batches */
    test_attention_case(r, 9, 12, 12, 1, 64);    /* GQA 12 prefill */
}

/* ------------------------------------------------------------------------ */
/* rope and rerotate                                                          */
/* ------------------------------------------------------------------------ */

/* Double-precision rotation of one row with the documented angle: fp32
 * product pos * inv_freq, cos / sin of that in double. */
static void ref_rotate(double *x, int32_t rotary_dim, const float *inv_freq,
                       kvl_rope_layout layout, int32_t pos, int sign)
{
    const int32_t half = rotary_dim / 2;
    for (int32_t i = 0; i < half; i++) {
        const float angle = (float)pos * inv_freq[i];
        const double c = cos((double)angle), s = sign * sin((double)angle);
        const int32_t a = layout == KVL_ROPE_INTERLEAVED ? 2 * i : i;
        const int32_t b = layout == KVL_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
        const double xa = x[a], xb = x[b];
        x[a] = xa * c - xb * s;
        x[b] = xb * c + xa * s;
    }
}

static void test_rope_case(rng_t *r, int32_t T, int32_t n_heads, int32_t hd,
                           int32_t rd, kvl_rope_layout layout, int sign)
{
    const size_t n = (size_t)T * n_heads * hd;
    float *x = malloc(n * sizeof *x), *got = malloc(n * sizeof *got);
    fill_sym(r, x, n, 1.0f);
    int32_t *pos = malloc((size_t)T * sizeof *pos);
    for (int32_t t = 0; t < T; t++)
        pos[t] = t == 0 ? 0 : rng_int(r, 5000);
    float *inv = malloc((size_t)(rd / 2) * sizeof *inv);
    make_inv_freq(inv, rd, 10000.0);

    float *dx = dev_copy(x, n * sizeof *x);
    int32_t *dpos = dev_copy(pos, (size_t)T * sizeof *pos);
    float *dinv = dev_copy(inv, (size_t)(rd / 2) * sizeof *inv);
    CU_OK(kvl_cu_rope(dx, dpos, T, n_heads, hd, rd, dinv, layout, sign, 0));
    to_host(got, dx, n * sizeof *got);

    double *ref = malloc(n * sizeof *ref);
    for (size_t i = 0; i < n; i++)
        ref[i] = x[i];
    int tail_same = 1;
    for (int32_t t = 0; t < T; t++)
        for (int32_t h = 0; h < n_heads; h++) {
            const size_t o = ((size_t)t * n_heads + h) * hd;
            ref_rotate(ref + o, rd, inv, layout, pos[t], sign);
            for (int32_t d = rd; d < hd; d++)
                tail_same &= memcmp(&got[o + d], &x[o + d], sizeof(float)) == 0;
        }
    char what[128];
    snprintf(what, sizeof what, "rope T=%d heads=%d hd=%d rd=%d layout=%d sign=%d",
             (int)T, (int)n_heads, (int)hd, (int)rd, (int)layout, sign);
    check_close(what, got, ref, n, 1e-6);
    CHECK(tail_same, "%s: dims past rotary_dim changed", what);

    cudaFree(dx), cudaFree(dpos), cudaFree(dinv);
    free(x), free(got), free(pos), free(inv), free(ref);
}

static void test_rerotate_case(rng_t *r, int32_t cap, int32_t n_kv, int32_t hd,
                               int32_t rd, int32_t n, kvl_rope_layout layout)
{
    const size_t plane = (size_t)n_kv * cap * hd;
    float *k = malloc(plane * sizeof *k), *got = malloc(plane * sizeof *got);
    fill_sym(r, k, plane, 1.0f);
    int32_t *oldp = malloc((size_t)n * sizeof *oldp), *newp = malloc((size_t)n * sizeof *newp);
    for (int32_t i = 0; i < n; i++) {
        oldp[i] = rng_int(r, 3000);
        newp[i] = i % 5 == 0 ? oldp[i] : rng_int(r, 3000); /* some unchanged */
    }
    float *inv = malloc((size_t)(rd / 2) * sizeof *inv);
    make_inv_freq(inv, rd, 1000000.0);

    float *dk = dev_copy(k, plane * sizeof *k);
    int32_t *dold = dev_copy(oldp, (size_t)n * sizeof *oldp);
    int32_t *dnew = dev_copy(newp, (size_t)n * sizeof *newp);
    float *dinv = dev_copy(inv, (size_t)(rd / 2) * sizeof *inv);
    CU_OK(kvl_cu_rerotate(dk, cap, n_kv, hd, rd, dinv, layout, dold, dnew, n, 0));
    to_host(got, dk, plane * sizeof *got);

    double *ref = malloc(plane * sizeof *ref);
    for (size_t i = 0; i < plane; i++)
        ref[i] = k[i];
    int untouched_ok = 1;
    for (int32_t h = 0; h < n_kv; h++)
        for (int32_t s = 0; s < cap; s++) {
            const size_t o = ((size_t)h * cap + s) * hd;
            if (s < n && oldp[s] != newp[s]) {
                ref_rotate(ref + o, rd, inv, layout, oldp[s], -1);
                ref_rotate(ref + o, rd, inv, layout, newp[s], +1);
            } else {
                untouched_ok &= memcmp(got + o, k + o, (size_t)hd * sizeof *k) == 0;
            }
        }
    char what[128];
    snprintf(what, sizeof what, "rerotate cap=%d kv=%d hd=%d rd=%d n=%d layout=%d",
             (int)cap, (int)n_kv, (int)hd, (int)rd, (int)n, (int)layout);
    check_close(what, got, ref, plane, 1e-6);
    CHECK(untouched_ok, "%s: an unchanged or unused row was modified", what);

    /* And back: the original keys within fp32 rounding. */
    CU_OK(kvl_cu_rerotate(dk, cap, n_kv, hd, rd, dinv, layout, dnew, dold, n, 0));
    to_host(got, dk, plane * sizeof *got);
    const double e = kvt_rel_err(got, k, plane);
    CHECK(e <= 1e-5, "%s: round trip relative error %.3g", what, e);

    cudaFree(dk), cudaFree(dold), cudaFree(dnew), cudaFree(dinv);
    free(k), free(got), free(oldp), free(newp), free(inv), free(ref);
}

static void test_rope(rng_t *r)
{
    test_rope_case(r, 5, 3, 64, 64, KVL_ROPE_ROTATE_HALF, 1);
    test_rope_case(r, 2, 2, 128, 32, KVL_ROPE_INTERLEAVED, -1);
    test_rope_case(r, 7, 14, 32, 16, KVL_ROPE_ROTATE_HALF, -1);
    test_rope_case(r, 9, 4, 64, 48, KVL_ROPE_INTERLEAVED, 1);
    test_rerotate_case(r, 50, 3, 64, 48, 40, KVL_ROPE_ROTATE_HALF);
    test_rerotate_case(r, 33, 2, 128, 128, 33, KVL_ROPE_INTERLEAVED);
    test_rerotate_case(r, 7, 1, 32, 16, 1, KVL_ROPE_INTERLEAVED);
}

/* ------------------------------------------------------------------------ */
/* rmsnorm, embed, element-wise                                               */
/* ------------------------------------------------------------------------ */

static void test_rmsnorm_case(rng_t *r, int32_t rows, int32_t width,
                              kvl_dtype wdt, int in_place)
{
    const size_t n = (size_t)rows * width;
    float *x = malloc(n * sizeof *x), *got = malloc(n * sizeof *got);
    fill_sym(r, x, n, 3.0f);
    unsigned char *wraw = malloc((size_t)width * 4);
    double *wval = malloc((size_t)width * sizeof *wval);
    gen_weights(r, wdt, (size_t)width, wraw, wval);
    const float eps = 1e-6f;

    float *dx = dev_copy(x, n * sizeof *x);
    void *dw = dev_copy(wraw, (size_t)width * esize(wdt));
    float *dout = in_place ? dx : dev_nan(n);
    CU_OK(kvl_cu_rmsnorm(dout, dx, dw, wdt, rows, width, eps, 0));
    to_host(got, dout, n * sizeof *got);

    double *ref = malloc(n * sizeof *ref);
    for (int32_t i = 0; i < rows; i++) {
        double ss = 0.0;
        for (int32_t j = 0; j < width; j++)
            ss += (double)x[(size_t)i * width + j] * x[(size_t)i * width + j];
        const double inv = 1.0 / sqrt(ss / width + (double)eps);
        for (int32_t j = 0; j < width; j++)
            ref[(size_t)i * width + j] = wval[j] * x[(size_t)i * width + j] * inv;
    }
    char what[96];
    snprintf(what, sizeof what, "rmsnorm rows=%d width=%d %s in_place=%d",
             (int)rows, (int)width, kvl_dtype_name(wdt), in_place);
    check_close(what, got, ref, n, 1e-6);

    cudaFree(dx), cudaFree(dw);
    if (!in_place)
        cudaFree(dout);
    free(x), free(got), free(wraw), free(wval), free(ref);
}

static void test_embed_case(rng_t *r, kvl_dtype dt, int32_t vocab, int32_t dim,
                            int32_t T)
{
    const size_t nt = (size_t)vocab * dim, n = (size_t)T * dim;
    unsigned char *raw = malloc(nt * 4);
    double *val = malloc(nt * sizeof *val);
    gen_weights(r, dt, nt, raw, val);
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    for (int32_t t = 0; t < T; t++)
        tok[t] = t == 0 ? 0 : (t == 1 ? vocab - 1 : rng_int(r, vocab));
    void *dtab = dev_copy(raw, nt * esize(dt));
    int32_t *dtok = dev_copy(tok, (size_t)T * sizeof *tok);
    float *dout = dev_nan(n), *got = malloc(n * sizeof *got);
    CU_OK(kvl_cu_embed(dout, dtab, dt, dtok, T, dim, 0));
    to_host(got, dout, n * sizeof *got);
    size_t bad = 0;
    for (int32_t t = 0; t < T; t++)
        for (int32_t d = 0; d < dim; d++)
            bad += (double)got[(size_t)t * dim + d] != val[(size_t)tok[t] * dim + d];
    CHECK(bad == 0, "embed %s: %zu of %zu values differ", kvl_dtype_name(dt), bad, n);
    cudaFree(dtab), cudaFree(dtok), cudaFree(dout);
    free(raw), free(val), free(tok), free(got);
}

/* Independent fp32 -> bf16 round-to-nearest-even: the nearer of the two
 * bf16 neighbours by their decoded values (exponent field 255 read as
 * 2^128, so overflow rounds to infinity), ties to the even mantissa. */
static uint16_t ref_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if (isnan(f))
        return (uint16_t)((u >> 16) | 0x40u);
    const uint32_t sign = u & 0x80000000u, mag = u & 0x7fffffffu;
    if (mag >= 0x7f800000u)
        return (uint16_t)(u >> 16);
    const uint32_t lo = mag >> 16, hi = lo + 1;
    const double v = fabs((double)f);
    double vals[2];
    for (int i = 0; i < 2; i++) {
        const uint32_t b = i ? hi : lo, e = b >> 7, m = b & 0x7f;
        vals[i] = e ? ldexp(1.0 + m / 128.0, (int)e - 127) : ldexp(m / 128.0, -126);
    }
    const double dlo = v - vals[0], dhi = vals[1] - v;
    const uint32_t pick = dlo < dhi ? lo : (dhi < dlo ? hi : ((lo & 1) ? hi : lo));
    return (uint16_t)((sign >> 16) | pick);
}

static void test_elementwise(rng_t *r)
{
    /* to_bf16: random values, exact ties, overflow, inf, NaN, subnormals. */
    enum { NB = 4099 };
    float *x = malloc(NB * sizeof *x);
    fill_sym(r, x, NB, 100.0f);
    const uint32_t specials[] = {0x3f808000u, 0x3f818000u, 0xbf808000u, 0x7f7fffffu,
                                 0x7f800000u, 0xff800000u, 0x7fc00001u, 0xffa00000u,
                                 0x00000001u, 0x00008000u, 0x80018000u, 0x7f7f7fffu};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        memcpy(&x[i], &specials[i], 4);
    float *dx = dev_copy(x, NB * sizeof *x);
    uint16_t *db = dev_alloc(NB * 2), *b = malloc(NB * 2);
    CU_OK(cudaMemset(db, 0xAB, NB * 2));
    CU_OK(kvl_cu_to_bf16(db, dx, NB, 0));
    to_host(b, db, NB * 2);
    size_t bad = 0;
    for (size_t i = 0; i < NB; i++)
        bad += b[i] != ref_bf16(x[i]);
    CHECK(bad == 0, "to_bf16: %zu of %d wrong", bad, NB);
    cudaFree(dx), cudaFree(db), free(x), free(b);

    /* add, swiglu (also in place), add_bias. */
    enum { NA = 100003 };
    float *a = malloc(NA * sizeof *a), *c = malloc(NA * sizeof *c), *got = malloc(NA * sizeof *got);
    double *ref = malloc(NA * sizeof *ref);
    fill_sym(r, a, NA, 8.0f);
    fill_sym(r, c, NA, 2.0f);
    float *da = dev_copy(a, NA * sizeof *a), *dc = dev_copy(c, NA * sizeof *c);
    float *dout = dev_nan(NA);
    CU_OK(kvl_cu_swiglu(dout, da, dc, NA, 0));
    to_host(got, dout, NA * sizeof *got);
    for (size_t i = 0; i < NA; i++)
        ref[i] = (double)a[i] / (1.0 + exp(-(double)a[i])) * c[i];
    check_close("swiglu", got, ref, NA, 1e-6);
    CU_OK(kvl_cu_swiglu(da, da, dc, NA, 0));
    to_host(got, da, NA * sizeof *got);
    check_close("swiglu in place", got, ref, NA, 1e-6);
    /* swiglu_bf16: inputs rounded to bf16; the result is the exact value
     * rounded once to bf16, so within half a bf16 ulp of it (plus the fp32
     * evaluation's ~1e-6 relative error before that rounding). */
    {
        uint16_t *g16 = malloc(NA * 2), *u16 = malloc(NA * 2), *o16 = malloc(NA * 2);
        for (size_t i = 0; i < NA; i++) {
            g16[i] = ref_bf16(a[i]);
            u16[i] = ref_bf16(c[i]);
        }
        uint16_t *dg = dev_copy(g16, NA * 2), *du = dev_copy(u16, NA * 2), *dq = dev_alloc(NA * 2);
        CU_OK(cudaMemset(dq, 0xFF, NA * 2)); /* NaN bits */
        CU_OK(kvl_cu_swiglu_bf16(dq, dg, du, NA, 0));
        to_host(o16, dq, NA * 2);
        size_t off = 0;
        for (size_t i = 0; i < NA; i++) {
            const double g = ldexp((double)(g16[i] & 0x7f) + 128.0, ((g16[i] >> 7) & 0xff) - 134) *
                             ((g16[i] & 0x8000) ? -1 : 1);
            const double u = ldexp((double)(u16[i] & 0x7f) + 128.0, ((u16[i] >> 7) & 0xff) - 134) *
                             ((u16[i] & 0x8000) ? -1 : 1);
            const double v = g / (1.0 + exp(-g)) * u;
            uint32_t bits = (uint32_t)o16[i] << 16;
            float gotf;
            memcpy(&gotf, &bits, 4);
            int ex;
            frexp(v, &ex);
            const double half_ulp = ldexp(1.0, ex - 9);
            off += !(fabs((double)gotf - v) <= half_ulp + 2e-6 * fabs(v) + 1e-37);
        }
        CHECK(off == 0, "swiglu_bf16: %zu of %d outside half a bf16 ulp", off, NA);
        CU_OK(kvl_cu_swiglu_bf16(dg, dg, du, NA, 0)); /* in place */
        uint16_t *o2 = malloc(NA * 2);
        to_host(o2, dg, NA * 2);
        CHECK(memcmp(o2, o16, NA * 2) == 0, "swiglu_bf16 in place gives the same bits");
        free(o2);
        cudaFree(dg), cudaFree(du), cudaFree(dq), free(g16), free(u16), free(o16);
    }
    CU_OK(cudaMemcpy(da, a, NA * sizeof *a, cudaMemcpyHostToDevice));
    CU_OK(kvl_cu_add(da, dc, NA, 0));
    to_host(got, da, NA * sizeof *got);
    for (size_t i = 0; i < NA; i++)
        ref[i] = (double)a[i] + c[i];
    check_close("add", got, ref, NA, 1e-7);

    const kvl_dtype dts[] = {KVL_DTYPE_F32, KVL_DTYPE_F16, KVL_DTYPE_BF16};
    for (int k = 0; k < 3; k++) {
        const int32_t T = 3, M = 1001;
        unsigned char braw[4 * 1001];
        double bval[1001];
        gen_weights(r, dts[k], (size_t)M, braw, bval);
        void *dbias = dev_copy(braw, (size_t)M * esize(dts[k]));
        CU_OK(cudaMemcpy(da, a, (size_t)T * M * sizeof *a, cudaMemcpyHostToDevice));
        CU_OK(kvl_cu_add_bias(da, dbias, dts[k], T, M, 0));
        to_host(got, da, (size_t)T * M * sizeof *got);
        for (int32_t i = 0; i < T * M; i++)
            ref[i] = (double)a[i] + bval[i % M];
        check_close("add_bias", got, ref, (size_t)T * M, 1e-7);
        cudaFree(dbias);
    }
    cudaFree(da), cudaFree(dc), cudaFree(dout);
    free(a), free(c), free(got), free(ref);
}

/* ------------------------------------------------------------------------ */
/* cache_store, argmax                                                        */
/* ------------------------------------------------------------------------ */

static void test_cache_store(rng_t *r)
{
    const int32_t cap = 20, nkv = 3, hd = 16;
    const size_t plane = (size_t)nkv * cap * hd;
    const float sentinel = -12345.0f;
    float *init = malloc(plane * sizeof *init);
    for (size_t i = 0; i < plane; i++)
        init[i] = sentinel;
    float *dkc = dev_copy(init, plane * sizeof *init), *dvc = dev_copy(init, plane * sizeof *init);
    const int32_t steps[2][2] = {{5, 7}, {12, 8}}; /* (n_past, T); ends at cap */
    float *k_all = malloc((size_t)cap * nkv * hd * sizeof *k_all);
    float *v_all = malloc((size_t)cap * nkv * hd * sizeof *v_all);
    for (int s = 0; s < 2; s++) {
        const int32_t n_past = steps[s][0], T = steps[s][1];
        const size_t n = (size_t)T * nkv * hd;
        float *k = k_all + (size_t)n_past * nkv * hd, *v = v_all + (size_t)n_past * nkv * hd;
        fill_sym(r, k, n, 1.0f);
        fill_sym(r, v, n, 1.0f);
        float *dk = dev_copy(k, n * sizeof *k), *dv = dev_copy(v, n * sizeof *v);
        CU_OK(kvl_cu_cache_store(dkc, dvc, cap, dk, dv, n_past, T, nkv, hd, 0));
        CU_OK(cudaDeviceSynchronize());
        cudaFree(dk), cudaFree(dv);
    }
    float *kc = malloc(plane * sizeof *kc), *vc = malloc(plane * sizeof *vc);
    to_host(kc, dkc, plane * sizeof *kc);
    to_host(vc, dvc, plane * sizeof *vc);
    size_t bad = 0;
    for (int32_t h = 0; h < nkv; h++)
        for (int32_t j = 0; j < cap; j++)
            for (int32_t d = 0; d < hd; d++) {
                const size_t c = ((size_t)h * cap + j) * hd + d;
                const int written = j >= 5;
                const size_t src = ((size_t)j * nkv + h) * hd + d;
                bad += kc[c] != (written ? k_all[src] : sentinel);
                bad += vc[c] != (written ? v_all[src] : sentinel);
            }
    CHECK(bad == 0, "cache_store: %zu of %zu cache elements wrong", bad, 2 * plane);
    cudaFree(dkc), cudaFree(dvc);
    free(init), free(k_all), free(v_all), free(kc), free(vc);
}

static void test_argmax_case(rng_t *r, int32_t rows, int32_t vocab)
{
    const size_t n = (size_t)rows * vocab;
    float *l = malloc(n * sizeof *l);
    fill_sym(r, l, n, 10.0f);
    int32_t *expect = malloc((size_t)rows * sizeof *expect);
    for (int32_t i = 0; i < rows; i++) {
        float *row = l + (size_t)i * vocab;
        switch (i % 4) {
        case 0: /* tie between three indices: the lowest wins */
            row[vocab - 1] = 50.0f;
            row[vocab / 2] = 50.0f;
            row[vocab / 3] = 50.0f;
            break;
        case 1: /* the last index alone */
            row[vocab - 1] = 60.0f;
            break;
        case 2: /* all equal */
            for (int32_t j = 0; j < vocab; j++)
                row[j] = 1.5f;
            break;
        default:
            break;
        }
        int32_t best = 0;
        for (int32_t j = 1; j < vocab; j++)
            if (row[j] > row[best])
                best = j;
        expect[i] = best;
    }
    float *dl = dev_copy(l, n * sizeof *l);
    int32_t *dout = dev_alloc((size_t)rows * 4), *got = malloc((size_t)rows * 4);
    CU_OK(cudaMemset(dout, 0xff, (size_t)rows * 4));
    CU_OK(kvl_cu_argmax(dout, dl, rows, vocab, 0));
    to_host(got, dout, (size_t)rows * 4);
    for (int32_t i = 0; i < rows; i++)
        CHECK(got[i] == expect[i], "argmax vocab %d row %d: got %d, expected %d",
              (int)vocab, (int)i, (int)got[i], (int)expect[i]);
    cudaFree(dl), cudaFree(dout);
    free(l), free(expect), free(got);
}

/* ------------------------------------------------------------------------ */
/* bad arguments: cudaErrorInvalidValue, nothing launched                     */
/* ------------------------------------------------------------------------ */

static void test_bad_args(void)
{
    float *f = dev_nan(4096);
    int32_t *ip = dev_alloc(64);
    const kvl_dtype I32 = KVL_DTYPE_I32, BF = KVL_DTYPE_BF16;
    CU_BAD(kvl_cu_embed(NULL, f, BF, ip, 1, 4, 0));
    CU_BAD(kvl_cu_embed(f, f, BF, NULL, 1, 4, 0));
    CU_BAD(kvl_cu_embed(f, f, I32, ip, 1, 4, 0));
    CU_BAD(kvl_cu_embed(f, f, BF, ip, 0, 4, 0));
    CU_BAD(kvl_cu_rmsnorm(f, f, NULL, BF, 1, 4, 1e-6f, 0));
    CU_BAD(kvl_cu_rmsnorm(f, f, f, KVL_DTYPE_I64, 1, 4, 1e-6f, 0));
    CU_BAD(kvl_cu_rmsnorm(f, f, f, BF, 1, 0, 1e-6f, 0));
    CU_BAD(kvl_cu_rmsnorm(f, f, f, BF, 1, 4, NAN, 0));
    CU_BAD(kvl_cu_rope(f, ip, 1, 1, 64, 63, f, KVL_ROPE_ROTATE_HALF, 1, 0));
    CU_BAD(kvl_cu_rope(f, ip, 1, 1, 64, 66, f, KVL_ROPE_ROTATE_HALF, 1, 0));
    CU_BAD(kvl_cu_rope(f, ip, 1, 1, 64, 64, f, (kvl_rope_layout)7, 1, 0));
    CU_BAD(kvl_cu_rope(f, ip, 1, 1, 64, 64, f, KVL_ROPE_ROTATE_HALF, 0, 0));
    CU_BAD(kvl_cu_rope(f, NULL, 1, 1, 64, 64, f, KVL_ROPE_ROTATE_HALF, 1, 0));
    CU_BAD(kvl_cu_matvec(f, f, BF, f, NULL, BF, 0, 4, 4, 0));
    CU_BAD(kvl_cu_matvec(f, f, BF, f, NULL, BF, KVL_CU_MATVEC_MAX_T + 1, 4, 4, 0));
    CU_BAD(kvl_cu_matvec(f, NULL, BF, f, NULL, BF, 1, 4, 4, 0));
    CU_BAD(kvl_cu_matvec(f, f, I32, f, NULL, BF, 1, 4, 4, 0));
    CU_BAD(kvl_cu_matvec(f, f, BF, f, f, I32, 1, 4, 4, 0));
    CU_BAD(kvl_cu_matvec(f, f, BF, f, NULL, BF, 1, 4, 0, 0));
    CU_BAD(kvl_cu_matvec(f, f, BF, f, NULL, BF, 1, -1, 4, 0));
    CU_BAD(kvl_cu_to_bf16((uint16_t *)ip, f, 0, 0));
    CU_BAD(kvl_cu_to_bf16(NULL, f, 4, 0));
    CU_BAD(kvl_cu_add_bias(f, f, I32, 1, 4, 0));
    CU_BAD(kvl_cu_add_bias(f, NULL, BF, 1, 4, 0));
    CU_BAD(kvl_cu_add(f, NULL, 4, 0));
    CU_BAD(kvl_cu_add(f, f, -1, 0));
    CU_BAD(kvl_cu_swiglu(f, f, NULL, 4, 0));
    CU_BAD(kvl_cu_swiglu(f, f, f, 0, 0));
    CU_BAD(kvl_cu_swiglu_bf16((uint16_t *)ip, (uint16_t *)ip, NULL, 4, 0));
    CU_BAD(kvl_cu_swiglu_bf16((uint16_t *)ip, (uint16_t *)ip, (uint16_t *)ip, 0, 0));
    CU_BAD(kvl_cu_cache_store(f, f, 8, f, f, 5, 4, 1, 4, 0)); /* past cap */
    CU_BAD(kvl_cu_cache_store(f, f, 8, f, f, -1, 1, 1, 4, 0));
    CU_BAD(kvl_cu_cache_store(f, NULL, 8, f, f, 0, 1, 1, 4, 0));
    const size_t ns = kvl_cu_attention_scratch(1, 2, 10, 64);
    CHECK(ns > 0, "decode scratch size is 0");
    CHECK(kvl_cu_attention_scratch(1, 2, 0, 64) == 0, "scratch for n_ctx 0");
    CU_BAD(kvl_cu_attention(f, f, f, f, 16, 9, 1, 2, 2, 257, f, 4096, 0));
    CU_BAD(kvl_cu_attention(f, f, f, f, 16, 9, 1, 3, 2, 8, f, 4096, 0));
    CU_BAD(kvl_cu_attention(f, f, f, f, 16, 9, 1, 2, 2, 64, f, ns - 1, 0));
    CU_BAD(kvl_cu_attention(f, f, f, f, 16, 9, 1, 2, 2, 64, NULL, ns, 0));
    CU_BAD(kvl_cu_attention(f, f, f, f, 4000000, 3999999, 1, 2, 2, 64, f,
                            SIZE_MAX, 0)); /* beyond the decode split limit */
    CU_BAD(kvl_cu_attention(f, f, f, f, 16, 12, 5, 2, 2, 8, f, 4096, 0));
    CU_BAD(kvl_cu_attention(f, NULL, f, f, 16, 0, 2, 2, 2, 8, NULL, 0, 0));
    CU_BAD(kvl_cu_attention(f, f, f, f, 16, -1, 2, 2, 2, 8, NULL, 0, 0));
    CU_BAD(kvl_cu_rerotate(f, 4, 1, 8, 8, f, KVL_ROPE_ROTATE_HALF, ip, ip, 5, 0));
    CU_BAD(kvl_cu_rerotate(f, 4, 1, 8, 8, f, KVL_ROPE_ROTATE_HALF, NULL, ip, 2, 0));
    CU_BAD(kvl_cu_rerotate(f, 4, 1, 8, 9, f, KVL_ROPE_ROTATE_HALF, ip, ip, 2, 0));
    CU_BAD(kvl_cu_argmax(ip, f, 1, 0, 0));
    CU_BAD(kvl_cu_argmax(NULL, f, 1, 4, 0));
    /* Nothing was launched, so no error is pending. */
    CU_OK(cudaDeviceSynchronize());
    CU_OK(cudaGetLastError());
    cudaFree(f), cudaFree(ip);
}

/* ------------------------------------------------------------------------ */
/* timing (information only)                                                  */
/* ------------------------------------------------------------------------ */

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median over 50 samples, each 20 back-to-back launches (as in a decode
 * step: no host gap between kernels) divided by 20, after 100 warm-up
 * launches that also bring the clocks up; the launches cycle through
 * `copies` input sets so that L2 (50-60 MB) does not hold them. */
typedef cudaError_t (*launch_fn)(void *ctx, int copy);

static float median_ms(launch_fn fn, void *ctx, int copies)
{
    enum { WARM = 100, REPS = 50, BATCH = 20 };
    float ms[REPS];
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int i = 0; i < WARM; i++)
        CU_OK(fn(ctx, i % copies));
    int c = 0;
    for (int i = 0; i < REPS; i++) {
        cudaEventRecord(e0, 0);
        for (int b = 0; b < BATCH; b++)
            fn(ctx, c++ % copies);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms[i], e0, e1);
        ms[i] /= BATCH;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    qsort(ms, REPS, sizeof ms[0], cmp_float);
    return ms[REPS / 2];
}

enum { COPIES = 12 };

typedef struct {
    void *w[COPIES];
    float *x, *y;
    int32_t M, K;
} mv_ctx;

static cudaError_t mv_launch(void *ctx, int c)
{
    mv_ctx *m = ctx;
    return kvl_cu_matvec(m->y, m->w[c], KVL_DTYPE_BF16, m->x, NULL, KVL_DTYPE_BF16,
                         1, m->M, m->K, 0);
}

typedef struct {
    float *k[COPIES], *v[COPIES];
    float *q, *out, *scratch;
    size_t ns;
    int32_t n_ctx, n_heads, n_kv, hd;
} at_ctx;

static cudaError_t at_launch(void *ctx, int c)
{
    at_ctx *a = ctx;
    return kvl_cu_attention(a->out, a->q, a->k[c], a->v[c], a->n_ctx, a->n_ctx - 1, 1,
                            a->n_heads, a->n_kv, a->hd, a->scratch, a->ns, 0);
}

static void time_matvec(rng_t *r, int32_t M, int32_t K)
{
    mv_ctx m = {.M = M, .K = K};
    const size_t nw = (size_t)M * K;
    uint16_t *w = malloc(nw * 2);
    double *val = malloc(nw * sizeof *val);
    gen_weights(r, KVL_DTYPE_BF16, nw, w, val);
    for (int c = 0; c < COPIES; c++)
        m.w[c] = dev_copy(w, nw * 2);
    float *x = malloc((size_t)K * sizeof *x);
    fill_sym(r, x, (size_t)K, 1.0f);
    m.x = dev_copy(x, (size_t)K * sizeof *x);
    m.y = dev_nan((size_t)M);
    const float ms = median_ms(mv_launch, &m, COPIES);
    const double bytes = (double)nw * 2 + 4.0 * K + 4.0 * M;
    printf("timing: matvec BF16 %dx%d T=1: %.2f us, %.0f GB/s\n", (int)M, (int)K,
           ms * 1e3, bytes / (ms * 1e-3) / 1e9);
    for (int c = 0; c < COPIES; c++)
        cudaFree(m.w[c]);
    cudaFree(m.x), cudaFree(m.y);
    free(w), free(val), free(x);
}

static void time_attention(rng_t *r, int32_t n_ctx)
{
    at_ctx a = {.n_ctx = n_ctx, .n_heads = 14, .n_kv = 2, .hd = 64};
    const size_t plane = (size_t)a.n_kv * n_ctx * a.hd;
    float *h = malloc(plane * sizeof *h);
    fill_sym(r, h, plane, 1.0f);
    for (int c = 0; c < COPIES; c++) {
        a.k[c] = dev_copy(h, plane * sizeof *h);
        a.v[c] = dev_copy(h, plane * sizeof *h);
    }
    a.q = dev_copy(h, (size_t)a.n_heads * a.hd * sizeof *h);
    a.out = dev_nan((size_t)a.n_heads * a.hd);
    a.ns = kvl_cu_attention_scratch(1, a.n_heads, n_ctx, a.hd);
    a.scratch = dev_nan(a.ns);
    const float ms = median_ms(at_launch, &a, COPIES);
    const double bytes = 2.0 * plane * 4;
    printf("timing: decode attention n_ctx=%d (14 heads / 2 kv, hd 64): %.2f us, "
           "%.0f GB/s of K+V read once\n",
           (int)n_ctx, ms * 1e3, bytes / (ms * 1e-3) / 1e9);
    for (int c = 0; c < COPIES; c++)
        cudaFree(a.k[c]), cudaFree(a.v[c]);
    cudaFree(a.q), cudaFree(a.out), cudaFree(a.scratch);
    free(h);
}

int main(void)
{
    const int skip = kvt_cuda_require();
    if (skip)
        return skip;
    rng_t r = {0x5eed2026ull};
    test_bad_args();
    test_elementwise(&r);
    test_embed_case(&r, KVL_DTYPE_BF16, 100, 67, 9);
    test_embed_case(&r, KVL_DTYPE_F16, 50, 896, 3);
    test_embed_case(&r, KVL_DTYPE_F32, 7, 5, 1);
    test_rmsnorm_case(&r, 3, 896, KVL_DTYPE_BF16, 0);
    test_rmsnorm_case(&r, 70, 64, KVL_DTYPE_F32, 1);
    test_rmsnorm_case(&r, 1, 4999, KVL_DTYPE_F16, 0);
    test_rmsnorm_case(&r, 2, 1, KVL_DTYPE_BF16, 0);
    test_cache_store(&r);
    test_argmax_case(&r, 8, 1000);
    test_argmax_case(&r, 4, 151936);
    test_argmax_case(&r, 3, 1);
    test_rope(&r);
    test_matvec(&r);
    test_attention(&r);
    CU_OK(cudaDeviceSynchronize());
    CU_OK(cudaGetLastError());
    if (getenv("KVL_TEST_NO_TIMING")) /* e.g. under compute-sanitizer */
        return kvt_finish();
    time_matvec(&r, 4864, 896);
    time_matvec(&r, 896, 4864);
    time_attention(&r, 512);
    time_attention(&r, 4096);
    return kvt_finish();
}

#endif
