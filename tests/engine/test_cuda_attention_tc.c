/*
 * kvl_cu_attention_prefill_tc (src/engine/cuda/attention_tc.cu) against a
 * double-precision host reference written here (plain loops over the
 * documented semantics: causal GQA softmax(q . k / sqrt(hd)) v over keys
 * 0 .. n_past + t), computed from the fp32 inputs, not from rounded ones.
 * Inputs are fresh seeded random values (q uniform in [-2, 2], k and v in
 * [-1, 1]), never zeros; out is poisoned with NaN before each launch and
 * every element is checked to be written; cache rows past n_past + T (up
 * to cap) hold NaN and must not leak into the result.
 *
 * Error bound, relative, ||gpu - ref|| / ||ref|| over all outputs of a case.
 * The kernel rounds q, k, v and the probabilities p to the operand type
 * (unit roundoff u = 2^-9 for bf16, 2^-12 for f16; fp32 accumulation and
 * softmax, whose errors ~1e-6 are negligible here).  With rounding errors
 * |e| <= u, independent between elements (rms about u / sqrt(3)):
 *   - v: o = sum_j p_j v_j (1 + e_j): relative error <= u, rms ~0.6 u;
 *   - p: the same, <= u, rms ~0.6 u (the row sum l uses unrounded p);
 *   - q, k: the scaled score s_j = q . k_j / sqrt(hd) moves by
 *     d_j = sum_d q_d k_d (e_q + e_k) / sqrt(hd), rms u sqrt(2/3 E[q^2 k^2])
 *     = u sqrt(2/3 * 4/3 * 1/3) ~ 0.55 u for these inputs (independent of
 *     hd); o moves by sum_j p_j d_j (v_j - o), of the same relative size as
 *     o itself times 0.55 u (|o| and the perturbation both scale as
 *     sqrt(sum p_j^2) |v|).
 * Added in quadrature these give ~1 u rms; the bound is 4 u (bf16 7.8e-3,
 * f16 9.8e-4), a factor 4 over the expected error (measured on an H200:
 * 1.0 - 1.3 u for both types), far under an error
 * from a wrong index or mask (O(1)).  The score error grows with the
 * score size (|q| |k| / sqrt(hd)); the bound is for scores of O(1) as
 * here.  Larger logits lose proportionally more to bf16 operands, as in
 * any bf16 attention (transformers' too).  The agreement with the fp32 kvl_cu_attention
 * (itself within 1e-5 of the reference, test_cuda_kernels.c) is checked
 * with the same bound and printed.
 *
 * Needs a CUDA device: skipped without one (or in a build without CUDA).
 * Prints, unless KVL_TEST_NO_TIMING is set, ms per layer and TFLOP/s of
 * the tensor-core kernel beside kvl_cu_attention for four model shapes.
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

#define CU_ERR(want, call)                                                   \
    do {                                                                     \
        cudaError_t e_ = (call);                                             \
        CHECK(e_ == (want), "%s: got %s", #call, cudaGetErrorString(e_));    \
    } while (0)

static void dev_poison(float *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = NAN;
    CU_OK(cudaMemcpy(d, h, n * sizeof *h, cudaMemcpyHostToDevice));
    free(h);
}

static const char *op_name(kvl_dtype op)
{
    return op == KVL_DTYPE_BF16 ? "bf16" : "f16";
}

/* 4 u: see the header comment. */
static double op_bound(kvl_dtype op)
{
    return op == KVL_DTYPE_BF16 ? 4.0 * 0x1.0p-9 : 4.0 * 0x1.0p-12;
}

/* ------------------------------------------------------------------------ */
/* accuracy                                                                   */
/* ------------------------------------------------------------------------ */

static void test_case(rng_t *r, int32_t n_past, int32_t T, int32_t n_heads, int32_t n_kv,
                      int32_t hd, int print)
{
    const int32_t n_ctx = n_past + T, cap = n_ctx + 3 + (int32_t)(rng_next(r) % 70);
    const size_t plane = (size_t)n_kv * cap * hd, nq = (size_t)T * n_heads * hd;
    float *kc, *vc, *q;
    make_attention_inputs(r, n_kv, cap, n_ctx, hd, nq, &kc, &vc, &q);
    double *ref = malloc(nq * sizeof *ref);
    ref_attention(ref, q, kc, vc, cap, n_past, T, n_heads, n_kv, hd);

    float *dk = dev_copy(kc, plane * sizeof *kc), *dv = dev_copy(vc, plane * sizeof *vc);
    float *dq = dev_copy(q, nq * sizeof *q), *dout = dev_alloc(nq * sizeof(float));
    float *out = malloc(nq * sizeof *out), *out32 = malloc(nq * sizeof *out32);
    double *ref32 = malloc(nq * sizeof *ref32);

    /* The fp32 kernel on the same inputs (T = 1 takes its decode path,
     * which needs scratch). */
    const size_t ns = kvl_cu_attention_scratch(T, n_heads, n_ctx, hd);
    float *dscratch = ns ? dev_alloc(ns * sizeof(float)) : NULL;
    dev_poison(dout, nq);
    CU_OK(kvl_cu_attention(dout, dq, dk, dv, cap, n_past, T, n_heads, n_kv, hd, dscratch,
                           ns, 0));
    to_host(out32, dout, nq * sizeof *out32);
    for (size_t i = 0; i < nq; i++)
        ref32[i] = out32[i];

    char what[160];
    const kvl_dtype ops[2] = {KVL_DTYPE_BF16, KVL_DTYPE_F16};
    for (int k = 0; k < 2; k++) {
        const kvl_dtype op = ops[k];
        snprintf(what, sizeof what, "tc %s n_past=%d T=%d heads=%d/%d hd=%d cap=%d",
                 op_name(op), (int)n_past, (int)T, (int)n_heads, (int)n_kv, (int)hd,
                 (int)cap);
        dev_poison(dout, nq);
        CU_OK(kvl_cu_attention_prefill_tc(dout, dq, dk, dv, cap, n_past, T, n_heads, n_kv,
                                          hd, op, 0));
        to_host(out, dout, nq * sizeof *out);
        const size_t nan = count_nan(out, nq);
        CHECK(nan == 0, "%s: %zu of %zu outputs unwritten (NaN)", what, nan, nq);
        const double e = rel_err_d(out, ref, nq), e32 = rel_err_d(out, ref32, nq);
        CHECK(e <= op_bound(op), "%s: relative error %.3g > %.3g", what, e, op_bound(op));
        CHECK(e32 <= op_bound(op), "%s: vs kvl_cu_attention %.3g > %.3g", what, e32,
              op_bound(op));
        if (print)
            printf("info: %s: rel err %.3g vs double, %.3g vs kvl_cu_attention "
                   "(bound %.3g)\n",
                   what, e, e32, op_bound(op));
    }
    cudaFree(dk), cudaFree(dv), cudaFree(dq), cudaFree(dout), cudaFree(dscratch);
    free(kc), free(vc), free(q), free(ref), free(out), free(out32), free(ref32);
}

static void test_accuracy(rng_t *r)
{
    /* n_past, T, n_heads, n_kv_heads, head_dim, print */
    test_case(r, 0, 2, 2, 1, 64, 0);      /* GQA 2, smallest prefill */
    test_case(r, 5, 2, 4, 4, 128, 0);     /* GQA 1 */
    test_case(r, 0, 1, 3, 1, 64, 0);      /* T = 1 also works */
    test_case(r, 0, 17, 7, 1, 64, 1);     /* GQA 7, T not a tile multiple */
    test_case(r, 33, 17, 8, 1, 128, 1);   /* GQA 8 after a past */
    test_case(r, 0, 64, 14, 2, 64, 0);    /* one full query tile */
    test_case(r, 100, 64, 4, 2, 128, 0);
    test_case(r, 0, 130, 16, 8, 128, 1);  /* Qwen3 heads, partial last tile */
    test_case(r, 77, 130, 8, 1, 64, 0);
    test_case(r, 0, 512, 14, 2, 64, 1);   /* Qwen2.5 heads */
    test_case(r, 1000, 512, 4, 1, 128, 1);
    test_case(r, 0, 1000, 8, 8, 64, 1);
    test_case(r, 300, 1000, 14, 2, 128, 1);
    test_case(r, 63, 1000, 32, 4, 64, 0); /* TinyLlama heads, odd n_past */
}

static void test_bad_args(void)
{
    float *f = dev_alloc(64 * 64 * 4 * sizeof(float));
    const kvl_dtype B = KVL_DTYPE_BF16;
    const cudaError_t IV = cudaErrorInvalidValue, NS = cudaErrorNotSupported;
    CU_ERR(IV, kvl_cu_attention_prefill_tc(NULL, f, f, f, 16, 0, 4, 2, 1, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, NULL, f, f, 16, 0, 4, 2, 1, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, NULL, f, 16, 0, 4, 2, 1, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, NULL, 16, 0, 4, 2, 1, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 0, 2, 1, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, -3, 2, 1, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 16, -1, 4, 2, 1, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 13, 4, 2, 1, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 0, 0, 4, 2, 1, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 4, 3, 2, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 4, 0, 1, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 4, 2, 0, 64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 4, 2, 1, 0, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 4, 2, 1, -64, B, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 4, 2, 1, 64, KVL_DTYPE_F32, 0));
    CU_ERR(IV, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 4, 2, 1, 64, (kvl_dtype)77, 0));
    CU_ERR(NS, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 4, 2, 1, 32, B, 0));
    CU_ERR(NS, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 4, 2, 1, 80, B, 0));
    CU_ERR(NS, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 4, 2, 1, 96, B, 0));
    CU_ERR(NS, kvl_cu_attention_prefill_tc(f, f, f, f, 16, 0, 4, 2, 1, 256, B, 0));
    /* cache not 16-byte aligned: cp.async needs it, the caller falls back */
    CU_ERR(NS, kvl_cu_attention_prefill_tc(f, f, f + 1, f, 16, 0, 4, 2, 1, 64, B, 0));
    CU_ERR(NS, kvl_cu_attention_prefill_tc(f, f, f, f + 2, 16, 0, 4, 2, 1, 64, B, 0));
    CU_OK(cudaDeviceSynchronize());
    CU_OK(cudaGetLastError()); /* nothing was launched with bad arguments */
    cudaFree(f);
}

/* ------------------------------------------------------------------------ */
/* timing (information only)                                                  */
/* ------------------------------------------------------------------------ */

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef struct {
    float *out, *q, *k, *v;
    int32_t T, n_heads, n_kv, hd;
    kvl_dtype op; /* KVL_DTYPE_F32: kvl_cu_attention */
} tm_ctx;

static cudaError_t tm_launch(const tm_ctx *c)
{
    if (c->op == KVL_DTYPE_F32)
        return kvl_cu_attention(c->out, c->q, c->k, c->v, c->T, 0, c->T, c->n_heads, c->n_kv,
                                c->hd, NULL, 0, 0);
    return kvl_cu_attention_prefill_tc(c->out, c->q, c->k, c->v, c->T, 0, c->T, c->n_heads,
                                       c->n_kv, c->hd, c->op, 0);
}

/* Median over `reps` samples of `batch` back-to-back launches (per launch),
 * after `warm` launches.  K / V of one layer (<= 16 MB here) stay in L2
 * across launches, as they do in a real prefill right after the cache
 * store; the kernels are compute-bound at these sizes anyway. */
static float median_ms(const tm_ctx *c, int warm, int reps, int batch)
{
    float ms[64];
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int i = 0; i < warm; i++)
        CU_OK(tm_launch(c));
    for (int i = 0; i < reps; i++) {
        cudaEventRecord(e0, 0);
        for (int b = 0; b < batch; b++)
            tm_launch(c);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms[i], e0, e1);
        ms[i] /= batch;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    qsort(ms, (size_t)reps, sizeof ms[0], cmp_float);
    return ms[reps / 2];
}

static void time_shape(rng_t *r, const char *name, int32_t T, int32_t n_heads, int32_t n_kv,
                       int32_t hd)
{
    tm_ctx c = {.T = T, .n_heads = n_heads, .n_kv = n_kv, .hd = hd};
    const size_t plane = (size_t)n_kv * T * hd, nq = (size_t)T * n_heads * hd;
    float *h = calloc(plane > nq ? plane : nq, sizeof *h);
    fill_sym(r, h, plane, 1.0f);
    c.k = dev_copy(h, plane * sizeof *h);
    fill_sym(r, h, plane, 1.0f);
    c.v = dev_copy(h, plane * sizeof *h);
    fill_sym(r, h, nq, 2.0f);
    c.q = dev_copy(h, nq * sizeof *h);
    c.out = dev_alloc(nq * sizeof(float));
    /* Causal FLOPs: 2 per multiply-add, two products (Q K^T, P V) over
     * the T (T + 1) / 2 visible (query, key) pairs of each head. */
    const double flop = 4.0 * hd * n_heads * ((double)T * (T + 1) / 2);
    float ms[3];
    const kvl_dtype ops[3] = {KVL_DTYPE_BF16, KVL_DTYPE_F16, KVL_DTYPE_F32};
    for (int k = 0; k < 3; k++) {
        c.op = ops[k];
        ms[k] = c.op == KVL_DTYPE_F32 ? median_ms(&c, 2, 5, 1) : median_ms(&c, 20, 21, 10);
    }
    printf("timing: %-13s T=%4d heads %2d/%d hd %3d: tc bf16 %.3f ms (%.0f TFLOP/s), "
           "f16 %.3f ms (%.0f), kvl_cu_attention %.3f ms (%.2f) -> %.1fx\n",
           name, (int)T, (int)n_heads, (int)n_kv, (int)hd, ms[0], flop / (ms[0] * 1e9),
           ms[1], flop / (ms[1] * 1e9), ms[2], flop / (ms[2] * 1e9), ms[2] / ms[0]);
    cudaFree(c.k), cudaFree(c.v), cudaFree(c.q), cudaFree(c.out);
    free(h);
}

int main(void)
{
    const int skip = kvt_cuda_require();
    if (skip)
        return skip;
    rng_t r = {0x7c2026a7ull};
    test_bad_args();
    test_accuracy(&r);
    CU_OK(cudaDeviceSynchronize());
    CU_OK(cudaGetLastError());
    if (getenv("KVL_TEST_NO_TIMING")) /* e.g. under compute-sanitizer */
        return kvt_finish();
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        printf("timing on %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
    const int32_t Ts[2] = {512, 4096};
    for (int i = 0; i < 2; i++) {
        time_shape(&r, "Qwen2.5-0.5B", Ts[i], 14, 2, 64);
        time_shape(&r, "Qwen3-0.6B", Ts[i], 16, 8, 128);
        time_shape(&r, "TinyLlama", Ts[i], 32, 4, 64);
        time_shape(&r, "Llama-3.2-1B", Ts[i], 32, 8, 64);
    }
    return kvt_finish();
}

#endif
