/*
 * The batched, fused decode kernels (src/engine/cuda/decode.cu: the
 * "batched, fused decode step" of kernels.h) against references computed
 * here on the host in double precision from the documented semantics
 * (plain loops; bf16 / f16 weights decoded from their bits with ldexp),
 * independent of the .cu files and of the other kvlab kernels.  Inputs are
 * fresh seeded random values, never zeros; outputs are poisoned with NaN
 * before each launch and every element is checked to be written; cache rows
 * past each sequence's context are NaN and must not leak into any result.
 * Every launcher runs with pdl = 0 and pdl = 1, and a whole layer (six
 * launches, pdl = 1) is captured into a CUDA graph and replayed with
 * growing contexts.
 *
 * Bounds, relative ||gpu - ref|| / ||ref||, from fp32 arithmetic
 * (u = 6e-8; weights are exact in fp32, so bf16 / f16 storage adds no
 * error of its own):
 *   matvec_fused / matvec_swiglu: 1e-5.  fp32 dot products of up to 4864
 *     terms split over >= 32 lanes and a tree (error ~ u * sqrt(K / 32)
 *     times the cancellation of random signs, ~1e-6 .. 3e-6), the norm a
 *     few roundings more (1e-7), the residual add and SwiGLU one rounding
 *     each plus expf to 1 ulp; the same bound as kvl_cu_matvec's test;
 *   qkv_finish: q and k 1e-6 (norm: double sum, 3 roundings; RoPE: cos /
 *     sin rounded to fp32 and 2 products + 1 sum per element); v is a copy:
 *     bit-exact;
 *   attention: 1e-5 (fp32 dots of <= 256 terms, expf to 2 ulp, sums of
 *     <= 5000 (and up to 20000) keys weighted by probabilities <= 1, the
 *     split combine one rescale per chunk), as kvl_cu_attention's test;
 *   whole layer in a graph: 5e-5 on every output (x after the layer, the
 *     stored K/V rows): five of the stages above in sequence, each at most
 *     1e-5, with condition numbers of order 1 (inputs in [-1, 1], scores
 *     well below 1 in magnitude); the sum of the stage bounds.
 * The attention cases cover both of its paths: one cluster (contexts up to
 * 8 blocks x 2 tiles of kpb keys: 1024 at hd 64, with one and two tiles)
 * and the split over several clusters with the global combine (just past
 * 1024, 2049, 5000, 20000 keys), hd 30 (4-byte loads), 32 .. 256, and a
 * graph of whole layers (pdl) at contexts both sides of 1024.
 * Needs a CUDA device: skipped without one (or in a build without CUDA).
 * Timing lines (information, never asserted; KVL_TEST_NO_TIMING=1 skips
 * them) measure one Qwen2.5-0.5B layer's fused chain in a graph.
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

static const char *dt_name(kvl_dtype dt)
{
    return dt == KVL_DTYPE_F32 ? "F32" : dt == KVL_DTYPE_F16 ? "F16" : "BF16";
}

/* Norm weights: positive, near 1 (as trained RMSNorm weights are). */
static void gen_norm(rng_t *r, kvl_dtype dt, size_t n, void *raw, double *val)
{
    for (size_t i = 0; i < n; i++) {
        const float f = 0.5f + (float)rng_unif(r);
        if (dt == KVL_DTYPE_F32) {
            memcpy((char *)raw + 4 * i, &f, 4);
            val[i] = f;
        } else if (dt == KVL_DTYPE_BF16) {
            uint32_t u;
            memcpy(&u, &f, 4);
            const uint16_t h = (uint16_t)(u >> 16); /* truncation: exact value below */
            memcpy((char *)raw + 2 * i, &h, 2);
            const unsigned e = (h >> 7) & 0xff, m = h & 0x7f;
            val[i] = ldexp(1.0 + m / 128.0, (int)e - 127);
        } else {
            /* f in [0.5, 1.5): exponent -1 or 0, 10 mantissa bits. */
            const int ex = f >= 1.0f ? 0 : -1;
            const unsigned m = (unsigned)((ldexp(f, -ex) - 1.0) * 1024.0);
            const uint16_t h = (uint16_t)(((unsigned)(ex + 15) << 10) | m);
            memcpy((char *)raw + 2 * i, &h, 2);
            val[i] = ldexp(1.0 + m / 1024.0, ex);
        }
    }
}

#define CU_BAD(call)                                                         \
    do {                                                                     \
        cudaError_t e_ = (call);                                             \
        CHECK(e_ == cudaErrorInvalidValue, "got %s", cudaGetErrorString(e_)); \
    } while (0)

static float *host_nan(size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = NAN;
    return h;
}

/* Device buffer of n floats set to NaN (the poison). */
static float *dev_nan(size_t n)
{
    float *h = host_nan(n);
    float *d = dev_copy(h, (n ? n : 1) * sizeof *h);
    free(h);
    return d;
}

static void check_close(const char *what, const float *got, const double *ref, size_t n,
                        double bound)
{
    const size_t nan = count_nan(got, n);
    CHECK(nan == 0, "%s: %zu of %zu outputs unwritten (NaN)", what, nan, n);
    const double e = rel_err_d(got, ref, n);
    CHECK(e <= bound, "%s: relative error %.3g > %.1g", what, e, bound);
}

/* Double RMSNorm of one row as documented: x / sqrt(mean(x^2) + eps) * w. */
static void ref_norm(double *out, const float *x, const double *w, int32_t n, float eps)
{
    double ss = 0.0;
    for (int32_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    const double r = 1.0 / sqrt(ss / n + (double)eps);
    for (int32_t i = 0; i < n; i++)
        out[i] = (double)x[i] * r * (w ? w[i] : 1.0);
}

static double silu_d(double g)
{
    return g / (1.0 + exp(-g));
}

/* ------------------------------------------------------------------------ */
/* matvec_fused and matvec_swiglu                                             */
/* ------------------------------------------------------------------------ */

enum { RES_NONE, RES_SEPARATE, RES_ALIAS };

typedef struct {
    kvl_dtype wdt, ndt, bdt;
    int32_t T, M, K;
    int norm, bias, res;   /* res: RES_*, ignored by swiglu */
    size_t w_off, x_off;   /* elements: odd offsets make rows unaligned */
    int swiglu, pdl;
} mv_case;

static void test_mv_case(rng_t *r, mv_case c)
{
    const int32_t T = c.T, M = c.M, K = c.K;
    const int nmat = c.swiglu ? 2 : 1;
    const size_t es = esize(c.wdt), nw = (size_t)M * K;
    const float eps = 1e-6f;
    unsigned char *wraw[2];
    double *wval[2], *bval[2];
    unsigned char *braw[2];
    void *dwb[2], *dw[2], *db[2] = {NULL, NULL};
    for (int m = 0; m < nmat; m++) {
        wraw[m] = malloc(nw * es);
        wval[m] = malloc(nw * sizeof(double));
        gen_weights(r, c.wdt, nw, wraw[m], wval[m]);
        braw[m] = malloc((size_t)M * 4);
        bval[m] = malloc((size_t)M * sizeof(double));
        gen_weights(r, c.bdt, (size_t)M, braw[m], bval[m]);
        dwb[m] = dev_alloc(nw * es + 16);
        dw[m] = (char *)dwb[m] + c.w_off * es;
        CU_OK(cudaMemcpy(dw[m], wraw[m], nw * es, cudaMemcpyHostToDevice));
        if (c.bias && !(c.swiglu && m == 1 && c.bias == 2)) /* bias 2: gate only */
            db[m] = dev_copy(braw[m], (size_t)M * esize(c.bdt));
    }
    unsigned char *nraw = malloc((size_t)K * 4);
    double *nval = malloc((size_t)K * sizeof *nval);
    gen_norm(r, c.ndt, (size_t)K, nraw, nval);
    void *dn = c.norm ? dev_copy(nraw, (size_t)K * esize(c.ndt)) : NULL;
    float *x = malloc((size_t)T * K * sizeof *x);
    fill_sym(r, x, (size_t)T * K, 1.0f);
    float *res = malloc((size_t)T * M * sizeof *res);
    fill_sym(r, res, (size_t)T * M, 1.0f);
    float *dxb = dev_alloc(((size_t)T * K + 4) * sizeof(float));
    float *dx = dxb + c.x_off;
    CU_OK(cudaMemcpy(dx, x, (size_t)T * K * sizeof *x, cudaMemcpyHostToDevice));
    float *dy, *dres = NULL;
    if (c.res == RES_ALIAS && !c.swiglu) {
        dy = dev_copy(res, (size_t)T * M * sizeof *res);
        dres = dy;
    } else {
        dy = dev_nan((size_t)T * M);
        if (c.res == RES_SEPARATE && !c.swiglu)
            dres = dev_copy(res, (size_t)T * M * sizeof *res);
    }
    if (c.swiglu)
        CU_OK(kvl_cu_matvec_swiglu(dy, dw[0], dw[1], c.wdt, dx, dn, c.ndt, eps, db[0], db[1],
                                   c.bdt, T, M, K, c.pdl, 0));
    else
        CU_OK(kvl_cu_matvec_fused(dy, dw[0], c.wdt, dx, dn, c.ndt, eps, db[0], c.bdt, dres, T,
                                  M, K, c.pdl, 0));
    float *y = malloc((size_t)T * M * sizeof *y);
    to_host(y, dy, (size_t)T * M * sizeof *y);

    double *ref = malloc((size_t)T * M * sizeof *ref);
    double *xn = malloc((size_t)K * sizeof *xn);
    for (int32_t t = 0; t < T; t++) {
        if (c.norm)
            ref_norm(xn, x + (size_t)t * K, nval, K, eps);
        else
            for (int32_t k = 0; k < K; k++)
                xn[k] = x[(size_t)t * K + k];
        for (int32_t m = 0; m < M; m++) {
            double s[2];
            for (int mm = 0; mm < nmat; mm++) {
                s[mm] = db[mm] ? bval[mm][m] : 0.0;
                for (int32_t k = 0; k < K; k++)
                    s[mm] += wval[mm][(size_t)m * K + k] * xn[k];
            }
            double v = c.swiglu ? silu_d(s[0]) * s[1] : s[0];
            if (!c.swiglu && c.res != RES_NONE)
                v += res[(size_t)t * M + m];
            ref[(size_t)t * M + m] = v;
        }
    }
    char what[192];
    snprintf(what, sizeof what,
             "%s %s T=%d M=%d K=%d norm=%d(%s) bias=%d res=%d w_off=%zu x_off=%zu pdl=%d",
             c.swiglu ? "matvec_swiglu" : "matvec_fused", dt_name(c.wdt), (int)T,
             (int)M, (int)K, c.norm, dt_name(c.ndt), c.bias, c.res, c.w_off, c.x_off,
             c.pdl);
    check_close(what, y, ref, (size_t)T * M, 1e-5);

    for (int m = 0; m < nmat; m++) {
        cudaFree(dwb[m]);
        cudaFree(db[m]);
        free(wraw[m]), free(wval[m]), free(braw[m]), free(bval[m]);
    }
    cudaFree(dn), cudaFree(dxb), cudaFree(dy);
    if (dres && dres != dy)
        cudaFree(dres);
    free(nraw), free(nval), free(x), free(res), free(y), free(ref), free(xn);
}

static void test_matvec(rng_t *r)
{
    const kvl_dtype BF = KVL_DTYPE_BF16, F16 = KVL_DTYPE_F16, F32 = KVL_DTYPE_F32;
    /* wdt, ndt, bdt, T, M, K, norm, bias, res, w_off, x_off, swiglu, pdl */
    const mv_case cases[] = {
        /* the Qwen2.5-0.5B products: qkv (norm + bias), o / down (residual
         * in place), lm_head-like (norm) */
        {BF, BF, BF, 1, 1152, 896, 1, 1, RES_NONE, 0, 0, 0, 0},
        {BF, BF, BF, 1, 1152, 896, 1, 1, RES_NONE, 0, 0, 0, 1},
        {BF, BF, BF, 1, 896, 896, 0, 0, RES_ALIAS, 0, 0, 0, 1},
        {BF, BF, BF, 1, 896, 4864, 0, 0, RES_ALIAS, 0, 0, 0, 0},
        {BF, BF, BF, 4, 896, 4864, 0, 1, RES_SEPARATE, 0, 0, 0, 1}, /* x from global */
        {BF, F32, BF, 5, 200, 4864, 1, 0, RES_ALIAS, 0, 0, 0, 1},  /* norm on the fly */
        {F16, F16, F32, 8, 1152, 896, 1, 1, RES_SEPARATE, 0, 0, 0, 1},
        {F32, BF, F16, 3, 257, 1000, 1, 1, RES_ALIAS, 0, 0, 0, 0},
        {BF, BF, BF, 2, 4100, 64, 1, 0, RES_NONE, 0, 0, 0, 1},
        /* scalar path: K not a multiple of 8, odd W offset, odd x offset */
        {BF, BF, BF, 3, 130, 1001, 1, 1, RES_ALIAS, 0, 0, 0, 1},
        {F16, F32, F16, 7, 65, 512, 1, 0, RES_SEPARATE, 1, 0, 0, 0},
        {F32, F16, F32, 2, 300, 1002, 0, 1, RES_NONE, 0, 0, 0, 1},
        {BF, BF, BF, 1, 96, 896, 1, 1, RES_NONE, 0, 1, 0, 1},
        {F32, F32, F32, 8, 1, 1, 1, 1, RES_ALIAS, 0, 0, 0, 1},
        {BF, BF, BF, 6, 33, 7, 0, 0, RES_SEPARATE, 0, 0, 0, 0},
        /* swiglu: the FFN shape, T up to 8, F16 / F32, one bias only,
         * unaligned, x from global */
        {BF, BF, BF, 1, 4864, 896, 1, 0, RES_NONE, 0, 0, 1, 0},
        {BF, BF, BF, 1, 4864, 896, 1, 0, RES_NONE, 0, 0, 1, 1},
        {BF, F32, BF, 8, 1000, 896, 1, 1, RES_NONE, 0, 0, 1, 1},
        {F16, F16, F16, 3, 600, 1152, 1, 2, RES_NONE, 0, 0, 1, 0},
        {F32, BF, F32, 2, 70, 4000, 1, 1, RES_NONE, 0, 0, 1, 1},
        {BF, BF, BF, 4, 300, 6000, 1, 0, RES_NONE, 0, 0, 1, 1},
        {BF, BF, BF, 5, 77, 999, 1, 1, RES_NONE, 3, 0, 1, 1},
        {F16, F16, F16, 2, 40, 256, 0, 0, RES_NONE, 0, 3, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_mv_case(r, cases[i]);
    for (int32_t T = 1; T <= KVL_CU_MATVEC_MAX_T; T++) {
        test_mv_case(r, (mv_case){BF, BF, BF, T, 520, 136, T % 2, T % 3 == 0, T % 3, 0, 0, 0,
                                  T % 2});
        test_mv_case(r, (mv_case){BF, BF, BF, T, 130, 264, T % 2 == 0, T % 2, RES_NONE, 0, 0,
                                  1, T % 2 == 0});
    }
}

/* ------------------------------------------------------------------------ */
/* qkv_finish                                                                 */
/* ------------------------------------------------------------------------ */

/* Double rotation of one row with the documented angle: fp32 product
 * pos * inv_freq, cos / sin of that in double. */
static void ref_rotate(double *x, int32_t rotary_dim, const float *inv_freq,
                       kvl_rope_layout layout, int32_t pos)
{
    const int32_t half = rotary_dim / 2;
    for (int32_t i = 0; i < half; i++) {
        const float angle = (float)pos * inv_freq[i];
        const double c = cos((double)angle), s = sin((double)angle);
        const int32_t a = layout == KVL_ROPE_INTERLEAVED ? 2 * i : i;
        const int32_t b = layout == KVL_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
        const double xa = x[a], xb = x[b];
        x[a] = xa * c - xb * s;
        x[b] = xb * c + xa * s;
    }
}

static void meta_fill(int32_t *meta, int32_t B, int32_t b, int32_t tok, int32_t pos,
                      int32_t slot, int32_t cap)
{
    meta[KVL_CU_META_TOKEN * B + b] = tok;
    meta[KVL_CU_META_POS * B + b] = pos;
    meta[KVL_CU_META_SLOT * B + b] = slot;
    meta[KVL_CU_META_CAP * B + b] = cap;
}

static void test_qkv_case(rng_t *r, int32_t B, int32_t nh, int32_t nkv, int32_t hd,
                          int32_t rd, kvl_rope_layout layout, int qn, int kn, kvl_dtype ndt,
                          int32_t pad, int pdl)
{
    const int32_t n_layers = 3, layer = rng_int(r, n_layers);
    const int32_t width = (nh + 2 * nkv) * hd, stride = width + pad;
    const float eps = 1e-6f;
    float *qkv = malloc((size_t)B * stride * sizeof *qkv);
    fill_sym(r, qkv, (size_t)B * stride, 1.0f);
    int32_t *meta = malloc((size_t)KVL_CU_META_COUNT * B * sizeof *meta);
    int32_t *cap = malloc((size_t)B * sizeof *cap);
    float **tab = malloc((size_t)B * n_layers * 2 * sizeof *tab);
    for (int32_t b = 0; b < B; b++) {
        cap[b] = 1 + rng_int(r, 40);
        meta_fill(meta, B, b, rng_int(r, 1000), rng_int(r, 100000), rng_int(r, cap[b]), cap[b]);
        for (int32_t i = 0; i < n_layers * 2; i++)
            tab[(size_t)b * n_layers * 2 + i] = dev_nan((size_t)nkv * cap[b] * hd);
    }
    unsigned char *qraw = malloc((size_t)hd * 4), *kraw = malloc((size_t)hd * 4);
    double *qval = malloc((size_t)hd * sizeof *qval), *kval = malloc((size_t)hd * sizeof *kval);
    gen_norm(r, ndt, (size_t)hd, qraw, qval);
    gen_norm(r, ndt, (size_t)hd, kraw, kval);
    float *inv = malloc((size_t)(rd / 2) * sizeof *inv);
    make_inv_freq(inv, rd, layout == KVL_ROPE_INTERLEAVED ? 10000.0 : 1000000.0);

    float *dqkv = dev_copy(qkv, (size_t)B * stride * sizeof *qkv);
    int32_t *dmeta = dev_copy(meta, (size_t)KVL_CU_META_COUNT * B * sizeof *meta);
    float **dtab = dev_copy(tab, (size_t)B * n_layers * 2 * sizeof *tab);
    void *dqn = qn ? dev_copy(qraw, (size_t)hd * esize(ndt)) : NULL;
    void *dkn = kn ? dev_copy(kraw, (size_t)hd * esize(ndt)) : NULL;
    float *dinv = dev_copy(inv, (size_t)(rd / 2) * sizeof *inv);
    CU_OK(kvl_cu_decode_qkv_finish(dqkv, stride, dqn, dkn, ndt, eps, dinv, rd, layout,
                                   (float *const *)dtab, layer, n_layers, dmeta, B, nh, nkv, hd,
                                   pdl, 0));
    float *got = malloc((size_t)B * stride * sizeof *got);
    to_host(got, dqkv, (size_t)B * stride * sizeof *got);

    char what[160];
    snprintf(what, sizeof what, "qkv_finish B=%d heads=%d/%d hd=%d rd=%d layout=%d qn=%d kn=%d "
             "%s pad=%d pdl=%d", (int)B, (int)nh, (int)nkv, (int)hd, (int)rd, (int)layout, qn,
             kn, dt_name(ndt), (int)pad, pdl);
    /* q: norm + rope, in place; the k / v part and the padding untouched. */
    double *qref = malloc((size_t)B * nh * hd * sizeof *qref);
    float *qgot = malloc((size_t)B * nh * hd * sizeof *qgot);
    int rest_same = 1;
    double *row = malloc((size_t)hd * sizeof *row);
    double *kref = malloc((size_t)B * nkv * hd * sizeof *kref);
    float *kgot = malloc((size_t)B * nkv * hd * sizeof *kgot);
    int v_exact = 1, others_nan = 1;
    for (int32_t b = 0; b < B; b++) {
        const float *src = qkv + (size_t)b * stride;
        const int32_t pos = meta[KVL_CU_META_POS * B + b], slot = meta[KVL_CU_META_SLOT * B + b];
        for (int32_t h = 0; h < nh; h++) {
            ref_norm(row, src + (size_t)h * hd, qn ? qval : NULL, hd, qn ? eps : 0.0f);
            if (!qn)
                for (int32_t d = 0; d < hd; d++)
                    row[d] = src[(size_t)h * hd + d];
            ref_rotate(row, rd, inv, layout, pos);
            memcpy(qref + ((size_t)b * nh + h) * hd, row, (size_t)hd * sizeof *row);
            memcpy(qgot + ((size_t)b * nh + h) * hd, got + (size_t)b * stride + (size_t)h * hd,
                   (size_t)hd * sizeof(float));
        }
        rest_same &= memcmp(got + (size_t)b * stride + (size_t)nh * hd, src + (size_t)nh * hd,
                            (size_t)(stride - nh * hd) * sizeof(float)) == 0;
        const size_t plane = (size_t)nkv * cap[b] * hd;
        float *kc = malloc(plane * sizeof *kc), *vc = malloc(plane * sizeof *vc);
        for (int32_t l = 0; l < n_layers; l++) {
            to_host(kc, tab[((size_t)b * n_layers + l) * 2], plane * sizeof *kc);
            to_host(vc, tab[((size_t)b * n_layers + l) * 2 + 1], plane * sizeof *vc);
            for (int32_t h = 0; h < nkv; h++)
                for (int32_t j = 0; j < cap[b]; j++) {
                    const size_t o = ((size_t)h * cap[b] + j) * hd;
                    if (l == layer && j == slot) {
                        const float *ks = src + (size_t)(nh + h) * hd;
                        const float *vs = src + (size_t)(nh + nkv + h) * hd;
                        if (kn) {
                            ref_norm(row, ks, kval, hd, eps);
                        } else {
                            for (int32_t d = 0; d < hd; d++)
                                row[d] = ks[d];
                        }
                        ref_rotate(row, rd, inv, layout, pos);
                        memcpy(kref + ((size_t)b * nkv + h) * hd, row, (size_t)hd * sizeof *row);
                        memcpy(kgot + ((size_t)b * nkv + h) * hd, kc + o, (size_t)hd * sizeof(float));
                        v_exact &= memcmp(vc + o, vs, (size_t)hd * sizeof(float)) == 0;
                    } else {
                        others_nan &= count_nan(kc + o, (size_t)hd) == (size_t)hd &&
                                      count_nan(vc + o, (size_t)hd) == (size_t)hd;
                    }
                }
        }
        free(kc), free(vc);
    }
    char w2[200];
    snprintf(w2, sizeof w2, "%s: q", what);
    check_close(w2, qgot, qref, (size_t)B * nh * hd, 1e-6);
    snprintf(w2, sizeof w2, "%s: k in cache", what);
    check_close(w2, kgot, kref, (size_t)B * nkv * hd, 1e-6);
    CHECK(rest_same, "%s: k / v / padding of qkv changed", what);
    CHECK(v_exact, "%s: v row in the cache is not the exact copy", what);
    CHECK(others_nan, "%s: cache rows other than the slot written", what);

    for (int32_t i = 0; i < B * n_layers * 2; i++)
        cudaFree(tab[i]);
    cudaFree(dqkv), cudaFree(dmeta), cudaFree(dtab), cudaFree(dqn), cudaFree(dkn),
        cudaFree(dinv);
    free(qkv), free(meta), free(cap), free(tab), free(qraw), free(kraw), free(qval),
        free(kval), free(inv), free(got), free(qref), free(qgot), free(row), free(kref),
        free(kgot);
}

static void test_qkv(rng_t *r)
{
    const kvl_rope_layout RH = KVL_ROPE_ROTATE_HALF, IL = KVL_ROPE_INTERLEAVED;
    test_qkv_case(r, 1, 14, 2, 64, 64, RH, 0, 0, KVL_DTYPE_BF16, 0, 0);
    test_qkv_case(r, 3, 14, 2, 64, 64, RH, 0, 0, KVL_DTYPE_BF16, 0, 1);
    test_qkv_case(r, 2, 8, 8, 128, 64, IL, 1, 1, KVL_DTYPE_BF16, 5, 1);
    test_qkv_case(r, 5, 7, 1, 32, 32, RH, 1, 0, KVL_DTYPE_F32, 0, 0);
    test_qkv_case(r, 4, 16, 2, 256, 128, IL, 1, 1, KVL_DTYPE_F16, 0, 1);
    test_qkv_case(r, 33, 16, 8, 128, 128, RH, 1, 1, KVL_DTYPE_BF16, 3, 1);
    test_qkv_case(r, 2, 6, 3, 80, 40, RH, 0, 1, KVL_DTYPE_BF16, 0, 0);
}

/* ------------------------------------------------------------------------ */
/* attention_decode_batch                                                     */
/* ------------------------------------------------------------------------ */

/* Scratch shared by every attention case: zeroed once (the documented
 * requirement); the kernels leave their counters at zero. */
static float *g_scratch;
static size_t g_scratch_floats;

static void test_attn_case(rng_t *r, int32_t B, const int32_t *n_ctx, const int32_t *cap,
                           int32_t cap_max, int32_t nh, int32_t nkv, int32_t hd,
                           int32_t q_pad, int pdl)
{
    const int32_t n_layers = 2, layer = 1, qs = nh * hd + q_pad;
    float *q = malloc((size_t)B * qs * sizeof *q);
    fill_sym(r, q, (size_t)B * qs, 1.0f);
    int32_t *meta = malloc((size_t)KVL_CU_META_COUNT * B * sizeof *meta);
    float **tab = malloc((size_t)B * n_layers * 2 * sizeof *tab);
    float **hk = malloc((size_t)B * sizeof *hk), **hv = malloc((size_t)B * sizeof *hv);
    for (int32_t b = 0; b < B; b++) {
        meta_fill(meta, B, b, 7, rng_int(r, 9999), n_ctx[b] - 1, cap[b]);
        const size_t plane = (size_t)nkv * cap[b] * hd;
        hk[b] = host_nan(plane);
        hv[b] = host_nan(plane);
        /* rows past the context stay NaN: they must not leak */
        for (int32_t h = 0; h < nkv; h++) {
            fill_sym(r, hk[b] + (size_t)h * cap[b] * hd, (size_t)n_ctx[b] * hd, 1.0f);
            fill_sym(r, hv[b] + (size_t)h * cap[b] * hd, (size_t)n_ctx[b] * hd, 1.0f);
        }
        /* layer 0: NaN planes (a wrong layer index shows as NaN) */
        tab[(size_t)b * 4 + 0] = dev_nan(plane);
        tab[(size_t)b * 4 + 1] = dev_nan(plane);
        tab[(size_t)b * 4 + 2] = dev_copy(hk[b], plane * sizeof(float));
        tab[(size_t)b * 4 + 3] = dev_copy(hv[b], plane * sizeof(float));
    }
    float *dq = dev_copy(q, (size_t)B * qs * sizeof *q);
    int32_t *dmeta = dev_copy(meta, (size_t)KVL_CU_META_COUNT * B * sizeof *meta);
    float **dtab = dev_copy(tab, (size_t)B * n_layers * 2 * sizeof *tab);
    float *dout = dev_nan((size_t)B * nh * hd);
    const size_t need = kvl_cu_attention_decode_batch_scratch(B, nh, cap_max, hd);
    CHECK(need > 0 && need <= g_scratch_floats, "scratch %zu > %zu", need, g_scratch_floats);
    CU_OK(kvl_cu_attention_decode_batch(dout, dq, qs, (float *const *)dtab, layer, n_layers,
                                        dmeta, B, cap_max, nh, nkv, hd, g_scratch,
                                        g_scratch_floats, pdl, 0));
    float *got = malloc((size_t)B * nh * hd * sizeof *got);
    to_host(got, dout, (size_t)B * nh * hd * sizeof *got);
    double *ref = malloc((size_t)B * nh * hd * sizeof *ref);
    for (int32_t b = 0; b < B; b++)
        ref_attention(ref + (size_t)b * nh * hd, q + (size_t)b * qs, hk[b], hv[b], cap[b],
                      n_ctx[b] - 1, 1, nh, nkv, hd);
    char what[160];
    snprintf(what, sizeof what, "attention_decode_batch B=%d heads=%d/%d hd=%d cap_max=%d "
             "n_ctx[0]=%d pdl=%d", (int)B, (int)nh, (int)nkv, (int)hd, (int)cap_max,
             (int)n_ctx[0], pdl);
    check_close(what, got, ref, (size_t)B * nh * hd, 1e-5);

    for (int32_t i = 0; i < B * 4; i++)
        cudaFree(tab[i]);
    for (int32_t b = 0; b < B; b++)
        free(hk[b]), free(hv[b]);
    cudaFree(dq), cudaFree(dmeta), cudaFree(dtab), cudaFree(dout);
    free(q), free(meta), free(tab), free(hk), free(hv), free(got), free(ref);
}

static void test_attention(rng_t *r)
{
    g_scratch_floats = (size_t)1 << 22; /* more than any case below needs */
    g_scratch = dev_alloc(g_scratch_floats * sizeof(float));
    CU_OK(cudaMemset(g_scratch, 0, g_scratch_floats * sizeof(float)));

    {   /* B = 1, one key; GQA 7 */
        const int32_t n[] = {1}, c[] = {8};
        test_attn_case(r, 1, n, c, 8, 14, 2, 64, 0, 0);
        test_attn_case(r, 1, n, c, 8, 14, 2, 64, 0, 1);
    }
    {   /* the Qwen shape at 512 keys, cap_max 4096 (split sized for 4096) */
        const int32_t n[] = {512}, c[] = {4096};
        test_attn_case(r, 1, n, c, 4096, 14, 2, 64, 256, 1);
    }
    {   /* B = 3, lengths 1 .. 5000, different caps, hd 128, GQA 2 */
        const int32_t n[] = {5000, 1, 777}, c[] = {5000, 16, 1000};
        test_attn_case(r, 3, n, c, 5000, 8, 4, 128, 0, 0);
        test_attn_case(r, 3, n, c, 6000, 8, 4, 128, 32, 1);
    }
    {   /* B = 33, random lengths and caps, GQA 8, hd 64 */
        int32_t n[33], c[33];
        for (int i = 0; i < 33; i++) {
            n[i] = 1 + rng_int(r, 600);
            c[i] = n[i] + rng_int(r, 100);
        }
        test_attn_case(r, 33, n, c, 800, 8, 1, 64, 0, 1);
        test_attn_case(r, 33, n, c, 700, 8, 1, 64, 0, 0);
    }
    {   /* GQA 1, cap_max far above the contexts */
        const int32_t n[] = {300, 64, 2049}, c[] = {300, 100, 40000};
        test_attn_case(r, 3, n, c, 40000, 4, 4, 64, 0, 1);
    }
    {   /* GQA 12 (two blocks per kv head), hd 96 */
        const int32_t n[] = {100, 1500}, c[] = {128, 1500};
        test_attn_case(r, 2, n, c, 2000, 24, 2, 96, 0, 1);
    }
    {   /* hd 256, hd 32 */
        const int32_t n[] = {33, 700}, c[] = {40, 700};
        test_attn_case(r, 2, n, c, 1000, 8, 1, 256, 0, 1);
        test_attn_case(r, 2, n, c, 1000, 8, 2, 32, 0, 0);
    }
    {   /* around the one-cluster limit at hd 64 (1024 keys: 8 blocks x 2
         * tiles of 64): one cluster with two tiles, the split path with one
         * more cluster holding a single key block, a half-full tile */
        const int32_t n[] = {1024, 1025, 513}, c[] = {1024, 1100, 4096};
        test_attn_case(r, 3, n, c, 4096, 14, 2, 64, 0, 1);
        test_attn_case(r, 3, n, c, 4096, 14, 2, 64, 0, 0);
    }
    {   /* hd 30 (not a multiple of 4): 4-byte loads, scalar dots; one
         * cluster and the split path */
        const int32_t n[] = {300, 2000}, c[] = {310, 2000};
        test_attn_case(r, 2, n, c, 2000, 4, 2, 30, 2, 1);
    }
    {   /* many key blocks over 16 clusters (hd 32: 20000 keys, 3 tiles each) */
        const int32_t n[] = {20000}, c[] = {20000};
        test_attn_case(r, 1, n, c, 100000, 2, 1, 32, 0, 1);
    }
    /* The counters (the scratch's tail) are back at zero. */
    {
        const size_t nc = (size_t)33 * 24;
        int32_t *cnt = malloc(nc * sizeof *cnt);
        to_host(cnt, g_scratch + g_scratch_floats - nc, nc * sizeof *cnt);
        int zero = 1;
        for (size_t i = 0; i < nc; i++)
            zero &= cnt[i] == 0;
        CHECK(zero, "attention counters not reset to zero");
        free(cnt);
    }
}

/* ------------------------------------------------------------------------ */
/* one layer: six launches, graph                                             */
/* ------------------------------------------------------------------------ */

typedef struct {
    int32_t dim, nh, nkv, hd, ffn, B, cap_max, n_layers;
    /* device */
    void *Wqkv, *bqkv, *Wo, *Wg, *Wu, *Wd, *n1, *n2;
    float *inv_freq, *x, *qkv, *att, *h, *scratch;
    size_t scratch_floats;
    float **tab;
    int32_t *meta;
} layer_dev;

/* Enqueues one layer for layer index l (weights / caches of that layer). */
static cudaError_t layer_enqueue_only(const layer_dev *L, const void *Wqkv, const void *bqkv,
                                      const void *Wo, const void *Wg, const void *Wu,
                                      const void *Wd, int32_t l, int pdl, cudaStream_t s,
                                      int only)
{
    const kvl_dtype BF = KVL_DTYPE_BF16;
    const int32_t nq = L->nh * L->hd, nqkv = (L->nh + 2 * L->nkv) * L->hd;
    const float eps = 1e-6f;
    cudaError_t e;
    for (int32_t b0 = 0; b0 < L->B; b0 += KVL_CU_MATVEC_MAX_T) {
        const int32_t T = L->B - b0 < KVL_CU_MATVEC_MAX_T ? L->B - b0 : KVL_CU_MATVEC_MAX_T;
        if ((only < 0 || only == 0) &&
            (e = kvl_cu_matvec_fused(L->qkv + (size_t)b0 * nqkv, Wqkv, BF,
                                     L->x + (size_t)b0 * L->dim, L->n1, BF, eps, bqkv, BF,
                                     NULL, T, nqkv, L->dim, pdl, s)) != cudaSuccess)
            return e;
    }
    if ((only < 0 || only == 1) &&
        (e = kvl_cu_decode_qkv_finish(L->qkv, nqkv, NULL, NULL, BF, eps, L->inv_freq, L->hd,
                                      KVL_ROPE_ROTATE_HALF, (float *const *)L->tab, l,
                                      L->n_layers, L->meta, L->B, L->nh, L->nkv, L->hd, pdl,
                                      s)) != cudaSuccess)
        return e;
    if ((only < 0 || only == 2) &&
        (e = kvl_cu_attention_decode_batch(L->att, L->qkv, nqkv, (float *const *)L->tab, l,
                                           L->n_layers, L->meta, L->B, L->cap_max, L->nh,
                                           L->nkv, L->hd, L->scratch, L->scratch_floats, pdl,
                                           s)) != cudaSuccess)
        return e;
    for (int32_t b0 = 0; b0 < L->B; b0 += KVL_CU_MATVEC_MAX_T) {
        const int32_t T = L->B - b0 < KVL_CU_MATVEC_MAX_T ? L->B - b0 : KVL_CU_MATVEC_MAX_T;
        float *x = L->x + (size_t)b0 * L->dim;
        if ((only < 0 || only == 3) &&
            (e = kvl_cu_matvec_fused(x, Wo, BF, L->att + (size_t)b0 * nq, NULL, BF, 0.0f, NULL,
                                     BF, x, T, L->dim, nq, pdl, s)) != cudaSuccess)
            return e;
        if ((only < 0 || only == 4) &&
            (e = kvl_cu_matvec_swiglu(L->h + (size_t)b0 * L->ffn, Wg, Wu, BF, x, L->n2, BF,
                                      eps, NULL, NULL, BF, T, L->ffn, L->dim, pdl, s)) !=
            cudaSuccess)
            return e;
        if ((only < 0 || only == 5) &&
            (e = kvl_cu_matvec_fused(x, Wd, BF, L->h + (size_t)b0 * L->ffn, NULL, BF, 0.0f, NULL,
                                     BF, x, T, L->dim, L->ffn, pdl, s)) != cudaSuccess)
            return e;
    }
    return cudaSuccess;
}

static cudaError_t layer_enqueue(const layer_dev *L, const void *Wqkv, const void *bqkv,
                                 const void *Wo, const void *Wg, const void *Wu, const void *Wd,
                                 int32_t l, int pdl, cudaStream_t s)
{
    return layer_enqueue_only(L, Wqkv, bqkv, Wo, Wg, Wu, Wd, l, pdl, s, -1);
}

/* Host reference of one layer step for B sequences (double), updating the
 * host caches (double) and x. */
typedef struct {
    double *Wqkv, *bqkv, *Wo, *Wg, *Wu, *Wd, *n1, *n2;
} layer_ref_w;

static void ref_layer(const layer_dev *L, const layer_ref_w *w, const float *inv_freq,
                      double *x, double **kc, double **vc, const int32_t *pos,
                      const int32_t *slot, const int32_t *cap)
{
    const int32_t dim = L->dim, hd = L->hd, nh = L->nh, nkv = L->nkv, g = nh / nkv;
    const int32_t nq = nh * hd, nqkv = (nh + 2 * nkv) * hd;
    double *xn = malloc((size_t)dim * sizeof *xn), *qkv = malloc((size_t)nqkv * sizeof *qkv);
    double *att = malloc((size_t)nq * sizeof *att), *hbuf = malloc((size_t)L->ffn * sizeof *hbuf);
    float *xf = malloc((size_t)dim * sizeof *xf);
    for (int32_t b = 0; b < L->B; b++) {
        double *xb = x + (size_t)b * dim;
        /* norm in double over the double x */
        double ss = 0.0;
        for (int32_t i = 0; i < dim; i++)
            ss += xb[i] * xb[i];
        double rr = 1.0 / sqrt(ss / dim + 1e-6);
        for (int32_t i = 0; i < dim; i++)
            xn[i] = xb[i] * rr * w->n1[i];
        for (int32_t m = 0; m < nqkv; m++) {
            double s = w->bqkv[m];
            for (int32_t k = 0; k < dim; k++)
                s += w->Wqkv[(size_t)m * dim + k] * xn[k];
            qkv[m] = s;
        }
        for (int32_t h = 0; h < nh + nkv; h++)
            ref_rotate(qkv + (size_t)h * hd, hd, inv_freq, KVL_ROPE_ROTATE_HALF, pos[b]);
        for (int32_t h = 0; h < nkv; h++)
            for (int32_t d = 0; d < hd; d++) {
                kc[b][((size_t)h * cap[b] + slot[b]) * hd + d] = qkv[(size_t)(nh + h) * hd + d];
                vc[b][((size_t)h * cap[b] + slot[b]) * hd + d] =
                    qkv[(size_t)(nh + nkv + h) * hd + d];
            }
        const int32_t n = slot[b] + 1;
        double *s = malloc((size_t)n * sizeof *s);
        for (int32_t h = 0; h < nh; h++) {
            const double *kh = kc[b] + (size_t)(h / g) * cap[b] * hd;
            const double *vh = vc[b] + (size_t)(h / g) * cap[b] * hd;
            double mx = -INFINITY, l = 0.0;
            for (int32_t j = 0; j < n; j++) {
                double d = 0.0;
                for (int32_t i = 0; i < hd; i++)
                    d += qkv[(size_t)h * hd + i] * kh[(size_t)j * hd + i];
                s[j] = d / sqrt((double)hd);
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int32_t j = 0; j < n; j++)
                l += (s[j] = exp(s[j] - mx));
            for (int32_t i = 0; i < hd; i++) {
                double o = 0.0;
                for (int32_t j = 0; j < n; j++)
                    o += s[j] * vh[(size_t)j * hd + i];
                att[(size_t)h * hd + i] = o / l;
            }
        }
        free(s);
        for (int32_t m = 0; m < dim; m++) {
            double acc = 0.0;
            for (int32_t k = 0; k < nq; k++)
                acc += w->Wo[(size_t)m * nq + k] * att[k];
            xb[m] += acc;
        }
        ss = 0.0;
        for (int32_t i = 0; i < dim; i++)
            ss += xb[i] * xb[i];
        rr = 1.0 / sqrt(ss / dim + 1e-6);
        for (int32_t i = 0; i < dim; i++)
            xn[i] = xb[i] * rr * w->n2[i];
        for (int32_t m = 0; m < L->ffn; m++) {
            double gg = 0.0, uu = 0.0;
            for (int32_t k = 0; k < dim; k++) {
                gg += w->Wg[(size_t)m * dim + k] * xn[k];
                uu += w->Wu[(size_t)m * dim + k] * xn[k];
            }
            hbuf[m] = silu_d(gg) * uu;
        }
        for (int32_t m = 0; m < dim; m++) {
            double acc = 0.0;
            for (int32_t k = 0; k < L->ffn; k++)
                acc += w->Wd[(size_t)m * L->ffn + k] * hbuf[k];
            xb[m] += acc;
        }
    }
    free(xn), free(qkv), free(att), free(hbuf), free(xf);
}

static void *dev_weights(rng_t *r, size_t n, double **val)
{
    uint16_t *raw = malloc(n * 2);
    *val = malloc(n * sizeof **val);
    gen_weights(r, KVL_DTYPE_BF16, n, raw, *val);
    void *d = dev_copy(raw, n * 2);
    free(raw);
    return d;
}

static void *dev_norm(rng_t *r, size_t n, double **val)
{
    uint16_t *raw = malloc(n * 2);
    *val = malloc(n * sizeof **val);
    gen_norm(r, KVL_DTYPE_BF16, n, raw, *val);
    void *d = dev_copy(raw, n * 2);
    free(raw);
    return d;
}

/* A layer of a small model (dim 128, 4 / 2 heads of 32, FFN 256) for B = 3
 * (and 11: two matvec chunks) sequences with their own caches, captured
 * with pdl = 1 into a graph, replayed three times with different meta
 * (contexts growing: a new K/V row each time), x and caches checked after
 * each replay against the double reference.  base = 0: contexts under 33
 * keys (the attention's one-cluster path); base > 0: contexts base ..
 * 2 base (at base 700 both sides of the 1024-key switch to the split path
 * with partials combined in global memory). */
static void test_layer_graph(rng_t *r, int32_t B, int32_t base)
{
    layer_dev L = {.dim = 128, .nh = 4, .nkv = 2, .hd = 32, .ffn = 256, .B = B,
                   .cap_max = base > 0 ? 2 * base + 50 : 100, .n_layers = 1};
    const int32_t nqkv = (L.nh + 2 * L.nkv) * L.hd;
    layer_ref_w w;
    double *bq;
    L.Wqkv = dev_weights(r, (size_t)nqkv * L.dim, &w.Wqkv);
    L.bqkv = dev_weights(r, (size_t)nqkv, &bq);
    w.bqkv = bq;
    /* Small output products keep x of order 1 after the residual adds. */
    L.Wo = dev_weights(r, (size_t)L.dim * L.nh * L.hd, &w.Wo);
    L.Wg = dev_weights(r, (size_t)L.ffn * L.dim, &w.Wg);
    L.Wu = dev_weights(r, (size_t)L.ffn * L.dim, &w.Wu);
    L.Wd = dev_weights(r, (size_t)L.dim * L.ffn, &w.Wd);
    L.n1 = dev_norm(r, (size_t)L.dim, &w.n1);
    L.n2 = dev_norm(r, (size_t)L.dim, &w.n2);
    float *inv = malloc((size_t)(L.hd / 2) * sizeof *inv);
    make_inv_freq(inv, L.hd, 10000.0);
    L.inv_freq = dev_copy(inv, (size_t)(L.hd / 2) * sizeof *inv);
    L.qkv = dev_nan((size_t)B * nqkv);
    L.att = dev_nan((size_t)B * L.nh * L.hd);
    L.h = dev_nan((size_t)B * L.ffn);
    L.scratch_floats = kvl_cu_attention_decode_batch_scratch(B, L.nh, L.cap_max, L.hd);
    L.scratch = dev_alloc(L.scratch_floats * sizeof(float));
    CU_OK(cudaMemset(L.scratch, 0, L.scratch_floats * sizeof(float)));

    int32_t *cap = malloc((size_t)B * sizeof *cap), *slot = malloc((size_t)B * sizeof *slot);
    int32_t *pos = malloc((size_t)B * sizeof *pos);
    float **tab = malloc((size_t)B * 2 * sizeof *tab);
    double **kc = malloc((size_t)B * sizeof *kc), **vc = malloc((size_t)B * sizeof *vc);
    for (int32_t b = 0; b < B; b++) {
        if (base > 0) {
            slot[b] = base + rng_int(r, base); /* cached rows before the first step */
            cap[b] = slot[b] + 3 + rng_int(r, 40);
        } else {
            cap[b] = 40 + rng_int(r, 61); /* 40 .. 100 */
            slot[b] = rng_int(r, 30);
        }
        pos[b] = slot[b] + rng_int(r, 1000);
        const size_t plane = (size_t)L.nkv * cap[b] * L.hd;
        float *hk = host_nan(plane), *hv = host_nan(plane);
        kc[b] = malloc(plane * sizeof(double));
        vc[b] = malloc(plane * sizeof(double));
        for (int32_t h = 0; h < L.nkv; h++)
            for (int32_t j = 0; j < slot[b]; j++)
                for (int32_t d = 0; d < L.hd; d++) {
                    const size_t o = ((size_t)h * cap[b] + j) * L.hd + d;
                    hk[o] = rng_sym(r, 1.0f);
                    hv[o] = rng_sym(r, 1.0f);
                }
        for (size_t i = 0; i < plane; i++) {
            kc[b][i] = hk[i];
            vc[b][i] = hv[i];
        }
        tab[2 * b] = dev_copy(hk, plane * sizeof(float));
        tab[2 * b + 1] = dev_copy(hv, plane * sizeof(float));
        free(hk), free(hv);
    }
    L.tab = dev_copy(tab, (size_t)B * 2 * sizeof *tab);
    L.meta = dev_alloc((size_t)KVL_CU_META_COUNT * B * sizeof(int32_t));
    float *x = malloc((size_t)B * L.dim * sizeof *x);
    fill_sym(r, x, (size_t)B * L.dim, 1.0f);
    double *xr = malloc((size_t)B * L.dim * sizeof *xr);
    for (size_t i = 0; i < (size_t)B * L.dim; i++)
        xr[i] = x[i];
    L.x = dev_copy(x, (size_t)B * L.dim * sizeof *x);

    cudaStream_t s;
    CU_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    CU_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    const cudaError_t ce = layer_enqueue(&L, L.Wqkv, L.bqkv, L.Wo, L.Wg, L.Wu, L.Wd, 0, 1, s);
    CU_OK(ce);
    CU_OK(cudaStreamEndCapture(s, &graph));
    CU_OK(cudaGraphInstantiate(&exec, graph, 0));

    int32_t *meta = malloc((size_t)KVL_CU_META_COUNT * B * sizeof *meta);
    float *got = malloc((size_t)B * L.dim * sizeof *got);
    for (int step = 0; step < 3 && exec; step++) {
        for (int32_t b = 0; b < B; b++)
            meta_fill(meta, B, b, 0, pos[b], slot[b], cap[b]);
        CU_OK(cudaMemcpyAsync(L.meta, meta, (size_t)KVL_CU_META_COUNT * B * sizeof *meta,
                              cudaMemcpyHostToDevice, s));
        CU_OK(cudaGraphLaunch(exec, s));
        CU_OK(cudaStreamSynchronize(s));
        ref_layer(&L, &w, inv, xr, kc, vc, pos, slot, cap);
        to_host(got, L.x, (size_t)B * L.dim * sizeof *got);
        char what[96];
        snprintf(what, sizeof what, "layer graph (pdl) B=%d base=%d replay %d: x", (int)B,
                 (int)base, step);
        check_close(what, got, xr, (size_t)B * L.dim, 5e-5);
        /* the new K / V rows of every sequence */
        for (int32_t b = 0; b < B; b++) {
            float kv[2][2 * 32];
            double kvr[2][2 * 32];
            for (int32_t h = 0; h < L.nkv; h++) {
                const size_t o = ((size_t)h * cap[b] + slot[b]) * L.hd;
                to_host(kv[0] + h * L.hd, tab[2 * b] + o, (size_t)L.hd * sizeof(float));
                to_host(kv[1] + h * L.hd, tab[2 * b + 1] + o, (size_t)L.hd * sizeof(float));
                for (int32_t d = 0; d < L.hd; d++) {
                    kvr[0][h * L.hd + d] = kc[b][o + d];
                    kvr[1][h * L.hd + d] = vc[b][o + d];
                }
            }
            snprintf(what, sizeof what, "layer graph B=%d replay %d: k/v row of seq %d",
                     (int)B, step, (int)b);
            check_close(what, kv[0], kvr[0], (size_t)L.nkv * L.hd, 5e-5);
            check_close(what, kv[1], kvr[1], (size_t)L.nkv * L.hd, 5e-5);
            slot[b]++;
            pos[b] += 1 + rng_int(r, 3);
        }
    }
    if (exec)
        cudaGraphExecDestroy(exec);
    if (graph)
        cudaGraphDestroy(graph);
    cudaStreamDestroy(s);
    for (int32_t b = 0; b < B; b++) {
        cudaFree(tab[2 * b]), cudaFree(tab[2 * b + 1]);
        free(kc[b]), free(vc[b]);
    }
    cudaFree(L.Wqkv), cudaFree(L.bqkv), cudaFree(L.Wo), cudaFree(L.Wg), cudaFree(L.Wu);
    cudaFree(L.Wd), cudaFree(L.n1), cudaFree(L.n2), cudaFree(L.inv_freq), cudaFree(L.qkv);
    cudaFree(L.att), cudaFree(L.h), cudaFree(L.scratch), cudaFree(L.tab), cudaFree(L.meta);
    cudaFree(L.x);
    free(w.Wqkv), free(bq), free(w.Wo), free(w.Wg), free(w.Wu), free(w.Wd), free(w.n1),
        free(w.n2);
    free(inv), free(cap), free(slot), free(pos), free(tab), free(kc), free(vc), free(x),
        free(xr), free(meta), free(got);
}

/* ------------------------------------------------------------------------ */
/* bad arguments                                                              */
/* ------------------------------------------------------------------------ */

static void test_bad_args(void)
{
    float *f = dev_alloc(1 << 20);
    int32_t *ip = dev_alloc(64);
    float **tab = dev_alloc(64);
    const kvl_dtype BF = KVL_DTYPE_BF16;
    const kvl_dtype bad = (kvl_dtype)99;
    /* matvec_fused */
    CU_BAD(kvl_cu_matvec_fused(NULL, f, BF, f + 1000, NULL, BF, 0, NULL, BF, NULL, 1, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_fused(f, NULL, BF, f + 1000, NULL, BF, 0, NULL, BF, NULL, 1, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_fused(f, f, BF, NULL, NULL, BF, 0, NULL, BF, NULL, 1, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_fused(f, f, BF, f + 1000, NULL, BF, 0, NULL, BF, NULL, 0, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_fused(f, f, BF, f + 1000, NULL, BF, 0, NULL, BF, NULL, 9, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_fused(f, f, BF, f + 1000, NULL, BF, 0, NULL, BF, NULL, 1, 0, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_fused(f, f, BF, f + 1000, NULL, BF, 0, NULL, BF, NULL, 1, 8, -1, 0, 0));
    CU_BAD(kvl_cu_matvec_fused(f, f, bad, f + 1000, NULL, BF, 0, NULL, BF, NULL, 1, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_fused(f, f, BF, f + 1000, f, bad, 0, NULL, BF, NULL, 1, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_fused(f, f, BF, f + 1000, f, BF, -1.0f, NULL, BF, NULL, 1, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_fused(f, f, BF, f + 1000, NULL, BF, 0, f, bad, NULL, 1, 8, 8, 0, 0));
    /* x overlapping y; residual partly overlapping y */
    CU_BAD(kvl_cu_matvec_fused(f, f, BF, f + 4, NULL, BF, 0, NULL, BF, NULL, 1, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_fused(f, f, BF, f + 1000, NULL, BF, 0, NULL, BF, f + 2, 1, 8, 8, 0, 0));
    /* swiglu */
    CU_BAD(kvl_cu_matvec_swiglu(f, NULL, f, BF, f + 1000, NULL, BF, 0, NULL, NULL, BF, 1, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_swiglu(f, f, NULL, BF, f + 1000, NULL, BF, 0, NULL, NULL, BF, 1, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_swiglu(f, f, f, BF, f + 1000, NULL, BF, 0, NULL, NULL, BF, 9, 8, 8, 1, 0));
    CU_BAD(kvl_cu_matvec_swiglu(f, f, f, BF, f + 1000, NULL, BF, 0, NULL, f, bad, 1, 8, 8, 0, 0));
    CU_BAD(kvl_cu_matvec_swiglu(f, f, f, BF, f + 2, NULL, BF, 0, NULL, NULL, BF, 1, 8, 8, 0, 0));
    /* qkv_finish */
    const kvl_rope_layout RH = KVL_ROPE_ROTATE_HALF;
    CU_BAD(kvl_cu_decode_qkv_finish(NULL, 256, NULL, NULL, BF, 0, f, 64, RH, tab, 0, 1, ip, 1, 2, 1, 64, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 255, NULL, NULL, BF, 0, f, 64, RH, tab, 0, 1, ip, 1, 2, 1, 64, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 256, NULL, NULL, BF, 0, NULL, 64, RH, tab, 0, 1, ip, 1, 2, 1, 64, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 256, NULL, NULL, BF, 0, f, 63, RH, tab, 0, 1, ip, 1, 2, 1, 64, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 256, NULL, NULL, BF, 0, f, 66, RH, tab, 0, 1, ip, 1, 2, 1, 64, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 256, NULL, NULL, BF, 0, f, 64, (kvl_rope_layout)7, tab, 0, 1, ip, 1, 2, 1, 64, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 256, NULL, NULL, BF, 0, f, 64, RH, NULL, 0, 1, ip, 1, 2, 1, 64, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 256, NULL, NULL, BF, 0, f, 64, RH, tab, 1, 1, ip, 1, 2, 1, 64, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 256, NULL, NULL, BF, 0, f, 64, RH, tab, 0, 1, NULL, 1, 2, 1, 64, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 256, NULL, NULL, BF, 0, f, 64, RH, tab, 0, 1, ip, 0, 2, 1, 64, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 256, NULL, NULL, BF, 0, f, 64, RH, tab, 0, 1, ip, 1, 3, 2, 64, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 1 << 16, NULL, NULL, BF, 0, f, 64, RH, tab, 0, 1, ip, 1, 2, 1, 512, 0, 0));
    CU_BAD(kvl_cu_decode_qkv_finish(f, 256, f, NULL, bad, 0, f, 64, RH, tab, 0, 1, ip, 1, 2, 1, 64, 0, 0));
    /* attention */
    const size_t ns = kvl_cu_attention_decode_batch_scratch(1, 2, 64, 64);
    CHECK(kvl_cu_attention_decode_batch_scratch(0, 2, 64, 64) == 0, "scratch of B = 0");
    CU_BAD(kvl_cu_attention_decode_batch(NULL, f, 128, tab, 0, 1, ip, 1, 64, 2, 1, 64, f, ns, 0, 0));
    CU_BAD(kvl_cu_attention_decode_batch(f, NULL, 128, tab, 0, 1, ip, 1, 64, 2, 1, 64, f, ns, 0, 0));
    CU_BAD(kvl_cu_attention_decode_batch(f, f, 127, tab, 0, 1, ip, 1, 64, 2, 1, 64, f, ns, 0, 0));
    CU_BAD(kvl_cu_attention_decode_batch(f, f, 128, NULL, 0, 1, ip, 1, 64, 2, 1, 64, f, ns, 0, 0));
    CU_BAD(kvl_cu_attention_decode_batch(f, f, 128, tab, 2, 1, ip, 1, 64, 2, 1, 64, f, ns, 0, 0));
    CU_BAD(kvl_cu_attention_decode_batch(f, f, 128, tab, 0, 1, NULL, 1, 64, 2, 1, 64, f, ns, 0, 0));
    CU_BAD(kvl_cu_attention_decode_batch(f, f, 128, tab, 0, 1, ip, 0, 64, 2, 1, 64, f, ns, 0, 0));
    CU_BAD(kvl_cu_attention_decode_batch(f, f, 128, tab, 0, 1, ip, 1, 0, 2, 1, 64, f, ns, 0, 0));
    CU_BAD(kvl_cu_attention_decode_batch(f, f, 128, tab, 0, 1, ip, 1, 64, 3, 2, 64, f, ns, 0, 0));
    CU_BAD(kvl_cu_attention_decode_batch(f, f, 1 << 16, tab, 0, 1, ip, 1, 64, 2, 1, 300, f, ns, 0, 0));
    CU_BAD(kvl_cu_attention_decode_batch(f, f, 128, tab, 0, 1, ip, 1, 64, 2, 1, 64, NULL, ns, 0, 0));
    CU_BAD(kvl_cu_attention_decode_batch(f, f, 128, tab, 0, 1, ip, 1, 64, 2, 1, 64, f, ns - 1, 0, 0));
    CU_OK(cudaDeviceSynchronize());
    CU_OK(cudaGetLastError());
    cudaFree(f), cudaFree(ip), cudaFree(tab);
}

/* ------------------------------------------------------------------------ */
/* timing (information only)                                                  */
/* ------------------------------------------------------------------------ */

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median of `reps` replays of `exec` (after 5 warm-up replays), x restored
 * before each replay (keeps values bounded, as in a step), in us. */
static double time_exec(cudaGraphExec_t exec, cudaStream_t s, float *dx, const float *hx,
                        size_t nx, cudaEvent_t e0, cudaEvent_t e1)
{
    enum { WARM = 5, REPS = 30 };
    float ms[REPS];
    for (int i = 0; i < WARM; i++)
        CU_OK(cudaGraphLaunch(exec, s));
    for (int i = 0; i < REPS; i++) {
        cudaMemcpyAsync(dx, hx, nx * sizeof *hx, cudaMemcpyHostToDevice, s);
        cudaEventRecord(e0, s);
        cudaGraphLaunch(exec, s);
        cudaEventRecord(e1, s);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms[i], e0, e1);
    }
    CU_OK(cudaGetLastError());
    qsort(ms, REPS, sizeof ms[0], cmp_float);
    return ms[REPS / 2] * 1e3;
}

/* Qwen2.5-0.5B: dim 896, 14 / 2 heads of 64, FFN 4864, BF16; 24 layers with
 * distinct weights (358 MB, far beyond L2) and caches, B sequences at
 * context ctx (cache capacity cap), the 24 layers' launches captured in one
 * graph with pdl = 0 and pdl = 1, and each part alone (24 in a graph);
 * median of 30 replays after 5 warm-up replays.  With attn_ctx: the
 * attention alone also at those contexts (meta rewritten between graphs). */
static void time_layers(rng_t *r, int32_t B, int32_t cap, int32_t ctx, int do_copy,
                        const int32_t *attn_ctx, int n_attn_ctx)
{
    enum { NL = 24 };
    const int32_t dim = 896, nh = 14, nkv = 2, hd = 64, ffn = 4864;
    const int32_t nqkv = (nh + 2 * nkv) * hd;
    layer_dev L = {.dim = dim, .nh = nh, .nkv = nkv, .hd = hd, .ffn = ffn, .B = B,
                   .cap_max = cap, .n_layers = NL};
    const size_t n_qkv = (size_t)nqkv * dim, n_o = (size_t)dim * dim;
    const size_t n_ff = (size_t)ffn * dim;
    const size_t per_layer = n_qkv + n_o + 3 * n_ff; /* bf16 elements */
    uint16_t *hw = malloc(per_layer * 2);
    for (size_t i = 0; i < per_layer; i++) {
        const uint64_t b = rng_next(r);
        hw[i] = (uint16_t)(((b & 1) << 15) | ((118 + (b >> 1) % 10) << 7) | ((b >> 8) & 0x7f));
    }
    uint16_t *wl[NL];
    for (int l = 0; l < NL; l++)
        wl[l] = dev_copy(hw, per_layer * 2);
    uint16_t hb[2048];
    for (int i = 0; i < 2048; i++)
        hb[i] = (uint16_t)(0x3c00 + (i % 64)); /* bf16 near 0.0078 .. 0.0117 */
    L.bqkv = dev_copy(hb, (size_t)nqkv * 2);
    for (int i = 0; i < 2048; i++)
        hb[i] = 0x3f80; /* 1.0 */
    L.n1 = dev_copy(hb, (size_t)dim * 2);
    L.n2 = L.n1;
    float inv[32];
    make_inv_freq(inv, hd, 1000000.0);
    L.inv_freq = dev_copy(inv, sizeof inv);
    const size_t nx = (size_t)B * dim;
    float *hx = malloc(nx * sizeof *hx);
    fill_sym(r, hx, nx, 1.0f);
    L.x = dev_copy(hx, nx * sizeof *hx);
    L.qkv = dev_nan((size_t)B * nqkv);
    L.att = dev_nan((size_t)B * nh * hd);
    L.h = dev_nan((size_t)B * ffn);
    L.scratch_floats = kvl_cu_attention_decode_batch_scratch(B, nh, cap, hd);
    L.scratch = dev_alloc(L.scratch_floats * sizeof(float));
    CU_OK(cudaMemset(L.scratch, 0, L.scratch_floats * sizeof(float)));
    /* distinct caches: B x 24 layers x (K, V) planes in one allocation */
    const size_t plane = (size_t)nkv * cap * hd, n_planes = (size_t)B * NL * 2;
    float *kvh = malloc(plane * sizeof *kvh);
    fill_sym(r, kvh, plane, 1.0f);
    float *kvall = dev_alloc(plane * n_planes * sizeof(float));
    CU_OK(cudaMemcpy(kvall, kvh, plane * sizeof *kvh, cudaMemcpyHostToDevice));
    for (size_t i = 1; i < n_planes; i++)
        CU_OK(cudaMemcpy(kvall + i * plane, kvall, plane * sizeof(float),
                         cudaMemcpyDeviceToDevice));
    float **tab = malloc(n_planes * sizeof *tab);
    for (size_t i = 0; i < n_planes; i++)
        tab[i] = kvall + i * plane;
    L.tab = dev_copy(tab, n_planes * sizeof *tab);
    int32_t *meta = malloc((size_t)KVL_CU_META_COUNT * B * sizeof *meta);
    for (int32_t b = 0; b < B; b++)
        meta_fill(meta, B, b, 0, ctx - 1, ctx - 1, cap);
    L.meta = dev_copy(meta, (size_t)KVL_CU_META_COUNT * B * sizeof *meta);

    cudaStream_t s;
    CU_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    static const char *const part[] = {"qkv matvec+norm+bias 1152x896", "qkv_finish",
                                       "attention", "o matvec+residual 896x896",
                                       "swiglu matvec+norm 2x4864x896",
                                       "down matvec+residual 896x4864"};
    const double part_bytes[] = {1152.0 * 896 * 2, 0, 2.0 * 2 * ctx * 64 * 4 * B,
                                 896.0 * 896 * 2, 2 * 4864.0 * 896 * 2, 4864.0 * 896 * 2};
    const int n_runs = 8 + n_attn_ctx;
    for (int run = 0; run < n_runs; run++) {
        const int pdl = run == 0 ? 0 : 1;
        const int only = run < 2 ? -1 : run < 8 ? run - 2 : 2;
        int32_t c = ctx;
        if (run >= 8) { /* the attention alone at another context */
            c = attn_ctx[run - 8];
            for (int32_t b = 0; b < B; b++)
                meta_fill(meta, B, b, 0, c - 1, c - 1, cap);
            CU_OK(cudaMemcpy(L.meta, meta, (size_t)KVL_CU_META_COUNT * B * sizeof *meta,
                             cudaMemcpyHostToDevice));
        }
        cudaGraph_t graph = NULL;
        cudaGraphExec_t exec = NULL;
        CU_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        cudaError_t ce = cudaSuccess;
        for (int l = 0; l < NL && ce == cudaSuccess; l++) {
            const uint16_t *w = wl[l];
            ce = layer_enqueue_only(&L, w, L.bqkv, w + n_qkv, w + n_qkv + n_o,
                                    w + n_qkv + n_o + n_ff, w + n_qkv + n_o + 2 * n_ff, l, pdl,
                                    s, only);
        }
        CU_OK(ce);
        CU_OK(cudaStreamEndCapture(s, &graph));
        CU_OK(cudaGraphInstantiate(&exec, graph, 0));
        if (!exec)
            continue;
        const double us = time_exec(exec, s, L.x, hx, nx, e0, e1) / NL;
        const double bytes = (double)per_layer * 2;
        if (run >= 8)
            printf("timing: B=%d   attention alone at ctx %5d, 24 in a graph, pdl=1: %6.2f us "
                   "each, %5.0f GB/s of K/V\n", (int)B, (int)c, us,
                   2.0 * 2 * c * 64 * 4 * B / (us * 1e-6) / 1e9);
        else if (only >= 0)
            printf("timing: B=%d   %-34s alone, 24 in a graph, pdl=1: %6.2f us each, %5.0f GB/s\n",
                   (int)B, part[only], us, part_bytes[only] / (us * 1e-6) / 1e9);
        else
            printf("timing: B=%d fused layer chain (Qwen2.5-0.5B, ctx %d, 24 distinct layers, "
                   "graph, pdl=%d): %.2f us/layer, %.0f GB/s of weights (%.2f MB/layer), %.0f us "
                   "per 24 layers\n", (int)B, (int)ctx, pdl, us, bytes / (us * 1e-6) / 1e9,
                   bytes / 1e6, us * NL);
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
    }
    /* The copy ceiling: a 1 GiB device-to-device copy, bytes read + written. */
    if (do_copy) {
        const size_t n = (size_t)1 << 30;
        void *a = dev_alloc(n), *b = dev_alloc(n);
        CU_OK(cudaMemset(a, 1, n));
        float ms[10];
        for (int i = 0; i < 12; i++) {
            cudaEventRecord(e0, s);
            cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, s);
            cudaEventRecord(e1, s);
            cudaEventSynchronize(e1);
            if (i >= 2)
                cudaEventElapsedTime(&ms[i - 2], e0, e1);
        }
        qsort(ms, 10, sizeof ms[0], cmp_float);
        printf("timing: device-to-device copy 1 GiB: %.0f GB/s (read + written); "
               "weight-read floor for one layer %.2f us\n",
               2.0 * n / (ms[5] * 1e-3) / 1e9,
               (double)per_layer * 2 / (2.0 * n / (ms[5] * 1e-3)) * 1e6);
        cudaFree(a), cudaFree(b);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaStreamDestroy(s);
    for (int l = 0; l < NL; l++)
        cudaFree(wl[l]);
    cudaFree(kvall);
    cudaFree(L.bqkv), cudaFree(L.n1), cudaFree(L.inv_freq), cudaFree(L.x), cudaFree(L.qkv);
    cudaFree(L.att), cudaFree(L.h), cudaFree(L.scratch), cudaFree(L.tab), cudaFree(L.meta);
    free(hw), free(hx), free(kvh), free(tab), free(meta);
}

/* matvec_fused alone at T = 1 and T = 8: the lm_head (151936 x 896, final
 * norm fused; 272 MB, beyond L2: one launch per replay) and the FFN shapes
 * 4864 x 896 (norm) / 896 x 4864 (residual in place), 8 distinct weight
 * copies per graph so that L2 does not hold them. */
static void time_matvec_t8(rng_t *r)
{
    enum { NW = 8 };
    const int32_t dim = 896, ffn = 4864, vocab = 151936;
    const size_t n_lm = (size_t)vocab * dim, n_ff = (size_t)ffn * dim;
    uint16_t *hw = malloc(n_lm * 2);
    for (size_t i = 0; i < n_lm; i++) {
        const uint64_t b = rng_next(r);
        hw[i] = (uint16_t)(((b & 1) << 15) | ((118 + (b >> 1) % 10) << 7) | ((b >> 8) & 0x7f));
    }
    void *lm = dev_copy(hw, n_lm * 2);
    void *ff[NW];
    for (int i = 0; i < NW; i++)
        ff[i] = dev_copy(hw + (size_t)i * 1000, n_ff * 2);
    uint16_t hn[896];
    for (int i = 0; i < 896; i++)
        hn[i] = 0x3f80;
    void *dn = dev_copy(hn, sizeof hn);
    float *hx = malloc((size_t)8 * ffn * sizeof *hx);
    fill_sym(r, hx, (size_t)8 * ffn, 1.0f);
    float *dx = dev_copy(hx, (size_t)8 * ffn * sizeof *hx);
    float *dy = dev_alloc((size_t)8 * vocab * sizeof(float));
    float *dres = dev_copy(hx, (size_t)8 * ffn * sizeof *hx);
    cudaStream_t s;
    CU_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    const kvl_dtype BF = KVL_DTYPE_BF16;
    for (int shape = 0; shape < 3; shape++)
        for (int T = 1; T <= 8; T += 7) {
            const int32_t M = shape == 0 ? vocab : shape == 1 ? ffn : dim;
            const int32_t K = shape == 2 ? ffn : dim;
            const int n = shape == 0 ? 1 : NW;
            cudaGraph_t graph = NULL;
            cudaGraphExec_t exec = NULL;
            CU_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
            cudaError_t ce = cudaSuccess;
            for (int i = 0; i < n && ce == cudaSuccess; i++)
                ce = kvl_cu_matvec_fused(shape == 2 ? dres : dy, shape == 0 ? lm : ff[i], BF, dx,
                                         shape == 2 ? NULL : dn, BF, 1e-6f, NULL, BF,
                                         shape == 2 ? dres : NULL, T, M, K, 1, s);
            CU_OK(ce);
            CU_OK(cudaStreamEndCapture(s, &graph));
            CU_OK(cudaGraphInstantiate(&exec, graph, 0));
            if (!exec)
                continue;
            const double us = time_exec(exec, s, dx, hx, (size_t)T * K, e0, e1) / n;
            printf("timing: matvec_fused T=%d %6dx%-4d %-9s (%d in a graph, pdl=1): %8.2f us "
                   "each, %5.0f GB/s of weights\n", T, (int)M, (int)K,
                   shape == 2 ? "residual" : "norm", n, us, (double)M * K * 2 / (us * 1e-6) / 1e9);
            cudaGraphExecDestroy(exec);
            cudaGraphDestroy(graph);
        }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaStreamDestroy(s);
    cudaFree(lm), cudaFree(dn), cudaFree(dx), cudaFree(dy), cudaFree(dres);
    for (int i = 0; i < NW; i++)
        cudaFree(ff[i]);
    free(hw), free(hx);
}

int main(void)
{
    const int skip = kvt_cuda_require();
    if (skip)
        return skip;
    rng_t r = {0xdec0de2026ull};
    test_bad_args();
    test_matvec(&r);
    test_qkv(&r);
    test_attention(&r);
    test_layer_graph(&r, 3, 0);
    test_layer_graph(&r, 11, 0);
    test_layer_graph(&r, 3, 700);
    CU_OK(cudaDeviceSynchronize());
    CU_OK(cudaGetLastError());
    cudaFree(g_scratch);
    if (getenv("KVL_TEST_NO_TIMING")) /* e.g. under compute-sanitizer */
        return kvt_finish();
    {
        const int32_t ctxs[] = {128, 1024, 1025, 2048, 4096};
        time_layers(&r, 1, 4096, 512, 1, ctxs, 5);
    }
    time_layers(&r, 32, 1024, 512, 0, NULL, 0);
    time_matvec_t8(&r);
    return kvt_finish();
}

#endif
