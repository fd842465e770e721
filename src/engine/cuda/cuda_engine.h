/*
 * The CUDA forward pass (issue 6), the same graph as engine/cpu/forward.c:
 * a device copy of a model's weights (kvl_cuda_model, weights in their
 * stored dtype) and a device session (kvl_cuda_session: activation buffers,
 * the KV cache of every layer in the host cache's layout
 * [n_kv_heads][cap][head_dim] fp32, token ids and positions on the host,
 * a stream and a cuBLAS handle).  Prefill products go through cuBLAS
 * (BF16 operands, fp32 accumulation and output; F32 weights in fp32); the
 * decode path (T <= KVL_CU_MATVEC_MAX_T) through kvl_cu_matvec.
 *
 * Internal for now: the public API (device selection in kvl_model_options,
 * sessions and caches resident on the device) is built on it next.
 * Ownership: *_new returns an object released by the matching *_free; the
 * session borrows its model, which must outlive it.
 */
#ifndef KVL_ENGINE_CUDA_ENGINE_H
#define KVL_ENGINE_CUDA_ENGINE_H

#include <stdint.h>

#include "kvlab.h"

typedef struct kvl_cuda_model kvl_cuda_model;
typedef struct kvl_cuda_session kvl_cuda_session;

/* Number of CUDA devices (0 when none or when the driver is absent). */
int kvl_cuda_devices(void);

/* Uploads the weights of `model` to device `device`. */
kvl_status kvl_cuda_model_new(const kvl_model *model, int device,
                              kvl_cuda_model **out, kvl_error *err);
/* The same for a model given by shapes only (weights with NULL data, as
 * built by bench/bench_cuda.c): device weights filled with seeded random
 * values (matrices uniform in +-0.02, norm weights 1 +- 0.1, biases
 * +-0.02), so that benchmarks of real checkpoint shapes need no files. */
kvl_status kvl_cuda_model_new_random(const kvl_model *shapes, int device,
                                     uint64_t seed, kvl_cuda_model **out,
                                     kvl_error *err);
void kvl_cuda_model_free(kvl_cuda_model *m);
/* Device bytes the weights take. */
int64_t kvl_cuda_model_bytes(const kvl_cuda_model *m);

/* A session with room for `capacity` tokens (grown when needed). */
kvl_status kvl_cuda_session_new(const kvl_cuda_model *m, int32_t capacity,
                                kvl_cuda_session **out, kvl_error *err);
void kvl_cuda_session_free(kvl_cuda_session *s);
int32_t kvl_cuda_session_n_tokens(const kvl_cuda_session *s);
/* Empties the cache. */
void kvl_cuda_session_reset(kvl_cuda_session *s);

/* Runs tokens[0..T) at positions[0..T) after the cached tokens, appends
 * their K/V, and copies logits to the host array `logits` (if non-NULL):
 * [T][vocab] when all_logits, else the last row.  Synchronises the
 * session's stream before returning. */
kvl_status kvl_cuda_forward(kvl_cuda_session *s, const int32_t *tokens,
                            const int32_t *positions, int32_t T,
                            float *logits, int all_logits, kvl_error *err);

/* One token at `position` after the cached ones, through the decode step
 * (one CUDA graph per step when graphs are on): logits ([vocab], host) and
 * next (the logits' argmax, lowest index on ties, computed on the device)
 * are optional.  kvl_cuda_forward with T = 1 comes here. */
kvl_status kvl_cuda_decode(kvl_cuda_session *s, int32_t token, int32_t position,
                           float *logits, int32_t *next, kvl_error *err);

/* Batched decoding: one step for B sessions of one model at once (the
 * weights are read once for up to 8 sequences).  A step object holds the
 * activation buffers, the captured graphs (one per batch size) and its
 * own stream; it borrows the model. */
typedef struct kvl_cuda_step kvl_cuda_step;
kvl_status kvl_cuda_batch_new(const kvl_cuda_model *m, int32_t max_b, kvl_cuda_step **out,
                              kvl_error *err);
void kvl_cuda_step_free(kvl_cuda_step *st);
/* token[b] at position pos[b] after session b's cached tokens, for B
 * distinct sessions of the step's model; K/V appended to each session's
 * cache.  logits ([B][vocab]) and next ([B] argmax) optional, host
 * memory.  Synchronises before returning. */
kvl_status kvl_cuda_step_run(kvl_cuda_step *st, kvl_cuda_session *const *sessions,
                             int32_t B, const int32_t *tokens, const int32_t *pos,
                             float *logits, int32_t *next, kvl_error *err);

/* The session's cache copied into a new host cache (the public kvl_cache
 * object: save it with kvl_cache_save, inspect it, ...), through two
 * pinned staging buffers so that the DMA of one layer overlaps the host
 * copy of the previous one. */
kvl_status kvl_cuda_session_export(kvl_cuda_session *s, kvl_cache **out,
                                   kvl_error *err);
/* The same into an existing host cache of the model's geometry (grown as
 * needed; its fingerprint and rope stay). */
kvl_status kvl_cuda_session_export_into(kvl_cuda_session *s, kvl_cache *h,
                                        kvl_error *err);
/* Replaces the session's cache by a host cache (the caller has checked it
 * against the model: geometry and rope must match). */
kvl_status kvl_cuda_session_import(kvl_cuda_session *s, const kvl_cache *c,
                                   kvl_error *err);

/* Keeps cached tokens [t0, t1), on the device. */
kvl_status kvl_cuda_session_slice(kvl_cuda_session *s, int32_t t0, int32_t t1,
                                  kvl_error *err);
/* Re-rotates every cached key to new_pos[n_tokens] (host array), on the
 * device. */
kvl_status kvl_cuda_session_reposition(kvl_cuda_session *s, const int32_t *new_pos,
                                       kvl_error *err);
/* The position after the last cached token (0 when empty). */
int32_t kvl_cuda_session_next_position(const kvl_cuda_session *s);

#endif
