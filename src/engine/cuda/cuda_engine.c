/* The CUDA forward pass: weights upload, device session, the layer loop. */
#include "engine/cuda/cuda_engine.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "core/error.h"
#include "engine/cuda/kernels.h"
#include "model/model.h"

/* ---- status ------------------------------------------------------------------- */

static kvl_status cuda_fail(kvl_error *err, cudaError_t e, const char *what)
{
    return kvl_fail(err, e == cudaErrorMemoryAllocation ? KVL_ERR_NOMEM : KVL_ERR_INTERNAL,
                    "CUDA: %s: %s (%s)", what, cudaGetErrorString(e),
                    cudaGetErrorName(e));
}

#define CU(call, what)                                                       \
    do {                                                                     \
        cudaError_t e_ = (call);                                             \
        if (e_ != cudaSuccess)                                               \
            return cuda_fail(err, e_, what);                                 \
    } while (0)

/* In graph_step: a failed call ends the step with its error. */
#define CU2(call)                                                            \
    do {                                                                     \
        cudaError_t e2_ = (call);                                            \
        if (e2_ != cudaSuccess) {                                            \
            *st = cuda_fail(err, e2_, "decode step");                        \
            return 1;                                                        \
        }                                                                    \
    } while (0)

static kvl_status cublas_fail(kvl_error *err, cublasStatus_t s, const char *what)
{
    return kvl_fail(err, s == CUBLAS_STATUS_ALLOC_FAILED ? KVL_ERR_NOMEM : KVL_ERR_INTERNAL,
                    "cuBLAS: %s: status %d", what, (int)s);
}

int kvl_cuda_devices(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free error */
        return 0;
    }
    return n;
}

/* ---- the model ------------------------------------------------------------------ */

struct kvl_cuda_model {
    const kvl_model *host;
    int device;
    int random;               /* weights generated, not copied          */
    uint64_t seed, n_filled;
    kvl_weight tok_emb, final_norm, lm_head;
    kvl_layer_weights *layers;
    float *inv_freq;          /* device [rotary_dim / 2] */
    int64_t bytes;
};

static size_t weight_bytes(const kvl_weight *w)
{
    return (size_t)(w->rows * w->cols) * kvl_dtype_size(w->dtype);
}

/* Device memory for a weight of w's shape, described in *d. */
static kvl_status alloc_like(kvl_cuda_model *m, const kvl_weight *w, kvl_weight *d,
                             kvl_error *err)
{
    *d = *w;
    void *p = NULL;
    const size_t n = weight_bytes(w);
    d->data = NULL;
    CU(cudaMalloc(&p, n), "allocating weights");
    d->data = p;
    m->bytes += (int64_t)n;
    return KVL_OK;
}

/* A device copy of w (NULL data stays NULL). */
static kvl_status upload(kvl_cuda_model *m, const kvl_weight *w, kvl_weight *d,
                         kvl_error *err)
{
    *d = *w;
    d->data = NULL;
    if (!w->data)
        return KVL_OK;
    kvl_status st = alloc_like(m, w, d, err);
    if (st == KVL_OK)
        CU(cudaMemcpy((void *)d->data, w->data, weight_bytes(w), cudaMemcpyHostToDevice),
           "copying weights");
    return st;
}

/* Random device weights of w's shape (w->data is NULL: a shapes-only
 * model); a 1-row weight is a norm (1 +- 0.1) or a bias (+-0.02). */
static kvl_status fill(kvl_cuda_model *m, const kvl_weight *w, int is_norm,
                       kvl_weight *d, kvl_error *err)
{
    *d = *w;
    d->data = NULL;
    if (w->rows <= 0 || w->cols <= 0)
        return KVL_OK;
    kvl_status st = alloc_like(m, w, d, err);
    if (st == KVL_OK)
        CU(kvl_cu_fill_random((void *)d->data, w->dtype, w->rows * w->cols,
                              is_norm ? 1.0f : 0.0f, is_norm ? 0.1f : 0.02f,
                              m->seed + 0x1000 * ++m->n_filled, 0),
           "generating weights");
    return st;
}

static kvl_status upload_layer(kvl_cuda_model *m, const kvl_layer_weights *h,
                               kvl_layer_weights *d, kvl_error *err)
{
    const kvl_weight *src[] = {&h->attn_norm, &h->wq, &h->wk, &h->wv, &h->wo,
                               &h->bq, &h->bk, &h->bv, &h->bo, &h->q_norm,
                               &h->k_norm, &h->ffn_norm, &h->w_gate, &h->w_up,
                               &h->w_down, &h->b_gate, &h->b_up, &h->b_down};
    kvl_weight *dst[] = {&d->attn_norm, &d->wq, &d->wk, &d->wv, &d->wo,
                         &d->bq, &d->bk, &d->bv, &d->bo, &d->q_norm,
                         &d->k_norm, &d->ffn_norm, &d->w_gate, &d->w_up,
                         &d->w_down, &d->b_gate, &d->b_up, &d->b_down};
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        const int is_norm = src[i] == &h->attn_norm || src[i] == &h->q_norm ||
                            src[i] == &h->k_norm || src[i] == &h->ffn_norm;
        kvl_status st = m->random ? fill(m, src[i], is_norm, dst[i], err)
                                  : upload(m, src[i], dst[i], err);
        if (st != KVL_OK)
            return st;
    }
    return KVL_OK;
}

static void free_weight(kvl_weight *w)
{
    if (w->data)
        cudaFree((void *)w->data);
    w->data = NULL;
}

void kvl_cuda_model_free(kvl_cuda_model *m)
{
    if (!m)
        return;
    if (m->layers) {
        for (int32_t l = 0; l < m->host->cfg.n_layers; l++) {
            kvl_weight *w = (kvl_weight *)&m->layers[l];
            for (size_t i = 0; i < sizeof(kvl_layer_weights) / sizeof(kvl_weight); i++)
                free_weight(&w[i]);
        }
        free(m->layers);
    }
    if (m->lm_head.data != m->tok_emb.data)
        free_weight(&m->lm_head);
    free_weight(&m->tok_emb);
    free_weight(&m->final_norm);
    cudaFree(m->inv_freq);
    free(m);
}

static kvl_status model_new(const kvl_model *model, int device, int random,
                            uint64_t seed, kvl_cuda_model **out, kvl_error *err);

kvl_status kvl_cuda_model_new(const kvl_model *model, int device,
                              kvl_cuda_model **out, kvl_error *err)
{
    return model_new(model, device, 0, 0, out, err);
}

kvl_status kvl_cuda_model_new_random(const kvl_model *shapes, int device,
                                     uint64_t seed, kvl_cuda_model **out,
                                     kvl_error *err)
{
    return model_new(shapes, device, 1, seed, out, err);
}

static kvl_status model_new(const kvl_model *model, int device, int random,
                            uint64_t seed, kvl_cuda_model **out, kvl_error *err)
{
    if (!model || !out)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cuda_model_new: model and out are required");
    *out = NULL;
    const int n = kvl_cuda_devices();
    if (device < 0 || device >= n)
        return kvl_fail(err, KVL_ERR_ARG, "CUDA device %d does not exist (%d found)",
                        device, n);
    CU(cudaSetDevice(device), "selecting the device");
    kvl_cuda_model *m = calloc(1, sizeof *m);
    if (!m)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    m->host = model;
    m->device = device;
    m->random = random;
    m->seed = seed;
    const kvl_config *cfg = &model->cfg;
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    kvl_status st = m->layers ? KVL_OK : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    for (int32_t l = 0; st == KVL_OK && l < cfg->n_layers; l++)
        st = upload_layer(m, &model->layers[l], &m->layers[l], err);
    if (st == KVL_OK)
        st = random ? fill(m, &model->tok_emb, 0, &m->tok_emb, err)
                    : upload(m, &model->tok_emb, &m->tok_emb, err);
    if (st == KVL_OK)
        st = random ? fill(m, &model->final_norm, 1, &m->final_norm, err)
                    : upload(m, &model->final_norm, &m->final_norm, err);
    if (st == KVL_OK) {
        /* tied: one copy (a shapes-only model has no data to compare) */
        if (random ? model->cfg.tied_embeddings != 0
                   : model->lm_head.data == model->tok_emb.data)
            m->lm_head = m->tok_emb;
        else
            st = random ? fill(m, &model->lm_head, 0, &m->lm_head, err)
                        : upload(m, &model->lm_head, &m->lm_head, err);
    }
    if (st == KVL_OK && random)
        st = cudaDeviceSynchronize() == cudaSuccess
                 ? KVL_OK
                 : kvl_fail(err, KVL_ERR_INTERNAL, "CUDA: generating weights failed");
    const size_t nf = (size_t)cfg->rope.rotary_dim / 2 * sizeof(float);
    if (st == KVL_OK) {
        cudaError_t e = cudaMalloc((void **)&m->inv_freq, nf);
        if (e == cudaSuccess)
            e = cudaMemcpy(m->inv_freq, model->inv_freq, nf, cudaMemcpyHostToDevice);
        if (e != cudaSuccess)
            st = cuda_fail(err, e, "copying RoPE frequencies");
    }
    if (st != KVL_OK) {
        kvl_cuda_model_free(m);
        return st;
    }
    *out = m;
    return KVL_OK;
}

int64_t kvl_cuda_model_bytes(const kvl_cuda_model *m)
{
    return m ? m->bytes : 0;
}

/* ---- the session ------------------------------------------------------------------- */

enum { B_X, B_XN, B_Q, B_K, B_V, B_ATT, B_PROJ, B_GATE, B_UP, B_LOGITS, B_COUNT };

struct kvl_cuda_session {
    const kvl_cuda_model *m;
    cudaStream_t stream;
    cublasHandle_t blas;
    int32_t rows_cap;         /* tokens the activation buffers hold     */
    float *buf[B_COUNT];
    uint16_t *x16;            /* bf16 copy of a product's input         */
    int32_t *d_tokens, *d_pos;
    float *att_scratch;
    size_t att_scratch_floats;
    /* the cache: per layer k, v [n_kv][cap][hd] */
    int32_t cap, n_tokens;
    float **k, **v;
    int32_t *token_ids, *positions; /* host [cap] */
    /* Pinned host staging for export / import: two buffers so that the
     * DMA of one layer overlaps the host copy of the other. */
    float *stage[2];
    size_t stage_floats;
    cudaEvent_t staged[2];
    /* The single-token step as a CUDA graph, replayed at every decode
     * step: its kernels read token, position, slot and context length
     * from d_step, written from the pinned h_step before each replay. */
    cudaGraphExec_t graph;
    uint64_t graph_gen;       /* alloc_gen when captured                */
    int graph_off;            /* capture failed or disabled: plain path */
    int capturing;
    uint64_t alloc_gen;       /* bumped when any device buffer moves    */
    int32_t *d_step, *h_step; /* [4]: token, position, n_past, n_ctx   */
};

static void free_buffers(kvl_cuda_session *s)
{
    for (int i = 0; i < B_COUNT; i++) {
        cudaFree(s->buf[i]);
        s->buf[i] = NULL;
    }
    cudaFree(s->x16);
    cudaFree(s->d_tokens);
    cudaFree(s->d_pos);
    s->x16 = NULL;
    s->d_tokens = s->d_pos = NULL;
    s->rows_cap = 0;
}

static size_t buffer_width(const kvl_config *c, int id)
{
    switch (id) {
    case B_Q:
    case B_ATT:
        return (size_t)c->n_heads * c->head_dim;
    case B_K:
    case B_V:
        return (size_t)c->n_kv_heads * c->head_dim;
    case B_GATE:
    case B_UP:
        return (size_t)c->hidden_dim;
    case B_LOGITS:
        return (size_t)c->vocab_size;
    default:
        return (size_t)c->dim;
    }
}

static kvl_status grow_buffers(kvl_cuda_session *s, int32_t T, kvl_error *err)
{
    if (T <= s->rows_cap)
        return KVL_OK;
    free_buffers(s);
    const kvl_config *c = &s->m->host->cfg;
    size_t widest = 0;
    for (int i = 0; i < B_COUNT; i++) {
        const size_t w = buffer_width(c, i);
        if (w > widest && i != B_LOGITS)
            widest = w;
        CU(cudaMalloc((void **)&s->buf[i], (size_t)T * w * sizeof(float)),
           "allocating activations");
    }
    CU(cudaMalloc((void **)&s->x16, (size_t)T * widest * sizeof(uint16_t)),
       "allocating activations");
    CU(cudaMalloc((void **)&s->d_tokens, (size_t)T * sizeof(int32_t)), "allocating ids");
    CU(cudaMalloc((void **)&s->d_pos, (size_t)T * sizeof(int32_t)), "allocating ids");
    s->rows_cap = T;
    s->alloc_gen++;
    return KVL_OK;
}

static void free_cache(kvl_cuda_session *s)
{
    const int32_t L = s->m->host->cfg.n_layers;
    for (int32_t l = 0; s->k && l < L; l++) {
        cudaFree(s->k[l]);
        cudaFree(s->v[l]);
    }
    free(s->k);
    free(s->v);
    free(s->token_ids);
    free(s->positions);
    s->k = s->v = NULL;
    s->token_ids = s->positions = NULL;
}

/* Grows the cache to `cap` tokens, keeping its content. */
static kvl_status grow_cache(kvl_cuda_session *s, int32_t cap, kvl_error *err)
{
    if (cap <= s->cap)
        return KVL_OK;
    if (cap < 2 * s->cap)
        cap = 2 * s->cap;
    const kvl_config *c = &s->m->host->cfg;
    const int32_t L = c->n_layers, nkv = c->n_kv_heads, hd = c->head_dim;
    if (!s->k) {
        s->k = calloc((size_t)L, sizeof *s->k);
        s->v = calloc((size_t)L, sizeof *s->v);
        if (!s->k || !s->v)
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    }
    int32_t *ti = realloc(s->token_ids, (size_t)cap * sizeof *ti);
    if (!ti)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    s->token_ids = ti;
    int32_t *po = realloc(s->positions, (size_t)cap * sizeof *po);
    if (!po)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    s->positions = po;
    const size_t row = (size_t)hd * sizeof(float);
    for (int32_t l = 0; l < L; l++)
        for (int w = 0; w < 2; w++) {
            float **slot = w ? &s->v[l] : &s->k[l];
            float *p = NULL;
            CU(cudaMalloc((void **)&p, (size_t)nkv * cap * row), "allocating the cache");
            if (*slot && s->n_tokens > 0)
                CU(cudaMemcpy2DAsync(p, (size_t)cap * row, *slot, (size_t)s->cap * row,
                                     (size_t)s->n_tokens * row, (size_t)nkv,
                                     cudaMemcpyDeviceToDevice, s->stream),
                   "growing the cache");
            CU(cudaStreamSynchronize(s->stream), "growing the cache");
            cudaFree(*slot);
            *slot = p;
        }
    s->cap = cap;
    s->alloc_gen++;
    return KVL_OK;
}

void kvl_cuda_session_free(kvl_cuda_session *s)
{
    if (!s)
        return;
    free_buffers(s);
    free_cache(s);
    for (int b = 0; b < 2; b++) {
        cudaFreeHost(s->stage[b]);
        if (s->staged[b])
            cudaEventDestroy(s->staged[b]);
    }
    if (s->graph)
        cudaGraphExecDestroy(s->graph);
    cudaFree(s->d_step);
    cudaFreeHost(s->h_step);
    cudaFree(s->att_scratch);
    if (s->blas)
        cublasDestroy(s->blas);
    if (s->stream)
        cudaStreamDestroy(s->stream);
    free(s);
}

kvl_status kvl_cuda_session_new(const kvl_cuda_model *m, int32_t capacity,
                                kvl_cuda_session **out, kvl_error *err)
{
    if (!m || !out || capacity < 0)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cuda_session_new: model and out are required");
    *out = NULL;
    CU(cudaSetDevice(m->device), "selecting the device");
    kvl_cuda_session *s = calloc(1, sizeof *s);
    if (!s)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    s->m = m;
    /* KVL_CUDA_GRAPHS=0 runs decode steps as plain launches (comparisons,
     * debugging). */
    const char *graphs = getenv("KVL_CUDA_GRAPHS");
    s->graph_off = graphs && strcmp(graphs, "0") == 0;
    kvl_status st = KVL_OK;
    cudaError_t e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess)
        st = cuda_fail(err, e, "creating a stream");
    cublasStatus_t bs = st == KVL_OK ? cublasCreate(&s->blas) : CUBLAS_STATUS_SUCCESS;
    if (st == KVL_OK && bs != CUBLAS_STATUS_SUCCESS)
        st = cublas_fail(err, bs, "creating the handle");
    if (st == KVL_OK && (bs = cublasSetStream(s->blas, s->stream)) != CUBLAS_STATUS_SUCCESS)
        st = cublas_fail(err, bs, "setting the stream");
    if (st == KVL_OK)
        st = grow_cache(s, capacity > 0 ? capacity : 256, err);
    if (st != KVL_OK) {
        kvl_cuda_session_free(s);
        return st;
    }
    *out = s;
    return KVL_OK;
}

int32_t kvl_cuda_session_n_tokens(const kvl_cuda_session *s)
{
    return s ? s->n_tokens : 0;
}

void kvl_cuda_session_reset(kvl_cuda_session *s)
{
    if (s)
        s->n_tokens = 0;
}

/* ---- the graph ----------------------------------------------------------------------- */

/* y[T][M] = x[T][K] W^T + b. */
static kvl_status linear(kvl_cuda_session *s, float *y, const float *x, int32_t T,
                         const kvl_weight *w, const kvl_weight *b, kvl_error *err)
{
    const int32_t M = (int32_t)w->rows, K = (int32_t)w->cols;
    if (T <= KVL_CU_MATVEC_MAX_T || w->dtype == KVL_DTYPE_F16) {
        /* F16 weights: matvec over chunks of rows (no f16 cuBLAS path yet). */
        for (int32_t t0 = 0; t0 < T; t0 += KVL_CU_MATVEC_MAX_T) {
            const int32_t n = T - t0 < KVL_CU_MATVEC_MAX_T ? T - t0 : KVL_CU_MATVEC_MAX_T;
            CU(kvl_cu_matvec(y + (size_t)t0 * M, w->data, w->dtype, x + (size_t)t0 * K,
                             b->data, b->dtype, n, M, K, s->stream),
               "matvec");
        }
        return KVL_OK;
    }
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t bs;
    if (w->dtype == KVL_DTYPE_BF16) {
        CU(kvl_cu_to_bf16(s->x16, x, (int64_t)T * K, s->stream), "bf16 conversion");
        bs = cublasGemmEx(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, M, T, K, &one, w->data,
                          CUDA_R_16BF, K, s->x16, CUDA_R_16BF, K, &zero, y,
                          CUDA_R_32F, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    } else {
        bs = cublasGemmEx(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, M, T, K, &one, w->data,
                          CUDA_R_32F, K, x, CUDA_R_32F, K, &zero, y, CUDA_R_32F, M,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }
    if (bs != CUBLAS_STATUS_SUCCESS)
        return cublas_fail(err, bs, "matrix product");
    if (b->data)
        CU(kvl_cu_add_bias(y, b->data, b->dtype, T, M, s->stream), "bias");
    return KVL_OK;
}

static kvl_status norm_and_rotate(kvl_cuda_session *s, float *x, int32_t T,
                                  int32_t n_h, const kvl_weight *norm,
                                  kvl_error *err)
{
    const kvl_config *c = &s->m->host->cfg;
    if (norm->data)
        CU(kvl_cu_rmsnorm(x, x, norm->data, norm->dtype, T * n_h, c->head_dim,
                          (float)c->norm_eps, s->stream),
           "q/k norm");
    CU(kvl_cu_rope(x, s->capturing ? s->d_step + 1 : s->d_pos, T, n_h, c->head_dim,
                   c->rope.rotary_dim, s->m->inv_freq, c->rope.layout, +1, s->stream),
       "rope");
    return KVL_OK;
}

static kvl_status attention_block(kvl_cuda_session *s, int32_t l, int32_t T,
                                  kvl_error *err)
{
    const kvl_config *c = &s->m->host->cfg;
    const kvl_layer_weights *w = &s->m->layers[l];
    float **B = s->buf;
    kvl_status st;
    CU(kvl_cu_rmsnorm(B[B_XN], B[B_X], w->attn_norm.data, w->attn_norm.dtype, T,
                      c->dim, (float)c->norm_eps, s->stream),
       "attention norm");
    if ((st = linear(s, B[B_Q], B[B_XN], T, &w->wq, &w->bq, err)) ||
        (st = linear(s, B[B_K], B[B_XN], T, &w->wk, &w->bk, err)) ||
        (st = linear(s, B[B_V], B[B_XN], T, &w->wv, &w->bv, err)) ||
        (st = norm_and_rotate(s, B[B_Q], T, c->n_heads, &w->q_norm, err)) ||
        (st = norm_and_rotate(s, B[B_K], T, c->n_kv_heads, &w->k_norm, err)))
        return st;
    if (s->capturing) {
        CU(kvl_cu_cache_store_dev(s->k[l], s->v[l], s->cap, B[B_K], B[B_V], s->d_step + 2,
                                  c->n_kv_heads, c->head_dim, s->stream),
           "cache store");
        CU(kvl_cu_attention_decode_dev(B[B_ATT], B[B_Q], s->k[l], s->v[l], s->cap,
                                       s->d_step + 3, c->n_heads, c->n_kv_heads,
                                       c->head_dim, s->att_scratch, s->att_scratch_floats,
                                       s->stream),
           "attention");
    } else {
        CU(kvl_cu_cache_store(s->k[l], s->v[l], s->cap, B[B_K], B[B_V], s->n_tokens, T,
                              c->n_kv_heads, c->head_dim, s->stream),
           "cache store");
        CU(kvl_cu_attention(B[B_ATT], B[B_Q], s->k[l], s->v[l], s->cap, s->n_tokens, T,
                            c->n_heads, c->n_kv_heads, c->head_dim, s->att_scratch,
                            s->att_scratch_floats, s->stream),
           "attention");
    }
    if ((st = linear(s, B[B_PROJ], B[B_ATT], T, &w->wo, &w->bo, err)))
        return st;
    CU(kvl_cu_add(B[B_X], B[B_PROJ], (int64_t)T * c->dim, s->stream), "residual");
    return KVL_OK;
}

static kvl_status ffn_block(kvl_cuda_session *s, int32_t l, int32_t T,
                            kvl_error *err)
{
    const kvl_config *c = &s->m->host->cfg;
    const kvl_layer_weights *w = &s->m->layers[l];
    float **B = s->buf;
    kvl_status st;
    CU(kvl_cu_rmsnorm(B[B_XN], B[B_X], w->ffn_norm.data, w->ffn_norm.dtype, T,
                      c->dim, (float)c->norm_eps, s->stream),
       "FFN norm");
    if ((st = linear(s, B[B_GATE], B[B_XN], T, &w->w_gate, &w->b_gate, err)) ||
        (st = linear(s, B[B_UP], B[B_XN], T, &w->w_up, &w->b_up, err)))
        return st;
    CU(kvl_cu_swiglu(B[B_GATE], B[B_GATE], B[B_UP], (int64_t)T * c->hidden_dim,
                     s->stream),
       "SwiGLU");
    if ((st = linear(s, B[B_PROJ], B[B_GATE], T, &w->w_down, &w->b_down, err)))
        return st;
    CU(kvl_cu_add(B[B_X], B[B_PROJ], (int64_t)T * c->dim, s->stream), "residual");
    return KVL_OK;
}

static kvl_status check_inputs(const kvl_cuda_session *s, const int32_t *tokens,
                               const int32_t *positions, int32_t T, kvl_error *err)
{
    const kvl_config *c = &s->m->host->cfg;
    if (T <= 0 || !tokens || !positions)
        return kvl_fail(err, KVL_ERR_ARG, "forward needs at least one token");
    if (s->n_tokens > INT32_MAX / 2 - T)
        return kvl_fail(err, KVL_ERR_RANGE, "cache would exceed 2^30 tokens");
    for (int32_t t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return kvl_fail(err, KVL_ERR_RANGE,
                            "token id %d at index %d is outside the vocabulary (0..%d)",
                            (int)tokens[t], (int)t, (int)c->vocab_size - 1);
        if (positions[t] < 0)
            return kvl_fail(err, KVL_ERR_RANGE, "position %d at index %d is negative",
                            (int)positions[t], (int)t);
    }
    return KVL_OK;
}

static kvl_status prepare(kvl_cuda_session *s, const int32_t *tokens,
                          const int32_t *positions, int32_t T, kvl_error *err)
{
    kvl_status st;
    if ((st = check_inputs(s, tokens, positions, T, err)) ||
        (st = grow_buffers(s, T, err)) || (st = grow_cache(s, s->n_tokens + T, err)))
        return st;
    const kvl_config *c = &s->m->host->cfg;
    const size_t need = kvl_cu_attention_scratch(T, c->n_heads, s->n_tokens + T,
                                                 c->head_dim);
    if (need > s->att_scratch_floats) {
        cudaFree(s->att_scratch);
        s->att_scratch = NULL;
        s->att_scratch_floats = 0;
        CU(cudaMalloc((void **)&s->att_scratch, need * sizeof(float)),
           "allocating attention scratch");
        s->att_scratch_floats = need;
        s->alloc_gen++;
    }
    return KVL_OK;
}

/* Embedding, layers, final norm and lm_head of T rows (logits rows
 * [first, T) into B_LOGITS when `logits`). */
static kvl_status graph_body(kvl_cuda_session *s, int32_t T, int32_t first, int logits,
                             kvl_error *err)
{
    const kvl_cuda_model *m = s->m;
    const kvl_config *c = &m->host->cfg;
    kvl_status st;
    CU(kvl_cu_embed(s->buf[B_X], m->tok_emb.data, m->tok_emb.dtype,
                    s->capturing ? s->d_step : s->d_tokens, T, c->dim, s->stream),
       "embedding");
    for (int32_t l = 0; l < c->n_layers; l++)
        if ((st = attention_block(s, l, T, err)) || (st = ffn_block(s, l, T, err)))
            return st;
    if (!logits)
        return KVL_OK;
    const int32_t rows = T - first;
    float *xn = s->buf[B_XN] + (size_t)first * c->dim;
    CU(kvl_cu_rmsnorm(xn, s->buf[B_X] + (size_t)first * c->dim, m->final_norm.data,
                      m->final_norm.dtype, rows, c->dim, (float)c->norm_eps, s->stream),
       "final norm");
    const kvl_weight none = {NULL, KVL_DTYPE_F32, 0, 0};
    return linear(s, s->buf[B_LOGITS], xn, rows, &m->lm_head, &none, err);
}

/* Captures the single-token step for the current buffers; on failure the
 * session falls back to plain launches for good. */
static void capture(kvl_cuda_session *s)
{
    if (s->graph) {
        cudaGraphExecDestroy(s->graph);
        s->graph = NULL;
    }
    kvl_error e;
    cudaGraph_t g = NULL;
    if (cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        cudaGetLastError();
        s->graph_off = 1;
        return;
    }
    s->capturing = 1;
    kvl_status st = graph_body(s, 1, 0, 1, &e);
    s->capturing = 0;
    cudaError_t ce = cudaStreamEndCapture(s->stream, &g);
    if (st == KVL_OK && ce == cudaSuccess && g)
        ce = cudaGraphInstantiate(&s->graph, g, 0);
    if (g)
        cudaGraphDestroy(g);
    if (st != KVL_OK || ce != cudaSuccess || !s->graph) {
        cudaGetLastError();
        s->graph = NULL;
        s->graph_off = 1;
        return;
    }
    s->graph_gen = s->alloc_gen;
}

/* One token through the graph; 0 when the graph path is not available
 * (the caller then runs the plain path). */
static int graph_step(kvl_cuda_session *s, int32_t token, int32_t position, float *logits,
                      kvl_status *st, kvl_error *err)
{
    const kvl_config *c = &s->m->host->cfg;
    if (s->graph_off)
        return 0;
    if (!s->d_step) {
        if (cudaMalloc((void **)&s->d_step, 4 * sizeof(int32_t)) != cudaSuccess ||
            cudaMallocHost((void **)&s->h_step, 4 * sizeof(int32_t)) != cudaSuccess) {
            cudaGetLastError();
            s->graph_off = 1;
            return 0;
        }
    }
    const size_t need = kvl_cu_attention_scratch(1, c->n_heads, s->cap, c->head_dim);
    if (need > s->att_scratch_floats) {
        cudaFree(s->att_scratch);
        s->att_scratch = NULL;
        s->att_scratch_floats = 0;
        if (cudaMalloc((void **)&s->att_scratch, need * sizeof(float)) != cudaSuccess) {
            *st = cuda_fail(err, cudaErrorMemoryAllocation, "allocating attention scratch");
            return 1;
        }
        s->att_scratch_floats = need;
        s->alloc_gen++;
    }
    CU2(cudaStreamSynchronize(s->stream)); /* h_step may still feed the last copy */
    s->h_step[0] = token;
    s->h_step[1] = position;
    s->h_step[2] = s->n_tokens;
    s->h_step[3] = s->n_tokens + 1;
    if (!s->graph || s->graph_gen != s->alloc_gen)
        capture(s);
    if (!s->graph)
        return 0;
    CU2(cudaMemcpyAsync(s->d_step, s->h_step, 4 * sizeof(int32_t), cudaMemcpyHostToDevice,
                        s->stream));
    CU2(cudaGraphLaunch(s->graph, s->stream));
    if (logits)
        CU2(cudaMemcpyAsync(logits, s->buf[B_LOGITS], (size_t)c->vocab_size * sizeof(float),
                            cudaMemcpyDeviceToHost, s->stream));
    CU2(cudaStreamSynchronize(s->stream));
    *st = KVL_OK;
    return 1;
}

kvl_status kvl_cuda_forward(kvl_cuda_session *s, const int32_t *tokens,
                            const int32_t *positions, int32_t T, float *logits,
                            int all_logits, kvl_error *err)
{
    if (!s)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cuda_forward: session is NULL");
    const kvl_config *c = &s->m->host->cfg;
    kvl_status st = prepare(s, tokens, positions, T, err);
    if (st != KVL_OK)
        return st;
    if (T == 1 && graph_step(s, tokens[0], positions[0], logits, &st, err)) {
        if (st != KVL_OK)
            return st;
    } else {
        /* The graph step carries its own ids; plain launches read these. */
        CU(cudaMemcpyAsync(s->d_tokens, tokens, (size_t)T * sizeof(int32_t),
                           cudaMemcpyHostToDevice, s->stream), "copying ids");
        CU(cudaMemcpyAsync(s->d_pos, positions, (size_t)T * sizeof(int32_t),
                           cudaMemcpyHostToDevice, s->stream), "copying positions");
        const int32_t first = all_logits ? 0 : T - 1, rows = T - first;
        if ((st = graph_body(s, T, first, logits != NULL, err)))
            return st;
        if (logits)
            CU(cudaMemcpyAsync(logits, s->buf[B_LOGITS],
                               (size_t)rows * c->vocab_size * sizeof(float),
                               cudaMemcpyDeviceToHost, s->stream),
               "copying logits");
        CU(cudaStreamSynchronize(s->stream), "forward");
    }
    for (int32_t t = 0; t < T; t++) {
        s->token_ids[s->n_tokens + t] = tokens[t];
        s->positions[s->n_tokens + t] = positions[t];
    }
    s->n_tokens += T;
    return KVL_OK;
}

/* ---- export / import -------------------------------------------------------------------- */

/* Two pinned staging buffers of at least n floats each. */
static kvl_status stage_reserve(kvl_cuda_session *s, size_t n, kvl_error *err)
{
    if (n <= s->stage_floats)
        return KVL_OK;
    for (int b = 0; b < 2; b++) {
        cudaFreeHost(s->stage[b]);
        s->stage[b] = NULL;
    }
    s->stage_floats = 0;
    for (int b = 0; b < 2; b++) {
        CU(cudaMallocHost((void **)&s->stage[b], n * sizeof(float)), "allocating pinned buffers");
        if (!s->staged[b])
            CU(cudaEventCreateWithFlags(&s->staged[b], cudaEventDisableTiming),
               "creating events");
    }
    s->stage_floats = n;
    return KVL_OK;
}

/* Host copy between the compact staging layout [n_kv][n][hd] and the host
 * cache's [n_kv][cap][hd], in parallel chunks (one thread's memcpy runs
 * far below the DMA rate). */
static void host_copy(float *cache_rows, size_t cap_stride, float *stage, size_t n_stride,
                      int32_t n_kv, int to_stage)
{
    const int64_t chunk = 1 << 16; /* floats */
    const int64_t per_head = (int64_t)n_stride;
    const int64_t pieces = (per_head + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < (int64_t)n_kv * pieces; it++) {
        const int64_t h = it / pieces, off = (it % pieces) * chunk;
        const int64_t len = per_head - off < chunk ? per_head - off : chunk;
        float *c = cache_rows + h * (int64_t)cap_stride + off;
        float *st = stage + h * per_head + off;
        if (to_stage)
            memcpy(st, c, (size_t)len * sizeof(float));
        else
            memcpy(c, st, (size_t)len * sizeof(float));
    }
}

kvl_status kvl_cuda_session_export_into(kvl_cuda_session *s, kvl_cache *h,
                                        kvl_error *err)
{
    if (!s || !h)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cuda_session_export: session and cache are required");
    const kvl_config *c = &s->m->host->cfg;
    kvl_status st = kvl_cache_reserve(h, s->n_tokens, err);
    const int32_t n = s->n_tokens, hd = c->head_dim, nkv = c->n_kv_heads;
    const size_t block = (size_t)nkv * n * hd; /* one layer's K (or V) */
    if (st == KVL_OK && n > 0)
        st = stage_reserve(s, block, err);
    if (st != KVL_OK)
        return st;
    const size_t row = (size_t)hd * sizeof(float);
    const int32_t items = n > 0 ? 2 * c->n_layers : 0;
    /* item i: layer i / 2, K (even) or V (odd) */
    for (int32_t i = 0; i <= items; i++) {
        if (i < items) {
            const int b = i % 2;
            const float *src = i % 2 ? s->v[i / 2] : s->k[i / 2];
            CU(cudaMemcpy2DAsync(s->stage[b], (size_t)n * row, src, (size_t)s->cap * row,
                                 (size_t)n * row, (size_t)nkv, cudaMemcpyDeviceToHost,
                                 s->stream),
               "exporting the cache");
            CU(cudaEventRecord(s->staged[b], s->stream), "exporting the cache");
        }
        if (i > 0) { /* the previous item is on its way: copy it out */
            const int32_t p = i - 1;
            CU(cudaEventSynchronize(s->staged[p % 2]), "exporting the cache");
            host_copy(p % 2 ? h->v[p / 2] : h->k[p / 2], (size_t)h->capacity * hd,
                      s->stage[p % 2], (size_t)n * hd, nkv, 0);
        }
    }
    memcpy(h->token_ids, s->token_ids, (size_t)n * sizeof(int32_t));
    memcpy(h->positions, s->positions, (size_t)n * sizeof(int32_t));
    h->n_tokens = n;
    return KVL_OK;
}

kvl_status kvl_cuda_session_export(kvl_cuda_session *s, kvl_cache **out,
                                   kvl_error *err)
{
    if (!s || !out)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cuda_session_export: session and out are required");
    *out = NULL;
    const kvl_model *hm = s->m->host;
    const kvl_config *c = &hm->cfg;
    kvl_cache *h = NULL;
    kvl_status st = kvl_cache_create(c->n_layers, c->n_kv_heads, c->head_dim, &c->rope,
                                     c->arch_name, hm->fingerprint, s->n_tokens, &h, err);
    if (st == KVL_OK)
        st = kvl_cuda_session_export_into(s, h, err);
    if (st != KVL_OK) {
        kvl_cache_free(h);
        return st;
    }
    *out = h;
    return KVL_OK;
}

kvl_status kvl_cuda_session_import(kvl_cuda_session *s, const kvl_cache *h,
                                   kvl_error *err)
{
    if (!s || !h)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cuda_session_import: session and cache are required");
    const kvl_config *hc = &s->m->host->cfg;
    if (h->n_layers != hc->n_layers || h->n_kv_heads != hc->n_kv_heads ||
        h->head_dim != hc->head_dim)
        return kvl_fail(err, KVL_ERR_MISMATCH, "the cache's geometry is not the model's");
    kvl_status st = grow_cache(s, h->n_tokens, err);
    if (st != KVL_OK)
        return st;
    const kvl_config *c = &s->m->host->cfg;
    const int32_t n = h->n_tokens, hd = c->head_dim, nkv = c->n_kv_heads;
    if (n > 0 && (st = stage_reserve(s, (size_t)nkv * n * hd, err)) != KVL_OK)
        return st;
    const size_t row = (size_t)hd * sizeof(float);
    const int32_t items = n > 0 ? 2 * c->n_layers : 0;
    for (int32_t i = 0; i < items; i++) {
        const int b = i % 2;
        if (i >= 2) /* the buffer's previous upload must be done */
            CU(cudaEventSynchronize(s->staged[b]), "importing the cache");
        host_copy(b ? h->v[i / 2] : h->k[i / 2], (size_t)h->capacity * hd, s->stage[b],
                  (size_t)n * hd, nkv, 1);
        CU(cudaMemcpy2DAsync(b ? s->v[i / 2] : s->k[i / 2], (size_t)s->cap * row,
                             s->stage[b], (size_t)n * row, (size_t)n * row, (size_t)nkv,
                             cudaMemcpyHostToDevice, s->stream),
           "importing the cache");
        CU(cudaEventRecord(s->staged[b], s->stream), "importing the cache");
    }
    CU(cudaStreamSynchronize(s->stream), "importing the cache");
    memcpy(s->token_ids, h->token_ids, (size_t)h->n_tokens * sizeof(int32_t));
    memcpy(s->positions, h->positions, (size_t)h->n_tokens * sizeof(int32_t));
    s->n_tokens = h->n_tokens;
    return KVL_OK;
}

/* ---- on-device cache edits ------------------------------------------------------------- */

kvl_status kvl_cuda_session_slice(kvl_cuda_session *s, int32_t t0, int32_t t1,
                                  kvl_error *err)
{
    if (!s || t0 < 0 || t1 < t0 || t1 > s->n_tokens)
        return kvl_fail(err, KVL_ERR_RANGE, "slice [%d, %d) outside the %d cached tokens",
                        (int)t0, (int)t1, s ? (int)s->n_tokens : 0);
    if (t0 > 0 && t1 > t0) {
        const kvl_config *c = &s->m->host->cfg;
        const size_t row = (size_t)c->head_dim * sizeof(float);
        for (int32_t l = 0; l < c->n_layers; l++)
            for (int w = 0; w < 2; w++) {
                float **slot = w ? &s->v[l] : &s->k[l];
                float *p = NULL;
                CU(cudaMalloc((void **)&p, (size_t)c->n_kv_heads * s->cap * row),
                   "slicing the cache");
                CU(cudaMemcpy2DAsync(p, (size_t)s->cap * row, *slot + (size_t)t0 * c->head_dim,
                                     (size_t)s->cap * row, (size_t)(t1 - t0) * row,
                                     (size_t)c->n_kv_heads, cudaMemcpyDeviceToDevice,
                                     s->stream),
                   "slicing the cache");
                CU(cudaStreamSynchronize(s->stream), "slicing the cache");
                cudaFree(*slot);
                *slot = p;
            }
        s->alloc_gen++;
        memmove(s->token_ids, s->token_ids + t0, (size_t)(t1 - t0) * sizeof(int32_t));
        memmove(s->positions, s->positions + t0, (size_t)(t1 - t0) * sizeof(int32_t));
    }
    s->n_tokens = t1 - t0;
    return KVL_OK;
}

kvl_status kvl_cuda_session_reposition(kvl_cuda_session *s, const int32_t *new_pos,
                                       kvl_error *err)
{
    if (!s || (!new_pos && s->n_tokens > 0))
        return kvl_fail(err, KVL_ERR_ARG, "reposition needs the session and new positions");
    const int32_t n = s->n_tokens;
    for (int32_t i = 0; i < n; i++)
        if (new_pos[i] < 0)
            return kvl_fail(err, KVL_ERR_RANGE, "new position %d at index %d is negative",
                            (int)new_pos[i], (int)i);
    if (n == 0)
        return KVL_OK;
    const kvl_config *c = &s->m->host->cfg;
    int32_t *d = NULL;
    CU(cudaMalloc((void **)&d, 2 * (size_t)n * sizeof(int32_t)), "repositioning");
    kvl_status st = KVL_OK;
    cudaError_t e = cudaMemcpyAsync(d, s->positions, (size_t)n * sizeof(int32_t),
                                    cudaMemcpyHostToDevice, s->stream);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(d + n, new_pos, (size_t)n * sizeof(int32_t),
                            cudaMemcpyHostToDevice, s->stream);
    for (int32_t l = 0; e == cudaSuccess && l < c->n_layers; l++)
        e = kvl_cu_rerotate(s->k[l], s->cap, c->n_kv_heads, c->head_dim, c->rope.rotary_dim,
                            s->m->inv_freq, c->rope.layout, d, d + n, n, s->stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s->stream);
    if (e != cudaSuccess)
        st = cuda_fail(err, e, "repositioning");
    cudaFree(d);
    if (st == KVL_OK)
        memcpy(s->positions, new_pos, (size_t)n * sizeof(int32_t));
    return st;
}

int32_t kvl_cuda_session_next_position(const kvl_cuda_session *s)
{
    return s && s->n_tokens > 0 ? s->positions[s->n_tokens - 1] + 1 : 0;
}
