/*
 * kvl_cu_attention: causal grouped-query attention over the fp32 layer
 * cache [n_kv_heads][cap][head_dim], head_dim <= 256.
 *
 * T == 1 (decode), flash-decoding: the n_ctx = n_past + 1 keys are split
 * into at most 128 chunks of 32..256 keys; block (chunk, kv head) serves
 * the (up to 8) query heads of that kv head, so each K / V row is read
 * once, and writes per query head the chunk's max m, sum of exp l and
 * unnormalised output o[head_dim] to scratch; a combine kernel rescales
 * the chunks per head.  T > 1 (prefill): flash-attention-style
 * online softmax over 16-key tiles for 16-query tiles held in shared
 * memory, causal mask per (query, key); the T x n score matrix is never
 * materialised.  Arithmetic follows the CPU (fp32 dot, * scale, expf).
 */
#include "engine/cuda/kernels.h"

#include "engine/cuda/common.cuh"

#include <math.h>

#define DEC_THREADS 256
#define DEC_WARPS (DEC_THREADS / KVL_CU_WARP)
#define DEC_MAX_CHUNK 256
#define DEC_MIN_CHUNK 32
#define DEC_KEYS_PER_WARP 4 /* keys a warp loads at once (loads in flight) */
#define DEC_SPLITS 128
/* Most chunks the combine pass takes (its weights sit in shared memory,
 * under the 48 KB default): n_ctx up to 256 * 12000 = 3 072 000. */
#define DEC_MAX_SPLITS 12000
#define DEC_V_BATCH 8 /* value rows a thread loads at once */
#define DEC_MAX_G 8 /* query heads per block (one per warp for the softmax) */

#define PF_THREADS 128
#define PF_WARPS (PF_THREADS / KVL_CU_WARP)
#define PF_BQ 16 /* query rows per block */
#define PF_BK 16 /* keys per tile */
#define PF_ROWS_PER_WARP (PF_BQ / PF_WARPS)

/* Keys per decode block: the smallest power of two in 32 .. 256 that
 * keeps the number of chunks at most DEC_SPLITS (128: with the kv heads,
 * enough blocks to fill 132 SMs; few enough for a cheap combine).  A pure
 * function of n_ctx, so that kvl_cu_attention_scratch and the launch
 * agree. */
static int32_t decode_chunk(int32_t n_ctx)
{
    int32_t chunk = DEC_MIN_CHUNK;
    while (chunk < DEC_MAX_CHUNK && (n_ctx + chunk - 1) / chunk > DEC_SPLITS)
        chunk *= 2;
    return chunk;
}

extern "C" size_t kvl_cu_attention_scratch(int32_t T, int32_t n_heads,
                                           int32_t n_ctx, int32_t head_dim)
{
    if (T != 1 || n_heads <= 0 || n_ctx <= 0 || head_dim <= 0)
        return 0;
    const int32_t chunk = decode_chunk(n_ctx);
    const size_t n_split = (size_t)((n_ctx + chunk - 1) / chunk);
    return (size_t)n_heads * n_split * (size_t)(head_dim + 2);
}

template <int NI>
__global__ void __launch_bounds__(DEC_THREADS)
decode_partial_kernel(float *scratch, const float *q, const float *k_cache,
                      const float *v_cache, int32_t cap, int32_t n_ctx,
                      int32_t group, int32_t hd, int32_t chunk, float scale)
{
    /* Fewer keys in flight at head_dim > 128 keeps kr[][] in registers. */
    constexpr int KPW = NI >= 8 ? 2 : DEC_KEYS_PER_WARP;
    __shared__ float sq[DEC_MAX_G][KVL_CU_MAX_HEAD_DIM];
    __shared__ float sp[DEC_MAX_G][DEC_MAX_CHUNK];
    __shared__ float so[DEC_MAX_G][DEC_THREADS];
    __shared__ float sm[DEC_MAX_G], sl[DEC_MAX_G];
    const int lane = threadIdx.x % KVL_CU_WARP, warp = threadIdx.x / KVL_CU_WARP;
    const int32_t split = blockIdx.x, n_split = gridDim.x;
    const int32_t per_kv = (group + DEC_MAX_G - 1) / DEC_MAX_G;
    const int32_t kvh = blockIdx.y / per_kv;
    const int32_t h0 = kvh * group + (int32_t)(blockIdx.y % per_kv) * DEC_MAX_G;
    const int32_t G = min(DEC_MAX_G, (kvh + 1) * group - h0);
    const int32_t j0 = split * chunk;
    const int32_t nk = min(n_ctx, j0 + chunk) - j0;
    const int64_t kv_off = (int64_t)kvh * cap * hd;
    const float *kb = k_cache + kv_off + (int64_t)j0 * hd;
    const float *vb = v_cache + kv_off + (int64_t)j0 * hd;

    for (int32_t i = threadIdx.x; i < G * hd; i += blockDim.x)
        sq[i / hd][i % hd] = q[(int64_t)h0 * hd + i];
    __syncthreads();

    /* Scores: a warp loads KPW key rows into registers (all
     * loads in flight at once), then dots them with each head's query. */
    for (int32_t jb = warp * KPW; jb < nk;
         jb += DEC_WARPS * KPW) {
        float kr[KPW][NI];
#pragma unroll
        for (int u = 0; u < KPW; u++)
#pragma unroll
            for (int i = 0; i < NI; i++) {
                const int32_t d = lane + KVL_CU_WARP * i;
                kr[u][i] = (jb + u < nk && d < hd)
                               ? __ldg(kb + (int64_t)(jb + u) * hd + d)
                               : 0.0f;
            }
        for (int32_t gi = 0; gi < G; gi++) {
            float s[KPW];
#pragma unroll
            for (int u = 0; u < KPW; u++)
                s[u] = 0.0f;
#pragma unroll
            for (int i = 0; i < NI; i++) {
                const int32_t d = lane + KVL_CU_WARP * i;
                const float qd = d < hd ? sq[gi][d] : 0.0f;
#pragma unroll
                for (int u = 0; u < KPW; u++)
                    s[u] = fmaf(qd, kr[u][i], s[u]);
            }
#pragma unroll
            for (int u = 0; u < KPW; u++) {
                const float dot = kvl_cu_warp_sum(s[u]);
                if (lane == 0 && jb + u < nk)
                    sp[gi][jb + u] = dot * scale;
            }
        }
    }
    __syncthreads();

    /* Softmax statistics: warp gi takes head gi (DEC_MAX_G == DEC_WARPS). */
    if (warp < G) {
        float m = -INFINITY;
        for (int32_t j = lane; j < nk; j += KVL_CU_WARP)
            m = fmaxf(m, sp[warp][j]);
        m = kvl_cu_warp_max(m);
        float l = 0.0f;
        for (int32_t j = lane; j < nk; j += KVL_CU_WARP) {
            const float p = expf(sp[warp][j] - m);
            sp[warp][j] = p;
            l += p;
        }
        l = kvl_cu_warp_sum(l);
        if (lane == 0) {
            sm[warp] = m;
            sl[warp] = l;
        }
    }
    __syncthreads();

    /* o[gi][d] = sum_j p[gi][j] v[j][d]: n_groups groups of hd threads,
     * group g takes keys g, g + n_groups, ...; consecutive threads read
     * consecutive dims of one value row (coalesced), each value once for
     * all G heads. */
    const int32_t n_groups = DEC_THREADS / hd;
    if ((int32_t)threadIdx.x < n_groups * hd) {
        const int32_t g = threadIdx.x / hd, d = threadIdx.x % hd;
        float acc[DEC_MAX_G];
#pragma unroll
        for (int gi = 0; gi < DEC_MAX_G; gi++)
            acc[gi] = 0.0f;
        /* DEC_V_BATCH value loads in flight before their use. */
        for (int32_t jb = g; jb < nk; jb += n_groups * DEC_V_BATCH) {
            float v[DEC_V_BATCH];
#pragma unroll
            for (int u = 0; u < DEC_V_BATCH; u++) {
                const int32_t j = jb + u * n_groups;
                v[u] = j < nk ? __ldg(vb + (int64_t)j * hd + d) : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < DEC_V_BATCH; u++) {
                const int32_t j = jb + u * n_groups;
                if (j >= nk)
                    break;
#pragma unroll
                for (int gi = 0; gi < DEC_MAX_G; gi++)
                    if (gi < G)
                        acc[gi] = fmaf(sp[gi][j], v[u], acc[gi]);
            }
        }
#pragma unroll
        for (int gi = 0; gi < DEC_MAX_G; gi++)
            if (gi < G)
                so[gi][threadIdx.x] = acc[gi];
    }
    __syncthreads();
    for (int32_t i = threadIdx.x; i < G * hd; i += blockDim.x) {
        const int32_t gi = i / hd, d = i % hd;
        float o = 0.0f;
        for (int32_t g = 0; g < n_groups; g++)
            o += so[gi][g * hd + d];
        scratch[((int64_t)(h0 + gi) * n_split + split) * (hd + 2) + 2 + d] = o;
    }
    if ((int32_t)threadIdx.x < G) {
        float *part = scratch + ((int64_t)(h0 + threadIdx.x) * n_split + split) * (hd + 2);
        part[0] = sm[threadIdx.x];
        part[1] = sl[threadIdx.x];
    }
}

/* out[h][d] = sum_s o_s[d] w_s / sum_s l_s w_s, w_s = e^(m_s - M), M the
 * largest m_s: one block per query head, the weights w_s computed once
 * into shared memory (n_split floats, dynamic). */
#define COMBINE_THREADS 128
/* sw[] length: n_split rounded up to 8 floats. */
static __host__ __device__ __forceinline__ int32_t combine_pad(int32_t n_split)
{
    return (n_split + 7) / 8 * 8;
}

__global__ void __launch_bounds__(COMBINE_THREADS)
decode_combine_kernel(float *out, const float *scratch, int32_t n_split, int32_t hd)
{
    extern __shared__ float sw[];
    __shared__ float red[COMBINE_THREADS / KVL_CU_WARP];
    const int lane = threadIdx.x % KVL_CU_WARP, warp = threadIdx.x / KVL_CU_WARP;
    const int32_t h = blockIdx.x;
    const int64_t stride = hd + 2;
    const float *base = scratch + (int64_t)h * n_split * stride;

    float M = -INFINITY;
    for (int32_t s = threadIdx.x; s < n_split; s += blockDim.x)
        M = fmaxf(M, base[s * stride]);
    M = kvl_cu_warp_max(M);
    if (lane == 0)
        red[warp] = M;
    __syncthreads();
    M = red[0];
    for (int w = 1; w < COMBINE_THREADS / KVL_CU_WARP; w++)
        M = fmaxf(M, red[w]);
    __syncthreads(); /* red is reused below */

    float L = 0.0f;
    for (int32_t s = threadIdx.x; s < combine_pad(n_split); s += blockDim.x) {
        /* Zero pad: the unrolled loop below may read sw[] in vectors. */
        const float w = s < n_split ? expf(base[s * stride] - M) : 0.0f;
        sw[s] = w;
        if (s < n_split)
            L = fmaf(base[s * stride + 1], w, L);
    }
    L = kvl_cu_warp_sum(L);
    if (lane == 0)
        red[warp] = L;
    __syncthreads(); /* publishes sw[] too */
    L = 0.0f;
    for (int w = 0; w < COMBINE_THREADS / KVL_CU_WARP; w++)
        L += red[w];
    const float inv = 1.0f / L;
    for (int32_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0.0f;
#pragma unroll 8
        for (int32_t s = 0; s < n_split; s++)
            o = fmaf(base[s * stride + 2 + d], sw[s], o);
        out[(int64_t)h * hd + d] = o * inv;
    }
}

/* ------------------------------------------------------------------------ */
/* prefill: T > 1                                                             */
/* ------------------------------------------------------------------------ */

struct pf_args {
    float *out;
    const float *q, *k_cache, *v_cache;
    int32_t cap, n_past, T, n_heads, group, hd;
    float scale;
};

/* Shared memory: Q[BQ][hd+1], K[BK][hd+1] (padded: the score loop reads 16
 * rows at one d), V[BK][hd], S[BQ][BK]. */
static size_t pf_smem_bytes(int32_t hd)
{
    return sizeof(float) * ((size_t)PF_BQ * (hd + 1) + (size_t)PF_BK * (hd + 1) +
                            (size_t)PF_BK * hd + (size_t)PF_BQ * PF_BK);
}

/* Loads keys / values kb .. kb + BK - 1 of the tile, zero at j >= kend (so
 * that p = 0 never meets an unwritten, possibly NaN, cache row). */
static __device__ void pf_load_kv(float *sK, float *sV, const float *kbase,
                                  const float *vbase, int32_t kb, int32_t kend,
                                  int32_t hd)
{
    for (int32_t i = threadIdx.x; i < PF_BK * hd; i += blockDim.x) {
        const int32_t kj = i / hd, d = i % hd, j = kb + kj;
        const bool ok = j < kend;
        sK[kj * (hd + 1) + d] = ok ? __ldg(kbase + (int64_t)j * hd + d) : 0.0f;
        sV[kj * hd + d] = ok ? __ldg(vbase + (int64_t)j * hd + d) : 0.0f;
    }
}

/* S[qi][kj] = q . k * scale, or -inf where the causal mask (or the end of
 * the query rows) hides the key. */
static __device__ void pf_scores(float *sS, const float *sQ, const float *sK,
                                 const pf_args &a, int32_t t0, int32_t kb)
{
    for (int32_t p = threadIdx.x; p < PF_BQ * PF_BK; p += blockDim.x) {
        const int32_t qi = p / PF_BK, kj = p % PF_BK;
        const int32_t t = t0 + qi, j = kb + kj;
        float s = -INFINITY;
        if (t < a.T && j <= a.n_past + t) {
            const float *qr = sQ + qi * (a.hd + 1), *kr = sK + kj * (a.hd + 1);
            float dot = 0.0f;
            for (int32_t d = 0; d < a.hd; d++)
                dot = fmaf(qr[d], kr[d], dot);
            s = dot * a.scale;
        }
        sS[qi * PF_BK + kj] = s;
    }
}

template <int NI>
__global__ void __launch_bounds__(PF_THREADS) prefill_kernel(pf_args a)
{
    extern __shared__ float smem[];
    const int32_t hd = a.hd;
    float *sQ = smem, *sK = sQ + PF_BQ * (hd + 1), *sV = sK + PF_BK * (hd + 1);
    float *sS = sV + PF_BK * hd;
    const int lane = threadIdx.x % KVL_CU_WARP, warp = threadIdx.x / KVL_CU_WARP;
    const int32_t t0 = blockIdx.x * PF_BQ, h = blockIdx.y;
    const int64_t kv_off = (int64_t)(h / a.group) * a.cap * hd;
    /* Keys any row of this block sees: 0 .. n_past + last row. */
    const int32_t kend = a.n_past + min(a.T, t0 + PF_BQ);

    for (int32_t i = threadIdx.x; i < PF_BQ * hd; i += blockDim.x) {
        const int32_t qi = i / hd, d = i % hd, t = t0 + qi;
        sQ[qi * (hd + 1) + d] =
            t < a.T ? a.q[((int64_t)t * a.n_heads + h) * hd + d] : 0.0f;
    }
    float m[PF_ROWS_PER_WARP], l[PF_ROWS_PER_WARP], o[PF_ROWS_PER_WARP][NI];
#pragma unroll
    for (int r = 0; r < PF_ROWS_PER_WARP; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < NI; i++)
            o[r][i] = 0.0f;
    }
    for (int32_t kb = 0; kb < kend; kb += PF_BK) {
        __syncthreads(); /* previous tile fully consumed (and sQ written) */
        pf_load_kv(sK, sV, a.k_cache + kv_off, a.v_cache + kv_off, kb, kend, hd);
        __syncthreads();
        pf_scores(sS, sQ, sK, a, t0, kb);
        __syncthreads();
#pragma unroll
        for (int r = 0; r < PF_ROWS_PER_WARP; r++) {
            const int32_t qi = warp * PF_ROWS_PER_WARP + r;
            if (t0 + qi >= a.T) /* warp-uniform */
                continue;
            /* Online softmax: key 0 is in the first tile and visible to
             * every row, so m is finite from the first tile on. */
            const float s = lane < PF_BK ? sS[qi * PF_BK + lane] : -INFINITY;
            const float m_new = fmaxf(m[r], kvl_cu_warp_max(s));
            const float corr = expf(m[r] - m_new);
            const float p = lane < PF_BK ? expf(s - m_new) : 0.0f;
            l[r] = l[r] * corr + kvl_cu_warp_sum(p);
            m[r] = m_new;
            if (lane < PF_BK)
                sS[qi * PF_BK + lane] = p;
            __syncwarp();
#pragma unroll
            for (int i = 0; i < NI; i++)
                o[r][i] *= corr;
            for (int32_t j = 0; j < PF_BK; j++) {
                const float pj = sS[qi * PF_BK + j];
#pragma unroll
                for (int i = 0; i < NI; i++) {
                    const int32_t d = lane + KVL_CU_WARP * i;
                    if (d < hd)
                        o[r][i] = fmaf(pj, sV[j * hd + d], o[r][i]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < PF_ROWS_PER_WARP; r++) {
        const int32_t t = t0 + warp * PF_ROWS_PER_WARP + r;
        if (t >= a.T)
            continue;
        float *orow = a.out + ((int64_t)t * a.n_heads + h) * hd;
        const float inv = 1.0f / l[r];
#pragma unroll
        for (int i = 0; i < NI; i++) {
            const int32_t d = lane + KVL_CU_WARP * i;
            if (d < hd)
                orow[d] = o[r][i] * inv;
        }
    }
}

template <int NI>
static cudaError_t launch_prefill(const pf_args &a, cudaStream_t stream)
{
    const size_t smem = pf_smem_bytes(a.hd);
    if (smem > 48 * 1024) {
        /* Above the default dynamic limit (head_dim > ~190): opt in. */
        cudaError_t e = cudaFuncSetAttribute(
            prefill_kernel<NI>, cudaFuncAttributeMaxDynamicSharedMemorySize,
            (int)smem);
        if (e != cudaSuccess)
            return e;
    }
    const dim3 grid((unsigned)((a.T + PF_BQ - 1) / PF_BQ), (unsigned)a.n_heads);
    prefill_kernel<NI><<<grid, PF_THREADS, smem, stream>>>(a);
    return cudaGetLastError();
}

template <int NI>
static void launch_decode_ni(dim3 grid, float *scratch, const float *q,
                             const float *k_cache, const float *v_cache,
                             int32_t cap, int32_t n_ctx, int32_t group, int32_t hd,
                             int32_t chunk, float scale, cudaStream_t stream)
{
    decode_partial_kernel<NI><<<grid, DEC_THREADS, 0, stream>>>(
        scratch, q, k_cache, v_cache, cap, n_ctx, group, hd, chunk, scale);
}

/* Partial pass over (chunk, kv head x batch of <= 8 query heads), then the
 * combine pass per query head. */
static cudaError_t launch_decode(float *out, const float *q, const float *k_cache,
                                 const float *v_cache, int32_t cap, int32_t n_ctx,
                                 int32_t n_heads,
                                 int32_t n_kv_heads, int32_t hd, float *scratch,
                                 float scale, cudaStream_t stream)
{
    const int32_t group = n_heads / n_kv_heads;
    const int32_t chunk = decode_chunk(n_ctx);
    const int32_t per_kv = (group + DEC_MAX_G - 1) / DEC_MAX_G;
    const dim3 grid((unsigned)((n_ctx + chunk - 1) / chunk),
                    (unsigned)(n_kv_heads * per_kv));
    if (hd <= 32)
        launch_decode_ni<1>(grid, scratch, q, k_cache, v_cache, cap, n_ctx, group, hd, chunk, scale, stream);
    else if (hd <= 64)
        launch_decode_ni<2>(grid, scratch, q, k_cache, v_cache, cap, n_ctx, group, hd, chunk, scale, stream);
    else if (hd <= 128)
        launch_decode_ni<4>(grid, scratch, q, k_cache, v_cache, cap, n_ctx, group, hd, chunk, scale, stream);
    else
        launch_decode_ni<8>(grid, scratch, q, k_cache, v_cache, cap, n_ctx, group, hd, chunk, scale, stream);
    decode_combine_kernel<<<(unsigned)n_heads, COMBINE_THREADS,
                            combine_pad((int32_t)grid.x) * sizeof(float), stream>>>(out, scratch,
                                                              (int32_t)grid.x, hd);
    return cudaGetLastError();
}

static bool attention_args_ok(const float *out, const float *q,
                              const float *k_cache, const float *v_cache,
                              int32_t cap, int32_t n_past, int32_t T,
                              int32_t n_heads, int32_t n_kv_heads,
                              int32_t head_dim)
{
    return out && q && k_cache && v_cache && cap > 0 && n_past >= 0 && T > 0 &&
           n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0 &&
           head_dim > 0 && head_dim <= KVL_CU_MAX_HEAD_DIM &&
           (int64_t)n_past + T <= cap;
}

extern "C" cudaError_t kvl_cu_attention(float *out, const float *q,
                                        const float *k_cache,
                                        const float *v_cache, int32_t cap,
                                        int32_t n_past, int32_t T,
                                        int32_t n_heads, int32_t n_kv_heads,
                                        int32_t head_dim, float *scratch,
                                        size_t scratch_floats,
                                        cudaStream_t stream)
{
    if (!attention_args_ok(out, q, k_cache, v_cache, cap, n_past, T, n_heads,
                           n_kv_heads, head_dim))
        return cudaErrorInvalidValue;
    const int32_t n_ctx = n_past + T;
    if (T == 1 && (n_ctx + DEC_MAX_CHUNK - 1) / DEC_MAX_CHUNK > DEC_MAX_SPLITS)
        return cudaErrorInvalidValue; /* beyond the combine pass's weights */
    const size_t need = kvl_cu_attention_scratch(T, n_heads, n_ctx, head_dim);
    if (need > 0 && (!scratch || scratch_floats < need))
        return cudaErrorInvalidValue;
    const int32_t group = n_heads / n_kv_heads;
    const float scale = 1.0f / sqrtf((float)head_dim);
    if (T == 1)
        return launch_decode(out, q, k_cache, v_cache, cap, n_ctx, n_heads,
                             n_kv_heads, head_dim, scratch, scale, stream);
    const pf_args a = {out, q, k_cache, v_cache, cap, n_past, T, n_heads,
                       group, head_dim, scale};
    if (head_dim <= 32)
        return launch_prefill<1>(a, stream);
    if (head_dim <= 64)
        return launch_prefill<2>(a, stream);
    if (head_dim <= 128)
        return launch_prefill<4>(a, stream);
    return launch_prefill<8>(a, stream);
}
