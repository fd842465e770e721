/*
 * The decode step of the CUDA backend: one token for each of B sequences
 * (B = 1 for a single session), each with its own cache.
 *
 * Why a separate path from the prefill in cuda_engine.c: a decode step of a
 * small model is a chain of small memory-bound kernels, so what costs is
 * the number of kernels and the gaps between them, not arithmetic.  Per
 * layer it runs six: q/k/v product (attention norm fused, the three
 * weights joined) -> q/k norm + RoPE + cache store -> attention (all
 * sequences, flash-decoding) -> output product (+ residual) -> gate/up
 * product (FFN norm and SwiGLU fused) -> down product (+ residual); then the
 * lm_head (final norm fused) and the argmax.  The whole chain is captured
 * once per batch size as a CUDA graph whose kernels are programmatic
 * dependent launches (each starts loading its weights while the previous
 * one drains); everything that changes between steps (tokens, positions,
 * cache slots, capacities and the caches' addresses) is read from one
 * small device array written before each replay, so caches may grow and
 * sessions change without a new capture.  Only a larger attention split
 * (a cache past the capacity the scratch was sized for) re-captures.
 *
 * Batches of more than KVL_CU_MATVEC_MAX_T sequences of a BF16 model run
 * their products through cuBLAS instead (tensor cores, the weights read
 * once for all rows; the residual adds folded into the GEMMs as beta = 1),
 * with separate norm, conversion and SwiGLU kernels: at that size the
 * step is bound by the weight reads, not by the number of kernels.
 *
 * KVL_CUDA_GRAPHS=0 runs the same launches without a graph,
 * KVL_CUDA_PDL=0 without programmatic dependent launches (comparisons).
 */
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_internal.h"
#include "engine/cuda/kernels.h"

/* In the launch sequence: stop at the first failed launch. */
#define TRY(call)                                                            \
    do {                                                                     \
        cudaError_t e_ = (call);                                             \
        if (e_ != cudaSuccess)                                               \
            return e_;                                                       \
    } while (0)

struct kvl_cuda_step {
    const kvl_cuda_model *m;
    cudaStream_t stream;
    int own_stream;
    int32_t max_b;
    int32_t qkv_width;              /* nh*hd + 2*nkv*hd                     */
    float *x, *qkv, *att, *ffn, *logits; /* [max_b][width]                  */
    int32_t *d_next, *h_next;       /* [max_b] argmax                       */
    float *h_logits;                /* pinned [max_b][vocab], made when asked:
                                       a copy to pageable memory runs at a
                                       fraction of the pinned rate          */
    /* Per-step arguments: meta int32 [KVL_CU_META_COUNT][B] at offset 0,
     * the cache table (device pointers [B][n_layers][2]) at kv_off. */
    char *d_args, *h_args;
    size_t kv_off, args_bytes;
    /* the cuBLAS path (max_b > KVL_CU_MATVEC_MAX_T, BF16 weights) */
    int gemm_ok;
    cublasHandle_t blas;
    void *blas_ws;
    uint16_t *x16;                  /* [max_b][widest] bf16 product input   */
    float *xn, *up;                 /* [max_b][dim], [max_b][hidden]        */
    float *scratch;                 /* attention split partials             */
    size_t scratch_floats;
    int32_t cap_cover;              /* the largest capacity it serves       */
    cudaGraphExec_t *graphs;        /* [max_b + 1], by batch size           */
    int graphs_off, pdl;
};

void kvl_cuda_step_free(kvl_cuda_step *st)
{
    if (!st)
        return;
    for (int32_t b = 0; st->graphs && b <= st->max_b; b++)
        if (st->graphs[b])
            cudaGraphExecDestroy(st->graphs[b]);
    free(st->graphs);
    cudaFree(st->x);
    cudaFree(st->qkv);
    cudaFree(st->att);
    cudaFree(st->ffn);
    cudaFree(st->logits);
    cudaFree(st->d_next);
    cudaFreeHost(st->h_next);
    cudaFreeHost(st->h_logits);
    cudaFree(st->d_args);
    cudaFreeHost(st->h_args);
    cudaFree(st->scratch);
    if (st->blas)
        cublasDestroy(st->blas);
    cudaFree(st->blas_ws);
    cudaFree(st->x16);
    cudaFree(st->xn);
    cudaFree(st->up);
    if (st->own_stream && st->stream)
        cudaStreamDestroy(st->stream);
    free(st);
}

static int env_off(const char *name)
{
    const char *v = getenv(name);
    return v && strcmp(v, "0") == 0;
}

static kvl_status alloc_rows(kvl_cuda_step *st, float **p, int64_t width, kvl_error *err)
{
    CU(cudaMalloc((void **)p, (size_t)st->max_b * (size_t)width * sizeof(float)),
       "allocating decode buffers");
    return KVL_OK;
}

static kvl_status step_alloc(kvl_cuda_step *st, kvl_error *err)
{
    const kvl_config *c = &st->m->host->cfg;
    kvl_status s;
    if ((s = alloc_rows(st, &st->x, c->dim, err)) ||
        (s = alloc_rows(st, &st->qkv, st->qkv_width, err)) ||
        (s = alloc_rows(st, &st->att, (int64_t)c->n_heads * c->head_dim, err)) ||
        (s = alloc_rows(st, &st->ffn, c->hidden_dim, err)) ||
        (s = alloc_rows(st, &st->logits, c->vocab_size, err)))
        return s;
    const size_t B = (size_t)st->max_b;
    CU(cudaMalloc((void **)&st->d_next, B * sizeof(int32_t)), "allocating decode buffers");
    CU(cudaMallocHost((void **)&st->h_next, B * sizeof(int32_t)), "allocating decode buffers");
    st->kv_off = (KVL_CU_META_COUNT * B * sizeof(int32_t) + 15) / 16 * 16;
    st->args_bytes = st->kv_off + B * (size_t)c->n_layers * 2 * sizeof(float *);
    CU(cudaMalloc((void **)&st->d_args, st->args_bytes), "allocating decode buffers");
    CU(cudaMallocHost((void **)&st->h_args, st->args_bytes), "allocating decode buffers");
    st->graphs = calloc(B + 1, sizeof *st->graphs);
    if (!st->graphs)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    return KVL_OK;
}

/* Whether every product of the model is BF16 with joined q/k/v, so that
 * large batches can take the cuBLAS path. */
static int gemm_model(const kvl_cuda_model *m)
{
    const kvl_config *c = &m->host->cfg;
    if (m->lm_head.dtype != KVL_DTYPE_BF16)
        return 0;
    for (int32_t l = 0; l < c->n_layers; l++) {
        const kvl_layer_weights *w = &m->layers[l];
        if (!m->qkv[l].fused || w->wq.dtype != KVL_DTYPE_BF16 ||
            w->wo.dtype != KVL_DTYPE_BF16 || w->w_gate.dtype != KVL_DTYPE_BF16 ||
            w->w_up.dtype != KVL_DTYPE_BF16 || w->w_down.dtype != KVL_DTYPE_BF16)
            return 0;
    }
    return 1;
}

static kvl_status gemm_alloc(kvl_cuda_step *st, kvl_error *err)
{
    const kvl_config *c = &st->m->host->cfg;
    int64_t widest = c->dim;
    if (c->hidden_dim > widest)
        widest = c->hidden_dim;
    if ((int64_t)c->n_heads * c->head_dim > widest)
        widest = (int64_t)c->n_heads * c->head_dim;
    const size_t B = (size_t)st->max_b, ws = (size_t)32 << 20;
    CU(cudaMalloc((void **)&st->x16, B * (size_t)widest * sizeof(uint16_t)),
       "allocating decode buffers");
    kvl_status s;
    if ((s = alloc_rows(st, &st->xn, c->dim, err)) ||
        (s = alloc_rows(st, &st->up, c->hidden_dim, err)))
        return s;
    CU(cudaMalloc(&st->blas_ws, ws), "allocating the cuBLAS workspace");
    /* a workspace of its own: cuBLAS must not allocate inside a capture */
    if (cublasCreate(&st->blas) != CUBLAS_STATUS_SUCCESS ||
        cublasSetStream(st->blas, st->stream) != CUBLAS_STATUS_SUCCESS ||
        cublasSetWorkspace(st->blas, st->blas_ws, ws) != CUBLAS_STATUS_SUCCESS)
        return kvl_fail(err, KVL_ERR_INTERNAL, "cuBLAS: setting up the decode step failed");
    st->gemm_ok = 1;
    return KVL_OK;
}

kvl_status kvl_cuda_step_new(const kvl_cuda_model *m, int32_t max_b, cudaStream_t stream,
                             kvl_cuda_step **out, kvl_error *err)
{
    if (!m || !out || max_b < 1)
        return kvl_fail(err, KVL_ERR_ARG, "decode step: model, out and max_b >= 1 are required");
    *out = NULL;
    const kvl_config *c = &m->host->cfg;
    const kvl_layer_weights *w0 = &m->layers[0];
    if (w0->q_norm.data && w0->k_norm.data && w0->q_norm.dtype != w0->k_norm.dtype)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "decode step: q_norm and k_norm weights of different dtypes");
    kvl_cuda_step *st = calloc(1, sizeof *st);
    if (!st)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    st->m = m;
    st->max_b = max_b;
    st->qkv_width = (c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
    st->graphs_off = env_off("KVL_CUDA_GRAPHS");
    st->pdl = !env_off("KVL_CUDA_PDL");
    kvl_status s = KVL_OK;
    if (stream) {
        st->stream = stream;
    } else {
        cudaError_t e = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking);
        st->own_stream = e == cudaSuccess;
        if (e != cudaSuccess)
            s = kvl_cu_fail(err, e, "creating a stream");
    }
    if (s == KVL_OK)
        s = step_alloc(st, err);
    if (s == KVL_OK && max_b > KVL_CU_MATVEC_MAX_T && gemm_model(m))
        s = gemm_alloc(st, err);
    if (s != KVL_OK) {
        kvl_cuda_step_free(st);
        return s;
    }
    *out = st;
    return KVL_OK;
}

kvl_status kvl_cuda_batch_new(const kvl_cuda_model *m, int32_t max_b, kvl_cuda_step **out,
                              kvl_error *err)
{
    return kvl_cuda_step_new(m, max_b, NULL, out, err);
}

/* ---- the launch sequence ---------------------------------------------------------- */

static float *const *kv_table(const kvl_cuda_step *st)
{
    return (float *const *)(st->d_args + st->kv_off);
}

/* y[r] (+)= W . x[r] for the B rows, in chunks the fused matvec takes. */
static cudaError_t rows_fused(const kvl_cuda_step *st, int32_t B, float *y, const kvl_weight *w,
                              const float *x, const kvl_weight *norm, const void *bias,
                              kvl_dtype bdt, int residual)
{
    const kvl_config *c = &st->m->host->cfg;
    const int32_t M = (int32_t)w->rows, K = (int32_t)w->cols;
    for (int32_t r = 0; r < B; r += KVL_CU_MATVEC_MAX_T) {
        const int32_t n = B - r < KVL_CU_MATVEC_MAX_T ? B - r : KVL_CU_MATVEC_MAX_T;
        float *yr = y + (size_t)r * M;
        TRY(kvl_cu_matvec_fused(yr, w->data, w->dtype, x + (size_t)r * K,
                                norm ? norm->data : NULL, norm ? norm->dtype : KVL_DTYPE_F32,
                                (float)c->norm_eps, bias, bdt, residual ? yr : NULL, n, M, K,
                                st->pdl, st->stream));
    }
    return cudaSuccess;
}

/* The q/k/v rows [B][qkv_width]: one product over the joined weights, or
 * (weights that could not be joined) three per row. */
static cudaError_t qkv_product(const kvl_cuda_step *st, int32_t l, int32_t B)
{
    const kvl_config *c = &st->m->host->cfg;
    const kvl_layer_weights *w = &st->m->layers[l];
    const kvl_cu_qkv *j = &st->m->qkv[l];
    if (j->fused) {
        const kvl_weight joined = {j->w, w->wq.dtype, j->rows, w->wq.cols};
        return rows_fused(st, B, st->qkv, &joined, st->x, &w->attn_norm, j->b, j->bdt, 0);
    }
    const kvl_weight *ws[3] = {&w->wq, &w->wk, &w->wv}, *bs[3] = {&w->bq, &w->bk, &w->bv};
    for (int32_t r = 0; r < B; r++) {
        int64_t off = 0;
        for (int i = 0; i < 3; i++) {
            TRY(kvl_cu_matvec_fused(st->qkv + (size_t)r * st->qkv_width + off, ws[i]->data,
                                    ws[i]->dtype, st->x + (size_t)r * c->dim,
                                    w->attn_norm.data, w->attn_norm.dtype,
                                    (float)c->norm_eps, bs[i]->data, bs[i]->dtype, NULL, 1,
                                    (int32_t)ws[i]->rows, c->dim, st->pdl, st->stream));
            off += ws[i]->rows;
        }
    }
    return cudaSuccess;
}

static cudaError_t layer_step(const kvl_cuda_step *st, int32_t l, int32_t B)
{
    const kvl_cuda_model *m = st->m;
    const kvl_config *c = &m->host->cfg;
    const kvl_layer_weights *w = &m->layers[l];
    const int32_t *meta = (const int32_t *)st->d_args;
    const float eps = (float)c->norm_eps;
    TRY(qkv_product(st, l, B));
    const kvl_dtype ndt = w->q_norm.data ? w->q_norm.dtype : w->k_norm.dtype;
    TRY(kvl_cu_decode_qkv_finish(st->qkv, st->qkv_width, w->q_norm.data, w->k_norm.data, ndt,
                                 eps, m->inv_freq, c->rope.rotary_dim, c->rope.layout,
                                 kv_table(st), l, c->n_layers, meta, B, c->n_heads,
                                 c->n_kv_heads, c->head_dim, st->pdl, st->stream));
    TRY(kvl_cu_attention_decode_batch(st->att, st->qkv, st->qkv_width, kv_table(st), l,
                                      c->n_layers, meta, B, st->cap_cover, c->n_heads,
                                      c->n_kv_heads, c->head_dim, st->scratch,
                                      st->scratch_floats, st->pdl, st->stream));
    TRY(rows_fused(st, B, st->x, &w->wo, st->att, NULL, w->bo.data, w->bo.dtype, 1));
    for (int32_t r = 0; r < B; r += KVL_CU_MATVEC_MAX_T) {
        const int32_t n = B - r < KVL_CU_MATVEC_MAX_T ? B - r : KVL_CU_MATVEC_MAX_T;
        const kvl_dtype bdt = w->b_gate.data ? w->b_gate.dtype : w->b_up.dtype;
        TRY(kvl_cu_matvec_swiglu(st->ffn + (size_t)r * c->hidden_dim, w->w_gate.data,
                                 w->w_up.data, w->w_gate.dtype, st->x + (size_t)r * c->dim,
                                 w->ffn_norm.data, w->ffn_norm.dtype, eps, w->b_gate.data,
                                 w->b_up.data, bdt, n, c->hidden_dim, c->dim, st->pdl,
                                 st->stream));
    }
    return rows_fused(st, B, st->x, &w->w_down, st->ffn, NULL, w->b_down.data,
                      w->b_down.dtype, 1);
}

/* ---- the cuBLAS path of large batches ---- */

/* y[B][M] = W[M][K] . x16[B][K] + beta * y (BF16 operands, fp32). */
static cudaError_t gemm(const kvl_cuda_step *st, float *y, const void *W, int32_t M, int32_t K,
                        int32_t B, float beta)
{
    const float one = 1.0f;
    cublasStatus_t bs = cublasGemmEx(st->blas, CUBLAS_OP_T, CUBLAS_OP_N, M, B, K, &one, W,
                                     CUDA_R_16BF, K, st->x16, CUDA_R_16BF, K, &beta, y,
                                     CUDA_R_32F, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return bs == CUBLAS_STATUS_SUCCESS ? cudaSuccess : cudaErrorUnknown;
}

/* x16 = bf16(rmsnorm(x)) (norm NULL: bf16(x)) for B rows of width K. */
static cudaError_t gemm_input(const kvl_cuda_step *st, const float *x, const kvl_weight *norm,
                              int32_t B, int32_t K)
{
    const kvl_config *c = &st->m->host->cfg;
    if (norm) {
        TRY(kvl_cu_rmsnorm(st->xn, x, norm->data, norm->dtype, B, K, (float)c->norm_eps,
                           st->stream));
        x = st->xn;
    }
    return kvl_cu_to_bf16(st->x16, x, (int64_t)B * K, st->stream);
}

static cudaError_t bias(const kvl_cuda_step *st, float *y, const kvl_weight *b, int32_t B)
{
    return b->data ? kvl_cu_add_bias(y, b->data, b->dtype, B, (int32_t)b->cols, st->stream)
                   : cudaSuccess;
}

static cudaError_t layer_gemm(const kvl_cuda_step *st, int32_t l, int32_t B)
{
    const kvl_cuda_model *m = st->m;
    const kvl_config *c = &m->host->cfg;
    const kvl_layer_weights *w = &m->layers[l];
    const kvl_cu_qkv *j = &m->qkv[l];
    const int32_t *meta = (const int32_t *)st->d_args;
    const int32_t D = c->dim, H = c->hidden_dim, A = c->n_heads * c->head_dim;
    TRY(gemm_input(st, st->x, &w->attn_norm, B, D));
    TRY(gemm(st, st->qkv, j->w, j->rows, D, B, 0.0f));
    if (j->b)
        TRY(kvl_cu_add_bias(st->qkv, j->b, j->bdt, B, j->rows, st->stream));
    const kvl_dtype ndt = w->q_norm.data ? w->q_norm.dtype : w->k_norm.dtype;
    TRY(kvl_cu_decode_qkv_finish(st->qkv, st->qkv_width, w->q_norm.data, w->k_norm.data, ndt,
                                 (float)c->norm_eps, m->inv_freq, c->rope.rotary_dim,
                                 c->rope.layout, kv_table(st), l, c->n_layers, meta, B,
                                 c->n_heads, c->n_kv_heads, c->head_dim, 0, st->stream));
    TRY(kvl_cu_attention_decode_batch(st->att, st->qkv, st->qkv_width, kv_table(st), l,
                                      c->n_layers, meta, B, st->cap_cover, c->n_heads,
                                      c->n_kv_heads, c->head_dim, st->scratch,
                                      st->scratch_floats, 0, st->stream));
    TRY(gemm_input(st, st->att, NULL, B, A));
    TRY(gemm(st, st->x, w->wo.data, D, A, B, 1.0f)); /* x += Wo . att */
    TRY(bias(st, st->x, &w->bo, B));
    TRY(gemm_input(st, st->x, &w->ffn_norm, B, D));
    TRY(gemm(st, st->ffn, w->w_gate.data, H, D, B, 0.0f));
    TRY(bias(st, st->ffn, &w->b_gate, B));
    TRY(gemm(st, st->up, w->w_up.data, H, D, B, 0.0f));
    TRY(bias(st, st->up, &w->b_up, B));
    TRY(kvl_cu_swiglu(st->ffn, st->ffn, st->up, (int64_t)B * H, st->stream));
    TRY(gemm_input(st, st->ffn, NULL, B, H));
    TRY(gemm(st, st->x, w->w_down.data, D, H, B, 1.0f));
    return bias(st, st->x, &w->b_down, B);
}

static cudaError_t step_body(const kvl_cuda_step *st, int32_t B)
{
    const kvl_cuda_model *m = st->m;
    const kvl_config *c = &m->host->cfg;
    const int32_t *meta = (const int32_t *)st->d_args;
    TRY(kvl_cu_embed(st->x, m->tok_emb.data, m->tok_emb.dtype, meta + KVL_CU_META_TOKEN * B, B,
                     c->dim, st->stream));
    const int use_gemm = st->gemm_ok && B > KVL_CU_MATVEC_MAX_T;
    for (int32_t l = 0; l < c->n_layers; l++)
        TRY(use_gemm ? layer_gemm(st, l, B) : layer_step(st, l, B));
    if (use_gemm) {
        TRY(gemm_input(st, st->x, &m->final_norm, B, c->dim));
        TRY(gemm(st, st->logits, m->lm_head.data, c->vocab_size, c->dim, B, 0.0f));
    } else {
        TRY(rows_fused(st, B, st->logits, &m->lm_head, st->x, &m->final_norm, NULL,
                       KVL_DTYPE_F32, 0));
    }
    return kvl_cu_argmax(st->d_next, st->logits, B, c->vocab_size, st->stream);
}

/* The step for B rows as a graph; 0 when it could not be captured. */
static int capture(kvl_cuda_step *st, int32_t B)
{
    cudaGraph_t g = NULL;
    cudaGraphExec_t exec = NULL;
    if (cudaStreamBeginCapture(st->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    cudaError_t e = step_body(st, B);
    cudaError_t ce = cudaStreamEndCapture(st->stream, &g);
    if (e == cudaSuccess && ce == cudaSuccess && g)
        ce = cudaGraphInstantiate(&exec, g, 0);
    if (g)
        cudaGraphDestroy(g);
    if (e != cudaSuccess || ce != cudaSuccess || !exec) {
        cudaGetLastError();
        if (exec)
            cudaGraphExecDestroy(exec);
        return 0;
    }
    st->graphs[B] = exec;
    return 1;
}

static void drop_graphs(kvl_cuda_step *st)
{
    for (int32_t b = 0; b <= st->max_b; b++)
        if (st->graphs[b]) {
            cudaGraphExecDestroy(st->graphs[b]);
            st->graphs[b] = NULL;
        }
}

/* Attention scratch for caches of up to cap tokens.  The split is sized
 * for a power of two >= cap, so that growing caches re-capture rarely. */
static kvl_status cover(kvl_cuda_step *st, int32_t cap, kvl_error *err)
{
    if (cap <= st->cap_cover)
        return KVL_OK;
    int32_t c2 = 1024;
    while (c2 < cap)
        c2 = c2 > INT32_MAX / 2 ? cap : 2 * c2;
    const kvl_config *c = &st->m->host->cfg;
    const size_t need = kvl_cu_attention_decode_batch_scratch(st->max_b, c->n_heads, c2,
                                                              c->head_dim);
    CU(cudaStreamSynchronize(st->stream), "decode step");
    cudaFree(st->scratch);
    st->scratch = NULL;
    st->scratch_floats = 0;
    st->cap_cover = 0;
    drop_graphs(st);
    CU(cudaMalloc((void **)&st->scratch, need * sizeof(float)), "allocating attention scratch");
    /* zeroed once: the split's completion counters reset themselves */
    CU(cudaMemsetAsync(st->scratch, 0, need * sizeof(float), st->stream),
       "allocating attention scratch");
    st->scratch_floats = need;
    st->cap_cover = c2;
    return KVL_OK;
}

static kvl_status pinned_logits(kvl_cuda_step *st, kvl_error *err)
{
    const size_t n = (size_t)st->max_b * (size_t)st->m->host->cfg.vocab_size;
    float *p = NULL;
    CU(cudaMallocHost((void **)&p, n * sizeof(float)), "allocating pinned logits");
    st->h_logits = p;
    return KVL_OK;
}

static kvl_status check_run(const kvl_cuda_step *st, kvl_cuda_session *const *ss, int32_t B,
                            const int32_t *tokens, const int32_t *pos, kvl_error *err)
{
    if (!st || !ss || !tokens || !pos)
        return kvl_fail(err, KVL_ERR_ARG, "decode step: sessions, tokens and positions are required");
    if (B < 1 || B > st->max_b)
        return kvl_fail(err, KVL_ERR_RANGE, "decode step: %d sequences (1..%d)", (int)B,
                        (int)st->max_b);
    const kvl_config *c = &st->m->host->cfg;
    for (int32_t b = 0; b < B; b++) {
        if (!ss[b] || ss[b]->m != st->m)
            return kvl_fail(err, KVL_ERR_ARG,
                            "decode step: session %d is NULL or of another model", (int)b);
        for (int32_t o = 0; o < b; o++)
            if (ss[o] == ss[b])
                return kvl_fail(err, KVL_ERR_ARG, "decode step: session %d appears twice",
                                (int)b);
        if (ss[b]->n_tokens > INT32_MAX / 2 - 1)
            return kvl_fail(err, KVL_ERR_RANGE, "cache would exceed 2^30 tokens");
    }
    return kvl_cuda_check_ids(c, tokens, pos, B, err);
}

/* The per-step arguments of B sequences into the pinned buffer. */
static void write_args(kvl_cuda_step *st, kvl_cuda_session *const *ss, int32_t B,
                       const int32_t *tokens, const int32_t *pos)
{
    int32_t *meta = (int32_t *)st->h_args;
    float **tab = (float **)(st->h_args + st->kv_off);
    const int32_t L = st->m->host->cfg.n_layers;
    for (int32_t b = 0; b < B; b++) {
        meta[KVL_CU_META_TOKEN * B + b] = tokens[b];
        meta[KVL_CU_META_POS * B + b] = pos[b];
        meta[KVL_CU_META_SLOT * B + b] = ss[b]->n_tokens;
        meta[KVL_CU_META_CAP * B + b] = ss[b]->cap;
        for (int32_t l = 0; l < L; l++) {
            tab[((size_t)b * L + l) * 2] = ss[b]->k[l];
            tab[((size_t)b * L + l) * 2 + 1] = ss[b]->v[l];
        }
    }
}

/* Replays (or runs) the step of B rows; a graph that cannot be captured
 * with programmatic launches is tried without, then plain launches. */
static cudaError_t launch(kvl_cuda_step *st, int32_t B)
{
    if (!st->graphs_off && !st->graphs[B] && !capture(st, B)) {
        st->pdl = 0;
        drop_graphs(st);
        if (!capture(st, B))
            st->graphs_off = 1;
    }
    if (st->graphs_off)
        return step_body(st, B);
    return cudaGraphLaunch(st->graphs[B], st->stream);
}

kvl_status kvl_cuda_step_run(kvl_cuda_step *st, kvl_cuda_session *const *ss, int32_t B,
                             const int32_t *tokens, const int32_t *pos, float *logits,
                             int32_t *next, kvl_error *err)
{
    kvl_status s = check_run(st, ss, B, tokens, pos, err);
    int32_t cap = 0;
    for (int32_t b = 0; s == KVL_OK && b < B; b++) {
        s = kvl_cuda_session_reserve(ss[b], ss[b]->n_tokens + 1, err);
        cap = ss[b]->cap > cap ? ss[b]->cap : cap;
    }
    if (s == KVL_OK)
        s = cover(st, cap, err);
    if (s == KVL_OK && logits && !st->h_logits)
        s = pinned_logits(st, err);
    if (s != KVL_OK)
        return s;
    CU(cudaStreamSynchronize(st->stream), "decode step"); /* h_args may feed a copy */
    write_args(st, ss, B, tokens, pos);
    const size_t bytes = st->kv_off + (size_t)B * st->m->host->cfg.n_layers * 2 * sizeof(float *);
    /* meta of B rows sits in the first 4 * B ints; the table at kv_off */
    CU(cudaMemcpyAsync(st->d_args, st->h_args, bytes, cudaMemcpyHostToDevice, st->stream),
       "decode step");
    CU(launch(st, B), "decode step");
    const int32_t V = st->m->host->cfg.vocab_size;
    if (next)
        CU(cudaMemcpyAsync(st->h_next, st->d_next, (size_t)B * sizeof(int32_t),
                           cudaMemcpyDeviceToHost, st->stream),
           "decode step");
    if (logits)
        CU(cudaMemcpyAsync(st->h_logits, st->logits, (size_t)B * V * sizeof(float),
                           cudaMemcpyDeviceToHost, st->stream),
           "copying logits");
    CU(cudaStreamSynchronize(st->stream), "decode step");
    if (logits)
        memcpy(logits, st->h_logits, (size_t)B * V * sizeof(float));
    for (int32_t b = 0; b < B; b++) {
        kvl_cuda_session *x = ss[b];
        x->token_ids[x->n_tokens] = tokens[b];
        x->positions[x->n_tokens] = pos[b];
        x->n_tokens++;
        if (next)
            next[b] = st->h_next[b];
    }
    return KVL_OK;
}
