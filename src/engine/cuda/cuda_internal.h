/*
 * Layout of the CUDA backend's objects, shared by cuda_engine.c (weights,
 * sessions, prefill, export / import, cache edits) and cuda_step.c (the
 * batched single-token decode step).  Internal to src/engine/cuda/.
 */
#ifndef KVL_ENGINE_CUDA_INTERNAL_H
#define KVL_ENGINE_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "core/error.h"
#include "engine/cuda/cuda_engine.h"
#include "model/model.h"

/* The q/k/v products of one layer as one matrix for the decode step:
 * qkv_w = [Wq; Wk; Wv] (rows nh*hd + 2*nkv*hd), qkv_b the same for the
 * biases (NULL when the model has none).  wq / wk / wv of the layer are
 * views into qkv_w.  fused = 0 when the three weights could not be joined
 * (different dtypes, or only some biases): the step then runs them
 * separately. */
typedef struct kvl_cu_qkv {
    int fused;
    const void *w, *b;
    kvl_dtype bdt;
    int32_t rows;
} kvl_cu_qkv;

struct kvl_cuda_model {
    const kvl_model *host;
    int device;
    int random;               /* weights generated, not copied          */
    uint64_t seed, n_filled;
    kvl_weight tok_emb, final_norm, lm_head;
    kvl_layer_weights *layers;
    kvl_cu_qkv *qkv;          /* [n_layers]                             */
    float *inv_freq;          /* device [rotary_dim / 2]                */
    int64_t bytes;
    void **allocs;            /* every device allocation, freed at the end */
    int32_t n_allocs, allocs_cap;
};

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
    /* Single-token steps: a decode step of one sequence (cuda_step.c),
     * created at the first one, on this session's stream. */
    struct kvl_cuda_step *step;
};

kvl_status kvl_cu_fail(kvl_error *err, cudaError_t e, const char *what);

/* In a function with a `kvl_error *err`: return kvl_cu_fail on a failed
 * CUDA call. */
#define CU(call, what)                                                       \
    do {                                                                     \
        cudaError_t e_ = (call);                                             \
        if (e_ != cudaSuccess)                                               \
            return kvl_cu_fail(err, e_, what);                               \
    } while (0)


/* Every token id inside the vocabulary and every position >= 0 (n of
 * each); the error names the first that is not. */
kvl_status kvl_cuda_check_ids(const kvl_config *c, const int32_t *tokens,
                              const int32_t *positions, int32_t n, kvl_error *err);

/* Room for `n` tokens in the session's cache (contents kept; the device
 * arrays may move). */
kvl_status kvl_cuda_session_reserve(kvl_cuda_session *s, int32_t n, kvl_error *err);

/* ---- the decode step (cuda_step.c) -------------------------------------- */

/* A step for up to max_b sequences of model m, running on `stream`
 * (borrowed), or on a stream of its own when stream is NULL. */
kvl_status kvl_cuda_step_new(const kvl_cuda_model *m, int32_t max_b, cudaStream_t stream,
                             kvl_cuda_step **out, kvl_error *err);

#endif
