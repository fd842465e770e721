/* Internal layout of kvl_session: the model, its cache, and the activation
 * buffers of the last forward call (llm.c style: one named buffer per
 * intermediate, per layer when activations are kept). */
#ifndef KVL_ENGINE_SESSION_H
#define KVL_ENGINE_SESSION_H

#include "engine/cpu/matmul.h"
#include "model/model.h"

/* Per-layer intermediates, each [T][width]. */
enum kvl_act_id {
    KVL_ACT_X,         /* residual stream entering the layer    */
    KVL_ACT_ATTN_NORM, /* RMSNorm(x)                             */
    KVL_ACT_Q,         /* q after q_norm and RoPE  [T][nh*hd]    */
    KVL_ACT_K,         /* k after k_norm and RoPE  [T][nkv*hd]   */
    KVL_ACT_V,         /*                          [T][nkv*hd]   */
    KVL_ACT_ATTN_OUT,  /* softmax(qk)v, heads concatenated       */
    KVL_ACT_ATTN_PROJ, /* attn_out @ Wo^T                        */
    KVL_ACT_FFN_NORM,  /* RMSNorm(x + attn_proj)                 */
    KVL_ACT_GATE,      /*                          [T][hidden]   */
    KVL_ACT_UP,        /*                          [T][hidden]   */
    KVL_ACT_FFN_ACT,   /* silu(gate) * up                        */
    KVL_ACT_FFN_OUT,   /* ffn_act @ Wdown^T                      */
    KVL_ACT_COUNT
};

typedef struct kvl_acts {
    int32_t rows_cap;          /* tokens the buffers hold              */
    int32_t n_sets;            /* n_layers when kept, else 1           */
    float *buf[KVL_ACT_COUNT]; /* [n_sets][rows_cap][width]            */
    float *final_norm;         /* [rows_cap][dim]                      */
    float *resid;              /* [rows_cap][dim] running residual     */
} kvl_acts;

struct kvl_session {
    const kvl_model *model;
    kvl_cache *cache;
    int32_t n_threads;
    int32_t keep_activations;
    int32_t last_rows;         /* tokens of the last forward call      */
    kvl_acts acts;
    kvl_matmul_scratch scratch;
    float *att_scores;         /* [n_threads][att_cap]                 */
    size_t att_cap;
    int32_t att_threads;
    /* GPU sessions (model loaded on a GPU): the device session holds the
     * cache; `cache` above is its host copy, exported when asked for. */
    struct kvl_cuda_session *cuda;
    int host_stale;            /* the device holds newer content        */
    int host_lent;             /* `cache` was handed out: import it
                                  before the next device operation      */
};

/* The position after the last cached token (0 when empty). */
int32_t kvl_session_next_position_internal(kvl_session *s);
#ifdef KVL_HAVE_CUDA
/* Imports a host copy of the cache that was handed out (it may have been
 * edited) before a device operation. */
kvl_status kvl_session_device_current(kvl_session *s, kvl_error *err);
#endif

/* Width of an activation for the model's config. */
int32_t kvl_act_width(const kvl_config *cfg, int id);

/* The forward pass proper (engine/cpu/forward.c): runs T tokens at the
 * given positions after the cache's content, appends K/V, writes logits
 * (all rows or the last). */
kvl_status kvl_cpu_forward(kvl_session *s, const int32_t *tokens,
                           const int32_t *positions, int32_t T, float *logits,
                           int all_logits, kvl_error *err);

#endif
