/* The CUDA forward pass: weights upload, device session, the layer loop. */
#include "engine/cuda/cuda_engine.h"

#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "engine/cuda/cuda_internal.h"
#include "engine/cuda/kernels.h"

/* ---- status ------------------------------------------------------------------- */

kvl_status kvl_cu_fail(kvl_error *err, cudaError_t e, const char *what)
{
    return kvl_fail(err, e == cudaErrorMemoryAllocation ? KVL_ERR_NOMEM : KVL_ERR_INTERNAL,
                    "CUDA: %s: %s (%s)", what, cudaGetErrorString(e),
                    cudaGetErrorName(e));
}

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

static size_t weight_bytes(const kvl_weight *w)
{
    return (size_t)(w->rows * w->cols) * kvl_dtype_size(w->dtype);
}

/* n bytes of device memory, recorded for kvl_cuda_model_free. */
static kvl_status device_alloc(kvl_cuda_model *m, size_t n, void **p, kvl_error *err)
{
    *p = NULL;
    if (m->n_allocs == m->allocs_cap) {
        const int32_t cap = m->allocs_cap ? 2 * m->allocs_cap : 64;
        void **a = realloc(m->allocs, (size_t)cap * sizeof *a);
        if (!a)
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        m->allocs = a;
        m->allocs_cap = cap;
    }
    CU(cudaMalloc(p, n), "allocating weights");
    m->allocs[m->n_allocs++] = *p;
    m->bytes += (int64_t)n;
    return KVL_OK;
}

/* Whether the model has weight w (a shapes-only model: rows and cols). */
static int present(const kvl_cuda_model *m, const kvl_weight *w)
{
    return m->random ? w->rows > 0 && w->cols > 0 : w->data != NULL;
}

/* The device copy of w at `at` (device memory of weight_bytes(w)), or in
 * memory of its own when at is NULL; described in *d.  Random weights for
 * a shapes-only model: a 1-row weight is a norm (1 +- 0.1) or a bias
 * (+-0.02), matrices +-0.02.  An absent weight stays NULL. */
static kvl_status put(kvl_cuda_model *m, const kvl_weight *w, int is_norm, void *at,
                      kvl_weight *d, kvl_error *err)
{
    *d = *w;
    d->data = NULL;
    if (!present(m, w))
        return KVL_OK;
    void *p = at;
    kvl_status st = p ? KVL_OK : device_alloc(m, weight_bytes(w), &p, err);
    if (st != KVL_OK)
        return st;
    d->data = p;
    if (m->random)
        CU(kvl_cu_fill_random(p, w->dtype, w->rows * w->cols, is_norm ? 1.0f : 0.0f,
                              is_norm ? 0.1f : 0.02f, m->seed + 0x1000 * ++m->n_filled, 0),
           "generating weights");
    else
        CU(cudaMemcpy(p, w->data, weight_bytes(w), cudaMemcpyHostToDevice),
           "copying weights");
    return KVL_OK;
}

/* Three weights (q, k, v products or their biases) in one allocation when
 * they can be joined (all present, one dtype; matrices of one width, or
 * 1-row biases, joined end to end): the decode step then runs one
 * product.  *joined = NULL when they cannot. */
static kvl_status put_joined(kvl_cuda_model *m, const kvl_weight *const h[3],
                             kvl_weight *const d[3], void **joined, kvl_error *err)
{
    *joined = NULL;
    int ok = 1;
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        const int bias = h[0]->rows == 1;
        ok = ok && present(m, h[i]) && h[i]->dtype == h[0]->dtype &&
             (bias ? h[i]->rows == 1 : h[i]->cols == h[0]->cols);
        total += weight_bytes(h[i]);
    }
    kvl_status st = KVL_OK;
    if (ok && (st = device_alloc(m, total, joined, err)) != KVL_OK)
        return st;
    size_t off = 0;
    for (int i = 0; i < 3 && st == KVL_OK; i++) {
        st = put(m, h[i], 0, ok ? (char *)*joined + off : NULL, d[i], err);
        off += weight_bytes(h[i]);
    }
    return st;
}

static kvl_status upload_layer(kvl_cuda_model *m, const kvl_layer_weights *h,
                               kvl_layer_weights *d, kvl_cu_qkv *qkv, kvl_error *err)
{
    const kvl_weight *src[] = {&h->attn_norm, &h->wo, &h->bo, &h->q_norm, &h->k_norm,
                               &h->ffn_norm, &h->w_gate, &h->w_up, &h->w_down,
                               &h->b_gate, &h->b_up, &h->b_down};
    kvl_weight *dst[] = {&d->attn_norm, &d->wo, &d->bo, &d->q_norm, &d->k_norm,
                         &d->ffn_norm, &d->w_gate, &d->w_up, &d->w_down,
                         &d->b_gate, &d->b_up, &d->b_down};
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        const int is_norm = src[i] == &h->attn_norm || src[i] == &h->q_norm ||
                            src[i] == &h->k_norm || src[i] == &h->ffn_norm;
        kvl_status st = put(m, src[i], is_norm, NULL, dst[i], err);
        if (st != KVL_OK)
            return st;
    }
    const kvl_weight *hw[3] = {&h->wq, &h->wk, &h->wv}, *hb[3] = {&h->bq, &h->bk, &h->bv};
    kvl_weight *dw[3] = {&d->wq, &d->wk, &d->wv}, *db[3] = {&d->bq, &d->bk, &d->bv};
    void *w = NULL, *b = NULL;
    kvl_status st = put_joined(m, hw, dw, &w, err);
    if (st == KVL_OK)
        st = put_joined(m, hb, db, &b, err);
    const int no_bias = !present(m, hb[0]) && !present(m, hb[1]) && !present(m, hb[2]);
    qkv->fused = w && (b || no_bias);
    qkv->w = w;
    qkv->b = b;
    qkv->bdt = b ? hb[0]->dtype : KVL_DTYPE_F32;
    qkv->rows = (int32_t)(h->wq.rows + h->wk.rows + h->wv.rows);
    return st;
}

void kvl_cuda_model_free(kvl_cuda_model *m)
{
    if (!m)
        return;
    for (int32_t i = 0; i < m->n_allocs; i++)
        cudaFree(m->allocs[i]);
    free(m->allocs);
    free(m->layers);
    free(m->qkv);
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
    m->qkv = calloc((size_t)cfg->n_layers, sizeof *m->qkv);
    kvl_status st = m->layers && m->qkv ? KVL_OK
                                        : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    for (int32_t l = 0; st == KVL_OK && l < cfg->n_layers; l++)
        st = upload_layer(m, &model->layers[l], &m->layers[l], &m->qkv[l], err);
    if (st == KVL_OK)
        st = put(m, &model->tok_emb, 0, NULL, &m->tok_emb, err);
    if (st == KVL_OK)
        st = put(m, &model->final_norm, 1, NULL, &m->final_norm, err);
    if (st == KVL_OK) {
        /* tied: one copy (a shapes-only model has no data to compare) */
        if (random ? model->cfg.tied_embeddings != 0
                   : model->lm_head.data == model->tok_emb.data)
            m->lm_head = m->tok_emb;
        else
            st = put(m, &model->lm_head, 0, NULL, &m->lm_head, err);
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
            st = kvl_cu_fail(err, e, "copying RoPE frequencies");
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
    return KVL_OK;
}

kvl_status kvl_cuda_session_reserve(kvl_cuda_session *s, int32_t n, kvl_error *err)
{
    return grow_cache(s, n, err);
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
    kvl_cuda_step_free(s->step);
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
    kvl_status st = KVL_OK;
    cudaError_t e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess)
        st = kvl_cu_fail(err, e, "creating a stream");
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

/* y[T][M] = x[T][K] W^T + b.  again: the previous product had the same
 * input, so its bf16 copy (s->x16) is still there. */
static kvl_status linear_in(kvl_cuda_session *s, float *y, const float *x, int32_t T,
                            const kvl_weight *w, const kvl_weight *b, int again,
                            kvl_error *err)
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
        if (!again)
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

static kvl_status linear(kvl_cuda_session *s, float *y, const float *x, int32_t T,
                         const kvl_weight *w, const kvl_weight *b, kvl_error *err)
{
    return linear_in(s, y, x, T, w, b, 0, err);
}

/* The same input as the previous product (BF16 weights of one dtype). */
static kvl_status linear_again(kvl_cuda_session *s, float *y, const float *x, int32_t T,
                               const kvl_weight *w, const kvl_weight *b,
                               const kvl_weight *prev, kvl_error *err)
{
    return linear_in(s, y, x, T, w, b, prev->dtype == w->dtype, err);
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
    CU(kvl_cu_rope(x, s->d_pos, T, n_h, c->head_dim,
                   c->rope.rotary_dim, s->m->inv_freq, c->rope.layout, +1, s->stream),
       "rope");
    return KVL_OK;
}

/* Attention of T rows of layer l over the cache: on tensor cores for
 * BF16 / F16 models when the head size allows, else the fp32 kernel. */
static cudaError_t attention(kvl_cuda_session *s, int32_t l, int32_t T)
{
    const kvl_config *c = &s->m->host->cfg;
    float **B = s->buf;
    const kvl_dtype wdt = s->m->layers[l].wq.dtype;
    if (T > 1 && (wdt == KVL_DTYPE_BF16 || wdt == KVL_DTYPE_F16)) {
        cudaError_t e = kvl_cu_attention_prefill_tc(B[B_ATT], B[B_Q], s->k[l], s->v[l],
                                                    s->cap, s->n_tokens, T, c->n_heads,
                                                    c->n_kv_heads, c->head_dim, wdt,
                                                    s->stream);
        if (e != cudaErrorNotSupported)
            return e;
        cudaGetLastError();
    }
    return kvl_cu_attention(B[B_ATT], B[B_Q], s->k[l], s->v[l], s->cap, s->n_tokens, T,
                            c->n_heads, c->n_kv_heads, c->head_dim, s->att_scratch,
                            s->att_scratch_floats, s->stream);
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
        (st = linear_again(s, B[B_K], B[B_XN], T, &w->wk, &w->bk, &w->wq, err)) ||
        (st = linear_again(s, B[B_V], B[B_XN], T, &w->wv, &w->bv, &w->wk, err)) ||
        (st = norm_and_rotate(s, B[B_Q], T, c->n_heads, &w->q_norm, err)) ||
        (st = norm_and_rotate(s, B[B_K], T, c->n_kv_heads, &w->k_norm, err)))
        return st;
    CU(kvl_cu_cache_store(s->k[l], s->v[l], s->cap, B[B_K], B[B_V], s->n_tokens, T,
                          c->n_kv_heads, c->head_dim, s->stream),
       "cache store");
    CU(attention(s, l, T), "attention");
    if ((st = linear(s, B[B_PROJ], B[B_ATT], T, &w->wo, &w->bo, err)))
        return st;
    CU(kvl_cu_add(B[B_X], B[B_PROJ], (int64_t)T * c->dim, s->stream), "residual");
    return KVL_OK;
}

/* y[T][M] (bf16 bits) = bf16(x16[T][K] W^T): BF16 weights, input already
 * in s->x16. */
static kvl_status gemm_bf16_out(kvl_cuda_session *s, uint16_t *y, const kvl_weight *w,
                                int32_t T, kvl_error *err)
{
    const float one = 1.0f, zero = 0.0f;
    const int32_t M = (int32_t)w->rows, K = (int32_t)w->cols;
    cublasStatus_t bs = cublasGemmEx(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, M, T, K, &one,
                                     w->data, CUDA_R_16BF, K, s->x16, CUDA_R_16BF, K, &zero,
                                     y, CUDA_R_16BF, M, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT);
    return bs == CUBLAS_STATUS_SUCCESS ? KVL_OK : cublas_fail(err, bs, "matrix product");
}

/* The FFN of a BF16 prefill with its [T][hidden] intermediates in bf16
 * (the precision transformers keeps them in): gate and up out of cuBLAS
 * in bf16, SwiGLU from bf16 to the down product's bf16 operand, and the
 * residual added by the down product itself (beta = 1). */
static kvl_status ffn_bf16(kvl_cuda_session *s, const kvl_layer_weights *w, int32_t T,
                           kvl_error *err)
{
    const kvl_config *c = &s->m->host->cfg;
    float **B = s->buf;
    uint16_t *g16 = (uint16_t *)B[B_GATE], *u16 = (uint16_t *)B[B_UP];
    kvl_status st;
    CU(kvl_cu_to_bf16(s->x16, B[B_XN], (int64_t)T * c->dim, s->stream), "bf16 conversion");
    if ((st = gemm_bf16_out(s, g16, &w->w_gate, T, err)) ||
        (st = gemm_bf16_out(s, u16, &w->w_up, T, err)))
        return st;
    CU(kvl_cu_swiglu_bf16(s->x16, g16, u16, (int64_t)T * c->hidden_dim, s->stream), "SwiGLU");
    const float one = 1.0f;
    cublasStatus_t bs = cublasGemmEx(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, c->dim, T, c->hidden_dim,
                                     &one, w->w_down.data, CUDA_R_16BF, c->hidden_dim, s->x16,
                                     CUDA_R_16BF, c->hidden_dim, &one, B[B_X], CUDA_R_32F,
                                     c->dim, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (bs != CUBLAS_STATUS_SUCCESS)
        return cublas_fail(err, bs, "matrix product");
    if (w->b_down.data)
        CU(kvl_cu_add_bias(B[B_X], w->b_down.data, w->b_down.dtype, T, c->dim, s->stream),
           "bias");
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
    if (T > KVL_CU_MATVEC_MAX_T && w->w_gate.dtype == KVL_DTYPE_BF16 &&
        w->w_up.dtype == KVL_DTYPE_BF16 && w->w_down.dtype == KVL_DTYPE_BF16 &&
        !w->b_gate.data && !w->b_up.data)
        return ffn_bf16(s, w, T, err);
    if ((st = linear(s, B[B_GATE], B[B_XN], T, &w->w_gate, &w->b_gate, err)) ||
        (st = linear_again(s, B[B_UP], B[B_XN], T, &w->w_up, &w->b_up, &w->w_gate, err)))
        return st;
    CU(kvl_cu_swiglu(B[B_GATE], B[B_GATE], B[B_UP], (int64_t)T * c->hidden_dim,
                     s->stream),
       "SwiGLU");
    if ((st = linear(s, B[B_PROJ], B[B_GATE], T, &w->w_down, &w->b_down, err)))
        return st;
    CU(kvl_cu_add(B[B_X], B[B_PROJ], (int64_t)T * c->dim, s->stream), "residual");
    return KVL_OK;
}

kvl_status kvl_cuda_check_ids(const kvl_config *c, const int32_t *tokens,
                              const int32_t *positions, int32_t T, kvl_error *err)
{
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

static kvl_status check_inputs(const kvl_cuda_session *s, const int32_t *tokens,
                               const int32_t *positions, int32_t T, kvl_error *err)
{
    if (T <= 0 || !tokens || !positions)
        return kvl_fail(err, KVL_ERR_ARG, "forward needs at least one token");
    if (s->n_tokens > INT32_MAX / 2 - T)
        return kvl_fail(err, KVL_ERR_RANGE, "cache would exceed 2^30 tokens");
    return kvl_cuda_check_ids(&s->m->host->cfg, tokens, positions, T, err);
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
    }
    return KVL_OK;
}

/* Embedding, layers, final norm and lm_head of T rows (logits rows
 * [first, T) into B_LOGITS when `logits`). */
static kvl_status forward_body(kvl_cuda_session *s, int32_t T, int32_t first, int logits,
                             kvl_error *err)
{
    const kvl_cuda_model *m = s->m;
    const kvl_config *c = &m->host->cfg;
    kvl_status st;
    CU(kvl_cu_embed(s->buf[B_X], m->tok_emb.data, m->tok_emb.dtype, s->d_tokens, T,
                    c->dim, s->stream),
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

kvl_status kvl_cuda_forward(kvl_cuda_session *s, const int32_t *tokens,
                            const int32_t *positions, int32_t T, float *logits,
                            int all_logits, kvl_error *err)
{
    if (!s)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cuda_forward: session is NULL");
    const kvl_config *c = &s->m->host->cfg;
    if (T == 1 && tokens && positions)
        return kvl_cuda_decode(s, tokens[0], positions[0], logits, NULL, err);
    kvl_status st = prepare(s, tokens, positions, T, err);
    if (st != KVL_OK)
        return st;
    CU(cudaMemcpyAsync(s->d_tokens, tokens, (size_t)T * sizeof(int32_t),
                       cudaMemcpyHostToDevice, s->stream), "copying ids");
    CU(cudaMemcpyAsync(s->d_pos, positions, (size_t)T * sizeof(int32_t),
                       cudaMemcpyHostToDevice, s->stream), "copying positions");
    const int32_t first = all_logits ? 0 : T - 1, rows = T - first;
    if ((st = forward_body(s, T, first, logits != NULL, err)))
        return st;
    if (logits)
        CU(cudaMemcpyAsync(logits, s->buf[B_LOGITS],
                           (size_t)rows * c->vocab_size * sizeof(float),
                           cudaMemcpyDeviceToHost, s->stream),
           "copying logits");
    CU(cudaStreamSynchronize(s->stream), "forward");
    for (int32_t t = 0; t < T; t++) {
        s->token_ids[s->n_tokens + t] = tokens[t];
        s->positions[s->n_tokens + t] = positions[t];
    }
    s->n_tokens += T;
    return KVL_OK;
}

kvl_status kvl_cuda_decode(kvl_cuda_session *s, int32_t token, int32_t position,
                           float *logits, int32_t *next, kvl_error *err)
{
    if (!s)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cuda_decode: session is NULL");
    /* the step checks the token and position */
    kvl_status st = KVL_OK;
    if (!s->step)
        st = kvl_cuda_step_new(s->m, 1, s->stream, &s->step, err);
    if (st != KVL_OK)
        return st;
    kvl_cuda_session *one[1] = {s};
    return kvl_cuda_step_run(s->step, one, 1, &token, &position, logits, next, err);
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
        st = kvl_cu_fail(err, e, "repositioning");
    cudaFree(d);
    if (st == KVL_OK)
        memcpy(s->positions, new_pos, (size_t)n * sizeof(int32_t));
    return st;
}

int32_t kvl_cuda_session_next_position(const kvl_cuda_session *s)
{
    return s && s->n_tokens > 0 ? s->positions[s->n_tokens - 1] + 1 : 0;
}
