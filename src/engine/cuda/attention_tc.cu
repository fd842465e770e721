/*
 * kvl_cu_attention_prefill_tc: causal grouped-query prefill attention on
 * tensor cores, FlashAttention-2 style, over the fp32 layer cache
 * [n_kv_heads][cap][head_dim] (head_dim 64 or 128).
 *
 * One block of 4 warps takes 64 query rows of one head (16 rows per
 * warp) and walks the key tiles of 64 keys (32 at hd 128, fewer score
 * registers) up to its causal limit; tiles wholly past a warp's diagonal
 * are skipped by that warp:
 *   - K / V tile: cp.async copies the fp32 rows into a staging area (rows
 *     past the block's last visible key are zero-filled, so an unwritten,
 *     possibly NaN, cache row never enters the arithmetic); each thread
 *     converts the chunks it copied itself to the operand type (bf16 or
 *     f16) into a padded tile that ldmatrix reads without bank conflicts.
 *     The copy of tile j + 1 is in flight while tile j is computed.
 *   - S = Q K^T by mma.sync m16n8k16 (Q held in registers as A fragments
 *     for the whole block, K fragments by ldmatrix), fp32 accumulators.
 *   - online softmax in fp32 on the accumulator fragments (base-2: scores
 *     times scale * log2 e, exp2f), row max / sum across the quad of
 *     threads that share a row; the causal mask only on tiles that cross
 *     the warp's diagonal.
 *   - P rounded to the operand type in registers is directly the A operand
 *     of P V (the C fragment of two m16n8 tiles is the A fragment of one
 *     m16n8k16), V fragments by ldmatrix.trans; O accumulates in fp32 and
 *     is divided by the row sum at the end.
 * The T x n score matrix never leaves registers.  Blocks are numbered
 * head-fastest, so the heads sharing a kv head run together (their K / V
 * rows stay in L2), and the query tiles with the most keys start first.
 * Any T >= 1 and n_past >= 0 (the last query tile is padded with zero
 * queries whose results are dropped); k_cache / v_cache 16-byte aligned.
 */
#include "engine/cuda/kernels.h"

#include "engine/cuda/common.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#define TC_WARPS 4
#define TC_THREADS (TC_WARPS * KVL_CU_WARP)
#define TC_BQ (16 * TC_WARPS) /* query rows per block: 16 per warp */

/* Shared-memory layout for head dim HD: fp32 staging K[BK][HD], V[BK][HD],
 * then the converted tiles K[BK][LDS], V[BK][LDS] of 16-bit operands, rows
 * padded by 16 bytes so that the 8 row addresses of one ldmatrix phase
 * fall in 8 different 16-byte bank groups. */
template <int HD> struct tc_cfg {
    /* Keys per tile: 64, or 32 at hd 128 where S (BK / 2 fp32 per lane) and
     * O (HD / 2) share the register file with Q (HD / 4). */
    static constexpr int BK = HD > 64 ? 32 : 64;
    static constexpr int LDS = HD + 8;
    static constexpr size_t stage_bytes = (size_t)2 * BK * HD * sizeof(float);
    static constexpr size_t tile_bytes = (size_t)2 * BK * LDS * sizeof(uint16_t);
    static constexpr size_t smem = stage_bytes + tile_bytes;
    /* 16-byte chunks of one fp32 K (or V) tile each thread copies. */
    static constexpr int CHUNKS = BK * HD / 4 / TC_THREADS;
};

struct tc_args {
    float *out;
    const float *q, *k, *v;
    int32_t cap, n_past, T, n_heads, group, n_qtiles;
    float sl2; /* scale * log2(e): scores go to exp2 */
};

static __device__ __forceinline__ void cp_async16(void *dst, const void *src, int bytes)
{
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    /* src-size 0 writes 16 zero bytes and reads nothing. */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
                 "r"(bytes)
                 : "memory");
}

static __device__ __forceinline__ void cp_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

static __device__ __forceinline__ void cp_async_wait_all()
{
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

/* Two fp32 -> one 32-bit register of two 16-bit operands (lo = x). */
template <int OP> static __device__ __forceinline__ uint32_t pack2(float x, float y)
{
    uint32_t r;
    if (OP == KVL_DTYPE_BF16) {
        __nv_bfloat162 b = __floats2bfloat162_rn(x, y);
        memcpy(&r, &b, 4);
    } else {
        __half2 b = __floats2half2_rn(x, y);
        memcpy(&r, &b, 4);
    }
    return r;
}

static __device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void *p)
{
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

static __device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void *p)
{
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* c += a b, m16n8k16, fp32 accumulators. */
template <int OP>
static __device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4],
                                                uint32_t b0, uint32_t b1)
{
    if (OP == KVL_DTYPE_BF16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Starts the copy of keys k0 .. k0 + BK - 1 (K and V) into the staging
 * area; rows at or past kend become zeros. */
template <int HD>
static __device__ __forceinline__ void tc_issue_tile(float *stK, float *stV, const float *kb,
                                                     const float *vb, int32_t k0, int32_t kend)
{
    /* Chunk i of this thread: row row0 + i * RSTEP, column c4 * 4 (a warp
     * copies whole 256- or 512-byte rows: coalesced). */
    constexpr int RSTEP = TC_THREADS / (HD / 4);
    const int row0 = (int)threadIdx.x / (HD / 4), c4 = (int)threadIdx.x % (HD / 4);
    const float *ks = kb + c4 * 4, *vs = vb + c4 * 4;
#pragma unroll
    for (int i = 0; i < tc_cfg<HD>::CHUNKS; i++) {
        const int row = row0 + i * RSTEP;
        const int32_t j = k0 + row;
        const bool ok = j < kend;
        const int64_t off = (int64_t)(ok ? j : 0) * HD;
        cp_async16(stK + row * HD + c4 * 4, ks + off, ok ? 16 : 0);
        cp_async16(stV + row * HD + c4 * 4, vs + off, ok ? 16 : 0);
    }
    cp_async_commit();
}

/* Converts this thread's own staged chunks (the ones tc_issue_tile copied:
 * only cp.async.wait_group is needed before, no barrier) to the operand
 * type in the padded tiles. */
template <int HD, int OP>
static __device__ __forceinline__ void tc_convert_tile(uint16_t *sK, uint16_t *sV,
                                                       const float *stK, const float *stV)
{
    constexpr int LDS = tc_cfg<HD>::LDS;
    constexpr int RSTEP = TC_THREADS / (HD / 4);
    const int row0 = (int)threadIdx.x / (HD / 4), c4 = (int)threadIdx.x % (HD / 4);
#pragma unroll
    for (int i = 0; i < tc_cfg<HD>::CHUNKS; i++) {
        const int row = row0 + i * RSTEP;
        const float4 k = *(const float4 *)(stK + row * HD + c4 * 4);
        const float4 v = *(const float4 *)(stV + row * HD + c4 * 4);
        *(uint2 *)(sK + row * LDS + c4 * 4) = make_uint2(pack2<OP>(k.x, k.y), pack2<OP>(k.z, k.w));
        *(uint2 *)(sV + row * LDS + c4 * 4) = make_uint2(pack2<OP>(v.x, v.y), pack2<OP>(v.z, v.w));
    }
}

/* Blocks per SM the register allocation must allow (<= 168 registers a
 * thread): 3 blocks (12 warps) hide the load / convert / barrier phases
 * of one block behind the mma of the others; 3 x 50 KB of shared memory
 * fits too.  Both head dims fit without spills (-Xptxas -v).  Overridable
 * at compile time for measurements. */
#ifndef TC_MINB128
#define TC_MINB128 3
#endif
#ifndef TC_MINB64
#define TC_MINB64 3
#endif
template <int HD, int OP>
__global__ void __launch_bounds__(TC_THREADS, HD > 64 ? TC_MINB128 : TC_MINB64)
prefill_tc_kernel(tc_args a)
{
    constexpr int LDS = tc_cfg<HD>::LDS, BK = tc_cfg<HD>::BK;
    constexpr int KC = HD / 16; /* k-chunks of Q K^T */
    constexpr int SN = BK / 8;  /* n-blocks of S */
    constexpr int ON = HD / 8;  /* n-blocks of O */
    extern __shared__ __align__(16) unsigned char tc_smem[];
    float *stK = (float *)tc_smem, *stV = stK + BK * HD;
    uint16_t *sK = (uint16_t *)(tc_smem + tc_cfg<HD>::stage_bytes), *sV = sK + BK * LDS;

    const int lane = threadIdx.x % KVL_CU_WARP, warp = threadIdx.x / KVL_CU_WARP;
    const int r = lane / 4, c = (lane % 4) * 2; /* fragment row / column of this lane */
    const int32_t h = (int32_t)(blockIdx.x % (unsigned)a.n_heads);
    const int32_t qt = a.n_qtiles - 1 - (int32_t)(blockIdx.x / (unsigned)a.n_heads);
    const int32_t t0 = qt * TC_BQ;
    /* Keys any row of the block sees: 0 .. n_past + its last row. */
    const int32_t kend = a.n_past + min(a.T, t0 + TC_BQ);
    const int32_t n_tiles = (kend + BK - 1) / BK;
    const int64_t kv_off = (int64_t)(h / a.group) * a.cap * HD;
    const float *kb = a.k + kv_off, *vb = a.v + kv_off;

    tc_issue_tile<HD>(stK, stV, kb, vb, 0, kend);

    /* This warp's rows tw0 .. tw0 + 15; rows at or past T are padding
     * (zero queries, results dropped). */
    const int32_t tw0 = t0 + warp * 16;
    const bool live = tw0 < a.T;
    const int32_t lim_lo = a.n_past + tw0;                     /* every row sees keys <= */
    const int32_t lim_hi = a.n_past + min(tw0 + 15, a.T - 1);  /* no row sees keys >    */

    /* Q as A fragments, rounded to the operand type once. */
    uint32_t qf[KC][4];
#pragma unroll
    for (int kc = 0; kc < KC; kc++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int32_t t = tw0 + r + (i & 1) * 8;
            const int d = kc * 16 + c + (i >> 1) * 8;
            const float *qp = a.q + ((int64_t)t * a.n_heads + h) * HD + d;
            qf[kc][i] = t < a.T ? pack2<OP>(qp[0], qp[1]) : 0u;
        }

    float o[ON][4];
#pragma unroll
    for (int n = 0; n < ON; n++)
        o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    cp_async_wait_all();
    tc_convert_tile<HD, OP>(sK, sV, stK, stV);
    __syncthreads();
    if (n_tiles > 1)
        tc_issue_tile<HD>(stK, stV, kb, vb, BK, kend);

    for (int32_t jt = 0; jt < n_tiles; jt++) {
        const int32_t k0 = jt * BK;
        /* Warp-uniform: skip tiles wholly after the warp's diagonal. */
        if (live && k0 <= lim_hi) {
            float s[SN][4];
#pragma unroll
            for (int n = 0; n < SN; n++)
                s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
            for (int kc = 0; kc < KC; kc += 2)
#pragma unroll
                for (int n = 0; n < SN; n++) {
                    /* Matrices: keys n*8.., dims kc*16 + {0, 8, 16, 24}. */
                    uint32_t b[4];
                    ldsm_x4(b, sK + (n * 8 + (lane & 7)) * LDS + kc * 16 + (lane >> 3) * 8);
                    mma16816<OP>(s[n], qf[kc], b[0], b[1]);
                    mma16816<OP>(s[n], qf[kc + 1], b[2], b[3]);
                }
            if (k0 + BK - 1 > lim_lo) { /* the tile crosses the diagonal */
#pragma unroll
                for (int n = 0; n < SN; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int32_t j = k0 + n * 8 + c + (e & 1);
                        const int32_t t = tw0 + r + (e >> 1) * 8;
                        if (j > a.n_past + t)
                            s[n][e] = -INFINITY;
                    }
            }
            /* Online softmax; rows r (e = 0, 1) and r + 8 (e = 2, 3).  Key 0
             * is in tile 0 and visible to every row, so m is finite from the
             * first tile on and exp2(-inf - m) = 0 for masked keys. */
#pragma unroll
            for (int hf = 0; hf < 2; hf++) {
                float mx = -INFINITY;
#pragma unroll
                for (int n = 0; n < SN; n++)
                    mx = fmaxf(mx, fmaxf(s[n][2 * hf], s[n][2 * hf + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(KVL_CU_FULL_MASK, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(KVL_CU_FULL_MASK, mx, 2));
                const float m_new = fmaxf(m[hf], mx * a.sl2);
                const float corr = exp2f(m[hf] - m_new);
                m[hf] = m_new;
                float sum = 0.0f;
#pragma unroll
                for (int n = 0; n < SN; n++)
#pragma unroll
                    for (int e = 2 * hf; e < 2 * hf + 2; e++) {
                        const float p = exp2f(fmaf(s[n][e], a.sl2, -m_new));
                        s[n][e] = p;
                        sum += p;
                    }
                /* l stays this lane's partial sum; the quad adds them at the end. */
                l[hf] = l[hf] * corr + sum;
#pragma unroll
                for (int n = 0; n < ON; n++) {
                    o[n][2 * hf] *= corr;
                    o[n][2 * hf + 1] *= corr;
                }
            }
            /* O += P V: the C fragments of S n-blocks 2kc, 2kc+1 are the A
             * fragment of k-chunk kc. */
#pragma unroll
            for (int kc = 0; kc < BK / 16; kc++) {
                const uint32_t pa[4] = {pack2<OP>(s[2 * kc][0], s[2 * kc][1]),
                                        pack2<OP>(s[2 * kc][2], s[2 * kc][3]),
                                        pack2<OP>(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                                        pack2<OP>(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
                for (int n = 0; n < ON; n += 2) {
                    /* Matrices: keys kc*16 + {0, 8}, dims n*8 + {0, 8}. */
                    uint32_t b[4];
                    ldsm_x4_t(b, sV + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS +
                                     n * 8 + (lane >> 4) * 8);
                    mma16816<OP>(o[n], pa, b[0], b[1]);
                    mma16816<OP>(o[n + 1], pa, b[2], b[3]);
                }
            }
        }
        if (jt + 1 < n_tiles) {
            cp_async_wait_all(); /* this thread's chunks of tile jt + 1 */
            __syncthreads();     /* every warp is done reading tile jt */
            tc_convert_tile<HD, OP>(sK, sV, stK, stV);
            __syncthreads();     /* tile jt + 1 visible; staging reads complete */
            if (jt + 2 < n_tiles)
                tc_issue_tile<HD>(stK, stV, kb, vb, (jt + 2) * BK, kend);
        }
    }

    if (!live)
        return;
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        float sum = l[hf];
        sum += __shfl_xor_sync(KVL_CU_FULL_MASK, sum, 1);
        sum += __shfl_xor_sync(KVL_CU_FULL_MASK, sum, 2);
        const int32_t t = tw0 + r + hf * 8;
        if (t >= a.T)
            continue;
        const float inv = 1.0f / sum;
        float *orow = a.out + ((int64_t)t * a.n_heads + h) * HD + c;
#pragma unroll
        for (int n = 0; n < ON; n++) {
            orow[n * 8] = o[n][2 * hf] * inv;
            orow[n * 8 + 1] = o[n][2 * hf + 1] * inv;
        }
    }
}

template <int HD, int OP>
static cudaError_t launch_tc(const tc_args &a, unsigned blocks, cudaStream_t stream)
{
    const size_t smem = tc_cfg<HD>::smem;
    /* Above the 48 KB default dynamic limit: 50 KB at hd 64, 49 KB at 128. */
    cudaError_t e = cudaFuncSetAttribute(prefill_tc_kernel<HD, OP>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess)
        return e;
    prefill_tc_kernel<HD, OP><<<blocks, TC_THREADS, smem, stream>>>(a);
    return cudaGetLastError();
}

extern "C" cudaError_t kvl_cu_attention_prefill_tc(float *out, const float *q,
                                                   const float *k_cache, const float *v_cache,
                                                   int32_t cap, int32_t n_past, int32_t T,
                                                   int32_t n_heads, int32_t n_kv_heads,
                                                   int32_t head_dim, kvl_dtype op,
                                                   cudaStream_t stream)
{
    if (!out || !q || !k_cache || !v_cache || cap <= 0 || n_past < 0 || T <= 0 ||
        n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || head_dim <= 0 ||
        (int64_t)n_past + T > cap || (op != KVL_DTYPE_BF16 && op != KVL_DTYPE_F16))
        return cudaErrorInvalidValue;
    if (head_dim != 64 && head_dim != 128)
        return cudaErrorNotSupported;
    /* cp.async moves 16-byte chunks of the cache rows. */
    if (((uintptr_t)k_cache | (uintptr_t)v_cache) % 16 != 0)
        return cudaErrorNotSupported;
    const int32_t n_qtiles = (T + TC_BQ - 1) / TC_BQ;
    const int64_t blocks = (int64_t)n_qtiles * n_heads;
    if (blocks > 0x7fffffff)
        return cudaErrorInvalidValue;
    const tc_args a = {out, q, k_cache, v_cache, cap, n_past, T, n_heads,
                       n_heads / n_kv_heads, n_qtiles,
                       (float)(1.4426950408889634 / sqrt((double)head_dim))};
    if (head_dim == 64)
        return op == KVL_DTYPE_BF16 ? launch_tc<64, KVL_DTYPE_BF16>(a, (unsigned)blocks, stream)
                                    : launch_tc<64, KVL_DTYPE_F16>(a, (unsigned)blocks, stream);
    return op == KVL_DTYPE_BF16 ? launch_tc<128, KVL_DTYPE_BF16>(a, (unsigned)blocks, stream)
                                : launch_tc<128, KVL_DTYPE_F16>(a, (unsigned)blocks, stream);
}
